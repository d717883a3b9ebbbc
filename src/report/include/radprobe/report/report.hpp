#pragma once
/// @file report.hpp
/// The report of a results database (`radprobe report`): one self-contained HTML page (Vega
/// charts inlined) or Markdown tables.

#include <filesystem>
#include <string>

#include "radprobe/results/results.hpp"

namespace radprobe::report {

using results::ResultsDb;

// ---------------------------------------------------------------------------------------------
// Report (`radprobe report`)
// ---------------------------------------------------------------------------------------------

struct ReportOptions {
    std::string title = "radprobe report";
    /// Folder holding node_modules-style `vega/build/vega.min.js`, `vega-lite/build/...`,
    /// `vega-embed/build/...`; empty = find_vega_dir().
    std::filesystem::path vega_dir;
    double alpha = 0.05;  ///< significance level after FDR
};

/// The Vega JavaScript folder: $RADPROBE_VEGA_DIR, else the folders configured at build time
/// (build/npm/node_modules of the source tree, npm/node_modules of the build tree). Throws
/// InputError listing where it looked and how to install the files (scripts/setup.sh).
std::filesystem::path find_vega_dir();

/// One self-contained HTML page (Vega, Vega-Lite and vega-embed inlined; opens offline).
/// Every string from the database is escaped (HTML text, and JSON inside <script>).
std::string render_report_html(ResultsDb& db, const ReportOptions& options);
/// Markdown tables: leaderboard per task, subgroup gaps, run metadata.
std::string render_report_markdown(ResultsDb& db, const ReportOptions& options);

/// HTML-escapes & < > " ' (exposed for tests).
std::string html_escape(const std::string& text);
/// JSON text made safe inside an HTML <script> element: '<', '>' and '&' become \u003c,
/// \u003e, \u0026 (valid JSON escapes, so JSON.parse gives back the same strings).
std::string json_for_script(const std::string& json_text);

}  // namespace radprobe::report
