// The option tables of segmentation (segment.hpp): declared once for the CLI and the config.
// No LibTorch.

#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/segment/segment.hpp"

namespace radprobe::segment {

using options::field;
using options::Spec;
using options::Type;
using options::Value;

namespace {

Spec spec(const char* name, Type type, Value def, double lo, double hi, const char* help,
          bool open_lo = false) {
    Spec s{name, type, std::move(def), lo, hi, open_lo};
    s.help = help;
    return s;
}

Spec choice(const char* name, const char* def, std::vector<std::string> choices, const char* help) {
    Spec s{name, Type::kChoice, std::string(def)};
    s.choices = std::move(choices);
    s.help = help;
    return s;
}

/// The rows the decoders and the U-Net share, with the given defaults.
options::Table<SegmentOptions> shared_rows(std::int64_t channels, std::int64_t epochs, double lr,
                                           const char* channels_help) {
    using O = SegmentOptions;
    options::Table<O> t;
    t.push_back(field(spec("epochs", Type::kInt, epochs, 1, 100000, "maximum epochs"), &O::epochs));
    t.push_back(
        field(spec("batch", Type::kInt, std::int64_t{8}, 1, 65536, "batch size"), &O::batch));
    t.push_back(
        field(spec("lr", Type::kReal, lr, 0, 10, "peak AdamW learning rate", true), &O::lr));
    t.push_back(field(spec("weight_decay", Type::kReal, 1e-4, 0, 10, "AdamW weight decay"),
                      &O::weight_decay));
    t.push_back(field(spec("warmup_epochs", Type::kInt, std::int64_t{2}, 0, 100000,
                           "linear warm-up epochs, then cosine decay"),
                      &O::warmup_epochs));
    t.push_back(
        field(spec("clip_norm", Type::kReal, 1.0, 0, 1e6, "gradient-norm clipping (0 = off)"),
              &O::clip_norm));
    t.push_back(field(spec("patience", Type::kInt, std::int64_t{10}, 1, 100000,
                           "early stopping: epochs without val Dice improvement"),
                      &O::patience));
    t.push_back(field(spec("dice_weight", Type::kReal, 1.0, 0, 100, "weight of the soft Dice loss"),
                      &O::dice_weight));
    t.push_back(field(spec("bce_weight", Type::kReal, 1.0, 0, 100, "weight of the BCE loss"),
                      &O::bce_weight));
    Spec augment{"augment", Type::kText, std::string("none")};
    augment.help =
        "none | default | key=value list (crop, ratio, rot, bright, contrast, gamma, hflip); "
        "image and mask together; live input only (the U-Net, or an unfrozen encoder)";
    t.push_back(field(augment, &O::augment));
    t.push_back(field(choice("both_empty", "perfect", {"perfect", "exclude"},
                             "truth and prediction both empty: perfect (Dice 1) | exclude"),
                      &O::both_empty));
    t.push_back(field(choice("one_empty", "exclude", {"exclude", "diagonal"},
                             "HD95 when one mask is empty: exclude | diagonal"),
                      &O::one_empty));
    t.push_back(
        field(spec("channels", Type::kInt, channels, 1, 4096, channels_help), &O::channels));
    Spec device{"device", Type::kText, std::string("cpu")};
    device.help = "cpu | cuda | cuda:N";
    device.validate = [](const Value& v) { adapt::check_device_name(std::get<std::string>(v)); };
    t.push_back(field(device, &O::device));
    return t;
}

}  // namespace

options::Table<SegmentOptions> decoder_options() {
    using O = SegmentOptions;
    auto t = shared_rows(64, 40, 1e-3, "multiscale decoder: fused channels");
    t.push_back(field(spec("layers", Type::kIntList, std::vector<std::int64_t>{}, -1000, 1000,
                           "hidden states (HF numbering, negative from the end); empty: linear "
                           "-1, multiscale -4,-3,-2,-1"),
                      &O::layers));
    Spec unfreeze{"unfreeze", Type::kText, std::string("none")};
    unfreeze.help = "none (frozen, cached grids) | all | last-K (fine-tune the last K blocks)";
    unfreeze.validate = [](const Value& v) {
        adapt::check_unfreeze_rule(std::get<std::string>(v));
    };
    t.push_back(field(unfreeze, &O::unfreeze));
    t.push_back(field(spec("layer_decay", Type::kReal, 0.75, 0, 1,
                           "layer-wise LR decay of the encoder (decay^(depth - layer))", true),
                      &O::layer_decay));
    t.push_back(field(spec("encoder_lr_mult", Type::kReal, 0.1, 0, 100,
                           "encoder LR relative to the decoder LR (fine-tuning)"),
                      &O::encoder_lr_mult));
    return t;
}

options::Table<SegmentOptions> unet_options() {
    using O = SegmentOptions;
    auto t = shared_rows(8, 10, 3e-3, "U-Net: channels of the first level");
    t.push_back(field(spec("size", Type::kInt, std::int64_t{128}, 16, 8192,
                           "input side in pixels (square; divisible by 2^depth)"),
                      &O::size));
    t.push_back(field(spec("depth", Type::kInt, std::int64_t{4}, 1, 8, "U-Net levels"), &O::depth));
    return t;
}

}  // namespace radprobe::segment
