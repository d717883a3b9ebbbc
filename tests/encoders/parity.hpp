#pragma once
// Shared by the encoder parity tests: reference outputs (.npy) as tensors, the max-abs
// comparison and the parity bar, and HF's N×C×H×W maps as radprobe's N×(H·W)×C tokens.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
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

/// What a 3-channel model is given for a grey N×1×H×W image: the grey replicated into three
/// channels, each normalised with its mean and std (what a folded patch embedding reproduces).
inline at::Tensor normalised_grey_rgb(const at::Tensor& grey, const std::array<double, 3>& mean,
                                      const std::array<double, 3>& std) {
    auto rgb = torch::empty({grey.size(0), 3, grey.size(2), grey.size(3)});
    for (int ch = 0; ch < 3; ++ch) {
        rgb.narrow(1, ch, 1).copy_((grey - mean[ch]) / std[ch]);
    }
    return rgb;
}

/// The model at `dir` folded to one input channel (ImageNet mean/std) run on a seeded grey
/// batch N=2 of h×w, and the unfolded model run on that batch made RGB and normalised: what a
/// folding test compares (all layers kept). `folded` stays usable for further passes.
struct FoldedRun {
    std::unique_ptr<Encoder> folded;
    at::Tensor grey;
    EncoderOutput from_grey, from_rgb;
};

inline FoldedRun folded_and_rgb(const std::filesystem::path& dir, std::int64_t h, std::int64_t w) {
    const std::array<double, 3> mean{0.485, 0.456, 0.406};
    const std::array<double, 3> std{0.229, 0.224, 0.225};
    auto reference = load_encoder(dir);
    FoldedRun r;
    r.folded = load_encoder(dir);
    r.folded->fold_grayscale(mean, std);
    EXPECT_EQ(r.folded->input_channels(), 1);
    torch::manual_seed(11);
    r.grey = torch::rand({2, 1, h, w});
    ForwardOptions opt;
    opt.all_layers = true;
    r.from_grey = r.folded->forward(r.grey, opt);
    r.from_rgb = reference->forward(normalised_grey_rgb(r.grey, mean, std), opt);
    return r;
}

/// A forward pass compared with a fixture's reference outputs.
struct ParityRun {
    EncoderOutput out;
    double last_hidden_state = 0;  ///< max-abs against last_hidden_state.npy
    double hidden_states = 0;      ///< max-abs over every hidden state
};

/// Runs `encoder` on dir/pixel_values.npy with every hidden state and compares it with the
/// fixture: last_hidden_state.npy, and hidden_states.npy ((L+1)×N×T×D, the ViTs) or, without
/// it, hidden_states_{i}.npy (one per stage). HF's N×C×H×W maps (ResNet) are compared as
/// tokens. Another number of hidden states than the reference is a failure (hidden_states 1e30).
inline ParityRun run_parity(Encoder& encoder, const std::filesystem::path& dir) {
    auto as_tokens = [](const at::Tensor& t) { return t.dim() == 4 ? map_to_tokens(t) : t; };
    ForwardOptions opt;
    opt.all_layers = true;
    ParityRun r;
    r.out = encoder.forward(load(dir / "pixel_values.npy"), opt);
    r.last_hidden_state =
        max_abs(r.out.last_hidden_state, as_tokens(load(dir / "last_hidden_state.npy")));
    const bool stacked = std::filesystem::exists(dir / "hidden_states.npy");
    const at::Tensor ref = stacked ? load(dir / "hidden_states.npy") : at::Tensor();
    auto stage_file = [&](std::size_t i) {
        return dir / ("hidden_states_" + std::to_string(i) + ".npy");
    };
    std::size_t count = stacked ? static_cast<std::size_t>(ref.size(0)) : 0;
    while (!stacked && std::filesystem::exists(stage_file(count))) {
        ++count;
    }
    EXPECT_EQ(r.out.layers.size(), count) << dir;
    if (r.out.layers.size() != count) {
        r.hidden_states = 1e30;
        return r;
    }
    for (const auto& [i, t] : r.out.layers) {
        const auto h = stacked ? ref[i] : as_tokens(load(stage_file(static_cast<std::size_t>(i))));
        r.hidden_states = std::max(r.hidden_states, max_abs(t, h));
    }
    return r;
}

}  // namespace radprobe::encoders::parity
