// radprobe analyze perturb|lesions|subgroups: where encoders fail.
//   perturb    --model HFDIR --manifest M --out DIR [--kinds ..] [--sizes ..] [--contrasts ..]
//   lesions    --model HFDIR --manifest M --label COL --out DIR [--area-thresholds ..]
//              [--jitter ..]
//   subgroups  --predictions CSV [--manifest M] --attribute COL --out DIR
//              | --db results.sqlite --run ID --manifest M --attribute COL --out DIR
//              | --shortcut --model HFDIR --work DIR --out DIR [--correlation R]
// Every analysis writes CSV tables and metrics.json to --out (metrics.json also on stdout) and,
// with --db, its rows into the results database's `analysis` table under a run of its own
// (task "analysis:<name>", adaptation "analysis") so the report can name the encoder.

#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/analysis/analysis.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::cli {
namespace fs = std::filesystem;

namespace {

struct CommonArgs {
    std::string model, out, db, c_grid = "1e-3,1e-2,1e-1,1,10", device = "cpu", dtype;
    int threads = 0;
    int batch = 16;
    int folds = 5;
    std::int64_t resize = 0;
    std::uint64_t seed = 0;
    std::size_t n_boot = 1000;
    double level = 0.95;
};

struct PerturbArgs {
    CommonArgs common;
    std::string manifest, kinds = "blob,streak,reticular", sizes = "0.5p,1p,2p", contrasts = "0.1",
                          location = "lungs";
    std::size_t max_images = 200;
    bool examples = false;
};

struct LesionArgs {
    CommonArgs common;
    std::string manifest, boxes, label, box_label, thresholds = "0.002", jitter = "5,10,20";
    std::size_t max_images = 400;
};

struct SubgroupArgs {
    CommonArgs common;
    std::string predictions, manifest, label_col = "label", score_col = "score", work;
    std::vector<std::string> attributes;
    std::int64_t run = 0;
    bool shortcut = false;
    std::string pools = "cls,mean";
    double correlation = 0.9, prevalence = 0.3;
    std::size_t n_train = 300, n_test = 300;
    int size = 128;
    int baseline_epochs = 0;
    int baseline_size = 128;
};

void add_common(CLI::App* app, CommonArgs& a, bool model_required) {
    auto* m = app->add_option("--model", a.model,
                              "Hugging Face model directory, or random-vit (the random-feature "
                              "control, written to OUT/random-vit-s16)");
    if (model_required) {
        m->required();
    }
    app->add_option("--out", a.out, "output directory (CSV tables, metrics.json)")->required();
    app->add_option("--db", a.db, "also record the table rows in this results database");
    app->add_option("--seed", a.seed, "seed of every random choice (recorded)")
        ->capture_default_str();
    app->add_option("--n-boot", a.n_boot, "bootstrap replicates")
        ->check(CLI::Range(std::size_t{100}, std::size_t{1000000}))
        ->capture_default_str();
    app->add_option("--level", a.level, "confidence level")
        ->check(CLI::Range(0.5, 0.999))
        ->capture_default_str();
    app->add_option("--folds", a.folds, "cross-validation folds (grouped by patient)")
        ->check(CLI::Range(3, 100))
        ->capture_default_str();
    app->add_option("--c-grid", a.c_grid,
                    "C values of the logistic probe: a list or logspace:LO:HI:COUNT")
        ->capture_default_str();
    app->add_option("--threads", a.threads, "threads (0 = all cores)")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app->add_option("--batch", a.batch, "images per forward pass")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    app->add_option("--resize", a.resize, "override the processor's input size (0 = as configured)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{4096}))
        ->capture_default_str();
    add_device_flag(*app, a.device);
    add_dtype_flag(*app, a.dtype);
}

// `--model random-vit`: the random-initialised ViT-S/16-like control of `radprobe demo`, written
// (seeded by --seed) to OUT/random-vit-s16 on first use.
std::string resolve_model(CommonArgs& a) {
    if (a.model == "random-vit" && !fs::exists(a.model)) {
        const fs::path dir = fs::path(a.out) / "random-vit-s16";
        if (!fs::exists(dir / "model.safetensors")) {
            encoders::RandomVitSpec spec;
            spec.seed = a.seed;
            encoders::write_random_vit(dir, spec);
        }
        a.model = dir.string();
    }
    return a.model;
}

analysis::EncoderSpec encoder_of(const CommonArgs& a) {
    analysis::EncoderSpec e;
    e.model_dir = a.model;
    e.threads = a.threads;
    e.batch = a.batch;
    e.resize = a.resize;
    e.device = a.device;
    e.dtype = a.dtype;
    return e;
}

analysis::CvOptions cv_of(const CommonArgs& a) {
    analysis::CvOptions cv;
    cv.folds = a.folds;
    cv.c_grid = probes::parse_c_grid(a.c_grid);
    cv.n_boot = a.n_boot;
    cv.level = a.level;
    return cv;
}

// The options every model-running analysis takes from the common flags.
template <typename Options>
void set_common(Options& o, const CommonArgs& a) {
    o.encoder = encoder_of(a);
    o.cv = cv_of(a);
    o.seed = a.seed;
    o.out = a.out;
}

analysis::DbRecording recording(const CommonArgs& a, const std::string& encoder,
                                const std::string& pooling) {
    analysis::DbRecording r;
    r.db = a.db;
    r.encoder = encoder;
    r.pooling = pooling;
    return r;
}

// metrics.json on stdout; a note on stderr when the database already held the analysis.
int finish(const CommonArgs& a, const analysis::AnalyzeOutcome& outcome) {
    if (outcome.recorded && outcome.recorded->outcome == results::RunOutcome::kSkipped) {
        std::fprintf(stderr,
                     "radprobe analyze: %s already holds this analysis (run %lld); "
                     "not recorded again\n",
                     a.db.c_str(), static_cast<long long>(outcome.recorded->run));
    }
    const std::string& text = outcome.result.metrics_json;
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

std::string model_name(const std::string& dir) {
    const fs::path p = fs::path(dir).lexically_normal();
    const std::string n = p.filename().string();
    return n.empty() ? p.parent_path().filename().string() : n;
}

// ---------------------------------------------------------------------------------------------
// perturb
// ---------------------------------------------------------------------------------------------

CLI::App* add_perturb(CLI::App& app, PerturbArgs& a) {
    CLI::App* perturb = app.add_subcommand(
        "perturb",
        "Perturbation panel: small synthetic signals (blobs, streaks, reticular texture) inserted "
        "into base images; per cell and pooling (cls, mean, roi) a cross-validated probe "
        "separates perturbed from clean");
    add_common(perturb, a.common, true);
    perturb->add_option("--manifest", a.manifest, "base images (manifest CSV)")->required();
    perturb->add_option("--kinds", a.kinds, "perturbations: blob, streak, reticular")
        ->capture_default_str();
    perturb
        ->add_option("--sizes", a.sizes,
                     "signal sizes: patches of the model input (0.5p) or pixels of the image (12)")
        ->capture_default_str();
    perturb->add_option("--contrasts", a.contrasts, "peak display-value changes (0..1)")
        ->capture_default_str();
    perturb
        ->add_option("--location", a.location,
                     "lungs (lung masks when the manifest has them, else the centre) | center")
        ->check(CLI::IsMember({"lungs", "center"}))
        ->capture_default_str();
    perturb->add_option("--max-images", a.max_images, "base images used (seeded sample; 0 = all)")
        ->capture_default_str();
    perturb->add_flag("--examples", a.examples,
                      "write the first perturbed image of each cell to OUT/examples (.npy)");
    return perturb;
}

int run_perturb(PerturbArgs& a) {
    resolve_model(a.common);
    analysis::PerturbOptions o;
    set_common(o, a.common);
    o.manifest = a.manifest;
    o.kinds.clear();
    for (const auto& k : dataset::split_list(a.kinds)) {
        o.kinds.push_back(analysis::parse_perturb_kind(k));
    }
    o.sizes = analysis::parse_sizes(a.sizes);
    o.contrasts = analysis::parse_numbers(a.contrasts, "--contrasts");
    o.location = a.location;
    o.max_images = a.max_images;
    o.write_examples = a.examples;
    return finish(a.common, analysis::analyze(o, recording(a.common, model_name(a.common.model),
                                                           "cls,mean,roi")));
}

// ---------------------------------------------------------------------------------------------
// lesions
// ---------------------------------------------------------------------------------------------

CLI::App* add_lesions(CLI::App& app, LesionArgs& a) {
    CLI::App* lesions = app.add_subcommand(
        "lesions",
        "Box-stratified small-lesion probe: image-level AUROC per box-size stratum (cls, mean), "
        "box-level patch-local AUROC and its sensitivity to box jitter");
    add_common(lesions, a.common, true);
    lesions->add_option("--manifest", a.manifest, "manifest CSV (boxes.csv beside it)")->required();
    lesions->add_option("--boxes", a.boxes, "boxes file (default: boxes.csv beside the manifest)");
    lesions->add_option("--label", a.label, "image-level label column (e.g. nodule)")->required();
    lesions->add_option("--box-label", a.box_label,
                        "box label to use (default: --label; * = every box)");
    lesions
        ->add_option("--area-thresholds", a.thresholds,
                     "stratum thresholds on box area / image area, ascending")
        ->capture_default_str();
    lesions->add_option("--jitter", a.jitter, "box displacement sigmas in pixels")
        ->capture_default_str();
    lesions->add_option("--max-images", a.max_images, "images used (seeded sample; 0 = all)")
        ->capture_default_str();
    return lesions;
}

int run_lesions(LesionArgs& a) {
    resolve_model(a.common);
    analysis::LesionOptions o;
    set_common(o, a.common);
    o.manifest = a.manifest;
    if (!a.boxes.empty()) {
        o.boxes = a.boxes;
    }
    o.label = a.label;
    o.box_label = a.box_label;
    o.area_thresholds = analysis::parse_numbers(a.thresholds, "--area-thresholds");
    o.jitter_sigmas = analysis::parse_numbers(a.jitter, "--jitter");
    o.max_images = a.max_images;
    return finish(a.common, analysis::analyze(o, recording(a.common, model_name(a.common.model),
                                                           "cls,mean,patch_local")));
}

// ---------------------------------------------------------------------------------------------
// subgroups (and --shortcut)
// ---------------------------------------------------------------------------------------------

CLI::App* add_subgroups(CLI::App& app, SubgroupArgs& a) {
    CLI::App* subgroups = app.add_subcommand(
        "subgroups",
        "Metrics per subgroup of an attribute with CIs and the gap (from predictions or a "
        "results-DB run); --shortcut: the chest-tube shortcut experiment on phantoms");
    add_common(subgroups, a.common, false);
    subgroups->add_option("--predictions", a.predictions,
                          "predictions CSV (image, label, score[, patient_id], attributes)");
    subgroups->add_option("--manifest", a.manifest,
                          "manifest giving attributes (and patients) by image id");
    subgroups->add_option("--attribute", a.attributes, "attribute column (repeatable)");
    subgroups->add_option("--label-col", a.label_col, "label column of --predictions")
        ->capture_default_str();
    subgroups->add_option("--score-col", a.score_col, "score column of --predictions")
        ->capture_default_str();
    subgroups->add_option("--run", a.run, "take the predictions of this run from --db");
    subgroups->add_flag("--shortcut", a.shortcut,
                        "run the shortcut experiment: train where tubes co-occur with "
                        "pneumothorax, test on a tube-balanced set");
    subgroups->add_option("--work", a.work, "--shortcut: directory for phantoms and embeddings");
    subgroups
        ->add_option("--correlation", a.correlation,
                     "--shortcut: tube–pneumothorax phi of the training set")
        ->check(CLI::Range(0.01, 1.0))
        ->capture_default_str();
    subgroups->add_option("--prevalence", a.prevalence, "--shortcut: P(pneumothorax) = P(tube)")
        ->capture_default_str();
    subgroups->add_option("--n-train", a.n_train, "--shortcut: training phantoms per set")
        ->capture_default_str();
    subgroups->add_option("--n-test", a.n_test, "--shortcut: test phantoms")->capture_default_str();
    subgroups->add_option("--size", a.size, "--shortcut: phantom side in pixels")
        ->check(CLI::Range(64, 1024))
        ->capture_default_str();
    subgroups->add_option("--pool", a.pools, "--shortcut: poolings (cls, mean)")
        ->capture_default_str();
    subgroups
        ->add_option("--baseline-epochs", a.baseline_epochs,
                     "--shortcut: also train the supervised CNN baseline for this many epochs "
                     "(0 = not)")
        ->check(CLI::Range(0, 1000))
        ->capture_default_str();
    subgroups->add_option("--baseline-size", a.baseline_size, "--shortcut: CNN input side")
        ->check(CLI::Range(32, 1024))
        ->capture_default_str();
    return subgroups;
}

int run_shortcut(SubgroupArgs& a) {
    RADPROBE_USAGE_CHECK(!a.common.model.empty(), "--shortcut needs --model");
    resolve_model(a.common);
    RADPROBE_USAGE_CHECK(!a.work.empty(), "--shortcut needs --work DIR");
    analysis::ShortcutOptions o;
    o.encoder = encoder_of(a.common);
    o.poolings = dataset::split_list(a.pools);
    o.correlation = a.correlation;
    o.prevalence = a.prevalence;
    o.n_train = a.n_train;
    o.n_test = a.n_test;
    o.size = a.size;
    o.c_grid = probes::parse_c_grid(a.common.c_grid);
    o.n_boot = a.common.n_boot;
    o.level = a.common.level;
    o.seed = a.common.seed;
    o.work_dir = a.work;
    o.out = a.common.out;
    o.threads = a.common.threads;
    o.baseline_epochs = a.baseline_epochs;
    o.baseline_size = a.baseline_size;
    return finish(a.common,
                  analysis::analyze(o, recording(a.common, model_name(a.common.model), a.pools)));
}

int run_subgroups(SubgroupArgs& a) {
    if (a.shortcut) {
        return run_shortcut(a);
    }
    RADPROBE_USAGE_CHECK(!a.attributes.empty(), "subgroups needs --attribute COL");
    RADPROBE_USAGE_CHECK(a.predictions.empty() != (a.run == 0),
                         "subgroups needs exactly one of --predictions CSV or --run ID "
                         "(with --db), or --shortcut");
    analysis::SubgroupSource source;
    if (!a.manifest.empty()) {
        source.manifest = a.manifest;
    }
    if (!a.predictions.empty()) {
        source.predictions = a.predictions;
        source.label_column = a.label_col;
        source.score_column = a.score_col;
    } else {
        RADPROBE_USAGE_CHECK(!a.common.db.empty(), "--run needs --db");
        RADPROBE_USAGE_CHECK(!a.manifest.empty(),
                             "--run needs --manifest (the attributes of the images)");
        source.run = a.run;
    }
    analysis::SubgroupOptions o;
    o.attributes = a.attributes;
    o.n_boot = a.common.n_boot;
    o.level = a.common.level;
    o.seed = a.common.seed;
    o.out = a.common.out;
    return finish(a.common, analysis::analyze(o, source, recording(a.common, "", "")));
}

}  // namespace

Runner setup_analyze(CLI::App& app) {
    app.require_subcommand(1);
    auto pa = std::make_shared<PerturbArgs>();
    auto la = std::make_shared<LesionArgs>();
    auto sa = std::make_shared<SubgroupArgs>();
    CLI::App* perturb = add_perturb(app, *pa);
    CLI::App* lesions = add_lesions(app, *la);
    CLI::App* subgroups = add_subgroups(app, *sa);
    return [pa, la, sa, perturb, lesions, subgroups]() -> int {
        if (perturb->parsed()) {
            return run_perturb(*pa);
        }
        if (lesions->parsed()) {
            return run_lesions(*la);
        }
        if (subgroups->parsed()) {
            return run_subgroups(*sa);
        }
        throw UsageError("analyze needs one of: perturb, lesions, subgroups");
    };
}

}  // namespace radprobe::cli
