#pragma once
/// @file torch_pickle.hpp
/// A weights-only reader of PyTorch checkpoints (`torch.save` files), free of LibTorch, that
/// executes nothing.
///
/// Formats:
///  - zip (torch >= 1.6): a zip archive of STORED entries `<archive>/data.pkl` (the pickle),
///    `<archive>/data/<key>` (one per storage, raw little-endian bytes), `<archive>/version` and
///    optionally `<archive>/byteorder`. The archive folder name varies; it is taken from the
///    data.pkl entry. Zip64 records are read; compressed or encrypted entries are refused when
///    used (TorchScript archives, whose code entries are deflated, are refused as such). CRCs are
///    not checked (storages are used in place, as safetensors data is).
///  - legacy (torch < 1.6 or `_use_new_zipfile_serialization=False`): the pickles of the magic
///    number, the protocol version (1001) and sys_info, then the main pickle, then a pickled list
///    of storage keys, then per key an 8-byte little-endian element count and the raw bytes.
///
/// The pickles are read by radprobe's own unpickler (protocols 0-5, the opcodes torch writes).
/// Globals are looked up in an allow-list: torch's tensor rebuild functions
/// (`torch._utils._rebuild_tensor{,_v2,_v3}`, `_rebuild_parameter{,_with_state}`,
/// `torch._tensor._rebuild_from_type_v2`), `collections.OrderedDict`, the `torch.*Storage` types,
/// `torch.UntypedStorage` and the `torch.<dtype>` attributes. Every other global (`os.system`,
/// `builtins.eval`, `argparse.Namespace`, optimizer classes ...) becomes an inert placeholder:
/// calling or building it gives another placeholder. Nothing is imported, called, written or
/// opened besides the input file.
///
/// Every length is checked against the remaining bytes; objects (2^21), memo and stack entries,
/// tensors (2^18), distinct globals (2^16) are capped; tensors are checked to lie inside their
/// storage, and all tensors together may not materialise to more than 4 x the file size + 256 MiB
/// (expanded or overlapping views); the tree walks cap their depth (64) and key paths (1024
/// bytes) and skip revisited containers (cycles). Any violation throws radprobe::InputError with
/// a one-line message naming the file and the reason. Only little-endian checkpoints are read.
///
/// Typical use (building LibTorch tensors is the caller's):
///   for (const auto& [name, t] : load_torch_state_dict(path, checkpoint_key)) {
///       at::Tensor x = at::empty(t.shape, <dtype of t.dtype>);
///       t.copy_to(x.data_ptr());   // row-major, dtype kept (bf16 stays bf16)
///   }

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "radprobe/encoders/safetensors.hpp"

namespace radprobe::encoders {

/// What a PtValue holds.
enum class PtKind {
    kNone,
    kBool,
    kInt,
    kBigInt,  ///< an integer beyond int64 (s: little-endian two's complement bytes)
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kDict,
    kSet,
    kGlobal,       ///< a reference to module.name (s, each part cut at 128 bytes), never imported
    kObject,       ///< inert placeholder for what calling / building a global makes (items[0]: it)
    kStorageType,  ///< an allow-listed torch storage class (i: its StDType)
    kDtype,        ///< a torch dtype attribute such as torch.float32 (i: its StDType)
    kStorage,      ///< a storage loaded through a persistent id (i: internal index)
    kTensor,       ///< a tensor (i: index into TorchCheckpoint::tensors())
};

/// One node of the unpickled object tree. Nodes are owned by their TorchCheckpoint; the tree
/// may share nodes and contain cycles, as Python objects can.
struct PtValue {
    PtKind kind = PtKind::kNone;
    std::int64_t i = 0;  ///< kBool (0/1), kInt, kStorageType, kDtype, kStorage, kTensor
    double f = 0.0;      ///< kFloat
    std::string s;       ///< kString (bytes as pickled, UTF-8), kBytes, kBigInt, kGlobal
    /// kTuple / kList / kSet: the elements. kDict: key, value, key, value ... in insertion order
    /// (a repeated key appears again; the last one wins, as in Python). kObject: the global.
    std::vector<const PtValue*> items;

    bool is_dict() const { return kind == PtKind::kDict; }
    std::size_t dict_size() const { return items.size() / 2; }
    /// The value of a string key in a dict (the last one); nullptr when absent or not a dict.
    const PtValue* get(const std::string& key) const;
    /// A short description for messages: "int", "dict (3 entries)", "argparse.Namespace" ...
    std::string describe() const;
};

/// One tensor: a strided view of a storage's bytes (memory-mapped, never copied on load).
struct PtTensorInfo {
    std::string name;  ///< key in the state dict ("" in TorchCheckpoint::tensors())
    StDType dtype = StDType::kF32;
    std::vector<std::int64_t> shape;
    std::vector<std::int64_t> strides;      ///< in elements, as torch reports them
    std::int64_t storage_offset = 0;        ///< in elements
    std::string storage_key;                ///< the storage's key in the file
    std::span<const std::uint8_t> storage;  ///< the whole storage (bounds already checked)
    std::string file;                       ///< what error messages call the file
    std::shared_ptr<const void> owner;      ///< keeps the memory mapping alive (may be null)

    std::int64_t numel() const;
    /// numel() * element size: the size of contiguous_bytes().
    std::size_t nbytes() const;
    /// True when the view is row-major contiguous (copy_to is then one memcpy).
    bool is_contiguous() const;
    /// Copies the elements into `out` (nbytes() bytes) in row-major order, keeping the dtype.
    void copy_to(void* out) const;
    std::vector<std::uint8_t> contiguous_bytes() const;
    /// float32 values of a F16 / BF16 / F32 / F64 tensor, row-major; InputError otherwise.
    void read_float(float* out) const;
    std::vector<float> read_float() const;
    /// int64 values of an integer or bool tensor, row-major; InputError for float dtypes.
    std::vector<std::int64_t> read_int() const;
};

/// The two container formats of torch.save, and a bare pickle (TorchCheckpoint::parse_pickle).
enum class PtFormat { kZip, kLegacy, kBarePickle };

/// A loaded checkpoint: the object tree and every tensor in it.
class TorchCheckpoint {
public:
    /// Memory-maps and reads `path` (zip or legacy format).
    static TorchCheckpoint open(const std::filesystem::path& path);
    /// Reads a buffer that the caller keeps alive while this object and its tensors are used;
    /// `name` is what error messages call it.
    static TorchCheckpoint parse(const std::uint8_t* data, std::size_t size,
                                 const std::string& name);
    /// Unpickles one bare pickle (no torch container; persistent ids are refused). For tests
    /// and for inspecting untrusted pickles.
    static TorchCheckpoint parse_pickle(const std::uint8_t* data, std::size_t size,
                                        const std::string& name);

    const std::string& name() const { return name_; }
    PtFormat format() const { return format_; }
    /// The archive folder name of a zip checkpoint ("" otherwise).
    const std::string& archive_name() const { return archive_; }
    /// The unpickled object (for a torch.save of a state dict: a kDict).
    const PtValue& root() const { return *root_; }
    /// Every tensor of the pickle in order of appearance, validated against its storage.
    const std::vector<PtTensorInfo>& tensors() const { return tensors_; }
    /// The tensor of a kTensor value.
    const PtTensorInfo& tensor(const PtValue& value) const;

    /// Every tensor reachable from `value` through dicts (string or int keys), lists and tuples,
    /// keyed by the path joined with '.' ("" for `value` itself). Containers reached twice
    /// (shared or cyclic) are walked once; nesting beyond 64 levels throws InputError.
    std::map<std::string, PtTensorInfo> flatten(const PtValue& value) const;

    /// Chooses the state dict (see state_dict_tensors); throws InputError describing what was
    /// found when there is none.
    const PtValue& select_state_dict(const std::string& checkpoint_key = "") const;

    /// The tensors of the state dict, keyed by parameter name. With `checkpoint_key`, the
    /// top-level entry of that name (InputError listing the top-level keys when absent).
    /// Without: the top-level dict when it holds tensors directly (and no nested state dict),
    /// else the first of "teacher", "state_dict", "model", "module", "net", "network",
    /// "model_state" that holds tensors. A leading "module." is removed when every key has it.
    /// Non-tensor entries (epochs, argparse.Namespace, ...) are ignored.
    std::map<std::string, PtTensorInfo> state_dict_tensors(
        const std::string& checkpoint_key = "") const;
    /// Where state_dict_tensors(checkpoint_key) reads: "" for the top level, else the name of the
    /// top-level entry ("teacher", "state_dict", ...).
    std::string state_dict_entry(const std::string& checkpoint_key = "") const;
    /// Whether state_dict_tensors(checkpoint_key) removes a "module." prefix from every key.
    bool strips_module_prefix(const std::string& checkpoint_key = "") const;

    struct Impl;  ///< defined in torch_pickle.cpp

private:
    TorchCheckpoint() = default;

    std::shared_ptr<Impl> impl_;           ///< the object arena and the storages
    std::shared_ptr<const void> mapping_;  ///< owns the mmap when opened from a path
    std::string name_;
    std::string archive_;
    PtFormat format_ = PtFormat::kZip;
    const PtValue* root_ = nullptr;
    std::vector<PtTensorInfo> tensors_;

    friend class TorchCheckpointBuilder;
};

/// The keys tried, in order, when no checkpoint key is given.
const std::vector<std::string>& default_checkpoint_keys();

/// Convenience: TorchCheckpoint::open(path).state_dict_tensors(checkpoint_key). The tensors keep
/// the file mapped while any of them is alive.
std::map<std::string, PtTensorInfo> load_torch_state_dict(const std::filesystem::path& path,
                                                          const std::string& checkpoint_key = "");

/// True when the bytes start like a torch.save file (a zip archive or a protocol-2+ pickle).
bool looks_like_torch_checkpoint(const std::uint8_t* data, std::size_t size);

}  // namespace radprobe::encoders
