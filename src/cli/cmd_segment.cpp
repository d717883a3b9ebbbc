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
#include "option_flags.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/segment/segment.hpp"

namespace radprobe::cli {

namespace {

struct SegmentArgs {
    segment::SegmentOptions o;
    std::string decoder = "linear", model, store, store_root, manifest, out, apply;
    OptionFlags flags;
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
    app.add_option("--resize", a->o.resize, "encoder input size override (as extract --resize)")
        ->check(CLI::Range(0, 8192))
        ->capture_default_str();
    a->flags.add(app, options::specs(segment::decoder_options()));
    add_run_flags(app, a->o.seed, a->o.threads, a->o.n_boot,
                  "seed (torch, shuffling, augmentation, bootstrap)");
    app.add_option("--apply", a->apply,
                   "apply a trained decoder (a run's OUT/model) to every image of --manifest");
    app.add_option("--out", a->out, "output directory")->required();
    return [a]() -> int {
        if (!a->apply.empty()) {
            RADPROBE_USAGE_CHECK(a->model.empty() && a->store.empty(),
                                 "--apply takes its encoder from the checkpoint: no --model / "
                                 "--store");
            segment::SegmentApplyOptions ao;
            ao.checkpoint = a->apply;
            ao.manifest = a->manifest;
            ao.mask = a->o.mask;
            ao.out = a->out;
            const auto so = a->flags.apply(segment::decoder_options(), a->o, "segment");
            ao.device = so.device;
            ao.threads = a->o.threads;
            ao.batch = so.batch;
            ao.seed = a->o.seed;
            ao.n_boot = a->o.n_boot;
            const auto r = segment::apply_segment(ao);
            std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
            return 0;
        }
        RADPROBE_USAGE_CHECK(!a->o.mask.empty(), "--mask is required (or --apply)");
        RADPROBE_USAGE_CHECK(a->model.empty() != a->store.empty(),
                             "give exactly one of --model HFDIR or --store STORE");
        segment::SegmentOptions o = a->flags.apply(segment::decoder_options(), a->o, "segment");
        o.decoder = segment::parse_seg_decoder(a->decoder);
        o.model = a->model;
        o.store = a->store;
        o.store_root = a->store_root;
        o.manifest = a->manifest;
        o.out = a->out;
        o.progress = stderr_is_tty();
        const auto r = segment::run_segment(o);
        if (!r.mask_note.empty()) {
            std::fprintf(stderr, "note: %s\n", r.mask_note.c_str());
        }
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
