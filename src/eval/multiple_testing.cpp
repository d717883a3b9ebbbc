// Adjusted p-values for many comparisons, defined as R's p.adjust.

#include <algorithm>
#include <cmath>
#include <numeric>

#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

namespace {

void check_p_values(std::span<const double> p, const std::string& where) {
    for (std::size_t i = 0; i < p.size(); ++i) {
        RADPROBE_CHECK(p[i] >= 0.0 && p[i] <= 1.0, where, ": p-value at index ", i, " is ", p[i],
                       " (must lie in [0, 1])");
    }
}

}  // namespace

std::vector<double> benjamini_hochberg(std::span<const double> p_values) {
    check_p_values(p_values, "benjamini_hochberg");
    const std::size_t n = p_values.size();
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return p_values[a] > p_values[b]; });
    std::vector<double> adjusted(n);
    double running = 1.0;
    for (std::size_t k = 0; k < n; ++k) {
        const double rank = static_cast<double>(n - k);  // rank of order[k] from the smallest
        running = std::min(running, static_cast<double>(n) / rank * p_values[order[k]]);
        adjusted[order[k]] = std::min(1.0, running);
    }
    return adjusted;
}

std::vector<double> holm(std::span<const double> p_values) {
    check_p_values(p_values, "holm");
    const std::size_t n = p_values.size();
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return p_values[a] < p_values[b]; });
    std::vector<double> adjusted(n);
    double running = 0.0;
    for (std::size_t k = 0; k < n; ++k) {
        running = std::max(running, static_cast<double>(n - k) * p_values[order[k]]);
        adjusted[order[k]] = std::min(1.0, running);
    }
    return adjusted;
}

}  // namespace radprobe::eval
