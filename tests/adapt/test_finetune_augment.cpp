// Radiograph augmentation (src/heads/augment.hpp): reproducibility, image/mask alignment,
// identity, masks untouched by intensity jitter, and the --augment parser.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "radprobe/adapt/training.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::adapt {
namespace {

// A batch of dark images, each with a bright square at a different place, and the square as a
// mask: N×1×H×W images and N×1×H×W masks.
struct SquareBatch {
    torch::Tensor images, masks;
};
SquareBatch square_batch(int n, int h, int w) {
    SquareBatch b;
    b.images = torch::full({n, 1, h, w}, 0.1f);
    b.masks = torch::zeros({n, 1, h, w});
    for (int i = 0; i < n; ++i) {
        const int y0 = h * 3 / 8 + (i % 3) * 2 - 2, x0 = w * 3 / 8 + (i % 4) * 2 - 3;
        b.images.index_put_(
            {i, 0, torch::indexing::Slice(y0, y0 + h / 4), torch::indexing::Slice(x0, x0 + w / 4)},
            0.9f);
        b.masks.index_put_(
            {i, 0, torch::indexing::Slice(y0, y0 + h / 4), torch::indexing::Slice(x0, x0 + w / 4)},
            1.0f);
    }
    return b;
}

AugmentOptions strong_geometry() {
    AugmentOptions o;
    o.crop_scale_min = 0.5;
    o.crop_ratio_max = 4.0 / 3.0;
    o.rotate_degrees = 20.0;
    o.hflip = true;
    return o;
}

TEST(Augment, SameSeedGivesIdenticalOutputDifferentSeedDoesNot) {
    const auto b = square_batch(6, 48, 64);
    const auto o = radiograph_augment_defaults();
    Rng r1(7), r2(7), r3(8);
    const auto a1 = augment_batch(b.images, b.masks, o, r1);
    const auto a2 = augment_batch(b.images, b.masks, o, r2);
    const auto a3 = augment_batch(b.images, b.masks, o, r3);
    EXPECT_TRUE(torch::equal(a1.images, a2.images));
    EXPECT_TRUE(torch::equal(a1.masks, a2.masks));
    EXPECT_FALSE(torch::equal(a1.images, a3.images));
    // The augmentation did something.
    EXPECT_FALSE(torch::equal(a1.images, b.images));
    // Inputs untouched.
    EXPECT_FLOAT_EQ(b.images.max().item<float>(), 0.9f);
}

TEST(Augment, MaskStaysAlignedWithBrightPixels) {
    for (auto mode : {MaskResample::kBilinearThreshold, MaskResample::kNearest}) {
        auto o = strong_geometry();
        o.mask_resample = mode;
        const auto b = square_batch(8, 64, 64);
        Rng rng(3);
        const auto a = augment_batch(b.images, b.masks, o, rng);
        for (int i = 0; i < 8; ++i) {
            const auto img = a.images[i][0];
            const auto mask = a.masks[i][0];
            const auto inside = mask > 0.5;
            ASSERT_GT(inside.sum().item<long>(), 20) << "sample " << i;
            // Masks stay binary.
            EXPECT_TRUE(torch::logical_or(mask == 0, mask == 1).all().item<bool>());
            // Pixels under the mask are bright (interior: bilinear edges blend), pixels well
            // outside it dark: compare the means, and the agreement of a 0.5 threshold.
            const double mean_in = img.masked_select(inside).mean().item<double>();
            const double mean_out = img.masked_select(inside.logical_not()).mean().item<double>();
            EXPECT_GT(mean_in, 0.75) << "sample " << i;
            EXPECT_LT(mean_out, 0.2) << "sample " << i;
            const auto bright = img > 0.5;
            const double agree = (bright == inside).to(torch::kFloat).mean().item<double>();
            EXPECT_GT(agree, 0.985) << "sample " << i;
        }
    }
}

TEST(Augment, MaskAtOtherResolutionFollowsTheSameGeometry) {
    // A 32×32 mask of the square drawn on a 64×64 image: after augmentation, upsampling the mask
    // must still cover the bright pixels.
    const auto b = square_batch(4, 64, 64);
    const auto small =
        torch::nn::functional::interpolate(b.masks, torch::nn::functional::InterpolateFuncOptions()
                                                        .size(std::vector<int64_t>{32, 32})
                                                        .mode(torch::kNearest));
    Rng rng(11);
    const auto a = augment_batch(b.images, small, strong_geometry(), rng);
    const auto up =
        torch::nn::functional::interpolate(a.masks, torch::nn::functional::InterpolateFuncOptions()
                                                        .size(std::vector<int64_t>{64, 64})
                                                        .mode(torch::kNearest));
    const double agree = ((a.images > 0.5) == (up > 0.5)).to(torch::kFloat).mean().item<double>();
    EXPECT_GT(agree, 0.97);
}

TEST(Augment, ZeroMagnitudesAreTheIdentity) {
    const auto b = square_batch(3, 32, 40);
    AugmentOptions o;  // all zero
    ASSERT_TRUE(o.is_identity());
    Rng rng(5);
    const auto before = rng;
    const auto a = augment_batch(b.images, b.masks, o, rng);
    EXPECT_TRUE(torch::equal(a.images, b.images));
    EXPECT_TRUE(torch::equal(a.masks, b.masks));
    // No random numbers consumed.
    Rng copy = before;
    EXPECT_EQ(copy.next_u64(), rng.next_u64());
    // The sampling path itself is the identity for identity parameters (grid at pixel centres).
    const std::vector<AugmentParams> params(3);
    auto geo = strong_geometry();  // forces the warp; parameters are the identity
    const auto w = apply_augment(b.images, b.masks, params, geo);
    EXPECT_LT((w.images - b.images).abs().max().item<double>(), 1e-5);
    EXPECT_TRUE(torch::equal(w.masks, b.masks));
}

TEST(Augment, IntensityJitterNeverTouchesMasks) {
    const auto b = square_batch(5, 32, 32);
    AugmentOptions o;
    o.brightness = 0.5;
    o.contrast = 0.5;
    o.gamma = 0.5;
    Rng rng(9);
    const auto a = augment_batch(b.images, b.masks, o, rng);
    EXPECT_TRUE(torch::equal(a.masks, b.masks));
    EXPECT_FALSE(torch::equal(a.images, b.images));
    EXPECT_GE(a.images.min().item<float>(), 0.0f);
    EXPECT_LE(a.images.max().item<float>(), 1.0f);
    // No geometry: the square is where it was (bright stays brighter than background).
    for (int i = 0; i < 5; ++i) {
        const auto img = a.images[i][0];
        const auto inside = b.masks[i][0] > 0.5;
        EXPECT_GT(img.masked_select(inside).min().item<float>(),
                  img.masked_select(inside.logical_not()).max().item<float>());
    }
}

TEST(Augment, FlipAloneMirrorsExactlyTheFlippedSamples) {
    const auto b = square_batch(6, 32, 48);
    AugmentOptions o;
    o.hflip = true;
    Rng rng(21);
    Rng probe = rng;
    const auto params = sample_augment_params(6, 32, 48, o, probe);
    const auto a = augment_batch(b.images, b.masks, o, rng);
    int flipped = 0;
    for (int i = 0; i < 6; ++i) {
        const auto expect =
            params[static_cast<std::size_t>(i)].flip ? b.images[i].flip({2}) : b.images[i];
        flipped += params[static_cast<std::size_t>(i)].flip;
        EXPECT_LT((a.images[i] - expect).abs().max().item<double>(), 1e-5) << "sample " << i;
        const auto mexpect =
            params[static_cast<std::size_t>(i)].flip ? b.masks[i].flip({2}) : b.masks[i];
        EXPECT_TRUE(torch::equal(a.masks[i], mexpect)) << "sample " << i;
    }
    EXPECT_GT(flipped, 0);
    EXPECT_LT(flipped, 6);
}

TEST(Augment, ParserAcceptsKeysAndRejectsBadValues) {
    const auto d = parse_augment("default");
    EXPECT_DOUBLE_EQ(d.crop_scale_min, 0.7);
    EXPECT_TRUE(parse_augment("none").is_identity());
    const auto o = parse_augment("crop=0.8,rot=5,hflip=1,mask=nearest,gamma=0");
    EXPECT_DOUBLE_EQ(o.crop_scale_min, 0.8);
    EXPECT_DOUBLE_EQ(o.rotate_degrees, 5.0);
    EXPECT_TRUE(o.hflip);
    EXPECT_EQ(o.mask_resample, MaskResample::kNearest);
    EXPECT_DOUBLE_EQ(o.gamma, 0.0);
    EXPECT_DOUBLE_EQ(o.brightness, 0.1);  // default kept
    EXPECT_THROW(parse_augment("crop=0"), UsageError);
    EXPECT_THROW(parse_augment("rot=90"), UsageError);
    EXPECT_THROW(parse_augment("warp=1"), UsageError);
    EXPECT_THROW(parse_augment("crop"), UsageError);
    EXPECT_THROW(parse_augment("bright=x"), UsageError);
}

}  // namespace
}  // namespace radprobe::adapt
