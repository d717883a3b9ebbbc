// The report: one self-contained HTML page (Vega-Lite figures, Vega inlined) or Markdown tables.
// This file assembles the page around the sections (sections.cpp), which draw on the report
// data (report_data.cpp) and the chart specifications (charts.cpp).
//
// Safety: every string from the database reaches the page either through html_escape() (tables,
// headings) or as JSON data inside <script type="application/json"> made safe by
// json_for_script(); Vega draws text as SVG text nodes and vega-embed's tooltips escape HTML.

#include <algorithm>
#include <cstdlib>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/version.hpp"
#include "report_internal.hpp"

#ifndef RADPROBE_VEGA_DIRS
#define RADPROBE_VEGA_DIRS ""
#endif

namespace radprobe::report {

namespace fs = std::filesystem;
using detail::Page;
using detail::ReportData;

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
.table-wrap { max-width: 100%; overflow-x: auto; }
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
div.alarm { background: #fdecea; color: #8a1c1c; border: 1px solid #f5c2c0; border-left: 5px solid
            #b22222; padding: 10px 14px; margin: 6px 0 12px; border-radius: 4px; }
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

// Renders every figure; figures with a "umap" block are drawn after the others, one at a time,
// once umap-js has computed their coordinates (seeded: mulberry32 from the recorded seed). The
// coordinates are also left on the figure's element (data-umap) for tests.
const char* const kRender = R"js(
(function () {
  if (typeof vegaEmbed !== 'function') { radprobeFail('vega-embed did not load'); return; }
  var plots = JSON.parse(document.getElementById('radprobe-plots').textContent);
  var rendered = 0;
  function mulberry32(a) {
    return function () {
      a = (a + 0x6D2B79F5) | 0;
      var t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function embed(p) {
    return vegaEmbed('#' + p.id, p.spec, {renderer: 'svg', actions: false}).then(function () {
      rendered += 1;
    });
  }
  function umapSpec(p) {
    var Umap = window.UMAP && (window.UMAP.UMAP || window.UMAP);
    if (typeof Umap !== 'function') { throw new Error('umap-js did not load'); }
    var u = p.umap;
    var coords = new Umap({nComponents: 2, nNeighbors: u.n_neighbors, minDist: u.min_dist,
                           random: mulberry32(u.seed)}).fit(u.input);
    var el = document.getElementById(p.id);
    el.textContent = '';
    el.setAttribute('data-umap', JSON.stringify(coords.map(function (c) {
      return [Math.round(c[0] * 1e4) / 1e4, Math.round(c[1] * 1e4) / 1e4];
    })));
    p.spec.data.values.forEach(function (v) { v.u1 = coords[v.row][0]; v.u2 = coords[v.row][1]; });
    return p.spec;
  }
  var now = plots.filter(function (p) { return !p.umap; });
  var later = plots.filter(function (p) { return p.umap; });
  Promise.all(now.map(embed)).then(function () {
    return later.reduce(function (chain, p) {
      return chain.then(function () {
        return new Promise(function (done) { setTimeout(done, 0); });
      }).then(function () { return embed({id: p.id, spec: umapSpec(p)}); });
    }, Promise.resolve());
  }).then(function () {
    document.documentElement.setAttribute('data-plots-rendered', String(rendered));
  }).catch(function (e) { radprobeFail((e && e.message) || String(e)); });
})();
)js";

// umap-js (npm, installed beside Vega by scripts/setup.sh): its browser bundle.
const char* const kUmapFile = "umap-js/lib/umap-js.min.js";

// The navigation bar: one link per task and per analysis present.
void navigation(Page& page, const ReportData& d) {
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
    if (detail::has_embedding_map(d)) {
        page.raw("<a href=\"#embedding-map\">Embedding maps</a>");
    }
    page.raw("<a href=\"#runs\">Runs</a></nav>\n");
}

// <head> with the style, the error hook and the Vega libraries inlined, and the page header.
std::string page_head(const ResultsDb& db, const ReportData& d, const ReportOptions& options,
                      const fs::path& vega) {
    std::size_t completed = 0;
    for (const auto& r : d.all_runs) {
        completed += r.status == results::RunStatus::kCompleted;
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
    return html;
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
    const ReportData d = detail::gather(db, true);

    Page page;
    navigation(page, d);
    page.raw("<main>\n");
    if (d.tasks.empty()) {
        page.raw(
            "<section><h2>No completed runs</h2><p class=\"note\">The database holds no "
            "completed run yet.</p></section>\n");
    }
    for (std::size_t i = 0; i < d.tasks.size(); ++i) {
        detail::task_section(page, d, d.tasks[i], i, options.alpha);
    }
    detail::perturb_section(page, d, options.alpha);
    detail::lesion_section(page, d, options.alpha);
    detail::subgroup_section(page, d, options.alpha);
    detail::shortcut_section(page, d, options.alpha);
    const bool umap = fs::is_regular_file(vega / kUmapFile);
    detail::embedding_map_section(page, d, umap);
    detail::metadata_section(page, d);
    page.raw("</main>\n");

    std::string html = page_head(db, d, options, vega) + page.body;
    html +=
        "<footer>Generated by radprobe. Figures drawn with Vega-Lite; the page needs no "
        "network.</footer>\n";
    const bool has_umap = std::any_of(page.plots.begin(), page.plots.end(),
                                      [](const auto& p) { return p.contains("umap"); });
    if (has_umap) {
        html += "<script>\n" + inline_script(vega / kUmapFile) + "\n</script>\n";
    }
    // Text from the database that is not UTF-8 (a foreign or damaged file) is drawn with U+FFFD
    // rather than failing the report (found by fuzz/report_sqlite).
    const std::string plots =
        page.plots.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    html += "<script type=\"application/json\" id=\"radprobe-plots\">" + json_for_script(plots) +
            "</script>\n<script>" + kRender + "</script>\n</body>\n</html>\n";
    return html;
}

std::string render_report_markdown(ResultsDb& db, const ReportOptions& options) {
    const ReportData d = detail::gather(db, false);
    return "# " + options.title + "\n\n" + detail::markdown_sections(d);
}

}  // namespace radprobe::report
