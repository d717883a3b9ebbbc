// `radprobe analyze lesions`: image-level AUROC stratified by lesion box size, box-level
// patch-local AUROC (lesion box vs same-size lesion-free lung boxes) and its sensitivity to box
// jitter.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "internal.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/progress.hpp"
#include "radprobe/core/random.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/imaging/decode.hpp"

namespace radprobe::analysis {
namespace fs = std::filesystem;

namespace {

std::string percent(double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g%%", fraction * 100.0);
    return buf;
}

std::string stratum_name(int s, const std::vector<double>& t) {
    const int T = static_cast<int>(t.size());
    if (T == 1) {
        return s == 0 ? "small (<" + percent(t[0]) + ")" : "large (≥" + percent(t[0]) + ")";
    }
    if (s == 0) {
        return "<" + percent(t[0]);
    }
    if (s == T) {
        return "≥" + percent(t[T - 1]);
    }
    return percent(t[s - 1]) + "–" + percent(t[s]);
}

int stratum_of(double fraction, const std::vector<double>& t) {
    int s = 0;
    while (s < static_cast<int>(t.size()) && fraction >= t[s]) {
        ++s;
    }
    return s;
}

struct Loaded {
    std::size_t record = 0;
    std::string group;
    double label = 0;
    int rows = 0, cols = 0;
    detail::ImageTokens tokens;
    features::InputGeometry geometry;
    std::vector<features::RegionBox> lesions;    // boxes of box_label
    std::vector<features::RegionBox> all_boxes;  // every box (kept free by controls)
    int stratum = -1;                            // of the largest lesion box (positives with boxes)
    double largest_fraction = 0;
};

struct BoxSample {
    std::size_t image = 0;  // index into loaded
    features::RegionBox box;
    double label = 0;
    int stratum = -1;
    double fraction = 0;
    std::size_t lesion = 0;  // for controls: the lesion box it matches
    bool same_image = false;
};

bool overlaps(const features::RegionBox& a, const features::RegionBox& b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

// A w × h box centred on a lung pixel of `img`, inside the image and free of its boxes.
std::optional<features::RegionBox> place_control(const Loaded& img,
                                                 const std::vector<std::uint8_t>& region, double w,
                                                 double h, Rng& rng) {
    std::vector<std::size_t> cand;
    for (std::size_t k = 0; k < region.size(); ++k) {
        if (region[k]) {
            cand.push_back(k);
        }
    }
    for (int attempt = 0; attempt < 200 && !cand.empty(); ++attempt) {
        const std::size_t k = cand[rng.below(cand.size())];
        const double cx = static_cast<double>(k % img.cols) + 0.5;
        const double cy = static_cast<double>(k / img.cols) + 0.5;
        features::RegionBox b;
        b.x0 = std::round(cx - w / 2);
        b.y0 = std::round(cy - h / 2);
        b.x1 = b.x0 + w;
        b.y1 = b.y0 + h;
        if (b.x0 < 0 || b.y0 < 0 || b.x1 > img.cols || b.y1 > img.rows) {
            continue;
        }
        bool free = true;
        for (const auto& o : img.all_boxes) {
            free = free && !overlaps(b, o);
        }
        if (free) {
            return b;
        }
    }
    return std::nullopt;
}

}  // namespace

AnalysisResult run_lesions(const LesionOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    RADPROBE_USAGE_CHECK(!o.label.empty(), "--label: required (the image-level label column)");
    RADPROBE_USAGE_CHECK(!o.area_thresholds.empty(), "--area-thresholds: none given");
    for (std::size_t i = 0; i < o.area_thresholds.size(); ++i) {
        const double t = o.area_thresholds[i];
        RADPROBE_USAGE_CHECK(t > 0 && t < 1 && (i == 0 || t > o.area_thresholds[i - 1]),
                             "--area-thresholds: must be ascending fractions in (0, 1), got ", t);
    }
    for (double s : o.jitter_sigmas) {
        RADPROBE_USAGE_CHECK(s > 0 && s <= 1000, "--jitter: sigma ", s, " is not in (0, 1000] px");
    }
    RADPROBE_USAGE_CHECK(o.cv.n_boot >= 100, "--n-boot must be >= 100, got ", o.cv.n_boot);
    const dataset::Manifest manifest = detail::load_manifest(o.manifest, o.boxes);
    RADPROBE_CHECK(manifest.label_index(o.label).has_value(), o.manifest.string(), ": --label '",
                   o.label, "' is not a label column");
    const std::string box_label = o.box_label.empty() ? o.label : o.box_label;
    const auto label_vec = manifest.label_vector(o.label);
    std::vector<std::size_t> known;
    for (std::size_t i = 0; i < manifest.size(); ++i) {
        if (label_vec[i] != dataset::kLabelUnknown) {
            known.push_back(i);
        }
    }
    std::vector<std::size_t> chosen;
    for (std::size_t k : detail::sample_indices(known.size(), o.max_images, o.seed)) {
        chosen.push_back(known[k]);
    }

    detail::ModelRunner model(o.encoder);
    const std::int64_t D = model.dim();
    const bool has_cls = model.has_cls();
    std::vector<Loaded> loaded;
    std::map<std::pair<int, int>, std::vector<std::size_t>> by_size;
    std::vector<imaging::Image> images;
    for (std::size_t idx : chosen) {
        const auto& rec = manifest.record(idx);
        Loaded l;
        l.record = idx;
        l.group = detail::group_of(rec);
        l.label = label_vec[idx];
        imaging::Image img = imaging::decode(rec.image_path);
        l.rows = img.rows;
        l.cols = img.cols;
        l.geometry = model.geometry(img.rows, img.cols);
        for (const auto& b : rec.boxes) {
            l.all_boxes.push_back({b.x0, b.y0, b.x1, b.y1});
            if (b.label == box_label || box_label == "*") {
                l.lesions.push_back({b.x0, b.y0, b.x1, b.y1});
                const double f = (b.x1 - b.x0) * (b.y1 - b.y0) / (double(img.rows) * img.cols);
                l.largest_fraction = std::max(l.largest_fraction, f);
            }
        }
        if (l.label == 1.0 && !l.lesions.empty()) {
            l.stratum = stratum_of(l.largest_fraction, o.area_thresholds);
        }
        by_size[{img.rows, img.cols}].push_back(loaded.size());
        loaded.push_back(std::move(l));
        images.push_back(std::move(img));
    }
    std::size_t positives = 0;
    for (const auto& l : loaded) {
        positives += l.label == 1.0;
    }
    RADPROBE_CHECK(positives >= 4 && loaded.size() - positives >= 4, o.manifest.string(),
                   ": label '", o.label, "' needs at least 4 positive and 4 negative images (has ",
                   positives, " and ", loaded.size() - positives, ")");
    Progress progress("lesions " + model.name(), loaded.size(), "images");
    progress.set_enabled(o.progress && stderr_is_tty());
    for (const auto& [size, members] : by_size) {
        std::vector<const float*> ptrs;
        for (std::size_t m : members) {
            ptrs.push_back(images[m].pixels.data());
        }
        auto tokens = model.encode(ptrs, size.first, size.second);
        for (std::size_t j = 0; j < members.size(); ++j) {
            loaded[members[j]].tokens = std::move(tokens[j]);
        }
        progress.advance(members.size());
    }
    progress.finish();

    AnalysisResult result;
    result.analysis = "lesions";
    result.seed = o.seed;
    std::vector<std::size_t> auc_family, diff_family;
    const int T = static_cast<int>(o.area_thresholds.size());

    // ---- Image level: cls and mean probes, AUROC per stratum (stratum positives vs all
    // negatives), and each stratum against the largest.
    std::vector<std::string> groups;
    std::vector<double> labels;
    std::vector<int> strata_lab;
    for (const auto& l : loaded) {
        groups.push_back(l.group);
        labels.push_back(l.label);
        strata_lab.push_back(static_cast<int>(l.label));
    }
    const auto folds = grouped_folds(groups, strata_lab, o.cv.folds, o.seed);
    std::vector<std::string> image_pools;
    if (has_cls) {
        image_pools.push_back("cls");
    }
    image_pools.push_back("mean");
    std::map<std::string, std::vector<double>> image_scores;
    for (const auto& pool : image_pools) {
        std::vector<float> x;
        for (const auto& l : loaded) {
            const auto v = pool == "cls" ? l.tokens.cls : detail::token_mean(l.tokens.patches, D);
            x.insert(x.end(), v.begin(), v.end());
        }
        image_scores[pool] = cross_validated_scores(x, static_cast<std::size_t>(D), labels, folds,
                                                    o.cv.c_grid, o.encoder.threads);
    }
    auto subset_row = [&](const std::string& pool, const std::string& key2,
                          const std::function<bool(const Loaded&)>& keep_positive) {
        std::vector<double> y, s;
        std::vector<std::string> g;
        for (std::size_t i = 0; i < loaded.size(); ++i) {
            if (loaded[i].label == 0.0 || keep_positive(loaded[i])) {
                y.push_back(labels[i]);
                s.push_back(image_scores[pool][i]);
                g.push_back(groups[i]);
            }
        }
        const auto cl = eval::cluster_ids(g);
        return detail::auroc_row("lesions", "image", key2, pool, y, s, cl, o.cv.n_boot, o.cv.level,
                                 o.seed);
    };
    std::vector<std::size_t> stratum_counts(static_cast<std::size_t>(T + 1), 0);
    for (const auto& l : loaded) {
        if (l.stratum >= 0) {
            ++stratum_counts[static_cast<std::size_t>(l.stratum)];
        }
    }
    const auto all_clusters = eval::cluster_ids(groups);
    for (const auto& pool : image_pools) {
        auc_family.push_back(result.rows.size());
        result.rows.push_back(subset_row(pool, "all", [](const Loaded&) { return true; }));
        for (int s = 0; s <= T; ++s) {
            auc_family.push_back(result.rows.size());
            result.rows.push_back(subset_row(pool, stratum_name(s, o.area_thresholds),
                                             [s](const Loaded& l) { return l.stratum == s; }));
        }
        for (int s = 0; s < T; ++s) {
            // Stratum s − the largest stratum: both share the negatives, so one clustered
            // bootstrap over all images evaluates the two AUROCs on the same resample.
            std::vector<std::uint8_t> in_s(loaded.size()), in_top(loaded.size());
            for (std::size_t i = 0; i < loaded.size(); ++i) {
                in_s[i] = loaded[i].label == 0.0 || loaded[i].stratum == s;
                in_top[i] = loaded[i].label == 0.0 || loaded[i].stratum == T;
            }
            const auto& sc = image_scores[pool];
            const eval::WeightedStatistic stat = [&](std::span<const std::uint32_t> counts) {
                return detail::weighted_auroc(labels, sc, counts, in_s) -
                       detail::weighted_auroc(labels, sc, counts, in_top);
            };
            AnalysisTableRow row = detail::make_row(
                "lesions", "image gap",
                stratum_name(s, o.area_thresholds) + " − " + stratum_name(T, o.area_thresholds),
                pool);
            row.n = static_cast<std::int64_t>(stratum_counts[static_cast<std::size_t>(s)] +
                                              stratum_counts[static_cast<std::size_t>(T)]);
            if (stratum_counts[static_cast<std::size_t>(s)] > 0 &&
                stratum_counts[static_cast<std::size_t>(T)] > 0) {
                eval::BootstrapOptions bo;
                bo.replicates = o.cv.n_boot;
                bo.seed = o.seed;
                bo.level = o.cv.level;
                const auto ci =
                    eval::bootstrap_statistic(loaded.size(), stat, bo, {}, all_clusters);
                row.value = ci.estimate;
                if (ci.valid > 1) {
                    row.ci_lo = ci.ci_lo;
                    row.ci_hi = ci.ci_hi;
                }
                row.p = detail::wald_p(ci.estimate, 0.0, ci.se, ci.valid);
            }
            diff_family.push_back(result.rows.size());
            result.rows.push_back(std::move(row));
        }
    }

    // ---- Box level: lesion boxes vs same-size lesion-free lung boxes (same image when there
    // is room, else a lesion-free image), patch-local pooling.
    std::vector<BoxSample> samples;
    std::vector<std::size_t> negatives;
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        if (loaded[i].label == 0.0) {
            negatives.push_back(i);
        }
    }
    std::map<std::size_t, std::vector<std::uint8_t>> regions;
    bool region_from_masks = false;
    auto region_of = [&](std::size_t i) -> const std::vector<std::uint8_t>& {
        auto it = regions.find(i);
        if (it == regions.end()) {
            bool from_masks = false;
            it = regions
                     .emplace(i, detail::lung_region(manifest, loaded[i].record, loaded[i].rows,
                                                     loaded[i].cols, false, &from_masks))
                     .first;
            region_from_masks = region_from_masks || from_masks;
        }
        return it->second;
    };
    std::size_t skipped = 0, cross_image_controls = 0;
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        if (loaded[i].label != 1.0) {
            continue;
        }
        for (const auto& b : loaded[i].lesions) {
            const std::size_t lesion_index = samples.size();
            Rng rng = Rng::derive(o.seed ^ 0xB0C5ULL, lesion_index);
            const double w = b.x1 - b.x0, h = b.y1 - b.y0;
            BoxSample pos;
            pos.image = i;
            pos.box = b;
            pos.label = 1.0;
            pos.fraction = w * h / (double(loaded[i].rows) * loaded[i].cols);
            pos.stratum = stratum_of(pos.fraction, o.area_thresholds);
            auto control = [&](std::size_t image, const features::RegionBox& box, bool same) {
                BoxSample c = pos;
                c.image = image;
                c.box = box;
                c.label = 0.0;
                c.lesion = lesion_index;
                c.same_image = same;
                return c;
            };
            std::optional<BoxSample> neg;
            if (auto c = place_control(loaded[i], region_of(i), w, h, rng)) {
                neg = control(i, *c, true);
            } else {
                for (int attempt = 0; attempt < 20 && !neg && !negatives.empty(); ++attempt) {
                    const std::size_t k = negatives[rng.below(negatives.size())];
                    if (auto c2 = place_control(loaded[k], region_of(k), w, h, rng)) {
                        neg = control(k, *c2, false);
                        ++cross_image_controls;
                    }
                }
            }
            auto inside = [&](const BoxSample& bs) {
                const Loaded& l = loaded[bs.image];
                try {
                    features::roi_weights_from_boxes({bs.box}, l.geometry, "box");
                    return true;
                } catch (const InputError&) {
                    return false;  // outside the model input (centre crop)
                }
            };
            if (!neg || !inside(pos) || !inside(*neg)) {
                ++skipped;
                continue;
            }
            samples.push_back(pos);
            samples.push_back(*neg);
        }
    }
    auto box_features = [&](const std::vector<features::RegionBox>& boxes,
                            std::vector<std::uint8_t>* ok) {
        std::vector<float> x;
        for (std::size_t j = 0; j < samples.size(); ++j) {
            const Loaded& l = loaded[samples[j].image];
            std::vector<float> w;
            try {
                w = features::roi_weights_from_boxes({boxes[j]}, l.geometry,
                                                     manifest.record(l.record).id);
            } catch (const InputError&) {
                (*ok)[j] = 0;  // a jittered box left the model input: nothing to pool but all
                w.assign(l.tokens.patches.size() / static_cast<std::size_t>(D), 1.0f);
            }
            const auto v = detail::weighted_mean(l.tokens.patches, D, w);
            x.insert(x.end(), v.begin(), v.end());
        }
        return x;
    };
    std::vector<features::RegionBox> exact;
    std::vector<std::string> box_groups;
    std::vector<double> box_labels;
    std::vector<int> box_strata;
    for (const auto& s : samples) {
        exact.push_back(s.box);
        box_groups.push_back(loaded[s.image].group);
        box_labels.push_back(s.label);
        box_strata.push_back(static_cast<int>(s.label));
    }
    std::vector<std::uint8_t> box_ok(samples.size(), 1);
    const auto x_exact = box_features(exact, &box_ok);
    std::size_t n_lesion_boxes = 0;
    for (const auto& s : samples) {
        n_lesion_boxes += s.label == 1.0;
    }
    std::vector<double> exact_scores;
    std::vector<int> box_folds;
    const bool box_level = n_lesion_boxes >= 4;
    auto box_rows = [&](const std::string& key, const std::vector<double>& scores) {
        auto one = [&](const std::string& key2, int stratum) {
            std::vector<double> y, sc;
            std::vector<std::string> g;
            for (std::size_t j = 0; j < samples.size(); ++j) {
                if (box_ok[j] && (stratum < 0 || samples[j].stratum == stratum)) {
                    y.push_back(box_labels[j]);
                    sc.push_back(scores[j]);
                    g.push_back(box_groups[j]);
                }
            }
            auc_family.push_back(result.rows.size());
            result.rows.push_back(detail::auroc_row("lesions", key, key2, "patch_local", y, sc,
                                                    eval::cluster_ids(g), o.cv.n_boot, o.cv.level,
                                                    o.seed));
        };
        one("all", -1);
        for (int s = 0; s <= T; ++s) {
            one(stratum_name(s, o.area_thresholds), s);
        }
    };
    auto ok_subset = [&](const std::vector<double>& v) {
        std::vector<double> out;
        for (std::size_t j = 0; j < samples.size(); ++j) {
            if (box_ok[j]) {
                out.push_back(v[j]);
            }
        }
        return out;
    };
    std::vector<std::string> ok_groups;
    for (std::size_t j = 0; j < samples.size(); ++j) {
        if (box_ok[j]) {
            ok_groups.push_back(box_groups[j]);
        }
    }
    nlohmann::json jitter_json = nlohmann::json::array();
    if (box_level) {
        box_folds = grouped_folds(box_groups, box_strata, o.cv.folds, o.seed);
        exact_scores = cross_validated_scores(x_exact, static_cast<std::size_t>(D), box_labels,
                                              box_folds, o.cv.c_grid, o.encoder.threads);
        box_rows("box σ=0px", exact_scores);
        for (std::size_t si = 0; si < o.jitter_sigmas.size(); ++si) {
            const double sigma = o.jitter_sigmas[si];
            std::vector<features::RegionBox> moved = exact;
            double shift_sum = 0;
            for (std::size_t j = 0; j < samples.size(); ++j) {
                if (samples[j].label != 1.0) {
                    continue;  // controls are random placements already
                }
                Rng rng = Rng::derive(o.seed ^ (0x717E4ULL + si), j);
                const Loaded& l = loaded[samples[j].image];
                auto& b = moved[j];
                const double w = b.x1 - b.x0, h = b.y1 - b.y0;
                const double dx = rng.normal() * sigma, dy = rng.normal() * sigma;
                b.x0 = std::clamp(b.x0 + dx, 0.0, l.cols - w);
                b.y0 = std::clamp(b.y0 + dy, 0.0, l.rows - h);
                b.x1 = b.x0 + w;
                b.y1 = b.y0 + h;
                shift_sum += std::hypot(b.x0 - exact[j].x0, b.y0 - exact[j].y0);
            }
            std::vector<std::uint8_t> ok_j = box_ok;
            const auto xj = box_features(moved, &ok_j);
            const auto scores = cross_validated_scores(xj, static_cast<std::size_t>(D), box_labels,
                                                       box_folds, o.cv.c_grid, o.encoder.threads);
            char key[64];
            std::snprintf(key, sizeof key, "box σ=%gpx", sigma);
            box_rows(key, scores);
            const auto y = ok_subset(box_labels);
            const auto cl = eval::cluster_ids(ok_groups);
            diff_family.push_back(result.rows.size());
            result.rows.push_back(detail::auroc_difference_row(
                "lesions", std::string(key) + " − σ=0px", "all", "patch_local", y,
                ok_subset(scores), ok_subset(exact_scores), cl, o.cv.n_boot, o.cv.level, o.seed));
            jitter_json.push_back(
                {{"sigma_px", sigma},
                 {"mean_shift_px", n_lesion_boxes ? shift_sum / n_lesion_boxes : 0.0}});
        }
    }
    adjust_family(result.rows, auc_family);
    adjust_family(result.rows, diff_family);

    // Per-box table.
    std::string boxes_csv =
        "image,kind,x0,y0,x1,y1,area_fraction,stratum,same_image_control,in_model_input,score\n";
    for (std::size_t j = 0; j < samples.size(); ++j) {
        const auto& s = samples[j];
        char nums[160];
        std::snprintf(nums, sizeof nums, "%g,%g,%g,%g,%.6g", s.box.x0, s.box.y0, s.box.x1, s.box.y1,
                      s.fraction);
        boxes_csv += csv_line({manifest.record(loaded[s.image].record).id,
                               s.label == 1.0 ? "lesion" : "control"}) +
                     "," + nums + "," +
                     csv_escape(s.stratum >= 0 ? stratum_name(s.stratum, o.area_thresholds) : "") +
                     "," + (s.label == 1.0 ? "" : (s.same_image ? "1" : "0")) + "," +
                     (box_ok[j] ? "1" : "0") + "," +
                     (box_level ? std::to_string(exact_scores[j]) : std::string()) + "\n";
    }

    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json j;
    j["analysis"] = "lesions";
    j["model"] = model.name();
    j["model_dir"] = fs::absolute(o.encoder.model_dir).string();
    j["manifest"] = fs::absolute(o.manifest).string();
    j["label"] = o.label;
    j["box_label"] = box_label;
    j["images"] = loaded.size();
    j["positives"] = positives;
    j["area_thresholds"] = o.area_thresholds;
    std::vector<std::string> strata_names;
    for (int s = 0; s <= T; ++s) {
        strata_names.push_back(stratum_name(s, o.area_thresholds));
    }
    j["strata"] = strata_names;
    j["positives_per_stratum"] = stratum_counts;
    j["lesion_boxes"] = n_lesion_boxes;
    j["boxes_without_control"] = skipped;
    j["controls_from_other_images"] = cross_image_controls;
    j["control_region"] = region_from_masks ? "lung masks" : "central half (no lung masks)";
    j["box_level"] = box_level;
    j["jitter"] = jitter_json;
    j["folds"] = o.cv.folds;
    j["c_grid"] = o.cv.c_grid;
    j["n_boot"] = o.cv.n_boot;
    j["seed"] = o.seed;
    j["p_values"] =
        "Wald with the patient-clustered bootstrap SE; BH across the AUROC rows and, separately, "
        "across the difference rows";
    j["rows"] = nlohmann::json::parse(detail::rows_json(result.rows));
    j["seconds"] = result.seconds;
    result.metrics_json = j.dump(2) + "\n";
    if (o.out) {
        write_file_atomic(*o.out / "lesions.csv", rows_csv(result.rows));
        write_file_atomic(*o.out / "lesion_boxes.csv", boxes_csv);
        write_file_atomic(*o.out / "metrics.json", result.metrics_json);
        result.files = {*o.out / "lesions.csv", *o.out / "lesion_boxes.csv",
                        *o.out / "metrics.json"};
    }
    return result;
}

}  // namespace radprobe::analysis
