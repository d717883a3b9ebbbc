// Slices of work over array jobs (see slice.hpp).

#include "radprobe/core/slice.hpp"

#include <cstdlib>

#include "radprobe/core/error.hpp"

namespace radprobe {

namespace {

// A non-negative decimal integer of at most 9 digits, or -1.
std::int64_t parse_count(const std::string& s) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) {
        return -1;
    }
    return std::stoll(s);
}

}  // namespace

std::string Slice::text() const {
    return std::to_string(index) + "/" + std::to_string(count);
}

Slice parse_slice(const std::string& text, const std::string& flag) {
    const auto slash = text.find('/');
    const std::int64_t i = slash == std::string::npos ? -1 : parse_count(text.substr(0, slash));
    const std::int64_t n = slash == std::string::npos ? -1 : parse_count(text.substr(slash + 1));
    RADPROBE_USAGE_CHECK(i >= 0 && n >= 1 && i < n, flag, " '", text,
                         "': expected I/N with 0 <= I < N (slice I of N, 0-based)");
    return {i, n};
}

Slice slice_from_environment(std::string* source) {
    const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
    const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
    const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
    if (id == nullptr || count == nullptr || min == nullptr) {
        return {};
    }
    const std::int64_t i = parse_count(id), n = parse_count(count), m = parse_count(min);
    RADPROBE_USAGE_CHECK(i >= 0 && n >= 1 && m >= 0 && i >= m && i - m < n,
                         "SLURM_ARRAY_TASK_ID=", id, ", SLURM_ARRAY_TASK_MIN=", min,
                         ", SLURM_ARRAY_TASK_COUNT=", count,
                         ": not a slice of a contiguous array (submit --array=0-",
                         (n >= 1 ? n - 1 : 0), ", or give --slice I/N)");
    if (source != nullptr) {
        *source = "SLURM_ARRAY_TASK_ID";
    }
    return {i - m, n};
}

Slice resolve_slice(const std::string& text, std::string* source) {
    if (!text.empty()) {
        if (source != nullptr) {
            *source = "--slice";
        }
        return parse_slice(text);
    }
    return slice_from_environment(source);
}

}  // namespace radprobe
