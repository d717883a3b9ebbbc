// Outputs on a full disk or a read-only file system (a small tmpfs mounted for the test, so the
// test needs root, as on the machines the test command runs on): `extract`, `run` and `report`
// stop with one line naming the path and the reason and exit 1; a read-only folder is refused
// before any work starts; after space is freed (the tmpfs remounted larger) the same command
// resumes to exactly what an undisturbed run writes.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "radprobe/core/files.hpp"
#include "radprobe/results/results.hpp"
#include "test_support.hpp"

namespace radprobe {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::contains;
using test::q;
using test::run_cli;
using test::TempDir;

// A tmpfs of `size` mounted on a fresh folder for the test's lifetime.
class Tmpfs {
public:
    explicit Tmpfs(const std::string& size) {
        mounted_ = ::geteuid() == 0 && std::system(("mount -t tmpfs -o size=" + size + " tmpfs " +
                                                    q(dir_.path()) + " 2>/dev/null")
                                                       .c_str()) == 0;
    }
    ~Tmpfs() {
        if (mounted_) {
            (void)std::system(("umount -l " + q(dir_.path())).c_str());
        }
    }
    Tmpfs(const Tmpfs&) = delete;
    Tmpfs& operator=(const Tmpfs&) = delete;
    bool mounted() const { return mounted_; }
    const fs::path& path() const { return dir_.path(); }
    /// Remounts with new options ("size=50m", "ro", "rw").
    void remount(const std::string& options) {
        ASSERT_EQ(std::system(("mount -o remount," + options + " " + q(dir_.path())).c_str()), 0);
    }

private:
    TempDir dir_;
    bool mounted_ = false;
};

#define REQUIRE_TMPFS(fs_)                                                                      \
    if (!(fs_).mounted()) {                                                                     \
        GTEST_SKIP() << "mounting a tmpfs needs root (the test command runs as root on the CI " \
                        "machines)";                                                            \
    }

std::size_t lines(const std::string& text) {
    std::size_t n = 0;
    for (char c : text) {
        n += c == '\n';
    }
    return n;
}

// Phantoms (outside the tmpfs) for every test.
fs::path phantoms(const fs::path& dir) {
    const CliResult r = run_cli("synth --out " + q(dir) + " --n 60 --size 64 --seed 4");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return dir / "manifest.csv";
}

std::string extract_args(const fs::path& manifest, const fs::path& out) {
    return "extract --model " + q(test::encoder_fixture("dinov2")) + " --manifest " + q(manifest) +
           " --pool cls,mean,patches --shard 16 --threads 2 --out " + q(out);
}

// The store's files (not its folder name's place) as bytes, by name.
std::string store_bytes(const fs::path& root, const std::string& file) {
    for (const auto& e : fs::directory_iterator(root)) {
        if (fs::exists(e.path() / file)) {
            return read_file_text(e.path() / file);
        }
    }
    ADD_FAILURE() << "no " << file << " under " << root;
    return "";
}

// A one-encoder, one-probe study writing under `out`.
std::string small_study(const fs::path& manifest, const fs::path& out) {
    return "data:\n  manifest: " + q(manifest) +
           "\nencoders:\n  - name: rv\n    random_vit: {seed: 1, hidden_size: 48, layers: 1, "
           "heads: 3, patch_size: 16, image_size: 64}\n    preprocessing: {size: 64}\ntasks:\n  "
           "classification: [cardiomegaly]\nadaptations:\n  linear: {}\noutput:\n  db: " +
           q(out / "results.sqlite") + "\n  store: " + q(out / "embeddings") + "\n";
}

TEST(DiskFull, ExtractStopsWithOneLineAndResumesOnceSpaceIsFreed) {
    Tmpfs disk("200k");
    REQUIRE_TMPFS(disk);
    TempDir tmp;
    const fs::path manifest = phantoms(tmp / "ph");
    const CliResult full = run_cli(extract_args(manifest, disk.path() / "store"));
    EXPECT_EQ(full.exit_code, 1) << full.out;
    EXPECT_EQ(lines(full.err), 1u) << full.err;
    EXPECT_TRUE(contains(full.err, "No space left on device")) << full.err;
    EXPECT_TRUE(contains(full.err, (disk.path() / "store").string())) << full.err;
    EXPECT_FALSE(contains(full.err, ".tmp.")) << "names the temporary, not the file: " << full.err;

    disk.remount("size=50m");
    const CliResult resumed = run_cli(extract_args(manifest, disk.path() / "store"));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    const CliResult reference = run_cli(extract_args(manifest, tmp / "reference"));
    ASSERT_EQ(reference.exit_code, 0) << reference.err;
    for (const char* file : {"cls.npy", "mean.npy", "patches.npy", "index.csv"}) {
        EXPECT_EQ(store_bytes(disk.path() / "store", file), store_bytes(tmp / "reference", file))
            << file;
    }
}

TEST(DiskFull, ReadOnlyOutputIsRefusedBeforeAnyWork) {
    Tmpfs disk("1m");
    REQUIRE_TMPFS(disk);
    TempDir tmp;
    const fs::path manifest = phantoms(tmp / "ph");
    disk.remount("ro");
    const CliResult extract = run_cli(extract_args(manifest, disk.path() / "store"));
    EXPECT_EQ(extract.exit_code, 1);
    EXPECT_EQ(lines(extract.err), 1u) << extract.err;
    EXPECT_TRUE(contains(extract.err, "embedding store folder " + (disk.path() / "store").string() +
                                          ": cannot create it"))
        << extract.err;
    EXPECT_TRUE(contains(extract.err, "Read-only file system")) << extract.err;
    EXPECT_FALSE(contains(extract.out, "images")) << "work started: " << extract.out;

    const fs::path cfg = tmp / "study.yaml";
    write_file_atomic(cfg, small_study(manifest, disk.path() / "out"));
    const CliResult run = run_cli("run " + q(cfg) + " --threads 2");
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(lines(run.err), 1u) << run.err;
    EXPECT_TRUE(contains(run.err, "results database folder " + (disk.path() / "out").string() +
                                      ": cannot create it (Read-only file system)"))
        << run.err;

    // A report into a read-only folder that exists: not writable.
    disk.remount("rw");
    fs::create_directories(disk.path() / "reports");
    disk.remount("ro");
    write_file_atomic(cfg, small_study(manifest, tmp / "out"));
    ASSERT_EQ(run_cli("run " + q(cfg) + " --threads 2").exit_code, 0);
    const CliResult report = run_cli("report " + q(tmp / "out" / "results.sqlite") +
                                     " --format md --out " + q(disk.path() / "reports" / "r.md"));
    EXPECT_EQ(report.exit_code, 1);
    EXPECT_EQ(lines(report.err), 1u) << report.err;
    EXPECT_TRUE(contains(report.err, "report folder " + (disk.path() / "reports").string() +
                                         ": not writable (Read-only file system)"))
        << report.err;
}

TEST(DiskFull, ReportOnAFullDiskLeavesNoFileAndARunResumes) {
    Tmpfs disk("600k");
    REQUIRE_TMPFS(disk);
    TempDir tmp;
    const fs::path manifest = phantoms(tmp / "ph");
    // A study whose store and database live on the small disk: it fills up during the run.
    const fs::path cfg = tmp / "study.yaml";
    write_file_atomic(
        cfg, "data:\n  manifest: " + q(manifest) +
                 "\nencoders:\n  - name: dino\n    path: " + q(test::encoder_fixture("dinov2")) +
                 "\ntasks:\n  classification: [cardiomegaly]\nadaptations:\n  "
                 "linear: {}\n  attention: {epochs: 2}\npooling: [cls, mean]\n"
                 "output:\n  db: " +
                 q(disk.path() / "results.sqlite") + "\n  store: " + q(disk.path() / "embeddings") +
                 "\n");
    const CliResult full = run_cli("run " + q(cfg) + " --threads 2 --quiet");
    EXPECT_EQ(full.exit_code, 1) << full.out;
    EXPECT_TRUE(contains(full.err + full.out, "No space left on device") ||
                contains(full.err + full.out, "database or disk is full"))
        << full.err << full.out;
    // The database is still readable.
    if (fs::exists(disk.path() / "results.sqlite")) {
        EXPECT_NO_THROW(results::ResultsDb::open_existing(disk.path() / "results.sqlite"));
    }
    disk.remount("size=50m");
    const CliResult resumed = run_cli("run " + q(cfg) + " --threads 2 --quiet");
    EXPECT_EQ(resumed.exit_code, 0) << resumed.err << resumed.out;
    results::ResultsDb db = results::ResultsDb::open_existing(disk.path() / "results.sqlite");
    EXPECT_EQ(db.leaderboard().size(), 3u);  // linear cls, linear mean, attention

    // The report does not fit a disk with 20 kB left: one line, no file, no temporary.
    Tmpfs small("20k");
    ASSERT_TRUE(small.mounted());
    const CliResult report = run_cli("report " + q(disk.path() / "results.sqlite") + " --out " +
                                     q(small.path() / "report.html"));
    EXPECT_EQ(report.exit_code, 1);
    EXPECT_EQ(lines(report.err), 1u) << report.err;
    EXPECT_TRUE(contains(report.err, "No space left on device")) << report.err;
    EXPECT_TRUE(contains(report.err, (small.path() / "report.html").string() + ": write failed"))
        << report.err;
    EXPECT_TRUE(fs::is_empty(small.path()));
}

}  // namespace
}  // namespace radprobe
