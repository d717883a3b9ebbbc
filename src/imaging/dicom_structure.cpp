// A structural walk over a DICOM file's data elements before GDCM sees it: every element,
// sequence item and pixel-data fragment must lie inside the file. Debian's GDCM is built with
// assertions and aborts the process on some truncated files, so truncation is caught here.

#include <array>
#include <cstdio>
#include <cstring>
#include <string>

#include "dicom_structure.hpp"
#include "j2k_header.hpp"
#include "jpeg_header.hpp"
#include "jpegls_stream.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::imaging::detail {
namespace {

constexpr std::uint32_t kUndefined = 0xFFFFFFFFu;

struct Walker {
    const std::uint8_t* data;
    std::size_t size;
    const std::string& name;
    bool big_endian = false;
    /// What is checked in the fragments of the top-level Pixel Data: RLE frame headers, every
    /// JPEG stream's header (GDCM reads the first while it reads the file, each when it
    /// decodes), or the first JPEG-LS or JPEG 2000 stream's header (read with the file).
    enum class Codec { other, rle, jpeg, jpegls, j2k } codec = Codec::other;
    std::uint16_t samples = 0, bits_allocated = 0;  ///< from the top-level data set
    std::string syntax{};                           ///< the transfer syntax UID
    /// The top-level palette elements: GDCM reads them while it reads the file and asserts on
    /// what it cannot use (check_palette).
    struct Palette {
        std::string photometric;
        std::array<std::array<std::uint16_t, 3>, 3> descriptor{};  ///< (0028,1101-1103)
        std::array<bool, 3> has_descriptor{}, segmented{};         ///< (0028,1221-1223)
        std::array<long long, 3> data_length{-1, -1, -1};          ///< (0028,1201-1203)
    } palette{};

    std::uint16_t u16(std::size_t off, bool big) const {
        return big ? static_cast<std::uint16_t>((data[off] << 8) | data[off + 1])
                   : static_cast<std::uint16_t>(data[off] | (data[off + 1] << 8));
    }
    std::uint32_t u32(std::size_t off, bool big) const {
        const std::uint32_t a = u16(off, big), b = u16(off + 2, big);
        return big ? (a << 16) | b : a | (b << 16);
    }

    // "(GGGG,EEEE)", as error messages name an element.
    static std::string tag_text(std::uint16_t g, std::uint16_t e) {
        char tag[16];
        std::snprintf(tag, sizeof tag, "(%04X,%04X)", g, e);
        return tag;
    }

    [[noreturn]] void truncated(std::uint16_t g, std::uint16_t e, std::size_t off) const {
        throw InputError(str_cat(name, ": truncated or corrupt DICOM: element ", tag_text(g, e),
                                 " at byte ", off, " runs past the end of the file (", size,
                                 " bytes)"));
    }

    // The VRs of PS3.5 6.2.
    static bool known_vr(const char* vr) {
        static const char* kAll[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD",
                                     "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
                                     "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC",
                                     "UI", "UL", "UN", "UR", "US", "UT", "UV"};
        for (const char* v : kAll) {
            if (std::memcmp(vr, v, 2) == 0) {
                return true;
            }
        }
        return false;
    }

    // The VR an element must have where GDCM reads it through a typed gdcm::Attribute (pixel
    // module, VOI and modality LUTs, geometry, overlays, curves): GDCM asserts that the file's
    // VR is compatible and aborts otherwise (found by fuzz/dicom: Bits Allocated as DS).
    // Returns nullptr for other elements; "US|SS" allows either.
    static const char* required_vr(std::uint16_t g, std::uint16_t e) {
        struct Known {
            std::uint16_t group, element;
            const char* vr;
        };
        static const Known kKnown[] = {
            {0x0018, 0x0050, "DS"},    {0x0018, 0x0088, "DS"},    {0x0018, 0x1063, "DS"},
            {0x0018, 0x602C, "FD"},    {0x0018, 0x602E, "FD"},    {0x0020, 0x0030, "DS"},
            {0x0020, 0x0032, "DS"},    {0x0020, 0x0035, "DS"},    {0x0020, 0x0037, "DS"},
            {0x0028, 0x0002, "US"},    {0x0028, 0x0004, "CS"},    {0x0028, 0x0005, "US"},
            {0x0028, 0x0006, "US"},    {0x0028, 0x0008, "IS"},    {0x0028, 0x0009, "AT"},
            {0x0028, 0x0010, "US"},    {0x0028, 0x0011, "US"},    {0x0028, 0x0012, "US"},
            {0x0028, 0x0030, "DS"},    {0x0028, 0x0100, "US"},    {0x0028, 0x0101, "US"},
            {0x0028, 0x0102, "US"},    {0x0028, 0x0103, "US"},    {0x0028, 0x1050, "DS"},
            {0x0028, 0x1051, "DS"},    {0x0028, 0x1052, "DS"},    {0x0028, 0x1053, "DS"},
            {0x0028, 0x1054, "LO"},    {0x0028, 0x1101, "US|SS"}, {0x0028, 0x1102, "US|SS"},
            {0x0028, 0x1103, "US|SS"}, {0x0028, 0x2110, "CS"},    {0x0028, 0x3002, "US|SS"},
            {0x0040, 0x9224, "FD"},    {0x0040, 0x9225, "FD"},    {0x0048, 0x0006, "UL"},
            {0x0048, 0x0007, "UL"},    {0x3004, 0x000C, "DS"},    {0x3004, 0x000E, "DS"},
            {0x5000, 0x0005, "US"},    {0x5000, 0x0010, "US"},    {0x5000, 0x0103, "US"},
            {0x5000, 0x0110, "US"},    {0x5000, 0x0112, "US"},    {0x5000, 0x0114, "US"},
            {0x6000, 0x0010, "US"},    {0x6000, 0x0011, "US"},    {0x6000, 0x0015, "IS"},
            {0x6000, 0x0050, "SS"},    {0x6000, 0x0051, "US"},    {0x6000, 0x0100, "US"},
            {0x6000, 0x0102, "US"},    {0x6000, 0x0200, "US"},
        };
        // Curves (50xx) and overlays (60xx) repeat in the even groups of their range.
        const bool repeating = (g & 0xFF01) == 0x5000 || (g & 0xFF01) == 0x6000;
        const std::uint16_t group = repeating ? static_cast<std::uint16_t>(g & 0xFF00) : g;
        for (const auto& k : kKnown) {
            if (k.group == group && k.element == e) {
                return k.vr;
            }
        }
        return nullptr;
    }

    // Throws unless `vr` is UN or the VR GDCM requires for (g,e), if any.
    void check_vr(std::uint16_t g, std::uint16_t e, const char* vr, std::size_t off) const {
        const char* want = required_vr(g, e);
        if (!want || std::memcmp(vr, "UN", 2) == 0 || std::memcmp(vr, want, 2) == 0 ||
            (want[2] == '|' && std::memcmp(vr, want + 3, 2) == 0)) {
            return;
        }
        throw InputError(str_cat(name, ": corrupt DICOM: element ", tag_text(g, e), " at byte ",
                                 off, " has VR ", std::string(vr, 2), " where ", want,
                                 " is required"));
    }

    // Recognition Code (0008,0010), retired: GDCM reads a file that has one as ACR-NEMA and
    // aborts on an assertion unless it is one of the four codes it knows (found by fuzz/image).
    void check_recognition_code(std::size_t off, std::uint32_t len) const {
        const std::string code(reinterpret_cast<const char*>(data + off), len);
        if (code.empty() || code == "ACR-NEMA 1.0" || code == "ACR-NEMA 2.0" ||
            std::strcmp(code.c_str(), "ACRNEMA_LIBIDO_1.0") == 0 ||
            std::strcmp(code.c_str(), "ACRNEMA_LIBIDO_1.1") == 0) {
            return;
        }
        std::string shown;
        for (const char c : code.substr(0, 32)) {
            shown += (c >= 0x20 && c < 0x7F) ? c : '?';
        }
        throw InputError(str_cat(name, ": unsupported DICOM: Recognition Code (0008,0010) '", shown,
                                 "' is not ACR-NEMA 1.0 or 2.0"));
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
    // `summed`: inside a sequence or item of defined length, whose length GDCM recomputes
    // (Item::GetLength) and asserts even.
    std::size_t walk(std::size_t off, std::size_t end, bool explicit_vr, bool big, int depth,
                     bool summed = false) {
        RADPROBE_CHECK(depth < 64, name, ": DICOM sequences nested too deeply");
        std::size_t at = off;
        std::uint16_t g = 0, e = 0;
        while (off < end) {
            if (off + 8 > size) {
                truncated(0, 0, off);
            }
            at = off;
            g = u16(off, big);
            e = u16(off + 2, big);
            if (g == 0xFFFE && (e == 0xE00D || e == 0xE0DD)) {
                if (end == SIZE_MAX) {
                    return off + 8;  // ends the undefined-length item / sequence
                }
                off = stray_delimiter(g, e, off, big);
                continue;
            }
            std::uint32_t len;
            std::size_t header;
            bool sequence_like = false;
            bool implicit_inside = false;
            RADPROBE_CHECK(!(g == 0xFFFE && depth == 0), name,
                           ": corrupt DICOM: a sequence item tag (FFFE,E000) outside any "
                           "sequence at byte ",
                           off);
            if (g == 0xFFFE) {
                len = u32(off + 4, big);
                header = 8;
                sequence_like = len == kUndefined;
            } else if (explicit_vr) {
                const char* vr = reinterpret_cast<const char*>(data + off + 4);
                // GDCM guesses at elements without a valid VR and aborts on an assertion for
                // some of them (found by fuzz/image, a raw data set).
                if (!known_vr(vr)) {
                    throw InputError(str_cat(name, ": corrupt DICOM: element ", tag_text(g, e),
                                             " at byte ", off,
                                             " has no valid VR in an explicit VR data set"));
                }
                check_vr(g, e, vr, off);
                if (long_form_vr(vr)) {
                    if (off + 12 > size) {
                        truncated(g, e, off);
                    }
                    len = u32(off + 8, big);
                    header = 12;
                    sequence_like = len == kUndefined;
                    if (sequence_like) {
                        check_undefined_length_vr(g, e, vr, off);
                    }
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
                    off = walk_fragments(off, big, depth == 0 ? codec : Codec::other);
                } else if (g == 0xFFFE) {
                    off = walk(off, SIZE_MAX, explicit_vr, big, depth + 1, summed);  // item
                } else {
                    off = walk_items(off, implicit_inside ? false : explicit_vr,
                                     implicit_inside ? false : big, depth + 1, g, e, summed);
                }
                continue;
            }
            if (off + len > size) {
                truncated(g, e, off - header);
            }
            check_even_in_item(g, e, len, off - header, summed);
            if (defined_sequence(g, off, len, explicit_vr, big, header)) {
                walk_defined_items(off, off + len, explicit_vr, big, depth + 1);
                off += len;
                continue;
            }
            if (g == 0x0008 && e == 0x0010 && depth == 0) {
                check_recognition_code(off, len);
            }
            // GDCM aborts on an assertion for any other Samples per Pixel (found by fuzz/dicom).
            if (g == 0x0028 && e == 0x0002 && len > 0) {
                const std::uint16_t spp = len == 2 ? u16(off, big) : 0;
                RADPROBE_CHECK(spp == 1 || spp == 3 || spp == 4, name,
                               ": unsupported DICOM: Samples per Pixel (0028,0002) is ", spp,
                               " (value length ", len, "), not 1, 3 or 4");
                samples = depth == 0 ? spp : samples;
            }
            if (g == 0x0028 && e == 0x0100 && len == 2 && depth == 0) {
                bits_allocated = u16(off, big);
            }
            if (g == 0x0028 && depth == 0) {
                note_palette(e, off, len, big);
            }
            off += len;
        }
        if (off > end) {  // GDCM "changes the length" of the item and asserts on it
            throw InputError(str_cat(name, ": corrupt DICOM: element ", tag_text(g, e), " at byte ",
                                     at, " runs past the end of its sequence item (byte ", end,
                                     ")"));
        }
        RADPROBE_CHECK(end != SIZE_MAX, name,
                       ": truncated or corrupt DICOM: a sequence item has no delimiter before "
                       "the end of the file");
        return off;
    }

    void note_palette(std::uint16_t e, std::size_t off, std::uint32_t len, bool big) {
        if (e == 0x0004) {
            // As GDCM reads it: up to the first NUL, without leading and trailing spaces.
            std::string pi(reinterpret_cast<const char*>(data + off), len);
            pi = pi.substr(0, pi.find('\0'));
            const auto first = pi.find_first_not_of(' ');
            palette.photometric = first == std::string::npos
                                      ? ""
                                      : pi.substr(first, pi.find_last_not_of(' ') + 1 - first);
        } else if (e >= 0x1101 && e <= 0x1103 && len == 6) {
            const std::size_t i = e - 0x1101u;
            palette.has_descriptor[i] = true;
            palette.descriptor[i] = {u16(off, big), u16(off + 2, big), u16(off + 4, big)};
        } else if (e >= 0x1201 && e <= 0x1203) {
            palette.data_length[e - 0x1201u] = len;
        } else if (e >= 0x1221 && e <= 0x1223) {
            palette.segmented[e - 0x1221u] = true;
        }
    }

    // GDCM asserts that an undefined length belongs to a sequence (SQ, or UN holding one) or to
    // encapsulated Pixel Data of VR OB, OW or UN (found by fuzz/dicom: Pixel Data of VR OF).
    void check_undefined_length_vr(std::uint16_t g, std::uint16_t e, const char* vr,
                                   std::size_t off) const {
        const bool pixels = g == 0x7FE0 && e == 0x0010;
        const auto is = [&](const char* v) { return std::memcmp(vr, v, 2) == 0; };
        if (is("UN") || (pixels ? is("OB") || is("OW") : is("SQ"))) {
            return;
        }
        throw InputError(str_cat(
            name, ": corrupt DICOM: element ", tag_text(g, e), " at byte ", off,
            " has an undefined length with VR ", std::string(vr, 2),
            pixels ? " (encapsulated Pixel Data is OB, OW or UN)" : " (only SQ and UN may)"));
    }

    // A delimiter where none can end anything (the top level, a defined-length item): GDCM
    // reads it as an element and allocates its value length (found by fuzz/dicom: 3 GB for a
    // 61-byte file); PS3.5 7.5 requires the length 0, so only an empty one is passed over.
    std::size_t stray_delimiter(std::uint16_t g, std::uint16_t e, std::size_t off, bool big) const {
        const std::uint32_t len = u32(off + 4, big);
        if (len != 0) {
            throw InputError(str_cat(
                name, ": corrupt DICOM: delimiter ", tag_text(g, e), " at byte ", off,
                " outside an undefined-length item or sequence has length ", len, " (must be 0)"));
        }
        return off + 8;
    }

    // GDCM asserts that a defined-length item's data set has an even length (found by
    // fuzz/dicom: an odd value length inside a defined-length sequence aborted the process);
    // PS3.5 7.1.1 requires even value lengths everywhere.
    void check_even_in_item(std::uint16_t g, std::uint16_t e, std::uint32_t len, std::size_t at,
                            bool summed) const {
        if (summed && len % 2 == 1) {
            throw InputError(str_cat(name, ": corrupt DICOM: element ", tag_text(g, e), " at byte ",
                                     at, " inside a sequence item has an odd value length (", len,
                                     ")"));
        }
    }

    // A sequence of defined length: explicit VR SQ, or an implicit VR value other than pixel
    // data that starts with an item tag (GDCM reads those as sequences too).
    bool defined_sequence(std::uint16_t g, std::size_t off, std::uint32_t len, bool explicit_vr,
                          bool big, std::size_t header) const {
        if (explicit_vr) {
            return header == 12 && std::memcmp(data + off - 8, "SQ", 2) == 0;
        }
        return g != 0x7FE0 && len >= 8 && u16(off, big) == 0xFFFE && u16(off + 2, big) == 0xE000;
    }

    // Items of a defined-length sequence, from `off` to `end`.
    void walk_defined_items(std::size_t off, std::size_t end, bool explicit_vr, bool big,
                            int depth) {
        RADPROBE_CHECK(depth < 64, name, ": DICOM sequences nested too deeply");
        // Items must tile the sequence exactly: GDCM otherwise recomputes the sequence's
        // length and aborts on an assertion (found by fuzz/dicom).
        while (off < end) {
            const std::size_t item = off;
            RADPROBE_CHECK(off + 8 <= end, name, ": corrupt DICOM: a sequence ending at byte ", end,
                           " ends inside the item header at byte ", off);
            const std::uint16_t g = u16(off, big), e = u16(off + 2, big);
            const std::uint32_t len = u32(off + 4, big);
            RADPROBE_CHECK(g == 0xFFFE && e == 0xE000, name,
                           ": corrupt DICOM: expected a sequence item at byte ", off);
            if (len != kUndefined && len > end - off - 8) {
                off = end + 1;
            } else {
                off = walk_item(off + 8, len, explicit_vr, big, depth + 1, true);
            }
            RADPROBE_CHECK(off <= end, name, ": corrupt DICOM: the sequence item at byte ", item,
                           " runs past the end of its sequence (byte ", end, ")");
        }
    }

    // One item's data set at `off`, after its tag and length: up to its delimiter, or `len`
    // bytes (summed: GDCM recomputes a defined length).
    std::size_t walk_item(std::size_t off, std::uint32_t len, bool explicit_vr, bool big, int depth,
                          bool summed) {
        if (len == kUndefined) {
            return walk(off, SIZE_MAX, explicit_vr, big, depth, summed);
        }
        if (off + len > size) {
            truncated(0xFFFE, 0xE000, off - 8);
        }
        return walk(off, off + len, explicit_vr, big, depth, true);
    }

    // Items of an undefined-length sequence, up to the sequence delimiter.
    std::size_t walk_items(std::size_t off, bool explicit_vr, bool big, int depth, std::uint16_t sg,
                           std::uint16_t se, bool summed) {
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
            off = walk_item(off, len, explicit_vr, big, depth + 1, summed);
        }
    }

    // Encapsulated pixel data: offset table item, fragments, sequence delimiter.
    std::size_t walk_fragments(std::size_t off, bool big, Codec frames) {
        for (long index = -1;; ++index) {  // item -1: the Basic Offset Table
            if (off + 8 > size) {
                truncated(0x7FE0, 0x0010, off);
            }
            const std::uint16_t g = u16(off, big), e = u16(off + 2, big);
            const std::uint32_t len = u32(off + 4, big);
            off += 8;
            if (g == 0xFFFE && e == 0xE0DD) {
                // GDCM reads a length here as a value to allocate and read (found by
                // fuzz/dicom: 1.8 GB for an 8 kB file).
                RADPROBE_CHECK(len == 0 || (len != kUndefined && off + len <= size), name,
                               ": corrupt DICOM: the delimiter of encapsulated Pixel Data at byte ",
                               off - 8, " has length ", len, " (0 expected)");
                return off;
            }
            RADPROBE_CHECK(g == 0xFFFE && e == 0xE000 && len != kUndefined, name,
                           ": corrupt DICOM: bad fragment in encapsulated Pixel Data at byte ",
                           off - 8);
            if (off + len > size) {
                truncated(0x7FE0, 0x0010, off - 8);
            }
            if (frames == Codec::rle && index >= 0) {
                check_rle_frame(off, len, index);
            }
            if (frames == Codec::jpeg && index >= 0) {
                // GDCM reads fragment 0's header while it reads the file, every fragment's when
                // it decodes, and aborts, crashes or spins on some (jpeg_header.cpp).
                check_jpeg_bits_allocated();
                check_jpeg_fragment(data + off, len, bits_allocated, name, index);
            }
            if (frames == Codec::jpegls && index == 0) {
                // GDCM's JPEG-LS codec leaks on, or asserts at, a header CharLS refuses.
                read_jpegls_frame(data + off, len,
                                  str_cat(name, ": JPEG-LS stream in Pixel Data fragment 0"));
            }
            if (frames == Codec::j2k && index == 0) {
                // GDCM's JPEG 2000 header reader leaks its codec and threads on these.
                const std::string problem = j2k_header_problem(data + off, len);
                RADPROBE_CHECK(problem.empty(), name,
                               ": corrupt JPEG 2000 stream in Pixel Data fragment 0 (", problem,
                               ")");
            }
            off += len;
        }
    }

    /// GDCM's JPEG codec has decoders for samples of up to 16 bits, chosen by Bits Allocated,
    /// and asserts on its missing decoder when it reads the header of a wider one (found by
    /// fuzz/dicom: Bits Allocated 160).
    void check_jpeg_bits_allocated() const {
        RADPROBE_CHECK(bits_allocated <= 16, name, ": JPEG pixel data (transfer syntax ", syntax,
                       ") with Bits Allocated ", bits_allocated, " (JPEG holds at most 16 bits)");
    }

    // An RLE frame's 64-byte header (PS3.5 G.3.1). GDCM decodes RLE while it reads the file and
    // reads Offset[i] for every segment the header counts (found by fuzz/dicom: a SEGV for
    // 805,699,624 segments); the count must be what Samples per Pixel and Bits Allocated need,
    // the offsets must start at 64 and increase inside the frame.
    void check_rle_frame(std::size_t off, std::uint32_t len, long index) const {
        RADPROBE_CHECK(len >= 64, name, ": RLE frame in Pixel Data fragment ", index,
                       " is shorter than its 64-byte header");
        const std::uint32_t want = std::uint32_t{samples} * (bits_allocated / 8u);
        const std::uint32_t segments = u32(off, false);
        RADPROBE_CHECK(segments >= 1 && segments <= 15 && (want == 0 || segments == want), name,
                       ": RLE frame in Pixel Data fragment ", index, " has ", segments,
                       " segments; the header's ", samples, " sample(s) of ", bits_allocated,
                       " bits need ", want);
        std::uint32_t previous = 0;
        for (std::uint32_t k = 0; k < segments; ++k) {
            const std::uint32_t start = u32(off + 4 + 4 * k, false);
            RADPROBE_CHECK((k == 0 ? start == 64 : start > previous) && start < len, name,
                           ": RLE frame in Pixel Data fragment ", index, ": segment ", k,
                           " starts at byte ", start, " (the ", len,
                           "-byte frame's segments start at 64 and increase)");
            previous = start;
        }
    }
};

// The file meta group (0002,xxxx) at `off`, read the way GDCM reads it: explicit VR little
// endian when its first element has a valid VR, else implicit VR (old non-conformant writers);
// an explicit group ends at the first element of another group or without a valid VR. GDCM
// aborts on an assertion (Debian builds keep them) when the group runs to the end of the file,
// an element has an undefined length or a value past the end, or an explicit element is a
// sequence (found by fuzz/dicom), so each of these is an InputError here. Returns the offset of
// the data set; `ts` gets (0002,0010) when present.
std::size_t check_meta_group(const Walker& w, std::size_t off, std::string& ts) {
    const bool explicit_meta =
        off + 6 <= w.size && Walker::known_vr(reinterpret_cast<const char*>(w.data + off + 4));
    while (true) {
        if (off + 4 > w.size) {
            throw InputError(str_cat(w.name,
                                     ": truncated or corrupt DICOM: the file meta group runs "
                                     "to the end of the file (no data set after byte ",
                                     off, ")"));
        }
        if (w.u16(off, false) != 0x0002) {
            return off;
        }
        const std::uint16_t e = w.u16(off + 2, false);
        std::size_t header = 8;
        std::uint32_t len = 0;
        if (off + 8 > w.size) {
            w.truncated(0x0002, e, off);
        }
        if (explicit_meta) {
            const char* vr = reinterpret_cast<const char*>(w.data + off + 4);
            if (!Walker::known_vr(vr)) {
                return off;  // GDCM ends the group here and reads on as the data set
            }
            RADPROBE_CHECK(std::memcmp(vr, "SQ", 2) != 0, w.name,
                           ": corrupt DICOM: a sequence in the file meta group at byte ", off);
            len = w.u16(off + 6, false);
            if (Walker::long_form_vr(vr)) {
                if (off + 12 > w.size) {
                    w.truncated(0x0002, e, off);
                }
                header = 12;
                len = w.u32(off + 8, false);
            }
        } else {
            len = w.u32(off + 4, false);
        }
        if (len == kUndefined || off + header + len > w.size) {
            w.truncated(0x0002, e, off);
        }
        if (e == 0x0010) {
            ts.assign(reinterpret_cast<const char*>(w.data + off + header), len);
            while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) {
                ts.pop_back();
            }
        }
        off += header + len;
    }
}

/// A PALETTE COLOR image's lookup tables as GDCM 3.0.21's reader needs them: it asserts
/// (aborts) without a red, green or blue table, on Bits Allocated other than 8 or 16, on a
/// first mapped value other than 0, on table data of another length than the descriptor's
/// entries × bits, and on a table size its buffer for Bits Allocated does not hold (found by
/// fuzz/dicom: a palette image without tables). Segmented tables are not read by radprobe.
void check_palette(const Walker& w) {
    const auto& p = w.palette;
    // GDCM takes any non-empty prefix of a Photometric Interpretation for it ("PALETTE COL" is
    // PALETTE COLOR: found by fuzz/dicom).
    const std::string palette_color = "PALETTE COLOR";
    if (p.photometric.empty() ||
        palette_color.compare(0, p.photometric.size(), p.photometric) != 0) {
        return;
    }
    const int ba = w.bits_allocated;
    RADPROBE_CHECK(ba == 8 || ba == 16, w.name, ": PALETTE COLOR image with Bits Allocated ", ba,
                   " (8 or 16 are read)");
    static const char* const kColour[3] = {"red", "green", "blue"};
    for (std::size_t i = 0; i < 3; ++i) {
        const std::string which =
            str_cat(w.name, ": PALETTE COLOR image: the ", kColour[i], " lookup table");
        RADPROBE_CHECK(p.data_length[i] >= 0 || !p.segmented[i], which, " is segmented (0028,122",
                       i + 1, "), which radprobe does not read");
        RADPROBE_CHECK(p.data_length[i] >= 0, which, " (0028,120", i + 1, ") is missing");
        RADPROBE_CHECK(p.has_descriptor[i], which, "'s descriptor (0028,110", i + 1,
                       ") is missing or not 3 values");
        const auto [entries, first, bits] = p.descriptor[i];
        const long long n = entries == 0 ? 65536 : entries;
        RADPROBE_CHECK((bits == 8 || bits == 16) && first == 0, which, "'s descriptor says ",
                       entries, " entries from ", first, " of ", bits,
                       " bits (radprobe reads entries of 8 or 16 bits from 0)");
        RADPROBE_CHECK(p.data_length[i] == n * bits / 8, which, " has ", p.data_length[i],
                       " bytes; its descriptor says ", n, " entries of ", bits, " bits");
        RADPROBE_CHECK(ba == 8 ? entries != 0 : entries != 256 && bits == 16, which, " of ", n,
                       " entries of ", bits, " bits does not fit ", ba, "-bit pixels");
    }
}

/// Transfer syntaxes 1.2.840.10008.1.2.4.50 to .70: GDCM's JPEG codec.
bool is_jpeg_syntax(const std::string& ts) {
    const std::string prefix = "1.2.840.10008.1.2.4.";
    return ts.size() == prefix.size() + 2 && ts.compare(0, prefix.size(), prefix) == 0 &&
           ts.compare(prefix.size(), 2, "50") >= 0 && ts.compare(prefix.size(), 2, "70") <= 0;
}

}  // namespace

void check_dicom_structure(const std::uint8_t* data, std::size_t size, const std::string& name) {
    Walker w{data, size, name};
    std::size_t off = 0;
    std::string ts = "1.2.840.10008.1.2";  // implicit VR little endian without a meta header
    if (size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0) {
        off = check_meta_group(w, 132, ts);
    } else if (size >= 4 && w.u16(0, false) == 0x0002) {
        off = check_meta_group(w, 0, ts);  // a file meta group without the Part-10 preamble
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
    if (ts == "1.2.840.10008.1.2.5") {
        w.codec = Walker::Codec::rle;
    } else if (is_jpeg_syntax(ts)) {
        w.codec = Walker::Codec::jpeg;
    } else if (ts == "1.2.840.10008.1.2.4.80" || ts == "1.2.840.10008.1.2.4.81") {
        w.codec = Walker::Codec::jpegls;
    } else if (ts.rfind("1.2.840.10008.1.2.4.9", 0) == 0 && ts.size() == 22) {
        w.codec = Walker::Codec::j2k;  // .90 .91 (Part 1), .92 .93 (Part 2): GDCM's J2K codec
    }
    w.syntax = ts;
    w.walk(off, size, explicit_vr, big, 0);
    check_palette(w);
    if (w.codec == Walker::Codec::jpeg) {
        w.check_jpeg_bits_allocated();  // also where Pixel Data is not encapsulated
    }
}

}  // namespace radprobe::imaging::detail
