// Building blocks shared by the analyses: list parsing, grouped folds, cross-validated probe
// scores, bootstrap rows, Benjamini–Hochberg families, CSV/JSON output, image selection.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "internal.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::analysis {

PerturbKind parse_perturb_kind(const std::string& text) {
    for (PerturbKind k : {PerturbKind::kBlob, PerturbKind::kStreak, PerturbKind::kReticular}) {
        if (text == perturb_kind_name(k)) {
            return k;
        }
    }
    throw UsageError(
        str_cat("--kinds: unknown perturbation '", text, "' (valid: blob, streak, reticular)"));
}

const char* perturb_kind_name(PerturbKind kind) {
    switch (kind) {
        case PerturbKind::kBlob:
            return "blob";
        case PerturbKind::kStreak:
            return "streak";
        case PerturbKind::kReticular:
            return "reticular";
    }
    return "?";
}

std::string SizeSpec::text() const {
    char buf[64];
    std::snprintf(buf, sizeof buf, in_patches ? "%gp" : "%gpx", value);
    return buf;
}

std::vector<SizeSpec> parse_sizes(const std::string& text) {
    std::vector<SizeSpec> out;
    for (std::string item : dataset::split_list(text)) {
        SizeSpec s;
        s.in_patches = false;
        if (item.size() > 2 && item.substr(item.size() - 2) == "px") {
            item.resize(item.size() - 2);
        } else if (!item.empty() && item.back() == 'p') {
            item.pop_back();
            s.in_patches = true;
        }
        const auto v = parse_double(item);
        RADPROBE_USAGE_CHECK(v && std::isfinite(*v) && *v > 0 && *v <= 4096, "--sizes: '", item,
                             "' is not a positive size (pixels, e.g. 12, or patches, e.g. 0.5p)");
        s.value = *v;
        out.push_back(s);
    }
    RADPROBE_USAGE_CHECK(!out.empty(), "--sizes: no size given (e.g. 0.5p,1p,2p)");
    return out;
}

std::vector<double> parse_numbers(const std::string& text, const std::string& flag) {
    std::vector<double> out;
    for (const auto& item : dataset::split_list(text)) {
        const auto v = parse_double(item);
        RADPROBE_USAGE_CHECK(v && std::isfinite(*v), flag, ": '", item, "' is not a number");
        out.push_back(*v);
    }
    RADPROBE_USAGE_CHECK(!out.empty(), flag, ": no value given");
    return out;
}

std::vector<int> grouped_folds(const std::vector<std::string>& groups,
                               const std::vector<int>& strata, int folds, std::uint64_t seed) {
    RADPROBE_USAGE_CHECK(folds >= 3 && folds <= 100, "--folds must be in 3..100, got ", folds);
    RADPROBE_ASSERT(strata.empty() || strata.size() == groups.size());
    // Distinct groups in order of first appearance, each with the largest stratum of its
    // samples (a patient with any positive counts as positive).
    std::map<std::string, std::size_t> index;
    std::vector<int> group_stratum;
    std::vector<std::size_t> of(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) {
        auto [it, added] = index.emplace(groups[i], group_stratum.size());
        if (added) {
            group_stratum.push_back(strata.empty() ? 0 : strata[i]);
        } else if (!strata.empty()) {
            group_stratum[it->second] = std::max(group_stratum[it->second], strata[i]);
        }
        of[i] = it->second;
    }
    std::map<int, std::vector<std::size_t>> by_stratum;
    for (std::size_t g = 0; g < group_stratum.size(); ++g) {
        by_stratum[group_stratum[g]].push_back(g);
    }
    std::vector<int> group_fold(group_stratum.size(), 0);
    Rng rng(seed ^ 0xF01D5EEDULL);
    int next = 0;  // continue dealing across strata so fold sizes stay balanced
    for (auto& [stratum, members] : by_stratum) {
        for (std::size_t i = members.size(); i > 1; --i) {
            std::swap(members[i - 1], members[rng.below(i)]);
        }
        for (std::size_t g : members) {
            group_fold[g] = next;
            next = (next + 1) % folds;
        }
    }
    std::vector<int> out(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) {
        out[i] = group_fold[of[i]];
    }
    return out;
}

std::vector<double> cross_validated_scores(std::span<const float> x, std::size_t dim,
                                           std::span<const double> labels,
                                           const std::vector<int>& folds,
                                           const std::vector<double>& c_grid, int threads) {
    const std::size_t n = labels.size();
    RADPROBE_ASSERT(x.size() == n * dim && folds.size() == n);
    const int k = folds.empty() ? 0 : *std::max_element(folds.begin(), folds.end()) + 1;
    RADPROBE_CHECK(k >= 3, "cross-validation needs at least 3 non-empty folds (got ", k,
                   "): too few groups");
    probes::ProbeOptions po;
    po.kind = probes::ProbeKind::kLinear;
    po.c_grid = c_grid;
    po.threads = threads;
    // The probe only ranks; a looser tolerance than the library default saves most of the
    // L-BFGS iterations on separable cells without changing the ranking measurably.
    po.lbfgs.tol = 1e-6;
    po.lbfgs.max_iter = 1000;
    po.lbfgs.threads = threads;
    std::vector<double> scores(n, 0.0);
    for (int f = 0; f < k; ++f) {
        const int v = (f + 1) % k;
        std::vector<float> tx, vx, sx;
        std::vector<double> ty, vy;
        std::vector<std::size_t> test_rows;
        for (std::size_t i = 0; i < n; ++i) {
            const float* row = x.data() + i * dim;
            if (folds[i] == f) {
                sx.insert(sx.end(), row, row + dim);
                test_rows.push_back(i);
            } else if (folds[i] == v) {
                vx.insert(vx.end(), row, row + dim);
                vy.push_back(labels[i]);
            } else {
                tx.insert(tx.end(), row, row + dim);
                ty.push_back(labels[i]);
            }
        }
        if (test_rows.empty()) {
            continue;
        }
        const auto r = probes::fit_binary_probe(tx, ty, vx, vy, sx, dim, po);
        for (std::size_t j = 0; j < test_rows.size(); ++j) {
            scores[test_rows[j]] = r.test_scores[j];
        }
    }
    return scores;
}

void adjust_family(std::vector<AnalysisTableRow>& rows, const std::vector<std::size_t>& family) {
    std::vector<std::size_t> members;
    std::vector<double> p;
    for (std::size_t i : family) {
        if (rows.at(i).p) {
            members.push_back(i);
            p.push_back(std::clamp(*rows[i].p, 0.0, 1.0));
        }
    }
    if (p.empty()) {
        return;
    }
    const auto q = eval::benjamini_hochberg(p);
    for (std::size_t j = 0; j < members.size(); ++j) {
        rows[members[j]].p_adjusted = q[j];
    }
}

namespace {

std::string opt_text(const std::optional<double>& v) {
    if (!v || !std::isfinite(*v)) {
        return "";
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", *v);
    return buf;
}

}  // namespace

std::string rows_csv(const std::vector<AnalysisTableRow>& rows) {
    std::string csv = "analysis,row_key,row_key2,column,value,ci_lo,ci_hi,p,p_adjusted,n\n";
    for (const auto& r : rows) {
        csv += csv_line({r.analysis, r.row_key, r.row_key2, r.column, opt_text(r.value),
                         opt_text(r.ci_lo), opt_text(r.ci_hi), opt_text(r.p),
                         opt_text(r.p_adjusted), r.n ? std::to_string(*r.n) : ""}) +
               "\n";
    }
    return csv;
}

}  // namespace radprobe::analysis

namespace radprobe::analysis::detail {

AnalysisTableRow make_row(const std::string& analysis, const std::string& row_key,
                          const std::string& row_key2, const std::string& column) {
    AnalysisTableRow row;
    row.analysis = analysis;
    row.row_key = row_key;
    row.row_key2 = row_key2;
    row.column = column;
    return row;
}

double wald_p(double estimate, double null_value, double se, std::size_t valid) {
    if (!std::isfinite(estimate)) {
        return 1.0;
    }
    if (se <= 0.0 || !std::isfinite(se)) {
        return estimate == null_value ? 1.0 : 1.0 / static_cast<double>(valid + 1);
    }
    const double z = (estimate - null_value) / se;
    return std::max(2.0 * eval::normal_cdf(-std::abs(z)), 0.0);
}

namespace {

/// Clusters holding both classes (a perturbed image and its clean original; a lesion box and
/// the lesion-free boxes of the same image; a patient with positive and negative images), with
/// the sum of their within-cluster comparisons. A cluster bootstrap that draws such a cluster c
/// times compares its positives with the negatives of its OTHER copies too: c² within-cluster
/// comparisons instead of the c a sample of c distinct clusters would hold. When within-cluster
/// comparisons differ from between-cluster ones — a paired design, where the perturbed image is
/// compared with its own original — that over-weighting biases every replicate (measured on a
/// 40-pair panel: AUROC 0.529, plain cluster-bootstrap CI [0.531, 0.555], excluding it). Each
/// replicate therefore counts the comparisons between distinct draws only: the cross-copy
/// within-cluster terms, (c² − c)·S_k and (c² − c)·N_k, are removed from the weighted
/// Mann–Whitney sums. On the original sample (every c = 1) this is the plain AUROC.
struct MixedClusters {
    std::vector<std::size_t> member;  ///< one sample of each mixed cluster (its count = c)
    std::vector<double> wins;         ///< S_k: Σ over its (pos, neg) pairs of 1, ½ on ties
    std::vector<double> pairs;        ///< N_k: positives × negatives in it
};

MixedClusters mixed_clusters(std::span<const double> labels, std::span<const double> scores,
                             std::span<const std::size_t> clusters) {
    MixedClusters m;
    if (clusters.empty()) {
        return m;
    }
    std::map<std::size_t, std::vector<std::size_t>> members;
    for (std::size_t i = 0; i < clusters.size(); ++i) {
        members[clusters[i]].push_back(i);
    }
    for (const auto& [id, idx] : members) {
        double wins = 0, pairs = 0;
        for (std::size_t p : idx) {
            if (labels[p] != 1.0) {
                continue;
            }
            for (std::size_t q : idx) {
                if (labels[q] == 1.0) {
                    continue;
                }
                pairs += 1;
                wins += scores[p] > scores[q] ? 1.0 : (scores[p] == scores[q] ? 0.5 : 0.0);
            }
        }
        if (pairs > 0) {
            m.member.push_back(idx.front());
            m.wins.push_back(wins);
            m.pairs.push_back(pairs);
        }
    }
    return m;
}

/// The weighted Mann–Whitney sums (wins, comparisons) of a resample over `order` (sample
/// indices sorted by score). Ties are walked together: each positive beats the negative weight
/// strictly below it and ties with half of the negative weight at its score.
std::pair<double, double> weighted_mann_whitney(std::span<const double> labels,
                                                std::span<const double> scores,
                                                std::span<const std::uint32_t> counts,
                                                std::span<const std::size_t> order) {
    double neg_below = 0, pos_total = 0, neg_total = 0, sum = 0;
    std::size_t i = 0;
    while (i < order.size()) {
        std::size_t j = i;
        double pos_here = 0, neg_here = 0;
        while (j < order.size() && scores[order[j]] == scores[order[i]]) {
            const double w = counts[order[j]];
            (labels[order[j]] == 1.0 ? pos_here : neg_here) += w;
            ++j;
        }
        sum += pos_here * (neg_below + 0.5 * neg_here);
        neg_below += neg_here;
        pos_total += pos_here;
        neg_total += neg_here;
        i = j;
    }
    return {sum, pos_total * neg_total};
}

std::vector<std::size_t> score_order(std::span<const double> scores) {
    std::vector<std::size_t> order(scores.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    return order;
}

/// AUROC of a cluster-bootstrap resample over comparisons between distinct draws (above).
double distinct_draw_auroc(std::span<const double> labels, std::span<const double> scores,
                           std::span<const std::size_t> order, const MixedClusters& mixed,
                           std::span<const std::uint32_t> counts) {
    auto [wins, total] = weighted_mann_whitney(labels, scores, counts, order);
    for (std::size_t k = 0; k < mixed.member.size(); ++k) {
        const double c = counts[mixed.member[k]];
        wins -= (c * c - c) * mixed.wins[k];
        total -= (c * c - c) * mixed.pairs[k];
    }
    return total > 0 ? wins / total : std::nan("");
}

}  // namespace

double distinct_draw_auroc_of(std::span<const double> labels, std::span<const double> scores,
                              std::span<const std::size_t> clusters,
                              std::span<const std::uint32_t> counts) {
    return distinct_draw_auroc(labels, scores, score_order(scores),
                               mixed_clusters(labels, scores, clusters), counts);
}

void write_result_files(AnalysisResult& result, const std::optional<std::filesystem::path>& out,
                        const std::string& table_csv,
                        const std::vector<std::pair<std::string, std::string>>& extra) {
    if (!out) {
        return;
    }
    std::vector<std::pair<std::string, std::string>> files = {{table_csv, rows_csv(result.rows)}};
    files.insert(files.end(), extra.begin(), extra.end());
    files.emplace_back("metrics.json", result.metrics_json);
    for (const auto& [name, text] : files) {
        write_file_atomic(*out / name, text);
        result.files.push_back(*out / name);
    }
}

eval::BootstrapOptions bootstrap_options(std::size_t n_boot, double level, std::uint64_t seed) {
    eval::BootstrapOptions bo;
    bo.replicates = n_boot;
    bo.seed = seed;
    bo.level = level;
    return bo;
}

void set_from_bootstrap(AnalysisTableRow& row, const eval::BootstrapCi& ci, double null_value) {
    row.value = ci.estimate;
    if (ci.valid > 1) {
        row.ci_lo = ci.ci_lo;
        row.ci_hi = ci.ci_hi;
    }
    row.p = wald_p(ci.estimate, null_value, ci.se, ci.valid);
}

AnalysisTableRow auroc_row(const std::string& analysis, const std::string& row_key,
                           const std::string& row_key2, const std::string& column,
                           std::span<const double> labels, std::span<const double> scores,
                           std::span<const std::size_t> clusters, std::size_t n_boot, double level,
                           std::uint64_t seed) {
    AnalysisTableRow row = make_row(analysis, row_key, row_key2, column);
    row.n = static_cast<std::int64_t>(labels.size());
    const auto counts = eval::count_classes(labels);
    if (counts.positives == 0 || counts.negatives == 0) {
        return row;  // undefined: NULL, never 0.5
    }
    const eval::BootstrapOptions bo = bootstrap_options(n_boot, level, seed);
    const MixedClusters mixed = mixed_clusters(labels, scores, clusters);
    eval::BootstrapCi ci;
    if (mixed.member.empty()) {
        ci = eval::bootstrap_auroc(labels, scores, bo, clusters);
    } else {
        const auto order = score_order(scores);
        ci = eval::bootstrap_statistic(
            labels.size(),
            [&](std::span<const std::uint32_t> counts) {
                return distinct_draw_auroc(labels, scores, order, mixed, counts);
            },
            bo, {}, clusters);
    }
    set_from_bootstrap(row, ci, 0.5);
    return row;
}

AnalysisTableRow auroc_difference_row(const std::string& analysis, const std::string& row_key,
                                      const std::string& row_key2, const std::string& column,
                                      std::span<const double> labels,
                                      std::span<const double> scores1,
                                      std::span<const double> scores2,
                                      std::span<const std::size_t> clusters, std::size_t n_boot,
                                      double level, std::uint64_t seed) {
    AnalysisTableRow row = make_row(analysis, row_key, row_key2, column);
    row.n = static_cast<std::int64_t>(labels.size());
    const auto counts = eval::count_classes(labels);
    if (counts.positives == 0 || counts.negatives == 0) {
        return row;
    }
    const eval::BootstrapOptions bo = bootstrap_options(n_boot, level, seed);
    const MixedClusters mixed1 = mixed_clusters(labels, scores1, clusters);
    eval::BootstrapCi ci;
    if (mixed1.member.empty()) {
        ci = eval::bootstrap_auroc_difference(labels, scores1, scores2, bo, clusters);
    } else {
        const MixedClusters mixed2 = mixed_clusters(labels, scores2, clusters);
        const auto order1 = score_order(scores1), order2 = score_order(scores2);
        ci = eval::bootstrap_statistic(
            labels.size(),
            [&](std::span<const std::uint32_t> counts) {
                return distinct_draw_auroc(labels, scores1, order1, mixed1, counts) -
                       distinct_draw_auroc(labels, scores2, order2, mixed2, counts);
            },
            bo, {}, clusters);
    }
    set_from_bootstrap(row, ci, 0.0);
    return row;
}

double weighted_auroc(std::span<const double> labels, std::span<const double> scores,
                      std::span<const std::uint32_t> counts,
                      std::span<const std::uint8_t> in_subset) {
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (counts[i] > 0 && (in_subset.empty() || in_subset[i])) {
            order.push_back(i);
        }
    }
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    const auto [wins, comparisons] = weighted_mann_whitney(labels, scores, counts, order);
    return comparisons > 0 ? wins / comparisons : std::nan("");
}

std::string rows_json(const std::vector<AnalysisTableRow>& rows) {
    nlohmann::json arr = nlohmann::json::array();
    auto opt = [](const std::optional<double>& v) {
        return (v && std::isfinite(*v)) ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    for (const auto& r : rows) {
        arr.push_back({{"row_key", r.row_key},
                       {"row_key2", r.row_key2},
                       {"column", r.column},
                       {"value", opt(r.value)},
                       {"ci_lo", opt(r.ci_lo)},
                       {"ci_hi", opt(r.ci_hi)},
                       {"p", opt(r.p)},
                       {"p_adjusted", opt(r.p_adjusted)},
                       {"n", r.n ? nlohmann::json(*r.n) : nlohmann::json(nullptr)}});
    }
    return arr.dump();
}

std::vector<std::size_t> sample_indices(std::size_t n, std::size_t max, std::uint64_t seed) {
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    if (max == 0 || max >= n) {
        return idx;
    }
    Rng rng(seed ^ 0x5A3B1E5ULL);
    for (std::size_t i = 0; i < max; ++i) {  // partial Fisher–Yates
        std::swap(idx[i], idx[i + rng.below(n - i)]);
    }
    idx.resize(max);
    std::sort(idx.begin(), idx.end());
    return idx;
}

std::string group_of(const dataset::Record& record) {
    return record.patient_id.empty() ? "image:" + record.id : record.patient_id;
}

dataset::Manifest load_manifest(const std::filesystem::path& path,
                                const std::optional<std::filesystem::path>& boxes,
                                bool uses_boxes) {
    RADPROBE_CHECK(std::filesystem::exists(path), path.string(), ": manifest not found");
    dataset::ManifestOptions mo;
    mo.boxes = boxes;
    auto manifest = dataset::Manifest::load(path, mo);
    manifest.require_readable_images();
    if (uses_boxes) {
        manifest.require_valid_boxes();
    }
    RADPROBE_CHECK(manifest.size() > 0, path.string(), ": no images");
    return manifest;
}

std::vector<std::uint8_t> lung_region(const dataset::Manifest& manifest, std::size_t index,
                                      int rows, int cols, bool force_center, bool* from_masks) {
    // One definition of "the lungs" for the analyses and the roi pooling's control regions.
    auto region = features::lung_region(manifest, index, rows, cols, force_center);
    if (from_masks) {
        *from_masks = region.from_masks();
    }
    return std::move(region.inside);
}

std::vector<float> weighted_mean(const std::vector<float>& patches, std::int64_t dim,
                                 const std::vector<float>& weights) {
    const auto grid = static_cast<std::int64_t>(weights.size());
    RADPROBE_ASSERT(static_cast<std::int64_t>(patches.size()) == grid * dim);
    return features::pool(features::Pooling::kRoi, nullptr, patches.data(), grid, dim, weights);
}

std::vector<float> token_mean(const std::vector<float>& patches, std::int64_t dim) {
    const std::int64_t grid = static_cast<std::int64_t>(patches.size()) / dim;
    return features::pool(features::Pooling::kMean, nullptr, patches.data(), grid, dim, {});
}

}  // namespace radprobe::analysis::detail
