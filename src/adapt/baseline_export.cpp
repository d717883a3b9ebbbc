// The CNN baseline written as a Hugging Face ResNetModel directory (see baseline_export.hpp).

#include "baseline_export.hpp"

#include <nlohmann/json.hpp>

#include <cstring>
#include <map>
#include <regex>

#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/encoders/safetensors.hpp"

namespace radprobe::adapt {

namespace {

namespace fs = std::filesystem;
using encoders::StTensorData;

/// Baseline module name → HF ResNetModel key; empty for the classifier (fc.*).
std::string hf_key(const std::string& name) {
    static const std::regex stem(R"(^(conv1|bn1)\.(.+)$)");
    static const std::regex block(
        R"(^layers\.(\d+)\.(\d+)\.(conv1|bn1|conv2|bn2|downsample\.0|downsample\.1)\.(.+)$)");
    std::smatch m;
    if (std::regex_match(name, m, stem)) {
        return std::string("embedder.embedder.") +
               (m[1] == "conv1" ? "convolution." : "normalization.") + m[2].str();
    }
    if (std::regex_match(name, m, block)) {
        static const std::map<std::string, std::string> part = {
            {"conv1", "layer.0.convolution"},         {"bn1", "layer.0.normalization"},
            {"conv2", "layer.1.convolution"},         {"bn2", "layer.1.normalization"},
            {"downsample.0", "shortcut.convolution"}, {"downsample.1", "shortcut.normalization"}};
        return "encoder.stages." + m[1].str() + ".layers." + m[2].str() + "." +
               part.at(m[3].str()) + "." + m[4].str();
    }
    RADPROBE_ASSERT(name.rfind("fc.", 0) == 0, "baseline export: unexpected module key ", name);
    return {};
}

}  // namespace

void write_baseline_encoder(const torch::nn::Module& model, int width,
                            const std::vector<int>& blocks, int size, const std::string& label,
                            const fs::path& dir) {
    std::vector<StTensorData> tensors;
    nlohmann::ordered_json head;
    head["label"] = label;
    auto add = [&](const std::string& name, const at::Tensor& value) {
        if (name == "fc.weight") {
            const auto w = value.detach().to(torch::kFloat64).contiguous();
            head["weight"] =
                std::vector<double>(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
            return;
        }
        if (name == "fc.bias") {
            head["bias"] = value.detach().to(torch::kFloat64).item<double>();
            return;
        }
        const std::string key = hf_key(name);
        if (name == "conv1.weight") {
            // One grey channel → three identical channels, each carrying a third of the weight.
            tensors.push_back(
                encoders::tensor_entry(key, value.detach().repeat({1, 3, 1, 1}) / 3.0));
        } else {
            tensors.push_back(encoders::tensor_entry(key, value));
        }
    };
    for (const auto& item : model.named_parameters(true)) {
        add(item.key(), item.value());
    }
    for (const auto& item : model.named_buffers(true)) {
        add(item.key(), item.value());
    }
    RADPROBE_ASSERT(head.contains("weight") && head.contains("bias"),
                    "baseline export: the model has no fc layer");

    nlohmann::ordered_json config;
    config["architectures"] = {"ResNetModel"};
    config["model_type"] = "resnet";
    config["num_channels"] = 3;
    config["embedding_size"] = width;
    std::vector<int> widths;
    for (std::size_t s = 0; s < blocks.size(); ++s) {
        widths.push_back(width << s);
    }
    config["hidden_sizes"] = widths;
    config["depths"] = blocks;
    config["layer_type"] = "basic";
    config["hidden_act"] = "relu";
    config["downsample_in_first_stage"] = false;
    config["downsample_in_bottleneck"] = false;
    config["image_size"] = size;
    config["radprobe_source"] =
        "radprobe baseline --task cls (trained from scratch on '" + label + "')";
    nlohmann::ordered_json pre;
    pre["image_processor_type"] = "BitImageProcessor";
    pre["do_resize"] = true;
    pre["size"] = {{"height", size}, {"width", size}};
    pre["resample"] = 2;  // bilinear
    pre["do_center_crop"] = false;
    pre["do_rescale"] = true;
    pre["rescale_factor"] = 1.0 / 255.0;
    pre["do_normalize"] = true;
    pre["image_mean"] = {0.5, 0.5, 0.5};
    pre["image_std"] = {0.25, 0.25, 0.25};

    const fs::path partial = dir.string() + ".partial";
    std::error_code ec;
    fs::remove_all(partial, ec);
    fs::create_directories(partial, ec);
    RADPROBE_CHECK(fs::is_directory(partial), "baseline: cannot create directory ",
                   partial.string());
    write_file_atomic(partial / "model.safetensors",
                      encoders::serialize_safetensors(tensors, {{"format", "pt"}}));
    write_file_atomic(partial / "config.json", config.dump(2) + "\n");
    write_file_atomic(partial / "preprocessor_config.json", pre.dump(2) + "\n");
    write_file_atomic(partial / "radprobe_baseline_head.json", head.dump(2) + "\n");
    fs::remove_all(dir, ec);
    fs::rename(partial, dir, ec);
    RADPROBE_CHECK(!ec, "baseline: cannot rename ", partial.string(), " to ", dir.string(), ": ",
                   ec.message());
}

}  // namespace radprobe::adapt
