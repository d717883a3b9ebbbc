// The header of a JPEG stream, read before GDCM's JPEG codec reads it. GDCM 3.0.21 reads the
// first fragment's header while it reads the file (Bitmap::ComputeLossyFlag →
// JPEGCodec::GetHeaderInfo) and every fragment when it decodes, through its bundled IJG library
// (libgdcmjpeg8/12/16, picked by Bits Allocated), and on a hostile header it
//   - asserts when the library warned of anything but a lossless precision deeper than the
//     decoder (it checks the last message code, which a later trace message may overwrite);
//   - asserts on a lossy precision other than 1, 8, 12 or 16, and dereferences a null decoder
//     after "switching" to the decoder of a precision above 16 (found by fuzz/dicom: a SEGV in
//     JPEGCodec::Decode);
//   - loops forever when a marker segment is skipped past the end of the fragment with no byte
//     left in its buffer, and re-reads stale bytes when some are left;
//   - asserts on CMYK (4 components without an Adobe marker) unless the DICOM header says CMYK,
//     and on YCCK.
// Here the header is read by GDCM's own 8-bit library (the marker parsing is the same in all
// three builds) from memory, with an error handler that returns and a skip that stops at the
// end, and what GDCM would trip on is named instead.

#include "jpeg_header.hpp"

#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE

#include "radprobe/core/error.hpp"

extern "C" {
#include <gdcmjpeg/8/jerror.h>
#include <gdcmjpeg/8/jpeglib.h>
}

namespace radprobe::imaging::detail {

namespace {

// An in-memory source: at the end it suspends (as GDCM's stream source does); a skip past the
// end is recorded and stops there.
struct Source {
    jpeg_source_mgr pub{};
    bool skipped_past_end = false;
};

void init_source(j_decompress_ptr) {}
void term_source(j_decompress_ptr) {}
boolean fill_input_buffer(j_decompress_ptr) {
    return FALSE;
}

void skip_input_data(j_decompress_ptr cinfo, long count) {
    auto* src = reinterpret_cast<Source*>(cinfo->src);
    if (count <= 0) {
        return;
    }
    if (static_cast<unsigned long>(count) > src->pub.bytes_in_buffer) {
        src->skipped_past_end = true;
        count = static_cast<long>(src->pub.bytes_in_buffer);
    }
    src->pub.next_input_byte += count;
    src->pub.bytes_in_buffer -= static_cast<std::size_t>(count);
}

// Errors return through longjmp; warnings are counted (the library keeps the last message's
// code in msg_code) and the first one not about precision is kept as text. Nothing is printed.
struct Errors {
    jpeg_error_mgr pub{};
    std::jmp_buf jump{};
    bool failed = false;
    char error[JMSG_LENGTH_MAX] = {};
    char warning[JMSG_LENGTH_MAX] = {};
};

void on_error(j_common_ptr cinfo) {
    auto* errors = reinterpret_cast<Errors*>(cinfo->err);
    errors->failed = true;
    (*cinfo->err->format_message)(cinfo, errors->error);
    std::longjmp(errors->jump, 1);
}

void on_message(j_common_ptr cinfo, int level) {
    auto* errors = reinterpret_cast<Errors*>(cinfo->err);
    if (level >= 0) {
        return;  // a trace message: its code is already in msg_code
    }
    if (cinfo->err->msg_code != JWRN_MUST_DOWNSCALE && errors->warning[0] == '\0') {
        (*cinfo->err->format_message)(cinfo, errors->warning);
    }
    ++cinfo->err->num_warnings;
}

void no_output(j_common_ptr) {}

// The library's state after reading a header; lives in the caller's frame so that nothing the
// longjmp crosses has to be restored.
struct HeaderRead {
    jpeg_decompress_struct cinfo{};
    Errors errors;
    Source source;
    int status = JPEG_SUSPENDED;
};

void read_header(const std::uint8_t* data, std::size_t size, HeaderRead& r) {
    r.cinfo.err = jpeg_std_error(&r.errors.pub);
    r.errors.pub.error_exit = on_error;
    r.errors.pub.emit_message = on_message;
    r.errors.pub.output_message = no_output;
    if (setjmp(r.errors.jump) != 0) {
        return;
    }
    jpeg_create_decompress(&r.cinfo);
    r.source.pub.init_source = init_source;
    r.source.pub.fill_input_buffer = fill_input_buffer;
    r.source.pub.skip_input_data = skip_input_data;
    r.source.pub.resync_to_restart = jpeg_resync_to_restart;
    r.source.pub.term_source = term_source;
    r.source.pub.next_input_byte = data;
    r.source.pub.bytes_in_buffer = size;
    r.cinfo.src = &r.source.pub;
    r.status = jpeg_read_header(&r.cinfo, TRUE);
}

// The decoder GDCM starts with: by Bits Allocated.
int first_decoder_bits(int bits_allocated) {
    return bits_allocated <= 8 ? 8 : bits_allocated <= 12 ? 12 : 16;
}

bool known_rgb_ids(const jpeg_decompress_struct& c) {
    const int a = c.comp_info[0].component_id, b = c.comp_info[1].component_id,
              d = c.comp_info[2].component_id;
    return (a == 1 && b == 2 && d == 3) || (a == 82 && b == 71 && d == 66);
}

// What GDCM trips on once the header up to SOS is read (or its precision refused by the 8-bit
// library), from the frame parameters.
std::string frame_problem(const jpeg_decompress_struct& c, int bits_allocated) {
    const bool lossless = c.process == JPROC_LOSSLESS;
    const int p = c.data_precision;
    if (lossless ? p < 2 || p > 16 : p != 8 && p != 12) {
        return "sample precision " + std::to_string(p) + " bits; JPEG defines " +
               (lossless ? "2 to 16 for lossless" : "8 or 12 for lossy") + " streams";
    }
    if (c.num_components != 1 && c.num_components != 3) {
        return std::to_string(c.num_components) + " components (radprobe reads 1 or 3)";
    }
    if (c.num_components == 3 && !c.saw_JFIF_marker && c.saw_Adobe_marker &&
        c.Adobe_transform > 1) {
        // The library's own warning, which the 8-bit decoder does not reach for 12-bit samples.
        return "Unknown Adobe color transform code " + std::to_string(c.Adobe_transform);
    }
    if (c.num_components == 3 && lossless && p > first_decoder_bits(bits_allocated) &&
        !c.saw_JFIF_marker && !c.saw_Adobe_marker && !known_rgb_ids(c)) {
        return "lossless " + std::to_string(p) +
               "-bit colour stream with unknown component ids (GDCM's decoder switch asserts)";
    }
    return "";
}

std::string problem_of(const HeaderRead& r, int bits_allocated) {
    const jpeg_error_mgr& e = r.errors.pub;
    if (r.source.skipped_past_end) {
        return "a marker segment runs past the end of the fragment";
    }
    if (r.errors.failed && e.msg_code != JERR_BAD_PRECISION) {
        return r.errors.error;
    }
    if (r.errors.warning[0] != '\0') {
        return r.errors.warning;
    }
    if (!r.errors.failed && r.status != JPEG_HEADER_OK) {
        return "";  // cut short by the fragment's end: GDCM suspends and reads on
    }
    return frame_problem(r.cinfo, bits_allocated);
}

}  // namespace

std::string jpeg_header_problem(const std::uint8_t* data, std::size_t size, int bits_allocated) {
    HeaderRead r;
    read_header(data, size, r);
    std::string problem = problem_of(r, bits_allocated);
    jpeg_destroy_decompress(&r.cinfo);
    return problem;
}

void check_jpeg_fragment(const std::uint8_t* data, std::size_t size, int bits_allocated,
                         const std::string& name, long index) {
    if (size < 2 || data[0] != 0xFF || data[1] != 0xD8) {
        return;
    }
    const std::string problem = jpeg_header_problem(data, size, bits_allocated);
    RADPROBE_CHECK(problem.empty(), name, ": corrupt JPEG stream in Pixel Data fragment ", index,
                   " (", problem, ")");
}

}  // namespace radprobe::imaging::detail
