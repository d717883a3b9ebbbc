#pragma once
/// @file version.hpp
/// radprobe's version and the `git describe` of the build (recorded with every result).

namespace radprobe {
const char* version();
const char* git_describe();
}  // namespace radprobe
