#pragma once
// Private to imaging: the geometry a JPEG 2000 stream declares (its SIZ marker), read before
// GDCM decodes it (see j2k_header.cpp).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace radprobe::imaging::detail {

/// One component of a JPEG 2000 image: its size on the reference grid after subsampling, and
/// its precision (bits).
struct J2kComponent {
    std::uint32_t width = 0, height = 0;
    int precision = 0;
};

/// The image a JPEG 2000 codestream declares (SIZ: ISO/IEC 15444-1 A.5.1).
struct J2kGeometry {
    std::uint32_t width = 0, height = 0;  ///< Xsiz − XOsiz, Ysiz − YOsiz
    std::vector<J2kComponent> components;
};

/// The geometry of the codestream at `data` (starting with SOC + SIZ), or of the codestream in
/// the top-level `jp2c` box of a JP2 file (recognised as GDCM recognises one: the signature box
/// followed by a zero byte); nullopt when the bytes are neither, or when the SIZ
/// marker is malformed (the codec then refuses the stream itself).
std::optional<J2kGeometry> read_j2k_geometry(const std::uint8_t* data, std::size_t size);

/// Why GDCM's JPEG 2000 header reader would fail on the stream at `data` (a JP2 file or a
/// codestream, as GDCM tells them apart), or "" when it would not: OpenJPEG
/// cannot read the main header, or the image has other than 1 or 3 components, a first
/// component deeper than 32 bits, or 3 components that differ in size, precision or sign.
/// Read single-threaded; nothing outlives the call (see j2k_header.cpp for why it matters).
std::string j2k_header_problem(const std::uint8_t* data, std::size_t size);

}  // namespace radprobe::imaging::detail
