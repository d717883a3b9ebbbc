// radprobe models [HFDIR]: the supported architectures, or what a model directory holds.

#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"

namespace radprobe::cli {

Runner setup_models(CLI::App& app) {
    auto dir = std::make_shared<std::string>();
    app.add_option("HFDIR", *dir,
                   "a Hugging Face model directory to describe (omit to list the architectures)");
    return [dir]() -> int {
        if (dir->empty()) {
            std::printf(
                "supported architectures (config.json model_type; open_clip_config.json for "
                "open_clip_timm_vit):\n");
            for (const auto& type : encoders::known_model_types()) {
                std::printf("  %-24s %s\n", type.c_str(),
                            encoders::model_type_description(type).c_str());
            }
            return 0;
        }
        std::fputs(encoders::describe_model_dir(*dir).c_str(), stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
