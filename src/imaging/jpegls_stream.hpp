#pragma once
// Private to imaging: JPEG-LS streams read and decoded through CharLS directly (jpegls_stream.cpp
// says why GDCM's JPEG-LS codec is not used for decoding).

#include <cstddef>
#include <cstdint>
#include <string>

namespace radprobe::imaging::detail {

/// The image a JPEG-LS stream declares (its SOF-55 frame header).
struct JpeglsFrame {
    std::uint32_t width = 0, height = 0;
    int components = 0;
    int bits_per_sample = 0;
};

/// The frame header of the JPEG-LS stream at `data`. Throws InputError naming `what` (e.g.
/// "x.dcm: JPEG-LS stream in Pixel Data fragment 0") and CharLS's reason when the header cannot
/// be read, or when it declares other than 1 or 3 components (GDCM asserts on those).
JpeglsFrame read_jpegls_frame(const std::uint8_t* data, std::size_t size, const std::string& what);

/// Decodes the JPEG-LS stream at `data` into `out`: height × width × components samples,
/// interleaved by pixel, each `bytes_per_sample` (1, 2 or 4) little-endian bytes, zero-extended.
/// `out_size` must be exactly that many bytes and the stream's samples must fit. Throws
/// InputError naming `what` on a corrupt stream; nothing is allocated that outlives the call.
void decode_jpegls(const std::uint8_t* data, std::size_t size, int bytes_per_sample, char* out,
                   std::size_t out_size, const std::string& what);

}  // namespace radprobe::imaging::detail
