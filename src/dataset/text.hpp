#pragma once
// Small text helpers shared by the dataset library's table readers (convert.cpp,
// public_sets.cpp, jsrt.cpp). Private to the dataset library.

#include <cctype>
#include <charconv>
#include <string>

namespace radprobe::dataset::detail {

inline std::string lower(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

inline std::string upper(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return s;
}

/// The shortest text that reads back as `v` (std::to_chars).
inline std::string format_number(double v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

}  // namespace radprobe::dataset::detail
