// The skeleton of a recorded run: skip a config already completed, record or mark failed.

#include "radprobe/core/error.hpp"
#include "radprobe/results/results.hpp"

namespace radprobe::results {

RecordedRun run_recorded(ResultsDb& db, const RunSpec& spec,
                         const std::function<void(std::int64_t run)>& body) {
    RecordedRun out;
    if (const auto done = db.find_completed_run(spec.config_hash)) {
        out.outcome = RunOutcome::kSkipped;
        out.run = *done;
        return out;
    }
    out.run = db.begin_run(spec);
    try {
        body(out.run);
    } catch (const std::exception& e) {
        out.outcome = RunOutcome::kFailed;
        out.error = Error::one_line(e.what());
        db.finish_run(out.run, RunStatus::kFailed, out.error);
        return out;
    }
    db.finish_run(out.run, RunStatus::kCompleted);
    out.outcome = RunOutcome::kCompleted;
    return out;
}

}  // namespace radprobe::results
