// radprobe models [HFDIR]: the supported architectures, or what a model directory holds.

#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"

namespace radprobe::cli {

Runner setup_models(CLI::App& app) {
    auto dir = std::make_shared<std::string>();
    auto key = std::make_shared<std::string>();
    app.add_option("HFDIR", *dir,
                   "a Hugging Face model directory to describe (omit to list the architectures)");
    add_checkpoint_key_flag(app, *key);
    return [dir, key]() -> int {
        if (dir->empty()) {
            std::printf(
                "supported architectures (config.json model_type; open_clip_config.json for "
                "open_clip_timm_vit):\n");
            for (const auto& type : encoders::known_model_types()) {
                std::printf("  %-24s %s\n", type.c_str(),
                            encoders::model_type_description(type).c_str());
            }
            std::printf(
                "also read as one of these: open_clip's own ViT towers (OpenAI-style CLIP, CoCa; "
                "open_clip_config.json), and with no config at all a lone torchvision ResNet or "
                "timm Swin (Ark+) checkpoint\n");
            return 0;
        }
        std::fputs(
            encoders::describe_model_dir(*dir, encoders::LoadOptions::with_key(*key)).c_str(),
            stdout);
        return 0;
    };
}

}  // namespace radprobe::cli
