// The option tables of the trained adaptations (adapt.hpp): declared once for the CLI and the
// config. No LibTorch.

#include <algorithm>
#include <cmath>
#include <regex>

#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::adapt {

using options::field;
using options::Row;
using options::Spec;
using options::Type;
using options::Value;

HeadKind parse_head_kind(const std::string& text) {
    if (text == "attention") {
        return HeadKind::kAttention;
    }
    if (text == "mlp") {
        return HeadKind::kMlp;
    }
    throw UsageError(str_cat("--head '", text, "': expected attention or mlp"));
}

namespace {

double parse_positive(const std::string& item, const std::string& text, const std::string& option) {
    const auto v = parse_double(item);
    RADPROBE_USAGE_CHECK(v && std::isfinite(*v) && *v > 0, option, " '", text, "': '", item,
                         "' is not a positive number");
    return *v;
}

}  // namespace

std::vector<double> parse_lr_grid(const std::string& text, const std::string& option) {
    std::vector<double> grid;
    if (text.find(':') != std::string::npos) {
        std::vector<std::string> parts;
        std::size_t start = 0;
        while (true) {
            const auto colon = text.find(':', start);
            parts.push_back(text.substr(start, colon - start));
            if (colon == std::string::npos) {
                break;
            }
            start = colon + 1;
        }
        RADPROBE_USAGE_CHECK(parts.size() == 3, option, " '", text,
                             "': expected lo:hi:n (e.g. 1e-5:1e-3:5)");
        const double lo = parse_positive(parts[0], text, option);
        const double hi = parse_positive(parts[1], text, option);
        const auto n = parse_double(parts[2]);
        RADPROBE_USAGE_CHECK(n && *n >= 1 && *n <= 1000 && std::floor(*n) == *n, option, " '", text,
                             "': n = '", parts[2], "' is not an integer in [1, 1000]");
        RADPROBE_USAGE_CHECK(lo <= hi, option, " '", text, "': lo must not exceed hi");
        const int count = static_cast<int>(*n);
        if (count == 1) {
            grid.push_back(lo);
        } else {
            const double a = std::log10(lo), b = std::log10(hi);
            for (int i = 0; i < count; ++i) {
                grid.push_back(i == count - 1 ? hi : std::pow(10.0, a + (b - a) * i / (count - 1)));
            }
            grid.front() = lo;
        }
    } else {
        const auto items = dataset::split_list(text);
        RADPROBE_USAGE_CHECK(!items.empty(), option, ": empty learning-rate grid");
        for (const auto& item : items) {
            grid.push_back(parse_positive(item, text, option));
        }
    }
    std::sort(grid.begin(), grid.end());
    grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
    return grid;
}

void check_device_name(const std::string& device) {
    static const std::regex device_re("cpu|cuda(:[0-9]+)?");
    RADPROBE_CHECK(std::regex_match(device, device_re), "'", device,
                   "' is not cpu, cuda or cuda:N");
}

void check_unfreeze_rule(const std::string& rule) {
    static const std::regex unfreeze_re("all|none|last-[1-9][0-9]*");
    RADPROBE_CHECK(std::regex_match(rule, unfreeze_re), "'", rule, "' is not all, none or last-K");
}

namespace {

Spec spec(const char* name, Type type, Value def, double lo, double hi, const char* help,
          bool open_lo = false) {
    Spec s{name, type, std::move(def), lo, hi, open_lo};
    s.help = help;
    return s;
}

Spec device_spec(const char* help) {
    Spec s{"device", Type::kText, std::string("cpu")};
    s.help = help;
    s.validate = [](const Value& v) { check_device_name(std::get<std::string>(v)); };
    return s;
}

/// The schedule every trained model shares: epochs, warm-up, AdamW, clipping, early stopping.
template <typename T>
void add_schedule(options::Table<T>& t, std::int64_t epochs, std::int64_t warmup,
                  double weight_decay, std::int64_t patience, const char* watched) {
    t.push_back(field(spec("epochs", Type::kInt, epochs, 1, 100000, "maximum epochs"), &T::epochs));
    t.push_back(field(spec("weight_decay", Type::kReal, weight_decay, 0, 10, "AdamW weight decay"),
                      &T::weight_decay));
    t.push_back(field(spec("warmup_epochs", Type::kInt, warmup, 0, 100000,
                           "linear warm-up epochs, then cosine decay"),
                      &T::warmup_epochs));
    t.push_back(
        field(spec("clip_norm", Type::kReal, 1.0, 0, 1e6, "gradient-norm clipping (0 = off)"),
              &T::clip_norm));
    t.push_back(field(spec("patience", Type::kInt, patience, 1, 100000, watched), &T::patience));
}

/// A learning-rate grid written as text ("1e-5:1e-3:5" or a list), stored parsed.
Row<TrainOptions> lr_grid_row() {
    Spec s = spec("lr_grid", Type::kText, std::string("1e-5:1e-3:5"), 0, 0,
                  "learning rates: LO:HI:COUNT (log-spaced, inclusive) or a list 1e-4,3e-4");
    s.validate = [](const Value& v) {
        try {
            parse_lr_grid(std::get<std::string>(v));
        } catch (const Error& e) {
            throw InputError(e.what());
        }
    };
    return {s,
            [](TrainOptions& o, const Value& v) {
                o.lr_grid = parse_lr_grid(std::get<std::string>(v));
            },
            [](const TrainOptions& o) { return Value(options::to_text(Value(o.lr_grid))); }};
}

}  // namespace

options::Table<BaselineOptions> baseline_options() {
    options::Table<BaselineOptions> t;
    t.push_back(field(spec("size", Type::kInt, std::int64_t{256}, 32, 2048,
                           "input side in pixels (images resized to a square)"),
                      &BaselineOptions::size));
    t.push_back(field(spec("width", Type::kInt, std::int64_t{32}, 4, 512,
                           "channels of the first stage (ResNet-18: 64)"),
                      &BaselineOptions::width));
    Spec blocks = spec("blocks", Type::kIntList, std::vector<std::int64_t>{2, 2, 2, 2}, 1, 16,
                       "basic blocks per stage (ResNet-18: 2,2,2,2)");
    blocks.validate = [](const Value& v) {
        const auto n = std::get<std::vector<std::int64_t>>(v).size();
        RADPROBE_CHECK(n >= 1 && n <= 6, "1 to 6 stages, got ", n);
    };
    t.push_back(field(blocks, &BaselineOptions::blocks));
    t.push_back(field(spec("batch", Type::kInt, std::int64_t{32}, 2, 4096,
                           "batch size (BatchNorm needs at least 2)"),
                      &BaselineOptions::batch));
    t.push_back(field(spec("lr", Type::kReal, 1e-3, 0, 10, "peak AdamW learning rate", true),
                      &BaselineOptions::lr));
    add_schedule(t, 30, 2, 0.05, 6, "early stopping: epochs without val AUROC improvement");
    return t;
}

options::Table<TrainOptions> head_options(HeadKind head) {
    options::Table<TrainOptions> t;
    t.push_back(lr_grid_row());
    t.push_back(field(spec("batch", Type::kInt, std::int64_t{64}, 1, 65536, "batch size"),
                      &TrainOptions::batch));
    add_schedule(t, 30, 2, 0.05, 6, "early stopping: epochs without val AUROC improvement");
    Spec balanced{"balanced", Type::kBool, false};
    balanced.help = "class-weighted loss (pos_weight = negatives / positives)";
    t.push_back(field(balanced, &TrainOptions::balanced));
    t.push_back(field(spec("dim", Type::kInt, std::int64_t{0}, 0, 65536,
                           "attention: working width (0 = token width); mlp: hidden width "
                           "(0 = 256)"),
                      &TrainOptions::dim));
    t.push_back(field(spec("depth", Type::kInt, std::int64_t{-1}, -1, 64,
                           "attention: transformer blocks after the pooling (-1 = 0); mlp: "
                           "hidden layers (-1 = 1)"),
                      &TrainOptions::depth));
    t.push_back(field(spec("dropout", Type::kReal, 0.0, 0, 0.95, "dropout in the head"),
                      &TrainOptions::dropout));
    t.push_back(
        field(device_spec("cpu | cuda | cuda:N (mixed precision on CUDA)"), &TrainOptions::device));
    if (head == HeadKind::kAttention) {
        t.push_back(field(spec("heads", Type::kInt, std::int64_t{4}, 1, 256,
                               "attention heads (must divide the width)"),
                          &TrainOptions::heads));
        t.push_back(
            field(spec("queries", Type::kInt, std::int64_t{1}, 1, 256, "learned query tokens"),
                  &TrainOptions::queries));
    }
    return t;
}

options::Table<FinetuneOptions> finetune_options() {
    options::Table<FinetuneOptions> t;
    Spec head{"head", Type::kChoice, std::string("linear")};
    head.choices = {"linear", "attention"};
    head.help = "linear (on the pooled token) | attention (over all patch tokens)";
    t.push_back(field(head, &FinetuneOptions::head));
    Spec pool{"pool", Type::kChoice, std::string("auto")};
    pool.choices = {"auto", "cls", "mean"};
    pool.help = "linear head input: cls | mean | auto (cls when the model has a CLS token)";
    t.push_back({pool,
                 [](FinetuneOptions& o, const Value& v) {
                     const auto& p = std::get<std::string>(v);
                     o.pool = p == "auto" ? "" : p;
                 },
                 [](const FinetuneOptions& o) {
                     return Value(o.pool.empty() ? std::string("auto") : o.pool);
                 }});
    Spec unfreeze{"unfreeze", Type::kText, std::string("all")};
    unfreeze.help = "all | last-K (the last K blocks and what follows them) | none";
    unfreeze.validate = [](const Value& v) { check_unfreeze_rule(std::get<std::string>(v)); };
    t.push_back(field(unfreeze, &FinetuneOptions::unfreeze));
    t.push_back(field(spec("llrd", Type::kReal, 0.75, 0, 1,
                           "layer-wise LR decay: LR x llrd^(num_blocks + 1 - layer)", true),
                      &FinetuneOptions::llrd));
    t.push_back(field(spec("lr", Type::kReal, 1e-4, 0, 10,
                           "peak AdamW learning rate (head; encoder x llrd factors)", true),
                      &FinetuneOptions::lr));
    t.push_back(field(spec("batch", Type::kInt, std::int64_t{16}, 1, 65536, "batch size"),
                      &FinetuneOptions::batch));
    add_schedule(t, 10, 1, 0.05, 5, "early stopping: epochs without val AUROC improvement");
    t.push_back(field(spec("size", Type::kInt, std::int64_t{0}, 0, 8192,
                           "model input size override (0 = the model's own)"),
                      &FinetuneOptions::size));
    Spec augment{"augment", Type::kText, std::string("default")};
    augment.help =
        "none | default | key=value list: crop (min area), ratio, rot (degrees), bright, "
        "contrast, gamma, mask";
    t.push_back(field(augment, &FinetuneOptions::augment));
    Spec hflip{"hflip", Type::kBool, false};
    hflip.help = "also flip horizontally (WARNING: swaps left/right anatomy, e.g. the heart)";
    t.push_back(field(hflip, &FinetuneOptions::hflip));
    t.push_back(field(spec("head_dim", Type::kInt, std::int64_t{0}, 0, 65536,
                           "attention head width (0 = token width)"),
                      &FinetuneOptions::head_dim));
    t.push_back(field(
        spec("head_heads", Type::kInt, std::int64_t{4}, 1, 256, "attention head: attention heads"),
        &FinetuneOptions::head_heads));
    t.push_back(field(spec("head_depth", Type::kInt, std::int64_t{0}, 0, 64,
                           "attention head: transformer blocks after the pooling"),
                      &FinetuneOptions::head_depth));
    t.push_back(field(device_spec("cpu | cuda | cuda:N (CUDA: float16 autocast)"),
                      &FinetuneOptions::device));
    return t;
}

}  // namespace radprobe::adapt
