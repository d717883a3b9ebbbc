// SAM 2's original release (facebookresearch/sam2 at 2b90b9f, the head of main when this was
// written): the checkpoint's image encoder read as HF Sam2VisionModel (sam2.cpp). The trunk is
// sam2/modeling/backbones/hieradet.py's Hiera, the neck image_encoder.py's FpnNeck; the names
// differ as transformers' convert_sam2_to_hf.py renames them (checked against the publisher's
// own forward by tests/golden/encoders/make_sam2_release.py).

#include "sam2_release.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <optional>
#include <regex>

#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kTrunk = "image_encoder.trunk.";
const std::string kNeck = "image_encoder.neck.convs.";

/// What the weights say.
struct FromWeights {
    std::int64_t channels = 0, kernel = 0;
    std::vector<std::int64_t> depths, dims;
    double mlp_ratio = 0;
    std::int64_t background_h = 0, background_w = 0, window0 = 0;
    std::int64_t d_model = 0, fpn_kernel = 0;
};

/// What they do not: from the publisher's yaml or its published configurations.
struct Settings {
    std::int64_t num_heads = 1, q_pool = 3, q_stride = 2, scalp = 1, image_size = 1024;
    double head_mul = 2.0;
    std::vector<std::int64_t> global_blocks, windows, top_down{2, 3};
    std::string source;
};

/// sam2/configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml (the sam2/ configs hold the same trunks),
/// with Hiera's defaults where a file leaves them out (b+: stages, windows, global blocks).
struct Published {
    const char* name;
    std::int64_t embed_dim;
    std::vector<std::int64_t> stages;
    std::int64_t num_heads;
    std::vector<std::int64_t> global_blocks, windows;
};

const std::vector<Published>& published() {
    static const std::vector<Published> table = {
        {"sam2.1_hiera_t.yaml", 96, {1, 2, 7, 2}, 1, {5, 7, 9}, {8, 4, 14, 7}},
        {"sam2.1_hiera_s.yaml", 96, {1, 2, 11, 2}, 1, {7, 10, 13}, {8, 4, 14, 7}},
        {"sam2.1_hiera_b+.yaml", 112, {2, 3, 16, 3}, 2, {12, 16, 20}, {8, 4, 14, 7}},
        {"sam2.1_hiera_l.yaml", 144, {2, 6, 36, 4}, 2, {23, 33, 43}, {8, 4, 16, 8}}};
    return table;
}

const std::vector<std::int64_t>& shape_of(const ShapeMap& s, const std::string& key,
                                          std::size_t rank, const fs::path& file) {
    const auto it = s.find(key);
    RADPROBE_CHECK(it != s.end() && it->second.size() == rank, "file ", file.string(),
                   ": a SAM 2 release checkpoint without a ", rank, "-d ", key);
    return it->second;
}

std::string block_key(std::int64_t b, const std::string& rest) {
    return kTrunk + "blocks." + std::to_string(b) + "." + rest;
}

/// The blocks per stage and the stages' widths: a block with a proj starts the next stage
/// (w.dims holds the patch embedding's width).
void read_stages(const ShapeMap& s, const fs::path& file, FromWeights& w) {
    for (std::int64_t b = 0; s.count(block_key(b, "norm1.weight")); ++b) {
        if (b == 0) {
            w.depths.push_back(0);
        } else if (s.count(block_key(b, "proj.weight"))) {
            w.depths.push_back(0);
            w.dims.push_back(shape_of(s, block_key(b, "proj.weight"), 2, file)[0]);
        }
        ++w.depths.back();
    }
    RADPROBE_CHECK(!w.depths.empty(), "file ", file.string(),
                   ": a SAM 2 release checkpoint without trunk blocks");
}

FromWeights read_weights(const ShapeMap& s, const fs::path& file) {
    FromWeights w;
    const auto& patch = shape_of(s, kTrunk + "patch_embed.proj.weight", 4, file);
    w.channels = patch[1];
    w.kernel = patch[2];
    w.dims.push_back(patch[0]);
    read_stages(s, file, w);
    w.mlp_ratio =
        double(shape_of(s, block_key(0, "mlp.layers.0.weight"), 2, file)[0]) / double(patch[0]);
    const auto& background = shape_of(s, kTrunk + "pos_embed", 4, file);
    w.background_h = background[2];
    w.background_w = background[3];
    w.window0 = shape_of(s, kTrunk + "pos_embed_window", 4, file)[2];
    const auto& lateral = shape_of(s, kNeck + "0.conv.weight", 4, file);
    w.d_model = lateral[0];
    w.fpn_kernel = lateral[2];
    RADPROBE_CHECK(w.kernel == 7, "file ", file.string(), ": a SAM 2 patch embedding of ", w.kernel,
                   "x", w.kernel, " (Hiera's is 7x7, stride 4, padding 3)");
    return w;
}

/// A SAM 2 config: its file and its `model` section.
struct PublisherYaml {
    fs::path path;
    YAML::Node model;
};

/// The one .yaml/.yml beside the checkpoint that holds model.image_encoder (a SAM 2 config).
std::optional<PublisherYaml> publisher_yaml(const fs::path& dir) {
    std::vector<PublisherYaml> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const auto ext = entry.path().extension().string();
        if (!entry.is_regular_file(ec) || (ext != ".yaml" && ext != ".yml")) {
            continue;
        }
        try {
            const YAML::Node root = YAML::LoadFile(entry.path().string());
            if (root.IsMap() && root["model"] && root["model"]["image_encoder"]) {
                found.push_back({entry.path(), root["model"]});
            }
        } catch (const YAML::Exception&) {
            // not a config of this model: another yaml in the folder
        }
    }
    std::sort(found.begin(), found.end(),
              [](const auto& a, const auto& b) { return a.path < b.path; });
    RADPROBE_CHECK(found.size() <= 1, "model directory ", dir.string(), ": ", found.size(),
                   " SAM 2 config files (", found.front().path.filename().string(), ", ",
                   found[1].path.filename().string(), "): keep the checkpoint's own");
    return found.empty() ? std::nullopt : std::optional<PublisherYaml>(found.front());
}

template <typename T>
T yaml_value(const YAML::Node& node, const char* key, const T& fallback, const fs::path& path) {
    if (!node[key] || node[key].IsNull()) {
        return fallback;
    }
    try {
        return node[key].as<T>();
    } catch (const YAML::Exception&) {
        RADPROBE_CHECK(false, "file ", path.string(), ": ", key, " is not what Hiera takes");
    }
    return fallback;
}

void check_equal(bool ok, const fs::path& path, const char* key, const std::string& weights) {
    RADPROBE_CHECK(ok, "file ", path.string(), ": ", key, " disagrees with the checkpoint's ",
                   weights);
}

/// The trunk's and neck's settings from the publisher's config (Hiera's and FpnNeck's defaults
/// where it leaves them out), checked against what the weights say.
Settings settings_from_yaml(const PublisherYaml& yaml, const FromWeights& w) {
    const fs::path& path = yaml.path;
    const YAML::Node& model = yaml.model;
    const YAML::Node encoder = model["image_encoder"], trunk = encoder["trunk"];
    const YAML::Node neck = encoder["neck"];
    RADPROBE_CHECK(trunk && trunk.IsMap() && neck && neck.IsMap(), "file ", path.string(),
                   ": model.image_encoder needs a trunk and a neck");
    Settings s;
    s.source = path.filename().string();
    check_equal(yaml_value<std::int64_t>(trunk, "embed_dim", 96, path) == w.dims[0], path,
                "embed_dim", "patch embedding width");
    check_equal(
        yaml_value(trunk, "stages", std::vector<std::int64_t>{2, 3, 16, 3}, path) == w.depths, path,
        "stages", "blocks per stage");
    s.num_heads = yaml_value<std::int64_t>(trunk, "num_heads", 1, path);
    s.head_mul = yaml_value<double>(trunk, "head_mul", 2.0, path);
    s.q_pool = yaml_value<std::int64_t>(trunk, "q_pool", 3, path);
    const auto q_stride = yaml_value(trunk, "q_stride", std::vector<std::int64_t>{2, 2}, path);
    RADPROBE_CHECK(q_stride.size() == 2 && q_stride[0] == q_stride[1], "file ", path.string(),
                   ": q_stride must be square");
    s.q_stride = q_stride[0];
    s.global_blocks =
        yaml_value(trunk, "global_att_blocks", std::vector<std::int64_t>{12, 16, 20}, path);
    s.windows = yaml_value(trunk, "window_spec", std::vector<std::int64_t>{8, 4, 14, 7}, path);
    check_equal(!s.windows.empty() && s.windows[0] == w.window0, path, "window_spec",
                "pos_embed_window");
    check_equal(
        yaml_value(trunk, "window_pos_embed_bkg_spatial_size", std::vector<std::int64_t>{14, 14},
                   path) == std::vector<std::int64_t>{w.background_h, w.background_w},
        path, "window_pos_embed_bkg_spatial_size", "pos_embed");
    check_equal(yaml_value<std::int64_t>(neck, "d_model", w.d_model, path) == w.d_model, path,
                "d_model", "neck width");
    RADPROBE_CHECK(
        yaml_value<std::string>(neck, "fpn_interp_model", "bilinear", path) == "nearest" &&
            yaml_value<std::string>(neck, "fuse_type", "sum", path) == "sum",
        "file ", path.string(),
        ": radprobe's neck is the published one (fpn_interp_model nearest, fuse_type "
        "sum)");
    if (neck["fpn_top_down_levels"]) {
        s.top_down = yaml_value(neck, "fpn_top_down_levels", s.top_down, path);
    }
    s.scalp = yaml_value<std::int64_t>(encoder, "scalp", 0, path);
    s.image_size = yaml_value<std::int64_t>(model, "image_size", 1024, path);
    return s;
}

Settings settings_from_table(const FromWeights& w, const fs::path& file) {
    for (const auto& p : published()) {
        if (p.embed_dim == w.dims[0] && p.stages == w.depths) {
            Settings s;
            s.num_heads = p.num_heads;
            s.global_blocks = p.global_blocks;
            s.windows = p.windows;
            s.source = p.name;
            return s;
        }
    }
    RADPROBE_CHECK(false, "file ", file.string(), ": a SAM 2 release checkpoint of width ",
                   w.dims[0],
                   " is not one of the published Hiera sizes (t, s, b+, l); put its "
                   "config .yaml (sam2/configs/...) beside it");
    return {};
}

json to_hf(const FromWeights& w, const Settings& s) {
    std::vector<std::int64_t> heads{s.num_heads};
    while (heads.size() < w.depths.size()) {
        heads.push_back(static_cast<std::int64_t>(double(heads.back()) * s.head_mul));
    }
    const auto stages = static_cast<std::int64_t>(w.depths.size());
    const json backbone = {
        {"model_type", "sam2_hiera_det_model"},
        {"num_channels", w.channels},
        {"hidden_size", w.dims[0]},
        {"blocks_per_stage", w.depths},
        {"embed_dim_per_stage", w.dims},
        {"num_attention_heads_per_stage", heads},
        {"window_size_per_stage", s.windows},
        {"global_attention_blocks", s.global_blocks},
        {"num_query_pool_stages", s.q_pool},
        {"query_stride", {s.q_stride, s.q_stride}},
        {"patch_kernel_size", {7, 7}},
        {"patch_stride", {4, 4}},
        {"patch_padding", {3, 3}},
        {"window_positional_embedding_background_size", {w.background_h, w.background_w}},
        {"mlp_ratio", w.mlp_ratio},
        {"layer_norm_eps", 1e-6},
        {"hidden_act", "gelu"},
        {"image_size", {s.image_size, s.image_size}}};
    return {{"model_type", "sam2_vision_model"},
            {"architectures", {"Sam2VisionModel"}},
            {"num_channels", w.channels},
            {"hidden_act", "gelu"},
            {"layer_norm_eps", 1e-6},
            {"backbone_config", backbone},
            {"backbone_channel_list", std::vector<std::int64_t>(w.dims.rbegin(), w.dims.rend())},
            {"fpn_hidden_size", w.d_model},
            {"fpn_kernel_size", w.fpn_kernel},
            {"fpn_stride", 1},
            {"fpn_padding", 0},
            {"fpn_top_down_levels", s.top_down},
            {"num_feature_levels", stages - s.scalp},
            {"radprobe_settings_from", s.source}};
}

}  // namespace

json sam2_release_config(const ShapeMap& shapes, const fs::path& file) {
    if (!shapes.count(kTrunk + "patch_embed.proj.weight")) {
        return nullptr;
    }
    const FromWeights w = read_weights(shapes, file);
    const auto yaml = publisher_yaml(file.parent_path());
    Settings s;
    try {
        s = yaml ? settings_from_yaml(*yaml, w) : settings_from_table(w, file);
    } catch (const YAML::Exception& e) {
        RADPROBE_CHECK(false, "file ", yaml->path.string(), ": not a readable SAM 2 config (",
                       e.what(), ")");
    }
    return to_hf(w, s);
}

MappedKey sam2_release_key(const std::string& key) {
    static const std::regex neck(R"(^image_encoder\.neck\.convs\.(\d+)\.conv\.(.+)$)");
    static const std::vector<std::pair<std::regex, std::string>> trunk = {
        {std::regex(R"(^patch_embed\.proj\.)"), "patch_embed.projection."},
        {std::regex(R"(^(blocks\.\d+)\.norm1\.)"), "$1.layer_norm1."},
        {std::regex(R"(^(blocks\.\d+)\.norm2\.)"), "$1.layer_norm2."},
        {std::regex(R"(^(blocks\.\d+)\.mlp\.layers\.0\.)"), "$1.mlp.proj_in."},
        {std::regex(R"(^(blocks\.\d+)\.mlp\.layers\.1\.)"), "$1.mlp.proj_out."}};
    std::smatch m;
    if (std::regex_match(key, m, neck)) {
        return {{"neck.convs." + m[1].str() + "." + m[2].str()}};
    }
    if (!key.starts_with(kTrunk)) {
        return {{key}};
    }
    std::string rest = key.substr(kTrunk.size());
    for (const auto& [pattern, replacement] : trunk) {
        rest = std::regex_replace(rest, pattern, replacement);
    }
    return {{"backbone." + rest}};
}

}  // namespace radprobe::encoders::detail
