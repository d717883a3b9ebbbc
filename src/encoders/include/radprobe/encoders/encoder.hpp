#pragma once
/// @file encoder.hpp
/// Vision encoders loaded from Hugging Face directories (config.json + model.safetensors or a
/// sharded model.safetensors.index.json), run with LibTorch.
///
/// Tensor layouts (row-major, float32 on the CPU unless stated):
///  - input `pixel_values`: N×C×H×W, already preprocessed (see model_dir.hpp); C = 3, or 1 after
///    fold_grayscale(). H and W need not equal the native size nor be multiples of the patch
///    size (the remainder is dropped, as HF's strided convolution does); the position
///    embeddings are interpolated to the H/p × W/p grid exactly as the HF model does.
///  - token sequences: N×T×D with T = C + R + H'·W': [CLS (C = 1, absent when
///    has_cls_token() is false: SigLIP, ResNet, Swin), R register tokens, patches in row-major
///    (y, x) order], H' = H / p, W' = W / p (integer division) for the ViTs.
///  - hierarchical models (ResNet, Swin): the "patch tokens" are the last stage's grid
///    (C = R = 0, D = its channel count), so the same pooling modes apply; HF's N×C×H×W
///    ResNet maps are returned as N×(H·W)×C tokens, and the hidden states are the per-stage
///    outputs (index 0 = stem / patch embedding, i = stage i), each as N×(h·w)×C_i tokens.
///  - patch grid: N×H'×W'×D.

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/model_dir.hpp"

namespace radprobe::encoders {

/// Which hidden states to return besides the last one, from the same forward pass.
struct ForwardOptions {
    /// Hidden-state indices as HF numbers them: 0 = embedding output, i = output of layer i
    /// (before the final layer norm); negative values count from the end (-1 = output of the
    /// last layer). Out-of-range indices → UsageError.
    std::vector<int> layers;
    /// Return every hidden state (0..L), as HF's output_hidden_states=True.
    bool all_layers = false;
    /// Apply the final layer norm to the returned intermediate layers (DINOv2's
    /// get_intermediate_layers(norm=True)); HF's hidden_states are not normalised.
    bool normalize_layers = false;
};

/// Views of one N×T×D token tensor split by role.
struct TokenSplit {
    at::Tensor cls;        ///< N×D (undefined when the model has no CLS token)
    at::Tensor registers;  ///< N×R×D (R may be 0)
    at::Tensor patches;    ///< N×H'×W'×D
};

/// Everything one forward pass produces.
struct EncoderOutput {
    at::Tensor last_hidden_state;  ///< N×T×D, final layer norm applied (HF last_hidden_state)
    TokenSplit tokens;             ///< views of last_hidden_state
    std::int64_t grid_h = 0;       ///< H'
    std::int64_t grid_w = 0;       ///< W'
    /// Requested hidden states (N×T×D each), keyed by their non-negative index 0..L.
    std::map<int, at::Tensor> layers;
    /// The model's own pooled embedding, N×D' (HF pooler_output): ViT tanh(dense(CLS)), CLIP
    /// post_layernorm(CLS), SigLIP the attention-pooling head, DINOv3 the CLS token, ResNet and
    /// Swin the global average. Undefined for models without one (DINOv2, ViTMAE).
    at::Tensor pooled;
};

/// Splits an N×T×D sequence of this layout (CLS if has_cls, num_registers, grid) into
/// CLS/registers/patches.
TokenSplit split_tokens(const at::Tensor& sequence, std::int64_t num_registers, std::int64_t grid_h,
                        std::int64_t grid_w, bool has_cls = true);

/// A loaded encoder. Not thread-safe: one forward at a time (it reuses activation buffers).
class Encoder {
public:
    virtual ~Encoder() = default;
    const ModelConfig& config() const { return config_; }
    /// Whether token sequences start with a CLS token (the `cls` pooling needs one).
    bool has_cls_token() const { return config_.has_cls_token; }
    /// Register tokens after the CLS (DINOv2 with registers, DINOv3).
    std::int64_t num_register_tokens() const { return config_.num_register_tokens; }
    /// Channels the input must have: 3, or 1 after fold_grayscale().
    virtual std::int64_t input_channels() const = 0;
    /// Runs the model under inference mode. Throws InputError for a wrong channel count or an
    /// input smaller than one patch.
    virtual EncoderOutput forward(const at::Tensor& pixel_values,
                                  const ForwardOptions& options = {}) = 0;
    /// Folds grey replication and per-channel normalisation into the patch embedding:
    /// W'[:, 0] = Σ_c W[:, c] / std_c, b' = b − Σ_c (mean_c / std_c) Σ W[:, c]. The encoder then
    /// takes one channel: the rescaled grey image in [0,1] (no normalisation), and produces the
    /// same tokens as the 3-channel normalised input, at a third of the patch-embedding cost.
    virtual void fold_grayscale(const std::array<double, 3>& mean,
                                const std::array<double, 3>& std) = 0;
    /// Number of learned parameters.
    virtual std::int64_t num_parameters() const = 0;
    /// Approximate multiply-add FLOPs (×2) of one image at H×W (for throughput reports).
    virtual double flops_per_image(std::int64_t height, std::int64_t width) const = 0;

protected:
    explicit Encoder(ModelConfig config) : config_(std::move(config)) {}
    ModelConfig config_;
};

/// Builds the architecture named by config.json's model_type and loads its weights strictly:
/// every missing, unexpected and mis-shaped key is listed in one InputError. F16/BF16/F64
/// weights are converted to float32. `.bin`/`.pth` pickles are refused with conversion advice.
std::unique_ptr<Encoder> load_encoder(const std::filesystem::path& model_dir);

/// The tensors of a checkpoint (model.safetensors, a sharded index, or a .safetensors path),
/// floats converted to float32, integers to int64.
std::map<std::string, at::Tensor> load_safetensors_state(const std::filesystem::path& model_dir);

/// Sets LibTorch's intra-op thread count (threads <= 0: the cores available). Called by every
/// subcommand that runs a model: LibTorch starts at 1 thread on these machines.
int set_threads(int threads);

/// A human-readable summary of a model directory: architecture, width, depth, heads, patch,
/// native resolution, token layout, parameter count, preprocessing.
std::string describe_model_dir(const std::filesystem::path& model_dir);

/// .npy <-> tensor (float32 only; the tensor is copied, contiguous).
at::Tensor tensor_from_npy(const NpyArray& array);
NpyArray npy_from_tensor(const at::Tensor& tensor);

}  // namespace radprobe::encoders
