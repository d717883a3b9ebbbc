#pragma once
/// @file experiment.hpp
/// `radprobe run CONFIG.yaml`: the experiment config (YAML), its validation, the plan of a
/// benchmark grid and the runner that executes it into a results database (results.hpp); plus
/// the functions that record one adaptation's result as a run, shared with `radprobe demo`.
///
/// The config format is documented key by key in docs/config.md; examples are in configs/.
/// Every key is validated before any work starts: an unknown key, a value of the wrong type or
/// out of range, a missing required key, a label / mask / attribute that the manifest does not
/// have, or an adaptation this build does not provide is an InputError
/// "FILE:LINE:COL: KEY.PATH: reason" (the unknown-key message names the nearest valid key).
///
/// Runs and their config hash: every run (one cell of the grid: encoder × adaptation × pooling
/// × task × seed) is identified by the hash of the canonical JSON (object keys sorted, no
/// whitespace) of exactly what determines its numbers: the encoder (weights hash, config.json
/// hash, the effective preprocessor config, layers, channel folding), the data (hash of the
/// manifest file used, of boxes.csv for ROI pooling), the task, the adaptation and its options,
/// the pooling, the seed, the statistics options (CI method, bootstrap replicates, level), and
/// kRunHashVersion. The encoder's display name is included (it is what the leaderboard shows).
/// The software version is NOT included: a new build reuses results already in the database
/// (each run records the version that produced it); kRunHashVersion is bumped when a change of
/// radprobe alters the numbers of an unchanged config.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "radprobe/core/slice.hpp"
#include "radprobe/probes/probes.hpp"
#include "radprobe/results/results.hpp"
#include "radprobe/segment/segment.hpp"

namespace radprobe::experiment {

/// Part of every run's hashed config; bump when results of an unchanged config would change.
inline constexpr int kRunHashVersion = 2;  // 2: session-3 fixes (store rows, U-Net,
                                           // attention init, seg early stopping)

// ---------------------------------------------------------------------------------------------
// Recording one result as a run (shared by `radprobe run` and `radprobe demo`)
// ---------------------------------------------------------------------------------------------

/// How classification metrics are recorded.
struct StatisticsOptions {
    std::string ci = "bootstrap";     ///< CI of the recorded AUROC: "bootstrap" | "delong"
    std::int64_t n_boot = 2000;       ///< bootstrap replicates (patient-clustered)
    double level = 0.95;              ///< confidence level
    std::string fdr_family = "task";  ///< comparisons adjusted together: "task" | "all"
    std::string fdr_method = "bh";    ///< "bh" (Benjamini–Hochberg) | "holm"
    bool compare = true;  ///< paired DeLong test of every run against its task's best run
};

/// Hash of a JSON document in canonical form (parsed, keys sorted, compact): "v1-<16 hex>",
/// the 64-bit FNV-1a hash of the canonical text.
/// Throws InputError if `json_text` is not valid JSON.
std::string config_hash(const std::string& json_text);
/// The canonical form of a JSON document (keys sorted, compact).
std::string canonical_json(const std::string& json_text);

/// The metrics of a classification result: `auroc` with the CI chosen by `stats.ci`
/// (bootstrap: patient-clustered percentile; delong) and the other CI in extra_json, `ap`,
/// and `positives` (test positives).
std::vector<results::Metric> label_metrics(const probes::LabelResult& result,
                                           const StatisticsOptions& stats = {});
/// One prediction per test image (image id, patient, label, score).
std::vector<results::Prediction> label_predictions(const probes::LabelResult& result);

/// The metrics of a segmentation result (`dice`, `iou`, `hd95`: mean over test images with the
/// patient-clustered bootstrap CI; n = images where defined; the empty-mask convention in the
/// Dice metric's extra_json) and its per-image predictions (Dice, the mask path made absolute
/// against `out`, the run's output folder).
std::vector<results::Metric> segment_result_metrics(const segment::SegmentResult& result,
                                                    const StatisticsOptions& stats = {});
std::vector<results::Prediction> segment_result_predictions(const segment::SegmentResult& result,
                                                            const std::filesystem::path& out);

// The skeleton of a recorded run lives in results (results.hpp); the runner uses it unqualified.
using results::RecordedRun;
using results::run_recorded;
using results::RunOutcome;

/// Records a classification result as one completed run (metrics + predictions); returns the
/// run (kSkipped when the config hash already has a completed run).
RecordedRun record_label_run(results::ResultsDb& db, const results::RunSpec& spec,
                             const probes::LabelResult& result,
                             const StatisticsOptions& stats = {});

/// Paired DeLong comparisons of every completed classification run against the best run
/// (highest AUROC) of its task on the same test images, with FDR-adjusted p-values
/// (`stats.fdr_family`, `stats.fdr_method`); replaces the database's `comparisons` analysis.
/// Returns the number of comparisons written.
std::size_t write_comparisons(results::ResultsDb& db, const StatisticsOptions& stats = {});

/// One task's input to the shortcut alarm: a control run and a non-control run scored on the
/// same test images (`labels` 0/1, one score each per image).
struct ControlPair {
    std::string task;
    std::int64_t control_run = 0;
    std::int64_t best_run = 0;
    std::vector<double> labels;
    std::vector<double> control_scores;
    std::vector<double> best_scores;
};

/// The alarm rule. Per pair: AUROCs with DeLong CIs and the paired DeLong test of
/// control − best (`stats.level`); the p-values of all pairs adjusted together (one family:
/// the compared tasks; `stats.fdr_method`: Benjamini–Hochberg, or Holm). Alarm unless the
/// control is significantly worse: difference < 0 and adjusted p < 1 − level. A pair DeLong
/// cannot test (a class with fewer than 2 images) gives no entry. Tasks keep their order.
std::vector<results::ShortcutAlarm> decide_shortcut_alarms(const std::vector<ControlPair>& pairs,
                                                           const StatisticsOptions& stats = {});

/// Which runs are compared, per task of the database: the control's run = the best (highest
/// test AUROC, earliest on a tie) completed classification run of any encoder named in
/// `control_encoders`; the reference = the best run of every other encoder (baselines included)
/// among those scored on exactly the same test images with the same labels. Tasks without
/// both are not compared. Replaces the database's `shortcut_alarm` analysis (emptied when
/// there is no control) and returns what it wrote.
std::vector<results::ShortcutAlarm> write_shortcut_alarms(
    results::ResultsDb& db, const std::vector<std::string>& control_encoders,
    const StatisticsOptions& stats = {});

// ---------------------------------------------------------------------------------------------
// The experiment config
// ---------------------------------------------------------------------------------------------

/// data.split
struct SplitPolicy {
    bool use_manifest = true;  ///< "manifest": the manifest's split column as is
    std::uint64_t seed = 0;    ///< "patient": a patient-level split with these fractions
    double val = 0.1;
    double test = 0.2;
    std::string stratify;  ///< label column to stratify patients on ("" = none)
};

struct DataConfig {
    std::filesystem::path manifest;
    std::optional<std::filesystem::path> boxes;
    SplitPolicy split;
    std::string roi_source =
        "boxes";  ///< for the `roi` pooling: boxes | boxes:<label> | mask_<name>
    /// `data.roi` given per task ({task: source}); tasks not listed use roi_source.
    std::vector<std::pair<std::string, std::string>> roi_by_task;
    /// The `roi` pooling's region source of a classification task: its entry in roi_by_task,
    /// else roi_source, where plain `boxes` means the task's own boxes (`boxes:<task>`).
    std::string roi_source_for(const std::string& task) const {
        for (const auto& [t, source] : roi_by_task) {
            if (t == task) {
                return source;
            }
        }
        return roi_source == "boxes" ? "boxes:" + task : roi_source;
    }
    bool roi_given_for(const std::string& task) const {
        return std::any_of(roi_by_task.begin(), roi_by_task.end(),
                           [&](const auto& e) { return e.first == task; });
    }
};

/// Per-encoder preprocessing given in the config (overrides / replaces preprocessor_config.json).
struct PreprocessOverride {
    std::optional<std::int64_t> size;  ///< shortest edge, and the centre-crop side
    std::optional<bool> crop;          ///< centre crop to size × size (default true)
    std::optional<std::vector<double>> mean;
    std::optional<std::vector<double>> std;
    std::optional<std::string> resample;  ///< nearest | bilinear | bicubic | lanczos
    bool any() const { return size || crop || mean || std || resample; }
};

/// The built-in random-initialised ViT (the "random features" control), see
/// encoders::RandomVitSpec.
struct RandomVitParams {
    std::int64_t hidden_size = 192;
    std::int64_t layers = 6;
    std::int64_t heads = 3;
    std::int64_t patch_size = 16;
    std::int64_t image_size = 224;
    std::uint64_t seed = 0;
};

struct EncoderConfig {
    std::string name;            ///< unique; shown in results
    std::filesystem::path path;  ///< HF directory (empty for a random ViT)
    std::string checkpoint_key;  ///< the pickle entry holding the weights ("" = found)
    std::string dtype;           ///< the blocks' compute dtype: fp32 | bf16 | fp16 ("" = fp32)
    std::string device = "cpu";  ///< where it runs (extraction, analyses): the config's `device`
                                 ///< unless the encoder gives its own
    std::optional<RandomVitParams> random_vit;
    PreprocessOverride preprocessing;
    std::vector<int> layers;  ///< empty = last layer
    int batch = 8;
    bool fold_grayscale = true;
    /// A control encoder (random features): its runs are compared with the real encoders'
    /// by the shortcut alarm. Default: true for `random_vit`, false otherwise.
    bool control = false;
    std::size_t line = 0;  ///< where it is declared in the config (1-based)
};

/// One adaptation of the config, its options validated with defaults filled in. The options are
/// those of the option table of the component that runs the adaptation (radprobe/core/options.hpp:
/// the same names, types, ranges and defaults as the flags of its command), plus `decoders` for
/// `segment`.
struct AdaptationConfig {
    std::string kind;          ///< linear | knn | cnn_baseline | attention | mlp | finetune ...
    std::string options_json;  ///< canonical JSON of the options (defaults included)
    std::size_t line = 0;
};

/// One analysis of the config (perturb | lesions | subgroups | shortcut).
struct AnalysisConfig {
    std::string kind;
    std::string options_json;
    std::size_t line = 0;
};

struct OutputConfig {
    std::filesystem::path db;         ///< results database
    std::filesystem::path store;      ///< embedding store root (and prepared model folders)
    std::filesystem::path report;     ///< HTML report; empty = none
    std::filesystem::path report_md;  ///< Markdown report; empty = none
    std::string title = "radprobe benchmark";
    /// Images per shard of the embedding stores: what a killed extraction redoes at most, and
    /// the unit the extraction slices of a cluster study divide (another size: other stores).
    std::int64_t shard_size = 256;
};

/// A validated experiment config; relative paths are resolved against the config's folder.
struct ExperimentConfig {
    std::filesystem::path file;
    DataConfig data;
    std::vector<EncoderConfig> encoders;
    std::vector<std::string> classification;  ///< label columns
    std::vector<std::string> segmentation;    ///< mask names (mask_<name> columns)
    std::vector<AdaptationConfig> adaptations;
    std::vector<std::string> poolings{"cls"};
    std::vector<std::int64_t> seeds{0};
    std::vector<AnalysisConfig> analyses;
    StatisticsOptions statistics;
    OutputConfig output;
    /// Top-level `device` (cpu | cuda | cuda:N): the default of every encoder and of every
    /// adaptation with a device option that does not give its own. Checked for its form here;
    /// whether the device exists is checked where it is used (a plan can be made on a login node).
    std::string device = "cpu";
};

/// Adaptation kinds the config language knows, and those this build can run.
std::vector<std::string> known_adaptations();
std::vector<std::string> available_adaptations();
std::vector<std::string> known_analyses();
std::vector<std::string> available_analyses();

/// Parses and validates a config file (YAML) completely, including the manifest's columns and
/// the encoder directories, before anything is computed. Throws InputError
/// "FILE:LINE:COL: key.path: reason".
ExperimentConfig load_experiment_config(const std::filesystem::path& file);
/// The same from text (`file` names it in messages and anchors relative paths).
ExperimentConfig parse_experiment_config(const std::string& yaml_text,
                                         const std::filesystem::path& file);

/// The Levenshtein distance (exposed for tests) and the nearest candidate ("" when none).
std::size_t edit_distance(const std::string& a, const std::string& b);
std::string nearest_key(const std::string& key, const std::vector<std::string>& candidates);

// ---------------------------------------------------------------------------------------------
// Plan and runner
// ---------------------------------------------------------------------------------------------

enum class StepKind { kExtract, kRun, kComparisons, kReport };

/// One step of the plan. Runs (kRun) are cells of the grid recorded in the database; an
/// extraction step computes one encoder's embeddings (all poolings and layers at once) for
/// every probe of that encoder.
struct PlanStep {
    StepKind kind = StepKind::kRun;
    int phase = 0;  ///< 1 extraction + probes, 2 trained heads, 3 fine-tuning / segmentation /
                    ///< baselines, 4 analyses, 5 comparisons and report
    std::string encoder;     ///< encoder name ("" for baselines)
    std::string adaptation;  ///< for runs
    std::string task;
    std::string pooling;
    std::int64_t seed = 0;
    results::RunSpec spec;  ///< for runs: what begin_run() gets (config hash, config JSON ...)
    std::optional<std::size_t> depends_on;  ///< index of the extraction step it needs
    bool cached = false;                    ///< store COMPLETE / completed run in the database
    std::string cache_note;                 ///< where the cached result is
    double gflop = 0.0;                     ///< rough cost (forward passes; 0 when negligible)
    std::int64_t images = 0;
    std::string describe() const;  ///< one line, e.g. "linear  vit  cls  cardiomegaly  seed 0"
};

struct Plan {
    std::vector<PlanStep> steps;
    std::size_t runs() const;
    std::size_t cached_runs() const;
};

/// Builds the ordered plan. With `db` (may be null), runs completed there are marked cached.
/// Nothing is written (the prepared model folders of a dry run go to a temporary folder).
Plan make_plan(const ExperimentConfig& config, results::ResultsDb* db);
/// The plan as text: a header line, one line per step (cached or not, rough cost), a total.
std::string format_plan(const Plan& plan);

/// A study split over the tasks of array jobs (radprobe run --stage; --slurm writes them):
///  - kExtract: slice I/N of every extraction's shards (no database), or, for the whole slice,
///    every shard still missing and the final store files (the merge of the slices);
///  - kCells: slice I/N of the runs (a run and the analyses that read it stay together) into the
///    task's own database cells_db_path() (never two writers on one SQLite file); the stores must
///    be complete; runs completed in the study's database are copied, not recomputed;
///  - kMerge: the cells' databases copied into the study's database in plan order (the run ids
///    a single process gives), then kAll, which computes what no task completed, the
///    comparisons and the reports;
///  - kAll: everything in one process.
enum class Stage { kAll, kExtract, kCells, kMerge };
/// "all" | "extract" | "cells" | "merge"; UsageError otherwise.
Stage parse_stage(const std::string& text);

struct RunnerOptions {
    int threads = 0;       ///< LibTorch / probe threads (<= 0: cores available)
    bool progress = true;  ///< progress lines (stdout) and progress bars (on a terminal)
    bool write_report = true;
    Stage stage = Stage::kAll;
    Slice slice;  ///< kExtract, kCells: this task's slice
};

/// The database of cells slice `slice` writes: <db folder>/<db name>.cells/<I>-of-<N>.sqlite.
std::filesystem::path cells_db_path(const ExperimentConfig& config, const Slice& slice);

struct RunnerSummary {
    std::size_t completed = 0;
    std::size_t skipped = 0;
    std::size_t failed = 0;
    std::vector<std::string> failures;  ///< "step: error", one per failed run
    std::filesystem::path db;
    std::vector<std::filesystem::path> reports;  ///< written report files
    double seconds = 0.0;
};

/// Runs the grid: prepares the data split and model folders, extracts each encoder's
/// embeddings once (resumable), runs every adaptation in plan order, skipping runs completed
/// in the database, recording failures (status failed + error) and continuing; then the
/// comparisons and the reports. Throws only for problems that stop the whole grid (the
/// database cannot be opened, the split cannot be written).
///
/// Testing aid: with the environment variable RADPROBE_RUN_KILL_AT=K the process kills itself
/// (SIGKILL) right after starting its K-th run, as a crash would.
RunnerSummary run_experiment(const ExperimentConfig& config, const RunnerOptions& options = {});

// ---------------------------------------------------------------------------------------------
// The same study on a Slurm cluster (slurm.cpp)
// ---------------------------------------------------------------------------------------------

struct SlurmOptions {
    std::filesystem::path radprobe;  ///< the executable the tasks run (default: this one)
    std::string partition;           ///< --partition ("" = the cluster's default)
    int gpus_per_task = 0;           ///< --gpus-per-task (0 = none requested)
    int cpus_per_task = 0;           ///< --cpus-per-task (0 = the cluster's default)
    int max_tasks = 16;              ///< tasks per array job (the extraction and the cells)
    std::string time_limit;          ///< --time ("" = the partition's default)
    /// Measured images/s of each encoder's forward pass on the nodes (`radprobe models DIR
    /// --calibrate --device cuda` there), by encoder name; "" = every encoder.
    std::vector<std::pair<std::string, double>> images_per_second;
};

/// The array jobs of a study and what they cost.
struct SlurmPlan {
    std::filesystem::path dir;  ///< where the scripts are (<db folder>/<db name>.slurm)
    struct Job {
        std::string name;  ///< extract | extract-merge | cells | merge
        std::filesystem::path script;
        int tasks = 1;           ///< array size (1: not an array)
        std::string dependency;  ///< on the previous job: afterany | afterok ("" = first)
    };
    std::vector<Job> jobs;  ///< in submission order; stages with nothing to do are left out
    std::string text;       ///< the cost plan (forward passes, GPU-hours, wall time)
};

/// Plans the study as array jobs: the extraction slices (one task per shard at most), the
/// merge of the stores, the cells, the final merge and report; writes their sbatch scripts
/// (atomically) and prepares the model folders (so that no two tasks write them). With
/// `write` false only the plan is made (a dry run writes nothing).
SlurmPlan plan_slurm(const ExperimentConfig& config, const SlurmOptions& options, bool write);
/// Submits the jobs with sbatch (--parsable), each depending on the previous one; returns the
/// job ids. InputError when sbatch is missing or refuses (its message).
std::vector<std::string> submit_slurm(const SlurmPlan& plan);

}  // namespace radprobe::experiment
