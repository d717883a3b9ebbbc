// `radprobe run`: the plan (plan.cpp) executed into the results database, step by step: the
// extractions, each run through the function of its adaptation family (steps.cpp), the
// comparisons and the reports.

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "model_folders.hpp"
#include "plan.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/report/report.hpp"
#include "steps.hpp"

namespace radprobe::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> available_adaptations() {
    return known_adaptations();
}

std::vector<std::string> available_analyses() {
#ifdef RADPROBE_HAVE_ANALYSIS
    return known_analyses();
#else
    return {};
#endif
}

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

void maybe_kill_for_test(std::size_t started) {
    static const long kill_at = [] {
        const char* v = std::getenv("RADPROBE_RUN_KILL_AT");
        return v ? std::strtol(v, nullptr, 10) : 0L;
    }();
    if (kill_at > 0 && started == static_cast<std::size_t>(kill_at)) {
        std::fflush(stdout);
        ::kill(::getpid(), SIGKILL);
    }
}

/// The steps of run_experiment; progress lines go to stdout when options.progress.
class GridRunner {
public:
    GridRunner(const ExperimentConfig& c, const RunnerOptions& options, results::ResultsDb& db,
               const detail::Built& built, RunnerSummary& summary)
        : c_(c),
          options_(options),
          built_(built),
          summary_(summary),
          grid_(c, built, db, options),
          units_(detail::cell_units(built)) {}

    /// Whether this process runs step i (a cells task: the runs of its slice only).
    bool owns(std::size_t i) const {
        return options_.stage != Stage::kCells || units_[i] == detail::kNone ||
               options_.slice.owns(static_cast<std::int64_t>(units_[i]));
    }

    void extract(std::size_t i);
    void compare();
    void report();
    void run(std::size_t i);

    template <typename... Args>
    void say(const char* fmt, Args... args) const {
        if (options_.progress) {
            std::printf(fmt, args...);
            std::fflush(stdout);
        }
    }

private:
    const ExperimentConfig& c_;
    const RunnerOptions& options_;
    const detail::Built& built_;
    RunnerSummary& summary_;
    detail::Grid grid_;
    std::vector<std::size_t> units_;
    std::size_t started_ = 0;  // runs begun (the kill-for-test hook counts them)
};

void GridRunner::extract(std::size_t i) {
    const PlanStep& s = built_.plan.steps[i];
    const std::size_t enc = built_.step_encoder[i];
    const auto t0 = Clock::now();
    if (s.cached && s.cache_note.rfind("not needed", 0) == 0) {
        say("  skipped (%s)\n", s.cache_note.c_str());
        return;
    }
    say(" ...\n");
    try {
        const auto& e = *built_.encoders[enc].config;
        const std::string& roi = built_.step_roi[i];  // "" = the main extraction
        auto eo = detail::extract_options(c_, e, grid_.model_dir(enc), built_.manifest, roi);
        eo.threads = options_.threads;
        eo.progress = options_.progress;
        eo.cached_only = options_.stage == Stage::kCells;  // the extraction stage wrote them
        const auto r = features::extract(eo);
        RADPROBE_CHECK(r.complete, "extraction of ", e.name, " did not complete");
        grid_.extracted(enc, r.store_dir, roi, r.mask_note);
        if (roi.empty()) {  // the report maps the main store's embeddings
            results::StoreRecord rec;
            rec.encoder = e.name;
            rec.store_dir = r.store_dir;
            rec.manifest = built_.manifest;
            rec.seed = c_.seeds.empty() ? 0 : c_.seeds.front();
            grid_.db.record_store(rec);
        }
        say("      %s%s: %lld images, %lld failed (%.1f s)\n", r.store_dir.string().c_str(),
            r.cached ? " (cached)" : "", static_cast<long long>(r.images),
            static_cast<long long>(r.failures), since(t0));
        if (!r.mask_note.empty()) {
            say("      note: %s\n", r.mask_note.c_str());
        }
    } catch (const std::exception& e) {
        const std::string error = Error::one_line(e.what());
        grid_.extraction_failed(enc, error, built_.step_roi[i]);
        say("      FAILED: %s\n", error.c_str());
    }
}

void GridRunner::compare() {
    const auto n = write_comparisons(grid_.db, c_.statistics);
    say("  %zu comparisons\n", n);
    std::vector<std::string> controls;
    for (const auto& e : c_.encoders) {
        if (e.control) {
            controls.push_back(e.name);
        }
    }
    for (const auto& a : write_shortcut_alarms(grid_.db, controls, c_.statistics)) {
        say("      shortcut check on %s: control run %lld %.3f vs best run %lld %.3f, adjusted "
            "p = %.4g: %s\n",
            a.task.c_str(), static_cast<long long>(a.control_run), a.control_auroc,
            static_cast<long long>(a.best_run), a.best_auroc, a.p_adjusted,
            a.alarm ? "ALARM (the control is not significantly worse)" : "no alarm");
    }
}

void GridRunner::report() {
    say(" ...\n");
    report::ReportOptions ro;
    ro.title = c_.output.title;
    if (!c_.output.report_md.empty()) {
        write_file_atomic(c_.output.report_md, report::render_report_markdown(grid_.db, ro));
        summary_.reports.push_back(c_.output.report_md);
        say("      %s\n", c_.output.report_md.string().c_str());
    }
    if (!c_.output.report.empty()) {
        try {
            write_file_atomic(c_.output.report, report::render_report_html(grid_.db, ro));
            summary_.reports.push_back(c_.output.report);
            say("      %s\n", c_.output.report.string().c_str());
        } catch (const InputError& e) {
            say("      HTML report not written: %s\n", e.what());
        }
    }
}

void GridRunner::run(std::size_t i) {
    const PlanStep& s = built_.plan.steps[i];
    const auto t0 = Clock::now();
    std::string result_text;
    const RecordedRun rec = run_recorded(grid_.db, s.spec, [&](std::int64_t run) {
        maybe_kill_for_test(++started_);
        const detail::StepFunction f = detail::find_step_function(s.adaptation);
        if (f == nullptr) {
            throw InputError("adaptation '" + s.adaptation + "' is not available in this build");
        }
        detail::RunStep step{grid_,
                             i,
                             s,
                             built_.step_encoder[i],
                             json::parse(s.spec.config_json)["options"],
                             c_.output.store / "runs" / s.spec.config_hash,
                             run};
        result_text = f(step);
    });
    switch (rec.outcome) {
        case RunOutcome::kSkipped:
            ++summary_.skipped;
            say("  skipped (run %lld in the database)\n", static_cast<long long>(rec.run));
            break;
        case RunOutcome::kCompleted:
            ++summary_.completed;
            say("  %s (%.1f s)\n", result_text.c_str(), since(t0));
            break;
        case RunOutcome::kFailed:
            ++summary_.failed;
            summary_.failures.push_back(s.describe() + ": " + rec.error);
            say("  FAILED: %s\n", rec.error.c_str());
            break;
    }
}

}  // namespace

Stage parse_stage(const std::string& text) {
    static const std::pair<const char*, Stage> kStages[] = {{"all", Stage::kAll},
                                                            {"extract", Stage::kExtract},
                                                            {"cells", Stage::kCells},
                                                            {"merge", Stage::kMerge}};
    for (const auto& [name, stage] : kStages) {
        if (text == name) {
            return stage;
        }
    }
    throw UsageError("--stage '" + text + "': expected all, extract, cells or merge");
}

fs::path cells_db_path(const ExperimentConfig& c, const Slice& slice) {
    return c.output.db.parent_path() / (c.output.db.filename().string() + ".cells") /
           (std::to_string(slice.index) + "-of-" + std::to_string(slice.count) + ".sqlite");
}

namespace {

// The run steps' config hashes, in plan order (those of `units` owned by `slice` only).
std::vector<std::string> run_hashes(const detail::Built& b, const Slice& slice) {
    const auto units = detail::cell_units(b);
    std::vector<std::string> hashes;
    for (std::size_t i = 0; i < b.plan.steps.size(); ++i) {
        if (units[i] != detail::kNone && slice.owns(static_cast<std::int64_t>(units[i]))) {
            hashes.push_back(b.plan.steps[i].spec.config_hash);
        }
    }
    return hashes;
}

// The completed runs of every cells database, copied in plan order (the ids one process gives).
std::size_t import_cells(const ExperimentConfig& c, results::ResultsDb& db,
                         const detail::Built& b) {
    const fs::path dir = cells_db_path(c, {}).parent_path();
    if (!fs::is_directory(dir)) {
        return 0;
    }
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() == ".sqlite") {
            files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    std::map<std::string, fs::path> where;  // config hash -> the database that completed it
    for (const auto& f : files) {
        for (const auto& r : results::ResultsDb::open_existing(f).runs()) {
            where.emplace(r.spec.config_hash, f);
        }
    }
    std::size_t copied = 0;
    std::vector<std::string> group;  // consecutive runs of one database
    fs::path from;
    for (const auto& hash : run_hashes(b, {})) {
        const auto it = where.find(hash);
        if (it == where.end()) {
            continue;
        }
        if (it->second != from && !group.empty()) {
            copied += db.import_runs(from, group);
            group.clear();
        }
        from = it->second;
        group.push_back(hash);
    }
    return copied + (group.empty() ? 0 : db.import_runs(from, group));
}

// Stage::kExtract: every extraction of the plan, this task's slice of its shards.
RunnerSummary run_extract_stage(const ExperimentConfig& c, const RunnerOptions& options) {
    const auto t0 = Clock::now();
    RunnerSummary summary;
    summary.db = c.output.db;
    ensure_writable_dir(c.output.store, "embedding store folder");
    const detail::Built b = detail::build_plan(c, nullptr);
    detail::write_split_manifest(c, b);
    for (std::size_t i = 0; i < b.plan.steps.size(); ++i) {
        const PlanStep& s = b.plan.steps[i];
        if (s.kind != StepKind::kExtract || s.cache_note.rfind("not needed", 0) == 0) {
            continue;
        }
        const auto& e = *b.encoders[b.step_encoder[i]].config;
        auto eo = detail::extract_options(c, e, detail::prepare_encoder_folder(c, e), b.manifest,
                                          b.step_roi[i]);
        eo.threads = options.threads;
        eo.progress = options.progress;
        eo.slice = options.slice;
        const auto r = features::extract(eo);
        if (options.progress) {
            std::printf("%s slice %s: %lld images extracted, %lld of %lld shards complete%s\n",
                        s.describe().c_str(), options.slice.text().c_str(),
                        static_cast<long long>(r.extracted), static_cast<long long>(r.shards_done),
                        static_cast<long long>(r.shards), r.complete ? " (store complete)" : "");
        }
        ++summary.completed;
    }
    summary.seconds = since(t0);
    return summary;
}

}  // namespace

// Stage::kAll / kMerge run the whole plan; kCells its runs of one slice into its own database.
RunnerSummary run_experiment(const ExperimentConfig& c, const RunnerOptions& options) {
    if (options.stage == Stage::kExtract) {
        return run_extract_stage(c, options);
    }
    const auto t0 = Clock::now();
    const bool cells = options.stage == Stage::kCells;
    RunnerSummary summary;
    summary.db = cells ? cells_db_path(c, options.slice) : c.output.db;
    ensure_writable_dir(summary.db.parent_path(), "results database folder");
    // One writer per database: a second process refuses before touching anything.
    std::string holder;
    const auto lock = FileLock::try_lock(fs::path(summary.db.string() + ".lock"), &holder);
    RADPROBE_CHECK(lock.has_value(), "results database ", summary.db.string(),
                   ": another radprobe run or demo is writing it (pid ",
                   holder.empty() ? std::string("unknown") : holder,
                   "); wait for it to finish (a later run skips what it completed) or give this "
                   "study another output.db");
    ensure_writable_dir(c.output.store, "embedding store folder");
    results::ResultsDb db = results::ResultsDb::open(summary.db);
    if (options.stage == Stage::kMerge) {
        const std::size_t n = import_cells(c, db, detail::build_plan(c, &db));
        if (options.progress) {
            std::printf("merge: %zu runs copied from %s\n", n,
                        cells_db_path(c, {}).parent_path().string().c_str());
        }
    } else if (cells && fs::exists(c.output.db)) {  // completed before: copied, not recomputed
        db.import_runs(c.output.db, run_hashes(detail::build_plan(c, &db), options.slice));
    }
    const detail::Built b = detail::build_plan(c, &db);
    GridRunner runner(c, options, db, b, summary);
    if (detail::write_split_manifest(c, b)) {
        runner.say("split: patient-level split written to %s\n", b.manifest.string().c_str());
    }
    runner.say("%s", format_plan(b.plan).c_str());

    const std::size_t total = b.plan.steps.size();
    for (std::size_t i = 0; i < total; ++i) {
        const PlanStep& s = b.plan.steps[i];
        if (!runner.owns(i) ||
            (cells && (s.kind == StepKind::kComparisons || s.kind == StepKind::kReport))) {
            continue;
        }
        runner.say("[%zu/%zu] %s", i + 1, total, s.describe().c_str());
        switch (s.kind) {
            case StepKind::kExtract:
                runner.extract(i);
                break;
            case StepKind::kComparisons:
                runner.compare();
                break;
            case StepKind::kReport:
                runner.report();
                break;
            case StepKind::kRun:
                runner.run(i);
                break;
        }
    }
    summary.seconds = since(t0);
    runner.say(
        "done in %.1f s: %zu runs completed, %zu skipped (already in the database), %zu failed; "
        "results in %s\n",
        summary.seconds, summary.completed, summary.skipped, summary.failed,
        summary.db.string().c_str());
    return summary;
}

}  // namespace radprobe::experiment
