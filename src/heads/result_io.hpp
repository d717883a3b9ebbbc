#pragma once
// Shared by the probe and the baseline: test metrics with CIs, predictions CSV, metrics JSON.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

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
nlohmann::ordered_json label_json(const LabelResult& r, const char* param_name, std::size_t n_boot,
                                  double level);

}  // namespace radprobe::heads
