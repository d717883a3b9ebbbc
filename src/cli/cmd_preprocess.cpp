// radprobe preprocess --model HFDIR IMAGE --out X.npy [--resize N] [--channels 3|1]
//                     [--save-resized R.npy]

#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/imaging/decode.hpp"
#include "radprobe/preprocess/preprocess.hpp"

namespace radprobe::cli {

Runner setup_preprocess(CLI::App& app) {
    struct Options {
        std::string model;
        std::string image;
        std::string out;
        std::string save_resized;
        std::int64_t resize = 0;
        int channels = 3;
    };
    auto opt = std::make_shared<Options>();
    app.add_option("--model", opt->model,
                   "Hugging Face model directory (its preprocessor_config.json is used)")
        ->required();
    app.add_option("IMAGE", opt->image, "DICOM, PNG, JPEG or TIFF file")->required();
    app.add_option("--out", opt->out, "output .npy: float32 1×C×H×W pixel_values")->required();
    app.add_option("--resize", opt->resize,
                   "override the size: shortest edge N and, if the processor crops, an N×N "
                   "centre crop (0 = the processor's own size)")
        ->capture_default_str();
    app.add_option("--channels", opt->channels,
                   "3: grey replicated and normalised per channel (HF); 1: rescaled grey in "
                   "[0,1] for a folded encoder (radprobe tokens --fold-grayscale)")
        ->capture_default_str();
    app.add_option("--save-resized", opt->save_resized,
                   "also write the resized 8-bit image before the crop (uint8 H×W×3 .npy)");
    return [opt]() -> int {
        RADPROBE_USAGE_CHECK(opt->channels == 1 || opt->channels == 3,
                             "--channels must be 1 or 3, got ", opt->channels);
        RADPROBE_USAGE_CHECK(opt->resize >= 0, "--resize must be >= 0, got ", opt->resize);
        auto config = encoders::read_preprocess_config(opt->model);
        if (opt->resize > 0) {
            config.override_size(opt->resize);
        }
        const imaging::Image image = imaging::decode(opt->image);
        const auto grey = preprocess::quantise_u8(image.pixels.data(), image.pixels.size());
        const auto values =
            preprocess::preprocess_grey_u8(grey, image.rows, image.cols, config, opt->channels);
        const auto size = config.output_size(image.rows, image.cols);
        write_npy_f32(opt->out, {1, opt->channels, size[0], size[1]}, values.data());
        if (!opt->save_resized.empty()) {
            std::vector<std::uint8_t> resized;
            preprocess::resize_and_crop_u8(grey, image.rows, image.cols, config, &resized);
            const auto g = preprocess::processor_geometry(config, image.rows, image.cols);
            NpyArray a;
            a.dtype = DType::kUInt8;
            a.shape = {g.resized_height, g.resized_width, 3};
            a.data.resize(resized.size() * 3);
            for (std::size_t i = 0; i < resized.size(); ++i) {
                a.data[3 * i] = a.data[3 * i + 1] = a.data[3 * i + 2] = resized[i];
            }
            write_npy(opt->save_resized, a);
        }
        return 0;
    };
}

}  // namespace radprobe::cli
