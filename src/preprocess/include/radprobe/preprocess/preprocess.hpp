#pragma once
/// @file preprocess.hpp
/// The one path from a decoded radiograph to network input, shared by extraction, fine-tuning,
/// segmentation, the from-scratch baselines and the analyses, so that every model of a study sees
/// its images resized the same way. No LibTorch.
///
/// Image layout: planar, row-major. A preprocessed image is C×H×W float32 (pixels[c*H*W + y*W +
/// x]), exactly the `pixel_values[0]` the model's HF image processor returns.
///
/// How a radiograph becomes model input: imaging::decode gives the display image,
/// grey in [0,1] (1 = white; colour files become luminance). It is quantised to 8 bits
/// (round(v·255)) because HF processors resize the 8-bit PIL image; the grey channel is then
/// what PIL's convert("RGB") would replicate into R, G and B. Resize (PIL's fixed-point
/// separable filters, reproduced bit-exactly), centre crop, rescale and normalise follow the
/// processor config. Two outputs:
///  - 3 channels: the grey plane normalised with each channel's mean/std (what HF produces);
///  - 1 channel ("folded"): the rescaled grey plane in [0,1] without normalisation, for an
///    encoder whose patch embedding was folded with Encoder::fold_grayscale (a third of the
///    patch-embedding cost, mathematically the same tokens).
///
/// The from-scratch baselines (CNN, U-Net) have no processor: their input is the display image
/// resized to a square (InputSpec::kSquare: area averaging when shrinking, bilinear otherwise).

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "radprobe/dataset/manifest.hpp"
#include "radprobe/imaging/decode.hpp"

namespace radprobe::preprocess {

/// PIL resampling filters (the integer codes of PIL.Image.Resampling).
enum class Resample { kNearest = 0, kLanczos = 1, kBilinear = 2, kBicubic = 3 };

/// preprocessor_config.json (BitImageProcessor, ViTImageProcessor, CLIPImageProcessor ...).
struct PreprocessConfig {
    std::string processor_type;
    bool do_resize = true;
    /// Resize rule: shortest edge to `shortest_edge` (aspect kept) when > 0, else exactly to
    /// resize_height × resize_width.
    std::int64_t shortest_edge = 0;
    std::int64_t resize_height = 0;
    std::int64_t resize_width = 0;
    Resample resample = Resample::kBicubic;
    bool do_center_crop = false;
    std::int64_t crop_height = 0;
    std::int64_t crop_width = 0;
    bool do_rescale = true;
    double rescale_factor = 1.0 / 255.0;
    bool do_normalize = true;
    std::array<double, 3> image_mean{0.485, 0.456, 0.406};
    std::array<double, 3> image_std{0.229, 0.224, 0.225};
    /// Centre-crop offset rule: HF's floor((H - crop) / 2) (false) or torchvision's
    /// int(round((H - crop) / 2.0)) with Python's round-half-to-even (true; open_clip).
    bool torchvision_crop = false;

    /// Overrides the size: shortest edge N and (if cropping) an N×N centre crop.
    void override_size(std::int64_t n);
    /// Output H×W for an input of rows × cols.
    std::array<std::int64_t, 2> output_size(std::int64_t rows, std::int64_t cols) const;
};

/// Where the pixels of the original image end up: original (x, y) maps to
/// (x·scale_x − crop_left, y·scale_y − crop_top) in model-input pixels (continuous coordinates,
/// pixel edges at integers; original pixel (c, r) covers [c, c+1) × [r, r+1)). The model input
/// is out_height × out_width, row-major. Masks, boxes and predicted maps go through this one
/// mapping, in either direction.
struct Geometry {
    std::int64_t rows = 0;  ///< original image
    std::int64_t cols = 0;
    std::int64_t resized_height = 0;
    std::int64_t resized_width = 0;
    double scale_y = 1.0;       ///< resized_height / rows
    double scale_x = 1.0;       ///< resized_width / cols
    std::int64_t crop_top = 0;  ///< may be negative when the crop pads
    std::int64_t crop_left = 0;
    std::int64_t out_height = 0;
    std::int64_t out_width = 0;
};
/// The geometry of an image processor (resize, then centre crop) for a rows × cols image.
Geometry processor_geometry(const PreprocessConfig& config, std::int64_t rows, std::int64_t cols);
/// A plain resize to out_h × out_w (no crop).
Geometry square_geometry(std::int64_t rows, std::int64_t cols, std::int64_t out_h,
                         std::int64_t out_w);

/// PIL's Image.resize on one 8-bit plane (fixed-point separable filters with support scaling
/// when downsampling, horizontal pass first; bit-exact with Pillow). Row-major in and out.
std::vector<std::uint8_t> pil_resize_u8(const std::uint8_t* src, std::int64_t rows,
                                        std::int64_t cols, std::int64_t out_rows,
                                        std::int64_t out_cols, Resample filter);

/// Quantises a [0,1] grey image to 8 bits: round(v·255), clamped.
std::vector<std::uint8_t> quantise_u8(const float* grey, std::size_t n);

/// The intermediate 8-bit plane after resize and centre crop (H×W, what HF's processor holds
/// before rescaling).
std::vector<std::uint8_t> resize_and_crop_u8(const std::vector<std::uint8_t>& grey,
                                             std::int64_t rows, std::int64_t cols,
                                             const PreprocessConfig& config,
                                             std::vector<std::uint8_t>* resized = nullptr);

/// Full preprocessing of an 8-bit grey plane to model input, C×H×W float32 with C = 3
/// (per-channel normalisation) or C = 1 (folded: rescaled only).
std::vector<float> preprocess_grey_u8(const std::vector<std::uint8_t>& grey, std::int64_t rows,
                                      std::int64_t cols, const PreprocessConfig& config,
                                      int channels);

/// The fraction of each model-input pixel covered by the mask (exact area average of the
/// original pixels it overlaps; 0 outside the image): out_height × out_width values in [0, 1].
std::vector<float> mask_to_input(const dataset::Mask& mask, const Geometry& g);

/// Probabilities on the model input (out_height × out_width) → the original grid (rows × cols):
/// each original pixel centre is mapped into the input and the map sampled bilinearly (edges
/// clamped, as align_corners=false resizing); centres outside the input (cut away by the crop)
/// get 0 — the model never saw them.
std::vector<float> input_to_original(const float* probabilities, const Geometry& g);

// ---------------------------------------------------------------------------------------------
// Network input of a step
// ---------------------------------------------------------------------------------------------

/// How a step turns decoded radiographs into network input.
struct InputSpec {
    enum class Kind {
        kProcessor,  ///< the encoder's image processor (8-bit, PIL-exact resize, crop, rescale)
        kSquare,     ///< the display image resized to size × size (the from-scratch baselines)
    };
    Kind kind = Kind::kProcessor;
    PreprocessConfig processor;  ///< kProcessor
    /// kProcessor: 1 = the rescaled grey plane (before normalisation: a folded encoder, or a
    /// step that augments first), 3 = normalised per channel (what HF produces). kSquare: 1.
    int channels = 1;
    std::int64_t size = 256;  ///< kSquare: the side

    static InputSpec processor_input(const PreprocessConfig& config, int channels);
    static InputSpec square(std::int64_t size);
};

/// The geometry of a rows × cols image under `spec`.
Geometry input_geometry(const InputSpec& spec, std::int64_t rows, std::int64_t cols);

/// The network input of one grey display image (rows × cols in [0,1], row-major): C×H×W float.
std::vector<float> to_input(const float* grey, std::int64_t rows, std::int64_t cols,
                            const InputSpec& spec);
std::vector<float> to_input(const imaging::Image& image, const InputSpec& spec);

/// One manifest row as network input.
struct InputImage {
    Geometry geometry;
    std::vector<float> pixels;  ///< C×H×W
};

/// Decodes each of the manifest `rows` and maps it through `spec`, calling fn(k, image) for
/// rows[k] on up to `threads` threads; fn(0, ...) returns before any other call starts (a caller
/// can size its storage from the first image). Only one full-size image per thread is alive at a
/// time, so callers that keep what they need (a plane at the model's input size, in memory or a
/// scratch file) stay flat in memory whatever the number of rows. With `with_pixels` false only
/// the geometry is computed (a step that reads cached features needs where the pixels land, not
/// the pixels). An image that cannot be decoded throws its InputError.
void for_each_input(const dataset::Manifest& manifest, const std::vector<std::size_t>& rows,
                    const InputSpec& spec, int threads,
                    const std::function<void(std::size_t, InputImage&)>& fn,
                    bool with_pixels = true);

}  // namespace radprobe::preprocess
