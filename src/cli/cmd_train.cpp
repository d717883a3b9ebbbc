// radprobe train --head attention|mlp --store STORE --manifest M --label L [--label ...]
//                [--pool patches|cls|mean|cls+mean|roi] [--lr-grid 1e-5:1e-3:5] [--epochs 30]
//                [--batch 64] [--dim D] [--heads H] [--depth K] [--queries Q] [--seed S]
//                [--device cpu|cuda|cuda:N] [--out DIR]
//   Trains a head on cached features per label (AdamW, warm-up + cosine, clipping, early
//   stopping on val AUROC, LR chosen on val), evaluates on test: OUT/predictions_<label>.csv and
//   OUT/metrics.json (also on stdout).

#include <cstdio>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"

namespace radprobe::cli {

namespace {

struct TrainArgs {
    adapt::TrainOptions o;
    std::string head = "attention", store, manifest, out;
    OptionFlags flags;
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
    a->flags.add(app, options::specs(adapt::head_options(adapt::HeadKind::kAttention)),
                 "attention");
    a->flags.add(app, options::specs(adapt::head_options(adapt::HeadKind::kMlp)), "mlp");
    add_run_flags(app, a->o.seed, a->o.threads, a->o.n_boot,
                  "seed (initialisation, shuffling, bootstrap)");
    app.add_option("--out", a->out, "output directory (predictions_<label>.csv, metrics.json)");
    return [a]() -> int {
        adapt::TrainOptions o = a->o;
        o.head = adapt::parse_head_kind(a->head);
        o = a->flags.apply(adapt::head_options(o.head), o, "--head " + a->head);
        o.store = a->store;
        o.manifest = a->manifest;
        if (!a->out.empty()) {
            o.out = a->out;
        }
        o.progress = stderr_is_tty();
        const auto r = adapt::run_train(o);
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
