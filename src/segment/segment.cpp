// `radprobe segment` and `radprobe baseline --task seg`: decoders on encoder patch grids (frozen:
// from the extraction store; fine-tuned: live forward with layer-wise LR decay) and a U-Net from
// scratch, trained with Dice + BCE, early-stopped on val Dice, scored on the original pixel grid.

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "radprobe/adapt/training.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/imaging/decode.hpp"
#include "radprobe/preprocess/preprocess.hpp"
#include "radprobe/segment/segment.hpp"
#include "seg_geometry.hpp"
#include "seg_internal.hpp"
#include "seg_models.hpp"

namespace radprobe::segment {

using adapt::augment_batch;
using adapt::AugmentOptions;
using adapt::parse_augment;
namespace training = adapt::training;

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

SegDecoder parse_seg_decoder(const std::string& text) {
    if (text == "linear") {
        return SegDecoder::kLinear;
    }
    if (text == "multiscale") {
        return SegDecoder::kMultiscale;
    }
    if (text == "unet") {
        return SegDecoder::kUnet;
    }
    throw UsageError(
        str_cat("--decoder: unknown decoder '", text, "' (valid: linear, multiscale, unet)"));
}

const char* seg_decoder_name(SegDecoder decoder) {
    switch (decoder) {
        case SegDecoder::kLinear:
            return "linear";
        case SegDecoder::kMultiscale:
            return "multiscale";
        case SegDecoder::kUnet:
            return "unet";
    }
    return "?";
}

torch::Tensor seg_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                       double dice_weight, double bce_weight) {
    const auto bce = torch::binary_cross_entropy_with_logits(logits, targets);
    const auto p = torch::sigmoid(logits).flatten(1);
    const auto t = targets.flatten(1);
    // Soft Dice per image with add-one smoothing: an empty target predicted empty costs 0, an
    // empty target with predicted foreground costs 1 − 1/(Σp + 1) > 0 — never 0/0.
    const auto inter = (p * t).sum(1);
    const auto dice = (2.0 * inter + 1.0) / (p.sum(1) + t.sum(1) + 1.0);
    return bce_weight * bce + dice_weight * (1.0 - dice).mean();
}

namespace {

std::string convention_text(const std::string& both, const std::string& one) {
    return str_cat("both_empty=", both,
                   both == "perfect" ? " (truth and prediction empty: Dice=IoU=1, HD95=0)"
                                     : " (truth and prediction empty: every metric undefined)",
                   "; one_empty=", one,
                   one == "exclude" ? " (one mask empty: Dice=IoU=0, HD95 undefined)"
                                    : " (one mask empty: Dice=IoU=0, HD95=image diagonal)",
                   "; outside_crop=background (pixels the model input does not cover are "
                   "predicted 0)");
}

// Hidden-state indices (negative from the end) → 0..L; throws UsageError.
std::vector<int> resolve_layers(const std::vector<int>& layers, std::int64_t L,
                                const std::string& what) {
    std::vector<int> out;
    for (int l : layers) {
        const int idx = l < 0 ? static_cast<int>(L) + 1 + l : l;
        RADPROBE_USAGE_CHECK(idx >= 0 && idx <= L, "--layers: ", l, " out of range for ", what,
                             " (", L, " layers: use -", L + 1, "..", L, ")");
        out.push_back(idx);
    }
    return out;
}

std::vector<int> default_layers(SegDecoder d) {
    return d == SegDecoder::kMultiscale ? std::vector<int>{-4, -3, -2, -1} : std::vector<int>{-1};
}

std::string safe_stem(const std::string& id) {
    std::string s = fs::path(id).stem().string();
    for (char& c : s) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
            c = '_';
        }
    }
    return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Samples: the original image geometry, the truth mask and what the network eats.
// ---------------------------------------------------------------------------------------------

preprocess::InputSpec encoder_input(preprocess::PreprocessConfig processor, std::int64_t resize) {
    if (resize > 0) {
        processor.override_size(resize);
    }
    // The model's resize + crop to the grey plane in [0,1]; normalise_input() rescales and
    // normalises it as the processor does, after augmentation.
    processor.do_rescale = true;
    processor.rescale_factor = 1.0 / 255.0;
    return preprocess::InputSpec::processor_input(processor, 1);
}

SampleSet load_samples(const dataset::Manifest& manifest, const std::vector<std::size_t>& rows,
                       const std::string& mask, const InputSpec& spec, int threads,
                       bool keep_truth) {
    SampleSet set;
    set.samples.resize(rows.size());
    const auto mask_idx = mask.empty() ? std::nullopt : manifest.mask_index(mask);
    preprocess::Geometry first;  // of rows[0]: every image must give its input size
    preprocess::for_each_input(
        manifest, rows, spec.input, threads,
        [&](std::size_t k, preprocess::InputImage& image) {
            Sample& s = set.samples[k];
            s.row = rows[k];
            const auto& rec = manifest.record(rows[k]);
            s.id = rec.id;
            s.patient = rec.patient_id;
            s.split = rec.split;
            s.geometry = image.geometry;
            if (k == 0) {  // runs before every other image
                first = image.geometry;
                const auto plane = static_cast<std::size_t>(first.out_height * first.out_width);
                if (spec.keep_pixels) {
                    set.pixels = std::make_shared<ScratchRecords>(plane);
                }
                if (mask_idx) {
                    set.targets = std::make_shared<ScratchRecords>(plane);
                }
            }
            RADPROBE_CHECK(s.geometry.out_height == first.out_height &&
                               s.geometry.out_width == first.out_width,
                           manifest.path().string(), ": image ", s.id,
                           " gives another model input size than the first image; segmentation "
                           "needs one fixed input size (a centre crop or a fixed resize)");
            if (set.pixels) {
                set.pixels->write(k, image.pixels.data());
            }
            if (mask_idx) {
                auto m = manifest.load_mask(rows[k], mask, static_cast<int>(s.geometry.rows),
                                            static_cast<int>(s.geometry.cols));
                if (m) {
                    s.has_truth = true;
                    set.targets->write(k, preprocess::mask_to_input(*m, s.geometry).data());
                    if (keep_truth) {
                        s.truth = pack_mask(*m);
                    }
                }
            }
        },
        spec.keep_pixels);
    return set;
}

// Model input in [0,1] grey (N×1×H×W) → what the network eats.
torch::Tensor normalise_input(const torch::Tensor& x01, const InputSpec& spec) {
    if (spec.input.kind == preprocess::InputSpec::Kind::kSquare) {
        return (x01 - 0.5) * 4.0;  // display images are in [0, 1]; centre them
    }
    const auto& pc = spec.input.processor;
    std::vector<torch::Tensor> channels;
    for (int c = 0; c < 3; ++c) {
        auto v = pc.do_rescale ? x01 * (255.0 * pc.rescale_factor) : x01 * 255.0;
        if (pc.do_normalize) {
            v = (v - pc.image_mean[static_cast<std::size_t>(c)]) /
                pc.image_std[static_cast<std::size_t>(c)];
        }
        channels.push_back(v);
    }
    return torch::cat(channels, 1);
}

// Grids of the requested layers from one forward output (N×D×gh×gw each, in `layers` order).
std::vector<torch::Tensor> grids_from_output(const encoders::EncoderOutput& out,
                                             const std::vector<int>& layers, std::int64_t L,
                                             std::int64_t registers, bool has_cls) {
    std::vector<torch::Tensor> grids;
    for (int idx : layers) {
        if (idx != L && !out.pyramid.empty()) {  // a hierarchical encoder: stage idx's map
            grids.push_back(out.pyramid.at(static_cast<std::size_t>(idx - 1)));
            continue;
        }
        const auto patches = idx == L ? out.tokens.patches
                                      : encoders::split_tokens(out.layers.at(idx), registers,
                                                               out.grid_h, out.grid_w, has_cls)
                                            .patches;
        grids.push_back(patches.permute({0, 3, 1, 2}).contiguous());
    }
    return grids;
}

namespace {

// OUT-relative path of a sample's predicted mask.
std::string prediction_mask_path(const Sample& s) {
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "%05zu_", s.row);
    return "masks/" + std::string(prefix) + safe_stem(s.id) + ".png";
}

void write_prediction_mask(const fs::path& out, const std::string& rel, const eval::Mask& pred) {
    dataset::Mask m(static_cast<int>(pred.height), static_cast<int>(pred.width));
    m.data.assign(pred.pixels.begin(), pred.pixels.end());
    dataset::write_mask_png(out / rel, m);
}

}  // namespace

void score_sample(const Sample& s, const float* probabilities, const eval::SegmentationOptions& seg,
                  SegImageResult& r, eval::SegmentationScores* scores, const fs::path* out) {
    const auto orig = preprocess::input_to_original(probabilities, s.geometry);
    const auto pred = threshold_mask(orig, s.geometry.rows, s.geometry.cols);
    r.image = s.id;
    r.patient_id = s.patient;
    r.prediction_empty = pred.empty_foreground();
    if (s.has_truth) {
        const auto sc = eval::segmentation_scores(pred, unpack_to_eval(s.truth), seg);
        r.truth_empty = sc.truth_empty;
        r.dice = sc.dice;
        r.iou = sc.iou;
        r.hd95 = sc.hd95;
        if (scores) {
            *scores = sc;
        }
    }
    if (out) {
        r.mask_path = prediction_mask_path(s);
        write_prediction_mask(*out, r.mask_path, pred);
    }
}

std::vector<SegImageResult> predict_and_score(SegRunner& runner, const SampleSet& set, int batch,
                                              const eval::SegmentationOptions& seg,
                                              std::vector<eval::SegmentationScores>* scores,
                                              const fs::path* out) {
    std::vector<SegImageResult> results(set.samples.size());
    if (scores) {
        scores->assign(set.samples.size(), {});
    }
    runner.predict(set, batch, [&](std::size_t first, const torch::Tensor& probs) {
        const std::int64_t plane = probs.size(1) * probs.size(2);
        parallel_for(static_cast<std::size_t>(probs.size(0)), 0, [&](std::size_t b, std::size_t e) {
            for (std::size_t k = b; k < e; ++k) {
                const std::size_t i = first + k;
                score_sample(set.samples[i],
                             probs.data_ptr<float>() + static_cast<std::int64_t>(k) * plane, seg,
                             results[i], scores ? &(*scores)[i] : nullptr, out);
            }
        });
    });
    return results;
}

double mean_dice(const std::vector<SegImageResult>& results, bool positives_only) {
    double sum = 0;
    std::size_t n = 0;
    for (const auto& r : results) {
        if (r.dice && (!positives_only || !r.truth_empty)) {
            sum += *r.dice;
            ++n;
        }
    }
    return n ? sum / static_cast<double>(n) : std::nan("");
}

std::vector<SegMetricSummary> summarise(const std::vector<eval::SegmentationScores>& scores,
                                        const std::vector<std::string>& patients,
                                        std::uint64_t seed, std::size_t n_boot, double level) {
    eval::BootstrapOptions bo;
    bo.replicates = n_boot;
    bo.seed = seed;
    bo.level = level;
    const auto clusters = eval::cluster_ids(patients);
    const auto summaries = eval::summarize_segmentation(scores, bo, clusters);
    std::vector<SegMetricSummary> out;
    for (const char* name : {"dice", "iou", "hd95"}) {
        for (const auto& s : summaries) {
            if (s.metric == name) {
                SegMetricSummary m;
                m.metric = name;
                m.defined = s.defined;
                if (s.ci) {
                    m.mean = s.ci->estimate;
                    m.ci_lo = s.ci->ci_lo;
                    m.ci_hi = s.ci->ci_hi;
                } else {
                    m.mean = m.ci_lo = m.ci_hi = std::nan("");
                }
                out.push_back(m);
            }
        }
    }
    return out;
}

void summarise_into(SegmentResult& result, const std::vector<Sample>& samples,
                    const std::vector<eval::SegmentationScores>& scores, std::uint64_t seed,
                    std::size_t n_boot, double level) {
    RADPROBE_ASSERT(scores.size() == samples.size());
    std::vector<eval::SegmentationScores> scored;
    std::vector<std::string> patients, positive_patients;
    std::vector<std::optional<double>> positive_dice;
    for (std::size_t i = 0; i < samples.size(); ++i) {
        if (!samples[i].has_truth) {
            continue;
        }
        scored.push_back(scores[i]);
        patients.push_back(samples[i].patient);
        if (samples[i].truth.foreground == 0) {
            ++result.test_empty_truth;
        } else {
            positive_dice.push_back(scores[i].dice);
            positive_patients.push_back(samples[i].patient);
        }
    }
    result.n_scored = scored.size();
    result.n_positive = positive_dice.size();
    if (scored.empty()) {
        return;  // nothing to score (apply without a mask column)
    }
    result.metrics = summarise(scored, patients, seed, n_boot, level);
    SegMetricSummary& m = result.dice_positive;
    m.metric = "dice_positive";
    m.defined = static_cast<std::size_t>(std::count_if(
        positive_dice.begin(), positive_dice.end(), [](const auto& v) { return v.has_value(); }));
    m.mean = m.ci_lo = m.ci_hi = std::nan("");
    if (m.defined > 0) {
        eval::BootstrapOptions bo;
        bo.replicates = n_boot;
        bo.seed = seed;
        bo.level = level;
        const auto clusters = eval::cluster_ids(positive_patients);
        const auto ci = eval::bootstrap_mean(positive_dice, bo, clusters);
        m.mean = ci.estimate;
        m.ci_lo = ci.ci_lo;
        m.ci_hi = ci.ci_hi;
    }
}

void write_outputs(const fs::path& out, const std::vector<Sample>& samples,
                   const std::vector<SegImageResult>& results) {
    std::string csv = "image,patient_id,truth_empty,prediction_empty,dice,iou,hd95,mask\n";
    auto num = [](const std::optional<double>& v) {
        if (!v) {
            return std::string();
        }
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.10g", *v);
        return std::string(buf);
    };
    for (std::size_t i = 0; i < samples.size(); ++i) {
        const auto& r = results[i];
        csv += csv_line({r.image, r.patient_id,
                         samples[i].has_truth ? (r.truth_empty ? "1" : "0") : "",
                         r.prediction_empty ? "1" : "0", num(r.dice), num(r.iou), num(r.hd95),
                         r.mask_path}) +
               "\n";
    }
    write_file_atomic(out / "predictions.csv", csv);
}

json metrics_block(const SegmentResult& r) {
    json m = json::object();
    for (const auto& s : r.metrics) {
        json j;
        auto put = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
        j["mean"] = put(s.mean);
        j["ci"] = json::array({put(s.ci_lo), put(s.ci_hi)});
        j["defined"] = s.defined;
        m[s.metric] = j;
    }
    if (!r.dice_positive.metric.empty()) {
        const auto& s = r.dice_positive;
        auto put = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
        json j;
        j["mean"] = put(s.mean);
        j["ci"] = json::array({put(s.ci_lo), put(s.ci_hi)});
        j["defined"] = s.defined;
        j["n_images"] = r.n_scored;
        j["n_positive"] = r.n_positive;
        j["note"] =
            "Dice over test images whose ground-truth mask is non-empty (no empty-mask "
            "convention)";
        m["dice_positive"] = j;
    }
    return m;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------------

struct Unfreeze {
    bool any = false;
    int last_k = -1;  // -1 = all
};

Unfreeze parse_unfreeze(const std::string& text) {
    Unfreeze u;
    if (text == "none") {
        return u;
    }
    u.any = true;
    if (text == "all") {
        return u;
    }
    if (text.rfind("last-", 0) == 0) {
        const auto k = parse_int(text.substr(5));
        RADPROBE_USAGE_CHECK(k && *k >= 1 && *k <= 1000, "--unfreeze '", text,
                             "': last-K needs an integer K >= 1");
        u.last_k = static_cast<int>(*k);
        return u;
    }
    throw UsageError(str_cat("--unfreeze: '", text, "' is not none, all or last-K"));
}

// What the options decide, checked before any work starts.
struct RunPlan {
    Unfreeze unfreeze;
    eval::SegmentationOptions seg_opts{};
    AugmentOptions augment;
    bool is_unet = false;
    bool cached = false;  // frozen encoder: patch grids from the extraction store
};

RunPlan check_options(const SegmentOptions& o) {
    RADPROBE_USAGE_CHECK(!o.mask.empty(), "--mask: a mask name is required (column mask_<name>)");
    RADPROBE_USAGE_CHECK(o.epochs >= 1 && o.batch >= 1 && o.lr > 0 && o.weight_decay >= 0 &&
                             o.warmup_epochs >= 0 && o.patience >= 1 && o.clip_norm >= 0,
                         "segment: epochs >= 1, batch >= 1, lr > 0, weight decay >= 0, warm-up "
                         ">= 0, patience >= 1 and clip >= 0 are required");
    RADPROBE_USAGE_CHECK(
        o.dice_weight >= 0 && o.bce_weight >= 0 && o.dice_weight + o.bce_weight > 0,
        "--dice-weight / --bce-weight: non-negative, not both 0");
    RADPROBE_USAGE_CHECK(o.layer_decay > 0 && o.layer_decay <= 1,
                         "--layer-decay must be in (0, 1]");
    RADPROBE_USAGE_CHECK(o.encoder_lr_mult > 0, "--encoder-lr-mult must be > 0");
    RADPROBE_USAGE_CHECK(o.channels >= 1 && o.channels <= 1024, "--channels must be in 1..1024");
    RunPlan plan;
    plan.unfreeze = parse_unfreeze(o.unfreeze);
    plan.seg_opts.both_empty = eval::parse_both_empty(o.both_empty);
    plan.seg_opts.one_empty = eval::parse_one_empty(o.one_empty);
    plan.augment = parse_augment(o.augment);
    plan.is_unet = o.decoder == SegDecoder::kUnet;
    if (plan.is_unet) {
        RADPROBE_USAGE_CHECK(o.model.empty() && o.store.empty(),
                             "the U-Net is trained from scratch: no --model / --store");
        RADPROBE_USAGE_CHECK(o.depth >= 1 && o.depth <= 7, "--depth must be in 1..7");
        RADPROBE_USAGE_CHECK(o.size >= 16 && o.size <= 4096 && o.size % (1 << o.depth) == 0,
                             "--size ", o.size,
                             " must be in 16..4096 and divisible by 2^depth = ", 1 << o.depth);
        RADPROBE_USAGE_CHECK(!plan.unfreeze.any, "--unfreeze applies to encoders, not the U-Net");
    } else {
        RADPROBE_USAGE_CHECK(o.model.empty() != o.store.empty(),
                             "give exactly one of --model HFDIR or --store STORE");
        RADPROBE_USAGE_CHECK(!plan.unfreeze.any || !o.model.empty(),
                             "--unfreeze needs --model (a store holds frozen features only)");
    }
    plan.cached = !plan.is_unet && !plan.unfreeze.any;
    RADPROBE_USAGE_CHECK(!plan.cached || plan.augment.is_identity(),
                         "--augment: a frozen encoder's patch grids come from the extraction "
                         "cache, which cannot be augmented; use --augment none (or --unfreeze)");
    return plan;
}

// The encoder side: where grids come from, the input geometry, layers.
struct InputSource {
    InputSpec spec;
    fs::path model_dir;
    fs::path store_dir;
    features::PatchGridInfo grid_info;
    std::int64_t resize = 0;
    std::vector<int> layer_idx;
    /// --decoder multiscale on a hierarchical encoder: its stage maps (of every size, which a
    /// store of one grid does not hold), from the encoder run live, frozen or not.
    bool stages = false;
    encoders::ModelConfig config;
    std::int64_t out_h = 0, out_w = 0;  // the model input, set once the samples are loaded
};

// A frozen encoder given by --model: its patch grids are extracted once into a store.
fs::path extract_patch_grids(const SegmentOptions& o, const InputSource& src, int threads) {
    features::ExtractOptions eo;
    eo.model_dir = src.model_dir;
    eo.manifest = o.manifest;
    eo.poolings = {features::Pooling::kPatches};
    eo.layers = src.layer_idx;
    eo.resize = src.resize;
    eo.threads = threads;
    eo.progress = o.progress;
    eo.store_root = !o.store_root.empty() ? o.store_root
                    : o.out               ? *o.out / "embeddings"
                                          : fs::path();
    RADPROBE_USAGE_CHECK(!eo.store_root.empty(),
                         "a frozen encoder needs --store-root or --out for its patch "
                         "grid store");
    return features::extract(eo).store_dir;
}

InputSource resolve_input(const SegmentOptions& o, RunPlan& plan, int threads,
                          SegmentResult& result) {
    InputSource src;
    src.model_dir = o.model;
    src.resize = o.resize;
    if (plan.is_unet) {
        src.spec.input = preprocess::InputSpec::square(o.size);
        src.spec.keep_pixels = true;
        return src;
    }
    if (!o.store.empty()) {
        src.store_dir = features::resolve_store_dir(o.store);
        const auto meta = json::parse(read_file_text(src.store_dir / "store.json"));
        src.model_dir = meta.at("model_dir").get<std::string>();
        src.resize = meta.at("resize").get<std::int64_t>();
    }
    src.config = encoders::read_model_config(src.model_dir);
    src.stages = o.decoder == SegDecoder::kMultiscale && src.config.is_hierarchical();
    RADPROBE_USAGE_CHECK(!src.stages || o.store.empty(),
                         "--decoder multiscale: ", src.model_dir.string(), " is hierarchical (",
                         src.config.model_type,
                         "): the decoder reads every stage, which a store does not hold; give "
                         "--model");
    const auto requested = o.layers.empty() ? default_layers(o.decoder) : o.layers;
    src.layer_idx = resolve_layers(requested, src.config.num_hidden_layers, src.model_dir.string());
    RADPROBE_USAGE_CHECK(
        !src.stages || *std::min_element(src.layer_idx.begin(), src.layer_idx.end()) >= 1,
        "--layers: the multiscale decoder of a hierarchical encoder reads stages "
        "1..",
        src.config.num_hidden_layers, ", not the stem (layer 0)");
    if (src.stages) {
        plan.cached = false;  // the stage maps come from the encoder run live, frozen
    }
    RADPROBE_USAGE_CHECK(o.decoder != SegDecoder::kLinear || src.layer_idx.size() == 1,
                         "--decoder linear uses one layer (the last by default)");
    src.spec.input = encoder_input(encoders::read_preprocess_config(src.model_dir), src.resize);
    src.spec.keep_pixels = !plan.cached;
    result.encoder = src.model_dir.filename().string();
    if (result.encoder.empty()) {
        result.encoder = src.model_dir.parent_path().filename().string();
    }
    if (plan.cached && src.store_dir.empty()) {
        src.store_dir = extract_patch_grids(o, src, threads);
    }
    if (plan.cached) {
        src.grid_info = features::read_patch_grid_info(src.store_dir);
    }
    return src;
}

// Samples per split (rows with a recorded mask only): train, val, test.
std::array<SampleSet, 3> load_split_samples(const dataset::Manifest& manifest,
                                            const SegmentOptions& o, const InputSpec& spec,
                                            int threads) {
    std::vector<std::size_t> split_rows[3];
    const dataset::Split splits[3] = {dataset::Split::kTrain, dataset::Split::kVal,
                                      dataset::Split::kTest};
    const char* split_names[3] = {"train", "val", "test"};
    const auto mask_col = *manifest.mask_index(o.mask);
    for (int s = 0; s < 3; ++s) {
        for (std::size_t i : manifest.indices(splits[s])) {
            if (manifest.record(i).masks[mask_col].source != dataset::MaskSource::kNone) {
                split_rows[s].push_back(i);
            }
        }
        RADPROBE_CHECK(!split_rows[s].empty(), o.manifest.string(), ": column mask_", o.mask,
                       ": the ", split_names[s], " split has no image with a recorded mask");
    }
    std::array<SampleSet, 3> data;
    for (int s = 0; s < 3; ++s) {
        data[static_cast<std::size_t>(s)] =
            load_samples(manifest, split_rows[s], o.mask, spec, threads, /*keep_truth=*/s != 0);
    }
    return data;
}

// Cached grids: each sample's row in the store's patches.npy, read per batch.
void load_cached_grids(std::array<SampleSet, 3>& data, const InputSource& src) {
    const auto& grid_info = src.grid_info;
    const auto& store_dir = src.store_dir;
    RADPROBE_CHECK(grid_info.input_height == src.out_h && grid_info.input_width == src.out_w,
                   store_dir.string(), ": the store's input size ", grid_info.input_height, "×",
                   grid_info.input_width, " differs from this preprocessing (", src.out_h, "×",
                   src.out_w, ")");
    // The store's rows: index.csv's successful images, in order (as patches.npy holds them).
    const auto index = CsvTable::read(store_dir / "index.csv");
    std::map<std::string, std::int64_t> row_of;
    {
        const auto ok = index.column("ok"), image = index.column("image");
        std::int64_t r = 0;
        for (const auto& rec : index.rows()) {
            if (rec[ok] == "1") {
                row_of[rec[image]] = r++;
            }
        }
    }
    auto store = std::make_shared<const NpyRowReader>(store_dir / "patches.npy");
    RADPROBE_CHECK(store->dtype() == DType::kFloat32 && store->shape().size() == 2 &&
                       store->rows() == static_cast<std::int64_t>(row_of.size()) &&
                       store->shape()[1] == grid_info.row_width(),
                   store_dir.string(),
                   ": patches.npy does not match index.csv and patch_grid.json");
    std::string held;  // the store's layers, for the message
    for (int l : grid_info.layers) {
        if (!held.empty()) {
            held += ',';
        }
        held += std::to_string(l);
    }
    CachedGrids base;
    base.store = store;
    base.grid_h = grid_info.grid_h;
    base.grid_w = grid_info.grid_w;
    base.dim = grid_info.dim;
    for (int idx : src.layer_idx) {
        const auto it = std::find(grid_info.layers.begin(), grid_info.layers.end(), idx);
        RADPROBE_CHECK(it != grid_info.layers.end(), store_dir.string(),
                       ": the store has no layer ", idx, " (it holds ", held,
                       "); extract with --layers");
        base.layers.push_back(it - grid_info.layers.begin());
    }
    for (auto& set : data) {
        auto grids = std::make_shared<CachedGrids>(base);
        for (const auto& s : set.samples) {
            const auto it = row_of.find(s.id);
            RADPROBE_CHECK(it != row_of.end(), store_dir.string(), ": image ", s.id,
                           " has no row (failed extraction, or another manifest)");
            grids->store_row.push_back(it->second);
        }
        set.grids = std::move(grids);
    }
}

// The network, and (fine-tuning) the live encoder under it.
struct Network {
    std::unique_ptr<encoders::Encoder> encoder;
    std::shared_ptr<SegNet> net;
    std::int64_t dim = 0, patch = 0;
    std::vector<std::int64_t> stage_dims;  ///< the multiscale decoder's stage widths (stages)
};

/// The widths of a hierarchical encoder's stages `layers` (1-based).
std::vector<std::int64_t> stage_dims(const encoders::ModelConfig& c,
                                     const std::vector<int>& layers) {
    std::vector<std::int64_t> dims;
    for (const int idx : layers) {
        dims.push_back(c.stage_widths.at(static_cast<std::size_t>(idx - 1)));
    }
    return dims;
}

Network build_network(const SegmentOptions& o, const RunPlan& plan, const InputSource& src,
                      const torch::Device& device) {
    Network nw;
    if (plan.unfreeze.any || src.stages) {
        nw.encoder = encoders::load_encoder(src.model_dir);
        nw.encoder->to(device);
    }
    if (plan.is_unet) {
        nw.net = std::make_shared<UNet>(o.depth, o.channels);
    } else {
        nw.dim = src.config.hidden_size;
        nw.patch = src.config.is_hierarchical() ? 0 : src.config.patch_size;
        if (o.decoder == SegDecoder::kLinear) {
            nw.net = std::make_shared<LinearSegDecoder>(nw.dim, nw.patch, src.out_h, src.out_w);
        } else if (src.stages) {
            nw.stage_dims = stage_dims(src.config, src.layer_idx);
            nw.net = std::make_shared<MultiscaleSegDecoder>(nw.stage_dims, o.channels, src.out_h,
                                                            src.out_w);
        } else {
            nw.net = std::make_shared<MultiscaleSegDecoder>(
                nw.dim, static_cast<int>(src.layer_idx.size()), o.channels, nw.patch, src.out_h,
                src.out_w);
        }
    }
    nw.net->to(device);
    return nw;
}

// Parameter groups: the network, and (fine-tuning) the encoder by depth.
std::vector<training::ParamGroup> param_groups(Network& nw, const Unfreeze& unfreeze,
                                               const SegmentOptions& o) {
    auto groups = training::default_param_groups(*nw.net, o.weight_decay);
    if (nw.encoder && !unfreeze.any) {  // frozen, run live for its stage maps
        for (auto& p : nw.encoder->module().parameters()) {
            p.set_requires_grad(false);
        }
    }
    if (nw.encoder && unfreeze.any) {
        const int nb = nw.encoder->num_blocks();
        std::map<std::pair<int, bool>, training::ParamGroup> by_depth;
        for (auto& p : nw.encoder->module().named_parameters()) {
            const int id = nw.encoder->layer_id(p.key());
            const bool trainable = unfreeze.last_k < 0 || id > nb - unfreeze.last_k;
            p.value().set_requires_grad(trainable);
            if (!trainable) {
                continue;
            }
            const bool no_decay = p.value().dim() < 2;
            auto& g = by_depth[{id, no_decay}];
            g.params.push_back(p.value());
            g.lr_mult = o.encoder_lr_mult * std::pow(o.layer_decay, nb + 1 - id);
            g.weight_decay = no_decay ? 0.0 : o.weight_decay;
        }
        for (auto& [k, g] : by_depth) {
            groups.push_back(std::move(g));
        }
    }
    return groups;
}

training::TrainerOptions trainer_options(const SegmentOptions& o, long n_train) {
    const long steps_per_epoch = (n_train + o.batch - 1) / o.batch;
    training::TrainerOptions to;
    to.lr = o.lr;
    to.weight_decay = o.weight_decay;
    to.clip_norm = o.clip_norm;
    to.schedule.total_steps = steps_per_epoch * o.epochs;
    to.schedule.warmup_steps =
        std::min<long>(steps_per_epoch * o.warmup_epochs, to.schedule.total_steps - 1);
    return to;
}

// The epoch loop: shuffled batches of the train split, then val Dice for early stopping (the
// best weights of the network and of a fine-tuned encoder are restored at the end).
struct EpochLoop {
    const SegmentOptions& o;
    const RunPlan& plan;
    const InputSource& src;
    SegRunner& runner;
    training::Trainer& trainer;

    void train_epoch(const SampleSet& train, Rng& rng) {
        const auto n_train = static_cast<long>(train.samples.size());
        runner.set_train(true);
        std::vector<std::int64_t> order(static_cast<std::size_t>(n_train));
        for (long i = 0; i < n_train; ++i) {
            order[static_cast<std::size_t>(i)] = i;
        }
        for (std::size_t i = order.size(); i > 1; --i) {
            std::swap(order[i - 1], order[rng.below(i)]);
        }
        for (long b = 0; b < n_train; b += o.batch) {
            const std::vector<std::int64_t> idx(order.begin() + b,
                                                order.begin() + std::min(n_train, b + o.batch));
            if (idx.size() < 2 && n_train >= 2) {
                continue;  // BatchNorm statistics need two samples
            }
            auto targets = train.planes(*train.targets, idx);
            std::vector<torch::Tensor> inputs;
            if (plan.cached) {
                inputs = runner.cached_inputs(train, idx);
            } else {
                auto x01 = runner.pixels(train, idx);
                if (!plan.augment.is_identity()) {
                    auto a = augment_batch(x01, targets, plan.augment, rng);
                    x01 = a.images;
                    targets = a.masks;
                }
                inputs = runner.live_inputs(x01);
            }
            training::AutocastGuard autocast(runner.device);
            const auto logits = runner.net->forward_logits(inputs);
            const auto loss = seg_loss(logits.to(torch::kFloat32), targets.to(runner.device),
                                       o.dice_weight, o.bce_weight);
            trainer.zero_grad();
            loss.backward();
            trainer.step();
        }
    }

    double val_dice(const SampleSet& val) {
        const auto val_results =
            predict_and_score(runner, val, o.batch, plan.seg_opts, nullptr, nullptr);
        // Early stopping watches the Dice over val images with a non-empty mask when there are
        // any: under the empty-mask convention an empty prediction scores 1 on every empty
        // image, so for a rare finding the all-images Dice prefers epochs that predict nothing
        // (measured on pneumothorax phantoms: stopped at epoch 2-3 with positives-only Dice 0).
        const bool val_has_positive =
            std::any_of(val_results.begin(), val_results.end(),
                        [](const SegImageResult& r) { return r.dice && !r.truth_empty; });
        return mean_dice(val_results, val_has_positive);
    }

    void run(const std::array<SampleSet, 3>& data, SegmentResult& result) {
        training::EarlyStopping stopper(o.patience);
        std::vector<torch::nn::Module*> watched{runner.net.get()};
        if (runner.encoder) {
            watched.push_back(&runner.encoder->module());
        }
        Rng rng(o.seed);
        std::unique_ptr<Progress> progress;
        if (o.progress) {
            progress = std::make_unique<Progress>(str_cat("segment ", seg_decoder_name(o.decoder)),
                                                  static_cast<std::size_t>(o.epochs), "epochs");
        }
        for (int epoch = 0; epoch < o.epochs; ++epoch) {
            train_epoch(data[0], rng);
            const double dice = val_dice(data[1]);
            result.val_curve.push_back(dice);
            result.epochs_run = epoch + 1;
            if (progress) {
                progress->advance();
            }
            stopper.update(dice, watched);
            if (stopper.should_stop()) {
                break;
            }
        }
        if (progress) {
            progress->finish();
        }
        RADPROBE_CHECK(stopper.has_best(), o.manifest.string(), ": column mask_", o.mask,
                       ": validation Dice was never defined (every val mask excluded by the "
                       "empty-mask convention)");
        stopper.restore(watched);
        result.best_epoch = stopper.best_evaluation() + 1;
        result.best_val_dice = stopper.best();
    }
};

// ---------------------------------------------------------------------------------------------
// Checkpoint + outputs
// ---------------------------------------------------------------------------------------------

json seg_model_meta(const SegmentOptions& o, const InputSource& src, const Network& nw) {
    json model_meta;
    model_meta["format"] = "radprobe-seg-1";
    model_meta["decoder"] = seg_decoder_name(o.decoder);
    model_meta["mask"] = o.mask;
    model_meta["out_h"] = src.out_h;
    model_meta["out_w"] = src.out_w;
    model_meta["layers"] = src.layer_idx;
    model_meta["dim"] = nw.dim;
    if (!nw.stage_dims.empty()) {
        model_meta["stage_dims"] = nw.stage_dims;
    }
    model_meta["patch"] = nw.patch;
    model_meta["channels"] = o.channels;
    model_meta["depth"] = o.depth;
    model_meta["size"] = o.size;
    model_meta["resize"] = src.resize;
    model_meta["threshold"] = 0.5;
    model_meta["both_empty"] = o.both_empty;
    model_meta["one_empty"] = o.one_empty;
    return model_meta;
}

// OUT/model: decoder weights, seg_model.json and a fine-tuned encoder (or the frozen one's path).
void save_model(const fs::path& out, json model_meta, const RunPlan& plan, const InputSource& src,
                const Network& nw, SegmentResult& result) {
    const fs::path model_out = out / "model";
    fs::create_directories(model_out);
    if (!plan.is_unet) {
        if (nw.encoder && plan.unfreeze.any) {
            nw.encoder->save_pretrained(model_out / "encoder");
            model_meta["model_dir"] = "encoder";
        } else {
            model_meta["model_dir"] = fs::absolute(src.model_dir).string();
        }
    }
    save_seg_net(*nw.net, model_out / "decoder.pt");
    write_file_atomic(model_out / "seg_model.json", model_meta.dump(2) + "\n");
    result.checkpoint = model_out;
}

std::string metrics_json(const SegmentOptions& o, const RunPlan& plan, const InputSource& src,
                         const SegmentResult& result, int threads) {
    json j;
    j["command"] = plan.is_unet ? "baseline" : "segment";
    j["task"] = "seg";
    j["decoder"] = seg_decoder_name(o.decoder);
    j["mask"] = o.mask;
    if (!result.mask_note.empty()) {
        j["mask_note"] = result.mask_note;
    }
    if (!plan.is_unet) {
        j["encoder"] = result.encoder;
        j["model_dir"] = fs::absolute(src.model_dir).string();
        j["store"] = src.store_dir.empty() ? json(nullptr) : json(src.store_dir.string());
        j["features"] = plan.cached ? "cached patch grids (frozen encoder, one forward pass)"
                        : plan.unfreeze.any ? "live forward (fine-tuned encoder)"
                                            : "live forward (frozen encoder: every stage's map)";
        j["unfreeze"] = o.unfreeze;
        j["layers"] = src.layer_idx;
        j["layer_decay"] = o.layer_decay;
        j["encoder_lr_mult"] = o.encoder_lr_mult;
    } else {
        j["architecture"] = "unet";
        j["depth"] = o.depth;
        j["size"] = o.size;
    }
    j["channels"] = o.channels;
    j["input_size"] = json::array({src.out_h, src.out_w});
    j["epochs"] = o.epochs;
    j["epochs_run"] = result.epochs_run;
    j["best_epoch"] = result.best_epoch;
    j["best_val_dice"] = result.best_val_dice;
    j["early_stopping"] =
        "val Dice over the val images with a non-empty mask (all val images when none has one)";
    j["val_curve"] = result.val_curve;
    j["batch"] = o.batch;
    j["lr"] = o.lr;
    j["weight_decay"] = o.weight_decay;
    j["warmup_epochs"] = o.warmup_epochs;
    j["patience"] = o.patience;
    j["loss"] = json{{"dice_weight", o.dice_weight}, {"bce_weight", o.bce_weight}};
    j["augment"] = plan.augment.describe();
    j["device"] = o.device;
    j["seed"] = o.seed;
    j["threads"] = threads;
    j["n_train"] = result.n_train;
    j["n_val"] = result.n_val;
    j["n_test"] = result.n_test;
    j["test_empty_truth"] = result.test_empty_truth;
    j["n_scored"] = result.n_scored;
    j["n_positive"] = result.n_positive;
    j["empty_mask_convention"] = json{{"both_empty", o.both_empty},
                                      {"one_empty", o.one_empty},
                                      {"outside_crop", "background"},
                                      {"text", result.empty_convention}};
    j["bootstrap"] = json{{"replicates", o.n_boot},
                          {"level", o.level},
                          {"cluster", "patient_id"},
                          {"method", "percentile"}};
    j["metrics"] = metrics_block(result);
    j["seconds"] = result.seconds;
    j["manifest"] = o.manifest.string();
    return j.dump(2) + "\n";
}

}  // namespace

SegmentResult run_segment(const SegmentOptions& o) {
    const auto start = std::chrono::steady_clock::now();
    RunPlan plan = check_options(o);
    const torch::Device device = training::parse_device(o.device);
    const int threads = o.threads > 0 ? o.threads : available_threads();
    torch::set_num_threads(threads);
    training::seed_torch(o.seed);

    const auto manifest = dataset::Manifest::load(o.manifest);
    manifest.require_valid();
    RADPROBE_CHECK(manifest.mask_index(o.mask).has_value(), o.manifest.string(),
                   ": no column mask_", o.mask);
    RADPROBE_CHECK(manifest.has_split_column(), o.manifest.string(),
                   ": no 'split' column (run radprobe split first)");

    SegmentResult result;
    result.decoder = o.decoder;
    result.mask = o.mask;
    result.unfreeze = plan.is_unet ? "" : o.unfreeze;
    result.seed = o.seed;
    result.empty_convention = convention_text(o.both_empty, o.one_empty);

    InputSource src = resolve_input(o, plan, threads, result);
    result.layers = src.layer_idx;
    auto data = load_split_samples(manifest, o, src.spec, threads);
    result.mask_note = manifest.resampled_masks().note("masks");
    result.n_train = data[0].samples.size();
    result.n_val = data[1].samples.size();
    result.n_test = data[2].samples.size();
    src.out_h = data[0].samples[0].geometry.out_height;
    src.out_w = data[0].samples[0].geometry.out_width;
    if (plan.cached) {
        load_cached_grids(data, src);
    }

    // Seeded again here: an extraction above (absent when the store is cached) draws from
    // torch's generator, and the decoder's initial weights must not depend on whether it ran
    // (a killed run resumed over its cached store gave another decoder).
    training::seed_torch(o.seed);
    Network nw = build_network(o, plan, src, device);
    SegRunner runner{src.spec, nw.net, nw.encoder.get(), src.layer_idx, src.config, device};
    runner.encoder_trainable = plan.unfreeze.any;
    auto groups = param_groups(nw, plan.unfreeze, o);
    training::Trainer trainer(std::move(groups),
                              trainer_options(o, static_cast<long>(data[0].samples.size())));
    EpochLoop{o, plan, src, runner, trainer}.run(data, result);

    // Test.
    std::vector<eval::SegmentationScores> scores;
    const fs::path* mask_out = o.out ? &*o.out : nullptr;
    result.test = predict_and_score(runner, data[2], o.batch, plan.seg_opts, &scores, mask_out);
    summarise_into(result, data[2].samples, scores, o.seed, o.n_boot, o.level);
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    if (o.out) {
        save_model(*o.out, seg_model_meta(o, src, nw), plan, src, nw, result);
        write_outputs(*o.out, data[2].samples, result.test);
    }
    result.metrics_json = metrics_json(o, plan, src, result, threads);
    if (o.out) {
        write_file_atomic(*o.out / "metrics.json", result.metrics_json);
    }
    return result;
}

}  // namespace radprobe::segment
