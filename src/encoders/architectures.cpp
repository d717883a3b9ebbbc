// The architecture table (architectures.hpp) and each family's config.json reader. No LibTorch.

#include "architectures.hpp"

#include <algorithm>

#include "config_fields.hpp"
#include "vmamba_layout.hpp"

namespace radprobe::encoders::detail {

namespace {

// --- Hierarchical families ---------------------------------------------------------------

void read_resnet(const json& j, const std::filesystem::path& path, ModelConfig& c) {
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

void read_swin(const json& j, const std::filesystem::path& path, ModelConfig& c) {
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

// --- SAM2: Hiera trunk + FPN neck (HF Sam2VisionModel; transformers v4.57.6 defaults) -----

/// An int, or a list [a, b] (HF writes sizes as either); `fallback` for both when absent.
std::pair<std::int64_t, std::int64_t> size_pair(const json& j, const char* key,
                                                std::int64_t fallback,
                                                const std::filesystem::path& path) {
    if (!j.contains(key) || j[key].is_null()) {
        return {fallback, fallback};
    }
    if (!j[key].is_array()) {
        const auto v = get_required<std::int64_t>(j, key, path);
        return {v, v};
    }
    const auto v = get_required<std::vector<std::int64_t>>(j, key, path);
    RADPROBE_CHECK(v.size() == 2, "file ", path.string(), ": key \"", key,
                   "\" must be an int or a list of 2, got a list of ", v.size());
    return {v[0], v[1]};
}

/// size_pair() with both sides equal (InputError naming the key otherwise).
std::int64_t square_size(const json& j, const char* key, std::int64_t fallback,
                         const std::filesystem::path& path) {
    const auto [a, b] = size_pair(j, key, fallback, path);
    RADPROBE_CHECK(a == b, "file ", path.string(), ": key \"", key,
                   "\" must be square (radprobe reads square ones), got [", a, ", ", b, "]");
    return a;
}

/// positive_list(), or `fallback` when the key is absent.
std::vector<std::int64_t> positive_list_or(const json& j, const char* key,
                                           std::vector<std::int64_t> fallback,
                                           const std::filesystem::path& path) {
    return j.contains(key) && !j[key].is_null() ? positive_list(j, key, path) : fallback;
}

/// The consistency a Hiera trunk needs: one depth, width, head count and window per stage;
/// widths divisible by heads; global blocks and q-pool stages that exist.
void check_hiera(const std::filesystem::path& path, const ModelConfig& c, std::int64_t hidden) {
    const auto& h = c.hiera;
    const auto stages = c.depths.size();
    auto fail = [&](const std::string& what) {
        RADPROBE_CHECK(false, "file ", path.string(), ": backbone_config: ", what);
    };
    if (c.stage_widths.size() != stages || c.stage_heads.size() != stages ||
        h.windows.size() != stages) {
        fail(
            "blocks_per_stage, embed_dim_per_stage, num_attention_heads_per_stage and "
            "window_size_per_stage must have one entry per stage");
    }
    for (std::size_t s = 0; s < stages; ++s) {
        if (c.stage_widths[s] % c.stage_heads[s] != 0) {
            fail(str_cat("embed_dim_per_stage[", s, "] = ", c.stage_widths[s],
                         " is not a multiple of num_attention_heads_per_stage[", s, "]"));
        }
    }
    std::int64_t blocks = 0;
    for (const auto d : c.depths) {
        blocks += d;
    }
    for (const auto b : h.global_blocks) {
        if (b < 0 || b >= blocks) {
            fail(str_cat("global_attention_blocks holds ", b, ", not a block (0..", blocks - 1,
                         ")"));
        }
    }
    if (h.query_pool_stages < 0 || h.query_pool_stages >= static_cast<std::int64_t>(stages)) {
        fail(str_cat("num_query_pool_stages ", h.query_pool_stages, " must be in 0..", stages - 1));
    }
    if (hidden != c.stage_widths[0]) {
        fail(str_cat("hidden_size ", hidden, " differs from embed_dim_per_stage[0] ",
                     c.stage_widths[0]));
    }
    if (h.patch_padding < 0 || c.mlp_ratio <= 0 || c.layer_norm_eps <= 0) {
        fail("patch_padding must be >= 0, mlp_ratio and layer_norm_eps > 0");
    }
}

/// HF Sam2HieraDetConfig (the trunk: vision_config.backbone_config); absent keys take its
/// defaults (Hiera-T).
void read_hiera(const json& b, const std::filesystem::path& path, ModelConfig& c) {
    const auto type = get_optional<std::string>(b, "model_type", "sam2_hiera_det_model", path);
    RADPROBE_CHECK(type == "sam2_hiera_det_model", "file ", path.string(),
                   ": backbone_config model_type \"", type,
                   "\" is not supported (sam2_hiera_det_model)");
    auto& h = c.hiera;
    c.num_channels =
        positive(get_optional<std::int64_t>(b, "num_channels", 3, path), "num_channels", path);
    c.hidden_act = get_optional<std::string>(b, "hidden_act", "gelu", path);
    c.layer_norm_eps = get_optional<double>(b, "layer_norm_eps", 1e-6, path);
    c.mlp_ratio = get_optional<double>(b, "mlp_ratio", 4.0, path);
    c.depths = positive_list_or(b, "blocks_per_stage", {1, 2, 7, 2}, path);
    c.stage_widths = positive_list_or(b, "embed_dim_per_stage", {96, 192, 384, 768}, path);
    c.stage_heads = positive_list_or(b, "num_attention_heads_per_stage", {1, 2, 4, 8}, path);
    h.windows = positive_list_or(b, "window_size_per_stage", {8, 4, 14, 7}, path);
    h.global_blocks =
        get_optional<std::vector<std::int64_t>>(b, "global_attention_blocks", {5, 7, 9}, path);
    h.query_pool_stages = get_optional<std::int64_t>(b, "num_query_pool_stages", 3, path);
    h.query_stride = positive(square_size(b, "query_stride", 2, path), "query_stride", path);
    h.patch_kernel =
        positive(square_size(b, "patch_kernel_size", 7, path), "patch_kernel_size", path);
    c.embed_patch_size = positive(square_size(b, "patch_stride", 4, path), "patch_stride", path);
    h.patch_padding = square_size(b, "patch_padding", 3, path);
    const auto [bh, bw] = size_pair(b, "window_positional_embedding_background_size", 7, path);
    h.background_h = positive(bh, "window_positional_embedding_background_size", path);
    h.background_w = positive(bw, "window_positional_embedding_background_size", path);
    // Not read by the model (any multiple of 32 runs): the native side, for reports only.
    c.image_size = positive(size_pair(b, "image_size", 1024, path).first, "image_size", path);
    check_hiera(path, c, get_optional<std::int64_t>(b, "hidden_size", 96, path));
    const auto stages = static_cast<std::int64_t>(c.depths.size());
    c.num_hidden_layers = stages;
    c.hidden_size = c.stage_widths.back();
    c.num_attention_heads = c.stage_heads.back();
    c.patch_size = c.embed_patch_size;
    for (std::int64_t s = 0; s < h.query_pool_stages; ++s) {
        c.patch_size *= h.query_stride;
    }
    c.has_cls_token = false;
}

/// HF Sam2VisionConfig: the trunk (backbone_config) and the FPN neck's fields.
void read_sam2_vision(const json& v, const std::filesystem::path& path, ModelConfig& c) {
    read_hiera(v.contains("backbone_config") && !v["backbone_config"].is_null()
                   ? object_at(v, "backbone_config", path)
                   : json::object(),
               path, c);
    auto& h = c.hiera;
    const auto stages = static_cast<std::int64_t>(c.depths.size());
    h.fpn_hidden_size = positive(get_optional<std::int64_t>(v, "fpn_hidden_size", 256, path),
                                 "fpn_hidden_size", path);
    h.fpn_kernel = positive(get_optional<std::int64_t>(v, "fpn_kernel_size", 1, path),
                            "fpn_kernel_size", path);
    h.fpn_stride =
        positive(get_optional<std::int64_t>(v, "fpn_stride", 1, path), "fpn_stride", path);
    h.fpn_padding = get_optional<std::int64_t>(v, "fpn_padding", 0, path);
    h.fpn_top_down_levels =
        get_optional<std::vector<std::int64_t>>(v, "fpn_top_down_levels", {2, 3}, path);
    h.num_feature_levels = get_optional<std::int64_t>(v, "num_feature_levels", 3, path);
    RADPROBE_CHECK(h.num_feature_levels >= 1 && h.num_feature_levels <= stages, "file ",
                   path.string(), ": num_feature_levels ", h.num_feature_levels, " must be in 1..",
                   stages, " (the trunk's stages)");
    for (const auto level : h.fpn_top_down_levels) {
        RADPROBE_CHECK(level >= 0 && level < stages, "file ", path.string(),
                       ": fpn_top_down_levels holds ", level, ", not a level (0..", stages - 1,
                       ")");
    }
    const std::vector<std::int64_t> reversed(c.stage_widths.rbegin(), c.stage_widths.rend());
    const auto channels = get_optional<std::vector<std::int64_t>>(v, "backbone_channel_list",
                                                                  {768, 384, 192, 96}, path);
    RADPROBE_CHECK(channels == reversed, "file ", path.string(),
                   ": backbone_channel_list must be embed_dim_per_stage reversed (the neck reads "
                   "the trunk's stages, coarsest first)");
}

/// HF Sam2Model / Sam2VideoModel (model_type sam2 / sam2_video): vision_config over
/// Sam2VisionConfig's defaults; model_type becomes the tower's, composite_type keeps the
/// composite's. The prompt encoder, mask decoder and memory modules are not read.
void read_sam2_model(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    const json v = j.contains("vision_config") && !j["vision_config"].is_null()
                       ? object_at(j, "vision_config", path)
                       : json::object();
    const auto type = get_optional<std::string>(v, "model_type", "sam2_vision_model", path);
    RADPROBE_CHECK(type == "sam2_vision_model", "file ", path.string(),
                   ": vision_config model_type \"", type,
                   "\" is not supported (sam2_vision_model)");
    c.composite_type = c.model_type;
    c.model_type = "sam2_vision_model";
    read_sam2_vision(v, path, c);
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

void read_open_clip_tower(const json& j, const std::filesystem::path& path, ModelConfig& c) {
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

// --- ViT-like families (HF layout) ----------------------------------------------------------

/// The fields every HF ViT-like config has. `eps_default`: HF's layer_norm_eps default differs
/// per family (ViT/ViTMAE 1e-12, CLIP/DINOv3 1e-5, DINOv2/SigLIP 1e-6); `has_intermediate`:
/// intermediate_size is required (DINOv2 derives the MLP width from mlp_ratio instead).
void read_vit_fields(const json& j, const std::filesystem::path& path, ModelConfig& c,
                     double eps_default, bool has_intermediate) {
    c.hidden_size =
        positive(get_required<std::int64_t>(j, "hidden_size", path), "hidden_size", path);
    c.num_hidden_layers = positive(get_required<std::int64_t>(j, "num_hidden_layers", path),
                                   "num_hidden_layers", path);
    c.num_attention_heads = positive(get_required<std::int64_t>(j, "num_attention_heads", path),
                                     "num_attention_heads", path);
    c.patch_size = positive(get_required<std::int64_t>(j, "patch_size", path), "patch_size", path);
    c.image_size = positive(get_required<std::int64_t>(j, "image_size", path), "image_size", path);
    c.mlp_ratio = get_optional<double>(j, "mlp_ratio", 4.0, path);
    c.layer_norm_eps = get_optional<double>(j, "layer_norm_eps", eps_default, path);
    c.layerscale_value = get_optional<double>(j, "layerscale_value", 1.0, path);
    c.use_swiglu_ffn = get_optional<bool>(j, "use_swiglu_ffn", false, path);
    c.qkv_bias = get_optional<bool>(j, "qkv_bias", true, path);
    if (has_intermediate) {
        c.intermediate_size = positive(get_required<std::int64_t>(j, "intermediate_size", path),
                                       "intermediate_size", path);
    }
}

/// The checks every ViT-like config passes.
void check_vit_fields(const std::filesystem::path& path, const ModelConfig& c) {
    RADPROBE_CHECK(c.hidden_size % c.num_attention_heads == 0, "file ", path.string(),
                   ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
                   c.num_attention_heads);
    RADPROBE_CHECK(c.image_size >= c.patch_size, "file ", path.string(), ": image_size ",
                   c.image_size, " is smaller than patch_size ", c.patch_size);
    RADPROBE_CHECK(c.num_register_tokens >= 0, "file ", path.string(),
                   ": num_register_tokens must be >= 0");
    RADPROBE_CHECK(c.mlp_ratio > 0, "file ", path.string(), ": mlp_ratio must be > 0");
}

void read_dinov2(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_vit_fields(j, path, c, 1e-6, false);
    check_vit_fields(path, c);
}

void read_dinov2_with_registers(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_vit_fields(j, path, c, 1e-6, false);
    c.num_register_tokens = get_optional<std::int64_t>(j, "num_register_tokens", 4, path);
    check_vit_fields(path, c);
}

void read_vit(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_vit_fields(j, path, c, 1e-12, true);
    check_vit_fields(path, c);
}

void read_clip(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_vit_fields(j, path, c, 1e-5, true);
    c.hidden_act = get_optional<std::string>(j, "hidden_act", "quick_gelu", path);
    // CLIPVisionModelWithProjection: visual_projection (no bias) after the pooled output.
    const auto archs = get_optional<std::vector<std::string>>(j, "architectures", {}, path);
    if (std::find(archs.begin(), archs.end(), "CLIPVisionModelWithProjection") != archs.end()) {
        c.projection_dim =
            positive(get_required<std::int64_t>(j, "projection_dim", path), "projection_dim", path);
    }
    // CoCa's attentional pooler, written by open_clip_vit_as_clip (no HF config has it).
    c.attn_pool_queries = get_optional<std::int64_t>(j, "radprobe_attn_pool_queries", 0, path);
    c.attn_pool_heads = get_optional<std::int64_t>(j, "radprobe_attn_pool_heads", 0, path);
    RADPROBE_CHECK(c.attn_pool_queries == 0 || (c.projection_dim > 0 && c.attn_pool_heads > 0 &&
                                                c.projection_dim % c.attn_pool_heads == 0),
                   "file ", path.string(), ": the attentional pooler needs projection_dim ",
                   c.projection_dim, " to be a multiple of its ", c.attn_pool_heads, " heads");
    check_vit_fields(path, c);
}

void read_siglip(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_vit_fields(j, path, c, 1e-6, true);
    c.hidden_act = get_optional<std::string>(j, "hidden_act", "gelu_pytorch_tanh", path);
    c.has_cls_token = false;
    c.has_pooler = get_optional<bool>(j, "vision_use_head", true, path);
    check_vit_fields(path, c);
}

/// The defaults of HF CLIPVisionConfig / SiglipVisionConfig (transformers v4.47.1), under which
/// a full model's nested vision_config is read: save_pretrained writes only the values of a
/// nested config that differ from them.
json vision_config_defaults(bool siglip) {
    return {{"hidden_size", 768},
            {"intermediate_size", 3072},
            {"num_hidden_layers", 12},
            {"num_attention_heads", 12},
            {"num_channels", 3},
            {"image_size", 224},
            {"patch_size", siglip ? 16 : 32},
            {"hidden_act", siglip ? "gelu_pytorch_tanh" : "quick_gelu"},
            {"layer_norm_eps", siglip ? 1e-6 : 1e-5}};
}

/// A full CLIPModel / SiglipModel config → its vision_config over the tower's defaults.
json nested_vision_config(const json& j, const std::filesystem::path& path, bool siglip) {
    json v = vision_config_defaults(siglip);
    if (j.contains("vision_config") && !j["vision_config"].is_null()) {
        for (const auto& [key, value] : object_at(j, "vision_config", path).items()) {
            v[key] = value;
        }
    }
    v.erase("architectures");  // the composite's, not the tower's
    return v;
}

/// The vision tower of a full HF CLIPModel / SiglipModel config: model_type becomes the
/// tower's, composite_type keeps the composite's.
void read_vision_tower(const json& j, const std::filesystem::path& path, ModelConfig& c,
                       bool siglip) {
    const json v = nested_vision_config(j, path, siglip);
    c.composite_type = c.model_type;
    c.model_type = siglip ? "siglip_vision_model" : "clip_vision_model";
    c.num_channels = positive(get_optional<std::int64_t>(v, "num_channels", 3, path),
                              "vision_config.num_channels", path);
    (siglip ? read_siglip : read_clip)(v, path, c);
}

/// HF CLIPModel (model_type "clip"): the vision tower and visual_projection; the text tower,
/// text_projection and logit_scale are not used.
void read_clip_model(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_vision_tower(j, path, c, false);
    c.projection_dim = positive(get_optional<std::int64_t>(j, "projection_dim", 512, path),
                                "projection_dim", path);
    c.projection_bias = false;
}

/// HF SiglipModel (model_type "siglip"): the vision tower (with its MAP head); no projection.
void read_siglip_model(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_vision_tower(j, path, c, true);
}

void read_dinov3(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_vit_fields(j, path, c, 1e-5, true);
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
    check_vit_fields(path, c);
}

/// HF Aimv2VisionConfig (transformers v4.57.6); absent keys take its defaults.
void read_aimv2(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    auto size = [&](const char* key, std::int64_t fallback) {
        return positive(get_optional<std::int64_t>(j, key, fallback, path), key, path);
    };
    c.hidden_size = size("hidden_size", 1024);
    c.intermediate_size = size("intermediate_size", 2816);
    c.num_hidden_layers = size("num_hidden_layers", 24);
    c.num_attention_heads = size("num_attention_heads", 8);
    c.image_size = size("image_size", 224);
    c.patch_size = size("patch_size", 14);
    c.layer_norm_eps = get_optional<double>(j, "rms_norm_eps", 1e-5, path);
    c.qkv_bias = get_optional<bool>(j, "qkv_bias", false, path);
    c.mlp_bias = get_optional<bool>(j, "mlp_bias", false, path);
    c.hidden_act = get_optional<std::string>(j, "hidden_act", "silu", path);
    c.has_pooler = get_optional<bool>(j, "use_head", true, path);
    c.is_native = get_optional<bool>(j, "is_native", false, path);
    c.has_cls_token = false;
    c.use_gated_mlp = true;
    RADPROBE_CHECK(c.layer_norm_eps > 0, "file ", path.string(), ": rms_norm_eps must be > 0");
    RADPROBE_CHECK(!c.is_native || c.hidden_size % 4 == 0, "file ", path.string(),
                   ": is_native needs hidden_size (", c.hidden_size,
                   ") to be a multiple of 4 (its 2-D sin-cos position embedding)");
    check_vit_fields(path, c);
}

/// HF Aimv2Config (model_type aimv2, the -lit checkpoints): vision_config over
/// Aimv2VisionConfig's defaults (transformers v4.57.6 writes every field of it, older releases
/// only those that differ) and projection_dim; the text tower is not read.
void read_aimv2_model(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    RADPROBE_CHECK(
        j.contains("vision_config") && j["vision_config"].is_object(), "file ", path.string(),
        ": model_type \"aimv2\" without a vision_config object: Apple's original "
        "remote-code AIMv2 layout (AIMv2Model, keys trunk.blocks.*) is not read; "
        "radprobe reads transformers' layout (aimv2_vision_model, or aimv2 with "
        "vision_config), e.g. after transformers' convert_aimv2_original_pytorch_to_hf.py");
    const json& v = object_at(j, "vision_config", path);
    c.num_channels = positive(get_optional<std::int64_t>(v, "num_channels", 3, path),
                              "vision_config.num_channels", path);
    read_aimv2(v, path, c);
    c.composite_type = "aimv2";
    c.projection_dim = positive(get_optional<std::int64_t>(j, "projection_dim", 512, path),
                                "projection_dim", path);
    c.projection_bias = false;
    RADPROBE_CHECK(c.has_pooler, "file ", path.string(),
                   ": an aimv2 model's image embedding projects the attention-pooling head, but "
                   "vision_config.use_head is false");
}

}  // namespace

bool is_open_clip_timm(const json& j) {
    return j.contains("model_cfg") && j["model_cfg"].is_object() &&
           j["model_cfg"].contains("vision_cfg") && j["model_cfg"]["vision_cfg"].is_object() &&
           j["model_cfg"]["vision_cfg"].contains("timm_model_name") &&
           !j["model_cfg"]["vision_cfg"]["timm_model_name"].is_null();
}

namespace {

/// vision_cfg.image_size: an int, or [h, w] with h == w.
std::int64_t open_clip_image_side(const json& v, const std::filesystem::path& path) {
    if (!v.contains("image_size")) {
        return 224;
    }
    if (v["image_size"].is_array()) {
        const auto hw = get_required<std::vector<std::int64_t>>(v, "image_size", path);
        RADPROBE_CHECK(hw.size() == 2 && hw[0] == hw[1] && hw[0] > 0, "file ", path.string(),
                       ": vision_cfg.image_size must be square (got a list of ", hw.size(), ")");
        return hw[0];
    }
    return positive(get_required<std::int64_t>(v, "image_size", path), "vision_cfg.image_size",
                    path);
}

/// Refuses the vision_cfg options that make open_clip's VisionTransformer compute something
/// else than HF CLIP's vision tower.
void check_open_clip_vit_options(const json& v, const std::filesystem::path& path) {
    auto refuse = [&](bool bad, const char* what) {
        RADPROBE_CHECK(!bad, "file ", path.string(), ": model_cfg.vision_cfg.", what,
                       " is not supported (radprobe reads open_clip's plain CLIP ViT tower)");
    };
    refuse(v.contains("ls_init_value") && !v["ls_init_value"].is_null(), "ls_init_value");
    refuse(get_optional<bool>(v, "no_ln_pre", false, path), "no_ln_pre");
    refuse(get_optional<bool>(v, "final_ln_after_pool", false, path), "final_ln_after_pool");
    refuse(v.contains("attentional_pool") && !v["attentional_pool"].is_boolean(),
           "attentional_pool other than true/false (the 'parallel'/'cascade' poolers)");
    refuse(get_optional<bool>(v, "input_patchnorm", false, path), "input_patchnorm");
    refuse(get_optional<std::string>(v, "pool_type", "tok", path) != "tok", "pool_type");
    refuse(get_optional<bool>(v, "global_average_pool", false, path), "global_average_pool");
    refuse(v.contains("hf_model_name") && !v["hf_model_name"].is_null(), "hf_model_name");
}

}  // namespace

json open_clip_vit_as_clip(const json& j, const std::filesystem::path& path) {
    const json& model = object_at(j, "model_cfg", path);
    const json& v = object_at(model, "vision_cfg", path);
    check_open_clip_vit_options(v, path);
    const auto width =
        positive(get_optional<std::int64_t>(v, "width", 768, path), "vision_cfg.width", path);
    const auto head_width = positive(get_optional<std::int64_t>(v, "head_width", 64, path),
                                     "vision_cfg.head_width", path);
    RADPROBE_CHECK(width % head_width == 0, "file ", path.string(), ": vision_cfg.width ", width,
                   " is not a multiple of head_width ", head_width);
    const double mlp_ratio = get_optional<double>(v, "mlp_ratio", 4.0, path);
    const bool quick = get_optional<bool>(model, "quick_gelu", false, path);
    json hf = {{"model_type", "clip_vision_model"},
               {"architectures", {"CLIPVisionModelWithProjection"}},
               {"hidden_size", width},
               {"intermediate_size", static_cast<std::int64_t>(std::lround(width * mlp_ratio))},
               {"num_hidden_layers", positive(get_optional<std::int64_t>(v, "layers", 12, path),
                                              "vision_cfg.layers", path)},
               {"num_attention_heads", width / head_width},
               {"num_channels", 3},
               {"image_size", open_clip_image_side(v, path)},
               {"patch_size", positive(get_optional<std::int64_t>(v, "patch_size", 16, path),
                                       "vision_cfg.patch_size", path)},
               {"hidden_act", quick ? "quick_gelu" : "gelu"},
               {"layer_norm_eps", 1e-5},
               {"projection_dim", positive(get_required<std::int64_t>(model, "embed_dim", path),
                                           "model_cfg.embed_dim", path)}};
    if (get_optional<bool>(v, "attentional_pool", false, path)) {  // CoCa (not an HF key)
        hf["radprobe_attn_pool_queries"] =
            positive(get_optional<std::int64_t>(v, "attn_pooler_queries", 256, path),
                     "vision_cfg.attn_pooler_queries", path);
        hf["radprobe_attn_pool_heads"] =
            positive(get_optional<std::int64_t>(v, "attn_pooler_heads", 8, path),
                     "vision_cfg.attn_pooler_heads", path);
    }
    return hf;
}

namespace {

/// open_clip_config.json (the open_clip layout): the vision tower and its checks.
void read_open_clip(const json& j, const std::filesystem::path& path, ModelConfig& c) {
    read_open_clip_tower(j, path, c);
    RADPROBE_CHECK(c.hidden_size % c.num_attention_heads == 0, "file ", path.string(),
                   ": embed_dim ", c.hidden_size, " is not a multiple of num_heads ",
                   c.num_attention_heads);
    RADPROBE_CHECK(c.image_size >= c.patch_size, "file ", path.string(), ": image_size ",
                   c.image_size, " is smaller than patch_size ", c.patch_size);
}

const DepthLayout kHfVitDepth{"encoder.layer.", {"embeddings."}};
// SAM2: the neck (and nothing else) sits after the last stage.
const DepthLayout kSam2Depth{
    "backbone.blocks.", {"backbone.patch_embed.", "backbone.pos_embed"}, true};
const DepthLayout kClipDepth{"vision_model.encoder.layers.",
                             {"vision_model.embeddings.", "vision_model.pre_layrnorm."}};

}  // namespace

const std::vector<Architecture>& architectures() {
    static const std::vector<Architecture> table = {
        {"aimv2",
         "HF Aimv2Model (AIMv2 -lit): its vision tower with the head and visual_projection "
         "(text tower ignored)",
         read_aimv2_model,
         make_aimv2,
         {"vision_model.encoder.layers.", {"vision_model.embeddings."}},
         true},
        {"aimv2_vision_model",
         "HF Aimv2VisionModel: AIMv2 (RMSNorm, SwiGLU, no CLS; attention-pooling head = pooled "
         "when use_head; is_native: sin-cos positions for any input size)",
         read_aimv2,
         make_aimv2,
         {"encoder.layers.", {"embeddings."}},
         true},
        {"clip", "HF CLIPModel: its vision tower and visual_projection (text tower ignored)",
         read_clip_model, make_clip, kClipDepth, true},
        {"clip_vision_model",
         "HF CLIPVisionModel[WithProjection]: CLIP pre-LN ViT (class embedding, pre/post "
         "layernorm, optional visual_projection)",
         read_clip, make_clip, kClipDepth, true},
        {"dinov2",
         "HF Dinov2Model: DINOv2 S/B/L/G, RAD-DINO (LayerScale, SwiGLU via use_swiglu_ffn)",
         read_dinov2, make_dinov2, kHfVitDepth, true},
        {"dinov2_with_registers", "HF Dinov2WithRegistersModel: DINOv2 with register tokens",
         read_dinov2_with_registers, make_dinov2, kHfVitDepth, true},
        {"dinov3_vit",
         "HF DINOv3ViTModel: 2-D RoPE, register tokens, gated MLP (use_gated_mlp)",
         read_dinov3,
         make_dinov3,
         {"layer.", {"embeddings."}},
         true},
        {"open_clip_timm_vit",
         "open_clip timm ViT tower (BiomedCLIP): open_clip_config.json, keys visual.trunk.* + "
         "visual.head.proj (projection)",
         read_open_clip,
         make_open_clip,
         {"visual.trunk.blocks.",
          {"visual.trunk.cls_token", "visual.trunk.pos_embed", "visual.trunk.patch_embed."}},
         true},
        {"resnet",
         "HF ResNetModel: ResNet-50 style; tokens = the last stage's grid (no CLS)",
         read_resnet,
         make_resnet,
         {"encoder.stages.", {"embedder."}}},
        {"sam2",
         "HF Sam2Model (SAM 2): its vision encoder as sam2_vision_model (prompt encoder and mask "
         "decoder ignored)",
         read_sam2_model, make_sam2, kSam2Depth},
        {"sam2_video",
         "HF Sam2VideoModel (the Hub's facebook/sam2*-hiera-*): its vision encoder as "
         "sam2_vision_model (memory modules, prompt encoder, mask decoder ignored)",
         read_sam2_model, make_sam2, kSam2Depth},
        {"sam2_vision_model",
         "HF Sam2VisionModel: SAM 2's Hiera trunk (windowed attention, q-pooling) + FPN neck; "
         "tokens = the last stage (no CLS)",
         read_sam2_vision, make_sam2, kSam2Depth},
        {"siglip",
         "HF SiglipModel (MedSigLIP): its vision tower with the MAP head (text tower ignored)",
         read_siglip_model, make_clip, kClipDepth, true},
        {"siglip_vision_model",
         "HF SiglipVisionModel: SigLIP/MedSigLIP, no CLS; MAP attention-pooling head = pooled",
         read_siglip, make_clip, kClipDepth, true},
        {"swin",
         "HF SwinModel: shifted windows, patch merging; tokens = the last stage (no CLS)",
         read_swin,
         make_swin,
         {"encoder.layers.", {"embeddings."}}},
        {"vit", "HF ViTModel: plain ViT with CLS and pooler", read_vit, make_vit, kHfVitDepth,
         true},
        {"vit_mae", "HF ViTMAEModel: MAE encoder, no masking (tokens in natural order)", read_vit,
         make_vit, kHfVitDepth, true},
        {"vmamba",
         "VMamba VSSM (MzeroMiko/VMamba v2 releases, a lone .pth): 2-D selective scan (SS2D "
         "v05_noz); tokens = the last stage (no CLS)",
         read_vmamba,
         make_vmamba,
         {"layers.", {"patch_embed."}}},
    };
    return table;
}

const Architecture* find_architecture(const std::string& model_type) {
    for (const auto& a : architectures()) {
        if (model_type == a.model_type) {
            return &a;
        }
    }
    return nullptr;
}

}  // namespace radprobe::encoders::detail
