// Normal and Student-t distribution functions (no external statistics library).

#include <cmath>
#include <limits>

#include "radprobe/core/error.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::eval {

double normal_cdf(double x) {
    return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

double normal_quantile(double p) {
    RADPROBE_CHECK(p > 0.0 && p < 1.0, "normal_quantile: p must lie in (0, 1), got ", p);
    if (p > 0.5) {
        // 1 − p is exact for p in [0.5, 1] (Sterbenz), and the lower tail refines accurately.
        return -normal_quantile(1.0 - p);
    }
    // Acklam's rational approximation (relative error 1.15e-9), then one Halley step on
    // erfc, which brings it to double precision.
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    const double p_low = 0.02425;
    double x;
    if (p < p_low) {
        const double q = std::sqrt(-2.0 * std::log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    } else if (p <= 1.0 - p_low) {
        const double q = p - 0.5;
        const double r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
    } else {
        const double q = std::sqrt(-2.0 * std::log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    }
    for (int step = 0; step < 2; ++step) {
        const double e = normal_cdf(x) - p;
        const double u = e * std::sqrt(2.0 * M_PI) * std::exp(0.5 * x * x);
        x = x - u / (1.0 + 0.5 * x * u);
    }
    return x;
}

namespace {

// Continued fraction of the regularized incomplete beta (modified Lentz).
double beta_continued_fraction(double a, double b, double x) {
    const double tiny = 1e-300;
    const double eps = 1e-16;
    double c = 1.0;
    double d = 1.0 - (a + b) * x / (a + 1.0);
    if (std::abs(d) < tiny) {
        d = tiny;
    }
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 10000; ++m) {
        const double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + aa * d;
        d = std::abs(d) < tiny ? tiny : d;
        c = 1.0 + aa / c;
        c = std::abs(c) < tiny ? tiny : c;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + aa * d;
        d = std::abs(d) < tiny ? tiny : d;
        c = 1.0 + aa / c;
        c = std::abs(c) < tiny ? tiny : c;
        d = 1.0 / d;
        const double delta = d * c;
        h *= delta;
        if (std::abs(delta - 1.0) < eps) {
            break;
        }
    }
    return h;
}

double regularized_beta(double a, double b, double x) {
    if (x <= 0.0) {
        return 0.0;
    }
    if (x >= 1.0) {
        return 1.0;
    }
    const double log_front =
        std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
    if (x < (a + 1.0) / (a + b + 2.0)) {
        return std::exp(log_front) * beta_continued_fraction(a, b, x) / a;
    }
    return 1.0 - std::exp(log_front) * beta_continued_fraction(b, a, 1.0 - x) / b;
}

}  // namespace

double student_t_cdf(double t, double df) {
    RADPROBE_CHECK(df > 0.0, "student_t_cdf: degrees of freedom must be > 0, got ", df);
    if (std::isinf(t)) {
        return t > 0 ? 1.0 : 0.0;
    }
    const double x = df / (df + t * t);
    const double tail = 0.5 * regularized_beta(0.5 * df, 0.5, x);  // P(T < −|t|)
    return t > 0 ? 1.0 - tail : tail;
}

double student_t_quantile(double p, double df) {
    RADPROBE_CHECK(p > 0.0 && p < 1.0, "student_t_quantile: p must lie in (0, 1), got ", p);
    double lo = -1.0;
    double hi = 1.0;
    while (student_t_cdf(lo, df) > p) {
        lo *= 2.0;
    }
    while (student_t_cdf(hi, df) < p) {
        hi *= 2.0;
    }
    for (int i = 0; i < 200 && hi - lo > 1e-15 * std::max(1.0, std::abs(lo)); ++i) {
        const double mid = 0.5 * (lo + hi);
        if (student_t_cdf(mid, df) < p) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return 0.5 * (lo + hi);
}

}  // namespace radprobe::eval
