#include "radprobe/core/files.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "fd_io.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe {
namespace fs = std::filesystem;

namespace {
std::string errno_text() {
    return std::strerror(errno);
}
}  // namespace

std::vector<std::uint8_t> read_file_bytes(const fs::path& path) {
    std::error_code ec;
    RADPROBE_CHECK(fs::exists(path, ec), path.string(), ": file not found");
    RADPROBE_CHECK(!fs::is_directory(path, ec), path.string(), ": is a directory, not a file");
    std::ifstream in(path, std::ios::binary);
    RADPROBE_CHECK(in.good(), path.string(), ": cannot open: ", errno_text());
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    RADPROBE_CHECK(size >= 0, path.string(), ": cannot determine file size");
    in.seekg(0, std::ios::beg);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    if (size > 0) {
        in.read(reinterpret_cast<char*>(bytes.data()), size);
        RADPROBE_CHECK(in.gcount() == size, path.string(), ": read failed");
    }
    return bytes;
}

std::string read_file_text(const fs::path& path) {
    const auto bytes = read_file_bytes(path);
    return std::string(bytes.begin(), bytes.end());
}

// Unique across the nodes of a cluster writing one shared folder (the slices of a store): the
// host name and the pid, then a counter.
fs::path temp_name_for(const fs::path& path) {
    static std::atomic<unsigned> counter{0};
    static const std::string host = [] {
        char name[256] = {};
        ::gethostname(name, sizeof name - 1);
        std::string s(name);
        for (char& c : s) {
            c = (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '_';
        }
        return s.empty() ? std::string("host") : s;
    }();
    fs::path tmp = path;
    tmp += ".tmp." + host + "." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    return tmp;
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
    AtomicOutput out(path);
    const int fd = ::open(out.temp_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    // Errors name the file the caller asked for; its temporary is removed by `out`.
    RADPROBE_CHECK(fd >= 0, path.string(), ": cannot create: ", errno_text());
    const std::string write_error = detail::write_fully(fd, bytes.data(), bytes.size(), -1);
    if (!write_error.empty()) {
        ::close(fd);
        throw InputError(str_cat(path.string(), ": write failed: ", write_error));
    }
    // Some file systems report a full disk only when the data reach it.
    const bool synced = ::fsync(fd) == 0;
    const std::string sync_error = synced ? std::string() : errno_text();
    const bool closed = ::close(fd) == 0;
    RADPROBE_CHECK(synced, path.string(), ": write failed: ", sync_error);
    RADPROBE_CHECK(closed, path.string(), ": close failed: ", errno_text());
    out.commit();
}

AtomicOutput::AtomicOutput(fs::path final_path) : final_(std::move(final_path)) {
    if (final_.has_parent_path()) {
        std::error_code ec;
        fs::create_directories(final_.parent_path(), ec);
        RADPROBE_CHECK(!ec, final_.parent_path().string(),
                       ": cannot create directory: ", ec.message());
    }
    temp_ = temp_name_for(final_);
}

AtomicOutput::~AtomicOutput() {
    if (!committed_) {
        std::error_code ec;
        fs::remove(temp_, ec);
    }
}

void AtomicOutput::commit() {
    std::error_code ec;
    fs::rename(temp_, final_, ec);
    RADPROBE_CHECK(!ec, final_.string(),
                   ": cannot rename temporary file into place: ", ec.message());
    committed_ = true;
}

void kill_point(const char* variable, std::size_t count) {
    const char* v = std::getenv(variable);
    char* rest = nullptr;
    if (v == nullptr || std::strtoull(v, &rest, 10) != count) {
        return;
    }
    // "N@FILE": only the first process to get here (of all the tasks of a cluster study).
    if (*rest == '@') {
        const int fd = ::open(rest + 1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            return;
        }
        ::close(fd);
    }
    std::fflush(stdout);
    std::fflush(stderr);
    ::kill(::getpid(), SIGKILL);
}

std::optional<FileLock> FileLock::try_lock(const fs::path& lock_path, std::string* holder) {
    if (!lock_path.parent_path().empty()) {
        std::error_code ec;
        fs::create_directories(lock_path.parent_path(), ec);
    }
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    RADPROBE_CHECK(fd >= 0, lock_path.string(), ": cannot create the lock file: ", errno_text());
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        if (holder) {
            char buf[32] = {};
            const auto n = ::pread(fd, buf, sizeof buf - 1, 0);
            *holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
            while (!holder->empty() && (holder->back() == '\n' || holder->back() == ' ')) {
                holder->pop_back();
            }
        }
        ::close(fd);
        RADPROBE_CHECK(err == EWOULDBLOCK, lock_path.string(),
                       ": cannot lock: ", std::strerror(err));
        return std::nullopt;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
        // the pid is only informative: the lock itself is held
    }
    return FileLock(fd);
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_) {
    other.fd_ = -1;
}

FileLock::~FileLock() {
    if (fd_ >= 0) {
        ::close(fd_);  // releases the flock
    }
}

void ensure_writable_dir(const fs::path& dir, const std::string& what) {
    const fs::path d = dir.empty() ? fs::path(".") : dir;
    std::error_code ec;
    fs::create_directories(d, ec);
    RADPROBE_CHECK(!ec, what, " ", d.string(), ": cannot create it (", ec.message(), ")");
    RADPROBE_CHECK(fs::is_directory(d, ec), what, " ", d.string(), ": not a directory");
    const fs::path probe = temp_name_for(d / ".radprobe-write-check");
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    RADPROBE_CHECK(fd >= 0, what, " ", d.string(), ": not writable (", errno_text(), ")");
    // One byte written and synced: a full disk is found here too, not half-way through the work.
    const bool wrote = ::write(fd, "x", 1) == 1 && ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    fs::remove(probe, ec);
    RADPROBE_CHECK(wrote, what, " ", d.string(), ": not writable (", std::strerror(err), ")");
}

ScratchRecords::ScratchRecords(std::size_t floats_per_record, fs::path dir)
    : floats_(floats_per_record), dir_(std::move(dir)) {
    if (dir_.empty()) {
        // $TMPDIR, else /var/tmp: disk-backed by convention, where /tmp may be a tmpfs (RAM).
        const char* env = std::getenv("TMPDIR");
        dir_ = env != nullptr && *env != '\0'           ? fs::path(env)
               : ::access("/var/tmp", W_OK | X_OK) == 0 ? fs::path("/var/tmp")
                                                        : fs::path("/tmp");
    }
    std::string name = (dir_ / "radprobe-scratch-XXXXXX").string();
    fd_ = ::mkstemp(name.data());
    RADPROBE_CHECK(fd_ >= 0, "scratch folder ", dir_.string(), ": cannot create a temporary file (",
                   errno_text(), "; set TMPDIR)");
    ::unlink(name.c_str());  // the open descriptor keeps it; nothing is left behind
}

ScratchRecords::~ScratchRecords() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void ScratchRecords::write(std::size_t index, const float* values) {
    const std::size_t bytes = floats_ * sizeof(float);
    const std::string why =
        detail::write_fully(fd_, values, bytes, static_cast<off_t>(index * bytes));
    RADPROBE_CHECK(why.empty(), "scratch file in ", dir_.string(), ": write failed (", why,
                   "; set TMPDIR)");
}

void ScratchRecords::read(std::size_t index, float* values) const {
    const std::size_t bytes = floats_ * sizeof(float);
    const auto got = detail::read_fully(fd_, values, bytes, static_cast<off_t>(index * bytes));
    RADPROBE_CHECK(got >= 0, "scratch file in ", dir_.string(), ": read failed (", errno_text(),
                   ")");
    // Past the end of the file: never written.
    std::memset(reinterpret_cast<char*>(values) + got, 0, bytes - static_cast<std::size_t>(got));
}

}  // namespace radprobe
