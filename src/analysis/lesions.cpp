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

void validate(const LesionOptions& o) {
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
}

// The images of the analysis: a seeded sample of those with a known label.
std::vector<std::size_t> choose_images(const dataset::Manifest& manifest,
                                       const std::vector<std::int8_t>& label_vec,
                                       const LesionOptions& o) {
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
    return chosen;
}

// What every step shares: the options, the manifest, the encoded images and the table so far
// with its two BH families (AUROC rows, difference rows).
struct LesionRun {
    LesionRun(const LesionOptions& options, const dataset::Manifest& m) : o(options), manifest(m) {}

    const LesionOptions& o;
    const dataset::Manifest& manifest;
    std::string box_label;
    std::int64_t dim = 0;
    int thresholds = 0;  // T: strata 0..T
    std::vector<Loaded> loaded;
    std::size_t positives = 0;
    AnalysisResult result;
    std::vector<std::size_t> auc_family, diff_family;

    void add_auc(AnalysisTableRow row) {
        auc_family.push_back(result.rows.size());
        result.rows.push_back(std::move(row));
    }
    void add_difference(AnalysisTableRow row) {
        diff_family.push_back(result.rows.size());
        result.rows.push_back(std::move(row));
    }
    std::string stratum(int s) const { return stratum_name(s, o.area_thresholds); }
    eval::BootstrapOptions bootstrap() const {
        return detail::bootstrap_options(o.cv.n_boot, o.cv.level, o.seed);
    }
};

// Decodes the chosen images, reads their boxes (stratum of the largest lesion box) and
// encodes them, one batch per image size.
void load_images(LesionRun& run, detail::ModelRunner& model, const std::vector<std::size_t>& chosen,
                 const std::vector<std::int8_t>& label_vec) {
    std::map<std::pair<int, int>, std::vector<std::size_t>> by_size;
    std::vector<imaging::Image> images;
    for (std::size_t idx : chosen) {
        const auto& rec = run.manifest.record(idx);
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
            if (b.label == run.box_label || run.box_label == "*") {
                l.lesions.push_back({b.x0, b.y0, b.x1, b.y1});
                const double f = (b.x1 - b.x0) * (b.y1 - b.y0) / (double(img.rows) * img.cols);
                l.largest_fraction = std::max(l.largest_fraction, f);
            }
        }
        if (l.label == 1.0 && !l.lesions.empty()) {
            l.stratum = stratum_of(l.largest_fraction, run.o.area_thresholds);
        }
        by_size[{img.rows, img.cols}].push_back(run.loaded.size());
        run.loaded.push_back(std::move(l));
        images.push_back(std::move(img));
    }
    for (const auto& l : run.loaded) {
        run.positives += l.label == 1.0;
    }
    const std::size_t negatives = run.loaded.size() - run.positives;
    RADPROBE_CHECK(run.positives >= 4 && negatives >= 4, run.o.manifest.string(), ": label '",
                   run.o.label, "' needs at least 4 positive and 4 negative images (has ",
                   run.positives, " and ", negatives, ")");
    Progress progress("lesions " + model.name(), run.loaded.size(), "images");
    progress.set_enabled(run.o.progress && stderr_is_tty());
    for (const auto& [size, members] : by_size) {
        std::vector<const float*> ptrs;
        for (std::size_t m : members) {
            ptrs.push_back(images[m].pixels.data());
        }
        auto tokens = model.encode(ptrs, size.first, size.second);
        for (std::size_t j = 0; j < members.size(); ++j) {
            run.loaded[members[j]].tokens = std::move(tokens[j]);
        }
        progress.advance(members.size());
    }
    progress.finish();
}

// ---------------------------------------------------------------------------------------------
// Image level: cls and mean probes, AUROC per stratum (stratum positives vs all negatives),
// and each stratum against the largest.
// ---------------------------------------------------------------------------------------------

struct ImageLevel {
    std::vector<std::string> groups;
    std::vector<double> labels;
    std::map<std::string, std::vector<double>> scores;  // out-of-fold, per pooling
    std::vector<std::size_t> stratum_counts;            // positives per stratum
};

// The AUROC of one pooling over the negatives and the positives that `keep_positive` keeps.
AnalysisTableRow image_auroc_row(const LesionRun& run, const ImageLevel& im,
                                 const std::string& pool, const std::string& key2,
                                 const std::function<bool(const Loaded&)>& keep_positive) {
    std::vector<double> y, s;
    std::vector<std::string> g;
    const auto& scores = im.scores.at(pool);
    for (std::size_t i = 0; i < run.loaded.size(); ++i) {
        if (run.loaded[i].label == 0.0 || keep_positive(run.loaded[i])) {
            y.push_back(im.labels[i]);
            s.push_back(scores[i]);
            g.push_back(im.groups[i]);
        }
    }
    return detail::auroc_row("lesions", "image", key2, pool, y, s, eval::cluster_ids(g),
                             run.o.cv.n_boot, run.o.cv.level, run.o.seed);
}

// Stratum s − the largest stratum: both share the negatives, so one clustered bootstrap over
// all images evaluates the two AUROCs on the same resample.
AnalysisTableRow stratum_gap_row(const LesionRun& run, const ImageLevel& im,
                                 const std::string& pool, int s) {
    const int T = run.thresholds;
    const auto& loaded = run.loaded;
    std::vector<std::uint8_t> in_s(loaded.size()), in_top(loaded.size());
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        in_s[i] = loaded[i].label == 0.0 || loaded[i].stratum == s;
        in_top[i] = loaded[i].label == 0.0 || loaded[i].stratum == T;
    }
    const auto& sc = im.scores.at(pool);
    const eval::WeightedStatistic stat = [&](std::span<const std::uint32_t> counts) {
        return detail::weighted_auroc(im.labels, sc, counts, in_s) -
               detail::weighted_auroc(im.labels, sc, counts, in_top);
    };
    AnalysisTableRow row =
        detail::make_row("lesions", "image gap", run.stratum(s) + " − " + run.stratum(T), pool);
    const std::size_t n_s = im.stratum_counts[static_cast<std::size_t>(s)];
    const std::size_t n_top = im.stratum_counts[static_cast<std::size_t>(T)];
    row.n = static_cast<std::int64_t>(n_s + n_top);
    if (n_s > 0 && n_top > 0) {
        const auto ci = eval::bootstrap_statistic(loaded.size(), stat, run.bootstrap(), {},
                                                  eval::cluster_ids(im.groups));
        detail::set_from_bootstrap(row, ci, 0.0);
    }
    return row;
}

// Returns the positives per stratum.
std::vector<std::size_t> image_level_rows(LesionRun& run, bool has_cls) {
    ImageLevel im;
    std::vector<int> strata_lab;
    for (const auto& l : run.loaded) {
        im.groups.push_back(l.group);
        im.labels.push_back(l.label);
        strata_lab.push_back(static_cast<int>(l.label));
    }
    const auto folds = grouped_folds(im.groups, strata_lab, run.o.cv.folds, run.o.seed);
    std::vector<std::string> pools;
    if (has_cls) {
        pools.push_back("cls");
    }
    pools.push_back("mean");
    const auto D = run.dim;
    for (const auto& pool : pools) {
        std::vector<float> x;
        for (const auto& l : run.loaded) {
            const auto v = pool == "cls" ? l.tokens.cls : detail::token_mean(l.tokens.patches, D);
            x.insert(x.end(), v.begin(), v.end());
        }
        im.scores[pool] = cross_validated_scores(x, static_cast<std::size_t>(D), im.labels, folds,
                                                 run.o.cv.c_grid, run.o.encoder.threads);
    }
    im.stratum_counts.assign(static_cast<std::size_t>(run.thresholds + 1), 0);
    for (const auto& l : run.loaded) {
        if (l.stratum >= 0) {
            ++im.stratum_counts[static_cast<std::size_t>(l.stratum)];
        }
    }
    for (const auto& pool : pools) {
        run.add_auc(image_auroc_row(run, im, pool, "all", [](const Loaded&) { return true; }));
        for (int s = 0; s <= run.thresholds; ++s) {
            run.add_auc(image_auroc_row(run, im, pool, run.stratum(s),
                                        [s](const Loaded& l) { return l.stratum == s; }));
        }
        for (int s = 0; s < run.thresholds; ++s) {
            run.add_difference(stratum_gap_row(run, im, pool, s));
        }
    }
    return im.stratum_counts;
}

// ---------------------------------------------------------------------------------------------
// Box level: lesion boxes vs same-size lesion-free lung boxes (same image when there is room,
// else a lesion-free image), patch-local pooling.
// ---------------------------------------------------------------------------------------------

struct BoxSamples {
    std::vector<BoxSample> samples;  // lesion, its control, lesion, its control, ...
    std::size_t skipped = 0;         // lesion boxes without a control or outside the input
    std::size_t cross_image_controls = 0;
    bool region_from_masks = false;
};

// The lung regions of the images, computed on first use.
class LungRegions {
public:
    LungRegions(const LesionRun& run, BoxSamples& out) : run_(run), out_(out) {}
    const std::vector<std::uint8_t>& operator()(std::size_t i) {
        auto it = regions_.find(i);
        if (it == regions_.end()) {
            bool from_masks = false;
            const Loaded& l = run_.loaded[i];
            it = regions_
                     .emplace(i, detail::lung_region(run_.manifest, l.record, l.rows, l.cols, false,
                                                     &from_masks))
                     .first;
            out_.region_from_masks = out_.region_from_masks || from_masks;
        }
        return it->second;
    }

private:
    const LesionRun& run_;
    BoxSamples& out_;
    std::map<std::size_t, std::vector<std::uint8_t>> regions_;
};

bool inside_model_input(const LesionRun& run, const BoxSample& bs) {
    try {
        features::roi_weights_from_boxes({bs.box}, run.loaded[bs.image].geometry, "box");
        return true;
    } catch (const InputError&) {
        return false;  // outside the model input (centre crop)
    }
}

// The control of one lesion box: in its own image when there is room, else in one of up to 20
// random lesion-free images.
std::optional<BoxSample> control_of(const LesionRun& run, const BoxSample& pos,
                                    std::size_t lesion_index,
                                    const std::vector<std::size_t>& negatives,
                                    LungRegions& region_of, BoxSamples& out, Rng& rng) {
    const double w = pos.box.x1 - pos.box.x0, h = pos.box.y1 - pos.box.y0;
    auto control = [&](std::size_t image, const features::RegionBox& box, bool same) {
        BoxSample c = pos;
        c.image = image;
        c.box = box;
        c.label = 0.0;
        c.lesion = lesion_index;
        c.same_image = same;
        return c;
    };
    if (auto c = place_control(run.loaded[pos.image], region_of(pos.image), w, h, rng)) {
        return control(pos.image, *c, true);
    }
    for (int attempt = 0; attempt < 20 && !negatives.empty(); ++attempt) {
        const std::size_t k = negatives[rng.below(negatives.size())];
        if (auto c2 = place_control(run.loaded[k], region_of(k), w, h, rng)) {
            ++out.cross_image_controls;
            return control(k, *c2, false);
        }
    }
    return std::nullopt;
}

BoxSamples collect_box_samples(const LesionRun& run) {
    BoxSamples out;
    std::vector<std::size_t> negatives;
    for (std::size_t i = 0; i < run.loaded.size(); ++i) {
        if (run.loaded[i].label == 0.0) {
            negatives.push_back(i);
        }
    }
    LungRegions region_of(run, out);
    for (std::size_t i = 0; i < run.loaded.size(); ++i) {
        const Loaded& l = run.loaded[i];
        if (l.label != 1.0) {
            continue;
        }
        for (const auto& b : l.lesions) {
            const std::size_t lesion_index = out.samples.size();
            Rng rng = Rng::derive(run.o.seed ^ 0xB0C5ULL, lesion_index);
            BoxSample pos;
            pos.image = i;
            pos.box = b;
            pos.label = 1.0;
            pos.fraction = (b.x1 - b.x0) * (b.y1 - b.y0) / (double(l.rows) * l.cols);
            pos.stratum = stratum_of(pos.fraction, run.o.area_thresholds);
            const auto neg = control_of(run, pos, lesion_index, negatives, region_of, out, rng);
            if (!neg || !inside_model_input(run, pos) || !inside_model_input(run, *neg)) {
                ++out.skipped;
                continue;
            }
            out.samples.push_back(pos);
            out.samples.push_back(*neg);
        }
    }
    return out;
}

struct BoxLevel {
    std::vector<features::RegionBox> exact;
    std::vector<std::string> groups;
    std::vector<double> labels;
    std::vector<std::uint8_t> ok;  // box inside the model input
    std::vector<int> folds;
    std::vector<double> exact_scores;
    std::size_t lesion_boxes = 0;
    bool enabled = false;  // enough lesion boxes for the box-level probe
    nlohmann::json jitter = nlohmann::json::array();
};

// Patch-local features (N×D) of the samples with these boxes; a box that left the model input
// is marked in `ok` and pooled over the whole grid.
std::vector<float> box_features(const LesionRun& run, const BoxSamples& bs,
                                const std::vector<features::RegionBox>& boxes,
                                std::vector<std::uint8_t>* ok) {
    std::vector<float> x;
    for (std::size_t j = 0; j < bs.samples.size(); ++j) {
        const Loaded& l = run.loaded[bs.samples[j].image];
        std::vector<float> w;
        try {
            w = features::roi_weights_from_boxes({boxes[j]}, l.geometry,
                                                 run.manifest.record(l.record).id);
        } catch (const InputError&) {
            (*ok)[j] = 0;  // a jittered box left the model input: nothing to pool but all
            w.assign(l.tokens.patches.size() / static_cast<std::size_t>(run.dim), 1.0f);
        }
        const auto v = detail::weighted_mean(l.tokens.patches, run.dim, w);
        x.insert(x.end(), v.begin(), v.end());
    }
    return x;
}

// The AUROC rows of one box set (all boxes, then per stratum) from its out-of-fold scores.
void box_auroc_rows(LesionRun& run, const BoxSamples& bs, const BoxLevel& bl,
                    const std::string& key, const std::vector<double>& scores) {
    auto one = [&](const std::string& key2, int stratum) {
        std::vector<double> y, sc;
        std::vector<std::string> g;
        for (std::size_t j = 0; j < bs.samples.size(); ++j) {
            if (bl.ok[j] && (stratum < 0 || bs.samples[j].stratum == stratum)) {
                y.push_back(bl.labels[j]);
                sc.push_back(scores[j]);
                g.push_back(bl.groups[j]);
            }
        }
        run.add_auc(detail::auroc_row("lesions", key, key2, "patch_local", y, sc,
                                      eval::cluster_ids(g), run.o.cv.n_boot, run.o.cv.level,
                                      run.o.seed));
    };
    one("all", -1);
    for (int s = 0; s <= run.thresholds; ++s) {
        one(run.stratum(s), s);
    }
}

// The lesion boxes displaced by Gaussian jitter σ (controls stay: they are random placements
// already); returns the mean displacement of the lesion boxes.
double jitter_boxes(const LesionRun& run, const BoxSamples& bs, double sigma, std::size_t si,
                    std::vector<features::RegionBox>& moved) {
    double shift_sum = 0;
    for (std::size_t j = 0; j < bs.samples.size(); ++j) {
        if (bs.samples[j].label != 1.0) {
            continue;
        }
        Rng rng = Rng::derive(run.o.seed ^ (0x717E4ULL + si), j);
        const Loaded& l = run.loaded[bs.samples[j].image];
        auto& b = moved[j];
        const double w = b.x1 - b.x0, h = b.y1 - b.y0;
        const double dx = rng.normal() * sigma, dy = rng.normal() * sigma;
        b.x0 = std::clamp(b.x0 + dx, 0.0, l.cols - w);
        b.y0 = std::clamp(b.y0 + dy, 0.0, l.rows - h);
        b.x1 = b.x0 + w;
        b.y1 = b.y0 + h;
        shift_sum += std::hypot(b.x0 - bs.samples[j].box.x0, b.y0 - bs.samples[j].box.y0);
    }
    return shift_sum;
}

// The entries of `v` whose box is inside the model input at the exact position.
template <typename T>
std::vector<T> ok_subset(const BoxLevel& bl, const std::vector<T>& v) {
    std::vector<T> out;
    for (std::size_t j = 0; j < v.size(); ++j) {
        if (bl.ok[j]) {
            out.push_back(v[j]);
        }
    }
    return out;
}

// One jitter σ: the AUROC rows of the displaced boxes and their difference to the exact boxes.
void jitter_rows(LesionRun& run, const BoxSamples& bs, BoxLevel& bl, std::size_t si) {
    const double sigma = run.o.jitter_sigmas[si];
    std::vector<features::RegionBox> moved = bl.exact;
    const double shift_sum = jitter_boxes(run, bs, sigma, si, moved);
    std::vector<std::uint8_t> ok_j = bl.ok;
    const auto xj = box_features(run, bs, moved, &ok_j);
    const auto scores = cross_validated_scores(xj, static_cast<std::size_t>(run.dim), bl.labels,
                                               bl.folds, run.o.cv.c_grid, run.o.encoder.threads);
    char key[64];
    std::snprintf(key, sizeof key, "box σ=%gpx", sigma);
    box_auroc_rows(run, bs, bl, key, scores);
    run.add_difference(detail::auroc_difference_row(
        "lesions", std::string(key) + " − σ=0px", "all", "patch_local", ok_subset(bl, bl.labels),
        ok_subset(bl, scores), ok_subset(bl, bl.exact_scores),
        eval::cluster_ids(ok_subset(bl, bl.groups)), run.o.cv.n_boot, run.o.cv.level, run.o.seed));
    bl.jitter.push_back({{"sigma_px", sigma},
                         {"mean_shift_px", bl.lesion_boxes ? shift_sum / bl.lesion_boxes : 0.0}});
}

BoxLevel box_level_rows(LesionRun& run, const BoxSamples& bs) {
    BoxLevel bl;
    std::vector<int> box_strata;
    for (const auto& s : bs.samples) {
        bl.exact.push_back(s.box);
        bl.groups.push_back(run.loaded[s.image].group);
        bl.labels.push_back(s.label);
        box_strata.push_back(static_cast<int>(s.label));
        bl.lesion_boxes += s.label == 1.0;
    }
    bl.ok.assign(bs.samples.size(), 1);
    const auto x_exact = box_features(run, bs, bl.exact, &bl.ok);
    bl.enabled = bl.lesion_boxes >= 4;
    if (!bl.enabled) {
        return bl;
    }
    bl.folds = grouped_folds(bl.groups, box_strata, run.o.cv.folds, run.o.seed);
    bl.exact_scores = cross_validated_scores(x_exact, static_cast<std::size_t>(run.dim), bl.labels,
                                             bl.folds, run.o.cv.c_grid, run.o.encoder.threads);
    box_auroc_rows(run, bs, bl, "box σ=0px", bl.exact_scores);
    for (std::size_t si = 0; si < run.o.jitter_sigmas.size(); ++si) {
        jitter_rows(run, bs, bl, si);
    }
    return bl;
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

std::string boxes_csv(const LesionRun& run, const BoxSamples& bs, const BoxLevel& bl) {
    std::string csv =
        "image,kind,x0,y0,x1,y1,area_fraction,stratum,same_image_control,in_model_input,score\n";
    for (std::size_t j = 0; j < bs.samples.size(); ++j) {
        const auto& s = bs.samples[j];
        char nums[160];
        std::snprintf(nums, sizeof nums, "%g,%g,%g,%g,%.6g", s.box.x0, s.box.y0, s.box.x1, s.box.y1,
                      s.fraction);
        csv += csv_line({run.manifest.record(run.loaded[s.image].record).id,
                         s.label == 1.0 ? "lesion" : "control"}) +
               "," + nums + "," + csv_escape(s.stratum >= 0 ? run.stratum(s.stratum) : "") + "," +
               (s.label == 1.0 ? "" : (s.same_image ? "1" : "0")) + "," + (bl.ok[j] ? "1" : "0") +
               "," + (bl.enabled ? std::to_string(bl.exact_scores[j]) : std::string()) + "\n";
    }
    return csv;
}

std::string metrics_json(const LesionRun& run, const std::string& model_name,
                         const std::vector<std::size_t>& stratum_counts, const BoxSamples& bs,
                         const BoxLevel& bl) {
    const LesionOptions& o = run.o;
    nlohmann::json j;
    j["analysis"] = "lesions";
    j["model"] = model_name;
    j["model_dir"] = fs::absolute(o.encoder.model_dir).string();
    j["manifest"] = fs::absolute(o.manifest).string();
    j["label"] = o.label;
    j["box_label"] = run.box_label;
    j["images"] = run.loaded.size();
    j["positives"] = run.positives;
    j["area_thresholds"] = o.area_thresholds;
    std::vector<std::string> strata_names;
    for (int s = 0; s <= run.thresholds; ++s) {
        strata_names.push_back(run.stratum(s));
    }
    j["strata"] = strata_names;
    j["positives_per_stratum"] = stratum_counts;
    j["lesion_boxes"] = bl.lesion_boxes;
    j["boxes_without_control"] = bs.skipped;
    j["controls_from_other_images"] = bs.cross_image_controls;
    j["control_region"] = bs.region_from_masks ? "lung masks" : "central half (no lung masks)";
    j["box_level"] = bl.enabled;
    j["jitter"] = bl.jitter;
    j["folds"] = o.cv.folds;
    j["c_grid"] = o.cv.c_grid;
    j["n_boot"] = o.cv.n_boot;
    j["seed"] = o.seed;
    j["p_values"] =
        "Wald with the patient-clustered bootstrap SE; BH across the AUROC rows and, separately, "
        "across the difference rows";
    j["rows"] = nlohmann::json::parse(detail::rows_json(run.result.rows));
    j["seconds"] = run.result.seconds;
    return j.dump(2) + "\n";
}

}  // namespace

AnalysisResult run_lesions(const LesionOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    validate(o);
    const dataset::Manifest manifest = detail::load_manifest(o.manifest, o.boxes, true);
    RADPROBE_CHECK(manifest.label_index(o.label).has_value(), o.manifest.string(), ": --label '",
                   o.label, "' is not a label column");
    const auto label_vec = manifest.label_vector(o.label);
    const std::vector<std::size_t> chosen = choose_images(manifest, label_vec, o);

    detail::ModelRunner model(o.encoder);
    LesionRun run(o, manifest);
    run.box_label = o.box_label.empty() ? o.label : o.box_label;
    run.dim = model.dim();
    run.thresholds = static_cast<int>(o.area_thresholds.size());
    load_images(run, model, chosen, label_vec);
    run.result.analysis = "lesions";
    run.result.seed = o.seed;

    const auto stratum_counts = image_level_rows(run, model.has_cls());
    const BoxSamples boxes = collect_box_samples(run);
    const BoxLevel box_level = box_level_rows(run, boxes);
    adjust_family(run.result.rows, run.auc_family);
    adjust_family(run.result.rows, run.diff_family);

    const std::string per_box = boxes_csv(run, boxes, box_level);
    AnalysisResult& result = run.result;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result.metrics_json = metrics_json(run, model.name(), stratum_counts, boxes, box_level);
    detail::write_result_files(result, o.out, "lesions.csv", {{"lesion_boxes.csv", per_box}});
    return std::move(run.result);
}

}  // namespace radprobe::analysis
