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

}  // namespace radprobe::encoders::detail
