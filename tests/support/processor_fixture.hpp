#pragma once
// An encoder fixture with the image processor its publisher ships, for commands that need a
// model folder's preprocessor_config.json (the AIMv2 parity fixtures have none).

#include <filesystem>
#include <fstream>
#include <string>

#include "test_support.hpp"

namespace radprobe::test {

/// A copy of encoder fixture `name` in `dir` with a CLIPImageProcessor preprocessor_config.json
/// (shortest edge and centre crop `side`, CLIP's mean and std), as AIMv2 checkpoints ship it.
inline std::filesystem::path fixture_with_clip_processor(const std::string& name,
                                                         const std::filesystem::path& dir,
                                                         int side) {
    std::filesystem::create_directories(dir);
    for (const auto& e : std::filesystem::directory_iterator(encoder_fixture(name))) {
        if (e.is_regular_file()) {  // the files of the model, not reference subfolders
            std::filesystem::copy_file(e.path(), dir / e.path().filename());
        }
    }
    const std::string s = std::to_string(side);
    std::ofstream(dir / "preprocessor_config.json")
        << R"({"image_processor_type": "CLIPImageProcessor", "do_resize": true, "size": )"
        << R"({"shortest_edge": )" << s << R"(}, "resample": 3, "do_center_crop": true, )"
        << R"("crop_size": {"height": )" << s << R"(, "width": )" << s
        << R"(}, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": )"
        << R"(true, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": )"
        << R"([0.26862954, 0.26130258, 0.27577711]})";
    return dir;
}

}  // namespace radprobe::test
