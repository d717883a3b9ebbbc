// The results database: schema (as documented), round trips with NULLs, re-run skipping,
// replacement of a killed run, one-line errors, hostile strings, the recorded-run skeleton
// (run_recorded), and crash consistency (a child process SIGKILLed in the middle of writing; two
// processes writing at once).

#include <gtest/gtest.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/results/results.hpp"
#include "results_fixtures.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

using namespace radprobe::results;

// Direct SQL on the file, the way a user with sqlite3 / pandas sees it.
class RawDb {
public:
    explicit RawDb(const std::filesystem::path& path) {
        EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    }
    ~RawDb() { sqlite3_close(db_); }
    std::vector<std::vector<std::string>> query(const std::string& sql) {
        std::vector<std::vector<std::string>> rows;
        sqlite3_stmt* s = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK)
            << sqlite3_errmsg(db_);
        while (s && sqlite3_step(s) == SQLITE_ROW) {
            std::vector<std::string> row;
            for (int c = 0; c < sqlite3_column_count(s); ++c) {
                const auto* t = sqlite3_column_text(s, c);
                row.push_back(t ? reinterpret_cast<const char*>(t) : "NULL");
            }
            rows.push_back(row);
        }
        sqlite3_finalize(s);
        return rows;
    }
    std::string scalar(const std::string& sql) {
        const auto rows = query(sql);
        return rows.empty() || rows[0].empty() ? "" : rows[0][0];
    }
    void exec(const std::string& sql) {
        EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
            << sqlite3_errmsg(db_);
    }

private:
    sqlite3* db_ = nullptr;
};

Prediction pred(const std::string& image_id) {
    Prediction p;
    p.image_id = image_id;
    return p;
}

RunFilter filter(const std::string& task, const std::string& encoder) {
    RunFilter f;
    f.task = task;
    f.encoder = encoder;
    return f;
}

RunSpec spec(const std::string& hash) {
    RunSpec s;
    s.config_hash = hash;
    s.encoder = "rad-dino";
    s.task = "cardiomegaly";
    s.adaptation = "linear";
    s.pooling = "cls";
    s.layers = "12";
    s.seed = 3;
    s.config_json = R"({"lr":0.001})";
    return s;
}

std::vector<std::string> columns(RawDb& raw, const std::string& table) {
    std::vector<std::string> names;
    for (const auto& row : raw.query("PRAGMA table_info(" + table + ")")) {
        names.push_back(row[1]);
    }
    return names;
}

TEST(ResultsDb, CreatesDocumentedSchemaInWalMode) {
    TempDir tmp;
    const auto path = tmp / "sub" / "results.sqlite";
    {
        ResultsDb db = ResultsDb::open(path);
        EXPECT_EQ(db.schema_version(), kResultsSchemaVersion);
    }
    RawDb raw(path);
    EXPECT_EQ(raw.scalar("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.scalar("PRAGMA user_version"), std::to_string(kResultsSchemaVersion));
    EXPECT_EQ(
        columns(raw, "runs"),
        (std::vector<std::string>{"id", "config_hash", "created", "finished", "software_version",
                                  "encoder", "weights_hash", "task", "adaptation", "pooling",
                                  "layers", "seed", "status", "config_json", "notes"}));
    EXPECT_EQ(columns(raw, "metrics"),
              (std::vector<std::string>{"run", "name", "value", "ci_lo", "ci_hi", "ci_method",
                                        "level", "n", "subgroup", "extra_json"}));
    EXPECT_EQ(columns(raw, "predictions"),
              (std::vector<std::string>{"run", "image_id", "patient_id", "label", "score",
                                        "mask_path", "dice"}));
    EXPECT_EQ(columns(raw, "analysis"),
              (std::vector<std::string>{"analysis", "run", "row_key", "row_key2", "column_name",
                                        "value", "ci_lo", "ci_hi", "p", "p_adjusted"}));
    EXPECT_EQ(columns(raw, "stores"),
              (std::vector<std::string>{"encoder", "store_dir", "manifest", "seed", "recorded"}));
    // The documentation lists the same columns.
    const std::string doc = radprobe::read_file_text(source_dir() / "docs" / "results_db.md");
    for (const char* table : {"runs", "metrics", "predictions", "analysis", "stores"}) {
        for (const auto& c : columns(raw, table)) {
            EXPECT_NE(doc.find("`" + c + "`"), std::string::npos) << table << "." << c;
        }
    }
    // Reopening an up-to-date database changes nothing.
    ResultsDb again = ResultsDb::open(path);
    EXPECT_EQ(again.schema_version(), kResultsSchemaVersion);
}

// Version 2 added `stores`: a version-1 file reads (no stores) and is migrated when opened for
// writing; a store recorded twice keeps the latest.
TEST(ResultsDb, StoresTableMigratesFromVersion1AndKeepsTheLatestPerEncoder) {
    TempDir tmp;
    const auto path = tmp / "r.sqlite";
    { ResultsDb::open(path); }
    {
        RawDb raw(path);
        raw.exec("DROP TABLE stores");
        raw.exec("PRAGMA user_version = 1");
    }
    {
        ResultsDb v1 = ResultsDb::open_existing(path);
        EXPECT_EQ(v1.schema_version(), 1);
        EXPECT_TRUE(v1.stores().empty());
        StoreRecord rec;
        rec.encoder = "vit";
        EXPECT_THROW(v1.record_store(rec), InputError);
    }
    ResultsDb db = ResultsDb::open(path);
    EXPECT_EQ(db.schema_version(), 2);
    StoreRecord rec;
    rec.encoder = "vit";
    rec.store_dir = tmp / "store" / "vit-1";
    rec.manifest = tmp / "m.csv";
    rec.seed = 5;
    db.record_store(rec);
    rec.store_dir = tmp / "store" / "vit-2";
    db.record_store(rec);
    rec.encoder = "cnn";
    db.record_store(rec);
    const auto stores = db.stores();
    ASSERT_EQ(stores.size(), 2u);
    EXPECT_EQ(stores[0].encoder, "cnn");
    EXPECT_EQ(stores[1].encoder, "vit");
    EXPECT_EQ(stores[1].store_dir, std::filesystem::absolute(tmp / "store" / "vit-2"));
    EXPECT_EQ(stores[1].manifest, std::filesystem::absolute(tmp / "m.csv"));
    EXPECT_EQ(stores[1].seed, 5);
    EXPECT_FALSE(stores[1].recorded.empty());
}

TEST(ResultsDb, RoundTripsRunsMetricsPredictionsAnalysisWithNulls) {
    TempDir tmp;
    ResultsDb db = ResultsDb::open(tmp / "r.sqlite");
    RunSpec s = spec("h1");
    s.weights_hash = "sha256:abc";
    s.notes = "first";
    const std::int64_t run = db.begin_run(s);

    Metric auc;
    auc.name = "auroc";
    auc.value = 0.8125;
    auc.ci_lo = 0.75;
    auc.ci_hi = 0.875;
    auc.ci_method = "delong";
    auc.level = 0.95;
    auc.n = 123;
    Metric undefined;  // a metric undefined on the data: stored as NULL, not NaN or 0.5
    undefined.name = "auroc";
    undefined.subgroup = "chest_tube=0";
    undefined.extra_json = R"({"reason":"one class"})";
    db.record_metrics(run, std::vector<Metric>{auc, undefined});

    Prediction p1;
    p1.image_id = "a.png";
    p1.patient_id = "P1";
    p1.label = 1.0;
    p1.score = 0.25;
    Prediction p2;
    p2.image_id = "b.png";
    p2.mask_path = "m/b.png";
    p2.dice = 0.5;
    db.record_predictions(run, std::vector<Prediction>{p1, p2});

    AnalysisRow a;
    a.analysis = "perturb";
    a.run = run;
    a.row_key = "blob 4px";
    a.column = "cls";
    a.value = 0.51;
    a.p = 0.2;
    db.record_analysis(std::vector<AnalysisRow>{a});
    db.finish_run(run);

    const auto runs = db.runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].id, run);
    EXPECT_EQ(runs[0].status, RunStatus::kCompleted);
    EXPECT_EQ(runs[0].spec.weights_hash, "sha256:abc");
    EXPECT_EQ(runs[0].spec.seed, 3);
    EXPECT_EQ(runs[0].spec.config_json, R"({"lr":0.001})");
    EXPECT_EQ(runs[0].spec.notes, "first");
    EXPECT_NE(runs[0].spec.software_version.find("("), std::string::npos);  // version (git)
    EXPECT_EQ(runs[0].created.size(), 24u) << runs[0].created;  // 2024-01-01T00:00:00.000Z
    EXPECT_FALSE(runs[0].finished.empty());

    const auto metrics = db.metrics(run);
    ASSERT_EQ(metrics.size(), 2u);
    EXPECT_EQ(metrics[0].value, 0.8125);
    EXPECT_EQ(metrics[0].ci_lo, 0.75);
    EXPECT_EQ(metrics[0].ci_hi, 0.875);
    EXPECT_EQ(metrics[0].ci_method, "delong");
    EXPECT_EQ(metrics[0].n, 123);
    EXPECT_FALSE(metrics[1].value.has_value());
    EXPECT_FALSE(metrics[1].ci_lo.has_value());
    EXPECT_FALSE(metrics[1].n.has_value());
    EXPECT_EQ(metrics[1].subgroup, "chest_tube=0");

    const auto preds = db.predictions(run);
    ASSERT_EQ(preds.size(), 2u);
    EXPECT_EQ(preds[0].patient_id, "P1");
    EXPECT_EQ(preds[0].score, 0.25);
    EXPECT_FALSE(preds[0].dice.has_value());
    EXPECT_FALSE(preds[1].label.has_value());
    EXPECT_EQ(preds[1].mask_path, "m/b.png");
    EXPECT_EQ(preds[1].dice, 0.5);

    const auto rows = db.analysis("perturb");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].run, run);
    EXPECT_EQ(rows[0].value, 0.51);
    EXPECT_FALSE(rows[0].ci_lo.has_value());
    EXPECT_EQ(rows[0].p, 0.2);
    EXPECT_TRUE(db.analysis("subgroups").empty());

    // The leaderboard holds only whole-test-set metrics.
    const auto board = db.leaderboard();
    ASSERT_EQ(board.size(), 1u);
    ASSERT_EQ(board[0].metrics.size(), 1u);
    EXPECT_EQ(board[0].metrics[0].subgroup, "");
}

TEST(ResultsDb, CompletedConfigHashIsFoundAndNotRunTwice) {
    TempDir tmp;
    ResultsDb db = ResultsDb::open(tmp / "r.sqlite");
    EXPECT_FALSE(db.find_completed_run("h1"));
    const std::int64_t run = db.begin_run(spec("h1"));
    EXPECT_FALSE(db.find_completed_run("h1")) << "a running run is not a result";
    db.finish_run(run);
    EXPECT_EQ(db.find_completed_run("h1"), run);
    EXPECT_THROW(db.begin_run(spec("h1")), InputError);
    EXPECT_NE(db.begin_run(spec("h2")), run);
    // A finished run cannot change.
    Metric late;
    late.name = "auroc";
    late.value = 0.9;
    EXPECT_THROW(db.record_metrics(run, std::vector<Metric>{late}), InputError);
    EXPECT_THROW(db.finish_run(run), InputError);
    // A failed run does not count as done: the next attempt replaces it.
    ResultsDb db2 = ResultsDb::open(tmp / "r.sqlite");
    const std::int64_t failed = db2.begin_run(spec("h3"));
    db2.finish_run(failed, RunStatus::kFailed);
    EXPECT_FALSE(db2.find_completed_run("h3"));
    const std::int64_t retry = db2.begin_run(spec("h3"));
    RunFilter all;
    all.include_incomplete = true;
    std::set<std::int64_t> ids;
    for (const auto& r : db2.runs(all)) {
        ids.insert(r.id);
    }
    EXPECT_EQ(ids.count(failed), 0u);
    EXPECT_EQ(ids.count(retry), 1u);
}

TEST(ResultsDb, RunOfKilledWriterIsHiddenThenReplaced) {
    TempDir tmp;
    const auto path = tmp / "r.sqlite";
    std::int64_t stale = 0;
    {
        ResultsDb db = ResultsDb::open(path);
        stale = db.begin_run(spec("h1"));
        Metric m;
        m.name = "auroc";
        m.value = 0.7;
        db.record_metrics(stale, std::vector<Metric>{m});
        db.record_predictions(stale, std::vector<Prediction>{pred("a")});
    }  // "killed": never finished
    ResultsDb db = ResultsDb::open(path);
    EXPECT_TRUE(db.runs().empty());
    EXPECT_TRUE(db.leaderboard().empty());
    RunFilter all;
    all.include_incomplete = true;
    ASSERT_EQ(db.runs(all).size(), 1u);
    EXPECT_EQ(db.runs(all)[0].status, RunStatus::kRunning);

    const std::int64_t fresh = db.begin_run(spec("h1"));
    EXPECT_NE(fresh, stale);
    EXPECT_TRUE(db.metrics(stale).empty());
    EXPECT_TRUE(db.predictions(stale).empty());
    ASSERT_EQ(db.runs(all).size(), 1u);
}

// One completed run of `hash` with a metric, a prediction and an analysis row.
std::int64_t completed_run(ResultsDb& db, const std::string& hash, double auroc) {
    const std::int64_t run = db.begin_run(spec(hash));
    Metric m;
    m.name = "auroc";
    m.value = auroc;
    m.ci_lo = auroc - 0.1;
    m.subgroup = "chest_tube=1";
    m.extra_json = R"({"method":"x"})";
    db.record_metrics(run, std::vector<Metric>{m});
    Prediction p = pred("img-" + hash);
    p.score = auroc / 2;
    db.record_predictions(run, std::vector<Prediction>{p});
    AnalysisRow a;
    a.analysis = "subgroups";
    a.run = run;
    a.row_key = "chest_tube";
    a.column = "gap";
    a.value = auroc / 3;
    db.record_analysis(std::vector<AnalysisRow>{a});
    db.finish_run(run);
    return run;
}

TEST(ResultsDb, ImportedRunsKeepEveryRowUnderNewIdsInTheOrderGiven) {
    TempDir tmp;
    {
        ResultsDb cells = ResultsDb::open(tmp / "cells.sqlite");
        completed_run(cells, "h1", 0.7);
        completed_run(cells, "h2", 0.8);
        completed_run(cells, "h3", 0.9);
        cells.begin_run(spec("h4"));  // killed: not imported
    }
    ResultsDb db = ResultsDb::open(tmp / "study.sqlite");
    completed_run(db, "h2", 0.5);  // already here: kept, not imported again
    db.begin_run(spec("h3"));      // a killed writer's run of h3: replaced
    EXPECT_EQ(db.import_runs(tmp / "cells.sqlite", {"h3", "h1", "h2", "h4", "h9"}), 2u);
    const auto runs = db.runs();
    ASSERT_EQ(runs.size(), 3u);
    EXPECT_EQ(runs[0].spec.config_hash, "h2");
    EXPECT_EQ(runs[1].spec.config_hash, "h3");  // in the order given
    EXPECT_EQ(runs[2].spec.config_hash, "h1");
    EXPECT_EQ(runs[1].spec.config_json, R"({"lr":0.001})");
    EXPECT_FALSE(runs[1].finished.empty());
    const auto metrics = db.metrics(runs[1].id);
    ASSERT_EQ(metrics.size(), 1u);
    EXPECT_EQ(metrics[0].value, 0.9);
    EXPECT_EQ(metrics[0].ci_lo, 0.9 - 0.1);
    EXPECT_EQ(metrics[0].subgroup, "chest_tube=1");
    EXPECT_EQ(metrics[0].extra_json, R"({"method":"x"})");
    EXPECT_EQ(db.metrics(runs[0].id)[0].value, 0.5);
    ASSERT_EQ(db.predictions(runs[2].id).size(), 1u);
    EXPECT_EQ(db.predictions(runs[2].id)[0].image_id, "img-h1");
    EXPECT_EQ(db.predictions(runs[2].id)[0].score, 0.35);
    std::map<std::int64_t, double> gap;
    for (const auto& a : db.analysis("subgroups")) {
        gap[a.run.value()] = a.value.value();
    }
    EXPECT_EQ(gap.size(), 3u);
    EXPECT_EQ(gap[runs[1].id], 0.9 / 3);
    EXPECT_EQ(gap[runs[2].id], 0.7 / 3);
    RunFilter all;
    all.include_incomplete = true;
    EXPECT_EQ(db.runs(all).size(), 3u);  // the stale h3 is gone
    // Again: nothing to copy. Another schema: refused, naming the file.
    EXPECT_EQ(db.import_runs(tmp / "cells.sqlite", {"h1", "h2", "h3"}), 0u);
    {
        RawDb raw(tmp / "cells.sqlite");
        raw.exec("PRAGMA user_version = 1");
    }
    try {
        db.import_runs(tmp / "cells.sqlite", {"h1"});
        ADD_FAILURE() << "a database of another schema was imported";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("cells.sqlite: schema version differs"),
                  std::string::npos)
            << e.what();
    }
}

TEST(ResultsDb, FiltersByTaskAndEncoder) {
    TempDir tmp;
    ResultsDb db = ResultsDb::open(tmp / "r.sqlite");
    for (const auto& [hash, task, enc] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"a", "t1", "e1"}, {"b", "t1", "e2"}, {"c", "t2", "e1"}}) {
        RunSpec s = spec(hash);
        s.task = task;
        s.encoder = enc;
        db.finish_run(db.begin_run(s));
    }
    EXPECT_EQ(db.runs().size(), 3u);
    EXPECT_EQ(db.runs(filter("t1", "")).size(), 2u);
    EXPECT_EQ(db.runs(filter("t1", "e1")).size(), 1u);
    EXPECT_EQ(db.runs(filter("", "e1")).size(), 2u);
    EXPECT_TRUE(db.runs(filter("nope", "")).empty());
}

TEST(ResultsDb, HostileStringsAreStoredVerbatim) {
    TempDir tmp;
    ResultsDb db = ResultsDb::open(tmp / "r.sqlite");
    RunSpec s = spec("x'); DROP TABLE runs; --");
    s.encoder = "enc\"'; DELETE FROM metrics; --\n<script>";
    s.notes = std::string("nul\0byte", 8);
    const std::int64_t run = db.begin_run(s);
    db.finish_run(run);
    const auto runs = db.runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].spec.config_hash, s.config_hash);
    EXPECT_EQ(runs[0].spec.encoder, s.encoder);
    EXPECT_EQ(runs[0].spec.notes, s.notes);
    EXPECT_EQ(db.find_completed_run(s.config_hash), run);
    EXPECT_EQ(db.runs(filter("", s.encoder)).size(), 1u);
}

TEST(ResultsDb, ErrorsNameTheFileAndReason) {
    TempDir tmp;
    auto message = [](auto&& fn) {
        try {
            fn();
        } catch (const InputError& e) {
            return std::string(e.what());
        }
        return std::string("no InputError");
    };
    // Not a database at all.
    const auto junk = tmp / "junk.sqlite";
    {
        std::ofstream(junk) << "this is not sqlite, just text that is long enough to be a header "
                               "of something else entirely.................................";
    }
    EXPECT_NE(message([&] { ResultsDb::open(junk); }).find("not a SQLite database"),
              std::string::npos);
    EXPECT_NE(message([&] { ResultsDb::open_existing(junk); }).find(junk.string()),
              std::string::npos);
    // A SQLite database of something else.
    const auto other = tmp / "other.sqlite";
    {
        RawDb raw(other);
        raw.exec("CREATE TABLE t(x)");
    }
    EXPECT_NE(message([&] { ResultsDb::open(other); }).find("not a radprobe results database"),
              std::string::npos);
    // Written by a newer radprobe.
    const auto newer = tmp / "newer.sqlite";
    ResultsDb::open(newer);
    {
        RawDb raw(newer);
        raw.exec("PRAGMA user_version = 99");
    }
    EXPECT_NE(message([&] { ResultsDb::open(newer); }).find("newer radprobe"), std::string::npos);
    // Missing file for a read-only command.
    EXPECT_NE(message([&] { ResultsDb::open_existing(tmp / "none.sqlite"); }).find("no such file"),
              std::string::npos);

    ResultsDb db = ResultsDb::open(tmp / "r.sqlite");
    RunSpec bad = spec("h");
    bad.config_json = "{not json";
    EXPECT_NE(message([&] { db.begin_run(bad); }).find("config_json is not valid JSON"),
              std::string::npos);
    EXPECT_NE(message([&] { db.begin_run(spec("")); }).find("needs a config hash"),
              std::string::npos);
    EXPECT_NE(message([&] {
                  db.record_predictions(42, std::vector<Prediction>{pred("a")});
              }).find("no run with id 42"),
              std::string::npos);
    AnalysisRow orphan;
    orphan.analysis = "perturb";
    orphan.run = 77;
    orphan.row_key = "r";
    orphan.column = "c";
    EXPECT_NE(message([&] {
                  db.record_analysis(std::vector<AnalysisRow>{orphan});
              }).find("run 77, which does not exist"),
              std::string::npos);
    // A failed batch leaves nothing behind (one transaction).
    const std::int64_t run = db.begin_run(spec("h"));
    std::vector<Prediction> batch = {pred("ok"), pred("")};
    EXPECT_THROW(db.record_predictions(run, batch), InputError);
    EXPECT_TRUE(db.predictions(run).empty());
}

// Writes batches of `batch` predictions in a loop until killed; tells the parent (through a
// pipe) after the first committed batch.
[[noreturn]] void child_writer(const std::filesystem::path& path, const std::string& hash,
                               int notify_fd, std::size_t batches, std::size_t batch) {
    try {
        ResultsDb db = ResultsDb::open(path);
        const std::int64_t run = db.begin_run(spec(hash));
        std::vector<Prediction> preds(batch);
        for (std::size_t b = 0; b < batches; ++b) {
            for (std::size_t i = 0; i < batch; ++i) {
                preds[i].image_id = "img" + std::to_string(b * batch + i);
                preds[i].score = static_cast<double>(i);
            }
            db.record_predictions(run, preds);
            if (b == 0 && notify_fd >= 0) {
                const char c = 'x';
                (void)!::write(notify_fd, &c, 1);
            }
        }
        db.finish_run(run);
        ::_exit(0);
    } catch (...) {
        ::_exit(3);
    }
}

TEST(RunRecorded, SkipsACompletedConfigAndRecordsAFailureWithoutThrowing) {
    TempDir tmp;
    ResultsDb db = ResultsDb::open(tmp / "r.sqlite");
    RunSpec spec;
    spec.config_hash = "h1";
    spec.task = "cardiomegaly";
    int calls = 0;
    auto body = [&](std::int64_t run) {
        ++calls;
        Metric m;
        m.name = "auroc";
        m.value = 0.8;
        db.record_metrics(run, std::vector<Metric>{m});
    };
    const RecordedRun done = run_recorded(db, spec, body);
    EXPECT_EQ(done.outcome, RunOutcome::kCompleted);
    EXPECT_EQ(db.find_completed_run("h1"), done.run);
    ASSERT_EQ(db.metrics(done.run).size(), 1u);

    const RecordedRun again = run_recorded(db, spec, body);
    EXPECT_EQ(again.outcome, RunOutcome::kSkipped);
    EXPECT_EQ(again.run, done.run);
    EXPECT_EQ(calls, 1);  // the body of a completed config never runs again

    spec.config_hash = "h2";
    const RecordedRun failed =
        run_recorded(db, spec, [](std::int64_t) { throw InputError("bad input\nsecond line"); });
    EXPECT_EQ(failed.outcome, RunOutcome::kFailed);
    EXPECT_EQ(failed.error, "bad input second line");
    EXPECT_FALSE(db.find_completed_run("h2").has_value());
    RunFilter all;
    all.include_incomplete = true;
    const auto runs = db.runs(all);
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[1].status, RunStatus::kFailed);
    EXPECT_EQ(runs[1].spec.notes, failed.error);
}

TEST(ResultsDbCrash, WriterKilledMidWriteLeavesConsistentDb) {
    TempDir tmp;
    const auto path = tmp / "r.sqlite";
    ResultsDb::open(path);  // schema exists before the child starts
    constexpr std::size_t kBatch = 500;
    // The child kills itself inside the transaction of its third batch (rows 1001..1500), after
    // inserting row 1001, 1250 or 1499: always mid-write, whatever the machine's speed. Each
    // attempt replaces the previous attempt's run.
    for (int attempt = 0; attempt < 3; ++attempt) {
        const std::size_t kill_row = 2 * kBatch + 1 + static_cast<std::size_t>(attempt) * 249;
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::setenv("RADPROBE_TEST_RESULTS_KILL_AT_ROW", std::to_string(kill_row).c_str(), 1);
            child_writer(path, "crash", -1, 1000, kBatch);
        }
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << "the child was not killed mid-write";
        {
            RawDb raw(path);
            EXPECT_EQ(raw.scalar("PRAGMA integrity_check"), "ok");
            EXPECT_EQ(raw.scalar("PRAGMA foreign_key_check"), "");
        }
        ResultsDb db = ResultsDb::open(path);
        RunFilter all;
        all.include_incomplete = true;
        const auto runs = db.runs(all);
        ASSERT_EQ(runs.size(), 1u) << "the previous attempt's run was replaced";
        EXPECT_EQ(runs[0].status, RunStatus::kRunning);
        EXPECT_FALSE(db.find_completed_run("crash"));
        // The two committed batches, none of the half-written third.
        EXPECT_EQ(db.predictions(runs[0].id).size(), 2 * kBatch);
    }
    // The next run of the same config starts afresh and completes.
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        child_writer(path, "crash", -1, 2, kBatch);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ResultsDb db = ResultsDb::open(path);
    const auto done = db.find_completed_run("crash");
    ASSERT_TRUE(done);
    EXPECT_EQ(db.predictions(*done).size(), 2 * kBatch);
}

TEST(ResultsDbCrash, TwoProcessesWriteAtOnce) {
    TempDir tmp;
    const auto path = tmp / "r.sqlite";
    ResultsDb::open(path);
    std::vector<pid_t> pids;
    for (int k = 0; k < 2; ++k) {
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            child_writer(path, "writer" + std::to_string(k), -1, 40, 200);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }
    ResultsDb db = ResultsDb::open(path);
    for (int k = 0; k < 2; ++k) {
        const auto run = db.find_completed_run("writer" + std::to_string(k));
        ASSERT_TRUE(run);
        EXPECT_EQ(db.predictions(*run).size(), 40u * 200u);
    }
}

}  // namespace
}  // namespace radprobe::test
