// Building a radprobe manifest from another table (e.g. the NIH ChestX-ray14 labels).

#include <algorithm>
#include <cctype>
#include <map>
#include <regex>
#include <set>

#include "radprobe/core/error.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "text.hpp"

namespace radprobe::dataset {
namespace fs = std::filesystem;

namespace {

using detail::lower;

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) {
        return "";
    }
    const auto e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

std::vector<std::string> split_on(const std::string& s, const std::string& sep) {
    std::vector<std::string> out;
    if (s.empty()) {
        return out;
    }
    std::size_t start = 0;
    while (true) {
        const auto pos = s.find(sep, start);
        out.push_back(
            trim(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start)));
        if (pos == std::string::npos) {
            break;
        }
        start = pos + sep.size();
    }
    return out;
}

std::size_t need_column(const CsvTable& t, const std::string& column, const char* flag) {
    if (const auto c = t.find_column(column)) {
        return *c;
    }
    std::string present;
    for (const auto& h : t.header()) {
        present += (present.empty() ? "" : ", ") + h;
    }
    // The flag is well formed; the table lacks the column: an input error (exit 1), as a wrong
    // label is for every other subcommand.
    throw InputError(
        str_cat(flag, ": ", t.name(), " has no column '", column, "' (columns: ", present, ")"));
}

/// Absolute, normalised path without requiring it to exist (symlinks in existing parents are
/// resolved, so relative paths come out right).
fs::path absolute_normal(const fs::path& p) {
    return fs::weakly_canonical(fs::absolute(p));
}

}  // namespace

LabelFromValue parse_label_from(const std::string& text) {
    const auto colon = text.find(':');
    const auto eq = text.rfind('=');
    RADPROBE_USAGE_CHECK(colon != std::string::npos && eq != std::string::npos && colon > 0 &&
                             eq > colon && eq + 1 < text.size(),
                         "--label-from '", text,
                         "': expected COL:VALUE=NAME (e.g. binary:1_abnormal=abnormal)");
    LabelFromValue l;
    l.column = text.substr(0, colon);
    l.value = text.substr(colon + 1, eq - colon - 1);
    l.name = text.substr(eq + 1);
    return l;
}

std::string finding_column_name(const std::string& finding) {
    std::string out;
    bool pending = false;
    for (char ch : finding) {
        const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (pending && !out.empty()) {
                out += '_';
            }
            pending = false;
            out += c;
        } else {
            pending = true;
        }
    }
    return out;
}

ConvertResult convert_table(const ConvertOptions& o) {
    RADPROBE_USAGE_CHECK(!o.image_col.empty(), "--image-col is required");
    RADPROBE_USAGE_CHECK(o.patient_col.empty() != o.patient_regex.empty(),
                         "give exactly one of --patient-col and --patient-regex");
    RADPROBE_USAGE_CHECK(!o.out.empty(), "--out is required");
    RADPROBE_USAGE_CHECK(!o.finding_sep.empty(), "--finding-sep must not be empty");
    RADPROBE_USAGE_CHECK(o.finding_col.empty() ? o.findings.empty() : true,
                         "--findings needs --finding-col");
    const CsvTable t = CsvTable::read(o.table);
    const std::string file = t.name();

    const std::size_t image_col = need_column(t, o.image_col, "--image-col");
    std::optional<std::size_t> patient_col;
    std::optional<std::regex> patient_re;
    if (!o.patient_col.empty()) {
        patient_col = need_column(t, o.patient_col, "--patient-col");
    } else {
        try {
            patient_re.emplace(o.patient_regex, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            throw UsageError(str_cat("--patient-regex '", o.patient_regex, "': ", e.what()));
        }
    }
    std::optional<std::size_t> split_col;
    std::map<std::string, std::string> split_map = {{"train", "train"}, {"val", "val"},
                                                    {"valid", "val"},   {"validation", "val"},
                                                    {"test", "test"},   {"", ""}};
    if (!o.split_col.empty()) {
        split_col = need_column(t, o.split_col, "--split-col");
        for (const auto& entry : o.split_map) {
            const auto eq = entry.find('=');
            RADPROBE_USAGE_CHECK(eq != std::string::npos && eq > 0, "--split-map '", entry,
                                 "': expected FROM=TO with TO one of train, val, test or empty");
            const std::string to = entry.substr(eq + 1);
            RADPROBE_USAGE_CHECK(parse_split(to).has_value(), "--split-map '", entry, "': '", to,
                                 "' is not train, val, test or empty");
            split_map[entry.substr(0, eq)] = to;
        }
    } else {
        RADPROBE_USAGE_CHECK(o.split_map.empty(), "--split-map needs --split-col");
    }

    // Output columns and their names (each name once, none reserved).
    std::set<std::string> names = {"image", "patient_id", "split"};
    auto claim = [&names](const std::string& name, const std::string& flag) {
        RADPROBE_USAGE_CHECK(!name.empty(), flag, ": empty output column name");
        RADPROBE_USAGE_CHECK(name.rfind("mask_", 0) != 0, flag, ": output column '", name,
                             "' would be read as a mask (mask_*)");
        RADPROBE_USAGE_CHECK(names.insert(name).second, flag, ": output column '", name,
                             "' is produced twice or is reserved (image, patient_id, split)");
    };
    std::vector<std::size_t> label_from_cols;
    for (const auto& l : o.label_from) {
        label_from_cols.push_back(need_column(t, l.column, "--label-from"));
        claim(l.name, "--label-from");
    }
    std::optional<std::size_t> finding_col;
    std::vector<std::string> findings;  // as spelled in the table
    if (!o.finding_col.empty()) {
        finding_col = need_column(t, o.finding_col, "--finding-col");
        std::map<std::string, std::string> seen;  // lower → spelling (first seen)
        for (const auto& row : t.rows()) {
            for (const auto& f : split_on(row[*finding_col], o.finding_sep)) {
                if (!f.empty() && lower(f) != lower(o.no_finding)) {
                    seen.emplace(lower(f), f);
                }
            }
        }
        if (o.findings.empty()) {
            for (const auto& [key, spelling] : seen) {
                findings.push_back(spelling);
            }
        } else {
            for (const auto& wanted : o.findings) {
                const auto it = seen.find(lower(trim(wanted)));
                if (it == seen.end()) {
                    std::string present;
                    for (const auto& [key, spelling] : seen) {
                        present += (present.empty() ? "" : ", ") + spelling;
                    }
                    throw UsageError(str_cat("--findings: '", wanted,
                                             "' does not occur in column '", o.finding_col, "' of ",
                                             file, " (found: ", present, ")"));
                }
                findings.push_back(it->second);
            }
        }
        for (const auto& f : findings) {
            claim(finding_column_name(f), "--findings");
        }
    }
    std::vector<std::size_t> keep_cols;
    for (const auto& k : o.keep) {
        keep_cols.push_back(need_column(t, k, "--keep"));
        claim(k, "--keep");
    }

    ConvertResult result;
    std::vector<std::string> header = {"image", "patient_id"};
    if (split_col) {
        header.push_back("split");
    }
    for (const auto& l : o.label_from) {
        header.push_back(l.name);
        result.label_names.push_back(l.name);
    }
    for (const auto& f : findings) {
        header.push_back(finding_column_name(f));
        result.label_names.push_back(finding_column_name(f));
    }
    for (const auto& k : o.keep) {
        header.push_back(k);
    }
    result.csv = csv_line(header) + "\n";

    const fs::path root =
        absolute_normal(o.image_root.empty() ? fs::path(o.table).parent_path() : o.image_root);
    const fs::path out_dir = absolute_normal(fs::absolute(o.out).parent_path());
    std::set<std::string> patients;
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
        const auto& row = t.rows()[r];
        const std::size_t line = t.line_of_row(r);
        const std::string& image = row[image_col];
        RADPROBE_CHECK(!image.empty(), file, ":", line, ": column '", o.image_col,
                       "': empty image path");
        const fs::path abs = fs::path(image).is_absolute() ? fs::path(image).lexically_normal()
                                                           : (root / image).lexically_normal();
        const std::string rel = abs.lexically_relative(out_dir).generic_string();
        RADPROBE_CHECK(!rel.empty(), file, ":", line, ": cannot express ", abs.string(),
                       " relative to ", out_dir.string());
        std::vector<std::string> out = {rel};
        std::string patient;
        if (patient_col) {
            patient = row[*patient_col];
            RADPROBE_CHECK(!patient.empty(), file, ":", line, ": column '", o.patient_col,
                           "': empty patient id");
        } else {
            const std::string name = fs::path(image).filename().string();
            std::smatch match;
            RADPROBE_CHECK(std::regex_search(name, match, *patient_re), file, ":", line,
                           ": file name '", name, "' does not match --patient-regex '",
                           o.patient_regex, "'");
            patient = match.size() > 1 ? match[1].str() : match[0].str();
            RADPROBE_CHECK(!patient.empty(), file, ":", line, ": --patient-regex '",
                           o.patient_regex, "' gives an empty patient id for '", name, "'");
        }
        patients.insert(patient);
        out.push_back(patient);
        if (split_col) {
            const std::string& v = row[*split_col];
            const auto it = split_map.find(v);
            RADPROBE_CHECK(it != split_map.end(), file, ":", line, ": column '", o.split_col,
                           "': split value '", v,
                           "' is not mapped (defaults: train, val/valid/validation, test; add "
                           "--split-map ",
                           v, "=train|val|test)");
            out.push_back(it->second);
        }
        for (std::size_t k = 0; k < o.label_from.size(); ++k) {
            const std::string& v = row[label_from_cols[k]];
            out.push_back(v.empty() ? "" : v == o.label_from[k].value ? "1" : "0");
        }
        if (finding_col) {
            const std::string& cell = row[*finding_col];
            std::set<std::string> present;
            for (const auto& f : split_on(cell, o.finding_sep)) {
                present.insert(lower(f));
            }
            for (const auto& f : findings) {
                out.push_back(trim(cell).empty() ? "" : present.count(lower(f)) ? "1" : "0");
            }
        }
        for (std::size_t c : keep_cols) {
            out.push_back(row[c]);
        }
        result.csv += csv_line(out) + "\n";
    }
    result.rows = t.num_rows();
    result.patients = patients.size();
    return result;
}

}  // namespace radprobe::dataset
