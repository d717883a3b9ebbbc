// BLAS / LAPACK entry points radprobe uses (see linalg.hpp).

#include "radprobe/core/linalg.hpp"

#include <algorithm>

extern "C" {
void dsyrk_(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* beta, double* c, const int* ldc);
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info);
// OpenBLAS only (weak: absent with another BLAS).
[[gnu::weak]] int openblas_get_num_threads();
[[gnu::weak]] void openblas_set_num_threads(int);
}

namespace radprobe::linalg {

OneBlasThread::OneBlasThread() {
    if (openblas_get_num_threads != nullptr && openblas_set_num_threads != nullptr) {
        saved_ = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
}

OneBlasThread::~OneBlasThread() {
    if (saved_ > 0) {
        openblas_set_num_threads(saved_);
    }
}

void syrk_upper(bool transpose, int n, int k, double alpha, const double* a, int lda, double beta,
                double* c) {
    dsyrk_("U", transpose ? "T" : "N", &n, &k, &alpha, a, &lda, &beta, c, &n);
}

std::optional<std::vector<double>> symmetric_eigen(std::vector<double>& a, int n) {
    std::vector<double> values(static_cast<std::size_t>(n));
    int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
    double work_query = 0;
    dsyevd_("V", "U", &n, a.data(), &n, values.data(), &work_query, &lwork, &iwork_query, &liwork,
            &info);
    if (info != 0) {
        return std::nullopt;
    }
    lwork = static_cast<int>(work_query);
    liwork = iwork_query;
    std::vector<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
    std::vector<int> iwork(static_cast<std::size_t>(std::max(liwork, 1)));
    dsyevd_("V", "U", &n, a.data(), &n, values.data(), work.data(), &lwork, iwork.data(), &liwork,
            &info);
    if (info != 0) {
        return std::nullopt;
    }
    return values;
}

}  // namespace radprobe::linalg
