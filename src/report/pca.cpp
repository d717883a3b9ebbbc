// Principal components of the report's embedding maps: the covariance (or, with more dimensions
// than rows, the Gram matrix) by BLAS dsyrk, its eigenvectors by LAPACK dsyevd (core/linalg).

#include <algorithm>
#include <cmath>
#include <vector>

#include "radprobe/core/error.hpp"
#include "radprobe/core/linalg.hpp"
#include "report_internal.hpp"

namespace radprobe::report::detail {

namespace {

// The rows minus their mean, in double; `total` = the total variance (divisor n − 1).
std::vector<double> centred(const std::vector<float>& values, std::size_t n, std::size_t d,
                            double& total) {
    std::vector<double> mean(d, 0.0), x(n * d);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < d; ++j) {
            mean[j] += values[i * d + j];
        }
    }
    for (auto& m : mean) {
        m /= static_cast<double>(n);
    }
    total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < d; ++j) {
            x[i * d + j] = values[i * d + j] - mean[j];
            total += x[i * d + j] * x[i * d + j];
        }
    }
    total /= static_cast<double>(n - 1);
    return x;
}

// The eigen-decomposition of X Xᵀ/(n − 1) (gram) or Xᵀ X/(n − 1) (covariance) of the centred
// rows x (n × d row-major = d × n column-major): ascending eigenvalues; `m` the eigenvectors.
std::vector<double> eigen_of(const std::vector<double>& x, std::size_t n, std::size_t d, bool gram,
                             std::vector<double>& m) {
    const int size = static_cast<int>(gram ? n : d);
    m.assign(static_cast<std::size_t>(size) * static_cast<std::size_t>(size), 0.0);
    {
        const linalg::OneBlasThread one;  // the map does not depend on OpenBLAS's thread count
        linalg::syrk_upper(gram, size, static_cast<int>(gram ? d : n),
                           1.0 / static_cast<double>(n - 1), x.data(), static_cast<int>(d), 0.0,
                           m.data());
    }
    auto values = linalg::symmetric_eigen(m, size);
    RADPROBE_CHECK(values.has_value(), "PCA: LAPACK dsyevd did not converge");
    return std::move(*values);
}

// Top-k components (k × d) and their variances from the d × d covariance.
void from_covariance(const std::vector<double>& x, std::size_t n, std::size_t d, Pca& out) {
    std::vector<double> c;
    const auto values = eigen_of(x, n, d, false, c);
    for (std::size_t r = 0; r < out.k; ++r) {
        const std::size_t col = d - 1 - r;
        std::copy_n(c.begin() + static_cast<std::ptrdiff_t>(col * d), d,
                    out.components.begin() + static_cast<std::ptrdiff_t>(r * d));
        out.variance[r] = std::max(0.0, values[col]);
    }
}

// The same from the n × n Gram matrix (more dimensions than rows): component = Xᵀu, normalised.
void from_gram(const std::vector<double>& x, std::size_t n, std::size_t d, Pca& out) {
    std::vector<double> g;
    const auto values = eigen_of(x, n, d, true, g);
    for (std::size_t r = 0; r < out.k; ++r) {
        const std::size_t col = n - 1 - r;
        double* comp = out.components.data() + r * d;
        for (std::size_t i = 0; i < n; ++i) {
            const double u = g[col * n + i];
            for (std::size_t j = 0; j < d; ++j) {
                comp[j] += u * x[i * d + j];
            }
        }
        double norm = 0.0;
        for (std::size_t j = 0; j < d; ++j) {
            norm += comp[j] * comp[j];
        }
        norm = std::sqrt(norm);
        for (std::size_t j = 0; j < d && norm > 0.0; ++j) {
            comp[j] /= norm;
        }
        out.variance[r] = std::max(0.0, values[col]);
    }
}

// Sign: the entry of largest magnitude (first on near-ties) is positive.
void fix_sign(double* comp, std::size_t d) {
    std::size_t arg = 0;
    for (std::size_t j = 1; j < d; ++j) {
        if (std::abs(comp[j]) > std::abs(comp[arg]) * (1.0 + 1e-9)) {
            arg = j;
        }
    }
    if (comp[arg] < 0) {
        for (std::size_t j = 0; j < d; ++j) {
            comp[j] = -comp[j];
        }
    }
}

}  // namespace

Pca pca(const std::vector<float>& values, std::size_t n, std::size_t d, std::size_t k) {
    RADPROBE_CHECK(values.size() == n * d && n >= 2 && d >= 1 && k >= 1,
                   "PCA needs at least two rows of equal width (", n, " rows, ", d, " columns)");
    Pca out;
    out.n = n;
    out.d = d;
    out.k = std::min({k, d, n - 1});
    out.components.assign(out.k * d, 0.0);
    out.variance.assign(out.k, 0.0);
    double total = 0.0;
    const std::vector<double> x = centred(values, n, d, total);
    if (d <= n) {
        from_covariance(x, n, d, out);
    } else {
        from_gram(x, n, d, out);
    }
    out.explained.resize(out.k);
    for (std::size_t r = 0; r < out.k; ++r) {
        fix_sign(out.components.data() + r * d, d);
        out.explained[r] = total > 0 ? out.variance[r] / total : 0.0;
    }
    out.scores.assign(n * out.k, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t r = 0; r < out.k; ++r) {
            double s = 0.0;
            for (std::size_t j = 0; j < d; ++j) {
                s += x[i * d + j] * out.components[r * d + j];
            }
            out.scores[i * out.k + r] = s;
        }
    }
    return out;
}

}  // namespace radprobe::report::detail
