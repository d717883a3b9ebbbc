// radprobe probe --store DIR --manifest M --label COL [--label COL2 ...]
//                --pool cls|mean|cls+mean|roi --probe linear|knn [--c-grid ...]
//                [--class-weight balanced] [--k 10,20,100,200] [--seed S] [--out DIR]
//   Trains on the manifest's train split, selects C (or k) on val, evaluates on test. Writes
//   OUT/predictions_<label>.csv (image,patient_id,label,score) and OUT/metrics.json; the metrics
//   JSON is also printed on stdout.

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/heads/heads.hpp"

namespace radprobe::cli {

namespace {

struct ProbeArgs {
    std::string store, manifest, pool = "cls", probe = "linear", c_grid = "logspace:-6:5:45";
    std::string class_weight = "none", k_grid = "10,20,100,200", out;
    std::vector<std::string> labels;
    std::uint64_t seed = 0;
    std::size_t n_boot = 2000;
    double temperature = 0.07;
    double tol = 1e-10;
    int max_iter = 10000;
    int threads = 0;
};

}  // namespace

Runner setup_probe(CLI::App& app) {
    auto a = std::make_shared<ProbeArgs>();
    app.add_option("--store", a->store,
                   "embedding store (a directory written by radprobe extract, or its root when "
                   "it holds exactly one store)")
        ->required();
    app.add_option("--manifest", a->manifest, "manifest CSV with a split column")->required();
    app.add_option("--label", a->labels, "label column (repeat for several labels)")->required();
    app.add_option("--pool", a->pool, "pooling: cls | mean | cls+mean | roi")
        ->check(CLI::IsMember({"cls", "mean", "cls+mean", "roi"}))
        ->capture_default_str();
    app.add_option("--probe", a->probe, "linear | knn")
        ->check(CLI::IsMember({"linear", "knn"}))
        ->capture_default_str();
    app.add_option("--c-grid", a->c_grid,
                   "C values for the linear probe: a list (1e-3,0.1,10) or logspace:LO:HI:COUNT")
        ->capture_default_str();
    app.add_option("--class-weight", a->class_weight, "none | balanced (as scikit-learn)")
        ->check(CLI::IsMember({"none", "balanced"}))
        ->capture_default_str();
    app.add_option("--k", a->k_grid, "k values for the kNN probe")->capture_default_str();
    app.add_option("--temperature", a->temperature, "kNN vote temperature (> 0)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--tol", a->tol, "L-BFGS tolerance on max|gradient| of the scaled objective")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--max-iter", a->max_iter, "L-BFGS iterations per C")
        ->check(CLI::Range(1, 10000000))
        ->capture_default_str();
    app.add_option("--seed", a->seed, "bootstrap seed (recorded)")->capture_default_str();
    app.add_option("--n-boot", a->n_boot, "bootstrap replicates")
        ->check(CLI::Range(std::size_t{10}, std::size_t{1000000}))
        ->capture_default_str();
    app.add_option("--threads", a->threads, "threads (0 = all cores; same result for any value)")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--out", a->out, "output directory (predictions_<label>.csv, metrics.json)");
    return [a]() -> int {
        heads::ProbeRunOptions o;
        o.store = a->store;
        o.manifest = a->manifest;
        o.labels = a->labels;
        o.pool = a->pool;
        o.probe.kind = heads::parse_probe_kind(a->probe);
        o.probe.c_grid = heads::parse_c_grid(a->c_grid);
        o.probe.class_weight_balanced = a->class_weight == "balanced";
        o.probe.k_grid.clear();
        for (const auto& item : dataset::split_list(a->k_grid)) {
            char* end = nullptr;
            const long k = std::strtol(item.c_str(), &end, 10);
            RADPROBE_USAGE_CHECK(end && *end == '\0' && k >= 1 && k <= 100000, "--k '", a->k_grid,
                                 "': '", item, "' is not an integer in [1, 100000]");
            o.probe.k_grid.push_back(static_cast<int>(k));
        }
        RADPROBE_USAGE_CHECK(!o.probe.k_grid.empty(), "--k: no value given");
        o.probe.temperature = a->temperature;
        o.probe.lbfgs.tol = a->tol;
        o.probe.lbfgs.max_iter = a->max_iter;
        o.probe.lbfgs.threads = a->threads;
        o.probe.threads = a->threads;
        o.seed = a->seed;
        o.n_boot = a->n_boot;
        if (!a->out.empty()) {
            o.out = a->out;
        }
        const auto r = heads::run_probe(o);
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
