// PNG / JPEG / TIFF decoding through OpenCV. OpenCV returns BGR(A) channel order; colour is
// reduced to BT.601 luminance, alpha ignored.

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>

#include "decoders.hpp"
#include "quiet_stderr.hpp"
#include "radprobe/core/error.hpp"
#include "raster_header.hpp"

namespace radprobe::imaging::detail {
namespace fs = std::filesystem;

namespace {

cv::Mat read_raster(const fs::path& path, const std::string& format) {
    check_raster_decode_size(path, format);
    cv::Mat m;
    try {
        QuietStderr quiet;
        m = cv::imread(path.string(), cv::IMREAD_UNCHANGED | cv::IMREAD_ANYDEPTH);
    } catch (const cv::Exception& e) {
        throw InputError(str_cat(path.string(), ": cannot decode ", format, ": ", e.what()));
    }
    RADPROBE_CHECK(!m.empty(), path.string(), ": cannot decode ", format,
                   " (corrupt or truncated file)");
    RADPROBE_CHECK(m.channels() == 1 || m.channels() == 3 || m.channels() == 4, path.string(),
                   ": ", m.channels(), " channels not supported");
    // A float TIFF may hold NaN or infinity, which no stage can map to a value (found by
    // fuzz/image: NaN display values).
    if (m.depth() == CV_32F || m.depth() == CV_64F) {
        RADPROBE_CHECK(cv::checkRange(m), path.string(), ": ", format,
                       " holds non-finite pixel values (NaN or infinity)");
    }
    return m;
}

double type_max(int depth) {
    switch (depth) {
        case CV_8U: return 255.0;
        case CV_16U: return 65535.0;
        case CV_8S: return 127.0;
        case CV_16S: return 32767.0;
        default: return 0.0;  // float types: scaled by their own range
    }
}

ImageInfo info_of(const cv::Mat& m, const std::string& format) {
    ImageInfo info;
    info.format = format;
    info.rows = m.rows;
    info.cols = m.cols;
    info.samples_per_pixel = m.channels();
    info.bits_allocated = static_cast<int>(8 * m.elemSize1());
    info.bits_stored = info.bits_allocated;
    info.photometric = m.channels() == 1 ? "MONOCHROME2" : "RGB";
    return info;
}

}  // namespace

ImageInfo raster_probe(const fs::path& path, const std::string& format) {
    return info_of(read_raster(path, format), format);
}

Image raster_decode(const fs::path& path, const std::string& format,
                    const DecodeOptions& options) {
    RADPROBE_CHECK(options.frame == 0, path.string(), ": --frame ", options.frame,
                   " out of range (", format, " files have one frame)");
    const cv::Mat raw = read_raster(path, format);
    Image out;
    out.rows = raw.rows;
    out.cols = raw.cols;
    out.info = info_of(raw, format);
    out.pixels.resize(static_cast<std::size_t>(raw.rows) * raw.cols);
    const int ch = raw.channels();
    cv::Mat m;  // one row in double: the image is never held twice
    for (int r = 0; r < raw.rows; ++r) {
        raw.row(r).convertTo(m, CV_64F);
        const double* row = m.ptr<double>(0);
        for (int c = 0; c < raw.cols; ++c) {
            const double* px = row + static_cast<std::ptrdiff_t>(c) * ch;
            // OpenCV order is B, G, R(, A).
            const double y = ch == 1 ? px[0] : luminance(px[2], px[1], px[0]);
            out.pixels[static_cast<std::size_t>(r) * raw.cols + c] = static_cast<float>(y);
        }
    }
    if (options.stage == Stage::kDisplay) {
        double scale = type_max(raw.depth());
        double lo = 0.0;
        if (scale == 0.0) {
            const auto [mn, mx] = std::minmax_element(out.pixels.begin(), out.pixels.end());
            if (*mn >= 0.0f && *mx <= 1.0f) {
                scale = 1.0;
            } else {
                lo = *mn;
                scale = *mx > *mn ? *mx - *mn : 1.0;
            }
        }
        for (auto& v : out.pixels) {
            v = static_cast<float>(std::clamp((v - lo) / scale, 0.0, 1.0));
        }
    }
    return out;
}

}  // namespace radprobe::imaging::detail
