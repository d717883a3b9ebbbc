// Checkpoints in the publishers' own (non-Hugging-Face) layouts (issue 16): open_clip's ViT
// towers (OpenAI-style CLIP, CoCa with its attentional pooler) and BiomedCLIP's pickle, made by
// open_clip v2.30.0 (tests/golden/encoders/make_open_clip_towers.py); timm Swin as Ark+ ships it
// (tests/golden/encoders/make_timm_swin.py); training checkpoints whose weights sit under an
// entry (--checkpoint-key). radprobe must reproduce the publisher's outputs (max-abs 1e-4).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "parity.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

namespace fs = std::filesystem;
using namespace parity;  // NOLINT: load, max_abs, kParity
using test::TempDir;

fs::path published(const std::string& name) {
    return test::encoder_fixture("published") / name;
}

std::string load_error(const fs::path& dir, const LoadOptions& options = {}) {
    try {
        load_encoder(dir, options);
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

class OpenClipTowers : public ::testing::Test {
protected:
    static void SetUpTestSuite() { set_threads(0); }
};

/// Tokens, every hidden state, the pooled vector and the projection against open_clip.
void expect_open_clip_parity(const fs::path& dir) {
    auto encoder = load_encoder(dir);
    const ParityRun run = run_parity(*encoder, dir);
    const double pooled = max_abs(run.out.pooled, load(dir / "pooled.npy"));
    const double projected = max_abs(run.out.projected, load(dir / "projected.npy"));
    std::printf(
        "%s: max-abs last_hidden_state %.3g, hidden_states %.3g, pooled %.3g, "
        "projected %.3g\n",
        dir.filename().c_str(), run.last_hidden_state, run.hidden_states, pooled, projected);
    EXPECT_LE(run.last_hidden_state, kParity);
    EXPECT_LE(run.hidden_states, kParity);
    EXPECT_LE(pooled, kParity);
    EXPECT_LE(projected, kParity);
}

TEST_F(OpenClipTowers, OpenAIStyleVitMatchesOpenClip) {
    const auto dir = published("open_clip_vit_quickgelu");
    auto encoder = load_encoder(dir);
    const ModelConfig& c = encoder->config();
    EXPECT_EQ(c.model_type, "clip_vision_model");
    EXPECT_EQ(c.composite_type, "open_clip");
    EXPECT_EQ(c.hidden_act, "quick_gelu");
    EXPECT_EQ(c.num_attention_heads, 3);  // width 48 / head_width 16
    EXPECT_EQ(c.intermediate_size, 192);  // open_clip's default mlp_ratio 4
    EXPECT_EQ(c.projection_dim, 12);
    const LoadReport& r = encoder->load_report();
    EXPECT_EQ(r.format, "PyTorch pickle, zip format");
    EXPECT_NE(r.note().find("open_clip ViT key names"), std::string::npos) << r.note();
    // The text tower of the OpenAI layout sits at the top level: all of it is set aside.
    EXPECT_NE(r.ignored.find("transformer.*"), std::string::npos) << r.ignored;
    EXPECT_NE(r.ignored.find("logit_scale"), std::string::npos) << r.ignored;
    EXPECT_EQ(r.ignored.find("visual"), std::string::npos) << r.ignored;
    expect_open_clip_parity(dir);
}

TEST_F(OpenClipTowers, CocaImageTowerWithItsAttentionalPoolerMatchesOpenClip) {
    const auto dir = published("open_clip_coca");
    auto encoder = load_encoder(dir);
    const ModelConfig& c = encoder->config();
    EXPECT_EQ(c.hidden_act, "gelu");
    EXPECT_EQ(c.attn_pool_queries, 4);
    EXPECT_EQ(c.attn_pool_heads, 3);
    EXPECT_EQ(encoder->load_report().ignored,
              "logit_scale (1 tensor), text.* (18 tensors), text_decoder.* (29 tensors)");
    expect_open_clip_parity(dir);
}

TEST_F(OpenClipTowers, BiomedClipAsPublishedPickleMatchesItsSafetensorsTwin) {
    const auto dir = published("biomedclip_bin");
    ASSERT_TRUE(fs::exists(dir / "open_clip_pytorch_model.bin"));
    auto encoder = load_encoder(dir);
    EXPECT_EQ(encoder->config().model_type, "open_clip_timm_vit");
    EXPECT_EQ(encoder->load_report().files,
              std::vector<std::string>{"open_clip_pytorch_model.bin"});
    const auto out = encoder->forward(load(dir / "pixel_values.npy"));
    EXPECT_LE(max_abs(out.last_hidden_state, load(dir / "last_hidden_state.npy")), kParity);
    EXPECT_LE(max_abs(out.projected, load(dir / "projected.npy")), kParity);
}

TEST_F(OpenClipTowers, PreprocessingComesFromOpenClipConfig) {
    const auto pre = read_preprocess_config(published("open_clip_vit_quickgelu"));
    EXPECT_EQ(pre.processor_type, "open_clip");
    EXPECT_EQ(pre.shortest_edge, 32);
    EXPECT_EQ(pre.crop_height, 32);
    EXPECT_NEAR(pre.image_mean[0], 0.48145466, 1e-9);
}

TEST_F(OpenClipTowers, SavedTowerReloadsAsHuggingFaceClip) {
    TempDir tmp;
    auto encoder = load_encoder(published("open_clip_coca"));
    encoder->save_pretrained(tmp.path());
    EXPECT_TRUE(fs::exists(tmp / "config.json"));
    auto again = load_encoder(tmp.path());
    EXPECT_EQ(again->load_report().note(), "");  // HF names now: nothing renamed or set aside
    const auto x = load(published("open_clip_coca") / "pixel_values.npy");
    const auto a = encoder->forward(x);
    const auto b = again->forward(x);
    EXPECT_TRUE(a.last_hidden_state.equal(b.last_hidden_state));
    EXPECT_TRUE(a.projected.equal(b.projected));
}

TEST_F(OpenClipTowers, OptionsThatChangeTheComputationAreRefused) {
    for (const auto& [key, value] :
         std::vector<std::pair<std::string, nlohmann::json>>{{"ls_init_value", 0.1},
                                                             {"pool_type", "avg"},
                                                             {"attentional_pool", "parallel"},
                                                             {"final_ln_after_pool", true}}) {
        TempDir tmp;
        fs::copy(published("open_clip_vit_quickgelu"), tmp.path(),
                 fs::copy_options::recursive | fs::copy_options::overwrite_existing);
        auto j = nlohmann::json::parse(read_file_text(tmp / "open_clip_config.json"));
        j["model_cfg"]["vision_cfg"][key] = value;
        write_file_atomic(tmp / "open_clip_config.json", j.dump());
        const std::string e = load_error(tmp.path());
        EXPECT_NE(e.find("model_cfg.vision_cfg." + key), std::string::npos) << e;
        EXPECT_NE(e.find("open_clip_config.json"), std::string::npos) << e;
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    }
}

class TimmSwin : public ::testing::Test {
protected:
    static void SetUpTestSuite() { set_threads(0); }
};

/// The patch embedding, every stage before its patch merging, the final norm and the pooled
/// vector against timm (stage_out_i: N×L×C; radprobe's pyramid: N×C×H×W).
void expect_timm_swin_parity(Encoder& encoder, const fs::path& dir) {
    ForwardOptions opt;
    opt.all_layers = true;
    const auto out = encoder.forward(load(dir / "pixel_values.npy"), opt);
    double worst = max_abs(out.last_hidden_state, load(dir / "last_hidden_state.npy"));
    worst = std::max(worst, max_abs(out.layers.at(0), load(dir / "hidden_states_0.npy")));
    ASSERT_EQ(out.pyramid.size(), 3u);
    for (std::size_t i = 0; i < out.pyramid.size(); ++i) {
        const auto ref = load(dir / ("stage_out_" + std::to_string(i) + ".npy"));
        worst = std::max(worst, max_abs(map_to_tokens(out.pyramid[i]), ref));
    }
    const double pooled = max_abs(out.pooled, load(dir / "pooler_output.npy"));
    std::printf("%s: max-abs tokens/stages %.3g, pooled %.3g\n", dir.filename().c_str(), worst,
                pooled);
    EXPECT_LE(worst, kParity);
    EXPECT_LE(pooled, kParity);
}

// Ark+ ships one flat teacher state dict in timm 0.5.4's layout, with no config at all.
TEST_F(TimmSwin, ArkPlusFileAloneIsRecognisedAndMatchesTimm) {
    const auto dir = published("ark_swin");
    ASSERT_FALSE(fs::exists(dir / "config.json"));
    auto encoder = load_encoder(dir);
    const ModelConfig& c = encoder->config();
    EXPECT_EQ(c.model_type, "swin");
    EXPECT_EQ(c.weights_layout, "timm_swin");
    EXPECT_EQ(c.embedding_size, 8);
    EXPECT_EQ(c.depths, (std::vector<std::int64_t>{2, 2, 2}));
    EXPECT_EQ(c.stage_heads, (std::vector<std::int64_t>{2, 2, 4}));
    EXPECT_EQ(c.window_size, 4);
    EXPECT_EQ(c.image_size, 64);  // from the first shifted block's attention mask
    const LoadReport& r = encoder->load_report();
    EXPECT_EQ(r.ignored, "head.* (2 tensors), omni_heads.* (4 tensors), projector.* (4 tensors)");
    EXPECT_NE(r.note().find("timm Swin key names (timm < 0.9 layout)"), std::string::npos)
        << r.note();
    expect_timm_swin_parity(*encoder, dir);
    // Ark's evaluation transform: a square resize to the native size, ImageNet statistics.
    const auto pre = read_preprocess_config(dir);
    EXPECT_EQ(pre.resize_height, 64);
    EXPECT_EQ(pre.resize_width, 64);
    EXPECT_FALSE(pre.do_center_crop);
    EXPECT_NEAR(pre.image_mean[0], 0.485, 1e-9);
}

TEST_F(TimmSwin, CurrentTimmLayoutMatchesTimm) {
    const auto dir = published("timm_swin");
    auto encoder = load_encoder(dir);
    EXPECT_EQ(encoder->config().weights_layout, "timm_swin");
    EXPECT_EQ(encoder->config().image_size, 224);  // nothing in a timm >= 0.9 file says
    EXPECT_EQ(encoder->load_report().ignored, "head.* (2 tensors)");
    EXPECT_NE(encoder->load_report().note().find("timm >= 0.9 layout"), std::string::npos);
    expect_timm_swin_parity(*encoder, dir);
}

// Ark's training checkpoint: {'epoch', 'lossMIN', 'state_dict' (the student), 'teacher',
// 'optimizer', 'scheduler'}, both networks DataParallel-wrapped ('module.').
TEST_F(TimmSwin, TrainingCheckpointReadsTheTeacherUnlessAnotherEntryIsNamed) {
    const auto dir = published("ark_swin_teacher");
    auto teacher = load_encoder(dir);
    const LoadReport& r = teacher->load_report();
    EXPECT_EQ(r.entry, "teacher");
    EXPECT_TRUE(r.module_prefix_stripped);
    EXPECT_NE(r.note().find("weights read from the checkpoint's 'teacher' entry"),
              std::string::npos)
        << r.note();
    expect_timm_swin_parity(*teacher, dir);
    // The same from the folder's radprobe_load.json, and the student on request.
    TempDir tmp;
    fs::copy(dir, tmp.path(), fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    write_file_atomic(tmp / kLoadOptionsFile, R"({"checkpoint_key": "teacher"})");
    EXPECT_EQ(load_encoder(tmp.path())->load_report().entry, "teacher");
    auto student = load_encoder(dir, LoadOptions::with_key("state_dict"));
    EXPECT_EQ(student->load_report().entry, "state_dict");
    const auto x = load(dir / "pixel_values.npy");
    EXPECT_GT(max_abs(student->forward(x).last_hidden_state, teacher->forward(x).last_hidden_state),
              1e-3);
    // A key that is not there names the ones that are.
    const std::string e = load_error(dir, LoadOptions::with_key("ema"));
    EXPECT_NE(e.find("no top-level key \"ema\""), std::string::npos) << e;
    EXPECT_NE(e.find("\"teacher\""), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST_F(TimmSwin, ACheckpointKeyOnSafetensorsIsRefused) {
    const std::string e = load_error(test::encoder_fixture("published") / "vit_classifier",
                                     LoadOptions::with_key("teacher"));
    EXPECT_NE(e.find("applies to PyTorch pickles only"), std::string::npos) << e;
}

TEST_F(TimmSwin, SavedTimmSwinReloadsAsHuggingFaceSwin) {
    TempDir tmp;
    auto encoder = load_encoder(published("ark_swin"));
    encoder->save_pretrained(tmp.path());
    auto again = load_encoder(tmp.path());
    EXPECT_EQ(again->config().weights_layout, "");
    const auto x = load(published("ark_swin") / "pixel_values.npy");
    EXPECT_TRUE(encoder->forward(x).last_hidden_state.equal(again->forward(x).last_hidden_state));
}

// The same parity through the command line a user runs: `radprobe tokens` on every published
// fixture, its output against the publisher's last_hidden_state (HF N×C×H×W maps as tokens).
class TokensCli : public ::testing::TestWithParam<std::string> {};

TEST_P(TokensCli, MatchesThePublishersLastHiddenState) {
    const auto dir = published(GetParam());
    TempDir tmp;
    const auto r = test::run_cli("tokens --model '" + dir.string() + "' --pixel-values '" +
                                 (dir / "pixel_values.npy").string() + "' --out '" +
                                 (tmp / "t.npy").string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LE(test::count_lines(r.err), 1) << r.err;  // at most the one note line
    auto ref = load(dir / "last_hidden_state.npy");
    if (ref.dim() == 4) {
        ref = map_to_tokens(ref);
    }
    EXPECT_LE(max_abs(load(tmp / "t.npy"), ref), kParity);
}

INSTANTIATE_TEST_SUITE_P(
    Published, TokensCli,
    ::testing::Values("vit_classifier", "vit_classifier_bin", "vit_classifier_bin_sharded",
                      "vit_fp16_bin", "dinov2_classifier", "dinov2_bf16_sharded",
                      "dinov3_bf16_sharded", "vit_mae_pretraining", "clip_model", "siglip_model",
                      "swin_classifier", "resnet_classifier", "torchvision_resnet", "ark_swin",
                      "ark_swin_teacher", "timm_swin", "open_clip_vit_quickgelu", "open_clip_coca",
                      "biomedclip_bin"),
    [](const auto& info) { return info.param; });

}  // namespace
}  // namespace radprobe::encoders
