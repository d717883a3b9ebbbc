// DeLong's variance of the AUROC and tests of two AUROCs, in Sun & Xu's (2014) O(n log n)
// formulation: placement values come from one sort of the scores (midranks), not from the
// O(n_pos · n_neg) kernel matrix.

#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

namespace {

void check_level(double level, const std::string& where) {
    RADPROBE_CHECK(level > 0.0 && level < 1.0, where, ": confidence level must lie in (0, 1), got ",
                   level);
}

/// Sample covariance of the placements of two scores, split by class (pROC's SX, SY).
struct ClassCovariance {
    double pos = 0.0;  ///< over positives, denominator m − 1
    double neg = 0.0;  ///< over negatives, denominator n − 1
};

ClassCovariance class_covariance(std::span<const double> labels, const detail::Placements& a,
                                 const detail::Placements& b) {
    double sum_pos = 0.0;
    double sum_neg = 0.0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const double da = a.value[i] - a.parts.auc;
        const double db = b.value[i] - b.parts.auc;
        if (labels[i] != 0.0) {
            sum_pos += da * db;
        } else {
            sum_neg += da * db;
        }
    }
    ClassCovariance c;
    c.pos = sum_pos / static_cast<double>(a.parts.positives - 1);
    c.neg = sum_neg / static_cast<double>(a.parts.negatives - 1);
    return c;
}

double delong_variance(std::span<const double> labels, const detail::Placements& p) {
    const ClassCovariance s = class_covariance(labels, p, p);
    return s.pos / static_cast<double>(p.parts.positives) +
           s.neg / static_cast<double>(p.parts.negatives);
}

}  // namespace

DelongAuc delong_auc(std::span<const double> labels, std::span<const double> scores, double level) {
    check_binary_inputs(labels, scores, "delong_auc");
    check_level(level, "delong_auc");
    const auto p = detail::placements(labels, scores);
    detail::require_classes(p.parts.positives, p.parts.negatives, 2, "delong_auc");
    DelongAuc out;
    out.auc = p.parts.auc;
    out.positives = p.parts.positives;
    out.negatives = p.parts.negatives;
    out.variance = delong_variance(labels, p);
    out.se = std::sqrt(out.variance);
    const double z = normal_quantile(0.5 + 0.5 * level);
    out.ci_lo = std::max(0.0, out.auc - z * out.se);
    out.ci_hi = std::min(1.0, out.auc + z * out.se);
    return out;
}

AucComparison delong_paired_test(std::span<const double> labels, std::span<const double> scores1,
                                 std::span<const double> scores2, double level) {
    check_binary_inputs(labels, scores1, "delong_paired_test (first scores)");
    check_binary_inputs(labels, scores2, "delong_paired_test (second scores)");
    check_level(level, "delong_paired_test");
    const auto p1 = detail::placements(labels, scores1);
    const auto p2 = detail::placements(labels, scores2);
    detail::require_classes(p1.parts.positives, p1.parts.negatives, 2, "delong_paired_test");
    const ClassCovariance s11 = class_covariance(labels, p1, p1);
    const ClassCovariance s22 = class_covariance(labels, p2, p2);
    const ClassCovariance s12 = class_covariance(labels, p1, p2);
    const double m = static_cast<double>(p1.parts.positives);
    const double n = static_cast<double>(p1.parts.negatives);
    // L S Lᵀ with L = (1, −1) and S = SX/m + SY/n.
    const double variance =
        (s11.pos - 2.0 * s12.pos + s22.pos) / m + (s11.neg - 2.0 * s12.neg + s22.neg) / n;
    AucComparison out;
    out.auc1 = p1.parts.auc;
    out.auc2 = p2.parts.auc;
    out.difference = out.auc1 - out.auc2;
    out.se = std::sqrt(std::max(0.0, variance));
    if (out.se > 0.0) {
        out.statistic = out.difference / out.se;
        out.p = 2.0 * normal_cdf(-std::abs(out.statistic));
    } else if (out.difference == 0.0) {
        out.statistic = 0.0;
        out.p = 1.0;
    } else {
        out.statistic = out.difference > 0 ? INFINITY : -INFINITY;
        out.p = 0.0;
    }
    const double z = normal_quantile(0.5 + 0.5 * level);
    out.ci_lo = out.difference - z * out.se;
    out.ci_hi = out.difference + z * out.se;
    return out;
}

AucComparison delong_unpaired_test(std::span<const double> labels1, std::span<const double> scores1,
                                   std::span<const double> labels2, std::span<const double> scores2,
                                   double level) {
    check_binary_inputs(labels1, scores1, "delong_unpaired_test (group 1)");
    check_binary_inputs(labels2, scores2, "delong_unpaired_test (group 2)");
    check_level(level, "delong_unpaired_test");
    const auto p1 = detail::placements(labels1, scores1);
    const auto p2 = detail::placements(labels2, scores2);
    detail::require_classes(p1.parts.positives, p1.parts.negatives, 2,
                            "delong_unpaired_test (group 1)");
    detail::require_classes(p2.parts.positives, p2.parts.negatives, 2,
                            "delong_unpaired_test (group 2)");
    const double v1 = delong_variance(labels1, p1);
    const double v2 = delong_variance(labels2, p2);
    const double n1 = static_cast<double>(labels1.size());
    const double n2 = static_cast<double>(labels2.size());
    AucComparison out;
    out.auc1 = p1.parts.auc;
    out.auc2 = p2.parts.auc;
    out.difference = out.auc1 - out.auc2;
    out.se = std::sqrt(v1 + v2);
    RADPROBE_CHECK(out.se > 0.0,
                   "delong_unpaired_test: both AUC variances are 0 (perfectly separated groups); "
                   "the t statistic is undefined");
    out.statistic = out.difference / out.se;
    out.df = (v1 + v2) * (v1 + v2) / (v1 * v1 / (n1 - 1.0) + v2 * v2 / (n2 - 1.0));
    out.p = 2.0 * student_t_cdf(-std::abs(out.statistic), out.df);
    const double t = student_t_quantile(0.5 + 0.5 * level, out.df);
    out.ci_lo = out.difference - t * out.se;
    out.ci_hi = out.difference + t * out.se;
    return out;
}

}  // namespace radprobe::eval
