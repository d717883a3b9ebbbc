// End-to-end tests of dataset writing and `radprobe synth`: byte-identical trees, the DICOM
// output read back by radprobe's decoder and by pydicom, atomic output under SIGKILL, the CLI
// contract, and an independent Python check of a generated dataset.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <sstream>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/imaging/decode.hpp"
#include "radprobe/synth/phantom.hpp"
#include "test_support.hpp"

namespace radprobe::synth {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

std::map<std::string, std::vector<std::uint8_t>> tree(const fs::path& root) {
    std::map<std::string, std::vector<std::uint8_t>> files;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        if (e.is_regular_file()) {
            files[fs::relative(e.path(), root).string()] = read_file_bytes(e.path());
        }
    }
    return files;
}

SynthOptions options(std::size_t n, int size, std::uint64_t seed, int threads) {
    SynthOptions o;
    o.n = n;
    o.size = size;
    o.seed = seed;
    o.threads = threads;
    o.nodule_prevalence = 0.5;
    o.pneumothorax_prevalence = 0.4;
    return o;
}

bool have_pydicom() {
    return std::system("/usr/bin/python3 -c 'import pydicom, numpy, PIL' >/dev/null 2>&1") == 0;
}

TEST(Dataset, SameSeedGivesByteIdenticalTreesForAnyThreadCount) {
    for (ImageFormat format : {ImageFormat::kPng, ImageFormat::kDicom}) {
        TempDir tmp;
        auto o1 = options(24, 64, 5, 1);
        auto o2 = options(24, 64, 5, 2);
        auto o3 = options(24, 64, 6, 2);
        o1.format = o2.format = o3.format = format;
        write_dataset(tmp / "a", o1);
        write_dataset(tmp / "b", o2);
        write_dataset(tmp / "c", o3);
        const auto a = tree(tmp / "a");
        const auto b = tree(tmp / "b");
        const auto c = tree(tmp / "c");
        EXPECT_EQ(a.size(), 3u + 24u * 5u);  // manifest, boxes, synth.json; image + 4 masks each
        EXPECT_TRUE(a == b) << "same seed, different thread counts";
        ASSERT_EQ(a.size(), c.size());
        EXPECT_NE(a.at("manifest.csv"), c.at("manifest.csv"));
        EXPECT_NE(a.begin()->second, c.begin()->second);
        // No staging directories are left behind.
        for (const auto& e : fs::directory_iterator(tmp.path())) {
            EXPECT_EQ(e.path().filename().string().find(".synth-"), std::string::npos) << e.path();
        }
    }
}

TEST(Dataset, ManifestHasTheDocumentedColumnsAndRelativePaths) {
    TempDir tmp;
    write_dataset(tmp / "d", options(20, 64, 7, 2));
    const CsvTable m = CsvTable::read(tmp / "d" / "manifest.csv");
    EXPECT_EQ(m.header(), manifest_columns());
    ASSERT_EQ(m.num_rows(), 20u);
    const CsvTable boxes = CsvTable::read(tmp / "d" / "boxes.csv");
    EXPECT_EQ(boxes.header(), (std::vector<std::string>{"image", "label", "x0", "y0", "x1", "y1"}));
    for (const auto& row : m.rows()) {
        for (std::size_t col :
             {m.column("image"), m.column("mask_heart"), m.column("mask_lung_left"),
              m.column("mask_lung_right"), m.column("mask_pneumothorax")}) {
            EXPECT_FALSE(fs::path(row[col]).is_absolute());
            EXPECT_TRUE(fs::exists(tmp / "d" / row[col])) << row[col];
        }
        const cv::Mat img = cv::imread((tmp / "d" / row[0]).string(), cv::IMREAD_UNCHANGED);
        EXPECT_EQ(img.depth(), CV_16U);
        EXPECT_EQ(img.rows, 64);
    }
}

TEST(Dataset, RefusesANonEmptyDirectoryUnlessOverwrite) {
    TempDir tmp;
    const fs::path out = tmp / "d";
    fs::create_directories(out);
    write_file_atomic(out / "keep.txt", "x");
    EXPECT_THROW(write_dataset(out, options(2, 64, 1, 1)), InputError);
    EXPECT_TRUE(fs::exists(out / "keep.txt"));
    auto o = options(2, 64, 1, 1);
    o.overwrite = true;
    write_dataset(out, o);
    EXPECT_FALSE(fs::exists(out / "keep.txt"));
    EXPECT_TRUE(fs::exists(out / "manifest.csv"));
}

// DICOM and PNG of the same seed hold the same stored values; the display stage of
// radprobe::imaging gives stored / 65535 for both (PNG: value / max; DICOM: window 32768/65536).
TEST(Dicom, DecodesToTheSamePixelsAsThePng) {
    TempDir tmp;
    auto png = options(4, 64, 11, 2);
    auto dcm = png;
    dcm.format = ImageFormat::kDicom;
    write_dataset(tmp / "png", png);
    write_dataset(tmp / "dcm", dcm);
    for (int i = 0; i < 4; ++i) {
        const std::string id = "images/phantom_00000" + std::to_string(i);
        imaging::DecodeOptions stored;
        stored.stage = imaging::Stage::kStored;
        const auto a = imaging::decode(tmp / "png" / (id + ".png"), stored);
        const auto b = imaging::decode(tmp / "dcm" / (id + ".dcm"), stored);
        ASSERT_EQ(a.pixels, b.pixels) << id;
        const auto da = imaging::decode(tmp / "png" / (id + ".png"));
        const auto db = imaging::decode(tmp / "dcm" / (id + ".dcm"));
        ASSERT_EQ(da.pixels.size(), db.pixels.size());
        for (std::size_t k = 0; k < da.pixels.size(); ++k) {
            ASSERT_NEAR(da.pixels[k], db.pixels[k], 1e-6) << id << " pixel " << k;
            ASSERT_NEAR(db.pixels[k], b.pixels[k] / 65535.0, 1e-6);
        }
        EXPECT_EQ(db.info.format, "dicom");
        EXPECT_EQ(db.info.modality, "DX");
        EXPECT_EQ(db.info.photometric, "MONOCHROME2");
        ASSERT_TRUE(db.info.pixel_spacing_row.has_value());
        EXPECT_NEAR(*db.info.pixel_spacing_row, kFieldOfViewMm / 64, 1e-6);
    }
}

TEST(Dicom, PydicomReadsTheFilesWithTheSamePixelsAndIds) {
    // The reference tool is installed by scripts/setup.sh: missing is a failure, not a skip.
    ASSERT_TRUE(have_pydicom()) << "/usr/bin/python3 with pydicom, numpy and PIL not available "
                                   "(scripts/setup.sh installs them)";
    TempDir tmp;
    auto o = options(3, 64, 13, 2);
    o.format = ImageFormat::kDicom;
    write_dataset(tmp / "dcm", o);
    // One Python process for all files (pydicom's import dominates the run time).
    const std::string script =
        "import sys, numpy as np, pydicom\n"
        "for i, f in enumerate(sys.argv[2:]):\n"
        "    d = pydicom.dcmread(f)\n"
        "    np.save(sys.argv[1] + '/p%d.npy' % i, d.pixel_array.astype(np.uint16))\n"
        "    print(d.PatientID, d.Modality, d.PhotometricInterpretation, d.SOPInstanceUID,\n"
        "          d.StudyInstanceUID != d.SeriesInstanceUID)\n";
    write_file_atomic(tmp / "read.py", script);
    const CsvTable m = CsvTable::read(tmp / "dcm" / "manifest.csv");
    std::string cmd =
        "/usr/bin/python3 '" + (tmp / "read.py").string() + "' '" + tmp.path().string() + "'";
    for (const auto& row : m.rows()) {
        cmd += " '" + (tmp / "dcm" / row[0]).string() + "'";
    }
    const fs::path out = tmp / "out.txt";
    cmd += " > '" + out.string() + "' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file_text(out);
    std::istringstream said(read_file_text(out));
    std::set<std::string> uids;
    for (std::size_t r = 0; r < m.num_rows(); ++r) {
        std::string pid, modality, photometric, uid, distinct;
        said >> pid >> modality >> photometric >> uid >> distinct;
        EXPECT_EQ(pid, m.rows()[r][1]);
        EXPECT_EQ(modality, "DX");
        EXPECT_EQ(photometric, "MONOCHROME2");
        EXPECT_EQ(uid.rfind("2.25.", 0), 0u) << uid;
        EXPECT_EQ(distinct, "True");
        uids.insert(uid);
        const NpyArray arr = read_npy(tmp / ("p" + std::to_string(r) + ".npy"));
        ASSERT_EQ(arr.shape, (std::vector<std::int64_t>{64, 64}));
        imaging::DecodeOptions stored;
        stored.stage = imaging::Stage::kStored;
        const auto mine = imaging::decode(tmp / "dcm" / m.rows()[r][0], stored);
        EXPECT_EQ(mine.pixels, arr.to_float()) << m.rows()[r][0];
    }
    EXPECT_EQ(uids.size(), m.num_rows()) << "SOP Instance UIDs must be unique";
}

TEST(Cli, WritesADatasetThatAnIndependentCheckerAccepts) {
    // The reference tool is installed by scripts/setup.sh: missing is a failure, not a skip.
    ASSERT_TRUE(have_pydicom()) << "/usr/bin/python3 with pydicom, numpy and PIL not available "
                                   "(scripts/setup.sh installs them)";
    TempDir tmp;
    const auto r = run_cli("synth --out '" + (tmp / "d").string() +
                           "' --n 60 --size 128 --seed 3 --nodule-prevalence 0.5 "
                           "--pneumothorax-prevalence 0.4 --cardiomegaly-prevalence 0.5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string script =
        (test::source_dir() / "tests" / "golden" / "synth" / "check_phantoms.py").string();
    const fs::path out = tmp / "check.json";
    const std::string cmd = "/usr/bin/python3 '" + script + "' '" + (tmp / "d").string() + "' > '" +
                            out.string() + "' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file_text(out);
    const std::string said = read_file_text(out);
    EXPECT_NE(said.find("\"n\": 60"), std::string::npos) << said;
    EXPECT_NE(said.find("\"failures\": []"), std::string::npos) << said;
}

TEST(Cli, PrevalencesOfAWrittenManifestMatchTheFlags) {
    TempDir tmp;
    const std::size_t n = 2000;
    const auto r = run_cli("synth --out '" + (tmp / "d").string() + "' --n " + std::to_string(n) +
                           " --size 64 --seed 23 --cardiomegaly-prevalence 0.3 "
                           "--pneumothorax-prevalence 0.25 --nodule-prevalence 0.2 "
                           "--tube-ptx-correlation 0.5");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const CsvTable m = CsvTable::read(tmp / "d" / "manifest.csv");
    ASSERT_EQ(m.num_rows(), n);
    auto mean = [&](const char* col) {
        double s = 0;
        for (double v : m.numeric_column(col)) {
            s += v;
        }
        return s / static_cast<double>(n);
    };
    auto within = [&](double est, double p, const char* what) {
        EXPECT_NEAR(est, p, 4 * std::sqrt(p * (1 - p) / static_cast<double>(n))) << what;
    };
    within(mean("cardiomegaly"), 0.3, "cardiomegaly");
    within(mean("pneumothorax"), 0.25, "pneumothorax");
    within(mean("nodule"), 0.2, "nodule");
    within(mean("chest_tube"), 0.25, "chest_tube");
    const auto ptx = m.numeric_column("pneumothorax");
    const auto tube = m.numeric_column("chest_tube");
    double both = 0;
    for (std::size_t i = 0; i < n; ++i) {
        both += ptx[i] * tube[i];
    }
    const double p = mean("pneumothorax");
    const double q = mean("chest_tube");
    const double phi = (both / n - p * q) / std::sqrt(p * (1 - p) * q * (1 - q));
    EXPECT_NEAR(phi, 0.5, 4.0 / std::sqrt(static_cast<double>(n)));
}

TEST(Cli, BadFlagsAreUsageErrors) {
    TempDir tmp;
    const std::string out = " --out '" + (tmp / "d").string() + "'";
    // Each bad flag with the text its one-line message must contain.
    const std::pair<std::string, std::string> cases[] = {
        {"--n 5 --size 16", "--size"},
        {"--n 0", "--n"},
        {"--n 5 --format jpg", "--format"},
        {"--n 5 --tube-ptx-correlation -0.9", "attainable range [-0.25, 1]"},
        {"--n 5 --nodule-prevalence 1.2", "--nodule-prevalence"},
        {"--n 5 --acquisition-shift nodule", "LABEL:AMOUNT"},
        {"--n 5 --acquisition-shift lesion:0.3", "not one of cardiomegaly"},
        {"--n 5 --acquisition-shift nodule:3", "[-0.5, 2]"}};
    for (const auto& [flags, expected] : cases) {
        const auto r = run_cli("synth" + out + " " + flags);
        EXPECT_EQ(r.exit_code, 2) << flags << ": " << r.err;
        EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
        EXPECT_NE(r.err.find(expected), std::string::npos) << flags << ": " << r.err;
    }
    EXPECT_FALSE(fs::exists(tmp / "d"));
}

TEST(Cli, NonEmptyOutputDirectoryFailsWithExitOne) {
    TempDir tmp;
    write_file_atomic(tmp / "d" / "other.txt", "x");
    const auto r = run_cli("synth --n 2 --size 64 --out '" + (tmp / "d").string() + "'");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;
}

// A run killed with SIGKILL leaves nothing under the output name (only a hidden staging
// directory next to it), so no half-written manifest can be mistaken for a dataset. The kill
// lands at a fixed point: after the first block of 32 images (16 per thread) is written.
TEST(Cli, KilledRunLeavesNoPartialDataset) {
    TempDir tmp;
    const fs::path out = tmp / "d";
    const std::string cmd =
        "RADPROBE_TEST_SYNTH_KILL_AFTER=32 '" + test::radprobe_binary().string() +
        "' synth --n 200 --size 64 --threads 2 --out '" + out.string() + "' >/dev/null 2>&1";
    const int status = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 128 + 9) << "the run was not killed mid-way";
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out / "manifest.csv"));
    // The staging directory holds the images written before the kill: the run was mid-write.
    std::size_t staged = 0;
    for (const auto& e : fs::directory_iterator(tmp.path())) {
        if (e.path().filename().string().rfind(".d.synth-tmp.", 0) == 0) {
            for (const auto& f : fs::directory_iterator(e.path() / "images")) {
                staged += f.is_regular_file();
            }
        }
    }
    EXPECT_EQ(staged, 32u);
}

}  // namespace
}  // namespace radprobe::synth
