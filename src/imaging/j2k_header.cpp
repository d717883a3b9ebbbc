// The SIZ marker of a JPEG 2000 codestream. GDCM 3.0.21 copies what OpenJPEG decodes into a
// buffer sized from the DICOM header (Rows × Columns × Samples × Bits Allocated) without
// comparing the two, so a stream that declares a larger image or deeper samples writes past it
// (found by fuzz/dicom: a heap overflow). dicom_decoder.cpp compares them first.
//
// And OpenJPEG's reading of the main header, before GDCM's. GDCM reads the first fragment's
// header while it reads the file (Bitmap::ComputeLossyFlag → JPEG2000Codec::GetHeaderInfo),
// with a codec of opj_get_num_cpus() threads, and returns without opj_destroy_codec when the
// header fails: the codec and its running thread pool are never freed. fuzz/dicom found 9,407
// threads (2.2 GB) after 514,000 inputs on 2 cores; a study over corrupt JPEG 2000 files on a
// 64-core node would leave 64 threads per file. dicom_structure.cpp refuses such a file first.

#include "j2k_header.hpp"

#include <openjpeg.h>

#include <algorithm>
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

/// The bytes OpenJPEG reads, through its stream callbacks.
struct MemoryStream {
    const std::uint8_t* data;
    std::size_t size, pos = 0;
};

OPJ_SIZE_T read_bytes(void* buffer, OPJ_SIZE_T n, void* user) {
    auto& m = *static_cast<MemoryStream*>(user);
    const std::size_t count = std::min<std::size_t>(n, m.size - m.pos);
    std::memcpy(buffer, m.data + m.pos, count);
    m.pos += count;
    return count > 0 ? count : static_cast<OPJ_SIZE_T>(-1);
}

OPJ_OFF_T skip_bytes(OPJ_OFF_T n, void* user) {
    auto& m = *static_cast<MemoryStream*>(user);
    const auto target = static_cast<long long>(m.pos) + n;
    if (target < 0 || target > static_cast<long long>(m.size)) {
        m.pos = m.size;
        return -1;
    }
    m.pos = static_cast<std::size_t>(target);
    return n;
}

OPJ_BOOL seek_bytes(OPJ_OFF_T n, void* user) {
    auto& m = *static_cast<MemoryStream*>(user);
    if (n < 0 || static_cast<unsigned long long>(n) > m.size) {
        m.pos = m.size;
        return OPJ_FALSE;
    }
    m.pos = static_cast<std::size_t>(n);
    return OPJ_TRUE;
}

void quiet(const char* /*message*/, void* /*user*/) {}

/// The components of an image that GDCM's header reader accepts ("" = accepted).
std::string component_problem(const opj_image_t& image) {
    if (image.numcomps != 1 && image.numcomps != 3) {
        return "it has " + std::to_string(image.numcomps) + " components (1 or 3 are read)";
    }
    const opj_image_comp_t& c = image.comps[0];
    if (c.prec > 32) {
        return "its samples are " + std::to_string(c.prec) + " bits deep";
    }
    for (OPJ_UINT32 i = 1; i < image.numcomps; ++i) {
        const opj_image_comp_t& o = image.comps[i];
        if (o.prec != c.prec || o.sgnd != c.sgnd || o.w != c.w || o.h != c.h) {
            return "its 3 components differ in size, precision or sign";
        }
    }
    return "";
}

/// Whether GDCM reads the stream as a JP2 file (else as a codestream): its JPEG2000Codec compares
/// the 12-byte JP2 signature box and, through sizeof of the string literal, its terminating NUL,
/// i.e. the high byte of the next box's length.
bool gdcm_reads_as_jp2(const std::uint8_t* data, std::size_t size) {
    static const std::uint8_t kJp2Signature[13] = {0,   0,    0,    0x0C, 'j',  'P', ' ',
                                                   ' ', 0x0D, 0x0A, 0x87, 0x0A, 0};
    return size >= sizeof kJp2Signature &&
           std::memcmp(data, kJp2Signature, sizeof kJp2Signature) == 0;
}

}  // namespace

std::string j2k_header_problem(const std::uint8_t* data, std::size_t size) {
    MemoryStream m{data, size};
    opj_codec_t* codec =
        opj_create_decompress(gdcm_reads_as_jp2(data, size) ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    opj_stream_t* stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
    opj_image_t* image = nullptr;
    std::string problem = "OpenJPEG cannot read its main header";
    if (codec != nullptr && stream != nullptr) {
        opj_set_error_handler(codec, quiet, nullptr);
        opj_set_warning_handler(codec, quiet, nullptr);
        opj_set_info_handler(codec, quiet, nullptr);
        opj_dparameters_t parameters;
        opj_set_default_decoder_parameters(&parameters);
        opj_stream_set_user_data(stream, &m, nullptr);
        opj_stream_set_user_data_length(stream, size);
        opj_stream_set_read_function(stream, read_bytes);
        opj_stream_set_skip_function(stream, skip_bytes);
        opj_stream_set_seek_function(stream, seek_bytes);
        if (opj_setup_decoder(codec, &parameters) && opj_read_header(stream, codec, &image) &&
            image != nullptr) {
            problem = component_problem(*image);
        }
    }
    opj_image_destroy(image);
    opj_stream_destroy(stream);
    opj_destroy_codec(codec);
    return problem;
}

std::optional<J2kGeometry> read_j2k_geometry(const std::uint8_t* data, std::size_t size) {
    if (gdcm_reads_as_jp2(data, size)) {
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
