// Every issue-9 architecture extracts with every pooling mode (cls, mean, cls+mean, roi), and
// the stored rows equal a direct forward pass pooled independently; models without a CLS token
// refuse `cls` with a message naming the model. The fixtures have no preprocessor_config.json,
// so each test copies its fixture into a temporary directory and adds the processor config of
// the model's family (CLIPImageProcessor, SiglipImageProcessor, BitImageProcessor), or none where
// radprobe derives the publisher's transform (a lone VMamba .pth).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/imaging/decode.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

using preprocess::PreprocessConfig;
using preprocess::Resample;

namespace fs = std::filesystem;
using test::TempDir;

/// Extraction folds the grey input into the patch embedding; the direct forward here uses the
/// 3-channel normalised input: the same maths up to float rounding.
constexpr double kTolerance = 1e-4;

struct ArchCase {
    std::string name;  ///< fixture name, or "open_clip_vit" (tests/golden/encoders)
    std::string processor;
    bool fold;  ///< ResNet's padded stem cannot be folded
};

fs::path source_of(const std::string& name) {
    return name == "open_clip_vit"
               ? test::source_dir() / "tests" / "golden" / "encoders" / "open_clip_vit"
               : test::encoder_fixture(name);
}

/// A folder as its publisher ships it ("published/<fixture>"): used whole.
bool is_published(const ArchCase& c) {
    return c.name.starts_with("published/");
}

/// Copies the checkpoint and adds a preprocessor_config.json sized to the native input.
fs::path prepare_model(const TempDir& tmp, const ArchCase& c) {
    const auto dir = tmp / ("model-" + c.name.substr(c.name.rfind('/') + 1));
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(source_of(c.name))) {
        const auto f = e.path().filename().string();
        if (is_published(c) || f.find("config.json") != std::string::npos ||
            f.find(".safetensors") != std::string::npos || f.ends_with(".pth") ||
            f.ends_with(".pt") || f.ends_with(".yaml")) {
            fs::copy_file(e.path(), dir / f);
        }
    }
    const auto config = read_model_config(dir);
    const std::int64_t side = config.is_hierarchical() ? 64 : config.image_size;
    nlohmann::json pre;
    if (c.processor == "SiglipImageProcessor") {
        pre = {{"image_processor_type", c.processor},
               {"do_resize", true},
               {"size", {{"height", side}, {"width", side}}},
               {"resample", 3},
               {"do_rescale", true},
               {"rescale_factor", 1.0 / 255.0},
               {"do_normalize", true},
               {"image_mean", {0.5, 0.5, 0.5}},
               {"image_std", {0.5, 0.5, 0.5}}};
    } else if (!c.processor.empty()) {
        const bool clip = c.processor == "CLIPImageProcessor";
        pre = {{"image_processor_type", c.processor},
               {"do_resize", true},
               {"size", {{"shortest_edge", side}}},
               {"resample", 3},
               {"do_center_crop", true},
               {"crop_size", {{"height", side}, {"width", side}}},
               {"do_rescale", true},
               {"rescale_factor", 1.0 / 255.0},
               {"do_normalize", true},
               {"image_mean", clip ? std::vector<double>{0.48145466, 0.4578275, 0.40821073}
                                   : std::vector<double>{0.485, 0.456, 0.406}},
               {"image_std", clip ? std::vector<double>{0.26862954, 0.26130258, 0.27577711}
                                  : std::vector<double>{0.229, 0.224, 0.225}}};
    }
    if (!pre.is_null()) {
        write_file_atomic(dir / "preprocessor_config.json", pre.dump(2));
    }
    return dir;
}

/// Three nih-mini images, boxes on the first two.
fs::path make_manifest(const TempDir& tmp) {
    const auto labels = CsvTable::read(test::data_dir() / "nih-mini" / "labels.csv");
    std::string csv = "image,patient_id,split,abnormal\n";
    std::vector<std::string> paths;
    for (int i = 0; i < 3; ++i) {
        const auto& row = labels.rows()[static_cast<std::size_t>(i * 11)];
        paths.push_back((test::data_dir() / "nih-mini" / row[0]).string());
        csv += csv_line({paths.back(), "p" + std::to_string(i), "train", "0"}) + "\n";
    }
    write_file_atomic(tmp / "manifest.csv", csv);
    write_file_atomic(tmp / "boxes.csv",
                      "image,label,x0,y0,x1,y1\n" +
                          csv_line({paths[0], "nodule", "10", "12", "30", "40"}) + "\n" +
                          csv_line({paths[1], "nodule", "33", "5", "60", "27"}) + "\n");
    return tmp / "manifest.csv";
}

class ExtractEveryArchitecture : public ::testing::TestWithParam<ArchCase> {};

TEST_P(ExtractEveryArchitecture, EveryPoolingEqualsADirectForward) {
    const ArchCase c = GetParam();
    TempDir tmp;
    const auto model = prepare_model(tmp, c);
    const auto manifest = make_manifest(tmp);
    auto encoder = load_encoder(model);
    const bool has_cls = encoder->has_cls_token();

    features::ExtractOptions o;
    o.model_dir = model;
    o.manifest = manifest;
    o.store_root = tmp / "store";
    o.batch = 2;
    o.threads = 2;
    o.progress = false;
    o.fold_grayscale = c.fold;
    o.poolings = {features::Pooling::kMean, features::Pooling::kRoi};
    if (has_cls) {
        o.poolings.push_back(features::Pooling::kCls);
        o.poolings.push_back(features::Pooling::kClsMean);
    }
    const auto r = features::extract(o);
    ASSERT_TRUE(r.complete) << c.name;
    ASSERT_EQ(r.failures, 0) << c.name;
    const auto mean = features::read_embeddings(r.store_dir, "mean");
    const auto roi = features::read_embeddings(r.store_dir, "roi");
    ASSERT_EQ(mean.image_ids.size(), 3u);
    const std::int64_t d = mean.dim;
    EXPECT_EQ(d, encoder->config().hidden_size);
    EXPECT_EQ(roi.roi_valid[0], 1);
    EXPECT_EQ(roi.roi_valid[2], 1);  // no box: a control region (features' own tests)
    EXPECT_FALSE(std::isnan(roi.values[static_cast<std::size_t>(2 * d)]));

    // Direct: decode → preprocess (3 channels) → forward → pool here.
    const auto pc = read_preprocess_config(model);
    const auto rows = CsvTable::read(manifest).rows();
    const std::vector<std::vector<features::RegionBox>> boxes = {{{10, 12, 30, 40}},
                                                                 {{33, 5, 60, 27}}};
    double err = 0;
    for (std::size_t i = 0; i < 2; ++i) {
        const auto img = imaging::decode(rows[i][0]);
        const auto px = preprocess::to_input(img, preprocess::InputSpec::processor_input(pc, 3));
        const auto g = preprocess::processor_geometry(pc, img.rows, img.cols);
        const auto x =
            torch::from_blob(const_cast<float*>(px.data()), {1, 3, g.out_height, g.out_width})
                .clone();
        const auto out = encoder->forward(x);
        const auto patches = out.tokens.patches[0].reshape({-1, d}).contiguous();
        const auto m = patches.mean(0);
        const auto ig = features::patch_geometry(g, encoder->config().patch_size);
        const auto w = features::roi_weights_from_boxes(boxes[i], ig, "x");
        ASSERT_EQ(static_cast<std::int64_t>(w.size()), patches.size(0)) << c.name;
        // ROI pooling written out here: area-weighted mean of the patch tokens.
        const auto wt =
            torch::from_blob(const_cast<float*>(w.data()), {static_cast<std::int64_t>(w.size()), 1})
                .clone();
        const auto roi_ref = (patches * wt).sum(0) / wt.sum();
        for (std::int64_t k = 0; k < d; ++k) {
            const auto at = static_cast<std::size_t>(static_cast<std::int64_t>(i) * d + k);
            err = std::max(err, std::abs(mean.values[at] - m[k].item<double>()));
            err = std::max(err, std::abs(roi.values[at] - roi_ref[k].item<double>()));
        }
        if (has_cls) {
            const auto cls = features::read_embeddings(r.store_dir, "cls");
            const auto both = features::read_embeddings(r.store_dir, "cls+mean");
            ASSERT_EQ(both.dim, 2 * d);
            const auto t = out.tokens.cls[0];
            for (std::int64_t k = 0; k < d; ++k) {
                const auto at = static_cast<std::size_t>(static_cast<std::int64_t>(i) * d + k);
                const auto at2 = static_cast<std::size_t>(static_cast<std::int64_t>(i) * 2 * d);
                err = std::max(err, std::abs(cls.values[at] - t[k].item<double>()));
                err = std::max(err, std::abs(both.values[at2 + static_cast<std::size_t>(k)] -
                                             t[k].item<double>()));
                err = std::max(err, std::abs(both.values[at2 + static_cast<std::size_t>(d + k)] -
                                             m[k].item<double>()));
            }
        }
    }
    std::printf("%s: extract vs direct forward max-abs %.3g\n", c.name.c_str(), err);
    EXPECT_LE(err, kTolerance) << c.name;

    if (!has_cls) {
        features::ExtractOptions bad = o;
        bad.store_root = tmp / "store-cls";
        bad.poolings = {features::Pooling::kCls};
        try {
            features::extract(bad);
            FAIL() << c.name << ": cls pooling on a model without a CLS token must fail";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("no CLS token"), std::string::npos) << e.what();
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ExtractEveryArchitecture,
                         ::testing::Values(ArchCase{"vit", "ViTImageProcessor", true},
                                           ArchCase{"vit_mae", "ViTImageProcessor", true},
                                           ArchCase{"clip_vision", "CLIPImageProcessor", true},
                                           ArchCase{"siglip_vision", "SiglipImageProcessor", true},
                                           ArchCase{"dinov3_vit", "BitImageProcessor", true},
                                           ArchCase{"resnet", "BitImageProcessor", true},
                                           ArchCase{"swin", "BitImageProcessor", true},
                                           ArchCase{"open_clip_vit", "CLIPImageProcessor", true},
                                           ArchCase{"aimv2", "CLIPImageProcessor", true},
                                           ArchCase{"aimv2_native", "CLIPImageProcessor", true},
                                           ArchCase{"sam2_vision", "BitImageProcessor", true},
                                           // no processor: SAM 2's own transform
                                           ArchCase{"sam2_release", "", true},
                                           ArchCase{"vmamba", "BitImageProcessor", true},
                                           // no processor: VMamba's own evaluation transform
                                           ArchCase{"vmamba_ratio2_dstate4", "", true}),
                         [](const auto& info) { return info.param.name; });

// Folders exactly as their publishers ship them (issue 16): the preprocessing is the folder's
// own or the one radprobe derives for it (open_clip_config.json, Ark's and DINO's transforms).
INSTANTIATE_TEST_SUITE_P(
    Published, ExtractEveryArchitecture,
    ::testing::Values(ArchCase{"published/ark_swin", "", true},
                      ArchCase{"published/ark_swin_teacher", "", true},
                      ArchCase{"published/timm_swin", "", true},
                      ArchCase{"published/torchvision_resnet", "", true},
                      ArchCase{"published/open_clip_vit_quickgelu", "", true},
                      ArchCase{"published/open_clip_coca", "", true},
                      ArchCase{"published/biomedclip_bin", "", true},
                      ArchCase{"published/dinov2_bf16_sharded", "BitImageProcessor", true},
                      ArchCase{"published/vit_classifier_bin_sharded", "ViTImageProcessor", true}),
    [](const auto& info) { return info.param.name.substr(info.param.name.rfind('/') + 1); });

}  // namespace
}  // namespace radprobe::encoders
