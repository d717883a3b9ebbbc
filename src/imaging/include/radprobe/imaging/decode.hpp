#pragma once
/// @file decode.hpp
/// Decoding radiograph files (DICOM, PNG, JPEG, TIFF) to a float image.
///
/// Layout: an Image holds one frame, rows × cols, row-major (pixels[r * cols + c]), float32.
///
/// Stages (DICOM; PS3.3 C.11):
///  - kStored:   the stored pixel values (signed values sign-extended from Bits Stored).
///  - kModality: Rescale Slope/Intercept or the Modality LUT Sequence applied.
///  - kDisplay:  VOI applied (window centre/width: LINEAR, LINEAR_EXACT, SIGMOID; or the VOI LUT
///               Sequence), scaled to [0,1] by the VOI output range, MONOCHROME1 inverted, so
///               1 = white. With no VOI present, the frame's full modality range maps to [0,1].
/// PNG/JPEG/TIFF: stored = modality = the file's values; display = values / max of the type
/// (255, 65535; float TIFFs by their own min/max). Colour (RGB, RGBA, palette, YBR) becomes
/// luminance Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, as PIL's "L" mode); alpha is ignored.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace radprobe::imaging {

enum class Stage { kStored, kModality, kDisplay };

/// Parses "stored" | "modality" | "display"; throws UsageError otherwise.
Stage parse_stage(const std::string& text);

struct DecodeOptions {
    Stage stage = Stage::kDisplay;
    /// Which window / VOI LUT item to use when several are present (0-based).
    int window = 0;
    /// Which frame of a multi-frame file (0-based).
    int frame = 0;
};

/// What the decoder learned about the file (filled for every format; DICOM fields empty else).
struct ImageInfo {
    std::string format;           ///< "dicom", "png", "jpeg", "tiff"
    std::string transfer_syntax;  ///< DICOM transfer syntax UID ("" if none / not DICOM)
    std::string photometric;      ///< e.g. MONOCHROME1, MONOCHROME2, RGB, PALETTE COLOR
    std::string modality;         ///< DICOM Modality (CR, DX, ...)
    int rows = 0;
    int cols = 0;
    int frames = 1;
    int samples_per_pixel = 1;
    int bits_allocated = 0;
    int bits_stored = 0;
    bool is_signed = false;
    int num_windows = 0;                      ///< window centre/width pairs present
    int num_voi_luts = 0;                     ///< VOI LUT Sequence items present
    std::optional<double> pixel_spacing_row;  ///< mm, from Pixel Spacing / Imager Pixel Spacing
    std::optional<double> pixel_spacing_col;
    std::vector<std::string> warnings;  ///< non-fatal oddities (e.g. an invalid window ignored)
    /// What had to be repaired to decode the file at all ("" when nothing), e.g. a native
    /// transfer syntax over encapsulated JPEG pixel data. Also one of the warnings.
    std::string recovered;
};

struct Image {
    int rows = 0;
    int cols = 0;
    std::vector<float> pixels;  ///< rows × cols, row-major
    ImageInfo info;

    float at(int r, int c) const { return pixels[static_cast<std::size_t>(r) * cols + c]; }
};

/// Decodes one frame of a file at the requested stage. Throws radprobe::InputError with a
/// one-line message naming the file and the reason for anything it cannot decode correctly
/// (missing file, directory, empty, truncated, unknown transfer syntax, pixel data length that
/// disagrees with the geometry, not an image).
Image decode(const std::filesystem::path& path, const DecodeOptions& options = {});

/// Stored values of every frame (frames × rows × cols, or × samples for colour, as decoded),
/// as int64 — for bit-exact comparisons between transfer syntaxes.
std::vector<long long> decode_stored_all_frames(const std::filesystem::path& path,
                                                ImageInfo* info = nullptr);

/// Reads only the header (geometry, photometric, spacing) without decoding pixels where the
/// format allows it.
ImageInfo probe(const std::filesystem::path& path);

}  // namespace radprobe::imaging
