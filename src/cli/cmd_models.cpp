// radprobe models [HFDIR] [--calibrate ...]: the supported architectures, or what a model
// directory holds and how fast it runs here.

#include <cstdio>
#include <memory>
#include <vector>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/core/blas_kernel.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"

namespace radprobe::cli {

namespace {

struct ModelsArgs {
    std::string dir, key;
    bool calibrate = false;
    std::vector<int> sizes, batches{1, 2, 4, 8};
    double seconds = 3;
    int threads = 0;
    std::string device = "cpu";
};

void list_architectures() {
    std::printf(
        "supported architectures (config.json model_type; open_clip_config.json for "
        "open_clip_timm_vit):\n");
    for (const auto& type : encoders::known_model_types()) {
        std::printf("  %-24s %s\n", type.c_str(), encoders::model_type_description(type).c_str());
    }
    std::printf(
        "also read as one of these: open_clip's own ViT towers (OpenAI-style CLIP, CoCa; "
        "open_clip_config.json), and with no config at all a lone torchvision ResNet, "
        "timm Swin (Ark+) or VMamba (MzeroMiko/VMamba release .pth) checkpoint\n");
}

/// Images/s per batch size at each size; the batch that gave the most is the one to use.
void print_calibration(const ModelsArgs& a) {
    const c10::Device device = encoders::parse_device(a.device);
    const int threads = encoders::set_threads(a.threads);
    auto encoder = encoders::load_encoder(a.dir, encoders::LoadOptions::with_key(a.key));
    encoder->to(device);
    std::vector<int> sizes = a.sizes;
    if (sizes.empty()) {  // the native size (224 for the CNNs, which have none)
        const auto native = encoder->config().image_size;
        sizes.push_back(native > 0 ? static_cast<int>(native) : 224);
    }
    std::printf("calibration (%s, %d threads, %.3g s per batch size, random input):\n  %s\n",
                device.str().c_str(), threads, a.seconds, blas_description().c_str());
    for (int size : sizes) {
        const auto rows = encoders::calibrate(*encoder, size, a.batches, a.seconds);
        const encoders::Throughput* best = &rows.front();
        std::printf("  %d px, %.3g GFLOP/image:", size, encoder->flops_per_image(size, size) / 1e9);
        for (const auto& r : rows) {
            std::printf(" batch %d %.3g img/s;", r.batch, r.images_per_second);
            best = r.images_per_second > best->images_per_second ? &r : best;
        }
        std::printf(" best: --batch %d (%.3g images/s, %.3g GFLOP/s)\n", best->batch,
                    best->images_per_second, best->gflops_per_second);
    }
}

}  // namespace

Runner setup_models(CLI::App& app) {
    auto a = std::make_shared<ModelsArgs>();
    app.add_option("HFDIR", a->dir,
                   "a Hugging Face model directory to describe (omit to list the architectures)");
    add_checkpoint_key_flag(app, a->key);
    app.add_flag("--calibrate", a->calibrate,
                 "also time forward passes here: images/s per batch size at each --size, and the "
                 "batch that gives the most");
    app.add_option("--size", a->sizes,
                   "input side(s) in px to calibrate (default: the native size)");
    app.add_option("--batch", a->batches, "batch sizes to try, in order")->capture_default_str();
    app.add_option("--seconds", a->seconds, "timing per batch size")->capture_default_str();
    app.add_option("--threads", a->threads, "LibTorch threads (0 = cores available)");
    add_device_flag(app, a->device);
    return [a]() -> int {
        if (a->dir.empty()) {
            RADPROBE_USAGE_CHECK(!a->calibrate, "--calibrate needs a model directory (HFDIR)");
            list_architectures();
            return 0;
        }
        RADPROBE_USAGE_CHECK(a->seconds > 0, "--seconds must be positive");
        RADPROBE_USAGE_CHECK(a->threads >= 0, "--threads must be >= 0");
        std::fputs(
            encoders::describe_model_dir(a->dir, encoders::LoadOptions::with_key(a->key)).c_str(),
            stdout);
        if (a->calibrate) {
            print_calibration(*a);
        }
        return 0;
    };
}

}  // namespace radprobe::cli
