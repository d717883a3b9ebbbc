// Patient-level splits: determinism, no leakage, fractions, stratification; rewriting the
// manifest; building a manifest from another table.

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "dataset_fixtures.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "test_support.hpp"

namespace {

using namespace radprobe;
using namespace radprobe::dataset;
using radprobe::test::TempDir;
using radprobe::test::write_text;

constexpr int kMaxImagesPerPatient = 4;

/// n_patients patients with 1..4 images each; about 30% of patients positive (all their
/// images positive except sometimes the last), a few unknown labels. Shuffled row order.
std::filesystem::path write_cohort(const TempDir& dir, int n_patients, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<std::string> rows;
    for (int p = 0; p < n_patients; ++p) {
        const int n = 1 + static_cast<int>(rng.below(kMaxImagesPerPatient));
        const bool positive = rng.bernoulli(0.3);
        for (int i = 0; i < n; ++i) {
            std::string label =
                positive ? (i == n - 1 && n > 1 && rng.bernoulli(0.5) ? "0" : "1") : "0";
            if (rng.bernoulli(0.03)) {
                label = "";
            }
            rows.push_back("img_" + std::to_string(p) + "_" + std::to_string(i) + ".png,P" +
                           std::to_string(p) + "," + label + ",\"x, " + std::to_string(i) + "\"");
        }
    }
    for (std::size_t i = rows.size(); i > 1; --i) {
        std::swap(rows[i - 1], rows[rng.below(i)]);
    }
    std::string csv = "image,patient_id,disease,comment\n";
    for (const auto& r : rows) {
        csv += r + "\n";
    }
    write_text(dir / "m.csv", csv);
    return dir / "m.csv";
}

struct Counts {
    std::map<Split, double> images;
    std::map<Split, double> positive_stratum_images;  // images of patients with any positive
};

Counts count(const Manifest& m, const std::vector<Split>& splits) {
    std::set<std::string> positive_patients;
    const auto labels = m.label_vector("disease");
    for (std::size_t i = 0; i < m.size(); ++i) {
        if (labels[i] == 1) {
            positive_patients.insert(m.record(i).patient_id);
        }
    }
    Counts c;
    for (std::size_t i = 0; i < m.size(); ++i) {
        c.images[splits[i]] += 1;
        if (positive_patients.count(m.record(i).patient_id)) {
            c.positive_stratum_images[splits[i]] += 1;
        }
    }
    return c;
}

TEST(DatasetSplit, DeterministicForASeed) {
    TempDir dir;
    const Manifest m = Manifest::load(write_cohort(dir, 300, 1));
    SplitOptions o;
    o.val = 0.15;
    o.test = 0.25;
    o.seed = 42;
    o.stratify = "disease";
    const std::string a = manifest_with_splits(m, assign_splits(m, o));
    const std::string b = manifest_with_splits(m, assign_splits(m, o));
    EXPECT_EQ(a, b);
    o.seed = 43;
    EXPECT_NE(manifest_with_splits(m, assign_splits(m, o)), a);
}

TEST(DatasetSplit, NoPatientInTwoSplitsAndFractionsWithinOnePatient) {
    TempDir dir;
    const Manifest m = Manifest::load(write_cohort(dir, 400, 2));
    const double n = static_cast<double>(m.size());
    for (std::uint64_t seed : {0, 1, 2, 3}) {
        for (const char* stratify : {"", "disease"}) {
            SplitOptions o;
            o.val = 0.1;
            o.test = 0.2;
            o.seed = seed;
            o.stratify = stratify;
            const auto splits = assign_splits(m, o);
            std::map<std::string, Split> of_patient;
            for (std::size_t i = 0; i < m.size(); ++i) {
                ASSERT_NE(splits[i], Split::kNone);
                const auto [it, inserted] = of_patient.emplace(m.record(i).patient_id, splits[i]);
                EXPECT_EQ(it->second, splits[i]) << "patient " << it->first << " in two splits";
            }
            auto c = count(m, splits);
            // One patient's worth of images: the requirement; the construction gives half.
            EXPECT_LE(std::abs(c.images[Split::kTest] - 0.2 * n), kMaxImagesPerPatient);
            EXPECT_LE(std::abs(c.images[Split::kVal] - 0.1 * n), kMaxImagesPerPatient);
        }
    }
}

// Stratified: the images of positive patients are split like all images, up to one patient's
// worth in each stratum (the fill is exact up to the last patient taken). So the share of the
// positive stratum in a split can differ from the whole set's share by at most about
// 4 images / split size — 4/105 ≈ 0.04 for val here — whereas an unstratified split leaves it to
// chance (a binomial-like spread of about sqrt(p(1-p)/n_patients_in_split) ≈ 0.08 for val), and
// some of 20 seeds exceed the bound.
TEST(DatasetSplit, StratificationKeepsPrevalence) {
    TempDir dir;
    const Manifest m = Manifest::load(write_cohort(dir, 400, 3));
    auto whole = count(m, std::vector<Split>(m.size(), Split::kTrain));
    const double share =
        whole.positive_stratum_images[Split::kTrain] / static_cast<double>(m.size());
    double worst_stratified = 0;
    double worst_plain = 0;
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        for (bool stratified : {true, false}) {
            SplitOptions o;
            o.val = 0.1;
            o.test = 0.2;
            o.seed = seed;
            o.stratify = stratified ? "disease" : "";
            auto c = count(m, assign_splits(m, o));
            for (Split s : {Split::kTrain, Split::kVal, Split::kTest}) {
                const double n_split = c.images[s];
                const double frac = (s == Split::kTest ? 0.2 : s == Split::kVal ? 0.1 : 0.7);
                const double bound = kMaxImagesPerPatient / n_split;
                const double dev = std::abs(c.positive_stratum_images[s] / n_split - share);
                if (stratified) {
                    EXPECT_LE(std::abs(c.positive_stratum_images[s] -
                                       frac * whole.positive_stratum_images[Split::kTrain]),
                              kMaxImagesPerPatient)
                        << "seed " << seed << " split " << split_name(s);
                    EXPECT_LE(dev, 2 * bound) << "seed " << seed << " split " << split_name(s);
                    worst_stratified = std::max(worst_stratified, dev / bound);
                } else {
                    worst_plain = std::max(worst_plain, dev / bound);
                }
            }
        }
    }
    EXPECT_GT(worst_plain, 2.0) << "unstratified splits never exceeded the bound: test too weak";
    EXPECT_LT(worst_stratified, worst_plain);
}

TEST(DatasetSplit, ZeroFractionsAndValidation) {
    TempDir dir;
    const Manifest m = Manifest::load(write_cohort(dir, 50, 4));
    SplitOptions o;
    o.val = 0;
    o.test = 0;
    for (Split s : assign_splits(m, o)) {
        EXPECT_EQ(s, Split::kTrain);
    }
    EXPECT_NO_THROW(check_split_fractions(0.0, 0.999));
    EXPECT_THROW(check_split_fractions(-0.1, 0.2), UsageError);
    EXPECT_THROW(check_split_fractions(0.5, 0.5), UsageError);
    EXPECT_THROW(check_split_fractions(0.1, 1.0), UsageError);
    EXPECT_THROW(check_split_fractions(std::nan(""), 0.1), UsageError);
    o.stratify = "comment";  // an attribute, not a label: the manifest lacks it (exit 1)
    EXPECT_THROW(assign_splits(m, o), InputError);
    try {
        check_split_fractions(0.6, 0.5);
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("< 1"), std::string::npos) << e.what();
    }
}

TEST(DatasetSplit, EmptyPatientIdIsAnError) {
    TempDir dir;
    write_text(dir / "m.csv", "image,patient_id\na.png,P1\nb.png,\n");
    const Manifest m = Manifest::load(dir / "m.csv");
    EXPECT_THROW(assign_splits(m, {}), InputError);
}

TEST(DatasetSplit, RewritePreservesColumnsAndRowOrder) {
    TempDir dir;
    write_text(dir / "a.csv",
               "image,split,patient_id,note\n"
               "\"x, 1.png\",test,P1,\"say \"\"a\"\"\"\n"
               "y.png,,P2,plain\n");
    const Manifest a = Manifest::load(dir / "a.csv");
    EXPECT_EQ(manifest_with_splits(a, {Split::kVal, Split::kTrain}),
              "image,split,patient_id,note\n"
              "\"x, 1.png\",val,P1,\"say \"\"a\"\"\"\n"
              "y.png,train,P2,plain\n");
    write_text(dir / "b.csv", "image,patient_id,k\nz.png,P,1\n");
    const Manifest b = Manifest::load(dir / "b.csv");
    EXPECT_EQ(manifest_with_splits(b, {Split::kTest}),
              "image,patient_id,k,split\nz.png,P,1,test\n");
}

TEST(DatasetConvert, BuildsManifestFromTable) {
    TempDir dir;
    write_text(dir / "src/table.csv",
               "path,split,binary,finding_labels,view\n"
               "imgs/00000001_000.png,train,1_abnormal,Cardiomegaly|Effusion,PA\n"
               "imgs/00000001_001.png,valid,0_normal,No Finding,AP\n"
               "imgs/00000002_000.png,test,1_abnormal,Pleural_Thickening,PA\n"
               "imgs/00000003_000.png,test,,,PA\n");
    ConvertOptions o;
    o.table = dir / "src/table.csv";
    o.out = dir / "out/deep/manifest.csv";
    o.image_col = "path";
    o.patient_regex = "^(\\d{8})_";
    o.split_col = "split";
    o.label_from = {parse_label_from("binary:1_abnormal=abnormal")};
    o.finding_col = "finding_labels";
    o.keep = {"view"};
    const ConvertResult r = convert_table(o);
    EXPECT_EQ(r.rows, 4u);
    EXPECT_EQ(r.patients, 3u);
    EXPECT_EQ(r.csv,
              "image,patient_id,split,abnormal,cardiomegaly,effusion,pleural_thickening,view\n"
              "../../src/imgs/00000001_000.png,00000001,train,1,1,1,0,PA\n"
              "../../src/imgs/00000001_001.png,00000001,val,0,0,0,0,AP\n"
              "../../src/imgs/00000002_000.png,00000002,test,1,0,0,1,PA\n"
              "../../src/imgs/00000003_000.png,00000003,test,,,,,PA\n");

    o.findings = {"effusion", "CARDIOMEGALY"};
    EXPECT_NE(convert_table(o).csv.find("abnormal,effusion,cardiomegaly,view"), std::string::npos);
    o.findings = {"Hernia"};
    EXPECT_THROW(convert_table(o), UsageError);
    o.findings = {};
    o.patient_col = "view";  // both patient options
    EXPECT_THROW(convert_table(o), UsageError);
    o.patient_col.clear();
    o.patient_regex = "^(\\d{9})_";  // matches nothing
    EXPECT_THROW(convert_table(o), InputError);
    o.patient_regex = "([";
    EXPECT_THROW(convert_table(o), UsageError);
    o.patient_regex = "^(\\d{8})_";
    o.keep = {"nope"};
    EXPECT_THROW(convert_table(o), InputError);  // the table has no such column
    o.keep = {"binary"};
    o.label_from = {parse_label_from("binary:1_abnormal=binary")};  // name clash with --keep
    EXPECT_THROW(convert_table(o), UsageError);
    EXPECT_THROW(parse_label_from("binary=abnormal"), UsageError);
    EXPECT_EQ(finding_column_name("Pleural Thickening (left)"), "pleural_thickening_left");
}

TEST(DatasetConvert, UnmappedSplitValueNamesTheLine) {
    TempDir dir;
    write_text(dir / "t.csv", "path,pid,fold\na.png,1,train\nb.png,2,holdout\n");
    ConvertOptions o;
    o.table = dir / "t.csv";
    o.out = dir / "m.csv";
    o.image_col = "path";
    o.patient_col = "pid";
    o.split_col = "fold";
    try {
        convert_table(o);
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find(":3: column 'fold': split value 'holdout'"),
                  std::string::npos)
            << e.what();
    }
    o.split_map = {"holdout=test"};
    EXPECT_NE(convert_table(o).csv.find("b.png,2,test"), std::string::npos);
}

}  // namespace
