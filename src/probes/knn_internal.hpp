#pragma once
// The k nearest training rows of each query, computed once and reused for every k of the grid.

#include <cstddef>
#include <span>
#include <vector>

namespace radprobe::probes {

struct KnnNeighbours {
    std::size_t k = 0;               ///< neighbours kept per query (min(max_k, n_train))
    std::vector<std::size_t> index;  ///< n_query × k, most similar first
    std::vector<double> similarity;  ///< n_query × k
};

KnnNeighbours knn_neighbours(std::span<const float> train, std::span<const float> query,
                             std::size_t dim, int max_k, int threads);
std::vector<double> knn_vote(const KnnNeighbours& nb, std::span<const double> labels, int k,
                             double temperature);

}  // namespace radprobe::probes
