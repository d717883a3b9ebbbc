// The MLP head on pooled embeddings (see head_modules.hpp).

#include "head_modules.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::adapt {

namespace nn = torch::nn;

MlpHead::MlpHead(const MlpHeadConfig& c) : config(c) {
    RADPROBE_USAGE_CHECK(c.in_dim >= 1, "mlp head: embedding width must be >= 1");
    RADPROBE_USAGE_CHECK(c.depth >= 0 && c.depth <= 8, "mlp head: --depth ", c.depth,
                         ": expected 0 .. 8");
    RADPROBE_USAGE_CHECK(c.hidden >= 1 && c.hidden <= 65536, "mlp head: --dim ", c.hidden,
                         ": expected 1 .. 65536");
    RADPROBE_USAGE_CHECK(c.dropout >= 0 && c.dropout < 1, "mlp head: --dropout ", c.dropout,
                         ": expected [0, 1)");
    std::int64_t in = c.in_dim;
    for (std::int64_t i = 0; i < c.depth; ++i) {
        body->push_back(nn::Linear(in, c.hidden));
        body->push_back(nn::GELU());
        body->push_back(nn::Dropout(c.dropout));
        in = c.hidden;
    }
    register_module("body", body);
    classifier = register_module("classifier", nn::Linear(in, c.outputs));
}

torch::Tensor MlpHead::forward(const torch::Tensor& x) {
    RADPROBE_ASSERT(x.dim() == 2 && x.size(1) == config.in_dim, "mlp head: expected N×",
                    config.in_dim, " features");
    return classifier->forward(body->is_empty() ? x : body->forward(x));
}

}  // namespace radprobe::adapt
