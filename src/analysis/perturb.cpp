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

void validate(const PerturbOptions& o) {
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
}

struct Bases {
    std::vector<BaseImage> images;
    bool region_from_masks = false;
    int rows = 0, cols = 0;
};

// Base images: a seeded sample, decoded once; all must share one size (one model input).
Bases load_bases(const dataset::Manifest& manifest, const PerturbOptions& o) {
    const auto chosen = detail::sample_indices(manifest.size(), o.max_images, o.seed);
    RADPROBE_CHECK(chosen.size() >= 6, o.manifest.string(), ": needs at least 6 images, has ",
                   chosen.size());
    Bases out;
    for (std::size_t idx : chosen) {
        const auto& rec = manifest.record(idx);
        BaseImage b;
        b.record = idx;
        b.id = rec.id;
        b.group = detail::group_of(rec);
        b.image = imaging::decode(rec.image_path);
        if (!out.images.empty()) {
            const auto& first = out.images.front().image;
            RADPROBE_CHECK(b.image.rows == first.rows && b.image.cols == first.cols,
                           rec.image_path.string(), ": ", b.image.rows, "x", b.image.cols,
                           " differs from the first image's ", first.rows, "x", first.cols,
                           " (the panel needs base images of one size)");
        }
        bool from_masks = false;
        const auto region = detail::lung_region(manifest, idx, b.image.rows, b.image.cols,
                                                o.location == "center", &from_masks);
        out.region_from_masks = out.region_from_masks || from_masks;
        for (std::size_t k = 0; k < region.size(); ++k) {
            if (region[k]) {
                b.candidates.push_back(k);
            }
        }
        out.images.push_back(std::move(b));
    }
    out.rows = out.images.front().image.rows;
    out.cols = out.images.front().image.cols;
    return out;
}

// Clean images: one forward pass each, tokens kept for the per-cell ROI.
std::vector<detail::ImageTokens> encode_clean(detail::ModelRunner& model, const Bases& bases,
                                              const features::InputGeometry& geo) {
    std::vector<const float*> ptrs;
    for (const auto& b : bases.images) {
        ptrs.push_back(b.image.pixels.data());
    }
    auto clean = model.encode(ptrs, bases.rows, bases.cols);
    const std::int64_t G = static_cast<std::int64_t>(clean.front().patches.size()) / model.dim();
    RADPROBE_CHECK(G == geo.grid_h() * geo.grid_w(), model.name(), ": token grid of ", G,
                   " cells does not match the input geometry (", geo.grid_h(), "x", geo.grid_w(),
                   "); hierarchical models are not supported by the ROI pooling here");
    return clean;
}

std::vector<Cell> cells_of(const PerturbOptions& o) {
    std::vector<Cell> cells;
    for (PerturbKind k : o.kinds) {
        for (const SizeSpec& s : o.sizes) {
            for (double c : o.contrasts) {
                cells.push_back({k, s, c});
            }
        }
    }
    return cells;
}

// The base images with cell `ci`'s signal inserted (a seeded centre and angle per image), and
// each signal's ROI box.
struct PerturbedSet {
    std::vector<imaging::Image> images;
    std::vector<std::array<double, 4>> boxes;
};

PerturbedSet perturb_bases(const Bases& bases, const Cell& cell, double size_px, std::size_t ci,
                           std::uint64_t seed) {
    const std::size_t N = bases.images.size();
    PerturbedSet out;
    out.images.resize(N);
    out.boxes.resize(N);
    for (std::size_t i = 0; i < N; ++i) {
        Rng rng = Rng::derive(seed, ci * 1000003ULL + i);
        Perturbation p;
        p.kind = cell.kind;
        p.size = size_px;
        p.contrast = cell.contrast;
        const auto [cx, cy] = draw_centre(bases.images[i], size_px, rng);
        p.cx = cx;
        p.cy = cy;
        p.angle = rng.uniform(0.0, std::numbers::pi);
        out.images[i].rows = bases.rows;
        out.images[i].cols = bases.cols;
        out.images[i].pixels = bases.images[i].image.pixels;
        out.boxes[i] = insert_perturbation(out.images[i].pixels, bases.rows, bases.cols, p);
    }
    return out;
}

// The first perturbed image of a cell as OUT/examples/<kind>_<size>_c<cell>.npy.
fs::path write_example(const fs::path& out, const imaging::Image& image, const Cell& cell,
                       std::size_t ci) {
    NpyArray a;
    a.dtype = DType::kFloat32;
    a.shape = {image.rows, image.cols};
    a.data.resize(image.pixels.size() * sizeof(float));
    std::memcpy(a.data.data(), image.pixels.data(), a.data.size());
    const fs::path ex = out / "examples" /
                        (perturb_kind_name(cell.kind) + std::string("_") + cell.size.text() + "_c" +
                         std::to_string(ci) + ".npy");
    write_npy(ex, a);
    return ex;
}

// Features of every pooling: rows 0..N−1 clean, N..2N−1 perturbed; the ROI of a clean image is
// its pair's perturbation box.
std::vector<std::pair<std::string, std::vector<float>>> cell_features(
    const Bases& bases, const std::vector<detail::ImageTokens>& clean,
    const std::vector<detail::ImageTokens>& perturbed, const PerturbedSet& set,
    const features::InputGeometry& geo, const std::vector<std::string>& poolings, std::int64_t D) {
    const std::size_t N = bases.images.size();
    const bool has_cls = poolings.front() == "cls";
    std::map<std::string, std::vector<float>> feats;
    for (const auto& pool : poolings) {
        feats[pool].reserve(2 * N * static_cast<std::size_t>(D));
    }
    for (int half = 0; half < 2; ++half) {
        for (std::size_t i = 0; i < N; ++i) {
            const detail::ImageTokens& t = half == 0 ? clean[i] : perturbed[i];
            const auto& b = set.boxes[i];
            const auto w = features::roi_weights_from_boxes({{b[0], b[1], b[2], b[3]}}, geo,
                                                            bases.images[i].id);
            const auto roi = detail::weighted_mean(t.patches, D, w);
            const auto mean = detail::token_mean(t.patches, D);
            feats["roi"].insert(feats["roi"].end(), roi.begin(), roi.end());
            feats["mean"].insert(feats["mean"].end(), mean.begin(), mean.end());
            if (has_cls) {
                feats["cls"].insert(feats["cls"].end(), t.cls.begin(), t.cls.end());
            }
        }
    }
    std::vector<std::pair<std::string, std::vector<float>>> ordered;
    for (const auto& pool : poolings) {
        ordered.emplace_back(pool, std::move(feats[pool]));
    }
    return ordered;
}

std::string metrics_json(const PerturbOptions& o, const std::string& model_name, const Bases& bases,
                         const features::InputGeometry& geo,
                         const std::vector<std::string>& poolings, const nlohmann::json& cells,
                         const AnalysisResult& result) {
    nlohmann::json j;
    j["analysis"] = "perturb";
    j["model"] = model_name;
    j["model_dir"] = fs::absolute(o.encoder.model_dir).string();
    j["manifest"] = fs::absolute(o.manifest).string();
    j["images"] = bases.images.size();
    j["image_size"] = {bases.rows, bases.cols};
    j["model_input"] = {geo.out_height, geo.out_width};
    j["patch"] = geo.patch;
    j["location"] = o.location;
    j["region"] = o.location == "center"
                      ? "center"
                      : (bases.region_from_masks ? "lung masks" : "center (no masks)");
    j["poolings"] = poolings;
    j["folds"] = o.cv.folds;
    j["c_grid"] = o.cv.c_grid;
    j["n_boot"] = o.cv.n_boot;
    j["level"] = o.cv.level;
    j["seed"] = o.seed;
    j["cells"] = cells;
    j["p_values"] =
        "Wald with the pair-clustered bootstrap SE; BH across the AUROC-vs-0.5 tests and, "
        "separately, across the gain tests";
    j["rows"] = nlohmann::json::parse(detail::rows_json(result.rows));
    j["seconds"] = result.seconds;
    return j.dump(2) + "\n";
}

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
    validate(o);
    const dataset::Manifest manifest = detail::load_manifest(o.manifest, std::nullopt, false);
    detail::ModelRunner model(o.encoder);
    const std::int64_t D = model.dim();
    const Bases bases = load_bases(manifest, o);
    const int rows = bases.rows, cols = bases.cols;
    const auto geo = model.geometry(rows, cols);
    const std::size_t N = bases.images.size();

    Progress progress("perturb " + model.name(),
                      N * (1 + o.kinds.size() * o.sizes.size() * o.contrasts.size()), "images");
    progress.set_enabled(o.progress && stderr_is_tty());
    const auto clean = encode_clean(model, bases, geo);
    progress.advance(N);

    std::vector<std::string> poolings;
    if (model.has_cls()) {
        poolings.push_back("cls");
    }
    poolings.push_back("mean");
    poolings.push_back("roi");
    const std::string reference = model.has_cls() ? "cls" : "mean";
    // Samples: N clean then N perturbed, grouped by patient (a pair never splits).
    std::vector<std::string> groups;
    std::vector<double> labels;
    for (int half = 0; half < 2; ++half) {
        for (const auto& b : bases.images) {
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
    const std::vector<Cell> cells = cells_of(o);
    for (std::size_t ci = 0; ci < cells.size(); ++ci) {
        const Cell& cell = cells[ci];
        const double size_px = cell.size.in_patches
                                   ? cell.size.value * static_cast<double>(geo.patch) / scale
                                   : cell.size.value;
        const PerturbedSet set = perturb_bases(bases, cell, size_px, ci, o.seed);
        if (o.write_examples && o.out) {
            result.files.push_back(write_example(*o.out, set.images[0], cell, ci));
        }
        std::vector<const float*> pp;
        for (const auto& im : set.images) {
            pp.push_back(im.pixels.data());
        }
        const auto pert = model.encode(pp, rows, cols);
        progress.advance(N);
        auto cell_rows = probe_cell(cell_features(bases, clean, pert, set, geo, poolings, D),
                                    static_cast<std::size_t>(D), labels, groups, reference, o.cv,
                                    o.seed, cell.key(), cell.level(), o.encoder.threads);
        for (std::size_t k = 0; k < cell_rows.size(); ++k) {
            (k + 1 == cell_rows.size() ? gain_family : auc_family).push_back(result.rows.size());
            result.rows.push_back(std::move(cell_rows[k]));
        }
        cells_json.push_back({{"kind", perturb_kind_name(cell.kind)},
                              {"size", cell.size.text()},
                              {"size_px", size_px},
                              {"contrast", cell.contrast}});
    }
    progress.finish();
    adjust_family(result.rows, auc_family);
    adjust_family(result.rows, gain_family);

    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result.metrics_json = metrics_json(o, model.name(), bases, geo, poolings, cells_json, result);
    detail::write_result_files(result, o.out, "perturb_cells.csv");
    return result;
}

}  // namespace radprobe::analysis
