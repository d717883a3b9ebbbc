// Segmentation metrics against scipy/scikit-image goldens (make_goldens.py, same definition as
// metrics.hpp states) and hand-computed cases; empty-mask conventions. Tolerance 1e-9 absolute
// (distances in mm of 32×40 masks; differences are float rounding only).

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "eval_goldens.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"
#include "test_support.hpp"

namespace radprobe::eval {
namespace {

Mask blank(std::size_t h, std::size_t w) {
    return {h, w, std::vector<std::uint8_t>(h * w, 0)};
}

TEST(Segmentation, MatchesScipyGoldensForEverySpacing) {
    const test::Goldens g("seg_goldens.csv");
    const std::vector<std::string> cases = {"disk_shift", "border_rects", "noisy_blobs",
                                            "missed_component", "single_pixels"};
    const std::vector<std::pair<std::string, PixelSpacing>> spacings = {
        {"1x1", {1.0, 1.0}}, {"0.5x0.8", {0.5, 0.8}}, {"2x0.7", {2.0, 0.7}}};
    for (const auto& c : cases) {
        const Mask p = read_mask(test::golden_dir() / "masks/pred" / (c + ".png"));
        const Mask t = read_mask(test::golden_dir() / "masks/truth" / (c + ".png"));
        ASSERT_EQ(p.height, 32u);
        ASSERT_EQ(p.width, 40u);
        for (const auto& [tag, spacing] : spacings) {
            SegmentationOptions o;
            o.spacing = spacing;
            const auto s = segmentation_scores(p, t, o);
            const std::string key = c + "@" + tag;
            EXPECT_NEAR(*s.dice, g.at(key, "dice"), 1e-12) << key;
            EXPECT_NEAR(*s.iou, g.at(key, "iou"), 1e-12) << key;
            EXPECT_NEAR(*s.precision, g.at(key, "precision"), 1e-12) << key;
            EXPECT_NEAR(*s.recall, g.at(key, "recall"), 1e-12) << key;
            EXPECT_NEAR(*s.hd95, g.at(key, "hd95"), 1e-9) << key;
            EXPECT_NEAR(*s.assd, g.at(key, "assd"), 1e-9) << key;
            EXPECT_NEAR(*s.hausdorff, g.at(key, "hausdorff"), 1e-9) << key;
        }
    }
}

TEST(Segmentation, HandComputedSinglePixelsAndSquares) {
    Mask p = blank(10, 10);
    Mask t = blank(10, 10);
    p.pixels[2 * 10 + 1] = 1;  // (2,1)
    t.pixels[5 * 10 + 5] = 1;  // (5,5): 3 rows, 4 cols away
    SegmentationOptions o;
    o.spacing = {2.0, 0.5};  // 6 mm, 2 mm -> sqrt(40)
    const auto s = segmentation_scores(p, t, o);
    EXPECT_EQ(*s.dice, 0.0);
    EXPECT_NEAR(*s.hausdorff, std::sqrt(40.0), 1e-12);
    EXPECT_NEAR(*s.hd95, std::sqrt(40.0), 1e-12);
    EXPECT_NEAR(*s.assd, std::sqrt(40.0), 1e-12);
    // A 3×3 square vs the same square: perfect. Its centre is not on the surface.
    Mask a = blank(7, 7);
    for (int r = 2; r < 5; ++r) {
        for (int c = 2; c < 5; ++c) {
            a.pixels[r * 7 + c] = 1;
        }
    }
    const auto same = segmentation_scores(a, a);
    EXPECT_EQ(*same.dice, 1.0);
    EXPECT_EQ(*same.iou, 1.0);
    EXPECT_EQ(*same.hd95, 0.0);
    EXPECT_EQ(same.tp, 9u);
    // Shift by one column: tp 6, fp 3, fn 3 -> Dice 12/18; surfaces 8 px each.
    Mask b = blank(7, 7);
    for (int r = 2; r < 5; ++r) {
        for (int c = 3; c < 6; ++c) {
            b.pixels[r * 7 + c] = 1;
        }
    }
    const auto shifted = segmentation_scores(a, b);
    EXPECT_DOUBLE_EQ(*shifted.dice, 12.0 / 18.0);
    EXPECT_DOUBLE_EQ(*shifted.iou, 6.0 / 12.0);
    // a's surface (8 px): column 2 (3 px) is 1 from b's column 3; (3,4) is b's interior
    // centre, 1 from b's surface; the other 4 lie on b's surface -> four 1s, four 0s. Same for
    // b -> a by symmetry, so ASSD = 0.5.
    EXPECT_NEAR(*shifted.assd, 0.5, 1e-15);
    EXPECT_EQ(*shifted.hausdorff, 1.0);
}

TEST(Segmentation, EmptyMaskConventionsAreExplicit) {
    const Mask empty = blank(4, 5);
    Mask one = blank(4, 5);
    one.pixels[7] = 1;

    SegmentationOptions perfect;
    const auto both = segmentation_scores(empty, empty, perfect);
    EXPECT_EQ(*both.dice, 1.0);
    EXPECT_EQ(*both.hd95, 0.0);
    EXPECT_TRUE(both.prediction_empty && both.truth_empty);

    SegmentationOptions exclude;
    exclude.both_empty = BothEmpty::kExclude;
    const auto excluded = segmentation_scores(empty, empty, exclude);
    EXPECT_FALSE(excluded.dice.has_value());
    EXPECT_FALSE(excluded.hd95.has_value());

    // Missed lesion: Dice 0, recall 0, precision undefined, distances excluded by default.
    const auto missed = segmentation_scores(empty, one, perfect);
    EXPECT_EQ(*missed.dice, 0.0);
    EXPECT_EQ(*missed.recall, 0.0);
    EXPECT_FALSE(missed.precision.has_value());
    EXPECT_FALSE(missed.hd95.has_value());
    // False alarm: precision 0, recall undefined.
    const auto alarm = segmentation_scores(one, empty, perfect);
    EXPECT_EQ(*alarm.precision, 0.0);
    EXPECT_FALSE(alarm.recall.has_value());

    SegmentationOptions diag;
    diag.one_empty = OneEmpty::kDiagonal;
    diag.spacing = {3.0, 4.0};
    const auto worst = segmentation_scores(empty, one, diag);
    EXPECT_DOUBLE_EQ(*worst.hd95, std::hypot(12.0, 20.0));
    EXPECT_DOUBLE_EQ(*worst.assd, std::hypot(12.0, 20.0));
}

TEST(Segmentation, SizeMismatchAndBadSpacingAreErrors) {
    EXPECT_THROW(segmentation_scores(blank(4, 5), blank(5, 4)), InputError);
    SegmentationOptions o;
    o.spacing = {0.0, 1.0};
    EXPECT_THROW(segmentation_scores(blank(4, 5), blank(4, 5), o), InputError);
    EXPECT_THROW(read_mask(test::golden_dir() / "masks/pred/nope.png"), InputError);
    EXPECT_THROW(read_mask(test::golden_dir() / "data_tiny.csv"), InputError);
}

TEST(Segmentation, SummaryMeansDefinedValuesOnlyWithClusteredCi) {
    Mask hit = blank(6, 6);
    hit.pixels[8] = 1;
    std::vector<SegmentationScores> per_image;
    per_image.push_back(segmentation_scores(hit, hit));          // dice 1
    per_image.push_back(segmentation_scores(blank(6, 6), hit));  // dice 0, hd95 undefined
    per_image.push_back(segmentation_scores(hit, hit));          // dice 1
    BootstrapOptions o;
    o.replicates = 500;
    const std::vector<std::size_t> patients = {0, 0, 1};
    const auto summary = summarize_segmentation(per_image, o, patients);
    ASSERT_EQ(summary.size(), 7u);
    EXPECT_EQ(summary[0].metric, "dice");
    EXPECT_EQ(summary[0].defined, 3u);
    EXPECT_DOUBLE_EQ(summary[0].ci->estimate, 2.0 / 3.0);
    EXPECT_EQ(summary[4].metric, "hd95");
    EXPECT_EQ(summary[4].defined, 2u);
    EXPECT_DOUBLE_EQ(summary[4].ci->estimate, 0.0);
    // Patient 0 contributes Dice {1, 0}: a replicate drawing it twice has mean 0.5, drawing
    // patient 1 twice has mean 1; nothing can reach 0.
    EXPECT_GE(summary[0].ci->ci_lo, 0.5);
    EXPECT_EQ(summary[0].ci->ci_hi, 1.0);
}

TEST(MaskFolders, PairsByFileNameInNameOrderAndNamesAnUnpairedMask) {
    namespace fs = std::filesystem;
    test::TempDir tmp;
    fs::create_directories(tmp / "pred");
    fs::create_directories(tmp / "truth");
    const fs::path golden = test::golden_dir() / "masks";
    for (const char* name : {"disk_shift.png", "border_rects.png"}) {
        fs::copy_file(golden / "pred" / name, tmp / "pred" / name);
        fs::copy_file(golden / "truth" / name, tmp / "truth" / name);
    }
    const auto pairs = pair_mask_folders(tmp / "pred", tmp / "truth");
    ASSERT_EQ(pairs.size(), 2u);
    EXPECT_EQ(pairs[0].name, "border_rects.png");
    EXPECT_EQ(pairs[0].prediction, tmp / "pred" / "border_rects.png");
    EXPECT_EQ(pairs[1].truth, tmp / "truth" / "disk_shift.png");

    // A prediction without a truth mask is named, with the folder it is missing from.
    fs::copy_file(golden / "pred" / "noisy_blobs.png", tmp / "pred" / "noisy_blobs.png");
    try {
        pair_mask_folders(tmp / "pred", tmp / "truth");
        FAIL() << "an unpaired prediction was accepted";
    } catch (const InputError& e) {
        EXPECT_NE(
            std::string(e.what()).find((tmp / "truth" / "noisy_blobs.png").string() + ": missing"),
            std::string::npos)
            << e.what();
    }
    EXPECT_THROW(pair_mask_folders(tmp / "pred", tmp / "nope"), InputError);
}

}  // namespace
}  // namespace radprobe::eval
