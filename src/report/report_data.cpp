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

// An analysis run's label names its task and, for an analysis of another run (subgroups), the
// adaptation it analyses: "random-vit-s16 · subgroups of linear · cls · cardiomegaly".
std::string analysis_label(const results::RunRecord& r,
                           const std::map<std::string, const results::RunRecord*>& by_hash) {
    results::RunRecord shown = r;
    std::string kind = r.spec.adaptation.substr(std::string("analysis:").size());
    const json cfg = json::parse(r.spec.config_json, nullptr, false);
    if (cfg.is_object() && cfg.contains("source_run") && cfg["source_run"].is_string()) {
        const auto it = by_hash.find(cfg["source_run"].get<std::string>());
        if (it != by_hash.end()) {
            kind += " of " + it->second->spec.adaptation;
        }
    }
    shown.spec.adaptation = kind;
    if (shown.spec.pooling == "-") {
        shown.spec.pooling.clear();
    }
    std::string label = table::run_label(shown);
    if (!r.spec.task.empty()) {
        label += " \xC2\xB7 " + r.spec.task;
    }
    return label;
}

// Labels unique within a task: "encoder · adaptation · pooling", then the run id on a clash.
// Analysis runs are listed outside their task's table, so their label carries the task.
void label_runs(ReportData& d) {
    std::map<std::string, const results::RunRecord*> by_hash;
    for (const auto& r : d.all_runs) {
        by_hash.emplace(r.spec.config_hash, &r);
    }
    std::map<std::int64_t, std::string> base;
    std::map<std::string, int> seen;
    for (const auto& r : d.all_runs) {
        const bool analysis = r.spec.adaptation.rfind("analysis:", 0) == 0;
        base[r.id] = analysis ? analysis_label(r, by_hash) : table::run_label(r);
        ++seen[(analysis ? std::string("\x1e") : r.spec.task) + '\x1f' + base[r.id]];
    }
    for (const auto& r : d.all_runs) {
        const bool analysis = r.spec.adaptation.rfind("analysis:", 0) == 0;
        std::string label = base[r.id];
        if (seen[(analysis ? std::string("\x1e") : r.spec.task) + '\x1f' + label] > 1) {
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
    for (auto& st : db.stores()) {
        if (std::any_of(d.all_runs.begin(), d.all_runs.end(),
                        [&](const auto& r) { return r.spec.encoder == st.encoder; })) {
            d.stores.push_back(std::move(st));
        }
    }
    label_runs(d);
    d.perturb = db.analysis("perturb");
    d.subgroups = db.analysis("subgroups");
    d.lesions = db.analysis("lesions");
    d.shortcut = db.analysis("shortcut");
    adjust_comparisons(d, db.analysis("comparisons"));
    for (auto& a : results::read_shortcut_alarms(db)) {
        d.shortcut_alarms[a.task] = std::move(a);
    }
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

std::vector<LeaderboardPart> leaderboard_parts(const TaskGroup& t) {
    LeaderboardPart cls{"classification", {}};
    LeaderboardPart seg{"segmentation", {}};
    for (const auto& r : t.rows) {
        (table::find_metric(r, "dice") ? seg : cls).rows.push_back(r);
    }
    if (cls.rows.empty() || seg.rows.empty()) {
        return {LeaderboardPart{"", t.rows}};
    }
    // Best first by the part's own primary metric (rows without it last, order kept).
    for (LeaderboardPart* part : {&cls, &seg}) {
        const std::string primary = table::primary_metric(part->rows);
        auto value = [&primary](const results::LeaderboardRow& r) {
            const Metric* m = table::find_metric(r, primary);
            return m && m->value && std::isfinite(*m->value) ? *m->value : -INFINITY;
        };
        std::stable_sort(part->rows.begin(), part->rows.end(),
                         [&](const auto& a, const auto& b) { return value(a) > value(b); });
    }
    return {std::move(cls), std::move(seg)};
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
