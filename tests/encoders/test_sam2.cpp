// SAM 2's image encoder (HF Sam2VisionModel: Hiera trunk + FPN neck) against transformers
// v4.57.6's own outputs (tests/golden/encoders/make_sam2.py → tests/data/encoders/sam2_vision,
// sam2_full, sam2_video_full): the embeddings and every stage output, the last stage as tokens,
// the neck and its position encoding (detail::sam2_fpn), on the 128x128 batch and the 96x128
// input; the published full models' layouts (vision_encoder.* read, the rest set aside); the
// differentiable pass, grey folding, the input-size rule, depths for layer-wise decay, the
// config reader's defaults and checks, and `radprobe models`.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../../src/encoders/internal.hpp"
#include "../../src/encoders/sam2_release.hpp"
#include "parity.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

namespace fs = std::filesystem;
using namespace parity;  // NOLINT: load, max_abs, kParity

/// HF's N×h×w×C trunk activations as radprobe's N×(h·w)×C tokens.
at::Tensor nhwc_tokens(const at::Tensor& t) {
    return t.reshape({t.size(0), t.size(1) * t.size(2), t.size(3)});
}

fs::path npy(const fs::path& dir, const std::string& name, std::size_t i) {
    return dir / (name + "_" + std::to_string(i) + ".npy");
}

/// Max-abs of a forward (every state) against one folder of reference outputs: the trunk, and
/// the neck when the folder has fpn_position_encoding_*.npy (sam2_vision).
struct Sam2Parity {
    double last = 0, embeddings = 0, stages = 0, pyramid = 0, fpn = 0, position = 0;
};

Sam2Parity compare(Encoder& encoder, const fs::path& dir, bool train = false) {
    ForwardOptions opt;
    opt.all_layers = true;
    const auto x = load(dir / "pixel_values.npy");
    const auto out = train ? encoder.forward_train(x, opt) : encoder.forward(x, opt);
    const auto n = encoder.config().depths.size();
    EXPECT_EQ(out.layers.size(), n + 1);
    EXPECT_EQ(out.pyramid.size(), n);
    Sam2Parity p;
    const auto last = load(dir / "last_hidden_state.npy");
    p.last = std::max(max_abs(out.last_hidden_state, nhwc_tokens(last)),
                      max_abs(out.tokens.patches, last));
    if (fs::exists(dir / "hidden_states_0.npy")) {
        p.embeddings = max_abs(out.layers.at(0), nhwc_tokens(load(dir / "hidden_states_0.npy")));
    }
    for (std::size_t i = 0; i < n; ++i) {
        const auto ref = load(npy(dir, "intermediate_hidden_states", i));
        p.stages =
            std::max(p.stages, max_abs(out.layers.at(static_cast<int>(i) + 1), nhwc_tokens(ref)));
        p.pyramid = std::max(p.pyramid, max_abs(out.pyramid[i], ref.permute({0, 3, 1, 2})));
    }
    const auto fpn = detail::sam2_fpn(encoder, out.pyramid);
    EXPECT_EQ(fpn.hidden_states.size(), 3u);
    for (std::size_t i = 0; i < fpn.hidden_states.size(); ++i) {
        p.fpn =
            std::max(p.fpn, max_abs(fpn.hidden_states[i], load(npy(dir, "fpn_hidden_states", i))));
        if (fs::exists(npy(dir, "fpn_position_encoding", i))) {
            p.position = std::max(p.position, max_abs(fpn.position_encoding[i],
                                                      load(npy(dir, "fpn_position_encoding", i))));
        }
    }
    return p;
}

void expect_parity(const Sam2Parity& p, const std::string& what) {
    std::printf(
        "%s: max-abs last_hidden_state %.3g, embeddings %.3g, stages %.3g, pyramid %.3g, "
        "fpn %.3g, fpn positions %.3g\n",
        what.c_str(), p.last, p.embeddings, p.stages, p.pyramid, p.fpn, p.position);
    EXPECT_LE(p.last, kParity) << what;
    EXPECT_LE(p.embeddings, kParity) << what;
    EXPECT_LE(p.stages, kParity) << what;
    EXPECT_LE(p.pyramid, kParity) << what;
    EXPECT_LE(p.fpn, kParity) << what;
    EXPECT_LE(p.position, kParity) << what;
}

class Sam2 : public ::testing::Test {
protected:
    static void SetUpTestSuite() { set_threads(0); }
    static fs::path dir() { return test::encoder_fixture("sam2_vision"); }
};

TEST_F(Sam2, TrunkAndNeckMatchTransformers) {
    auto encoder = load_encoder(dir());
    expect_parity(compare(*encoder, dir()), "sam2_vision 2x3x128x128");
}

TEST_F(Sam2, ANonSquareInputOfAnotherSizeMatchesTransformers) {
    // pos_embed resized to 24x32, the window table tiled 3x4, padded windows in stages 3 and 4.
    auto encoder = load_encoder(dir());
    expect_parity(compare(*encoder, dir() / "input_96x128"), "sam2_vision 1x3x96x128");
}

TEST_F(Sam2, TheDifferentiablePassGivesTheSameOutputs) {
    auto encoder = load_encoder(dir());
    expect_parity(compare(*encoder, dir(), true), "sam2_vision forward_train");
    const auto x = load(dir() / "pixel_values.npy");
    const auto a = encoder->forward(x);
    const auto b = encoder->forward_train(x);
    EXPECT_LE(max_abs(a.last_hidden_state, b.last_hidden_state), 1e-5);
    EXPECT_LE(max_abs(a.pooled, b.pooled), 1e-5);
    b.last_hidden_state.sum().backward();
    const auto params = encoder->module().named_parameters();
    EXPECT_TRUE(params["backbone.pos_embed_window"].grad().defined());
    EXPECT_TRUE(params["backbone.blocks.1.proj.weight"].grad().defined());
}

TEST_F(Sam2, TokensAreTheLastStageGridWithoutClsAndPooledIsTheirMean) {
    auto encoder = load_encoder(dir());
    EXPECT_FALSE(encoder->has_cls_token());
    EXPECT_TRUE(encoder->config().is_hierarchical());
    const auto& c = encoder->config();
    EXPECT_EQ(c.num_hidden_layers, 4);
    EXPECT_EQ(c.hidden_size, 48);
    EXPECT_EQ(c.patch_size, 32);
    const auto out = encoder->forward(load(dir() / "pixel_values.npy"));
    EXPECT_EQ(out.grid_h, 4);
    EXPECT_EQ(out.grid_w, 4);
    EXPECT_FALSE(out.tokens.cls.defined());
    EXPECT_EQ(out.tokens.patches.sizes(), (std::vector<std::int64_t>{2, 4, 4, 48}));
    EXPECT_EQ(out.last_hidden_state.sizes(), (std::vector<std::int64_t>{2, 16, 48}));
    EXPECT_LE(max_abs(out.pooled, out.last_hidden_state.mean(1)), 0.0);
    EXPECT_GT(encoder->flops_per_image(128, 128), 0.0);
    EXPECT_GT(encoder->flops_per_image(256, 256), 3.5 * encoder->flops_per_image(128, 128));
}

TEST_F(Sam2, FoldedGreyInputGivesTheSameOutputsBorderIncluded) {
    // The 7x7 patch convolution pads the normalised input with zeros: the fold keeps the shift
    // of the taps inside the image, so the first token row and column match too.
    const auto r = folded_and_rgb(dir(), 64, 96);
    const auto& a = r.from_grey;
    const auto& b = r.from_rgb;
    const double embeddings = max_abs(a.layers.at(0), b.layers.at(0));
    const double last = max_abs(a.last_hidden_state, b.last_hidden_state);
    std::printf("sam2 folded grey vs rgb: max-abs embeddings %.3g, last_hidden_state %.3g\n",
                embeddings, last);
    EXPECT_LE(embeddings, 1e-4);
    EXPECT_LE(last, 1e-4);
    EXPECT_LE(max_abs(r.folded->forward_train(r.grey).last_hidden_state, b.last_hidden_state),
              1e-4);
    EXPECT_THROW(r.folded->fold_grayscale({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}),
                 InputError);
}

TEST_F(Sam2, SidesThatAreNotMultiplesOf32AreAClearUsageError) {
    auto encoder = load_encoder(dir());
    for (const auto& shape :
         {std::vector<std::int64_t>{1, 3, 112, 128}, {1, 3, 128, 100}, {1, 3, 16, 32}}) {
        try {
            (void)encoder->forward(torch::randn(shape));
            ADD_FAILURE() << "ran a " << shape[2] << "x" << shape[3] << " input";
        } catch (const UsageError& e) {
            EXPECT_NE(std::string(e.what()).find("height and width are multiples of 32"),
                      std::string::npos)
                << e.what();
        }
    }
    EXPECT_EQ(encoder->forward(torch::randn({1, 3, 32, 64})).grid_w, 2);
}

TEST_F(Sam2, BlocksSitAtTheDepthOfTheirStage) {
    // blocks_per_stage [1, 2, 3, 2]: backbone.blocks.N is numbered across the stages.
    auto encoder = load_encoder(dir());
    EXPECT_EQ(encoder->num_blocks(), 4);
    const std::vector<std::pair<std::string, int>> cases = {
        {"backbone.patch_embed.projection.weight", 0},
        {"backbone.pos_embed", 0},
        {"backbone.pos_embed_window", 0},
        {"backbone.blocks.0.attn.qkv.weight", 1},
        {"backbone.blocks.1.proj.weight", 2},
        {"backbone.blocks.2.mlp.proj_in.bias", 2},
        {"backbone.blocks.3.layer_norm1.weight", 3},
        {"backbone.blocks.5.attn.proj.weight", 3},
        {"backbone.blocks.6.attn.qkv.bias", 4},
        {"backbone.blocks.7.mlp.proj_out.weight", 4},
        {"neck.convs.0.weight", 5},
    };
    for (const auto& [name, depth] : cases) {
        EXPECT_EQ(encoder->layer_id(name), depth) << name;
    }
}

struct FullCase {
    std::string fixture, composite;
    std::int64_t ignored_tensors;
    std::vector<std::string> ignored_groups;
};

class Sam2Full : public ::testing::TestWithParam<FullCase> {
protected:
    static void SetUpTestSuite() { set_threads(0); }
};

TEST_P(Sam2Full, TheVisionEncoderIsReadFromThePublishedLayoutAndTheRestSetAside) {
    const auto& c = GetParam();
    const auto dir = test::encoder_fixture(c.fixture);
    auto encoder = load_encoder(dir);
    EXPECT_EQ(encoder->config().model_type, "sam2_vision_model");
    EXPECT_EQ(encoder->config().composite_type, c.composite);
    const LoadReport& report = encoder->load_report();
    EXPECT_EQ(report.prefix, "vision_encoder.");
    EXPECT_EQ(report.ignored_tensors, c.ignored_tensors);
    for (const auto& group : c.ignored_groups) {
        EXPECT_NE(report.ignored.find(group), std::string::npos) << report.ignored;
    }
    EXPECT_EQ(report.ignored.find("vision_encoder"), std::string::npos) << report.ignored;
    expect_parity(compare(*encoder, dir), c.fixture);
    EXPECT_EQ(encoder->layer_id("backbone.blocks.6.attn.qkv.bias"), 4);
}

INSTANTIATE_TEST_SUITE_P(
    Published, Sam2Full,
    ::testing::Values(FullCase{"sam2_full",
                               "sam2",
                               146,
                               {"mask_decoder.* (131 tensors)", "prompt_encoder.* (13 tensors)",
                                "no_memory_embedding (1 tensor)",
                                "shared_image_embedding.* (1 tensor)"}},
                      FullCase{"sam2_video_full",
                               "sam2_video",
                               254,
                               {"mask_decoder.* (131 tensors)", "memory_attention.* (54 tensors)",
                                "memory_encoder.* (40 tensors)"}}),
    [](const auto& info) { return info.param.fixture; });

// The original release (facebookresearch/sam2 *.pt + the Hydra config .yaml), made and run by
// the publisher's own code (tests/golden/encoders/make_sam2_release.py): its trunk stages and
// FPN levels on sam2_vision's input.
class Sam2Release : public ::testing::Test {
protected:
    static void SetUpTestSuite() { set_threads(0); }
    static fs::path dir() { return test::encoder_fixture("sam2_release"); }
};

TEST_F(Sam2Release, ThePublishersCheckpointAndConfigLoadAndMatchItsOwnForward) {
    auto encoder = load_encoder(dir());
    const auto& c = encoder->config();
    EXPECT_EQ(c.weights_layout, "sam2_release");
    const auto hf = read_model_config(test::encoder_fixture("sam2_vision"));
    EXPECT_EQ(c.depths, hf.depths);
    EXPECT_EQ(c.stage_widths, hf.stage_widths);
    EXPECT_EQ(c.stage_heads, hf.stage_heads);
    EXPECT_EQ(c.hiera.windows, hf.hiera.windows);
    EXPECT_EQ(c.hiera.global_blocks, hf.hiera.global_blocks);
    EXPECT_EQ(c.hiera.num_feature_levels, 3);
    EXPECT_EQ(c.image_size, 128);
    const LoadReport& report = encoder->load_report();
    EXPECT_EQ(report.entry, "model");
    EXPECT_EQ(report.ignored_tensors, 10);
    EXPECT_EQ(report.ignored.find("image_encoder"), std::string::npos) << report.ignored;
    ForwardOptions opt;
    opt.all_layers = true;
    const auto x = load(test::encoder_fixture("sam2_vision") / "pixel_values.npy");
    const auto out = encoder->forward(x, opt);
    double trunk = 0, fpn = 0;
    for (std::size_t i = 0; i < out.pyramid.size(); ++i) {
        trunk = std::max(trunk, max_abs(out.pyramid[i], load(npy(dir(), "trunk", i))));
    }
    const auto neck = detail::sam2_fpn(*encoder, out.pyramid);
    ASSERT_EQ(neck.hidden_states.size(), 3u);
    for (std::size_t l = 0; l < neck.hidden_states.size(); ++l) {
        fpn = std::max(fpn, max_abs(neck.hidden_states[l], load(npy(dir(), "backbone_fpn", l))));
    }
    std::printf("sam2_release vs the publisher's forward: max-abs trunk %.3g, fpn %.3g\n", trunk,
                fpn);
    EXPECT_LE(trunk, kParity);
    EXPECT_LE(fpn, kParity);
    EXPECT_LE(max_abs(out.tokens.patches, load(npy(dir(), "trunk", 3)).permute({0, 2, 3, 1})),
              kParity);
}

/// The fixture's checkpoint alone, or with `yaml` as its config, in a fresh folder.
fs::path release_copy(const test::TempDir& tmp, const std::string& yaml) {
    const auto pt = test::encoder_fixture("sam2_release") / "sam2.1_hiera_fixture.pt";
    fs::copy_file(pt, tmp / pt.filename());
    if (!yaml.empty()) {
        write_file_atomic(tmp / "sam2.1_hiera_fixture.yaml", yaml);
    }
    return tmp.path();
}

std::string fixture_yaml() {
    return read_file_text(test::encoder_fixture("sam2_release") / "sam2.1_hiera_fixture.yaml");
}

void expect_release_error(const fs::path& dir, const std::string& what) {
    try {
        (void)read_model_config(dir);
        ADD_FAILURE() << "read " << dir;
    } catch (const InputError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(what), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
}

TEST(Sam2ReleaseConfig, WhatTheWeightsCannotSayComesFromTheYamlWhichMustAgreeWithThem) {
    {
        test::TempDir tmp;
        expect_release_error(release_copy(tmp, ""),
                             "a SAM 2 release checkpoint of width 6 is not one of the published "
                             "Hiera sizes (t, s, b+, l); put its config .yaml");
    }
    const std::vector<std::pair<std::string, std::string>> edits = {
        {"stages: [1, 2, 3, 2]", "stages: [1, 2, 2, 3]"},
        {"embed_dim: 6", "embed_dim: 8"},
        {"window_spec: [8, 4, 6, 3]", "window_spec: [4, 4, 6, 3]"},
        {"d_model: 16", "d_model: 32"},
        {"fpn_interp_model: nearest", "fpn_interp_model: bilinear"},
        {"window_pos_embed_bkg_spatial_size: [7, 7]",
         "window_pos_embed_bkg_spatial_size: [14, 14]"}};
    const std::string good = fixture_yaml();
    for (const auto& [from, to] : edits) {
        SCOPED_TRACE(to);
        const auto at = good.find(from);
        ASSERT_NE(at, std::string::npos) << good;
        test::TempDir tmp;
        expect_release_error(release_copy(tmp, std::string(good).replace(at, from.size(), to)),
                             "sam2.1_hiera_fixture.yaml: ");
    }
    test::TempDir tmp;
    const auto c = read_model_config(release_copy(tmp, good));
    EXPECT_EQ(c.stage_heads, (std::vector<std::int64_t>{1, 2, 4, 8}));
}

TEST(Sam2ReleaseConfig, APublishedSizeWithoutItsYamlTakesThePublishedSettings) {
    // The shapes of sam2.1_hiera_tiny.pt's image encoder (width 96, blocks 1, 2, 7, 2).
    detail::ShapeMap s;
    const std::string t = "image_encoder.trunk.";
    s[t + "patch_embed.proj.weight"] = {96, 3, 7, 7};
    s[t + "pos_embed"] = {1, 96, 7, 7};
    s[t + "pos_embed_window"] = {1, 96, 8, 8};
    const std::vector<std::int64_t> starts = {1, 3, 10}, widths = {192, 384, 768};
    for (int b = 0; b < 12; ++b) {
        s[str_cat(t, "blocks.", b, ".norm1.weight")] = {96};
        s[str_cat(t, "blocks.", b, ".mlp.layers.0.weight")] = {384, 96};
    }
    for (std::size_t i = 0; i < starts.size(); ++i) {
        s[str_cat(t, "blocks.", starts[i], ".proj.weight")] = {widths[i], widths[i] / 2};
    }
    for (int j = 0; j < 4; ++j) {
        s[str_cat("image_encoder.neck.convs.", j, ".conv.weight")] = {256, 768 >> j, 1, 1};
    }
    test::TempDir tmp;
    const auto j = detail::sam2_release_config(s, tmp / "sam2.1_hiera_tiny.pt");
    const auto& b = j.at("backbone_config");
    EXPECT_EQ(j.at("radprobe_settings_from"), "sam2.1_hiera_t.yaml");
    EXPECT_EQ(b.at("blocks_per_stage"), (std::vector<std::int64_t>{1, 2, 7, 2}));
    EXPECT_EQ(b.at("embed_dim_per_stage"), (std::vector<std::int64_t>{96, 192, 384, 768}));
    EXPECT_EQ(b.at("num_attention_heads_per_stage"), (std::vector<std::int64_t>{1, 2, 4, 8}));
    EXPECT_EQ(b.at("global_attention_blocks"), (std::vector<std::int64_t>{5, 7, 9}));
    EXPECT_EQ(b.at("window_size_per_stage"), (std::vector<std::int64_t>{8, 4, 14, 7}));
    EXPECT_EQ(b.at("image_size"), (std::vector<std::int64_t>{1024, 1024}));
    EXPECT_EQ(j.at("fpn_hidden_size"), 256);
    EXPECT_EQ(j.at("num_feature_levels"), 3);
    EXPECT_EQ(j.at("backbone_channel_list"), (std::vector<std::int64_t>{768, 384, 192, 96}));
    s.erase(t + "pos_embed_window");
    EXPECT_THROW(detail::sam2_release_config(s, tmp / "x.pt"), InputError);
    s.erase(t + "patch_embed.proj.weight");
    EXPECT_TRUE(detail::sam2_release_config(s, tmp / "x.pt").is_null());
}

TEST(Sam2ReleaseConfig, ReleaseKeysAreRenamedAsTransformersConverterDoes) {
    const auto name = [](const std::string& k) { return detail::sam2_release_key(k).names.at(0); };
    EXPECT_EQ(name("image_encoder.trunk.patch_embed.proj.weight"),
              "backbone.patch_embed.projection.weight");
    EXPECT_EQ(name("image_encoder.trunk.blocks.12.norm1.bias"),
              "backbone.blocks.12.layer_norm1.bias");
    EXPECT_EQ(name("image_encoder.trunk.blocks.3.norm2.weight"),
              "backbone.blocks.3.layer_norm2.weight");
    EXPECT_EQ(name("image_encoder.trunk.blocks.0.mlp.layers.1.bias"),
              "backbone.blocks.0.mlp.proj_out.bias");
    EXPECT_EQ(name("image_encoder.trunk.blocks.1.proj.weight"), "backbone.blocks.1.proj.weight");
    EXPECT_EQ(name("image_encoder.neck.convs.2.conv.bias"), "neck.convs.2.bias");
    EXPECT_EQ(name("sam_mask_decoder.iou_token.weight"), "sam_mask_decoder.iou_token.weight");
}

/// A config.json of `body` (a JSON object's members) in a fresh folder, read.
ModelConfig read_config_text(const test::TempDir& tmp, const std::string& body) {
    write_file_atomic(tmp / "config.json", "{" + body + "}");
    return read_model_config(tmp.path());
}

TEST(Sam2Config, AbsentKeysTakeTheHfDefaults) {
    test::TempDir tmp;
    const auto c = read_config_text(tmp, R"("model_type": "sam2_vision_model")");
    EXPECT_EQ(c.depths, (std::vector<std::int64_t>{1, 2, 7, 2}));
    EXPECT_EQ(c.stage_widths, (std::vector<std::int64_t>{96, 192, 384, 768}));
    EXPECT_EQ(c.hiera.windows, (std::vector<std::int64_t>{8, 4, 14, 7}));
    EXPECT_EQ(c.hiera.global_blocks, (std::vector<std::int64_t>{5, 7, 9}));
    EXPECT_EQ(c.hiera.fpn_hidden_size, 256);
    EXPECT_EQ(c.hidden_size, 768);
    EXPECT_EQ(c.patch_size, 32);
    EXPECT_EQ(c.image_size, 1024);
    const auto full = read_config_text(tmp, R"("model_type": "sam2_video")");
    EXPECT_EQ(full.model_type, "sam2_vision_model");
    EXPECT_EQ(full.composite_type, "sam2_video");
    EXPECT_EQ(full.stage_heads, (std::vector<std::int64_t>{1, 2, 4, 8}));
}

TEST(Sam2Config, InconsistentFieldsAreOneLineInputErrorsNamingTheKey) {
    test::TempDir tmp;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"("backbone_channel_list": [768, 384, 192, 96, 48])", "backbone_channel_list"},
        {R"("backbone_config": {"window_size_per_stage": [8, 4, 14]})", "window_size_per_stage"},
        {R"("backbone_config": {"num_attention_heads_per_stage": [1, 2, 5, 8]})",
         "num_attention_heads_per_stage[2]"},
        {R"("backbone_config": {"global_attention_blocks": [12]})", "global_attention_blocks"},
        {R"("backbone_config": {"patch_stride": [4, 2]})", "patch_stride"},
        {R"("backbone_config": {"model_type": "timm_wrapper"})", "sam2_hiera_det_model"},
        {R"("fpn_top_down_levels": [4])", "fpn_top_down_levels"},
        {R"("num_feature_levels": 0)", "num_feature_levels"},
    };
    for (const auto& [body, key] : cases) {
        try {
            (void)read_config_text(tmp, R"("model_type": "sam2_vision_model", )" + body);
            ADD_FAILURE() << "accepted " << body;
        } catch (const InputError& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find("config.json"), std::string::npos) << what;
            EXPECT_NE(what.find(key), std::string::npos) << what;
            EXPECT_EQ(what.find('\n'), std::string::npos) << what;
        }
    }
}

TEST(Sam2Cli, ModelsListsTheArchitecturesAndDescribesTheFolder) {
    const auto r = test::run_cli("models");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* type : {"  sam2_vision_model ", "  sam2 ", "  sam2_video "}) {
        EXPECT_NE(r.out.find(type), std::string::npos) << type << "\n" << r.out;
    }
    const auto d = test::run_cli("models '" + test::encoder_fixture("sam2_full").string() + "'");
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_NE(d.out.find("vision tower of a sam2 model: sam2_vision_model"), std::string::npos)
        << d.out;
    EXPECT_NE(d.out.find("window [8,4,6,3]"), std::string::npos) << d.out;
    const auto release =
        test::run_cli("models '" + test::encoder_fixture("sam2_release").string() + "'");
    ASSERT_EQ(release.exit_code, 0) << release.err;
    for (const char* line :
         {"SAM 2 release key names (image_encoder.trunk/neck), mapped to HF Sam2VisionModel's",
          "ignored 10 tensors outside the backbone",
          "torchvision (SAM 2 transform), resize 128x128"}) {
        EXPECT_NE(release.out.find(line), std::string::npos) << line << "\n" << release.out;
    }
}

}  // namespace
}  // namespace radprobe::encoders
