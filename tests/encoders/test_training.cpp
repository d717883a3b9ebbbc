// The encoder training API (interface 1 of the fine-tuning work): forward_train() equals
// forward() and is differentiable into every parameter, layer ids for layer-wise learning-rate
// decay, save_pretrained() round trips, to(device), and forward() after in-place weight updates.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "parity.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

namespace fs = std::filesystem;
using namespace parity;  // NOLINT: load, max_abs, kParity, map_to_tokens
using test::TempDir;

/// forward_train vs forward: the same arithmetic up to summation order (forward runs the
/// workspace pass with tiled attention, DINOv2's with fused QKV; forward_train the plain one).
constexpr double kTrainVsInference = 1e-5;

class TrainingApi : public ::testing::TestWithParam<std::string> {
protected:
    static void SetUpTestSuite() { set_threads(0); }
    fs::path dir() const {
        // open_clip_vit: the repo's own golden checkpoint (make_open_clip.py), else a shared one.
        return GetParam() == "open_clip_vit"
                   ? test::source_dir() / "tests" / "golden" / "encoders" / "open_clip_vit"
                   : test::encoder_fixture(GetParam());
    }
    /// The fixture's input (sam2_release runs sam2_vision's: make_sam2_release.py).
    at::Tensor pixels() const {
        return load((GetParam() == "sam2_release" ? test::encoder_fixture("sam2_vision") : dir()) /
                    "pixel_values.npy");
    }
};

TEST_P(TrainingApi, ForwardTrainEqualsForwardAndReachesEveryParameter) {
    auto encoder = load_encoder(dir());
    ForwardOptions opt;
    opt.all_layers = true;
    const auto x = pixels();
    const auto ref = encoder->forward(x, opt);
    const auto out = encoder->forward_train(x, opt);
    ASSERT_TRUE(out.last_hidden_state.requires_grad());
    double err = max_abs(out.last_hidden_state, ref.last_hidden_state);
    ASSERT_EQ(out.layers.size(), ref.layers.size());
    for (const auto& [i, t] : out.layers) {
        err = std::max(err, max_abs(t, ref.layers.at(i)));
    }
    EXPECT_EQ(out.pooled.defined(), ref.pooled.defined());
    if (out.pooled.defined()) {
        err = std::max(err, max_abs(out.pooled, ref.pooled));
    }
    EXPECT_EQ(out.projected.defined(), ref.projected.defined());
    if (out.projected.defined()) {
        err = std::max(err, max_abs(out.projected, ref.projected));
    }
    EXPECT_EQ(out.grid_h, ref.grid_h);
    EXPECT_EQ(out.grid_w, ref.grid_w);
    std::printf("%s: forward_train vs forward max-abs %.3g\n", GetParam().c_str(), err);
    EXPECT_LE(err, kTrainVsInference);

    // A loss touching every output: random weights so no gradient cancels by symmetry.
    torch::manual_seed(7);
    auto loss = (out.last_hidden_state * torch::randn_like(out.last_hidden_state)).sum();
    if (out.pooled.defined()) {
        loss = loss + (out.pooled * torch::randn_like(out.pooled)).sum();
    }
    if (out.projected.defined()) {
        loss = loss + (out.projected * torch::randn_like(out.projected)).sum();
    }
    loss.backward();
    int checked = 0;
    for (const auto& item : encoder->module().named_parameters(true)) {
        const auto& name = item.key();
        const auto& p = item.value();
        if (!p.requires_grad()) {
            // Only MAE's fixed sin-cos table is frozen (HF: requires_grad=False).
            EXPECT_EQ(name, "embeddings.position_embeddings") << GetParam();
            EXPECT_EQ(GetParam(), "vit_mae");
            continue;
        }
        if (name.find("mask_token") != std::string::npos) {
            continue;  // used only for masked pre-training, never by an unmasked forward
        }
        if (name.starts_with("neck.")) {
            continue;  // SAM2's FPN neck feeds its mask decoder, not the image features
        }
        ASSERT_TRUE(p.grad().defined()) << GetParam() << ": no gradient for " << name;
        EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0)
            << GetParam() << ": zero gradient for " << name;
        ++checked;
    }
    EXPECT_GT(checked, 10);
}

TEST_P(TrainingApi, ForwardSeesInPlaceWeightUpdates) {
    // An optimizer step changes weights in place; forward() must not keep using stale copies
    // (DINOv2 fuses QKV at load time).
    auto encoder = load_encoder(dir());
    const auto x = pixels();
    const auto before = encoder->forward(x).last_hidden_state;
    {
        torch::NoGradGuard no_grad;
        torch::manual_seed(3);
        for (auto& p : encoder->module().parameters()) {
            p.add_(torch::randn_like(p) * 0.01);
        }
    }
    const auto after = encoder->forward(x).last_hidden_state;
    const auto train = encoder->forward_train(x).last_hidden_state;
    EXPECT_GT(max_abs(after, before), 1e-4);
    EXPECT_LE(max_abs(after, train), kTrainVsInference);
}

TEST_P(TrainingApi, SavePretrainedRoundTripsExactly) {
    auto encoder = load_encoder(dir());
    {
        // Saved weights must be the current ones, not the loaded checkpoint's.
        torch::NoGradGuard no_grad;
        for (auto& p : encoder->module().parameters()) {
            p.mul_(1.01);
        }
    }
    TempDir tmp;
    const auto out_dir = tmp / "saved";
    encoder->save_pretrained(out_dir);
    EXPECT_TRUE(fs::exists(out_dir / encoder->config().config_file));
    EXPECT_TRUE(fs::exists(out_dir / "model.safetensors"));
    // A layout without a config (sam2_release) gets the processor radprobe derived for it.
    EXPECT_EQ(fs::exists(out_dir / "preprocessor_config.json"),
              fs::exists(dir() / "preprocessor_config.json") ||
                  !encoder->config().weights_layout.empty());
    auto reloaded = load_encoder(out_dir);
    ForwardOptions opt;
    opt.all_layers = true;
    const auto x = pixels();
    const auto a = encoder->forward(x, opt);
    const auto b = reloaded->forward(x, opt);
    EXPECT_EQ(max_abs(a.last_hidden_state, b.last_hidden_state), 0.0);
    for (const auto& [i, t] : a.layers) {
        EXPECT_EQ(max_abs(t, b.layers.at(i)), 0.0) << "hidden state " << i;
    }
    if (a.pooled.defined()) {
        EXPECT_EQ(max_abs(a.pooled, b.pooled), 0.0);
    }
    // Every parameter and buffer (incl. integer buffers) survives under the same name.
    const auto pa = encoder->module().named_buffers(true);
    const auto pb = reloaded->module().named_buffers(true);
    ASSERT_EQ(pa.size(), pb.size());
    for (const auto& item : pa) {
        EXPECT_TRUE(item.value().equal(pb[item.key()])) << item.key();
    }
}

TEST_P(TrainingApi, LayerIdsCoverEmbeddingsEveryBlockAndTheHead) {
    auto encoder = load_encoder(dir());
    const int blocks = encoder->num_blocks();
    EXPECT_EQ(blocks, encoder->config().num_hidden_layers);
    std::vector<int> seen(static_cast<std::size_t>(blocks + 2), 0);
    for (const auto& item : encoder->module().named_parameters(true)) {
        const int id = encoder->layer_id(item.key());
        ASSERT_GE(id, 0) << item.key();
        ASSERT_LE(id, blocks + 1) << item.key();
        ++seen[static_cast<std::size_t>(id)];
    }
    for (int i = 0; i <= blocks; ++i) {
        EXPECT_GT(seen[static_cast<std::size_t>(i)], 0) << GetParam() << ": nothing at depth " << i;
    }
    EXPECT_THROW((void)encoder->layer_id("no.such.parameter"), UsageError);
}

TEST_P(TrainingApi, ToCpuKeepsOutputs) {
    auto encoder = load_encoder(dir());
    const auto x = pixels();
    const auto before = encoder->forward(x).last_hidden_state;
    encoder->to(torch::Device(torch::kCPU));
    EXPECT_TRUE(encoder->device().is_cpu());
    EXPECT_EQ(max_abs(encoder->forward(x).last_hidden_state, before), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainingApi,
                         ::testing::Values("dinov2", "dinov2_with_registers", "dinov2_swiglu",
                                           "vit", "vit_mae", "clip_vision", "siglip_vision",
                                           "dinov3_vit", "dinov3_vit_swiglu", "resnet", "swin",
                                           "open_clip_vit", "aimv2", "aimv2_head", "aimv2_native",
                                           "sam2_vision", "sam2_full", "sam2_video_full",
                                           "sam2_release"),
                         [](const auto& info) { return info.param; });

struct DepthCase {
    std::string fixture;
    std::string name;
    int id;  ///< -1: num_blocks() + 1
};

TEST(TrainingApiLayerId, NamedParametersSitAtTheirDepth) {
    const std::vector<DepthCase> cases = {
        {"dinov2", "embeddings.patch_embeddings.projection.weight", 0},
        {"dinov2", "embeddings.cls_token", 0},
        {"dinov2", "encoder.layer.0.norm1.weight", 1},
        {"dinov2", "encoder.layer.1.mlp.fc2.bias", 2},
        {"dinov2", "layernorm.weight", -1},
        {"dinov2_with_registers", "embeddings.register_tokens", 0},
        {"vit", "pooler.dense.weight", -1},
        {"clip_vision", "vision_model.pre_layrnorm.weight", 0},
        {"clip_vision", "vision_model.embeddings.class_embedding", 0},
        {"clip_vision", "vision_model.encoder.layers.0.self_attn.q_proj.weight", 1},
        {"clip_vision", "vision_model.post_layernorm.bias", -1},
        {"siglip_vision", "vision_model.head.probe", -1},
        {"dinov3_vit", "embeddings.register_tokens", 0},
        {"dinov3_vit", "layer.1.attention.q_proj.weight", 2},
        {"dinov3_vit", "norm.weight", -1},
        {"resnet", "embedder.embedder.convolution.weight", 0},
        {"resnet", "encoder.stages.1.layers.0.shortcut.convolution.weight", 2},
        {"swin", "embeddings.norm.weight", 0},
        {"swin", "encoder.layers.0.downsample.reduction.weight", 1},
        {"swin", "encoder.layers.1.blocks.0.attention.self.relative_position_bias_table", 2},
        {"swin", "layernorm.weight", -1},
        {"aimv2", "embeddings.position_embedding.weight", 0},
        {"aimv2", "encoder.layers.1.ffn.gate_proj.weight", 2},
        {"aimv2", "rms_norm.weight", -1},
        {"aimv2_head", "head.cls_token", -1},
    };
    for (const auto& c : cases) {
        auto encoder = load_encoder(test::encoder_fixture(c.fixture));
        const int expected = c.id < 0 ? encoder->num_blocks() + 1 : c.id;
        EXPECT_EQ(encoder->layer_id(c.name), expected) << c.fixture << " " << c.name;
    }
}

TEST(TrainingApiSave, FoldedEncoderIsRefused) {
    auto encoder = load_encoder(test::encoder_fixture("vit"));
    encoder->fold_grayscale({0.5, 0.5, 0.5}, {0.25, 0.25, 0.25});
    TempDir tmp;
    EXPECT_THROW(encoder->save_pretrained(tmp / "x"), InputError);
    EXPECT_FALSE(fs::exists(tmp / "x" / "model.safetensors"));
}

TEST(TrainingApiResnet, TrainModeUsesBatchStatistics) {
    auto encoder = load_encoder(test::encoder_fixture("resnet"));
    const auto x = load(test::encoder_fixture("resnet") / "pixel_values.npy");
    const auto eval_out = encoder->forward_train(x).last_hidden_state;
    encoder->module().train();
    const auto train_out = encoder->forward_train(x).last_hidden_state;
    EXPECT_GT(max_abs(train_out, eval_out), 1e-3);
    encoder->module().eval();
    // forward() always uses the running statistics (which the train-mode pass updated).
    EXPECT_LE(
        max_abs(encoder->forward(x).last_hidden_state, encoder->forward_train(x).last_hidden_state),
        kTrainVsInference);
}

}  // namespace
}  // namespace radprobe::encoders
