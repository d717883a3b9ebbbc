// The safetensors reader/writer: a small, LibTorch-free translation unit (also built into the
// libFuzzer target under fuzz/safetensors/).

#include "radprobe/encoders/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "radprobe/core/error.hpp"

namespace radprobe::encoders {

namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we (also bounds the JSON
// parser's memory on hostile input).
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeEntry {
    StDType dtype;
    const char* name;
    std::size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {StDType::kBool, "BOOL", 1}, {StDType::kU8, "U8", 1},   {StDType::kI8, "I8", 1},
    {StDType::kI16, "I16", 2},   {StDType::kU16, "U16", 2}, {StDType::kF16, "F16", 2},
    {StDType::kBF16, "BF16", 2}, {StDType::kI32, "I32", 4}, {StDType::kU32, "U32", 4},
    {StDType::kF32, "F32", 4},   {StDType::kF64, "F64", 8}, {StDType::kI64, "I64", 8},
    {StDType::kU64, "U64", 8},
};

const DTypeEntry& entry_of(StDType dtype) {
    for (const auto& e : kDTypes) {
        if (e.dtype == dtype) {
            return e;
        }
    }
    RADPROBE_ASSERT(false, "unknown StDType");
    return kDTypes[0];
}

bool parse_dtype(const std::string& text, StDType* out) {
    for (const auto& e : kDTypes) {
        if (text == e.name) {
            *out = e.dtype;
            return true;
        }
    }
    return false;
}

std::string known_dtypes() {
    std::string s;
    for (const auto& e : kDTypes) {
        s += s.empty() ? "" : ", ";
        s += e.name;
    }
    return s;
}

template <typename T>
T load_le(const std::uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));  // the format is little-endian, as is every supported host
    return v;
}

}  // namespace

std::size_t st_dtype_size(StDType dtype) {
    return entry_of(dtype).size;
}
const char* st_dtype_name(StDType dtype) {
    return entry_of(dtype).name;
}
bool st_dtype_is_float(StDType dtype) {
    return dtype == StDType::kF16 || dtype == StDType::kBF16 || dtype == StDType::kF32 ||
           dtype == StDType::kF64;
}

std::int64_t StTensorInfo::numel() const {
    std::int64_t n = 1;
    for (auto d : shape) {
        n *= d;
    }
    return n;
}

float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    std::uint32_t exponent = (h >> 10) & 0x1Fu;
    std::uint32_t mantissa = h & 0x3FFu;
    std::uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exponent = 127 - 15 + 1;
            while ((mantissa & 0x400u) == 0) {
                mantissa <<= 1;
                --exponent;
            }
            mantissa &= 0x3FFu;
            bits = sign | (exponent << 23) | (mantissa << 13);
        }
    } else if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

float bfloat16_to_float(std::uint16_t b) {
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

struct SafetensorsFile::Mapping {
    void* addr = nullptr;
    std::size_t size = 0;
    ~Mapping() {
        if (addr != nullptr) {
            ::munmap(addr, size);
        }
    }
};

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::error_code ec;
    RADPROBE_CHECK(std::filesystem::exists(path, ec), "safetensors file ", name,
                   ": does not exist");
    RADPROBE_CHECK(std::filesystem::is_regular_file(path, ec), "safetensors file ", name,
                   ": not a regular file");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    RADPROBE_CHECK(fd >= 0, "safetensors file ", name, ": cannot open (", std::strerror(errno),
                   ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        RADPROBE_CHECK(false, "safetensors file ", name, ": cannot stat");
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size < 8) {
        ::close(fd);
        RADPROBE_CHECK(false, "safetensors file ", name, ": ", size,
                       " bytes, too short for the 8-byte header length");
    }
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    RADPROBE_CHECK(addr != MAP_FAILED, "safetensors file ", name, ": mmap failed (",
                   std::strerror(errno), ")");
    auto mapping = std::make_shared<Mapping>();
    mapping->addr = addr;
    mapping->size = size;
    SafetensorsFile file = parse(static_cast<const std::uint8_t*>(addr), size, name);
    file.mapping_ = std::move(mapping);
    return file;
}

SafetensorsFile SafetensorsFile::parse(const std::uint8_t* data, std::size_t size,
                                       const std::string& name) {
    SafetensorsFile file;
    file.name_ = name;
    const std::string where = "safetensors file " + name + ": ";
    RADPROBE_CHECK(size >= 8, where, size, " bytes, too short for the 8-byte header length");
    const auto header_len = load_le<std::uint64_t>(data);
    RADPROBE_CHECK(header_len <= size - 8, where, "header length ", header_len,
                   " runs past the end of the file (", size - 8, " bytes after the length)");
    RADPROBE_CHECK(header_len <= kMaxHeaderBytes, where, "header length ", header_len,
                   " exceeds the 100 MB limit");
    RADPROBE_CHECK(header_len >= 2 && data[8] == '{', where,
                   "header is not a JSON object (must start with '{')");

    // Duplicate keys are invisible after parsing (the JSON library keeps the last one), so they
    // are caught in the parser callback, per object.
    std::vector<std::set<std::string>> keys_stack;
    std::string duplicate;
    const auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) {
            keys_stack.emplace_back();
        } else if (event == json::parse_event_t::object_end) {
            if (!keys_stack.empty()) {
                keys_stack.pop_back();
            }
        } else if (event == json::parse_event_t::key && !keys_stack.empty() && parsed.is_string()) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!keys_stack.back().insert(key).second && duplicate.empty()) {
                duplicate = key;
            }
        }
        return true;
    };
    const char* begin = reinterpret_cast<const char*>(data + 8);
    const json header = json::parse(begin, begin + header_len, callback, false);
    RADPROBE_CHECK(!header.is_discarded(), where, "header is not valid JSON");
    RADPROBE_CHECK(header.is_object(), where, "header is not a JSON object");
    RADPROBE_CHECK(duplicate.empty(), where, "duplicated name \"", duplicate, "\" in the header");

    file.data_ = data + 8 + header_len;
    file.data_size_ = size - 8 - header_len;
    for (const auto& [key, value] : header.items()) {
        if (key == "__metadata__") {
            RADPROBE_CHECK(value.is_object(), where, "__metadata__ is not an object");
            for (const auto& [mk, mv] : value.items()) {
                RADPROBE_CHECK(mv.is_string(), where, "__metadata__ value of \"", mk,
                               "\" is not a string");
                file.metadata_[mk] = mv.get<std::string>();
            }
            continue;
        }
        const std::string tw = where + "tensor \"" + key + "\": ";
        RADPROBE_CHECK(value.is_object(), tw, "entry is not an object");
        RADPROBE_CHECK(value.contains("dtype") && value["dtype"].is_string(), tw,
                       "missing or non-string dtype");
        RADPROBE_CHECK(value.contains("shape") && value["shape"].is_array(), tw,
                       "missing or non-array shape");
        RADPROBE_CHECK(value.contains("data_offsets") && value["data_offsets"].is_array() &&
                           value["data_offsets"].size() == 2,
                       tw, "data_offsets is not a pair [begin, end]");
        StTensorInfo info;
        info.name = key;
        const auto dtype_text = value["dtype"].get<std::string>();
        RADPROBE_CHECK(parse_dtype(dtype_text, &info.dtype), tw, "unknown dtype \"", dtype_text,
                       "\" (known: ", known_dtypes(), ")");
        std::uint64_t numel = 1;
        bool overflow = false;
        for (const auto& d : value["shape"]) {
            RADPROBE_CHECK(d.is_number_unsigned(), tw,
                           "shape entries must be non-negative integers");
            const auto dim = d.get<std::uint64_t>();
            RADPROBE_CHECK(
                dim <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), tw,
                "shape entry ", dim, " is too large");
            info.shape.push_back(static_cast<std::int64_t>(dim));
            if (dim != 0 && numel > std::numeric_limits<std::uint64_t>::max() / dim) {
                overflow = true;
            }
            numel *= dim;
        }
        const auto& offs = value["data_offsets"];
        RADPROBE_CHECK(offs[0].is_number_unsigned() && offs[1].is_number_unsigned(), tw,
                       "data_offsets must be non-negative integers");
        info.begin = offs[0].get<std::uint64_t>();
        info.end = offs[1].get<std::uint64_t>();
        RADPROBE_CHECK(info.begin <= info.end, tw, "data_offsets [", info.begin, ", ", info.end,
                       "] are reversed");
        RADPROBE_CHECK(info.end <= file.data_size_, tw, "data_offsets [", info.begin, ", ",
                       info.end, "] run past the data section (", file.data_size_, " bytes)");
        const std::size_t esize = st_dtype_size(info.dtype);
        RADPROBE_CHECK(!overflow && numel <= std::numeric_limits<std::uint64_t>::max() / esize, tw,
                       "shape element count overflows");
        RADPROBE_CHECK(numel * esize == info.end - info.begin, tw, "shape has ", numel,
                       " elements of ", dtype_text, " (", numel * esize,
                       " bytes) but data_offsets span ", info.end - info.begin, " bytes");
        file.tensors_.push_back(std::move(info));
    }

    // Ranges must tile the data section exactly: no overlap, no hole, nothing trailing.
    std::vector<const StTensorInfo*> by_offset;
    by_offset.reserve(file.tensors_.size());
    for (const auto& t : file.tensors_) {
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
        return std::pair(a->begin, a->end) < std::pair(b->begin, b->end);
    });
    std::uint64_t cursor = 0;
    const StTensorInfo* previous = nullptr;
    for (const auto* t : by_offset) {
        RADPROBE_CHECK(t->begin >= cursor, where, "tensor \"", t->name, "\" [", t->begin, ", ",
                       t->end, ") overlaps tensor \"", previous ? previous->name : "",
                       "\" which ends at ", cursor);
        RADPROBE_CHECK(t->begin == cursor, where, "hole of ", t->begin - cursor,
                       " bytes before tensor \"", t->name, "\" at offset ", cursor);
        cursor = t->end;
        previous = t;
    }
    RADPROBE_CHECK(cursor == file.data_size_, where, file.data_size_ - cursor,
                   " trailing bytes after the last tensor (data section ", file.data_size_,
                   " bytes, tensors end at ", cursor, ")");
    std::sort(file.tensors_.begin(), file.tensors_.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    return file;
}

const StTensorInfo* SafetensorsFile::find(const std::string& tensor_name) const {
    const auto it =
        std::lower_bound(tensors_.begin(), tensors_.end(), tensor_name,
                         [](const StTensorInfo& t, const std::string& n) { return t.name < n; });
    return it != tensors_.end() && it->name == tensor_name ? &*it : nullptr;
}

std::span<const std::uint8_t> SafetensorsFile::bytes(const StTensorInfo& info) const {
    RADPROBE_ASSERT(info.end <= data_size_ && info.begin <= info.end);
    return {data_ + info.begin, static_cast<std::size_t>(info.end - info.begin)};
}

void SafetensorsFile::release_pages(const StTensorInfo& info) const {
    if (!mapping_) {
        return;
    }
    const auto b = bytes(info);
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto first = (reinterpret_cast<std::uintptr_t>(b.data()) + page - 1) / page * page;
    const auto last = (reinterpret_cast<std::uintptr_t>(b.data()) + b.size()) / page * page;
    if (last > first) {  // only pages the tensor covers whole: its neighbours may still be read
        ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
    }
}

void SafetensorsFile::read_float(const StTensorInfo& info, float* out) const {
    const auto b = bytes(info);
    const auto n = static_cast<std::size_t>(info.numel());
    switch (info.dtype) {
        case StDType::kF32:
            std::memcpy(out, b.data(), n * 4);
            return;
        case StDType::kF64:
            for (std::size_t i = 0; i < n; ++i) {
                out[i] = static_cast<float>(load_le<double>(b.data() + 8 * i));
            }
            return;
        case StDType::kF16:
            for (std::size_t i = 0; i < n; ++i) {
                out[i] = half_to_float(load_le<std::uint16_t>(b.data() + 2 * i));
            }
            return;
        case StDType::kBF16:
            for (std::size_t i = 0; i < n; ++i) {
                out[i] = bfloat16_to_float(load_le<std::uint16_t>(b.data() + 2 * i));
            }
            return;
        default:
            RADPROBE_CHECK(false, "safetensors file ", name_, ": tensor \"", info.name,
                           "\" has dtype ", st_dtype_name(info.dtype), ", expected a float dtype");
    }
}

std::vector<float> SafetensorsFile::read_float(const StTensorInfo& info) const {
    std::vector<float> out(static_cast<std::size_t>(info.numel()));
    read_float(info, out.data());
    return out;
}

std::vector<std::int64_t> SafetensorsFile::read_int(const StTensorInfo& info) const {
    RADPROBE_CHECK(!st_dtype_is_float(info.dtype), "safetensors file ", name_, ": tensor \"",
                   info.name, "\" has dtype ", st_dtype_name(info.dtype),
                   ", expected an integer dtype");
    const auto b = bytes(info);
    const auto n = static_cast<std::size_t>(info.numel());
    std::vector<std::int64_t> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* p = b.data() + i * st_dtype_size(info.dtype);
        switch (info.dtype) {
            case StDType::kBool:
            case StDType::kU8:
                out[i] = *p;
                break;
            case StDType::kI8:
                out[i] = static_cast<std::int8_t>(*p);
                break;
            case StDType::kI16:
                out[i] = load_le<std::int16_t>(p);
                break;
            case StDType::kU16:
                out[i] = load_le<std::uint16_t>(p);
                break;
            case StDType::kI32:
                out[i] = load_le<std::int32_t>(p);
                break;
            case StDType::kU32:
                out[i] = load_le<std::uint32_t>(p);
                break;
            case StDType::kI64:
                out[i] = load_le<std::int64_t>(p);
                break;
            case StDType::kU64:
                out[i] = static_cast<std::int64_t>(load_le<std::uint64_t>(p));
                break;
            default:
                RADPROBE_ASSERT(false, "float dtype in read_int");
        }
    }
    return out;
}

std::string serialize_safetensors(const std::vector<StTensorData>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
    std::vector<const StTensorData*> sorted;
    for (const auto& t : tensors) {
        sorted.push_back(&t);
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->name < b->name; });
    json header = json::object();
    if (!metadata.empty()) {
        header["__metadata__"] = metadata;
    }
    std::uint64_t offset = 0;
    for (const auto* t : sorted) {
        std::int64_t numel = 1;
        for (auto d : t->shape) {
            numel *= d;
        }
        RADPROBE_ASSERT(
            static_cast<std::uint64_t>(numel) * st_dtype_size(t->dtype) == t->bytes.size(),
            "tensor ", t->name, " byte size disagrees with its shape");
        header[t->name] = {{"dtype", st_dtype_name(t->dtype)},
                           {"shape", t->shape},
                           {"data_offsets", {offset, offset + t->bytes.size()}}};
        offset += t->bytes.size();
    }
    std::string text = header.dump();
    while ((text.size() + 8) % 8 != 0) {
        text.push_back(' ');
    }
    std::string out;
    out.reserve(8 + text.size() + offset);
    const std::uint64_t n = text.size();
    out.append(reinterpret_cast<const char*>(&n), 8);
    out += text;
    for (const auto* t : sorted) {
        out.append(reinterpret_cast<const char*>(t->bytes.data()), t->bytes.size());
    }
    return out;
}

StTensorData st_f32(const std::string& name, const std::vector<std::int64_t>& shape,
                    const std::vector<float>& values) {
    StTensorData t;
    t.name = name;
    t.dtype = StDType::kF32;
    t.shape = shape;
    t.bytes.resize(values.size() * 4);
    std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
    return t;
}

}  // namespace radprobe::encoders
