#pragma once
// Internal to segment: predicted maps and masks as eval masks (the geometry between an original
// image and the model input is preprocess::Geometry). No LibTorch.

#include <cstdint>
#include <vector>

#include "radprobe/dataset/manifest.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::segment {

/// Thresholds (p >= threshold → 1) a rows × cols map into an eval mask.
eval::Mask threshold_mask(const std::vector<float>& probabilities, int rows, int cols,
                          double threshold = 0.5);

/// dataset::Mask → eval::Mask.
eval::Mask to_eval_mask(const dataset::Mask& mask);

}  // namespace radprobe::segment
