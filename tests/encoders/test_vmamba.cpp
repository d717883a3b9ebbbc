// VMamba (MzeroMiko/VMamba VSSM, issue 18) against the publisher's own outputs
// (tests/golden/encoders/make_vmamba.py → tests/data/encoders/vmamba, vmamba_ratio2_dstate4):
// the folders are read as the publisher ships a release (a lone vmamba.pth = {'model': state
// dict}, no config); the stem, every stage before and after its downsample, classifier.norm,
// the pooled features (and logits through the checkpoint's head), one SS2D's scan inputs and
// outputs, the selective scan alone on the publisher's scan inputs; the recogniser of the key
// layout and its refusals; Linear2d weights stored as 1x1 convolutions; grey folding; the
// differentiable pass; save_pretrained; depths for layer-wise decay; `radprobe models`; and
// fine-tuning and the segmentation decoders through the command line.
//
// Tolerances reached (max-abs against the publisher's float32 run, this machine; index.json's
// per-file atol is 50x the publisher's own float32-vs-float64 discrepancy): the stem, every stage
// and downsample, classifier.norm, pooled and logits of both fixtures within 4.1e-6; the SS2D
// internals within 1.9e-6; the scan and merge alone on the publisher's own scan inputs within
// 2.4e-7 (tensor loop, scan order) and 1.9e-6 (CPU loop, position order; 1 float32 ulp of
// max|y| = 21.9). The float32 scan is as accurate as the publisher's because both run the same
// sequential float32 recurrence, whose decay exp(delta·A) lies in (0, 1) so rounding does not
// grow along L (index.json's tolerance_note: about 1 ulp of max|y| for L = 4..3136); what
// differs is summation order. The tests hold every file to its index.json atol + rtol·|ref| and
// to the project's max-abs bar of 1e-4; the scan alone to 4 ulps of max|y|.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "../../src/encoders/internal.hpp"
#include "parity.hpp"
#include "processor_fixture.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "test_support.hpp"

namespace radprobe::encoders {
namespace {

namespace fs = std::filesystem;
using namespace parity;  // NOLINT: load, max_abs, kParity, map_to_tokens
using test::q;
using test::run_cli;
using test::TempDir;

/// The selective scan alone on the publisher's own float32 scan inputs, in float32 ulps of the
/// output's largest magnitude (see the header).
constexpr double kScanUlps = 4;
/// The scan node's gradients vs autograd through the tensor loop, relative to the largest: both
/// float32, summed in other orders (over up to L·Di terms for B, C, A, D).
constexpr double kGradientRelative = 1e-5;
/// forward_train (one tensor operation per scan step) vs forward (the CPU loop).
constexpr double kTrainVsInference = 1e-5;

/// One fixture file compared with its index.json tolerance (|a − b| <= atol + rtol·|b|) and with
/// the project's max-abs bar; returns the max-abs difference.
struct FileCheck {
    const nlohmann::json& files;
    double compare(const std::string& file, const at::Tensor& ours, const at::Tensor& ref) const {
        const auto& tol = files.at(file).at("tolerance");
        const double atol = tol.at("atol").get<double>(), rtol = tol.at("rtol").get<double>();
        const double err = max_abs(ours, ref);
        if (ours.sizes() == ref.sizes()) {
            const auto excess = (ours - ref).abs() - (atol + rtol * ref.abs());
            EXPECT_LE(excess.max().item<double>(), 0.0) << file << " beyond atol " << atol;
        }
        EXPECT_LE(err, kParity) << file;
        std::printf("  %-26s max-abs %.3g (index.json atol %.1g)\n", file.c_str(), err, atol);
        return err;
    }
};

nlohmann::json index_files(const fs::path& dir) {
    return nlohmann::json::parse(read_file_text(dir / "index.json")).at("files");
}

std::string npy(const std::string& name, std::size_t i) {
    return name + "_" + std::to_string(i) + ".npy";
}

class VmambaParity : public ::testing::TestWithParam<std::string> {
protected:
    static void SetUpTestSuite() { set_threads(0); }
    fs::path dir() const { return test::encoder_fixture(GetParam()); }
};

TEST_P(VmambaParity, EveryMapMatchesThePublisher) {
    auto encoder = load_encoder(dir());
    const auto files = index_files(dir());
    const FileCheck check{files};
    std::printf("%s:\n", GetParam().c_str());
    const auto t = detail::vmamba_trace(*encoder, load(dir() / "pixel_values.npy"));
    const auto stages = encoder->config().depths.size();
    ASSERT_EQ(t.stages.size(), stages);
    ASSERT_EQ(t.downsamples.size(), stages - 1);
    check.compare("patch_embed.npy", t.patch_embed, load(dir() / "patch_embed.npy"));
    for (std::size_t i = 0; i < stages; ++i) {
        check.compare(npy("hidden_states", i), t.stages[i], load(dir() / npy("hidden_states", i)));
        if (i + 1 < stages) {
            check.compare(npy("downsample", i), t.downsamples[i],
                          load(dir() / npy("downsample", i)));
        }
    }
    check.compare("classifier_norm.npy", t.classifier_norm, load(dir() / "classifier_norm.npy"));
}

TEST_P(VmambaParity, TokensHiddenStatesPyramidPooledAndLogits) {
    auto encoder = load_encoder(dir());
    const auto files = index_files(dir());
    const FileCheck check{files};
    ForwardOptions opt;
    opt.all_layers = true;
    const auto out = encoder->forward(load(dir() / "pixel_values.npy"), opt);
    const auto stages = encoder->config().depths.size();
    ASSERT_EQ(out.layers.size(), stages + 1);
    ASSERT_EQ(out.pyramid.size(), stages);
    std::printf("%s (EncoderOutput):\n", GetParam().c_str());
    check.compare("patch_embed.npy", out.layers.at(0),
                  map_to_tokens(load(dir() / "patch_embed.npy")));
    for (std::size_t i = 0; i < stages; ++i) {
        const auto ref = load(dir() / npy("hidden_states", i));
        check.compare(npy("hidden_states", i), out.layers.at(static_cast<int>(i) + 1),
                      map_to_tokens(ref));
        check.compare(npy("hidden_states", i), out.pyramid[i], ref);
    }
    const auto final_map = load(dir() / "classifier_norm.npy");
    check.compare("classifier_norm.npy", out.last_hidden_state, map_to_tokens(final_map));
    check.compare("classifier_norm.npy", out.tokens.patches, final_map.permute({0, 2, 3, 1}));
    check.compare("pooled.npy", out.pooled, load(dir() / "pooled.npy"));
    const auto params = encoder->module().named_parameters();
    c10::InferenceMode inference;  // pooled is an inference tensor
    const auto logits =
        at::linear(out.pooled, params["classifier.head.weight"], params["classifier.head.bias"]);
    check.compare("logits.npy", logits, load(dir() / "logits.npy"));
    EXPECT_FALSE(out.tokens.cls.defined());
    EXPECT_EQ(out.grid_h, final_map.size(2));
    EXPECT_EQ(out.grid_w, final_map.size(3));
}

TEST_P(VmambaParity, OneSs2dMatchesThePublishersScanRecord) {
    auto encoder = load_encoder(dir());
    const auto files = index_files(dir());
    const FileCheck check{files};
    std::printf("%s layers[1].blocks[0].op:\n", GetParam().c_str());
    const auto t = detail::vmamba_ss2d(*encoder, 1, 0, load(dir() / "ss2d_1_0_input.npy"));
    check.compare("ss2d_1_0_us.npy", t.us, load(dir() / "ss2d_1_0_us.npy"));
    check.compare("ss2d_1_0_dts.npy", t.dts, load(dir() / "ss2d_1_0_dts.npy"));
    check.compare("ss2d_1_0_Bs.npy", t.bs, load(dir() / "ss2d_1_0_Bs.npy"));
    check.compare("ss2d_1_0_Cs.npy", t.cs, load(dir() / "ss2d_1_0_Cs.npy"));
    check.compare("ss2d_1_0_ys.npy", t.ys, load(dir() / "ss2d_1_0_ys.npy"));
    check.compare("ss2d_1_0_y.npy", t.y, load(dir() / "ss2d_1_0_y.npy"));
    check.compare("ss2d_1_0_output.npy", t.output, load(dir() / "ss2d_1_0_output.npy"));
}

/// The publisher's scan inputs of layers[1].blocks[0] with that block's A_logs, Ds and dt bias,
/// as leaves that record gradients.
struct ScanCase {
    at::Tensor us, dts, a_logs, bs, cs, ds, dt_bias;
    std::int64_t h = 0, w = 0;

    ScanCase(Encoder& encoder, const fs::path& dir) {
        auto params = encoder.module().named_parameters();
        const std::string op = "layers.1.blocks.0.op.";
        auto leaf = [](const at::Tensor& t) { return t.detach().clone().requires_grad_(true); };
        us = leaf(load(dir / "ss2d_1_0_us.npy"));
        dts = leaf(load(dir / "ss2d_1_0_dts.npy"));
        bs = leaf(load(dir / "ss2d_1_0_Bs.npy"));
        cs = leaf(load(dir / "ss2d_1_0_Cs.npy"));
        a_logs = leaf(params[op + "A_logs"]);
        ds = leaf(params[op + "Ds"]);
        dt_bias = leaf(params[op + "dt_projs_bias"]);
        const auto y = load(dir / "ss2d_1_0_y.npy");
        h = y.size(2);
        w = y.size(3);
    }
    at::Tensor run(detail::VmambaScan how) const {
        return detail::vmamba_selective_scan(us, dts, a_logs, bs, cs, ds, dt_bias, h, w, how);
    }
    std::vector<at::Tensor> leaves() const { return {us, dts, a_logs, bs, cs, ds, dt_bias}; }
};

TEST_P(VmambaParity, TheScanAloneReproducesThePublishersScanOnItsInputs) {
    // The publisher's float32 u, delta, B, C through each of radprobe's scans and merges, against
    // the publisher's merged y: only the recurrence and the order of the four-way sum differ
    // from the publisher's, so the bar is a few float32 ulps of max|y|.
    auto encoder = load_encoder(dir());
    const ScanCase scan(*encoder, dir());
    const auto ref = load(dir() / "ss2d_1_0_y.npy");
    const double bar =
        kScanUlps * std::numeric_limits<float>::epsilon() * ref.abs().max().item<double>();
    const std::vector<std::pair<detail::VmambaScan, const char*>> ways = {
        {detail::VmambaScan::kTensorLoop, "tensor loop"},
        {detail::VmambaScan::kCpuNode, "CPU node, scan order"},
        {detail::VmambaScan::kCpuByPosition, "CPU loop, by position"}};
    torch::NoGradGuard no_grad;
    for (const auto& [how, name] : ways) {
        const double err = max_abs(scan.run(how), ref);
        std::printf("%s scan alone (%s): max-abs %.3g, max|y| %.3g, bar %.3g\n", GetParam().c_str(),
                    name, err, ref.abs().max().item<double>(), bar);
        EXPECT_LE(err, bar) << name;
    }
}

TEST_P(VmambaParity, TheScanNodesGradientsAreTheTensorLoops) {
    // The CPU node's hand-written backward against autograd through the tensor loop, for every
    // input (A_logs, D and the dt bias through their own chain rules).
    auto encoder = load_encoder(dir());
    const ScanCase scan(*encoder, dir());
    torch::manual_seed(5);
    const auto weights = torch::randn({scan.us.size(0), scan.us.size(1) / 4, scan.h, scan.w});
    std::vector<std::vector<at::Tensor>> grads;
    for (const auto how : {detail::VmambaScan::kTensorLoop, detail::VmambaScan::kCpuNode}) {
        grads.push_back(torch::autograd::grad({(scan.run(how) * weights).sum()}, scan.leaves()));
    }
    const char* names[] = {"u", "dts", "A_logs", "B", "C", "D", "dt_bias"};
    for (std::size_t i = 0; i < grads[0].size(); ++i) {
        const double scale = grads[0][i].abs().max().item<double>();
        const double err = max_abs(grads[1][i], grads[0][i]);
        std::printf("%s d/d%s: max-abs %.3g of max %.3g\n", GetParam().c_str(), names[i], err,
                    scale);
        EXPECT_GT(scale, 0.0) << names[i];
        EXPECT_LE(err, kGradientRelative * scale) << names[i];
    }
}

TEST_P(VmambaParity, TheDifferentiablePassGivesTheSameOutputsAndReachesEveryParameter) {
    auto encoder = load_encoder(dir());
    ForwardOptions opt;
    opt.all_layers = true;
    const auto x = load(dir() / "pixel_values.npy");
    const auto a = encoder->forward(x, opt);
    const auto b = encoder->forward_train(x, opt);
    ASSERT_TRUE(b.last_hidden_state.requires_grad());
    double err =
        std::max(max_abs(a.last_hidden_state, b.last_hidden_state), max_abs(a.pooled, b.pooled));
    for (const auto& [i, t] : a.layers) {
        err = std::max(err, max_abs(t, b.layers.at(i)));
    }
    std::printf("%s: forward_train vs forward max-abs %.3g\n", GetParam().c_str(), err);
    EXPECT_LE(err, kTrainVsInference);
    torch::manual_seed(7);
    ((b.last_hidden_state * torch::randn_like(b.last_hidden_state)).sum() +
     (b.pooled * torch::randn_like(b.pooled)).sum())
        .backward();
    int checked = 0;
    for (const auto& item : encoder->module().named_parameters(true)) {
        if (item.key().starts_with("classifier.head.")) {
            EXPECT_FALSE(item.value().grad().defined()) << item.key();  // logits are not output
            continue;
        }
        ASSERT_TRUE(item.value().grad().defined()) << "no gradient for " << item.key();
        EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
        ++checked;
    }
    EXPECT_GT(checked, 50);
}

INSTANTIATE_TEST_SUITE_P(Published, VmambaParity,
                         ::testing::Values("vmamba", "vmamba_ratio2_dstate4"),
                         [](const auto& info) { return info.param; });

class Vmamba : public ::testing::Test {
protected:
    static void SetUpTestSuite() { set_threads(0); }
    static fs::path dir() { return test::encoder_fixture("vmamba"); }
};

TEST_F(Vmamba, TheLonePthIsRecognisedFromItsKeys) {
    const auto c = read_model_config(dir());
    EXPECT_EQ(c.model_type, "vmamba");
    EXPECT_EQ(c.weights_layout, "vmamba");
    EXPECT_TRUE(c.is_hierarchical());
    EXPECT_FALSE(c.has_cls_token);
    EXPECT_EQ(c.stage_widths, (std::vector<std::int64_t>{6, 12, 24, 48}));
    EXPECT_EQ(c.depths, (std::vector<std::int64_t>{1, 1, 2, 1}));
    EXPECT_EQ(c.vmamba.d_state, 1);
    EXPECT_EQ(c.vmamba.ssm_ratio, 1.0);
    EXPECT_EQ(c.vmamba.d_inner, (std::vector<std::int64_t>{6, 12, 24, 48}));
    EXPECT_EQ(c.vmamba.dt_ranks, (std::vector<std::int64_t>{1, 1, 2, 3}));  // ceil(dim / 16)
    EXPECT_EQ(c.vmamba.mlp_hidden, (std::vector<std::int64_t>{24, 48, 96, 192}));
    EXPECT_EQ(c.vmamba.conv, 3);
    EXPECT_EQ(c.vmamba.num_classes, 10);
    EXPECT_FALSE(c.vmamba.linear_weights_4d);
    EXPECT_EQ(c.hidden_size, 48);
    EXPECT_EQ(c.num_hidden_layers, 4);
    EXPECT_EQ(c.patch_size, 32);
    EXPECT_EQ(c.image_size, 224);  // the publisher's default: not in the weights
    const auto j = nlohmann::json::parse(c.config_json);
    EXPECT_EQ(j.at("forward_type"), "v05_noz");
    EXPECT_EQ(j.at("ssm_dt_rank"), "auto");
    const auto other = read_model_config(test::encoder_fixture("vmamba_ratio2_dstate4"));
    EXPECT_EQ(other.vmamba.ssm_ratio, 2.0);
    EXPECT_EQ(other.vmamba.d_state, 4);
    EXPECT_EQ(other.vmamba.d_inner, (std::vector<std::int64_t>{12, 24, 48, 96}));
    auto encoder = load_encoder(dir());
    EXPECT_EQ(encoder->load_report().entry, "model");
    EXPECT_EQ(encoder->load_report().ignored_tensors, 0);
    EXPECT_EQ(encoder->num_parameters(), 57700);  // the 114 tensors of index.json's file list
}

TEST_F(Vmamba, TheEvaluationTransformIsThePublishers) {
    const auto p = read_preprocess_config(dir());
    EXPECT_EQ(p.processor_type, "torchvision (VMamba evaluation transform)");
    EXPECT_EQ(p.shortest_edge, 256);  // int(256 / 224 * 224)
    EXPECT_EQ(p.resample, preprocess::Resample::kBicubic);
    EXPECT_TRUE(p.do_center_crop);
    EXPECT_EQ(p.crop_height, 224);
    EXPECT_EQ(p.crop_width, 224);
    EXPECT_TRUE(p.torchvision_crop);
    EXPECT_EQ(p.image_mean, (std::array<double, 3>{0.485, 0.456, 0.406}));
    EXPECT_EQ(p.image_std, (std::array<double, 3>{0.229, 0.224, 0.225}));
}

/// The fixture's tensors, changed by `edit`, as a lone model.safetensors in `out`.
fs::path edited_checkpoint(const fs::path& out,
                           const std::function<void(std::map<std::string, at::Tensor>&)>& edit) {
    auto state = load_safetensors_state(test::encoder_fixture("vmamba"));
    edit(state);
    std::vector<StTensorData> entries;
    for (const auto& [name, t] : state) {
        entries.push_back(tensor_entry(name, t));
    }
    fs::create_directories(out);
    write_file_atomic(out / "model.safetensors",
                      serialize_safetensors(entries, {{"format", "pt"}}));
    return out;
}

void rename_prefix(std::map<std::string, at::Tensor>& s, const std::string& from,
                   const std::string& to) {
    std::map<std::string, at::Tensor> out;
    for (auto& [name, t] : s) {
        out[name.find(from) == 0 ? to + name.substr(from.size()) : name] = t;
    }
    s = out;
}

TEST_F(Vmamba, UnsupportedLayoutsAreOneLineErrorsNamingTheFileAndWhat) {
    using State = std::map<std::string, at::Tensor>;
    const std::string b = "layers.1.blocks.0.";
    const std::vector<std::pair<std::function<void(State&)>, std::string>> cases = {
        {[&](State& s) {
             s[b + "op.in_proj.weight"] = torch::zeros({24, 12});
         },
         "gated in_proj of 2 x d_inner outputs"},
        {[&](State& s) { s[b + "op.conv2d.bias"] = torch::zeros({12}); },
         "depthwise convolution bias"},
        {[&](State& s) { s.erase(b + "op.conv2d.weight"); }, "no depthwise convolution"},
        {[&](State& s) { s.erase(b + "op.out_norm.weight"); }, "out_norm other than LayerNorm2d"},
        {[&](State& s) { s.erase("classifier.norm.weight"); }, "no classifier.norm"},
        {[&](State& s) { s.erase("patch_embed.5.weight"); }, "patch embedding v1"},
        {[&](State& s) {
             s["layers.0.downsample.1.weight"] = torch::zeros({12, 6, 2, 2});
         },
         "downsample v2"},
        {[&](State& s) {
             s[b + "op.x_proj_bias"] = torch::zeros({4, 3});
         },
         "x_proj bias"},
        {[&](State& s) {
             s[b + "mlp.fc1.weight"] = torch::zeros({96, 12});
         },
         "gated MLP"},
        {[&](State& s) {
             s[b + "op.x_proj_weight"] = torch::zeros({4, 5, 12});
         },
         "inconsistent VMamba checkpoint: layers.1.blocks.0.op.x_proj_weight"},
        {[&](State& s) {
             s[b + "op.out_proj.weight"] = torch::zeros({12, 12, 1, 1});
         },
         "in_proj and out_proj weights stored in different shapes"},
        {[&](State& s) { s["patch_embed.2.running_mean"] = torch::zeros({3}); }, "BatchNorm"},
        {[&](State& s) {
             rename_prefix(s, "layers.0.blocks.0.op.", "layers.0.blocks.0.self_attention.");
         },
         "VMamba v0/v1 checkpoint"},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        TempDir tmp;
        const auto folder = edited_checkpoint(tmp / "m", cases[i].first);
        try {
            (void)load_encoder(folder);
            ADD_FAILURE() << "case " << i << " loaded: " << cases[i].second;
        } catch (const InputError& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find(cases[i].second), std::string::npos) << what;
            EXPECT_NE(what.find((folder / "model.safetensors").string()), std::string::npos)
                << what;
            EXPECT_EQ(what.find('\n'), std::string::npos) << what;
        }
    }
}

TEST_F(Vmamba, AMissingBlockTensorIsTheStrictLoadersError) {
    TempDir tmp;
    const auto folder =
        edited_checkpoint(tmp / "m", [](auto& s) { s.erase("layers.2.blocks.1.op.Ds"); });
    try {
        (void)load_encoder(folder);
        ADD_FAILURE() << "loaded without layers.2.blocks.1.op.Ds";
    } catch (const InputError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("does not match the vmamba architecture"), std::string::npos) << what;
        EXPECT_NE(what.find("layers.2.blocks.1.op.Ds"), std::string::npos) << what;
    }
}

TEST_F(Vmamba, ProjectionsStoredAs1x1ConvolutionsLoadToTheSameModel) {
    // Linear2d._load_from_state_dict views a [out, in, 1, 1] weight as [out, in]: both load.
    TempDir tmp;
    const auto folder = edited_checkpoint(tmp / "m", [](auto& s) {
        for (auto& [name, t] : s) {
            const bool linear2d = name.ends_with("in_proj.weight") ||
                                  name.ends_with("out_proj.weight") ||
                                  name.ends_with("fc1.weight") || name.ends_with("fc2.weight");
            if (linear2d) {
                t = t.view({t.size(0), t.size(1), 1, 1});
            }
        }
    });
    auto four_d = load_encoder(folder);
    EXPECT_TRUE(four_d->config().vmamba.linear_weights_4d);
    auto reference = load_encoder(dir());
    const auto x = load(dir() / "pixel_values.npy");
    EXPECT_EQ(
        max_abs(four_d->forward(x).last_hidden_state, reference->forward(x).last_hidden_state),
        0.0);
}

TEST_F(Vmamba, FoldedGreyInputGivesTheSameOutputsBorderIncluded) {
    // The stem's first convolution pads the normalised input: the fold keeps the shift of the
    // taps inside the image, so the border rows and columns match too.
    const auto r = folded_and_rgb(dir(), 45, 70);
    const auto& a = r.from_grey;
    const auto& b = r.from_rgb;
    const double stem = max_abs(a.layers.at(0), b.layers.at(0));
    const double last = max_abs(a.last_hidden_state, b.last_hidden_state);
    std::printf("vmamba folded grey vs rgb: max-abs stem %.3g, last_hidden_state %.3g\n", stem,
                last);
    EXPECT_LE(stem, 1e-4);
    EXPECT_LE(last, 1e-4);
    EXPECT_LE(max_abs(r.folded->forward_train(r.grey).last_hidden_state, b.last_hidden_state),
              1e-4);
    EXPECT_THROW(r.folded->fold_grayscale({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}),
                 InputError);
    TempDir tmp;
    EXPECT_THROW(r.folded->save_pretrained(tmp / "x"), InputError);
}

TEST_F(Vmamba, SavePretrainedWritesAFolderThatLoadsAsTheSameModel) {
    auto encoder = load_encoder(dir());
    {
        torch::NoGradGuard no_grad;
        for (auto& p : encoder->module().parameters()) {
            p.mul_(1.01);
        }
    }
    TempDir tmp;
    encoder->save_pretrained(tmp / "saved");
    const auto j = nlohmann::json::parse(read_file_text(tmp / "saved" / "config.json"));
    EXPECT_EQ(j.at("model_type"), "vmamba");
    const auto pre = read_preprocess_config(tmp / "saved");  // the derived transform, written
    EXPECT_EQ(pre.shortest_edge, 256);
    auto reloaded = load_encoder(tmp / "saved");
    EXPECT_TRUE(reloaded->config().weights_layout.empty());
    EXPECT_EQ(reloaded->config().vmamba.dt_ranks, encoder->config().vmamba.dt_ranks);
    const auto x = load(dir() / "pixel_values.npy");
    ForwardOptions opt;
    opt.all_layers = true;
    const auto a = encoder->forward(x, opt);
    const auto b = reloaded->forward(x, opt);
    EXPECT_EQ(max_abs(a.last_hidden_state, b.last_hidden_state), 0.0);
    for (const auto& [i, t] : a.layers) {
        EXPECT_EQ(max_abs(t, b.layers.at(i)), 0.0) << i;
    }
}

TEST_F(Vmamba, AConfigJsonOfAnotherForwardTypeIsRefusedNamingTheKey) {
    TempDir tmp;
    const std::string base = R"("model_type": "vmamba", "depths": [1, 1])";
    const std::string dims = R"(, "dims": [6, 12])";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {dims + R"(, "forward_type": "v2")", "forward_type \"v2\" is not supported"},
        {dims + R"(, "norm_layer": "ln")", "norm_layer"},
        {dims + R"(, "downsample_version": "v1")", "downsample_version"},
        {dims + R"(, "ssm_conv_bias": true)", "ssm_conv_bias"},
        {dims + R"(, "ssm_conv": 4)", "ssm_conv 4"},
        {R"(, "dims": [6])", "\"dims\" and \"depths\""},
        {dims + R"(, "ssm_ratio": 0.01)", "ssm_ratio"},
    };
    for (const auto& [extra, key] : cases) {
        write_file_atomic(tmp / "config.json", "{" + base + extra + "}");
        try {
            (void)read_model_config(tmp.path());
            ADD_FAILURE() << "accepted " << extra;
        } catch (const InputError& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find("config.json"), std::string::npos) << what;
            EXPECT_NE(what.find(key), std::string::npos) << what;
        }
    }
    write_file_atomic(tmp / "config.json", "{" + base + dims + R"(, "ssm_dt_rank": 5})");
    EXPECT_EQ(read_model_config(tmp.path()).vmamba.dt_ranks, (std::vector<std::int64_t>{5, 5}));
}

TEST_F(Vmamba, StagesSitAtTheirDepthAndTheClassifierAfterThem) {
    auto encoder = load_encoder(dir());
    EXPECT_EQ(encoder->num_blocks(), 4);
    const std::vector<std::pair<std::string, int>> cases = {
        {"patch_embed.0.weight", 0},          {"patch_embed.7.bias", 0},
        {"layers.0.blocks.0.op.A_logs", 1},   {"layers.0.downsample.1.weight", 1},
        {"layers.1.blocks.0.norm.weight", 2}, {"layers.2.blocks.1.mlp.fc1.weight", 3},
        {"layers.3.blocks.0.op.Ds", 4},       {"classifier.norm.weight", 5},
        {"classifier.head.weight", 5},
    };
    for (const auto& [name, depth] : cases) {
        EXPECT_EQ(encoder->layer_id(name), depth) << name;
    }
}

TEST_F(Vmamba, AnySideRunsAndTheGridIsTheCeilingHalvedFiveTimes) {
    auto encoder = load_encoder(dir());
    const auto out = encoder->forward(torch::randn({1, 3, 33, 97}));
    EXPECT_EQ(out.grid_h, 2);  // 33 → 17 → 9 → 5 → 3 → 2
    EXPECT_EQ(out.grid_w, 4);  // 97 → 49 → 25 → 13 → 7 → 4
    EXPECT_EQ(out.last_hidden_state.sizes(), (std::vector<std::int64_t>{1, 8, 48}));
    EXPECT_GT(encoder->flops_per_image(224, 224), 3.5 * encoder->flops_per_image(112, 112));
}

TEST(VmambaCli, ModelsListsVmambaAndDescribesTheRelease) {
    const auto list = run_cli("models");
    ASSERT_EQ(list.exit_code, 0) << list.err;
    EXPECT_NE(list.out.find("  vmamba "), std::string::npos) << list.out;
    const auto d = run_cli("models " + q(test::encoder_fixture("vmamba")));
    ASSERT_EQ(d.exit_code, 0) << d.err;
    for (const char* text :
         {"inferred from the weights (no config.json): vmamba", "depths [1,1,2,1]",
          "state space:    SS2D v05_noz", "d_inner [6,12,24,48], dt_rank [1,1,2,3]",
          "native input:   224x224", "not in the weights",
          "weights read from the checkpoint's 'model' entry",
          "torchvision (VMamba evaluation transform), resize shortest edge 256, centre crop "
          "224x224"}) {
        EXPECT_NE(d.out.find(text), std::string::npos) << text << "\n" << d.out;
    }
}

/// Phantoms for the command-line runs (fine-tuning, segmentation).
class VmambaAdaptCli : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        tmp_ = new TempDir();
        const auto r = run_cli("synth --out " + q(*tmp_ / "ph") +
                               " --n 40 --size 64 --seed 2 --cardiomegaly-prevalence 0.5");
        ASSERT_EQ(r.exit_code, 0) << r.err;
        model_ = test::fixture_with_clip_processor("vmamba", *tmp_ / "vmamba", 64);
    }
    static void TearDownTestSuite() {
        delete tmp_;
        tmp_ = nullptr;
    }
    static fs::path manifest() { return *tmp_ / "ph" / "manifest.csv"; }
    static TempDir* tmp_;
    static fs::path model_;
};
TempDir* VmambaAdaptCli::tmp_ = nullptr;
fs::path VmambaAdaptCli::model_;

TEST_F(VmambaAdaptCli, FineTunesAndItsCheckpointIsAModel) {
    TempDir tmp;
    const auto r = run_cli("finetune --model " + q(model_) + " --manifest " + q(manifest()) +
                           " --label cardiomegaly --epochs 1 --batch 8 --size 64 --n-boot 20 "
                           "--seed 4 --threads 2 --out " +
                           q(tmp / "o"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto best = tmp / "o" / "best" / "encoder";
    ASSERT_TRUE(fs::exists(best / "model.safetensors"));
    EXPECT_EQ(read_model_config(best).model_type, "vmamba");
    // Fine-tuning changed the weights.
    auto tuned = load_encoder(best);
    auto original = load_encoder(model_);
    const auto x = load(test::encoder_fixture("vmamba") / "pixel_values.npy");
    EXPECT_GT(max_abs(tuned->forward(x).pooled, original->forward(x).pooled), 1e-6);
    const auto ext = run_cli("extract --model " + q(best) + " --manifest " + q(manifest()) +
                             " --out " + q(tmp / "emb") + " --pool mean,roi,patches --threads 2");
    EXPECT_EQ(ext.exit_code, 0) << ext.err;
    const auto cls = run_cli("extract --model " + q(best) + " --manifest " + q(manifest()) +
                             " --out " + q(tmp / "emb-cls") + " --pool cls --threads 2");
    EXPECT_NE(cls.exit_code, 0);
    EXPECT_NE(cls.err.find("no CLS token"), std::string::npos) << cls.err;
}

/// A segment run's metrics.json, checked for a Dice with its CI.
void expect_segmentation(const fs::path& out) {
    const auto j = nlohmann::json::parse(read_file_text(out / "metrics.json"));
    EXPECT_EQ(j.at("task"), "seg");
    EXPECT_TRUE(j.at("metrics").at("dice").at("ci").is_array()) << out;
}

TEST_F(VmambaAdaptCli, FeedsTheLinearAndMultiscaleDecodersFrozenAndFineTuned) {
    // The linear decoder reads the last stage's grid (after classifier.norm); the multiscale
    // decoder every stage's map (EncoderOutput::pyramid, strides 4 to 32).
    const std::string common = " --model " + q(model_) + " --manifest " + q(manifest()) +
                               " --mask heart --resize 64 --epochs 1 --n-boot 20 --threads 2";
    for (const std::string decoder : {"linear", "multiscale"}) {
        for (const std::string unfreeze : {"none", "last-1"}) {
            const auto out = *tmp_ / ("seg_" + decoder + "_" + unfreeze);
            const auto r = run_cli("segment --decoder " + decoder + " --unfreeze " + unfreeze +
                                   common + " --out " + q(out));
            ASSERT_EQ(r.exit_code, 0) << decoder << " " << unfreeze << ": " << r.err;
            expect_segmentation(out);
            EXPECT_EQ(fs::exists(out / "model" / "encoder" / "model.safetensors"),
                      unfreeze != "none");
            if (decoder == "multiscale") {
                EXPECT_EQ(nlohmann::json::parse(r.out).at("layers"),
                          (std::vector<int>{1, 2, 3, 4}));
                const auto meta =
                    nlohmann::json::parse(read_file_text(out / "model" / "seg_model.json"));
                EXPECT_EQ(meta.at("stage_dims"), (std::vector<std::int64_t>{6, 12, 24, 48}));
            }
        }
    }
    const auto applied = *tmp_ / "seg_applied";
    const auto a = run_cli("segment --apply " + q(*tmp_ / "seg_multiscale_last-1" / "model") +
                           " --manifest " + q(manifest()) + " --threads 2 --out " + q(applied));
    ASSERT_EQ(a.exit_code, 0) << a.err;
    EXPECT_TRUE(fs::exists(applied / "predictions.csv"));
}

}  // namespace
}  // namespace radprobe::encoders
