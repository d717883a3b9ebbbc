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

#include "internal.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/encoders/safetensors.hpp"

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
              const std::map<std::string, std::string>* expected_names, const std::string& shard) {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (const auto& info : file.tensors()) {
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

std::string pickle_advice(const fs::path& pickle, const fs::path& dir) {
    return str_cat("file ", pickle.string(),
                   ": PyTorch pickle checkpoints are refused (unpickling can run arbitrary code); "
                   "convert it once with: python3 -c \"import torch; from safetensors.torch import "
                   "save_file; sd = torch.load('",
                   pickle.string(),
                   "', map_location='cpu'); save_file({k: v.contiguous() for k, v in "
                   "sd.items()}, '",
                   (dir / "model.safetensors").string(), "', metadata={'format': 'pt'})\"");
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

std::map<std::string, at::Tensor> load_safetensors_state(const fs::path& model_dir) {
    std::error_code ec;
    std::map<std::string, at::Tensor> state;
    if (fs::is_regular_file(model_dir, ec)) {
        if (model_dir.extension() == ".bin" || model_dir.extension() == ".pth" ||
            model_dir.extension() == ".pt") {
            RADPROBE_CHECK(false, pickle_advice(model_dir, model_dir.parent_path()));
        }
        add_file(model_dir, state, nullptr, "");
        return state;
    }
    RADPROBE_CHECK(fs::is_directory(model_dir, ec), "model directory ", model_dir.string(),
                   ": does not exist");
    const fs::path single = model_dir / "model.safetensors";
    const fs::path index = model_dir / "model.safetensors.index.json";
    const fs::path open_clip = model_dir / "open_clip_model.safetensors";
    if (fs::exists(single, ec)) {
        add_file(single, state, nullptr, "");
        return state;
    }
    if (fs::exists(open_clip, ec)) {
        add_file(open_clip, state, nullptr, "");
        return state;
    }
    if (fs::exists(index, ec)) {
        const auto j = nlohmann::json::parse(read_file_text(index), nullptr, false);
        RADPROBE_CHECK(!j.is_discarded() && j.is_object() && j.contains("weight_map") &&
                           j["weight_map"].is_object(),
                       "file ", index.string(), ": not a JSON object with a \"weight_map\" object");
        std::map<std::string, std::string> names;
        std::set<std::string> shards;
        for (const auto& [name, shard] : j["weight_map"].items()) {
            RADPROBE_CHECK(shard.is_string(), "file ", index.string(), ": weight_map[\"", name,
                           "\"] is not a file name");
            const auto file = shard.get<std::string>();
            RADPROBE_CHECK(!file.empty() && file.find('/') == std::string::npos &&
                               file.find('\\') == std::string::npos && file != "." && file != "..",
                           "file ", index.string(), ": shard name \"", file,
                           "\" must be a file name inside the model directory");
            names[name] = file;
            shards.insert(file);
        }
        RADPROBE_CHECK(!names.empty(), "file ", index.string(), ": weight_map is empty");
        for (const auto& shard : shards) {
            add_file(model_dir / shard, state, &names, shard);
        }
        std::vector<std::string> absent;
        for (const auto& [name, shard] : names) {
            if (state.find(name) == state.end()) {
                absent.push_back(name + " (" + shard + ")");
            }
        }
        RADPROBE_CHECK(absent.empty(), "file ", index.string(), ": ", absent.size(),
                       " tensors listed in weight_map are not in their shard: ", join_list(absent));
        return state;
    }
    for (const char* pickle : {"pytorch_model.bin", "model.bin", "model.pth", "model.pt",
                               "open_clip_pytorch_model.bin"}) {
        if (fs::exists(model_dir / pickle, ec)) {
            RADPROBE_CHECK(false, pickle_advice(model_dir / pickle, model_dir));
        }
    }
    RADPROBE_CHECK(false, "model directory ", model_dir.string(),
                   ": no model.safetensors or model.safetensors.index.json");
    return state;
}

namespace detail {

void load_state_strict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& state,
                       const std::string& source) {
    std::map<std::string, at::Tensor> targets;
    for (const auto& item : module.named_parameters(true)) {
        targets.emplace(item.key(), item.value());
    }
    for (const auto& item : module.named_buffers(true)) {
        targets.emplace(item.key(), item.value());
    }
    std::vector<std::string> missing, unexpected, mismatched;
    for (const auto& [name, target] : targets) {
        const auto it = state.find(name);
        if (it == state.end()) {
            missing.push_back(name);
            continue;
        }
        const auto& src = it->second;
        if (src.sizes() != target.sizes()) {
            mismatched.push_back(name + " " + shape_str(src.sizes()) + " vs expected " +
                                 shape_str(target.sizes()));
        } else if (src.is_floating_point() != target.is_floating_point()) {
            mismatched.push_back(name + " dtype " + std::string(c10::toString(src.scalar_type())) +
                                 " vs expected " +
                                 std::string(c10::toString(target.scalar_type())));
        }
    }
    for (const auto& [name, _] : state) {
        if (targets.find(name) == targets.end()) {
            unexpected.push_back(name);
        }
    }
    if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
        std::ostringstream msg;
        msg << "checkpoint " << source << " does not match the architecture:";
        const char* sep = " ";
        if (!missing.empty()) {
            msg << sep << missing.size() << " missing keys: " << join_list(missing);
            sep = "; ";
        }
        if (!unexpected.empty()) {
            msg << sep << unexpected.size() << " unexpected keys: " << join_list(unexpected);
            sep = "; ";
        }
        if (!mismatched.empty()) {
            msg << sep << mismatched.size() << " mis-shaped keys: " << join_list(mismatched);
        }
        throw InputError(msg.str());
    }
    torch::NoGradGuard no_grad;
    for (auto& [name, target] : targets) {
        target.copy_(state.at(name));
    }
}

}  // namespace detail

std::unique_ptr<Encoder> load_encoder(const fs::path& model_dir) {
    const ModelConfig config = read_model_config(model_dir);
    const auto* arch = detail::find_architecture(config.model_type);
    RADPROBE_ASSERT(arch != nullptr, "model_type ", config.model_type,
                    " read by read_model_config but not in the architecture table");
    auto encoder = arch->build(config);
    auto state = load_safetensors_state(config.dir);
    if (config.model_type == "open_clip_timm_vit") {
        // A full open_clip checkpoint also holds the text tower and logit_scale.
        std::erase_if(state, [](const auto& item) { return !starts_with(item.first, "visual."); });
    }
    detail::load_state_strict(encoder->module(), state, config.dir.string());
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
       << "architecture:   " << c.model_type << (c.use_swiglu_ffn ? " (SwiGLU feed-forward)" : "")
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
    os << "parameters:     " << encoder->num_parameters() << "\n"
       << "GFLOP/image:    " << encoder->flops_per_image(c.image_size, c.image_size) / 1e9
       << " at native size\n";
    if (c.projection_dim > 0) {
        os << "projection:     " << c.projection_dim
           << " (image-text embedding: the 'projected' output)\n";
    }
    std::error_code ec;
    if (fs::exists(c.dir / "preprocessor_config.json", ec) || c.config_file != "config.json") {
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
