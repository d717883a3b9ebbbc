// `radprobe finetune` from the command line: a run on phantoms writes predictions, metrics with
// CIs and an HF checkpoint that `radprobe extract` accepts; a run stopped after epoch 1 (test
// hook) and resumed with --resume prints the same metrics; --hflip warns; --device cuda fails
// clearly without CUDA.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>

#include "radprobe/core/files.hpp"
#include "processor_fixture.hpp"
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
    static std::string common(const fs::path& out, int epochs = 2) {
        return "finetune --model '" + test::encoder_fixture("dinov2").string() + "' --manifest '" +
               (dir_->path() / "ph" / "manifest.csv").string() +
               "' --label cardiomegaly --epochs " + std::to_string(epochs) +
               " --batch 16 --size 56 --n-boot 100 --seed 4 --threads 2 --out '" + out.string() +
               "'";
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

}  // namespace
}  // namespace radprobe
