// libFuzzer target for DICOM: radprobe's structural pre-check on the bytes, then the whole decode
// behind `radprobe decode` (format sniffing, GDCM's parser and codecs, radprobe's checks of the
// geometry, LUTs and windows) on the same bytes as a file. Any input must decode or throw
// InputError — never crash, hang, trip ASan/UBSan or throw anything else.

#include <cstddef>
#include <cstdint>

#include "../../src/imaging/dicom_structure.hpp"
#include "../common/fuzz_support.hpp"
#include "radprobe/imaging/decode.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace imaging = radprobe::imaging;
    radprobe::fuzz::expect_documented_errors(
        [&] { imaging::detail::check_dicom_structure(data, size, "fuzz"); });
    const auto path = radprobe::fuzz::scratch_dir() / "input.dcm";
    radprobe::fuzz::write_bytes(path, data, size);
    radprobe::fuzz::expect_documented_errors([&] { (void)imaging::probe(path); });
    radprobe::fuzz::expect_documented_errors([&] {
        // The stage, window and frame vary with the input's length, so that every VOI path is
        // reached without a byte of the input being spent on choosing it.
        imaging::DecodeOptions options;
        options.stage = static_cast<imaging::Stage>(size % 3);
        options.window = static_cast<int>((size / 3) % 2);
        options.frame = static_cast<int>((size / 6) % 2);
        const imaging::Image image = imaging::decode(path, options);
        if (image.pixels.size() != static_cast<std::size_t>(image.rows) * image.cols) {
            std::abort();
        }
    });
    if (size % 5 == 0) {
        radprobe::fuzz::expect_documented_errors(
            [&] { (void)imaging::decode_stored_all_frames(path); });
    }
    return 0;
}
