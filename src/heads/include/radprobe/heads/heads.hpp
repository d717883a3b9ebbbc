#pragma once
/// @file heads.hpp
/// Adaptation heads: probes on cached embeddings (linear = L2-regularised logistic regression
/// trained with our own float64 L-BFGS; kNN = cosine similarity with temperature-weighted votes
/// as in DINO's kNN evaluation), the `radprobe probe` pipeline (store + manifest → predictions
/// and metrics with CIs), and the supervised from-scratch CNN baseline (`radprobe baseline`).
/// No LibTorch in this header.
///
/// Layouts: a feature matrix is N×D, row-major (feature j of sample i at [i * D + j]); binary
/// labels are 0/1 doubles; scores are one per sample, higher = more likely positive.
///
/// Logistic regression objective (identical minimiser to scikit-learn's
/// `LogisticRegression(penalty='l2', solver='lbfgs', C=C)`):
///     0.5·||w||² + C · Σ_i s_i · log(1 + exp(−ỹ_i (x_i·w + b))),   ỹ_i = 2y_i − 1,
/// the intercept b unpenalised, s_i the sample (class) weights. It is minimised in the scaled
/// form F = (above) / (C · Σ s_i), whose gradient is O(1) for every C, so one tolerance fits the
/// whole grid: convergence when max|∇F| ≤ tol.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace radprobe::heads {

// ---------------------------------------------------------------------------------------------
// Standardisation
// ---------------------------------------------------------------------------------------------

/// Per-feature mean and scale estimated on training rows, as scikit-learn's StandardScaler:
/// scale = population standard deviation (ddof = 0), or 1 for a constant feature.
struct Standardizer {
    std::vector<double> mean;
    std::vector<double> scale;

    /// Fits on `rows` rows of `x` (N×D). Throws InputError on a non-finite value.
    static Standardizer fit(std::span<const double> x, std::size_t dim);
    /// (x − mean) / scale, N×D in, N×D out.
    std::vector<double> transform(std::span<const double> x) const;
};

// ---------------------------------------------------------------------------------------------
// L-BFGS and logistic regression
// ---------------------------------------------------------------------------------------------

struct LbfgsOptions {
    double tol = 1e-10;    ///< stop when max|∇F| ≤ tol (F scaled, see the file comment)
    int max_iter = 10000;  ///< L-BFGS iterations
    int memory = 10;       ///< correction pairs kept (scipy's default maxcor)
    int threads = 0;       ///< <= 0: all cores; the result is identical for any count
};

/// A fitted binary logistic model: score(x) = x·coef + intercept (the decision function).
struct LogisticModel {
    std::vector<double> coef;
    double intercept = 0.0;
    double c = 1.0;
    int iterations = 0;
    int evaluations = 0;
    bool converged = false;
    double gradient_norm = 0.0;  ///< final max|∇F|
    double objective = 0.0;      ///< final F

    /// Decision function for N×D rows.
    std::vector<double> decision(std::span<const double> x) const;
};

/// Per-sample weights 'balanced' as scikit-learn: n / (2 · n_class) for each sample's class.
std::vector<double> balanced_weights(std::span<const double> labels);

/// Fits L2-regularised logistic regression on N×D features `x` with 0/1 `labels`.
/// `weights` (empty = all 1) are per-sample weights. `warm_start` (D + 1 values: coef then
/// intercept, empty = zeros) starts the optimiser there. Throws InputError for a label outside
/// {0, 1}, a single class, non-finite data or C ≤ 0.
LogisticModel fit_logistic(std::span<const double> x, std::size_t dim,
                           std::span<const double> labels, double c,
                           std::span<const double> weights = {}, const LbfgsOptions& options = {},
                           std::span<const double> warm_start = {});

/// The default C grid: DINOv2's linear-probe evaluation, 10^p for 45 values of p evenly spaced
/// on [−6, 5].
std::vector<double> default_c_grid();
/// Parses "1e-3,1e-2,0.1" or "logspace:-6:5:45"; throws UsageError on anything else.
std::vector<double> parse_c_grid(const std::string& text);

// ---------------------------------------------------------------------------------------------
// kNN
// ---------------------------------------------------------------------------------------------

/// Scores of `query` rows by a weighted kNN vote over `train` rows, as DINO's kNN evaluation:
/// features L2-normalised, similarity = cosine, the k most similar training rows vote with
/// weight exp(sim / temperature); score = (votes for class 1) / (all votes). Rows are N×D.
/// `labels` are the training labels (0/1). Ties in similarity are broken by training index.
std::vector<double> knn_scores(std::span<const float> train, std::span<const double> labels,
                               std::span<const float> query, std::size_t dim, int k,
                               double temperature = 0.07, int threads = 0);

// ---------------------------------------------------------------------------------------------
// Probes on one binary problem (train / val / test already separated)
// ---------------------------------------------------------------------------------------------

enum class ProbeKind { kLinear, kKnn };
/// "linear" | "knn"; throws UsageError otherwise.
ProbeKind parse_probe_kind(const std::string& text);
const char* probe_kind_name(ProbeKind kind);

struct ProbeOptions {
    ProbeKind kind = ProbeKind::kLinear;
    std::vector<double> c_grid = default_c_grid();
    bool class_weight_balanced = false;
    std::vector<int> k_grid{10, 20, 100, 200};
    double temperature = 0.07;
    LbfgsOptions lbfgs;
    int threads = 0;
};

/// One point of the validation curve: the hyper-parameter (C or k) and the validation AUROC.
struct CurvePoint {
    double param = 0.0;
    double val_auroc = 0.0;
    int iterations = 0;     ///< L-BFGS iterations (linear)
    bool converged = true;  ///< (linear)
};

/// A trained-and-selected probe for one label: the chosen hyper-parameter (the one with the
/// highest validation AUROC; on a tie the smaller C — more regularisation — or the smaller k),
/// the curve, and the selected model's scores on the test rows.
struct BinaryProbeResult {
    double chosen = 0.0;  ///< C (linear) or k (knn)
    std::vector<CurvePoint> curve;
    std::vector<double> test_scores;
    std::optional<LogisticModel> model;  ///< linear: on standardised features
    Standardizer standardizer;           ///< linear: fitted on train
};

/// Fits on train, selects on val, scores test. Features are N×D float32 rows. Linear: features
/// standardised with train statistics, the C grid fitted in increasing order with warm starts.
/// Throws InputError if train or val lack a class.
BinaryProbeResult fit_binary_probe(std::span<const float> train_x, std::span<const double> train_y,
                                   std::span<const float> val_x, std::span<const double> val_y,
                                   std::span<const float> test_x, std::size_t dim,
                                   const ProbeOptions& options);

// ---------------------------------------------------------------------------------------------
// `radprobe probe`: embedding store + manifest → predictions and metrics
// ---------------------------------------------------------------------------------------------

struct ProbeRunOptions {
    std::filesystem::path store;  ///< a complete store dir, or a root holding exactly one
    std::filesystem::path manifest;
    std::vector<std::string> labels;
    std::string pool = "cls";  ///< cls | mean | cls+mean | roi
    ProbeOptions probe;
    std::uint64_t seed = 0;  ///< bootstrap seed (and recorded)
    std::size_t n_boot = 2000;
    double level = 0.95;
    std::optional<std::filesystem::path> out;  ///< predictions_<label>.csv + metrics.json
};

/// Test metrics of one label.
struct LabelResult {
    std::string label;
    std::size_t n_train = 0, n_val = 0, n_test = 0;
    std::size_t test_positives = 0;
    double chosen = 0.0;
    std::vector<CurvePoint> curve;
    double auroc = 0.0;
    double delong_lo = 0.0, delong_hi = 0.0;
    double bootstrap_lo = 0.0, bootstrap_hi = 0.0;  ///< patient-clustered, percentile
    std::size_t bootstrap_valid = 0;
    double auprc = 0.0;
    std::vector<std::string> test_images;
    std::vector<std::string> test_patients;
    std::vector<double> test_labels;
    std::vector<double> test_scores;
};

struct ProbeRunResult {
    std::filesystem::path store_dir;
    std::string pool;
    ProbeKind kind = ProbeKind::kLinear;
    std::uint64_t seed = 0;
    std::size_t dim = 0;
    std::vector<LabelResult> labels;
    std::string metrics_json;  ///< the JSON written to metrics.json
};

/// Finds the store directory: `path` itself when it holds COMPLETE, else its only
/// subdirectory holding COMPLETE. Throws InputError otherwise, listing what was found.
std::filesystem::path resolve_store_dir(const std::filesystem::path& path);

/// Reads the store's rows for `pool` ("cls+mean" falls back to concatenating cls.npy and
/// mean.npy when the store has no cls+mean.npy), matches them to manifest records by image id,
/// splits by the manifest's `split` column, and runs the probe per label (rows with an unknown
/// label are left out of that label's problem; roi rows without a region are left out).
/// Writes outputs atomically when options.out is set. Throws InputError naming the file /
/// column when a split is empty or lacks a class, or a label is not in the manifest.
ProbeRunResult run_probe(const ProbeRunOptions& options);

// ---------------------------------------------------------------------------------------------
// `radprobe baseline --task cls`: a ResNet-style CNN trained from scratch (LibTorch)
// ---------------------------------------------------------------------------------------------

struct BaselineOptions {
    std::filesystem::path manifest;
    std::string label;
    int size = 256;                       ///< images resized to size × size (grey, one channel)
    int width = 32;                       ///< channels of the first stage (ResNet-18: 64)
    std::vector<int> blocks{2, 2, 2, 2};  ///< basic blocks per stage (ResNet-18: 2,2,2,2)
    int epochs = 30;
    int batch = 32;
    double lr = 1e-3;
    double weight_decay = 0.05;
    int warmup_epochs = 2;
    double clip_norm = 1.0;
    int patience = 6;  ///< epochs without val AUROC improvement before stopping
    std::uint64_t seed = 0;
    int threads = 0;
    std::size_t n_boot = 2000;
    std::optional<std::filesystem::path> out;
    bool progress = true;
};

struct BaselineResult {
    std::string label;
    int epochs_run = 0;
    int best_epoch = 0;
    double best_val_auroc = 0.0;
    std::vector<double> val_curve;  ///< val AUROC per epoch
    LabelResult test;               ///< test metrics (chosen = best epoch)
    double seconds = 0.0;
    std::string metrics_json;
    /// With `out`: OUT/encoder, the trained network as a Hugging Face ResNetModel directory
    /// (load_encoder() reads it; the analyses run on it like on any encoder), with the
    /// classifier in radprobe_baseline_head.json. Empty otherwise.
    std::filesystem::path encoder_dir;
};

/// Trains on train, early-stops on val AUROC (keeping the best weights), evaluates on test.
BaselineResult run_baseline(const BaselineOptions& options);

// ---------------------------------------------------------------------------------------------
// `radprobe train --head attention|mlp`: trained heads on cached features (LibTorch inside)
// ---------------------------------------------------------------------------------------------

enum class HeadKind { kAttention, kMlp };
/// A learning-rate grid: "lo:hi:n" (n values log-spaced, inclusive) or a comma list; sorted,
/// unique, all > 0. Throws UsageError naming --lr-grid otherwise.
std::vector<double> parse_lr_grid(const std::string& text);
/// "attention" | "mlp"; throws UsageError otherwise.
HeadKind parse_head_kind(const std::string& text);
const char* head_kind_name(HeadKind kind);

/// The attention-pooling head reads a store's `patches` rows (L·G·D per image; the L layers of
/// a token are concatenated, so the head sees G tokens of width L·D). The MLP head reads a
/// pooled store (cls | mean | cls+mean | roi), standardised with train statistics.
/// For each label (an independent binary problem) and each learning rate of `lr_grid`, a head
/// is initialised from `seed` and trained with AdamW, linear warm-up + cosine decay, gradient
/// clipping and early stopping on val AUROC (best state kept); the LR with the highest val
/// AUROC (tie: the smaller LR) is chosen and its head scores the test split.
struct TrainOptions {
    HeadKind head = HeadKind::kAttention;
    std::filesystem::path store;  ///< a complete store dir, or a root holding exactly one
    std::filesystem::path manifest;
    std::vector<std::string> labels;
    std::string pool;  ///< "" = patches (attention) / cls (mlp)
    std::vector<double> lr_grid{1e-5, 3.1622776601683795e-5, 1e-4, 3.1622776601683795e-4, 1e-3};
    int epochs = 30;
    int batch = 64;
    double weight_decay = 0.05;
    int warmup_epochs = 2;
    double clip_norm = 1.0;
    int patience = 6;       ///< epochs without val AUROC improvement before stopping
    bool balanced = false;  ///< class-weighted loss (pos_weight = negatives / positives)
    // Attention head.
    int dim = 0;  ///< working width (0 = token width); MLP: hidden width (0 = 256)
    int heads = 4;
    /// Attention: transformer blocks after the pooling (−1 = 0); MLP: hidden layers (−1 = 1).
    int depth = -1;
    int queries = 1;
    double dropout = 0.0;
    std::string device = "cpu";  ///< cpu | cuda | cuda:N (autocast on CUDA)
    std::uint64_t seed = 0;
    int threads = 0;
    std::size_t n_boot = 2000;
    double level = 0.95;
    std::optional<std::filesystem::path> out;  ///< predictions_<label>.csv + metrics.json
    bool progress = false;
};

struct TrainResult {
    HeadKind head = HeadKind::kAttention;
    std::filesystem::path store_dir;
    std::string pool;
    std::uint64_t seed = 0;
    std::string device;
    std::size_t tokens = 0;  ///< attention: tokens per image (G); mlp: 1
    std::size_t dim = 0;     ///< feature width per token
    /// Per label: test metrics; chosen = the LR, curve = (LR, best val AUROC, best epoch in
    /// `iterations`).
    std::vector<LabelResult> labels;
    double seconds = 0.0;
    std::string metrics_json;  ///< the JSON written to metrics.json
};

/// Runs the head per label as described at TrainOptions. Throws InputError naming the file /
/// column when the store lacks the pool, a split is empty or lacks a class, or a label is
/// missing; UsageError for bad options.
TrainResult run_train(const TrainOptions& options);

// ---------------------------------------------------------------------------------------------
// Segmentation: `radprobe segment` (decoders on encoder patch grids) and
// `radprobe baseline --task seg` (a U-Net from scratch). LibTorch stays in the .cpp files.
//
// Geometry: every image is mapped to a model input of out_h × out_w pixels (the encoder's
// resize + centre crop, or the U-Net's plain resize); masks are mapped the same way (exact
// area fractions) for training, and predicted probabilities are mapped back onto the
// original pixel grid (bilinear at pixel centres; pixels the crop cut away are background)
// before thresholding at 0.5, writing the PNGs and scoring.
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// `radprobe finetune`: an unfrozen encoder (all blocks or the last k) with a linear or
// attention head, layer-wise LR decay, radiograph augmentation, resumable checkpoints
// ---------------------------------------------------------------------------------------------

/// Images are decoded, preprocessed with the model's own preprocessing (its
/// preprocessor_config.json, --size overriding the size as extract --resize does) to the
/// rescaled grey plane in [0,1], augmented (train only, see src/heads/augment.hpp), then
/// normalised with the model's mean/std into its 3 input channels.
/// Encoder parameters get the LR multiplier llrd^(num_blocks + 1 − layer_id) (the head 1);
/// with unfreeze = "last-K" only parameters with layer_id > num_blocks − K (the last K blocks
/// and everything after them) train, all others stay bit-identical.
/// Checkpoints (OUT/checkpoint after every epoch, OUT/best on every val improvement; each
/// directory replaced atomically): encoder/ (HF layout: `radprobe extract --model
/// OUT/best/encoder` evaluates it like any model), head.safetensors, optimizer.pt (AdamW
/// state, LibTorch archive) and state.json (epoch, step, val curve, best, options). Epoch e
/// shuffles and augments with Rng::derive(seed, e), so a run resumed from OUT/checkpoint
/// ends with the same numbers as an uninterrupted run.
struct FinetuneOptions {
    std::filesystem::path model;  ///< HF directory
    std::filesystem::path manifest;
    std::string label;
    std::string head = "linear";   ///< linear | attention (over all patch tokens)
    std::string pool = "";         ///< linear head input: cls | mean ("" = cls when present)
    std::string unfreeze = "all";  ///< all | last-K (K blocks + what follows them) | none
    double llrd = 0.75;            ///< layer-wise LR decay factor in (0, 1]
    double lr = 1e-4;              ///< peak LR (head; encoder × llrd multipliers)
    double weight_decay = 0.05;
    int epochs = 10;
    int batch = 16;
    int warmup_epochs = 1;
    double clip_norm = 1.0;
    int patience = 5;                 ///< epochs without val AUROC improvement before stopping
    std::int64_t size = 0;            ///< model input size override (0 = the model's own)
    std::string augment = "default";  ///< see parse_augment (augment.hpp); "none" disables
    bool hflip = false;               ///< add horizontal flips (swaps anatomy; warned)
    // Attention head.
    int head_dim = 0;  ///< working width (0 = token width)
    int head_heads = 4;
    int head_depth = 0;
    std::string device = "cpu";  ///< cpu | cuda | cuda:N (float16 autocast + loss scaling)
    std::uint64_t seed = 0;
    int threads = 0;
    std::size_t n_boot = 2000;
    double level = 0.95;
    std::filesystem::path
        out;              ///< required: checkpoint/, best/, predictions_<label>.csv, metrics.json
    bool resume = false;  ///< continue from OUT/checkpoint (options must match)
    bool progress = false;
    /// Test hook: stop (as if killed) after saving this epoch's checkpoint (0 = never).
    int stop_after_epoch = 0;
};

/// One optimiser parameter group of a fine-tuning run.
struct FinetuneGroup {
    std::string name;  ///< "encoder.layer_<id>" or "head" (+ ".no_decay")
    int layer_id = 0;  ///< encoder depth (head: num_blocks + 2)
    double lr_mult = 1.0;
    std::size_t tensors = 0;
};

struct FinetuneResult {
    std::string label;
    bool completed = false;  ///< false when stopped by stop_after_epoch
    int epochs_run = 0;
    int best_epoch = 0;  ///< 1-based
    double best_val_auroc = 0.0;
    std::vector<double> val_curve;
    std::vector<double> train_loss;
    std::int64_t trainable_parameters = 0;
    std::int64_t frozen_parameters = 0;
    std::vector<FinetuneGroup> groups;  ///< encoder groups by layer_id, then the head
    LabelResult test;                   ///< chosen = best epoch; curve = (epoch, val AUROC)
    std::vector<std::string> warnings;
    double seconds = 0.0;
    std::string metrics_json;
};

/// The smallest encoder layer_id that trains: "all" → 0 (everything), "last-K" → num_blocks +
/// 1 − K (K in 1 .. num_blocks), "none" → num_blocks + 2 (head only, live encoder). Throws
/// UsageError otherwise.
int first_trainable_layer(const std::string& unfreeze, int num_blocks);
/// The layer-wise LR multiplier of a parameter at `layer_id`: llrd^(num_blocks + 1 − layer_id).
double llrd_multiplier(double llrd, int num_blocks, int layer_id);

/// Fine-tunes and evaluates as described at FinetuneOptions; writes OUT/predictions_<label>.csv
/// and OUT/metrics.json (test AUROC with DeLong and bootstrap CIs of the best-on-val state).
/// Throws InputError naming the file / column / key for bad data, UsageError for bad options
/// (including a --resume whose options differ from the checkpoint's).
FinetuneResult run_finetune(const FinetuneOptions& options);

}  // namespace radprobe::heads
