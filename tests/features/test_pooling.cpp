// Pooling and ROI weights on synthetic tokens: the pooling arithmetic, not an encoder, is under
// test here.

#include <gtest/gtest.h>

#include <cmath>

#include "radprobe/core/error.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::features {
namespace {

InputGeometry identity_geometry(std::int64_t side, std::int64_t patch) {
    InputGeometry g;
    g.out_height = g.out_width = side;
    g.patch = patch;
    return g;
}

TEST(Pooling, ParsesModesAndLayers) {
    const auto p = parse_poolings("cls, mean,cls+mean,roi,cls");
    ASSERT_EQ(p.size(), 4u);
    EXPECT_EQ(p[2], Pooling::kClsMean);
    EXPECT_THROW(parse_poolings("cls,max"), UsageError);
    EXPECT_THROW(parse_poolings(""), UsageError);
    EXPECT_EQ(parse_layers("-1,-4"), (std::vector<int>{-1, -4}));
    EXPECT_TRUE(parse_layers("").empty());
    EXPECT_THROW(parse_layers("-1,x"), UsageError);
}

TEST(Pooling, PatchesCopiesTheWholeGridRowMajor) {
    EXPECT_EQ(parse_poolings("patches,mean"), (std::vector<Pooling>{Pooling::kPatches, Pooling::kMean}));
    EXPECT_STREQ(pooling_name(Pooling::kPatches), "patches");
    const std::int64_t G = 6, D = 3;
    std::vector<float> patches(static_cast<std::size_t>(G * D));
    for (std::size_t i = 0; i < patches.size(); ++i) {
        patches[i] = 0.5f * static_cast<float>(i) - 2.0f;
    }
    EXPECT_EQ(pooled_width(Pooling::kPatches, D, G), G * D);
    EXPECT_EQ(pooled_width(Pooling::kMean, D, G), D);
    EXPECT_EQ(pool(Pooling::kPatches, nullptr, patches.data(), G, D, {}), patches);
}

TEST(Pooling, BoxCoveringOneCellGivesWeightOneThere) {
    const auto g = identity_geometry(28, 14);  // 2×2 grid
    const auto w = roi_weights_from_boxes({{14, 0, 28, 14}}, g, "img");
    EXPECT_EQ(w, (std::vector<float>{0, 1, 0, 0}));
    const auto half = roi_weights_from_boxes({{0, 7, 14, 14}}, g, "img");
    EXPECT_FLOAT_EQ(half[0], 0.5f);
    EXPECT_FLOAT_EQ(half[1] + half[2] + half[3], 0.0f);
}

TEST(Pooling, BoxIsMappedThroughResizeAndCrop) {
    // Original 100×200 (rows × cols) resized by 0.28 to 28×56, centre crop 28×28 at left 14.
    InputGeometry g = identity_geometry(28, 14);
    g.scale_x = g.scale_y = 0.28;
    g.crop_left = 14;
    // Original x in [100, 150) → [28, 42) − 14 = [14, 28): the right column of cells;
    // y in [0, 50) → [0, 14): the top row.
    const auto w = roi_weights_from_boxes({{100, 0, 150, 50}}, g, "img");
    EXPECT_NEAR(w[1], 1.0, 1e-5);
    EXPECT_NEAR(w[0] + w[2] + w[3], 0.0, 1e-6);
    // A box in the cropped-away left part is an error naming the image.
    try {
        roi_weights_from_boxes({{0, 0, 40, 40}}, g, "left.png");
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("left.png"), std::string::npos);
    }
}

TEST(Pooling, MaskWeightsEqualTheEquivalentBox) {
    InputGeometry g = identity_geometry(28, 14);
    g.scale_x = g.scale_y = 28.0 / 40.0;
    std::vector<std::uint8_t> mask(40 * 40, 0);
    for (int r = 5; r < 17; ++r) {
        for (int c = 9; c < 30; ++c) {
            mask[r * 40 + c] = 1;
        }
    }
    const auto a = roi_weights_from_mask(mask.data(), 40, 40, g, "m");
    const auto b = roi_weights_from_boxes({{9, 5, 30, 17}}, g, "m");
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_NEAR(a[i], b[i], 1e-5) << i;
    }
    std::vector<std::uint8_t> empty(40 * 40, 0);
    EXPECT_THROW(roi_weights_from_mask(empty.data(), 40, 40, g, "m"), InputError);
}

TEST(Pooling, RoiRecoversSignalThatLivesInOnePatchWhileClsAndMeanDoNot) {
    // 4×4 grid, D = 3. Two "images": identical except patch 5 carries +8 in dimension 2.
    const std::int64_t G = 16, D = 3;
    std::vector<float> clean(G * D, 0.0f), signal(G * D, 0.0f);
    for (std::int64_t g = 0; g < G; ++g) {
        for (std::int64_t d = 0; d < D; ++d) {
            clean[g * D + d] = signal[g * D + d] = static_cast<float>((g * 7 + d * 3) % 5) * 0.1f;
        }
    }
    signal[5 * D + 2] += 8.0f;
    const std::vector<float> cls = {0.3f, -0.2f, 0.1f};
    std::vector<float> roi(G, 0.0f);
    roi[5] = 1.0f;
    const auto c0 = pool(Pooling::kCls, cls.data(), clean.data(), G, D, {});
    const auto c1 = pool(Pooling::kCls, cls.data(), signal.data(), G, D, {});
    const auto m0 = pool(Pooling::kMean, cls.data(), clean.data(), G, D, {});
    const auto m1 = pool(Pooling::kMean, cls.data(), signal.data(), G, D, {});
    const auto r0 = pool(Pooling::kRoi, cls.data(), clean.data(), G, D, roi);
    const auto r1 = pool(Pooling::kRoi, cls.data(), signal.data(), G, D, roi);
    EXPECT_EQ(c0, c1);                         // CLS (given) is blind to it
    EXPECT_NEAR(m1[2] - m0[2], 8.0 / 16, 1e-6);  // the mean dilutes it by G
    EXPECT_NEAR(r1[2] - r0[2], 8.0, 1e-6);     // the ROI keeps it whole
    const auto cm = pool(Pooling::kClsMean, cls.data(), clean.data(), G, D, {});
    ASSERT_EQ(cm.size(), 6u);
    EXPECT_EQ(std::vector<float>(cm.begin(), cm.begin() + 3), cls);
    EXPECT_EQ(std::vector<float>(cm.begin() + 3, cm.end()), m0);
    const auto none = pool(Pooling::kRoi, cls.data(), clean.data(), G, D, {});
    EXPECT_TRUE(std::isnan(none[0]));
    EXPECT_THROW(pool(Pooling::kCls, nullptr, clean.data(), G, D, {}, "siglip"), InputError);
}

TEST(Pooling, ContentHashIsStableAndSensitive) {
    // Pinned (tests/golden/core/make_core_golden.py, an independent Python implementation): a
    // change of the hash changes every store and run cache key, so it must be noticed.
    EXPECT_EQ(content_hash(""), "273ef54aed34cd0e");
    EXPECT_EQ(content_hash("abc"), "2cfa955f364362b6");
    EXPECT_EQ(content_hash(std::string(16, 'a')), "a59c1411a8646981");
    EXPECT_EQ(content_hash(std::string(17, 'a')), "b548a5f4dd500487");
    EXPECT_EQ(content_hash("radprobe"), "46b287976d26289f");
    EXPECT_NE(content_hash("abc"), content_hash("abd"));
    EXPECT_NE(content_hash(std::string(16, 'a')), content_hash(std::string(17, 'a')));
    EXPECT_EQ(content_hash("").size(), 16u);
}

}  // namespace
}  // namespace radprobe::features
