#pragma once
/// @file safetensors.hpp
/// A reader (and a small writer) for the safetensors format, free of LibTorch.
///
/// Format: 8-byte little-endian header length n, n bytes of JSON (an object mapping tensor names
/// to {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional "__metadata__" object of
/// string → string), then the raw little-endian, row-major (C-order) tensor data. Offsets are
/// relative to the start of the data section.
///
/// The reader memory-maps the file and checks everything before any tensor byte is touched:
/// header length within the file, JSON validity, no duplicated names, known dtypes, non-negative
/// shapes whose element count times the dtype size equals the byte range (no overflow), ranges
/// inside the data section, and ranges that neither overlap nor leave holes (as the reference
/// implementation requires). Any violation throws radprobe::InputError with a one-line message
/// naming the file and the reason.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace at {
class Tensor;
}  // namespace at

namespace radprobe::encoders {

/// Element types of the safetensors format.
enum class StDType { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

/// Bytes per element.
std::size_t st_dtype_size(StDType dtype);
/// The format's spelling ("F32", "BF16", ...).
const char* st_dtype_name(StDType dtype);
/// True for F16, BF16, F32, F64.
bool st_dtype_is_float(StDType dtype);

/// One tensor entry of the header.
struct StTensorInfo {
    std::string name;
    StDType dtype = StDType::kF32;
    std::vector<std::int64_t> shape;
    std::uint64_t begin = 0;  ///< byte offset into the data section
    std::uint64_t end = 0;    ///< one past the last byte
    std::int64_t numel() const;
};

/// A validated safetensors file (memory-mapped) or buffer (borrowed; see parse()).
class SafetensorsFile {
public:
    /// Memory-maps and validates `path`.
    static SafetensorsFile open(const std::filesystem::path& path);
    /// Validates a buffer that the caller keeps alive while this object is used; `name` is what
    /// error messages call it.
    static SafetensorsFile parse(const std::uint8_t* data, std::size_t size,
                                 const std::string& name);

    const std::string& name() const { return name_; }
    /// Entries sorted by name.
    const std::vector<StTensorInfo>& tensors() const { return tensors_; }
    /// The "__metadata__" object (empty when absent).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    /// nullptr when absent.
    const StTensorInfo* find(const std::string& tensor_name) const;
    /// The raw bytes of one entry (little-endian).
    std::span<const std::uint8_t> bytes(const StTensorInfo& info) const;
    /// Drops the memory pages that only `info` covers from this process (madvise DONTNEED on the
    /// read-only mapping; they are read from the file again if used again), so that streaming
    /// a large file tensor by tensor does not keep it resident. No-op for a borrowed buffer.
    void release_pages(const StTensorInfo& info) const;
    /// Converts a floating-point entry (F16, BF16, F32, F64) to float32 values; throws
    /// InputError for other dtypes.
    void read_float(const StTensorInfo& info, float* out) const;
    std::vector<float> read_float(const StTensorInfo& info) const;
    /// Converts an integer or bool entry to int64 values; throws InputError for float dtypes.
    std::vector<std::int64_t> read_int(const StTensorInfo& info) const;

private:
    struct Mapping;
    std::shared_ptr<Mapping> mapping_;    ///< owns the mmap when opened from a path
    const std::uint8_t* data_ = nullptr;  ///< start of the data section
    std::uint64_t data_size_ = 0;
    std::string name_;
    std::vector<StTensorInfo> tensors_;
    std::map<std::string, std::string> metadata_;
};

/// A tensor to write: raw little-endian bytes of `dtype` with `shape`.
struct StTensorData {
    std::string name;
    StDType dtype = StDType::kF32;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> bytes;
};

/// A LibTorch tensor as an entry to write: floating point as F32, integers as I64, copied to
/// the CPU (defined in the LibTorch part of encoders; this header only names at::Tensor).
StTensorData tensor_entry(const std::string& name, const at::Tensor& value);

/// Serialises tensors (sorted by name, contiguous, header padded with spaces to 8 bytes) in the
/// format the reference implementation writes.
std::string serialize_safetensors(const std::vector<StTensorData>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

/// Convenience: a float32 tensor entry.
StTensorData st_f32(const std::string& name, const std::vector<std::int64_t>& shape,
                    const std::vector<float>& values);

/// IEEE half / bfloat16 bit patterns to float (exact).
float half_to_float(std::uint16_t bits);
float bfloat16_to_float(std::uint16_t bits);

}  // namespace radprobe::encoders
