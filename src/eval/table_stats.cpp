// Statistics of prediction tables (CSV): the AUROC document of `radprobe stats roc` and the
// adjusted p-value columns of `radprobe stats fdr`.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "internal.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

namespace {

// Ordered so that the output reads as DESIGN.md writes it: {"n":..,"auc":..,"ci":[..],...}.
using json = nlohmann::ordered_json;

json interval(double lo, double hi) {
    return json::array({lo, hi});
}

std::vector<double> label_column(const CsvTable& t, const std::string& column) {
    const std::size_t c = t.column(column);
    std::vector<double> out(t.num_rows());
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const std::string& cell = t.rows()[r][c];
        const auto v = parse_double(cell);
        RADPROBE_CHECK(v && (*v == 0.0 || *v == 1.0), t.name(), ":", t.line_of_row(r), ": column '",
                       column, "' value '", cell,
                       "' is not a binary label (0 or 1; drop unlabelled rows first)");
        out[r] = *v;
    }
    return out;
}

std::vector<double> score_column(const CsvTable& t, const std::string& column) {
    std::vector<double> out = t.numeric_column(column);
    for (std::size_t r = 0; r < out.size(); ++r) {
        RADPROBE_CHECK(std::isfinite(out[r]), t.name(), ":", t.line_of_row(r), ": column '", column,
                       "' value '", t.rows()[r][t.column(column)], "' is not a finite score");
    }
    return out;
}

// Dense cluster ids of a column in which every row needs a value.
std::vector<std::size_t> cluster_column(const CsvTable& t, const std::string& column) {
    const std::size_t c = t.column(column);
    std::vector<std::string> keys(t.num_rows());
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        keys[r] = t.rows()[r][c];
        RADPROBE_CHECK(!keys[r].empty(), t.name(), ":", t.line_of_row(r), ": column '", column,
                       "' is empty (every row needs a cluster id)");
    }
    return cluster_ids(keys);
}

const char* ci_method_name(CiMethod method) {
    return method == CiMethod::kBca ? "bca" : "percentile";
}

// The AUROC of one score with its interval: keys "auc", "ci", "se", ... suffixed by `suffix`.
void describe_score(json& out, const RocTableOptions& o, std::span<const double> labels,
                    std::span<const double> scores, std::span<const std::size_t> clusters,
                    const std::string& suffix) {
    if (o.interval == AucInterval::kDelong) {
        const auto d = delong_auc(labels, scores, o.bootstrap.level);
        out["auc" + suffix] = d.auc;
        out["ci" + suffix] = interval(d.ci_lo, d.ci_hi);
        out["se" + suffix] = d.se;
    } else {
        const auto b = bootstrap_auroc(labels, scores, o.bootstrap, clusters);
        out["auc" + suffix] = b.estimate;
        out["ci" + suffix] = interval(b.ci_lo, b.ci_hi);
        out["se" + suffix] = b.se;
        out["n_valid" + suffix] = b.valid;
        if (b.bca_fell_back) {
            out["bca_fell_back" + suffix] = true;
        }
    }
    out["average_precision" + suffix] = average_precision(labels, scores);
}

// The second score: its own AUROC, the paired DeLong test and (bootstrap) the paired bootstrap.
void compare_scores(json& out, const RocTableOptions& o, std::span<const double> labels,
                    std::span<const double> scores1, std::span<const double> scores2,
                    std::span<const std::size_t> clusters) {
    out["score2"] = o.scores[1];
    describe_score(out, o, labels, scores2, clusters, "2");
    const auto t = delong_paired_test(labels, scores1, scores2, o.bootstrap.level);
    out["delong"] = {{"auc_diff", t.difference},
                     {"se", t.se},
                     {"z", t.statistic},
                     {"p", t.p},
                     {"ci", interval(t.ci_lo, t.ci_hi)}};
    if (!clusters.empty()) {
        out["delong"]["note"] = "assumes independent images; bootstrap_diff resamples clusters";
    }
    if (o.interval == AucInterval::kBootstrap) {
        const auto b = bootstrap_auroc_difference(labels, scores1, scores2, o.bootstrap, clusters);
        out["bootstrap_diff"] = {{"auc_diff", b.estimate},
                                 {"ci", interval(b.ci_lo, b.ci_hi)},
                                 {"se", b.se},
                                 {"n_valid", b.valid}};
    }
}

}  // namespace

namespace detail {

std::string csv_number(const std::optional<double>& value) {
    if (!value) {
        return "";
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", *value);
    return buf;
}

}  // namespace detail

std::string roc_table_json(const RocTableOptions& o) {
    RADPROBE_CHECK(o.scores.size() == 1 || o.scores.size() == 2, o.csv.string(),
                   ": one or two score columns are compared, got ", o.scores.size());
    RADPROBE_CHECK(o.cluster.empty() || o.interval == AucInterval::kBootstrap, o.csv.string(),
                   ": clusters need the bootstrap interval (DeLong assumes independent images)");
    const CsvTable table = CsvTable::read(o.csv);
    RADPROBE_CHECK(table.num_rows() > 0, o.csv.string(), ": no data rows");
    const std::vector<double> labels = label_column(table, o.label);
    std::vector<std::vector<double>> scores;
    for (const auto& s : o.scores) {
        scores.push_back(score_column(table, s));
    }
    const std::vector<std::size_t> clusters =
        o.cluster.empty() ? std::vector<std::size_t>{} : cluster_column(table, o.cluster);
    const ClassCounts counts = count_classes(labels);
    RADPROBE_CHECK(counts.positives > 0 && counts.negatives > 0, o.csv.string(), ": column '",
                   o.label, "' has ", counts.positives, " positive(s) and ", counts.negatives,
                   " negative(s); the AUC needs both classes");

    json out;
    out["n"] = labels.size();
    describe_score(out, o, labels, scores[0], clusters, "");
    out["n_pos"] = counts.positives;
    out["n_neg"] = counts.negatives;
    out["label"] = o.label;
    out["score"] = o.scores[0];
    out["level"] = o.bootstrap.level;
    if (o.interval == AucInterval::kDelong) {
        out["ci_method"] = "delong";
    } else {
        out["ci_method"] = std::string("bootstrap-") + ci_method_name(o.bootstrap.method);
        out["n_boot"] = o.bootstrap.replicates;
        out["seed"] = o.bootstrap.seed;
        out["stratified"] = clusters.empty();
        if (!clusters.empty()) {
            out["cluster"] = o.cluster;
            out["n_clusters"] = *std::max_element(clusters.begin(), clusters.end()) + 1;
        }
    }
    if (scores.size() == 2) {
        compare_scores(out, o, labels, scores[0], scores[1], clusters);
    }
    return out.dump();
}

std::string fdr_table_csv(const FdrTableOptions& o) {
    const CsvTable t = CsvTable::read(o.csv);
    const std::vector<double> p = t.numeric_column(o.p_column);
    for (std::size_t r = 0; r < p.size(); ++r) {
        RADPROBE_CHECK(p[r] >= 0.0 && p[r] <= 1.0, o.csv.string(), ":", t.line_of_row(r),
                       ": column '", o.p_column, "' value '", t.rows()[r][t.column(o.p_column)],
                       "' is not a p-value in [0, 1]");
    }
    std::vector<std::pair<std::string, std::vector<double>>> added;
    if (o.benjamini_hochberg) {
        added.emplace_back("p_bh", benjamini_hochberg(p));
    }
    if (o.holm) {
        added.emplace_back("p_holm", holm(p));
    }
    std::vector<std::string> header = t.header();
    for (const auto& [name, values] : added) {
        RADPROBE_CHECK(!t.find_column(name), o.csv.string(), ": already has a column '", name, "'");
        header.push_back(name);
    }
    std::string text = csv_line(header) + "\n";
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        std::vector<std::string> row = t.rows()[r];
        for (const auto& [name, values] : added) {
            row.push_back(detail::csv_number(values[r]));
        }
        text += csv_line(row) + "\n";
    }
    return text;
}

}  // namespace radprobe::eval
