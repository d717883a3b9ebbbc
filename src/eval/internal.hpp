#pragma once
// Private helpers shared by the eval sources: sorted score groups, placement values, CSV cells.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace radprobe::eval::detail {

/// Samples sorted by ascending score, split into groups of tied scores.
struct TieGroups {
    std::vector<std::uint32_t> order;      ///< sorted position -> sample index
    std::vector<std::uint32_t> group_end;  ///< one past the last sorted position of each group
};

/// Sorts by score (ties in index order). O(n log n).
TieGroups tie_groups(std::span<const double> scores);

/// Mann–Whitney AUROC from tie groups; labels are 0/1 doubles already checked.
struct AucParts {
    double auc = 0.0;
    std::size_t positives = 0;
    std::size_t negatives = 0;
};
AucParts auc_from_groups(const TieGroups& groups, std::span<const double> labels);

/// DeLong placement values per sample: for a positive, the fraction of negatives scored lower
/// (ties one half); for a negative, the fraction of positives scored higher (ties one half).
struct Placements {
    std::vector<double> value;  ///< per sample
    AucParts parts;
};
Placements placements(std::span<const double> labels, std::span<const double> scores);

/// Throws InputError unless both classes have at least `minimum` samples.
void require_classes(std::size_t positives, std::size_t negatives, std::size_t minimum,
                     const std::string& where);

/// A CSV cell of an optional number: "%.17g" (round-trips), "" for nullopt.
std::string csv_number(const std::optional<double>& value);

}  // namespace radprobe::eval::detail
