#pragma once
// Helpers shared by the test suites: where the shared data, the source tree and the radprobe
// binary are, temporary directories, and running the CLI as a user would.

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace radprobe::test {

inline std::filesystem::path source_dir() {
    return RADPROBE_SOURCE_DIR;
}
/// The test data the repository carries (tests/data: encoder fixtures, DICOM files, nih-mini;
/// sources and licences in each folder's README.md).
inline std::filesystem::path data_dir() {
    return source_dir() / "tests" / "data";
}
inline std::filesystem::path radprobe_binary() {
    return RADPROBE_BINARY;
}
/// A tiny Hugging Face checkpoint of tests/data/encoders/ (e.g. "dinov2").
inline std::filesystem::path encoder_fixture(const std::string& name) {
    return data_dir() / "encoders" / name;
}

/// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
public:
    TempDir() {
        std::string tmpl =
            (std::filesystem::temp_directory_path() / "radprobe-test-XXXXXX").string();
        char* made = ::mkdtemp(tmpl.data());
        if (!made) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = made;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

struct CliResult {
    int exit_code = -1;
    std::string out;  ///< stdout
    std::string err;  ///< stderr
};

/// A file's bytes ("" when it cannot be opened: a command that wrote nothing).
inline std::string read_text(const std::filesystem::path& p) {
    std::string s;
    if (FILE* f = std::fopen(p.c_str(), "rb")) {
        std::array<char, 4096> buf;
        size_t n;
        while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
            s.append(buf.data(), n);
        }
        std::fclose(f);
    }
    return s;
}

/// Runs `radprobe <args>` through the shell (args are passed verbatim: quote paths yourself);
/// `env` (e.g. "-u NAME NAME2=value") is given to env(1) in front of the command.
inline CliResult run_cli(const std::string& args, const std::string& env = "") {
    TempDir tmp;
    const auto out_path = tmp / "stdout";
    const auto err_path = tmp / "stderr";
    const std::string cmd = (env.empty() ? "" : "env " + env + " ") + "'" +
                            radprobe_binary().string() + "' " + args + " >'" + out_path.string() +
                            "' 2>'" + err_path.string() + "' </dev/null";
    const int status = std::system(cmd.c_str());
    CliResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_text(out_path);
    r.err = read_text(err_path);
    return r;
}

/// Runs headless Chromium on `args` with a fresh profile and no network-facing services (the
/// flags this machine's closed network needs); stdout and stderr come back.
inline CliResult chromium(const std::string& args, const std::filesystem::path& profile) {
    TempDir tmp;
    auto q = [](const std::filesystem::path& p) { return "'" + p.string() + "'"; };
    const std::string cmd =
        "/usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
        "--disable-background-networking --disable-component-update --disable-sync "
        "--user-data-dir=" +
        q(profile) + " " + args + " >" + q(tmp / "out") + " 2>" + q(tmp / "err") + " </dev/null";
    const int status = std::system(cmd.c_str());
    CliResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_text(tmp / "out");
    r.err = read_text(tmp / "err");
    return r;
}

/// CUDA devices the radprobe binary can use, from `radprobe --version` ("CUDA devices: N").
/// CUDA tests skip only when this is 0, and on a GPU they must show the work ran there.
inline int cuda_devices() {
    const CliResult r = run_cli("--version");
    const auto at = r.out.find("CUDA devices: ");
    if (r.exit_code != 0 || at == std::string::npos) {
        return -1;  // unknown: the caller fails rather than skips
    }
    return std::atoi(r.out.c_str() + at + 14);
}

/// Number of lines in a string (a trailing newline does not start a new line).
/// A path single-quoted for run_cli's shell command line.
inline std::string q(const std::filesystem::path& p) {
    return "'" + p.string() + "'";
}

/// Whether `text` holds `what`.
inline bool contains(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

inline int count_lines(const std::string& s) {
    int n = 0;
    for (char c : s) {
        n += c == '\n';
    }
    if (!s.empty() && s.back() != '\n') {
        ++n;
    }
    return n;
}

}  // namespace radprobe::test
