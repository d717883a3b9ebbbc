// Placeholder: `radprobe analyze` is being written (component analysis).
#include "commands.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::cli {

Runner setup_analyze(CLI::App& app) {
    return []() -> int { throw InputError("radprobe analyze is not implemented yet"); };
}

}  // namespace radprobe::cli
