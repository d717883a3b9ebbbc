#pragma once
/// @file metrics.hpp
/// Statistics that every number of a radprobe report comes from: classification metrics,
/// DeLong variance and tests, bootstrap confidence intervals (percentile and BCa, stratified,
/// clustered by patient, paired and unpaired), multiple-comparison adjustment, and
/// segmentation metrics. No LibTorch, no OpenCV in this header.
///
/// Conventions shared by every function:
///  - Binary labels are doubles that must be exactly 0 or 1; scores must be finite. Anything
///    else (NaN/inf, a label of 2, spans of different lengths) throws radprobe::InputError with
///    a one-line message naming the function, the index and the value.
///  - A higher score means "more likely positive". AUROC is the Mann–Whitney statistic:
///    P(score_pos > score_neg) + 0.5 P(score_pos == score_neg).
///  - A metric that is undefined on the data (a label with one class, a replicate without
///    positives) is reported as std::nullopt or through an explicit count, never as 0.5 or NaN
///    silently.
///  - Multi-label arrays are N×L, row-major (value of label l for sample i at [i * L + l]).
///  - Masks are H×W, row-major, nonzero = foreground.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace radprobe::eval {

// ---------------------------------------------------------------------------------------------
// Input checks
// ---------------------------------------------------------------------------------------------

/// Throws InputError unless labels and scores have the same length, every label is 0 or 1 and
/// every score is finite. `where` prefixes the message (e.g. "auroc").
void check_binary_inputs(std::span<const double> labels, std::span<const double> scores,
                         const std::string& where);

/// Number of positives (labels == 1) and negatives, after check_binary_inputs.
struct ClassCounts {
    std::size_t positives = 0;
    std::size_t negatives = 0;
};
ClassCounts count_classes(std::span<const double> labels);

// ---------------------------------------------------------------------------------------------
// Classification metrics
// ---------------------------------------------------------------------------------------------

/// AUROC as the Mann–Whitney statistic (ties count one half). O(n log n).
/// Throws InputError if either class is absent.
double auroc(std::span<const double> labels, std::span<const double> scores);

/// Average precision exactly as scikit-learn's average_precision_score: scores sorted
/// descending, one operating point per distinct score, AP = Σ_k (R_k − R_{k−1}) P_k.
/// Throws InputError if there is no positive.
double average_precision(std::span<const double> labels, std::span<const double> scores);

/// Brier score, mean((p − y)^2); probabilities must lie in [0, 1].
double brier_score(std::span<const double> labels, std::span<const double> probabilities);

/// Expected calibration error with `bins` equal-width bins on [0, 1]: a probability p falls in
/// bin min(floor(p · bins), bins − 1) (so bin b = [b/bins, (b+1)/bins) and 1.0 is in the last
/// bin); ECE = Σ_b (n_b / n) · |mean(y in b) − mean(p in b)|. Probabilities must lie in [0, 1].
double expected_calibration_error(std::span<const double> labels,
                                  std::span<const double> probabilities, int bins = 10);

/// Confusion counts and derived rates at one threshold. A sample is predicted positive when
/// score >= threshold. Rates whose denominator is zero are nullopt.
struct OperatingPoint {
    double threshold = 0.0;
    std::size_t tp = 0, fp = 0, tn = 0, fn = 0;
    double sensitivity = 0.0;        ///< tp / (tp + fn)
    double specificity = 0.0;        ///< tn / (tn + fp)
    std::optional<double> ppv;       ///< tp / (tp + fp); nullopt with no predicted positive
    std::optional<double> npv;       ///< tn / (tn + fn); nullopt with no predicted negative
    double balanced_accuracy = 0.0;  ///< (sensitivity + specificity) / 2
    double f1 = 0.0;                 ///< 2 tp / (2 tp + fp + fn)
    double youden_j = 0.0;           ///< sensitivity + specificity − 1
};

/// Operating point at a fixed threshold. Both classes must be present.
OperatingPoint at_threshold(std::span<const double> labels, std::span<const double> scores,
                            double threshold);

/// The operating point with the highest sensitivity among thresholds whose specificity is at
/// least `target_specificity` (in [0, 1]). Candidate thresholds are the distinct scores and
/// +infinity (nothing predicted positive), so no interpolation between points of the ROC curve.
OperatingPoint at_specificity(std::span<const double> labels, std::span<const double> scores,
                              double target_specificity);

/// The threshold (one of the distinct scores) maximising Youden's J = sens + spec − 1; on a tie
/// the highest such threshold.
OperatingPoint youden_point(std::span<const double> labels, std::span<const double> scores);

/// Per-label and averaged metrics of a multi-label problem.
struct LabelMetrics {
    std::string name;
    std::size_t positives = 0;
    std::size_t negatives = 0;
    std::optional<double> auroc;              ///< nullopt when the label has one class only
    std::optional<double> average_precision;  ///< nullopt when the label has no positive
    std::string undefined_reason;             ///< why a metric is nullopt ("" when defined)
};
struct MultiLabelMetrics {
    std::vector<LabelMetrics> labels;
    std::optional<double> macro_auroc;  ///< mean over labels whose AUROC is defined
    std::optional<double> micro_auroc;  ///< AUROC of all (label, score) pairs pooled
    std::optional<double> macro_average_precision;
    std::optional<double> micro_average_precision;
    std::size_t labels_defined = 0;  ///< labels entering macro_auroc
};

/// `labels` and `scores` are N×L row-major with L = names.size().
MultiLabelMetrics multilabel_metrics(std::span<const double> labels, std::span<const double> scores,
                                     const std::vector<std::string>& names);

// ---------------------------------------------------------------------------------------------
// DeLong (Sun & Xu 2014, O(n log n))
// ---------------------------------------------------------------------------------------------

/// AUROC with DeLong's variance and a normal CI, as pROC's ci.auc(method = "delong"): the CI is
/// auc ± z_{(1+level)/2} · se, clipped to [0, 1]. Needs at least 2 positives and 2 negatives.
struct DelongAuc {
    double auc = 0.0;
    double variance = 0.0;
    double se = 0.0;
    double ci_lo = 0.0;
    double ci_hi = 0.0;
    std::size_t positives = 0;
    std::size_t negatives = 0;
};
DelongAuc delong_auc(std::span<const double> labels, std::span<const double> scores,
                     double level = 0.95);

/// A difference of two AUCs with its standard error, a CI and a two-sided test.
struct AucComparison {
    double auc1 = 0.0;
    double auc2 = 0.0;
    double difference = 0.0;  ///< auc1 − auc2
    double se = 0.0;
    double ci_lo = 0.0;
    double ci_hi = 0.0;
    double statistic = 0.0;  ///< z (paired, normal) or t (unpaired, Welch df)
    double df = 0.0;         ///< degrees of freedom of t; 0 for a z statistic
    double p = 1.0;          ///< two-sided p-value
};

/// Paired DeLong test of two scores on the same samples, as pROC's
/// roc.test(method = "delong", paired = TRUE): z = (auc1 − auc2) / sqrt(L S Lᵀ), p = 2Φ(−|z|),
/// CI = diff ± z_{(1+level)/2} · se (not clipped). z = 0 when both the difference and se are 0.
AucComparison delong_paired_test(std::span<const double> labels, std::span<const double> scores1,
                                 std::span<const double> scores2, double level = 0.95);

/// Unpaired comparison of the AUC in two independent groups (e.g. images with vs without a
/// chest tube), as pROC's roc.test(method = "delong", paired = FALSE): t = diff / sqrt(V1 + V2)
/// with Welch-type df = (V1+V2)² / (V1²/(N1−1) + V2²/(N2−1)), p from Student's t, and
/// CI = diff ± t_{df,(1+level)/2} · se.
AucComparison delong_unpaired_test(std::span<const double> labels1, std::span<const double> scores1,
                                   std::span<const double> labels2, std::span<const double> scores2,
                                   double level = 0.95);

// ---------------------------------------------------------------------------------------------
// Bootstrap
// ---------------------------------------------------------------------------------------------

enum class CiMethod { kPercentile, kBca };

/// Parses "percentile" | "bca"; throws UsageError otherwise.
CiMethod parse_ci_method(const std::string& text);

struct BootstrapOptions {
    std::size_t replicates = 2000;
    std::uint64_t seed = 0;
    double level = 0.95;
    CiMethod method = CiMethod::kPercentile;
    /// Worker threads (<= 0: all available). Replicate b always uses Rng::derive(seed, b), so
    /// the result is identical for any thread count.
    int threads = 0;
};

/// A bootstrap confidence interval. Quantiles are R's type 7 (linear interpolation), as
/// pROC's ci.auc(method = "bootstrap") uses. BCa follows Efron (1987): bias correction
/// z0 = Φ⁻¹(#{θ*_b < θ̂} / B) and acceleration from the leave-one-unit-out jackknife (unit =
/// cluster when clustered, else sample). If z0 is infinite (every replicate on one side of θ̂)
/// BCa is undefined and the percentile interval is returned with `bca_fell_back` set.
struct BootstrapCi {
    double estimate = 0.0;  ///< the statistic on the original sample
    double ci_lo = 0.0;
    double ci_hi = 0.0;
    double se = 0.0;             ///< standard deviation of the valid replicates
    std::size_t replicates = 0;  ///< replicates drawn
    std::size_t valid = 0;       ///< replicates on which the statistic was defined
    CiMethod method = CiMethod::kPercentile;
    double level = 0.95;
    bool bca_fell_back = false;
};

/// Dense cluster ids (0..K−1, in order of first appearance) from per-sample keys such as
/// patient ids.
std::vector<std::size_t> cluster_ids(const std::vector<std::string>& keys);

/// Bootstrap CI of the AUROC.
/// Without clusters: resampling stratified by class (positives from positives, negatives from
/// negatives; n_pos and n_neg fixed), as pROC's default. With clusters (one id per sample,
/// e.g. from cluster_ids): whole clusters are resampled with replacement (all images of a
/// patient enter together; class counts vary) and replicates with one class are discarded
/// (reported through `valid`).
BootstrapCi bootstrap_auroc(std::span<const double> labels, std::span<const double> scores,
                            const BootstrapOptions& options,
                            std::span<const std::size_t> clusters = {});

/// Paired bootstrap of auc(scores1) − auc(scores2) on the same samples (same resample for
/// both scores in each replicate); stratification and clustering as bootstrap_auroc.
BootstrapCi bootstrap_auroc_difference(std::span<const double> labels,
                                       std::span<const double> scores1,
                                       std::span<const double> scores2,
                                       const BootstrapOptions& options,
                                       std::span<const std::size_t> clusters = {});

/// Unpaired bootstrap of auc(group 1) − auc(group 2): each group resampled independently
/// (stratified by class, or by clusters when given for that group).
BootstrapCi bootstrap_auroc_unpaired_difference(std::span<const double> labels1,
                                                std::span<const double> scores1,
                                                std::span<const double> labels2,
                                                std::span<const double> scores2,
                                                const BootstrapOptions& options,
                                                std::span<const std::size_t> clusters1 = {},
                                                std::span<const std::size_t> clusters2 = {});

/// Bootstrap CI of the mean of the defined values (nullopt values are excluded from the mean
/// and from the count; a replicate with no defined value is discarded). Resamples samples, or
/// whole clusters when given.
BootstrapCi bootstrap_mean(std::span<const std::optional<double>> values,
                           const BootstrapOptions& options,
                           std::span<const std::size_t> clusters = {});

/// A statistic of a weighted resample: counts[i] = how many times sample i was drawn. Return
/// NaN when undefined on a replicate. Must be safe to call from several threads at once.
using WeightedStatistic = std::function<double(std::span<const std::uint32_t> counts)>;

/// Generic bootstrap over n samples, optionally stratified (`strata`, one id per sample) and/or
/// clustered (`clusters`, nested within strata). BCa's jackknife costs one statistic evaluation
/// per unit; use the specialised functions above for large n.
BootstrapCi bootstrap_statistic(std::size_t n, const WeightedStatistic& statistic,
                                const BootstrapOptions& options,
                                std::span<const std::size_t> strata = {},
                                std::span<const std::size_t> clusters = {});

// ---------------------------------------------------------------------------------------------
// Multiple comparisons
// ---------------------------------------------------------------------------------------------

/// Benjamini–Hochberg adjusted p-values (R's p.adjust(method = "BH")), in input order.
std::vector<double> benjamini_hochberg(std::span<const double> p_values);
/// Holm adjusted p-values (R's p.adjust(method = "holm")), in input order.
std::vector<double> holm(std::span<const double> p_values);

// ---------------------------------------------------------------------------------------------
// Distributions (exposed for tests and reports)
// ---------------------------------------------------------------------------------------------

double normal_cdf(double x);
/// Inverse of normal_cdf for p in (0, 1) (relative error < 1e-15 after refinement).
double normal_quantile(double p);
/// Student's t CDF with df > 0 degrees of freedom (df may be fractional).
double student_t_cdf(double t, double df);
double student_t_quantile(double p, double df);

// ---------------------------------------------------------------------------------------------
// Segmentation
// ---------------------------------------------------------------------------------------------

/// A binary mask, H×W row-major, nonzero = foreground.
struct Mask {
    std::size_t height = 0;
    std::size_t width = 0;
    std::vector<std::uint8_t> pixels;

    bool empty_foreground() const;
};

/// Reads a PNG (or any image OpenCV reads) as a mask: nonzero = foreground; for colour images
/// a pixel is foreground when any colour channel is nonzero (alpha ignored). Throws InputError
/// naming the file if it cannot be read.
Mask read_mask(const std::filesystem::path& path);

/// Physical size of a pixel in mm (rows = vertical spacing, columns = horizontal spacing).
struct PixelSpacing {
    double row_mm = 1.0;
    double col_mm = 1.0;
};

/// When both prediction and truth are empty (e.g. a pneumothorax-negative image):
enum class BothEmpty {
    kPerfect,  ///< Dice = IoU = precision = recall = 1, HD95 = ASSD = Hausdorff = 0
    kExclude,  ///< every metric undefined (excluded from means)
};
/// Surface distances when exactly one of the two masks is empty:
enum class OneEmpty {
    kExclude,   ///< HD95, ASSD, Hausdorff undefined
    kDiagonal,  ///< set to the image diagonal in mm (the worst possible distance)
};
BothEmpty parse_both_empty(const std::string& text);  ///< "perfect" | "exclude"
OneEmpty parse_one_empty(const std::string& text);    ///< "exclude" | "diagonal"

struct SegmentationOptions {
    PixelSpacing spacing;
    BothEmpty both_empty = BothEmpty::kPerfect;
    OneEmpty one_empty = OneEmpty::kExclude;
};

/// Per-image segmentation metrics.
///
/// Overlap: Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), precision = TP/(TP+FP),
/// recall = TP/(TP+FN); with exactly one mask empty Dice = IoU = 0, and precision (empty
/// prediction) or recall (empty truth) is undefined.
///
/// Surface distances: the surface of a mask is its foreground pixels that are not in its
/// binary erosion with the 4-connected cross (outside the image counts as background), i.e.
/// `m & ~scipy.ndimage.binary_erosion(m, generate_binary_structure(2, 1))`. For every surface
/// pixel of one mask the Euclidean distance in mm (pixel spacing applied) to the nearest surface
/// pixel of the other is taken, in both directions. HD95 = the 95th percentile (linear
/// interpolation, numpy's default) of the two directed distance sets concatenated;
/// ASSD = (mean distance pred→truth + mean distance truth→pred) / 2; Hausdorff = the maximum.
/// (These are medpy's hd95 and assd definitions.)
struct SegmentationScores {
    std::size_t tp = 0, fp = 0, fn = 0;
    bool prediction_empty = false;
    bool truth_empty = false;
    std::optional<double> dice, iou, precision, recall;
    std::optional<double> hd95, assd, hausdorff;
};

/// Throws InputError if the two masks differ in size.
SegmentationScores segmentation_scores(const Mask& prediction, const Mask& truth,
                                       const SegmentationOptions& options = {});

/// Mean and bootstrap CI of one metric over images, excluding undefined values.
struct SegmentationSummary {
    std::string metric;       ///< "dice", "iou", "precision", "recall", "hd95", "assd", "hausdorff"
    std::size_t defined = 0;  ///< images where the metric is defined
    std::optional<BootstrapCi> ci;  ///< nullopt when no image defines the metric
};

/// Summaries of every metric over images, resampling images (or patients when `clusters`
/// gives one id per image).
std::vector<SegmentationSummary> summarize_segmentation(
    const std::vector<SegmentationScores>& per_image, const BootstrapOptions& options,
    std::span<const std::size_t> clusters = {});

/// One point of an ROC curve.
struct RocPoint {
    double fpr = 0.0;
    double tpr = 0.0;
    double threshold = 0.0;  ///< score >= threshold is called positive (+inf for the origin)
};
/// The empirical ROC curve with one point per distinct score (as scikit-learn's
/// roc_curve(drop_intermediate=False)), starting at (0, 0). Labels must be 0/1 with both
/// classes present (InputError otherwise).
std::vector<RocPoint> roc_curve(std::span<const double> labels, std::span<const double> scores);

// ---------------------------------------------------------------------------------------------
// Prediction tables and mask folders (`radprobe stats roc|seg|fdr`)
// ---------------------------------------------------------------------------------------------

/// Which interval the AUROC of a table gets.
enum class AucInterval { kDelong, kBootstrap };

/// The AUROC of one or two score columns of a CSV table (one row per image).
struct RocTableOptions {
    std::filesystem::path csv;
    std::string label;                ///< column of 0/1 labels
    std::vector<std::string> scores;  ///< one score column, or two to compare them
    /// Column of patient ids: the bootstrap resamples patients (kBootstrap only; "" = none).
    std::string cluster;
    AucInterval interval = AucInterval::kDelong;
    BootstrapOptions bootstrap;  ///< replicates, seed, method and threads of kBootstrap; `level`
                                 ///< is the confidence level of every interval
};

/// The JSON document of `radprobe stats roc`, keys in the order of DESIGN.md:
/// {"n","auc","ci":[lo,hi],"se",["n_valid"],"average_precision","n_pos","n_neg","label","score",
/// "level","ci_method",...}; with a second score the same keys suffixed "2" and
/// {"delong":{"auc_diff","se","z","p","ci"}} (plus "bootstrap_diff" with kBootstrap).
/// Throws InputError naming the file, line and column for a label that is not 0/1, a score that
/// is not finite, an empty cluster id, a missing column or a label with one class.
std::string roc_table_json(const RocTableOptions& options);

/// A predicted mask and the true mask of the same file name.
struct MaskPair {
    std::string name;  ///< file name, e.g. "case12.png"
    std::filesystem::path prediction;
    std::filesystem::path truth;
};

/// The .png masks (extension in any case) of two folders paired by file name, in name order.
/// Throws InputError naming the folder or the file when a folder is missing, the truth folder
/// holds no .png, or a mask of either folder has no partner in the other.
std::vector<MaskPair> pair_mask_folders(const std::filesystem::path& predictions,
                                        const std::filesystem::path& truth);

/// Segmentation metrics of two mask folders (`radprobe stats seg`).
struct MaskFolderOptions {
    std::filesystem::path predictions;  ///< folder of predicted masks (.png, nonzero = foreground)
    std::filesystem::path truth;        ///< folder of true masks, matched by file name
    SegmentationOptions segmentation;
    /// CSV mapping mask file names (`image_column`, any folder part ignored) to patients
    /// (`patient_column`): the bootstrap resamples patients. Empty = images.
    std::filesystem::path patients;
    std::string image_column = "image";
    std::string patient_column = "patient_id";
    BootstrapOptions bootstrap;
};

struct MaskFolderStats {
    /// {"n_images","spacing_mm","both_empty","one_empty","level","n_boot","seed","ci_method",
    /// ["cluster","n_clusters"],"metrics":{name:{"n","mean","ci",["n_valid"]}}}
    std::string json;
    /// One row per mask: file, patient_id, tp, fp, fn, dice, iou, precision, recall, hd95,
    /// assd, hausdorff (empty cell = undefined).
    std::string per_image_csv;
};

/// Per-image scores of every mask pair and their means with bootstrap CIs. Throws InputError
/// naming the file for unpaired masks, masks of different sizes or an image without a patient.
MaskFolderStats mask_folder_stats(const MaskFolderOptions& options);

/// Multiple-testing adjustment of a p-value column of a CSV table (`radprobe stats fdr`).
struct FdrTableOptions {
    std::filesystem::path csv;
    std::string p_column = "p";
    bool benjamini_hochberg = true;  ///< append column p_bh
    bool holm = true;                ///< append column p_holm
};

/// The table with the adjusted p-values appended as columns (CSV text, rows in input order).
/// Throws InputError naming the file and line of a p outside [0, 1], or when the table already
/// has a column of the name to append.
std::string fdr_table_csv(const FdrTableOptions& options);

}  // namespace radprobe::eval
