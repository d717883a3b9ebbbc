#pragma once
/// @file error.hpp
/// Errors that radprobe reports to users. Two tiers (see STYLE.md):
///  - RADPROBE_CHECK(cond, parts...): anything a user can cause (bad file, bad flag, bad value).
///    Throws radprobe::InputError whose message names what/where and why, on one line.
///  - RADPROBE_ASSERT(cond, parts...): internal invariants; throws radprobe::InternalError.
/// Library code never exits; the CLI catches once per subcommand and maps the error to an
/// exit code (UsageError -> 2, everything else -> 1).

#include <sstream>
#include <stdexcept>
#include <string>

namespace radprobe {

/// Base of every error radprobe throws on purpose.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(one_line(message)) {}

    /// Collapses newlines so that every error prints as exactly one line.
    static std::string one_line(std::string s) {
        for (char& c : s) {
            if (c == '\n' || c == '\r') {
                c = ' ';
            }
        }
        return s;
    }
};

/// A bad command line: wrong flag value, missing argument (exit code 2).
class UsageError : public Error {
public:
    using Error::Error;
};

/// Bad input data: malformed file, bad column, inconsistent values (exit code 1).
class InputError : public Error {
public:
    using Error::Error;
};

/// A broken internal invariant: a bug in radprobe (exit code 1).
class InternalError : public Error {
public:
    using Error::Error;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    return os.str();
}
}  // namespace detail

/// Builds a message from streamable parts: str_cat("file ", path, ": ", n, " rows").
template <typename... Parts>
std::string str_cat(const Parts&... parts) {
    return detail::concat(parts...);
}

}  // namespace radprobe

#define RADPROBE_CHECK(cond, ...)                                             \
    do {                                                                      \
        if (!(cond)) {                                                        \
            throw ::radprobe::InputError(::radprobe::str_cat(__VA_ARGS__));   \
        }                                                                     \
    } while (0)

#define RADPROBE_USAGE_CHECK(cond, ...)                                       \
    do {                                                                      \
        if (!(cond)) {                                                        \
            throw ::radprobe::UsageError(::radprobe::str_cat(__VA_ARGS__));   \
        }                                                                     \
    } while (0)

#define RADPROBE_ASSERT(cond, ...)                                                          \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            throw ::radprobe::InternalError(::radprobe::str_cat(                            \
                "internal error at ", __FILE__, ":", __LINE__, ": ", #cond, ": ", ##__VA_ARGS__)); \
        }                                                                                   \
    } while (0)
