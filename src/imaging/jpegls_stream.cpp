// JPEG-LS through CharLS (the library GDCM itself calls). GDCM 3.0.21's JPEGLSCodec leaks its
// copy of the compressed stream whenever CharLS refuses a corrupt one (Decode and
// GetHeaderInfo return before delete[]), asserts on a multi-frame fragment without an EOI byte
// and on streams of 2 or 4 components; a study over many damaged JPEG-LS files grew without
// bound (fuzz/dicom reached libFuzzer's 2 GB limit). Here every buffer is owned, and the
// stream is checked against the DICOM header before anything is sized from it.

#include "jpegls_stream.hpp"

#include <charls/charls.h>

#include <cstring>
#include <vector>

#include "radprobe/core/error.hpp"

namespace radprobe::imaging::detail {
namespace {

[[noreturn]] void refuse(const std::string& what, const char* reason) {
    throw InputError(str_cat(what, ": corrupt JPEG-LS stream (", reason, ")"));
}

}  // namespace

JpeglsFrame read_jpegls_frame(const std::uint8_t* data, std::size_t size, const std::string& what) {
    JpeglsFrame f;
    try {
        charls::jpegls_decoder decoder;
        decoder.source(data, size);
        decoder.read_header();
        const charls::frame_info& info = decoder.frame_info();
        f.width = info.width;
        f.height = info.height;
        f.components = info.component_count;
        f.bits_per_sample = info.bits_per_sample;
    } catch (const charls::jpegls_error& e) {
        refuse(what, e.what());
    }
    RADPROBE_CHECK(f.components == 1 || f.components == 3, what, ": JPEG-LS stream has ",
                   f.components, " components (radprobe reads 1 or 3)");
    return f;
}

void decode_jpegls(const std::uint8_t* data, std::size_t size, int bytes_per_sample, char* out,
                   std::size_t out_size, const std::string& what) {
    std::vector<std::uint8_t> decoded;
    int bits = 0;
    std::size_t count = 0, planes = 1;
    try {
        charls::jpegls_decoder decoder(data, size, true);
        const charls::frame_info& info = decoder.frame_info();
        bits = info.bits_per_sample;
        count = std::size_t{info.width} * info.height * std::size_t(info.component_count);
        RADPROBE_CHECK(8 * bytes_per_sample >= bits && count * bytes_per_sample == out_size, what,
                       ": JPEG-LS stream declares ", info.width, "x", info.height, "x",
                       info.component_count, " samples of ", bits, " bits; expected ",
                       out_size / bytes_per_sample, " samples of at most ", 8 * bytes_per_sample,
                       " bits");
        if (decoder.interleave_mode() == charls::interleave_mode::none) {
            planes = std::size_t(info.component_count);  // CharLS writes one plane per component
        }
        decoded.resize(decoder.destination_size());
        decoder.decode(decoded);
    } catch (const charls::jpegls_error& e) {
        refuse(what, e.what());
    }
    const std::size_t in_bytes = bits <= 8 ? 1 : 2, per_plane = count / planes;
    for (std::size_t i = 0; i < count; ++i) {
        // Sample i of the output (pixel-interleaved) is sample (i % planes, i / planes) of the
        // planar layout CharLS gives for interleave mode "none".
        const std::size_t src = planes == 1 ? i : (i % planes) * per_plane + i / planes;
        std::uint32_t v = decoded[src * in_bytes];
        if (in_bytes == 2) {
            v |= std::uint32_t{decoded[src * 2 + 1]} << 8;
        }
        for (int b = 0; b < bytes_per_sample; ++b) {
            out[i * bytes_per_sample + b] = static_cast<char>((v >> (8 * b)) & 0xFF);
        }
    }
}

}  // namespace radprobe::imaging::detail
