// radprobe train --head attention|mlp --store STORE --manifest M --label L [--label ...]
//                [--pool patches|cls|mean|cls+mean|roi] [--lr-grid 1e-5:1e-3:5] [--epochs 30]
//                [--batch 64] [--dim D] [--heads H] [--depth K] [--queries Q] [--seed S]
//                [--device cpu|cuda|cuda:N] [--out DIR]
//   Trains a head on cached features per label (AdamW, warm-up + cosine, clipping, early
//   stopping on val AUROC, LR chosen on val), evaluates on test: OUT/predictions_<label>.csv and
//   OUT/metrics.json (also on stdout).

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/heads/heads.hpp"

namespace radprobe::cli {

namespace {

struct TrainArgs {
    heads::TrainOptions o;
    std::string head = "attention", store, manifest, lr_grid = "1e-5:1e-3:5", out;
};

}  // namespace

Runner setup_train(CLI::App& app) {
    auto a = std::make_shared<TrainArgs>();
    app.add_option("--head", a->head, "attention (patch tokens) | mlp (pooled embeddings)")
        ->check(CLI::IsMember({"attention", "mlp"}))
        ->capture_default_str();
    app.add_option("--store", a->store,
                   "embedding store (attention: extracted with --pool patches), or its root when "
                   "it holds exactly one store")
        ->required();
    app.add_option("--manifest", a->manifest, "manifest CSV with a split column")->required();
    app.add_option("--label", a->o.labels, "label column (repeat for several labels)")->required();
    app.add_option("--pool", a->o.pool,
                   "features: patches (attention, default) | cls (mlp default) | mean | "
                   "cls+mean | roi")
        ->check(CLI::IsMember({"patches", "cls", "mean", "cls+mean", "roi"}));
    app.add_option("--lr-grid", a->lr_grid,
                   "learning rates: LO:HI:COUNT (log-spaced, inclusive) or a list 1e-4,3e-4")
        ->capture_default_str();
    app.add_option("--epochs", a->o.epochs, "maximum epochs per learning rate")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--batch", a->o.batch, "batch size")
        ->check(CLI::Range(1, 65536))
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
    app.add_flag("--balanced", a->o.balanced, "class-weighted loss (negatives / positives)");
    app.add_option("--dim", a->o.dim,
                   "attention: working width (0 = token width); mlp: hidden width (0 = 256)")
        ->check(CLI::Range(0, 65536))
        ->capture_default_str();
    app.add_option("--heads", a->o.heads, "attention heads (must divide the width)")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    app.add_option("--depth", a->o.depth,
                   "attention: transformer blocks after the pooling (default 0); mlp: hidden "
                   "layers (default 1)")
        ->check(CLI::Range(0, 12));
    app.add_option("--queries", a->o.queries, "attention: learned query tokens")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    app.add_option("--dropout", a->o.dropout, "dropout in the head")
        ->check(CLI::Range(0.0, 0.99))
        ->capture_default_str();
    app.add_option("--device", a->o.device, "cpu | cuda | cuda:N (mixed precision on CUDA)")
        ->capture_default_str();
    app.add_option("--seed", a->o.seed, "seed (initialisation, shuffling, bootstrap)")
        ->capture_default_str();
    app.add_option("--threads", a->o.threads, "LibTorch threads (0 = all cores)")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--n-boot", a->o.n_boot, "bootstrap replicates")
        ->check(CLI::Range(std::size_t{10}, std::size_t{1000000}))
        ->capture_default_str();
    app.add_option("--out", a->out, "output directory (predictions_<label>.csv, metrics.json)");
    return [a]() -> int {
        heads::TrainOptions o = a->o;
        o.head = heads::parse_head_kind(a->head);
        o.store = a->store;
        o.manifest = a->manifest;
        o.lr_grid = heads::parse_lr_grid(a->lr_grid);
        if (!a->out.empty()) {
            o.out = a->out;
        }
        o.progress = stderr_is_tty();
        const auto r = heads::run_train(o);
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
