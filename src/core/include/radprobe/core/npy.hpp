#pragma once
/// @file npy.hpp
/// NumPy .npy (format 1.0/2.0) reading and writing, little-endian, C order. Arrays are stored
/// row-major with the shape given; readers check every size against the file.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace radprobe {

enum class DType { kFloat32, kFloat64, kInt64, kInt32, kInt16, kUInt16, kUInt8, kBool };

/// Size in bytes of one element.
std::size_t dtype_size(DType dtype);
/// NumPy descr string, e.g. "<f4".
std::string dtype_descr(DType dtype);

/// An n-dimensional array held as raw little-endian bytes.
struct NpyArray {
    DType dtype = DType::kFloat32;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> data;

    std::int64_t numel() const;
    /// Typed views; throw if the dtype does not match.
    template <typename T>
    const T* as() const;
    template <typename T>
    T* as();
    /// Converts any numeric dtype to float32 values.
    std::vector<float> to_float() const;
};

/// Parses a .npy file; throws InputError naming the file and the reason on any malformation.
NpyArray read_npy(const std::filesystem::path& path);
NpyArray parse_npy(const std::uint8_t* bytes, std::size_t size, const std::string& name);
/// Only the rows `rows` (indices along the first axis, in the order given) of a .npy file,
/// without reading the rest: shape {rows.size(), shape[1], ...}. Throws InputError naming the
/// file for a malformed file or a row out of range. `total_rows`, when given, gets the file's
/// number of rows.
NpyArray read_npy_rows(const std::filesystem::path& path, const std::vector<std::int64_t>& rows,
                       std::int64_t* total_rows = nullptr);

/// Serialises to .npy bytes (format 1.0 when the header fits, else 2.0).
std::string serialize_npy(const NpyArray& array);
/// Writes atomically.
void write_npy(const std::filesystem::path& path, const NpyArray& array);
/// Convenience for float32 data.
void write_npy_f32(const std::filesystem::path& path, const std::vector<std::int64_t>& shape,
                   const float* data);

}  // namespace radprobe
