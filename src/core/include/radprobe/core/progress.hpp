#pragma once
/// @file progress.hpp
/// A progress line for long work: done/total, items/s and ETA, redrawn in place on a terminal
/// (stderr), silent when stderr is not a TTY (logs stay clean).

#include <chrono>
#include <cstddef>
#include <string>

namespace radprobe {

class Progress {
public:
    Progress(std::string label, std::size_t total, std::string unit = "items");
    ~Progress();
    /// Advances by n and redraws at most ~5 times a second.
    void advance(std::size_t n = 1);
    /// Draws the final state and a newline (on a terminal).
    void finish();
    std::size_t done() const { return done_; }
    double elapsed_seconds() const;
    /// Overrides TTY detection (tests).
    void set_enabled(bool enabled) { enabled_ = enabled; }

private:
    void draw(bool final_line);
    std::string label_;
    std::size_t total_;
    std::string unit_;
    std::size_t done_ = 0;
    bool enabled_;
    bool finished_ = false;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_;
};

/// True when stderr is a terminal.
bool stderr_is_tty();

}  // namespace radprobe
