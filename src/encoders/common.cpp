// Helpers shared by the architecture translation units (vit.cpp, clip.cpp,
// dinov3.cpp, open_clip.cpp, dinov2.cpp, resnet.cpp, swin.cpp): state selection, input checks,
// activations, eager attention, the shared block stack of the ViT-like families, position
// table resizing and grey folding.

#include <torch/torch.h>

#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

std::vector<bool> wanted_states(const ForwardOptions& options, std::int64_t num_states) {
    std::vector<bool> want(static_cast<std::size_t>(num_states), options.all_layers);
    const std::int64_t last = num_states - 1;
    for (int index : options.layers) {
        const std::int64_t i = index < 0 ? num_states + index : index;
        RADPROBE_USAGE_CHECK(i >= 0 && i <= last, "layer ", index,
                             " is out of range: the model has hidden states 0..", last,
                             " (or -1..-", num_states, ")");
        want[static_cast<std::size_t>(i)] = true;
    }
    return want;
}

void check_pixels(const at::Tensor& pixel_values, std::int64_t channels, std::int64_t min_side) {
    RADPROBE_CHECK(pixel_values.dim() == 4, "pixel_values must be N×C×H×W, got ",
                   pixel_values.dim(), " dimensions");
    RADPROBE_CHECK(pixel_values.size(1) == channels, "pixel_values have ", pixel_values.size(1),
                   " channels, the model expects ", channels);
    RADPROBE_CHECK(pixel_values.size(2) >= min_side && pixel_values.size(3) >= min_side,
                   "pixel_values of ", pixel_values.size(2), "x", pixel_values.size(3),
                   " are smaller than the model's minimum ", min_side, "x", min_side);
    RADPROBE_CHECK(pixel_values.size(0) >= 1, "pixel_values hold no image");
}

void check_activation(const std::string& name, const ModelConfig& config) {
    RADPROBE_CHECK(name == "gelu" || name == "gelu_new" || name == "gelu_pytorch_tanh" ||
                       name == "quick_gelu" || name == "relu" || name == "silu" || name == "swish",
                   "file ", (config.dir / "config.json").string(), ": hidden_act \"", name,
                   "\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, "
                   "quick_gelu, relu, "
                   "silu)");
}

at::Tensor activation(const at::Tensor& x, const std::string& name, const ModelConfig& config) {
    if (name == "gelu") {
        return at::gelu(x);
    }
    if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
        return at::gelu(x, "tanh");
    }
    if (name == "quick_gelu") {
        return x * at::sigmoid(x * 1.702);
    }
    if (name == "relu") {
        return at::relu(x);
    }
    if (name == "silu" || name == "swish") {
        return at::silu(x);
    }
    check_activation(name, config);
    return x;
}

at::Tensor split_heads(const at::Tensor& x, std::int64_t heads) {
    const auto n = x.size(0);
    const auto t = x.size(1);
    return x.view({n, t, heads, x.size(2) / heads}).transpose(1, 2);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
    const auto scores = at::matmul(q, k.transpose(-1, -2)) * scale;
    const auto probs = at::softmax(scores, -1);
    const auto ctx = at::matmul(probs, v).transpose(1, 2).contiguous();
    return ctx.view({ctx.size(0), ctx.size(1), -1});
}

PreLnBlock make_pre_ln_block(const torch::nn::LayerNorm& ln1, const torch::nn::Linear& q,
                             const torch::nn::Linear& k, const torch::nn::Linear& v,
                             const torch::nn::Linear& o, const torch::nn::LayerNorm& ln2,
                             const torch::nn::Linear& fc1, const torch::nn::Linear& fc2) {
    PreLnBlock b;
    b.ln1_w = ln1->weight;
    b.ln1_b = ln1->bias;
    b.q_w = q->weight;
    b.q_b = q->bias;
    b.k_w = k->weight;
    b.k_b = k->bias;
    b.v_w = v->weight;
    b.v_b = v->bias;
    b.o_w = o->weight;
    b.o_b = o->bias;
    b.ln2_w = ln2->weight;
    b.ln2_b = ln2->bias;
    b.fc1_w = fc1->weight;
    b.fc1_b = fc1->bias;
    b.fc2_w = fc2->weight;
    b.fc2_b = fc2->bias;
    return b;
}

at::Tensor pre_ln_block(const at::Tensor& x, const PreLnBlock& b, std::int64_t heads,
                        const ModelConfig& config,
                        const std::function<at::Tensor(const at::Tensor&)>& rotate) {
    const auto d = x.size(-1);
    const double eps = config.layer_norm_eps;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d / heads));
    auto norm = [&](const at::Tensor& t, const at::Tensor& w, const at::Tensor& bias) {
        return b.rms_norm ? rms_norm(t, w, eps) : at::layer_norm(t, {d}, w, bias, eps);
    };
    const auto h = norm(x, b.ln1_w, b.ln1_b);
    auto q = split_heads(at::linear(h, b.q_w, b.q_b), heads);
    auto k = split_heads(at::linear(h, b.k_w, b.k_b), heads);
    if (rotate) {  // RoPE tables are float32: back to the compute dtype
        q = rotate(q).to(x.scalar_type());
        k = rotate(k).to(x.scalar_type());
    }
    const auto a = at::linear(
        attention(q, k, split_heads(at::linear(h, b.v_w, b.v_b), heads), scale), b.o_w, b.o_b);
    const auto y = x + (b.ls1.defined() ? a * b.ls1 : a);
    const auto h2 = norm(y, b.ln2_w, b.ln2_b);
    const auto& act = b.act.empty() ? config.hidden_act : b.act;
    const auto up = at::linear(h2, b.fc1_w, b.fc1_b);
    const auto m = at::linear(b.gate_w.defined()
                                  ? activation(at::linear(h2, b.gate_w, b.gate_b), act, config) * up
                                  : activation(up, act, config),
                              b.fc2_w, b.fc2_b);
    return y + (b.ls2.defined() ? m * b.ls2 : m);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
    const auto f = x.to(torch::kFloat32);
    return weight * (f * at::rsqrt(f.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
}

PatchGrid patch_grid(const at::Tensor& pixel_values, std::int64_t patch) {
    return {pixel_values.size(0), pixel_values.size(2) / patch, pixel_values.size(3) / patch};
}

at::Tensor embed_patches(const at::Tensor& pixels, const at::Tensor& weight, const at::Tensor& bias,
                         std::int64_t patch) {
    return at::conv2d(pixels, weight, bias, {patch, patch}).flatten(2).transpose(1, 2);
}

BlockStack::BlockStack(const ModelConfig& config, const at::Tensor& norm_weight,
                       const at::Tensor& norm_bias)
    : num_layers(config.num_hidden_layers), heads(config.num_attention_heads) {
    const double eps = config.layer_norm_eps;
    const std::int64_t d = config.hidden_size;
    norm = [norm_weight, norm_bias, eps, d](const at::Tensor& s) {
        return at::layer_norm(s, {d}, norm_weight, norm_bias, eps);
    };
}

at::Tensor cls_and_patches(const at::Tensor& cls, const at::Tensor& table,
                           const at::Tensor& patches, std::int64_t g0, std::int64_t gh,
                           std::int64_t gw) {
    const auto patch_pos = resize_positions(table.narrow(1, 1, g0 * g0), g0, gh, gw);
    const std::int64_t n = patches.size(0), d = patches.size(2);
    return torch::cat({(cls + table.narrow(1, 0, 1)).expand({n, 1, d}), patches + patch_pos}, 1);
}

namespace {

c10::ScalarType scalar_type(ComputeDType dtype) {
    switch (dtype) {
        case ComputeDType::kBFloat16:
            return torch::kBFloat16;
        case ComputeDType::kFloat16:
            return torch::kHalf;
        default:
            return torch::kFloat32;
    }
}

}  // namespace

PreLnBlock block_in_dtype(PreLnBlock b, c10::ScalarType type) {
    for (at::Tensor* t : {&b.ln1_w, &b.ln1_b, &b.q_w,   &b.q_b,    &b.k_w,    &b.k_b,   &b.v_w,
                          &b.v_b,   &b.o_w,   &b.o_b,   &b.ls1,    &b.ln2_w,  &b.ln2_b, &b.fc1_w,
                          &b.fc1_b, &b.fc2_w, &b.fc2_b, &b.gate_w, &b.gate_b, &b.ls2}) {
        if (t->defined() && t->scalar_type() != type) {
            *t = t->to(type);
        }
    }
    return b;
}

at::Tensor run_blocks(at::Tensor x, const BlockStack& stack, const ModelConfig& config,
                      const ForwardOptions& options, EncoderOutput& out) {
    const auto want = wanted_states(options, stack.num_layers + 1);
    const auto type = scalar_type(config.compute_dtype);
    auto keep = [&](std::int64_t i) {
        if (want[static_cast<std::size_t>(i)]) {
            const auto state = x.to(torch::kFloat32);
            out.layers[static_cast<int>(i)] = options.normalize_layers ? stack.norm(state) : state;
        }
    };
    keep(0);
    RADPROBE_USAGE_CHECK(type != torch::kHalf || !x.device().is_cpu(),
                         "--dtype fp16 needs a CUDA device: this LibTorch's CPU kernels have no "
                         "fp16 matrix products, norms or softmax (on CPU use bf16 or fp32)");
    if (type == torch::kFloat32 && c10::InferenceMode::is_enabled() && x.device().is_cpu()) {
        // Inference in float32 on the CPU: buffers reused across layers and calls, tiled
        // attention, one thread pool (block_workspace.cpp).
        return run_blocks_in_workspace(x.to(type).contiguous(), stack, config, want, options, out);
    }
    x = x.to(type);
    for (std::int64_t i = 0; i < stack.num_layers; ++i) {
        // Weights held in another dtype (a bf16 checkpoint computed in fp32, or the reverse) are
        // converted one block at a time: at most one block's copy exists.
        const auto block = block_in_dtype(stack.block(i), type);
        x = pre_ln_block(x, block, stack.heads, config, stack.rotate);
        keep(i + 1);
    }
    return x.to(torch::kFloat32);
}

at::Tensor resize_positions(const at::Tensor& table, std::int64_t g0, std::int64_t gh,
                            std::int64_t gw) {
    if (gh == g0 && gw == g0) {
        return table;
    }
    namespace F = torch::nn::functional;
    const auto d = table.size(2);
    const auto grid = table.reshape({1, g0, g0, d}).permute({0, 3, 1, 2}).to(torch::kFloat32);
    const auto resized = F::interpolate(grid, F::InterpolateFuncOptions()
                                                  .size(std::vector<std::int64_t>{gh, gw})
                                                  .mode(torch::kBicubic)
                                                  .align_corners(false));
    return resized.permute({0, 2, 3, 1}).reshape({1, gh * gw, d}).contiguous();
}

at::Tensor fold_patch_conv(at::Tensor& weight, const std::array<double, 3>& mean,
                           const std::array<double, 3>& std) {
    RADPROBE_CHECK(weight.size(1) == 3, "fold_grayscale: the patch embedding has ", weight.size(1),
                   " input channels, expected 3 (already folded?)");
    torch::NoGradGuard no_grad;
    const auto w = weight.to(torch::kFloat64);
    auto folded = torch::zeros_like(w.narrow(1, 0, 1));
    auto shift = torch::zeros({w.size(0)}, w.options());
    for (int c = 0; c < 3; ++c) {
        const auto wc = w.narrow(1, c, 1);
        folded += wc / std[c];
        shift -= wc.sum({1, 2, 3}) * (mean[c] / std[c]);
    }
    weight.set_data(folded.to(torch::kFloat32).contiguous());
    return shift.to(torch::kFloat32);
}

void LoadableEncoder::prepare() {
    check_activation(config_.hidden_act, config_);
}

std::int64_t LoadableEncoder::num_parameters() const {
    return count_parameters(module());
}

void fold_patch_embedding(at::Tensor& weight, at::Tensor& bias, const std::array<double, 3>& mean,
                          const std::array<double, 3>& std) {
    const auto shift = fold_patch_conv(weight, mean, std);
    torch::NoGradGuard no_grad;
    bias.add_(shift);
}

FcMlpImpl::FcMlpImpl(const ModelConfig& c) {
    fc1 = register_module("fc1", torch::nn::Linear(c.hidden_size, c.intermediate_size));
    fc2 = register_module("fc2", torch::nn::Linear(c.intermediate_size, c.hidden_size));
}

void LoadableEncoder::to(const c10::Device& device) {
    module().to(device);
    prepare();
}

at::Tensor LoadableEncoder::to_input(const at::Tensor& pixel_values) const {
    return pixel_values.to(device(), torch::kFloat32).contiguous();
}

EncoderOutput FunctionalEncoder::forward(const at::Tensor& pixel_values,
                                         const ForwardOptions& options) {
    c10::InferenceMode guard;
    return run(pixel_values, options, /*train=*/false);
}

EncoderOutput FunctionalEncoder::forward_train(const at::Tensor& pixel_values,
                                               const ForwardOptions& options) {
    return run(pixel_values, options, /*train=*/true);
}

double vit_flops(const ModelConfig& config, std::int64_t channels, std::int64_t prefix,
                 std::int64_t height, std::int64_t width) {
    const double p = static_cast<double>(config.patch_size);
    const double patches = std::floor(height / p) * std::floor(width / p);
    const double t = static_cast<double>(prefix) + patches;
    const double d = static_cast<double>(config.hidden_size);
    const double hf = static_cast<double>(config.intermediate_size);
    const double per_layer = 2 * t * d * 4 * d + 4 * t * t * d + 2 * t * d * 2 * hf;
    return 2 * patches * d * static_cast<double>(channels) * p * p +
           per_layer * static_cast<double>(config.num_hidden_layers);
}

std::int64_t count_parameters(const torch::nn::Module& module) {
    std::int64_t n = 0;
    for (const auto& p : module.parameters()) {
        n += p.numel();
    }
    return n;
}

}  // namespace radprobe::encoders::detail
