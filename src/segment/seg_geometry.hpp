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

/// A mask held run-length encoded (row-major runs of equal values): a 2048² organ mask is a few
/// kilobytes instead of 4 MB, so a segmentation run holds every image's truth at the original
/// grid without growing with the image size.
struct PackedMask {
    int rows = 0;
    int cols = 0;
    std::vector<std::uint8_t> values;    ///< the value of each run
    std::vector<std::uint32_t> lengths;  ///< its length in pixels
    std::size_t foreground = 0;          ///< pixels != 0
};
PackedMask pack_mask(const dataset::Mask& mask);
/// The mask again, as an eval mask (pixel for pixel what pack_mask was given).
eval::Mask unpack_to_eval(const PackedMask& mask);

}  // namespace radprobe::segment
