// A short throughput calibration of an encoder on this machine (radprobe models --calibrate).

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "radprobe/core/error.hpp"
#include "radprobe/encoders/encoder.hpp"

namespace radprobe::encoders {

namespace {

using Clock = std::chrono::steady_clock;

// One forward, finished: a CUDA device runs asynchronously, so its output is waited for (one
// element read back) before the clock is read.
void forward_done(Encoder& encoder, const at::Tensor& x) {
    const auto out = encoder.forward(x);
    if (out.last_hidden_state.defined() && !out.last_hidden_state.device().is_cpu()) {
        out.last_hidden_state.view(-1)[0].item<float>();
    }
}

Throughput time_batch(Encoder& encoder, int size, int batch, double seconds) {
    const auto x = torch::rand({batch, encoder.input_channels(), size, size})
                       .to(encoder.device());  // the input already on the device, as pinned
                                               // batches are by the time they are needed
    forward_done(encoder, x);                  // warm-up
    Throughput t;
    t.size = size;
    t.batch = batch;
    const auto t0 = Clock::now();
    double elapsed = 0;
    do {
        forward_done(encoder, x);
        ++t.forwards;
        elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (elapsed < seconds);
    t.images_per_second = t.forwards * batch / elapsed;
    t.gflops_per_second = encoder.flops_per_image(size, size) * t.images_per_second / 1e9;
    return t;
}

}  // namespace

std::vector<Throughput> calibrate(Encoder& encoder, int size, const std::vector<int>& batches,
                                  double seconds) {
    RADPROBE_USAGE_CHECK(size > 0, "calibration size must be positive, got ", size);
    std::vector<Throughput> out;
    double best = 0;
    for (int batch : batches) {
        RADPROBE_USAGE_CHECK(batch > 0, "calibration batch sizes must be positive, got ", batch);
        out.push_back(time_batch(encoder, size, batch, seconds));
        const double rate = out.back().images_per_second;
        if (rate < 0.9 * best) {
            break;
        }
        best = std::max(best, rate);
    }
    return out;
}

}  // namespace radprobe::encoders
