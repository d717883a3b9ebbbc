// Predicted maps and masks as eval masks (see seg_geometry.hpp). No LibTorch.

#include "seg_geometry.hpp"

#include <algorithm>
#include <cmath>

#include "radprobe/core/error.hpp"

namespace radprobe::segment {

eval::Mask threshold_mask(const std::vector<float>& probabilities, int rows, int cols,
                          double threshold) {
    RADPROBE_ASSERT(probabilities.size() == static_cast<std::size_t>(rows) * cols);
    eval::Mask m;
    m.height = static_cast<std::size_t>(rows);
    m.width = static_cast<std::size_t>(cols);
    m.pixels.resize(probabilities.size());
    for (std::size_t i = 0; i < probabilities.size(); ++i) {
        m.pixels[i] = probabilities[i] >= threshold ? 1 : 0;
    }
    return m;
}

PackedMask pack_mask(const dataset::Mask& mask) {
    PackedMask p;
    p.rows = mask.rows;
    p.cols = mask.cols;
    for (const std::uint8_t v : mask.data) {
        if (p.values.empty() || p.values.back() != v) {
            p.values.push_back(v);
            p.lengths.push_back(0);
        }
        ++p.lengths.back();
        p.foreground += v != 0;
    }
    return p;
}

eval::Mask unpack_to_eval(const PackedMask& mask) {
    eval::Mask m;
    m.height = static_cast<std::size_t>(mask.rows);
    m.width = static_cast<std::size_t>(mask.cols);
    m.pixels.reserve(m.height * m.width);
    for (std::size_t r = 0; r < mask.values.size(); ++r) {
        m.pixels.insert(m.pixels.end(), mask.lengths[r], mask.values[r]);
    }
    RADPROBE_ASSERT(m.pixels.size() == m.height * m.width);
    return m;
}

}  // namespace radprobe::segment
