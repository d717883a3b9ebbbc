// bench_probes: the linear probe's full C sweep (selection on val) on n = 10^4 training rows,
// d = 768, against scikit-learn LogisticRegression(lbfgs) on the same data, timed in the same run
// by reference_timing.py. Prints both times, the ratio and the val AUROC agreement.
//
//   bench_probes [--n 10000] [--dim 768] [--grid logspace:-6:5:45] [--sk-tol 1e-8]
//               [--threads 0] [--memory 10] [--no-reference]

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/core/npy.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/probes/probes.hpp"

namespace fs = std::filesystem;
using namespace radprobe;

namespace {

// Embedding-like data: 32 latent factors mixed into d dimensions plus noise; the label depends
// on a few factors through a logistic link (not separable).
void make_data(std::size_t n, std::size_t dim, std::uint64_t seed, std::vector<float>& x,
               std::vector<double>& y) {
    constexpr std::size_t k = 32;
    Rng mix_rng(1234);
    std::vector<double> mix(k * dim);
    for (double& v : mix) {
        v = mix_rng.normal() * 0.4;
    }
    Rng rng(seed);
    x.assign(n * dim, 0.0f);
    y.assign(n, 0.0);
    std::vector<double> z(k);
    for (std::size_t i = 0; i < n; ++i) {
        for (double& v : z) {
            v = rng.normal();
        }
        const double logit = 1.2 * z[0] - 0.8 * z[1] + 0.5 * z[2] * z[3] - 0.4;
        y[i] = rng.uniform() < 1.0 / (1.0 + std::exp(-logit)) ? 1.0 : 0.0;
        for (std::size_t j = 0; j < dim; ++j) {
            double s = rng.normal() + 2.0;
            for (std::size_t f = 0; f < k; ++f) {
                s += z[f] * mix[f * dim + j];
            }
            x[i * dim + j] = static_cast<float>(s);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t n = 10000, dim = 768;
    std::string grid_text = "logspace:-6:5:45", sk_tol = "1e-8";
    int threads = 0, memory = 0;
    bool reference = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--n") {
            n = std::stoul(next());
        } else if (a == "--dim") {
            dim = std::stoul(next());
        } else if (a == "--grid") {
            grid_text = next();
        } else if (a == "--sk-tol") {
            sk_tol = next();
        } else if (a == "--threads") {
            threads = std::stoi(next());
        } else if (a == "--memory") {
            memory = std::stoi(next());
        } else if (a == "--no-reference") {
            reference = false;
        } else {
            std::fprintf(stderr, "bench_probes: unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    const std::size_t n_val = n / 5;
    std::vector<float> xtr, xva;
    std::vector<double> ytr, yva;
    make_data(n, dim, 1, xtr, ytr);
    make_data(n_val, dim, 2, xva, yva);

    probes::ProbeOptions o;
    o.c_grid = probes::parse_c_grid(grid_text);
    o.lbfgs.threads = threads;
    if (memory > 0) {
        o.lbfgs.memory = memory;
    }
    o.threads = threads;
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = probes::fit_binary_probe(xtr, ytr, xva, yva, xva, dim, o);
    const double ours =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int iters = 0, unconverged = 0;
    for (const auto& p : r.curve) {
        iters += p.iterations;
        unconverged += !p.converged;
    }
    std::printf(
        "radprobe linear probe: n=%zu d=%zu, %zu C values: %.2f s (%d L-BFGS iterations, "
        "%d C values not converged to max|grad F| <= 1e-10), chosen C=%.3g, val AUROC %.6f\n",
        n, dim, r.curve.size(), ours, iters, unconverged, r.chosen,
        eval::auroc(yva, r.test_scores));
    std::printf("radprobe iterations per C:");
    for (const auto& p : r.curve) {
        std::printf(" %d", p.iterations);
    }
    std::printf("\n");
    if (!reference) {
        return 0;
    }
    const fs::path dir = fs::temp_directory_path() / ("bench_probes_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    write_npy_f32(dir / "x_train.npy",
                  {static_cast<std::int64_t>(n), static_cast<std::int64_t>(dim)}, xtr.data());
    write_npy_f32(dir / "x_val.npy",
                  {static_cast<std::int64_t>(n_val), static_cast<std::int64_t>(dim)}, xva.data());
    auto write_y = [&](const fs::path& p, const std::vector<double>& y) {
        NpyArray a;
        a.dtype = DType::kFloat64;
        a.shape = {static_cast<std::int64_t>(y.size())};
        a.data.resize(y.size() * sizeof(double));
        std::memcpy(a.data.data(), y.data(), a.data.size());
        write_npy(p, a);
    };
    write_y(dir / "y_train.npy", ytr);
    write_y(dir / "y_val.npy", yva);
    std::string grid_list;
    for (double c : o.c_grid) {
        char buf[40];
        std::snprintf(buf, sizeof buf, "%s%.17g", grid_list.empty() ? "" : ",", c);
        grid_list += buf;
    }
    const std::string cmd = "/usr/bin/python3 '" RADPROBE_BENCH_DIR "/reference_timing.py' '" +
                            dir.string() + "' " + sk_tol + " 10000 " + grid_list + " > '" +
                            (dir / "ref.json").string() + "'";
    const int rc = std::system(cmd.c_str());
    std::string json;
    if (FILE* f = std::fopen((dir / "ref.json").c_str(), "r")) {
        char buf[65536];
        const std::size_t got = std::fread(buf, 1, sizeof buf, f);
        json.assign(buf, got);
        std::fclose(f);
    }
    fs::remove_all(dir);
    if (rc != 0 || json.empty()) {
        std::fprintf(stderr, "bench_probes: the scikit-learn reference failed (%d)\n", rc);
        return 1;
    }
    const auto pos = json.find("\"seconds\": ");
    const double sk = std::atof(json.c_str() + pos + 11);
    // Largest val AUROC difference over the grid.
    double max_diff = 0;
    std::size_t at = json.find("\"val_auroc\": [");
    at += 14;
    for (const auto& p : r.curve) {
        char* end = nullptr;
        const double v = std::strtod(json.c_str() + at, &end);
        max_diff = std::max(max_diff, std::abs(v - p.val_auroc));
        at = static_cast<std::size_t>(end - json.c_str()) + 2;
    }
    // scikit-learn's total iterations and the largest max|∇F| (scaled objective) it stopped at.
    auto list_after = [&](const char* key) {
        std::vector<double> v;
        std::size_t p = json.find(key);
        if (p == std::string::npos) {
            return v;
        }
        p = json.find('[', p) + 1;
        while (p < json.size() && json[p] != ']') {
            char* end = nullptr;
            v.push_back(std::strtod(json.c_str() + p, &end));
            p = static_cast<std::size_t>(end - json.c_str());
            while (p < json.size() && (json[p] == ',' || json[p] == ' ')) {
                ++p;
            }
        }
        return v;
    };
    double sk_iters = 0, sk_grad = 0;
    for (double v : list_after("\"n_iter\"")) {
        sk_iters += v;
    }
    for (double v : list_after("\"max_grad_scaled\"")) {
        sk_grad = std::max(sk_grad, v);
    }
    std::printf(
        "scikit-learn %s LogisticRegression(lbfgs, tol=%s, max_iter=10000) sweep: %.2f s (%.0f "
        "L-BFGS-B iterations; stopped at max|grad F| up to %.2e on radprobe's scaled objective)\n",
        "1.2", sk_tol.c_str(), sk, sk_iters, sk_grad);
    std::printf("ratio (scikit-learn / radprobe): %.2fx; max |Δ val AUROC| over the grid: %.2e\n",
                sk / ours, max_diff);
    std::printf("reference output: %s", json.c_str());
    return 0;
}
