#include "radprobe/imaging/decode.hpp"

#include <cstring>
#include <fstream>

#include "decoders.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::imaging {
namespace fs = std::filesystem;

Stage parse_stage(const std::string& text) {
    if (text == "stored") {
        return Stage::kStored;
    }
    if (text == "modality") {
        return Stage::kModality;
    }
    if (text == "display") {
        return Stage::kDisplay;
    }
    throw UsageError(str_cat("--stage: '", text, "' is not one of stored, modality, display"));
}

namespace {

// A DICOM data set without the Part-10 preamble has no magic number; it starts with its
// lowest tag, in practice group 0002 (file meta), 0004, 0008 (identification) or 0010
// (patient), little-endian (or 0008 big-endian, the retired explicit big-endian syntax).
bool raw_dicom_start(const unsigned char* head, std::size_t n) {
    if (n < 8) {
        return false;
    }
    const unsigned little = head[0] | (head[1] << 8u);
    const unsigned big = (head[0] << 8u) | head[1];
    return little == 0x0002 || little == 0x0004 || little == 0x0008 || little == 0x0010 ||
           big == 0x0008;
}

// Identifies the format from the first bytes: PNG, JPEG, TIFF, DICOM (Part 10, or a data set
// that starts like one); anything else is refused by name.
std::string sniff_format(const fs::path& path) {
    std::error_code ec;
    RADPROBE_CHECK(fs::exists(path, ec), path.string(), ": file not found");
    RADPROBE_CHECK(!fs::is_directory(path, ec), path.string(), ": is a directory, not an image");
    const auto size = fs::file_size(path, ec);
    RADPROBE_CHECK(!ec, path.string(), ": cannot read: ", ec.message());
    RADPROBE_CHECK(size > 0, path.string(), ": empty file");
    std::ifstream in(path, std::ios::binary);
    RADPROBE_CHECK(in.good(), path.string(), ": cannot open for reading");
    unsigned char head[132] = {};
    in.read(reinterpret_cast<char*>(head), sizeof head);
    const auto n = static_cast<std::size_t>(in.gcount());
    // A Part-10 file has "DICM" after its 128-byte preamble; the preamble itself may hold a
    // TIFF header (dual-personality files such as the WG04 set), so this test comes first.
    if (n >= 132 && std::memcmp(head + 128, "DICM", 4) == 0) {
        return "dicom";
    }
    if (n >= 8 && std::memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0) {
        return "png";
    }
    if (n >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) {
        return "jpeg";
    }
    // Classic TIFF (42 = '*') and BigTIFF (43 = '+'), either byte order.
    if (n >= 4 && (std::memcmp(head, "II*\0", 4) == 0 || std::memcmp(head, "MM\0*", 4) == 0 ||
                   std::memcmp(head, "II+\0", 4) == 0 || std::memcmp(head, "MM\0+", 4) == 0)) {
        return "tiff";
    }
    RADPROBE_CHECK(raw_dicom_start(head, n), path.string(),
                   ": not a PNG, JPEG, TIFF or DICOM file (no known signature)");
    return "dicom";
}

}  // namespace

Image decode(const fs::path& path, const DecodeOptions& options) {
    RADPROBE_USAGE_CHECK(options.frame >= 0, "--frame must be >= 0, got ", options.frame);
    RADPROBE_USAGE_CHECK(options.window >= 0, "--window must be >= 0, got ", options.window);
    const std::string format = sniff_format(path);
    if (format == "dicom") {
        return detail::dicom_decode(path, options);
    }
    return detail::raster_decode(path, format, options);
}

std::vector<long long> decode_stored_all_frames(const fs::path& path, ImageInfo* info) {
    const std::string format = sniff_format(path);
    RADPROBE_CHECK(format == "dicom", path.string(),
                   ": stored values of all frames are only available for DICOM files");
    auto stored = detail::dicom_read_stored(path, true);
    if (info) {
        *info = stored.info;
    }
    return std::move(stored.samples);
}

ImageInfo probe(const fs::path& path) {
    const std::string format = sniff_format(path);
    if (format == "dicom") {
        return detail::dicom_read_stored(path, false).info;
    }
    return detail::raster_probe(path, format);
}

}  // namespace radprobe::imaging
