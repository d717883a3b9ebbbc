#pragma once
// Private to imaging: the header of a JPEG stream (transfer syntaxes .50 to .70), read as GDCM's
// JPEG codec will read it, before GDCM sees it (see jpeg_header.cpp for why).

#include <cstddef>
#include <cstdint>
#include <string>

namespace radprobe::imaging::detail {

/// Why GDCM 3.0.21's JPEG codec would abort, crash or spin on the JPEG stream at `data` (one
/// Pixel Data fragment that starts with SOI) of an image with `bits_allocated`-bit samples, or
/// "" when it would not. The header (SOI up to the first SOS) is read by GDCM's own IJG
/// library, and refused when: the library refuses it (its own message); it warns (extraneous
/// bytes before a marker, a JFIF version other than 1.x, an unknown Adobe colour transform);
/// a marker segment is skipped past the end of the fragment; the sample precision is not one
/// JPEG defines (8 or 12 bits lossy, 2 to 16 lossless); the frame has other than 1 or 3
/// components; or a lossless 3-component stream deeper than GDCM's first decoder ends its
/// header in a trace message. A header cut short by the end of the fragment is not refused:
/// GDCM suspends and reads on in the next fragment.
std::string jpeg_header_problem(const std::uint8_t* data, std::size_t size, int bits_allocated);

/// Pixel Data fragment `index` of the file `name` checked as above when it starts a JPEG stream
/// (SOI); a fragment that does not is left alone (GDCM's decoder refuses it or reads on into
/// it). InputError "NAME: corrupt JPEG stream in Pixel Data fragment INDEX (problem)".
void check_jpeg_fragment(const std::uint8_t* data, std::size_t size, int bits_allocated,
                         const std::string& name, long index);

}  // namespace radprobe::imaging::detail
