// The report: one self-contained HTML page (Vega-Lite figures, Vega inlined) or Markdown tables.
//
// Safety: every string from the database reaches the page either through html_escape() (tables,
// headings) or as JSON data inside <script type="application/json"> made safe by
// json_for_script(); Vega draws text as SVG text nodes and vega-embed's tooltips escape HTML.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "radprobe/bench/results.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/version.hpp"
#include "radprobe/eval/metrics.hpp"
#include "tables.hpp"

#ifndef RADPROBE_VEGA_DIRS
#define RADPROBE_VEGA_DIRS ""
#endif

namespace radprobe::bench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kVegaFiles[] = {"vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js",
                                  "vega-embed/build/vega-embed.min.js"};

bool has_vega_files(const fs::path& dir) {
    for (const char* f : kVegaFiles) {
        if (!fs::is_regular_file(dir / f)) {
            return false;
        }
    }
    return true;
}

// A library inlined into <script>: the source map comment would make browsers fetch a file
// that is not there; a "</script" inside would end the element early.
std::string inline_script(const fs::path& file) {
    std::string js = read_file_text(file);
    const auto map_pos = js.rfind("//# sourceMappingURL=");
    if (map_pos != std::string::npos) {
        js.erase(map_pos);
    }
    std::string lower = js;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    RADPROBE_CHECK(
        lower.find("</script") == std::string::npos && lower.find("<!--") == std::string::npos,
        "file ", file.string(), ": contains '</script' or '<!--' and cannot be inlined");
    return js;
}

// ----------------------------------------------------------------------------------------------
// Data gathered once from the database
// ----------------------------------------------------------------------------------------------

struct TaskGroup {
    std::string task;
    std::vector<LeaderboardRow> rows;
};

struct ReportData {
    std::vector<TaskGroup> tasks;
    std::vector<RunRecord> all_runs;
    std::map<std::int64_t, std::string> labels;  // run id -> unique label
    std::map<std::int64_t, std::string> task_of;
    std::vector<AnalysisRow> perturb;
    std::vector<AnalysisRow> subgroups;
    std::vector<AnalysisRow> lesions;   // analysis "lesions" (radprobe analyze lesions)
    std::vector<AnalysisRow> shortcut;  // analysis "shortcut" (analyze subgroups --shortcut)
    // (run, metric) -> BH-adjusted p of the comparison, and what it was compared with.
    std::map<std::pair<std::int64_t, std::string>, std::pair<double, std::string>> comparisons;
};

ReportData gather(ResultsDb& db) {
    ReportData d;
    for (auto& g : detail::group_by_task(db.leaderboard())) {
        TaskGroup t;
        t.task = g.front().run.spec.task;
        t.rows = std::move(g);
        d.tasks.push_back(std::move(t));
    }
    RunFilter all;
    all.include_incomplete = true;
    d.all_runs = db.runs(all);
    // Labels unique within a task: "encoder · adaptation · pooling", then layers/seed/id.
    std::map<std::string, int> seen;
    for (const auto& r : d.all_runs) {
        ++seen[r.spec.task + '\x1f' + detail::run_label(r)];
    }
    for (const auto& r : d.all_runs) {
        std::string label = detail::run_label(r);
        if (seen[r.spec.task + '\x1f' + label] > 1) {
            label += " (run " + std::to_string(r.id) + ")";
        }
        d.labels[r.id] = label;
        d.task_of[r.id] = r.spec.task;
    }
    d.perturb = db.analysis("perturb");
    d.subgroups = db.analysis("subgroups");
    d.lesions = db.analysis("lesions");
    d.shortcut = db.analysis("shortcut");

    // FDR: one Benjamini–Hochberg family per (task, metric) for rows without p_adjusted.
    std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> families;
    const std::vector<AnalysisRow> comps = db.analysis("comparisons");
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
    return d;
}

std::string label_of(const ReportData& d, const std::optional<std::int64_t>& run) {
    if (!run) {
        return "";
    }
    auto it = d.labels.find(*run);
    return it == d.labels.end() ? "run " + std::to_string(*run) : it->second;
}

json opt_json(const std::optional<double>& v) {
    return (v && std::isfinite(*v)) ? json(*v) : json(nullptr);
}

// ----------------------------------------------------------------------------------------------
// Vega-Lite specifications
// ----------------------------------------------------------------------------------------------

const json kConfig = {
    {"font", "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"},
    {"axis", {{"labelFontSize", 11}, {"titleFontSize", 12}, {"gridColor", "#e8e8e8"}}},
    {"legend", {{"labelFontSize", 11}, {"titleFontSize", 12}, {"labelLimit", 360}}},
    {"title", {{"fontSize", 14}, {"anchor", "start"}}},
    {"view", {{"stroke", "#dddddd"}}}};

json base_spec(const std::string& title) {
    return {{"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
            {"title", title},
            {"config", kConfig}};
}

// Point + CI whiskers per row, rows sorted by value; `reference` draws a dashed vertical line.
json forest_spec(const std::string& title, const std::string& metric, json values,
                 std::optional<double> reference, const std::string& color_field = "") {
    const std::size_t rows = values.size();
    json spec = base_spec(title);
    spec["width"] = 560;
    spec["height"] = std::max<std::size_t>(60, rows * 26);
    spec["data"] = {{"values", std::move(values)}};
    const json y = {{"field", "label"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"sort", {{"field", "value"}, {"order", "descending"}}},
                    {"axis", {{"labelLimit", 360}}}};
    const json x_scale = {{"zero", false}, {"nice", true}};
    json rule = {
        {"mark", {{"type", "rule"}, {"strokeWidth", 2}}},
        {"encoding",
         {{"y", y},
          {"x",
           {{"field", "ci_lo"}, {"type", "quantitative"}, {"title", metric}, {"scale", x_scale}}},
          {"x2", {{"field", "ci_hi"}}}}}};
    json point = {
        {"mark", {{"type", "point"}, {"filled", true}, {"size", 70}}},
        {"encoding",
         {{"y", y},
          {"x", {{"field", "value"}, {"type", "quantitative"}}},
          {"tooltip",
           json::array({{{"field", "label"}, {"type", "nominal"}, {"title", "run"}},
                        {{"field", "value"}, {"type", "quantitative"}, {"format", ".3f"}},
                        {{"field", "ci_lo"}, {"type", "quantitative"}, {"format", ".3f"}},
                        {{"field", "ci_hi"}, {"type", "quantitative"}, {"format", ".3f"}}})}}}};
    if (!color_field.empty()) {
        const json color = {{"field", color_field}, {"type", "nominal"}, {"title", color_field}};
        rule["encoding"]["color"] = color;
        point["encoding"]["color"] = color;
        // Subgroup levels of one row side by side rather than on top of each other.
        rule["encoding"]["yOffset"] = {{"field", color_field}};
        point["encoding"]["yOffset"] = {{"field", color_field}};
    } else {
        rule["encoding"]["color"] = {{"value", "#4c78a8"}};
        point["encoding"]["color"] = {{"value", "#1f4e79"}};
    }
    json layers = json::array({rule, point});
    if (reference) {
        layers.insert(layers.begin(),
                      json{{"mark", {{"type", "rule"}, {"strokeDash", {4, 4}}, {"color", "#999"}}},
                           {"encoding", {{"x", {{"datum", *reference}}}}}});
    }
    spec["layer"] = std::move(layers);
    return spec;
}

json roc_spec(const std::string& task, json values) {
    json spec = base_spec("ROC curves — " + task);
    spec["width"] = 420;
    spec["height"] = 420;
    spec["data"] = {{"values", std::move(values)}};
    const json axis_scale = {{"domain", {0, 1}}};
    spec["layer"] =
        json::array({{{"data", {{"values", json::array({{{"a", 0}}, {{"a", 1}}})}}},
                      {"mark", {{"type", "line"}, {"strokeDash", {4, 4}}, {"color", "#999"}}},
                      {"encoding",
                       {{"x", {{"field", "a"}, {"type", "quantitative"}, {"scale", axis_scale}}},
                        {"y", {{"field", "a"}, {"type", "quantitative"}, {"scale", axis_scale}}}}}},
                     {{"mark", {{"type", "line"}, {"strokeWidth", 2}}},
                      {"encoding",
                       {{"x",
                         {{"field", "fpr"},
                          {"type", "quantitative"},
                          {"title", "1 − specificity (FPR)"},
                          {"scale", axis_scale}}},
                        {"y",
                         {{"field", "tpr"},
                          {"type", "quantitative"},
                          {"title", "sensitivity (TPR)"},
                          {"scale", axis_scale}}},
                        {"order", {{"field", "i"}, {"type", "quantitative"}}},
                        {"color",
                         {{"field", "label"},
                          {"type", "nominal"},
                          {"title", "run (AUROC)"},
                          {"legend", {{"orient", "right"}}}}}}}}});
    return spec;
}

json dice_spec(const std::string& task, json values, std::size_t runs) {
    json spec = base_spec("Per-image Dice — " + task);
    spec["width"] = 560;
    spec["height"] = std::max<std::size_t>(60, runs * 30);
    spec["data"] = {{"values", std::move(values)}};
    const json y = {{"field", "label"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"axis", {{"labelLimit", 360}}}};
    spec["layer"] = json::array(
        {{{"mark", {{"type", "tick"}, {"opacity", 0.35}, {"color", "#4c78a8"}}},
          {"encoding",
           {{"y", y},
            {"x",
             {{"field", "dice"},
              {"type", "quantitative"},
              {"title", "Dice"},
              {"scale", {{"domain", {0, 1}}}}}}}}},
         {{"mark",
           {{"type", "boxplot"},
            {"extent", "min-max"},
            {"size", 14},
            {"opacity", 0.6},
            {"color", "#f58518"}}},
          {"encoding",
           {{"y", y}, {"x", {{"field", "dice"}, {"type", "quantitative"}, {"title", "Dice"}}}}}}});
    return spec;
}

// A cell-by-column heat map with the value printed in each cell. AUROC maps use viridis on
// [0.5, 1]; differences (gains) a diverging scheme centred on 0.
json heatmap_spec(json values, const std::string& title, double lo, double hi, bool diverging,
                  const std::string& legend) {
    json spec = base_spec(title);
    spec["data"] = {{"values", std::move(values)}};
    spec["width"] = {{"step", 90}};
    spec["height"] = {{"step", 28}};
    const json x = {{"field", "column"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"sort", nullptr},
                    {"axis", {{"labelAngle", -30}, {"labelLimit", 220}, {"orient", "top"}}}};
    const json y = {{"field", "row"},
                    {"type", "nominal"},
                    {"title", nullptr},
                    {"sort", nullptr},
                    {"axis", {{"labelLimit", 260}}}};
    json scale = {{"domain", {lo, hi}}, {"clamp", true}};
    scale["scheme"] = diverging ? "redblue" : "viridis";
    if (diverging) {
        scale["reverse"] = true;  // gains (roi better) in blue, losses in red
        scale["domainMid"] = 0;
    }
    const json text_color =
        diverging ? json{{"value", "black"}}
                  : json{{"condition", {{"test", "datum.value > 0.8"}, {"value", "black"}}},
                         {"value", "white"}};
    spec["layer"] = json::array(
        {{{"mark", "rect"},
          {"encoding",
           {{"x", x},
            {"y", y},
            {"color",
             {{"field", "value"}, {"type", "quantitative"}, {"title", legend}, {"scale", scale}}},
            {"tooltip",
             json::array({{{"field", "row"}, {"type", "nominal"}},
                          {{"field", "column"}, {"type", "nominal"}},
                          {{"field", "value"}, {"type", "quantitative"}, {"format", ".3f"}},
                          {{"field", "ci_lo"}, {"type", "quantitative"}, {"format", ".3f"}},
                          {{"field", "ci_hi"}, {"type", "quantitative"}, {"format", ".3f"}},
                          {{"field", "p_adjusted"},
                           {"type", "quantitative"},
                           {"format", ".2g"},
                           {"title", "p (BH)"}}})}}}},
         {{"mark", {{"type", "text"}, {"fontSize", 11}}},
          {"encoding",
           {{"x", x},
            {"y", y},
            {"text",
             {{"field", "value"},
              {"type", "quantitative"},
              {"format", diverging ? "+.2f" : ".2f"}}},
            {"color", text_color}}}}});
    return spec;
}

// ----------------------------------------------------------------------------------------------
// HTML
// ----------------------------------------------------------------------------------------------

const char* const kStyle = R"css(
:root { --fg: #1d2330; --muted: #5b6473; --line: #dde1e7; --accent: #1f4e79; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: var(--accent); color: #fff; padding: 22px 40px 18px; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 600; }
header p { margin: 0; opacity: .85; font-size: 13px; }
nav { padding: 10px 40px; background: #fff; border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { color: var(--accent); margin-right: 18px; text-decoration: none; }
main { max-width: 1280px; padding: 10px 40px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 20px 0;
          padding: 16px 22px 20px; }
h2 { font-size: 18px; margin: 4px 0 12px; color: var(--accent); }
h3 { font-size: 15px; margin: 18px 0 8px; }
p.note { color: var(--muted); font-size: 12.5px; margin: 6px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: #eef1f5; font-weight: 600; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: 700; }
td.nowrap { white-space: nowrap; }
td.mono, code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
                font-size: 12px; }
sup.sig { color: #b22222; font-weight: 700; }
.plots { display: flex; flex-wrap: wrap; gap: 18px 36px; align-items: flex-start; }
.plot { min-height: 40px; }
.status-completed { color: #2e7d32; } .status-failed { color: #b22222; }
.status-running { color: #a66b00; }
details pre { max-width: 520px; white-space: pre-wrap; word-break: break-all; font-size: 11.5px;
              background: #f3f4f6; padding: 6px 8px; border-radius: 4px; }
.script-error { background: #fdecea; color: #8a1c1c; border: 1px solid #f5c2c0;
                padding: 8px 14px; margin: 12px 40px; border-radius: 4px; }
footer { color: var(--muted); font-size: 12px; padding: 0 40px 30px; }
)css";

// Runs before the libraries so that any failure (a library that does not load, a spec Vega
// rejects) becomes visible in the page and machine-checkable (#radprobe-errors).
const char* const kErrorHook = R"js(
(function () {
  function fail(message) {
    var box = document.getElementById('radprobe-errors');
    if (!box) {
      box = document.createElement('div');
      box.id = 'radprobe-errors';
      box.className = 'script-error';
      (document.body || document.documentElement).appendChild(box);
    }
    var line = document.createElement('p');
    line.textContent = 'Script error: ' + message;
    box.appendChild(line);
  }
  window.radprobeFail = fail;
  window.addEventListener('error', function (e) { fail(e.message || String(e)); });
  window.addEventListener('unhandledrejection', function (e) {
    fail(String((e.reason && e.reason.message) || e.reason));
  });
})();
)js";

const char* const kRender = R"js(
(function () {
  if (typeof vegaEmbed !== 'function') { radprobeFail('vega-embed did not load'); return; }
  var plots = JSON.parse(document.getElementById('radprobe-plots').textContent);
  var rendered = 0;
  Promise.all(plots.map(function (p) {
    return vegaEmbed('#' + p.id, p.spec, {renderer: 'svg', actions: false}).then(function () {
      rendered += 1;
    });
  })).then(function () {
    document.documentElement.setAttribute('data-plots-rendered', String(rendered));
  }).catch(function (e) { radprobeFail((e && e.message) || String(e)); });
})();
)js";

class Page {
public:
    std::string body;
    json plots = json::array();

    // A placeholder <div> for a Vega-Lite figure.
    void plot(json spec) {
        const std::string id = "plot-" + std::to_string(plots.size() + 1);
        plots.push_back({{"id", id}, {"spec", std::move(spec)}});
        body += "<div class=\"plot\" id=\"" + id + "\"></div>\n";
    }
    void text(const std::string& s) { body += html_escape(s); }
    void raw(const std::string& s) { body += s; }
};

void leaderboard_table(Page& page, const ReportData& d, const TaskGroup& t, double alpha,
                       bool& any_mark) {
    const std::vector<std::string> metrics = detail::metric_columns(t.rows);
    // Best value per metric, for emphasis (all metrics here are higher-is-better except losses;
    // mark only the primary one, whose direction is known).
    const std::string primary = metrics.empty() ? "" : metrics.front();
    std::optional<double> best;
    for (const auto& r : t.rows) {
        const Metric* m = detail::find_metric(r, primary);
        if (m && m->value && (!best || *m->value > *best)) {
            best = m->value;
        }
    }
    page.raw(
        "<table class=\"leaderboard\"><thead><tr><th>#</th><th>encoder</th>"
        "<th>adaptation</th><th>pooling</th><th>layers</th><th>seed</th>");
    for (const auto& m : metrics) {
        page.raw("<th>");
        page.text(m);
        page.raw(" [95% CI]</th>");
    }
    page.raw("<th>n</th></tr></thead><tbody>\n");
    int rank = 0;
    for (const auto& r : t.rows) {
        page.raw("<tr><td class=\"num\">" + std::to_string(++rank) + "</td>");
        for (const std::string* f : {&r.run.spec.encoder, &r.run.spec.adaptation,
                                     &r.run.spec.pooling, &r.run.spec.layers}) {
            page.raw("<td>");
            page.text(*f);
            page.raw("</td>");
        }
        page.raw("<td class=\"num\">" + std::to_string(r.run.spec.seed) + "</td>");
        std::optional<std::int64_t> n;
        for (const auto& name : metrics) {
            const Metric* m = detail::find_metric(r, name);
            const bool is_best = name == primary && m && m->value && best && *m->value == *best;
            page.raw(is_best ? "<td class=\"num best\">" : "<td class=\"num\">");
            if (m) {
                page.text(detail::metric_cell(*m));
                if (!n) {
                    n = m->n;
                }
                auto c = d.comparisons.find({r.run.id, name});
                if (c != d.comparisons.end() && c->second.first < alpha) {
                    any_mark = true;
                    page.raw("<sup class=\"sig\" title=\"");
                    page.text("differs from " + c->second.second +
                              ": BH-adjusted p = " + detail::format_number(c->second.first, 4));
                    page.raw("\">*</sup>");
                }
            }
            page.raw("</td>");
        }
        page.raw("<td class=\"num\">" + (n ? std::to_string(*n) : std::string()) + "</td>");
        page.raw("</tr>\n");
    }
    page.raw("</tbody></table>\n");
}

json forest_values(const ReportData& d, const TaskGroup& t, const std::string& metric) {
    json values = json::array();
    for (const auto& r : t.rows) {
        const Metric* m = detail::find_metric(r, metric);
        if (m && m->value) {
            values.push_back({{"label", d.labels.at(r.run.id)},
                              {"value", *m->value},
                              {"ci_lo", opt_json(m->ci_lo ? m->ci_lo : m->value)},
                              {"ci_hi", opt_json(m->ci_hi ? m->ci_hi : m->value)}});
        }
    }
    return values;
}

// Segmentation: how the all-images Dice treats empty masks, and the Dice without that convention.
void segmentation_convention_note(Page& page, const TaskGroup& t) {
    std::string convention;
    std::optional<std::int64_t> empty_truth, n_scored, n_positive;
    for (const auto& row : t.rows) {
        for (const auto& m : row.metrics) {
            if (m.extra_json.empty()) {
                continue;
            }
            const json x = json::parse(m.extra_json, nullptr, false);
            if (!x.is_object()) {
                continue;
            }
            if (m.name == "dice" && x.contains("empty_convention") && convention.empty()) {
                convention = x["empty_convention"].get<std::string>();
                if (x.contains("test_empty_truth")) {
                    empty_truth = x["test_empty_truth"].get<std::int64_t>();
                }
            }
            if (m.name == "dice_positive" && x.contains("n_positive") && !n_positive) {
                n_positive = x["n_positive"].get<std::int64_t>();
                n_scored = x["n_scored"].get<std::int64_t>();
            }
        }
    }
    if (convention.empty()) {
        return;
    }
    page.raw("<p class=\"note\">Empty-mask convention of <b>dice</b>, <b>iou</b>, <b>hd95</b>: ");
    page.text(convention);
    page.raw(".");
    if (empty_truth) {
        page.raw(" " + std::to_string(*empty_truth) +
                 " test images have an empty ground-truth mask; an empty prediction scores Dice 1 "
                 "on them, which flatters a rare finding.");
    }
    if (n_positive) {
        page.raw(" <b>dice_positive</b> is the mean Dice over the " + std::to_string(*n_positive) +
                 " of " + std::to_string(n_scored.value_or(0)) +
                 " test images whose mask is non-empty: no convention enters it.");
    }
    page.raw("</p>\n");
}

void task_section(Page& page, ResultsDb& db, const ReportData& d, const TaskGroup& t,
                  std::size_t index, double alpha) {
    page.raw("<section id=\"task-" + std::to_string(index) + "\"><h2>Task: ");
    page.text(t.task.empty() ? "(no task)" : t.task);
    page.raw("</h2>\n");
    bool any_mark = false;
    leaderboard_table(page, d, t, alpha, any_mark);
    page.raw(
        "<p class=\"note\">Completed runs, best first by the first metric (bold = best). "
        "Intervals as recorded with each metric.");
    if (any_mark) {
        page.raw(
            " <sup class=\"sig\">*</sup> differs from the reference run after "
            "Benjamini–Hochberg correction (adjusted p &lt; " +
            detail::format_number(alpha, 2) + "; hover for details).");
    }
    page.raw("</p>\n");
    segmentation_convention_note(page, t);
    page.raw("<div class=\"plots\">\n");

    for (const char* metric : {"auroc", "dice", "dice_positive"}) {
        json values = forest_values(d, t, metric);
        if (!values.empty()) {
            const std::optional<double> ref =
                std::string(metric) == "auroc" ? std::optional<double>(0.5) : std::nullopt;
            const std::string m = metric;
            const std::string title = m == "auroc"  ? "AUROC"
                                      : m == "dice" ? "Dice (all test images)"
                                                    : "Dice over images with a non-empty mask";
            page.plot(
                forest_spec(title + " with 95% CI — " + t.task, metric, std::move(values), ref));
        }
    }

    json roc = json::array();
    json dice = json::array();
    std::size_t dice_runs = 0;
    for (const auto& r : t.rows) {
        const std::vector<Prediction> preds = db.predictions(r.run.id);
        std::vector<double> labels;
        std::vector<double> scores;
        bool had_dice = false;
        for (const auto& p : preds) {
            if (p.label && p.score && (*p.label == 0.0 || *p.label == 1.0) &&
                std::isfinite(*p.score)) {
                labels.push_back(*p.label);
                scores.push_back(*p.score);
            }
            if (p.dice && std::isfinite(*p.dice)) {
                dice.push_back({{"label", d.labels.at(r.run.id)}, {"dice", *p.dice}});
                had_dice = true;
            }
        }
        dice_runs += had_dice;
        const auto counts = eval::count_classes(labels);
        if (counts.positives == 0 || counts.negatives == 0) {
            continue;
        }
        const std::vector<RocPoint> curve = roc_curve(labels, scores);
        const std::string label =
            d.labels.at(r.run.id) + " (" + detail::format_number(eval::auroc(labels, scores)) + ")";
        // At most ~300 points per curve: enough for a smooth line, keeps the page small.
        const std::size_t stride = std::max<std::size_t>(1, curve.size() / 300);
        for (std::size_t i = 0; i < curve.size(); ++i) {
            if (i % stride == 0 || i + 1 == curve.size()) {
                roc.push_back(
                    {{"label", label}, {"i", i}, {"fpr", curve[i].fpr}, {"tpr", curve[i].tpr}});
            }
        }
    }
    if (!roc.empty()) {
        page.plot(roc_spec(t.task, std::move(roc)));
    }
    if (!dice.empty()) {
        page.plot(dice_spec(t.task, std::move(dice), dice_runs));
    }
    page.raw("</div></section>\n");
}

// Rows of one run (or of no run), in insertion order, split by whether the column is a
// difference ("roi − cls", "box σ=5px − σ=0px").
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

// A table of analysis rows: one line each with value [CI], p and BH-adjusted p.
void analysis_table(Page& page, const std::vector<const AnalysisRow*>& rows,
                    const std::vector<std::string>& headers, double alpha) {
    page.raw("<table><thead><tr>");
    for (const auto& h : headers) {
        page.raw("<th>");
        page.text(h);
        page.raw("</th>");
    }
    page.raw("<th>value [95% CI]</th><th>p</th><th>p (BH)</th></tr></thead><tbody>\n");
    for (const auto* r : rows) {
        Metric m;
        m.value = r->value;
        m.ci_lo = r->ci_lo;
        m.ci_hi = r->ci_hi;
        page.raw("<tr>");
        for (const std::string* f : {&r->row_key, &r->row_key2, &r->column}) {
            page.raw("<td>");
            page.text(*f);
            page.raw("</td>");
        }
        page.raw("<td class=\"num\">");
        page.text(detail::metric_cell(m));
        page.raw("</td><td class=\"num\">" + detail::format_number(r->p, 4) +
                 "</td><td class=\"num\">" + detail::format_number(r->p_adjusted, 4));
        if (r->p_adjusted && *r->p_adjusted < alpha) {
            page.raw(" <sup class=\"sig\">*</sup>");
        }
        page.raw("</td></tr>\n");
    }
    page.raw("</tbody></table>\n");
}

std::string run_title(const ReportData& d, const std::optional<std::int64_t>& run) {
    const std::string label = label_of(d, run);
    return label.empty() ? std::string() : " — " + label;
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
        json auc = json::array(), gain = json::array();
        std::vector<const AnalysisRow*> gains;
        for (const auto* r : rows) {
            json v = {{"row", r->row_key2.empty() ? r->row_key : r->row_key + " · " + r->row_key2},
                      {"column", r->column},
                      {"value", opt_json(r->value)},
                      {"ci_lo", opt_json(r->ci_lo)},
                      {"ci_hi", opt_json(r->ci_hi)},
                      {"p_adjusted", opt_json(r->p_adjusted)}};
            if (is_difference(r->column)) {
                gain.push_back(std::move(v));
                gains.push_back(r);
            } else {
                auc.push_back(std::move(v));
            }
        }
        page.raw("<div class=\"plots\">\n");
        if (!auc.empty()) {
            page.plot(heatmap_spec(std::move(auc), "Probe AUROC per cell" + run_title(d, run), 0.5,
                                   1.0, false, "AUROC"));
        }
        if (!gain.empty()) {
            page.plot(heatmap_spec(std::move(gain),
                                   "Gain of patch-local pooling" + run_title(d, run), -0.5, 0.5,
                                   true, "AUROC gain"));
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
        json image = json::array(), box = json::array();
        std::vector<const AnalysisRow*> diffs;
        for (const auto* r : rows) {
            if (!r->value) {
                continue;
            }
            if (is_difference(r->row_key) || is_difference(r->row_key2)) {
                diffs.push_back(r);
                continue;
            }
            json v = {{"value", *r->value},
                      {"ci_lo", opt_json(r->ci_lo ? r->ci_lo : r->value)},
                      {"ci_hi", opt_json(r->ci_hi ? r->ci_hi : r->value)}};
            if (r->row_key == "image") {
                v["label"] = r->row_key2;
                v["pooling"] = r->column;
                image.push_back(std::move(v));
            } else {
                v["label"] = r->row_key + " · " + r->row_key2;
                v["pooling"] = r->column;
                box.push_back(std::move(v));
            }
        }
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
        json values = json::array();
        std::vector<const AnalysisRow*> diffs;
        for (const auto* r : rows) {
            if (!r->value) {
                continue;
            }
            if (is_difference(r->row_key) || is_difference(r->row_key2)) {
                diffs.push_back(r);
                continue;
            }
            values.push_back({{"label", r->row_key},
                              {"value", *r->value},
                              {"ci_lo", opt_json(r->ci_lo ? r->ci_lo : r->value)},
                              {"ci_hi", opt_json(r->ci_hi ? r->ci_hi : r->value)},
                              {"test subset", r->row_key2}});
        }
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
        std::string row = r.row_key;
        if (r.run) {
            row = label_of(d, r.run) + " — " + row;
        }
        json v = {{"label", row},
                  {"value", *r.value},
                  {"ci_lo", opt_json(r.ci_lo ? r.ci_lo : r.value)},
                  {"ci_hi", opt_json(r.ci_hi ? r.ci_hi : r.value)},
                  {"subgroup", r.row_key2}};
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
        // BH across all gap tests of the report when the DB has no adjusted p.
        std::vector<double> p;
        for (const auto* g : gaps) {
            p.push_back(g->p ? std::clamp(*g->p, 0.0, 1.0) : 1.0);
        }
        const std::vector<double> q = eval::benjamini_hochberg(p);
        page.raw(
            "<h3>Gaps</h3><table><thead><tr><th>run</th><th>attribute</th><th>metric</th>"
            "<th>gap [95% CI]</th><th>p</th><th>p (BH)</th></tr></thead><tbody>\n");
        for (std::size_t i = 0; i < gaps.size(); ++i) {
            const AnalysisRow& g = *gaps[i];
            Metric m;
            m.value = g.value;
            m.ci_lo = g.ci_lo;
            m.ci_hi = g.ci_hi;
            const std::optional<double> adj =
                g.p_adjusted ? g.p_adjusted : (g.p ? std::optional<double>(q[i]) : std::nullopt);
            page.raw("<tr><td>");
            page.text(label_of(d, g.run));
            page.raw("</td><td>");
            page.text(g.row_key);
            page.raw("</td><td>");
            page.text(g.column);
            page.raw("</td><td class=\"num\">");
            page.text(detail::metric_cell(m));
            page.raw("</td><td class=\"num\">" + detail::format_number(g.p, 4) +
                     "</td><td class=\"num\">" + detail::format_number(adj, 4));
            if (adj && *adj < alpha) {
                page.raw(" <sup class=\"sig\">*</sup>");
            }
            page.raw("</td></tr>\n");
        }
        page.raw("</tbody></table>\n");
    }
    page.raw("</section>\n");
}

void metadata_section(Page& page, const ReportData& d) {
    page.raw(
        "<section id=\"runs\"><h2>Runs</h2>\n<table><thead><tr><th>id</th><th>status</th>"
        "<th>task</th><th>encoder</th><th>weights</th><th>adaptation</th><th>pooling</th>"
        "<th>layers</th><th>seed</th><th>created (UTC)</th><th>software</th>"
        "<th>config</th><th>notes</th></tr></thead><tbody>\n");
    for (const auto& r : d.all_runs) {
        const std::string status = to_string(r.status);
        page.raw("<tr><td class=\"num\">" + std::to_string(r.id) + "</td><td class=\"status-" +
                 status + "\">" + status + "</td>");
        for (const std::string* f : {&r.spec.task, &r.spec.encoder}) {
            page.raw("<td>");
            page.text(*f);
            page.raw("</td>");
        }
        page.raw("<td class=\"mono\">");
        page.text(r.spec.weights_hash.substr(0, 12));
        page.raw("</td>");
        for (const std::string* f : {&r.spec.adaptation, &r.spec.pooling, &r.spec.layers}) {
            page.raw("<td>");
            page.text(*f);
            page.raw("</td>");
        }
        page.raw("<td class=\"num\">" + std::to_string(r.spec.seed) + "</td><td class=\"nowrap\">");
        page.text(r.created);
        page.raw("</td><td>");
        page.text(r.spec.software_version);
        page.raw("</td><td><details><summary class=\"mono\">");
        page.text(r.spec.config_hash.substr(0, 12));
        page.raw("</summary><pre>");
        std::string pretty = r.spec.config_json;
        if (json::accept(pretty)) {
            pretty = json::parse(pretty).dump(2);
        }
        page.text(pretty);
        page.raw("</pre></details></td><td>");
        page.text(r.spec.notes);
        page.raw("</td></tr>\n");
    }
    page.raw("</tbody></table></section>\n");
}

}  // namespace

std::string html_escape(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string json_for_script(const std::string& json_text) {
    std::string out;
    out.reserve(json_text.size());
    for (char c : json_text) {
        switch (c) {
            case '<':
                out += "\\u003c";
                break;
            case '>':
                out += "\\u003e";
                break;
            case '&':
                out += "\\u0026";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::vector<RocPoint> roc_curve(std::span<const double> labels, std::span<const double> scores) {
    eval::check_binary_inputs(labels, scores, "roc_curve");
    const auto counts = eval::count_classes(labels);
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

fs::path find_vega_dir() {
    std::vector<fs::path> candidates;
    if (const char* env = std::getenv("RADPROBE_VEGA_DIR"); env && *env) {
        RADPROBE_CHECK(has_vega_files(env), "RADPROBE_VEGA_DIR=", env,
                       ": does not hold vega/build/vega.min.js, vega-lite/build/vega-lite.min.js "
                       "and vega-embed/build/vega-embed.min.js");
        return env;
    }
    const std::string configured = RADPROBE_VEGA_DIRS;
    std::string looked;
    std::size_t start = 0;
    while (start <= configured.size()) {
        const std::size_t end = std::min(configured.find('|', start), configured.size());
        const std::string dir = configured.substr(start, end - start);
        if (!dir.empty()) {
            if (has_vega_files(dir)) {
                return dir;
            }
            looked += (looked.empty() ? "" : ", ") + dir;
        }
        start = end + 1;
    }
    RADPROBE_CHECK(false,
                   "the report needs Vega's JavaScript (vega, vega-lite, vega-embed), not "
                   "found in ",
                   looked.empty() ? std::string("(no folder configured)") : looked,
                   ": run scripts/setup.sh, or set RADPROBE_VEGA_DIR to a node_modules folder "
                   "holding them (npm install vega@5 vega-lite@5 vega-embed@6)");
    return {};
}

std::string render_report_html(ResultsDb& db, const ReportOptions& options) {
    const fs::path vega = options.vega_dir.empty() ? find_vega_dir() : options.vega_dir;
    RADPROBE_CHECK(has_vega_files(vega), "Vega folder ", vega.string(),
                   ": does not hold vega, vega-lite and vega-embed builds");
    const ReportData d = gather(db);

    Page page;
    page.raw("<nav>");
    for (std::size_t i = 0; i < d.tasks.size(); ++i) {
        page.raw("<a href=\"#task-" + std::to_string(i) + "\">");
        page.text(d.tasks[i].task.empty() ? "(no task)" : d.tasks[i].task);
        page.raw("</a>");
    }
    if (!d.perturb.empty()) {
        page.raw("<a href=\"#perturb\">Perturbation panel</a>");
    }
    if (!d.lesions.empty()) {
        page.raw("<a href=\"#lesions\">Small lesions</a>");
    }
    if (!d.subgroups.empty()) {
        page.raw("<a href=\"#subgroups\">Subgroups</a>");
    }
    if (!d.shortcut.empty()) {
        page.raw("<a href=\"#shortcut\">Shortcut</a>");
    }
    page.raw("<a href=\"#runs\">Runs</a></nav>\n<main>\n");
    if (d.tasks.empty()) {
        page.raw(
            "<section><h2>No completed runs</h2><p class=\"note\">The database holds no "
            "completed run yet.</p></section>\n");
    }
    for (std::size_t i = 0; i < d.tasks.size(); ++i) {
        task_section(page, db, d, d.tasks[i], i, options.alpha);
    }
    perturb_section(page, d, options.alpha);
    lesion_section(page, d, options.alpha);
    subgroup_section(page, d, options.alpha);
    shortcut_section(page, d, options.alpha);
    metadata_section(page, d);
    page.raw("</main>\n");

    std::size_t completed = 0;
    for (const auto& r : d.all_runs) {
        completed += r.status == RunStatus::kCompleted;
    }
    std::string html =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"generator\" content=\"radprobe " +
        html_escape(version()) + "\">\n<title>" + html_escape(options.title) + "</title>\n<style>" +
        kStyle + "</style>\n<script>" + kErrorHook + "</script>\n";
    for (const char* f : kVegaFiles) {
        html += "<script>\n" + inline_script(vega / f) + "\n</script>\n";
    }
    html += "</head>\n<body>\n<header><h1>" + html_escape(options.title) + "</h1><p>" +
            html_escape(db.path().filename().string()) + " · " + std::to_string(completed) +
            " completed of " + std::to_string(d.all_runs.size()) + " runs · " +
            std::to_string(d.tasks.size()) + " tasks · radprobe " + html_escape(version()) + " (" +
            html_escape(git_describe()) + ")</p></header>\n";
    html += page.body;
    html +=
        "<footer>Generated by radprobe. Figures drawn with Vega-Lite; the page needs no "
        "network.</footer>\n";
    html += "<script type=\"application/json\" id=\"radprobe-plots\">" +
            json_for_script(page.plots.dump()) + "</script>\n<script>" + kRender +
            "</script>\n</body>\n</html>\n";
    return html;
}

std::string render_report_markdown(ResultsDb& db, const ReportOptions& options) {
    const ReportData d = gather(db);
    std::string md = "# " + options.title + "\n\n";
    for (const auto& t : d.tasks) {
        md += "## Task: " + (t.task.empty() ? std::string("(no task)") : t.task) + "\n\n";
        md += format_leaderboard(t.rows, TableFormat::kMarkdown) + "\n";
    }
    auto cell = [](std::string s) {
        std::string out;
        for (char c : s) {
            out +=
                c == '|' ? std::string("\\|") : (c == '\n' ? std::string(" ") : std::string(1, c));
        }
        return out;
    };
    if (!d.subgroups.empty()) {
        md +=
            "## Subgroups\n\n| run | attribute | subgroup | metric | value [95% CI] | p |\n"
            "|---|---|---|---|---|---|\n";
        for (const auto& r : d.subgroups) {
            Metric m;
            m.value = r.value;
            m.ci_lo = r.ci_lo;
            m.ci_hi = r.ci_hi;
            md += "| " + cell(label_of(d, r.run)) + " | " + cell(r.row_key) + " | " +
                  cell(r.row_key2) + " | " + cell(r.column) + " | " + detail::metric_cell(m) +
                  " | " + detail::format_number(r.p, 4) + " |\n";
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
            Metric m;
            m.value = r.value;
            m.ci_lo = r.ci_lo;
            m.ci_hi = r.ci_hi;
            md += "| " + cell(label_of(d, r.run)) + " | " + cell(r.row_key) + " | " +
                  cell(r.row_key2) + " | " + cell(r.column) + " | " + detail::metric_cell(m) +
                  " | " + detail::format_number(r.p, 4) + " | " +
                  detail::format_number(r.p_adjusted, 4) + " |\n";
        }
        md += "\n";
    }
    md +=
        "## Runs\n\n| id | status | task | encoder | adaptation | pooling | layers | seed | "
        "created | software | config hash |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : d.all_runs) {
        md += "| " + std::to_string(r.id) + " | " + to_string(r.status) + " | " +
              cell(r.spec.task) + " | " + cell(r.spec.encoder) + " | " + cell(r.spec.adaptation) +
              " | " + cell(r.spec.pooling) + " | " + cell(r.spec.layers) + " | " +
              std::to_string(r.spec.seed) + " | " + cell(r.created) + " | " +
              cell(r.spec.software_version) + " | " + cell(r.spec.config_hash) + " |\n";
    }
    return md;
}

}  // namespace radprobe::bench
