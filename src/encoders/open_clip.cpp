// open_clip's timm vision tower (BiomedCLIP): open_clip_config.json + a state
// dict whose vision keys are `visual.trunk.*` (a timm VisionTransformer) and
// `visual.head.proj.*` (open_clip TimmModel's projection). Text-tower keys and
// logit_scale are ignored by the loader.
//
// Module tree = key tree: visual.trunk.{cls_token [1,1,D], pos_embed [1,1+g²,D]
// (covers the class token), patch_embed.proj (Conv2d with bias),
// blocks.N.{norm1, attn.qkv (one Linear whose 3D outputs are q, k, v in that
// order, each head-major), attn.proj, norm2, mlp.fc1, mlp.fc2}, norm},
// visual.head.proj (Linear D→E, bias = timm_proj_bias). Forward (timm, pre-LN,
// LayerNorm eps 1e-6, exact GELU): tokens = [cls, patches] + pos_embed; x +=
// proj(MHA(norm1(x))); x += fc2(gelu(fc1(norm2(x)))); last_hidden_state =
// norm(x); pooled = its class token (timm's 'token' pool, kept by open_clip's
// timm_pool ""); projected = head.proj(pooled). Non-native sizes: the patch
// part of pos_embed is resized bicubically (align_corners=False, no antialias)
// like the HF ViTs; timm itself refuses other sizes unless built with
// dynamic_img_size.

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

struct PatchEmbedImpl : nn::Module {
    explicit PatchEmbedImpl(const ModelConfig& c) {
        proj = register_module(
            "proj", nn::Conv2d(nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size)
                                   .stride(c.patch_size)));
    }
    nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

struct AttentionImpl : nn::Module {
    explicit AttentionImpl(const ModelConfig& c) {
        const auto d = c.hidden_size;
        qkv = register_module("qkv", nn::Linear(nn::LinearOptions(d, 3 * d).bias(c.qkv_bias)));
        proj = register_module("proj", nn::Linear(d, d));
    }
    nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

using Mlp = FcMlp;

struct BlockImpl : nn::Module {
    explicit BlockImpl(const ModelConfig& c) {
        norm1 = register_module("norm1", layer_norm(c));
        attn = register_module("attn", Attention(c));
        norm2 = register_module("norm2", layer_norm(c));
        mlp = register_module("mlp", Mlp(c));
    }
    nn::LayerNorm norm1{nullptr}, norm2{nullptr};
    Attention attn{nullptr};
    Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

struct TrunkImpl : nn::Module {
    explicit TrunkImpl(const ModelConfig& c) {
        const auto g = c.native_grid();
        cls_token = register_parameter("cls_token", torch::zeros({1, 1, c.hidden_size}));
        pos_embed = register_parameter("pos_embed", torch::zeros({1, 1 + g * g, c.hidden_size}));
        patch_embed = register_module("patch_embed", PatchEmbed(c));
        blocks = register_module("blocks", layer_list<Block>(c, c.num_hidden_layers));
        norm = register_module("norm", layer_norm(c));
    }
    torch::Tensor cls_token, pos_embed;
    PatchEmbed patch_embed{nullptr};
    nn::ModuleList blocks{nullptr};
    nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Trunk);

struct HeadImpl : nn::Module {
    explicit HeadImpl(const ModelConfig& c) {
        proj = register_module(
            "proj",
            nn::Linear(nn::LinearOptions(c.hidden_size, c.projection_dim).bias(c.projection_bias)));
    }
    nn::Linear proj{nullptr};
};
TORCH_MODULE(Head);

struct VisualImpl : nn::Module {
    explicit VisualImpl(const ModelConfig& c) {
        trunk = register_module("trunk", Trunk(c));
        if (c.projection_dim > 0) {
            head = register_module("head", Head(c));
        }
    }
    Trunk trunk{nullptr};
    Head head{nullptr};
};
TORCH_MODULE(Visual);

struct OpenClipModelImpl : nn::Module {
    explicit OpenClipModelImpl(const ModelConfig& c) {
        visual = register_module("visual", Visual(c));
    }
    Visual visual{nullptr};
};
TORCH_MODULE(OpenClipModel);

class OpenClipRunner final : public FunctionalEncoder {
public:
    explicit OpenClipRunner(const ModelConfig& config) : FunctionalEncoder(config), model_(config) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    std::int64_t input_channels() const override {
        return model_->visual->trunk->patch_embed->proj->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        return vit_flops(config_, input_channels(), 1, height, width);
    }

    void fold_grayscale(const std::array<double, 3>& mean,
                        const std::array<double, 3>& std) override {
        auto& proj = model_->visual->trunk->patch_embed->proj;
        fold_patch_embedding(proj->weight, proj->bias, mean, std);
    }

private:
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool /*train*/) override {
        const std::int64_t p = config_.patch_size;
        check_pixels(pixel_values, input_channels(), p);
        const auto [n, gh, gw] = patch_grid(pixel_values, p);
        auto& trunk = *model_->visual->trunk;
        const auto& proj = trunk.patch_embed->proj;
        const auto patches = embed_patches(to_input(pixel_values), proj->weight, proj->bias, p);
        const auto x = cls_and_patches(trunk.cls_token, trunk.pos_embed, patches,
                                       config_.native_grid(), gh, gw);

        EncoderOutput out;
        out.grid_h = gh;
        out.grid_w = gw;
        BlockStack stack(config_, trunk.norm->weight, trunk.norm->bias);
        stack.workspace = &block_workspace_;
        stack.block = [&](std::int64_t i) {
            return block_view(*trunk.blocks[static_cast<std::size_t>(i)]->as<BlockImpl>());
        };
        out.last_hidden_state = stack.norm(run_blocks(x, stack, config_, opts, out));
        out.tokens = split_tokens(out.last_hidden_state, 0, gh, gw, true);
        out.pooled = out.tokens.cls;
        if (model_->visual->head) {
            out.projected = model_->visual->head->proj(out.pooled);
        }
        return out;
    }

    /// One timm block as tensors. timm's fused qkv: output rows [q | k | v], each head-major.
    PreLnBlock block_view(const BlockImpl& l) const {
        const std::int64_t d = config_.hidden_size;
        const auto& qkv = l.attn->qkv;
        auto rows = [&](const at::Tensor& t, std::int64_t part) {
            return t.defined() ? t.narrow(0, part * d, d) : t;
        };
        PreLnBlock b;
        b.ln1_w = l.norm1->weight;
        b.ln1_b = l.norm1->bias;
        b.q_w = rows(qkv->weight, 0);
        b.q_b = rows(qkv->bias, 0);
        b.k_w = rows(qkv->weight, 1);
        b.k_b = rows(qkv->bias, 1);
        b.v_w = rows(qkv->weight, 2);
        b.v_b = rows(qkv->bias, 2);
        b.o_w = l.attn->proj->weight;
        b.o_b = l.attn->proj->bias;
        b.ln2_w = l.norm2->weight;
        b.ln2_b = l.norm2->bias;
        b.fc1_w = l.mlp->fc1->weight;
        b.fc1_b = l.mlp->fc1->bias;
        b.fc2_w = l.mlp->fc2->weight;
        b.fc2_b = l.mlp->fc2->bias;
        return b;
    }

    OpenClipModel model_;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_open_clip(const ModelConfig& config) {
    return std::make_unique<OpenClipRunner>(config);
}

}  // namespace radprobe::encoders::detail
