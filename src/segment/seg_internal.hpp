#pragma once
// Internal to segment (LibTorch): the pieces run_segment (segment.cpp) and apply_segment
// (seg_apply.cpp) share — samples with their geometry and masks, feeding a network from cached
// grids / live pixels, scoring on the original grid, checkpoints, and the loss.

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/preprocess/preprocess.hpp"
#include "radprobe/segment/segment.hpp"
#include "seg_geometry.hpp"
#include "seg_models.hpp"

namespace radprobe::segment {

/// Dice + BCE on logits N×1×H×W against soft targets in [0,1] (same shape):
/// bce_weight · mean BCE + dice_weight · mean over images of (1 − (2Σpt + 1)/(Σp + Σt + 1)),
/// p = sigmoid(logits). Add-one smoothing makes an empty target with an empty prediction cost
/// 0 and keeps every term finite.
torch::Tensor seg_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                       double dice_weight, double bce_weight);

/// How images become network input.
struct InputSpec {
    /// kSquare (the U-Net) or kProcessor (the encoder's resize + crop), 1 channel in [0,1].
    preprocess::InputSpec input = preprocess::InputSpec::square(256);
    bool keep_pixels = false;  ///< keep the [0,1] model-input pixels
};

/// The encoder's processor input for the decoders: its resize + crop (`resize` > 0 overrides
/// the size), 1 channel in [0,1].
preprocess::InputSpec encoder_input(preprocess::PreprocessConfig processor, std::int64_t resize);

struct Sample {
    std::size_t row = 0;  ///< manifest row
    std::string id, patient;
    dataset::Split split = dataset::Split::kNone;
    preprocess::Geometry geometry;
    bool has_truth = false;
    PackedMask truth;  ///< original grid, run-length encoded
};

/// A frozen encoder's patch grids, read batch by batch from its extraction store's patches.npy
/// (a row of a ViT-B at 518 px is 4 MB per layer: never the whole store in memory).
struct CachedGrids {
    std::shared_ptr<const NpyRowReader> store;  ///< STORE/patches.npy
    std::vector<std::int64_t> store_row;        ///< per sample of the set
    std::vector<std::int64_t> layers;           ///< the selected layers' positions in a row
    std::int64_t grid_h = 0, grid_w = 0, dim = 0;

    /// One N×D×gh×gw tensor per selected layer, for the samples `idx`.
    std::vector<torch::Tensor> batch(const std::vector<std::int64_t>& idx) const;
};

/// The samples of one split, with what the network eats held outside the process's memory: the
/// model-input planes in scratch files (one record of out_height × out_width floats per sample),
/// patch grids in the store. Memory stays flat whatever the number of images.
struct SampleSet {
    std::vector<Sample> samples;
    std::shared_ptr<ScratchRecords> pixels;    ///< grey in [0,1] (keep_pixels), else null
    std::shared_ptr<ScratchRecords> targets;   ///< area fractions (zeros without truth), or null
    std::shared_ptr<const CachedGrids> grids;  ///< cached input, or null for live input

    /// N×1×H×W planes of the samples `idx` from `pixels` or `targets`.
    torch::Tensor planes(const ScratchRecords& records, const std::vector<std::int64_t>& idx) const;
};

/// Decodes the rows' images (in chunks, so that only a chunk of full-size images is held),
/// computes their geometry, writes their model-input pixels (keep_pixels) and, with `mask`
/// recorded, the input-grid target to scratch files, and keeps the truth run-length encoded
/// unless `keep_truth` is false (the train split is never scored: its targets are all it needs).
/// Throws InputError when images give different model input sizes.
SampleSet load_samples(const dataset::Manifest& manifest, const std::vector<std::size_t>& rows,
                       const std::string& mask, const InputSpec& spec, int threads,
                       bool keep_truth = true);

/// [0,1] grey N×1×H×W → network input (U-Net: centred; encoder: 3 channels, rescaled and
/// normalised as the model's processor does).
torch::Tensor normalise_input(const torch::Tensor& x01, const InputSpec& spec);

/// Grids (N×D×gh×gw, in `layers` order) from one encoder output.
std::vector<torch::Tensor> grids_from_output(const encoders::EncoderOutput& out,
                                             const std::vector<int>& layers, std::int64_t L,
                                             std::int64_t registers, bool has_cls);

/// Feeds a network: cached grids, or live pixels through the encoder (or straight into the
/// U-Net).
struct SegRunner {
    InputSpec spec;
    std::shared_ptr<SegNet> net;
    encoders::Encoder* encoder = nullptr;  ///< live encoder (fine-tuning / apply), or null
    std::vector<int> layers;
    encoders::ModelConfig config;
    torch::Device device = torch::kCPU;
    /// False for a frozen encoder run live (stage maps): it stays in eval mode.
    bool encoder_trainable = true;

    void set_train(bool train);
    /// N×1×H×W [0,1] model-input pixels of the samples `idx`, on the device.
    torch::Tensor pixels(const SampleSet& set, const std::vector<std::int64_t>& idx) const;
    /// Cached grids of the samples `idx`, one N×D×gh×gw tensor per layer, on the device.
    std::vector<torch::Tensor> cached_inputs(const SampleSet& set,
                                             const std::vector<std::int64_t>& idx) const;
    /// Pixels → network inputs (differentiable through the encoder unless a NoGradGuard is
    /// active).
    std::vector<torch::Tensor> live_inputs(const torch::Tensor& x01);
    /// Eval mode, no gradients: the probabilities of the set batch by batch, each handed to
    /// `on_batch(first, probs)` (probs: n × out_h × out_w on the CPU, contiguous, for the samples
    /// first .. first + n − 1) and dropped, so they are never all held.
    void predict(const SampleSet& set, int batch,
                 const std::function<void(std::size_t, const torch::Tensor&)>& on_batch);
};

/// Predicts the set batch by batch and scores each sample as its batch completes (threshold
/// 0.5, on its original grid, score_sample) without holding every probability map.
std::vector<SegImageResult> predict_and_score(SegRunner& runner, const SampleSet& set, int batch,
                                              const eval::SegmentationOptions& seg,
                                              std::vector<eval::SegmentationScores>* scores,
                                              const std::filesystem::path* out);

/// Scores one sample's probabilities (out_h × out_w) on its original grid (threshold 0.5) into
/// `result` (and `scores` when given). With `out`, the predicted original-grid mask is written
/// to OUT/masks/<row>_<stem>.png and its path set in the result.
void score_sample(const Sample& sample, const float* probabilities,
                  const eval::SegmentationOptions& seg, SegImageResult& result,
                  eval::SegmentationScores* scores, const std::filesystem::path* out);

/// Mean of the defined Dice values (NaN when none). With positives_only, over the images whose
/// truth is non-empty.
double mean_dice(const std::vector<SegImageResult>& results, bool positives_only = false);

/// Dice, IoU and HD95 means with patient-clustered percentile bootstrap CIs.
std::vector<SegMetricSummary> summarise(const std::vector<eval::SegmentationScores>& scores,
                                        const std::vector<std::string>& patients,
                                        std::uint64_t seed, std::size_t n_boot, double level);

/// Fills result.metrics (all images, the convention applies), result.dice_positive (Dice over
/// the images whose truth is non-empty), n_scored, n_positive and test_empty_truth from the
/// scores of the samples that have a truth mask (others are skipped).
void summarise_into(SegmentResult& result, const std::vector<Sample>& samples,
                    const std::vector<eval::SegmentationScores>& scores, std::uint64_t seed,
                    std::size_t n_boot, double level);

/// OUT/predictions.csv (the masks were written as they were scored).
void write_outputs(const std::filesystem::path& out, const std::vector<Sample>& samples,
                   const std::vector<SegImageResult>& results);

/// {"dice": {"mean", "ci": [lo, hi], "defined"}, "iou": ..., "hd95": ...} (null when undefined).
nlohmann::ordered_json metrics_block(const SegmentResult& result);

/// Network weights ↔ file (LibTorch archive, written atomically).
void save_seg_net(torch::nn::Module& net, const std::filesystem::path& path);
void load_seg_net(torch::nn::Module& net, const std::filesystem::path& path);

}  // namespace radprobe::segment
