// A randomly initialised DINOv2-layout ViT written as a Hugging Face directory (no LibTorch).

#include <cmath>
#include <nlohmann/json.hpp>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/encoders/safetensors.hpp"

namespace radprobe::encoders {

void write_random_vit(const std::filesystem::path& dir, const RandomVitSpec& s) {
    RADPROBE_USAGE_CHECK(s.hidden_size > 0 && s.num_attention_heads > 0 &&
                             s.hidden_size % s.num_attention_heads == 0,
                         "random ViT: hidden_size must be a positive multiple of the heads");
    RADPROBE_USAGE_CHECK(
        s.patch_size > 0 && s.image_size >= s.patch_size && s.num_hidden_layers > 0,
        "random ViT: invalid patch/image size or depth");
    const std::int64_t d = s.hidden_size, hf = 4 * d, grid = s.image_size / s.patch_size;
    nlohmann::json config = {{"model_type", "dinov2"},
                             {"architectures", {"Dinov2Model"}},
                             {"hidden_size", d},
                             {"num_hidden_layers", s.num_hidden_layers},
                             {"num_attention_heads", s.num_attention_heads},
                             {"patch_size", s.patch_size},
                             {"image_size", s.image_size},
                             {"num_channels", 3},
                             {"mlp_ratio", 4},
                             {"layer_norm_eps", 1e-6},
                             {"hidden_act", "gelu"},
                             {"layerscale_value", s.layerscale_value},
                             {"use_swiglu_ffn", false},
                             {"qkv_bias", true},
                             {"initializer_range", s.initializer_range},
                             {"radprobe_random_init_seed", s.seed}};
    nlohmann::json pre = {{"image_processor_type", "BitImageProcessor"},
                          {"do_resize", true},
                          {"size", {{"shortest_edge", s.image_size}}},
                          {"resample", 3},
                          {"do_center_crop", true},
                          {"crop_size", {{"height", s.image_size}, {"width", s.image_size}}},
                          {"do_rescale", true},
                          {"rescale_factor", 1.0 / 255.0},
                          {"do_normalize", true},
                          {"image_mean", {0.485, 0.456, 0.406}},
                          {"image_std", {0.229, 0.224, 0.225}}};
    Rng rng(s.seed);
    // Truncated normal on [-2σ, 2σ] by rejection, as torch.nn.init.trunc_normal_(std=σ).
    auto trunc_normal = [&](double sd) {
        while (true) {
            const double x = rng.normal();
            if (x >= -2.0 && x <= 2.0) {
                return static_cast<float>(x * sd);
            }
        }
    };
    std::vector<StTensorData> ts;
    auto numel = [](const std::vector<std::int64_t>& shape) {
        std::int64_t n = 1;
        for (auto v : shape) {
            n *= v;
        }
        return static_cast<std::size_t>(n);
    };
    auto normal = [&](const std::string& name, std::vector<std::int64_t> shape) {
        std::vector<float> v(numel(shape));
        for (auto& x : v) {
            x = trunc_normal(s.initializer_range);
        }
        ts.push_back(st_f32(name, shape, v));
    };
    auto constant = [&](const std::string& name, std::vector<std::int64_t> shape, float value) {
        ts.push_back(st_f32(name, shape, std::vector<float>(numel(shape), value)));
    };
    normal("embeddings.cls_token", {1, 1, d});
    constant("embeddings.mask_token", {1, d}, 0.0f);
    normal("embeddings.position_embeddings", {1, grid * grid + 1, d});
    normal("embeddings.patch_embeddings.projection.weight", {d, 3, s.patch_size, s.patch_size});
    constant("embeddings.patch_embeddings.projection.bias", {d}, 0.0f);
    for (std::int64_t i = 0; i < s.num_hidden_layers; ++i) {
        const std::string k = "encoder.layer." + std::to_string(i) + ".";
        for (const char* n : {"query", "key", "value"}) {
            normal(k + "attention.attention." + n + ".weight", {d, d});
            constant(k + "attention.attention." + n + ".bias", {d}, 0.0f);
        }
        normal(k + "attention.output.dense.weight", {d, d});
        constant(k + "attention.output.dense.bias", {d}, 0.0f);
        constant(k + "layer_scale1.lambda1", {d}, static_cast<float>(s.layerscale_value));
        constant(k + "layer_scale2.lambda1", {d}, static_cast<float>(s.layerscale_value));
        constant(k + "norm1.weight", {d}, 1.0f);
        constant(k + "norm1.bias", {d}, 0.0f);
        constant(k + "norm2.weight", {d}, 1.0f);
        constant(k + "norm2.bias", {d}, 0.0f);
        normal(k + "mlp.fc1.weight", {hf, d});
        constant(k + "mlp.fc1.bias", {hf}, 0.0f);
        normal(k + "mlp.fc2.weight", {d, hf});
        constant(k + "mlp.fc2.bias", {d}, 0.0f);
    }
    constant("layernorm.weight", {d}, 1.0f);
    constant("layernorm.bias", {d}, 0.0f);
    write_file_atomic(
        dir / "model.safetensors",
        serialize_safetensors(ts, {{"format", "pt"}, {"radprobe", "random-init ViT control"}}));
    write_file_atomic(dir / "config.json", config.dump(2) + "\n");
    write_file_atomic(dir / "preprocessor_config.json", pre.dump(2) + "\n");
}

}  // namespace radprobe::encoders
