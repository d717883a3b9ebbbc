// libFuzzer target for the safetensors reader: any byte string must either parse into entries
// whose ranges lie inside the buffer, or throw radprobe::InputError — never crash, read out of
// bounds (ASan) or throw anything else.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "radprobe/core/error.hpp"
#include "radprobe/encoders/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using radprobe::encoders::SafetensorsFile;
    try {
        const SafetensorsFile file = SafetensorsFile::parse(data, size, "fuzz");
        for (const auto& t : file.tensors()) {
            const auto bytes = file.bytes(t);
            if (bytes.data() < data || bytes.data() + bytes.size() > data + size) {
                std::abort();
            }
            if (t.numel() <= (1 << 16)) {  // touch every byte through the converters
                if (radprobe::encoders::st_dtype_is_float(t.dtype)) {
                    (void)file.read_float(t);
                } else {
                    (void)file.read_int(t);
                }
            }
        }
    } catch (const radprobe::InputError&) {
    }
    return 0;
}
