// radprobe demo [--out DIR]: the main job on the embedded default, with nothing downloaded.
// Phantoms with ground truth (synth) → manifest checks → the built-in random-initialised ViT
// (the "random features" control) and any --model HF directories → embeddings under every
// pooling from one forward pass → the adaptations and statistics that are built.

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "radprobe/bench/results.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/heads/heads.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/features/embeddings.hpp"
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
};

class Steps {
public:
    explicit Steps(int total) : total_(total), t0_(std::chrono::steady_clock::now()) {}
    void begin(const std::string& what) {
        ++done_;
        std::printf("[%d/%d] %s ...\n", done_, total_, what.c_str());
        std::fflush(stdout);
        step_t0_ = std::chrono::steady_clock::now();
    }
    void end(const std::string& result) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_t0_).count();
        std::printf("      %s (%.1f s)\n", result.c_str(), s);
        std::fflush(stdout);
    }
    double elapsed() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    }

private:
    int total_;
    int done_ = 0;
    std::chrono::steady_clock::time_point t0_, step_t0_;
};

int run_demo(const DemoOptions& o) {
    RADPROBE_USAGE_CHECK(o.n >= 60 && o.n <= 100000, "--n must be in 60..100000, got ", o.n);
    RADPROBE_USAGE_CHECK(o.size >= 64 && o.size <= 1024, "--size must be in 64..1024, got ", o.size);
    for (const auto& m : o.models) {
        RADPROBE_USAGE_CHECK(fs::is_directory(m), "--model ", m, ": not a directory");
    }
    const fs::path out = o.out;
    fs::create_directories(out);
    Steps steps(6);

    // 1. Phantoms.
    const fs::path data = out / "phantoms";
    steps.begin("phantoms: " + std::to_string(o.n) + " chest radiographs at " +
                std::to_string(o.size) + " px (cardiomegaly, pneumothorax with the chest-tube "
                "shortcut, nodules)");
    if (!fs::exists(data / "manifest.csv")) {
        synth::SynthOptions so;
        so.n = static_cast<std::size_t>(o.n);
        so.size = o.size;
        so.seed = o.seed;
        so.tube_ptx_correlation = 0.6;  // the shortcut knob: tubes mostly on pneumothorax images
        so.threads = o.threads;
        Progress progress("phantoms", so.n, "images");
        const auto summary = synth::write_dataset(data, so, [&](std::size_t done) {
            progress.advance(done - progress.done());
        });
        progress.finish();
        steps.end(std::to_string(summary.images) + " images of " +
                  std::to_string(summary.patients) + " patients in " + data.string());
    } else {
        steps.end("reusing " + data.string());
    }

    // 2. Manifest checks.
    steps.begin("validate the manifest (images, masks, boxes, patient leakage)");
    const auto manifest = dataset::Manifest::load(data / "manifest.csv");
    const auto problems = dataset::validate(manifest);
    RADPROBE_CHECK(problems.empty(), (data / "manifest.csv").string(), ": ", problems.size(),
                   " problems, first: ", problems.front().to_string());
    steps.end("clean: " + std::to_string(manifest.size()) + " images, " +
              std::to_string(manifest.patients().size()) + " patients");

    // 3. Encoders and embeddings.
    steps.begin("embeddings: cls, mean, cls+mean, roi (nodule boxes) from one forward pass");
    std::vector<fs::path> model_dirs;
    const fs::path random_vit = out / "models" / "random-vit-s16";
    if (!fs::exists(random_vit / "model.safetensors")) {
        encoders::RandomVitSpec spec;
        spec.seed = o.seed;
        encoders::write_random_vit(random_vit, spec);
    }
    model_dirs.push_back(random_vit);
    for (const auto& m : o.models) {
        model_dirs.push_back(m);
    }
    std::vector<fs::path> stores;
    for (const auto& m : model_dirs) {
        features::ExtractOptions eo;
        eo.model_dir = m;
        eo.manifest = data / "manifest.csv";
        eo.poolings = {features::Pooling::kCls, features::Pooling::kMean,
                       features::Pooling::kClsMean, features::Pooling::kRoi};
        eo.roi_source = "boxes:nodule";
        eo.store_root = out / "embeddings";
        eo.threads = o.threads;
        const auto r = features::extract(eo);
        stores.push_back(r.store_dir);
        std::printf("      %s: %s%s\n", m.filename().string().c_str(), r.store_dir.string().c_str(),
                    r.cached ? " (cached)" : "");
    }
    steps.end(std::to_string(stores.size()) + " encoder(s)");

    // 4. Linear probes on every pooling, results into the DB.
    const fs::path db_path = out / "results.sqlite";
    auto db = bench::ResultsDb::open(db_path);
    const std::vector<std::string> labels = {"cardiomegaly", "pneumothorax"};
    auto record = [&](const std::string& encoder, const std::string& adaptation,
                      const std::string& pooling, const heads::LabelResult& r,
                      const std::string& config) {
        bench::RunSpec spec;
        spec.config_hash = features::content_hash(config);
        spec.encoder = encoder;
        spec.task = r.label;
        spec.adaptation = adaptation;
        spec.pooling = pooling;
        spec.seed = static_cast<std::int64_t>(o.seed);
        spec.config_json = config;
        if (db.find_completed_run(spec.config_hash)) {
            return;
        }
        const auto run = db.begin_run(spec);
        std::vector<bench::Metric> metrics;
        bench::Metric auc;
        auc.name = "auroc";
        auc.value = r.auroc;
        auc.ci_lo = r.bootstrap_lo;
        auc.ci_hi = r.bootstrap_hi;
        auc.ci_method = "bootstrap-percentile (patient-clustered)";
        auc.level = 0.95;
        auc.n = static_cast<std::int64_t>(r.n_test);
        metrics.push_back(auc);
        bench::Metric ap;
        ap.name = "ap";
        ap.value = r.auprc;
        ap.n = auc.n;
        metrics.push_back(ap);
        db.record_metrics(run, metrics);
        std::vector<bench::Prediction> preds;
        for (std::size_t i = 0; i < r.test_scores.size(); ++i) {
            bench::Prediction p;
            p.image_id = r.test_images[i];
            p.patient_id = r.test_patients[i];
            p.label = r.test_labels[i];
            p.score = r.test_scores[i];
            preds.push_back(p);
        }
        db.record_predictions(run, preds);
        db.finish_run(run);
        std::printf("      %-16s %-8s %-9s %-13s AUROC %.3f [%.3f, %.3f]\n", encoder.c_str(),
                    adaptation.c_str(), pooling.c_str(), r.label.c_str(), r.auroc,
                    r.bootstrap_lo, r.bootstrap_hi);
    };
    steps.begin("linear probes (L2 logistic regression, C chosen on val) per pooling");
    for (std::size_t m = 0; m < stores.size(); ++m) {
        for (const std::string pool : {"cls", "mean", "cls+mean"}) {
            heads::ProbeRunOptions po;
            po.store = stores[m];
            po.manifest = data / "manifest.csv";
            po.labels = labels;
            po.pool = pool;
            po.seed = o.seed;
            po.probe.threads = o.threads;
            const auto result = heads::run_probe(po);
            for (const auto& r : result.labels) {
                record(model_dirs[m].filename().string(), "linear", pool, r,
                       "{\"store\":\"" + stores[m].filename().string() + "\",\"pool\":\"" + pool +
                           "\",\"label\":\"" + r.label + "\",\"probe\":\"linear\",\"seed\":" +
                           std::to_string(o.seed) + "}");
            }
        }
    }
    steps.end("results in " + db_path.string());

    // 5. The supervised from-scratch baseline.
    steps.begin("supervised baseline: a ResNet-style CNN trained from scratch on cardiomegaly");
    {
        heads::BaselineOptions bo;
        bo.manifest = data / "manifest.csv";
        bo.label = "cardiomegaly";
        bo.size = 128;
        bo.width = 16;
        bo.epochs = 10;
        bo.batch = 16;
        bo.lr = 2e-3;
        bo.seed = o.seed;
        bo.threads = o.threads;
        const std::string config = "{\"baseline\":\"resnet\",\"size\":128,\"width\":16,"
                                   "\"epochs\":10,\"label\":\"cardiomegaly\",\"seed\":" +
                                   std::to_string(o.seed) + ",\"n\":" + std::to_string(o.n) + "}";
        if (!db.find_completed_run(features::content_hash(config))) {
            const auto b = heads::run_baseline(bo);
            record("cnn-from-scratch", "baseline", "-", b.test, config);
        }
    }
    steps.end("done");

    // 6. Report.
    steps.begin("report");
    bench::ReportOptions ro;
    ro.title = "radprobe demo: phantoms, random-feature ViT control, supervised baseline";
    write_file_atomic(out / "report.md", bench::render_report_markdown(db, ro));
    std::string where = (out / "report.md").string();
    try {
        write_file_atomic(out / "report.html", bench::render_report_html(db, ro));
        where = (out / "report.html").string();
    } catch (const InputError& e) {
        std::printf("      HTML report skipped: %s\n", e.what());
    }
    steps.end("report: " + where);
    std::printf("demo finished in %.1f s; outputs in %s\n", steps.elapsed(), out.string().c_str());
    return 0;
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
    app.add_option("--threads", opt->threads, "threads (0 = cores available)")->capture_default_str();
    return [opt]() { return run_demo(*opt); };
}

}  // namespace radprobe::cli
