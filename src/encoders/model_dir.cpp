// config.json / preprocessor_config.json parsing (no LibTorch); the preprocessing itself is in
// src/preprocess.

#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/preprocess/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "architectures.hpp"
#include "checkpoint_layout.hpp"
#include "config_fields.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "radprobe/encoders/torch_pickle.hpp"
#include "sam2_release.hpp"
#include "vmamba_layout.hpp"

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

/// The shards of an HF index file (model.safetensors.index.json, pytorch_model.bin.index.json).
WeightFiles sharded(const fs::path& index, WeightFiles::Kind kind) {
    WeightFiles w;
    w.kind = kind;
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
                   ": not found");
    for (const char* name : {"model.safetensors", "open_clip_model.safetensors"}) {
        if (fs::exists(model_dir / name, ec)) {
            return one_file(model_dir / name, WeightFiles::Kind::kSafetensors);
        }
    }
    if (fs::exists(model_dir / "model.safetensors.index.json", ec)) {
        return sharded(model_dir / "model.safetensors.index.json",
                       WeightFiles::Kind::kShardedSafetensors);
    }
    if (fs::exists(model_dir / "pytorch_model.bin.index.json", ec)) {
        return sharded(model_dir / "pytorch_model.bin.index.json",
                       WeightFiles::Kind::kShardedTorchPickle);
    }
    for (const char* name : {"pytorch_model.bin", "open_clip_pytorch_model.bin", "model.bin",
                             "model.pth", "model.pt"}) {
        if (fs::exists(model_dir / name, ec)) {
            return one_file(model_dir / name, WeightFiles::Kind::kTorchPickle);
        }
    }
    return lone_pickle(model_dir);
}

void check_checkpoint_key(const WeightFiles& w, const std::string& checkpoint_key) {
    if (checkpoint_key.empty()) {
        return;
    }
    const bool pickle = w.kind == WeightFiles::Kind::kTorchPickle ||
                        w.kind == WeightFiles::Kind::kShardedTorchPickle;
    RADPROBE_CHECK(pickle, "file ", w.files.front().string(), ": a checkpoint key (\"",
                   checkpoint_key, "\") applies to PyTorch pickles only; these are safetensors");
    for (const auto& file : w.files) {
        TorchCheckpoint::open(file).select_state_dict(checkpoint_key);
    }
}

namespace {

/// Tensor names and shapes of the weights, read without LibTorch (headers and pickles only).
detail::ShapeMap weight_shapes(const WeightFiles& w, const std::string& checkpoint_key) {
    detail::ShapeMap shapes;
    for (const auto& file : w.files) {
        if (w.kind == WeightFiles::Kind::kTorchPickle ||
            w.kind == WeightFiles::Kind::kShardedTorchPickle) {
            const auto ckpt = TorchCheckpoint::open(file);
            for (const auto& [name, t] : ckpt.state_dict_tensors(checkpoint_key)) {
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

/// The prefix before `anchor` in the first key ending with it (nullopt when none does).
std::optional<std::string> prefix_before(const detail::ShapeMap& shapes,
                                         const std::string& anchor) {
    for (const auto& [name, _] : shapes) {
        if (name.size() >= anchor.size() &&
            name.compare(name.size() - anchor.size(), anchor.size(), anchor) == 0) {
            return name.substr(0, name.size() - anchor.size());
        }
    }
    return std::nullopt;
}

/// The window side w of a relative position bias table of (2w-1)^2 rows.
std::int64_t window_of_table(const std::vector<std::int64_t>& table, const fs::path& file) {
    const auto side = static_cast<std::int64_t>(std::lround(std::sqrt(double(table.at(0)))));
    RADPROBE_CHECK(side * side == table.at(0) && side % 2 == 1, "file ", file.string(),
                   ": a Swin relative_position_bias_table of ", table.at(0),
                   " rows is not (2w-1)^2 for a window w");
    return (side + 1) / 2;
}

/// The HF Swin config of a timm Swin state dict (Ark+, timm SwinTransformer); null when the keys
/// are not one. The native image size comes from the first shifted block's attention mask when
/// the checkpoint keeps it (timm < 0.9: (H/4/w)^2 windows), else timm's default 224.
json timm_swin_config(const detail::ShapeMap& shapes, const fs::path& file) {
    const auto p = prefix_before(shapes, "layers.0.blocks.0.attn.relative_position_bias_table");
    if (!p || !shapes.count(*p + "patch_embed.proj.weight")) {
        return nullptr;
    }
    const std::string& prefix = *p;
    RADPROBE_CHECK(!shapes.count(prefix + "absolute_pos_embed"), "file ", file.string(),
                   ": a timm Swin with absolute position embeddings (ape=True) is not supported");
    RADPROBE_CHECK(shapes.count(prefix + "patch_embed.norm.weight"), "file ", file.string(),
                   ": a timm Swin without patch_embed.norm (patch_norm=False) is not supported");
    const auto& proj = shapes.at(prefix + "patch_embed.proj.weight");
    const std::int64_t dim = proj.at(0);
    const std::int64_t window = window_of_table(
        shapes.at(prefix + "layers.0.blocks.0.attn.relative_position_bias_table"), file);
    std::vector<std::int64_t> depths, heads;
    for (int i = 0; shapes.count(str_cat(prefix, "layers.", i, ".blocks.0.norm1.weight")); ++i) {
        std::int64_t blocks = 0;
        while (shapes.count(str_cat(prefix, "layers.", i, ".blocks.", blocks, ".norm1.weight"))) {
            ++blocks;
        }
        depths.push_back(blocks);
        heads.push_back(
            shapes.at(str_cat(prefix, "layers.", i, ".blocks.0.attn.relative_position_bias_table"))
                .at(1));
    }
    const std::int64_t hidden = shapes.at(prefix + "layers.0.blocks.0.mlp.fc1.weight").at(0);
    std::int64_t image_size = 224;
    if (const auto mask = shapes.find(prefix + "layers.0.blocks.1.attn_mask");
        mask != shapes.end() && !mask->second.empty()) {
        const auto per_side =
            static_cast<std::int64_t>(std::lround(std::sqrt(double(mask->second[0]))));
        image_size = per_side * window * proj.at(2);
    }
    return {{"model_type", "swin"},
            {"num_channels", proj.at(1)},
            {"patch_size", proj.at(2)},
            {"embed_dim", dim},
            {"depths", depths},
            {"num_heads", heads},
            {"window_size", window},
            {"mlp_ratio", double(hidden) / double(dim)},
            {"qkv_bias", shapes.count(prefix + "layers.0.blocks.0.attn.qkv.bias") > 0},
            {"hidden_act", "gelu"},
            {"layer_norm_eps", 1e-5},
            {"use_absolute_embeddings", false},
            {"image_size", image_size}};
}

/// A folder with weights but no config: the layouts recognised from their keys.
ModelConfig inferred_config(const fs::path& dir, const std::string& checkpoint_key) {
    const WeightFiles w = find_weight_files(dir);
    const detail::ShapeMap shapes = weight_shapes(w, checkpoint_key);
    const fs::path& file = w.files.front();
    json j = torchvision_resnet_config(shapes, file);
    std::string layout = "torchvision_resnet";
    if (j.is_null()) {
        j = timm_swin_config(shapes, file);
        layout = "timm_swin";
    }
    if (j.is_null()) {
        j = detail::vmamba_config(shapes, file);
        layout = "vmamba";
    }
    if (j.is_null()) {
        j = detail::sam2_release_config(shapes, file);
        layout = "sam2_release";
    }
    if (j.is_null()) {
        std::vector<std::string> keys;
        for (const auto& [name, _] : shapes) {
            keys.push_back(name);
        }
        const std::string style = detail::recognise_key_style(keys);
        RADPROBE_CHECK(false, "model directory ", dir.string(), ": no config.json, and the ",
                       shapes.size(), " tensors of ", file.filename().string(),
                       " are not a layout radprobe recognises without one (torchvision ResNet, "
                       "timm Swin, VMamba, the SAM 2 release)",
                       style.empty() ? "" : "; they are ", style);
    }
    ModelConfig c;
    c.dir = dir;
    c.model_type = j["model_type"].get<std::string>();
    c.weights_layout = layout;
    c.config_json = j.dump(2);
    c.num_channels = j["num_channels"].get<std::int64_t>();
    c.hidden_act = j["hidden_act"].get<std::string>();
    detail::find_architecture(c.model_type)->read_config(j, file, c);
    return c;
}

}  // namespace

namespace {

ModelConfig read_model_config_file(const std::filesystem::path& dir,
                                   const std::string& checkpoint_key) {
    auto path = config_path(dir, "config.json");
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) &&
        std::filesystem::exists(path.parent_path() / "open_clip_config.json", ec)) {
        path = path.parent_path() / "open_clip_config.json";
    }
    if (!std::filesystem::exists(path, ec) && std::filesystem::is_directory(dir, ec)) {
        ModelConfig c = inferred_config(dir, checkpoint_key);
        c.checkpoint_key = checkpoint_key;
        read_preprocessor_text(c);
        return c;
    }
    ModelConfig c;
    const json j = read_json(path, &c.config_json);
    c.dir = path.parent_path();
    c.checkpoint_key = checkpoint_key;
    read_preprocessor_text(c);
    if (path.filename() == "open_clip_config.json" && !detail::is_open_clip_timm(j)) {
        // open_clip's own ViT: read and saved as the HF CLIP vision tower it is (keys renamed by
        // load_encoder), so that save_pretrained writes a folder that loads as HF CLIP.
        const json hf = detail::open_clip_vit_as_clip(j, path);
        c.config_json = hf.dump(2);
        c.model_type = "clip_vision_model";
        c.composite_type = "open_clip";
        c.weights_layout = "open_clip_vit";
        c.num_channels = 3;
        c.hidden_act = hf["hidden_act"].get<std::string>();
        detail::find_architecture(c.model_type)->read_config(hf, path, c);
        return c;
    }
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

}  // namespace

ComputeDType parse_compute_dtype(const std::string& name, const std::string& what) {
    if (name == "fp32" || name == "float32") {
        return ComputeDType::kFloat32;
    }
    if (name == "bf16" || name == "bfloat16") {
        return ComputeDType::kBFloat16;
    }
    RADPROBE_USAGE_CHECK(name == "fp16" || name == "float16", what,
                         " must be fp32, bf16 or fp16, got \"", name, "\"");
    return ComputeDType::kFloat16;
}

std::string compute_dtype_name(ComputeDType dtype) {
    switch (dtype) {
        case ComputeDType::kBFloat16:
            return "bf16";
        case ComputeDType::kFloat16:
            return "fp16";
        default:
            return "fp32";
    }
}

LoadOptions read_load_options(const std::filesystem::path& dir, const LoadOptions& given) {
    std::error_code ec;
    const fs::path file = dir / kLoadOptionsFile;
    LoadOptions o = given;
    if (fs::is_directory(dir, ec) && fs::exists(file, ec)) {
        const json j = read_json(file);
        RADPROBE_CHECK(j.is_object(), "file ", file.string(), ": not a JSON object");
        for (const auto& [key, _] : j.items()) {
            RADPROBE_CHECK(key == "checkpoint_key" || key == "dtype", "file ", file.string(),
                           ": unknown key \"", key, "\" (known: checkpoint_key, dtype)");
        }
        if (given.checkpoint_key.empty()) {
            o.checkpoint_key = get_optional<std::string>(j, "checkpoint_key", "", file);
        }
        if (!given.compute_dtype && j.contains("dtype")) {
            o.compute_dtype = parse_compute_dtype(get_required<std::string>(j, "dtype", file),
                                                  file.string() + ": dtype");
        }
    }
    return o;
}

ModelConfig read_model_config(const std::filesystem::path& dir, const LoadOptions& options) {
    std::error_code ec;
    RADPROBE_CHECK(std::filesystem::exists(dir, ec), "model directory ", dir.string(),
                   ": not found");
    const LoadOptions o = read_load_options(dir, options);
    ModelConfig c = read_model_config_file(dir, o.checkpoint_key);
    c.compute_dtype = o.compute_dtype.value_or(ComputeDType::kFloat32);
    return c;
}

namespace {

/// open_clip's evaluation transform, from open_clip_config.json.
PreprocessConfig open_clip_preprocess(const std::filesystem::path& path) {
    const json j = read_json(path);
    ModelConfig model;
    if (detail::is_open_clip_timm(j)) {
        detail::find_architecture("open_clip_timm_vit")->read_config(j, path, model);
    } else {
        model.image_size = detail::open_clip_vit_as_clip(j, path)["image_size"].get<std::int64_t>();
    }
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

/// A square bilinear resize to the native size, then ImageNet mean/std: the evaluation transform
/// of a config-less timm Swin (Ark+: Resize((S, S)), ToTensor, Normalize) and of the SAM 2
/// release (sam2/utils/transforms.py SAM2Transforms, S = 1024 as released).
PreprocessConfig square_resize_preprocess(const ModelConfig& model, const char* transform) {
    PreprocessConfig c;
    c.processor_type = transform;
    c.resize_height = c.resize_width = model.image_size;
    c.resample = Resample::kBilinear;
    c.do_center_crop = false;
    return c;
}

}  // namespace

std::string preprocessor_json(const PreprocessConfig& c) {
    json j = {{"image_processor_type", c.processor_type},
              {"do_resize", c.do_resize},
              {"resample", static_cast<int>(c.resample)},
              {"do_center_crop", c.do_center_crop},
              {"do_rescale", c.do_rescale},
              {"rescale_factor", c.rescale_factor},
              {"do_normalize", c.do_normalize},
              {"image_mean", c.image_mean},
              {"image_std", c.image_std}};
    j["size"] = c.shortest_edge > 0 ? json{{"shortest_edge", c.shortest_edge}}
                                    : json{{"height", c.resize_height}, {"width", c.resize_width}};
    if (c.do_center_crop) {
        j["crop_size"] = {{"height", c.crop_height}, {"width", c.crop_width}};
    }
    if (c.torchvision_crop) {
        j["crop_rounding"] = "torchvision";
    }
    return j.dump(2) + "\n";
}

PreprocessConfig read_preprocess_config(const std::filesystem::path& dir,
                                        const LoadOptions& options) {
    const auto path = config_path(dir, "preprocessor_config.json");
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) &&
        std::filesystem::exists(path.parent_path() / "open_clip_config.json", ec)) {
        return open_clip_preprocess(path.parent_path() / "open_clip_config.json");
    }
    if (std::filesystem::is_directory(dir, ec) && !std::filesystem::exists(path, ec) &&
        !std::filesystem::exists(dir / "config.json", ec)) {
        const ModelConfig model = read_model_config(dir, options);  // reads the weights' keys
        if (model.weights_layout == "torchvision_resnet") {
            return dino_eval_preprocess();
        }
        if (model.weights_layout == "timm_swin") {
            return square_resize_preprocess(model, "torchvision (Ark+ evaluation transform)");
        }
        if (model.weights_layout == "sam2_release") {
            return square_resize_preprocess(model, "torchvision (SAM 2 transform)");
        }
        if (model.weights_layout == "vmamba") {
            return detail::vmamba_preprocess(model);
        }
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
    // radprobe's own key (written by preprocessor_json): torchvision's centre-crop rounding.
    c.torchvision_crop = get_optional<std::string>(j, "crop_rounding", "hf", path) == "torchvision";
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
