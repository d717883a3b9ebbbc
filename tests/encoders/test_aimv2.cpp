// AIMv2 (HF Aimv2VisionModel) against transformers v4.57.6's own outputs
// (tests/golden/encoders/make_aimv2.py → tests/data/encoders/aimv2{,_head,_native}): every hidden
// state, last_hidden_state and the attention-pooling head, through the inference pass (the
// block workspace) and the differentiable one; the token layout (no CLS), grey folding, the
// fixed grid of the learned position table and the any-size grid of the native variant.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "parity.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

namespace fs = std::filesystem;
using namespace parity;  // NOLINT: load, max_abs, kParity

struct Aimv2Case {
    std::string fixture;
    bool has_head;
};

class Aimv2 : public ::testing::TestWithParam<Aimv2Case> {
protected:
    static void SetUpTestSuite() { set_threads(0); }
    fs::path dir() const { return test::encoder_fixture(GetParam().fixture); }
};

TEST_P(Aimv2, EveryHiddenStateLastHiddenStateAndHeadMatchTransformers) {
    auto encoder = load_encoder(dir());
    const ParityRun run = run_parity(*encoder, dir());
    double pooled = 0;
    if (GetParam().has_head) {
        ASSERT_TRUE(run.out.pooled.defined());
        pooled = max_abs(run.out.pooled, load(dir() / "pooler_output.npy"));
    } else {
        EXPECT_FALSE(run.out.pooled.defined());
    }
    std::printf("%s: max-abs last_hidden_state %.3g, hidden_states %.3g, pooled %.3g\n",
                GetParam().fixture.c_str(), run.last_hidden_state, run.hidden_states, pooled);
    EXPECT_LE(run.last_hidden_state, kParity);
    EXPECT_LE(run.hidden_states, kParity);
    EXPECT_LE(pooled, kParity);
}

TEST_P(Aimv2, TheDifferentiablePassGivesTheSameOutputs) {
    // forward_train runs the plain functional blocks (eager RMSNorm), not the workspace.
    auto encoder = load_encoder(dir());
    const auto x = load(dir() / "pixel_values.npy");
    const auto out = encoder->forward_train(x, {});
    EXPECT_LE(max_abs(out.last_hidden_state, load(dir() / "last_hidden_state.npy")), kParity);
    if (GetParam().has_head) {
        EXPECT_LE(max_abs(out.pooled, load(dir() / "pooler_output.npy")), kParity);
    }
    out.last_hidden_state.sum().backward();
    EXPECT_TRUE(
        encoder->module().named_parameters()["encoder.layers.0.rms_norm1.weight"].grad().defined());
}

TEST_P(Aimv2, TokensArePatchesOnlyInGridOrder) {
    auto encoder = load_encoder(dir());
    EXPECT_FALSE(encoder->has_cls_token());
    const auto x = load(dir() / "pixel_values.npy");
    const auto out = encoder->forward(x);
    const std::int64_t gh = x.size(2) / 14, gw = x.size(3) / 14;
    EXPECT_EQ(out.grid_h, gh);
    EXPECT_EQ(out.grid_w, gw);
    EXPECT_FALSE(out.tokens.cls.defined());
    EXPECT_EQ(out.tokens.patches.sizes(), (std::vector<std::int64_t>{2, gh, gw, 48}));
    EXPECT_TRUE(out.tokens.patches.select(1, 1).select(1, 2).equal(
        out.last_hidden_state.select(1, 1 * gw + 2)));
}

TEST_P(Aimv2, FoldedGreyInputGivesTheSameTokens) {
    auto reference = load_encoder(dir());
    auto folded = load_encoder(dir());
    const std::array<double, 3> mean{0.48, 0.46, 0.41};
    const std::array<double, 3> std{0.27, 0.26, 0.28};
    folded->fold_grayscale(mean, std);
    EXPECT_EQ(folded->input_channels(), 1);
    const auto side = reference->config().image_size;
    const auto grey = torch::rand({1, 1, side, side});
    const auto rgb = normalised_grey_rgb(grey, mean, std);
    EXPECT_LE(
        max_abs(folded->forward(grey).last_hidden_state, reference->forward(rgb).last_hidden_state),
        1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Aimv2,
                         ::testing::Values(Aimv2Case{"aimv2", false}, Aimv2Case{"aimv2_head", true},
                                           Aimv2Case{"aimv2_native", false}),
                         [](const auto& info) { return info.param.fixture; });

TEST(Aimv2Grid, TheLearnedTableRunsAtItsOwnGridOnly) {
    // transformers adds the table row by row and fails on another token count; radprobe
    // refuses any other grid (a 1x9 grid would pass transformers' shape check silently).
    auto encoder = load_encoder(test::encoder_fixture("aimv2"));
    for (const auto& shape : {std::vector<std::int64_t>{1, 3, 56, 42}, {1, 3, 14, 126}}) {
        try {
            (void)encoder->forward(torch::randn(shape));
            ADD_FAILURE() << "ran a " << shape[2] << "x" << shape[3] << " input";
        } catch (const UsageError& e) {
            EXPECT_NE(std::string(e.what()).find("learned position table for its 3x3 patch grid "
                                                 "(42 px) and no rule for other sizes"),
                      std::string::npos)
                << e.what();
        }
    }
}

TEST(Aimv2Grid, TheNativeVariantTakesAnySizeAndDropsPartialPatches) {
    // The fixture is 56x42 (a 4x3 grid); 60x47 has the same whole patches.
    auto encoder = load_encoder(test::encoder_fixture("aimv2_native"));
    const auto x = load(test::encoder_fixture("aimv2_native") / "pixel_values.npy");
    auto padded = torch::zeros({2, 3, 60, 47});
    padded.narrow(2, 0, 56).narrow(3, 0, 42).copy_(x);
    EXPECT_LE(max_abs(encoder->forward(padded).last_hidden_state,
                      load(test::encoder_fixture("aimv2_native") / "last_hidden_state.npy")),
              kParity);
    const auto other = encoder->forward(torch::randn({1, 3, 28, 70}));
    EXPECT_EQ(other.grid_h, 2);
    EXPECT_EQ(other.grid_w, 5);
}

TEST(Aimv2Lit, TheFullModelsImageSideMatchesTransformersAndTheTextTowerIsSetAside) {
    // HF Aimv2Model (apple/aimv2-large-patch14-224-lit): vision_model.* is aimv2_head's tower;
    // image_embeds = get_image_features = visual_projection(pooler_output), not normalised.
    set_threads(0);
    const auto dir = test::encoder_fixture("aimv2_lit");
    auto encoder = load_encoder(dir);
    EXPECT_EQ(encoder->config().model_type, "aimv2");
    EXPECT_EQ(encoder->config().projection_dim, 24);
    const ParityRun run = run_parity(*encoder, dir);
    const double pooled = max_abs(run.out.pooled, load(dir / "pooler_output.npy"));
    const double projected = max_abs(run.out.projected, load(dir / "image_embeds.npy"));
    std::printf(
        "aimv2_lit: max-abs last_hidden_state %.3g, hidden_states %.3g, pooled %.3g, "
        "projected %.3g\n",
        run.last_hidden_state, run.hidden_states, pooled, projected);
    EXPECT_LE(run.last_hidden_state, kParity);
    EXPECT_LE(run.hidden_states, kParity);
    EXPECT_LE(pooled, kParity);
    EXPECT_LE(projected, kParity);
    const LoadReport& report = encoder->load_report();
    EXPECT_NE(report.ignored.find("text_model.*"), std::string::npos) << report.ignored;
    EXPECT_NE(report.ignored.find("logit_scale"), std::string::npos) << report.ignored;
    EXPECT_EQ(report.prefix, "");
    // Block 1's parameters sit at depth 2 under the composite's prefix.
    EXPECT_EQ(encoder->layer_id("vision_model.encoder.layers.1.ffn.up_proj.weight"), 2);
    EXPECT_EQ(encoder->layer_id("vision_model.embeddings.patch_embed.weight"), 0);
}

TEST(Aimv2Lit, AppleOriginalConfigIsRefusedWithWhatToDo) {
    test::TempDir tmp;
    write_file_atomic(
        tmp / "config.json",
        R"({"model_type": "aimv2", "architectures": ["AIMv2Model"], )"
        R"("auto_map": {"AutoModel": "modeling_aimv2.AIMv2Model"}, "hidden_size": 1024})");
    try {
        (void)read_model_config(tmp.path());
        ADD_FAILURE() << "read Apple's original config";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("Apple's original remote-code AIMv2 layout"),
                  std::string::npos)
            << e.what();
    }
}

TEST(Aimv2Cli, ModelsListsTheArchitectureAndTheFolder) {
    const auto r = test::run_cli("models");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("  aimv2_vision_model "), std::string::npos) << r.out;
    const auto d = test::run_cli("models '" + test::encoder_fixture("aimv2_head").string() + "'");
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_NE(d.out.find("aimv2_vision_model"), std::string::npos) << d.out;
}

}  // namespace
}  // namespace radprobe::encoders
