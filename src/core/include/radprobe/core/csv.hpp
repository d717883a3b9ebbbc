#pragma once
/// @file csv.hpp
/// RFC 4180 CSV: a header row, quoted fields with embedded commas, quotes and newlines.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace radprobe {

/// A CSV table held in memory with a header row.
class CsvTable {
public:
    /// Parses `path`; throws InputError naming the file and line on malformed content (an
    /// unterminated quote, a row with a different number of fields than the header, a duplicated
    /// or empty header name).
    static CsvTable read(const std::filesystem::path& path);
    static CsvTable parse(const std::string& text, const std::string& name);

    const std::vector<std::string>& header() const { return header_; }
    const std::vector<std::vector<std::string>>& rows() const { return rows_; }
    std::size_t num_rows() const { return rows_.size(); }
    const std::string& name() const { return name_; }

    /// Index of a column, or nullopt.
    std::optional<std::size_t> find_column(const std::string& column) const;
    /// Index of a column; throws InputError naming the file, the column and the columns present.
    std::size_t column(const std::string& column) const;
    /// Line number in the file (1-based, header = line 1) of a data row.
    std::size_t line_of_row(std::size_t row) const { return row_lines_.at(row); }

    /// Column parsed as doubles; throws on a non-numeric or empty cell, naming the line.
    std::vector<double> numeric_column(const std::string& column) const;

private:
    std::string name_;
    std::vector<std::string> header_;
    std::vector<std::vector<std::string>> rows_;
    std::vector<std::size_t> row_lines_;
};

/// Quotes a field if it contains a comma, quote or newline.
std::string csv_escape(const std::string& field);
/// Joins fields into one CSV line (without the newline).
std::string csv_line(const std::vector<std::string>& fields);

/// Parses a double strictly (whole string, finite or not); nullopt if it is not a number.
std::optional<double> parse_double(const std::string& text);
/// Parses a signed 64-bit integer strictly; nullopt if it is not one.
std::optional<long long> parse_int(const std::string& text);

}  // namespace radprobe
