// The weight files of a model folder: headers first, data streamed one file at a time (see
// checkpoint_reader.hpp).

#include "checkpoint_reader.hpp"

#include <cstring>
#include <set>

#include "radprobe/core/error.hpp"
#include "radprobe/encoders/torch_pickle.hpp"

namespace radprobe::encoders::detail {

namespace fs = std::filesystem;

c10::ScalarType scalar_type_of(StDType dtype) {
    switch (dtype) {
        case StDType::kF16:
            return torch::kHalf;
        case StDType::kBF16:
            return torch::kBFloat16;
        case StDType::kF64:
            return torch::kFloat64;
        default:
            return torch::kFloat32;
    }
}

namespace {

bool is_pickle(const WeightFiles& w) {
    return w.kind == WeightFiles::Kind::kTorchPickle ||
           w.kind == WeightFiles::Kind::kShardedTorchPickle;
}

std::string format_of(const WeightFiles& w, PtFormat pickle_format) {
    std::string f = !is_pickle(w) ? std::string("safetensors")
                    : pickle_format == PtFormat::kZip
                        ? std::string("PyTorch pickle, zip format")
                        : std::string("PyTorch pickle, legacy format");
    return w.files.size() > 1 ? str_cat(f, ", ", w.files.size(), " shards") : f;
}

at::Tensor int64_tensor(const std::vector<std::int64_t>& values,
                        const std::vector<std::int64_t>& shape) {
    auto t = torch::empty(shape, torch::kInt64);
    std::memcpy(t.data_ptr<std::int64_t>(), values.data(), values.size() * 8);
    return t;
}

/// A safetensors entry as a tensor of its dtype: a view of the mapping when it is aligned for
/// its element type, else a copy.
at::Tensor safetensors_view(const SafetensorsFile& file, const StTensorInfo& info) {
    if (!st_dtype_is_float(info.dtype)) {
        return int64_tensor(file.read_int(info), info.shape);
    }
    const auto bytes = file.bytes(info);
    const auto type = scalar_type_of(info.dtype);
    const auto size = st_dtype_size(info.dtype);
    auto* data = const_cast<std::uint8_t*>(bytes.data());
    if (reinterpret_cast<std::uintptr_t>(data) % size == 0) {
        return torch::from_blob(data, info.shape, torch::TensorOptions().dtype(type));
    }
    auto t = torch::empty(info.shape, type);
    std::memcpy(t.data_ptr(), data, bytes.size());
    return t;
}

at::Tensor pickle_tensor(const PtTensorInfo& info) {
    if (!st_dtype_is_float(info.dtype)) {
        return int64_tensor(info.read_int(), info.shape);
    }
    auto t = torch::empty(info.shape, scalar_type_of(info.dtype));
    info.copy_to(t.data_ptr());
    return t;
}

}  // namespace

CheckpointReader::CheckpointReader(const fs::path& dir, const std::string& checkpoint_key,
                                   LoadReport& report)
    : files_(find_weight_files(dir)), checkpoint_key_(checkpoint_key), source_(dir.string()) {
    if (!is_pickle(files_)) {  // a pickle's key is checked where its headers are read below
        check_checkpoint_key(files_, checkpoint_key);
    }
    std::set<std::string> seen;
    PtFormat pickle_format = PtFormat::kZip;
    auto add = [&](std::size_t file, const std::string& name,
                   const std::vector<std::int64_t>& shape, StDType dtype, std::uint64_t bytes) {
        const std::string shard = files_.files[file].filename().string();
        if (!files_.shard_of.empty()) {
            const auto it = files_.shard_of.find(name);
            RADPROBE_CHECK(it != files_.shard_of.end() && it->second == shard, "shard ",
                           files_.files[file].string(), ": tensor \"", name, "\" is not mapped to ",
                           "this shard by ", files_.index.filename().string());
        }
        RADPROBE_CHECK(seen.insert(name).second, "shard ", files_.files[file].string(),
                       ": tensor \"", name, "\" also appears in another shard");
        tensors_.push_back({name, shape, dtype, file});
        report.dtypes[st_dtype_name(dtype)]++;
        report.stored_bytes += static_cast<std::int64_t>(bytes);
    };
    for (std::size_t f = 0; f < files_.files.size(); ++f) {
        report.files.push_back(files_.files[f].filename().string());
        if (is_pickle(files_)) {
            const auto ckpt = TorchCheckpoint::open(files_.files[f]);
            pickle_format = ckpt.format();
            for (const auto& [name, info] : ckpt.state_dict_tensors(checkpoint_key)) {
                add(f, name, info.shape, info.dtype, info.nbytes());
            }
            report.entry = ckpt.state_dict_entry(checkpoint_key);
            report.module_prefix_stripped = ckpt.strips_module_prefix(checkpoint_key);
        } else {
            const auto st = SafetensorsFile::open(files_.files[f]);
            for (const auto& info : st.tensors()) {
                add(f, info.name, info.shape, info.dtype, info.end - info.begin);
            }
        }
    }
    std::vector<std::string> absent;
    for (const auto& [name, shard] : files_.shard_of) {
        if (!seen.count(name)) {
            absent.push_back(name + " (" + shard + ")");
        }
    }
    RADPROBE_CHECK(absent.empty(), "file ", files_.index.string(), ": ", absent.size(),
                   " tensors listed in weight_map are not in their shard (e.g. ", absent.front(),
                   ")");
    report.format = format_of(files_, pickle_format);
}

void CheckpointReader::for_each(
    const std::function<void(const StoredTensor&, const at::Tensor&)>& sink) const {
    std::size_t next = 0;  // tensors_ is in file order
    for (std::size_t f = 0; f < files_.files.size(); ++f) {
        if (is_pickle(files_)) {
            const auto ckpt = TorchCheckpoint::open(files_.files[f]);
            const auto tensors = ckpt.state_dict_tensors(checkpoint_key_);
            for (; next < tensors_.size() && tensors_[next].file == f; ++next) {
                sink(tensors_[next], pickle_tensor(tensors.at(tensors_[next].name)));
            }
            continue;
        }
        const auto st = SafetensorsFile::open(files_.files[f]);
        for (; next < tensors_.size() && tensors_[next].file == f; ++next) {
            const StTensorInfo* info = st.find(tensors_[next].name);
            RADPROBE_ASSERT(info != nullptr, "tensor vanished from ", files_.files[f].string());
            sink(tensors_[next], safetensors_view(st, *info));
            st.release_pages(*info);
        }
    }
}

}  // namespace radprobe::encoders::detail
