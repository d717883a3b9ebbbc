// Imaging tests: every DICOM file of the shared set against pydicom goldens
// (tests/golden/imaging/make_goldens.py), WG04 lossless variants bit-exact, raster formats,
// malformed and truncated inputs, and the `radprobe decode` CLI.

#include <gtest/gtest.h>

#include <charls/charls.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <vector>

#include "../../src/imaging/j2k_header.hpp"
#include "../../src/imaging/jpeg_header.hpp"
#include "../../src/imaging/jpegls_stream.hpp"
#include "md5.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/imaging/decode.hpp"
#include "test_support.hpp"

namespace radprobe::imaging {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const fs::path kDicomDir = test::data_dir() / "dicom";
const fs::path kGoldenDir = test::source_dir() / "tests" / "golden" / "imaging";

const nlohmann::json& goldens() {
    static const nlohmann::json j =
        nlohmann::json::parse(read_file_text(kGoldenDir / "goldens.json"));
    return j;
}

// Files that GDCM (and therefore radprobe) cannot read, with the reason; each must fail with a
// clear one-line error rather than decode.
const std::map<std::string, std::string> kExpectedFailures = {
    {"fo-dicom/GH340.dcm", "Photometric Interpretation"},
    {"fo-dicom/GH364.dcm", "outside any sequence"},
    {"pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm", "truncated"},
    {"wg04/JLSL__MR1_JLSL", "corrupt JPEG-LS stream"},
};

// Serialises stored samples in the reference's dtype so MD5s are comparable.
std::string bytes_in_dtype(const std::vector<long long>& v, const std::string& dtype) {
    std::string out;
    const bool big = dtype[0] == '>';
    const char kind = dtype[1];
    const int size = dtype[2] - '0';
    out.resize(v.size() * static_cast<std::size_t>(size));
    for (std::size_t i = 0; i < v.size(); ++i) {
        const auto u = static_cast<std::uint64_t>(v[i]);
        for (int b = 0; b < size; ++b) {
            const int shift = 8 * (big ? size - 1 - b : b);
            out[i * size + b] = static_cast<char>((u >> shift) & 0xff);
        }
    }
    (void)kind;
    return out;
}

TEST(Dicom, StoredValuesMatchPydicomBitExact) {
    int checked = 0;
    for (const auto& rec : goldens()["files"]) {
        const std::string file = rec["file"];
        if (!rec["pydicom_decoded"].get<bool>() || kExpectedFailures.count(file)) {
            continue;
        }
        SCOPED_TRACE(file);
        ImageInfo info;
        const auto stored = decode_stored_all_frames(kDicomDir / file, &info);
        std::size_t expected_n = 1;
        for (const auto& d : rec["shape"]) {
            expected_n *= d.get<std::size_t>();
        }
        ASSERT_EQ(stored.size(), expected_n);
        EXPECT_EQ(test::md5_hex(bytes_in_dtype(stored, rec["dtype"]).data(),
                                stored.size() * static_cast<std::size_t>(
                                                    rec["dtype"].get<std::string>()[2] - '0')),
                  rec["md5_stored"].get<std::string>());
        ++checked;
    }
    EXPECT_GE(checked, 44);
}

TEST(Dicom, Wg04LosslessVariantsDecodeToIdenticalStoredValues) {
    for (const std::string image : {"CT1", "MR1", "RG3"}) {
        SCOPED_TRACE(image);
        const auto ref = decode_stored_all_frames(kDicomDir / "wg04" / ("REF__" + image + "_UNC"));
        const std::string ref_md5 = test::md5_hex(ref.data(), ref.size() * sizeof(long long));
        for (const std::string syntax : {"RLE", "JPLL", "JLSL", "J2KR"}) {
            const std::string file = "wg04/" + syntax + "__" + image + "_" + syntax;
            SCOPED_TRACE(file);
            if (kExpectedFailures.count(file)) {
                EXPECT_THROW(decode_stored_all_frames(kDicomDir / file), InputError);
                continue;
            }
            const auto v = decode_stored_all_frames(kDicomDir / file);
            EXPECT_EQ(test::md5_hex(v.data(), v.size() * sizeof(long long)), ref_md5);
        }
    }
}

void expect_stage_matches(const Image& img, const nlohmann::json& g, double tol) {
    const int sr = g["step"][0], sc = g["step"][1];
    const int gr = g["grid_shape"][0], gc = g["grid_shape"][1];
    const auto& values = g["grid"];
    double max_err = 0;
    for (int r = 0; r < gr; ++r) {
        for (int c = 0; c < gc; ++c) {
            const double want = values[static_cast<std::size_t>(r * gc + c)];
            max_err = std::max(max_err, std::abs(img.at(r * sr, c * sc) - want));
        }
    }
    double sum = 0;
    for (float v : img.pixels) {
        sum += v;
    }
    const double scale = std::max(1.0, std::abs(g["max"].get<double>()));
    EXPECT_LE(max_err, tol * scale) << "grid max-abs error";
    EXPECT_NEAR(sum / static_cast<double>(img.pixels.size()), g["mean"].get<double>(), tol * scale);
}

TEST(Dicom, ModalityAndDisplayMatchPydicomWithin1Over1024) {
    int checked = 0;
    for (const auto& rec : goldens()["files"]) {
        const std::string file = rec["file"];
        if (!rec["pydicom_decoded"].get<bool>() || kExpectedFailures.count(file)) {
            continue;
        }
        for (const auto& [frame_key, stages] : rec["frames_checked"].items()) {
            SCOPED_TRACE(file + " frame " + frame_key);
            for (const auto& [stage_name, g] : stages.items()) {
                SCOPED_TRACE(stage_name);
                DecodeOptions opt;
                opt.stage = parse_stage(stage_name);
                opt.frame = std::stoi(frame_key);
                const Image img = decode(kDicomDir / file, opt);
                ASSERT_EQ(img.rows, img.info.rows);
                // display is in [0,1]: 1/1024 absolute; stored/modality values: 1/1024 of the
                // value range (float32 output of float64 arithmetic).
                expect_stage_matches(img, g, 1.0 / 1024.0);
                ++checked;
            }
        }
    }
    EXPECT_GE(checked, 100);
}

TEST(Dicom, Monochrome1IsInvertedInDisplayOnly) {
    const Image mono2 = decode(kDicomDir / "siim_cr" /
                               "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm");
    const Image mono1 = decode(kDicomDir / "siim_cr" / "Fake_MONOHR1.dcm");
    ASSERT_EQ(mono1.pixels.size(), mono2.pixels.size());
    double max_err = 0;
    for (std::size_t i = 0; i < mono1.pixels.size(); ++i) {
        max_err = std::max(max_err, std::abs(1.0 - mono1.pixels[i] - mono2.pixels[i]));
    }
    EXPECT_LT(max_err, 1e-6);
    DecodeOptions stored;
    stored.stage = Stage::kStored;
    EXPECT_EQ(
        decode(kDicomDir / "siim_cr" / "Fake_MONOHR1.dcm", stored).pixels,
        decode(kDicomDir / "siim_cr" / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm",
               stored)
            .pixels);
}

TEST(Dicom, SecondWindowIsSelectable) {
    // bad_sequence.dcm carries two windows: [40, 450] centres, [350, 1500] widths.
    DecodeOptions w0, w1;
    w1.window = 1;
    const fs::path f = kDicomDir / "pydicom-data" / "bad_sequence.dcm";
    const Image a = decode(f, w0);
    const Image b = decode(f, w1);
    DecodeOptions mod;
    mod.stage = Stage::kModality;
    const Image m = decode(f, mod);
    // Check window 1 against the LINEAR formula directly on a few pixels.
    for (std::size_t i = 0; i < m.pixels.size(); i += 997) {
        const double c = 450 - 0.5, w = 1500 - 1;
        const double v = m.pixels[i];
        const double want = v <= c - w / 2 ? 0.0 : v > c + w / 2 ? 1.0 : (v - c) / w + 0.5;
        ASSERT_NEAR(b.pixels[i], want, 1e-6);
    }
    EXPECT_NE(a.pixels, b.pixels);
    DecodeOptions w2;
    w2.window = 2;
    EXPECT_THROW(decode(f, w2), InputError);
}

TEST(Dicom, InvalidWindowWidthFallsBackToFullRangeWithAWarning) {
    const Image img = decode(kDicomDir / "fo-dicom" / "GH1261.dcm");
    ASSERT_FALSE(img.info.warnings.empty());
    EXPECT_NE(img.info.warnings[0].find("width 0"), std::string::npos) << img.info.warnings[0];
}

// Byte strings for hand-built files: little-endian 16/32-bit, big-endian 16/32-bit.
std::string le16(std::uint32_t v) {
    return std::string{char(v & 0xFF), char(v >> 8)};
}
std::string le32(std::uint32_t v) {
    return le16(v & 0xFFFF) + le16(v >> 16);
}
std::string be16(std::uint32_t v) {
    return std::string{char(v >> 8), char(v)};
}
std::string be32(std::uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

/// Offset of the first occurrence of `pattern` in `bytes` (bytes.size() when absent).
std::size_t offset_of(const std::vector<std::uint8_t>& bytes, const std::string& pattern) {
    const auto at = std::search(bytes.begin(), bytes.end(), pattern.begin(), pattern.end(),
                                [](auto a, char b) { return a == static_cast<std::uint8_t>(b); });
    return static_cast<std::size_t>(at - bytes.begin());
}

/// Writes `bytes` with byte `at` set to `value` to `path`; returns `path`.
fs::path write_with_byte(std::vector<std::uint8_t> bytes, std::size_t at, std::uint8_t value,
                         const fs::path& path) {
    bytes[at] = value;
    write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
    return path;
}

void expect_one_line_error_naming(const fs::path& file, const std::string& fragment = "") {
    try {
        decode(file);
        ADD_FAILURE() << "decoded " << file;
    } catch (const InputError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        if (!fragment.empty()) {
            EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
        }
    }
}

// A meta header saying Explicit VR Little Endian over encapsulated JPEG baseline pixel data
// (made by tests/golden/imaging/make_recovered_dicom.py from the SIIM CR): decoded to the
// original's pixels, with one warning saying what was repaired.
const fs::path kRecovered = kDicomDir / "recovered" / "jpeg_in_native_syntax.dcm";
const fs::path kSiimOriginal =
    kDicomDir / "siim_cr" / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm";

TEST(Dicom, NativeSyntaxOverEncapsulatedJpegIsRecoveredWithAWarning) {
    const Image original = decode(kSiimOriginal);
    EXPECT_TRUE(original.info.recovered.empty());
    EXPECT_TRUE(original.info.warnings.empty());
    const Image img = decode(kRecovered);
    EXPECT_EQ(img.pixels, original.pixels);
    EXPECT_EQ(img.info.transfer_syntax, "1.2.840.10008.1.2.4.50");
    EXPECT_NE(img.info.recovered.find("1.2.840.10008.1.2.1 says native pixel data, but Pixel "
                                      "Data is encapsulated JPEG baseline"),
              std::string::npos)
        << img.info.recovered;
    ASSERT_EQ(img.info.warnings.size(), 1u);
    EXPECT_EQ(img.info.warnings[0], img.info.recovered);

    // The same file whose fragments hold no codec radprobe knows: a one-line error.
    TempDir tmp;
    auto bytes = read_file_bytes(kRecovered);
    const std::size_t at = offset_of(bytes, "\xFF\xD8\xFF");
    ASSERT_LT(at, bytes.size());
    std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), 3, std::uint8_t{0});
    write_file_atomic(tmp / "unknown_codec.dcm", std::string(bytes.begin(), bytes.end()));
    expect_one_line_error_naming(tmp / "unknown_codec.dcm", "a codec radprobe does not recognise");
}

TEST(Cli, DecodeOfARecoveredFilePrintsOneWarningLine) {
    TempDir tmp;
    const auto r = test::run_cli("decode '" + kRecovered.string() + "' --out '" +
                                 (tmp / "x.npy").string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("warning: " + kRecovered.string() + ": transfer syntax"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(fs::exists(tmp / "x.npy"));
}

TEST(Dicom, KnownUndecodableFilesGiveClearErrors) {
    for (const auto& [file, reason] : kExpectedFailures) {
        SCOPED_TRACE(file);
        expect_one_line_error_naming(kDicomDir / file, reason);
    }
}

// Explicit VR little endian, no preamble: Referenced Image Sequence (0008,1111) of defined
// length holding one defined-length item with Referenced SOP Instance UID of `uid`.
std::string sequence_with_one_uid(const std::string& uid) {
    const std::string element = le16(0x0008) + le16(0x1155) + "UI" + le16(uid.size()) + uid;
    const std::string item = le16(0xFFFE) + le16(0xE000) + le32(element.size()) + element;
    return le16(0x0008) + le16(0x1111) + "SQ" + le16(0) + le32(item.size()) + item;
}

TEST(Dicom, OddValueLengthInsideADefinedLengthItemIsRefused) {
    // GDCM recomputes a defined-length item's length and aborts the process on an assertion
    // when it is odd (found by fuzz/dicom: pixel data of odd length inside such an item).
    TempDir tmp;
    write_file_atomic(tmp / "odd.dcm", sequence_with_one_uid("1.2"));
    expect_one_line_error_naming(tmp / "odd.dcm",
                                 "element (0008,1155) at byte 20 inside a sequence item has an "
                                 "odd value length (3)");
    // The even-length form passes the check; GDCM then refuses it (no pixel data).
    write_file_atomic(tmp / "even.dcm", sequence_with_one_uid(std::string("1.2\0", 4)));
    try {
        decode(tmp / "even.dcm");
        ADD_FAILURE() << "decoded a data set without pixel data";
    } catch (const InputError& e) {
        EXPECT_EQ(std::string(e.what()).find("odd value length"), std::string::npos) << e.what();
    }
}

TEST(Dicom, AJpeg2000StreamThatDisagreesWithTheHeaderIsRefusedBeforeGdcmDecodesIt) {
    // GDCM 3.0.21 copies the decoded image into a buffer sized from Rows × Columns × Bits
    // Allocated without comparing (found by fuzz/dicom: a heap overflow inside GDCM).
    const fs::path good = kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm";
    const auto bytes = read_file_bytes(good);
    const std::string soc_siz = "\xFF\x4F\xFF\x51";
    const std::size_t at = offset_of(bytes, soc_siz);
    ASSERT_LT(at, bytes.size());
    TempDir tmp;
    auto with = [&](std::size_t offset, std::uint8_t value) {
        return write_with_byte(bytes, at + offset, value, tmp / "bad.dcm");
    };
    expect_one_line_error_naming(with(11, 65),  // Xsiz 64 → 65
                                 "JPEG 2000 stream in Pixel Data fragment 0 declares 65x64 "
                                 "pixels, 1 component(s) of up to 16 bits; the DICOM header says "
                                 "64x64, 1 sample(s) of 16 bits allocated");
    expect_one_line_error_naming(with(42, 0x10), "component(s) of up to 17 bits");  // Ssiz
    EXPECT_EQ(decode(good).rows, 64);  // the unmodified file still decodes
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) / "fuzz/dicom/regressions/gdcm_j2k_heap_overflow.dcm",
        "JPEG 2000 stream in Pixel Data fragment");

    // The same codestream inside a JP2 file (signature, file type and codestream boxes).
    const std::uint8_t* cs = bytes.data() + at;
    const std::size_t n = bytes.size() - at;
    const auto g = detail::read_j2k_geometry(cs, n);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(g->width, 64u);
    ASSERT_EQ(g->components.size(), 1u);
    EXPECT_EQ(g->components[0].precision, 16);
    std::string jp2 = be32(12) + "jP  " + "\x0D\x0A\x87\x0A" + be32(20) + "ftypjp2 " + be32(0) +
                      "jp2 " + be32(static_cast<std::uint32_t>(8 + n)) + "jp2c" +
                      std::string(reinterpret_cast<const char*>(cs), n);
    const auto boxed =
        detail::read_j2k_geometry(reinterpret_cast<const std::uint8_t*>(jp2.data()), jp2.size());
    ASSERT_TRUE(boxed.has_value());
    EXPECT_EQ(boxed->height, 64u);
    EXPECT_FALSE(detail::read_j2k_geometry(bytes.data(), 64).has_value());  // not a stream
    // GDCM reads a JP2 file only after the whole signature box (0D 0A 87 0A included) and a 0
    // byte (the NUL its 12-character literal brings to the comparison), else a codestream: so
    // does this (a box walk would have found the jp2c box).
    std::string odd = jp2;
    odd[8] = '\x00';
    const auto* o = reinterpret_cast<const std::uint8_t*>(odd.data());
    EXPECT_FALSE(detail::read_j2k_geometry(o, odd.size()).has_value());
}

/// The calling process's thread count (Linux: /proc/self/status).
int threads_now() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("Threads:", 0) == 0) {
            return std::stoi(line.substr(8));
        }
    }
    return -1;
}

TEST(Dicom, AJpeg2000MainHeaderOpenJpegCannotReadIsRefusedBeforeGdcmReadsIt) {
    // GDCM reads the first fragment's header while it reads the file, with a codec of one
    // thread per CPU, and on failure never destroys it: its threads ran on for the life of the
    // process (found by fuzz/dicom: 9,407 threads after 514,000 inputs).
    const auto bytes = read_file_bytes(fs::path(RADPROBE_SOURCE_DIR) /
                                       "fuzz/dicom/regressions/gdcm_j2k_header_thread_leak.dcm");
    const auto good =
        read_file_bytes(kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm");
    ASSERT_EQ(bytes.size(), good.size());  // the regression is this file with Lsiz 38 → 2
    const std::size_t at = offset_of(good, "\xFF\x4F\xFF\x51");
    ASSERT_LT(at, good.size());
    EXPECT_EQ(bytes[at + 5], 2);
    TempDir tmp;
    write_file_atomic(tmp / "bad.dcm", std::string(bytes.begin(), bytes.end()));
    const int before = threads_now();
    ASSERT_GT(before, 0);
    for (int i = 0; i < 10; ++i) {
        expect_one_line_error_naming(tmp / "bad.dcm",
                                     "corrupt JPEG 2000 stream in Pixel Data fragment 0 (OpenJPEG "
                                     "cannot read its main header)");
    }
    EXPECT_EQ(threads_now(), before);
    EXPECT_EQ(detail::j2k_header_problem(good.data() + at, good.size() - at), "");
    EXPECT_EQ(decode(kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm").rows, 64);
    EXPECT_EQ(threads_now(), before);
}

TEST(Dicom, PaletteTablesGdcmCannotUseAreRefusedBeforeItReadsThem) {
    // GDCM asserts while it reads a PALETTE COLOR file whose tables are missing or do not fit
    // (found by fuzz/dicom: a palette image without tables). OBXXXX1A: 8-bit pixels, three
    // tables of 256 16-bit entries from 0.
    const fs::path good = kDicomDir / "pydicom-data" / "OBXXXX1A.dcm";
    const auto bytes = read_file_bytes(good);
    const std::size_t at = offset_of(bytes, std::string("\x28\x00\x01\x11US\x06\x00", 8)) + 8;
    ASSERT_LT(at, bytes.size());
    TempDir tmp;
    auto with = [&](std::size_t offset, std::uint8_t value) {
        return write_with_byte(bytes, at + offset, value, tmp / "bad.dcm");
    };
    expect_one_line_error_naming(with(2, 1),  // first mapped value 1
                                 "PALETTE COLOR image: the red lookup table's descriptor says 256 "
                                 "entries from 1 of 16 bits");
    expect_one_line_error_naming(with(0, 0xFF),  // 0x01FF = 511 entries
                                 "the red lookup table has 512 bytes; its descriptor says 511 "
                                 "entries of 16 bits");
    expect_one_line_error_naming(with(4, 12), "entries from 0 of 12 bits");
    EXPECT_EQ(decode(good).rows, 600);
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) /
            "fuzz/dicom/regressions/gdcm_assert_palette_without_tables.dcm",
        "PALETTE COLOR image: the red lookup table (0028,1201) is missing");
    // GDCM reads any prefix of a Photometric Interpretation as it: "PALETTE COL " too.
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) / "fuzz/dicom/regressions/gdcm_assert_palette_prefix.dcm",
        "PALETTE COLOR image: the red lookup table (0028,1201) is missing");
}

TEST(Raster, PngJpegAndTiffHeadersDeclaringHugeImagesAreRefusedBeforeDecoding) {
    // OpenCV allocates what a header declares (found by fuzz/image: a 626-byte TIFF of 65,034 x
    // 3,072 pixels, 200 million, decoded into 1.6 GB of doubles).
    TempDir tmp;
    const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + "IHDR" + be32(20000) +
                            be32(7000) + std::string("\x08\0\0\0\0", 5) + be32(0);
    write_file_atomic(tmp / "huge.png", png);
    expect_one_line_error_naming(tmp / "huge.png",
                                 "PNG of 20000 x 7000 pixels is larger than radprobe decodes (at "
                                 "most 134217728 pixels)");
    // SOI, an APP0 segment to skip, then a baseline frame header: height 9000, width 16000.
    const std::string app0 = std::string("\xFF\xE0\x00\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0", 18);
    const std::string sof = std::string("\xFF\xC0\x00\x0B\x08\x23\x28\x3E\x80\x01\x01\x11\x00", 13);
    write_file_atomic(tmp / "huge.jpg", std::string("\xFF\xD8", 2) + app0 + sof);
    expect_one_line_error_naming(tmp / "huge.jpg", "JPEG of 16000 x 9000 pixels is larger");
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) / "fuzz/image/regressions/opencv_tiff_200_megapixels.tif",
        "TIFF of 65034 x 3072 pixels is larger than radprobe decodes");
    // Headers within the limit go on to OpenCV, which reports what is missing.
    write_file_atomic(tmp / "small.jpg",
                      std::string("\xFF\xD8", 2) + app0 +
                          std::string("\xFF\xC0\x00\x0B\x08\x00\x10\x00\x10\x01\x01\x11\x00", 13));
    expect_one_line_error_naming(tmp / "small.jpg", "cannot decode jpeg");
}

TEST(Dicom, AnRleFrameHeaderThatDisagreesWithTheImageIsRefusedBeforeGdcmReadsIt) {
    // GDCM reads Offset[i] for every segment the header counts (found by fuzz/dicom: a SEGV for
    // 805,699,624 segments). emri_small_RLE: 10 frames of 64x64, 1 sample of 16 bits.
    const fs::path good = kDicomDir / "pydicom-data" / "emri_small_RLE.dcm";
    const auto bytes = read_file_bytes(good);
    // The first frame's header: segment count 2, offsets 64 and more (after the offset table).
    const std::string header = std::string("\x02\0\0\0\x40\0\0\0", 8);
    const std::size_t at = offset_of(bytes, header);
    ASSERT_LT(at, bytes.size());
    TempDir tmp;
    auto with = [&](std::size_t offset, std::uint8_t value) {
        return write_with_byte(bytes, at + offset, value, tmp / "bad.dcm");
    };
    expect_one_line_error_naming(with(3, 0x30),  // 805,306,370 segments
                                 "RLE frame in Pixel Data fragment 0 has 805306370 segments; the "
                                 "header's 1 sample(s) of 16 bits need 2");
    expect_one_line_error_naming(with(4, 0x41), "segment 0 starts at byte 65");
    expect_one_line_error_naming(with(9, 0x00), "segment 1 starts at byte 30 (the ");
    EXPECT_EQ(decode(good).rows, 64);
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) / "fuzz/dicom/regressions/gdcm_rle_segment_count_segv.dcm",
        "segments; the header's 1 sample(s) of 16 bits need 2");
}

// A JPEG-LS stream of `components` × `width` × `height` samples of `bits` bits, encoded by
// CharLS with `mode`; the samples (pixel-interleaved) are i * 37 mod 2^bits.
std::pair<std::vector<std::uint8_t>, std::vector<std::uint32_t>> jpegls_stream(
    int components, int bits, charls::interleave_mode mode, std::uint32_t width = 5,
    std::uint32_t height = 4) {
    const std::size_t count = std::size_t{width} * height * components;
    std::vector<std::uint32_t> samples(count);
    for (std::size_t i = 0; i < count; ++i) {
        samples[i] = static_cast<std::uint32_t>(i * 37) % (1u << bits);
    }
    // CharLS takes pixel-interleaved input for "line"/"sample", one plane per component for
    // "none".
    const std::size_t bytes = bits <= 8 ? 1 : 2, plane = count / components;
    std::vector<std::uint8_t> source(count * bytes);
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t at =
            mode == charls::interleave_mode::none ? (i % components) * plane + i / components : i;
        source[at * bytes] = static_cast<std::uint8_t>(samples[i]);
        if (bytes == 2) {
            source[at * 2 + 1] = static_cast<std::uint8_t>(samples[i] >> 8);
        }
    }
    charls::jpegls_encoder encoder;
    encoder.frame_info({width, height, bits, components}).interleave_mode(mode);
    std::vector<std::uint8_t> stream(encoder.estimated_destination_size());
    encoder.destination(stream);
    stream.resize(encoder.encode(source));
    return {stream, samples};
}

TEST(Jpegls, StreamsDecodePixelInterleavedInEveryInterleaveModeAndSampleWidth) {
    using charls::interleave_mode;
    for (const auto mode :
         {interleave_mode::none, interleave_mode::line, interleave_mode::sample}) {
        for (const int bits : {8, 12}) {
            for (const int components : {1, 3}) {
                if (components == 1 && mode != interleave_mode::none) {
                    continue;  // one component is always "none"
                }
                SCOPED_TRACE(testing::Message() << "mode " << int(mode) << ", " << bits << " bits, "
                                                << components << " components");
                const auto [stream, samples] = jpegls_stream(components, bits, mode);
                const auto frame = detail::read_jpegls_frame(stream.data(), stream.size(), "s");
                EXPECT_EQ(frame.width, 5u);
                EXPECT_EQ(frame.height, 4u);
                EXPECT_EQ(frame.components, components);
                EXPECT_EQ(frame.bits_per_sample, bits);
                for (const int width : {2, 4}) {  // Bits Allocated 16 and 32
                    std::vector<char> out(samples.size() * width);
                    detail::decode_jpegls(stream.data(), stream.size(), width, out.data(),
                                          out.size(), "s");
                    for (std::size_t i = 0; i < samples.size(); ++i) {
                        std::uint32_t v = 0;
                        std::memcpy(&v, out.data() + i * width, width);
                        ASSERT_EQ(v, samples[i]) << "sample " << i << ", width " << width;
                    }
                }
            }
        }
    }
}

TEST(Jpegls, CorruptOrMismatchedStreamsAreOneLineErrors) {
    const auto [stream, samples] = jpegls_stream(1, 12, charls::interleave_mode::none);
    std::vector<char> out(samples.size() * 2);
    auto error_of = [&](const std::vector<std::uint8_t>& s, int width, std::size_t size) {
        try {
            detail::decode_jpegls(s.data(), s.size(), width, out.data(), size, "f.dcm: frame 0");
        } catch (const InputError& e) {
            return std::string(e.what());
        }
        return std::string("decoded");
    };
    const std::vector<std::uint8_t> cut(stream.begin(), stream.begin() + 30);
    EXPECT_NE(error_of(cut, 2, out.size()).find("f.dcm: frame 0: corrupt JPEG-LS stream ("),
              std::string::npos)
        << error_of(cut, 2, out.size());
    EXPECT_NE(error_of(stream, 1, samples.size())
                  .find("declares 5x4x1 samples of 12 bits; expected 20 samples of at most 8 "
                        "bits"),
              std::string::npos)
        << error_of(stream, 1, samples.size());
    EXPECT_NE(error_of(stream, 2, out.size() - 2).find("expected 19 samples"), std::string::npos);
    EXPECT_EQ(error_of(stream, 2, out.size()), "decoded");
    // Two components: CharLS reads the header, radprobe (like GDCM, which asserts) refuses it.
    const auto two = jpegls_stream(2, 8, charls::interleave_mode::none).first;
    EXPECT_THROW(
        {
            try {
                detail::read_jpegls_frame(two.data(), two.size(), "two.dcm");
            } catch (const InputError& e) {
                EXPECT_STREQ(e.what(),
                             "two.dcm: JPEG-LS stream has 2 components (radprobe reads "
                             "1 or 3)");
                throw;
            }
        },
        InputError);
}

// The fragments (items after the Basic Offset Table) of the encapsulated Pixel Data in `bytes`:
// offset of each item's tag.
std::vector<std::size_t> fragment_items(const std::vector<std::uint8_t>& bytes) {
    // (7FE0,0010), a VR (OB or OW), two reserved bytes, the undefined length.
    std::size_t off = offset_of(bytes, std::string("\0\0\xFF\xFF\xFF\xFF\xFE\xFF\x00\xE0", 10));
    EXPECT_LT(off, bytes.size());
    EXPECT_EQ(offset_of(bytes, "\xE0\x7F\x10\x00"), off - 6);
    off += 6;
    std::vector<std::size_t> items;
    while (off + 8 <= bytes.size() && bytes[off + 2] == 0x00 && bytes[off + 3] == 0xE0) {
        items.push_back(off);
        std::uint32_t len = 0;
        std::memcpy(&len, bytes.data() + off + 4, 4);
        off += 8 + len;
    }
    items.erase(items.begin());  // the Basic Offset Table
    return items;
}

TEST(Dicom, JpeglsFramesAreFoundAcrossFragmentsAndCheckedAgainstTheHeader) {
    // emri_small_jpeg_ls_lossless: 10 frames of 64x64, one fragment each.
    const fs::path good = kDicomDir / "pydicom-data" / "emri_small_jpeg_ls_lossless.dcm";
    const auto bytes = read_file_bytes(good);
    const auto items = fragment_items(bytes);
    ASSERT_EQ(items.size(), 10u);
    // Frame 3 split into two fragments (the second does not start with SOI): same pixels.
    std::uint32_t len = 0;
    std::memcpy(&len, bytes.data() + items[3] + 4, 4);
    const std::uint32_t first = (len / 2) & ~1u;
    std::string split(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(items[3]));
    const std::string body(bytes.begin() + static_cast<std::ptrdiff_t>(items[3] + 8),
                           bytes.begin() + static_cast<std::ptrdiff_t>(items[3] + 8 + len));
    split += le16(0xFFFE) + le16(0xE000) + le32(first) + body.substr(0, first);
    split += le16(0xFFFE) + le16(0xE000) + le32(len - first) + body.substr(first);
    split.append(bytes.begin() + static_cast<std::ptrdiff_t>(items[3] + 8 + len), bytes.end());
    TempDir tmp;
    write_file_atomic(tmp / "split.dcm", split);
    ASSERT_NE(static_cast<std::uint8_t>(body[first]), 0xFF);
    EXPECT_EQ(decode_stored_all_frames(tmp / "split.dcm"), decode_stored_all_frames(good));

    // Number of Frames 9 for 10 fragments that each start a frame.
    auto nine = bytes;
    const std::size_t frames_at = offset_of(nine, std::string("\x28\x00\x08\x00IS\x02\x00"
                                                              "10",
                                                              10));
    ASSERT_LT(frames_at, nine.size());
    nine[frames_at + 8] = '0';
    nine[frames_at + 9] = '9';
    write_file_atomic(tmp / "nine.dcm", std::string(nine.begin(), nine.end()));
    expect_one_line_error_naming(tmp / "nine.dcm",
                                 "10 Pixel Data fragments hold 10 JPEG-LS frame(s); Number of "
                                 "Frames says 9");

    // A corrupt first stream is refused before GDCM reads the file (its JPEG-LS header reader
    // leaked the stream), a corrupt later frame when it is decoded (GDCM's decoder leaked it).
    auto bad_header = bytes;
    bad_header[items[0] + 8 + 2] = 0x00;  // the marker after SOI
    write_file_atomic(tmp / "bad_header.dcm", std::string(bad_header.begin(), bad_header.end()));
    expect_one_line_error_naming(tmp / "bad_header.dcm",
                                 "JPEG-LS stream in Pixel Data fragment 0: corrupt JPEG-LS stream");
    auto bad_frame = bytes;
    std::memcpy(&len, bytes.data() + items[5] + 4, 4);
    std::fill_n(bad_frame.begin() + static_cast<std::ptrdiff_t>(items[5] + 8 + len / 2),
                len / 2 - 2, std::uint8_t{0xFF});
    write_file_atomic(tmp / "bad_frame.dcm", std::string(bad_frame.begin(), bad_frame.end()));
    expect_one_line_error_naming(tmp / "bad_frame.dcm", "JPEG-LS frame 5: corrupt JPEG-LS stream");
    for (const char* leak : {"gdcm_jpegls_decode_leak.dcm", "gdcm_jpegls_header_leak.dcm"}) {
        expect_one_line_error_naming(
            fs::path(RADPROBE_SOURCE_DIR) / "fuzz/dicom/regressions" / leak,
            "corrupt JPEG-LS stream");
    }
}

TEST(Dicom, AnUndefinedLengthOutsideSequencesAndEncapsulatedPixelDataIsRefused) {
    // GDCM asserts on it (found by fuzz/dicom: encapsulated Pixel Data with VR OF).
    const fs::path good = kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm";
    auto bytes = read_file_bytes(good);
    const std::size_t offset = offset_of(bytes, std::string("\xE0\x7F\x10\x00OW", 6));
    ASSERT_LT(offset, bytes.size());
    TempDir tmp;
    bytes[offset + 5] = 'F';  // OW → OF
    write_file_atomic(tmp / "of.dcm", std::string(bytes.begin(), bytes.end()));
    expect_one_line_error_naming(tmp / "of.dcm",
                                 "element (7FE0,0010) at byte " + std::to_string(offset) +
                                     " has an undefined length with VR OF (encapsulated Pixel "
                                     "Data is OB, OW or UN)");
    // An undefined-length UT elsewhere: "only SQ and UN may".
    write_file_atomic(tmp / "ut.dcm", le16(0x0008) + le16(0x0030) + "UT" + le16(0) + le16(0xFFFF) +
                                          le16(0xFFFF) + std::string(16, '\0'));
    expect_one_line_error_naming(tmp / "ut.dcm",
                                 "element (0008,0030) at byte 0 has an undefined length with VR UT "
                                 "(only SQ and UN may)");
    expect_one_line_error_naming(fs::path(RADPROBE_SOURCE_DIR) /
                                     "fuzz/dicom/regressions/"
                                     "gdcm_assert_undefined_length_pixel_data_of.dcm",
                                 "has an undefined length with VR OF");
}

TEST(Dicom, ItemsThatDoNotTileTheirSequenceAreRefused) {
    // GDCM recomputes ("changes") a sequence's length when its items or their elements run past
    // it, then aborts on an assertion (found by fuzz/dicom: an item of 251 bytes in a sequence
    // of 62, whose last element ran past the item).
    const std::string uid = le16(0x0008) + le16(0x1155) + "UI" + le16(4) + std::string("1.2\0", 4);
    auto sequence = [&](std::uint32_t seq_len, std::uint32_t item_len, const std::string& body) {
        return le16(0x0008) + le16(0x1111) + "SQ" + le16(0) + le32(seq_len) + le16(0xFFFE) +
               le16(0xE000) + le32(item_len) + body;
    };
    TempDir tmp;
    struct Case {
        std::string bytes, fragment;
    };
    const std::vector<Case> cases = {
        // the item claims more than its sequence holds
        {sequence(20, 40, uid + std::string(40, '\0')),
         "the sequence item at byte 12 runs past the end of its sequence (byte 32)"},
        // the item's element runs past the item
        {sequence(8 + 10, 10, uid),
         "element (0008,1155) at byte 20 runs past the end of its sequence item (byte 30)"},
        // bytes after the last item that cannot hold another item header
        {sequence(8 + 12 + 4, 12, uid + std::string(4, '\0')),
         "a sequence ending at byte 36 ends inside the item header at byte 32"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.fragment);
        write_file_atomic(tmp / "bad.dcm", c.bytes);
        expect_one_line_error_naming(tmp / "bad.dcm", c.fragment);
    }
    // The tiled form passes the check (GDCM then refuses it: no pixel data).
    write_file_atomic(tmp / "good.dcm", sequence(8 + 12, 12, uid));
    try {
        decode(tmp / "good.dcm");
        ADD_FAILURE() << "decoded a data set without pixel data";
    } catch (const InputError& e) {
        EXPECT_EQ(std::string(e.what()).find("runs past"), std::string::npos) << e.what();
    }
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) / "fuzz/dicom/regressions/gdcm_assert_item_past_sequence.dcm",
        "runs past the end of its sequence");
}

TEST(Dicom, ADelimiterWithALengthOutsideAnUndefinedLengthItemIsRefused) {
    // GDCM reads a delimiter at the top level as an element and allocates its value length
    // (found by fuzz/dicom: 3 GB asked for by a 61-byte implicit VR data set).
    const std::string group_length = le16(0x0008) + le16(0x0000) + le32(4) + le32(0);
    TempDir tmp;
    for (const std::uint32_t e : {0xE00Du, 0xE0DDu}) {
        const std::string delimiter = le16(0xFFFE) + le16(e) + le32(0xB8B8B800u);
        write_file_atomic(tmp / "stray.dcm", group_length + delimiter + std::string(40, '\xB8'));
        char tag[16];
        std::snprintf(tag, sizeof tag, "(FFFE,%04X)", e);
        expect_one_line_error_naming(tmp / "stray.dcm",
                                     std::string("delimiter ") + tag +
                                         " at byte 12 outside an undefined-length item or "
                                         "sequence has length 3099113472 (must be 0)");
    }
    // The fuzzer's own input, kept in fuzz/dicom/regressions, gives the same line.
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) / "fuzz/dicom/regressions/gdcm_oom_stray_delimiter.dcm",
        "outside an undefined-length item or sequence has length");
}

TEST(Dicom, JpegWithBitsAllocatedOver16IsRefusedBeforeGdcmReadsIt) {
    // GDCM picks its JPEG decoder by Bits Allocated (8, 12, 16) and asserts on the missing one
    // while it reads the file (found by fuzz/dicom: Bits Allocated 160).
    const fs::path good = kDicomDir / "wg04" / "JPLY__MR1_JPLY";  // JPEG extended, 16 bits
    const auto bytes = read_file_bytes(good);
    const std::size_t at = offset_of(bytes, std::string("\x28\x00\x00\x01US\x02\x00", 8));
    ASSERT_LT(at, bytes.size());
    TempDir tmp;
    expect_one_line_error_naming(write_with_byte(bytes, at + 8, 32, tmp / "bad.dcm"),
                                 "JPEG pixel data (transfer syntax 1.2.840.10008.1.2.4.51) with "
                                 "Bits Allocated 32 (JPEG holds at most 16 bits)");
    EXPECT_EQ(decode(good).rows, 512);
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) /
            "fuzz/dicom/regressions/gdcm_assert_jpeg_bits_allocated_160.dcm",
        "with Bits Allocated 160 (JPEG holds at most 16 bits)");
}

/// `bytes` (a file whose first JPEG stream starts the first fragment) with that fragment's bytes
/// replaced by `stream` (its item length updated; padded to even length), written to `path`.
fs::path with_first_jpeg_fragment(std::vector<std::uint8_t> bytes, std::string stream,
                                  const fs::path& path) {
    const std::size_t at = offset_of(bytes, "\xFF\xD8\xFF");
    EXPECT_LT(at, bytes.size());
    const std::size_t item = at - 8;
    std::uint32_t len = 0;
    std::memcpy(&len, bytes.data() + item + 4, 4);
    stream.resize(stream.size() + stream.size() % 2);
    const std::string header = le16(0xFFFE) + le16(0xE000) + le32(stream.size());
    const std::string head(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(item));
    const std::string tail(bytes.begin() + static_cast<std::ptrdiff_t>(at + len), bytes.end());
    write_file_atomic(path, head + header + stream + tail);
    return path;
}

std::string first_jpeg_fragment(const std::vector<std::uint8_t>& bytes) {
    const std::size_t at = offset_of(bytes, "\xFF\xD8\xFF");
    std::uint32_t len = 0;
    std::memcpy(&len, bytes.data() + at - 4, 4);
    return std::string(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                       bytes.begin() + static_cast<std::ptrdiff_t>(at + len));
}

/// A JPEG header up to its SOS: SOFn `sof` with precision `p`, 16x16, `ids` as components
/// (sampling 1x1, table 0), after `before` (markers between SOI and SOF).
std::string jpeg_header(std::uint8_t sof, int p, const std::string& ids,
                        const std::string& before = "") {
    std::string s = "\xFF\xD8" + before + "\xFF" + std::string(1, char(sof)) +
                    be16(8 + 3 * ids.size()) + char(p) + be16(16) + be16(16) + char(ids.size());
    for (const char id : ids) {
        s += std::string{id, '\x11', '\0'};
    }
    return s + "\xFF\xDA" + be16(8) + std::string{'\x01', ids[0], '\0', '\0', '\x3F', '\0'};
}

TEST(Dicom, JpegHeadersGdcmAbortsCrashesOrSpinsOnAreRefusedBeforeItReadsThem) {
    // GDCM's JPEG codec asserts on any warning of its IJG library, on lossy precisions it has no
    // decoder for, dereferences a null decoder for precisions above 16 (found by fuzz/dicom: a
    // SEGV in JPEGCodec::Decode) and loops forever on a segment skipped past the fragment's end.
    TempDir tmp;
    const auto lossless = read_file_bytes(kDicomDir / "wg04" / "JPLL__MR1_JPLL");  // 16 bits
    const auto lossy = read_file_bytes(kSiimOriginal);                             // baseline, 8
    std::string stream = first_jpeg_fragment(lossless);
    const std::size_t sof3 = stream.find("\xFF\xC3");
    ASSERT_NE(sof3, std::string::npos);
    stream[sof3 + 4] = 20;
    expect_one_line_error_naming(
        with_first_jpeg_fragment(lossless, stream, tmp / "p20.dcm"),
        "corrupt JPEG stream in Pixel Data fragment 0 (sample precision 20 bits; JPEG defines 2 "
        "to 16 for lossless streams)");
    stream = first_jpeg_fragment(lossy);
    const std::size_t sof0 = stream.find("\xFF\xC0");
    ASSERT_NE(sof0, std::string::npos);
    stream[sof0 + 4] = 9;
    expect_one_line_error_naming(with_first_jpeg_fragment(lossy, stream, tmp / "p9.dcm"),
                                 "(sample precision 9 bits; JPEG defines 8 or 12 for lossy");
    const std::string good = first_jpeg_fragment(lossy);
    expect_one_line_error_naming(
        with_first_jpeg_fragment(lossy, good.substr(0, 2) + '\0' + good.substr(2), tmp / "x.dcm"),
        "(Corrupt JPEG data: 1 extraneous bytes before marker 0xdb)");
    const std::string jfif2 = std::string("\xFF\xE0\0\x10JFIF\0\x02\x01\0\0\x01\0\x01\0\0", 18);
    expect_one_line_error_naming(
        with_first_jpeg_fragment(lossy, good.substr(0, 2) + jfif2 + good.substr(2), tmp / "j.dcm"),
        "(Warning: unknown JFIF revision number 2.01)");
    expect_one_line_error_naming(
        with_first_jpeg_fragment(lossy, std::string("\xFF\xD8\xFF\xE1\x00\x10", 6),
                                 tmp / "skip.dcm"),
        "(a marker segment runs past the end of the fragment)");
    expect_one_line_error_naming(
        with_first_jpeg_fragment(lossy, jpeg_header(0xC0, 8, "\x01\x02\x03\x04"), tmp / "4.dcm"),
        "(4 components (radprobe reads 1 or 3))");
    // The unmodified streams decode.
    EXPECT_EQ(decode(with_first_jpeg_fragment(lossy, good, tmp / "same.dcm")).pixels,
              decode(kSiimOriginal).pixels);
}

TEST(Dicom, JpegHeaderChecksAlsoGuardARecoveredNativeSyntax) {
    // A native transfer syntax over encapsulated JPEG is decoded with GDCM's JPEG codec too.
    TempDir tmp;
    const auto bytes = read_file_bytes(kRecovered);
    std::string stream = first_jpeg_fragment(bytes);
    stream[stream.find("\xFF\xC0") + 4] = static_cast<char>(200);
    expect_one_line_error_naming(with_first_jpeg_fragment(bytes, stream, tmp / "p200.dcm"),
                                 "corrupt JPEG stream in Pixel Data fragment 0 (sample precision "
                                 "200 bits");
}

TEST(JpegHeader, PrecisionComponentsAndTransformsAsGdcmsDecodersTakeThem) {
    using detail::jpeg_header_problem;
    const auto problem = [](const std::string& s, int bits_allocated) {
        return jpeg_header_problem(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(),
                                   bits_allocated);
    };
    EXPECT_EQ(problem(jpeg_header(0xC3, 16, "\x01"), 16), "");
    EXPECT_EQ(problem(jpeg_header(0xC3, 2, "\x01"), 8), "");
    EXPECT_EQ(problem(jpeg_header(0xC1, 12, "\x01"), 16), "");  // lossy 12-bit, as in wg04 JPLY
    EXPECT_EQ(problem(jpeg_header(0xC3, 1, "\x01"), 8),
              "sample precision 1 bits; JPEG defines 2 to 16 for lossless streams");
    EXPECT_EQ(problem(jpeg_header(0xC0, 16, "\x01"), 16),
              "sample precision 16 bits; JPEG defines 8 or 12 for lossy streams");
    EXPECT_EQ(problem(jpeg_header(0xC0, 8, "\x01\x02"), 8), "2 components (radprobe reads 1 or 3)");
    // A lossless colour stream deeper than the decoder GDCM starts with (by Bits Allocated), with
    // component ids the library does not know: its trace message hides the precision warning.
    EXPECT_NE(problem(jpeg_header(0xC3, 12, "\x07\x08\x09"), 8).find("unknown component ids"),
              std::string::npos);
    EXPECT_EQ(problem(jpeg_header(0xC3, 12, "\x07\x08\x09"), 16), "");
    EXPECT_EQ(problem(jpeg_header(0xC3, 12, "\x01\x02\x03"), 8), "");
    const std::string adobe(
        "\xFF\xEE\x00\x0E"
        "Adobe\x00\x64\x00\x00\x00\x00\x07",
        16);
    EXPECT_EQ(problem(jpeg_header(0xC0, 8, "\x01\x02\x03", adobe), 8),
              "Unknown Adobe color transform code 7");  // the library's warning
    EXPECT_EQ(problem(jpeg_header(0xC1, 12, "\x01\x02\x03", adobe), 16),
              "Unknown Adobe color transform code 7");  // from the frame (no 8-bit warning)
    // A header cut short by the fragment's end: GDCM suspends and reads on in the next fragment.
    const std::string whole = jpeg_header(0xC0, 8, "\x01");
    EXPECT_EQ(problem(whole.substr(0, 9), 8), "");
    EXPECT_EQ(
        problem(std::string("\xFF\xD8\xFF\xC0\x00\x0B\x08\x00\x00\x00\x10\x01\x01\x11\x00", 15), 8),
        "Empty JPEG image (DNL not supported)");
}

TEST(Dicom, APhotometricInterpretationThatDisagreesWithSamplesPerPixelIsRefused) {
    // GDCM reads "YBR_FULL_42" as YBR_FULL_422 and sets 3 samples per pixel, and its JPEG 2000
    // codec asserts when the one-component stream the header's 1 sample matches comes out
    // (found by fuzz/dicom at 101,623 inputs).
    TempDir tmp;
    const auto j2k =
        read_file_bytes(kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm");
    const std::size_t at = offset_of(j2k, "MONOCHROME2 ");
    ASSERT_LT(at, j2k.size());
    auto bytes = j2k;
    std::memcpy(bytes.data() + at, "YBR_FULL_42 ", 12);
    write_file_atomic(tmp / "ybr.dcm", std::string(bytes.begin(), bytes.end()));
    expect_one_line_error_naming(tmp / "ybr.dcm",
                                 "Photometric Interpretation 'YBR_FULL_42' (read as YBR_FULL_422: "
                                 "3 samples per pixel) disagrees with Samples per Pixel 1");
    bytes = j2k;
    std::memcpy(bytes.data() + at, "RGB         ", 12);
    write_file_atomic(tmp / "rgb.dcm", std::string(bytes.begin(), bytes.end()));
    expect_one_line_error_naming(tmp / "rgb.dcm", "(read as RGB: 3 samples per pixel)");
    EXPECT_EQ(decode(kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm").rows, 64);
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) /
            "fuzz/dicom/regressions/gdcm_assert_j2k_photometric_prefix_samples.dcm",
        "disagrees with Samples per Pixel 1");
}

TEST(Dicom, ThePixelDataDelimiterMayNotClaimBytesPastTheEnd) {
    // GDCM reads a length on encapsulated Pixel Data's sequence delimiter as a fragment to
    // allocate and read (found by fuzz/dicom: 1.8 GB asked for by an 8 kB file).
    const auto bytes =
        read_file_bytes(fs::path(RADPROBE_SOURCE_DIR) /
                        "fuzz/dicom/regressions/gdcm_oom_fragment_delimiter_length.dcm");
    expect_one_line_error_naming(
        fs::path(RADPROBE_SOURCE_DIR) /
            "fuzz/dicom/regressions/gdcm_oom_fragment_delimiter_length.dcm",
        "the delimiter of encapsulated Pixel Data at byte 8042 has length 1845493760 (0 expected)");
    // A good file whose delimiter is given a length: refused too unless the bytes are there.
    auto good = read_file_bytes(kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm");
    const std::size_t at = offset_of(good, std::string("\xFE\xFF\xDD\xE0\0\0\0\0", 8));
    ASSERT_LT(at, good.size());
    TempDir tmp;
    expect_one_line_error_naming(write_with_byte(good, at + 7, 0x10, tmp / "bad.dcm"),
                                 "has length 268435456 (0 expected)");
    EXPECT_EQ(decode(kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless.dcm").rows, 64);
}

TEST(Dicom, TruncationsOfEveryGoodFileAreErrorsNotImages) {
    TempDir tmp;
    int files = 0;
    for (const auto& rec : goldens()["files"]) {
        const std::string file = rec["file"];
        if (!rec["pydicom_decoded"].get<bool>() || kExpectedFailures.count(file)) {
            continue;
        }
        const auto bytes = read_file_bytes(kDicomDir / file);
        SCOPED_TRACE(file);
        ++files;
        // Cut inside the header, at the middle and just before the end (inside pixel data).
        for (double frac : {0.01, 0.25, 0.5, 0.9, 0.999}) {
            const auto keep = static_cast<std::size_t>(static_cast<double>(bytes.size()) * frac);
            const fs::path cut = tmp / ("cut_" + std::to_string(files) + "_" +
                                        std::to_string(static_cast<int>(frac * 1000)));
            write_file_atomic(cut, std::string(bytes.begin(), bytes.begin() + keep));
            SCOPED_TRACE(keep);
            expect_one_line_error_naming(cut);
        }
    }
    EXPECT_GE(files, 40);
}

TEST(Inputs, NonImagesGiveOneLineErrors) {
    TempDir tmp;
    write_file_atomic(tmp / "empty.dcm", "");
    write_file_atomic(tmp / "text.png", "this is not an image at all\n");
    write_file_atomic(tmp / "notes.txt", "hello\n");
    std::string fake_png = "\x89PNG\r\n\x1a\n garbage";
    write_file_atomic(tmp / "fake.png", fake_png);
    std::string fake_dicm(128, '\0');
    fake_dicm += "DICM";
    fake_dicm += std::string(40, '\x01');
    write_file_atomic(tmp / "fake.dcm", fake_dicm);
    // Bytes with no image signature are named for what they are not, whatever the file name.
    std::string noise;
    std::uint32_t state = 12345;
    for (int i = 0; i < 100; ++i) {
        state = state * 1664525u + 1013904223u;
        noise += static_cast<char>(state >> 24);
    }
    noise[0] = 'Z';  // not the start of any signature, nor of a DICOM data set
    write_file_atomic(tmp / "bad.png", noise);
    // A data set without the Part-10 preamble starts with a low group: tried as DICOM.
    std::string raw_dicom("\x08\x00\x05\x00CS\x0a\x00ISO_IR 100", 18);
    raw_dicom += std::string(20, '\x07');
    write_file_atomic(tmp / "raw.dcm", raw_dicom);
    const std::string unknown = "not a PNG, JPEG, TIFF or DICOM file (no known signature)";
    expect_one_line_error_naming(tmp / "empty.dcm", "empty file");
    expect_one_line_error_naming(tmp / "text.png", unknown);
    expect_one_line_error_naming(tmp / "notes.txt", unknown);
    expect_one_line_error_naming(tmp / "bad.png", unknown);
    expect_one_line_error_naming(tmp / "raw.dcm", "DICOM");
    expect_one_line_error_naming(tmp / "fake.png");
    expect_one_line_error_naming(tmp / "fake.dcm");
    expect_one_line_error_naming(tmp / "missing.dcm", "not found");
    expect_one_line_error_naming(tmp.path(), "directory");
}

TEST(Raster, GreyRgbRgba16BitJpegTiffToDisplay) {
    TempDir tmp;
    cv::Mat grey8(5, 7, CV_8UC1), grey16(5, 7, CV_16UC1), bgr(5, 7, CV_8UC3), bgra(5, 7, CV_8UC4);
    for (int r = 0; r < 5; ++r) {
        for (int c = 0; c < 7; ++c) {
            grey8.at<std::uint8_t>(r, c) = static_cast<std::uint8_t>(r * 40 + c * 3);
            grey16.at<std::uint16_t>(r, c) = static_cast<std::uint16_t>(r * 10000 + c * 77);
            bgr.at<cv::Vec3b>(r, c) =
                cv::Vec3b(static_cast<uchar>(c * 30), static_cast<uchar>(r * 50),
                          static_cast<uchar>(200 - r * c));
            bgra.at<cv::Vec4b>(r, c) =
                cv::Vec4b(static_cast<uchar>(c * 30), static_cast<uchar>(r * 50),
                          static_cast<uchar>(200 - r * c), 17);
        }
    }
    cv::imwrite((tmp / "g8.png").string(), grey8);
    cv::imwrite((tmp / "g16.png").string(), grey16);
    cv::imwrite((tmp / "rgb.png").string(), bgr);
    cv::imwrite((tmp / "rgba.png").string(), bgra);
    cv::imwrite((tmp / "g16.tif").string(), grey16);
    cv::imwrite((tmp / "g8.jpg").string(), grey8, {cv::IMWRITE_JPEG_QUALITY, 100});
    const Image g8 = decode(tmp / "g8.png");
    const Image g16 = decode(tmp / "g16.png");
    const Image rgb = decode(tmp / "rgb.png");
    const Image rgba = decode(tmp / "rgba.png");
    const Image tif = decode(tmp / "g16.tif");
    const Image jpg = decode(tmp / "g8.jpg");
    EXPECT_EQ(g8.info.format, "png");
    EXPECT_EQ(tif.info.format, "tiff");
    EXPECT_EQ(jpg.info.format, "jpeg");
    for (int r = 0; r < 5; ++r) {
        for (int c = 0; c < 7; ++c) {
            EXPECT_NEAR(g8.at(r, c), (r * 40 + c * 3) / 255.0, 1e-6);
            EXPECT_NEAR(g16.at(r, c), (r * 10000 + c * 77) / 65535.0, 1e-6);
            EXPECT_NEAR(tif.at(r, c), (r * 10000 + c * 77) / 65535.0, 1e-6);
            const double y = (0.299 * (200 - r * c) + 0.587 * r * 50 + 0.114 * c * 30) / 255.0;
            EXPECT_NEAR(rgb.at(r, c), y, 1e-6);
            EXPECT_NEAR(rgba.at(r, c), y, 1e-6);                               // alpha ignored
            EXPECT_NEAR(jpg.at(r, c), (r * 40 + c * 3) / 255.0, 3.0 / 255.0);  // lossy
        }
    }
    DecodeOptions stored;
    stored.stage = Stage::kStored;
    EXPECT_FLOAT_EQ(decode(tmp / "g16.png", stored).at(4, 6), 4 * 10000 + 6 * 77);
}

namespace {

/// A TIFF holding only a first directory of SHORT/LONG tags (value inline), classic or BigTIFF.
/// `data` follows the directory, at tiff_data_offset(big, tags.size()).
std::string tiff_directory(bool little, bool big,
                           const std::vector<std::array<std::uint64_t, 3>>& tags,
                           const std::vector<std::uint16_t>& data = {}) {
    std::string out;
    const auto put = [&](std::uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i) {
            const int shift = 8 * (little ? i : bytes - 1 - i);
            out += static_cast<char>((v >> shift) & 0xFF);
        }
    };
    out += little ? "II" : "MM";
    put(big ? 43 : 42, 2);
    if (big) {
        put(8, 2);
        put(0, 2);
        put(16, 8);
    } else {
        put(8, 4);
    }
    put(tags.size(), big ? 8 : 2);
    for (const auto& [tag, type, value] : tags) {  // type 3 SHORT, 4 LONG; count 1
        put(tag, 2);
        put(type, 2);
        put(1, big ? 8 : 4);
        const int size = type == 3 ? 2 : 4;
        put(value, size);
        put(0, (big ? 8 : 4) - size);
    }
    put(0, big ? 8 : 4);  // no next directory
    for (const std::uint16_t v : data) {
        put(v, 2);
    }
    out += std::string(64, '\0');
    return out;
}

std::uint64_t tiff_data_offset(bool big, std::size_t tags) {
    return big ? 16 + 8 + tags * 20 + 8 : 8 + 2 + tags * 12 + 4;
}

}  // namespace

TEST(Raster, TiffWhoseDecodeBufferIsHugeIsRefusedBeforeDecoding) {
    TempDir tmp;
    // fuzz/image's finding: 65,034 x 12 pixels of 1 bit, but RowsPerStrip 12,090; OpenCV sized
    // its RGBA strip buffer from that (> 2 GB) before reading a pixel.
    write_file_atomic(tmp / "strip.tif", tiff_directory(true, false,
                                                        {{256, 3, 65034},
                                                         {257, 3, 12},
                                                         {258, 3, 1},
                                                         {259, 3, 3},
                                                         {262, 3, 1},
                                                         {277, 3, 1},
                                                         {278, 3, 12090}}));
    expect_one_line_error_naming(tmp / "strip.tif",
                                 "TIFF strip of 65034 x 12090 pixels needs more than 1024 MiB");
    // The same with a second ImageWidth of 1 after the first (libtiff keeps the first).
    write_file_atomic(tmp / "twice.tif", tiff_directory(true, false,
                                                        {{256, 3, 65034},
                                                         {257, 3, 12},
                                                         {258, 3, 1},
                                                         {259, 3, 3},
                                                         {262, 3, 1},
                                                         {277, 3, 1},
                                                         {278, 3, 12090},
                                                         {256, 3, 1}}));
    expect_one_line_error_naming(tmp / "twice.tif",
                                 "TIFF strip of 65034 x 12090 pixels needs more than 1024 MiB");
    expect_one_line_error_naming(fs::path(RADPROBE_SOURCE_DIR) /
                                     "fuzz/image/regressions/opencv_tiff_duplicate_image_width.tif",
                                 "TIFF strip of 65034 x 12090 pixels");
    write_file_atomic(tmp / "tile.tif", tiff_directory(false, false,
                                                       {{256, 4, 4096},
                                                        {257, 4, 4096},
                                                        {258, 3, 16},
                                                        {277, 3, 1},
                                                        {322, 4, 40000},
                                                        {323, 4, 40000}}));
    expect_one_line_error_naming(tmp / "tile.tif", "TIFF tile of 40000 x 40000 pixels");
    write_file_atomic(tmp / "big.tif",
                      tiff_directory(false, true, {{256, 4, 20000}, {257, 4, 20000}}));
    expect_one_line_error_naming(tmp / "big.tif",
                                 "TIFF of 20000 x 20000 pixels is larger than radprobe decodes");
    // Within the limits, the check passes a file on to OpenCV, which reports the missing pixels.
    write_file_atomic(
        tmp / "small.tif",
        tiff_directory(true, false, {{256, 3, 64}, {257, 3, 64}, {278, 4, 0xFFFFFFFF}}));
    expect_one_line_error_naming(tmp / "small.tif", "cannot decode tiff");
    // BigTIFF in both byte orders: 3 x 4 pixels of 16 bits in one uncompressed strip.
    const std::vector<std::uint16_t> pixels = {0, 1, 2, 300, 4000, 50000, 6, 7, 8, 9, 10, 65535};
    for (const bool little : {true, false}) {
        const fs::path file = tmp / (little ? "big_ii.tif" : "big_mm.tif");
        write_file_atomic(file, tiff_directory(little, true,
                                               {{256, 3, 4},
                                                {257, 3, 3},
                                                {258, 3, 16},
                                                {259, 3, 1},
                                                {262, 3, 1},
                                                {273, 4, tiff_data_offset(true, 9)},
                                                {277, 3, 1},
                                                {278, 3, 3},
                                                {279, 4, 24}},
                                               pixels));
        DecodeOptions stored;
        stored.stage = Stage::kStored;
        const Image img = decode(file, stored);
        ASSERT_EQ(img.rows, 3) << file;
        ASSERT_EQ(img.cols, 4) << file;
        for (std::size_t i = 0; i < pixels.size(); ++i) {
            EXPECT_EQ(img.pixels[i], pixels[i]) << file << " pixel " << i;
        }
    }
    // A TIFF written by OpenCV, one strip per image (RowsPerStrip = height), still decodes.
    cv::Mat grey16(300, 200, CV_16UC1, cv::Scalar(1234));
    cv::imwrite((tmp / "ok.tif").string(), grey16);
    EXPECT_EQ(decode(tmp / "ok.tif").rows, 300);
}

TEST(Raster, PalettePngBecomesLuminance) {
    const auto expected =
        nlohmann::json::parse(read_file_text(kGoldenDir / "palette_expected.json"));
    const Image img = decode(kGoldenDir / "palette.png");
    ASSERT_EQ(img.rows, expected["shape"][0].get<int>());
    ASSERT_EQ(img.cols, expected["shape"][1].get<int>());
    for (std::size_t i = 0; i < img.pixels.size(); ++i) {
        ASSERT_NEAR(img.pixels[i], expected["display"][i].get<double>(), 1e-6) << i;
    }
}

TEST(Cli, DecodeWritesNpyAndMapsErrorsToExitCodes) {
    TempDir tmp;
    const fs::path in = kDicomDir / "fo-dicom" / "CR-MONO1-10-chest";
    auto r = test::run_cli("decode '" + in.string() + "' --out '" + (tmp / "x.npy").string() +
                           "' --stage modality");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const NpyArray a = read_npy(tmp / "x.npy");
    EXPECT_EQ(a.shape, (std::vector<std::int64_t>{440, 440}));
    DecodeOptions mod;
    mod.stage = Stage::kModality;
    const Image direct = decode(in, mod);
    EXPECT_EQ(std::memcmp(a.as<float>(), direct.pixels.data(), direct.pixels.size() * 4), 0);

    r = test::run_cli("decode '" + in.string() + "' --out '" + (tmp / "y.npy").string() +
                      "' --stage bogus");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    r = test::run_cli("decode '" + (tmp / "nope.dcm").string() + "' --out '" +
                      (tmp / "y.npy").string() + "'");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("nope.dcm"), std::string::npos);
    EXPECT_FALSE(fs::exists(tmp / "y.npy"));
    r = test::run_cli("decode --help");
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("--stage"), std::string::npos);
    // GDCM must not print its own traces: a bad file gives exactly our one line.
    r = test::run_cli(
        "decode '" +
        (kDicomDir / "pydicom-data" / "emri_small_jpeg_2k_lossless_too_short.dcm").string() +
        "' --out '" + (tmp / "z.npy").string() + "'");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
}

TEST(Cli, FrameSelectsAFrameOfAMultiFrameFile) {
    const fs::path f = kDicomDir / "pydicom-data" / "emri_small.dcm";
    DecodeOptions f0, f9, f10;
    f9.frame = 9;
    f10.frame = 10;
    f0.stage = f9.stage = Stage::kStored;
    const Image a = decode(f, f0), b = decode(f, f9);
    EXPECT_NE(a.pixels, b.pixels);
    ImageInfo info;
    const auto all = decode_stored_all_frames(f, &info);
    ASSERT_EQ(info.frames, 10);
    for (std::size_t i = 0; i < b.pixels.size(); ++i) {
        ASSERT_EQ(b.pixels[i], static_cast<float>(all[9 * 64 * 64 + i]));
    }
    EXPECT_THROW(decode(f, f10), InputError);
}

}  // namespace
}  // namespace radprobe::imaging
