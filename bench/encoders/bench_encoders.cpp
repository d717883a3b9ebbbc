// bench_encoders: ViT-B/14-sized encoders (768 wide, 12 layers, 12 heads, random weights written
// as HF directories by this program) timed at 224 and 518 px, batch 1 and 4: the DINOv2 layout
// (its own fused fast path) and the HF ViT layout (the block workspace every other ViT-like
// family shares). Reported next to two references measured in the same run: the machine's fp32
// GEMM peak (a 2048³ at::mm into a preallocated output) and PyTorch eager running the same
// architecture (bench/encoders/vit_eager.py, /usr/bin/python3, same thread count, same
// environment). bench/encoders/bench_encoders.sh runs it in the default and the tuned
// environment.
//
//   bench_encoders [--threads T] [--iters K] [--no-eager] [--family dinov2|vit]...
//                  [--size PX]... [--batch N]...

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/core/blas_kernel.hpp"
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

/// The same weights in the HF ViT layout (ViTModel without pooler: no LayerScale, no mask
/// token; fc1/fc2 as intermediate/output).
void write_vit_layout(const fs::path& from, const fs::path& dir) {
    fs::create_directories(dir);
    write_file_atomic(dir / "config.json",
                      R"({"model_type": "vit", "hidden_size": 768, "num_hidden_layers": 12,
                          "num_attention_heads": 12, "patch_size": 14, "image_size": 518,
                          "intermediate_size": 3072, "layer_norm_eps": 1e-6,
                          "hidden_act": "gelu", "qkv_bias": true,
                          "architectures": ["ViTForImageClassification"]})");
    const auto st = encoders::SafetensorsFile::open(from / "model.safetensors");
    std::vector<encoders::StTensorData> ts;
    auto renamed = [](std::string k) {
        for (const auto& [a, b] :
             {std::pair<std::string, std::string>{".norm1.", ".layernorm_before."},
              {".norm2.", ".layernorm_after."},
              {".mlp.fc1.", ".intermediate.dense."},
              {".mlp.fc2.", ".output.dense."}}) {
            const auto at = k.find(a);
            if (at != std::string::npos) {
                k.replace(at, a.size(), b);
            }
        }
        return k;
    };
    for (const auto& info : st.tensors()) {
        if (info.name.find("layer_scale") != std::string::npos ||
            info.name == "embeddings.mask_token") {
            continue;
        }
        const auto bytes = st.bytes(info);
        ts.push_back({renamed(info.name), info.dtype, info.shape, {bytes.begin(), bytes.end()}});
    }
    write_file_atomic(dir / "model.safetensors", encoders::serialize_safetensors(ts));
}

double gemm_peak_gflops() {
    const std::int64_t n = 2048;
    const auto a = at::randn({n, n});
    const auto b = at::randn({n, n});
    auto c = at::empty({n, n});
    at::mm_out(c, a, b);  // warm-up: faults the output in once
    double best = 1e30;
    for (int i = 0; i < 10; ++i) {  // the best of 10 (0.5 s): shared machines jitter by 10-20%
        const auto t0 = Clock::now();
        at::mm_out(c, a, b);
        best = std::min(best, seconds_since(t0));
    }
    return 2.0 * n * n * n / best / 1e9;
}

double eager_seconds_per_image(int threads, int size, int batch, int iters, bool layerscale) {
    const std::string cmd = "/usr/bin/python3 '" + std::string(RADPROBE_SOURCE_DIR) +
                            "/bench/encoders/vit_eager.py' --threads " + std::to_string(threads) +
                            " --size " + std::to_string(size) + " --batch " +
                            std::to_string(batch) + " --iters " + std::to_string(iters) +
                            (layerscale ? "" : " --no-layerscale");
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

struct Options {
    int threads = 0;
    int iters = 3;
    bool eager = true;
    std::vector<std::string> families;
    std::vector<int> sizes, batches;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const bool value = i + 1 < argc;
        if (!std::strcmp(argv[i], "--threads") && value) {
            o.threads = std::atoi(argv[++i]);
        } else if (!std::strcmp(argv[i], "--iters") && value) {
            o.iters = std::max(1, std::atoi(argv[++i]));
        } else if (!std::strcmp(argv[i], "--no-eager")) {
            o.eager = false;
        } else if (!std::strcmp(argv[i], "--family") && value) {
            o.families.emplace_back(argv[++i]);
        } else if (!std::strcmp(argv[i], "--size") && value) {
            o.sizes.push_back(std::atoi(argv[++i]));
        } else if (!std::strcmp(argv[i], "--batch") && value) {
            o.batches.push_back(std::atoi(argv[++i]));
        } else {
            std::fprintf(stderr,
                         "usage: bench_encoders [--threads T] [--iters K] [--no-eager] "
                         "[--family dinov2|vit]... [--size PX]... [--batch N]...\n");
            std::exit(2);
        }
    }
    if (o.families.empty()) {
        o.families = {"dinov2", "vit"};
    }
    if (o.sizes.empty()) {
        o.sizes = {224, 518};
    }
    if (o.batches.empty()) {
        o.batches = {1, 4};
    }
    return o;
}

/// Seconds per image of the fastest of `iters` forwards of a batch after one warm-up forward
/// (workspace and interpolated positions). The fastest, not the mean: on a shared machine other
/// tenants only ever slow a forward down (10-25% between runs here), and eager is timed alike.
double seconds_per_image(encoders::Encoder& encoder, int size, int batch, int iters) {
    const auto x = at::randn({batch, 3, size, size});
    encoder.forward(x);
    double best = 1e30;
    for (int i = 0; i < iters; ++i) {
        const auto t0 = Clock::now();
        encoder.forward(x);
        best = std::min(best, seconds_since(t0));
    }
    return best / batch;
}

const char* env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : fallback;
}

/// One measured configuration.
struct Row {
    std::string family;
    int size = 0, batch = 0;
    double seconds = 0, flops = 0, eager = -1;  ///< per image; eager -1: not measured
};

/// The kernels the radprobe command runs (src/cli/main.cpp): OPENBLAS_CORETYPE set when OpenBLAS
/// fell back below the CPU's class, in both environments of bench_encoders.sh and for eager.
void run_the_commands_blas_kernels(char** argv) {
    if (const std::string core = openblas_core_to_set(); !core.empty()) {
        setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
        execv("/proc/self/exe", argv);
    }
}

}  // namespace

int main(int argc, char** argv) {
    run_the_commands_blas_kernels(argv);
    const Options o = parse(argc, argv);
    const int threads = encoders::set_threads(o.threads);
    const fs::path dinov2 = fs::temp_directory_path() / "radprobe-bench-vitb14";
    const fs::path vit = fs::temp_directory_path() / "radprobe-bench-vitb14-vit";
    if (!fs::exists(dinov2 / "model.safetensors")) {
        write_vit_b14(dinov2);
    }
    if (!fs::exists(vit / "model.safetensors")) {
        write_vit_layout(dinov2, vit);
    }
    const double peak_before = gemm_peak_gflops();
    std::printf("threads %d; OMP_WAIT_POLICY=%s GLIBC_TUNABLES=%s\n", threads,
                env_or("OMP_WAIT_POLICY", "(unset)"), env_or("GLIBC_TUNABLES", "(unset)"));
    std::printf("%s\n", blas_description().c_str());
    std::vector<Row> rows;
    for (const auto& family : o.families) {
        auto encoder = encoders::load_encoder(family == "vit" ? vit : dinov2);
        for (int size : o.sizes) {
            for (int batch : o.batches) {
                Row r{family,
                      size,
                      batch,
                      seconds_per_image(*encoder, size, batch, o.iters),
                      encoder->flops_per_image(size, size),
                      -1};
                r.eager = o.eager ? eager_seconds_per_image(threads, size, batch, o.iters,
                                                            family == "dinov2")
                                  : -1;
                std::fprintf(stderr, "%s %d px batch %d: %.3f s/image\n", family.c_str(), size,
                             batch, r.seconds);
                rows.push_back(r);
            }
        }
    }
    // The peak before and after the forwards, the higher counted (another tenant may have
    // slowed one of them).
    const double peak = std::max(peak_before, gemm_peak_gflops());
    std::printf(
        "fp32 GEMM peak (2048^3 at::mm, preallocated output, best of 10 before and of 10 "
        "after): %.1f GFLOP/s\n",
        peak);
    std::printf("%-7s %-6s %-6s %-10s %-9s %-7s %-14s %-8s\n", "family", "size", "batch", "s/image",
                "GFLOP/s", "%peak", "eager s/image", "speedup");
    for (const auto& r : rows) {
        const double gflops = r.flops / r.seconds / 1e9;
        std::printf("%-7s %-6d %-6d %-10.3f %-9.1f %-7.1f %-14.3f %-8.2f\n", r.family.c_str(),
                    r.size, r.batch, r.seconds, gflops, 100.0 * gflops / peak, r.eager,
                    r.eager > 0 ? r.eager / r.seconds : 0.0);
    }
    return 0;
}
