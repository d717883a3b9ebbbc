// radprobe report DB --out report.html [--format html|md|csv] [--title T] [--vega-dir DIR]
//   html: one self-contained page (figures with Vega-Lite, inlined; opens offline);
//   md: Markdown tables; csv: the leaderboard. Written atomically.

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/report/report.hpp"

namespace radprobe::cli {

Runner setup_report(CLI::App& app) {
    struct Options {
        std::string db;
        std::string out;
        std::string format = "html";
        std::string title = "radprobe report";
        std::string vega_dir;
        double alpha = 0.05;
    };
    auto opt = std::make_shared<Options>();
    app.add_option("DB", opt->db, "results database (.sqlite) written by radprobe run / demo")
        ->required();
    app.add_option("--out", opt->out, "output file (report.html, report.md or leaderboard.csv)")
        ->required();
    app.add_option("--format", opt->format, "html | md | csv")
        ->check(CLI::IsMember({"html", "md", "csv"}))
        ->capture_default_str();
    app.add_option("--title", opt->title, "title of the report")->capture_default_str();
    app.add_option("--vega-dir", opt->vega_dir,
                   "node_modules folder with vega, vega-lite and vega-embed (default: "
                   "$RADPROBE_VEGA_DIR, else where scripts/setup.sh installs them)");
    app.add_option("--alpha", opt->alpha, "significance level after FDR correction, in (0, 1)")
        ->capture_default_str();
    return [opt]() -> int {
        RADPROBE_USAGE_CHECK(opt->alpha > 0.0 && opt->alpha < 1.0,
                             "--alpha must lie in (0, 1), got ", opt->alpha);
        report::ReportOptions options;
        options.title = opt->title;
        options.vega_dir = opt->vega_dir;
        options.alpha = opt->alpha;
        if (opt->format == "html" && options.vega_dir.empty()) {
            options.vega_dir = report::find_vega_dir();  // fail before reading the database
        }
        ensure_writable_dir(std::filesystem::path(opt->out).parent_path(), "report folder");
        results::ResultsDb db = results::ResultsDb::open_existing(opt->db);
        std::string text;
        if (opt->format == "html") {
            text = report::render_report_html(db, options);
        } else if (opt->format == "md") {
            text = report::render_report_markdown(db, options);
        } else {
            text = results::format_leaderboard(db.leaderboard(), results::TableFormat::kCsv);
        }
        write_file_atomic(opt->out, text);
        std::fprintf(stderr, "radprobe report: wrote %s\n", opt->out.c_str());
        return 0;
    };
}

}  // namespace radprobe::cli
