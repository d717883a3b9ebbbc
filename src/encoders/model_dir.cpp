// config.json / preprocessor_config.json parsing (no LibTorch); the preprocessing itself is in
// src/preprocess.

#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/preprocess/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "architectures.hpp"
#include "config_fields.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"

namespace radprobe::encoders {

using preprocess::PreprocessConfig;
using preprocess::Resample;

using detail::config_path;
using detail::get_optional;
using detail::get_required;
using detail::join;
using detail::json;
using detail::positive;
using detail::read_json;

std::vector<std::string> known_model_types() {
    std::vector<std::string> names;
    for (const auto& a : detail::architectures()) {
        names.emplace_back(a.model_type);
    }
    return names;
}

std::string model_type_description(const std::string& model_type) {
    const auto* a = detail::find_architecture(model_type);
    return a ? a->description : "";
}

namespace {

void read_preprocessor_text(ModelConfig& c) {
    std::error_code ec;
    const auto pre = c.dir / "preprocessor_config.json";
    if (std::filesystem::is_regular_file(pre, ec)) {
        c.preprocessor_json = read_file_text(pre);
    }
}

}  // namespace

ModelConfig read_model_config(const std::filesystem::path& dir) {
    auto path = config_path(dir, "config.json");
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) &&
        std::filesystem::exists(path.parent_path() / "open_clip_config.json", ec)) {
        path = path.parent_path() / "open_clip_config.json";
    }
    ModelConfig c;
    const json j = read_json(path, &c.config_json);
    c.dir = path.parent_path();
    read_preprocessor_text(c);
    if (path.filename() == "open_clip_config.json") {
        c.config_file = "open_clip_config.json";
        c.model_type = "open_clip_timm_vit";
    } else {
        c.model_type = get_required<std::string>(j, "model_type", path);
        c.num_channels =
            positive(get_optional<std::int64_t>(j, "num_channels", 3, path), "num_channels", path);
        c.hidden_act = get_optional<std::string>(j, "hidden_act", "gelu", path);
    }
    const auto* arch = detail::find_architecture(c.model_type);
    RADPROBE_CHECK(arch != nullptr, "file ", path.string(), ": model_type \"", c.model_type,
                   "\" is not supported (known: ", join(known_model_types()), ")");
    arch->read_config(j, path, c);
    return c;
}

namespace {

/// open_clip's evaluation transform, from open_clip_config.json.
PreprocessConfig open_clip_preprocess(const std::filesystem::path& path) {
    const json j = read_json(path);
    ModelConfig model;
    detail::find_architecture("open_clip_timm_vit")->read_config(j, path, model);
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

}  // namespace radprobe::encoders
