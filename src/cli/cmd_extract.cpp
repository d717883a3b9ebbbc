// radprobe extract --model HFDIR --manifest M --pool cls,mean,roi --out STORE [--batch B]
//                  [--threads T] [--layers ...] [--roi boxes|boxes:LABEL|mask_NAME] [--seed S]
//                  [--strict] [--device cpu|cuda|cuda:N] [--slice I/N]

#include <cstdio>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::cli {

Runner setup_extract(CLI::App& app) {
    struct Options {
        std::string model, checkpoint_key, dtype, manifest, boxes, pool = "cls,mean", out, layers;
        std::string roi = "boxes", device = "cpu", slice;
        int batch = 8, threads = 0, decode_threads = 0;
        long long resize = 0, shard = 256;
        unsigned long long seed = 0;
        bool strict = false, no_fold = false;
    };
    auto opt = std::make_shared<Options>();
    app.add_option("--model", opt->model, "Hugging Face model directory")->required();
    add_checkpoint_key_flag(app, opt->checkpoint_key);
    add_dtype_flag(app, opt->dtype);
    app.add_option("--manifest", opt->manifest, "study manifest CSV")->required();
    app.add_option("--out", opt->out, "store root; the store is STORE/<model>-<key>/")->required();
    app.add_option(
           "--pool", opt->pool,
           "poolings: cls, mean, cls+mean, roi, patches (the whole patch grid) (comma-separated)")
        ->capture_default_str();
    app.add_option("--layers", opt->layers,
                   "hidden states to pool and concatenate, e.g. -1,-4 (default: the last, "
                   "normalised); intermediate layers get the final layer norm");
    app.add_option("--roi", opt->roi,
                   "region for roi pooling: boxes (all boxes of the image), boxes:LABEL, or "
                   "mask_NAME (a mask column)")
        ->capture_default_str();
    app.add_option("--seed", opt->seed,
                   "seed of the control regions that roi over boxes gives images without boxes "
                   "(listed in STORE/control_boxes.csv)")
        ->capture_default_str();
    app.add_option("--boxes", opt->boxes, "boxes CSV (default: boxes.csv beside the manifest)");
    app.add_option("--batch", opt->batch, "images per forward pass")->capture_default_str();
    app.add_option("--threads", opt->threads, "LibTorch threads (0 = cores available)")
        ->capture_default_str();
    app.add_option("--resize", opt->resize, "override the processor's size (shortest edge / crop)");
    app.add_option("--shard", opt->shard, "images per shard (resume granularity)")
        ->capture_default_str();
    app.add_flag("--strict", opt->strict, "a corrupt or unreadable image is fatal");
    add_device_flag(app, opt->device);
    app.add_option("--decode-threads", opt->decode_threads,
                   "threads decoding the next batch while the current one runs (0 = 1 on the "
                   "CPU, up to 8 beside a CUDA device)")
        ->capture_default_str();
    app.add_option("--slice", opt->slice,
                   "I/N: compute only slice I of N of the store's shards (0-based; default: from "
                   "SLURM_ARRAY_TASK_ID/COUNT in a Slurm array task, else the whole); run once "
                   "more without a slice when all slices finished: it writes the final files");
    app.add_flag("--no-fold", opt->no_fold,
                 "run the 3-channel patch embedding instead of the folded grey one");
    return [opt]() -> int {
        features::ExtractOptions o;
        o.model_dir = opt->model;
        o.load = load_options(opt->checkpoint_key, opt->dtype);
        o.manifest = opt->manifest;
        if (!opt->boxes.empty()) {
            o.boxes = opt->boxes;
        }
        o.poolings = features::parse_poolings(opt->pool);
        o.layers = features::parse_layers(opt->layers);
        o.roi_source = opt->roi;
        o.roi_seed = opt->seed;
        o.store_root = opt->out;
        RADPROBE_USAGE_CHECK(opt->batch >= 1 && opt->batch <= 4096, "--batch must be in 1..4096");
        RADPROBE_USAGE_CHECK(opt->threads >= 0, "--threads must be >= 0");
        RADPROBE_USAGE_CHECK(opt->resize >= 0, "--resize must be >= 0");
        RADPROBE_USAGE_CHECK(opt->shard >= 1, "--shard must be >= 1");
        o.batch = opt->batch;
        o.threads = opt->threads;
        o.resize = opt->resize;
        o.shard_size = opt->shard;
        o.strict = opt->strict;
        o.fold_grayscale = !opt->no_fold;
        o.device = opt->device;
        RADPROBE_USAGE_CHECK(opt->decode_threads >= 0 && opt->decode_threads <= 256,
                             "--decode-threads must be in 0..256");
        o.decode_threads = opt->decode_threads;
        std::string slice_source;
        o.slice = resolve_slice(opt->slice, &slice_source);
        if (const char* max = std::getenv("RADPROBE_TEST_STOP_AFTER")) {
            o.max_images = std::atoll(max);  // test hook: behave as if killed after N images
        }
        const auto r = features::extract(o);
        if (!r.load_note.empty()) {
            std::fprintf(stderr, "note: model %s: %s\n", o.model_dir.string().c_str(),
                         r.load_note.c_str());
        }
        if (!r.mask_note.empty()) {
            std::fprintf(stderr, "note: %s\n", r.mask_note.c_str());
        }
        if (!o.slice.whole() && !r.cached && !r.stopped) {
            std::printf(
                "slice %s (%s): %lld images extracted in %.1f s; %lld of %lld shards of %s "
                "complete%s\n",
                o.slice.text().c_str(), slice_source.c_str(), static_cast<long long>(r.extracted),
                r.seconds, static_cast<long long>(r.shards_done), static_cast<long long>(r.shards),
                r.store_dir.string().c_str(),
                r.shards_done == r.shards ? "; merge: run the same command without --slice" : "");
        } else if (r.cached) {
            std::printf("cached: %s (%lld images, %lld failures; nothing to do)\n",
                        r.store_dir.string().c_str(), static_cast<long long>(r.images),
                        static_cast<long long>(r.failures));
        } else if (!r.complete) {
            std::printf("stopped: %s (%lld images this run; re-run to resume)\n",
                        r.store_dir.string().c_str(), static_cast<long long>(r.extracted));
        } else {
            std::printf(
                "store: %s\nimages: %lld, extracted this run: %lld, failures: %lld, "
                "time: %.1f s (%.2f images/s; waited %.1f s for decoding on %d threads)\n",
                r.store_dir.string().c_str(), static_cast<long long>(r.images),
                static_cast<long long>(r.extracted), static_cast<long long>(r.failures), r.seconds,
                r.seconds > 0 ? r.extracted / r.seconds : 0.0, r.decode_wait_seconds,
                r.decode_threads);
        }
        return 0;
    };
}

}  // namespace radprobe::cli
