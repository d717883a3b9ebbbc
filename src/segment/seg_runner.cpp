// Feeding segmentation networks (cached grids, live encoder, U-Net pixels) and checkpoints.

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "seg_internal.hpp"

namespace radprobe::segment {

void SegRunner::set_train(bool train) {
    net->train(train);
    if (encoder) {
        encoder->module().train(train && encoder_trainable);
    }
}

torch::Tensor SampleSet::planes(const ScratchRecords& records,
                                const std::vector<std::int64_t>& idx) const {
    const auto& g = samples.at(static_cast<std::size_t>(idx.at(0))).geometry;
    RADPROBE_ASSERT(static_cast<std::int64_t>(records.record_floats()) ==
                    g.out_height * g.out_width);
    auto x = torch::empty({static_cast<std::int64_t>(idx.size()), 1, g.out_height, g.out_width});
    for (std::size_t k = 0; k < idx.size(); ++k) {
        records.read(static_cast<std::size_t>(idx[k]),
                     x[static_cast<std::int64_t>(k)].data_ptr<float>());
    }
    return x;
}

std::vector<torch::Tensor> CachedGrids::batch(const std::vector<std::int64_t>& idx) const {
    const std::int64_t G = grid_h * grid_w, n = static_cast<std::int64_t>(idx.size());
    const auto nl = static_cast<std::int64_t>(layers.size());
    auto x = torch::empty({n, nl, grid_h, grid_w, dim});
    const std::size_t layer_bytes = static_cast<std::size_t>(G * dim) * sizeof(float);
    for (std::int64_t k = 0; k < n; ++k) {
        const auto row = store_row.at(static_cast<std::size_t>(idx[static_cast<std::size_t>(k)]));
        for (std::int64_t l = 0; l < nl; ++l) {
            store->read_part(
                row, static_cast<std::size_t>(layers[static_cast<std::size_t>(l)]) * layer_bytes,
                layer_bytes, x[k][l].data_ptr<float>());
        }
    }
    // N×nl×gh×gw×D → per layer N×D×gh×gw
    x = x.permute({0, 1, 4, 2, 3}).contiguous();
    std::vector<torch::Tensor> out;
    for (std::int64_t l = 0; l < nl; ++l) {
        out.push_back(x.select(1, l));
    }
    return out;
}

torch::Tensor SegRunner::pixels(const SampleSet& set, const std::vector<std::int64_t>& idx) const {
    RADPROBE_ASSERT(set.pixels != nullptr);
    return set.planes(*set.pixels, idx).to(device);
}

std::vector<torch::Tensor> SegRunner::cached_inputs(const SampleSet& set,
                                                    const std::vector<std::int64_t>& idx) const {
    auto out = set.grids->batch(idx);
    for (auto& t : out) {
        t = t.to(device);
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

void SegRunner::predict(const SampleSet& set, int batch,
                        const std::function<void(std::size_t, const torch::Tensor&)>& on_batch) {
    set_train(false);
    torch::NoGradGuard guard;
    const auto n = static_cast<std::int64_t>(set.samples.size());
    for (std::int64_t b = 0; b < n; b += batch) {
        std::vector<std::int64_t> idx;
        for (std::int64_t i = b; i < std::min(n, b + batch); ++i) {
            idx.push_back(i);
        }
        const auto inputs = set.grids ? cached_inputs(set, idx) : live_inputs(pixels(set, idx));
        const auto p = torch::sigmoid(net->forward_logits(inputs))
                           .to(torch::kCPU, torch::kFloat32)
                           .squeeze(1)
                           .contiguous();
        on_batch(static_cast<std::size_t>(b), p);
    }
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
