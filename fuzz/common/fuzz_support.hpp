#pragma once
// Shared by the libFuzzer targets under fuzz/: a per-process scratch folder for the parsers that
// read only from a path, and the rule every target enforces — an input either succeeds or throws
// one of radprobe's documented error types (InputError for a bad file, UsageError for a bad
// option); anything else (InternalError, std::bad_alloc, a foreign exception) is a finding and
// aborts, so that libFuzzer keeps the input.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "radprobe/core/error.hpp"

namespace radprobe::fuzz {

/// A folder of this process's own (under /dev/shm when it exists: the targets write their input
/// to a file once per execution), removed at exit.
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path dir = [] {
        namespace fs = std::filesystem;
        std::error_code ec;
        const fs::path base =
            fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
        fs::path d = base / ("radprobe-fuzz-" + std::to_string(::getpid()));
        fs::remove_all(d, ec);
        fs::create_directories(d);
        std::atexit([] {
            std::error_code ignored;
            fs::remove_all(scratch_dir(), ignored);
        });
        return d;
    }();
    return dir;
}

/// Writes `size` bytes to `path` (replacing it).
inline void write_bytes(const std::filesystem::path& path, const std::uint8_t* data,
                        std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) {
        std::fprintf(stderr, "fuzz: cannot write %s\n", path.string().c_str());
        std::abort();
    }
}

/// Runs `body`; InputError and UsageError are expected outcomes, anything else aborts.
template <typename Body>
void expect_documented_errors(Body&& body) {
    try {
        body();
    } catch (const radprobe::InputError&) {
    } catch (const radprobe::UsageError&) {
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz: undocumented exception: %s\n", e.what());
        std::abort();
    } catch (...) {
        std::fprintf(stderr, "fuzz: non-standard exception\n");
        std::abort();
    }
}

}  // namespace radprobe::fuzz
