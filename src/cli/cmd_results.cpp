// radprobe results DB [--task T] [--model M] [--format table|csv|json|md]
//   The leaderboard of a results database: completed runs × metrics with confidence intervals,
//   on stdout, then a WARNING line per task with a shortcut alarm (on stderr for csv / json).

#include <algorithm>
#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/results/results.hpp"

namespace radprobe::cli {

Runner setup_results(CLI::App& app) {
    struct Options {
        std::string db;
        std::string task;
        std::string model;
        std::string format = "table";
        bool all = false;
    };
    auto opt = std::make_shared<Options>();
    app.add_option("DB", opt->db, "results database (.sqlite) written by radprobe run / demo")
        ->required();
    app.add_option("--task", opt->task, "only runs of this task");
    app.add_option("--model", opt->model, "only runs of this encoder");
    app.add_option("--format", opt->format, "table | csv | json | md")
        ->check(CLI::IsMember({"table", "csv", "json", "md"}))
        ->capture_default_str();
    return [opt]() -> int {
        const results::TableFormat format = results::parse_table_format(opt->format);
        results::ResultsDb db = results::ResultsDb::open_existing(opt->db);
        results::RunFilter filter;
        filter.task = opt->task;
        filter.encoder = opt->model;
        const auto rows = db.leaderboard(filter);
        const std::string text = results::format_leaderboard(rows, format);
        std::fwrite(text.data(), 1, text.size(), stdout);
        // Shortcut alarms of the tasks shown: after the table, or on stderr when stdout is
        // machine-read (csv, json).
        std::vector<results::ShortcutAlarm> alarms;
        for (auto& a : results::read_shortcut_alarms(db)) {
            const bool shown = std::any_of(
                rows.begin(), rows.end(), [&](const auto& r) { return r.run.spec.task == a.task; });
            if (shown) {
                alarms.push_back(std::move(a));
            }
        }
        const bool to_stdout =
            format == results::TableFormat::kTable || format == results::TableFormat::kMarkdown;
        const std::string warnings = results::format_shortcut_alarms(alarms, format);
        if (!warnings.empty()) {
            const std::string block = to_stdout ? "\n" + warnings : warnings;
            std::fwrite(block.data(), 1, block.size(), to_stdout ? stdout : stderr);
        }
        return 0;
    };
}

}  // namespace radprobe::cli
