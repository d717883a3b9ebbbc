// Fine-tuning (`radprobe finetune`): an encoder unfrozen in whole or from block K on, a linear
// or attention-pooling head, AdamW with layer-wise LR decay, warm-up + cosine schedule, gradient
// clipping, early stopping on val AUROC, radiograph augmentation, and checkpoints after every
// epoch that make a killed run resumable with identical results.
//
// Reproducibility across a resume: everything random in epoch e comes from Rng::derive(seed, e)
// (shuffle order, augmentation) and torch's generator reseeded from it (dropout), the weights
// are saved as exact float32, the AdamW state with LibTorch's archive, and the counters in
// state.json — so epoch e computes the same thing whether or not the process restarted before it.

#include <torch/torch.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "head_modules.hpp"
#include "labelled_images.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/adapt/training.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/preprocess/preprocess.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::adapt {

using probes::evaluate_scores;
using probes::label_json;
using probes::predictions_csv;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr const char* kStateFile = "state.json";
constexpr const char* kHeadFile = "head.safetensors";
constexpr const char* kOptimizerFile = "optimizer.pt";

// ---------------------------------------------------------------------------------------------
// Data: decoded, preprocessed to the model's input size, kept as the grey plane in [0, 1].
// ---------------------------------------------------------------------------------------------

using SplitData = LabelledImages;  // planes: 1×H×W, [0, 1]

// The grey plane preprocess_grey_u8(channels = 1) returns is rescaled by the processor; this
// is the factor from [0, 1] to that plane (1 for the usual rescale_factor 1/255).
double plane_scale(const preprocess::PreprocessConfig& pc) {
    return pc.do_rescale ? pc.rescale_factor * 255.0 : 255.0;
}

SplitData load_split(const dataset::Manifest& m, const std::vector<std::int8_t>& labels,
                     dataset::Split split, const preprocess::PreprocessConfig& pc, int threads,
                     const char* name) {
    const auto rows = labelled_rows(m, labels, split, name);
    // The rescaled grey plane (1 channel) mapped back to [0, 1]: augmentation works on [0,1]
    // images, the model's normalisation comes after it.
    SplitData out;
    load_planes(out, m, rows, preprocess::InputSpec::processor_input(pc, 1), threads, 0.0,
                1.0 / plane_scale(pc),
                "fine-tuning needs one input size (a model with a centre crop, or --size with "
                "square images)");
    set_labels(out, m, labels, rows);
    return out;
}

// [0, 1] grey N×1×H×W → the model's N×C×H×W pixel_values (rescale as the processor, then the
// per-channel normalisation, grey replicated into every channel).
torch::Tensor to_pixel_values(const torch::Tensor& grey01, const preprocess::PreprocessConfig& pc,
                              std::int64_t channels) {
    auto plane = grey01 * plane_scale(pc);
    if (!pc.do_normalize) {
        return plane.expand({-1, channels, -1, -1}).contiguous();
    }
    std::vector<float> mean(static_cast<std::size_t>(channels)),
        std(static_cast<std::size_t>(channels));
    for (std::int64_t c = 0; c < channels; ++c) {
        mean[static_cast<std::size_t>(c)] = static_cast<float>(pc.image_mean[c % 3]);
        std[static_cast<std::size_t>(c)] = static_cast<float>(pc.image_std[c % 3]);
    }
    const auto m = torch::tensor(mean).view({1, channels, 1, 1}).to(grey01.device());
    const auto s = torch::tensor(std).view({1, channels, 1, 1}).to(grey01.device());
    return (plane - m) / s;
}

// ---------------------------------------------------------------------------------------------
// Model: encoder + head, features per head kind.
// ---------------------------------------------------------------------------------------------

enum class Pool { kCls, kMean };

struct Model {
    std::unique_ptr<encoders::Encoder> encoder;
    std::shared_ptr<HeadModule> head;
    bool attention = false;
    Pool pool = Pool::kCls;
    int first_trainable = 0;

    torch::Tensor logits(const torch::Tensor& pixel_values) {
        const auto out = encoder->forward_train(pixel_values);
        torch::Tensor features;
        if (attention) {
            features = out.tokens.patches.flatten(1, 2);  // N×G×D
        } else if (pool == Pool::kCls) {
            features = out.tokens.cls;
        } else {
            features = out.tokens.patches.mean({1, 2});
        }
        return head->forward(features).select(1, 0).to(torch::kFloat);
    }

    void set_train(bool on) {
        auto& m = encoder->module();
        if (!on) {
            m.eval();
            head->eval();
            return;
        }
        m.train();
        head->train();
        // Fully frozen submodules stay in eval mode (BatchNorm statistics must not move).
        for (const auto& sub : m.modules(false)) {
            const auto params = sub->parameters(true);
            if (!params.empty() &&
                std::none_of(params.begin(), params.end(),
                             [](const torch::Tensor& p) { return p.requires_grad(); })) {
                sub->eval();
            }
        }
    }
};

bool no_weight_decay(const std::string& name, const torch::Tensor& p) {
    return p.dim() < 2 || name.find("token") != std::string::npos ||
           name.find("position_embedding") != std::string::npos;
}

struct Groups {
    std::vector<training::ParamGroup> groups;
    std::vector<FinetuneGroup> info;
    std::vector<torch::Tensor> all;
    std::int64_t trainable = 0, frozen = 0;
};

// Freezes encoder parameters below first_trainable and groups the rest by (layer_id, decay).
Groups build_groups(Model& model, double llrd, double weight_decay) {
    Groups g;
    const int nb = model.encoder->num_blocks();
    std::map<std::pair<int, int>, std::size_t> index;  // (layer_id, no_decay) → group
    auto add = [&](const std::string& name, torch::Tensor& p, int layer, double mult,
                   const std::string& group_name) {
        const int nd = no_weight_decay(name, p) ? 1 : 0;
        const auto key = std::make_pair(layer, nd);
        auto it = index.find(key);
        if (it == index.end()) {
            it = index.emplace(key, g.groups.size()).first;
            g.groups.push_back({{}, mult, nd ? 0.0 : weight_decay});
            g.info.push_back({group_name + (nd ? ".no_decay" : ""), layer, mult, 0});
        }
        g.groups[it->second].params.push_back(p);
        g.info[it->second].tensors += 1;
        g.all.push_back(p);
        g.trainable += p.numel();
    };
    for (auto& item : model.encoder->module().named_parameters(true)) {
        auto& p = item.value();
        const int layer = model.encoder->layer_id(item.key());
        if (layer < model.first_trainable) {
            p.set_requires_grad(false);
            g.frozen += p.numel();
            continue;
        }
        p.set_requires_grad(true);
        add(item.key(), p, layer, llrd_multiplier(llrd, nb, layer),
            "encoder.layer_" + std::to_string(layer));
    }
    for (auto& item : model.head->named_parameters(true)) {
        add(item.key(), item.value(), nb + 2, 1.0, "head");
    }
    return g;
}

std::vector<double> predict(Model& model, const SplitData& data,
                            const preprocess::PreprocessConfig& pc, int batch,
                            const torch::Device& device) {
    torch::NoGradGuard guard;
    model.set_train(false);
    std::vector<double> scores;
    const long n = data.size();
    for (long b = 0; b < n; b += batch) {
        const auto x = data.range(b, std::min<long>(n, b + batch)).to(device);
        training::AutocastGuard autocast(device);
        const auto logits = model.logits(to_pixel_values(x, pc, model.encoder->input_channels()))
                                .cpu()
                                .contiguous();
        scores.insert(scores.end(), logits.data_ptr<float>(),
                      logits.data_ptr<float>() + logits.numel());
    }
    return scores;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

void save_head(const HeadModule& head, const fs::path& path) {
    std::vector<encoders::StTensorData> tensors;
    auto add = [&](const std::string& name, const torch::Tensor& value) {
        const auto v = value.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        encoders::StTensorData t;
        t.name = name;
        t.dtype = encoders::StDType::kF32;
        t.shape.assign(v.sizes().begin(), v.sizes().end());
        t.bytes.resize(static_cast<std::size_t>(v.numel()) * 4);
        std::memcpy(t.bytes.data(), v.data_ptr<float>(), t.bytes.size());
        tensors.push_back(std::move(t));
    };
    for (const auto& item : head.named_parameters(true)) {
        add(item.key(), item.value());
    }
    for (const auto& item : head.named_buffers(true)) {
        add(item.key(), item.value());
    }
    write_file_atomic(path, encoders::serialize_safetensors(tensors, {{"format", "pt"}}));
}

// Copies a saved state into a module strictly (every key present, shapes equal).
void load_state_into(torch::nn::Module& module, const std::map<std::string, at::Tensor>& state,
                     const fs::path& source) {
    torch::NoGradGuard guard;
    auto copy = [&](const std::string& name, torch::Tensor& dst) {
        const auto it = state.find(name);
        RADPROBE_CHECK(it != state.end(), source.string(), ": tensor '", name, "' missing");
        RADPROBE_CHECK(it->second.sizes() == dst.sizes(), source.string(), ": tensor '", name,
                       "' has shape ", it->second.sizes(), ", expected ", dst.sizes());
        dst.copy_(it->second.to(dst.device(), dst.scalar_type()));
    };
    for (auto& item : module.named_parameters(true)) {
        copy(item.key(), item.value());
    }
    for (auto& item : module.named_buffers(true)) {
        copy(item.key(), item.value());
    }
}

// Writes a checkpoint directory under a temporary name, then swaps it in: `final` is always
// either the previous complete checkpoint or the new one (or, between two renames, absent with
// the previous one at final.old, which recover_dir() puts back).
void swap_in_dir(const fs::path& tmp, const fs::path& final) {
    const fs::path old = final.string() + ".old";
    fs::remove_all(old);
    if (fs::exists(final)) {
        fs::rename(final, old);
    }
    fs::rename(tmp, final);
    fs::remove_all(old);
}

void recover_dir(const fs::path& final) {
    const fs::path old = final.string() + ".old";
    if (!fs::exists(final) && fs::exists(old)) {
        fs::rename(old, final);
    }
}

struct RunState {
    int epochs_done = 0;
    long step = 0;
    bool finished = false;
    double best = -1.0;
    int best_epoch = 0;
    int since_best = 0;
    std::vector<double> val_curve, train_loss;
    double loss_scale = 65536.0;
    int good_steps = 0;
};

json state_json(const RunState& s, const json& fingerprint) {
    json j;
    j["epochs_done"] = s.epochs_done;
    j["step"] = s.step;
    j["finished"] = s.finished;
    j["best_val_auroc"] = s.best;
    j["best_epoch"] = s.best_epoch;
    j["since_best"] = s.since_best;
    j["val_curve"] = s.val_curve;
    j["train_loss"] = s.train_loss;
    j["loss_scale"] = s.loss_scale;
    j["good_steps"] = s.good_steps;
    j["options"] = fingerprint;
    return j;
}

void save_checkpoint(const fs::path& dir, Model& model, torch::optim::AdamW& opt,
                     const RunState& state, const json& fingerprint) {
    const fs::path tmp = dir.string() + ".tmp-" + std::to_string(::getpid());
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    model.encoder->save_pretrained(tmp / "encoder");
    save_head(*model.head, tmp / kHeadFile);
    {
        torch::serialize::OutputArchive archive;
        opt.save(archive);
        archive.save_to((tmp / kOptimizerFile).string());
    }
    write_file_atomic(tmp / kStateFile, state_json(state, fingerprint).dump(2) + "\n");
    swap_in_dir(tmp, dir);
}

json fingerprint_of(const FinetuneOptions& o, const AugmentOptions& aug) {
    json j;
    j["model"] = fs::absolute(o.model).lexically_normal().string();
    j["manifest"] = fs::absolute(o.manifest).lexically_normal().string();
    j["label"] = o.label;
    j["head"] = o.head;
    j["pool"] = o.pool;
    j["unfreeze"] = o.unfreeze;
    j["llrd"] = o.llrd;
    j["lr"] = o.lr;
    j["weight_decay"] = o.weight_decay;
    j["epochs"] = o.epochs;
    j["batch"] = o.batch;
    j["warmup_epochs"] = o.warmup_epochs;
    j["clip_norm"] = o.clip_norm;
    j["patience"] = o.patience;
    j["size"] = o.size;
    j["augment"] = aug.describe();
    j["head_dim"] = o.head_dim;
    j["head_heads"] = o.head_heads;
    j["head_depth"] = o.head_depth;
    j["seed"] = o.seed;
    return j;
}

void validate(const FinetuneOptions& o) {
    RADPROBE_USAGE_CHECK(!o.out.empty(), "finetune: --out is required (checkpoints go there)");
    RADPROBE_USAGE_CHECK(!o.label.empty(), "finetune: --label is required");
    RADPROBE_USAGE_CHECK(o.head == "linear" || o.head == "attention", "--head '", o.head,
                         "': expected linear or attention");
    RADPROBE_USAGE_CHECK(o.pool.empty() || o.pool == "cls" || o.pool == "mean", "--pool '", o.pool,
                         "': expected cls or mean");
    RADPROBE_USAGE_CHECK(o.llrd > 0 && o.llrd <= 1, "--llrd ", o.llrd, ": expected (0, 1]");
    RADPROBE_USAGE_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr ", o.lr, ": must be > 0");
    RADPROBE_USAGE_CHECK(o.weight_decay >= 0, "--weight-decay ", o.weight_decay, ": must be >= 0");
    RADPROBE_USAGE_CHECK(o.epochs >= 1 && o.epochs <= 10000, "--epochs ", o.epochs,
                         ": expected 1 .. 10000");
    RADPROBE_USAGE_CHECK(o.batch >= 1 && o.batch <= 4096, "--batch ", o.batch,
                         ": expected 1 .. 4096");
    RADPROBE_USAGE_CHECK(o.warmup_epochs >= 0 && o.warmup_epochs <= o.epochs, "--warmup ",
                         o.warmup_epochs, ": expected 0 .. epochs");
    RADPROBE_USAGE_CHECK(o.clip_norm >= 0, "--clip-norm ", o.clip_norm, ": must be >= 0 (0 = off)");
    RADPROBE_USAGE_CHECK(o.patience >= 1, "--patience ", o.patience, ": must be >= 1");
    RADPROBE_USAGE_CHECK(o.size == 0 || (o.size >= 8 && o.size <= 4096), "--size ", o.size,
                         ": expected 8 .. 4096 (0 = the model's own)");
    RADPROBE_USAGE_CHECK(o.head_heads >= 1 && o.head_depth >= 0 && o.head_dim >= 0,
                         "finetune: --head-heads >= 1, --head-depth >= 0, --head-dim >= 0");
    RADPROBE_USAGE_CHECK(o.n_boot >= 1, "--n-boot must be >= 1");
}

}  // namespace

int first_trainable_layer(const std::string& unfreeze, int num_blocks) {
    if (unfreeze == "all") {
        return 0;
    }
    if (unfreeze == "none") {
        return num_blocks + 2;
    }
    int k = -1;
    if (unfreeze.rfind("last-", 0) == 0 && unfreeze.size() > 5 && unfreeze.size() <= 9 &&
        std::all_of(unfreeze.begin() + 5, unfreeze.end(),
                    [](char c) { return c >= '0' && c <= '9'; })) {
        k = std::stoi(unfreeze.substr(5));
    }
    RADPROBE_USAGE_CHECK(k >= 1 && k <= num_blocks, "--unfreeze '", unfreeze,
                         "': expected all, none or last-K with K in 1 .. ", num_blocks,
                         " (the model's blocks)");
    return num_blocks + 1 - k;
}

double llrd_multiplier(double llrd, int num_blocks, int layer_id) {
    return std::pow(llrd, static_cast<double>(num_blocks + 1 - layer_id));
}

namespace {

AugmentOptions finetune_augment(const FinetuneOptions& o) {
    AugmentOptions aug = parse_augment(o.augment);
    if (o.hflip) {
        aug.hflip = true;
    }
    aug.validate();
    return aug;
}

// The three splits at the model's input size, and the preprocessing that made them.
struct Data {
    preprocess::PreprocessConfig pc;
    SplitData train, val, test;
};

Data load_data(const FinetuneOptions& o, int threads) {
    const auto manifest = load_label_manifest(o.manifest, o.label);
    const auto labels = manifest.label_vector(o.label);
    Data d;
    d.pc = encoders::read_preprocess_config(o.model);
    if (o.size > 0) {
        d.pc.override_size(o.size);
    }
    d.train = load_split(manifest, labels, dataset::Split::kTrain, d.pc, threads, "train");
    d.val = load_split(manifest, labels, dataset::Split::kVal, d.pc, threads, "val");
    d.test = load_split(manifest, labels, dataset::Split::kTest, d.pc, threads, "test");
    const auto train_counts = eval::count_classes(d.train.y);
    RADPROBE_CHECK(train_counts.positives > 0 && train_counts.negatives > 0, o.manifest.string(),
                   ": the train split needs both classes of '", o.label, "'");
    const auto val_counts = eval::count_classes(d.val.y);
    RADPROBE_CHECK(val_counts.positives > 0 && val_counts.negatives > 0, o.manifest.string(),
                   ": the val split needs both classes of '", o.label, "' for early stopping");
    return d;
}

RunState read_state(const fs::path& ckpt, const json& fingerprint) {
    const auto j = json::parse(read_file_text(ckpt / kStateFile), nullptr, false);
    RADPROBE_CHECK(!j.is_discarded() && j.contains("options"), (ckpt / kStateFile).string(),
                   ": not a fine-tuning state file");
    for (const auto& [key, value] : fingerprint.items()) {
        RADPROBE_USAGE_CHECK(j["options"].contains(key) && j["options"][key] == value,
                             "--resume: option '", key, "' is ", value.dump(),
                             " but the checkpoint in ", ckpt.string(), " was made with ",
                             j["options"].value(key, json()).dump());
    }
    RunState state;
    state.epochs_done = j.at("epochs_done").get<int>();
    state.step = j.at("step").get<long>();
    state.finished = j.at("finished").get<bool>();
    state.best = j.at("best_val_auroc").get<double>();
    state.best_epoch = j.at("best_epoch").get<int>();
    state.since_best = j.at("since_best").get<int>();
    state.val_curve = j.at("val_curve").get<std::vector<double>>();
    state.train_loss = j.at("train_loss").get<std::vector<double>>();
    state.loss_scale = j.at("loss_scale").get<double>();
    state.good_steps = j.at("good_steps").get<int>();
    return state;
}

// Checkpoint directories: puts back one a kill left mid-swap, then reads the state to resume
// (--resume) or refuses to start over an existing checkpoint. Empty: a fresh run.
std::optional<RunState> open_checkpoints(const FinetuneOptions& o, const json& fingerprint) {
    const fs::path ckpt = o.out / "checkpoint";
    const fs::path best_dir = o.out / "best";
    fs::create_directories(o.out);
    recover_dir(ckpt);
    recover_dir(best_dir);
    if (o.resume) {
        RADPROBE_CHECK(fs::exists(ckpt / kStateFile), (ckpt / kStateFile).string(),
                       ": no checkpoint to resume from (run without --resume first)");
        return read_state(ckpt, fingerprint);
    }
    RADPROBE_USAGE_CHECK(!fs::exists(ckpt / kStateFile), ckpt.string(),
                         ": a checkpoint exists; pass --resume to continue it or choose "
                         "another --out");
    return std::nullopt;
}

// Model. The head is initialised from the seed (its weights are overwritten on resume).
Model build_model(const FinetuneOptions& o, bool resuming, const torch::Device& device) {
    const fs::path ckpt = o.out / "checkpoint";
    training::seed_torch(o.seed);
    Model model;
    encoders::LoadOptions load;
    load.keep_half = false;  // the optimiser updates float32 weights, whatever the checkpoint
    model.encoder = encoders::load_encoder(resuming ? ckpt / "encoder" : o.model, load);
    const int nb = model.encoder->num_blocks();
    model.first_trainable = first_trainable_layer(o.unfreeze, nb);
    model.attention = o.head == "attention";
    if (!model.attention) {
        const std::string pool =
            o.pool.empty() ? (model.encoder->has_cls_token() ? "cls" : "mean") : o.pool;
        RADPROBE_USAGE_CHECK(
            pool != "cls" || model.encoder->has_cls_token(), "--pool cls: ", o.model.string(), " (",
            model.encoder->config().model_type, ") has no CLS token; use --pool mean");
        model.pool = pool == "cls" ? Pool::kCls : Pool::kMean;
    }
    const std::int64_t dim = model.encoder->config().hidden_size;
    if (model.attention) {
        AttentionHeadConfig hc;
        hc.in_dim = dim;
        hc.dim = o.head_dim;
        hc.heads = o.head_heads;
        hc.depth = o.head_depth;
        model.head = std::make_shared<AttentionPoolHead>(hc);
    } else {
        MlpHeadConfig hc;
        hc.in_dim = dim;
        hc.depth = 0;
        hc.dropout = 0.0;
        model.head = std::make_shared<MlpHead>(hc);
    }
    if (resuming) {
        load_state_into(*model.head, encoders::load_safetensors_state(ckpt / kHeadFile),
                        ckpt / kHeadFile);
    }
    model.encoder->to(device);
    model.head->to(device);
    return model;
}

training::TrainerOptions trainer_options(const FinetuneOptions& o, long n) {
    const long steps_per_epoch = (n + o.batch - 1) / o.batch;
    training::TrainerOptions to;
    to.lr = o.lr;
    to.weight_decay = o.weight_decay;
    to.clip_norm = o.clip_norm;  // 0 = off
    to.schedule.total_steps = std::max(1L, steps_per_epoch * o.epochs);
    to.schedule.warmup_steps = steps_per_epoch * o.warmup_epochs;
    return to;
}

// float16 autocast: the gradients of the scaled loss divided back; false when one overflowed.
bool unscale_gradients(std::vector<torch::Tensor>& params, double loss_scale) {
    bool finite = true;
    torch::NoGradGuard guard;
    for (auto& p : params) {
        if (p.grad().defined()) {
            p.grad().div_(loss_scale);
            finite = finite && torch::isfinite(p.grad()).all().item<bool>();
        }
    }
    return finite;
}

// The epochs from state.epochs_done on, each ending in both checkpoints (see the top of the
// file for what makes a resumed epoch compute the same thing).
struct EpochLoop {
    const FinetuneOptions& o;
    const Data& data;
    const AugmentOptions& aug;
    const json& fingerprint;
    const torch::Device& device;
    Model& model;
    Groups& groups;
    training::Trainer& trainer;
    RunState& state;
    torch::Tensor y_train;
    training::DataParallel* dp = nullptr;  // several ranks: each computes its part of a batch

    // This rank's rows [lo, hi) of a global batch of n (all of them for one process).
    std::pair<long, long> local_part(long n) const {
        return dp == nullptr ? std::pair<long, long>{0, n}
                             : std::pair<long, long>{n * dp->rank() / dp->world(),
                                                     n * (dp->rank() + 1) / dp->world()};
    }

    // The loss of this rank's part of the batch, weighted so that the ranks' gradients sum to
    // those of the global batch's mean loss; gradients left in the parameters (summed across
    // ranks). Returns the global batch's mean loss (scaled by loss_scale when `scaled`).
    torch::Tensor batch_loss(const torch::Tensor& x01, const torch::Tensor& y, bool scaled) {
        const long n = x01.size(0);
        const auto [lo, hi] = local_part(n);
        torch::Tensor loss = torch::zeros({}, torch::TensorOptions(device));
        if (hi > lo) {
            const auto px = to_pixel_values(x01.slice(0, lo, hi).to(device), data.pc,
                                            model.encoder->input_channels());
            training::AutocastGuard autocast(device);
            loss = torch::binary_cross_entropy_with_logits(model.logits(px),
                                                           y.slice(0, lo, hi).to(device)) *
                   (static_cast<double>(hi - lo) / static_cast<double>(n));
        }
        trainer.zero_grad();
        if (hi > lo) {
            (scaled ? loss * state.loss_scale : loss).backward();
        }
        if (dp != nullptr) {
            dp->all_reduce_gradients(groups.all);
            std::vector<torch::Tensor> total{loss.detach().to(torch::kFloat32).reshape({1})};
            dp->all_reduce_sum(total);
            return total[0][0];
        }
        return loss.detach();
    }

    // One shuffled pass over train; the mean loss of the steps taken.
    double train_epoch(int epoch) {
        const long n = data.train.size();
        const bool scaled = device.is_cuda();  // float16 autocast needs loss scaling
        Rng rng = Rng::derive(o.seed, static_cast<std::uint64_t>(epoch));
        training::seed_torch(rng.next_u64());
        std::vector<long> order(static_cast<std::size_t>(n));
        for (long i = 0; i < n; ++i) {
            order[static_cast<std::size_t>(i)] = i;
        }
        for (std::size_t i = order.size(); i > 1; --i) {
            std::swap(order[i - 1], order[rng.below(i)]);
        }
        model.set_train(true);
        double loss_sum = 0.0;
        long batches = 0;
        for (long b = 0; b < n; b += o.batch) {
            const long e = std::min(n, b + o.batch);
            const std::vector<long> rows(order.begin() + b, order.begin() + e);
            const auto idx = torch::tensor(rows);
            // Every rank augments the whole batch (the same draws as one process), then
            // computes its part.
            const auto x01 = augment_batch(data.train.batch(rows), {}, aug, rng).images;
            const torch::Tensor loss = batch_loss(x01, y_train.index_select(0, idx), scaled);
            const bool finite = !scaled || unscale_gradients(groups.all, state.loss_scale);
            if (!finite) {
                state.loss_scale /= 2.0;  // overflow: skip the step, as torch.cuda.amp does
                state.good_steps = 0;
                continue;
            }
            if (scaled && ++state.good_steps >= 2000) {
                state.loss_scale *= 2.0;
                state.good_steps = 0;
            }
            trainer.step();  // schedule LR per group, clip, AdamW step
            state.step = trainer.steps_taken();
            loss_sum += loss.item<double>();
            ++batches;
        }
        return batches > 0 ? loss_sum / static_cast<double>(batches) : 0.0;
    }

    // Val AUROC, the early-stopping counters and the checkpoints after epoch `epoch`.
    void end_epoch(int epoch, double mean_loss) {
        const double auc =
            eval::auroc(data.val.y, predict(model, data.val, data.pc, o.batch, device));
        state.val_curve.push_back(auc);
        state.train_loss.push_back(mean_loss);
        state.epochs_done = epoch + 1;
        const bool improved = std::isfinite(auc) && auc > state.best;
        if (improved) {
            state.best = auc;
            state.best_epoch = epoch + 1;
            state.since_best = 0;
        } else {
            ++state.since_best;
        }
        state.finished = state.since_best >= o.patience || state.epochs_done >= o.epochs;
        if (dp != nullptr && dp->rank() != 0) {  // the ranks hold the same state: rank 0 saves it
            dp->barrier();
            return;
        }
        if (improved) {
            save_checkpoint(o.out / "best", model, trainer.optimizer(), state, fingerprint);
        }
        save_checkpoint(o.out / "checkpoint", model, trainer.optimizer(), state, fingerprint);
        if (dp != nullptr) {
            dp->barrier();
        }
    }

    // False when --stop-after-epoch ended the run before it finished.
    bool run() {
        std::unique_ptr<Progress> progress;
        if (o.progress) {
            progress = std::make_unique<Progress>("finetune", static_cast<std::size_t>(o.epochs),
                                                  "epochs");
            progress->advance(static_cast<std::size_t>(state.epochs_done));
        }
        while (!state.finished && state.epochs_done < o.epochs) {
            const int epoch = state.epochs_done;  // 0-based
            const double mean_loss = train_epoch(epoch);
            end_epoch(epoch, mean_loss);
            if (progress) {
                progress->advance();
            }
            if (o.stop_after_epoch > 0 && state.epochs_done == o.stop_after_epoch &&
                !state.finished) {
                return false;
            }
        }
        if (progress) {
            progress->finish();
        }
        return true;
    }
};

// The best-on-val state, read back from OUT/best (identical whether or not we resumed), scored
// on test.
void score_best(const FinetuneOptions& o, const Data& data, const RunState& state,
                const torch::Device& device, Model& model, FinetuneResult& result) {
    RADPROBE_CHECK(state.best_epoch > 0, o.manifest.string(),
                   ": the validation AUROC was never finite; cannot choose a checkpoint");
    const fs::path best_dir = o.out / "best";
    load_state_into(model.encoder->module(), encoders::load_safetensors_state(best_dir / "encoder"),
                    best_dir / "encoder");
    load_state_into(*model.head, encoders::load_safetensors_state(best_dir / kHeadFile),
                    best_dir / kHeadFile);
    result.completed = true;
    result.epochs_run = state.epochs_done;
    result.best_epoch = state.best_epoch;
    result.best_val_auroc = state.best;
    result.val_curve = state.val_curve;
    result.train_loss = state.train_loss;
    result.test = evaluate_scores(o.label, data.test.ids, data.test.patients, data.test.y,
                                  predict(model, data.test, data.pc, o.batch, device), o.seed,
                                  o.n_boot, o.level);
    result.test.n_train = data.train.y.size();
    result.test.n_val = data.val.y.size();
    result.test.chosen = state.best_epoch;
    for (std::size_t e = 0; e < state.val_curve.size(); ++e) {
        result.test.curve.push_back({static_cast<double>(e + 1), state.val_curve[e], 0, true});
    }
}

std::string metrics_json(const FinetuneOptions& o, const Model& model, const Data& data,
                         const AugmentOptions& aug, const torch::Device& device, int threads,
                         bool resuming, const FinetuneResult& result) {
    json j;
    j["command"] = "finetune";
    j["model"] = o.model.string();
    j["model_type"] = model.encoder->config().model_type;
    j["head"] = o.head;
    if (!model.attention) {
        j["pool"] = model.pool == Pool::kCls ? "cls" : "mean";
    }
    j["unfreeze"] = o.unfreeze;
    j["first_trainable_layer"] = model.first_trainable;
    j["num_blocks"] = model.encoder->num_blocks();
    j["llrd"] = o.llrd;
    j["lr"] = o.lr;
    j["weight_decay"] = o.weight_decay;
    j["epochs"] = o.epochs;
    j["epochs_run"] = result.epochs_run;
    j["best_epoch"] = result.best_epoch;
    j["best_val_auroc"] = result.best_val_auroc;
    j["train_loss"] = result.train_loss;
    j["batch"] = o.batch;
    j["warmup_epochs"] = o.warmup_epochs;
    j["clip_norm"] = o.clip_norm;
    j["patience"] = o.patience;
    j["input_size"] = {data.train.height, data.train.width};
    j["augment"] = aug.describe();
    j["device"] = o.device;
    j["ran_on"] = model.encoder->device().str();  // where the weights were, not what was asked
    j["mixed_precision"] = device.is_cuda() ? "float16 autocast + dynamic loss scaling" : "off";
    j["trainable_parameters"] = result.trainable_parameters;
    j["frozen_parameters"] = result.frozen_parameters;
    json gj = json::array();
    for (const auto& g : result.groups) {
        gj.push_back({{"name", g.name},
                      {"layer_id", g.layer_id},
                      {"lr_mult", g.lr_mult},
                      {"tensors", g.tensors}});
    }
    j["param_groups"] = gj;
    j["seed"] = o.seed;
    j["threads"] = threads;
    j["data_parallel_ranks"] = result.world;  // processes that shared each global batch
    j["resumed"] = resuming;
    j["seconds"] = result.seconds;
    j["manifest"] = o.manifest.string();
    j["checkpoint"] = (o.out / "best" / "encoder").string();
    j["warnings"] = result.warnings;
    j["labels"] = json::array({label_json(result.test, "epoch", o.n_boot, o.level)});
    return j.dump(2) + "\n";
}

}  // namespace

FinetuneResult run_finetune(const FinetuneOptions& o) {
    validate(o);
    const auto start = std::chrono::steady_clock::now();
    const AugmentOptions aug = finetune_augment(o);
    const torch::Device device = training::parse_device(o.device);
    const int threads = encoders::set_threads(o.threads);
    const json fingerprint = fingerprint_of(o, aug);

    FinetuneResult result;
    result.label = o.label;
    if (aug.hflip) {
        result.warnings.push_back(
            "--hflip: horizontal flips swap left and right anatomy (the heart moves to the "
            "other side); use only if the label does not depend on laterality");
    }

    const Data data = load_data(o, threads);
    const std::optional<RunState> resumed = open_checkpoints(o, fingerprint);
    const bool resuming = resumed.has_value();
    RunState state = resumed.value_or(RunState{});
    Model model = build_model(o, resuming, device);
    Groups groups = build_groups(model, o.llrd, o.weight_decay);
    result.groups = groups.info;
    result.trainable_parameters = groups.trainable;
    result.frozen_parameters = groups.frozen;

    // The shared Trainer: AdamW over the layer-wise groups, warm-up + cosine schedule, global
    // gradient clipping. On resume its AdamW state and step counter come from the checkpoint.
    training::Trainer trainer(groups.groups, trainer_options(o, data.train.size()));
    if (resuming) {
        torch::serialize::InputArchive archive;
        archive.load_from((o.out / "checkpoint" / kOptimizerFile).string(), device);
        trainer.optimizer().load(archive);
        trainer.set_steps_taken(state.step);
    }
    const auto y_train =
        torch::tensor(std::vector<float>(data.train.y.begin(), data.train.y.end()));
    const auto dp = training::DataParallel::from_environment(device);
    if (dp != nullptr) {
        dp->broadcast(groups.all);  // the same initial weights (they are seeded alike anyway)
        result.rank = dp->rank();
        result.world = dp->world();
    }
    EpochLoop loop{o,      data,    aug,   fingerprint, device,  model,
                   groups, trainer, state, y_train,     dp.get()};
    if (!loop.run()) {
        result.epochs_run = state.epochs_done;
        result.val_curve = state.val_curve;
        result.train_loss = state.train_loss;
        result.completed = false;
        return result;
    }
    if (result.rank != 0) {
        result.completed = true;
        result.epochs_run = state.epochs_done;
        result.best_epoch = state.best_epoch;
        return result;  // rank 0 scores the best state and writes the results
    }
    score_best(o, data, state, device, model, result);
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.metrics_json = metrics_json(o, model, data, aug, device, threads, resuming, result);
    write_file_atomic(o.out / ("predictions_" + o.label + ".csv"), predictions_csv(result.test));
    write_file_atomic(o.out / "metrics.json", result.metrics_json);
    return result;
}

}  // namespace radprobe::adapt
