// Manifest builders for public chest-radiograph sets (public_sets.hpp).

#include "radprobe/dataset/public_sets.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "jsrt.hpp"
#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "text.hpp"

namespace radprobe::dataset {
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kNihFindings = {
    "Atelectasis", "Cardiomegaly",       "Consolidation", "Edema",        "Effusion",
    "Emphysema",   "Fibrosis",           "Hernia",        "Infiltration", "Mass",
    "Nodule",      "Pleural_Thickening", "Pneumonia",     "Pneumothorax"};

const std::vector<std::string> kChexpertLabels = {"No Finding",       "Enlarged Cardiomediastinum",
                                                  "Cardiomegaly",     "Lung Opacity",
                                                  "Lung Lesion",      "Edema",
                                                  "Consolidation",    "Pneumonia",
                                                  "Atelectasis",      "Pneumothorax",
                                                  "Pleural Effusion", "Pleural Other",
                                                  "Fracture",         "Support Devices"};

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) {
        return "";
    }
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) {
        out += out.empty() ? i : str_cat(", ", i);
    }
    return out;
}

/// Column whose name, spaces trimmed, is `name`; InputError naming the file and its columns.
std::size_t need_column(const CsvTable& t, const std::string& name) {
    for (std::size_t c = 0; c < t.header().size(); ++c) {
        if (trim(t.header()[c]) == name) {
            return c;
        }
    }
    throw InputError(
        str_cat(t.name(), ":1: no column '", name, "' (columns: ", join(t.header()), ")"));
}

std::optional<std::size_t> find_column(const CsvTable& t, const std::string& name) {
    for (std::size_t c = 0; c < t.header().size(); ++c) {
        if (trim(t.header()[c]) == name) {
            return c;
        }
    }
    return std::nullopt;
}

/// Reads a CSV whose header may have empty names (the NIH box list ends in ",,,"): they are
/// renamed `_unnamed_K` so the table parses; line numbers are kept.
CsvTable read_lenient_header(const fs::path& path) {
    const std::string text = read_file_text(path);
    const auto nl = text.find('\n');
    std::string header = text.substr(0, nl);
    if (!header.empty() && header.back() == '\r') {
        header.pop_back();
    }
    if (header.find('"') != std::string::npos) {
        return CsvTable::parse(text, path.string());  // quoted names: leave them to the parser
    }
    std::string fixed;
    std::size_t k = 0;
    std::size_t start = 0;
    while (true) {
        const auto comma = header.find(',', start);
        std::string name =
            header.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (trim(name).empty()) {
            name = str_cat("_unnamed_", k);
        }
        fixed += (k ? "," : "") + name;
        ++k;
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    return CsvTable::parse(nl == std::string::npos ? fixed : fixed + text.substr(nl),
                           path.string());
}

fs::path absolute_normal(const fs::path& p) {
    return fs::weakly_canonical(fs::absolute(p));
}

/// Image paths as manifest ids: relative to the output manifest's directory.
class ImageIds {
public:
    ImageIds(const fs::path& root, const fs::path& out)
        : root_(absolute_normal(root)),
          out_dir_(absolute_normal(fs::absolute(out).parent_path())) {}
    std::string id(const std::string& image) const {
        const fs::path p(image);
        const fs::path abs =
            p.is_absolute() ? p.lexically_normal() : (root_ / p).lexically_normal();
        return abs.lexically_relative(out_dir_).generic_string();
    }
    const fs::path& root() const { return root_; }

private:
    fs::path root_;
    fs::path out_dir_;
};

// The manifest's leading columns: image, patient_id, split (when the set has one) and one column
// per label, whose names also go to res.label_names.
std::vector<std::string> leading_columns(bool with_split, const std::vector<std::string>& labels,
                                         PublicSetResult& res) {
    std::vector<std::string> header = {"image", "patient_id"};
    if (with_split) {
        header.push_back("split");
    }
    for (const auto& l : labels) {
        header.push_back(finding_column_name(l));
        res.label_names.push_back(finding_column_name(l));
    }
    return header;
}

using detail::format_number;

std::set<std::string> read_name_list(const fs::path& path) {
    std::set<std::string> out;
    const std::string text = read_file_text(path);
    std::size_t start = 0;
    while (start < text.size()) {
        auto nl = text.find('\n', start);
        if (nl == std::string::npos) {
            nl = text.size();
        }
        const std::string name = trim(text.substr(start, nl - start));
        if (!name.empty()) {
            out.insert(name);
        }
        start = nl + 1;
    }
    return out;
}

// ----------------------------------------------------------------------------------------------
// NIH ChestX-ray14
// ----------------------------------------------------------------------------------------------

std::string nih_patient(const CsvTable& t, std::size_t r, std::optional<std::size_t> pcol,
                        const std::string& image) {
    const std::size_t line = t.line_of_row(r);
    if (pcol) {
        const std::string p = trim(t.rows()[r][*pcol]);
        RADPROBE_CHECK(!p.empty(), t.name(), ":", line, ": column 'Patient ID': empty");
        const bool digits =
            std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
        return digits && p.size() < 8 ? std::string(8 - p.size(), '0') + p : p;
    }
    const auto us = image.find('_');
    RADPROBE_CHECK(us != std::string::npos && us > 0, t.name(), ":", line,
                   ": column 'Image Index': '", image,
                   "' has no patient prefix (NNNNNNNN_...) and there is no 'Patient ID' column");
    return image.substr(0, us);
}

std::string nih_age(const CsvTable& t, std::size_t r, std::size_t col) {
    std::string a = trim(t.rows()[r][col]);
    if (a.empty()) {
        return a;
    }
    if (a.back() == 'Y' || a.back() == 'y') {
        a.pop_back();  // the 2017 release has "58", the earlier one "058Y"
    }
    const auto v = parse_int(a);
    RADPROBE_CHECK(v && *v >= 0, t.name(), ":", t.line_of_row(r), ": column 'Patient Age': '",
                   t.rows()[r][col], "' is not an age in years");
    return std::to_string(*v);
}

/// Labels of one "Finding Labels" cell, aligned with kNihFindings.
std::vector<std::string> nih_labels(const CsvTable& t, std::size_t r, std::size_t col) {
    const std::string cell = trim(t.rows()[r][col]);
    if (cell.empty()) {
        return std::vector<std::string>(kNihFindings.size(), "");
    }
    std::vector<std::string> out(kNihFindings.size(), "0");
    if (cell == "No Finding") {
        return out;
    }
    std::size_t start = 0;
    while (true) {
        const auto bar = cell.find('|', start);
        const std::string f =
            trim(cell.substr(start, bar == std::string::npos ? std::string::npos : bar - start));
        const auto it = std::find(kNihFindings.begin(), kNihFindings.end(), f);
        RADPROBE_CHECK(it != kNihFindings.end(), t.name(), ":", t.line_of_row(r),
                       ": column 'Finding Labels': unknown finding '", f,
                       "' (expected No Finding or ", join(kNihFindings), ", joined by '|')");
        out[static_cast<std::size_t>(it - kNihFindings.begin())] = "1";
        if (bar == std::string::npos) {
            break;
        }
        start = bar + 1;
    }
    return out;
}

std::string nih_boxes(const fs::path& path, const ImageIds& ids, std::size_t& count) {
    const CsvTable t = read_lenient_header(path);
    const std::size_t ic = need_column(t, "Image Index");
    const std::size_t lc = need_column(t, "Finding Label");
    const std::size_t xc = need_column(t, "Bbox [x");
    RADPROBE_CHECK(xc + 3 < t.header().size(), t.name(),
                   ":1: expected columns 'y', 'w', 'h]' after 'Bbox [x'");
    const char* names[] = {"Bbox [x", "y", "w", "h]"};
    std::string out = "image,label,x0,y0,x1,y1\n";
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const auto& row = t.rows()[r];
        const std::size_t line = t.line_of_row(r);
        double v[4];
        for (int k = 0; k < 4; ++k) {
            const auto d = parse_double(trim(row[xc + k]));
            RADPROBE_CHECK(d && std::isfinite(*d) && (k < 2 || *d > 0), t.name(), ":", line,
                           ": column '", names[k], "': '", row[xc + k], "' is not ",
                           k < 2 ? "a finite number" : "a positive number");
            v[k] = *d;
        }
        const std::string image = trim(row[ic]);
        RADPROBE_CHECK(!image.empty(), t.name(), ":", line, ": column 'Image Index': empty");
        std::string label = finding_column_name(trim(row[lc]));
        RADPROBE_CHECK(!label.empty(), t.name(), ":", line, ": column 'Finding Label': empty");
        if (label == "infiltrate") {
            label = "infiltration";  // the box list's spelling of the label
        }
        out += csv_line({ids.id(image), label, format_number(v[0]), format_number(v[1]),
                         format_number(v[0] + v[2]), format_number(v[1] + v[3])}) +
               "\n";
        ++count;
    }
    return out;
}

PublicSetResult build_nih(const PublicSetOptions& o) {
    const CsvTable t = read_lenient_header(o.table);  // the 2017 header ends in ','

    const ImageIds ids(o.image_root.empty() ? o.table.parent_path() / "images" : o.image_root,
                       o.out);
    const std::size_t ic = need_column(t, "Image Index");
    const std::size_t fc = need_column(t, "Finding Labels");
    const auto pc = find_column(t, "Patient ID");
    const auto ac = find_column(t, "Patient Age");
    const auto sc = find_column(t, "Patient Gender");
    const auto vc = find_column(t, "View Position");
    const bool with_split = !o.train_list.empty() || !o.test_list.empty();
    std::set<std::string> train;
    std::set<std::string> test;
    if (!o.train_list.empty()) {
        train = read_name_list(o.train_list);
    }
    if (!o.test_list.empty()) {
        test = read_name_list(o.test_list);
    }

    PublicSetResult res;
    std::vector<std::string> header = leading_columns(with_split, kNihFindings, res);
    for (const auto& [col, name] : {std::pair{sc, "sex"}, {ac, "age"}, {vc, "view"}}) {
        if (col) {
            header.push_back(name);
        }
    }
    res.csv = csv_line(header) + "\n";
    std::set<std::string> patients;
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const auto& row = t.rows()[r];
        const std::string image = trim(row[ic]);
        RADPROBE_CHECK(!image.empty(), t.name(), ":", t.line_of_row(r),
                       ": column 'Image Index': empty");
        const std::string patient = nih_patient(t, r, pc, image);
        patients.insert(patient);
        std::vector<std::string> out = {ids.id(image), patient};
        if (with_split) {
            const bool in_train = train.count(image) > 0;
            const bool in_test = test.count(image) > 0;
            RADPROBE_CHECK(!(in_train && in_test), t.name(), ":", t.line_of_row(r), ": image '",
                           image, "' is in both ", o.train_list.string(), " and ",
                           o.test_list.string());
            out.push_back(in_train ? "train" : in_test ? "test" : "");
        }
        for (auto& l : nih_labels(t, r, fc)) {
            out.push_back(std::move(l));
        }
        if (sc) {
            out.push_back(trim(row[*sc]));
        }
        if (ac) {
            out.push_back(nih_age(t, r, *ac));
        }
        if (vc) {
            out.push_back(trim(row[*vc]));
        }
        res.csv += csv_line(out) + "\n";
    }
    res.rows = t.num_rows();
    res.patients = patients.size();
    fs::path boxes;
    if (o.boxes) {
        boxes = *o.boxes;
    } else if (fs::exists(o.table.parent_path() / "BBox_List_2017.csv")) {
        boxes = o.table.parent_path() / "BBox_List_2017.csv";
    }
    if (!boxes.empty()) {
        res.boxes_csv = nih_boxes(boxes, ids, res.boxes);
    }
    return res;
}

// ----------------------------------------------------------------------------------------------
// CheXpert
// ----------------------------------------------------------------------------------------------

std::string chexpert_label(const CsvTable& t, std::size_t r, std::size_t col,
                           UncertainPolicy policy) {
    const std::string v = trim(t.rows()[r][col]);
    if (v.empty()) {
        return "";
    }
    const auto d = parse_double(v);
    RADPROBE_CHECK(d && (*d == 1 || *d == 0 || *d == -1), t.name(), ":", t.line_of_row(r),
                   ": column '", trim(t.header()[col]), "': '", v,
                   "' is not 1, 0, -1 (uncertain) or blank");
    if (*d == -1) {
        return policy == UncertainPolicy::kIgnore  ? ""
               : policy == UncertainPolicy::kZeros ? "0"
                                                   : "1";
    }
    return *d == 1 ? "1" : "0";
}

/// "patientNNNNN" and "studyN" components of a CheXpert path.
std::pair<std::string, std::string> chexpert_ids(const CsvTable& t, std::size_t r,
                                                 const std::string& path) {
    std::string patient;
    std::string study;
    for (const auto& part : fs::path(path)) {
        const std::string s = part.string();
        if (s.rfind("patient", 0) == 0 && s.size() > 7) {
            patient = s;
        } else if (s.rfind("study", 0) == 0 && s.size() > 5) {
            study = s;
        }
    }
    RADPROBE_CHECK(!patient.empty() && !study.empty(), t.name(), ":", t.line_of_row(r),
                   ": column 'Path': '", path,
                   "' has no patientNNNNN/studyN components (CheXpert layout)");
    return {patient, study};
}

PublicSetResult build_mimic(const PublicSetOptions& o, const CsvTable& labels);

PublicSetResult build_chexpert(const PublicSetOptions& o) {
    const CsvTable t = CsvTable::read(o.table);
    if (!find_column(t, "Path") && find_column(t, "subject_id") && find_column(t, "study_id")) {
        return build_mimic(o, t);
    }
    RADPROBE_USAGE_CHECK(o.metadata.empty() && o.split_table.empty(),
                         "--metadata and --split-table apply to MIMIC-CXR-JPG label tables "
                         "(subject_id, study_id)");
    const std::size_t path_col = need_column(t, "Path");
    std::vector<std::size_t> label_cols;
    for (const auto& l : kChexpertLabels) {
        label_cols.push_back(need_column(t, l));
    }
    const auto fl = find_column(t, "Frontal/Lateral");
    RADPROBE_USAGE_CHECK(!o.frontal_only || fl, "--frontal-only: ", t.name(),
                         " has no column 'Frontal/Lateral'");
    fs::path root = o.image_root;
    if (root.empty()) {
        root = o.table.parent_path();
        const std::string dir_name = absolute_normal(root).filename().string();
        if (t.num_rows() > 0 && !dir_name.empty() &&
            fs::path(trim(t.rows()[0][path_col])).begin()->string() == dir_name) {
            root = absolute_normal(root).parent_path();
        }
    }
    const ImageIds ids(root, o.out);
    const std::vector<std::pair<std::optional<std::size_t>, const char*>> attrs = {
        {find_column(t, "Sex"), "sex"},
        {find_column(t, "Age"), "age"},
        {fl, "view"},
        {find_column(t, "AP/PA"), "ap_pa"}};

    PublicSetResult res;
    std::vector<std::string> header = leading_columns(false, kChexpertLabels, res);
    header.push_back("study_id");
    for (const auto& [col, name] : attrs) {
        if (col) {
            header.push_back(name);
        }
    }
    res.csv = csv_line(header) + "\n";
    std::set<std::string> patients;
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const auto& row = t.rows()[r];
        if (o.frontal_only && trim(row[*fl]) != "Frontal") {
            ++res.skipped;
            continue;
        }
        const std::string path = trim(row[path_col]);
        RADPROBE_CHECK(!path.empty(), t.name(), ":", t.line_of_row(r), ": column 'Path': empty");
        const auto [patient, study] = chexpert_ids(t, r, path);
        patients.insert(patient);
        std::vector<std::string> out = {ids.id(path), patient};
        for (std::size_t c : label_cols) {
            out.push_back(chexpert_label(t, r, c, o.uncertain));
        }
        out.push_back(str_cat(patient, "/", study));
        for (const auto& [col, name] : attrs) {
            if (col) {
                out.push_back(trim(row[*col]));
            }
        }
        res.csv += csv_line(out) + "\n";
        ++res.rows;
    }
    if (res.skipped) {
        res.skipped_reason = "lateral views (--frontal-only)";
    }
    res.patients = patients.size();
    return res;
}

// ----------------------------------------------------------------------------------------------
// MIMIC-CXR-JPG (the CheXpert label schema, one row per study)
// ----------------------------------------------------------------------------------------------

/// Integer id cell (subject_id, study_id); InputError naming the cell otherwise.
std::string id_cell(const CsvTable& t, std::size_t r, std::size_t col) {
    const std::string v = trim(t.rows()[r][col]);
    const auto n = parse_int(v);
    RADPROBE_CHECK(n && *n >= 0, t.name(), ":", t.line_of_row(r), ": column '",
                   trim(t.header()[col]), "': '", v, "' is not an id number");
    return std::to_string(*n);
}

PublicSetResult build_mimic(const PublicSetOptions& o, const CsvTable& labels) {
    const std::size_t study_col = need_column(labels, "study_id");
    std::vector<std::size_t> label_cols;
    for (const auto& l : kChexpertLabels) {
        label_cols.push_back(need_column(labels, l));
    }
    std::map<std::string, std::size_t> row_of_study;
    for (std::size_t r = 0; r < labels.num_rows(); ++r) {
        row_of_study.emplace(id_cell(labels, r, study_col), r);
    }
    const fs::path meta_path =
        o.metadata.empty() ? o.table.parent_path() / "mimic-cxr-2.0.0-metadata.csv" : o.metadata;
    const CsvTable meta = CsvTable::read(meta_path);
    const std::size_t dc = need_column(meta, "dicom_id");
    const std::size_t sc = need_column(meta, "subject_id");
    const std::size_t tc = need_column(meta, "study_id");
    const auto vc = find_column(meta, "ViewPosition");
    RADPROBE_USAGE_CHECK(!o.frontal_only || vc, "--frontal-only: ", meta.name(),
                         " has no column 'ViewPosition'");
    std::map<std::string, std::string> split_of;  // dicom_id → train / val / test
    const fs::path split_path =
        o.split_table.empty() ? o.table.parent_path() / "mimic-cxr-2.0.0-split.csv" : o.split_table;
    const bool with_split = !o.split_table.empty() || fs::exists(split_path);
    if (with_split) {
        const CsvTable st = CsvTable::read(split_path);
        const std::size_t sdc = need_column(st, "dicom_id");
        const std::size_t ssc = need_column(st, "split");
        for (std::size_t r = 0; r < st.num_rows(); ++r) {
            const std::string v = trim(st.rows()[r][ssc]);
            RADPROBE_CHECK(v == "train" || v == "validate" || v == "test", st.name(), ":",
                           st.line_of_row(r), ": column 'split': '", v,
                           "' is not train, validate or test");
            split_of[trim(st.rows()[r][sdc])] = v == "validate" ? "val" : v;
        }
    }
    const ImageIds ids(o.image_root.empty() ? o.table.parent_path() : o.image_root, o.out);

    PublicSetResult res;
    std::vector<std::string> header = leading_columns(with_split, kChexpertLabels, res);
    header.push_back("study_id");
    if (vc) {
        header.push_back("view");
    }
    res.csv = csv_line(header) + "\n";
    std::set<std::string> patients;
    std::size_t unlabelled = 0;
    for (std::size_t r = 0; r < meta.num_rows(); ++r) {
        const auto& row = meta.rows()[r];
        const std::string view = vc ? trim(row[*vc]) : "";
        if (o.frontal_only && view != "PA" && view != "AP") {
            ++res.skipped;
            continue;
        }
        const std::string subject = id_cell(meta, r, sc);
        const std::string study = id_cell(meta, r, tc);
        const auto it = row_of_study.find(study);
        if (it == row_of_study.end()) {
            ++unlabelled;  // studies without labels are in the metadata but not the label table
            continue;
        }
        const std::string dicom = trim(row[dc]);
        RADPROBE_CHECK(!dicom.empty(), meta.name(), ":", meta.line_of_row(r),
                       ": column 'dicom_id': empty");
        const std::string path = str_cat("files/p", subject.substr(0, 2), "/p", subject, "/s",
                                         study, "/", dicom, ".jpg");
        patients.insert(subject);
        std::vector<std::string> out = {ids.id(path), subject};
        if (with_split) {
            const auto sp = split_of.find(dicom);
            out.push_back(sp == split_of.end() ? "" : sp->second);
        }
        for (std::size_t c : label_cols) {
            out.push_back(chexpert_label(labels, it->second, c, o.uncertain));
        }
        out.push_back(study);
        if (vc) {
            out.push_back(view);
        }
        res.csv += csv_line(out) + "\n";
        ++res.rows;
    }
    if (res.skipped) {
        res.skipped_reason = "views other than PA / AP (--frontal-only)";
    }
    if (unlabelled) {
        res.skipped_reason += str_cat(res.skipped ? "; " : "", unlabelled,
                                      " images of studies without labels in ", labels.name());
        res.skipped += unlabelled;
    }
    res.patients = patients.size();
    return res;
}

// ----------------------------------------------------------------------------------------------
// ChestX-Det10
// ----------------------------------------------------------------------------------------------

const std::vector<std::string> kDet10Findings = {
    "Atelectasis", "Calcification", "Consolidation", "Effusion", "Emphysema",
    "Fibrosis",    "Fracture",      "Mass",          "Nodule",   "Pneumothorax"};

PublicSetResult build_det10(const PublicSetOptions& o) {
    const std::string file = o.table.string();
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(read_file_text(o.table));
    } catch (const nlohmann::json::exception& e) {
        throw InputError(str_cat(file, ": not JSON: ", e.what()));
    }
    RADPROBE_CHECK(doc.is_array(), file,
                   ": expected a JSON list of {file_name, syms, boxes} (ChestX-Det10)");
    fs::path root = o.image_root;
    if (root.empty()) {
        const fs::path data = o.table.parent_path() / str_cat(o.table.stem().string(), "_data");
        root = fs::is_directory(data) ? data : o.table.parent_path();
    }
    const ImageIds ids(root, o.out);
    PublicSetResult res;
    std::vector<std::string> header = leading_columns(false, kDet10Findings, res);
    res.csv = csv_line(header) + "\n";
    res.boxes_csv = "image,label,x0,y0,x1,y1\n";
    std::set<std::string> seen;
    for (std::size_t k = 0; k < doc.size(); ++k) {
        const auto& e = doc[k];
        const std::string where = str_cat(file, ": entry ", k + 1);
        RADPROBE_CHECK(e.is_object() && e.contains("file_name") && e["file_name"].is_string() &&
                           e.contains("syms") && e["syms"].is_array() && e.contains("boxes") &&
                           e["boxes"].is_array() && e["syms"].size() == e["boxes"].size(),
                       where,
                       ": expected {\"file_name\": string, \"syms\": [...], \"boxes\": [...]}"
                       " with one box per sym");
        const std::string name = e["file_name"].get<std::string>();
        RADPROBE_CHECK(!name.empty() && seen.insert(name).second, where, ": field 'file_name': '",
                       name, "' is empty or repeated");
        const std::string id = ids.id(name);
        std::vector<std::string> labels(kDet10Findings.size(), "0");
        for (std::size_t b = 0; b < e["syms"].size(); ++b) {
            const auto& sym = e["syms"][b];
            const auto it = sym.is_string()
                                ? std::find(kDet10Findings.begin(), kDet10Findings.end(),
                                            sym.get<std::string>())
                                : kDet10Findings.end();
            RADPROBE_CHECK(it != kDet10Findings.end(), where, " (", name, "): field 'syms' item ",
                           b + 1, ": ", sym.dump(), " is not one of ", join(kDet10Findings));
            labels[static_cast<std::size_t>(it - kDet10Findings.begin())] = "1";
            const auto& box = e["boxes"][b];
            bool ok = box.is_array() && box.size() == 4;
            for (std::size_t c = 0; ok && c < 4; ++c) {
                ok = box[c].is_number() && std::isfinite(box[c].get<double>());
            }
            ok = ok && box[0].get<double>() < box[2].get<double>() &&
                 box[1].get<double>() < box[3].get<double>();
            RADPROBE_CHECK(ok, where, " (", name, "): field 'boxes' item ", b + 1, ": ", box.dump(),
                           " is not [x0, y0, x1, y1] with x0 < x1, y0 < y1");
            res.boxes_csv +=
                csv_line({id, finding_column_name(*it), format_number(box[0].get<double>()),
                          format_number(box[1].get<double>()), format_number(box[2].get<double>()),
                          format_number(box[3].get<double>())}) +
                "\n";
            ++res.boxes;
        }
        std::vector<std::string> out = {id, fs::path(name).stem().string()};
        out.insert(out.end(), labels.begin(), labels.end());
        res.csv += csv_line(out) + "\n";
        ++res.rows;
    }
    if (res.boxes == 0) {
        res.boxes_csv.clear();
    }
    res.patients = res.rows;
    return res;
}

// ----------------------------------------------------------------------------------------------
// SIIM-ACR pneumothorax
// ----------------------------------------------------------------------------------------------

/// Image files under `root` by file stem (IMAGEID.dcm / .png / .jpg).
std::map<std::string, fs::path> index_images(const fs::path& root) {
    std::map<std::string, fs::path> out;
    RADPROBE_CHECK(fs::is_directory(root), "image root ", root.string(), " is not a directory");
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        const std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".dcm" || ext == ".png" || ext == ".jpg")) {
            out.emplace(e.path().stem().string(), e.path());
        }
    }
    return out;
}

/// The union of several RLE strings (the challenge's relative convention) as one string.
std::string merge_rle(const std::vector<std::string>& rles, const std::string& what) {
    std::uint64_t extent = 0;
    for (const auto& s : rles) {
        extent = std::max(extent, rle_extent(s, RleConvention::kSiimRelative, what));
    }
    RADPROBE_CHECK(extent < (1ull << 31), what, ": RLE extent ", extent, " is implausibly large");
    // One row: the pixel order of the convention does not matter for a union.
    Mask merged(1, static_cast<int>(extent));
    for (const auto& s : rles) {
        const Mask m =
            rle_decode(s, 1, static_cast<int>(extent), RleConvention::kSiimRelative, what);
        for (std::size_t i = 0; i < m.data.size(); ++i) {
            merged.data[i] |= m.data[i];
        }
    }
    return rle_encode(merged, RleConvention::kSiimRelative);
}

PublicSetResult build_siim(const PublicSetOptions& o) {
    const CsvTable t = CsvTable::read(o.table);
    const std::size_t ic = need_column(t, "ImageId");
    const std::size_t ec = need_column(t, "EncodedPixels");
    fs::path root = o.image_root;
    if (root.empty()) {
        root = fs::is_directory(o.table.parent_path() / "dicom-images-train")
                   ? o.table.parent_path() / "dicom-images-train"
                   : o.table.parent_path();
    }
    const auto images = index_images(root);
    const ImageIds ids(root, o.out);

    std::vector<std::string> order;
    std::map<std::string, std::vector<std::string>> rles;  // image → mask strings ("-1" kept)
    std::map<std::string, std::size_t> first_line;
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const std::size_t line = t.line_of_row(r);
        const std::string image = trim(t.rows()[r][ic]);
        const std::string rle = trim(t.rows()[r][ec]);
        RADPROBE_CHECK(!image.empty(), t.name(), ":", line, ": column 'ImageId': empty");
        RADPROBE_CHECK(rle == "-1" || looks_like_rle(rle), t.name(), ":", line,
                       ": column 'EncodedPixels': '", rle, "' is not -1 or an RLE string");
        const std::string what = str_cat(t.name(), ":", line, ": column 'EncodedPixels'");
        rle_extent(rle, RleConvention::kSiimRelative, what);  // malformed → InputError
        auto& list = rles[image];
        if (list.empty()) {
            order.push_back(image);
            first_line[image] = line;
        }
        const bool none = rle == "-1";
        RADPROBE_CHECK(list.empty() || (list.front() == "-1") == none, t.name(), ":", line,
                       ": column 'EncodedPixels': image '", image,
                       "' has both -1 (no pneumothorax) and a mask (first row at line ",
                       first_line[image], ")");
        list.push_back(rle);
    }
    PublicSetResult res;
    res.label_names = {"pneumothorax"};
    res.csv = "image,patient_id,pneumothorax,mask_pneumothorax\n";
    for (const auto& image : order) {
        const auto it = images.find(image);
        if (it == images.end()) {
            ++res.skipped;
            continue;
        }
        const auto& list = rles[image];
        const bool none = list.front() == "-1";
        const std::string mask = none ? "-1"
                                 : list.size() == 1
                                     ? list.front()
                                     : merge_rle(list, str_cat(t.name(), ":", first_line[image],
                                                               ": column 'EncodedPixels'"));
        res.csv += csv_line({ids.id(it->second.string()), image, none ? "0" : "1", mask}) + "\n";
        ++res.rows;
    }
    if (res.skipped) {
        res.skipped_reason =
            str_cat("images without a file IMAGEID.dcm/.png/.jpg under ", root.string());
    }
    res.patients = res.rows;
    return res;
}

}  // namespace

PublicSet parse_public_set(const std::string& name) {
    if (name == "nih") {
        return PublicSet::kNih;
    }
    if (name == "chexpert") {
        return PublicSet::kChexpert;
    }
    if (name == "siim") {
        return PublicSet::kSiim;
    }
    if (name == "chestx-det10") {
        return PublicSet::kChestXDet10;
    }
    if (name == "jsrt") {
        return PublicSet::kJsrt;
    }
    throw UsageError(
        str_cat("--format '", name, "': expected nih, chexpert, siim, chestx-det10 or jsrt"));
}

UncertainPolicy parse_uncertain_policy(const std::string& name) {
    if (name == "ignore") {
        return UncertainPolicy::kIgnore;
    }
    if (name == "zeros") {
        return UncertainPolicy::kZeros;
    }
    if (name == "ones") {
        return UncertainPolicy::kOnes;
    }
    throw UsageError(str_cat("--uncertain '", name, "': expected ignore, zeros or ones"));
}

PublicSetResult build_public_set_manifest(const PublicSetOptions& o) {
    RADPROBE_USAGE_CHECK(!o.out.empty(), "--out is required");
    const bool nih = o.format == PublicSet::kNih;
    RADPROBE_USAGE_CHECK(
        o.format == PublicSet::kChexpert || (o.metadata.empty() && o.split_table.empty()),
        "--metadata and --split-table apply to --format chexpert (MIMIC-CXR-JPG)");
    RADPROBE_USAGE_CHECK(nih || (!o.boxes && o.train_list.empty() && o.test_list.empty()),
                         "--boxes-from, --train-list and --test-list apply to --format nih");
    RADPROBE_USAGE_CHECK(o.format == PublicSet::kChexpert ||
                             (!o.frontal_only && o.uncertain == UncertainPolicy::kIgnore),
                         "--frontal-only and --uncertain apply to --format chexpert");
    RADPROBE_USAGE_CHECK(o.format == PublicSet::kJsrt || (o.masks.empty() && o.png_dir.empty()),
                         "--masks and --png-dir apply to --format jsrt");
    switch (o.format) {
        case PublicSet::kNih:
            return build_nih(o);
        case PublicSet::kChexpert:
            return build_chexpert(o);
        case PublicSet::kSiim:
            return build_siim(o);
        case PublicSet::kChestXDet10:
            return build_det10(o);
        case PublicSet::kJsrt:
            return detail::build_jsrt(o);
    }
    RADPROBE_ASSERT(false, "unknown public set");
    return {};
}

}  // namespace radprobe::dataset
