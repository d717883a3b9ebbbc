#pragma once
// Encoders of an experiment as model folders (private to experiment): the effective
// preprocessor_config.json (the model's own, or a default, with the config's overrides), the
// prepared folder each run reads (links to the weights + that preprocessor), the built-in random
// ViT, and the weights hash that identifies an encoder in run hashes.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "radprobe/experiment/experiment.hpp"

namespace radprobe::experiment::detail {

/// The preprocessor of a folder without one: a BitImageProcessor (bicubic, rescale 1/255,
/// normalise, centre crop).
nlohmann::json default_preprocessor();
/// `preprocessor` with the config's overrides applied.
nlohmann::json apply_override(nlohmann::json preprocessor, const PreprocessOverride& o);
/// The random ViT's parameters as hashed (and as written beside the generated weights).
nlohmann::json random_vit_json(const RandomVitParams& p);
/// The content hash of a folder's weights (all shards of a sharded checkpoint; open_clip and
/// PyTorch pickle folders included).
std::string weights_hash_of(const std::filesystem::path& dir);
/// The content hash of a folder's config.json (or open_clip_config.json; "" for a config-less
/// folder whose architecture is read from its weights).
std::string model_config_hash(const std::filesystem::path& dir);
/// Whether a folder without preprocessor_config.json has its publisher's preprocessing
/// nonetheless (open_clip_config.json's; DINO's for a torchvision ResNet; Ark's for a timm Swin):
/// encoders::read_preprocess_config derives it.
bool has_derived_preprocessor(const std::filesystem::path& dir);
/// The effective preprocessor_config.json of an encoder (its own, or the random ViT's, with the
/// config's overrides applied). For a random ViT not yet written: null.
nlohmann::json effective_preprocessor(const EncoderConfig& e, const std::filesystem::path& source);
/// Makes `dir` a model folder for the encoder: links to the source's files and the effective
/// preprocessor_config.json (with `generate`, a random ViT is generated there on first use).
void prepare_model_dir(const EncoderConfig& e, const std::filesystem::path& source,
                       const std::filesystem::path& dir, bool generate);
/// The encoder's prepared folder `<output.store>/models/<name>`, made (a random ViT is generated
/// there on first use) — what every step that loads the encoder reads.
std::filesystem::path prepare_encoder_folder(const ExperimentConfig& c, const EncoderConfig& e);

}  // namespace radprobe::experiment::detail
