#pragma once
// Private to encoders: the architecture table. One row per model_type holds every fact about that
// architecture: what it is, how its config.json is read, how it is built, and where its
// parameters sit in depth (layer-wise learning-rate decay, partial unfreezing). No LibTorch:
// builders are declared here and defined in the architecture translation units.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "radprobe/encoders/model_dir.hpp"

namespace radprobe::encoders::detail {

class LoadableEncoder;

/// Where a family's parameters sit in depth: keys starting with `block_prefix` + "N." are
/// block N + 1; keys starting with one of `embed_prefixes` are 0; every other key is after the
/// last block.
struct DepthLayout {
    std::string block_prefix;
    std::vector<std::string> embed_prefixes;
    /// The blocks are numbered across the stages (SAM2's backbone.blocks.N): block N counts at
    /// the depth of the stage that holds it (ModelConfig::depths), stage s at s + 1.
    bool blocks_across_stages = false;
};

/// Reads the family's fields of config.json into `c` (model_type, num_channels and hidden_act
/// are already set) and checks them; InputError naming the file and key otherwise.
using ConfigReader = void (*)(const nlohmann::json& j, const std::filesystem::path& path,
                              ModelConfig& c);
/// Builds the network with uninitialised weights.
using Builder = std::unique_ptr<LoadableEncoder> (*)(const ModelConfig& config);

struct Architecture {
    const char* model_type;
    const char* description;  ///< the HF (or publisher's) class and what it covers
    ConfigReader read_config;
    Builder build;
    DepthLayout depth;
    /// The forward runs its blocks through run_blocks (internal.hpp), which converts each
    /// block's weights to the compute dtype as it runs: a bf16/fp16 checkpoint's blocks can be
    /// held in their dtype (LoadOptions::keep_half).
    bool half_blocks = false;
};

/// Every architecture, sorted by model_type.
const std::vector<Architecture>& architectures();
/// The row of `model_type`, or null.
const Architecture* find_architecture(const std::string& model_type);

/// Whether an open_clip_config.json's vision tower is a timm model (BiomedCLIP: row
/// open_clip_timm_vit) rather than open_clip's own VisionTransformer.
bool is_open_clip_timm(const nlohmann::json& j);
/// open_clip's own VisionTransformer tower (OpenAI-style CLIP: visual.conv1, visual.transformer.
/// resblocks.*, visual.ln_post, visual.proj) as the HF CLIPVisionModelWithProjection config.json
/// it is equivalent to (width, layers, width/head_width heads, mlp_ratio, patch_size, image_size,
/// quick_gelu → hidden_act, embed_dim → projection_dim). Options that change the computation
/// (layer scale, no ln_pre, avg pooling, final_ln_after_pool, an attentional pooler, input patch
/// norm, a non-square image) are an InputError naming the file and the option.
nlohmann::json open_clip_vit_as_clip(const nlohmann::json& j, const std::filesystem::path& path);

/// The builders (one per architecture translation unit).
std::unique_ptr<LoadableEncoder> make_dinov2(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_vit(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_clip(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_dinov3(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_resnet(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_swin(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_open_clip(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_aimv2(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_sam2(const ModelConfig& config);
std::unique_ptr<LoadableEncoder> make_vmamba(const ModelConfig& config);

}  // namespace radprobe::encoders::detail
