#pragma once
// Shared between config.cpp and runner.cpp (private to bench).

#include <string>

namespace radprobe::bench::detail {

/// Whether an adaptation works on an encoder (false: the from-scratch baselines).
bool adaptation_uses_encoder(const std::string& kind);
/// Whether an adaptation runs on segmentation tasks (masks) rather than labels.
bool adaptation_is_segmentation(const std::string& kind);

}  // namespace radprobe::bench::detail
