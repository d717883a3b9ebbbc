// The leaderboard as text (`radprobe results`): aligned table, CSV, JSON, Markdown.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/results/results.hpp"

namespace radprobe::results {

namespace table {

std::string format_number(const std::optional<double>& value, int decimals) {
    if (!value) {
        return "";
    }
    if (!std::isfinite(*value)) {
        return std::isnan(*value) ? "nan" : (*value > 0 ? "inf" : "-inf");
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, *value);
    return buf;
}

std::string metric_cell(const Metric& metric) {
    if (!metric.value) {
        return "\xE2\x80\x94";  // em dash: undefined on this data
    }
    std::string cell = format_number(metric.value);
    if (metric.ci_lo && metric.ci_hi) {
        cell += " [" + format_number(metric.ci_lo) + ", " + format_number(metric.ci_hi) + "]";
    }
    return cell;
}

std::string primary_metric(const std::vector<LeaderboardRow>& rows) {
    std::string first;
    for (const char* preferred : {"auroc", "dice"}) {
        for (const auto& row : rows) {
            for (const auto& m : row.metrics) {
                if (m.name == preferred) {
                    return preferred;
                }
                if (first.empty()) {
                    first = m.name;
                }
            }
        }
    }
    return first;
}

std::vector<std::string> metric_columns(const std::vector<LeaderboardRow>& rows) {
    std::vector<std::string> names;
    const std::string primary = primary_metric(rows);
    if (!primary.empty()) {
        names.push_back(primary);
    }
    for (const auto& row : rows) {
        for (const auto& m : row.metrics) {
            if (std::find(names.begin(), names.end(), m.name) == names.end()) {
                names.push_back(m.name);
            }
        }
    }
    return names;
}

const Metric* find_metric(const LeaderboardRow& row, const std::string& name) {
    for (const auto& m : row.metrics) {
        if (m.name == name) {
            return &m;
        }
    }
    return nullptr;
}

std::vector<std::vector<LeaderboardRow>> group_by_task(std::vector<LeaderboardRow> rows) {
    std::map<std::string, std::vector<LeaderboardRow>> by_task;
    for (auto& row : rows) {
        by_task[row.run.spec.task].push_back(std::move(row));
    }
    std::vector<std::vector<LeaderboardRow>> groups;
    for (auto& [task, group] : by_task) {
        const std::string primary = primary_metric(group);
        auto key = [&](const LeaderboardRow& r) {
            const Metric* m = find_metric(r, primary);
            return (m && m->value) ? *m->value : -INFINITY;
        };
        std::stable_sort(group.begin(), group.end(),
                         [&](const LeaderboardRow& a, const LeaderboardRow& b) {
                             const double ka = key(a);
                             const double kb = key(b);
                             if (ka != kb) {
                                 return ka > kb;
                             }
                             return a.run.id < b.run.id;
                         });
        groups.push_back(std::move(group));
    }
    return groups;
}

std::string run_label(const RunRecord& run) {
    std::string label;
    for (const std::string* part : {&run.spec.encoder, &run.spec.adaptation, &run.spec.pooling}) {
        if (part->empty()) {
            continue;
        }
        if (!label.empty()) {
            label += " \xC2\xB7 ";  // middle dot
        }
        label += *part;
    }
    return label.empty() ? "run " + std::to_string(run.id) : label;
}

}  // namespace table

namespace {

using nlohmann::ordered_json;

const std::vector<std::string> kRunColumns = {"task",   "encoder", "adaptation", "pooling",
                                              "layers", "seed",    "run"};

std::vector<std::string> run_fields(const RunRecord& r) {
    return {r.spec.task,         r.spec.encoder, r.spec.adaptation,
            r.spec.pooling,      r.spec.layers,  std::to_string(r.spec.seed),
            std::to_string(r.id)};
}

// Display width of UTF-8 text: code points, not bytes.
std::size_t display_width(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) {
        n += (c & 0xC0) != 0x80;
    }
    return n;
}

std::string aligned_table(const std::vector<std::string>& header,
                          const std::vector<std::vector<std::string>>& body) {
    std::vector<std::size_t> width(header.size(), 0);
    auto widen = [&](const std::vector<std::string>& row) {
        for (std::size_t c = 0; c < row.size(); ++c) {
            width[c] = std::max(width[c], display_width(row[c]));
        }
    };
    widen(header);
    for (const auto& row : body) {
        widen(row);
    }
    auto line = [&](const std::vector<std::string>& row) {
        std::string out;
        for (std::size_t c = 0; c < row.size(); ++c) {
            out += row[c];
            if (c + 1 < row.size()) {
                out += std::string(width[c] - display_width(row[c]) + 2, ' ');
            }
        }
        while (!out.empty() && out.back() == ' ') {
            out.pop_back();
        }
        return out + "\n";
    };
    std::string out = line(header);
    for (const auto& row : body) {
        out += line(row);
    }
    return out;
}

std::string markdown_cell(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '|') {
            out += "\\|";
        } else if (c == '\n' || c == '\r') {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

ordered_json metric_json(const Metric& m) {
    ordered_json j;
    auto opt = [](const std::optional<double>& v) {
        return v ? ordered_json(*v) : ordered_json(nullptr);
    };
    j["value"] = opt(m.value);
    j["ci_lo"] = opt(m.ci_lo);
    j["ci_hi"] = opt(m.ci_hi);
    j["ci_method"] = m.ci_method.empty() ? ordered_json(nullptr) : ordered_json(m.ci_method);
    j["n"] = m.n ? ordered_json(*m.n) : ordered_json(nullptr);
    return j;
}

}  // namespace

TableFormat parse_table_format(const std::string& text) {
    if (text == "table") {
        return TableFormat::kTable;
    }
    if (text == "csv") {
        return TableFormat::kCsv;
    }
    if (text == "json") {
        return TableFormat::kJson;
    }
    if (text == "md") {
        return TableFormat::kMarkdown;
    }
    RADPROBE_USAGE_CHECK(false, "format '", text, "' is not one of table, csv, json, md");
    return TableFormat::kTable;
}

namespace {

std::string leaderboard_json(const std::vector<LeaderboardRow>& rows) {
    ordered_json out = ordered_json::array();
    for (const auto& row : rows) {
        ordered_json j;
        const auto fields = run_fields(row.run);
        for (std::size_t c = 0; c < kRunColumns.size(); ++c) {
            j[kRunColumns[c]] = fields[c];
        }
        j["seed"] = row.run.spec.seed;
        j["run"] = row.run.id;
        j["config_hash"] = row.run.spec.config_hash;
        ordered_json m = ordered_json::object();
        for (const auto& metric : row.metrics) {
            m[metric.name] = metric_json(metric);
        }
        j["metrics"] = std::move(m);
        out.push_back(std::move(j));
    }
    // Text that is not UTF-8 (a foreign or damaged database) becomes U+FFFD instead of an error.
    return out.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
}

// Machine-readable: separate value / ci_lo / ci_hi columns per metric.
std::string leaderboard_csv(const std::vector<LeaderboardRow>& rows,
                            const std::vector<std::string>& metrics) {
    std::vector<std::string> header = kRunColumns;
    for (const auto& name : metrics) {
        header.push_back(name);
        header.push_back(name + "_ci_lo");
        header.push_back(name + "_ci_hi");
    }
    header.push_back("config_hash");
    std::string out = csv_line(header) + "\n";
    for (const auto& row : rows) {
        std::vector<std::string> fields = run_fields(row.run);
        for (const auto& name : metrics) {
            const Metric* m = table::find_metric(row, name);
            fields.push_back(m ? table::format_number(m->value, 6) : "");
            fields.push_back(m ? table::format_number(m->ci_lo, 6) : "");
            fields.push_back(m ? table::format_number(m->ci_hi, 6) : "");
        }
        fields.push_back(row.run.spec.config_hash);
        out += csv_line(fields) + "\n";
    }
    return out;
}

std::string markdown_table(const std::vector<std::string>& header,
                           const std::vector<std::vector<std::string>>& body) {
    std::string out = "|";
    std::string rule = "|";
    for (const auto& h : header) {
        out += " " + markdown_cell(h) + " |";
        rule += "---|";
    }
    out += "\n" + rule + "\n";
    for (const auto& row : body) {
        out += "|";
        for (const auto& cell : row) {
            out += " " + markdown_cell(cell) + " |";
        }
        out += "\n";
    }
    return out;
}

}  // namespace

std::string format_leaderboard(const std::vector<LeaderboardRow>& rows_in, TableFormat format) {
    std::vector<LeaderboardRow> rows;
    for (const auto& g : table::group_by_task(rows_in)) {
        rows.insert(rows.end(), g.begin(), g.end());
    }
    const std::vector<std::string> metrics = table::metric_columns(rows);
    if (format == TableFormat::kJson) {
        return leaderboard_json(rows);
    }
    if (format == TableFormat::kCsv) {
        return leaderboard_csv(rows, metrics);
    }
    // Human-readable: one "value [lo, hi]" cell per metric.
    std::vector<std::string> header = kRunColumns;
    header.insert(header.end(), metrics.begin(), metrics.end());
    std::vector<std::vector<std::string>> body;
    for (const auto& row : rows) {
        std::vector<std::string> fields = run_fields(row.run);
        for (const auto& name : metrics) {
            const Metric* m = table::find_metric(row, name);
            fields.push_back(m ? table::metric_cell(*m) : "");
        }
        body.push_back(std::move(fields));
    }
    if (format == TableFormat::kMarkdown) {
        return markdown_table(header, body);
    }
    if (rows.empty()) {
        return "no completed runs\n";
    }
    return aligned_table(header, body);
}

}  // namespace radprobe::results
