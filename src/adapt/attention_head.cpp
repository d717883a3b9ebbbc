// The attention-pooling head and the shared head training loop (see head_modules.hpp).

#include <algorithm>
#include <cmath>
#include <numeric>

#include "head_modules.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::adapt {

namespace nn = torch::nn;

AttentionImpl::AttentionImpl(std::int64_t dim, std::int64_t heads_) : heads(heads_) {
    RADPROBE_USAGE_CHECK(heads_ >= 1 && dim % heads_ == 0, "attention head: --heads ", heads_,
                         " must divide the width ", dim);
    q_proj = register_module("q_proj", nn::Linear(dim, dim));
    k_proj = register_module("k_proj", nn::Linear(dim, dim));
    v_proj = register_module("v_proj", nn::Linear(dim, dim));
    out_proj = register_module("out_proj", nn::Linear(dim, dim));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& q, const torch::Tensor& kv) {
    const auto n = q.size(0), nq = q.size(1), nt = kv.size(1), dim = q.size(2);
    const auto hd = dim / heads;
    auto split = [&](const torch::Tensor& t, std::int64_t len) {
        return t.view({n, len, heads, hd}).transpose(1, 2);  // N×H×len×hd
    };
    const auto qh = split(q_proj->forward(q), nq);
    const auto kh = split(k_proj->forward(kv), nt);
    const auto vh = split(v_proj->forward(kv), nt);
    auto w = torch::matmul(qh, kh.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd));
    w = torch::softmax(w, -1);
    last_weights = w.detach();
    const auto out = torch::matmul(w, vh).transpose(1, 2).reshape({n, nq, dim});
    return out_proj->forward(out);
}

BlockImpl::BlockImpl(std::int64_t dim, std::int64_t heads, double mlp_ratio, double dropout,
                     bool cross) {
    norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({dim})));
    if (cross) {
        norm_kv = register_module("norm_kv", nn::LayerNorm(nn::LayerNormOptions({dim})));
    }
    attn = register_module("attn", Attention(dim, heads));
    norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({dim})));
    const auto hidden = std::max<std::int64_t>(1, std::llround(dim * mlp_ratio));
    fc1 = register_module("fc1", nn::Linear(dim, hidden));
    fc2 = register_module("fc2", nn::Linear(hidden, dim));
    drop = register_module("drop", nn::Dropout(dropout));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& kv) {
    const auto h = norm1->forward(x);
    auto y = x + drop->forward(attn->forward(h, kv.defined() ? norm_kv->forward(kv) : h));
    return y + drop->forward(fc2->forward(torch::gelu(fc1->forward(norm2->forward(y)))));
}

AttentionPoolHead::AttentionPoolHead(const AttentionHeadConfig& c) : config(c) {
    RADPROBE_USAGE_CHECK(c.in_dim >= 1, "attention head: token width must be >= 1");
    if (config.dim <= 0) {
        config.dim = c.in_dim;
    }
    const auto dim = config.dim;
    RADPROBE_USAGE_CHECK(c.queries >= 1 && c.queries <= 64, "attention head: --queries ", c.queries,
                         ": expected 1 .. 64");
    RADPROBE_USAGE_CHECK(c.depth >= 0 && c.depth <= 12, "attention head: --depth ", c.depth,
                         ": expected 0 .. 12");
    RADPROBE_USAGE_CHECK(c.dropout >= 0 && c.dropout < 1, "attention head: --dropout ", c.dropout,
                         ": expected [0, 1)");
    in_norm = register_module("in_norm", nn::LayerNorm(nn::LayerNormOptions({c.in_dim})));
    if (dim != c.in_dim) {
        proj = register_module("proj", nn::Linear(c.in_dim, dim));
    }
    query_tokens =
        register_parameter("query_tokens", torch::zeros({1, c.queries, dim}).normal_(0, 0.02));
    cross = register_module("cross", Block(dim, c.heads, c.mlp_ratio, c.dropout, true));
    for (std::int64_t i = 0; i < c.depth; ++i) {
        blocks->push_back(Block(dim, c.heads, c.mlp_ratio, c.dropout, false));
    }
    register_module("blocks", blocks);
    out_norm = register_module("out_norm", nn::LayerNorm(nn::LayerNormOptions({dim})));
    classifier = register_module("classifier", nn::Linear(dim, c.outputs));
    // Initialisation as PyTorch's nn.MultiheadAttention (Xavier-uniform projections, zero
    // biases) for the attention projections and LibTorch's Linear default (Kaiming-uniform) for
    // the rest. Not timm's trunc_normal(std = 0.02) everywhere: with every matrix at 0.02 the
    // logit depends on the tokens through a product of several tiny matrices (v, out, classifier;
    // q·k for the attention itself) — a saddle at zero that a few hundred optimiser steps do not
    // leave (train loss flat at the prior's entropy, attention uniform; see test_train_e2e).
    for (auto& p : named_parameters(true)) {
        const auto& name = p.key();
        const bool attention_proj = name.find("attn.") != std::string::npos;
        torch::NoGradGuard g;
        if (attention_proj && p.value().dim() == 2) {
            nn::init::xavier_uniform_(p.value());
        } else if (attention_proj && name.find("bias") != std::string::npos) {
            p.value().zero_();
        }
    }
}

torch::Tensor AttentionPoolHead::forward(const torch::Tensor& tokens) {
    RADPROBE_ASSERT(tokens.dim() == 3 && tokens.size(2) == config.in_dim,
                    "attention head: expected N×T×", config.in_dim, " tokens");
    auto x = in_norm->forward(tokens);
    if (!proj.is_empty()) {
        x = proj->forward(x);
    }
    auto q = query_tokens.expand({tokens.size(0), -1, -1});
    q = cross->forward(q, x);
    for (auto& b : *blocks) {
        q = b->as<Block>()->forward(q);
    }
    return classifier->forward(out_norm->forward(q.mean(1)));
}

FeatureFn tensor_features(torch::Tensor x, torch::Device device) {
    return [x = std::move(x), device](const torch::Tensor& idx, bool) {
        return x.index_select(0, idx.to(x.device())).to(device);
    };
}

std::vector<double> predict_head(HeadModule& head, const FeatureFn& features, std::int64_t n,
                                 int batch, const torch::Device& device, bool mixed_precision) {
    torch::NoGradGuard guard;
    head.eval();
    std::vector<double> scores;
    scores.reserve(static_cast<std::size_t>(n));
    for (std::int64_t b = 0; b < n; b += batch) {
        const auto idx = torch::arange(b, std::min<std::int64_t>(n, b + batch), torch::kLong);
        torch::Tensor logits;
        {
            training::AutocastGuard autocast(device, mixed_precision);
            logits = head.forward(features(idx, false));
        }
        const auto c = logits.select(1, 0).to(torch::kCPU, torch::kFloat64).contiguous();
        scores.insert(scores.end(), c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
    }
    return scores;
}

HeadFit fit_head(HeadModule& head, const FeatureFn& train_features,
                 const std::vector<double>& train_y, const FeatureFn& val_features,
                 const std::vector<double>& val_y, const HeadFitOptions& o) {
    RADPROBE_USAGE_CHECK(o.epochs >= 1 && o.batch >= 1 && o.lr > 0 && o.weight_decay >= 0 &&
                             o.warmup_epochs >= 0 && o.patience >= 1,
                         "train: epochs >= 1, batch >= 1, lr > 0, weight decay >= 0, warm-up >= 0 "
                         "and patience >= 1 are required");
    const auto tc = eval::count_classes(train_y);
    const auto vc = eval::count_classes(val_y);
    RADPROBE_CHECK(tc.positives > 0 && tc.negatives > 0, "train: the train split has ",
                   tc.positives, " positives of ", train_y.size(), "; both classes are needed");
    RADPROBE_CHECK(vc.positives > 0 && vc.negatives > 0, "train: the val split has ", vc.positives,
                   " positives of ", val_y.size(), "; both classes are needed for early stopping");
    const auto n = static_cast<std::int64_t>(train_y.size());
    const std::int64_t steps_per_epoch = (n + o.batch - 1) / o.batch;
    training::TrainerOptions to;
    to.lr = o.lr;
    to.weight_decay = o.weight_decay;
    to.clip_norm = o.clip_norm;
    to.schedule.total_steps = steps_per_epoch * o.epochs;
    to.schedule.warmup_steps = steps_per_epoch * std::min(o.warmup_epochs, o.epochs - 1);
    auto groups = training::default_param_groups(head, o.weight_decay);
    groups.insert(groups.end(), o.extra_groups.begin(), o.extra_groups.end());
    training::Trainer trainer(std::move(groups), to);
    std::vector<torch::nn::Module*> watched{&head};
    watched.insert(watched.end(), o.extra_modules.begin(), o.extra_modules.end());

    const auto y_all =
        torch::tensor(std::vector<float>(train_y.begin(), train_y.end())).to(o.device);
    torch::Tensor pos_weight;
    if (o.balanced_loss) {
        pos_weight = torch::full({1}, static_cast<double>(tc.negatives) / tc.positives,
                                 torch::TensorOptions().device(o.device));
    }
    training::EarlyStopping stopper(o.patience);
    HeadFit fit;
    Rng rng(o.seed);
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
        head.train();
        for (auto* m : o.extra_modules) {
            m->train();
        }
        std::iota(order.begin(), order.end(), 0);
        for (std::size_t i = order.size(); i > 1; --i) {
            std::swap(order[i - 1], order[rng.below(i)]);
        }
        double loss_sum = 0;
        for (std::int64_t b = 0; b < n; b += o.batch) {
            const auto e = std::min(n, b + o.batch);
            const auto idx = torch::tensor(
                std::vector<std::int64_t>(order.begin() + b, order.begin() + e), torch::kLong);
            trainer.zero_grad();
            torch::Tensor loss;
            {
                training::AutocastGuard autocast(o.device, o.mixed_precision);
                const auto logits = head.forward(train_features(idx, true)).select(1, 0);
                loss = torch::binary_cross_entropy_with_logits(
                    logits.to(torch::kFloat32), y_all.index_select(0, idx.to(o.device)), {},
                    pos_weight);
            }
            loss.backward();
            trainer.step();
            loss_sum += loss.item<double>() * static_cast<double>(e - b);
        }
        fit.train_loss.push_back(loss_sum / static_cast<double>(n));
        for (auto* m : o.extra_modules) {
            m->eval();
        }
        const auto scores =
            predict_head(head, val_features, static_cast<std::int64_t>(val_y.size()), o.batch,
                         o.device, o.mixed_precision);
        const double auc = eval::auroc(val_y, scores);
        fit.val_curve.push_back(auc);
        fit.epochs_run = epoch + 1;
        if (stopper.update(auc, watched)) {
            fit.best_epoch = epoch + 1;
        }
        if (o.on_epoch) {
            o.on_epoch(epoch + 1, auc);
        }
        if (stopper.should_stop()) {
            break;
        }
    }
    RADPROBE_CHECK(stopper.has_best(), "train: the validation AUROC was never finite");
    stopper.restore(watched);
    fit.best_val_auroc = stopper.best();
    head.eval();
    for (auto* m : o.extra_modules) {
        m->eval();
    }
    return fit;
}

}  // namespace radprobe::adapt
