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

#include <cmath>
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/eval/metrics.hpp"

namespace radprobe::cli {

namespace {

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

void print_line(const std::string& text) {
    std::printf("%s\n", text.c_str());
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

int run_roc(const RocArgs& a) {
    RADPROBE_USAGE_CHECK(a.ci == "delong" || a.ci == "bootstrap",
                         "--ci must be delong or bootstrap, got '", a.ci, "'");
    RADPROBE_USAGE_CHECK(a.scores.size() == 1 || a.scores.size() == 2,
                         "--score is given once or twice, got ", a.scores.size());
    RADPROBE_USAGE_CHECK(a.cluster.empty() || a.ci == "bootstrap",
                         "--cluster needs --ci bootstrap (DeLong assumes independent images; "
                         "the clustered bootstrap resamples patients)");
    eval::RocTableOptions o;
    o.bootstrap = to_options(a.boot);
    o.csv = a.csv;
    o.label = a.label;
    o.scores = a.scores;
    o.cluster = a.cluster;
    o.interval = a.ci == "delong" ? eval::AucInterval::kDelong : eval::AucInterval::kBootstrap;
    print_line(eval::roc_table_json(o));
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

int run_seg(const SegArgs& a) {
    eval::MaskFolderOptions o;
    o.segmentation.spacing = parse_spacing(a.spacing);
    o.segmentation.both_empty = eval::parse_both_empty(a.both_empty);
    o.segmentation.one_empty = eval::parse_one_empty(a.one_empty);
    o.bootstrap = to_options(a.boot);
    o.predictions = a.pred;
    o.truth = a.truth;
    o.patients = a.patients;
    o.image_column = a.image_col;
    o.patient_column = a.patient_col;
    const eval::MaskFolderStats stats = eval::mask_folder_stats(o);
    if (!a.per_image.empty()) {
        write_file_atomic(a.per_image, stats.per_image_csv);
    }
    print_line(stats.json);
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
    eval::FdrTableOptions o;
    o.csv = a.csv;
    o.p_column = a.p_column;
    o.benjamini_hochberg = a.method == "bh" || a.method == "both";
    o.holm = a.method == "holm" || a.method == "both";
    const std::string text = eval::fdr_table_csv(o);
    if (a.out.empty()) {
        std::fwrite(text.data(), 1, text.size(), stdout);
    } else {
        write_file_atomic(a.out, text);
    }
    return 0;
}

CLI::App* add_roc(CLI::App& app, RocArgs& a) {
    CLI::App* roc = app.add_subcommand(
        "roc", "AUROC with a DeLong or bootstrap CI; with two scores the paired DeLong test");
    roc->add_option("--csv", a.csv, "table with one row per image")->required();
    roc->add_option("--label", a.label, "column of binary labels (0/1)")->required();
    roc->add_option("--score", a.scores, "score column; give twice to compare two scores")
        ->required();
    roc->add_option("--cluster", a.cluster,
                    "column of patient ids: the bootstrap resamples patients, not images");
    roc->add_option("--ci", a.ci, "interval: delong | bootstrap")
        ->check(CLI::IsMember({"delong", "bootstrap"}))
        ->capture_default_str();
    add_bootstrap_options(roc, a.boot);
    return roc;
}

CLI::App* add_seg(CLI::App& app, SegArgs& a) {
    CLI::App* seg = app.add_subcommand(
        "seg", "Dice, IoU, precision, recall, HD95, ASSD of predicted vs true PNG masks");
    seg->add_option("--pred", a.pred, "folder of predicted masks (.png, nonzero = foreground)")
        ->required();
    seg->add_option("--truth", a.truth, "folder of true masks, matched by file name")->required();
    seg->add_option("--spacing", a.spacing, "pixel spacing in mm: ROW,COL or one value")
        ->capture_default_str();
    seg->add_option("--both-empty", a.both_empty,
                    "both masks empty: perfect (Dice 1, distance 0) | exclude")
        ->check(CLI::IsMember({"perfect", "exclude"}))
        ->capture_default_str();
    seg->add_option("--one-empty", a.one_empty,
                    "distances when one mask is empty: exclude | diagonal (image diagonal)")
        ->check(CLI::IsMember({"exclude", "diagonal"}))
        ->capture_default_str();
    seg->add_option("--patients", a.patients,
                    "CSV mapping mask file names to patients: the bootstrap resamples patients");
    seg->add_option("--image-col", a.image_col, "file-name column of --patients")
        ->capture_default_str();
    seg->add_option("--patient-col", a.patient_col, "patient column of --patients")
        ->capture_default_str();
    seg->add_option("--per-image", a.per_image, "write per-image metrics to this CSV");
    add_bootstrap_options(seg, a.boot);
    return seg;
}

CLI::App* add_fdr(CLI::App& app, FdrArgs& a) {
    CLI::App* fdr = app.add_subcommand(
        "fdr", "Benjamini–Hochberg and Holm adjusted p-values for a CSV of p-values");
    fdr->add_option("--csv", a.csv, "table with a p-value column")->required();
    fdr->add_option("--p", a.p_column, "p-value column")->capture_default_str();
    fdr->add_option("--method", a.method, "bh | holm | both")
        ->check(CLI::IsMember({"bh", "holm", "both"}))
        ->capture_default_str();
    fdr->add_option("--out", a.out, "output CSV (default: stdout)");
    return fdr;
}

}  // namespace

Runner setup_stats(CLI::App& app) {
    app.require_subcommand(1);
    auto roc = std::make_shared<RocArgs>();
    auto seg = std::make_shared<SegArgs>();
    auto fdr = std::make_shared<FdrArgs>();
    CLI::App* roc_app = add_roc(app, *roc);
    CLI::App* seg_app = add_seg(app, *seg);
    CLI::App* fdr_app = add_fdr(app, *fdr);
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
