#pragma once
/// @file slice.hpp
/// A deterministic, disjoint part of a piece of work split over several processes or nodes
/// (array jobs of Slurm, Kubernetes indexed jobs, AWS Batch array jobs): slice I of N owns the
/// units k (shards of a store, cells of a grid) with k mod N = I. The N slices cover every unit
/// exactly once, whatever the number of units.

#include <cstdint>
#include <string>

namespace radprobe {

struct Slice {
    std::int64_t index = 0;  ///< 0-based, < count
    std::int64_t count = 1;  ///< 1 = the whole work
    bool whole() const { return count == 1; }
    bool owns(std::int64_t unit) const { return unit % count == index; }
    /// "I/N"
    std::string text() const;
};

/// Parses "I/N" (0 <= I < N, N >= 1); UsageError naming `flag` and the expected form otherwise.
Slice parse_slice(const std::string& text, const std::string& flag = "--slice");

/// The slice of a Slurm array task: SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of
/// SLURM_ARRAY_TASK_COUNT, when the three are set (Slurm sets them in every array task; an
/// array must be contiguous, e.g. --array=0-7 or 1-8, so that ids map onto 0..N−1); the whole
/// work otherwise. UsageError when they are set but inconsistent (a strided array, --array=0-8:2).
/// `source` (may be null) gets "SLURM_ARRAY_TASK_ID" when the slice came from there.
Slice slice_from_environment(std::string* source = nullptr);

/// `text` when given ("I/N"), else slice_from_environment().
Slice resolve_slice(const std::string& text, std::string* source = nullptr);

}  // namespace radprobe
