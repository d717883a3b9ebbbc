// Control regions for roi pooling over boxes (images without boxes get a matched region): the
// sampler places boxes of the source's sizes inside the lungs, free of the image's boxes,
// deterministically per (seed, image); the lungs come from the manifest's masks or the prior.

#include <gtest/gtest.h>

#include <map>

#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/features/embeddings.hpp"
#include "test_support.hpp"

namespace radprobe::features {
namespace {

namespace fs = std::filesystem;

constexpr int kRows = 200, kCols = 160;

// Two "lungs": rectangles rows [40, 160) × columns [20, 70) and [90, 140).
std::vector<std::uint8_t> two_lungs() {
    std::vector<std::uint8_t> m(static_cast<std::size_t>(kRows) * kCols, 0);
    for (int r = 40; r < 160; ++r) {
        for (int c = 0; c < kCols; ++c) {
            m[static_cast<std::size_t>(r) * kCols + c] =
                (c >= 20 && c < 70) || (c >= 90 && c < 140);
        }
    }
    return m;
}

double lung_pixels(const std::vector<std::uint8_t>& lungs, const RegionBox& b) {
    double n = 0;
    for (int r = static_cast<int>(b.y0); r < static_cast<int>(b.y1); ++r) {
        for (int c = static_cast<int>(b.x0); c < static_cast<int>(b.x1); ++c) {
            n += lungs[static_cast<std::size_t>(r) * kCols + c];
        }
    }
    return n;
}

TEST(ControlRegions, DrawnInTheLungsFreeOfBoxesWithTheSourceSizes) {
    const auto lungs = two_lungs();
    const std::vector<std::array<double, 2>> sizes{{10, 20}, {31, 12}, {16, 17}};
    const RegionBox lesion{30, 60, 50, 80};    // a box of the image: controls avoid it
    std::map<std::pair<int, int>, int> drawn;  // (w, h) → count
    int left = 0, right = 0;
    const int n = 300;
    for (int i = 0; i < n; ++i) {
        const std::string id = "img" + std::to_string(i) + ".png";
        const auto b = draw_control_box(lungs, kRows, kCols, sizes, {lesion}, 7, id);
        ASSERT_TRUE(b.has_value()) << id;
        const int w = static_cast<int>(b->x1 - b->x0), h = static_cast<int>(b->y1 - b->y0);
        ++drawn[{w, h}];
        EXPECT_GE(b->x0, 0);
        EXPECT_GE(b->y0, 0);
        EXPECT_LE(b->x1, kCols);
        EXPECT_LE(b->y1, kRows);
        // Its centre pixel lies in a lung and at least half its area does.
        const int cx = static_cast<int>((b->x0 + b->x1) / 2),
                  cy = static_cast<int>((b->y0 + b->y1) / 2);
        EXPECT_TRUE(lungs[static_cast<std::size_t>(cy) * kCols + cx])
            << id << " centre " << cx << "," << cy;
        EXPECT_GE(2 * lung_pixels(lungs, *b), static_cast<double>(w * h)) << id;
        EXPECT_FALSE(b->x0 < lesion.x1 && lesion.x0 < b->x1 && b->y0 < lesion.y1 &&
                     lesion.y0 < b->y1)
            << id << " overlaps the image's box";
        (cx < kCols / 2 ? left : right) += 1;
    }
    // Only the source's sizes, each about a third of the time (binomial sd 8.2 of 100).
    ASSERT_EQ(drawn.size(), 3u);
    for (const auto& s : sizes) {
        const int count = drawn[{static_cast<int>(s[0]), static_cast<int>(s[1])}];
        EXPECT_GT(count, 70) << s[0] << "x" << s[1];
        EXPECT_LT(count, 130) << s[0] << "x" << s[1];
    }
    // Both lungs are used.
    EXPECT_GT(left, 90);
    EXPECT_GT(right, 90);
}

TEST(ControlRegions, DeterministicPerSeedAndImageAndOtherSeedsDiffer) {
    const auto lungs = two_lungs();
    const std::vector<std::array<double, 2>> sizes{{12, 12}, {20, 8}};
    auto same = [](const std::optional<RegionBox>& a, const std::optional<RegionBox>& b) {
        return a && b && a->x0 == b->x0 && a->y0 == b->y0 && a->x1 == b->x1 && a->y1 == b->y1;
    };
    int seed_differs = 0, image_differs = 0;
    for (int i = 0; i < 50; ++i) {
        const std::string id = "p" + std::to_string(i);
        const auto a = draw_control_box(lungs, kRows, kCols, sizes, {}, 11, id);
        EXPECT_TRUE(same(a, draw_control_box(lungs, kRows, kCols, sizes, {}, 11, id))) << id;
        seed_differs += !same(a, draw_control_box(lungs, kRows, kCols, sizes, {}, 12, id));
        image_differs += !same(a, draw_control_box(lungs, kRows, kCols, sizes, {}, 11, id + "x"));
    }
    EXPECT_GE(seed_differs, 45);
    EXPECT_GE(image_differs, 45);
}

TEST(ControlRegions, NothingToDrawFromGivesNoneAndLargeSizesAreClipped) {
    const auto lungs = two_lungs();
    EXPECT_FALSE(draw_control_box(lungs, kRows, kCols, {}, {}, 1, "a").has_value());
    const std::vector<std::uint8_t> empty(lungs.size(), 0);
    EXPECT_FALSE(draw_control_box(empty, kRows, kCols, {{10, 10}}, {}, 1, "a").has_value());
    // A box larger than the image is clipped to it (the whole image, centred in the lungs).
    const std::vector<std::uint8_t> all(lungs.size(), 1);
    const auto b = draw_control_box(all, kRows, kCols, {{1000, 1000}}, {}, 1, "a");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->x1 - b->x0, kCols);
    EXPECT_EQ(b->y1 - b->y0, kRows);
}

TEST(ControlRegions, LungsFromTheManifestMaskElseThePriorAndSizesFromTheBoxes) {
    test::TempDir tmp;
    dataset::Mask m(8, 10);
    m.at(2, 3) = m.at(5, 6) = 1;
    dataset::write_mask_png(tmp / "lungs_a.png", m);
    write_file_atomic(tmp / "manifest.csv",
                      "image,patient_id,nodule,mask_lungs\na.png,p1,1,lungs_a.png\nb.png,p2,0,\n");
    write_file_atomic(tmp / "boxes.csv",
                      "image,label,x0,y0,x1,y1\na.png,nodule,1,1,4,6\na.png,mass,0,0,2,2\n");
    const auto manifest = dataset::Manifest::load(tmp / "manifest.csv");
    const auto a = lung_region(manifest, 0, 8, 10);
    EXPECT_EQ(a.source, "mask_lungs");
    EXPECT_TRUE(a.from_masks());
    EXPECT_EQ(a.inside, m.data);
    // No mask for b: the prior, the central half in each axis.
    const auto b = lung_region(manifest, 1, 8, 10);
    EXPECT_EQ(b.source, "prior");
    EXPECT_FALSE(b.from_masks());
    for (int r = 0; r < 8; ++r) {
        for (int c = 0; c < 10; ++c) {
            EXPECT_EQ(b.inside[static_cast<std::size_t>(r) * 10 + c],
                      (r >= 2 && r < 6 && c >= 2 && c < 8) ? 1 : 0)
                << r << "," << c;
        }
    }
    EXPECT_EQ(lung_region(manifest, 0, 8, 10, true).source, "prior");

    EXPECT_EQ(box_sizes(manifest, "nodule"), (std::vector<std::array<double, 2>>{{3, 5}}));
    EXPECT_EQ(box_sizes(manifest, "").size(), 2u);
    EXPECT_TRUE(box_sizes(manifest, "effusion").empty());
}

}  // namespace
}  // namespace radprobe::features
