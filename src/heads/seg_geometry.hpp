#pragma once
// Internal to heads: the pixel geometry between an original image and a segmentation model's
// input (resize, then crop), used in both directions. No LibTorch.
//
// Original pixel (c, r) covers [c, c+1) × [r, r+1); it lands on the model input at
// [c·scale_x − crop_left, (c+1)·scale_x − crop_left) × (the same in y). The model input is
// out_h × out_w, row-major.

#include <cstdint>
#include <vector>

#include "radprobe/dataset/manifest.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::heads {

struct SegGeometry {
    int rows = 0, cols = 0;  ///< original image
    double scale_y = 1.0, scale_x = 1.0;
    double crop_top = 0.0, crop_left = 0.0;
    std::int64_t out_h = 0, out_w = 0;
};

/// A plain resize to out_h × out_w (the U-Net's input).
SegGeometry resize_geometry(int rows, int cols, std::int64_t out_h, std::int64_t out_w);

/// The fraction of each model-input pixel covered by the mask (exact area average of the
/// original pixels it overlaps; 0 outside the image): out_h × out_w values in [0, 1].
std::vector<float> mask_to_input(const dataset::Mask& mask, const SegGeometry& g);

/// Probabilities on the model input (out_h × out_w) → the original grid (rows × cols): each
/// original pixel centre is mapped into the input and the map sampled bilinearly (edges
/// clamped, as align_corners=false resizing); centres outside the input (cut away by the crop)
/// get 0 — the model never saw them.
std::vector<float> input_to_original(const float* probabilities, const SegGeometry& g);

/// Thresholds (p >= threshold → 1) a rows × cols map into an eval mask.
eval::Mask threshold_mask(const std::vector<float>& probabilities, int rows, int cols,
                          double threshold = 0.5);

/// dataset::Mask → eval::Mask.
eval::Mask to_eval_mask(const dataset::Mask& mask);

}  // namespace radprobe::heads
