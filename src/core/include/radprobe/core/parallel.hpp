#pragma once
/// @file parallel.hpp
/// A deterministic parallel-for over index ranges with plain std::threads (no OpenMP, so it
/// does not fight LibTorch's or OpenBLAS's thread pools). Work is split into fixed chunks so
/// that results written per index are identical for any thread count.

#include <cstddef>
#include <functional>

namespace radprobe {

/// Number of hardware threads available to this process (at least 1).
int available_threads();

/// Calls fn(begin, end) over [0, n) in contiguous chunks on up to `threads` threads
/// (threads <= 0 means available_threads()). Exceptions from any chunk are rethrown.
void parallel_for(std::size_t n, int threads,
                  const std::function<void(std::size_t begin, std::size_t end)>& fn);

}  // namespace radprobe
