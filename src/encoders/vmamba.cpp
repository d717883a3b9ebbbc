// VMamba (MzeroMiko/VMamba classification/models/vmamba.py VSSM, model_type "vmamba"): the
// released v2 classifiers (forward_type v05_noz, LayerNorm2d, patch embedding v2, downsample v3),
// read from the publisher's own .pth (vmamba_layout.cpp derives the config from its keys).
//
// Module tree = the publisher's key tree: patch_embed.{0, 2, 5, 7}, layers.S.{blocks.B.{norm,
// op.{in_proj, conv2d, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, out_norm,
// out_proj}, norm2, mlp.{fc1, fc2}}, downsample.{1, 3}}, classifier.{norm, head}.
// The publisher computes channel-first (NCHW, Linear2d = 1x1 convolution, LayerNorm2d over the
// channels); here activations are channel-last N×H×W×C, which is the same arithmetic: a 1x1
// convolution is a linear map of each pixel's channels and LayerNorm2d a LayerNorm of them.
//
// Stem: conv 3x3/2 (pad 1) → LN → GELU → conv 3x3/2 → LN (each side ceil(n/2)). Block (pre-norm):
//   x += SS2D(norm(x));  x += fc2(GELU(fc1(norm2(x)))).
// SS2D (v05_noz): u = SiLU(dwconv_k(in_proj(x))) (no z gate); the cross scan lays u out in four
// orders (row-major, column-major and both reversed) as K = 4 sequences of L = H·W; per
// direction k: [dt; B; C] = x_proj_weight[k] · u_k, delta = softplus(dt_projs_weight[k] · dt +
// dt_projs_bias[k]); then for every channel c (direction k = c / d_inner) the selective scan
//   h_l = exp(delta_l · A_c) ⊙ h_{l-1} + delta_l · B_l · u_l,   y_l = C_l · h_l + D_c · u_l
// with A = −exp(A_logs), h ∈ R^d_state, sequential over l in the direction's own order, float32;
// the cross merge maps the four outputs back to row-major positions and sums them; then
// out_proj(out_norm(y)). Downsample: conv 3x3/2 → LN. Classifier: norm (LN) → global mean → head.
// The scan runs as a loop over L, in float32. Inference on the CPU: a plain loop per (image,
// channel), split over threads, that follows each direction's order through the row-major map
// and adds the four outputs in place (no scan-order copies, no separate merge). Fine-tuning on
// the CPU: the publisher's layout (cross scan, scan, cross merge) with the scan as one autograd
// node whose forward and backward are plain loops (ScanNode). Other devices: the same layout
// with one tensor operation per step over all images and channels (scan_graph).
// Token view (hierarchical, as Swin and SAM2): the last stage's grid after classifier.norm is the
// patch tokens (no CLS); pooled = their mean (the publisher's classifier before its head);
// hidden state 0 = the stem's output, i = stage i's blocks' output before its downsample, each
// N×(h·w)×C_i; pyramid = those stage outputs as N×C_i×h_i×w_i.

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/parallel.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace nn = torch::nn;

constexpr std::int64_t kDirections = 4;
constexpr std::int64_t kStride = 2;  // the stem's and the downsamples' convolutions

nn::LayerNorm layer_norm(std::int64_t dim, double eps) {
    return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(eps));
}

/// A k×k convolution padded by (k − 1) / 2.
nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride,
                std::int64_t groups, bool bias) {
    return nn::Conv2d(nn::Conv2dOptions(in, out, k)
                          .stride(stride)
                          .padding((k - 1) / 2)
                          .groups(groups)
                          .bias(bias));
}

/// The publisher's Linear2d (a 1x1 convolution holding an nn.Linear weight [out, in], or
/// [out, in, 1, 1] when the checkpoint stores it so) on channel-last N×H×W×in maps.
struct Linear2dImpl : nn::Module {
    Linear2dImpl(std::int64_t in, std::int64_t out, bool with_bias, bool four_d) {
        weight = register_parameter(
            "weight", four_d ? torch::zeros({out, in, 1, 1}) : torch::zeros({out, in}));
        if (with_bias) {
            bias = register_parameter("bias", torch::zeros({out}));
        }
    }
    at::Tensor forward(const at::Tensor& x) const { return at::linear(x, weight.flatten(1), bias); }
    at::Tensor weight, bias;
};
TORCH_MODULE(Linear2d);

struct PatchEmbedImpl : nn::Module {
    explicit PatchEmbedImpl(const ModelConfig& c) {
        const auto c0 = c.stage_widths.front();
        conv1 = register_module("0", conv(c.num_channels, c0 / 2, 3, kStride, 1, true));
        norm1 = register_module("2", layer_norm(c0 / 2, c.layer_norm_eps));
        conv2 = register_module("5", conv(c0 / 2, c0, 3, kStride, 1, true));
        norm2 = register_module("7", layer_norm(c0, c.layer_norm_eps));
    }
    nn::Conv2d conv1{nullptr}, conv2{nullptr};
    nn::LayerNorm norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(PatchEmbed);

struct SS2DImpl : nn::Module {
    SS2DImpl(const ModelConfig& c, std::size_t s)
        : d_inner(c.vmamba.d_inner[s]), d_state(c.vmamba.d_state), dt_rank(c.vmamba.dt_ranks[s]) {
        const auto dim = c.stage_widths[s];
        const bool four_d = c.vmamba.linear_weights_4d;
        in_proj = register_module("in_proj", Linear2d(dim, d_inner, false, four_d));
        conv2d =
            register_module("conv2d", conv(d_inner, d_inner, c.vmamba.conv, 1, d_inner, false));
        x_proj_weight = register_parameter(
            "x_proj_weight", torch::zeros({kDirections, dt_rank + 2 * d_state, d_inner}));
        dt_projs_weight =
            register_parameter("dt_projs_weight", torch::zeros({kDirections, d_inner, dt_rank}));
        dt_projs_bias = register_parameter("dt_projs_bias", torch::zeros({kDirections, d_inner}));
        A_logs = register_parameter("A_logs", torch::zeros({kDirections * d_inner, d_state}));
        Ds = register_parameter("Ds", torch::ones({kDirections * d_inner}));
        out_norm = register_module("out_norm", layer_norm(d_inner, c.layer_norm_eps));
        out_proj = register_module("out_proj", Linear2d(d_inner, dim, false, four_d));
    }
    std::int64_t d_inner, d_state, dt_rank;
    Linear2d in_proj{nullptr}, out_proj{nullptr};
    nn::Conv2d conv2d{nullptr};
    at::Tensor x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds;
    nn::LayerNorm out_norm{nullptr};
};
TORCH_MODULE(SS2D);

struct MlpImpl : nn::Module {
    MlpImpl(std::int64_t dim, std::int64_t hidden, bool four_d) {
        fc1 = register_module("fc1", Linear2d(dim, hidden, true, four_d));
        fc2 = register_module("fc2", Linear2d(hidden, dim, true, four_d));
    }
    Linear2d fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

struct VSSBlockImpl : nn::Module {
    VSSBlockImpl(const ModelConfig& c, std::size_t s) {
        const auto dim = c.stage_widths[s];
        norm = register_module("norm", layer_norm(dim, c.layer_norm_eps));
        op = register_module("op", SS2D(c, s));
        norm2 = register_module("norm2", layer_norm(dim, c.layer_norm_eps));
        mlp = register_module("mlp", Mlp(dim, c.vmamba.mlp_hidden[s], c.vmamba.linear_weights_4d));
    }
    nn::LayerNorm norm{nullptr}, norm2{nullptr};
    SS2D op{nullptr};
    Mlp mlp{nullptr};
};
TORCH_MODULE(VSSBlock);

/// Downsample v3: conv 3x3/2 (index 1) and LayerNorm2d (index 3).
struct DownsampleImpl : nn::Module {
    DownsampleImpl(std::int64_t dim, std::int64_t out, double eps) {
        conv1 = register_module("1", conv(dim, out, 3, kStride, 1, true));
        norm = register_module("3", layer_norm(out, eps));
    }
    nn::Conv2d conv1{nullptr};
    nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Downsample);

struct StageImpl : nn::Module {
    StageImpl(const ModelConfig& c, std::size_t s) {
        blocks = register_module("blocks", nn::ModuleList());
        for (std::int64_t b = 0; b < c.depths[s]; ++b) {
            blocks->push_back(VSSBlock(c, s));
        }
        if (s + 1 < c.depths.size()) {
            downsample = register_module(
                "downsample",
                Downsample(c.stage_widths[s], c.stage_widths[s + 1], c.layer_norm_eps));
        }
    }
    nn::ModuleList blocks{nullptr};
    Downsample downsample{nullptr};
};
TORCH_MODULE(Stage);

/// The publisher's classifier: norm → average pool → head (the head is kept so that the
/// checkpoint loads as one; radprobe's outputs stop at the pooled features).
struct ClassifierImpl : nn::Module {
    explicit ClassifierImpl(const ModelConfig& c) {
        norm = register_module("norm", layer_norm(c.hidden_size, c.layer_norm_eps));
        if (c.vmamba.num_classes > 0) {
            head = register_module("head", nn::Linear(c.hidden_size, c.vmamba.num_classes));
        }
    }
    nn::LayerNorm norm{nullptr};
    nn::Linear head{nullptr};
};
TORCH_MODULE(Classifier);

struct VssmImpl : nn::Module {
    explicit VssmImpl(const ModelConfig& c) {
        patch_embed = register_module("patch_embed", PatchEmbed(c));
        layers = register_module("layers", nn::ModuleList());
        for (std::size_t s = 0; s < c.depths.size(); ++s) {
            layers->push_back(Stage(c, s));
        }
        classifier = register_module("classifier", Classifier(c));
    }
    PatchEmbed patch_embed{nullptr};
    nn::ModuleList layers{nullptr};
    Classifier classifier{nullptr};
};
TORCH_MODULE(Vssm);

// --- The selective scan ------------------------------------------------------------------

/// One scan over K·Di channels in the scan order of each direction: u and delta (after the bias
/// and softplus) N×KD×L, a = A (KD×Ns, negative), bs and cs N×K×Ns×L (shared by the Di channels
/// of a direction), d = D (KD).
struct ScanInputs {
    at::Tensor u, delta, a, bs, cs, d;
};

ScanInputs scan_inputs(const at::Tensor& u, const at::Tensor& dts, const at::Tensor& a_logs,
                       const at::Tensor& bs, const at::Tensor& cs, const at::Tensor& ds,
                       const at::Tensor& dt_bias) {
    return {u, at::softplus(dts + dt_bias.reshape({-1}).unsqueeze(-1)), -at::exp(a_logs), bs, cs,
            ds};
}

/// B or C (N×K×Ns×L) for every channel of its direction: N×KD×L×Ns.
at::Tensor per_channel(const at::Tensor& t, std::int64_t kd) {
    const auto n = t.size(0), k = t.size(1), ns = t.size(2), len = t.size(3);
    return t.unsqueeze(2).expand({n, k, kd / k, ns, len}).reshape({n, kd, ns, len}).transpose(2, 3);
}

/// The recurrence as one tensor operation per step over all images and channels, in scan order
/// (differentiable, any device): the per-direction outputs N×KD×L.
at::Tensor scan_graph(const ScanInputs& s) {
    const auto n = s.u.size(0), kd = s.u.size(1), len = s.u.size(2), ns = s.bs.size(2);
    const auto decay = at::exp(s.delta.unsqueeze(-1) * s.a.unsqueeze(1));  // N×KD×L×Ns
    const auto drive = (s.delta * s.u).unsqueeze(-1) * per_channel(s.bs, kd);
    auto h = at::zeros({n, kd, ns}, s.u.options());
    std::vector<at::Tensor> states;
    states.reserve(static_cast<std::size_t>(len));
    for (std::int64_t l = 0; l < len; ++l) {
        h = decay.select(2, l) * h + drive.select(2, l);
        states.push_back(h);
    }
    return (at::stack(states, 2) * per_channel(s.cs, kd)).sum(-1) + s.d.unsqueeze(-1) * s.u;
}

/// The forward of ScanNode: the recurrence of rows [begin, end) of the N·KD (image, channel)
/// pairs in scan order, keeping every state (N×KD×L×Ns) for the backward.
struct NodeForward {
    const float *decay, *drive, *b, *c, *u, *d;
    float *y, *states;
    std::int64_t kd, len, k, ns;

    void rows(std::size_t begin, std::size_t end) const {
        const std::int64_t di = kd / k;
        for (auto row = static_cast<std::int64_t>(begin); row < static_cast<std::int64_t>(end);
             ++row) {
            const std::int64_t channel = row % kd, shared = ((row / kd) * k + channel / di) * ns;
            const float* a = decay + row * len * ns;
            float* h = states + row * len * ns;
            for (std::int64_t l = 0; l < len; ++l) {
                float acc = 0.0f;
                for (std::int64_t j = 0; j < ns; ++j) {
                    const float previous = l > 0 ? h[(l - 1) * ns + j] : 0.0f;
                    h[l * ns + j] =
                        a[l * ns + j] * previous + drive[row * len + l] * b[(shared + j) * len + l];
                    acc += c[(shared + j) * len + l] * h[l * ns + j];
                }
                y[row * len + l] = acc + d[channel] * u[row * len + l];
            }
        }
    }
};

/// The backward of ScanNode for one (image, direction) pair at a time, so that the gradients of
/// B and C (shared by the direction's channels) have one writer; A's and D's are kept per image
/// and summed afterwards. From the end: g_h = gy_l·C_l + g_{h_{l+1}}·decay_{l+1}, and through
/// h_l = decay_l·h_{l−1} + delta_l·B_l·u_l with decay_l = exp(delta_l·A).
struct NodeBackward {
    const float *gy, *u, *delta, *a, *b, *c, *d, *decay, *states;
    float *gu, *gdelta, *ga, *gb, *gc, *gd;  // ga: N×KD×Ns, gd: N×KD (per image)
    std::int64_t kd, len, k, ns;

    void channel(std::int64_t image, std::int64_t dir, std::int64_t ch,
                 std::vector<float>& carry) const {
        const std::int64_t row = image * kd + ch, shared = (image * k + dir) * ns;
        std::fill(carry.begin(), carry.end(), 0.0f);
        for (std::int64_t l = len - 1; l >= 0; --l) {
            const std::int64_t at = row * len + l;
            const float g_y = gy[at], u_l = u[at], delta_l = delta[at];
            float g_u = g_y * d[ch], g_delta = 0.0f;
            gd[row] += g_y * u_l;
            for (std::int64_t j = 0; j < ns; ++j) {
                const std::int64_t bc = (shared + j) * len + l, s = at * ns + j;
                const float previous = l > 0 ? states[s - ns] : 0.0f;
                const float g_h = carry[static_cast<std::size_t>(j)] + g_y * c[bc];
                gc[bc] += g_y * states[s];
                g_delta += g_h * (previous * decay[s] * a[ch * ns + j] + b[bc] * u_l);
                ga[row * ns + j] += g_h * previous * decay[s] * delta_l;
                gb[bc] += g_h * delta_l * u_l;
                g_u += g_h * delta_l * b[bc];
                carry[static_cast<std::size_t>(j)] = g_h * decay[s];
            }
            gu[at] = g_u;
            gdelta[at] = g_delta;
        }
    }

    void pairs(std::size_t begin, std::size_t end) const {
        std::vector<float> carry(static_cast<std::size_t>(ns));
        const std::int64_t di = kd / k;
        for (auto p = static_cast<std::int64_t>(begin); p < static_cast<std::int64_t>(end); ++p) {
            const std::int64_t image = p / k, dir = p % k;
            for (std::int64_t ch = dir * di; ch < (dir + 1) * di; ++ch) {
                channel(image, dir, ch, carry);
            }
        }
    }
};

float* f32(const at::Tensor& t) {
    return t.data_ptr<float>();
}

/// The selective scan in scan order as one autograd node over float32 CPU tensors (ScanInputs'
/// layout; what fine-tuning runs on the CPU): a plain loop forward that keeps its states, and a
/// plain loop backward, instead of one graph node per step of scan_graph.
struct ScanNode : torch::autograd::Function<ScanNode> {
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& u,
                              const at::Tensor& delta, const at::Tensor& a, const at::Tensor& bs,
                              const at::Tensor& cs, const at::Tensor& d) {
        const auto uc = u.contiguous(), dc = delta.contiguous(), b = bs.contiguous();
        const auto c = cs.contiguous(), ac = a.contiguous(), skip = d.contiguous();
        const auto decay = at::exp(dc.unsqueeze(-1) * ac.unsqueeze(1)).contiguous();
        const auto drive = (dc * uc).contiguous();
        auto y = at::empty_like(uc);
        auto states = at::empty_like(decay);
        const NodeForward run{f32(decay), f32(drive), f32(b),    f32(c),
                              f32(uc),    f32(skip),  f32(y),    f32(states),
                              uc.size(1), uc.size(2), b.size(1), b.size(2)};
        radprobe::parallel_for(static_cast<std::size_t>(uc.size(0) * uc.size(1)),
                               at::get_num_threads(),
                               [&](std::size_t lo, std::size_t hi) { run.rows(lo, hi); });
        ctx->save_for_backward({uc, dc, ac, b, c, skip, decay, states});
        return y;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const auto& u = saved[0];
        const auto& b = saved[3];
        const auto gy = grads[0].contiguous();
        const auto n = u.size(0), kd = u.size(1), k = b.size(1), ns = b.size(2);
        auto gu = at::empty_like(u), gdelta = at::empty_like(u);
        auto ga = at::zeros({n, kd, ns}, u.options()), gd = at::zeros({n, kd}, u.options());
        auto gb = at::zeros_like(b), gc = at::zeros_like(b);
        const NodeBackward run{f32(gy),
                               f32(u),
                               f32(saved[1]),
                               f32(saved[2]),
                               f32(b),
                               f32(saved[4]),
                               f32(saved[5]),
                               f32(saved[6]),
                               f32(saved[7]),
                               f32(gu),
                               f32(gdelta),
                               f32(ga),
                               f32(gb),
                               f32(gc),
                               f32(gd),
                               kd,
                               u.size(2),
                               k,
                               ns};
        radprobe::parallel_for(static_cast<std::size_t>(n * k), at::get_num_threads(),
                               [&](std::size_t lo, std::size_t hi) { run.pairs(lo, hi); });
        return {gu, gdelta, ga.sum(0), gb, gc, gd.sum(0)};
    }
};

/// The recurrence in scan order: ScanNode on float32 CPU tensors, else scan_graph.
at::Tensor scan_in_scan_order(const ScanInputs& s) {
    if (s.u.is_cpu() && s.u.scalar_type() == at::kFloat) {
        return ScanNode::apply(s.u, s.delta, s.a, s.bs, s.cs, s.d);
    }
    return scan_graph(s);
}

/// The positions (row-major h·W + w) that step l of direction k visits, at [k·L + l]: row-major,
/// column-major (w·H + h), and the two reversed.
std::vector<std::int64_t> scan_order(std::int64_t h, std::int64_t w) {
    const auto len = h * w;
    std::vector<std::int64_t> order(static_cast<std::size_t>(kDirections * len));
    for (std::int64_t l = 0; l < len; ++l) {
        const auto column = (l % h) * w + l / h;
        order[static_cast<std::size_t>(l)] = l;
        order[static_cast<std::size_t>(len + l)] = column;
        order[static_cast<std::size_t>(3 * len - 1 - l)] = l;
        order[static_cast<std::size_t>(4 * len - 1 - l)] = column;
    }
    return order;
}

/// The CPU scan over tensors in position order (no scan-order copies): decay N×K×Di×L×Ns, drive
/// N×K×Di×L, b and c N×K×Ns×L, u N×Di×L, d K×Di. Rows [begin, end) of the N·Di (image, channel)
/// pairs run the four directions one after the other, each along its own order, and add their
/// outputs into out (N×Di×L, zeroed): the cross merge happens in place.
struct PositionalScan {
    const float *decay, *drive, *b, *c, *u, *d;
    float* out;
    const std::int64_t* order;
    std::int64_t di, len, ns;

    void direction(std::int64_t image, std::int64_t channel, std::int64_t k,
                   std::vector<float>& h) const {
        const std::int64_t row = (image * kDirections + k) * di + channel;
        const std::int64_t shared = (image * kDirections + k) * ns * len;
        const std::int64_t own = (image * di + channel) * len;
        const std::int64_t* visit = order + k * len;
        const float skip = d[k * di + channel];
        std::fill(h.begin(), h.end(), 0.0f);
        for (std::int64_t l = 0; l < len; ++l) {
            const std::int64_t p = visit[l];
            const float* a = decay + (row * len + p) * ns;
            const float push = drive[row * len + p];
            float acc = 0.0f;
            for (std::int64_t j = 0; j < ns; ++j) {
                auto& state = h[static_cast<std::size_t>(j)];
                state = a[j] * state + push * b[shared + j * len + p];
                acc += c[shared + j * len + p] * state;
            }
            out[own + p] += acc + skip * u[own + p];
        }
    }

    void rows(std::size_t begin, std::size_t end) const {
        std::vector<float> h(static_cast<std::size_t>(ns));
        for (auto row = static_cast<std::int64_t>(begin); row < static_cast<std::int64_t>(end);
             ++row) {
            for (std::int64_t k = 0; k < kDirections; ++k) {
                direction(row / di, row % di, k, h);
            }
        }
    }
};

/// The merged output N×Di×H×W of the four scans, on float32 CPU tensors in position order:
/// u N×Di×L, dts (before the bias) N×K·Di×L, bs and cs N×K×Ns×L. decay and drive are computed as
/// tensors (as scan_graph does), then PositionalScan splits the (image, channel) pairs over
/// LibTorch's thread count.
at::Tensor scan_positional(const at::Tensor& u, const at::Tensor& dts, const at::Tensor& a_logs,
                           const at::Tensor& bs, const at::Tensor& cs, const at::Tensor& ds,
                           const at::Tensor& dt_bias, std::int64_t h, std::int64_t w) {
    const auto n = u.size(0), di = u.size(1), len = h * w, ns = bs.size(2);
    RADPROBE_ASSERT(u.is_cpu() && u.scalar_type() == at::kFloat && len == u.size(2),
                    "scan_positional: float32 CPU N×Di×L input");
    const auto s = scan_inputs(u, dts, a_logs, bs, cs, ds, dt_bias);
    const auto decay = at::exp(s.delta.unsqueeze(-1) * s.a.unsqueeze(1)).contiguous();
    const auto drive = (s.delta.view({n, kDirections, di, len}) * u.unsqueeze(1)).contiguous();
    const auto b = bs.contiguous(), c = cs.contiguous(), uc = u.contiguous(), d = ds.contiguous();
    auto out = at::zeros({n, di, len}, u.options());
    const auto order = scan_order(h, w);
    const PositionalScan scan{decay.data_ptr<float>(),
                              drive.data_ptr<float>(),
                              b.data_ptr<float>(),
                              c.data_ptr<float>(),
                              uc.data_ptr<float>(),
                              d.data_ptr<float>(),
                              out.data_ptr<float>(),
                              order.data(),
                              di,
                              len,
                              ns};
    radprobe::parallel_for(static_cast<std::size_t>(n * di), at::get_num_threads(),
                           [&](std::size_t begin, std::size_t end) { scan.rows(begin, end); });
    return out.view({n, di, h, w});
}

// --- SS2D ----------------------------------------------------------------------------------

/// N×Di×H×W → N×4×Di×L: row-major (h·W + w), column-major (w·H + h), and both reversed.
at::Tensor cross_scan(const at::Tensor& x) {
    const auto rows = x.flatten(2);
    const auto cols = x.transpose(2, 3).flatten(2);
    return at::stack({rows, cols, rows.flip(-1), cols.flip(-1)}, 1);
}

/// N×4×Di×L (each direction in its own order) → N×Di×H×W, the four summed at their positions.
at::Tensor cross_merge(const at::Tensor& ys, std::int64_t h, std::int64_t w) {
    const auto n = ys.size(0), di = ys.size(2);
    const auto rows = ys.select(1, 0) + ys.select(1, 2).flip(-1);
    const auto cols = ys.select(1, 1) + ys.select(1, 3).flip(-1);
    return rows.view({n, di, h, w}) + cols.view({n, di, w, h}).transpose(2, 3);
}

/// Whether autograd must record the SS2D (then, or off the CPU, it runs in scan order).
bool records(const SS2DImpl& op, const at::Tensor& u) {
    return at::GradMode::is_enabled() &&
           (u.requires_grad() || op.x_proj_weight.requires_grad() ||
            op.dt_projs_weight.requires_grad() || op.dt_projs_bias.requires_grad() ||
            op.A_logs.requires_grad() || op.Ds.requires_grad());
}

/// The scan of u (N×Di×H×W) in scan order as the publisher lays it out (cross scan, projections,
/// tensor-loop scan, cross merge): y N×Di×H×W; `trace` (optional) receives the internals.
at::Tensor scan_in_order(SS2DImpl& op, const at::Tensor& u, VmambaSs2dTrace* trace) {
    const auto n = u.size(0), h = u.size(2), w = u.size(3), len = h * w;
    const auto kd = kDirections * op.d_inner, r = op.dt_rank, ns = op.d_state;
    const auto xs = cross_scan(u);                                     // N×4×Di×L
    const auto x_dbl = at::matmul(op.x_proj_weight.unsqueeze(0), xs);  // N×4×(R+2Ns)×L
    const auto dts = at::matmul(op.dt_projs_weight.unsqueeze(0), x_dbl.narrow(2, 0, r));
    const auto bs = x_dbl.narrow(2, r, ns), cs = x_dbl.narrow(2, r + ns, ns);
    const auto us = xs.reshape({n, kd, len}), deltas = dts.reshape({n, kd, len});
    const auto ys =
        scan_in_scan_order(scan_inputs(us, deltas, op.A_logs, bs, cs, op.Ds, op.dt_projs_bias))
            .view({n, kDirections, op.d_inner, len});
    auto y = cross_merge(ys, h, w);
    if (trace != nullptr) {
        *trace = {us, deltas, bs, cs, ys, y, {}};
    }
    return y;
}

/// The same in position order on the CPU (x_proj and dt_projs applied to u as laid out; each
/// direction's order is followed inside PositionalScan).
at::Tensor scan_by_position(SS2DImpl& op, const at::Tensor& u) {
    const auto n = u.size(0), h = u.size(2), w = u.size(3), len = h * w;
    const auto r = op.dt_rank, ns = op.d_state, di = op.d_inner;
    const auto flat = u.reshape({n, di, len});
    const auto x_dbl =
        at::matmul(op.x_proj_weight.view({-1, di}), flat).view({n, kDirections, r + 2 * ns, len});
    const auto dts = at::matmul(op.dt_projs_weight.unsqueeze(0), x_dbl.narrow(2, 0, r));
    return scan_positional(flat, dts.view({n, kDirections * di, len}), op.A_logs,
                           x_dbl.narrow(2, r, ns), x_dbl.narrow(2, r + ns, ns), op.Ds,
                           op.dt_projs_bias, h, w);
}

/// SS2D on channel-last N×H×W×C; `trace` (optional) receives the internals (vmamba_ss2d), for
/// which the scan runs in scan order.
at::Tensor ss2d(SS2DImpl& op, const at::Tensor& x, VmambaSs2dTrace* trace) {
    const auto u = at::silu(op.conv2d(op.in_proj(x).permute({0, 3, 1, 2})));  // N×Di×H×W
    const bool in_order =
        trace != nullptr || records(op, u) || !u.is_cpu() || u.scalar_type() != at::kFloat;
    const auto y = in_order ? scan_in_order(op, u, trace) : scan_by_position(op, u);
    auto out = op.out_proj(op.out_norm(y.permute({0, 2, 3, 1})));
    if (trace != nullptr) {
        trace->output = out.permute({0, 3, 1, 2});
    }
    return out;
}

at::Tensor run_block(VSSBlockImpl& b, const at::Tensor& x) {
    const auto y = x + ss2d(*b.op, b.norm(x), nullptr);
    return y + b.mlp->fc2(at::gelu(b.mlp->fc1(b.norm2(y))));
}

/// Channel-last N×H×W×C through a channel-first convolution.
at::Tensor conv_nhwc(nn::Conv2d& c, const at::Tensor& x) {
    return c(x.permute({0, 3, 1, 2})).permute({0, 2, 3, 1});
}

at::Tensor tokens_of(const at::Tensor& x) {
    return x.reshape({x.size(0), x.size(1) * x.size(2), x.size(3)});
}

at::Tensor nchw(const at::Tensor& x) {
    return x.permute({0, 3, 1, 2});
}

std::int64_t half(std::int64_t side) {
    return (side + 1) / 2;
}

class VmambaRunner final : public FunctionalEncoder {
public:
    explicit VmambaRunner(const ModelConfig& config) : FunctionalEncoder(config), model_(config) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    std::int64_t input_channels() const override {
        return model_->patch_embed->conv1->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        const auto c0 = config_.stage_widths.front();
        std::int64_t gh = half(height), gw = half(width);
        double f = 2.0 * static_cast<double>(gh * gw * (c0 / 2) * input_channels() * 9);
        gh = half(gh);
        gw = half(gw);
        f += 2.0 * static_cast<double>(gh * gw * c0 * (c0 / 2) * 9);
        for (std::size_t s = 0; s < config_.depths.size(); ++s) {
            f += block_flops(s, gh * gw) * static_cast<double>(config_.depths[s]);
            if (s + 1 < config_.depths.size()) {
                gh = half(gh);
                gw = half(gw);
                f += 2.0 * static_cast<double>(gh * gw * config_.stage_widths[s] *
                                               config_.stage_widths[s + 1] * 9);
            }
        }
        return f;
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        // The stem's first convolution zero-pads the NORMALISED input: the normalisation's shift
        // is kept per tap and applied to the image's support (as for SAM2's padded patch conv),
        // so the border pixels match too.
        auto& c = model_->patch_embed->conv1;
        const auto original = c->weight.detach().to(torch::kFloat64);
        (void)fold_patch_conv(c->weight, mean, std);  // checks 3 channels
        auto shift = torch::zeros_like(original.narrow(1, 0, 1));
        for (int ch = 0; ch < 3; ++ch) {
            shift -= original.narrow(1, ch, 1) * (mean[ch] / std[ch]);
        }
        fold_shift_ = shift.to(torch::kFloat32);
    }

    VmambaTrace trace(const at::Tensor& pixel_values) {
        VmambaTrace t;
        trace_ = &t;
        try {
            const auto out = forward(pixel_values, ForwardOptions{});
            t.stages = out.pyramid;
            t.classifier_norm = out.tokens.patches.permute({0, 3, 1, 2});
        } catch (...) {
            trace_ = nullptr;
            throw;
        }
        trace_ = nullptr;
        return t;
    }

    VmambaSs2dTrace ss2d_trace(std::int64_t stage, std::int64_t block, const at::Tensor& input) {
        const auto stages = static_cast<std::int64_t>(config_.depths.size());
        RADPROBE_USAGE_CHECK(stage >= 0 && stage < stages && block >= 0 &&
                                 block < config_.depths[static_cast<std::size_t>(stage)],
                             "vmamba_ss2d: no block ", block, " in stage ", stage);
        c10::InferenceMode guard;
        auto& s = *model_->layers[static_cast<std::size_t>(stage)]->as<StageImpl>();
        VmambaSs2dTrace t;
        (void)ss2d(*s.blocks[static_cast<std::size_t>(block)]->as<VSSBlockImpl>()->op,
                   to_input(input).permute({0, 2, 3, 1}), &t);
        return t;
    }

private:
    double block_flops(std::size_t s, std::int64_t cells) const {
        const auto& v = config_.vmamba;
        const double l = static_cast<double>(cells),
                     c = static_cast<double>(config_.stage_widths[s]);
        const double di = static_cast<double>(v.d_inner[s]), ns = static_cast<double>(v.d_state);
        const double r = static_cast<double>(v.dt_ranks[s]), k = static_cast<double>(v.conv);
        const double hidden = static_cast<double>(v.mlp_hidden[s]);
        const double projections = 4 * l * c * di + 2 * l * di * k * k;
        const double scan_params = 2 * l * kDirections * di * (2 * r + 2 * ns);
        const double scan = 6 * l * kDirections * di * ns;
        return projections + scan_params + scan + 4 * l * c * hidden;
    }

    /// The stem: N×C×H×W pixels → channel-last N×h×w×C0.
    at::Tensor embed(const at::Tensor& pixels) {
        auto& pe = *model_->patch_embed;
        auto x = pe.conv1(pixels);
        if (fold_shift_.defined()) {
            const auto support =
                torch::ones({1, 1, pixels.size(2), pixels.size(3)}, pixels.options());
            x = x + at::conv2d(support, fold_shift_.to(pixels.device()), {}, {kStride, kStride},
                               {1, 1});
        }
        x = at::gelu(pe.norm1(x.permute({0, 2, 3, 1})));
        return pe.norm2(conv_nhwc(pe.conv2, x));
    }

    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        check_pixels(pixel_values, input_channels(), 1);
        const auto num_stages = static_cast<std::int64_t>(config_.depths.size());
        const auto want = wanted_states(opts, num_stages + 1);
        auto x = embed(to_input(pixel_values));
        auto& norm = model_->classifier->norm;
        EncoderOutput out;
        auto keep = [&](std::int64_t i) {
            if (want[static_cast<std::size_t>(i)]) {
                out.layers[static_cast<int>(i)] =
                    tokens_of((opts.normalize_layers && i == num_stages) ? norm(x) : x);
            }
        };
        if (trace_ != nullptr) {
            trace_->patch_embed = nchw(x);
        }
        keep(0);
        for (std::int64_t s = 0; s < num_stages; ++s) {
            auto& stage = *model_->layers[static_cast<std::size_t>(s)]->as<StageImpl>();
            for (const auto& block : *stage.blocks) {
                x = run_block(*block->as<VSSBlockImpl>(), x);
            }
            out.pyramid.push_back(nchw(x));
            keep(s + 1);
            if (stage.downsample) {
                x = stage.downsample->norm(conv_nhwc(stage.downsample->conv1, x));
                if (trace_ != nullptr) {
                    trace_->downsamples.push_back(nchw(x));
                }
            }
        }
        out.grid_h = x.size(1);
        out.grid_w = x.size(2);
        out.last_hidden_state = tokens_of(norm(x));
        out.tokens = split_tokens(out.last_hidden_state, 0, out.grid_h, out.grid_w, false);
        out.pooled = out.last_hidden_state.mean(1);
        return out;
    }

    Vssm model_;
    /// After fold_grayscale: the normalisation's shift per tap of the first stem convolution,
    /// [C0/2, 1, 3, 3] (undefined before).
    at::Tensor fold_shift_;
    VmambaTrace* trace_ = nullptr;
};

VmambaRunner& runner_of(Encoder& encoder, const char* what) {
    auto* runner = dynamic_cast<VmambaRunner*>(&encoder);
    RADPROBE_USAGE_CHECK(runner != nullptr, what, ": the encoder is a ",
                         encoder.config().model_type, ", not vmamba");
    return *runner;
}

}  // namespace

std::unique_ptr<LoadableEncoder> make_vmamba(const ModelConfig& config) {
    return std::make_unique<VmambaRunner>(config);
}

VmambaTrace vmamba_trace(Encoder& encoder, const at::Tensor& pixel_values) {
    return runner_of(encoder, "vmamba_trace").trace(pixel_values);
}

VmambaSs2dTrace vmamba_ss2d(Encoder& encoder, std::int64_t stage, std::int64_t block,
                            const at::Tensor& input) {
    return runner_of(encoder, "vmamba_ss2d").ss2d_trace(stage, block, input);
}

at::Tensor vmamba_selective_scan(const at::Tensor& u, const at::Tensor& dts,
                                 const at::Tensor& a_logs, const at::Tensor& bs,
                                 const at::Tensor& cs, const at::Tensor& ds,
                                 const at::Tensor& dt_bias, std::int64_t h, std::int64_t w,
                                 VmambaScan how) {
    const auto n = u.size(0), di = u.size(1) / kDirections, len = h * w;
    if (how != VmambaScan::kCpuByPosition) {
        const auto s = scan_inputs(u, dts, a_logs, bs, cs, ds, dt_bias);
        const auto ys = how == VmambaScan::kTensorLoop ? scan_graph(s) : scan_in_scan_order(s);
        return cross_merge(ys.view({n, kDirections, di, len}), h, w);
    }
    // Scan order → position order: step l of direction k holds position order[k·L + l].
    const auto order = scan_order(h, w);
    const auto index = torch::tensor(order, torch::kLong).view({kDirections, len});
    auto place = [&](const at::Tensor& t) {  // N×K×R×L in scan order → position order
        auto out = at::empty_like(t);
        for (std::int64_t k = 0; k < kDirections; ++k) {
            out.select(1, k).index_copy_(-1, index[k], t.select(1, k));
        }
        return out;
    };
    const auto u_pos = u.view({n, kDirections, di, len}).select(1, 0);  // direction 0: as laid out
    const auto dts_pos =
        place(dts.view({n, kDirections, di, len})).view({n, kDirections * di, len});
    return scan_positional(u_pos, dts_pos, a_logs, place(bs), place(cs), ds, dt_bias, h, w);
}

}  // namespace radprobe::encoders::detail
