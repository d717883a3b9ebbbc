#pragma once
// Internal to adapt (LibTorch): the images of a single-label run, shared by the CNN baseline and
// fine-tuning.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/preprocess/preprocess.hpp"

namespace radprobe::adapt {

/// The images of one split with a known label: their 1×H×W input planes in a scratch file (read
/// batch by batch: memory stays flat whatever the number of images), their 0/1 labels, ids and
/// patients (the order of the manifest).
struct LabelledImages {
    std::shared_ptr<ScratchRecords> planes;
    std::int64_t height = 0, width = 0;
    std::vector<double> y;
    std::vector<std::string> ids, patients;

    long size() const { return static_cast<long>(y.size()); }
    /// N×1×H×W of the images `idx` (CPU).
    torch::Tensor batch(const std::vector<long>& idx) const;
    /// N×1×H×W of the images begin .. end − 1 (CPU).
    torch::Tensor range(long begin, long end) const;
};

/// Decodes `rows` through `spec` and writes each plane as (v + shift)·scale into out.planes;
/// InputError naming the image when one gives another input size than the first (`why`: why
/// one size is needed).
void load_planes(LabelledImages& out, const dataset::Manifest& m,
                 const std::vector<std::size_t>& rows, const preprocess::InputSpec& spec,
                 int threads, double shift, double scale, const std::string& why);

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
