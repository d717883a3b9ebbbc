// radprobe baseline --task cls --manifest M --label COL [--size 256] [--width 32]
//                   [--blocks 2,2,2,2] [--epochs 30] [--batch 32] [--lr 1e-3] [--seed S]
//                   [--out DIR]
//   A ResNet-style CNN trained from scratch on the manifest's train split, early-stopped on
//   val AUROC, evaluated on test: OUT/predictions_<label>.csv and OUT/metrics.json (also on
//   stdout).
// radprobe baseline --task seg --manifest M --mask NAME [--size 128] [--width 8] [--depth 4]
//                   [--epochs 10] [--lr 3e-3] [--augment none] [--out DIR]
//   (--task seg has its own defaults for size, width, epochs and lr, applied when the option
//   is not given: heart Dice >= 0.9 on 256 px phantoms in minutes on 2 cores)
//   A U-Net trained from scratch (Dice + BCE), early-stopped on val Dice, evaluated on test on
//   the original pixel grids: OUT/masks/*.png, OUT/predictions.csv, OUT/metrics.json,
//   OUT/model/ (usable with radprobe segment --apply).

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/heads/heads.hpp"

namespace radprobe::cli {

namespace {

// U-Net baseline (--task seg) defaults: 128 px input, 8 channels at the first of 4 levels, 10
// epochs at lr 3e-3 (measured: heart Dice >= 0.9 on the 256 px phantoms in a few minutes).
constexpr int kUnetSize = 128;
constexpr int kUnetWidth = 8;
constexpr int kUnetEpochs = 10;
constexpr double kUnetLr = 3e-3;

struct BaselineArgs {
    heads::BaselineOptions o;
    heads::SegmentOptions seg;
    std::string task = "cls", manifest, blocks = "2,2,2,2", out;
    int depth = 4;
    std::string augment = "none";
    double dice_weight = 1.0, bce_weight = 1.0;
    std::string both_empty = "perfect", one_empty = "exclude", device = "cpu";
};

}  // namespace

Runner setup_baseline(CLI::App& app) {
    auto a = std::make_shared<BaselineArgs>();
    app.add_option("--task", a->task, "cls (ResNet-style CNN) | seg (U-Net)")
        ->check(CLI::IsMember({"cls", "seg"}))
        ->capture_default_str();
    app.add_option("--manifest", a->manifest, "manifest CSV with a split column")->required();
    app.add_option("--label", a->o.label, "label column (--task cls)");
    app.add_option("--mask", a->seg.mask, "mask column name without mask_ (--task seg)");
    app.add_option("--depth", a->depth, "U-Net levels (--task seg; size divisible by 2^depth)")
        ->check(CLI::Range(1, 7))
        ->capture_default_str();
    app.add_option("--augment", a->augment,
                   "--task seg: none | default | key=value list (image and mask together)")
        ->capture_default_str();
    app.add_option("--dice-weight", a->dice_weight, "--task seg: weight of the soft Dice loss")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--bce-weight", a->bce_weight, "--task seg: weight of the BCE loss")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--both-empty", a->both_empty,
                   "--task seg: truth and prediction both empty: perfect | exclude")
        ->check(CLI::IsMember({"perfect", "exclude"}))
        ->capture_default_str();
    app.add_option("--one-empty", a->one_empty, "--task seg: HD95 with one mask empty: "
                   "exclude | diagonal")
        ->check(CLI::IsMember({"exclude", "diagonal"}))
        ->capture_default_str();
    app.add_option("--device", a->device, "--task seg: cpu | cuda | cuda:N")
        ->capture_default_str();
    app.add_option("--size", a->o.size, "input size in pixels (square; --task seg default 128)")
        ->check(CLI::Range(32, 2048))
        ->capture_default_str();
    app.add_option("--width", a->o.width,
                   "channels of the first stage (ResNet-18: 64; --task seg: U-Net, default 8)")
        ->check(CLI::Range(1, 512))
        ->capture_default_str();
    app.add_option("--blocks", a->blocks, "basic blocks per stage (ResNet-18: 2,2,2,2)")
        ->capture_default_str();
    app.add_option("--epochs", a->o.epochs, "maximum epochs (--task seg default 10)")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--batch", a->o.batch, "batch size")
        ->check(CLI::Range(2, 4096))
        ->capture_default_str();
    app.add_option("--lr", a->o.lr, "peak AdamW learning rate (--task seg default 3e-3)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--weight-decay", a->o.weight_decay, "AdamW weight decay")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--warmup-epochs", a->o.warmup_epochs, "linear warm-up epochs")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
    app.add_option("--clip", a->o.clip_norm, "gradient-norm clipping")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--patience", a->o.patience, "early stopping: epochs without val improvement")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--seed", a->o.seed, "seed (torch::manual_seed, shuffling, bootstrap)")
        ->capture_default_str();
    app.add_option("--threads", a->o.threads, "LibTorch threads (0 = all cores)")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--n-boot", a->o.n_boot, "bootstrap replicates")
        ->check(CLI::Range(std::size_t{10}, std::size_t{1000000}))
        ->capture_default_str();
    app.add_option("--out", a->out, "output directory (predictions_<label>.csv, metrics.json)");
    CLI::App* app_ptr = &app;
    return [a, app_ptr]() -> int {
        if (a->task == "seg") {
            RADPROBE_USAGE_CHECK(!a->seg.mask.empty(), "--task seg needs --mask NAME");
            heads::SegmentOptions s = a->seg;
            s.decoder = heads::SegDecoder::kUnet;
            s.manifest = a->manifest;
            // The classification defaults (size 256, width 32, epochs 30, batch 32, lr 1e-3,
            // weight decay 0.05, patience 6) are not the U-Net's: options not given on the
            // command line take the U-Net baseline's defaults below or SegmentOptions'.
            s.size = app_ptr->count("--size") > 0 ? a->o.size : kUnetSize;
            s.channels = app_ptr->count("--width") > 0 ? a->o.width : kUnetWidth;
            s.depth = a->depth;
            s.epochs = kUnetEpochs;
            s.lr = kUnetLr;
            if (app_ptr->count("--epochs") > 0) {
                s.epochs = a->o.epochs;
            }
            if (app_ptr->count("--batch") > 0) {
                s.batch = a->o.batch;
            }
            if (app_ptr->count("--weight-decay") > 0) {
                s.weight_decay = a->o.weight_decay;
            }
            if (app_ptr->count("--patience") > 0) {
                s.patience = a->o.patience;
            }
            if (app_ptr->count("--lr") > 0) {
                s.lr = a->o.lr;
            }
            s.warmup_epochs = a->o.warmup_epochs;
            s.clip_norm = a->o.clip_norm;
            s.seed = a->o.seed;
            s.threads = a->o.threads;
            s.n_boot = a->o.n_boot;
            s.augment = a->augment;
            s.dice_weight = a->dice_weight;
            s.bce_weight = a->bce_weight;
            s.both_empty = a->both_empty;
            s.one_empty = a->one_empty;
            s.device = a->device;
            if (!a->out.empty()) {
                s.out = a->out;
            }
            s.progress = stderr_is_tty();
            const auto r = heads::run_segment(s);
            std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
            return 0;
        }
        RADPROBE_USAGE_CHECK(!a->o.label.empty(), "--task cls needs --label COLUMN");
        heads::BaselineOptions o = a->o;
        o.manifest = a->manifest;
        o.blocks.clear();
        for (const auto& item : dataset::split_list(a->blocks)) {
            char* end = nullptr;
            const long b = std::strtol(item.c_str(), &end, 10);
            RADPROBE_USAGE_CHECK(end && *end == '\0' && b >= 1 && b <= 16, "--blocks '", a->blocks,
                                 "': '", item, "' is not an integer in [1, 16]");
            o.blocks.push_back(static_cast<int>(b));
        }
        RADPROBE_USAGE_CHECK(!o.blocks.empty() && o.blocks.size() <= 6,
                             "--blocks: 1 to 6 stages, got ", o.blocks.size());
        if (!a->out.empty()) {
            o.out = a->out;
        }
        o.progress = stderr_is_tty();
        const auto r = heads::run_baseline(o);
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
