// Reading masks through OpenCV (kept out of the public header).

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

Mask read_mask(const std::filesystem::path& path) {
    std::error_code ec;
    RADPROBE_CHECK(std::filesystem::is_regular_file(path, ec), "mask ", path.string(),
                   ": no such file");
    const cv::Mat image = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
    RADPROBE_CHECK(!image.empty(), "mask ", path.string(),
                   ": not an image OpenCV can read (expected PNG)");
    RADPROBE_CHECK(image.dims == 2, "mask ", path.string(), ": not a 2-D image");
    std::vector<cv::Mat> planes;
    cv::split(image, planes);
    // Gray, gray+alpha, BGR, BGRA: look at the colour channels only.
    const std::size_t colour = planes.size() >= 3 ? 3 : 1;
    cv::Mat foreground = planes[0] != 0;
    for (std::size_t c = 1; c < colour; ++c) {
        foreground |= planes[c] != 0;
    }
    Mask mask;
    mask.height = static_cast<std::size_t>(image.rows);
    mask.width = static_cast<std::size_t>(image.cols);
    mask.pixels.resize(mask.height * mask.width);
    for (int r = 0; r < image.rows; ++r) {
        const auto* row = foreground.ptr<std::uint8_t>(r);
        for (int c = 0; c < image.cols; ++c) {
            mask.pixels[static_cast<std::size_t>(r) * mask.width + c] = row[c] != 0 ? 1 : 0;
        }
    }
    return mask;
}

}  // namespace radprobe::eval
