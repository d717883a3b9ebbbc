// The shortcut alarm without running any model: the rule (paired DeLong of the control against
// the best real run, Benjamini–Hochberg across tasks, alarm unless significantly worse) against
// R pROC + p.adjust on fixed score tables (tests/golden/experiment/
// make_shortcut_alarm_goldens.R); which runs of a results database it compares; what it
// stores and how `radprobe results` / the report read it; the `control` key of a run config.
// Tolerance: 1e-9 absolute for AUROCs, CI bounds, differences and p-values (as the DeLong tests
// against pROC in tests/eval).

#include <gtest/gtest.h>

#include <map>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "radprobe/report/report.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

namespace fs = std::filesystem;
using namespace radprobe::experiment;
using namespace radprobe::results;

constexpr double kTol = 1e-9;

fs::path golden(const std::string& name) {
    return source_dir() / "tests" / "golden" / "experiment" / name;
}

// The golden score tables as control pairs, in file order of their tasks.
std::vector<ControlPair> golden_pairs() {
    const CsvTable t = CsvTable::read(golden("shortcut_alarm_scores.csv"));
    const auto task = t.column("task");
    const auto label = t.column("label");
    const auto control = t.column("control");
    const auto best = t.column("best");
    std::vector<ControlPair> pairs;
    for (const auto& row : t.rows()) {
        if (pairs.empty() || pairs.back().task != row[task]) {
            ControlPair p;
            p.task = row[task];
            p.control_run = static_cast<std::int64_t>(pairs.size()) * 2 + 1;
            p.best_run = p.control_run + 1;
            pairs.push_back(std::move(p));
        }
        pairs.back().labels.push_back(std::stod(row[label]));
        pairs.back().control_scores.push_back(std::stod(row[control]));
        pairs.back().best_scores.push_back(std::stod(row[best]));
    }
    return pairs;
}

TEST(ShortcutAlarmRule, MatchesPROCAndBenjaminiHochberg) {
    const auto pairs = golden_pairs();
    ASSERT_EQ(pairs.size(), 5u);
    const auto alarms = decide_shortcut_alarms(pairs);
    ASSERT_EQ(alarms.size(), 5u);
    const CsvTable e = CsvTable::read(golden("shortcut_alarm_expected.csv"));
    ASSERT_EQ(e.num_rows(), 5u);
    for (std::size_t i = 0; i < 5; ++i) {
        const auto& row = e.rows()[i];
        auto x = [&](const char* column) { return std::stod(row[e.column(column)]); };
        const ShortcutAlarm& a = alarms[i];
        SCOPED_TRACE(a.task);
        EXPECT_EQ(a.task, row[e.column("task")]);
        EXPECT_EQ(a.control_run, pairs[i].control_run);
        EXPECT_EQ(a.best_run, pairs[i].best_run);
        EXPECT_NEAR(a.control_auroc, x("control_auc"), kTol);
        EXPECT_NEAR(a.control_ci_lo, x("control_lo"), kTol);
        EXPECT_NEAR(a.control_ci_hi, x("control_hi"), kTol);
        EXPECT_NEAR(a.best_auroc, x("best_auc"), kTol);
        EXPECT_NEAR(a.best_ci_lo, x("best_lo"), kTol);
        EXPECT_NEAR(a.best_ci_hi, x("best_hi"), kTol);
        EXPECT_NEAR(a.difference, x("difference"), kTol);
        EXPECT_NEAR(a.ci_lo, x("ci_lo"), kTol);
        EXPECT_NEAR(a.ci_hi, x("ci_hi"), kTol);
        EXPECT_NEAR(a.p, x("p"), kTol);
        EXPECT_NEAR(a.p_adjusted, x("p_bh"), kTol);
        EXPECT_EQ(a.alarm, x("alarm") == 1.0);
    }
    // What each table was made to show (make_shortcut_alarm_goldens.R).
    EXPECT_FALSE(alarms[0].alarm) << "worse: significantly worse, no alarm";
    EXPECT_TRUE(alarms[1].alarm) << "close: a little worse, not significantly";
    EXPECT_TRUE(alarms[2].alarm) << "better: the control is better";
    EXPECT_GT(alarms[2].difference, 0.0);
    EXPECT_TRUE(alarms[3].alarm) << "fdr: significant alone, not after FDR";
    EXPECT_LT(alarms[3].p, 0.05);
    EXPECT_GT(alarms[3].p_adjusted, 0.05);
    EXPECT_FALSE(alarms[4].alarm) << "chance: no encoder separates the label";
    EXPECT_GT(alarms[4].p_adjusted, 0.05);
    EXPECT_LT(alarms[4].control_ci_lo, 0.5);
}

TEST(ShortcutAlarmRule, FdrFamilyIsTheComparedTasks) {
    // Alone, the "fdr" table is significant (raw p < 0.05, one test): no alarm.
    const auto pairs = golden_pairs();
    const auto alone = decide_shortcut_alarms({pairs[3]});
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_NEAR(alone[0].p_adjusted, alone[0].p, 1e-15);
    EXPECT_FALSE(alone[0].alarm);
    // Holm when the config asks for it: never below BH.
    StatisticsOptions holm;
    holm.fdr_method = "holm";
    const auto h = decide_shortcut_alarms(pairs, holm);
    const auto bh = decide_shortcut_alarms(pairs);
    for (std::size_t i = 0; i < h.size(); ++i) {
        EXPECT_GE(h[i].p_adjusted, bh[i].p_adjusted - 1e-15) << h[i].task;
    }
}

TEST(ShortcutAlarmRule, PairWithoutTwoImagesOfEachClassIsNotCompared) {
    ControlPair p;
    p.task = "rare";
    p.labels = {1, 0, 0, 0};
    p.control_scores = {0.9, 0.1, 0.2, 0.3};
    p.best_scores = {0.8, 0.1, 0.2, 0.3};
    const auto pairs = golden_pairs();
    const auto alarms = decide_shortcut_alarms({p, pairs[0]});
    ASSERT_EQ(alarms.size(), 1u);
    EXPECT_EQ(alarms[0].task, "worse");
}

// A completed classification run with the given test scores (image ids img0..).
std::int64_t add_run(ResultsDb& db, const std::string& hash, const std::string& encoder,
                     const std::string& task, const std::string& adaptation,
                     const std::vector<double>& labels, const std::vector<double>& scores,
                     const std::string& image_prefix = "img", const std::string& pooling = "cls") {
    RunSpec spec;
    spec.config_hash = hash;
    spec.encoder = encoder;
    spec.task = task;
    spec.adaptation = adaptation;
    spec.pooling = pooling;
    const std::int64_t run = db.begin_run(spec);
    std::vector<Prediction> preds;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        Prediction p;
        p.image_id = image_prefix + std::to_string(i);
        p.label = labels[i];
        p.score = scores[i];
        preds.push_back(p);
    }
    db.record_predictions(run, preds);
    Metric auc;
    auc.name = "auroc";
    auc.value = eval::auroc(labels, scores);
    db.record_metrics(run, std::vector<Metric>{auc});
    db.finish_run(run);
    return run;
}

TEST(ShortcutAlarmRuns, BestControlAgainstBestComparableRun) {
    TempDir tmp;
    ResultsDb db = ResultsDb::open(tmp / "r.sqlite");
    const auto g = golden_pairs();
    const ControlPair& close = g[1];  // control a little worse than best: alarm
    const ControlPair& worse = g[0];  // control far worse: no alarm
    std::vector<double> noise(close.labels.size());
    for (std::size_t i = 0; i < noise.size(); ++i) {
        noise[i] = static_cast<double>((i * 7) % 11);  // AUROC near 0.5
    }
    // Task "close": the control's kNN run beats its linear run; the real encoder's weaker run
    // is not the reference; a run on other test images (higher AUROC) is not comparable.
    const auto weak_control = add_run(db, "h1", "rand", "close", "linear", close.labels, noise);
    const auto control =
        add_run(db, "h2", "rand", "close", "knn", close.labels, close.control_scores);
    const auto best = add_run(db, "h3", "real", "close", "linear", close.labels, close.best_scores);
    add_run(db, "h4", "real", "close", "knn", close.labels, noise);
    add_run(db, "h5", "other-split", "close", "linear", close.labels, close.labels, "other");
    // A control run pooled over an annotated region (here: perfect) is not a control.
    add_run(db, "h10", "rand", "close", "linear", close.labels, close.labels, "img", "roi");
    // Task "worse": the baseline is the best non-control run.
    const auto worse_control =
        add_run(db, "h6", "rand", "worse", "linear", worse.labels, worse.control_scores);
    const auto baseline = add_run(db, "h7", "cnn-from-scratch", "worse", "cnn_baseline",
                                  worse.labels, worse.best_scores);
    // Task "alone": only the control; task "real-only": no control. Neither is compared.
    add_run(db, "h8", "rand", "alone", "linear", close.labels, close.control_scores);
    add_run(db, "h9", "real", "real-only", "linear", close.labels, close.best_scores);

    const auto alarms = write_shortcut_alarms(db, {"rand"});
    ASSERT_EQ(alarms.size(), 2u);
    EXPECT_EQ(alarms[0].task, "close");
    EXPECT_EQ(alarms[0].control_run, control);
    EXPECT_NE(alarms[0].control_run, weak_control);
    EXPECT_EQ(alarms[0].best_run, best);
    EXPECT_EQ(alarms[1].task, "worse");
    EXPECT_EQ(alarms[1].control_run, worse_control);
    EXPECT_EQ(alarms[1].best_run, baseline);
    // The same numbers as the rule on these pairs alone (two tasks: one FDR family).
    const auto expected = decide_shortcut_alarms({close, worse});
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_NEAR(alarms[i].difference, expected[i].difference, kTol);
        EXPECT_NEAR(alarms[i].p_adjusted, expected[i].p_adjusted, kTol);
        EXPECT_EQ(alarms[i].alarm, expected[i].alarm);
    }
    EXPECT_TRUE(alarms[0].alarm);
    EXPECT_FALSE(alarms[1].alarm);

    // Stored as 4 rows per task and read back with run labels.
    EXPECT_EQ(db.analysis("shortcut_alarm").size(), 8u);
    const auto back = read_shortcut_alarms(db);
    ASSERT_EQ(back.size(), 2u);
    EXPECT_EQ(back[0].task, "close");
    EXPECT_TRUE(back[0].alarm);
    EXPECT_FALSE(back[1].alarm);
    EXPECT_NEAR(back[0].control_auroc, alarms[0].control_auroc, kTol);
    EXPECT_NEAR(back[0].best_ci_hi, alarms[0].best_ci_hi, kTol);
    EXPECT_NEAR(back[0].p, alarms[0].p, kTol);
    EXPECT_NEAR(back[0].p_adjusted, alarms[0].p_adjusted, kTol);
    EXPECT_EQ(back[0].control_label, str_cat("rand \xC2\xB7 knn \xC2\xB7 cls (run ", control, ")"));
    EXPECT_EQ(back[0].best_label, str_cat("real \xC2\xB7 linear \xC2\xB7 cls (run ", best, ")"));

    // The leaderboard's warning lines: the raised alarm only, with its numbers.
    const std::string text = format_shortcut_alarms(back, TableFormat::kTable);
    EXPECT_EQ(count_lines(text), 1) << text;
    EXPECT_TRUE(contains(text, "WARNING shortcut alarm on close: ")) << text;
    EXPECT_TRUE(contains(text, kShortcutAlarmText)) << text;
    EXPECT_TRUE(contains(text, table::format_number(back[0].control_auroc))) << text;
    EXPECT_TRUE(contains(text, table::format_number(back[0].best_auroc))) << text;
    EXPECT_TRUE(contains(text, "FDR-adjusted p = " + table::format_number(back[0].p_adjusted, 4)))
        << text;

    // The report: a warning box on the alarmed task, a note on the other.
    const std::string md = report::render_report_markdown(db, {});
    EXPECT_TRUE(contains(md, "- **WARNING** shortcut alarm on close: ")) << md;
    EXPECT_FALSE(contains(md, "shortcut alarm on worse")) << md;

    // No control encoder: the analysis is emptied.
    EXPECT_TRUE(write_shortcut_alarms(db, {}).empty());
    EXPECT_TRUE(db.analysis("shortcut_alarm").empty());
}

// The `control` key of an encoder.
class ControlKey : public ::testing::Test {
protected:
    void SetUp() override {
        write_file_atomic(tmp_ / "manifest.csv",
                          "image,patient_id,split,cardiomegaly\na.png,p1,train,1\n"
                          "b.png,p2,train,0\nc.png,p3,val,1\nd.png,p4,val,0\n"
                          "e.png,p5,test,1\nf.png,p6,test,0\n");
    }
    ExperimentConfig load(const std::string& encoder_extra, const std::string& second = "") {
        const std::string yaml =
            "data:\n  manifest: manifest.csv\nencoders:\n  - name: rand\n"
            "    random_vit: {seed: 3, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
            "image_size: 64}\n" +
            encoder_extra + second +
            "tasks:\n  classification: [cardiomegaly]\nadaptations:\n  linear:\n";
        write_file_atomic(tmp_ / "exp.yaml", yaml);
        return load_experiment_config(tmp_ / "exp.yaml");
    }
    TempDir tmp_;
};

TEST_F(ControlKey, RandomVitIsAControlUnlessSaidOtherwise) {
    EXPECT_TRUE(load("").encoders.at(0).control);
    EXPECT_FALSE(load("    control: false\n").encoders.at(0).control);
    const auto c = load("", "  - name: fixture\n    path: " + encoder_fixture("dinov2").string() +
                                "\n    control: true\n  - name: real\n    path: " +
                                encoder_fixture("dinov2").string() + "\n");
    ASSERT_EQ(c.encoders.size(), 3u);
    EXPECT_TRUE(c.encoders[1].control);
    EXPECT_FALSE(c.encoders[2].control);
}

TEST_F(ControlKey, NonBooleanIsAnErrorNamingFileLineAndKey) {
    try {
        load("    control: maybe\n");
        FAIL() << "control: maybe was accepted";
    } catch (const InputError& e) {
        const std::string m = e.what();
        EXPECT_TRUE(contains(m, (tmp_ / "exp.yaml").string() + ":6:")) << m;
        EXPECT_TRUE(contains(m, "encoders[0].control")) << m;
    }
}

}  // namespace
}  // namespace radprobe::test
