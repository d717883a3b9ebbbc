// Placeholder: `radprobe segment` is being written (component heads).
#include "commands.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::cli {

Runner setup_segment(CLI::App& app) {
    return []() -> int { throw InputError("radprobe segment is not implemented yet"); };
}

}  // namespace radprobe::cli
