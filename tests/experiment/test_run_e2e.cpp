// `radprobe run` end to end, as a user runs it: tiny phantoms, two encoders (the built-in random
// ViT and the DINOv2 fixture), linear + kNN probes on two poolings and the CNN baseline; the
// database and the reports are written; a re-run does nothing; a run killed in the middle
// (RADPROBE_RUN_KILL_AT: SIGKILL right after a run started) resumes to the same numbers; a run
// that fails is recorded and the grid continues with exit status 1.

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/report/report.hpp"
#include "radprobe/results/results.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

namespace fs = std::filesystem;
using namespace radprobe::results;

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
        ++n;
    }
    return n;
}

// Phantoms once per process (each test is its own process under ctest).
fs::path make_phantoms(const fs::path& dir) {
    const CliResult r = run_cli("synth --out " + q(dir) +
                                " --n 120 --size 64 --seed 11 --tube-ptx-correlation 0.5 "
                                "--cardiomegaly-prevalence 0.4 --pneumothorax-prevalence 0.35");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return dir / "manifest.csv";
}

std::string config_text(const fs::path& manifest, const fs::path& out, const std::string& db,
                        const std::string& tasks = "[cardiomegaly, pneumothorax]",
                        bool baseline = true) {
    return "data:\n  manifest: " + q(manifest) +
           "\n"
           "encoders:\n"
           "  - name: rand-vit\n"
           "    random_vit: {seed: 5, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
           "image_size: 64}\n"
           "    preprocessing: {size: 64}\n"
           "  - name: dino-fixture\n"
           "    path: " +
           q(encoder_fixture("dinov2")) +
           "\n"
           "    batch: 16\n"
           "tasks:\n  classification: " +
           tasks +
           "\n"
           "adaptations:\n"
           "  linear: {c_grid: '0.01,0.1,1'}\n"
           "  knn: {k: [5, 10]}\n" +
           (baseline
                ? "  cnn_baseline: {size: 64, width: 4, blocks: [1, 1], epochs: 2, batch: 16}\n"
                : "") +
           "pooling: [cls, mean]\n"
           "seeds: [3]\n"
           "statistics: {n_boot: 200}\n"
           "output:\n"
           "  db: " +
           q(out / db) +
           "\n"
           "  store: " +
           q(out / "embeddings") +
           "\n"
           "  report: " +
           q(out / (db + ".html")) +
           "\n"
           "  report_md: " +
           q(out / (db + ".md")) + "\n";
}

struct RunNumbers {
    std::string task, encoder, adaptation, pooling;
    std::vector<Metric> metrics;
    std::size_t predictions = 0;
};

// Every run of a database by config hash; fails the test on duplicates.
std::map<std::string, RunNumbers> numbers_of(const fs::path& db_path) {
    ResultsDb db = ResultsDb::open_existing(db_path);
    std::map<std::string, RunNumbers> out;
    for (const auto& r : db.runs({"", "", true})) {
        EXPECT_EQ(r.status, RunStatus::kCompleted) << r.spec.config_hash << " " << r.spec.notes;
        EXPECT_EQ(out.count(r.spec.config_hash), 0u) << "run twice: " << r.spec.config_hash;
        RunNumbers n{r.spec.task,    r.spec.encoder,   r.spec.adaptation,
                     r.spec.pooling, db.metrics(r.id), db.predictions(r.id).size()};
        out[r.spec.config_hash] = n;
    }
    return out;
}

// Two studies on one database at once: the second refuses before touching anything, naming the
// database and the process that holds it; once that one is done the study runs.
TEST(RunE2e, ASecondRunOnTheSameDatabaseRefusesWhileTheFirstHoldsIt) {
    TempDir tmp;
    const fs::path manifest = make_phantoms(tmp / "phantoms");
    const fs::path out = tmp / "out";
    const fs::path cfg = tmp / "a.yaml";
    write_file_atomic(cfg, config_text(manifest, out, "a.sqlite", "[cardiomegaly]", false));
    {
        // This test process stands for the first run: it holds the database's lock.
        auto first = FileLock::try_lock(fs::path((out / "a.sqlite").string() + ".lock"));
        ASSERT_TRUE(first.has_value());
        const CliResult second = run_cli("run " + q(cfg) + " --threads 2");
        EXPECT_EQ(second.exit_code, 1) << second.out;
        EXPECT_TRUE(contains(second.err, (out / "a.sqlite").string() +
                                             ": another radprobe run or demo is writing it (pid " +
                                             std::to_string(::getpid()) + ")"))
            << second.err;
        EXPECT_FALSE(fs::exists(out / "a.sqlite"));
        EXPECT_FALSE(fs::exists(out / "embeddings"));
    }
    const CliResult after = run_cli("run " + q(cfg) + " --threads 2");
    EXPECT_EQ(after.exit_code, 0) << after.err << after.out;
    EXPECT_EQ(numbers_of(out / "a.sqlite").size(), 8u);
}

TEST(RunE2e, RunsRerunsAndResumesAfterAKill) {
    TempDir tmp;
    const fs::path manifest = make_phantoms(tmp / "phantoms");
    const fs::path out = tmp / "out";
    const fs::path cfg_a = tmp / "a.yaml";
    write_file_atomic(cfg_a, config_text(manifest, out, "a.sqlite"));

    // 1. The whole grid: 2 encoders × 2 probes × 2 poolings × 2 tasks + 2 baselines = 18 runs.
    const CliResult first = run_cli("run " + q(cfg_a) + " --threads 2");
    ASSERT_EQ(first.exit_code, 0) << first.err << first.out;
    EXPECT_TRUE(contains(first.out, "18 runs (0 in the database, 18 to run)")) << first.out;
    EXPECT_TRUE(contains(first.out, "[1/22] extract rand-vit")) << first.out;
    EXPECT_TRUE(contains(first.out, "18 runs completed, 0 skipped")) << first.out;
    EXPECT_EQ(count(first.out, "AUROC "), 18u) << first.out;
    const auto a = numbers_of(out / "a.sqlite");
    ASSERT_EQ(a.size(), 18u);
    std::map<std::string, int> per_adaptation;
    for (const auto& [hash, n] : a) {
        ++per_adaptation[n.adaptation];
        ASSERT_GE(n.metrics.size(), 2u);
        EXPECT_EQ(n.metrics[0].name, "auroc");
        ASSERT_TRUE(n.metrics[0].value.has_value()) << hash;
        EXPECT_GE(*n.metrics[0].value, 0.0);
        EXPECT_LE(*n.metrics[0].value, 1.0);
        EXPECT_TRUE(n.metrics[0].ci_lo.has_value()) << hash;
        EXPECT_GT(n.predictions, 10u) << hash;  // the test split's images
    }
    EXPECT_EQ(per_adaptation["linear"], 8);
    EXPECT_EQ(per_adaptation["knn"], 8);
    EXPECT_EQ(per_adaptation["cnn_baseline"], 2);
    {
        ResultsDb db = ResultsDb::open_existing(out / "a.sqlite");
        EXPECT_GT(db.analysis("comparisons").size(), 0u);  // paired DeLong against the best
    }
    // Reports: Markdown always; HTML when the Vega files are installed.
    const std::string md = read_file_text(out / "a.sqlite.md");
    EXPECT_TRUE(contains(md, "dino-fixture")) << md.substr(0, 400);
    EXPECT_TRUE(contains(md, "rand-vit"));
    if (contains(first.out, "HTML report not written")) {
        // Only the documented case: the Vega files are not installed (scripts/setup.sh installs
        // them). Any other renderer error is a failure.
        EXPECT_THROW(radprobe::report::find_vega_dir(), radprobe::InputError) << first.out;
        EXPECT_TRUE(contains(first.out, "scripts/setup.sh")) << first.out;
        EXPECT_FALSE(fs::exists(out / "a.sqlite.html"));
    } else {
        EXPECT_TRUE(contains(read_file_text(out / "a.sqlite.html"), "rand-vit"));
    }
    // One store per encoder, each extracted once with both poolings.
    std::size_t stores = 0;
    for (const auto& e : fs::directory_iterator(out / "embeddings")) {
        if (fs::exists(e.path() / "COMPLETE")) {
            ++stores;
            EXPECT_TRUE(fs::exists(e.path() / "cls.npy"));
            EXPECT_TRUE(fs::exists(e.path() / "mean.npy"));
        }
    }
    EXPECT_EQ(stores, 2u);
    // The number a wrong runner would miss: `radprobe probe` on the same store, split, options
    // and seed gives exactly the AUROC and CI the grid recorded for that run.
    std::size_t checked = 0;
    for (const auto& e : fs::directory_iterator(out / "embeddings")) {
        if (!fs::exists(e.path() / "COMPLETE")) {
            continue;
        }
        const auto store = nlohmann::json::parse(read_file_text(e.path() / "store.json"));
        const std::string encoder =
            fs::path(store.at("model_dir").get<std::string>()).filename().string();
        const CliResult probe =
            run_cli("probe --store " + q(e.path()) + " --manifest " + q(manifest) +
                    " --label cardiomegaly --pool cls --c-grid 0.01,0.1,1 --seed 3 --n-boot 200");
        ASSERT_EQ(probe.exit_code, 0) << probe.err;
        const auto label = nlohmann::json::parse(probe.out).at("labels").at(0);
        for (const auto& [hash, n] : a) {
            if (n.encoder == encoder && n.adaptation == "linear" && n.pooling == "cls" &&
                n.task == "cardiomegaly") {
                EXPECT_EQ(*n.metrics[0].value, label.at("auroc").get<double>()) << encoder;
                EXPECT_EQ(*n.metrics[0].ci_lo, label.at("ci_bootstrap")[0].get<double>());
                EXPECT_EQ(*n.metrics[0].ci_hi, label.at("ci_bootstrap")[1].get<double>());
                ++checked;
            }
        }
    }
    EXPECT_EQ(checked, 2u);

    // 2. A re-run does nothing: every run skipped, no extraction, the database unchanged.
    const CliResult again = run_cli("run " + q(cfg_a) + " --threads 2");
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_TRUE(contains(again.out, "0 runs completed, 18 skipped")) << again.out;
    // Both stores are complete: the extraction steps find them cached and do no work.
    EXPECT_EQ(count(again.out, " COMPLETE"), 2u) << again.out;
    EXPECT_EQ(count(again.out, " (cached): "), 2u) << again.out;
    EXPECT_EQ(numbers_of(out / "a.sqlite").size(), 18u);
    const CliResult dry = run_cli("run " + q(cfg_a) + " --dry-run");
    ASSERT_EQ(dry.exit_code, 0) << dry.err;
    EXPECT_TRUE(contains(dry.out, "18 runs (18 in the database, 0 to run)")) << dry.out;

    // 3. Killed in the middle (SIGKILL right after the 7th run started), then resumed: the
    //    same runs once each, the same numbers as the uninterrupted database.
    const fs::path cfg_b = tmp / "b.yaml";
    write_file_atomic(cfg_b, config_text(manifest, out, "b.sqlite"));
    ::setenv("RADPROBE_RUN_KILL_AT", "7", 1);
    const CliResult killed = run_cli("run " + q(cfg_b) + " --threads 2 --quiet");
    ::unsetenv("RADPROBE_RUN_KILL_AT");
    EXPECT_NE(killed.exit_code, 0);
    {
        ResultsDb db = ResultsDb::open_existing(out / "b.sqlite");
        const auto runs = db.runs({"", "", true});
        ASSERT_EQ(runs.size(), 7u);
        const auto running = std::count_if(runs.begin(), runs.end(), [](const RunRecord& r) {
            return r.status == RunStatus::kRunning;  // the one being written when killed
        });
        EXPECT_EQ(running, 1);
    }
    const CliResult resumed = run_cli("run " + q(cfg_b) + " --threads 2");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_TRUE(contains(resumed.out, "12 runs completed, 6 skipped")) << resumed.out;
    const auto b = numbers_of(out / "b.sqlite");
    ASSERT_EQ(b.size(), a.size());
    for (const auto& [hash, na] : a) {
        const auto it = b.find(hash);
        ASSERT_NE(it, b.end()) << hash;
        const auto& nb = it->second;
        EXPECT_EQ(nb.predictions, na.predictions);
        ASSERT_EQ(nb.metrics.size(), na.metrics.size());
        for (std::size_t m = 0; m < na.metrics.size(); ++m) {
            EXPECT_EQ(nb.metrics[m].name, na.metrics[m].name);
            // Probes are deterministic for any thread count; the CNN baseline is seeded.
            const double tol = na.adaptation == "cnn_baseline" ? 1e-6 : 1e-12;
            ASSERT_EQ(nb.metrics[m].value.has_value(), na.metrics[m].value.has_value());
            if (na.metrics[m].value) {
                EXPECT_NEAR(*nb.metrics[m].value, *na.metrics[m].value, tol)
                    << hash << " " << na.adaptation << " " << na.metrics[m].name;
            }
        }
    }
}

TEST(RunE2e, AFailedRunIsRecordedAndTheGridContinues) {
    TempDir tmp;
    const fs::path manifest = make_phantoms(tmp / "phantoms");
    // A label with one class only: its probes cannot be trained.
    std::string text = read_file_text(manifest);
    std::string with_never;
    std::size_t line = 0;
    for (std::size_t pos = 0; pos < text.size();) {
        const auto end = text.find('\n', pos);
        const std::string row = text.substr(pos, end - pos);
        if (!row.empty()) {
            with_never += row + (line++ == 0 ? ",never" : ",0") + "\n";
        }
        pos = end == std::string::npos ? text.size() : end + 1;
    }
    write_file_atomic(tmp / "phantoms" / "never.csv", with_never);
    const fs::path cfg = tmp / "c.yaml";
    std::string yaml = config_text(tmp / "phantoms" / "never.csv", tmp / "out", "c.sqlite",
                                   "[never, cardiomegaly]", false);
    // One encoder is enough here.
    yaml.erase(yaml.find("  - name: dino-fixture"),
               yaml.find("tasks:") - yaml.find("  - name: dino-fixture"));
    write_file_atomic(cfg, yaml);
    const CliResult r = run_cli("run " + q(cfg) + " --threads 2");
    EXPECT_EQ(r.exit_code, 1) << r.out;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_TRUE(contains(r.err, "4 of 8 runs failed")) << r.err;
    EXPECT_TRUE(contains(r.out, "4 runs completed, 0 skipped (already in the database), 4 failed"))
        << r.out;
    ResultsDb db = ResultsDb::open_existing(tmp / "out" / "c.sqlite");
    std::size_t failed = 0, completed = 0;
    for (const auto& run : db.runs({"", "", true})) {
        if (run.status == RunStatus::kFailed) {
            ++failed;
            EXPECT_EQ(run.spec.task, "never");
            EXPECT_FALSE(run.spec.notes.empty());
        } else {
            ++completed;
            EXPECT_EQ(run.status, RunStatus::kCompleted);
            EXPECT_EQ(run.spec.task, "cardiomegaly");
        }
    }
    EXPECT_EQ(failed, 4u);
    EXPECT_EQ(completed, 4u);
    // A re-run retries the failed runs only (and they fail again, replacing their rows).
    const CliResult again = run_cli("run " + q(cfg) + " --threads 2");
    EXPECT_EQ(again.exit_code, 1);
    EXPECT_TRUE(
        contains(again.out, "0 runs completed, 4 skipped (already in the database), 4 failed"))
        << again.out;
    EXPECT_EQ(db.runs({"", "", true}).size(), 8u);
}

// Every other adaptation and the analyses, each on the smallest settings: one random ViT,
// trained heads, fine-tuning, a segmentation decoder and the U-Net, the perturbation panel,
// the lesion probe and subgroups of every classification run. Every run must complete and
// record what the report draws.
TEST(RunE2e, EveryAdaptationAndAnalysisRecordsItsResults) {
    TempDir tmp;
    const fs::path manifest = make_phantoms(tmp / "phantoms");
    const fs::path out = tmp / "out";
    const std::string yaml =
        "data:\n  manifest: " + q(manifest) +
        "\n  roi: 'boxes:nodule'\n"
        "encoders:\n"
        "  - name: rand-vit\n"
        "    random_vit: {seed: 5, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
        "image_size: 64}\n"
        "    preprocessing: {size: 64}\n"
        "tasks:\n  classification: [cardiomegaly]\n  segmentation: [heart]\n"
        "adaptations:\n"
        "  linear: {c_grid: '0.1,1'}\n"
        "  attention: {lr_grid: '1e-3', epochs: 2, batch: 32, patience: 2}\n"
        "  mlp: {lr_grid: '1e-3', epochs: 2, batch: 32, patience: 2}\n"
        "  finetune: {epochs: 1, batch: 16, augment: none, unfreeze: last-1}\n"
        "  segment: {decoders: [linear], epochs: 2, batch: 16}\n"
        "  unet_baseline: {size: 64, depth: 2, channels: 8, epochs: 2, batch: 16}\n"
        "pooling: [cls]\n"
        "seeds: [1]\n"
        "analyses:\n"
        "  subgroups: {attributes: [chest_tube]}\n"
        "  perturb: {kinds: [blob], sizes: '1p', contrasts: [0.3], max_images: 40, folds: 3}\n"
        "  lesions: {label: nodule, max_images: 60, folds: 3, jitter_sigmas: [5]}\n"
        "statistics: {n_boot: 200}\n"
        "output:\n  db: " +
        q(out / "all.sqlite") + "\n  store: " + q(out / "embeddings") + "\n  report: ''\n" +
        "  report_md: " + q(out / "all.md") + "\n";
    const fs::path cfg = tmp / "all.yaml";
    write_file_atomic(cfg, yaml);
    const CliResult r = run_cli("run " + q(cfg) + " --threads 2");
    // linear, attention, mlp, finetune (classification) + subgroups of each; segment-linear,
    // unet_baseline (heart); perturb, lesions.
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_TRUE(contains(r.out, "12 runs completed, 0 skipped (already in the database), 0 failed"))
        << r.out;
    ResultsDb db = ResultsDb::open_existing(out / "all.sqlite");
    std::map<std::string, int> adaptations;
    for (const auto& run : db.runs({"", "", true})) {
        EXPECT_EQ(run.status, RunStatus::kCompleted)
            << run.spec.adaptation << ": " << run.spec.notes;
        ++adaptations[run.spec.adaptation];
        const auto metrics = db.metrics(run.id);
        if (run.spec.adaptation.rfind("analysis:", 0) == 0) {
            continue;
        }
        ASSERT_FALSE(metrics.empty()) << run.spec.adaptation;
        const bool seg = run.spec.task == "heart";
        EXPECT_EQ(metrics[0].name, seg ? "dice" : "auroc") << run.spec.adaptation;
        EXPECT_TRUE(metrics[0].value.has_value()) << run.spec.adaptation;
        const auto preds = db.predictions(run.id);
        EXPECT_GT(preds.size(), 10u) << run.spec.adaptation;
        if (seg) {
            EXPECT_TRUE(preds[0].dice.has_value() || preds[1].dice.has_value());
        }
    }
    EXPECT_EQ(adaptations["linear"], 1);
    EXPECT_EQ(adaptations["attention"], 1);
    EXPECT_EQ(adaptations["mlp"], 1);
    EXPECT_EQ(adaptations["finetune"], 1);
    EXPECT_EQ(adaptations["segment-linear"], 1);
    EXPECT_EQ(adaptations["unet_baseline"], 1);
    EXPECT_EQ(adaptations["analysis:subgroups"], 4);
    EXPECT_EQ(adaptations["analysis:perturb"], 1);
    EXPECT_EQ(adaptations["analysis:lesions"], 1);
    EXPECT_GT(db.analysis("subgroups").size(), 0u);
    EXPECT_GT(db.analysis("perturb").size(), 0u);
    EXPECT_GT(db.analysis("lesions").size(), 0u);
    // Analysis runs are not leaderboard rows.
    for (const auto& row : db.leaderboard()) {
        EXPECT_NE(row.run.spec.adaptation.rfind("analysis:", 0), 0u);
    }
}

}  // namespace
}  // namespace radprobe::test
