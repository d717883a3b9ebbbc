// Coverage of the bootstrap (and DeLong) intervals by simulation: binormal data with a known
// AUC = Φ(μ/√2). Nominal 95% must give 93–97% over 2,000 simulated data sets (the Monte Carlo
// standard error of a 95% coverage estimate over 2,000 sets is 0.49 points). A clustered
// scenario (4 correlated images per patient) checks that resampling patients covers while
// resampling images does not. Label: slow (~12 s on 2 cores).

#include <gtest/gtest.h>

#include <cmath>

#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {
namespace {

constexpr int kDatasets = 2000;

struct Sample {
    std::vector<double> labels, scores;
    std::vector<std::size_t> patients;
};

/// n_pos + n_neg patients with `images` images each; score = μ·y + patient effect + noise with
/// total variance 1 (patient share `rho`), so the image-level AUC is Φ(μ/√2).
Sample simulate(std::uint64_t seed, int n_pos, int n_neg, int images, double mu, double rho) {
    Rng rng = Rng::derive(seed, 0);
    Sample s;
    const double sb = std::sqrt(rho);
    const double se = std::sqrt(1.0 - rho);
    for (int p = 0; p < n_pos + n_neg; ++p) {
        const double y = p < n_pos ? 1.0 : 0.0;
        const double b = sb * rng.normal();
        for (int k = 0; k < images; ++k) {
            s.labels.push_back(y);
            s.scores.push_back(mu * y + b + se * rng.normal());
            s.patients.push_back(static_cast<std::size_t>(p));
        }
    }
    return s;
}

double mu_for_auc(double auc) {
    return std::sqrt(2.0) * normal_quantile(auc);
}

TEST(Coverage, PercentileBcaAndDelongIntervalsCoverNominal95) {
    const double true_auc = 0.75;
    const double mu = mu_for_auc(true_auc);
    int pct = 0, bca = 0, delong = 0;
    for (int d = 0; d < kDatasets; ++d) {
        const Sample s = simulate(1000 + d, 100, 100, 1, mu, 0.0);
        BootstrapOptions o;
        o.replicates = 1000;
        o.seed = static_cast<std::uint64_t>(d);
        const auto p = bootstrap_auroc(s.labels, s.scores, o);
        pct += p.ci_lo <= true_auc && true_auc <= p.ci_hi;
        o.method = CiMethod::kBca;
        const auto b = bootstrap_auroc(s.labels, s.scores, o);
        bca += b.ci_lo <= true_auc && true_auc <= b.ci_hi;
        const auto dl = delong_auc(s.labels, s.scores);
        delong += dl.ci_lo <= true_auc && true_auc <= dl.ci_hi;
    }
    const double n = kDatasets;
    RecordProperty("percentile_coverage", std::to_string(pct / n));
    RecordProperty("bca_coverage", std::to_string(bca / n));
    RecordProperty("delong_coverage", std::to_string(delong / n));
    std::printf("coverage over %d data sets: percentile %.3f, BCa %.3f, DeLong %.3f\n", kDatasets,
                pct / n, bca / n, delong / n);
    EXPECT_GE(pct / n, 0.93);
    EXPECT_LE(pct / n, 0.97);
    EXPECT_GE(bca / n, 0.93);
    EXPECT_LE(bca / n, 0.97);
    EXPECT_GE(delong / n, 0.93);
    EXPECT_LE(delong / n, 0.97);
}

TEST(Coverage, ClusteredBootstrapCoversWhenImagesOfAPatientAreCorrelated) {
    const double true_auc = 0.75;
    const double mu = mu_for_auc(true_auc);
    int clustered = 0, naive = 0;
    for (int d = 0; d < kDatasets; ++d) {
        const Sample s = simulate(50000 + d, 60, 60, 4, mu, 0.64);
        BootstrapOptions o;
        o.replicates = 500;
        o.seed = static_cast<std::uint64_t>(d);
        const auto c = bootstrap_auroc(s.labels, s.scores, o, s.patients);
        clustered += c.ci_lo <= true_auc && true_auc <= c.ci_hi;
        const auto n = bootstrap_auroc(s.labels, s.scores, o);
        naive += n.ci_lo <= true_auc && true_auc <= n.ci_hi;
    }
    const double n = kDatasets;
    std::printf("clustered data: patient bootstrap %.3f, image bootstrap %.3f\n", clustered / n,
                naive / n);
    EXPECT_GE(clustered / n, 0.93);
    EXPECT_LE(clustered / n, 0.97);
    EXPECT_LT(naive / n, 0.90);  // resampling images ignores the correlation and under-covers
}

}  // namespace
}  // namespace radprobe::eval
