#pragma once
/// @file linalg.hpp
/// The few dense linear-algebra kernels radprobe takes from BLAS / LAPACK (OpenBLAS on these
/// machines): a symmetric rank-k update and a symmetric eigendecomposition, in double,
/// column-major, the upper triangle. Used by the linear probe's preconditioner and the report's
/// PCA.

#include <optional>
#include <vector>

namespace radprobe::linalg {

/// While alive, OpenBLAS computes on one thread, so a result does not depend on how many threads
/// OpenBLAS would use; with another BLAS it does nothing.
class OneBlasThread {
public:
    OneBlasThread();
    ~OneBlasThread();
    OneBlasThread(const OneBlasThread&) = delete;
    OneBlasThread& operator=(const OneBlasThread&) = delete;

private:
    int saved_ = 0;
};

/// BLAS dsyrk on the upper triangle of the n × n matrix c (leading dimension n):
/// c = alpha · A Aᵀ + beta · c with A n × k (transpose false) or c = alpha · Aᵀ A + beta · c with
/// A k × n (transpose true); A column-major with leading dimension lda.
void syrk_upper(bool transpose, int n, int k, double alpha, const double* a, int lda, double beta,
                double* c);

/// LAPACK dsyevd on the symmetric n × n matrix `a` (column-major, upper triangle set): the
/// eigenvalues in ascending order, `a` overwritten by the eigenvectors (one per column);
/// nullopt when LAPACK reports a failure.
std::optional<std::vector<double>> symmetric_eigen(std::vector<double>& a, int n);

}  // namespace radprobe::linalg
