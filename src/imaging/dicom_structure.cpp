// A structural walk over a DICOM file's data elements before GDCM sees it: every element,
// sequence item and pixel-data fragment must lie inside the file. Debian's GDCM is built with
// assertions and aborts the process on some truncated files, so truncation is caught here.

#include <cstring>

#include "dicom_structure.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::imaging::detail {
namespace {

constexpr std::uint32_t kUndefined = 0xFFFFFFFFu;

struct Walker {
    const std::uint8_t* data;
    std::size_t size;
    const std::string& name;
    bool big_endian = false;

    std::uint16_t u16(std::size_t off, bool big) const {
        return big ? static_cast<std::uint16_t>((data[off] << 8) | data[off + 1])
                   : static_cast<std::uint16_t>(data[off] | (data[off + 1] << 8));
    }
    std::uint32_t u32(std::size_t off, bool big) const {
        const std::uint32_t a = u16(off, big), b = u16(off + 2, big);
        return big ? (a << 16) | b : a | (b << 16);
    }

    [[noreturn]] void truncated(std::uint16_t g, std::uint16_t e, std::size_t off) const {
        char tag[16];
        std::snprintf(tag, sizeof tag, "(%04X,%04X)", g, e);
        throw InputError(str_cat(name, ": truncated or corrupt DICOM: element ", tag, " at byte ",
                                 off, " runs past the end of the file (", size, " bytes)"));
    }

    static bool long_form_vr(const char* vr) {
        static const char* kLong[] = {"OB", "OW", "OF", "SQ", "UT", "UN", "OD",
                                      "OL", "OV", "UC", "UR", "SV", "UV"};
        for (const char* v : kLong) {
            if (std::memcmp(vr, v, 2) == 0) {
                return true;
            }
        }
        return false;
    }

    // Walks elements from `off` until `end` (or an item delimiter when `end` is undefined).
    // Returns the offset after the last element (after the delimiter, if one ended the walk).
    std::size_t walk(std::size_t off, std::size_t end, bool explicit_vr, bool big, int depth) {
        RADPROBE_CHECK(depth < 64, name, ": DICOM sequences nested too deeply");
        while (off < end) {
            if (off + 8 > size) {
                truncated(0, 0, off);
            }
            const std::uint16_t g = u16(off, big), e = u16(off + 2, big);
            if (g == 0xFFFE && (e == 0xE00D || e == 0xE0DD)) {
                return off + 8;  // item / sequence delimiter
            }
            std::uint32_t len;
            std::size_t header;
            bool sequence_like = false;
            bool implicit_inside = false;
            RADPROBE_CHECK(!(g == 0xFFFE && depth == 0), name,
                           ": corrupt DICOM: a sequence item tag (FFFE,E000) outside any "
                           "sequence at byte ", off);
            if (g == 0xFFFE) {
                len = u32(off + 4, big);
                header = 8;
                sequence_like = len == kUndefined;
            } else if (explicit_vr) {
                const char* vr = reinterpret_cast<const char*>(data + off + 4);
                if (long_form_vr(vr)) {
                    if (off + 12 > size) {
                        truncated(g, e, off);
                    }
                    len = u32(off + 8, big);
                    header = 12;
                    sequence_like = len == kUndefined;
                    // An undefined-length UN holds an implicit VR little endian sequence.
                    implicit_inside = std::memcmp(vr, "UN", 2) == 0;
                } else {
                    len = u16(off + 6, big);
                    header = 8;
                }
            } else {
                len = u32(off + 4, big);
                header = 8;
                sequence_like = len == kUndefined;
            }
            off += header;
            if (sequence_like) {
                if (g == 0x7FE0 && e == 0x0010) {
                    off = walk_fragments(off, big);
                } else if (g == 0xFFFE) {
                    off = walk(off, SIZE_MAX, explicit_vr, big, depth + 1);  // undefined item
                } else {
                    off = walk_items(off, implicit_inside ? false : explicit_vr,
                                     implicit_inside ? false : big, depth + 1, g, e);
                }
                continue;
            }
            if (off + len > size) {
                truncated(g, e, off - header);
            }
            off += len;
        }
        RADPROBE_CHECK(end != SIZE_MAX, name,
                       ": truncated or corrupt DICOM: a sequence item has no delimiter before "
                       "the end of the file");
        return off;
    }

    // Items of an undefined-length sequence, up to the sequence delimiter.
    std::size_t walk_items(std::size_t off, bool explicit_vr, bool big, int depth,
                           std::uint16_t sg, std::uint16_t se) {
        while (true) {
            if (off + 8 > size) {
                truncated(sg, se, off);
            }
            const std::uint16_t g = u16(off, big), e = u16(off + 2, big);
            const std::uint32_t len = u32(off + 4, big);
            off += 8;
            if (g == 0xFFFE && e == 0xE0DD) {
                return off;
            }
            RADPROBE_CHECK(g == 0xFFFE && e == 0xE000, name,
                           ": corrupt DICOM: expected a sequence item at byte ", off - 8);
            if (len == kUndefined) {
                off = walk(off, SIZE_MAX, explicit_vr, big, depth + 1);
            } else {
                if (off + len > size) {
                    truncated(g, e, off - 8);
                }
                off = walk(off, off + len, explicit_vr, big, depth + 1);
            }
        }
    }

    // Encapsulated pixel data: offset table item, fragments, sequence delimiter.
    std::size_t walk_fragments(std::size_t off, bool big) {
        while (true) {
            if (off + 8 > size) {
                truncated(0x7FE0, 0x0010, off);
            }
            const std::uint16_t g = u16(off, big), e = u16(off + 2, big);
            const std::uint32_t len = u32(off + 4, big);
            off += 8;
            if (g == 0xFFFE && e == 0xE0DD) {
                return off;
            }
            RADPROBE_CHECK(g == 0xFFFE && e == 0xE000 && len != kUndefined, name,
                           ": corrupt DICOM: bad fragment in encapsulated Pixel Data at byte ",
                           off - 8);
            if (off + len > size) {
                truncated(0x7FE0, 0x0010, off - 8);
            }
            off += len;
        }
    }
};

}  // namespace

void check_dicom_structure(const std::uint8_t* data, std::size_t size, const std::string& name) {
    Walker w{data, size, name};
    std::size_t off = 0;
    std::string ts = "1.2.840.10008.1.2";  // implicit VR little endian without a meta header
    if (size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0) {
        off = 132;
        // File meta group: explicit VR little endian.
        while (off + 8 <= size && w.u16(off, false) == 0x0002) {
            const std::uint16_t e = w.u16(off + 2, false);
            const char* vr = reinterpret_cast<const char*>(data + off + 4);
            std::size_t header = 8;
            std::uint32_t len = w.u16(off + 6, false);
            if (Walker::long_form_vr(vr)) {
                if (off + 12 > size) {
                    w.truncated(0x0002, e, off);
                }
                header = 12;
                len = w.u32(off + 8, false);
            }
            if (len == kUndefined || off + header + len > size) {
                w.truncated(0x0002, e, off);
            }
            if (e == 0x0010) {
                ts.assign(reinterpret_cast<const char*>(data + off + header), len);
                while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) {
                    ts.pop_back();
                }
            }
            off += header + len;
        }
    } else if (size >= 6) {
        // No Part-10 header: explicit VR if bytes 4-5 look like a VR.
        const bool upper = data[4] >= 'A' && data[4] <= 'Z' && data[5] >= 'A' && data[5] <= 'Z';
        if (upper) {
            ts = "1.2.840.10008.1.2.1";
        }
    }
    if (ts == "1.2.840.10008.1.2.1.99") {
        return;  // deflated: the data set is compressed, GDCM inflates and checks it
    }
    const bool explicit_vr = ts != "1.2.840.10008.1.2";
    const bool big = ts == "1.2.840.10008.1.2.2";
    w.walk(off, size, explicit_vr, big, 0);
}

}  // namespace radprobe::imaging::detail
