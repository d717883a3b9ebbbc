// libFuzzer target for the manifest CSV and its boxes.csv (dataset::Manifest::load and what reads
// a loaded manifest without images: validation, the summary, label vectors, numeric attributes,
// RLE masks, the patient-level split). The input is the manifest text, optionally followed by a
// NUL byte and the boxes.csv text. Any input must load or throw InputError — never crash, hang,
// trip ASan/UBSan or throw anything else.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../common/fuzz_support.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace {

namespace dataset = radprobe::dataset;
using radprobe::fuzz::expect_documented_errors;

void exercise(const dataset::Manifest& m, std::size_t size) {
    expect_documented_errors([&] { (void)dataset::summary_text(m); });
    expect_documented_errors([&] {
        dataset::ValidateOptions vo;
        vo.decode_images = false;
        vo.threads = 1;
        (void)dataset::validate(m, vo);
    });
    expect_documented_errors([&] { m.require_valid(); });
    expect_documented_errors([&] { m.require_valid_boxes(); });
    expect_documented_errors([&] { m.require_readable_images(); });
    (void)m.patients();
    for (const auto split : {dataset::Split::kNone, dataset::Split::kTrain, dataset::Split::kVal,
                             dataset::Split::kTest}) {
        (void)m.indices(split);
    }
    for (const auto& name : m.label_names()) {
        expect_documented_errors([&] { (void)m.label_vector(name); });
    }
    const std::size_t records = std::min<std::size_t>(m.size(), 64);
    for (std::size_t i = 0; i < records; ++i) {
        expect_documented_errors([&] { (void)m.record(m.record(i).id); });
        for (const auto& name : m.attribute_names()) {
            expect_documented_errors([&] { (void)m.numeric_attribute(i, name); });
        }
        for (const auto& name : m.mask_names()) {
            // Only RLE cells: a mask file would be read from wherever the cell points.
            if (m.mask_ref(i, name).source == dataset::MaskSource::kRle) {
                const int rows = 1 + static_cast<int>(size % 61);
                const int cols = 1 + static_cast<int>((size / 61) % 67);
                expect_documented_errors([&] { (void)m.load_mask(i, name, rows, cols); });
            }
        }
    }
    expect_documented_errors([&] {
        dataset::SplitOptions so;
        so.seed = size;
        if (!m.label_names().empty()) {
            so.stratify = m.label_names()[size % m.label_names().size()];
        }
        const auto splits = dataset::assign_splits(m, so);
        (void)dataset::manifest_with_splits(m, splits);
    });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto& dir = radprobe::fuzz::scratch_dir();
    const auto* nul = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
    const std::size_t manifest_size = nul ? static_cast<std::size_t>(nul - data) : size;
    radprobe::fuzz::write_bytes(dir / "manifest.csv", data, manifest_size);
    dataset::ManifestOptions options;
    if (nul) {
        radprobe::fuzz::write_bytes(dir / "boxes.csv", nul + 1, size - manifest_size - 1);
        options.boxes = dir / "boxes.csv";
    } else {
        std::error_code ignored;  // else the boxes file of the previous input would be read
        std::filesystem::remove(dir / "boxes.csv", ignored);
    }
    if (size % 7 == 0) {
        options.rle = dataset::RleConvention::kAbsolute;
    }
    expect_documented_errors(
        [&] { exercise(dataset::Manifest::load(dir / "manifest.csv", options), size); });
    return 0;
}
