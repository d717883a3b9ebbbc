// training.hpp: schedule values, LR-grid and device parsing, clipping, AdamW groups, early
// stopping keeping the best state.

#include <gtest/gtest.h>

#include <cmath>

#include "radprobe/core/error.hpp"
#include "radprobe/adapt/adapt.hpp"
#include "radprobe/adapt/training.hpp"

namespace radprobe::adapt::training {
namespace {

TEST(Schedule, WarmupThenCosineAtKnownSteps) {
    CosineSchedule s{110, 10, 0.0};
    // Warm-up: (step + 1) / 10.
    EXPECT_DOUBLE_EQ(s.factor(0), 0.1);
    EXPECT_DOUBLE_EQ(s.factor(4), 0.5);
    EXPECT_DOUBLE_EQ(s.factor(9), 1.0);
    // Cosine over the 100 remaining steps: 0.5·(1 + cos(π·t)), t = (step − 10) / 100.
    EXPECT_DOUBLE_EQ(s.factor(10), 1.0);
    EXPECT_NEAR(s.factor(35), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-15);
    EXPECT_NEAR(s.factor(60), 0.5, 1e-15);
    EXPECT_NEAR(s.factor(85), 0.5 * (1 + std::cos(M_PI * 0.75)), 1e-15);
    EXPECT_NEAR(s.factor(110), 0.0, 1e-15);
    EXPECT_NEAR(s.factor(500), 0.0, 1e-15);
    // Monotone decreasing after the warm-up.
    for (long k = 10; k < 110; ++k) {
        EXPECT_GE(s.factor(k), s.factor(k + 1));
    }
}

TEST(Schedule, FloorAndNoWarmup) {
    CosineSchedule s{4, 0, 0.1};
    EXPECT_DOUBLE_EQ(s.factor(0), 1.0);
    EXPECT_NEAR(s.factor(2), 0.1 + 0.9 * 0.5, 1e-15);
    EXPECT_NEAR(s.factor(4), 0.1, 1e-15);
}

TEST(LrGrid, LogSpacedInclusive) {
    const auto g = parse_lr_grid("1e-5:1e-3:5");
    ASSERT_EQ(g.size(), 5u);
    const double expected[] = {1e-5, std::pow(10, -4.5), 1e-4, std::pow(10, -3.5), 1e-3};
    for (int i = 0; i < 5; ++i) {
        EXPECT_NEAR(g[i] / expected[i], 1.0, 1e-12) << i;
    }
    EXPECT_EQ(g.front(), 1e-5);
    EXPECT_EQ(g.back(), 1e-3);
    EXPECT_EQ(parse_lr_grid("3e-4:1:1"), std::vector<double>{3e-4});
    EXPECT_EQ(parse_lr_grid("1e-3,1e-4,1e-3"), (std::vector<double>{1e-4, 1e-3}));
    EXPECT_EQ(parse_lr_grid("0.01"), std::vector<double>{0.01});
}

TEST(LrGrid, RejectsMalformed) {
    for (const char* bad : {"", "1e-3:1e-5:3", "1e-5:1e-3", "1e-5:1e-3:0", "1e-5:1e-3:2.5",
                            "0:1e-3:3", "-1e-3", "abc", "1e-5:x:3", "1:2:3:4", "nan"}) {
        EXPECT_THROW(parse_lr_grid(bad), UsageError) << bad;
    }
}

TEST(Device, ParsesCpuAndRejectsJunk) {
    EXPECT_EQ(parse_device("cpu"), torch::Device(torch::kCPU));
    for (const char* bad : {"", "gpu", "CPU", "cuda:", "cuda:x", "cuda0", "cuda:-1", "mps"}) {
        EXPECT_THROW(parse_device(bad), UsageError) << bad;
    }
    if (!torch::cuda::is_available()) {
        try {
            parse_device("cuda:0");
            FAIL() << "expected an InputError";
        } catch (const InputError& e) {
            EXPECT_NE(std::string(e.what()).find("no usable CUDA"), std::string::npos) << e.what();
        }
        EXPECT_THROW(parse_device("cuda"), InputError);
    }
}

TEST(Clip, ScalesToMaxNormAndReportsPreClipNorm) {
    auto a = torch::zeros({2}, torch::requires_grad());
    auto b = torch::zeros({1}, torch::requires_grad());
    a.mutable_grad() = torch::tensor({3.0f, 0.0f});
    b.mutable_grad() = torch::tensor({4.0f});
    EXPECT_NEAR(clip_gradients({a, b}, 1.0), 5.0, 1e-6);
    EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-5);
    EXPECT_NEAR(b.grad()[0].item<double>(), 0.8, 1e-5);
    // Below the threshold: untouched.
    EXPECT_NEAR(clip_gradients({a, b}, 10.0), 1.0, 1e-5);
    EXPECT_NEAR(b.grad()[0].item<double>(), 0.8, 1e-5);
}

TEST(Trainer, GroupMultipliersAndScheduleDriveTheLr) {
    auto w1 = torch::ones({1}, torch::requires_grad());
    auto w2 = torch::ones({1}, torch::requires_grad());
    TrainerOptions o;
    o.lr = 0.1;
    o.weight_decay = 0.0;
    o.clip_norm = 0.0;
    o.schedule = {4, 2, 0.0};
    Trainer t({ParamGroup{{w1}, 1.0, 0.0}, ParamGroup{{w2}, 0.25, 0.0}}, o);
    EXPECT_NEAR(t.current_lr(0), 0.05, 1e-15);
    EXPECT_NEAR(t.current_lr(1), 0.0125, 1e-15);
    // Adam's first step moves each parameter by lr (sign of the gradient).
    t.zero_grad();
    (w1 * 3.0 + w2 * 7.0).sum().backward();
    t.step();
    EXPECT_NEAR(w1.item<double>(), 1.0 - 0.05, 1e-6);
    EXPECT_NEAR(w2.item<double>(), 1.0 - 0.0125, 1e-6);
    EXPECT_EQ(t.steps_taken(), 1);
    EXPECT_NEAR(t.current_lr(0), 0.1, 1e-15);
}

TEST(Trainer, WeightDecayGroupsSplitByShape) {
    torch::nn::Linear lin(3, 2);
    const auto groups = default_param_groups(*lin, 0.05);
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(groups[0].params.size(), 1u);  // weight
    EXPECT_EQ(groups[0].params[0].dim(), 2);
    EXPECT_DOUBLE_EQ(groups[0].weight_decay, 0.05);
    EXPECT_EQ(groups[1].params.size(), 1u);  // bias
    EXPECT_DOUBLE_EQ(groups[1].weight_decay, 0.0);
}

TEST(EarlyStopping, KeepsTheBestStateAndStopsAfterPatience) {
    torch::nn::Linear lin(2, 1);
    EarlyStopping stop(2);
    auto set = [&](float v) {
        torch::NoGradGuard g;
        lin->weight.fill_(v);
        lin->bias.fill_(v);
    };
    set(1);
    EXPECT_TRUE(stop.update(0.6, *lin));
    set(2);
    EXPECT_TRUE(stop.update(0.8, *lin));
    set(3);
    EXPECT_FALSE(stop.update(0.8, *lin));  // a tie is no improvement
    EXPECT_FALSE(stop.should_stop());
    set(4);
    EXPECT_FALSE(stop.update(std::nan(""), *lin));
    EXPECT_TRUE(stop.should_stop());
    EXPECT_EQ(stop.best_evaluation(), 1);
    EXPECT_DOUBLE_EQ(stop.best(), 0.8);
    stop.restore(*lin);
    EXPECT_FLOAT_EQ(lin->weight[0][0].item<float>(), 2.0f);
    EXPECT_FLOAT_EQ(lin->bias[0].item<float>(), 2.0f);

    EarlyStopping minimise(1, false);
    EXPECT_TRUE(minimise.update(1.0, *lin));
    EXPECT_TRUE(minimise.update(0.5, *lin));
    EXPECT_FALSE(minimise.update(0.7, *lin));
    EXPECT_TRUE(minimise.should_stop());
}

TEST(EarlyStopping, RestoreWithoutBestIsAnError) {
    torch::nn::Linear lin(2, 1);
    EarlyStopping stop(1);
    EXPECT_FALSE(stop.update(std::nan(""), *lin));
    EXPECT_THROW(stop.restore(*lin), InternalError);
}

TEST(Autocast, NoOpOnCpu) {
    AutocastGuard g(torch::Device(torch::kCPU));
    EXPECT_FALSE(g.active());
}

}  // namespace
}  // namespace radprobe::adapt::training
