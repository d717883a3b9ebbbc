// VMamba's published layout (vmamba_layout.hpp): the config a lone VSSM state dict implies, the
// config.json reader and the evaluation transform. No LibTorch.
//
// Key tree of VSSM (classification/models/vmamba.py at 2ed52ea, norm_layer "ln2d", patchembed v2,
// downsample v3, forward_type v05_noz):
//   patch_embed.{0 (Conv2d 3x3/2, C0/2), 2 (LayerNorm2d), 5 (Conv2d 3x3/2, C0), 7 (LayerNorm2d)}
//   layers.S.blocks.B.{norm, op.{in_proj, conv2d, x_proj_weight, dt_projs_weight, dt_projs_bias,
//       A_logs, Ds, out_norm, out_proj}, norm2, mlp.{fc1, fc2}}
//   layers.S.downsample.{1 (Conv2d 3x3/2), 3 (LayerNorm2d)} for every stage but the last
//   classifier.{norm, head}
// The forward types the weights cannot tell apart (v05_noz vs v052d_noz, _oact, _no32) compute
// differently; every released v2 checkpoint is v05_noz
// (classification/configs/vssm/vmambav2*.yaml), so a VSSM state dict of this shape is read as
// v05_noz.

#include "vmamba_layout.hpp"

#include <cmath>
#include <optional>
#include <sstream>

#include "config_fields.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

namespace fs = std::filesystem;
using Shape = std::vector<std::int64_t>;

constexpr std::int64_t kDirections = 4;      // the cross scan's four scan orders
constexpr std::int64_t kReleasedSize = 224;  // DATA.IMG_SIZE of every released classifier
constexpr const char* kSupported =
    "radprobe reads the released VMamba v2 layout: forward_type v05_noz, LayerNorm2d, patch "
    "embedding v2, downsample v3";

/// The prefix before `anchor` in the first key ending with it.
std::optional<std::string> prefix_of(const ShapeMap& shapes, const std::string& anchor) {
    for (const auto& [name, _] : shapes) {
        if (name.size() >= anchor.size() &&
            name.compare(name.size() - anchor.size(), anchor.size(), anchor) == 0) {
            return name.substr(0, name.size() - anchor.size());
        }
    }
    return std::nullopt;
}

/// The checkpoint's tensors under one prefix; every failure an InputError naming the file.
struct VmambaKeys {
    const ShapeMap& shapes;
    std::string prefix;
    const fs::path& file;

    bool has(const std::string& key) const { return shapes.count(prefix + key) > 0; }

    const Shape& shape(const std::string& key, std::size_t dims) const {
        const auto it = shapes.find(prefix + key);
        RADPROBE_CHECK(it != shapes.end(), "file ", file.string(), ": a VMamba checkpoint without ",
                       prefix, key, " (", kSupported, ")");
        RADPROBE_CHECK(it->second.size() == dims, "file ", file.string(), ": VMamba tensor ",
                       prefix, key, " has ", it->second.size(), " dimensions, expected ", dims);
        return it->second;
    }

    void refuse_if(bool bad, const std::string& what) const {
        RADPROBE_CHECK(!bad, "file ", file.string(), ": a VMamba checkpoint with ", what,
                       " is not supported (", kSupported, ")");
    }

    void expect(bool ok, const std::string& what) const {
        RADPROBE_CHECK(ok, "file ", file.string(), ": inconsistent VMamba checkpoint: ", what);
    }
};

/// A Linear2d weight: [out, in], or [out, in, 1, 1] (a 1x1 convolution's; `four_d` says which).
Shape linear2d(const VmambaKeys& k, const std::string& key, bool& four_d) {
    const auto it = k.shapes.find(k.prefix + key);
    four_d = it != k.shapes.end() && it->second.size() == 4;
    const Shape& s = k.shape(key, four_d ? 4 : 2);
    k.expect(!four_d || (s[2] == 1 && s[3] == 1), key + " is 4-D but not a 1x1 kernel");
    return {s[0], s[1]};
}

/// What one VSSBlock's shapes say.
struct BlockShapes {
    std::int64_t dim = 0, d_inner = 0, d_state = 0, dt_rank = 0, conv = 0, hidden = 0;
    bool linear_4d = false;
};

/// The SS2D's scan parameters: d_inner, d_state, dt_rank, and no x_proj bias.
void read_scan(const VmambaKeys& k, const std::string& op, BlockShapes& b) {
    const auto& a = k.shape(op + "A_logs", 2);
    k.expect(a[0] % kDirections == 0, op + "A_logs rows are not 4 directions x d_inner");
    b.d_inner = a[0] / kDirections;
    b.d_state = a[1];
    const auto& dt = k.shape(op + "dt_projs_weight", 3);
    k.expect(dt[0] == kDirections && dt[1] == b.d_inner,
             op + "dt_projs_weight is not [4, d_inner, dt_rank]");
    b.dt_rank = dt[2];
    const auto& x = k.shape(op + "x_proj_weight", 3);
    k.expect(x == Shape{kDirections, b.dt_rank + 2 * b.d_state, b.d_inner},
             op + "x_proj_weight is not [4, dt_rank + 2 d_state, d_inner]");
    k.expect(k.shape(op + "Ds", 1)[0] == a[0] &&
                 k.shape(op + "dt_projs_bias", 2) == Shape{kDirections, b.d_inner},
             op + "Ds / dt_projs_bias do not match A_logs");
    k.refuse_if(k.has(op + "x_proj_bias"), "an x_proj bias");
}

/// The SS2D's projections, depthwise convolution and out_norm.
void read_projections(const VmambaKeys& k, const std::string& op, BlockShapes& b) {
    bool out_4d = false;
    const Shape in = linear2d(k, op + "in_proj.weight", b.linear_4d);
    k.refuse_if(in[0] == 2 * b.d_inner,
                "a gated in_proj of 2 x d_inner outputs (a forward_type without _noz)");
    k.expect(in == Shape{b.d_inner, b.dim}, op + "in_proj.weight is not [d_inner, dim]");
    k.refuse_if(k.has(op + "in_proj.bias") || k.has(op + "out_proj.bias"), "projection biases");
    k.expect(linear2d(k, op + "out_proj.weight", out_4d) == Shape{b.dim, b.d_inner},
             op + "out_proj.weight is not [dim, d_inner]");
    k.expect(out_4d == b.linear_4d, "in_proj and out_proj weights stored in different shapes");
    k.refuse_if(!k.has(op + "conv2d.weight"), "no depthwise convolution (ssm_conv 1)");
    k.refuse_if(k.has(op + "conv2d.bias"), "a depthwise convolution bias (ssm_conv_bias True)");
    const auto& conv = k.shape(op + "conv2d.weight", 4);
    k.expect(conv[0] == b.d_inner && conv[1] == 1 && conv[2] == conv[3],
             op + "conv2d.weight is not a square depthwise kernel [d_inner, 1, k, k]");
    k.refuse_if(conv[2] % 2 == 0,
                "an even depthwise kernel (ssm_conv " + std::to_string(conv[2]) + ")");
    b.conv = conv[2];
    k.refuse_if(!k.has(op + "out_norm.weight"),
                "an out_norm other than LayerNorm2d (a forward_type suffix _on*)");
    k.expect(k.shape(op + "out_norm.weight", 1)[0] == b.d_inner,
             op + "out_norm is not d_inner wide");
}

BlockShapes read_block(const VmambaKeys& k, const std::string& block) {
    BlockShapes b;
    b.dim = k.shape(block + "norm.weight", 1)[0];
    read_scan(k, block + "op.", b);
    read_projections(k, block + "op.", b);
    k.refuse_if(!k.has(block + "mlp.fc1.weight"), "blocks without an MLP (mlp_ratio 0)");
    bool fc1_4d = false, fc2_4d = false;
    const Shape fc1 = linear2d(k, block + "mlp.fc1.weight", fc1_4d);
    const Shape fc2 = linear2d(k, block + "mlp.fc2.weight", fc2_4d);
    k.refuse_if(fc2[1] != fc1[0], "a gated MLP (gmlp)");
    k.expect(fc1[1] == b.dim && fc2[0] == b.dim && fc1_4d == b.linear_4d && fc2_4d == b.linear_4d,
             block + "mlp does not match the block");
    b.hidden = fc1[0];
    return b;
}

/// The stem (patch embedding v2 with its norms): returns [C0, input channels].
Shape read_stem(const VmambaKeys& k) {
    k.refuse_if(k.has("patch_embed.2.running_mean"), "BatchNorm layers (norm_layer bn)");
    k.refuse_if(!k.has("patch_embed.5.weight"),
                "patch embedding v1 (one patch_size x patch_size convolution)");
    k.refuse_if(!k.has("patch_embed.2.weight") || !k.has("patch_embed.7.weight"),
                "no patch embedding norms (patch_norm False)");
    k.refuse_if(k.has("pos_embed"), "a position embedding (posembed True)");
    const auto& first = k.shape("patch_embed.0.weight", 4);
    const auto& second = k.shape("patch_embed.5.weight", 4);
    k.refuse_if(first[2] != 3 || first[3] != 3 || second[2] != 3 || second[3] != 3,
                "a patch embedding kernel other than 3x3 (patch_size other than 4)");
    k.expect(second[1] == first[0], "patch_embed.5 does not read patch_embed.0's channels");
    return {second[0], first[1]};
}

/// Blocks per stage (layers.S.blocks.B.norm.weight).
std::vector<std::int64_t> count_blocks(const VmambaKeys& k) {
    std::vector<std::int64_t> depths;
    for (int s = 0; k.has(str_cat("layers.", s, ".blocks.0.norm.weight")); ++s) {
        std::int64_t n = 0;
        while (k.has(str_cat("layers.", s, ".blocks.", n, ".norm.weight"))) {
            ++n;
        }
        depths.push_back(n);
    }
    return depths;
}

/// Downsample v3 between stages (Conv2d 3x3 stride 2 + LayerNorm2d), none after the last.
void check_downsamples(const VmambaKeys& k, const std::vector<BlockShapes>& stages) {
    for (std::size_t s = 0; s < stages.size(); ++s) {
        const std::string d = str_cat("layers.", s, ".downsample.");
        k.refuse_if(k.has(d + "reduction.weight"), "downsample v1 (patch merging)");
        if (s + 1 == stages.size()) {
            k.expect(!k.has(d + "1.weight"), d + "1 after the last stage");
            continue;
        }
        const auto& w = k.shape(d + "1.weight", 4);
        k.refuse_if(w[2] != 3 || w[3] != 3, "downsample v2 (2x2 convolutions)");
        k.expect(w[0] == stages[s + 1].dim && w[1] == stages[s].dim,
                 d + "1 does not map stage " + std::to_string(s) + " to the next stage's width");
    }
}

/// "auto" when every stage's dt_rank is ceil(dim / 16) (the publisher's default), else the one
/// rank they share.
nlohmann::json dt_rank_of(const VmambaKeys& k, const std::vector<BlockShapes>& stages) {
    bool is_auto = true, same = true;
    for (const auto& b : stages) {
        is_auto = is_auto && b.dt_rank == (b.dim + 15) / 16;
        same = same && b.dt_rank == stages.front().dt_rank;
    }
    k.refuse_if(!is_auto && !same, "per-stage dt_ranks that are neither \"auto\" nor one value");
    return is_auto ? nlohmann::json("auto") : nlohmann::json(stages.front().dt_rank);
}

/// The one ratio r with int(r · dim) == width at every stage (`what`: the ratio's name).
double stage_ratio(const VmambaKeys& k, const std::vector<BlockShapes>& stages,
                   std::int64_t BlockShapes::*width, const char* what) {
    const double r =
        static_cast<double>(stages.front().*width) / static_cast<double>(stages.front().dim);
    for (const auto& b : stages) {
        k.refuse_if(static_cast<std::int64_t>(r * static_cast<double>(b.dim)) != b.*width,
                    str_cat("stages of different ", what));
    }
    return r;
}

/// The first block of every stage, and the facts all stages must share.
std::vector<BlockShapes> read_stages(const VmambaKeys& k, const std::vector<std::int64_t>& depths) {
    std::vector<BlockShapes> stages;
    for (std::size_t s = 0; s < depths.size(); ++s) {
        stages.push_back(read_block(k, str_cat("layers.", s, ".blocks.0.")));
        const auto& b = stages.back();
        const auto& f = stages.front();
        k.refuse_if(b.d_state != f.d_state || b.conv != f.conv,
                    "stages of different d_state or ssm_conv");
        k.expect(b.linear_4d == f.linear_4d, "projection weights stored in different shapes");
    }
    return stages;
}

}  // namespace

nlohmann::json vmamba_config(const ShapeMap& shapes, const fs::path& file) {
    RADPROBE_CHECK(
        !prefix_of(shapes, "layers.0.blocks.0.self_attention.A_logs"), "file ", file.string(),
        ": a VMamba v0/v1 checkpoint (self_attention keys) is not supported (", kSupported, ")");
    const auto prefix = prefix_of(shapes, "layers.0.blocks.0.op.A_logs");
    if (!prefix) {
        return nullptr;
    }
    const VmambaKeys k{shapes, *prefix, file};
    k.refuse_if(!k.has("classifier.norm.weight"),
                "no classifier.norm (the backbone of a detection/segmentation release)");
    const Shape stem = read_stem(k);
    const auto depths = count_blocks(k);
    k.expect(!depths.empty(), "no layers.0.blocks.0.norm");
    const auto stages = read_stages(k, depths);
    check_downsamples(k, stages);
    k.expect(stem[0] == stages.front().dim, "patch_embed.5 is not as wide as stage 0");
    nlohmann::json dims = nlohmann::json::array();
    for (const auto& b : stages) {
        dims.push_back(b.dim);
    }
    const auto head = shapes.find(*prefix + "classifier.head.weight");
    nlohmann::json j = {
        {"model_type", "vmamba"},
        {"architectures", {"VSSM"}},
        {"num_channels", stem[1]},
        {"hidden_act", "gelu"},
        {"patch_size", 4},
        {"dims", dims},
        {"depths", depths},
        {"ssm_d_state", stages.front().d_state},
        {"ssm_ratio", stage_ratio(k, stages, &BlockShapes::d_inner, "ssm_ratio")},
        {"ssm_dt_rank", dt_rank_of(k, stages)},
        {"ssm_conv", stages.front().conv},
        {"ssm_conv_bias", false},
        {"forward_type", "v05_noz"},
        {"mlp_ratio", stage_ratio(k, stages, &BlockShapes::hidden, "mlp_ratio")},
        {"norm_layer", "ln2d"},
        {"patchembed_version", "v2"},
        {"downsample_version", "v3"},
        {"num_classes", head == shapes.end() || head->second.empty() ? 0 : head->second[0]},
        // Not in the weights: the released classifiers' DATA.IMG_SIZE.
        {"image_size", kReleasedSize}};
    if (stages.front().linear_4d) {
        j["radprobe_linear_weights_4d"] = true;
    }
    return j;
}

namespace {

/// A string field that must hold the one value radprobe computes (`fallback` when absent).
void require_value(const nlohmann::json& j, const char* key, const std::string& value,
                   const fs::path& path) {
    const auto v = get_optional<std::string>(j, key, value, path);
    RADPROBE_CHECK(v == value, "file ", path.string(), ": ", key, " \"", v, "\" is not supported (",
                   kSupported, ")");
}

/// ssm_dt_rank: "auto" (ceil(dim / 16) per stage) or one positive int.
std::vector<std::int64_t> read_dt_ranks(const nlohmann::json& j, const ModelConfig& c,
                                        const fs::path& path) {
    std::vector<std::int64_t> ranks;
    const bool is_auto = !j.contains("ssm_dt_rank") || j["ssm_dt_rank"].is_null() ||
                         (j["ssm_dt_rank"].is_string() && j["ssm_dt_rank"] == "auto");
    const std::int64_t fixed =
        is_auto ? 0
                : positive(get_required<std::int64_t>(j, "ssm_dt_rank", path), "ssm_dt_rank", path);
    for (const auto dim : c.stage_widths) {
        ranks.push_back(is_auto ? (dim + 15) / 16 : fixed);
    }
    return ranks;
}

/// int(ratio · width) per stage, each > 0.
std::vector<std::int64_t> widths_of(double ratio, const ModelConfig& c, const char* key,
                                    const fs::path& path) {
    std::vector<std::int64_t> out;
    for (const auto dim : c.stage_widths) {
        out.push_back(static_cast<std::int64_t>(ratio * static_cast<double>(dim)));
        RADPROBE_CHECK(ratio > 0 && out.back() > 0, "file ", path.string(), ": key \"", key,
                       "\" = ", ratio, " gives a stage of width ", out.back());
    }
    return out;
}

/// The SS2D and MLP fields (absent keys: the released models' values).
void read_ssm_fields(const nlohmann::json& j, const fs::path& path, ModelConfig& c) {
    auto& v = c.vmamba;
    v.d_state =
        positive(get_optional<std::int64_t>(j, "ssm_d_state", 1, path), "ssm_d_state", path);
    v.ssm_ratio = get_optional<double>(j, "ssm_ratio", 1.0, path);
    v.conv = positive(get_optional<std::int64_t>(j, "ssm_conv", 3, path), "ssm_conv", path);
    RADPROBE_CHECK(v.conv % 2 == 1 && v.conv > 1, "file ", path.string(), ": ssm_conv ", v.conv,
                   " is not supported (an odd depthwise kernel of 3 or more)");
    RADPROBE_CHECK(!get_optional<bool>(j, "ssm_conv_bias", false, path), "file ", path.string(),
                   ": ssm_conv_bias true is not supported (", kSupported, ")");
    v.d_inner = widths_of(v.ssm_ratio, c, "ssm_ratio", path);
    v.dt_ranks = read_dt_ranks(j, c, path);
    c.mlp_ratio = get_optional<double>(j, "mlp_ratio", 4.0, path);
    v.mlp_hidden = widths_of(c.mlp_ratio, c, "mlp_ratio", path);
    v.num_classes = get_optional<std::int64_t>(j, "num_classes", 0, path);
    RADPROBE_CHECK(v.num_classes >= 0, "file ", path.string(), ": num_classes must be >= 0");
    v.linear_weights_4d = get_optional<bool>(j, "radprobe_linear_weights_4d", false, path);
}

}  // namespace

void read_vmamba(const nlohmann::json& j, const fs::path& path, ModelConfig& c) {
    require_value(j, "forward_type", "v05_noz", path);
    require_value(j, "norm_layer", "ln2d", path);
    require_value(j, "patchembed_version", "v2", path);
    require_value(j, "downsample_version", "v3", path);
    RADPROBE_CHECK(get_optional<std::int64_t>(j, "patch_size", 4, path) == 4, "file ",
                   path.string(), ": patch_size other than 4 is not supported (", kSupported, ")");
    c.stage_widths = positive_list(j, "dims", path);
    c.depths = positive_list(j, "depths", path);
    RADPROBE_CHECK(c.depths.size() == c.stage_widths.size(), "file ", path.string(),
                   ": \"dims\" and \"depths\" have different lengths");
    read_ssm_fields(j, path, c);
    const auto stages = static_cast<std::int64_t>(c.depths.size());
    c.has_cls_token = false;
    c.layer_norm_eps = 1e-5;  // LayerNorm2d = nn.LayerNorm's default
    c.embedding_size = c.stage_widths.front();
    c.embed_patch_size = 4;
    c.patch_size = c.embed_patch_size << (stages - 1);
    c.hidden_size = c.stage_widths.back();
    c.num_hidden_layers = stages;
    c.num_attention_heads = 1;
    c.image_size = positive(get_optional<std::int64_t>(j, "image_size", kReleasedSize, path),
                            "image_size", path);
}

preprocess::PreprocessConfig vmamba_preprocess(const ModelConfig& model) {
    preprocess::PreprocessConfig c;
    c.processor_type = "torchvision (VMamba evaluation transform)";
    c.shortest_edge =
        static_cast<std::int64_t>(256.0 / 224.0 * static_cast<double>(model.image_size));
    c.resample = preprocess::Resample::kBicubic;
    c.do_center_crop = true;
    c.crop_height = c.crop_width = model.image_size;
    c.torchvision_crop = true;
    return c;
}

std::string vmamba_summary(const ModelConfig& c) {
    const auto& v = c.vmamba;
    std::ostringstream os;
    auto list = [&](const std::vector<std::int64_t>& x) {
        os << "[";
        for (std::size_t i = 0; i < x.size(); ++i) {
            os << (i ? "," : "") << x[i];
        }
        os << "]";
    };
    os << "SS2D v05_noz (4-direction cross scan), d_state " << v.d_state << ", d_inner ";
    list(v.d_inner);
    os << ", dt_rank ";
    list(v.dt_ranks);
    os << ", depthwise " << v.conv << "x" << v.conv << ", MLP ";
    list(v.mlp_hidden);
    if (c.weights_layout == "vmamba") {
        os << "; native size " << c.image_size
           << " px: the released models' DATA.IMG_SIZE (not in the weights)";
    }
    return os.str();
}

}  // namespace radprobe::encoders::detail
