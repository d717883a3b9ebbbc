// tiled_attention (src/encoders/block_workspace.cpp): the query-tiled attention with an online
// softmax over key tiles (the ATen path) and the AVX-512 kernel (attention_kernel.cpp) equal
// eager softmax attention, write into strided views, and never hold a T_q × T_k score buffer.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "../../src/encoders/internal.hpp"

namespace radprobe::encoders::detail {
namespace {

/// Eager attention of one head: softmax(scale · q kᵀ) v, in float64.
at::Tensor eager(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
    const auto s = at::matmul(q.to(torch::kFloat64), k.to(torch::kFloat64).t()) * scale;
    return at::matmul(at::softmax(s, -1), v.to(torch::kFloat64));
}

struct Case {
    std::int64_t tq, tk, hd, query_rows, key_cols;
};

class TiledAttention : public ::testing::TestWithParam<Case> {};

TEST_P(TiledAttention, EqualsEagerAttentionWithinFloatTolerance) {
    c10::InferenceMode guard;
    const auto c = GetParam();
    torch::manual_seed(11);
    // Large logits (scale 1, values up to ~±40) so a wrong running maximum overflows exp().
    const auto q = torch::randn({c.tq, c.hd}) * 3;
    const auto k = torch::randn({c.tk, c.hd}) * 3;
    const auto v = torch::randn({c.tk, c.hd});
    auto out = torch::full({c.tq, c.hd}, std::nan(""));
    AttentionScratch scratch;
    tiled_attention(q, k, v, 1.0, out, scratch, {c.query_rows, c.key_cols, /*kernel=*/false});
    const double err = (out.to(torch::kFloat64) - eager(q, k, v, 1.0)).abs().max().item<double>();
    EXPECT_LE(err, 1e-5) << "tq " << c.tq << " tk " << c.tk;
    const std::int64_t rows = std::min(c.tq, c.query_rows);
    const std::int64_t cols = c.key_cols > 0 ? std::min(c.tk, c.key_cols) : c.tk;
    EXPECT_LE(scratch.scores.numel(), rows * cols) << "a score buffer larger than one tile";
}

INSTANTIATE_TEST_SUITE_P(Tiles, TiledAttention,
                         ::testing::Values(Case{37, 37, 8, 128, 0},  // one tile: plain softmax
                                           Case{37, 37, 8, 5, 7},    // ragged query and key tiles
                                           Case{19, 64, 16, 4, 16},  // keys ≠ queries, even tiles
                                           Case{3, 50, 8, 2, 1},     // one key per tile
                                           Case{129, 300, 4, 128, 299}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                             const auto& c = info.param;
                             return "q" + std::to_string(c.tq) + "_k" + std::to_string(c.tk) +
                                    "_rows" + std::to_string(c.query_rows) + "_cols" +
                                    std::to_string(c.key_cols);
                         });

TEST(TiledAttentionAuto, LongSequencesSwitchToKeyTilesWithinTheCacheBudget) {
    c10::InferenceMode guard;
    torch::manual_seed(5);
    const std::int64_t t = 3000, hd = 16;  // 128 × 3,000 floats is over the 1 MiB tile budget
    const auto q = torch::randn({t, hd});
    const auto k = torch::randn({t, hd});
    const auto v = torch::randn({t, hd});
    auto out = torch::empty({t, hd});
    AttentionScratch scratch;
    tiled_attention(q, k, v, 0.25, out, scratch, {128, 0, /*kernel=*/false});
    EXPECT_LE((out.to(torch::kFloat64) - eager(q, k, v, 0.25)).abs().max().item<double>(), 1e-5);
    EXPECT_LE(scratch.scores.numel() * 4, std::int64_t{1} << 20);
    EXPECT_TRUE(scratch.row_max.defined()) << "the online softmax did not run";
}

TEST(TiledAttentionViews, ReadsAndWritesHeadsOfAFusedBuffer) {
    c10::InferenceMode guard;
    torch::manual_seed(3);
    const std::int64_t t = 23, heads = 3, hd = 4, d = heads * hd;
    const auto qkv = torch::randn({t, 3 * d});
    auto ctx = torch::zeros({t, d});
    AttentionScratch scratch;
    for (std::int64_t h = 0; h < heads; ++h) {
        tiled_attention(qkv.narrow(1, h * hd, hd), qkv.narrow(1, d + h * hd, hd),
                        qkv.narrow(1, 2 * d + h * hd, hd), 0.5, ctx.narrow(1, h * hd, hd), scratch,
                        {6, 5});
    }
    for (std::int64_t h = 0; h < heads; ++h) {
        const auto ref = eager(qkv.narrow(1, h * hd, hd), qkv.narrow(1, d + h * hd, hd),
                               qkv.narrow(1, 2 * d + h * hd, hd), 0.5);
        EXPECT_LE((ctx.narrow(1, h * hd, hd).to(torch::kFloat64) - ref).abs().max().item<double>(),
                  1e-5)
            << "head " << h;
    }
}

struct KernelCase {
    std::int64_t tq, tk, hd;
    double logit_scale;
};

class AttentionKernel : public ::testing::TestWithParam<KernelCase> {};

TEST_P(AttentionKernel, EqualsEagerAttentionAndTheAtenPath) {
    if (!avx512_attention_available()) {
        GTEST_SKIP() << "this CPU has no AVX-512: the ATen path runs (tested above)";
    }
    c10::InferenceMode guard;
    const auto c = GetParam();
    torch::manual_seed(17);
    // Strided rows, as heads of a fused buffer are: 3 extra columns between rows.
    const auto q = torch::randn({c.tq, c.hd + 3}).narrow(1, 1, c.hd) * c.logit_scale;
    const auto k = torch::randn({c.tk, c.hd + 3}).narrow(1, 2, c.hd) * c.logit_scale;
    const auto v = torch::randn({c.tk, c.hd + 3}).narrow(1, 0, c.hd);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.hd));
    auto kernel = torch::full({c.tq, c.hd + 5}, std::nan("")).narrow(1, 2, c.hd);
    auto aten = torch::full({c.tq, c.hd}, std::nan(""));
    AttentionScratch ks, as;
    tiled_attention(q, k, v, scale, kernel, ks);
    tiled_attention(q, k, v, scale, aten, as, {128, 0, /*kernel=*/false});
    const auto ref = eager(q, k, v, scale);
    EXPECT_LE((kernel.to(torch::kFloat64) - ref).abs().max().item<double>(), 1e-5);
    EXPECT_LE((kernel - aten).abs().max().item<float>(), 1e-5);
    EXPECT_FALSE(as.kernel.scores.size() > 0 || ks.scores.defined()) << "the paths were mixed";
    // One query tile of scores at most: the rows that fit in 1 MiB (at least one register tile).
    const std::int64_t padded = (c.tk + 15) / 16 * 16;
    EXPECT_LE(static_cast<std::int64_t>(ks.kernel.scores.size()),
              std::max<std::int64_t>(6 * padded, (std::int64_t{1} << 20) / 4));
    EXPECT_LE(static_cast<std::int64_t>(ks.kernel.scores.size()), c.tq * padded);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionKernel,
    ::testing::Values(KernelCase{1, 1, 1, 1.0},        // one key: every weight is 1
                      KernelCase{7, 5, 3, 3.0},        // partial register tiles and vectors
                      KernelCase{37, 37, 8, 3.0},      //
                      KernelCase{257, 257, 64, 3.0},   // ViT-B/14 at 224 px
                      KernelCase{129, 300, 72, 3.0},   // SigLIP so400m's head width (4.5 vectors)
                      KernelCase{50, 1370, 64, 3.0},   // ViT-B/14 at 518 px
                      KernelCase{13, 40, 128, 3.0},    // DINOv3 7B's head width (two passes)
                      KernelCase{200, 3000, 40, 2.0},  // several query tiles
                      KernelCase{31, 77, 16, 30.0}),   // logits of ±1000: exp underflows to 0
    [](const ::testing::TestParamInfo<KernelCase>& info) {
        const auto& c = info.param;
        return "q" + std::to_string(c.tq) + "_k" + std::to_string(c.tk) + "_hd" +
               std::to_string(c.hd) + "_x" + std::to_string(static_cast<int>(c.logit_scale));
    });

}  // namespace
}  // namespace radprobe::encoders::detail
