#pragma once
// Internal to core: whole-buffer writes and reads on a file descriptor, EINTR retried (the
// scratch records, the .npy row reader and writer).

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace radprobe::detail {

/// Writes all `bytes` at `offset` (pwrite), or at the file position when offset < 0 (write).
/// Returns "" on success, else the reason (e.g. "No space left on device").
inline std::string write_fully(int fd, const void* data, std::size_t bytes, off_t offset) {
    const auto* p = static_cast<const char*>(data);
    for (std::size_t done = 0; done < bytes;) {
        const auto n =
            offset < 0 ? ::write(fd, p + done, bytes - done)
                       : ::pwrite(fd, p + done, bytes - done, offset + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 ? std::strerror(errno) : "no progress";
        }
        done += static_cast<std::size_t>(n);
    }
    return {};
}

/// Reads up to `bytes` at `offset`, stopping early only at the end of the file: the number of
/// bytes read, or -1 with errno set.
inline ssize_t read_fully(int fd, void* data, std::size_t bytes, off_t offset) {
    auto* p = static_cast<char*>(data);
    std::size_t done = 0;
    while (done < bytes) {
        const auto n = ::pread(fd, p + done, bytes - done, offset + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    return static_cast<ssize_t>(done);
}

}  // namespace radprobe::detail
