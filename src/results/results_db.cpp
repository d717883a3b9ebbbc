// The SQLite results database: schema creation and migrations, writes in transactions, queries.

#include <nlohmann/json.hpp>

#include <map>
#include <memory>

#include <cstdlib>
#include "radprobe/core/error.hpp"
#include "radprobe/core/version.hpp"

#include "radprobe/core/files.hpp"
#include "radprobe/results/results.hpp"
#include "sqlite.hpp"

namespace radprobe::results {

namespace {

namespace fs = std::filesystem;

// Schema version 1 (version 2 adds `stores`, below). Documented in results.hpp and
// docs/results_db.md: change all three together and add a migration below.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a killed run is removed
    config_hash TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    software_version TEXT NOT NULL,
    encoder TEXT,
    weights_hash TEXT,
    task TEXT,
    adaptation TEXT,
    pooling TEXT,
    layers TEXT,
    seed INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    config_json TEXT NOT NULL,
    notes TEXT
);
CREATE UNIQUE INDEX runs_completed_config ON runs(config_hash) WHERE status = 'completed';
CREATE INDEX runs_config ON runs(config_hash);
CREATE INDEX runs_task ON runs(task, encoder);
CREATE TABLE metrics (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL,
    ci_lo REAL,
    ci_hi REAL,
    ci_method TEXT,
    level REAL,
    n INTEGER,
    subgroup TEXT NOT NULL DEFAULT '',
    extra_json TEXT
);
CREATE INDEX metrics_run ON metrics(run, name);
CREATE TABLE predictions (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    image_id TEXT NOT NULL,
    patient_id TEXT,
    label REAL,
    score REAL,
    mask_path TEXT,
    dice REAL
);
CREATE INDEX predictions_run ON predictions(run);
CREATE TABLE analysis (
    analysis TEXT NOT NULL,
    run INTEGER REFERENCES runs(id) ON DELETE CASCADE,
    row_key TEXT NOT NULL,
    row_key2 TEXT NOT NULL DEFAULT '',
    column_name TEXT NOT NULL,
    value REAL,
    ci_lo REAL,
    ci_hi REAL,
    p REAL,
    p_adjusted REAL
);
CREATE INDEX analysis_name ON analysis(analysis, run);
)sql";

// Version 2: the embedding store each encoder's runs used (the report's embedding maps).
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE stores (
    encoder TEXT PRIMARY KEY,
    store_dir TEXT NOT NULL,
    manifest TEXT NOT NULL,
    seed INTEGER NOT NULL,
    recorded TEXT NOT NULL
);
)sql";

// migrations[v] upgrades a database at version v to v + 1 (v = 0: empty file).
const std::vector<const char*> kMigrations = {kSchemaV1, kSchemaV2};
static_assert(kResultsSchemaVersion == 2, "add a migration for the new schema version");

RunStatus parse_status(const std::string& text) {
    if (text == "completed") {
        return RunStatus::kCompleted;
    }
    if (text == "failed") {
        return RunStatus::kFailed;
    }
    return RunStatus::kRunning;
}

void check_json(const std::string& text, const char* what) {
    RADPROBE_CHECK(nlohmann::json::accept(text), what, " is not valid JSON: ", text.substr(0, 80));
}

Metric read_metric(const sql::Statement& s) {
    Metric m;
    m.name = s.text(0);
    m.value = s.real_or_null(1);
    m.ci_lo = s.real_or_null(2);
    m.ci_hi = s.real_or_null(3);
    m.ci_method = s.text(4);
    m.level = s.real_or_null(5);
    m.n = s.int_or_null(6);
    m.subgroup = s.text(7);
    m.extra_json = s.text(8);
    return m;
}

Prediction read_prediction(const sql::Statement& s) {
    Prediction p;
    p.image_id = s.text(0);
    p.patient_id = s.text(1);
    p.label = s.real_or_null(2);
    p.score = s.real_or_null(3);
    p.mask_path = s.text(4);
    p.dice = s.real_or_null(5);
    return p;
}

AnalysisRow read_analysis_row(const sql::Statement& s) {
    AnalysisRow r;
    r.analysis = s.text(0);
    r.run = s.int_or_null(1);
    r.row_key = s.text(2);
    r.row_key2 = s.text(3);
    r.column = s.text(4);
    r.value = s.real_or_null(5);
    r.ci_lo = s.real_or_null(6);
    r.ci_hi = s.real_or_null(7);
    r.p = s.real_or_null(8);
    r.p_adjusted = s.real_or_null(9);
    return r;
}

}  // namespace

const char* to_string(RunStatus status) {
    switch (status) {
        case RunStatus::kRunning:
            return "running";
        case RunStatus::kCompleted:
            return "completed";
        case RunStatus::kFailed:
            return "failed";
    }
    return "running";
}

struct ResultsDb::Impl {
    fs::path path;
    sql::Connection db;
    int version = 0;
    std::map<std::string, std::unique_ptr<sql::Statement>> statements;

    Impl(const fs::path& p, bool create) : path(p), db(p, create) {}

    // Prepared once per connection, reused.
    sql::Statement& stmt(const char* text) {
        auto& slot = statements[text];
        if (!slot) {
            slot = std::make_unique<sql::Statement>(db, text);
        }
        slot->reset();
        return *slot;
    }

    int user_version() {
        auto& s = stmt("PRAGMA user_version");
        RADPROBE_ASSERT(s.step());
        const int v = static_cast<int>(s.int64(0));
        s.reset();
        return v;
    }

    std::int64_t table_count() {
        auto& s = stmt("SELECT count(*) FROM sqlite_master");
        RADPROBE_ASSERT(s.step());
        const std::int64_t n = s.int64(0);
        s.reset();
        return n;
    }

    void check_run_writable(std::int64_t run) {
        auto& s = stmt("SELECT status FROM runs WHERE id = ?1");
        s.bind(1, run);
        RADPROBE_CHECK(s.step(), "results database ", path.string(), ": no run with id ", run);
        const std::string status = s.text(0);
        s.reset();
        RADPROBE_CHECK(status == "running", "results database ", path.string(), ": run ", run,
                       " is ", status, ", not running: its rows can no longer change");
    }

    // Every row of a query, read by `read` (the statement is reset afterwards for reuse).
    template <typename Read>
    auto collect(sql::Statement& s, Read read) {
        std::vector<decltype(read(s))> out;
        while (s.step()) {
            out.push_back(read(s));
        }
        s.reset();
        return out;
    }

    // One row of the analysis table (callers hold the transaction and check the row).
    void insert_analysis_row(const AnalysisRow& r) {
        auto& s = stmt(
            "INSERT INTO analysis (analysis, run, row_key, row_key2, column_name, value, ci_lo, "
            "ci_hi, p, p_adjusted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
        s.bind(1, r.analysis);
        s.bind(2, r.run);
        s.bind(3, r.row_key);
        s.bind(4, r.row_key2);
        s.bind(5, r.column);
        s.bind(6, r.value);
        s.bind(7, r.ci_lo);
        s.bind(8, r.ci_hi);
        s.bind(9, r.p);
        s.bind(10, r.p_adjusted);
        s.run();
    }

    // Marks a running run completed or failed; `notes` replaces its notes when given.
    void finish(std::int64_t run, RunStatus status, const std::optional<std::string>& notes) {
        RADPROBE_CHECK(status != RunStatus::kRunning, "results database ", path.string(),
                       ": finish_run needs completed or failed");
        sql::Transaction tx(db);
        check_run_writable(run);
        auto& s = notes ? stmt(
                              "UPDATE runs SET status = ?2, finished = "
                              "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), notes = ?3 WHERE id = ?1")
                        : stmt(
                              "UPDATE runs SET status = ?2, finished = "
                              "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1");
        s.bind(1, run);
        s.bind(2, std::string(to_string(status)));
        if (notes) {
            s.bind(3, *notes);
        }
        s.run();
        tx.commit();
    }

    void add_note(std::int64_t run, const std::string& note) {
        sql::Transaction tx(db);
        check_run_writable(run);
        auto& s = stmt(
            "UPDATE runs SET notes = CASE WHEN notes IS NULL OR notes = '' THEN ?2 "
            "ELSE notes || '; ' || ?2 END WHERE id = ?1");
        s.bind(1, run);
        s.bind(2, note);
        s.run();
        tx.commit();
    }

    RunRecord read_run(const sql::Statement& s) const {
        RunRecord r;
        r.id = s.int64(0);
        r.spec.config_hash = s.text(1);
        r.created = s.text(2);
        r.finished = s.text(3);
        r.spec.software_version = s.text(4);
        r.spec.encoder = s.text(5);
        r.spec.weights_hash = s.text(6);
        r.spec.task = s.text(7);
        r.spec.adaptation = s.text(8);
        r.spec.pooling = s.text(9);
        r.spec.layers = s.text(10);
        r.spec.seed = s.int64(11);
        r.status = parse_status(s.text(12));
        r.spec.config_json = s.text(13);
        r.spec.notes = s.text(14);
        return r;
    }
};

ResultsDb::ResultsDb(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ResultsDb::ResultsDb(ResultsDb&&) noexcept = default;
ResultsDb& ResultsDb::operator=(ResultsDb&&) noexcept = default;
ResultsDb::~ResultsDb() = default;

ResultsDb ResultsDb::open(const fs::path& path) {
    RADPROBE_CHECK(!fs::is_directory(path), "results database ", path.string(), ": is a directory");
    if (path.has_parent_path()) {
        std::error_code ec;
        fs::create_directories(path.parent_path(), ec);
    }
    auto impl = std::make_unique<Impl>(path, true);
    impl->db.exec("PRAGMA foreign_keys = ON");
    // WAL: readers never block the writer, and a killed writer leaves a consistent file.
    impl->db.exec("PRAGMA journal_mode = WAL");
    impl->db.exec("PRAGMA synchronous = NORMAL");

    sql::Transaction tx(impl->db);
    int version = impl->user_version();
    RADPROBE_CHECK(version != 0 || impl->table_count() == 0, "results database ", path.string(),
                   ": a SQLite database that is not a radprobe results database");
    RADPROBE_CHECK(version <= kResultsSchemaVersion, "results database ", path.string(),
                   ": schema version ", version, " was written by a newer radprobe (this one ",
                   "reads up to ", kResultsSchemaVersion, ")");
    while (version < kResultsSchemaVersion) {
        impl->db.exec(kMigrations.at(static_cast<std::size_t>(version)));
        ++version;
    }
    // PRAGMA takes no bound parameters; the value is a compile-time integer.
    impl->db.exec(("PRAGMA user_version = " + std::to_string(version)).c_str());
    tx.commit();
    impl->version = version;
    return ResultsDb(std::move(impl));
}

ResultsDb ResultsDb::open_existing(const fs::path& path) {
    RADPROBE_CHECK(fs::is_regular_file(path), "results database ", path.string(), ": no such file");
    auto impl = std::make_unique<Impl>(path, false);
    impl->db.exec("PRAGMA foreign_keys = ON");
    const int version = impl->user_version();
    RADPROBE_CHECK(version != 0, "results database ", path.string(),
                   ": not a radprobe results database (no schema version)");
    RADPROBE_CHECK(version <= kResultsSchemaVersion, "results database ", path.string(),
                   ": schema version ", version, " was written by a newer radprobe (this one ",
                   "reads up to ", kResultsSchemaVersion, ")");
    impl->version = version;
    return ResultsDb(std::move(impl));
}

const fs::path& ResultsDb::path() const {
    return impl_->path;
}

int ResultsDb::schema_version() const {
    return impl_->version;
}

std::optional<std::int64_t> ResultsDb::find_completed_run(const std::string& config_hash) {
    auto& s = impl_->stmt("SELECT id FROM runs WHERE config_hash = ?1 AND status = 'completed'");
    s.bind(1, config_hash);
    std::optional<std::int64_t> id;
    if (s.step()) {
        id = s.int64(0);
    }
    s.reset();
    return id;
}

std::int64_t ResultsDb::begin_run(const RunSpec& spec) {
    RADPROBE_CHECK(!spec.config_hash.empty(), "results database ", impl_->path.string(),
                   ": a run needs a config hash");
    check_json(spec.config_json, "run config_json");
    sql::Transaction tx(impl_->db);
    RADPROBE_CHECK(!find_completed_run(spec.config_hash), "results database ", impl_->path.string(),
                   ": config hash ", spec.config_hash, " already has a completed run");
    // A run of this config that never completed belongs to a killed writer: start afresh.
    auto& del = impl_->stmt("DELETE FROM runs WHERE config_hash = ?1 AND status <> 'completed'");
    del.bind(1, spec.config_hash);
    del.run();

    auto& s = impl_->stmt(
        "INSERT INTO runs (config_hash, created, software_version, encoder, weights_hash, task, "
        "adaptation, pooling, layers, seed, status, config_json, notes) VALUES (?1, "
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'running', ?10, "
        "?11)");
    s.bind(1, spec.config_hash);
    s.bind(2, spec.software_version.empty()
                  ? std::string(radprobe::version()) + " (" + radprobe::git_describe() + ")"
                  : spec.software_version);
    s.bind(3, spec.encoder);
    s.bind(4, spec.weights_hash);
    s.bind(5, spec.task);
    s.bind(6, spec.adaptation);
    s.bind(7, spec.pooling);
    s.bind(8, spec.layers);
    s.bind(9, spec.seed);
    s.bind(10, spec.config_json);
    s.bind(11, spec.notes);
    s.run();
    const std::int64_t id = sqlite3_last_insert_rowid(impl_->db.get());
    tx.commit();
    return id;
}

void ResultsDb::record_metrics(std::int64_t run, std::span<const Metric> metrics) {
    for (const auto& m : metrics) {
        RADPROBE_CHECK(!m.name.empty(), "results database ", impl_->path.string(),
                       ": a metric of run ", run, " has no name");
        if (!m.extra_json.empty()) {
            check_json(m.extra_json, "metric extra_json");
        }
    }
    sql::Transaction tx(impl_->db);
    impl_->check_run_writable(run);
    auto& s = impl_->stmt(
        "INSERT INTO metrics (run, name, value, ci_lo, ci_hi, ci_method, level, n, subgroup, "
        "extra_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    for (const auto& m : metrics) {
        s.bind(1, run);
        s.bind(2, m.name);
        s.bind(3, m.value);
        s.bind(4, m.ci_lo);
        s.bind(5, m.ci_hi);
        s.bind_text_or_null(6, m.ci_method);
        s.bind(7, m.level);
        s.bind(8, m.n);
        s.bind(9, m.subgroup);
        s.bind_text_or_null(10, m.extra_json);
        s.run();
    }
    tx.commit();
}

namespace {

// Testing aid: with RADPROBE_TEST_RESULTS_KILL_AT_ROW=N the process kills itself (SIGKILL) after
// inserting its N-th prediction row, inside the open transaction: a crash mid-write, always.
void kill_at_prediction_row() {
    static const bool armed = std::getenv("RADPROBE_TEST_RESULTS_KILL_AT_ROW") != nullptr;
    static std::size_t rows = 0;
    if (armed) {
        kill_point("RADPROBE_TEST_RESULTS_KILL_AT_ROW", ++rows);
    }
}

}  // namespace

void ResultsDb::record_predictions(std::int64_t run, std::span<const Prediction> predictions) {
    sql::Transaction tx(impl_->db);
    impl_->check_run_writable(run);
    auto& s = impl_->stmt(
        "INSERT INTO predictions (run, image_id, patient_id, label, score, mask_path, dice) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    for (const auto& p : predictions) {
        RADPROBE_CHECK(!p.image_id.empty(), "results database ", impl_->path.string(),
                       ": a prediction of run ", run, " has no image id");
        s.bind(1, run);
        s.bind(2, p.image_id);
        s.bind_text_or_null(3, p.patient_id);
        s.bind(4, p.label);
        s.bind(5, p.score);
        s.bind_text_or_null(6, p.mask_path);
        s.bind(7, p.dice);
        s.run();
        kill_at_prediction_row();
    }
    tx.commit();
}

void ResultsDb::record_analysis(std::span<const AnalysisRow> rows) {
    sql::Transaction tx(impl_->db);
    for (const auto& r : rows) {
        RADPROBE_CHECK(!r.analysis.empty() && !r.column.empty(), "results database ",
                       impl_->path.string(), ": an analysis row needs an analysis name and a ",
                       "column (row '", r.row_key, "')");
        if (r.run) {
            // Analyses span runs and are written after them: the run must exist, not be running.
            auto& exists = impl_->stmt("SELECT 1 FROM runs WHERE id = ?1");
            exists.bind(1, *r.run);
            RADPROBE_CHECK(exists.step(), "results database ", impl_->path.string(), ": analysis '",
                           r.analysis, "' names run ", *r.run, ", which does not exist");
            exists.reset();
        }
        impl_->insert_analysis_row(r);
    }
    tx.commit();
}

void ResultsDb::add_note(std::int64_t run, const std::string& note) {
    impl_->add_note(run, note);
}

namespace {

// The rows of run `from` in the attached database `src`, copied under run `to`.
void copy_run_rows(sql::Connection& db, std::int64_t from, std::int64_t to) {
    for (const char* text :
         {"INSERT INTO metrics (run, name, value, ci_lo, ci_hi, ci_method, level, n, subgroup, "
          "extra_json) SELECT ?2, name, value, ci_lo, ci_hi, ci_method, level, n, subgroup, "
          "extra_json FROM src.metrics WHERE run = ?1 ORDER BY rowid",
          "INSERT INTO predictions (run, image_id, patient_id, label, score, mask_path, dice) "
          "SELECT ?2, image_id, patient_id, label, score, mask_path, dice FROM src.predictions "
          "WHERE run = ?1 ORDER BY rowid",
          "INSERT INTO analysis (analysis, run, row_key, row_key2, column_name, value, ci_lo, "
          "ci_hi, p, p_adjusted) SELECT analysis, ?2, row_key, row_key2, column_name, value, "
          "ci_lo, ci_hi, p, p_adjusted FROM src.analysis WHERE run = ?1 ORDER BY rowid"}) {
        sql::Statement s(db, text);
        s.bind(1, from);
        s.bind(2, to);
        s.run();
    }
}

}  // namespace

std::size_t ResultsDb::import_runs(const fs::path& source,
                                   const std::vector<std::string>& config_hashes) {
    RADPROBE_CHECK(ResultsDb::open_existing(source).schema_version() == kResultsSchemaVersion,
                   "results database ", source.string(), ": schema version differs from ",
                   kResultsSchemaVersion, " (written by another radprobe)");
    {
        sql::Statement attach(impl_->db, "ATTACH DATABASE ?1 AS src");
        attach.bind(1, source.string());
        attach.run();
    }
    std::size_t copied = 0;
    try {
        sql::Transaction tx(impl_->db);
        for (const auto& hash : config_hashes) {
            sql::Statement find(impl_->db,
                                "SELECT id FROM src.runs WHERE config_hash = ?1 AND "
                                "status = 'completed'");
            find.bind(1, hash);
            if (!find.step() || find_completed_run(hash)) {
                continue;
            }
            const std::int64_t from = find.int64(0);
            auto& del = impl_->stmt("DELETE FROM runs WHERE config_hash = ?1");
            del.bind(1, hash);
            del.run();
            sql::Statement ins(impl_->db,
                               "INSERT INTO runs (config_hash, created, finished, "
                               "software_version, encoder, weights_hash, task, adaptation, "
                               "pooling, layers, seed, status, config_json, notes) SELECT "
                               "config_hash, created, finished, software_version, encoder, "
                               "weights_hash, task, adaptation, pooling, layers, seed, status, "
                               "config_json, notes FROM src.runs WHERE id = ?1");
            ins.bind(1, from);
            ins.run();
            copy_run_rows(impl_->db, from, sqlite3_last_insert_rowid(impl_->db.get()));
            ++copied;
        }
        tx.commit();
    } catch (...) {
        impl_->db.exec("DETACH DATABASE src");
        throw;
    }
    impl_->db.exec("DETACH DATABASE src");
    return copied;
}

void ResultsDb::record_store(const StoreRecord& store) {
    RADPROBE_CHECK(impl_->version >= 2, "results database ", impl_->path.string(),
                   ": schema version ", impl_->version, " has no stores table");
    sql::Transaction tx(impl_->db);
    auto& s = impl_->stmt(
        "INSERT OR REPLACE INTO stores (encoder, store_dir, manifest, seed, recorded) VALUES "
        "(?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
    s.bind(1, store.encoder);
    s.bind(2, fs::absolute(store.store_dir).lexically_normal().string());
    s.bind(3, fs::absolute(store.manifest).lexically_normal().string());
    s.bind(4, store.seed);
    s.run();
    tx.commit();
}

std::vector<StoreRecord> ResultsDb::stores() {
    std::vector<StoreRecord> out;
    if (impl_->version < 2) {
        return out;
    }
    auto& s = impl_->stmt(
        "SELECT encoder, store_dir, manifest, seed, recorded FROM stores ORDER BY encoder");
    while (s.step()) {
        StoreRecord r;
        r.encoder = s.text(0);
        r.store_dir = s.text(1);
        r.manifest = s.text(2);
        r.seed = s.int64(3);
        r.recorded = s.text(4);
        out.push_back(std::move(r));
    }
    return out;
}

void ResultsDb::finish_run(std::int64_t run, RunStatus status) {
    impl_->finish(run, status, std::nullopt);
}

void ResultsDb::finish_run(std::int64_t run, RunStatus status, const std::string& notes) {
    impl_->finish(run, status, notes);
}

void ResultsDb::replace_analysis(const std::string& analysis, std::span<const AnalysisRow> rows) {
    RADPROBE_CHECK(!analysis.empty(), "results database ", impl_->path.string(),
                   ": replace_analysis needs an analysis name");
    for (const auto& r : rows) {
        RADPROBE_CHECK(r.analysis == analysis, "results database ", impl_->path.string(),
                       ": replace_analysis('", analysis, "') got a row of '", r.analysis, "'");
    }
    // One transaction: readers see the old table or the new one, never a mix.
    sql::Transaction tx(impl_->db);
    auto& del = impl_->stmt("DELETE FROM analysis WHERE analysis = ?1");
    del.bind(1, analysis);
    del.run();
    for (const auto& r : rows) {
        RADPROBE_CHECK(!r.column.empty(), "results database ", impl_->path.string(),
                       ": an analysis row needs a column (row '", r.row_key, "')");
        impl_->insert_analysis_row(r);
    }
    tx.commit();
}

std::vector<RunRecord> ResultsDb::runs(const RunFilter& filter) {
    auto& s = impl_->stmt(
        "SELECT id, config_hash, created, finished, software_version, encoder, weights_hash, "
        "task, adaptation, pooling, layers, seed, status, config_json, notes FROM runs "
        "WHERE (?1 = '' OR task = ?1) AND (?2 = '' OR encoder = ?2) "
        "AND (?3 OR status = 'completed') ORDER BY task, id");
    s.bind(1, filter.task);
    s.bind(2, filter.encoder);
    s.bind(3, std::int64_t{filter.include_incomplete ? 1 : 0});
    return impl_->collect(s, [&](const sql::Statement& row) { return impl_->read_run(row); });
}

std::vector<Metric> ResultsDb::metrics(std::int64_t run) {
    auto& s = impl_->stmt(
        "SELECT name, value, ci_lo, ci_hi, ci_method, level, n, subgroup, extra_json "
        "FROM metrics WHERE run = ?1 ORDER BY rowid");
    s.bind(1, run);
    return impl_->collect(s, read_metric);
}

std::vector<Prediction> ResultsDb::predictions(std::int64_t run) {
    auto& s = impl_->stmt(
        "SELECT image_id, patient_id, label, score, mask_path, dice FROM predictions "
        "WHERE run = ?1 ORDER BY rowid");
    s.bind(1, run);
    return impl_->collect(s, read_prediction);
}

std::vector<AnalysisRow> ResultsDb::analysis(const std::string& analysis) {
    auto& s = impl_->stmt(
        "SELECT analysis, run, row_key, row_key2, column_name, value, ci_lo, ci_hi, p, "
        "p_adjusted FROM analysis WHERE ?1 = '' OR analysis = ?1 ORDER BY rowid");
    s.bind(1, analysis);
    return impl_->collect(s, read_analysis_row);
}

std::vector<LeaderboardRow> ResultsDb::leaderboard(const RunFilter& filter) {
    RunFilter completed = filter;
    completed.include_incomplete = false;
    std::vector<LeaderboardRow> out;
    for (auto& run : runs(completed)) {
        if (run.spec.adaptation.rfind("analysis:", 0) == 0) {
            continue;  // runs of analyses carry tables, not leaderboard metrics
        }
        LeaderboardRow row;
        for (auto& m : metrics(run.id)) {
            if (m.subgroup.empty()) {
                row.metrics.push_back(std::move(m));
            }
        }
        row.run = std::move(run);
        out.push_back(std::move(row));
    }
    return out;
}

}  // namespace radprobe::results
