// radprobe baseline --task cls --manifest M --label COL [--size 256] [--width 32]
//                   [--blocks 2,2,2,2] [--epochs 30] [--batch 32] [--lr 1e-3] [--seed S]
//                   [--out DIR]
//   A ResNet-style CNN trained from scratch on the manifest's train split, early-stopped on
//   val AUROC, evaluated on test: OUT/predictions_<label>.csv and OUT/metrics.json (also on
//   stdout).

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/heads/heads.hpp"

namespace radprobe::cli {

namespace {

struct BaselineArgs {
    heads::BaselineOptions o;
    std::string task = "cls", manifest, blocks = "2,2,2,2", out;
};

}  // namespace

Runner setup_baseline(CLI::App& app) {
    auto a = std::make_shared<BaselineArgs>();
    app.add_option("--task", a->task, "cls (classification; segmentation is not implemented yet)")
        ->check(CLI::IsMember({"cls"}))
        ->capture_default_str();
    app.add_option("--manifest", a->manifest, "manifest CSV with a split column")->required();
    app.add_option("--label", a->o.label, "label column")->required();
    app.add_option("--size", a->o.size, "input size in pixels (square)")
        ->check(CLI::Range(32, 2048))
        ->capture_default_str();
    app.add_option("--width", a->o.width, "channels of the first stage (ResNet-18: 64)")
        ->check(CLI::Range(1, 512))
        ->capture_default_str();
    app.add_option("--blocks", a->blocks, "basic blocks per stage (ResNet-18: 2,2,2,2)")
        ->capture_default_str();
    app.add_option("--epochs", a->o.epochs, "maximum epochs")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--batch", a->o.batch, "batch size")
        ->check(CLI::Range(2, 4096))
        ->capture_default_str();
    app.add_option("--lr", a->o.lr, "peak AdamW learning rate")
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
    return [a]() -> int {
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
