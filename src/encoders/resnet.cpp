// ResNet (HF ResNetModel: bottleneck or basic blocks, BatchNorm in eval mode).
//
// Module tree = HF key tree: embedder.embedder.{convolution, normalization} (7×7 stride-2 conv,
// BN, activation; then a 3×3 stride-2 max-pool), encoder.stages.S.layers.B.{shortcut.
// {convolution, normalization}, layer.K.{convolution, normalization}}. BatchNorm buffers
// (running_mean, running_var, num_batches_tracked — the latter I64, read and unused) load 1:1.
// Token view: the last stage's N×C×H×W map becomes N×(H·W)×C patch tokens (row-major, no
// CLS); hidden state 0 is the stem output, i the output of stage i, each in that token form.
// The pooled output is the global average of the last stage (HF pooler_output, flattened).

#include <torch/torch.h>

#include "internal.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace nn = torch::nn;

constexpr double kBatchNormEps = 1e-5;  // torch nn.BatchNorm2d default, as HF uses it

struct ConvLayerImpl : nn::Module {
    ConvLayerImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                  bool act)
        : stride(stride), padding(kernel / 2), activate(act) {
        convolution = register_module(
            "convolution",
            nn::Conv2d(
                nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false)));
        normalization = register_module("normalization", nn::BatchNorm2d(out));
    }
    nn::Conv2d convolution{nullptr};
    nn::BatchNorm2d normalization{nullptr};
    std::int64_t stride, padding;
    bool activate;
};
TORCH_MODULE(ConvLayer);

struct ShortCutImpl : nn::Module {
    ShortCutImpl(std::int64_t in, std::int64_t out, std::int64_t stride) : stride(stride) {
        convolution = register_module(
            "convolution", nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
        normalization = register_module("normalization", nn::BatchNorm2d(out));
    }
    nn::Conv2d convolution{nullptr};
    nn::BatchNorm2d normalization{nullptr};
    std::int64_t stride;
};
TORCH_MODULE(ShortCut);

struct BlockImpl : nn::Module {
    BlockImpl(const ModelConfig& c, std::int64_t in, std::int64_t out, std::int64_t stride) {
        if (in != out || stride != 1) {
            shortcut = register_module("shortcut", ShortCut(in, out, stride));
        }
        layer = register_module("layer", nn::ModuleList());
        if (c.layer_type == "bottleneck") {
            const std::int64_t mid = out / 4;
            const bool in_bottleneck = c.downsample_in_bottleneck;
            layer->push_back(ConvLayer(in, mid, 1, in_bottleneck ? stride : 1, true));
            layer->push_back(ConvLayer(mid, mid, 3, in_bottleneck ? 1 : stride, true));
            layer->push_back(ConvLayer(mid, out, 1, 1, false));
        } else {
            layer->push_back(ConvLayer(in, out, 3, stride, true));
            layer->push_back(ConvLayer(out, out, 3, 1, false));
        }
    }
    ShortCut shortcut{nullptr};
    nn::ModuleList layer{nullptr};
};
TORCH_MODULE(Block);

struct StageImpl : nn::Module {
    StageImpl(const ModelConfig& c, std::int64_t in, std::int64_t out, std::int64_t stride,
              std::int64_t depth) {
        layers = register_module("layers", nn::ModuleList());
        layers->push_back(Block(c, in, out, stride));
        for (std::int64_t i = 1; i < depth; ++i) {
            layers->push_back(Block(c, out, out, 1));
        }
    }
    nn::ModuleList layers{nullptr};
};
TORCH_MODULE(Stage);

struct EmbedderImpl : nn::Module {
    explicit EmbedderImpl(const ModelConfig& c) {
        embedder =
            register_module("embedder", ConvLayer(c.num_channels, c.embedding_size, 7, 2, true));
    }
    ConvLayer embedder{nullptr};
};
TORCH_MODULE(Embedder);

struct EncoderImpl : nn::Module {
    explicit EncoderImpl(const ModelConfig& c) {
        stages = register_module("stages", nn::ModuleList());
        std::int64_t in = c.embedding_size;
        for (std::size_t s = 0; s < c.depths.size(); ++s) {
            const std::int64_t stride = (s == 0 && !c.downsample_in_first_stage) ? 1 : 2;
            stages->push_back(Stage(c, in, c.stage_widths[s], stride, c.depths[s]));
            in = c.stage_widths[s];
        }
    }
    nn::ModuleList stages{nullptr};
};
TORCH_MODULE(Encoder);

struct ResnetModelImpl : nn::Module {
    explicit ResnetModelImpl(const ModelConfig& c) {
        embedder = register_module("embedder", Embedder(c));
        encoder = register_module("encoder", Encoder(c));
    }
    Embedder embedder{nullptr};
    Encoder encoder{nullptr};
};
TORCH_MODULE(ResnetModel);

/// N×C×H×W → N×(H·W)×C.
at::Tensor to_tokens(const at::Tensor& map) {
    return map.flatten(2).transpose(1, 2).contiguous();
}

class ResnetRunner final : public FunctionalEncoder {
public:
    explicit ResnetRunner(const ModelConfig& config) : FunctionalEncoder(config), model_(config) {
        model_->eval();
    }

    torch::nn::Module& module() override { return *model_; }

    std::int64_t input_channels() const override {
        return model_->embedder->embedder->convolution->weight.size(1);
    }

    double flops_per_image(std::int64_t height, std::int64_t width) const override {
        // Every convolution: 2 · k² · Cin · Cout · output pixels, from the module tree.
        double flops = 0;
        std::int64_t h = height, w = width;
        auto conv = [&](const ConvLayerImpl& l) {
            const auto& wt = l.convolution->weight;
            h = (h + 2 * l.padding - wt.size(2)) / l.stride + 1;
            w = (w + 2 * l.padding - wt.size(3)) / l.stride + 1;
            flops += 2.0 * static_cast<double>(wt.numel()) * static_cast<double>(h * w);
        };
        conv(*model_->embedder->embedder);
        h = (h + 2 - 3) / 2 + 1;
        w = (w + 2 - 3) / 2 + 1;
        for (const auto& stage : *model_->encoder->stages) {
            for (const auto& block : *stage->as<StageImpl>()->layers) {
                for (const auto& l : *block->as<BlockImpl>()->layer) {
                    conv(*l->as<ConvLayerImpl>());
                }
            }
        }
        return flops;
    }

    void fold_grayscale(const std::array<double, 3>& /*mean*/,
                        const std::array<double, 3>& /*std*/) override {
        // The stem convolution zero-pads; folding the normalisation into it would change the
        // border responses, so it would not be the same model.
        RADPROBE_CHECK(false,
                       "grey folding is not supported for resnet (its 7x7 stem convolution "
                       "pads, so folding would change the border features); run without it");
    }

private:
    /// BatchNorm uses (and updates) batch statistics only in forward_train() after
    /// module().train().
    EncoderOutput run(const at::Tensor& pixel_values, const ForwardOptions& opts,
                      bool train) override {
        batch_stats_ = train && model_->is_training();
        check_pixels(pixel_values, input_channels(), 1);
        const auto num_stages = static_cast<std::int64_t>(config_.depths.size());
        const auto want = wanted_states(opts, num_stages + 1);
        EncoderOutput out;
        auto x = conv_layer(*model_->embedder->embedder, to_input(pixel_values));
        x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
        if (want[0]) {
            out.layers[0] = to_tokens(x);
        }
        for (std::int64_t s = 0; s < num_stages; ++s) {
            for (const auto& block :
                 *model_->encoder->stages[static_cast<std::size_t>(s)]->as<StageImpl>()->layers) {
                x = run_block(*block->as<BlockImpl>(), x);
            }
            if (want[static_cast<std::size_t>(s + 1)]) {
                out.layers[static_cast<int>(s + 1)] = to_tokens(x);
            }
            out.pyramid.push_back(x);
        }
        out.grid_h = x.size(2);
        out.grid_w = x.size(3);
        out.last_hidden_state = to_tokens(x);
        out.tokens = split_tokens(out.last_hidden_state, 0, out.grid_h, out.grid_w, false);
        out.pooled = x.mean({2, 3});
        return out;
    }

    at::Tensor batch_norm(const at::Tensor& x, const nn::BatchNorm2d& bn) const {
        // HF's nn.BatchNorm2d: momentum 0.1 when updating running statistics in training.
        return at::batch_norm(x, bn->weight, bn->bias, bn->running_mean, bn->running_var,
                              /*training=*/batch_stats_, /*momentum=*/0.1, kBatchNormEps,
                              /*cudnn_enabled=*/true);
    }

    at::Tensor conv_layer(const ConvLayerImpl& l, const at::Tensor& x) {
        auto y =
            at::conv2d(x, l.convolution->weight, {}, {l.stride, l.stride}, {l.padding, l.padding});
        y = batch_norm(y, l.normalization);
        return l.activate ? activation(y, config_.hidden_act, config_) : y;
    }

    at::Tensor run_block(const BlockImpl& b, const at::Tensor& x) {
        at::Tensor residual = x;
        if (b.shortcut) {
            const auto& sc = *b.shortcut;
            residual = batch_norm(at::conv2d(x, sc.convolution->weight, {}, {sc.stride, sc.stride}),
                                  sc.normalization);
        }
        at::Tensor h = x;
        for (const auto& l : *b.layer) {
            h = conv_layer(*l->as<ConvLayerImpl>(), h);
        }
        return activation(h + residual, config_.hidden_act, config_);
    }

    ResnetModel model_;
    bool batch_stats_ = false;
};

}  // namespace

std::unique_ptr<LoadableEncoder> make_resnet(const ModelConfig& config) {
    return std::make_unique<ResnetRunner>(config);
}

}  // namespace radprobe::encoders::detail
