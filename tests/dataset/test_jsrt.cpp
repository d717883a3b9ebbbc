// `radprobe manifest --format jsrt` on a tiny synthetic copy of JSRT with the SCR masks, written
// here from the published formats (src/dataset/jsrt.cpp cites them): genuine 2048x2048 headerless
// big-endian 12-bit .IMG files (only five of them), the clinical text files in two of the
// layouts copies have (tab- and space-separated, CR line ends, two records run together, "?"),
// and 1024x1024 GIF masks written with giflib in SCR's fold/masks/<organ>/ folders.

#include <gif_lib.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <stdexcept>

#include "dataset_fixtures.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/files.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using radprobe::CsvTable;
using radprobe::test::CliResult;
using radprobe::test::q;
using radprobe::test::run_cli;
using radprobe::test::TempDir;
using radprobe::test::write_text;

constexpr int kSide = 2048;
constexpr int kMaskSide = 1024;

/// The raw value of pixel (r, c) in every synthetic image: a 12-bit pattern with three known
/// values (the corners of the inversion, and 1000 at row 100, column 200).
std::uint16_t raw_value(int r, int c) {
    if (r == 100 && c == 200) {
        return 1000;
    }
    if (r == 5 && c == 5) {
        return 4095;
    }
    return static_cast<std::uint16_t>((r * 7 + c * 3) % 4096);
}

void write_raw(const fs::path& path, std::size_t bytes = std::size_t(kSide) * kSide * 2) {
    fs::create_directories(path.parent_path());
    std::vector<char> data(std::size_t(kSide) * kSide * 2);
    for (int r = 0; r < kSide; ++r) {
        for (int c = 0; c < kSide; ++c) {
            const std::uint16_t v = raw_value(r, c);
            const std::size_t at = (std::size_t(r) * kSide + c) * 2;
            data[at] = static_cast<char>(v >> 8);  // big-endian
            data[at + 1] = static_cast<char>(v & 0xFF);
        }
    }
    std::ofstream(path, std::ios::binary).write(data.data(), std::streamsize(bytes));
}

/// A black / white GIF of rows x cols; `interlaced` writes the rows in GIF's four-pass order.
void write_gif(const fs::path& path, int rows, int cols, const std::function<bool(int, int)>& on,
               bool interlaced) {
    fs::create_directories(path.parent_path());
    int err = 0;
    GifFileType* gif = EGifOpenFileName(path.string().c_str(), false, &err);
    if (!gif) {
        throw std::runtime_error("EGifOpenFileName: " + path.string());
    }
    GifColorType colors[2] = {{0, 0, 0}, {255, 255, 255}};
    ColorMapObject* map = GifMakeMapObject(2, colors);
    bool ok = EGifPutScreenDesc(gif, cols, rows, 1, 0, map) == GIF_OK &&
              EGifPutImageDesc(gif, 0, 0, cols, rows, interlaced, nullptr) == GIF_OK;
    std::vector<int> order;
    const int starts[] = {0, 4, 2, 1};
    const int steps[] = {8, 8, 4, 2};
    for (int pass = 0; pass < (interlaced ? 4 : 1); ++pass) {
        for (int r = interlaced ? starts[pass] : 0; r < rows; r += interlaced ? steps[pass] : 1) {
            order.push_back(r);
        }
    }
    std::vector<GifPixelType> line(static_cast<std::size_t>(cols));
    for (int r : order) {
        for (int c = 0; c < cols; ++c) {
            line[std::size_t(c)] = on(r, c) ? 1 : 0;
        }
        ok = ok && EGifPutLine(gif, line.data(), cols) == GIF_OK;
    }
    ok = EGifCloseFile(gif, &err) == GIF_OK && ok;
    GifFreeMapObject(map);
    if (!ok) {
        throw std::runtime_error("writing GIF " + path.string());
    }
}

bool in_rect(int r, int c, int r0, int r1, int c0, int c1) {
    return r >= r0 && r < r1 && c >= c0 && c < c1;
}

/// SCR masks of one image: lungs left and right of the heart (the patient's left lung on the
/// image's right), clavicles above. The heart is written interlaced.
void write_scr_masks(const fs::path& fold, const std::string& id) {
    const auto gif = [&](const char* organ, int r0, int r1, int c0, int c1, bool interlaced) {
        write_gif(
            fold / "masks" / organ / (id + ".gif"), kMaskSide, kMaskSide,
            [=](int r, int c) { return in_rect(r, c, r0, r1, c0, c1); }, interlaced);
    };
    gif("heart", 400, 701, 300, 601, true);
    gif("left lung", 200, 800, 600, 900, false);
    gif("right lung", 200, 800, 100, 400, false);
    gif("left clavicle", 100, 140, 560, 900, false);
    gif("right clavicle", 100, 140, 100, 460, false);
}

/// The set as downloaded: All247images/*.IMG, Clinical_Information/*.txt, scr/fold{1,2}/masks.
void write_jsrt(const fs::path& dir) {
    // Tab-separated; JPCLN001 has x and y in one field; JPCLN002 and JPCLN003 run together on
    // one line; JPCLN003's age is unknown and its nodule lies in a corner (its box is clamped).
    write_text(dir / "Clinical_Information/CLNDAT_EN.txt",
               "JPCLN001.IMG\t5\t15\t53\tmale\t1634 692\tmalignant\tl.upper lobe\tlung cancer\r\n"
               "JPCLN002.IMG\t4\t30\t78\tfemale\t1614\t1090\tbenign\tl.upper lobe(S5)\t"
               "pulmonary hematoma\tJPCLN003.IMG\t3\t7\t?\tfemale\t10\t2040\tmalignant\t"
               "r.lower lobe\tlung cancer\r\n");
    // Space-separated with CR line ends.
    write_text(dir / "Clinical_Information/CNNDAT_EN.txt",
               "JPCNN001.IMG    28   male    non-nodule\rJPCNN002.IMG  ?  female  non-nodule\r");
    for (const char* id : {"JPCLN001", "JPCLN002", "JPCLN003", "JPCNN001", "JPCNN002"}) {
        write_raw(dir / "All247images" / (std::string(id) + ".IMG"));
    }
    for (const char* id : {"JPCLN001", "JPCLN002", "JPCLN003"}) {
        write_scr_masks(dir / "scr/fold1", id);
    }
    write_scr_masks(dir / "scr/fold2", "JPCNN001");  // JPCNN002: no masks
}

const std::vector<std::string>& row_of(const CsvTable& t, const std::string& patient) {
    const std::size_t c = t.column("patient_id");
    for (const auto& row : t.rows()) {
        if (row[c] == patient) {
            return row;
        }
    }
    throw std::runtime_error("no row of " + patient);
}

std::string cell(const CsvTable& t, const std::vector<std::string>& row, const std::string& col) {
    return row[t.column(col)];
}

std::string build_command(const TempDir& dir, const std::string& out) {
    return "manifest --from " + q(dir / "Clinical_Information/CLNDAT_EN.txt") +
           " --format jsrt --masks " + q(dir / "scr") + " --out " + q(dir / out);
}

void expect_labels_and_attributes(const CsvTable& t) {
    EXPECT_EQ(radprobe::csv_line(t.header()),
              "image,patient_id,nodule,malignant,subtlety,size_mm,sex,age,mask_heart,"
              "mask_lung_left,mask_lung_right,mask_clavicle_left,mask_clavicle_right,mask_lungs");
    EXPECT_EQ(t.num_rows(), 5u);
    const auto& a = row_of(t, "JPCLN001");
    EXPECT_EQ(cell(t, a, "image"), "jsrt_png/images/JPCLN001.png");
    EXPECT_EQ(cell(t, a, "nodule"), "1");
    EXPECT_EQ(cell(t, a, "malignant"), "1");
    EXPECT_EQ(cell(t, a, "subtlety"), "5");
    EXPECT_EQ(cell(t, a, "size_mm"), "15");
    EXPECT_EQ(cell(t, a, "sex"), "male");
    EXPECT_EQ(cell(t, a, "age"), "53");
    EXPECT_EQ(cell(t, a, "mask_heart"), "jsrt_png/masks/heart/JPCLN001.png");
    EXPECT_EQ(cell(t, a, "mask_lung_left"), "jsrt_png/masks/lung_left/JPCLN001.png");
    EXPECT_EQ(cell(t, a, "mask_lungs"), "jsrt_png/masks/lungs/JPCLN001.png");
    const auto& b = row_of(t, "JPCLN002");
    EXPECT_EQ(cell(t, b, "malignant"), "0");  // benign
    EXPECT_EQ(cell(t, b, "age"), "78");
    const auto& c = row_of(t, "JPCLN003");  // the record run into JPCLN002's line
    EXPECT_EQ(cell(t, c, "age"), "");       // "?"
    EXPECT_EQ(cell(t, c, "sex"), "female");
    EXPECT_EQ(cell(t, c, "subtlety"), "3");
    const auto& n = row_of(t, "JPCNN001");
    EXPECT_EQ(cell(t, n, "nodule"), "0");
    EXPECT_EQ(cell(t, n, "malignant"), "");  // unknown for non-nodule cases
    EXPECT_EQ(cell(t, n, "age"), "28");
    EXPECT_EQ(cell(t, n, "mask_clavicle_right"), "jsrt_png/masks/clavicle_right/JPCNN001.png");
    const auto& m = row_of(t, "JPCNN002");
    EXPECT_EQ(cell(t, m, "age"), "");
    EXPECT_EQ(cell(t, m, "mask_heart"), "");  // SCR has no mask of it here: unknown
    EXPECT_EQ(cell(t, m, "mask_lungs"), "");
}

// Side = size mm / 0.175 mm per pixel, centred on (x, y), clamped to the 2048 x 2048 image.
void expect_boxes(const fs::path& path) {
    const CsvTable b = CsvTable::read(path);
    ASSERT_EQ(b.num_rows(), 3u);
    const double half15 = 15 / 0.175 / 2;
    const double half30 = 30 / 0.175 / 2;
    const double expected[3][4] = {{1634 - half15, 692 - half15, 1634 + half15, 692 + half15},
                                   {1614 - half30, 1090 - half30, 1614 + half30, 1090 + half30},
                                   {0, 2020, 30, 2048}};
    const char* images[] = {"jsrt_png/images/JPCLN001.png", "jsrt_png/images/JPCLN002.png",
                            "jsrt_png/images/JPCLN003.png"};
    for (std::size_t r = 0; r < 3; ++r) {
        EXPECT_EQ(b.rows()[r][0], images[r]);
        EXPECT_EQ(b.rows()[r][1], "nodule");
        for (std::size_t k = 0; k < 4; ++k) {
            EXPECT_NEAR(std::stod(b.rows()[r][2 + k]), expected[r][k], 1e-9) << r << " " << k;
        }
    }
}

// Raw 12-bit values are inverted (4095 - v) and widened by bit replication to 16 bits.
void expect_pixels(const fs::path& png_dir) {
    const cv::Mat img = cv::imread((png_dir / "images/JPCLN002.png").string(),
                                   cv::IMREAD_UNCHANGED | cv::IMREAD_ANYDEPTH);
    ASSERT_EQ(img.type(), CV_16U);
    ASSERT_EQ(img.rows, kSide);
    ASSERT_EQ(img.cols, kSide);
    EXPECT_EQ(img.at<std::uint16_t>(100, 200), 49532);  // 4095 - 1000 = 3095 → 3095·16 + 12
    EXPECT_EQ(img.at<std::uint16_t>(0, 0), 65535);      // raw 0: brightest
    EXPECT_EQ(img.at<std::uint16_t>(5, 5), 0);          // raw 4095: black
    const unsigned inv = 4095 - raw_value(1234, 567);
    EXPECT_EQ(img.at<std::uint16_t>(1234, 567), (inv << 4) | (inv >> 8));

    const cv::Mat heart =
        cv::imread((png_dir / "masks/heart/JPCLN002.png").string(), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(heart.type(), CV_8U);
    ASSERT_EQ(heart.rows, kMaskSide);  // kept at SCR's resolution
    EXPECT_EQ(heart.at<std::uint8_t>(400, 300), 255);
    EXPECT_EQ(heart.at<std::uint8_t>(700, 600), 255);  // the interlaced GIF's last rows
    EXPECT_EQ(heart.at<std::uint8_t>(701, 600), 0);
    EXPECT_EQ(heart.at<std::uint8_t>(399, 300), 0);
    EXPECT_EQ(cv::countNonZero(heart), 301 * 301);
    const cv::Mat lungs =
        cv::imread((png_dir / "masks/lungs/JPCLN002.png").string(), cv::IMREAD_UNCHANGED);
    EXPECT_EQ(lungs.at<std::uint8_t>(500, 150), 255);  // right lung
    EXPECT_EQ(lungs.at<std::uint8_t>(500, 700), 255);  // left lung
    EXPECT_EQ(lungs.at<std::uint8_t>(500, 500), 0);
    EXPECT_EQ(cv::countNonZero(lungs), 2 * 600 * 300);
}

TEST(DatasetPublicJsrt, LabelsBoxesConvertedPixelsAndMasksValidate) {
    TempDir dir;
    write_jsrt(dir.path());
    const CliResult r = run_cli(build_command(dir, "manifest.csv"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("5 images, 5 patients, 2 labels"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("3 boxes"), std::string::npos) << r.out;
    // 5 images and 4 images x (5 organs + the lungs' union).
    EXPECT_NE(r.out.find("29 files converted, 0 already up to date"), std::string::npos) << r.out;

    expect_labels_and_attributes(CsvTable::read(dir / "manifest.csv"));
    expect_boxes(dir / "boxes.csv");
    expect_pixels(dir / "jsrt_png");

    const CliResult v = run_cli("validate " + q(dir / "manifest.csv"));
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("no problems found"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("boxes: 3 on 3 images"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("note: 24 masks are at another resolution"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("resampled (nearest)"), std::string::npos) << v.out;
}

TEST(DatasetPublicJsrt, ReRunSkipsWhatIsConvertedAndRedoesWhatChanged) {
    TempDir dir;
    write_jsrt(dir.path());
    ASSERT_EQ(run_cli(build_command(dir, "manifest.csv")).exit_code, 0);
    const std::string first = radprobe::read_file_text(dir / "manifest.csv");
    const fs::path png = dir / "jsrt_png/images/JPCNN001.png";
    const auto stamp = fs::last_write_time(png);

    CliResult r = run_cli(build_command(dir, "manifest.csv"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("0 files converted, 29 already up to date"), std::string::npos) << r.out;
    EXPECT_EQ(fs::last_write_time(png), stamp);
    EXPECT_EQ(radprobe::read_file_text(dir / "manifest.csv"), first);

    // A source newer than its PNG, and a PNG cut short, are converted again.
    fs::last_write_time(dir / "All247images/JPCNN001.IMG",
                        fs::file_time_type::clock::now() + std::chrono::hours(1));
    write_text(dir / "jsrt_png/masks/heart/JPCLN001.png", "not a png");
    r = run_cli(build_command(dir, "manifest.csv"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("2 files converted, 27 already up to date"), std::string::npos) << r.out;
    const cv::Mat heart =
        cv::imread((dir / "jsrt_png/masks/heart/JPCLN001.png").string(), cv::IMREAD_UNCHANGED);
    EXPECT_EQ(cv::countNonZero(heart), 301 * 301);
}

TEST(DatasetPublicJsrt, BadInputIsOneLineNamingTheFile) {
    TempDir dir;
    write_text(dir / "CLNDAT_EN.txt",
               "JPCLN001.IMG\t5\t15\t53\tmale\t1634\t692\tmalignant\tl.upper lobe\tcancer\n");
    write_text(dir / "CNNDAT_EN.txt", "JPCNN001.IMG 28 male non-nodule\n");
    write_raw(dir / "JPCLN001.IMG");
    write_raw(dir / "JPCNN001.IMG", 1000);  // truncated
    const std::string base = "manifest --from " + q(dir / "CLNDAT_EN.txt") + " --format jsrt";
    CliResult r = run_cli(base + " --out " + q(dir / "out/manifest.csv"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("JPCNN001.IMG: 1000 bytes, expected 8388608"), std::string::npos) << r.err;
    EXPECT_EQ(radprobe::test::count_lines(r.err), 1) << r.err;
    EXPECT_FALSE(fs::exists(dir / "out/manifest.csv"));

    // A pixel above 12 bits: a byte-swapped or foreign file.
    write_raw(dir / "JPCNN001.IMG");
    {
        std::fstream f(dir / "JPCNN001.IMG", std::ios::binary | std::ios::in | std::ios::out);
        f.put(char(0xFF)).put(char(0xFF));
    }
    r = run_cli(base + " --out " + q(dir / "out/manifest.csv"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("JPCNN001.IMG: pixel (row 0, column 0) is 65535, above 4095"),
              std::string::npos)
        << r.err;

    // A clinical record with too few fields, and a value that is not one.
    write_text(dir / "CLNDAT_EN.txt", "JPCLN001.IMG\t5\t15\t53\n");
    r = run_cli(base + " --out " + q(dir / "out/manifest.csv"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("CLNDAT_EN.txt:1: JPCLN001: 4 fields, expected at least 8"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(radprobe::test::count_lines(r.err), 1) << r.err;
    write_text(dir / "CLNDAT_EN.txt",
               "\nJPCLN001.IMG\t5\t15\t53\tmale\t1634\t692\tmaybe\tl.upper lobe\tcancer\n");
    r = run_cli(base + " --out " + q(dir / "out/manifest.csv"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("CLNDAT_EN.txt:2: JPCLN001: field 'malignant|benign': 'maybe'"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(dir / "out/manifest.csv"));

    // Options that do not apply.
    r = run_cli(base + " --out " + q(dir / "m.csv") + " --frontal-only");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    r = run_cli("manifest --from " + q(dir / "CLNDAT_EN.txt") + " --format nih --masks " +
                q(dir.path()) + " --out " + q(dir / "m.csv"));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("--masks and --png-dir apply to --format jsrt"), std::string::npos)
        << r.err;
    r = run_cli("manifest --from " + q(dir / "CLNDAT_EN.txt") + " --image-col x --png-dir " +
                q(dir.path()) + " --out " + q(dir / "m.csv"));
    EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
