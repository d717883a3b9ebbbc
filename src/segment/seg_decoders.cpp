// Segmentation decoders on encoder patch grids: linear and multiscale (DPT-style). LibTorch.

#include "radprobe/core/error.hpp"
#include "seg_models.hpp"

namespace radprobe::segment {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

torch::Tensor upsample_to_input(const torch::Tensor& logits, std::int64_t grid_h,
                                std::int64_t grid_w, std::int64_t patch, std::int64_t out_h,
                                std::int64_t out_w) {
    auto opts = [] {
        return F::InterpolateFuncOptions().mode(torch::kBilinear).align_corners(false);
    };
    if (patch <= 0) {
        return F::interpolate(logits, opts().size(std::vector<std::int64_t>{out_h, out_w}));
    }
    const std::int64_t h = std::min(out_h, grid_h * patch), w = std::min(out_w, grid_w * patch);
    auto up = F::interpolate(logits, opts().size(std::vector<std::int64_t>{h, w}));
    if (h < out_h || w < out_w) {
        up = F::pad(up, F::PadFuncOptions({0, out_w - w, 0, out_h - h}).mode(torch::kReplicate));
    }
    return up;
}

LinearSegDecoder::LinearSegDecoder(std::int64_t dim, std::int64_t patch, std::int64_t out_h,
                                   std::int64_t out_w)
    : patch_(patch), out_h_(out_h), out_w_(out_w) {
    bn_ = register_module("bn", nn::BatchNorm2d(dim));
    conv_ = register_module("conv", nn::Conv2d(nn::Conv2dOptions(dim, 1, 1)));
}

torch::Tensor LinearSegDecoder::forward_logits(const std::vector<torch::Tensor>& inputs) {
    RADPROBE_ASSERT(!inputs.empty());
    const auto& x = inputs.back();
    const auto logits = conv_->forward(bn_->forward(x));
    return upsample_to_input(logits, x.size(2), x.size(3), patch_, out_h_, out_w_);
}

namespace {

// Residual conv unit of DPT: x + conv(relu(conv(relu(x)))).
struct ResidualUnitImpl : nn::Module {
    explicit ResidualUnitImpl(int c) {
        conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(c, c, 3).padding(1)));
        conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(c, c, 3).padding(1)));
    }
    torch::Tensor forward(const torch::Tensor& x) {
        return x + conv2->forward(torch::relu(conv1->forward(torch::relu(x))));
    }
    nn::Conv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(ResidualUnit);

// One fusion step: (previous, skip) → RCU(previous + RCU(skip)), then 1×1 conv.
struct FusionImpl : nn::Module {
    explicit FusionImpl(int c) {
        skip_unit = register_module("skip_unit", ResidualUnit(c));
        unit = register_module("unit", ResidualUnit(c));
        out = register_module("out", nn::Conv2d(nn::Conv2dOptions(c, c, 1)));
    }
    torch::Tensor forward(const torch::Tensor& previous, const torch::Tensor& skip) {
        auto x = previous.defined() ? previous + skip_unit->forward(skip) : skip;
        return out->forward(unit->forward(x));
    }
    ResidualUnit skip_unit{nullptr}, unit{nullptr};
    nn::Conv2d out{nullptr};
};
TORCH_MODULE(Fusion);

}  // namespace

MultiscaleSegDecoder::MultiscaleSegDecoder(std::int64_t dim, int num_layers, int channels,
                                           std::int64_t patch, std::int64_t out_h,
                                           std::int64_t out_w)
    : num_layers_(num_layers), patch_(patch), out_h_(out_h), out_w_(out_w) {
    RADPROBE_ASSERT(num_layers >= 1 && channels >= 1);
    for (int i = 0; i < num_layers; ++i) {
        // Scale of layer i relative to the grid: 2^(n − 2 − i): …, 4, 2, 1, 1/2 (deepest).
        const int exponent = num_layers - 2 - i;
        project_->push_back(nn::Conv2d(nn::Conv2dOptions(dim, channels, 1)));
        if (exponent > 0) {
            const int f = 1 << exponent;
            resample_->push_back(
                nn::ConvTranspose2d(nn::ConvTranspose2dOptions(channels, channels, f).stride(f)));
        } else if (exponent < 0) {
            resample_->push_back(
                nn::Conv2d(nn::Conv2dOptions(channels, channels, 3).stride(2).padding(1)));
        } else {
            resample_->push_back(nn::Conv2d(nn::Conv2dOptions(channels, channels, 3).padding(1)));
        }
        fuse_->push_back(Fusion(channels));
    }
    register_module("project", project_);
    register_module("resample", resample_);
    register_fusion_and_head(channels);
}

MultiscaleSegDecoder::MultiscaleSegDecoder(const std::vector<std::int64_t>& stage_dims,
                                           int channels, std::int64_t out_h, std::int64_t out_w)
    : num_layers_(static_cast<int>(stage_dims.size())),
      patch_(0),
      out_h_(out_h),
      out_w_(out_w),
      stages_(true) {
    RADPROBE_ASSERT(!stage_dims.empty() && channels >= 1);
    for (const auto dim : stage_dims) {
        project_->push_back(nn::Conv2d(nn::Conv2dOptions(dim, channels, 1)));
        fuse_->push_back(Fusion(channels));
    }
    register_module("project", project_);
    register_fusion_and_head(channels);
}

// The head is made last, each fusion unit with its layer's projection: the order in which the
// seeded generator draws the initial weights (kept: the same seed gives the same decoder).
void MultiscaleSegDecoder::register_fusion_and_head(int channels) {
    register_module("fuse", fuse_);
    head_ = register_module(
        "head", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(channels, channels, 3).padding(1)),
                               nn::BatchNorm2d(channels), nn::ReLU(),
                               nn::Conv2d(nn::Conv2dOptions(channels, 1, 1))));
}

torch::Tensor MultiscaleSegDecoder::forward_logits(const std::vector<torch::Tensor>& inputs) {
    RADPROBE_ASSERT(static_cast<int>(inputs.size()) == num_layers_);
    const std::int64_t gh = inputs[0].size(2), gw = inputs[0].size(3);
    std::vector<torch::Tensor> levels;
    for (int i = 0; i < num_layers_; ++i) {
        auto x = project_[static_cast<std::size_t>(i)]->as<nn::Conv2d>()->forward(
            inputs[static_cast<std::size_t>(i)]);
        if (!stages_) {
            const auto r = resample_[static_cast<std::size_t>(i)];
            if (auto* t = r->as<nn::ConvTranspose2d>()) {
                x = t->forward(x);
            } else {
                x = r->as<nn::Conv2d>()->forward(x);
            }
        }
        levels.push_back(x);
    }
    // Fuse from the deepest (coarsest) level up; each step brings the running map to the size
    // of the next shallower level (×2 except where an odd grid size rounds).
    torch::Tensor x;
    for (int i = num_layers_ - 1; i >= 0; --i) {
        const auto& skip = levels[static_cast<std::size_t>(i)];
        if (x.defined()) {
            x = F::interpolate(x, F::InterpolateFuncOptions()
                                      .size(std::vector<std::int64_t>{skip.size(2), skip.size(3)})
                                      .mode(torch::kBilinear)
                                      .align_corners(false));
        }
        x = fuse_[static_cast<std::size_t>(i)]->as<Fusion>()->forward(x, skip);
    }
    const auto logits = head_->forward(x);
    return upsample_to_input(logits, gh, gw, patch_, out_h_, out_w_);
}

}  // namespace radprobe::segment
