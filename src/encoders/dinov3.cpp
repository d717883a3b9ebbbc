// DINOv3 ViT (HF DINOv3ViTModel).
//
// Module tree = HF key tree: embeddings.{cls_token, mask_token,
// register_tokens, patch_embeddings (a Conv2d)}, layer.N.{norm1,
// attention.{q,k,v,o}_proj, layer_scale1.lambda1, norm2, mlp.{up_proj,
// down_proj[, gate_proj]}, layer_scale2.lambda1}, norm. No absolute position
// embedding: a 2-D RoPE rotates the queries and keys of the PATCH tokens (the
// CLS and register tokens are left alone). Patch centres are normalised to [-1,
// 1] per axis for the actual grid, so any input size works without
// interpolation; angles are 2π·coord·inv_freq with inv_freq = theta^(-arange(0,
// 1, 4/head_dim)), the y angles then the x angles, tiled twice over the head
// dimension, applied with rotate_half (all in float32, as HF). Gated MLP
// (use_gated_mlp): down(act(gate(x)) · up(x)).

#include <torch/torch.h>

#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace nn = torch::nn;

nn::LayerNorm layer_norm(const ModelConfig& c) {
    return nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

nn::Linear linear(std::int64_t in, std::int64_t out, bool bias) {
    return nn::Linear(nn::LinearOptions(in, out).bias(bias));
}

struct Dinov3EmbeddingsImpl : nn::Module {
    explicit Dinov3EmbeddingsImpl(const ModelConfig& c) {
        const auto d = c.hidden_size;
        cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
        mask_token = register_parameter("mask_token", torch::zeros({1, 1, d}));
        register_tokens =
            register_parameter("register_tokens", torch::zeros({1, c.num_register_tokens, d}));
        patch_embeddings = register_module(
            "patch_embeddings",
            nn::Conv2d(nn::Conv2dOptions(c.num_channels, d, c.patch_size).stride(c.patch_size)));
    }
    torch::Tensor cls_token, mask_token, register_tokens;
    nn::Conv2d patch_embeddings{nullptr};
};
TORCH_MODULE(Dinov3Embeddings);

struct Dinov3AttentionImpl : nn::Module {
    explicit Dinov3AttentionImpl(const ModelConfig& c) {
        const auto d = c.hidden_size;
        k_proj = register_module("k_proj", linear(d, d, c.key_bias));
        v_proj = register_module("v_proj", linear(d, d, c.value_bias));
        q_proj = register_module("q_proj", linear(d, d, c.query_bias));
        o_proj = register_module("o_proj", linear(d, d, c.proj_bias));
    }
    nn::Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(Dinov3Attention);

struct Dinov3LayerScaleImpl : nn::Module {
    explicit Dinov3LayerScaleImpl(const ModelConfig& c) {
        lambda1 = register_parameter("lambda1", torch::ones({c.hidden_size}));
    }
    torch::Tensor lambda1;
};
TORCH_MODULE(Dinov3LayerScale);

struct Dinov3MlpImpl : nn::Module {
    explicit Dinov3MlpImpl(const ModelConfig& c) {
        if (c.use_gated_mlp) {
            gate_proj = register_module("gate_proj",
                                        linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
        }
        up_proj =
            register_module("up_proj", linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
        down_proj =
            register_module("down_proj", linear(c.intermediate_size, c.hidden_size, c.mlp_bias));
    }
    nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Dinov3Mlp);

struct Dinov3LayerImpl : nn::Module {
    explicit Dinov3LayerImpl(const ModelConfig& c) {
        norm1 = register_module("norm1", layer_norm(c));
        attention = register_module("attention", Dinov3Attention(c));
        layer_scale1 = register_module("layer_scale1", Dinov3LayerScale(c));
        norm2 = register_module("norm2", layer_norm(c));
        mlp = register_module("mlp", Dinov3Mlp(c));
        layer_scale2 = register_module("layer_scale2", Dinov3LayerScale(c));
    }
    nn::LayerNorm norm1{nullptr}, norm2{nullptr};
    Dinov3Attention attention{nullptr};
    Dinov3LayerScale layer_scale1{nullptr}, layer_scale2{nullptr};
    Dinov3Mlp mlp{nullptr};
};
TORCH_MODULE(Dinov3Layer);

struct Dinov3ModelImpl : nn::Module {
    explicit Dinov3ModelImpl(const ModelConfig& c) {
        embeddings = register_module("embeddings", Dinov3Embeddings(c));
        layer = register_module("layer", layer_list<Dinov3Layer>(c, c.num_hidden_layers));
        norm = register_module("norm", layer_norm(c));
    }
    Dinov3Embeddings embeddings{nullptr};
    nn::ModuleList layer{nullptr};
    nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Dinov3Model);

at::Tensor rotate_half(const at::Tensor& x) {
    const auto half = x.size(-1) / 2;
    return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

class Dinov3Runner final : public FunctionalEncoder {
public:
    explicit Dinov3Runner(const ModelConfig& config) : FunctionalEncoder(config), model_(config) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    void prepare() override {
        check_activation(config_.hidden_act, config_);
        rope_cache_.clear();
    }

    std::int64_t input_channels() const override {
        return model_->embeddings->patch_embeddings->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        const double p = static_cast<double>(config_.patch_size);
        const double patches = std::floor(height / p) * std::floor(width / p);
        const double t = 1.0 + static_cast<double>(config_.num_register_tokens) + patches;
        const double d = static_cast<double>(config_.hidden_size);
        const double hf = static_cast<double>(config_.intermediate_size);
        const double mlp = (config_.use_gated_mlp ? 3.0 : 2.0) * 2 * t * d * hf;
        const double per_layer = 2 * t * d * 4 * d + 4 * t * t * d + mlp;
        return 2 * patches * d * static_cast<double>(input_channels()) * p * p +
               per_layer * static_cast<double>(config_.num_hidden_layers);
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        auto& proj = model_->embeddings->patch_embeddings;
        fold_patch_embedding(proj->weight, proj->bias, mean, std);
    }

private:
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool train) override {
        const std::int64_t p = config_.patch_size;
        check_pixels(pixel_values, input_channels(), p);
        const auto [n, gh, gw] = patch_grid(pixel_values, p);
        const std::int64_t d = config_.hidden_size;
        const std::int64_t r = config_.num_register_tokens;
        auto& emb = *model_->embeddings;
        const auto patches = embed_patches(to_input(pixel_values), emb.patch_embeddings->weight,
                                           emb.patch_embeddings->bias, p);
        const auto x = torch::cat(
            {emb.cls_token.expand({n, 1, d}), emb.register_tokens.expand({n, r, d}), patches}, 1);
        // Training: fresh tables (the cached ones are inference tensors autograd
        // cannot save).
        const auto rope_tables = train ? rope_tables_for(gh, gw) : rope(gh, gw);
        const at::Tensor& cos = rope_tables.first;
        const at::Tensor& sin = rope_tables.second;

        EncoderOutput out;
        out.grid_h = gh;
        out.grid_w = gw;
        auto& norm = model_->norm;
        const std::int64_t prefix = 1 + r;
        const std::int64_t g = gh * gw;
        BlockStack stack(config_, norm->weight, norm->bias);
        stack.workspace = &block_workspace_;
        stack.rotate = [&](const at::Tensor& t) {
            const auto tp = t.narrow(2, prefix, g);
            const auto rotated = (tp * cos + rotate_half(tp) * sin).to(t.scalar_type());
            return torch::cat({t.narrow(2, 0, prefix), rotated}, 2);
        };
        stack.block = [&](std::int64_t i) {
            const auto& l = *model_->layer[static_cast<std::size_t>(i)]->as<Dinov3LayerImpl>();
            const auto& sa = *l.attention;
            const auto& mlp = *l.mlp;
            auto b = make_pre_ln_block(l.norm1, sa.q_proj, sa.k_proj, sa.v_proj, sa.o_proj, l.norm2,
                                       mlp.up_proj, mlp.down_proj);
            b.ls1 = l.layer_scale1->lambda1;
            if (config_.use_gated_mlp) {
                b.gate_w = mlp.gate_proj->weight;
                b.gate_b = mlp.gate_proj->bias;
            }
            b.ls2 = l.layer_scale2->lambda1;
            return b;
        };
        out.last_hidden_state = stack.norm(run_blocks(x, stack, config_, opts, out));
        out.tokens = split_tokens(out.last_hidden_state, r, gh, gw, true);
        out.pooled = out.tokens.cls;
        return out;
    }

    /// cos/sin tables [gh·gw, head_dim] for a grid (cached per grid).
    const std::pair<at::Tensor, at::Tensor>& rope(std::int64_t gh, std::int64_t gw) {
        const auto key = std::make_pair(gh, gw);
        auto it = rope_cache_.find(key);
        if (it != rope_cache_.end()) {
            return it->second;
        }
        return rope_cache_.emplace(key, rope_tables_for(gh, gw)).first->second;
    }

    std::pair<at::Tensor, at::Tensor> rope_tables_for(std::int64_t gh, std::int64_t gw) const {
        const auto f = torch::TensorOptions().dtype(torch::kFloat32);
        const auto hd = config_.hidden_size / config_.num_attention_heads;
        const auto inv_freq =
            at::reciprocal(at::pow(config_.rope_theta, torch::arange(0.0, 1.0, 4.0 / hd, f)));
        const auto ch = torch::arange(0.5, static_cast<double>(gh), 1.0, f) / gh;
        const auto cw = torch::arange(0.5, static_cast<double>(gw), 1.0, f) / gw;
        const auto grids = torch::meshgrid({ch, cw}, "ij");
        auto coords = torch::stack({grids[0], grids[1]}, -1).flatten(0, 1);  // [g, 2] (y, x)
        coords = 2.0 * coords - 1.0;
        auto angles = (2.0 * M_PI) * coords.unsqueeze(2) * inv_freq.view({1, 1, -1});
        angles = angles.flatten(1, 2).repeat({1, 2}).to(device());
        return {at::cos(angles), at::sin(angles)};
    }

    Dinov3Model model_;
    std::map<std::pair<std::int64_t, std::int64_t>, std::pair<at::Tensor, at::Tensor>> rope_cache_;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_dinov3(const ModelConfig& config) {
    return std::make_unique<Dinov3Runner>(config);
}

}  // namespace radprobe::encoders::detail
