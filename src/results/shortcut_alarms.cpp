// The shortcut alarm as stored (analysis `shortcut_alarm`, four rows per task) and as shown by
// `radprobe results` and the report. Deciding it is the experiment's job (shortcut_alarm.cpp).

#include <cstdio>
#include <map>

#include "radprobe/core/error.hpp"
#include "radprobe/results/results.hpp"

namespace radprobe::results {

namespace {

constexpr const char* kAnalysis = "shortcut_alarm";
constexpr const char* kDifference = "control \xE2\x88\x92 best";  // U+2212 minus

AnalysisRow alarm_row(const ShortcutAlarm& a, std::int64_t run, const char* key2,
                      const char* column) {
    AnalysisRow r;
    r.analysis = kAnalysis;
    r.run = run;
    r.row_key = a.task;
    r.row_key2 = key2;
    r.column = column;
    return r;
}

std::string signed_number(double v) {
    return str_cat(v > 0 ? "+" : "", table::format_number(v));
}

std::string with_ci(double value, double lo, double hi) {
    return str_cat(table::format_number(value), " [", table::format_number(lo), ", ",
                   table::format_number(hi), "]");
}

// 0.0123, or 1.7e-06 below 0.001 (four decimals would print a tiny p as 0.0000).
std::string p_value(double p) {
    if (p >= 0.001 || p == 0.0) {
        return table::format_number(p, 4);
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2g", p);
    return buf;
}

}  // namespace

std::vector<AnalysisRow> shortcut_alarm_rows(const std::vector<ShortcutAlarm>& alarms) {
    std::vector<AnalysisRow> rows;
    for (const auto& a : alarms) {
        AnalysisRow c = alarm_row(a, a.control_run, "control", "auroc");
        c.value = a.control_auroc;
        c.ci_lo = a.control_ci_lo;
        c.ci_hi = a.control_ci_hi;
        AnalysisRow b = alarm_row(a, a.best_run, "best", "auroc");
        b.value = a.best_auroc;
        b.ci_lo = a.best_ci_lo;
        b.ci_hi = a.best_ci_hi;
        AnalysisRow d = alarm_row(a, a.control_run, kDifference, "auroc");
        d.value = a.difference;
        d.ci_lo = a.ci_lo;
        d.ci_hi = a.ci_hi;
        d.p = a.p;
        d.p_adjusted = a.p_adjusted;
        AnalysisRow x = alarm_row(a, a.control_run, "alarm", "alarm");
        x.value = a.alarm ? 1.0 : 0.0;
        x.p_adjusted = a.p_adjusted;
        rows.insert(rows.end(), {c, b, d, x});
    }
    return rows;
}

std::vector<ShortcutAlarm> read_shortcut_alarms(ResultsDb& db) {
    struct Parts {
        ShortcutAlarm a;
        int seen = 0;  // bit per row kind
    };
    std::map<std::string, Parts> by_task;
    for (const auto& r : db.analysis(kAnalysis)) {
        Parts& p = by_task[r.row_key];
        p.a.task = r.row_key;
        const double v = r.value.value_or(0.0);
        const double lo = r.ci_lo.value_or(v);
        const double hi = r.ci_hi.value_or(v);
        if (r.row_key2 == "control") {
            p.a.control_run = r.run.value_or(0);
            p.a.control_auroc = v;
            p.a.control_ci_lo = lo;
            p.a.control_ci_hi = hi;
            p.seen |= 1;
        } else if (r.row_key2 == "best") {
            p.a.best_run = r.run.value_or(0);
            p.a.best_auroc = v;
            p.a.best_ci_lo = lo;
            p.a.best_ci_hi = hi;
            p.seen |= 2;
        } else if (r.row_key2 == kDifference) {
            p.a.difference = v;
            p.a.ci_lo = lo;
            p.a.ci_hi = hi;
            p.a.p = r.p.value_or(1.0);
            p.a.p_adjusted = r.p_adjusted.value_or(1.0);
            p.seen |= 4;
        } else if (r.row_key2 == "alarm") {
            p.a.alarm = v != 0.0;
            p.seen |= 8;
        }
    }
    std::map<std::int64_t, std::string> labels;
    RunFilter all;
    all.include_incomplete = true;
    for (const auto& run : db.runs(all)) {
        labels[run.id] = str_cat(table::run_label(run), " (run ", run.id, ")");
    }
    auto label = [&labels](std::int64_t id) {
        const auto it = labels.find(id);
        return it == labels.end() ? str_cat("run ", id) : it->second;
    };
    std::vector<ShortcutAlarm> out;
    for (auto& [task, p] : by_task) {
        if (p.seen != 15) {
            continue;
        }
        p.a.control_label = label(p.a.control_run);
        p.a.best_label = label(p.a.best_run);
        out.push_back(std::move(p.a));
    }
    return out;
}

std::string shortcut_alarm_numbers(const ShortcutAlarm& a) {
    return str_cat("control ", a.control_label, " AUROC ",
                   with_ci(a.control_auroc, a.control_ci_lo, a.control_ci_hi), " vs best ",
                   a.best_label, " AUROC ", with_ci(a.best_auroc, a.best_ci_lo, a.best_ci_hi),
                   ": paired difference ", signed_number(a.difference), " [",
                   table::format_number(a.ci_lo), ", ", table::format_number(a.ci_hi),
                   "], DeLong p = ", p_value(a.p), ", FDR-adjusted p = ", p_value(a.p_adjusted));
}

std::string format_shortcut_alarms(const std::vector<ShortcutAlarm>& alarms, TableFormat format) {
    std::string out;
    for (const auto& a : alarms) {
        if (!a.alarm) {
            continue;
        }
        out += str_cat(format == TableFormat::kMarkdown ? "- **WARNING** " : "WARNING ",
                       "shortcut alarm on ", a.task, ": ", kShortcutAlarmText, " (",
                       shortcut_alarm_numbers(a), ")\n");
    }
    return out;
}

}  // namespace radprobe::results
