#pragma once
/// @file results.hpp
/// The results database of radprobe (SQLite), the leaderboard and the recording of runs.
///
/// One `.sqlite` file holds every run of a benchmark: its configuration, the metrics with their
/// confidence intervals, the per-image predictions and the analysis tables. Users open it with
/// `sqlite3` or pandas (`pd.read_sql("select * from metrics", sqlite3.connect(path))`), so the
/// schema below is a public contract (also in docs/results_db.md).
///
/// Schema, version 1 (`PRAGMA user_version`; plain SQLite tables):
/// @code
///   runs(id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
///        config_hash TEXT NOT NULL, created TEXT NOT NULL,  -- ISO 8601 UTC
///        finished TEXT, software_version TEXT NOT NULL,  -- "0.1.0 (git describe)"
///        encoder TEXT, weights_hash TEXT, task TEXT, adaptation TEXT, pooling TEXT,
///        layers TEXT, seed INTEGER, status TEXT NOT NULL,  -- running | completed | failed
///        config_json TEXT NOT NULL, notes TEXT)
///        -- at most one completed run per config_hash (partial unique index)
///   metrics(run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, name TEXT NOT NULL,
///           value REAL, ci_lo REAL, ci_hi REAL, ci_method TEXT, level REAL, n INTEGER,
///           subgroup TEXT NOT NULL DEFAULT '',  -- '' = whole test set
///           extra_json TEXT)
///   predictions(run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
///               image_id TEXT NOT NULL, patient_id TEXT, label REAL, score REAL,
///               mask_path TEXT, dice REAL)  -- dice: per-image Dice of a segmentation run
///   analysis(analysis TEXT NOT NULL, run INTEGER REFERENCES runs(id) ON DELETE CASCADE,
///            row_key TEXT NOT NULL, row_key2 TEXT NOT NULL DEFAULT '', column_name TEXT NOT NULL,
///            value REAL, ci_lo REAL, ci_hi REAL, p REAL, p_adjusted REAL)
/// @endcode
/// NULL stands for "not available" (no CI, no label); a metric that is undefined is NULL, never
/// 0.5 or NaN. Analysis tables used by the report:
///  - `perturb`: row_key = perturbation cell (e.g. "blob 4px"), row_key2 = contrast or level,
///    column_name = pooling (e.g. "cls", "patch_local"), value = AUROC (heat map).
///  - `subgroups`: row_key = attribute (e.g. "chest_tube"), row_key2 = subgroup level
///    ("present", "absent") or "gap", column_name = metric, value with CI, p for the gap.
///  - `comparisons`: run = the compared run, row_key = reference (e.g. best run's label),
///    column_name = metric, value = difference, p (e.g. DeLong); the report marks leaderboard
///    cells whose Benjamini–Hochberg adjusted p (p_adjusted, or computed per task and metric
///    when NULL) is below 0.05.
///  - `shortcut_alarm` (written by `radprobe run`, see ShortcutAlarm): four rows per compared
///    task, row_key = task; row_key2 = "control" (run = the control's best run, value = its
///    AUROC with DeLong CI), "best" (run = the best non-control run, its AUROC), "control − best"
///    (run = the control run, value = the paired AUROC difference with its DeLong CI, p, and
///    p_adjusted across the compared tasks) and "alarm" (value 1 = alarm, 0 = none; p_adjusted
///    repeated). Alarms: `select row_key from analysis where analysis = 'shortcut_alarm' and
///    row_key2 = 'alarm' and value = 1`.
///
/// Concurrency and crashes: the database is in WAL mode; every write is one transaction, so a
/// writer killed at any point leaves the file consistent (a run it was writing stays `running`
/// and is never shown as a result; begin_run() of the same config hash removes it). Several
/// processes may write at once (busy timeout 30 s). All SQL uses prepared statements with bound
/// parameters.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace radprobe::results {

/// Schema version this build writes (stored in `PRAGMA user_version`).
inline constexpr int kResultsSchemaVersion = 2;

/// What identifies and describes one run (one cell of a benchmark grid).
struct RunSpec {
    std::string config_hash;  ///< required; equal hashes = the same experiment
    std::string encoder;      ///< model name or HF directory
    std::string weights_hash;
    std::string task;        ///< e.g. "cardiomegaly"
    std::string adaptation;  ///< head / adaptation, e.g. "linear", "knn", "finetune"
    std::string pooling;     ///< e.g. "cls", "mean", "patch_local"
    std::string layers;      ///< e.g. "12" or "9,10,11,12"
    std::int64_t seed = 0;
    std::string config_json = "{}";  ///< the run's full configuration (must be valid JSON)
    std::string notes;
    /// Empty: this build's version and git describe.
    std::string software_version;
};

enum class RunStatus { kRunning, kCompleted, kFailed };
const char* to_string(RunStatus status);

/// A run as stored.
struct RunRecord {
    std::int64_t id = 0;
    RunSpec spec;
    std::string created;   ///< ISO 8601 UTC
    std::string finished;  ///< empty while running
    RunStatus status = RunStatus::kRunning;
};

/// The embedding store an encoder's runs read (table `stores`, one row per encoder: the latest
/// recorded). The report maps these embeddings.
struct StoreRecord {
    std::string encoder;
    std::filesystem::path store_dir;  ///< absolute
    std::filesystem::path manifest;   ///< absolute: the manifest the runs used
    std::int64_t seed = 0;            ///< the study's first seed (the map's sample)
    std::string recorded;             ///< ISO 8601 UTC
};

/// One metric of a run, optionally for a subgroup.
struct Metric {
    std::string name;  ///< e.g. "auroc", "dice", "ap"
    std::optional<double> value;
    std::optional<double> ci_lo;
    std::optional<double> ci_hi;
    std::string ci_method;  ///< e.g. "delong", "bootstrap-percentile"; empty = none
    std::optional<double> level;
    std::optional<std::int64_t> n;
    std::string subgroup;    ///< "" = whole test set, else e.g. "chest_tube=1"
    std::string extra_json;  ///< empty or a JSON document
};

/// One prediction of a run on one image.
struct Prediction {
    std::string image_id;
    std::string patient_id;
    std::optional<double> label;
    std::optional<double> score;
    std::string mask_path;
    std::optional<double> dice;
};

/// One cell of an analysis table (long format).
struct AnalysisRow {
    std::string analysis;  ///< "perturb", "subgroups", "comparisons", ...
    std::optional<std::int64_t> run;
    std::string row_key;
    std::string row_key2;
    std::string column;
    std::optional<double> value;
    std::optional<double> ci_lo;
    std::optional<double> ci_hi;
    std::optional<double> p;
    std::optional<double> p_adjusted;
};

/// Which completed runs a query returns (empty = any).
struct RunFilter {
    std::string task;
    std::string encoder;
    bool include_incomplete = false;
};

/// A run with its whole-test-set metrics (subgroup == "").
struct LeaderboardRow {
    RunRecord run;
    std::vector<Metric> metrics;
};

/// The results database. Not thread-safe: one ResultsDb per thread or process.
class ResultsDb {
public:
    /// Opens `path`, creating it (and its schema) when missing; migrates an older schema.
    /// Throws InputError naming the file when it is not a radprobe results database or was
    /// written by a newer radprobe.
    static ResultsDb open(const std::filesystem::path& path);
    /// Opens an existing database without creating or migrating it (read queries only). An
    /// older schema is read as it is: tables it lacks read as empty.
    static ResultsDb open_existing(const std::filesystem::path& path);

    ResultsDb(ResultsDb&&) noexcept;
    ResultsDb& operator=(ResultsDb&&) noexcept;
    ~ResultsDb();

    const std::filesystem::path& path() const;
    int schema_version() const;

    /// The completed run with this config hash, if any (a re-run skips it).
    std::optional<std::int64_t> find_completed_run(const std::string& config_hash);

    /// Starts a run (status `running`). Any earlier run of the same config hash that never
    /// completed (a killed writer) is deleted with its rows. Throws InputError if a completed
    /// run with this hash exists or if config_json is not valid JSON.
    std::int64_t begin_run(const RunSpec& spec);
    /// Each call is one transaction. Throws InputError for an unknown or finished run
    /// (analysis rows may name any existing run: analyses are written after the runs).
    void record_metrics(std::int64_t run, std::span<const Metric> metrics);
    void record_predictions(std::int64_t run, std::span<const Prediction> predictions);
    void record_analysis(std::span<const AnalysisRow> rows);
    /// Marks the run completed or failed (sets `finished`).
    void finish_run(std::int64_t run, RunStatus status = RunStatus::kCompleted);
    /// The same, replacing the run's notes (e.g. the error of a failed run).
    void finish_run(std::int64_t run, RunStatus status, const std::string& notes);
    /// Appends `note` to a running run's notes ("; "-separated): what a step noticed about its
    /// inputs (e.g. masks resampled to their image's resolution).
    void add_note(std::int64_t run, const std::string& note);
    /// Replaces every row of one analysis by `rows` (all named `analysis`), in one transaction
    /// (for tables recomputed over the whole database, such as `comparisons`).
    void replace_analysis(const std::string& analysis, std::span<const AnalysisRow> rows);

    /// Copies the completed runs of `config_hashes` (in this order) from the results database
    /// `source` (written by this radprobe, e.g. by one array task of a cluster study) with their
    /// metrics, predictions and analysis rows, under new run ids. A hash already completed here,
    /// or with no completed run in `source`, is skipped; an unfinished run of it here (a killed
    /// writer) is replaced. One transaction. Returns the number of runs copied.
    std::size_t import_runs(const std::filesystem::path& source,
                            const std::vector<std::string>& config_hashes);
    /// Records (replaces) the store `store.encoder`'s runs read.
    void record_store(const StoreRecord& store);

    /// Queries. Runs come ordered by task, then id.
    std::vector<RunRecord> runs(const RunFilter& filter = {});
    std::vector<Metric> metrics(std::int64_t run);
    std::vector<Prediction> predictions(std::int64_t run);
    /// Rows of one analysis (all analyses when `analysis` is empty), in insertion order.
    std::vector<AnalysisRow> analysis(const std::string& analysis = "");
    /// Completed runs matching the filter with their whole-test-set metrics (runs of analyses,
    /// adaptation "analysis:<name>", are not leaderboard rows).
    std::vector<LeaderboardRow> leaderboard(const RunFilter& filter = {});
    /// Every recorded store, by encoder name (none in a version-1 database).
    std::vector<StoreRecord> stores();

private:
    struct Impl;
    explicit ResultsDb(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Recording a run (shared by `radprobe run`, `radprobe demo` and `radprobe analyze`)
// ---------------------------------------------------------------------------------------------

/// What happened to one run.
enum class RunOutcome { kSkipped, kCompleted, kFailed };
struct RecordedRun {
    RunOutcome outcome = RunOutcome::kSkipped;
    std::int64_t run = 0;  ///< the run id (the completed one when skipped)
    std::string error;     ///< kFailed: the error message (also in runs.notes)
};

/// The skeleton of every recorded run: when `spec.config_hash` already has a completed run,
/// nothing is done (kSkipped). Otherwise begin_run(), then `body(run_id)` computes and records
/// metrics / predictions / analysis rows, then finish_run(completed). An exception from `body`
/// marks the run failed with the message in `notes` and is NOT rethrown (kFailed): a grid
/// continues.
RecordedRun run_recorded(ResultsDb& db, const RunSpec& spec,
                         const std::function<void(std::int64_t run)>& body);

// ---------------------------------------------------------------------------------------------
// Leaderboard export (`radprobe results`)
// ---------------------------------------------------------------------------------------------

enum class TableFormat { kTable, kCsv, kJson, kMarkdown };
/// Parses "table" | "csv" | "json" | "md"; throws UsageError otherwise.
TableFormat parse_table_format(const std::string& text);

/// The leaderboard as text: one row per run (task, encoder, adaptation, pooling, layers, seed,
/// then one "value [lo, hi]" column per metric name); JSON is an array of objects with the
/// metrics as {"value","ci_lo","ci_hi","ci_method","n"}. Rows ordered by task, then the task's
/// primary metric (auroc, else dice, else the first) descending.
std::string format_leaderboard(const std::vector<LeaderboardRow>& rows, TableFormat format);

// ---------------------------------------------------------------------------------------------
// Shortcut alarm (`shortcut_alarm` analysis; shown by `radprobe results` and the report)
// ---------------------------------------------------------------------------------------------

/// What the alarm says, in the leaderboard and the report.
inline constexpr const char* kShortcutAlarmText =
    "a random-feature control separates this label as well as the real encoders: suspect "
    "acquisition or site differences";

/// One task's comparison of a control encoder (random features) with the real encoders: the
/// control's best run against the best non-control run on the same test images (paired
/// DeLong, control − best), p adjusted across the compared tasks. `alarm` unless the control
/// is significantly worse (difference < 0 and p_adjusted < 1 − level).
struct ShortcutAlarm {
    std::string task;
    std::int64_t control_run = 0;
    std::int64_t best_run = 0;
    double control_auroc = 0.0, control_ci_lo = 0.0, control_ci_hi = 0.0;  ///< DeLong CI
    double best_auroc = 0.0, best_ci_lo = 0.0, best_ci_hi = 0.0;
    double difference = 0.0, ci_lo = 0.0, ci_hi = 0.0;  ///< control − best, paired DeLong CI
    double p = 1.0;
    double p_adjusted = 1.0;
    bool alarm = false;
    std::string control_label;  ///< "encoder · adaptation · pooling (run N)", filled on reading
    std::string best_label;
};

/// The analysis rows that store `alarms` (the layout in the file comment).
std::vector<AnalysisRow> shortcut_alarm_rows(const std::vector<ShortcutAlarm>& alarms);
/// The alarms stored in a database (every compared task, alarm or not), tasks in name order,
/// with the run labels filled in; rows of an incomplete task are skipped.
std::vector<ShortcutAlarm> read_shortcut_alarms(ResultsDb& db);
/// The numbers of one comparison in one line: "control R (run 3) AUROC 0.81 [0.7, 0.9] vs best
/// B (run 5) 0.73 [...]: difference +0.08 [-0.02, 0.18], p = 0.12, adjusted p = 0.12".
std::string shortcut_alarm_numbers(const ShortcutAlarm& alarm);
/// Warning lines for the alarms that are raised ("" when none): "WARNING shortcut alarm on
/// TASK: <kShortcutAlarmText> (<numbers>)", one per line; a Markdown list item each for kMarkdown.
std::string format_shortcut_alarms(const std::vector<ShortcutAlarm>& alarms, TableFormat format);

// ---------------------------------------------------------------------------------------------
// Table cells, shared by the leaderboard and the report
// ---------------------------------------------------------------------------------------------

namespace table {
/// "0.873" (3 decimals), "" for nullopt.
std::string format_number(const std::optional<double>& value, int decimals = 3);
/// "0.873 [0.851, 0.894]" or "0.873" without a CI, "—" when undefined.
std::string metric_cell(const Metric& metric);
/// Metric names in order of first appearance, the primary metric first.
std::vector<std::string> metric_columns(const std::vector<LeaderboardRow>& rows);
/// auroc, else dice, else the first metric name; "" without metrics.
std::string primary_metric(const std::vector<LeaderboardRow>& rows);
const Metric* find_metric(const LeaderboardRow& row, const std::string& name);
/// Rows grouped by task (tasks in name order), each group sorted by its primary metric,
/// descending (undefined last), then run id.
std::vector<std::vector<LeaderboardRow>> group_by_task(std::vector<LeaderboardRow> rows);
/// "encoder · adaptation · pooling" (fields that are empty left out).
std::string run_label(const RunRecord& run);

}  // namespace table

}  // namespace radprobe::results
