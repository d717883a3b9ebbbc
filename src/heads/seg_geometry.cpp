// Mask ↔ model-input geometry for segmentation (see seg_geometry.hpp). No LibTorch.

#include "seg_geometry.hpp"

#include <algorithm>
#include <cmath>

#include "radprobe/core/error.hpp"

namespace radprobe::heads {

SegGeometry resize_geometry(int rows, int cols, std::int64_t out_h, std::int64_t out_w) {
    RADPROBE_ASSERT(rows > 0 && cols > 0 && out_h > 0 && out_w > 0);
    SegGeometry g;
    g.rows = rows;
    g.cols = cols;
    g.scale_y = static_cast<double>(out_h) / rows;
    g.scale_x = static_cast<double>(out_w) / cols;
    g.out_h = out_h;
    g.out_w = out_w;
    return g;
}

std::vector<float> mask_to_input(const dataset::Mask& mask, const SegGeometry& g) {
    RADPROBE_ASSERT(mask.rows == g.rows && mask.cols == g.cols);
    const int R = g.rows, C = g.cols;
    // Integral image S(x, y) = mask area over [0, x) × [0, y); bilinear interpolation of S is
    // exact for a piecewise-constant mask, so fractional windows cost four lookups.
    std::vector<double> S(static_cast<std::size_t>(R + 1) * (C + 1), 0.0);
    auto at = [&](int y, int x) -> double& { return S[static_cast<std::size_t>(y) * (C + 1) + x]; };
    for (int y = 0; y < R; ++y) {
        double row = 0;
        for (int x = 0; x < C; ++x) {
            row += mask.data[static_cast<std::size_t>(y) * C + x] ? 1.0 : 0.0;
            at(y + 1, x + 1) = at(y, x + 1) + row;
        }
    }
    auto integral = [&](double x, double y) {
        x = std::clamp(x, 0.0, static_cast<double>(C));
        y = std::clamp(y, 0.0, static_cast<double>(R));
        const int x0 = std::min(static_cast<int>(std::floor(x)), C - 1);
        const int y0 = std::min(static_cast<int>(std::floor(y)), R - 1);
        const double fx = x - x0, fy = y - y0;
        return (1 - fx) * (1 - fy) * at(y0, x0) + fx * (1 - fy) * at(y0, x0 + 1) +
               (1 - fx) * fy * at(y0 + 1, x0) + fx * fy * at(y0 + 1, x0 + 1);
    };
    std::vector<float> out(static_cast<std::size_t>(g.out_h * g.out_w), 0.0f);
    for (std::int64_t v = 0; v < g.out_h; ++v) {
        const double y0 = (static_cast<double>(v) + g.crop_top) / g.scale_y;
        const double y1 = (static_cast<double>(v) + 1 + g.crop_top) / g.scale_y;
        for (std::int64_t u = 0; u < g.out_w; ++u) {
            const double x0 = (static_cast<double>(u) + g.crop_left) / g.scale_x;
            const double x1 = (static_cast<double>(u) + 1 + g.crop_left) / g.scale_x;
            const double area = (x1 - x0) * (y1 - y0);
            const double inside =
                integral(x1, y1) - integral(x0, y1) - integral(x1, y0) + integral(x0, y0);
            out[static_cast<std::size_t>(v * g.out_w + u)] =
                static_cast<float>(std::clamp(inside / area, 0.0, 1.0));
        }
    }
    return out;
}

std::vector<float> input_to_original(const float* p, const SegGeometry& g) {
    std::vector<float> out(static_cast<std::size_t>(g.rows) * g.cols, 0.0f);
    const auto H = g.out_h, W = g.out_w;
    for (int r = 0; r < g.rows; ++r) {
        const double v = (r + 0.5) * g.scale_y - g.crop_top;  // input coordinate of the centre
        if (v < 0 || v >= static_cast<double>(H)) {
            continue;
        }
        const double sy = std::clamp(v - 0.5, 0.0, static_cast<double>(H - 1));
        const auto y0 = static_cast<std::int64_t>(std::floor(sy));
        const auto y1 = std::min(y0 + 1, H - 1);
        const double fy = sy - static_cast<double>(y0);
        for (int c = 0; c < g.cols; ++c) {
            const double u = (c + 0.5) * g.scale_x - g.crop_left;
            if (u < 0 || u >= static_cast<double>(W)) {
                continue;
            }
            const double sx = std::clamp(u - 0.5, 0.0, static_cast<double>(W - 1));
            const auto x0 = static_cast<std::int64_t>(std::floor(sx));
            const auto x1 = std::min(x0 + 1, W - 1);
            const double fx = sx - static_cast<double>(x0);
            const double val = (1 - fy) * ((1 - fx) * p[y0 * W + x0] + fx * p[y0 * W + x1]) +
                               fy * ((1 - fx) * p[y1 * W + x0] + fx * p[y1 * W + x1]);
            out[static_cast<std::size_t>(r) * g.cols + c] = static_cast<float>(val);
        }
    }
    return out;
}

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

eval::Mask to_eval_mask(const dataset::Mask& mask) {
    eval::Mask m;
    m.height = static_cast<std::size_t>(mask.rows);
    m.width = static_cast<std::size_t>(mask.cols);
    m.pixels.assign(mask.data.begin(), mask.data.end());
    return m;
}

}  // namespace radprobe::heads
