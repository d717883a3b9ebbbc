#pragma once
// The sections of an experiment config, each read and validated on its own (private to
// experiment). parse_experiment_config() calls them in this order, so that a config with several
// problems always reports the same first one.

#include <yaml-cpp/yaml.h>

#include <vector>

#include "config_reader.hpp"
#include "radprobe/experiment/experiment.hpp"

namespace radprobe::experiment::detail {

/// The nodes that later checks point at (the manifest is read once, at the end).
struct ConfigNodes {
    YAML::Node root;
    std::vector<YAML::Node> classification;  ///< per tasks.classification item
    std::vector<YAML::Node> segmentation;    ///< per tasks.segmentation item
    std::vector<YAML::Node> pooling;         ///< per pooling item (empty: the default)
    std::vector<YAML::Node> analyses;        ///< per analysis, its options
};

/// `data`: the manifest, boxes, roi source and split policy (paths resolved and checked).
void read_data(const Reader& r, const YAML::Node& root, ExperimentConfig& c);
/// `tasks`: label and mask names (not yet checked against the manifest).
void read_tasks(const Reader& r, const YAML::Node& root, ExperimentConfig& c, ConfigNodes& nodes);
/// `device` (top level): its form only.
void read_device(const Reader& r, const YAML::Node& root, ExperimentConfig& c);
/// `adaptations`: each kind's options read against its option table, defaults filled in (the
/// top-level device for a `device` option the adaptation does not give).
void read_adaptations(const Reader& r, const YAML::Node& root, ExperimentConfig& c);
/// `pooling` and `seeds`.
void read_grid(const Reader& r, const YAML::Node& root, ExperimentConfig& c, ConfigNodes& nodes);
/// `encoders` (config_encoders.cpp): folders and their model configs, random ViTs,
/// preprocessing overrides, layers; poolings that need a CLS token against each model.
void read_encoders(const Reader& r, const YAML::Node& root, ExperimentConfig& c,
                   const ConfigNodes& nodes);
/// `analyses`: each analysis's options, defaults filled in.
void read_analyses(const Reader& r, const YAML::Node& root, ExperimentConfig& c,
                   ConfigNodes& nodes);
/// `statistics`.
void read_statistics(const Reader& r, const YAML::Node& root, ExperimentConfig& c);
/// `output`: defaults beside the config file.
void read_output(const Reader& r, const YAML::Node& root, ExperimentConfig& c);
/// Everything that needs the manifest: it loads cleanly, has the split the policy needs, the
/// tasks' label and mask columns, the analyses' columns, the roi pooling's boxes or mask.
void check_against_manifest(const Reader& r, const ExperimentConfig& c, const ConfigNodes& nodes);

}  // namespace radprobe::experiment::detail
