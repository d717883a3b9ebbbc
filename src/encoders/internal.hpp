#pragma once
// Private to the encoders component: the pieces shared between loading.cpp and the architecture
// translation units.

#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>

#include "radprobe/encoders/encoder.hpp"

namespace radprobe::encoders::detail {

/// Copies `state` into the module's parameters and buffers (named like the HF key tree).
/// Missing, unexpected, mis-shaped and mis-typed keys are all collected and reported in one
/// InputError mentioning `source`.
void load_state_strict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& state,
                       const std::string& source);

/// Architecture builders (the factory in loading.cpp maps model_type to these). The returned
/// encoder has random (uninitialised) weights until load_state() is called.
class LoadableEncoder : public Encoder {
public:
    using Encoder::Encoder;
    virtual torch::nn::Module& module() = 0;
    /// Called after the weights were loaded (fuses/prepares derived tensors).
    virtual void prepare() = 0;
};

std::unique_ptr<LoadableEncoder> make_dinov2(const ModelConfig& config);

}  // namespace radprobe::encoders::detail
