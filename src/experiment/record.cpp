// Recording one adaptation's result as a run of the results database (shared by `radprobe run`
// and `radprobe demo`), config hashes, and the paired comparisons against each task's best run.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "scored_runs.hpp"

namespace radprobe::experiment {

using results::AnalysisRow;
using results::Metric;
using results::Prediction;
using results::ResultsDb;
using results::RunRecord;
using results::RunSpec;
using results::RunStatus;

using nlohmann::json;

std::string canonical_json(const std::string& json_text) {
    json j;
    try {
        j = json::parse(json_text);
    } catch (const json::exception& e) {
        throw InputError(
            str_cat("run config is not valid JSON (", e.what(), "): ", json_text.substr(0, 80)));
    }
    return j.dump();  // nlohmann's object keeps its keys sorted: the dump is canonical
}

std::string config_hash(const std::string& json_text) {
    // FNV-1a, 64 bit, over the canonical JSON: simple enough to recompute anywhere (the golden
    // test does it in Python), and owned here so that no other component's hash can change
    // the identity of results already in users' databases.
    std::uint64_t h = 14695981039346656037ull;
    for (const unsigned char ch : canonical_json(json_text)) {
        h ^= ch;
        h *= 1099511628211ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return std::string("v1-") + buf;
}

std::vector<Metric> label_metrics(const probes::LabelResult& r, const StatisticsOptions& stats) {
    std::vector<Metric> out;
    const auto n = static_cast<std::int64_t>(r.n_test);
    const bool delong = stats.ci == "delong";
    Metric auc;
    auc.name = "auroc";
    if (std::isfinite(r.auroc)) {
        auc.value = r.auroc;
    }
    const double lo = delong ? r.delong_lo : r.bootstrap_lo;
    const double hi = delong ? r.delong_hi : r.bootstrap_hi;
    if (auc.value && std::isfinite(lo) && std::isfinite(hi) && (delong || r.bootstrap_valid > 0)) {
        auc.ci_lo = lo;
        auc.ci_hi = hi;
        auc.ci_method = delong ? "delong" : "bootstrap-percentile (patient-clustered)";
        auc.level = stats.level;
    }
    json extra;
    if (delong) {
        extra["bootstrap_ci"] = {r.bootstrap_lo, r.bootstrap_hi};
    } else {
        extra["delong_ci"] = {r.delong_lo, r.delong_hi};
    }
    extra["bootstrap_valid"] = r.bootstrap_valid;
    extra["test_positives"] = r.test_positives;
    extra["chosen"] = r.chosen;
    for (auto& [key, value] : extra.items()) {
        if (value.is_array()) {
            for (auto& v : value) {
                if (v.is_number_float() && !std::isfinite(v.get<double>())) {
                    v = nullptr;
                }
            }
        }
    }
    auc.extra_json = extra.dump();
    auc.n = n;
    out.push_back(auc);
    Metric ap;
    ap.name = "ap";
    if (std::isfinite(r.auprc)) {
        ap.value = r.auprc;
    }
    ap.n = n;
    out.push_back(ap);
    return out;
}

std::vector<Prediction> label_predictions(const probes::LabelResult& r) {
    std::vector<Prediction> out;
    out.reserve(r.test_scores.size());
    for (std::size_t i = 0; i < r.test_scores.size(); ++i) {
        Prediction p;
        p.image_id = r.test_images.at(i);
        p.patient_id = i < r.test_patients.size() ? r.test_patients[i] : "";
        p.label = r.test_labels.at(i);
        p.score = r.test_scores[i];
        out.push_back(std::move(p));
    }
    return out;
}

std::vector<Metric> segment_result_metrics(const segment::SegmentResult& r,
                                           const StatisticsOptions& s) {
    std::vector<Metric> out;
    for (const auto& m : r.metrics) {
        Metric x;
        x.name = m.metric;
        x.n = static_cast<std::int64_t>(m.defined);
        if (m.defined > 0 && std::isfinite(m.mean)) {
            x.value = m.mean;
            if (std::isfinite(m.ci_lo) && std::isfinite(m.ci_hi)) {
                x.ci_lo = m.ci_lo;
                x.ci_hi = m.ci_hi;
                x.ci_method = "bootstrap-percentile (patient-clustered)";
                x.level = s.level;
            }
        }
        if (m.metric == "dice") {
            x.extra_json = nlohmann::json{
                {"empty_convention", r.empty_convention},
                {"test_empty_truth", r.test_empty_truth},
                {"best_epoch",
                 r.best_epoch}}.dump();
        }
        out.push_back(std::move(x));
    }
    // Dice over the images whose truth is non-empty: no empty-mask convention enters it (the
    // all-images Dice counts an empty truth predicted empty as 1, which flatters rare findings).
    const bool listed = std::any_of(r.metrics.begin(), r.metrics.end(),
                                    [](const auto& m) { return m.metric == "dice_positive"; });
    if (!listed && r.n_positive > 0) {
        Metric x;
        x.name = "dice_positive";
        x.n = static_cast<std::int64_t>(r.dice_positive.defined);
        if (r.dice_positive.defined > 0 && std::isfinite(r.dice_positive.mean)) {
            x.value = r.dice_positive.mean;
            if (std::isfinite(r.dice_positive.ci_lo) && std::isfinite(r.dice_positive.ci_hi)) {
                x.ci_lo = r.dice_positive.ci_lo;
                x.ci_hi = r.dice_positive.ci_hi;
                x.ci_method = "bootstrap-percentile (patient-clustered)";
                x.level = s.level;
            }
        }
        x.extra_json =
            nlohmann::json{{"n_scored", r.n_scored}, {"n_positive", r.n_positive}}.dump();
        out.push_back(std::move(x));
    }
    return out;
}

std::vector<Prediction> segment_result_predictions(const segment::SegmentResult& r,
                                                   const std::filesystem::path& out) {
    std::vector<Prediction> preds;
    for (const auto& t : r.test) {
        Prediction p;
        p.image_id = t.image;
        p.patient_id = t.patient_id;
        p.dice = t.dice;
        if (!t.mask_path.empty()) {
            p.mask_path = (out / t.mask_path).string();
        }
        preds.push_back(std::move(p));
    }
    return preds;
}

RecordedRun record_label_run(ResultsDb& db, const RunSpec& spec, const probes::LabelResult& result,
                             const StatisticsOptions& stats) {
    return run_recorded(db, spec, [&](std::int64_t run) {
        db.record_metrics(run, label_metrics(result, stats));
        db.record_predictions(run, label_predictions(result));
    });
}

namespace detail {

std::map<std::string, std::vector<Scored>> scored_runs_by_task(ResultsDb& db) {
    std::map<std::string, std::vector<Scored>> by_task;
    for (const auto& row : db.leaderboard()) {
        const auto it = std::find_if(row.metrics.begin(), row.metrics.end(),
                                     [](const Metric& m) { return m.name == "auroc"; });
        if (it == row.metrics.end() || !it->value) {
            continue;
        }
        Scored s;
        s.run = row.run;
        s.auc = *it->value;
        for (const auto& p : db.predictions(row.run.id)) {
            if (p.label && p.score && std::isfinite(*p.score)) {
                s.by_image[p.image_id] = {*p.label, *p.score};
            }
        }
        if (!s.by_image.empty()) {
            by_task[row.run.spec.task].push_back(std::move(s));
        }
    }
    return by_task;
}

bool paired_scores(const Scored& best, const Scored& other, std::vector<double>& labels,
                   std::vector<double>& s_best, std::vector<double>& s_other) {
    if (other.by_image.size() != best.by_image.size()) {
        return false;
    }
    for (const auto& [image, ls] : best.by_image) {
        const auto o = other.by_image.find(image);
        if (o == other.by_image.end() || o->second.first != ls.first) {
            return false;
        }
        labels.push_back(ls.first);
        s_best.push_back(ls.second);
        s_other.push_back(o->second.second);
    }
    return true;
}

}  // namespace detail

namespace {

using detail::Scored;

/// The comparisons of a task's runs against its best run (highest AUROC, the earliest run on a
/// tie), each with its FDR family.
void compare_task(const std::string& task, const std::vector<Scored>& runs,
                  const StatisticsOptions& stats, std::vector<AnalysisRow>& rows,
                  std::vector<std::string>& families) {
    const auto best = std::max_element(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
        return a.auc < b.auc || (a.auc == b.auc && a.run.id > b.run.id);
    });
    const std::string ref = "best: " + best->run.spec.encoder + " / " + best->run.spec.adaptation +
                            " / " + best->run.spec.pooling + " (run " +
                            std::to_string(best->run.id) + ")";
    for (const auto& other : runs) {
        std::vector<double> labels, s_best, s_other;
        if (other.run.id == best->run.id ||
            !detail::paired_scores(*best, other, labels, s_best, s_other)) {
            continue;
        }
        try {
            const auto c = eval::delong_paired_test(labels, s_other, s_best, stats.level);
            AnalysisRow r;
            r.analysis = "comparisons";
            r.run = other.run.id;
            r.row_key = ref;
            r.column = "auroc";
            r.value = c.difference;
            r.ci_lo = c.ci_lo;
            r.ci_hi = c.ci_hi;
            r.p = c.p;
            rows.push_back(r);
            families.push_back(stats.fdr_family == "all" ? std::string() : task);
        } catch (const Error&) {
            // Too few positives or negatives for DeLong: no comparison for this pair.
        }
    }
}

/// FDR-adjusted p-values within each family.
void adjust_p_values(std::vector<AnalysisRow>& rows, const std::vector<std::string>& families,
                     const std::string& method) {
    std::map<std::string, std::vector<std::size_t>> members;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        members[families[i]].push_back(i);
    }
    for (const auto& [family, idx] : members) {
        std::vector<double> p;
        for (auto i : idx) {
            p.push_back(*rows[i].p);
        }
        const auto adj = method == "holm" ? eval::holm(p) : eval::benjamini_hochberg(p);
        for (std::size_t k = 0; k < idx.size(); ++k) {
            rows[idx[k]].p_adjusted = adj[k];
        }
    }
}

}  // namespace

std::size_t write_comparisons(ResultsDb& db, const StatisticsOptions& stats) {
    std::vector<AnalysisRow> rows;
    std::vector<std::string> families;
    for (const auto& [task, runs] : detail::scored_runs_by_task(db)) {
        compare_task(task, runs, stats, rows, families);
    }
    adjust_p_values(rows, families, stats.fdr_method);
    db.replace_analysis("comparisons", rows);
    return rows.size();
}

}  // namespace radprobe::experiment
