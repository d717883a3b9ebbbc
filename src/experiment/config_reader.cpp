// Reading config YAML with locations (config_reader.hpp).

#include "config_reader.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "adaptations.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/experiment/experiment.hpp"

namespace radprobe::experiment::detail {

namespace fs = std::filesystem;
using nlohmann::json;
using options::Spec;
using options::Type;
using options::Value;

namespace {

/// An option's integer bound (the spec keeps ranges as doubles; ±inf = unbounded).
long long int_bound(double b) {
    if (b <= static_cast<double>(std::numeric_limits<long long>::min())) {
        return std::numeric_limits<long long>::min();
    }
    if (b >= static_cast<double>(std::numeric_limits<long long>::max())) {
        return std::numeric_limits<long long>::max();
    }
    return static_cast<long long>(b);
}

/// The spec of one item of a list option: the item type, the list's range and choices; the
/// list's validate() applies to the whole list.
Spec item_spec(const Spec& list) {
    Spec s = list;
    s.type = list.type == Type::kIntList    ? Type::kInt
             : list.type == Type::kRealList ? Type::kReal
             : list.choices.empty()         ? Type::kText
                                            : Type::kChoice;
    s.validate = nullptr;
    return s;
}

/// The items of a list option, each read and checked where it stands (its own line and column);
/// the caller checks the whole list.
template <typename X>
std::vector<X> read_items(const Reader& r, const YAML::Node& n, const std::string& path,
                          const Spec& spec) {
    const Spec one = item_spec(spec);
    const auto nodes = r.items(n, path);
    std::vector<X> out;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        out.push_back(std::get<X>(r.get_option(nodes[i], Reader::item(path, i), one)));
    }
    return out;
}

}  // namespace

std::string join(const std::vector<std::string>& items, const std::string& sep) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        out += (i ? sep : "") + items[i];
    }
    return out;
}

void Reader::fail(const YAML::Node& at, const std::string& path, const std::string& reason) const {
    fail_mark(at.IsDefined() ? at.Mark() : YAML::Mark::null_mark(), path, reason);
}

void Reader::fail_mark(const YAML::Mark& mark, const std::string& path,
                       const std::string& reason) const {
    std::string where = file_.string();
    if (mark.line >= 0) {
        where += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
    }
    throw InputError(where + ": " + (path.empty() ? "" : path + ": ") + reason);
}

void Reader::check_keys(const YAML::Node& map, const std::string& path,
                        const std::vector<std::string>& valid) const {
    if (!map.IsMap()) {
        return;
    }
    for (auto it = map.begin(); it != map.end(); ++it) {
        const std::string key = it->first.Scalar();
        if (std::find(valid.begin(), valid.end(), key) != valid.end()) {
            continue;
        }
        const std::string near = nearest_key(key, valid);
        fail(it->first, sub(path, key),
             "unknown key" + (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                 "; valid keys here: " + join(valid));
    }
}

void Reader::require_map(const YAML::Node& n, const std::string& path) const {
    if (!n.IsMap()) {
        fail(n, path, "expected a mapping (key: value lines), got " + kind(n));
    }
}

std::string Reader::kind(const YAML::Node& n) {
    if (n.IsMap()) {
        return "a mapping";
    }
    if (n.IsSequence()) {
        return "a list";
    }
    if (n.IsNull()) {
        return "nothing";
    }
    return "'" + n.Scalar() + "'";
}

std::string Reader::get_string(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) {
        fail(n, path, "expected a text value, got " + kind(n));
    }
    return n.Scalar();
}

long long Reader::get_int(const YAML::Node& n, const std::string& path, long long lo,
                          long long hi) const {
    if (!n.IsScalar()) {
        fail(n, path, "expected an integer, got " + kind(n));
    }
    long long v = 0;
    try {
        v = n.as<long long>();
    } catch (const YAML::Exception&) {
        fail(n, path, "expected an integer, got '" + n.Scalar() + "'");
    }
    if (v < lo || v > hi) {
        fail(n, path,
             "must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
                 std::to_string(v));
    }
    return v;
}

double Reader::get_double(const YAML::Node& n, const std::string& path, double lo, double hi,
                          bool open_lo) const {
    if (!n.IsScalar()) {
        fail(n, path, "expected a number, got " + kind(n));
    }
    double v = 0;
    try {
        v = n.as<double>();
    } catch (const YAML::Exception&) {
        fail(n, path, "expected a number, got '" + n.Scalar() + "'");
    }
    if (!std::isfinite(v) || v < lo || v > hi || (open_lo && v == lo)) {
        fail(n, path,
             str_cat("must be in ", open_lo ? "(" : "[", lo, ", ", hi, "], got ", n.Scalar()));
    }
    return v;
}

bool Reader::get_bool(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) {
        fail(n, path, "expected true or false, got " + kind(n));
    }
    try {
        return n.as<bool>();
    } catch (const YAML::Exception&) {
        fail(n, path, "expected true or false, got '" + n.Scalar() + "'");
    }
}

std::string Reader::get_choice(const YAML::Node& n, const std::string& path,
                               const std::vector<std::string>& choices) const {
    const std::string v = get_string(n, path);
    if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
        const std::string near = nearest_key(v, choices);
        fail(n, path,
             "'" + v + "' is not one of " + join(choices) +
                 (near.empty() ? "" : " (did you mean '" + near + "'?)"));
    }
    return v;
}

std::vector<YAML::Node> Reader::items(const YAML::Node& n, const std::string& path) const {
    std::vector<YAML::Node> out;
    if (n.IsSequence()) {
        for (const auto& item : n) {
            out.push_back(item);
        }
    } else if (n.IsScalar()) {
        out.push_back(n);
    } else {
        fail(n, path, "expected a list, got " + kind(n));
    }
    return out;
}

Value Reader::get_option(const YAML::Node& n, const std::string& path, const Spec& spec) const {
    Value v;
    switch (spec.type) {
        case Type::kInt:
            v = static_cast<std::int64_t>(get_int(n, path, int_bound(spec.lo), int_bound(spec.hi)));
            break;
        case Type::kReal:
            v = get_double(n, path, spec.lo, spec.hi, spec.open_lo);
            break;
        case Type::kBool:
            v = get_bool(n, path);
            break;
        case Type::kText:
            v = get_string(n, path);
            break;
        case Type::kChoice:
            v = get_choice(n, path, spec.choices);
            break;
        case Type::kIntList:
            v = read_items<std::int64_t>(*this, n, path, spec);
            break;
        case Type::kRealList:
            v = read_items<double>(*this, n, path, spec);
            break;
        case Type::kTextList:
            v = read_items<std::string>(*this, n, path, spec);
            break;
    }
    try {
        options::check(spec, v);
    } catch (const Error& e) {
        fail(n, path, e.what());
    }
    return v;
}

fs::path Reader::resolve(const std::string& p) const {
    fs::path path(p);
    return path.is_absolute() ? path
                              : (fs::absolute(file_).parent_path() / path).lexically_normal();
}

json read_options(const Reader& r, const YAML::Node& node, const std::string& path,
                  const std::vector<Spec>& specs, const std::vector<std::string>& required) {
    json out = json::object();
    std::vector<std::string> keys;
    for (const auto& s : specs) {
        keys.push_back(s.name);
        out[s.name] = to_json(s.def);
    }
    const bool empty = node.IsNull() || !node.IsDefined();
    if (!empty) {
        r.require_map(node, path);
        r.check_keys(node, path, keys);
    }
    for (const auto& s : specs) {
        const YAML::Node v = empty ? YAML::Node() : node[s.name];
        const bool given = v.IsDefined() && !v.IsNull();
        if (!given && std::find(required.begin(), required.end(), s.name) != required.end()) {
            r.fail(node, Reader::sub(path, s.name), "missing required key");
        }
        if (given) {
            out[s.name] = to_json(r.get_option(v, Reader::sub(path, s.name), s));
        }
    }
    return out;
}

}  // namespace radprobe::experiment::detail
