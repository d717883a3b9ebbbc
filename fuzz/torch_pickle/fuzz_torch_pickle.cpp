// libFuzzer target for the weights-only torch.save reader: any byte string, read as a checkpoint
// (zip or legacy) and as a bare pickle, must either load into tensors whose storages lie inside
// the buffer, or throw radprobe::InputError — never crash, hang, read out of bounds (ASan), hit
// undefined behaviour (UBSan) or throw anything else.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "radprobe/core/error.hpp"
#include "radprobe/encoders/torch_pickle.hpp"

namespace {

using radprobe::encoders::PtTensorInfo;
using radprobe::encoders::TorchCheckpoint;

void touch(const PtTensorInfo& t, const std::uint8_t* data, std::size_t size) {
    if (!t.storage.empty() &&
        (t.storage.data() < data || t.storage.data() + t.storage.size() > data + size)) {
        std::abort();
    }
    if (t.nbytes() > (std::size_t{1} << 20)) {
        return;
    }
    (void)t.contiguous_bytes();
    if (radprobe::encoders::st_dtype_is_float(t.dtype)) {
        (void)t.read_float();
    } else {
        (void)t.read_int();
    }
}

void exercise(const TorchCheckpoint& ckpt, const std::uint8_t* data, std::size_t size) {
    for (const auto& t : ckpt.tensors()) {
        touch(t, data, size);
    }
    (void)ckpt.root().describe();
    (void)ckpt.flatten(ckpt.root());
    try {
        for (const auto& [name, t] : ckpt.state_dict_tensors()) {
            touch(t, data, size);
        }
    } catch (const radprobe::InputError&) {
    }
    try {
        (void)ckpt.state_dict_tensors("model");
    } catch (const radprobe::InputError&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        exercise(TorchCheckpoint::parse(data, size, "fuzz"), data, size);
    } catch (const radprobe::InputError&) {
    }
    try {
        exercise(TorchCheckpoint::parse_pickle(data, size, "fuzz"), data, size);
    } catch (const radprobe::InputError&) {
    }
    return 0;
}
