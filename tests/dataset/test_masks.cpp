// Masks: SIIM-ACR RLE (relative and absolute) against a hand-computed case and goldens from an
// independent Python reference (tests/golden/dataset/make_rle_golden.py), PNG masks, round trips.

#include <gtest/gtest.h>

#include "dataset_fixtures.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "test_support.hpp"

namespace {

using namespace radprobe;
using namespace radprobe::dataset;
using radprobe::test::TempDir;

std::filesystem::path golden_dir() {
    return radprobe::test::source_dir() / "tests/golden/dataset";
}

// rows = 3, cols = 4:
//   0 1 0 0
//   0 1 0 1
//   0 0 0 1
// Column-major indices (c * rows + r) of the foreground: 3, 4 (column 1), 10, 11 (column 3).
Mask hand_mask() {
    Mask m(3, 4);
    m.at(0, 1) = 1;
    m.at(1, 1) = 1;
    m.at(1, 3) = 1;
    m.at(2, 3) = 1;
    return m;
}

TEST(DatasetRle, HandComputedCase) {
    const Mask m = hand_mask();
    // Absolute, 1-based: runs start at pixels 4 and 11, length 2 each.
    EXPECT_EQ(rle_encode(m, RleConvention::kAbsolute), "4 2 11 2");
    // SIIM relative: first start 3 (0-based from pixel 0), the run ends at 5; next start 10 - 5.
    EXPECT_EQ(rle_encode(m, RleConvention::kSiimRelative), "3 2 5 2");
    EXPECT_EQ(rle_decode("4 2 11 2", 3, 4, RleConvention::kAbsolute).data, m.data);
    EXPECT_EQ(rle_decode("3 2 5 2", 3, 4, RleConvention::kSiimRelative).data, m.data);
    // Read with the wrong convention it is a different mask.
    EXPECT_NE(rle_decode("3 2 5 2", 3, 4, RleConvention::kAbsolute).data, m.data);
    EXPECT_EQ(rle_extent("3 2 5 2", RleConvention::kSiimRelative), 12u);
    EXPECT_EQ(rle_extent("4 2 11 2", RleConvention::kAbsolute), 12u);
}

TEST(DatasetRle, EmptyMasks) {
    const Mask empty(5, 4);
    EXPECT_EQ(rle_encode(empty, RleConvention::kSiimRelative), "-1");
    EXPECT_EQ(rle_encode(empty, RleConvention::kAbsolute), "-1");
    for (const char* s : {"-1", "", " -1 ", "  "}) {
        EXPECT_EQ(rle_decode(s, 5, 4, RleConvention::kSiimRelative).count(), 0u) << s;
        EXPECT_EQ(rle_decode(s, 5, 4, RleConvention::kAbsolute).count(), 0u) << s;
    }
}

TEST(DatasetRle, MatchesIndependentReferenceGoldens) {
    const CsvTable golden = CsvTable::read(golden_dir() / "rle_golden.csv");
    ASSERT_EQ(golden.num_rows(), 4u);
    for (const auto& row : golden.rows()) {
        SCOPED_TRACE(row[0]);
        const int rows = std::stoi(row[1]);
        const int cols = std::stoi(row[2]);
        const Mask png = read_mask_png(golden_dir() / row[5]);
        ASSERT_EQ(png.rows, rows);
        ASSERT_EQ(png.cols, cols);
        EXPECT_EQ(rle_encode(png, RleConvention::kSiimRelative), row[3]);
        EXPECT_EQ(rle_encode(png, RleConvention::kAbsolute), row[4]);
        EXPECT_EQ(rle_decode(row[3], rows, cols, RleConvention::kSiimRelative).data, png.data);
        EXPECT_EQ(rle_decode(row[4], rows, cols, RleConvention::kAbsolute).data, png.data);
    }
    // 16-bit PNG (foreground 1000) reads as the same mask.
    const Mask m8 = read_mask_png(golden_dir() / "mask_blobs_20x13.png");
    const Mask m16 = read_mask_png(golden_dir() / "mask_blobs_20x13_16bit.png");
    EXPECT_EQ(m16.rows, 20);
    EXPECT_EQ(m16.data, m8.data);
    EXPECT_GT(m8.count(), 0u);
}

TEST(DatasetRle, RoundTripsRandomMasks) {
    Rng rng(7);
    for (int trial = 0; trial < 50; ++trial) {
        const int rows = 1 + static_cast<int>(rng.below(40));
        const int cols = 1 + static_cast<int>(rng.below(40));
        const double p = rng.uniform();
        Mask m(rows, cols);
        for (auto& v : m.data) {
            v = rng.bernoulli(p) ? 1 : 0;
        }
        for (RleConvention conv : {RleConvention::kSiimRelative, RleConvention::kAbsolute}) {
            const std::string s = rle_encode(m, conv);
            EXPECT_TRUE(looks_like_rle(s)) << s;
            EXPECT_EQ(rle_decode(s, rows, cols, conv).data, m.data) << rows << "x" << cols;
            EXPECT_LE(rle_extent(s, conv), std::uint64_t(rows) * cols);
        }
    }
}

TEST(DatasetRle, MalformedStringsAreErrors) {
    const auto rel = RleConvention::kSiimRelative;
    const auto abs = RleConvention::kAbsolute;
    EXPECT_THROW(rle_decode("1 2 3", 4, 4, rel), InputError);    // odd count
    EXPECT_THROW(rle_decode("1 x", 4, 4, rel), InputError);      // not a number
    EXPECT_THROW(rle_decode("1 -2", 4, 4, rel), InputError);     // negative
    EXPECT_THROW(rle_decode("1 0", 4, 4, rel), InputError);      // zero length
    EXPECT_THROW(rle_decode("0 2", 4, 4, abs), InputError);      // absolute starts are 1-based
    EXPECT_THROW(rle_decode("5 2 3 1", 4, 4, abs), InputError);  // unordered
    EXPECT_THROW(rle_decode("5 2 6 1", 4, 4, abs), InputError);  // overlapping
    EXPECT_THROW(rle_decode("15 2", 4, 4, rel), InputError);     // beyond 16 pixels
    EXPECT_NO_THROW(rle_decode("14 2", 4, 4, rel));              // ends exactly at 16
    EXPECT_NO_THROW(rle_decode("15 2", 4, 4, abs));              // 1-based: pixels 14, 15
    EXPECT_THROW(rle_decode("16 2", 4, 4, abs), InputError);
    // The error says which convention would fit.
    try {
        rle_decode("2 3 4 3 4 3", 4, 4, abs);  // absolute: overlapping; relative: fits
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("overlaps"), std::string::npos) << e.what();
    }
    try {
        rle_decode("1 3 5 3 9 3", 4, 4, rel);  // relative extent 1+3+5+3+9+3 = 24 > 16
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("fits with --rle absolute"), std::string::npos)
            << e.what();
    }
}

TEST(DatasetRle, LooksLikeRle) {
    EXPECT_TRUE(looks_like_rle("-1"));
    EXPECT_TRUE(looks_like_rle("387620 23 996 33"));
    EXPECT_TRUE(looks_like_rle("5"));  // malformed RLE, reported as such, not a path
    EXPECT_FALSE(looks_like_rle(""));
    EXPECT_FALSE(looks_like_rle("masks/a.png"));
    EXPECT_FALSE(looks_like_rle("123.png"));
    EXPECT_FALSE(looks_like_rle("-1 3"));
    EXPECT_FALSE(looks_like_rle("12-3"));
}

TEST(DatasetMaskPng, WriteReadRoundTripIs0And255) {
    TempDir dir;
    const Mask m = hand_mask();
    write_mask_png(dir / "sub/m.png", m);
    const Mask back = read_mask_png(dir / "sub/m.png");
    EXPECT_EQ(back.rows, 3);
    EXPECT_EQ(back.cols, 4);
    EXPECT_EQ(back.data, m.data);
    const cv::Mat raw = cv::imread((dir / "sub/m.png").string(), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(raw.type(), CV_8U);
    EXPECT_EQ(raw.at<unsigned char>(0, 1), 255);
    EXPECT_EQ(raw.at<unsigned char>(0, 0), 0);
    // PNG → RLE → PNG.
    const std::string rle = rle_encode(back, RleConvention::kSiimRelative);
    write_mask_png(dir / "again.png", rle_decode(rle, 3, 4, RleConvention::kSiimRelative));
    EXPECT_EQ(read_mask_png(dir / "again.png").data, m.data);
}

// Public sets ship masks at half or quarter resolution (issue 21): the image's aspect ratio to
// within a pixel of rounding is accepted, another aspect ratio is not.
TEST(DatasetMaskResolution, SameAspectRatioWithinAPixel) {
    EXPECT_TRUE(mask_matches_image_aspect(1024, 1024, 2048, 2048));
    EXPECT_TRUE(mask_matches_image_aspect(1000, 1024, 2000, 2048));
    EXPECT_TRUE(mask_matches_image_aspect(512, 512, 2048, 2048));
    EXPECT_TRUE(mask_matches_image_aspect(1024, 1024, 2047, 2048));  // an odd side rounded
    EXPECT_TRUE(mask_matches_image_aspect(300, 200, 450, 300));      // fractional scale 1.5
    EXPECT_FALSE(mask_matches_image_aspect(1024, 1024, 2048, 1600));
    EXPECT_FALSE(mask_matches_image_aspect(24, 32, 32, 24));  // transposed
    EXPECT_FALSE(mask_matches_image_aspect(0, 10, 20, 20));
}

TEST(DatasetMaskResolution, NearestResamplingAtPixelCentres) {
    Mask half(2, 3);
    half.at(0, 0) = 1;
    half.at(1, 2) = 1;
    const Mask full = resample_mask_nearest(half, 4, 6);
    for (int r = 0; r < 4; ++r) {
        for (int c = 0; c < 6; ++c) {
            EXPECT_EQ(full.at(r, c), half.at(r / 2, c / 2)) << r << "," << c;
        }
    }
    // Fractional scale 1.5: output pixel centre (r + 0.5) / 1.5 picks the mask pixel.
    Mask m(2, 2);
    m.at(1, 1) = 1;
    const Mask up = resample_mask_nearest(m, 3, 3);
    const std::vector<std::uint8_t> expected = {0, 0, 0, 0, 1, 1, 0, 1, 1};
    EXPECT_EQ(up.data, expected);
    // Downsampling keeps every output pixel on a mask pixel.
    EXPECT_EQ(resample_mask_nearest(full, 2, 3).data, half.data);
}

TEST(DatasetMaskPng, ColourMasksAndBadFiles) {
    TempDir dir;
    cv::Mat rgb = cv::Mat::zeros(4, 5, CV_8UC3);
    rgb.at<cv::Vec3b>(1, 2) = cv::Vec3b(0, 0, 9);  // only one channel set
    cv::imwrite((dir / "rgb.png").string(), rgb);
    const Mask m = read_mask_png(dir / "rgb.png");
    EXPECT_EQ(m.count(), 1u);
    EXPECT_EQ(m.at(1, 2), 1);
    radprobe::test::write_text(dir / "bad.png", "not a png");
    radprobe::test::write_text(dir / "empty.png", "");
    EXPECT_THROW(read_mask_png(dir / "bad.png"), InputError);
    EXPECT_THROW(read_mask_png(dir / "empty.png"), InputError);
    EXPECT_THROW(read_mask_png(dir / "missing.png"), InputError);
    EXPECT_THROW(read_mask_png(dir.path()), InputError);
}

}  // namespace
