#pragma once
// Small raster helpers for the phantom renderer: a deterministic separable Gaussian blur and
// Gaussian-profile line segments. Private to synth.

#include <cstdint>
#include <vector>

namespace radprobe::synth::detail {

/// SplitMix64 finaliser: decorrelates (seed, stream tag) pairs before Rng::derive.
std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t tag);

/// In-place separable Gaussian blur (radius ceil(3 sigma), replicated borders). Each output
/// pixel is a fixed-order sum, so the result does not depend on threads or tiling.
void gaussian_blur(std::vector<float>& image, int size, double sigma);

/// Max-blends amp · exp(-dist² / (2 sigma²)) around the segment (x0,y0)-(x1,y1) into `layer`,
/// evaluated at pixel centres, within 3 sigma.
void draw_segment(std::vector<float>& layer, int size, double x0, double y0, double x1, double y1,
                  double sigma, double amp);

}  // namespace radprobe::synth::detail
