#include "raster.hpp"

#include <algorithm>
#include <cmath>

namespace radprobe::synth::detail {

std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t tag) {
    std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (tag + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void gaussian_blur(std::vector<float>& image, int size, double sigma) {
    if (sigma <= 0.0) {
        return;
    }
    const int radius = std::max(1, static_cast<int>(std::ceil(3.0 * sigma)));
    std::vector<float> kernel(2 * radius + 1);
    double total = 0.0;
    for (int k = -radius; k <= radius; ++k) {
        const double w = std::exp(-0.5 * k * k / (sigma * sigma));
        kernel[k + radius] = static_cast<float>(w);
        total += w;
    }
    for (float& w : kernel) {
        w = static_cast<float>(w / total);
    }
    const std::size_t n = static_cast<std::size_t>(size);
    thread_local std::vector<float> tmp;
    thread_local std::vector<float> line;
    tmp.resize(image.size());
    line.resize(n + 2 * radius);
    // Rows.
    for (std::size_t r = 0; r < n; ++r) {
        const float* src = image.data() + r * n;
        for (int i = 0; i < radius; ++i) {
            line[i] = src[0];
            line[n + radius + i] = src[n - 1];
        }
        std::copy(src, src + n, line.begin() + radius);
        float* dst = tmp.data() + r * n;
        for (std::size_t c = 0; c < n; ++c) {
            float acc = 0.0f;
            for (int k = 0; k <= 2 * radius; ++k) {
                acc += kernel[k] * line[c + k];
            }
            dst[c] = acc;
        }
    }
    // Columns: accumulate whole rows at a time (cache friendly), same fixed order per pixel.
    for (std::size_t r = 0; r < n; ++r) {
        float* dst = image.data() + r * n;
        std::fill(dst, dst + n, 0.0f);
        for (int k = -radius; k <= radius; ++k) {
            const long rr = std::clamp<long>(static_cast<long>(r) + k, 0, static_cast<long>(n) - 1);
            const float w = kernel[k + radius];
            const float* src = tmp.data() + static_cast<std::size_t>(rr) * n;
            for (std::size_t c = 0; c < n; ++c) {
                dst[c] += w * src[c];
            }
        }
    }
}

void draw_segment(std::vector<float>& layer, int size, double x0, double y0, double x1, double y1,
                  double sigma, double amp) {
    const double reach = 3.0 * sigma;
    const int c_lo = std::max(0, static_cast<int>(std::floor(std::min(x0, x1) - reach)));
    const int c_hi = std::min(size - 1, static_cast<int>(std::ceil(std::max(x0, x1) + reach)));
    const int r_lo = std::max(0, static_cast<int>(std::floor(std::min(y0, y1) - reach)));
    const int r_hi = std::min(size - 1, static_cast<int>(std::ceil(std::max(y0, y1) + reach)));
    if (c_lo > c_hi || r_lo > r_hi) {
        return;
    }
    const double dx = x1 - x0;
    const double dy = y1 - y0;
    const double len2 = dx * dx + dy * dy;
    const double inv2s2 = 1.0 / (2.0 * sigma * sigma);
    for (int r = r_lo; r <= r_hi; ++r) {
        const double py = r + 0.5;
        for (int c = c_lo; c <= c_hi; ++c) {
            const double px = c + 0.5;
            double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0.0;
            t = std::clamp(t, 0.0, 1.0);
            const double ex = px - (x0 + t * dx);
            const double ey = py - (y0 + t * dy);
            const double d2 = ex * ex + ey * ey;
            if (d2 > reach * reach) {
                continue;
            }
            const float v = static_cast<float>(amp * std::exp(-d2 * inv2s2));
            float& dst = layer[static_cast<std::size_t>(r) * size + c];
            dst = std::max(dst, v);
        }
    }
}

}  // namespace radprobe::synth::detail
