// CLIP vision tower (HF CLIPVisionModel) and SigLIP vision tower (HF
// SiglipVisionModel).
//
// Both share the HF key tree vision_model.{embeddings.{patch_embedding,
// position_embedding}, encoder.layers.N.{layer_norm1,
// self_attn.{q,k,v,out}_proj, layer_norm2, mlp.{fc1,fc2}}, post_layernorm}; the
// module tree mirrors it so checkpoint keys map 1:1.
//  - CLIP: class_embedding (CLS), optional visual_projection
//  (CLIPVisionModelWithProjection,
//    image_embeds = visual_projection(pooled) → EncoderOutput::projected),
//    patch conv without bias, pre_layrnorm (sic) before the encoder;
//    last_hidden_state is the last layer's output WITHOUT a final norm; the
//    pooled output is post_layernorm(CLS).
//  - SigLIP: no CLS, patch conv with bias, last_hidden_state =
//  post_layernorm(encoder output);
//    the pooled output is the attention-pooling ("MAP") head: a learned probe
//    attends over the tokens with torch nn.MultiheadAttention (packed in_proj),
//    then x + mlp(layernorm(x)).
// Non-native input sizes: the patch part of the position table is resized
// bicubically (HF interpolate_pos_encoding=True).

#include <torch/torch.h>

#include <array>
#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace nn = torch::nn;

nn::LayerNorm layer_norm(const ModelConfig& c) {
    return nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

bool is_siglip(const ModelConfig& c) {
    return c.model_type == "siglip_vision_model";
}

struct ClipEmbeddingsImpl : nn::Module {
    explicit ClipEmbeddingsImpl(const ModelConfig& c) {
        const auto g = c.native_grid();
        const bool siglip = is_siglip(c);
        if (!siglip) {
            class_embedding = register_parameter("class_embedding", torch::zeros({c.hidden_size}));
        }
        patch_embedding = register_module(
            "patch_embedding",
            nn::Conv2d(nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size)
                           .stride(c.patch_size)
                           .bias(siglip)));
        position_embedding = register_module(
            "position_embedding", nn::Embedding(g * g + (siglip ? 0 : 1), c.hidden_size));
    }
    torch::Tensor class_embedding;
    nn::Conv2d patch_embedding{nullptr};
    nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipEmbeddings);

struct ClipAttentionImpl : nn::Module {
    explicit ClipAttentionImpl(const ModelConfig& c) {
        const auto d = c.hidden_size;
        k_proj = register_module("k_proj", nn::Linear(d, d));
        v_proj = register_module("v_proj", nn::Linear(d, d));
        q_proj = register_module("q_proj", nn::Linear(d, d));
        out_proj = register_module("out_proj", nn::Linear(d, d));
    }
    nn::Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(ClipAttention);

using ClipMlp = FcMlp;

struct ClipLayerImpl : nn::Module {
    explicit ClipLayerImpl(const ModelConfig& c) {
        self_attn = register_module("self_attn", ClipAttention(c));
        layer_norm1 = register_module("layer_norm1", layer_norm(c));
        mlp = register_module("mlp", ClipMlp(c));
        layer_norm2 = register_module("layer_norm2", layer_norm(c));
    }
    ClipAttention self_attn{nullptr};
    nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
    ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipLayer);

struct ClipEncoderImpl : nn::Module {
    explicit ClipEncoderImpl(const ModelConfig& c) {
        layers = register_module("layers", layer_list<ClipLayer>(c, c.num_hidden_layers));
    }
    nn::ModuleList layers{nullptr};
};
TORCH_MODULE(ClipEncoder);

/// SigLIP's MAP head; `attention` holds torch MultiheadAttention's packed
/// parameters.
struct PackedMhaImpl : nn::Module {
    explicit PackedMhaImpl(std::int64_t d) {
        in_proj_weight = register_parameter("in_proj_weight", torch::zeros({3 * d, d}));
        in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * d}));
        out_proj = register_module("out_proj", nn::Linear(d, d));
    }
    torch::Tensor in_proj_weight, in_proj_bias;
    nn::Linear out_proj{nullptr};
};
TORCH_MODULE(PackedMha);

struct SiglipHeadImpl : nn::Module {
    explicit SiglipHeadImpl(const ModelConfig& c) {
        probe = register_parameter("probe", torch::zeros({1, 1, c.hidden_size}));
        attention = register_module("attention", PackedMha(c.hidden_size));
        layernorm = register_module("layernorm", layer_norm(c));
        mlp = register_module("mlp", ClipMlp(c));
    }
    torch::Tensor probe;
    PackedMha attention{nullptr};
    nn::LayerNorm layernorm{nullptr};
    ClipMlp mlp{nullptr};
};
TORCH_MODULE(SiglipHead);

/// CoCa's attentional pooler (open_clip AttentionalPooler): `query` (Q × E) after ln_q attends
/// over ln_k(tokens) (width D) with torch MultiheadAttention; kdim = D ≠ E gives separate
/// q/k/v projection weights, D = E the packed in_proj_weight.
struct AttnPoolImpl : nn::Module {
    explicit AttnPoolImpl(const ModelConfig& c) {
        const auto e = c.projection_dim;
        const auto d = c.hidden_size;
        query = register_parameter("query", torch::zeros({c.attn_pool_queries, e}));
        ln_q = register_module("ln_q", nn::LayerNorm(nn::LayerNormOptions({e}).eps(1e-5)));
        ln_k = register_module("ln_k", nn::LayerNorm(nn::LayerNormOptions({d}).eps(1e-5)));
        attn = register_module("attn", std::make_shared<nn::Module>());
        if (e == d) {
            in_proj_weight = attn->register_parameter("in_proj_weight", torch::zeros({3 * e, e}));
        } else {
            q_proj_weight = attn->register_parameter("q_proj_weight", torch::zeros({e, e}));
            k_proj_weight = attn->register_parameter("k_proj_weight", torch::zeros({e, d}));
            v_proj_weight = attn->register_parameter("v_proj_weight", torch::zeros({e, d}));
        }
        in_proj_bias = attn->register_parameter("in_proj_bias", torch::zeros({3 * e}));
        out_proj = attn->register_module("out_proj", nn::Linear(e, e));
    }
    /// The q, k, v projection weights (views of the packed one when D = E).
    std::array<at::Tensor, 3> qkv_weights() const {
        if (in_proj_weight.defined()) {
            const auto e = in_proj_weight.size(1);
            return {in_proj_weight.narrow(0, 0, e), in_proj_weight.narrow(0, e, e),
                    in_proj_weight.narrow(0, 2 * e, e)};
        }
        return {q_proj_weight, k_proj_weight, v_proj_weight};
    }
    torch::Tensor query, in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight, in_proj_bias;
    nn::LayerNorm ln_q{nullptr}, ln_k{nullptr};
    std::shared_ptr<nn::Module> attn;
    nn::Linear out_proj{nullptr};
};
TORCH_MODULE(AttnPool);

struct ClipTransformerImpl : nn::Module {
    explicit ClipTransformerImpl(const ModelConfig& c) {
        embeddings = register_module("embeddings", ClipEmbeddings(c));
        if (!is_siglip(c)) {
            pre_layrnorm = register_module("pre_layrnorm", layer_norm(c));
        }
        encoder = register_module("encoder", ClipEncoder(c));
        // CoCa: ln_post normalises the pooler's output (width projection_dim), not the tokens.
        post_layernorm = register_module(
            "post_layernorm",
            c.attn_pool_queries > 0
                ? nn::LayerNorm(nn::LayerNormOptions({c.projection_dim}).eps(c.layer_norm_eps))
                : layer_norm(c));
        if (is_siglip(c) && c.has_pooler) {  // SiglipVisionConfig.vision_use_head
            head = register_module("head", SiglipHead(c));
        }
        if (c.attn_pool_queries > 0) {
            attn_pool = register_module("attn_pool", AttnPool(c));
        }
    }
    ClipEmbeddings embeddings{nullptr};
    nn::LayerNorm pre_layrnorm{nullptr};
    ClipEncoder encoder{nullptr};
    nn::LayerNorm post_layernorm{nullptr};
    SiglipHead head{nullptr};
    AttnPool attn_pool{nullptr};
};
TORCH_MODULE(ClipTransformer);

struct ClipVisionModelImpl : nn::Module {
    explicit ClipVisionModelImpl(const ModelConfig& c) {
        vision_model = register_module("vision_model", ClipTransformer(c));
        if (c.projection_dim > 0) {  // CLIPVisionModelWithProjection
            const auto in = c.attn_pool_queries > 0 ? c.projection_dim : c.hidden_size;
            visual_projection =
                register_module("visual_projection",
                                nn::Linear(nn::LinearOptions(in, c.projection_dim).bias(false)));
        }
    }
    ClipTransformer vision_model{nullptr};
    nn::Linear visual_projection{nullptr};
};
TORCH_MODULE(ClipVisionModel);

class ClipRunner final : public FunctionalEncoder {
public:
    explicit ClipRunner(const ModelConfig& config)
        : FunctionalEncoder(config), siglip_(is_siglip(config)), model_(config) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    std::int64_t input_channels() const override {
        return model_->vision_model->embeddings->patch_embedding->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        return vit_flops(config_, input_channels(), siglip_ ? 0 : 1, height, width);
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        auto& proj = model_->vision_model->embeddings->patch_embedding;
        const auto shift = fold_patch_conv(proj->weight, mean, std);
        torch::NoGradGuard no_grad;
        if (siglip_) {
            proj->bias.add_(shift);
        } else {
            fold_bias_ = shift;  // CLIP's patch convolution has no bias of its own
        }
    }

private:
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        const std::int64_t p = config_.patch_size;
        check_pixels(pixel_values, input_channels(), p);
        const auto [n, gh, gw] = patch_grid(pixel_values, p);
        const std::int64_t d = config_.hidden_size;
        auto& vm = *model_->vision_model;
        auto& emb = *vm.embeddings;
        const auto g0 = config_.native_grid();
        const auto table = emb.position_embedding->weight.unsqueeze(0);
        auto patches = embed_patches(to_input(pixel_values), emb.patch_embedding->weight,
                                     emb.patch_embedding->bias, p);
        if (fold_bias_.defined()) {
            patches = patches + fold_bias_;
        }
        at::Tensor x;
        if (siglip_) {
            x = patches + resize_positions(table.narrow(1, 0, g0 * g0), g0, gh, gw);
        } else {
            x = cls_and_patches(emb.class_embedding.view({1, 1, d}), table, patches, g0, gh, gw);
            x = at::layer_norm(x, {d}, vm.pre_layrnorm->weight, vm.pre_layrnorm->bias,
                               config_.layer_norm_eps);
        }

        EncoderOutput out;
        out.grid_h = gh;
        out.grid_w = gw;
        BlockStack stack(config_, vm.post_layernorm->weight, vm.post_layernorm->bias);
        stack.workspace = &block_workspace_;
        if (vm.attn_pool) {  // CoCa has no token-level final norm
            stack.norm = [](const at::Tensor& t) { return t; };
        }
        stack.block = [&](std::int64_t i) {
            const auto& l = *vm.encoder->layers[static_cast<std::size_t>(i)]->as<ClipLayerImpl>();
            const auto& sa = *l.self_attn;
            return make_pre_ln_block(l.layer_norm1, sa.q_proj, sa.k_proj, sa.v_proj, sa.out_proj,
                                     l.layer_norm2, l.mlp->fc1, l.mlp->fc2);
        };
        x = run_blocks(x, stack, config_, opts, out);
        if (siglip_) {
            out.last_hidden_state = stack.norm(x);
            out.tokens = split_tokens(out.last_hidden_state, 0, gh, gw, false);
            if (vm.head) {
                out.pooled = map_head(out.last_hidden_state);
            }
        } else {
            out.last_hidden_state = x;
            out.tokens = split_tokens(out.last_hidden_state, 0, gh, gw, true);
            out.pooled = vm.attn_pool ? coca_pool(x) : stack.norm(out.tokens.cls);
        }
        if (model_->visual_projection) {
            out.projected = model_->visual_projection(out.pooled);
        }
        return out;
    }

    /// CoCa's pooled output: the attentional pooler's first query after ln_post (N×E).
    at::Tensor coca_pool(const at::Tensor& tokens) {
        auto& vm = *model_->vision_model;
        auto& pool = *vm.attn_pool;
        const std::int64_t n = tokens.size(0);
        const std::int64_t e = config_.projection_dim;
        const auto heads = config_.attn_pool_heads;
        const auto [wq, wk, wv] = pool.qkv_weights();
        const auto& b = pool.in_proj_bias;
        const auto kv =
            at::layer_norm(tokens, {config_.hidden_size}, pool.ln_k->weight, pool.ln_k->bias, 1e-5);
        const auto q = at::layer_norm(pool.query, {e}, pool.ln_q->weight, pool.ln_q->bias, 1e-5)
                           .unsqueeze(0)
                           .expand({n, pool.query.size(0), e});
        const double scale = 1.0 / std::sqrt(static_cast<double>(e / heads));
        const auto a = pool.out_proj(
            attention(split_heads(at::linear(q, wq, b.narrow(0, 0, e)), heads),
                      split_heads(at::linear(kv, wk, b.narrow(0, e, e)), heads),
                      split_heads(at::linear(kv, wv, b.narrow(0, 2 * e, e)), heads), scale));
        return at::layer_norm(a, {e}, vm.post_layernorm->weight, vm.post_layernorm->bias,
                              config_.layer_norm_eps)
            .select(1, 0);
    }

    /// SigLIP's multihead attention-pooling head on N×T×D tokens → N×D.
    at::Tensor map_head(const at::Tensor& tokens) {
        auto& head = *model_->vision_model->head;
        auto& mha = *head.attention;
        const std::int64_t n = tokens.size(0);
        const std::int64_t d = config_.hidden_size;
        const auto heads = config_.num_attention_heads;
        const double scale = 1.0 / std::sqrt(static_cast<double>(d / heads));
        const auto w = mha.in_proj_weight;
        const auto b = mha.in_proj_bias;
        const auto probe = head.probe.expand({n, 1, d});
        const auto q = at::linear(probe, w.narrow(0, 0, d), b.narrow(0, 0, d));
        const auto k = at::linear(tokens, w.narrow(0, d, d), b.narrow(0, d, d));
        const auto v = at::linear(tokens, w.narrow(0, 2 * d, d), b.narrow(0, 2 * d, d));
        auto x = mha.out_proj(
            attention(split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), scale));
        const auto h = at::layer_norm(x, {d}, head.layernorm->weight, head.layernorm->bias,
                                      config_.layer_norm_eps);
        x = x + head.mlp->fc2(activation(head.mlp->fc1(h), config_.hidden_act, config_));
        return x.select(1, 0);
    }

    bool siglip_;
    ClipVisionModel model_;
    at::Tensor fold_bias_;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_clip(const ModelConfig& config) {
    return std::make_unique<ClipRunner>(config);
}

}  // namespace radprobe::encoders::detail
