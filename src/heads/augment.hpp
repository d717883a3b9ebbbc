#pragma once
/// @file augment.hpp
/// Radiograph augmentation for training (internal to heads, LibTorch): random resized crop,
/// small rotation and optional horizontal flip applied with ONE geometry to an image batch and
/// its masks; brightness, contrast and gamma jitter applied to the images only.
///
/// Layouts: images N×C×H×W float in [0,1] (1 = white; before model normalisation), masks
/// N×K×Hm×Wm float (0/1) or undefined. The geometry is expressed in normalised coordinates
/// ([-1,1] across the image), so masks may have another resolution as long as their aspect
/// ratio is the image's. Works on any device: the sampling grid is built on the images' device.
///
/// Determinism: all parameters are drawn from the radprobe::Rng passed in, per sample, in a
/// fixed order (crop area, aspect, centre x, centre y, angle, flip, brightness, contrast,
/// gamma), whatever the magnitudes — the same Rng state gives the same batch.

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "radprobe/core/random.hpp"

namespace radprobe::heads {

/// How masks are resampled by the geometric transform.
enum class MaskResample {
    kNearest,            ///< nearest neighbour
    kBilinearThreshold,  ///< bilinear, then >= 0.5 → 1 (smoother edges, still binary)
};

/// Magnitudes of the augmentation; all zero (and hflip false) = identity.
struct AugmentOptions {
    /// Random resized crop: crop area uniform in [crop_scale_min, 1] of the image, log-aspect
    /// uniform in [−log(crop_ratio_max), log(crop_ratio_max)] relative to the image's aspect,
    /// resized back to H×W.
    /// crop_scale_min = 1 and crop_ratio_max = 1: no crop.
    double crop_scale_min = 1.0;
    double crop_ratio_max = 1.0;
    double rotate_degrees = 0.0;  ///< rotation uniform in [−d, d] degrees about the crop centre
    bool hflip = false;           ///< flip left-right with probability 1/2 (swaps anatomy!)
    double brightness = 0.0;      ///< multiply by a factor uniform in [1 − b, 1 + b]
    double contrast = 0.0;        ///< scale about the image mean by uniform [1 − c, 1 + c]
    double gamma = 0.0;           ///< x^γ with log γ uniform in [−g, g]
    MaskResample mask_resample = MaskResample::kBilinearThreshold;

    bool is_identity() const {
        return crop_scale_min >= 1.0 && crop_ratio_max <= 1.0 && rotate_degrees == 0.0 && !hflip &&
               brightness == 0.0 && contrast == 0.0 && gamma == 0.0;
    }
    bool has_geometry() const {
        return crop_scale_min < 1.0 || crop_ratio_max > 1.0 || rotate_degrees != 0.0 || hflip;
    }
    /// Throws UsageError naming the field when a magnitude is out of its range.
    void validate() const;
    /// "crop=0.7,ratio=1.33,rot=10,bright=0.1,contrast=0.1,gamma=0.1,hflip=0" (all fields).
    std::string describe() const;
};

/// The defaults for radiographs: crop area 0.7–1, aspect up to 4/3, ±10°, brightness and
/// contrast ±0.1, gamma exp(±0.15), no flip.
AugmentOptions radiograph_augment_defaults();

/// Parses --augment: "none", "default" (radiograph_augment_defaults), or a comma list of
/// key=value overriding the defaults: crop (min area), ratio, rot (degrees), bright, contrast,
/// gamma, hflip (0/1), mask (nearest|bilinear). Throws UsageError on an unknown key or a bad
/// value.
AugmentOptions parse_augment(const std::string& text);

/// One sample's drawn parameters.
struct AugmentParams {
    double crop_w = 1.0, crop_h = 1.0;      ///< crop size as fractions of W and H
    double centre_x = 0.0, centre_y = 0.0;  ///< crop centre, normalised coordinates [-1, 1]
    double angle_rad = 0.0;
    bool flip = false;
    double brightness = 1.0, contrast = 1.0, gamma = 1.0;
};

/// Draws `n` samples' parameters (see the file comment for the order).
std::vector<AugmentParams> sample_augment_params(std::size_t n, double height, double width,
                                                 const AugmentOptions& options, Rng& rng);

/// Applies given parameters: geometry to images (bilinear, zero padding = black) and masks
/// (options.mask_resample), intensity to images only, images clamped to [0,1]. Returns new
/// tensors (inputs untouched); `masks` may be undefined (returned undefined).
struct Augmented {
    at::Tensor images;
    at::Tensor masks;
};
Augmented apply_augment(const at::Tensor& images, const at::Tensor& masks,
                        const std::vector<AugmentParams>& params, const AugmentOptions& options);

/// sample_augment_params + apply_augment. With is_identity() options the inputs are returned
/// unchanged (and no random numbers are drawn).
Augmented augment_batch(const at::Tensor& images, const at::Tensor& masks,
                        const AugmentOptions& options, Rng& rng);

}  // namespace radprobe::heads
