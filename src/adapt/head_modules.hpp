#pragma once
// Internal to adapt (LibTorch): the trainable classification heads and their training loop,
// shared by `radprobe train` (cached features) and fine-tuning (live encoder outputs).
//
//  - AttentionPoolHead: tokens N×T×C → LayerNorm → linear projection to `dim` (identity when
//    dim == C) → Q learned query tokens attend over all T tokens (multi-head cross-attention,
//    pre-norm, residual on the queries, then a residual MLP) → `depth` pre-norm transformer
//    blocks over the Q pooled tokens (V-JEPA's attentive pooler) → mean over the queries →
//    LayerNorm → linear classifier (`outputs` logits).
//  - MlpHead: pooled embeddings N×C → `depth` × (Linear → GELU → Dropout) of width `hidden` →
//    linear classifier. Features are expected standardised (train statistics) by the caller.
//
// Both derive from HeadModule so that fit_head() trains either one.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "radprobe/adapt/training.hpp"

namespace radprobe::adapt {

/// A classification head: features (any shape; batch first) → N×outputs logits.
struct HeadModule : torch::nn::Module {
    virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};

struct AttentionHeadConfig {
    std::int64_t in_dim = 0;   ///< token width C
    std::int64_t dim = 0;      ///< working width (0 = in_dim)
    std::int64_t heads = 4;    ///< attention heads (must divide dim)
    std::int64_t depth = 0;    ///< transformer blocks after the cross-attention
    std::int64_t queries = 1;  ///< learned query tokens
    double mlp_ratio = 4.0;
    double dropout = 0.0;
    std::int64_t outputs = 1;
};

/// Multi-head attention with separate query and key/value inputs (batch first).
struct AttentionImpl : torch::nn::Module {
    AttentionImpl(std::int64_t dim, std::int64_t heads);
    /// q: N×Q×dim, kv: N×T×dim → N×Q×dim.
    torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& kv);
    /// Attention weights N×heads×Q×T of the last forward() (for inspection and tests).
    torch::Tensor last_weights;
    std::int64_t heads;
    torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(Attention);

/// Pre-norm block: x + attn(norm(x), norm(kv)) then x + mlp(norm(x)); self-attention when kv
/// is undefined.
struct BlockImpl : torch::nn::Module {
    BlockImpl(std::int64_t dim, std::int64_t heads, double mlp_ratio, double dropout, bool cross);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& kv = {});
    torch::nn::LayerNorm norm1{nullptr}, norm_kv{nullptr}, norm2{nullptr};
    Attention attn{nullptr};
    torch::nn::Linear fc1{nullptr}, fc2{nullptr};
    torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(Block);

struct AttentionPoolHead : HeadModule {
    explicit AttentionPoolHead(const AttentionHeadConfig& config);
    /// tokens: N×T×in_dim → N×outputs.
    torch::Tensor forward(const torch::Tensor& tokens) override;
    /// The cross-attention weights of the last forward(): N×heads×Q×T.
    torch::Tensor attention_weights() const { return cross->attn->last_weights; }

    AttentionHeadConfig config;
    torch::nn::LayerNorm in_norm{nullptr};
    torch::nn::Linear proj{nullptr};  ///< null when dim == in_dim
    torch::Tensor query_tokens;       ///< 1×Q×dim
    Block cross{nullptr};
    torch::nn::ModuleList blocks;
    torch::nn::LayerNorm out_norm{nullptr};
    torch::nn::Linear classifier{nullptr};
};

struct MlpHeadConfig {
    std::int64_t in_dim = 0;
    std::int64_t hidden = 256;
    std::int64_t depth = 1;  ///< hidden layers (0 = a linear classifier)
    double dropout = 0.1;
    std::int64_t outputs = 1;
};

struct MlpHead : HeadModule {
    explicit MlpHead(const MlpHeadConfig& config);
    torch::Tensor forward(const torch::Tensor& x) override;
    MlpHeadConfig config;
    torch::nn::Sequential body;
    torch::nn::Linear classifier{nullptr};
};

/// Feature source for fit_head: the features (any batch-first shape the head accepts, on the
/// training device) of the samples `indices` (int64, 1-d). `training` is true for training
/// batches (a live encoder may be in train mode and build a graph), false for evaluation
/// (called under NoGradGuard).
using FeatureFn = std::function<torch::Tensor(const torch::Tensor& indices, bool training)>;

/// A FeatureFn over an in-memory tensor (rows selected with index_select, moved to `device`).
FeatureFn tensor_features(torch::Tensor x, torch::Device device);

struct HeadFitOptions {
    double lr = 1e-4;
    double weight_decay = 0.05;
    int epochs = 50;
    int batch = 64;
    int warmup_epochs = 2;
    double clip_norm = 1.0;
    int patience = 8;  ///< evaluations (epochs) without val AUROC improvement
    std::uint64_t seed = 0;
    torch::Device device = torch::kCPU;
    bool mixed_precision = true;  ///< autocast on CUDA (no-op on CPU)
    bool balanced_loss = false;   ///< pos_weight = negatives / positives
    /// Extra trainable parameters (e.g. an unfrozen encoder, with layer-wise LR multipliers)
    /// and the modules whose state early stopping must also keep and restore.
    std::vector<training::ParamGroup> extra_groups;
    std::vector<torch::nn::Module*> extra_modules;
    /// Called after each epoch with (epoch 1-based, val AUROC); e.g. progress or checkpoints.
    std::function<void(int, double)> on_epoch;
};

struct HeadFit {
    int epochs_run = 0;
    int best_epoch = 0;  ///< 1-based
    double best_val_auroc = 0.0;
    std::vector<double> val_curve;
    std::vector<double> train_loss;  ///< mean per epoch
};

/// Trains `head` (already on options.device, freshly initialised by the caller) with AdamW,
/// warm-up + cosine schedule, gradient clipping and early stopping on the val AUROC; restores the
/// best state before returning. Shuffling uses Rng(seed). Labels are 0/1.
/// Throws InputError when the val labels lack a class or val AUROC is never finite.
HeadFit fit_head(HeadModule& head, const FeatureFn& train_features,
                 const std::vector<double>& train_y, const FeatureFn& val_features,
                 const std::vector<double>& val_y, const HeadFitOptions& options);

/// Scores (logit of output 0) of `n` samples in batches, eval mode, no grad.
std::vector<double> predict_head(HeadModule& head, const FeatureFn& features, std::int64_t n,
                                 int batch, const torch::Device& device,
                                 bool mixed_precision = true);

}  // namespace radprobe::adapt
