// radprobe finetune --model HFDIR --manifest M --label COL --out DIR
//                   [--head linear|attention] [--unfreeze all|last-K|none] [--llrd 0.75]
//                   [--lr 1e-4] [--epochs 10] [--batch 16] [--size N] [--augment SPEC] [--hflip]
//                   [--device cpu|cuda|cuda:N] [--seed S] [--resume]
//   Fine-tunes the encoder with a classification head (layer-wise LR decay, augmentation,
//   early stopping on val AUROC), checkpointing after every epoch into OUT/checkpoint and the
//   best-on-val state into OUT/best (encoder in HF layout: `radprobe extract --model
//   OUT/best/encoder`), then scores the test split: OUT/predictions_<label>.csv and
//   OUT/metrics.json (also on stdout).

#include <cstdio>
#include <cstdlib>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"

namespace radprobe::cli {

namespace {

struct FinetuneArgs {
    adapt::FinetuneOptions o;
    std::string model, manifest, out;
    OptionFlags flags;
};

}  // namespace

Runner setup_finetune(CLI::App& app) {
    auto a = std::make_shared<FinetuneArgs>();
    app.add_option("--model", a->model, "encoder: Hugging Face model directory")->required();
    app.add_option("--manifest", a->manifest, "manifest CSV with a split column")->required();
    app.add_option("--label", a->o.label, "label column (0/1)")->required();
    app.add_option("--out", a->out, "output directory (checkpoint/, best/, predictions, metrics)")
        ->required();
    a->flags.add(app, options::specs(adapt::finetune_options()));
    add_run_flags(app, a->o.seed, a->o.threads, a->o.n_boot,
                  "seed (weights of the head, shuffling, augmentation, "
                  "bootstrap)");
    app.add_flag("--resume", a->o.resume,
                 "continue the run in OUT/checkpoint (same options required)");
    return [a]() -> int {
        adapt::FinetuneOptions o = a->flags.apply(adapt::finetune_options(), a->o, "finetune");
        o.model = a->model;
        o.manifest = a->manifest;
        o.out = a->out;
        o.progress = stderr_is_tty();
        // Test hook: stop after this epoch's checkpoint, as a kill would (exit code 3).
        if (const char* stop = std::getenv("RADPROBE_TEST_FINETUNE_STOP_AFTER_EPOCH")) {
            o.stop_after_epoch = std::atoi(stop);
        }
        if (o.hflip || o.augment.find("hflip=1") != std::string::npos) {
            std::fprintf(stderr,
                         "radprobe finetune: warning: --hflip flips radiographs left-right, which "
                         "swaps anatomy (the heart appears on the other side); use it only for "
                         "labels that do not depend on laterality\n");
        }
        const auto r = adapt::run_finetune(o);
        if (!r.completed) {
            std::fprintf(stderr,
                         "radprobe finetune: stopped after epoch %d (test hook); resume "
                         "with --resume\n",
                         r.epochs_run);
            return 3;
        }
        if (r.rank != 0) {
            std::printf("rank %d of %d: %d epochs trained (rank 0 writes the results)\n", r.rank,
                        r.world, r.epochs_run);
            return 0;
        }
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
