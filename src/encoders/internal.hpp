#pragma once
// Private to the encoders component: the pieces shared between loading.cpp and the architecture
// translation units.

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "radprobe/encoders/encoder.hpp"

namespace radprobe::encoders::detail {

/// Copies `state` into the module's parameters and buffers (named like the HF key tree).
/// Missing, unexpected, mis-shaped and mis-typed keys are all collected and reported in one
/// InputError mentioning `source`.
void load_state_strict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& state,
                       const std::string& source);

/// Architecture builders (the factory in loading.cpp maps model_type to these). The returned
/// encoder has random (uninitialised) weights until load_state() is called.
class LoadableEncoder : public Encoder {
public:
    using Encoder::Encoder;
    virtual torch::nn::Module& module() = 0;
    /// Called after the weights were loaded (fuses/prepares derived tensors).
    virtual void prepare() = 0;
};

std::unique_ptr<LoadableEncoder> make_dinov2(const ModelConfig& config);
/// vit (ViTModel) and vit_mae (ViTMAEModel without masking): vit.cpp.
std::unique_ptr<LoadableEncoder> make_vit(const ModelConfig& config);
/// clip_vision_model (CLIPVisionModel) and siglip_vision_model (SiglipVisionModel): clip.cpp.
std::unique_ptr<LoadableEncoder> make_clip(const ModelConfig& config);
/// dinov3_vit (DINOv3ViTModel): dinov3.cpp.
std::unique_ptr<LoadableEncoder> make_dinov3(const ModelConfig& config);
/// resnet (ResNetModel): resnet.cpp.
std::unique_ptr<LoadableEncoder> make_resnet(const ModelConfig& config);
/// swin (SwinModel): swin.cpp.
std::unique_ptr<LoadableEncoder> make_swin(const ModelConfig& config);

// --- Helpers shared by the architecture translation units (common.cpp). ---

/// Which hidden states 0..num_states-1 to return (negative indices count from the end;
/// out-of-range → UsageError).
std::vector<bool> wanted_states(const ForwardOptions& options, std::int64_t num_states);

/// Checks an N×C×H×W input: 4-D, `channels` channels, at least min_side × min_side, N >= 1.
void check_pixels(const at::Tensor& pixel_values, std::int64_t channels, std::int64_t min_side);

/// HF ACT2FN[name] on a tensor (gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu, silu);
/// an unknown name → InputError naming config.json.
at::Tensor activation(const at::Tensor& x, const std::string& name, const ModelConfig& config);
/// Throws InputError for an activation activation() does not know.
void check_activation(const std::string& name, const ModelConfig& config);

/// Eager softmax attention on N×heads×T×hd tensors (HF eager_attention_forward): returns
/// N×T×(heads·hd).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

/// Splits N×T×D into N×heads×T×hd.
at::Tensor split_heads(const at::Tensor& x, std::int64_t heads);

/// Resizes the patch part of a learned position table [1, g0·g0, D] to gh × gw (torch bicubic,
/// align_corners=False, no antialias, in float32 — the HF ViT/CLIP/SigLIP rule). Returns
/// [1, gh·gw, D]; the table itself when the grid is native.
at::Tensor resize_positions(const at::Tensor& table, std::int64_t g0, std::int64_t gh,
                            std::int64_t gw);

/// Folds grey replication and per-channel normalisation into a patch-embedding convolution
/// (no padding): weight [D, 3, k, k] → [D, 1, k, k]; returns the bias shift to ADD (−Σ_c
/// (mean_c/std_c) Σ W[:, c]); the caller adds it to the bias (or keeps it when there is none).
at::Tensor fold_patch_conv(at::Tensor& weight, const std::array<double, 3>& mean,
                           const std::array<double, 3>& std);

/// Parameters of a module.
std::int64_t count_parameters(const torch::nn::Module& module);

}  // namespace radprobe::encoders::detail
