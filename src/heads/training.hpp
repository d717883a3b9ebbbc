#pragma once
// Internal to heads (LibTorch): the shared training loop pieces of every trained head
// (attention / MLP heads, fine-tuning, the CNN and U-Net baselines):
//   - parse_device: "cpu" | "cuda" | "cuda:N", with a clear error when CUDA is unavailable;
//   - seed_torch: deterministic torch RNG seeding from our seed;
//   - parse_lr_grid: a log-spaced learning-rate grid "lo:hi:n", or a comma list;
//   - CosineSchedule: linear warm-up then cosine decay, over optimiser steps;
//   - Trainer: AdamW over parameter groups with an LR multiplier each (layer-wise decay),
//     stepping the schedule, clipping the global gradient norm;
//   - EarlyStopping: patience on a validation metric, keeping a copy of the best state;
//   - AutocastGuard: mixed precision (float16 autocast) on CUDA only, a no-op on CPU.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace radprobe::heads::training {

/// "cpu", "cuda" or "cuda:N". Throws UsageError on anything else, and InputError when CUDA is
/// requested but LibTorch has no CUDA device (or fewer than N + 1 devices).
torch::Device parse_device(const std::string& text);

/// torch::manual_seed (CPU and, when available, every CUDA device) from `seed`.
void seed_torch(std::uint64_t seed);

/// Learning-rate grid. "lo:hi:n" → n values log-spaced from lo to hi inclusive (n = 1 → lo,
/// lo ≤ hi); "a,b,c" or a single value → those values. Values must be finite and > 0; the
/// result is sorted ascending without duplicates. Throws UsageError naming `option` otherwise.
std::vector<double> parse_lr_grid(const std::string& text, const std::string& option = "--lr-grid");

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

}  // namespace radprobe::heads::training
