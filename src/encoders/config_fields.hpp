#pragma once
// Private to encoders: reading typed fields of a model directory's JSON files, every failure an
// InputError naming the file and the key. No LibTorch.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"

namespace radprobe::encoders::detail {

using nlohmann::json;

inline std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) {
        s += s.empty() ? "" : ", ";
        s += x;
    }
    return s;
}

inline json read_json(const std::filesystem::path& path, std::string* text_out = nullptr) {
    const std::string text = read_file_text(path);
    if (text_out != nullptr) {
        *text_out = text;
    }
    json j = json::parse(text, nullptr, false);
    RADPROBE_CHECK(!j.is_discarded() && j.is_object(), "file ", path.string(),
                   ": not a JSON object");
    return j;
}

inline std::filesystem::path config_path(const std::filesystem::path& dir, const char* name) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) {
        return dir / name;
    }
    return dir;
}

template <typename T>
T get_required(const json& j, const char* key, const std::filesystem::path& path) {
    RADPROBE_CHECK(j.contains(key) && !j[key].is_null(), "file ", path.string(), ": key \"", key,
                   "\" is missing");
    try {
        return j[key].get<T>();
    } catch (const json::exception&) {
        RADPROBE_CHECK(false, "file ", path.string(), ": key \"", key, "\" has the wrong type");
    }
    return T{};
}

template <typename T>
T get_optional(const json& j, const char* key, T fallback, const std::filesystem::path& path) {
    if (!j.contains(key) || j[key].is_null()) {
        return fallback;
    }
    try {
        return j[key].get<T>();
    } catch (const json::exception&) {
        RADPROBE_CHECK(false, "file ", path.string(), ": key \"", key, "\" has the wrong type");
    }
    return fallback;
}

inline std::int64_t positive(std::int64_t v, const char* key, const std::filesystem::path& path) {
    RADPROBE_CHECK(v > 0, "file ", path.string(), ": key \"", key, "\" must be > 0, got ", v);
    return v;
}

inline std::vector<std::int64_t> positive_list(const json& j, const char* key,
                                               const std::filesystem::path& path) {
    const auto v = get_required<std::vector<std::int64_t>>(j, key, path);
    RADPROBE_CHECK(!v.empty(), "file ", path.string(), ": key \"", key, "\" is empty");
    for (const auto x : v) {
        RADPROBE_CHECK(x > 0, "file ", path.string(), ": key \"", key,
                       "\" must hold positive values");
    }
    return v;
}

inline const json& object_at(const json& j, const char* key, const std::filesystem::path& path) {
    RADPROBE_CHECK(j.contains(key) && j[key].is_object(), "file ", path.string(), ": key \"", key,
                   "\" is missing or not an object");
    return j[key];
}

/// open_clip_config.json with a timm ViT vision tower → ModelConfig (model_type
/// "open_clip_timm_vit").

}  // namespace radprobe::encoders::detail
