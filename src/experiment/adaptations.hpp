#pragma once
// What the experiment knows about each adaptation kind (private to experiment): its options, taken
// from the option table of the component that runs it (probes, adapt, segment), and the
// conversion between option values and the options JSON that is hashed into every run. No option
// is declared here except `decoders`, the one config-only key (a grid dimension, like pooling).

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "radprobe/core/error.hpp"
#include "radprobe/core/options.hpp"

namespace radprobe::experiment::detail {

/// Whether an adaptation works on an encoder (false: the from-scratch baselines).
bool adaptation_uses_encoder(const std::string& kind);
/// Whether an adaptation runs on segmentation tasks (masks) rather than labels.
bool adaptation_is_segmentation(const std::string& kind);
/// The probes on stored embeddings (linear, knn) and the heads trained on them (attention, mlp).
bool is_probe(const std::string& kind);
bool is_trained_head(const std::string& kind);

/// The option specs of a config adaptation: its component's table, plus `decoders` for
/// `segment`. Empty for an unknown kind.
std::vector<options::Spec> adaptation_specs(const std::string& kind);

/// The config-only key of `segment`: the decoders to run (linear | multiscale; each its own run,
/// adaptation `segment-<decoder>`). Kept out of segment::decoder_options() because a run has one
/// decoder; the command line chooses it with `--decoder`.
options::Spec decoders_spec();

/// An option value as JSON of the type the run hashes have always used: integers as JSON
/// integers, reals as JSON floats, booleans, text, lists of these.
nlohmann::json to_json(const options::Value& value);
/// The value of `spec` in a run's options JSON (the inverse of to_json for the spec's type).
options::Value from_json(const options::Spec& spec, const nlohmann::json& value);

/// Fills `o` from a run's options JSON through the table: every row's key must be there (the
/// config fills in defaults, so a planned run's JSON always has them).
template <typename T>
T apply_options(const options::Table<T>& table, const nlohmann::json& json, T o) {
    for (const auto& row : table) {
        const auto it = json.find(row.spec.name);
        RADPROBE_ASSERT(it != json.end(), "run options without '", row.spec.name, "'");
        row.set(o, from_json(row.spec, *it));
    }
    return o;
}

}  // namespace radprobe::experiment::detail
