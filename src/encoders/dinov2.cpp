// DINOv2 (HF Dinov2Model) and DINOv2 with registers (HF
// Dinov2WithRegistersModel).
//
// The module tree mirrors the HF key tree (embeddings.*, encoder.layer.N.*,
// layernorm.*) so that checkpoint keys map 1:1. The forward pass is the block
// stack every ViT-like family shares (run_blocks: the workspace pass with tiled
// attention under inference, block_workspace.cpp).

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace nn = torch::nn;

struct Dinov2Options {
    explicit Dinov2Options(const ModelConfig& c)
        : hidden_size_(c.hidden_size),
          num_layers_(c.num_hidden_layers),
          num_heads_(c.num_attention_heads),
          patch_size_(c.patch_size),
          num_channels_(c.num_channels),
          native_grid_(c.native_grid()),
          num_register_tokens_(c.num_register_tokens),
          layer_norm_eps_(c.layer_norm_eps),
          qkv_bias_(c.qkv_bias),
          use_swiglu_ffn_(c.use_swiglu_ffn),
          mlp_hidden_(static_cast<std::int64_t>(static_cast<double>(c.hidden_size) * c.mlp_ratio)) {
        if (use_swiglu_ffn_) {
            // HF: hidden = int(int(D * mlp_ratio) * 2 / 3), rounded up to a multiple
            // of 8.
            mlp_hidden_ =
                (static_cast<std::int64_t>(static_cast<double>(mlp_hidden_) * 2.0 / 3.0) + 7) / 8 *
                8;
        }
    }
    TORCH_ARG(std::int64_t, hidden_size);
    TORCH_ARG(std::int64_t, num_layers);
    TORCH_ARG(std::int64_t, num_heads);
    TORCH_ARG(std::int64_t, patch_size);
    TORCH_ARG(std::int64_t, num_channels);
    TORCH_ARG(std::int64_t, native_grid);
    TORCH_ARG(std::int64_t, num_register_tokens);
    TORCH_ARG(double, layer_norm_eps);
    TORCH_ARG(bool, qkv_bias);
    TORCH_ARG(bool, use_swiglu_ffn);
    TORCH_ARG(std::int64_t, mlp_hidden);
};

nn::LayerNorm make_layer_norm(const Dinov2Options& o) {
    return nn::LayerNorm(nn::LayerNormOptions({o.hidden_size()}).eps(o.layer_norm_eps()));
}

struct Dinov2PatchEmbeddingsImpl : nn::Module {
    explicit Dinov2PatchEmbeddingsImpl(const Dinov2Options& o) {
        projection = register_module(
            "projection",
            nn::Conv2d(nn::Conv2dOptions(o.num_channels(), o.hidden_size(), o.patch_size())
                           .stride(o.patch_size())));
    }
    nn::Conv2d projection{nullptr};
};
TORCH_MODULE(Dinov2PatchEmbeddings);

struct Dinov2EmbeddingsImpl : nn::Module {
    explicit Dinov2EmbeddingsImpl(const Dinov2Options& o) {
        const auto d = o.hidden_size();
        cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
        mask_token = register_parameter("mask_token", torch::zeros({1, d}));
        position_embeddings = register_parameter(
            "position_embeddings", torch::zeros({1, o.native_grid() * o.native_grid() + 1, d}));
        if (o.num_register_tokens() > 0) {
            register_tokens = register_parameter("register_tokens",
                                                 torch::zeros({1, o.num_register_tokens(), d}));
        }
        patch_embeddings = register_module("patch_embeddings", Dinov2PatchEmbeddings(o));
    }
    torch::Tensor cls_token, mask_token, position_embeddings, register_tokens;
    Dinov2PatchEmbeddings patch_embeddings{nullptr};
};
TORCH_MODULE(Dinov2Embeddings);

struct Dinov2SelfAttentionImpl : nn::Module {
    explicit Dinov2SelfAttentionImpl(const Dinov2Options& o) {
        const auto d = o.hidden_size();
        query = register_module("query", nn::Linear(nn::LinearOptions(d, d).bias(o.qkv_bias())));
        key = register_module("key", nn::Linear(nn::LinearOptions(d, d).bias(o.qkv_bias())));
        value = register_module("value", nn::Linear(nn::LinearOptions(d, d).bias(o.qkv_bias())));
    }
    nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
};
TORCH_MODULE(Dinov2SelfAttention);

struct Dinov2SelfOutputImpl : nn::Module {
    explicit Dinov2SelfOutputImpl(const Dinov2Options& o) {
        dense = register_module("dense", nn::Linear(o.hidden_size(), o.hidden_size()));
    }
    nn::Linear dense{nullptr};
};
TORCH_MODULE(Dinov2SelfOutput);

struct Dinov2AttentionImpl : nn::Module {
    explicit Dinov2AttentionImpl(const Dinov2Options& o) {
        attention = register_module("attention", Dinov2SelfAttention(o));
        output = register_module("output", Dinov2SelfOutput(o));
    }
    Dinov2SelfAttention attention{nullptr};
    Dinov2SelfOutput output{nullptr};
};
TORCH_MODULE(Dinov2Attention);

struct Dinov2LayerScaleImpl : nn::Module {
    explicit Dinov2LayerScaleImpl(const Dinov2Options& o) {
        lambda1 = register_parameter("lambda1", torch::ones({o.hidden_size()}));
    }
    torch::Tensor lambda1;
};
TORCH_MODULE(Dinov2LayerScale);

/// fc1 → activation → fc2.
struct Dinov2MlpImpl : nn::Module {
    explicit Dinov2MlpImpl(const Dinov2Options& o) {
        fc1 = register_module("fc1", nn::Linear(o.hidden_size(), o.mlp_hidden()));
        fc2 = register_module("fc2", nn::Linear(o.mlp_hidden(), o.hidden_size()));
    }
    nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Dinov2Mlp);

/// weights_in → chunk(2) → silu(x1) · x2 → weights_out.
struct Dinov2SwiGluFfnImpl : nn::Module {
    explicit Dinov2SwiGluFfnImpl(const Dinov2Options& o) {
        weights_in = register_module("weights_in", nn::Linear(o.hidden_size(), 2 * o.mlp_hidden()));
        weights_out = register_module("weights_out", nn::Linear(o.mlp_hidden(), o.hidden_size()));
    }
    nn::Linear weights_in{nullptr}, weights_out{nullptr};
};
TORCH_MODULE(Dinov2SwiGluFfn);

struct Dinov2LayerImpl : nn::Module {
    explicit Dinov2LayerImpl(const Dinov2Options& o) {
        norm1 = register_module("norm1", make_layer_norm(o));
        attention = register_module("attention", Dinov2Attention(o));
        layer_scale1 = register_module("layer_scale1", Dinov2LayerScale(o));
        norm2 = register_module("norm2", make_layer_norm(o));
        if (o.use_swiglu_ffn()) {
            swiglu = register_module("mlp", Dinov2SwiGluFfn(o));
        } else {
            mlp = register_module("mlp", Dinov2Mlp(o));
        }
        layer_scale2 = register_module("layer_scale2", Dinov2LayerScale(o));
    }
    nn::LayerNorm norm1{nullptr}, norm2{nullptr};
    Dinov2Attention attention{nullptr};
    Dinov2LayerScale layer_scale1{nullptr}, layer_scale2{nullptr};
    Dinov2Mlp mlp{nullptr};
    Dinov2SwiGluFfn swiglu{nullptr};
};
TORCH_MODULE(Dinov2Layer);

struct Dinov2EncoderImpl : nn::Module {
    explicit Dinov2EncoderImpl(const Dinov2Options& o) {
        layer = register_module("layer", layer_list<Dinov2Layer>(o, o.num_layers()));
    }
    nn::ModuleList layer{nullptr};
};
TORCH_MODULE(Dinov2Encoder);

struct Dinov2ModelImpl : nn::Module {
    explicit Dinov2ModelImpl(const Dinov2Options& o) {
        embeddings = register_module("embeddings", Dinov2Embeddings(o));
        encoder = register_module("encoder", Dinov2Encoder(o));
        layernorm = register_module("layernorm", make_layer_norm(o));
    }
    Dinov2Embeddings embeddings{nullptr};
    Dinov2Encoder encoder{nullptr};
    nn::LayerNorm layernorm{nullptr};
};
TORCH_MODULE(Dinov2Model);

class Dinov2Runner final : public FunctionalEncoder {
public:
    explicit Dinov2Runner(const ModelConfig& config)
        : FunctionalEncoder(config), options_(config), model_(options_) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    void prepare() override {
        if (!options_.use_swiglu_ffn()) {  // SwiGLU's activation is fixed (silu)
            check_activation(config_.hidden_act, config_);
        }
    }

    std::int64_t input_channels() const override {
        return model_->embeddings->patch_embeddings->projection->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        const double p = static_cast<double>(options_.patch_size());
        const double patches = std::floor(height / p) * std::floor(width / p);
        const double t = 1.0 + static_cast<double>(options_.num_register_tokens()) + patches;
        const double d = static_cast<double>(options_.hidden_size());
        const double hf = static_cast<double>(options_.mlp_hidden());
        const double mlp = options_.use_swiglu_ffn() ? 2 * t * d * 3 * hf : 2 * t * d * 2 * hf;
        const double per_layer = 2 * t * d * 4 * d + 4 * t * t * d + mlp;
        return 2 * patches * d * static_cast<double>(input_channels()) * p * p +
               per_layer * static_cast<double>(options_.num_layers());
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        auto& proj = model_->embeddings->patch_embeddings->projection;
        fold_patch_embedding(proj->weight, proj->bias, mean, std);
    }

private:
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        const std::int64_t p = options_.patch_size();
        check_pixels(pixel_values, input_channels(), p);
        const auto [n, gh, gw] = patch_grid(pixel_values, p);
        const std::int64_t r = options_.num_register_tokens();
        const std::int64_t d = options_.hidden_size();
        auto& emb = *model_->embeddings;
        const auto& proj = emb.patch_embeddings->projection;
        // The strided convolution drops the remainder rows/columns, as HF's does.
        const auto patches = embed_patches(to_input(pixel_values), proj->weight, proj->bias, p);
        const auto pos = positions(gh, gw);
        std::vector<at::Tensor> parts{(emb.cls_token + pos.narrow(1, 0, 1)).expand({n, 1, d})};
        if (r > 0) {
            parts.push_back(emb.register_tokens.expand({n, r, d}));
        }
        parts.push_back(patches + pos.narrow(1, 1, gh * gw));
        const auto x = torch::cat(parts, 1);

        EncoderOutput out;
        out.grid_h = gh;
        out.grid_w = gw;
        BlockStack stack;
        stack.num_layers = options_.num_layers();
        stack.heads = options_.num_heads();
        stack.norm = [&](const at::Tensor& s) { return final_norm(s); };
        stack.block = [&](std::int64_t i) { return block_view(i); };
        stack.workspace = &block_workspace_;
        out.last_hidden_state = final_norm(run_blocks(x, stack, config_, opts, out));
        out.tokens = split_tokens(out.last_hidden_state, r, gh, gw);
        return out;
    }

    /// Block i as tensors (views of the module's parameters).
    PreLnBlock block_view(std::int64_t i) {
        const auto& l = *model_->encoder->layer[static_cast<std::size_t>(i)]->as<Dinov2LayerImpl>();
        const auto& sa = *l.attention->attention;
        const bool swiglu = options_.use_swiglu_ffn();
        auto b = make_pre_ln_block(l.norm1, sa.query, sa.key, sa.value, l.attention->output->dense,
                                   l.norm2, swiglu ? l.swiglu->weights_in : l.mlp->fc1,
                                   swiglu ? l.swiglu->weights_out : l.mlp->fc2);
        b.ls1 = l.layer_scale1->lambda1;
        if (swiglu) {
            // weights_in's outputs are [x1 | x2]: silu(x1) · x2 is the gated form
            // with the first half as the gate.
            const std::int64_t hf = options_.mlp_hidden();
            const auto& in = l.swiglu->weights_in;
            b.gate_w = in->weight.narrow(0, 0, hf);
            b.gate_b = in->bias.narrow(0, 0, hf);
            b.fc1_w = in->weight.narrow(0, hf, hf);
            b.fc1_b = in->bias.narrow(0, hf, hf);
            b.act = "silu";
        }
        b.ls2 = l.layer_scale2->lambda1;
        return b;
    }

    /// Position embeddings for a gh × gw grid: [1, 1 + gh·gw, D], resized as HF does.
    at::Tensor positions(std::int64_t gh, std::int64_t gw) const {
        const auto& pos = model_->embeddings->position_embeddings;
        const std::int64_t g0 = options_.native_grid();
        const std::int64_t d = options_.hidden_size();
        if (gh == g0 && gw == g0) {
            return pos;
        }
        // HF (transformers >= 4.45): bicubic, align_corners=False, explicit output size, in
        // float32; Dinov2WithRegisters resizes with antialias=True (which only differs from
        // plain bicubic when a side shrinks).
        namespace F = torch::nn::functional;
        const auto grid = pos.narrow(1, 1, g0 * g0).reshape({1, g0, g0, d}).permute({0, 3, 1, 2});
        const auto resized =
            F::interpolate(grid.to(torch::kFloat32),
                           F::InterpolateFuncOptions()
                               .size(std::vector<std::int64_t>{gh, gw})
                               .mode(torch::kBicubic)
                               .align_corners(false)
                               .antialias(config_.model_type == "dinov2_with_registers"));
        return torch::cat(
            {pos.narrow(1, 0, 1), resized.permute({0, 2, 3, 1}).reshape({1, gh * gw, d})}, 1);
    }

    at::Tensor final_norm(const at::Tensor& state) {
        const auto& ln = model_->layernorm;
        return at::layer_norm(state, {options_.hidden_size()}, ln->weight, ln->bias,
                              options_.layer_norm_eps());
    }

    Dinov2Options options_;
    Dinov2Model model_;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_dinov2(const ModelConfig& config) {
    return std::make_unique<Dinov2Runner>(config);
}

}  // namespace radprobe::encoders::detail
