// The experiment config of `radprobe run`: YAML → ExperimentConfig, every key validated before
// any work. The sections are read in config_sections.cpp and config_encoders.cpp; docs/config.md
// is the reference of every key (keep the two in step).

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <limits>

#include "config_sections.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/experiment/experiment.hpp"

namespace radprobe::experiment {

namespace fs = std::filesystem;
using detail::Reader;

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

/// The document: valid YAML, a mapping of known top-level keys with the required ones.
YAML::Node load_root(const Reader& r, const std::string& yaml_text) {
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
    r.check_keys(root, "",
                 {"data", "encoders", "tasks", "adaptations", "pooling", "seeds", "analyses",
                  "statistics", "output", "device"});
    for (const char* required : {"data", "tasks", "adaptations"}) {
        if (!root[required].IsDefined() || root[required].IsNull()) {
            r.fail(root, required, "missing required key (see docs/config.md)");
        }
    }
    return root;
}

}  // namespace

ExperimentConfig parse_experiment_config(const std::string& yaml_text, const fs::path& file) {
    const Reader r(file);
    detail::ConfigNodes nodes;
    nodes.root = load_root(r, yaml_text);
    ExperimentConfig c;
    c.file = file;
    detail::read_data(r, nodes.root, c);
    detail::read_tasks(r, nodes.root, c, nodes);
    detail::read_device(r, nodes.root, c);
    detail::read_adaptations(r, nodes.root, c);
    detail::read_grid(r, nodes.root, c, nodes);
    detail::read_encoders(r, nodes.root, c, nodes);
    detail::read_analyses(r, nodes.root, c, nodes);
    detail::read_statistics(r, nodes.root, c);
    detail::read_output(r, nodes.root, c);
    detail::check_against_manifest(r, c, nodes);
    return c;
}

ExperimentConfig load_experiment_config(const fs::path& file) {
    RADPROBE_CHECK(fs::is_regular_file(file), file.string(), ": no such file");
    return parse_experiment_config(read_file_text(file), file);
}

}  // namespace radprobe::experiment
