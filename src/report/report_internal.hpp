#pragma once
// The report's three jobs, one file each:
//   report_data.cpp  reads the database into ReportData (tasks, run labels, analysis rows,
//                    significance of comparisons, ROC curves and per-image Dice);
//   charts.cpp       turns report data into Vega-Lite specifications (JSON);
//   sections.cpp     renders the HTML sections and the Markdown tables.
// report.cpp holds the public functions: the page around the sections, escaping, Vega files.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "radprobe/eval/metrics.hpp"
#include "radprobe/report/report.hpp"
#include "radprobe/results/results.hpp"

namespace radprobe::report::detail {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Report data (report_data.cpp)
// ---------------------------------------------------------------------------------------------

/// The ROC curve of one run (every point; charts thin it out).
struct RocSeries {
    std::string label;  ///< "run label (AUROC)"
    std::vector<eval::RocPoint> points;
};

/// Per-image Dice of the runs of a task, in run order then prediction order.
struct DiceValue {
    std::string label;  ///< run label
    double dice = 0.0;
};

struct TaskGroup {
    std::string task;
    std::vector<results::LeaderboardRow> rows;  ///< best first (table::group_by_task)
    std::vector<RocSeries> roc;                 ///< runs with 0/1 labels of both classes
    std::vector<DiceValue> dice;
    std::size_t dice_runs = 0;  ///< runs with at least one Dice value
};

struct ReportData {
    std::vector<TaskGroup> tasks;
    std::vector<results::RunRecord> all_runs;
    /// Run id -> label, unique within its task (analysis runs: among all analyses, and their
    /// label names the task).
    std::map<std::int64_t, std::string> labels;
    std::map<std::int64_t, std::string> task_of;
    std::vector<results::AnalysisRow> perturb;
    std::vector<results::AnalysisRow> subgroups;
    std::vector<results::AnalysisRow> lesions;   ///< analysis "lesions" (analyze lesions)
    std::vector<results::AnalysisRow> shortcut;  ///< analysis "shortcut" (subgroups --shortcut)
    /// (run, metric) -> BH-adjusted p of the comparison, and what it was compared with.
    std::map<std::pair<std::int64_t, std::string>, std::pair<double, std::string>> comparisons;
    /// The shortcut alarm's comparison of each compared task (alarm or not), by task.
    std::map<std::string, results::ShortcutAlarm> shortcut_alarms;
    /// The embedding store of each encoder with runs in the database (table `stores`).
    std::vector<results::StoreRecord> stores;
};

/// Reads everything the report shows; `with_curves` also reads every run's predictions (ROC
/// curves, per-image Dice), which only the HTML report draws.
ReportData gather(results::ResultsDb& db, bool with_curves);

/// The label of a run ("" for no run, "run N" for a run the database does not list).
std::string label_of(const ReportData& d, const std::optional<std::int64_t>& run);

/// One leaderboard of a task: a task whose runs mix classification and segmentation gets two
/// ("classification": rows without a Dice; "segmentation": rows with one), each with only its
/// own metric columns and ordered best first by its own primary metric; any other task one,
/// with an empty title.
struct LeaderboardPart {
    std::string title;
    std::vector<results::LeaderboardRow> rows;
};
std::vector<LeaderboardPart> leaderboard_parts(const TaskGroup& t);

/// Rows grouped by their run (or no run), each group in insertion order.
std::map<std::optional<std::int64_t>, std::vector<const results::AnalysisRow*>> rows_by_run(
    const std::vector<results::AnalysisRow>& rows);

/// Whether a key names a difference ("roi − cls", "box jitter − exact").
bool is_difference(const std::string& text);

/// How a segmentation task's all-images Dice treats empty masks (from the metrics' extra_json).
struct SegmentationConvention {
    std::string convention;  ///< empty: the task records none
    std::optional<std::int64_t> empty_truth;
    std::optional<std::int64_t> n_scored;
    std::optional<std::int64_t> n_positive;
};
SegmentationConvention segmentation_convention(const TaskGroup& t);

// ---------------------------------------------------------------------------------------------
// Vega-Lite specifications (charts.cpp)
// ---------------------------------------------------------------------------------------------

/// A number, or null when missing or not finite.
json opt_json(const std::optional<double>& v);

/// One row of a forest plot: {"label", "value", "ci_lo", "ci_hi"}; a missing CI bound is the
/// value itself (a point without whiskers).
json forest_point(const std::string& label, double value, const std::optional<double>& ci_lo,
                  const std::optional<double>& ci_hi);

/// Point + CI whiskers per row, rows sorted by value; `reference` draws a dashed vertical line;
/// `color_field` colours (and offsets) the rows by that field.
json forest_spec(const std::string& title, const std::string& metric, json values,
                 std::optional<double> reference, const std::string& color_field = "");

/// The forest values of one metric of a task's leaderboard ([] when no run has it).
json metric_forest_values(const ReportData& d, const TaskGroup& t, const std::string& metric);

/// ROC curves of a task (at most ~300 points per curve).
json roc_spec(const TaskGroup& t);
/// Per-image Dice of a task: ticks and a box plot per run.
json dice_spec(const TaskGroup& t);

/// The values of a heat map of analysis rows: {"row", "column", "value", "ci_lo", "ci_hi",
/// "p_adjusted"}; the row is "row_key · row_key2" (row_key alone when row_key2 is empty).
json heatmap_values(const std::vector<const results::AnalysisRow*>& rows);
/// A cell-by-column heat map with the value printed in each cell, colour clamped to [lo, hi]:
/// viridis, or a diverging scheme centred on 0 (`diverging`, for differences).
json heatmap_spec(json values, const std::string& title, double lo, double hi, bool diverging,
                  const std::string& legend);

// ---------------------------------------------------------------------------------------------
// Sections (sections.cpp)
// ---------------------------------------------------------------------------------------------

/// The body of the HTML page under construction and its figures.
class Page {
public:
    std::string body;
    json plots = json::array();

    /// A placeholder <div> for a Vega-Lite figure.
    void plot(json spec);
    /// The same for a figure whose points get "u1"/"u2" from a UMAP the page computes first
    /// (umap-js) from `umap` = {"seed", "n_neighbors", "min_dist", "input": rows}; each point's
    /// "row" indexes `input`.
    void umap_plot(json spec, json umap);
    void text(const std::string& s);  ///< escaped
    void raw(const std::string& s);
    void cell(const std::string& s);  ///< <td>escaped</td>
};

void task_section(Page& page, const ReportData& d, const TaskGroup& t, std::size_t index,
                  double alpha);
void perturb_section(Page& page, const ReportData& d, double alpha);
void lesion_section(Page& page, const ReportData& d, double alpha);
void subgroup_section(Page& page, const ReportData& d, double alpha);
void shortcut_section(Page& page, const ReportData& d, double alpha);
void metadata_section(Page& page, const ReportData& d);

// ---------------------------------------------------------------------------------------------
// Embedding maps (embedding_map.cpp)
// ---------------------------------------------------------------------------------------------

/// At most this many images of a store are mapped (a seeded sample beyond it).
inline constexpr std::size_t kMapSampleMax = 2000;

/// The first k principal components of n rows of d values (row-major).
struct Pca {
    std::size_t n = 0, d = 0;
    std::size_t k = 0;               ///< min(k asked, d, n − 1)
    std::vector<double> components;  ///< k × d, unit length; the largest |entry| is positive
    std::vector<double> scores;      ///< n × k: the centred rows projected on the components
    std::vector<double> variance;    ///< k eigenvalues of the covariance (divisor n − 1)
    std::vector<double> explained;   ///< their share of the total variance
};
/// PCA by the eigenvectors (LAPACK dsyevd) of the covariance, or of the Gram matrix when d > n.
/// Throws InputError for fewer than two rows.
Pca pca(const std::vector<float>& values, std::size_t n, std::size_t d, std::size_t k);

/// A seeded sample of at most `max` of the indices 0..n−1, in increasing order (all of them when
/// n <= max); the same on every platform (radprobe::Rng, partial Fisher-Yates).
std::vector<std::size_t> sample_rows(std::size_t n, std::size_t max, std::uint64_t seed);

/// UMAP settings of the page (umap-js): neighbours, minimum distance, PCA components in.
inline constexpr std::size_t kUmapNeighbours = 15;
inline constexpr double kUmapMinDist = 0.1;
inline constexpr std::size_t kUmapComponents = 50;

/// One encoder's map, `projection` "pca" (x pc1, y pc2) or "umap" (x u1, y u2): points
/// {"image", "row", "pc1", "pc2", "by", "value"} (one per image and colour variable), filtered
/// by a select input over `colour_options` (the "by" values).
json embedding_map_spec(const std::string& encoder, const std::string& projection, json values,
                        const json& colour_options);

/// Whether the database records an embedding store of an encoder with runs.
bool has_embedding_map(const ReportData& d);
/// Per recorded store: the PCA map of a sample (seeded by the recorded seed) of at most
/// kMapSampleMax of its mean-pooled (else cls) embeddings, and with `umap` the UMAP map of their
/// first kUmapComponents principal components, coloured by each label and attribute of the
/// recorded manifest; a store or manifest that cannot be read gets one line saying so.
void embedding_map_section(Page& page, const ReportData& d, bool umap);

/// The Markdown report below its title: leaderboards, subgroups, analysis tables, runs.
std::string markdown_sections(const ReportData& d);

}  // namespace radprobe::report::detail
