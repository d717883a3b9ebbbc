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
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/heads/heads.hpp"

namespace radprobe::cli {

namespace {

struct FinetuneArgs {
    heads::FinetuneOptions o;
    std::string model, manifest, out;
};

}  // namespace

Runner setup_finetune(CLI::App& app) {
    auto a = std::make_shared<FinetuneArgs>();
    app.add_option("--model", a->model, "encoder: Hugging Face model directory")->required();
    app.add_option("--manifest", a->manifest, "manifest CSV with a split column")->required();
    app.add_option("--label", a->o.label, "label column (0/1)")->required();
    app.add_option("--out", a->out, "output directory (checkpoint/, best/, predictions, metrics)")
        ->required();
    app.add_option("--head", a->o.head,
                   "linear (on the pooled token) or attention (over all "
                   "patch tokens)")
        ->check(CLI::IsMember({"linear", "attention"}))
        ->capture_default_str();
    app.add_option("--pool", a->o.pool,
                   "linear head input: cls or mean (default: cls when the "
                   "model has a CLS token)");
    app.add_option("--unfreeze", a->o.unfreeze,
                   "all, last-K (the last K blocks and what follows them) or none")
        ->capture_default_str();
    app.add_option("--llrd", a->o.llrd,
                   "layer-wise LR decay: LR × llrd^(num_blocks + 1 − layer) per encoder layer")
        ->check(CLI::Range(1e-6, 1.0))
        ->capture_default_str();
    app.add_option("--lr", a->o.lr, "peak AdamW learning rate (head; encoder × llrd factors)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--weight-decay", a->o.weight_decay, "AdamW weight decay")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--epochs", a->o.epochs, "maximum epochs")
        ->check(CLI::Range(1, 10000))
        ->capture_default_str();
    app.add_option("--batch", a->o.batch, "batch size")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    app.add_option("--warmup-epochs", a->o.warmup_epochs, "linear warm-up epochs")
        ->check(CLI::Range(0, 10000))
        ->capture_default_str();
    app.add_option("--clip", a->o.clip_norm, "gradient-norm clipping (0 = off)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--patience", a->o.patience, "early stopping: epochs without val improvement")
        ->check(CLI::Range(1, 10000))
        ->capture_default_str();
    app.add_option("--size", a->o.size, "model input size override (0 = the model's own)")
        ->check(CLI::Range(0, 4096))
        ->capture_default_str();
    app.add_option("--augment", a->o.augment,
                   "none, default, or key=value list: crop (min area), ratio, rot (degrees), "
                   "bright, contrast, gamma, mask")
        ->capture_default_str();
    app.add_flag("--hflip", a->o.hflip,
                 "also flip horizontally (WARNING: swaps left/right anatomy, e.g. the heart)");
    app.add_option("--head-dim", a->o.head_dim, "attention head width (0 = token width)")
        ->check(CLI::Range(0, 65536))
        ->capture_default_str();
    app.add_option("--head-heads", a->o.head_heads, "attention head: attention heads")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    app.add_option("--head-depth", a->o.head_depth,
                   "attention head: transformer blocks after the pooling")
        ->check(CLI::Range(0, 16))
        ->capture_default_str();
    app.add_option("--device", a->o.device, "cpu, cuda or cuda:N (CUDA: float16 autocast)")
        ->capture_default_str();
    app.add_option("--seed", a->o.seed,
                   "seed (weights of the head, shuffling, augmentation, "
                   "bootstrap)")
        ->capture_default_str();
    app.add_option("--threads", a->o.threads, "LibTorch threads (0 = all cores)")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--n-boot", a->o.n_boot, "bootstrap replicates")
        ->check(CLI::Range(std::size_t{10}, std::size_t{1000000}))
        ->capture_default_str();
    app.add_flag("--resume", a->o.resume,
                 "continue the run in OUT/checkpoint (same options required)");
    return [a]() -> int {
        heads::FinetuneOptions o = a->o;
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
        const auto r = heads::run_finetune(o);
        if (!r.completed) {
            std::fprintf(stderr,
                         "radprobe finetune: stopped after epoch %d (test hook); resume "
                         "with --resume\n",
                         r.epochs_run);
            return 3;
        }
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
