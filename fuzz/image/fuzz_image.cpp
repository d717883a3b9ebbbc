// libFuzzer target for the raster path of `radprobe decode`: format sniffing, then OpenCV's
// PNG / JPEG / TIFF readers (libpng, libjpeg, libtiff) and radprobe's conversion to a float
// image, on the input written to a file (the decoder reads paths). Any input must decode or throw
// InputError — never crash, hang, trip ASan/UBSan or throw anything else.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../common/fuzz_support.hpp"
#include "radprobe/imaging/decode.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace imaging = radprobe::imaging;
    const auto path = radprobe::fuzz::scratch_dir() / "input.img";
    radprobe::fuzz::write_bytes(path, data, size);
    radprobe::fuzz::expect_documented_errors([&] {
        imaging::DecodeOptions options;
        options.stage = static_cast<imaging::Stage>(size % 3);
        const imaging::Image image = imaging::decode(path, options);
        if (image.pixels.size() != static_cast<std::size_t>(image.rows) * image.cols) {
            std::abort();
        }
        if (options.stage == imaging::Stage::kDisplay) {
            for (const float v : image.pixels) {
                if (!(v >= 0.0f && v <= 1.0f)) {  // display values lie in [0, 1], never NaN
                    std::abort();
                }
            }
        }
    });
    return 0;
}
