// radprobe segment --decoder linear|multiscale (--model HFDIR | --store STORE) --manifest M
//                  --mask NAME [--layers -4,-3,-2,-1] [--unfreeze none|all|last-K] [--seed S]
//                  [--device cpu|cuda|cuda:N] --out DIR
// radprobe segment --apply OUT/model --manifest M [--mask NAME] --out DIR
//   Trains a segmentation decoder on encoder patch grids (frozen: cached in an extraction store,
//   one forward pass; --unfreeze: the encoder fine-tuned live with layer-wise LR decay), early-
//   stopped on val Dice, evaluated on test on the original pixel grids: OUT/masks/*.png,
//   OUT/predictions.csv, OUT/metrics.json (also on stdout), OUT/model/ (for --apply).

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/heads/heads.hpp"

namespace radprobe::cli {

namespace {

struct SegmentArgs {
    heads::SegmentOptions o;
    std::string decoder = "linear", model, store, store_root, manifest, layers, out, apply;
};

}  // namespace

Runner setup_segment(CLI::App& app) {
    auto a = std::make_shared<SegmentArgs>();
    app.description(
        "Segmentation decoders on encoder patch grids, scored on the original pixel grid.\n"
        "Frozen encoder (--unfreeze none): the grids come from an extraction store (--store, or "
        "extracted once from --model into OUT/embeddings); cached grids cannot be augmented, so "
        "--augment applies only with --unfreeze. Use `radprobe baseline --task seg` for the "
        "U-Net trained from scratch.");
    app.add_option("--decoder", a->decoder,
                   "linear (BatchNorm + 1x1 conv on the last grid) | multiscale (DPT-style fusion "
                   "of several layers)")
        ->check(CLI::IsMember({"linear", "multiscale"}))
        ->capture_default_str();
    app.add_option("--model", a->model, "encoder (Hugging Face directory)");
    app.add_option("--store", a->store,
                   "embedding store extracted with --pool patches (frozen encoder only)");
    app.add_option("--store-root", a->store_root,
                   "where --model extractions are cached (default OUT/embeddings)");
    app.add_option("--manifest", a->manifest, "manifest CSV with a split column")->required();
    app.add_option("--mask", a->o.mask, "mask column name without mask_ (e.g. heart)");
    app.add_option("--layers", a->layers,
                   "hidden states (HF numbering, negative from the end); default: linear -1, "
                   "multiscale -4,-3,-2,-1");
    app.add_option("--resize", a->o.resize, "encoder input size override (as extract --resize)")
        ->check(CLI::Range(0, 8192))
        ->capture_default_str();
    app.add_option("--unfreeze", a->o.unfreeze,
                   "none (frozen, cached grids) | all | last-K (fine-tune the last K blocks)")
        ->capture_default_str();
    app.add_option("--layer-decay", a->o.layer_decay,
                   "layer-wise LR decay of the encoder (multiplier decay^(depth - layer))")
        ->capture_default_str();
    app.add_option("--encoder-lr-mult", a->o.encoder_lr_mult,
                   "encoder LR relative to the decoder LR (fine-tuning)")
        ->capture_default_str();
    app.add_option("--channels", a->o.channels, "multiscale decoder channels")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    app.add_option("--epochs", a->o.epochs, "maximum epochs")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--batch", a->o.batch, "batch size")
        ->check(CLI::Range(1, 4096))
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
    app.add_option("--clip", a->o.clip_norm, "gradient-norm clipping (0 = off)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--patience", a->o.patience, "early stopping: epochs without val Dice gain")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--dice-weight", a->o.dice_weight, "weight of the soft Dice loss")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--bce-weight", a->o.bce_weight, "weight of the BCE loss")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--augment", a->o.augment,
                   "none | default | key=value list (crop, ratio, rot, bright, contrast, gamma, "
                   "hflip); image and mask together; only with --unfreeze (cached grids cannot "
                   "be augmented)")
        ->capture_default_str();
    app.add_option("--both-empty", a->o.both_empty,
                   "truth and prediction both empty: perfect (Dice 1) | exclude")
        ->check(CLI::IsMember({"perfect", "exclude"}))
        ->capture_default_str();
    app.add_option("--one-empty", a->o.one_empty, "HD95 when one mask is empty: exclude | diagonal")
        ->check(CLI::IsMember({"exclude", "diagonal"}))
        ->capture_default_str();
    app.add_option("--device", a->o.device, "cpu | cuda | cuda:N")->capture_default_str();
    app.add_option("--seed", a->o.seed, "seed (torch, shuffling, augmentation, bootstrap)")
        ->capture_default_str();
    app.add_option("--threads", a->o.threads, "LibTorch threads (0 = all cores)")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--n-boot", a->o.n_boot, "bootstrap replicates")
        ->check(CLI::Range(std::size_t{10}, std::size_t{1000000}))
        ->capture_default_str();
    app.add_option("--apply", a->apply,
                   "apply a trained decoder (a run's OUT/model) to every image of --manifest");
    app.add_option("--out", a->out, "output directory")->required();
    return [a]() -> int {
        if (!a->apply.empty()) {
            RADPROBE_USAGE_CHECK(a->model.empty() && a->store.empty(),
                                 "--apply takes its encoder from the checkpoint: no --model / "
                                 "--store");
            heads::SegmentApplyOptions ao;
            ao.checkpoint = a->apply;
            ao.manifest = a->manifest;
            ao.mask = a->o.mask;
            ao.out = a->out;
            ao.device = a->o.device;
            ao.threads = a->o.threads;
            ao.batch = a->o.batch;
            ao.seed = a->o.seed;
            ao.n_boot = a->o.n_boot;
            const auto r = heads::apply_segment(ao);
            std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
            return 0;
        }
        RADPROBE_USAGE_CHECK(!a->o.mask.empty(), "--mask is required (or --apply)");
        RADPROBE_USAGE_CHECK(a->model.empty() != a->store.empty(),
                             "give exactly one of --model HFDIR or --store STORE");
        heads::SegmentOptions o = a->o;
        o.decoder = heads::parse_seg_decoder(a->decoder);
        o.model = a->model;
        o.store = a->store;
        o.store_root = a->store_root;
        o.manifest = a->manifest;
        o.layers = features::parse_layers(a->layers);
        o.out = a->out;
        o.progress = stderr_is_tty();
        const auto r = heads::run_segment(o);
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
