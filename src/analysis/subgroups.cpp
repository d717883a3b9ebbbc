// `radprobe analyze subgroups`: metrics per subgroup of an attribute with CIs and the gap, and
// the chest-tube shortcut experiment on phantoms.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "internal.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/heads/heads.hpp"
#include "radprobe/synth/phantom.hpp"

namespace radprobe::analysis {
namespace fs = std::filesystem;

namespace {

std::vector<std::size_t> clusters_of(const std::vector<const ScoredImage*>& images) {
    std::vector<std::string> keys;
    for (const auto* s : images) {
        keys.push_back(s->patient.empty() ? "image:" + s->image : s->patient);
    }
    return eval::cluster_ids(keys);
}

// Ordered levels of an attribute and their display names: 0/1 (also false/true) become
// present / absent with "present" first; anything else is sorted.
std::vector<std::pair<std::string, std::string>> levels_of(const std::set<std::string>& values) {
    const bool binary = std::all_of(values.begin(), values.end(), [](const std::string& v) {
        return v == "0" || v == "1" || v == "true" || v == "false";
    });
    std::vector<std::pair<std::string, std::string>> out;
    if (binary) {
        for (const char* v : {"1", "true"}) {
            if (values.count(v)) {
                out.emplace_back(v, "present");
            }
        }
        for (const char* v : {"0", "false"}) {
            if (values.count(v)) {
                out.emplace_back(v, "absent");
            }
        }
        return out;
    }
    for (const auto& v : values) {
        out.emplace_back(v, v);
    }
    return out;
}

}  // namespace

AnalysisResult run_subgroups(const SubgroupOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    RADPROBE_USAGE_CHECK(!o.attributes.empty(), "--attribute: at least one attribute is required");
    RADPROBE_USAGE_CHECK(o.n_boot >= 100, "--n-boot must be >= 100, got ", o.n_boot);
    RADPROBE_CHECK(!o.images.empty(), o.source, ": no scored images");
    for (const auto& s : o.images) {
        RADPROBE_CHECK(s.attributes.size() == o.attributes.size(), o.source, ": image ", s.image,
                       " has ", s.attributes.size(), " attribute values, expected ",
                       o.attributes.size());
        RADPROBE_CHECK(s.label == 0.0 || s.label == 1.0, o.source, ": image ", s.image, ": label ",
                       s.label, " is not 0 or 1");
        RADPROBE_CHECK(std::isfinite(s.score), o.source, ": image ", s.image,
                       ": score is not finite");
    }
    AnalysisResult result;
    result.analysis = "subgroups";
    result.seed = o.seed;
    std::vector<std::size_t> gap_family;
    nlohmann::json attrs = nlohmann::json::array();
    for (std::size_t a = 0; a < o.attributes.size(); ++a) {
        const std::string& attr = o.attributes[a];
        std::set<std::string> values;
        std::size_t unknown = 0;
        for (const auto& s : o.images) {
            if (s.attributes[a].empty()) {
                ++unknown;
            } else {
                values.insert(s.attributes[a]);
            }
        }
        const auto levels = levels_of(values);
        RADPROBE_CHECK(levels.size() >= 2 && levels.size() <= 50, o.source, ": attribute '", attr,
                       "' has ", levels.size(), " levels (needs 2..50)");
        struct Level {
            std::string name;
            std::vector<double> labels, scores;
            std::vector<std::size_t> clusters;
        };
        std::vector<Level> lv;
        for (const auto& [value, name] : levels) {
            Level L;
            L.name = name;
            std::vector<const ScoredImage*> members;
            for (const auto& s : o.images) {
                if (s.attributes[a] == value) {
                    members.push_back(&s);
                    L.labels.push_back(s.label);
                    L.scores.push_back(s.score);
                }
            }
            L.clusters = clusters_of(members);
            result.rows.push_back(detail::auroc_row("subgroups", attr, name, "auroc", L.labels,
                                                    L.scores, L.clusters, o.n_boot, o.level,
                                                    o.seed));
            result.rows.back().p.reset();  // a subgroup's AUROC is not a test here
            lv.push_back(std::move(L));
        }
        // Gaps: the first level against the second (two levels), else each level against the
        // largest one.
        std::size_t ref = 1;
        if (lv.size() > 2) {
            ref = 0;
            for (std::size_t i = 1; i < lv.size(); ++i) {
                if (lv[i].labels.size() > lv[ref].labels.size()) {
                    ref = i;
                }
            }
        }
        for (std::size_t i = 0; i < lv.size(); ++i) {
            if (i == ref || (lv.size() == 2 && i == 1)) {
                continue;
            }
            const Level& g1 = lv[i];
            const Level& g2 = lv[ref];
            AnalysisTableRow row = detail::make_row(
                "subgroups", attr, lv.size() == 2 ? "gap" : "gap " + g1.name + " − " + g2.name,
                "auroc");
            row.n = static_cast<std::int64_t>(g1.labels.size() + g2.labels.size());
            const auto c1 = eval::count_classes(g1.labels);
            const auto c2 = eval::count_classes(g2.labels);
            if (c1.positives && c1.negatives && c2.positives && c2.negatives) {
                eval::BootstrapOptions bo;
                bo.replicates = o.n_boot;
                bo.seed = o.seed;
                bo.level = o.level;
                const auto ci = eval::bootstrap_auroc_unpaired_difference(
                    g1.labels, g1.scores, g2.labels, g2.scores, bo, g1.clusters, g2.clusters);
                row.value = ci.estimate;
                if (ci.valid > 1) {
                    row.ci_lo = ci.ci_lo;
                    row.ci_hi = ci.ci_hi;
                }
                if (c1.positives >= 2 && c1.negatives >= 2 && c2.positives >= 2 &&
                    c2.negatives >= 2) {
                    row.p = eval::delong_unpaired_test(g1.labels, g1.scores, g2.labels, g2.scores,
                                                       o.level)
                                .p;
                } else {
                    row.p = detail::wald_p(ci.estimate, 0.0, ci.se, ci.valid);
                }
            }
            gap_family.push_back(result.rows.size());
            result.rows.push_back(std::move(row));
        }
        nlohmann::json levels_json = nlohmann::json::array();
        for (const auto& L : lv) {
            const auto c = eval::count_classes(L.labels);
            levels_json.push_back(
                {{"level", L.name}, {"n", L.labels.size()}, {"positives", c.positives}});
        }
        attrs.push_back({{"attribute", attr}, {"levels", levels_json}, {"unknown", unknown}});
    }
    adjust_family(result.rows, gap_family);
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json j;
    j["analysis"] = "subgroups";
    j["source"] = o.source;
    j["images"] = o.images.size();
    j["attributes"] = attrs;
    j["n_boot"] = o.n_boot;
    j["level"] = o.level;
    j["seed"] = o.seed;
    j["ci"] = "percentile bootstrap resampling patients within each subgroup";
    j["p_values"] = "gap: unpaired DeLong (pROC roc.test paired = FALSE); BH across all gaps";
    j["rows"] = nlohmann::json::parse(detail::rows_json(result.rows));
    result.metrics_json = j.dump(2) + "\n";
    if (o.out) {
        write_file_atomic(*o.out / "subgroups.csv", rows_csv(result.rows));
        write_file_atomic(*o.out / "metrics.json", result.metrics_json);
        result.files = {*o.out / "subgroups.csv", *o.out / "metrics.json"};
    }
    return result;
}

std::vector<ScoredImage> read_scored_images(const fs::path& predictions_csv,
                                            const std::optional<fs::path>& manifest_path,
                                            const std::vector<std::string>& attributes,
                                            const std::string& label_column,
                                            const std::string& score_column) {
    const CsvTable t = CsvTable::read(predictions_csv);
    const std::size_t ci = t.column("image");
    const std::size_t cl = t.column(label_column);
    const std::size_t cs = t.column(score_column);
    const auto cp = t.find_column("patient_id");
    std::optional<dataset::Manifest> manifest;
    std::vector<std::optional<std::size_t>> in_csv;
    for (const auto& a : attributes) {
        in_csv.push_back(t.find_column(a));
        if (!in_csv.back()) {
            RADPROBE_CHECK(manifest_path.has_value(), predictions_csv.string(), ": no column '", a,
                           "' (give --manifest to take the attribute from the manifest)");
            if (!manifest) {
                manifest = dataset::Manifest::load(*manifest_path);
            }
            const auto& names = manifest->attribute_names();
            RADPROBE_CHECK(std::find(names.begin(), names.end(), a) != names.end() ||
                               manifest->label_index(a).has_value(),
                           manifest_path->string(), ": no column '", a, "'");
        }
    }
    std::vector<ScoredImage> out;
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const auto& row = t.rows()[r];
        if (row[cl].empty()) {
            continue;
        }
        const auto label = parse_double(row[cl]);
        const auto score = parse_double(row[cs]);
        RADPROBE_CHECK(label && (*label == 0.0 || *label == 1.0), predictions_csv.string(), ":",
                       t.line_of_row(r), ": column '", label_column, "': '", row[cl],
                       "' is not 0 or 1");
        RADPROBE_CHECK(score && std::isfinite(*score), predictions_csv.string(), ":",
                       t.line_of_row(r), ": column '", score_column, "': '", row[cs],
                       "' is not a finite number");
        ScoredImage s;
        s.image = row[ci];
        s.patient = cp ? row[*cp] : "";
        s.label = *label;
        s.score = *score;
        for (std::size_t a = 0; a < attributes.size(); ++a) {
            if (in_csv[a]) {
                s.attributes.push_back(row[*in_csv[a]]);
            } else {
                const auto idx = manifest->find(s.image);
                RADPROBE_CHECK(idx.has_value(), predictions_csv.string(), ":", t.line_of_row(r),
                               ": image '", s.image, "' is not in ", manifest_path->string());
                s.attributes.push_back(manifest->attribute(*idx, attributes[a]));
                if (s.patient.empty()) {
                    s.patient = manifest->record(*idx).patient_id;
                }
            }
        }
        out.push_back(std::move(s));
    }
    RADPROBE_CHECK(!out.empty(), predictions_csv.string(), ": no rows with a label");
    return out;
}

// ---------------------------------------------------------------------------------------------
// Shortcut experiment
// ---------------------------------------------------------------------------------------------

namespace {

struct PhantomSet {
    fs::path dir;
    dataset::Manifest manifest;
};

PhantomSet make_set(const fs::path& dir, std::size_t n, int size, std::uint64_t seed, double phi,
                    double prevalence, int threads) {
    if (!fs::exists(dir / "manifest.csv")) {
        synth::SynthOptions so;
        so.n = n;
        so.size = size;
        so.seed = seed;
        so.pneumothorax_prevalence = prevalence;
        so.tube_prevalence = prevalence;
        so.tube_ptx_correlation = phi;
        so.threads = threads;
        synth::write_dataset(dir, so);
    }
    return {dir, dataset::Manifest::load(dir / "manifest.csv")};
}

struct Embedded {
    std::vector<float> x;  // rows in manifest order (failed rows dropped)
    std::vector<std::size_t> records;
    std::size_t dim = 0;
};

Embedded embed(const PhantomSet& set, const ShortcutOptions& o, const std::string& pool,
               const fs::path& store_root) {
    features::ExtractOptions eo;
    eo.model_dir = o.encoder.model_dir;
    eo.manifest = set.dir / "manifest.csv";
    eo.poolings = features::parse_poolings(pool);
    eo.store_root = store_root;
    eo.batch = o.encoder.batch;
    eo.threads = o.encoder.threads;
    eo.resize = o.encoder.resize;
    eo.fold_grayscale = o.encoder.fold_grayscale;
    eo.progress = o.progress;
    eo.strict = true;
    const auto r = features::extract(eo);
    const auto t = features::read_embeddings(r.store_dir, pool);
    Embedded e;
    e.x = t.values;
    e.dim = static_cast<std::size_t>(t.dim);
    for (const auto& id : t.image_ids) {
        e.records.push_back(*set.manifest.find(id));
    }
    return e;
}

}  // namespace

AnalysisResult run_shortcut(const ShortcutOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    RADPROBE_USAGE_CHECK(o.correlation > 0 && o.correlation <= 1,
                         "--correlation must be in (0, 1], got ", o.correlation);
    RADPROBE_USAGE_CHECK(o.prevalence > 0.05 && o.prevalence <= 0.5,
                         "--prevalence must be in (0.05, 0.5], got ", o.prevalence);
    RADPROBE_USAGE_CHECK(o.n_train >= 60 && o.n_test >= 60, "--n-train and --n-test must be >= 60");
    RADPROBE_USAGE_CHECK(!o.work_dir.empty(), "--work: a directory for the phantoms is required");
    RADPROBE_USAGE_CHECK(o.n_boot >= 100, "--n-boot must be >= 100, got ", o.n_boot);
    for (const auto& p : o.poolings) {
        RADPROBE_USAGE_CHECK(p == "cls" || p == "mean", "--pool: '", p,
                             "' (the shortcut experiment uses cls and/or mean)");
    }
    char tag[96];
    std::snprintf(tag, sizeof tag, "s%d-p%g-seed%llu", o.size, o.prevalence,
                  static_cast<unsigned long long>(o.seed));
    char phi_tag[32];
    std::snprintf(phi_tag, sizeof phi_tag, "%g", o.correlation);
    const fs::path work = o.work_dir;
    const PhantomSet shortcut_set = make_set(
        work / (std::string("train-phi") + phi_tag + "-" + tag + "-n" + std::to_string(o.n_train)),
        o.n_train, o.size, o.seed * 3 + 1, o.correlation, o.prevalence, o.threads);
    const PhantomSet control_set =
        make_set(work / (std::string("train-phi0-") + tag + "-n" + std::to_string(o.n_train)),
                 o.n_train, o.size, o.seed * 3 + 2, 0.0, o.prevalence, o.threads);
    const PhantomSet test_set =
        make_set(work / (std::string("test-phi0-") + tag + "-n" + std::to_string(o.n_test)),
                 o.n_test, o.size, o.seed * 3 + 3, 0.0, o.prevalence, o.threads);

    AnalysisResult result;
    result.analysis = "shortcut";
    result.seed = o.seed;
    std::vector<std::size_t> auc_family, diff_family;
    nlohmann::json models = nlohmann::json::array();
    // The test order is the test manifest's (strict extraction keeps every image).
    const auto ptx_test = test_set.manifest.label_vector("pneumothorax");
    std::vector<std::string> test_groups;
    std::vector<double> test_labels;
    std::vector<std::uint8_t> tube;
    for (std::size_t r = 0; r < test_set.manifest.size(); ++r) {
        test_labels.push_back(ptx_test[r]);
        test_groups.push_back(test_set.manifest.record(r).patient_id);
        tube.push_back(test_set.manifest.attribute(r, "chest_tube") == "1");
    }
    std::string model_name = o.encoder.model_dir.filename().string();
    auto in_subset = [&](std::size_t i, int which) {
        return which < 0 || test_labels[i] == 0.0 || tube[i] == which;
    };
    // Rows of one model family ("mean", "cls", "baseline") given its shortcut- and
    // control-trained scores on the test set.
    auto emit = [&](const std::string& name, std::map<std::string, std::vector<double>>& scores) {
        const std::vector<std::pair<std::string, int>> subsets = {
            {"all", -1}, {"tube-free positives", 0}, {"tube positives", 1}};
        for (const char* which_name : {"shortcut", "control"}) {
            const std::string which = which_name;
            char key[128];
            std::snprintf(key, sizeof key, "%s trained φ=%g", name.c_str(),
                          which == "shortcut" ? o.correlation : 0.0);
            const auto& sc = scores[which];
            RADPROBE_ASSERT(sc.size() == test_labels.size());
            for (const auto& [subset, w] : subsets) {
                std::vector<double> yy, ss;
                std::vector<std::string> gg;
                for (std::size_t i = 0; i < test_labels.size(); ++i) {
                    if (in_subset(i, w)) {
                        yy.push_back(test_labels[i]);
                        ss.push_back(sc[i]);
                        gg.push_back(test_groups[i]);
                    }
                }
                auc_family.push_back(result.rows.size());
                result.rows.push_back(detail::auroc_row("shortcut", key, subset, "auroc", yy, ss,
                                                        eval::cluster_ids(gg), o.n_boot, o.level,
                                                        o.seed));
            }
            // Gap tube-free − tube positives (shared negatives: one clustered bootstrap).
            std::vector<std::uint8_t> free_set(test_labels.size()), tube_set(test_labels.size());
            for (std::size_t i = 0; i < test_labels.size(); ++i) {
                free_set[i] = in_subset(i, 0);
                tube_set[i] = in_subset(i, 1);
            }
            const eval::WeightedStatistic stat = [&](std::span<const std::uint32_t> counts) {
                return detail::weighted_auroc(test_labels, sc, counts, free_set) -
                       detail::weighted_auroc(test_labels, sc, counts, tube_set);
            };
            eval::BootstrapOptions bo;
            bo.replicates = o.n_boot;
            bo.seed = o.seed;
            bo.level = o.level;
            const auto ci = eval::bootstrap_statistic(test_labels.size(), stat, bo, {},
                                                      eval::cluster_ids(test_groups));
            AnalysisTableRow row =
                detail::make_row("shortcut", key, "tube-free − tube positives", "auroc");
            row.n = static_cast<std::int64_t>(test_labels.size());
            if (std::isfinite(ci.estimate)) {
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
        // The drop on tube-free positives: control − shortcut on the same test images.
        std::vector<double> yy, s_control, s_shortcut;
        std::vector<std::string> gg;
        for (std::size_t i = 0; i < test_labels.size(); ++i) {
            if (in_subset(i, 0)) {
                yy.push_back(test_labels[i]);
                s_control.push_back(scores["control"][i]);
                s_shortcut.push_back(scores["shortcut"][i]);
                gg.push_back(test_groups[i]);
            }
        }
        char key[128];
        std::snprintf(key, sizeof key, "%s φ=0 − φ=%g", name.c_str(), o.correlation);
        diff_family.push_back(result.rows.size());
        result.rows.push_back(detail::auroc_difference_row(
            "shortcut", key, "drop on tube-free positives", "auroc", yy, s_control, s_shortcut,
            eval::cluster_ids(gg), o.n_boot, o.level, o.seed));
    };

    for (const std::string& pool : o.poolings) {
        const auto te = embed(test_set, o, pool, work / "embeddings");
        RADPROBE_CHECK(te.records.size() == test_labels.size(), test_set.dir.string(),
                       ": some test phantoms failed to encode");
        std::map<std::string, std::vector<double>> scores;
        for (const auto* set : {&shortcut_set, &control_set}) {
            const bool is_shortcut = set == &shortcut_set;
            const auto tr = embed(*set, o, pool, work / "embeddings");
            const auto y = set->manifest.label_vector("pneumothorax");
            std::vector<float> tx, vx;
            std::vector<double> ty, vy;
            for (std::size_t i = 0; i < tr.records.size(); ++i) {
                const auto& rec = set->manifest.record(tr.records[i]);
                const float* row = tr.x.data() + i * tr.dim;
                if (rec.split == dataset::Split::kVal) {
                    vx.insert(vx.end(), row, row + tr.dim);
                    vy.push_back(y[tr.records[i]]);
                } else {  // train and test splits of a training set both train
                    tx.insert(tx.end(), row, row + tr.dim);
                    ty.push_back(y[tr.records[i]]);
                }
            }
            heads::ProbeOptions po;
            po.c_grid = o.c_grid;
            po.threads = o.threads;
            po.lbfgs.threads = o.threads;
            po.lbfgs.tol = 1e-6;
            const auto r = heads::fit_binary_probe(tx, ty, vx, vy, te.x, tr.dim, po);
            scores[is_shortcut ? "shortcut" : "control"] = r.test_scores;
            models.push_back({{"model", pool},
                              {"training_phi", is_shortcut ? o.correlation : 0.0},
                              {"train", ty.size()},
                              {"val", vy.size()},
                              {"chosen_c", r.chosen}});
        }
        emit(pool, scores);
    }
    if (o.baseline_epochs > 0) {
        // The supervised CNN trained from scratch on the same sets: one manifest per training
        // set (its train+test as train, its val as val) with the balanced set as test.
        std::map<std::string, std::vector<double>> scores;
        for (const auto* set : {&shortcut_set, &control_set}) {
            const bool is_shortcut = set == &shortcut_set;
            std::string csv = "image,patient_id,split,pneumothorax\n";
            for (const auto& rec : set->manifest.records()) {
                csv += csv_line(
                           {fs::absolute(rec.image_path).string(), "train-" + rec.patient_id,
                            rec.split == dataset::Split::kVal ? "val" : "train",
                            set->manifest.attribute(*set->manifest.find(rec.id), "pneumothorax")}) +
                       "\n";
            }
            for (const auto& rec : test_set.manifest.records()) {
                csv += csv_line({fs::absolute(rec.image_path).string(), "test-" + rec.patient_id,
                                 "test",
                                 test_set.manifest.attribute(*test_set.manifest.find(rec.id),
                                                             "pneumothorax")}) +
                       "\n";
            }
            const fs::path m =
                work / (std::string("baseline-") + (is_shortcut ? "phi" : "phi0-") +
                        (is_shortcut ? std::string(phi_tag) + "-" : "") + tag + ".csv");
            write_file_atomic(m, csv);
            heads::BaselineOptions bo;
            bo.manifest = m;
            bo.label = "pneumothorax";
            bo.size = o.baseline_size;
            bo.epochs = o.baseline_epochs;
            bo.seed = o.seed;
            bo.threads = o.threads;
            bo.n_boot = 100;
            bo.progress = o.progress;
            const auto r = heads::run_baseline(bo);
            std::map<std::string, double> by_image;
            for (std::size_t i = 0; i < r.test.test_images.size(); ++i) {
                by_image[r.test.test_images[i]] = r.test.test_scores[i];
            }
            std::vector<double> sc;
            for (const auto& rec : test_set.manifest.records()) {
                const auto it = by_image.find(fs::absolute(rec.image_path).string());
                RADPROBE_CHECK(it != by_image.end(), m.string(), ": the baseline did not score ",
                               rec.id);
                sc.push_back(it->second);
            }
            scores[is_shortcut ? "shortcut" : "control"] = std::move(sc);
            models.push_back({{"model", "baseline"},
                              {"training_phi", is_shortcut ? o.correlation : 0.0},
                              {"epochs_run", r.epochs_run},
                              {"best_epoch", r.best_epoch},
                              {"best_val_auroc", r.best_val_auroc}});
        }
        emit("baseline", scores);
    }
    adjust_family(result.rows, auc_family);
    adjust_family(result.rows, diff_family);
    std::size_t test_pos = 0, test_pos_tube = 0, test_neg_tube = 0;
    for (std::size_t i = 0; i < test_labels.size(); ++i) {
        test_pos += test_labels[i] == 1.0;
        test_pos_tube += test_labels[i] == 1.0 && tube[i];
        test_neg_tube += test_labels[i] == 0.0 && tube[i];
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json j;
    j["analysis"] = "shortcut";
    j["model"] = model_name;
    j["model_dir"] = fs::absolute(o.encoder.model_dir).string();
    j["training_phi"] = o.correlation;
    j["prevalence"] = o.prevalence;
    j["size"] = o.size;
    j["n_train"] = o.n_train;
    j["n_test"] = o.n_test;
    j["test"] = {{"images", test_labels.size()},
                 {"positives", test_pos},
                 {"positives_with_tube", test_pos_tube},
                 {"negatives_with_tube", test_neg_tube}};
    j["sets"] = {{"shortcut_train", fs::absolute(shortcut_set.dir).string()},
                 {"control_train", fs::absolute(control_set.dir).string()},
                 {"test", fs::absolute(test_set.dir).string()}};
    j["models"] = models;
    j["n_boot"] = o.n_boot;
    j["seed"] = o.seed;
    j["p_values"] =
        "Wald with the patient-clustered bootstrap SE; BH across AUROC rows and, separately, "
        "across the difference rows";
    j["rows"] = nlohmann::json::parse(detail::rows_json(result.rows));
    j["seconds"] = result.seconds;
    result.metrics_json = j.dump(2) + "\n";
    if (o.out) {
        write_file_atomic(*o.out / "shortcut.csv", rows_csv(result.rows));
        write_file_atomic(*o.out / "metrics.json", result.metrics_json);
        result.files = {*o.out / "shortcut.csv", *o.out / "metrics.json"};
    }
    return result;
}

}  // namespace radprobe::analysis
