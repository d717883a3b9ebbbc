// heads: linear probe (L-BFGS logistic regression) and kNN probe against scikit-learn / numpy
// goldens (tests/golden/probes/make_goldens.py), the selection on the validation split, the
// `run_probe` pipeline on a synthetic store, and the label-permutation check.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "logistic_internal.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/probes/probes.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace radprobe;
using namespace radprobe::probes;

namespace {

fs::path golden_dir() {
    return test::source_dir() / "tests/golden/probes";
}

struct Split {
    std::vector<float> x;
    std::vector<double> y;
};

constexpr std::size_t kDim = 12;

std::map<std::string, Split> golden_data() {
    const auto t = CsvTable::read(golden_dir() / "data.csv");
    std::map<std::string, Split> out;
    for (const auto& r : t.rows()) {
        auto& s = out[r[0]];
        s.y.push_back(std::stod(r[1]));
        for (std::size_t j = 0; j < kDim; ++j) {
            s.x.push_back(std::stof(r[2 + j]));
        }
    }
    return out;
}

std::vector<double> to_double(const std::vector<float>& v) {
    return {v.begin(), v.end()};
}

}  // namespace

// Coefficients, intercept and AUROCs against scikit-learn's LogisticRegression(lbfgs) on the
// same standardised data, and against the exact optimum of the same objective (Newton's method
// in make_goldens.py). Tolerances:
//  - exact optimum: |Δcoef|, |Δintercept| ≤ 1e-7 · max(1, |value|) (we stop at max|∇F| ≤ 1e-10
//    on a well-conditioned problem);
//  - scikit-learn: ≤ 1e-4 · max(1, |value|) — its L-BFGS-B stops on the relative-decrease rule
//    (factr) before gtol, leaving max|∇| up to 2e-2 on its objective (recorded in the golden
//    file) and coefficients up to 6e-5 from the optimum;
//  - |ΔAUROC| ≤ 1e-4 for both (the bar).
TEST(LinearProbeGolden, MatchesScikitLearnAndExactOptimum) {
    auto data = golden_data();
    const auto train = to_double(data["train"].x);
    const auto st = Standardizer::fit(train, kDim);
    const auto xtr = st.transform(train);
    const auto xva = st.transform(to_double(data["val"].x));
    const auto xte = st.transform(to_double(data["test"].x));
    const auto g = CsvTable::read(golden_dir() / "logistic.csv");
    ASSERT_EQ(g.num_rows(), 16u);
    for (const auto& r : g.rows()) {
        const double c = std::stod(r[0]);
        const bool balanced = r[1] == "balanced";
        const double tol = r[2] == "newton" ? 1e-7 : 1e-4;
        SCOPED_TRACE("C=" + r[0] + " class_weight=" + r[1] + " vs " + r[2]);
        std::vector<double> w;
        if (balanced) {
            w = balanced_weights(data["train"].y);
        }
        const auto m = fit_logistic(xtr, kDim, data["train"].y, c, w);
        EXPECT_TRUE(m.converged);
        const double b_ref = std::stod(r[5]);
        EXPECT_NEAR(m.intercept, b_ref, tol * std::max(1.0, std::abs(b_ref)));
        for (std::size_t j = 0; j < kDim; ++j) {
            const double ref = std::stod(r[6 + j]);
            EXPECT_NEAR(m.coef[j], ref, tol * std::max(1.0, std::abs(ref))) << "coef " << j;
        }
        EXPECT_NEAR(eval::auroc(data["val"].y, m.decision(xva)), std::stod(r[6 + kDim]), 1e-4);
        EXPECT_NEAR(eval::auroc(data["test"].y, m.decision(xte)), std::stod(r[7 + kDim]), 1e-4);
    }
}

// The constant feature f3 gets scale 1 (StandardScaler), so it standardises to exactly 0.
TEST(LinearProbeGolden, ConstantFeatureScaleIsOne) {
    auto data = golden_data();
    const auto st = Standardizer::fit(to_double(data["train"].x), kDim);
    EXPECT_EQ(st.scale[3], 1.0);
    EXPECT_DOUBLE_EQ(st.mean[3], 2.5);
}

// Selection on val over a 12-point log grid: the same val curve (|Δ| ≤ 1e-4), the same chosen
// C, and the same test AUROC (|Δ| ≤ 1e-4) as the scikit-learn loop in make_goldens.py.
TEST(LinearProbeGolden, SelectionOnValidationMatchesReference) {
    auto data = golden_data();
    ProbeOptions o;
    o.c_grid = parse_c_grid("logspace:-6:5:12");
    const auto r = fit_binary_probe(data["train"].x, data["train"].y, data["val"].x, data["val"].y,
                                    data["test"].x, kDim, o);
    const auto g = CsvTable::read(golden_dir() / "probe.csv");
    ASSERT_EQ(r.curve.size(), g.num_rows());
    double chosen_ref = 0, test_ref = 0;
    for (std::size_t i = 0; i < g.num_rows(); ++i) {
        const auto& row = g.rows()[i];
        EXPECT_NEAR(r.curve[i].param, std::stod(row[0]), 1e-9 * std::stod(row[0]));
        EXPECT_NEAR(r.curve[i].val_auroc, std::stod(row[1]), 1e-4) << "C=" << row[0];
        if (row[2] == "1") {
            chosen_ref = std::stod(row[0]);
        }
        test_ref = std::stod(row[3]);
    }
    EXPECT_NEAR(r.chosen, chosen_ref, 1e-9 * chosen_ref);
    EXPECT_NEAR(eval::auroc(data["test"].y, r.test_scores), test_ref, 1e-4);
}

// DINO-style weighted kNN against an independent numpy implementation. Tolerance 1e-5 on the
// score (our similarities are float32 dot products; exp(s / 0.07) turns a 1e-7 similarity error
// into a ~1.5e-6 relative weight error).
TEST(KnnProbeGolden, MatchesNumpyReference) {
    auto data = golden_data();
    const auto g = CsvTable::read(golden_dir() / "knn.csv");
    std::map<int, std::vector<double>> ref;
    for (const auto& r : g.rows()) {
        ref[std::stoi(r[1])].push_back(std::stod(r[2]));
    }
    for (int k : {10, 20}) {
        const auto s = knn_scores(data["train"].x, data["train"].y, data["test"].x, kDim, k);
        ASSERT_EQ(s.size(), ref[k].size());
        for (std::size_t i = 0; i < s.size(); ++i) {
            EXPECT_NEAR(s[i], ref[k][i], 1e-5) << "k=" << k << " row " << i;
        }
    }
}

TEST(LinearProbe, IdenticalForAnyThreadCount) {
    auto data = golden_data();
    const auto train = to_double(data["train"].x);
    const auto xtr = Standardizer::fit(train, kDim).transform(train);
    LbfgsOptions one, two;
    one.threads = 1;
    two.threads = 2;
    const auto a = fit_logistic(xtr, kDim, data["train"].y, 1.0, {}, one);
    const auto b = fit_logistic(xtr, kDim, data["train"].y, 1.0, {}, two);
    EXPECT_EQ(a.coef, b.coef);
    EXPECT_EQ(a.intercept, b.intercept);
}

// The C path the probe runs (raw float32 rows standardised inside each pass, warm starts, L-BFGS
// pairs carried from one C to the next, preconditioned) and plain L-BFGS on the same rows both
// reach the exact optimum of make_goldens.py (Newton) for every golden C, with and without class
// weighting, to the same 1e-7 · max(1, |value|) as MatchesScikitLearnAndExactOptimum.
TEST(LinearProbePath, MatchesExactOptimumAlongThePath) {
    auto data = golden_data();
    const auto& y = data["train"].y;
    const auto st = fit_standardizer(data["train"].x, kDim);
    const auto st_double = Standardizer::fit(to_double(data["train"].x), kDim);
    EXPECT_EQ(st.mean, st_double.mean);
    EXPECT_EQ(st.scale, st_double.scale);
    const auto g = CsvTable::read(golden_dir() / "logistic.csv");
    for (const bool balanced : {false, true}) {
        for (const bool precondition : {true, false}) {
            const auto w = balanced ? balanced_weights(y) : std::vector<double>{};
            LogisticProblem problem(data["train"].x, kDim, st, y, w, 0, precondition);
            std::vector<double> warm;
            int fitted = 0;
            for (const auto& r : g.rows()) {  // ascending C
                if (r[2] != "newton" || (r[1] == "balanced") != balanced) {
                    continue;
                }
                const double c = std::stod(r[0]);
                const auto m = problem.fit(c, {}, warm);
                SCOPED_TRACE(testing::Message() << "C=" << c << " balanced=" << balanced
                                                << " precondition=" << precondition);
                EXPECT_TRUE(m.converged);
                const double b_ref = std::stod(r[5]);
                EXPECT_NEAR(m.intercept, b_ref, 1e-7 * std::max(1.0, std::abs(b_ref)));
                for (std::size_t j = 0; j < kDim; ++j) {
                    const double ref = std::stod(r[6 + j]);
                    EXPECT_NEAR(m.coef[j], ref, 1e-7 * std::max(1.0, std::abs(ref)))
                        << "coef " << j;
                }
                warm = m.coef;
                warm.push_back(m.intercept);
                ++fitted;
            }
            EXPECT_EQ(fitted, 4);
        }
    }
}

// Large enough (n·d ≥ 2^17) for the row blocks to be spread over threads: the whole probe result
// (curve, iterations, chosen model, test scores) is bitwise identical for 1, 2 and 3 threads, and
// the preconditioned path agrees with plain L-BFGS (|Δ val AUROC| ≤ 1e-9 per C).
TEST(LinearProbePath, IdenticalForAnyThreadCountOnParallelSizes) {
    constexpr std::size_t d = 96, n_train = 1500, n_val = 300;
    Rng rng(11);
    auto make = [&](std::size_t n, std::vector<float>& x, std::vector<double>& y) {
        for (std::size_t i = 0; i < n; ++i) {
            const double z0 = rng.normal(), z1 = rng.normal();
            y.push_back(rng.uniform() < 1.0 / (1.0 + std::exp(-(1.5 * z0 - z1))) ? 1.0 : 0.0);
            for (std::size_t j = 0; j < d; ++j) {
                x.push_back(static_cast<float>(rng.normal() + 3.0 + 0.6 * z0 * (j % 3 == 0) +
                                               0.4 * z1 * (j % 5 == 0)));
            }
        }
    };
    std::vector<float> xtr, xva;
    std::vector<double> ytr, yva;
    make(n_train, xtr, ytr);
    make(n_val, xva, yva);
    ASSERT_GE(xtr.size(), std::size_t{1} << 17);
    ProbeOptions o;
    o.c_grid = parse_c_grid("logspace:-4:3:8");
    std::vector<BinaryProbeResult> runs;
    for (const int threads : {1, 2, 3}) {
        o.lbfgs.threads = threads;
        o.threads = threads;
        runs.push_back(fit_binary_probe(xtr, ytr, xva, yva, xva, d, o));
    }
    for (std::size_t k = 1; k < runs.size(); ++k) {
        ASSERT_EQ(runs[k].curve.size(), runs[0].curve.size());
        for (std::size_t i = 0; i < runs[0].curve.size(); ++i) {
            EXPECT_EQ(runs[k].curve[i].val_auroc, runs[0].curve[i].val_auroc);
            EXPECT_EQ(runs[k].curve[i].iterations, runs[0].curve[i].iterations);
        }
        EXPECT_EQ(runs[k].chosen, runs[0].chosen);
        EXPECT_EQ(runs[k].model->coef, runs[0].model->coef);
        EXPECT_EQ(runs[k].model->intercept, runs[0].model->intercept);
        EXPECT_EQ(runs[k].test_scores, runs[0].test_scores);
    }
    // Plain L-BFGS, each C from zero, on the same standardised rows.
    const auto st = fit_standardizer(xtr, d);
    const auto xva_std = st.transform(std::vector<double>(xva.begin(), xva.end()));
    LogisticProblem plain(xtr, d, st, ytr, {}, 1, false);
    for (const auto& p : runs[0].curve) {
        const auto m = plain.fit(p.param, {});
        EXPECT_TRUE(m.converged && p.converged) << "C=" << p.param;
        EXPECT_NEAR(eval::auroc(yva, m.decision(xva_std)), p.val_auroc, 1e-9) << "C=" << p.param;
    }
}

TEST(LinearProbe, RejectsBadInputs) {
    const std::vector<double> x{0, 1, 2, 3};
    EXPECT_THROW(fit_logistic(x, 1, std::vector<double>{1, 1, 1, 1}, 1.0), InputError);
    EXPECT_THROW(fit_logistic(x, 1, std::vector<double>{0, 1, 2, 1}, 1.0), InputError);
    EXPECT_THROW(fit_logistic(x, 1, std::vector<double>{0, 1, 0, 1}, 0.0), InputError);
    const std::vector<double> nan{0, std::nan(""), 2, 3};
    EXPECT_THROW(fit_logistic(nan, 1, std::vector<double>{0, 1, 0, 1}, 1.0), InputError);
}

TEST(LinearProbe, CGridParsing) {
    const auto d = default_c_grid();
    ASSERT_EQ(d.size(), 45u);
    EXPECT_NEAR(d.front(), 1e-6, 1e-20);
    EXPECT_NEAR(d.back(), 1e5, 1e-9);
    EXPECT_EQ(parse_c_grid("10,0.1,1"), (std::vector<double>{0.1, 1, 10}));
    EXPECT_THROW(parse_c_grid("1,-2"), UsageError);
    EXPECT_THROW(parse_c_grid("logspace:1:0:3"), UsageError);
    EXPECT_THROW(parse_c_grid("abc"), UsageError);
}

// ---------------------------------------------------------------------------------------------
// The run_probe pipeline on a synthetic store (no encoder needed)
// ---------------------------------------------------------------------------------------------

namespace {

// Writes STORE (index.csv, cls.npy, COMPLETE) and a manifest with a 'finding' label carried by
// the first feature direction (when `signal`), patients of 2 images each, splits 60/20/20.
struct FakeStudy {
    fs::path store, manifest;
};

FakeStudy make_fake_study(const fs::path& dir, std::size_t n, std::size_t dim, bool signal,
                          std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> x(n * dim);
    std::string man = "image,patient_id,split,finding\n";
    std::string index = "row,image,patient_id,split,ok,roi_valid,error\n";
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t patient = i / 2;
        const double u = static_cast<double>(patient % 10);
        const std::string split = u < 6 ? "train" : (u < 8 ? "val" : "test");
        const int y = rng.bernoulli(0.4) ? 1 : 0;
        for (std::size_t j = 0; j < dim; ++j) {
            x[i * dim + j] = static_cast<float>(rng.normal() + 3.0);
        }
        if (signal) {
            x[i * dim] += static_cast<float>(1.5 * y);
        }
        const std::string id = "img" + std::to_string(i) + ".png";
        const std::string pid = "p" + std::to_string(patient);
        man += id + "," + pid + "," + split + "," + std::to_string(y) + "\n";
        index += std::to_string(i) + "," + id + "," + pid + "," + split + ",1,0,\n";
    }
    FakeStudy s;
    s.store = dir / "store" / "fake-0123";
    s.manifest = dir / "manifest.csv";
    write_file_atomic(s.manifest, man);
    write_file_atomic(s.store / "index.csv", index);
    write_npy_f32(s.store / "cls.npy",
                  {static_cast<std::int64_t>(n), static_cast<std::int64_t>(dim)}, x.data());
    write_file_atomic(s.store / "COMPLETE", "");
    return s;
}

// Rewrites the manifest's label column as a random permutation of itself (Rng seeded).
void permute_labels(const fs::path& manifest, std::uint64_t seed) {
    const auto t = CsvTable::read(manifest);
    std::vector<std::string> labels;
    for (const auto& r : t.rows()) {
        labels.push_back(r[3]);
    }
    Rng rng(seed);
    for (std::size_t i = labels.size(); i > 1; --i) {
        std::swap(labels[i - 1], labels[rng.below(i)]);
    }
    std::string out = "image,patient_id,split,finding\n";
    for (std::size_t i = 0; i < t.num_rows(); ++i) {
        const auto& r = t.rows()[i];
        out += r[0] + "," + r[1] + "," + r[2] + "," + labels[i] + "\n";
    }
    write_file_atomic(manifest, out);
}

ProbeRunOptions fake_options(const FakeStudy& s, ProbeKind kind) {
    ProbeRunOptions o;
    o.store = s.store.parent_path();  // the root: resolve_store_dir finds the one store
    o.manifest = s.manifest;
    o.labels = {"finding"};
    o.pool = "cls";
    o.probe.kind = kind;
    o.probe.c_grid = parse_c_grid("logspace:-4:2:7");
    o.seed = 7;
    o.n_boot = 500;
    return o;
}

}  // namespace

TEST(RunProbe, LearnsSignalWritesOutputsAndIsReproducible) {
    test::TempDir tmp;
    const auto s = make_fake_study(tmp.path(), 600, 32, true, 1);
    for (ProbeKind kind : {ProbeKind::kLinear, ProbeKind::kKnn}) {
        SCOPED_TRACE(probe_kind_name(kind));
        auto o = fake_options(s, kind);
        o.out = tmp / probe_kind_name(kind);
        const auto r = run_probe(o);
        ASSERT_EQ(r.labels.size(), 1u);
        const auto& l = r.labels[0];
        EXPECT_EQ(l.n_train + l.n_val + l.n_test, 600u);
        EXPECT_EQ(l.n_test, 120u);
        // Signal of 1.5 sd in one of 32 dimensions: Bayes AUROC = Φ(1.5/√2) ≈ 0.86.
        EXPECT_GT(l.auroc, kind == ProbeKind::kLinear ? 0.75 : 0.6);
        EXPECT_LE(l.delong_lo, l.auroc);
        EXPECT_GE(l.delong_hi, l.auroc);
        EXPECT_LE(l.bootstrap_lo, l.auroc);
        EXPECT_GE(l.bootstrap_hi, l.auroc);
        // Predictions CSV reproduces the AUROC.
        const auto pred = CsvTable::read(*o.out / "predictions_finding.csv");
        ASSERT_EQ(pred.num_rows(), l.n_test);
        EXPECT_EQ(pred.header(),
                  (std::vector<std::string>{"image", "patient_id", "label", "score"}));
        EXPECT_DOUBLE_EQ(eval::auroc(pred.numeric_column("label"), pred.numeric_column("score")),
                         l.auroc);
        const auto j = nlohmann::json::parse(read_file_text(*o.out / "metrics.json"));
        EXPECT_EQ(j["seed"], 7);
        EXPECT_DOUBLE_EQ(j["labels"][0]["auroc"].get<double>(), l.auroc);
        EXPECT_EQ(j["labels"][0]["val_curve"].size(), kind == ProbeKind::kLinear ? 7u : 4u);
        // Same seed → same numbers (bit for bit, JSON included).
        const auto again = run_probe(o);
        EXPECT_EQ(again.metrics_json, r.metrics_json);
    }
}

// No leakage: with the labels randomly permuted across all images, what the probe learns on
// train cannot carry to test. Tolerance from the CI: 0.5 must lie inside the DeLong 99% CI
// (n_test = 240, so the half-width is ≈ 0.09), for 3 permutations × both probes; without the
// permutation the same data gives an AUROC whose 99% CI excludes 0.5 (the check can fail).
TEST(RunProbe, PermutedLabelsGiveChance) {
    test::TempDir tmp;
    const auto s = make_fake_study(tmp.path(), 1200, 48, true, 3);
    for (ProbeKind kind : {ProbeKind::kLinear, ProbeKind::kKnn}) {
        auto o = fake_options(s, kind);
        o.level = 0.99;
        const auto real = run_probe(o);
        EXPECT_GT(real.labels[0].delong_lo, 0.5) << probe_kind_name(kind);
    }
    for (std::uint64_t perm = 0; perm < 3; ++perm) {
        permute_labels(s.manifest, 100 + perm);
        for (ProbeKind kind : {ProbeKind::kLinear, ProbeKind::kKnn}) {
            auto o = fake_options(s, kind);
            o.level = 0.99;
            const auto r = run_probe(o);
            const auto& l = r.labels[0];
            EXPECT_LT(l.delong_lo, 0.5)
                << probe_kind_name(kind) << " perm " << perm << " auroc " << l.auroc;
            EXPECT_GT(l.delong_hi, 0.5)
                << probe_kind_name(kind) << " perm " << perm << " auroc " << l.auroc;
        }
    }
}

// Multi-label = independent binary problems: with a second label ('second', ~1/7 of its values
// unknown) the two-label run gives each label exactly (bit for bit) what a run on that label alone
// gives, the unknown rows are left out of that label only, and class weighting reaches the
// pipeline (balanced weights change the fitted scores of the imbalanced label).
TEST(RunProbe, MultiLabelIsIndependentBinaryProblemsAndClassWeighting) {
    test::TempDir tmp;
    const auto s = make_fake_study(tmp.path(), 700, 24, true, 9);
    const auto man = CsvTable::read(s.manifest);
    std::string text = "image,patient_id,split,finding,second\n";
    std::size_t unknown = 0;
    Rng rng(21);
    for (std::size_t i = 0; i < man.num_rows(); ++i) {
        const auto& r = man.rows()[i];
        std::string second = rng.bernoulli(0.2) ? "1" : "0";
        if (i % 7 == 3) {
            second = "";
            ++unknown;
        }
        text += r[0] + "," + r[1] + "," + r[2] + "," + r[3] + "," + second + "\n";
    }
    write_file_atomic(s.manifest, text);
    auto o = fake_options(s, ProbeKind::kLinear);
    o.labels = {"finding", "second"};
    const auto both = run_probe(o);
    ASSERT_EQ(both.labels.size(), 2u);
    for (std::size_t k = 0; k < 2; ++k) {
        auto single = fake_options(s, ProbeKind::kLinear);
        single.labels = {o.labels[k]};
        const auto one = run_probe(single);
        ASSERT_EQ(one.labels.size(), 1u);
        const auto& a = both.labels[k];
        const auto& b = one.labels[0];
        EXPECT_EQ(a.label, o.labels[k]);
        EXPECT_EQ(a.chosen, b.chosen);
        ASSERT_EQ(a.curve.size(), b.curve.size());
        for (std::size_t i = 0; i < a.curve.size(); ++i) {
            EXPECT_EQ(a.curve[i].val_auroc, b.curve[i].val_auroc);
        }
        EXPECT_EQ(a.test_scores, b.test_scores);
        EXPECT_EQ(a.auroc, b.auroc);
    }
    EXPECT_EQ(both.labels[0].n_train + both.labels[0].n_val + both.labels[0].n_test, 700u);
    EXPECT_EQ(both.labels[1].n_train + both.labels[1].n_val + both.labels[1].n_test,
              700u - unknown);
    auto weighted = o;
    weighted.probe.class_weight_balanced = true;
    const auto w = run_probe(weighted);
    ASSERT_EQ(w.labels.size(), 2u);
    EXPECT_NE(w.labels[1].test_scores, both.labels[1].test_scores);
}

TEST(RunProbe, ClearErrors) {
    test::TempDir tmp;
    const auto s = make_fake_study(tmp.path(), 200, 8, true, 5);
    auto o = fake_options(s, ProbeKind::kLinear);
    o.labels = {"nope"};
    EXPECT_THROW(run_probe(o), InputError);
    o = fake_options(s, ProbeKind::kLinear);
    o.pool = "mean";
    try {
        run_probe(o);
        FAIL() << "no error for a missing pool";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("mean.npy"), std::string::npos) << e.what();
    }
    // An empty val split.
    auto text = read_file_text(s.manifest);
    for (std::size_t p = text.find(",val,"); p != std::string::npos; p = text.find(",val,")) {
        text.replace(p, 5, ",train,");
    }
    write_file_atomic(s.manifest, text);
    o = fake_options(s, ProbeKind::kLinear);
    try {
        run_probe(o);
        FAIL() << "no error for an empty val split";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("val split"), std::string::npos) << e.what();
    }
    o.store = tmp / "nowhere";
    EXPECT_THROW(run_probe(o), InputError);
}
