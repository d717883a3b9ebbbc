// `radprobe run`: the plan of a benchmark grid (ordered steps, config hashes, what is cached,
// rough cost) and its execution into the results database.

#include <nlohmann/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "radprobe/bench/experiment.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/heads/heads.hpp"
#include "runner_internal.hpp"

#ifdef RADPROBE_HAVE_ANALYSIS
#include "radprobe/analysis/analysis.hpp"
#endif

namespace radprobe::bench {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> available_adaptations() {
    return known_adaptations();
}

std::vector<std::string> available_analyses() {
#ifdef RADPROBE_HAVE_ANALYSIS
    return known_analyses();
#else
    return {};
#endif
}

namespace {

// ---------------------------------------------------------------------------------------------
// Encoders: identity (what the hash of its runs includes) and the prepared model folder
// ---------------------------------------------------------------------------------------------

json default_preprocessor() {
    return {{"image_processor_type", "BitImageProcessor"},
            {"do_resize", true},
            {"do_center_crop", true},
            {"do_rescale", true},
            {"rescale_factor", 1.0 / 255.0},
            {"do_normalize", true},
            {"resample", 3}};
}

int resample_code(const std::string& name) {
    if (name == "nearest") {
        return 0;
    }
    if (name == "lanczos") {
        return 1;
    }
    if (name == "bilinear") {
        return 2;
    }
    return 3;
}

json apply_override(json j, const PreprocessOverride& o) {
    if (o.size) {
        const bool crop = o.crop.value_or(true);
        j["do_resize"] = true;
        j["size"] = {{"shortest_edge", *o.size}};
        j["do_center_crop"] = crop;
        if (crop) {
            j["crop_size"] = {{"height", *o.size}, {"width", *o.size}};
        }
    } else if (o.crop) {
        j["do_center_crop"] = *o.crop;
    }
    if (o.mean) {
        j["image_mean"] = *o.mean;
    }
    if (o.std) {
        j["image_std"] = *o.std;
    }
    if (o.resample) {
        j["resample"] = resample_code(*o.resample);
    }
    return j;
}

json random_vit_json(const RandomVitParams& p) {
    return {{"hidden_size", p.hidden_size}, {"layers", p.layers},         {"heads", p.heads},
            {"patch_size", p.patch_size},   {"image_size", p.image_size}, {"seed", p.seed}};
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

struct EncoderInfo {
    const EncoderConfig* config = nullptr;
    json identity;  // hashed into every run of this encoder
    std::string weights_hash;
    std::string layers_text;
    double gflop_per_image = 0.0;
    fs::path store_dir;  // known when the prepared folder could be made (or dry-run preview)
    bool store_complete = false;
};

std::string weights_hash_of(const fs::path& dir) {
    if (fs::exists(dir / "model.safetensors")) {
        return features::content_hash_file(dir / "model.safetensors");
    }
    const std::string index = read_file_text(dir / "model.safetensors.index.json");
    std::string all = index;
    const auto j = json::parse(index);
    std::vector<std::string> files;
    for (const auto& [k, v] : j.at("weight_map").items()) {
        files.push_back(v.get<std::string>());
    }
    std::sort(files.begin(), files.end());
    files.erase(std::unique(files.begin(), files.end()), files.end());
    for (const auto& f : files) {
        all += features::content_hash_file(dir / f);
    }
    return features::content_hash(all);
}

// The effective preprocessor_config.json of an encoder (its own, or the random ViT's, with the
// config's overrides applied). For a random ViT not yet written: null.
json effective_preprocessor(const EncoderConfig& e, const fs::path& source) {
    json base = default_preprocessor();
    const fs::path own = e.random_vit ? source / "radprobe_base_preprocessor.json"
                                      : source / "preprocessor_config.json";
    if (fs::exists(own)) {
        base = json::parse(read_file_text(own));
    } else if (e.random_vit) {
        return nullptr;
    }
    return apply_override(base, e.preprocessing);
}

// Makes `dir` a model folder for the encoder: links to the source's files and the effective
// preprocessor_config.json (a random ViT is generated there on first use).
void prepare_model_dir(const EncoderConfig& e, const fs::path& source, const fs::path& dir,
                       bool generate) {
    fs::create_directories(dir);
    if (e.random_vit && generate) {
        const std::string spec = random_vit_json(*e.random_vit).dump();
        const fs::path spec_file = dir / "radprobe_random_vit.json";
        const bool same = fs::exists(spec_file) && fs::exists(dir / "model.safetensors") &&
                          fs::exists(dir / "radprobe_base_preprocessor.json") &&
                          read_file_text(spec_file) == spec;
        if (!same) {
            encoders::RandomVitSpec s;
            s.hidden_size = e.random_vit->hidden_size;
            s.num_hidden_layers = e.random_vit->layers;
            s.num_attention_heads = e.random_vit->heads;
            s.patch_size = e.random_vit->patch_size;
            s.image_size = e.random_vit->image_size;
            s.seed = e.random_vit->seed;
            encoders::write_random_vit(dir, s);
            write_file_atomic(dir / "radprobe_base_preprocessor.json",
                              read_file_text(dir / "preprocessor_config.json"));
            write_file_atomic(spec_file, spec);
        }
    } else if (source != dir) {
        for (const auto& entry : fs::directory_iterator(source)) {
            const std::string name = entry.path().filename().string();
            if (!entry.is_regular_file() || name == "preprocessor_config.json") {
                continue;
            }
            const fs::path link = dir / name;
            const fs::path target = fs::absolute(entry.path());
            std::error_code ec;
            if (fs::is_symlink(fs::symlink_status(link)) && fs::read_symlink(link, ec) == target) {
                continue;
            }
            fs::remove(link, ec);
            fs::create_symlink(target, link);
        }
    }
    const json pre = effective_preprocessor(e, e.random_vit ? dir : source);
    RADPROBE_ASSERT(!pre.is_null(), "no preprocessor for ", e.name);
    const std::string text = pre.dump(2) + "\n";
    const fs::path file = dir / "preprocessor_config.json";
    if (fs::is_symlink(fs::symlink_status(file)) || !fs::exists(file) ||
        read_file_text(file) != text) {
        std::error_code ec;
        fs::remove(file, ec);
        write_file_atomic(file, text);
    }
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

// ---------------------------------------------------------------------------------------------
// The grid
// ---------------------------------------------------------------------------------------------

struct Built {
    Plan plan;
    std::vector<EncoderInfo> encoders;
    std::vector<std::size_t> step_encoder;  // per step: index into encoders (or npos)
    std::vector<std::size_t> step_source;   // per step: the classification run a subgroup
                                            // analysis splits (or npos)
    fs::path manifest;                      // the manifest the runs read (maybe a split copy)
    std::string manifest_text;              // its content (written when it is a split copy)
    std::int64_t images = 0;
};

constexpr std::size_t kNone = static_cast<std::size_t>(-1);

bool is_probe(const std::string& kind) {
    return kind == "linear" || kind == "knn";
}
bool is_trained_head(const std::string& kind) {
    return kind == "attention" || kind == "mlp";
}
// Adaptations that read the embedding store of the extraction step.
bool uses_store(const std::string& kind) {
    return is_probe(kind) || is_trained_head(kind);
}

bool has_adaptation(const ExperimentConfig& c, const std::string& kind) {
    return std::any_of(c.adaptations.begin(), c.adaptations.end(),
                       [&](const auto& a) { return a.kind == kind; });
}

features::ExtractOptions extract_options(const ExperimentConfig& c, const EncoderConfig& e,
                                         const fs::path& model_dir, const fs::path& manifest) {
    features::ExtractOptions eo;
    eo.model_dir = model_dir;
    eo.manifest = manifest;
    eo.boxes = c.data.boxes;
    std::string text;
    for (std::size_t i = 0; i < c.poolings.size(); ++i) {
        text += (i ? "," : "") + c.poolings[i];
    }
    if (has_adaptation(c, "attention")) {
        text += ",patches";  // the attention head reads every patch token
    }
    eo.poolings = features::parse_poolings(text);
    eo.layers = e.layers;
    eo.roi_source = c.data.roi_source;
    eo.store_root = c.output.store;
    eo.batch = e.batch;
    eo.fold_grayscale = e.fold_grayscale;
    return eo;
}

json statistics_json(const StatisticsOptions& s) {
    return {{"ci", s.ci}, {"n_boot", s.n_boot}, {"level", s.level}};
}

Built build(const ExperimentConfig& c, ResultsDb* db, const fs::path& preview_root) {
    Built b;
    // Data: the manifest as the runs will read it.
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
    json data_id = {{"manifest", features::content_hash(b.manifest_text)}};
    json roi_data_id = data_id;
    roi_data_id["roi_source"] = c.data.roi_source;
    {
        const fs::path boxes =
            c.data.boxes ? *c.data.boxes : c.data.manifest.parent_path() / "boxes.csv";
        roi_data_id["boxes"] =
            fs::exists(boxes) ? features::content_hash(read_file_text(boxes)) : "";
    }
    json boxes_data_id = roi_data_id;
    boxes_data_id.erase("roi_source");

    // Encoders.
    const bool any_store = std::any_of(c.adaptations.begin(), c.adaptations.end(),
                                       [](const auto& a) { return uses_store(a.kind); });
    for (const auto& e : c.encoders) {
        EncoderInfo info;
        info.config = &e;
        info.layers_text = layers_text(e.layers);
        const fs::path prepared = c.output.store / "models" / e.name;
        json id;
        id["name"] = e.name;
        encoders::ModelConfig model;
        json pre;
        if (e.random_vit) {
            info.weights_hash =
                "random-vit:" + features::content_hash(random_vit_json(*e.random_vit).dump());
            id["random_vit"] = random_vit_json(*e.random_vit);
            json ov = json::object();
            const auto& o = e.preprocessing;
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
            id["preprocessing"] = ov;
            model.model_type = "dinov2";
            model.hidden_size = e.random_vit->hidden_size;
            model.num_hidden_layers = e.random_vit->layers;
            model.patch_size = e.random_vit->patch_size;
            model.image_size = e.random_vit->image_size;
            pre = apply_override(
                json{{"do_center_crop", true},
                     {"crop_size",
                      {{"height", e.random_vit->image_size}, {"width", e.random_vit->image_size}}}},
                e.preprocessing);
        } else {
            info.weights_hash = weights_hash_of(e.path);
            id["weights"] = info.weights_hash;
            id["model_config"] = features::content_hash(read_file_text(e.path / "config.json"));
            pre = effective_preprocessor(e, e.path);
            id["preprocessing"] = pre;
            model = encoders::read_model_config(e.path);
        }
        id["layers"] = e.layers;
        id["fold_grayscale"] = e.fold_grayscale;
        info.identity = id;
        info.gflop_per_image = vit_gflop(model, input_side(pre));

        // Is the store complete already? Keys come from a model folder: the real prepared one
        // when it is current, else a preview made in a temporary folder.
        if (any_store) {
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
                    const auto eo = extract_options(c, e, dir, b.manifest);
                    const std::string key = features::store_key(eo);
                    info.store_dir = c.output.store / (e.name + "-" + key.substr(0, 12));
                    info.store_complete = fs::exists(info.store_dir / "COMPLETE");
                }
            } catch (const std::exception&) {
                // The manifest copy does not exist yet (dry run of a patient split): unknown.
            }
        }
        b.encoders.push_back(std::move(info));
    }

    auto add = [&](PlanStep step, std::size_t enc, std::size_t source = kNone) {
        b.plan.steps.push_back(std::move(step));
        b.step_encoder.push_back(enc);
        b.step_source.push_back(source);
    };
    // One run: its spec (config JSON and hash) and whether the database has it.
    auto run_step = [&](const std::string& adaptation, const json& options, int phase,
                        std::size_t enc, const std::string& task, const std::string& pooling,
                        std::int64_t seed, const json& data, json extra = json::object()) {
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
        cfg["statistics"] = statistics_json(c.statistics);
        cfg["data"] = data;
        if (enc != kNone) {
            const auto& info = b.encoders[enc];
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
        if (db) {
            if (const auto run = db->find_completed_run(s.spec.config_hash)) {
                s.cached = true;
                s.cache_note = "run " + std::to_string(*run) + " in the database";
            }
        }
        s.images = b.images;
        return s;
    };
    auto options_of = [](const AdaptationConfig& a) { return json::parse(a.options_json); };

    // Phase 1: per encoder, its embeddings once, then the cheap probes on them.
    std::vector<std::size_t> extract_of(b.encoders.size(), kNone);
    for (std::size_t e = 0; e < b.encoders.size() && any_store; ++e) {
        const auto& info = b.encoders[e];
        PlanStep x;
        x.kind = StepKind::kExtract;
        x.phase = 1;
        x.encoder = info.config->name;
        x.images = b.images;
        x.gflop = info.gflop_per_image * static_cast<double>(b.images);
        x.cached = info.store_complete;
        if (x.cached) {
            x.cache_note = "store " + info.store_dir.string() + " COMPLETE";
        }
        std::string pools;
        for (const auto& p : c.poolings) {
            pools += (pools.empty() ? "" : ",") + p;
        }
        if (has_adaptation(c, "attention")) {
            pools += ",patches";
        }
        x.pooling = pools;
        extract_of[e] = b.plan.steps.size();
        add(std::move(x), e);
        for (const auto& a : c.adaptations) {
            if (!is_probe(a.kind)) {
                continue;
            }
            for (const auto& pooling : c.poolings) {
                for (const auto& task : c.classification) {
                    for (const auto seed : c.seeds) {
                        auto s = run_step(a.kind, options_of(a), 1, e, task, pooling, seed,
                                          pooling == "roi" ? roi_data_id : data_id);
                        s.depends_on = extract_of[e];
                        add(std::move(s), e);
                    }
                }
            }
        }
    }
    // Phase 2: trained heads on the stored features.
    for (const auto& a : c.adaptations) {
        if (!is_trained_head(a.kind)) {
            continue;
        }
        const std::vector<std::string> pools =
            a.kind == "attention" ? std::vector<std::string>{"patches"} : c.poolings;
        for (std::size_t e = 0; e < b.encoders.size(); ++e) {
            for (const auto& pooling : pools) {
                for (const auto& task : c.classification) {
                    for (const auto seed : c.seeds) {
                        auto s = run_step(a.kind, options_of(a), 2, e, task, pooling, seed,
                                          pooling == "roi" ? roi_data_id : data_id);
                        s.depends_on = extract_of[e];
                        add(std::move(s), e);
                    }
                }
            }
        }
    }
    // Phase 3: fine-tuning, segmentation, the from-scratch baselines.
    for (const auto& a : c.adaptations) {
        const json options = options_of(a);
        if (a.kind == "finetune") {
            for (std::size_t e = 0; e < b.encoders.size(); ++e) {
                for (const auto& task : c.classification) {
                    for (const auto seed : c.seeds) {
                        add(run_step(a.kind, options, 3, e, task, "", seed, data_id), e);
                    }
                }
            }
        } else if (a.kind == "segment") {
            for (const auto& decoder : options["decoders"]) {
                json o = options;
                o.erase("decoders");
                o["decoder"] = decoder;
                for (std::size_t e = 0; e < b.encoders.size(); ++e) {
                    for (const auto& task : c.segmentation) {
                        for (const auto seed : c.seeds) {
                            add(run_step("segment-" + decoder.get<std::string>(), o, 3, e, task, "",
                                         seed, data_id),
                                e);
                        }
                    }
                }
            }
        }
    }
    for (const auto& a : c.adaptations) {
        if (a.kind != "cnn_baseline" && a.kind != "unet_baseline") {
            continue;
        }
        const auto& tasks = a.kind == "cnn_baseline" ? c.classification : c.segmentation;
        for (const auto& task : tasks) {
            for (const auto seed : c.seeds) {
                add(run_step(a.kind, options_of(a), 3, kNone, task, "", seed, data_id), kNone);
            }
        }
    }
    // Phase 4: analyses.
    const std::size_t before_analyses = b.plan.steps.size();
    for (const auto& a : c.analyses) {
        const json options = json::parse(a.options_json);
        const std::string name = "analysis:" + a.kind;
        if (a.kind == "perturb" || a.kind == "lesions") {
            const std::string task =
                a.kind == "perturb" ? "perturbation panel" : options["label"].get<std::string>();
            const json& data = a.kind == "lesions" ? boxes_data_id : data_id;
            for (std::size_t e = 0; e < b.encoders.size(); ++e) {
                for (const auto seed : c.seeds) {
                    add(run_step(name, options, 4, e, task, "", seed, data), e);
                }
            }
            // The supervised baseline's features too: each CNN baseline run exports its trained
            // network as an encoder directory (heads::BaselineResult::encoder_dir).
            for (std::size_t i = 0; i < before_analyses; ++i) {
                const PlanStep& src = b.plan.steps[i];
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
        } else if (a.kind == "shortcut") {
            // The CNN baseline (baseline_epochs > 0) is trained in the first encoder's run only.
            for (std::size_t e = 0; e < b.encoders.size(); ++e) {
                json o = options;
                if (e > 0) {
                    o["baseline_epochs"] = 0;
                }
                for (const auto seed : c.seeds) {
                    add(run_step(name, o, 4, e, "chest-tube shortcut", "", seed, json(nullptr)), e);
                }
            }
        } else if (a.kind == "subgroups") {
            for (std::size_t i = 0; i < before_analyses; ++i) {
                const PlanStep& src = b.plan.steps[i];
                if (src.kind != StepKind::kRun ||
                    detail::adaptation_is_segmentation(src.adaptation) ||
                    src.adaptation.rfind("segment", 0) == 0) {
                    continue;
                }
                json extra;
                extra["source_run"] = src.spec.config_hash;
                auto s = run_step(name, options, 4, b.step_encoder[i], src.task, src.pooling,
                                  src.seed, data_id, extra);
                if (b.step_encoder[i] == kNone) {
                    s.spec.encoder = src.spec.encoder;
                }
                // The plan line names the adaptation it splits (linear and kNN runs of the same
                // encoder, pooling and task are otherwise indistinguishable there).
                s.encoder =
                    (src.encoder.empty() ? src.spec.encoder : src.encoder) + " / " + src.adaptation;
                s.spec.notes = "subgroups of " + src.adaptation + " run " + src.spec.config_hash;
                add(std::move(s), b.step_encoder[i], i);
            }
        }
    }
    // An extraction whose runs are all in the database is not needed.
    for (std::size_t e = 0; e < b.encoders.size(); ++e) {
        if (extract_of[e] == kNone || b.plan.steps[extract_of[e]].cached) {
            continue;
        }
        const bool all_cached =
            std::all_of(b.plan.steps.begin(), b.plan.steps.end(), [&](const PlanStep& s) {
                return s.depends_on != std::optional<std::size_t>(extract_of[e]) || s.cached;
            });
        if (all_cached) {
            auto& xs = b.plan.steps[extract_of[e]];
            xs.cached = true;
            xs.cache_note = "not needed: every run on it is in the database";
            xs.gflop = 0.0;
        }
    }
    // Phase 5: comparisons and the report.
    if (c.statistics.compare && !c.classification.empty()) {
        PlanStep s;
        s.kind = StepKind::kComparisons;
        s.phase = 5;
        add(std::move(s), kNone);
    }
    if (!c.output.report.empty() || !c.output.report_md.empty()) {
        PlanStep s;
        s.kind = StepKind::kReport;
        s.phase = 5;
        add(std::move(s), kNone);
    }
    return b;
}

// A temporary folder removed at scope exit (dry-run previews of model folders).
class ScratchDir {
public:
    ScratchDir() {
        std::string tmpl = (fs::temp_directory_path() / "radprobe-plan-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) {
            throw InputError("cannot create a temporary folder in " +
                             fs::temp_directory_path().string());
        }
        path_ = tmpl;
    }
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

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

void maybe_kill_for_test(std::size_t started) {
    static const long kill_at = [] {
        const char* v = std::getenv("RADPROBE_RUN_KILL_AT");
        return v ? std::strtol(v, nullptr, 10) : 0L;
    }();
    if (kill_at > 0 && started == static_cast<std::size_t>(kill_at)) {
        std::fflush(stdout);
        ::kill(::getpid(), SIGKILL);
    }
}

#ifdef RADPROBE_HAVE_ANALYSIS
analysis::CvOptions cv_options(const json& o, const StatisticsOptions& s) {
    analysis::CvOptions cv;
    cv.folds = o["folds"].get<int>();
    cv.c_grid = heads::parse_c_grid(o["c_grid"].get<std::string>());
    cv.n_boot = static_cast<std::size_t>(s.n_boot);
    cv.level = s.level;
    return cv;
}
#endif

}  // namespace

std::string PlanStep::describe() const {
    switch (kind) {
        case StepKind::kExtract:
            return "extract " + encoder + " (" + pooling + "; " + std::to_string(images) +
                   " images)";
        case StepKind::kComparisons:
            return "comparisons (paired DeLong against each task's best run, FDR)";
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

Plan make_plan(const ExperimentConfig& config, ResultsDb* db) {
    ScratchDir scratch;
    return build(config, db, scratch.path()).plan;
}

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
        out += ", encoder forward passes ~" + format_gflop(gflop);
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
                status += s.adaptation == "analysis:subgroups" ? ", seconds"
                                                               : ", forward passes + probes";
            } else {
                status += ", trains on up to " + std::to_string(s.images) + " images";
            }
        }
        if (s.kind == StepKind::kRun) {
            status += "  [" + s.spec.config_hash + "]";
        }
        out += line + "  " + status + "\n";
    }
    return out;
}

RunnerSummary run_experiment(const ExperimentConfig& c, const RunnerOptions& options) {
    const auto t0 = std::chrono::steady_clock::now();
    auto since = [](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    };
    auto say = [&](const char* fmt, auto... args) {
        if (options.progress) {
            std::printf(fmt, args...);
            std::fflush(stdout);
        }
    };
    RunnerSummary summary;
    summary.db = c.output.db;
    if (!c.output.db.parent_path().empty()) {
        fs::create_directories(c.output.db.parent_path());
    }
    ResultsDb db = ResultsDb::open(c.output.db);
    fs::create_directories(c.output.store);

    Built b = [&] {
        ScratchDir scratch;
        return build(c, &db, scratch.path());
    }();
    if (!c.data.split.use_manifest && !fs::exists(b.manifest)) {
        write_file_atomic(b.manifest, b.manifest_text);
        say("split: patient-level split written to %s\n", b.manifest.string().c_str());
    }
    say("%s", format_plan(b.plan).c_str());

    std::vector<fs::path> stores(b.encoders.size());
    std::vector<fs::path> prepared(b.encoders.size());
    std::vector<std::string> extract_errors(b.encoders.size());
    auto model_dir = [&](std::size_t enc) {
        if (prepared[enc].empty()) {
            const auto& e = *b.encoders[enc].config;
            const fs::path dir = c.output.store / "models" / e.name;
            prepare_model_dir(e, e.random_vit ? dir : e.path, dir, true);
            prepared[enc] = dir;
        }
        return prepared[enc];
    };
    std::optional<dataset::Manifest> manifest;  // loaded when a subgroup analysis needs it
    std::size_t started = 0;
    const std::size_t total = b.plan.steps.size();

    for (std::size_t i = 0; i < total; ++i) {
        const PlanStep& s = b.plan.steps[i];
        const auto step_t0 = std::chrono::steady_clock::now();
        const std::size_t enc = b.step_encoder[i];
        say("[%zu/%zu] %s", i + 1, total, s.describe().c_str());
        if (s.kind == StepKind::kExtract) {
            if (s.cached && s.cache_note.rfind("not needed", 0) == 0) {
                say("  skipped (%s)\n", s.cache_note.c_str());
                continue;
            }
            say(" ...\n");
            try {
                const auto& e = *b.encoders[enc].config;
                auto eo = extract_options(c, e, model_dir(enc), b.manifest);
                eo.threads = options.threads;
                eo.progress = options.progress;
                const auto r = features::extract(eo);
                RADPROBE_CHECK(r.complete, "extraction of ", e.name, " did not complete");
                stores[enc] = r.store_dir;
                say("      %s%s: %lld images, %lld failed (%.1f s)\n", r.store_dir.string().c_str(),
                    r.cached ? " (cached)" : "", static_cast<long long>(r.images),
                    static_cast<long long>(r.failures), since(step_t0));
            } catch (const std::exception& e) {
                extract_errors[enc] = Error::one_line(e.what());
                say("      FAILED: %s\n", extract_errors[enc].c_str());
            }
            continue;
        }
        if (s.kind == StepKind::kComparisons) {
            const auto n = write_comparisons(db, c.statistics);
            say("  %zu comparisons\n", n);
            continue;
        }
        if (s.kind == StepKind::kReport) {
            say(" ...\n");
            ReportOptions ro;
            ro.title = c.output.title;
            if (!c.output.report_md.empty()) {
                write_file_atomic(c.output.report_md, render_report_markdown(db, ro));
                summary.reports.push_back(c.output.report_md);
                say("      %s\n", c.output.report_md.string().c_str());
            }
            if (!c.output.report.empty()) {
                try {
                    write_file_atomic(c.output.report, render_report_html(db, ro));
                    summary.reports.push_back(c.output.report);
                    say("      %s\n", c.output.report.string().c_str());
                } catch (const InputError& e) {
                    say("      HTML report not written: %s\n", e.what());
                }
            }
            continue;
        }

        // A run.
        const json opt = json::parse(s.spec.config_json)["options"];
        const fs::path run_dir = c.output.store / "runs" / s.spec.config_hash;
        std::string result_text;
        auto need_store = [&] {
            RADPROBE_CHECK(extract_errors[enc].empty(), "extraction of encoder ", s.encoder,
                           " failed: ", extract_errors[enc]);
            RADPROBE_CHECK(!stores[enc].empty(), "no embeddings for encoder ", s.encoder);
            return stores[enc];
        };
        auto record_label = [&](std::int64_t run, const heads::LabelResult& result) {
            const auto m = label_metrics(result, c.statistics);
            db.record_metrics(run, m);
            db.record_predictions(run, label_predictions(result));
            char buf[128];
            if (m[0].ci_lo) {
                std::snprintf(buf, sizeof buf, "AUROC %.3f [%.3f, %.3f]", result.auroc, *m[0].ci_lo,
                              *m[0].ci_hi);
            } else {
                std::snprintf(buf, sizeof buf, "AUROC %.3f", result.auroc);
            }
            result_text = buf;
        };
        const RecordedRun rec = run_recorded(db, s.spec, [&](std::int64_t run) {
            maybe_kill_for_test(++started);
            const std::string& kind = s.adaptation;
            if (is_probe(kind)) {
                heads::ProbeRunOptions po;
                po.store = need_store();
                po.manifest = b.manifest;
                po.labels = {s.task};
                po.pool = s.pooling;
                po.seed = static_cast<std::uint64_t>(s.seed);
                po.n_boot = static_cast<std::size_t>(c.statistics.n_boot);
                po.level = c.statistics.level;
                po.probe.threads = options.threads;
                if (kind == "linear") {
                    po.probe.kind = heads::ProbeKind::kLinear;
                    po.probe.c_grid = heads::parse_c_grid(opt["c_grid"].get<std::string>());
                    po.probe.class_weight_balanced = opt["class_weight"] == "balanced";
                    po.probe.lbfgs.max_iter = opt["max_iter"].get<int>();
                    po.probe.lbfgs.tol = opt["tol"].get<double>();
                    po.probe.lbfgs.threads = options.threads;
                } else {
                    po.probe.kind = heads::ProbeKind::kKnn;
                    po.probe.k_grid = opt["k"].get<std::vector<int>>();
                    po.probe.temperature = opt["temperature"].get<double>();
                }
                const auto r = heads::run_probe(po);
                RADPROBE_ASSERT(r.labels.size() == 1, "one label expected");
                record_label(run, r.labels.front());
            } else if (is_trained_head(kind)) {
                heads::TrainOptions to;
                to.head = heads::parse_head_kind(kind);
                to.store = need_store();
                to.manifest = b.manifest;
                to.labels = {s.task};
                to.pool = kind == "attention" ? "" : s.pooling;
                to.lr_grid = heads::parse_lr_grid(opt["lr_grid"].get<std::string>());
                to.epochs = opt["epochs"].get<int>();
                to.batch = opt["batch"].get<int>();
                to.weight_decay = opt["weight_decay"].get<double>();
                to.warmup_epochs = opt["warmup_epochs"].get<int>();
                to.clip_norm = opt["clip_norm"].get<double>();
                to.patience = opt["patience"].get<int>();
                to.balanced = opt["balanced"].get<bool>();
                to.dim = opt["dim"].get<int>();
                to.depth = opt["depth"].get<int>();
                to.dropout = opt["dropout"].get<double>();
                if (kind == "attention") {
                    to.heads = opt["heads"].get<int>();
                    to.queries = opt["queries"].get<int>();
                }
                to.device = opt["device"].get<std::string>();
                to.seed = static_cast<std::uint64_t>(s.seed);
                to.threads = options.threads;
                to.n_boot = static_cast<std::size_t>(c.statistics.n_boot);
                to.level = c.statistics.level;
                const auto r = heads::run_train(to);
                RADPROBE_ASSERT(r.labels.size() == 1, "one label expected");
                record_label(run, r.labels.front());
            } else if (kind == "finetune") {
                heads::FinetuneOptions fo;
                fo.model = model_dir(enc);
                fo.manifest = b.manifest;
                fo.label = s.task;
                fo.head = opt["head"].get<std::string>();
                fo.pool = opt["pool"] == "auto" ? "" : opt["pool"].get<std::string>();
                fo.unfreeze = opt["unfreeze"].get<std::string>();
                fo.llrd = opt["llrd"].get<double>();
                fo.lr = opt["lr"].get<double>();
                fo.weight_decay = opt["weight_decay"].get<double>();
                fo.epochs = opt["epochs"].get<int>();
                fo.batch = opt["batch"].get<int>();
                fo.warmup_epochs = opt["warmup_epochs"].get<int>();
                fo.clip_norm = opt["clip_norm"].get<double>();
                fo.patience = opt["patience"].get<int>();
                fo.size = opt["size"].get<std::int64_t>();
                fo.augment = opt["augment"].get<std::string>();
                fo.hflip = opt["hflip"].get<bool>();
                fo.head_dim = opt["head_dim"].get<int>();
                fo.head_heads = opt["head_heads"].get<int>();
                fo.head_depth = opt["head_depth"].get<int>();
                fo.device = opt["device"].get<std::string>();
                fo.seed = static_cast<std::uint64_t>(s.seed);
                fo.threads = options.threads;
                fo.n_boot = static_cast<std::size_t>(c.statistics.n_boot);
                fo.level = c.statistics.level;
                fo.out = run_dir;
                fo.resume = fs::exists(run_dir / "checkpoint");  // a killed run continues
                record_label(run, heads::run_finetune(fo).test);
            } else if (kind.rfind("segment-", 0) == 0 || kind == "unet_baseline") {
                heads::SegmentOptions so;
                if (kind == "unet_baseline") {
                    so.decoder = heads::SegDecoder::kUnet;
                    so.size = opt["size"].get<int>();
                    so.depth = opt["depth"].get<int>();
                } else {
                    so.decoder = heads::parse_seg_decoder(opt["decoder"].get<std::string>());
                    so.model = model_dir(enc);
                    so.store_root = c.output.store;
                    so.layers = opt["layers"].get<std::vector<int>>();
                    so.unfreeze = opt["unfreeze"].get<std::string>();
                    so.layer_decay = opt["layer_decay"].get<double>();
                    so.encoder_lr_mult = opt["encoder_lr_mult"].get<double>();
                }
                so.manifest = b.manifest;
                so.mask = s.task;
                so.channels = opt["channels"].get<int>();
                so.epochs = opt["epochs"].get<int>();
                so.batch = opt["batch"].get<int>();
                so.lr = opt["lr"].get<double>();
                so.weight_decay = opt["weight_decay"].get<double>();
                so.warmup_epochs = opt["warmup_epochs"].get<int>();
                so.clip_norm = opt["clip_norm"].get<double>();
                so.patience = opt["patience"].get<int>();
                so.dice_weight = opt["dice_weight"].get<double>();
                so.bce_weight = opt["bce_weight"].get<double>();
                so.augment = opt["augment"].get<std::string>();
                so.both_empty = opt["both_empty"].get<std::string>();
                so.one_empty = opt["one_empty"].get<std::string>();
                so.device = opt["device"].get<std::string>();
                so.seed = static_cast<std::uint64_t>(s.seed);
                so.threads = options.threads;
                so.n_boot = static_cast<std::size_t>(c.statistics.n_boot);
                so.level = c.statistics.level;
                so.out = run_dir;
                const auto r = heads::run_segment(so);
                const auto m = segment_result_metrics(r, c.statistics);
                db.record_metrics(run, m);
                db.record_predictions(run, segment_result_predictions(r, run_dir));
                for (const auto& x : m) {
                    if (x.name == "dice" && x.value) {
                        char buf[128];
                        std::snprintf(buf, sizeof buf, "Dice %.3f", *x.value);
                        result_text = buf;
                    }
                }
            } else if (kind == "cnn_baseline") {
                heads::BaselineOptions bo;
                bo.manifest = b.manifest;
                bo.label = s.task;
                bo.size = opt["size"].get<int>();
                bo.width = opt["width"].get<int>();
                bo.blocks = opt["blocks"].get<std::vector<int>>();
                bo.epochs = opt["epochs"].get<int>();
                bo.batch = opt["batch"].get<int>();
                bo.lr = opt["lr"].get<double>();
                bo.weight_decay = opt["weight_decay"].get<double>();
                bo.warmup_epochs = opt["warmup_epochs"].get<int>();
                bo.clip_norm = opt["clip_norm"].get<double>();
                bo.patience = opt["patience"].get<int>();
                bo.seed = static_cast<std::uint64_t>(s.seed);
                bo.threads = options.threads;
                bo.n_boot = static_cast<std::size_t>(c.statistics.n_boot);
                bo.progress = options.progress;
                bo.out = run_dir;  // predictions + the trained network as an encoder directory
                record_label(run, heads::run_baseline(bo).test);
#ifdef RADPROBE_HAVE_ANALYSIS
            } else if (kind == "analysis:perturb" || kind == "analysis:lesions") {
                analysis::EncoderSpec es;
                es.threads = options.threads;
                if (enc == kNone) {  // a CNN baseline run's exported network
                    const PlanStep& src = b.plan.steps.at(b.step_source[i]);
                    RADPROBE_CHECK(db.find_completed_run(src.spec.config_hash).has_value(),
                                   "the baseline run it analyses (", src.describe(),
                                   ") did not complete");
                    es.model_dir = c.output.store / "runs" / src.spec.config_hash / "encoder";
                    RADPROBE_CHECK(fs::exists(es.model_dir / "model.safetensors"), "directory ",
                                   es.model_dir.string(),
                                   ": the baseline run left no exported network (delete its run "
                                   "from the database to re-train it)");
                    es.batch = 32;
                    es.fold_grayscale = false;
                } else {
                    es.model_dir = model_dir(enc);
                    es.batch = b.encoders[enc].config->batch;
                    es.fold_grayscale = b.encoders[enc].config->fold_grayscale;
                }
                analysis::AnalysisResult r;
                if (kind == "analysis:perturb") {
                    analysis::PerturbOptions po;
                    po.encoder = es;
                    po.manifest = b.manifest;
                    po.kinds.clear();
                    for (const auto& k : opt["kinds"]) {
                        po.kinds.push_back(analysis::parse_perturb_kind(k.get<std::string>()));
                    }
                    po.sizes = analysis::parse_sizes(opt["sizes"].get<std::string>());
                    po.contrasts = opt["contrasts"].get<std::vector<double>>();
                    po.location = opt["location"].get<std::string>();
                    po.max_images = opt["max_images"].get<std::size_t>();
                    po.cv = cv_options(opt, c.statistics);
                    po.seed = static_cast<std::uint64_t>(s.seed);
                    po.out = run_dir;
                    po.progress = options.progress;
                    r = analysis::run_perturb(po);
                } else {
                    analysis::LesionOptions lo;
                    lo.encoder = es;
                    lo.manifest = b.manifest;
                    lo.boxes = c.data.boxes;
                    lo.label = opt["label"].get<std::string>();
                    lo.box_label = opt["box_label"].get<std::string>();
                    lo.area_thresholds = opt["area_thresholds"].get<std::vector<double>>();
                    lo.jitter_sigmas = opt["jitter_sigmas"].get<std::vector<double>>();
                    lo.max_images = opt["max_images"].get<std::size_t>();
                    lo.cv = cv_options(opt, c.statistics);
                    lo.seed = static_cast<std::uint64_t>(s.seed);
                    lo.out = run_dir;
                    lo.progress = options.progress;
                    r = analysis::run_lesions(lo);
                }
                db.record_analysis(to_analysis_rows(r.rows, r.analysis, run));
                result_text = std::to_string(r.rows.size()) + " table rows";
            } else if (kind == "analysis:shortcut") {
                analysis::ShortcutOptions so;
                so.encoder.model_dir = model_dir(enc);
                so.encoder.threads = options.threads;
                so.encoder.batch = b.encoders[enc].config->batch;
                so.encoder.fold_grayscale = b.encoders[enc].config->fold_grayscale;
                so.poolings = opt["poolings"].get<std::vector<std::string>>();
                so.correlation = opt["correlation"].get<double>();
                so.prevalence = opt["prevalence"].get<double>();
                so.n_train = opt["n_train"].get<std::size_t>();
                so.n_test = opt["n_test"].get<std::size_t>();
                so.size = opt["size"].get<int>();
                so.baseline_epochs = opt["baseline_epochs"].get<int>();
                so.baseline_size = opt["baseline_size"].get<int>();
                so.c_grid = heads::parse_c_grid(opt["c_grid"].get<std::string>());
                so.n_boot = static_cast<std::size_t>(c.statistics.n_boot);
                so.level = c.statistics.level;
                so.seed = static_cast<std::uint64_t>(s.seed);
                so.work_dir = run_dir / "phantoms";
                so.out = run_dir;
                so.threads = options.threads;
                so.progress = options.progress;
                const auto r = analysis::run_shortcut(so);
                db.record_analysis(to_analysis_rows(r.rows, r.analysis, run));
                result_text = std::to_string(r.rows.size()) + " table rows";
            } else if (kind == "analysis:subgroups") {
                const PlanStep& src = b.plan.steps.at(b.step_source[i]);
                const auto source = db.find_completed_run(src.spec.config_hash);
                RADPROBE_CHECK(source.has_value(), "the run it splits (", src.describe(),
                               ") did not complete");
                if (!manifest) {
                    manifest = dataset::Manifest::load(b.manifest);
                }
                analysis::SubgroupOptions so;
                so.attributes = opt["attributes"].get<std::vector<std::string>>();
                for (const auto& p : db.predictions(*source)) {
                    if (!p.label || !p.score) {
                        continue;
                    }
                    analysis::ScoredImage im;
                    im.image = p.image_id;
                    im.patient = p.patient_id;
                    im.label = *p.label;
                    im.score = *p.score;
                    const auto row = manifest->find(p.image_id);
                    RADPROBE_CHECK(row.has_value(), b.manifest.string(), ": image ", p.image_id,
                                   " of run ", *source, " is not in the manifest");
                    for (const auto& a : so.attributes) {
                        im.attributes.push_back(manifest->attribute(*row, a));
                    }
                    so.images.push_back(std::move(im));
                }
                so.source = src.describe();
                so.n_boot = static_cast<std::size_t>(c.statistics.n_boot);
                so.level = c.statistics.level;
                so.seed = static_cast<std::uint64_t>(s.seed);
                const auto r = analysis::run_subgroups(so);
                db.record_analysis(to_analysis_rows(r.rows, r.analysis, run));
                result_text = std::to_string(r.rows.size()) + " table rows";
#endif
            } else {
                throw InputError("adaptation '" + kind + "' is not available in this build");
            }
        });
        switch (rec.outcome) {
            case RunOutcome::kSkipped:
                ++summary.skipped;
                say("  skipped (run %lld in the database)\n", static_cast<long long>(rec.run));
                break;
            case RunOutcome::kCompleted:
                ++summary.completed;
                say("  %s (%.1f s)\n", result_text.c_str(), since(step_t0));
                break;
            case RunOutcome::kFailed:
                ++summary.failed;
                summary.failures.push_back(s.describe() + ": " + rec.error);
                say("  FAILED: %s\n", rec.error.c_str());
                break;
        }
    }
    summary.seconds = since(t0);
    say("done in %.1f s: %zu runs completed, %zu skipped (already in the database), %zu failed; "
        "results in %s\n",
        summary.seconds, summary.completed, summary.skipped, summary.failed,
        c.output.db.string().c_str());
    return summary;
}

}  // namespace radprobe::bench
