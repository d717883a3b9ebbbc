#pragma once
/// @file training.hpp
/// The LibTorch API of adapt: the training loop every trained model shares (attention / MLP
/// heads, fine-tuning, the CNN and U-Net baselines, the segmentation decoders) and radiograph
/// augmentation. adapt.hpp is the LibTorch-free API (options, results, run functions).
///
/// The training loop (namespace training):
///   - parse_device: "cpu" | "cuda" | "cuda:N", with a clear error when CUDA is unavailable;
///   - seed_torch: deterministic torch RNG seeding from our seed;
///   - CosineSchedule: linear warm-up then cosine decay, over optimiser steps;
///   - Trainer: AdamW over parameter groups with an LR multiplier each (layer-wise decay),
///     stepping the schedule, clipping the global gradient norm;
///   - EarlyStopping: patience on a validation metric, keeping a copy of the best state;
///   - AutocastGuard: mixed precision (float16 autocast) on CUDA only, a no-op on CPU.
///
/// Augmentation: random resized crop,
/// small rotation and optional horizontal flip applied with ONE geometry to an image batch and
/// its masks; brightness, contrast and gamma jitter applied to the images only.
///
/// Layouts: images N×C×H×W float in [0,1] (1 = white; before model normalisation), masks
/// N×K×Hm×Wm float (0/1) or undefined. The geometry is expressed in normalised coordinates
/// ([-1,1] across the image), so masks may have another resolution as long as their aspect
/// ratio is the image's. Works on any device: the sampling grid is built on the images' device.
///
/// Determinism: all parameters are drawn from the radprobe::Rng passed in, per sample, in a
/// fixed order (crop area, aspect, centre x, centre y, angle, flip, brightness, contrast,
/// gamma), whatever the magnitudes — the same Rng state gives the same batch.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "radprobe/core/random.hpp"
#include "radprobe/encoders/encoder.hpp"

namespace radprobe::adapt::training {

/// "cpu", "cuda" or "cuda:N" (encoders::parse_device: one parser wherever a model runs).
using encoders::parse_device;

/// torch::manual_seed (CPU and, when available, every CUDA device) from `seed`.
void seed_torch(std::uint64_t seed);

/// Linear warm-up from peak/warmup_steps to the peak over `warmup_steps`, then cosine decay from
/// the peak to min_factor·peak at `total_steps`. factor(step) is the multiplier of the peak LR
/// for the 0-based optimiser step; steps ≥ total_steps stay at min_factor.
struct CosineSchedule {
    long total_steps = 1;
    long warmup_steps = 0;
    double min_factor = 0.0;

    double factor(long step) const;
};

/// One parameter group: its tensors, its LR multiplier (layer-wise decay: decay^(depth − layer))
/// and its weight decay (negative = the Trainer's default).
struct ParamGroup {
    std::vector<torch::Tensor> params;
    double lr_mult = 1.0;
    double weight_decay = -1.0;
};

/// Splits a module's parameters into "decay" (matrices / kernels, dim ≥ 2) and "no decay"
/// (biases, norms, 1-d tensors, learned tokens named *token* / *query*) groups, as is customary
/// for AdamW; both with lr_mult 1. Groups with no parameters are dropped.
std::vector<ParamGroup> default_param_groups(torch::nn::Module& module, double weight_decay);

struct TrainerOptions {
    double lr = 1e-3;            ///< peak learning rate (before the group multipliers)
    double weight_decay = 0.05;  ///< default for groups with weight_decay < 0
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    double clip_norm = 1.0;  ///< global gradient-norm clipping; <= 0 disables it
    CosineSchedule schedule;
};

/// AdamW + schedule + clipping. Per step: zero_grad(), backward by the caller, step().
class Trainer {
public:
    Trainer(std::vector<ParamGroup> groups, const TrainerOptions& options);

    void zero_grad();
    /// Sets every group's LR to lr · lr_mult · schedule.factor(step), clips the global gradient
    /// norm, steps AdamW and advances the step counter. Returns the pre-clipping gradient norm.
    double step();
    long steps_taken() const { return step_; }
    /// Resuming a run: the step counter saved with the optimiser state (optimizer().save/load
    /// keeps AdamW's moments; the schedule position is this counter).
    void set_steps_taken(long steps);
    /// The LR the next step() will use for group `g`.
    double current_lr(std::size_t g = 0) const;
    torch::optim::AdamW& optimizer() { return *optimizer_; }

private:
    TrainerOptions options_;
    std::vector<double> mult_;
    std::vector<torch::Tensor> all_params_;
    std::unique_ptr<torch::optim::AdamW> optimizer_;
    long step_ = 0;
};

/// Data parallelism across processes (ranks) with LibTorch's c10d: Gloo for CPU tensors, NCCL
/// for CUDA ones where LibTorch was built with it. Every rank holds the whole model; each
/// computes its part of every global batch, and the gradients are summed across ranks before the
/// optimiser step, so all ranks take the same step as one process on the global batch.
class DataParallel {
public:
    /// Rendezvous of `world` processes at host:port (rank 0 serves it).
    DataParallel(int rank, int world, const std::string& host, int port,
                 const torch::Device& device);
    ~DataParallel();
    DataParallel(const DataParallel&) = delete;
    DataParallel& operator=(const DataParallel&) = delete;
    /// From the environment: RANK / WORLD_SIZE (torchrun-style), else SLURM_PROCID /
    /// SLURM_NTASKS (srun), with MASTER_ADDR / MASTER_PORT; nullptr for one process.
    /// UsageError naming the variables when they are inconsistent or MASTER_* are missing.
    static std::unique_ptr<DataParallel> from_environment(const torch::Device& device);

    int rank() const { return rank_; }
    int world() const { return world_; }
    /// Sums each tensor across ranks, in place.
    void all_reduce_sum(std::vector<torch::Tensor>& tensors);
    /// Sums the gradients of the trainable `params` across ranks (one flat collective); a
    /// parameter without a gradient contributes zeros.
    void all_reduce_gradients(const std::vector<torch::Tensor>& params);
    /// Rank 0's values into every rank's tensors, in place.
    void broadcast(const std::vector<torch::Tensor>& tensors);
    void barrier();

private:
    int rank_ = 0;
    int world_ = 1;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Global L2 norm of the gradients of `params` clipped to `max_norm` (in place, like
/// torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm);

/// Early stopping on a validation metric (higher is better unless `maximize` is false).
/// update() after each evaluation: an improvement (by more than min_delta; NaN never improves)
/// snapshots every parameter and buffer of the watched modules; should_stop() once `patience`
/// evaluations in a row brought none. restore() copies the best snapshot back.
class EarlyStopping {
public:
    explicit EarlyStopping(int patience, bool maximize = true, double min_delta = 0.0);

    /// Returns true when `metric` is a new best (and the state was captured).
    bool update(double metric, const std::vector<torch::nn::Module*>& modules);
    bool update(double metric, torch::nn::Module& module) { return update(metric, {&module}); }
    bool should_stop() const { return since_best_ >= patience_; }
    /// Copies the best snapshot back into the same modules (throws if none was taken).
    void restore(const std::vector<torch::nn::Module*>& modules) const;
    void restore(torch::nn::Module& module) const { restore({&module}); }

    bool has_best() const { return best_evaluation_ >= 0; }
    double best() const { return best_; }
    /// 0-based index of the best update() call (−1 before any improvement).
    int best_evaluation() const { return best_evaluation_; }
    int evaluations() const { return evaluations_; }

private:
    int patience_;
    bool maximize_;
    double min_delta_;
    double best_ = 0.0;
    int best_evaluation_ = -1;
    int evaluations_ = 0;
    int since_best_ = 0;
    std::vector<torch::Tensor> state_;
};

/// Autocast (float16 mixed precision) for the enclosing scope on a CUDA device when `enabled`;
/// a no-op on CPU.
class AutocastGuard {
public:
    AutocastGuard(const torch::Device& device, bool enabled = true);
    ~AutocastGuard();
    AutocastGuard(const AutocastGuard&) = delete;
    AutocastGuard& operator=(const AutocastGuard&) = delete;
    bool active() const { return active_; }

private:
    bool active_ = false;
    bool previous_ = false;
};

}  // namespace radprobe::adapt::training

namespace radprobe::adapt {

/// How masks are resampled by the geometric transform.
enum class MaskResample {
    kNearest,            ///< nearest neighbour
    kBilinearThreshold,  ///< bilinear, then >= 0.5 → 1 (smoother edges, still binary)
};

/// Magnitudes of the augmentation; all zero (and hflip false) = identity.
struct AugmentOptions {
    /// Random resized crop: crop area uniform in [crop_scale_min, 1] of the image, log-aspect
    /// uniform in [−log(crop_ratio_max), log(crop_ratio_max)] relative to the image's aspect,
    /// resized back to H×W.
    /// crop_scale_min = 1 and crop_ratio_max = 1: no crop.
    double crop_scale_min = 1.0;
    double crop_ratio_max = 1.0;
    double rotate_degrees = 0.0;  ///< rotation uniform in [−d, d] degrees about the crop centre
    bool hflip = false;           ///< flip left-right with probability 1/2 (swaps anatomy!)
    double brightness = 0.0;      ///< multiply by a factor uniform in [1 − b, 1 + b]
    double contrast = 0.0;        ///< scale about the image mean by uniform [1 − c, 1 + c]
    double gamma = 0.0;           ///< x^γ with log γ uniform in [−g, g]
    MaskResample mask_resample = MaskResample::kBilinearThreshold;

    bool is_identity() const {
        return crop_scale_min >= 1.0 && crop_ratio_max <= 1.0 && rotate_degrees == 0.0 && !hflip &&
               brightness == 0.0 && contrast == 0.0 && gamma == 0.0;
    }
    bool has_geometry() const {
        return crop_scale_min < 1.0 || crop_ratio_max > 1.0 || rotate_degrees != 0.0 || hflip;
    }
    /// Throws UsageError naming the field when a magnitude is out of its range.
    void validate() const;
    /// "crop=0.7,ratio=1.33,rot=10,bright=0.1,contrast=0.1,gamma=0.1,hflip=0" (all fields).
    std::string describe() const;
};

/// The defaults for radiographs: crop area 0.7–1, aspect up to 4/3, ±10°, brightness and
/// contrast ±0.1, gamma exp(±0.15), no flip.
AugmentOptions radiograph_augment_defaults();

/// Parses --augment: "none", "default" (radiograph_augment_defaults), or a comma list of
/// key=value overriding the defaults: crop (min area), ratio, rot (degrees), bright, contrast,
/// gamma, hflip (0/1), mask (nearest|bilinear). Throws UsageError on an unknown key or a bad
/// value.
AugmentOptions parse_augment(const std::string& text);

/// One sample's drawn parameters.
struct AugmentParams {
    double crop_w = 1.0, crop_h = 1.0;      ///< crop size as fractions of W and H
    double centre_x = 0.0, centre_y = 0.0;  ///< crop centre, normalised coordinates [-1, 1]
    double angle_rad = 0.0;
    bool flip = false;
    double brightness = 1.0, contrast = 1.0, gamma = 1.0;
};

/// Draws `n` samples' parameters (see the file comment for the order).
std::vector<AugmentParams> sample_augment_params(std::size_t n, double height, double width,
                                                 const AugmentOptions& options, Rng& rng);

/// Applies given parameters: geometry to images (bilinear, zero padding = black) and masks
/// (options.mask_resample), intensity to images only, images clamped to [0,1]. Returns new
/// tensors (inputs untouched); `masks` may be undefined (returned undefined).
struct Augmented {
    at::Tensor images;
    at::Tensor masks;
};
Augmented apply_augment(const at::Tensor& images, const at::Tensor& masks,
                        const std::vector<AugmentParams>& params, const AugmentOptions& options);

/// sample_augment_params + apply_augment. With is_identity() options the inputs are returned
/// unchanged (and no random numbers are drawn).
Augmented augment_batch(const at::Tensor& images, const at::Tensor& masks,
                        const AugmentOptions& options, Rng& rng);

}  // namespace radprobe::adapt
