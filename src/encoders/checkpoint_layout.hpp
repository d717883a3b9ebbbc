#pragma once
// Private to encoders (no LibTorch): how a checkpoint's key names map onto an architecture's,
// the way Hugging Face's from_pretrained maps them. A checkpoint saved from a task or full model
// (ViTForImageClassification: `vit.*` + `classifier.*`; ViTMAEForPreTraining: `vit.*` +
// `decoder.*`; CLIPModel: `vision_model.*` + `text_model.*`; DataParallel: `module.*`) holds the
// backbone under a prefix, beside tensors a vision encoder does not use. resolve_layout finds
// the prefix, sets the rest aside, and stays strict about the backbone itself: a missing or
// mis-shaped backbone key, or an extra key inside the backbone's own modules (a layer more than
// config.json says), is an error whose one line says what the checkpoint looks like.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace radprobe::encoders::detail {

/// Tensor name → shape.
using ShapeMap = std::map<std::string, std::vector<std::int64_t>>;

/// How the checkpoint's keys were read.
struct LayoutMatch {
    std::string prefix;                ///< stripped from the backbone keys ("" = none)
    std::vector<std::string> ignored;  ///< checkpoint keys outside the backbone (sorted)
    /// Checkpoint key for each expected (architecture) key.
    std::map<std::string, std::string> source;
};

/// Matches `checkpoint` against the architecture's `expected` keys. `source` names the checkpoint
/// and `arch` the architecture in errors. Throws InputError (one line, bounded length) when the
/// backbone keys are not all present with the expected shapes, or when a key inside a backbone
/// module is not one of the architecture's.
LayoutMatch resolve_layout(const ShapeMap& expected, const ShapeMap& checkpoint,
                           const std::string& source, const std::string& arch);

/// "classifier.* (2 tensors), decoder.* (24 tensors)": the ignored keys grouped by their first
/// name segment (below the stripped prefix when they carry it). Empty when nothing was ignored.
std::string summarize_keys(const std::vector<std::string>& keys);

/// What a set of key names looks like, for error messages: "timm ViT key names (blocks.N.attn.
/// qkv): a timm checkpoint", "torchvision ResNet key names (layer1.0.conv1)", ... Empty when no
/// known layout is recognised.
std::string recognise_key_style(const std::vector<std::string>& keys);

/// A torchvision ResNet key as the HF ResNet module names it: conv1/bn1 → embedder.embedder.
/// {convolution,normalization}; layer<S>.<B>.conv<K>/bn<K> → encoder.stages.<S-1>.layers.<B>.
/// layer.<K-1>.{convolution,normalization}; layer<S>.<B>.downsample.{0,1} → ….shortcut.
/// {convolution,normalization}. A prefix before them ("module.", "backbone.") is kept; other keys
/// (fc.*) are returned unchanged.
std::string torchvision_resnet_key(const std::string& key);

/// A checkpoint tensor as the architecture holds it: one key, or three for a fused projection
/// (split along dim 0 into equal query, key, value parts); none for a tensor radprobe recomputes
/// (a Swin attention mask). `transpose`: stored as the transpose of the architecture's weight.
struct MappedKey {
    std::vector<std::string> names;
    bool transpose = false;
};

/// A timm Swin key (Ark+, timm SwinTransformer) as HF Swin names it: patch_embed.{proj,norm} →
/// embeddings.{patch_embeddings.projection,norm}; layers.<i>.blocks.<j>.{norm1,attn.qkv,attn.proj,
/// attn.relative_position_*,norm2,mlp.fc1,mlp.fc2} → encoder.layers.<i>.blocks.<j>.
/// {layernorm_before,attention.self.{query,key,value},attention.output.dense,attention.self.
/// relative_position_*,layernorm_after,intermediate.dense,output.dense}; the patch merging
/// layers.<i>.downsample → encoder.layers.<i>.downsample when the checkpoint keeps it at the end
/// of stage i (timm < 0.9, `downsample_at_end`), else encoder.layers.<i-1>.downsample (timm >= 0.9
/// puts it at the start of stage i); norm → layernorm; attn_mask → none. Other keys (head,
/// omni_heads, projector) are returned unchanged (set aside by resolve_layout).
MappedKey timm_swin_key(const std::string& key, bool downsample_at_end);

/// An open_clip VisionTransformer key (visual.*: OpenAI-style CLIP, CoCa) as the HF CLIP vision
/// tower names it: conv1 → vision_model.embeddings.patch_embedding; class_embedding,
/// positional_embedding → embeddings.{class_embedding,position_embedding.weight}; ln_pre →
/// pre_layrnorm; transformer.resblocks.<i>.{ln_1,attn.in_proj_*,attn.out_proj,ln_2,mlp.c_fc,
/// mlp.c_proj} → encoder.layers.<i>.{layer_norm1,self_attn.{q,k,v}_proj,self_attn.out_proj,
/// layer_norm2,mlp.fc1,mlp.fc2}; ln_post → post_layernorm; proj [width, embed_dim] →
/// visual_projection.weight (transposed); CoCa's attn_pool.* → vision_model.attn_pool.*. Keys
/// outside visual.* (text tower, logit_scale) are returned unchanged.
MappedKey open_clip_vit_key(const std::string& key);

}  // namespace radprobe::encoders::detail
