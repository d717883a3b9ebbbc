#include "radprobe/core/npy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>

#include "fd_io.hpp"
#include "radprobe/core/error.hpp"
#include "radprobe/core/files.hpp"

namespace radprobe {

std::size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::kFloat64:
        case DType::kInt64:
            return 8;
        case DType::kFloat32:
        case DType::kInt32:
            return 4;
        case DType::kInt16:
        case DType::kUInt16:
            return 2;
        case DType::kUInt8:
        case DType::kBool:
            return 1;
    }
    return 0;
}

std::string dtype_descr(DType dtype) {
    switch (dtype) {
        case DType::kFloat32:
            return "<f4";
        case DType::kFloat64:
            return "<f8";
        case DType::kInt64:
            return "<i8";
        case DType::kInt32:
            return "<i4";
        case DType::kInt16:
            return "<i2";
        case DType::kUInt16:
            return "<u2";
        case DType::kUInt8:
            return "|u1";
        case DType::kBool:
            return "|b1";
    }
    return "";
}

std::int64_t NpyArray::numel() const {
    std::int64_t n = 1;
    for (auto d : shape) {
        n *= d;
    }
    return n;
}

namespace {
template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
    return DType::kFloat32;
}
template <>
constexpr DType dtype_of<double>() {
    return DType::kFloat64;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
    return DType::kInt64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
    return DType::kInt32;
}
template <>
constexpr DType dtype_of<std::int16_t>() {
    return DType::kInt16;
}
template <>
constexpr DType dtype_of<std::uint16_t>() {
    return DType::kUInt16;
}
template <>
constexpr DType dtype_of<std::uint8_t>() {
    return DType::kUInt8;
}
}  // namespace

template <typename T>
const T* NpyArray::as() const {
    RADPROBE_ASSERT(dtype == dtype_of<T>(), "npy dtype mismatch");
    return reinterpret_cast<const T*>(data.data());
}
template <typename T>
T* NpyArray::as() {
    RADPROBE_ASSERT(dtype == dtype_of<T>(), "npy dtype mismatch");
    return reinterpret_cast<T*>(data.data());
}
template const float* NpyArray::as<float>() const;
template float* NpyArray::as<float>();
template const double* NpyArray::as<double>() const;
template double* NpyArray::as<double>();
template const std::int64_t* NpyArray::as<std::int64_t>() const;
template std::int64_t* NpyArray::as<std::int64_t>();
template const std::int32_t* NpyArray::as<std::int32_t>() const;
template std::int32_t* NpyArray::as<std::int32_t>();
template const std::int16_t* NpyArray::as<std::int16_t>() const;
template std::int16_t* NpyArray::as<std::int16_t>();
template const std::uint16_t* NpyArray::as<std::uint16_t>() const;
template std::uint16_t* NpyArray::as<std::uint16_t>();
template const std::uint8_t* NpyArray::as<std::uint8_t>() const;
template std::uint8_t* NpyArray::as<std::uint8_t>();

std::vector<float> NpyArray::to_float() const {
    const auto n = static_cast<std::size_t>(numel());
    std::vector<float> out(n);
    auto convert = [&](auto ptr) {
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = static_cast<float>(ptr[i]);
        }
    };
    switch (dtype) {
        case DType::kFloat32:
            convert(as<float>());
            break;
        case DType::kFloat64:
            convert(as<double>());
            break;
        case DType::kInt64:
            convert(as<std::int64_t>());
            break;
        case DType::kInt32:
            convert(as<std::int32_t>());
            break;
        case DType::kInt16:
            convert(as<std::int16_t>());
            break;
        case DType::kUInt16:
            convert(as<std::uint16_t>());
            break;
        case DType::kUInt8:
        case DType::kBool:
            convert(data.data());
            break;
    }
    return out;
}

namespace {

// Extracts the value following 'key': in the header dict (a small Python literal).
std::string header_value(const std::string& header, const std::string& key,
                         const std::string& name) {
    const std::string quoted1 = "'" + key + "'";
    auto pos = header.find(quoted1);
    RADPROBE_CHECK(pos != std::string::npos, name, ": npy header has no '", key, "' entry");
    pos = header.find(':', pos + quoted1.size());
    RADPROBE_CHECK(pos != std::string::npos, name, ": npy header malformed near '", key, "'");
    ++pos;
    while (pos < header.size() && header[pos] == ' ') {
        ++pos;
    }
    RADPROBE_CHECK(pos < header.size(), name, ": npy header truncated");
    std::size_t end = pos;
    if (header[pos] == '\'') {
        end = header.find('\'', pos + 1);
        RADPROBE_CHECK(end != std::string::npos, name, ": npy header malformed");
        return header.substr(pos + 1, end - pos - 1);
    }
    if (header[pos] == '(') {
        end = header.find(')', pos);
        RADPROBE_CHECK(end != std::string::npos, name, ": npy header malformed shape");
        return header.substr(pos, end - pos + 1);
    }
    while (end < header.size() && header[end] != ',' && header[end] != '}') {
        ++end;
    }
    return header.substr(pos, end - pos);
}

DType parse_descr(const std::string& descr, const std::string& name) {
    static const std::pair<const char*, DType> table[] = {
        {"<f4", DType::kFloat32}, {"<f8", DType::kFloat64}, {"<i8", DType::kInt64},
        {"<i4", DType::kInt32},   {"<i2", DType::kInt16},   {"<u2", DType::kUInt16},
        {"|u1", DType::kUInt8},   {"<u1", DType::kUInt8},   {"|b1", DType::kBool}};
    for (const auto& [d, t] : table) {
        if (descr == d) {
            return t;
        }
    }
    throw InputError(str_cat(name, ": unsupported npy dtype '", descr,
                             "' (supported: <f4 <f8 <i8 <i4 <i2 <u2 |u1 |b1, little-endian)"));
}

}  // namespace

namespace {

// Where the data of a .npy file start and how long its header is, from its first bytes
// (at least 12 or the whole file).
struct NpyPrefix {
    std::size_t header_offset = 0;
    std::size_t header_len = 0;
};

NpyPrefix parse_prefix(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
    static const char magic[] = "\x93NUMPY";
    RADPROBE_CHECK(size >= 10 && std::memcmp(bytes, magic, 6) == 0, name,
                   ": not a .npy file (bad magic)");
    const int major = bytes[6];
    NpyPrefix p;
    if (major == 1) {
        p.header_len = bytes[8] | (bytes[9] << 8);
        p.header_offset = 10;
    } else if (major == 2 || major == 3) {
        RADPROBE_CHECK(size >= 12, name, ": truncated .npy header");
        p.header_len = static_cast<std::size_t>(bytes[8]) |
                       (static_cast<std::size_t>(bytes[9]) << 8) |
                       (static_cast<std::size_t>(bytes[10]) << 16) |
                       (static_cast<std::size_t>(bytes[11]) << 24);
        p.header_offset = 12;
    } else {
        throw InputError(str_cat(name, ": unsupported .npy version ", major));
    }
    return p;
}

// The dtype and shape of a header dict; returns the data size in bytes.
std::uint64_t parse_header(const std::string& header, const std::string& name, NpyArray& array) {
    array.dtype = parse_descr(header_value(header, "descr", name), name);
    const std::string fortran = header_value(header, "fortran_order", name);
    RADPROBE_CHECK(fortran.find("False") != std::string::npos, name,
                   ": Fortran-ordered arrays are not supported (save with C order)");
    const std::string shape = header_value(header, "shape", name);
    std::size_t i = 1;
    while (i < shape.size()) {
        while (i < shape.size() && (shape[i] == ' ' || shape[i] == ',')) {
            ++i;
        }
        if (i >= shape.size() || shape[i] == ')') {
            break;
        }
        std::size_t j = i;
        while (j < shape.size() && std::isdigit(static_cast<unsigned char>(shape[j]))) {
            ++j;
        }
        RADPROBE_CHECK(j > i, name, ": malformed shape ", shape);
        std::int64_t d = 0;
        const auto parsed = std::from_chars(shape.data() + i, shape.data() + j, d);
        RADPROBE_CHECK(parsed.ec == std::errc(), name, ": shape dimension ",
                       shape.substr(i, std::min<std::size_t>(j - i, 24)), " is out of range");
        array.shape.push_back(d);
        i = j;
    }
    // The product of the non-zero dimensions must fit in int64 too: numel() and every row size
    // computed from the shape multiply in int64 (found by fuzz/npy: (2e18, 6, 0) has 0 elements
    // but overflowed there).
    std::uint64_t numel = 1, nonzero = 1;
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    for (auto d : array.shape) {
        RADPROBE_CHECK(d >= 0 && (d == 0 || nonzero <= kMax / static_cast<std::uint64_t>(d)), name,
                       ": shape overflows");
        nonzero *= d == 0 ? 1 : static_cast<std::uint64_t>(d);
        numel *= static_cast<std::uint64_t>(d);
    }
    const std::uint64_t size = dtype_size(array.dtype);
    RADPROBE_CHECK(numel <= std::numeric_limits<std::uint64_t>::max() / size, name,
                   ": shape overflows");
    return numel * size;
}

}  // namespace

NpyArray parse_npy(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
    const NpyPrefix p = parse_prefix(bytes, size, name);
    RADPROBE_CHECK(p.header_len <= size - p.header_offset, name, ": .npy header length ",
                   p.header_len, " runs past the end of the file");
    const std::string header(reinterpret_cast<const char*>(bytes + p.header_offset), p.header_len);
    const std::size_t offset = p.header_offset + p.header_len;
    NpyArray array;
    const std::uint64_t nbytes = parse_header(header, name, array);
    RADPROBE_CHECK(nbytes == size - offset, name, ": data size ", size - offset,
                   " bytes does not match the shape (", nbytes, " bytes expected)");
    array.data.assign(bytes + offset, bytes + size);
    return array;
}

NpyRowReader::NpyRowReader(const std::filesystem::path& path) : name_(path.string()) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    RADPROBE_CHECK(fd_ >= 0, name_, ": cannot open: ", std::strerror(errno));
    struct stat st {};
    RADPROBE_CHECK(::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode), name_, ": not a regular file");
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    std::uint8_t prefix[12] = {};
    const auto got = ::pread(fd_, prefix, sizeof prefix, 0);
    const NpyPrefix p = parse_prefix(prefix, got > 0 ? static_cast<std::size_t>(got) : 0, name_);
    RADPROBE_CHECK(p.header_offset + p.header_len <= file_size, name_, ": .npy header length ",
                   p.header_len, " runs past the end of the file");
    std::string header(p.header_len, '\0');
    RADPROBE_CHECK(::pread(fd_, header.data(), p.header_len, static_cast<off_t>(p.header_offset)) ==
                       static_cast<ssize_t>(p.header_len),
                   name_, ": cannot read the .npy header");
    const std::uint64_t nbytes = parse_header(header, name_, header_);
    offset_ = p.header_offset + p.header_len;
    RADPROBE_CHECK(nbytes == file_size - offset_ && !header_.shape.empty(), name_, ": data size ",
                   file_size - offset_, " bytes does not match the shape (", nbytes,
                   " bytes expected)");
    const std::int64_t n = header_.shape[0];
    row_bytes_ = n > 0 ? static_cast<std::size_t>(nbytes / static_cast<std::uint64_t>(n)) : 0;
}

NpyRowReader::~NpyRowReader() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void NpyRowReader::read(std::int64_t row, void* out) const {
    read_part(row, 0, row_bytes_, out);
}

void NpyRowReader::read_part(std::int64_t row, std::size_t offset, std::size_t bytes,
                             void* out) const {
    RADPROBE_CHECK(row >= 0 && row < rows(), name_, ": row ", row, " of ", rows(), " requested");
    RADPROBE_ASSERT(offset <= row_bytes_ && bytes <= row_bytes_ - offset);
    const std::uint64_t at = offset_ + static_cast<std::uint64_t>(row) * row_bytes_ + offset;
    RADPROBE_CHECK(
        detail::read_fully(fd_, out, bytes, static_cast<off_t>(at)) == static_cast<ssize_t>(bytes),
        name_, ": truncated while reading row ", row);
}

NpyArray read_npy_rows(const std::filesystem::path& path, const std::vector<std::int64_t>& rows,
                       std::int64_t* total_rows) {
    const NpyRowReader reader(path);
    if (total_rows) {
        *total_rows = reader.rows();
    }
    NpyArray array;
    array.dtype = reader.dtype();
    array.shape = reader.shape();
    array.shape[0] = static_cast<std::int64_t>(rows.size());
    array.data.resize(rows.size() * reader.row_bytes());
    for (std::size_t k = 0; k < rows.size(); ++k) {
        reader.read(rows[k], array.data.data() + k * reader.row_bytes());
    }
    return array;
}

NpyArray read_npy(const std::filesystem::path& path) {
    const auto bytes = read_file_bytes(path);
    return parse_npy(bytes.data(), bytes.size(), path.string());
}

namespace {

// The .npy prefix + header of an array of this dtype and shape (format 1.0 when it fits, else
// 2.0), padded so that the data start at a multiple of 64.
std::string npy_header(DType dtype, const std::vector<std::int64_t>& dims) {
    std::string shape = "(";
    for (std::size_t i = 0; i < dims.size(); ++i) {
        shape += std::to_string(dims[i]);
        if (dims.size() == 1 || i + 1 < dims.size()) {
            shape += ",";
        }
        if (i + 1 < dims.size()) {
            shape += " ";
        }
    }
    shape += ")";
    std::string header =
        "{'descr': '" + dtype_descr(dtype) + "', 'fortran_order': False, 'shape': " + shape + ", }";
    const bool v2 = header.size() + 11 > 65535;
    const std::size_t prefix = v2 ? 12 : 10;
    std::size_t total = prefix + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += static_cast<char>(v2 ? 2 : 1);
    out += '\0';
    const std::size_t len = header.size();
    out += static_cast<char>(len & 0xff);
    out += static_cast<char>((len >> 8) & 0xff);
    if (v2) {
        out += static_cast<char>((len >> 16) & 0xff);
        out += static_cast<char>((len >> 24) & 0xff);
    }
    return out + header;
}

}  // namespace

std::string serialize_npy(const NpyArray& array) {
    RADPROBE_ASSERT(array.data.size() ==
                    static_cast<std::size_t>(array.numel()) * dtype_size(array.dtype));
    std::string out = npy_header(array.dtype, array.shape);
    out.append(reinterpret_cast<const char*>(array.data.data()), array.data.size());
    return out;
}

NpyRowWriter::NpyRowWriter(const std::filesystem::path& path, DType dtype,
                           const std::vector<std::int64_t>& shape)
    : path_(path), temp_(temp_name_for(path)) {
    RADPROBE_ASSERT(!shape.empty() && shape[0] >= 0);
    rows_ = shape[0];
    row_bytes_ = dtype_size(dtype);
    for (std::size_t i = 1; i < shape.size(); ++i) {
        row_bytes_ *= static_cast<std::size_t>(shape[i]);
    }
    if (path.has_parent_path()) {
        std::error_code ec;
        std::filesystem::create_directories(path.parent_path(), ec);
    }
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    RADPROBE_CHECK(fd_ >= 0, path_.string(), ": cannot create: ", std::strerror(errno));
    const std::string header = npy_header(dtype, shape);
    write_all(header.data(), header.size());
}

NpyRowWriter::~NpyRowWriter() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
    if (!committed_) {
        std::error_code ec;
        std::filesystem::remove(temp_, ec);
    }
}

void NpyRowWriter::write_all(const void* data, std::size_t bytes) {
    const std::string why = detail::write_fully(fd_, data, bytes, -1);
    RADPROBE_CHECK(why.empty(), path_.string(), ": write failed: ", why);
}

void NpyRowWriter::append(const void* rows, std::int64_t n) {
    RADPROBE_ASSERT(n >= 0 && written_ + n <= rows_);
    write_all(rows, static_cast<std::size_t>(n) * row_bytes_);
    written_ += n;
}

void NpyRowWriter::commit() {
    RADPROBE_ASSERT(written_ == rows_);
    RADPROBE_CHECK(::fsync(fd_) == 0, path_.string(), ": write failed: ", std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    RADPROBE_CHECK(::close(fd) == 0, path_.string(), ": close failed: ", std::strerror(errno));
    std::error_code ec;
    std::filesystem::rename(temp_, path_, ec);
    RADPROBE_CHECK(!ec, path_.string(),
                   ": cannot rename temporary file into place: ", ec.message());
    committed_ = true;
}

void write_npy(const std::filesystem::path& path, const NpyArray& array) {
    write_file_atomic(path, serialize_npy(array));
}

void write_npy_f32(const std::filesystem::path& path, const std::vector<std::int64_t>& shape,
                   const float* data) {
    NpyArray a;
    a.dtype = DType::kFloat32;
    a.shape = shape;
    a.data.resize(static_cast<std::size_t>(a.numel()) * 4);
    std::memcpy(a.data.data(), data, a.data.size());
    write_npy(path, a);
}

}  // namespace radprobe
