// Probes on cached embeddings: one binary problem (fit_binary_probe) and the `radprobe probe`
// pipeline (store + manifest → predictions and metrics with CIs). No LibTorch in this file.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "knn_internal.hpp"
#include "logistic_internal.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/probes/probes.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::probes {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

ProbeKind parse_probe_kind(const std::string& text) {
    if (text == "linear") {
        return ProbeKind::kLinear;
    }
    if (text == "knn") {
        return ProbeKind::kKnn;
    }
    throw UsageError(str_cat("--probe '", text, "': expected linear or knn"));
}

const char* probe_kind_name(ProbeKind kind) {
    return kind == ProbeKind::kLinear ? "linear" : "knn";
}

namespace {

void require_two_classes(std::span<const double> y, const char* split) {
    std::size_t pos = 0;
    for (double v : y) {
        pos += v == 1.0;
    }
    RADPROBE_CHECK(pos > 0 && pos < y.size(), "probe: the ", split, " split has ", pos,
                   " positives of ", y.size(), " rows; both classes are needed");
}

}  // namespace

BinaryProbeResult fit_binary_probe(std::span<const float> train_x, std::span<const double> train_y,
                                   std::span<const float> val_x, std::span<const double> val_y,
                                   std::span<const float> test_x, std::size_t dim,
                                   const ProbeOptions& options) {
    RADPROBE_ASSERT(dim > 0 && train_x.size() == train_y.size() * dim &&
                    val_x.size() == val_y.size() * dim && test_x.size() % dim == 0);
    require_two_classes(train_y, "train");
    require_two_classes(val_y, "val");
    BinaryProbeResult result;
    if (options.kind == ProbeKind::kLinear) {
        RADPROBE_USAGE_CHECK(!options.c_grid.empty(), "probe: the C grid is empty");
        std::vector<double> c_grid = options.c_grid;
        std::sort(c_grid.begin(), c_grid.end());
        // The rows are read in place as float32 and standardised inside each pass (train) or
        // when scored (val, test): no N×D float64 copies to allocate and fault in.
        result.standardizer = fit_standardizer(train_x, dim);
        std::vector<double> weights;
        if (options.class_weight_balanced) {
            weights = balanced_weights(train_y);
        }
        LogisticProblem problem(train_x, dim, result.standardizer, train_y, weights,
                                options.lbfgs.threads);
        // Strong to weak regularisation, each C warm-started at the previous optimum (the
        // optimum of every C is unique, so this changes only the iteration count).
        std::vector<double> warm;
        double best = -1;
        for (double c : c_grid) {
            LogisticModel m = problem.fit(c, options.lbfgs, warm);
            warm = m.coef;
            warm.push_back(m.intercept);
            const double auc = eval::auroc(val_y, decision_raw(m, result.standardizer, val_x, dim));
            result.curve.push_back({c, auc, m.iterations, m.converged});
            if (auc > best) {
                best = auc;
                result.chosen = c;
                result.model = std::move(m);
            }
        }
        result.test_scores = decision_raw(*result.model, result.standardizer, test_x, dim);
    } else {
        RADPROBE_USAGE_CHECK(!options.k_grid.empty(), "probe: the k grid is empty");
        std::vector<int> k_grid = options.k_grid;
        std::sort(k_grid.begin(), k_grid.end());
        const int max_k = k_grid.back();
        const auto nb_val = knn_neighbours(train_x, val_x, dim, max_k, options.threads);
        double best = -1;
        for (int k : k_grid) {
            const double auc =
                eval::auroc(val_y, knn_vote(nb_val, train_y, k, options.temperature));
            result.curve.push_back({static_cast<double>(k), auc, 0, true});
            if (auc > best) {
                best = auc;
                result.chosen = k;
            }
        }
        const auto nb_test =
            knn_neighbours(train_x, test_x, dim, static_cast<int>(result.chosen), options.threads);
        result.test_scores =
            knn_vote(nb_test, train_y, static_cast<int>(result.chosen), options.temperature);
    }
    return result;
}


LabelSplits split_label_rows(const features::EmbeddingTable& table, const std::string& pool,
                             const fs::path& store_dir, const dataset::Manifest& manifest,
                             const fs::path& manifest_path, const std::string& label) {
    const auto values = manifest.label_vector(label);
    LabelSplits out;
    for (std::size_t row = 0; row < table.image_ids.size(); ++row) {
        const auto& id = table.image_ids[row];
        const auto rec = manifest.find(id);
        RADPROBE_CHECK(rec.has_value(), store_dir.string(), "/index.csv: image '", id,
                       "' is not in ", manifest_path.string(),
                       " (store extracted from another manifest?)");
        if (pool == "roi" && !table.roi_valid[row]) {
            continue;
        }
        const auto v = values[*rec];
        if (v == dataset::kLabelUnknown) {
            continue;
        }
        LabelSplit* dst = nullptr;
        switch (manifest.record(*rec).split) {
            case dataset::Split::kTrain:
                dst = &out.train;
                break;
            case dataset::Split::kVal:
                dst = &out.val;
                break;
            case dataset::Split::kTest:
                dst = &out.test;
                break;
            case dataset::Split::kNone:
                break;
        }
        if (dst) {
            dst->rows.push_back(static_cast<std::int64_t>(row));
            dst->y.push_back(v == 1 ? 1.0 : 0.0);
            dst->record.push_back(*rec);
        }
    }
    for (const auto& [name, split] :
         {std::pair<const char*, const LabelSplit*>{"train", &out.train},
          {"val", &out.val},
          {"test", &out.test}}) {
        RADPROBE_CHECK(!split->y.empty(), manifest_path.string(), ": column 'split': the ", name,
                       " split has no image with a known '", label,
                       "' label and an embedding in the store");
    }
    return out;
}

features::EmbeddingTable read_pool(const fs::path& dir, const std::string& pool) {
    if (pool == "cls+mean" && !fs::exists(dir / "cls+mean.npy") && fs::exists(dir / "cls.npy") &&
        fs::exists(dir / "mean.npy")) {
        auto cls = features::read_embeddings(dir, "cls");
        const auto mean = features::read_embeddings(dir, "mean");
        RADPROBE_CHECK(cls.image_ids == mean.image_ids, dir.string(),
                       ": cls.npy and mean.npy rows differ");
        const std::size_t n = cls.image_ids.size(), a = cls.dim, b = mean.dim;
        std::vector<float> both(n * (a + b));
        for (std::size_t i = 0; i < n; ++i) {
            std::copy_n(&cls.values[i * a], a, &both[i * (a + b)]);
            std::copy_n(&mean.values[i * b], b, &both[i * (a + b) + a]);
        }
        cls.values = std::move(both);
        cls.dim = static_cast<std::int64_t>(a + b);
        return cls;
    }
    RADPROBE_CHECK(fs::exists(dir / (pool + ".npy")), dir.string(), ": the store has no ", pool,
                   ".npy (extract with --pool ", pool, ")");
    return features::read_embeddings(dir, pool);
}

namespace {

struct SplitRows {
    std::vector<float> x;
    std::vector<double> y;
    std::vector<std::size_t> record;  // manifest record index
};

}  // namespace

LabelResult evaluate_scores(const std::string& label, std::vector<std::string> images,
                            std::vector<std::string> patients, std::vector<double> labels,
                            std::vector<double> scores, std::uint64_t seed, std::size_t n_boot,
                            double level) {
    LabelResult r;
    r.label = label;
    r.n_test = labels.size();
    const auto counts = eval::count_classes(labels);
    r.test_positives = counts.positives;
    RADPROBE_CHECK(counts.positives >= 2 && counts.negatives >= 2, "label '", label,
                   "': the test split has ", counts.positives, " positives and ", counts.negatives,
                   " negatives; at least 2 of each are needed for a CI");
    const auto d = eval::delong_auc(labels, scores, level);
    r.auroc = d.auc;
    r.delong_lo = d.ci_lo;
    r.delong_hi = d.ci_hi;
    eval::BootstrapOptions bo;
    bo.replicates = n_boot;
    bo.seed = seed;
    bo.level = level;
    const auto clusters = eval::cluster_ids(patients);
    const auto b = eval::bootstrap_auroc(labels, scores, bo, clusters);
    r.bootstrap_lo = b.ci_lo;
    r.bootstrap_hi = b.ci_hi;
    r.bootstrap_valid = b.valid;
    r.auprc = eval::average_precision(labels, scores);
    r.test_images = std::move(images);
    r.test_patients = std::move(patients);
    r.test_labels = std::move(labels);
    r.test_scores = std::move(scores);
    return r;
}

std::string predictions_csv(const LabelResult& r) {
    std::string csv = "image,patient_id,label,score\n";
    char buf[64];
    for (std::size_t i = 0; i < r.test_scores.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%.17g", r.test_scores[i]);
        csv += csv_line({r.test_images[i], r.test_patients[i], r.test_labels[i] == 1.0 ? "1" : "0",
                         buf}) +
               "\n";
    }
    return csv;
}

json label_json(const LabelResult& r, const char* param_name, std::size_t n_boot, double level) {
    json j;
    j["label"] = r.label;
    j["n_train"] = r.n_train;
    j["n_val"] = r.n_val;
    j["n_test"] = r.n_test;
    j["test_positives"] = r.test_positives;
    j[std::string("chosen_") + param_name] = r.chosen;
    json curve = json::array();
    for (const auto& p : r.curve) {
        json c;
        c[param_name] = p.param;
        c["val_auroc"] = p.val_auroc;
        if (std::string(param_name) == "c") {
            c["iterations"] = p.iterations;
            c["converged"] = p.converged;
        }
        curve.push_back(c);
    }
    j["val_curve"] = curve;
    j["auroc"] = r.auroc;
    j["level"] = level;
    j["ci_delong"] = {r.delong_lo, r.delong_hi};
    j["ci_bootstrap"] = {r.bootstrap_lo, r.bootstrap_hi};
    j["bootstrap"] = {{"replicates", n_boot},
                      {"valid", r.bootstrap_valid},
                      {"cluster", "patient_id"},
                      {"method", "percentile"}};
    j["auprc"] = r.auprc;
    return j;
}

ProbeRunResult run_probe(const ProbeRunOptions& options) {
    RADPROBE_USAGE_CHECK(!options.labels.empty(), "probe: at least one --label is needed");
    RADPROBE_USAGE_CHECK(options.pool == "cls" || options.pool == "mean" ||
                             options.pool == "cls+mean" || options.pool == "roi",
                         "--pool '", options.pool, "': expected cls, mean, cls+mean or roi");
    ProbeRunResult out;
    out.store_dir = features::resolve_store_dir(options.store);
    out.pool = options.pool;
    out.kind = options.probe.kind;
    out.seed = options.seed;

    dataset::ManifestOptions mo;
    mo.labels = options.labels;
    const auto manifest = dataset::Manifest::load(options.manifest, mo);
    manifest.require_valid();
    RADPROBE_CHECK(manifest.has_split_column(), options.manifest.string(),
                   ": no 'split' column (run radprobe split first)");

    const auto table = read_pool(out.store_dir, options.pool);
    out.dim = static_cast<std::size_t>(table.dim);
    const std::size_t dim = out.dim;
    RADPROBE_CHECK(dim > 0, out.store_dir.string(), ": empty embeddings");

    // Feature rows of one split, in store order.
    auto gather = [&](const LabelSplit& split) {
        SplitRows r;
        r.x.reserve(split.rows.size() * dim);
        for (auto row : split.rows) {
            const auto at = static_cast<std::size_t>(row) * dim;
            r.x.insert(r.x.end(), &table.values[at], &table.values[at + dim]);
        }
        r.y = split.y;
        r.record = split.record;
        return r;
    };
    json labels_json = json::array();
    for (const auto& label : options.labels) {
        const auto splits =
            split_label_rows(table, options.pool, out.store_dir, manifest, options.manifest, label);
        SplitRows train = gather(splits.train), val = gather(splits.val),
                  test = gather(splits.test);
        std::string where = str_cat("label '", label, "'");
        BinaryProbeResult fit;
        try {
            fit = fit_binary_probe(train.x, train.y, val.x, val.y, test.x, dim, options.probe);
        } catch (const InputError& e) {
            throw InputError(str_cat(where, ": ", e.what()));
        }
        std::vector<std::string> images, patients;
        for (std::size_t r : test.record) {
            images.push_back(manifest.record(r).id);
            patients.push_back(manifest.record(r).patient_id);
        }
        LabelResult lr =
            evaluate_scores(label, std::move(images), std::move(patients), test.y, fit.test_scores,
                            options.seed, options.n_boot, options.level);
        lr.n_train = train.y.size();
        lr.n_val = val.y.size();
        lr.chosen = fit.chosen;
        lr.curve = fit.curve;
        labels_json.push_back(label_json(lr, options.probe.kind == ProbeKind::kLinear ? "c" : "k",
                                         options.n_boot, options.level));
        out.labels.push_back(std::move(lr));
    }

    json j;
    j["command"] = "probe";
    j["probe"] = probe_kind_name(options.probe.kind);
    j["pool"] = options.pool;
    j["store"] = out.store_dir.string();
    j["manifest"] = options.manifest.string();
    j["dim"] = dim;
    j["seed"] = options.seed;
    if (options.probe.kind == ProbeKind::kLinear) {
        j["c_grid"] = options.probe.c_grid;
        j["class_weight"] = options.probe.class_weight_balanced ? "balanced" : "none";
        j["standardised"] = true;
        j["tol"] = options.probe.lbfgs.tol;
        j["max_iter"] = options.probe.lbfgs.max_iter;
    } else {
        j["k_grid"] = options.probe.k_grid;
        j["temperature"] = options.probe.temperature;
        j["similarity"] = "cosine";
    }
    j["labels"] = labels_json;
    out.metrics_json = j.dump(2) + "\n";
    if (options.out) {
        for (const auto& lr : out.labels) {
            write_file_atomic(*options.out / ("predictions_" + lr.label + ".csv"),
                              predictions_csv(lr));
        }
        write_file_atomic(*options.out / "metrics.json", out.metrics_json);
    }
    return out;
}

}  // namespace radprobe::probes
