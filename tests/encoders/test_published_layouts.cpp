// Checkpoints as Hugging Face publishes task and full multimodal models (issue 16): the backbone
// under its base-model prefix beside heads, decoders and text towers; nested CLIP/SigLIP configs;
// ViT classifiers without pooler. Each fixture in tests/data/encoders/published was saved and
// run by transformers v4.47.1 (tests/golden/encoders/make_published_layouts.py); radprobe must
// reproduce the backbone's outputs (max-abs 1e-4), say what it set aside, and stay strict about
// the backbone itself.

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
using namespace parity;  // NOLINT: load, max_abs, kParity, map_to_tokens
using test::TempDir;

fs::path published(const std::string& name) {
    return test::encoder_fixture("published") / name;
}

std::string load_error(const fs::path& dir) {
    try {
        load_encoder(dir);
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

struct Layout {
    std::string fixture;
    std::string prefix;   ///< the base-model prefix radprobe must strip
    std::string ignored;  ///< LoadReport::ignored, exactly
    bool pooled;          ///< compare EncoderOutput::pooled with pooler_output.npy
};

class PublishedVit : public ::testing::TestWithParam<Layout> {
protected:
    static void SetUpTestSuite() { set_threads(0); }
};

TEST_P(PublishedVit, BackboneMatchesTransformersAndTheReportSaysWhatWasSetAside) {
    const Layout c = GetParam();
    const auto dir = published(c.fixture);
    auto encoder = load_encoder(dir);
    const LoadReport& r = encoder->load_report();
    EXPECT_EQ(r.prefix, c.prefix);
    EXPECT_EQ(r.ignored, c.ignored);
    const ParityRun run = run_parity(*encoder, dir);
    const auto& out = run.out;
    const double lhs = run.last_hidden_state, hs = run.hidden_states;
    std::printf("%s: max-abs last_hidden_state %.3g, hidden_states %.3g\n", c.fixture.c_str(), lhs,
                hs);
    EXPECT_LE(lhs, kParity);
    EXPECT_LE(hs, kParity);
    if (c.pooled) {
        ASSERT_TRUE(out.pooled.defined());
        EXPECT_LE(max_abs(out.pooled, load(dir / "pooler_output.npy")), kParity);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Transformers, PublishedVit,
    ::testing::Values(
        Layout{"vit_classifier", "vit.", "classifier.* (2 tensors)", false},
        Layout{"vit_classifier_bin", "vit.", "classifier.* (2 tensors)", false},
        Layout{"vit_classifier_bin_sharded", "vit.", "classifier.* (2 tensors)", false},
        Layout{"vit_fp16_bin", "vit.", "classifier.* (2 tensors)", false},
        Layout{"dinov2_bf16_sharded", "", "", false}, Layout{"dinov3_bf16_sharded", "", "", true},
        Layout{"dinov2_classifier", "dinov2.", "classifier.* (2 tensors)", false},
        Layout{"vit_mae_pretraining", "vit.", "decoder.* (24 tensors)", false},
        Layout{"clip_model", "",
               "logit_scale (1 tensor), text_model.* (20 tensors), text_projection.* (1 tensor)",
               true},
        Layout{"siglip_model", "",
               "logit_bias (1 tensor), logit_scale (1 tensor), text_model.* (22 tensors)", true}),
    [](const auto& info) { return info.param.fixture; });

TEST(PublishedLayouts, ViTClassifierHasNoPoolerAndSaysSo) {
    auto encoder = load_encoder(published("vit_classifier"));
    EXPECT_TRUE(encoder->load_report().pooler_absent);
    const auto out = encoder->forward(load(published("vit_classifier") / "pixel_values.npy"));
    EXPECT_FALSE(out.pooled.defined());
    EXPECT_EQ(encoder->load_report().note(),
              "backbone read from under the prefix 'vit.'; ignored 2 tensors outside the backbone: "
              "classifier.* (2 tensors); no pooler in the checkpoint (no pooled output)");
    // Asking for the pooled output is then the error, naming the model.
    TempDir tmp;
    const auto r = test::run_cli(
        "tokens --model '" + published("vit_classifier").string() + "' --pixel-values '" +
        (published("vit_classifier") / "pixel_values.npy").string() + "' --out '" +
        (tmp / "t.npy").string() + "' --pooled '" + (tmp / "p.npy").string() + "'");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    // One note line (what loading set aside), then the one-line error naming the model.
    EXPECT_EQ(test::count_lines(r.err), 2) << r.err;
    EXPECT_EQ(r.err.rfind("note: model ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("ignored 2 tensors outside the backbone"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("vit_classifier (vit) has no pooled output"), std::string::npos) << r.err;
}

TEST(PublishedLayouts, PytorchModelBinIsReadWithoutConversion) {
    const auto dir = published("vit_classifier_bin");
    EXPECT_TRUE(fs::exists(dir / "pytorch_model.bin"));
    auto encoder = load_encoder(dir);
    EXPECT_EQ(encoder->load_report().format, "PyTorch pickle, zip format");
    EXPECT_EQ(encoder->load_report().files, std::vector<std::string>{"pytorch_model.bin"});
    // The same weights as the safetensors save of the same model.
    const auto a = load_safetensors_state(dir);
    const auto b = load_safetensors_state(published("vit_classifier"));
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, t] : a) {
        EXPECT_TRUE(t.equal(b.at(name))) << name;
    }
}

TEST(PublishedLayouts, ShardedPytorchModelBinIsReadShardByShard) {
    const auto dir = published("vit_classifier_bin_sharded");
    auto encoder = load_encoder(dir);
    EXPECT_EQ(encoder->load_report().format, "PyTorch pickle, zip format, 6 shards");
    EXPECT_EQ(encoder->load_report().files.size(), 6u);
    // A shard missing from the folder, or a tensor the index puts elsewhere: one-line errors.
    TempDir tmp;
    fs::copy(dir, tmp.path(), fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    fs::remove(tmp / "pytorch_model-00003-of-00006.bin");
    const std::string e = load_error(tmp.path());
    EXPECT_NE(e.find("pytorch_model-00003-of-00006.bin"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

// DINOv3 ships sharded bf16 safetensors: the blocks stay bf16 in memory (no float32 copy), the
// rest is float32, and fp32 compute gives what transformers gives on the upcast weights.
TEST(PublishedLayouts, Bf16CheckpointStaysBf16AndComputesInTheAskedDtype) {
    set_threads(0);
    const auto dir = published("dinov2_bf16_sharded");
    auto encoder = load_encoder(dir);
    const LoadReport& r = encoder->load_report();
    EXPECT_EQ(r.format, "safetensors, 3 shards");
    EXPECT_EQ(r.held_dtype, "blocks as bf16, the rest float32");
    for (const auto& item : encoder->module().named_parameters(true)) {
        const bool block = item.key().starts_with("encoder.layer.");
        EXPECT_EQ(item.value().scalar_type(), block ? torch::kBFloat16 : torch::kFloat32)
            << item.key();
    }
    std::int64_t numel = 0;
    for (const auto& p : encoder->module().parameters()) {
        numel += p.numel();
    }
    EXPECT_LT(r.held_bytes, numel * 4);  // less than a float32 copy
    const auto x = load(dir / "pixel_values.npy");
    const auto fp32 = load(dir / "last_hidden_state.npy");
    const auto bf16_torch = load(dir / "bf16_last_hidden_state.npy");
    const double torch_error = max_abs(bf16_torch, fp32);
    // The same weights held in float32 (what training asks for) give the same numbers.
    LoadOptions as_float;
    as_float.keep_half = false;
    auto full = load_encoder(dir, as_float);
    EXPECT_EQ(full->load_report().held_dtype, "float32");
    EXPECT_LE(max_abs(full->forward(x).last_hidden_state, fp32), kParity);
    LoadOptions o;
    o.compute_dtype = ComputeDType::kBFloat16;
    const auto out = load_encoder(dir, o)->forward(x);
    ASSERT_EQ(out.last_hidden_state.scalar_type(), torch::kFloat32);
    const double error = max_abs(out.last_hidden_state, fp32);
    std::printf("bf16 compute: max-abs vs fp32 %.3g (PyTorch's own bf16 forward: %.3g)\n", error,
                torch_error);
    EXPECT_GT(error, 1e-5);  // it did compute in bf16
    EXPECT_LE(error, 2 * torch_error);
    // DINOv3 as published (sharded bf16; RoPE on bf16 queries and keys) in bf16: no further from
    // the fp32 reference than transformers' own bf16 forward, within a factor of 2.
    const auto v3 = published("dinov3_bf16_sharded");
    const auto x3 = load(v3 / "pixel_values.npy");
    const auto ref3 = load(v3 / "last_hidden_state.npy");
    const double torch3 = max_abs(load(v3 / "bf16_last_hidden_state.npy"), ref3);
    const double e3 = max_abs(load_encoder(v3, o)->forward(x3).last_hidden_state, ref3);
    std::printf("dinov3 bf16 compute: max-abs vs fp32 %.3g (transformers' bf16 forward: %.3g)\n",
                e3, torch3);
    EXPECT_GT(e3, 1e-5);
    EXPECT_LE(e3, 2 * torch3);
    // fp16 on CPU: LibTorch has no CPU fp16 kernels; a usage error, not a crash.
    o.compute_dtype = ComputeDType::kFloat16;
    auto fp16 = load_encoder(dir, o);
    try {
        (void)fp16->forward(x);
        ADD_FAILURE() << "fp16 on CPU ran";
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("--dtype fp16 needs a CUDA device"), std::string::npos)
            << e.what();
    }
    EXPECT_NE(describe_model_dir(dir).find("(blocks as bf16, the rest float32)"),
              std::string::npos);
}

TEST(PublishedLayouts, DtypeFlagIsCheckedAndReachesTheForward) {
    TempDir tmp;
    const auto dir = published("dinov2_bf16_sharded");
    const std::string base = "tokens --model '" + dir.string() + "' --pixel-values '" +
                             (dir / "pixel_values.npy").string() + "' --out '" +
                             (tmp / "t.npy").string() + "'";
    const auto bad = test::run_cli(base + " --dtype fp64");
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
    EXPECT_NE(bad.err.find("--dtype must be fp32, bf16 or fp16"), std::string::npos) << bad.err;
    const auto ok = test::run_cli(base + " --dtype bf16");
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    const double error = max_abs(load(tmp / "t.npy"), load(dir / "last_hidden_state.npy"));
    EXPECT_GT(error, 1e-5);
    EXPECT_LT(error, 0.1);
}

/// A model folder whose pytorch_model.bin is a malicious pickle: loading fails with one line,
/// and the payload (creating a marker file) never runs.
TEST(PublishedLayouts, AMaliciousPytorchModelBinRunsNothing) {
    const fs::path corpus = test::data_dir() / "pickles" / "malicious";
    int tried = 0;
    for (const auto& entry : fs::directory_iterator(corpus)) {
        if (entry.path().extension() == ".json") {
            continue;
        }
        TempDir tmp;
        fs::copy_file(published("vit_classifier") / "config.json", tmp / "config.json");
        fs::copy_file(entry.path(), tmp / "pytorch_model.bin");
        const std::string e = load_error(tmp.path());
        EXPECT_FALSE(e.empty()) << entry.path();
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
        ++tried;
    }
    EXPECT_GE(tried, 15);
    for (const auto& entry : fs::directory_iterator("/tmp")) {
        EXPECT_EQ(entry.path().filename().string().rfind("radprobe_pwned_", 0), std::string::npos)
            << entry.path();
    }
}

TEST(PublishedLayouts, FullClipModelGivesTheImageEmbedsOfGetImageFeatures) {
    const auto dir = published("clip_model");
    auto encoder = load_encoder(dir);
    EXPECT_EQ(encoder->config().model_type, "clip_vision_model");
    EXPECT_EQ(encoder->config().composite_type, "clip");
    EXPECT_EQ(encoder->config().projection_dim, 12);
    EXPECT_EQ(encoder->config().hidden_act, "quick_gelu");  // the CLIPVisionConfig default
    const auto out = encoder->forward(load(dir / "pixel_values.npy"));
    ASSERT_TRUE(out.projected.defined());
    EXPECT_LE(max_abs(out.projected, load(dir / "image_embeds.npy")), kParity);
}

TEST(PublishedLayouts, SwinAndResNetClassifiersMatchTheirBackbones) {
    set_threads(0);
    for (const std::string name : {"swin_classifier", "resnet_classifier"}) {
        const auto dir = published(name);
        auto encoder = load_encoder(dir);
        EXPECT_EQ(encoder->load_report().prefix, name == "swin_classifier" ? "swin." : "resnet.");
        EXPECT_EQ(encoder->load_report().ignored, "classifier.* (2 tensors)");
        const ParityRun run = run_parity(*encoder, dir);
        EXPECT_LE(run.last_hidden_state, kParity) << name;
        EXPECT_LE(run.hidden_states, kParity) << name;
        EXPECT_EQ(run.out.layers.size(), 3u) << name;
        EXPECT_LE(max_abs(run.out.pooled, load(dir / "pooler_output.npy").flatten(1)), kParity)
            << name;
    }
}

// DINO ResNet-50 ships as a lone torchvision .pth: no config.json, no preprocessor config.
TEST(PublishedLayouts, ATorchvisionResNetPthAloneIsRecognisedAndMatchesTorchvision) {
    set_threads(0);
    const auto dir = published("torchvision_resnet");
    ASSERT_FALSE(fs::exists(dir / "config.json"));
    auto encoder = load_encoder(dir);
    const ModelConfig& c = encoder->config();
    EXPECT_EQ(c.model_type, "resnet");
    EXPECT_EQ(c.weights_layout, "torchvision_resnet");
    EXPECT_EQ(c.depths, (std::vector<std::int64_t>{1, 2, 1, 1}));
    EXPECT_EQ(c.stage_widths, (std::vector<std::int64_t>{32, 64, 128, 256}));
    EXPECT_EQ(c.embedding_size, 64);
    EXPECT_EQ(c.layer_type, "bottleneck");
    EXPECT_EQ(encoder->load_report().ignored, "fc.* (2 tensors)");
    EXPECT_NE(encoder->load_report().note().find("torchvision ResNet key names"),
              std::string::npos);
    const ParityRun run = run_parity(*encoder, dir);
    const double lhs = run.last_hidden_state, hs = run.hidden_states;
    ASSERT_EQ(run.out.layers.size(), 5u);
    const double pooled = max_abs(run.out.pooled, load(dir / "pooler_output.npy"));
    std::printf("torchvision resnet: max-abs last_hidden_state %.3g, stages %.3g, pooled %.3g\n",
                lhs, hs, pooled);
    EXPECT_LE(lhs, kParity);
    EXPECT_LE(hs, kParity);
    EXPECT_LE(pooled, kParity);
    // Preprocessing: DINO's evaluation transform.
    const auto pre = read_preprocess_config(dir);
    EXPECT_EQ(pre.shortest_edge, 256);
    EXPECT_EQ(pre.crop_height, 224);
    EXPECT_EQ(pre.resample, preprocess::Resample::kBicubic);
    EXPECT_NE(describe_model_dir(dir).find("inferred from the weights (no config.json): resnet"),
              std::string::npos);
}

TEST(PublishedLayouts, AnUnrecognisedCheckpointWithoutConfigSaysSo) {
    TempDir tmp;
    fs::copy_file(test::data_dir() / "pickles" / "state_zip.pt", tmp / "weights.pth");
    const std::string e = load_error(tmp.path());
    EXPECT_NE(e.find(": no config.json, and the "), std::string::npos) << e;
    EXPECT_NE(e.find("tensors of weights.pth are not a layout radprobe recognises without one"),
              std::string::npos)
        << e;
}

/// A copy of a published fixture with config.json edited.
fs::path edited_copy(const TempDir& tmp, const std::string& name, const nlohmann::json& patch) {
    const fs::path dst = tmp / name;
    fs::copy(published(name), dst);
    auto config = nlohmann::json::parse(read_file_text(dst / "config.json"));
    config.merge_patch(patch);
    write_file_atomic(dst / "config.json", config.dump());
    return dst;
}

TEST(PublishedLayouts, TheBackboneStaysStrict) {
    TempDir tmp;
    // One layer fewer than the checkpoint holds: the extra layer is inside the backbone.
    const auto fewer = load_error(edited_copy(tmp, "vit_classifier", {{"num_hidden_layers", 1}}));
    EXPECT_NE(fewer.find("16 unexpected inside the backbone (e.g. 'vit.encoder.layer.1."),
              std::string::npos)
        << fewer;
    // A wider model than the checkpoint: every backbone tensor is mis-shaped.
    const auto wide = load_error(edited_copy(tmp, "dinov2_classifier", {{"hidden_size", 64}}));
    EXPECT_NE(wide.find("mis-shaped (e.g. "), std::string::npos) << wide;
    EXPECT_NE(wide.find("[32] vs expected [64]"), std::string::npos) << wide;
    for (const auto& e : {fewer, wide}) {
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
        EXPECT_LT(e.size(), 800u) << e;
    }
}

TEST(PublishedLayouts, AnotherFamilysCheckpointIsNamed) {
    TempDir tmp;
    // CLIP weights under a ViT config: none of the ViT keys is there.
    const fs::path dir = tmp / "mixed";
    fs::copy(published("clip_model"), dir);
    fs::copy_file(published("vit_classifier") / "config.json", dir / "config.json",
                  fs::copy_options::overwrite_existing);
    const auto e = load_error(dir);
    EXPECT_NE(e.find("0 of "), std::string::npos) << e;
    EXPECT_NE(e.find("Hugging Face CLIP/SigLIP key names"), std::string::npos) << e;
    EXPECT_LT(e.size(), 800u) << e;
}

TEST(PublishedLayouts, ModelsReportsFormatLayoutAndMemory) {
    const std::string text = describe_model_dir(published("vit_mae_pretraining"));
    EXPECT_NE(text.find("weights:        model.safetensors (safetensors; F32 x62)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("under the prefix 'vit.'"), std::string::npos) << text;
    EXPECT_NE(text.find("decoder.* (24 tensors)"), std::string::npos) << text;
    EXPECT_NE(text.find("in memory (float32)"), std::string::npos) << text;
    const std::string clip = describe_model_dir(published("clip_model"));
    EXPECT_NE(clip.find("vision tower of a clip model: clip_vision_model"), std::string::npos)
        << clip;
}

}  // namespace
}  // namespace radprobe::encoders
