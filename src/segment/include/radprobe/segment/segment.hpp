#pragma once
/// @file segment.hpp
/// Segmentation: `radprobe segment` (decoders on encoder patch grids) and
/// `radprobe baseline --task seg` (a U-Net from scratch). LibTorch stays in the .cpp files.
///
/// Geometry: every image is mapped to a model input of out_h × out_w pixels (the encoder's
/// resize + centre crop, or the U-Net's plain resize); masks are mapped the same way (exact
/// area fractions) for training, and predicted probabilities are mapped back onto the
/// original pixel grid (bilinear at pixel centres; pixels the crop cut away are background)
/// before thresholding at 0.5, writing the PNGs and scoring.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "radprobe/core/options.hpp"

namespace radprobe::segment {

enum class SegDecoder {
    kLinear,      ///< BatchNorm + 1×1 conv on the last patch grid, bilinear upsampling
    kMultiscale,  ///< several layers projected, resampled to 4 scales, fused (DPT-style)
    kUnet,        ///< U-Net on the image, from scratch (the supervised baseline)
};
/// "linear" | "multiscale" | "unet"; throws UsageError otherwise.
SegDecoder parse_seg_decoder(const std::string& text);
const char* seg_decoder_name(SegDecoder decoder);

struct SegmentOptions {
    SegDecoder decoder = SegDecoder::kLinear;
    /// Encoder (HF directory). Frozen: the patch grids are extracted once into a store under
    /// store_root (cached; no second forward pass); fine-tuned: run live.
    std::filesystem::path model;
    /// Alternatively a complete store extracted with `--pool patches` (frozen only).
    std::filesystem::path store;
    std::filesystem::path store_root;  ///< where --model extractions go (default OUT/embeddings)
    std::filesystem::path manifest;
    std::string mask;  ///< mask column name without the `mask_` prefix (e.g. "heart")
    /// Hidden-state indices (HF numbering, negative from the end). Empty: linear = {-1},
    /// multiscale = the last four {-4,-3,-2,-1}.
    std::vector<int> layers;
    std::int64_t resize = 0;        ///< encoder input size override (as extract --resize)
    std::string unfreeze = "none";  ///< none | all | last-K (the last K blocks + final norm)
    double layer_decay = 0.75;      ///< encoder LR multiplier decay^(num_blocks + 1 − layer_id)
    double encoder_lr_mult = 0.1;   ///< encoder LR relative to the decoder's
    int channels = 64;  ///< multiscale: fused channels; unet: channels of the first level
    int depth = 4;      ///< unet: levels (the input side must be divisible by 2^depth)
    int size = 256;     ///< unet: input side (images resized to size × size)
    int epochs = 40;
    int batch = 8;
    double lr = 1e-3;
    double weight_decay = 1e-4;
    int warmup_epochs = 2;
    double clip_norm = 1.0;
    int patience = 10;         ///< epochs without val Dice improvement before stopping
    double dice_weight = 1.0;  ///< loss = dice_weight · soft Dice loss + bce_weight · BCE
    double bce_weight = 1.0;
    /// Augmentation (see augment.hpp: "none", "default" or key=value list); live paths only
    /// (the U-Net and --unfreeze): cached grids cannot be augmented.
    std::string augment = "none";
    std::string both_empty = "perfect";  ///< eval convention: perfect | exclude
    std::string one_empty = "exclude";   ///< surface distances: exclude | diagonal
    std::string device = "cpu";
    std::uint64_t seed = 0;
    int threads = 0;
    std::size_t n_boot = 2000;
    double level = 0.95;
    std::optional<std::filesystem::path> out;  ///< masks/, predictions.csv, metrics.json, model/
    bool progress = false;
};

/// One scored image (original pixel grid).
struct SegImageResult {
    std::string image;
    std::string patient_id;
    bool truth_empty = false;
    bool prediction_empty = false;
    std::optional<double> dice, iou, hd95;
    std::string mask_path;  ///< written PNG (relative to the output directory), or empty
};

/// Mean over images with a patient-clustered bootstrap CI (percentile).
struct SegMetricSummary {
    std::string metric;  ///< dice | iou | hd95
    std::size_t defined = 0;
    double mean = 0.0, ci_lo = 0.0, ci_hi = 0.0;
};

struct SegmentResult {
    SegDecoder decoder = SegDecoder::kLinear;
    std::string mask;
    std::string encoder;  ///< model directory name ("" for the U-Net)
    std::string unfreeze;
    std::vector<int> layers;  ///< non-negative hidden-state indices used
    std::uint64_t seed = 0;
    std::size_t n_train = 0, n_val = 0, n_test = 0;
    int epochs_run = 0;
    int best_epoch = 0;
    double best_val_dice = 0.0;
    /// val mean Dice per epoch, over the val images with a non-empty mask when there are any
    /// (what early stopping watches)
    std::vector<double> val_curve;
    std::vector<SegImageResult> test;
    std::vector<SegMetricSummary> metrics;
    /// The empty-mask convention, e.g. "both_empty=perfect (Dice=IoU=1, HD95=0); one_empty=
    /// exclude (HD95 undefined); outside_crop=background".
    std::string empty_convention;
    std::size_t test_empty_truth = 0;  ///< test images whose truth mask is empty
    /// Dice over the test images whose ground-truth mask is non-empty only (metric
    /// "dice_positive"; mean with the same patient-clustered bootstrap CI). No empty-mask
    /// convention enters it, unlike metrics[dice], where an empty truth predicted empty scores 1.
    SegMetricSummary dice_positive;
    std::size_t n_scored = 0;    ///< test images with a ground-truth mask (all-images Dice base)
    std::size_t n_positive = 0;  ///< of those, images whose truth is non-empty (dice_positive base)
    std::filesystem::path checkpoint;  ///< OUT/model (when out is set)
    double seconds = 0.0;
    std::string metrics_json;  ///< the JSON written to metrics.json
    /// Masks resampled to their image's grid (another resolution, same aspect ratio): one
    /// sentence with their number and an example; "" when none were.
    std::string mask_note;
};

/// Trains the decoder (or U-Net) on the manifest's train rows with a known mask, early-stops on
/// val mean Dice (keeping the best weights), predicts test, maps predictions back to the
/// original images and scores them (eval's segmentation metrics; CIs clustered by patient).
/// With options.out: OUT/masks/<row>_<stem>.png, OUT/predictions.csv, OUT/metrics.json and
/// OUT/model/ (decoder weights + seg_model.json; a fine-tuned encoder under OUT/model/encoder).
SegmentResult run_segment(const SegmentOptions& options);

struct SegmentApplyOptions {
    std::filesystem::path checkpoint;  ///< a run's OUT/model directory
    std::filesystem::path manifest;    ///< images to segment (every row)
    std::string mask;           ///< optional: score against this mask column where it is known
    std::filesystem::path out;  ///< masks/ + predictions.csv (+ metrics.json)
    std::string device = "cpu";
    int threads = 0;
    int batch = 8;
    std::uint64_t seed = 0;  ///< bootstrap seed
    std::size_t n_boot = 2000;
    double level = 0.95;
};

/// Runs a trained decoder (with its encoder, live) or U-Net on new images and writes their
/// masks on the original pixel grids.
SegmentResult apply_segment(const SegmentApplyOptions& options);

/// The options of the segmentation decoders on an encoder (`radprobe segment` / config adaptation
/// `segment`) and of the U-Net trained from scratch (`radprobe baseline --task seg` / config
/// adaptation `unet_baseline`, its own defaults: 128 px, 8 channels, 10 epochs at lr 3e-3 — heart
/// Dice >= 0.9 on 256 px phantoms in minutes on 2 cores). The decoder itself (linear |
/// multiscale) is what is run, not an option of the run: `--decoder` on the command line, the
/// list `decoders` in the config (each decoder its own run).
options::Table<SegmentOptions> decoder_options();
options::Table<SegmentOptions> unet_options();

}  // namespace radprobe::segment
