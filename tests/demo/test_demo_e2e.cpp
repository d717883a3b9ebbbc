// `radprobe demo --quick` end to end: every adaptation and analysis the demo promises is a
// completed run in results.sqlite, the report renders every figure in headless Chromium, and a
// second demo in the same folder recomputes nothing.

#include <sqlite3.h>

#include <cstdio>
#include <regex>
#include <set>

#include "radprobe/core/files.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {
namespace fs = std::filesystem;

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

/// The first row of `sql` (three numbers: value, ci_lo, ci_hi) with text parameters ?1.., or
/// empty when there is none.
std::vector<double> first_triple(const fs::path& db_path, const char* sql,
                                 const std::vector<std::string>& params) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK);
    for (std::size_t i = 0; i < params.size(); ++i) {
        sqlite3_bind_text(st, static_cast<int>(i + 1), params[i].c_str(), -1, SQLITE_TRANSIENT);
    }
    std::vector<double> out;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out = {sqlite3_column_double(st, 0), sqlite3_column_double(st, 1),
               sqlite3_column_double(st, 2)};
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/// One metric of a completed run: {value, ci_lo, ci_hi}, or empty when absent.
std::vector<double> metric(const fs::path& db, const std::string& adaptation,
                           const std::string& task, const std::string& name) {
    return first_triple(db,
                        "select m.value, m.ci_lo, m.ci_hi from metrics m join runs r on r.id = "
                        "m.run where r.status = 'completed' and r.adaptation = ?1 and r.task = "
                        "?2 and m.name = ?3 and m.subgroup = ''",
                        {adaptation, task, name});
}

/// The value of an analysis row (analysis, row_key, row_key2) and its CI.
std::vector<double> analysis_row(const fs::path& db, const std::string& analysis,
                                 const std::string& row_key, const std::string& row_key2) {
    return first_triple(db,
                        "select value, ci_lo, ci_hi from analysis where analysis = ?1 and "
                        "row_key = ?2 and row_key2 = ?3",
                        {analysis, row_key, row_key2});
}

TEST(Demo, QuickDemoRunsEverythingRendersAndResumes) {
    TempDir tmp;
    const fs::path out = tmp / "demo";
    const CliResult r = run_cli("demo --quick --n 240 --size 96 --out " + q(out));
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

    // Numbers a wrong implementation would miss (not only "completed"). DEMO_NUMBERS prints them.
    const fs::path db = out / "results.sqlite";
    const auto cnn = metric(db, "cnn_baseline", "cardiomegaly", "auroc");
    const auto unet = metric(db, "unet_baseline", "heart", "dice");
    const auto probe = metric(db, "linear", "cardiomegaly", "auroc");
    const auto drop =
        analysis_row(db, "shortcut", "baseline φ=0 − φ=0.9", "drop on tube-free positives");
    ASSERT_EQ(cnn.size(), 3u);
    ASSERT_EQ(unet.size(), 3u);
    ASSERT_EQ(probe.size(), 3u);
    ASSERT_EQ(drop.size(), 3u);
    std::printf(
        "DEMO_NUMBERS cnn %.3f [%.3f, %.3f] unet %.3f [%.3f, %.3f] probe %.3f [%.3f, "
        "%.3f] shortcut drop %.3f [%.3f, %.3f]\n",
        cnn[0], cnn[1], cnn[2], unet[0], unet[1], unet[2], probe[0], probe[1], probe[2], drop[0],
        drop[1], drop[2]);
    // The CNN trained from scratch separates cardiomegaly phantoms (an enlarged heart) far
    // better than chance: the lower end of its CI is above 0.5.
    EXPECT_GT(cnn[1], 0.5);
    EXPECT_GT(cnn[0], 0.8);
    // The U-Net finds the heart.
    EXPECT_GT(unet[0], 0.5);  // 0.69 after the quick demo's 2 epochs; a misplaced mask gives < 0.3

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
    const CliResult again = run_cli("demo --quick --n 240 --size 96 --out " + q(out));
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
