// radprobe demo [--out DIR]: the main job on the embedded default, with nothing downloaded.
// Phantoms with ground truth (synth) → manifest checks → an experiment config (written to
// OUT/demo.yaml, a starting point for the user's own) over the built-in random-initialised ViT
// (the "random features" control) and any --model HF directories → `radprobe run` on it:
// probes, trained heads, segmentation decoders, the supervised baselines, the perturbation
// panel, the small-lesion probe and the subgroup (shortcut) analysis, into OUT/results.sqlite
// and OUT/report.html.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "radprobe/synth/phantom.hpp"

namespace radprobe::cli {
namespace fs = std::filesystem;

namespace {

struct DemoOptions {
    std::string out = "radprobe-demo";
    std::vector<std::string> models;
    int n = 600;
    int size = 256;
    unsigned long long seed = 7;
    int threads = 0;
    std::string device = "cpu";
    bool quick = false;
    bool dry_run = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// YAML scalar: a path quoted so that any character survives.
std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + "\"";
}

/// The demo's experiment: every adaptation and analysis radprobe has, sized for 2 CPU cores.
std::string demo_config(const DemoOptions& o, const fs::path& manifest, const fs::path& out) {
    const bool q = o.quick;
    std::ostringstream y;
    y << "# The experiment `radprobe demo` ran (seed " << o.seed
      << "). Re-run it, or edit it for\n"
         "# your own data and models, with:  radprobe run "
      << (out / "demo.yaml").string() << "\n# Every key is documented in docs/config.md.\n\n";
    y << "data:\n  manifest: " << quoted(fs::absolute(manifest).string())
      << "\n  split: manifest\n  roi: boxes:nodule\n\n";
    y << "encoders:\n";
    y << "  - name: random-vit-s16\n"
         "    random_vit: {seed: "
      << o.seed << ", hidden_size: 384, layers: " << (q ? 4 : 12)
      << ", heads: 6, patch_size: 16, image_size: 224}\n";
    // 160 px (a 10×10 patch grid) rather than the native 224 roughly halves every forward pass
    // and keeps the whole demo within 15 minutes on 2 cores.
    y << "    preprocessing: {size: " << (q ? 112 : 160)
      << "}   # native 224; smaller input = faster demo\n";
    for (std::size_t i = 0; i < o.models.size(); ++i) {
        y << "  - name: " << fs::path(o.models[i]).filename().string() << "-" << i << "\n"
          << "    path: " << quoted(fs::absolute(o.models[i]).string()) << "\n";
    }
    y << "\ntasks:\n  classification: [cardiomegaly, pneumothorax]\n"
         "  segmentation: [heart, pneumothorax]\n\n";
    const int cnn_size = q ? 64 : 128;
    y << "adaptations:\n"
         "  linear: {}\n"
         "  knn: {k: [10, 20]}\n"
         "  attention: {lr_grid: \"1e-4:1e-3:"
      << (q ? 1 : 2) << "\", epochs: " << (q ? 3 : 15) << ", batch: 32}\n"
      << "  segment: {decoders: [linear, multiscale], epochs: " << (q ? 2 : 6) << "}\n"
      << "  cnn_baseline: {size: " << cnn_size << ", width: 16, epochs: " << (q ? 8 : 10)
      << ", batch: 16, lr: 2.0e-3}\n"
      << "  unet_baseline: {size: " << cnn_size << ", depth: " << (q ? 3 : 4)
      << ", channels: 8, epochs: " << (q ? 2 : 5) << ", batch: 8, lr: 3.0e-3}\n\n";
    y << "pooling: [cls, mean, cls+mean]\nseeds: [" << o.seed << "]\n\n";
    y << "analyses:\n"
         "  perturb: {kinds: [blob, streak, reticular], sizes: \"0.5p,1p,2p\", contrasts: [0.1], "
         "max_images: "
      << (q ? 40 : 100) << "}\n"
      << "  lesions: {label: nodule, max_images: " << (q ? 60 : 300) << "}\n"
      << "  subgroups: {attributes: [chest_tube]}\n"
      << "  shortcut: {correlation: 0.9, n_train: " << (q ? 120 : 200)
      << ", n_test: " << (q ? 120 : 200) << ", size: " << (q ? 64 : 128)
      << ", baseline_epochs: " << 8 << ", baseline_size: " << (q ? 64 : 128) << "}\n\n";
    y << "statistics:\n  ci: bootstrap\n  n_boot: " << (q ? 200 : 2000)
      << "\n  level: 0.95\n  fdr: {family: task, method: bh}\n\n";
    if (o.device != "cpu") {
        y << "device: " << o.device << "\n\n";
    }
    y << "output:\n"
         "  db: "
      << quoted(fs::absolute(out / "results.sqlite").string()) << "\n"
      << "  store: " << quoted(fs::absolute(out / "embeddings").string()) << "\n"
      << "  report: " << quoted(fs::absolute(out / "report.html").string()) << "\n"
      << "  report_md: " << quoted(fs::absolute(out / "report.md").string()) << "\n"
      << "  title: \"radprobe demo: phantoms, random-feature ViT control, supervised "
         "baselines\"\n";
    return y.str();
}

int run_demo(const DemoOptions& o) {
    RADPROBE_USAGE_CHECK(o.n >= 60 && o.n <= 100000, "--n must be in 60..100000, got ", o.n);
    RADPROBE_USAGE_CHECK(o.size >= 64 && o.size <= 1024, "--size must be in 64..1024, got ",
                         o.size);
    for (const auto& m : o.models) {
        RADPROBE_USAGE_CHECK(fs::is_directory(m), "--model ", m, ": not a directory");
    }
    const auto t0 = std::chrono::steady_clock::now();
    const fs::path out = o.out;
    fs::create_directories(out);

    // 1. Phantoms.
    const fs::path data = out / "phantoms";
    std::printf(
        "[1/3] phantoms: %d chest radiographs at %d px (cardiomegaly, pneumothorax with "
        "the chest-tube shortcut, nodules, heart and lung masks)\n",
        o.n, o.size);
    std::fflush(stdout);
    if (!fs::exists(data / "manifest.csv")) {
        synth::SynthOptions so;
        so.n = static_cast<std::size_t>(o.n);
        so.size = o.size;
        so.seed = o.seed;
        so.tube_ptx_correlation = 0.6;  // the shortcut knob: tubes mostly on pneumothorax images
        so.threads = o.threads;
        Progress progress("phantoms", so.n, "images");
        const auto summary = synth::write_dataset(
            data, so, [&](std::size_t done) { progress.advance(done - progress.done()); });
        progress.finish();
        std::printf("      %zu images of %zu patients in %s\n", summary.images, summary.patients,
                    data.string().c_str());
    } else {
        std::printf("      reusing %s\n", data.string().c_str());
    }

    // 2. Manifest checks.
    std::printf("[2/3] validate the manifest (images, masks, boxes, patient leakage)\n");
    std::fflush(stdout);
    const auto manifest = dataset::Manifest::load(data / "manifest.csv");
    const auto problems = dataset::validate(manifest);
    RADPROBE_CHECK(problems.empty(), (data / "manifest.csv").string(), ": ", problems.size(),
                   " problems, first: ", problems.front().to_string());
    std::printf("      clean: %zu images, %zu patients\n", manifest.size(),
                manifest.patients().size());

    // 3. The experiment, as `radprobe run` would run it.
    const fs::path config_path = out / "demo.yaml";
    write_file_atomic(config_path, demo_config(o, data / "manifest.csv", out));
    std::printf("[3/3] the experiment in %s (radprobe run)\n", config_path.string().c_str());
    std::fflush(stdout);
    const auto config = experiment::load_experiment_config(config_path);
    if (o.dry_run) {
        auto db = results::ResultsDb::open(config.output.db);
        std::printf("%s", experiment::format_plan(experiment::make_plan(config, &db)).c_str());
        return 0;
    }
    experiment::RunnerOptions ro;
    ro.threads = o.threads;
    const auto summary = experiment::run_experiment(config, ro);
    std::printf("demo finished in %.1f s: %zu runs completed, %zu already done, %zu failed\n",
                seconds_since(t0), summary.completed, summary.skipped, summary.failed);
    for (const auto& f : summary.failures) {
        std::printf("  failed: %s\n", f.c_str());
    }
    for (const auto& r : summary.reports) {
        std::printf("report: %s\n", r.string().c_str());
    }
    std::printf("results: %s\n", summary.db.string().c_str());
    return summary.failed == 0 ? 0 : 1;
}

}  // namespace

Runner setup_demo(CLI::App& app) {
    auto opt = std::make_shared<DemoOptions>();
    app.add_option("--out", opt->out, "output directory")->capture_default_str();
    app.add_option("--model", opt->models,
                   "extra Hugging Face encoder directories to evaluate next to the built-ins "
                   "(repeatable)");
    app.add_option("--n", opt->n, "number of phantom images")->capture_default_str();
    app.add_option("--size", opt->size, "phantom side in pixels")->capture_default_str();
    app.add_option("--seed", opt->seed, "seed of every random choice")->capture_default_str();
    app.add_option("--threads", opt->threads, "threads (0 = cores available)")
        ->capture_default_str();
    app.add_flag("--quick", opt->quick,
                 "a minute-long smoke run: smaller encoder, fewer epochs and images (for tests)");
    app.add_flag("--dry-run", opt->dry_run, "write the phantoms and demo.yaml, print the plan");
    add_device_flag(app, opt->device);
    return [opt]() { return run_demo(*opt); };
}

}  // namespace radprobe::cli
