#pragma once
// Internal to adapt (LibTorch): the images of a single-label run, shared by the CNN baseline and
// fine-tuning.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/dataset/manifest.hpp"

namespace radprobe::adapt {

/// The images of one split with a known label: N×1×H×W pixels, their 0/1 labels, ids and
/// patients (the order of the manifest).
struct LabelledImages {
    torch::Tensor x;
    std::vector<double> y;
    std::vector<std::string> ids, patients;
};

/// The manifest of a single-label run: loaded with `label`, valid, with a split column.
dataset::Manifest load_label_manifest(const std::filesystem::path& path, const std::string& label);

/// The rows of `split` whose label is known; InputError naming the split (`name`) when none.
std::vector<std::size_t> labelled_rows(const dataset::Manifest& m,
                                       const std::vector<std::int8_t>& labels, dataset::Split split,
                                       const char* name);

/// Sets out.y, out.ids and out.patients for `rows`.
void set_labels(LabelledImages& out, const dataset::Manifest& m,
                const std::vector<std::int8_t>& labels, const std::vector<std::size_t>& rows);

}  // namespace radprobe::adapt
