// Leaderboard export and report rendering without a browser: ordering, CSV/JSON/Markdown
// values, escaping of hostile strings, FDR significance marks, ROC against scikit-learn.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <regex>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/report/report.hpp"
#include "radprobe/results/results.hpp"
#include "results_fixtures.hpp"
#include "test_support.hpp"

namespace radprobe::test {
namespace {

using namespace radprobe::results;
using namespace radprobe::report;
using nlohmann::json;
using radprobe::eval::roc_curve;

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
        ++n;
    }
    return n;
}

TEST(Escaping, HtmlEscapesEveryMetacharacter) {
    EXPECT_EQ(html_escape(R"(<a href="x">'&'</a>)"),
              "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    EXPECT_EQ(html_escape("plain text · ok"), "plain text · ok");
}

TEST(Escaping, JsonForScriptHasNoMarkupButParsesBack) {
    const std::string hostile = "</script><script>alert(1)</script><!-- & -->";
    const std::string text = json_for_script(json{{"k", hostile}}.dump());
    EXPECT_EQ(text.find('<'), std::string::npos);
    EXPECT_EQ(text.find('>'), std::string::npos);
    EXPECT_EQ(text.find('&'), std::string::npos);
    EXPECT_EQ(json::parse(text)["k"], hostile);
}

TEST(RocCurve, MatchesScikitLearn) {
    const auto dir = source_dir() / "tests" / "golden" / "eval";
    const CsvTable data = CsvTable::read(dir / "data_roc.csv");
    const CsvTable golden = CsvTable::read(dir / "roc_sklearn.csv");
    const auto labels = data.numeric_column("label");
    const auto scores = data.numeric_column("score");
    const auto curve = roc_curve(labels, scores);
    const auto fpr = golden.numeric_column("fpr");
    const auto tpr = golden.numeric_column("tpr");
    const auto thr = golden.numeric_column("threshold");
    ASSERT_EQ(curve.size(), fpr.size());
    for (std::size_t i = 0; i < curve.size(); ++i) {
        EXPECT_NEAR(curve[i].fpr, fpr[i], 1e-12) << i;
        EXPECT_NEAR(curve[i].tpr, tpr[i], 1e-12) << i;
        if (i > 0) {
            EXPECT_EQ(curve[i].threshold, thr[i]) << i;
        }
    }
    EXPECT_TRUE(std::isinf(curve[0].threshold));
    EXPECT_THROW(roc_curve(std::vector<double>{1, 1}, std::vector<double>{0.1, 0.2}), InputError);
}

class ReportTest : public ::testing::Test {
protected:
    void SetUp() override { synthetic_ = make_synthetic_db(tmp_ / "results.sqlite"); }
    ResultsDb db() { return ResultsDb::open_existing(tmp_ / "results.sqlite"); }
    TempDir tmp_;
    SyntheticDb synthetic_;
};

TEST_F(ReportTest, LeaderboardCsvIsOrderedAndExact) {
    ResultsDb d = db();
    const auto rows = d.leaderboard();
    ASSERT_EQ(rows.size(), 8u) << "6 classification + 2 segmentation, not the running one";
    const CsvTable csv = CsvTable::parse(format_leaderboard(rows, TableFormat::kCsv), "csv");
    EXPECT_EQ(csv.num_rows(), 8u);
    const std::size_t task = csv.column("task");
    const std::size_t run = csv.column("run");
    const std::size_t auroc = csv.column("auroc");
    const std::size_t auroc_lo = csv.column("auroc_ci_lo");
    csv.column("dice");
    csv.column("ap");
    // Tasks in name order; within a task best first by the primary metric.
    double previous = INFINITY;
    for (std::size_t r = 0; r < 6; ++r) {
        EXPECT_EQ(csv.rows()[r][task], "cardiomegaly");
        const double v = std::stod(csv.rows()[r][auroc]);
        EXPECT_LE(v, previous);
        previous = v;
        // Values agree with the database to the 6 printed decimals.
        const std::int64_t id = std::stoll(csv.rows()[r][run]);
        for (const auto& m : d.metrics(id)) {
            if (m.name == "auroc" && m.subgroup.empty()) {
                EXPECT_NEAR(v, *m.value, 5e-7);
                EXPECT_NEAR(std::stod(csv.rows()[r][auroc_lo]), *m.ci_lo, 5e-7);
            }
        }
    }
    EXPECT_EQ(csv.rows()[6][task], "heart segmentation");
    EXPECT_EQ(csv.rows()[6][auroc], "");
}

RunFilter task_filter(const std::string& task) {
    RunFilter f;
    f.task = task;
    return f;
}

TEST_F(ReportTest, LeaderboardJsonTableAndMarkdown) {
    ResultsDb d = db();
    const json j = json::parse(
        format_leaderboard(d.leaderboard(task_filter("cardiomegaly")), TableFormat::kJson));
    ASSERT_EQ(j.size(), 6u);
    EXPECT_TRUE(j[0]["metrics"]["auroc"]["ci_lo"].is_number());
    EXPECT_EQ(j[0]["metrics"]["auroc"]["ci_method"], "delong");
    EXPECT_TRUE(j[0]["metrics"]["ap"]["ci_lo"].is_null());
    EXPECT_EQ(j[0]["metrics"]["auroc"]["n"], 200);

    const std::string table = format_leaderboard(d.leaderboard(), TableFormat::kTable);
    EXPECT_EQ(count_lines(table), 9);
    EXPECT_NE(table.find(" ["), std::string::npos);

    std::vector<LeaderboardRow> rows = d.leaderboard(task_filter("heart segmentation"));
    rows[0].run.spec.encoder = "a|b";
    const std::string md = format_leaderboard(rows, TableFormat::kMarkdown);
    EXPECT_NE(md.find("a\\|b"), std::string::npos);
    EXPECT_EQ(count_lines(md), 4);
    EXPECT_THROW(parse_table_format("xml"), UsageError);
}

TEST_F(ReportTest, HtmlEscapesUserStringsAndIsSelfContained) {
    ResultsDb d = db();
    const std::string html = render_report_html(d, {});
    // The hostile model name only ever appears escaped.
    EXPECT_EQ(html.find(kHostileModel), std::string::npos);
    EXPECT_GT(count(html, "&lt;script&gt;alert(1)&lt;/script&gt;"), 0u);
    EXPECT_EQ(html.find("<b>bold?</b>"), std::string::npos);
    EXPECT_NE(html.find("&lt;b&gt;bold?&lt;/b&gt; &amp; more"), std::string::npos);
    // Script elements: error hook, three libraries, plot data, renderer — nothing else.
    EXPECT_EQ(count(html, "<script"), 6u);
    EXPECT_EQ(count(html, "</script>"), 6u);
    // No network: nothing is loaded from elsewhere.
    EXPECT_EQ(html.find("src=\"http"), std::string::npos);
    EXPECT_EQ(html.find("sourceMappingURL"), std::string::npos);
    // Plot placeholders and specs.
    EXPECT_EQ(count(html, "<div class=\"plot\" id=\"plot-"),
              static_cast<std::size_t>(synthetic_.expected_plots));
    const auto start = html.find("id=\"radprobe-plots\">") + 20;
    const json plots = json::parse(html.substr(start, html.find("</script>", start) - start));
    EXPECT_EQ(plots.size(), static_cast<std::size_t>(synthetic_.expected_plots));
    // The running (killed) run is listed in the metadata, not in a leaderboard.
    EXPECT_NE(html.find("status-running"), std::string::npos);
    EXPECT_EQ(count(html, "<table class=\"leaderboard\">"), 2u);
}

TEST_F(ReportTest, SignificanceMarksFollowBenjaminiHochberg) {
    ResultsDb d = db();
    const std::string html = render_report_html(d, {});
    // Raw p 0.01, 0.04, 0.03, 0.5 -> BH 0.04, 0.0533, 0.0533, 0.5: one leaderboard mark.
    const std::regex mark(
        "<sup class=\"sig\" title=\"differs from run 1: BH-adjusted p = "
        "([0-9.]+)\">\\*</sup>");
    std::vector<std::string> marks;
    for (auto it = std::sregex_iterator(html.begin(), html.end(), mark);
         it != std::sregex_iterator(); ++it) {
        marks.push_back((*it)[1]);
    }
    ASSERT_EQ(marks.size(), 1u);
    EXPECT_EQ(marks[0], "0.0400");
    // With alpha = 0.06, the two 0.0533 cells are marked as well.
    ReportOptions loose;
    loose.alpha = 0.06;
    const std::string html2 = render_report_html(d, loose);
    std::size_t n = 0;
    for (auto it = std::sregex_iterator(html2.begin(), html2.end(), mark);
         it != std::sregex_iterator(); ++it) {
        ++n;
    }
    EXPECT_EQ(n, 3u);
}

TEST_F(ReportTest, MarkdownHasEveryTable) {
    ResultsDb d = db();
    const std::string md = render_report_markdown(d, {});
    EXPECT_NE(md.find("## Task: cardiomegaly"), std::string::npos);
    EXPECT_NE(md.find("## Task: heart segmentation"), std::string::npos);
    EXPECT_NE(md.find("## Subgroups"), std::string::npos);
    EXPECT_NE(md.find("## Perturbation panel"), std::string::npos);
    EXPECT_NE(md.find("## Runs"), std::string::npos);
    EXPECT_EQ(count(md, "| running |"), 1u);
}

TEST(ReportSegmentation, ShowsTheEmptyMaskConventionAndTheDiceOverPositives) {
    TempDir tmp;
    ResultsDb db = ResultsDb::open(tmp / "results.sqlite");
    RunSpec spec;
    spec.config_hash = "seg-ptx";
    spec.encoder = "enc";
    spec.task = "pneumothorax";
    spec.adaptation = "segment-linear";
    spec.seed = 1;
    const std::int64_t run = db.begin_run(spec);
    Metric dice;
    dice.name = "dice";
    dice.value = 0.775;
    dice.n = 60;
    dice.extra_json = R"J({"empty_convention":"both empty = 1 (perfect)","test_empty_truth":48})J";
    Metric positive;
    positive.name = "dice_positive";
    positive.value = 0.081;
    positive.ci_lo = 0.02;
    positive.ci_hi = 0.15;
    positive.n = 12;
    positive.extra_json = R"({"n_scored":60,"n_positive":12})";
    db.record_metrics(run, std::vector<Metric>{dice, positive});
    db.finish_run(run);
    const std::string html = render_report_html(db, {});
    EXPECT_NE(html.find("Empty-mask convention"), std::string::npos);
    EXPECT_NE(html.find("both empty = 1 (perfect)"), std::string::npos);
    EXPECT_NE(html.find("48 test images have an empty ground-truth mask"), std::string::npos);
    EXPECT_NE(html.find("over the 12 of 60 test images whose mask is non-empty"),
              std::string::npos);
    // Both Dice figures are leaderboard columns and forest plots.
    EXPECT_NE(html.find("dice_positive"), std::string::npos);
    EXPECT_NE(html.find("Dice over images with a non-empty mask with 95% CI"), std::string::npos);
    const std::string md = render_report_markdown(db, {});
    EXPECT_NE(md.find("dice_positive"), std::string::npos);
    EXPECT_NE(md.find("0.081"), std::string::npos);
}

// Subgroup analyses of two tasks from one encoder: each label names the analysed adaptation
// and the task, so the two are told apart without a "(run N)" suffix.
TEST(ReportAnalysisLabels, NameTheAnalysedAdaptationAndTheTask) {
    TempDir tmp;
    ResultsDb db = ResultsDb::open(tmp / "results.sqlite");
    std::vector<AnalysisRow> rows;
    for (const char* task : {"cardiomegaly", "effusion"}) {
        RunSpec src;
        src.config_hash = std::string("src-") + task;
        src.encoder = "enc";
        src.task = task;
        src.adaptation = "linear";
        src.pooling = "cls";
        src.seed = 1;
        const std::int64_t src_run = db.begin_run(src);
        Metric auroc;
        auroc.name = "auroc";
        auroc.value = 0.8;
        auroc.n = 50;
        db.record_metrics(src_run, std::vector<Metric>{auroc});
        db.finish_run(src_run);

        RunSpec a = src;
        a.config_hash = std::string("subgroups-") + task;
        a.adaptation = "analysis:subgroups";
        a.config_json = json{{"source_run", src.config_hash}}.dump();
        const std::int64_t run = db.begin_run(a);
        db.finish_run(run);
        for (const char* level : {"present", "absent", "gap"}) {
            AnalysisRow r;
            r.analysis = "subgroups";
            r.run = run;
            r.row_key = "chest_tube";
            r.row_key2 = level;
            r.column = "auroc";
            r.value = std::string(level) == "gap" ? 0.1 : 0.8;
            rows.push_back(r);
        }
    }
    db.record_analysis(rows);
    const std::string dot = "\xC2\xB7";
    for (const std::string& text : {render_report_html(db, {}), render_report_markdown(db, {})}) {
        for (const char* task : {"cardiomegaly", "effusion"}) {
            const std::string want =
                "enc " + dot + " subgroups of linear " + dot + " cls " + dot + " " + task;
            EXPECT_NE(text.find(want), std::string::npos) << want;
        }
        EXPECT_EQ(text.find("(run "), std::string::npos) << "a label needed the run id";
    }
}

TEST_F(ReportTest, MissingVegaIsAClearError) {
    ResultsDb d = db();
    ReportOptions options;
    options.vega_dir = tmp_ / "nowhere";
    try {
        render_report_html(d, options);
        FAIL() << "no error";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("nowhere"), std::string::npos) << e.what();
    }
    ::setenv("RADPROBE_VEGA_DIR", (tmp_ / "nowhere").c_str(), 1);
    try {
        find_vega_dir();
        ::unsetenv("RADPROBE_VEGA_DIR");
        FAIL() << "no error";
    } catch (const InputError& e) {
        ::unsetenv("RADPROBE_VEGA_DIR");
        EXPECT_NE(std::string(e.what()).find("RADPROBE_VEGA_DIR"), std::string::npos);
    }
    EXPECT_TRUE(std::filesystem::is_directory(find_vega_dir()));
}

}  // namespace
}  // namespace radprobe::test
