#include "radprobe/core/parallel.hpp"

#include <sched.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace radprobe {

int available_threads() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) {
            return n;
        }
    }
    return std::max(1u, std::thread::hardware_concurrency());
}

void parallel_for(std::size_t n, int threads,
                  const std::function<void(std::size_t, std::size_t)>& fn) {
    if (n == 0) {
        return;
    }
    if (threads <= 0) {
        threads = available_threads();
    }
    const std::size_t workers = std::min<std::size_t>(static_cast<std::size_t>(threads), n);
    if (workers <= 1) {
        fn(0, n);
        return;
    }
    std::exception_ptr error;
    std::mutex mutex;
    std::vector<std::thread> pool;
    const std::size_t chunk = (n + workers - 1) / workers;
    for (std::size_t w = 0; w < workers; ++w) {
        const std::size_t begin = w * chunk;
        const std::size_t end = std::min(n, begin + chunk);
        if (begin >= end) {
            break;
        }
        pool.emplace_back([&, begin, end] {
            try {
                fn(begin, end);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex);
                if (!error) {
                    error = std::current_exception();
                }
            }
        });
    }
    for (auto& t : pool) {
        t.join();
    }
    if (error) {
        std::rethrow_exception(error);
    }
}

}  // namespace radprobe
