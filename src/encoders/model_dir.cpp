// config.json / preprocessor_config.json parsing (no LibTorch); the preprocessing itself is in
// src/preprocess.

#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/preprocess/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "architectures.hpp"
#include "checkpoint_layout.hpp"
#include "config_fields.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "radprobe/encoders/torch_pickle.hpp"

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

namespace {

namespace fs = std::filesystem;

bool is_pickle_name(const std::string& name) {
    for (const char* ext : {".bin", ".pt", ".pth", ".pth.tar", ".ckpt"}) {
        const std::string e = ext;
        if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
            return true;
        }
    }
    return false;
}

WeightFiles sharded_safetensors(const fs::path& index) {
    WeightFiles w;
    w.kind = WeightFiles::Kind::kShardedSafetensors;
    w.index = index;
    const auto j = json::parse(read_file_text(index), nullptr, false);
    RADPROBE_CHECK(!j.is_discarded() && j.is_object() && j.contains("weight_map") &&
                       j["weight_map"].is_object(),
                   "file ", index.string(), ": not a JSON object with a \"weight_map\" object");
    std::set<std::string> shards;
    for (const auto& [name, shard] : j["weight_map"].items()) {
        RADPROBE_CHECK(shard.is_string(), "file ", index.string(), ": weight_map[\"", name,
                       "\"] is not a file name");
        const auto file = shard.get<std::string>();
        RADPROBE_CHECK(!file.empty() && file.find('/') == std::string::npos &&
                           file.find('\\') == std::string::npos && file != "." && file != "..",
                       "file ", index.string(), ": shard name \"", file,
                       "\" must be a file name inside the model directory");
        w.shard_of[name] = file;
        shards.insert(file);
    }
    RADPROBE_CHECK(!w.shard_of.empty(), "file ", index.string(), ": weight_map is empty");
    for (const auto& shard : shards) {
        w.files.push_back(index.parent_path() / shard);
    }
    return w;
}

WeightFiles one_file(const fs::path& path, WeightFiles::Kind kind) {
    WeightFiles w;
    w.kind = kind;
    w.files = {path};
    return w;
}

/// The folder's only pickle-named file, if there is exactly one.
WeightFiles lone_pickle(const fs::path& dir) {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_regular_file(ec) && is_pickle_name(entry.path().filename().string())) {
            found.push_back(entry.path().filename().string());
        }
    }
    std::sort(found.begin(), found.end());
    RADPROBE_CHECK(!found.empty(), "model directory ", dir.string(),
                   ": no weights (model.safetensors, model.safetensors.index.json, "
                   "open_clip_model.safetensors, pytorch_model.bin or another PyTorch checkpoint)");
    RADPROBE_CHECK(found.size() == 1, "model directory ", dir.string(), ": ", found.size(),
                   " PyTorch checkpoints (", join(found),
                   "): keep one, or pass the file itself as the model path");
    return one_file(dir / found.front(), WeightFiles::Kind::kTorchPickle);
}

}  // namespace

WeightFiles find_weight_files(const std::filesystem::path& model_dir) {
    std::error_code ec;
    if (fs::is_regular_file(model_dir, ec)) {
        return one_file(model_dir, is_pickle_name(model_dir.filename().string())
                                       ? WeightFiles::Kind::kTorchPickle
                                       : WeightFiles::Kind::kSafetensors);
    }
    RADPROBE_CHECK(fs::is_directory(model_dir, ec), "model directory ", model_dir.string(),
                   ": does not exist");
    for (const char* name : {"model.safetensors", "open_clip_model.safetensors"}) {
        if (fs::exists(model_dir / name, ec)) {
            return one_file(model_dir / name, WeightFiles::Kind::kSafetensors);
        }
    }
    if (fs::exists(model_dir / "model.safetensors.index.json", ec)) {
        return sharded_safetensors(model_dir / "model.safetensors.index.json");
    }
    for (const char* name : {"pytorch_model.bin", "open_clip_pytorch_model.bin", "model.bin",
                             "model.pth", "model.pt"}) {
        if (fs::exists(model_dir / name, ec)) {
            return one_file(model_dir / name, WeightFiles::Kind::kTorchPickle);
        }
    }
    return lone_pickle(model_dir);
}

namespace {

/// Tensor names and shapes of the weights, read without LibTorch (headers and pickles only).
detail::ShapeMap weight_shapes(const WeightFiles& w) {
    detail::ShapeMap shapes;
    for (const auto& file : w.files) {
        if (w.kind == WeightFiles::Kind::kTorchPickle) {
            for (const auto& [name, t] : TorchCheckpoint::open(file).state_dict_tensors()) {
                shapes[name] = t.shape;
            }
        } else {
            const SafetensorsFile st = SafetensorsFile::open(file);
            for (const auto& t : st.tensors()) {
                shapes[t.name] = t.shape;
            }
        }
    }
    return shapes;
}

/// The HF ResNet config of a torchvision ResNet state dict (null when the keys are not one).
json torchvision_resnet_config(const detail::ShapeMap& shapes, const fs::path& file) {
    const std::string anchor = "layer1.0.conv1.weight";
    std::string prefix;
    bool found = false;
    for (const auto& [name, _] : shapes) {
        if (name.size() >= anchor.size() &&
            name.compare(name.size() - anchor.size(), anchor.size(), anchor) == 0) {
            prefix = name.substr(0, name.size() - anchor.size());
            found = true;
            break;
        }
    }
    if (!found || !shapes.count(prefix + "conv1.weight")) {
        return nullptr;
    }
    const bool bottleneck = shapes.count(prefix + "layer1.0.conv3.weight") > 0;
    std::vector<std::int64_t> depths, widths;
    for (int s = 1; shapes.count(str_cat(prefix, "layer", s, ".0.conv1.weight")); ++s) {
        std::int64_t blocks = 0;
        while (shapes.count(str_cat(prefix, "layer", s, ".", blocks, ".conv1.weight"))) {
            ++blocks;
        }
        const auto& last =
            shapes.at(str_cat(prefix, "layer", s, ".0.conv", bottleneck ? 3 : 2, ".weight"));
        const auto& first = shapes.at(str_cat(prefix, "layer", s, ".0.conv1.weight"));
        RADPROBE_CHECK(!bottleneck || first.at(0) * 4 == last.at(0), "file ", file.string(),
                       ": layer", s, " is not a standard ResNet bottleneck (width ", first.at(0),
                       " for ", last.at(0), " outputs: ResNeXt / wide ResNets are not supported)");
        depths.push_back(blocks);
        widths.push_back(last.at(0));
    }
    return {{"model_type", "resnet"},
            {"num_channels", shapes.at(prefix + "conv1.weight").at(1)},
            {"embedding_size", shapes.at(prefix + "conv1.weight").at(0)},
            {"hidden_sizes", widths},
            {"depths", depths},
            {"layer_type", bottleneck ? "bottleneck" : "basic"},
            {"hidden_act", "relu"},
            {"downsample_in_first_stage", false},
            {"downsample_in_bottleneck", false},
            {"image_size", 224}};
}

/// A folder with weights but no config: the layouts recognised from their keys.
ModelConfig inferred_config(const fs::path& dir) {
    const WeightFiles w = find_weight_files(dir);
    const detail::ShapeMap shapes = weight_shapes(w);
    const fs::path& file = w.files.front();
    const json j = torchvision_resnet_config(shapes, file);
    if (j.is_null()) {
        std::vector<std::string> keys;
        for (const auto& [name, _] : shapes) {
            keys.push_back(name);
        }
        const std::string style = detail::recognise_key_style(keys);
        RADPROBE_CHECK(false, "model directory ", dir.string(), ": no config.json, and the ",
                       shapes.size(), " tensors of ", file.filename().string(),
                       " are not a layout radprobe recognises without one (torchvision ResNet)",
                       style.empty() ? "" : "; they are ", style);
    }
    ModelConfig c;
    c.dir = dir;
    c.model_type = "resnet";
    c.weights_layout = "torchvision_resnet";
    c.config_json = j.dump(2);
    c.num_channels = j["num_channels"].get<std::int64_t>();
    c.hidden_act = "relu";
    detail::find_architecture("resnet")->read_config(j, file, c);
    return c;
}

}  // namespace

ModelConfig read_model_config(const std::filesystem::path& dir) {
    auto path = config_path(dir, "config.json");
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) &&
        std::filesystem::exists(path.parent_path() / "open_clip_config.json", ec)) {
        path = path.parent_path() / "open_clip_config.json";
    }
    if (!std::filesystem::exists(path, ec) && std::filesystem::is_directory(dir, ec)) {
        ModelConfig c = inferred_config(dir);
        read_preprocessor_text(c);
        return c;
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

namespace {

/// DINO's evaluation transform for its ResNet-50 (eval_linear.py: Resize(256, interpolation=3),
/// CenterCrop(224), ToTensor, Normalize(ImageNet mean/std)).
PreprocessConfig dino_eval_preprocess() {
    PreprocessConfig c;
    c.processor_type = "torchvision (DINO evaluation transform)";
    c.shortest_edge = 256;
    c.resample = Resample::kBicubic;
    c.do_center_crop = true;
    c.crop_height = c.crop_width = 224;
    c.torchvision_crop = true;
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
    if (std::filesystem::is_directory(dir, ec) && !std::filesystem::exists(path, ec) &&
        !std::filesystem::exists(dir / "config.json", ec) &&
        read_model_config(dir).weights_layout == "torchvision_resnet") {
        return dino_eval_preprocess();
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
