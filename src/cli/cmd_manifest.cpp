// PLACEHOLDER: replaced by the component's own implementation before anything lands.
#include "commands.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::cli {
Runner setup_manifest(CLI::App& app) {
    return [] () -> int { throw InputError("manifest: not built yet"); };
}
}  // namespace radprobe::cli
