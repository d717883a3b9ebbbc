// bench_eval: the eval component's hot paths against the references a statistician would use,
// timed in the same run on the same data.
//   DeLong AUC + variance + CI on n = 10^6         vs pROC ci.auc(method = "delong")
//   2,000-replicate stratified bootstrap, n = 10^5  vs pROC ci.auc(method = "bootstrap") and a
//                                                      scikit-learn roc_auc_score loop
// The references are slow, so they run --ref-reps replicates (default 200) and are compared
// per replicate (their cost is linear in replicates). Usage:
//   bench_eval [--ref-reps N] [--no-reference] [--threads N]

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace eval = radprobe::eval;

struct Data {
    std::vector<double> labels, scores, scores2;
};

Data binormal(std::size_t n, std::uint64_t seed) {
    radprobe::Rng rng(seed);
    Data d;
    for (std::size_t i = 0; i < n; ++i) {
        const double y = rng.bernoulli(0.3) ? 1.0 : 0.0;
        const double s = y + rng.normal();
        d.labels.push_back(y);
        // Rounded to 4 decimals: realistic ties, and the CSV the references read is exact.
        d.scores.push_back(std::round(s * 1e4) / 1e4);
        d.scores2.push_back(std::round((0.7 * s + 0.6 * rng.normal()) * 1e4) / 1e4);
    }
    return d;
}

template <typename Fn>
double median_seconds(int runs, Fn&& fn) {
    std::vector<double> t;
    for (int r = 0; r < runs; ++r) {
        const auto t0 = Clock::now();
        fn();
        t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

void write_csv(const std::filesystem::path& path, const Data& d) {
    std::ofstream f(path);
    f << "label,score\n";
    char buf[64];
    for (std::size_t i = 0; i < d.labels.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%d,%.4f\n", static_cast<int>(d.labels[i]), d.scores[i]);
        f << buf;
    }
}

/// Runs a command and parses "name seconds replicates" lines.
std::map<std::string, std::pair<double, double>> run_reference(const std::string& cmd) {
    std::map<std::string, std::pair<double, double>> out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) {
        return out;
    }
    char line[512];
    while (std::fgets(line, sizeof line, p)) {
        std::istringstream is(line);
        std::string name;
        double seconds = 0, reps = 0;
        if (is >> name >> seconds >> reps) {
            out[name] = {seconds, reps};
        }
    }
    const int status = pclose(p);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "bench_eval: reference command failed: %s\n", cmd.c_str());
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    int ref_reps = 200;
    bool reference = true;
    int threads = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--ref-reps" && i + 1 < argc) {
            ref_reps = std::atoi(argv[++i]);
        } else if (a == "--no-reference") {
            reference = false;
        } else if (a == "--threads" && i + 1 < argc) {
            threads = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr,
                         "usage: bench_eval [--ref-reps N] [--no-reference] [--threads N]\n");
            return 2;
        }
    }

    const Data big = binormal(1000000, 1);
    const Data mid = binormal(100000, 2);

    double auc = 0;
    const double t_delong =
        median_seconds(5, [&] { auc = eval::delong_auc(big.labels, big.scores).auc; });
    const double t_paired =
        median_seconds(3, [&] { eval::delong_paired_test(big.labels, big.scores, big.scores2); });
    eval::BootstrapOptions o;
    o.replicates = 2000;
    o.seed = 1;
    o.threads = threads;
    eval::BootstrapCi ci;
    const double t_boot =
        median_seconds(3, [&] { ci = eval::bootstrap_auroc(mid.labels, mid.scores, o); });
    o.threads = 1;
    const double t_boot1 =
        median_seconds(1, [&] { eval::bootstrap_auroc(mid.labels, mid.scores, o); });
    o.threads = threads;
    o.method = eval::CiMethod::kBca;
    const double t_bca =
        median_seconds(1, [&] { eval::bootstrap_auroc(mid.labels, mid.scores, o); });

    std::printf("radprobe eval benchmark (threads: %d = %s)\n", threads,
                threads <= 0 ? "all available" : "as given");
    std::printf("  DeLong AUC+var+CI, n=1e6:                 %8.3f s  (auc %.4f)\n", t_delong, auc);
    std::printf("  paired DeLong test, n=1e6, 2 scores:      %8.3f s\n", t_paired);
    std::printf("  bootstrap 2000 reps, n=1e5, percentile:   %8.3f s  (ci %.4f-%.4f)\n", t_boot,
                ci.ci_lo, ci.ci_hi);
    std::printf("  bootstrap 2000 reps, n=1e5, 1 thread:     %8.3f s\n", t_boot1);
    std::printf("  bootstrap 2000 reps, n=1e5, BCa:          %8.3f s\n", t_bca);

    if (!reference) {
        return 0;
    }
    const auto tmp = std::filesystem::temp_directory_path() / "radprobe_bench_eval";
    std::filesystem::create_directories(tmp);
    write_csv(tmp / "large.csv", big);
    write_csv(tmp / "boot.csv", mid);
    const std::string dir = RADPROBE_BENCH_DIR;
    auto r =
        run_reference("Rscript '" + dir + "/reference_timing.R' '" + (tmp / "large.csv").string() +
                      "' '" + (tmp / "boot.csv").string() + "' " + std::to_string(ref_reps));
    const auto py = run_reference("/usr/bin/python3 '" + dir + "/reference_timing.py' '" +
                                  (tmp / "boot.csv").string() + "' " + std::to_string(ref_reps));
    r.insert(py.begin(), py.end());
    std::filesystem::remove_all(tmp);

    std::printf("references (same run, same data):\n");
    if (r.count("proc_delong_1e6")) {
        const double t = r["proc_delong_1e6"].first;
        std::printf(
            "  pROC roc()+ci.auc(delong), n=1e6:         %8.3f s  -> radprobe %.1fx faster\n", t,
            t / t_delong);
    }
    for (const char* name : {"proc_bootstrap_1e5", "sklearn_bootstrap_1e5"}) {
        if (!r.count(name)) {
            std::printf("  %s: not available\n", name);
            continue;
        }
        const auto [t, reps] = r[name];
        const double per_rep = t / reps;
        std::printf(
            "  %-22s %4.0f reps:        %8.3f s  (%.2f ms/rep; 2000 reps ~ %.1f s) -> "
            "radprobe %.0fx faster per replicate\n",
            name, reps, t, 1e3 * per_rep, per_rep * 2000, per_rep * 2000 / t_boot);
    }
    return 0;
}
