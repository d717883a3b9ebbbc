// Placeholder: `radprobe finetune` is being written (component heads).
#include "commands.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::cli {

Runner setup_finetune(CLI::App& app) {
    return []() -> int { throw InputError("radprobe finetune is not implemented yet"); };
}

}  // namespace radprobe::cli
