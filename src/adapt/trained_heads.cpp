// `radprobe train --head attention|mlp`: trained heads on cached features. Per label and per
// learning rate of the grid a head is trained (fit_head: AdamW, warm-up + cosine, clipping,
// early stopping on val AUROC); the LR with the best val AUROC scores the test split, and the
// test metrics come with DeLong and patient-clustered bootstrap CIs (evaluate_scores).

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <memory>

#include "head_modules.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/adapt/training.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/probes/probes.hpp"

namespace radprobe::adapt {

using probes::evaluate_scores;
using probes::label_json;
using probes::LabelSplit;
using probes::predictions_csv;
using probes::read_pool;
using probes::split_label_rows;

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

const char* head_kind_name(HeadKind kind) {
    return kind == HeadKind::kAttention ? "attention" : "mlp";
}

namespace {

void check_options(const TrainOptions& o) {
    RADPROBE_USAGE_CHECK(!o.labels.empty(), "train: at least one --label is needed");
    RADPROBE_USAGE_CHECK(!o.lr_grid.empty(), "train: the learning-rate grid is empty");
    for (double lr : o.lr_grid) {
        RADPROBE_USAGE_CHECK(std::isfinite(lr) && lr > 0, "--lr-grid: ", lr, " is not > 0");
    }
    RADPROBE_USAGE_CHECK(o.epochs >= 1 && o.batch >= 1 && o.patience >= 1 && o.warmup_epochs >= 0 &&
                             o.weight_decay >= 0 && o.clip_norm > 0,
                         "train: epochs, batch and patience >= 1, warm-up and weight decay >= 0, "
                         "clip > 0 are required");
}

// The pool the head reads: patch tokens (attention) or a pooled embedding (MLP).
std::string resolve_pool(const TrainOptions& o, bool attention) {
    const std::string pool = o.pool.empty() ? (attention ? "patches" : "cls") : o.pool;
    if (attention) {
        RADPROBE_USAGE_CHECK(pool == "patches", "--pool '", pool,
                             "': the attention head reads patch tokens (--pool patches)");
    } else {
        RADPROBE_USAGE_CHECK(pool == "cls" || pool == "mean" || pool == "cls+mean" || pool == "roi",
                             "--pool '", pool,
                             "': the MLP head reads pooled embeddings (cls, mean, cls+mean, roi)");
    }
    return pool;
}

// The feature tensor: N×G×W tokens (attention) or N×D embeddings (mlp), CPU float32.
struct FeatureTable {
    features::EmbeddingTable table;  // image ids and ROI flags (the values are in `all`)
    torch::Tensor all;
    json grid_json;
};

// Sets out.tokens and out.dim.
FeatureTable load_features(TrainResult& out, bool attention) {
    FeatureTable f;
    if (attention) {
        RADPROBE_CHECK(fs::exists(out.store_dir / "patches.npy"), out.store_dir.string(),
                       ": the store has no patches.npy (extract with --pool patches)");
        const auto info = features::read_patch_grid_info(out.store_dir);
        f.table = features::read_embeddings(out.store_dir, "patches");
        const auto layers = static_cast<std::int64_t>(info.layers.size());
        const auto grid = info.grid_h * info.grid_w;
        RADPROBE_CHECK(layers >= 1 && grid >= 1 && info.dim >= 1 && f.table.dim == info.row_width(),
                       out.store_dir.string(), ": patches.npy rows have ", f.table.dim,
                       " values but patch_grid.json describes ", info.row_width());
        const auto n = static_cast<std::int64_t>(f.table.image_ids.size());
        f.all =
            torch::from_blob(f.table.values.data(), {n, layers, grid, info.dim}, torch::kFloat32)
                .permute({0, 2, 1, 3})
                .reshape({n, grid, layers * info.dim})
                .clone();
        out.tokens = static_cast<std::size_t>(grid);
        out.dim = static_cast<std::size_t>(layers * info.dim);
        f.grid_json = {{"grid_h", info.grid_h},
                       {"grid_w", info.grid_w},
                       {"dim", info.dim},
                       {"layers", info.layers}};
    } else {
        f.table = read_pool(out.store_dir, out.pool);
        const auto n = static_cast<std::int64_t>(f.table.image_ids.size());
        f.all = torch::from_blob(f.table.values.data(), {n, f.table.dim}, torch::kFloat32).clone();
        out.tokens = 1;
        out.dim = static_cast<std::size_t>(f.table.dim);
    }
    RADPROBE_CHECK(out.dim > 0 && !f.table.image_ids.empty(), out.store_dir.string(),
                   ": empty embeddings");
    f.table.values = {};
    return f;
}

struct SplitFeatures {
    FeatureFn train, val, test;
};

SplitFeatures split_features(const torch::Tensor& all, const probes::LabelSplits& splits,
                             bool attention, const torch::Device& device) {
    auto take = [&](const LabelSplit& s) {
        return all.index_select(0, torch::tensor(s.rows, torch::kLong));
    };
    torch::Tensor xtr = take(splits.train), xva = take(splits.val), xte = take(splits.test);
    if (!attention) {
        // Standardise with train statistics (population std; constant features → scale 1).
        const auto mean = xtr.mean(0, true);
        auto scale = xtr.std(0, /*unbiased=*/false, true);
        scale = torch::where(scale > 0, scale, torch::ones_like(scale));
        xtr = (xtr - mean) / scale;
        xva = (xva - mean) / scale;
        xte = (xte - mean) / scale;
    }
    SplitFeatures f;
    f.train = tensor_features(xtr, device);
    f.val = tensor_features(xva, device);
    f.test = tensor_features(xte, device);
    return f;
}

// The head one fit trains: its kind, input width and depth.
struct HeadShape {
    bool attention = false;
    std::int64_t in_dim = 0;
    int depth = 0;
};

std::shared_ptr<HeadModule> make_head(const TrainOptions& o, const HeadShape& shape) {
    if (shape.attention) {
        AttentionHeadConfig c;
        c.in_dim = shape.in_dim;
        c.dim = o.dim;
        c.heads = o.heads;
        c.depth = shape.depth;
        c.queries = o.queries;
        c.dropout = o.dropout;
        return std::make_shared<AttentionPoolHead>(c);
    }
    MlpHeadConfig c;
    c.in_dim = shape.in_dim;
    c.hidden = o.dim > 0 ? o.dim : 256;
    c.depth = shape.depth;
    c.dropout = o.dropout;
    return std::make_shared<MlpHead>(c);
}

HeadFitOptions fit_options(const TrainOptions& o, double lr, const torch::Device& device) {
    HeadFitOptions fo;
    fo.lr = lr;
    fo.weight_decay = o.weight_decay;
    fo.epochs = o.epochs;
    fo.batch = o.batch;
    fo.warmup_epochs = o.warmup_epochs;
    fo.clip_norm = o.clip_norm;
    fo.patience = o.patience;
    fo.seed = o.seed;
    fo.device = device;
    fo.balanced_loss = o.balanced;
    return fo;
}

// One head per LR of the grid; the test scores of the LR with the best val AUROC.
struct LrSearch {
    std::vector<CurvePoint> curve;
    std::vector<double> best_scores;
    double best_val = -1, chosen = 0;
    std::vector<int> best_epochs;
    std::vector<std::vector<double>> train_losses;
    std::string ran_on;  ///< where the heads' weights were while they trained
};

LrSearch search_lr(const TrainOptions& o, const std::string& label,
                   const probes::LabelSplits& splits, const SplitFeatures& f,
                   const HeadShape& shape, const torch::Device& device, Progress* progress) {
    LrSearch s;
    for (double lr : o.lr_grid) {
        training::seed_torch(o.seed);
        std::shared_ptr<HeadModule> head = make_head(o, shape);
        head->to(device);
        HeadFit fit;
        try {
            fit = fit_head(*head, f.train, splits.train.y, f.val, splits.val.y,
                           fit_options(o, lr, device));
        } catch (const InputError& e) {
            throw InputError(str_cat("label '", label, "': ", e.what()));
        }
        s.ran_on = head->parameters().front().device().str();
        s.curve.push_back({lr, fit.best_val_auroc, fit.best_epoch, true});
        s.best_epochs.push_back(fit.best_epoch);
        s.train_losses.push_back(fit.train_loss);
        if (fit.best_val_auroc > s.best_val) {
            s.best_val = fit.best_val_auroc;
            s.chosen = lr;
            s.best_scores = predict_head(
                *head, f.test, static_cast<std::int64_t>(splits.test.y.size()), o.batch, device);
        }
        if (progress) {
            progress->advance();
        }
    }
    return s;
}

LabelResult score_label(const TrainOptions& o, const std::string& label,
                        const dataset::Manifest& manifest, const probes::LabelSplits& splits,
                        LrSearch& search) {
    std::vector<std::string> images, patients;
    for (std::size_t r : splits.test.record) {
        images.push_back(manifest.record(r).id);
        patients.push_back(manifest.record(r).patient_id);
    }
    LabelResult lr = evaluate_scores(label, std::move(images), std::move(patients), splits.test.y,
                                     std::move(search.best_scores), o.seed, o.n_boot, o.level);
    lr.n_train = splits.train.y.size();
    lr.n_val = splits.val.y.size();
    lr.chosen = search.chosen;
    lr.curve = search.curve;
    return lr;
}

json label_entry(const TrainOptions& o, const LabelResult& lr, const LrSearch& search) {
    json lj = label_json(lr, "lr", o.n_boot, o.level);
    for (std::size_t k = 0; k < search.best_epochs.size(); ++k) {
        lj["val_curve"][k]["best_epoch"] = search.best_epochs[k];
        lj["val_curve"][k]["train_loss"] = search.train_losses[k];  // mean per epoch (diagnostics)
    }
    return lj;
}

std::string metrics_json(const TrainOptions& o, const TrainResult& out, const HeadShape& shape,
                         const json& grid_json, int threads, const json& labels_json) {
    json j;
    j["command"] = "train";
    j["head"] = head_kind_name(o.head);
    j["pool"] = out.pool;
    j["store"] = out.store_dir.string();
    j["manifest"] = o.manifest.string();
    j["tokens"] = out.tokens;
    j["dim"] = out.dim;
    if (shape.attention) {
        j["patch_grid"] = grid_json;
        j["head_config"] = {{"dim", o.dim > 0 ? o.dim : static_cast<int>(out.dim)},
                            {"heads", o.heads},
                            {"depth", shape.depth},
                            {"queries", o.queries},
                            {"dropout", o.dropout}};
    } else {
        j["head_config"] = {{"hidden", o.dim > 0 ? o.dim : 256},
                            {"depth", shape.depth},
                            {"dropout", o.dropout},
                            {"standardised", true}};
    }
    j["optimizer"] = "adamw";
    j["schedule"] = "warmup+cosine";
    j["lr_grid"] = o.lr_grid;
    j["epochs"] = o.epochs;
    j["batch"] = o.batch;
    j["weight_decay"] = o.weight_decay;
    j["warmup_epochs"] = o.warmup_epochs;
    j["clip_norm"] = o.clip_norm;
    j["patience"] = o.patience;
    j["class_weight"] = o.balanced ? "balanced" : "none";
    j["device"] = o.device;
    j["ran_on"] = out.ran_on;  // the device the weights were on, not the one asked for
    j["seed"] = o.seed;
    j["threads"] = threads;
    j["labels"] = labels_json;
    return j.dump(2) + "\n";
}

}  // namespace

TrainResult run_train(const TrainOptions& o) {
    const auto start = std::chrono::steady_clock::now();
    check_options(o);
    TrainResult out;
    out.head = o.head;
    out.seed = o.seed;
    out.device = o.device;
    const torch::Device device = training::parse_device(o.device);
    const int threads = o.threads > 0 ? o.threads : available_threads();
    torch::set_num_threads(threads);
    out.store_dir = features::resolve_store_dir(o.store);
    const bool attention = o.head == HeadKind::kAttention;
    out.pool = resolve_pool(o, attention);

    dataset::ManifestOptions mo;
    mo.labels = o.labels;
    const auto manifest = dataset::Manifest::load(o.manifest, mo);
    manifest.require_valid();
    RADPROBE_CHECK(manifest.has_split_column(), o.manifest.string(),
                   ": no 'split' column (run radprobe split first)");
    const FeatureTable feats = load_features(out, attention);

    std::unique_ptr<Progress> progress;
    if (o.progress) {
        progress = std::make_unique<Progress>("train", o.labels.size() * o.lr_grid.size(), "fits");
    }
    const HeadShape shape{attention, static_cast<std::int64_t>(out.dim),
                          o.depth >= 0 ? o.depth : (attention ? 0 : 1)};
    json labels_json = json::array();
    for (const auto& label : o.labels) {
        const auto splits =
            split_label_rows(feats.table, out.pool, out.store_dir, manifest, o.manifest, label);
        const SplitFeatures f = split_features(feats.all, splits, attention, device);
        LrSearch search = search_lr(o, label, splits, f, shape, device, progress.get());
        out.ran_on = search.ran_on;
        LabelResult lr = score_label(o, label, manifest, splits, search);
        labels_json.push_back(label_entry(o, lr, search));
        out.labels.push_back(std::move(lr));
    }
    if (progress) {
        progress->finish();
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.metrics_json = metrics_json(o, out, shape, feats.grid_json, threads, labels_json);
    if (o.out) {
        for (const auto& lr : out.labels) {
            write_file_atomic(*o.out / ("predictions_" + lr.label + ".csv"), predictions_csv(lr));
        }
        write_file_atomic(*o.out / "metrics.json", out.metrics_json);
    }
    return out;
}

}  // namespace radprobe::adapt
