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

/// The rows of a .npy file (indices along its first axis) read one at a time, from any thread,
/// without reading the rest: the header is parsed and checked against the file size once.
class NpyRowReader {
public:
    /// Throws InputError naming the file for a missing or malformed file.
    explicit NpyRowReader(const std::filesystem::path& path);
    ~NpyRowReader();
    NpyRowReader(const NpyRowReader&) = delete;
    NpyRowReader& operator=(const NpyRowReader&) = delete;

    DType dtype() const { return header_.dtype; }
    /// The file's shape (the first entry is the number of rows).
    const std::vector<std::int64_t>& shape() const { return header_.shape; }
    std::int64_t rows() const { return header_.shape.at(0); }
    std::size_t row_bytes() const { return row_bytes_; }
    /// Copies row `row` (row_bytes() bytes) to `out`; InputError for a row out of range.
    void read(std::int64_t row, void* out) const;
    /// Copies `bytes` bytes of row `row` from byte `offset` within the row.
    void read_part(std::int64_t row, std::size_t offset, std::size_t bytes, void* out) const;

private:
    std::string name_;
    NpyArray header_;  // dtype and shape only
    std::uint64_t offset_ = 0;
    std::size_t row_bytes_ = 0;
    int fd_ = -1;
};

/// Writes a .npy file row by row without holding it: the header (with the final row count, known
/// in advance) first, then append() rows; the file appears under its name at commit(), which
/// checks that exactly `rows` rows came. Destroyed without commit(), nothing is left.
class NpyRowWriter {
public:
    NpyRowWriter(const std::filesystem::path& path, DType dtype,
                 const std::vector<std::int64_t>& shape);
    ~NpyRowWriter();
    NpyRowWriter(const NpyRowWriter&) = delete;
    NpyRowWriter& operator=(const NpyRowWriter&) = delete;

    /// Appends `n` rows (n × row bytes); InputError naming the file when the write fails.
    void append(const void* rows, std::int64_t n);
    void commit();

private:
    void write_all(const void* data, std::size_t bytes);

    std::filesystem::path path_, temp_;
    std::int64_t rows_ = 0, written_ = 0;
    std::size_t row_bytes_ = 0;
    int fd_ = -1;
    bool committed_ = false;
};

/// Serialises to .npy bytes (format 1.0 when the header fits, else 2.0).
std::string serialize_npy(const NpyArray& array);
/// Writes atomically.
void write_npy(const std::filesystem::path& path, const NpyArray& array);
/// Convenience for float32 data.
void write_npy_f32(const std::filesystem::path& path, const std::vector<std::int64_t>& shape,
                   const float* data);

}  // namespace radprobe
