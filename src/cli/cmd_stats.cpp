// radprobe stats roc|seg|fdr — statistics on prediction tables and mask folders.
//
//   stats roc --csv F --label COL --score COL [--score COL2] [--cluster COL]
//             [--ci delong|bootstrap] [--n-boot N] [--seed S] [--level 0.95]
//       JSON on stdout: {"n":..,"auc":..,"ci":[lo,hi],...}; with two scores also
//       {"delong":{"auc_diff":..,"z":..,"p":..}} (DESIGN.md contract).
//   stats seg --pred DIR --truth DIR [--spacing R,C] [--patients CSV] ...
//       per-image Dice/IoU/precision/recall/HD95/ASSD matched by file name; JSON summary.
//   stats fdr --csv F --p COL [--out F]
//       Benjamini–Hochberg and Holm adjusted p-values appended as columns.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <set>

#include "commands.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::cli {

namespace {

namespace fs = std::filesystem;
// Ordered so that the output reads as DESIGN.md writes it: {"n":..,"auc":..,"ci":[..],...}.
using json = nlohmann::ordered_json;

struct CommonBootstrap {
    std::size_t n_boot = 2000;
    std::uint64_t seed = 0;
    double level = 0.95;
    std::string boot_ci = "percentile";
    int threads = 0;
};

void add_bootstrap_options(CLI::App* app, CommonBootstrap& o) {
    app->add_option("--n-boot", o.n_boot, "bootstrap replicates")
        ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}))
        ->capture_default_str();
    app->add_option("--seed", o.seed, "seed of the bootstrap (recorded in the output)")
        ->capture_default_str();
    app->add_option("--level", o.level, "confidence level, in (0, 1)")->capture_default_str();
    app->add_option("--boot-ci", o.boot_ci, "bootstrap interval: percentile | bca")
        ->check(CLI::IsMember({"percentile", "bca"}))
        ->capture_default_str();
    app->add_option("--threads", o.threads,
                    "worker threads (0 = all cores); any value gives "
                    "the same result")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
}

eval::BootstrapOptions to_options(const CommonBootstrap& o) {
    RADPROBE_USAGE_CHECK(o.level > 0.0 && o.level < 1.0, "--level must lie in (0, 1), got ",
                         o.level);
    eval::BootstrapOptions b;
    b.replicates = o.n_boot;
    b.seed = o.seed;
    b.level = o.level;
    b.method = eval::parse_ci_method(o.boot_ci);
    b.threads = o.threads;
    return b;
}

json interval(double lo, double hi) {
    return json::array({lo, hi});
}

void print_json(const json& j) {
    std::printf("%s\n", j.dump().c_str());
}

// ---------------------------------------------------------------------------------------------
// stats roc
// ---------------------------------------------------------------------------------------------

struct RocArgs {
    std::string csv;
    std::string label;
    std::vector<std::string> scores;
    std::string cluster;
    std::string ci = "delong";
    CommonBootstrap boot;
};

std::vector<double> label_column(const CsvTable& t, const std::string& column) {
    const std::size_t c = t.column(column);
    std::vector<double> out(t.num_rows());
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const std::string& cell = t.rows()[r][c];
        const auto v = parse_double(cell);
        RADPROBE_CHECK(v && (*v == 0.0 || *v == 1.0), t.name(), ":", t.line_of_row(r), ": column '",
                       column, "' value '", cell,
                       "' is not a binary label (0 or 1; drop unlabelled rows first)");
        out[r] = *v;
    }
    return out;
}

std::vector<double> score_column(const CsvTable& t, const std::string& column) {
    std::vector<double> out = t.numeric_column(column);
    for (std::size_t r = 0; r < out.size(); ++r) {
        RADPROBE_CHECK(std::isfinite(out[r]), t.name(), ":", t.line_of_row(r), ": column '", column,
                       "' value '", t.rows()[r][t.column(column)], "' is not a finite score");
    }
    return out;
}

int run_roc(const RocArgs& a) {
    RADPROBE_USAGE_CHECK(a.ci == "delong" || a.ci == "bootstrap",
                         "--ci must be delong or bootstrap, got '", a.ci, "'");
    RADPROBE_USAGE_CHECK(a.scores.size() == 1 || a.scores.size() == 2,
                         "--score is given once or twice, got ", a.scores.size());
    RADPROBE_USAGE_CHECK(a.cluster.empty() || a.ci == "bootstrap",
                         "--cluster needs --ci bootstrap (DeLong assumes independent images; "
                         "the clustered bootstrap resamples patients)");
    const eval::BootstrapOptions boot = to_options(a.boot);

    const CsvTable table = CsvTable::read(a.csv);
    RADPROBE_CHECK(table.num_rows() > 0, a.csv, ": no data rows");
    const std::vector<double> labels = label_column(table, a.label);
    std::vector<std::vector<double>> scores;
    for (const auto& s : a.scores) {
        scores.push_back(score_column(table, s));
    }
    std::vector<std::size_t> clusters;
    std::size_t num_clusters = 0;
    if (!a.cluster.empty()) {
        const std::size_t c = table.column(a.cluster);
        std::vector<std::string> keys(table.num_rows());
        for (std::size_t r = 0; r < table.num_rows(); ++r) {
            keys[r] = table.rows()[r][c];
            RADPROBE_CHECK(!keys[r].empty(), a.csv, ":", table.line_of_row(r), ": column '",
                           a.cluster, "' is empty (every row needs a cluster id)");
        }
        clusters = eval::cluster_ids(keys);
        num_clusters = *std::max_element(clusters.begin(), clusters.end()) + 1;
    }
    const eval::ClassCounts counts = eval::count_classes(labels);
    RADPROBE_CHECK(counts.positives > 0 && counts.negatives > 0, a.csv, ": column '", a.label,
                   "' has ", counts.positives, " positive(s) and ", counts.negatives,
                   " negative(s); the AUC needs both classes");

    json out;
    out["n"] = labels.size();
    auto describe = [&](const std::vector<double>& s, const std::string& suffix) {
        if (a.ci == "delong") {
            const auto d = eval::delong_auc(labels, s, boot.level);
            out["auc" + suffix] = d.auc;
            out["ci" + suffix] = interval(d.ci_lo, d.ci_hi);
            out["se" + suffix] = d.se;
        } else {
            const auto b = eval::bootstrap_auroc(labels, s, boot, clusters);
            out["auc" + suffix] = b.estimate;
            out["ci" + suffix] = interval(b.ci_lo, b.ci_hi);
            out["se" + suffix] = b.se;
            out["n_valid" + suffix] = b.valid;
            if (b.bca_fell_back) {
                out["bca_fell_back" + suffix] = true;
            }
        }
        out["average_precision" + suffix] = eval::average_precision(labels, s);
    };
    describe(scores[0], "");
    out["n_pos"] = counts.positives;
    out["n_neg"] = counts.negatives;
    out["label"] = a.label;
    out["score"] = a.scores[0];
    out["level"] = boot.level;
    if (a.ci == "delong") {
        out["ci_method"] = "delong";
    } else {
        out["ci_method"] = "bootstrap-" + a.boot.boot_ci;
        out["n_boot"] = boot.replicates;
        out["seed"] = boot.seed;
        out["stratified"] = clusters.empty();
        if (!clusters.empty()) {
            out["cluster"] = a.cluster;
            out["n_clusters"] = num_clusters;
        }
    }
    if (scores.size() == 2) {
        out["score2"] = a.scores[1];
        describe(scores[1], "2");
        const auto t = eval::delong_paired_test(labels, scores[0], scores[1], boot.level);
        out["delong"] = {{"auc_diff", t.difference},
                         {"se", t.se},
                         {"z", t.statistic},
                         {"p", t.p},
                         {"ci", interval(t.ci_lo, t.ci_hi)}};
        if (!clusters.empty()) {
            out["delong"]["note"] = "assumes independent images; bootstrap_diff resamples clusters";
        }
        if (a.ci == "bootstrap") {
            const auto b =
                eval::bootstrap_auroc_difference(labels, scores[0], scores[1], boot, clusters);
            out["bootstrap_diff"] = {{"auc_diff", b.estimate},
                                     {"ci", interval(b.ci_lo, b.ci_hi)},
                                     {"se", b.se},
                                     {"n_valid", b.valid}};
        }
    }
    print_json(out);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// stats seg
// ---------------------------------------------------------------------------------------------

struct SegArgs {
    std::string pred;
    std::string truth;
    std::string spacing = "1";
    std::string both_empty = "perfect";
    std::string one_empty = "exclude";
    std::string patients;
    std::string image_col = "image";
    std::string patient_col = "patient_id";
    std::string per_image;
    CommonBootstrap boot;
};

eval::PixelSpacing parse_spacing(const std::string& text) {
    const auto comma = text.find(',');
    const auto row = parse_double(text.substr(0, comma));
    const auto col = comma == std::string::npos ? row : parse_double(text.substr(comma + 1));
    RADPROBE_USAGE_CHECK(
        row && col && *row > 0 && *col > 0 && std::isfinite(*row) && std::isfinite(*col),
        "--spacing must be ROW_MM,COL_MM or one positive value in mm, got '", text, "'");
    return {*row, *col};
}

std::vector<std::string> png_names(const fs::path& dir, const std::string& flag) {
    std::error_code ec;
    RADPROBE_CHECK(fs::is_directory(dir, ec), flag, " ", dir.string(), ": not a directory");
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::string ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
        if (entry.is_regular_file() && ext == ".png") {
            names.push_back(entry.path().filename().string());
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string optional_cell(const std::optional<double>& v) {
    if (!v) {
        return "";
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", *v);
    return buf;
}

int run_seg(const SegArgs& a) {
    eval::SegmentationOptions options;
    options.spacing = parse_spacing(a.spacing);
    options.both_empty = eval::parse_both_empty(a.both_empty);
    options.one_empty = eval::parse_one_empty(a.one_empty);
    const eval::BootstrapOptions boot = to_options(a.boot);

    const auto truth_names = png_names(a.truth, "--truth");
    const auto pred_names = png_names(a.pred, "--pred");
    RADPROBE_CHECK(!truth_names.empty(), "--truth ", a.truth, ": no .png masks");
    const std::set<std::string> pred_set(pred_names.begin(), pred_names.end());
    const std::set<std::string> truth_set(truth_names.begin(), truth_names.end());
    for (const auto& n : truth_names) {
        RADPROBE_CHECK(pred_set.count(n), "--pred ", (fs::path(a.pred) / n).string(),
                       ": missing (every truth mask needs a prediction of the same file name)");
    }
    for (const auto& n : pred_names) {
        RADPROBE_CHECK(truth_set.count(n), "--truth ", (fs::path(a.truth) / n).string(),
                       ": missing (prediction ", n, " has no truth mask of the same file name)");
    }

    std::vector<std::string> patient_of(truth_names.size());
    std::vector<std::size_t> clusters;
    if (!a.patients.empty()) {
        const CsvTable t = CsvTable::read(a.patients);
        const std::size_t ic = t.column(a.image_col);
        const std::size_t pc = t.column(a.patient_col);
        std::map<std::string, std::string> map;
        for (std::size_t r = 0; r < t.num_rows(); ++r) {
            map[fs::path(t.rows()[r][ic]).filename().string()] = t.rows()[r][pc];
        }
        for (std::size_t i = 0; i < truth_names.size(); ++i) {
            const auto it = map.find(truth_names[i]);
            RADPROBE_CHECK(it != map.end() && !it->second.empty(), a.patients, ": no '",
                           a.patient_col, "' for mask ", truth_names[i],
                           " (matched on the file "
                           "name in column '",
                           a.image_col, "')");
            patient_of[i] = it->second;
        }
        clusters = eval::cluster_ids(patient_of);
    }

    std::vector<eval::SegmentationScores> scores;
    scores.reserve(truth_names.size());
    for (const auto& n : truth_names) {
        const auto p = eval::read_mask(fs::path(a.pred) / n);
        const auto t = eval::read_mask(fs::path(a.truth) / n);
        RADPROBE_CHECK(p.height == t.height && p.width == t.width, "--pred ",
                       (fs::path(a.pred) / n).string(), ": ", p.height, "x", p.width,
                       " but the truth mask is ", t.height, "x", t.width);
        scores.push_back(eval::segmentation_scores(p, t, options));
    }

    if (!a.per_image.empty()) {
        std::string text = csv_line({"file", "patient_id", "tp", "fp", "fn", "dice", "iou",
                                     "precision", "recall", "hd95", "assd", "hausdorff"}) +
                           "\n";
        for (std::size_t i = 0; i < scores.size(); ++i) {
            const auto& s = scores[i];
            text += csv_line({truth_names[i], patient_of[i], std::to_string(s.tp),
                              std::to_string(s.fp), std::to_string(s.fn), optional_cell(s.dice),
                              optional_cell(s.iou), optional_cell(s.precision),
                              optional_cell(s.recall), optional_cell(s.hd95), optional_cell(s.assd),
                              optional_cell(s.hausdorff)}) +
                    "\n";
        }
        write_file_atomic(a.per_image, text);
    }

    const auto summaries = eval::summarize_segmentation(scores, boot, clusters);
    json out;
    out["n_images"] = scores.size();
    out["spacing_mm"] = json::array({options.spacing.row_mm, options.spacing.col_mm});
    out["both_empty"] = a.both_empty;
    out["one_empty"] = a.one_empty;
    out["level"] = boot.level;
    out["n_boot"] = boot.replicates;
    out["seed"] = boot.seed;
    out["ci_method"] = "bootstrap-" + a.boot.boot_ci;
    if (!clusters.empty()) {
        out["cluster"] = a.patient_col;
        out["n_clusters"] = *std::max_element(clusters.begin(), clusters.end()) + 1;
    }
    json metrics = json::object();
    for (const auto& s : summaries) {
        json m;
        m["n"] = s.defined;
        if (s.ci) {
            m["mean"] = s.ci->estimate;
            m["ci"] = interval(s.ci->ci_lo, s.ci->ci_hi);
            m["n_valid"] = s.ci->valid;
        } else {
            m["mean"] = nullptr;
            m["ci"] = nullptr;
        }
        metrics[s.metric] = m;
    }
    out["metrics"] = metrics;
    print_json(out);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// stats fdr
// ---------------------------------------------------------------------------------------------

struct FdrArgs {
    std::string csv;
    std::string p_column = "p";
    std::string method = "both";
    std::string out;
};

int run_fdr(const FdrArgs& a) {
    const CsvTable t = CsvTable::read(a.csv);
    const std::vector<double> p = t.numeric_column(a.p_column);
    for (std::size_t r = 0; r < p.size(); ++r) {
        RADPROBE_CHECK(p[r] >= 0.0 && p[r] <= 1.0, a.csv, ":", t.line_of_row(r), ": column '",
                       a.p_column, "' value '", t.rows()[r][t.column(a.p_column)],
                       "' is not a p-value in [0, 1]");
    }
    std::vector<std::pair<std::string, std::vector<double>>> added;
    if (a.method == "bh" || a.method == "both") {
        added.emplace_back("p_bh", eval::benjamini_hochberg(p));
    }
    if (a.method == "holm" || a.method == "both") {
        added.emplace_back("p_holm", eval::holm(p));
    }
    for (const auto& [name, values] : added) {
        RADPROBE_CHECK(!t.find_column(name), a.csv, ": already has a column '", name, "'");
    }
    std::vector<std::string> header = t.header();
    for (const auto& [name, values] : added) {
        header.push_back(name);
    }
    std::string text = csv_line(header) + "\n";
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        std::vector<std::string> row = t.rows()[r];
        for (const auto& [name, values] : added) {
            row.push_back(optional_cell(values[r]));
        }
        text += csv_line(row) + "\n";
    }
    if (a.out.empty()) {
        std::fwrite(text.data(), 1, text.size(), stdout);
    } else {
        write_file_atomic(a.out, text);
    }
    return 0;
}

}  // namespace

Runner setup_stats(CLI::App& app) {
    app.require_subcommand(1);

    auto roc = std::make_shared<RocArgs>();
    CLI::App* roc_app = app.add_subcommand(
        "roc", "AUROC with a DeLong or bootstrap CI; with two scores the paired DeLong test");
    roc_app->add_option("--csv", roc->csv, "table with one row per image")->required();
    roc_app->add_option("--label", roc->label, "column of binary labels (0/1)")->required();
    roc_app->add_option("--score", roc->scores, "score column; give twice to compare two scores")
        ->required();
    roc_app->add_option("--cluster", roc->cluster,
                        "column of patient ids: the bootstrap resamples patients, not images");
    roc_app->add_option("--ci", roc->ci, "interval: delong | bootstrap")
        ->check(CLI::IsMember({"delong", "bootstrap"}))
        ->capture_default_str();
    add_bootstrap_options(roc_app, roc->boot);

    auto seg = std::make_shared<SegArgs>();
    CLI::App* seg_app = app.add_subcommand(
        "seg", "Dice, IoU, precision, recall, HD95, ASSD of predicted vs true PNG masks");
    seg_app
        ->add_option("--pred", seg->pred,
                     "folder of predicted masks (.png, nonzero = "
                     "foreground)")
        ->required();
    seg_app->add_option("--truth", seg->truth, "folder of true masks, matched by file name")
        ->required();
    seg_app->add_option("--spacing", seg->spacing, "pixel spacing in mm: ROW,COL or one value")
        ->capture_default_str();
    seg_app
        ->add_option("--both-empty", seg->both_empty,
                     "both masks empty: perfect (Dice 1, distance 0) | exclude")
        ->check(CLI::IsMember({"perfect", "exclude"}))
        ->capture_default_str();
    seg_app
        ->add_option("--one-empty", seg->one_empty,
                     "distances when one mask is empty: exclude | diagonal (image diagonal)")
        ->check(CLI::IsMember({"exclude", "diagonal"}))
        ->capture_default_str();
    seg_app->add_option("--patients", seg->patients,
                        "CSV mapping mask file names to patients: the bootstrap resamples "
                        "patients");
    seg_app->add_option("--image-col", seg->image_col, "file-name column of --patients")
        ->capture_default_str();
    seg_app->add_option("--patient-col", seg->patient_col, "patient column of --patients")
        ->capture_default_str();
    seg_app->add_option("--per-image", seg->per_image, "write per-image metrics to this CSV");
    add_bootstrap_options(seg_app, seg->boot);

    auto fdr = std::make_shared<FdrArgs>();
    CLI::App* fdr_app = app.add_subcommand(
        "fdr", "Benjamini–Hochberg and Holm adjusted p-values for a CSV of p-values");
    fdr_app->add_option("--csv", fdr->csv, "table with a p-value column")->required();
    fdr_app->add_option("--p", fdr->p_column, "p-value column")->capture_default_str();
    fdr_app->add_option("--method", fdr->method, "bh | holm | both")
        ->check(CLI::IsMember({"bh", "holm", "both"}))
        ->capture_default_str();
    fdr_app->add_option("--out", fdr->out, "output CSV (default: stdout)");

    return [roc, seg, fdr, roc_app, seg_app, fdr_app]() -> int {
        if (roc_app->parsed()) {
            return run_roc(*roc);
        }
        if (seg_app->parsed()) {
            return run_seg(*seg);
        }
        if (fdr_app->parsed()) {
            return run_fdr(*fdr);
        }
        throw UsageError("stats needs one of: roc, seg, fdr");
    };
}

}  // namespace radprobe::cli
