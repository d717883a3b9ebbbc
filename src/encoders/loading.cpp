// Checkpoint loading (safetensors → tensors, sharded indexes, strict state loading), the
// architecture factory, and small LibTorch helpers.

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "checkpoint_layout.hpp"
#include "checkpoint_reader.hpp"
#include "internal.hpp"
#include "radprobe/core/blas_kernel.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"
#include "radprobe/core/parallel.hpp"
#include "radprobe/encoders/safetensors.hpp"
#include "radprobe/encoders/torch_pickle.hpp"
#include "sam2_release.hpp"
#include "vmamba_layout.hpp"

namespace radprobe::encoders {

using preprocess::PreprocessConfig;

namespace {

namespace fs = std::filesystem;

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

/// The stage holding block `block` of blocks numbered across stages of `depths` blocks each
/// (depths.size() when past the last).
int stage_holding(const std::vector<std::int64_t>& depths, int block) {
    std::int64_t end = 0;
    for (std::size_t s = 0; s < depths.size(); ++s) {
        end += depths[s];
        if (block < end) {
            return static_cast<int>(s);
        }
    }
    return static_cast<int>(depths.size());
}

}  // namespace

c10::Device parse_device(const std::string& text) {
    if (text == "cpu") {
        return c10::Device(c10::kCPU);
    }
    RADPROBE_USAGE_CHECK(text.rfind("cuda", 0) == 0, "--device '", text,
                         "': expected cpu, cuda or cuda:N");
    int index = 0;
    if (text != "cuda") {
        const std::string rest = text.substr(4);
        RADPROBE_USAGE_CHECK(rest.size() >= 2 && rest[0] == ':' && rest.size() <= 4 &&
                                 std::all_of(rest.begin() + 1, rest.end(),
                                             [](char c) { return c >= '0' && c <= '9'; }),
                             "--device '", text, "': expected cpu, cuda or cuda:N");
        index = std::stoi(rest.substr(1));
    }
    RADPROBE_CHECK(torch::cuda::is_available(), "--device ", text,
                   ": this LibTorch build has no usable CUDA device (use --device cpu)");
    const int count = static_cast<int>(torch::cuda::device_count());
    RADPROBE_CHECK(index < count, "--device ", text, ": only ", count, " CUDA device(s) visible");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

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
        int block = std::stoi(rest.substr(0, dot));
        if (layout.blocks_across_stages) {
            block = stage_holding(config_.depths, block);
        }
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
    std::string pre = config_.preprocessor_json;
    if (pre.empty() && !config_.weights_layout.empty()) {  // derived from a config-less layout
        pre = preprocessor_json(
            read_preprocess_config(config_.dir, LoadOptions::with_key(config_.checkpoint_key)));
    }
    if (!pre.empty()) {
        write_file_atomic(dir / "preprocessor_config.json", pre);
    }
}

std::map<std::string, at::Tensor> load_safetensors_state(const fs::path& model_dir) {
    LoadReport report;
    const detail::CheckpointReader reader(model_dir, "", report);
    std::map<std::string, at::Tensor> state;
    reader.for_each([&](const detail::StoredTensor& stored, const at::Tensor& value) {
        state.emplace(stored.name, value.is_floating_point()
                                       ? value.to(torch::kFloat32, false, /*copy=*/true)
                                       : value.clone());
    });
    return state;
}

std::string LoadReport::note() const {
    std::vector<std::string> parts;
    if (!entry.empty()) {
        parts.push_back("weights read from the checkpoint's '" + entry + "' entry");
    }
    if (module_prefix_stripped) {
        parts.push_back("'module.' removed from every key");
    }
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

namespace {

using KeyMapper = std::function<detail::MappedKey(const std::string&)>;

/// How the checkpoint's names become the architecture's (weights_layout), said in the report.
KeyMapper key_mapper(const ModelConfig& config, const detail::CheckpointReader& reader,
                     LoadReport& report) {
    if (config.weights_layout == "torchvision_resnet") {
        report.key_names = "torchvision ResNet key names, renamed to HF ResNet's";
        return [](const std::string& k) {
            return detail::MappedKey{{detail::torchvision_resnet_key(k)}};
        };
    }
    if (config.weights_layout == "timm_swin") {
        const auto& t = reader.tensors();
        const bool at_end = std::any_of(t.begin(), t.end(), [](const auto& stored) {
            return stored.name.starts_with("layers.0.downsample.");
        });
        report.key_names = str_cat("timm Swin key names (timm ", at_end ? "< 0.9" : ">= 0.9",
                                   " layout), mapped to HF Swin's (fused qkv split)");
        return [at_end](const std::string& k) { return detail::timm_swin_key(k, at_end); };
    }
    if (config.weights_layout == "sam2_release") {
        report.key_names =
            "SAM 2 release key names (image_encoder.trunk/neck), mapped to HF "
            "Sam2VisionModel's";
        return detail::sam2_release_key;
    }
    if (config.weights_layout == "open_clip_vit") {
        report.key_names = "open_clip ViT key names (visual.*), mapped to HF CLIP's";
        return detail::open_clip_vit_key;
    }
    return [](const std::string& k) { return detail::MappedKey{{k}}; };
}

/// Where a tensor under the architecture's name comes from: part `part` of `parts` equal parts
/// (dim 0) of stored tensor `stored`, transposed or not.
struct MappedSource {
    std::size_t stored = 0;
    std::int64_t part = 0;
    std::int64_t parts = 1;
    bool transpose = false;
};

struct MappedCheckpoint {
    std::map<std::string, MappedSource> sources;
    detail::ShapeMap shapes;
    std::vector<std::vector<std::string>> names;  ///< per stored tensor, its mapped names
};

MappedCheckpoint map_checkpoint(const detail::CheckpointReader& reader, const KeyMapper& map) {
    MappedCheckpoint m;
    m.names.resize(reader.tensors().size());
    for (std::size_t i = 0; i < reader.tensors().size(); ++i) {
        const auto& t = reader.tensors()[i];
        const detail::MappedKey key = map(t.name);
        m.names[i] = key.names;
        const auto parts = static_cast<std::int64_t>(key.names.size());
        RADPROBE_CHECK(parts <= 1 || (!t.shape.empty() && t.shape[0] % parts == 0), "checkpoint ",
                       reader.source(), ": ", t.name, " cannot be split into ", parts,
                       " equal parts");
        RADPROBE_CHECK(!key.transpose || t.shape.size() == 2, "checkpoint ", reader.source(), ": ",
                       t.name, " should be a matrix");
        for (std::int64_t k = 0; k < parts; ++k) {
            std::vector<std::int64_t> shape = t.shape;
            if (parts > 1) {
                shape[0] /= parts;
            }
            if (key.transpose) {
                std::swap(shape[0], shape[1]);
            }
            const auto& name = key.names[static_cast<std::size_t>(k)];
            RADPROBE_CHECK(m.sources.emplace(name, MappedSource{i, k, parts, key.transpose}).second,
                           "checkpoint ", reader.source(), ": ", t.name,
                           " and another tensor both map to ", name);
            m.shapes[name] = shape;
        }
    }
    return m;
}

at::Tensor mapped_value(const at::Tensor& stored, const MappedSource& s) {
    const at::Tensor v = s.parts > 1 ? stored.chunk(s.parts, 0)[s.part] : stored;
    return s.transpose ? v.t() : v;
}

/// The Swin relative position index of a w×w window (HF and timm compute the same buffer; timm
/// >= 0.9 does not save it).
at::Tensor swin_relative_position_index(std::int64_t w) {
    const auto coords =
        torch::stack(torch::meshgrid({torch::arange(w), torch::arange(w)}, "ij")).flatten(1);
    auto rel = (coords.unsqueeze(2) - coords.unsqueeze(1)).permute({1, 2, 0}).contiguous();
    rel.select(2, 0).add_(w - 1).mul_(2 * w - 1);
    rel.select(2, 1).add_(w - 1);
    return rel.sum(-1);
}

/// The module's parameters and buffers by name.
std::map<std::string, at::Tensor> targets_of(torch::nn::Module& module) {
    std::map<std::string, at::Tensor> targets;
    for (const auto& item : module.named_parameters(true)) {
        targets.emplace(item.key(), item.value());
    }
    for (const auto& item : module.named_buffers(true)) {
        targets.emplace(item.key(), item.value());
    }
    return targets;
}

/// Buffers the loader makes when a layout does not store them (timm >= 0.9 Swin's relative
/// position indices), added to `m` so that the layout check sees them.
std::map<std::string, at::Tensor> synthesized(const ModelConfig& config,
                                              const std::map<std::string, at::Tensor>& targets,
                                              MappedCheckpoint& m) {
    std::map<std::string, at::Tensor> made;
    if (config.weights_layout != "timm_swin") {
        return made;
    }
    for (const auto& [name, t] : targets) {
        if (name.ends_with("relative_position_index") && !m.shapes.count(name)) {
            const auto w = static_cast<std::int64_t>(std::lround(std::sqrt(t.size(0))));
            made.emplace(name, swin_relative_position_index(w));
            m.shapes[name] = t.sizes().vec();
        }
    }
    return made;
}

/// Copies the backbone out of the checkpoint into `module`: the layout check of
/// checkpoint_layout.hpp (prefix, set-aside keys, strict backbone), a float/integer check, then
/// the data streamed file by file into the parameters (converted to their dtype).
void load_backbone(torch::nn::Module& module, const ModelConfig& config,
                   const detail::CheckpointReader& reader, MappedCheckpoint m,
                   const std::string& arch, LoadReport& report) {
    auto targets = targets_of(module);
    const auto made = synthesized(config, targets, m);
    detail::ShapeMap expected;
    for (const auto& [name, t] : targets) {
        expected[name] = t.sizes().vec();
    }
    const detail::LayoutMatch match =
        detail::resolve_layout(expected, m.shapes, reader.source(), arch);
    std::map<std::string, std::string> target_of;  // mapped name → module name
    std::vector<std::string> mistyped;
    for (const auto& [name, target] : targets) {
        const auto& source = match.source.at(name);
        target_of[source] = name;
        if (made.count(source)) {
            continue;
        }
        const auto& stored = reader.tensors()[m.sources.at(source).stored];
        if (st_dtype_is_float(stored.dtype) != target.is_floating_point()) {
            mistyped.push_back(str_cat(name, " ", st_dtype_name(stored.dtype), " vs expected ",
                                       c10::toString(target.scalar_type())));
        }
    }
    RADPROBE_CHECK(mistyped.empty(), "checkpoint ", reader.source(), " does not match the ", arch,
                   " architecture: ", mistyped.size(), " keys of the wrong dtype (e.g. ",
                   mistyped.front(), ")");
    torch::NoGradGuard no_grad;
    reader.for_each([&](const detail::StoredTensor& stored, const at::Tensor& value) {
        const auto index = static_cast<std::size_t>(&stored - reader.tensors().data());
        for (const auto& name : m.names[index]) {
            if (const auto it = target_of.find(name); it != target_of.end()) {
                targets.at(it->second).copy_(mapped_value(value, m.sources.at(name)));
            }
        }
    });
    for (const auto& [name, value] : made) {
        targets.at(target_of.at(name)).copy_(value);
    }
    for (const auto& [name, t] : targets) {
        report.held_bytes += t.numel() * static_cast<std::int64_t>(t.element_size());
    }
    report.prefix = match.prefix;
    report.ignored_tensors = static_cast<std::int64_t>(match.ignored.size());
    report.ignored = detail::summarize_keys(match.ignored);
}

}  // namespace

namespace {

/// The dtype the blocks of a checkpoint are held in: its half dtype when every floating tensor is
/// stored in that one half dtype and the architecture converts blocks as it runs them; float32
/// otherwise.
c10::ScalarType held_dtype(const detail::Architecture& arch, const detail::CheckpointReader& reader,
                           const LoadOptions& options) {
    if (!arch.half_blocks || !options.keep_half) {
        return torch::kFloat32;
    }
    std::optional<StDType> half;
    for (const auto& t : reader.tensors()) {
        if (!st_dtype_is_float(t.dtype)) {
            continue;
        }
        if ((t.dtype != StDType::kBF16 && t.dtype != StDType::kF16) || (half && *half != t.dtype)) {
            return torch::kFloat32;
        }
        half = t.dtype;
    }
    return half ? detail::scalar_type_of(*half) : torch::kFloat32;
}

/// Builds the network with its block weights allocated in `held` (LibTorch's default dtype while
/// the constructors run: a 7B model never exists in float32), everything outside the blocks in
/// float32.
std::unique_ptr<detail::LoadableEncoder> build_in(const detail::Architecture& arch,
                                                  const ModelConfig& config, c10::ScalarType held) {
    if (held == torch::kFloat32) {
        return arch.build(config);
    }
    const auto saved = c10::get_default_dtype();
    c10::set_default_dtype(c10::scalarTypeToTypeMeta(held));
    std::unique_ptr<detail::LoadableEncoder> encoder;
    try {
        encoder = arch.build(config);
    } catch (...) {
        c10::set_default_dtype(saved);
        throw;
    }
    c10::set_default_dtype(saved);
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : targets_of(encoder->module())) {
        if (t.is_floating_point() && !name.starts_with(arch.depth.block_prefix)) {
            t.set_data(t.to(torch::kFloat32));
        }
    }
    return encoder;
}

/// A library caller whose OpenBLAS fell back to kernels below the CPU's (blas_kernel.hpp) is told
/// once: the setting is read when OpenBLAS loads, so only the caller's environment can change it.
void warn_of_a_blas_fallback_once() {
    static const bool warned = [] {
        const std::string better = openblas_core_to_set();
        if (!better.empty()) {
            std::fprintf(stderr,
                         "radprobe: warning: OpenBLAS runs its %s kernels on a CPU that runs %s's: "
                         "matrix products are several times slower; set OPENBLAS_CORETYPE=%s "
                         "before the process starts\n",
                         openblas_core().c_str(), better.c_str(), better.c_str());
        }
        return !better.empty();
    }();
    (void)warned;
}

}  // namespace

std::unique_ptr<Encoder> load_encoder(const fs::path& model_dir, const LoadOptions& options) {
    warn_of_a_blas_fallback_once();
    ModelConfig config = read_model_config(model_dir, options);
    const auto* arch = detail::find_architecture(config.model_type);
    RADPROBE_ASSERT(arch != nullptr, "model_type ", config.model_type,
                    " read by read_model_config but not in the architecture table");
    RADPROBE_USAGE_CHECK(arch->half_blocks || config.compute_dtype == ComputeDType::kFloat32,
                         "model ", model_dir.string(), ": --dtype ",
                         compute_dtype_name(config.compute_dtype),
                         " applies to the ViT-like "
                         "encoders; ",
                         config.model_type, " computes in fp32");
    LoadReport report;
    const detail::CheckpointReader reader(config.dir, config.checkpoint_key, report);
    MappedCheckpoint mapped = map_checkpoint(reader, key_mapper(config, reader, report));
    if (config.model_type == "vit") {  // ViTModel(add_pooling_layer=False) in task models
        config.has_pooler =
            std::any_of(mapped.shapes.begin(), mapped.shapes.end(), [](const auto& item) {
                return item.first == "pooler.dense.weight" ||
                       item.first.ends_with(".pooler.dense.weight");
            });
        report.pooler_absent = !config.has_pooler;
    }
    const auto held = held_dtype(*arch, reader, options);
    report.held_dtype = held == torch::kFloat32
                            ? std::string("float32")
                            : str_cat("blocks as ", held == torch::kBFloat16 ? "bf16" : "fp16",
                                      ", the rest float32");
    auto encoder = build_in(*arch, config, held);
    load_backbone(encoder->module(), config, reader, std::move(mapped),
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

std::string describe_model_dir(const fs::path& model_dir, const LoadOptions& options) {
    const ModelConfig c = read_model_config(model_dir, options);
    auto encoder = load_encoder(model_dir, options);
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
       << (c.composite_type.empty()
               ? ""
               : str_cat("vision tower of ", c.composite_type.front() == 'o' ? "an " : "a ",
                         c.composite_type, " model: "))
       << (c.weights_layout.empty()              ? ""
           : c.weights_layout == "open_clip_vit" ? "open_clip ViT tower read as "
                                                 : "inferred from the weights (no config.json): ")
       << c.model_type << (c.use_swiglu_ffn ? " (SwiGLU feed-forward)" : "")
       << (c.use_gated_mlp ? " (gated MLP)" : "") << " - " << model_type_description(c.model_type)
       << "\n";
    if (c.is_hierarchical()) {
        const std::int64_t g = c.image_size / c.patch_size;
        os << "stages:         " << c.depths.size() << " (depths " << list(c.depths) << ", widths "
           << list(c.stage_widths);
        if (!c.stage_heads.empty()) {
            os << ", heads " << list(c.stage_heads) << ", window "
               << (c.hiera.windows.empty() ? std::to_string(c.window_size) : list(c.hiera.windows))
               << ", patch " << c.embed_patch_size;
        }
        os << ")\n"
           << "output width:   " << c.hidden_size << "\n"
           << "token stride:   " << c.patch_size << " px (the last stage's grid)\n"
           << "native input:   " << c.image_size << "x" << c.image_size << " px (" << g << "x" << g
           << " last-stage cells)\n"
           << "token layout:   [" << g * g << " last-stage cells row-major], no CLS, no registers\n"
           << "hidden states:  0 = stem/patch embedding, 1.." << c.depths.size()
           << " = stage outputs\n";
        if (c.model_type == "vmamba") {
            os << "state space:    " << detail::vmamba_summary(c) << "\n";
        }
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
       << megabytes(r.stored_bytes) << " stored, " << megabytes(r.held_bytes) << " in memory ("
       << r.held_dtype << ")\n"
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
    const auto t = tensor.to(torch::kCPU, torch::kFloat32).contiguous();  // from any device
    NpyArray a;
    a.dtype = DType::kFloat32;
    a.shape.assign(t.sizes().begin(), t.sizes().end());
    a.data.resize(static_cast<std::size_t>(t.numel()) * 4);
    std::memcpy(a.data.data(), t.data_ptr<float>(), a.data.size());
    return a;
}

}  // namespace radprobe::encoders
