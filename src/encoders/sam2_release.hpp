#pragma once
// Private to encoders (no LibTorch): SAM 2 as its publisher releases it (facebookresearch/sam2:
// sam2.1_hiera_{tiny,small,base_plus,large}.pt holding {'model': SAM2Base state_dict}, with the
// Hydra configs sam2/configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml in the repository). Its image
// encoder is the one HF Sam2VisionModel implements, under other names.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "checkpoint_layout.hpp"

namespace radprobe::encoders::detail {

/// The HF Sam2VisionModel config.json (model_type sam2_vision_model) of a release checkpoint
/// (keys image_encoder.trunk.* and image_encoder.neck.*), or null when the keys are not one.
/// What the weights hold is read off them (widths, blocks per stage, the stages' starts, the MLP
/// ratio, the position tables' sizes, the neck's width and kernel); what they do not (heads,
/// global-attention blocks, windows of stages 2-4, query-pool stages, the top-down levels, scalp,
/// image size) comes from the publisher's config .yaml beside the file when there is one, else
/// from the published configuration with the same width and blocks (Hiera t, s, b+, l).
/// InputError naming the file and the reason when neither applies or the yaml disagrees.
nlohmann::json sam2_release_config(const ShapeMap& shapes, const std::filesystem::path& file);

/// A release key as HF Sam2VisionModel names it: image_encoder.trunk.X → backbone.X with
/// patch_embed.proj → patch_embed.projection, norm1/norm2 → layer_norm1/layer_norm2,
/// mlp.layers.0/1 → mlp.proj_in/proj_out; image_encoder.neck.convs.J.conv.X → neck.convs.J.X.
/// Other keys (memory, prompt encoder, mask decoder) are returned unchanged (set aside).
MappedKey sam2_release_key(const std::string& key);

}  // namespace radprobe::encoders::detail
