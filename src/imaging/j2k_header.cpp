// The SIZ marker of a JPEG 2000 codestream. GDCM 3.0.21 copies what OpenJPEG decodes into a
// buffer sized from the DICOM header (Rows × Columns × Samples × Bits Allocated) without
// comparing the two, so a stream that declares a larger image or deeper samples writes past it
// (found by fuzz/dicom: a heap overflow). dicom_decoder.cpp compares them first.

#include "j2k_header.hpp"

#include <cstring>

namespace radprobe::imaging::detail {

namespace {

std::uint32_t be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           p[3];
}

std::uint16_t be16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

std::uint32_t ceil_div(std::uint32_t a, std::uint32_t b) {
    return static_cast<std::uint32_t>((std::uint64_t{a} + b - 1) / b);
}

std::optional<J2kGeometry> read_siz(const std::uint8_t* d, std::size_t n) {
    if (n < 42 || be16(d) != 0xFF4F || be16(d + 2) != 0xFF51) {
        return std::nullopt;
    }
    const std::uint16_t lsiz = be16(d + 4), csiz = be16(d + 40);
    const std::uint32_t xsiz = be32(d + 8), ysiz = be32(d + 12);
    const std::uint32_t xo = be32(d + 16), yo = be32(d + 20);
    if (csiz == 0 || lsiz != 38 + 3 * std::size_t{csiz} || n < 4 + std::size_t{lsiz} ||
        xsiz <= xo || ysiz <= yo) {
        return std::nullopt;
    }
    J2kGeometry g;
    g.width = xsiz - xo;
    g.height = ysiz - yo;
    for (std::size_t c = 0; c < csiz; ++c) {
        const std::uint8_t* s = d + 42 + 3 * c;
        if (s[1] == 0 || s[2] == 0) {
            return std::nullopt;
        }
        J2kComponent comp;
        comp.precision = (s[0] & 0x7F) + 1;
        comp.width = ceil_div(xsiz, s[1]) - ceil_div(xo, s[1]);
        comp.height = ceil_div(ysiz, s[2]) - ceil_div(yo, s[2]);
        g.components.push_back(comp);
    }
    return g;
}

}  // namespace

std::optional<J2kGeometry> read_j2k_geometry(const std::uint8_t* data, std::size_t size) {
    if (size >= 12 && be32(data) == 12 && std::memcmp(data + 4, "jP  ", 4) == 0) {
        // JP2: top-level boxes (ISO/IEC 15444-1 I.4) up to the contiguous codestream box.
        std::size_t off = 0;
        while (off + 8 <= size) {
            std::uint64_t len = be32(data + off);
            std::size_t header = 8;
            if (len == 1 && off + 16 <= size) {
                len = (std::uint64_t{be32(data + off + 8)} << 32) | be32(data + off + 12);
                header = 16;
            } else if (len == 0) {
                len = size - off;
            }
            if (std::memcmp(data + off + 4, "jp2c", 4) == 0) {
                return read_siz(data + off + header, size - off - header);
            }
            if (len < header || len > size - off) {
                return std::nullopt;
            }
            off += len;
        }
        return std::nullopt;
    }
    return read_siz(data, size);
}

}  // namespace radprobe::imaging::detail
