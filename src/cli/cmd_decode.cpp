// radprobe decode IMAGE --out X.npy [--stage stored|modality|display] [--window N] [--frame N]

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/imaging/decode.hpp"

namespace radprobe::cli {

Runner setup_decode(CLI::App& app) {
    struct Options {
        std::string image;
        std::string out;
        std::string stage = "display";
        int window = 0;
        int frame = 0;
        bool info = false;
    };
    auto opt = std::make_shared<Options>();
    app.add_option("IMAGE", opt->image, "DICOM, PNG, JPEG or TIFF file")->required();
    app.add_option("--out", opt->out, "output .npy (float32 H×W)")->required();
    app.add_option("--stage", opt->stage,
                   "stored: raw stored values; modality: rescale / Modality LUT applied; "
                   "display: VOI applied, MONOCHROME1 inverted, scaled to [0,1] (1 = white)")
        ->capture_default_str();
    app.add_option("--window", opt->window,
                   "which window centre/width (or VOI LUT) to use when several are present, "
                   "0-based")
        ->capture_default_str();
    app.add_option("--frame", opt->frame, "frame of a multi-frame file, 0-based")
        ->capture_default_str();
    app.add_flag("--info", opt->info, "print what was found in the file (JSON-like) on stderr");
    return [opt]() -> int {
        imaging::DecodeOptions options;
        options.stage = imaging::parse_stage(opt->stage);
        RADPROBE_USAGE_CHECK(opt->window >= 0, "--window must be >= 0, got ", opt->window);
        RADPROBE_USAGE_CHECK(opt->frame >= 0, "--frame must be >= 0, got ", opt->frame);
        options.window = opt->window;
        options.frame = opt->frame;
        const imaging::Image image = imaging::decode(opt->image, options);
        for (const auto& w : image.info.warnings) {
            std::fprintf(stderr, "radprobe decode: warning: %s: %s\n", opt->image.c_str(),
                         w.c_str());
        }
        if (opt->info) {
            const auto& i = image.info;
            std::fprintf(stderr,
                         "format=%s transfer_syntax=%s photometric=%s modality=%s rows=%d cols=%d "
                         "frames=%d samples=%d bits_allocated=%d bits_stored=%d signed=%d "
                         "windows=%d voi_luts=%d\n",
                         i.format.c_str(), i.transfer_syntax.c_str(), i.photometric.c_str(),
                         i.modality.c_str(), i.rows, i.cols, i.frames, i.samples_per_pixel,
                         i.bits_allocated, i.bits_stored, i.is_signed ? 1 : 0, i.num_windows,
                         i.num_voi_luts);
        }
        write_npy_f32(opt->out, {image.rows, image.cols}, image.pixels.data());
        return 0;
    };
}

}  // namespace radprobe::cli
