// `radprobe segment` and `radprobe baseline --task seg`: decoders on encoder patch grids (frozen:
// from the extraction store; fine-tuned: live forward with layer-wise LR decay) and a U-Net from
// scratch, trained with Dice + BCE, early-stopped on val Dice, scored on the original pixel grid.

#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "augment.hpp"
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
#include "radprobe/heads/heads.hpp"
#include "radprobe/imaging/decode.hpp"
#include "seg_geometry.hpp"
#include "seg_internal.hpp"
#include "seg_models.hpp"
#include "training.hpp"

namespace radprobe::heads {

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

SampleSet load_samples(const dataset::Manifest& manifest, const std::vector<std::size_t>& rows,
                       const std::string& mask, const InputSpec& spec, int threads) {
    SampleSet set;
    set.samples.resize(rows.size());
    const auto mask_idx = mask.empty() ? std::nullopt : manifest.mask_index(mask);
    parallel_for(rows.size(), threads, [&](std::size_t begin, std::size_t end) {
        for (std::size_t k = begin; k < end; ++k) {
            Sample& s = set.samples[k];
            s.row = rows[k];
            const auto& rec = manifest.record(rows[k]);
            s.id = rec.id;
            s.patient = rec.patient_id;
            s.split = rec.split;
            const imaging::Image img = imaging::decode(rec.image_path);
            if (spec.kind == InputSpec::kResize) {
                s.geometry = resize_geometry(img.rows, img.cols, spec.size, spec.size);
            } else {
                const auto g = encoders::preprocess_geometry(spec.preprocess, img.rows, img.cols);
                s.geometry.rows = img.rows;
                s.geometry.cols = img.cols;
                s.geometry.scale_x = g.scale_x;
                s.geometry.scale_y = g.scale_y;
                s.geometry.crop_left = static_cast<double>(g.crop_left);
                s.geometry.crop_top = static_cast<double>(g.crop_top);
                s.geometry.out_h = g.out_height;
                s.geometry.out_w = g.out_width;
            }
            if (spec.keep_pixels) {
                if (spec.kind == InputSpec::kResize) {
                    s.pixels.resize(static_cast<std::size_t>(spec.size) * spec.size);
                    cv::Mat src(img.rows, img.cols, CV_32F, const_cast<float*>(img.pixels.data()));
                    cv::Mat dst(static_cast<int>(spec.size), static_cast<int>(spec.size), CV_32F,
                                s.pixels.data());
                    const bool shrink = img.rows >= spec.size && img.cols >= spec.size;
                    cv::resize(src, dst, dst.size(), 0, 0,
                               shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
                } else {
                    // The encoder's own resize + crop on the 8-bit plane, as extraction does.
                    const auto grey = encoders::quantise_u8(img.pixels.data(), img.pixels.size());
                    const auto u8 =
                        encoders::resize_and_crop_u8(grey, img.rows, img.cols, spec.preprocess);
                    s.pixels.resize(u8.size());
                    for (std::size_t i = 0; i < u8.size(); ++i) {
                        s.pixels[i] = static_cast<float>(u8[i]) / 255.0f;
                    }
                }
            }
            if (mask_idx) {
                auto m = manifest.load_mask(rows[k], mask, img.rows, img.cols);
                if (m) {
                    s.has_truth = true;
                    s.truth = std::move(*m);
                    s.target = mask_to_input(s.truth, s.geometry);
                }
            }
        }
    });
    for (const auto& s : set.samples) {
        RADPROBE_CHECK(s.geometry.out_h == set.samples[0].geometry.out_h &&
                           s.geometry.out_w == set.samples[0].geometry.out_w,
                       manifest.path().string(), ": image ", s.id,
                       " gives another model input size than the first image; segmentation "
                       "needs one fixed input size (a centre crop or a fixed resize)");
    }
    return set;
}

// Model input in [0,1] grey (N×1×H×W) → what the network eats.
torch::Tensor normalise_input(const torch::Tensor& x01, const InputSpec& spec) {
    if (spec.kind == InputSpec::kResize) {
        return (x01 - 0.5) * 4.0;  // display images are in [0, 1]; centre them
    }
    const auto& pc = spec.preprocess;
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
        const auto patches = idx == L ? out.tokens.patches
                                      : encoders::split_tokens(out.layers.at(idx), registers,
                                                               out.grid_h, out.grid_w, has_cls)
                                            .patches;
        grids.push_back(patches.permute({0, 3, 1, 2}).contiguous());
    }
    return grids;
}

std::vector<SegImageResult> score_samples(const std::vector<Sample>& samples,
                                          const std::vector<std::vector<float>>& probabilities,
                                          const eval::SegmentationOptions& seg,
                                          std::vector<eval::SegmentationScores>* scores,
                                          std::vector<eval::Mask>* predictions) {
    std::vector<SegImageResult> out(samples.size());
    if (scores) {
        scores->assign(samples.size(), {});
    }
    if (predictions) {
        predictions->assign(samples.size(), {});
    }
    parallel_for(samples.size(), 0, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
            const Sample& s = samples[i];
            const auto orig = input_to_original(probabilities[i].data(), s.geometry);
            auto pred = threshold_mask(orig, s.geometry.rows, s.geometry.cols);
            SegImageResult& r = out[i];
            r.image = s.id;
            r.patient_id = s.patient;
            r.prediction_empty = pred.empty_foreground();
            if (s.has_truth) {
                const auto sc = eval::segmentation_scores(pred, to_eval_mask(s.truth), seg);
                r.truth_empty = sc.truth_empty;
                r.dice = sc.dice;
                r.iou = sc.iou;
                r.hd95 = sc.hd95;
                if (scores) {
                    (*scores)[i] = sc;
                }
            }
            if (predictions) {
                (*predictions)[i] = std::move(pred);
            }
        }
    });
    return out;
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
        if (samples[i].truth.count() == 0) {
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
                   std::vector<SegImageResult>& results, const std::vector<eval::Mask>& masks) {
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
        char prefix[16];
        std::snprintf(prefix, sizeof prefix, "%05zu_", samples[i].row);
        const std::string rel = "masks/" + std::string(prefix) + safe_stem(samples[i].id) + ".png";
        dataset::Mask m(static_cast<int>(masks[i].height), static_cast<int>(masks[i].width));
        m.data.assign(masks[i].pixels.begin(), masks[i].pixels.end());
        dataset::write_mask_png(out / rel, m);
        results[i].mask_path = rel;
        const auto& r = results[i];
        csv += csv_line(
                   {r.image, r.patient_id, samples[i].has_truth ? (r.truth_empty ? "1" : "0") : "",
                    r.prediction_empty ? "1" : "0", num(r.dice), num(r.iou), num(r.hd95), rel}) +
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

}  // namespace

SegmentResult run_segment(const SegmentOptions& o) {
    const auto start = std::chrono::steady_clock::now();
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
    const Unfreeze unfreeze = parse_unfreeze(o.unfreeze);
    auto seg_opts = eval::SegmentationOptions{};
    seg_opts.both_empty = eval::parse_both_empty(o.both_empty);
    seg_opts.one_empty = eval::parse_one_empty(o.one_empty);
    const AugmentOptions augment = parse_augment(o.augment);
    const bool is_unet = o.decoder == SegDecoder::kUnet;
    if (is_unet) {
        RADPROBE_USAGE_CHECK(o.model.empty() && o.store.empty(),
                             "the U-Net is trained from scratch: no --model / --store");
        RADPROBE_USAGE_CHECK(o.depth >= 1 && o.depth <= 7, "--depth must be in 1..7");
        RADPROBE_USAGE_CHECK(o.size >= 16 && o.size <= 4096 && o.size % (1 << o.depth) == 0,
                             "--size ", o.size,
                             " must be in 16..4096 and divisible by 2^depth = ", 1 << o.depth);
        RADPROBE_USAGE_CHECK(!unfreeze.any, "--unfreeze applies to encoders, not the U-Net");
    } else {
        RADPROBE_USAGE_CHECK(o.model.empty() != o.store.empty(),
                             "give exactly one of --model HFDIR or --store STORE");
        RADPROBE_USAGE_CHECK(!unfreeze.any || !o.model.empty(),
                             "--unfreeze needs --model (a store holds frozen features only)");
    }
    const bool cached = !is_unet && !unfreeze.any;
    RADPROBE_USAGE_CHECK(!cached || augment.is_identity(),
                         "--augment: a frozen encoder's patch grids come from the extraction "
                         "cache, which cannot be augmented; use --augment none (or --unfreeze)");
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
    result.unfreeze = is_unet ? "" : o.unfreeze;
    result.seed = o.seed;
    result.empty_convention = convention_text(o.both_empty, o.one_empty);

    // The encoder side: where grids come from, the input geometry, layers.
    InputSpec spec;
    fs::path model_dir = o.model;
    fs::path store_dir;
    features::PatchGridInfo grid_info;
    std::int64_t resize = o.resize;
    std::vector<int> layer_idx;
    std::unique_ptr<encoders::Encoder> encoder;
    encoders::ModelConfig config;
    if (is_unet) {
        spec.kind = InputSpec::kResize;
        spec.size = o.size;
        spec.keep_pixels = true;
    } else {
        if (!o.store.empty()) {
            store_dir = resolve_store_dir(o.store);
            const auto meta = json::parse(read_file_text(store_dir / "store.json"));
            model_dir = meta.at("model_dir").get<std::string>();
            resize = meta.at("resize").get<std::int64_t>();
        }
        config = encoders::read_model_config(model_dir);
        RADPROBE_USAGE_CHECK(o.decoder != SegDecoder::kMultiscale || !config.is_hierarchical(),
                             "--decoder multiscale: ", model_dir.string(), " is hierarchical (",
                             config.model_type, "); only its last stage has a patch grid");
        const auto requested = o.layers.empty() ? default_layers(o.decoder) : o.layers;
        layer_idx = resolve_layers(requested, config.num_hidden_layers, model_dir.string());
        RADPROBE_USAGE_CHECK(o.decoder != SegDecoder::kLinear || layer_idx.size() == 1,
                             "--decoder linear uses one layer (the last by default)");
        spec.kind = InputSpec::kEncoder;
        spec.preprocess = encoders::read_preprocess_config(model_dir);
        if (resize > 0) {
            spec.preprocess.override_size(resize);
        }
        spec.keep_pixels = unfreeze.any;
        result.encoder = model_dir.filename().string();
        if (result.encoder.empty()) {
            result.encoder = model_dir.parent_path().filename().string();
        }
        if (cached && store_dir.empty()) {
            features::ExtractOptions eo;
            eo.model_dir = model_dir;
            eo.manifest = o.manifest;
            eo.poolings = {features::Pooling::kPatches};
            eo.layers = layer_idx;
            eo.resize = resize;
            eo.threads = threads;
            eo.progress = o.progress;
            eo.store_root = !o.store_root.empty() ? o.store_root
                            : o.out               ? *o.out / "embeddings"
                                                  : fs::path();
            RADPROBE_USAGE_CHECK(!eo.store_root.empty(),
                                 "a frozen encoder needs --store-root or --out for its patch "
                                 "grid store");
            store_dir = features::extract(eo).store_dir;
        }
        if (cached) {
            grid_info = features::read_patch_grid_info(store_dir);
        }
    }
    result.layers = layer_idx;

    // Samples per split (rows with a recorded mask only).
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
    SampleSet data[3];
    for (int s = 0; s < 3; ++s) {
        data[s] = load_samples(manifest, split_rows[s], o.mask, spec, threads);
    }
    result.n_train = data[0].samples.size();
    result.n_val = data[1].samples.size();
    result.n_test = data[2].samples.size();
    const std::int64_t out_h = data[0].samples[0].geometry.out_h;
    const std::int64_t out_w = data[0].samples[0].geometry.out_w;

    // Cached grids: each sample's selected layers, N×(nl·D)×gh×gw views built per batch.
    if (cached) {
        RADPROBE_CHECK(grid_info.input_height == out_h && grid_info.input_width == out_w,
                       store_dir.string(), ": the store's input size ", grid_info.input_height, "×",
                       grid_info.input_width, " differs from this preprocessing (", out_h, "×",
                       out_w, ")");
        const auto table = features::read_embeddings(store_dir, "patches");
        std::map<std::string, std::size_t> row_of;
        for (std::size_t i = 0; i < table.image_ids.size(); ++i) {
            row_of[table.image_ids[i]] = i;
        }
        std::vector<std::size_t> which;
        for (int idx : layer_idx) {
            const auto it = std::find(grid_info.layers.begin(), grid_info.layers.end(), idx);
            std::string held;
            for (int l : grid_info.layers) {
                held += (held.empty() ? "" : ",") + std::to_string(l);
            }
            RADPROBE_CHECK(it != grid_info.layers.end(), store_dir.string(),
                           ": the store has no layer ", idx, " (it holds ", held,
                           "); extract with --layers");
            which.push_back(static_cast<std::size_t>(it - grid_info.layers.begin()));
        }
        const std::int64_t G = grid_info.grid_h * grid_info.grid_w, D = grid_info.dim;
        for (auto& set : data) {
            const auto n = static_cast<std::int64_t>(set.samples.size());
            set.grids = torch::empty({n, static_cast<std::int64_t>(which.size()), grid_info.grid_h,
                                      grid_info.grid_w, D});
            float* dst = set.grids.data_ptr<float>();
            for (std::int64_t i = 0; i < n; ++i) {
                const auto& s = set.samples[static_cast<std::size_t>(i)];
                const auto it = row_of.find(s.id);
                RADPROBE_CHECK(it != row_of.end(), store_dir.string(), ": image ", s.id,
                               " has no row (failed extraction, or another manifest)");
                const float* src = table.values.data() + it->second * table.dim;
                for (std::size_t l = 0; l < which.size(); ++l) {
                    std::memcpy(dst + (i * static_cast<std::int64_t>(which.size()) +
                                       static_cast<std::int64_t>(l)) *
                                          G * D,
                                src + static_cast<std::int64_t>(which[l]) * G * D,
                                static_cast<std::size_t>(G * D) * sizeof(float));
                }
            }
            // N×nl×gh×gw×D → N×nl×D×gh×gw
            set.grids = set.grids.permute({0, 1, 4, 2, 3}).contiguous();
        }
    }
    if (unfreeze.any) {
        encoder = encoders::load_encoder(model_dir);
        encoder->to(device);
    }

    // The network.
    std::shared_ptr<SegNet> net;
    std::int64_t dim = 0, patch = 0;
    if (is_unet) {
        net = std::make_shared<UNet>(o.depth, o.channels);
    } else {
        dim = config.hidden_size;
        patch = config.is_hierarchical() ? 0 : config.patch_size;
        if (o.decoder == SegDecoder::kLinear) {
            net = std::make_shared<LinearSegDecoder>(dim, patch, out_h, out_w);
        } else {
            net = std::make_shared<MultiscaleSegDecoder>(dim, static_cast<int>(layer_idx.size()),
                                                         o.channels, patch, out_h, out_w);
        }
    }
    net->to(device);
    SegRunner runner{spec, net, encoder.get(), layer_idx, config, device};

    // Parameter groups: the network, and (fine-tuning) the encoder by depth.
    auto groups = training::default_param_groups(*net, o.weight_decay);
    if (encoder) {
        const int nb = encoder->num_blocks();
        std::map<std::pair<int, bool>, training::ParamGroup> by_depth;
        for (auto& p : encoder->module().named_parameters()) {
            const int id = encoder->layer_id(p.key());
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
    const auto n_train = static_cast<long>(data[0].samples.size());
    const long steps_per_epoch = (n_train + o.batch - 1) / o.batch;
    training::TrainerOptions to;
    to.lr = o.lr;
    to.weight_decay = o.weight_decay;
    to.clip_norm = o.clip_norm;
    to.schedule.total_steps = steps_per_epoch * o.epochs;
    to.schedule.warmup_steps =
        std::min<long>(steps_per_epoch * o.warmup_epochs, to.schedule.total_steps - 1);
    training::Trainer trainer(std::move(groups), to);
    training::EarlyStopping stopper(o.patience);
    std::vector<torch::nn::Module*> watched{net.get()};
    if (encoder) {
        watched.push_back(&encoder->module());
    }

    Rng rng(o.seed);
    std::unique_ptr<Progress> progress;
    if (o.progress) {
        progress = std::make_unique<Progress>(str_cat("segment ", seg_decoder_name(o.decoder)),
                                              static_cast<std::size_t>(o.epochs), "epochs");
    }
    const auto targets_of = [&](const SampleSet& set, const std::vector<std::int64_t>& idx) {
        auto t = torch::empty({static_cast<std::int64_t>(idx.size()), 1, out_h, out_w});
        for (std::size_t k = 0; k < idx.size(); ++k) {
            const auto& v = set.samples[static_cast<std::size_t>(idx[k])].target;
            std::memcpy(t[static_cast<std::int64_t>(k)].data_ptr<float>(), v.data(),
                        v.size() * sizeof(float));
        }
        return t;
    };
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
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
            auto targets = targets_of(data[0], idx);
            std::vector<torch::Tensor> inputs;
            if (cached) {
                inputs = runner.cached_inputs(data[0], idx);
            } else {
                auto x01 = runner.pixels(data[0], idx);
                if (!augment.is_identity()) {
                    auto a = augment_batch(x01, targets, augment, rng);
                    x01 = a.images;
                    targets = a.masks;
                }
                inputs = runner.live_inputs(x01);
            }
            training::AutocastGuard autocast(device);
            const auto logits = net->forward_logits(inputs);
            const auto loss = seg_loss(logits.to(torch::kFloat32), targets.to(device),
                                       o.dice_weight, o.bce_weight);
            trainer.zero_grad();
            loss.backward();
            trainer.step();
        }
        const auto val_probs = runner.predict(data[1], o.batch);
        const auto val_results =
            score_samples(data[1].samples, val_probs, seg_opts, nullptr, nullptr);
        // Early stopping watches the Dice over val images with a non-empty mask when there are
        // any: under the empty-mask convention an empty prediction scores 1 on every empty
        // image, so for a rare finding the all-images Dice prefers epochs that predict nothing
        // (measured on pneumothorax phantoms: stopped at epoch 2-3 with positives-only Dice 0).
        const bool val_has_positive =
            std::any_of(val_results.begin(), val_results.end(),
                        [](const SegImageResult& r) { return r.dice && !r.truth_empty; });
        const double val_dice = mean_dice(val_results, val_has_positive);
        result.val_curve.push_back(val_dice);
        result.epochs_run = epoch + 1;
        if (progress) {
            progress->advance();
        }
        stopper.update(val_dice, watched);
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

    // Test.
    const auto test_probs = runner.predict(data[2], o.batch);
    std::vector<eval::SegmentationScores> scores;
    std::vector<eval::Mask> predicted;
    result.test = score_samples(data[2].samples, test_probs, seg_opts, &scores, &predicted);
    summarise_into(result, data[2].samples, scores, o.seed, o.n_boot, o.level);
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    // Checkpoint + outputs.
    json model_meta;
    model_meta["format"] = "radprobe-seg-1";
    model_meta["decoder"] = seg_decoder_name(o.decoder);
    model_meta["mask"] = o.mask;
    model_meta["out_h"] = out_h;
    model_meta["out_w"] = out_w;
    model_meta["layers"] = layer_idx;
    model_meta["dim"] = dim;
    model_meta["patch"] = patch;
    model_meta["channels"] = o.channels;
    model_meta["depth"] = o.depth;
    model_meta["size"] = o.size;
    model_meta["resize"] = resize;
    model_meta["threshold"] = 0.5;
    model_meta["both_empty"] = o.both_empty;
    model_meta["one_empty"] = o.one_empty;
    if (o.out) {
        const fs::path model_out = *o.out / "model";
        fs::create_directories(model_out);
        if (!is_unet) {
            if (encoder) {
                encoder->save_pretrained(model_out / "encoder");
                model_meta["model_dir"] = "encoder";
            } else {
                model_meta["model_dir"] = fs::absolute(model_dir).string();
            }
        }
        save_seg_net(*net, model_out / "decoder.pt");
        write_file_atomic(model_out / "seg_model.json", model_meta.dump(2) + "\n");
        result.checkpoint = model_out;
        write_outputs(*o.out, data[2].samples, result.test, predicted);
    }

    json j;
    j["command"] = is_unet ? "baseline" : "segment";
    j["task"] = "seg";
    j["decoder"] = seg_decoder_name(o.decoder);
    j["mask"] = o.mask;
    if (!is_unet) {
        j["encoder"] = result.encoder;
        j["model_dir"] = fs::absolute(model_dir).string();
        j["store"] = store_dir.empty() ? json(nullptr) : json(store_dir.string());
        j["features"] = cached ? "cached patch grids (frozen encoder, one forward pass)"
                               : "live forward (fine-tuned encoder)";
        j["unfreeze"] = o.unfreeze;
        j["layers"] = layer_idx;
        j["layer_decay"] = o.layer_decay;
        j["encoder_lr_mult"] = o.encoder_lr_mult;
    } else {
        j["architecture"] = "unet";
        j["depth"] = o.depth;
        j["size"] = o.size;
    }
    j["channels"] = o.channels;
    j["input_size"] = json::array({out_h, out_w});
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
    j["augment"] = augment.describe();
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
    result.metrics_json = j.dump(2) + "\n";
    if (o.out) {
        write_file_atomic(*o.out / "metrics.json", result.metrics_json);
    }
    return result;
}

}  // namespace radprobe::heads
