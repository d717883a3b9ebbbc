// What the config reader links from LibTorch translation units, for the clang fuzz build, which
// compiles none (the CMake replay driver links the real ones):
//  - reproduced: experiment::available_adaptations / available_analyses
//    (src/experiment/runner.cpp, built with analysis): keep in step;
//  - unreachable from parse_experiment_config: the encoder builders (architectures.cpp's table
//    holds their addresses) and features::read_embeddings (src/features/extract.cpp, used by
//    the probes), which abort if ever called, so that the fuzzer would report it.

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "../../src/encoders/architectures.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/experiment/experiment.hpp"
#include "radprobe/features/embeddings.hpp"

namespace radprobe::experiment {

std::vector<std::string> available_adaptations() {
    return known_adaptations();
}

std::vector<std::string> available_analyses() {
    return known_analyses();
}

}  // namespace radprobe::experiment

namespace {

[[noreturn]] void unreachable(const char* what) {
    std::fprintf(stderr, "fuzz: %s called: its LibTorch translation unit is not linked here\n",
                 what);
    std::abort();
}

}  // namespace

namespace radprobe::features {

EmbeddingTable read_embeddings(const std::filesystem::path&, const std::string&) {
    unreachable("features::read_embeddings");
}

}  // namespace radprobe::features

namespace radprobe::encoders::detail {

std::unique_ptr<LoadableEncoder> make_dinov2(const ModelConfig&) {
    unreachable("make_dinov2");
}
std::unique_ptr<LoadableEncoder> make_vit(const ModelConfig&) {
    unreachable("make_vit");
}
std::unique_ptr<LoadableEncoder> make_clip(const ModelConfig&) {
    unreachable("make_clip");
}
std::unique_ptr<LoadableEncoder> make_dinov3(const ModelConfig&) {
    unreachable("make_dinov3");
}
std::unique_ptr<LoadableEncoder> make_resnet(const ModelConfig&) {
    unreachable("make_resnet");
}
std::unique_ptr<LoadableEncoder> make_swin(const ModelConfig&) {
    unreachable("make_swin");
}
std::unique_ptr<LoadableEncoder> make_open_clip(const ModelConfig&) {
    unreachable("make_open_clip");
}
std::unique_ptr<LoadableEncoder> make_aimv2(const ModelConfig&) {
    unreachable("make_aimv2");
}
std::unique_ptr<LoadableEncoder> make_sam2(const ModelConfig&) {
    unreachable("make_sam2");
}
std::unique_ptr<LoadableEncoder> make_vmamba(const ModelConfig&) {
    unreachable("make_vmamba");
}

}  // namespace radprobe::encoders::detail
