#include "radprobe/core/csv.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"

namespace radprobe {

CsvTable CsvTable::read(const std::filesystem::path& path) {
    return parse(read_file_text(path), path.string());
}

CsvTable CsvTable::parse(const std::string& text_in, const std::string& name) {
    CsvTable table;
    table.name_ = name;
    std::string_view text = text_in;
    if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF &&
        static_cast<unsigned char>(text[1]) == 0xBB &&
        static_cast<unsigned char>(text[2]) == 0xBF) {
        text.remove_prefix(3);  // UTF-8 byte-order mark
    }
    // A NUL byte never occurs in a text table: this is an image, a database or a damaged file.
    if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
        throw InputError(str_cat(name, ": not a text CSV file (NUL byte at offset ", nul, ")"));
    }
    std::vector<std::vector<std::string>> records;
    std::vector<std::size_t> lines;
    std::vector<std::string> record;
    std::string field;
    bool in_quotes = false;
    bool field_quoted = false;
    std::size_t line = 1;
    std::size_t record_line = 1;
    auto end_record = [&]() {
        record.push_back(std::move(field));
        field.clear();
        field_quoted = false;
        const bool blank = record.size() == 1 && record[0].empty();
        if (!blank) {
            records.push_back(std::move(record));
            lines.push_back(record_line);
        }
        record.clear();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_quotes) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    in_quotes = false;
                }
            } else {
                if (c == '\n') {
                    ++line;
                }
                field += c;
            }
            continue;
        }
        if (c == '"') {
            RADPROBE_CHECK(field.empty() && !field_quoted, name, ":", line,
                           ": stray quote inside an unquoted field");
            in_quotes = true;
            field_quoted = true;
        } else if (c == ',') {
            record.push_back(std::move(field));
            field.clear();
            field_quoted = false;
        } else if (c == '\r') {
            // tolerated before \n
        } else if (c == '\n') {
            end_record();
            ++line;
            record_line = line;
        } else {
            RADPROBE_CHECK(!field_quoted, name, ":", line, ": characters after a closing quote");
            field += c;
        }
    }
    RADPROBE_CHECK(!in_quotes, name, ":", record_line, ": unterminated quoted field");
    if (!field.empty() || !record.empty() || field_quoted) {
        end_record();
    }
    RADPROBE_CHECK(!records.empty(), name, ": empty CSV (no header row)");
    table.header_ = std::move(records[0]);
    std::set<std::string> seen;
    for (auto& h : table.header_) {
        // Trim surrounding spaces from header names.
        while (!h.empty() && h.back() == ' ') {
            h.pop_back();
        }
        while (!h.empty() && h.front() == ' ') {
            h.erase(h.begin());
        }
        RADPROBE_CHECK(!h.empty(), name, ":1: empty column name in header");
        RADPROBE_CHECK(seen.insert(h).second, name, ":1: duplicated column '", h, "'");
    }
    for (std::size_t r = 1; r < records.size(); ++r) {
        RADPROBE_CHECK(records[r].size() == table.header_.size(), name, ":", lines[r], ": ",
                       records[r].size(), " fields, header has ", table.header_.size());
        table.rows_.push_back(std::move(records[r]));
        table.row_lines_.push_back(lines[r]);
    }
    return table;
}

std::optional<std::size_t> CsvTable::find_column(const std::string& column) const {
    for (std::size_t i = 0; i < header_.size(); ++i) {
        if (header_[i] == column) {
            return i;
        }
    }
    return std::nullopt;
}

std::size_t CsvTable::column(const std::string& column) const {
    if (auto i = find_column(column)) {
        return *i;
    }
    std::string present;
    for (const auto& h : header_) {
        present += (present.empty() ? "" : ", ") + h;
    }
    throw InputError(str_cat(name_, ": no column '", column, "' (columns: ", present, ")"));
}

std::vector<double> CsvTable::numeric_column(const std::string& name) const {
    const std::size_t c = column(name);
    std::vector<double> out;
    out.reserve(rows_.size());
    for (std::size_t r = 0; r < rows_.size(); ++r) {
        const auto v = parse_double(rows_[r][c]);
        RADPROBE_CHECK(v.has_value(), name_, ":", row_lines_[r], ": column '", name, "' value '",
                       rows_[r][c], "' is not a number");
        out.push_back(*v);
    }
    return out;
}

std::string csv_escape(const std::string& field) {
    if (field.find_first_of(",\"\n\r") == std::string::npos) {
        return field;
    }
    std::string out = "\"";
    for (char c : field) {
        if (c == '"') {
            out += '"';
        }
        out += c;
    }
    out += '"';
    return out;
}

std::string csv_line(const std::vector<std::string>& fields) {
    std::string out;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) {
            out += ',';
        }
        out += csv_escape(fields[i]);
    }
    return out;
}

std::optional<double> parse_double(const std::string& text) {
    std::string t = text;
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) {
        t.pop_back();
    }
    std::size_t start = 0;
    while (start < t.size() && (t[start] == ' ' || t[start] == '\t')) {
        ++start;
    }
    if (start >= t.size()) {
        return std::nullopt;
    }
    const char* b = t.c_str() + start;
    char* end = nullptr;
    const double v = std::strtod(b, &end);
    if (end == b || *end != '\0') {
        return std::nullopt;
    }
    return v;
}

std::optional<long long> parse_int(const std::string& text) {
    long long v = 0;
    const char* b = text.data();
    const char* e = text.data() + text.size();
    if (b != e && *b == '+') {
        ++b;
    }
    auto [p, ec] = std::from_chars(b, e, v);
    if (ec != std::errc() || p != e || b == e) {
        return std::nullopt;
    }
    return v;
}

}  // namespace radprobe
