// `radprobe finetune` from the command line: a run on phantoms writes predictions, metrics with
// CIs and an HF checkpoint that `radprobe extract` accepts; a run stopped after epoch 1 (test
// hook) and resumed with --resume prints the same metrics; --hflip warns; --device cuda fails
// clearly without CUDA.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "processor_fixture.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/files.hpp"
#include "test_support.hpp"

namespace radprobe {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

class FinetuneCli : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir();
        const auto synth = run_cli("synth --out '" + (dir_->path() / "ph").string() +
                                   "' --n 60 --size 64 --seed 2 --cardiomegaly-prevalence 0.5");
        ASSERT_EQ(synth.exit_code, 0) << synth.err;
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    // Balanced classes: the test split has 3 positives and 6 negatives (enough for the DeLong
    // CI; the default prevalence left it 1 positive, whose CI is undefined).
    static std::string common(const fs::path& out, int epochs = 2, int threads = 2) {
        return "finetune --model '" + test::encoder_fixture("dinov2").string() + "' --manifest '" +
               (dir_->path() / "ph" / "manifest.csv").string() +
               "' --label cardiomegaly --epochs " + std::to_string(epochs) +
               " --batch 16 --size 56 --n-boot 100 --seed 4 --threads " + std::to_string(threads) +
               " --out '" + out.string() + "'";
    }
    static TempDir* dir_;
};
TempDir* FinetuneCli::dir_ = nullptr;

TEST_F(FinetuneCli, RunsResumesAndTheCheckpointIsAModel) {
    TempDir tmp;
    const auto full = run_cli(common(tmp / "full"));
    ASSERT_EQ(full.exit_code, 0) << full.err;
    const auto j = nlohmann::json::parse(full.out);
    EXPECT_EQ(j["command"], "finetune");
    const auto& label = j["labels"][0];
    EXPECT_EQ(label["label"], "cardiomegaly");
    EXPECT_LE(label["ci_delong"][0].get<double>(), label["auroc"].get<double>());
    EXPECT_GE(label["ci_delong"][1].get<double>(), label["auroc"].get<double>());
    EXPECT_TRUE(fs::exists(tmp / "full" / "predictions_cardiomegaly.csv"));

    // Stop after epoch 1 (the env hook behaves like a kill after the checkpoint), then resume.
    ASSERT_EQ(::setenv("RADPROBE_TEST_FINETUNE_STOP_AFTER_EPOCH", "1", 1), 0);
    const auto part = run_cli(common(tmp / "split"));
    ::unsetenv("RADPROBE_TEST_FINETUNE_STOP_AFTER_EPOCH");
    EXPECT_EQ(part.exit_code, 3) << part.err;
    EXPECT_NE(part.err.find("--resume"), std::string::npos) << part.err;
    // The stopped run left epoch 1's checkpoint and no results.
    EXPECT_FALSE(fs::exists(tmp / "split" / "metrics.json"));
    const auto state =
        nlohmann::json::parse(read_file_text(tmp / "split" / "checkpoint" / "state.json"));
    EXPECT_EQ(state["epochs_done"], 1);
    // Without --resume the checkpoint is not overwritten.
    EXPECT_EQ(run_cli(common(tmp / "split")).exit_code, 2);
    const auto resumed = run_cli(common(tmp / "split") + " --resume");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(read_file_text(tmp / "split" / "predictions_cardiomegaly.csv"),
              read_file_text(tmp / "full" / "predictions_cardiomegaly.csv"));
    const auto jr = nlohmann::json::parse(resumed.out);
    EXPECT_EQ(jr["resumed"], true);
    EXPECT_EQ(jr["train_loss"], j["train_loss"]);  // epoch 2 identical after the restart
    EXPECT_EQ(jr["labels"][0]["auroc"], label["auroc"]);
    EXPECT_EQ(jr["labels"][0]["ci_bootstrap"], label["ci_bootstrap"]);

    // The best encoder is an ordinary HF model directory.
    const auto tokens =
        run_cli("preprocess --model '" + (tmp / "full" / "best" / "encoder").string() + "' '" +
                (dir_->path() / "ph" / "images" / "phantom_000000.png").string() + "' --out '" +
                (tmp / "x.npy").string() + "'");
    EXPECT_EQ(tokens.exit_code, 0) << tokens.err;
    const auto ext = run_cli("extract --model '" + (tmp / "full" / "best" / "encoder").string() +
                             "' --manifest '" + (dir_->path() / "ph" / "manifest.csv").string() +
                             "' --out '" + (tmp / "emb").string() + "'");
    EXPECT_EQ(ext.exit_code, 0) << ext.err;
}

TEST_F(FinetuneCli, Aimv2FineTunesAtItsSizeAndItsCheckpointIsAModel) {
    // AIMv2's learned position table fixes its input at image_size (42 px in the fixture); the
    // native variant takes any size. Both fine-tune, and the best encoder extracts again.
    for (const auto& [fixture, size] :
         std::vector<std::pair<std::string, int>>{{"aimv2", 42}, {"aimv2_native", 56}}) {
        TempDir tmp;
        const auto r =
            run_cli("finetune --model '" +
                    test::fixture_with_clip_processor(fixture, tmp / "model", size).string() +
                    "' --manifest '" + (dir_->path() / "ph" / "manifest.csv").string() +
                    "' --label cardiomegaly --epochs 1 --batch 16 --size " + std::to_string(size) +
                    " --n-boot 20 --seed 4 --threads 2 --out '" + (tmp / "o").string() + "'");
        ASSERT_EQ(r.exit_code, 0) << fixture << ": " << r.err;
        EXPECT_TRUE(fs::exists(tmp / "o" / "best" / "encoder" / "model.safetensors")) << fixture;
        const auto ext =
            run_cli("extract --model '" + (tmp / "o" / "best" / "encoder").string() +
                    "' --manifest '" + (dir_->path() / "ph" / "manifest.csv").string() +
                    "' --out '" + (tmp / "emb").string() + "' --pool mean");
        EXPECT_EQ(ext.exit_code, 0) << fixture << ": " << ext.err;
    }
}

TEST_F(FinetuneCli, HflipWarnsAboutAnatomy) {
    TempDir tmp;
    const auto r = run_cli(common(tmp / "o", 1) + " --hflip");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("swaps anatomy"), std::string::npos) << r.err;
}

// Without a GPU, --device cuda is a clear error; with one, the run happens on it and its
// metrics say where the weights were (ran_on), not just what was asked for.
TEST_F(FinetuneCli, CudaRunsOnTheGpuOrIsAClearError) {
    TempDir tmp;
    const int gpus = test::cuda_devices();
    ASSERT_GE(gpus, 0) << "radprobe --version does not say how many CUDA devices it sees";
    const auto r = run_cli(common(tmp / "o") + " --device cuda");
    if (gpus == 0) {
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE(r.err.find("--device cuda"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("CUDA"), std::string::npos) << r.err;
    } else {
        ASSERT_EQ(r.exit_code, 0) << r.err;
        const auto metrics = nlohmann::json::parse(read_file_text(tmp / "o" / "metrics.json"));
        EXPECT_EQ(metrics.at("ran_on").get<std::string>().rfind("cuda", 0), 0u) << metrics.dump();
    }
    const auto bad = run_cli(common(tmp / "o2") + " --device gpu");
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

// The test-set scores of a finished run, by image.
std::map<std::string, double> scores(const fs::path& out) {
    std::map<std::string, double> by_image;
    const auto table = CsvTable::read(out / "predictions_cardiomegaly.csv");
    for (const auto& row : table.rows()) {
        by_image[row[table.column("image")]] = std::stod(row[table.column("score")]);
    }
    return by_image;
}

// Two ranks on loopback (Gloo), each computing half of every global batch of 16, take the same
// steps as one process on the same batches: the same best epoch and, to float tolerance (the
// halves go through the BLAS in other shapes), the same losses, validation curve and test scores.
TEST_F(FinetuneCli, TwoGlooRanksGiveTheWeightsOfOneProcess) {
    TempDir tmp;
    const auto one = run_cli(common(tmp / "one", 3, 1));
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const std::string port = std::to_string(20000 + ::getpid() % 20000);
    const std::string bin = "'" + test::radprobe_binary().string() + "' ";
    const std::string args = common(tmp / "dp", 3, 1);
    const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " ";
    const std::string cmd = "(" + env + "RANK=1 " + bin + args + " >'" +
                            (tmp / "rank1.out").string() + "' 2>&1 & " + env + "RANK=0 " + bin +
                            args + " >'" + (tmp / "rank0.out").string() +
                            "' 2>&1; r0=$?; wait $!; r1=$?; exit $((r0 + r1)))";
    const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
    ASSERT_EQ(status, 0) << test::read_text(tmp / "rank0.out")
                         << test::read_text(tmp / "rank1.out");
    EXPECT_NE(test::read_text(tmp / "rank1.out").find("rank 1 of 2: 3 epochs trained"),
              std::string::npos)
        << test::read_text(tmp / "rank1.out");
    const auto a = nlohmann::json::parse(one.out);
    const auto b = nlohmann::json::parse(read_file_text(tmp / "dp" / "metrics.json"));
    EXPECT_EQ(b["data_parallel_ranks"], 2);
    EXPECT_EQ(a["data_parallel_ranks"], 1);
    EXPECT_EQ(a["best_epoch"], b["best_epoch"]);
    const auto la = a["train_loss"].get<std::vector<double>>();
    const auto lb = b["train_loss"].get<std::vector<double>>();
    ASSERT_EQ(la.size(), lb.size());
    for (std::size_t e = 0; e < la.size(); ++e) {
        EXPECT_NEAR(la[e], lb[e], 1e-5) << "epoch " << e + 1;
    }
    const auto sa = scores(tmp / "one"), sb = scores(tmp / "dp");
    ASSERT_EQ(sa.size(), sb.size());
    ASSERT_GT(sa.size(), 5u);
    double worst = 0.0;
    for (const auto& [image, score] : sa) {
        worst = std::max(worst, std::abs(score - sb.at(image)));
    }
    EXPECT_LT(worst, 1e-5) << "max |score difference| over the test images";
    std::printf("two ranks vs one process: max |test score difference| %.3g\n", worst);
    // Without MASTER_ADDR the ranks cannot meet: one line saying what to export.
    setenv("WORLD_SIZE", "2", 1);
    setenv("RANK", "0", 1);
    const auto lonely = run_cli(common(tmp / "lonely"));
    unsetenv("WORLD_SIZE");
    unsetenv("RANK");
    EXPECT_EQ(lonely.exit_code, 2) << lonely.err;
    EXPECT_NE(lonely.err.find("needs MASTER_ADDR and MASTER_PORT"), std::string::npos)
        << lonely.err;
}

}  // namespace
}  // namespace radprobe
