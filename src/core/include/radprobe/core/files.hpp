#pragma once
/// @file files.hpp
/// File helpers: whole-file reads with clear errors, and atomic writes (temp name + rename)
/// so that no output is ever half-written.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace radprobe {

/// Reads a whole file; throws InputError naming the file if it is missing, a directory or
/// unreadable.
std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path);
std::string read_file_text(const std::filesystem::path& path);

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync'd, then
/// renamed over `path`. Parent directories are created.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

/// An output file that appears under its final name only when commit() is called. Destroying
/// it without commit() removes the temporary file.
class AtomicOutput {
public:
    explicit AtomicOutput(std::filesystem::path final_path);
    ~AtomicOutput();
    AtomicOutput(const AtomicOutput&) = delete;
    AtomicOutput& operator=(const AtomicOutput&) = delete;

    /// Path to write to (the temporary name).
    const std::filesystem::path& temp_path() const { return temp_; }
    const std::filesystem::path& final_path() const { return final_; }
    /// Renames the temporary file to the final name.
    void commit();

private:
    std::filesystem::path final_;
    std::filesystem::path temp_;
    bool committed_ = false;
};

/// An exclusive advisory lock (flock) on a lock file, held while the object lives: one process
/// at a time per lock file; released by the kernel when the process dies, however it dies.
class FileLock {
public:
    /// Takes the lock on `lock_path` (created, holding the pid of its holder) without waiting;
    /// nullopt when another process holds it (`holder` then gets the pid it wrote, if any).
    static std::optional<FileLock> try_lock(const std::filesystem::path& lock_path,
                                            std::string* holder = nullptr);
    FileLock(FileLock&& other) noexcept;
    FileLock& operator=(FileLock&&) = delete;
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;
    ~FileLock();

private:
    explicit FileLock(int fd) : fd_(fd) {}
    int fd_ = -1;
};

/// Fixed-size records of floats in a temporary file, for data a step reads batch by batch but
/// must not hold all at once (the model-input planes of a segmentation run: 1 MB per image at
/// 518 px). Written once, read back by index from any thread (pwrite/pread). The file lives in
/// `dir` (default: $TMPDIR, else /var/tmp, which is disk-backed where /tmp may be a tmpfs, else
/// /tmp) and is unlinked as soon as it is created, so it goes with
/// the object or with the process, however it ends; its pages stay in the kernel's page cache,
/// not in the process's resident memory.
class ScratchRecords {
public:
    explicit ScratchRecords(std::size_t floats_per_record, std::filesystem::path dir = {});
    ~ScratchRecords();
    ScratchRecords(const ScratchRecords&) = delete;
    ScratchRecords& operator=(const ScratchRecords&) = delete;

    std::size_t record_floats() const { return floats_; }
    /// Record `index` := values[0, record_floats()); throws InputError naming the folder and the
    /// reason when the write fails (a full disk).
    void write(std::size_t index, const float* values);
    /// values[0, record_floats()) := record `index` (a record never written reads as zeros).
    void read(std::size_t index, float* values) const;

private:
    std::size_t floats_;
    std::filesystem::path dir_;
    int fd_ = -1;
};

/// Creates the output folder `dir` (and its parents) and checks that a file can be written in
/// it, before any work starts; throws InputError "WHAT DIR: cannot create it (reason)" or
/// "WHAT DIR: not writable (reason)" (e.g. a read-only file system, no permission, a full disk).
void ensure_writable_dir(const std::filesystem::path& dir, const std::string& what);

/// A temporary name next to `path`, unique to this process and call.
std::filesystem::path temp_name_for(const std::filesystem::path& path);

/// Testing aid for "nothing half-written": when the environment variable `variable` holds the
/// number `count`, the process kills itself with SIGKILL right here, as a crash would. Tests
/// use it to kill a run at a deterministic point instead of after a sleep. "N@FILE" kills only
/// the first process to reach the point (it creates FILE; processes that find it go on): one
/// task of many that share the environment, as Slurm's array tasks do.
void kill_point(const char* variable, std::size_t count);

}  // namespace radprobe
