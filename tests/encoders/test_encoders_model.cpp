// Model tests: parity with the Hugging Face reference outputs on the shared fixtures (tolerance
// max-abs 1e-4, the issue's bar), interpolation at non-native sizes (golden values from
// tests/golden/encoders/make_golden.py), token layout, grey folding, sharded checkpoints and the
// loading errors.

#include <gtest/gtest.h>

#include <torch/torch.h>
#include <cstring>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "parity.hpp"
#include "radprobe/core/blas_kernel.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

namespace fs = std::filesystem;
using namespace parity;  // NOLINT: load, max_abs, kParity, map_to_tokens
using test::TempDir;

fs::path fixture(const std::string& model) {
    return test::encoder_fixture(model);
}
fs::path golden() {
    return test::source_dir() / "tests" / "golden" / "encoders";
}

class Parity : public ::testing::TestWithParam<std::string> {
protected:
    static void SetUpTestSuite() { set_threads(0); }
};

TEST_P(Parity, LastHiddenStateAndEveryHiddenStateMatchHf) {
    const auto dir = fixture(GetParam());
    auto encoder = load_encoder(dir);
    const ParityRun run = run_parity(*encoder, dir);
    const auto& out = run.out;
    const double lhs = run.last_hidden_state, hs = run.hidden_states;
    std::printf("%s: max-abs last_hidden_state %.3g, hidden_states %.3g\n", GetParam().c_str(), lhs,
                hs);
    EXPECT_LE(lhs, kParity);
    EXPECT_LE(hs, kParity);
    // pooler_output is the CLS token after the final norm.
    EXPECT_LE(max_abs(out.tokens.cls, load(dir / "pooler_output.npy")), kParity);
}

TEST_P(Parity, CliTokensWritesTheSameTensors) {
    TempDir tmp;
    const auto dir = fixture(GetParam());
    const auto r =
        test::run_cli("tokens --model '" + dir.string() + "' --pixel-values '" +
                      (dir / "pixel_values.npy").string() + "' --out '" + (tmp / "y.npy").string() +
                      "' --hidden-states '" + tmp.path().string() + "' --threads 2");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LE(max_abs(load(tmp / "y.npy"), load(dir / "last_hidden_state.npy")), kParity);
    EXPECT_LE(max_abs(load(tmp / "hidden_states.npy"), load(dir / "hidden_states.npy")), kParity);
}

TEST_P(Parity, NonNativeSizesInterpolatePositionsLikeHf) {
    const auto index = nlohmann::json::parse(read_file_text(golden() / "index.json"));
    auto encoder = load_encoder(fixture(GetParam()));
    int cases = 0;
    for (const auto& c : index["interp"]) {
        if (c["model"] != GetParam()) {
            continue;
        }
        const std::string prefix = c["prefix"];
        const auto out = encoder->forward(load(golden() / (prefix + "_pixel_values.npy")));
        const double err =
            max_abs(out.last_hidden_state, load(golden() / (prefix + "_last_hidden_state.npy")));
        std::printf("%s: max-abs %.3g (a wrong antialias setting moves it by %.3g)\n",
                    prefix.c_str(), err, c["antialias_flipped_max_abs_change"].get<double>());
        EXPECT_LE(err, kParity) << prefix;
        EXPECT_EQ(out.grid_h, c["height"].get<int>() / 14);
        EXPECT_EQ(out.grid_w, c["width"].get<int>() / 14);
        ++cases;
    }
    EXPECT_GE(cases, 1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity,
                         ::testing::Values("dinov2", "dinov2_swiglu", "dinov2_with_registers"));

TEST(Encoder, TokensAreSplitIntoClsRegistersAndPatchGrid) {
    set_threads(0);
    auto encoder = load_encoder(fixture("dinov2_with_registers"));
    ForwardOptions opt;
    opt.layers = {-1, 1};
    opt.normalize_layers = true;
    const auto x = load(fixture("dinov2_with_registers") / "pixel_values.npy");
    const auto out = encoder->forward(x, opt);
    const auto& lhs = out.last_hidden_state;
    EXPECT_EQ(out.tokens.cls.sizes(), (std::vector<std::int64_t>{2, 48}));
    EXPECT_EQ(out.tokens.registers.sizes(), (std::vector<std::int64_t>{2, 4, 48}));
    EXPECT_EQ(out.tokens.patches.sizes(), (std::vector<std::int64_t>{2, 4, 4, 48}));
    EXPECT_TRUE(out.tokens.cls.equal(lhs.select(1, 0)));
    EXPECT_TRUE(out.tokens.registers.equal(lhs.narrow(1, 1, 4)));
    // Patch (y=2, x=3) is token 1 + 4 + 2*4 + 3.
    EXPECT_TRUE(
        out.tokens.patches.select(1, 2).select(1, 3).equal(lhs.select(1, 1 + 4 + 2 * 4 + 3)));
    // -1 is layer 3 (the last); normalised, it is the last_hidden_state.
    ASSERT_EQ(out.layers.size(), 2u);
    EXPECT_TRUE(out.layers.count(3) && out.layers.count(1));
    EXPECT_LE(max_abs(out.layers.at(3), lhs), 1e-6);
    const auto ref = load(fixture("dinov2_with_registers") / "hidden_states.npy");
    const auto state = load_safetensors_state(fixture("dinov2_with_registers"));
    const auto normed =
        at::layer_norm(ref[1], {48}, state.at("layernorm.weight"), state.at("layernorm.bias"),
                       encoder->config().layer_norm_eps);
    EXPECT_LE(max_abs(out.layers.at(1), normed), kParity);
    EXPECT_GT(max_abs(ref[1], normed), 0.1);  // normalisation really happened
    opt.layers = {4};
    EXPECT_THROW(encoder->forward(x, opt), UsageError);
    EXPECT_THROW(encoder->forward(x.narrow(1, 0, 1)), InputError);
    EXPECT_THROW(encoder->forward(x.narrow(2, 0, 10)), InputError);
}

TEST(Encoder, GreyFoldingEqualsReplicatedNormalisedGrey) {
    set_threads(0);
    const auto dir = fixture("dinov2");
    const std::array<double, 3> mean{0.485, 0.456, 0.406};
    const std::array<double, 3> std{0.229, 0.224, 0.225};
    torch::manual_seed(7);
    const auto grey = torch::rand({2, 1, 70, 56});  // non-native size too
    const auto rgb = normalised_grey_rgb(grey, mean, std);
    auto encoder = load_encoder(dir);
    const auto expect = encoder->forward(rgb).last_hidden_state;
    encoder->fold_grayscale(mean, std);
    EXPECT_EQ(encoder->input_channels(), 1);
    const auto folded = encoder->forward(grey).last_hidden_state;
    const double err = max_abs(folded, expect);
    std::printf("folded vs replicated grey: max-abs %.3g\n", err);
    EXPECT_LE(err, 1e-4);
    // A wrong fold (no bias shift) would be far off: the test can fail.
    EXPECT_GT(max_abs(encoder->forward(grey + 0.5).last_hidden_state, expect), 1e-2);
    EXPECT_THROW(encoder->fold_grayscale(mean, std), InputError);
}

TEST(Encoder, PreprocessedFixtureImageGivesTheReferenceTokens) {
    TempDir tmp;
    const auto dir = fixture("dinov2");
    ASSERT_EQ(test::run_cli("preprocess --model '" + dir.string() + "' '" +
                            (dir / "preprocess_input.png").string() + "' --out '" +
                            (tmp / "x.npy").string() + "'")
                  .exit_code,
              0);
    const auto r =
        test::run_cli("tokens --model '" + dir.string() + "' --pixel-values '" +
                      (tmp / "x.npy").string() + "' --out '" + (tmp / "y.npy").string() + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LE(max_abs(load(tmp / "y.npy"), load(dir / "preprocess_last_hidden_state.npy")),
              kParity);
}

/// Copies a fixture's config and rewrites its weights with `edit` applied to the tensor list.
void write_variant(const fs::path& from, const fs::path& to,
                   const std::function<void(std::vector<StTensorData>&)>& edit) {
    fs::create_directories(to);
    fs::copy_file(from / "config.json", to / "config.json");
    const auto file = SafetensorsFile::open(from / "model.safetensors");
    std::vector<StTensorData> tensors;
    for (const auto& t : file.tensors()) {
        const auto b = file.bytes(t);
        tensors.push_back({t.name, t.dtype, t.shape, {b.begin(), b.end()}});
    }
    edit(tensors);
    write_file_atomic(to / "model.safetensors", serialize_safetensors(tensors));
}

TEST(Loading, StrictLoadingListsMissingUnexpectedAndMisShapedKeysTogether) {
    TempDir tmp;
    write_variant(fixture("dinov2"), tmp / "m", [](std::vector<StTensorData>& ts) {
        std::erase_if(ts, [](const auto& t) { return t.name == "encoder.layer.1.norm2.bias"; });
        ts.push_back(st_f32("encoder.layer.9.extra", {2}, {1, 2}));
        for (auto& t : ts) {
            if (t.name == "layernorm.weight") {
                t = st_f32("layernorm.weight", {2, 24}, std::vector<float>(48, 1.0f));
            }
        }
    });
    try {
        load_encoder(tmp / "m");
        FAIL() << "accepted a mismatched checkpoint";
    } catch (const InputError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("1 missing (e.g. 'encoder.layer.1.norm2.bias')"), std::string::npos)
            << msg;
        EXPECT_NE(msg.find("1 unexpected inside the backbone (e.g. 'encoder.layer.9.extra')"),
                  std::string::npos)
            << msg;
        EXPECT_NE(msg.find("'layernorm.weight' [2,24] vs expected [48]"), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos);
    }
}

TEST(Loading, HalfPrecisionWeightsAreConvertedToFloat32) {
    TempDir tmp;
    write_variant(fixture("dinov2"), tmp / "bf16", [](std::vector<StTensorData>& ts) {
        for (auto& t : ts) {  // round every weight to bfloat16 (truncate the low 16 bits)
            std::vector<std::uint8_t> b(t.bytes.size() / 2);
            for (std::size_t i = 0; i < b.size() / 2; ++i) {
                b[2 * i] = t.bytes[4 * i + 2];
                b[2 * i + 1] = t.bytes[4 * i + 3];
            }
            t.dtype = StDType::kBF16;
            t.bytes = b;
        }
    });
    const auto dir = fixture("dinov2");
    auto exact = load_encoder(dir);
    auto bf16 = load_encoder(tmp / "bf16");
    const auto x = load(dir / "pixel_values.npy");
    const double err =
        max_abs(bf16->forward(x).last_hidden_state, exact->forward(x).last_hidden_state);
    EXPECT_GT(err, 0.0);  // the weights really changed ...
    EXPECT_LT(err, 0.5);  // ... by bfloat16 rounding only
}

TEST(Loading, ShardedCheckpointLoadsLikeTheSingleFile) {
    TempDir tmp;
    const auto dir = fixture("dinov2");
    const fs::path m = tmp / "sharded";
    fs::create_directories(m);
    fs::copy_file(dir / "config.json", m / "config.json");
    const auto file = SafetensorsFile::open(dir / "model.safetensors");
    std::vector<StTensorData> shard[2];
    nlohmann::json map = nlohmann::json::object();
    for (std::size_t i = 0; i < file.tensors().size(); ++i) {
        const auto& t = file.tensors()[i];
        const auto b = file.bytes(t);
        const int s = t.name.rfind("encoder.layer.2", 0) == 0 || t.name.rfind("layernorm", 0) == 0;
        shard[s].push_back({t.name, t.dtype, t.shape, {b.begin(), b.end()}});
        map[t.name] = s ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
    }
    write_file_atomic(m / "model-00001-of-00002.safetensors", serialize_safetensors(shard[0]));
    write_file_atomic(m / "model-00002-of-00002.safetensors", serialize_safetensors(shard[1]));
    nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", map}};
    write_file_atomic(m / "model.safetensors.index.json", index.dump());
    const auto x = load(dir / "pixel_values.npy");
    auto sharded = load_encoder(m);
    EXPECT_TRUE(sharded->forward(x).last_hidden_state.equal(
        load_encoder(dir)->forward(x).last_hidden_state));

    // An index naming a tensor its shard does not hold is an error naming the tensor.
    map["embeddings.ghost"] = "model-00001-of-00002.safetensors";
    write_file_atomic(m / "model.safetensors.index.json",
                      nlohmann::json({{"weight_map", map}}).dump());
    try {
        load_encoder(m);
        FAIL() << "accepted an index with a tensor absent from its shard";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("embeddings.ghost"), std::string::npos) << e.what();
    }
    map["embeddings.ghost"] = "../elsewhere.safetensors";
    write_file_atomic(m / "model.safetensors.index.json",
                      nlohmann::json({{"weight_map", map}}).dump());
    EXPECT_THROW(load_encoder(m), InputError);
}

// A broken pickle is one line naming the file and the reason (no conversion advice: pickles are
// read). The published layouts (test_published_layouts.cpp) load a real pytorch_model.bin.
TEST(Loading, ABrokenPickleCheckpointIsOneLineNamingTheFile) {
    TempDir tmp;
    fs::copy_file(fixture("dinov2") / "config.json", tmp / "config.json");
    write_file_atomic(tmp / "pytorch_model.bin", "PK\x03\x04 not really a zip");
    const auto r = test::run_cli("models '" + tmp.path().string() + "'");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("pytorch_model.bin"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("safetensors.torch import save_file"), std::string::npos) << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    // Two candidate pickles and no standard name: the folder is ambiguous.
    fs::rename(tmp / "pytorch_model.bin", tmp / "a.pth");
    write_file_atomic(tmp / "b.pth.tar", "x");
    const auto two = test::run_cli("models '" + tmp.path().string() + "'");
    EXPECT_EQ(two.exit_code, 1);
    EXPECT_NE(two.err.find("2 PyTorch checkpoints (a.pth, b.pth.tar)"), std::string::npos)
        << two.err;
}

TEST(Cli, ModelsListsArchitecturesAndDescribesADirectory) {
    const auto list = test::run_cli("models");
    ASSERT_EQ(list.exit_code, 0);
    EXPECT_NE(list.out.find("dinov2_with_registers"), std::string::npos);
    const auto d = test::run_cli("models '" + fixture("dinov2_with_registers").string() + "'");
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_NE(d.out.find("hidden size:    48"), std::string::npos) << d.out;
    EXPECT_NE(d.out.find("[CLS, 4 registers, 16 patches row-major] = 21 tokens"), std::string::npos)
        << d.out;
    TempDir tmp;
    write_file_atomic(tmp / "config.json", R"({"model_type": "beit", "hidden_size": 48})");
    const auto unknown = test::run_cli("models '" + tmp.path().string() + "'");
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_NE(unknown.err.find("\"beit\" is not supported (known: aimv2, aimv2_vision_model, "
                               "clip, clip_vision_model, dinov2, dinov2_with_registers, "
                               "dinov3_vit, open_clip_timm_vit, resnet, sam2, sam2_video, "
                               "sam2_vision_model, siglip, siglip_vision_model, "
                               "swin, vit, vit_mae, vmamba)"),
              std::string::npos)
        << unknown.err;
}

TEST(Cli, TheCommandRunsTheOpenBlasKernelsOfTheCpusClass) {
    // OpenBLAS 0.3.21 runs its SSE3 (Prescott) kernels on CPUs newer than its table; the
    // command sets OPENBLAS_CORETYPE for itself when OpenBLAS fell below what the CPU has.
    const std::string calibrate =
        "models '" + fixture("dinov2").string() + "' --calibrate --batch 1 --seconds 0.01";
    const auto r = test::run_cli(calibrate, "-u OPENBLAS_CORETYPE");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto at = r.out.find("OpenBLAS core ");
    ASSERT_NE(at, std::string::npos) << r.out;
    const auto name_at = at + std::strlen("OpenBLAS core ");
    const std::string core = r.out.substr(name_at, r.out.find_first_of(" ,\n", name_at) - name_at);
    EXPECT_GT(openblas_core_level(core), 0) << r.out;
    EXPECT_EQ(better_openblas_core(core, cpu_openblas_core()), "") << r.out;
    if (better_openblas_core(openblas_core(), cpu_openblas_core()).empty()) {
        EXPECT_EQ(r.out.find("OPENBLAS_CORETYPE"), std::string::npos) << r.out;  // nothing to do
    }
    // A user's own choice stands.
    if (openblas_core_level(cpu_openblas_core()) >= 3) {
        const auto mine = test::run_cli(calibrate, "OPENBLAS_CORETYPE=Haswell");
        ASSERT_EQ(mine.exit_code, 0) << mine.err;
        EXPECT_NE(mine.out.find("OpenBLAS core Haswell (OPENBLAS_CORETYPE=Haswell)"),
                  std::string::npos)
            << mine.out;
    }
}

TEST(Cli, ModelsCalibratesThroughputPerBatchAndPicksTheBest) {
    const auto r = test::run_cli("models '" + fixture("dinov2").string() +
                                 "' --calibrate --size 56 --size 112 --batch 1 --batch 3 "
                                 "--seconds 0.05 --threads 1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("calibration (cpu, 1 threads, 0.05 s per batch size"), std::string::npos)
        << r.out;
    for (const char* size : {"  56 px, ", "  112 px, "}) {
        const auto at = r.out.find(size);
        ASSERT_NE(at, std::string::npos) << r.out;
        const auto line = r.out.substr(at, r.out.find('\n', at) - at);
        EXPECT_NE(line.find(" batch 1 "), std::string::npos) << line;
        EXPECT_NE(line.find("best: --batch "), std::string::npos) << line;
    }
    // The native size when none is given; a listing cannot be calibrated.
    const auto native = test::run_cli("models '" + fixture("dinov2").string() +
                                      "' --calibrate --batch 1 --seconds 0.01");
    ASSERT_EQ(native.exit_code, 0) << native.err;
    EXPECT_NE(native.out.find("  56 px, "), std::string::npos) << native.out;
    EXPECT_EQ(test::run_cli("models --calibrate").exit_code, 2);
}

/// An encoder whose forward takes batch² ms: images/s halve with each doubling of the batch.
class QuadraticEncoder final : public Encoder {
public:
    QuadraticEncoder() : Encoder(ModelConfig{}) {}
    torch::nn::Module& module() override { return module_; }
    EncoderOutput forward_train(const at::Tensor& x, const ForwardOptions& o) override {
        return forward(x, o);
    }
    void to(const c10::Device&) override {}
    std::int64_t input_channels() const override { return 3; }
    EncoderOutput forward(const at::Tensor& x, const ForwardOptions&) override {
        std::this_thread::sleep_for(std::chrono::milliseconds(x.size(0) * x.size(0)));
        return {};
    }
    void fold_grayscale(const std::array<double, 3>&, const std::array<double, 3>&) override {}
    std::int64_t num_parameters() const override { return 0; }
    double flops_per_image(std::int64_t, std::int64_t) const override { return 1e9; }

private:
    torch::nn::Module module_;
};

TEST(Calibrate, StopsAtTheFirstBatchMoreThanTenPercentSlowerThanTheBest) {
    QuadraticEncoder encoder;
    const auto rows = calibrate(encoder, 8, {1, 2, 4, 8}, 0.03);
    ASSERT_EQ(rows.size(), 2u) << "batch 2 runs at half the images/s of batch 1";
    EXPECT_EQ(rows[0].batch, 1);
    EXPECT_EQ(rows[1].batch, 2);
    EXPECT_GT(rows[0].images_per_second, 1.5 * rows[1].images_per_second);
    EXPECT_NEAR(rows[0].gflops_per_second, rows[0].images_per_second, 1e-9);  // 1 GFLOP/image
}

TEST(Calibrate, StopsWhenALargerBatchIsSlowerAndReportsGflops) {
    auto encoder = load_encoder(fixture("dinov2"));
    const auto rows = calibrate(*encoder, 56, {1, 2}, 0.02);
    ASSERT_GE(rows.size(), 1u);
    for (const auto& t : rows) {
        EXPECT_EQ(t.size, 56);
        EXPECT_GE(t.forwards, 1);
        EXPECT_GT(t.images_per_second, 0);
        EXPECT_NEAR(t.gflops_per_second,
                    encoder->flops_per_image(56, 56) * t.images_per_second / 1e9,
                    1e-9 * t.gflops_per_second);
    }
    if (rows.size() == 2) {  // the sweep went on: batch 2 was not 10% slower than batch 1
        EXPECT_GE(rows[1].images_per_second, 0.9 * rows[0].images_per_second);
    }
    EXPECT_THROW(calibrate(*encoder, 56, {0}, 0.01), UsageError);
}

}  // namespace
}  // namespace radprobe::encoders
