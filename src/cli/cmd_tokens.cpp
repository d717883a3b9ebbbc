// radprobe tokens --model HFDIR --pixel-values X.npy --out Y.npy [--hidden-states DIR]
//                 [--threads T] [--fold-grayscale] [--device cpu|cuda|cuda:N]

#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.hpp"
#include "option_flags.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/npy.hpp"
#include "radprobe/encoders/encoder.hpp"

namespace radprobe::cli {

Runner setup_tokens(CLI::App& app) {
    struct Options {
        std::string model;
        std::string pixel_values;
        std::string out;
        std::string hidden_states;
        std::string pooled;
        std::string checkpoint_key;
        std::string dtype;
        std::string device = "cpu";
        int threads = 0;
        bool fold = false;
    };
    auto opt = std::make_shared<Options>();
    app.add_option("--model", opt->model, "Hugging Face model directory (config.json, weights)")
        ->required();
    add_checkpoint_key_flag(app, opt->checkpoint_key);
    add_dtype_flag(app, opt->dtype);
    add_device_flag(app, opt->device);
    app.add_option("--pixel-values", opt->pixel_values,
                   "float32 N×C×H×W .npy, already preprocessed (radprobe preprocess)")
        ->required();
    app.add_option(
           "--out", opt->out,
           "output .npy: last_hidden_state N×T×D as HF returns it (ResNet: N×(H·W)×C tokens)")
        ->required();
    app.add_option("--hidden-states", opt->hidden_states,
                   "also write DIR/hidden_states.npy: every hidden state, (L+1)×N×T×D (0 = "
                   "embedding output, i = output of layer i, before the final layer norm)");
    app.add_option("--pooled", opt->pooled,
                   "also write the model's pooled output N×D' (HF pooler_output: ViT pooler, CLIP "
                   "post-layernorm CLS, SigLIP attention-pooling head, ResNet/Swin average)");
    app.add_option("--threads", opt->threads,
                   "LibTorch threads (0 = the cores available; LibTorch would start at 1)")
        ->capture_default_str();
    app.add_flag("--fold-grayscale", opt->fold,
                 "fold grey replication + normalisation into the patch embedding (input: 1 "
                 "channel, rescaled grey in [0,1]; mean/std from preprocessor_config.json)");
    return [opt]() -> int {
        RADPROBE_USAGE_CHECK(opt->threads >= 0, "--threads must be >= 0, got ", opt->threads);
        const NpyArray input = read_npy(opt->pixel_values);
        RADPROBE_CHECK(input.dtype == DType::kFloat32 && input.shape.size() == 4, "file ",
                       opt->pixel_values, ": expected float32 N×C×H×W pixel values");
        const c10::Device device = encoders::parse_device(opt->device);
        encoders::set_threads(opt->threads);
        auto encoder =
            encoders::load_encoder(opt->model, load_options(opt->checkpoint_key, opt->dtype));
        if (const std::string note = encoder->load_report().note(); !note.empty()) {
            std::fprintf(stderr, "note: model %s: %s\n", opt->model.c_str(), note.c_str());
        }
        if (opt->fold) {
            const auto pre = encoders::read_preprocess_config(
                opt->model, load_options(opt->checkpoint_key, opt->dtype));
            encoder->fold_grayscale(pre.image_mean, pre.image_std);
        }
        encoder->to(device);
        encoders::ForwardOptions fopt;
        fopt.all_layers = !opt->hidden_states.empty();
        const auto out = encoder->forward(encoders::tensor_from_npy(input), fopt);
        if (!opt->hidden_states.empty() && encoder->config().is_hierarchical()) {
            // ResNet/Swin stages differ in shape: one DIR/hidden_states_{i}.npy per stage, as
            // N×(h·w)×C tokens.
            for (const auto& [index, tensor] : out.layers) {
                write_npy(std::filesystem::path(opt->hidden_states) /
                              ("hidden_states_" + std::to_string(index) + ".npy"),
                          encoders::npy_from_tensor(tensor));
            }
        } else if (!opt->hidden_states.empty()) {
            // Stacked as HF's torch.stack(outputs.hidden_states): (L+1)×N×T×D.
            NpyArray stacked;
            for (const auto& [index, tensor] : out.layers) {
                const NpyArray one = encoders::npy_from_tensor(tensor);
                if (stacked.shape.empty()) {
                    stacked.shape = one.shape;
                    stacked.shape.insert(stacked.shape.begin(), 0);
                }
                stacked.shape[0] += 1;
                stacked.data.insert(stacked.data.end(), one.data.begin(), one.data.end());
            }
            write_npy(std::filesystem::path(opt->hidden_states) / "hidden_states.npy", stacked);
        }
        if (!opt->pooled.empty()) {
            RADPROBE_CHECK(out.pooled.defined(), "model ", opt->model, " (",
                           encoder->config().model_type, ") has no pooled output");
            write_npy(opt->pooled, encoders::npy_from_tensor(out.pooled));
        }
        write_npy(opt->out, encoders::npy_from_tensor(out.last_hidden_state));
        return 0;
    };
}

}  // namespace radprobe::cli
