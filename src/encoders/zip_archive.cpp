// The zip reader behind torch_pickle.cpp: just enough of PKWARE's APPNOTE for the archives torch
// writes (stored entries, optional zip64), every offset and length checked against the buffer.

#include "zip_archive.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include "radprobe/core/error.hpp"

namespace radprobe::encoders::zip {

namespace {

constexpr std::uint32_t kLocalSig = 0x04034b50;
constexpr std::uint32_t kCentralSig = 0x02014b50;
constexpr std::uint32_t kEndSig = 0x06054b50;
constexpr std::uint32_t kEnd64Sig = 0x06064b50;
constexpr std::uint32_t kLocator64Sig = 0x07064b50;
constexpr std::size_t kLocalSize = 30;
constexpr std::size_t kCentralSize = 46;
constexpr std::size_t kEndSize = 22;
constexpr std::size_t kEnd64Size = 56;
constexpr std::size_t kLocator64Size = 20;
constexpr std::uint16_t kZip64ExtraId = 0x0001;

template <typename T>
T load(const std::uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));  // zip is little-endian, as is every supported host
    return v;
}

// The end-of-central-directory values, widened by the zip64 record when there is one.
struct Directory {
    std::uint64_t entries = 0;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
};

std::size_t find_end_record(const std::uint8_t* data, std::size_t size, const std::string& where) {
    RADPROBE_CHECK(size >= kEndSize, where, "zip archive of ", size,
                   " bytes is too short for an end-of-central-directory record");
    const std::size_t lowest = size - kEndSize > 0xFFFF ? size - kEndSize - 0xFFFF : 0;
    for (std::size_t pos = size - kEndSize + 1; pos-- > lowest;) {
        if (load<std::uint32_t>(data + pos) == kEndSig &&
            pos + kEndSize + load<std::uint16_t>(data + pos + 20) <= size) {
            return pos;
        }
    }
    RADPROBE_CHECK(false, where, "no zip end-of-central-directory record (truncated archive?)");
    return 0;
}

void read_zip64_end(const std::uint8_t* data, std::size_t end_pos, const std::string& where,
                    Directory* dir) {
    RADPROBE_CHECK(end_pos >= kLocator64Size, where, "zip64 archive without a zip64 locator");
    const std::uint8_t* loc = data + end_pos - kLocator64Size;
    RADPROBE_CHECK(load<std::uint32_t>(loc) == kLocator64Sig, where,
                   "zip64 archive without a zip64 locator");
    RADPROBE_CHECK(load<std::uint32_t>(loc + 4) == 0 && load<std::uint32_t>(loc + 16) <= 1, where,
                   "multi-disk zip archives are not supported");
    const auto rec = load<std::uint64_t>(loc + 8);
    RADPROBE_CHECK(rec <= end_pos - kLocator64Size && end_pos - kLocator64Size - rec >= kEnd64Size,
                   where, "zip64 end record offset ", rec, " is outside the archive");
    const std::uint8_t* p = data + rec;
    RADPROBE_CHECK(load<std::uint32_t>(p) == kEnd64Sig, where,
                   "bad zip64 end-of-central-directory signature");
    RADPROBE_CHECK(load<std::uint32_t>(p + 16) == 0 && load<std::uint32_t>(p + 20) == 0, where,
                   "multi-disk zip archives are not supported");
    dir->entries = load<std::uint64_t>(p + 32);
    dir->size = load<std::uint64_t>(p + 40);
    dir->offset = load<std::uint64_t>(p + 48);
}

Directory read_directory(const std::uint8_t* data, std::size_t size, const std::string& where) {
    const std::size_t end_pos = find_end_record(data, size, where);
    const std::uint8_t* e = data + end_pos;
    RADPROBE_CHECK(load<std::uint16_t>(e + 4) == 0 && load<std::uint16_t>(e + 6) == 0, where,
                   "multi-disk zip archives are not supported");
    Directory dir;
    dir.entries = load<std::uint16_t>(e + 10);
    dir.size = load<std::uint32_t>(e + 12);
    dir.offset = load<std::uint32_t>(e + 16);
    const bool zip64 = dir.entries == 0xFFFF || dir.size == 0xFFFFFFFF ||
                       dir.offset == 0xFFFFFFFF ||
                       (end_pos >= kLocator64Size &&
                        load<std::uint32_t>(data + end_pos - kLocator64Size) == kLocator64Sig);
    if (zip64) {
        read_zip64_end(data, end_pos, where, &dir);
    }
    RADPROBE_CHECK(dir.offset <= end_pos && dir.size <= end_pos - dir.offset, where,
                   "zip central directory [", dir.offset, ", +", dir.size,
                   ") is outside the archive");
    RADPROBE_CHECK(dir.entries <= dir.size / kCentralSize, where, "zip central directory of ",
                   dir.size, " bytes cannot hold ", dir.entries, " entries");
    return dir;
}

// Replaces the 0xFFFFFFFF fields of a central header by their zip64 extra-field values (in the
// APPNOTE order: uncompressed size, compressed size, local header offset).
void apply_zip64_extra(const std::uint8_t* extra, std::size_t len, const std::string& where,
                       std::uint64_t* usize, std::uint64_t* csize, std::uint64_t* local) {
    std::uint64_t* fields[] = {usize, csize, local};
    std::size_t pos = 0;
    while (len - pos >= 4) {
        const auto id = load<std::uint16_t>(extra + pos);
        const auto n = load<std::uint16_t>(extra + pos + 2);
        RADPROBE_CHECK(n <= len - pos - 4, where, "zip extra field runs past its header");
        if (id == kZip64ExtraId) {
            std::size_t at = pos + 4;
            for (auto* field : fields) {
                if (*field != 0xFFFFFFFF) {
                    continue;
                }
                RADPROBE_CHECK(at + 8 <= pos + 4 + n, where, "zip64 extra field is too short");
                *field = load<std::uint64_t>(extra + at);
                at += 8;
            }
            return;
        }
        pos += 4 + n;
    }
}

// The data range of the entry whose local header is at `local` (`length`: compressed size).
Entry locate(const std::uint8_t* data, std::size_t size, const std::string& name,
             std::uint64_t local, std::uint64_t length, const std::string& where) {
    const std::string ew = where + "zip entry \"" + name + "\": ";
    RADPROBE_CHECK(local <= size && size - local >= kLocalSize, ew, "local header offset ", local,
                   " is outside the archive");
    const std::uint8_t* p = data + local;
    RADPROBE_CHECK(load<std::uint32_t>(p) == kLocalSig, ew, "bad local header signature");
    const std::uint64_t name_len = load<std::uint16_t>(p + 26);
    const std::uint64_t extra_len = load<std::uint16_t>(p + 28);
    const std::uint64_t begin = local + kLocalSize + name_len + extra_len;
    RADPROBE_CHECK(begin <= size && length <= size - begin, ew, length, " bytes at offset ", begin,
                   " run past the end of the archive (", size, " bytes)");
    RADPROBE_CHECK(
        name_len == name.size() && std::memcmp(p + kLocalSize, name.data(), name.size()) == 0, ew,
        "local header names a different entry");
    return {name, begin, length};
}

// Parses the central header at data[*pos] and advances *pos past it.
Entry read_central(const std::uint8_t* data, std::size_t size, std::uint64_t dir_end,
                   std::uint64_t* pos, const std::string& where) {
    RADPROBE_CHECK(dir_end - *pos >= kCentralSize, where, "zip central directory is truncated");
    const std::uint8_t* p = data + *pos;
    RADPROBE_CHECK(load<std::uint32_t>(p) == kCentralSig, where,
                   "bad zip central directory signature at offset ", *pos);
    const auto flags = load<std::uint16_t>(p + 8);
    const auto method = load<std::uint16_t>(p + 10);
    std::uint64_t csize = load<std::uint32_t>(p + 20);
    std::uint64_t usize = load<std::uint32_t>(p + 24);
    const std::size_t name_len = load<std::uint16_t>(p + 28);
    const std::size_t extra_len = load<std::uint16_t>(p + 30);
    const std::size_t comment_len = load<std::uint16_t>(p + 32);
    std::uint64_t local = load<std::uint32_t>(p + 42);
    const std::uint64_t total = kCentralSize + name_len + extra_len + comment_len;
    RADPROBE_CHECK(total <= dir_end - *pos, where, "zip central directory is truncated");
    const std::string name(reinterpret_cast<const char*>(p + kCentralSize), name_len);
    const std::string ew = where + "zip entry \"" + name + "\": ";
    apply_zip64_extra(p + kCentralSize + name_len, extra_len, ew, &usize, &csize, &local);
    RADPROBE_CHECK(method != 0 || csize == usize, ew, "stored entry with compressed size ", csize,
                   " != size ", usize);
    *pos += total;
    Entry entry = locate(data, size, name, local, csize, where);
    entry.size = usize;
    entry.method = method;
    entry.encrypted = (flags & 1) != 0;
    return entry;
}

}  // namespace

bool looks_like_zip(const std::uint8_t* data, std::size_t size) {
    return size >= 4 &&
           (load<std::uint32_t>(data) == kLocalSig || load<std::uint32_t>(data) == kEndSig);
}

std::vector<Entry> read_entries(const std::uint8_t* data, std::size_t size,
                                const std::string& where) {
    const Directory dir = read_directory(data, size, where);
    std::vector<Entry> entries;
    entries.reserve(static_cast<std::size_t>(dir.entries));
    std::set<std::string> names;
    std::uint64_t pos = dir.offset;
    const std::uint64_t dir_end = dir.offset + dir.size;
    for (std::uint64_t k = 0; k < dir.entries; ++k) {
        Entry entry = read_central(data, size, dir_end, &pos, where);
        RADPROBE_CHECK(names.insert(entry.name).second, where, "zip entry \"", entry.name,
                       "\" appears twice");
        entries.push_back(std::move(entry));
    }
    return entries;
}

void require_stored(const Entry& entry, const std::string& where) {
    const std::string ew = where + "zip entry \"" + entry.name + "\": ";
    RADPROBE_CHECK(!entry.encrypted, ew, "is encrypted");
    RADPROBE_CHECK(entry.method == 0, ew, "is compressed (method ", entry.method,
                   "); torch.save writes stored entries, re-save the checkpoint uncompressed");
}

}  // namespace radprobe::encoders::zip
