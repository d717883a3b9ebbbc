// radprobe run CONFIG.yaml [--dry-run] [--threads N] [--quiet]
//              [--stage all|extract|cells|merge [--slice I/N]]
//              [--slurm [--partition P] [--gpus-per-task G] [--cpus-per-task C] [--max-tasks N]
//                       [--time T] [--images-per-second [ENCODER=]R ...]]
//   The main job on the user's data and models: the config (docs/config.md) is validated
//   completely, then the grid runs into the results database (re-runs skip what is there; a
//   killed run resumes), then the report is written. Exit 1 if any run failed. --stage runs one
//   part of the study (an array task of a cluster); --slurm writes and submits the whole study as
//   Slurm array jobs (with --dry-run: the plan and its cost only).

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/experiment/experiment.hpp"

namespace radprobe::cli {

namespace {

struct RunArgs {
    std::string config, stage = "all", slice, partition, time;
    bool dry_run = false, quiet = false, slurm = false;
    int threads = 0, gpus_per_task = 0, cpus_per_task = 0, max_tasks = 16;
    std::vector<std::string> rates;
};

void add_slurm_flags(CLI::App& app, RunArgs& a) {
    app.add_flag("--slurm", a.slurm,
                 "write the study as Slurm array jobs (extraction slices, cells, merge) into "
                 "<output.db>.slurm/ and submit them with sbatch; with --dry-run: print the plan "
                 "and its cost only");
    app.add_option("--partition", a.partition, "--slurm: the partition to submit to");
    app.add_option("--gpus-per-task", a.gpus_per_task, "--slurm: GPUs per task (0 = none)")
        ->capture_default_str();
    app.add_option("--cpus-per-task", a.cpus_per_task, "--slurm: CPUs per task (0 = default)")
        ->capture_default_str();
    app.add_option("--max-tasks", a.max_tasks, "--slurm: tasks per array job")
        ->capture_default_str();
    app.add_option("--time", a.time, "--slurm: time limit per task (sbatch --time)");
    app.add_option("--images-per-second", a.rates,
                   "--slurm: measured forward images/s on a node, [ENCODER=]R (repeatable; "
                   "radprobe models DIR --calibrate --device cuda), for the cost plan");
}

experiment::SlurmOptions slurm_options(const RunArgs& a) {
    experiment::SlurmOptions o;
    RADPROBE_USAGE_CHECK(a.gpus_per_task >= 0 && a.cpus_per_task >= 0,
                         "--gpus-per-task and --cpus-per-task must be >= 0");
    o.partition = a.partition;
    o.gpus_per_task = a.gpus_per_task;
    o.cpus_per_task = a.cpus_per_task;
    o.max_tasks = a.max_tasks;
    o.time_limit = a.time;
    for (const auto& r : a.rates) {
        const auto eq = r.rfind('=');
        const std::string value = eq == std::string::npos ? r : r.substr(eq + 1);
        char* end = nullptr;
        const double rate = std::strtod(value.c_str(), &end);
        RADPROBE_USAGE_CHECK(!value.empty() && *end == '\0' && rate > 0, "--images-per-second '", r,
                             "': expected [ENCODER=]R with R > 0");
        o.images_per_second.push_back({eq == std::string::npos ? "" : r.substr(0, eq), rate});
    }
    return o;
}

int run_slurm(const experiment::ExperimentConfig& config, const RunArgs& a) {
    const experiment::SlurmPlan plan = experiment::plan_slurm(config, slurm_options(a), !a.dry_run);
    std::fwrite(plan.text.data(), 1, plan.text.size(), stdout);
    if (a.dry_run) {
        return 0;
    }
    const auto ids = experiment::submit_slurm(plan);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        std::printf("submitted %s: job %s (%s)\n", plan.jobs[i].name.c_str(), ids[i].c_str(),
                    plan.jobs[i].script.string().c_str());
    }
    return 0;
}

int dry_run(const experiment::ExperimentConfig& config, const std::string& file) {
    std::optional<results::ResultsDb> db;
    if (std::filesystem::exists(config.output.db)) {
        db.emplace(results::ResultsDb::open_existing(config.output.db));
    }
    const experiment::Plan plan = experiment::make_plan(config, db ? &*db : nullptr);
    std::printf("%s: config valid; results database %s%s\n", file.c_str(),
                config.output.db.string().c_str(), db ? "" : " (not created yet)");
    const std::string text = experiment::format_plan(plan);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

}  // namespace

Runner setup_run(CLI::App& app) {
    auto opt = std::make_shared<RunArgs>();
    app.add_option("CONFIG", opt->config, "experiment config (YAML; see docs/config.md)")
        ->required();
    app.add_flag("--dry-run", opt->dry_run,
                 "validate the config and print the plan (what runs, what is cached, rough "
                 "cost) without running anything");
    app.add_option("--threads", opt->threads, "threads (0 = cores available)")
        ->capture_default_str();
    app.add_flag("--quiet", opt->quiet, "no progress lines");
    app.add_option("--stage", opt->stage,
                   "all, or one part of a study split over array tasks: extract (a slice of "
                   "every store's shards; the whole: the stores' merge), cells (a slice of the "
                   "runs, into its own database), merge (the cells into output.db, then all)")
        ->capture_default_str();
    app.add_option("--slice", opt->slice,
                   "I/N: the slice of --stage extract|cells (default: from SLURM_ARRAY_TASK_ID/"
                   "COUNT in a Slurm array task, else the whole)");
    add_slurm_flags(app, *opt);
    return [opt]() -> int {
        RADPROBE_USAGE_CHECK(opt->threads >= 0 && opt->threads <= 1024,
                             "--threads must be in 0..1024, got ", opt->threads);
        experiment::RunnerOptions ro;
        ro.stage = experiment::parse_stage(opt->stage);
        const bool sliced =
            ro.stage == experiment::Stage::kExtract || ro.stage == experiment::Stage::kCells;
        RADPROBE_USAGE_CHECK(sliced || opt->slice.empty(),
                             "--slice applies to --stage extract or cells only");
        ro.slice = sliced ? resolve_slice(opt->slice) : Slice{};
        RADPROBE_USAGE_CHECK(!opt->slurm || ro.stage == experiment::Stage::kAll,
                             "--slurm plans every stage; give no --stage");
        const experiment::ExperimentConfig config = experiment::load_experiment_config(opt->config);
        if (opt->slurm) {
            return run_slurm(config, *opt);
        }
        if (opt->dry_run) {
            return dry_run(config, opt->config);
        }
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
