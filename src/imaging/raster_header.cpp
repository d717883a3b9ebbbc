// OpenCV allocates the image a header declares before it reads a pixel (a tiny compressed file
// can declare a billion pixels: fuzz/image found 200 million from 626 bytes), so the declared
// size is checked first: PNG's IHDR, a JPEG's frame header (SOFn), a TIFF's first directory.
// OpenCV's TIFF reader also allocates one strip's (or tile's) decode buffer from the header, with
// the strip height taken from RowsPerStrip even where that exceeds the image, and 4 bytes per pixel
// on its RGBA path: a 626-byte file asked for more than 2 GB (found by fuzz/image). This reads
// ImageWidth, ImageLength, BitsPerSample, SamplesPerPixel, RowsPerStrip and TileWidth/TileLength
// from the first directory (classic TIFF and BigTIFF) and refuses such files first.

#include "raster_header.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <vector>

#include "radprobe/core/error.hpp"

namespace radprobe::imaging::detail {
namespace fs = std::filesystem;

namespace {

enum Tag : std::uint16_t {
    kWidth = 256,
    kLength = 257,
    kBitsPerSample = 258,
    kSamplesPerPixel = 277,
    kRowsPerStrip = 278,
    kTileWidth = 322,
    kTileLength = 323,
};

class TiffBytes {
public:
    explicit TiffBytes(const fs::path& path) : in_(path, std::ios::binary) {}

    /// `n` bytes at `offset`, or nothing when the file ends first.
    std::optional<std::vector<std::uint8_t>> at(std::uint64_t offset, std::size_t n) {
        std::vector<std::uint8_t> out(n);
        in_.clear();
        in_.seekg(static_cast<std::streamoff>(offset));
        if (!in_ ||
            !in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n))) {
            return std::nullopt;
        }
        return out;
    }

    void set_order(bool little) { little_ = little; }

    std::uint64_t uint(const std::uint8_t* p, int bytes) const {
        std::uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) {
            const int k = little_ ? bytes - 1 - i : i;
            v = (v << 8) | p[k];
        }
        return v;
    }

private:
    std::ifstream in_;
    bool little_ = true;
};

int type_size(std::uint64_t type) {
    switch (type) {
        case 1:
        case 2:
        case 6:
        case 7:
            return 1;  // BYTE, ASCII, SBYTE, UNDEFINED
        case 3:
        case 8:
            return 2;  // SHORT, SSHORT
        case 4:
        case 9:
        case 13:
            return 4;  // LONG, SLONG, IFD
        case 16:
        case 17:
        case 18:
            return 8;  // LONG8, SLONG8, IFD8 (BigTIFF)
        default:
            return 0;
    }
}

/// The first value of each integer tag of interest in the first directory; for BitsPerSample
/// the largest of its values. Empty when the directory cannot be read.
std::map<std::uint16_t, std::uint64_t> first_directory(TiffBytes& file) {
    std::map<std::uint16_t, std::uint64_t> tags;
    const auto head = file.at(0, 16);
    if (!head) {
        return tags;
    }
    file.set_order((*head)[0] == 'I');
    const bool big = file.uint(head->data() + 2, 2) == 43;
    const int word = big ? 8 : 4;  // offsets and inline values
    const std::uint64_t ifd = big ? file.uint(head->data() + 8, 8) : file.uint(head->data() + 4, 4);
    const int count_bytes = big ? 8 : 2;
    const auto count_raw = file.at(ifd, static_cast<std::size_t>(count_bytes));
    if (!count_raw) {
        return tags;
    }
    const std::uint64_t entries =
        std::min<std::uint64_t>(file.uint(count_raw->data(), count_bytes), 4096);
    const std::size_t entry_size = big ? 20 : 12;
    const auto table = file.at(ifd + count_bytes, static_cast<std::size_t>(entries * entry_size));
    if (!table) {
        return tags;
    }
    for (std::uint64_t i = 0; i < entries; ++i) {
        const std::uint8_t* e = table->data() + i * entry_size;
        const auto tag = static_cast<std::uint16_t>(file.uint(e, 2));
        if (tag != kWidth && tag != kLength && tag != kBitsPerSample && tag != kSamplesPerPixel &&
            tag != kRowsPerStrip && tag != kTileWidth && tag != kTileLength) {
            continue;
        }
        const int size = type_size(file.uint(e + 2, 2));
        const std::uint64_t count = file.uint(e + 4, big ? 8 : 4);
        if (size == 0 || size > 8 || count == 0 || count > 64) {
            continue;
        }
        const std::uint8_t* value = e + (big ? 12 : 8);
        std::optional<std::vector<std::uint8_t>> far;
        if (count * size > static_cast<std::uint64_t>(word)) {
            far = file.at(file.uint(value, word), static_cast<std::size_t>(count * size));
            if (!far) {
                continue;
            }
            value = far->data();
        }
        std::uint64_t v = 0;
        for (std::uint64_t k = 0; k < (tag == kBitsPerSample ? count : 1); ++k) {
            v = std::max(v, file.uint(value + k * size, size));
        }
        // A tag given twice: libtiff keeps the first, the largest is the safe bound (found by
        // fuzz/image: a second ImageWidth of 1 hid a 65,034-pixel strip).
        tags[tag] = std::max(tags[tag], v);
    }
    return tags;
}

void check_pixels(const fs::path& path, const char* format, std::uint64_t width,
                  std::uint64_t height) {
    RADPROBE_CHECK(height == 0 || width <= kMaxRasterPixels / height, path.string(), ": ", format,
                   " of ", width, " x ", height,
                   " pixels is larger than radprobe decodes (at most ", kMaxRasterPixels,
                   " pixels)");
}

/// The first bytes of a file (fewer when it is shorter).
std::vector<std::uint8_t> head(const fs::path& path, std::size_t n) {
    std::ifstream in(path, std::ios::binary);
    std::vector<std::uint8_t> b(n);
    in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
    b.resize(static_cast<std::size_t>(std::max<std::streamsize>(0, in.gcount())));
    return b;
}

std::uint32_t be(const std::uint8_t* p, int bytes) {
    std::uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) {
        v = (v << 8) | p[i];
    }
    return v;
}

// PNG: the IHDR chunk follows the 8-byte signature (width, height: 4 bytes each, big endian).
void check_png(const fs::path& path) {
    const auto b = head(path, 24);
    if (b.size() == 24 && std::equal(b.begin() + 12, b.begin() + 16, "IHDR")) {
        check_pixels(path, "PNG", be(&b[16], 4), be(&b[20], 4));
    }
}

// JPEG: marker segments from SOI up to the first frame header SOFn (n = 0..15 but 4, 8, 12:
// DHT, JPG, DAC), whose payload holds precision, height, width.
void check_jpeg(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::uint8_t m[9];
    if (!in.read(reinterpret_cast<char*>(m), 2) || m[0] != 0xFF || m[1] != 0xD8) {
        return;
    }
    while (in.read(reinterpret_cast<char*>(m), 4) && m[0] == 0xFF) {
        const std::uint8_t marker = m[1];
        const std::uint32_t len = be(&m[2], 2);
        const bool sof =
            marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (sof) {
            if (in.read(reinterpret_cast<char*>(m + 4), 5)) {
                check_pixels(path, "JPEG", be(&m[7], 2), be(&m[5], 2));
            }
            return;
        }
        if (len < 2 || !in.seekg(len - 2, std::ios::cur)) {
            return;
        }
    }
}

void check_tiff(const fs::path& path) {
    TiffBytes file(path);
    const auto tags = first_directory(file);
    const auto get = [&](std::uint16_t tag, std::uint64_t fallback) {
        const auto it = tags.find(tag);
        return it == tags.end() ? fallback : it->second;
    };
    const std::uint64_t width = get(kWidth, 0);
    const std::uint64_t height = get(kLength, 0);
    if (width == 0 || height == 0) {
        return;  // no size: the decoder reports it
    }
    check_pixels(path, "TIFF", width, height);
    const bool tiled = tags.count(kTileWidth) && tags.count(kTileLength);
    const std::uint64_t rows = get(kRowsPerStrip, 0);
    const std::uint64_t strip_w = tiled ? get(kTileWidth, 0) : width;
    const std::uint64_t strip_h =
        tiled ? get(kTileLength, 0) : (rows == 0 || rows >= 0xFFFFFFFFULL ? height : rows);
    const std::uint64_t sample_bytes =
        (std::min<std::uint64_t>(get(kBitsPerSample, 1), 64) + 7) / 8;
    const std::uint64_t pixel_bytes = std::max<std::uint64_t>(
        4, std::min<std::uint64_t>(get(kSamplesPerPixel, 1), 64) * sample_bytes);
    const std::uint64_t strip =
        std::min<std::uint64_t>(strip_w, 1ULL << 24) * std::min<std::uint64_t>(strip_h, 1ULL << 24);
    RADPROBE_CHECK(strip <= kMaxTiffStripBytes / pixel_bytes, path.string(), ": TIFF ",
                   tiled ? "tile" : "strip", " of ", strip_w, " x ", strip_h,
                   " pixels needs more than ", kMaxTiffStripBytes >> 20, " MiB to decode (image ",
                   width, " x ", height, ")");
}

}  // namespace

void check_raster_decode_size(const fs::path& path, const std::string& format) {
    if (format == "tiff") {
        check_tiff(path);
    } else if (format == "png") {
        check_png(path);
    } else if (format == "jpeg") {
        check_jpeg(path);
    }
}

}  // namespace radprobe::imaging::detail
