// radprobe split MANIFEST --out M2 --val F --test F --seed S [--stratify COL]

#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::cli {

Runner setup_split(CLI::App& app) {
    struct Options {
        std::string manifest;
        std::string out;
        double val = 0.1;
        double test = 0.2;
        std::uint64_t seed = 0;
        std::string stratify;
        std::string labels;
    };
    auto opt = std::make_shared<Options>();
    app.description(
        "Write a patient-level train/val/test split: all images of a patient go to one split. "
        "Fractions are of images; whole patients are assigned, so each split is within about half "
        "a patient's images of its target. With --stratify COL, patients are stratified by "
        "whether ANY of their images is positive for COL (positive / negative / unknown), so the "
        "patient-level prevalence is kept in every split. Deterministic for a seed. The output is "
        "the input manifest with its split column replaced (or appended), every other column and "
        "the row order unchanged.");
    app.add_option("MANIFEST", opt->manifest, "manifest CSV")->required();
    app.add_option("--out", opt->out,
                   "output manifest; must be in the same directory as MANIFEST (image, mask and "
                   "boxes paths are relative to it); may be MANIFEST itself")
        ->required();
    app.add_option("--val", opt->val, "fraction of images for val, in [0, 1)")
        ->capture_default_str();
    app.add_option("--test", opt->test, "fraction of images for test, in [0, 1); val + test < 1")
        ->capture_default_str();
    app.add_option("--seed", opt->seed, "random seed")->capture_default_str();
    app.add_option("--stratify", opt->stratify, "label column to stratify patients on");
    app.add_option("--labels", opt->labels,
                   "label columns (comma-separated); default: detected as in validate");
    return [opt]() -> int {
        namespace fs = std::filesystem;
        dataset::check_split_fractions(opt->val, opt->test);
        RADPROBE_CHECK(fs::is_regular_file(opt->manifest), "manifest ", opt->manifest,
                       ": file not found");
        const fs::path in_dir = fs::weakly_canonical(fs::absolute(opt->manifest)).parent_path();
        const fs::path out_dir = fs::weakly_canonical(fs::absolute(opt->out)).parent_path();
        RADPROBE_USAGE_CHECK(in_dir == out_dir, "--out ", opt->out,
                             " must be in the same directory as ", opt->manifest,
                             " (image, mask and boxes paths are relative to the manifest)");
        dataset::ManifestOptions mo;
        if (!opt->labels.empty()) {
            mo.labels = dataset::split_list(opt->labels);
        }
        const dataset::Manifest manifest = dataset::Manifest::load(opt->manifest, mo);
        dataset::SplitOptions so;
        so.val = opt->val;
        so.test = opt->test;
        so.seed = opt->seed;
        so.stratify = opt->stratify;
        const auto splits = dataset::assign_splits(manifest, so);
        write_file_atomic(opt->out, dataset::manifest_with_splits(manifest, splits));
        const dataset::Manifest written = dataset::Manifest::load(opt->out, mo);
        std::printf("wrote %s (seed %llu, val %g, test %g%s%s)\n", opt->out.c_str(),
                    static_cast<unsigned long long>(opt->seed), opt->val, opt->test,
                    opt->stratify.empty() ? "" : ", stratified on ", opt->stratify.c_str());
        std::printf("%s", dataset::summary_text(written).c_str());
        return 0;
    };
}

}  // namespace radprobe::cli
