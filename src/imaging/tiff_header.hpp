#pragma once
// Private to imaging: a size check on a TIFF's first image directory, made before OpenCV
// decodes it (see tiff_header.cpp).

#include <filesystem>

namespace radprobe::imaging::detail {

/// Largest image radprobe decodes (pixels): 16,384², far beyond any radiograph.
inline constexpr unsigned long long kMaxTiffPixels = 1ULL << 28;
/// Largest buffer one strip or tile may need once decoded (bytes).
inline constexpr unsigned long long kMaxTiffStripBytes = 1ULL << 30;

/// Throws InputError naming `path` when the first directory of the TIFF at `path` declares an
/// image or a strip/tile whose decode buffer exceeds the limits above. A directory it cannot
/// read is left to the decoder, which reports it.
void check_tiff_decode_size(const std::filesystem::path& path);

}  // namespace radprobe::imaging::detail
