// Pooling modes, region weights over the patch grid, and content hashes (no LibTorch here).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::features {

namespace fs = std::filesystem;

const char* pooling_name(Pooling pooling) {
    switch (pooling) {
        case Pooling::kCls: return "cls";
        case Pooling::kMean: return "mean";
        case Pooling::kClsMean: return "cls+mean";
        case Pooling::kRoi: return "roi";
        case Pooling::kPatches: return "patches";
    }
    return "?";
}

std::vector<Pooling> parse_poolings(const std::string& text) {
    std::vector<Pooling> out;
    for (const auto& item : dataset::split_list(text)) {
        bool found = false;
        for (Pooling p : {Pooling::kCls, Pooling::kMean, Pooling::kClsMean, Pooling::kRoi,
                          Pooling::kPatches}) {
            if (item == pooling_name(p)) {
                if (std::find(out.begin(), out.end(), p) == out.end()) {
                    out.push_back(p);
                }
                found = true;
            }
        }
        RADPROBE_USAGE_CHECK(found, "--pool: unknown pooling '", item,
                             "' (valid: cls, mean, cls+mean, roi, patches)");
    }
    RADPROBE_USAGE_CHECK(!out.empty(), "--pool: no pooling given (valid: cls, mean, cls+mean, roi, patches)");
    return out;
}

std::vector<int> parse_layers(const std::string& text) {
    std::vector<int> out;
    for (const auto& item : dataset::split_list(text)) {
        const auto v = parse_int(item);
        RADPROBE_USAGE_CHECK(v.has_value() && *v > -10000 && *v < 10000, "--layers: '", item,
                             "' is not a layer index (e.g. -1,-4)");
        out.push_back(static_cast<int>(*v));
    }
    return out;
}

std::int64_t pooled_width(Pooling pooling, std::int64_t dim, std::int64_t grid) {
    if (pooling == Pooling::kPatches) {
        return grid * dim;
    }
    return pooling == Pooling::kClsMean ? 2 * dim : dim;
}

namespace {

// Adds the area of [x0,x1)×[y0,y1) (input-pixel coordinates) to per-pixel coverage, clipped
// to the input; returns the area that fell inside.
double add_rect(std::vector<float>& coverage, std::int64_t h, std::int64_t w, double x0, double y0,
                double x1, double y1, bool union_max) {
    x0 = std::max(x0, 0.0);
    y0 = std::max(y0, 0.0);
    x1 = std::min(x1, static_cast<double>(w));
    y1 = std::min(y1, static_cast<double>(h));
    if (x1 <= x0 || y1 <= y0) {
        return 0.0;
    }
    const auto c0 = static_cast<std::int64_t>(std::floor(x0));
    const auto c1 = static_cast<std::int64_t>(std::ceil(x1));
    const auto r0 = static_cast<std::int64_t>(std::floor(y0));
    const auto r1 = static_cast<std::int64_t>(std::ceil(y1));
    for (std::int64_t r = r0; r < r1; ++r) {
        const double fy = std::min(y1, r + 1.0) - std::max(y0, static_cast<double>(r));
        for (std::int64_t c = c0; c < c1; ++c) {
            const double fx = std::min(x1, c + 1.0) - std::max(x0, static_cast<double>(c));
            float& cell = coverage[static_cast<std::size_t>(r * w + c)];
            const auto a = static_cast<float>(fx * fy);
            cell = union_max ? std::max(cell, a) : std::min(1.0f, cell + a);
        }
    }
    return (x1 - x0) * (y1 - y0);
}

std::vector<float> cell_weights(const std::vector<float>& coverage, const InputGeometry& g) {
    const std::int64_t gh = g.grid_h(), gw = g.grid_w(), p = g.patch;
    std::vector<float> weights(static_cast<std::size_t>(gh * gw), 0.0f);
    for (std::int64_t cy = 0; cy < gh; ++cy) {
        for (std::int64_t cx = 0; cx < gw; ++cx) {
            double sum = 0;
            for (std::int64_t y = cy * p; y < (cy + 1) * p; ++y) {
                for (std::int64_t x = cx * p; x < (cx + 1) * p; ++x) {
                    sum += coverage[static_cast<std::size_t>(y * g.out_width + x)];
                }
            }
            weights[static_cast<std::size_t>(cy * gw + cx)] =
                static_cast<float>(sum / static_cast<double>(p * p));
        }
    }
    return weights;
}

void check_geometry(const InputGeometry& g) {
    RADPROBE_ASSERT(g.out_height > 0 && g.out_width > 0 && g.patch > 0 && g.grid_h() > 0 &&
                    g.grid_w() > 0);
}

}  // namespace

std::vector<float> roi_weights_from_boxes(const std::vector<RegionBox>& boxes,
                                          const InputGeometry& g, const std::string& image) {
    check_geometry(g);
    std::vector<float> coverage(static_cast<std::size_t>(g.out_height * g.out_width), 0.0f);
    double inside = 0;
    for (const auto& b : boxes) {
        RADPROBE_CHECK(b.x1 > b.x0 && b.y1 > b.y0, image, ": inverted or empty box (", b.x0, ",",
                       b.y0, ")-(", b.x1, ",", b.y1, ")");
        inside += add_rect(coverage, g.out_height, g.out_width, b.x0 * g.scale_x - g.crop_left,
                           b.y0 * g.scale_y - g.crop_top, b.x1 * g.scale_x - g.crop_left,
                           b.y1 * g.scale_y - g.crop_top, true);
    }
    RADPROBE_CHECK(inside > 0, image,
                   ": the region (box) falls entirely outside the model input after resize/crop");
    return cell_weights(coverage, g);
}

std::vector<float> roi_weights_from_mask(const std::uint8_t* mask, int rows, int cols,
                                         const InputGeometry& g, const std::string& image) {
    check_geometry(g);
    std::vector<float> coverage(static_cast<std::size_t>(g.out_height * g.out_width), 0.0f);
    double inside = 0;
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            if (!mask[static_cast<std::size_t>(r) * cols + c]) {
                continue;
            }
            inside += add_rect(coverage, g.out_height, g.out_width, c * g.scale_x - g.crop_left,
                               r * g.scale_y - g.crop_top, (c + 1) * g.scale_x - g.crop_left,
                               (r + 1) * g.scale_y - g.crop_top, false);
        }
    }
    RADPROBE_CHECK(inside > 0, image,
                   ": the region (mask) is empty or falls entirely outside the model input");
    return cell_weights(coverage, g);
}

std::vector<float> pool(Pooling pooling, const float* cls, const float* patches, std::int64_t grid,
                        std::int64_t dim, const std::vector<float>& roi_weights,
                        const std::string& model_name) {
    std::vector<float> out;
    out.reserve(static_cast<std::size_t>(pooled_width(pooling, dim, grid)));
    auto mean_of = [&](const float* w) {
        std::vector<double> acc(static_cast<std::size_t>(dim), 0.0);
        double total = 0;
        for (std::int64_t g = 0; g < grid; ++g) {
            const double wg = w ? w[g] : 1.0;
            if (wg == 0.0) {
                continue;
            }
            total += wg;
            const float* t = patches + g * dim;
            for (std::int64_t d = 0; d < dim; ++d) {
                acc[static_cast<std::size_t>(d)] += wg * t[d];
            }
        }
        for (std::int64_t d = 0; d < dim; ++d) {
            out.push_back(total > 0 ? static_cast<float>(acc[static_cast<std::size_t>(d)] / total)
                                    : std::numeric_limits<float>::quiet_NaN());
        }
    };
    switch (pooling) {
        case Pooling::kCls:
        case Pooling::kClsMean:
            RADPROBE_CHECK(cls != nullptr, model_name, ": has no CLS token; use --pool mean or roi");
            out.insert(out.end(), cls, cls + dim);
            if (pooling == Pooling::kClsMean) {
                mean_of(nullptr);
            }
            break;
        case Pooling::kMean:
            mean_of(nullptr);
            break;
        case Pooling::kRoi:
            if (roi_weights.empty()) {
                out.assign(static_cast<std::size_t>(dim), std::numeric_limits<float>::quiet_NaN());
            } else {
                RADPROBE_ASSERT(static_cast<std::int64_t>(roi_weights.size()) == grid);
                mean_of(roi_weights.data());
            }
            break;
        case Pooling::kPatches:
            out.assign(patches, patches + grid * dim);
            break;
    }
    return out;
}

namespace {
struct Hasher {
    std::uint64_t a = 0x9E3779B97F4A7C15ULL, b = 0xC2B2AE3D27D4EB4FULL;
    std::uint64_t length = 0;
    static std::uint64_t mix(std::uint64_t x) {
        x ^= x >> 33;
        x *= 0xFF51AFD7ED558CCDULL;
        x ^= x >> 33;
        x *= 0xC4CEB9FE1A85EC53ULL;
        x ^= x >> 33;
        return x;
    }
    void update(const char* data, std::size_t n) {
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t w;
            std::memcpy(&w, data + i, 8);
            a = (a ^ mix(w)) * 0x100000001B3ULL + 0x632BE59BD9B4E019ULL;
            b = (b + w) * 0x9E3779B97F4A7C15ULL;
            b ^= b >> 29;
        }
        for (; i < n; ++i) {
            a = (a ^ static_cast<unsigned char>(data[i])) * 0x100000001B3ULL;
        }
        length += n;
    }
    std::string hex() const {
        const std::uint64_t h = mix(a ^ mix(b + length));
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
        return buf;
    }
};
}  // namespace

std::string content_hash(const std::string& bytes) {
    Hasher h;
    h.update(bytes.data(), bytes.size());
    return h.hex();
}

std::string content_hash_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    RADPROBE_CHECK(in.good(), path.string(), ": cannot open for hashing");
    Hasher h;
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto n = static_cast<std::size_t>(in.gcount());
        // Keep 8-byte alignment of the word stream across chunks (chunk size is a multiple of 8).
        h.update(buf.data(), n);
    }
    return h.hex();
}

fs::path resolve_store_dir(const fs::path& path) {
    RADPROBE_CHECK(fs::is_directory(path), "--store ", path.string(), ": not a directory");
    if (fs::exists(path / "COMPLETE")) {
        return path;
    }
    std::vector<fs::path> complete, partial;
    for (const auto& entry : fs::directory_iterator(path)) {
        if (entry.is_directory()) {
            (fs::exists(entry.path() / "COMPLETE") ? complete : partial).push_back(entry.path());
        }
    }
    RADPROBE_CHECK(complete.size() == 1, "--store ", path.string(), ": expected a complete ",
                   "embedding store (a directory with COMPLETE) or a root holding exactly one; "
                   "found ",
                   complete.size(), " complete and ", partial.size(), " incomplete store(s)",
                   complete.size() > 1 ? " — pass one of them" : "");
    return complete.front();
}

InputGeometry patch_geometry(const preprocess::Geometry& g, std::int64_t patch) {
    InputGeometry ig;
    ig.scale_x = g.scale_x;
    ig.scale_y = g.scale_y;
    ig.crop_left = static_cast<double>(g.crop_left);
    ig.crop_top = static_cast<double>(g.crop_top);
    ig.out_height = g.out_height;
    ig.out_width = g.out_width;
    ig.patch = patch;
    return ig;
}

}  // namespace radprobe::features
