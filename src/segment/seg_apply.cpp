// `radprobe segment --apply CHECKPOINT`: a trained decoder (with its encoder, run live) or U-Net
// on new images; masks written on the original pixel grids, scored where a mask is recorded.

#include <chrono>
#include <nlohmann/json.hpp>

#include "radprobe/adapt/training.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "seg_internal.hpp"

namespace radprobe::segment {

namespace training = adapt::training;

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

SegmentResult apply_segment(const SegmentApplyOptions& o) {
    const auto start = std::chrono::steady_clock::now();
    RADPROBE_USAGE_CHECK(o.batch >= 1, "--batch must be >= 1");
    RADPROBE_USAGE_CHECK(!o.out.empty(), "--out is required");
    const fs::path meta_path = o.checkpoint / "seg_model.json";
    RADPROBE_CHECK(fs::exists(meta_path), o.checkpoint.string(),
                   ": not a segmentation checkpoint (no seg_model.json; pass a run's OUT/model)");
    json meta;
    try {
        meta = json::parse(read_file_text(meta_path));
    } catch (const json::exception& e) {
        throw InputError(str_cat(meta_path.string(), ": ", e.what()));
    }
    const torch::Device device = training::parse_device(o.device);
    const int threads = o.threads > 0 ? o.threads : available_threads();
    torch::set_num_threads(threads);

    SegmentResult result;
    InputSpec spec;
    spec.keep_pixels = true;
    std::unique_ptr<encoders::Encoder> encoder;
    encoders::ModelConfig config;
    std::shared_ptr<SegNet> net;
    std::vector<int> layers;
    try {
        result.decoder = parse_seg_decoder(meta.at("decoder").get<std::string>());
        result.mask = o.mask;
        const auto out_h = meta.at("out_h").get<std::int64_t>();
        const auto out_w = meta.at("out_w").get<std::int64_t>();
        const auto both = meta.at("both_empty").get<std::string>();
        const auto one = meta.at("one_empty").get<std::string>();
        result.empty_convention =
            str_cat("both_empty=", both, "; one_empty=", one, "; outside_crop=background");
        if (result.decoder == SegDecoder::kUnet) {
            spec.input = preprocess::InputSpec::square(meta.at("size").get<std::int64_t>());
            net =
                std::make_shared<UNet>(meta.at("depth").get<int>(), meta.at("channels").get<int>());
        } else {
            fs::path model_dir = meta.at("model_dir").get<std::string>();
            if (model_dir.is_relative()) {
                model_dir = o.checkpoint / model_dir;
            }
            config = encoders::read_model_config(model_dir);
            encoder = encoders::load_encoder(model_dir);
            encoder->to(device);
            result.encoder = model_dir.filename().string();
            layers = meta.at("layers").get<std::vector<int>>();
            result.layers = layers;
            spec.input = encoder_input(encoders::read_preprocess_config(model_dir),
                                       meta.at("resize").get<std::int64_t>());
            const auto dim = meta.at("dim").get<std::int64_t>();
            const auto patch = meta.at("patch").get<std::int64_t>();
            if (result.decoder == SegDecoder::kLinear) {
                net = std::make_shared<LinearSegDecoder>(dim, patch, out_h, out_w);
            } else if (meta.contains("stage_dims")) {  // a hierarchical encoder's stage maps
                net = std::make_shared<MultiscaleSegDecoder>(
                    meta.at("stage_dims").get<std::vector<std::int64_t>>(),
                    meta.at("channels").get<int>(), out_h, out_w);
            } else {
                net = std::make_shared<MultiscaleSegDecoder>(dim, static_cast<int>(layers.size()),
                                                             meta.at("channels").get<int>(), patch,
                                                             out_h, out_w);
            }
        }
        load_seg_net(*net, o.checkpoint / "decoder.pt");
        net->to(device);

        const auto manifest = dataset::Manifest::load(o.manifest);
        if (!o.mask.empty()) {
            RADPROBE_CHECK(manifest.mask_index(o.mask).has_value(), o.manifest.string(),
                           ": no column mask_", o.mask);
        }
        std::vector<std::size_t> rows(manifest.size());
        for (std::size_t i = 0; i < rows.size(); ++i) {
            rows[i] = i;
        }
        RADPROBE_CHECK(!rows.empty(), o.manifest.string(), ": no images");
        SampleSet set = load_samples(manifest, rows, o.mask, spec, threads);
        RADPROBE_CHECK(set.samples[0].geometry.out_height == out_h &&
                           set.samples[0].geometry.out_width == out_w,
                       o.manifest.string(), ": these images give a model input of ",
                       set.samples[0].geometry.out_height, "×", set.samples[0].geometry.out_width,
                       ", the decoder was trained on ", out_h, "×", out_w);
        SegRunner runner{spec, net, encoder.get(), layers, config, device};
        eval::SegmentationOptions seg;
        seg.both_empty = eval::parse_both_empty(both);
        seg.one_empty = eval::parse_one_empty(one);
        std::vector<eval::SegmentationScores> scores;
        result.test = predict_and_score(runner, set, o.batch, seg, &scores, &o.out);
        write_outputs(o.out, set.samples, result.test);
        result.n_test = set.samples.size();
        summarise_into(result, set.samples, scores, o.seed, o.n_boot, o.level);
    } catch (const json::exception& e) {
        throw InputError(str_cat(meta_path.string(), ": ", e.what()));
    }
    result.checkpoint = o.checkpoint;
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    json j;
    j["command"] = "segment --apply";
    j["checkpoint"] = fs::absolute(o.checkpoint).string();
    j["decoder"] = seg_decoder_name(result.decoder);
    j["manifest"] = o.manifest.string();
    j["images"] = result.n_test;
    j["mask"] = o.mask.empty() ? json(nullptr) : json(o.mask);
    j["empty_mask_convention"] = result.empty_convention;
    j["test_empty_truth"] = result.test_empty_truth;
    j["n_scored"] = result.n_scored;
    j["n_positive"] = result.n_positive;
    j["metrics"] = metrics_block(result);
    j["seed"] = o.seed;
    j["seconds"] = result.seconds;
    result.metrics_json = j.dump(2) + "\n";
    write_file_atomic(o.out / "metrics.json", result.metrics_json);
    return result;
}

}  // namespace radprobe::segment
