// radprobe manifest --from TABLE.csv --image-col COL (--patient-col COL | --patient-regex RE)
//                   [--split-col COL] [--split-map FROM=TO ...] [--label-from COL:VALUE=NAME ...]
//                   [--finding-col COL [--findings A,B] [--finding-sep S] [--no-finding T]]
//                   [--keep COL ...] [--image-root DIR] --out M

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::cli {

Runner setup_manifest(CLI::App& app) {
    struct Options {
        std::string from;
        std::string out;
        std::string image_col;
        std::string image_root;
        std::string patient_col;
        std::string patient_regex;
        std::string split_col;
        std::vector<std::string> split_map;
        std::vector<std::string> label_from;
        std::string finding_col;
        std::vector<std::string> findings;
        std::string finding_sep = "|";
        std::string no_finding = "No Finding";
        std::vector<std::string> keep;
    };
    auto opt = std::make_shared<Options>();
    app.description(
        "Build a radprobe manifest (image, patient_id, split, label columns, attributes) from "
        "another table. Image paths are rewritten relative to the output manifest's directory. "
        "Example (NIH ChestX-ray14 labels.csv):\n"
        "  radprobe manifest --from nih-mini/labels.csv --image-col path "
        "--patient-regex '^(\\d{8})_' --split-col split --label-from binary:1_abnormal=abnormal "
        "--finding-col finding_labels --findings Cardiomegaly,Pneumothorax,Effusion,Nodule "
        "--keep view --out work/manifest.csv");
    app.add_option("--from", opt->from, "input table (CSV with a header row)")->required();
    app.add_option("--out", opt->out, "output manifest CSV (written atomically)")->required();
    app.add_option("--image-col", opt->image_col, "column with the image paths")->required();
    app.add_option("--image-root", opt->image_root,
                   "directory the image paths are relative to (default: the table's directory)");
    auto* pcol = app.add_option("--patient-col", opt->patient_col, "column with the patient id");
    auto* pre = app.add_option("--patient-regex", opt->patient_regex,
                               "ECMAScript regex searched in the image FILE NAME; the first "
                               "capture group (else the whole match) is the patient id, e.g. "
                               "'^(\\d{8})_' for NIH names like 00000002_000.png");
    pcol->excludes(pre);
    pre->excludes(pcol);
    app.add_option("--split-col", opt->split_col,
                   "column with the split; train, val/valid/validation and test are recognised, "
                   "empty = unassigned");
    app.add_option("--split-map", opt->split_map,
                   "extra split value mapping FROM=TO (TO: train, val, test or empty); repeatable")
        ->delimiter(',');
    app.add_option("--label-from", opt->label_from,
                   "COL:VALUE=NAME: label NAME is 1 where COL equals VALUE, 0 for any other "
                   "non-empty value, empty (unknown) where COL is empty; repeatable");
    app.add_option("--finding-col", opt->finding_col,
                   "multi-label column (findings joined by --finding-sep, e.g. 'Effusion|Mass'); "
                   "each finding becomes a 0/1 label column named in lower case "
                   "(Pleural_Thickening → pleural_thickening); an empty cell gives unknown");
    app.add_option("--findings", opt->findings,
                   "findings to emit (comma-separated, case-insensitive); default: every finding "
                   "in the column except --no-finding")
        ->delimiter(',');
    app.add_option("--finding-sep", opt->finding_sep, "separator in --finding-col")
        ->capture_default_str();
    app.add_option("--no-finding", opt->no_finding,
                   "token in --finding-col meaning none of the findings (all labels 0)")
        ->capture_default_str();
    app.add_option("--keep", opt->keep, "columns copied unchanged as attributes (comma-separated)")
        ->delimiter(',');
    return [opt]() -> int {
        dataset::ConvertOptions o;
        o.table = opt->from;
        o.out = opt->out;
        o.image_col = opt->image_col;
        o.image_root = opt->image_root;
        o.patient_col = opt->patient_col;
        o.patient_regex = opt->patient_regex;
        o.split_col = opt->split_col;
        o.split_map = opt->split_map;
        for (const auto& l : opt->label_from) {
            o.label_from.push_back(dataset::parse_label_from(l));
        }
        o.finding_col = opt->finding_col;
        o.findings = opt->findings;
        o.finding_sep = opt->finding_sep;
        o.no_finding = opt->no_finding;
        o.keep = opt->keep;
        const auto result = dataset::convert_table(o);
        write_file_atomic(opt->out, result.csv);
        std::string labels;
        for (const auto& l : result.label_names) {
            labels += (labels.empty() ? "" : ", ") + l;
        }
        std::printf("wrote %s: %zu images, %zu patients, labels: %s\n", opt->out.c_str(),
                    result.rows, result.patients, labels.empty() ? "none" : labels.c_str());
        return 0;
    };
}

}  // namespace radprobe::cli
