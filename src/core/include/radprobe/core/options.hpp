#pragma once
/// @file options.hpp
/// Options declared once. Each adaptation declares a table of its options (name, type, default,
/// range, help, and how the value lands in its options struct); the command line registers its
/// flags from that table (`--name` with '_' → '-'), the experiment config validates its YAML keys
/// against it and the runner fills the struct from it. Nothing else declares an option, so the
/// command line and the config accept the same names, ranges and defaults.

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace radprobe::options {

enum class Type { kInt, kReal, kBool, kText, kChoice, kIntList, kRealList, kTextList };

/// A value of any option type (kChoice holds its text; lists are kIntList/kRealList/kTextList).
using Value = std::variant<std::int64_t, double, bool, std::string, std::vector<std::int64_t>,
                           std::vector<double>, std::vector<std::string>>;

/// One option, as the user sees it.
struct Spec {
    Spec() = default;
    Spec(std::string name_, Type type_, Value def_,
         double lo_ = -std::numeric_limits<double>::infinity(),
         double hi_ = std::numeric_limits<double>::infinity(), bool open_lo_ = false)
        : name(std::move(name_)), type(type_), def(std::move(def_)), lo(lo_), hi(hi_),
          open_lo(open_lo_) {}

    std::string name;  ///< snake_case: the config key; the command-line flag is flag(spec)
    Type type = Type::kInt;
    Value def;
    /// Numeric range of the value (of each item of a list), inclusive; open_lo: value > lo.
    double lo = -std::numeric_limits<double>::infinity();
    double hi = std::numeric_limits<double>::infinity();
    bool open_lo = false;
    std::vector<std::string> choices;  ///< kChoice, and the items of a kTextList when non-empty
    std::string help;
    /// A further check of the value (e.g. a learning-rate grid that must parse); throws
    /// InputError with the reason. Empty = none.
    std::function<void(const Value&)> validate;
};

/// The command-line flag of an option: "--" + name with '_' replaced by '-'.
std::string flag(const Spec& spec);

/// The value as text in the form parse() reads ("1e-05", "2,2,2,2", "true").
std::string to_text(const Value& value);

/// Parses command-line text for `spec` and checks it (check()). Lists are comma-separated; an
/// empty text is the empty list. Throws UsageError "FLAG: reason".
Value parse(const Spec& spec, const std::string& text);

/// Checks a value of the spec's type against its range, choices and validate(); throws
/// InputError with the reason (without the option's name).
void check(const Spec& spec, const Value& value);

/// One row of an options table: the spec and how its value is stored in the options struct T.
template <typename T>
struct Row {
    Spec spec;
    std::function<void(T&, const Value&)> set;
    std::function<Value(const T&)> get;
};

template <typename T>
using Table = std::vector<Row<T>>;

/// The specs of a table.
template <typename T>
std::vector<Spec> specs(const Table<T>& table) {
    std::vector<Spec> out;
    for (const auto& row : table) {
        out.push_back(row.spec);
    }
    return out;
}

/// `options` with every row set to its table default.
template <typename T>
T with_defaults(const Table<T>& table, T options = {}) {
    for (const auto& row : table) {
        row.set(options, row.spec.def);
    }
    return options;
}

namespace detail {

template <typename M>
Value to_value(const M& v) {
    if constexpr (std::is_same_v<M, bool>) {
        return v;
    } else if constexpr (std::is_integral_v<M>) {
        return static_cast<std::int64_t>(v);
    } else if constexpr (std::is_floating_point_v<M>) {
        return static_cast<double>(v);
    } else if constexpr (std::is_same_v<M, std::string>) {
        return v;
    } else if constexpr (std::is_same_v<M, std::vector<double>>) {
        return v;
    } else if constexpr (std::is_same_v<M, std::vector<std::string>>) {
        return v;
    } else {
        return std::vector<std::int64_t>(v.begin(), v.end());
    }
}

template <typename M>
M from_value(const Value& v) {
    if constexpr (std::is_same_v<M, bool>) {
        return std::get<bool>(v);
    } else if constexpr (std::is_integral_v<M>) {
        return static_cast<M>(std::get<std::int64_t>(v));
    } else if constexpr (std::is_floating_point_v<M>) {
        return static_cast<M>(std::get<double>(v));
    } else if constexpr (std::is_same_v<M, std::string>) {
        return std::get<std::string>(v);
    } else if constexpr (std::is_same_v<M, std::vector<double>>) {
        return std::get<std::vector<double>>(v);
    } else if constexpr (std::is_same_v<M, std::vector<std::string>>) {
        return std::get<std::vector<std::string>>(v);
    } else {
        const auto& items = std::get<std::vector<std::int64_t>>(v);
        return M(items.begin(), items.end());
    }
}

}  // namespace detail

/// A row stored in a member of T as is (int, double, bool, text, lists).
template <typename T, typename M>
Row<T> field(Spec spec, M T::*member) {
    return {std::move(spec), [member](T& o, const Value& v) { o.*member = detail::from_value<M>(v); },
            [member](const T& o) { return detail::to_value(o.*member); }};
}

}  // namespace radprobe::options
