// libFuzzer target for the .npy reader (radprobe::parse_npy): any byte string must parse into an
// array whose data matches its shape and dtype, or throw InputError — never crash, trip
// ASan/UBSan or throw anything else. A parsed array must survive serialize_npy → parse_npy
// unchanged (an error there is a finding too).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>

#include "../common/fuzz_support.hpp"
#include "radprobe/core/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::optional<radprobe::NpyArray> parsed;
    radprobe::fuzz::expect_documented_errors(
        [&] { parsed = radprobe::parse_npy(data, size, "fuzz.npy"); });
    if (!parsed) {
        return 0;
    }
    const radprobe::NpyArray& a = *parsed;
    const auto n = a.numel();
    if (n < 0 || a.data.size() != static_cast<std::size_t>(n) * radprobe::dtype_size(a.dtype)) {
        std::abort();
    }
    if (n <= (1 << 16)) {
        (void)a.to_float();
    }
    try {
        const std::string bytes = radprobe::serialize_npy(a);
        const radprobe::NpyArray b = radprobe::parse_npy(
            reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), "round trip");
        if (b.dtype != a.dtype || b.shape != a.shape || b.data != a.data) {
            std::abort();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz: round trip failed: %s\n", e.what());
        std::abort();
    }
    return 0;
}
