#pragma once
// Private to encoders (no LibTorch): VMamba as its publisher ships it (MzeroMiko/VMamba releases:
// a lone `.pth` holding {'model': VSSM state_dict}, no config). What the tensor names and shapes
// say about the architecture, the config.json radprobe writes for it, and the evaluation
// transform of the publisher's classification code.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "checkpoint_layout.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/preprocess/preprocess.hpp"

namespace radprobe::encoders::detail {

/// The config of a VMamba VSSM state dict (keys layers.S.blocks.B.op.A_logs ..., under any prefix)
/// as radprobe's config.json for model_type "vmamba": the publisher's VSSM argument names (dims,
/// depths, ssm_d_state, ssm_ratio, ssm_dt_rank, ssm_conv, mlp_ratio, forward_type, ...) read off
/// the shapes; image_size 224 (the released models' DATA.IMG_SIZE: not in the weights). Null
/// when the keys are not a VMamba's; InputError naming `file` and what is unsupported for a
/// VMamba layout other than the released v2 one (forward_type v05_noz: no z gate, LayerNorm2d
/// out_norm, depthwise convolution without bias; patch embedding v2; downsample v3; MLP blocks;
/// no position embedding), for VMamba v0/v1 (self_attention keys) and for the backbone-only
/// checkpoints of the detection/segmentation releases (no classifier.norm).
nlohmann::json vmamba_config(const ShapeMap& shapes, const std::filesystem::path& file);

/// Reads a model_type "vmamba" config.json (the keys vmamba_config writes; absent optional keys
/// take the released models' values) into `c`; InputError naming the file and the key otherwise.
void read_vmamba(const nlohmann::json& j, const std::filesystem::path& path, ModelConfig& c);

/// The publisher's evaluation transform (classification/data/build.py with config.py's defaults,
/// TEST.CROP True): resize the shorter side to int(256 / 224 · S) (bicubic), centre crop S × S,
/// ImageNet mean and std (timm IMAGENET_DEFAULT_*), for S = model.image_size.
preprocess::PreprocessConfig vmamba_preprocess(const ModelConfig& model);

/// One line on the state-space blocks for `radprobe models` (d_state, ssm_ratio, dt_rank, ...).
std::string vmamba_summary(const ModelConfig& c);

}  // namespace radprobe::encoders::detail
