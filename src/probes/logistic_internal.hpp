#pragma once
// The logistic-regression C path (internal to probes): a training set validated once and fitted
// for many C with warm starts. The rows are read in place, either already standardised (float64)
// or as the raw float32 features with the standardisation (x − mean) / scale applied on the fly
// in float64 — the same problem scikit-learn solves on StandardScaler's float64 output, without
// materialising an N×D float64 copy (half the memory traffic of every objective evaluation).

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "radprobe/probes/probes.hpp"

namespace radprobe::probes {

class LogisticProblem {
public:
    /// Already standardised float64 rows (N×D). Validates labels, weights and finiteness.
    /// `precondition` = false runs plain L-BFGS (for tests; the optimum is the same).
    LogisticProblem(std::span<const double> x, std::size_t dim, std::span<const double> labels,
                    std::span<const double> weights, int threads, bool precondition = true);
    /// Raw float32 rows (N×D), standardised with `standardizer` inside every pass.
    LogisticProblem(std::span<const float> x, std::size_t dim, const Standardizer& standardizer,
                    std::span<const double> labels, std::span<const double> weights, int threads,
                    bool precondition = true);
    ~LogisticProblem();
    LogisticProblem(const LogisticProblem&) = delete;
    LogisticProblem& operator=(const LogisticProblem&) = delete;

    /// Minimises the scaled objective (heads.hpp) for this C from `warm_start` (D + 1 values,
    /// empty = zeros) until max|∇F| ≤ options.tol. Successive calls reuse the L-BFGS curvature
    /// pairs of the previous fit, re-based on the new C (exact: only the penalty term changes).
    LogisticModel fit(double c, const LbfgsOptions& options,
                      std::span<const double> warm_start = {});

    /// Objective evaluations (passes over the rows) since construction.
    long long evaluations() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The decision function of `model` (fitted on standardised features) on raw float32 rows
/// (N×D), standardising them on the fly exactly as the training passes do.
std::vector<double> decision_raw(const LogisticModel& model, const Standardizer& standardizer,
                                 std::span<const float> x, std::size_t dim);

/// StandardScaler statistics computed directly on float32 rows (identical to
/// Standardizer::fit on the same values widened to float64).
Standardizer fit_standardizer(std::span<const float> x, std::size_t dim);

}  // namespace radprobe::probes
