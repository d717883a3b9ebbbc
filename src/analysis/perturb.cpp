// `radprobe analyze perturb`: synthetic small signals inserted into base images; per cell and
// pooling, a cross-validated probe separates perturbed from clean images.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>

#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/imaging/decode.hpp"

namespace radprobe::analysis {
namespace fs = std::filesystem;

namespace {

struct BaseImage {
    std::size_t record = 0;
    std::string id;
    std::string group;
    imaging::Image image;
    std::vector<std::size_t> candidates;  // pixel indices where a centre may go
};

// Centre of a perturbation of `size` pixels: a region pixel whose size × size square lies in
// the image (falls back to any such pixel when the region offers none).
std::pair<double, double> draw_centre(const BaseImage& b, double size, Rng& rng) {
    const int rows = b.image.rows, cols = b.image.cols;
    const double half = size / 2.0;
    auto fits = [&](double cx, double cy) {
        return cx - half >= 0 && cy - half >= 0 && cx + half <= cols && cy + half <= rows;
    };
    for (int attempt = 0; attempt < 200 && !b.candidates.empty(); ++attempt) {
        const std::size_t k = b.candidates[rng.below(b.candidates.size())];
        const double cx = static_cast<double>(k % cols) + rng.uniform();
        const double cy = static_cast<double>(k / cols) + rng.uniform();
        if (fits(cx, cy)) {
            return {cx, cy};
        }
    }
    const double lo_x = std::min(half, cols / 2.0), lo_y = std::min(half, rows / 2.0);
    return {rng.uniform(lo_x, cols - lo_x), rng.uniform(lo_y, rows - lo_y)};
}

struct Cell {
    PerturbKind kind;
    SizeSpec size;
    double contrast;
    std::string key() const { return std::string(perturb_kind_name(kind)) + " " + size.text(); }
    std::string level() const {
        char buf[48];
        std::snprintf(buf, sizeof buf, "contrast %g", contrast);
        return buf;
    }
};

}  // namespace

std::vector<AnalysisTableRow> probe_cell(
    const std::vector<std::pair<std::string, std::vector<float>>>& features, std::size_t dim,
    std::span<const double> labels, const std::vector<std::string>& groups,
    const std::string& reference, const CvOptions& cv, std::uint64_t seed,
    const std::string& row_key, const std::string& row_key2, int threads,
    std::vector<std::vector<double>>* scores_out) {
    RADPROBE_ASSERT(groups.size() == labels.size());
    const std::vector<int> folds = grouped_folds(groups, {}, cv.folds, seed);
    const std::vector<std::size_t> clusters = eval::cluster_ids(groups);
    std::vector<AnalysisTableRow> rows;
    std::map<std::string, std::vector<double>> scores;
    for (const auto& [pool, x] : features) {
        RADPROBE_ASSERT(x.size() == labels.size() * dim);
        scores[pool] = cross_validated_scores(x, dim, labels, folds, cv.c_grid, threads);
        rows.push_back(detail::auroc_row("perturb", row_key, row_key2, pool, labels, scores[pool],
                                         clusters, cv.n_boot, cv.level, seed));
        if (scores_out) {
            scores_out->push_back(scores[pool]);
        }
    }
    RADPROBE_ASSERT(scores.count("roi") && scores.count(reference));
    rows.push_back(detail::auroc_difference_row("perturb", row_key, row_key2, "roi − " + reference,
                                                labels, scores["roi"], scores[reference], clusters,
                                                cv.n_boot, cv.level, seed));
    return rows;
}

AnalysisResult run_perturb(const PerturbOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    RADPROBE_USAGE_CHECK(!o.kinds.empty(), "--kinds: no perturbation kind given");
    RADPROBE_USAGE_CHECK(!o.sizes.empty(), "--sizes: no size given");
    RADPROBE_USAGE_CHECK(!o.contrasts.empty(), "--contrasts: no contrast given");
    for (double c : o.contrasts) {
        RADPROBE_USAGE_CHECK(std::isfinite(c) && c != 0.0 && std::abs(c) <= 1.0, "--contrasts: ", c,
                             " is not in [-1, 1] \\ {0}");
    }
    RADPROBE_USAGE_CHECK(o.location == "lungs" || o.location == "center", "--location: '",
                         o.location, "' is not lungs or center");
    RADPROBE_USAGE_CHECK(o.cv.n_boot >= 100, "--n-boot must be >= 100, got ", o.cv.n_boot);
    RADPROBE_USAGE_CHECK(!o.cv.c_grid.empty(), "--c-grid: empty");

    const dataset::Manifest manifest = detail::load_manifest(o.manifest, std::nullopt);
    detail::ModelRunner model(o.encoder);
    const std::int64_t D = model.dim();
    const bool has_cls = model.has_cls();

    // Base images: a seeded sample, decoded once; all must share one size (one model input).
    const auto chosen = detail::sample_indices(manifest.size(), o.max_images, o.seed);
    RADPROBE_CHECK(chosen.size() >= 6, o.manifest.string(), ": needs at least 6 images, has ",
                   chosen.size());
    std::vector<BaseImage> bases;
    bool region_from_masks = false;
    for (std::size_t idx : chosen) {
        const auto& rec = manifest.record(idx);
        BaseImage b;
        b.record = idx;
        b.id = rec.id;
        b.group = detail::group_of(rec);
        b.image = imaging::decode(rec.image_path);
        if (!bases.empty()) {
            RADPROBE_CHECK(b.image.rows == bases.front().image.rows &&
                               b.image.cols == bases.front().image.cols,
                           rec.image_path.string(), ": ", b.image.rows, "x", b.image.cols,
                           " differs from the first image's ", bases.front().image.rows, "x",
                           bases.front().image.cols, " (the panel needs base images of one size)");
        }
        bool from_masks = false;
        const auto region = detail::lung_region(manifest, idx, b.image.rows, b.image.cols,
                                                o.location == "center", &from_masks);
        region_from_masks = region_from_masks || from_masks;
        for (std::size_t k = 0; k < region.size(); ++k) {
            if (region[k]) {
                b.candidates.push_back(k);
            }
        }
        bases.push_back(std::move(b));
    }
    const int rows = bases.front().image.rows, cols = bases.front().image.cols;
    const auto geo = model.geometry(rows, cols);
    const std::size_t N = bases.size();

    // Clean images: one forward pass each, tokens kept for the per-cell ROI.
    std::vector<const float*> ptrs;
    for (const auto& b : bases) {
        ptrs.push_back(b.image.pixels.data());
    }
    Progress progress("perturb " + model.name(),
                      N * (1 + o.kinds.size() * o.sizes.size() * o.contrasts.size()), "images");
    progress.set_enabled(o.progress && stderr_is_tty());
    const auto clean = model.encode(ptrs, rows, cols);
    progress.advance(N);
    const std::int64_t G = static_cast<std::int64_t>(clean.front().patches.size()) / D;
    RADPROBE_CHECK(G == geo.grid_h() * geo.grid_w(), model.name(), ": token grid of ", G,
                   " cells does not match the input geometry (", geo.grid_h(), "x", geo.grid_w(),
                   "); hierarchical models are not supported by the ROI pooling here");

    std::vector<Cell> cells;
    for (PerturbKind k : o.kinds) {
        for (const SizeSpec& s : o.sizes) {
            for (double c : o.contrasts) {
                cells.push_back({k, s, c});
            }
        }
    }
    std::vector<std::string> poolings;
    if (has_cls) {
        poolings.push_back("cls");
    }
    poolings.push_back("mean");
    poolings.push_back("roi");
    const std::string reference = has_cls ? "cls" : "mean";

    // Samples: N clean then N perturbed, grouped by patient (a pair never splits).
    std::vector<std::string> groups;
    std::vector<double> labels;
    for (int half = 0; half < 2; ++half) {
        for (const auto& b : bases) {
            groups.push_back(b.group);
            labels.push_back(half);
        }
    }

    AnalysisResult result;
    result.analysis = "perturb";
    result.seed = o.seed;
    std::vector<std::size_t> auc_family, gain_family;
    nlohmann::json cells_json = nlohmann::json::array();
    const double scale = 0.5 * (geo.scale_x + geo.scale_y);
    for (std::size_t ci = 0; ci < cells.size(); ++ci) {
        const Cell& cell = cells[ci];
        const double size_px = cell.size.in_patches
                                   ? cell.size.value * static_cast<double>(geo.patch) / scale
                                   : cell.size.value;
        std::vector<imaging::Image> perturbed(N);
        std::vector<std::array<double, 4>> boxes(N);
        for (std::size_t i = 0; i < N; ++i) {
            Rng rng = Rng::derive(o.seed, ci * 1000003ULL + i);
            Perturbation p;
            p.kind = cell.kind;
            p.size = size_px;
            p.contrast = cell.contrast;
            const auto [cx, cy] = draw_centre(bases[i], size_px, rng);
            p.cx = cx;
            p.cy = cy;
            p.angle = rng.uniform(0.0, std::numbers::pi);
            perturbed[i].rows = rows;
            perturbed[i].cols = cols;
            perturbed[i].pixels = bases[i].image.pixels;
            boxes[i] = insert_perturbation(perturbed[i].pixels, rows, cols, p);
        }
        if (o.write_examples && o.out) {
            NpyArray a;
            a.dtype = DType::kFloat32;
            a.shape = {rows, cols};
            a.data.resize(perturbed[0].pixels.size() * sizeof(float));
            std::memcpy(a.data.data(), perturbed[0].pixels.data(), a.data.size());
            const fs::path ex = *o.out / "examples" /
                                (perturb_kind_name(cell.kind) + std::string("_") +
                                 cell.size.text() + "_c" + std::to_string(ci) + ".npy");
            write_npy(ex, a);
            result.files.push_back(ex);
        }
        std::vector<const float*> pp;
        for (const auto& im : perturbed) {
            pp.push_back(im.pixels.data());
        }
        const auto pert = model.encode(pp, rows, cols);
        progress.advance(N);

        // Features of every pooling: rows 0..N−1 clean, N..2N−1 perturbed; the ROI of a clean
        // image is its pair's perturbation box.
        std::map<std::string, std::vector<float>> feats;
        for (const auto& pool : poolings) {
            feats[pool].reserve(2 * N * static_cast<std::size_t>(D));
        }
        for (int half = 0; half < 2; ++half) {
            for (std::size_t i = 0; i < N; ++i) {
                const detail::ImageTokens& t = half == 0 ? clean[i] : pert[i];
                const auto w = features::roi_weights_from_boxes(
                    {{boxes[i][0], boxes[i][1], boxes[i][2], boxes[i][3]}}, geo, bases[i].id);
                const auto roi = detail::weighted_mean(t.patches, D, w);
                const auto mean = detail::token_mean(t.patches, D);
                feats["roi"].insert(feats["roi"].end(), roi.begin(), roi.end());
                feats["mean"].insert(feats["mean"].end(), mean.begin(), mean.end());
                if (has_cls) {
                    feats["cls"].insert(feats["cls"].end(), t.cls.begin(), t.cls.end());
                }
            }
        }
        nlohmann::json cj = {{"kind", perturb_kind_name(cell.kind)},
                             {"size", cell.size.text()},
                             {"size_px", size_px},
                             {"contrast", cell.contrast}};
        std::vector<std::pair<std::string, std::vector<float>>> ordered;
        for (const auto& pool : poolings) {
            ordered.emplace_back(pool, std::move(feats[pool]));
        }
        auto rows = probe_cell(ordered, static_cast<std::size_t>(D), labels, groups, reference,
                               o.cv, o.seed, cell.key(), cell.level(), o.encoder.threads);
        for (std::size_t k = 0; k < rows.size(); ++k) {
            (k + 1 == rows.size() ? gain_family : auc_family).push_back(result.rows.size());
            result.rows.push_back(std::move(rows[k]));
        }
        cells_json.push_back(std::move(cj));
    }
    progress.finish();
    adjust_family(result.rows, auc_family);
    adjust_family(result.rows, gain_family);

    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json j;
    j["analysis"] = "perturb";
    j["model"] = model.name();
    j["model_dir"] = fs::absolute(o.encoder.model_dir).string();
    j["manifest"] = fs::absolute(o.manifest).string();
    j["images"] = N;
    j["image_size"] = {rows, cols};
    j["model_input"] = {geo.out_height, geo.out_width};
    j["patch"] = geo.patch;
    j["location"] = o.location;
    j["region"] = o.location == "center" ? "center"
                                         : (region_from_masks ? "lung masks" : "center (no masks)");
    j["poolings"] = poolings;
    j["folds"] = o.cv.folds;
    j["c_grid"] = o.cv.c_grid;
    j["n_boot"] = o.cv.n_boot;
    j["level"] = o.cv.level;
    j["seed"] = o.seed;
    j["cells"] = cells_json;
    j["p_values"] =
        "Wald with the pair-clustered bootstrap SE; BH across the AUROC-vs-0.5 tests and, "
        "separately, across the gain tests";
    j["rows"] = nlohmann::json::parse(detail::rows_json(result.rows));
    j["seconds"] = result.seconds;
    result.metrics_json = j.dump(2) + "\n";
    if (o.out) {
        write_file_atomic(*o.out / "perturb_cells.csv", rows_csv(result.rows));
        write_file_atomic(*o.out / "metrics.json", result.metrics_json);
        result.files.push_back(*o.out / "perturb_cells.csv");
        result.files.push_back(*o.out / "metrics.json");
    }
    return result;
}

}  // namespace radprobe::analysis
