// config.json / preprocessor_config.json parsing and the PIL-exact preprocessing (no LibTorch).

#include "radprobe/encoders/model_dir.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"

namespace radprobe::encoders {

namespace {

using nlohmann::json;

struct KnownType {
    const char* name;
    const char* description;
};

const KnownType kKnownModelTypes[] = {
    {"clip_vision_model",
     "HF CLIPVisionModel[WithProjection]: CLIP pre-LN ViT (class embedding, pre/post "
     "layernorm, optional visual_projection)"},
    {"dinov2", "HF Dinov2Model: DINOv2 S/B/L/G, RAD-DINO (LayerScale, SwiGLU via use_swiglu_ffn)"},
    {"dinov2_with_registers", "HF Dinov2WithRegistersModel: DINOv2 with register tokens"},
    {"dinov3_vit", "HF DINOv3ViTModel: 2-D RoPE, register tokens, gated MLP (use_gated_mlp)"},
    {"open_clip_timm_vit",
     "open_clip timm ViT tower (BiomedCLIP): open_clip_config.json, keys visual.trunk.* + "
     "visual.head.proj (projection)"},
    {"resnet", "HF ResNetModel: ResNet-50 style; tokens = the last stage's grid (no CLS)"},
    {"siglip_vision_model",
     "HF SiglipVisionModel: SigLIP/MedSigLIP, no CLS; MAP attention-pooling head = pooled"},
    {"swin", "HF SwinModel: shifted windows, patch merging; tokens = the last stage (no CLS)"},
    {"vit", "HF ViTModel: plain ViT with CLS and pooler"},
    {"vit_mae", "HF ViTMAEModel: MAE encoder, no masking (tokens in natural order)"},
};

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) {
        s += s.empty() ? "" : ", ";
        s += x;
    }
    return s;
}

json read_json(const std::filesystem::path& path, std::string* text_out = nullptr) {
    const std::string text = read_file_text(path);
    if (text_out != nullptr) {
        *text_out = text;
    }
    json j = json::parse(text, nullptr, false);
    RADPROBE_CHECK(!j.is_discarded() && j.is_object(), "file ", path.string(),
                   ": not a JSON object");
    return j;
}

std::filesystem::path config_path(const std::filesystem::path& dir, const char* name) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) {
        return dir / name;
    }
    return dir;
}

template <typename T>
T get_required(const json& j, const char* key, const std::filesystem::path& path) {
    RADPROBE_CHECK(j.contains(key) && !j[key].is_null(), "file ", path.string(), ": key \"", key,
                   "\" is missing");
    try {
        return j[key].get<T>();
    } catch (const json::exception&) {
        RADPROBE_CHECK(false, "file ", path.string(), ": key \"", key, "\" has the wrong type");
    }
    return T{};
}

template <typename T>
T get_optional(const json& j, const char* key, T fallback, const std::filesystem::path& path) {
    if (!j.contains(key) || j[key].is_null()) {
        return fallback;
    }
    try {
        return j[key].get<T>();
    } catch (const json::exception&) {
        RADPROBE_CHECK(false, "file ", path.string(), ": key \"", key, "\" has the wrong type");
    }
    return fallback;
}

std::int64_t positive(std::int64_t v, const char* key, const std::filesystem::path& path) {
    RADPROBE_CHECK(v > 0, "file ", path.string(), ": key \"", key, "\" must be > 0, got ", v);
    return v;
}

// --- PIL's resampling (Pillow src/libImaging/Resample.c, reproduced from its documented
// behaviour: double-precision coefficients normalised per output pixel, converted to 22-bit
// fixed point, accumulated from a half-unit bias, arithmetic shift, clamp to 0..255).

constexpr int kPrecisionBits = 32 - 8 - 2;

double filter_bilinear(double x) {
    x = std::fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

double filter_bicubic(double x) {
    constexpr double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) {
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    }
    if (x < 2.0) {
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    }
    return 0.0;
}

double sinc(double x) {
    if (x == 0.0) {
        return 1.0;
    }
    x *= M_PI;
    return std::sin(x) / x;
}

double filter_lanczos(double x) {
    return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;
}

struct Coeffs {
    int ksize = 0;
    std::vector<int> xmin;
    std::vector<int> count;
    std::vector<std::int32_t> k;  // out_size × ksize, fixed point
};

Coeffs precompute_coeffs(std::int64_t in_size, std::int64_t out_size, Resample filter) {
    double (*fn)(double) = nullptr;
    double support = 0.0;
    switch (filter) {
        case Resample::kBilinear:
            fn = filter_bilinear;
            support = 1.0;
            break;
        case Resample::kBicubic:
            fn = filter_bicubic;
            support = 2.0;
            break;
        case Resample::kLanczos:
            fn = filter_lanczos;
            support = 3.0;
            break;
        default:
            RADPROBE_CHECK(false, "resample filter ", static_cast<int>(filter),
                           " is not supported (bicubic=3, bilinear=2, lanczos=1)");
    }
    const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
    const double filterscale = std::max(scale, 1.0);
    support *= filterscale;
    Coeffs c;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.xmin.resize(out_size);
    c.count.resize(out_size);
    c.k.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
    std::vector<double> w(c.ksize);
    for (std::int64_t xx = 0; xx < out_size; ++xx) {
        const double center = (static_cast<double>(xx) + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = static_cast<int>(center - support + 0.5);  // truncation, as in C
        xmin = std::max(xmin, 0);
        int xmax = static_cast<int>(center + support + 0.5);
        xmax = std::min<std::int64_t>(xmax, in_size);
        xmax -= xmin;
        double total = 0.0;
        for (int x = 0; x < xmax; ++x) {
            w[x] = fn((x + xmin - center + 0.5) * ss);
            total += w[x];
        }
        for (int x = 0; x < xmax; ++x) {
            const double v = total != 0.0 ? w[x] / total : w[x];
            const double scaled = v * (1 << kPrecisionBits);
            c.k[xx * c.ksize + x] = static_cast<std::int32_t>(v < 0 ? scaled - 0.5 : scaled + 0.5);
        }
        c.xmin[xx] = xmin;
        c.count[xx] = std::max(xmax, 0);
    }
    return c;
}

inline std::uint8_t clip8(std::int32_t v) {
    const std::int32_t s = v >> kPrecisionBits;  // arithmetic shift (floor), as Pillow
    return static_cast<std::uint8_t>(std::clamp(s, 0, 255));
}

std::vector<std::int64_t> positive_list(const json& j, const char* key,
                                        const std::filesystem::path& path) {
    const auto v = get_required<std::vector<std::int64_t>>(j, key, path);
    RADPROBE_CHECK(!v.empty(), "file ", path.string(), ": key \"", key, "\" is empty");
    for (const auto x : v) {
        RADPROBE_CHECK(x > 0, "file ", path.string(), ": key \"", key,
                       "\" must hold positive values");
    }
    return v;
}

void read_resnet_fields(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    c.has_cls_token = false;
    c.embedding_size =
        positive(get_optional<std::int64_t>(j, "embedding_size", 64, path), "embedding_size", path);
    c.stage_widths = positive_list(j, "hidden_sizes", path);
    c.depths = positive_list(j, "depths", path);
    RADPROBE_CHECK(c.depths.size() == c.stage_widths.size(), "file ", path.string(),
                   ": \"depths\" and \"hidden_sizes\" have different lengths");
    c.layer_type = get_optional<std::string>(j, "layer_type", "bottleneck", path);
    RADPROBE_CHECK(c.layer_type == "bottleneck" || c.layer_type == "basic", "file ", path.string(),
                   ": layer_type \"", c.layer_type, "\" is not supported (bottleneck, basic)");
    c.downsample_in_first_stage = get_optional<bool>(j, "downsample_in_first_stage", false, path);
    c.downsample_in_bottleneck = get_optional<bool>(j, "downsample_in_bottleneck", false, path);
    c.hidden_size = c.stage_widths.back();
    c.num_hidden_layers = static_cast<std::int64_t>(c.depths.size());
    c.num_attention_heads = 1;
    // Stem: stride-2 conv and stride-2 max-pool; every stage after the first halves the grid
    // (the first too with downsample_in_first_stage).
    c.patch_size = 4;
    for (std::size_t i = 0; i < c.depths.size(); ++i) {
        if (i > 0 || c.downsample_in_first_stage) {
            c.patch_size *= 2;
        }
    }
    c.image_size =
        positive(get_optional<std::int64_t>(j, "image_size", 224, path), "image_size", path);
}

void read_swin_fields(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    c.has_cls_token = false;
    c.embed_patch_size =
        positive(get_required<std::int64_t>(j, "patch_size", path), "patch_size", path);
    c.image_size = positive(get_required<std::int64_t>(j, "image_size", path), "image_size", path);
    c.embedding_size =
        positive(get_required<std::int64_t>(j, "embed_dim", path), "embed_dim", path);
    c.depths = positive_list(j, "depths", path);
    c.stage_heads = positive_list(j, "num_heads", path);
    RADPROBE_CHECK(c.depths.size() == c.stage_heads.size(), "file ", path.string(),
                   ": \"depths\" and \"num_heads\" have different lengths");
    c.window_size =
        positive(get_required<std::int64_t>(j, "window_size", path), "window_size", path);
    c.mlp_ratio = get_optional<double>(j, "mlp_ratio", 4.0, path);
    c.qkv_bias = get_optional<bool>(j, "qkv_bias", true, path);
    c.layer_norm_eps = get_optional<double>(j, "layer_norm_eps", 1e-5, path);
    c.use_absolute_embeddings = get_optional<bool>(j, "use_absolute_embeddings", false, path);
    const auto stages = static_cast<std::int64_t>(c.depths.size());
    c.num_hidden_layers = stages;
    c.patch_size = c.embed_patch_size << (stages - 1);
    for (std::int64_t i = 0; i < stages; ++i) {
        c.stage_widths.push_back(c.embedding_size << i);
        RADPROBE_CHECK((c.embedding_size << i) % c.stage_heads[i] == 0, "file ", path.string(),
                       ": stage ", i, " width ", c.embedding_size << i,
                       " is not a multiple of its num_heads ", c.stage_heads[i]);
    }
    c.hidden_size = c.stage_widths.back();
    c.num_attention_heads = c.stage_heads.back();
}

/// timm's ViT size presets (vision_transformer.py model definitions): width, depth, heads.
struct TimmVitPreset {
    const char* size;
    std::int64_t width, depth, heads;
};
constexpr TimmVitPreset kTimmVitPresets[] = {{"tiny", 192, 12, 3},
                                             {"small", 384, 12, 6},
                                             {"base", 768, 12, 12},
                                             {"large", 1024, 24, 16},
                                             {"huge", 1280, 32, 16}};

const json& object_at(const json& j, const char* key, const std::filesystem::path& path) {
    RADPROBE_CHECK(j.contains(key) && j[key].is_object(), "file ", path.string(), ": key \"", key,
                   "\" is missing or not an object");
    return j[key];
}

/// open_clip_config.json with a timm ViT vision tower → ModelConfig (model_type
/// "open_clip_timm_vit").
void read_open_clip_fields(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    const json& model = object_at(j, "model_cfg", path);
    const json& vision = object_at(model, "vision_cfg", path);
    RADPROBE_CHECK(vision.contains("timm_model_name") && vision["timm_model_name"].is_string(),
                   "file ", path.string(),
                   ": model_cfg.vision_cfg has no timm_model_name; only open_clip's timm ViT "
                   "towers (BiomedCLIP) are supported");
    const auto name = vision["timm_model_name"].get<std::string>();
    // vit_<size>_patch<P>_<S>[_suffix]
    const TimmVitPreset* preset = nullptr;
    std::int64_t patch = 0, side = 0;
    for (const auto& p : kTimmVitPresets) {
        const std::string prefix = std::string("vit_") + p.size + "_patch";
        if (name.compare(0, prefix.size(), prefix) == 0) {
            preset = &p;
            const auto rest = name.substr(prefix.size());
            const auto us = rest.find('_');
            try {
                patch = std::stoll(rest.substr(0, us));
                if (us != std::string::npos) {
                    side = std::stoll(rest.substr(us + 1));
                }
            } catch (const std::exception&) {
                patch = 0;
            }
        }
    }
    RADPROBE_CHECK(preset != nullptr && patch > 0, "file ", path.string(), ": timm_model_name \"",
                   name,
                   "\" is not supported (vit_{tiny,small,base,large,huge}_patch<P>_<S> timm "
                   "VisionTransformers)");
    const auto pool = get_optional<std::string>(vision, "timm_pool", "", path);
    RADPROBE_CHECK(pool.empty() || pool == "token", "file ", path.string(), ": timm_pool \"", pool,
                   "\" is not supported (\"\" or \"token\": the trunk's class-token pooling)");
    const auto proj = get_optional<std::string>(vision, "timm_proj", "linear", path);
    RADPROBE_CHECK(proj == "linear" || proj == "none", "file ", path.string(), ": timm_proj \"",
                   proj, "\" is not supported (linear, none)");
    c.hidden_size = preset->width;
    c.num_hidden_layers = preset->depth;
    c.num_attention_heads = preset->heads;
    c.patch_size = patch;
    c.image_size = side > 0 ? side : 224;
    c.mlp_ratio = 4.0;
    if (vision.contains("timm_model_kwargs")) {
        const json& kw = vision["timm_model_kwargs"];
        RADPROBE_CHECK(kw.is_object(), "file ", path.string(),
                       ": vision_cfg.timm_model_kwargs must be an object");
        for (const auto& [key, value] : kw.items()) {
            if (key == "embed_dim") {
                c.hidden_size = get_required<std::int64_t>(kw, "embed_dim", path);
            } else if (key == "depth") {
                c.num_hidden_layers = get_required<std::int64_t>(kw, "depth", path);
            } else if (key == "num_heads") {
                c.num_attention_heads = get_required<std::int64_t>(kw, "num_heads", path);
            } else if (key == "patch_size") {
                c.patch_size = get_required<std::int64_t>(kw, "patch_size", path);
            } else if (key == "mlp_ratio") {
                c.mlp_ratio = get_required<double>(kw, "mlp_ratio", path);
            } else if (key == "qkv_bias") {
                c.qkv_bias = get_required<bool>(kw, "qkv_bias", path);
            } else if (key == "img_size") {
                c.image_size = get_required<std::int64_t>(kw, "img_size", path);
            } else {
                RADPROBE_CHECK(false, "file ", path.string(), ": timm_model_kwargs key \"", key,
                               "\" is not supported (embed_dim, depth, num_heads, patch_size, "
                               "mlp_ratio, qkv_bias, img_size)");
            }
        }
    }
    c.image_size = get_optional<std::int64_t>(vision, "image_size", c.image_size, path);
    positive(c.hidden_size, "embed_dim", path);
    positive(c.num_hidden_layers, "depth", path);
    positive(c.num_attention_heads, "num_heads", path);
    positive(c.patch_size, "patch_size", path);
    positive(c.image_size, "image_size", path);
    c.intermediate_size =
        static_cast<std::int64_t>(static_cast<double>(c.hidden_size) * c.mlp_ratio);
    c.layer_norm_eps = 1e-6;  // timm ViT: partial(nn.LayerNorm, eps=1e-6)
    c.hidden_act = "gelu";    // nn.GELU (exact)
    c.has_cls_token = true;
    if (proj == "linear") {
        c.projection_dim = positive(get_required<std::int64_t>(model, "embed_dim", path),
                                    "model_cfg.embed_dim", path);
        c.projection_bias = get_optional<bool>(vision, "timm_proj_bias", false, path);
    }
}

}  // namespace

std::vector<std::string> known_model_types() {
    std::vector<std::string> names;
    for (const auto& k : kKnownModelTypes) {
        names.emplace_back(k.name);
    }
    return names;
}

std::string model_type_description(const std::string& model_type) {
    for (const auto& k : kKnownModelTypes) {
        if (model_type == k.name) {
            return k.description;
        }
    }
    return "";
}

ModelConfig read_model_config(const std::filesystem::path& dir) {
    auto path = config_path(dir, "config.json");
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) &&
        std::filesystem::exists(path.parent_path() / "open_clip_config.json", ec)) {
        path = path.parent_path() / "open_clip_config.json";
    }
    ModelConfig c;
    const json j = read_json(path, &c.config_json);
    if (path.filename() == "open_clip_config.json") {
        c.dir = path.parent_path();
        c.config_file = "open_clip_config.json";
        c.model_type = "open_clip_timm_vit";
        read_open_clip_fields(j, path, c);
        RADPROBE_CHECK(c.hidden_size % c.num_attention_heads == 0, "file ", path.string(),
                       ": embed_dim ", c.hidden_size, " is not a multiple of num_heads ",
                       c.num_attention_heads);
        RADPROBE_CHECK(c.image_size >= c.patch_size, "file ", path.string(), ": image_size ",
                       c.image_size, " is smaller than patch_size ", c.patch_size);
        const auto pre = c.dir / "preprocessor_config.json";
        if (std::filesystem::is_regular_file(pre, ec)) {
            c.preprocessor_json = read_file_text(pre);
        }
        return c;
    }
    c.dir = path.parent_path();
    {
        std::error_code ec;
        const auto pre = c.dir / "preprocessor_config.json";
        if (std::filesystem::is_regular_file(pre, ec)) {
            c.preprocessor_json = read_file_text(pre);
        }
    }
    c.model_type = get_required<std::string>(j, "model_type", path);
    const auto known = known_model_types();
    RADPROBE_CHECK(std::find(known.begin(), known.end(), c.model_type) != known.end(), "file ",
                   path.string(), ": model_type \"", c.model_type,
                   "\" is not supported (known: ", join(known), ")");
    const std::string& type = c.model_type;
    c.num_channels =
        positive(get_optional<std::int64_t>(j, "num_channels", 3, path), "num_channels", path);
    c.hidden_act = get_optional<std::string>(j, "hidden_act", "gelu", path);
    if (type == "resnet") {
        read_resnet_fields(j, path, c);
        return c;
    }
    if (type == "swin") {
        read_swin_fields(j, path, c);
        return c;
    }
    c.hidden_size =
        positive(get_required<std::int64_t>(j, "hidden_size", path), "hidden_size", path);
    c.num_hidden_layers = positive(get_required<std::int64_t>(j, "num_hidden_layers", path),
                                   "num_hidden_layers", path);
    c.num_attention_heads = positive(get_required<std::int64_t>(j, "num_attention_heads", path),
                                     "num_attention_heads", path);
    c.patch_size = positive(get_required<std::int64_t>(j, "patch_size", path), "patch_size", path);
    c.image_size = positive(get_required<std::int64_t>(j, "image_size", path), "image_size", path);
    c.mlp_ratio = get_optional<double>(j, "mlp_ratio", 4.0, path);
    // HF defaults differ per family: ViT/ViTMAE 1e-12, CLIP/DINOv3 1e-5, DINOv2/SigLIP 1e-6.
    const double eps_default = (type == "vit" || type == "vit_mae")                    ? 1e-12
                               : (type == "clip_vision_model" || type == "dinov3_vit") ? 1e-5
                                                                                       : 1e-6;
    c.layer_norm_eps = get_optional<double>(j, "layer_norm_eps", eps_default, path);
    c.layerscale_value = get_optional<double>(j, "layerscale_value", 1.0, path);
    c.use_swiglu_ffn = get_optional<bool>(j, "use_swiglu_ffn", false, path);
    c.qkv_bias = get_optional<bool>(j, "qkv_bias", true, path);
    if (type == "clip_vision_model") {
        c.hidden_act = get_optional<std::string>(j, "hidden_act", "quick_gelu", path);
        // CLIPVisionModelWithProjection: visual_projection (no bias) after the pooled output.
        const auto archs = get_optional<std::vector<std::string>>(j, "architectures", {}, path);
        if (std::find(archs.begin(), archs.end(), "CLIPVisionModelWithProjection") != archs.end()) {
            c.projection_dim = positive(get_required<std::int64_t>(j, "projection_dim", path),
                                        "projection_dim", path);
        }
    } else if (type == "siglip_vision_model") {
        c.hidden_act = get_optional<std::string>(j, "hidden_act", "gelu_pytorch_tanh", path);
    }
    const bool has_intermediate = type != "dinov2" && type != "dinov2_with_registers";
    if (has_intermediate) {
        c.intermediate_size = positive(get_required<std::int64_t>(j, "intermediate_size", path),
                                       "intermediate_size", path);
    }
    c.has_cls_token = type != "siglip_vision_model";
    if (type == "dinov2_with_registers") {
        c.num_register_tokens = get_optional<std::int64_t>(j, "num_register_tokens", 4, path);
    } else if (type == "dinov3_vit") {
        c.num_register_tokens = get_optional<std::int64_t>(j, "num_register_tokens", 0, path);
        c.rope_theta = get_optional<double>(j, "rope_theta", 100.0, path);
        c.use_gated_mlp = get_optional<bool>(j, "use_gated_mlp", false, path);
        c.query_bias = get_optional<bool>(j, "query_bias", true, path);
        c.key_bias = get_optional<bool>(j, "key_bias", false, path);
        c.value_bias = get_optional<bool>(j, "value_bias", true, path);
        c.proj_bias = get_optional<bool>(j, "proj_bias", true, path);
        c.mlp_bias = get_optional<bool>(j, "mlp_bias", true, path);
        RADPROBE_CHECK(c.rope_theta > 0, "file ", path.string(), ": rope_theta must be > 0");
        RADPROBE_CHECK((c.hidden_size / c.num_attention_heads) % 4 == 0, "file ", path.string(),
                       ": the head size hidden_size/num_attention_heads must be a multiple of 4 "
                       "for the 2-D RoPE");
    }
    RADPROBE_CHECK(c.hidden_size % c.num_attention_heads == 0, "file ", path.string(),
                   ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
                   c.num_attention_heads);
    RADPROBE_CHECK(c.image_size >= c.patch_size, "file ", path.string(), ": image_size ",
                   c.image_size, " is smaller than patch_size ", c.patch_size);
    RADPROBE_CHECK(c.num_register_tokens >= 0, "file ", path.string(),
                   ": num_register_tokens must be >= 0");
    RADPROBE_CHECK(c.mlp_ratio > 0, "file ", path.string(), ": mlp_ratio must be > 0");
    return c;
}

void PreprocessConfig::override_size(std::int64_t n) {
    RADPROBE_USAGE_CHECK(n > 0, "--resize must be > 0, got ", n);
    do_resize = true;
    shortest_edge = n;
    resize_height = resize_width = 0;
    if (do_center_crop) {
        crop_height = crop_width = n;
    }
}

PreprocessGeometry preprocess_geometry(const PreprocessConfig& config, std::int64_t rows,
                                       std::int64_t cols) {
    RADPROBE_CHECK(rows > 0 && cols > 0, "image of ", rows, "x", cols, " pixels is empty");
    PreprocessGeometry g;
    g.resized_height = rows;
    g.resized_width = cols;
    if (config.do_resize) {
        if (config.shortest_edge > 0) {
            // HF get_resize_output_image_size(default_to_square=False): the long side is
            // int(size * long / short) in Python float arithmetic.
            const std::int64_t short_side = std::min(rows, cols);
            const std::int64_t long_side = std::max(rows, cols);
            const auto new_long =
                static_cast<std::int64_t>(static_cast<double>(config.shortest_edge * long_side) /
                                          static_cast<double>(short_side));
            if (rows <= cols) {
                g.resized_height = config.shortest_edge;
                g.resized_width = new_long;
            } else {
                g.resized_width = config.shortest_edge;
                g.resized_height = new_long;
            }
        } else {
            g.resized_height = config.resize_height;
            g.resized_width = config.resize_width;
        }
    }
    RADPROBE_CHECK(g.resized_height > 0 && g.resized_width > 0, "image of ", rows, "x", cols,
                   " pixels resizes to an empty image");
    g.scale_y = static_cast<double>(g.resized_height) / static_cast<double>(rows);
    g.scale_x = static_cast<double>(g.resized_width) / static_cast<double>(cols);
    g.out_height = g.resized_height;
    g.out_width = g.resized_width;
    if (config.do_center_crop) {
        // HF center_crop: top = (H - crop_h) // 2 (floor division); a crop larger than the
        // image pads it with zeros, centred with the larger half of the padding on top/left.
        auto floor_div2 = [](std::int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
        // torchvision: int(round(d / 2.0)), Python rounding half to even.
        auto round_half_even_div2 = [&](std::int64_t v) {
            const std::int64_t k = floor_div2(v);
            return (v % 2 != 0 && k % 2 != 0) ? k + 1 : k;
        };
        auto offset = [&](std::int64_t v) {
            return (config.torchvision_crop && v >= 0) ? round_half_even_div2(v) : floor_div2(v);
        };
        std::int64_t top = offset(g.resized_height - config.crop_height);
        std::int64_t left = offset(g.resized_width - config.crop_width);
        if (top < 0 || left < 0) {
            const std::int64_t new_h = std::max(config.crop_height, g.resized_height);
            const std::int64_t new_w = std::max(config.crop_width, g.resized_width);
            const std::int64_t top_pad = (new_h - g.resized_height + 1) / 2;
            const std::int64_t left_pad = (new_w - g.resized_width + 1) / 2;
            // In padded coordinates the crop starts at top + top_pad; in resized coordinates
            // that is `top`, and the pad fills rows outside [0, resized).
            top = std::max<std::int64_t>(top + top_pad, 0) - top_pad;
            left = std::max<std::int64_t>(left + left_pad, 0) - left_pad;
        }
        g.crop_top = top;
        g.crop_left = left;
        g.out_height = config.crop_height;
        g.out_width = config.crop_width;
    }
    return g;
}

std::array<std::int64_t, 2> PreprocessConfig::output_size(std::int64_t rows,
                                                          std::int64_t cols) const {
    const auto g = preprocess_geometry(*this, rows, cols);
    return {g.out_height, g.out_width};
}

namespace {

/// open_clip's evaluation transform, from open_clip_config.json.
PreprocessConfig open_clip_preprocess(const std::filesystem::path& path) {
    const json j = read_json(path);
    ModelConfig model;
    read_open_clip_fields(j, path, model);
    PreprocessConfig c;
    c.processor_type = "open_clip";
    c.image_mean = {0.48145466, 0.4578275, 0.40821073};  // open_clip OPENAI_DATASET_MEAN/STD
    c.image_std = {0.26862954, 0.26130258, 0.27577711};
    std::string mode = "shortest";
    if (j.contains("preprocess_cfg") && j["preprocess_cfg"].is_object()) {
        const json& p = j["preprocess_cfg"];
        for (const char* key : {"mean", "std"}) {
            if (p.contains(key)) {
                const auto v = get_required<std::vector<double>>(p, key, path);
                RADPROBE_CHECK(v.size() == 3, "file ", path.string(), ": preprocess_cfg.", key,
                               " must have 3 entries");
                auto& dst = std::string(key) == "mean" ? c.image_mean : c.image_std;
                for (int ch = 0; ch < 3; ++ch) {
                    dst[ch] = v[ch];
                }
            }
        }
        const auto interp = get_optional<std::string>(p, "interpolation", "bicubic", path);
        RADPROBE_CHECK(interp == "bicubic" || interp == "bilinear", "file ", path.string(),
                       ": preprocess_cfg.interpolation \"", interp,
                       "\" is not supported (bicubic, bilinear)");
        c.resample = interp == "bicubic" ? Resample::kBicubic : Resample::kBilinear;
        mode = get_optional<std::string>(p, "resize_mode", "shortest", path);
        RADPROBE_CHECK(mode == "shortest" || mode == "squash", "file ", path.string(),
                       ": preprocess_cfg.resize_mode \"", mode,
                       "\" is not supported (shortest, squash)");
    }
    for (int ch = 0; ch < 3; ++ch) {
        RADPROBE_CHECK(c.image_std[ch] > 0, "file ", path.string(), ": preprocess_cfg.std[", ch,
                       "] must be > 0");
    }
    if (mode == "squash") {
        c.resize_height = c.resize_width = model.image_size;
    } else {
        c.shortest_edge = model.image_size;
        c.do_center_crop = true;
        c.crop_height = c.crop_width = model.image_size;
        c.torchvision_crop = true;
    }
    return c;
}

}  // namespace

PreprocessConfig read_preprocess_config(const std::filesystem::path& dir) {
    const auto path = config_path(dir, "preprocessor_config.json");
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) &&
        std::filesystem::exists(path.parent_path() / "open_clip_config.json", ec)) {
        return open_clip_preprocess(path.parent_path() / "open_clip_config.json");
    }
    RADPROBE_CHECK(std::filesystem::exists(path, ec), "file ", path.string(),
                   ": does not exist (the model directory needs its preprocessor_config.json)");
    const json j = read_json(path);
    PreprocessConfig c;
    c.processor_type = get_optional<std::string>(j, "image_processor_type", "", path);
    c.do_resize = get_optional<bool>(j, "do_resize", true, path);
    if (c.do_resize) {
        RADPROBE_CHECK(j.contains("size"), "file ", path.string(), ": key \"size\" is missing");
        const json& size = j["size"];
        if (size.is_number_integer()) {
            // BitImageProcessor/CLIP treat a bare int as the shortest edge; ViT as a square.
            if (c.processor_type == "ViTImageProcessor") {
                c.resize_height = c.resize_width = size.get<std::int64_t>();
            } else {
                c.shortest_edge = size.get<std::int64_t>();
            }
        } else if (size.is_object() && size.contains("shortest_edge")) {
            c.shortest_edge = get_required<std::int64_t>(size, "shortest_edge", path);
        } else if (size.is_object() && size.contains("height") && size.contains("width")) {
            c.resize_height = get_required<std::int64_t>(size, "height", path);
            c.resize_width = get_required<std::int64_t>(size, "width", path);
        } else {
            RADPROBE_CHECK(false, "file ", path.string(),
                           ": key \"size\" must be an int, {shortest_edge} or {height, width}");
        }
        RADPROBE_CHECK(c.shortest_edge > 0 || (c.resize_height > 0 && c.resize_width > 0), "file ",
                       path.string(), ": key \"size\" must be positive");
        const int resample = get_optional<int>(j, "resample", 3, path);
        RADPROBE_CHECK(resample == 1 || resample == 2 || resample == 3, "file ", path.string(),
                       ": key \"resample\" = ", resample,
                       " is not supported (3 bicubic, 2 bilinear, 1 lanczos)");
        c.resample = static_cast<Resample>(resample);
    }
    c.do_center_crop = get_optional<bool>(j, "do_center_crop", false, path);
    if (c.do_center_crop) {
        RADPROBE_CHECK(j.contains("crop_size"), "file ", path.string(),
                       ": key \"crop_size\" is missing");
        const json& crop = j["crop_size"];
        if (crop.is_number_integer()) {
            c.crop_height = c.crop_width = crop.get<std::int64_t>();
        } else {
            c.crop_height = get_required<std::int64_t>(crop, "height", path);
            c.crop_width = get_required<std::int64_t>(crop, "width", path);
        }
        RADPROBE_CHECK(c.crop_height > 0 && c.crop_width > 0, "file ", path.string(),
                       ": key \"crop_size\" must be positive");
    }
    c.do_rescale = get_optional<bool>(j, "do_rescale", true, path);
    c.rescale_factor = get_optional<double>(j, "rescale_factor", 1.0 / 255.0, path);
    c.do_normalize = get_optional<bool>(j, "do_normalize", true, path);
    if (c.do_normalize) {
        const auto mean = get_required<std::vector<double>>(j, "image_mean", path);
        const auto std = get_required<std::vector<double>>(j, "image_std", path);
        RADPROBE_CHECK(mean.size() == 3 && std.size() == 3, "file ", path.string(),
                       ": image_mean and image_std must have 3 entries");
        for (int ch = 0; ch < 3; ++ch) {
            RADPROBE_CHECK(std[ch] > 0, "file ", path.string(), ": image_std[", ch,
                           "] must be > 0");
            c.image_mean[ch] = mean[ch];
            c.image_std[ch] = std[ch];
        }
    }
    return c;
}

std::vector<std::uint8_t> pil_resize_u8(const std::uint8_t* src, std::int64_t rows,
                                        std::int64_t cols, std::int64_t out_rows,
                                        std::int64_t out_cols, Resample filter) {
    RADPROBE_CHECK(rows > 0 && cols > 0 && out_rows > 0 && out_cols > 0, "resize from ", rows, "x",
                   cols, " to ", out_rows, "x", out_cols, ": empty image");
    // Horizontal pass first (skipped when the width is unchanged), then vertical, each rounding
    // to 8 bits, as Pillow does.
    std::vector<std::uint8_t> tmp;
    const std::uint8_t* mid = src;
    if (out_cols != cols) {
        const Coeffs c = precompute_coeffs(cols, out_cols, filter);
        tmp.resize(static_cast<std::size_t>(rows * out_cols));
        for (std::int64_t y = 0; y < rows; ++y) {
            const std::uint8_t* in = src + y * cols;
            for (std::int64_t xx = 0; xx < out_cols; ++xx) {
                const std::int32_t* k = &c.k[xx * c.ksize];
                std::int32_t acc = 1 << (kPrecisionBits - 1);
                for (int x = 0; x < c.count[xx]; ++x) {
                    acc += static_cast<std::int32_t>(in[x + c.xmin[xx]]) * k[x];
                }
                tmp[y * out_cols + xx] = clip8(acc);
            }
        }
        mid = tmp.data();
    }
    if (out_rows == rows) {
        if (mid == src) {
            return {src, src + rows * cols};
        }
        return tmp;
    }
    const Coeffs c = precompute_coeffs(rows, out_rows, filter);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(out_rows * out_cols));
    for (std::int64_t yy = 0; yy < out_rows; ++yy) {
        const std::int32_t* k = &c.k[yy * c.ksize];
        for (std::int64_t xx = 0; xx < out_cols; ++xx) {
            std::int32_t acc = 1 << (kPrecisionBits - 1);
            for (int y = 0; y < c.count[yy]; ++y) {
                acc += static_cast<std::int32_t>(mid[(y + c.xmin[yy]) * out_cols + xx]) * k[y];
            }
            out[yy * out_cols + xx] = clip8(acc);
        }
    }
    return out;
}

std::vector<std::uint8_t> quantise_u8(const float* grey, std::size_t n) {
    std::vector<std::uint8_t> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        const float v = std::nearbyint(std::clamp(grey[i], 0.0f, 1.0f) * 255.0f);
        out[i] = static_cast<std::uint8_t>(v);
    }
    return out;
}

std::vector<std::uint8_t> resize_and_crop_u8(const std::vector<std::uint8_t>& grey,
                                             std::int64_t rows, std::int64_t cols,
                                             const PreprocessConfig& config,
                                             std::vector<std::uint8_t>* resized_out) {
    RADPROBE_ASSERT(static_cast<std::int64_t>(grey.size()) == rows * cols);
    const PreprocessGeometry g = preprocess_geometry(config, rows, cols);
    std::vector<std::uint8_t> resized =
        (g.resized_height == rows && g.resized_width == cols)
            ? grey
            : pil_resize_u8(grey.data(), rows, cols, g.resized_height, g.resized_width,
                            config.resample);
    if (resized_out != nullptr) {
        *resized_out = resized;
    }
    if (!config.do_center_crop) {
        return resized;
    }
    std::vector<std::uint8_t> out(static_cast<std::size_t>(g.out_height * g.out_width), 0);
    for (std::int64_t y = 0; y < g.out_height; ++y) {
        const std::int64_t sy = y + g.crop_top;
        if (sy < 0 || sy >= g.resized_height) {
            continue;
        }
        for (std::int64_t x = 0; x < g.out_width; ++x) {
            const std::int64_t sx = x + g.crop_left;
            if (sx >= 0 && sx < g.resized_width) {
                out[y * g.out_width + x] = resized[sy * g.resized_width + sx];
            }
        }
    }
    return out;
}

std::vector<float> preprocess_grey_u8(const std::vector<std::uint8_t>& grey, std::int64_t rows,
                                      std::int64_t cols, const PreprocessConfig& config,
                                      int channels) {
    RADPROBE_USAGE_CHECK(channels == 1 || channels == 3, "channels must be 1 or 3, got ", channels);
    const std::vector<std::uint8_t> plane = resize_and_crop_u8(grey, rows, cols, config);
    const std::size_t hw = plane.size();
    std::vector<float> out(hw * channels);
    // HF: rescale in float64 then cast to float32; normalise in float32 with float32 mean/std.
    std::vector<float> rescaled(hw);
    for (std::size_t i = 0; i < hw; ++i) {
        rescaled[i] =
            config.do_rescale
                ? static_cast<float>(static_cast<double>(plane[i]) * config.rescale_factor)
                : static_cast<float>(plane[i]);
    }
    if (channels == 1) {
        std::copy(rescaled.begin(), rescaled.end(), out.begin());
        return out;
    }
    for (int ch = 0; ch < 3; ++ch) {
        float* dst = out.data() + ch * hw;
        if (!config.do_normalize) {
            std::copy(rescaled.begin(), rescaled.end(), dst);
            continue;
        }
        const auto mean = static_cast<float>(config.image_mean[ch]);
        const auto std = static_cast<float>(config.image_std[ch]);
        for (std::size_t i = 0; i < hw; ++i) {
            dst[i] = (rescaled[i] - mean) / std;
        }
    }
    return out;
}

}  // namespace radprobe::encoders
