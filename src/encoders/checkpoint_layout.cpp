// Checkpoint key names → architecture key names (prefix stripping, ignored heads, diagnoses).

#include "checkpoint_layout.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {

namespace {

constexpr std::size_t kExamples = 3;    // names quoted per list in an error
constexpr std::size_t kNameChars = 90;  // a quoted name is cut after this many characters

/// Keys a backbone module may hold in a checkpoint without the architecture using them
/// (HF Dinov2Model/ViTForMaskedImageModeling keep a mask token for masked pre-training).
bool tolerated(const std::string& key) {
    return key == "embeddings.mask_token";
}

std::string first_segment(const std::string& key) {
    return key.substr(0, key.find('.'));
}

std::string quoted(const std::string& name) {
    std::ostringstream os;
    os << '\'' << name.substr(0, kNameChars) << (name.size() > kNameChars ? "…" : "") << '\'';
    return os.str();
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) {
        os << (i ? "," : "") << shape[i];
    }
    os << ']';
    return os.str();
}

/// "n what (e.g. 'a', 'b', 'c')".
std::string counted(const std::vector<std::string>& items, const std::string& what) {
    std::ostringstream os;
    os << items.size() << ' ' << what << " (e.g. ";
    for (std::size_t i = 0; i < std::min(items.size(), kExamples); ++i) {
        os << (i ? ", " : "") << items[i];
    }
    os << (items.size() > kExamples ? ", …)" : ")");
    return os.str();
}

/// Number of expected keys found in the checkpoint under each candidate prefix: for every
/// checkpoint key and every '.' in it, the part after the dot names an expected key.
std::map<std::string, std::size_t> prefix_votes(const ShapeMap& expected,
                                                const ShapeMap& checkpoint) {
    std::map<std::string, std::size_t> votes;
    for (const auto& [key, _] : checkpoint) {
        if (expected.count(key)) {
            ++votes[""];
        }
        for (std::size_t dot = key.find('.'); dot != std::string::npos;
             dot = key.find('.', dot + 1)) {
            if (expected.count(key.substr(dot + 1))) {
                ++votes[key.substr(0, dot + 1)];
            }
        }
    }
    return votes;
}

/// The prefix that explains most expected keys (ties: the shorter one).
std::pair<std::string, std::size_t> best_prefix(const ShapeMap& expected,
                                                const ShapeMap& checkpoint) {
    std::pair<std::string, std::size_t> best{"", 0};
    for (const auto& [prefix, n] : prefix_votes(expected, checkpoint)) {
        if (n > best.second || (n == best.second && prefix.size() < best.first.size())) {
            best = {prefix, n};
        }
    }
    return best;
}

/// "all 200 keys carry the prefix 'vit.'" when every checkpoint key shares a first segment.
std::string common_prefix_note(const ShapeMap& checkpoint, const std::string& stripped) {
    if (checkpoint.empty()) {
        return "";
    }
    const std::string head = first_segment(checkpoint.begin()->first);
    for (const auto& [key, _] : checkpoint) {
        const auto dot = key.find('.');
        const bool list_index = dot != std::string::npos && dot + 1 < key.size() &&
                                std::isdigit(static_cast<unsigned char>(key[dot + 1]));
        if (dot == std::string::npos || first_segment(key) != head || list_index) {
            return "";  // no common prefix, or a module list ("blocks.0.") rather than a prefix
        }
    }
    if (stripped == str_cat(head, ".")) {
        return "";
    }
    return str_cat("all ", checkpoint.size(), " checkpoint keys carry the prefix ",
                   quoted(str_cat(head, ".")));
}

struct Mismatch {
    std::vector<std::string> missing, unexpected, misshaped;
    bool empty() const { return missing.empty() && unexpected.empty() && misshaped.empty(); }
};

[[noreturn]] void throw_mismatch(const Mismatch& m, const ShapeMap& expected,
                                 const ShapeMap& checkpoint, const std::string& prefix,
                                 std::size_t found, const std::string& source,
                                 const std::string& arch) {
    std::ostringstream msg;
    msg << "checkpoint " << source << " does not match the " << arch
        << " architecture its config describes: " << found << " of " << expected.size()
        << " backbone keys found";
    if (!prefix.empty()) {
        msg << " under the prefix " << quoted(prefix);
    }
    if (!m.missing.empty()) {
        msg << "; " << counted(m.missing, "missing");
    }
    if (!m.unexpected.empty()) {
        msg << "; " << counted(m.unexpected, "unexpected inside the backbone");
    }
    if (!m.misshaped.empty()) {
        msg << "; " << counted(m.misshaped, "mis-shaped");
    }
    std::vector<std::string> keys;
    for (const auto& [key, _] : checkpoint) {
        keys.push_back(key);
    }
    const std::string style = recognise_key_style(keys);
    const std::string common = common_prefix_note(checkpoint, prefix);
    if (!common.empty()) {
        msg << "; " << common;
    }
    if (!style.empty()) {
        msg << "; these are " << style;
    }
    throw InputError(msg.str());
}

}  // namespace

LayoutMatch resolve_layout(const ShapeMap& expected, const ShapeMap& checkpoint,
                           const std::string& source, const std::string& arch) {
    const auto [prefix, found] = best_prefix(expected, checkpoint);
    std::set<std::string> backbone_modules;
    for (const auto& [key, _] : expected) {
        backbone_modules.insert(first_segment(key));
    }
    LayoutMatch match;
    match.prefix = prefix;
    Mismatch m;
    for (const auto& [key, shape] : checkpoint) {
        const bool under = key.compare(0, prefix.size(), prefix) == 0;
        const std::string rest = under ? key.substr(prefix.size()) : key;
        const auto it = expected.find(rest);
        if (under && it != expected.end()) {
            match.source[rest] = key;
            if (shape != it->second) {
                m.misshaped.push_back(str_cat(quoted(rest), " ", shape_text(shape), " vs expected ",
                                              shape_text(it->second)));
            }
        } else if (under && backbone_modules.count(first_segment(rest)) && !tolerated(rest)) {
            m.unexpected.push_back(quoted(key));
        } else {
            match.ignored.push_back(key);
        }
    }
    for (const auto& [key, _] : expected) {
        if (!match.source.count(key)) {
            m.missing.push_back(quoted(str_cat(prefix, key)));
        }
    }
    if (!m.empty()) {
        throw_mismatch(m, expected, checkpoint, prefix, found, source, arch);
    }
    return match;
}

std::string summarize_keys(const std::vector<std::string>& keys) {
    std::map<std::string, std::size_t> groups;
    for (const auto& key : keys) {
        groups[key.find('.') == std::string::npos ? key : str_cat(first_segment(key), ".*")]++;
    }
    std::string s;
    std::size_t shown = 0;
    for (const auto& [group, n] : groups) {
        if (shown++ == 6) {
            s += str_cat(", +", groups.size() - 6, " more groups");
            break;
        }
        s += str_cat(s.empty() ? "" : ", ", group, " (", n, n == 1 ? " tensor)" : " tensors)");
    }
    return s;
}

std::string recognise_key_style(const std::vector<std::string>& keys) {
    auto any = [&](const char* needle) {
        return std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
            return k.find(needle) != std::string::npos;
        });
    };
    struct Style {
        const char* needle;
        const char* description;
    };
    static const Style styles[] = {
        {"visual.transformer.resblocks.",
         "open_clip / OpenAI CLIP key names (visual.transformer.resblocks.N): an open_clip "
         "checkpoint, read with its open_clip_config.json (the activation and head count are "
         "not in the weights: put {\"model_cfg\": <open_clip's model_configs/NAME.json>} beside "
         "it)"},
        {"visual.trunk.",
         "open_clip timm-tower key names (visual.trunk.*): an open_clip checkpoint, read with "
         "its open_clip_config.json"},
        {"relative_position_bias_table",
         any("encoder.layers.") ? "Hugging Face Swin key names (encoder.layers.N.blocks.M)"
                                : "timm Swin key names (layers.N.blocks.M.attn): a timm "
                                  "checkpoint"},
        {"blocks.0.attn.qkv.", "timm ViT key names (blocks.N.attn.qkv): a timm checkpoint"},
        {"layer1.0.conv1.weight",
         "torchvision ResNet key names (layer1.0.conv1): a torchvision checkpoint"},
        {"encoder.layer.0.attention.attention.query.",
         "Hugging Face ViT/DINOv2 key names (encoder.layer.N.attention.attention.query)"},
        {"vision_model.encoder.layers.",
         "Hugging Face CLIP/SigLIP key names (vision_model.encoder.layers.N)"},
        {"encoder.stages.", "Hugging Face ResNet key names (embedder, encoder.stages.N)"},
        {"layer.0.attention.q_proj.", "Hugging Face DINOv3 key names (layer.N.attention.q_proj)"},
    };
    for (const auto& style : styles) {
        if (any(style.needle)) {
            return style.description;
        }
    }
    return "";
}

std::string torchvision_resnet_key(const std::string& key) {
    static const std::regex block(R"(^(.*?)layer(\d+)\.(\d+)\.(conv|bn)(\d)\.(.+)$)");
    static const std::regex shortcut(R"(^(.*?)layer(\d+)\.(\d+)\.downsample\.([01])\.(.+)$)");
    static const std::regex stem(R"(^(.*?)(conv1|bn1)\.(.+)$)");
    auto part = [](bool conv) { return conv ? "convolution." : "normalization."; };
    auto stage = [](const std::string& s, const std::string& b) {
        return str_cat("encoder.stages.", std::stoi(s) - 1, ".layers.", b, ".");
    };
    std::smatch m;
    if (std::regex_match(key, m, block)) {
        return str_cat(m[1].str(), stage(m[2], m[3]), "layer.", std::stoi(m[5]) - 1, ".",
                       part(m[4] == "conv"), m[6].str());
    }
    if (std::regex_match(key, m, shortcut)) {
        return str_cat(m[1].str(), stage(m[2], m[3]), "shortcut.", part(m[4] == "0"), m[5].str());
    }
    if (std::regex_match(key, m, stem)) {
        return str_cat(m[1].str(), "embedder.embedder.", part(m[2] == "conv1"), m[3].str());
    }
    return key;
}

namespace {

/// `rest` (a key below some prefix) renamed by the first entry of `table` whose name is `rest`
/// or `rest` minus its last ".segment" (that segment kept); nullopt when none matches.
std::optional<std::string> rename_module(const std::string& rest,
                                         const std::map<std::string, std::string>& table) {
    if (const auto it = table.find(rest); it != table.end()) {
        return it->second;
    }
    const auto dot = rest.rfind('.');
    if (dot != std::string::npos) {
        if (const auto it = table.find(rest.substr(0, dot)); it != table.end()) {
            return it->second + rest.substr(dot);
        }
    }
    return std::nullopt;
}

}  // namespace

MappedKey timm_swin_key(const std::string& key, bool downsample_at_end) {
    static const std::regex block(R"(^layers\.(\d+)\.blocks\.(\d+)\.(.+)$)");
    static const std::regex merge(R"(^layers\.(\d+)\.downsample\.(.+)$)");
    static const std::map<std::string, std::string> in_block = {
        {"norm1", "layernorm_before"},
        {"attn.proj", "attention.output.dense"},
        {"attn.relative_position_bias_table", "attention.self.relative_position_bias_table"},
        {"attn.relative_position_index", "attention.self.relative_position_index"},
        {"norm2", "layernorm_after"},
        {"mlp.fc1", "intermediate.dense"},
        {"mlp.fc2", "output.dense"}};
    static const std::map<std::string, std::string> top = {
        {"patch_embed.proj", "embeddings.patch_embeddings.projection"},
        {"patch_embed.norm", "embeddings.norm"},
        {"norm", "layernorm"}};
    std::smatch m;
    if (std::regex_match(key, m, block)) {
        const std::string base =
            str_cat("encoder.layers.", m[1].str(), ".blocks.", m[2].str(), ".");
        const std::string rest = m[3].str();
        if (rest == "attn_mask") {
            return {};
        }
        if (rest == "attn.qkv.weight" || rest == "attn.qkv.bias") {
            const std::string kind = rest == "attn.qkv.weight" ? "weight" : "bias";
            return {{base + "attention.self.query." + kind, base + "attention.self.key." + kind,
                     base + "attention.self.value." + kind}};
        }
        if (const auto renamed = rename_module(rest, in_block)) {
            return {{base + *renamed}};
        }
        return {{key}};
    }
    if (std::regex_match(key, m, merge)) {
        const int stage = std::stoi(m[1].str()) - (downsample_at_end ? 0 : 1);
        return {{str_cat("encoder.layers.", stage, ".downsample.", m[2].str())}};
    }
    if (const auto renamed = rename_module(key, top)) {
        return {{*renamed}};
    }
    return {{key}};
}

MappedKey open_clip_vit_key(const std::string& key) {
    static const std::regex block(R"(^visual\.transformer\.resblocks\.(\d+)\.(.+)$)");
    static const std::map<std::string, std::string> in_block = {
        {"ln_1", "layer_norm1"},
        {"attn.out_proj", "self_attn.out_proj"},
        {"ln_2", "layer_norm2"},
        {"mlp.c_fc", "mlp.fc1"},
        {"mlp.c_proj", "mlp.fc2"}};
    static const std::map<std::string, std::string> top = {
        {"conv1", "vision_model.embeddings.patch_embedding"},
        {"class_embedding", "vision_model.embeddings.class_embedding"},
        {"positional_embedding", "vision_model.embeddings.position_embedding.weight"},
        {"ln_pre", "vision_model.pre_layrnorm"},
        {"ln_post", "vision_model.post_layernorm"}};
    std::smatch m;
    if (std::regex_match(key, m, block)) {
        const std::string base = str_cat("vision_model.encoder.layers.", m[1].str(), ".");
        const std::string rest = m[2].str();
        if (rest == "attn.in_proj_weight" || rest == "attn.in_proj_bias") {
            const std::string kind = rest == "attn.in_proj_weight" ? "weight" : "bias";
            return {{base + "self_attn.q_proj." + kind, base + "self_attn.k_proj." + kind,
                     base + "self_attn.v_proj." + kind}};
        }
        if (const auto renamed = rename_module(rest, in_block)) {
            return {{base + *renamed}};
        }
        return {{key}};
    }
    if (!key.starts_with("visual.")) {
        return {{key}};
    }
    const std::string rest = key.substr(7);
    if (rest == "proj") {
        return {{"visual_projection.weight"}, true};
    }
    if (rest.starts_with("attn_pool.")) {
        return {{"vision_model." + rest}};
    }
    if (const auto renamed = rename_module(rest, top)) {
        return {{*renamed}};
    }
    return {{key}};
}

}  // namespace radprobe::encoders::detail
