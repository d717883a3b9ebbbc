// The supervised from-scratch baseline: a ResNet-style CNN (basic blocks, configurable width and
// depth) trained on the manifest's train split with AdamW, linear warm-up + cosine decay,
// gradient-norm clipping and early stopping on the validation AUROC (training.hpp). LibTorch.

#include <torch/torch.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "baseline_export.hpp"
#include "labelled_images.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/adapt/training.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/preprocess/preprocess.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::adapt {

using probes::evaluate_scores;
using probes::label_json;
using probes::predictions_csv;

namespace {

namespace fs = std::filesystem;
namespace nn = torch::nn;

struct BasicBlockImpl : nn::Module {
    BasicBlockImpl(int in, int out, int stride) {
        conv1 = register_module(
            "conv1",
            nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
        bn1 = register_module("bn1", nn::BatchNorm2d(out));
        conv2 = register_module(
            "conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).stride(1).padding(1).bias(false)));
        bn2 = register_module("bn2", nn::BatchNorm2d(out));
        if (stride != 1 || in != out) {
            downsample = register_module(
                "downsample",
                nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
                               nn::BatchNorm2d(out)));
        }
    }
    torch::Tensor forward(const torch::Tensor& x) {
        auto y = torch::relu(bn1->forward(conv1->forward(x)));
        y = bn2->forward(conv2->forward(y));
        return torch::relu(y + (downsample.is_empty() ? x : downsample->forward(x)));
    }
    nn::Conv2d conv1{nullptr}, conv2{nullptr};
    nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
    nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

struct ResNetImpl : nn::Module {
    ResNetImpl(int width, const std::vector<int>& blocks) {
        conv1 = register_module(
            "conv1", nn::Conv2d(nn::Conv2dOptions(1, width, 7).stride(2).padding(3).bias(false)));
        bn1 = register_module("bn1", nn::BatchNorm2d(width));
        int in = width;
        for (std::size_t s = 0; s < blocks.size(); ++s) {
            const int out = width << s;
            nn::Sequential stage;
            for (int b = 0; b < blocks[s]; ++b) {
                stage->push_back(BasicBlock(in, out, (b == 0 && s > 0) ? 2 : 1));
                in = out;
            }
            layers->push_back(stage);
        }
        register_module("layers", layers);
        fc = register_module("fc", nn::Linear(in, 1));
        for (auto& m : modules(false)) {
            if (auto* conv = m->as<nn::Conv2d>()) {
                nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
            }
        }
    }
    torch::Tensor forward(torch::Tensor x) {
        x = torch::relu(bn1->forward(conv1->forward(x)));
        x = torch::max_pool2d(x, 3, 2, 1);
        for (auto& stage : *layers) {
            x = stage->as<nn::Sequential>()->forward(x);
        }
        x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
        return fc->forward(x).squeeze(1);
    }
    nn::Conv2d conv1{nullptr};
    nn::BatchNorm2d bn1{nullptr};
    nn::ModuleList layers;
    nn::Linear fc{nullptr};
};
TORCH_MODULE(ResNet);

using Images = LabelledImages;  // planes: 1×S×S, centred

Images load_split(const dataset::Manifest& m, const std::vector<std::int8_t>& labels,
                  dataset::Split split, int size, int threads, const char* name) {
    const auto rows = labelled_rows(m, labels, split, name);
    Images out;
    // Per-image standardisation is unnecessary: display images are in [0, 1]; centre them.
    load_planes(out, m, rows, preprocess::InputSpec::square(size), threads, -0.5, 4.0,
                "a square resize gives one size");
    set_labels(out, m, labels, rows);
    return out;
}

std::vector<double> predict(ResNet& model, const Images& images, int batch) {
    torch::NoGradGuard guard;
    model->eval();
    std::vector<double> scores;
    for (long b = 0; b < images.size(); b += batch) {
        const auto logits =
            model->forward(images.range(b, std::min<long>(images.size(), b + batch)));
        const auto c = logits.contiguous();
        scores.insert(scores.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    }
    return scores;
}

void check_options(const BaselineOptions& o) {
    RADPROBE_USAGE_CHECK(o.size >= 32 && o.size <= 2048, "--size ", o.size,
                         ": expected 32 .. 2048");
    RADPROBE_USAGE_CHECK(o.width >= 1 && o.width <= 512, "--width ", o.width,
                         ": expected 1 .. 512");
    RADPROBE_USAGE_CHECK(!o.blocks.empty() && o.blocks.size() <= 6, "--blocks: 1 .. 6 stages");
    for (int b : o.blocks) {
        RADPROBE_USAGE_CHECK(b >= 1 && b <= 16, "--blocks: each stage needs 1 .. 16 blocks");
    }
    RADPROBE_USAGE_CHECK(o.epochs >= 1 && o.batch >= 2 && o.lr > 0 && o.weight_decay >= 0 &&
                             o.warmup_epochs >= 0 && o.clip_norm > 0 && o.patience >= 1,
                         "baseline: epochs >= 1, batch >= 2, lr > 0, weight decay >= 0, "
                         "warm-up >= 0, clip > 0 and patience >= 1 are required");
}

struct Splits {
    Images train, val, test;
};

Splits load_splits(const BaselineOptions& o, int threads) {
    const auto manifest = load_label_manifest(o.manifest, o.label);
    const auto labels = manifest.label_vector(o.label);
    Splits s;
    s.train = load_split(manifest, labels, dataset::Split::kTrain, o.size, threads, "train");
    s.val = load_split(manifest, labels, dataset::Split::kVal, o.size, threads, "val");
    s.test = load_split(manifest, labels, dataset::Split::kTest, o.size, threads, "test");
    const auto val_counts = eval::count_classes(s.val.y);
    RADPROBE_CHECK(val_counts.positives > 0 && val_counts.negatives > 0, o.manifest.string(),
                   ": the val split needs both classes of '", o.label, "' for early stopping");
    return s;
}

training::TrainerOptions trainer_options(const BaselineOptions& o, long n) {
    const long steps_per_epoch = (n + o.batch - 1) / o.batch;
    training::TrainerOptions to;
    to.lr = o.lr;
    to.weight_decay = o.weight_decay;
    to.clip_norm = o.clip_norm;
    to.schedule.total_steps = steps_per_epoch * o.epochs;
    to.schedule.warmup_steps = steps_per_epoch * o.warmup_epochs;
    return to;
}

// One shuffled pass over train.
void train_epoch(const BaselineOptions& o, const Images& train, const torch::Tensor& y_train,
                 ResNet& model, training::Trainer& trainer, Rng& rng) {
    const long n = train.size();
    model->train();
    std::vector<long> order(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        order[static_cast<std::size_t>(i)] = i;
    }
    for (std::size_t i = order.size(); i > 1; --i) {
        std::swap(order[i - 1], order[rng.below(i)]);
    }
    for (long b = 0; b < n; b += o.batch) {
        const long e = std::min(n, b + o.batch);
        if (e - b < 2) {
            continue;  // BatchNorm needs two samples
        }
        const std::vector<long> rows(order.begin() + b, order.begin() + e);
        const auto idx = torch::tensor(rows);
        auto xb = train.batch(rows);
        // Light augmentation: a random horizontal shift of up to 1/16 of the width keeps the
        // anatomy's orientation (no flips).
        const long shift =
            static_cast<long>(rng.below(static_cast<std::uint64_t>(o.size / 8 + 1))) - o.size / 16;
        if (shift != 0) {
            xb = torch::roll(xb, {shift}, {3});
        }
        trainer.zero_grad();
        const auto loss = torch::binary_cross_entropy_with_logits(model->forward(xb),
                                                                  y_train.index_select(0, idx));
        loss.backward();
        trainer.step();
    }
}

// Epochs until early stopping on val AUROC; the best weights are restored.
void fit(const BaselineOptions& o, const Splits& data, ResNet& model, training::Trainer& trainer,
         BaselineResult& result) {
    const auto y_train =
        torch::tensor(std::vector<float>(data.train.y.begin(), data.train.y.end()));
    training::EarlyStopping stopper(o.patience);
    Rng rng(o.seed);
    std::unique_ptr<Progress> progress;
    if (o.progress) {
        progress =
            std::make_unique<Progress>("baseline", static_cast<std::size_t>(o.epochs), "epochs");
    }
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
        train_epoch(o, data.train, y_train, model, trainer, rng);
        const double auc = eval::auroc(data.val.y, predict(model, data.val, o.batch));
        result.val_curve.push_back(auc);
        result.epochs_run = epoch + 1;
        if (progress) {
            progress->advance();
        }
        if (stopper.update(auc, *model)) {
            result.best_epoch = epoch + 1;
        } else if (stopper.should_stop()) {
            break;
        }
    }
    if (progress) {
        progress->finish();
    }
    RADPROBE_CHECK(stopper.has_best(), o.manifest.string(), ": label '", o.label,
                   "': the validation AUROC was never finite");
    stopper.restore(*model);
    const double best = stopper.best();
    result.best_val_auroc = best;
}

nlohmann::ordered_json metrics(const BaselineOptions& o, const BaselineResult& result,
                               int threads) {
    nlohmann::ordered_json j;
    j["command"] = "baseline";
    j["task"] = "cls";
    j["architecture"] = "resnet-basic";
    j["width"] = o.width;
    j["blocks"] = o.blocks;
    j["size"] = o.size;
    j["epochs"] = o.epochs;
    j["epochs_run"] = result.epochs_run;
    j["batch"] = o.batch;
    j["lr"] = o.lr;
    j["weight_decay"] = o.weight_decay;
    j["warmup_epochs"] = o.warmup_epochs;
    j["clip_norm"] = o.clip_norm;
    j["patience"] = o.patience;
    j["seed"] = o.seed;
    j["threads"] = threads;
    j["seconds"] = result.seconds;
    j["manifest"] = o.manifest.string();
    j["labels"] = nlohmann::ordered_json::array({label_json(result.test, "epoch", o.n_boot, 0.95)});
    return j;
}

}  // namespace

BaselineResult run_baseline(const BaselineOptions& o) {
    check_options(o);
    const auto start = std::chrono::steady_clock::now();
    const int threads = o.threads > 0 ? o.threads : available_threads();
    torch::set_num_threads(threads);
    training::seed_torch(o.seed);
    const Splits data = load_splits(o, threads);
    const Images& train = data.train;
    const Images& val = data.val;
    const Images& test = data.test;

    ResNet model(o.width, o.blocks);
    training::Trainer trainer({training::ParamGroup{model->parameters(), 1.0, o.weight_decay}},
                              trainer_options(o, train.size()));
    BaselineResult result;
    result.label = o.label;
    fit(o, data, model, trainer, result);
    result.test = evaluate_scores(o.label, test.ids, test.patients, test.y,
                                  predict(model, test, o.batch), o.seed, o.n_boot, 0.95);
    result.test.n_train = train.y.size();
    result.test.n_val = val.y.size();
    result.test.chosen = result.best_epoch;
    for (std::size_t e = 0; e < result.val_curve.size(); ++e) {
        result.test.curve.push_back({static_cast<double>(e + 1), result.val_curve[e], 0, true});
    }
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    auto j = metrics(o, result, threads);
    result.metrics_json = j.dump(2) + "\n";
    if (o.out) {
        result.encoder_dir = *o.out / "encoder";
        write_baseline_encoder(*model, o.width, o.blocks, o.size, o.label, result.encoder_dir);
        j["encoder_dir"] = result.encoder_dir.string();
        result.metrics_json = j.dump(2) + "\n";
        write_file_atomic(*o.out / ("predictions_" + o.label + ".csv"),
                          predictions_csv(result.test));
        write_file_atomic(*o.out / "metrics.json", result.metrics_json);
    }
    return result;
}

}  // namespace radprobe::adapt
