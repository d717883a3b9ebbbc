// Synthetic small-scale signals inserted into display images (the perturbation panel).

#include <algorithm>
#include <cmath>
#include <numbers>

#include "radprobe/analysis/analysis.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::analysis {

std::array<double, 4> insert_perturbation(std::vector<float>& image, int rows, int cols,
                                          const Perturbation& p) {
    RADPROBE_ASSERT(static_cast<std::size_t>(rows) * cols == image.size());
    RADPROBE_USAGE_CHECK(p.size > 0 && std::isfinite(p.size), "perturbation size must be > 0");
    const double s = p.size;
    const double ca = std::cos(p.angle), sa = std::sin(p.angle);
    const double sigma = s / 4.0;
    const double sigma_minor = std::max(0.6, s / 16.0);
    const double lambda = std::max(3.0, s / 4.0);
    const double edge = std::max(1.0, s / 8.0);
    const double two_pi = 2.0 * std::numbers::pi;
    // The change is confined to the window |x − cx|, |y − cy| <= size.
    const int r0 = std::max(0, static_cast<int>(std::floor(p.cy - s)));
    const int r1 = std::min(rows - 1, static_cast<int>(std::ceil(p.cy + s)));
    const int c0 = std::max(0, static_cast<int>(std::floor(p.cx - s)));
    const int c1 = std::min(cols - 1, static_cast<int>(std::ceil(p.cx + s)));
    for (int r = r0; r <= r1; ++r) {
        const double dy = r + 0.5 - p.cy;
        if (std::abs(dy) > s) {
            continue;
        }
        for (int c = c0; c <= c1; ++c) {
            const double dx = c + 0.5 - p.cx;
            if (std::abs(dx) > s) {
                continue;
            }
            const double u = dx * ca + dy * sa;
            const double v = -dx * sa + dy * ca;
            double delta = 0.0;
            switch (p.kind) {
                case PerturbKind::kBlob:
                    delta = std::exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma));
                    break;
                case PerturbKind::kStreak:
                    delta = std::exp(-u * u / (2.0 * sigma * sigma) -
                                     v * v / (2.0 * sigma_minor * sigma_minor));
                    break;
                case PerturbKind::kReticular: {
                    const double mesh = std::max(
                        0.0, std::cos(two_pi * u / lambda) + std::cos(two_pi * v / lambda) - 1.0);
                    const double rr = std::sqrt(dx * dx + dy * dy);
                    const double window = 0.5 * (1.0 - std::tanh((rr - s / 2.0) / edge));
                    delta = mesh * window;
                    break;
                }
            }
            float& px = image[static_cast<std::size_t>(r) * cols + c];
            px = static_cast<float>(std::clamp(px + p.contrast * delta, 0.0, 1.0));
        }
    }
    return {std::clamp(p.cx - s / 2.0, 0.0, static_cast<double>(cols)),
            std::clamp(p.cy - s / 2.0, 0.0, static_cast<double>(rows)),
            std::clamp(p.cx + s / 2.0, 0.0, static_cast<double>(cols)),
            std::clamp(p.cy + s / 2.0, 0.0, static_cast<double>(rows))};
}

}  // namespace radprobe::analysis
