// radprobe manifest --from TABLE.csv --image-col COL (--patient-col COL | --patient-regex RE)
//                   [--split-col COL] [--split-map FROM=TO ...] [--label-from COL:VALUE=NAME ...]
//                   [--finding-col COL [--findings A,B] [--finding-sep S] [--no-finding T]]
//                   [--keep COL ...] [--image-root DIR] --out M
// radprobe manifest --from FILE --format nih|chexpert|siim|chestx-det10|jsrt [format options] --out
// M

#include <cstdio>

#include "commands.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/dataset/public_sets.hpp"

namespace radprobe::cli {

namespace {

struct ManifestCliOptions {
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
    std::string format;
    std::string boxes_from;
    std::string train_list;
    std::string test_list;
    std::string uncertain;
    std::string metadata;
    std::string split_table;
    std::string masks;
    std::string png_dir;
    bool frontal_only = false;
};

int run_public_set(const ManifestCliOptions& opt) {
    RADPROBE_USAGE_CHECK(opt.image_col.empty() && opt.patient_col.empty() &&
                             opt.patient_regex.empty() && opt.split_col.empty() &&
                             opt.split_map.empty() && opt.label_from.empty() &&
                             opt.finding_col.empty() && opt.findings.empty() && opt.keep.empty(),
                         "--format ", opt.format,
                         ": the column options (--image-col, --patient-*, --split-*, "
                         "--label-from, --finding*, --keep) do not apply; the format fixes them");
    dataset::PublicSetOptions o;
    o.format = dataset::parse_public_set(opt.format);
    o.table = opt.from;
    o.out = opt.out;
    o.image_root = opt.image_root;
    if (!opt.boxes_from.empty()) {
        o.boxes = opt.boxes_from;
    }
    o.train_list = opt.train_list;
    o.test_list = opt.test_list;
    if (!opt.uncertain.empty()) {
        o.uncertain = dataset::parse_uncertain_policy(opt.uncertain);
        RADPROBE_USAGE_CHECK(o.format == dataset::PublicSet::kChexpert,
                             "--uncertain applies to --format chexpert");
    }
    o.frontal_only = opt.frontal_only;
    o.metadata = opt.metadata;
    o.split_table = opt.split_table;
    o.masks = opt.masks;
    o.png_dir = opt.png_dir;
    const auto result = dataset::build_public_set_manifest(o);
    const auto boxes = std::filesystem::absolute(opt.out).parent_path() / "boxes.csv";
    if (!result.boxes_csv.empty()) {
        write_file_atomic(boxes, result.boxes_csv);
    }
    write_file_atomic(opt.out, result.csv);
    std::printf("wrote %s: %zu images, %zu patients, %zu labels\n", opt.out.c_str(), result.rows,
                result.patients, result.label_names.size());
    if (!result.boxes_csv.empty()) {
        std::printf("wrote %s: %zu boxes\n", boxes.string().c_str(), result.boxes);
    }
    if (!result.converted_dir.empty()) {
        std::printf("PNGs in %s: %zu files converted, %zu already up to date\n",
                    result.converted_dir.string().c_str(), result.converted, result.up_to_date);
    }
    if (result.skipped) {
        std::printf("skipped %zu rows: %s\n", result.skipped, result.skipped_reason.c_str());
    }
    return 0;
}

}  // namespace

Runner setup_manifest(CLI::App& app) {
    using Options = ManifestCliOptions;
    auto opt = std::make_shared<Options>();
    app.description(
        "Build a radprobe manifest (image, patient_id, split, label columns, attributes) from "
        "another table. Image paths are rewritten relative to the output manifest's directory. "
        "Example (NIH ChestX-ray14 labels.csv):\n"
        "  radprobe manifest --from nih-mini/labels.csv --image-col path "
        "--patient-regex '^(\\d{8})_' --split-col split --label-from binary:1_abnormal=abnormal "
        "--finding-col finding_labels --findings Cardiomegaly,Pneumothorax,Effusion,Nodule "
        "--keep view --out work/manifest.csv\n"
        "Public sets as downloaded (--format; the other column options do not apply):\n"
        "  nih       NIH ChestX-ray14: --from Data_Entry_2017.csv; the 14 findings as 0/1 labels "
        "(No Finding = all 0), patient_id from 'Patient ID' (else the file-name prefix), "
        "attributes sex, age, view; BBox_List_2017.csv beside it (or --boxes-from) becomes "
        "boxes.csv beside the manifest (x1 = x + w, y1 = y + h); --train-list train_val_list.txt "
        "--test-list test_list.txt give the official split; images under DIR/images "
        "(--image-root)\n"
        "  chexpert  CheXpert: --from train.csv or valid.csv (Path + the 14 CheXpert labels); "
        "uncertain -1 per --uncertain ignore|zeros|ones (ignore = unknown), blank = unknown; "
        "patient and study from the path (patientNNNNN/studyN); --frontal-only keeps "
        "Frontal/Lateral = Frontal; attributes study_id, sex, age, view, ap_pa. MIMIC-CXR-JPG: "
        "--from mimic-cxr-2.0.0-chexpert.csv (subject_id, study_id, the same 14 labels) joined "
        "with mimic-cxr-2.0.0-metadata.csv (--metadata, default beside it) into one row per "
        "image files/pXX/pSUBJECT/sSTUDY/DICOM.jpg (--image-root: the folder holding files/); "
        "patient_id = subject_id; --frontal-only keeps ViewPosition PA/AP; "
        "mimic-cxr-2.0.0-split.csv (--split-table, default beside it when present) gives the "
        "split\n"
        "  siim      SIIM-ACR pneumothorax: --from train-rle.csv (ImageId, EncodedPixels); label "
        "pneumothorax and mask_pneumothorax (RLE, the challenge's convention; several rows of one "
        "image merged; -1 = none); images IMAGEID.dcm/.png/.jpg found under "
        "DIR/dicom-images-train (--image-root); rows without an image file are skipped and "
        "counted\n"
        "  chestx-det10  ChestX-Det10: --from train.json or test.json ([{file_name, syms, "
        "boxes}]); the 10 findings as 0/1 labels and boxes.csv beside the manifest; images under "
        "DIR/train_data or DIR/test_data (--image-root); the set has no patient ids, so each "
        "image is its own patient\n"
        "  jsrt      JSRT with the SCR masks: --from CLNDAT_EN.txt (nodule cases; CNNDAT_EN.txt "
        "beside it gives the non-nodule cases; tab- or space-separated, ? = unknown); labels "
        "nodule and malignant, attributes subtlety, size_mm, sex, age, patient_id = the image "
        "id; boxes.csv beside the manifest: a square of side size mm / 0.175 mm per pixel "
        "centred on the nodule's x, y; the .IMG files (found under --image-root, default: the "
        "table's folder, else its parent) become 16-bit PNGs inverted so that bone is bright; "
        "--masks SCR_DIR (searched for folders heart, left lung, right lung, left clavicle, "
        "right clavicle of GIFs, e.g. fold1/masks and fold2/masks) gives mask_heart, "
        "mask_lung_left, mask_lung_right, mask_clavicle_left, mask_clavicle_right and their "
        "union mask_lungs as 0/255 PNGs at 1024x1024 (radprobe resamples them to the image); "
        "all PNGs go under --png-dir (default: MANIFEST_DIR/jsrt_png), and files already "
        "converted are skipped\n"
        "Example: radprobe manifest --from nih/Data_Entry_2017.csv --format nih "
        "--train-list nih/train_val_list.txt --test-list nih/test_list.txt --out "
        "nih/manifest.csv");
    app.add_option("--from", opt->from, "input table (CSV with a header row)")->required();
    app.add_option("--out", opt->out, "output manifest CSV (written atomically)")->required();
    app.add_option("--format", opt->format,
                   "build from a public set's own files: nih, chexpert, siim, chestx-det10 or jsrt "
                   "(described below)");
    app.add_option("--masks", opt->masks,
                   "jsrt: folder of the SCR masks (GIFs in folders per organ, searched "
                   "recursively)");
    app.add_option("--png-dir", opt->png_dir,
                   "jsrt: folder of the converted PNG images and masks (default: "
                   "MANIFEST_DIR/jsrt_png)");
    app.add_option("--boxes-from", opt->boxes_from,
                   "nih: BBox_List_2017.csv (default: beside --from when present)");
    app.add_option("--train-list", opt->train_list, "nih: train_val_list.txt (split train)");
    app.add_option("--test-list", opt->test_list, "nih: test_list.txt (split test)");
    app.add_option("--uncertain", opt->uncertain,
                   "chexpert: uncertain (-1) labels become ignore (unknown, the default), zeros "
                   "or ones");
    app.add_flag("--frontal-only", opt->frontal_only,
                 "chexpert: keep only frontal views (Frontal/Lateral = Frontal)");
    app.add_option(
        "--metadata", opt->metadata,
        "chexpert, MIMIC-CXR-JPG: mimic-cxr-2.0.0-metadata.csv (default: beside --from)");
    app.add_option("--split-table", opt->split_table,
                   "chexpert, MIMIC-CXR-JPG: mimic-cxr-2.0.0-split.csv (default: beside --from "
                   "when present)");
    app.add_option("--image-col", opt->image_col,
                   "column with the image paths (required without --format)");
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
        if (!opt->format.empty()) {
            return run_public_set(*opt);
        }
        RADPROBE_USAGE_CHECK(
            opt->boxes_from.empty() && opt->train_list.empty() && opt->test_list.empty() &&
                opt->uncertain.empty() && !opt->frontal_only && opt->metadata.empty() &&
                opt->split_table.empty() && opt->masks.empty() && opt->png_dir.empty(),
            "--boxes-from, --train-list, --test-list, --uncertain, "
            "--frontal-only, --metadata, --split-table, --masks and --png-dir "
            "need --format");
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
