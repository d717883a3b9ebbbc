// Preprocessing: PIL's resampling reproduced exactly (golden values from Pillow, see
// tests/golden/encoders/make_golden.py), and the whole HF BitImageProcessor pipeline against the
// shared fixture (PNG → pixel_values).

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/preprocess/preprocess.hpp"
#include "radprobe/imaging/decode.hpp"
#include "test_support.hpp"

namespace radprobe::preprocess {
namespace {

using encoders::read_model_config;
using encoders::read_preprocess_config;

using test::TempDir;

std::filesystem::path golden() {
    return test::source_dir() / "tests" / "golden" / "encoders";
}
std::filesystem::path fixture(const std::string& model) {
    return test::data_dir() / "encoders" / model;
}

TEST(PilResize, MatchesPillowExactlyForEveryGoldenCase) {
    const NpyArray src = read_npy(golden() / "pil_src.npy");
    ASSERT_EQ(src.dtype, DType::kUInt8);
    const auto index = nlohmann::json::parse(read_file_text(golden() / "index.json"));
    int cases = 0;
    for (const auto& c : index["pil"]) {
        const NpyArray ref = read_npy(golden() / c["file"].get<std::string>());
        const std::string name = c["filter"];
        const Resample filter = name == "bicubic"    ? Resample::kBicubic
                                : name == "bilinear" ? Resample::kBilinear
                                                     : Resample::kLanczos;
        const auto out = pil_resize_u8(src.as<std::uint8_t>(), src.shape[0], src.shape[1],
                                       c["rows"], c["cols"], filter);
        ASSERT_EQ(out.size(), ref.data.size());
        int differing = 0;
        for (std::size_t i = 0; i < out.size(); ++i) {
            differing += out[i] != ref.data[i];
        }
        EXPECT_EQ(differing, 0) << c["file"];  // tolerance: bit-exact
        ++cases;
    }
    EXPECT_EQ(cases, 5);
}

TEST(Preprocess, FixturePngMatchesHfBitImageProcessor) {
    const auto dir = fixture("dinov2");
    const PreprocessConfig config = read_preprocess_config(dir);
    EXPECT_EQ(config.shortest_edge, 64);
    EXPECT_EQ(config.crop_height, 56);
    const imaging::Image image = imaging::decode(dir / "preprocess_input.png");
    const auto grey = quantise_u8(image.pixels.data(), image.pixels.size());
    std::vector<std::uint8_t> resized;
    resize_and_crop_u8(grey, image.rows, image.cols, config, &resized);
    // The resized 8-bit intermediate (H×W×3, before the crop): bit-exact with Pillow.
    const NpyArray ref_resized = read_npy(dir / "preprocess_resized_uint8.npy");
    ASSERT_EQ(ref_resized.shape, (std::vector<std::int64_t>{64, 73, 3}));
    ASSERT_EQ(resized.size() * 3, ref_resized.data.size());
    int max_diff = 0;
    for (std::size_t i = 0; i < resized.size(); ++i) {
        for (int c = 0; c < 3; ++c) {
            max_diff =
                std::max(max_diff, std::abs(int(resized[i]) - int(ref_resized.data[3 * i + c])));
        }
    }
    EXPECT_EQ(max_diff, 0);
    // pixel_values: the issue's bar is 2e-2 (1-LSB resize differences); achieved: exact.
    const auto values = preprocess_grey_u8(grey, image.rows, image.cols, config, 3);
    const NpyArray ref = read_npy(dir / "preprocess_pixel_values.npy");
    ASSERT_EQ(ref.shape, (std::vector<std::int64_t>{1, 3, 56, 56}));
    const auto expect = ref.to_float();
    ASSERT_EQ(values.size(), expect.size());
    double max_abs = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        max_abs = std::max(max_abs, std::fabs(double(values[i]) - expect[i]));
    }
    std::printf("preprocess max-abs vs HF BitImageProcessor: %.3g\n", max_abs);
    EXPECT_LE(max_abs, 1e-6);
}

TEST(Preprocess, CliWritesPixelValuesAndTheResizedIntermediate) {
    TempDir tmp;
    const auto dir = fixture("dinov2");
    const auto r = test::run_cli("preprocess --model '" + dir.string() + "' '" +
                                 (dir / "preprocess_input.png").string() + "' --out '" +
                                 (tmp / "x.npy").string() + "' --save-resized '" +
                                 (tmp / "r.npy").string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const NpyArray x = read_npy(tmp / "x.npy");
    const NpyArray ref = read_npy(dir / "preprocess_pixel_values.npy");
    EXPECT_EQ(x.shape, ref.shape);
    EXPECT_EQ(x.data, ref.data);
    EXPECT_EQ(read_npy(tmp / "r.npy").data, read_npy(dir / "preprocess_resized_uint8.npy").data);
    // --resize and --channels 1: shortest edge N, N×N crop, values in [0,1].
    const auto r2 = test::run_cli("preprocess --model '" + dir.string() + "' '" +
                                  (dir / "preprocess_input.png").string() + "' --out '" +
                                  (tmp / "y.npy").string() + "' --resize 42 --channels 1");
    ASSERT_EQ(r2.exit_code, 0) << r2.err;
    const NpyArray y = read_npy(tmp / "y.npy");
    EXPECT_EQ(y.shape, (std::vector<std::int64_t>{1, 1, 42, 42}));
    for (float v : y.to_float()) {
        ASSERT_TRUE(v >= 0.0f && v <= 1.0f);
    }
    const auto bad = test::run_cli("preprocess --model '" + dir.string() + "' '" +
                                   (dir / "preprocess_input.png").string() + "' --out '" +
                                   (tmp / "z.npy").string() + "' --channels 2");
    EXPECT_EQ(bad.exit_code, 2);
}

TEST(Preprocess, GeometryFollowsHfRules) {
    PreprocessConfig c;
    c.shortest_edge = 256;
    c.do_center_crop = true;
    c.crop_height = c.crop_width = 224;
    // Landscape: the short side (rows) becomes 256, the long side int(256 * 300 / 260) = 295.
    auto g = processor_geometry(c, 260, 300);
    EXPECT_EQ(g.resized_height, 256);
    EXPECT_EQ(g.resized_width, 295);
    EXPECT_EQ(g.crop_top, 16);
    EXPECT_EQ(g.crop_left, 35);  // (295 - 224) // 2
    // Portrait.
    g = processor_geometry(c, 500, 400);
    EXPECT_EQ(g.resized_width, 256);
    EXPECT_EQ(g.resized_height, 320);
    // A crop larger than the image pads (HF centre_crop): top = -ceil((224 - 100) / 2).
    c.shortest_edge = 100;
    g = processor_geometry(c, 100, 100);
    EXPECT_EQ(g.crop_top, -62);
    const std::vector<std::uint8_t> white(100 * 100, 255);
    const auto out = resize_and_crop_u8(white, 100, 100, c, nullptr);
    EXPECT_EQ(out[0], 0);                // padding
    EXPECT_EQ(out[62 * 224 + 62], 255);  // first image pixel
    EXPECT_EQ(out[61 * 224 + 62], 0);
}

TEST(ModelConfig, UnknownModelTypeListsTheKnownOnes) {
    TempDir tmp;
    write_file_atomic(tmp / "config.json", R"({"model_type": "llama"})");
    try {
        read_model_config(tmp.path());
        FAIL() << "accepted an unknown model_type";
    } catch (const InputError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("llama"), std::string::npos) << msg;
        EXPECT_NE(msg.find("dinov2, dinov2_with_registers"), std::string::npos) << msg;
        EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
    }
    write_file_atomic(tmp / "config.json", R"({"model_type": "dinov2", "hidden_size": 48})");
    try {
        read_model_config(tmp.path());
        FAIL() << "accepted a config without num_hidden_layers";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("num_hidden_layers"), std::string::npos) << e.what();
    }
}

TEST(Preprocess, ClipAndSiglipProcessorsMatchTheirPublishedSemantics) {
    // Golden: tests/golden/encoders/make_processors.py (transformers v4.47.1's own
    // CLIPImageProcessor / SiglipImageProcessor). Tolerance: 1e-6 (float32 rounding of the same
    // operations; the 8-bit resize is bit-exact).
    const auto dir = golden() / "processors";
    const auto index = nlohmann::json::parse(read_file_text(dir / "index.json"));
    int cases = 0;
    for (const auto& name_json : index["cases"]) {
        const std::string name = name_json;
        const PreprocessConfig config = read_preprocess_config(dir / (name + ".json"));
        if (name.rfind("siglip", 0) == 0) {
            EXPECT_FALSE(config.do_center_crop) << name;
            EXPECT_GT(config.resize_height, 0) << name;
            EXPECT_DOUBLE_EQ(config.image_mean[1], 0.5) << name;
        } else {
            EXPECT_TRUE(config.do_center_crop) << name;
            EXPECT_GT(config.shortest_edge, 0) << name;
        }
        for (const auto& shape : index["shapes"]) {
            const std::int64_t h = shape[0], w = shape[1];
            const std::string tag = std::to_string(h) + "x" + std::to_string(w);
            const NpyArray input = read_npy(dir / ("input_" + tag + ".npy"));
            ASSERT_EQ(input.dtype, DType::kUInt8);
            const std::vector<std::uint8_t> grey(input.data.begin(), input.data.end());
            const auto values = preprocess_grey_u8(grey, h, w, config, 3);
            const NpyArray ref = read_npy(dir / (name + "_" + tag + ".npy"));
            const auto out_hw = config.output_size(h, w);
            ASSERT_EQ(ref.shape, (std::vector<std::int64_t>{1, 3, out_hw[0], out_hw[1]}))
                << name << " " << tag;
            const auto expect = ref.to_float();
            ASSERT_EQ(values.size(), expect.size()) << name << " " << tag;
            double max_abs = 0;
            for (std::size_t i = 0; i < values.size(); ++i) {
                max_abs = std::max(max_abs, std::abs(double(values[i]) - double(expect[i])));
            }
            EXPECT_LE(max_abs, 1e-6) << name << " " << tag;
            ++cases;
        }
    }
    EXPECT_EQ(cases, 12);
}

}  // namespace
}  // namespace radprobe::preprocess
