#pragma once
// Private to imaging: codec libraries (libjpeg inside GDCM, libpng inside OpenCV) print their
// own messages on stderr even when the caller handles the failure. radprobe reports every
// failure itself in one line, so stderr is redirected to /dev/null while a codec runs.
// Process-wide: callers are serialised by a mutex.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace radprobe::imaging::detail {

class QuietStderr {
public:
    QuietStderr() : lock_(mutex()) {
        std::fflush(stderr);
        saved_ = ::dup(STDERR_FILENO);
        const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (saved_ >= 0 && devnull >= 0) {
            ::dup2(devnull, STDERR_FILENO);
        }
        if (devnull >= 0) {
            ::close(devnull);
        }
    }
    ~QuietStderr() {
        std::fflush(stderr);
        if (saved_ >= 0) {
            ::dup2(saved_, STDERR_FILENO);
            ::close(saved_);
        }
    }
    QuietStderr(const QuietStderr&) = delete;
    QuietStderr& operator=(const QuietStderr&) = delete;

private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    std::lock_guard<std::mutex> lock_;
    int saved_ = -1;
};

}  // namespace radprobe::imaging::detail
