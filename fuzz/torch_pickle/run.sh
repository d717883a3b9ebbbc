#!/bin/sh
# Builds the torch.save reader's fuzz target with clang (libFuzzer + AddressSanitizer +
# UndefinedBehaviorSanitizer) and runs it for a number of inputs.
#   fuzz/torch_pickle/run.sh [RUNS] [BUILD_DIR]     (default 1000000 inputs, build/fuzz-torch-pickle)
# The seed corpus is every fixture under tests/data/pickles (zip, legacy, zip64, malicious) plus
# whatever earlier runs found (BUILD_DIR/corpus); torch_pickle.dict holds pickle opcodes and the
# allow-listed names. Exit status: 0 when no crash was found.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${1:-1000000}
out=${2:-$root/build/fuzz-torch-pickle}
command -v clang++ >/dev/null || { echo "run.sh: clang++ not found (needs clang with libFuzzer)" >&2; exit 2; }
mkdir -p "$out/corpus"
bin=$out/fuzz_torch_pickle
# Rebuilt only when a source is newer than the binary (so a long run can skip the build lock).
if [ ! -x "$bin" ] || [ -n "$(find "$here" "$root/src/encoders" "$root/src/core/include" \
        -name '*.[ch]pp' -newer "$bin" | head -n 1)" ]; then
    clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$root/src/encoders/include" -I"$root/src/core/include" \
        "$here/fuzz_torch_pickle.cpp" "$root/src/encoders/torch_pickle.cpp" \
        "$root/src/encoders/zip_archive.cpp" "$root/src/encoders/safetensors.cpp" -o "$bin"
fi
find "$root/tests/data/pickles" -type f \( -name '*.pt' -o -name '*.bin' \) | while read -r f; do
    cp "$f" "$out/corpus/seed_$(basename "$f")"
done
cd "$out"
./fuzz_torch_pickle -runs="$runs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -dict="$here/torch_pickle.dict" -print_final_stats=1 corpus
