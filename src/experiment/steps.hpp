#pragma once
// The runs of a grid (private to experiment): one function per adaptation family, found through
// a table keyed by the run's adaptation (a kind, or a kind prefix such as "segment-"). Each
// computes its result and records it in the database.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "plan.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::experiment::detail {

/// What the runs of one grid share: the prepared model folders (made on first use), the stores
/// the extraction steps produced, the manifest (loaded when a run first needs it).
class Grid {
public:
    Grid(const ExperimentConfig& config, const Built& built, results::ResultsDb& db,
         const RunnerOptions& options)
        : config(config),
          built(built),
          db(db),
          options(options),
          prepared_(built.encoders.size()),
          stores_(built.encoders.size()),
          extract_errors_(built.encoders.size()) {}

    /// The encoder's prepared model folder `<store>/models/<name>` (a random ViT is generated
    /// there on first use).
    const std::filesystem::path& model_dir(std::size_t enc);
    /// The encoder's embedding store (with `roi`, its roi-only store over that source);
    /// InputError when its extraction failed or did not run.
    const std::filesystem::path& store(std::size_t enc, const std::string& roi = "") const;
    /// The store a run of `pooling` on `task` reads (its task's roi source for `roi`).
    const std::filesystem::path& store_for(std::size_t enc, const std::string& pooling,
                                           const std::string& task) const;
    /// Records an extraction's store and what it noted about its inputs (extract's mask_note).
    void extracted(std::size_t enc, const std::filesystem::path& store, const std::string& roi,
                   const std::string& note) {
        (roi.empty() ? stores_[enc] : roi_stores_[{enc, roi}]) = store;
        store_notes_[store] = note;
    }
    /// What the extraction of `store` noted ("" when nothing).
    std::string store_note(const std::filesystem::path& store) const {
        const auto it = store_notes_.find(store);
        return it == store_notes_.end() ? std::string() : it->second;
    }
    void extraction_failed(std::size_t enc, const std::string& error, const std::string& roi = "") {
        (roi.empty() ? extract_errors_[enc] : roi_errors_[{enc, roi}]) = error;
    }
    const dataset::Manifest& manifest();

    const ExperimentConfig& config;
    const Built& built;
    results::ResultsDb& db;
    const RunnerOptions& options;

private:
    std::vector<std::filesystem::path> prepared_;
    std::vector<std::filesystem::path> stores_;
    std::vector<std::string> extract_errors_;
    std::map<std::pair<std::size_t, std::string>, std::filesystem::path> roi_stores_;
    std::map<std::pair<std::size_t, std::string>, std::string> roi_errors_;
    std::map<std::filesystem::path, std::string> store_notes_;
    std::optional<dataset::Manifest> manifest_;
};

/// One run of the plan, begun in the database.
struct RunStep {
    Grid& grid;
    std::size_t index;  ///< into the plan
    const PlanStep& step;
    std::size_t enc;                ///< the encoder (kNone for the baselines)
    nlohmann::json options;         ///< the run's options, from its hashed config
    std::filesystem::path run_dir;  ///< `<store>/runs/<config hash>`
    std::int64_t run = 0;           ///< the run id
};

/// Computes and records one run; returns its result for the progress line ("AUROC 0.812 ...").
using StepFunction = std::string (*)(RunStep& step);

/// The function that runs `adaptation` (a plan step's adaptation), or nullptr when this build
/// has none.
StepFunction find_step_function(const std::string& adaptation);

}  // namespace radprobe::experiment::detail
