#pragma once
// Helpers shared by the leaderboard export and the report: number formatting, metric cells,
// the order of rows and metric columns.

#include <optional>
#include <string>
#include <vector>

#include "radprobe/bench/results.hpp"

namespace radprobe::bench::detail {

/// "0.873" (3 decimals), "" for nullopt.
std::string format_number(const std::optional<double>& value, int decimals = 3);
/// "0.873 [0.851, 0.894]" or "0.873" without a CI, "—" when undefined.
std::string metric_cell(const Metric& metric);
/// Metric names in order of first appearance, the primary metric first.
std::vector<std::string> metric_columns(const std::vector<LeaderboardRow>& rows);
/// auroc, else dice, else the first metric name; "" without metrics.
std::string primary_metric(const std::vector<LeaderboardRow>& rows);
const Metric* find_metric(const LeaderboardRow& row, const std::string& name);
/// Rows grouped by task (tasks in name order), each group sorted by its primary metric,
/// descending (undefined last), then run id.
std::vector<std::vector<LeaderboardRow>> group_by_task(std::vector<LeaderboardRow> rows);
/// "encoder · adaptation · pooling" (fields that are empty left out).
std::string run_label(const RunRecord& run);

}  // namespace radprobe::bench::detail
