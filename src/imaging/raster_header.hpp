#pragma once
// Private to imaging: size checks on a PNG, JPEG or TIFF header, made before OpenCV allocates
// the image it declares (see raster_header.cpp).

#include <filesystem>
#include <string>

namespace radprobe::imaging::detail {

/// Largest image radprobe decodes (pixels): 2^27, about 11,585², far beyond any radiograph
/// (a 43 cm film digitised at 50 µm is 60 million pixels).
inline constexpr unsigned long long kMaxRasterPixels = 1ULL << 27;
/// Largest buffer one TIFF strip or tile may need once decoded (bytes).
inline constexpr unsigned long long kMaxTiffStripBytes = 1ULL << 30;

/// Throws InputError naming `path` when the header of the `format` ("png", "jpeg", "tiff") file
/// at `path` declares an image of more than kMaxRasterPixels pixels, or (TIFF, first directory)
/// a strip or tile whose decode buffer exceeds kMaxTiffStripBytes. A header it cannot read is
/// left to the decoder, which reports it.
void check_raster_decode_size(const std::filesystem::path& path, const std::string& format);

}  // namespace radprobe::imaging::detail
