#!/bin/bash
# A DINOv3 ViT-7B-shaped checkpoint (random bf16 weights, 13.4 GB in 5 GB shards, written by
# make_vit7b) through `radprobe tokens` on this machine: peak resident memory (the bound is
# 16 GB on a 24 GB machine) and seconds per image, for the blocks computed in fp32 and in bf16.
# Seconds per image = wall time for 2 images minus wall time for 1 (the load, 13.4 GB read from
# disk or page cache, cancels). Not part of CI: it needs 14 GB of disk and several minutes.
#
#   bash bench/encoders/bench_vit7b.sh [DIR]      (default /tmp/radprobe_vit7b; BUILD=build)
set -euo pipefail
BUILD=${BUILD:-build}
DIR=${1:-/tmp/radprobe_vit7b}
if [ ! -f "$DIR/model.safetensors.index.json" ]; then
    "$BUILD/bench/encoders/make_vit7b" --out "$DIR"
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
run() {  # dtype images → "<wall s> <peak KB>"
    /usr/bin/time -f "%e %M" -o /tmp/radprobe_vit7b_time "$BUILD/radprobe" tokens --model "$DIR" \
        --pixel-values "$DIR/pixel_values_$2.npy" --out /tmp/radprobe_vit7b_tokens.npy \
        --dtype "$1" 2>/dev/null
    cat /tmp/radprobe_vit7b_time
}
for dtype in fp32 bf16; do
    read -r t1 m1 < <(run "$dtype" 1)
    read -r t2 m2 < <(run "$dtype" 2)
    peak=$(( (m1 > m2 ? m1 : m2) ))
    awk -v d="$dtype" -v t1="$t1" -v t2="$t2" -v p="$peak" 'BEGIN {
        printf "%s: 1 image %.1f s, 2 images %.1f s -> %.1f s per image; peak RSS %.2f GB (%s 16 GB)\n",
               d, t1, t2, t2 - t1, p / 1048576, (p / 1048576 < 16 ? "under" : "OVER") }'
done
