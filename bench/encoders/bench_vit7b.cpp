// bench_vit7b: a DINOv3 ViT-7B-shaped bf16 checkpoint (make_vit7b) loaded once, then timed
// forward passes of one 224-px image: the load time, seconds per image, and the process's peak
// resident memory (getrusage), for the block stack computed in --dtype fp32 or bf16. One dtype
// per process, so that each peak is its own. Not part of CI (bench_vit7b.sh runs it).
//
//   bench_vit7b --model DIR [--dtype fp32|bf16] [--iters K] [--threads T]

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/encoder.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double peak_rss_gb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) * 1024.0 / 1e9;  // ru_maxrss is in KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
    using namespace radprobe;
    std::string model, dtype = "fp32";
    int iters = 2, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--model") {
            model = argv[i + 1];
        } else if (a == "--dtype") {
            dtype = argv[i + 1];
        } else if (a == "--iters") {
            iters = std::stoi(argv[i + 1]);
        } else if (a == "--threads") {
            threads = std::stoi(argv[i + 1]);
        }
    }
    if (model.empty() || iters < 1) {
        std::fprintf(stderr, "usage: bench_vit7b --model DIR [--dtype fp32|bf16] [--iters K]\n");
        return 2;
    }
    const int used = encoders::set_threads(threads);
    encoders::LoadOptions options;
    options.compute_dtype = encoders::parse_compute_dtype(dtype);
    const auto t0 = Clock::now();
    auto encoder = encoders::load_encoder(model, options);
    const double load_s = seconds_since(t0);
    const double load_rss = peak_rss_gb();
    const auto x = encoders::tensor_from_npy(read_npy(model + "/pixel_values_1.npy"));
    double best = 1e30, total = 0;
    for (int k = 0; k < iters; ++k) {
        const auto t1 = Clock::now();
        const auto out = encoder->forward(x);
        const double s = seconds_since(t1);
        best = std::min(best, s);
        total += s;
        if (!out.last_hidden_state.isfinite().all().item<bool>()) {
            std::fprintf(stderr, "bench_vit7b: non-finite tokens\n");
            return 1;
        }
    }
    std::printf(
        "%s: load %.1f s (%s; peak RSS after load %.2f GB), forward of one 224-px image %.1f s "
        "best / %.1f s mean of %d, %.0f GFLOP/s, %d threads; peak RSS %.2f GB (%s 16 GB)\n",
        dtype.c_str(), load_s, encoder->load_report().held_dtype.c_str(), load_rss, best,
        total / iters, iters, encoder->flops_per_image(224, 224) / best / 1e9, used,
        peak_rss_gb(), peak_rss_gb() < 16 ? "under" : "OVER");
    return 0;
}
