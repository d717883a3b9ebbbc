// libFuzzer target for the config of `radprobe run` (experiment::parse_experiment_config): the
// YAML parser and every section's validation, including the checks against a manifest (the
// fixture's manifest.csv and boxes.csv sit beside the config, so `manifest: manifest.csv` reaches
// them). Any input must give a config or throw InputError / UsageError — never crash, hang, trip
// ASan/UBSan or throw anything else (a yaml-cpp exception escaping is a finding).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "../common/fuzz_support.hpp"
#include "radprobe/experiment/experiment.hpp"

#ifndef RADPROBE_FUZZ_DIR
#error "RADPROBE_FUZZ_DIR: the fuzz/ folder of the source tree (holds config/fixture)"
#endif

namespace {

const std::filesystem::path& config_path() {
    static const std::filesystem::path path = [] {
        namespace fs = std::filesystem;
        const fs::path dir = radprobe::fuzz::scratch_dir();
        const fs::path fixture = fs::path(RADPROBE_FUZZ_DIR) / "config" / "fixture";
        for (const char* f : {"manifest.csv", "boxes.csv"}) {
            fs::copy_file(fixture / f, dir / f, fs::copy_options::overwrite_existing);
        }
        return dir / "config.yaml";
    }();
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    radprobe::fuzz::expect_documented_errors(
        [&] { (void)radprobe::experiment::parse_experiment_config(text, config_path()); });
    return 0;
}
