// AIMv2 (HF Aimv2VisionModel, model_type aimv2_vision_model; Apple's apple/aimv2-* in
// transformers' layout), and the image side of HF Aimv2Model (model_type aimv2: the same tower
// under vision_model.*, plus visual_projection → EncoderOutput::projected).
//
// Module tree = HF key tree: embeddings.{patch_embed (a Conv2d with bias), rms_norm,
// position_embedding (a learned table of (image_size/patch)² rows; absent when is_native)},
// encoder.layers.N.{rms_norm1, attention.{q,k,v,out}_proj (bias = qkv_bias), rms_norm2,
// ffn.{gate,up,down}_proj (bias = mlp_bias)}, rms_norm, and with use_head the attention-pooling
// head head.{cls_token, k_proj, v_proj (bias = qkv_bias), output_proj (with bias)}.
//
// Forward: patches → RMSNorm → + positions (the table's row j on patch j, no interpolation: HF
// refuses other grids, so does radprobe; native variants: the 2-D sin-cos of the input's own
// grid, [sin(col·ω), cos(col·ω), sin(row·ω), cos(row·ω)], ω_k = 10000^(−k/(D/4))) → pre-norm
// blocks without layer scale (RMSNorm, softmax attention, down(silu(gate(y)) · up(y))) → final
// RMSNorm = last_hidden_state. No CLS token: tokens are the patches. pooled = the head when there
// is one: the learned cls_token as the only query (no query projection) attends over
// k_proj/v_proj of the tokens, then output_proj; without a head there is no pooled output.

#include <torch/torch.h>

#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace nn = torch::nn;

nn::Linear linear(std::int64_t in, std::int64_t out, bool bias) {
    return nn::Linear(nn::LinearOptions(in, out).bias(bias));
}

/// HF Aimv2RMSNorm: a weight only.
struct RmsNormImpl : nn::Module {
    explicit RmsNormImpl(std::int64_t d) {
        weight = register_parameter("weight", torch::ones({d}));
    }
    torch::Tensor weight;
};
TORCH_MODULE(RmsNorm);

struct Aimv2EmbeddingsImpl : nn::Module {
    explicit Aimv2EmbeddingsImpl(const ModelConfig& c) {
        const auto d = c.hidden_size;
        patch_embed = register_module(
            "patch_embed",
            nn::Conv2d(nn::Conv2dOptions(c.num_channels, d, c.patch_size).stride(c.patch_size)));
        rms_norm = register_module("rms_norm", RmsNorm(d));
        if (!c.is_native) {
            const auto g = c.native_grid();
            position_embedding = register_module("position_embedding", nn::Embedding(g * g, d));
        }
    }
    nn::Conv2d patch_embed{nullptr};
    RmsNorm rms_norm{nullptr};
    nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(Aimv2Embeddings);

struct Aimv2AttentionImpl : nn::Module {
    explicit Aimv2AttentionImpl(const ModelConfig& c) {
        const auto d = c.hidden_size;
        k_proj = register_module("k_proj", linear(d, d, c.qkv_bias));
        v_proj = register_module("v_proj", linear(d, d, c.qkv_bias));
        q_proj = register_module("q_proj", linear(d, d, c.qkv_bias));
        out_proj = register_module("out_proj", linear(d, d, c.qkv_bias));
    }
    nn::Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(Aimv2Attention);

struct Aimv2MlpImpl : nn::Module {
    explicit Aimv2MlpImpl(const ModelConfig& c) {
        const auto d = c.hidden_size, h = c.intermediate_size;
        gate_proj = register_module("gate_proj", linear(d, h, c.mlp_bias));
        up_proj = register_module("up_proj", linear(d, h, c.mlp_bias));
        down_proj = register_module("down_proj", linear(h, d, c.mlp_bias));
    }
    nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Aimv2Mlp);

struct Aimv2LayerImpl : nn::Module {
    explicit Aimv2LayerImpl(const ModelConfig& c) {
        attention = register_module("attention", Aimv2Attention(c));
        ffn = register_module("ffn", Aimv2Mlp(c));
        rms_norm1 = register_module("rms_norm1", RmsNorm(c.hidden_size));
        rms_norm2 = register_module("rms_norm2", RmsNorm(c.hidden_size));
    }
    Aimv2Attention attention{nullptr};
    Aimv2Mlp ffn{nullptr};
    RmsNorm rms_norm1{nullptr}, rms_norm2{nullptr};
};
TORCH_MODULE(Aimv2Layer);

struct Aimv2EncoderImpl : nn::Module {
    explicit Aimv2EncoderImpl(const ModelConfig& c) {
        layers = register_module("layers", layer_list<Aimv2Layer>(c, c.num_hidden_layers));
    }
    nn::ModuleList layers{nullptr};
};
TORCH_MODULE(Aimv2Encoder);

struct Aimv2HeadImpl : nn::Module {
    explicit Aimv2HeadImpl(const ModelConfig& c) {
        const auto d = c.hidden_size;
        k_proj = register_module("k_proj", linear(d, d, c.qkv_bias));
        v_proj = register_module("v_proj", linear(d, d, c.qkv_bias));
        cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
        output_proj = register_module("output_proj", linear(d, d, true));
    }
    nn::Linear k_proj{nullptr}, v_proj{nullptr}, output_proj{nullptr};
    torch::Tensor cls_token;
};
TORCH_MODULE(Aimv2Head);

struct Aimv2ModelImpl : nn::Module {
    explicit Aimv2ModelImpl(const ModelConfig& c) {
        embeddings = register_module("embeddings", Aimv2Embeddings(c));
        encoder = register_module("encoder", Aimv2Encoder(c));
        rms_norm = register_module("rms_norm", RmsNorm(c.hidden_size));
        if (c.has_pooler) {
            head = register_module("head", Aimv2Head(c));
        }
    }
    Aimv2Embeddings embeddings{nullptr};
    Aimv2Encoder encoder{nullptr};
    RmsNorm rms_norm{nullptr};
    Aimv2Head head{nullptr};
};
TORCH_MODULE(Aimv2Model);

/// HF Aimv2Model's image side (model_type aimv2, the -lit checkpoints): vision_model.* and
/// visual_projection (no bias); the text tower, text_projection and logit_scale are not built.
struct Aimv2WithProjectionImpl : nn::Module {
    explicit Aimv2WithProjectionImpl(const ModelConfig& c) {
        vision_model = register_module("vision_model", Aimv2Model(c));
        visual_projection =
            register_module("visual_projection", linear(c.hidden_size, c.projection_dim, false));
    }
    Aimv2Model vision_model{nullptr};
    nn::Linear visual_projection{nullptr};
};
TORCH_MODULE(Aimv2WithProjection);

class Aimv2Runner final : public FunctionalEncoder {
public:
    explicit Aimv2Runner(const ModelConfig& config) : FunctionalEncoder(config) {
        if (config.model_type == "aimv2") {
            composite_ = Aimv2WithProjection(config);
            model_ = composite_->vision_model;
            root_ = composite_.ptr();
        } else {
            model_ = Aimv2Model(config);
            root_ = model_.ptr();
        }
        root_->eval();
    }

    torch::nn::Module& module() override { return *root_; }

    std::int64_t input_channels() const override {
        return model_->embeddings->patch_embed->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        const double p = static_cast<double>(config_.patch_size);
        const double t = std::floor(height / p) * std::floor(width / p);
        const double d = static_cast<double>(config_.hidden_size);
        const double hf = static_cast<double>(config_.intermediate_size);
        const double per_layer = 2 * t * d * 4 * d + 4 * t * t * d + 3.0 * 2 * t * d * hf;
        const double head = model_->head ? 2 * t * d * 2 * d + 4 * t * d : 0.0;
        return 2 * t * d * static_cast<double>(input_channels()) * p * p +
               per_layer * static_cast<double>(config_.num_hidden_layers) + head;
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        auto& proj = model_->embeddings->patch_embed;
        fold_patch_embedding(proj->weight, proj->bias, mean, std);
    }

private:
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        const std::int64_t p = config_.patch_size;
        check_pixels(pixel_values, input_channels(), p);
        const auto [n, gh, gw] = patch_grid(pixel_values, p);
        const double eps = config_.layer_norm_eps;
        auto& emb = *model_->embeddings;
        auto x = rms_norm(embed_patches(to_input(pixel_values), emb.patch_embed->weight,
                                        emb.patch_embed->bias, p),
                          emb.rms_norm->weight, eps);
        x = x + positions(gh, gw, x);

        EncoderOutput out;
        out.grid_h = gh;
        out.grid_w = gw;
        BlockStack stack;
        stack.num_layers = config_.num_hidden_layers;
        stack.heads = config_.num_attention_heads;
        stack.workspace = &block_workspace_;
        const at::Tensor final_norm = model_->rms_norm->weight;
        stack.norm = [final_norm, eps](const at::Tensor& s) {
            return rms_norm(s, final_norm, eps);
        };
        stack.block = [&](std::int64_t i) {
            const auto& l =
                *model_->encoder->layers[static_cast<std::size_t>(i)]->as<Aimv2LayerImpl>();
            const auto& sa = *l.attention;
            const auto& ffn = *l.ffn;
            PreLnBlock b;
            b.rms_norm = true;
            b.ln1_w = l.rms_norm1->weight;
            b.ln2_w = l.rms_norm2->weight;
            b.q_w = sa.q_proj->weight;
            b.q_b = sa.q_proj->bias;
            b.k_w = sa.k_proj->weight;
            b.k_b = sa.k_proj->bias;
            b.v_w = sa.v_proj->weight;
            b.v_b = sa.v_proj->bias;
            b.o_w = sa.out_proj->weight;
            b.o_b = sa.out_proj->bias;
            b.gate_w = ffn.gate_proj->weight;
            b.gate_b = ffn.gate_proj->bias;
            b.fc1_w = ffn.up_proj->weight;
            b.fc1_b = ffn.up_proj->bias;
            b.fc2_w = ffn.down_proj->weight;
            b.fc2_b = ffn.down_proj->bias;
            return b;
        };
        out.last_hidden_state = stack.norm(run_blocks(x, stack, config_, opts, out));
        out.tokens = split_tokens(out.last_hidden_state, 0, gh, gw, false);
        if (model_->head) {
            out.pooled = attention_pool(out.last_hidden_state);
        }
        if (composite_) {
            out.projected = composite_->visual_projection(out.pooled);  // not normalised
        }
        return out;
    }

    /// The position embedding for a gh × gw grid, [1, gh·gw, D] in x's dtype.
    at::Tensor positions(std::int64_t gh, std::int64_t gw, const at::Tensor& x) const {
        if (config_.is_native) {
            return sincos_positions(gh, gw, x);
        }
        const auto g0 = config_.native_grid();
        RADPROBE_USAGE_CHECK(gh == g0 && gw == g0, "AIMv2 (", config_.dir.string(),
                             ") has a learned position table for its ", g0, "x", g0,
                             " patch grid (", config_.image_size,
                             " px) and no rule for other sizes; got a ", gh, "x", gw,
                             " grid: resize the input to ", config_.image_size,
                             " px (the native variants take any size)");
        return model_->embeddings->position_embedding->weight.unsqueeze(0).to(x.scalar_type());
    }

    /// HF Aimv2 native: [sin(col·ω), cos(col·ω), sin(row·ω), cos(row·ω)] per patch (row-major),
    /// ω_k = 10000^(−k/(D/4)), k < D/4.
    at::Tensor sincos_positions(std::int64_t gh, std::int64_t gw, const at::Tensor& x) const {
        const auto f = x.options();
        const std::int64_t quarter = config_.hidden_size / 4;
        const auto omega =
            at::pow(10000.0, -torch::arange(quarter, f) / static_cast<double>(quarter));
        const auto rows = torch::arange(gh, f).repeat_interleave(gw);  // patch t = r·gw + c
        const auto cols = torch::arange(gw, f).repeat({gh});
        const auto a = cols.unsqueeze(1) * omega.unsqueeze(0);
        const auto b = rows.unsqueeze(1) * omega.unsqueeze(0);
        return torch::cat({at::sin(a), at::cos(a), at::sin(b), at::cos(b)}, 1).unsqueeze(0);
    }

    /// The attention-pooling head on N×T×D tokens → N×D.
    at::Tensor attention_pool(const at::Tensor& tokens) {
        auto& head = *model_->head;
        const std::int64_t n = tokens.size(0), d = tokens.size(2);
        const auto heads = config_.num_attention_heads;
        const double scale = 1.0 / std::sqrt(static_cast<double>(d / heads));
        const auto q =
            split_heads(head.cls_token.to(tokens.scalar_type()).expand({n, 1, d}), heads);
        const auto k = split_heads(head.k_proj(tokens), heads);
        const auto v = split_heads(head.v_proj(tokens), heads);
        return head.output_proj(attention(q, k, v, scale).squeeze(1));
    }

    Aimv2Model model_{nullptr};
    Aimv2WithProjection composite_{nullptr};
    std::shared_ptr<torch::nn::Module> root_;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_aimv2(const ModelConfig& config) {
    return std::make_unique<Aimv2Runner>(config);
}

}  // namespace radprobe::encoders::detail
