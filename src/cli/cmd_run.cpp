// radprobe run CONFIG.yaml [--dry-run] [--threads N] [--quiet]
//   The main job on the user's data and models: the config (docs/config.md) is validated
//   completely, then the grid runs into the results database (re-runs skip what is there; a
//   killed run resumes), then the report is written. Exit 1 if any run failed.

#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/experiment/experiment.hpp"

namespace radprobe::cli {

Runner setup_run(CLI::App& app) {
    struct Options {
        std::string config;
        bool dry_run = false;
        int threads = 0;
        bool quiet = false;
    };
    auto opt = std::make_shared<Options>();
    app.add_option("CONFIG", opt->config, "experiment config (YAML; see docs/config.md)")
        ->required();
    app.add_flag("--dry-run", opt->dry_run,
                 "validate the config and print the plan (what runs, what is cached, rough "
                 "cost) without running anything");
    app.add_option("--threads", opt->threads, "threads (0 = cores available)")
        ->capture_default_str();
    app.add_flag("--quiet", opt->quiet, "no progress lines");
    return [opt]() -> int {
        RADPROBE_USAGE_CHECK(opt->threads >= 0 && opt->threads <= 1024,
                             "--threads must be in 0..1024, got ", opt->threads);
        const experiment::ExperimentConfig config = experiment::load_experiment_config(opt->config);
        if (opt->dry_run) {
            std::optional<results::ResultsDb> db;
            if (std::filesystem::exists(config.output.db)) {
                db.emplace(results::ResultsDb::open_existing(config.output.db));
            }
            const experiment::Plan plan = experiment::make_plan(config, db ? &*db : nullptr);
            std::printf("%s: config valid; results database %s%s\n", opt->config.c_str(),
                        config.output.db.string().c_str(), db ? "" : " (not created yet)");
            const std::string text = experiment::format_plan(plan);
            std::fwrite(text.data(), 1, text.size(), stdout);
            return 0;
        }
        experiment::RunnerOptions ro;
        ro.threads = opt->threads;
        ro.progress = !opt->quiet;
        const experiment::RunnerSummary s = experiment::run_experiment(config, ro);
        if (s.failed > 0) {
            std::fprintf(stderr,
                         "radprobe run: %zu of %zu runs failed (first: %s); see runs.notes in %s\n",
                         s.failed, s.failed + s.completed + s.skipped, s.failures.front().c_str(),
                         s.db.string().c_str());
            return 1;
        }
        return 0;
    };
}

}  // namespace radprobe::cli
