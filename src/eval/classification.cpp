// Classification metrics: AUROC (Mann–Whitney), average precision (scikit-learn's definition),
// operating points, Brier score, calibration error, multi-label averages.

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

namespace detail {

TieGroups tie_groups(std::span<const double> scores) {
    RADPROBE_CHECK(scores.size() < std::numeric_limits<std::uint32_t>::max(),
                   "eval: more than 2^32 samples are not supported (", scores.size(), ")");
    const std::size_t n = scores.size();
    std::vector<std::pair<double, std::uint32_t>> keyed(n);
    for (std::size_t i = 0; i < n; ++i) {
        keyed[i] = {scores[i], static_cast<std::uint32_t>(i)};
    }
    std::sort(keyed.begin(), keyed.end());
    TieGroups groups;
    groups.order.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
        groups.order[k] = keyed[k].second;
        if (k + 1 == n || keyed[k + 1].first != keyed[k].first) {
            groups.group_end.push_back(static_cast<std::uint32_t>(k + 1));
        }
    }
    return groups;
}

AucParts auc_from_groups(const TieGroups& groups, std::span<const double> labels) {
    // Twice the Mann–Whitney U, in integers: exact for any n below 2^32.
    std::uint64_t twice_u = 0;
    std::uint64_t neg_below = 0;
    std::uint64_t positives = 0;
    std::size_t k = 0;
    for (const std::uint32_t end : groups.group_end) {
        std::uint64_t gp = 0;
        std::uint64_t gn = 0;
        for (; k < end; ++k) {
            if (labels[groups.order[k]] != 0.0) {
                ++gp;
            } else {
                ++gn;
            }
        }
        twice_u += gp * (2 * neg_below + gn);
        neg_below += gn;
        positives += gp;
    }
    AucParts parts;
    parts.positives = positives;
    parts.negatives = neg_below;
    if (positives > 0 && neg_below > 0) {
        parts.auc = static_cast<double>(twice_u) /
                    (2.0 * static_cast<double>(positives) * static_cast<double>(neg_below));
    } else {
        parts.auc = std::numeric_limits<double>::quiet_NaN();
    }
    return parts;
}

Placements placements(std::span<const double> labels, std::span<const double> scores) {
    const TieGroups groups = tie_groups(scores);
    Placements out;
    out.parts = auc_from_groups(groups, labels);
    const double m = static_cast<double>(out.parts.positives);
    const double n = static_cast<double>(out.parts.negatives);
    out.value.assign(scores.size(), 0.0);
    std::uint64_t neg_below = 0;
    std::uint64_t pos_below = 0;
    std::size_t k = 0;
    for (const std::uint32_t end : groups.group_end) {
        const std::size_t begin = k;
        std::uint64_t gp = 0;
        std::uint64_t gn = 0;
        for (; k < end; ++k) {
            if (labels[groups.order[k]] != 0.0) {
                ++gp;
            } else {
                ++gn;
            }
        }
        const std::uint64_t pos_above = out.parts.positives - pos_below - gp;
        const double v_pos = (static_cast<double>(neg_below) + 0.5 * static_cast<double>(gn)) / n;
        const double v_neg = (static_cast<double>(pos_above) + 0.5 * static_cast<double>(gp)) / m;
        for (std::size_t j = begin; j < end; ++j) {
            const std::uint32_t i = groups.order[j];
            out.value[i] = labels[i] != 0.0 ? v_pos : v_neg;
        }
        neg_below += gn;
        pos_below += gp;
    }
    return out;
}

void require_classes(std::size_t positives, std::size_t negatives, std::size_t minimum,
                     const std::string& where) {
    RADPROBE_CHECK(positives >= minimum && negatives >= minimum, where, ": needs at least ",
                   minimum, " positive(s) and ", minimum, " negative(s), got ", positives,
                   " positive(s) and ", negatives, " negative(s)");
}

}  // namespace detail

void check_binary_inputs(std::span<const double> labels, std::span<const double> scores,
                         const std::string& where) {
    RADPROBE_CHECK(labels.size() == scores.size(), where, ": ", labels.size(), " labels but ",
                   scores.size(), " scores (lengths must match)");
    for (std::size_t i = 0; i < labels.size(); ++i) {
        RADPROBE_CHECK(labels[i] == 0.0 || labels[i] == 1.0, where, ": label at index ", i, " is ",
                       labels[i], " (labels must be 0 or 1)");
        RADPROBE_CHECK(std::isfinite(scores[i]), where, ": score at index ", i, " is ", scores[i],
                       " (scores must be finite)");
    }
}

ClassCounts count_classes(std::span<const double> labels) {
    ClassCounts c;
    for (const double y : labels) {
        if (y != 0.0) {
            ++c.positives;
        } else {
            ++c.negatives;
        }
    }
    return c;
}

double auroc(std::span<const double> labels, std::span<const double> scores) {
    check_binary_inputs(labels, scores, "auroc");
    const auto parts = detail::auc_from_groups(detail::tie_groups(scores), labels);
    detail::require_classes(parts.positives, parts.negatives, 1, "auroc");
    return parts.auc;
}

double average_precision(std::span<const double> labels, std::span<const double> scores) {
    check_binary_inputs(labels, scores, "average_precision");
    const auto groups = detail::tie_groups(scores);
    const ClassCounts counts = count_classes(labels);
    RADPROBE_CHECK(counts.positives > 0,
                   "average_precision: no positive label (average precision is undefined)");
    // Walk thresholds from the highest score down, one operating point per distinct score.
    double ap = 0.0;
    std::uint64_t tp = 0;
    std::uint64_t fp = 0;
    double previous_recall = 0.0;
    const double total_pos = static_cast<double>(counts.positives);
    for (std::size_t g = groups.group_end.size(); g-- > 0;) {
        const std::size_t begin = g == 0 ? 0 : groups.group_end[g - 1];
        for (std::size_t k = begin; k < groups.group_end[g]; ++k) {
            if (labels[groups.order[k]] != 0.0) {
                ++tp;
            } else {
                ++fp;
            }
        }
        const double recall = static_cast<double>(tp) / total_pos;
        const double precision = static_cast<double>(tp) / static_cast<double>(tp + fp);
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    return ap;
}

namespace {

void check_probabilities(std::span<const double> labels, std::span<const double> probabilities,
                         const std::string& where) {
    check_binary_inputs(labels, probabilities, where);
    for (std::size_t i = 0; i < probabilities.size(); ++i) {
        RADPROBE_CHECK(probabilities[i] >= 0.0 && probabilities[i] <= 1.0, where,
                       ": probability at index ", i, " is ", probabilities[i],
                       " (must lie in [0, 1])");
    }
    RADPROBE_CHECK(!labels.empty(), where, ": no samples");
}

}  // namespace

double brier_score(std::span<const double> labels, std::span<const double> probabilities) {
    check_probabilities(labels, probabilities, "brier_score");
    double sum = 0.0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const double d = probabilities[i] - labels[i];
        sum += d * d;
    }
    return sum / static_cast<double>(labels.size());
}

double expected_calibration_error(std::span<const double> labels,
                                  std::span<const double> probabilities, int bins) {
    check_probabilities(labels, probabilities, "expected_calibration_error");
    RADPROBE_CHECK(bins >= 1, "expected_calibration_error: bins must be >= 1, got ", bins);
    std::vector<double> count(bins, 0.0), sum_y(bins, 0.0), sum_p(bins, 0.0);
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const int b = std::min(static_cast<int>(std::floor(probabilities[i] * bins)), bins - 1);
        count[b] += 1.0;
        sum_y[b] += labels[i];
        sum_p[b] += probabilities[i];
    }
    double ece = 0.0;
    for (int b = 0; b < bins; ++b) {
        if (count[b] > 0.0) {
            ece += std::abs(sum_y[b] - sum_p[b]);  // = n_b · |mean(y) − mean(p)|
        }
    }
    return ece / static_cast<double>(labels.size());
}

namespace {

OperatingPoint make_point(double threshold, std::size_t tp, std::size_t fp, std::size_t positives,
                          std::size_t negatives) {
    OperatingPoint op;
    op.threshold = threshold;
    op.tp = tp;
    op.fp = fp;
    op.fn = positives - tp;
    op.tn = negatives - fp;
    op.sensitivity = static_cast<double>(tp) / static_cast<double>(positives);
    op.specificity = static_cast<double>(op.tn) / static_cast<double>(negatives);
    if (tp + fp > 0) {
        op.ppv = static_cast<double>(tp) / static_cast<double>(tp + fp);
    }
    if (op.tn + op.fn > 0) {
        op.npv = static_cast<double>(op.tn) / static_cast<double>(op.tn + op.fn);
    }
    op.balanced_accuracy = 0.5 * (op.sensitivity + op.specificity);
    op.f1 = 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + op.fn);
    op.youden_j = op.sensitivity + op.specificity - 1.0;
    return op;
}

/// Every operating point "score >= distinct score" from the highest threshold down, preceded
/// by the point at +infinity (nothing predicted positive).
std::vector<OperatingPoint> all_points(std::span<const double> labels,
                                       std::span<const double> scores, const std::string& where) {
    check_binary_inputs(labels, scores, where);
    const ClassCounts counts = count_classes(labels);
    detail::require_classes(counts.positives, counts.negatives, 1, where);
    const auto groups = detail::tie_groups(scores);
    std::vector<OperatingPoint> points;
    points.reserve(groups.group_end.size() + 1);
    points.push_back(make_point(std::numeric_limits<double>::infinity(), 0, 0, counts.positives,
                                counts.negatives));
    std::size_t tp = 0;
    std::size_t fp = 0;
    for (std::size_t g = groups.group_end.size(); g-- > 0;) {
        const std::size_t begin = g == 0 ? 0 : groups.group_end[g - 1];
        for (std::size_t k = begin; k < groups.group_end[g]; ++k) {
            if (labels[groups.order[k]] != 0.0) {
                ++tp;
            } else {
                ++fp;
            }
        }
        points.push_back(
            make_point(scores[groups.order[begin]], tp, fp, counts.positives, counts.negatives));
    }
    return points;
}

}  // namespace

OperatingPoint at_threshold(std::span<const double> labels, std::span<const double> scores,
                            double threshold) {
    check_binary_inputs(labels, scores, "at_threshold");
    RADPROBE_CHECK(!std::isnan(threshold), "at_threshold: threshold is NaN");
    const ClassCounts counts = count_classes(labels);
    detail::require_classes(counts.positives, counts.negatives, 1, "at_threshold");
    std::size_t tp = 0;
    std::size_t fp = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (scores[i] >= threshold) {
            if (labels[i] != 0.0) {
                ++tp;
            } else {
                ++fp;
            }
        }
    }
    return make_point(threshold, tp, fp, counts.positives, counts.negatives);
}

OperatingPoint at_specificity(std::span<const double> labels, std::span<const double> scores,
                              double target_specificity) {
    RADPROBE_CHECK(target_specificity >= 0.0 && target_specificity <= 1.0,
                   "at_specificity: target specificity must lie in [0, 1], got ",
                   target_specificity);
    const auto points = all_points(labels, scores, "at_specificity");
    // Specificity falls and sensitivity rises as the threshold decreases: the last point that
    // still meets the target has the highest sensitivity.
    OperatingPoint best = points.front();
    for (const auto& p : points) {
        if (p.specificity >= target_specificity) {
            best = p;
        } else {
            break;
        }
    }
    return best;
}

OperatingPoint youden_point(std::span<const double> labels, std::span<const double> scores) {
    const auto points = all_points(labels, scores, "youden_point");
    const OperatingPoint* best = nullptr;
    for (std::size_t k = 1; k < points.size(); ++k) {
        if (best == nullptr || points[k].youden_j > best->youden_j) {
            best = &points[k];
        }
    }
    return *best;
}

MultiLabelMetrics multilabel_metrics(std::span<const double> labels, std::span<const double> scores,
                                     const std::vector<std::string>& names) {
    const std::size_t num_labels = names.size();
    RADPROBE_CHECK(num_labels > 0, "multilabel_metrics: no label names");
    RADPROBE_CHECK(labels.size() == scores.size(), "multilabel_metrics: ", labels.size(),
                   " label values but ", scores.size(), " scores (lengths must match)");
    RADPROBE_CHECK(labels.size() % num_labels == 0, "multilabel_metrics: ", labels.size(),
                   " values is not a multiple of ", num_labels, " labels");
    check_binary_inputs(labels, scores, "multilabel_metrics");
    const std::size_t n = labels.size() / num_labels;
    MultiLabelMetrics out;
    double sum_auc = 0.0;
    double sum_ap = 0.0;
    std::size_t ap_defined = 0;
    std::vector<double> y(n), s(n);
    for (std::size_t l = 0; l < num_labels; ++l) {
        for (std::size_t i = 0; i < n; ++i) {
            y[i] = labels[i * num_labels + l];
            s[i] = scores[i * num_labels + l];
        }
        LabelMetrics lm;
        lm.name = names[l];
        const ClassCounts c = count_classes(y);
        lm.positives = c.positives;
        lm.negatives = c.negatives;
        if (c.positives > 0 && c.negatives > 0) {
            lm.auroc = auroc(y, s);
            sum_auc += *lm.auroc;
            ++out.labels_defined;
        } else {
            lm.undefined_reason = c.positives == 0 ? "no positive sample" : "no negative sample";
        }
        if (c.positives > 0) {
            lm.average_precision = average_precision(y, s);
            sum_ap += *lm.average_precision;
            ++ap_defined;
        }
        out.labels.push_back(std::move(lm));
    }
    if (out.labels_defined > 0) {
        out.macro_auroc = sum_auc / static_cast<double>(out.labels_defined);
    }
    if (ap_defined > 0) {
        out.macro_average_precision = sum_ap / static_cast<double>(ap_defined);
    }
    const ClassCounts pooled = count_classes(labels);
    if (pooled.positives > 0 && pooled.negatives > 0) {
        out.micro_auroc = auroc(labels, scores);
    }
    if (pooled.positives > 0) {
        out.micro_average_precision = average_precision(labels, scores);
    }
    return out;
}

std::vector<RocPoint> roc_curve(std::span<const double> labels, std::span<const double> scores) {
    check_binary_inputs(labels, scores, "roc_curve");
    const auto counts = count_classes(labels);
    RADPROBE_CHECK(counts.positives > 0 && counts.negatives > 0, "roc_curve: needs both classes (",
                   counts.positives, " positives, ", counts.negatives, " negatives)");
    std::vector<std::size_t> order(labels.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
    std::vector<RocPoint> curve;
    curve.push_back({0.0, 0.0, INFINITY});
    double tp = 0;
    double fp = 0;
    for (std::size_t k = 0; k < order.size(); ++k) {
        const std::size_t i = order[k];
        (labels[i] == 1.0 ? tp : fp) += 1;
        if (k + 1 == order.size() || scores[order[k + 1]] != scores[i]) {
            curve.push_back({fp / static_cast<double>(counts.negatives),
                             tp / static_cast<double>(counts.positives), scores[i]});
        }
    }
    return curve;
}

}  // namespace radprobe::eval
