// The `encoders` section of an experiment config (config_sections.hpp): each entry a Hugging Face
// folder or the built-in random ViT, with its preprocessing, layers and batch.

#include <algorithm>
#include <limits>
#include <optional>
#include <regex>

#include "adaptations.hpp"
#include "config_sections.hpp"
#include "model_folders.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/encoders/model_dir.hpp"

namespace radprobe::experiment::detail {

namespace fs = std::filesystem;

namespace {

std::string read_name(const Reader& r, const YAML::Node& e, const std::string& path,
                      const ExperimentConfig& c) {
    if (!e["name"].IsDefined()) {
        r.fail(e, path + ".name", "missing required key");
    }
    const std::string name = r.get_string(e["name"], path + ".name");
    static const std::regex name_re("[A-Za-z0-9][A-Za-z0-9._+-]*");
    if (!std::regex_match(name, name_re) || name.size() > 100) {
        r.fail(e["name"], path + ".name",
               "'" + name + "' must be letters, digits, . _ + - (it names folders)");
    }
    for (const auto& other : c.encoders) {
        if (other.name == name) {
            r.fail(e["name"], path + ".name",
                   "'" + name + "' is already the name of the encoder on line " +
                       std::to_string(other.line));
        }
    }
    return name;
}

/// A Hugging Face folder: its model config, its weights (safetensors or a PyTorch pickle); whether
/// it has a preprocessor_config.json.
encoders::ModelConfig read_model_folder(const Reader& r, const YAML::Node& e,
                                        const std::string& path, EncoderConfig& enc,
                                        bool& has_processor) {
    enc.path = r.resolve(r.get_string(e["path"], path + ".path"));
    std::error_code ec;
    if (!fs::is_directory(enc.path, ec)) {
        r.fail(e["path"], path + ".path",
               enc.path.string() + ": " +
                   (ec && ec != std::errc::no_such_file_or_directory ? ec.message()
                                                                     : "not a directory"));
    }
    if (e["checkpoint_key"].IsDefined()) {
        enc.checkpoint_key = r.get_string(e["checkpoint_key"], path + ".checkpoint_key");
    }
    if (e["dtype"].IsDefined()) {
        enc.dtype = r.get_string(e["dtype"], path + ".dtype");
        try {
            encoders::parse_compute_dtype(enc.dtype, path + ".dtype");
        } catch (const Error& err) {
            r.fail(e["dtype"], path + ".dtype", err.what());
        }
    }
    encoders::ModelConfig model;
    try {
        model = encoders::read_model_config(enc.path,
                                            encoders::LoadOptions::with_key(enc.checkpoint_key));
    } catch (const Error& err) {
        r.fail(e["path"], path + ".path", err.what());
    }
    try {
        encoders::check_checkpoint_key(encoders::find_weight_files(enc.path), enc.checkpoint_key);
    } catch (const Error& err) {
        r.fail(e["path"], path + ".path", err.what());
    }
    has_processor = fs::exists(enc.path / "preprocessor_config.json", ec) ||
                    detail::has_derived_preprocessor(enc.path);
    return model;
}

RandomVitParams read_random_vit(const Reader& r, const YAML::Node& rv, const std::string& rp) {
    RandomVitParams p;
    if (rv.IsNull()) {
        return p;
    }
    r.require_map(rv, rp);
    r.check_keys(rv, rp, {"seed", "hidden_size", "layers", "heads", "patch_size", "image_size"});
    auto opt_int = [&](const char* k, std::int64_t& v, long long lo, long long hi) {
        if (rv[k].IsDefined()) {
            v = r.get_int(rv[k], rp + "." + k, lo, hi);
        }
    };
    std::int64_t seed = 0;
    opt_int("seed", seed, 0, std::numeric_limits<long long>::max());
    p.seed = static_cast<std::uint64_t>(seed);
    opt_int("hidden_size", p.hidden_size, 8, 4096);
    opt_int("layers", p.layers, 1, 64);
    opt_int("heads", p.heads, 1, 64);
    opt_int("patch_size", p.patch_size, 2, 64);
    opt_int("image_size", p.image_size, 16, 4096);
    if (p.hidden_size % p.heads != 0) {
        r.fail(rv, rp, "hidden_size must be a multiple of heads");
    }
    if (p.image_size % p.patch_size != 0) {
        r.fail(rv, rp, "image_size must be a multiple of patch_size");
    }
    return p;
}

/// `mean` / `std`: 1 value (all three channels) or 3.
std::vector<double> read_channels(const Reader& r, const YAML::Node& n, const std::string& path,
                                  bool positive) {
    std::vector<double> v;
    const auto nodes = r.items(n, path);
    for (std::size_t j = 0; j < nodes.size(); ++j) {
        v.push_back(
            r.get_double(nodes[j], Reader::item(path, j), positive ? 0.0 : -10.0, 10.0, positive));
    }
    if (v.size() == 1) {
        v.assign(3, v[0]);
    }
    if (v.size() != 3) {
        r.fail(n, path, "give 1 or 3 values (R, G, B)");
    }
    return v;
}

PreprocessOverride read_preprocessing(const Reader& r, const YAML::Node& pp,
                                      const std::string& pr) {
    r.require_map(pp, pr);
    r.check_keys(pp, pr, {"size", "crop", "mean", "std", "resample"});
    PreprocessOverride o;
    if (pp["size"].IsDefined()) {
        o.size = r.get_int(pp["size"], pr + ".size", 8, 8192);
    }
    if (pp["crop"].IsDefined()) {
        o.crop = r.get_bool(pp["crop"], pr + ".crop");
    }
    if (pp["mean"].IsDefined()) {
        o.mean = read_channels(r, pp["mean"], pr + ".mean", false);
    }
    if (pp["std"].IsDefined()) {
        o.std = read_channels(r, pp["std"], pr + ".std", true);
    }
    if (pp["resample"].IsDefined()) {
        o.resample = r.get_choice(pp["resample"], pr + ".resample",
                                  {"nearest", "bilinear", "bicubic", "lanczos"});
    }
    return o;
}

std::vector<int> read_layers(const Reader& r, const YAML::Node& n, const std::string& path,
                             long long num_layers) {
    std::vector<int> layers;
    const auto nodes = r.items(n, path);
    for (std::size_t j = 0; j < nodes.size(); ++j) {
        const std::string lp = Reader::item(path, j);
        const auto l = r.get_int(nodes[j], lp, -num_layers, num_layers);
        if (l == 0) {
            r.fail(nodes[j], lp, "layers count from 1 (first block) or from -1 (last)");
        }
        layers.push_back(static_cast<int>(l));
    }
    return layers;
}

/// `cls` and `cls+mean` need a CLS token.
void check_cls_poolings(const Reader& r, const ExperimentConfig& c, const ConfigNodes& nodes,
                        const EncoderConfig& enc, const encoders::ModelConfig& model) {
    if (model.has_cls_token) {
        return;
    }
    for (std::size_t j = 0; j < c.poolings.size(); ++j) {
        if (c.poolings[j] == "cls" || c.poolings[j] == "cls+mean") {
            r.fail(nodes.pooling.empty() ? nodes.root : nodes.pooling[j], "pooling",
                   "'" + c.poolings[j] + "' needs a CLS token, and encoder '" + enc.name + "' (" +
                       model.model_type + ") has none");
        }
    }
}

EncoderConfig read_encoder(const Reader& r, const YAML::Node& e, const std::string& path,
                           const ExperimentConfig& c, const ConfigNodes& nodes) {
    r.require_map(e, path);
    r.check_keys(e, path,
                 {"name", "path", "checkpoint_key", "dtype", "random_vit", "preprocessing",
                  "layers", "batch", "fold_grayscale", "control", "device"});
    EncoderConfig enc;
    enc.device = c.device;
    if (e["device"].IsDefined()) {
        enc.device = r.get_string(e["device"], path + ".device");
        try {
            adapt::check_device_name(enc.device);
        } catch (const Error& err) {
            r.fail(e["device"], path + ".device", err.what());
        }
    }
    enc.line = static_cast<std::size_t>(e.Mark().line + 1);
    enc.name = read_name(r, e, path, c);
    if (e["path"].IsDefined() == e["random_vit"].IsDefined()) {
        r.fail(e, path,
               "give exactly one of 'path' (a Hugging Face folder) and "
               "'random_vit' (the built-in random-feature control)");
    }
    encoders::ModelConfig model;
    bool has_processor = true;
    if (e["path"].IsDefined()) {
        model = read_model_folder(r, e, path, enc, has_processor);
    } else {
        enc.random_vit = read_random_vit(r, e["random_vit"], path + ".random_vit");
        model.model_type = "dinov2";
        model.num_hidden_layers = enc.random_vit->layers;
        model.has_cls_token = true;
    }
    if (e["preprocessing"].IsDefined() && !e["preprocessing"].IsNull()) {
        enc.preprocessing = read_preprocessing(r, e["preprocessing"], path + ".preprocessing");
    }
    const auto& pre = enc.preprocessing;
    if (!has_processor && !(pre.size && pre.mean && pre.std)) {
        r.fail(e, path + ".preprocessing",
               enc.path.string() +
                   " has no preprocessor_config.json: give preprocessing: {size, mean, std} for "
                   "this encoder (or copy the model's preprocessor_config.json into it)");
    }
    if (e["layers"].IsDefined()) {
        enc.layers = read_layers(r, e["layers"], path + ".layers", model.num_hidden_layers);
    }
    if (e["batch"].IsDefined()) {
        enc.batch = static_cast<int>(r.get_int(e["batch"], path + ".batch", 1, 4096));
    }
    if (e["fold_grayscale"].IsDefined()) {
        enc.fold_grayscale = r.get_bool(e["fold_grayscale"], path + ".fold_grayscale");
    }
    // The built-in random ViT is the random-feature control unless the config says otherwise.
    enc.control = enc.random_vit.has_value();
    if (e["control"].IsDefined()) {
        enc.control = r.get_bool(e["control"], path + ".control");
    }
    check_cls_poolings(r, c, nodes, enc, model);
    return enc;
}

}  // namespace

void read_encoders(const Reader& r, const YAML::Node& root, ExperimentConfig& c,
                   const ConfigNodes& nodes) {
    const bool needs_encoders =
        std::any_of(c.adaptations.begin(), c.adaptations.end(),
                    [](const auto& a) { return adaptation_uses_encoder(a.kind); });
    const YAML::Node encs = root["encoders"];
    if (!encs.IsDefined() || encs.IsNull()) {
        if (needs_encoders) {
            r.fail(root, "encoders",
                   "missing required key: the adaptations need at least one encoder");
        }
        return;
    }
    if (!encs.IsSequence()) {
        r.fail(encs, "encoders",
               "expected a list of encoders (- name: ...), got " + Reader::kind(encs));
    }
    std::size_t i = 0;
    for (const auto& e : encs) {
        c.encoders.push_back(read_encoder(r, e, Reader::item("encoders", i++), c, nodes));
    }
    if (c.encoders.empty() && needs_encoders) {
        r.fail(encs, "encoders", "the list is empty");
    }
}

}  // namespace radprobe::experiment::detail
