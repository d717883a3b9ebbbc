// `radprobe demo --quick` end to end: every adaptation and analysis the demo promises is a
// completed run in results.sqlite, the report renders every figure in headless Chromium, and a
// second demo in the same folder recomputes nothing.

#include <sqlite3.h>

#include <regex>
#include <set>

#include "radprobe/core/files.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {
namespace fs = std::filesystem;

std::string q(const fs::path& p) {
    return "'" + p.string() + "'";
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
        ++n;
    }
    return n;
}

/// "adaptation status" and "adaptation@encoder status" of every run in the database.
std::multiset<std::string> runs(const fs::path& db_path) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(
        sqlite3_prepare_v2(db, "select adaptation, status, encoder from runs", -1, &st, nullptr),
        SQLITE_OK);
    std::multiset<std::string> out;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const std::string adaptation = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        const std::string status = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
        const auto* enc = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
        const std::string encoder = enc ? enc : "";
        out.insert(adaptation + " " + status);
        out.insert(adaptation + "@" + encoder + " " + status);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

CliResult chromium(const std::string& args, const fs::path& profile) {
    TempDir tmp;
    const std::string cmd =
        "/usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
        "--disable-background-networking --disable-component-update --disable-sync "
        "--user-data-dir=" +
        q(profile) + " " + args + " >" + q(tmp / "out") + " 2>" + q(tmp / "err") + " </dev/null";
    const int status = std::system(cmd.c_str());
    CliResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_file_text(tmp / "out");
    r.err = read_file_text(tmp / "err");
    return r;
}

TEST(Demo, QuickDemoRunsEverythingRendersAndResumes) {
    TempDir tmp;
    const fs::path out = tmp / "demo";
    const CliResult r = run_cli("demo --quick --n 120 --size 96 --out " + q(out));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("report: "), std::string::npos) << r.out;
    ASSERT_TRUE(fs::exists(out / "results.sqlite"));
    ASSERT_TRUE(fs::exists(out / "demo.yaml"));

    const auto all = runs(out / "results.sqlite");
    for (const char* adaptation :
         {"linear", "knn", "attention", "segment-linear", "segment-multiscale", "cnn_baseline",
          "unet_baseline", "analysis:perturb", "analysis:lesions", "analysis:subgroups",
          "analysis:shortcut",
          // The panel and the lesion probe on the supervised baseline's own features too.
          "analysis:perturb@cnn-from-scratch:cardiomegaly",
          "analysis:lesions@cnn-from-scratch:cardiomegaly"}) {
        EXPECT_GE(all.count(std::string(adaptation) + " completed"), 1u) << adaptation;
    }
    for (const auto& run : all) {
        EXPECT_EQ(run.find(" failed"), std::string::npos) << run;
    }

    // The report: every figure rendered, no script error; a screenshot is kept.
    const fs::path html = out / "report.html";
    ASSERT_TRUE(fs::exists(html));
    const std::string source = read_file_text(html);
    for (const char* section : {"id=\"perturb\"", "id=\"subgroups\"", "Dice"}) {
        EXPECT_NE(source.find(section), std::string::npos) << section;
    }
    TempDir profile;
    const CliResult dom = chromium(
        "--virtual-time-budget=20000 --dump-dom 'file://" + html.string() + "'", profile.path());
    ASSERT_EQ(dom.exit_code, 0) << dom.err;
    const auto error_box = dom.out.find("id=\"radprobe-errors\"");
    EXPECT_EQ(error_box, std::string::npos) << dom.out.substr(error_box, 600);
    const std::regex rendered("data-plots-rendered=\"([0-9]+)\"");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(dom.out, m, rendered)) << "rendering did not finish";
    const std::regex svg("<svg [^>]*class=\"marks\"");
    const auto svgs = static_cast<int>(std::distance(
        std::sregex_iterator(dom.out.begin(), dom.out.end(), svg), std::sregex_iterator()));
    EXPECT_EQ(std::stoi(m[1]), svgs);
    EXPECT_GE(svgs, 6) << "leaderboard forest plots, ROC, Dice, perturbation heat map expected";
    EXPECT_GT(count(dom.out, "role-mark"), static_cast<std::size_t>(svgs));

    const fs::path shots = DEMO_E2E_OUT_DIR;
    fs::create_directories(shots);
    TempDir profile2;
    const CliResult shot = chromium(
        "--virtual-time-budget=20000 --hide-scrollbars "
        "--window-size=1400,4000 --screenshot=" +
            q(shots / "demo_report.png") + " 'file://" + html.string() + "'",
        profile2.path());
    EXPECT_EQ(shot.exit_code, 0) << shot.err;

    // A second demo in the same folder: everything is already in the database.
    const CliResult again = run_cli("demo --quick --n 120 --size 96 --out " + q(out));
    ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
    EXPECT_NE(again.out.find(" 0 runs completed"), std::string::npos) << again.out;
    EXPECT_EQ(runs(out / "results.sqlite"), all);
}

TEST(Demo, BadOptionsAreUsageErrors) {
    EXPECT_EQ(run_cli("demo --n 5 --out /tmp/never").exit_code, 2);
    EXPECT_EQ(run_cli("demo --model /nonexistent/dir --out /tmp/never").exit_code, 2);
}

}  // namespace
}  // namespace radprobe::test
