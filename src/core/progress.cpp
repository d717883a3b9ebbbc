#include "radprobe/core/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace radprobe {

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, std::size_t total, std::string unit)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      enabled_(stderr_is_tty()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
    if (!finished_ && enabled_ && done_ > 0) {
        std::fputc('\n', stderr);
    }
}

double Progress::elapsed_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(std::size_t n) {
    done_ += n;
    if (!enabled_) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ >= std::chrono::milliseconds(200) || done_ == total_) {
        last_draw_ = now;
        draw(false);
    }
}

void Progress::finish() {
    if (finished_) {
        return;
    }
    finished_ = true;
    if (enabled_) {
        draw(true);
    }
}

void Progress::draw(bool final_line) {
    const double secs = elapsed_seconds();
    const double rate = secs > 0 ? static_cast<double>(done_) / secs : 0.0;
    char eta[32] = "--";
    if (rate > 0 && total_ >= done_) {
        const double remaining = static_cast<double>(total_ - done_) / rate;
        std::snprintf(eta, sizeof eta, "%dm%02ds", static_cast<int>(remaining) / 60,
                      static_cast<int>(remaining) % 60);
    }
    std::fprintf(stderr, "\r%s: %zu/%zu %s, %.2f %s/s, ETA %s   %s", label_.c_str(), done_, total_,
                 unit_.c_str(), rate, unit_.c_str(), eta, final_line ? "\n" : "");
    std::fflush(stderr);
}

}  // namespace radprobe
