// The U-Net baseline for segmentation (from scratch). LibTorch.

#include "radprobe/core/error.hpp"
#include "seg_models.hpp"

namespace radprobe::segment {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

nn::Sequential double_conv(int in, int out) {
    return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1).bias(false)),
                          nn::BatchNorm2d(out), nn::ReLU(),
                          nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)),
                          nn::BatchNorm2d(out), nn::ReLU());
}

}  // namespace

UNet::UNet(int depth, int width) : depth_(depth) {
    RADPROBE_ASSERT(depth >= 1 && width >= 1);
    int in = 1;
    for (int l = 0; l < depth; ++l) {
        const int c = width << l;
        down_->push_back(double_conv(in, c));
        in = c;
    }
    bottom_ = double_conv(in, width << depth);
    for (int l = depth - 1; l >= 0; --l) {
        const int c = width << l;
        up_conv_->push_back(nn::Conv2d(nn::Conv2dOptions(c * 2, c, 1)));
        up_block_->push_back(double_conv(c * 2, c));
    }
    register_module("down", down_);
    register_module("bottom", bottom_);
    register_module("up_conv", up_conv_);
    register_module("up_block", up_block_);
    // He initialisation for the convolutions that feed a BatchNorm + ReLU. The 1×1 output conv
    // keeps LibTorch's default (uniform, ±1/√fan_in): He's ReLU gain there gave logits of
    // several units at step 0, a saturated sigmoid that predicted every pixel foreground
    // (val Dice = the foreground fraction) and took hundreds of steps to leave.
    for (auto& m : modules(false)) {
        if (auto* conv = m->as<nn::Conv2d>()) {
            nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanIn, torch::kReLU);
        }
    }
    out_ = register_module("out", nn::Conv2d(nn::Conv2dOptions(width, 1, 1)));
}

torch::Tensor UNet::forward_logits(const std::vector<torch::Tensor>& inputs) {
    RADPROBE_ASSERT(inputs.size() == 1);
    auto x = inputs[0];
    std::vector<torch::Tensor> skips;
    for (int l = 0; l < depth_; ++l) {
        x = down_[static_cast<std::size_t>(l)]->as<nn::Sequential>()->forward(x);
        skips.push_back(x);
        x = F::max_pool2d(x, F::MaxPool2dFuncOptions(2));
    }
    x = bottom_->forward(x);
    for (int k = 0; k < depth_; ++k) {
        const auto& skip = skips[static_cast<std::size_t>(depth_ - 1 - k)];
        x = F::interpolate(x, F::InterpolateFuncOptions()
                                  .size(std::vector<std::int64_t>{skip.size(2), skip.size(3)})
                                  .mode(torch::kBilinear)
                                  .align_corners(false));
        x = up_conv_[static_cast<std::size_t>(k)]->as<nn::Conv2d>()->forward(x);
        x = up_block_[static_cast<std::size_t>(k)]->as<nn::Sequential>()->forward(
            torch::cat({x, skip}, 1));
    }
    return out_->forward(x);
}

}  // namespace radprobe::segment
