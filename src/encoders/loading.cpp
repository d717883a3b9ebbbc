// Checkpoint loading (safetensors → tensors, sharded indexes, strict state loading), the
// architecture factory, and small LibTorch helpers.

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "checkpoint_layout.hpp"
#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "radprobe/encoders/torch_pickle.hpp"

namespace radprobe::encoders {

using preprocess::PreprocessConfig;

namespace {

namespace fs = std::filesystem;

at::Tensor to_tensor(const SafetensorsFile& file, const StTensorInfo& info) {
    if (st_dtype_is_float(info.dtype)) {
        auto t = torch::empty(info.shape, torch::kFloat32);
        file.read_float(info, t.data_ptr<float>());
        return t;
    }
    const auto values = file.read_int(info);
    auto t = torch::empty(info.shape, torch::kInt64);
    std::memcpy(t.data_ptr<std::int64_t>(), values.data(), values.size() * 8);
    return t;
}

void add_file(const fs::path& path, std::map<std::string, at::Tensor>& state,
              const std::map<std::string, std::string>* expected_names, const std::string& shard,
              LoadReport* report) {
    const SafetensorsFile file = SafetensorsFile::open(path);
    if (report != nullptr) {
        report->files.push_back(path.filename().string());
    }
    for (const auto& info : file.tensors()) {
        if (report != nullptr) {
            report->dtypes[st_dtype_name(info.dtype)]++;
            report->stored_bytes += static_cast<std::int64_t>(info.end - info.begin);
        }
        if (expected_names != nullptr) {
            const auto it = expected_names->find(info.name);
            RADPROBE_CHECK(it != expected_names->end() && it->second == shard, "shard ",
                           path.string(), ": tensor \"", info.name,
                           "\" is not mapped to this shard by model.safetensors.index.json");
        }
        RADPROBE_CHECK(state.find(info.name) == state.end(), "shard ", path.string(), ": tensor \"",
                       info.name, "\" also appears in another shard");
        state.emplace(info.name, to_tensor(file, info));
    }
}

std::string join_list(const std::vector<std::string>& items) {
    std::string s;
    for (const auto& x : items) {
        s += s.empty() ? "" : ", ";
        s += x;
    }
    return s;
}

std::string shape_str(at::IntArrayRef shape) {
    std::ostringstream os;
    os << "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        os << (i ? "," : "") << shape[i];
    }
    os << "]";
    return os.str();
}

std::string megabytes(std::int64_t bytes) {
    std::ostringstream os;
    os.precision(3);
    os << static_cast<double>(bytes) / 1e6 << " MB";
    return os.str();
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

c10::Device Encoder::device() const {
    const auto params = module().parameters();
    return params.empty() ? c10::Device(c10::kCPU) : params.front().device();
}

int Encoder::num_blocks() const {
    return static_cast<int>(config_.num_hidden_layers);
}

int Encoder::layer_id(const std::string& param_name) const {
    bool known = module().named_parameters(true).contains(param_name) ||
                 module().named_buffers(true).contains(param_name);
    RADPROBE_USAGE_CHECK(known, "layer_id: \"", param_name, "\" is not a parameter of this ",
                         config_.model_type, " model");
    const detail::DepthLayout& layout = detail::find_architecture(config_.model_type)->depth;
    for (const auto& prefix : layout.embed_prefixes) {
        if (starts_with(param_name, prefix)) {
            return 0;
        }
    }
    if (starts_with(param_name, layout.block_prefix)) {
        const std::string rest = param_name.substr(layout.block_prefix.size());
        const auto dot = rest.find('.');
        RADPROBE_ASSERT(dot != std::string::npos && dot > 0, "unexpected parameter name ",
                        param_name);
        const int block = std::stoi(rest.substr(0, dot));
        RADPROBE_ASSERT(block >= 0 && block < num_blocks(), "block index out of range in ",
                        param_name);
        return block + 1;
    }
    return num_blocks() + 1;
}

StTensorData tensor_entry(const std::string& name, const at::Tensor& value) {
    StTensorData t;
    t.name = name;
    t.shape.assign(value.sizes().begin(), value.sizes().end());
    if (value.is_floating_point()) {
        const auto v = value.detach().to(c10::kCPU, torch::kFloat32).contiguous();
        t.dtype = StDType::kF32;
        t.bytes.resize(static_cast<std::size_t>(v.numel()) * 4);
        std::memcpy(t.bytes.data(), v.data_ptr<float>(), t.bytes.size());
    } else {
        const auto v = value.detach().to(c10::kCPU, torch::kInt64).contiguous();
        t.dtype = StDType::kI64;
        t.bytes.resize(static_cast<std::size_t>(v.numel()) * 8);
        std::memcpy(t.bytes.data(), v.data_ptr<std::int64_t>(), t.bytes.size());
    }
    return t;
}

void Encoder::save_pretrained(const fs::path& dir) const {
    RADPROBE_CHECK(input_channels() == config_.num_channels,
                   "save_pretrained: the patch embedding of this ", config_.model_type,
                   " encoder was folded for grey input (fold_grayscale), so it no longer has the "
                   "checkpoint layout; save an unfolded encoder");
    RADPROBE_CHECK(!config_.config_json.empty(),
                   "save_pretrained: the encoder has no config.json "
                   "text to write (it was not loaded from a directory)");
    std::vector<StTensorData> tensors;
    auto add = [&](const std::string& name, const at::Tensor& value) {
        tensors.push_back(tensor_entry(name, value));
    };
    for (const auto& item : module().named_parameters(true)) {
        add(item.key(), item.value());
    }
    for (const auto& item : module().named_buffers(true)) {
        add(item.key(), item.value());
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    RADPROBE_CHECK(fs::is_directory(dir, ec), "save_pretrained: cannot create directory ",
                   dir.string());
    write_file_atomic(dir / "model.safetensors",
                      serialize_safetensors(tensors, {{"format", "pt"}}));
    write_file_atomic(dir / config_.config_file, config_.config_json);
    if (!config_.preprocessor_json.empty()) {
        write_file_atomic(dir / "preprocessor_config.json", config_.preprocessor_json);
    }
}

namespace {

/// A tensor of a PyTorch pickle as radprobe holds weights: floats as float32, integers as int64.
at::Tensor to_tensor(const PtTensorInfo& info) {
    if (st_dtype_is_float(info.dtype)) {
        auto t = torch::empty(info.shape, torch::kFloat32);
        info.read_float(t.data_ptr<float>());
        return t;
    }
    const auto values = info.read_int();
    auto t = torch::empty(info.shape, torch::kInt64);
    std::memcpy(t.data_ptr<std::int64_t>(), values.data(), values.size() * 8);
    return t;
}

void add_pickle(const fs::path& path, std::map<std::string, at::Tensor>& state,
                LoadReport* report) {
    const TorchCheckpoint checkpoint = TorchCheckpoint::open(path);
    for (const auto& [name, info] : checkpoint.state_dict_tensors()) {
        if (report != nullptr) {
            report->dtypes[st_dtype_name(info.dtype)]++;
            report->stored_bytes += static_cast<std::int64_t>(info.nbytes());
        }
        state.emplace(name, to_tensor(info));
    }
    if (report != nullptr) {
        report->files.push_back(path.filename().string());
        report->format = checkpoint.format() == PtFormat::kZip ? "PyTorch pickle, zip format"
                                                               : "PyTorch pickle, legacy format";
    }
}

/// The tensors of a checkpoint (see load_safetensors_state); what was read goes to `report`
/// when given.
std::map<std::string, at::Tensor> read_checkpoint(const fs::path& model_dir, LoadReport* report) {
    const WeightFiles w = find_weight_files(model_dir);
    std::map<std::string, at::Tensor> state;
    if (w.kind == WeightFiles::Kind::kTorchPickle) {
        add_pickle(w.files.front(), state, report);
        return state;
    }
    if (report != nullptr) {
        report->format = w.kind == WeightFiles::Kind::kSafetensors
                             ? std::string("safetensors")
                             : str_cat("safetensors, ", w.files.size(), " shards");
    }
    for (const auto& file : w.files) {
        const auto shard = file.filename().string();
        add_file(file, state, w.shard_of.empty() ? nullptr : &w.shard_of, shard, report);
    }
    std::vector<std::string> absent;
    for (const auto& [name, shard] : w.shard_of) {
        if (state.find(name) == state.end()) {
            absent.push_back(name + " (" + shard + ")");
        }
    }
    RADPROBE_CHECK(absent.empty(), "file ", w.index.string(), ": ", absent.size(),
                   " tensors listed in weight_map are not in their shard (e.g. ", absent.front(),
                   ")");
    return state;
}

}  // namespace

std::map<std::string, at::Tensor> load_safetensors_state(const fs::path& model_dir) {
    return read_checkpoint(model_dir, nullptr);
}

namespace detail {

void load_backbone(torch::nn::Module& module, const std::map<std::string, at::Tensor>& state,
                   const std::string& source, const std::string& arch, LoadReport& report) {
    std::map<std::string, at::Tensor> targets;
    for (const auto& item : module.named_parameters(true)) {
        targets.emplace(item.key(), item.value());
    }
    for (const auto& item : module.named_buffers(true)) {
        targets.emplace(item.key(), item.value());
    }
    ShapeMap expected, stored;
    for (const auto& [name, t] : targets) {
        expected[name] = t.sizes().vec();
    }
    for (const auto& [name, t] : state) {
        stored[name] = t.sizes().vec();
    }
    const LayoutMatch match = resolve_layout(expected, stored, source, arch);
    std::vector<std::string> mistyped;
    for (const auto& [name, target] : targets) {
        const auto& src = state.at(match.source.at(name));
        if (src.is_floating_point() != target.is_floating_point()) {
            mistyped.push_back(name + " " + std::string(c10::toString(src.scalar_type())) +
                               " vs expected " + std::string(c10::toString(target.scalar_type())));
        }
    }
    RADPROBE_CHECK(mistyped.empty(), "checkpoint ", source, " does not match the ", arch,
                   " architecture: ", mistyped.size(), " keys of the wrong dtype (e.g. ",
                   mistyped.front(), ")");
    torch::NoGradGuard no_grad;
    for (auto& [name, target] : targets) {
        target.copy_(state.at(match.source.at(name)));
        report.held_bytes += target.numel() * static_cast<std::int64_t>(target.element_size());
    }
    report.prefix = match.prefix;
    report.ignored_tensors = static_cast<std::int64_t>(match.ignored.size());
    report.ignored = summarize_keys(match.ignored);
}

}  // namespace detail

std::string LoadReport::note() const {
    std::vector<std::string> parts;
    if (!key_names.empty()) {
        parts.push_back(key_names);
    }
    if (!prefix.empty()) {
        parts.push_back("backbone read from under the prefix '" + prefix + "'");
    }
    if (ignored_tensors > 0) {
        parts.push_back(
            str_cat("ignored ", ignored_tensors, " tensors outside the backbone: ", ignored));
    }
    if (pooler_absent) {
        parts.push_back("no pooler in the checkpoint (no pooled output)");
    }
    std::string line;
    for (const auto& part : parts) {
        line += (line.empty() ? "" : "; ") + part;
    }
    return line;
}

std::unique_ptr<Encoder> load_encoder(const fs::path& model_dir) {
    ModelConfig config = read_model_config(model_dir);
    const auto* arch = detail::find_architecture(config.model_type);
    RADPROBE_ASSERT(arch != nullptr, "model_type ", config.model_type,
                    " read by read_model_config but not in the architecture table");
    LoadReport report;
    auto state = read_checkpoint(config.dir, &report);
    if (config.weights_layout == "torchvision_resnet") {
        std::map<std::string, at::Tensor> renamed;
        for (auto& [name, t] : state) {
            renamed.emplace(detail::torchvision_resnet_key(name), std::move(t));
        }
        state = std::move(renamed);
        report.key_names = "torchvision ResNet key names, renamed to HF ResNet's";
    }
    if (config.model_type == "vit") {  // ViTModel(add_pooling_layer=False) in task models
        config.has_pooler = std::any_of(state.begin(), state.end(), [](const auto& item) {
            return item.first == "pooler.dense.weight" ||
                   item.first.ends_with(".pooler.dense.weight");
        });
        report.pooler_absent = !config.has_pooler;
    }
    auto encoder = arch->build(config);
    detail::load_backbone(encoder->module(), state, config.dir.string(),
                          config.composite_type.empty() ? config.model_type : config.composite_type,
                          report);
    encoder->set_load_report(std::move(report));
    encoder->prepare();
    return encoder;
}

TokenSplit split_tokens(const at::Tensor& sequence, std::int64_t num_registers, std::int64_t grid_h,
                        std::int64_t grid_w, bool has_cls) {
    const std::int64_t c = has_cls ? 1 : 0;
    RADPROBE_CHECK(sequence.dim() == 3 && sequence.size(1) == c + num_registers + grid_h * grid_w,
                   "token sequence of shape ", shape_str(sequence.sizes()), " does not hold ", c,
                   " + ", num_registers, " + ", grid_h, "x", grid_w, " tokens");
    const std::int64_t n = sequence.size(0);
    const std::int64_t d = sequence.size(2);
    TokenSplit s;
    if (has_cls) {
        s.cls = sequence.select(1, 0);
    }
    s.registers = sequence.narrow(1, c, num_registers);
    s.patches =
        sequence.narrow(1, c + num_registers, grid_h * grid_w).reshape({n, grid_h, grid_w, d});
    return s;
}

int cuda_device_count() {
    return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

int set_threads(int threads) {
    const int n = threads > 0 ? threads : available_threads();
    at::set_num_threads(n);
    return n;
}

std::string describe_model_dir(const fs::path& model_dir) {
    const ModelConfig c = read_model_config(model_dir);
    auto encoder = load_encoder(model_dir);
    std::ostringstream os;
    auto list = [](const std::vector<std::int64_t>& v) {
        std::ostringstream l;
        l << "[";
        for (std::size_t k = 0; k < v.size(); ++k) {
            l << (k ? "," : "") << v[k];
        }
        l << "]";
        return l.str();
    };
    os << "directory:      " << c.dir.string() << "\n"
       << "architecture:   "
       << (c.composite_type.empty() ? "" : "vision tower of a " + c.composite_type + " model: ")
       << (c.weights_layout.empty() ? "" : "inferred from the weights (no config.json): ")
       << c.model_type << (c.use_swiglu_ffn ? " (SwiGLU feed-forward)" : "")
       << (c.use_gated_mlp ? " (gated MLP)" : "") << " - " << model_type_description(c.model_type)
       << "\n";
    if (c.is_hierarchical()) {
        const std::int64_t g = c.image_size / c.patch_size;
        os << "stages:         " << c.depths.size() << " (depths " << list(c.depths) << ", widths "
           << list(c.stage_widths);
        if (!c.stage_heads.empty()) {
            os << ", heads " << list(c.stage_heads) << ", window " << c.window_size << ", patch "
               << c.embed_patch_size;
        }
        os << ")\n"
           << "output width:   " << c.hidden_size << "\n"
           << "token stride:   " << c.patch_size << " px (the last stage's grid)\n"
           << "native input:   " << c.image_size << "x" << c.image_size << " px (" << g << "x" << g
           << " last-stage cells)\n"
           << "token layout:   [" << g * g << " last-stage cells row-major], no CLS, no registers\n"
           << "hidden states:  0 = stem/patch embedding, 1.." << c.depths.size()
           << " = stage outputs\n";
    } else {
        const std::int64_t g = c.native_grid();
        const std::int64_t cls = c.has_cls_token ? 1 : 0;
        os << "hidden size:    " << c.hidden_size << "\n"
           << "layers:         " << c.num_hidden_layers << "\n"
           << "heads:          " << c.num_attention_heads << "\n"
           << "patch size:     " << c.patch_size << "\n"
           << "native input:   " << c.image_size << "x" << c.image_size << " px (" << g << "x" << g
           << " patches)\n"
           << "token layout:   [" << (c.has_cls_token ? "CLS, " : "no CLS, ")
           << c.num_register_tokens << " registers, " << g * g
           << " patches row-major] = " << cls + c.num_register_tokens + g * g
           << " tokens at native size\n";
    }
    const LoadReport& r = encoder->load_report();
    std::string dtypes;
    for (const auto& [dtype, n] : r.dtypes) {
        dtypes += str_cat(dtypes.empty() ? "" : ", ", dtype, " x", n);
    }
    os << "weights:        " << join_list(r.files) << " (" << r.format << "; " << dtypes << "), "
       << megabytes(r.stored_bytes) << " stored, " << megabytes(r.held_bytes)
       << " in memory (floats as float32)\n"
       << "layout:         "
       << (r.note().empty() ? std::string("exactly the backbone's keys") : r.note()) << "\n";
    os << "parameters:     " << encoder->num_parameters() << "\n"
       << "GFLOP/image:    " << encoder->flops_per_image(c.image_size, c.image_size) / 1e9
       << " at native size\n";
    if (c.projection_dim > 0) {
        os << "projection:     " << c.projection_dim
           << " (image-text embedding: the 'projected' output)\n";
    }
    std::error_code ec;
    if (fs::exists(c.dir / "preprocessor_config.json", ec) || c.config_file != "config.json" ||
        !c.weights_layout.empty()) {
        const PreprocessConfig p = read_preprocess_config(c.dir);
        os << "preprocessing:  " << (p.processor_type.empty() ? "?" : p.processor_type);
        if (p.do_resize) {
            if (p.shortest_edge > 0) {
                os << ", resize shortest edge " << p.shortest_edge;
            } else {
                os << ", resize " << p.resize_height << "x" << p.resize_width;
            }
        }
        if (p.do_center_crop) {
            os << ", centre crop " << p.crop_height << "x" << p.crop_width;
        }
        os << ", mean [" << p.image_mean[0] << ", " << p.image_mean[1] << ", " << p.image_mean[2]
           << "], std [" << p.image_std[0] << ", " << p.image_std[1] << ", " << p.image_std[2]
           << "]\n";
    } else {
        os << "preprocessing:  no preprocessor_config.json\n";
    }
    return os.str();
}

at::Tensor tensor_from_npy(const NpyArray& array) {
    RADPROBE_CHECK(array.dtype == DType::kFloat32, "array must be float32 (numpy '<f4')");
    auto t = torch::empty(array.shape, torch::kFloat32);
    std::memcpy(t.data_ptr<float>(), array.data.data(), array.data.size());
    return t;
}

NpyArray npy_from_tensor(const at::Tensor& tensor) {
    const auto t = tensor.to(torch::kFloat32).contiguous();
    NpyArray a;
    a.dtype = DType::kFloat32;
    a.shape.assign(t.sizes().begin(), t.sizes().end());
    a.data.resize(static_cast<std::size_t>(t.numel()) * 4);
    std::memcpy(a.data.data(), t.data_ptr<float>(), a.data.size());
    return a;
}

}  // namespace radprobe::encoders
