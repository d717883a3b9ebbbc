#pragma once
// Shared internals of the analysis component: statistics rows, image selection, the lung
// region, and the model runner (the only LibTorch user, behind a pimpl).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "radprobe/analysis/analysis.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::analysis::detail {

/// A row with its keys set and every value empty.
AnalysisTableRow make_row(const std::string& analysis, const std::string& row_key,
                          const std::string& row_key2, const std::string& column);

/// The AUROC of a cluster-bootstrap resample (counts per sample; every sample of a cluster has
/// its cluster's count) over the comparisons between DISTINCT draws: a cluster holding both
/// classes, drawn c times, contributes its within-cluster comparisons c times, not c² (see
/// common.cpp). Equal to the plain AUROC when every count is 1.
double distinct_draw_auroc_of(std::span<const double> labels, std::span<const double> scores,
                              std::span<const std::size_t> clusters,
                              std::span<const std::uint32_t> counts);

/// A row holding an AUROC with its cluster-bootstrap CI and the Wald p against 0.5; with
/// clusters holding both classes, the replicates use distinct_draw_auroc_of.
AnalysisTableRow auroc_row(const std::string& analysis, const std::string& row_key,
                           const std::string& row_key2, const std::string& column,
                           std::span<const double> labels, std::span<const double> scores,
                           std::span<const std::size_t> clusters, std::size_t n_boot, double level,
                           std::uint64_t seed);

/// A row holding auc(scores1) − auc(scores2) on the same samples (paired cluster bootstrap,
/// Wald p against 0).
AnalysisTableRow auroc_difference_row(const std::string& analysis, const std::string& row_key,
                                      const std::string& row_key2, const std::string& column,
                                      std::span<const double> labels,
                                      std::span<const double> scores1,
                                      std::span<const double> scores2,
                                      std::span<const std::size_t> clusters, std::size_t n_boot,
                                      double level, std::uint64_t seed);

/// Mann–Whitney AUROC of the samples with counts[i] > 0 and in_subset[i], each weighted by its
/// count (a bootstrap resample); NaN when a class is absent.
double weighted_auroc(std::span<const double> labels, std::span<const double> scores,
                      std::span<const std::uint32_t> counts,
                      std::span<const std::uint8_t> in_subset);

/// Two-sided Wald p of estimate − null with standard error se; when se is 0 (every replicate
/// agrees) the p is floored at 1 / (valid + 1) if the estimate differs from the null, else 1.
double wald_p(double estimate, double null_value, double se, std::size_t valid);

/// The bootstrap of every analysis CI: `n_boot` replicates, percentile interval at `level`.
eval::BootstrapOptions bootstrap_options(std::size_t n_boot, double level, std::uint64_t seed);

/// A row's value from a bootstrap: the estimate, the CI when more than one replicate was valid,
/// and the Wald p against `null_value`.
void set_from_bootstrap(AnalysisTableRow& row, const eval::BootstrapCi& ci, double null_value);

/// The JSON of a list of rows (for metrics.json).
std::string rows_json(const std::vector<AnalysisTableRow>& rows);

/// Writes an analysis's files to `out` (nothing without `out`): the table as `table_csv`
/// (rows_csv), each (name, text) of `extra`, then metrics.json; appends their paths to
/// result.files in that order.
void write_result_files(AnalysisResult& result, const std::optional<std::filesystem::path>& out,
                        const std::string& table_csv,
                        const std::vector<std::pair<std::string, std::string>>& extra = {});

/// A seeded sample of `max` indices of [0, n) in increasing order (all when max == 0 or >= n).
std::vector<std::size_t> sample_indices(std::size_t n, std::size_t max, std::uint64_t seed);

/// Group key of a record: its patient id, or its image id when empty.
std::string group_of(const dataset::Record& record);

/// Loads a manifest and refuses problems that matter for reading images and masks, and, when
/// the analysis `uses_boxes`, problems of the boxes file.
dataset::Manifest load_manifest(const std::filesystem::path& path,
                                const std::optional<std::filesystem::path>& boxes, bool uses_boxes);

/// The lung region of an image (rows × cols, 1 = inside): features::lung_region() (the lung
/// masks when the manifest has them, else the central half of the image in each axis; "center"
/// forces the latter).
std::vector<std::uint8_t> lung_region(const dataset::Manifest& manifest, std::size_t index,
                                      int rows, int cols, bool force_center, bool* from_masks);

/// What one forward pass gives for one image.
struct ImageTokens {
    std::vector<float> cls;      ///< D (empty when the model has no CLS token)
    std::vector<float> patches;  ///< G×D
};

/// An encoder with its preprocessing: display images in, tokens out.
class ModelRunner {
public:
    explicit ModelRunner(const EncoderSpec& spec);
    ~ModelRunner();
    ModelRunner(const ModelRunner&) = delete;
    ModelRunner& operator=(const ModelRunner&) = delete;

    std::string name() const;
    std::int64_t dim() const;
    bool has_cls() const;
    /// Token grid and model input size for an original image of rows × cols.
    features::InputGeometry geometry(int rows, int cols) const;
    /// Encodes display images (pointers to rows × cols float32 each; all the same size within
    /// one call), in batches of spec.batch.
    std::vector<ImageTokens> encode(const std::vector<const float*>& images, int rows, int cols);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Mean of the patch tokens weighted by `weights` (G) → D.
std::vector<float> weighted_mean(const std::vector<float>& patches, std::int64_t dim,
                                 const std::vector<float>& weights);
/// Mean of all patch tokens → D.
std::vector<float> token_mean(const std::vector<float>& patches, std::int64_t dim);

}  // namespace radprobe::analysis::detail
