// The experiment config of `radprobe run`: YAML → ExperimentConfig, every key validated before
// any work (docs/config.md is the reference of every key; keep the two in step).

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <regex>
#include <set>

#include "radprobe/bench/experiment.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/heads/heads.hpp"
#include "runner_internal.hpp"

#ifdef RADPROBE_HAVE_ANALYSIS
#include "radprobe/analysis/analysis.hpp"
#endif

namespace radprobe::bench {

namespace fs = std::filesystem;
using nlohmann::json;

std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        prev[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string nearest_key(const std::string& key, const std::vector<std::string>& candidates) {
    std::string best;
    std::size_t best_d = std::numeric_limits<std::size_t>::max();
    for (const auto& c : candidates) {
        const std::size_t d = edit_distance(key, c);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    // A suggestion only when it is plausibly a typo (at most about half the word changed).
    if (best.empty() || best_d > std::max<std::size_t>(2, std::max(key.size(), best.size()) / 2)) {
        return "";
    }
    return best;
}

std::vector<std::string> known_adaptations() {
    return {"linear",   "knn",     "attention",    "mlp",
            "finetune", "segment", "cnn_baseline", "unet_baseline"};
}

std::vector<std::string> known_analyses() {
    return {"perturb", "lesions", "subgroups", "shortcut"};
}

namespace {

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        out += (i ? sep : "") + items[i];
    }
    return out;
}

// Reads YAML with locations: every error is "FILE:LINE:COL: key.path: reason".
class Reader {
public:
    explicit Reader(fs::path file) : file_(std::move(file)) {}

    [[noreturn]] void fail(const YAML::Node& at, const std::string& path,
                           const std::string& reason) const {
        fail_mark(at.IsDefined() ? at.Mark() : YAML::Mark::null_mark(), path, reason);
    }
    [[noreturn]] void fail_mark(const YAML::Mark& mark, const std::string& path,
                                const std::string& reason) const {
        std::string where = file_.string();
        if (mark.line >= 0) {
            where += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
        }
        throw InputError(where + ": " + (path.empty() ? "" : path + ": ") + reason);
    }

    // Unknown keys are errors naming the nearest valid key and listing the valid ones.
    void check_keys(const YAML::Node& map, const std::string& path,
                    const std::vector<std::string>& valid) const {
        if (!map.IsMap()) {
            return;
        }
        for (auto it = map.begin(); it != map.end(); ++it) {
            const std::string key = it->first.Scalar();
            if (std::find(valid.begin(), valid.end(), key) != valid.end()) {
                continue;
            }
            const std::string near = nearest_key(key, valid);
            fail(it->first, sub(path, key),
                 "unknown key" + (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                     "; valid keys here: " + join(valid));
        }
    }

    void require_map(const YAML::Node& n, const std::string& path) const {
        if (!n.IsMap()) {
            fail(n, path, "expected a mapping (key: value lines), got " + kind(n));
        }
    }

    static std::string sub(const std::string& path, const std::string& key) {
        return path.empty() ? key : path + "." + key;
    }
    static std::string kind(const YAML::Node& n) {
        if (n.IsMap()) {
            return "a mapping";
        }
        if (n.IsSequence()) {
            return "a list";
        }
        if (n.IsNull()) {
            return "nothing";
        }
        return "'" + n.Scalar() + "'";
    }

    std::string get_string(const YAML::Node& n, const std::string& path) const {
        if (!n.IsScalar()) {
            fail(n, path, "expected a text value, got " + kind(n));
        }
        return n.Scalar();
    }
    long long get_int(const YAML::Node& n, const std::string& path, long long lo,
                      long long hi) const {
        if (!n.IsScalar()) {
            fail(n, path, "expected an integer, got " + kind(n));
        }
        long long v = 0;
        try {
            v = n.as<long long>();
        } catch (const YAML::Exception&) {
            fail(n, path, "expected an integer, got '" + n.Scalar() + "'");
        }
        if (v < lo || v > hi) {
            fail(n, path,
                 "must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
                     std::to_string(v));
        }
        return v;
    }
    double get_double(const YAML::Node& n, const std::string& path, double lo, double hi,
                      bool open_lo = false) const {
        if (!n.IsScalar()) {
            fail(n, path, "expected a number, got " + kind(n));
        }
        double v = 0;
        try {
            v = n.as<double>();
        } catch (const YAML::Exception&) {
            fail(n, path, "expected a number, got '" + n.Scalar() + "'");
        }
        if (!std::isfinite(v) || v < lo || v > hi || (open_lo && v == lo)) {
            fail(n, path,
                 str_cat("must be in ", open_lo ? "(" : "[", lo, ", ", hi, "], got ", n.Scalar()));
        }
        return v;
    }
    bool get_bool(const YAML::Node& n, const std::string& path) const {
        if (!n.IsScalar()) {
            fail(n, path, "expected true or false, got " + kind(n));
        }
        try {
            return n.as<bool>();
        } catch (const YAML::Exception&) {
            fail(n, path, "expected true or false, got '" + n.Scalar() + "'");
        }
    }
    std::string get_choice(const YAML::Node& n, const std::string& path,
                           const std::vector<std::string>& choices) const {
        const std::string v = get_string(n, path);
        if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
            const std::string near = nearest_key(v, choices);
            fail(n, path,
                 "'" + v + "' is not one of " + join(choices) +
                     (near.empty() ? "" : " (did you mean '" + near + "'?)"));
        }
        return v;
    }
    // A list, or a single scalar standing for a one-element list.
    std::vector<YAML::Node> items(const YAML::Node& n, const std::string& path) const {
        std::vector<YAML::Node> out;
        if (n.IsSequence()) {
            for (const auto& item : n) {
                out.push_back(item);
            }
        } else if (n.IsScalar()) {
            out.push_back(n);
        } else {
            fail(n, path, "expected a list, got " + kind(n));
        }
        return out;
    }
    fs::path resolve(const std::string& p) const {
        fs::path path(p);
        return path.is_absolute() ? path
                                  : (fs::absolute(file_).parent_path() / path).lexically_normal();
    }
    const fs::path& file() const { return file_; }

private:
    fs::path file_;
};

// ---------------------------------------------------------------------------------------------
// Option schemas of adaptations and analyses: validated into JSON with defaults filled in.
// ---------------------------------------------------------------------------------------------

enum class Type { kInt, kDouble, kBool, kString, kChoice, kIntList, kDoubleList, kStringList };

struct Field {
    std::string key;
    Type type;
    json def;
    double lo = -1e300;
    double hi = 1e300;
    std::vector<std::string> choices{};
    bool open_lo = false;
    bool required = false;
};

json read_fields(const Reader& r, const YAML::Node& node, const std::string& path,
                 const std::vector<Field>& fields) {
    json out = json::object();
    std::vector<std::string> keys;
    for (const auto& f : fields) {
        keys.push_back(f.key);
        out[f.key] = f.def;
    }
    if (node.IsNull() || !node.IsDefined()) {
        for (const auto& f : fields) {
            if (f.required) {
                r.fail(node, Reader::sub(path, f.key), "missing required key");
            }
        }
        return out;
    }
    r.require_map(node, path);
    r.check_keys(node, path, keys);
    for (const auto& f : fields) {
        const YAML::Node v = node[f.key];
        if (!v.IsDefined() || v.IsNull()) {
            if (f.required) {
                r.fail(node, Reader::sub(path, f.key), "missing required key");
            }
            continue;
        }
        const std::string p = Reader::sub(path, f.key);
        switch (f.type) {
            case Type::kInt:
                out[f.key] =
                    r.get_int(v, p, static_cast<long long>(f.lo), static_cast<long long>(f.hi));
                break;
            case Type::kDouble:
                out[f.key] = r.get_double(v, p, f.lo, f.hi, f.open_lo);
                break;
            case Type::kBool:
                out[f.key] = r.get_bool(v, p);
                break;
            case Type::kString:
                out[f.key] = r.get_string(v, p);
                break;
            case Type::kChoice:
                out[f.key] = r.get_choice(v, p, f.choices);
                break;
            case Type::kIntList: {
                json list = json::array();
                std::size_t i = 0;
                for (const auto& item : r.items(v, p)) {
                    list.push_back(r.get_int(item, p + "[" + std::to_string(i++) + "]",
                                             static_cast<long long>(f.lo),
                                             static_cast<long long>(f.hi)));
                }
                if (list.empty()) {
                    r.fail(v, p, "the list is empty");
                }
                out[f.key] = list;
                break;
            }
            case Type::kDoubleList: {
                json list = json::array();
                std::size_t i = 0;
                for (const auto& item : r.items(v, p)) {
                    list.push_back(r.get_double(item, p + "[" + std::to_string(i++) + "]", f.lo,
                                                f.hi, f.open_lo));
                }
                if (list.empty()) {
                    r.fail(v, p, "the list is empty");
                }
                out[f.key] = list;
                break;
            }
            case Type::kStringList: {
                json list = json::array();
                std::size_t i = 0;
                for (const auto& item : r.items(v, p)) {
                    list.push_back(r.get_string(item, p + "[" + std::to_string(i++) + "]"));
                }
                out[f.key] = list;
                break;
            }
        }
    }
    return out;
}

std::vector<Field> adaptation_fields(const std::string& kind) {
    if (kind == "linear") {
        return {{"c_grid", Type::kString, "logspace:-6:5:45"},
                {"class_weight", Type::kChoice, "none", 0, 0, {"none", "balanced"}},
                {"max_iter", Type::kInt, 10000, 1, 1e7},
                {"tol", Type::kDouble, 1e-10, 0, 1, {}, true}};
    }
    if (kind == "knn") {
        return {{"k", Type::kIntList, json::array({10, 20, 100, 200}), 1, 1e6},
                {"temperature", Type::kDouble, 0.07, 0, 100, {}, true}};
    }
    if (kind == "cnn_baseline") {
        return {{"size", Type::kInt, 256, 32, 2048},
                {"width", Type::kInt, 32, 4, 512},
                {"blocks", Type::kIntList, json::array({2, 2, 2, 2}), 1, 16},
                {"epochs", Type::kInt, 30, 1, 100000},
                {"batch", Type::kInt, 32, 1, 4096},
                {"lr", Type::kDouble, 1e-3, 0, 10, {}, true},
                {"weight_decay", Type::kDouble, 0.05, 0, 10},
                {"warmup_epochs", Type::kInt, 2, 0, 100000},
                {"clip_norm", Type::kDouble, 1.0, 0, 1e6},
                {"patience", Type::kInt, 6, 1, 100000}};
    }
    const Field device{"device", Type::kString, "cpu"};
    if (kind == "attention" || kind == "mlp") {
        std::vector<Field> f = {{"lr_grid", Type::kString, "1e-5:1e-3:5"},
                                {"epochs", Type::kInt, 30, 1, 100000},
                                {"batch", Type::kInt, 64, 1, 65536},
                                {"weight_decay", Type::kDouble, 0.05, 0, 10},
                                {"warmup_epochs", Type::kInt, 2, 0, 100000},
                                {"clip_norm", Type::kDouble, 1.0, 0, 1e6},
                                {"patience", Type::kInt, 6, 1, 100000},
                                {"balanced", Type::kBool, false},
                                {"dim", Type::kInt, 0, 0, 65536},
                                {"depth", Type::kInt, -1, -1, 64},
                                {"dropout", Type::kDouble, 0.0, 0, 0.95},
                                device};
        if (kind == "attention") {
            f.push_back({"heads", Type::kInt, 4, 1, 256});
            f.push_back({"queries", Type::kInt, 1, 1, 256});
        }
        return f;
    }
    if (kind == "finetune") {
        return {{"head", Type::kChoice, "linear", 0, 0, {"linear", "attention"}},
                {"pool", Type::kChoice, "auto", 0, 0, {"auto", "cls", "mean"}},
                {"unfreeze", Type::kString, "all"},
                {"llrd", Type::kDouble, 0.75, 0, 1, {}, true},
                {"lr", Type::kDouble, 1e-4, 0, 10, {}, true},
                {"weight_decay", Type::kDouble, 0.05, 0, 10},
                {"epochs", Type::kInt, 10, 1, 100000},
                {"batch", Type::kInt, 16, 1, 65536},
                {"warmup_epochs", Type::kInt, 1, 0, 100000},
                {"clip_norm", Type::kDouble, 1.0, 0, 1e6},
                {"patience", Type::kInt, 5, 1, 100000},
                {"size", Type::kInt, 0, 0, 8192},
                {"augment", Type::kString, "default"},
                {"hflip", Type::kBool, false},
                {"head_dim", Type::kInt, 0, 0, 65536},
                {"head_heads", Type::kInt, 4, 1, 256},
                {"head_depth", Type::kInt, 0, 0, 64},
                device};
    }
    if (kind == "segment" || kind == "unet_baseline") {
        std::vector<Field> f = {
            {"epochs", Type::kInt, 40, 1, 100000},
            {"batch", Type::kInt, 8, 1, 65536},
            {"lr", Type::kDouble, 1e-3, 0, 10, {}, true},
            {"weight_decay", Type::kDouble, 1e-4, 0, 10},
            {"warmup_epochs", Type::kInt, 2, 0, 100000},
            {"clip_norm", Type::kDouble, 1.0, 0, 1e6},
            {"patience", Type::kInt, 10, 1, 100000},
            {"dice_weight", Type::kDouble, 1.0, 0, 100},
            {"bce_weight", Type::kDouble, 1.0, 0, 100},
            {"augment", Type::kString, "none"},
            {"both_empty", Type::kChoice, "perfect", 0, 0, {"perfect", "exclude"}},
            {"one_empty", Type::kChoice, "exclude", 0, 0, {"exclude", "diagonal"}},
            {"channels", Type::kInt, 64, 1, 4096},
            device};
        if (kind == "segment") {
            f.push_back({"decoders", Type::kStringList, json::array({"linear"})});
            f.push_back({"layers", Type::kIntList, json::array(), -1000, 1000});
            f.push_back({"unfreeze", Type::kString, "none"});
            f.push_back({"layer_decay", Type::kDouble, 0.75, 0, 1, {}, true});
            f.push_back({"encoder_lr_mult", Type::kDouble, 0.1, 0, 100});
        } else {
            // The defaults of `radprobe baseline --task seg` (heart Dice 0.984 on 600 phantoms
            // at 128 px in ~5 min on 2 cores): width 8, 10 epochs, lr 3e-3.
            for (auto& field : f) {
                if (field.key == "channels") {
                    field.def = 8;
                } else if (field.key == "epochs") {
                    field.def = 10;
                } else if (field.key == "lr") {
                    field.def = 3e-3;
                }
            }
            f.push_back({"size", Type::kInt, 128, 16, 8192});
            f.push_back({"depth", Type::kInt, 4, 1, 8});
        }
        return f;
    }
    return {};
}

std::vector<Field> analysis_fields(const std::string& kind) {
    const std::vector<Field> cv = {{"folds", Type::kInt, 5, 3, 100},
                                   {"c_grid", Type::kString, "1e-3,1e-2,0.1,1,10"}};
    std::vector<Field> f;
    if (kind == "perturb") {
        f = {{"kinds", Type::kStringList, json::array({"blob", "streak", "reticular"})},
             {"sizes", Type::kString, "0.5p,1p,2p"},
             {"contrasts", Type::kDoubleList, json::array({0.1}), -1, 1},
             {"location", Type::kChoice, "lungs", 0, 0, {"lungs", "center"}},
             {"max_images", Type::kInt, 200, 0, 100000000}};
    } else if (kind == "lesions") {
        f = {{"label", Type::kString, "", 0, 0, {}, false, true},
             {"box_label", Type::kString, ""},
             {"area_thresholds", Type::kDoubleList, json::array({0.002}), 0, 1, {}, true},
             {"jitter_sigmas", Type::kDoubleList, json::array({5.0, 10.0, 20.0}), 0, 10000},
             {"max_images", Type::kInt, 400, 0, 100000000}};
    } else if (kind == "subgroups") {
        return {{"attributes", Type::kStringList, json::array(), 0, 0, {}, false, true}};
    } else if (kind == "shortcut") {
        // Its own phantoms (the manifest's are not tube-controlled): trained with tubes
        // correlated with pneumothorax, tested tube-balanced (analysis::run_shortcut).
        return {{"correlation", Type::kDouble, 0.9, 0, 1},
                {"prevalence", Type::kDouble, 0.3, 0.05, 0.95},
                {"n_train", Type::kInt, 300, 40, 100000},
                {"n_test", Type::kInt, 300, 40, 100000},
                {"size", Type::kInt, 128, 64, 1024},
                {"poolings", Type::kStringList, json::array({"cls", "mean"})},
                {"baseline_epochs", Type::kInt, 0, 0, 1000},
                {"baseline_size", Type::kInt, 128, 32, 1024},
                {"c_grid", Type::kString, "1e-3,1e-2,0.1,1,10"}};
    }
    f.insert(f.end(), cv.begin(), cv.end());
    return f;
}

template <typename Check>
void check_analysis_options(const std::string& kind, const json& options, const Check& check) {
#ifdef RADPROBE_HAVE_ANALYSIS
    if (kind == "perturb") {
        check("kinds", [](const json& v) {
            RADPROBE_CHECK(!v.empty(), "the list is empty");
            for (const auto& k : v) {
                analysis::parse_perturb_kind(k.get<std::string>());
            }
        });
        check("sizes", [](const json& v) { analysis::parse_sizes(v.get<std::string>()); });
    }
#else
    (void)kind;
    (void)options;
    (void)check;
#endif
}

bool is_segmentation_adaptation(const std::string& kind) {
    return kind == "segment" || kind == "unet_baseline";
}

}  // namespace

namespace detail {
bool adaptation_uses_encoder(const std::string& kind) {
    return kind != "cnn_baseline" && kind != "unet_baseline";
}
bool adaptation_is_segmentation(const std::string& kind) {
    return is_segmentation_adaptation(kind);
}
}  // namespace detail

ExperimentConfig parse_experiment_config(const std::string& yaml_text, const fs::path& file) {
    const Reader r(file);
    YAML::Node root;
    try {
        root = YAML::Load(yaml_text);
    } catch (const YAML::ParserException& e) {
        r.fail_mark(e.mark, "", "YAML syntax error: " + e.msg);
    }
    if (!root.IsMap()) {
        r.fail(root, "",
               "the config must be a mapping with keys data, encoders, tasks, "
               "adaptations ... (see docs/config.md)");
    }
    const std::vector<std::string> top = {"data",        "encoders",   "tasks",
                                          "adaptations", "pooling",    "seeds",
                                          "analyses",    "statistics", "output"};
    r.check_keys(root, "", top);
    for (const char* required : {"data", "tasks", "adaptations"}) {
        if (!root[required].IsDefined() || root[required].IsNull()) {
            r.fail(root, required, "missing required key (see docs/config.md)");
        }
    }

    ExperimentConfig c;
    c.file = file;

    // --- data -------------------------------------------------------------------------------
    const YAML::Node data = root["data"];
    r.require_map(data, "data");
    r.check_keys(data, "data", {"manifest", "boxes", "split", "roi"});
    if (!data["manifest"].IsDefined()) {
        r.fail(data, "data.manifest", "missing required key: the manifest CSV");
    }
    c.data.manifest = r.resolve(r.get_string(data["manifest"], "data.manifest"));
    if (!fs::is_regular_file(c.data.manifest)) {
        r.fail(data["manifest"], "data.manifest", c.data.manifest.string() + ": no such file");
    }
    if (data["boxes"].IsDefined()) {
        c.data.boxes = r.resolve(r.get_string(data["boxes"], "data.boxes"));
        if (!fs::is_regular_file(*c.data.boxes)) {
            r.fail(data["boxes"], "data.boxes", c.data.boxes->string() + ": no such file");
        }
    }
    if (data["roi"].IsDefined()) {
        c.data.roi_source = r.get_string(data["roi"], "data.roi");
        const auto& s = c.data.roi_source;
        if (!(s == "boxes" || s.rfind("boxes:", 0) == 0 || s.rfind("mask_", 0) == 0)) {
            r.fail(data["roi"], "data.roi",
                   "'" + s + "' is not boxes, boxes:<label> or mask_<name>");
        }
    }
    const YAML::Node split = data["split"];
    if (split.IsDefined() && !split.IsNull()) {
        if (split.IsScalar()) {
            const std::string policy = r.get_choice(split, "data.split", {"manifest", "patient"});
            c.data.split.use_manifest = policy == "manifest";
        } else {
            r.require_map(split, "data.split");
            r.check_keys(split, "data.split", {"policy", "seed", "val", "test", "stratify"});
            if (!split["policy"].IsDefined()) {
                r.fail(split, "data.split.policy", "missing required key: manifest or patient");
            }
            c.data.split.use_manifest = r.get_choice(split["policy"], "data.split.policy",
                                                     {"manifest", "patient"}) == "manifest";
            for (const char* k : {"seed", "val", "test", "stratify"}) {
                if (c.data.split.use_manifest && split[k].IsDefined()) {
                    r.fail(split[k], std::string("data.split.") + k,
                           "only meaningful with policy: patient (the manifest's split is used "
                           "as is)");
                }
            }
            if (split["seed"].IsDefined()) {
                c.data.split.seed = static_cast<std::uint64_t>(r.get_int(
                    split["seed"], "data.split.seed", 0, std::numeric_limits<long long>::max()));
            }
            if (split["val"].IsDefined()) {
                c.data.split.val = r.get_double(split["val"], "data.split.val", 0.0, 0.9);
            }
            if (split["test"].IsDefined()) {
                c.data.split.test = r.get_double(split["test"], "data.split.test", 0.0, 0.9);
            }
            if (c.data.split.val + c.data.split.test >= 1.0) {
                r.fail(split, "data.split", "val + test must be below 1");
            }
            if (split["stratify"].IsDefined()) {
                c.data.split.stratify = r.get_string(split["stratify"], "data.split.stratify");
            }
        }
    }

    // --- tasks ------------------------------------------------------------------------------
    const YAML::Node tasks = root["tasks"];
    r.require_map(tasks, "tasks");
    r.check_keys(tasks, "tasks", {"classification", "segmentation"});
    std::vector<YAML::Node> class_nodes, seg_nodes;
    if (tasks["classification"].IsDefined() && !tasks["classification"].IsNull()) {
        class_nodes = r.items(tasks["classification"], "tasks.classification");
        for (std::size_t i = 0; i < class_nodes.size(); ++i) {
            c.classification.push_back(
                r.get_string(class_nodes[i], "tasks.classification[" + std::to_string(i) + "]"));
        }
    }
    if (tasks["segmentation"].IsDefined() && !tasks["segmentation"].IsNull()) {
        seg_nodes = r.items(tasks["segmentation"], "tasks.segmentation");
        for (std::size_t i = 0; i < seg_nodes.size(); ++i) {
            c.segmentation.push_back(
                r.get_string(seg_nodes[i], "tasks.segmentation[" + std::to_string(i) + "]"));
        }
    }
    if (c.classification.empty() && c.segmentation.empty()) {
        r.fail(tasks, "tasks",
               "no task: give tasks.classification (label columns) and/or "
               "tasks.segmentation (mask names)");
    }
    for (const auto* list : {&c.classification, &c.segmentation}) {
        std::set<std::string> seen;
        for (std::size_t i = 0; i < list->size(); ++i) {
            if (!seen.insert((*list)[i]).second) {
                const bool cls = list == &c.classification;
                r.fail((cls ? class_nodes : seg_nodes)[i],
                       std::string(cls ? "tasks.classification" : "tasks.segmentation") + "[" +
                           std::to_string(i) + "]",
                       "'" + (*list)[i] + "' is listed twice");
            }
        }
    }

    // --- adaptations ------------------------------------------------------------------------
    const YAML::Node adaptations = root["adaptations"];
    r.require_map(adaptations, "adaptations");
    const auto known = known_adaptations();
    r.check_keys(adaptations, "adaptations", known);
    const auto available = available_adaptations();
    for (auto it = adaptations.begin(); it != adaptations.end(); ++it) {
        const std::string kind = it->first.Scalar();
        const std::string path = "adaptations." + kind;
        if (std::find(available.begin(), available.end(), kind) == available.end()) {
            r.fail(it->first, path,
                   "adaptation '" + kind +
                       "' is not available in this build (available: " + join(available) + ")");
        }
        AdaptationConfig a;
        a.kind = kind;
        a.line = static_cast<std::size_t>(it->first.Mark().line + 1);
        const json options = read_fields(r, it->second, path, adaptation_fields(kind));
        auto check_option = [&](const char* key, const auto& parse) {
            try {
                parse(options[key]);
            } catch (const Error& e) {
                r.fail(it->second[key], path + "." + key, e.what());
            }
        };
        if (kind == "linear") {
            check_option("c_grid",
                         [](const json& v) { heads::parse_c_grid(v.get<std::string>()); });
        }
        if (kind == "attention" || kind == "mlp") {
            check_option("lr_grid",
                         [](const json& v) { heads::parse_lr_grid(v.get<std::string>()); });
        }
        if (options.contains("device")) {
            check_option("device", [](const json& v) {
                const std::string d = v.get<std::string>();
                static const std::regex device_re("cpu|cuda(:[0-9]+)?");
                RADPROBE_CHECK(std::regex_match(d, device_re), "'", d,
                               "' is not cpu, cuda or cuda:N");
            });
        }
        if (options.contains("unfreeze")) {
            check_option("unfreeze", [](const json& v) {
                const std::string u = v.get<std::string>();
                static const std::regex unfreeze_re("all|none|last-[1-9][0-9]*");
                RADPROBE_CHECK(std::regex_match(u, unfreeze_re), "'", u,
                               "' is not all, none or last-K");
            });
        }
        if (kind == "segment") {
            check_option("decoders", [](const json& v) {
                RADPROBE_CHECK(!v.empty(), "the list is empty");
                for (const auto& d : v) {
                    const std::string name = d.get<std::string>();
                    RADPROBE_CHECK(name == "linear" || name == "multiscale", "'", name,
                                   "' is not one of linear, multiscale");
                }
            });
        }
        a.options_json = options.dump();
        if (is_segmentation_adaptation(kind) ? c.segmentation.empty() : c.classification.empty()) {
            r.fail(it->first, path,
                   std::string("no task for it: tasks.") +
                       (is_segmentation_adaptation(kind) ? "segmentation" : "classification") +
                       " is empty");
        }
        c.adaptations.push_back(std::move(a));
    }
    if (c.adaptations.empty()) {
        r.fail(adaptations, "adaptations", "no adaptation given (valid: " + join(known) + ")");
    }
    const bool needs_encoders =
        std::any_of(c.adaptations.begin(), c.adaptations.end(),
                    [](const auto& a) { return detail::adaptation_uses_encoder(a.kind); });

    // --- pooling, seeds ---------------------------------------------------------------------
    std::vector<YAML::Node> pool_nodes;
    if (root["pooling"].IsDefined() && !root["pooling"].IsNull()) {
        c.poolings.clear();
        pool_nodes = r.items(root["pooling"], "pooling");
        for (std::size_t i = 0; i < pool_nodes.size(); ++i) {
            const std::string p = "pooling[" + std::to_string(i) + "]";
            const std::string v =
                r.get_choice(pool_nodes[i], p, {"cls", "mean", "cls+mean", "roi"});
            if (std::find(c.poolings.begin(), c.poolings.end(), v) != c.poolings.end()) {
                r.fail(pool_nodes[i], p, "'" + v + "' is listed twice");
            }
            c.poolings.push_back(v);
        }
        if (c.poolings.empty()) {
            r.fail(root["pooling"], "pooling", "the list is empty");
        }
    }
    if (root["seeds"].IsDefined() && !root["seeds"].IsNull()) {
        c.seeds.clear();
        const auto nodes = r.items(root["seeds"], "seeds");
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            const std::string p = "seeds[" + std::to_string(i) + "]";
            const auto s = r.get_int(nodes[i], p, 0, std::numeric_limits<long long>::max());
            if (std::find(c.seeds.begin(), c.seeds.end(), s) != c.seeds.end()) {
                r.fail(nodes[i], p, std::to_string(s) + " is listed twice");
            }
            c.seeds.push_back(s);
        }
        if (c.seeds.empty()) {
            r.fail(root["seeds"], "seeds", "the list is empty");
        }
    }

    // --- encoders ---------------------------------------------------------------------------
    const YAML::Node encs = root["encoders"];
    if (needs_encoders && (!encs.IsDefined() || encs.IsNull())) {
        r.fail(root, "encoders", "missing required key: the adaptations need at least one encoder");
    }
    if (encs.IsDefined() && !encs.IsNull()) {
        if (!encs.IsSequence()) {
            r.fail(encs, "encoders",
                   "expected a list of encoders (- name: ...), got " + Reader::kind(encs));
        }
        std::size_t i = 0;
        for (const auto& e : encs) {
            const std::string path = "encoders[" + std::to_string(i++) + "]";
            r.require_map(e, path);
            r.check_keys(e, path,
                         {"name", "path", "random_vit", "preprocessing", "layers", "batch",
                          "fold_grayscale"});
            EncoderConfig enc;
            enc.line = static_cast<std::size_t>(e.Mark().line + 1);
            if (!e["name"].IsDefined()) {
                r.fail(e, path + ".name", "missing required key");
            }
            enc.name = r.get_string(e["name"], path + ".name");
            static const std::regex name_re("[A-Za-z0-9][A-Za-z0-9._+-]*");
            if (!std::regex_match(enc.name, name_re) || enc.name.size() > 100) {
                r.fail(e["name"], path + ".name",
                       "'" + enc.name + "' must be letters, digits, . _ + - (it names folders)");
            }
            for (const auto& other : c.encoders) {
                if (other.name == enc.name) {
                    r.fail(e["name"], path + ".name",
                           "'" + enc.name + "' is already the name of the encoder on line " +
                               std::to_string(other.line));
                }
            }
            const bool has_path = e["path"].IsDefined();
            const bool has_random = e["random_vit"].IsDefined();
            if (has_path == has_random) {
                r.fail(e, path,
                       "give exactly one of 'path' (a Hugging Face folder) and "
                       "'random_vit' (the built-in random-feature control)");
            }
            std::optional<encoders::ModelConfig> model;
            bool has_processor = true;
            if (has_path) {
                enc.path = r.resolve(r.get_string(e["path"], path + ".path"));
                if (!fs::is_directory(enc.path)) {
                    r.fail(e["path"], path + ".path", enc.path.string() + ": not a directory");
                }
                try {
                    model = encoders::read_model_config(enc.path);
                } catch (const Error& err) {
                    r.fail(e["path"], path + ".path", err.what());
                }
                if (!fs::exists(enc.path / "model.safetensors") &&
                    !fs::exists(enc.path / "model.safetensors.index.json")) {
                    r.fail(e["path"], path + ".path",
                           enc.path.string() +
                               " has no model.safetensors (convert pickle "
                               "checkpoints to safetensors first)");
                }
                has_processor = fs::exists(enc.path / "preprocessor_config.json");
            } else {
                const YAML::Node rv = e["random_vit"];
                const std::string rp = path + ".random_vit";
                RandomVitParams p;
                if (!rv.IsNull()) {
                    r.require_map(rv, rp);
                    r.check_keys(
                        rv, rp,
                        {"seed", "hidden_size", "layers", "heads", "patch_size", "image_size"});
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
                }
                enc.random_vit = p;
                encoders::ModelConfig mc;
                mc.model_type = "dinov2";
                mc.num_hidden_layers = p.layers;
                mc.has_cls_token = true;
                model = mc;
            }
            if (e["preprocessing"].IsDefined() && !e["preprocessing"].IsNull()) {
                const YAML::Node pp = e["preprocessing"];
                const std::string pr = path + ".preprocessing";
                r.require_map(pp, pr);
                r.check_keys(pp, pr, {"size", "crop", "mean", "std", "resample"});
                auto& o = enc.preprocessing;
                if (pp["size"].IsDefined()) {
                    o.size = r.get_int(pp["size"], pr + ".size", 8, 8192);
                }
                if (pp["crop"].IsDefined()) {
                    o.crop = r.get_bool(pp["crop"], pr + ".crop");
                }
                for (const char* k : {"mean", "std"}) {
                    if (!pp[k].IsDefined()) {
                        continue;
                    }
                    std::vector<double> v;
                    const auto nodes = r.items(pp[k], pr + "." + k);
                    for (std::size_t j = 0; j < nodes.size(); ++j) {
                        v.push_back(r.get_double(
                            nodes[j], pr + "." + k + "[" + std::to_string(j) + "]",
                            std::string(k) == "std" ? 0.0 : -10.0, 10.0, std::string(k) == "std"));
                    }
                    if (v.size() == 1) {
                        v.assign(3, v[0]);
                    }
                    if (v.size() != 3) {
                        r.fail(pp[k], pr + "." + k, "give 1 or 3 values (R, G, B)");
                    }
                    (std::string(k) == "mean" ? o.mean : o.std) = v;
                }
                if (pp["resample"].IsDefined()) {
                    o.resample = r.get_choice(pp["resample"], pr + ".resample",
                                              {"nearest", "bilinear", "bicubic", "lanczos"});
                }
            }
            if (!has_processor &&
                !(enc.preprocessing.size && enc.preprocessing.mean && enc.preprocessing.std)) {
                r.fail(e, path + ".preprocessing",
                       enc.path.string() +
                           " has no preprocessor_config.json: give "
                           "preprocessing: {size, mean, std} for this encoder "
                           "(or copy the model's preprocessor_config.json into it)");
            }
            if (e["layers"].IsDefined()) {
                const auto nodes = r.items(e["layers"], path + ".layers");
                const long long n = model ? model->num_hidden_layers : 1000;
                for (std::size_t j = 0; j < nodes.size(); ++j) {
                    const std::string lp = path + ".layers[" + std::to_string(j) + "]";
                    const auto l = r.get_int(nodes[j], lp, -n, n);
                    if (l == 0) {
                        r.fail(nodes[j], lp, "layers count from 1 (first block) or from -1 (last)");
                    }
                    enc.layers.push_back(static_cast<int>(l));
                }
            }
            if (e["batch"].IsDefined()) {
                enc.batch = static_cast<int>(r.get_int(e["batch"], path + ".batch", 1, 4096));
            }
            if (e["fold_grayscale"].IsDefined()) {
                enc.fold_grayscale = r.get_bool(e["fold_grayscale"], path + ".fold_grayscale");
            }
            if (model && !model->has_cls_token) {
                for (std::size_t j = 0; j < c.poolings.size(); ++j) {
                    if (c.poolings[j] == "cls" || c.poolings[j] == "cls+mean") {
                        r.fail(pool_nodes.empty() ? root : pool_nodes[j], "pooling",
                               "'" + c.poolings[j] + "' needs a CLS token, and encoder '" +
                                   enc.name + "' (" + model->model_type + ") has none");
                    }
                }
            }
            c.encoders.push_back(std::move(enc));
        }
        if (c.encoders.empty() && needs_encoders) {
            r.fail(encs, "encoders", "the list is empty");
        }
    }

    // --- analyses ---------------------------------------------------------------------------
    const YAML::Node analyses = root["analyses"];
    std::vector<YAML::Node> analysis_nodes;
    if (analyses.IsDefined() && !analyses.IsNull()) {
        r.require_map(analyses, "analyses");
        r.check_keys(analyses, "analyses", known_analyses());
        const auto avail = available_analyses();
        for (auto it = analyses.begin(); it != analyses.end(); ++it) {
            const std::string kind = it->first.Scalar();
            if (std::find(avail.begin(), avail.end(), kind) == avail.end()) {
                r.fail(it->first, "analyses." + kind,
                       "analysis '" + kind + "' is not available in this build" +
                           (avail.empty() ? std::string(" (none is)")
                                          : " (available: " + join(avail) + ")"));
            }
            AnalysisConfig a;
            a.kind = kind;
            a.line = static_cast<std::size_t>(it->first.Mark().line + 1);
            analysis_nodes.push_back(it->second);
            const std::string path = "analyses." + kind;
            const json options = read_fields(r, it->second, path, analysis_fields(kind));
            auto check_option = [&](const char* key, const auto& parse) {
                try {
                    parse(options[key]);
                } catch (const Error& e) {
                    r.fail(it->second[key], path + "." + key, e.what());
                }
            };
            if (options.contains("c_grid")) {
                check_option("c_grid",
                             [](const json& v) { heads::parse_c_grid(v.get<std::string>()); });
            }
            check_analysis_options(kind, options, check_option);
            a.options_json = options.dump();
            c.analyses.push_back(std::move(a));
        }
    }

    // --- statistics -------------------------------------------------------------------------
    const YAML::Node stats = root["statistics"];
    if (stats.IsDefined() && !stats.IsNull()) {
        r.require_map(stats, "statistics");
        r.check_keys(stats, "statistics", {"ci", "n_boot", "level", "fdr", "compare"});
        auto& s = c.statistics;
        if (stats["ci"].IsDefined()) {
            s.ci = r.get_choice(stats["ci"], "statistics.ci", {"bootstrap", "delong"});
        }
        if (stats["n_boot"].IsDefined()) {
            s.n_boot = r.get_int(stats["n_boot"], "statistics.n_boot", 100, 1000000);
        }
        if (stats["level"].IsDefined()) {
            s.level = r.get_double(stats["level"], "statistics.level", 0.5, 0.999);
        }
        if (stats["compare"].IsDefined()) {
            s.compare = r.get_bool(stats["compare"], "statistics.compare");
        }
        const YAML::Node fdr = stats["fdr"];
        if (fdr.IsDefined() && !fdr.IsNull()) {
            r.require_map(fdr, "statistics.fdr");
            r.check_keys(fdr, "statistics.fdr", {"family", "method"});
            if (fdr["family"].IsDefined()) {
                s.fdr_family =
                    r.get_choice(fdr["family"], "statistics.fdr.family", {"task", "all"});
            }
            if (fdr["method"].IsDefined()) {
                s.fdr_method = r.get_choice(fdr["method"], "statistics.fdr.method", {"bh", "holm"});
            }
        }
    }

    // --- output -----------------------------------------------------------------------------
    c.output.db = r.resolve("results.sqlite");
    c.output.store = r.resolve("embeddings");
    c.output.report = r.resolve("report.html");
    c.output.report_md = r.resolve("report.md");
    const YAML::Node out = root["output"];
    if (out.IsDefined() && !out.IsNull()) {
        r.require_map(out, "output");
        r.check_keys(out, "output", {"db", "store", "report", "report_md", "title"});
        auto path_of = [&](const char* k, fs::path& target, bool may_be_empty) {
            const YAML::Node v = out[k];
            if (!v.IsDefined()) {
                return;
            }
            if (v.IsNull() || (v.IsScalar() && v.Scalar().empty())) {
                if (!may_be_empty) {
                    r.fail(v, std::string("output.") + k, "must not be empty");
                }
                target.clear();
                return;
            }
            target = r.resolve(r.get_string(v, std::string("output.") + k));
        };
        path_of("db", c.output.db, false);
        path_of("store", c.output.store, false);
        path_of("report", c.output.report, true);
        path_of("report_md", c.output.report_md, true);
        if (out["title"].IsDefined()) {
            c.output.title = r.get_string(out["title"], "output.title");
        }
    }

    // --- against the manifest ---------------------------------------------------------------
    dataset::ManifestOptions mo;
    mo.boxes = c.data.boxes;
    dataset::Manifest manifest;
    try {
        manifest = dataset::Manifest::load(c.data.manifest, mo);
    } catch (const Error& e) {
        r.fail(data["manifest"], "data.manifest", e.what());
    }
    for (const auto& problem : manifest.problems()) {
        const bool about_split =
            problem.column == "split" || problem.message.find("split") != std::string::npos;
        if (c.data.split.use_manifest || !about_split) {
            r.fail(data["manifest"], "data.manifest",
                   problem.to_string() + " (run `radprobe validate` for every problem)");
        }
    }
    if (c.data.split.use_manifest) {
        for (auto sp : {dataset::Split::kTrain, dataset::Split::kVal, dataset::Split::kTest}) {
            if (manifest.indices(sp).empty()) {
                r.fail(data["split"].IsDefined() ? data["split"] : data["manifest"], "data.split",
                       c.data.manifest.string() + " has no " + dataset::split_name(sp) +
                           " images; use split: {policy: patient} to make a patient-level split");
            }
        }
    }
    auto check_label = [&](const std::string& label, const YAML::Node& at,
                           const std::string& path) {
        if (!manifest.label_index(label)) {
            const std::string near = nearest_key(label, manifest.label_names());
            r.fail(at, path,
                   "'" + label + "' is not a label column of " + c.data.manifest.string() +
                       (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                       "; labels: " + join(manifest.label_names()));
        }
    };
    for (std::size_t i = 0; i < c.classification.size(); ++i) {
        check_label(c.classification[i], class_nodes[i],
                    "tasks.classification[" + std::to_string(i) + "]");
    }
    for (std::size_t i = 0; i < c.segmentation.size(); ++i) {
        if (!manifest.mask_index(c.segmentation[i])) {
            const std::string near = nearest_key(c.segmentation[i], manifest.mask_names());
            r.fail(seg_nodes[i], "tasks.segmentation[" + std::to_string(i) + "]",
                   "'" + c.segmentation[i] + "' has no mask_" + c.segmentation[i] + " column in " +
                       c.data.manifest.string() +
                       (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                       "; masks: " + join(manifest.mask_names()));
        }
    }
    if (!c.data.split.stratify.empty()) {
        check_label(c.data.split.stratify, data["split"]["stratify"], "data.split.stratify");
    }
    for (std::size_t i = 0; i < c.analyses.size(); ++i) {
        const auto& a = c.analyses[i];
        const json options = json::parse(a.options_json);
        const std::string path = "analyses." + a.kind;
        const YAML::Node node = analysis_nodes[i];
        if (a.kind == "lesions") {
            check_label(options["label"].get<std::string>(), node["label"], path + ".label");
        }
        if (a.kind == "shortcut") {
            for (const auto& p : options["poolings"]) {
                if (p != "cls" && p != "mean") {
                    r.fail(node["poolings"], path + ".poolings",
                           "'" + p.get<std::string>() + "' is not a shortcut pooling (cls, mean)");
                }
            }
        }
        if ((a.kind == "perturb" || a.kind == "lesions" || a.kind == "shortcut") &&
            c.encoders.empty()) {
            r.fail(node, path, "needs at least one encoder (encoders is empty)");
        }
        if (a.kind == "subgroups") {
            const bool has_classifier = std::any_of(
                c.adaptations.begin(), c.adaptations.end(),
                [](const auto& x) { return !detail::adaptation_is_segmentation(x.kind); });
            if (!has_classifier) {
                r.fail(node, path, "needs a classification adaptation whose predictions it splits");
            }
            const auto& attrs = options["attributes"];
            if (attrs.empty()) {
                r.fail(node, path + ".attributes", "the list is empty");
            }
            std::vector<std::string> columns = manifest.attribute_names();
            columns.insert(columns.end(), manifest.label_names().begin(),
                           manifest.label_names().end());
            for (std::size_t j = 0; j < attrs.size(); ++j) {
                const std::string name = attrs[j].get<std::string>();
                if (std::find(columns.begin(), columns.end(), name) == columns.end()) {
                    const std::string near = nearest_key(name, columns);
                    r.fail(node["attributes"], path + ".attributes[" + std::to_string(j) + "]",
                           "'" + name + "' is not a column of " + c.data.manifest.string() +
                               (near.empty() ? "" : " (did you mean '" + near + "'?)"));
                }
            }
        }
    }
    const bool uses_roi =
        std::find(c.poolings.begin(), c.poolings.end(), "roi") != c.poolings.end();
    if (uses_roi) {
        const auto& s = c.data.roi_source;
        if (s.rfind("mask_", 0) == 0) {
            if (!manifest.mask_index(s.substr(5))) {
                r.fail(data["roi"], "data.roi",
                       "no " + s + " column in " + c.data.manifest.string());
            }
        } else if (manifest.boxes_path().empty()) {
            r.fail(data["roi"].IsDefined() ? data["roi"] : root["pooling"], "data.roi",
                   "the roi pooling needs boxes, and " + c.data.manifest.string() +
                       " has no boxes.csv beside it (give data.boxes)");
        }
    }
    return c;
}

ExperimentConfig load_experiment_config(const fs::path& file) {
    RADPROBE_CHECK(fs::is_regular_file(file), file.string(), ": no such file");
    return parse_experiment_config(read_file_text(file), file);
}

}  // namespace radprobe::bench
