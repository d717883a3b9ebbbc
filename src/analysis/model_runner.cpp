// The encoder behind the analyses: display image → 8-bit plane → the model's preprocessing →
// one forward pass → CLS and patch tokens (the same path as features::extract).

#include <torch/torch.h>

#include <cstring>

#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/preprocess/preprocess.hpp"

namespace radprobe::analysis::detail {

struct ModelRunner::Impl {
    EncoderSpec spec;
    encoders::ModelConfig config;
    preprocess::InputSpec input;
    std::unique_ptr<encoders::Encoder> encoder;
};

ModelRunner::ModelRunner(const EncoderSpec& spec) : impl_(std::make_unique<Impl>()) {
    RADPROBE_USAGE_CHECK(spec.batch >= 1 && spec.batch <= 1024, "--batch must be in 1..1024, got ",
                         spec.batch);
    RADPROBE_CHECK(std::filesystem::is_directory(spec.model_dir), spec.model_dir.string(),
                   ": model directory not found");
    impl_->spec = spec;
    impl_->config = encoders::read_model_config(spec.model_dir);
    impl_->input =
        preprocess::InputSpec::processor_input(encoders::read_preprocess_config(spec.model_dir), 3);
    if (spec.resize > 0) {
        impl_->input.processor.override_size(spec.resize);
    }
    const c10::Device device = encoders::parse_device(spec.device);
    encoders::set_threads(spec.threads);
    encoders::LoadOptions load;
    if (!spec.dtype.empty()) {
        load.compute_dtype = encoders::parse_compute_dtype(spec.dtype);
    }
    impl_->encoder = encoders::load_encoder(spec.model_dir, load);
    if (spec.fold_grayscale) {
        if (impl_->input.processor.do_normalize) {
            impl_->encoder->fold_grayscale(impl_->input.processor.image_mean,
                                           impl_->input.processor.image_std);
        } else {
            impl_->encoder->fold_grayscale({0.0, 0.0, 0.0}, {1.0, 1.0, 1.0});
        }
        impl_->input.channels = 1;
    }
    impl_->encoder->to(device);
}

ModelRunner::~ModelRunner() = default;

std::string ModelRunner::name() const {
    std::string n = impl_->spec.model_dir.filename().string();
    return n.empty() ? impl_->spec.model_dir.parent_path().filename().string() : n;
}

std::int64_t ModelRunner::dim() const {
    return impl_->config.hidden_size;
}

bool ModelRunner::has_cls() const {
    return impl_->encoder->has_cls_token();
}

features::InputGeometry ModelRunner::geometry(int rows, int cols) const {
    return features::patch_geometry(preprocess::input_geometry(impl_->input, rows, cols),
                                    impl_->config.patch_size);
}

std::vector<ImageTokens> ModelRunner::encode(const std::vector<const float*>& images, int rows,
                                             int cols) {
    std::vector<ImageTokens> out(images.size());
    const auto geo = geometry(rows, cols);
    const std::int64_t H = geo.out_height, W = geo.out_width, C = impl_->input.channels;
    const std::int64_t D = dim();
    const bool has_cls = this->has_cls();
    const std::size_t B = static_cast<std::size_t>(impl_->spec.batch);
    torch::InferenceMode guard;
    for (std::size_t b0 = 0; b0 < images.size(); b0 += B) {
        const std::size_t nb = std::min(B, images.size() - b0);
        at::Tensor x = torch::empty({static_cast<std::int64_t>(nb), C, H, W}, torch::kFloat32);
        float* dst = x.data_ptr<float>();
        const std::size_t per = static_cast<std::size_t>(C * H * W);
        parallel_for(nb, impl_->spec.threads, [&](std::size_t begin, std::size_t end) {
            for (std::size_t m = begin; m < end; ++m) {
                const float* img = images[b0 + m];
                const auto px = preprocess::to_input(img, rows, cols, impl_->input);
                RADPROBE_ASSERT(px.size() == per);
                std::memcpy(dst + m * per, px.data(), per * sizeof(float));
            }
        });
        const auto result = impl_->encoder->forward(x);
        const std::int64_t G = result.grid_h * result.grid_w;
        const at::Tensor patches =
            result.tokens.patches.reshape({static_cast<std::int64_t>(nb), G, D})
                .to(torch::kCPU)
                .contiguous();
        const at::Tensor cls =
            has_cls ? result.tokens.cls.to(torch::kCPU).contiguous() : at::Tensor();
        for (std::size_t m = 0; m < nb; ++m) {
            ImageTokens& t = out[b0 + m];
            const float* p = patches.data_ptr<float>() + static_cast<std::int64_t>(m) * G * D;
            t.patches.assign(p, p + G * D);
            if (has_cls) {
                const float* c = cls.data_ptr<float>() + static_cast<std::int64_t>(m) * D;
                t.cls.assign(c, c + D);
            }
        }
    }
    return out;
}

}  // namespace radprobe::analysis::detail
