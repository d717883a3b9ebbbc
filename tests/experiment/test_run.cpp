// `radprobe run` without running anything heavy: config validation (every error names the
// file, line, key path and reason; unknown keys get the nearest valid key), the plan (order,
// dependencies, caching from the database), config-hash stability against an independent
// Python reference, and the --dry-run output of the CLI.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

namespace fs = std::filesystem;
using namespace radprobe::experiment;
using namespace radprobe::results;

// A manifest that needs no image files for validation and planning.
const char* const kManifest =
    "image,patient_id,split,cardiomegaly,pneumothorax,chest_tube,mask_heart\n"
    "a.png,p1,train,1,0,1,\n"
    "b.png,p2,train,0,1,0,\n"
    "c.png,p3,val,1,0,1,\n"
    "d.png,p4,val,0,1,0,\n"
    "e.png,p5,test,1,1,1,\n"
    "f.png,p6,test,0,0,0,\n";

const char* const kValid = R"(data:
  manifest: manifest.csv
encoders:
  - name: rand
    random_vit: {seed: 3, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, image_size: 64}
tasks:
  classification: [cardiomegaly, pneumothorax]
adaptations:
  linear:
  knn: {k: [5]}
pooling: [cls, mean]
)";

class Config : public ::testing::Test {
protected:
    void SetUp() override { write_file_atomic(tmp_ / "manifest.csv", kManifest); }
    fs::path write(const std::string& yaml, const std::string& name = "exp.yaml") {
        const fs::path p = tmp_ / name;
        write_file_atomic(p, yaml);
        return p;
    }
    // The message of the InputError that loading `yaml` throws ("" when it loads).
    std::string error_of(const std::string& yaml) {
        try {
            load_experiment_config(write(yaml));
        } catch (const InputError& e) {
            return e.what();
        }
        return "";
    }
    std::string where(int line) const {
        return (tmp_ / "exp.yaml").string() + ":" + std::to_string(line) + ":";
    }
    // kValid with its encoder list replaced by `encoders` (YAML list items).
    static std::string with_encoders(const std::string& encoders) {
        std::string y = kValid;
        const auto at = y.find("  - name: rand");
        y.replace(at, y.find("tasks:") - at, encoders);
        return y;
    }
    TempDir tmp_;
};

TEST_F(Config, ValidConfigGetsDefaults) {
    const auto c = load_experiment_config(write(kValid));
    EXPECT_EQ(c.data.manifest, tmp_ / "manifest.csv");
    EXPECT_TRUE(c.data.split.use_manifest);
    ASSERT_EQ(c.encoders.size(), 1u);
    ASSERT_TRUE(c.encoders[0].random_vit.has_value());
    EXPECT_EQ(c.encoders[0].random_vit->hidden_size, 48);
    EXPECT_EQ(c.encoders[0].random_vit->seed, 3u);
    EXPECT_EQ(c.classification, (std::vector<std::string>{"cardiomegaly", "pneumothorax"}));
    ASSERT_EQ(c.adaptations.size(), 2u);
    const auto linear = nlohmann::json::parse(c.adaptations[0].options_json);
    EXPECT_EQ(linear["c_grid"], "logspace:-6:5:45");
    EXPECT_EQ(linear["max_iter"], 10000);
    const auto knn = nlohmann::json::parse(c.adaptations[1].options_json);
    EXPECT_EQ(knn["k"], nlohmann::json::array({5}));
    EXPECT_DOUBLE_EQ(knn["temperature"].get<double>(), 0.07);
    EXPECT_EQ(c.seeds, (std::vector<std::int64_t>{0}));
    EXPECT_EQ(c.statistics.n_boot, 2000);
    EXPECT_EQ(c.output.db, tmp_ / "results.sqlite");
    EXPECT_EQ(c.output.report, tmp_ / "report.html");
}

TEST_F(Config, UnknownTopLevelKeyNamesNearestWithLine) {
    std::string yaml = kValid;
    yaml += "statistcs:\n  ci: delong\n";
    const std::string e = error_of(yaml);
    EXPECT_TRUE(contains(e, where(12) + "1: statistcs: unknown key")) << e;
    EXPECT_TRUE(contains(e, "did you mean 'statistics'?")) << e;
}

TEST_F(Config, UnknownNestedKeyNamesNearestWithLine) {
    std::string yaml = kValid;
    yaml.replace(yaml.find("  knn:"), 6, "  knm:");
    std::string e = error_of(yaml);
    EXPECT_TRUE(contains(e, where(10) + "3: adaptations.knm: unknown key")) << e;
    EXPECT_TRUE(contains(e, "did you mean 'knn'?")) << e;

    yaml = kValid;
    yaml.replace(yaml.find("{k: [5]}"), 8, "{k: [5], temprature: 0.1}");
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, where(10) + "17: adaptations.knn.temprature: unknown key")) << e;
    EXPECT_TRUE(contains(e, "did you mean 'temperature'?")) << e;

    // Nothing near: no suggestion, but the valid keys are listed.
    yaml = kValid;
    yaml += "output: {zzzzzzzzzz: 1}\n";
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, "output.zzzzzzzzzz: unknown key; valid keys here: db, store")) << e;
}

TEST_F(Config, WrongTypesAndRanges) {
    std::string yaml = kValid;
    yaml.replace(yaml.find("{k: [5]}"), 8, "{k: [five]}");
    std::string e = error_of(yaml);
    EXPECT_TRUE(
        contains(e, where(10) + "13: adaptations.knn.k[0]: expected an integer, got 'five'"))
        << e;

    yaml = kValid;
    yaml += "statistics: {level: 1.5}\n";
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, where(12) + "21: statistics.level: must be in [0.5, 0.999], got 1.5"))
        << e;

    yaml = kValid;
    yaml += "seeds: [1, 1]\n";
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, "seeds[1]: 1 is listed twice")) << e;

    yaml = kValid;
    yaml.replace(yaml.find("pooling: [cls, mean]"), 20, "pooling: [cls, maen]");
    e = error_of(yaml);
    EXPECT_TRUE(contains(e,
                         "pooling[1]: 'maen' is not one of cls, mean, cls+mean, roi (did you "
                         "mean 'mean'?)"))
        << e;

    yaml = kValid;
    yaml += "statistics: {compare: maybe}\n";
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, "statistics.compare: expected true or false, got 'maybe'")) << e;

    yaml = kValid;
    yaml.replace(yaml.find("  linear:"), 9, "  linear: {c_grid: 'lots'}");
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, where(9) + "20: adaptations.linear.c_grid: ")) << e;
}

// A malformed boxes.csv beside the manifest matters only to a config that uses boxes.
TEST_F(Config, BoxesFileProblemsMatterOnlyWhenBoxesAreUsed) {
    write_file_atomic(tmp_ / "boxes.csv", "image,label,x0,y0,x1,y1\na.png,nodule,one,1,4,4\n");
    EXPECT_EQ(error_of(kValid), "");
    std::string yaml = kValid;
    yaml.replace(yaml.find("pooling: [cls, mean]"), 20, "pooling: [cls, roi]");
    const std::string e = error_of(yaml);
    EXPECT_TRUE(contains(e, "data.boxes: " + (tmp_ / "boxes.csv").string() +
                                ":2: column 'x0': 'one' is not a finite number"))
        << e;
}

TEST_F(Config, MissingRequiredKeys) {
    std::string e = error_of(
        "encoders: []\ntasks: {classification: [cardiomegaly]}\n"
        "adaptations: {linear: }\n");
    EXPECT_TRUE(contains(e, where(1) + "1: data: missing required key")) << e;

    std::string yaml = kValid;
    yaml.replace(yaml.find("  - name: rand\n"), 15, "  - \n");
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, "encoders[0].name: missing required key")) << e;

    yaml = kValid;
    yaml.replace(yaml.find("encoders:"), yaml.find("tasks:") - yaml.find("encoders:"), "");
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, "encoders: missing required key")) << e;
}

TEST_F(Config, ChecksTheManifestColumns) {
    std::string yaml = kValid;
    yaml.replace(yaml.find("[cardiomegaly, pneumothorax]"), 28, "[cardiomegaly, pneumothorx]");
    std::string e = error_of(yaml);
    EXPECT_TRUE(contains(e, where(7) + "34: tasks.classification[1]: 'pneumothorx' is not a label "
                                       "column"))
        << e;
    EXPECT_TRUE(contains(e, "did you mean 'pneumothorax'?")) << e;

    yaml = kValid;
    yaml.replace(yaml.find("  classification"), 0, "  segmentation: [lung]\n");
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, "tasks.segmentation[0]: 'lung' has no mask_lung column")) << e;

    // roi pooling needs boxes: the manifest has none.
    yaml = kValid;
    yaml.replace(yaml.find("pooling: [cls, mean]"), 20, "pooling: [cls, roi]");
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, "data.roi: the roi pooling needs boxes")) << e;

    // A manifest without train images and the manifest split policy.
    write_file_atomic(tmp_ / "manifest.csv",
                      std::string(kManifest).replace(std::string(kManifest).find("a.png,p1,train"),
                                                     14, "a.png,p1,val"));
    std::string m = read_file_text(tmp_ / "manifest.csv");
    m.replace(m.find("b.png,p2,train"), 14, "b.png,p2,val");
    write_file_atomic(tmp_ / "manifest.csv", m);
    e = error_of(kValid);
    EXPECT_TRUE(contains(e, "has no train images; use split: {policy: patient}")) << e;
    yaml = kValid;
    yaml.replace(yaml.find("  manifest: manifest.csv\n"), 25,
                 "  manifest: manifest.csv\n  split: {policy: patient, seed: 4, test: 0.3}\n");
    EXPECT_EQ(error_of(yaml), "");
}

TEST_F(Config, ShortcutAnalysisGetsDefaultsAndRefusesOtherPoolings) {
    const auto avail = available_analyses();
    if (std::find(avail.begin(), avail.end(), "shortcut") == avail.end()) {
        GTEST_SKIP() << "this build has no analysis component";
    }
    std::string yaml = std::string(kValid) + "analyses:\n  shortcut: {n_train: 80}\n";
    const auto c = load_experiment_config(write(yaml));
    ASSERT_EQ(c.analyses.size(), 1u);
    const auto o = nlohmann::json::parse(c.analyses[0].options_json);
    EXPECT_EQ(o["n_train"], 80);
    EXPECT_EQ(o["n_test"], 300);
    EXPECT_DOUBLE_EQ(o["correlation"].get<double>(), 0.9);
    EXPECT_EQ(o["poolings"], nlohmann::json::array({"cls", "mean"}));
    EXPECT_EQ(o["baseline_epochs"], 0);

    yaml = std::string(kValid) + "analyses:\n  shortcut: {poolings: [cls, roi]}\n";
    std::string e = error_of(yaml);
    EXPECT_TRUE(contains(e, "analyses.shortcut.poolings: 'roi' is not a shortcut pooling")) << e;
    yaml = std::string(kValid) + "analyses:\n  shortcut: {correlation: 1.5}\n";
    e = error_of(yaml);
    EXPECT_TRUE(contains(e, "analyses.shortcut.correlation")) << e;
}

// experiment links every stage, so every adaptation the config language knows is built in and
// none can be refused as unavailable; an unknown name is an error at its line that names the
// nearest known adaptation.
TEST_F(Config, EveryKnownAdaptationIsAvailableAndAnUnknownOneIsNamed) {
    EXPECT_EQ(available_adaptations(), known_adaptations());
    std::string yaml = kValid;
    yaml.replace(yaml.find("  linear:"), 9, "  linaer:");
    const std::string e = error_of(yaml);
    EXPECT_TRUE(contains(e, where(9) + "3: adaptations.linaer")) << e;
    EXPECT_TRUE(contains(e, "'linear'")) << e;
}

TEST_F(Config, EncoderFolders) {
    const std::string dinov2 = encoder_fixture("dinov2").string();
    const std::string vit = encoder_fixture("vit").string();
    const std::string siglip = encoder_fixture("siglip_vision").string();
    EXPECT_EQ(error_of(with_encoders("  - {name: d, path: '" + dinov2 + "', layers: [-1, 2]}\n")),
              "");
    // No preprocessor_config.json: the config must give the preprocessing.
    std::string e = error_of(with_encoders("  - {name: v, path: '" + vit + "'}\n"));
    EXPECT_TRUE(contains(e, "encoders[0].preprocessing: ")) << e;
    EXPECT_TRUE(contains(e, "has no preprocessor_config.json")) << e;
    EXPECT_EQ(error_of(with_encoders("  - name: v\n    path: '" + vit +
                                     "'\n    preprocessing: {size: 64, mean: 0.5, std: [0.5, "
                                     "0.5, 0.5]}\n")),
              "");
    e = error_of(with_encoders("  - name: v\n    path: '" + vit +
                               "'\n    preprocessing: {size: 64, mean: [0.5, 0.5], std: 1}\n"));
    EXPECT_TRUE(contains(e, "encoders[0].preprocessing.mean: give 1 or 3 values")) << e;
    // cls pooling on an encoder without a CLS token.
    e = error_of(with_encoders("  - {name: s, path: '" + siglip +
                               "', preprocessing: {size: 32, mean: 0.5, std: 0.5}}\n"));
    EXPECT_TRUE(contains(e,
                         "pooling: 'cls' needs a CLS token, and encoder 's' (siglip_vision_model) "
                         "has none"))
        << e;
    // Layer out of range, duplicate names, both path and random_vit.
    e = error_of(with_encoders("  - {name: d, path: '" + dinov2 + "', layers: [7]}\n"));
    EXPECT_TRUE(contains(e, "encoders[0].layers[0]: must be in -3..3, got 7")) << e;
    e = error_of(with_encoders("  - {name: d, path: '" + dinov2 + "'}\n  - {name: d, path: '" +
                               dinov2 + "'}\n"));
    EXPECT_TRUE(contains(e, "encoders[1].name: 'd' is already the name of the encoder on line 4"))
        << e;
    e = error_of(with_encoders("  - {name: d, path: '" + dinov2 + "', random_vit: {}}\n"));
    EXPECT_TRUE(contains(e, "give exactly one of 'path'")) << e;
    e = error_of(with_encoders("  - {name: d, path: '" + (tmp_ / "nowhere").string() + "'}\n"));
    EXPECT_TRUE(contains(e, "encoders[0].path: ")) << e;
    EXPECT_TRUE(contains(e, "nowhere: not a directory")) << e;
}

// Folders as publishers ship them: a config-less Ark+ training checkpoint (its weights under
// 'teacher', its preprocessing derived), the checkpoint key and the compute dtype checked at
// validation.
TEST_F(Config, PublishedCheckpointFoldersAndTheirLoadOptions) {
    const std::string ark = (encoder_fixture("published") / "ark_swin_teacher").string();
    const std::string dinov2 = encoder_fixture("dinov2").string();
    auto with_encoders = [](const std::string& encs) {  // no CLS: the Swin has none
        std::string y = Config::with_encoders(encs);
        y.replace(y.find("pooling: [cls, mean]"), 20, "pooling: [mean]");
        return y;
    };
    const std::string ok =
        with_encoders("  - {name: ark, path: '" + ark + "', checkpoint_key: teacher}\n");
    ASSERT_EQ(error_of(ok), "");
    const auto config = load_experiment_config(write(ok));
    EXPECT_EQ(config.encoders.at(0).checkpoint_key, "teacher");
    std::string e =
        error_of(with_encoders("  - {name: ark, path: '" + ark + "', checkpoint_key: ema}\n"));
    EXPECT_TRUE(contains(e, "encoders[0].path: ")) << e;
    EXPECT_TRUE(contains(e, "no top-level key \"ema\"")) << e;
    e = error_of(with_encoders("  - {name: d, path: '" + dinov2 + "', checkpoint_key: teacher}\n"));
    EXPECT_TRUE(contains(e, "applies to PyTorch pickles only")) << e;
    e = error_of(with_encoders("  - {name: d, path: '" + dinov2 + "', dtype: fp64}\n"));
    EXPECT_TRUE(contains(e, "encoders[0].dtype")) << e;
    EXPECT_TRUE(contains(e, "must be fp32, bf16 or fp16")) << e;
    EXPECT_EQ(error_of(with_encoders("  - {name: d, path: '" + dinov2 + "', dtype: bf16}\n")), "");
}

TEST_F(Config, YamlSyntaxErrorHasTheLine) {
    const std::string e = error_of("data:\n  manifest: [unclosed\ntasks: x\n");
    EXPECT_TRUE(contains(e, (tmp_ / "exp.yaml").string() + ":")) << e;
    EXPECT_TRUE(contains(e, "YAML syntax error")) << e;
}

TEST(EditDistance, NearestKey) {
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
    EXPECT_EQ(edit_distance("", "abc"), 3u);
    EXPECT_EQ(nearest_key("lienar", {"linear", "knn", "mlp"}), "linear");
    EXPECT_EQ(nearest_key("zzzzzz", {"linear", "knn"}), "");
}

// ---------------------------------------------------------------------------------------------
// Config hashes
// ---------------------------------------------------------------------------------------------

TEST(ConfigHash, MatchesIndependentReference) {
    // tests/golden/experiment/config_hash.py: canonical JSON and FNV-1a in Python.
    const auto golden = nlohmann::json::parse(
        read_file_text(source_dir() / "tests/golden/experiment/config_hash.json"));
    ASSERT_EQ(golden.size(), 2u);
    for (const auto& g : golden) {
        EXPECT_EQ(canonical_json(g["input"].get<std::string>()), g["canonical"].get<std::string>());
        EXPECT_EQ(config_hash(g["input"].get<std::string>()), g["hash"].get<std::string>());
    }
    EXPECT_THROW(config_hash("{not json"), InputError);
}

class PlanTest : public Config {};

TEST_F(PlanTest, OrderDependenciesAndStableHashes) {
    std::string yaml = kValid;
    yaml.replace(yaml.find("  - name: rand"), 0,
                 "  - {name: dino, path: '" + encoder_fixture("dinov2").string() + "'}\n");
    yaml.replace(yaml.find("  knn: {k: [5]}\n"), 16,
                 "  knn: {k: [5]}\n  cnn_baseline: {size: 64, epochs: 1}\n");
    yaml += "seeds: [0, 1]\n";
    const auto config = load_experiment_config(write(yaml));
    const Plan plan = make_plan(config, nullptr);
    // 2 encoders × (extract + 2 probes × 2 poolings × 2 tasks × 2 seeds) + 2 tasks × 2 seeds of
    // the baseline + comparisons + report.
    ASSERT_EQ(plan.steps.size(), 2u * (1 + 16) + 4 + 2);
    EXPECT_EQ(plan.runs(), 36u);
    EXPECT_EQ(plan.cached_runs(), 0u);
    // Each encoder: its extraction, then its probes (which depend on it); the baseline after
    // every probe; comparisons and report last.
    for (std::size_t e = 0; e < 2; ++e) {
        const std::size_t x = e * 17;
        EXPECT_EQ(plan.steps[x].kind, StepKind::kExtract);
        EXPECT_EQ(plan.steps[x].encoder, e == 0 ? "dino" : "rand");
        for (std::size_t i = x + 1; i < x + 17; ++i) {
            EXPECT_EQ(plan.steps[i].kind, StepKind::kRun);
            EXPECT_EQ(plan.steps[i].phase, 1);
            EXPECT_EQ(plan.steps[i].depends_on, std::optional<std::size_t>(x));
            EXPECT_EQ(plan.steps[i].encoder, plan.steps[x].encoder);
        }
    }
    // The fixture's forward cost is estimated (56 px, 16 tokens + CLS, 3 layers of width 48).
    EXPECT_GT(plan.steps[0].gflop, 0.0);
    for (std::size_t i = 34; i < 38; ++i) {
        EXPECT_EQ(plan.steps[i].adaptation, "cnn_baseline");
        EXPECT_EQ(plan.steps[i].phase, 3);
    }
    EXPECT_EQ(plan.steps[38].kind, StepKind::kComparisons);
    EXPECT_EQ(plan.steps[39].kind, StepKind::kReport);

    // Hashes: unique per run, identical when planned again, and independent of formatting.
    std::vector<std::string> hashes;
    for (const auto& s : plan.steps) {
        if (s.kind == StepKind::kRun) {
            hashes.push_back(s.spec.config_hash);
            EXPECT_TRUE(std::regex_match(s.spec.config_hash, std::regex("v1-[0-9a-f]{16}")));
            EXPECT_EQ(config_hash(s.spec.config_json), s.spec.config_hash);
        }
    }
    auto sorted = hashes;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
    auto hashes_of = [&](const std::string& y) {
        std::vector<std::string> out;
        for (const auto& s :
             make_plan(load_experiment_config(write(y, "other.yaml")), nullptr).steps) {
            if (s.kind == StepKind::kRun) {
                out.push_back(s.spec.config_hash);
            }
        }
        return out;
    };
    std::string reformatted = "# a comment\n" + yaml;
    reformatted.replace(reformatted.find("  knn: {k: [5]}"), 15, "  knn:\n    k: 5");
    EXPECT_EQ(hashes_of(reformatted), hashes);

    // Changing a linear option changes the linear runs' hashes only.
    std::string changed = yaml;
    changed.replace(changed.find("  linear:\n"), 10, "  linear: {c_grid: '0.1,1'}\n");
    const auto h2 = hashes_of(changed);
    ASSERT_EQ(h2.size(), hashes.size());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < hashes.size(); ++i) {
        differ += h2[i] != hashes[i];
    }
    EXPECT_EQ(differ, 16u);  // 2 encoders × 2 poolings × 2 tasks × 2 seeds of linear
    // The output paths do not determine the numbers: same hashes.
    std::string moved = yaml + "output: {db: elsewhere.sqlite, report: ''}\n";
    EXPECT_EQ(hashes_of(moved), hashes);
}

TEST_F(PlanTest, CachedRunsComeFromTheDatabase) {
    const auto config = load_experiment_config(write(kValid));
    Plan plan = make_plan(config, nullptr);
    ResultsDb db = ResultsDb::open(tmp_ / "db.sqlite");
    // Record two of the plan's runs as completed, one as failed.
    std::vector<std::size_t> runs;
    for (std::size_t i = 0; i < plan.steps.size(); ++i) {
        if (plan.steps[i].kind == StepKind::kRun) {
            runs.push_back(i);
        }
    }
    ASSERT_EQ(runs.size(), 8u);
    for (std::size_t k : {0, 5}) {
        const auto r = run_recorded(db, plan.steps[runs[k]].spec, [](std::int64_t) {});
        EXPECT_EQ(r.outcome, RunOutcome::kCompleted);
    }
    const auto failed =
        run_recorded(db, plan.steps[runs[1]].spec, [](std::int64_t) { throw InputError("boom"); });
    EXPECT_EQ(failed.outcome, RunOutcome::kFailed);
    EXPECT_EQ(failed.error, "boom");
    const auto again = run_recorded(db, plan.steps[runs[0]].spec,
                                    [](std::int64_t) { FAIL() << "must be skipped"; });
    EXPECT_EQ(again.outcome, RunOutcome::kSkipped);

    plan = make_plan(config, &db);
    EXPECT_EQ(plan.cached_runs(), 2u);
    for (std::size_t k = 0; k < runs.size(); ++k) {
        EXPECT_EQ(plan.steps[runs[k]].cached, k == 0 || k == 5) << k;
    }
    const std::string text = format_plan(plan);
    EXPECT_TRUE(contains(text, "8 runs (2 in the database, 6 to run)")) << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'),
              1 + 2 + 11);  // header, 2 phases, 11 steps
    // The failed run is in the DB with its error.
    bool found = false;
    for (const auto& r : db.runs({"", "", true})) {
        if (r.status == RunStatus::kFailed) {
            found = true;
            EXPECT_EQ(r.spec.notes, "boom");
        }
    }
    EXPECT_TRUE(found);
}

TEST_F(PlanTest, DryRunPrintsThePlanAndWritesNothing) {
    const fs::path cfg = write(kValid);
    const CliResult r = run_cli("run '" + cfg.string() + "' --dry-run");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "config valid")) << r.out;
    EXPECT_TRUE(contains(r.out, "(not created yet)")) << r.out;
    EXPECT_TRUE(contains(r.out, "11 steps, 8 runs (0 in the database, 8 to run)")) << r.out;
    EXPECT_TRUE(contains(r.out, "extract rand (cls,mean; 6 images)")) << r.out;
    EXPECT_TRUE(contains(r.out, "linear  rand  mean  pneumothorax  seed 0")) << r.out;
    EXPECT_TRUE(std::regex_search(r.out, std::regex("to run, ~[0-9.]+ [MG]FLOP"))) << r.out;
    EXPECT_FALSE(fs::exists(tmp_ / "results.sqlite"));
    EXPECT_FALSE(fs::exists(tmp_ / "embeddings"));

    // A bad config: exit 1, one line naming the file and line.
    const fs::path bad = write(std::string(kValid) + "sedes: [1]\n", "bad.yaml");
    const CliResult b = run_cli("run '" + bad.string() + "' --dry-run");
    EXPECT_EQ(b.exit_code, 1);
    EXPECT_EQ(count_lines(b.err), 1) << b.err;
    EXPECT_TRUE(contains(b.err, bad.string() + ":12:1: sedes: unknown key (did you mean 'seeds'?)"))
        << b.err;
}

TEST_F(Config, DeviceIsTheDefaultOfEveryEncoderAndAdaptationAndShardSizeIsRead) {
    std::string yaml = with_encoders(
        "  - name: rand\n"
        "    random_vit: {seed: 3, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
        "image_size: 64}\n"
        "  - name: rand-cpu\n"
        "    device: cpu\n"
        "    random_vit: {seed: 4, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
        "image_size: 64}\n");
    yaml.replace(yaml.find("  knn: {k: [5]}\n"), 16,
                 "  knn: {k: [5]}\n  attention: {epochs: 1}\n  finetune: {device: cpu}\n");
    yaml += "device: cuda:1\noutput: {shard_size: 32}\n";
    // The device's form is checked here; whether it exists, where the model runs.
    const auto c = load_experiment_config(write(yaml));
    EXPECT_EQ(c.device, "cuda:1");
    ASSERT_EQ(c.encoders.size(), 2u);
    EXPECT_EQ(c.encoders[0].device, "cuda:1");
    EXPECT_EQ(c.encoders[1].device, "cpu");
    EXPECT_EQ(c.output.shard_size, 32);
    std::map<std::string, nlohmann::json> options;
    for (const auto& a : c.adaptations) {
        options[a.kind] = nlohmann::json::parse(a.options_json);
    }
    EXPECT_FALSE(options["linear"].contains("device"));
    EXPECT_EQ(options["attention"]["device"], "cuda:1");
    EXPECT_EQ(options["finetune"]["device"], "cpu");  // its own
    EXPECT_EQ(load_experiment_config(write(kValid)).output.shard_size, 256);

    std::string e = error_of(std::string(kValid) + "device: gpu\n");
    EXPECT_TRUE(contains(e, where(12) + "9: device: 'gpu' is not cpu, cuda or cuda:N")) << e;
    e = error_of(std::string(kValid) + "output: {shard_size: 0}\n");
    EXPECT_TRUE(contains(e, "output.shard_size")) << e;
}

// The plan of study C's size (492,724 images, two encoders) as Slurm array jobs: shards,
// forward passes, task-hours and the slowest task's wall time from the measured rates; a dry run
// writes nothing, the real one writes the scripts.
TEST_F(PlanTest, SlurmPlanOfHalfAMillionImages) {
    std::string manifest = "image,patient_id,split,cardiomegaly,pneumothorax\n";
    const char* splits[] = {"train", "val", "test"};
    for (int i = 0; i < 492724; ++i) {
        manifest += "i" + std::to_string(i) + ".png,p" + std::to_string(i / 2) + "," +
                    splits[(i / 2) % 3] + "," + std::to_string(i % 2) + "," +
                    std::to_string((i / 3) % 2) + "\n";
    }
    write_file_atomic(tmp_ / "manifest.csv", manifest);
    std::string yaml = with_encoders(
        "  - name: a\n"
        "    random_vit: {seed: 3, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
        "image_size: 64}\n"
        "  - name: b\n"
        "    random_vit: {seed: 4, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
        "image_size: 64}\n");
    const auto c = load_experiment_config(write(yaml));
    SlurmOptions o;
    o.images_per_second = {{"a", 100.0}, {"b", 50.0}};
    o.partition = "gpu";
    o.gpus_per_task = 1;
    o.radprobe = "/opt/radprobe/bin/radprobe";
    const SlurmPlan dry = plan_slurm(c, o, false);
    const std::string& t = dry.text;
    EXPECT_TRUE(contains(t, "slurm plan: 492724 images, 4 jobs")) << t;
    // 1925 shards of 256 per store (the last one of 52 images).
    EXPECT_TRUE(
        contains(t, "extract        array of 16 tasks (1925 shards of 256 images per store)"))
        << t;
    EXPECT_TRUE(contains(t, "extract a (cls,mean; 492724 images): 492724 forward passes")) << t;
    // a: 492724 / 100 / 3600 = 1.369 h, b: 2.737 h, 4.106 GPU-hours in all. The slowest task
    // owns 121 full shards of each store: 30976 · (1/100 + 1/50) / 3600 = 0.258 h.
    EXPECT_TRUE(contains(t, "1.37 h at 100 images/s")) << t;
    EXPECT_TRUE(contains(t, "2.74 h at 50 images/s")) << t;
    EXPECT_TRUE(contains(t, "4.106 GPU-hours, wall 0.258 h")) << t;
    EXPECT_TRUE(contains(t, "cells          array of 16 tasks: 16 of 16 runs to do, in 16 units"))
        << t;
    ASSERT_EQ(dry.jobs.size(), 4u);
    EXPECT_EQ(dry.jobs[0].name, "extract");
    EXPECT_EQ(dry.jobs[1].dependency, "afterany");
    EXPECT_EQ(dry.jobs[2].dependency, "afterok");
    EXPECT_EQ(dry.jobs[3].dependency, "afterany");
    EXPECT_FALSE(fs::exists(dry.dir));
    EXPECT_FALSE(fs::exists(tmp_ / "embeddings"));

    // Without rates: no hours, and how to measure them.
    EXPECT_TRUE(contains(plan_slurm(c, SlurmOptions{}, false).text,
                         "radprobe models DIR --calibrate --device cuda"));
    const SlurmPlan written = plan_slurm(c, o, true);
    const std::string extract = read_text(written.jobs[0].script);
    EXPECT_TRUE(contains(extract, "#SBATCH --array=0-15\n")) << extract;
    EXPECT_TRUE(contains(extract, "#SBATCH --partition=gpu\n#SBATCH --gpus-per-task=1\n"))
        << extract;
    EXPECT_TRUE(contains(extract, "exec '/opt/radprobe/bin/radprobe' run '" +
                                      (tmp_ / "exp.yaml").string() + "' --stage extract --threads"))
        << extract;
    const std::string merge = read_text(written.jobs[1].script);
    EXPECT_TRUE(contains(merge, "--stage extract --slice 0/1")) << merge;
    EXPECT_FALSE(contains(merge, "--array")) << merge;
    EXPECT_TRUE(fs::exists(tmp_ / "embeddings" / "models" / "a" / "model.safetensors"));
}

// roi for a task pools that task's own boxes; a task without any is refused at validation with
// the per-task fix (data.roi: {task: boxes:<label>} or a mask), and so is a single box source
// that would hand one task another label's boxes. Boxes on positives only are fine: the
// negatives get control regions at extraction.
TEST_F(Config, RoiWithoutBoxesOfTheTasksOwnIsRefusedWithThePerTaskFix) {
    write_file_atomic(tmp_ / "boxes.csv",
                      "image,label,x0,y0,x1,y1\na.png,cardiomegalx,1,1,4,4\n"
                      "e.png,cardiomegalx,2,2,5,5\n");
    std::string yaml = kValid;
    yaml.replace(yaml.find("[cardiomegaly, pneumothorax]"), 28, "[cardiomegaly]");
    yaml.replace(yaml.find("pooling: [cls, mean]"), 20, "pooling: [cls, roi]");
    std::string e = error_of(yaml);
    EXPECT_TRUE(contains(e, where(11) +
                                "10: data.roi: task 'cardiomegaly' has no boxes of its own "
                                "in " +
                                (tmp_ / "boxes.csv").string() +
                                " (labels with boxes: cardiomegalx), so roi has no region for "
                                "it; name one per task: data.roi: {cardiomegaly: "
                                "boxes:cardiomegalx} (a region of another finding, named on "
                                "purpose) or data.roi: {cardiomegaly: mask_heart}, or drop roi "
                                "from pooling"))
        << e;
    EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 0) << e;

    // One source for every task that is another label's boxes: refused for that task.
    std::string global = yaml;
    global.replace(global.find("  manifest: manifest.csv\n"), 25,
                   "  manifest: manifest.csv\n  roi: boxes:cardiomegalx\n");
    e = error_of(global);
    EXPECT_TRUE(contains(e, where(3) + "8: data.roi: roi for task 'cardiomegaly' would pool the "
                                       "boxes of 'cardiomegalx', not its own"))
        << e;

    // The fix, per task, is accepted; so is a mask; a per-task label without boxes is not.
    std::string fixed = yaml;
    fixed.replace(fixed.find("  manifest: manifest.csv\n"), 25,
                  "  manifest: manifest.csv\n  roi: {cardiomegaly: boxes:cardiomegalx}\n");
    EXPECT_EQ(error_of(fixed), "");
    const auto config = load_experiment_config(write(fixed));
    EXPECT_EQ(config.data.roi_source_for("cardiomegaly"), "boxes:cardiomegalx");
    std::string masked = fixed;
    masked.replace(masked.find("boxes:cardiomegalx}"), 19, "mask_heart}");
    EXPECT_EQ(error_of(masked), "");
    std::string none = fixed;
    none.replace(none.find("boxes:cardiomegalx}"), 19, "boxes:nodule}");
    e = error_of(none);
    EXPECT_TRUE(contains(e, "data.roi.cardiomegaly: " + (tmp_ / "boxes.csv").string() +
                                " has no boxes of label 'nodule' (labels with boxes: "
                                "cardiomegalx)"))
        << e;
    std::string other = fixed;
    other.replace(other.find("{cardiomegaly:"), 14, "{pneumothorax:");
    e = error_of(other);
    EXPECT_TRUE(contains(e,
                         "data.roi.pneumothorax: 'pneumothorax' is not a classification task "
                         "(tasks.classification: cardiomegaly)"))
        << e;
}

// Tasks whose roi sources differ: the first source is pooled by the encoder's extraction, each
// other one by a roi-only extraction that the task's roi runs depend on; the run hashes carry
// the source and the control-region seed.
TEST_F(PlanTest, PerTaskRoiSourcesGetTheirOwnExtraction) {
    write_file_atomic(tmp_ / "boxes.csv",
                      "image,label,x0,y0,x1,y1\na.png,cardiomegaly,1,1,4,4\n"
                      "b.png,pneumothorax,2,2,5,5\n");
    std::string yaml = kValid;
    yaml.replace(yaml.find("pooling: [cls, mean]"), 20, "pooling: [cls, roi]");
    yaml.replace(yaml.find("  knn: {k: [5]}\n"), 16, "");
    const Plan plan = make_plan(load_experiment_config(write(yaml)), nullptr);
    // extract, roi-only extract, 2 poolings × 2 tasks of linear, comparisons, report.
    ASSERT_EQ(plan.steps.size(), 2u + 4 + 2);
    EXPECT_EQ(plan.steps[0].pooling, "cls,roi");
    EXPECT_EQ(plan.steps[1].kind, StepKind::kExtract);
    EXPECT_EQ(plan.steps[1].pooling, "roi over boxes:pneumothorax");
    for (std::size_t i = 2; i < 6; ++i) {
        const auto& s = plan.steps[i];
        const bool own = s.pooling == "roi" && s.task == "pneumothorax";
        EXPECT_EQ(s.depends_on, std::optional<std::size_t>(own ? 1 : 0)) << s.describe();
        const auto data = nlohmann::json::parse(s.spec.config_json)["data"];
        if (s.pooling == "roi") {
            EXPECT_EQ(data["roi_source"], "boxes:" + s.task);
            EXPECT_EQ(data["roi_controls"]["seed"], 0);
        } else {
            EXPECT_FALSE(data.contains("roi_source"));
        }
    }
    // The control regions are drawn with the first of the config's seeds.
    const Plan seeded =
        make_plan(load_experiment_config(write(yaml + "seeds: [5, 6]\n", "s.yaml")), nullptr);
    for (const auto& s : seeded.steps) {
        if (s.kind == StepKind::kRun && s.pooling == "roi") {
            EXPECT_EQ(nlohmann::json::parse(s.spec.config_json)["data"]["roi_controls"]["seed"], 5);
        }
    }
}

}  // namespace
}  // namespace radprobe::test
