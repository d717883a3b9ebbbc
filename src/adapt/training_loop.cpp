// Shared training-loop pieces (see training.hpp).

#include "radprobe/adapt/training.hpp"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cmath>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::adapt::training {

void seed_torch(std::uint64_t seed) {
    torch::manual_seed(seed);
    if (torch::cuda::is_available()) {
        torch::cuda::manual_seed_all(seed);
    }
}

double CosineSchedule::factor(long step) const {
    RADPROBE_ASSERT(total_steps >= 1 && warmup_steps >= 0);
    if (step < warmup_steps) {
        return static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    }
    const long decay = std::max(1L, total_steps - warmup_steps);
    const double t = std::min(1.0, static_cast<double>(step - warmup_steps) / decay);
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + std::cos(M_PI * t));
}

std::vector<ParamGroup> default_param_groups(torch::nn::Module& module, double weight_decay) {
    ParamGroup decay, no_decay;
    decay.weight_decay = weight_decay;
    no_decay.weight_decay = 0.0;
    for (const auto& item : module.named_parameters(true)) {
        if (!item.value().requires_grad()) {
            continue;
        }
        const std::string& name = item.key();
        const bool token =
            name.find("token") != std::string::npos || name.find("query") != std::string::npos;
        (item.value().dim() >= 2 && !token ? decay : no_decay).params.push_back(item.value());
    }
    std::vector<ParamGroup> groups;
    for (auto* g : {&decay, &no_decay}) {
        if (!g->params.empty()) {
            groups.push_back(std::move(*g));
        }
    }
    return groups;
}

Trainer::Trainer(std::vector<ParamGroup> groups, const TrainerOptions& options)
    : options_(options) {
    RADPROBE_USAGE_CHECK(options.lr > 0 && std::isfinite(options.lr), "learning rate ", options.lr,
                         ": must be > 0");
    RADPROBE_USAGE_CHECK(options.schedule.total_steps >= 1 && options.schedule.warmup_steps >= 0,
                         "schedule: total steps >= 1 and warm-up >= 0 are required");
    std::vector<torch::optim::OptimizerParamGroup> torch_groups;
    for (auto& g : groups) {
        if (g.params.empty()) {
            continue;
        }
        auto opts = std::make_unique<torch::optim::AdamWOptions>(options.lr);
        opts->betas({options.beta1, options.beta2})
            .eps(options.eps)
            .weight_decay(g.weight_decay >= 0 ? g.weight_decay : options.weight_decay);
        all_params_.insert(all_params_.end(), g.params.begin(), g.params.end());
        mult_.push_back(g.lr_mult);
        torch_groups.emplace_back(g.params, std::move(opts));
    }
    RADPROBE_ASSERT(!torch_groups.empty(), "Trainer: no trainable parameters");
    optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(torch_groups),
                                                       torch::optim::AdamWOptions(options.lr));
}

void Trainer::set_steps_taken(long steps) {
    RADPROBE_ASSERT(steps >= 0, "Trainer::set_steps_taken: negative step count");
    step_ = steps;
}

void Trainer::zero_grad() {
    optimizer_->zero_grad();
}

double Trainer::current_lr(std::size_t g) const {
    return options_.lr * mult_.at(g) * options_.schedule.factor(step_);
}

double Trainer::step() {
    auto& groups = optimizer_->param_groups();
    for (std::size_t g = 0; g < groups.size(); ++g) {
        static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(current_lr(g));
    }
    const double norm = clip_gradients(all_params_, options_.clip_norm);
    optimizer_->step();
    ++step_;
    return norm;
}

double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
    std::vector<torch::Tensor> norms;
    std::vector<torch::Tensor> grads;
    for (const auto& p : params) {
        if (p.grad().defined()) {
            grads.push_back(p.grad());
            norms.push_back(p.grad().detach().to(torch::kFloat64).norm());
        }
    }
    if (grads.empty()) {
        return 0.0;
    }
    const double total = torch::stack(norms).norm().item<double>();
    if (max_norm > 0 && total > max_norm) {
        const double scale = max_norm / (total + 1e-6);
        torch::NoGradGuard guard;
        for (auto& g : grads) {
            g.mul_(scale);
        }
    }
    return total;
}

EarlyStopping::EarlyStopping(int patience, bool maximize, double min_delta)
    : patience_(patience), maximize_(maximize), min_delta_(min_delta) {
    RADPROBE_USAGE_CHECK(patience >= 1, "early stopping: patience ", patience, ": must be >= 1");
}

bool EarlyStopping::update(double metric, const std::vector<torch::nn::Module*>& modules) {
    const int index = evaluations_++;
    const bool improved = !std::isnan(metric) &&
                          (best_evaluation_ < 0 ||
                           (maximize_ ? metric > best_ + min_delta_ : metric < best_ - min_delta_));
    if (!improved) {
        ++since_best_;
        return false;
    }
    best_ = metric;
    best_evaluation_ = index;
    since_best_ = 0;
    state_.clear();
    torch::NoGradGuard guard;
    for (auto* m : modules) {
        for (const auto& p : m->parameters(true)) {
            state_.push_back(p.detach().clone());
        }
        for (const auto& b : m->buffers(true)) {
            state_.push_back(b.detach().clone());
        }
    }
    return true;
}

void EarlyStopping::restore(const std::vector<torch::nn::Module*>& modules) const {
    RADPROBE_ASSERT(has_best(), "EarlyStopping::restore before any improvement");
    torch::NoGradGuard guard;
    std::size_t k = 0;
    for (auto* m : modules) {
        for (auto& p : m->parameters(true)) {
            RADPROBE_ASSERT(k < state_.size(), "EarlyStopping::restore: modules differ");
            p.copy_(state_[k++]);
        }
        for (auto& b : m->buffers(true)) {
            RADPROBE_ASSERT(k < state_.size(), "EarlyStopping::restore: modules differ");
            b.copy_(state_[k++]);
        }
    }
    RADPROBE_ASSERT(k == state_.size(), "EarlyStopping::restore: modules differ");
}

AutocastGuard::AutocastGuard(const torch::Device& device, bool enabled) {
    if (enabled && device.is_cuda()) {
        previous_ = at::autocast::is_enabled();
        at::autocast::set_enabled(true);
        at::autocast::increment_nesting();
        active_ = true;
    }
}

AutocastGuard::~AutocastGuard() {
    if (active_) {
        if (at::autocast::decrement_nesting() == 0) {
            at::autocast::clear_cache();
        }
        at::autocast::set_enabled(previous_);
    }
}

}  // namespace radprobe::adapt::training
