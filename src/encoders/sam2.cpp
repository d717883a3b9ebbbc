// SAM 2's image encoder (HF Sam2VisionModel, model_type sam2_vision_model): the Hiera trunk and
// the FPN neck. The published full models (HF Sam2Model "sam2", Sam2VideoModel "sam2_video") are
// read as their vision encoder: its keys sit under vision_encoder., and the prompt encoder, mask
// decoder and memory modules are set aside by the checkpoint layout.
//
// Module tree = HF key tree: backbone.{patch_embed.projection (Conv2d kernel/stride/padding,
// bias), pos_embed [1, C0, bh, bw], pos_embed_window [1, C0, W0, W0], blocks.N.{layer_norm1,
// attn.{qkv, proj}, layer_norm2, mlp.{proj_in, proj_out}, proj (where the width changes)}},
// neck.convs.J (lateral convolutions; J reads stage S−1−J). Blocks are numbered across stages.
//
// Trunk (activations N×h×w×C): patch convolution, plus the position embedding (pos_embed
// resized bicubically to the grid, align_corners=False, plus pos_embed_window tiled over it:
// the grid must be a multiple of W0, so H and W multiples of stride·W0 = 32). Each block:
//   y = ln1(x); r = x, or at a width change proj(y) (max-pooled by the query stride at the
//   first block of stages 1..num_query_pool_stages);
//   a = attention of y in W×W windows (zero-padded bottom/right, no mask; W = 0: global), the
//   queries max-pooled per window at a q-pool block; windows put back at W / stride, cropped;
//   x = r + a; x = x + mlp(ln2(x)).
// A stage's first block keeps the previous stage's width and window; its heads are the new
// stage's. Blocks listed in global_attention_blocks attend globally.
// Token view (a hierarchical family, as Swin): the last stage's grid is the patch tokens (no
// CLS); hidden state 0 is the embedding output, i the output of stage i (HF's
// intermediate_hidden_states), each N×(h·w)×C; pyramid = the stage outputs as N×C×h×w.
// HF Sam2VisionModel has no pooler: pooled = the global average of the last stage, as for Swin
// and ResNet. The neck is not part of EncoderOutput: sam2_fpn() computes it from the pyramid.

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

constexpr double kPi = 3.14159265358979323846;

/// One block of the trunk: widths in and out, heads, window (0 = global), query stride.
struct BlockPlan {
    std::int64_t dim = 0, dim_out = 0, heads = 0, window = 0, q_stride = 1;
};

std::vector<BlockPlan> block_plan(const ModelConfig& c) {
    const auto& h = c.hiera;
    std::vector<BlockPlan> plan;
    for (std::size_t s = 0; s < c.depths.size(); ++s) {
        for (std::int64_t j = 0; j < c.depths[s]; ++j) {
            const bool first = s > 0 && j == 0;
            const std::size_t prev = first ? s - 1 : s;
            BlockPlan b{c.stage_widths[prev], c.stage_widths[s], c.stage_heads[s], h.windows[prev]};
            const auto index = static_cast<std::int64_t>(plan.size());
            if (std::count(h.global_blocks.begin(), h.global_blocks.end(), index) > 0) {
                b.window = 0;
            }
            if (first && static_cast<std::int64_t>(s) <= h.query_pool_stages) {
                b.q_stride = h.query_stride;
            }
            plan.push_back(b);
        }
    }
    return plan;
}

nn::LayerNorm layer_norm(std::int64_t dim, double eps) {
    return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(eps));
}

struct PatchEmbedImpl : nn::Module {
    explicit PatchEmbedImpl(const ModelConfig& c) {
        projection = register_module(
            "projection",
            nn::Conv2d(nn::Conv2dOptions(c.num_channels, c.stage_widths[0], c.hiera.patch_kernel)
                           .stride(c.embed_patch_size)
                           .padding(c.hiera.patch_padding)));
    }
    nn::Conv2d projection{nullptr};
};
TORCH_MODULE(PatchEmbed);

struct AttentionImpl : nn::Module {
    explicit AttentionImpl(const BlockPlan& p) {
        qkv = register_module("qkv", nn::Linear(p.dim, 3 * p.dim_out));
        proj = register_module("proj", nn::Linear(p.dim_out, p.dim_out));
    }
    nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : nn::Module {
    MlpImpl(std::int64_t dim, std::int64_t hidden) {
        proj_in = register_module("proj_in", nn::Linear(dim, hidden));
        proj_out = register_module("proj_out", nn::Linear(hidden, dim));
    }
    nn::Linear proj_in{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(Mlp);

struct BlockImpl : nn::Module {
    BlockImpl(const ModelConfig& c, const BlockPlan& p) : plan(p) {
        const auto hidden = static_cast<std::int64_t>(static_cast<double>(p.dim_out) * c.mlp_ratio);
        layer_norm1 = register_module("layer_norm1", layer_norm(p.dim, c.layer_norm_eps));
        attn = register_module("attn", Attention(p));
        layer_norm2 = register_module("layer_norm2", layer_norm(p.dim_out, c.layer_norm_eps));
        mlp = register_module("mlp", Mlp(p.dim_out, hidden));
        if (p.dim != p.dim_out) {
            proj = register_module("proj", nn::Linear(p.dim, p.dim_out));
        }
    }
    nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
    Attention attn{nullptr};
    Mlp mlp{nullptr};
    nn::Linear proj{nullptr};
    BlockPlan plan;
};
TORCH_MODULE(Block);

struct HieraImpl : nn::Module {
    explicit HieraImpl(const ModelConfig& c) {
        const auto& h = c.hiera;
        const auto c0 = c.stage_widths[0];
        patch_embed = register_module("patch_embed", PatchEmbed(c));
        pos_embed =
            register_parameter("pos_embed", torch::zeros({1, c0, h.background_h, h.background_w}));
        pos_embed_window = register_parameter("pos_embed_window",
                                              torch::zeros({1, c0, h.windows[0], h.windows[0]}));
        blocks = register_module("blocks", nn::ModuleList());
        for (const auto& p : block_plan(c)) {
            blocks->push_back(Block(c, p));
        }
    }
    PatchEmbed patch_embed{nullptr};
    torch::Tensor pos_embed, pos_embed_window;
    nn::ModuleList blocks{nullptr};
};
TORCH_MODULE(Hiera);

struct NeckImpl : nn::Module {
    explicit NeckImpl(const ModelConfig& c) {
        const auto& h = c.hiera;
        convs = register_module("convs", nn::ModuleList());
        for (auto s = c.stage_widths.rbegin(); s != c.stage_widths.rend(); ++s) {
            convs->push_back(nn::Conv2d(nn::Conv2dOptions(*s, h.fpn_hidden_size, h.fpn_kernel)
                                            .stride(h.fpn_stride)
                                            .padding(h.fpn_padding)));
        }
    }
    nn::ModuleList convs{nullptr};
};
TORCH_MODULE(Neck);

struct Sam2VisionModelImpl : nn::Module {
    explicit Sam2VisionModelImpl(const ModelConfig& c) {
        backbone = register_module("backbone", Hiera(c));
        neck = register_module("neck", Neck(c));
    }
    Hiera backbone{nullptr};
    Neck neck{nullptr};
};
TORCH_MODULE(Sam2VisionModel);

/// N×h×w×C max-pooled by `stride` (kernel = stride, floor).
at::Tensor pool(const at::Tensor& x, std::int64_t stride) {
    return at::max_pool2d(x.permute({0, 3, 1, 2}), {stride, stride}, {stride, stride})
        .permute({0, 2, 3, 1});
}

/// N×h×w×C zero-padded bottom/right to multiples of `w` → (N·windows)×w×w×C, windows row-major
/// per image.
at::Tensor to_windows(const at::Tensor& x, std::int64_t w) {
    const auto n = x.size(0), c = x.size(3);
    const auto pad_h = (w - x.size(1) % w) % w, pad_w = (w - x.size(2) % w) % w;
    const auto padded =
        (pad_h > 0 || pad_w > 0) ? at::constant_pad_nd(x, {0, 0, 0, pad_w, 0, pad_h}, 0.0) : x;
    const auto hp = padded.size(1), wp = padded.size(2);
    return padded.reshape({n, hp / w, w, wp / w, w, c})
        .permute({0, 1, 3, 2, 4, 5})
        .reshape({-1, w, w, c});
}

/// The inverse of to_windows() for windows of side `w` tiling the padding of an h × wd grid,
/// cropped to h × wd.
at::Tensor from_windows(const at::Tensor& windows, std::int64_t w, std::int64_t h,
                        std::int64_t wd) {
    const auto nh = (h + w - 1) / w, nw = (wd + w - 1) / w, c = windows.size(3);
    RADPROBE_CHECK(windows.size(0) % (nh * nw) == 0, "sam2: ", windows.size(0),
                   " windows do not tile a ", h, "x", wd, " grid by ", w);
    return windows.reshape({-1, nh, nw, w, w, c})
        .permute({0, 1, 3, 2, 4, 5})
        .reshape({-1, nh * w, nw * w, c})
        .narrow(1, 0, h)
        .narrow(2, 0, wd);
}

/// Multi-head attention within each b×h×w×dim window (or map), queries pooled by `stride`:
/// b×h'×w'×dim_out.
at::Tensor attend(AttentionImpl& attn, const at::Tensor& t, std::int64_t heads,
                  std::int64_t stride) {
    const auto b = t.size(0), dim_out = attn.proj->weight.size(0), hd = dim_out / heads;
    auto h = t.size(1), w = t.size(2);
    const auto qkv = attn.qkv(t).reshape({b, h * w, 3, heads, hd});
    auto q = qkv.select(2, 0);
    if (stride > 1) {
        q = pool(q.reshape({b, h, w, dim_out}), stride);
        h = q.size(1);
        w = q.size(2);
        q = q.reshape({b, h * w, heads, hd});
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    const auto ctx = attention(q.transpose(1, 2), qkv.select(2, 1).transpose(1, 2),
                               qkv.select(2, 2).transpose(1, 2), scale);
    return attn.proj(ctx).reshape({b, h, w, dim_out});
}

/// Multiply-add FLOPs (×2) of one block on an h × w grid, one image.
double block_flops(const BlockPlan& p, double mlp_ratio, std::int64_t h, std::int64_t w) {
    const double t = static_cast<double>(h * w), d = static_cast<double>(p.dim);
    const double o = static_cast<double>(p.dim_out);
    const double t_out = t / static_cast<double>(p.q_stride * p.q_stride);
    double f = 2 * t * d * 3 * o + 2 * t_out * o * o + 4 * t_out * o * o * mlp_ratio;
    if (p.dim != p.dim_out) {
        f += 2 * t * d * o;
    }
    if (p.window > 0) {
        const double windows =
            static_cast<double>(((h + p.window - 1) / p.window) * ((w + p.window - 1) / p.window));
        const double keys = static_cast<double>(p.window * p.window);
        f += 4 * windows * keys / static_cast<double>(p.q_stride * p.q_stride) * keys * o;
    } else {
        f += 4 * t_out * t * o;
    }
    return f;
}

class Sam2Runner final : public FunctionalEncoder {
public:
    explicit Sam2Runner(const ModelConfig& config) : FunctionalEncoder(config), model_(config) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    std::int64_t input_channels() const override {
        return model_->backbone->patch_embed->projection->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        const auto& h = config_.hiera;
        const auto s = config_.embed_patch_size;
        std::int64_t gh = (height + 2 * h.patch_padding - h.patch_kernel) / s + 1;
        std::int64_t gw = (width + 2 * h.patch_padding - h.patch_kernel) / s + 1;
        double flops =
            2.0 * static_cast<double>(gh * gw * config_.stage_widths[0] * input_channels() *
                                      h.patch_kernel * h.patch_kernel);
        for (const auto& p : block_plan(config_)) {
            flops += block_flops(p, config_.mlp_ratio, gh, gw);
            gh /= p.q_stride;
            gw /= p.q_stride;
        }
        return flops;
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        // The patch convolution zero-pads the NORMALISED input: the folded bias shift is not
        // uniform but a map (the taps that fall inside the image). It is kept apart as a
        // convolution of the image's support (border_shift).
        auto& proj = model_->backbone->patch_embed->projection;
        const auto original = proj->weight.detach().to(torch::kFloat64);
        (void)fold_patch_conv(proj->weight, mean, std);  // checks 3 channels
        auto shift = torch::zeros_like(original.narrow(1, 0, 1));
        for (int c = 0; c < 3; ++c) {
            shift -= original.narrow(1, c, 1) * (mean[c] / std[c]);
        }
        fold_shift_ = shift.to(torch::kFloat32);
    }

    /// The FPN neck on the stage maps (N×C_s×h_s×w_s, finest first): the levels HF's
    /// Sam2VisionModel returns as fpn_hidden_states, finest first.
    std::vector<at::Tensor> fpn(const std::vector<at::Tensor>& stages) const {
        const auto& h = config_.hiera;
        const auto n = static_cast<std::int64_t>(config_.depths.size());
        RADPROBE_USAGE_CHECK(static_cast<std::int64_t>(stages.size()) == n,
                             "sam2_fpn: ", stages.size(), " stage maps given, the trunk has ", n);
        std::vector<at::Tensor> levels(static_cast<std::size_t>(n));
        at::Tensor prev;
        for (std::int64_t i = n - 1; i >= 0; --i) {
            const auto& conv = *model_->neck->convs->ptr(static_cast<std::size_t>(n - 1 - i))
                                    ->as<nn::Conv2dImpl>();
            auto lateral = at::conv2d(stages[static_cast<std::size_t>(i)], conv.weight, conv.bias,
                                      {h.fpn_stride, h.fpn_stride}, {h.fpn_padding, h.fpn_padding});
            const bool top_down = i < n - 1 && std::count(h.fpn_top_down_levels.begin(),
                                                          h.fpn_top_down_levels.end(), i) > 0;
            prev = top_down ? lateral + upsample2(prev) : lateral;
            levels[static_cast<std::size_t>(i)] = prev;
        }
        levels.resize(static_cast<std::size_t>(h.num_feature_levels));
        return levels;
    }

private:
    static at::Tensor upsample2(const at::Tensor& x) {
        return F::interpolate(x, F::InterpolateFuncOptions()
                                     .scale_factor(std::vector<double>{2.0, 2.0})
                                     .mode(torch::kNearest));
    }

    /// Inputs must give a patch grid that tiles the window position embedding.
    void check_input(const at::Tensor& pixel_values) const {
        const auto& h = config_.hiera;
        const auto multiple = config_.embed_patch_size * h.windows[0];
        check_pixels(pixel_values, input_channels(), 1);
        const auto height = pixel_values.size(2), width = pixel_values.size(3);
        auto grid = [&](std::int64_t side) {
            return (side + 2 * h.patch_padding - h.patch_kernel) / config_.embed_patch_size + 1;
        };
        const bool ok = height % multiple == 0 && width % multiple == 0 &&
                        grid(height) % h.windows[0] == 0 && grid(width) % h.windows[0] == 0;
        RADPROBE_USAGE_CHECK(ok, "SAM2 (", config_.dir.string(),
                             ") takes inputs whose height and width are multiples of ", multiple,
                             " (its stride-", config_.embed_patch_size,
                             " patch grid must tile the ", h.windows[0], "x", h.windows[0],
                             " window position embedding); got ", height, "x", width);
    }

    /// Patch convolution + position embedding, N×h×w×C.
    at::Tensor embed(const at::Tensor& pixels) const {
        const auto& bb = *model_->backbone;
        const auto& conv = bb.patch_embed->projection;
        const auto& h = config_.hiera;
        const std::int64_t s = config_.embed_patch_size, p = h.patch_padding;
        auto x = at::conv2d(pixels, conv->weight, conv->bias, {s, s}, {p, p});
        if (fold_shift_.defined()) {
            const auto support =
                torch::ones({1, 1, pixels.size(2), pixels.size(3)}, pixels.options());
            x = x + at::conv2d(support, fold_shift_.to(pixels.device()), {}, {s, s}, {p, p});
        }
        const auto gh = x.size(2), gw = x.size(3);
        const auto background =
            F::interpolate(bb.pos_embed, F::InterpolateFuncOptions()
                                             .size(std::vector<std::int64_t>{gh, gw})
                                             .mode(torch::kBicubic)
                                             .align_corners(false));
        const auto tiled = bb.pos_embed_window.tile({1, 1, gh / h.windows[0], gw / h.windows[0]});
        return (x + background + tiled).permute({0, 2, 3, 1}).contiguous();
    }

    at::Tensor run_block(BlockImpl& blk, const at::Tensor& x) {
        const auto& p = blk.plan;
        const auto y = blk.layer_norm1(x);
        at::Tensor r = x;
        if (blk.proj) {
            r = blk.proj(y);
            if (p.q_stride > 1) {
                r = pool(r, p.q_stride);
            }
        }
        at::Tensor a;
        if (p.window > 0) {
            a = attend(*blk.attn, to_windows(y, p.window), p.heads, p.q_stride);
            a = from_windows(a, p.window / p.q_stride, r.size(1), r.size(2));
        } else {
            a = attend(*blk.attn, y, p.heads, p.q_stride);
        }
        const auto z = r + a;
        auto& mlp = *blk.mlp;
        return z + mlp.proj_out(
                       activation(mlp.proj_in(blk.layer_norm2(z)), config_.hidden_act, config_));
    }

    static at::Tensor tokens_of(const at::Tensor& x) {
        return x.reshape({x.size(0), x.size(1) * x.size(2), x.size(3)});
    }

    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        check_input(pixel_values);
        const auto num_stages = static_cast<std::int64_t>(config_.depths.size());
        const auto want = wanted_states(opts, num_stages + 1);
        auto x = embed(to_input(pixel_values));
        EncoderOutput out;
        auto keep = [&](std::int64_t i) {
            if (want[static_cast<std::size_t>(i)]) {
                out.layers[static_cast<int>(i)] = tokens_of(x);
            }
        };
        keep(0);
        std::size_t b = 0;
        for (std::int64_t s = 0; s < num_stages; ++s) {
            for (std::int64_t j = 0; j < config_.depths[static_cast<std::size_t>(s)]; ++j) {
                x = run_block(*model_->backbone->blocks[b++]->as<BlockImpl>(), x);
            }
            out.pyramid.push_back(x.permute({0, 3, 1, 2}));
            keep(s + 1);
        }
        out.grid_h = x.size(1);
        out.grid_w = x.size(2);
        out.last_hidden_state = tokens_of(x);
        out.tokens = split_tokens(out.last_hidden_state, 0, out.grid_h, out.grid_w, false);
        out.pooled = out.last_hidden_state.mean(1);
        return out;
    }

    Sam2VisionModel model_;
    /// After fold_grayscale: the normalisation's shift per tap, [C0, 1, k, k] (undefined before).
    at::Tensor fold_shift_;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_sam2(const ModelConfig& config) {
    return std::make_unique<Sam2Runner>(config);
}

Sam2Fpn sam2_fpn(const Encoder& encoder, const std::vector<at::Tensor>& stage_maps) {
    const auto* sam2 = dynamic_cast<const Sam2Runner*>(&encoder);
    RADPROBE_USAGE_CHECK(sam2 != nullptr, "sam2_fpn: the encoder is a ",
                         encoder.config().model_type, ", not sam2_vision_model");
    // Maps from forward() are inference tensors: autograd could not record them.
    const bool inference = !stage_maps.empty() && stage_maps.front().is_inference();
    c10::InferenceMode guard(inference);
    Sam2Fpn out;
    out.hidden_states = sam2->fpn(stage_maps);
    for (const auto& level : out.hidden_states) {
        out.position_encoding.push_back(sam2_position_encoding(
            level.size(0), level.size(1), level.size(2), level.size(3), level.options()));
    }
    return out;
}

at::Tensor sam2_position_encoding(std::int64_t n, std::int64_t channels, std::int64_t h,
                                  std::int64_t w, const at::TensorOptions& options) {
    const auto f = options.dtype(torch::kFloat32);
    const std::int64_t half = channels / 2;
    const double two_pi = 2 * kPi, eps = 1e-6;
    const auto i = torch::arange(half, f);
    const auto dim_t =
        at::pow(10000.0, 2 * at::floor(i / 2) / static_cast<double>(half));  // [half]
    const auto even = (i.remainder(2) == 0);
    auto encode = [&](std::int64_t side) {  // [side, half]
        const auto pos = torch::arange(1, side + 1, f) / (static_cast<double>(side) + eps) * two_pi;
        const auto a = pos.unsqueeze(1) / dim_t;
        return at::where(even, at::sin(a), at::cos(a));
    };
    const auto y = encode(h).t().unsqueeze(2).expand({half, h, w});
    const auto x = encode(w).t().unsqueeze(1).expand({half, h, w});
    return torch::cat({y, x}, 0).unsqueeze(0).expand({n, 2 * half, h, w});
}

}  // namespace radprobe::encoders::detail
