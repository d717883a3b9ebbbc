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

torch::Tensor LabelledImages::batch(const std::vector<long>& idx) const {
    auto x = torch::empty({static_cast<long>(idx.size()), 1, height, width});
    for (std::size_t k = 0; k < idx.size(); ++k) {
        planes->read(static_cast<std::size_t>(idx[k]), x[static_cast<long>(k)].data_ptr<float>());
    }
    return x;
}

torch::Tensor LabelledImages::range(long begin, long end) const {
    std::vector<long> idx;
    for (long i = begin; i < end; ++i) {
        idx.push_back(i);
    }
    return batch(idx);
}

void load_planes(LabelledImages& out, const dataset::Manifest& m,
                 const std::vector<std::size_t>& rows, const preprocess::InputSpec& spec,
                 int threads, double shift, double scale, const std::string& why) {
    preprocess::for_each_input(
        m, rows, spec, threads, [&](std::size_t k, preprocess::InputImage& image) {
            const auto& g = image.geometry;
            if (k == 0) {  // runs before every other image
                out.height = g.out_height;
                out.width = g.out_width;
                out.planes = std::make_shared<ScratchRecords>(
                    static_cast<std::size_t>(out.height * out.width));
            }
            RADPROBE_CHECK(g.out_height == out.height && g.out_width == out.width,
                           m.record(rows[k]).image_path.string(), ": preprocessed to ",
                           g.out_height, "x", g.out_width, " but the first image to ", out.height,
                           "x", out.width, "; ", why);
            for (float& v : image.pixels) {
                v = static_cast<float>((static_cast<double>(v) + shift) * scale);
            }
            out.planes->write(k, image.pixels.data());
        });
}

}  // namespace radprobe::adapt
