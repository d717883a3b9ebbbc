#pragma once
// The CNN baseline as an encoder directory (internal to adapt; LibTorch).

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

namespace radprobe::adapt {

/// The trained from-scratch CNN of `radprobe baseline --task cls` (stem conv1/bn1, stages
/// layers.S.B.{conv1,bn1,conv2,bn2,downsample.{0,1}}, fc) written as a Hugging Face ResNetModel
/// directory (basic blocks, 3 input channels) that load_encoder() reads like any encoder, so
/// the analyses (perturbation panel, lesions) run on the supervised baseline's features:
///  - config.json: model_type resnet, layer_type basic, embedding_size = width, hidden_sizes =
///    width·2^s, depths = blocks, downsample_in_first_stage false (the baseline's layout);
///  - model.safetensors: the HF key of every parameter and BatchNorm buffer; the one-channel
///    stem weight W becomes W/3 on each of 3 channels, so a grey image replicated to 3 channels
///    gives exactly the baseline's activations;
///  - preprocessor_config.json: resize to size × size (bilinear), rescale to [0,1], normalise
///    with mean 0.5 / std 0.25 — the baseline's (x − 0.5)·4 input;
///  - radprobe_baseline_head.json: the classifier (fc weight and bias) and the label, so that
///    pooler_output · w + b reproduces the baseline's logits.
/// Written into a temporary sibling directory and renamed when complete.
void write_baseline_encoder(const torch::nn::Module& model, int width,
                            const std::vector<int>& blocks, int size, const std::string& label,
                            const std::filesystem::path& dir);

}  // namespace radprobe::adapt
