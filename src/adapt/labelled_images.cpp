// The images of a single-label run (labelled_images.hpp).

#include "labelled_images.hpp"

#include "radprobe/core/error.hpp"

namespace radprobe::adapt {

dataset::Manifest load_label_manifest(const std::filesystem::path& path, const std::string& label) {
    dataset::ManifestOptions mo;
    mo.labels = std::vector<std::string>{label};
    auto manifest = dataset::Manifest::load(path, mo);
    manifest.require_valid();
    RADPROBE_CHECK(manifest.has_split_column(), path.string(),
                   ": no 'split' column (run radprobe split first)");
    return manifest;
}

std::vector<std::size_t> labelled_rows(const dataset::Manifest& m,
                                       const std::vector<std::int8_t>& labels, dataset::Split split,
                                       const char* name) {
    std::vector<std::size_t> rows;
    for (std::size_t i : m.indices(split)) {
        if (labels[i] != dataset::kLabelUnknown) {
            rows.push_back(i);
        }
    }
    RADPROBE_CHECK(!rows.empty(), m.path().string(), ": column 'split': the ", name,
                   " split has no image with a known label");
    return rows;
}

void set_labels(LabelledImages& out, const dataset::Manifest& m,
                const std::vector<std::int8_t>& labels, const std::vector<std::size_t>& rows) {
    for (std::size_t i : rows) {
        out.y.push_back(labels[i] == 1 ? 1.0 : 0.0);
        out.ids.push_back(m.record(i).id);
        out.patients.push_back(m.record(i).patient_id);
    }
}

}  // namespace radprobe::adapt
