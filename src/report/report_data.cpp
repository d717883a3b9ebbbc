// Report data: what the report shows, read once from the results database.

#include <algorithm>
#include <cmath>

#include "report_internal.hpp"

namespace radprobe::report::detail {

using results::AnalysisRow;
using results::Metric;
using results::Prediction;
using results::ResultsDb;
namespace table = results::table;

namespace {

// Labels unique within a task: "encoder · adaptation · pooling", then the run id on a clash.
void label_runs(ReportData& d) {
    std::map<std::string, int> seen;
    for (const auto& r : d.all_runs) {
        ++seen[r.spec.task + '\x1f' + table::run_label(r)];
    }
    for (const auto& r : d.all_runs) {
        std::string label = table::run_label(r);
        if (seen[r.spec.task + '\x1f' + label] > 1) {
            label += " (run " + std::to_string(r.id) + ")";
        }
        d.labels[r.id] = label;
        d.task_of[r.id] = r.spec.task;
    }
}

// FDR of the comparisons: rows without p_adjusted get Benjamini–Hochberg within their
// (task, metric) family.
void adjust_comparisons(ReportData& d, const std::vector<AnalysisRow>& comps) {
    std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> families;
    for (std::size_t i = 0; i < comps.size(); ++i) {
        const auto& c = comps[i];
        if (c.run && c.p && !c.p_adjusted) {
            families[{d.task_of[*c.run], c.column}].push_back(i);
        }
    }
    std::vector<double> adjusted(comps.size(), NAN);
    for (const auto& [key, members] : families) {
        std::vector<double> p;
        for (std::size_t i : members) {
            p.push_back(std::clamp(*comps[i].p, 0.0, 1.0));
        }
        const std::vector<double> q = eval::benjamini_hochberg(p);
        for (std::size_t k = 0; k < members.size(); ++k) {
            adjusted[members[k]] = q[k];
        }
    }
    for (std::size_t i = 0; i < comps.size(); ++i) {
        const auto& c = comps[i];
        const double q = c.p_adjusted ? *c.p_adjusted : adjusted[i];
        if (c.run && !std::isnan(q)) {
            d.comparisons[{*c.run, c.column}] = {q, c.row_key};
        }
    }
}

// The ROC curve and per-image Dice of every run of a task, from its predictions.
void read_curves(ResultsDb& db, const ReportData& d, TaskGroup& t) {
    for (const auto& r : t.rows) {
        const std::string& run_label = d.labels.at(r.run.id);
        std::vector<double> labels;
        std::vector<double> scores;
        bool had_dice = false;
        for (const Prediction& p : db.predictions(r.run.id)) {
            if (p.label && p.score && (*p.label == 0.0 || *p.label == 1.0) &&
                std::isfinite(*p.score)) {
                labels.push_back(*p.label);
                scores.push_back(*p.score);
            }
            if (p.dice && std::isfinite(*p.dice)) {
                t.dice.push_back({run_label, *p.dice});
                had_dice = true;
            }
        }
        t.dice_runs += had_dice;
        const auto counts = eval::count_classes(labels);
        if (counts.positives == 0 || counts.negatives == 0) {
            continue;
        }
        t.roc.push_back({run_label + " (" + table::format_number(eval::auroc(labels, scores)) + ")",
                         eval::roc_curve(labels, scores)});
    }
}

}  // namespace

ReportData gather(ResultsDb& db, bool with_curves) {
    ReportData d;
    for (auto& g : table::group_by_task(db.leaderboard())) {
        TaskGroup t;
        t.task = g.front().run.spec.task;
        t.rows = std::move(g);
        d.tasks.push_back(std::move(t));
    }
    results::RunFilter all;
    all.include_incomplete = true;
    d.all_runs = db.runs(all);
    label_runs(d);
    d.perturb = db.analysis("perturb");
    d.subgroups = db.analysis("subgroups");
    d.lesions = db.analysis("lesions");
    d.shortcut = db.analysis("shortcut");
    adjust_comparisons(d, db.analysis("comparisons"));
    if (with_curves) {
        for (auto& t : d.tasks) {
            read_curves(db, d, t);
        }
    }
    return d;
}

std::string label_of(const ReportData& d, const std::optional<std::int64_t>& run) {
    if (!run) {
        return "";
    }
    auto it = d.labels.find(*run);
    return it == d.labels.end() ? "run " + std::to_string(*run) : it->second;
}

std::map<std::optional<std::int64_t>, std::vector<const AnalysisRow*>> rows_by_run(
    const std::vector<AnalysisRow>& rows) {
    std::map<std::optional<std::int64_t>, std::vector<const AnalysisRow*>> out;
    for (const auto& r : rows) {
        out[r.run].push_back(&r);
    }
    return out;
}

bool is_difference(const std::string& text) {
    return text.find(" − ") != std::string::npos;
}

SegmentationConvention segmentation_convention(const TaskGroup& t) {
    SegmentationConvention c;
    for (const auto& row : t.rows) {
        for (const Metric& m : row.metrics) {
            if (m.extra_json.empty()) {
                continue;
            }
            const json x = json::parse(m.extra_json, nullptr, false);
            if (!x.is_object()) {
                continue;
            }
            if (m.name == "dice" && x.contains("empty_convention") && c.convention.empty()) {
                c.convention = x["empty_convention"].get<std::string>();
                if (x.contains("test_empty_truth")) {
                    c.empty_truth = x["test_empty_truth"].get<std::int64_t>();
                }
            }
            if (m.name == "dice_positive" && x.contains("n_positive") && !c.n_positive) {
                c.n_positive = x["n_positive"].get<std::int64_t>();
                c.n_scored = x["n_scored"].get<std::int64_t>();
            }
        }
    }
    return c;
}

}  // namespace radprobe::report::detail
