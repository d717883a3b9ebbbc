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
///    has_cls_token() is false: SigLIP, ResNet, Swin, SAM2), R register tokens, patches in
///    row-major (y, x) order], H' = H / p, W' = W / p (integer division) for the ViTs.
///  - hierarchical models (ResNet, Swin, SAM2's Hiera): the "patch tokens" are the last
///    stage's grid (C = R = 0, D = its channel count), so the same pooling modes apply; HF's
///    N×C×H×W ResNet maps are returned as N×(H·W)×C tokens, and the hidden states are the
///    per-stage outputs (index 0 = stem / patch embedding, i = stage i), each as N×(h·w)×C_i
///    tokens.
///  - patch grid: N×H'×W'×D.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/model_dir.hpp"

namespace torch::nn {
class Module;
}

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
    /// Swin the global average, open_clip's class token after the trunk's final norm; SAM2
    /// (no HF pooler) the global average of the last stage, as ResNet and Swin.
    /// Undefined for models without one (DINOv2, ViTMAE).
    at::Tensor pooled;
    /// The image-text projection of `pooled`, N×E: HF CLIPVisionModelWithProjection's
    /// image_embeds (visual_projection), open_clip's visual.head.proj output (BiomedCLIP).
    /// Undefined when the checkpoint has no projection (ModelConfig::projection_dim == 0).
    at::Tensor projected;
    /// Multi-scale feature maps for dense (segmentation) decoders, finest first, each
    /// N×C_i×h_i×w_i (views, channel-first as convolutional decoders expect):
    ///  - Swin: every stage's output BEFORE its patch merging (HF SwinBackbone's feature maps,
    ///    without the backbone-only per-stage norms), stride embed_patch_size·2^i, C_i =
    ///    embed_dim·2^i; the last entry is the last stage before the final layernorm.
    ///  - ResNet: every stage's output (HF hidden_states 1..S as maps).
    ///  - SAM2: every trunk stage's output (HF Sam2HieraDetModel's intermediate_hidden_states,
    ///    strides 4·2^i), what its FPN neck reads (detail::sam2_fpn, outside this struct).
    /// Empty for the single-scale ViTs (use tokens.patches / layers there).
    std::vector<at::Tensor> pyramid;
};

/// Splits an N×T×D sequence of this layout (CLS if has_cls, num_registers, grid) into
/// CLS/registers/patches.
TokenSplit split_tokens(const at::Tensor& sequence, std::int64_t num_registers, std::int64_t grid_h,
                        std::int64_t grid_w, bool has_cls = true);

/// What load_encoder() read and how: the file format, what the weights were stored as, the
/// prefix stripped from the backbone keys and what was set aside (task heads, decoders, text
/// towers), for `radprobe models` and one note line in the commands that load a model.
struct LoadReport {
    std::string format;                          ///< "safetensors", "safetensors, 3 shards", ...
    std::vector<std::string> files;              ///< the weight files read (names in the folder)
    std::map<std::string, std::int64_t> dtypes;  ///< stored dtype name → tensor count
    std::int64_t stored_bytes = 0;               ///< bytes of every tensor as stored
    std::int64_t held_bytes = 0;                 ///< bytes of the backbone weights as held
    std::string held_dtype = "float32";  ///< "float32", or "blocks as bf16, the rest float32"
    std::string entry;  ///< the pickle's top-level entry holding the weights ("" = the top level)
    bool module_prefix_stripped = false;  ///< DataParallel's "module." removed from every key
    std::string key_names;                ///< how non-HF key names were read ("" = the HF names)
    std::string prefix;                   ///< stripped from the backbone keys ("" = none)
    std::int64_t ignored_tensors = 0;     ///< checkpoint tensors outside the backbone
    std::string ignored;                  ///< those grouped ("classifier.* (2 tensors)")
    bool pooler_absent = false;           ///< a ViT checkpoint without pooler: no pooled output
    /// One line: what was stripped and ignored ("" when the checkpoint is exactly the backbone).
    std::string note() const;
};

/// A loaded encoder. Not thread-safe: one forward at a time (it reuses activation buffers).
///
/// Training API (fine-tuning, layer-wise learning-rate decay): module() exposes the parameters
/// under their checkpoint key names, forward_train() is the differentiable forward,
/// to() moves the weights, layer_id() maps a parameter to its depth and save_pretrained()
/// writes a directory load_encoder() reads back.
class Encoder {
public:
    virtual ~Encoder() = default;
    /// The LibTorch module holding every parameter and buffer, named exactly like the
    /// checkpoint keys (e.g. "encoder.layer.3.attention.attention.query.weight"). The module
    /// is in eval() mode; ResNet's BatchNorm uses batch statistics (and updates its running
    /// statistics) in forward_train() only after module().train().
    virtual torch::nn::Module& module() = 0;
    const torch::nn::Module& module() const { return const_cast<Encoder*>(this)->module(); }
    /// The same outputs as forward() (max-abs difference ~1e-6 from summation order), but
    /// differentiable: no inference mode, no reused buffers or cached tables, so gradients
    /// reach every parameter used. pixel_values are moved to the encoder's device.
    virtual EncoderOutput forward_train(const at::Tensor& pixel_values,
                                        const ForwardOptions& options = {}) = 0;
    /// Moves every parameter and buffer to `device` (forward() and forward_train() then run
    /// there; inputs are moved to it).
    virtual void to(const c10::Device& device) = 0;
    /// Where the parameters are.
    c10::Device device() const;
    /// Transformer blocks (ViTs) or stages (ResNet, Swin).
    int num_blocks() const;
    /// Depth of a parameter for layer-wise learning-rate decay: 0 = embeddings (patch/position
    /// embedding, CLS/register tokens, CLIP's pre-layernorm, ResNet's stem), i = transformer
    /// block / stage i (1-based; Swin's patch merging belongs to the stage that holds it),
    /// num_blocks() + 1 = everything after the last block (final norm, pooler, heads,
    /// projection). An unknown name → UsageError.
    int layer_id(const std::string& param_name) const;
    /// Writes config.json, model.safetensors (every parameter and buffer under its checkpoint
    /// key, floats as F32, integer buffers as I64) and preprocessor_config.json (when the
    /// source directory had one), each atomically, into `dir` (created), so that
    /// load_encoder(dir) rebuilds the same model. An encoder whose patch embedding was folded
    /// (fold_grayscale) is refused with an InputError: it no longer has the checkpoint layout.
    void save_pretrained(const std::filesystem::path& dir) const;
    const ModelConfig& config() const { return config_; }
    /// How the weights were read (empty for an encoder not built by load_encoder).
    const LoadReport& load_report() const { return load_report_; }
    /// Whether token sequences start with a CLS token (the `cls` pooling needs one).
    bool has_cls_token() const { return config_.has_cls_token; }
    /// Register tokens after the CLS (DINOv2 with registers, DINOv3).
    std::int64_t num_register_tokens() const { return config_.num_register_tokens; }
    /// Channels the input must have: 3, or 1 after fold_grayscale().
    virtual std::int64_t input_channels() const = 0;
    /// Runs the model under inference mode (inputs are moved to the encoder's device). Throws
    /// InputError for a wrong channel count or an input smaller than one patch.
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
    LoadReport load_report_;
};

/// "cpu", "cuda" or "cuda:N" (`--device`, a config's `device`). Throws UsageError on anything
/// else, and InputError when CUDA is requested but LibTorch has no CUDA device (or fewer than
/// N + 1 devices).
c10::Device parse_device(const std::string& text);

/// Builds the architecture named by config.json's model_type and loads its weights as Hugging
/// Face's from_pretrained does: the backbone may sit under a prefix (`vit.`, `dinov2.`, `swin.`,
/// `resnet.`, `module.`: stripped), tensors outside the backbone (classifier heads, MAE decoders,
/// CLIP/SigLIP text towers, logit scales) are set aside (LoadReport), a ViT checkpoint without
/// pooler loads without one (EncoderOutput::pooled undefined). Strict about the backbone: a
/// missing or mis-shaped backbone key, or a key inside a backbone module that the architecture
/// does not have, is one InputError that counts them, quotes a few and says what the keys look
/// like (a timm / torchvision / open_clip / other HF layout, a common prefix). F16/BF16/F64
/// weights are converted to float32. Weights: find_weight_files(); PyTorch pickles are read by
/// the weights-only reader of torch_pickle.hpp (nothing in them is executed); a training
/// checkpoint's weights are taken from options.checkpoint_key (or the folder's
/// radprobe_load.json), else from the entry TorchCheckpoint::state_dict_tensors finds.
std::unique_ptr<Encoder> load_encoder(const std::filesystem::path& model_dir,
                                      const LoadOptions& options = {});

/// The tensors of a checkpoint (find_weight_files: safetensors, a sharded index, a PyTorch
/// pickle's state dict, or a path to one such file), floats converted to float32, integers to
/// int64.
std::map<std::string, at::Tensor> load_safetensors_state(const std::filesystem::path& model_dir);

/// Sets LibTorch's intra-op thread count (threads <= 0: the cores available). Called by every
/// subcommand that runs a model: LibTorch starts at 1 thread on these machines.
int set_threads(int threads);

/// A human-readable summary of a model directory: architecture, width, depth, heads, patch,
/// native resolution, token layout, parameter count, preprocessing.
std::string describe_model_dir(const std::filesystem::path& model_dir,
                               const LoadOptions& options = {});

/// Forward throughput of an encoder at one input size and batch size.
struct Throughput {
    int size = 0;      ///< input side, px (square input)
    int batch = 0;     ///< images per forward pass
    int forwards = 0;  ///< timed forward passes (after one warm-up)
    double images_per_second = 0;
    double gflops_per_second = 0;  ///< flops_per_image × images/s
};

/// A short calibration on this machine: for each batch size, one warm-up forward (buffers,
/// interpolated positions), then forwards of random input until `seconds` have passed (at
/// least one). Batch sizes are tried in the order given; a batch whose throughput falls more
/// than 10% below the best so far ends the sweep (larger batches only cost memory after that).
std::vector<Throughput> calibrate(Encoder& encoder, int size, const std::vector<int>& batches,
                                  double seconds);

/// .npy <-> tensor (float32 only; the tensor is copied, contiguous).
at::Tensor tensor_from_npy(const NpyArray& array);
NpyArray npy_from_tensor(const at::Tensor& tensor);

}  // namespace radprobe::encoders
