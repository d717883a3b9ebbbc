#pragma once
// Reading the YAML of an experiment config with locations (private to experiment): every error
// is an InputError "FILE:LINE:COL: key.path: reason".

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/core/options.hpp"

namespace radprobe::experiment::detail {

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

class Reader {
public:
    explicit Reader(std::filesystem::path file) : file_(std::move(file)) {}

    [[noreturn]] void fail(const YAML::Node& at, const std::string& path,
                           const std::string& reason) const;
    [[noreturn]] void fail_mark(const YAML::Mark& mark, const std::string& path,
                                const std::string& reason) const;

    /// Unknown keys are errors naming the nearest valid key and listing the valid ones.
    void check_keys(const YAML::Node& map, const std::string& path,
                    const std::vector<std::string>& valid) const;
    void require_map(const YAML::Node& n, const std::string& path) const;

    static std::string sub(const std::string& path, const std::string& key) {
        return path.empty() ? key : path + "." + key;
    }
    static std::string item(const std::string& path, std::size_t i) {
        return path + "[" + std::to_string(i) + "]";
    }
    /// How a node reads in a message: "a mapping", "a list", "nothing" or its quoted text.
    static std::string kind(const YAML::Node& n);

    std::string get_string(const YAML::Node& n, const std::string& path) const;
    long long get_int(const YAML::Node& n, const std::string& path, long long lo,
                      long long hi) const;
    double get_double(const YAML::Node& n, const std::string& path, double lo, double hi,
                      bool open_lo = false) const;
    bool get_bool(const YAML::Node& n, const std::string& path) const;
    std::string get_choice(const YAML::Node& n, const std::string& path,
                           const std::vector<std::string>& choices) const;
    /// A list, or a single scalar standing for a one-element list.
    std::vector<YAML::Node> items(const YAML::Node& n, const std::string& path) const;

    /// One option of a table: the value read as the spec's type and checked against its range,
    /// choices and validate() (options::check), failures reported at the node.
    options::Value get_option(const YAML::Node& n, const std::string& path,
                              const options::Spec& spec) const;

    /// A relative path resolved against the config file's folder.
    std::filesystem::path resolve(const std::string& p) const;
    const std::filesystem::path& file() const { return file_; }

private:
    std::filesystem::path file_;
};

/// The options of an adaptation or analysis: `node` (a mapping, or empty for all defaults) read
/// against `specs`, every key present with its default filled in, as JSON (adaptations.hpp's
/// to_json types). Keys in `required` must be given.
nlohmann::json read_options(const Reader& r, const YAML::Node& node, const std::string& path,
                            const std::vector<options::Spec>& specs,
                            const std::vector<std::string>& required = {});

}  // namespace radprobe::experiment::detail
