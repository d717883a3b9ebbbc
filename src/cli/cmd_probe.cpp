// radprobe probe --store DIR --manifest M --label COL [--label COL2 ...]
//                --pool cls|mean|cls+mean|roi --probe linear|knn [--c-grid ...]
//                [--class-weight balanced] [--k 10,20,100,200] [--seed S] [--out DIR]
//   Trains on the manifest's train split, selects C (or k) on val, evaluates on test. Writes
//   OUT/predictions_<label>.csv (image,patient_id,label,score) and OUT/metrics.json; the metrics
//   JSON is also printed on stdout.

#include <cstdio>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::cli {

namespace {

struct ProbeArgs {
    std::string store, manifest, pool = "cls", probe = "linear", out;
    std::vector<std::string> labels;
    std::uint64_t seed = 0;
    std::size_t n_boot = 2000;
    int threads = 0;
    OptionFlags flags;
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
    a->flags.add(app, options::specs(probes::linear_probe_options()), "linear");
    a->flags.add(app, options::specs(probes::knn_probe_options()), "knn");
    add_run_flags(app, a->seed, a->threads, a->n_boot, "bootstrap seed (recorded)");
    app.add_option("--out", a->out, "output directory (predictions_<label>.csv, metrics.json)");
    return [a]() -> int {
        probes::ProbeRunOptions o;
        o.store = a->store;
        o.manifest = a->manifest;
        o.labels = a->labels;
        o.pool = a->pool;
        o.probe.kind = probes::parse_probe_kind(a->probe);
        o.probe = a->flags.apply(o.probe.kind == probes::ProbeKind::kLinear
                                     ? probes::linear_probe_options()
                                     : probes::knn_probe_options(),
                                 o.probe, "--probe " + a->probe);
        o.probe.lbfgs.threads = a->threads;
        o.probe.threads = a->threads;
        o.seed = a->seed;
        o.n_boot = a->n_boot;
        if (!a->out.empty()) {
            o.out = a->out;
        }
        const auto r = probes::run_probe(o);
        std::fwrite(r.metrics_json.data(), 1, r.metrics_json.size(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
