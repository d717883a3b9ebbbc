// Encoders as prepared model folders (model_folders.hpp).

#include "model_folders.hpp"

#include <algorithm>
#include <vector>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::experiment::detail {

namespace fs = std::filesystem;
using nlohmann::json;

json default_preprocessor() {
    return {{"image_processor_type", "BitImageProcessor"},
            {"do_resize", true},
            {"do_center_crop", true},
            {"do_rescale", true},
            {"rescale_factor", 1.0 / 255.0},
            {"do_normalize", true},
            {"resample", 3}};
}

namespace {

int resample_code(const std::string& name) {
    if (name == "nearest") {
        return 0;
    }
    if (name == "lanczos") {
        return 1;
    }
    if (name == "bilinear") {
        return 2;
    }
    return 3;
}

}  // namespace

json apply_override(json j, const PreprocessOverride& o) {
    if (o.size) {
        const bool crop = o.crop.value_or(true);
        j["do_resize"] = true;
        j["size"] = {{"shortest_edge", *o.size}};
        j["do_center_crop"] = crop;
        if (crop) {
            j["crop_size"] = {{"height", *o.size}, {"width", *o.size}};
        }
    } else if (o.crop) {
        j["do_center_crop"] = *o.crop;
    }
    if (o.mean) {
        j["image_mean"] = *o.mean;
    }
    if (o.std) {
        j["image_std"] = *o.std;
    }
    if (o.resample) {
        j["resample"] = resample_code(*o.resample);
    }
    return j;
}

json random_vit_json(const RandomVitParams& p) {
    return {{"hidden_size", p.hidden_size}, {"layers", p.layers},         {"heads", p.heads},
            {"patch_size", p.patch_size},   {"image_size", p.image_size}, {"seed", p.seed}};
}

std::string weights_hash_of(const fs::path& dir) {
    if (fs::exists(dir / "model.safetensors")) {
        return features::content_hash_file(dir / "model.safetensors");
    }
    if (!fs::exists(dir / "model.safetensors.index.json")) {  // open_clip, PyTorch pickles
        std::string all;
        for (const auto& file : encoders::find_weight_files(dir).files) {
            all += file.filename().string() + ":" + features::content_hash_file(file) + "\n";
        }
        return features::content_hash(all);
    }
    const std::string index = read_file_text(dir / "model.safetensors.index.json");
    std::string all = index;
    const auto j = json::parse(index);
    std::vector<std::string> files;
    for (const auto& [k, v] : j.at("weight_map").items()) {
        files.push_back(v.get<std::string>());
    }
    std::sort(files.begin(), files.end());
    files.erase(std::unique(files.begin(), files.end()), files.end());
    for (const auto& f : files) {
        all += features::content_hash_file(dir / f);
    }
    return features::content_hash(all);
}

std::string model_config_hash(const fs::path& dir) {
    for (const char* name : {"config.json", "open_clip_config.json"}) {
        if (fs::exists(dir / name)) {
            return features::content_hash(read_file_text(dir / name));
        }
    }
    return "";  // a config-less folder: the architecture comes from the weights
}

bool has_derived_preprocessor(const fs::path& dir) {
    return !fs::exists(dir / "preprocessor_config.json") &&
           (fs::exists(dir / "open_clip_config.json") || !fs::exists(dir / "config.json"));
}

json effective_preprocessor(const EncoderConfig& e, const fs::path& source) {
    json base = default_preprocessor();
    const fs::path own = e.random_vit ? source / "radprobe_base_preprocessor.json"
                                      : source / "preprocessor_config.json";
    if (fs::exists(own)) {
        base = json::parse(read_file_text(own));
    } else if (e.random_vit) {
        return nullptr;
    } else if (has_derived_preprocessor(source)) {  // open_clip, a lone torchvision / timm .pth
        base = json::parse(encoders::preprocessor_json(encoders::read_preprocess_config(
            source, encoders::LoadOptions::with_key(e.checkpoint_key))));
    }
    return apply_override(base, e.preprocessing);
}

namespace {

/// Generates the random ViT in `dir` unless the one there has the same parameters.
void write_random_vit_once(const RandomVitParams& p, const fs::path& dir) {
    const std::string spec = random_vit_json(p).dump();
    const fs::path spec_file = dir / "radprobe_random_vit.json";
    const bool same = fs::exists(spec_file) && fs::exists(dir / "model.safetensors") &&
                      fs::exists(dir / "radprobe_base_preprocessor.json") &&
                      read_file_text(spec_file) == spec;
    if (same) {
        return;
    }
    encoders::RandomVitSpec s;
    s.hidden_size = p.hidden_size;
    s.num_hidden_layers = p.layers;
    s.num_attention_heads = p.heads;
    s.patch_size = p.patch_size;
    s.image_size = p.image_size;
    s.seed = p.seed;
    encoders::write_random_vit(dir, s);
    // Kept apart: the folder's preprocessor_config.json is replaced by the effective one.
    write_file_atomic(dir / "radprobe_base_preprocessor.json",
                      read_file_text(dir / "preprocessor_config.json"));
    write_file_atomic(spec_file, spec);
}

/// Links every file of `source` but its preprocessor_config.json into `dir`.
void link_source_files(const fs::path& source, const fs::path& dir) {
    for (const auto& entry : fs::directory_iterator(source)) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_regular_file() || name == "preprocessor_config.json") {
            continue;
        }
        const fs::path link = dir / name;
        const fs::path target = fs::absolute(entry.path());
        std::error_code ec;
        if (fs::is_symlink(fs::symlink_status(link)) && fs::read_symlink(link, ec) == target) {
            continue;
        }
        fs::remove(link, ec);
        fs::create_symlink(target, link);
    }
}

/// Writes `text` to `file` (atomically) unless it already holds it; a link to the source folder's
/// file of that name is replaced by the prepared folder's own.
void write_if_changed(const fs::path& file, const std::string& text) {
    if (fs::is_symlink(fs::symlink_status(file)) || !fs::exists(file) ||
        read_file_text(file) != text) {
        std::error_code ec;
        fs::remove(file, ec);
        write_file_atomic(file, text);
    }
}

/// The config's checkpoint_key and dtype as the prepared folder's radprobe_load.json, which every
/// step that loads the folder reads (a source folder's own file stays linked when neither is
/// given).
void write_load_options(const EncoderConfig& e, const fs::path& dir) {
    const fs::path file = dir / encoders::kLoadOptionsFile;
    std::error_code ec;
    if (e.checkpoint_key.empty() && e.dtype.empty()) {  // options an earlier config gave are gone
        if (!fs::is_symlink(fs::symlink_status(file)) && fs::exists(file, ec)) {
            fs::remove(file, ec);
        }
        return;
    }
    json j = json::object();
    if (!e.checkpoint_key.empty()) {
        j["checkpoint_key"] = e.checkpoint_key;
    }
    if (!e.dtype.empty()) {
        j["dtype"] = e.dtype;
    }
    write_if_changed(file, j.dump(2) + "\n");
}

}  // namespace

void prepare_model_dir(const EncoderConfig& e, const fs::path& source, const fs::path& dir,
                       bool generate) {
    fs::create_directories(dir);
    if (e.random_vit && generate) {
        write_random_vit_once(*e.random_vit, dir);
    } else if (source != dir) {
        link_source_files(source, dir);
    }
    write_load_options(e, dir);
    const json pre = effective_preprocessor(e, e.random_vit ? dir : source);
    RADPROBE_ASSERT(!pre.is_null(), "no preprocessor for ", e.name);
    write_if_changed(dir / "preprocessor_config.json", pre.dump(2) + "\n");
}

fs::path prepare_encoder_folder(const ExperimentConfig& c, const EncoderConfig& e) {
    const fs::path dir = c.output.store / "models" / e.name;
    prepare_model_dir(e, e.random_vit ? dir : e.path, dir, true);
    return dir;
}

}  // namespace radprobe::experiment::detail
