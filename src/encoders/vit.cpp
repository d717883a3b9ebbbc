// ViT (HF ViTModel) and the MAE encoder (HF ViTMAEModel, run without masking).
//
// The module tree mirrors the HF key tree (embeddings.*,
// encoder.layer.N.{layernorm_before, attention.attention.{query,key,value},
// attention.output.dense, layernorm_after, intermediate.dense, output.dense},
// layernorm.*, pooler.dense.* for ViT) so checkpoint keys map 1:1. ViTMAE's
// position table is a frozen parameter in the checkpoint (HF fills it with a
// fixed 2-D sin-cos table at init, from_pretrained then loads the stored
// values); radprobe uses the stored table, like HF. At evaluation MAE runs
// unmasked with the identity shuffle, so the tokens are [CLS, patches
// row-major], as in ViT. Non-native input sizes: the patch part of the position
// table is resized bicubically (HF interpolate_pos_encoding=True).

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

nn::Linear linear(std::int64_t in, std::int64_t out, bool bias = true) {
    return nn::Linear(nn::LinearOptions(in, out).bias(bias));
}

struct VitPatchEmbeddingsImpl : nn::Module {
    explicit VitPatchEmbeddingsImpl(const ModelConfig& c) {
        projection = register_module(
            "projection", nn::Conv2d(nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size)
                                         .stride(c.patch_size)));
    }
    nn::Conv2d projection{nullptr};
};
TORCH_MODULE(VitPatchEmbeddings);

struct VitEmbeddingsImpl : nn::Module {
    explicit VitEmbeddingsImpl(const ModelConfig& c) {
        const auto g = c.native_grid();
        cls_token = register_parameter("cls_token", torch::zeros({1, 1, c.hidden_size}));
        // ViTMAE's table is a fixed sin-cos table (requires_grad=False in HF): not
        // trained.
        position_embeddings =
            register_parameter("position_embeddings", torch::zeros({1, g * g + 1, c.hidden_size}),
                               /*requires_grad=*/c.model_type != "vit_mae");
        patch_embeddings = register_module("patch_embeddings", VitPatchEmbeddings(c));
    }
    torch::Tensor cls_token, position_embeddings;
    VitPatchEmbeddings patch_embeddings{nullptr};
};
TORCH_MODULE(VitEmbeddings);

struct VitSelfAttentionImpl : nn::Module {
    explicit VitSelfAttentionImpl(const ModelConfig& c) {
        const auto d = c.hidden_size;
        query = register_module("query", linear(d, d, c.qkv_bias));
        key = register_module("key", linear(d, d, c.qkv_bias));
        value = register_module("value", linear(d, d, c.qkv_bias));
    }
    nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
};
TORCH_MODULE(VitSelfAttention);

/// A module holding one Linear named "dense" (ViT's output/intermediate
/// wrappers).
struct DenseImpl : nn::Module {
    DenseImpl(std::int64_t in, std::int64_t out) {
        dense = register_module("dense", linear(in, out));
    }
    nn::Linear dense{nullptr};
};
TORCH_MODULE(Dense);

struct VitAttentionImpl : nn::Module {
    explicit VitAttentionImpl(const ModelConfig& c) {
        attention = register_module("attention", VitSelfAttention(c));
        output = register_module("output", Dense(c.hidden_size, c.hidden_size));
    }
    VitSelfAttention attention{nullptr};
    Dense output{nullptr};
};
TORCH_MODULE(VitAttention);

struct VitLayerImpl : nn::Module {
    explicit VitLayerImpl(const ModelConfig& c) {
        attention = register_module("attention", VitAttention(c));
        intermediate = register_module("intermediate", Dense(c.hidden_size, c.intermediate_size));
        output = register_module("output", Dense(c.intermediate_size, c.hidden_size));
        layernorm_before = register_module("layernorm_before", layer_norm(c));
        layernorm_after = register_module("layernorm_after", layer_norm(c));
    }
    VitAttention attention{nullptr};
    Dense intermediate{nullptr}, output{nullptr};
    nn::LayerNorm layernorm_before{nullptr}, layernorm_after{nullptr};
};
TORCH_MODULE(VitLayer);

struct VitEncoderImpl : nn::Module {
    explicit VitEncoderImpl(const ModelConfig& c) {
        layer = register_module("layer", nn::ModuleList());
        for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
            layer->push_back(VitLayer(c));
        }
    }
    nn::ModuleList layer{nullptr};
};
TORCH_MODULE(VitEncoder);

struct VitModelImpl : nn::Module {
    explicit VitModelImpl(const ModelConfig& c) {
        embeddings = register_module("embeddings", VitEmbeddings(c));
        encoder = register_module("encoder", VitEncoder(c));
        layernorm = register_module("layernorm", layer_norm(c));
        if (c.model_type == "vit") {  // ViTModel's default add_pooling_layer=True
            pooler = register_module("pooler", Dense(c.hidden_size, c.hidden_size));
        }
    }
    VitEmbeddings embeddings{nullptr};
    VitEncoder encoder{nullptr};
    nn::LayerNorm layernorm{nullptr};
    Dense pooler{nullptr};
};
TORCH_MODULE(VitModel);

class VitRunner final : public FunctionalEncoder {
public:
    explicit VitRunner(const ModelConfig& config) : FunctionalEncoder(config), model_(config) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    void prepare() override { check_activation(config_.hidden_act, config_); }

    std::int64_t input_channels() const override {
        return model_->embeddings->patch_embeddings->projection->weight.size(1);
    }

    std::int64_t num_parameters() const override { return count_parameters(*model_); }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        return vit_flops(config_, input_channels(), 1, height, width);
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        auto& proj = model_->embeddings->patch_embeddings->projection;
        const auto shift = fold_patch_conv(proj->weight, mean, std);
        torch::NoGradGuard no_grad;
        proj->bias.add_(shift);
    }

private:
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        const std::int64_t p = config_.patch_size;
        check_pixels(pixel_values, input_channels(), p);
        const std::int64_t n = pixel_values.size(0);
        const std::int64_t gh = pixel_values.size(2) / p;
        const std::int64_t gw = pixel_values.size(3) / p;
        const std::int64_t d = config_.hidden_size;
        const std::int64_t num_layers = config_.num_hidden_layers;
        const auto want = wanted_states(opts, num_layers + 1);

        auto& emb = *model_->embeddings;
        const auto& proj = emb.patch_embeddings->projection;
        const auto pos = emb.position_embeddings;
        const auto g0 = config_.native_grid();
        const auto patch_pos = resize_positions(pos.narrow(1, 1, g0 * g0), g0, gh, gw);
        const auto patches = at::conv2d(to_input(pixel_values), proj->weight, proj->bias, {p, p})
                                 .flatten(2)
                                 .transpose(1, 2);
        auto x = torch::cat(
            {(emb.cls_token + pos.narrow(1, 0, 1)).expand({n, 1, d}), patches + patch_pos}, 1);

        EncoderOutput out;
        out.grid_h = gh;
        out.grid_w = gw;
        auto& ln = model_->layernorm;
        auto final_norm = [&](const at::Tensor& s) {
            return at::layer_norm(s, {d}, ln->weight, ln->bias, config_.layer_norm_eps);
        };
        auto keep = [&](std::int64_t i) {
            if (want[static_cast<std::size_t>(i)]) {
                out.layers[static_cast<int>(i)] = opts.normalize_layers ? final_norm(x) : x;
            }
        };
        keep(0);
        for (std::int64_t i = 0; i < num_layers; ++i) {
            const auto& l =
                *model_->encoder->layer[static_cast<std::size_t>(i)]->as<VitLayerImpl>();
            const auto& sa = *l.attention->attention;
            const auto b = make_pre_ln_block(l.layernorm_before, sa.query, sa.key, sa.value,
                                             l.attention->output->dense, l.layernorm_after,
                                             l.intermediate->dense, l.output->dense);
            x = pre_ln_block(x, b, config_.num_attention_heads, config_);
            keep(i + 1);
        }
        out.last_hidden_state = final_norm(x);
        out.tokens = split_tokens(out.last_hidden_state, 0, gh, gw, true);
        if (model_->pooler) {
            out.pooled = at::tanh(model_->pooler->dense(out.tokens.cls));
        }
        return out;
    }

    VitModel model_;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_vit(const ModelConfig& config) {
    return std::make_unique<VitRunner>(config);
}

}  // namespace radprobe::encoders::detail
