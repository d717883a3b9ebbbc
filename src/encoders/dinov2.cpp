// DINOv2 (HF Dinov2Model) and DINOv2 with registers (HF
// Dinov2WithRegistersModel).
//
// The module tree mirrors the HF key tree (embeddings.*, encoder.layer.N.*,
// layernorm.*) so that checkpoint keys map 1:1. The forward pass does not call
// the modules one by one: it runs over preallocated activation buffers (fused
// QKV GEMM, out= variants, the shared tiled_attention of block_workspace.cpp so
// the score tile stays in cache), because on these machines allocation churn and page faults,
// not arithmetic, dominate a naive forward (DESIGN.md, "Performance facts").

#include <ATen/Parallel.h>
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

/// Per-layer tensors the fast path uses (views of the module's parameters, plus
/// the fused QKV).
struct LayerWeights {
    at::Tensor ln1_w, ln1_b, ln2_w, ln2_b;
    at::Tensor qkv_w, qkv_b;  // [3D, D], [3D] (zeros when qkv_bias is false)
    at::Tensor out_w, out_b;
    at::Tensor ls1, ls2;
    at::Tensor in_w, in_b, out2_w, out2_b;  // fc1/fc2 or weights_in/weights_out
};

/// Activation buffers for one (batch, tokens) shape, reused across calls.
struct Workspace {
    std::int64_t n = -1, t = -1;
    at::Tensor x, h, qkv, ctx, tmp, mlp, mlp_act, ln_mean, ln_rstd;
    AttentionScratch attention;
};

class Dinov2Runner final : public LoadableEncoder {
public:
    explicit Dinov2Runner(const ModelConfig& config)
        : LoadableEncoder(config), options_(config), model_(options_) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    void prepare() override {
        c10::InferenceMode guard;
        layers_.clear();
        pos_cache_.clear();
        ws_ = Workspace{};
        const auto d = options_.hidden_size();
        held_half_ =
            model_->encoder->layer->size() > 0 &&
            model_->encoder->layer[0]->as<Dinov2LayerImpl>()->norm1->weight.scalar_type() !=
                torch::kFloat32;
        for (const auto& item : *model_->encoder->layer) {
            if (functional_only()) {
                break;  // no fused float32 copies of half weights
            }
            auto& l = *item->as<Dinov2LayerImpl>();
            LayerWeights w;
            w.ln1_w = l.norm1->weight;
            w.ln1_b = l.norm1->bias;
            w.ln2_w = l.norm2->weight;
            w.ln2_b = l.norm2->bias;
            auto& sa = *l.attention->attention;
            w.qkv_w =
                torch::cat({sa.query->weight, sa.key->weight, sa.value->weight}, 0).contiguous();
            w.qkv_b = options_.qkv_bias()
                          ? torch::cat({sa.query->bias, sa.key->bias, sa.value->bias}, 0)
                          : torch::zeros({3 * d}, sa.query->weight.options());
            w.out_w = l.attention->output->dense->weight;
            w.out_b = l.attention->output->dense->bias;
            w.ls1 = l.layer_scale1->lambda1;
            w.ls2 = l.layer_scale2->lambda1;
            if (options_.use_swiglu_ffn()) {
                w.in_w = l.swiglu->weights_in->weight;
                w.in_b = l.swiglu->weights_in->bias;
                w.out2_w = l.swiglu->weights_out->weight;
                w.out2_b = l.swiglu->weights_out->bias;
            } else {
                w.in_w = l.mlp->fc1->weight;
                w.in_b = l.mlp->fc1->bias;
                w.out2_w = l.mlp->fc2->weight;
                w.out2_b = l.mlp->fc2->bias;
            }
            layers_.push_back(std::move(w));
        }
        weights_version_ = weights_version();
        const auto act = config_.hidden_act;
        RADPROBE_CHECK(options_.use_swiglu_ffn() || act == "gelu" || act == "gelu_new" ||
                           act == "gelu_pytorch_tanh" || act == "relu" || act == "silu" ||
                           act == "swish" || act == "quick_gelu",
                       "file ", (config_.dir / "config.json").string(), ": hidden_act \"", act,
                       "\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, "
                       "relu, "
                       "silu)");
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
        RADPROBE_CHECK(proj->weight.size(1) == 3, "fold_grayscale: the patch embedding has ",
                       proj->weight.size(1), " input channels, expected 3 (already folded?)");
        torch::NoGradGuard no_grad;
        const auto w = proj->weight.to(torch::kFloat64);
        const auto b = proj->bias.to(torch::kFloat64);
        auto folded = torch::zeros_like(w.narrow(1, 0, 1));
        auto shift = torch::zeros_like(b);
        for (int c = 0; c < 3; ++c) {
            const auto wc = w.narrow(1, c, 1);
            folded += wc / std[c];
            shift += wc.sum({1, 2, 3}) * (mean[c] / std[c]);
        }
        proj->weight.set_data(folded.to(torch::kFloat32).contiguous());
        proj->bias.set_data((b - shift).to(torch::kFloat32));
    }

    EncoderOutput forward(const at::Tensor& pixel_values, const ForwardOptions& opts) override {
        c10::InferenceMode guard;
        if (functional_only()) {
            return forward_train(pixel_values, opts);
        }
        if (weights_version() != weights_version_) {
            prepare();  // the weights were changed in place (training): re-fuse them
        }
        const std::int64_t p = options_.patch_size();
        RADPROBE_CHECK(pixel_values.dim() == 4, "pixel_values must be N×C×H×W, got ",
                       pixel_values.dim(), " dimensions");
        RADPROBE_CHECK(pixel_values.size(1) == input_channels(), "pixel_values have ",
                       pixel_values.size(1), " channels, the model expects ", input_channels());
        RADPROBE_CHECK(pixel_values.size(2) >= p && pixel_values.size(3) >= p, "pixel_values of ",
                       pixel_values.size(2), "x", pixel_values.size(3), " are smaller than one ", p,
                       "x", p, " patch");
        RADPROBE_CHECK(pixel_values.size(0) >= 1, "pixel_values hold no image");
        const std::int64_t n = pixel_values.size(0);
        const std::int64_t gh = pixel_values.size(2) / p;
        const std::int64_t gw = pixel_values.size(3) / p;
        const std::int64_t r = options_.num_register_tokens();
        const std::int64_t t = 1 + r + gh * gw;
        const std::int64_t d = options_.hidden_size();
        const std::int64_t num_layers = options_.num_layers();

        std::vector<bool> want(num_layers + 1, opts.all_layers);
        for (int index : opts.layers) {
            const std::int64_t i = index < 0 ? num_layers + 1 + index : index;
            RADPROBE_USAGE_CHECK(i >= 0 && i <= num_layers, "layer ", index,
                                 " is out of range: the model has hidden states 0..", num_layers,
                                 " (or -1..-", num_layers + 1, ")");
            want[i] = true;
        }

        Workspace& ws = workspace(n, t);
        embed(to_input(pixel_values), gh, gw, ws);

        EncoderOutput out;
        out.grid_h = gh;
        out.grid_w = gw;
        auto keep = [&](std::int64_t i) {
            if (!want[i]) {
                return;
            }
            auto state = ws.x.view({n, t, d});
            out.layers[static_cast<int>(i)] =
                opts.normalize_layers ? final_norm(state) : state.clone();
        };
        keep(0);
        for (std::int64_t i = 0; i < num_layers; ++i) {
            run_layer(layers_[i], ws, n, t);
            keep(i + 1);
        }
        out.last_hidden_state = final_norm(ws.x.view({n, t, d}));
        out.tokens = split_tokens(out.last_hidden_state, r, gh, gw);
        return out;
    }

    EncoderOutput forward_train(const at::Tensor& pixel_values,
                                const ForwardOptions& opts) override {
        const std::int64_t p = options_.patch_size();
        check_pixels(pixel_values, input_channels(), p);
        const auto [n, gh, gw] = patch_grid(pixel_values, p);
        const std::int64_t r = options_.num_register_tokens();
        const std::int64_t d = options_.hidden_size();
        auto& emb = *model_->embeddings;
        const auto& proj = emb.patch_embeddings->projection;
        const auto patches = embed_patches(to_input(pixel_values), proj->weight, proj->bias, p);
        const auto pos = compute_positions(gh, gw);
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
        out.last_hidden_state = final_norm(run_blocks(x, stack, config_, opts, out));
        out.tokens = split_tokens(out.last_hidden_state, r, gh, gw);
        return out;
    }

    /// Block i as tensors (views of the module's parameters) for the functional pass.
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

private:
    /// The fast path runs float32 weights in float32 over float32 buffers; half-precision
    /// weights or another compute dtype take the functional pass (run_blocks converts one block
    /// at a time).
    bool functional_only() const {
        return config_.compute_dtype != ComputeDType::kFloat32 || held_half_;
    }

    /// Sum of the parameters' version counters: changes whenever a weight is
    /// updated in place (an optimizer step), so forward() knows its fused copies
    /// are stale.
    std::int64_t weights_version() const {
        std::int64_t v = 0;
        for (const auto& p : model_->parameters()) {
            v += p._version();
        }
        return v;
    }

    Workspace& workspace(std::int64_t n, std::int64_t t) {
        if (ws_.n == n && ws_.t == t) {
            return ws_;
        }
        ws_ = Workspace{};
        const std::int64_t m = n * t;
        const std::int64_t d = options_.hidden_size();
        const std::int64_t hf = options_.mlp_hidden();
        const auto f = torch::TensorOptions().dtype(torch::kFloat32).device(device());
        ws_.n = n;
        ws_.t = t;
        ws_.x = torch::empty({m, d}, f);
        ws_.h = torch::empty({m, d}, f);
        ws_.qkv = torch::empty({m, 3 * d}, f);
        ws_.ctx = torch::empty({m, d}, f);
        ws_.tmp = torch::empty({m, d}, f);
        ws_.mlp = torch::empty({m, options_.use_swiglu_ffn() ? 2 * hf : hf}, f);
        if (options_.use_swiglu_ffn()) {
            ws_.mlp_act = torch::empty({m, hf}, f);
        }
        ws_.ln_mean = torch::empty({m, 1}, f);
        ws_.ln_rstd = torch::empty({m, 1}, f);
        return ws_;
    }

    /// Position embeddings for a gh × gw grid: [1, 1 + gh·gw, D], resized as HF
    /// does.
    const at::Tensor& positions(std::int64_t gh, std::int64_t gw) {
        const auto key = std::make_pair(gh, gw);
        auto it = pos_cache_.find(key);
        if (it != pos_cache_.end()) {
            return it->second;
        }
        return pos_cache_.emplace(key, compute_positions(gh, gw).contiguous()).first->second;
    }

    at::Tensor compute_positions(std::int64_t gh, std::int64_t gw) const {
        const auto& pos = model_->embeddings->position_embeddings;
        const std::int64_t g0 = options_.native_grid();
        const std::int64_t d = options_.hidden_size();
        at::Tensor result;
        if (gh == g0 && gw == g0) {
            result = pos;
        } else {
            // HF (transformers >= 4.45): bicubic, align_corners=False, explicit
            // output size, in float32; Dinov2WithRegisters resizes with
            // antialias=True (which only differs from plain bicubic when a side
            // shrinks).
            namespace F = torch::nn::functional;
            const auto grid =
                pos.narrow(1, 1, g0 * g0).reshape({1, g0, g0, d}).permute({0, 3, 1, 2});
            const auto resized =
                F::interpolate(grid.to(torch::kFloat32),
                               F::InterpolateFuncOptions()
                                   .size(std::vector<std::int64_t>{gh, gw})
                                   .mode(torch::kBicubic)
                                   .align_corners(false)
                                   .antialias(config_.model_type == "dinov2_with_registers"));
            result = torch::cat(
                {pos.narrow(1, 0, 1), resized.permute({0, 2, 3, 1}).reshape({1, gh * gw, d})}, 1);
        }
        return result;
    }

    void embed(const at::Tensor& pixels, std::int64_t gh, std::int64_t gw, Workspace& ws) {
        auto& emb = *model_->embeddings;
        const auto& proj = emb.patch_embeddings->projection;
        const std::int64_t n = ws.n;
        const std::int64_t t = ws.t;
        const std::int64_t d = options_.hidden_size();
        const std::int64_t r = options_.num_register_tokens();
        const std::int64_t p = options_.patch_size();
        // The strided convolution drops the remainder rows/columns, as HF's does.
        const auto patches =
            at::conv2d(pixels, proj->weight, proj->bias, {p, p}).flatten(2).transpose(1, 2);
        const auto& pos = positions(gh, gw);
        auto x = ws.x.view({n, t, d});
        x.narrow(1, 0, 1).copy_((emb.cls_token + pos.narrow(1, 0, 1)).expand({n, 1, d}));
        if (r > 0) {
            x.narrow(1, 1, r).copy_(emb.register_tokens.expand({n, r, d}));
        }
        auto patch_tokens = x.narrow(1, 1 + r, gh * gw);
        at::add_out(patch_tokens, patches, pos.narrow(1, 1, gh * gw));
    }

    void layer_norm(const at::Tensor& in, const at::Tensor& w, const at::Tensor& b, at::Tensor& out,
                    Workspace& ws) {
        at::native_layer_norm_out(out, ws.ln_mean, ws.ln_rstd, in, {options_.hidden_size()}, w, b,
                                  options_.layer_norm_eps());
    }

    at::Tensor final_norm(const at::Tensor& state) {
        const auto& ln = model_->layernorm;
        return at::layer_norm(state, {options_.hidden_size()}, ln->weight, ln->bias,
                              options_.layer_norm_eps());
    }

    void activation(at::Tensor& x) {
        const auto& act = config_.hidden_act;
        if (act == "gelu") {
            at::gelu_(x);
        } else if (act == "gelu_new" || act == "gelu_pytorch_tanh") {
            at::gelu_(x, "tanh");
        } else if (act == "relu") {
            at::relu_(x);
        } else if (act == "silu" || act == "swish") {
            at::silu_(x);
        } else {  // quick_gelu: x * sigmoid(1.702 x)
            x.mul_(at::sigmoid(x * 1.702));
        }
    }

    void attention(Workspace& ws, std::int64_t n, std::int64_t t) {
        const std::int64_t d = options_.hidden_size();
        const std::int64_t heads = options_.num_heads();
        const std::int64_t hd = d / heads;
        const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
        for (std::int64_t b = 0; b < n; ++b) {
            const auto qkv = ws.qkv.narrow(0, b * t, t);
            const auto ctx = ws.ctx.narrow(0, b * t, t);
            for (std::int64_t h = 0; h < heads; ++h) {
                tiled_attention(qkv.narrow(1, h * hd, hd), qkv.narrow(1, d + h * hd, hd),
                                qkv.narrow(1, 2 * d + h * hd, hd), scale,
                                ctx.narrow(1, h * hd, hd), ws.attention);
            }
        }
    }

    void run_layer(const LayerWeights& w, Workspace& ws, std::int64_t n, std::int64_t t) {
        layer_norm(ws.x, w.ln1_w, w.ln1_b, ws.h, ws);
        at::addmm_out(ws.qkv, w.qkv_b, ws.h, w.qkv_w.t());
        attention(ws, n, t);
        at::addmm_out(ws.tmp, w.out_b, ws.ctx, w.out_w.t());
        ws.x.addcmul_(ws.tmp, w.ls1);
        layer_norm(ws.x, w.ln2_w, w.ln2_b, ws.h, ws);
        at::addmm_out(ws.mlp, w.in_b, ws.h, w.in_w.t());
        if (options_.use_swiglu_ffn()) {
            const std::int64_t hf = options_.mlp_hidden();
            at::silu_out(ws.mlp_act, ws.mlp.narrow(1, 0, hf));
            ws.mlp_act.mul_(ws.mlp.narrow(1, hf, hf));
            at::addmm_out(ws.tmp, w.out2_b, ws.mlp_act, w.out2_w.t());
        } else {
            activation(ws.mlp);
            at::addmm_out(ws.tmp, w.out2_b, ws.mlp, w.out2_w.t());
        }
        ws.x.addcmul_(ws.tmp, w.ls2);
    }

    Dinov2Options options_;
    Dinov2Model model_;
    std::vector<LayerWeights> layers_;
    std::map<std::pair<std::int64_t, std::int64_t>, at::Tensor> pos_cache_;
    bool held_half_ = false;  ///< the block weights are bf16/fp16 (set by prepare())
    Workspace ws_;
    std::int64_t weights_version_ = -1;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_dinov2(const ModelConfig& config) {
    return std::make_unique<Dinov2Runner>(config);
}

}  // namespace radprobe::encoders::detail
