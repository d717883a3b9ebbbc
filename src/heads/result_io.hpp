#pragma once
// Shared by the probe and the baseline: test metrics with CIs, predictions CSV, metrics JSON.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "radprobe/dataset/manifest.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/heads/heads.hpp"

namespace radprobe::heads {

/// AUROC with DeLong and patient-clustered bootstrap CIs, and AUPRC, of test scores.
LabelResult evaluate_scores(const std::string& label, std::vector<std::string> images,
                            std::vector<std::string> patients, std::vector<double> labels,
                            std::vector<double> scores, std::uint64_t seed, std::size_t n_boot,
                            double level);
/// image,patient_id,label,score (label = the 0/1 truth), scores with 17 significant digits.
std::string predictions_csv(const LabelResult& r);
/// A pooled table of a store ("cls+mean" concatenates cls.npy and mean.npy when needed);
/// InputError naming the store when the pool is absent.
features::EmbeddingTable read_pool(const std::filesystem::path& dir, const std::string& pool);
/// The store rows of one binary label, by the manifest's split: rows whose image has a known
/// label (and, for the `roi` pool, a region), with the 0/1 label and the manifest record.
struct LabelSplit {
    std::vector<std::int64_t> rows;
    std::vector<double> y;
    std::vector<std::size_t> record;
};
struct LabelSplits {
    LabelSplit train, val, test;
};
/// InputError when a store image is not in the manifest or a split ends up empty.
LabelSplits split_label_rows(const features::EmbeddingTable& table, const std::string& pool,
                             const std::filesystem::path& store_dir,
                             const dataset::Manifest& manifest,
                             const std::filesystem::path& manifest_path, const std::string& label);
nlohmann::ordered_json label_json(const LabelResult& r, const char* param_name, std::size_t n_boot,
                                  double level);

}  // namespace radprobe::heads
