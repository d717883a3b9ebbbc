#pragma once
// A minimal, LibTorch-free reader of the zip archives that torch.save writes (PyTorch's
// PyTorchStreamWriter, miniz): the central directory, STORED entries, zip64 records. Private to
// encoders (used by torch_pickle.cpp).

#include <cstdint>
#include <string>
#include <vector>

namespace radprobe::encoders::zip {

/// One entry: its (stored) bytes are data[offset, offset + size) when method is 0.
struct Entry {
    std::string name;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;    ///< uncompressed
    std::uint16_t method = 0;  ///< 0: stored; 8: deflate ...
    bool encrypted = false;
};

/// True when the buffer starts with a local file header ("PK\3\4") or an empty archive's
/// end-of-central-directory record.
bool looks_like_zip(const std::uint8_t* data, std::size_t size);

/// Reads the central directory and locates every entry's bytes inside the buffer. Throws
/// InputError, prefixed with `where` ("torch checkpoint x.pt: "), for a missing or damaged
/// directory, multi-disk archives, duplicated names, and (compressed) ranges outside the buffer.
std::vector<Entry> read_entries(const std::uint8_t* data, std::size_t size,
                                const std::string& where);

/// Throws InputError unless the entry is stored (neither compressed nor encrypted): the only
/// entries whose bytes can be used in place.
void require_stored(const Entry& entry, const std::string& where);

}  // namespace radprobe::encoders::zip
