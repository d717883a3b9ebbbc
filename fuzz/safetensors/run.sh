#!/bin/sh
# Builds the safetensors fuzz target with clang (libFuzzer + AddressSanitizer) and runs it.
#   fuzz/safetensors/run.sh [SECONDS] [BUILD_DIR]     (default 60 s, build/fuzz-safetensors)
# The seed corpus is every model.safetensors under tests/data/encoders plus whatever
# earlier runs found (BUILD_DIR/corpus). Exit status: 0 when no crash was found.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-60}
out=${2:-$root/build/fuzz-safetensors}
command -v clang++ >/dev/null || { echo "run.sh: clang++ not found (needs clang with libFuzzer)" >&2; exit 2; }
mkdir -p "$out/corpus"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/src/encoders/include" -I"$root/src/core/include" \
    "$here/fuzz_safetensors.cpp" "$root/src/encoders/safetensors.cpp" -o "$out/fuzz_safetensors"
for f in "$root"/tests/data/encoders/*/model.safetensors "$root"/tests/data/encoders/published/*/model.safetensors; do
    [ -f "$f" ] && cp "$f" "$out/corpus/seed_$(basename "$(dirname "$f")").safetensors"
done
cd "$out"
./fuzz_safetensors -max_total_time="$seconds" -max_len=65536 -timeout=10 corpus
