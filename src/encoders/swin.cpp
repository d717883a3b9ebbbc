// Swin Transformer (HF SwinModel): shifted-window attention with a relative position bias,
// patch merging between stages.
//
// Module tree = HF key tree: embeddings.{patch_embeddings.projection, norm},
// encoder.layers.S.{blocks.B.{layernorm_before, attention.self.{query, key, value,
// relative_position_bias_table, relative_position_index (I64 buffer, loaded as saved)},
// attention.output.dense, layernorm_after, intermediate.dense, output.dense},
// downsample.{norm, reduction}}, layernorm.
// Per block: window = config window_size and shift = window/2 on odd blocks, except that a
// stage whose grid side is <= window uses one window of min(h, w) and no shift (HF
// set_shift_and_window_size). The grid is zero-padded right/bottom to a multiple of the window,
// cyclically shifted, partitioned, attended with bias (and the −100 mask across shifted
// regions), reversed and cropped. Patch merging concatenates the (0,0), (1,0), (0,1), (1,1)
// neighbours, layer-norms and reduces 4C → 2C.
// Token view: the last stage's tokens after the final layernorm are the patch tokens (no CLS);
// hidden state 0 is the embedding output, i the output of stage i (after its patch merging),
// as HF's hidden_states. The pooled output is their average (HF pooler_output).

#include <torch/torch.h>

#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace nn = torch::nn;

constexpr double kDefaultLayerNormEps = 1e-5;  // HF's embeddings.norm / downsample.norm

nn::LayerNorm layer_norm(std::int64_t dim, double eps) {
    return nn::LayerNorm(nn::LayerNormOptions({dim}).eps(eps));
}

struct PatchEmbeddingsImpl : nn::Module {
    explicit PatchEmbeddingsImpl(const ModelConfig& c) {
        projection = register_module(
            "projection",
            nn::Conv2d(nn::Conv2dOptions(c.num_channels, c.embedding_size, c.embed_patch_size)
                           .stride(c.embed_patch_size)));
    }
    nn::Conv2d projection{nullptr};
};
TORCH_MODULE(PatchEmbeddings);

struct EmbeddingsImpl : nn::Module {
    explicit EmbeddingsImpl(const ModelConfig& c) {
        patch_embeddings = register_module("patch_embeddings", PatchEmbeddings(c));
        norm = register_module("norm", layer_norm(c.embedding_size, kDefaultLayerNormEps));
    }
    PatchEmbeddings patch_embeddings{nullptr};
    nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Embeddings);

struct SelfAttentionImpl : nn::Module {
    SelfAttentionImpl(const ModelConfig& c, std::int64_t dim, std::int64_t heads) {
        const auto w = c.window_size;
        relative_position_bias_table = register_parameter(
            "relative_position_bias_table", torch::zeros({(2 * w - 1) * (2 * w - 1), heads}));
        relative_position_index =
            register_buffer("relative_position_index", torch::zeros({w * w, w * w}, torch::kLong));
        const auto opt = nn::LinearOptions(dim, dim).bias(c.qkv_bias);
        query = register_module("query", nn::Linear(opt));
        key = register_module("key", nn::Linear(opt));
        value = register_module("value", nn::Linear(opt));
    }
    torch::Tensor relative_position_bias_table, relative_position_index;
    nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
};
TORCH_MODULE(SelfAttention);

struct DenseImpl : nn::Module {
    DenseImpl(std::int64_t in, std::int64_t out) {
        dense = register_module("dense", nn::Linear(in, out));
    }
    nn::Linear dense{nullptr};
};
TORCH_MODULE(Dense);

struct AttentionImpl : nn::Module {
    AttentionImpl(const ModelConfig& c, std::int64_t dim, std::int64_t heads) {
        self = register_module("self", SelfAttention(c, dim, heads));
        output = register_module("output", Dense(dim, dim));
    }
    SelfAttention self{nullptr};
    Dense output{nullptr};
};
TORCH_MODULE(Attention);

struct BlockImpl : nn::Module {
    BlockImpl(const ModelConfig& c, std::int64_t dim, std::int64_t heads) : heads(heads) {
        const auto hidden = static_cast<std::int64_t>(c.mlp_ratio * static_cast<double>(dim));
        layernorm_before = register_module("layernorm_before", layer_norm(dim, c.layer_norm_eps));
        attention = register_module("attention", Attention(c, dim, heads));
        layernorm_after = register_module("layernorm_after", layer_norm(dim, c.layer_norm_eps));
        intermediate = register_module("intermediate", Dense(dim, hidden));
        output = register_module("output", Dense(hidden, dim));
    }
    nn::LayerNorm layernorm_before{nullptr}, layernorm_after{nullptr};
    Attention attention{nullptr};
    Dense intermediate{nullptr}, output{nullptr};
    std::int64_t heads;
};
TORCH_MODULE(Block);

struct PatchMergingImpl : nn::Module {
    explicit PatchMergingImpl(std::int64_t dim) {
        reduction = register_module("reduction",
                                    nn::Linear(nn::LinearOptions(4 * dim, 2 * dim).bias(false)));
        norm = register_module("norm", layer_norm(4 * dim, kDefaultLayerNormEps));
    }
    nn::Linear reduction{nullptr};
    nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(PatchMerging);

struct StageImpl : nn::Module {
    StageImpl(const ModelConfig& c, std::size_t s) {
        const auto dim = c.stage_widths[s];
        blocks = register_module("blocks", nn::ModuleList());
        for (std::int64_t b = 0; b < c.depths[s]; ++b) {
            blocks->push_back(Block(c, dim, c.stage_heads[s]));
        }
        if (s + 1 < c.depths.size()) {
            downsample = register_module("downsample", PatchMerging(dim));
        }
    }
    nn::ModuleList blocks{nullptr};
    PatchMerging downsample{nullptr};
};
TORCH_MODULE(Stage);

struct SwinEncoderImpl : nn::Module {
    explicit SwinEncoderImpl(const ModelConfig& c) {
        layers = register_module("layers", nn::ModuleList());
        for (std::size_t s = 0; s < c.depths.size(); ++s) {
            layers->push_back(Stage(c, s));
        }
    }
    nn::ModuleList layers{nullptr};
};
TORCH_MODULE(SwinEncoder);

struct SwinModelImpl : nn::Module {
    explicit SwinModelImpl(const ModelConfig& c) {
        embeddings = register_module("embeddings", Embeddings(c));
        encoder = register_module("encoder", SwinEncoder(c));
        layernorm = register_module("layernorm", layer_norm(c.hidden_size, c.layer_norm_eps));
    }
    Embeddings embeddings{nullptr};
    SwinEncoder encoder{nullptr};
    nn::LayerNorm layernorm{nullptr};
};
TORCH_MODULE(SwinModel);

/// N×H×W×C → (N·nW)×w×w×C, windows in row-major order per image.
at::Tensor window_partition(const at::Tensor& x, std::int64_t w) {
    const auto n = x.size(0), h = x.size(1), wd = x.size(2), c = x.size(3);
    return x.view({n, h / w, w, wd / w, w, c}).permute({0, 1, 3, 2, 4, 5}).reshape({-1, w, w, c});
}

at::Tensor window_reverse(const at::Tensor& windows, std::int64_t w, std::int64_t h,
                          std::int64_t wd) {
    const auto c = windows.size(-1);
    return windows.view({-1, h / w, wd / w, w, w, c})
        .permute({0, 1, 3, 2, 4, 5})
        .reshape({-1, h, wd, c});
}

/// The SW-MSA mask for a padded hp × wp grid: [nW, w², w²] with 0 / −100.
at::Tensor shift_mask(std::int64_t hp, std::int64_t wp, std::int64_t w, std::int64_t shift) {
    auto img = torch::zeros({1, hp, wp, 1});
    const std::int64_t hb[4] = {0, hp - w, hp - shift, hp};
    const std::int64_t wb[4] = {0, wp - w, wp - shift, wp};
    float count = 0;
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
            img.narrow(1, hb[i], hb[i + 1] - hb[i])
                .narrow(2, wb[j], wb[j + 1] - wb[j])
                .fill_(count);
            count += 1;
        }
    }
    const auto mw = window_partition(img, w).view({-1, w * w});
    const auto diff = mw.unsqueeze(1) - mw.unsqueeze(2);
    return torch::where(diff != 0, torch::full_like(diff, -100.0), torch::zeros_like(diff));
}

class SwinRunner final : public FunctionalEncoder {
public:
    explicit SwinRunner(const ModelConfig& config) : FunctionalEncoder(config), model_(config) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    void prepare() override {
        check_activation(config_.hidden_act, config_);
        RADPROBE_CHECK(!config_.use_absolute_embeddings, "file ",
                       (config_.dir / "config.json").string(),
                       ": use_absolute_embeddings=true is not supported for swin");
    }

    std::int64_t input_channels() const override {
        return model_->embeddings->patch_embeddings->projection->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        const double p = static_cast<double>(config_.embed_patch_size);
        double t = std::ceil(height / p) * std::ceil(width / p);
        double flops =
            2 * t * static_cast<double>(config_.embedding_size * input_channels()) * p * p;
        const double win = static_cast<double>(config_.window_size * config_.window_size);
        for (std::size_t s = 0; s < config_.depths.size(); ++s) {
            const double d = static_cast<double>(config_.stage_widths[s]);
            const double per_block =
                2 * t * d * 4 * d + 4 * t * win * d + 2 * t * d * 2 * config_.mlp_ratio * d;
            flops += per_block * static_cast<double>(config_.depths[s]);
            if (s + 1 < config_.depths.size()) {
                t /= 4;
                flops += 2 * t * 4 * d * 2 * d;
            }
        }
        return flops;
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        // Exact only when H and W are multiples of the patch size (otherwise HF zero-pads the
        // normalised input); radprobe's preprocessing produces such sizes for Swin configs.
        auto& proj = model_->embeddings->patch_embeddings->projection;
        fold_patch_embedding(proj->weight, proj->bias, mean, std);
    }

private:
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        check_pixels(pixel_values, input_channels(), 1);
        const auto num_stages = static_cast<std::int64_t>(config_.depths.size());
        const auto want = wanted_states(opts, num_stages + 1);
        const std::int64_t p = config_.embed_patch_size;
        auto pixels = to_input(pixel_values);
        const auto pad_w = (p - pixels.size(3) % p) % p;
        const auto pad_h = (p - pixels.size(2) % p) % p;
        if (pad_w > 0 || pad_h > 0) {
            pixels = at::constant_pad_nd(pixels, {0, pad_w, 0, pad_h}, 0.0);
        }
        auto& emb = *model_->embeddings;
        const auto& proj = emb.patch_embeddings->projection;
        auto map = at::conv2d(pixels, proj->weight, proj->bias, {p, p});
        std::int64_t h = map.size(2), w = map.size(3);
        auto x = emb.norm(map.flatten(2).transpose(1, 2));

        EncoderOutput out;
        auto& ln = model_->layernorm;
        auto keep = [&](std::int64_t i) {
            if (!want[static_cast<std::size_t>(i)]) {
                return;
            }
            out.layers[static_cast<int>(i)] =
                (opts.normalize_layers && i == num_stages) ? ln(x) : x;
        };
        keep(0);
        for (std::int64_t s = 0; s < num_stages; ++s) {
            auto& stage = *model_->encoder->layers[static_cast<std::size_t>(s)]->as<StageImpl>();
            std::int64_t b = 0;
            for (const auto& block : *stage.blocks) {
                x = run_block(*block->as<BlockImpl>(), x, h, w, b % 2 == 1);
                ++b;
            }
            out.pyramid.push_back(x.view({x.size(0), h, w, x.size(2)}).permute({0, 3, 1, 2}));
            if (stage.downsample) {
                x = merge(*stage.downsample, x, h, w);
                h = (h + 1) / 2;
                w = (w + 1) / 2;
            }
            keep(s + 1);
        }
        out.grid_h = h;
        out.grid_w = w;
        out.last_hidden_state = ln(x);
        out.tokens = split_tokens(out.last_hidden_state, 0, h, w, false);
        out.pooled = out.last_hidden_state.mean(1);
        return out;
    }

    at::Tensor run_block(BlockImpl& blk, const at::Tensor& x, std::int64_t h, std::int64_t w,
                         bool odd) {
        std::int64_t win = config_.window_size;
        std::int64_t shift = odd ? win / 2 : 0;
        if (std::min(h, w) <= win) {
            shift = 0;
            win = std::min(h, w);
        }
        const auto n = x.size(0), c = x.size(2);
        auto t = blk.layernorm_before(x).view({n, h, w, c});
        const auto pad_r = (win - w % win) % win;
        const auto pad_b = (win - h % win) % win;
        if (pad_r > 0 || pad_b > 0) {
            t = at::constant_pad_nd(t, {0, 0, 0, pad_r, 0, pad_b}, 0.0);
        }
        const auto hp = t.size(1), wp = t.size(2);
        if (shift > 0) {
            t = at::roll(t, {-shift, -shift}, {1, 2});
        }
        const auto windows = window_partition(t, win).view({-1, win * win, c});
        auto& sa = *blk.attention->self;
        const auto heads = blk.heads;
        const auto q = split_heads(sa.query(windows), heads);
        const auto k = split_heads(sa.key(windows), heads);
        const auto v = split_heads(sa.value(windows), heads);
        const auto hd = c / heads;
        auto scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(hd));
        // The stored index is for the configured window; a shrunken window (grid <= window)
        // needs the index of that size, which HF would also have to rebuild.
        RADPROBE_CHECK(win == config_.window_size, "swin: a stage grid of ", h, "x", w,
                       " is smaller than window_size ", config_.window_size,
                       " and would need a resized relative position index; use a larger input");
        const auto bias =
            sa.relative_position_bias_table.index_select(0, sa.relative_position_index.view({-1}))
                .view({win * win, win * win, -1})
                .permute({2, 0, 1});
        scores = scores + bias.unsqueeze(0);
        if (shift > 0) {
            const auto mask = shift_mask(hp, wp, win, shift).to(scores.device());
            const auto nw = mask.size(0);
            scores = (scores.view({-1, nw, heads, win * win, win * win}) +
                      mask.unsqueeze(1).unsqueeze(0))
                         .view({-1, heads, win * win, win * win});
        }
        auto ctx =
            at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({-1, win * win, c});
        ctx = blk.attention->output->dense(ctx);
        auto merged = window_reverse(ctx.view({-1, win, win, c}), win, hp, wp);
        if (shift > 0) {
            merged = at::roll(merged, {shift, shift}, {1, 2});
        }
        if (pad_r > 0 || pad_b > 0) {
            merged = merged.narrow(1, 0, h).narrow(2, 0, w);
        }
        auto y = x + merged.reshape({n, h * w, c});
        return y + blk.output->dense(activation(blk.intermediate->dense(blk.layernorm_after(y)),
                                                config_.hidden_act, config_));
    }

    static at::Tensor merge(PatchMergingImpl& m, const at::Tensor& x, std::int64_t h,
                            std::int64_t w) {
        const auto n = x.size(0), c = x.size(2);
        auto t = x.view({n, h, w, c});
        if (h % 2 == 1 || w % 2 == 1) {
            t = at::constant_pad_nd(t, {0, 0, 0, w % 2, 0, h % 2}, 0.0);
        }
        using torch::indexing::None;
        using torch::indexing::Slice;
        const auto x0 = t.index({Slice(), Slice(0, None, 2), Slice(0, None, 2)});
        const auto x1 = t.index({Slice(), Slice(1, None, 2), Slice(0, None, 2)});
        const auto x2 = t.index({Slice(), Slice(0, None, 2), Slice(1, None, 2)});
        const auto x3 = t.index({Slice(), Slice(1, None, 2), Slice(1, None, 2)});
        const auto cat = torch::cat({x0, x1, x2, x3}, -1).reshape({n, -1, 4 * c});
        return m.reduction(m.norm(cat));
    }

    SwinModel model_;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_swin(const ModelConfig& config) {
    return std::make_unique<SwinRunner>(config);
}

}  // namespace radprobe::encoders::detail
