// The report's sections: HTML (tables, notes and figure placeholders per task and analysis, the
// runs table) and the Markdown tables.
//
// Safety: every string from the database reaches the page through Page::text() / Page::cell()
// (html_escape) or as chart data (report.cpp makes that JSON safe inside <script>).

#include <algorithm>
#include <cmath>

#include "report_internal.hpp"

namespace radprobe::report::detail {

using results::AnalysisRow;
using results::Metric;
namespace table = results::table;

void Page::plot(json spec) {
    const std::string id = "plot-" + std::to_string(plots.size() + 1);
    plots.push_back({{"id", id}, {"spec", std::move(spec)}});
    body += "<div class=\"plot\" id=\"" + id + "\"></div>\n";
}

void Page::umap_plot(json spec, json umap) {
    const std::string id = "plot-" + std::to_string(plots.size() + 1);
    plots.push_back({{"id", id}, {"spec", std::move(spec)}, {"umap", std::move(umap)}});
    body += "<div class=\"plot umap\" id=\"" + id +
            "\"><p class=\"note\">computing the UMAP in the page…</p></div>\n";
}

void Page::text(const std::string& s) {
    body += html_escape(s);
}

void Page::raw(const std::string& s) {
    body += s;
}

void Page::cell(const std::string& s) {
    raw("<td>");
    text(s);
    raw("</td>");
}

namespace {

// "value [lo, hi]" of an analysis row, as the leaderboard writes a metric.
std::string value_cell(const AnalysisRow& r) {
    Metric m;
    m.value = r.value;
    m.ci_lo = r.ci_lo;
    m.ci_hi = r.ci_hi;
    return table::metric_cell(m);
}

// The p-value cells of a table row: p, then the BH-adjusted p marked * below alpha.
void p_cells(Page& page, const std::optional<double>& p, const std::optional<double>& adjusted,
             double alpha) {
    page.raw("</td><td class=\"num\">" + table::format_number(p, 4) + "</td><td class=\"num\">" +
             table::format_number(adjusted, 4));
    if (adjusted && *adjusted < alpha) {
        page.raw(" <sup class=\"sig\">*</sup>");
    }
    page.raw("</td></tr>\n");
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

// One metric cell of a leaderboard row, marked when its comparison is significant.
void leaderboard_cell(Page& page, const ReportData& d, const results::LeaderboardRow& r,
                      const Metric& m, double alpha, bool& any_mark) {
    page.text(table::metric_cell(m));
    auto c = d.comparisons.find({r.run.id, m.name});
    if (c != d.comparisons.end() && c->second.first < alpha) {
        any_mark = true;
        page.raw("<sup class=\"sig\" title=\"");
        page.text("differs from " + c->second.second +
                  ": BH-adjusted p = " + table::format_number(c->second.first, 4));
        page.raw("\">*</sup>");
    }
}

void leaderboard_table(Page& page, const ReportData& d,
                       const std::vector<results::LeaderboardRow>& rows, double alpha,
                       bool& any_mark) {
    const std::vector<std::string> metrics = table::metric_columns(rows);
    // Only the primary metric's best value is emphasised: its direction is known.
    const std::string primary = metrics.empty() ? "" : metrics.front();
    std::optional<double> best;
    for (const auto& r : rows) {
        const Metric* m = table::find_metric(r, primary);
        if (m && m->value && (!best || *m->value > *best)) {
            best = m->value;
        }
    }
    page.raw(
        "<div class=\"table-wrap\"><table class=\"leaderboard\"><thead><tr><th>#</th>"
        "<th>encoder</th>"
        "<th>adaptation</th><th>pooling</th><th>layers</th><th>seed</th>");
    for (const auto& m : metrics) {
        page.raw("<th>");
        page.text(m);
        page.raw(" [95% CI]</th>");
    }
    page.raw("<th>n</th></tr></thead><tbody>\n");
    int rank = 0;
    for (const auto& r : rows) {
        page.raw("<tr><td class=\"num\">" + std::to_string(++rank) + "</td>");
        for (const std::string* f : {&r.run.spec.encoder, &r.run.spec.adaptation,
                                     &r.run.spec.pooling, &r.run.spec.layers}) {
            page.cell(*f);
        }
        page.raw("<td class=\"num\">" + std::to_string(r.run.spec.seed) + "</td>");
        std::optional<std::int64_t> n;
        for (const auto& name : metrics) {
            const Metric* m = table::find_metric(r, name);
            const bool is_best = name == primary && m && m->value && best && *m->value == *best;
            page.raw(is_best ? "<td class=\"num best\">" : "<td class=\"num\">");
            if (m) {
                leaderboard_cell(page, d, r, *m, alpha, any_mark);
                if (!n) {
                    n = m->n;
                }
            }
            page.raw("</td>");
        }
        page.raw("<td class=\"num\">" + (n ? std::to_string(*n) : std::string()) + "</td>");
        page.raw("</tr>\n");
    }
    page.raw("</tbody></table></div>\n");
}

// Segmentation: how the all-images Dice treats empty masks, and the Dice without that convention.
void segmentation_convention_note(Page& page, const TaskGroup& t) {
    const SegmentationConvention c = segmentation_convention(t);
    if (c.convention.empty()) {
        return;
    }
    page.raw("<p class=\"note\">Empty-mask convention of <b>dice</b>, <b>iou</b>, <b>hd95</b>: ");
    page.text(c.convention);
    page.raw(".");
    if (c.empty_truth) {
        page.raw(" " + std::to_string(*c.empty_truth) +
                 " test images have an empty ground-truth mask; an empty prediction scores Dice 1 "
                 "on them, which flatters a rare finding.");
    }
    if (c.n_positive) {
        page.raw(" <b>dice_positive</b> is the mean Dice over the " +
                 std::to_string(*c.n_positive) + " of " + std::to_string(c.n_scored.value_or(0)) +
                 " test images whose mask is non-empty: no convention enters it.");
    }
    page.raw("</p>\n");
}

void task_plots(Page& page, const ReportData& d, const TaskGroup& t) {
    for (const std::string metric : {"auroc", "dice", "dice_positive"}) {
        json values = metric_forest_values(d, t, metric);
        if (values.empty()) {
            continue;
        }
        const std::optional<double> ref =
            metric == "auroc" ? std::optional<double>(0.5) : std::nullopt;
        const std::string title = metric == "auroc"  ? "AUROC"
                                  : metric == "dice" ? "Dice (all test images)"
                                                     : "Dice over images with a non-empty mask";
        page.plot(forest_spec(title + " with 95% CI — " + t.task, metric, std::move(values), ref));
    }
    if (!t.roc.empty()) {
        page.plot(roc_spec(t));
    }
    if (!t.dice.empty()) {
        page.plot(dice_spec(t));
    }
}

// ---------------------------------------------------------------------------------------------
// Analyses
// ---------------------------------------------------------------------------------------------

// A table of analysis rows: one line each with value [CI], p and BH-adjusted p.
void analysis_table(Page& page, const std::vector<const AnalysisRow*>& rows,
                    const std::vector<std::string>& headers, double alpha) {
    page.raw("<div class=\"table-wrap\"><table><thead><tr>");
    for (const auto& h : headers) {
        page.raw("<th>");
        page.text(h);
        page.raw("</th>");
    }
    page.raw("<th>value [95% CI]</th><th>p</th><th>p (BH)</th></tr></thead><tbody>\n");
    for (const auto* r : rows) {
        page.raw("<tr>");
        for (const std::string* f : {&r->row_key, &r->row_key2, &r->column}) {
            page.cell(*f);
        }
        page.raw("<td class=\"num\">");
        page.text(value_cell(*r));
        p_cells(page, r->p, r->p_adjusted, alpha);
    }
    page.raw("</tbody></table></div>\n");
}

std::string run_title(const ReportData& d, const std::optional<std::int64_t>& run) {
    const std::string label = label_of(d, run);
    return label.empty() ? std::string() : " — " + label;
}

// The perturbation figures of one run: AUROC heat map, gain heat map, gains with CIs.
void perturb_run(Page& page, const ReportData& d, const std::optional<std::int64_t>& run,
                 const std::vector<const AnalysisRow*>& rows, double alpha) {
    std::vector<const AnalysisRow*> aucs, gains;
    for (const auto* r : rows) {
        (is_difference(r->column) ? gains : aucs).push_back(r);
    }
    page.raw("<div class=\"plots\">\n");
    if (!aucs.empty()) {
        page.plot(heatmap_spec(heatmap_values(aucs), "Probe AUROC per cell" + run_title(d, run),
                               0.5, 1.0, false, "AUROC"));
    }
    if (!gains.empty()) {
        page.plot(heatmap_spec(heatmap_values(gains),
                               "Gain of patch-local pooling" + run_title(d, run), -0.5, 0.5, true,
                               "AUROC gain"));
    }
    page.raw("</div>\n");
    if (!gains.empty()) {
        page.raw("<details><summary>Gains with CIs");
        page.text(run_title(d, run));
        page.raw("</summary>\n");
        analysis_table(page, gains, {"cell", "level", "comparison"}, alpha);
        page.raw("</details>\n");
    }
}

// The rows with a value, split into differences (tables) and the rest (forest points built
// by `point`, which may also drop a row by returning null).
template <typename Point>
std::vector<const AnalysisRow*> split_differences(const std::vector<const AnalysisRow*>& rows,
                                                  Point point) {
    std::vector<const AnalysisRow*> diffs;
    for (const auto* r : rows) {
        if (!r->value) {
            continue;
        }
        if (is_difference(r->row_key) || is_difference(r->row_key2)) {
            diffs.push_back(r);
            continue;
        }
        point(*r);
    }
    return diffs;
}

void lesion_run(Page& page, const ReportData& d, const std::optional<std::int64_t>& run,
                const std::vector<const AnalysisRow*>& rows, double alpha) {
    json image = json::array(), box = json::array();
    const auto diffs = split_differences(rows, [&](const AnalysisRow& r) {
        const bool is_image = r.row_key == "image";
        json v = forest_point(is_image ? r.row_key2 : r.row_key + " · " + r.row_key2, *r.value,
                              r.ci_lo, r.ci_hi);
        v["pooling"] = r.column;
        (is_image ? image : box).push_back(std::move(v));
    });
    page.raw("<div class=\"plots\">\n");
    if (!image.empty()) {
        page.plot(forest_spec("Image-level AUROC by lesion size" + run_title(d, run), "AUROC",
                              std::move(image), 0.5, "pooling"));
    }
    if (!box.empty()) {
        page.plot(forest_spec("Box-level patch-local AUROC and box jitter" + run_title(d, run),
                              "AUROC", std::move(box), 0.5));
    }
    page.raw("</div>\n");
    if (!diffs.empty()) {
        page.raw("<h3>Size gaps and jitter degradation");
        page.text(run_title(d, run));
        page.raw("</h3>\n");
        analysis_table(page, diffs, {"comparison", "stratum", "pooling"}, alpha);
    }
}

void shortcut_run(Page& page, const ReportData& d, const std::optional<std::int64_t>& run,
                  const std::vector<const AnalysisRow*>& rows, double alpha) {
    json values = json::array();
    const auto diffs = split_differences(rows, [&](const AnalysisRow& r) {
        json v = forest_point(r.row_key, *r.value, r.ci_lo, r.ci_hi);
        v["test subset"] = r.row_key2;
        values.push_back(std::move(v));
    });
    page.raw("<div class=\"plots\">\n");
    if (!values.empty()) {
        page.plot(
            forest_spec("Pneumothorax AUROC on the tube-balanced test set" + run_title(d, run),
                        "AUROC", std::move(values), 0.5, "test subset"));
    }
    page.raw("</div>\n");
    if (!diffs.empty()) {
        analysis_table(page, diffs, {"model", "comparison", "metric"}, alpha);
    }
}

// The gaps between subgroups; BH across all gap tests of the report where the DB has no
// adjusted p.
void subgroup_gaps_table(Page& page, const ReportData& d,
                         const std::vector<const AnalysisRow*>& gaps, double alpha) {
    std::vector<double> p;
    for (const auto* g : gaps) {
        p.push_back(g->p ? std::clamp(*g->p, 0.0, 1.0) : 1.0);
    }
    const std::vector<double> q = eval::benjamini_hochberg(p);
    page.raw(
        "<h3>Gaps</h3><div "
        "class=\"table-wrap\"><table><thead><tr><th>run</th><th>attribute</th><th>metric</th>"
        "<th>gap [95% CI]</th><th>p</th><th>p (BH)</th></tr></thead><tbody>\n");
    for (std::size_t i = 0; i < gaps.size(); ++i) {
        const AnalysisRow& g = *gaps[i];
        const std::optional<double> adj =
            g.p_adjusted ? g.p_adjusted : (g.p ? std::optional<double>(q[i]) : std::nullopt);
        page.raw("<tr>");
        page.cell(label_of(d, g.run));
        page.cell(g.row_key);
        page.cell(g.column);
        page.raw("<td class=\"num\">");
        page.text(value_cell(g));
        p_cells(page, g.p, adj, alpha);
    }
    page.raw("</tbody></table></div>\n");
}

// The shortcut alarm of a task: a warning box when raised, else a note with the numbers.
void shortcut_alarm_note(Page& page, const ReportData& d, const TaskGroup& t) {
    const auto it = d.shortcut_alarms.find(t.task);
    if (it == d.shortcut_alarms.end()) {
        return;
    }
    const results::ShortcutAlarm& a = it->second;
    if (a.alarm) {
        page.raw("<div class=\"alarm\" role=\"alert\"><b>\xE2\x9A\xA0 Shortcut alarm:</b> ");
        page.text(results::kShortcutAlarmText);
        page.raw(".<br>");
        page.text(results::shortcut_alarm_numbers(a) + ".");
        page.raw("</div>\n");
        return;
    }
    page.raw(
        "<p class=\"note\">Shortcut check: the random-feature control is significantly "
        "worse than the real encoders (");
    page.text(results::shortcut_alarm_numbers(a));
    page.raw(").</p>\n");
}

}  // namespace

void task_section(Page& page, const ReportData& d, const TaskGroup& t, std::size_t index,
                  double alpha) {
    page.raw("<section id=\"task-" + std::to_string(index) + "\"><h2>Task: ");
    page.text(t.task.empty() ? "(no task)" : t.task);
    page.raw("</h2>\n");
    shortcut_alarm_note(page, d, t);
    bool any_mark = false;
    for (const LeaderboardPart& part : leaderboard_parts(t)) {
        if (!part.title.empty()) {
            page.raw("<h3>");
            page.text(part.title);
            page.raw("</h3>\n");
        }
        leaderboard_table(page, d, part.rows, alpha, any_mark);
    }
    page.raw(
        "<p class=\"note\">Completed runs, best first by the first metric (bold = best). "
        "Intervals as recorded with each metric.");
    if (any_mark) {
        page.raw(
            " <sup class=\"sig\">*</sup> differs from the reference run after "
            "Benjamini–Hochberg correction (adjusted p &lt; " +
            table::format_number(alpha, 2) + "; hover for details).");
    }
    page.raw("</p>\n");
    segmentation_convention_note(page, t);
    page.raw("<div class=\"plots\">\n");
    task_plots(page, d, t);
    page.raw("</div></section>\n");
}

void perturb_section(Page& page, const ReportData& d, double alpha) {
    if (d.perturb.empty()) {
        return;
    }
    page.raw(
        "<section id=\"perturb\"><h2>Perturbation panel</h2>\n<p class=\"note\">Probe "
        "AUROC separating perturbed from clean images (cross-validated, pairs kept together), "
        "per perturbation cell (rows: kind, size in model patches <i>p</i> or pixels, contrast) "
        "and pooling (columns) from the same forward pass; colour clamped to [0.5, 1]. The gain "
        "map shows roi minus the global pooling with its paired-bootstrap CI; * = BH-adjusted "
        "p &lt; 0.05 across the grid.</p>\n");
    for (const auto& [run, rows] : rows_by_run(d.perturb)) {
        perturb_run(page, d, run, rows, alpha);
    }
    page.raw("</section>\n");
}

void lesion_section(Page& page, const ReportData& d, double alpha) {
    if (d.lesions.empty()) {
        return;
    }
    page.raw(
        "<section id=\"lesions\"><h2>Small lesions</h2>\n<p class=\"note\">Image-level "
        "AUROC per lesion-size stratum (positives of the stratum against all negatives; stratum "
        "= the image's largest box as a fraction of the image area) for the global poolings, "
        "and box-level patch-local AUROC (lesion box against a same-size lesion-free lung box), "
        "exact and with the boxes displaced by Gaussian jitter σ. Differences use a paired "
        "bootstrap over patients.</p>\n");
    for (const auto& [run, rows] : rows_by_run(d.lesions)) {
        lesion_run(page, d, run, rows, alpha);
    }
    page.raw("</section>\n");
}

void shortcut_section(Page& page, const ReportData& d, double alpha) {
    if (d.shortcut.empty()) {
        return;
    }
    page.raw(
        "<section id=\"shortcut\"><h2>Shortcut experiment</h2>\n<p class=\"note\">Probes "
        "trained where chest tubes co-occur with pneumothorax (φ &gt; 0) and on a control set "
        "without the coupling (φ = 0), tested on one tube-balanced set: AUROC of tube-free and "
        "tube positives against all negatives, and the drop on tube-free positives (control − "
        "shortcut, paired).</p>\n");
    for (const auto& [run, rows] : rows_by_run(d.shortcut)) {
        shortcut_run(page, d, run, rows, alpha);
    }
    page.raw("</section>\n");
}

void subgroup_section(Page& page, const ReportData& d, double alpha) {
    if (d.subgroups.empty()) {
        return;
    }
    page.raw(
        "<section id=\"subgroups\"><h2>Subgroups and shortcuts</h2>\n"
        "<p class=\"note\">Metric per subgroup with 95% CI, and the gap between subgroups "
        "(a large gap on a treatment sign such as a chest tube suggests a shortcut).</p>\n"
        "<div class=\"plots\">\n");
    std::map<std::string, json> levels_by_metric;
    std::map<std::string, json> gaps_by_metric;
    std::vector<const AnalysisRow*> gaps;
    for (const auto& r : d.subgroups) {
        if (!r.value) {
            continue;
        }
        const std::string row = r.run ? label_of(d, r.run) + " — " + r.row_key : r.row_key;
        json v = forest_point(row, *r.value, r.ci_lo, r.ci_hi);
        v["subgroup"] = r.row_key2;
        if (r.row_key2.rfind("gap", 0) == 0) {
            gaps_by_metric[r.column].push_back(std::move(v));
            gaps.push_back(&r);
        } else {
            levels_by_metric[r.column].push_back(std::move(v));
        }
    }
    for (auto& [metric, values] : levels_by_metric) {
        page.plot(forest_spec(metric + " per subgroup", metric, std::move(values), std::nullopt,
                              "subgroup"));
    }
    for (auto& [metric, values] : gaps_by_metric) {
        page.plot(forest_spec(metric + " gap between subgroups", metric + " gap", std::move(values),
                              0.0));
    }
    page.raw("</div>\n");
    if (!gaps.empty()) {
        subgroup_gaps_table(page, d, gaps, alpha);
    }
    page.raw("</section>\n");
}

void metadata_section(Page& page, const ReportData& d) {
    page.raw(
        "<section id=\"runs\"><h2>Runs</h2>\n<div "
        "class=\"table-wrap\"><table><thead><tr><th>id</th><th>status</th>"
        "<th>task</th><th>encoder</th><th>weights</th><th>adaptation</th><th>pooling</th>"
        "<th>layers</th><th>seed</th><th>created (UTC)</th><th>software</th>"
        "<th>config</th><th>notes</th></tr></thead><tbody>\n");
    for (const auto& r : d.all_runs) {
        const std::string status = to_string(r.status);
        page.raw("<tr><td class=\"num\">" + std::to_string(r.id) + "</td><td class=\"status-" +
                 status + "\">" + status + "</td>");
        page.cell(r.spec.task);
        page.cell(r.spec.encoder);
        page.raw("<td class=\"mono\">");
        page.text(r.spec.weights_hash.substr(0, 12));
        page.raw("</td>");
        for (const std::string* f : {&r.spec.adaptation, &r.spec.pooling, &r.spec.layers}) {
            page.cell(*f);
        }
        page.raw("<td class=\"num\">" + std::to_string(r.spec.seed) + "</td><td class=\"nowrap\">");
        page.text(r.created);
        page.raw("</td>");
        page.cell(r.spec.software_version);
        page.raw("<td><details><summary class=\"mono\">");
        page.text(r.spec.config_hash.substr(0, 12));
        page.raw("</summary><pre>");
        std::string pretty = r.spec.config_json;
        if (json::accept(pretty)) {
            pretty = json::parse(pretty).dump(2);
        }
        page.text(pretty);
        page.raw("</pre></details></td>");
        page.cell(r.spec.notes);
        page.raw("</tr>\n");
    }
    page.raw("</tbody></table></div></section>\n");
}

// ---------------------------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------------------------

namespace {

// A table cell: '|' escaped, line breaks flattened.
std::string md_cell(const std::string& s) {
    std::string out;
    for (char c : s) {
        out += c == '|' ? std::string("\\|") : (c == '\n' ? std::string(" ") : std::string(1, c));
    }
    return out;
}

// One line of an analysis table: run, keys, column, value [CI], p (and the BH p).
std::string md_analysis_line(const ReportData& d, const AnalysisRow& r, bool with_adjusted) {
    std::string line = "| " + md_cell(label_of(d, r.run)) + " | " + md_cell(r.row_key) + " | " +
                       md_cell(r.row_key2) + " | " + md_cell(r.column) + " | " + value_cell(r) +
                       " | " + table::format_number(r.p, 4) + " |";
    if (with_adjusted) {
        line += " " + table::format_number(r.p_adjusted, 4) + " |";
    }
    return line + "\n";
}

std::string md_runs(const ReportData& d) {
    std::string md =
        "## Runs\n\n| id | status | task | encoder | adaptation | pooling | layers | seed | "
        "created | software | config hash |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : d.all_runs) {
        md += "| " + std::to_string(r.id) + " | " + to_string(r.status) + " | " +
              md_cell(r.spec.task) + " | " + md_cell(r.spec.encoder) + " | " +
              md_cell(r.spec.adaptation) + " | " + md_cell(r.spec.pooling) + " | " +
              md_cell(r.spec.layers) + " | " + std::to_string(r.spec.seed) + " | " +
              md_cell(r.created) + " | " + md_cell(r.spec.software_version) + " | " +
              md_cell(r.spec.config_hash) + " |\n";
    }
    return md;
}

}  // namespace

std::string markdown_sections(const ReportData& d) {
    std::string md;
    for (const auto& t : d.tasks) {
        md += "## Task: " + (t.task.empty() ? std::string("(no task)") : t.task) + "\n\n";
        const auto alarm = d.shortcut_alarms.find(t.task);
        if (alarm != d.shortcut_alarms.end() && alarm->second.alarm) {
            md +=
                results::format_shortcut_alarms({alarm->second}, results::TableFormat::kMarkdown) +
                "\n";
        }
        for (const LeaderboardPart& part : leaderboard_parts(t)) {
            if (!part.title.empty()) {
                md += "### " + part.title + "\n\n";
            }
            md += results::format_leaderboard(part.rows, results::TableFormat::kMarkdown) + "\n";
        }
    }
    if (!d.subgroups.empty()) {
        md +=
            "## Subgroups\n\n| run | attribute | subgroup | metric | value [95% CI] | p |\n"
            "|---|---|---|---|---|---|\n";
        for (const auto& r : d.subgroups) {
            md += md_analysis_line(d, r, false);
        }
        md += "\n";
    }
    // Analysis tables (perturb, lesions, shortcut): one line per row, value [CI], p and BH p.
    const std::vector<std::pair<const std::vector<AnalysisRow>*, std::string>> analyses = {
        {&d.perturb, "## Perturbation panel\n\n| run | cell | level | pooling |"},
        {&d.lesions, "## Small lesions\n\n| run | row | stratum | pooling |"},
        {&d.shortcut, "## Shortcut experiment\n\n| run | model | test subset | metric |"}};
    for (const auto& [rows, head] : analyses) {
        if (rows->empty()) {
            continue;
        }
        md += head + " value [95% CI] | p | p (BH) |\n|---|---|---|---|---|---|---|\n";
        for (const auto& r : *rows) {
            md += md_analysis_line(d, r, true);
        }
        md += "\n";
    }
    return md + md_runs(d);
}

}  // namespace radprobe::report::detail
