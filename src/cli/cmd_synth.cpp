// radprobe synth --out DIR --n N [--size PX] [--seed S] [--tube-ptx-correlation R]
//                [--format png|dcm] [prevalence flags] [--acquisition-shift LABEL:AMOUNT ...]
//                [--threads T] [--overwrite]

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/synth/phantom.hpp"

namespace radprobe::cli {

Runner setup_synth(CLI::App& app) {
    struct Options {
        std::string out;
        std::size_t n = 0;
        std::string format = "png";
        double tube_prevalence = -1.0;
        std::vector<std::string> acquisition_shifts;
        synth::SynthOptions synth;
    };
    auto opt = std::make_shared<Options>();
    app.add_option("--out", opt->out,
                   "output directory (must not exist or be empty, unless --overwrite): "
                   "manifest.csv, boxes.csv, synth.json, images/, masks/")
        ->required();
    app.add_option("--n", opt->n, "number of images")->required();
    app.add_option("--size", opt->synth.size, "image side in pixels, 64..4096")
        ->capture_default_str();
    app.add_option("--seed", opt->synth.seed, "random seed; the same seed gives identical files")
        ->capture_default_str();
    app.add_option("--tube-ptx-correlation", opt->synth.tube_ptx_correlation,
                   "phi correlation between chest_tube and pneumothorax in [-1, 1]: 0 = "
                   "independent; 1 (with equal prevalences) = tube iff pneumothorax. Must be "
                   "attainable for the two prevalences")
        ->capture_default_str();
    app.add_option("--format", opt->format, "image format: png (16-bit grey) or dcm (DICOM DX)")
        ->capture_default_str();
    app.add_option("--cardiomegaly-prevalence", opt->synth.cardiomegaly_prevalence,
                   "P(cardiomegaly): cardiothoracic ratio > 0.5")
        ->capture_default_str();
    app.add_option("--pneumothorax-prevalence", opt->synth.pneumothorax_prevalence,
                   "P(pneumothorax)")
        ->capture_default_str();
    app.add_option("--nodule-prevalence", opt->synth.nodule_prevalence, "P(at least one nodule)")
        ->capture_default_str();
    app.add_option("--tube-prevalence", opt->tube_prevalence,
                   "P(chest_tube); default: the pneumothorax prevalence");
    app.add_option("--followup-fraction", opt->synth.followup_fraction,
                   "fraction of patients with a second image")
        ->capture_default_str();
    app.add_option("--acquisition-shift", opt->acquisition_shifts,
                   "LABEL:AMOUNT (repeatable): the positives of LABEL (cardiomegaly, "
                   "pneumothorax, nodule, chest_tube) are acquired with exposure gain and noise "
                   "x (1 + AMOUNT), AMOUNT in [-0.5, 2]: a site/scanner shortcut (all other draws "
                   "unchanged)");
    app.add_option("--threads", opt->synth.threads, "worker threads (0 = all cores)")
        ->capture_default_str();
    app.add_flag("--overwrite", opt->synth.overwrite, "replace an existing output directory");
    return [opt]() -> int {
        synth::SynthOptions o = opt->synth;
        o.n = opt->n;
        o.format = synth::parse_format(opt->format);
        if (opt->tube_prevalence >= 0.0) {
            o.tube_prevalence = opt->tube_prevalence;
        } else {
            RADPROBE_USAGE_CHECK(opt->tube_prevalence == -1.0,
                                 "--tube-prevalence must be a probability in [0, 1], got ",
                                 opt->tube_prevalence);
        }
        for (const auto& text : opt->acquisition_shifts) {
            o.acquisition_shifts.push_back(synth::parse_acquisition_shift(text));
        }
        RADPROBE_USAGE_CHECK(o.threads >= 0, "--threads must be >= 0, got ", o.threads);
        synth::validate_options(o);
        Progress progress("synth", o.n, "images");
        const synth::SynthSummary s = synth::write_dataset(
            opt->out, o, [&](std::size_t done) { progress.advance(done - progress.done()); });
        progress.finish();
        std::fprintf(stderr,
                     "radprobe synth: %zu images of %zu patients in %s (%.1f s, %.1f images/s)\n",
                     s.images, s.patients, opt->out.c_str(), s.seconds,
                     s.seconds > 0 ? s.images / s.seconds : 0.0);
        return 0;
    };
}

}  // namespace radprobe::cli
