// DICOM decoding through GDCM. GDCM parses and decompresses (RLE, JPEG baseline/extended/
// lossless, JPEG-LS, JPEG 2000); every decision about whether the result is trustworthy is
// taken here: GDCM's own trace output is silenced and it is never allowed to decode a damaged
// file "at own risk".

#include <gdcmDataSet.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>

#include "decoders.hpp"
#include "dicom_structure.hpp"
#include "j2k_header.hpp"
#include "jpeg_header.hpp"
#include "jpegls_stream.hpp"
#include "quiet_stderr.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"

namespace radprobe::imaging::detail {
namespace fs = std::filesystem;

namespace {

void silence_gdcm() {
    static std::once_flag once;
    std::call_once(once, [] {
        gdcm::Trace::SetDebug(false);
        gdcm::Trace::SetWarning(false);
        gdcm::Trace::SetError(false);
    });
}

const gdcm::ByteValue* byte_value(const gdcm::DataSet& ds, gdcm::Tag tag) {
    if (!ds.FindDataElement(tag)) {
        return nullptr;
    }
    const gdcm::DataElement& de = ds.GetDataElement(tag);
    if (de.IsEmpty()) {
        return nullptr;
    }
    return de.GetByteValue();
}

// Text value of a string element (DS, IS, CS, ...), trailing padding removed.
std::string string_value(const gdcm::DataSet& ds, gdcm::Tag tag) {
    const gdcm::ByteValue* bv = byte_value(ds, tag);
    if (!bv || !bv->GetPointer()) {
        return "";
    }
    std::string s(bv->GetPointer(), bv->GetLength());
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) {
        s.pop_back();
    }
    while (!s.empty() && s.front() == ' ') {
        s.erase(s.begin());
    }
    return s;
}

// Backslash-separated decimal strings (DS/IS with VM > 1).
std::vector<double> numbers_value(const gdcm::DataSet& ds, gdcm::Tag tag) {
    std::vector<double> out;
    const std::string s = string_value(ds, tag);
    if (s.empty()) {
        return out;
    }
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, '\\')) {
        if (auto v = parse_double(part)) {
            out.push_back(*v);
        } else {
            return {};  // an unreadable value invalidates the whole attribute
        }
    }
    return out;
}

std::uint16_t read_u16(const char* p, bool big_endian) {
    const auto* b = reinterpret_cast<const unsigned char*>(p);
    return big_endian ? static_cast<std::uint16_t>((b[0] << 8) | b[1])
                      : static_cast<std::uint16_t>(b[0] | (b[1] << 8));
}

// A LUT from a Modality/VOI LUT Sequence item (PS3.3 C.11.1 / C.11.2).
struct Lut {
    std::size_t entries = 0;
    long long first_mapped = 0;
    int bits = 0;
    std::vector<double> data;

    double apply(double v) const {
        // Inputs below the first mapped value take the first entry, past the end the last.
        double idx = v - static_cast<double>(first_mapped);
        if (idx < 0) {
            idx = 0;
        }
        std::size_t i = static_cast<std::size_t>(idx);
        if (i >= entries) {
            i = entries - 1;
        }
        return data[i];
    }
};

Lut read_lut(const gdcm::DataSet& item, bool signed_input, bool big_endian,
             const std::string& where) {
    const gdcm::ByteValue* desc = byte_value(item, gdcm::Tag(0x0028, 0x3002));
    const gdcm::ByteValue* data = byte_value(item, gdcm::Tag(0x0028, 0x3006));
    RADPROBE_CHECK(desc && desc->GetLength() >= 6, where, ": LUT Descriptor missing or short");
    RADPROBE_CHECK(data && data->GetLength() > 0, where, ": LUT Data missing");
    Lut lut;
    const char* d = desc->GetPointer();
    const std::uint16_t n = read_u16(d, big_endian);
    const std::uint16_t first = read_u16(d + 2, big_endian);
    lut.entries = n == 0 ? 65536 : n;
    lut.first_mapped = signed_input ? static_cast<std::int16_t>(first) : first;
    lut.bits = read_u16(d + 4, big_endian);
    RADPROBE_CHECK(lut.bits >= 1 && lut.bits <= 16, where, ": LUT Descriptor bit depth ", lut.bits,
                   " outside 1..16");
    const std::size_t len = data->GetLength();
    const char* p = data->GetPointer();
    lut.data.resize(lut.entries);
    if (len >= 2 * lut.entries) {
        for (std::size_t i = 0; i < lut.entries; ++i) {
            lut.data[i] = read_u16(p + 2 * i, big_endian);
        }
    } else if (lut.bits <= 8 && len >= lut.entries) {
        for (std::size_t i = 0; i < lut.entries; ++i) {
            lut.data[i] = static_cast<unsigned char>(p[i]);
        }
    } else {
        throw InputError(
            str_cat(where, ": LUT Data has ", len, " bytes for ", lut.entries, " entries"));
    }
    return lut;
}

std::vector<gdcm::DataSet> sequence_items(const gdcm::DataSet& ds, gdcm::Tag tag) {
    std::vector<gdcm::DataSet> items;
    if (!ds.FindDataElement(tag)) {
        return items;
    }
    const gdcm::DataElement& de = ds.GetDataElement(tag);
    gdcm::SmartPointer<gdcm::SequenceOfItems> sq = de.GetValueAsSQ();
    if (!sq) {
        return items;
    }
    for (gdcm::SequenceOfItems::SizeType i = 1; i <= sq->GetNumberOfItems(); ++i) {
        items.push_back(sq->GetItem(i).GetNestedDataSet());
    }
    return items;
}

bool is_big_endian(const gdcm::TransferSyntax& ts) {
    return ts == gdcm::TransferSyntax::ExplicitVRBigEndian;
}

// The transfer syntaxes whose decoding radprobe has checked against pydicom.
bool supported_syntax(const gdcm::TransferSyntax& ts) {
    switch (ts) {
        case gdcm::TransferSyntax::ImplicitVRLittleEndian:
        case gdcm::TransferSyntax::ExplicitVRLittleEndian:
        case gdcm::TransferSyntax::ExplicitVRBigEndian:
        case gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian:
        case gdcm::TransferSyntax::RLELossless:
        case gdcm::TransferSyntax::JPEGBaselineProcess1:
        case gdcm::TransferSyntax::JPEGExtendedProcess2_4:
        case gdcm::TransferSyntax::JPEGLosslessProcess14:
        case gdcm::TransferSyntax::JPEGLosslessProcess14_1:
        case gdcm::TransferSyntax::JPEGLSLossless:
        case gdcm::TransferSyntax::JPEGLSNearLossless:
        case gdcm::TransferSyntax::JPEG2000Lossless:
        case gdcm::TransferSyntax::JPEG2000:
        case gdcm::TransferSyntax::ImplicitVRBigEndianPrivateGE:
            return true;
        default:
            return false;
    }
}

// The codec of encapsulated pixel data, recognised from the first fragment's bytes: JPEG (by
// its start-of-frame marker), JPEG-LS, JPEG 2000 (codestream or JP2), RLE. nullopt if none.
struct SniffedCodec {
    gdcm::TransferSyntax::TSType syntax;
    const char* name;
};

std::optional<SniffedCodec> jpeg_codec(const unsigned char* b, std::size_t n) {
    std::size_t off = 2;  // after SOI
    while (off + 4 <= n && b[off] == 0xFF) {
        const unsigned char marker = b[off + 1];
        if (marker == 0xC0) {
            return SniffedCodec{gdcm::TransferSyntax::JPEGBaselineProcess1, "JPEG baseline"};
        }
        if (marker == 0xC1 || marker == 0xC2) {
            return SniffedCodec{gdcm::TransferSyntax::JPEGExtendedProcess2_4, "JPEG extended"};
        }
        if (marker == 0xC3) {
            return SniffedCodec{gdcm::TransferSyntax::JPEGLosslessProcess14_1, "JPEG lossless"};
        }
        if (marker == 0xF7) {
            return SniffedCodec{gdcm::TransferSyntax::JPEGLSLossless, "JPEG-LS"};
        }
        off += 2 + ((std::size_t(b[off + 2]) << 8) | b[off + 3]);  // skip the marker segment
    }
    return std::nullopt;
}

std::optional<SniffedCodec> sniff_codec(const gdcm::SequenceOfFragments& sf) {
    for (unsigned int i = 0; i < sf.GetNumberOfFragments(); ++i) {
        const gdcm::ByteValue* bv = sf.GetFragment(i).GetByteValue();
        if (bv == nullptr || bv->GetLength() < 8) {
            continue;
        }
        const auto* b = reinterpret_cast<const unsigned char*>(bv->GetPointer());
        const std::size_t n = bv->GetLength();
        if (b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
            return jpeg_codec(b, n);
        }
        if ((b[0] == 0xFF && b[1] == 0x4F && b[2] == 0xFF && b[3] == 0x51) ||
            std::memcmp(b + 4, "jP  ", 4) == 0) {
            return SniffedCodec{gdcm::TransferSyntax::JPEG2000, "JPEG 2000"};
        }
        std::uint32_t segments = 0, first = 0;
        std::memcpy(&segments, b, 4);
        std::memcpy(&first, b + 4, 4);
        if (n >= 64 && segments >= 1 && segments <= 15 && first == 64) {
            return SniffedCodec{gdcm::TransferSyntax::RLELossless, "RLE"};
        }
        return std::nullopt;
    }
    return std::nullopt;
}

// Every fragment of JPEG pixel data that starts a stream, checked as dicom_structure.cpp checks
// those of a JPEG transfer syntax (jpeg_header.cpp says why).
void check_jpeg_fragments(const gdcm::SequenceOfFragments& sf, int bits_allocated,
                          const std::string& name) {
    for (unsigned int i = 0; i < sf.GetNumberOfFragments(); ++i) {
        if (const gdcm::ByteValue* bv = sf.GetFragment(i).GetByteValue()) {
            check_jpeg_fragment(reinterpret_cast<const std::uint8_t*>(bv->GetPointer()),
                                bv->GetLength(), bits_allocated, name, i);
        }
    }
}

// A meta header that says a native syntax while the Pixel Data is encapsulated (exporters that
// rewrite the header only): decode with the codec the fragments show, and say so.
void recover_encapsulated_native(gdcm::Image& image, const gdcm::DataSet& ds, ImageInfo& info,
                                 const std::string& name) {
    if (image.GetTransferSyntax().IsEncapsulated() ||
        !ds.FindDataElement(gdcm::Tag(0x7FE0, 0x0010))) {
        return;
    }
    const gdcm::SequenceOfFragments* sf =
        ds.GetDataElement(gdcm::Tag(0x7FE0, 0x0010)).GetSequenceOfFragments();
    if (sf == nullptr) {
        return;
    }
    const auto codec = sniff_codec(*sf);
    RADPROBE_CHECK(codec.has_value(), name, ": transfer syntax ", info.transfer_syntax,
                   " says native pixel data, but Pixel Data is encapsulated in a codec radprobe "
                   "does not recognise");
    const gdcm::TransferSyntax actual(codec->syntax);
    if (actual.IsEncapsulated() && actual != gdcm::TransferSyntax::JPEGLSLossless &&
        actual != gdcm::TransferSyntax::JPEG2000 && actual != gdcm::TransferSyntax::RLELossless) {
        check_jpeg_fragments(*sf, image.GetPixelFormat().GetBitsAllocated(), name);
    }
    info.recovered =
        str_cat("transfer syntax ", info.transfer_syntax,
                " says native pixel data, but Pixel Data is encapsulated ", codec->name,
                ": decoded as ", gdcm::TransferSyntax::GetTSString(actual));
    info.warnings.push_back(info.recovered);
    image.SetTransferSyntax(actual);
    info.transfer_syntax = gdcm::TransferSyntax::GetTSString(actual);
}

struct ParsedDicom {
    gdcm::ImageReader reader;
    ImageInfo info;
    bool big_endian = false;
};

// Reads and checks the header; GDCM's reader is kept for pixel decoding.
// The header's own value of a US element (0 when absent): GDCM's pixel format may already
// have been adjusted to what a compressed stream declares.
int header_us(const gdcm::DataSet& ds, gdcm::Tag tag) {
    const gdcm::ByteValue* bv = byte_value(ds, tag);
    return bv != nullptr && bv->GetLength() >= 2 && bv->GetPointer() != nullptr
               ? read_u16(bv->GetPointer(), false)
               : 0;
}

// A fragment that starts a JPEG 2000 stream must declare the image the header describes: GDCM
// copies the decoded image into a buffer sized from the header without comparing
// (j2k_header.cpp). JPEG 2000 transfer syntaxes are little endian.
void check_j2k_fragment(const gdcm::ByteValue& bv, unsigned int index, const gdcm::DataSet& ds,
                        const std::string& name) {
    const auto g =
        read_j2k_geometry(reinterpret_cast<const std::uint8_t*>(bv.GetPointer()), bv.GetLength());
    if (!g) {
        return;
    }
    const int rows = header_us(ds, gdcm::Tag(0x0028, 0x0010));
    const int cols = header_us(ds, gdcm::Tag(0x0028, 0x0011));
    const int samples = header_us(ds, gdcm::Tag(0x0028, 0x0002));
    const int bits = header_us(ds, gdcm::Tag(0x0028, 0x0100));
    bool fits = g->width == static_cast<std::uint32_t>(cols) &&
                g->height == static_cast<std::uint32_t>(rows) &&
                g->components.size() == static_cast<std::size_t>(samples);
    int precision = 0;
    for (const auto& c : g->components) {
        const int bytes = c.precision <= 8 ? 1 : c.precision <= 16 ? 2 : 4;
        fits = fits && c.width <= g->width && c.height <= g->height && 8 * bytes <= bits;
        precision = std::max(precision, c.precision);
    }
    RADPROBE_CHECK(fits, name, ": JPEG 2000 stream in Pixel Data fragment ", index, " declares ",
                   g->width, "x", g->height, " pixels, ", g->components.size(),
                   " component(s) of up to ", precision, " bits; the DICOM header says ", cols, "x",
                   rows, ", ", samples, " sample(s) of ", bits, " bits allocated");
}

// GDCM reads a Photometric Interpretation by the first name it is a prefix of ("YBR_FULL_42" is
// YBR_FULL_422) and sets the image's samples per pixel from that reading; its JPEG 2000 codec
// then asserts that the stream's components equal them (found by fuzz/dicom: "YBR_FULL_42"
// over Samples per Pixel 1 and a one-component stream, which matches the header). The header's
// Samples per Pixel must be what the Photometric Interpretation has, whatever the codec.
void check_photometric_samples(const gdcm::Image& image, const gdcm::DataSet& ds,
                               const std::string& name) {
    const gdcm::PhotometricInterpretation& pi = image.GetPhotometricInterpretation();
    if (pi == gdcm::PhotometricInterpretation::UNKNOWN ||
        pi == gdcm::PhotometricInterpretation::PI_END) {
        return;  // not a name GDCM knows: refused where the samples are interpreted
    }
    const int samples = header_us(ds, gdcm::Tag(0x0028, 0x0002));
    if (samples == 0) {
        return;  // absent: GDCM takes the Photometric Interpretation's
    }
    std::string read_as = gdcm::PhotometricInterpretation::GetPIString(pi);
    read_as.erase(read_as.find_last_not_of(' ') + 1);  // GDCM's names are padded to even length
    RADPROBE_CHECK(static_cast<int>(pi.GetSamplesPerPixel()) == samples, name,
                   ": Photometric Interpretation '", string_value(ds, gdcm::Tag(0x0028, 0x0004)),
                   "' (read as ", read_as, ": ", pi.GetSamplesPerPixel(),
                   " samples per pixel) disagrees with Samples per Pixel ", samples);
}

void read_header(const fs::path& path, ParsedDicom& parsed) {
    silence_gdcm();
    const std::string name = path.string();
    {
        const auto bytes = read_file_bytes(path);
        check_dicom_structure(bytes.data(), bytes.size(), name);
    }
    parsed.reader.SetFileName(name.c_str());
    bool read_ok = false;
    {
        QuietStderr quiet;
        read_ok = parsed.reader.Read();
    }
    if (!read_ok) {
        throw InputError(
            str_cat(name,
                    ": not a readable image (not PNG/JPEG/TIFF, and not a valid DICOM file or "
                    "a DICOM file without pixel data)"));
    }
    const gdcm::File& file = parsed.reader.GetFile();
    const gdcm::DataSet& ds = file.GetDataSet();
    const gdcm::Image& image = parsed.reader.GetImage();
    ImageInfo& info = parsed.info;
    info.format = "dicom";

    const char* ts_uid = gdcm::TransferSyntax::GetTSString(image.GetTransferSyntax());
    info.transfer_syntax = ts_uid ? ts_uid : "";
    recover_encapsulated_native(parsed.reader.GetImage(), ds, info, name);
    const gdcm::TransferSyntax& ts = image.GetTransferSyntax();
    const std::string meta_ts = string_value(file.GetHeader(), gdcm::Tag(0x0002, 0x0010));
    RADPROBE_CHECK(supported_syntax(ts), name, ": unsupported transfer syntax ",
                   meta_ts.empty() ? info.transfer_syntax : meta_ts);
    parsed.big_endian = is_big_endian(ts);

    RADPROBE_CHECK(ds.FindDataElement(gdcm::Tag(0x7FE0, 0x0010)), name,
                   ": no Pixel Data (7FE0,0010)");
    RADPROBE_CHECK(!string_value(ds, gdcm::Tag(0x0028, 0x0004)).empty(), name,
                   ": Photometric Interpretation (0028,0004) is missing");
    check_photometric_samples(image, ds, name);

    const unsigned int* dims = image.GetDimensions();
    info.cols = static_cast<int>(dims[0]);
    info.rows = static_cast<int>(dims[1]);
    info.frames = image.GetNumberOfDimensions() > 2 ? static_cast<int>(dims[2]) : 1;
    RADPROBE_CHECK(info.rows > 0 && info.cols > 0 && info.frames > 0, name, ": invalid geometry ",
                   info.rows, "x", info.cols, "x", info.frames);
    const gdcm::PixelFormat& pf = image.GetPixelFormat();
    info.samples_per_pixel = pf.GetSamplesPerPixel();
    info.bits_allocated = pf.GetBitsAllocated();
    info.bits_stored = pf.GetBitsStored();
    info.is_signed = pf.GetPixelRepresentation() == 1;
    RADPROBE_CHECK(
        info.bits_allocated == 8 || info.bits_allocated == 16 || info.bits_allocated == 32, name,
        ": Bits Allocated ", info.bits_allocated, " is not supported (8, 16, 32)");
    RADPROBE_CHECK(info.samples_per_pixel == 1 || info.samples_per_pixel == 3, name,
                   ": Samples per Pixel ", info.samples_per_pixel, " is not supported (1 or 3)");
    info.photometric = string_value(ds, gdcm::Tag(0x0028, 0x0004));
    info.modality = string_value(ds, gdcm::Tag(0x0008, 0x0060));

    auto spacing = numbers_value(ds, gdcm::Tag(0x0028, 0x0030));
    if (spacing.size() != 2) {
        spacing = numbers_value(ds, gdcm::Tag(0x0018, 0x1164));
    }
    if (spacing.size() == 2 && spacing[0] > 0 && spacing[1] > 0) {
        info.pixel_spacing_row = spacing[0];
        info.pixel_spacing_col = spacing[1];
    }
    const auto centers = numbers_value(ds, gdcm::Tag(0x0028, 0x1050));
    const auto widths = numbers_value(ds, gdcm::Tag(0x0028, 0x1051));
    info.num_windows = static_cast<int>(std::min(centers.size(), widths.size()));
    info.num_voi_luts = static_cast<int>(sequence_items(ds, gdcm::Tag(0x0028, 0x3010)).size());

    // Native (uncompressed) pixel data must be exactly as long as the geometry says (one pad
    // byte allowed for odd lengths).
    const gdcm::DataElement& pixel_data = ds.GetDataElement(gdcm::Tag(0x7FE0, 0x0010));
    const std::uint64_t expected = static_cast<std::uint64_t>(info.rows) * info.cols * info.frames *
                                   info.samples_per_pixel * info.bits_allocated / 8;
    if (!pixel_data.GetSequenceOfFragments()) {
        const gdcm::ByteValue* bv = pixel_data.GetByteValue();
        RADPROBE_CHECK(bv != nullptr, name, ": Pixel Data is empty");
        const std::uint64_t len = bv->GetLength();
        RADPROBE_CHECK(len == expected || len == expected + (expected % 2), name,
                       ": pixel data length ", len, " bytes disagrees with ", info.rows, "x",
                       info.cols, "x", info.frames, " frames x ", info.samples_per_pixel,
                       " samples x ", info.bits_allocated, " bits (", expected, " bytes)");
    } else {
        const gdcm::SequenceOfFragments* sf = pixel_data.GetSequenceOfFragments();
        RADPROBE_CHECK(sf->GetNumberOfFragments() > 0, name,
                       ": encapsulated Pixel Data has no fragments");
        for (unsigned int i = 0; i < sf->GetNumberOfFragments(); ++i) {
            const gdcm::Fragment& frag = sf->GetFragment(i);
            const gdcm::ByteValue* bv = frag.GetByteValue();
            const std::uint32_t declared = frag.GetVL();
            RADPROBE_CHECK(bv != nullptr && bv->GetLength() == declared, name,
                           ": encapsulated Pixel Data fragment ", i, " is cut short");
            check_j2k_fragment(*bv, i, ds, name);
        }
    }
}

long long sample_at(const char* buf, std::size_t i, int bits, bool is_signed) {
    switch (bits) {
        case 8:
            return is_signed
                       ? static_cast<long long>(reinterpret_cast<const std::int8_t*>(buf)[i])
                       : static_cast<long long>(reinterpret_cast<const std::uint8_t*>(buf)[i]);
        case 16: {
            std::uint16_t v;
            std::memcpy(&v, buf + 2 * i, 2);
            return is_signed ? static_cast<long long>(static_cast<std::int16_t>(v))
                             : static_cast<long long>(v);
        }
        default: {
            std::uint32_t v;
            std::memcpy(&v, buf + 4 * i, 4);
            return is_signed ? static_cast<long long>(static_cast<std::int32_t>(v))
                             : static_cast<long long>(v);
        }
    }
}

bool is_jpegls(const gdcm::TransferSyntax& ts) {
    return ts == gdcm::TransferSyntax::JPEGLSLossless ||
           ts == gdcm::TransferSyntax::JPEGLSNearLossless;
}

// Whether fragment `i` of `n` begins a new frame of `frames`: a single frame is every fragment
// in order; several frames are one fragment each, or, when a frame spans fragments, each frame
// starts at a fragment that begins with the JPEG SOI marker (FF D8).
bool starts_frame(unsigned int i, unsigned int n, int frames, const gdcm::ByteValue& bv) {
    if (frames == 1) {
        return i == 0;
    }
    if (n == static_cast<unsigned int>(frames)) {
        return true;
    }
    const auto* b = reinterpret_cast<const std::uint8_t*>(bv.GetPointer());
    return bv.GetLength() >= 2 && b[0] == 0xFF && b[1] == 0xD8;
}

// The compressed stream of each frame (see starts_frame).
std::vector<std::vector<std::uint8_t>> frame_streams(const gdcm::SequenceOfFragments& sf,
                                                     int frames, const std::string& name) {
    const unsigned int n = sf.GetNumberOfFragments();
    std::vector<std::vector<std::uint8_t>> streams;
    for (unsigned int i = 0; i < n; ++i) {
        const gdcm::ByteValue& bv = *sf.GetFragment(i).GetByteValue();
        if (streams.empty() || starts_frame(i, n, frames, bv)) {
            streams.emplace_back();
        }
        const auto* b = reinterpret_cast<const std::uint8_t*>(bv.GetPointer());
        streams.back().insert(streams.back().end(), b, b + bv.GetLength());
    }
    RADPROBE_CHECK(streams.size() == static_cast<std::size_t>(frames), name, ": ", n,
                   " Pixel Data fragments hold ", streams.size(), " JPEG-LS frame(s); ",
                   "Number of Frames says ", frames);
    return streams;
}

// A frame's JPEG-LS header must declare the image the DICOM header describes: buffers are
// sized from the DICOM header.
void check_jpegls_frame(const std::vector<std::uint8_t>& stream, const ImageInfo& info,
                        const std::string& what) {
    const JpeglsFrame jf = read_jpegls_frame(stream.data(), stream.size(), what);
    RADPROBE_CHECK(jf.width == static_cast<std::uint32_t>(info.cols) &&
                       jf.height == static_cast<std::uint32_t>(info.rows) &&
                       jf.components == info.samples_per_pixel &&
                       jf.bits_per_sample <= info.bits_allocated,
                   what, " declares ", jf.width, "x", jf.height, " pixels, ", jf.components,
                   " component(s) of ", jf.bits_per_sample, " bits; the DICOM header says ",
                   info.cols, "x", info.rows, ", ", info.samples_per_pixel, " sample(s) of ",
                   info.bits_allocated, " bits allocated");
}

// JPEG-LS pixel data decoded frame by frame through CharLS (jpegls_stream.cpp says why not
// GDCM), laid out as GDCM lays out a decoded buffer: pixel-interleaved samples of Bits
// Allocated each.
std::vector<char> decode_jpegls_frames(const gdcm::Image& image, const ImageInfo& info,
                                       const std::string& name) {
    const gdcm::SequenceOfFragments* sf = image.GetDataElement().GetSequenceOfFragments();
    RADPROBE_CHECK(sf != nullptr, name,
                   ": JPEG-LS transfer syntax without encapsulated Pixel Data");
    const auto streams = frame_streams(*sf, info.frames, name);
    for (std::size_t f = 0; f < streams.size(); ++f) {
        check_jpegls_frame(streams[f], info, str_cat(name, ": JPEG-LS frame ", f));
    }
    const int bytes = info.bits_allocated / 8;
    const std::size_t frame_bytes =
        static_cast<std::size_t>(info.rows) * info.cols * info.samples_per_pixel * bytes;
    std::vector<char> buffer(frame_bytes * info.frames);
    for (std::size_t f = 0; f < streams.size(); ++f) {
        decode_jpegls(streams[f].data(), streams[f].size(), bytes, buffer.data() + f * frame_bytes,
                      frame_bytes, str_cat(name, ": JPEG-LS frame ", f));
    }
    return buffer;
}

// Pixel data decoded by GDCM: frames × rows × cols × samples of Bits Allocated each.
std::vector<char> decode_with_gdcm(const gdcm::Image& image, const ImageInfo& info,
                                   const std::string& name) {
    const std::size_t expected = static_cast<std::size_t>(info.rows) * info.cols * info.frames *
                                 info.samples_per_pixel * info.bits_allocated / 8;
    const unsigned long buffer_len = image.GetBufferLength();
    RADPROBE_CHECK(buffer_len >= expected, name, ": decoder reports ", buffer_len,
                   " bytes of pixels, geometry needs ", expected);
    std::vector<char> buffer(buffer_len);
    bool decoded = false;
    {
        QuietStderr quiet;
        decoded = image.GetBuffer(buffer.data());
    }
    RADPROBE_CHECK(decoded, name, ": cannot decode pixel data (", info.transfer_syntax,
                   "): corrupt or truncated compressed stream");
    return buffer;
}

// Decodes pixel data to stored sample values (frames × rows × cols × samples).
std::vector<long long> decode_samples(ParsedDicom& parsed, const std::string& name,
                                      gdcm::Image* image_out_for_palette) {
    const gdcm::Image& image = parsed.reader.GetImage();
    const ImageInfo& info = parsed.info;
    const std::vector<char> buffer = is_jpegls(image.GetTransferSyntax())
                                         ? decode_jpegls_frames(image, info, name)
                                         : decode_with_gdcm(image, info, name);
    // GDCM may convert YBR to RGB while decoding; record what the buffer holds.
    const char* pi =
        gdcm::PhotometricInterpretation::GetPIString(image.GetPhotometricInterpretation());
    (void)pi;
    const std::size_t n =
        static_cast<std::size_t>(info.rows) * info.cols * info.frames * info.samples_per_pixel;
    std::vector<long long> samples(n);
    for (std::size_t i = 0; i < n; ++i) {
        samples[i] = sample_at(buffer.data(), i, info.bits_allocated, info.is_signed);
    }
    // PS3.5 8.1.1: a stored value is Bits Stored bits wide (two's complement when signed); bits
    // above it are not part of the value. Decoders disagree here (GDCM sign-extends native
    // data but returns JPEG-LS samples unsigned), so the rule is applied once, here.
    const int bits = info.bits_stored;
    if (bits > 0 && bits < info.bits_allocated && info.samples_per_pixel == 1 &&
        info.photometric.rfind("MONOCHROME", 0) == 0) {
        const long long mask = (1LL << bits) - 1;
        const long long sign = 1LL << (bits - 1);
        for (auto& v : samples) {
            v &= mask;
            if (info.is_signed && (v & sign)) {
                v -= (1LL << bits);
            }
        }
    }
    (void)image_out_for_palette;
    return samples;
}

}  // namespace

StoredPixels dicom_read_stored(const fs::path& path, bool decode_pixels) {
    ParsedDicom parsed;
    read_header(path, parsed);
    StoredPixels out;
    out.info = parsed.info;
    if (decode_pixels) {
        out.samples = decode_samples(parsed, path.string(), nullptr);
    }
    return out;
}

namespace {

// Modality LUT stage (PS3.3 C.11.1): the LUT sequence wins over rescale, as in pydicom.
struct ModalityTransform {
    std::optional<Lut> lut;
    double slope = 1.0;
    double intercept = 0.0;
    double apply(double v) const { return lut ? lut->apply(v) : v * slope + intercept; }
};

ModalityTransform modality_transform(const gdcm::DataSet& ds, const ImageInfo& info,
                                     bool big_endian, const std::string& name) {
    ModalityTransform t;
    const auto items = sequence_items(ds, gdcm::Tag(0x0028, 0x3000));
    if (!items.empty()) {
        t.lut = read_lut(items[0], info.is_signed, big_endian, name + ": Modality LUT Sequence");
        return t;
    }
    const auto slope = numbers_value(ds, gdcm::Tag(0x0028, 0x1053));
    const auto intercept = numbers_value(ds, gdcm::Tag(0x0028, 0x1052));
    if (slope.size() == 1 && intercept.size() == 1) {
        t.slope = slope[0];
        t.intercept = intercept[0];
    }
    return t;
}

}  // namespace

Image dicom_decode(const fs::path& path, const DecodeOptions& options) {
    const std::string name = path.string();
    ParsedDicom parsed;
    read_header(path, parsed);
    ImageInfo& info = parsed.info;
    RADPROBE_CHECK(options.frame < info.frames, name, ": --frame ", options.frame,
                   " out of range (the file has ", info.frames, " frame",
                   info.frames == 1 ? "" : "s", ")");
    const gdcm::DataSet& ds = parsed.reader.GetFile().GetDataSet();
    const std::vector<long long> samples = decode_samples(parsed, name, nullptr);

    Image out;
    out.rows = info.rows;
    out.cols = info.cols;
    const std::size_t npix = static_cast<std::size_t>(info.rows) * info.cols;
    out.pixels.resize(npix);
    const std::size_t spp = static_cast<std::size_t>(info.samples_per_pixel);
    const long long* frame = samples.data() + options.frame * npix * spp;
    const std::string& pi = info.photometric;

    // Colour images: luminance of RGB (palette looked up first; YBR_FULL's Y is luminance).
    if (pi == "PALETTE COLOR" || spp == 3) {
        const gdcm::Image& image = parsed.reader.GetImage();
        double max_value = std::ldexp(1.0, info.bits_stored) - 1.0;
        if (pi == "PALETTE COLOR") {
            // Palette descriptor tells first mapped value and entries for each channel.
            std::vector<double> rgb[3];
            for (int ch = 0; ch < 3; ++ch) {
                const gdcm::Tag desc_tag(0x0028, static_cast<std::uint16_t>(0x1101 + ch));
                const gdcm::Tag data_tag(0x0028, static_cast<std::uint16_t>(0x1201 + ch));
                const gdcm::ByteValue* desc = byte_value(ds, desc_tag);
                const gdcm::ByteValue* data = byte_value(ds, data_tag);
                RADPROBE_CHECK(desc && desc->GetLength() >= 6 && data, name,
                               ": palette colour lookup table missing (segmented palettes are "
                               "not supported)");
                const std::uint16_t n = read_u16(desc->GetPointer(), parsed.big_endian);
                const std::size_t entries = n == 0 ? 65536 : n;
                RADPROBE_CHECK(data->GetLength() >= 2 * entries, name,
                               ": palette data shorter than its descriptor says");
                rgb[ch].resize(entries);
                for (std::size_t i = 0; i < entries; ++i) {
                    rgb[ch][i] = read_u16(data->GetPointer() + 2 * i, parsed.big_endian);
                }
                if (ch == 0) {
                    const int bits = read_u16(desc->GetPointer() + 4, parsed.big_endian);
                    max_value = std::ldexp(1.0, bits) - 1.0;
                }
            }
            const std::uint16_t first_raw = read_u16(
                byte_value(ds, gdcm::Tag(0x0028, 0x1101))->GetPointer() + 2, parsed.big_endian);
            for (std::size_t i = 0; i < npix; ++i) {
                long long idx = frame[i] - first_raw;
                idx = std::clamp<long long>(idx, 0, static_cast<long long>(rgb[0].size()) - 1);
                const auto k = static_cast<std::size_t>(idx);
                const double y = luminance(rgb[0][k], rgb[1][k], rgb[2][k]);
                out.pixels[i] =
                    static_cast<float>(options.stage == Stage::kDisplay ? y / max_value : y);
            }
            out.info = info;
            return out;
        }
        const bool planar = image.GetPlanarConfiguration() == 1;
        const std::string decoded_pi =
            gdcm::PhotometricInterpretation::GetPIString(image.GetPhotometricInterpretation());
        const bool ybr = decoded_pi.rfind("YBR_FULL", 0) == 0;
        for (std::size_t i = 0; i < npix; ++i) {
            double c[3];
            for (std::size_t s = 0; s < 3; ++s) {
                c[s] = static_cast<double>(planar ? frame[s * npix + i] : frame[i * 3 + s]);
            }
            const double y = ybr ? c[0] : luminance(c[0], c[1], c[2]);
            out.pixels[i] =
                static_cast<float>(options.stage == Stage::kDisplay ? y / max_value : y);
        }
        out.info = info;
        return out;
    }

    RADPROBE_CHECK(pi == "MONOCHROME1" || pi == "MONOCHROME2", name,
                   ": Photometric Interpretation '", pi, "' is not supported");
    std::vector<double> values(npix);
    for (std::size_t i = 0; i < npix; ++i) {
        values[i] = static_cast<double>(frame[i]);
    }
    if (options.stage == Stage::kStored) {
        for (std::size_t i = 0; i < npix; ++i) {
            out.pixels[i] = static_cast<float>(values[i]);
        }
        out.info = info;
        return out;
    }
    const ModalityTransform modality = modality_transform(ds, info, parsed.big_endian, name);
    for (auto& v : values) {
        v = modality.apply(v);
    }
    if (options.stage == Stage::kModality) {
        for (std::size_t i = 0; i < npix; ++i) {
            out.pixels[i] = static_cast<float>(values[i]);
        }
        out.info = info;
        return out;
    }

    // VOI (PS3.3 C.11.2): the VOI LUT Sequence wins over windows, as in pydicom.
    const auto voi_items = sequence_items(ds, gdcm::Tag(0x0028, 0x3010));
    const auto centers = numbers_value(ds, gdcm::Tag(0x0028, 0x1050));
    const auto widths = numbers_value(ds, gdcm::Tag(0x0028, 0x1051));
    bool voi_done = false;
    if (!voi_items.empty()) {
        RADPROBE_CHECK(options.window < static_cast<int>(voi_items.size()), name, ": --window ",
                       options.window, " out of range (", voi_items.size(), " VOI LUTs)");
        const Lut lut = read_lut(voi_items[static_cast<std::size_t>(options.window)],
                                 info.is_signed && !modality.lut, parsed.big_endian,
                                 name + ": VOI LUT Sequence");
        const double out_max = std::ldexp(1.0, lut.bits) - 1.0;
        for (auto& v : values) {
            v = lut.apply(v) / out_max;
        }
        voi_done = true;
    } else if (!centers.empty() && !widths.empty()) {
        const std::size_t nwin = std::min(centers.size(), widths.size());
        RADPROBE_CHECK(options.window < static_cast<int>(nwin), name, ": --window ", options.window,
                       " out of range (", nwin, " window", nwin == 1 ? "" : "s", ")");
        double center = centers[static_cast<std::size_t>(options.window)];
        double width = widths[static_cast<std::size_t>(options.window)];
        std::string function = string_value(ds, gdcm::Tag(0x0028, 0x1056));
        if (function.empty()) {
            function = "LINEAR";
        }
        std::transform(function.begin(), function.end(), function.begin(), ::toupper);
        RADPROBE_CHECK(function == "LINEAR" || function == "LINEAR_EXACT" || function == "SIGMOID",
                       name, ": VOI LUT Function '", function, "' is not supported");
        const bool valid = function == "LINEAR" ? width >= 1.0 : width > 0.0;
        if (!valid) {
            info.warnings.push_back(str_cat("window width ", width, " is invalid for ", function,
                                            "; window ignored, full range used"));
        } else if (function == "SIGMOID") {
            // PS3.3 C.11.2.1.3.1, output normalised to [0,1].
            for (auto& v : values) {
                v = 1.0 / (1.0 + std::exp(-4.0 * (v - center) / width));
            }
            voi_done = true;
        } else {
            if (function == "LINEAR") {
                // PS3.3 C.11.2.1.2.1
                center -= 0.5;
                width -= 1.0;
            }
            const double lo = center - width / 2.0;
            const double hi = center + width / 2.0;
            for (auto& v : values) {
                if (v <= lo) {
                    v = 0.0;
                } else if (v > hi) {
                    v = 1.0;
                } else {
                    v = (v - center) / width + 0.5;
                }
            }
            voi_done = true;
        }
    }
    if (!voi_done) {
        // No usable VOI: the frame's full modality range maps to [0,1].
        const auto [mn, mx] = std::minmax_element(values.begin(), values.end());
        const double lo = *mn;
        const double range = *mx - *mn;
        for (auto& v : values) {
            v = range > 0 ? (v - lo) / range : 0.0;
        }
    }
    const bool invert = pi == "MONOCHROME1";
    for (std::size_t i = 0; i < npix; ++i) {
        const double v = std::clamp(values[i], 0.0, 1.0);
        out.pixels[i] = static_cast<float>(invert ? 1.0 - v : v);
    }
    out.info = info;
    return out;
}

}  // namespace radprobe::imaging::detail
