// Options declared once (options.hpp): flags, text form, parsing and checks.

#include "radprobe/core/options.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "radprobe/core/error.hpp"

namespace radprobe::options {

namespace {

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> items;
    if (text.empty()) {
        return items;
    }
    std::string item;
    std::istringstream in(text);
    while (std::getline(in, item, ',')) {
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        items.push_back(item);
    }
    if (text.back() == ',') {
        items.emplace_back();
    }
    return items;
}

std::int64_t parse_int(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    RADPROBE_CHECK(!text.empty() && end && *end == '\0' && errno == 0, "expected an integer, got '",
                   text, "'");
    return v;
}

double parse_real(const std::string& text) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    RADPROBE_CHECK(!text.empty() && end && *end == '\0', "expected a number, got '", text, "'");
    return v;
}

bool parse_bool(const std::string& text) {
    if (text == "true" || text == "1" || text == "yes" || text == "on") {
        return true;
    }
    RADPROBE_CHECK(text == "false" || text == "0" || text == "no" || text == "off",
                   "expected true or false, got '", text, "'");
    return false;
}

std::string join(const std::vector<std::string>& items) {
    std::string s;
    for (const auto& x : items) {
        s += (s.empty() ? "" : ", ") + x;
    }
    return s;
}

std::string real_text(double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
}

void check_int(const Spec& spec, std::int64_t v) {
    RADPROBE_CHECK(static_cast<double>(v) >= spec.lo && static_cast<double>(v) <= spec.hi,
                   "must be in ", static_cast<long long>(spec.lo), "..",
                   static_cast<long long>(spec.hi), ", got ", v);
}

void check_real(const Spec& spec, double v) {
    const bool ok =
        std::isfinite(v) && v >= spec.lo && v <= spec.hi && !(spec.open_lo && v == spec.lo);
    RADPROBE_CHECK(ok, "must be in ", spec.open_lo ? "(" : "[", spec.lo, ", ", spec.hi, "], got ",
                   real_text(v));
}

void check_choice(const Spec& spec, const std::string& v) {
    RADPROBE_CHECK(std::find(spec.choices.begin(), spec.choices.end(), v) != spec.choices.end(),
                   "'", v, "' is not one of ", join(spec.choices));
}

}  // namespace

std::string flag(const Spec& spec) {
    std::string f = "--" + spec.name;
    std::replace(f.begin(), f.end(), '_', '-');
    return f;
}

std::string to_text(const Value& value) {
    struct Visitor {
        std::string operator()(std::int64_t v) const { return std::to_string(v); }
        std::string operator()(double v) const { return real_text(v); }
        std::string operator()(bool v) const { return v ? "true" : "false"; }
        std::string operator()(const std::string& v) const { return v; }
        std::string operator()(const std::vector<std::int64_t>& v) const {
            std::string s;
            for (std::size_t i = 0; i < v.size(); ++i) {
                s += (i ? "," : "") + std::to_string(v[i]);
            }
            return s;
        }
        std::string operator()(const std::vector<double>& v) const {
            std::string s;
            for (std::size_t i = 0; i < v.size(); ++i) {
                s += (i ? "," : "") + real_text(v[i]);
            }
            return s;
        }
        std::string operator()(const std::vector<std::string>& v) const {
            std::string s;
            for (std::size_t i = 0; i < v.size(); ++i) {
                s += (i ? "," : "") + v[i];
            }
            return s;
        }
    };
    return std::visit(Visitor{}, value);
}

void check(const Spec& spec, const Value& value) {
    switch (spec.type) {
        case Type::kInt:
            check_int(spec, std::get<std::int64_t>(value));
            break;
        case Type::kReal:
            check_real(spec, std::get<double>(value));
            break;
        case Type::kChoice:
            check_choice(spec, std::get<std::string>(value));
            break;
        case Type::kIntList:
            for (auto v : std::get<std::vector<std::int64_t>>(value)) {
                check_int(spec, v);
            }
            break;
        case Type::kRealList:
            for (auto v : std::get<std::vector<double>>(value)) {
                check_real(spec, v);
            }
            break;
        case Type::kTextList:
            if (!spec.choices.empty()) {
                for (const auto& v : std::get<std::vector<std::string>>(value)) {
                    check_choice(spec, v);
                }
            }
            break;
        case Type::kBool:
        case Type::kText:
            break;
    }
    if (spec.validate) {
        spec.validate(value);
    }
}

Value parse(const Spec& spec, const std::string& text) {
    try {
        Value v;
        switch (spec.type) {
            case Type::kInt:
                v = parse_int(text);
                break;
            case Type::kReal:
                v = parse_real(text);
                break;
            case Type::kBool:
                v = parse_bool(text);
                break;
            case Type::kText:
            case Type::kChoice:
                v = text;
                break;
            case Type::kIntList: {
                std::vector<std::int64_t> items;
                for (const auto& item : split_commas(text)) {
                    items.push_back(parse_int(item));
                }
                v = items;
                break;
            }
            case Type::kRealList: {
                std::vector<double> items;
                for (const auto& item : split_commas(text)) {
                    items.push_back(parse_real(item));
                }
                v = items;
                break;
            }
            case Type::kTextList:
                v = split_commas(text);
                break;
        }
        check(spec, v);
        return v;
    } catch (const InputError& e) {
        throw UsageError(str_cat(flag(spec), ": ", Error::one_line(e.what())));
    }
}

}  // namespace radprobe::options
