// Which OpenBLAS kernels run and which the CPU could run (blas_kernel.hpp).

#include "radprobe/core/blas_kernel.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <utility>

namespace radprobe {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

}  // namespace

int openblas_core_level(const std::string& core) {
    // OpenBLAS 0.3.21's x86-64 core names (driver/others/dynamic.c), by the widest vectors
    // their kernels use.
    static const std::pair<const char*, int> kLevels[] = {
        {"katmai", 1},        {"coppermine", 1}, {"northwood", 1},   {"prescott", 1},
        {"banias", 1},        {"atom", 1},       {"core2", 1},       {"penryn", 1},
        {"dunnington", 1},    {"nehalem", 1},    {"athlon", 1},      {"opteron", 1},
        {"opteron_sse3", 1},  {"barcelona", 1},  {"nano", 1},        {"sandybridge", 2},
        {"bulldozer", 2},     {"piledriver", 2}, {"steamroller", 2}, {"haswell", 3},
        {"excavator", 3},     {"zen", 3},        {"skylakex", 4},    {"cooperlake", 4},
        {"sapphirerapids", 4}};
    const std::string name = lower(core);
    for (const auto& [n, level] : kLevels) {
        if (name == n) {
            return level;
        }
    }
    return 0;
}

std::string cpu_openblas_core() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl")) {
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        return "Haswell";
    }
#endif
    return "";
}

std::string openblas_core() {
    using Corename = char* (*)();
    const auto f = reinterpret_cast<Corename>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    const char* name = f != nullptr ? f() : nullptr;
    return name != nullptr ? name : "";
}

std::string better_openblas_core(const std::string& chosen, const std::string& cpu_core) {
    if (chosen.empty()) {  // not OpenBLAS: the setting would mean nothing
        return "";
    }
    const int have = openblas_core_level(chosen);
    const int could = openblas_core_level(cpu_core);
    return have <= 2 && have < could ? cpu_core : "";
}

std::string openblas_core_to_set() {
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr) {
        return "";
    }
    return better_openblas_core(openblas_core(), cpu_openblas_core());
}

std::string blas_description() {
    const std::string core = openblas_core();
    if (core.empty()) {
        return "BLAS: not OpenBLAS";
    }
    std::string line = "OpenBLAS core " + core;
    if (const char* set = std::getenv("OPENBLAS_CORETYPE")) {
        return line + " (OPENBLAS_CORETYPE=" + set + ")";
    }
    const std::string better = openblas_core_to_set();
    if (!better.empty()) {
        line += ", below this CPU's " + better + " (OPENBLAS_CORETYPE=" + better +
                " selects it; the radprobe command sets it for itself)";
    }
    return line;
}

}  // namespace radprobe
