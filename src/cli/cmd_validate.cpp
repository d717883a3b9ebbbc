// radprobe validate MANIFEST [--boxes F] [--labels a,b] [--no-images] [--rle siim|absolute]

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::cli {

namespace {

// Images that decoded only after a repair: a count, and the first few with what was repaired.
void print_recovered(const std::vector<dataset::Problem>& recovered) {
    if (recovered.empty()) {
        return;
    }
    std::printf("warning: %zu %s decoded only after a repair (they are used as repaired):\n",
                recovered.size(), recovered.size() == 1 ? "image" : "images");
    constexpr std::size_t kShown = 5;
    for (std::size_t i = 0; i < recovered.size() && i < kShown; ++i) {
        std::printf("warning: %s\n", recovered[i].to_string().c_str());
    }
    if (recovered.size() > kShown) {
        std::printf("warning: ... and %zu more\n", recovered.size() - kShown);
    }
}

/// One note for the masks at another resolution (resampled, not problems), with an example.
void print_resampled(const std::vector<dataset::Problem>& resampled) {
    if (resampled.empty()) {
        return;
    }
    std::printf(
        "note: %zu %s at another resolution than %s image, with its aspect ratio: "
        "resampled (nearest) to the image grid (e.g. %s)\n",
        resampled.size(), resampled.size() == 1 ? "mask is" : "masks are",
        resampled.size() == 1 ? "its" : "their", resampled.front().to_string().c_str());
}

}  // namespace

Runner setup_validate(CLI::App& app) {
    struct Options {
        std::string manifest;
        std::string boxes;
        std::string labels;
        bool no_images = false;
        std::string rle = "siim";
        int threads = 0;
    };
    auto opt = std::make_shared<Options>();
    app.description(
        "Check a manifest and list EVERY problem, one line each (file:line: column: reason): "
        "missing or undecodable images, duplicate image ids, empty patient ids, labels not in "
        "{0,1,empty}, invalid split values, the same patient in two splits (leakage), mask files "
        "or RLE strings that do not match the image size, boxes that are inverted, outside their "
        "image. Boxes of images not in the manifest are a warning (a subset manifest beside the "
        "full set's boxes.csv), not a problem. Then a summary (images, patients, counts "
        "and label prevalence per split) on stdout. Exit 0 when clean, 1 when problems were "
        "found.");
    app.add_option("MANIFEST", opt->manifest, "manifest CSV")->required();
    app.add_option("--boxes", opt->boxes,
                   "boxes CSV (image,label,x0,y0,x1,y1); default: boxes.csv next to the manifest "
                   "when present");
    app.add_option("--labels", opt->labels,
                   "label columns (comma-separated); default: every column whose non-empty values "
                   "are at least 90% exactly 0/1");
    app.add_flag("--no-images", opt->no_images,
                 "do not decode images (only check that the files exist); box bounds and mask "
                 "sizes are then not checked");
    app.add_option("--rle", opt->rle,
                   "RLE convention of mask_* strings: siim (SIIM-ACR relative starts) or "
                   "absolute (1-based absolute starts); both column-major")
        ->capture_default_str();
    app.add_option("--threads", opt->threads, "decoding threads (0 = all cores)")
        ->capture_default_str();
    return [opt]() -> int {
        dataset::ManifestOptions mo;
        mo.rle = dataset::parse_rle_convention(opt->rle);
        RADPROBE_USAGE_CHECK(opt->threads >= 0, "--threads must be >= 0, got ", opt->threads);
        if (!opt->labels.empty()) {
            mo.labels = dataset::split_list(opt->labels);
        }
        if (!opt->boxes.empty()) {
            mo.boxes = opt->boxes;
        }
        const dataset::Manifest manifest = dataset::Manifest::load(opt->manifest, mo);
        dataset::ValidateOptions vo;
        vo.decode_images = !opt->no_images;
        vo.threads = opt->threads;
        std::vector<dataset::Problem> recovered, resampled;
        vo.recovered = &recovered;
        vo.resampled = &resampled;
        Progress progress("validate", manifest.size(), "images");
        const auto problems = dataset::validate(manifest, vo, &progress);
        progress.finish();
        for (const auto& p : problems) {
            std::printf("%s\n", p.to_string().c_str());
        }
        for (const auto& w : manifest.warnings()) {
            std::printf("warning: %s\n", w.to_string().c_str());
        }
        print_recovered(recovered);
        print_resampled(resampled);
        std::printf("%s", dataset::summary_text(manifest).c_str());
        std::fflush(stdout);
        if (!problems.empty()) {
            throw InputError(str_cat(problems.size(),
                                     problems.size() == 1 ? " problem" : " problems", " found in ",
                                     opt->manifest));
        }
        std::printf("no problems found\n");
        return 0;
    };
}

}  // namespace radprobe::cli
