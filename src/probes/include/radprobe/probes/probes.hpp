#pragma once
/// @file probes.hpp
/// Probes on cached embeddings (linear = L2-regularised logistic regression trained with our own
/// float64 L-BFGS; kNN = cosine similarity with temperature-weighted votes as in DINO's kNN
/// evaluation), the `radprobe probe` pipeline (store + manifest → predictions and metrics with
/// CIs), and the result of one binary label (test metrics with CIs, predictions CSV, metrics
/// JSON) that every classification adaptation (probes, trained heads, fine-tuning, the CNN
/// baseline) reports. No LibTorch in this component.
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

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>


#include "radprobe/core/options.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::probes {

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

/// The options of the linear probe (c_grid, class_weight, max_iter, tol) and of the kNN probe
/// (k, temperature): the one declaration from which `radprobe probe` registers its flags and
/// the experiment config validates the keys of its `linear` / `knn` adaptations.
options::Table<ProbeOptions> linear_probe_options();
options::Table<ProbeOptions> knn_probe_options();

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
/// Reads the store's rows for `pool` ("cls+mean" falls back to concatenating cls.npy and
/// mean.npy when the store has no cls+mean.npy), matches them to manifest records by image id,
/// splits by the manifest's `split` column, and runs the probe per label (rows with an unknown
/// label are left out of that label's problem; roi rows without a region are left out).
/// Writes outputs atomically when options.out is set. Throws InputError naming the file /
/// column when a split is empty or lacks a class, or a label is not in the manifest.
ProbeRunResult run_probe(const ProbeRunOptions& options);


// ---------------------------------------------------------------------------------------------
// The result of one binary label, shared by every classification adaptation
// ---------------------------------------------------------------------------------------------

/// AUROC with DeLong and patient-clustered bootstrap CIs, and AUPRC, of test scores.
LabelResult evaluate_scores(const std::string& label, std::vector<std::string> images,
                            std::vector<std::string> patients, std::vector<double> labels,
                            std::vector<double> scores, std::uint64_t seed, std::size_t n_boot,
                            double level);
/// image,patient_id,label,score (label = the 0/1 truth), scores with 17 significant digits.
std::string predictions_csv(const LabelResult& r);
/// A pooled table of a store ("cls+mean" concatenates cls.npy and mean.npy when needed);
/// InputError naming the store when the pool is absent.
features::EmbeddingTable read_pool(const std::filesystem::path& dir, const std::string& pool);
/// The store rows of one binary label, by the manifest's split: rows whose image has a known
/// label (and, for the `roi` pool, a region), with the 0/1 label and the manifest record.
struct LabelSplit {
    std::vector<std::int64_t> rows;
    std::vector<double> y;
    std::vector<std::size_t> record;
};
struct LabelSplits {
    LabelSplit train, val, test;
};
/// InputError when a store image is not in the manifest or a split ends up empty.
LabelSplits split_label_rows(const features::EmbeddingTable& table, const std::string& pool,
                             const std::filesystem::path& store_dir,
                             const dataset::Manifest& manifest,
                             const std::filesystem::path& manifest_path, const std::string& label);
nlohmann::ordered_json label_json(const LabelResult& r, const char* param_name, std::size_t n_boot,
                                  double level);

}  // namespace radprobe::probes
