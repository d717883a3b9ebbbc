#pragma once
// Internal to segment (LibTorch): the segmentation networks.
//   - LinearSegDecoder: BatchNorm + 1×1 conv on the last patch grid (the DINOv2 "linear"
//     protocol), logits upsampled bilinearly to the model input;
//   - MultiscaleSegDecoder: a DPT-style decoder: each of n layers (shallow → deep) projected
//     by a 1×1 conv and resampled to its own scale (the deepest at 1/2 of the grid, each
//     shallower one twice the previous), then fused from the deepest up with residual conv
//     units and ×2 bilinear upsampling, a small conv head, and bilinear upsampling. On a
//     hierarchical encoder (ResNet, Swin, SAM2's Hiera, VMamba) the inputs are its stage maps,
//     already a pyramid: projected from each stage's width, not resampled, fused the same way;
//   - UNet: the classic encoder–decoder with skip connections (two 3×3 conv + BN + ReLU per
//     level, max-pool down, bilinear ×2 + conv up), trained from scratch on the image.
// Layouts: a patch grid is N×D×gh×gw; an image N×1×H×W; logits N×1×out_h×out_w.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace radprobe::segment {

/// Common interface: inputs (grids shallow → deep, or one image) → logits at the model input.
class SegNet : public torch::nn::Module {
public:
    virtual torch::Tensor forward_logits(const std::vector<torch::Tensor>& inputs) = 0;
};

/// Logits on a patch grid (N×1×h×w) → N×1×out_h×out_w: bilinear to the area the patches cover
/// (gh·patch × gw·patch), the remainder HF drops at the bottom/right filled by replicating the
/// edge. patch = 0 (hierarchical encoders): bilinear straight to out_h × out_w.
torch::Tensor upsample_to_input(const torch::Tensor& logits, std::int64_t grid_h,
                                std::int64_t grid_w, std::int64_t patch, std::int64_t out_h,
                                std::int64_t out_w);

class LinearSegDecoder : public SegNet {
public:
    LinearSegDecoder(std::int64_t dim, std::int64_t patch, std::int64_t out_h, std::int64_t out_w);
    torch::Tensor forward_logits(const std::vector<torch::Tensor>& inputs) override;

private:
    std::int64_t patch_, out_h_, out_w_;
    torch::nn::BatchNorm2d bn_{nullptr};
    torch::nn::Conv2d conv_{nullptr};
};

class MultiscaleSegDecoder : public SegNet {
public:
    MultiscaleSegDecoder(std::int64_t dim, int num_layers, int channels, std::int64_t patch,
                         std::int64_t out_h, std::int64_t out_w);
    /// On stage maps of widths `stage_dims` (shallow → deep, each stage half the previous one's
    /// size), logits bilinear to out_h × out_w.
    MultiscaleSegDecoder(const std::vector<std::int64_t>& stage_dims, int channels,
                         std::int64_t out_h, std::int64_t out_w);
    torch::Tensor forward_logits(const std::vector<torch::Tensor>& inputs) override;

private:
    void register_fusion_and_head(int channels);

    int num_layers_;
    std::int64_t patch_, out_h_, out_w_;
    bool stages_ = false;  ///< inputs are stage maps: no resampling
    torch::nn::ModuleList project_, resample_, fuse_;
    torch::nn::Sequential head_{nullptr};
};

class UNet : public SegNet {
public:
    UNet(int depth, int width);
    torch::Tensor forward_logits(const std::vector<torch::Tensor>& inputs) override;

private:
    int depth_;
    torch::nn::ModuleList down_, up_conv_, up_block_;
    torch::nn::Sequential bottom_{nullptr};
    torch::nn::Conv2d out_{nullptr};
};

}  // namespace radprobe::segment
