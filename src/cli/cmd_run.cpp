// Placeholder: `radprobe run` is being written (component bench).
#include "commands.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::cli {

Runner setup_run(CLI::App& app) {
    return []() -> int { throw InputError("radprobe run is not implemented yet"); };
}

}  // namespace radprobe::cli
