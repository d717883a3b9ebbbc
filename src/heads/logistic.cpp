// L2-regularised logistic regression with our own float64 L-BFGS (no LibTorch in this file).
//
// One objective + gradient evaluation is a single pass over X: each fixed block of rows computes
// its margins, loss and gradient contribution while the rows are in cache, and the blocks are
// summed in block order, so the result does not depend on the thread count.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>

#include "radprobe/core/error.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/heads/heads.hpp"

namespace radprobe::heads {

namespace {

constexpr std::size_t kBlockRows = 128;

double dot(const double* a, const double* b, std::size_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) {
        s0 += a[i] * b[i];
    }
    return (s0 + s1) + (s2 + s3);
}

double max_abs(const std::vector<double>& v) {
    double m = 0;
    for (double x : v) {
        m = std::max(m, std::abs(x));
    }
    return m;
}

// log(1 + exp(m)) without overflow.
double log1pexp(double m) {
    return m > 0 ? m + std::log1p(std::exp(-m)) : std::log1p(std::exp(m));
}

double sigmoid(double z) {
    if (z >= 0) {
        return 1.0 / (1.0 + std::exp(-z));
    }
    const double e = std::exp(z);
    return e / (1.0 + e);
}

// The scaled objective F(θ) (file comment of heads.hpp), θ = (w, b).
class LogisticObjective {
public:
    LogisticObjective(std::span<const double> x, std::size_t dim, std::span<const double> y,
                      std::vector<double> weights, double c, int threads)
        : x_(x), dim_(dim), n_(y.size()), y_(y), s_(std::move(weights)), c_(c), threads_(threads) {
        weight_sum_ = std::accumulate(s_.begin(), s_.end(), 0.0);
        blocks_ = (n_ + kBlockRows - 1) / kBlockRows;
        partial_.assign(blocks_ * (dim_ + 2), 0.0);
    }

    // Returns F and writes ∇F into `grad` (dim + 1).
    double operator()(const std::vector<double>& theta, std::vector<double>& grad) {
        const std::size_t stride = dim_ + 2;
        const double* w = theta.data();
        const double b = theta[dim_];
        parallel_for(blocks_, threads_, [&](std::size_t begin, std::size_t end) {
            for (std::size_t blk = begin; blk < end; ++blk) {
                double* part = &partial_[blk * stride];
                std::fill(part, part + stride, 0.0);
                const std::size_t r0 = blk * kBlockRows, r1 = std::min(n_, r0 + kBlockRows);
                double loss = 0, gb = 0;
                for (std::size_t i = r0; i < r1; ++i) {
                    const double* xi = &x_[i * dim_];
                    const double z = dot(xi, w, dim_) + b;
                    const double yy = y_[i] > 0.5 ? 1.0 : -1.0;
                    loss += s_[i] * log1pexp(-yy * z);
                    const double r = s_[i] * (sigmoid(z) - y_[i]);
                    gb += r;
                    for (std::size_t j = 0; j < dim_; ++j) {
                        part[j] += r * xi[j];
                    }
                }
                part[dim_] = gb;
                part[dim_ + 1] = loss;
            }
        });
        grad.assign(dim_ + 1, 0.0);
        double loss = 0;
        for (std::size_t blk = 0; blk < blocks_; ++blk) {
            const double* part = &partial_[blk * stride];
            for (std::size_t j = 0; j <= dim_; ++j) {
                grad[j] += part[j];
            }
            loss += part[dim_ + 1];
        }
        const double inv_s = 1.0 / weight_sum_;
        const double reg = inv_s / c_;
        double wnorm2 = 0;
        for (std::size_t j = 0; j < dim_; ++j) {
            wnorm2 += w[j] * w[j];
            grad[j] = grad[j] * inv_s + reg * w[j];
        }
        grad[dim_] *= inv_s;
        return loss * inv_s + 0.5 * reg * wnorm2;
    }

private:
    std::span<const double> x_;
    std::size_t dim_, n_;
    std::span<const double> y_;
    std::vector<double> s_;
    double c_;
    int threads_;
    double weight_sum_ = 0;
    std::size_t blocks_ = 0;
    std::vector<double> partial_;
};

using Objective = std::function<double(const std::vector<double>&, std::vector<double>&)>;

struct LbfgsOutcome {
    double f = 0;
    int iterations = 0;
    int evaluations = 0;
    bool converged = false;
    double gnorm = 0;
};

// Minimiser of a cubic through (a, fa, da), (b, fb, db), or NaN.
double cubic_min(double a, double fa, double da, double b, double fb, double db) {
    const double d1 = da + db - 3 * (fa - fb) / (a - b);
    const double disc = d1 * d1 - da * db;
    if (disc < 0) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    const double d2 = std::copysign(std::sqrt(disc), b - a);
    return b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2);
}

// L-BFGS (two-loop recursion) with a strong-Wolfe line search (Nocedal & Wright, Alg. 3.5/3.6)
// that also accepts Hager–Zhang's approximate Wolfe conditions near the optimum, where F can no
// longer resolve the decrease but the directional derivative still can.
LbfgsOutcome lbfgs(const Objective& f, std::vector<double>& x, const LbfgsOptions& opt) {
    constexpr double c1 = 1e-4, c2 = 0.9;
    const std::size_t n = x.size();
    const std::size_t m = static_cast<std::size_t>(std::max(1, opt.memory));
    std::vector<std::vector<double>> s_hist, y_hist;
    std::vector<double> rho_hist;
    std::vector<double> g(n), d(n), xt(n), gt(n), alpha(m);
    LbfgsOutcome out;
    double fx = f(x, g);
    out.evaluations = 1;
    for (int it = 0; it < opt.max_iter; ++it) {
        out.gnorm = max_abs(g);
        if (!std::isfinite(fx) || out.gnorm <= opt.tol) {
            out.converged = std::isfinite(fx);
            break;
        }
        // Two-loop recursion: d = −H g.
        d = g;
        const std::size_t k = s_hist.size();
        for (std::size_t i = k; i-- > 0;) {
            alpha[i] = rho_hist[i] * dot(s_hist[i].data(), d.data(), n);
            for (std::size_t j = 0; j < n; ++j) {
                d[j] -= alpha[i] * y_hist[i][j];
            }
        }
        double gamma = 1.0;
        if (k > 0) {
            gamma = dot(s_hist[k - 1].data(), y_hist[k - 1].data(), n) /
                    dot(y_hist[k - 1].data(), y_hist[k - 1].data(), n);
        }
        for (double& v : d) {
            v *= gamma;
        }
        for (std::size_t i = 0; i < k; ++i) {
            const double beta = rho_hist[i] * dot(y_hist[i].data(), d.data(), n);
            for (std::size_t j = 0; j < n; ++j) {
                d[j] += s_hist[i][j] * (alpha[i] - beta);
            }
        }
        for (double& v : d) {
            v = -v;
        }
        double dg0 = dot(d.data(), g.data(), n);
        if (!(dg0 < 0)) {  // not a descent direction: restart from steepest descent
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            for (std::size_t j = 0; j < n; ++j) {
                d[j] = -g[j];
            }
            dg0 = -dot(g.data(), g.data(), n);
        }
        double step = k == 0 ? std::min(1.0, 1.0 / max_abs(d)) : 1.0;

        // Line search.
        const double f0 = fx;
        const double eps_f = 1e-12 * std::abs(f0);
        auto eval = [&](double a, double& fa, double& da) {
            for (std::size_t j = 0; j < n; ++j) {
                xt[j] = x[j] + a * d[j];
            }
            fa = f(xt, gt);
            da = dot(gt.data(), d.data(), n);
            ++out.evaluations;
        };
        auto acceptable = [&](double a, double fa, double da) {
            const bool wolfe = fa <= f0 + c1 * a * dg0 && std::abs(da) <= -c2 * dg0;
            const bool approx = fa <= f0 + eps_f && da >= c2 * dg0 && da <= (2 * c1 - 1) * dg0;
            return wolfe || approx;
        };
        double a_prev = 0, f_prev = f0, d_prev = dg0;
        double a = step, fa = 0, da = 0;
        bool found = false;
        double lo = 0, flo = f0, dlo = dg0, hi = 0, fhi = 0, dhi = 0;
        bool zoom = false;
        for (int ls = 0; ls < 30 && !found && !zoom; ++ls) {
            eval(a, fa, da);
            if (!std::isfinite(fa)) {
                a *= 0.5;
                continue;
            }
            if (acceptable(a, fa, da)) {
                found = true;
            } else if (fa > f0 + c1 * a * dg0 + eps_f || (ls > 0 && fa >= f_prev + eps_f)) {
                lo = a_prev, flo = f_prev, dlo = d_prev, hi = a, fhi = fa, dhi = da;
                zoom = true;
            } else if (da >= 0) {
                // Where F cannot tell a from a_prev apart, keep the end whose slope points
                // into the bracket as `lo` (the minimum lies between them by the slopes).
                if (std::abs(fa - f_prev) <= eps_f) {
                    lo = a_prev, flo = f_prev, dlo = d_prev, hi = a, fhi = fa, dhi = da;
                } else {
                    lo = a, flo = fa, dlo = da, hi = a_prev, fhi = f_prev, dhi = d_prev;
                }
                zoom = true;
            } else {
                a_prev = a, f_prev = fa, d_prev = da;
                a *= 2.0;
            }
        }
        for (int z = 0; zoom && !found && z < 40; ++z) {
            const double left = std::min(lo, hi), right = std::max(lo, hi);
            const double width = right - left;
            double trial = cubic_min(lo, flo, dlo, hi, fhi, dhi);
            if (!std::isfinite(trial) || trial < left + 0.1 * width ||
                trial > right - 0.1 * width) {
                trial = 0.5 * (lo + hi);
            }
            a = trial;
            eval(a, fa, da);
            if (acceptable(a, fa, da)) {
                found = true;
            } else if (fa > f0 + c1 * a * dg0 + eps_f || fa > flo + eps_f) {
                hi = a, fhi = fa, dhi = da;
            } else if (std::abs(fa - flo) <= eps_f) {
                // F cannot resolve the difference: bisect on the slope alone.
                if (da * (hi - lo) >= 0) {
                    hi = a, fhi = fa, dhi = da;
                } else {
                    lo = a, flo = fa, dlo = da;
                }
            } else {
                if (da * (hi - lo) >= 0) {
                    hi = lo, fhi = flo, dhi = dlo;
                }
                lo = a, flo = fa, dlo = da;
            }
            if (width < 1e-16 * std::max(1.0, right)) {
                break;
            }
        }
        if (!found) {
            // No further progress is resolvable in float64: stop here.
            break;
        }
        // Update the history with s = a d, y = g_new − g.
        std::vector<double> s(n), yv(n);
        for (std::size_t j = 0; j < n; ++j) {
            s[j] = a * d[j];
            yv[j] = gt[j] - g[j];
        }
        const double sy = dot(s.data(), yv.data(), n);
        x = xt;
        g = gt;
        fx = fa;
        out.iterations = it + 1;
        if (sy > 1e-300) {
            if (s_hist.size() == m) {
                s_hist.erase(s_hist.begin());
                y_hist.erase(y_hist.begin());
                rho_hist.erase(rho_hist.begin());
            }
            s_hist.push_back(std::move(s));
            y_hist.push_back(std::move(yv));
            rho_hist.push_back(1.0 / sy);
        }
    }
    out.f = fx;
    out.gnorm = max_abs(g);
    out.converged = out.converged || out.gnorm <= opt.tol;
    return out;
}

}  // namespace

Standardizer Standardizer::fit(std::span<const double> x, std::size_t dim) {
    RADPROBE_ASSERT(dim > 0 && x.size() % dim == 0);
    const std::size_t n = x.size() / dim;
    RADPROBE_CHECK(n > 0, "standardise: no training rows");
    Standardizer s;
    s.mean.assign(dim, 0.0);
    s.scale.assign(dim, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < dim; ++j) {
            const double v = x[i * dim + j];
            RADPROBE_CHECK(std::isfinite(v), "standardise: non-finite feature at row ", i,
                           ", column ", j);
            s.mean[j] += v;
        }
    }
    for (double& m : s.mean) {
        m /= static_cast<double>(n);
    }
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < dim; ++j) {
            const double c = x[i * dim + j] - s.mean[j];
            s.scale[j] += c * c;
        }
    }
    for (std::size_t j = 0; j < dim; ++j) {
        // StandardScaler (scikit-learn 1.2, _is_constant_feature): a variance within the
        // rounding error of its computation is zero, and a zero scale becomes 1.
        const double var = s.scale[j] / static_cast<double>(n);
        const double eps = std::numeric_limits<double>::epsilon();
        const double nm = static_cast<double>(n) * s.mean[j] * eps;
        const bool constant = var <= static_cast<double>(n) * eps * var + nm * nm;
        s.scale[j] = constant ? 1.0 : std::sqrt(var);
    }
    return s;
}

std::vector<double> Standardizer::transform(std::span<const double> x) const {
    const std::size_t dim = mean.size();
    RADPROBE_ASSERT(dim > 0 && x.size() % dim == 0);
    std::vector<double> out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const std::size_t j = i % dim;
        out[i] = (x[i] - mean[j]) / scale[j];
    }
    return out;
}

std::vector<double> LogisticModel::decision(std::span<const double> x) const {
    const std::size_t dim = coef.size();
    RADPROBE_ASSERT(dim > 0 && x.size() % dim == 0);
    std::vector<double> out(x.size() / dim);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = dot(&x[i * dim], coef.data(), dim) + intercept;
    }
    return out;
}

std::vector<double> balanced_weights(std::span<const double> labels) {
    double n1 = 0;
    for (double y : labels) {
        n1 += y > 0.5;
    }
    const double n = static_cast<double>(labels.size());
    const double n0 = n - n1;
    RADPROBE_CHECK(n0 > 0 && n1 > 0, "class weighting: both classes are needed (", n0,
                   " negatives, ", n1, " positives)");
    std::vector<double> w(labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
        w[i] = labels[i] > 0.5 ? n / (2 * n1) : n / (2 * n0);
    }
    return w;
}

LogisticModel fit_logistic(std::span<const double> x, std::size_t dim,
                           std::span<const double> labels, double c,
                           std::span<const double> weights, const LbfgsOptions& options,
                           std::span<const double> warm_start) {
    RADPROBE_CHECK(c > 0 && std::isfinite(c), "logistic regression: C must be > 0, got ", c);
    RADPROBE_ASSERT(dim > 0 && x.size() == labels.size() * dim);
    std::size_t pos = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        RADPROBE_CHECK(labels[i] == 0.0 || labels[i] == 1.0, "logistic regression: label at index ",
                       i, " is ", labels[i], " (must be 0 or 1)");
        pos += labels[i] == 1.0;
    }
    RADPROBE_CHECK(pos > 0 && pos < labels.size(),
                   "logistic regression: the training labels have one class only (", pos,
                   " positives of ", labels.size(), ")");
    for (std::size_t i = 0; i < x.size(); ++i) {
        RADPROBE_CHECK(std::isfinite(x[i]), "logistic regression: non-finite feature at row ",
                       i / dim, ", column ", i % dim);
    }
    std::vector<double> w;
    if (weights.empty()) {
        w.assign(labels.size(), 1.0);
    } else {
        RADPROBE_ASSERT(weights.size() == labels.size());
        w.assign(weights.begin(), weights.end());
    }
    LogisticObjective objective(x, dim, labels, std::move(w), c, options.threads);
    std::vector<double> theta(dim + 1, 0.0);
    if (!warm_start.empty()) {
        RADPROBE_ASSERT(warm_start.size() == dim + 1);
        theta.assign(warm_start.begin(), warm_start.end());
    }
    const LbfgsOutcome r = lbfgs(std::ref(objective), theta, options);
    LogisticModel model;
    model.coef.assign(theta.begin(), theta.begin() + static_cast<std::ptrdiff_t>(dim));
    model.intercept = theta[dim];
    model.c = c;
    model.iterations = r.iterations;
    model.evaluations = r.evaluations;
    model.converged = r.converged;
    model.gradient_norm = r.gnorm;
    model.objective = r.f;
    return model;
}

std::vector<double> default_c_grid() {
    return parse_c_grid("logspace:-6:5:45");
}

std::vector<double> parse_c_grid(const std::string& text) {
    std::vector<double> grid;
    const std::string prefix = "logspace:";
    if (text.rfind(prefix, 0) == 0) {
        double lo = 0, hi = 0;
        int count = 0;
        char extra = 0;
        const int got =
            std::sscanf(text.c_str() + prefix.size(), "%lf:%lf:%d%c", &lo, &hi, &count, &extra);
        RADPROBE_USAGE_CHECK(got == 3 && count >= 1 && count <= 10000 && std::isfinite(lo) &&
                                 std::isfinite(hi) && lo <= hi,
                             "--c-grid '", text,
                             "': expected logspace:LO:HI:COUNT (powers of ten, LO <= HI, "
                             "1 <= COUNT <= 10000)");
        for (int i = 0; i < count; ++i) {
            const double p = count == 1 ? lo : lo + (hi - lo) * i / (count - 1);
            grid.push_back(std::pow(10.0, p));
        }
        return grid;
    }
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, comma - start);
        char* end = nullptr;
        const double v = std::strtod(item.c_str(), &end);
        RADPROBE_USAGE_CHECK(!item.empty() && end && *end == '\0' && std::isfinite(v) && v > 0,
                             "--c-grid '", text, "': '", item,
                             "' is not a positive number (use e.g. 1e-3,1e-2,0.1 or "
                             "logspace:-6:5:45)");
        grid.push_back(v);
        start = comma + 1;
    }
    std::sort(grid.begin(), grid.end());
    grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
    return grid;
}

}  // namespace radprobe::heads
