// Loading a manifest and its boxes file; collecting every CSV-level problem.

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"

namespace radprobe::dataset {
namespace fs = std::filesystem;

namespace {

constexpr double kLabelDetectFraction = 0.9;

bool is_reserved(const std::string& column) {
    return column == "image" || column == "patient_id" || column == "split" ||
           column.rfind("mask_", 0) == 0;
}

bool is_binary(const std::string& v) {
    return v == "0" || v == "1";
}

void sort_problems(std::vector<Problem>& problems) {
    std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) {
        if (a.file != b.file) {
            return a.file < b.file;
        }
        return a.line < b.line;
    });
}

// One row of boxes.csv; nullopt (and problems added) when a coordinate is not a finite number.
// An inverted or empty box is a problem but is kept, so that validate can also check its bounds.
std::optional<Box> parse_box(const std::vector<std::string>& row, const std::size_t* cols,
                             std::size_t line, const std::string& file,
                             std::vector<Problem>& problems) {
    static const char* names[] = {"x0", "y0", "x1", "y1"};
    Box box;
    box.label = row[cols[1]];
    box.line = line;
    double* coords[4] = {&box.x0, &box.y0, &box.x1, &box.y1};
    bool numeric = true;
    for (int k = 0; k < 4; ++k) {
        const auto v = parse_double(row[cols[2 + k]]);
        if (!v || !std::isfinite(*v)) {
            problems.push_back(
                {file, line, names[k], str_cat("'", row[cols[2 + k]], "' is not a finite number")});
            numeric = false;
        } else {
            *coords[k] = *v;
        }
    }
    if (!numeric) {
        return std::nullopt;
    }
    if (box.x1 <= box.x0 || box.y1 <= box.y0) {
        problems.push_back({file, line, "",
                            str_cat("inverted or empty box (", box.x0, ",", box.y0, ")-(", box.x1,
                                    ",", box.y1, "): needs x0 < x1 and y0 < y1")});
    }
    return box;
}

}  // namespace

const char* split_name(Split split) {
    switch (split) {
        case Split::kTrain:
            return "train";
        case Split::kVal:
            return "val";
        case Split::kTest:
            return "test";
        case Split::kNone:
            break;
    }
    return "";
}

std::optional<Split> parse_split(const std::string& text) {
    if (text.empty()) {
        return Split::kNone;
    }
    if (text == "train") {
        return Split::kTrain;
    }
    if (text == "val") {
        return Split::kVal;
    }
    if (text == "test") {
        return Split::kTest;
    }
    return std::nullopt;
}

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find(',', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        std::string item = text.substr(start, end - start);
        const auto b = item.find_first_not_of(" \t");
        const auto e = item.find_last_not_of(" \t");
        if (b != std::string::npos) {
            out.push_back(item.substr(b, e - b + 1));
        }
        start = end + 1;
    }
    return out;
}

std::string Problem::to_string() const {
    std::string s = file;
    if (line > 0) {
        s += ":" + std::to_string(line);
    }
    s += ": ";
    if (!column.empty()) {
        s += "column '" + column + "': ";
    }
    return s + message;
}

struct Manifest::ResampleLog {
    std::mutex mutex;
    Resampled seen;
};

Manifest Manifest::load(const fs::path& path, const ManifestOptions& options) {
    Manifest m;
    m.resampled_ = std::make_shared<ResampleLog>();
    m.path_ = path;
    m.dir_ = path.parent_path();
    m.rle_ = options.rle;
    m.table_ = CsvTable::read(path);
    const CsvTable& t = m.table_;
    const std::string file = path.string();
    const std::size_t image_col = t.column("image");
    const std::size_t patient_col = t.column("patient_id");
    const auto split_col = t.find_column("split");
    m.has_split_ = split_col.has_value();
    auto add = [&m, &file](std::size_t line, std::string column, std::string message) {
        m.problems_.push_back({file, line, std::move(column), std::move(message)});
    };

    // Which columns are labels, attributes, masks.
    std::set<std::string> explicit_labels;
    if (options.labels) {
        for (const auto& name : *options.labels) {
            RADPROBE_CHECK(
                !is_reserved(name), file, ": column '", name,
                "' cannot be a label (image, patient_id, split and mask_* are reserved)");
            t.column(name);  // throws naming the columns present
            explicit_labels.insert(name);
        }
    }
    for (std::size_t c = 0; c < t.header().size(); ++c) {
        const std::string& name = t.header()[c];
        if (name.rfind("mask_", 0) == 0) {
            RADPROBE_CHECK(name.size() > 5, file, ": column 'mask_' has no mask name");
            m.mask_names_.push_back(name.substr(5));
            m.mask_cols_.push_back(c);
            continue;
        }
        if (is_reserved(name)) {
            continue;
        }
        bool label = false;
        if (options.labels) {
            label = explicit_labels.count(name) > 0;
        } else {
            std::size_t non_empty = 0;
            std::size_t binary = 0;
            for (const auto& row : t.rows()) {
                if (!row[c].empty()) {
                    ++non_empty;
                    binary += is_binary(row[c]);
                }
            }
            label = non_empty > 0 && static_cast<double>(binary) >=
                                         kLabelDetectFraction * static_cast<double>(non_empty);
        }
        if (label) {
            m.label_names_.push_back(name);
            m.label_cols_.push_back(c);
        } else {
            m.attribute_names_.push_back(name);
            m.attribute_cols_.push_back(c);
        }
    }

    // Records.
    std::map<std::string, std::size_t> first_line;
    m.records_.reserve(t.num_rows());
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const auto& row = t.rows()[r];
        Record rec;
        rec.line = t.line_of_row(r);
        rec.id = row[image_col];
        if (rec.id.empty()) {
            add(rec.line, "image", "empty image path");
        } else {
            rec.image_path = m.dir_ / rec.id;
            const auto [it, inserted] = first_line.emplace(rec.id, rec.line);
            if (!inserted) {
                add(rec.line, "image",
                    str_cat("duplicate image id '", rec.id, "' (first at line ", it->second, ")"));
            }
        }
        rec.patient_id = row[patient_col];
        if (rec.patient_id.empty()) {
            add(rec.line, "patient_id", "empty patient id");
        }
        if (split_col) {
            const auto s = parse_split(row[*split_col]);
            if (s) {
                rec.split = *s;
            } else {
                add(rec.line, "split",
                    str_cat("invalid split '", row[*split_col],
                            "' (valid: train, val, test, empty)"));
            }
        }
        for (std::size_t k = 0; k < m.label_cols_.size(); ++k) {
            const std::string& v = row[m.label_cols_[k]];
            if (v.empty()) {
                rec.labels.push_back(kLabelUnknown);
            } else if (is_binary(v)) {
                rec.labels.push_back(static_cast<std::int8_t>(v[0] - '0'));
            } else {
                rec.labels.push_back(kLabelUnknown);
                add(rec.line, m.label_names_[k],
                    str_cat("label value '", v, "' is not 0, 1 or empty"));
            }
        }
        for (std::size_t c : m.attribute_cols_) {
            rec.attributes.push_back(row[c]);
        }
        for (std::size_t k = 0; k < m.mask_cols_.size(); ++k) {
            const std::string& v = row[m.mask_cols_[k]];
            MaskRef ref;
            ref.value = v;
            if (v.empty()) {
                ref.source = MaskSource::kNone;
            } else if (looks_like_rle(v)) {
                ref.source = MaskSource::kRle;
                try {
                    rle_extent(v, m.rle_, "RLE");
                } catch (const InputError& e) {
                    std::string msg = e.what();
                    if (msg.rfind("RLE: ", 0) == 0) {
                        msg = msg.substr(5);
                    }
                    add(rec.line, t.header()[m.mask_cols_[k]], msg);
                }
            } else {
                ref.source = MaskSource::kFile;
                ref.path = m.dir_ / v;
            }
            rec.masks.push_back(std::move(ref));
        }
        m.records_.push_back(std::move(rec));
    }
    m.id_index_.reserve(m.records_.size());
    for (std::size_t i = 0; i < m.records_.size(); ++i) {
        m.id_index_.emplace_back(m.records_[i].id, i);
    }
    std::stable_sort(m.id_index_.begin(), m.id_index_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });

    // Leakage: a patient in more than one split (unassigned rows do not count).
    if (split_col) {
        std::map<std::string, std::map<Split, std::vector<std::size_t>>> by_patient;
        std::vector<std::string> order;
        for (const Record& rec : m.records_) {
            if (rec.split == Split::kNone || rec.patient_id.empty()) {
                continue;
            }
            auto& splits = by_patient[rec.patient_id];
            if (splits.empty()) {
                order.push_back(rec.patient_id);
            }
            splits[rec.split].push_back(rec.line);
        }
        for (const auto& patient : order) {
            const auto& splits = by_patient[patient];
            if (splits.size() < 2) {
                continue;
            }
            std::string where;
            std::size_t report_line = 0;
            for (const auto& [split, lines] : splits) {
                where += str_cat(where.empty() ? "" : ", ", split_name(split), " (", lines.size(),
                                 lines.size() == 1 ? " image, line " : " images, first line ",
                                 lines.front(), ")");
                report_line = std::max(report_line, lines.front());
            }
            add(report_line, "patient_id",
                str_cat("patient '", patient, "' is in ", splits.size(), " splits: ", where,
                        " (leakage)"));
        }
    }

    m.load_boxes(options);
    sort_problems(m.problems_);
    return m;
}

// Boxes: problems of the file go to box_problems_ (only the steps that use boxes need them),
// boxes of images not in the manifest are ignored with one warning.
void Manifest::load_boxes(const ManifestOptions& options) {
    if (options.boxes) {
        boxes_path_ = *options.boxes;
        std::error_code ec;  // a name the OS refuses is an InputError too, not a filesystem_error
        RADPROBE_CHECK(fs::is_regular_file(boxes_path_, ec), boxes_path_.string(), ": ",
                       ec && ec != std::errc::no_such_file_or_directory ? ec.message()
                                                                        : "boxes file not found");
    } else if (std::error_code ec; fs::is_regular_file(dir_ / "boxes.csv", ec)) {
        boxes_path_ = dir_ / "boxes.csv";
    }
    if (boxes_path_.empty()) {
        return;
    }
    const std::string bfile = boxes_path_.string();
    std::optional<CsvTable> boxes;
    try {
        boxes = CsvTable::read(boxes_path_);
    } catch (const InputError& e) {
        box_problems_.push_back({bfile, 0, "", e.what()});
        return;
    }
    const char* needed[] = {"image", "label", "x0", "y0", "x1", "y1"};
    std::size_t cols[6];
    for (int k = 0; k < 6; ++k) {
        const auto c = boxes->find_column(needed[k]);
        if (!c) {
            box_problems_.push_back(
                {bfile, 1, needed[k], "missing column (needed: image,label,x0,y0,x1,y1)"});
        } else {
            cols[k] = *c;
        }
    }
    if (!box_problems_.empty()) {
        return;
    }
    std::size_t unknown = 0;
    std::string first_unknown;
    for (std::size_t r = 0; r < boxes->num_rows(); ++r) {
        const auto& row = boxes->rows()[r];
        const std::size_t line = boxes->line_of_row(r);
        const auto index = find(row[cols[0]]);
        if (!index) {
            if (unknown++ == 0) {
                first_unknown = str_cat("line ", line, ": '", row[cols[0]], "'");
            }
            continue;
        }
        if (auto box = parse_box(row, cols, line, bfile, box_problems_)) {
            records_[*index].boxes.push_back(std::move(*box));
        }
    }
    if (unknown > 0) {
        warnings_.push_back(
            {bfile, 0, "",
             str_cat(unknown, unknown == 1 ? " box names an image" : " boxes name images",
                     " not in the manifest ", path_.string(), " (first: ", first_unknown,
                     "); ignored")});
    }
}

std::optional<std::size_t> Manifest::find(const std::string& id) const {
    const auto it = std::lower_bound(id_index_.begin(), id_index_.end(), id,
                                     [](const std::pair<std::string, std::size_t>& a,
                                        const std::string& b) { return a.first < b; });
    if (it == id_index_.end() || it->first != id) {
        return std::nullopt;
    }
    return it->second;
}

const Record& Manifest::record(const std::string& id) const {
    const auto i = find(id);
    RADPROBE_CHECK(i.has_value(), path_.string(), ": no image '", id, "'");
    return records_[*i];
}

std::vector<std::size_t> Manifest::indices(Split split) const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < records_.size(); ++i) {
        if (records_[i].split == split) {
            out.push_back(i);
        }
    }
    return out;
}

std::vector<std::string> Manifest::patients() const {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const Record& r : records_) {
        if (!r.patient_id.empty() && seen.insert(r.patient_id).second) {
            out.push_back(r.patient_id);
        }
    }
    return out;
}

std::optional<std::size_t> Manifest::label_index(const std::string& name) const {
    for (std::size_t k = 0; k < label_names_.size(); ++k) {
        if (label_names_[k] == name) {
            return k;
        }
    }
    return std::nullopt;
}

std::vector<std::int8_t> Manifest::label_vector(const std::string& name) const {
    const auto k = label_index(name);
    if (!k) {
        std::string present;
        for (const auto& l : label_names_) {
            present += (present.empty() ? "" : ", ") + l;
        }
        throw InputError(str_cat(path_.string(), ": '", name, "' is not a label column (labels: ",
                                 present.empty() ? "none" : present, ")"));
    }
    std::vector<std::int8_t> out;
    out.reserve(records_.size());
    for (const Record& r : records_) {
        out.push_back(r.labels[*k]);
    }
    return out;
}

const std::string& Manifest::attribute(std::size_t index, const std::string& name) const {
    const Record& rec = records_.at(index);
    for (std::size_t k = 0; k < attribute_names_.size(); ++k) {
        if (attribute_names_[k] == name) {
            return rec.attributes[k];
        }
    }
    for (std::size_t k = 0; k < label_names_.size(); ++k) {
        if (label_names_[k] == name) {
            return table_.rows()[index][label_cols_[k]];
        }
    }
    throw InputError(str_cat(path_.string(), ": no attribute column '", name, "'"));
}

std::optional<double> Manifest::numeric_attribute(std::size_t index,
                                                  const std::string& name) const {
    return parse_double(attribute(index, name));
}

std::optional<std::size_t> Manifest::mask_index(const std::string& name) const {
    for (std::size_t k = 0; k < mask_names_.size(); ++k) {
        if (mask_names_[k] == name) {
            return k;
        }
    }
    return std::nullopt;
}

const MaskRef& Manifest::mask_ref(std::size_t index, const std::string& name) const {
    const auto k = mask_index(name);
    RADPROBE_CHECK(k.has_value(), path_.string(), ": no mask column 'mask_", name, "'");
    return records_.at(index).masks[*k];
}

void Manifest::log_resampled(const std::string& example) const {
    if (!resampled_) {
        return;
    }
    std::lock_guard<std::mutex> lock(resampled_->mutex);
    if (resampled_->seen.count++ == 0) {
        resampled_->seen.example = example;
    }
    resampled_->seen.last = example;
}

std::string Manifest::Resampled::note(const std::string& what) const {
    if (count == 0) {
        return "";
    }
    return str_cat(count, " ", what,
                   " at another resolution than their image were resampled (nearest) to the "
                   "image grid (e.g. ",
                   example, ")");
}

Manifest::Resampled Manifest::resampled_masks() const {
    if (!resampled_) {
        return {};
    }
    std::lock_guard<std::mutex> lock(resampled_->mutex);
    return resampled_->seen;
}

std::optional<Mask> Manifest::load_mask(std::size_t index, const std::string& name, int rows,
                                        int cols) const {
    const MaskRef& ref = mask_ref(index, name);
    const std::string what =
        str_cat(path_.string(), ":", records_[index].line, ": column 'mask_", name, "'");
    switch (ref.source) {
        case MaskSource::kNone:
            return std::nullopt;
        case MaskSource::kRle:
            return rle_decode(ref.value, rows, cols, rle_, what);
        case MaskSource::kFile: {
            Mask mask;
            try {
                mask = read_mask_png(ref.path);
            } catch (const InputError& e) {
                throw InputError(str_cat(what, ": ", e.what()));
            }
            if (mask.rows == rows && mask.cols == cols) {
                return mask;
            }
            RADPROBE_CHECK(mask_matches_image_aspect(mask.rows, mask.cols, rows, cols), what,
                           ": mask ", ref.path.string(), " is ", mask.cols, "x", mask.rows,
                           " (width x height), image is ", cols, "x", rows,
                           ": another aspect ratio (a mask at another resolution is resampled "
                           "only when its aspect ratio is the image's)");
            log_resampled(str_cat(path_.filename().string(), ":", records_[index].line, ": mask_",
                                  name, " ", mask.cols, "x", mask.rows, " for a ", cols, "x", rows,
                                  " image"));
            return resample_mask_nearest(mask, rows, cols);
        }
    }
    return std::nullopt;
}

namespace {

void require_none(const std::string& file, const std::vector<Problem>& problems) {
    if (problems.empty()) {
        return;
    }
    throw InputError(str_cat(
        file, ": ", problems.size(), problems.size() == 1 ? " problem" : " problems",
        " (first: ", problems.front().to_string(), "); run `radprobe validate` for the full list"));
}

}  // namespace

void Manifest::require_valid() const {
    require_none(path_.string(), problems_);
}

void Manifest::require_valid_boxes() const {
    require_none(boxes_path_.string(), box_problems_);
}

void Manifest::require_readable_images() const {
    for (const auto& problem : problems_) {
        const bool fatal = problem.column == "image" || problem.column.rfind("mask_", 0) == 0;
        RADPROBE_CHECK(!fatal, problem.to_string(), " (run `radprobe validate` for every problem)");
    }
}

}  // namespace radprobe::dataset
