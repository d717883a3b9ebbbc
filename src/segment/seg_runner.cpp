// Feeding segmentation networks (cached grids, live encoder, U-Net pixels) and checkpoints.

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "seg_internal.hpp"

namespace radprobe::segment {

void SegRunner::set_train(bool train) {
    net->train(train);
    if (encoder) {
        encoder->module().train(train);
    }
}

torch::Tensor SegRunner::pixels(const SampleSet& set, const std::vector<std::int64_t>& idx) const {
    const auto& g = set.samples.at(static_cast<std::size_t>(idx.at(0))).geometry;
    auto x = torch::empty({static_cast<std::int64_t>(idx.size()), 1, g.out_height, g.out_width});
    for (std::size_t k = 0; k < idx.size(); ++k) {
        const auto& p = set.samples[static_cast<std::size_t>(idx[k])].pixels;
        RADPROBE_ASSERT(static_cast<std::int64_t>(p.size()) == g.out_height * g.out_width);
        std::memcpy(x[static_cast<std::int64_t>(k)].data_ptr<float>(), p.data(),
                    p.size() * sizeof(float));
    }
    return x.to(device);
}

std::vector<torch::Tensor> SegRunner::cached_inputs(const SampleSet& set,
                                                    const std::vector<std::int64_t>& idx) const {
    const auto sel = set.grids.index_select(0, torch::tensor(idx, torch::kLong)).to(device);
    std::vector<torch::Tensor> out;
    for (std::int64_t l = 0; l < sel.size(1); ++l) {
        out.push_back(sel.select(1, l));
    }
    return out;
}

std::vector<torch::Tensor> SegRunner::live_inputs(const torch::Tensor& x01) {
    const auto x = normalise_input(x01, spec);
    if (!encoder) {
        return {x};
    }
    encoders::ForwardOptions fwd;
    fwd.normalize_layers = true;  // as the extraction store (and DINOv2's intermediate layers)
    const auto L = config.num_hidden_layers;
    for (int idx : layers) {
        if (idx != L) {
            fwd.layers.push_back(idx);
        }
    }
    // forward_train also for evaluation (under the caller's NoGradGuard): the inference
    // forward may keep tables computed from weights that fine-tuning has since changed.
    const auto out = encoder->forward_train(x, fwd);
    return grids_from_output(out, layers, L, config.num_register_tokens, config.has_cls_token);
}

std::vector<std::vector<float>> SegRunner::predict(const SampleSet& set, int batch) {
    set_train(false);
    torch::NoGradGuard guard;
    std::vector<std::vector<float>> out;
    const auto n = static_cast<std::int64_t>(set.samples.size());
    for (std::int64_t b = 0; b < n; b += batch) {
        std::vector<std::int64_t> idx;
        for (std::int64_t i = b; i < std::min(n, b + batch); ++i) {
            idx.push_back(i);
        }
        const auto inputs =
            set.grids.defined() ? cached_inputs(set, idx) : live_inputs(pixels(set, idx));
        const auto p = torch::sigmoid(net->forward_logits(inputs))
                           .to(torch::kCPU, torch::kFloat32)
                           .contiguous();
        const std::int64_t plane = p.size(2) * p.size(3);
        for (std::int64_t k = 0; k < p.size(0); ++k) {
            const float* v = p.data_ptr<float>() + k * plane;
            out.emplace_back(v, v + plane);
        }
    }
    return out;
}

void save_seg_net(torch::nn::Module& net, const std::filesystem::path& path) {
    torch::serialize::OutputArchive archive;
    net.save(archive);
    AtomicOutput out(path);
    archive.save_to(out.temp_path().string());
    out.commit();
}

void load_seg_net(torch::nn::Module& net, const std::filesystem::path& path) {
    RADPROBE_CHECK(std::filesystem::exists(path), path.string(), ": no such decoder checkpoint");
    torch::serialize::InputArchive archive;
    try {
        archive.load_from(path.string());
        net.load(archive);
    } catch (const c10::Error& e) {
        throw InputError(str_cat(path.string(), ": not a checkpoint of this decoder (",
                                 Error::one_line(e.what_without_backtrace()), ")"));
    }
}

}  // namespace radprobe::segment
