// Control regions for `roi` pooling over boxes: where a data set boxes its positives only, the
// images without boxes get one box of a matched size in the lungs, so that a probe compares the
// region of a finding with a region of the same size elsewhere in the lungs (no LibTorch here).

#include <algorithm>
#include <cmath>

#include "radprobe/core/error.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::features {

namespace {

// FNV-1a: a stable 64-bit hash of the image id (std::hash differs between standard libraries).
std::uint64_t id_hash(const std::string& id) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : id) {
        h = (h ^ c) * 0x100000001b3ULL;
    }
    return h;
}

bool overlaps(const RegionBox& a, const RegionBox& b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

// Summed-area table of the lungs ((rows + 1) × (cols + 1)): the lung pixels of any box in O(1).
class LungCounts {
public:
    LungCounts(const std::vector<std::uint8_t>& lungs, int rows, int cols)
        : cols1_(static_cast<std::size_t>(cols) + 1),
          sum_((static_cast<std::size_t>(rows) + 1) * cols1_, 0) {
        for (int r = 0; r < rows; ++r) {
            std::uint32_t line = 0;
            for (int c = 0; c < cols; ++c) {
                line += lungs[static_cast<std::size_t>(r) * cols + c] ? 1 : 0;
                at(r + 1, c + 1) = at(r, c + 1) + line;
            }
        }
    }
    // Lung pixels in rows [y0, y1) × columns [x0, x1) (integers inside the image).
    double count(int x0, int y0, int x1, int y1) const {
        return static_cast<double>(at(y1, x1)) - at(y0, x1) - at(y1, x0) + at(y0, x0);
    }

private:
    std::uint32_t& at(int r, int c) { return sum_[static_cast<std::size_t>(r) * cols1_ + c]; }
    std::uint32_t at(int r, int c) const { return sum_[static_cast<std::size_t>(r) * cols1_ + c]; }
    std::size_t cols1_;
    std::vector<std::uint32_t> sum_;
};

struct Bounds {
    int r0, r1, c0, c1;  // bounding box of the lungs, [r0, r1) × [c0, c1)
};

std::optional<Bounds> lung_bounds(const std::vector<std::uint8_t>& lungs, int rows, int cols) {
    Bounds b{rows, 0, cols, 0};
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            if (lungs[static_cast<std::size_t>(r) * cols + c]) {
                b = {std::min(b.r0, r), std::max(b.r1, r + 1), std::min(b.c0, c),
                     std::max(b.c1, c + 1)};
            }
        }
    }
    if (b.r1 <= b.r0) {
        return std::nullopt;
    }
    return b;
}

}  // namespace

LungRegion lung_region(const dataset::Manifest& manifest, std::size_t index, int rows, int cols,
                       bool force_prior) {
    LungRegion out;
    out.inside.assign(static_cast<std::size_t>(rows) * cols, 0);
    auto filled = [&](const std::string& name) -> std::optional<dataset::Mask> {
        if (!manifest.mask_index(name)) {
            return std::nullopt;
        }
        auto m = manifest.load_mask(index, name, rows, cols);
        return m && m->count() > 0 ? m : std::nullopt;
    };
    if (!force_prior) {
        if (manifest.mask_index("lung_left") && manifest.mask_index("lung_right")) {
            const auto left = manifest.load_mask(index, "lung_left", rows, cols);
            const auto right = manifest.load_mask(index, "lung_right", rows, cols);
            if (left && right && left->count() + right->count() > 0) {
                for (std::size_t i = 0; i < out.inside.size(); ++i) {
                    out.inside[i] = (left->data[i] || right->data[i]) ? 1 : 0;
                }
                out.source = "mask_lung_left+mask_lung_right";
                return out;
            }
        }
        for (const char* name : {"lungs", "lung"}) {
            if (auto m = filled(name)) {
                for (std::size_t i = 0; i < out.inside.size(); ++i) {
                    out.inside[i] = m->data[i] ? 1 : 0;
                }
                out.source = std::string("mask_") + name;
                return out;
            }
        }
    }
    for (int r = rows / 4; r < rows - rows / 4; ++r) {
        for (int c = cols / 4; c < cols - cols / 4; ++c) {
            out.inside[static_cast<std::size_t>(r) * cols + c] = 1;
        }
    }
    out.source = "prior";
    return out;
}

std::vector<std::array<double, 2>> box_sizes(const dataset::Manifest& manifest,
                                             const std::string& label) {
    std::vector<std::array<double, 2>> sizes;
    for (const auto& rec : manifest.records()) {
        for (const auto& b : rec.boxes) {
            if ((label.empty() || b.label == label) && b.x1 > b.x0 && b.y1 > b.y0) {
                sizes.push_back({b.x1 - b.x0, b.y1 - b.y0});
            }
        }
    }
    return sizes;
}

std::optional<RegionBox> draw_control_box(const std::vector<std::uint8_t>& lungs, int rows,
                                          int cols, const std::vector<std::array<double, 2>>& sizes,
                                          const std::vector<RegionBox>& avoid, std::uint64_t seed,
                                          const std::string& image_id) {
    RADPROBE_ASSERT(lungs.size() == static_cast<std::size_t>(rows) * cols);
    if (sizes.empty() || rows <= 0 || cols <= 0) {
        return std::nullopt;
    }
    const auto bounds = lung_bounds(lungs, rows, cols);
    if (!bounds) {
        return std::nullopt;
    }
    Rng rng = Rng::derive(seed, id_hash(image_id));
    const LungCounts counts(lungs, rows, cols);
    const auto& size = sizes[rng.below(sizes.size())];
    const int w = std::clamp(static_cast<int>(std::lround(size[0])), 1, cols);
    const int h = std::clamp(static_cast<int>(std::lround(size[1])), 1, rows);
    // The middle pixel (r, c) of a box inside the image lies in [h/2, rows - h + h/2] ×
    // [w/2, cols - w + w/2]; drawn uniformly among the lung pixels there.
    const int r0 = std::max(bounds->r0, h / 2), r1 = std::min(bounds->r1, rows - h + h / 2 + 1);
    const int c0 = std::max(bounds->c0, w / 2), c1 = std::min(bounds->c1, cols - w + w / 2 + 1);
    if (r1 <= r0 || c1 <= c0) {
        return std::nullopt;
    }
    for (int attempt = 0; attempt < 400; ++attempt) {
        int r = 0, c = 0;
        bool in_lung = false;
        for (int k = 0; k < 1000 && !in_lung; ++k) {
            r = r0 + static_cast<int>(rng.below(static_cast<std::uint64_t>(r1 - r0)));
            c = c0 + static_cast<int>(rng.below(static_cast<std::uint64_t>(c1 - c0)));
            in_lung = lungs[static_cast<std::size_t>(r) * cols + c] != 0;
        }
        if (!in_lung) {
            continue;
        }
        // The drawn pixel is the box's middle pixel (the centre pixel for odd sides).
        const int x0 = c - w / 2;
        const int y0 = r - h / 2;
        const RegionBox b{static_cast<double>(x0), static_cast<double>(y0),
                          static_cast<double>(x0 + w), static_cast<double>(y0 + h)};
        if (std::any_of(avoid.begin(), avoid.end(),
                        [&](const RegionBox& o) { return overlaps(b, o); })) {
            continue;
        }
        // The first 200 draws ask for half the box in the lungs; then its centre is enough.
        if (attempt < 200 && 2.0 * counts.count(x0, y0, x0 + w, y0 + h) <
                                 static_cast<double>(w) * static_cast<double>(h)) {
            continue;
        }
        return b;
    }
    return std::nullopt;
}

}  // namespace radprobe::features
