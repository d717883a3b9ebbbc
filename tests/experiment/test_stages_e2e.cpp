// A study split over array tasks equals the same study in one process: the extraction slices
// (one killed after a shard) and the stores' merge, the cells (one killed at its first run, each
// task its own database) and the final merge give byte-identical stores and the same metrics,
// predictions and analysis rows as `radprobe run` in one process. First through `radprobe run
// --stage` directly, then as Slurm array jobs on a real single-node Slurm (tests/slurm).

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <regex>
#include <thread>

#include "radprobe/core/files.hpp"
#include "radprobe/results/results.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

namespace fs = std::filesystem;
using namespace radprobe::results;

// Phantoms and the study's config: two encoders, linear probes on two poolings, the subgroup
// analysis of every probe (it reads its run: one unit of work with it), a linear segmentation
// decoder of the heart; stores in shards of 16 images (8 shards).
fs::path write_study(const fs::path& dir) {
    const CliResult r = run_cli("synth --out " + q(dir / "phantoms") +
                                " --n 120 --size 64 --seed 11 --cardiomegaly-prevalence 0.4");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const fs::path out = dir / "out";
    const std::string yaml =
        "data:\n  manifest: " + q(dir / "phantoms" / "manifest.csv") +
        "\n"
        "encoders:\n"
        "  - name: rand-vit\n"
        "    random_vit: {seed: 5, hidden_size: 48, layers: 2, heads: 3, patch_size: 16, "
        "image_size: 64}\n"
        "    preprocessing: {size: 64}\n"
        "  - name: dino-fixture\n"
        "    path: " +
        q(encoder_fixture("dinov2")) +
        "\n"
        "tasks:\n  classification: [cardiomegaly]\n  segmentation: [heart]\n"
        "adaptations:\n"
        "  linear: {c_grid: '0.1,1'}\n"
        "  segment: {decoders: [linear], epochs: 2, batch: 16}\n"
        "pooling: [cls, mean]\n"
        "seeds: [2]\n"
        "analyses:\n  subgroups: {attributes: [chest_tube]}\n"
        "statistics: {n_boot: 100}\n"
        "output:\n  db: " +
        q(out / "study.sqlite") + "\n  store: " + q(out / "embeddings") +
        "\n  report: ''\n  report_md: " + q(out / "report.md") + "\n  shard_size: 16\n";
    write_file_atomic(dir / "study.yaml", yaml);
    return dir / "study.yaml";
}

std::string num(const std::optional<double>& v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v.value_or(-12345.0));
    return v ? buf : "null";
}

// What a study's database says, keyed by config hash (run ids may differ where a task was
// killed and its runs were done by the merge step): each run's status, metrics and predictions,
// and the analysis rows with their run named by its hash.
std::map<std::string, std::string> digest(const fs::path& db_path) {
    ResultsDb db = ResultsDb::open_existing(db_path);
    std::map<std::string, std::string> d;
    std::map<std::int64_t, std::string> hash_of;
    for (const auto& r : db.runs({"", "", true})) {
        hash_of[r.id] = r.spec.config_hash;
        std::string& text = d["run " + r.spec.config_hash];
        text = std::to_string(static_cast<int>(r.status)) + " " + r.spec.adaptation + "\n";
        for (const auto& m : db.metrics(r.id)) {
            text += m.name + "|" + m.subgroup + "|" + num(m.value) + "|" + num(m.ci_lo) + "|" +
                    num(m.ci_hi) + "|" + m.extra_json + "\n";
        }
        for (const auto& p : db.predictions(r.id)) {
            text += p.image_id + "|" + num(p.label) + "|" + num(p.score) + "|" + num(p.dice) + "\n";
        }
    }
    // Run ids quoted in the text of a row ("best: ... (run 3)") named by their hash too.
    const auto named = [&](const std::string& text) {
        std::string out;
        const std::regex id("run ([0-9]+)");
        auto at = std::sregex_iterator(text.begin(), text.end(), id);
        std::size_t done = 0;
        for (; at != std::sregex_iterator(); ++at) {
            out += text.substr(done, at->position() - done) + "run " +
                   hash_of.at(std::stoll((*at)[1].str()));
            done = at->position() + at->length();
        }
        return out + text.substr(done);
    };
    for (const auto& a : db.analysis()) {  // keyed by what the row is, not where it was written
        const std::string key = "analysis " + a.analysis + " " +
                                (a.run ? hash_of.at(*a.run) : "-") + " " + named(a.row_key) + " " +
                                named(a.row_key2) + " " + named(a.column);
        d[key] += num(a.value) + "|" + num(a.ci_lo) + "|" + num(a.ci_hi) + "|" + num(a.p) + "|" +
                  num(a.p_adjusted) + "\n";
    }
    return d;
}

// The run ids in order with their hashes (equal when every task completed its runs).
std::vector<std::string> run_order(const fs::path& db_path) {
    std::vector<std::string> order;
    for (const auto& r : ResultsDb::open_existing(db_path).runs({"", "", true})) {
        order.push_back(std::to_string(r.id) + " " + r.spec.config_hash);
    }
    return order;
}

// Every file of every embedding store (folders holding store.json) under `root`.
std::map<std::string, std::string> stores(const fs::path& root) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::directory_iterator(root)) {
        if (!fs::exists(e.path() / "store.json")) {
            continue;
        }
        for (const auto& f : fs::recursive_directory_iterator(e.path())) {
            if (f.is_regular_file()) {
                files[fs::relative(f.path(), root).string()] = read_text(f.path());
            }
        }
    }
    return files;
}

// Runs `args` with one environment variable set for the child.
CliResult run_with_env(const char* name, const char* value, const std::string& args) {
    setenv(name, value, 1);
    const CliResult r = run_cli(args);
    unsetenv(name);
    return r;
}

// The study of `cfg` again in one process, its output moved aside first to `aside`; the two
// outputs are then compared.
void expect_same_as_one_process(const fs::path& cfg, const fs::path& out, const fs::path& aside,
                                bool same_run_ids) {
    fs::rename(out, aside);
    const CliResult one = run_cli("run " + q(cfg) + " --threads 1");
    ASSERT_EQ(one.exit_code, 0) << one.err << one.out;
    const auto split_stores = stores(aside / "embeddings");
    EXPECT_EQ(split_stores.size(), stores(out / "embeddings").size());
    EXPECT_GT(split_stores.size(), 20u);  // two stores, each 8 shards and the final files
    EXPECT_TRUE(split_stores == stores(out / "embeddings")) << "the stores differ";
    const auto split = digest(aside / "study.sqlite");
    const auto single = digest(out / "study.sqlite");
    EXPECT_EQ(split.size(), single.size());
    for (const auto& [key, text] : single) {
        const auto it = split.find(key);
        ASSERT_NE(it, split.end()) << key << " missing from the merged database";
        EXPECT_EQ(it->second, text) << key;
    }
    if (same_run_ids) {
        EXPECT_EQ(run_order(aside / "study.sqlite"), run_order(out / "study.sqlite"));
    }
}

TEST(Stages, ArrayTasksAndTheirMergeGiveTheSingleProcessStudy) {
    TempDir tmp;
    const fs::path cfg = write_study(tmp.path());
    const fs::path out = tmp / "out";
    const std::string run = "run " + q(cfg) + " --threads 1 --quiet --stage ";
    // Extraction slices: 0 by flag, 2 as a Slurm array task, 1 killed after its shard 1.
    EXPECT_EQ(run_cli(run + "extract --slice 0/3").exit_code, 0);
    setenv("SLURM_ARRAY_TASK_MIN", "0", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    EXPECT_EQ(run_with_env("SLURM_ARRAY_TASK_ID", "2", run + "extract").exit_code, 0);
    unsetenv("SLURM_ARRAY_TASK_MIN");
    unsetenv("SLURM_ARRAY_TASK_COUNT");
    const CliResult killed =
        run_with_env("RADPROBE_TEST_EXTRACT_KILL_AFTER_SHARD", "1", run + "extract --slice 1/3");
    EXPECT_NE(killed.exit_code, 0) << "the slice was not killed";
    // The merge of the stores (the shards the killed slice left), then the cells.
    const CliResult stores_merge = run_cli(run + "extract");
    ASSERT_EQ(stores_merge.exit_code, 0) << stores_merge.err;
    const CliResult c0 = run_cli(run + "cells --slice 0/2");
    ASSERT_EQ(c0.exit_code, 0) << c0.err << c0.out;
    EXPECT_TRUE(fs::exists(out / "study.sqlite.cells" / "0-of-2.sqlite"));
    EXPECT_FALSE(fs::exists(out / "study.sqlite"));  // no task writes the study's database
    const CliResult c1 = run_with_env("RADPROBE_RUN_KILL_AT", "1", run + "cells --slice 1/2");
    EXPECT_NE(c1.exit_code, 0) << "the cells task was not killed";
    const CliResult merged = run_cli("run " + q(cfg) + " --threads 1 --stage merge");
    ASSERT_EQ(merged.exit_code, 0) << merged.err << merged.out;
    EXPECT_NE(merged.out.find("merge: "), std::string::npos) << merged.out;
    // A cells task refuses stores that are not complete, and --slice needs a sliced stage.
    EXPECT_EQ(run_cli(run + "merge --slice 0/2").exit_code, 2);
    expect_same_as_one_process(cfg, out, tmp / "split", false);
}

// tests/slurm/slurm_local.sh: a single-node cluster in `state` for the test's lifetime.
class LocalSlurm {
public:
    explicit LocalSlurm(const fs::path& state) : state_(state) {
        const fs::path script =
            fs::path(RADPROBE_SOURCE_DIR) / "tests" / "slurm" / "slurm_local.sh";
        script_ = script.string();
        ok_ = std::system(("'" + script_ + "' install >/dev/null && '" + script_ + "' up '" +
                           state_.string() + "' >/dev/null")
                              .c_str()) == 0;
        setenv("SLURM_CONF", (state_ / "slurm.conf").c_str(), 1);
    }
    ~LocalSlurm() {
        std::system(("'" + script_ + "' down '" + state_.string() + "' >/dev/null").c_str());
        unsetenv("SLURM_CONF");
    }
    bool ok() const { return ok_; }

    // Waits until no job is pending or running; false after `seconds`.
    static bool wait_idle(int seconds) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        while (std::chrono::steady_clock::now() < end) {
            std::string out;
            if (FILE* p = popen("squeue -h -o %i 2>&1", "r")) {
                char buf[256];
                while (fgets(buf, sizeof buf, p)) {
                    out += buf;
                }
                if (pclose(p) == 0 && out.empty()) {
                    return true;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
        return false;
    }

private:
    fs::path state_;
    std::string script_;
    bool ok_ = false;
};

// The job state Slurm reports for job `id` ("COMPLETED", "FAILED" ...).
std::string job_state(const std::string& id) {
    std::string out;
    if (FILE* p = popen(("scontrol -o show job " + id + " 2>&1").c_str(), "r")) {
        char buf[4096];
        while (fgets(buf, sizeof buf, p)) {
            out += buf;
        }
        pclose(p);
    }
    const auto at = out.find("JobState=");
    return at == std::string::npos ? out : out.substr(at + 9, out.find(' ', at) - at - 9);
}

TEST(Slurm, TheStudyAsArrayJobsOnARealSlurmEqualsOneProcess) {
    TempDir tmp;
    const fs::path cfg = write_study(tmp.path());
    const fs::path out = tmp / "out";
    LocalSlurm slurm(tmp / "slurm");
    ASSERT_TRUE(slurm.ok()) << "tests/slurm/slurm_local.sh could not start Slurm";
    // The plan first: nothing written.
    const CliResult plan = run_cli("run " + q(cfg) + " --slurm --dry-run --max-tasks 4");
    ASSERT_EQ(plan.exit_code, 0) << plan.err;
    EXPECT_NE(plan.out.find("extract        array of 4 tasks (8 shards"), std::string::npos)
        << plan.out;
    EXPECT_FALSE(fs::exists(out / "study.sqlite.slurm"));
    // Every task gets the kill hook (sbatch passes the environment on); the first process to
    // complete a shard 1, the extraction task owning it, dies there; the stores' merge finishes
    // the shards it left.
    const std::string once = "1@" + (tmp / "killed-once").string();
    const CliResult submitted =
        run_with_env("RADPROBE_TEST_EXTRACT_KILL_AFTER_SHARD", once.c_str(),
                     "run " + q(cfg) + " --slurm --max-tasks 4 --cpus-per-task 1");
    ASSERT_EQ(submitted.exit_code, 0) << submitted.err << submitted.out;
    std::vector<std::string> ids;
    for (auto at = submitted.out.find(": job "); at != std::string::npos;
         at = submitted.out.find(": job ", at + 1)) {
        ids.push_back(submitted.out.substr(at + 6, submitted.out.find(' ', at + 6) - at - 6));
    }
    ASSERT_EQ(ids.size(), 4u) << submitted.out;  // extract, extract-merge, cells, merge
    ASSERT_TRUE(LocalSlurm::wait_idle(900)) << "the study's jobs did not finish";
    EXPECT_TRUE(fs::exists(tmp / "killed-once")) << "no task was killed";
    EXPECT_EQ(job_state(ids[1]), "COMPLETED");
    EXPECT_EQ(job_state(ids[2]), "COMPLETED");
    EXPECT_EQ(job_state(ids[3]), "COMPLETED")
        << read_text(out / "study.sqlite.slurm" / "logs" / ("merge-" + ids[3] + ".out"));
    ASSERT_TRUE(fs::exists(out / "study.sqlite"));
    EXPECT_TRUE(fs::exists(out / "report.md"));
    // Re-submitted: everything is done, only the merge (comparisons, report) runs.
    const CliResult again = run_cli("run " + q(cfg) + " --slurm --max-tasks 4 --cpus-per-task 1");
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("extract        nothing to do"), std::string::npos) << again.out;
    EXPECT_NE(again.out.find("cells          nothing to do"), std::string::npos) << again.out;
    EXPECT_NE(again.out.find("submitted merge"), std::string::npos) << again.out;
    ASSERT_TRUE(LocalSlurm::wait_idle(300));
    expect_same_as_one_process(cfg, out, tmp / "slurm-out", true);
}

}  // namespace
}  // namespace radprobe::test
