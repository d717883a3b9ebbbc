// The CNN baseline exported as a Hugging Face ResNetModel directory: load_encoder() reads it,
// and its pooled output through the exported classifier reproduces the baseline's own test
// logits; `radprobe extract` runs on it through its preprocessor_config.json.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "radprobe/core/csv.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/dataset/manifest.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/preprocess/preprocess.hpp"
#include "radprobe/features/embeddings.hpp"
#include "radprobe/imaging/decode.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using radprobe::test::run_cli;

namespace {

struct Baseline {
    std::vector<std::string> ids;
    std::vector<double> scores;
    std::vector<double> w;
    double b = 0;
};

Baseline read_baseline(const fs::path& out) {
    Baseline r;
    const auto csv = radprobe::CsvTable::read(out / "predictions_cardiomegaly.csv");
    const auto image = csv.column("image");
    for (const auto& row : csv.rows()) {
        r.ids.push_back(row[image]);
    }
    r.scores = csv.numeric_column("score");
    const auto head = nlohmann::json::parse(
        radprobe::read_file_text(out / "encoder/radprobe_baseline_head.json"));
    r.w = head.at("weight").get<std::vector<double>>();
    r.b = head.at("bias").get<double>();
    return r;
}

double logit(const float* pooled, const Baseline& b) {
    double s = b.b;
    for (std::size_t k = 0; k < b.w.size(); ++k) {
        s += pooled[k] * b.w[k];
    }
    return s;
}

}  // namespace

TEST(BaselineEncoder, ExportedResNetReproducesTheBaselinesLogitsAndExtracts) {
    radprobe::test::TempDir dir;
    const auto synth =
        run_cli("synth --out '" + (dir / "ph").string() + "' --n 60 --size 64 --seed 3");
    ASSERT_EQ(synth.exit_code, 0) << synth.err;
    const fs::path manifest_path = dir / "ph/manifest.csv";
    const fs::path out = dir / "baseline";
    const auto base = run_cli("baseline --task cls --manifest '" + manifest_path.string() +
                              "' --label cardiomegaly --size 64 --width 8 --blocks 1,1,1 "
                              "--epochs 2 --batch 8 --seed 1 --n-boot 100 --out '" +
                              out.string() + "'");
    ASSERT_EQ(base.exit_code, 0) << base.err;
    ASSERT_TRUE(fs::exists(out / "encoder/model.safetensors"));
    EXPECT_FALSE(fs::exists(out / "encoder.partial"));
    const auto metrics = nlohmann::json::parse(radprobe::read_file_text(out / "metrics.json"));
    EXPECT_EQ(metrics.at("encoder_dir").get<std::string>(), (out / "encoder").string());
    const Baseline b = read_baseline(out);
    ASSERT_GE(b.ids.size(), 5u);
    ASSERT_EQ(b.w.size(), 32u);  // width 8 · 2^2

    // The baseline's own input: the decoded display image at 64 px (no resize), (x − 0.5)·4,
    // replicated to the 3 channels of the exported stem.
    const auto manifest = radprobe::dataset::Manifest::load(manifest_path);
    auto encoder = radprobe::encoders::load_encoder(out / "encoder");
    EXPECT_EQ(encoder->config().model_type, "resnet");
    // The same through the image processor's 8-bit quantisation (the phantoms are 16-bit PNGs;
    // Hugging Face processors, and radprobe's, work on 8-bit images).
    const long n = static_cast<long>(b.ids.size());
    auto x = torch::empty({n, 3, 64, 64});
    auto xq = torch::empty({n, 3, 64, 64});
    for (std::size_t i = 0; i < b.ids.size(); ++i) {
        const auto img = radprobe::imaging::decode(manifest.record(b.ids[i]).image_path);
        ASSERT_EQ(img.rows, 64);
        ASSERT_EQ(img.cols, 64);
        const auto plane =
            torch::from_blob(const_cast<float*>(img.pixels.data()), {64, 64}, torch::kFloat32);
        x[static_cast<long>(i)].copy_(((plane - 0.5) * 4.0).unsqueeze(0).expand({3, 64, 64}));
        auto q = radprobe::preprocess::quantise_u8(img.pixels.data(), img.pixels.size());
        const auto qplane =
            torch::from_blob(q.data(), {64, 64}, torch::kUInt8).to(torch::kFloat32) / 255.0;
        xq[static_cast<long>(i)].copy_(((qplane - 0.5) * 4.0).unsqueeze(0).expand({3, 64, 64}));
    }
    const auto pooled = encoder->forward(x).pooled.contiguous();
    const auto pooled_q = encoder->forward(xq).pooled.contiguous();
    ASSERT_EQ(pooled.size(1), 32);
    double worst = 0;
    for (std::size_t i = 0; i < b.ids.size(); ++i) {
        const double got = logit(pooled.data_ptr<float>() + i * 32, b);
        worst = std::max(worst, std::abs(got - b.scores[i]));
    }
    // float32 convolutions summed in a different channel order: ~1e-6 relative.
    EXPECT_LT(worst, 1e-4) << "max |logit difference| " << worst;

    // Through the exported preprocessor (64 → 64 px, mean 0.5 / std 0.25), `extract --pool mean`
    // gives the global average of the last stage = the pooled output of the quantised input.
    const fs::path store = dir / "store";
    const auto ex =
        run_cli("extract --model '" + (out / "encoder").string() + "' --manifest '" +
                manifest_path.string() + "' --pool mean --out '" + store.string() + "'");
    ASSERT_EQ(ex.exit_code, 0) << ex.err;
    // extract --out is a root: the store is its one sub-directory, named by the cache key.
    fs::path store_dir;
    for (const auto& entry : fs::directory_iterator(store)) {
        store_dir = entry.path();
    }
    const auto table = radprobe::features::read_embeddings(store_dir, "mean");
    ASSERT_EQ(table.dim, 32);
    double worst_extract = 0;
    for (std::size_t i = 0; i < b.ids.size(); ++i) {
        const auto it = std::find(table.image_ids.begin(), table.image_ids.end(), b.ids[i]);
        ASSERT_NE(it, table.image_ids.end()) << b.ids[i];
        const auto row = static_cast<std::size_t>(it - table.image_ids.begin());
        worst_extract =
            std::max(worst_extract, std::abs(logit(table.values.data() + row * 32, b) -
                                             logit(pooled_q.data_ptr<float>() + i * 32, b)));
    }
    std::printf("baseline export: max |logit difference| direct %.2e, via extract %.2e\n", worst,
                worst_extract);
    EXPECT_LT(worst_extract, 1e-4) << "max |logit difference| via extract " << worst_extract;
}
