// `radprobe analyze subgroups`: metrics per subgroup of an attribute with CIs and the gap, and
// the chest-tube shortcut experiment on phantoms.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "internal.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/eval/metrics.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/probes/probes.hpp"
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

void validate(const SubgroupOptions& o) {
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
}

// The scored images of one level of an attribute.
struct Level {
    std::string name;
    std::vector<double> labels, scores;
    std::vector<std::size_t> clusters;
};

std::vector<Level> levels_of_attribute(const SubgroupOptions& o, std::size_t a,
                                       std::size_t* unknown) {
    std::set<std::string> values;
    for (const auto& s : o.images) {
        if (s.attributes[a].empty()) {
            ++*unknown;
        } else {
            values.insert(s.attributes[a]);
        }
    }
    const auto levels = levels_of(values);
    RADPROBE_CHECK(levels.size() >= 2 && levels.size() <= 50, o.source, ": attribute '",
                   o.attributes[a], "' has ", levels.size(), " levels (needs 2..50)");
    std::vector<Level> out;
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
        out.push_back(std::move(L));
    }
    return out;
}

// The AUROC gap g1 − g2 (unpaired bootstrap CI; unpaired DeLong p when both levels have two of
// each class, else the Wald p of the bootstrap).
AnalysisTableRow gap_row(const SubgroupOptions& o, const std::string& attr, const Level& g1,
                         const Level& g2, std::size_t n_levels) {
    AnalysisTableRow row = detail::make_row(
        "subgroups", attr, n_levels == 2 ? "gap" : "gap " + g1.name + " − " + g2.name, "auroc");
    row.n = static_cast<std::int64_t>(g1.labels.size() + g2.labels.size());
    const auto c1 = eval::count_classes(g1.labels);
    const auto c2 = eval::count_classes(g2.labels);
    if (!(c1.positives && c1.negatives && c2.positives && c2.negatives)) {
        return row;
    }
    const auto ci = eval::bootstrap_auroc_unpaired_difference(
        g1.labels, g1.scores, g2.labels, g2.scores,
        detail::bootstrap_options(o.n_boot, o.level, o.seed), g1.clusters, g2.clusters);
    detail::set_from_bootstrap(row, ci, 0.0);
    if (c1.positives >= 2 && c1.negatives >= 2 && c2.positives >= 2 && c2.negatives >= 2) {
        try {
            row.p =
                eval::delong_unpaired_test(g1.labels, g1.scores, g2.labels, g2.scores, o.level).p;
        } catch (const InputError&) {
            // Both levels perfectly separated: both DeLong variances are 0 and the t statistic
            // is undefined. The gap is still estimated; its p stays the bootstrap's Wald p.
        }
    }
    return row;
}

// The rows of one attribute (AUROC per level, then the gaps) and its metrics.json entry.
nlohmann::json attribute_rows(const SubgroupOptions& o, std::size_t a, AnalysisResult& result,
                              std::vector<std::size_t>& gap_family) {
    const std::string& attr = o.attributes[a];
    std::size_t unknown = 0;
    const std::vector<Level> lv = levels_of_attribute(o, a, &unknown);
    for (const Level& L : lv) {
        result.rows.push_back(detail::auroc_row("subgroups", attr, L.name, "auroc", L.labels,
                                                L.scores, L.clusters, o.n_boot, o.level, o.seed));
        result.rows.back().p.reset();  // a subgroup's AUROC is not a test here
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
        gap_family.push_back(result.rows.size());
        result.rows.push_back(gap_row(o, attr, lv[i], lv[ref], lv.size()));
    }
    nlohmann::json levels_json = nlohmann::json::array();
    for (const auto& L : lv) {
        const auto c = eval::count_classes(L.labels);
        levels_json.push_back(
            {{"level", L.name}, {"n", L.labels.size()}, {"positives", c.positives}});
    }
    return {{"attribute", attr}, {"levels", levels_json}, {"unknown", unknown}};
}

}  // namespace

AnalysisResult run_subgroups(const SubgroupOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    validate(o);
    AnalysisResult result;
    result.analysis = "subgroups";
    result.seed = o.seed;
    std::vector<std::size_t> gap_family;
    nlohmann::json attrs = nlohmann::json::array();
    for (std::size_t a = 0; a < o.attributes.size(); ++a) {
        attrs.push_back(attribute_rows(o, a, result, gap_family));
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
    detail::write_result_files(result, o.out, "subgroups.csv");
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

void validate(const ShortcutOptions& o) {
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
}

// The three phantom sets (reused from the work folder when present): training with the tube
// coupling, training without it, and the tube-balanced test set. Folder names carry every
// parameter that changes the phantoms.
struct ShortcutSets {
    std::string tag;      // "s<size>-p<prevalence>-seed<seed>"
    std::string phi_tag;  // the training correlation, "%g"
    PhantomSet shortcut, control, test;
};

ShortcutSets make_sets(const ShortcutOptions& o) {
    char tag[96];
    std::snprintf(tag, sizeof tag, "s%d-p%g-seed%llu", o.size, o.prevalence,
                  static_cast<unsigned long long>(o.seed));
    char phi_tag[32];
    std::snprintf(phi_tag, sizeof phi_tag, "%g", o.correlation);
    const fs::path work = o.work_dir;
    PhantomSet shortcut_set = make_set(
        work / (std::string("train-phi") + phi_tag + "-" + tag + "-n" + std::to_string(o.n_train)),
        o.n_train, o.size, o.seed * 3 + 1, o.correlation, o.prevalence, o.threads);
    PhantomSet control_set =
        make_set(work / (std::string("train-phi0-") + tag + "-n" + std::to_string(o.n_train)),
                 o.n_train, o.size, o.seed * 3 + 2, 0.0, o.prevalence, o.threads);
    PhantomSet test_set =
        make_set(work / (std::string("test-phi0-") + tag + "-n" + std::to_string(o.n_test)),
                 o.n_test, o.size, o.seed * 3 + 3, 0.0, o.prevalence, o.threads);
    return {tag, phi_tag, std::move(shortcut_set), std::move(control_set), std::move(test_set)};
}

// The test set in manifest order (strict extraction keeps every image).
struct ShortcutTest {
    std::vector<std::string> groups;
    std::vector<double> labels;
    std::vector<std::uint8_t> tube;

    explicit ShortcutTest(const dataset::Manifest& m) {
        const auto ptx = m.label_vector("pneumothorax");
        for (std::size_t r = 0; r < m.size(); ++r) {
            labels.push_back(ptx[r]);
            groups.push_back(m.record(r).patient_id);
            tube.push_back(m.attribute(r, "chest_tube") == "1");
        }
    }
    // Negatives and the positives with (which = 1) or without (0) a tube; all for which < 0.
    bool in_subset(std::size_t i, int which) const {
        return which < 0 || labels[i] == 0.0 || tube[i] == which;
    }
};

// Shortcut- and control-trained scores of one model family on the test set.
using FamilyScores = std::map<std::string, std::vector<double>>;  // "shortcut" | "control"

struct ShortcutRun {
    ShortcutRun(const ShortcutOptions& options, const dataset::Manifest& test_manifest)
        : o(options), test(test_manifest) {}

    const ShortcutOptions& o;
    ShortcutTest test;
    AnalysisResult result;
    std::vector<std::size_t> auc_family, diff_family;
    nlohmann::json models = nlohmann::json::array();

    void add(std::vector<std::size_t>& family, AnalysisTableRow row) {
        family.push_back(result.rows.size());
        result.rows.push_back(std::move(row));
    }
};

// Gap tube-free − tube positives of one set of scores (shared negatives: one clustered
// bootstrap).
AnalysisTableRow tube_gap_row(const ShortcutRun& run, const std::string& key,
                              const std::vector<double>& sc) {
    const ShortcutTest& t = run.test;
    std::vector<std::uint8_t> free_set(t.labels.size()), tube_set(t.labels.size());
    for (std::size_t i = 0; i < t.labels.size(); ++i) {
        free_set[i] = t.in_subset(i, 0);
        tube_set[i] = t.in_subset(i, 1);
    }
    const eval::WeightedStatistic stat = [&](std::span<const std::uint32_t> counts) {
        return detail::weighted_auroc(t.labels, sc, counts, free_set) -
               detail::weighted_auroc(t.labels, sc, counts, tube_set);
    };
    const auto ci = eval::bootstrap_statistic(
        t.labels.size(), stat, detail::bootstrap_options(run.o.n_boot, run.o.level, run.o.seed), {},
        eval::cluster_ids(t.groups));
    AnalysisTableRow row = detail::make_row("shortcut", key, "tube-free − tube positives", "auroc");
    row.n = static_cast<std::int64_t>(t.labels.size());
    if (std::isfinite(ci.estimate)) {
        detail::set_from_bootstrap(row, ci, 0.0);
    }
    return row;
}

// Rows of one model family ("mean", "cls", "baseline"): per training set the AUROC on all, tube-
// free and tube positives and their gap, then the drop on tube-free positives.
void family_rows(ShortcutRun& run, const std::string& name, const FamilyScores& scores) {
    const ShortcutOptions& o = run.o;
    const ShortcutTest& t = run.test;
    const std::vector<std::pair<std::string, int>> subsets = {
        {"all", -1}, {"tube-free positives", 0}, {"tube positives", 1}};
    for (const std::string which : {"shortcut", "control"}) {
        char key[128];
        std::snprintf(key, sizeof key, "%s trained φ=%g", name.c_str(),
                      which == "shortcut" ? o.correlation : 0.0);
        const auto& sc = scores.at(which);
        RADPROBE_ASSERT(sc.size() == t.labels.size());
        for (const auto& [subset, w] : subsets) {
            std::vector<double> yy, ss;
            std::vector<std::string> gg;
            for (std::size_t i = 0; i < t.labels.size(); ++i) {
                if (t.in_subset(i, w)) {
                    yy.push_back(t.labels[i]);
                    ss.push_back(sc[i]);
                    gg.push_back(t.groups[i]);
                }
            }
            run.add(run.auc_family,
                    detail::auroc_row("shortcut", key, subset, "auroc", yy, ss,
                                      eval::cluster_ids(gg), o.n_boot, o.level, o.seed));
        }
        run.add(run.diff_family, tube_gap_row(run, key, sc));
    }
    // The drop on tube-free positives: control − shortcut on the same test images.
    std::vector<double> yy, s_control, s_shortcut;
    std::vector<std::string> gg;
    for (std::size_t i = 0; i < t.labels.size(); ++i) {
        if (t.in_subset(i, 0)) {
            yy.push_back(t.labels[i]);
            s_control.push_back(scores.at("control")[i]);
            s_shortcut.push_back(scores.at("shortcut")[i]);
            gg.push_back(t.groups[i]);
        }
    }
    char key[128];
    std::snprintf(key, sizeof key, "%s φ=0 − φ=%g", name.c_str(), o.correlation);
    run.add(run.diff_family,
            detail::auroc_difference_row("shortcut", key, "drop on tube-free positives", "auroc",
                                         yy, s_control, s_shortcut, eval::cluster_ids(gg), o.n_boot,
                                         o.level, o.seed));
}

// A linear probe on one pooling of a training set (its val split selects C, the rest trains),
// scoring the test embeddings.
std::vector<double> probe_scores(ShortcutRun& run, const PhantomSet& set, bool is_shortcut,
                                 const std::string& pool, const Embedded& test) {
    const ShortcutOptions& o = run.o;
    const auto tr = embed(set, o, pool, o.work_dir / "embeddings");
    const auto y = set.manifest.label_vector("pneumothorax");
    std::vector<float> tx, vx;
    std::vector<double> ty, vy;
    for (std::size_t i = 0; i < tr.records.size(); ++i) {
        const auto& rec = set.manifest.record(tr.records[i]);
        const float* row = tr.x.data() + i * tr.dim;
        if (rec.split == dataset::Split::kVal) {
            vx.insert(vx.end(), row, row + tr.dim);
            vy.push_back(y[tr.records[i]]);
        } else {  // train and test splits of a training set both train
            tx.insert(tx.end(), row, row + tr.dim);
            ty.push_back(y[tr.records[i]]);
        }
    }
    probes::ProbeOptions po;
    po.c_grid = o.c_grid;
    po.threads = o.threads;
    po.lbfgs.threads = o.threads;
    po.lbfgs.tol = 1e-6;
    const auto r = probes::fit_binary_probe(tx, ty, vx, vy, test.x, tr.dim, po);
    run.models.push_back({{"model", pool},
                          {"training_phi", is_shortcut ? o.correlation : 0.0},
                          {"train", ty.size()},
                          {"val", vy.size()},
                          {"chosen_c", r.chosen}});
    return r.test_scores;
}

// The manifest of the CNN baseline for one training set: its train+test as train, its val as
// val, the balanced set as test.
fs::path baseline_manifest(const ShortcutSets& sets, const PhantomSet& set, bool is_shortcut,
                           const fs::path& work) {
    std::string csv = "image,patient_id,split,pneumothorax\n";
    for (const auto& rec : set.manifest.records()) {
        csv += csv_line({fs::absolute(rec.image_path).string(), "train-" + rec.patient_id,
                         rec.split == dataset::Split::kVal ? "val" : "train",
                         set.manifest.attribute(*set.manifest.find(rec.id), "pneumothorax")}) +
               "\n";
    }
    const auto& test = sets.test.manifest;
    for (const auto& rec : test.records()) {
        csv += csv_line({fs::absolute(rec.image_path).string(), "test-" + rec.patient_id, "test",
                         test.attribute(*test.find(rec.id), "pneumothorax")}) +
               "\n";
    }
    const fs::path m = work / (std::string("baseline-") + (is_shortcut ? "phi" : "phi0-") +
                               (is_shortcut ? sets.phi_tag + "-" : "") + sets.tag + ".csv");
    write_file_atomic(m, csv);
    return m;
}

// The supervised CNN trained from scratch on one training set, scoring the test set.
std::vector<double> baseline_scores(ShortcutRun& run, const ShortcutSets& sets,
                                    const PhantomSet& set, bool is_shortcut) {
    const ShortcutOptions& o = run.o;
    adapt::BaselineOptions bo;
    bo.manifest = baseline_manifest(sets, set, is_shortcut, o.work_dir);
    bo.label = "pneumothorax";
    bo.size = o.baseline_size;
    bo.epochs = o.baseline_epochs;
    bo.seed = o.seed;
    bo.threads = o.threads;
    bo.n_boot = 100;
    bo.progress = o.progress;
    const auto r = adapt::run_baseline(bo);
    std::map<std::string, double> by_image;
    for (std::size_t i = 0; i < r.test.test_images.size(); ++i) {
        by_image[r.test.test_images[i]] = r.test.test_scores[i];
    }
    std::vector<double> sc;
    for (const auto& rec : sets.test.manifest.records()) {
        const auto it = by_image.find(fs::absolute(rec.image_path).string());
        RADPROBE_CHECK(it != by_image.end(), bo.manifest.string(), ": the baseline did not score ",
                       rec.id);
        sc.push_back(it->second);
    }
    run.models.push_back({{"model", "baseline"},
                          {"training_phi", is_shortcut ? o.correlation : 0.0},
                          {"epochs_run", r.epochs_run},
                          {"best_epoch", r.best_epoch},
                          {"best_val_auroc", r.best_val_auroc}});
    return sc;
}

std::string shortcut_metrics_json(const ShortcutRun& run, const ShortcutSets& sets) {
    const ShortcutOptions& o = run.o;
    const ShortcutTest& t = run.test;
    std::size_t test_pos = 0, test_pos_tube = 0, test_neg_tube = 0;
    for (std::size_t i = 0; i < t.labels.size(); ++i) {
        test_pos += t.labels[i] == 1.0;
        test_pos_tube += t.labels[i] == 1.0 && t.tube[i];
        test_neg_tube += t.labels[i] == 0.0 && t.tube[i];
    }
    nlohmann::json j;
    j["analysis"] = "shortcut";
    j["model"] = o.encoder.model_dir.filename().string();
    j["model_dir"] = fs::absolute(o.encoder.model_dir).string();
    j["training_phi"] = o.correlation;
    j["prevalence"] = o.prevalence;
    j["size"] = o.size;
    j["n_train"] = o.n_train;
    j["n_test"] = o.n_test;
    j["test"] = {{"images", t.labels.size()},
                 {"positives", test_pos},
                 {"positives_with_tube", test_pos_tube},
                 {"negatives_with_tube", test_neg_tube}};
    j["sets"] = {{"shortcut_train", fs::absolute(sets.shortcut.dir).string()},
                 {"control_train", fs::absolute(sets.control.dir).string()},
                 {"test", fs::absolute(sets.test.dir).string()}};
    j["models"] = run.models;
    j["n_boot"] = o.n_boot;
    j["seed"] = o.seed;
    j["p_values"] =
        "Wald with the patient-clustered bootstrap SE; BH across AUROC rows and, separately, "
        "across the difference rows";
    j["rows"] = nlohmann::json::parse(detail::rows_json(run.result.rows));
    j["seconds"] = run.result.seconds;
    return j.dump(2) + "\n";
}

}  // namespace

AnalysisResult run_shortcut(const ShortcutOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    validate(o);
    const ShortcutSets sets = make_sets(o);
    ShortcutRun run(o, sets.test.manifest);
    run.result.analysis = "shortcut";
    run.result.seed = o.seed;
    for (const std::string& pool : o.poolings) {
        const auto te = embed(sets.test, o, pool, o.work_dir / "embeddings");
        RADPROBE_CHECK(te.records.size() == run.test.labels.size(), sets.test.dir.string(),
                       ": some test phantoms failed to encode");
        FamilyScores scores;
        scores["shortcut"] = probe_scores(run, sets.shortcut, true, pool, te);
        scores["control"] = probe_scores(run, sets.control, false, pool, te);
        family_rows(run, pool, scores);
    }
    if (o.baseline_epochs > 0) {
        FamilyScores scores;
        scores["shortcut"] = baseline_scores(run, sets, sets.shortcut, true);
        scores["control"] = baseline_scores(run, sets, sets.control, false);
        family_rows(run, "baseline", scores);
    }
    adjust_family(run.result.rows, run.auc_family);
    adjust_family(run.result.rows, run.diff_family);
    AnalysisResult& result = run.result;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result.metrics_json = shortcut_metrics_json(run, sets);
    detail::write_result_files(result, o.out, "shortcut.csv");
    return std::move(run.result);
}

}  // namespace radprobe::analysis
