#pragma once
/// @file model_dir.hpp
/// A Hugging Face model directory without LibTorch: `config.json` (the architecture) and
/// `preprocessor_config.json` (the image processor, read into a preprocess::PreprocessConfig;
/// what it does to an image is the preprocess component's).
///
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "radprobe/preprocess/preprocess.hpp"

namespace radprobe::encoders {

/// The dtype the transformer blocks compute in (--dtype): float32, or bfloat16 / float16 with
/// LibTorch's float32 accumulation inside matrix products, norms and softmax. Embeddings, final
/// norms and heads stay float32; outputs are float32.
enum class ComputeDType { kFloat32, kBFloat16, kFloat16 };

/// "fp32" | "bf16" | "fp16" → ComputeDType; UsageError naming `what` otherwise.
ComputeDType parse_compute_dtype(const std::string& name, const std::string& what = "--dtype");
std::string compute_dtype_name(ComputeDType dtype);

/// How a model folder's weights are read: the command line's --checkpoint-key, else the folder's
/// radprobe_load.json (see read_load_options).
struct LoadOptions {
    /// The top-level entry of a PyTorch checkpoint that holds the weights ("teacher",
    /// "state_dict", ...); "" = found automatically (TorchCheckpoint::state_dict_tensors).
    std::string checkpoint_key;
    /// The blocks' compute dtype (--dtype; the folder's file says "dtype"); unset = fp32.
    std::optional<ComputeDType> compute_dtype;
    /// Keep a bf16/fp16 checkpoint's transformer-block weights in their dtype (no float32 copy;
    /// each block is converted to the compute dtype while it runs). False: everything float32
    /// (what training wants).
    bool keep_half = true;

    /// The defaults with `key` as the checkpoint key.
    static LoadOptions with_key(std::string key) {
        LoadOptions o;
        o.checkpoint_key = std::move(key);
        return o;
    }
};

/// The file of a model folder that records its load options ({"checkpoint_key": "teacher",
/// "dtype": "bf16"}):
/// what a run writes into the model folders it prepares, and what a user may write beside a
/// checkpoint so that every command reads it the same way.
inline constexpr const char* kLoadOptionsFile = "radprobe_load.json";

/// `given` where it sets a field, else the value of DIR/radprobe_load.json (InputError naming the
/// file when it is not a JSON object of known string fields).
LoadOptions read_load_options(const std::filesystem::path& dir, const LoadOptions& given = {});

/// The fields of config.json that radprobe's architectures use.
struct ModelConfig {
    std::filesystem::path dir;
    std::string model_type;
    /// The text of the config file as read (what save_pretrained writes back) and its name
    /// ("config.json", or "open_clip_config.json" for the open_clip layout).
    std::string config_json;
    std::string config_file = "config.json";
    /// The text of preprocessor_config.json when the directory has one (else empty).
    std::string preprocessor_json;
    std::int64_t hidden_size = 0;
    std::int64_t num_hidden_layers = 0;
    std::int64_t num_attention_heads = 0;
    std::int64_t patch_size = 0;
    std::int64_t image_size = 0;  ///< native (pre-training) input side; the position grid
    std::int64_t num_channels = 3;
    double mlp_ratio = 4.0;
    double layer_norm_eps = 1e-6;
    double layerscale_value = 1.0;
    bool use_swiglu_ffn = false;
    bool qkv_bias = true;
    std::string hidden_act = "gelu";
    std::int64_t num_register_tokens = 0;
    /// Whether the token sequence starts with a CLS token (false: SigLIP, ResNet, Swin, whose
    /// sequences are patch tokens only; the `cls` pooling is then refused).
    bool has_cls_token = true;
    /// MLP width (config "intermediate_size"; 0 = hidden_size · mlp_ratio, the DINOv2 rule).
    std::int64_t intermediate_size = 0;
    /// DINOv3: RoPE base, gated MLP and per-projection biases.
    double rope_theta = 100.0;
    bool use_gated_mlp = false;
    bool query_bias = true;
    bool key_bias = false;
    bool value_bias = true;
    bool proj_bias = true;
    bool mlp_bias = true;
    /// AIMv2 "native" variants: a 2-D sin-cos position embedding computed for the input's own
    /// grid instead of a learned table (any input size).
    bool is_native = false;
    /// Hierarchical models (ResNet, Swin, SAM2, VMamba): per-stage depths, widths / heads. For
    /// these, num_hidden_layers is the number of stages, hidden_size the last stage's width and
    /// patch_size the total stride of the last stage's grid (what pooling and ROI mapping use);
    /// embed_patch_size is Swin's patch-embedding size.
    std::vector<std::int64_t> depths;
    std::vector<std::int64_t> stage_widths;
    std::vector<std::int64_t> stage_heads;
    std::int64_t embedding_size = 0;  ///< ResNet stem width
    std::string layer_type;           ///< ResNet "bottleneck" / "basic"
    bool downsample_in_first_stage = false;
    bool downsample_in_bottleneck = false;
    std::int64_t embed_patch_size = 0;  ///< Swin; SAM2's patch stride
    std::int64_t window_size = 0;       ///< Swin
    bool use_absolute_embeddings = false;
    /// SAM2's Hiera trunk and FPN neck (HF Sam2HieraDetConfig, Sam2VisionConfig); its stages are
    /// in depths / stage_widths / stage_heads, its patch stride in embed_patch_size.
    struct Hiera {
        std::vector<std::int64_t> windows;        ///< window_size_per_stage
        std::vector<std::int64_t> global_blocks;  ///< global_attention_blocks (block indices)
        std::int64_t query_pool_stages = 0;       ///< stages 1..this start with a q-pool
        std::int64_t query_stride = 2;            ///< the q-pool's (square) stride
        std::int64_t patch_kernel = 0, patch_padding = 0;
        std::int64_t background_h = 0, background_w = 0;  ///< pos_embed's grid
        std::int64_t fpn_hidden_size = 0;
        std::int64_t fpn_kernel = 1, fpn_stride = 1, fpn_padding = 0;
        std::vector<std::int64_t> fpn_top_down_levels;
        std::int64_t num_feature_levels = 0;
    } hiera;
    /// VMamba's VSSM (MzeroMiko/VMamba, the released v2 layout: forward_type v05_noz); its stages
    /// are in depths / stage_widths, the stem's stride in embed_patch_size. Per stage: the SS2D
    /// width d_inner = int(ssm_ratio · width), dt_rank, and the MLP width int(mlp_ratio · width).
    struct Vmamba {
        std::int64_t d_state = 0;  ///< ssm_d_state (N)
        double ssm_ratio = 0;
        std::int64_t conv = 0;  ///< ssm_conv: the depthwise convolution's kernel side
        std::vector<std::int64_t> d_inner, dt_ranks, mlp_hidden;
        std::int64_t num_classes = 0;  ///< classifier.head outputs (0: no head)
        /// The 1×1 projections (in_proj, out_proj, mlp.fc1/fc2) are stored [out, in, 1, 1] as
        /// convolutions instead of the Linear2d [out, in] (both load in the publisher's code).
        bool linear_weights_4d = false;
    } vmamba;
    /// Image-text projection after the pooled embedding (EncoderOutput::projected): HF
    /// CLIPVisionModelWithProjection's visual_projection (config "projection_dim", no bias), or
    /// open_clip's visual.head.proj (model_cfg.embed_dim, bias = timm_proj_bias). 0 = none.
    std::int64_t projection_dim = 0;
    bool projection_bias = false;
    /// CoCa's attentional pooler (open_clip vision_cfg.attentional_pool): learned queries of
    /// width projection_dim attend over the tokens; query 0 after post_layernorm is the pooled
    /// output. 0 = none.
    std::int64_t attn_pool_queries = 0;
    std::int64_t attn_pool_heads = 0;
    /// ViT: the checkpoint has ViTModel's pooler (set by load_encoder from the checkpoint's keys;
    /// *ForImageClassification checkpoints have none). SigLIP: the MAP head (config
    /// vision_use_head, default true).
    bool has_pooler = true;
    /// A full multimodal config (HF CLIPModel "clip", SiglipModel "siglip") whose vision tower
    /// this is (model_type is then the tower's); empty for a vision-only config.
    std::string composite_type;
    /// "" = the checkpoint uses the architecture's HF key names; "torchvision_resnet" = a folder
    /// holding only a torchvision ResNet state dict (DINO ResNet-50): the config was inferred
    /// from the weights' names and shapes, and load_encoder renames the keys.
    std::string weights_layout;
    /// The checkpoint entry the weights are read from (LoadOptions::checkpoint_key).
    std::string checkpoint_key;
    /// What run_blocks computes the transformer blocks in (LoadOptions::compute_dtype).
    ComputeDType compute_dtype = ComputeDType::kFloat32;
    /// Whether the token sequence is laid out as a ViT one ([CLS?, registers, patches]).
    bool is_hierarchical() const {
        return model_type == "resnet" || model_type == "swin" ||
               model_type == "sam2_vision_model" || model_type == "vmamba";
    }

    /// Native patch grid side (image_size / patch_size).
    std::int64_t native_grid() const { return patch_size > 0 ? image_size / patch_size : 0; }
};

/// The files that hold a model folder's weights, as load_encoder reads them.
struct WeightFiles {
    enum class Kind { kSafetensors, kShardedSafetensors, kTorchPickle, kShardedTorchPickle };
    Kind kind = Kind::kSafetensors;
    std::vector<std::filesystem::path> files;  ///< one file, or the shards (sorted, unique)
    std::filesystem::path index;  ///< sharded: model.safetensors.index.json (or pytorch_model...)
    std::map<std::string, std::string> shard_of;  ///< sharded: tensor name → shard file name
};

/// Finds the weights of `model_dir`, first match wins: model.safetensors;
/// open_clip_model.safetensors; model.safetensors.index.json (its shards, which must be file names
/// inside the folder); pytorch_model.bin.index.json (pickle shards, likewise); a PyTorch pickle:
/// pytorch_model.bin, open_clip_pytorch_model.bin, model.bin, model.pth, model.pt, or the folder's
/// only *.bin / *.pt / *.pth / *.pth.tar / *.ckpt file (the DINO ResNet-50 and Ark+ downloads). A
/// path to a file: that file (.safetensors, or a pickle by its extension). InputError naming the
/// folder when nothing is found, or when several pickles could be meant.
WeightFiles find_weight_files(const std::filesystem::path& model_dir);

/// Checks that `checkpoint_key` names a state dict in every file of `w` (nothing to check when it
/// is empty); InputError naming the file and its top-level keys, or saying that safetensors
/// weights have no entries to choose from.
void check_checkpoint_key(const WeightFiles& w, const std::string& checkpoint_key);

/// CUDA devices this LibTorch can use (0 on a CPU-only build or a machine without a GPU).
/// Declared here, outside the LibTorch header, so that light translation units can ask.
int cuda_device_count();

/// Architectures the factory can build (model_type values), sorted.
std::vector<std::string> known_model_types();

/// One line describing a known model_type (the HF class and what it covers).
std::string model_type_description(const std::string& model_type);

/// Reads and validates DIR/config.json (or a config.json path). Unknown model_type → InputError
/// listing the known ones; a missing required key → InputError naming it.
/// A directory without config.json (and without open_clip_config.json) whose only weights are a
/// torchvision ResNet state dict (a `.pth` as DINO ResNet-50 ships) is read as model_type
/// "resnet" with weights_layout "torchvision_resnet": stem width, stage depths and widths and the
/// block type come from the tensor names and shapes (stride on the 3x3 convolution, as
/// torchvision's v1.5 Bottleneck), native size 224. Other weight layouts without a config →
/// InputError saying what the keys look like.
/// A full HF CLIPModel / SiglipModel config (model_type "clip" / "siglip") is read as its vision
/// tower: vision_config over the HF CLIPVisionConfig / SiglipVisionConfig defaults (save_pretrained
/// writes only the non-default values of nested configs), and for CLIP the visual_projection
/// (top-level projection_dim, default 512).
/// A directory without config.json but with open_clip_config.json (BiomedCLIP's layout) is read
/// as model_type "open_clip_timm_vit": the vision tower is a timm VisionTransformer named by
/// model_cfg.vision_cfg.timm_model_name (vit_{tiny,small,base,large,huge}_patch<P>_<S>),
/// overridden by vision_cfg.timm_model_kwargs (embed_dim, depth, num_heads, patch_size,
/// mlp_ratio, qkv_bias) and vision_cfg.image_size; the projection is model_cfg.embed_dim wide.
/// `options` chooses the checkpoint entry of a pickle (read_load_options resolves it against the
/// folder's radprobe_load.json; the result is in ModelConfig::checkpoint_key).
ModelConfig read_model_config(const std::filesystem::path& dir, const LoadOptions& options = {});

/// Reads DIR/preprocessor_config.json. Missing file → InputError naming it, except for a
/// torchvision ResNet folder without config (see read_model_config): DINO's evaluation
/// transform (resize the shortest edge to 256, bicubic, centre crop 224 with torchvision's
/// rounding, ImageNet mean/std); a preprocessor_config.json put beside it overrides that. An
/// open_clip directory without one is read from open_clip_config.json: open_clip's evaluation
/// transform (resize the shortest edge to image_size, bicubic unless preprocess_cfg.interpolation
/// says "bilinear", centre crop image_size with torchvision's rounding, ToTensor, normalise with
/// preprocess_cfg mean/std, default OpenAI CLIP's); resize_mode "squash" resizes to
/// image_size × image_size without a crop.
/// `options`: as for read_model_config (a config-less folder's weights are read to recognise it).
preprocess::PreprocessConfig read_preprocess_config(const std::filesystem::path& dir,
                                                    const LoadOptions& options = {});

/// `c` as a preprocessor_config.json that read_preprocess_config reads back to `c` (HF keys, plus
/// radprobe's "crop_rounding": "torchvision" when c.torchvision_crop).
std::string preprocessor_json(const preprocess::PreprocessConfig& c);

}  // namespace radprobe::encoders

namespace radprobe::encoders {

/// A randomly initialised DINOv2-layout ViT: the standard "random features" control. Weights
/// follow the Hugging Face initialisation (truncated normal, std = initializer_range, for
/// linear/patch/position/CLS weights; zero biases; LayerNorm 1/0; LayerScale at
/// layerscale_value), drawn from radprobe::Rng(seed) so the same seed gives the same model.
struct RandomVitSpec {
    std::int64_t hidden_size = 192;
    std::int64_t num_hidden_layers = 6;
    std::int64_t num_attention_heads = 3;
    std::int64_t patch_size = 16;
    std::int64_t image_size = 224;  ///< native input side (the position grid)
    double initializer_range = 0.02;
    double layerscale_value = 1.0;
    std::uint64_t seed = 0;
};

/// Writes config.json, preprocessor_config.json (resize shortest edge to image_size, centre
/// crop, ImageNet mean/std) and model.safetensors into `dir` (created; files written atomically).
void write_random_vit(const std::filesystem::path& dir, const RandomVitSpec& spec);

}  // namespace radprobe::encoders
