#pragma once
// Private to encoders: the tensors of a model folder's weight files, read the way a large
// checkpoint needs (a DINOv3 ViT-7B is 13.4 GB of bf16 in several shards): the headers of every
// file first (names, shapes, dtypes: what the key mapping and the layout check need), then the
// data streamed one file at a time, each tensor handed over as a view in its stored dtype and its
// pages released once it was copied. No float32 copy of the checkpoint is ever made.

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "radprobe/encoders/encoder.hpp"
#include "radprobe/encoders/model_dir.hpp"
#include "radprobe/encoders/safetensors.hpp"

namespace radprobe::encoders::detail {

/// One tensor of the checkpoint as stored.
struct StoredTensor {
    std::string name;
    std::vector<std::int64_t> shape;
    StDType dtype = StDType::kF32;
    std::size_t file = 0;  ///< index into WeightFiles::files
};

class CheckpointReader {
public:
    /// Reads the headers of every weight file of `dir` (find_weight_files; a pickle's state dict
    /// chosen by `checkpoint_key`), checks a sharded index against its shards, and fills the
    /// file part of `report` (format, files, dtypes, stored bytes, pickle entry).
    CheckpointReader(const std::filesystem::path& dir, const std::string& checkpoint_key,
                     LoadReport& report);

    const std::vector<StoredTensor>& tensors() const { return tensors_; }
    const std::string& source() const { return source_; }

    /// Calls `sink` for every tensor, one file at a time, with its values as a CPU tensor of the
    /// stored dtype (floats: F16/BF16/F32/F64 as such; integers as int64). The tensor may view
    /// the file mapping: it is valid only during the call (copy what you keep).
    void for_each(const std::function<void(const StoredTensor&, const at::Tensor&)>& sink) const;

private:
    WeightFiles files_;
    std::string checkpoint_key_;
    std::string source_;  ///< the folder, for messages
    std::vector<StoredTensor> tensors_;
};

/// The LibTorch dtype of a stored floating-point dtype (F16/BF16/F32/F64).
c10::ScalarType scalar_type_of(StDType dtype);

}  // namespace radprobe::encoders::detail
