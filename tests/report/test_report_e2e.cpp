// `radprobe results` and `radprobe report` as a user runs them, and the HTML report opened in a
// real browser (headless Debian chromium): every figure rendered as SVG, no script error, the
// hostile model name shown as text; a screenshot is kept in the test's output folder.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <regex>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/files.hpp"
#include "results_fixtures.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

using nlohmann::json;
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

class BenchCli : public ::testing::Test {
protected:
    void SetUp() override { synthetic_ = make_synthetic_db(db_path()); }
    fs::path db_path() const { return tmp_ / "results.sqlite"; }
    TempDir tmp_;
    SyntheticDb synthetic_;
};

TEST_F(BenchCli, ResultsPrintsTheLeaderboard) {
    const CliResult table = run_cli("results " + q(db_path()));
    ASSERT_EQ(table.exit_code, 0) << table.err;
    EXPECT_EQ(count_lines(table.out), 9);  // header + 8 completed runs

    const CliResult csv = run_cli("results " + q(db_path()) + " --format csv --task cardiomegaly");
    ASSERT_EQ(csv.exit_code, 0) << csv.err;
    const CsvTable t = CsvTable::parse(csv.out, "stdout");
    EXPECT_EQ(t.num_rows(), 6u);

    const CliResult js =
        run_cli("results " + q(db_path()) + " --format json --model " + q(kHostileModel));
    ASSERT_EQ(js.exit_code, 0) << js.err;
    const json j = json::parse(js.out);
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0]["encoder"], kHostileModel);

    const CliResult md = run_cli("results " + q(db_path()) + " --format md --task nope");
    ASSERT_EQ(md.exit_code, 0) << md.err;
    EXPECT_EQ(count_lines(md.out), 2);  // header and rule only
}

TEST_F(BenchCli, ErrorsAreOneLineWithExitCodes) {
    const CliResult missing = run_cli("results " + q(tmp_ / "none.sqlite"));
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_EQ(count_lines(missing.err), 1);
    EXPECT_NE(missing.err.find("none.sqlite: no such file"), std::string::npos) << missing.err;

    const CliResult format = run_cli("results " + q(db_path()) + " --format xml");
    EXPECT_EQ(format.exit_code, 2);
    EXPECT_EQ(count_lines(format.err), 1);

    const CliResult no_out = run_cli("report " + q(db_path()));
    EXPECT_EQ(no_out.exit_code, 2);

    const CliResult vega = run_cli("report " + q(db_path()) + " --out " + q(tmp_ / "r.html") +
                                   " --vega-dir " + q(tmp_ / "nowhere"));
    EXPECT_EQ(vega.exit_code, 1);
    EXPECT_EQ(count_lines(vega.err), 1);
    EXPECT_NE(vega.err.find("nowhere"), std::string::npos) << vega.err;
    EXPECT_FALSE(fs::exists(tmp_ / "r.html"));
}

TEST_F(BenchCli, ReportMarkdownAndCsv) {
    const CliResult md =
        run_cli("report " + q(db_path()) + " --format md --out " + q(tmp_ / "report.md"));
    ASSERT_EQ(md.exit_code, 0) << md.err;
    const std::string text = read_file_text(tmp_ / "report.md");
    EXPECT_EQ(count(text, "## Task: "), 2u);
    const CliResult csv =
        run_cli("report " + q(db_path()) + " --format csv --out " + q(tmp_ / "board.csv"));
    ASSERT_EQ(csv.exit_code, 0) << csv.err;
    EXPECT_EQ(CsvTable::read(tmp_ / "board.csv").num_rows(), 8u);
}

TEST_F(BenchCli, HtmlReportRendersInChromium) {
    ASSERT_TRUE(fs::exists("/usr/bin/chromium")) << "Debian chromium is required (setup.sh)";
    const fs::path out_dir = BENCH_E2E_OUT_DIR;
    fs::create_directories(out_dir);
    const fs::path html = out_dir / "report.html";
    const CliResult r =
        run_cli("report " + q(db_path()) + " --out " + q(html) + " --title 'Synthetic benchmark'");
    ASSERT_EQ(r.exit_code, 0) << r.err;

    TempDir profile;
    const CliResult dom = chromium(
        "--virtual-time-budget=10000 --dump-dom 'file://" + html.string() + "'", profile.path());
    ASSERT_EQ(dom.exit_code, 0) << dom.err;
    write_file_atomic(out_dir / "report.dom.html", dom.out);

    // The error box (window.onerror, rejected promises, Vega errors) was never created.
    const auto error_box = dom.out.find("id=\"radprobe-errors\"");
    EXPECT_EQ(error_box, std::string::npos) << dom.out.substr(error_box, 600);
    const std::regex rendered("data-plots-rendered=\"([0-9]+)\"");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(dom.out, m, rendered)) << "rendering did not finish";
    EXPECT_EQ(std::stoi(m[1]), synthetic_.expected_plots);
    // vega-embed's SVG renderer: one <svg ... class="marks"> per figure.
    const std::regex svg("<svg [^>]*class=\"marks\"");
    const auto svgs = std::distance(std::sregex_iterator(dom.out.begin(), dom.out.end(), svg),
                                    std::sregex_iterator());
    EXPECT_EQ(svgs, synthetic_.expected_plots);
    // Each figure has drawn marks (paths / symbols / rects), not an empty canvas.
    EXPECT_GT(count(dom.out, "role-mark"), static_cast<std::size_t>(synthetic_.expected_plots));
    // The hostile name is text, in the tables and in the SVG labels, never an element.
    EXPECT_EQ(dom.out.find(kHostileModel), std::string::npos);
    EXPECT_GT(count(dom.out, "&lt;script&gt;alert(1)&lt;/script&gt;"), 2u);

    TempDir profile2;
    const fs::path png = out_dir / "report.png";
    fs::remove(png);
    const CliResult shot = chromium(
        "--virtual-time-budget=10000 --hide-scrollbars "
        "--window-size=1400,3000 --screenshot=" +
            q(png) + " 'file://" + html.string() + "'",
        profile2.path());
    ASSERT_EQ(shot.exit_code, 0) << shot.err;
    ASSERT_TRUE(fs::exists(png));
    EXPECT_GT(fs::file_size(png), 50000u) << "a near-empty screenshot";
}

}  // namespace
}  // namespace radprobe::test
