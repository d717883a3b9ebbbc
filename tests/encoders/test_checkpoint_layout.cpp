// Checkpoint key names → architecture key names (src/encoders/checkpoint_layout.hpp): prefixes
// found and stripped, heads set aside, the backbone kept strict, and errors that stay one short
// line while saying what the checkpoint looks like.

#include <gtest/gtest.h>

#include "../../src/encoders/checkpoint_layout.hpp"
#include "radprobe/core/error.hpp"

namespace radprobe::encoders::detail {
namespace {

/// A tiny HF-ViT-like key set: embeddings, `layers` encoder layers, final norm.
ShapeMap vit_keys(int layers, const std::string& prefix = "") {
    ShapeMap m;
    m[prefix + "embeddings.cls_token"] = {1, 1, 4};
    for (int i = 0; i < layers; ++i) {
        const std::string l = prefix + "encoder.layer." + std::to_string(i) + ".";
        m[l + "attention.attention.query.weight"] = {4, 4};
        m[l + "output.dense.bias"] = {4};
    }
    m[prefix + "layernorm.weight"] = {4};
    return m;
}

std::string error_of(const ShapeMap& expected, const ShapeMap& checkpoint) {
    try {
        resolve_layout(expected, checkpoint, "ckpt", "vit");
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

TEST(CheckpointLayout, StripsTheBaseModelPrefixAndSetsHeadsAside) {
    ShapeMap ckpt = vit_keys(2, "vit.");
    ckpt["classifier.weight"] = {3, 4};
    ckpt["classifier.bias"] = {3};
    const LayoutMatch m = resolve_layout(vit_keys(2), ckpt, "ckpt", "vit");
    EXPECT_EQ(m.prefix, "vit.");
    EXPECT_EQ(m.ignored, (std::vector<std::string>{"classifier.bias", "classifier.weight"}));
    EXPECT_EQ(m.source.at("layernorm.weight"), "vit.layernorm.weight");
    EXPECT_EQ(m.source.size(), vit_keys(2).size());
    EXPECT_EQ(summarize_keys(m.ignored), "classifier.* (2 tensors)");
}

TEST(CheckpointLayout, NestedPrefixesAndExactLayoutsBothResolve) {
    EXPECT_EQ(resolve_layout(vit_keys(1), vit_keys(1, "module.vit."), "c", "vit").prefix,
              "module.vit.");
    const LayoutMatch exact = resolve_layout(vit_keys(1), vit_keys(1), "c", "vit");
    EXPECT_EQ(exact.prefix, "");
    EXPECT_TRUE(exact.ignored.empty());
}

TEST(CheckpointLayout, AnExtraLayerInsideTheBackboneIsAnError) {
    const std::string e = error_of(vit_keys(1), vit_keys(2, "vit."));
    EXPECT_NE(e.find("2 unexpected inside the backbone (e.g. 'vit.encoder.layer.1."),
              std::string::npos)
        << e;
}

TEST(CheckpointLayout, MissingAndMisShapedKeysAreCountedAndQuoted) {
    ShapeMap ckpt = vit_keys(2);
    ckpt.erase("layernorm.weight");
    ckpt["embeddings.cls_token"] = {1, 1, 8};
    const std::string e = error_of(vit_keys(2), ckpt);
    EXPECT_NE(e.find("1 missing (e.g. 'layernorm.weight')"), std::string::npos) << e;
    EXPECT_NE(e.find("1 mis-shaped (e.g. 'embeddings.cls_token' [1,1,8] vs expected [1,1,4])"),
              std::string::npos)
        << e;
}

TEST(CheckpointLayout, ATimmCheckpointIsNamedInOneShortLine) {
    ShapeMap timm;
    for (int i = 0; i < 40; ++i) {
        const std::string b = "blocks." + std::to_string(i) + ".";
        timm[b + "attn.qkv.weight"] = {12, 4};
        timm[b + "attn.proj.weight"] = {4, 4};
        timm[b + "mlp.fc1.weight"] = {16, 4};
        timm[b + "norm1.weight"] = {4};
        timm[b + "norm2.weight"] = {4};
    }
    const std::string e = error_of(vit_keys(40), timm);
    EXPECT_NE(e.find("0 of 82 backbone keys found; 82 missing (e.g. "), std::string::npos) << e;
    EXPECT_NE(e.find("these are timm ViT key names (blocks.N.attn.qkv): a timm checkpoint"),
              std::string::npos)
        << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
    EXPECT_LT(e.size(), 600u) << e;
}

TEST(CheckpointLayout, ACommonPrefixThatDoesNotExplainTheKeysIsPointedOut) {
    ShapeMap ckpt;
    for (const auto& [k, shape] : vit_keys(1)) {
        ckpt["teacher.backbone_" + k] = shape;  // renamed modules: nothing matches
    }
    const std::string e = error_of(vit_keys(1), ckpt);
    EXPECT_NE(e.find("all 4 checkpoint keys carry the prefix 'teacher.'"), std::string::npos) << e;
}

TEST(CheckpointLayout, TheMaskTokenOfMaskedPretrainingIsTolerated) {
    ShapeMap ckpt = vit_keys(1, "vit.");
    ckpt["vit.embeddings.mask_token"] = {1, 1, 4};
    const LayoutMatch m = resolve_layout(vit_keys(1), ckpt, "c", "vit");
    EXPECT_EQ(m.ignored, (std::vector<std::string>{"vit.embeddings.mask_token"}));
}

TEST(CheckpointLayout, KeyStylesAreRecognised) {
    EXPECT_NE(recognise_key_style({"layer1.0.conv1.weight", "fc.weight"}).find("torchvision"),
              std::string::npos);
    EXPECT_NE(recognise_key_style({"visual.transformer.resblocks.0.attn.in_proj_weight"})
                  .find("open_clip / OpenAI CLIP"),
              std::string::npos);
    EXPECT_NE(recognise_key_style({"layers.0.blocks.0.attn.relative_position_bias_table"})
                  .find("timm Swin"),
              std::string::npos);
    EXPECT_EQ(recognise_key_style({"foo.bar"}), "");
    EXPECT_EQ(summarize_keys({"a.x", "a.y", "b", "c.z"}),
              "a.* (2 tensors), b (1 tensor), c.* (1 tensor)");
}

TEST(CheckpointLayout, TorchvisionResNetKeysGetTheirHfNames) {
    EXPECT_EQ(torchvision_resnet_key("conv1.weight"), "embedder.embedder.convolution.weight");
    EXPECT_EQ(torchvision_resnet_key("module.bn1.running_var"),
              "module.embedder.embedder.normalization.running_var");
    EXPECT_EQ(torchvision_resnet_key("layer3.5.conv2.weight"),
              "encoder.stages.2.layers.5.layer.1.convolution.weight");
    EXPECT_EQ(torchvision_resnet_key("layer1.0.bn3.num_batches_tracked"),
              "encoder.stages.0.layers.0.layer.2.normalization.num_batches_tracked");
    EXPECT_EQ(torchvision_resnet_key("layer4.0.downsample.0.weight"),
              "encoder.stages.3.layers.0.shortcut.convolution.weight");
    EXPECT_EQ(torchvision_resnet_key("layer4.0.downsample.1.bias"),
              "encoder.stages.3.layers.0.shortcut.normalization.bias");
    EXPECT_EQ(torchvision_resnet_key("fc.weight"), "fc.weight");
}

}  // namespace
}  // namespace radprobe::encoders::detail
