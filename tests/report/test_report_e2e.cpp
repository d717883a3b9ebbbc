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

// A task whose runs mix classification and segmentation (like the demo's pneumothorax): many
// metric columns. At 1400 px no section may be wider than its card: the task gets one table per
// kind, and a table that is still too wide scrolls inside its card.
fs::path write_mixed_task_db(const fs::path& path) {
    using namespace radprobe::results;
    ResultsDb db = ResultsDb::open(path);
    auto metric = [](const std::string& name, double v) {
        Metric m;
        m.name = name;
        m.value = v;
        m.ci_lo = v - 0.0312;
        m.ci_hi = v + 0.0287;
        m.ci_method = "bootstrap-percentile";
        m.n = 240;
        return m;
    };
    const std::vector<std::string> cls_metrics = {"auroc", "ap",          "brier",
                                                  "ece",   "sensitivity", "specificity"};
    const std::vector<std::string> seg_metrics = {"dice", "dice_positive", "iou", "hd95"};
    for (int k = 0; k < 6; ++k) {
        const bool seg = k >= 3;
        RunSpec spec;
        spec.config_hash = "mixed-" + std::to_string(k);
        spec.encoder = "a-rather-long-encoder-folder-name-" + std::to_string(k);
        spec.task = "pneumothorax";
        spec.adaptation = seg ? "segment:multiscale" : "linear_probe";
        spec.pooling = seg ? "patch" : "cls+mean";
        spec.layers = "9,10,11,12";
        const std::int64_t run = db.begin_run(spec);
        std::vector<Metric> metrics;
        for (const auto& name : seg ? seg_metrics : cls_metrics) {
            metrics.push_back(metric(name, 0.612345 + 0.01 * k));
        }
        db.record_metrics(run, metrics);
        db.finish_run(run);
    }
    return path;
}

TEST(ReportLayout, WideTaskTablesStayInsideTheirCardAt1400px) {
    ASSERT_TRUE(fs::exists("/usr/bin/chromium")) << "Debian chromium is required (setup.sh)";
    const fs::path out_dir = fs::path(BENCH_E2E_OUT_DIR) / "wide";
    fs::create_directories(out_dir);
    TempDir tmp;
    const fs::path db = write_mixed_task_db(tmp / "results.sqlite");
    const fs::path html = out_dir / "report.html";
    const CliResult r = run_cli("report " + q(db) + " --out " + q(html));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string page = read_file_text(html);
    // One leaderboard per kind: the classification table has no Dice column.
    EXPECT_EQ(count(page, "<table class=\"leaderboard\">"), 2u);
    const auto cls_at = page.find("<h3>classification</h3>");
    const auto seg_at = page.find("<h3>segmentation</h3>");
    ASSERT_NE(cls_at, std::string::npos);
    ASSERT_NE(seg_at, std::string::npos);
    EXPECT_EQ(page.substr(cls_at, seg_at - cls_at).find("<th>dice"), std::string::npos);
    EXPECT_EQ(page.substr(seg_at).find("<th>auroc"), std::string::npos);

    // Measured in the browser at the screenshot's width: no section is wider than its card and
    // the page does not scroll sideways.
    const std::string probe = R"(<script>
window.addEventListener('load', function () {
  var bad = [];
  document.querySelectorAll('section').forEach(function (s) {
    if (s.scrollWidth > s.clientWidth + 1) bad.push(s.id + ':' + s.scrollWidth + '>' + s.clientWidth);
  });
  var page = document.documentElement;
  if (page.scrollWidth > window.innerWidth + 1) bad.push('page:' + page.scrollWidth);
  document.body.setAttribute('data-overflow', bad.length ? bad.join(',') : 'none');
});
</script>)";
    const auto body_end = page.rfind("</body>");
    ASSERT_NE(body_end, std::string::npos);
    page.insert(body_end, probe);
    const fs::path probed = out_dir / "report.probe.html";
    write_file_atomic(probed, page);
    TempDir profile;
    const CliResult dom = chromium(
        "--virtual-time-budget=10000 --window-size=1400,3000 "
        "--dump-dom 'file://" +
            probed.string() + "'",
        profile.path());
    ASSERT_EQ(dom.exit_code, 0) << dom.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(dom.out, m, std::regex("data-overflow=\"([^\"]*)\"")))
        << "the probe did not run";
    EXPECT_EQ(m[1].str(), "none") << "sections wider than their card at 1400 px";

    TempDir profile2;
    const fs::path png = out_dir / "report.png";
    fs::remove(png);
    const CliResult shot = chromium(
        "--virtual-time-budget=10000 --hide-scrollbars "
        "--window-size=1400,1200 --screenshot=" +
            q(png) + " 'file://" + html.string() + "'",
        profile2.path());
    ASSERT_EQ(shot.exit_code, 0) << shot.err;
    EXPECT_TRUE(fs::exists(png));
}

}  // namespace
}  // namespace radprobe::test
