// Weighted kNN on cosine similarity (DINO's kNN evaluation, binary labels). No LibTorch.

#include <algorithm>
#include <cmath>
#include <numeric>

#include "knn_internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::probes {

namespace {

std::vector<float> l2_normalised(std::span<const float> x, std::size_t dim, const char* what) {
    std::vector<float> out(x.size());
    const std::size_t n = x.size() / dim;
    for (std::size_t i = 0; i < n; ++i) {
        double s = 0;
        for (std::size_t j = 0; j < dim; ++j) {
            const double v = x[i * dim + j];
            RADPROBE_CHECK(std::isfinite(v), "knn: non-finite ", what, " feature at row ", i,
                           ", column ", j);
            s += v * v;
        }
        // A zero row stays zero (similarity 0 to everything), as F.normalize does.
        const double inv = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
        for (std::size_t j = 0; j < dim; ++j) {
            out[i * dim + j] = static_cast<float>(x[i * dim + j] * inv);
        }
    }
    return out;
}

double dot_f(const float* a, const float* b, std::size_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; ++k) {
            s[k] += a[i + k] * b[i + k];
        }
    }
    double t = 0;
    for (; i < n; ++i) {
        t += static_cast<double>(a[i]) * b[i];
    }
    for (float v : s) {
        t += v;
    }
    return t;
}

}  // namespace

KnnNeighbours knn_neighbours(std::span<const float> train, std::span<const float> query,
                             std::size_t dim, int max_k, int threads) {
    RADPROBE_ASSERT(dim > 0 && train.size() % dim == 0 && query.size() % dim == 0);
    const std::size_t n_train = train.size() / dim, n_query = query.size() / dim;
    RADPROBE_CHECK(n_train > 0, "knn: no training rows");
    RADPROBE_USAGE_CHECK(max_k >= 1, "knn: k must be >= 1, got ", max_k);
    const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(max_k), n_train);
    const auto tn = l2_normalised(train, dim, "training");
    const auto qn = l2_normalised(query, dim, "query");
    KnnNeighbours nb;
    nb.k = k;
    nb.index.resize(n_query * k);
    nb.similarity.resize(n_query * k);
    parallel_for(n_query, threads, [&](std::size_t begin, std::size_t end) {
        std::vector<double> sim(n_train);
        std::vector<std::size_t> order(n_train);
        for (std::size_t q = begin; q < end; ++q) {
            for (std::size_t t = 0; t < n_train; ++t) {
                sim[t] = dot_f(&qn[q * dim], &tn[t * dim], dim);
            }
            std::iota(order.begin(), order.end(), std::size_t{0});
            std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k),
                              order.end(), [&](std::size_t a, std::size_t b) {
                                  return sim[a] > sim[b] || (sim[a] == sim[b] && a < b);
                              });
            for (std::size_t j = 0; j < k; ++j) {
                nb.index[q * k + j] = order[j];
                nb.similarity[q * k + j] = sim[order[j]];
            }
        }
    });
    return nb;
}

std::vector<double> knn_vote(const KnnNeighbours& nb, std::span<const double> labels, int k,
                             double temperature) {
    RADPROBE_USAGE_CHECK(temperature > 0, "knn: temperature must be > 0, got ", temperature);
    const std::size_t use = std::min<std::size_t>(static_cast<std::size_t>(k), nb.k);
    const std::size_t n_query = nb.k == 0 ? 0 : nb.index.size() / nb.k;
    std::vector<double> scores(n_query);
    for (std::size_t q = 0; q < n_query; ++q) {
        // Weights relative to the most similar neighbour: exp((s − s_max)/T) keeps the ratio
        // of DINO's exp(s/T) without overflow.
        const double top = nb.similarity[q * nb.k];
        double pos = 0, all = 0;
        for (std::size_t j = 0; j < use; ++j) {
            const double w = std::exp((nb.similarity[q * nb.k + j] - top) / temperature);
            all += w;
            pos += w * labels[nb.index[q * nb.k + j]];
        }
        scores[q] = pos / all;
    }
    return scores;
}

std::vector<double> knn_scores(std::span<const float> train, std::span<const double> labels,
                               std::span<const float> query, std::size_t dim, int k,
                               double temperature, int threads) {
    RADPROBE_ASSERT(labels.size() * dim == train.size());
    const auto nb = knn_neighbours(train, query, dim, k, threads);
    return knn_vote(nb, labels, k, temperature);
}

}  // namespace radprobe::probes
