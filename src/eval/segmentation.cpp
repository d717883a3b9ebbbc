// Segmentation metrics: overlap counts, surfaces by 4-connected erosion, exact anisotropic
// Euclidean distance transform (Felzenszwalb & Huttenlocher) for surface distances.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<std::uint8_t> surface(const Mask& m) {
    const std::size_t h = m.height;
    const std::size_t w = m.width;
    std::vector<std::uint8_t> s(h * w, 0);
    auto fg = [&](std::size_t r, std::size_t c) { return m.pixels[r * w + c] != 0; };
    for (std::size_t r = 0; r < h; ++r) {
        for (std::size_t c = 0; c < w; ++c) {
            if (!fg(r, c)) {
                continue;
            }
            const bool interior = r > 0 && r + 1 < h && c > 0 && c + 1 < w && fg(r - 1, c) &&
                                  fg(r + 1, c) && fg(r, c - 1) && fg(r, c + 1);
            s[r * w + c] = interior ? 0 : 1;
        }
    }
    return s;
}

/// 1-D squared distance transform: out[q] = min_p (s (q − p))² + f[p] over finite f[p].
void distance_1d(const double* f, std::size_t n, std::size_t stride, double spacing, double* out,
                 std::vector<std::size_t>& v, std::vector<double>& z) {
    const double s2 = spacing * spacing;
    v.resize(n);
    z.resize(n + 1);
    std::ptrdiff_t k = -1;
    for (std::size_t q = 0; q < n; ++q) {
        const double fq = f[q * stride];
        if (fq == kInf) {
            continue;
        }
        if (k < 0) {
            k = 0;
            v[0] = q;
            z[0] = -kInf;
            z[1] = kInf;
            continue;
        }
        double x;
        while (true) {
            const std::size_t p = v[k];
            const double dq = static_cast<double>(q);
            const double dp = static_cast<double>(p);
            x = ((fq + s2 * dq * dq) - (f[p * stride] + s2 * dp * dp)) / (2.0 * s2 * (dq - dp));
            if (x <= z[k]) {
                --k;  // z[0] = −inf, so k never drops below 0
            } else {
                break;
            }
        }
        ++k;
        v[k] = q;
        z[k] = x;
        z[k + 1] = kInf;
    }
    if (k < 0) {
        for (std::size_t q = 0; q < n; ++q) {
            out[q * stride] = kInf;
        }
        return;
    }
    std::size_t j = 0;
    for (std::size_t q = 0; q < n; ++q) {
        while (z[j + 1] < static_cast<double>(q)) {
            ++j;
        }
        const double d = static_cast<double>(q) - static_cast<double>(v[j]);
        out[q * stride] = s2 * d * d + f[v[j] * stride];
    }
}

/// Squared distance (mm²) from every pixel to the nearest site.
std::vector<double> squared_distance_map(const std::vector<std::uint8_t>& sites, std::size_t h,
                                         std::size_t w, const PixelSpacing& spacing) {
    std::vector<double> f(h * w);
    for (std::size_t i = 0; i < h * w; ++i) {
        f[i] = sites[i] ? 0.0 : kInf;
    }
    std::vector<double> g(h * w);
    std::vector<std::size_t> v;
    std::vector<double> z;
    for (std::size_t c = 0; c < w; ++c) {
        distance_1d(f.data() + c, h, w, spacing.row_mm, g.data() + c, v, z);
    }
    for (std::size_t r = 0; r < h; ++r) {
        distance_1d(g.data() + r * w, w, 1, spacing.col_mm, f.data() + r * w, v, z);
    }
    return f;
}

std::vector<double> directed_distances(const std::vector<std::uint8_t>& from,
                                       const std::vector<double>& to_squared) {
    std::vector<double> d;
    for (std::size_t i = 0; i < from.size(); ++i) {
        if (from[i]) {
            d.push_back(std::sqrt(to_squared[i]));
        }
    }
    return d;
}

}  // namespace

bool Mask::empty_foreground() const {
    return std::none_of(pixels.begin(), pixels.end(), [](std::uint8_t p) { return p != 0; });
}

BothEmpty parse_both_empty(const std::string& text) {
    if (text == "perfect") {
        return BothEmpty::kPerfect;
    }
    if (text == "exclude") {
        return BothEmpty::kExclude;
    }
    throw UsageError("both-empty convention '" + text + "' is not one of: perfect, exclude");
}

OneEmpty parse_one_empty(const std::string& text) {
    if (text == "exclude") {
        return OneEmpty::kExclude;
    }
    if (text == "diagonal") {
        return OneEmpty::kDiagonal;
    }
    throw UsageError("one-empty convention '" + text + "' is not one of: exclude, diagonal");
}

SegmentationScores segmentation_scores(const Mask& prediction, const Mask& truth,
                                       const SegmentationOptions& options) {
    RADPROBE_CHECK(prediction.height == truth.height && prediction.width == truth.width,
                   "segmentation_scores: prediction is ", prediction.height, "x", prediction.width,
                   " but truth is ", truth.height, "x", truth.width);
    RADPROBE_CHECK(prediction.pixels.size() == prediction.height * prediction.width &&
                       truth.pixels.size() == truth.height * truth.width,
                   "segmentation_scores: mask pixel count does not match its size");
    RADPROBE_CHECK(options.spacing.row_mm > 0 && options.spacing.col_mm > 0 &&
                       std::isfinite(options.spacing.row_mm) &&
                       std::isfinite(options.spacing.col_mm),
                   "segmentation_scores: pixel spacing must be positive, got ",
                   options.spacing.row_mm, " x ", options.spacing.col_mm);
    SegmentationScores s;
    for (std::size_t i = 0; i < truth.pixels.size(); ++i) {
        const bool p = prediction.pixels[i] != 0;
        const bool t = truth.pixels[i] != 0;
        s.tp += p && t;
        s.fp += p && !t;
        s.fn += !p && t;
    }
    s.prediction_empty = s.tp + s.fp == 0;
    s.truth_empty = s.tp + s.fn == 0;
    const auto tp = static_cast<double>(s.tp);
    const auto fp = static_cast<double>(s.fp);
    const auto fn = static_cast<double>(s.fn);
    if (s.prediction_empty && s.truth_empty) {
        if (options.both_empty == BothEmpty::kPerfect) {
            s.dice = s.iou = s.precision = s.recall = 1.0;
            s.hd95 = s.assd = s.hausdorff = 0.0;
        }
        return s;
    }
    s.dice = 2.0 * tp / (2.0 * tp + fp + fn);
    s.iou = tp / (tp + fp + fn);
    if (!s.prediction_empty) {
        s.precision = tp / (tp + fp);
    }
    if (!s.truth_empty) {
        s.recall = tp / (tp + fn);
    }
    if (s.prediction_empty || s.truth_empty) {
        if (options.one_empty == OneEmpty::kDiagonal) {
            const double diag =
                std::hypot(static_cast<double>(truth.height) * options.spacing.row_mm,
                           static_cast<double>(truth.width) * options.spacing.col_mm);
            s.hd95 = s.assd = s.hausdorff = diag;
        }
        return s;
    }
    const auto sp = surface(prediction);
    const auto st = surface(truth);
    const auto dp = directed_distances(
        sp, squared_distance_map(st, truth.height, truth.width, options.spacing));
    const auto dt = directed_distances(
        st, squared_distance_map(sp, truth.height, truth.width, options.spacing));
    auto mean = [](const std::vector<double>& d) {
        return std::accumulate(d.begin(), d.end(), 0.0) / static_cast<double>(d.size());
    };
    s.assd = 0.5 * (mean(dp) + mean(dt));
    std::vector<double> all(dp);
    all.insert(all.end(), dt.begin(), dt.end());
    std::sort(all.begin(), all.end());
    const double h = 0.95 * static_cast<double>(all.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(h));
    s.hd95 = lo + 1 < all.size() ? all[lo] + (h - static_cast<double>(lo)) * (all[lo + 1] - all[lo])
                                 : all.back();
    s.hausdorff = all.back();
    return s;
}

std::vector<SegmentationSummary> summarize_segmentation(
    const std::vector<SegmentationScores>& per_image, const BootstrapOptions& options,
    std::span<const std::size_t> clusters) {
    RADPROBE_CHECK(clusters.empty() || clusters.size() == per_image.size(),
                   "summarize_segmentation: ", clusters.size(), " cluster ids for ",
                   per_image.size(), " images (lengths must match)");
    using Field = std::optional<double> SegmentationScores::*;
    const std::pair<const char*, Field> fields[] = {
        {"dice", &SegmentationScores::dice},           {"iou", &SegmentationScores::iou},
        {"precision", &SegmentationScores::precision}, {"recall", &SegmentationScores::recall},
        {"hd95", &SegmentationScores::hd95},           {"assd", &SegmentationScores::assd},
        {"hausdorff", &SegmentationScores::hausdorff}};
    std::vector<SegmentationSummary> out;
    for (const auto& [name, field] : fields) {
        std::vector<std::optional<double>> values;
        values.reserve(per_image.size());
        for (const auto& s : per_image) {
            values.push_back(s.*field);
        }
        SegmentationSummary summary;
        summary.metric = name;
        summary.defined = static_cast<std::size_t>(std::count_if(
            values.begin(), values.end(), [](const auto& v) { return v.has_value(); }));
        if (summary.defined > 0) {
            summary.ci = bootstrap_mean(values, options, clusters);
        }
        out.push_back(std::move(summary));
    }
    return out;
}

}  // namespace radprobe::eval
