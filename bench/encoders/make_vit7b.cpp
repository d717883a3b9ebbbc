// make_vit7b: a DINOv3 ViT-7B/16-shaped checkpoint with random bf16 weights, written as the
// published one is (Hugging Face DINOv3ViTModel: config.json with model_type dinov3_vit,
// model-0000k-of-0000n.safetensors shards of at most --shard-gb GB, model.safetensors.index.json),
// plus preprocessor_config.json and a 1×3×224×224 and a 2×3×224×224 pixel_values file for
// `radprobe tokens`. Every tensor is generated and written in chunks: the program never holds
// more than a few MB, so it runs beside nothing else on a 24 GB machine. Not part of CI (13.4 GB
// of disk); bench/encoders/bench_vit7b.sh runs it.
//
//   make_vit7b --out DIR [--layers 40] [--shard-gb 5] [--seed 7]
//
// Sizes (facebook/dinov3-vit7b16-pretrain-lvd1689m config.json): hidden 4096, 40 layers, 32
// heads, gated (SwiGLU) MLP 8192, patch 16, 4 register tokens, layer scale, no q/k/v biases.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Entry {
    std::string name;
    std::vector<std::int64_t> shape;
    float scale = 0.02f;  ///< values uniform in offset ± scale
    float offset = 0.0f;
    std::int64_t numel() const {
        std::int64_t n = 1;
        for (auto s : shape) {
            n *= s;
        }
        return n;
    }
};

constexpr std::int64_t kDim = 4096, kHidden = 8192, kHeads = 32, kPatch = 16, kRegisters = 4;

std::vector<Entry> entries(std::int64_t layers) {
    const std::int64_t d = kDim;
    std::vector<Entry> e = {{"embeddings.cls_token", {1, 1, d}},
                            {"embeddings.mask_token", {1, 1, d}},
                            {"embeddings.register_tokens", {1, kRegisters, d}},
                            {"embeddings.patch_embeddings.weight", {d, 3, kPatch, kPatch}},
                            {"embeddings.patch_embeddings.bias", {d}}};
    for (std::int64_t i = 0; i < layers; ++i) {
        const std::string l = "layer." + std::to_string(i) + ".";
        for (const char* n : {"norm1", "norm2"}) {
            e.push_back({l + n + ".weight", {d}, 0.1f, 1.0f});
            e.push_back({l + n + ".bias", {d}});
        }
        for (const char* p : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
            e.push_back({l + "attention." + p + ".weight", {d, d}});
        }
        e.push_back({l + "attention.o_proj.bias", {d}});
        e.push_back({l + "layer_scale1.lambda1", {d}, 0.1f, 0.2f});
        e.push_back({l + "layer_scale2.lambda1", {d}, 0.1f, 0.2f});
        for (const char* p : {"gate_proj", "up_proj"}) {
            e.push_back({l + "mlp." + p + ".weight", {kHidden, d}});
            e.push_back({l + "mlp." + p + ".bias", {kHidden}});
        }
        e.push_back({l + "mlp.down_proj.weight", {d, kHidden}});
        e.push_back({l + "mlp.down_proj.bias", {d}});
    }
    e.push_back({"norm.weight", {d}, 0.1f, 1.0f});
    e.push_back({"norm.bias", {d}});
    return e;
}

/// xorshift64*: uniform floats in [-1, 1).
struct Uniform {
    std::uint64_t s;
    float operator()() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        const std::uint64_t r = s * 2685821657736338717ULL;
        return static_cast<float>((r >> 40) * (1.0 / 8388608.0) - 1.0);
    }
};

std::uint16_t to_bf16(float f) {  // round to nearest even
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    bits += 0x7FFF + ((bits >> 16) & 1);
    return static_cast<std::uint16_t>(bits >> 16);
}

/// One shard: header, then each tensor streamed in 1M-element chunks. Written under a temporary
/// name and renamed when complete.
void write_shard(const fs::path& path, const std::vector<const Entry*>& tensors, Uniform& rng) {
    json header = {{"__metadata__", {{"format", "pt"}}}};
    std::uint64_t offset = 0;
    for (const Entry* t : tensors) {
        const std::uint64_t bytes = static_cast<std::uint64_t>(t->numel()) * 2;
        header[t->name] = {
            {"dtype", "BF16"}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text = header.dump();
    text.append((8 - (8 + text.size()) % 8) % 8, ' ');
    const fs::path tmp = path.string() + ".tmp";
    std::ofstream out(tmp, std::ios::binary);
    const std::uint64_t len = text.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    std::vector<std::uint16_t> chunk(1 << 20);
    for (const Entry* t : tensors) {
        for (std::int64_t done = 0; done < t->numel();) {
            const auto n = static_cast<std::size_t>(
                std::min<std::int64_t>(static_cast<std::int64_t>(chunk.size()), t->numel() - done));
            for (std::size_t k = 0; k < n; ++k) {
                chunk[k] = to_bf16(t->offset + t->scale * rng());
            }
            out.write(reinterpret_cast<const char*>(chunk.data()),
                      static_cast<std::streamsize>(n * 2));
            done += static_cast<std::int64_t>(n);
        }
    }
    out.close();
    if (!out) {
        std::fprintf(stderr, "make_vit7b: cannot write %s\n", tmp.c_str());
        std::exit(1);
    }
    fs::rename(tmp, path);
}

void write_configs(const fs::path& dir, std::int64_t layers) {
    const json config = {{"model_type", "dinov3_vit"},  {"architectures", {"DINOv3ViTModel"}},
                         {"hidden_size", kDim},         {"intermediate_size", kHidden},
                         {"num_hidden_layers", layers}, {"num_attention_heads", kHeads},
                         {"patch_size", kPatch},        {"image_size", 224},
                         {"num_channels", 3},           {"num_register_tokens", kRegisters},
                         {"hidden_act", "silu"},        {"use_gated_mlp", true},
                         {"layerscale_value", 1e-5},    {"layer_norm_eps", 1e-5},
                         {"rope_theta", 100.0},         {"query_bias", false},
                         {"key_bias", false},           {"value_bias", false},
                         {"proj_bias", true},           {"mlp_bias", true},
                         {"torch_dtype", "bfloat16"}};
    radprobe::write_file_atomic(dir / "config.json", config.dump(2) + "\n");
    const json pre = {{"image_processor_type", "DINOv3ViTImageProcessorFast"},
                      {"do_resize", true},
                      {"size", {{"height", 224}, {"width", 224}}},
                      {"resample", 2},
                      {"do_center_crop", false},
                      {"do_rescale", true},
                      {"rescale_factor", 1.0 / 255.0},
                      {"do_normalize", true},
                      {"image_mean", {0.485, 0.456, 0.406}},
                      {"image_std", {0.229, 0.224, 0.225}}};
    radprobe::write_file_atomic(dir / "preprocessor_config.json", pre.dump(2) + "\n");
}

void write_pixels(const fs::path& dir, Uniform& rng) {
    for (const std::int64_t n : {1, 2}) {
        std::vector<float> v(static_cast<std::size_t>(n * 3 * 224 * 224));
        for (auto& x : v) {
            x = 2.0f * rng();
        }
        radprobe::write_npy_f32(dir / ("pixel_values_" + std::to_string(n) + ".npy"),
                                {n, 3, 224, 224}, v.data());
    }
}

}  // namespace

int main(int argc, char** argv) {
    fs::path out;
    std::int64_t layers = 40;
    double shard_gb = 5.0;
    std::uint64_t seed = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--out") {
            out = argv[i + 1];
        } else if (a == "--layers") {
            layers = std::stoll(argv[i + 1]);
        } else if (a == "--shard-gb") {
            shard_gb = std::stod(argv[i + 1]);
        } else if (a == "--seed") {
            seed = std::stoull(argv[i + 1]);
        }
    }
    if (out.empty() || layers < 1 || shard_gb <= 0) {
        std::fprintf(stderr,
                     "usage: make_vit7b --out DIR [--layers 40] [--shard-gb 5] [--seed 7]\n");
        return 2;
    }
    fs::create_directories(out);
    const auto all = entries(layers);
    std::vector<std::vector<const Entry*>> shards(1);
    std::uint64_t bytes = 0, total = 0;
    for (const auto& e : all) {
        const auto b = static_cast<std::uint64_t>(e.numel()) * 2;
        if (bytes > 0 && static_cast<double>(bytes + b) > shard_gb * 1e9) {
            shards.emplace_back();
            bytes = 0;
        }
        shards.back().push_back(&e);
        bytes += b;
        total += b;
    }
    Uniform rng{seed * 0x9E3779B97F4A7C15ULL + 1};
    json weight_map = json::object();
    char name[64];
    for (std::size_t k = 0; k < shards.size(); ++k) {
        std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
        write_shard(out / name, shards[k], rng);
        for (const Entry* e : shards[k]) {
            weight_map[e->name] = name;
        }
        std::printf("wrote %s (%zu tensors)\n", name, shards[k].size());
    }
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    radprobe::write_file_atomic(out / "model.safetensors.index.json", index.dump(2) + "\n");
    write_configs(out, layers);
    write_pixels(out, rng);
    std::printf("%s: %zu tensors, %.2f GB of bf16 in %zu shards (seed %llu)\n", out.c_str(),
                all.size(), static_cast<double>(total) / 1e9, shards.size(),
                static_cast<unsigned long long>(seed));
    return 0;
}
