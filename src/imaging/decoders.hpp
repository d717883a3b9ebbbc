#pragma once
// Private to the imaging component: the per-format decoders behind decode.hpp.

#include <filesystem>
#include <vector>

#include "radprobe/imaging/decode.hpp"

namespace radprobe::imaging::detail {

/// All frames' stored samples (frames × rows × cols × samples), plus header information.
struct StoredPixels {
    ImageInfo info;
    std::vector<long long> samples;
};

// DICOM via GDCM.
StoredPixels dicom_read_stored(const std::filesystem::path& path, bool decode_pixels);
Image dicom_decode(const std::filesystem::path& path, const DecodeOptions& options);

// PNG / JPEG / TIFF via OpenCV.
Image raster_decode(const std::filesystem::path& path, const std::string& format,
                    const DecodeOptions& options);
ImageInfo raster_probe(const std::filesystem::path& path, const std::string& format);

/// Luminance of an RGB triple (ITU-R BT.601 weights, as PIL's "L").
inline double luminance(double r, double g, double b) { return 0.299 * r + 0.587 * g + 0.114 * b; }

}  // namespace radprobe::imaging::detail
