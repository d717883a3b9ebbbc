// End-to-end runs of `radprobe validate`, `radprobe split` and `radprobe manifest`, including the
// real nih-mini set (manifest → validate → split → validate).

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "dataset_fixtures.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "test_support.hpp"

namespace {

using radprobe::CsvTable;
using radprobe::test::CliResult;
using radprobe::test::run_cli;
using radprobe::test::q;
using radprobe::test::TempDir;
using radprobe::test::write_text;

std::vector<std::string> lines_starting_with(const std::string& text, const std::string& prefix) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(prefix, 0) == 0) {
            out.push_back(line);
        }
    }
    return out;
}

TEST(DatasetValidateCli, ListsEveryProblemAndFails) {
    TempDir dir;
    const auto expected = radprobe::test::write_bad_manifest(dir.path());
    const CliResult r = run_cli("validate " + q(dir / "manifest.csv"));
    EXPECT_EQ(r.exit_code, 1) << r.err;
    const auto problems = lines_starting_with(r.out, dir.path().string());
    EXPECT_EQ(problems.size(), expected.size()) << r.out;
    for (const auto& e : expected) {
        const std::string where = (dir / e.file).string() + ":" + std::to_string(e.line) + ": ";
        bool found = false;
        for (const auto& p : problems) {
            found = found || (p.rfind(where, 0) == 0 && p.find(e.needle) != std::string::npos);
        }
        EXPECT_TRUE(found) << where << e.needle << "\n" << r.out;
    }
    EXPECT_NE(r.err.find(std::to_string(expected.size()) + " problems found"), std::string::npos)
        << r.err;
    EXPECT_EQ(radprobe::test::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.out.find("images: 14  patients: 12"), std::string::npos) << r.out;
}

// A DICOM that decodes only after a repair (native transfer syntax over JPEG pixel data) is not
// a problem, but validate counts such files and names them.
TEST(DatasetValidateCli, CountsImagesThatDecodedOnlyAfterARepair) {
    TempDir dir;
    const auto dicom = radprobe::test::data_dir() / "dicom";
    const auto recovered = dicom / "recovered" / "jpeg_in_native_syntax.dcm";
    const auto original =
        dicom / "siim_cr" / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm";
    write_text(dir / "manifest.csv", "image,patient_id,split,finding\n" + recovered.string() +
                                         ",P1,train,1\n" + original.string() + ",P2,test,0\n");
    const CliResult r = run_cli("validate " + q(dir / "manifest.csv"));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("warning: 1 image decoded only after a repair"), std::string::npos)
        << r.out;
    const auto named = lines_starting_with(r.out, "warning: " + (dir / "manifest.csv").string());
    ASSERT_EQ(named.size(), 1u) << r.out;
    EXPECT_NE(named[0].find(recovered.string() + ": transfer syntax 1.2.840.10008.1.2.1"),
              std::string::npos)
        << named[0];
    EXPECT_NE(r.out.find("no problems found"), std::string::npos) << r.out;
}

// A subset manifest beside the full set's boxes.csv: a warning, exit 0.
TEST(DatasetValidateCli, BoxesOfImagesOutsideASubsetManifestAreAWarning) {
    TempDir dir;
    radprobe::test::write_synth_like(dir.path());
    const CsvTable full = CsvTable::read(dir / "manifest.csv");
    std::string subset = radprobe::csv_line(full.header()) + "\n";
    subset += radprobe::csv_line(full.rows()[0]) + "\n";
    write_text(dir / "subset.csv", subset);
    const CliResult r = run_cli("validate " + q(dir / "subset.csv"));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    const auto warnings = lines_starting_with(r.out, "warning: ");
    ASSERT_EQ(warnings.size(), 1u) << r.out;
    EXPECT_NE(warnings[0].find("boxes name images not in the manifest"), std::string::npos)
        << warnings[0];
}

TEST(DatasetValidateCli, MasksAtHalfResolutionGetOneNote) {
    TempDir dir;
    radprobe::test::write_synth_like(dir.path());
    for (int i = 0; i < 6; ++i) {
        const auto path = dir / ("masks/heart_" + std::to_string(i) + ".png");
        radprobe::dataset::write_mask_png(
            path, radprobe::dataset::resample_mask_nearest(radprobe::dataset::read_mask_png(path),
                                                           12, 16));
    }
    const CliResult r = run_cli("validate " + q(dir / "manifest.csv"));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("note: 6 masks are at another resolution than their image, with its "
                         "aspect ratio: resampled (nearest) to the image grid (e.g. "),
              std::string::npos)
        << r.out;
    EXPECT_EQ(radprobe::test::count_lines(r.out.substr(0, r.out.find("manifest: "))), 1) << r.out;
    EXPECT_NE(r.out.find("no problems found"), std::string::npos) << r.out;
}

TEST(DatasetValidateCli, SynthLikeManifestIsClean) {
    TempDir dir;
    radprobe::test::write_synth_like(dir.path());
    const CliResult r = run_cli("validate " + q(dir / "manifest.csv"));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("no problems found"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("boxes: 3 on 3 images"), std::string::npos) << r.out;
    // Explicit labels and a boxes file that does not exist.
    EXPECT_EQ(
        run_cli("validate " + q(dir / "manifest.csv") + " --labels cardiomegaly,nodule").exit_code,
        0);
    EXPECT_EQ(
        run_cli("validate " + q(dir / "manifest.csv") + " --boxes " + q(dir / "no.csv")).exit_code,
        1);
    EXPECT_EQ(run_cli("validate " + q(dir / "manifest.csv") + " --rle sideways").exit_code, 2);
}

TEST(DatasetSplitCli, DeterministicLeakFreeAndValidates) {
    TempDir dir;
    std::string csv = "image,patient_id,split,disease,ctr\n";
    for (int i = 0; i < 120; ++i) {
        const int patient = i / 3 + (i % 7 == 0 ? 1 : 0);
        csv += "i" + std::to_string(i) + ".png,P" + std::to_string(patient) + ",train," +
               std::to_string(patient % 4 == 0 ? 1 : 0) + ",0." + std::to_string(10 + i) + "\n";
    }
    write_text(dir / "m.csv", csv);
    const std::string base =
        "split " + q(dir / "m.csv") + " --val 0.2 --test 0.25 --stratify disease";
    ASSERT_EQ(run_cli(base + " --seed 5 --out " + q(dir / "a.csv")).exit_code, 0);
    ASSERT_EQ(run_cli(base + " --seed 5 --out " + q(dir / "b.csv")).exit_code, 0);
    const CliResult c = run_cli(base + " --seed 6 --out " + q(dir / "c.csv"));
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_NE(c.out.find("test "), std::string::npos) << c.out;
    const std::string a = radprobe::read_file_text(dir / "a.csv");
    EXPECT_EQ(a, radprobe::read_file_text(dir / "b.csv"));
    EXPECT_NE(a, radprobe::read_file_text(dir / "c.csv"));
    // Every column but split unchanged, same row order.
    const CsvTable in = CsvTable::read(dir / "m.csv");
    const CsvTable out = CsvTable::read(dir / "a.csv");
    ASSERT_EQ(out.header(), in.header());
    ASSERT_EQ(out.num_rows(), in.num_rows());
    for (std::size_t r = 0; r < in.num_rows(); ++r) {
        for (std::size_t k = 0; k < in.header().size(); ++k) {
            if (in.header()[k] != "split") {
                EXPECT_EQ(out.rows()[r][k], in.rows()[r][k]);
            }
        }
    }
    const CliResult v = run_cli("validate --no-images " + q(dir / "a.csv"));
    EXPECT_EQ(v.out.find("leakage"), std::string::npos) << v.out;
    // Only the missing image files are problems (the images do not exist here).
    EXPECT_EQ(lines_starting_with(v.out, (dir / "a.csv").string()).size(), 120u);
}

TEST(DatasetSplitCli, RejectsBadArguments) {
    TempDir dir;
    write_text(dir / "m.csv", "image,patient_id,y\na.png,P,1\n");
    const std::string base = "split " + q(dir / "m.csv") + " --out " + q(dir / "o.csv");
    CliResult r = run_cli(base + " --val 0.6 --test 0.5");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("must be < 1"), std::string::npos) << r.err;
    r = run_cli(base + " --val -0.1");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("[0, 1)"), std::string::npos) << r.err;
    r = run_cli(base + " --stratify nope");
    EXPECT_EQ(r.exit_code, 1);  // the manifest has no such label
    EXPECT_NE(r.err.find("'nope' is not a label column"), std::string::npos) << r.err;
    r = run_cli("split " + q(dir / "m.csv") + " --out " + q(dir / "sub/o.csv"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("same directory"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "o.csv"));
}

TEST(DatasetCli, HelpForEverySubcommand) {
    for (const char* cmd : {"validate", "split", "manifest"}) {
        const CliResult r = run_cli(std::string(cmd) + " --help");
        EXPECT_EQ(r.exit_code, 0) << cmd;
        EXPECT_NE(r.out.find("--"), std::string::npos) << cmd;
    }
    const CliResult m = run_cli("manifest --help");
    EXPECT_NE(m.out.find("--patient-regex"), std::string::npos);
    EXPECT_NE(m.out.find("--label-from"), std::string::npos);
    EXPECT_NE(m.out.find("--finding-col"), std::string::npos);
}

// The real nih-mini set: build the manifest, find the original repository's patient leakage,
// re-split at patient level, and validate clean.
TEST(DatasetNihMini, ManifestValidateSplitValidate) {
    const auto nih = radprobe::test::data_dir() / "nih-mini";
    ASSERT_TRUE(std::filesystem::exists(nih / "labels.csv"));
    TempDir dir;
    const auto manifest = dir / "work/manifest.csv";
    CliResult r = run_cli("manifest --from " + q(nih / "labels.csv") +
                          " --image-col path --patient-regex '^(\\d{8})_' --split-col split"
                          " --label-from binary:1_abnormal=abnormal --finding-col finding_labels"
                          " --findings Cardiomegaly,Pneumothorax,Effusion,Nodule --keep view"
                          " --out " +
                          q(manifest));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::size_t n_images = CsvTable::read(nih / "labels.csv").num_rows();
    EXPECT_NE(r.out.find(std::to_string(n_images) + " images"), std::string::npos) << r.out;

    // Independent count of patients the original split puts in more than one split.
    const CsvTable labels = CsvTable::read(nih / "labels.csv");
    std::map<std::string, std::set<std::string>> splits_of;
    for (const auto& row : labels.rows()) {
        const std::string name = std::filesystem::path(row[0]).filename().string();
        splits_of[name.substr(0, 8)].insert(row[1]);
    }
    std::size_t leaking = 0;
    for (const auto& [patient, splits] : splits_of) {
        leaking += splits.size() > 1;
    }

    r = run_cli("validate " + q(manifest));
    const auto problems = lines_starting_with(r.out, manifest.string());
    EXPECT_EQ(problems.size(), leaking) << r.out;
    for (const auto& p : problems) {
        EXPECT_NE(p.find("(leakage)"), std::string::npos) << p;
    }
    EXPECT_EQ(r.exit_code, leaking ? 1 : 0) << r.err;
    EXPECT_NE(r.out.find("images: " + std::to_string(labels.num_rows()) +
                         "  patients: " + std::to_string(splits_of.size())),
              std::string::npos)
        << r.out;

    const auto resplit = dir / "work/manifest_split.csv";
    r = run_cli("split " + q(manifest) + " --out " + q(resplit) +
                " --val 0.1 --test 0.2 --seed 1 --stratify abnormal");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_cli("validate " + q(resplit));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("no problems found"), std::string::npos) << r.out;

    // Check the split independently: one split per patient, abnormal prevalence kept.
    const CsvTable out = CsvTable::read(resplit);
    const std::size_t pc = out.column("patient_id");
    const std::size_t sc = out.column("split");
    const std::size_t ac = out.column("abnormal");
    std::map<std::string, std::set<std::string>> assigned;
    std::map<std::string, double> n;
    for (const auto& row : out.rows()) {
        assigned[row[pc]].insert(row[sc]);
        n[row[sc]] += 1;
    }
    for (const auto& [patient, splits] : assigned) {
        EXPECT_EQ(splits.size(), 1u) << patient;
    }
    // Largest patient: one patient's worth of images is the tolerance on the split sizes.
    std::map<std::string, double> per_patient;
    for (const auto& row : out.rows()) {
        per_patient[row[pc]] += 1;
    }
    double largest = 0;
    for (const auto& [p, k] : per_patient) {
        largest = std::max(largest, k);
    }
    const double total = static_cast<double>(out.num_rows());
    EXPECT_LE(std::abs(n["test"] - 0.2 * total), largest);
    EXPECT_LE(std::abs(n["val"] - 0.1 * total), largest);
    // Stratified on `abnormal`: each split's prevalence is the whole set's, to within one
    // patient's worth of images (patients are assigned whole).
    std::map<std::string, double> positives;
    double all_positives = 0;
    for (const auto& row : out.rows()) {
        const double y = row[ac] == "1" ? 1.0 : 0.0;
        positives[row[sc]] += y;
        all_positives += y;
    }
    const double prevalence = all_positives / total;
    ASSERT_GT(prevalence, 0.2);
    ASSERT_LT(prevalence, 0.8);
    for (const std::string split : {"train", "val", "test"}) {
        ASSERT_GT(n[split], 0) << split;
        EXPECT_LE(std::abs(positives[split] - prevalence * n[split]), largest + 1) << split;
    }
}

}  // namespace
