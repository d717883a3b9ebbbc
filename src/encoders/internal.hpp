#pragma once
// Private to the encoders component: the pieces shared between loading.cpp and
// the architecture translation units.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "architectures.hpp"
#include "attention_kernel.hpp"
#include "radprobe/encoders/encoder.hpp"

namespace radprobe::encoders::detail {

/// Query rows and key columns per tile of tiled_attention().
struct AttentionTiles {
    std::int64_t query_rows = 128;
    /// 0: as many keys as keep a query_rows × key_cols float32 score tile within 1 MiB.
    std::int64_t key_cols = 0;
    /// The AVX-512 kernel (attention_kernel.hpp) where the CPU has it and the rows are float32 on
    /// the CPU with contiguous columns; query_rows and key_cols then do not apply. false: the
    /// ATen path above (what the other CPUs and devices run).
    bool kernel = true;
};

/// The score and row-statistic buffers of tiled_attention(), grown on demand and reused.
struct AttentionScratch {
    at::Tensor scores, probs, row_max, row_new_max, row_sum, tile_sum, correction;
    KernelScratch kernel;
};

/// The activation buffers of the inference block stack for one (N·T, D) shape (row-major
/// (N·T)×D; N images of T tokens), reused across layers and calls.
struct BlockWorkspace {
    std::int64_t rows = -1, width = -1, hidden = -1;
    bool gated = false;
    at::Tensor x, h, q, k, v, ctx, tmp, up, gate, ln_mean, ln_rstd;
    std::vector<AttentionScratch> attention;  ///< one per thread
    AttentionTiles tiles;
};

/// What an architecture builder returns (architectures.hpp maps model_type to the builders).
/// The returned encoder has random (uninitialised) weights until load_state()
/// is called.
class LoadableEncoder : public Encoder {
public:
    using Encoder::Encoder;
    /// Called after the weights were loaded or moved (fuses/prepares derived
    /// tensors, drops caches). Default: checks that config.json's activation is known.
    virtual void prepare();
    /// The module's parameter count.
    std::int64_t num_parameters() const override;
    /// module().to(device), then prepare().
    void to(const c10::Device& device) override;
    void set_load_report(LoadReport report) { load_report_ = std::move(report); }

protected:
    /// pixel_values as contiguous float32 on the parameters' device.
    at::Tensor to_input(const at::Tensor& pixel_values) const;
};

/// A family whose forward is one functional pass over the module's parameters
/// (every family but DINOv2's buffer-reusing fast path): forward() runs it
/// under inference mode, forward_train() with autograd recording.
class FunctionalEncoder : public LoadableEncoder {
public:
    using LoadableEncoder::LoadableEncoder;
    EncoderOutput forward(const at::Tensor& pixel_values, const ForwardOptions& options) override;
    EncoderOutput forward_train(const at::Tensor& pixel_values,
                                const ForwardOptions& options) override;

protected:
    /// The pass; `train` = called from forward_train (no cached inference
    /// tensors).
    virtual EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& options,
                              bool train) = 0;
    /// The inference pass's block buffers (BlockStack::workspace).
    BlockWorkspace block_workspace_;
};

// --- Helpers shared by the architecture translation units (common.cpp). ---

/// An MLP of two linear layers named fc1 and fc2 (the HF CLIP and timm key names), hidden width
/// config.intermediate_size.
struct FcMlpImpl : torch::nn::Module {
    explicit FcMlpImpl(const ModelConfig& c);
    torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FcMlp);

/// `count` layers built from `options` in a ModuleList (the `encoder.layer.N.` key segment).
template <typename Layer, typename Options>
torch::nn::ModuleList layer_list(const Options& options, std::int64_t count) {
    torch::nn::ModuleList list;
    for (std::int64_t i = 0; i < count; ++i) {
        list->push_back(Layer(options));
    }
    return list;
}

/// Which hidden states 0..num_states-1 to return (negative indices count from
/// the end; out-of-range → UsageError).
std::vector<bool> wanted_states(const ForwardOptions& options, std::int64_t num_states);

/// Checks an N×C×H×W input: 4-D, `channels` channels, at least min_side ×
/// min_side, N >= 1.
void check_pixels(const at::Tensor& pixel_values, std::int64_t channels, std::int64_t min_side);

/// HF ACT2FN[name] on a tensor (gelu, gelu_new, gelu_pytorch_tanh, quick_gelu,
/// relu, silu); an unknown name → InputError naming config.json.
at::Tensor activation(const at::Tensor& x, const std::string& name, const ModelConfig& config);
/// Throws InputError for an activation activation() does not know.
void check_activation(const std::string& name, const ModelConfig& config);

/// Eager softmax attention on N×heads×T×hd tensors (HF
/// eager_attention_forward): returns N×T×(heads·hd).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

/// One pre-LN transformer block as tensors (the module's parameters, or views
/// of them):
///   x += ls1 · o(MHA(ln1(x)));   x += ls2 · mlp(ln2(x))
/// mlp = fc2(act(fc1(h))), or with gate_w defined the gated form
/// fc2(act(gate(h)) · fc1(h)). Undefined biases / layer scales are absent (no
/// bias, scale 1).
struct PreLnBlock {
    at::Tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ls1;
    at::Tensor ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, gate_w, gate_b, ls2;
    /// The MLP activation when it is not config.hidden_act (DINOv2's SwiGLU:
    /// "silu").
    std::string act;
    /// RMSNorm (ln*_w only: x · rsqrt(mean(x²) + eps) · w, AIMv2) instead of LayerNorm.
    bool rms_norm = false;
};

/// HF's RMSNorm (Aimv2RMSNorm): x · rsqrt(mean over the last dimension of x² + eps), computed in
/// float32, back in x's dtype, times `weight`.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

/// `b` with every weight in `type` (views stay views when they already are).
PreLnBlock block_in_dtype(PreLnBlock b, c10::ScalarType type);

/// One head of softmax attention, out = softmax(scale · q kᵀ) v, for q T_q×hd and k, v T_k×hd
/// (2-D views with any row stride; out likewise, written in place). Tiled over query rows; when
/// the keys exceed one key tile, an online softmax over key tiles (the FlashAttention
/// recurrence: a running row maximum and sum rescale what earlier tiles accumulated). No
/// T_q × T_k buffer exists. Float32 CPU rows on a CPU with AVX-512 go to avx512_attention()
/// instead (tiles.kernel).
void tiled_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                     at::Tensor out, AttentionScratch& scratch, const AttentionTiles& tiles = {});

/// pre_ln_block() on the tokens in ws.x (N·T × D), in place, through the workspace's buffers
/// (float32, inference, CPU): LibTorch's threads share the rows (norms, projections, MLP) and
/// the (image, head) pairs (attention), each calling BLAS on one thread.
void pre_ln_block_in_place(BlockWorkspace& ws, const PreLnBlock& block, std::int64_t n,
                           std::int64_t heads, const ModelConfig& config,
                           const std::function<at::Tensor(const at::Tensor&)>& rotate = {});

/// A block from its modules (fc1/fc2: the MLP's first and second linear; no gate, no scales).
PreLnBlock make_pre_ln_block(const torch::nn::LayerNorm& ln1, const torch::nn::Linear& q,
                             const torch::nn::Linear& k, const torch::nn::Linear& v,
                             const torch::nn::Linear& o, const torch::nn::LayerNorm& ln2,
                             const torch::nn::Linear& fc1, const torch::nn::Linear& fc2);

/// Applies `block` to N×T×D tokens (eager softmax attention, scale
/// head_dim^-0.5). `rotate` (optional) is applied to the N×heads×T×hd queries
/// and keys (DINOv3's RoPE).
at::Tensor pre_ln_block(const at::Tensor& x, const PreLnBlock& block, std::int64_t heads,
                        const ModelConfig& config,
                        const std::function<at::Tensor(const at::Tensor&)>& rotate = {});

/// The patch grid of an N×C×H×W input for patches of `patch` (after check_pixels).
struct PatchGrid {
    std::int64_t n = 0, gh = 0, gw = 0;
};
PatchGrid patch_grid(const at::Tensor& pixel_values, std::int64_t patch);

/// The HF ViT / timm token sequence: [CLS + its position, patches + the patch positions], from
/// a learned table [1, 1 + g0·g0, D] whose patch part is resized to gh × gw (resize_positions).
/// `cls` is [1, 1, D]; `patches` N×(gh·gw)×D.
at::Tensor cls_and_patches(const at::Tensor& cls, const at::Tensor& table,
                           const at::Tensor& patches, std::int64_t g0, std::int64_t gh,
                           std::int64_t gw);

/// The patch embedding of a ViT-like family: a stride-`patch` convolution, flattened to N×G×D
/// (patches in row-major grid order).
at::Tensor embed_patches(const at::Tensor& pixels, const at::Tensor& weight, const at::Tensor& bias,
                         std::int64_t patch);

/// The block stack every ViT-like family shares, seen through its hooks:
///  - block(i): the i-th pre-LN block as tensors (views of the module's parameters);
///  - norm: the norm applied to a kept hidden state when ForwardOptions::normalize_layers (the
///    model's final norm);
///  - rotate: applied to the queries and keys of every block (DINOv3's RoPE; empty = none).
struct BlockStack {
    BlockStack() = default;
    /// num_hidden_layers blocks of num_attention_heads heads; norm = LayerNorm with this weight
    /// and bias at config.layer_norm_eps.
    BlockStack(const ModelConfig& config, const at::Tensor& norm_weight,
               const at::Tensor& norm_bias);

    std::int64_t num_layers = 0;
    std::int64_t heads = 0;
    std::function<PreLnBlock(std::int64_t i)> block;
    std::function<at::Tensor(const at::Tensor&)> norm;
    std::function<at::Tensor(const at::Tensor&)> rotate;
    /// Buffers the float32 inference pass reuses across calls (null: one per call).
    BlockWorkspace* workspace = nullptr;
};

/// Runs the blocks on the embedded tokens `x` (N×T×D: prefix tokens, then patches), storing the
/// hidden states `options` asks for in out.layers (state 0 = the embeddings); returns the
/// tokens after the last block (before the final norm).
at::Tensor run_blocks(at::Tensor x, const BlockStack& stack, const ModelConfig& config,
                      const ForwardOptions& options, EncoderOutput& out);

/// run_blocks() under inference mode in float32 on the CPU: the blocks run in place in the
/// stack's workspace (pre_ln_block_in_place); `want` = wanted_states(options, num_layers + 1),
/// state 0 already kept by the caller.
at::Tensor run_blocks_in_workspace(const at::Tensor& x, const BlockStack& stack,
                                   const ModelConfig& config, const std::vector<bool>& want,
                                   const ForwardOptions& options, EncoderOutput& out);

/// Splits N×T×D into N×heads×T×hd.
at::Tensor split_heads(const at::Tensor& x, std::int64_t heads);

/// Resizes the patch part of a learned position table [1, g0·g0, D] to gh × gw
/// (torch bicubic, align_corners=False, no antialias, in float32 — the HF
/// ViT/CLIP/SigLIP rule). Returns [1, gh·gw, D]; the table itself when the grid
/// is native.
at::Tensor resize_positions(const at::Tensor& table, std::int64_t g0, std::int64_t gh,
                            std::int64_t gw);

/// fold_patch_conv() applied to a patch embedding with a bias: weight [D, 3, k, k] → [D, 1, k, k],
/// the shift added to the bias.
void fold_patch_embedding(at::Tensor& weight, at::Tensor& bias, const std::array<double, 3>& mean,
                          const std::array<double, 3>& std);

/// Folds grey replication and per-channel normalisation into a patch-embedding
/// convolution (no padding): weight [D, 3, k, k] → [D, 1, k, k]; returns the
/// bias shift to ADD (−Σ_c (mean_c/std_c) Σ W[:, c]); the caller adds it to the
/// bias (or keeps it when there is none).
at::Tensor fold_patch_conv(at::Tensor& weight, const std::array<double, 3>& mean,
                           const std::array<double, 3>& std);

/// Approximate FLOPs of a plain pre-LN ViT (patch conv + per-layer attention
/// and 2-layer MLP) with `prefix` tokens (CLS, registers) before the H/p × W/p
/// patches.
double vit_flops(const ModelConfig& config, std::int64_t channels, std::int64_t prefix,
                 std::int64_t height, std::int64_t width);

/// Parameters of a module.
std::int64_t count_parameters(const torch::nn::Module& module);

/// SAM2's FPN neck (HF Sam2VisionNeck) and its sine position encoding, outside EncoderOutput
/// (what SAM2's mask decoder reads, not image features): the levels HF's Sam2VisionModel
/// returns as fpn_hidden_states and fpn_position_encoding, finest first, each N×F×h×w.
struct Sam2Fpn {
    std::vector<at::Tensor> hidden_states, position_encoding;
};
/// The neck of a sam2_vision_model encoder on its stage maps (EncoderOutput::pyramid);
/// UsageError for another encoder.
Sam2Fpn sam2_fpn(const Encoder& encoder, const std::vector<at::Tensor>& stage_maps);
/// HF Sam2SinePositionEmbedding (normalised, scale 2π, temperature 10000) of an h × w map with
/// `channels` channels (the first half from the row, the second from the column; sin on even,
/// cos on odd channels), N×channels×h×w, float32.
at::Tensor sam2_position_encoding(std::int64_t n, std::int64_t channels, std::int64_t h,
                                  std::int64_t w, const at::TensorOptions& options = {});

/// VMamba's intermediate maps of one forward pass (what the publisher's forward hooks capture),
/// each N×C×h×w: the stem's output, every stage's blocks' output (before its downsample), every
/// downsample's output (the next stage's input), the final map after classifier.norm.
struct VmambaTrace {
    at::Tensor patch_embed;
    std::vector<at::Tensor> stages, downsamples;
    at::Tensor classifier_norm;
};
/// vmamba_trace(): a forward pass (inference mode) of a vmamba encoder that keeps its maps;
/// UsageError for another encoder.
VmambaTrace vmamba_trace(Encoder& encoder, const at::Tensor& pixel_values);

/// One SS2D's internals (the publisher's forward_corev2 debug record): the scan input u and the
/// pre-bias delta, N×(4·Di)×L (direction k in rows k·Di..); B and C, N×4×d_state×L; the scan's
/// output per direction in its own order (D·u included), N×4×Di×L; the merged y before out_norm,
/// N×Di×H×W; and the SS2D's output, N×C×H×W.
struct VmambaSs2dTrace {
    at::Tensor us, dts, bs, cs, ys, y, output;
};
/// The SS2D of layers[stage].blocks[block] on `input` (N×C×H×W: the block's normalised input),
/// inference mode; UsageError for another encoder or a block that does not exist.
VmambaSs2dTrace vmamba_ss2d(Encoder& encoder, std::int64_t stage, std::int64_t block,
                            const at::Tensor& input);
/// How vmamba_selective_scan computes: the differentiable loop of one tensor operation per step
/// (what other devices run); the float32 CPU autograd node in scan order (what fine-tuning and
/// the SS2D trace run); the float32 CPU loop in position order (what inference runs).
enum class VmambaScan { kTensorLoop, kCpuNode, kCpuByPosition };
/// VMamba's selective scan (csms6s.selective_scan_torch's maths) and cross merge on the publisher's
/// scan-order tensors of an h × w map: u, dts N×(4·Di)×L (dts before dt_bias and softplus),
/// a_logs (4·Di)×Ns, bs, cs N×4×Ns×L, ds 4·Di, dt_bias 4×Di; returns the merged y N×Di×h×w
/// (differentiable except kCpuByPosition, whose inputs are moved to position order first).
at::Tensor vmamba_selective_scan(const at::Tensor& u, const at::Tensor& dts,
                                 const at::Tensor& a_logs, const at::Tensor& bs,
                                 const at::Tensor& cs, const at::Tensor& ds,
                                 const at::Tensor& dt_bias, std::int64_t h, std::int64_t w,
                                 VmambaScan how);

}  // namespace radprobe::encoders::detail
