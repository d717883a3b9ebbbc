// The sections of an experiment config but `encoders` (config_sections.hpp); docs/config.md is
// the reference of every key: keep the two in step.

#include "config_sections.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include "adaptations.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/probes/probes.hpp"

#ifdef RADPROBE_HAVE_ANALYSIS
#include "radprobe/analysis/analysis.hpp"
#endif

namespace radprobe::experiment::detail {

namespace fs = std::filesystem;
using nlohmann::json;
using options::Spec;
using options::Type;
using options::Value;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------------------------

void read_split(const Reader& r, const YAML::Node& split, SplitPolicy& policy) {
    if (split.IsScalar()) {
        policy.use_manifest =
            r.get_choice(split, "data.split", {"manifest", "patient"}) == "manifest";
        return;
    }
    r.require_map(split, "data.split");
    r.check_keys(split, "data.split", {"policy", "seed", "val", "test", "stratify"});
    if (!split["policy"].IsDefined()) {
        r.fail(split, "data.split.policy", "missing required key: manifest or patient");
    }
    policy.use_manifest =
        r.get_choice(split["policy"], "data.split.policy", {"manifest", "patient"}) == "manifest";
    for (const char* k : {"seed", "val", "test", "stratify"}) {
        if (policy.use_manifest && split[k].IsDefined()) {
            r.fail(split[k], std::string("data.split.") + k,
                   "only meaningful with policy: patient (the manifest's split is used as is)");
        }
    }
    if (split["seed"].IsDefined()) {
        policy.seed = static_cast<std::uint64_t>(
            r.get_int(split["seed"], "data.split.seed", 0, std::numeric_limits<long long>::max()));
    }
    if (split["val"].IsDefined()) {
        policy.val = r.get_double(split["val"], "data.split.val", 0.0, 0.9);
    }
    if (split["test"].IsDefined()) {
        policy.test = r.get_double(split["test"], "data.split.test", 0.0, 0.9);
    }
    if (policy.val + policy.test >= 1.0) {
        r.fail(split, "data.split", "val + test must be below 1");
    }
    if (split["stratify"].IsDefined()) {
        policy.stratify = r.get_string(split["stratify"], "data.split.stratify");
    }
}

// ---------------------------------------------------------------------------------------------
// tasks
// ---------------------------------------------------------------------------------------------

/// A task list (label or mask names).
std::vector<std::string> read_names(const Reader& r, const YAML::Node& list,
                                    const std::string& path, std::vector<YAML::Node>& nodes) {
    std::vector<std::string> names;
    if (!list.IsDefined() || list.IsNull()) {
        return names;
    }
    nodes = r.items(list, path);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        names.push_back(r.get_string(nodes[i], Reader::item(path, i)));
    }
    return names;
}

void check_listed_once(const Reader& r, const std::vector<std::string>& names,
                       const std::vector<YAML::Node>& nodes, const std::string& path) {
    std::set<std::string> seen;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (!seen.insert(names[i]).second) {
            r.fail(nodes[i], Reader::item(path, i), "'" + names[i] + "' is listed twice");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// analyses: their options are config-only, declared here
// ---------------------------------------------------------------------------------------------

Spec spec(const char* name, Type type, Value def, double lo = -kInf, double hi = kInf,
          bool open_lo = false) {
    return Spec{name, type, std::move(def), lo, hi, open_lo};
}

Spec not_empty(Spec s) {
    s.validate = [](const Value& v) {
        const bool empty = std::visit(
            [](const auto& x) {
                if constexpr (requires { x.empty(); }) {
                    return x.empty();
                } else {
                    return false;
                }
            },
            v);
        RADPROBE_CHECK(!empty, "the list is empty");
    };
    return s;
}

Spec c_grid_spec() {
    Spec s = spec("c_grid", Type::kText, std::string("1e-3,1e-2,0.1,1,10"));
    s.validate = [](const Value& v) { probes::parse_c_grid(std::get<std::string>(v)); };
    return s;
}

std::vector<Spec> perturb_specs() {
    Spec kinds = not_empty(
        spec("kinds", Type::kTextList, std::vector<std::string>{"blob", "streak", "reticular"}));
    Spec sizes = spec("sizes", Type::kText, std::string("0.5p,1p,2p"));
#ifdef RADPROBE_HAVE_ANALYSIS
    kinds.validate = [](const Value& v) {
        const auto& list = std::get<std::vector<std::string>>(v);
        RADPROBE_CHECK(!list.empty(), "the list is empty");
        for (const auto& k : list) {
            analysis::parse_perturb_kind(k);
        }
    };
    sizes.validate = [](const Value& v) { analysis::parse_sizes(std::get<std::string>(v)); };
#endif
    Spec location = spec("location", Type::kChoice, std::string("lungs"));
    location.choices = {"lungs", "center"};
    return {kinds,
            sizes,
            not_empty(spec("contrasts", Type::kRealList, std::vector<double>{0.1}, -1, 1)),
            location,
            spec("max_images", Type::kInt, std::int64_t{200}, 0, 1e8),
            spec("folds", Type::kInt, std::int64_t{5}, 3, 100),
            c_grid_spec()};
}

std::vector<Spec> lesion_specs() {
    return {
        spec("label", Type::kText, std::string()),
        spec("box_label", Type::kText, std::string()),
        not_empty(spec("area_thresholds", Type::kRealList, std::vector<double>{0.002}, 0, 1, true)),
        not_empty(
            spec("jitter_sigmas", Type::kRealList, std::vector<double>{5.0, 10.0, 20.0}, 0, 10000)),
        spec("max_images", Type::kInt, std::int64_t{400}, 0, 1e8),
        spec("folds", Type::kInt, std::int64_t{5}, 3, 100),
        c_grid_spec()};
}

/// Its own phantoms (the manifest's are not tube-controlled): trained with tubes correlated with
/// pneumothorax, tested tube-balanced (analysis::run_shortcut).
std::vector<Spec> shortcut_specs() {
    return {spec("correlation", Type::kReal, 0.9, 0, 1),
            spec("prevalence", Type::kReal, 0.3, 0.05, 0.95),
            spec("n_train", Type::kInt, std::int64_t{300}, 40, 100000),
            spec("n_test", Type::kInt, std::int64_t{300}, 40, 100000),
            spec("size", Type::kInt, std::int64_t{128}, 64, 1024),
            spec("poolings", Type::kTextList, std::vector<std::string>{"cls", "mean"}),
            spec("baseline_epochs", Type::kInt, std::int64_t{0}, 0, 1000),
            spec("baseline_size", Type::kInt, std::int64_t{128}, 32, 1024),
            c_grid_spec()};
}

std::vector<Spec> analysis_specs(const std::string& kind) {
    if (kind == "perturb") {
        return perturb_specs();
    }
    if (kind == "lesions") {
        return lesion_specs();
    }
    if (kind == "subgroups") {
        return {spec("attributes", Type::kTextList, std::vector<std::string>{})};
    }
    if (kind == "shortcut") {
        return shortcut_specs();
    }
    return {};
}

std::vector<std::string> required_analysis_keys(const std::string& kind) {
    if (kind == "lesions") {
        return {"label"};
    }
    if (kind == "subgroups") {
        return {"attributes"};
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// Checks against the manifest
// ---------------------------------------------------------------------------------------------

void check_label(const Reader& r, const dataset::Manifest& manifest, const ExperimentConfig& c,
                 const std::string& label, const YAML::Node& at, const std::string& path) {
    if (!manifest.label_index(label)) {
        const std::string near = nearest_key(label, manifest.label_names());
        r.fail(at, path,
               "'" + label + "' is not a label column of " + c.data.manifest.string() +
                   (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                   "; labels: " + join(manifest.label_names()));
    }
}

dataset::Manifest load_manifest(const Reader& r, const ExperimentConfig& c,
                                const YAML::Node& data) {
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
    return manifest;
}

void check_tasks(const Reader& r, const dataset::Manifest& manifest, const ExperimentConfig& c,
                 const ConfigNodes& nodes) {
    for (std::size_t i = 0; i < c.classification.size(); ++i) {
        check_label(r, manifest, c, c.classification[i], nodes.classification[i],
                    Reader::item("tasks.classification", i));
    }
    for (std::size_t i = 0; i < c.segmentation.size(); ++i) {
        const std::string& mask = c.segmentation[i];
        if (!manifest.mask_index(mask)) {
            const std::string near = nearest_key(mask, manifest.mask_names());
            r.fail(nodes.segmentation[i], Reader::item("tasks.segmentation", i),
                   "'" + mask + "' has no mask_" + mask + " column in " + c.data.manifest.string() +
                       (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                       "; masks: " + join(manifest.mask_names()));
        }
    }
    if (!c.data.split.stratify.empty()) {
        const YAML::Node data = nodes.root["data"];
        check_label(r, manifest, c, c.data.split.stratify, data["split"]["stratify"],
                    "data.split.stratify");
    }
}

void check_subgroups(const Reader& r, const dataset::Manifest& manifest, const ExperimentConfig& c,
                     const json& options, const YAML::Node& node, const std::string& path) {
    const bool has_classifier =
        std::any_of(c.adaptations.begin(), c.adaptations.end(),
                    [](const auto& x) { return !adaptation_is_segmentation(x.kind); });
    if (!has_classifier) {
        r.fail(node, path, "needs a classification adaptation whose predictions it splits");
    }
    const auto& attrs = options["attributes"];
    if (attrs.empty()) {
        r.fail(node, path + ".attributes", "the list is empty");
    }
    std::vector<std::string> columns = manifest.attribute_names();
    columns.insert(columns.end(), manifest.label_names().begin(), manifest.label_names().end());
    for (std::size_t j = 0; j < attrs.size(); ++j) {
        const std::string name = attrs[j].get<std::string>();
        if (std::find(columns.begin(), columns.end(), name) == columns.end()) {
            const std::string near = nearest_key(name, columns);
            r.fail(node["attributes"], Reader::item(path + ".attributes", j),
                   "'" + name + "' is not a column of " + c.data.manifest.string() +
                       (near.empty() ? "" : " (did you mean '" + near + "'?)"));
        }
    }
}

void check_analyses(const Reader& r, const dataset::Manifest& manifest, const ExperimentConfig& c,
                    const ConfigNodes& nodes) {
    for (std::size_t i = 0; i < c.analyses.size(); ++i) {
        const auto& a = c.analyses[i];
        const json options = json::parse(a.options_json);
        const std::string path = "analyses." + a.kind;
        const YAML::Node node = nodes.analyses[i];
        if (a.kind == "lesions") {
            check_label(r, manifest, c, options["label"].get<std::string>(), node["label"],
                        path + ".label");
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
            check_subgroups(r, manifest, c, options, node, path);
        }
    }
}

// The labels that have boxes, in boxes.csv order.
std::vector<std::string> boxed_labels(const dataset::Manifest& manifest) {
    std::vector<std::string> labels;
    for (const auto& rec : manifest.records()) {
        for (const auto& b : rec.boxes) {
            if (std::find(labels.begin(), labels.end(), b.label) == labels.end()) {
                labels.push_back(b.label);
            }
        }
    }
    return labels;
}

// The nearest fix for a task whose roi would use boxes that are not its own: its own boxes
// when it has some, else the closest label with boxes, and a mask when the manifest has one.
std::string roi_fix(const dataset::Manifest& manifest, const std::string& task,
                    const std::vector<std::string>& boxed) {
    std::string fix;
    if (std::find(boxed.begin(), boxed.end(), task) != boxed.end()) {
        fix = "data.roi: {" + task + ": boxes:" + task + "}";
    } else if (!boxed.empty()) {
        const std::string near = nearest_key(task, boxed);
        fix = "data.roi: {" + task + ": boxes:" + (near.empty() ? boxed.front() : near) +
              "} (a region of another finding, named on purpose)";
    }
    if (!manifest.mask_names().empty()) {
        fix += (fix.empty() ? "" : " or ") + std::string("data.roi: {") + task + ": mask_" +
               manifest.mask_names().front() + "}";
    }
    return (fix.empty() ? "" : fix + ", or ") + "drop roi from pooling";
}

// One classification task's roi source against the manifest.
void check_task_roi(const Reader& r, const dataset::Manifest& manifest, const ExperimentConfig& c,
                    const ConfigNodes& nodes, const std::string& task,
                    const std::vector<std::string>& boxed) {
    const YAML::Node data = nodes.root["data"];
    const bool per_task = c.data.roi_given_for(task);
    const YAML::Node at = per_task
                              ? data["roi"][task]
                              : (data["roi"].IsDefined() ? data["roi"] : nodes.root["pooling"]);
    const std::string path = per_task ? "data.roi." + task : std::string("data.roi");
    const std::string s = c.data.roi_source_for(task);
    if (s.rfind("mask_", 0) == 0) {
        if (!manifest.mask_index(s.substr(5))) {
            r.fail(at, path, "no " + s + " column in " + c.data.manifest.string());
        }
        return;
    }
    if (manifest.boxes_path().empty()) {
        r.fail(at, path,
               "the roi pooling needs boxes for task '" + task + "', and " +
                   c.data.manifest.string() + " has no boxes.csv beside it (give data.boxes, " +
                   roi_fix(manifest, task, boxed) + ")");
    }
    const std::string label = s.substr(6);
    const bool has_boxes = std::find(boxed.begin(), boxed.end(), label) != boxed.end();
    if (per_task && !has_boxes) {
        r.fail(at, path,
               manifest.boxes_path().string() + " has no boxes of label '" + label +
                   "' (labels with boxes: " + (boxed.empty() ? "none" : join(boxed)) + ")");
    }
    if (!per_task && label != task) {
        r.fail(at, path,
               "roi for task '" + task + "' would pool the boxes of '" + label +
                   "', not its own; name the region per task: " + roi_fix(manifest, task, boxed));
    }
    if (!per_task && !has_boxes) {
        r.fail(at, path,
               "task '" + task + "' has no boxes of its own in " + manifest.boxes_path().string() +
                   " (labels with boxes: " + (boxed.empty() ? "none" : join(boxed)) +
                   "), so roi has no region for it; name one per task: " +
                   roi_fix(manifest, task, boxed));
    }
}

void check_roi(const Reader& r, const dataset::Manifest& manifest, const ExperimentConfig& c,
               const ConfigNodes& nodes) {
    const YAML::Node data = nodes.root["data"];
    for (const auto& [task, source] : c.data.roi_by_task) {
        if (std::find(c.classification.begin(), c.classification.end(), task) ==
            c.classification.end()) {
            r.fail(data["roi"][task], "data.roi." + task,
                   "'" + task + "' is not a classification task (tasks.classification: " +
                       join(c.classification) + ")");
        }
    }
    if (std::find(c.poolings.begin(), c.poolings.end(), "roi") == c.poolings.end()) {
        return;
    }
    const auto boxed = boxed_labels(manifest);
    for (const auto& task : c.classification) {
        check_task_roi(r, manifest, c, nodes, task, boxed);
    }
}

void check_roi_source(const Reader& r, const YAML::Node& at, const std::string& path,
                      const std::string& s) {
    if (!(s == "boxes" || (s.rfind("boxes:", 0) == 0 && s.size() > 6) ||
          (s.rfind("mask_", 0) == 0 && s.size() > 5))) {
        r.fail(at, path, "'" + s + "' is not boxes, boxes:<label> or mask_<name>");
    }
}

// `data.roi`: one source for every task, or a mapping task → source.
void read_roi(const Reader& r, const YAML::Node& roi, DataConfig& data) {
    if (!roi.IsMap()) {
        data.roi_source = r.get_string(roi, "data.roi");
        check_roi_source(r, roi, "data.roi", data.roi_source);
        return;
    }
    for (auto it = roi.begin(); it != roi.end(); ++it) {
        const std::string task = it->first.Scalar();
        const std::string path = "data.roi." + task;
        std::string source = r.get_string(it->second, path);
        check_roi_source(r, it->second, path, source);
        if (source == "boxes") {
            source = "boxes:" + task;  // the task's own boxes, as without the mapping
        }
        data.roi_by_task.emplace_back(task, source);
    }
}

}  // namespace

void read_data(const Reader& r, const YAML::Node& root, ExperimentConfig& c) {
    const YAML::Node data = root["data"];
    r.require_map(data, "data");
    r.check_keys(data, "data", {"manifest", "boxes", "split", "roi"});
    if (!data["manifest"].IsDefined()) {
        r.fail(data, "data.manifest", "missing required key: the manifest CSV");
    }
    c.data.manifest = r.resolve(r.get_string(data["manifest"], "data.manifest"));
    // The error_code overloads: a path the OS refuses (a name too long, a loop of links) is a
    // config error, not a std::filesystem_error (found by fuzz/config).
    std::error_code ec;
    if (!fs::is_regular_file(c.data.manifest, ec)) {
        r.fail(
            data["manifest"], "data.manifest",
            c.data.manifest.string() + ": " +
                (ec && ec != std::errc::no_such_file_or_directory ? ec.message() : "no such file"));
    }
    if (data["boxes"].IsDefined()) {
        c.data.boxes = r.resolve(r.get_string(data["boxes"], "data.boxes"));
        if (!fs::is_regular_file(*c.data.boxes, ec)) {
            r.fail(data["boxes"], "data.boxes",
                   c.data.boxes->string() + ": " +
                       (ec && ec != std::errc::no_such_file_or_directory ? ec.message()
                                                                         : "no such file"));
        }
    }
    if (data["roi"].IsDefined()) {
        read_roi(r, data["roi"], c.data);
    }
    const YAML::Node split = data["split"];
    if (split.IsDefined() && !split.IsNull()) {
        read_split(r, split, c.data.split);
    }
}

void read_tasks(const Reader& r, const YAML::Node& root, ExperimentConfig& c, ConfigNodes& nodes) {
    const YAML::Node tasks = root["tasks"];
    r.require_map(tasks, "tasks");
    r.check_keys(tasks, "tasks", {"classification", "segmentation"});
    c.classification =
        read_names(r, tasks["classification"], "tasks.classification", nodes.classification);
    c.segmentation = read_names(r, tasks["segmentation"], "tasks.segmentation", nodes.segmentation);
    if (c.classification.empty() && c.segmentation.empty()) {
        r.fail(tasks, "tasks",
               "no task: give tasks.classification (label columns) and/or "
               "tasks.segmentation (mask names)");
    }
    check_listed_once(r, c.classification, nodes.classification, "tasks.classification");
    check_listed_once(r, c.segmentation, nodes.segmentation, "tasks.segmentation");
}

void read_device(const Reader& r, const YAML::Node& root, ExperimentConfig& c) {
    if (root["device"].IsDefined()) {
        c.device = r.get_string(root["device"], "device");
        try {
            adapt::check_device_name(c.device);
        } catch (const Error& err) {
            r.fail(root["device"], "device", err.what());
        }
    }
}

void read_adaptations(const Reader& r, const YAML::Node& root, ExperimentConfig& c) {
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
        const auto specs = adaptation_specs(kind);
        nlohmann::json options = read_options(r, it->second, path, specs);
        const bool has_device = std::any_of(specs.begin(), specs.end(),
                                            [](const auto& s) { return s.name == "device"; });
        const bool gives_device = it->second.IsMap() && it->second["device"].IsDefined();
        if (has_device && !gives_device) {
            options["device"] = c.device;
        }
        a.options_json = options.dump();
        const bool seg = adaptation_is_segmentation(kind);
        if (seg ? c.segmentation.empty() : c.classification.empty()) {
            r.fail(it->first, path,
                   std::string("no task for it: tasks.") +
                       (seg ? "segmentation" : "classification") + " is empty");
        }
        c.adaptations.push_back(std::move(a));
    }
    if (c.adaptations.empty()) {
        r.fail(adaptations, "adaptations", "no adaptation given (valid: " + join(known) + ")");
    }
}

void read_grid(const Reader& r, const YAML::Node& root, ExperimentConfig& c, ConfigNodes& nodes) {
    if (root["pooling"].IsDefined() && !root["pooling"].IsNull()) {
        c.poolings.clear();
        nodes.pooling = r.items(root["pooling"], "pooling");
        for (std::size_t i = 0; i < nodes.pooling.size(); ++i) {
            const std::string p = Reader::item("pooling", i);
            const std::string v =
                r.get_choice(nodes.pooling[i], p, {"cls", "mean", "cls+mean", "roi"});
            if (std::find(c.poolings.begin(), c.poolings.end(), v) != c.poolings.end()) {
                r.fail(nodes.pooling[i], p, "'" + v + "' is listed twice");
            }
            c.poolings.push_back(v);
        }
        if (c.poolings.empty()) {
            r.fail(root["pooling"], "pooling", "the list is empty");
        }
    }
    if (root["seeds"].IsDefined() && !root["seeds"].IsNull()) {
        c.seeds.clear();
        const auto seeds = r.items(root["seeds"], "seeds");
        for (std::size_t i = 0; i < seeds.size(); ++i) {
            const std::string p = Reader::item("seeds", i);
            const auto s = r.get_int(seeds[i], p, 0, std::numeric_limits<long long>::max());
            if (std::find(c.seeds.begin(), c.seeds.end(), s) != c.seeds.end()) {
                r.fail(seeds[i], p, std::to_string(s) + " is listed twice");
            }
            c.seeds.push_back(s);
        }
        if (c.seeds.empty()) {
            r.fail(root["seeds"], "seeds", "the list is empty");
        }
    }
}

void read_analyses(const Reader& r, const YAML::Node& root, ExperimentConfig& c,
                   ConfigNodes& nodes) {
    const YAML::Node analyses = root["analyses"];
    if (!analyses.IsDefined() || analyses.IsNull()) {
        return;
    }
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
        nodes.analyses.push_back(it->second);
        a.options_json = read_options(r, it->second, "analyses." + kind, analysis_specs(kind),
                                      required_analysis_keys(kind))
                             .dump();
        c.analyses.push_back(std::move(a));
    }
}

void read_statistics(const Reader& r, const YAML::Node& root, ExperimentConfig& c) {
    const YAML::Node stats = root["statistics"];
    if (!stats.IsDefined() || stats.IsNull()) {
        return;
    }
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
            s.fdr_family = r.get_choice(fdr["family"], "statistics.fdr.family", {"task", "all"});
        }
        if (fdr["method"].IsDefined()) {
            s.fdr_method = r.get_choice(fdr["method"], "statistics.fdr.method", {"bh", "holm"});
        }
    }
}

void read_output(const Reader& r, const YAML::Node& root, ExperimentConfig& c) {
    c.output.db = r.resolve("results.sqlite");
    c.output.store = r.resolve("embeddings");
    c.output.report = r.resolve("report.html");
    c.output.report_md = r.resolve("report.md");
    const YAML::Node out = root["output"];
    if (!out.IsDefined() || out.IsNull()) {
        return;
    }
    r.require_map(out, "output");
    r.check_keys(out, "output", {"db", "store", "report", "report_md", "title", "shard_size"});
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
    if (out["shard_size"].IsDefined()) {
        c.output.shard_size = r.get_int(out["shard_size"], "output.shard_size", 1, 1 << 20);
    }
}

// The boxes file matters only to ROI pooling over boxes and the lesion analysis.
void check_boxes(const Reader& r, const dataset::Manifest& manifest, const ExperimentConfig& c,
                 const ConfigNodes& nodes) {
    const bool roi_boxes =
        std::find(c.poolings.begin(), c.poolings.end(), "roi") != c.poolings.end() &&
        std::any_of(c.classification.begin(), c.classification.end(), [&](const auto& task) {
            return c.data.roi_source_for(task).rfind("boxes", 0) == 0;
        });
    const bool lesions = std::any_of(c.analyses.begin(), c.analyses.end(),
                                     [](const AnalysisConfig& a) { return a.kind == "lesions"; });
    if ((roi_boxes || lesions) && !manifest.box_problems().empty()) {
        const YAML::Node data = nodes.root["data"];
        r.fail(data["boxes"].IsDefined() ? data["boxes"] : data["manifest"], "data.boxes",
               manifest.box_problems().front().to_string() +
                   " (run `radprobe validate` for every problem)");
    }
}

void check_against_manifest(const Reader& r, const ExperimentConfig& c, const ConfigNodes& nodes) {
    const dataset::Manifest manifest = load_manifest(r, c, nodes.root["data"]);
    check_tasks(r, manifest, c, nodes);
    check_analyses(r, manifest, c, nodes);
    check_boxes(r, manifest, c, nodes);  // a malformed boxes file first: check_roi reads it
    check_roi(r, manifest, c, nodes);
}

}  // namespace radprobe::experiment::detail
