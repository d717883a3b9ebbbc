// radprobe segment / baseline --task seg end to end on tiny phantoms through the CLI: every
// decoder runs, writes masks on the original grid, metrics with CIs and the empty-mask
// convention; --apply reuses a checkpoint; bad usage exits 2, bad data 1.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "processor_fixture.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "test_support.hpp"

namespace radprobe {
namespace {

namespace fs = std::filesystem;
using test::q;
using test::run_cli;
using test::TempDir;

class SegmentCli : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        tmp_ = new TempDir();
        // Prevalences 0.5 / 0.4 with seed 2: val holds both cardiomegaly classes and test two
        // of each (the CNN baseline's CI needs them); test has pneumothorax-positive and
        // -negative images.
        const auto r = run_cli("synth --out " + q(*tmp_ / "ph") +
                               " --n 24 --size 64 --seed 2 --cardiomegaly-prevalence 0.5 "
                               "--pneumothorax-prevalence 0.4");
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    static void TearDownTestSuite() {
        delete tmp_;
        tmp_ = nullptr;
    }
    static fs::path manifest() { return *tmp_ / "ph" / "manifest.csv"; }
    static TempDir* tmp_;
};
TempDir* SegmentCli::tmp_ = nullptr;

void expect_outputs(const fs::path& out, const std::string& stdout_text) {
    const auto j = nlohmann::json::parse(read_file_text(out / "metrics.json"));
    EXPECT_EQ(nlohmann::json::parse(stdout_text), j);
    EXPECT_EQ(j.at("task"), "seg");
    EXPECT_TRUE(j.at("empty_mask_convention").contains("both_empty"));
    EXPECT_TRUE(j.at("metrics").at("dice").at("ci").is_array());
    EXPECT_EQ(j.at("bootstrap").at("cluster"), "patient_id");
    const auto preds = CsvTable::read(out / "predictions.csv");
    EXPECT_EQ(preds.num_rows(), j.at("n_test").get<std::size_t>());
    for (const auto& row : preds.rows()) {
        const auto m = dataset::read_mask_png(out / row[preds.column("mask")]);
        EXPECT_EQ(m.rows, 64);  // the original phantom grid
        EXPECT_EQ(m.cols, 64);
    }
    EXPECT_TRUE(fs::exists(out / "model" / "decoder.pt"));
    EXPECT_TRUE(fs::exists(out / "model" / "seg_model.json"));
}

TEST_F(SegmentCli, UnetBaselineRunsAndClassificationStillWorks) {
    const auto out = *tmp_ / "unet";
    const auto r = run_cli("baseline --task seg --manifest " + q(manifest()) +
                           " --mask heart --size 64 --channels 4 --depth 2 --epochs 2 --n-boot 50 "
                           "--threads 2 --out " +
                           q(out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_outputs(out, r.out);
    const auto cls = run_cli("baseline --task cls --manifest " + q(manifest()) +
                             " --label cardiomegaly --size 32 --width 4 --blocks 1 --epochs 1 "
                             "--n-boot 20 --threads 2");
    EXPECT_EQ(cls.exit_code, 0) << cls.err;
    EXPECT_EQ(run_cli("baseline --task seg --manifest " + q(manifest())).exit_code, 2);
}

TEST_F(SegmentCli, LinearAndMultiscaleDecodersOnAFrozenEncoderAndApply) {
    const auto model = test::encoder_fixture("dinov2");
    for (const std::string decoder : {"linear", "multiscale"}) {
        const auto out = *tmp_ / decoder;
        const auto r = run_cli("segment --decoder " + decoder + " --model " + q(model) +
                               " --manifest " + q(manifest()) +
                               " --mask pneumothorax --resize 64 --epochs 2 --n-boot 50 "
                               "--threads 2 --out " +
                               q(out));
        ASSERT_EQ(r.exit_code, 0) << r.err;
        expect_outputs(out, r.out);
        const auto j = nlohmann::json::parse(r.out);
        // Pneumothorax-negative phantoms have empty masks: counted and the convention recorded.
        EXPECT_GT(j.at("test_empty_truth").get<int>(), 0);
        // Beside the all-images Dice: Dice over the pneumothorax-positive test images only.
        const auto& pos = j.at("metrics").at("dice_positive");
        EXPECT_GT(j.at("n_positive").get<int>(), 0);
        EXPECT_EQ(pos.at("n_positive"), j.at("n_positive"));
        EXPECT_EQ(j.at("n_positive").get<int>() + j.at("test_empty_truth").get<int>(),
                  j.at("n_scored").get<int>());
        EXPECT_TRUE(pos.at("mean").is_number()) << pos;
        EXPECT_TRUE(pos.at("ci").is_array());
        EXPECT_EQ(j.at("empty_mask_convention").at("both_empty"), "perfect");
        EXPECT_EQ(j.at("layers").size(), decoder == "linear" ? 1u : 4u);
        // The patch grids were extracted once into a store under OUT/embeddings.
        EXPECT_TRUE(fs::exists(out / "embeddings"));
    }
    // Run again over the store the first run extracted (as a resume after a kill does): the same
    // decoder and the same masks (the decoder's initial weights once depended on whether the
    // extraction ran).
    auto first = nlohmann::json::parse(read_file_text(*tmp_ / "linear" / "metrics.json"));
    const auto first_masks = read_file_text(*tmp_ / "linear" / "predictions.csv");
    const auto again =
        run_cli("segment --decoder linear --model " + q(model) + " --manifest " + q(manifest()) +
                " --mask pneumothorax --resize 64 --epochs 2 --n-boot 50 "
                "--threads 2 --out " +
                q(*tmp_ / "linear"));
    ASSERT_EQ(again.exit_code, 0) << again.err;
    auto second = nlohmann::json::parse(again.out);
    first.erase("seconds");
    second.erase("seconds");
    EXPECT_EQ(second, first);
    EXPECT_EQ(read_file_text(*tmp_ / "linear" / "predictions.csv"), first_masks);
    const auto applied = *tmp_ / "applied";
    const auto a = run_cli("segment --apply " + q(*tmp_ / "multiscale" / "model") + " --manifest " +
                           q(manifest()) + " --threads 2 --out " + q(applied));
    ASSERT_EQ(a.exit_code, 0) << a.err;
    EXPECT_EQ(CsvTable::read(applied / "predictions.csv").num_rows(), 24u);
}

TEST_F(SegmentCli, Aimv2FeedsTheMultiscaleDecoderFrozenAndFineTuned) {
    // No CLS token: the decoders take AIMv2's patch grids (the native variant at any size).
    const auto model =
        test::fixture_with_clip_processor("aimv2_native", *tmp_ / "aimv2_native", 56);
    for (const std::string unfreeze : {"none", "last-1"}) {
        const auto out = *tmp_ / ("aimv2_" + unfreeze);
        const auto r =
            run_cli("segment --decoder multiscale --model " + q(model) + " --manifest " +
                    q(manifest()) + " --mask heart --resize 56 --layers -2,-1 --unfreeze " +
                    unfreeze + " --epochs 1 --n-boot 20 --threads 2 --out " + q(out));
        ASSERT_EQ(r.exit_code, 0) << unfreeze << ": " << r.err;
        expect_outputs(out, r.out);
        EXPECT_EQ(nlohmann::json::parse(r.out).at("layers").size(), 2u);
    }
}

TEST_F(SegmentCli, Sam2FeedsTheLinearDecoderAndTheMultiscaleDecoderEveryStage) {
    // SAM2's Hiera trunk is hierarchical like Swin: the linear decoder reads its last stage's
    // grid; the multiscale decoder its four stage maps (strides 4 to 32), from the encoder run
    // live, frozen or fine-tuned.
    const auto model = test::fixture_with_clip_processor("sam2_vision", *tmp_ / "sam2", 64);
    const std::string common = " --model " + q(model) + " --manifest " + q(manifest()) +
                               " --mask heart --resize 64 --epochs 1 --n-boot 20 --threads 2";
    const auto out = *tmp_ / "sam2_out";
    const auto r = run_cli("segment --decoder linear" + common + " --out " + q(out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_outputs(out, r.out);
    const auto ms = *tmp_ / "sam2_ms";
    const auto m = run_cli("segment --decoder multiscale" + common + " --out " + q(ms));
    ASSERT_EQ(m.exit_code, 0) << m.err;
    expect_outputs(ms, m.out);
    const auto j = nlohmann::json::parse(m.out);
    EXPECT_EQ(j.at("layers"), (std::vector<int>{1, 2, 3, 4}));
    EXPECT_EQ(j.at("features"), "live forward (frozen encoder: every stage's map)");
    const auto meta = nlohmann::json::parse(read_file_text(ms / "model" / "seg_model.json"));
    EXPECT_EQ(meta.at("stage_dims"), (std::vector<std::int64_t>{6, 12, 24, 48}));
    EXPECT_FALSE(fs::exists(ms / "model" / "encoder"));  // frozen: the folder's path is kept
    const auto a = run_cli("segment --apply " + q(ms / "model") + " --manifest " + q(manifest()) +
                           " --threads 2 --out " + q(*tmp_ / "sam2_ms_applied"));
    ASSERT_EQ(a.exit_code, 0) << a.err;
    EXPECT_EQ(CsvTable::read(*tmp_ / "sam2_ms_applied" / "predictions.csv").num_rows(), 24u);
    const auto ft = *tmp_ / "sam2_ms_ft";
    const auto f =
        run_cli("segment --decoder multiscale --unfreeze last-1" + common + " --out " + q(ft));
    ASSERT_EQ(f.exit_code, 0) << f.err;
    EXPECT_TRUE(fs::exists(ft / "model" / "encoder" / "model.safetensors"));
    // A store holds one grid, the stem is not a stage: one-line usage errors.
    const auto s =
        run_cli("segment --decoder multiscale --store " + q(out / "embeddings") + " --manifest " +
                q(manifest()) + " --mask heart --out " + q(*tmp_ / "sam2_s"));
    EXPECT_EQ(s.exit_code, 2) << s.err;
    EXPECT_NE(s.err.find("the decoder reads every stage, which a store does not hold"),
              std::string::npos)
        << s.err;
    const auto l = run_cli("segment --decoder multiscale --layers 0,4" + common + " --out " +
                           q(*tmp_ / "sam2_l"));
    EXPECT_EQ(l.exit_code, 2) << l.err;
    EXPECT_NE(l.err.find("not the stem (layer 0)"), std::string::npos) << l.err;
}

TEST_F(SegmentCli, FineTuningTheLastBlockSavesTheEncoder) {
    const auto out = *tmp_ / "ft";
    const auto r = run_cli("segment --decoder linear --model " +
                           q(test::encoder_fixture("dinov2")) + " --manifest " + q(manifest()) +
                           " --mask heart --resize 56 --unfreeze last-1 --augment default "
                           "--epochs 1 --n-boot 20 --threads 2 --out " +
                           q(out));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_outputs(out, r.out);
    EXPECT_TRUE(fs::exists(out / "model" / "encoder" / "model.safetensors"));
    const auto a = run_cli("segment --apply " + q(out / "model") + " --manifest " + q(manifest()) +
                           " --mask heart --threads 2 --out " + q(*tmp_ / "ft_a"));
    EXPECT_EQ(a.exit_code, 0) << a.err;
}

TEST_F(SegmentCli, BadUsageExitsTwoAndBadDataOne) {
    const auto model = q(test::encoder_fixture("dinov2"));
    const std::string base = " --manifest " + q(manifest()) + " --out " + q(*tmp_ / "bad");
    EXPECT_EQ(run_cli("segment --decoder foo --model " + model + " --mask heart" + base).exit_code,
              2);
    // Cached grids cannot be augmented.
    const auto aug = run_cli("segment --model " + model + " --mask heart --augment default" + base);
    EXPECT_EQ(aug.exit_code, 2);
    EXPECT_NE(aug.err.find("cannot be augmented"), std::string::npos) << aug.err;
    const auto missing = run_cli("segment --model " + model + " --mask liver" + base);
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_NE(missing.err.find("mask_liver"), std::string::npos) << missing.err;
    EXPECT_EQ(run_cli("segment --mask heart" + base).exit_code, 2);  // no model or store
}

}  // namespace
}  // namespace radprobe
