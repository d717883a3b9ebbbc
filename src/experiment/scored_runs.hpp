#pragma once
// The completed classification runs of a database with their test scores, by task: what the
// comparisons (record.cpp) and the shortcut alarm (shortcut_alarm.cpp) compare.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "radprobe/results/results.hpp"

namespace radprobe::experiment::detail {

/// A completed classification run with its AUROC and test predictions.
struct Scored {
    results::RunRecord run;
    double auc = 0.0;
    std::map<std::string, std::pair<double, double>> by_image;  // image → (label, score)
};

/// Every completed run with an AUROC and scored test predictions, by task.
std::map<std::string, std::vector<Scored>> scored_runs_by_task(results::ResultsDb& db);

/// The labels and both runs' scores on the same test images (same image ids, same labels), in
/// image-id order; false when the test sets differ (no paired test then).
bool paired_scores(const Scored& a, const Scored& b, std::vector<double>& labels,
                   std::vector<double>& s_a, std::vector<double>& s_b);

}  // namespace radprobe::experiment::detail
