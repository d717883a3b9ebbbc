#pragma once
// Shared by the encoder parity tests: reference outputs (.npy) as tensors, the max-abs
// comparison and the parity bar, and HF's N×C×H×W maps as radprobe's N×(H·W)×C tokens.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/encoder.hpp"

namespace radprobe::encoders::parity {

/// Max-abs bar of the parity tests (issues 9 and 16).
inline constexpr double kParity = 1e-4;

inline at::Tensor load(const std::filesystem::path& path) {
    return tensor_from_npy(read_npy(path));
}

/// Max-abs difference; a shape mismatch is a test failure and returns 1e30.
inline double max_abs(const at::Tensor& a, const at::Tensor& b) {
    EXPECT_EQ(a.sizes(), b.sizes());
    if (a.sizes() != b.sizes()) {
        return 1e30;
    }
    return (a.detach() - b.detach()).abs().max().item<double>();
}

/// HF N×C×H×W maps → the N×(H·W)×C token layout radprobe uses for ResNet.
inline at::Tensor map_to_tokens(const at::Tensor& map) {
    return map.flatten(2).transpose(1, 2);
}

}  // namespace radprobe::encoders::parity
