// The plan of a benchmark grid: ordered steps, their config hashes, what is cached, rough cost
// (plan.hpp), and its text form.

#include "plan.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "adaptations.hpp"
#include "model_folders.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/model_dir.hpp"

namespace radprobe::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace detail {

namespace {

// ---------------------------------------------------------------------------------------------
// Data and encoders: what every run's hash includes
// ---------------------------------------------------------------------------------------------

/// The data part of a run's hash: the manifest read; for the roi pooling also boxes.csv and
/// the task's ROI source (over boxes: the control-region rule and seed, see roi_data()); for the
/// lesion probe boxes.csv.
struct DataIds {
    json plain, roi, boxes;
};

/// The manifest the runs read: the config's, or a copy with a patient-level split beside it.
void plan_manifest(const ExperimentConfig& c, Built& b) {
    if (c.data.split.use_manifest) {
        b.manifest = c.data.manifest;
        b.manifest_text = read_file_text(c.data.manifest);
    } else {
        dataset::ManifestOptions mo;
        mo.boxes = c.data.boxes;
        const auto m = dataset::Manifest::load(c.data.manifest, mo);
        dataset::SplitOptions so;
        so.val = c.data.split.val;
        so.test = c.data.split.test;
        so.seed = c.data.split.seed;
        so.stratify = c.data.split.stratify;
        b.manifest_text = dataset::manifest_with_splits(m, dataset::assign_splits(m, so));
        // Beside the original, so that relative image / mask paths and boxes.csv still hold.
        b.manifest = c.data.manifest.parent_path() /
                     (c.data.manifest.stem().string() + ".radprobe-split-" +
                      features::content_hash(b.manifest_text).substr(0, 8) + ".csv");
    }
    b.images =
        static_cast<std::int64_t>(CsvTable::parse(b.manifest_text, b.manifest.string()).num_rows());
}

DataIds data_ids(const ExperimentConfig& c, const Built& b) {
    DataIds ids;
    ids.plain = {{"manifest", features::content_hash(b.manifest_text)}};
    const fs::path boxes =
        c.data.boxes ? *c.data.boxes : c.data.manifest.parent_path() / "boxes.csv";
    ids.boxes = ids.plain;
    ids.boxes["boxes"] = fs::exists(boxes) ? features::content_hash(read_file_text(boxes)) : "";
    ids.roi = ids.boxes;  // completed per task by roi_data()
    return ids;
}

// Rough forward cost in GFLOP of a ViT-style encoder at side × side input (0 = unknown).
double vit_gflop(const encoders::ModelConfig& m, std::int64_t side) {
    if (m.is_hierarchical() || m.patch_size <= 0 || m.hidden_size <= 0 || side <= 0) {
        return 0.0;
    }
    const double g = static_cast<double>(side / m.patch_size);
    const double t = g * g + (m.has_cls_token ? 1 : 0) + static_cast<double>(m.num_register_tokens);
    const double d = static_cast<double>(m.hidden_size);
    const double inner =
        m.intermediate_size > 0 ? static_cast<double>(m.intermediate_size) : d * m.mlp_ratio;
    const double per_layer = 2.0 * t * (4.0 * d * d + 2.0 * d * inner) + 4.0 * t * t * d;
    return per_layer * static_cast<double>(m.num_hidden_layers) * 1e-9;
}

/// The model's input side from its preprocessor (the crop, else the resize; 0 = unknown).
std::int64_t input_side(const json& pre) {
    if (pre.value("do_center_crop", false) && pre.contains("crop_size")) {
        const auto& c = pre["crop_size"];
        if (c.is_object() && c.contains("height")) {
            return c["height"].get<std::int64_t>();
        }
        if (c.is_number()) {
            return c.get<std::int64_t>();
        }
    }
    if (pre.contains("size")) {
        const auto& s = pre["size"];
        if (s.is_object() && s.contains("shortest_edge")) {
            return s["shortest_edge"].get<std::int64_t>();
        }
        if (s.is_object() && s.contains("height")) {
            return s["height"].get<std::int64_t>();
        }
        if (s.is_number()) {
            return s.get<std::int64_t>();
        }
    }
    return 0;
}

std::string layers_text(const std::vector<int>& layers) {
    if (layers.empty()) {
        return "last";
    }
    std::string s;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        s += (i ? "," : "") + std::to_string(layers[i]);
    }
    return s;
}

/// A random ViT's overrides as given (its preprocessor does not exist before it is generated).
json override_json(const PreprocessOverride& o) {
    json ov = json::object();
    if (o.size) {
        ov["size"] = *o.size;
    }
    if (o.crop) {
        ov["crop"] = *o.crop;
    }
    if (o.mean) {
        ov["mean"] = *o.mean;
    }
    if (o.std) {
        ov["std"] = *o.std;
    }
    if (o.resample) {
        ov["resample"] = *o.resample;
    }
    return ov;
}

/// The encoder's identity (hashed into its runs), weights hash and forward cost.
void identify_encoder(const EncoderConfig& e, EncoderInfo& info) {
    json id;
    id["name"] = e.name;
    encoders::ModelConfig model;
    json pre;
    if (e.random_vit) {
        info.weights_hash =
            "random-vit:" + features::content_hash(random_vit_json(*e.random_vit).dump());
        id["random_vit"] = random_vit_json(*e.random_vit);
        id["preprocessing"] = override_json(e.preprocessing);
        model.model_type = "dinov2";
        model.hidden_size = e.random_vit->hidden_size;
        model.num_hidden_layers = e.random_vit->layers;
        model.patch_size = e.random_vit->patch_size;
        model.image_size = e.random_vit->image_size;
        const auto side = e.random_vit->image_size;
        pre = apply_override(
            json{{"do_center_crop", true}, {"crop_size", {{"height", side}, {"width", side}}}},
            e.preprocessing);
    } else {
        info.weights_hash = weights_hash_of(e.path);
        id["weights"] = info.weights_hash;
        id["model_config"] = model_config_hash(e.path);
        if (!e.checkpoint_key.empty()) {  // absent otherwise: earlier run hashes stay valid
            id["checkpoint_key"] = e.checkpoint_key;
        }
        if (!e.dtype.empty() && e.dtype != "fp32") {
            id["dtype"] = e.dtype;
        }
        pre = effective_preprocessor(e, e.path);
        id["preprocessing"] = pre;
        model =
            encoders::read_model_config(e.path, encoders::LoadOptions::with_key(e.checkpoint_key));
    }
    id["layers"] = e.layers;
    id["fold_grayscale"] = e.fold_grayscale;
    info.identity = id;
    info.gflop_per_image = vit_gflop(model, input_side(pre));
}

/// Whether the encoder's store is complete already. Its key comes from a model folder: the
/// real prepared one when it is current, else a preview made under `preview_root`.
void find_store(const ExperimentConfig& c, const EncoderConfig& e, const fs::path& manifest,
                const fs::path& preview_root, EncoderInfo& info) {
    const fs::path prepared = c.output.store / "models" / e.name;
    try {
        fs::path dir;
        if (e.random_vit) {
            const fs::path spec_file = prepared / "radprobe_random_vit.json";
            if (fs::exists(spec_file) &&
                read_file_text(spec_file) == random_vit_json(*e.random_vit).dump() &&
                fs::exists(prepared / "model.safetensors")) {
                dir = preview_root / e.name;
                EncoderConfig copy = e;
                copy.random_vit.reset();
                copy.path = prepared;
                prepare_model_dir(copy, prepared, dir, false);
                // The random ViT's base processor, not the prepared folder's own.
                write_file_atomic(dir / "preprocessor_config.json",
                                  effective_preprocessor(e, prepared).dump(2) + "\n");
            }
        } else {
            dir = preview_root / e.name;
            prepare_model_dir(e, e.path, dir, false);
        }
        if (!dir.empty()) {
            const auto eo = extract_options(c, e, dir, manifest);
            const std::string key = features::store_key(eo);
            info.store_dir = c.output.store / (e.name + "-" + key.substr(0, 12));
            info.store_complete = fs::exists(info.store_dir / "COMPLETE");
            const auto sources = roi_sources(c);
            for (std::size_t k = 1; k < sources.size(); ++k) {
                const std::string roi_key =
                    features::store_key(extract_options(c, e, dir, manifest, sources[k]));
                info.roi_store_dirs.push_back(c.output.store /
                                              (e.name + "-" + roi_key.substr(0, 12)));
                info.roi_store_complete.push_back(
                    fs::exists(info.roi_store_dirs.back() / "COMPLETE"));
            }
        }
    } catch (const std::exception&) {
        // The manifest copy does not exist yet (dry run of a patient split): unknown.
    }
}

bool has_adaptation(const ExperimentConfig& c, const std::string& kind) {
    return std::any_of(c.adaptations.begin(), c.adaptations.end(),
                       [&](const auto& a) { return a.kind == kind; });
}

/// Adaptations that read the embedding store of the extraction step.
bool uses_store(const std::string& kind) {
    return is_probe(kind) || is_trained_head(kind);
}

json statistics_json(const StatisticsOptions& s) {
    return {{"ci", s.ci}, {"n_boot", s.n_boot}, {"level", s.level}};
}

// ---------------------------------------------------------------------------------------------
// The grid, phase by phase
// ---------------------------------------------------------------------------------------------

class PlanBuilder {
public:
    PlanBuilder(const ExperimentConfig& c, results::ResultsDb* db, Built& b)
        : c_(c),
          db_(db),
          b_(b),
          ids_(data_ids(c, b)),
          extract_of_(b.encoders.size(), kNone),
          roi_extract_of_(b.encoders.size()) {}

    /// Phase 1: per encoder, its embeddings once, then the cheap probes on them.
    void add_extractions_and_probes();
    /// Phase 2: trained heads on the stored features.
    void add_trained_heads();
    /// Phase 3: fine-tuning, segmentation, the from-scratch baselines.
    void add_trained_models();
    /// Phase 4: analyses.
    void add_analyses();
    /// An extraction whose runs are all in the database is not needed.
    void skip_unneeded_extractions();
    /// The roi-only extractions of an encoder (roi_sources()[1..]).
    void add_roi_extractions(std::size_t enc);
    /// An extraction step of `info`'s encoder over every image (pooling and cache to fill in).
    PlanStep extraction_step(const EncoderInfo& info) const;
    /// Phase 5: comparisons and the report.
    void add_comparisons_and_report();

private:
    void add(PlanStep step, std::size_t enc, std::size_t source = kNone, std::string roi = "");
    /// One run: its spec (config JSON and hash) and whether the database has it.
    PlanStep run_step(const std::string& adaptation, const json& options, int phase,
                      std::size_t enc, const std::string& task, const std::string& pooling,
                      std::int64_t seed, const json& data, json extra = json::object()) const;
    void add_image_analysis(const AnalysisConfig& a, const json& options,
                            std::size_t before_analyses);
    void add_shortcut(const AnalysisConfig& a, const json& options);
    void add_subgroups(const AnalysisConfig& a, const json& options, std::size_t before_analyses);
    json data_for(const std::string& pooling, const std::string& task) const {
        if (pooling != "roi") {
            return ids_.plain;
        }
        json d = ids_.roi;
        d["roi_source"] = c_.data.roi_source_for(task);
        if (d["roi_source"].get<std::string>().rfind("boxes", 0) == 0) {
            d["roi_controls"] = {{"rule", features::kControlRegionRule},
                                 {"seed", c_.seeds.front()}};
        }
        return d;
    }
    /// The extraction step a run of `pooling` on `task` reads.
    std::size_t extract_for(std::size_t enc, const std::string& pooling,
                            const std::string& task) const {
        if (pooling == "roi") {
            const auto sources = roi_sources(c_);
            const auto it = std::find(sources.begin(), sources.end(), c_.data.roi_source_for(task));
            if (it != sources.begin() && it != sources.end()) {
                return roi_extract_of_[enc][static_cast<std::size_t>(it - sources.begin()) - 1];
            }
        }
        return extract_of_[enc];
    }

    const ExperimentConfig& c_;
    results::ResultsDb* db_;
    Built& b_;
    DataIds ids_;
    std::vector<std::size_t> extract_of_;  // per encoder: its extraction step (or kNone)
    // per encoder: its roi-only extraction steps, one per roi_sources()[1..]
    std::vector<std::vector<std::size_t>> roi_extract_of_;
};

void PlanBuilder::add(PlanStep step, std::size_t enc, std::size_t source, std::string roi) {
    b_.plan.steps.push_back(std::move(step));
    b_.step_encoder.push_back(enc);
    b_.step_source.push_back(source);
    b_.step_roi.push_back(std::move(roi));
}

PlanStep PlanBuilder::run_step(const std::string& adaptation, const json& options, int phase,
                               std::size_t enc, const std::string& task, const std::string& pooling,
                               std::int64_t seed, const json& data, json extra) const {
    PlanStep s;
    s.kind = StepKind::kRun;
    s.phase = phase;
    s.adaptation = adaptation;
    s.task = task;
    s.pooling = pooling;
    s.seed = seed;
    json cfg = std::move(extra);
    cfg["hash_version"] = kRunHashVersion;
    cfg["adaptation"] = adaptation;
    cfg["options"] = options;
    cfg["task"] = task;
    cfg["seed"] = seed;
    cfg["statistics"] = statistics_json(c_.statistics);
    cfg["data"] = data;
    if (enc != kNone) {
        const auto& info = b_.encoders[enc];
        s.encoder = info.config->name;
        cfg["encoder"] = info.identity;
        s.spec.encoder = info.config->name;
        s.spec.weights_hash = info.weights_hash;
        s.spec.layers = info.layers_text;
    } else if (adaptation == "cnn_baseline") {
        s.spec.encoder = "cnn-from-scratch";
    } else if (adaptation == "unet_baseline") {
        s.spec.encoder = "unet-from-scratch";
    }
    if (!pooling.empty()) {
        cfg["pooling"] = pooling;
    }
    s.spec.config_json = cfg.dump();
    s.spec.config_hash = config_hash(s.spec.config_json);
    s.spec.task = task;
    s.spec.adaptation = adaptation;
    s.spec.pooling = pooling.empty() ? "-" : pooling;
    s.spec.seed = seed;
    if (db_) {
        if (const auto run = db_->find_completed_run(s.spec.config_hash)) {
            s.cached = true;
            s.cache_note = "run " + std::to_string(*run) + " in the database";
        }
    }
    s.images = b_.images;
    return s;
}

PlanStep PlanBuilder::extraction_step(const EncoderInfo& info) const {
    PlanStep x;
    x.kind = StepKind::kExtract;
    x.phase = 1;
    x.encoder = info.config->name;
    x.images = b_.images;
    x.gflop = info.gflop_per_image * static_cast<double>(b_.images);
    return x;
}

void PlanBuilder::add_extractions_and_probes() {
    const bool any_store = std::any_of(c_.adaptations.begin(), c_.adaptations.end(),
                                       [](const auto& a) { return uses_store(a.kind); });
    for (std::size_t e = 0; e < b_.encoders.size() && any_store; ++e) {
        const auto& info = b_.encoders[e];
        PlanStep x = extraction_step(info);
        x.cached = info.store_complete;
        if (x.cached) {
            x.cache_note = "store " + info.store_dir.string() + " COMPLETE";
        }
        for (const auto& p : c_.poolings) {
            x.pooling += (x.pooling.empty() ? "" : ",") + p;
        }
        if (has_adaptation(c_, "attention")) {
            x.pooling += ",patches";
        }
        extract_of_[e] = b_.plan.steps.size();
        add(std::move(x), e);
        add_roi_extractions(e);
        for (const auto& a : c_.adaptations) {
            if (!is_probe(a.kind)) {
                continue;
            }
            const json options = json::parse(a.options_json);
            for (const auto& pooling : c_.poolings) {
                for (const auto& task : c_.classification) {
                    for (const auto seed : c_.seeds) {
                        auto s = run_step(a.kind, options, 1, e, task, pooling, seed,
                                          data_for(pooling, task));
                        s.depends_on = extract_for(e, pooling, task);
                        add(std::move(s), e);
                    }
                }
            }
        }
    }
}

void PlanBuilder::add_trained_heads() {
    for (const auto& a : c_.adaptations) {
        if (!is_trained_head(a.kind)) {
            continue;
        }
        const json options = json::parse(a.options_json);
        const std::vector<std::string> pools =
            a.kind == "attention" ? std::vector<std::string>{"patches"} : c_.poolings;
        for (std::size_t e = 0; e < b_.encoders.size(); ++e) {
            for (const auto& pooling : pools) {
                for (const auto& task : c_.classification) {
                    for (const auto seed : c_.seeds) {
                        auto s = run_step(a.kind, options, 2, e, task, pooling, seed,
                                          data_for(pooling, task));
                        s.depends_on = extract_for(e, pooling, task);
                        add(std::move(s), e);
                    }
                }
            }
        }
    }
}

void PlanBuilder::add_trained_models() {
    for (const auto& a : c_.adaptations) {
        const json options = json::parse(a.options_json);
        if (a.kind == "finetune") {
            for (std::size_t e = 0; e < b_.encoders.size(); ++e) {
                for (const auto& task : c_.classification) {
                    for (const auto seed : c_.seeds) {
                        add(run_step(a.kind, options, 3, e, task, "", seed, ids_.plain), e);
                    }
                }
            }
        } else if (a.kind == "segment") {
            // Each decoder is its own run: its options name the one decoder it trains.
            for (const auto& decoder : options["decoders"]) {
                json o = options;
                o.erase("decoders");
                o["decoder"] = decoder;
                const std::string kind = "segment-" + decoder.get<std::string>();
                for (std::size_t e = 0; e < b_.encoders.size(); ++e) {
                    for (const auto& task : c_.segmentation) {
                        for (const auto seed : c_.seeds) {
                            add(run_step(kind, o, 3, e, task, "", seed, ids_.plain), e);
                        }
                    }
                }
            }
        }
    }
    for (const auto& a : c_.adaptations) {
        if (a.kind != "cnn_baseline" && a.kind != "unet_baseline") {
            continue;
        }
        const json options = json::parse(a.options_json);
        const auto& tasks = a.kind == "cnn_baseline" ? c_.classification : c_.segmentation;
        for (const auto& task : tasks) {
            for (const auto seed : c_.seeds) {
                add(run_step(a.kind, options, 3, kNone, task, "", seed, ids_.plain), kNone);
            }
        }
    }
}

void PlanBuilder::add_image_analysis(const AnalysisConfig& a, const json& options,
                                     std::size_t before_analyses) {
    const std::string name = "analysis:" + a.kind;
    const std::string task =
        a.kind == "perturb" ? "perturbation panel" : options["label"].get<std::string>();
    const json& data = a.kind == "lesions" ? ids_.boxes : ids_.plain;
    for (std::size_t e = 0; e < b_.encoders.size(); ++e) {
        for (const auto seed : c_.seeds) {
            add(run_step(name, options, 4, e, task, "", seed, data), e);
        }
    }
    // The supervised baseline's features too: each CNN baseline run exports its trained network
    // as an encoder directory (adapt::BaselineResult::encoder_dir).
    for (std::size_t i = 0; i < before_analyses; ++i) {
        const PlanStep& src = b_.plan.steps[i];
        if (src.kind != StepKind::kRun || src.adaptation != "cnn_baseline") {
            continue;
        }
        json extra;
        extra["source_run"] = src.spec.config_hash;
        auto s = run_step(name, options, 4, kNone, task, "", src.seed, data, extra);
        s.encoder = "cnn-from-scratch:" + src.task;
        s.spec.encoder = s.encoder;
        s.spec.notes = "on the features of cnn_baseline run " + src.spec.config_hash;
        add(std::move(s), kNone, i);
    }
}

void PlanBuilder::add_shortcut(const AnalysisConfig& a, const json& options) {
    // The CNN baseline (baseline_epochs > 0) is trained in the first encoder's run only.
    for (std::size_t e = 0; e < b_.encoders.size(); ++e) {
        json o = options;
        if (e > 0) {
            o["baseline_epochs"] = 0;
        }
        for (const auto seed : c_.seeds) {
            add(run_step("analysis:" + a.kind, o, 4, e, "chest-tube shortcut", "", seed,
                         json(nullptr)),
                e);
        }
    }
}

void PlanBuilder::add_subgroups(const AnalysisConfig& a, const json& options,
                                std::size_t before_analyses) {
    for (std::size_t i = 0; i < before_analyses; ++i) {
        const PlanStep& src = b_.plan.steps[i];
        if (src.kind != StepKind::kRun || adaptation_is_segmentation(src.adaptation) ||
            src.adaptation.rfind("segment", 0) == 0) {
            continue;
        }
        const std::size_t enc = b_.step_encoder[i];
        json extra;
        extra["source_run"] = src.spec.config_hash;
        auto s = run_step("analysis:" + a.kind, options, 4, enc, src.task, src.pooling, src.seed,
                          ids_.plain, extra);
        if (enc == kNone) {
            s.spec.encoder = src.spec.encoder;
        }
        // The plan line names the adaptation it splits (linear and kNN runs of the same encoder,
        // pooling and task are otherwise indistinguishable there).
        s.encoder = (src.encoder.empty() ? src.spec.encoder : src.encoder) + " / " + src.adaptation;
        s.spec.notes = "subgroups of " + src.adaptation + " run " + src.spec.config_hash;
        add(std::move(s), enc, i);
    }
}

void PlanBuilder::add_analyses() {
    const std::size_t before_analyses = b_.plan.steps.size();
    for (const auto& a : c_.analyses) {
        const json options = json::parse(a.options_json);
        if (a.kind == "perturb" || a.kind == "lesions") {
            add_image_analysis(a, options, before_analyses);
        } else if (a.kind == "shortcut") {
            add_shortcut(a, options);
        } else if (a.kind == "subgroups") {
            add_subgroups(a, options, before_analyses);
        }
    }
}

void PlanBuilder::add_roi_extractions(std::size_t e) {
    const auto sources = roi_sources(c_);
    const auto& info = b_.encoders[e];
    for (std::size_t k = 1; k < sources.size(); ++k) {
        PlanStep x = extraction_step(info);
        x.pooling = "roi over " + sources[k];
        if (k - 1 < info.roi_store_complete.size() && info.roi_store_complete[k - 1]) {
            x.cached = true;
            x.cache_note = "store " + info.roi_store_dirs[k - 1].string() + " COMPLETE";
        }
        roi_extract_of_[e].push_back(b_.plan.steps.size());
        add(std::move(x), e, kNone, sources[k]);
    }
}

void PlanBuilder::skip_unneeded_extractions() {
    for (std::size_t x = 0; x < b_.plan.steps.size(); ++x) {
        if (b_.plan.steps[x].kind != StepKind::kExtract || b_.plan.steps[x].cached) {
            continue;
        }
        const bool all_cached =
            std::all_of(b_.plan.steps.begin(), b_.plan.steps.end(), [&](const PlanStep& s) {
                return s.depends_on != std::optional<std::size_t>(x) || s.cached;
            });
        if (all_cached) {
            auto& xs = b_.plan.steps[x];
            xs.cached = true;
            xs.cache_note = "not needed: every run on it is in the database";
            xs.gflop = 0.0;
        }
    }
}

void PlanBuilder::add_comparisons_and_report() {
    if (c_.statistics.compare && !c_.classification.empty()) {
        PlanStep s;
        s.kind = StepKind::kComparisons;
        s.phase = 5;
        add(std::move(s), kNone);
    }
    if (!c_.output.report.empty() || !c_.output.report_md.empty()) {
        PlanStep s;
        s.kind = StepKind::kReport;
        s.phase = 5;
        add(std::move(s), kNone);
    }
}

std::string format_gflop(double g) {
    char buf[64];
    if (g <= 0.0) {
        return "";
    }
    if (g >= 1000.0) {
        std::snprintf(buf, sizeof buf, "%.1f TFLOP", g / 1000.0);
    } else if (g < 1.0) {
        std::snprintf(buf, sizeof buf, "%.1f MFLOP", g * 1000.0);
    } else {
        std::snprintf(buf, sizeof buf, "%.2f GFLOP", g);
    }
    return buf;
}

/// What the plan line of a step says about it: cached (where), or to run and its rough cost.
std::string step_status(const PlanStep& s) {
    std::string status;
    if (s.kind == StepKind::kComparisons || s.kind == StepKind::kReport) {
        status = "always";
    } else if (s.cached) {
        status = "cached: " + s.cache_note;
    } else {
        status = "to run";
        if (s.kind == StepKind::kExtract) {
            status += s.gflop > 0 ? ", ~" + format_gflop(s.gflop) : ", cost unknown";
        } else if (is_probe(s.adaptation)) {
            status += ", seconds";
        } else if (s.adaptation.rfind("analysis:", 0) == 0) {
            status +=
                s.adaptation == "analysis:subgroups" ? ", seconds" : ", forward passes + probes";
        } else {
            status += ", trains on up to " + std::to_string(s.images) + " images";
        }
    }
    if (s.kind == StepKind::kRun) {
        status += "  [" + s.spec.config_hash + "]";
    }
    return status;
}

}  // namespace

std::vector<std::string> roi_sources(const ExperimentConfig& c) {
    std::vector<std::string> sources;
    if (std::find(c.poolings.begin(), c.poolings.end(), "roi") == c.poolings.end()) {
        return sources;
    }
    for (const auto& task : c.classification) {
        const std::string s = c.data.roi_source_for(task);
        if (std::find(sources.begin(), sources.end(), s) == sources.end()) {
            sources.push_back(s);
        }
    }
    return sources;
}

features::ExtractOptions extract_options(const ExperimentConfig& c, const EncoderConfig& e,
                                         const fs::path& model_dir, const fs::path& manifest,
                                         const std::string& roi_only) {
    features::ExtractOptions eo;
    eo.model_dir = model_dir;
    eo.manifest = manifest;
    eo.boxes = c.data.boxes;
    const auto sources = roi_sources(c);
    std::string text;
    for (std::size_t i = 0; i < c.poolings.size() && roi_only.empty(); ++i) {
        if (c.poolings[i] != "roi" || !sources.empty()) {
            text += (text.empty() ? "" : ",") + c.poolings[i];
        }
    }
    if (has_adaptation(c, "attention") && roi_only.empty()) {
        text += ",patches";  // the attention head reads every patch token
    }
    eo.poolings = features::parse_poolings(roi_only.empty() ? text : std::string("roi"));
    eo.layers = e.layers;
    eo.roi_source =
        !roi_only.empty() ? roi_only : (sources.empty() ? c.data.roi_source : sources.front());
    eo.roi_seed = static_cast<std::uint64_t>(c.seeds.front());
    eo.store_root = c.output.store;
    eo.batch = e.batch;
    eo.fold_grayscale = e.fold_grayscale;
    eo.device = e.device;
    eo.shard_size = c.output.shard_size;
    return eo;
}

Built build_plan(const ExperimentConfig& c, results::ResultsDb* db, const fs::path& preview_root) {
    Built b;
    plan_manifest(c, b);
    const bool any_store = std::any_of(c.adaptations.begin(), c.adaptations.end(),
                                       [](const auto& a) { return uses_store(a.kind); });
    for (const auto& e : c.encoders) {
        EncoderInfo info;
        info.config = &e;
        info.layers_text = layers_text(e.layers);
        identify_encoder(e, info);
        if (any_store) {
            find_store(c, e, b.manifest, preview_root, info);
        }
        b.encoders.push_back(std::move(info));
    }
    PlanBuilder grid(c, db, b);
    grid.add_extractions_and_probes();
    grid.add_trained_heads();
    grid.add_trained_models();
    grid.add_analyses();
    grid.skip_unneeded_extractions();
    grid.add_comparisons_and_report();
    return b;
}

ScratchDir::ScratchDir() {
    std::string tmpl = (fs::temp_directory_path() / "radprobe-plan-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
        throw InputError("cannot create a temporary folder in " +
                         fs::temp_directory_path().string());
    }
    path_ = tmpl;
}

ScratchDir::~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

}  // namespace detail

std::string PlanStep::describe() const {
    switch (kind) {
        case StepKind::kExtract:
            return "extract " + encoder + " (" + pooling + "; " + std::to_string(images) +
                   " images)";
        case StepKind::kComparisons:
            return "comparisons (paired DeLong against each task's best run, FDR) and the "
                   "shortcut alarm";
        case StepKind::kReport:
            return "report";
        case StepKind::kRun:
            break;
    }
    std::string s = adaptation + "  " + (encoder.empty() ? spec.encoder : encoder);
    if (!pooling.empty()) {
        s += "  " + pooling;
    }
    return s + "  " + task + "  seed " + std::to_string(seed);
}

std::size_t Plan::runs() const {
    return static_cast<std::size_t>(std::count_if(
        steps.begin(), steps.end(), [](const auto& s) { return s.kind == StepKind::kRun; }));
}

std::size_t Plan::cached_runs() const {
    return static_cast<std::size_t>(std::count_if(steps.begin(), steps.end(), [](const auto& s) {
        return s.kind == StepKind::kRun && s.cached;
    }));
}

Plan make_plan(const ExperimentConfig& config, results::ResultsDb* db) {
    return detail::build_plan(config, db).plan;
}

namespace detail {

Built build_plan(const ExperimentConfig& c, results::ResultsDb* db) {
    ScratchDir scratch;
    return build_plan(c, db, scratch.path());
}

bool write_split_manifest(const ExperimentConfig& c, const Built& b) {
    if (c.data.split.use_manifest || fs::exists(b.manifest)) {
        return false;
    }
    write_file_atomic(b.manifest, b.manifest_text);
    return true;
}

std::vector<std::size_t> cell_units(const Built& b) {
    std::vector<std::size_t> unit(b.plan.steps.size(), kNone);
    std::size_t next = 0;
    for (std::size_t i = 0; i < b.plan.steps.size(); ++i) {
        if (b.plan.steps[i].kind != StepKind::kRun) {
            continue;
        }
        const std::size_t source = b.step_source[i];  // earlier in the plan than its readers
        unit[i] = source != kNone && unit[source] != kNone ? unit[source] : next++;
    }
    return unit;
}

std::size_t count_units(const std::vector<std::size_t>& units) {
    std::size_t n = 0;
    for (const std::size_t u : units) {
        n = u == kNone ? n : std::max(n, u + 1);
    }
    return n;
}

}  // namespace detail

std::string format_plan(const Plan& plan) {
    double gflop = 0.0;
    for (const auto& s : plan.steps) {
        gflop += s.cached ? 0.0 : s.gflop;
    }
    std::string out = "plan: " + std::to_string(plan.steps.size()) + " steps, " +
                      std::to_string(plan.runs()) + " runs (" + std::to_string(plan.cached_runs()) +
                      " in the database, " + std::to_string(plan.runs() - plan.cached_runs()) +
                      " to run)";
    if (gflop > 0) {
        out += ", encoder forward passes ~" + detail::format_gflop(gflop);
    }
    out += "\n";
    int phase = 0;
    static const char* const kPhases[] = {"",
                                          "embeddings and probes",
                                          "trained heads",
                                          "fine-tuning, segmentation, baselines",
                                          "analyses",
                                          "comparisons and report"};
    for (std::size_t i = 0; i < plan.steps.size(); ++i) {
        const auto& s = plan.steps[i];
        if (s.phase != phase) {
            phase = s.phase;
            out += "phase " + std::to_string(phase) + ": " + kPhases[phase] + "\n";
        }
        char head[32];
        std::snprintf(head, sizeof head, "  %3zu  ", i + 1);
        std::string line = head + s.describe();
        if (line.size() < 64) {
            line.resize(64, ' ');
        }
        out += line + "  " + detail::step_status(s) + "\n";
    }
    return out;
}

}  // namespace radprobe::experiment
