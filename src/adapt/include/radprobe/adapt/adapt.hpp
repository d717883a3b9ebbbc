#pragma once
/// @file adapt.hpp
/// Adaptation by training (LibTorch inside, none in this header): the supervised from-scratch
/// CNN baseline (`radprobe baseline --task cls`), trained heads on cached features (`radprobe
/// train --head attention|mlp`) and fine-tuning (`radprobe finetune`). Each reports a
/// probes::LabelResult per label. The shared training loop and the augmentation are the LibTorch
/// API of this component (training.hpp).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "radprobe/core/options.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::adapt {

using probes::CurvePoint;
using probes::LabelResult;

// ---------------------------------------------------------------------------------------------
// `radprobe baseline --task cls`: a ResNet-style CNN trained from scratch (LibTorch)
// ---------------------------------------------------------------------------------------------

struct BaselineOptions {
    std::filesystem::path manifest;
    std::string label;
    int size = 256;                       ///< images resized to size × size (grey, one channel)
    int width = 32;                       ///< channels of the first stage (ResNet-18: 64)
    std::vector<int> blocks{2, 2, 2, 2};  ///< basic blocks per stage (ResNet-18: 2,2,2,2)
    int epochs = 30;
    int batch = 32;
    double lr = 1e-3;
    double weight_decay = 0.05;
    int warmup_epochs = 2;
    double clip_norm = 1.0;
    int patience = 6;  ///< epochs without val AUROC improvement before stopping
    std::uint64_t seed = 0;
    int threads = 0;
    std::size_t n_boot = 2000;
    std::optional<std::filesystem::path> out;
    bool progress = true;
};

struct BaselineResult {
    std::string label;
    int epochs_run = 0;
    int best_epoch = 0;
    double best_val_auroc = 0.0;
    std::vector<double> val_curve;  ///< val AUROC per epoch
    LabelResult test;               ///< test metrics (chosen = best epoch)
    double seconds = 0.0;
    std::string metrics_json;
    /// With `out`: OUT/encoder, the trained network as a Hugging Face ResNetModel directory
    /// (load_encoder() reads it; the analyses run on it like on any encoder), with the
    /// classifier in radprobe_baseline_head.json. Empty otherwise.
    std::filesystem::path encoder_dir;
};

/// Trains on train, early-stops on val AUROC (keeping the best weights), evaluates on test.
BaselineResult run_baseline(const BaselineOptions& options);

// ---------------------------------------------------------------------------------------------
// `radprobe train --head attention|mlp`: trained heads on cached features (LibTorch inside)
// ---------------------------------------------------------------------------------------------

enum class HeadKind { kAttention, kMlp };
/// A learning-rate grid: "lo:hi:n" → n values log-spaced from lo to hi inclusive (n = 1 → lo,
/// lo ≤ hi); "a,b,c" or a single value → those values. Values must be finite and > 0; the
/// result is sorted ascending without duplicates. Throws UsageError naming `option` otherwise.
std::vector<double> parse_lr_grid(const std::string& text, const std::string& option = "--lr-grid");
/// "attention" | "mlp"; throws UsageError otherwise.
HeadKind parse_head_kind(const std::string& text);
const char* head_kind_name(HeadKind kind);

/// The attention-pooling head reads a store's `patches` rows (L·G·D per image; the L layers of
/// a token are concatenated, so the head sees G tokens of width L·D). The MLP head reads a
/// pooled store (cls | mean | cls+mean | roi), standardised with train statistics.
/// For each label (an independent binary problem) and each learning rate of `lr_grid`, a head
/// is initialised from `seed` and trained with AdamW, linear warm-up + cosine decay, gradient
/// clipping and early stopping on val AUROC (best state kept); the LR with the highest val
/// AUROC (tie: the smaller LR) is chosen and its head scores the test split.
struct TrainOptions {
    HeadKind head = HeadKind::kAttention;
    std::filesystem::path store;  ///< a complete store dir, or a root holding exactly one
    std::filesystem::path manifest;
    std::vector<std::string> labels;
    std::string pool;  ///< "" = patches (attention) / cls (mlp)
    std::vector<double> lr_grid{1e-5, 3.1622776601683795e-5, 1e-4, 3.1622776601683795e-4, 1e-3};
    int epochs = 30;
    int batch = 64;
    double weight_decay = 0.05;
    int warmup_epochs = 2;
    double clip_norm = 1.0;
    int patience = 6;       ///< epochs without val AUROC improvement before stopping
    bool balanced = false;  ///< class-weighted loss (pos_weight = negatives / positives)
    // Attention head.
    int dim = 0;  ///< working width (0 = token width); MLP: hidden width (0 = 256)
    int heads = 4;
    /// Attention: transformer blocks after the pooling (−1 = 0); MLP: hidden layers (−1 = 1).
    int depth = -1;
    int queries = 1;
    double dropout = 0.0;
    std::string device = "cpu";  ///< cpu | cuda | cuda:N (autocast on CUDA)
    std::uint64_t seed = 0;
    int threads = 0;
    std::size_t n_boot = 2000;
    double level = 0.95;
    std::optional<std::filesystem::path> out;  ///< predictions_<label>.csv + metrics.json
    bool progress = false;
};

struct TrainResult {
    HeadKind head = HeadKind::kAttention;
    std::filesystem::path store_dir;
    std::string pool;
    std::uint64_t seed = 0;
    std::string device;
    /// Where the heads' weights were while they trained ("cpu", "cuda:0"): on a GPU, the proof
    /// that the work ran there (metrics.json "ran_on").
    std::string ran_on;
    std::size_t tokens = 0;  ///< attention: tokens per image (G); mlp: 1
    std::size_t dim = 0;     ///< feature width per token
    /// Per label: test metrics; chosen = the LR, curve = (LR, best val AUROC, best epoch in
    /// `iterations`).
    std::vector<LabelResult> labels;
    double seconds = 0.0;
    std::string metrics_json;  ///< the JSON written to metrics.json
};

/// Runs the head per label as described at TrainOptions. Throws InputError naming the file /
/// column when the store lacks the pool, a split is empty or lacks a class, or a label is
/// missing; UsageError for bad options.
TrainResult run_train(const TrainOptions& options);

// ---------------------------------------------------------------------------------------------
// `radprobe finetune`: an unfrozen encoder (all blocks or the last k) with a linear or
// attention head, layer-wise LR decay, radiograph augmentation, resumable checkpoints
// ---------------------------------------------------------------------------------------------

/// Images are decoded, preprocessed with the model's own preprocessing (its
/// preprocessor_config.json, --size overriding the size as extract --resize does) to the
/// rescaled grey plane in [0,1], augmented (train only, see radprobe/adapt/training.hpp), then
/// normalised with the model's mean/std into its 3 input channels.
/// Encoder parameters get the LR multiplier llrd^(num_blocks + 1 − layer_id) (the head 1);
/// with unfreeze = "last-K" only parameters with layer_id > num_blocks − K (the last K blocks
/// and everything after them) train, all others stay bit-identical.
/// Checkpoints (OUT/checkpoint after every epoch, OUT/best on every val improvement; each
/// directory replaced atomically): encoder/ (HF layout: `radprobe extract --model
/// OUT/best/encoder` evaluates it like any model), head.safetensors, optimizer.pt (AdamW
/// state, LibTorch archive) and state.json (epoch, step, val curve, best, options). Epoch e
/// shuffles and augments with Rng::derive(seed, e), so a run resumed from OUT/checkpoint
/// ends with the same numbers as an uninterrupted run.
struct FinetuneOptions {
    std::filesystem::path model;  ///< HF directory
    std::filesystem::path manifest;
    std::string label;
    std::string head = "linear";   ///< linear | attention (over all patch tokens)
    std::string pool = "";         ///< linear head input: cls | mean ("" = cls when present)
    std::string unfreeze = "all";  ///< all | last-K (K blocks + what follows them) | none
    double llrd = 0.75;            ///< layer-wise LR decay factor in (0, 1]
    double lr = 1e-4;              ///< peak LR (head; encoder × llrd multipliers)
    double weight_decay = 0.05;
    int epochs = 10;
    int batch = 16;
    int warmup_epochs = 1;
    double clip_norm = 1.0;
    int patience = 5;                 ///< epochs without val AUROC improvement before stopping
    std::int64_t size = 0;            ///< model input size override (0 = the model's own)
    std::string augment = "default";  ///< see parse_augment (augment.hpp); "none" disables
    bool hflip = false;               ///< add horizontal flips (swaps anatomy; warned)
    // Attention head.
    int head_dim = 0;  ///< working width (0 = token width)
    int head_heads = 4;
    int head_depth = 0;
    std::string device = "cpu";  ///< cpu | cuda | cuda:N (float16 autocast + loss scaling)
    std::uint64_t seed = 0;
    int threads = 0;
    std::size_t n_boot = 2000;
    double level = 0.95;
    std::filesystem::path
        out;              ///< required: checkpoint/, best/, predictions_<label>.csv, metrics.json
    bool resume = false;  ///< continue from OUT/checkpoint (options must match)
    bool progress = false;
    /// Test hook: stop (as if killed) after saving this epoch's checkpoint (0 = never).
    int stop_after_epoch = 0;
};

/// One optimiser parameter group of a fine-tuning run.
struct FinetuneGroup {
    std::string name;  ///< "encoder.layer_<id>" or "head" (+ ".no_decay")
    int layer_id = 0;  ///< encoder depth (head: num_blocks + 2)
    double lr_mult = 1.0;
    std::size_t tensors = 0;
};

struct FinetuneResult {
    std::string label;
    bool completed = false;  ///< false when stopped by stop_after_epoch
    int epochs_run = 0;
    int best_epoch = 0;  ///< 1-based
    double best_val_auroc = 0.0;
    std::vector<double> val_curve;
    std::vector<double> train_loss;
    std::int64_t trainable_parameters = 0;
    std::int64_t frozen_parameters = 0;
    std::vector<FinetuneGroup> groups;  ///< encoder groups by layer_id, then the head
    LabelResult test;                   ///< chosen = best epoch; curve = (epoch, val AUROC)
    std::vector<std::string> warnings;
    double seconds = 0.0;
    std::string metrics_json;
    /// Data parallel (RANK/WORLD_SIZE or srun's SLURM_PROCID/SLURM_NTASKS, MASTER_ADDR/PORT):
    /// this process's rank of `world`. Only rank 0 writes checkpoints and results and scores
    /// the test set; the other ranks return after training (test and metrics_json empty).
    int rank = 0;
    int world = 1;
};

/// The smallest encoder layer_id that trains: "all" → 0 (everything), "last-K" → num_blocks +
/// 1 − K (K in 1 .. num_blocks), "none" → num_blocks + 2 (head only, live encoder). Throws
/// UsageError otherwise.
int first_trainable_layer(const std::string& unfreeze, int num_blocks);
/// The layer-wise LR multiplier of a parameter at `layer_id`: llrd^(num_blocks + 1 − layer_id).
double llrd_multiplier(double llrd, int num_blocks, int layer_id);

/// Fine-tunes and evaluates as described at FinetuneOptions; writes OUT/predictions_<label>.csv
/// and OUT/metrics.json (test AUROC with DeLong and bootstrap CIs of the best-on-val state).
/// Throws InputError naming the file / column / key for bad data, UsageError for bad options
/// (including a --resume whose options differ from the checkpoint's).
FinetuneResult run_finetune(const FinetuneOptions& options);

// ---------------------------------------------------------------------------------------------
// Options, declared once (the CLI flags and the experiment config's keys come from these)
// ---------------------------------------------------------------------------------------------

/// `radprobe baseline --task cls` / config adaptation `cnn_baseline`.
options::Table<BaselineOptions> baseline_options();
/// `radprobe train --head attention|mlp` / config adaptations `attention`, `mlp`.
options::Table<TrainOptions> head_options(HeadKind head);
/// `radprobe finetune` / config adaptation `finetune`.
options::Table<FinetuneOptions> finetune_options();
/// The shared checks of a device name ("cpu", "cuda", "cuda:N") and of an unfreeze rule
/// ("all", "none", "last-K"); InputError with the reason.
void check_device_name(const std::string& device);
void check_unfreeze_rule(const std::string& rule);

}  // namespace radprobe::adapt
