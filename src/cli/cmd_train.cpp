// Placeholder: `radprobe train` is being written (component heads).
#include "commands.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::cli {

Runner setup_train(CLI::App& app) {
    return []() -> int { throw InputError("radprobe train is not implemented yet"); };
}

}  // namespace radprobe::cli
