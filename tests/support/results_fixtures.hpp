#pragma once
// A synthetic results database like the one a benchmark writes: classification runs of several
// encoders × adaptations with predictions (ROC), segmentation runs with per-image Dice, a
// perturbation table, subgroup rows with gaps, comparisons with p-values, one run left
// `running` (a killed writer), and a model name that is an HTML injection attempt.

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/results/results.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::test {

inline const std::string kHostileModel = "<script>alert(1)</script>";

struct SyntheticDb {
    std::vector<std::int64_t> classification_runs;
    std::vector<std::int64_t> segmentation_runs;
    std::int64_t incomplete_run = 0;
    /// Figures the report must draw: per classification task forest + ROC, per segmentation
    /// task forest + Dice distribution, the perturbation heat map, subgroup values + gaps.
    int expected_plots = 0;
};

inline SyntheticDb make_synthetic_db(const std::filesystem::path& path) {
    using namespace radprobe::results;
    SyntheticDb out;
    ResultsDb db = ResultsDb::open(path);
    Rng rng(7);
    const std::vector<std::string> encoders = {"rad-dino", "dinov2-base", kHostileModel};
    const std::vector<std::string> adaptations = {"linear", "attention"};
    int cell = 0;
    for (const auto& encoder : encoders) {
        for (const auto& adaptation : adaptations) {
            RunSpec spec;
            spec.config_hash = "cls-" + std::to_string(cell);
            spec.encoder = encoder;
            spec.weights_hash = "sha256:" + std::string(64, static_cast<char>('a' + cell));
            spec.task = "cardiomegaly";
            spec.adaptation = adaptation;
            spec.pooling = "cls";
            spec.layers = "12";
            spec.seed = 1;
            spec.config_json = R"({"encoder":")" + std::string(cell == 4 ? "x" : encoder) +
                               R"(","note":"</script><!--"})";
            spec.notes = cell == 4 ? "<b>bold?</b> & more" : "";
            const std::int64_t run = db.begin_run(spec);
            // Separation grows with the cell: distinct AUROCs.
            const double shift = 0.4 + 0.3 * cell;
            std::vector<Prediction> preds;
            std::vector<double> labels;
            std::vector<double> scores;
            for (int i = 0; i < 200; ++i) {
                Prediction p;
                p.image_id = "img" + std::to_string(i);
                p.patient_id = "p" + std::to_string(i / 2);
                p.label = rng.bernoulli(0.3) ? 1.0 : 0.0;
                p.score = rng.normal(*p.label * shift, 1.0);
                labels.push_back(*p.label);
                scores.push_back(*p.score);
                preds.push_back(p);
            }
            db.record_predictions(run, preds);
            const auto ci = eval::delong_auc(labels, scores);
            Metric auc;
            auc.name = "auroc";
            auc.value = ci.auc;
            auc.ci_lo = ci.ci_lo;
            auc.ci_hi = ci.ci_hi;
            auc.ci_method = "delong";
            auc.level = 0.95;
            auc.n = 200;
            Metric ap;
            ap.name = "ap";
            ap.value = eval::average_precision(labels, scores);
            ap.n = 200;
            Metric sub = auc;
            sub.subgroup = "chest_tube=1";
            db.record_metrics(run, std::vector<Metric>{auc, ap, sub});
            db.finish_run(run);
            out.classification_runs.push_back(run);
            ++cell;
        }
    }
    out.expected_plots += 2;

    for (int s = 0; s < 2; ++s) {
        RunSpec spec;
        spec.config_hash = "seg-" + std::to_string(s);
        spec.encoder = encoders[static_cast<std::size_t>(s)];
        spec.task = "heart segmentation";
        spec.adaptation = "linear decoder";
        spec.pooling = "patch";
        spec.seed = 2;
        const std::int64_t run = db.begin_run(spec);
        std::vector<Prediction> preds;
        double sum = 0;
        for (int i = 0; i < 80; ++i) {
            Prediction p;
            p.image_id = "seg" + std::to_string(i);
            p.mask_path = "masks/heart_" + std::to_string(i) + ".png";
            p.dice = std::clamp(rng.normal(0.75 + 0.1 * s, 0.08), 0.0, 1.0);
            sum += *p.dice;
            preds.push_back(p);
        }
        db.record_predictions(run, preds);
        Metric dice;
        dice.name = "dice";
        dice.value = sum / 80;
        dice.ci_lo = *dice.value - 0.02;
        dice.ci_hi = *dice.value + 0.02;
        dice.ci_method = "bootstrap-percentile";
        dice.n = 80;
        db.record_metrics(run, std::vector<Metric>{dice});
        db.finish_run(run);
        out.segmentation_runs.push_back(run);
    }
    out.expected_plots += 2;

    std::vector<AnalysisRow> rows;
    for (const char* shape : {"blob", "streak", "reticular"}) {
        for (const char* size : {"4px", "8px"}) {
            for (const char* pooling : {"cls", "patch_local"}) {
                AnalysisRow r;
                r.analysis = "perturb";
                r.row_key = std::string(shape) + " " + size;
                r.row_key2 = "contrast 0.02";
                r.column = pooling;
                r.value = std::string(pooling) == "cls" ? 0.5 + 0.01 * rng.uniform()
                                                        : 0.9 + 0.1 * rng.uniform();
                rows.push_back(r);
            }
        }
    }
    out.expected_plots += 1;
    for (std::size_t k = 0; k < 2; ++k) {
        for (const char* level : {"present", "absent", "gap"}) {
            AnalysisRow r;
            r.analysis = "subgroups";
            r.run = out.classification_runs[k];
            r.row_key = "chest_tube";
            r.row_key2 = level;
            r.column = "auroc";
            const bool gap = std::string(level) == "gap";
            r.value = gap ? 0.12 + 0.05 * static_cast<double>(k)
                          : (std::string(level) == "present" ? 0.9 : 0.78);
            r.ci_lo = *r.value - 0.05;
            r.ci_hi = *r.value + 0.05;
            if (gap) {
                r.p = 0.003;
            }
            rows.push_back(r);
        }
    }
    out.expected_plots += 2;
    // Comparisons of classification runs 2..5 with the first one (written after the grid, on
    // finished runs); BH over these four p:
    // 0.01, 0.04, 0.03, 0.5 -> adjusted 0.04, 0.0533, 0.0533, 0.5: exactly one mark.
    const double p_values[] = {0.01, 0.04, 0.03, 0.5};
    for (std::size_t k = 0; k < 4; ++k) {
        AnalysisRow r;
        r.analysis = "comparisons";
        r.run = out.classification_runs[k + 1];
        r.row_key = "run " + std::to_string(out.classification_runs[0]);
        r.column = "auroc";
        r.value = 0.05;
        r.p = p_values[k];
        rows.push_back(r);
    }
    db.record_analysis(rows);

    RunSpec killed;
    killed.config_hash = "cls-killed";
    killed.encoder = "biomedclip";
    killed.task = "cardiomegaly";
    killed.adaptation = "linear";
    out.incomplete_run = db.begin_run(killed);
    return out;
}

}  // namespace radprobe::test
