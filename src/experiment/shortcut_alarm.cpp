// The shortcut alarm: a control encoder (random features) that is not significantly worse than
// the best real encoder on a task, or better, says that the label is separable without anatomy
// (acquisition, site, scanner). It compares the control with the real encoders (random features
// legitimately pick up large global changes, so separating the label alone is no alarm); a
// control whose CI reaches 0.5 separates nothing and raises none.

#include <algorithm>
#include <cmath>
#include <set>

#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "scored_runs.hpp"

namespace radprobe::experiment {

using results::ShortcutAlarm;

std::vector<ShortcutAlarm> decide_shortcut_alarms(const std::vector<ControlPair>& pairs,
                                                  const StatisticsOptions& stats) {
    std::vector<ShortcutAlarm> alarms;
    for (const auto& pair : pairs) {
        ShortcutAlarm a;
        a.task = pair.task;
        a.control_run = pair.control_run;
        a.best_run = pair.best_run;
        try {
            const auto control = eval::delong_auc(pair.labels, pair.control_scores, stats.level);
            const auto best = eval::delong_auc(pair.labels, pair.best_scores, stats.level);
            const auto diff = eval::delong_paired_test(pair.labels, pair.control_scores,
                                                       pair.best_scores, stats.level);
            a.control_auroc = control.auc;
            a.control_ci_lo = control.ci_lo;
            a.control_ci_hi = control.ci_hi;
            a.best_auroc = best.auc;
            a.best_ci_lo = best.ci_lo;
            a.best_ci_hi = best.ci_hi;
            a.difference = diff.difference;
            a.ci_lo = diff.ci_lo;
            a.ci_hi = diff.ci_hi;
            a.p = diff.p;
        } catch (const Error&) {
            continue;  // fewer than 2 images of a class: DeLong is undefined, nothing to compare
        }
        alarms.push_back(std::move(a));
    }
    std::vector<double> p;
    for (const auto& a : alarms) {
        p.push_back(a.p);
    }
    const auto adjusted = stats.fdr_method == "holm" ? eval::holm(p) : eval::benjamini_hochberg(p);
    const double alpha = 1.0 - stats.level;
    for (std::size_t i = 0; i < alarms.size(); ++i) {
        auto& a = alarms[i];
        a.p_adjusted = adjusted[i];
        // A control that does not separate the label (its CI reaches 0.5) points at nothing,
        // however the comparison comes out: a label no encoder learns raises no alarm.
        const bool separates = a.control_ci_lo > 0.5;
        const bool significantly_worse = a.difference < 0.0 && a.p_adjusted < alpha;
        a.alarm = separates && !significantly_worse;
    }
    return alarms;
}

namespace {

using detail::Scored;

/// The highest AUROC, the earliest run on a tie; null when `runs` is empty.
const Scored* best_of(const std::vector<const Scored*>& runs) {
    const Scored* best = nullptr;
    for (const Scored* s : runs) {
        if (!best || s->auc > best->auc || (s->auc == best->auc && s->run.id < best->run.id)) {
            best = s;
        }
    }
    return best;
}

/// The task's control pair (see write_shortcut_alarms); false when the task has none.
bool control_pair(const std::string& task, const std::vector<Scored>& runs,
                  const std::set<std::string>& controls, ControlPair& pair) {
    std::vector<const Scored*> control_runs;
    for (const auto& s : runs) {
        // roi pooling is left out on the control side: its region comes from the annotation
        // (the organ's mask, the finding's boxes), so random features pooled there separate a
        // label through the annotation, not through how the images were acquired.
        if (controls.count(s.run.spec.encoder) != 0 &&
            s.run.spec.pooling.find("roi") == std::string::npos) {
            control_runs.push_back(&s);
        }
    }
    const Scored* control = best_of(control_runs);
    if (control == nullptr) {
        return false;
    }
    std::vector<const Scored*> comparable;
    for (const auto& s : runs) {
        std::vector<double> labels, a, b;
        if (controls.count(s.run.spec.encoder) == 0 &&
            detail::paired_scores(*control, s, labels, a, b)) {
            comparable.push_back(&s);
        }
    }
    const Scored* best = best_of(comparable);
    if (best == nullptr) {
        return false;
    }
    pair.task = task;
    pair.control_run = control->run.id;
    pair.best_run = best->run.id;
    return detail::paired_scores(*control, *best, pair.labels, pair.control_scores,
                                 pair.best_scores);
}

}  // namespace

std::vector<ShortcutAlarm> write_shortcut_alarms(results::ResultsDb& db,
                                                 const std::vector<std::string>& control_encoders,
                                                 const StatisticsOptions& stats) {
    std::vector<ControlPair> pairs;
    if (!control_encoders.empty()) {
        const std::set<std::string> controls(control_encoders.begin(), control_encoders.end());
        for (const auto& [task, runs] : detail::scored_runs_by_task(db)) {
            ControlPair pair;
            if (control_pair(task, runs, controls, pair)) {
                pairs.push_back(std::move(pair));
            }
        }
    }
    std::vector<ShortcutAlarm> alarms = decide_shortcut_alarms(pairs, stats);
    db.replace_analysis("shortcut_alarm", results::shortcut_alarm_rows(alarms));
    return alarms;
}

}  // namespace radprobe::experiment
