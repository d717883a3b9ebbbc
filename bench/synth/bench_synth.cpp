// Throughput of `radprobe synth`: images/s for rendering alone (1 thread) and for writing a whole
// dataset (all threads, PNG and DICOM), each reported against a reference measured in the same
// run: the file-output floor — encoding and writing the same five PNGs per image (one 16-bit
// image, four 8-bit masks) of an already-rendered phantom, on the same threads.
//
// Usage: bench_synth [N=1000] [SIZE=256] [THREADS=0 (all)]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "radprobe/core/parallel.hpp"
#include "radprobe/synth/phantom.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

void write_png(const fs::path& path, const cv::Mat& mat) {
    std::vector<std::uint8_t> buf;
    cv::imencode(
        ".png", mat, buf,
        {cv::IMWRITE_PNG_COMPRESSION, 1, cv::IMWRITE_PNG_STRATEGY, cv::IMWRITE_PNG_STRATEGY_RLE});
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
}

}  // namespace

int main(int argc, char** argv) {
    using namespace radprobe;
    const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000;
    const int size = argc > 2 ? std::atoi(argv[2]) : 256;
    const int threads = argc > 3 ? std::atoi(argv[3]) : 0;
    const int used_threads = threads > 0 ? threads : available_threads();
    const fs::path root =
        fs::temp_directory_path() / ("radprobe-bench-synth-" + std::to_string(::getpid()));
    fs::create_directories(root);

    synth::SynthOptions o;
    o.n = n;
    o.size = size;
    o.seed = 1;
    o.threads = threads;

    auto t0 = Clock::now();
    const auto cases = synth::plan_dataset(o);
    const double plan_s = seconds_since(t0);

    const std::size_t n_render = std::min<std::size_t>(n, 100);
    t0 = Clock::now();
    std::size_t guard = 0;
    for (std::size_t i = 0; i < n_render; ++i) {
        guard += synth::render(cases[i]).boxes.size();
    }
    const double render_s = seconds_since(t0) / n_render;

    // Reference: the output floor (encode + write 5 PNGs per image) on the same threads.
    const synth::Phantom ph = synth::render(cases[0]);
    std::vector<std::uint16_t> stored(ph.image.size());
    for (std::size_t i = 0; i < stored.size(); ++i) {
        stored[i] = synth::to_stored(ph.image[i]);
    }
    const cv::Mat img(size, size, CV_16UC1, stored.data());
    const cv::Mat mask(size, size, CV_8UC1, const_cast<std::uint8_t*>(ph.heart.data()));
    fs::create_directories(root / "ref");
    t0 = Clock::now();
    parallel_for(n, threads, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t i = lo; i < hi; ++i) {
            const std::string stem = (root / "ref" / std::to_string(i)).string();
            write_png(stem + ".png", img);
            for (int m = 0; m < 4; ++m) {
                write_png(stem + "_m" + std::to_string(m) + ".png", mask);
            }
        }
    });
    const double ref_s = seconds_since(t0);

    t0 = Clock::now();
    synth::write_dataset(root / "png", o);
    const double png_s = seconds_since(t0);

    o.format = synth::ImageFormat::kDicom;
    t0 = Clock::now();
    synth::write_dataset(root / "dcm", o);
    const double dcm_s = seconds_since(t0);

    fs::remove_all(root);
    std::printf("bench_synth: n=%zu size=%d threads=%d\n", n, size, used_threads);
    std::printf("  plan (labels + geometry)     %8.3f s  (%.0f images/s)\n", plan_s, n / plan_s);
    std::printf("  render only, 1 thread        %8.2f ms/image  (%.1f images/s)\n", 1e3 * render_s,
                1.0 / render_s);
    std::printf("  reference: write 5 PNGs/img  %8.2f s  (%.1f images/s)\n", ref_s, n / ref_s);
    std::printf(
        "  synth --format png           %8.2f s  (%.1f images/s)  %.2fx the reference time\n",
        png_s, n / png_s, png_s / ref_s);
    std::printf(
        "  synth --format dcm           %8.2f s  (%.1f images/s)  %.2fx the reference time\n",
        dcm_s, n / dcm_s, dcm_s / ref_s);
    std::printf(
        "  rendering share of png wall  %8.2f  (1-thread render time x n / threads / wall time)\n",
        render_s * n / used_threads / png_s);
    return guard == static_cast<std::size_t>(-1) ? 1 : 0;
}
