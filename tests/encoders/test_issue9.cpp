// Issue 9 additions: the open_clip/timm layout (BiomedCLIP), CLIP's projection as an extra
// output, and Swin/ResNet multi-scale pyramids for segmentation decoders. References:
// tests/golden/encoders/make_open_clip.py (open_clip v2.30.0 with timm v1.0.14 building, saving
// and running the tower; transformers v4.47.1 for CLIP's projection) and the HF fixtures.
// Tolerance: max-abs 1e-4 (the bar).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "parity.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

using preprocess::PreprocessConfig;
using preprocess::Resample;

namespace fs = std::filesystem;
using namespace parity;  // NOLINT: load, max_abs, kParity, map_to_tokens
using test::TempDir;

fs::path golden() {
    return test::source_dir() / "tests" / "golden" / "encoders";
}
fs::path open_clip_dir() {
    return golden() / "open_clip_vit";
}

/// Writes a state dict as safetensors (F32 / I64).
void write_state(const fs::path& path, const std::map<std::string, at::Tensor>& state) {
    std::vector<StTensorData> ts;
    for (const auto& [name, value] : state) {
        StTensorData t;
        t.name = name;
        t.shape.assign(value.sizes().begin(), value.sizes().end());
        const bool is_float = value.is_floating_point();
        const auto v = value.contiguous();
        t.dtype = is_float ? StDType::kF32 : StDType::kI64;
        t.bytes.resize(static_cast<std::size_t>(v.numel()) * (is_float ? 4 : 8));
        std::memcpy(t.bytes.data(), v.data_ptr(), t.bytes.size());
        ts.push_back(std::move(t));
    }
    write_file_atomic(path, serialize_safetensors(ts));
}

TEST(OpenClip, ConfigIsReadFromOpenClipConfigJson) {
    const auto c = read_model_config(open_clip_dir());
    EXPECT_EQ(c.model_type, "open_clip_timm_vit");
    EXPECT_EQ(c.config_file, "open_clip_config.json");
    EXPECT_EQ(c.hidden_size, 32);  // timm_model_kwargs override vit_base's 768
    EXPECT_EQ(c.num_hidden_layers, 2);
    EXPECT_EQ(c.num_attention_heads, 2);
    EXPECT_EQ(c.patch_size, 8);
    EXPECT_EQ(c.image_size, 32);
    EXPECT_EQ(c.intermediate_size, 64);
    EXPECT_EQ(c.projection_dim, 16);
    EXPECT_FALSE(c.projection_bias);
    EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-6);
    EXPECT_TRUE(c.has_cls_token);
}

TEST(OpenClip, BiomedClipPresetWithoutKwargsIsVitBase) {
    TempDir tmp;
    auto j = nlohmann::json::parse(read_file_text(open_clip_dir() / "open_clip_config.json"));
    j["model_cfg"]["vision_cfg"].erase("timm_model_kwargs");
    j["model_cfg"]["vision_cfg"]["image_size"] = 224;
    j["model_cfg"]["embed_dim"] = 512;
    write_file_atomic(tmp / "open_clip_config.json", j.dump());
    const auto c = read_model_config(tmp.path());
    EXPECT_EQ(c.hidden_size, 768);
    EXPECT_EQ(c.num_hidden_layers, 12);
    EXPECT_EQ(c.num_attention_heads, 12);
    EXPECT_EQ(c.patch_size, 16);
    EXPECT_EQ(c.native_grid(), 14);
    EXPECT_EQ(c.projection_dim, 512);

    j["model_cfg"]["vision_cfg"]["timm_pool"] = "avg";
    write_file_atomic(tmp / "open_clip_config.json", j.dump());
    EXPECT_THROW(read_model_config(tmp.path()), InputError);
    j["model_cfg"]["vision_cfg"]["timm_pool"] = "";
    j["model_cfg"]["vision_cfg"]["timm_model_name"] = "convnext_base";
    write_file_atomic(tmp / "open_clip_config.json", j.dump());
    EXPECT_THROW(read_model_config(tmp.path()), InputError);
}

TEST(OpenClip, MatchesTheReferenceForwardIncludingProjection) {
    set_threads(0);
    auto encoder = load_encoder(open_clip_dir());
    ForwardOptions opt;
    opt.all_layers = true;
    const auto out = encoder->forward(load(open_clip_dir() / "pixel_values.npy"), opt);
    const double lhs =
        max_abs(out.last_hidden_state, load(open_clip_dir() / "last_hidden_state.npy"));
    const auto ref_hs = load(open_clip_dir() / "hidden_states.npy");
    ASSERT_EQ(static_cast<std::int64_t>(out.layers.size()), ref_hs.size(0));
    double hs = 0;
    for (const auto& [i, t] : out.layers) {
        hs = std::max(hs, max_abs(t, ref_hs[i]));
    }
    ASSERT_TRUE(out.pooled.defined());
    ASSERT_TRUE(out.projected.defined());
    const double pooled = max_abs(out.pooled, load(open_clip_dir() / "pooled.npy"));
    const double projected = max_abs(out.projected, load(open_clip_dir() / "projected.npy"));
    std::printf(
        "open_clip_vit: max-abs last_hidden_state %.3g, hidden_states %.3g, pooled %.3g, "
        "projected %.3g\n",
        lhs, hs, pooled, projected);
    EXPECT_LE(lhs, kParity);
    EXPECT_LE(hs, kParity);
    EXPECT_LE(pooled, kParity);
    EXPECT_LE(projected, kParity);
    EXPECT_EQ(out.grid_h, 4);
    EXPECT_EQ(out.grid_w, 4);
    EXPECT_TRUE(out.tokens.cls.defined());
    EXPECT_EQ(out.tokens.patches.size(3), 32);

    const auto train = encoder->forward_train(load(open_clip_dir() / "pixel_values.npy"));
    EXPECT_LE(max_abs(train.projected.detach(), out.projected), 1e-5);
}

TEST(OpenClip, VisionKeysAreLoadedStrictlyAndTheTextTowerIsIgnored) {
    // The golden checkpoint holds text.* and logit_scale, which load_encoder ignores (the
    // parity test above loads it). A missing vision key is still an error naming it.
    auto state = load_safetensors_state(open_clip_dir() / "open_clip_model.safetensors");
    EXPECT_TRUE(state.count("logit_scale") == 1);
    state.erase("visual.head.proj.weight");
    TempDir tmp;
    fs::copy_file(open_clip_dir() / "open_clip_config.json", tmp / "open_clip_config.json");
    write_state(tmp / "open_clip_model.safetensors", state);
    try {
        load_encoder(tmp.path());
        FAIL() << "a missing visual key must be refused";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("visual.head.proj.weight"), std::string::npos)
            << e.what();
    }
}

TEST(OpenClip, PreprocessingComesFromOpenClipConfig) {
    const auto p = read_preprocess_config(open_clip_dir());
    EXPECT_EQ(p.processor_type, "open_clip");
    EXPECT_EQ(p.shortest_edge, 32);
    EXPECT_TRUE(p.do_center_crop);
    EXPECT_EQ(p.crop_height, 32);
    EXPECT_EQ(p.crop_width, 32);
    EXPECT_TRUE(p.torchvision_crop);
    EXPECT_EQ(p.resample, Resample::kBicubic);
    EXPECT_DOUBLE_EQ(p.image_mean[0], 0.48145466);
    EXPECT_DOUBLE_EQ(p.image_std[2], 0.27577711);
    // torchvision's centre crop rounds half to even: (39 - 32) / 2 = 3.5 -> 4, 2.5 -> 2; HF
    // floors (3 and 2).
    auto g = preprocess::processor_geometry(p, 32, 39);
    EXPECT_EQ(g.crop_left, 4);
    g = preprocess::processor_geometry(p, 37, 32);
    EXPECT_EQ(g.crop_top, 2);
    auto hf = p;
    hf.torchvision_crop = false;
    EXPECT_EQ(preprocess::processor_geometry(hf, 32, 39).crop_left, 3);
}

TEST(OpenClip, SavePretrainedRoundTrips) {
    auto encoder = load_encoder(open_clip_dir());
    TempDir tmp;
    encoder->save_pretrained(tmp / "saved");
    EXPECT_TRUE(fs::exists(tmp / "saved" / "open_clip_config.json"));
    auto reloaded = load_encoder(tmp / "saved");
    const auto x = load(open_clip_dir() / "pixel_values.npy");
    EXPECT_EQ(max_abs(encoder->forward(x).projected, reloaded->forward(x).projected), 0.0);
    EXPECT_EQ(encoder->layer_id("visual.trunk.pos_embed"), 0);
    EXPECT_EQ(encoder->layer_id("visual.trunk.blocks.1.attn.qkv.weight"), 2);
    EXPECT_EQ(encoder->layer_id("visual.trunk.norm.weight"), 3);
    EXPECT_EQ(encoder->layer_id("visual.head.proj.weight"), 3);
}

TEST(ClipProjection, WithProjectionCheckpointGivesImageEmbeds) {
    set_threads(0);
    const auto fixture = test::encoder_fixture("clip_vision");
    TempDir tmp;
    auto config = nlohmann::json::parse(read_file_text(fixture / "config.json"));
    config["architectures"] = {"CLIPVisionModelWithProjection"};
    config["projection_dim"] = 12;
    write_file_atomic(tmp / "config.json", config.dump(2));
    auto state = load_safetensors_state(fixture);
    state["visual_projection.weight"] = load(golden() / "clip_projection_weight.npy");
    write_state(tmp / "model.safetensors", state);

    auto encoder = load_encoder(tmp.path());
    EXPECT_EQ(encoder->config().projection_dim, 12);
    const auto out = encoder->forward(load(fixture / "pixel_values.npy"));
    ASSERT_TRUE(out.projected.defined());
    const double err = max_abs(out.projected, load(golden() / "clip_projection_image_embeds.npy"));
    std::printf("clip visual_projection: max-abs image_embeds %.3g\n", err);
    EXPECT_LE(err, kParity);
    EXPECT_LE(max_abs(out.pooled, load(fixture / "pooler_output.npy")), kParity);
    EXPECT_EQ(encoder->layer_id("visual_projection.weight"), encoder->num_blocks() + 1);

    // Without the WithProjection architecture the projection is set aside, as HF's
    // CLIPVisionModel.from_pretrained does with that checkpoint ...
    config.erase("architectures");
    write_file_atomic(tmp / "config.json", config.dump(2));
    const auto plain = load_encoder(tmp.path());
    EXPECT_EQ(plain->load_report().ignored, "visual_projection.* (1 tensor)");
    EXPECT_FALSE(plain->forward(load(fixture / "pixel_values.npy")).projected.defined());
    // ... and the plain CLIPVisionModel has no projected output.
    EXPECT_FALSE(
        load_encoder(fixture)->forward(load(fixture / "pixel_values.npy")).projected.defined());
}

TEST(Pyramid, SwinStagesBeforePatchMergingMatchHf) {
    set_threads(0);
    const auto dir = test::encoder_fixture("swin");
    auto encoder = load_encoder(dir);
    const auto x = load(dir / "pixel_values.npy");
    const auto out = encoder->forward(x);
    const auto& c = encoder->config();
    ASSERT_EQ(out.pyramid.size(), c.depths.size());
    double err = 0;
    for (std::size_t i = 0; i < out.pyramid.size(); ++i) {
        const auto& map = out.pyramid[i];
        const auto stride = c.embed_patch_size << i;
        EXPECT_EQ(map.size(0), x.size(0));
        EXPECT_EQ(map.size(1), c.stage_widths[i]);
        EXPECT_EQ(map.size(2), (x.size(2) + stride - 1) / stride);
        EXPECT_EQ(map.size(3), (x.size(3) + stride - 1) / stride);
        const auto ref =
            load(dir / ("stage_outputs_before_downsampling_" + std::to_string(i) + ".npy"));
        err = std::max(err, max_abs(map.flatten(2).transpose(1, 2), ref));
    }
    std::printf("swin pyramid: max-abs %.3g\n", err);
    EXPECT_LE(err, kParity);
}

TEST(Pyramid, ResnetStagesMatchHfAndViTsHaveNone) {
    const auto dir = test::encoder_fixture("resnet");
    auto encoder = load_encoder(dir);
    const auto out = encoder->forward(load(dir / "pixel_values.npy"));
    ASSERT_EQ(out.pyramid.size(), encoder->config().depths.size());
    for (std::size_t i = 0; i < out.pyramid.size(); ++i) {
        EXPECT_LE(max_abs(out.pyramid[i],
                          load(dir / ("hidden_states_" + std::to_string(i + 1) + ".npy"))),
                  kParity)
            << "stage " << i;
    }
    const auto vit = test::encoder_fixture("vit");
    EXPECT_TRUE(load_encoder(vit)->forward(load(vit / "pixel_values.npy")).pyramid.empty());
}

TEST(Models, ListsOpenClipAndDescribesItsDirectory) {
    const auto r = test::run_cli("models");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* type :
         {"dinov2", "dinov2_with_registers", "vit", "vit_mae", "clip_vision_model",
          "siglip_vision_model", "dinov3_vit", "resnet", "swin", "open_clip_timm_vit"}) {
        EXPECT_NE(r.out.find(std::string("  ") + type + " "), std::string::npos) << type;
    }
    const auto d = test::run_cli("models '" + open_clip_dir().string() + "'");
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_NE(d.out.find("open_clip_timm_vit"), std::string::npos) << d.out;
    EXPECT_NE(d.out.find("projection:     16"), std::string::npos) << d.out;
    EXPECT_NE(d.out.find("open_clip, resize shortest edge 32"), std::string::npos) << d.out;
}

}  // namespace
}  // namespace radprobe::encoders
