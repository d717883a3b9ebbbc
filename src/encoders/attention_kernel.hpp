#pragma once
// One head of softmax attention on raw float32 rows with AVX-512 (attention_kernel.cpp), for the
// inference pass of the ViT-like block stack (tiled_attention in block_workspace.cpp dispatches
// to it). LibTorch-free: plain pointers and strides.
//
// Why not BLAS: a head's products have one side of head_dim (64) columns, and a BLAS call packs
// its operands anew on every call: per 128-row query tile OpenBLAS repacks all the keys and
// values (1 float per 256 flops), which held the two attention products at 50-65% of the GEMM
// peak at 518 px. Here the keys (transposed) and values are packed once per head, the scores of
// a query tile stay in L2, and the products run in register tiles of 6 rows x 64 columns.

#include <cstdint>
#include <vector>

namespace radprobe::encoders::detail {

/// The buffers of avx512_attention(), grown on demand and reused (one per thread).
struct KernelScratch {
    std::vector<float> keys_t;   ///< hd x keys (padded to 16), the keys transposed
    std::vector<float> values;   ///< keys x hd (padded to 16), contiguous
    std::vector<float> scores;   ///< query tile x keys (padded to 16)
    std::vector<float> inv_sum;  ///< 1 / row sum of the exponentials, per query row
};

/// Whether this CPU (and compiler) runs avx512_attention(): AVX-512 F/DQ/BW/VL.
bool avx512_attention_available();

/// out[r] = softmax(scale · q[r] · kᵀ) · v for the tq query rows r: q row r at q + r·ldq, key
/// and value row j at k + j·ldk and v + j·ldv, output row r at out + r·ldo, each hd contiguous
/// floats; keys >= 1. The softmax of a row is exact (its maximum first, then the exponentials and
/// their sum over all keys); query rows are processed in tiles whose scores fit in 1 MiB, so no
/// tq × keys buffer exists. Requires avx512_attention_available().
void avx512_attention(const float* q, std::int64_t ldq, std::int64_t tq, const float* k,
                      std::int64_t ldk, const float* v, std::int64_t ldv, std::int64_t keys,
                      std::int64_t hd, float scale, float* out, std::int64_t ldo,
                      KernelScratch& scratch);

}  // namespace radprobe::encoders::detail
