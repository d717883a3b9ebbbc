// The inference path of the pre-LN block stack every ViT-like family shares: activation buffers
// kept per (batch, tokens) shape and reused across layers and calls (a fresh buffer costs more
// to fault in than the arithmetic it holds on these machines, DESIGN.md), and attention tiled
// over query rows with an online softmax over key tiles, so no T×T score buffer exists.
// On the CPU one thread pool does all the work: LibTorch's (OpenMP) threads each take a slice of
// the rows (norms, projections, MLP) or of the heads (attention) and call a single-threaded BLAS
// on it. OpenBLAS's own threads would otherwise alternate with OpenMP's, which spin between
// parallel regions in the default environment and take the cores from it.
// Same arithmetic as pre_ln_block (common.cpp), which the training pass keeps.

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/linalg.hpp"

namespace radprobe::encoders::detail {

namespace {

// A score tile of at most this many bytes stays in the 2 MiB L2 of a core while it is scaled,
// exponentiated and multiplied by V (128 query rows × 2,048 keys).
constexpr std::int64_t kScoreTileBytes = std::int64_t{1} << 20;

std::int64_t key_tile(const AttentionTiles& tiles, std::int64_t rows, std::int64_t keys) {
    const std::int64_t fit = std::max<std::int64_t>(1, kScoreTileBytes / (4 * rows));
    return std::min(keys, tiles.key_cols > 0 ? tiles.key_cols : fit);
}

/// `buffer` with at least `rows` × `cols` elements, as a rows × cols view.
at::Tensor scratch(at::Tensor& buffer, std::int64_t rows, std::int64_t cols,
                   const at::Tensor& like) {
    if (!buffer.defined() || buffer.numel() < rows * cols || buffer.device() != like.device() ||
        buffer.scalar_type() != like.scalar_type()) {
        buffer = at::empty({rows * cols}, like.options());
    }
    return buffer.narrow(0, 0, rows * cols).view({rows, cols});
}

/// Online softmax over key tiles for one query tile: `o` = softmax(scale · q kᵀ) v, with the
/// running row maximum m and row sum l of the FlashAttention recurrence.
void attend_in_key_tiles(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         double scale, at::Tensor& o, AttentionScratch& s, std::int64_t cols) {
    const std::int64_t rows = q.size(0), keys = k.size(0);
    auto m = scratch(s.row_max, rows, 1, q);
    auto m_new = scratch(s.row_new_max, rows, 1, q);
    auto l = scratch(s.row_sum, rows, 1, q);
    auto l_tile = scratch(s.tile_sum, rows, 1, q);
    auto corr = scratch(s.correction, rows, 1, q);
    for (std::int64_t j0 = 0; j0 < keys; j0 += cols) {
        const std::int64_t c = std::min(cols, keys - j0);
        auto p = scratch(s.scores, rows, c, q);
        at::addmm_out(p, p, q, k.narrow(0, j0, c).t(), /*beta=*/0.0, /*alpha=*/scale);
        const auto vj = v.narrow(0, j0, c);
        if (j0 == 0) {
            at::amax_out(m, p, {1}, true);
            p.sub_(m).exp_();
            at::sum_out(l, p, {1}, true);
            at::mm_out(o, p, vj);
            continue;
        }
        at::amax_out(m_new, p, {1}, true);
        at::maximum_out(m_new, m_new, m);
        at::sub_out(corr, m, m_new).exp_();  // rescales what the earlier tiles summed
        p.sub_(m_new).exp_();
        at::sum_out(l_tile, p, {1}, true);
        l.mul_(corr).add_(l_tile);
        o.mul_(corr).addmm_(p, vj);
        m.copy_(m_new);
    }
    o.div_(l);
}

/// Whether tiled_attention hands the head to avx512_attention (AttentionTiles::kernel).
bool kernel_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& out, const AttentionTiles& tiles) {
    bool yes = tiles.kernel && avx512_attention_available() && k.size(0) > 0;
    for (const at::Tensor* t : {&q, &k, &v, &out}) {
        yes = yes && t->device().is_cpu() && t->scalar_type() == at::kFloat && t->dim() == 2 &&
              t->stride(1) == 1;
    }
    return yes;
}

}  // namespace

void tiled_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                     at::Tensor out, AttentionScratch& s, const AttentionTiles& tiles) {
    const std::int64_t tq = q.size(0), keys = k.size(0);
    if (kernel_applies(q, k, v, out, tiles)) {
        avx512_attention(q.data_ptr<float>(), q.stride(0), tq, k.data_ptr<float>(), k.stride(0),
                         v.data_ptr<float>(), v.stride(0), keys, q.size(1),
                         static_cast<float>(scale), out.data_ptr<float>(), out.stride(0), s.kernel);
        return;
    }
    const std::int64_t tile = std::min(tq, std::max<std::int64_t>(1, tiles.query_rows));
    const std::int64_t cols = key_tile(tiles, tile, keys);
    for (std::int64_t r0 = 0; r0 < tq; r0 += tile) {
        const std::int64_t rows = std::min(tile, tq - r0);
        const auto qr = q.narrow(0, r0, rows);
        auto o = out.narrow(0, r0, rows);
        if (cols < keys) {
            attend_in_key_tiles(qr, k, v, scale, o, s, cols);
            continue;
        }
        // One key tile: the plain softmax of the whole row, as eager attention computes it.
        auto sc = scratch(s.scores, rows, keys, q);
        auto pr = scratch(s.probs, rows, keys, q);
        at::addmm_out(sc, sc, qr, k.t(), /*beta=*/0.0, /*alpha=*/scale);
        at::_softmax_out(pr, sc, 1, false);
        at::mm_out(o, pr, v);
    }
}

namespace {

void reserve(BlockWorkspace& ws, std::int64_t m, std::int64_t d, const PreLnBlock& b,
             const at::Tensor& like) {
    const std::int64_t hidden = b.fc1_w.size(0);
    const bool gated = b.gate_w.defined();
    if (ws.rows == m && ws.width == d && ws.hidden == hidden && ws.gated == gated &&
        ws.x.device() == like.device()) {
        return;
    }
    const auto f = like.options().dtype(torch::kFloat32);
    ws = BlockWorkspace{};
    ws.rows = m;
    ws.width = d;
    ws.hidden = hidden;
    ws.gated = gated;
    for (at::Tensor* t : {&ws.x, &ws.h, &ws.q, &ws.k, &ws.v, &ws.ctx, &ws.tmp}) {
        *t = at::empty({m, d}, f);
    }
    ws.up = at::empty({m, hidden}, f);
    if (gated) {
        ws.gate = at::empty({m, hidden}, f);
    }
    ws.ln_mean = at::empty({m, 1}, f);
    ws.ln_rstd = at::empty({m, 1}, f);
}

/// out = in · wᵀ + b (b may be undefined).
void linear_out(at::Tensor& out, const at::Tensor& in, const at::Tensor& w, const at::Tensor& b) {
    if (b.defined()) {
        at::addmm_out(out, b, in, w.t());
    } else {
        at::mm_out(out, in, w.t());
    }
}

void activation_(at::Tensor& x, const std::string& name, const ModelConfig& config) {
    if (name == "gelu") {
        at::gelu_(x);
    } else if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
        at::gelu_(x, "tanh");
    } else if (name == "relu") {
        at::relu_(x);
    } else if (name == "silu" || name == "swish") {
        at::silu_(x);
    } else if (name == "quick_gelu") {
        x.mul_(at::sigmoid(x * 1.702));
    } else {
        check_activation(name, config);
    }
}

/// The buffers a norm reads and writes, restricted to rows [r0, r1) (one thread's share).
struct RowSlice {
    at::Tensor x, h, ln_mean, ln_rstd;
};

RowSlice rows_of(const BlockWorkspace& ws, std::int64_t r0, std::int64_t r1) {
    auto cut = [&](const at::Tensor& t) { return t.narrow(0, r0, r1 - r0); };
    return {cut(ws.x), cut(ws.h), cut(ws.ln_mean), cut(ws.ln_rstd)};
}

/// r.h = norm(r.x): LayerNorm, or RMSNorm (w only) when `rms`.
void norm_out(RowSlice& r, const at::Tensor& w, const at::Tensor& b, double eps, bool rms) {
    if (!rms) {
        at::native_layer_norm_out(r.h, r.ln_mean, r.ln_rstd, r.x, {r.x.size(1)}, w, b, eps);
        return;
    }
    at::mul_out(r.h, r.x, r.x);
    at::mean_out(r.ln_rstd, r.h, {1}, true);
    r.ln_rstd.add_(eps).rsqrt_();
    at::mul_out(r.h, r.x, r.ln_rstd);
    r.h.mul_(w);
}

/// x += scale · y (scale undefined: 1).
void add_scaled(at::Tensor& x, const at::Tensor& y, const at::Tensor& scale) {
    if (scale.defined()) {
        x.addcmul_(y, scale);
    } else {
        x.add_(y);
    }
}

/// q and k through `rotate` (N×heads×T×hd views of the workspace), in place.
void rotate_in_place(BlockWorkspace& ws, std::int64_t n, std::int64_t heads,
                     const std::function<at::Tensor(const at::Tensor&)>& rotate) {
    const std::int64_t t = ws.rows / n, hd = ws.width / heads;
    for (at::Tensor* qk : {&ws.q, &ws.k}) {
        auto view = qk->view({n, t, heads, hd}).transpose(1, 2);
        view.copy_(rotate(view));
    }
}

/// Attention of every (image, head), spread over the threads, each with its own scratch.
void attention_out(BlockWorkspace& ws, std::int64_t n, std::int64_t heads) {
    const std::int64_t t = ws.rows / n, hd = ws.width / heads;
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    ws.attention.resize(static_cast<std::size_t>(std::max(1, at::get_num_threads())));
    at::parallel_for(0, n * heads, 1, [&](std::int64_t u0, std::int64_t u1) {
        const c10::InferenceMode inference;
        auto& scratch = ws.attention[static_cast<std::size_t>(at::get_thread_num())];
        for (std::int64_t u = u0; u < u1; ++u) {
            const std::int64_t b = u / heads, h = u % heads;
            auto head = [&](const at::Tensor& x) {
                return x.narrow(0, b * t, t).narrow(1, h * hd, hd);
            };
            tiled_attention(head(ws.q), head(ws.k), head(ws.v), scale, head(ws.ctx), scratch,
                            ws.tiles);
        }
    });
}

/// Calls fn(r0, r1) once per thread of LibTorch's pool on contiguous shares of `rows` rows.
template <typename Fn>
void for_rows(std::int64_t rows, Fn&& fn) {
    const std::int64_t threads = std::max(1, at::get_num_threads());
    at::parallel_for(0, rows, (rows + threads - 1) / threads,
                     [&](std::int64_t r0, std::int64_t r1) {
                         const c10::InferenceMode inference;
                         fn(r0, r1);
                     });
}

/// A thread's share of a linear step: output columns [i0, i1) of every row, or rows [i0, i1).
struct Part {
    bool columns = false;
    std::int64_t i0 = 0, i1 = 0;
    /// The share of a rows × width buffer (an output, or a buffer of the same shape).
    at::Tensor of(const at::Tensor& t) const { return t.narrow(columns ? 1 : 0, i0, i1 - i0); }
    /// The share of a per-column vector (bias, LayerScale): all of it for a share of rows.
    at::Tensor of_vector(const at::Tensor& v) const {
        return v.defined() && columns ? v.narrow(0, i0, i1 - i0) : v;
    }
    /// The input rows a share reads: all of them for a share of columns.
    at::Tensor input(const at::Tensor& in) const {
        return columns ? in : in.narrow(0, i0, i1 - i0);
    }
    /// The weight rows that give the share's output columns.
    at::Tensor weight(const at::Tensor& w) const { return columns ? w.narrow(0, i0, i1 - i0) : w; }
};

/// One linear of a step: *out = in · wᵀ + b.
struct Linear {
    at::Tensor* out;
    const at::Tensor* w;
    const at::Tensor* b;
};

/// Linears of one width on the same input over LibTorch's threads, then `after(part)` on each
/// thread's share of the outputs, in one parallel region. A BLAS call packs its operands anew,
/// and a thread given some rows packs all of w: the split is by output columns when w has more
/// of them than there are rows (each thread packs its columns of w and all the rows: ViT-B/14 at
/// 224 px), by rows otherwise. `before(r0, r1)` prepares input rows (a norm): in the same region
/// when split by rows, in a region of its own first when by columns (each thread reads all rows).
/// Few regions matter where threads sleep between them (OMP_WAIT_POLICY=PASSIVE, the CLI's).
/// Returns whether the split was by columns.
template <typename Before, typename After>
bool linear_step(const at::Tensor& in, std::initializer_list<Linear> linears, Before&& before,
                 After&& after) {
    const std::int64_t threads = std::max(1, at::get_num_threads());
    const std::int64_t m = in.size(0), n = linears.begin()->w->size(0);
    const bool columns = n > m && threads > 1;
    if (columns) {
        for_rows(m, before);
    }
    const std::int64_t extent = columns ? n : m;
    std::int64_t share = (extent + threads - 1) / threads;
    share = columns ? (share + 15) / 16 * 16 : share;  // whole 16-float vectors per thread
    at::parallel_for(0, extent, share, [&](std::int64_t i0, std::int64_t i1) {
        const c10::InferenceMode inference;
        const Part part{columns, i0, i1};
        if (!columns) {
            before(i0, i1);
        }
        const auto x = part.input(in);
        for (const Linear& l : linears) {
            auto out = part.of(*l.out);
            linear_out(out, x, part.weight(*l.w), part.of_vector(*l.b));
        }
        after(part);
    });
    return columns;
}

/// An `after` that calls fn(r0, r1) on a share of rows and nothing on a share of columns (the
/// caller then runs fn over rows itself).
template <typename Fn>
auto rows_after(const Fn& fn) {
    return [&fn](const Part& p) {
        if (!p.columns) {
            fn(p.i0, p.i1);
        }
    };
}

/// x += ls · y on a share (ls undefined: 1).
void add_scaled_part(const Part& p, const at::Tensor& x, const at::Tensor& y,
                     const at::Tensor& ls) {
    auto xs = p.of(x);
    add_scaled(xs, p.of(y), p.of_vector(ls));
}

}  // namespace

void pre_ln_block_in_place(BlockWorkspace& ws, const PreLnBlock& b, std::int64_t n,
                           std::int64_t heads, const ModelConfig& config,
                           const std::function<at::Tensor(const at::Tensor&)>& rotate) {
    const double eps = config.layer_norm_eps;
    // One BLAS thread per LibTorch thread: the parallelism is over rows and heads here.
    const linalg::OneBlasThread one_blas_thread;
    const auto nothing_before = [](std::int64_t, std::int64_t) {};
    const auto nothing_after = [](const Part&) {};
    const auto norm = [&](const at::Tensor& w, const at::Tensor& bias) {
        return
            [&ws, w = &w, bias = &bias, eps, rms = b.rms_norm](std::int64_t r0, std::int64_t r1) {
                auto r = rows_of(ws, r0, r1);
                norm_out(r, *w, *bias, eps, rms);
            };
    };
    linear_step(ws.h, {{&ws.q, &b.q_w, &b.q_b}, {&ws.k, &b.k_w, &b.k_b}, {&ws.v, &b.v_w, &b.v_b}},
                norm(b.ln1_w, b.ln1_b), nothing_after);
    if (rotate) {
        rotate_in_place(ws, n, heads, rotate);
    }
    attention_out(ws, n, heads);
    linear_step(ws.ctx, {{&ws.tmp, &b.o_w, &b.o_b}}, nothing_before,
                [&](const Part& p) { add_scaled_part(p, ws.x, ws.tmp, b.ls1); });
    // The activation (act(gate) · up where gated, SwiGLU-style) on whole rows: ATen's GELU on a
    // column share (a strided view) leaves its vectorised loop for Sleef's erf, 9% of the
    // forward at 224 px.
    const auto& act = b.act.empty() ? config.hidden_act : b.act;
    const bool gated = b.gate_w.defined();
    const auto activate = [&](std::int64_t r0, std::int64_t r1) {
        auto up = ws.up.narrow(0, r0, r1 - r0);
        if (gated) {
            auto g = ws.gate.narrow(0, r0, r1 - r0);
            activation_(g, act, config);
            g.mul_(up);
        } else {
            activation_(up, act, config);
        }
    };
    const bool by_columns =
        gated ? linear_step(ws.h, {{&ws.up, &b.fc1_w, &b.fc1_b}, {&ws.gate, &b.gate_w, &b.gate_b}},
                            norm(b.ln2_w, b.ln2_b), rows_after(activate))
              : linear_step(ws.h, {{&ws.up, &b.fc1_w, &b.fc1_b}}, norm(b.ln2_w, b.ln2_b),
                            rows_after(activate));
    if (by_columns) {
        for_rows(ws.rows, activate);
    }
    linear_step(gated ? ws.gate : ws.up, {{&ws.tmp, &b.fc2_w, &b.fc2_b}}, nothing_before,
                [&](const Part& p) { add_scaled_part(p, ws.x, ws.tmp, b.ls2); });
}

at::Tensor run_blocks_in_workspace(const at::Tensor& x, const BlockStack& stack,
                                   const ModelConfig& config, const std::vector<bool>& want,
                                   const ForwardOptions& options, EncoderOutput& out) {
    BlockWorkspace local;
    BlockWorkspace& ws = stack.workspace ? *stack.workspace : local;
    const std::int64_t n = x.size(0), t = x.size(1), d = x.size(2);
    for (std::int64_t i = 0; i < stack.num_layers; ++i) {
        const auto b = block_in_dtype(stack.block(i), torch::kFloat32);
        if (i == 0) {
            reserve(ws, n * t, d, b, x);
            ws.x.copy_(x.reshape({n * t, d}));
        }
        pre_ln_block_in_place(ws, b, n, stack.heads, config, stack.rotate);
        if (want[static_cast<std::size_t>(i + 1)]) {
            const auto state = ws.x.view({n, t, d});
            out.layers[static_cast<int>(i + 1)] =
                options.normalize_layers ? stack.norm(state) : state.clone();
        }
    }
    return stack.num_layers == 0 ? x : ws.x.view({n, t, d}).clone();
}

}  // namespace radprobe::encoders::detail
