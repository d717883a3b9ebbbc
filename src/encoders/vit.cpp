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
        layer = register_module("layer", layer_list<VitLayer>(c, c.num_hidden_layers));
    }
    nn::ModuleList layer{nullptr};
};
TORCH_MODULE(VitEncoder);

struct VitModelImpl : nn::Module {
    explicit VitModelImpl(const ModelConfig& c) {
        embeddings = register_module("embeddings", VitEmbeddings(c));
        encoder = register_module("encoder", VitEncoder(c));
        layernorm = register_module("layernorm", layer_norm(c));
        if (c.model_type == "vit" && c.has_pooler) {  // absent in *ForImageClassification
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

    std::int64_t input_channels() const override {
        return model_->embeddings->patch_embeddings->projection->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        return vit_flops(config_, input_channels(), 1, height, width);
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        auto& proj = model_->embeddings->patch_embeddings->projection;
        fold_patch_embedding(proj->weight, proj->bias, mean, std);
    }

private:
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        const std::int64_t p = config_.patch_size;
        check_pixels(pixel_values, input_channels(), p);
        const auto [n, gh, gw] = patch_grid(pixel_values, p);
        auto& emb = *model_->embeddings;
        const auto& proj = emb.patch_embeddings->projection;
        const auto patches = embed_patches(to_input(pixel_values), proj->weight, proj->bias, p);
        const auto x = cls_and_patches(emb.cls_token, emb.position_embeddings, patches,
                                       config_.native_grid(), gh, gw);

        EncoderOutput out;
        out.grid_h = gh;
        out.grid_w = gw;
        auto& ln = model_->layernorm;
        BlockStack stack(config_, ln->weight, ln->bias);
        stack.workspace = &block_workspace_;
        stack.block = [&](std::int64_t i) {
            const auto& l =
                *model_->encoder->layer[static_cast<std::size_t>(i)]->as<VitLayerImpl>();
            const auto& sa = *l.attention->attention;
            return make_pre_ln_block(l.layernorm_before, sa.query, sa.key, sa.value,
                                     l.attention->output->dense, l.layernorm_after,
                                     l.intermediate->dense, l.output->dense);
        };
        out.last_hidden_state = stack.norm(run_blocks(x, stack, config_, opts, out));
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
