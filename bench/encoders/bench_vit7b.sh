#!/bin/bash
# A DINOv3 ViT-7B-shaped checkpoint (random bf16 weights, 13.4 GB in 5 GB shards like the
# published one, written by make_vit7b) on this machine: load time, seconds per 224-px image
# and peak resident memory (the bound is 16 GB on a 24 GB machine), with the blocks computed in
# fp32 and in bf16 (one process each, so that each peak is its own; bench_vit7b). Not part of
# CI: it needs 14 GB of disk and about ten minutes.
#
#   bash bench/encoders/bench_vit7b.sh [DIR]      (default /tmp/radprobe_vit7b; BUILD=build)
set -euo pipefail
BUILD=${BUILD:-build}
DIR=${1:-/tmp/radprobe_vit7b}
if [ ! -f "$DIR/model.safetensors.index.json" ]; then
    "$BUILD/bench/encoders/make_vit7b" --out "$DIR"
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
for dtype in fp32 bf16; do
    "$BUILD/bench/encoders/bench_vit7b" --model "$DIR" --dtype "$dtype" --iters 2
done
