// bench_encoders: a ViT-B/14-sized DINOv2 (768 wide, 12 layers, 12 heads, random weights written
// as a HF directory by this program) timed at 224 and 518 px. Reported next to two references
// measured in the same run: the machine's fp32 GEMM peak (a 2048³ at::mm into a preallocated
// output) and PyTorch eager running the same architecture (bench/encoders/vit_eager.py,
// /usr/bin/python3, same thread count).
//
//   bench_encoders [--threads T] [--iters K] [--no-eager]

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/core/files.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/safetensors.hpp"

namespace {

namespace fs = std::filesystem;
using namespace radprobe;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

void write_vit_b14(const fs::path& dir) {
    const std::int64_t d = 768, layers = 12, grid = 37, hf = 3072;
    fs::create_directories(dir);
    write_file_atomic(dir / "config.json",
                      R"({"model_type": "dinov2", "hidden_size": 768, "num_hidden_layers": 12,
                          "num_attention_heads": 12, "patch_size": 14, "image_size": 518,
                          "mlp_ratio": 4, "layer_norm_eps": 1e-6, "hidden_act": "gelu",
                          "layerscale_value": 1.0, "use_swiglu_ffn": false, "qkv_bias": true})");
    Rng rng(1234);
    std::vector<encoders::StTensorData> ts;
    auto add = [&](const std::string& name, std::vector<std::int64_t> shape, double scale,
                   double offset) {
        std::int64_t n = 1;
        for (auto s : shape) {
            n *= s;
        }
        std::vector<float> v(static_cast<std::size_t>(n));
        for (auto& x : v) {
            x = static_cast<float>(offset + scale * rng.uniform(-1.0, 1.0));
        }
        ts.push_back(encoders::st_f32(name, shape, v));
    };
    add("embeddings.cls_token", {1, 1, d}, 0.5, 0);
    add("embeddings.mask_token", {1, d}, 0, 0);
    add("embeddings.position_embeddings", {1, grid * grid + 1, d}, 0.5, 0);
    add("embeddings.patch_embeddings.projection.weight", {d, 3, 14, 14}, 0.04, 0);
    add("embeddings.patch_embeddings.projection.bias", {d}, 0.1, 0);
    for (std::int64_t i = 0; i < layers; ++i) {
        const std::string k = "encoder.layer." + std::to_string(i) + ".";
        for (const char* n : {"query", "key", "value"}) {
            add(k + "attention.attention." + n + ".weight", {d, d}, 0.06, 0);
            add(k + "attention.attention." + n + ".bias", {d}, 0.1, 0);
        }
        add(k + "attention.output.dense.weight", {d, d}, 0.06, 0);
        add(k + "attention.output.dense.bias", {d}, 0.1, 0);
        add(k + "layer_scale1.lambda1", {d}, 0.05, 0.1);
        add(k + "layer_scale2.lambda1", {d}, 0.05, 0.1);
        add(k + "norm1.weight", {d}, 0.1, 1);
        add(k + "norm1.bias", {d}, 0.1, 0);
        add(k + "norm2.weight", {d}, 0.1, 1);
        add(k + "norm2.bias", {d}, 0.1, 0);
        add(k + "mlp.fc1.weight", {hf, d}, 0.06, 0);
        add(k + "mlp.fc1.bias", {hf}, 0.1, 0);
        add(k + "mlp.fc2.weight", {d, hf}, 0.03, 0);
        add(k + "mlp.fc2.bias", {d}, 0.1, 0);
    }
    add("layernorm.weight", {d}, 0.1, 1);
    add("layernorm.bias", {d}, 0.1, 0);
    write_file_atomic(dir / "model.safetensors", encoders::serialize_safetensors(ts));
}

double gemm_peak_gflops() {
    const std::int64_t n = 2048;
    const auto a = at::randn({n, n});
    const auto b = at::randn({n, n});
    auto c = at::empty({n, n});
    at::mm_out(c, a, b);  // warm-up: faults the output in once
    double best = 1e30;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = Clock::now();
        at::mm_out(c, a, b);
        best = std::min(best, seconds_since(t0));
    }
    return 2.0 * n * n * n / best / 1e9;
}

double eager_seconds_per_image(int threads, int size, int batch, int iters) {
    const std::string cmd = "/usr/bin/python3 '" + std::string(RADPROBE_SOURCE_DIR) +
                            "/bench/encoders/vit_eager.py' --threads " + std::to_string(threads) +
                            " --size " + std::to_string(size) + " --batch " +
                            std::to_string(batch) + " --iters " + std::to_string(iters);
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) {
        return -1;
    }
    char line[512] = {0};
    std::string out;
    while (std::fgets(line, sizeof line, p) != nullptr) {
        out += line;
    }
    if (pclose(p) != 0) {
        return -1;
    }
    const auto pos = out.find(':');
    return pos == std::string::npos ? -1 : std::atof(out.c_str() + pos + 1);
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 0;
    int iters = 2;
    bool eager = true;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = std::atoi(argv[++i]);
        } else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = std::atoi(argv[++i]);
        } else if (!std::strcmp(argv[i], "--no-eager")) {
            eager = false;
        } else {
            std::fprintf(stderr, "usage: bench_encoders [--threads T] [--iters K] [--no-eager]\n");
            return 2;
        }
    }
    threads = encoders::set_threads(threads);
    const fs::path dir = fs::temp_directory_path() / "radprobe-bench-vitb14";
    if (!fs::exists(dir / "model.safetensors")) {
        write_vit_b14(dir);
    }
    auto encoder = encoders::load_encoder(dir);
    const double peak = gemm_peak_gflops();
    std::printf("threads %d; fp32 GEMM peak (2048^3 at::mm, preallocated output): %.1f GFLOP/s\n",
                threads, peak);
    std::printf("%-6s %-6s %-12s %-10s %-9s %-14s %-9s\n", "size", "batch", "s/image", "GFLOP/s",
                "%peak", "eager s/image", "speedup");
    for (const auto& [size, batch] : {std::pair{224, 4}, std::pair{518, 1}}) {
        const auto x = at::randn({batch, 3, size, size});
        encoder->forward(x);  // warm-up: workspace and interpolated positions
        const auto t0 = Clock::now();
        for (int i = 0; i < iters; ++i) {
            encoder->forward(x);
        }
        const double spi = seconds_since(t0) / (iters * batch);
        const double gflops = encoder->flops_per_image(size, size) / spi / 1e9;
        const double ref = eager ? eager_seconds_per_image(threads, size, batch, iters) : -1;
        std::printf("%-6d %-6d %-12.3f %-10.1f %-9.1f %-14.3f %-9.2f\n", size, batch, spi, gflops,
                    100.0 * gflops / peak, ref, ref > 0 ? ref / spi : 0.0);
        std::fflush(stdout);
    }
    return 0;
}
