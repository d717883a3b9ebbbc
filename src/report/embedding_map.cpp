// The embedding map of the report: per encoder with an embedding store, a seeded sample of at
// most kMapSampleMax images, PCA to two dimensions (computed here), one scatter coloured by each
// label and each attribute of the manifest the runs used (a selector picks which).

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "report_internal.hpp"

namespace radprobe::report::detail {

namespace fs = std::filesystem;

std::vector<std::size_t> sample_rows(std::size_t n, std::size_t max, std::uint64_t seed) {
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    if (n <= max) {
        return idx;
    }
    // Partial Fisher-Yates with radprobe's platform-independent generator, then manifest order.
    Rng rng(seed);
    for (std::size_t i = 0; i < max; ++i) {
        const std::size_t j = i + static_cast<std::size_t>(rng.below(n - i));
        std::swap(idx[i], idx[j]);
    }
    idx.resize(max);
    std::sort(idx.begin(), idx.end());
    return idx;
}

namespace {

// The embeddings of a complete store, pooled `pool` ("mean", else "cls"), of its ok images.
// The images of a complete store and where their pooled embeddings are ("mean", else "cls").
struct StoreIndex {
    fs::path npy;
    std::string pool;
    std::vector<std::string> ids;  ///< one per row of the npy file
};

StoreIndex read_store_index(const fs::path& store) {
    RADPROBE_CHECK(fs::exists(store / "COMPLETE"), store.string(),
                   ": not a complete embedding store");
    StoreIndex e;
    e.pool = fs::exists(store / "mean.npy") ? "mean" : "cls";
    e.npy = store / (e.pool + ".npy");
    RADPROBE_CHECK(fs::exists(e.npy), store.string(), ": holds neither mean nor cls embeddings");
    const auto index = CsvTable::read(store / "index.csv");
    const auto ok = index.column("ok"), image = index.column("image");
    for (const auto& r : index.rows()) {
        if (r[ok] == "1") {
            e.ids.push_back(r[image]);
        }
    }
    return e;
}

using Level = std::function<std::string(const dataset::Record&)>;
struct ColourVariables {
    std::vector<std::pair<std::string, Level>> vars;
    std::vector<std::string> skipped;  ///< attributes with more than 20 values in the sample
};

// Every label, and every attribute with at most 20 distinct values among `ids`.
ColourVariables colour_variables(const dataset::Manifest& m, const std::vector<std::string>& ids) {
    ColourVariables c;
    for (std::size_t l = 0; l < m.label_names().size(); ++l) {
        c.vars.emplace_back("label: " + m.label_names()[l], [l](const dataset::Record& r) {
            const int v = r.labels[l];
            return std::string(v == 1 ? "positive" : v == 0 ? "negative" : "unknown");
        });
    }
    for (std::size_t k = 0; k < m.attribute_names().size(); ++k) {
        std::set<std::string> levels;
        for (const auto& id : ids) {
            levels.insert(m.record(id).attributes[k]);
        }
        if (levels.size() > 20) {
            c.skipped.push_back(m.attribute_names()[k]);
            continue;
        }
        c.vars.emplace_back("attribute: " + m.attribute_names()[k], [k](const dataset::Record& r) {
            return r.attributes[k].empty() ? std::string("(missing)") : r.attributes[k];
        });
    }
    return c;
}

// PCA component c of sample s (0 when the data have fewer components).
double score(const Pca& pca, std::size_t s, std::size_t c) {
    return c < pca.k ? pca.scores[s * pca.k + c] : 0.0;
}

struct MapSample {
    std::vector<std::string> ids;
    std::size_t dim = 0;
    std::vector<float> values;    ///< ids.size() × dim
    std::size_t in_manifest = 0;  ///< images of the store that are in the manifest
    std::size_t not_finite = 0;   ///< sampled images dropped for non-finite embeddings
};

std::string map_caption(const std::string& pool, const MapSample& sample, std::int64_t seed,
                        const Pca& pca, bool umap, const std::vector<std::string>& skipped) {
    std::ostringstream caption;
    caption.precision(3);
    const std::size_t drawn = std::min(sample.in_manifest, kMapSampleMax);
    caption << "The " << pool << "-pooled embeddings (" << sample.dim << " dimensions) of "
            << sample.ids.size() << " of " << sample.in_manifest << " images";
    if (drawn < sample.in_manifest) {
        caption << " (a sample drawn with seed " << seed << ")";
    }
    if (sample.not_finite > 0) {
        caption << "; " << sample.not_finite << " sampled images with non-finite values left out";
    }
    caption << ". PCA: PC1 explains " << 100.0 * pca.explained[0] << "% of the variance";
    if (pca.k > 1) {
        caption << ", PC2 " << 100.0 * pca.explained[1] << "%";
    }
    caption << ".";
    if (umap) {
        double kept = 0.0;
        for (const double v : pca.explained) {
            kept += v;
        }
        caption << " UMAP (computed in the page with umap-js, seed " << seed << ", "
                << kUmapNeighbours << " neighbours, min_dist " << kUmapMinDist << ") of the first "
                << pca.k << " principal components (" << 100.0 * kept << "% of the variance).";
    }
    if (!skipped.empty()) {
        caption << " Attributes with more than 20 values are not offered: ";
        for (std::size_t i = 0; i < skipped.size(); ++i) {
            caption << (i ? ", " : "") << skipped[i];
        }
        caption << ".";
    }
    return caption.str();
}

// The plotted points: one per sampled image and colour variable; "row" is the image's index in
// the UMAP input.
json map_points(const dataset::Manifest& m, const std::vector<std::string>& ids, const Pca& pca,
                const ColourVariables& c) {
    json values = json::array();
    for (std::size_t s = 0; s < ids.size(); ++s) {
        const auto& rec = m.record(ids[s]);
        for (const auto& [name, level] : c.vars) {
            values.push_back({{"image", rec.id},
                              {"row", s},
                              {"pc1", score(pca, s, 0)},
                              {"pc2", score(pca, s, 1)},
                              {"by", name},
                              {"value", level(rec)}});
        }
    }
    return values;
}

// What the page's UMAP runs on: the principal-component scores in units of PC1's standard
// deviation, rounded to 1e-4 (the page stays small; UMAP sees the same neighbours).
json umap_input(const Pca& pca, std::int64_t seed) {
    const double unit = pca.variance[0] > 0 ? 1.0 / std::sqrt(pca.variance[0]) : 1.0;
    json rows = json::array();
    for (std::size_t s = 0; s < pca.n; ++s) {
        json row = json::array();
        for (std::size_t c = 0; c < pca.k; ++c) {
            row.push_back(std::round(score(pca, s, c) * unit * 1e4) / 1e4);
        }
        rows.push_back(std::move(row));
    }
    return {{"seed", static_cast<std::uint32_t>(static_cast<std::uint64_t>(seed) & 0xFFFFFFFFu)},
            {"n_neighbors", std::min<std::size_t>(kUmapNeighbours, pca.n - 1)},
            {"min_dist", kUmapMinDist},
            {"input", std::move(rows)}};
}

// A seeded sample of at most kMapSampleMax of the store's images that are in the manifest; only
// their rows are read (a store of half a million images is not loaded). Rows with a non-finite
// value are dropped.
MapSample draw_sample(const StoreIndex& e, const dataset::Manifest& manifest,
                      const results::StoreRecord& src) {
    std::vector<std::int64_t> in_manifest;
    for (std::size_t i = 0; i < e.ids.size(); ++i) {
        if (manifest.find(e.ids[i]).has_value()) {
            in_manifest.push_back(static_cast<std::int64_t>(i));
        }
    }
    MapSample m;
    m.in_manifest = in_manifest.size();
    std::vector<std::int64_t> rows;
    for (const auto p :
         sample_rows(in_manifest.size(), kMapSampleMax, static_cast<std::uint64_t>(src.seed))) {
        rows.push_back(in_manifest[p]);
    }
    std::int64_t total = 0;
    const NpyArray a = read_npy_rows(e.npy, rows, &total);
    RADPROBE_CHECK(a.dtype == DType::kFloat32 && a.shape.size() == 2, e.npy.string(),
                   ": not a float32 matrix");
    RADPROBE_CHECK(static_cast<std::size_t>(total) == e.ids.size(), e.npy.string(), ": ", total,
                   " rows, index.csv lists ", e.ids.size(), " embedded images");
    m.dim = static_cast<std::size_t>(a.shape[1]);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const float* r = a.as<float>() + k * m.dim;
        if (!std::all_of(r, r + m.dim, [](float v) { return std::isfinite(v); })) {
            ++m.not_finite;
            continue;
        }
        m.values.insert(m.values.end(), r, r + m.dim);
        m.ids.push_back(e.ids[static_cast<std::size_t>(rows[k])]);
    }
    RADPROBE_CHECK(m.ids.size() >= 3, src.store_dir.string(),
                   ": fewer than 3 of its images are in the manifest ", src.manifest.string(),
                   " with finite embeddings");
    return m;
}

// One encoder's maps: a caption, the PCA figure and (with umap-js) the UMAP figure; throws
// InputError when there can be none.
void encoder_map(Page& page, const results::StoreRecord& src, bool umap) {
    const StoreIndex e = read_store_index(src.store_dir);
    RADPROBE_CHECK(fs::exists(src.manifest), src.manifest.string(),
                   ": the manifest of the runs was not found");
    const auto manifest = dataset::Manifest::load(src.manifest);
    const MapSample sample = draw_sample(e, manifest, src);
    const Pca pca = detail::pca(sample.values, sample.ids.size(), sample.dim, kUmapComponents);
    const ColourVariables colours = colour_variables(manifest, sample.ids);

    page.raw("<h3>");
    page.text(src.encoder);
    page.raw("</h3>\n<p class=\"note embedding-map-caption\">");
    page.text(map_caption(e.pool, sample, src.seed, pca, umap, colours.skipped));
    page.raw("</p>\n");
    if (colours.vars.empty()) {
        page.raw("<p class=\"note\">The manifest has no labels or attributes to colour by.</p>\n");
        return;
    }
    json options = json::array();
    for (const auto& v : colours.vars) {
        options.push_back(v.first);
    }
    const json points = map_points(manifest, sample.ids, pca, colours);
    page.raw("<div class=\"plots\">\n");
    page.plot(embedding_map_spec(src.encoder, "pca", points, options));
    if (umap) {
        page.umap_plot(embedding_map_spec(src.encoder, "umap", points, options),
                       umap_input(pca, src.seed));
    }
    page.raw("</div>\n");
}

}  // namespace

json embedding_map_spec(const std::string& encoder, const std::string& projection, json values,
                        const json& colour_options) {
    const bool umap = projection == "umap";
    const std::string x = umap ? "u1" : "pc1", y = umap ? "u2" : "pc2";
    return {
        {"$schema", "https://vega.github.io/schema/vega-lite/v5.json"},
        {"title", std::string(umap ? "UMAP" : "PCA") + " — " + encoder},
        {"width", 360},
        {"height", 320},
        {"data", {{"values", std::move(values)}}},
        {"params",
         {{{"name", "colour_by"},
           {"value", colour_options.at(0)},
           {"bind", {{"input", "select"}, {"options", colour_options}, {"name", "Colour by "}}}}}},
        {"transform", {{{"filter", "datum.by == colour_by"}}}},
        {"mark", {{"type", "circle"}, {"size", 18}, {"opacity", 0.7}}},
        {"encoding",
         {{"x", {{"field", x}, {"type", "quantitative"}, {"title", umap ? "UMAP 1" : "PC1"}}},
          {"y", {{"field", y}, {"type", "quantitative"}, {"title", umap ? "UMAP 2" : "PC2"}}},
          {"color", {{"field", "value"}, {"type", "nominal"}, {"title", "value"}}},
          {"tooltip",
           {{{"field", "image"}, {"type", "nominal"}},
            {{"field", "value"}, {"type", "nominal"}}}}}},
    };
}

bool has_embedding_map(const ReportData& d) {
    return !d.stores.empty();
}

void embedding_map_section(Page& page, const ReportData& d, bool umap) {
    if (d.stores.empty()) {
        return;
    }
    page.raw(
        "<section id=\"embedding-map\"><h2>Embedding maps</h2>\n<p class=\"note\">Each "
        "encoder's embeddings projected to two dimensions, coloured by a label or an attribute "
        "(pick one below each map): a shortcut is often visible before it is measured.");
    page.raw(umap ? "</p>\n"
                  : " UMAP needs umap-js beside Vega (scripts/setup.sh installs it): PCA "
                    "only.</p>\n");
    for (const auto& src : d.stores) {
        try {
            encoder_map(page, src, umap);
        } catch (const std::exception& e) {
            page.raw("<p class=\"note embedding-map-missing\">");
            page.text(
                str_cat(src.encoder, ": no embedding map (", Error::one_line(e.what()), ")."));
            page.raw("</p>\n");
        }
    }
    page.raw("</section>\n");
}

}  // namespace radprobe::report::detail
