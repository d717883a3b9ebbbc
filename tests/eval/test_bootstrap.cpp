// Bootstrap: determinism across thread counts and seeds, resampling designs (stratified,
// clustered), the fast AUROC/mean paths against a brute-force generic statistic on the same
// resamples, and agreement with DeLong where both apply.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "eval_goldens.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

BootstrapOptions opts(std::size_t reps, std::uint64_t seed, CiMethod method, int threads = 0) {
    BootstrapOptions o;
    o.replicates = reps;
    o.seed = seed;
    o.method = method;
    o.threads = threads;
    return o;
}

/// Weighted Mann–Whitney AUROC from its definition, O(m·n).
double brute_force_auc(std::span<const std::uint32_t> c, const std::vector<double>& y,
                       const std::vector<double>& s) {
    double num = 0.0;
    double wp = 0.0;
    double wn = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        (y[i] != 0 ? wp : wn) += c[i];
    }
    if (wp == 0 || wn == 0) {
        return kNaN;
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
        if (y[i] == 0 || c[i] == 0) {
            continue;
        }
        for (std::size_t j = 0; j < y.size(); ++j) {
            if (y[j] != 0 || c[j] == 0) {
                continue;
            }
            const double psi = s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
            num += static_cast<double>(c[i]) * c[j] * psi;
        }
    }
    return num / (wp * wn);
}

std::vector<std::size_t> patients_of(std::size_t n, std::size_t per_patient) {
    std::vector<std::size_t> c(n);
    for (std::size_t i = 0; i < n; ++i) {
        c[i] = (i * 7919) % ((n + per_patient - 1) / per_patient);  // scattered, not contiguous
    }
    return c;
}

void expect_same(const BootstrapCi& a, const BootstrapCi& b) {
    EXPECT_EQ(a.ci_lo, b.ci_lo);
    EXPECT_EQ(a.ci_hi, b.ci_hi);
    EXPECT_EQ(a.se, b.se);
    EXPECT_EQ(a.valid, b.valid);
}

TEST(Bootstrap, ResultIsIdenticalForAnyThreadCount) {
    const auto d = test::load_dataset("continuous");
    const auto clusters = patients_of(d.labels.size(), 3);
    for (const CiMethod m : {CiMethod::kPercentile, CiMethod::kBca}) {
        const auto one = bootstrap_auroc(d.labels, d.score1, opts(301, 5, m, 1));
        expect_same(one, bootstrap_auroc(d.labels, d.score1, opts(301, 5, m, 2)));
        expect_same(one, bootstrap_auroc(d.labels, d.score1, opts(301, 5, m, 3)));
        const auto c1 = bootstrap_auroc(d.labels, d.score1, opts(301, 5, m, 1), clusters);
        expect_same(c1, bootstrap_auroc(d.labels, d.score1, opts(301, 5, m, 2), clusters));
        const auto p1 =
            bootstrap_auroc_difference(d.labels, d.score1, d.score2, opts(301, 5, m, 1));
        expect_same(p1,
                    bootstrap_auroc_difference(d.labels, d.score1, d.score2, opts(301, 5, m, 3)));
    }
}

TEST(Bootstrap, SameSeedRepeatsAndAnotherSeedDiffers) {
    const auto d = test::load_dataset("ties");
    const auto a = bootstrap_auroc(d.labels, d.score1, opts(500, 1, CiMethod::kPercentile));
    const auto b = bootstrap_auroc(d.labels, d.score1, opts(500, 1, CiMethod::kPercentile));
    const auto c = bootstrap_auroc(d.labels, d.score1, opts(500, 2, CiMethod::kPercentile));
    expect_same(a, b);
    EXPECT_NE(a.se, c.se);
    EXPECT_DOUBLE_EQ(a.estimate, auroc(d.labels, d.score1));
}

TEST(Bootstrap, StratifiedResamplingKeepsClassCounts) {
    const auto d = test::load_dataset("ties");
    std::vector<std::size_t> strata(d.labels.begin(), d.labels.end());
    const auto ci = bootstrap_statistic(
        d.labels.size(),
        [&](std::span<const std::uint32_t> c) {
            double pos = 0;
            for (std::size_t i = 0; i < c.size(); ++i) {
                pos += c[i] * d.labels[i];
            }
            return pos;
        },
        opts(200, 3, CiMethod::kPercentile), strata);
    const double n_pos = static_cast<double>(count_classes(d.labels).positives);
    EXPECT_EQ(ci.ci_lo, n_pos);
    EXPECT_EQ(ci.ci_hi, n_pos);
    EXPECT_EQ(ci.se, 0.0);
}

TEST(Bootstrap, ClusteredResamplingDrawsWholePatients) {
    const std::size_t n = 90;
    const auto clusters = patients_of(n, 3);
    // NaN (discarded) whenever two images of one patient were drawn a different number of
    // times: every replicate must be valid.
    const auto ci = bootstrap_statistic(
        n,
        [&](std::span<const std::uint32_t> c) {
            std::vector<double> seen(n, -1.0);
            double total = 0;
            for (std::size_t i = 0; i < n; ++i) {
                auto& s = seen[clusters[i]];
                if (s >= 0 && s != c[i]) {
                    return kNaN;
                }
                s = c[i];
                total += c[i];
            }
            return total;
        },
        opts(300, 4, CiMethod::kPercentile), {}, clusters);
    EXPECT_EQ(ci.valid, 300u);
    EXPECT_EQ(ci.ci_lo, static_cast<double>(n));  // 30 patients of 3 images: always 90 images
    EXPECT_EQ(ci.ci_hi, static_cast<double>(n));
}

TEST(Bootstrap, FastAurocPathEqualsBruteForceOnTheSameResamples) {
    const auto d = test::load_dataset("ties");
    const std::vector<std::size_t> strata(d.labels.begin(), d.labels.end());
    const auto clusters = patients_of(d.labels.size(), 2);
    for (const CiMethod m : {CiMethod::kPercentile, CiMethod::kBca}) {
        const auto o = opts(400, 11, m);
        const auto fast = bootstrap_auroc(d.labels, d.score1, o);
        const auto slow = bootstrap_statistic(
            d.labels.size(),
            [&](std::span<const std::uint32_t> c) {
                return brute_force_auc(c, d.labels, d.score1);
            },
            o, strata);
        EXPECT_NEAR(fast.ci_lo, slow.ci_lo, 1e-12);
        EXPECT_NEAR(fast.ci_hi, slow.ci_hi, 1e-12);
        EXPECT_NEAR(fast.se, slow.se, 1e-12);
        // Clustered: no stratification, whole patients.
        const auto fast_c = bootstrap_auroc(d.labels, d.score1, o, clusters);
        const auto slow_c = bootstrap_statistic(
            d.labels.size(),
            [&](std::span<const std::uint32_t> c) {
                return brute_force_auc(c, d.labels, d.score1);
            },
            o, {}, clusters);
        EXPECT_NEAR(fast_c.ci_lo, slow_c.ci_lo, 1e-12);
        EXPECT_NEAR(fast_c.ci_hi, slow_c.ci_hi, 1e-12);
        EXPECT_EQ(fast_c.valid, slow_c.valid);
        // Paired difference.
        const auto fast_d = bootstrap_auroc_difference(d.labels, d.score1, d.score2, o, clusters);
        const auto slow_d = bootstrap_statistic(
            d.labels.size(),
            [&](std::span<const std::uint32_t> c) {
                return brute_force_auc(c, d.labels, d.score1) -
                       brute_force_auc(c, d.labels, d.score2);
            },
            o, {}, clusters);
        EXPECT_NEAR(fast_d.ci_lo, slow_d.ci_lo, 1e-12);
        EXPECT_NEAR(fast_d.ci_hi, slow_d.ci_hi, 1e-12);
    }
}

TEST(Bootstrap, MeanExcludesUndefinedValuesAndMatchesGenericStatistic) {
    std::vector<std::optional<double>> v;
    Rng rng(9);
    for (int i = 0; i < 60; ++i) {
        if (i % 7 == 3) {
            v.push_back(std::nullopt);
        } else {
            v.push_back(rng.uniform());
        }
    }
    const auto clusters = patients_of(v.size(), 4);
    double sum = 0;
    double count = 0;
    for (const auto& x : v) {
        if (x) {
            sum += *x;
            ++count;
        }
    }
    for (const CiMethod m : {CiMethod::kPercentile, CiMethod::kBca}) {
        const auto o = opts(500, 21, m);
        const auto fast = bootstrap_mean(v, o, clusters);
        EXPECT_NEAR(fast.estimate, sum / count, 1e-15);
        const auto slow = bootstrap_statistic(
            v.size(),
            [&](std::span<const std::uint32_t> c) {
                double num = 0, den = 0;
                for (std::size_t i = 0; i < v.size(); ++i) {
                    if (v[i]) {
                        num += c[i] * *v[i];
                        den += c[i];
                    }
                }
                return den > 0 ? num / den : kNaN;
            },
            o, {}, clusters);
        EXPECT_NEAR(fast.ci_lo, slow.ci_lo, 1e-12);
        EXPECT_NEAR(fast.ci_hi, slow.ci_hi, 1e-12);
    }
}

TEST(Bootstrap, ClusteringWidensTheIntervalWhenImagesAreDuplicated) {
    // Every image of "continuous" copied 4 times under one patient id: resampling images
    // pretends to have 4x the data (se / 2); resampling patients recovers the original se.
    const auto d = test::load_dataset("continuous");
    std::vector<double> y, s;
    std::vector<std::size_t> patient;
    for (std::size_t i = 0; i < d.labels.size(); ++i) {
        for (int k = 0; k < 4; ++k) {
            y.push_back(d.labels[i]);
            s.push_back(d.score1[i]);
            patient.push_back(i);
        }
    }
    const double se = delong_auc(d.labels, d.score1).se;
    const auto o = opts(2000, 8, CiMethod::kPercentile);
    const auto naive = bootstrap_auroc(y, s, o);
    const auto clustered = bootstrap_auroc(y, s, o, patient);
    EXPECT_NEAR(naive.se / se, 0.5, 0.08);
    EXPECT_NEAR(clustered.se / se, 1.0, 0.12);
}

TEST(Bootstrap, AgreesWithDelongOnPairedAndUnpairedDifferences) {
    const auto d = test::load_dataset("continuous");
    const auto o = opts(2000, 12, CiMethod::kPercentile);
    const auto paired = bootstrap_auroc_difference(d.labels, d.score1, d.score2, o);
    const auto dl = delong_paired_test(d.labels, d.score1, d.score2);
    EXPECT_DOUBLE_EQ(paired.estimate, dl.difference);
    EXPECT_NEAR(paired.se / dl.se, 1.0, 0.12);
    // Unpaired: first half vs second half as two groups.
    const std::size_t h = d.labels.size() / 2;
    const std::vector<double> y1(d.labels.begin(), d.labels.begin() + h);
    const std::vector<double> s1(d.score1.begin(), d.score1.begin() + h);
    const std::vector<double> y2(d.labels.begin() + h, d.labels.end());
    const std::vector<double> s2(d.score2.begin() + h, d.score2.end());
    const auto unpaired = bootstrap_auroc_unpaired_difference(y1, s1, y2, s2, o);
    const auto du = delong_unpaired_test(y1, s1, y2, s2);
    EXPECT_DOUBLE_EQ(unpaired.estimate, du.difference);
    EXPECT_NEAR(unpaired.se / du.se, 1.0, 0.12);
    EXPECT_NEAR(unpaired.ci_hi - unpaired.ci_lo, du.ci_hi - du.ci_lo, 0.15 * (du.ci_hi - du.ci_lo));
    // BCa runs on the two-sample jackknife and stays near the percentile interval here.
    auto ob = o;
    ob.method = CiMethod::kBca;
    const auto bca = bootstrap_auroc_unpaired_difference(y1, s1, y2, s2, ob);
    EXPECT_FALSE(bca.bca_fell_back);
    EXPECT_NEAR(bca.ci_lo, unpaired.ci_lo, 0.03);
    EXPECT_NEAR(bca.ci_hi, unpaired.ci_hi, 0.03);
}

TEST(Bootstrap, PerfectSeparationGivesPointIntervalAndBcaFallsBackExplicitly) {
    const auto d = test::load_dataset("perfect");
    const auto pct = bootstrap_auroc(d.labels, d.score1, opts(200, 1, CiMethod::kPercentile));
    EXPECT_EQ(pct.ci_lo, 1.0);
    EXPECT_EQ(pct.ci_hi, 1.0);
    const auto bca = bootstrap_auroc(d.labels, d.score1, opts(200, 1, CiMethod::kBca));
    EXPECT_TRUE(bca.bca_fell_back);
    EXPECT_EQ(bca.ci_lo, 1.0);
}

TEST(Bootstrap, ClusteredReplicatesWithOneClassAreCountedAsInvalid) {
    // 2 patients: one all-positive, one all-negative -> half the replicates have one class.
    const std::vector<double> y = {1, 1, 0, 0};
    const std::vector<double> s = {0.9, 0.8, 0.3, 0.1};
    const std::vector<std::size_t> c = {0, 0, 1, 1};
    const auto ci = bootstrap_auroc(y, s, opts(1000, 2, CiMethod::kPercentile), c);
    EXPECT_GT(ci.valid, 350u);
    EXPECT_LT(ci.valid, 650u);
    EXPECT_EQ(ci.replicates, 1000u);
}

}  // namespace
}  // namespace radprobe::eval
