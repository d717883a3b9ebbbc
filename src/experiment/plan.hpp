#pragma once
// The plan of a grid as the runner needs it (private to experiment): the public Plan plus, per
// step, the encoder it runs on and the run it reads, and what every step shares (the manifest
// the runs read, each encoder's identity and store).

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/experiment/experiment.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::experiment::detail {

constexpr std::size_t kNone = static_cast<std::size_t>(-1);

/// One encoder of the config as the plan sees it.
struct EncoderInfo {
    const EncoderConfig* config = nullptr;
    nlohmann::json identity;  ///< hashed into every run of this encoder
    std::string weights_hash;
    std::string layers_text;
    double gflop_per_image = 0.0;
    std::filesystem::path store_dir;  ///< known when a model folder could be made (or previewed)
    bool store_complete = false;
    /// The roi-only stores of roi_sources()[1..] (same order; empty paths when unknown).
    std::vector<std::filesystem::path> roi_store_dirs;
    std::vector<bool> roi_store_complete;
};

struct Built {
    Plan plan;
    std::vector<EncoderInfo> encoders;
    std::vector<std::size_t> step_encoder;  ///< per step: index into encoders (or kNone)
    std::vector<std::size_t> step_source;   ///< per step: the run an analysis reads (or kNone)
    /// per step: for a roi-only extraction its roi source, else "" (see roi_sources())
    std::vector<std::string> step_roi;
    std::filesystem::path manifest;  ///< the manifest the runs read (maybe a split copy)
    std::string manifest_text;       ///< its content (written when it is a split copy)
    std::int64_t images = 0;
};

/// Builds the plan in order (the phases of PlanStep::phase). Model folders are previewed under
/// `preview_root` to know whether each encoder's store is complete; nothing else is written.
Built build_plan(const ExperimentConfig& c, results::ResultsDb* db,
                 const std::filesystem::path& preview_root);
/// The same with the previews in a temporary folder removed on return.
Built build_plan(const ExperimentConfig& c, results::ResultsDb* db);

/// Writes the patient-level split copy of the manifest when the config asks for one and it is
/// not there yet (atomically: the tasks of a cluster study all write the same bytes); true when
/// it was written now.
bool write_split_manifest(const ExperimentConfig& c, const Built& b);

/// Per step, the unit of work a cells task takes (Stage::kCells): a run and every run that reads
/// it (an analysis of a baseline's network) share one unit; units are numbered in plan order.
/// kNone for the steps that are not runs.
std::vector<std::size_t> cell_units(const Built& built);
/// The number of units of cell_units() (0 when the plan has no run).
std::size_t count_units(const std::vector<std::size_t>& units);

/// The distinct roi sources of the classification tasks (DataConfig::roi_source_for()), in task
/// order; empty without the roi pooling. The encoder's main extraction pools roi over the first;
/// each other one is a roi-only extraction of its own.
std::vector<std::string> roi_sources(const ExperimentConfig& c);

/// The extraction of one encoder: every pooling of the config (plus `patches` for the attention
/// head) and the encoder's layers, in one forward pass per image; with `roi_only`, the roi
/// pooling over that source alone. Control regions are seeded with the config's first seed.
features::ExtractOptions extract_options(const ExperimentConfig& c, const EncoderConfig& e,
                                         const std::filesystem::path& model_dir,
                                         const std::filesystem::path& manifest,
                                         const std::string& roi_only = "");

/// A temporary folder removed at scope exit (dry-run previews of model folders).
class ScratchDir {
public:
    ScratchDir();
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace radprobe::experiment::detail
