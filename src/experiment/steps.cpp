// One function per adaptation family, registered by adaptation (steps.hpp). Each fills its
// component's options from the run's options JSON through that component's option table, adds
// what the grid decides (data, task, seed, threads, statistics, output folder), runs it and
// records metrics and predictions.

#include "steps.hpp"

#include <cstdio>
#include <string_view>

#include "adaptations.hpp"
#include "model_folders.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/probes/probes.hpp"
#include "radprobe/segment/segment.hpp"

#ifdef RADPROBE_HAVE_ANALYSIS
#include "radprobe/analysis/analysis.hpp"
#endif

namespace radprobe::experiment::detail {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path& Grid::model_dir(std::size_t enc) {
    if (prepared_[enc].empty()) {
        prepared_[enc] = prepare_encoder_folder(config, *built.encoders[enc].config);
    }
    return prepared_[enc];
}

const fs::path& Grid::store(std::size_t enc, const std::string& roi) const {
    const std::string& name = built.encoders[enc].config->name;
    if (!roi.empty()) {
        const auto error = roi_errors_.find({enc, roi});
        RADPROBE_CHECK(error == roi_errors_.end(), "roi extraction over ", roi, " of encoder ",
                       name, " failed: ", error == roi_errors_.end() ? "" : error->second);
        const auto it = roi_stores_.find({enc, roi});
        RADPROBE_CHECK(it != roi_stores_.end(), "no roi embeddings over ", roi, " for encoder ",
                       name);
        return it->second;
    }
    RADPROBE_CHECK(extract_errors_[enc].empty(), "extraction of encoder ", name,
                   " failed: ", extract_errors_[enc]);
    RADPROBE_CHECK(!stores_[enc].empty(), "no embeddings for encoder ", name);
    return stores_[enc];
}

const fs::path& Grid::store_for(std::size_t enc, const std::string& pooling,
                                const std::string& task) const {
    if (pooling == "roi") {
        const auto sources = roi_sources(config);
        const std::string source = config.data.roi_source_for(task);
        if (!sources.empty() && source != sources.front()) {
            return store(enc, source);
        }
    }
    return store(enc);
}

const dataset::Manifest& Grid::manifest() {
    if (!manifest_) {
        manifest_ = dataset::Manifest::load(built.manifest);
    }
    return *manifest_;
}

namespace {

std::uint64_t seed_of(const RunStep& s) {
    return static_cast<std::uint64_t>(s.step.seed);
}

std::size_t n_boot_of(const RunStep& s) {
    return static_cast<std::size_t>(s.grid.config.statistics.n_boot);
}

/// Records a classification result; its AUROC (with the recorded CI) for the progress line.
std::string record_label(RunStep& s, const probes::LabelResult& result) {
    const auto m = label_metrics(result, s.grid.config.statistics);
    s.grid.db.record_metrics(s.run, m);
    s.grid.db.record_predictions(s.run, label_predictions(result));
    char buf[128];
    if (m[0].ci_lo) {
        std::snprintf(buf, sizeof buf, "AUROC %.3f [%.3f, %.3f]", result.auroc, *m[0].ci_lo,
                      *m[0].ci_hi);
    } else {
        std::snprintf(buf, sizeof buf, "AUROC %.3f", result.auroc);
    }
    return buf;
}

// ---------------------------------------------------------------------------------------------
// Adaptations
// ---------------------------------------------------------------------------------------------

// A store whose roi masks were resampled says so in the notes of the runs that read it.
void note_store_masks(RunStep& s, const fs::path& store) {
    if (const std::string note = s.grid.store_note(store); !note.empty()) {
        s.grid.db.add_note(s.run, note);
    }
}

std::string run_probe(RunStep& s) {
    const bool linear = s.step.adaptation == "linear";
    probes::ProbeRunOptions po;
    po.store = s.grid.store_for(s.enc, s.step.pooling, s.step.task);
    note_store_masks(s, po.store);
    po.manifest = s.grid.built.manifest;
    po.labels = {s.step.task};
    po.pool = s.step.pooling;
    po.seed = seed_of(s);
    po.n_boot = n_boot_of(s);
    po.level = s.grid.config.statistics.level;
    po.probe = apply_options(linear ? probes::linear_probe_options() : probes::knn_probe_options(),
                             s.options, po.probe);
    po.probe.kind = linear ? probes::ProbeKind::kLinear : probes::ProbeKind::kKnn;
    po.probe.threads = s.grid.options.threads;
    if (linear) {
        po.probe.lbfgs.threads = s.grid.options.threads;
    }
    const auto r = probes::run_probe(po);
    RADPROBE_ASSERT(r.labels.size() == 1, "one label expected");
    return record_label(s, r.labels.front());
}

std::string run_trained_head(RunStep& s) {
    adapt::TrainOptions to;
    to.head = adapt::parse_head_kind(s.step.adaptation);
    to = apply_options(adapt::head_options(to.head), s.options, to);
    to.store = s.grid.store_for(s.enc, s.step.pooling, s.step.task);
    note_store_masks(s, to.store);
    to.manifest = s.grid.built.manifest;
    to.labels = {s.step.task};
    to.pool = to.head == adapt::HeadKind::kAttention ? "" : s.step.pooling;
    to.seed = seed_of(s);
    to.threads = s.grid.options.threads;
    to.n_boot = n_boot_of(s);
    to.level = s.grid.config.statistics.level;
    const auto r = adapt::run_train(to);
    RADPROBE_ASSERT(r.labels.size() == 1, "one label expected");
    return record_label(s, r.labels.front());
}

std::string run_finetune(RunStep& s) {
    adapt::FinetuneOptions fo = apply_options(adapt::finetune_options(), s.options, {});
    fo.model = s.grid.model_dir(s.enc);
    fo.manifest = s.grid.built.manifest;
    fo.label = s.step.task;
    fo.seed = seed_of(s);
    fo.threads = s.grid.options.threads;
    fo.n_boot = n_boot_of(s);
    fo.level = s.grid.config.statistics.level;
    fo.out = s.run_dir;
    fo.resume = fs::exists(s.run_dir / "checkpoint");  // a killed run continues
    return record_label(s, adapt::run_finetune(fo).test);
}

/// `segment-<decoder>` (a decoder on an encoder) and `unet_baseline` (a U-Net from scratch).
std::string run_segmentation(RunStep& s) {
    segment::SegmentOptions so;
    if (s.step.adaptation == "unet_baseline") {
        so = apply_options(segment::unet_options(), s.options, so);
        so.decoder = segment::SegDecoder::kUnet;
    } else {
        so = apply_options(segment::decoder_options(), s.options, so);
        so.decoder = segment::parse_seg_decoder(s.options["decoder"].get<std::string>());
        so.model = s.grid.model_dir(s.enc);
        so.store_root = s.grid.config.output.store;
    }
    so.manifest = s.grid.built.manifest;
    so.mask = s.step.task;
    so.seed = seed_of(s);
    so.threads = s.grid.options.threads;
    so.n_boot = n_boot_of(s);
    so.level = s.grid.config.statistics.level;
    so.out = s.run_dir;
    const auto r = segment::run_segment(so);
    if (!r.mask_note.empty()) {
        s.grid.db.add_note(s.run, r.mask_note);
    }
    const auto m = segment_result_metrics(r, s.grid.config.statistics);
    s.grid.db.record_metrics(s.run, m);
    s.grid.db.record_predictions(s.run, segment_result_predictions(r, s.run_dir));
    std::string text;
    for (const auto& x : m) {
        if (x.name == "dice" && x.value) {
            char buf[128];
            std::snprintf(buf, sizeof buf, "Dice %.3f", *x.value);
            text = buf;
        }
    }
    return text;
}

std::string run_cnn_baseline(RunStep& s) {
    adapt::BaselineOptions bo = apply_options(adapt::baseline_options(), s.options, {});
    bo.manifest = s.grid.built.manifest;
    bo.label = s.step.task;
    bo.seed = seed_of(s);
    bo.threads = s.grid.options.threads;
    bo.n_boot = n_boot_of(s);
    bo.progress = s.grid.options.progress;
    bo.out = s.run_dir;  // predictions + the trained network as an encoder directory
    return record_label(s, adapt::run_baseline(bo).test);
}

// ---------------------------------------------------------------------------------------------
// Analyses
// ---------------------------------------------------------------------------------------------

#ifdef RADPROBE_HAVE_ANALYSIS

analysis::CvOptions cv_options(const json& o, const StatisticsOptions& s) {
    analysis::CvOptions cv;
    cv.folds = o["folds"].get<int>();
    cv.c_grid = probes::parse_c_grid(o["c_grid"].get<std::string>());
    cv.n_boot = static_cast<std::size_t>(s.n_boot);
    cv.level = s.level;
    return cv;
}

std::string record_analysis(RunStep& s, const analysis::AnalysisResult& r) {
    s.grid.db.record_analysis(analysis::to_results_rows(r, s.run));
    return std::to_string(r.rows.size()) + " table rows";
}

/// The encoder an image analysis runs on: an encoder of the config, or the network a CNN
/// baseline run exported.
analysis::EncoderSpec analysis_encoder(RunStep& s) {
    analysis::EncoderSpec es;
    es.threads = s.grid.options.threads;
    if (s.enc != kNone) {
        const auto& e = *s.grid.built.encoders[s.enc].config;
        es.model_dir = s.grid.model_dir(s.enc);
        es.batch = e.batch;
        es.fold_grayscale = e.fold_grayscale;
        es.device = e.device;
        return es;
    }
    const PlanStep& src = s.grid.built.plan.steps.at(s.grid.built.step_source[s.index]);
    RADPROBE_CHECK(s.grid.db.find_completed_run(src.spec.config_hash).has_value(),
                   "the baseline run it analyses (", src.describe(), ") did not complete");
    es.model_dir = s.grid.config.output.store / "runs" / src.spec.config_hash / "encoder";
    RADPROBE_CHECK(fs::exists(es.model_dir / "model.safetensors"), "directory ",
                   es.model_dir.string(),
                   ": the baseline run left no exported network (delete its run from the "
                   "database to re-train it)");
    es.batch = 32;
    es.fold_grayscale = false;
    es.device = s.grid.config.device;
    return es;
}

std::string run_perturb(RunStep& s) {
    const json& opt = s.options;
    analysis::PerturbOptions po;
    po.encoder = analysis_encoder(s);
    po.manifest = s.grid.built.manifest;
    po.kinds.clear();
    for (const auto& k : opt["kinds"]) {
        po.kinds.push_back(analysis::parse_perturb_kind(k.get<std::string>()));
    }
    po.sizes = analysis::parse_sizes(opt["sizes"].get<std::string>());
    po.contrasts = opt["contrasts"].get<std::vector<double>>();
    po.location = opt["location"].get<std::string>();
    po.max_images = opt["max_images"].get<std::size_t>();
    po.cv = cv_options(opt, s.grid.config.statistics);
    po.seed = seed_of(s);
    po.out = s.run_dir;
    po.progress = s.grid.options.progress;
    return record_analysis(s, analysis::run_perturb(po));
}

std::string run_lesions(RunStep& s) {
    const json& opt = s.options;
    analysis::LesionOptions lo;
    lo.encoder = analysis_encoder(s);
    lo.manifest = s.grid.built.manifest;
    lo.boxes = s.grid.config.data.boxes;
    lo.label = opt["label"].get<std::string>();
    lo.box_label = opt["box_label"].get<std::string>();
    lo.area_thresholds = opt["area_thresholds"].get<std::vector<double>>();
    lo.jitter_sigmas = opt["jitter_sigmas"].get<std::vector<double>>();
    lo.max_images = opt["max_images"].get<std::size_t>();
    lo.cv = cv_options(opt, s.grid.config.statistics);
    lo.seed = seed_of(s);
    lo.out = s.run_dir;
    lo.progress = s.grid.options.progress;
    return record_analysis(s, analysis::run_lesions(lo));
}

std::string run_shortcut(RunStep& s) {
    const json& opt = s.options;
    const auto& e = *s.grid.built.encoders[s.enc].config;
    analysis::ShortcutOptions so;
    so.encoder.model_dir = s.grid.model_dir(s.enc);
    so.encoder.threads = s.grid.options.threads;
    so.encoder.batch = e.batch;
    so.encoder.fold_grayscale = e.fold_grayscale;
    so.encoder.device = e.device;
    so.poolings = opt["poolings"].get<std::vector<std::string>>();
    so.correlation = opt["correlation"].get<double>();
    so.prevalence = opt["prevalence"].get<double>();
    so.n_train = opt["n_train"].get<std::size_t>();
    so.n_test = opt["n_test"].get<std::size_t>();
    so.size = opt["size"].get<int>();
    so.baseline_epochs = opt["baseline_epochs"].get<int>();
    so.baseline_size = opt["baseline_size"].get<int>();
    so.c_grid = probes::parse_c_grid(opt["c_grid"].get<std::string>());
    so.n_boot = n_boot_of(s);
    so.level = s.grid.config.statistics.level;
    so.seed = seed_of(s);
    so.work_dir = s.run_dir / "phantoms";
    so.out = s.run_dir;
    so.threads = s.grid.options.threads;
    so.progress = s.grid.options.progress;
    return record_analysis(s, analysis::run_shortcut(so));
}

/// The predictions of the run it splits, joined to the manifest's attributes of each image.
std::string run_subgroups(RunStep& s) {
    const PlanStep& src = s.grid.built.plan.steps.at(s.grid.built.step_source[s.index]);
    const auto source = s.grid.db.find_completed_run(src.spec.config_hash);
    RADPROBE_CHECK(source.has_value(), "the run it splits (", src.describe(), ") did not complete");
    analysis::SubgroupOptions so;
    so.attributes = s.options["attributes"].get<std::vector<std::string>>();
    so.images =
        analysis::scored_images_from_run(s.grid.db, *source, s.grid.manifest(), so.attributes);
    so.source = src.describe();
    so.n_boot = n_boot_of(s);
    so.level = s.grid.config.statistics.level;
    so.seed = seed_of(s);
    return record_analysis(s, analysis::run_subgroups(so));
}

#endif  // RADPROBE_HAVE_ANALYSIS

/// A family of runs: the adaptations it runs (`kind`, or every adaptation starting with it when
/// `prefix`) and its function.
struct StepFamily {
    std::string_view kind;
    bool prefix = false;
    StepFunction run = nullptr;
};

constexpr StepFamily kFamilies[] = {
    {"linear", false, run_probe},
    {"knn", false, run_probe},
    {"attention", false, run_trained_head},
    {"mlp", false, run_trained_head},
    {"finetune", false, run_finetune},
    {"segment-", true, run_segmentation},
    {"unet_baseline", false, run_segmentation},
    {"cnn_baseline", false, run_cnn_baseline},
#ifdef RADPROBE_HAVE_ANALYSIS
    {"analysis:perturb", false, run_perturb},
    {"analysis:lesions", false, run_lesions},
    {"analysis:shortcut", false, run_shortcut},
    {"analysis:subgroups", false, run_subgroups},
#endif
};

}  // namespace

StepFunction find_step_function(const std::string& adaptation) {
    for (const auto& f : kFamilies) {
        if (f.prefix ? adaptation.rfind(f.kind, 0) == 0 : adaptation == f.kind) {
            return f.run;
        }
    }
    return nullptr;
}

}  // namespace radprobe::experiment::detail
