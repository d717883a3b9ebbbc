// Classification metrics, DeLong, distributions and p-value adjustment against goldens from
// R pROC and scikit-learn (tests/golden/eval/make_goldens.py), plus hand-computed cases and
// error handling.
//
// Tolerances: AUC, average precision, Brier, DeLong variance, CI bounds, z, t, df: 1e-9
// absolute (the references print 17 digits; differences are summation order only).
// p-values: 1e-9 absolute. Distribution functions: 1e-12 relative.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "eval_goldens.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {
namespace {

using test::BinaryDataset;
using test::Goldens;

constexpr double kTol = 1e-9;

const Goldens& proc() {
    static const Goldens g("proc_goldens.csv");
    return g;
}
const Goldens& sklearn() {
    static const Goldens g("sklearn_goldens.csv");
    return g;
}

class BinaryGoldens : public ::testing::TestWithParam<std::string> {};

TEST_P(BinaryGoldens, AurocMatchesProcAndSklearn) {
    const auto& name = GetParam();
    const BinaryDataset d = test::load_dataset(name);
    EXPECT_NEAR(auroc(d.labels, d.score1), proc().at(name, "auc_score1"), kTol);
    EXPECT_NEAR(auroc(d.labels, d.score2), proc().at(name, "auc_score2"), kTol);
    EXPECT_NEAR(auroc(d.labels, d.score1), sklearn().at(name, "roc_auc_score1"), kTol);
    EXPECT_NEAR(auroc(d.labels, d.score2), sklearn().at(name, "roc_auc_score2"), kTol);
}

TEST_P(BinaryGoldens, DelongVarianceAndCiMatchProc) {
    const auto& name = GetParam();
    const BinaryDataset d = test::load_dataset(name);
    for (const std::string tag : {"score1", "score2"}) {
        const auto& s = tag == "score1" ? d.score1 : d.score2;
        const DelongAuc r = delong_auc(d.labels, s, 0.95);
        EXPECT_NEAR(r.auc, proc().at(name, "auc_" + tag), kTol) << tag;
        EXPECT_NEAR(r.variance, proc().at(name, "delong_var_" + tag), kTol) << tag;
        // Relative check too: variances of the large set are ~1e-6.
        const double v = proc().at(name, "delong_var_" + tag);
        if (v > 0) {
            EXPECT_NEAR(r.variance / v, 1.0, 1e-9) << tag;
        }
        EXPECT_NEAR(r.ci_lo, proc().at(name, "delong_ci_lo_" + tag), kTol) << tag;
        EXPECT_NEAR(r.ci_hi, proc().at(name, "delong_ci_hi_" + tag), kTol) << tag;
        const DelongAuc r90 = delong_auc(d.labels, s, 0.9);
        EXPECT_NEAR(r90.ci_lo, proc().at(name, "delong_ci90_lo_" + tag), kTol) << tag;
        EXPECT_NEAR(r90.ci_hi, proc().at(name, "delong_ci90_hi_" + tag), kTol) << tag;
    }
}

TEST_P(BinaryGoldens, PairedDelongTestMatchesProcRocTest) {
    const auto& name = GetParam();
    const BinaryDataset d = test::load_dataset(name);
    const AucComparison t = delong_paired_test(d.labels, d.score1, d.score2, 0.95);
    EXPECT_NEAR(t.statistic, proc().at(name, "paired_z"), kTol);
    EXPECT_NEAR(t.p, proc().at(name, "paired_p"), kTol);
    EXPECT_NEAR(t.ci_lo, proc().at(name, "paired_ci_lo"), kTol);
    EXPECT_NEAR(t.ci_hi, proc().at(name, "paired_ci_hi"), kTol);
    EXPECT_NEAR(t.difference, proc().at(name, "auc_score1") - proc().at(name, "auc_score2"), kTol);
}

TEST_P(BinaryGoldens, AveragePrecisionBrierAndThresholdMetricsMatchSklearn) {
    const auto& name = GetParam();
    const BinaryDataset d = test::load_dataset(name);
    EXPECT_NEAR(average_precision(d.labels, d.score1),
                sklearn().at(name, "average_precision_score1"), kTol);
    EXPECT_NEAR(average_precision(d.labels, d.score2),
                sklearn().at(name, "average_precision_score2"), kTol);
    EXPECT_NEAR(brier_score(d.labels, d.prob), sklearn().at(name, "brier_prob"), kTol);
    const OperatingPoint op = at_threshold(d.labels, d.score1, sklearn().at(name, "threshold"));
    EXPECT_NEAR(op.f1, sklearn().at(name, "f1_at_threshold"), kTol);
    EXPECT_NEAR(op.balanced_accuracy, sklearn().at(name, "balanced_accuracy_at_threshold"), kTol);
    EXPECT_NEAR(op.sensitivity, sklearn().at(name, "sensitivity_at_threshold"), kTol);
    EXPECT_NEAR(op.specificity, sklearn().at(name, "specificity_at_threshold"), kTol);
}

INSTANTIATE_TEST_SUITE_P(Datasets, BinaryGoldens,
                         ::testing::ValuesIn(test::binary_dataset_names()));

TEST(Goldens, LargeDatasetRegeneratesExactlyAsThePythonScript) {
    const BinaryDataset d = test::large_dataset();
    double pos = 0.0;
    double sum2 = 0.0;
    for (std::size_t i = 0; i < d.labels.size(); ++i) {
        pos += d.labels[i];
        sum2 += d.score2[i];
    }
    EXPECT_EQ(pos, sklearn().at("large", "n_pos"));
    EXPECT_EQ(sum2, sklearn().at("large", "sum_score2"));
}

TEST(Goldens, UnpairedDelongTestMatchesProcRocTest) {
    for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
             {"ties", "imbalance"}, {"tiny", "continuous"}, {"continuous", "large"}}) {
        const BinaryDataset da = test::load_dataset(a);
        const BinaryDataset db = test::load_dataset(b);
        const AucComparison t = delong_unpaired_test(da.labels, da.score1, db.labels, db.score2);
        const std::string key = a + "_vs_" + b;
        EXPECT_NEAR(t.statistic, proc().at(key, "unpaired_t"), kTol) << key;
        EXPECT_NEAR(t.df, proc().at(key, "unpaired_df"), 1e-9 * proc().at(key, "unpaired_df"))
            << key;
        EXPECT_NEAR(t.p, proc().at(key, "unpaired_p"), kTol) << key;
        EXPECT_LT(t.ci_lo, t.difference);
        EXPECT_GT(t.ci_hi, t.difference);
    }
}

TEST(Goldens, MultilabelPerLabelMacroMicroMatchSklearn) {
    const CsvTable t = CsvTable::read(test::golden_dir() / "data_multilabel.csv");
    const std::size_t num_labels = 3;
    std::vector<double> labels, scores;
    std::vector<std::vector<double>> ys, ss;
    for (std::size_t l = 0; l < num_labels; ++l) {
        ys.push_back(t.numeric_column("y" + std::to_string(l)));
        ss.push_back(t.numeric_column("s" + std::to_string(l)));
    }
    for (std::size_t i = 0; i < t.num_rows(); ++i) {
        for (std::size_t l = 0; l < num_labels; ++l) {
            labels.push_back(ys[l][i]);
            scores.push_back(ss[l][i]);
        }
    }
    const auto m = multilabel_metrics(labels, scores, {"a", "b", "c"});
    const Goldens& g = sklearn();
    for (std::size_t l = 0; l < num_labels; ++l) {
        ASSERT_TRUE(m.labels[l].auroc.has_value());
        EXPECT_NEAR(*m.labels[l].auroc, g.at("multilabel", "roc_auc_label" + std::to_string(l)),
                    kTol);
        EXPECT_NEAR(*m.labels[l].average_precision,
                    g.at("multilabel", "average_precision_label" + std::to_string(l)), kTol);
    }
    EXPECT_NEAR(*m.macro_auroc, g.at("multilabel", "roc_auc_macro"), kTol);
    EXPECT_NEAR(*m.micro_auroc, g.at("multilabel", "roc_auc_micro"), kTol);
    EXPECT_NEAR(*m.macro_average_precision, g.at("multilabel", "average_precision_macro"), kTol);
    EXPECT_NEAR(*m.micro_average_precision, g.at("multilabel", "average_precision_micro"), kTol);
    EXPECT_EQ(m.labels_defined, 3u);
}

TEST(Goldens, BenjaminiHochbergAndHolmMatchRPAdjust) {
    std::vector<double> p;
    for (int i = 0; proc().has("p_values", "p_" + std::to_string(i)); ++i) {
        p.push_back(proc().at("p_values", "p_" + std::to_string(i)));
    }
    ASSERT_EQ(p.size(), 12u);
    const auto bh = benjamini_hochberg(p);
    const auto ho = holm(p);
    for (std::size_t i = 0; i < p.size(); ++i) {
        EXPECT_NEAR(bh[i], proc().at("p_values", "bh_" + std::to_string(i)), 1e-15) << i;
        EXPECT_NEAR(ho[i], proc().at("p_values", "holm_" + std::to_string(i)), 1e-15) << i;
    }
}

TEST(Goldens, DistributionFunctionsMatchR) {
    for (int i = 0; proc().has("dist", "qnorm_p_" + std::to_string(i)); ++i) {
        const double p = proc().at("dist", "qnorm_p_" + std::to_string(i));
        const double q = proc().at("dist", "qnorm_" + std::to_string(i));
        EXPECT_NEAR(normal_quantile(p), q, 1e-12 * std::max(1.0, std::abs(q))) << p;
        EXPECT_NEAR(normal_cdf(q), p, 1e-12 * p) << q;
    }
    for (int i = 0; proc().has("dist", "pt_" + std::to_string(i)); ++i) {
        const std::string k = std::to_string(i);
        const double t = proc().at("dist", "pt_t_" + k);
        const double df = proc().at("dist", "pt_df_" + k);
        const double p = proc().at("dist", "pt_" + k);
        EXPECT_NEAR(student_t_cdf(t, df), p, 1e-12 * p) << t << " " << df;
        const double q = proc().at("dist", "qt975_" + k);
        EXPECT_NEAR(student_t_quantile(0.975, df), q, 1e-10 * q) << df;
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases
// ---------------------------------------------------------------------------------------------

TEST(Classification, AurocCountsTiesAsOneHalf) {
    // Pairs (pos, neg): (0.8,0.2)=1 (0.8,0.5)=1 (0.5,0.2)=1 (0.5,0.5)=0.5 -> 3.5/4.
    const std::vector<double> y = {1, 0, 1, 0};
    const std::vector<double> s = {0.8, 0.2, 0.5, 0.5};
    EXPECT_DOUBLE_EQ(auroc(y, s), 3.5 / 4.0);
    // Reversed scores give 1 − AUC: no silent flipping to >= 0.5.
    const std::vector<double> r = {-0.8, -0.2, -0.5, -0.5};
    EXPECT_DOUBLE_EQ(auroc(y, r), 0.5 / 4.0);
}

TEST(Classification, OperatingPointsByHand) {
    // scores: pos 0.9 0.7 0.4, neg 0.8 0.3 0.2 0.1
    const std::vector<double> y = {1, 1, 1, 0, 0, 0, 0};
    const std::vector<double> s = {0.9, 0.7, 0.4, 0.8, 0.3, 0.2, 0.1};
    const OperatingPoint t = at_threshold(y, s, 0.5);  // predicted +: 0.9 0.7 0.8
    EXPECT_EQ(t.tp, 2u);
    EXPECT_EQ(t.fp, 1u);
    EXPECT_EQ(t.tn, 3u);
    EXPECT_EQ(t.fn, 1u);
    EXPECT_DOUBLE_EQ(t.sensitivity, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(t.specificity, 0.75);
    EXPECT_DOUBLE_EQ(*t.ppv, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(*t.npv, 0.75);
    EXPECT_DOUBLE_EQ(t.f1, 4.0 / 6.0);
    EXPECT_DOUBLE_EQ(t.balanced_accuracy, (2.0 / 3.0 + 0.75) / 2.0);
    // Threshold equal to a score counts that sample as positive.
    EXPECT_EQ(at_threshold(y, s, 0.4).tp, 3u);
    // Spec >= 0.75 allows at most one false positive: the lowest such threshold is 0.4
    // (predicted +: 0.9 0.8 0.7 0.4 -> tp 3, fp 1).
    const OperatingPoint sp = at_specificity(y, s, 0.75);
    EXPECT_DOUBLE_EQ(sp.threshold, 0.4);
    EXPECT_DOUBLE_EQ(sp.sensitivity, 1.0);
    EXPECT_DOUBLE_EQ(sp.specificity, 0.75);
    // Spec >= 0.8 allows no false positive.
    EXPECT_DOUBLE_EQ(at_specificity(y, s, 0.8).threshold, 0.9);
    // Spec 1.0: only 0.9 is above every negative.
    EXPECT_DOUBLE_EQ(at_specificity(y, s, 1.0).threshold, 0.9);
    // Youden: J(0.9)=1/3, J(0.8)=1/3-1/4, J(0.7)=2/3-1/4, J(0.4)=1-1/4=0.75 (best), J(0.3)=0.5
    const OperatingPoint yj = youden_point(y, s);
    EXPECT_DOUBLE_EQ(yj.threshold, 0.4);
    EXPECT_DOUBLE_EQ(yj.youden_j, 0.75);
    // No predicted positive -> ppv undefined, not 0.
    EXPECT_FALSE(at_threshold(y, s, 2.0).ppv.has_value());
}

TEST(Classification, ExpectedCalibrationErrorByHand) {
    // 4 bins. Bin 0 [0,.25): p .1 .2, y 0 1 -> |0.5-0.15|*2 = 0.7
    // Bin 2 [.5,.75): p .6, y 1 -> 0.4.  Bin 3 [.75,1]: p .8 1.0, y 1 1 -> |1-.9|*2 = 0.2
    const std::vector<double> y = {0, 1, 1, 1, 1};
    const std::vector<double> p = {0.1, 0.2, 0.6, 0.8, 1.0};
    EXPECT_NEAR(expected_calibration_error(y, p, 4), (0.7 + 0.4 + 0.2) / 5.0, 1e-15);
    // Perfectly calibrated in every bin -> 0.
    EXPECT_DOUBLE_EQ(
        expected_calibration_error(std::vector<double>{0, 1}, std::vector<double>{0.0, 1.0}, 10),
        0.0);
}

TEST(Classification, MultilabelReportsSingleClassLabelsAsUndefined) {
    // 4 samples × 2 labels; label "b" is always 0.
    const std::vector<double> y = {1, 0, 0, 0, 1, 0, 0, 0};
    const std::vector<double> s = {0.9, 0.1, 0.2, 0.3, 0.8, 0.5, 0.4, 0.2};
    const auto m = multilabel_metrics(y, s, {"a", "b"});
    ASSERT_TRUE(m.labels[0].auroc.has_value());
    EXPECT_DOUBLE_EQ(*m.labels[0].auroc, 1.0);
    EXPECT_FALSE(m.labels[1].auroc.has_value());
    EXPECT_FALSE(m.labels[1].average_precision.has_value());
    EXPECT_EQ(m.labels[1].undefined_reason, "no positive sample");
    EXPECT_EQ(m.labels_defined, 1u);
    EXPECT_DOUBLE_EQ(*m.macro_auroc, 1.0);  // mean over defined labels only
    ASSERT_TRUE(m.micro_auroc.has_value());
}

TEST(Classification, DelongFastFormMatchesQuadraticDefinition) {
    // DeLong (1988) from the O(m·n) kernel, against the Sun & Xu midrank form.
    const test::BinaryDataset d = test::load_dataset("ties");
    std::vector<double> x, yv;
    for (std::size_t i = 0; i < d.labels.size(); ++i) {
        (d.labels[i] != 0 ? x : yv).push_back(d.score1[i]);
    }
    const double m = static_cast<double>(x.size());
    const double n = static_cast<double>(yv.size());
    std::vector<double> v10(x.size(), 0.0), v01(yv.size(), 0.0);
    double auc = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        for (std::size_t j = 0; j < yv.size(); ++j) {
            const double psi = x[i] > yv[j] ? 1.0 : (x[i] == yv[j] ? 0.5 : 0.0);
            v10[i] += psi / n;
            v01[j] += psi / m;
            auc += psi / (m * n);
        }
    }
    double s10 = 0.0, s01 = 0.0;
    for (double v : v10)
        s10 += (v - auc) * (v - auc);
    for (double v : v01)
        s01 += (v - auc) * (v - auc);
    const double var = s10 / (m - 1) / m + s01 / (n - 1) / n;
    const DelongAuc r = delong_auc(d.labels, d.score1);
    EXPECT_NEAR(r.auc, auc, 1e-14);
    EXPECT_NEAR(r.variance, var, 1e-14);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

TEST(Classification, BadInputsGiveClearErrors) {
    const std::vector<double> y = {1, 0, 1};
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    EXPECT_NE(error_of([&] {
                  auroc(y, std::vector<double>{0.1, nan, 0.3});
              }).find("score at index 1 is nan"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  auroc(y, std::vector<double>{inf, 0.2, 0.3});
              }).find("score at index 0 is inf"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  auroc(std::vector<double>{1, 2, 0}, std::vector<double>{1, 2, 3});
              }).find("label at index 1 is 2 (labels must be 0 or 1)"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  auroc(std::vector<double>{1, 0.5}, std::vector<double>{1, 2});
              }).find("label at index 1 is 0.5"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  auroc(y, std::vector<double>{0.1, 0.2});
              }).find("3 labels but 2 scores"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  auroc(std::vector<double>{1, 1}, std::vector<double>{0.1, 0.2});
              }).find("2 positive(s) and 0 negative(s)"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  delong_auc(std::vector<double>{1, 0, 0}, std::vector<double>{1, 2, 3});
              }).find("at least 2 positive(s)"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  brier_score(y, std::vector<double>{0.1, 1.5, 0.3});
              }).find("probability at index 1 is 1.5"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  benjamini_hochberg(std::vector<double>{0.1, nan});
              }).find("p-value at index 1"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  average_precision(std::vector<double>{0, 0}, std::vector<double>{1, 2});
              }).find("no positive"),
              std::string::npos);
}

}  // namespace
}  // namespace radprobe::eval
