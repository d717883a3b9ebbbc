// Writes the seed of the report_sqlite fuzz target: a small results database with what the
// report reads (completed, running and failed runs of two tasks; metrics with CIs and
// subgroups; predictions; subgroup, perturbation and lesion analysis rows; comparisons), then
// VACUUMed into one file without a WAL. Built and run by fuzz/report_sqlite/make_seed.sh.
//   make_seed OUT.sqlite

#include <sqlite3.h>

#include <cstdio>
#include <string>
#include <vector>

#include "radprobe/results/results.hpp"

using namespace radprobe::results;

namespace {

std::int64_t add_run(ResultsDb& db, const std::string& task, const std::string& encoder,
                     const std::string& adaptation, double auroc, RunStatus status) {
    RunSpec spec;
    spec.config_hash = task + "-" + encoder + "-" + adaptation;
    spec.encoder = encoder;
    spec.task = task;
    spec.adaptation = adaptation;
    spec.pooling = "cls";
    spec.layers = "12";
    spec.seed = 1;
    spec.config_json = R"({"C":1.0})";
    const std::int64_t run = db.begin_run(spec);
    Metric m;
    m.name = "auroc";
    m.value = auroc;
    m.ci_lo = auroc - 0.05;
    m.ci_hi = auroc + 0.05;
    m.ci_method = "delong";
    m.level = 0.95;
    m.n = 40;
    Metric sub = m;
    sub.subgroup = "chest_tube=1";
    sub.n = 10;
    db.record_metrics(run, std::vector<Metric>{m, sub});
    std::vector<Prediction> preds;
    for (int i = 0; i < 8; ++i) {
        Prediction p;
        p.image_id = "images/p" + std::to_string(i) + ".png";
        p.patient_id = "P" + std::to_string(i);
        p.label = i % 2;
        p.score = 0.1 * i;
        preds.push_back(p);
    }
    db.record_predictions(run, preds);
    if (status != RunStatus::kRunning) {
        db.finish_run(run, status, status == RunStatus::kFailed ? "out of memory" : "");
    }
    return run;
}

AnalysisRow row(const char* analysis, std::int64_t run, const char* key, const char* key2,
                const char* column, double value) {
    AnalysisRow r;
    r.analysis = analysis;
    r.run = run;
    r.row_key = key;
    r.row_key2 = key2;
    r.column = column;
    r.value = value;
    r.ci_lo = value - 0.1;
    r.ci_hi = value + 0.1;
    r.p = 0.03;
    r.p_adjusted = 0.04;
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_seed OUT.sqlite\n");
        return 2;
    }
    {
        ResultsDb db = ResultsDb::open(argv[1]);
        const auto a = add_run(db, "cardiomegaly", "dinov2", "linear", 0.81, RunStatus::kCompleted);
        add_run(db, "cardiomegaly", "random-vit", "linear", 0.62, RunStatus::kCompleted);
        add_run(db, "pneumothorax", "dinov2", "knn", 0.7, RunStatus::kRunning);
        add_run(db, "pneumothorax", "dinov2", "finetune", 0.0, RunStatus::kFailed);
        db.record_analysis(std::vector<AnalysisRow>{
            row("subgroups", a, "chest_tube", "present", "auroc", 0.9),
            row("subgroups", a, "chest_tube", "absent", "auroc", 0.7),
            row("subgroups", a, "chest_tube", "gap", "auroc", 0.2),
            row("perturb", a, "gaussian_noise", "0.1", "auroc", 0.75),
            row("lesions", a, "nodule", "8", "auroc", 0.6),
            row("comparisons", a, "dinov2", "random-vit", "delta_auroc", 0.19)});
    }
    sqlite3* raw = nullptr;
    if (sqlite3_open(argv[1], &raw) != SQLITE_OK ||
        sqlite3_exec(raw, "PRAGMA journal_mode=DELETE; VACUUM;", nullptr, nullptr, nullptr) !=
            SQLITE_OK) {
        std::fprintf(stderr, "make_seed: %s\n", sqlite3_errmsg(raw));
        return 1;
    }
    sqlite3_close(raw);
    return 0;
}
