// The analyses and the results database: rows recorded as a run (through results'
// run_recorded, like every run of `radprobe run`), the DB-run → manifest join of a subgroup
// analysis, and `radprobe analyze`'s "run one analysis, record its rows".

#include <nlohmann/json.hpp>

#include "radprobe/analysis/analysis.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::analysis {

namespace fs = std::filesystem;

namespace {

// The run of an analysis recorded on its own: its identity is its configuration, which is
// metrics.json without the results and the timings.
results::RunSpec own_run_spec(const AnalysisResult& r, const DbRecording& where) {
    auto config = nlohmann::json::parse(r.metrics_json);
    config.erase("rows");
    config.erase("seconds");
    results::RunSpec spec;
    spec.config_hash = features::content_hash(config.dump());
    spec.encoder = where.encoder;
    spec.task = "analysis:" + r.analysis;
    spec.adaptation = "analysis";
    spec.pooling = where.pooling;
    spec.seed = static_cast<std::int64_t>(r.seed);
    spec.config_json = config.dump();
    return spec;
}

AnalyzeOutcome recorded(AnalysisResult result, const DbRecording& where) {
    AnalyzeOutcome out;
    out.recorded = record_result(result, where);
    out.result = std::move(result);
    return out;
}

}  // namespace

std::vector<results::AnalysisRow> to_results_rows(const AnalysisResult& result,
                                                  std::optional<std::int64_t> run) {
    std::vector<results::AnalysisRow> out;
    out.reserve(result.rows.size());
    for (const auto& t : result.rows) {
        results::AnalysisRow a = t;  // the database row without the sample count
        if (a.analysis.empty()) {
            a.analysis = result.analysis;
        }
        a.run = run;
        out.push_back(std::move(a));
    }
    return out;
}

std::optional<results::RecordedRun> record_result(const AnalysisResult& result,
                                                  const DbRecording& where) {
    if (where.db.empty()) {
        return std::nullopt;
    }
    auto db = results::ResultsDb::open(where.db);
    if (where.run) {
        db.record_analysis(to_results_rows(result, where.run));
        return results::RecordedRun{results::RunOutcome::kCompleted, *where.run, ""};
    }
    const auto rec = results::run_recorded(db, own_run_spec(result, where), [&](std::int64_t run) {
        db.record_analysis(to_results_rows(result, run));
    });
    RADPROBE_CHECK(rec.outcome != results::RunOutcome::kFailed, rec.error);
    return rec;
}

std::vector<ScoredImage> scored_images_from_run(results::ResultsDb& db, std::int64_t run,
                                                const dataset::Manifest& manifest,
                                                const std::vector<std::string>& attributes) {
    const auto predictions = db.predictions(run);
    RADPROBE_CHECK(!predictions.empty(), db.path().string(), ": run ", run, " has no predictions");
    std::vector<ScoredImage> out;
    for (const auto& p : predictions) {
        if (!p.label || !p.score) {
            continue;
        }
        ScoredImage s;
        s.image = p.image_id;
        s.patient = p.patient_id;
        s.label = *p.label;
        s.score = *p.score;
        const auto row = manifest.find(p.image_id);
        RADPROBE_CHECK(row.has_value(), manifest.path().string(), ": image '", p.image_id,
                       "' of run ", run, " is not in the manifest");
        for (const auto& a : attributes) {
            s.attributes.push_back(manifest.attribute(*row, a));
        }
        out.push_back(std::move(s));
    }
    return out;
}

AnalyzeOutcome analyze(const PerturbOptions& options, const DbRecording& recording) {
    return recorded(run_perturb(options), recording);
}

AnalyzeOutcome analyze(const LesionOptions& options, const DbRecording& recording) {
    return recorded(run_lesions(options), recording);
}

AnalyzeOutcome analyze(const ShortcutOptions& options, const DbRecording& recording) {
    return recorded(run_shortcut(options), recording);
}

AnalyzeOutcome analyze(SubgroupOptions options, const SubgroupSource& source,
                       const DbRecording& recording) {
    RADPROBE_CHECK(source.predictions.empty() != !source.run.has_value(),
                   "subgroups: give exactly one of a predictions CSV or a results-DB run");
    if (!source.run) {
        options.images = read_scored_images(source.predictions, source.manifest, options.attributes,
                                            source.label_column, source.score_column);
        options.source = source.predictions.string();
        return recorded(run_subgroups(options), recording);
    }
    RADPROBE_CHECK(!recording.db.empty() && source.manifest.has_value(), "subgroups of run ",
                   *source.run, ": need the results database and the manifest");
    {
        auto db = results::ResultsDb::open_existing(recording.db);
        options.images = scored_images_from_run(
            db, *source.run, dataset::Manifest::load(*source.manifest), options.attributes);
    }
    options.source = recording.db.string() + " run " + std::to_string(*source.run);
    DbRecording under_run = recording;
    under_run.run = source.run;
    return recorded(run_subgroups(options), under_run);
}

}  // namespace radprobe::analysis
