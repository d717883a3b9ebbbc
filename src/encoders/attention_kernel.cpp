// One head of softmax attention with AVX-512 register tiles (attention_kernel.hpp). Functions
// carry the target attribute instead of the file being built with -mavx512f, so the rest of the
// library runs on any x86-64 and avx512_attention_available() decides at run time.

#include "attention_kernel.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "radprobe/core/error.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RADPROBE_ATTENTION_KERNEL 1
// GCC 12 takes the intrinsics' deliberately undefined operands (_mm512_undefined_ps) for
// uninitialised variables.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
#endif

namespace radprobe::encoders::detail {

#ifdef RADPROBE_ATTENTION_KERNEL

namespace {

constexpr int kRows = 6;                                     // query rows of a register tile
constexpr int kVectors = 4;                                  // 16-float vectors of a register tile
constexpr std::int64_t kScoreBytes = std::int64_t{1} << 20;  // a query tile's scores, in L2

std::int64_t round16(std::int64_t n) {
    return (n + 15) / 16 * 16;
}

/// exp(x) for x <= 0 (scores less their row maximum), as Cephes' expf: x = n·ln2 + r with
/// |r| <= ln2/2, a degree-7 polynomial in r, times 2^n (scalef: gradual underflow below 2^-126,
/// 0 below x = -104). Within 2 ulp of the correctly rounded value; NaN stays NaN.
AVX512 inline __m512 exp_nonpositive(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);  // NaN in x is returned
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/// The mask of the first `n` (0..16) lanes.
inline __mmask16 first_lanes(std::int64_t n) {
    return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

/// keys_t[d][j] = k[j][d] and values[j][d] = v[j][d], zero-padded to 16 columns.
void pack_head(const float* k, std::int64_t ldk, const float* v, std::int64_t ldv,
               std::int64_t keys, std::int64_t hd, KernelScratch& s) {
    const std::int64_t kp = round16(keys), hp = round16(hd);
    s.keys_t.assign(static_cast<std::size_t>(hd * kp), 0.0f);
    s.values.assign(static_cast<std::size_t>(keys * hp), 0.0f);
    for (std::int64_t j = 0; j < keys; ++j) {
        const float* kj = k + j * ldk;
        for (std::int64_t d = 0; d < hd; ++d) {
            s.keys_t[static_cast<std::size_t>(d * kp + j)] = kj[d];
        }
        std::copy(v + j * ldv, v + j * ldv + hd, s.values.begin() + j * hp);
    }
}

/// acc[r][c] = Σ_i a[r·lda + i] · b[i·ldb + 16c .. +16] over i < depth, for R rows and C
/// vectors: the register tile both products share (scores: a = queries, b = keys transposed;
/// outputs: a = exponentials, b = values).
template <int R, int C>
AVX512 inline void accumulate(const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                              std::int64_t depth, __m512 (&acc)[R][C]) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
            acc[r][c] = _mm512_setzero_ps();
        }
    }
    for (std::int64_t i = 0; i < depth; ++i) {
        __m512 bv[C];
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
            bv[c] = _mm512_loadu_ps(b + i * ldb + 16 * c);
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m512 av = _mm512_set1_ps(a[r * lda + i]);
#pragma GCC unroll 4
            for (int c = 0; c < C; ++c) {
                acc[r][c] = _mm512_fmadd_ps(av, bv[c], acc[r][c]);
            }
        }
    }
}

/// scores[r][j0 + 16c + l] = scale · q[r] · k[j0 + 16c + l] for R rows and C vectors of keys.
template <int R, int C>
AVX512 void score_tile(const float* q, std::int64_t ldq, const float* kt, std::int64_t kp,
                       std::int64_t hd, float scale, float* s, std::int64_t lds) {
    __m512 acc[R][C];
    accumulate<R, C>(q, ldq, kt, kp, hd, acc);
    const __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
            _mm512_storeu_ps(s + r * lds + 16 * c, _mm512_mul_ps(acc[r][c], sc));
        }
    }
}

/// out[r][c0 + 16c + l] = inv_sum[r] · Σ_j p[r][j] · values[j][c0 + 16c + l] for R rows and C
/// vectors of the head's columns; the last vector's lanes beyond `last` are not written.
template <int R, int C>
AVX512 void value_tile(const float* p, std::int64_t lds, const float* values, std::int64_t hp,
                       std::int64_t keys, const float* inv_sum, float* out, std::int64_t ldo,
                       __mmask16 last) {
    __m512 acc[R][C];
    accumulate<R, C>(p, lds, values, hp, keys, acc);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        const __m512 inv = _mm512_set1_ps(inv_sum[r]);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
            const __mmask16 m = c == C - 1 ? last : static_cast<__mmask16>(0xFFFF);
            _mm512_mask_storeu_ps(out + r * ldo + 16 * c, m, _mm512_mul_ps(acc[r][c], inv));
        }
    }
}

using ScoreTile = void (*)(const float*, std::int64_t, const float*, std::int64_t, std::int64_t,
                           float, float*, std::int64_t);
using ValueTile = void (*)(const float*, std::int64_t, const float*, std::int64_t, std::int64_t,
                           const float*, float*, std::int64_t, __mmask16);

/// The instantiation for `rows` (1..6) and `vectors` (1..4).
template <typename Fn, template <int, int> class Pick>
Fn pick(std::int64_t rows, std::int64_t vectors) {
    static const Fn table[kRows][kVectors] = {
        {Pick<1, 1>::fn, Pick<1, 2>::fn, Pick<1, 3>::fn, Pick<1, 4>::fn},
        {Pick<2, 1>::fn, Pick<2, 2>::fn, Pick<2, 3>::fn, Pick<2, 4>::fn},
        {Pick<3, 1>::fn, Pick<3, 2>::fn, Pick<3, 3>::fn, Pick<3, 4>::fn},
        {Pick<4, 1>::fn, Pick<4, 2>::fn, Pick<4, 3>::fn, Pick<4, 4>::fn},
        {Pick<5, 1>::fn, Pick<5, 2>::fn, Pick<5, 3>::fn, Pick<5, 4>::fn},
        {Pick<6, 1>::fn, Pick<6, 2>::fn, Pick<6, 3>::fn, Pick<6, 4>::fn}};
    return table[rows - 1][vectors - 1];
}
template <int R, int C>
struct PickScore {
    static constexpr ScoreTile fn = score_tile<R, C>;
};
template <int R, int C>
struct PickValue {
    static constexpr ValueTile fn = value_tile<R, C>;
};

/// Each score row of the tile becomes exp(row − its maximum); inv_sum gets 1 / the row's sum.
AVX512 void exponentiate_rows(float* s, std::int64_t lds, std::int64_t rows, std::int64_t keys,
                              float* inv_sum) {
    const __mmask16 tail = first_lanes(keys % 16);
    const std::int64_t full = keys / 16 * 16;
    const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::int64_t r = 0; r < rows; ++r) {
        float* row = s + r * lds;
        __m512 mx = lowest;
        for (std::int64_t j = 0; j < full; j += 16) {
            mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + j));
        }
        if (full < keys) {
            mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(lowest, tail, row + full));
        }
        const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        __m512 sum = _mm512_setzero_ps();
        for (std::int64_t j = 0; j < full; j += 16) {
            const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + j), m));
            _mm512_storeu_ps(row + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (full < keys) {
            const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + full), m);
            const __m512 e = _mm512_maskz_mov_ps(tail, exp_nonpositive(x));
            _mm512_mask_storeu_ps(row + full, tail, e);
            sum = _mm512_add_ps(sum, e);
        }
        inv_sum[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
}

/// Attention of `rows` query rows (one tile) against the packed head.
AVX512 void attend_tile(const float* q, std::int64_t ldq, std::int64_t rows, std::int64_t keys,
                        std::int64_t hd, float scale, float* out, std::int64_t ldo,
                        KernelScratch& s) {
    const std::int64_t kp = round16(keys), hp = round16(hd);
    float* sc = s.scores.data();
    for (std::int64_t j0 = 0; j0 < kp; j0 += 16 * kVectors) {
        const std::int64_t vectors = std::min<std::int64_t>(kVectors, (kp - j0) / 16);
        for (std::int64_t r0 = 0; r0 < rows; r0 += kRows) {
            const std::int64_t r = std::min<std::int64_t>(kRows, rows - r0);
            pick<ScoreTile, PickScore>(r, vectors)(q + r0 * ldq, ldq, s.keys_t.data() + j0, kp, hd,
                                                   scale, sc + r0 * kp + j0, kp);
        }
    }
    exponentiate_rows(sc, kp, rows, keys, s.inv_sum.data());
    for (std::int64_t c0 = 0; c0 < hd; c0 += 16 * kVectors) {
        const std::int64_t vectors = std::min<std::int64_t>(kVectors, (hp - c0) / 16);
        const __mmask16 last = first_lanes(hd - (c0 + 16 * (vectors - 1)));
        for (std::int64_t r0 = 0; r0 < rows; r0 += kRows) {
            const std::int64_t r = std::min<std::int64_t>(kRows, rows - r0);
            pick<ValueTile, PickValue>(r, vectors)(sc + r0 * kp, kp, s.values.data() + c0, hp, keys,
                                                   s.inv_sum.data() + r0, out + r0 * ldo + c0, ldo,
                                                   last);
        }
    }
}

}  // namespace

bool avx512_attention_available() {
    static const bool yes = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }();
    return yes;
}

void avx512_attention(const float* q, std::int64_t ldq, std::int64_t tq, const float* k,
                      std::int64_t ldk, const float* v, std::int64_t ldv, std::int64_t keys,
                      std::int64_t hd, float scale, float* out, std::int64_t ldo,
                      KernelScratch& s) {
    RADPROBE_ASSERT(avx512_attention_available() && keys >= 1 && hd >= 1,
                    "avx512_attention on this CPU or with no keys");
    const std::int64_t kp = round16(keys);
    const std::int64_t fit = std::max<std::int64_t>(kRows, kScoreBytes / (4 * kp) / kRows * kRows);
    const std::int64_t tile = std::min(tq, fit);
    pack_head(k, ldk, v, ldv, keys, hd, s);
    s.scores.resize(static_cast<std::size_t>(tile * kp));
    s.inv_sum.resize(static_cast<std::size_t>(tile));
    for (std::int64_t r0 = 0; r0 < tq; r0 += tile) {
        const std::int64_t rows = std::min(tile, tq - r0);
        attend_tile(q + r0 * ldq, ldq, rows, keys, hd, scale, out + r0 * ldo, ldo, s);
    }
}

#else  // not x86-64 with GCC or Clang

bool avx512_attention_available() {
    return false;
}

void avx512_attention(const float*, std::int64_t, std::int64_t, const float*, std::int64_t,
                      const float*, std::int64_t, std::int64_t, std::int64_t, float, float*,
                      std::int64_t, KernelScratch&) {
    RADPROBE_ASSERT(false, "avx512_attention on a CPU without AVX-512");
}

#endif

}  // namespace radprobe::encoders::detail
