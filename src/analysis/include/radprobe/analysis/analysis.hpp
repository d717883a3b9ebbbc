#pragma once
/// @file analysis.hpp
/// Where encoders fail: the perturbation panel, the box-stratified small-lesion probe and the
/// subgroup / shortcut analysis (`radprobe analyze perturb|lesions|subgroups`). No LibTorch in
/// this header.
///
/// Every analysis ends in a long-format table of AnalysisTableRow (the shape of the results
/// DB's `analysis` table: analysis, row_key, row_key2, column, value, ci_lo, ci_hi, p,
/// p_adjusted), CSV files and metrics.json in `out`, all written atomically.
///
/// Layouts: an image is rows × cols float32 display values in [0, 1] (1 = white), row-major
/// (pixels[r * cols + c]); pixel (c, r) covers [c, c+1) × [r, r+1); boxes are half-open in these
/// edge coordinates. Patch tokens of one image are G×D row-major, G = grid_h·grid_w in (y, x)
/// order; a feature matrix is N×D row-major.
///
/// Statistics shared by the three analyses:
///  - probes are the L2 logistic regression of probes::fit_binary_probe on standardised
///    features, evaluated by grouped k-fold cross-validation: fold k is the test fold, fold
///    k+1 (mod K) selects C, the rest trains; groups (patients, or the clean/perturbed pair of
///    one image) never straddle folds, so every score is out-of-fold;
///  - AUROC CIs are percentile bootstrap CIs resampling whole groups (eval::bootstrap_auroc
///    with clusters); differences (roi − cls, small − large, jittered − exact) are paired
///    bootstraps over the same resamples (eval::bootstrap_auroc_difference, same seed);
///  - p-values are Wald tests with the cluster-bootstrap standard error (AUROC vs 0.5,
///    difference vs 0), two-sided, Benjamini–Hochberg adjusted across the table's family
///    (stated per analysis).
/// Every result is a deterministic function of the inputs and the seed (any thread count).

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "radprobe/results/results.hpp"

namespace radprobe::dataset {
class Manifest;
}

namespace radprobe::analysis {

// ---------------------------------------------------------------------------------------------
// Result rows
// ---------------------------------------------------------------------------------------------

/// One cell of an analysis table: a row of the results database's `analysis` table (analysis
/// "perturb", "lesions", "subgroups" or "shortcut"; `run` stays unset until the row is recorded,
/// see docs/results_db.md) and the number of samples behind its value.
struct AnalysisTableRow : results::AnalysisRow {
    std::optional<std::int64_t> n;  ///< samples behind the value (not stored in the DB)
};

/// What every analysis returns.
struct AnalysisResult {
    std::string analysis;
    std::vector<AnalysisTableRow> rows;
    std::string metrics_json;                  ///< what the CLI writes as metrics.json
    std::vector<std::filesystem::path> files;  ///< files written to `out`
    std::uint64_t seed = 0;
    double seconds = 0.0;
};

/// The encoder side shared by the analyses that run a model.
struct EncoderSpec {
    std::filesystem::path model_dir;  ///< Hugging Face directory
    int threads = 0;                  ///< LibTorch threads (<= 0: cores available)
    int batch = 16;
    std::int64_t resize = 0;     ///< override the processor's size (0 = as configured)
    bool fold_grayscale = true;  ///< one-channel patch embedding (same tokens, cheaper)
    std::string device = "cpu";  ///< cpu | cuda | cuda:N (encoders::parse_device)
    std::string dtype;           ///< the blocks' compute dtype: fp32 | bf16 | fp16 ("" = as loaded)
};

/// The cross-validated probe shared by the analyses.
struct CvOptions {
    int folds = 5;  ///< >= 3 (one fold tests, the next selects C)
    std::vector<double> c_grid{1e-3, 1e-2, 1e-1, 1.0, 10.0};
    std::size_t n_boot = 1000;
    double level = 0.95;
};

// ---------------------------------------------------------------------------------------------
// Perturbation panel
// ---------------------------------------------------------------------------------------------

enum class PerturbKind {
    kBlob,       ///< isotropic Gaussian blob: amplitude · exp(−r²/2σ²), σ = size/4
    kStreak,     ///< directional (motion-like) streak: anisotropic Gaussian, σ_major = size/4,
                 ///< σ_minor = max(0.6, size/16) px, random orientation
    kReticular,  ///< fine reticular texture: amplitude · max(0, cos(2πu/λ) + cos(2πv/λ) − 1)
                 ///< (a mesh of thin bright lines, λ = max(3, size/4) px, random orientation)
                 ///< under a soft disc window of diameter `size`
};
/// "blob" | "streak" | "reticular"; throws UsageError listing them otherwise.
PerturbKind parse_perturb_kind(const std::string& text);
const char* perturb_kind_name(PerturbKind kind);

/// One inserted signal in original-image pixel coordinates.
struct Perturbation {
    PerturbKind kind = PerturbKind::kBlob;
    double cx = 0.0, cy = 0.0;  ///< centre (edge coordinates: pixel c's centre is c + 0.5)
    double size = 8.0;          ///< extent (diameter / length) in pixels; the ROI is size × size
    double contrast = 0.1;      ///< peak display-value change (positive = brighter)
    double angle = 0.0;         ///< orientation, radians (streak, reticular)
};

/// Adds the perturbation to a rows × cols display image in place (clamped to [0, 1]); the
/// change is confined to the window |x − cx|, |y − cy| ≤ size (zero beyond). Returns the
/// region used by `roi` pooling: the size × size square centred on (cx, cy), clipped to the
/// image, as {x0, y0, x1, y1}.
std::array<double, 4> insert_perturbation(std::vector<float>& image, int rows, int cols,
                                          const Perturbation& perturbation);

/// A size given as pixels of the original image ("12") or as patches of the model input
/// ("0.5p": half a patch side, mapped through the resize).
struct SizeSpec {
    double value = 1.0;
    bool in_patches = true;
    std::string text() const;  ///< "0.5p" or "12px"
};
/// Parses "0.5p,1p,2p" or "6,12,24"; throws UsageError naming the bad item.
std::vector<SizeSpec> parse_sizes(const std::string& text);
/// Parses a comma-separated list of finite numbers for `flag`; UsageError otherwise.
std::vector<double> parse_numbers(const std::string& text, const std::string& flag);

struct PerturbOptions {
    EncoderSpec encoder;
    std::filesystem::path manifest;  ///< base images (real or phantom); clean originals
    std::vector<PerturbKind> kinds{PerturbKind::kBlob, PerturbKind::kStreak,
                                   PerturbKind::kReticular};
    std::vector<SizeSpec> sizes{{0.5, true}, {1.0, true}, {2.0, true}};
    std::vector<double> contrasts{0.1};
    /// Where signals go: "lungs" (inside mask_lung_left ∪ mask_lung_right, else mask_lungs or
    /// mask_lung, when the manifest has them, else the central region: features::lung_region()),
    /// "center" (the central half of the image in each axis).
    std::string location = "lungs";
    std::size_t max_images = 200;  ///< base images used (a seeded sample; 0 = all)
    CvOptions cv;
    std::uint64_t seed = 0;
    std::optional<std::filesystem::path> out;  ///< perturb_cells.csv, metrics.json
    /// Also write the first perturbed image of every cell (float32 .npy) to out/examples.
    bool write_examples = false;
    bool progress = true;
};

/// One row per (cell, pooling) with the probe AUROC (column = pooling: "cls", "mean", "roi";
/// "cls" absent for models without a CLS token) and one per cell with the gain
/// (column "roi − cls", or "roi − mean" without CLS). Family for BH: all AUROC-vs-0.5 tests;
/// separately, all gain tests.
AnalysisResult run_perturb(const PerturbOptions& options);

// ---------------------------------------------------------------------------------------------
// Box-stratified small-lesion probe
// ---------------------------------------------------------------------------------------------

struct LesionOptions {
    EncoderSpec encoder;
    std::filesystem::path manifest;
    std::optional<std::filesystem::path> boxes;  ///< default: boxes.csv beside the manifest
    std::string label;                           ///< image-level label column (e.g. "nodule")
    std::string box_label;  ///< boxes used (empty = every box); default: the label
    /// Stratum thresholds on box area / image area (ascending); an image's stratum is that of
    /// its largest box. One threshold = small / large.
    std::vector<double> area_thresholds{0.002};
    std::vector<double> jitter_sigmas{5.0, 10.0, 20.0};  ///< box displacement σ, pixels
    /// Lung region for control boxes: mask_lung_left ∪ mask_lung_right, else mask_lungs or
    /// mask_lung, when present, else the central half of the image (features::lung_region()).
    std::size_t max_images = 400;  ///< seeded sample (0 = all)
    CvOptions cv;
    std::uint64_t seed = 0;
    std::optional<std::filesystem::path> out;  ///< lesions_*.csv, metrics.json
    bool progress = true;
};

/// Rows: image-level AUROC per stratum and pooling (row_key "image", row_key2 = stratum,
/// column = pooling), the small − large gap ("image gap"), the box-level patch-local AUROC
/// (row_key "box", row_key2 "σ=0px" and each jitter σ, column "patch_local") and the
/// degradation (row_key "box jitter − exact"). See docs/results_db.md.
AnalysisResult run_lesions(const LesionOptions& options);

// ---------------------------------------------------------------------------------------------
// Subgroups and the shortcut experiment
// ---------------------------------------------------------------------------------------------

/// Scored test images: one entry each.
struct ScoredImage {
    std::string image;
    std::string patient;  ///< empty = the image is its own cluster
    double label = 0.0;   ///< 0/1
    double score = 0.0;
    std::vector<std::string> attributes;  ///< aligned with SubgroupOptions::attributes
};

struct SubgroupOptions {
    std::vector<ScoredImage> images;
    std::vector<std::string> attributes;  ///< e.g. {"chest_tube"}
    std::string source;                   ///< what was scored (recorded in metrics.json)
    std::size_t n_boot = 1000;
    double level = 0.95;
    std::uint64_t seed = 0;
    std::optional<std::filesystem::path> out;  ///< subgroups.csv, metrics.json
};

/// Per attribute and level: AUROC with a patient-clustered bootstrap CI, and n / positives;
/// per attribute with two levels the gap (first level in the order "present"/"1" first, else
/// sorted) with an unpaired bootstrap CI and the unpaired DeLong p; with more levels each level
/// against the largest one. Levels "1"/"0" of a 0/1 attribute are named "present"/"absent".
/// BH across every gap of the call.
AnalysisResult run_subgroups(const SubgroupOptions& options);

/// Reads a predictions CSV (`image`, `label`, `score` columns, optional `patient_id`) and takes
/// the attributes from the CSV itself or, when absent there, from the manifest (matched by image
/// id). Rows with an empty label are skipped. Throws InputError naming the file and column.
std::vector<ScoredImage> read_scored_images(const std::filesystem::path& predictions_csv,
                                            const std::optional<std::filesystem::path>& manifest,
                                            const std::vector<std::string>& attributes,
                                            const std::string& label_column = "label",
                                            const std::string& score_column = "score");

/// The shortcut experiment on phantoms: a training set where chest tubes co-occur with
/// pneumothorax (phi = correlation) and a control training set without the coupling, a common
/// tube-balanced test set (phi = 0); linear probes on the encoder's pooled embeddings.
struct ShortcutOptions {
    EncoderSpec encoder;
    std::vector<std::string> poolings{"cls", "mean"};  ///< cls, mean
    double correlation = 0.9;  ///< phi between tube and pneumothorax in the training set
    double prevalence = 0.3;   ///< P(pneumothorax) = P(tube) in every set
    std::size_t n_train = 300;
    std::size_t n_test = 300;
    int size = 128;  ///< phantom side, pixels
    std::vector<double> c_grid{1e-3, 1e-2, 1e-1, 1.0, 10.0};
    std::size_t n_boot = 1000;
    double level = 0.95;
    std::uint64_t seed = 0;
    /// The supervised CNN baseline (adapt::run_baseline) trained on the same sets as another
    /// model family "baseline": epochs (0 = not run) and input side.
    int baseline_epochs = 0;
    int baseline_size = 128;
    std::filesystem::path work_dir;  ///< phantoms are generated here (reused when present)
    std::optional<std::filesystem::path> out;
    int threads = 0;
    bool progress = true;
};

/// Rows (analysis "shortcut"): row_key = "<model> trained φ=<R>" or "<model> trained φ=0"
/// (control; model = pooling of the linear probe, or "baseline"), row_key2 = "all", "tube-free
/// positives", "tube positives", column "auroc"; gaps row_key2 = "tube-free − tube positives"; and
/// per pooling the paired drop on tube-free positives (control − shortcut, same test images),
/// row_key2 = "drop on tube-free positives".
AnalysisResult run_shortcut(const ShortcutOptions& options);

// ---------------------------------------------------------------------------------------------
// Results database: the rows of an analysis as a run, the scored images of a run
// ---------------------------------------------------------------------------------------------

/// The rows of `result` as results-database rows of `run` (nullopt: rows of no run); a row
/// without an analysis name takes the result's.
std::vector<results::AnalysisRow> to_results_rows(const AnalysisResult& result,
                                                  std::optional<std::int64_t> run);

/// Where `radprobe analyze` records a result besides the files in `out`.
struct DbRecording {
    std::filesystem::path db;  ///< results database (created when missing); empty = not recorded
    std::string encoder;       ///< encoder name of the analysis's own run
    std::string pooling;       ///< poolings of the analysis's own run
    /// Record the rows under this existing run instead of a run of their own.
    std::optional<std::int64_t> run;
};

/// Records the rows of `result` in `where.db`: under `where.run`, or under a run of their own
/// (task "analysis:<name>", adaptation "analysis", config = metrics.json without its rows and
/// timings, config hash = features::content_hash of that config), written through
/// results::run_recorded, so that a config already completed there is not recorded again
/// (kSkipped). Returns nullopt when `where.db` is empty. Throws InputError when recording
/// fails (the run of its own is then marked failed).
std::optional<results::RecordedRun> record_result(const AnalysisResult& result,
                                                  const DbRecording& where);

/// The scored images of a run of the results database joined to the manifest (the DB-run →
/// manifest join of a subgroup analysis): one ScoredImage per prediction with a label and a
/// score (image, patient, label, score, and the `attributes` of its manifest row, in that
/// order). Throws InputError naming the database when the run has no predictions and the
/// manifest when a predicted image is not in it.
std::vector<ScoredImage> scored_images_from_run(results::ResultsDb& db, std::int64_t run,
                                                const dataset::Manifest& manifest,
                                                const std::vector<std::string>& attributes);

// ---------------------------------------------------------------------------------------------
// `radprobe analyze`: one analysis, then its rows recorded
// ---------------------------------------------------------------------------------------------

struct AnalyzeOutcome {
    AnalysisResult result;
    std::optional<results::RecordedRun> recorded;  ///< what record_result() did (nullopt: no db)
};

/// run_perturb / run_lesions / run_shortcut, then record_result(result, recording).
AnalyzeOutcome analyze(const PerturbOptions& options, const DbRecording& recording);
AnalyzeOutcome analyze(const LesionOptions& options, const DbRecording& recording);
AnalyzeOutcome analyze(const ShortcutOptions& options, const DbRecording& recording);

/// Where the scored images of a subgroup analysis come from: a predictions CSV
/// (read_scored_images) or a run of the results database (scored_images_from_run).
struct SubgroupSource {
    std::filesystem::path predictions;  ///< predictions CSV; empty = `run`
    std::string label_column = "label";
    std::string score_column = "score";
    /// Attributes (and patients) by image id: optional for a CSV, required for a run.
    std::optional<std::filesystem::path> manifest;
    /// The run of `DbRecording::db` whose predictions are split; the rows are recorded under it.
    std::optional<std::int64_t> run;
};

/// Reads the scored images of `source` into `options.images` (and `options.source`), runs
/// run_subgroups and records the rows (under `source.run` when given). Throws InputError when
/// the source is incomplete (neither or both of a CSV and a run; a run without a database or
/// a manifest).
AnalyzeOutcome analyze(SubgroupOptions options, const SubgroupSource& source,
                       const DbRecording& recording);

// ---------------------------------------------------------------------------------------------
// Building blocks (exposed for tests)
// ---------------------------------------------------------------------------------------------

/// Fold of every sample (0..folds−1): groups (e.g. patient ids; equal string = same group)
/// are shuffled with Rng(seed) and dealt round-robin, separately per stratum (`strata`, one id
/// per sample, e.g. "has a positive"; empty = one stratum), so a group never straddles folds.
std::vector<int> grouped_folds(const std::vector<std::string>& groups,
                               const std::vector<int>& strata, int folds, std::uint64_t seed);

/// Out-of-fold probe scores for N×D features `x` with 0/1 labels: for test fold k, C is chosen
/// on fold (k+1) mod K by validation AUROC and the model is fitted on the remaining folds.
/// Throws InputError when a training or validation fold lacks a class.
std::vector<double> cross_validated_scores(std::span<const float> x, std::size_t dim,
                                           std::span<const double> labels,
                                           const std::vector<int>& folds,
                                           const std::vector<double>& c_grid, int threads = 0);

/// The probe rows of one perturbation cell (what run_perturb does per cell): for every
/// (pooling name, 2N×D features) entry, out-of-fold scores (folds from `groups`, seed), the
/// AUROC row (column = pooling), then the gain row "roi − <reference>" (paired bootstrap).
/// Rows 0..N−1 are usually the clean images, N..2N−1 the perturbed ones (labels 0/1).
/// `scores_out`, when given, receives the out-of-fold scores per pooling.
std::vector<AnalysisTableRow> probe_cell(
    const std::vector<std::pair<std::string, std::vector<float>>>& features, std::size_t dim,
    std::span<const double> labels, const std::vector<std::string>& groups,
    const std::string& reference, const CvOptions& cv, std::uint64_t seed,
    const std::string& row_key, const std::string& row_key2, int threads = 0,
    std::vector<std::vector<double>>* scores_out = nullptr);

/// Benjamini–Hochberg over the rows whose `p` is set and whose index is in `family`, written
/// to p_adjusted.
void adjust_family(std::vector<AnalysisTableRow>& rows, const std::vector<std::size_t>& family);

/// Writes rows as CSV (analysis,row_key,row_key2,column,value,ci_lo,ci_hi,p,p_adjusted,n).
std::string rows_csv(const std::vector<AnalysisTableRow>& rows);

}  // namespace radprobe::analysis
