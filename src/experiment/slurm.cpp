// `radprobe run CONFIG --slurm`: the study as Slurm array jobs (extraction slices, the merge of
// the stores, the cells, the final merge and report), their sbatch scripts and the cost plan.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "model_folders.hpp"
#include "plan.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::experiment {

namespace fs = std::filesystem;

namespace {

std::string fmt(const char* format, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, value);
    return buf;
}

// A value for a POSIX shell, single-quoted.
std::string quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

fs::path this_executable() {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path("radprobe") : self;
}

// The measured images/s of an encoder (its own entry, else the one for every encoder).
std::optional<double> rate_of(const SlurmOptions& o, const std::string& encoder) {
    std::optional<double> all;
    for (const auto& [name, rate] : o.images_per_second) {
        if (name == encoder) {
            return rate;
        }
        all = name.empty() ? std::optional<double>(rate) : all;
    }
    return all;
}

// What the extraction stage costs: per extraction step of the plan still to run.
struct ExtractionCost {
    std::string text;
    std::int64_t max_shards = 0;
    double gflop = 0.0;
    double task_hours = 0.0;  // when every rate is known
    double wall_hours = 0.0;  // the slowest task's
    bool rates_known = true;
};

ExtractionCost extraction_cost(const detail::Built& b, const SlurmOptions& o,
                               std::int64_t shard_size) {
    ExtractionCost cost;
    std::vector<std::pair<std::int64_t, double>> stores;  // shards, hours per image
    for (std::size_t i = 0; i < b.plan.steps.size(); ++i) {
        const PlanStep& s = b.plan.steps[i];
        if (s.kind != StepKind::kExtract || s.cached) {
            continue;
        }
        const std::int64_t shards = (b.images + shard_size - 1) / shard_size;
        cost.max_shards = std::max(cost.max_shards, shards);
        cost.gflop += s.gflop;
        const auto rate = rate_of(o, s.encoder);
        cost.rates_known = cost.rates_known && rate.has_value();
        const double hours = rate ? static_cast<double>(b.images) / *rate / 3600.0 : 0.0;
        cost.task_hours += hours;
        stores.push_back({shards, rate ? 1.0 / *rate / 3600.0 : 0.0});
        cost.text += "    " + s.describe() + ": " + std::to_string(b.images) + " forward passes, " +
                     fmt("%.4g", s.gflop / 1e3) + " TFLOP" +
                     (rate ? ", " + fmt("%.3g", hours) + " h at " + fmt("%.4g", *rate) + " images/s"
                           : ", time unknown (no --images-per-second for it)") +
                     "\n";
    }
    // The slowest task: slice t owns shards k = t, t + n, ... of every store.
    const std::int64_t n =
        std::min<std::int64_t>(o.max_tasks, std::max<std::int64_t>(1, cost.max_shards));
    const std::int64_t S = shard_size;
    for (std::int64_t t = 0; t < n; ++t) {
        double hours = 0.0;
        for (const auto& [shards, per_image] : stores) {
            for (std::int64_t k = t; k < shards; k += n) {
                hours += static_cast<double>(std::min(S, b.images - k * S)) * per_image;
            }
        }
        cost.wall_hours = std::max(cost.wall_hours, hours);
    }
    return cost;
}

std::string script_text(const ExperimentConfig& c, const SlurmOptions& o, const SlurmPlan::Job& job,
                        const fs::path& dir) {
    const bool array = job.tasks > 1 || job.name == "extract" || job.name == "cells";
    std::string s = "#!/bin/bash\n";
    s += "# radprobe study " + fs::absolute(c.file).string() + ": " + job.name +
         " (written by radprobe run --slurm; submitted in order by it)\n";
    s += "#SBATCH --job-name=radprobe-" + job.name + "\n";
    s += "#SBATCH --output=" +
         (dir / "logs" / (job.name + (array ? "-%A_%a.out" : "-%j.out"))).string() + "\n";
    s += "#SBATCH --ntasks=1\n";
    if (array) {
        s += "#SBATCH --array=0-" + std::to_string(job.tasks - 1) + "\n";
    }
    if (!o.partition.empty()) {
        s += "#SBATCH --partition=" + o.partition + "\n";
    }
    if (o.gpus_per_task > 0) {
        s += "#SBATCH --gpus-per-task=" + std::to_string(o.gpus_per_task) + "\n";
    }
    if (o.cpus_per_task > 0) {
        s += "#SBATCH --cpus-per-task=" + std::to_string(o.cpus_per_task) + "\n";
    }
    if (!o.time_limit.empty()) {
        s += "#SBATCH --time=" + o.time_limit + "\n";
    }
    // The array tasks take their slice from SLURM_ARRAY_TASK_ID / _COUNT; the others run whole.
    const std::string stage = job.name == "extract-merge" ? "extract" : job.name;
    s += "set -euo pipefail\n";
    s += "exec " + quoted((o.radprobe.empty() ? this_executable() : o.radprobe).string()) +
         " run " + quoted(fs::absolute(c.file).string()) + " --stage " + stage +
         (job.name == "extract-merge" ? " --slice 0/1" : "") +
         " --threads \"${SLURM_CPUS_PER_TASK:-0}\"\n";
    return s;
}

// Model folders and the split manifest, made once here so that no two tasks write them.
void prepare_shared_files(const ExperimentConfig& c, const detail::Built& b) {
    for (const auto& info : b.encoders) {
        detail::prepare_encoder_folder(c, *info.config);
    }
    detail::write_split_manifest(c, b);
}

}  // namespace

SlurmPlan plan_slurm(const ExperimentConfig& c, const SlurmOptions& o, bool write) {
    RADPROBE_USAGE_CHECK(o.max_tasks >= 1 && o.max_tasks <= 100000,
                         "--max-tasks must be in 1..100000, got ", o.max_tasks);
    std::optional<results::ResultsDb> db;
    if (fs::exists(c.output.db)) {
        db.emplace(results::ResultsDb::open_existing(c.output.db));
    }
    const detail::Built b = detail::build_plan(c, db ? &*db : nullptr);
    SlurmPlan plan;
    plan.dir = c.output.db.parent_path() / (c.output.db.filename().string() + ".slurm");
    const ExtractionCost cost = extraction_cost(b, o, c.output.shard_size);
    const auto units = detail::cell_units(b);
    std::size_t runs = 0, todo = 0;
    std::vector<bool> unit_todo(detail::count_units(units), false);
    for (std::size_t i = 0; i < b.plan.steps.size(); ++i) {
        if (units[i] != detail::kNone) {
            ++runs;
            todo += !b.plan.steps[i].cached;
            unit_todo[units[i]] = unit_todo[units[i]] || !b.plan.steps[i].cached;
        }
    }
    const auto units_todo = static_cast<int>(std::count(unit_todo.begin(), unit_todo.end(), true));
    const int extract_tasks =
        static_cast<int>(std::min<std::int64_t>(o.max_tasks, cost.max_shards));
    const int cell_tasks = std::min(o.max_tasks, units_todo);
    std::string dep;
    auto add = [&](const std::string& name, int tasks, const std::string& on_previous) {
        plan.jobs.push_back({name, plan.dir / (name + ".sbatch"), tasks, dep});
        dep = on_previous;
    };
    if (extract_tasks > 0) {
        add("extract", extract_tasks, "afterany");  // the merge step redoes what a task missed
        add("extract-merge", 1, "afterok");
    }
    if (cell_tasks > 0) {
        add("cells", cell_tasks, "afterany");  // the final merge computes what a task missed
    }
    add("merge", 1, "");

    const char* unit = o.gpus_per_task > 0 ? "GPU-hours" : "task-hours";
    std::string& t = plan.text;
    t = "slurm plan: " + std::to_string(b.images) + " images, " + std::to_string(plan.jobs.size()) +
        " jobs in " + plan.dir.string() + "\n";
    if (extract_tasks > 0) {
        t += "  extract        array of " + std::to_string(extract_tasks) + " tasks (" +
             std::to_string(cost.max_shards) + " shards of " + std::to_string(c.output.shard_size) +
             " images per store), " + fmt("%.4g", cost.gflop / 1e3) + " TFLOP";
        t += cost.rates_known ? ", " + fmt("%.4g", cost.task_hours) + " " + unit + ", wall " +
                                    fmt("%.3g", cost.wall_hours) + " h"
                              : ", time unknown";
        t += "\n" + cost.text;
        t += "  extract-merge  1 task after them: the final store files (and any shard a task "
             "did not finish)\n";
    } else {
        t += "  extract        nothing to do (every store complete)\n";
    }
    t += cell_tasks > 0 ? "  cells          array of " + std::to_string(cell_tasks) +
                              " tasks: " + std::to_string(todo) + " of " + std::to_string(runs) +
                              " runs to do, in " + std::to_string(units_todo) +
                              " units (each task its own database)\n"
                        : "  cells          nothing to do (every run in the database)\n";
    t += "  merge          1 task: the cells' databases into " + c.output.db.string() +
         ", comparisons, report\n";
    if (!cost.rates_known && extract_tasks > 0) {
        t += "  (give --images-per-second [ENCODER=]R, measured on a node with `radprobe models "
             "DIR --calibrate --device cuda`, for the hours)\n";
    }
    if (write) {
        prepare_shared_files(c, b);
        fs::create_directories(plan.dir / "logs");
        for (const auto& job : plan.jobs) {
            write_file_atomic(job.script, script_text(c, o, job, plan.dir));
            fs::permissions(job.script, fs::perms::owner_exec | fs::perms::group_exec,
                            fs::perm_options::add);
        }
    }
    return plan;
}

namespace {

// Runs `command` (sh -c), returning its exit status and its output (stdout and stderr).
int run_command(const std::string& command, std::string& output) {
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    RADPROBE_CHECK(pipe != nullptr, "cannot run ", command);
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) {
        output.append(buf, n);
    }
    const int status = ::pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

std::vector<std::string> submit_slurm(const SlurmPlan& plan) {
    std::vector<std::string> ids;
    for (const auto& job : plan.jobs) {
        std::string command = "sbatch --parsable";
        if (!job.dependency.empty() && !ids.empty()) {
            command += " --dependency=" + job.dependency + ":" + ids.back();
        }
        command += " " + quoted(job.script.string());
        std::string out;
        const int rc = run_command(command, out);
        while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
            out.pop_back();
        }
        RADPROBE_CHECK(rc != 127,
                       "sbatch not found: --slurm submits with Slurm's sbatch (run on "
                       "a login node, or give --dry-run and submit ",
                       plan.dir.string(), "/*.sbatch yourself)");
        RADPROBE_CHECK(rc == 0 && !out.empty(), "sbatch ", job.script.string(),
                       " failed: ", Error::one_line(out));
        ids.push_back(out.substr(0, out.find(';')));  // "id" or "id;cluster"
    }
    return ids;
}

}  // namespace radprobe::experiment
