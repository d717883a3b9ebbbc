// The shortcut alarm end to end, as a user meets it: `radprobe synth` phantoms whose nodule
// positives were acquired differently (--acquisition-shift nodule:AMOUNT: exposure and noise),
// `radprobe run` with the built-in random ViT (a control by default) and the from-scratch CNN
// baseline, linear probes; then `radprobe results` and the reports. The alarm must be raised on
// the shifted label and not on cardiomegaly, where the CNN clearly beats random features; on the
// default phantoms (no shift) cardiomegaly raises no alarm either. The numbers are printed (they
// are the measured ones quoted in reviews).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/report/report.hpp"
#include "radprobe/results/results.hpp"
#include "shortcut_alarm_support.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

namespace fs = std::filesystem;
using namespace radprobe::results;

// Phantoms and one run over them; returns the run's stdout.
struct Outcome {
    fs::path db;
    fs::path out;
    std::string run_out;
};

Outcome synth_and_run(const fs::path& root, const std::string& synth_flags,
                      const std::string& tasks) {
    const CliResult s = run_cli("synth --out " + q(root / "phantoms") +
                                " --n 400 --size 64 --seed 23 --cardiomegaly-prevalence 0.4 "
                                "--nodule-prevalence 0.4 " +
                                synth_flags);
    EXPECT_EQ(s.exit_code, 0) << s.err;
    const fs::path out = root / "out";
    const std::string yaml = "data:\n  manifest: " + q(root / "phantoms" / "manifest.csv") +
                             "\n"
                             "encoders:\n"
                             "  - name: random-vit\n"
                             "    random_vit: {seed: 5, hidden_size: 48, layers: 2, heads: 3, "
                             "patch_size: 16, image_size: 64}\n"
                             "    preprocessing: {size: 64}\n"
                             "    batch: 32\n"
                             "tasks:\n  classification: " +
                             tasks +
                             "\n"
                             "adaptations:\n"
                             "  linear: {c_grid: '0.01,0.1,1'}\n"
                             "  cnn_baseline: {size: 64, width: 8, epochs: 8, batch: 16, lr: "
                             "2.0e-3}\n"
                             "pooling: [mean]\n"
                             "seeds: [1]\n"
                             "statistics: {ci: delong}\n"
                             "output:\n"
                             "  db: " +
                             q(out / "results.sqlite") + "\n  store: " + q(out / "embeddings") +
                             "\n  report: " + q(out / "report.html") +
                             "\n  report_md: " + q(out / "report.md") + "\n";
    write_file_atomic(root / "exp.yaml", yaml);
    const CliResult r = run_cli("run " + q(root / "exp.yaml") + " --threads 2");
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    return {out / "results.sqlite", out, r.out};
}

std::map<std::string, ShortcutAlarm> alarms_by_task(const fs::path& db_path) {
    ResultsDb db = ResultsDb::open_existing(db_path);
    return test::alarms_by_task(db);
}

// The report's figure titled `title`: how well its PC1 separates the points coloured by `by`
// (AUROC by Mann-Whitney, taken in whichever direction is above 0.5).
double pc1_separation(const std::string& html, const std::string& title, const std::string& by) {
    const std::string open = "<script type=\"application/json\" id=\"radprobe-plots\">";
    const auto start = html.find(open) + open.size();
    const auto plots =
        nlohmann::json::parse(html.substr(start, html.find("</script>", start) - start));
    std::vector<double> pos, neg;
    for (const auto& p : plots) {
        if (p.at("spec").value("title", "") != title) {
            continue;
        }
        for (const auto& v : p.at("spec").at("data").at("values")) {
            if (v.at("by") == by) {
                (v.at("value") == "positive" ? pos : neg).push_back(v.at("pc1").get<double>());
            }
        }
    }
    EXPECT_FALSE(pos.empty() || neg.empty()) << title << " " << by;
    double wins = 0.0;
    for (const double a : pos) {
        for (const double b : neg) {
            wins += a > b ? 1.0 : a == b ? 0.5 : 0.0;
        }
    }
    const double pairs = static_cast<double>(std::max<std::size_t>(1, pos.size() * neg.size()));
    return std::max(wins / pairs, 1.0 - wins / pairs);
}

TEST(ShortcutAlarmE2e, RaisedOnTheLabelWhosePositivesDifferInAcquisition) {
    TempDir tmp;
    const Outcome o =
        synth_and_run(tmp.path(), "--acquisition-shift nodule:0.5", "[cardiomegaly, nodule]");
    // The knob is recorded with the data.
    const auto synth = nlohmann::json::parse(read_file_text(tmp / "phantoms" / "synth.json"));
    ASSERT_EQ(synth.at("acquisition_shifts").size(), 1u);
    EXPECT_EQ(synth.at("acquisition_shifts")[0].at("label"), "nodule");
    EXPECT_EQ(synth.at("acquisition_shifts")[0].at("amount").get<double>(), 0.5);
    EXPECT_EQ(synth.at("seed").get<int>(), 23);

    const auto alarms = alarms_by_task(o.db);
    ASSERT_EQ(alarms.size(), 2u) << o.run_out;
    {  // The run records the store its probes read (the report's embedding map).
        ResultsDb db = ResultsDb::open_existing(o.db);
        const auto stores = db.stores();
        ASSERT_EQ(stores.size(), 1u);
        EXPECT_EQ(stores[0].encoder, "random-vit");
        EXPECT_TRUE(fs::exists(stores[0].store_dir / "COMPLETE")) << stores[0].store_dir;
        EXPECT_EQ(stores[0].manifest, fs::absolute(tmp / "phantoms" / "manifest.csv"));
        EXPECT_EQ(stores[0].seed, 1);
    }
    const ShortcutAlarm& nodule = alarms.at("nodule");
    const ShortcutAlarm& cardio = alarms.at("cardiomegaly");
    EXPECT_TRUE(nodule.alarm);
    EXPECT_FALSE(cardio.alarm);
    // Not significantly worse on nodule; significantly worse on cardiomegaly.
    EXPECT_FALSE(nodule.difference < 0.0 && nodule.p_adjusted < 0.05);
    EXPECT_LT(cardio.difference, 0.0);
    EXPECT_LT(cardio.p_adjusted, 0.05);
    EXPECT_TRUE(contains(nodule.control_label, "random-vit")) << nodule.control_label;
    EXPECT_TRUE(contains(cardio.best_label, "cnn")) << cardio.best_label;
    EXPECT_TRUE(contains(o.run_out, "shortcut check on nodule")) << o.run_out;

    // The leaderboard: a warning on nodule only.
    const CliResult board = run_cli("results " + q(o.db));
    ASSERT_EQ(board.exit_code, 0) << board.err;
    EXPECT_TRUE(
        contains(board.out, std::string("WARNING shortcut alarm on nodule: ") + kShortcutAlarmText))
        << board.out;
    EXPECT_FALSE(contains(board.out, "shortcut alarm on cardiomegaly")) << board.out;
    // Machine-readable formats keep stdout clean: the warning goes to stderr.
    const CliResult json = run_cli("results " + q(o.db) + " --format json");
    ASSERT_EQ(json.exit_code, 0) << json.err;
    EXPECT_NO_THROW(nlohmann::json::parse(json.out));
    EXPECT_TRUE(contains(json.err, "WARNING shortcut alarm on nodule")) << json.err;

    // The reports: the warning with its numbers on the nodule task.
    const std::string md = read_file_text(o.out / "report.md");
    EXPECT_TRUE(contains(md, "- **WARNING** shortcut alarm on nodule: ")) << md.substr(0, 800);
    EXPECT_FALSE(contains(md, "shortcut alarm on cardiomegaly"));
    if (fs::exists(o.out / "report.html")) {
        const std::string html = read_file_text(o.out / "report.html");
        EXPECT_TRUE(contains(html, "<div class=\"alarm\" role=\"alert\">"));
        EXPECT_TRUE(contains(html, kShortcutAlarmText));
        EXPECT_TRUE(contains(html,
                             "Shortcut check: the random-feature control is significantly "
                             "worse"));
        // The embedding maps of the store the run recorded: the shift shows on the PCA map
        // (PC1 separates the nodule label, not cardiomegaly; measured 0.836 and 0.522).
        EXPECT_TRUE(contains(html,
                             "The mean-pooled embeddings (48 dimensions) of 400 of 400 "
                             "images. PCA: PC1 explains "));
        const double nodule_pc1 = pc1_separation(html, "PCA — random-vit", "label: nodule");
        const double cardio_pc1 = pc1_separation(html, "PCA — random-vit", "label: cardiomegaly");
        std::printf(
            "[measured] PCA map, PC1 AUROC (either direction): nodule %.3f, "
            "cardiomegaly %.3f\n",
            nodule_pc1, cardio_pc1);
        EXPECT_GT(nodule_pc1, 0.75);
        EXPECT_LT(cardio_pc1, 0.65);
    } else {
        // Only the documented case: the Vega files are not installed.
        EXPECT_THROW(radprobe::report::find_vega_dir(), radprobe::InputError) << o.run_out;
    }
}

TEST(ShortcutAlarmE2e, NoAlarmOnDefaultPhantomsWhereTheCnnBeatsTheControl) {
    TempDir tmp;
    const Outcome o = synth_and_run(tmp.path(), "", "[cardiomegaly]");
    const auto synth = nlohmann::json::parse(read_file_text(tmp / "phantoms" / "synth.json"));
    EXPECT_TRUE(synth.at("acquisition_shifts").empty());
    const auto alarms = alarms_by_task(o.db);
    ASSERT_EQ(alarms.size(), 1u) << o.run_out;
    const ShortcutAlarm& cardio = alarms.at("cardiomegaly");
    EXPECT_FALSE(cardio.alarm);
    EXPECT_LT(cardio.difference, 0.0);
    EXPECT_LT(cardio.p_adjusted, 0.05);
    const CliResult board = run_cli("results " + q(o.db));
    ASSERT_EQ(board.exit_code, 0) << board.err;
    EXPECT_FALSE(contains(board.out, "WARNING")) << board.out;
}

}  // namespace
}  // namespace radprobe::test
