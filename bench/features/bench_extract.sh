#!/usr/bin/env bash
# The extraction input pipeline (issue 17): a ViT-B/16 at 224 px (random weights, the size of
# RAD-DINO's and DINOv2-B's blocks) over DICOM phantoms of 2048 px, batch 16, through
# `radprobe extract` with 1, 2 and 4 threads decoding the next batch while the current one runs.
# References measured in the same run: the forward pass alone and decoding + preprocessing alone.
# Per setting: images/s, its ratio to one decoding thread and to the slower of the two references
# (1.0 = the pipeline hides the faster stage completely), the seconds the encoder waited for
# decoded batches (the pipeline's shortfall), and the peak resident memory (/usr/bin/time -v)
# for N and 4 × N images (bounded: it must not grow with the data set).
#
# Usage: bash bench/features/bench_extract.sh [N=48] [WORK=/tmp/radprobe-bench-extract]
# Needs build/radprobe (or RADPROBE=path). About 10 minutes on 2 cores.
set -euo pipefail
N="${1:-48}"
WORK="${2:-/tmp/radprobe-bench-extract}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RP="${RADPROBE:-$ROOT/build/radprobe}"
mkdir -p "$WORK"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for n in "$N" $((4 * N)); do
    if [ ! -f "$WORK/ph$n/manifest.csv" ]; then
        "$RP" synth --out "$WORK/ph$n" --n "$n" --size 2048 --seed 3 --format dcm --overwrite \
            >/dev/null 2>&1
    fi
done
# The random ViT-B/16 folder, made by the config runner's extraction stage (random_vit).
if [ ! -f "$WORK/out/embeddings/models/vit-b16/model.safetensors" ]; then
    cat >"$WORK/vit.yaml" <<YAML
data: {manifest: $WORK/ph$N/manifest.csv}
encoders:
  - name: vit-b16
    random_vit: {seed: 1, hidden_size: 768, layers: 12, heads: 12, patch_size: 16, image_size: 224}
tasks: {classification: [cardiomegaly]}
adaptations: {linear:}
output: {db: $WORK/out/r.sqlite, store: $WORK/out/embeddings}
YAML
    "$RP" run "$WORK/vit.yaml" --stage extract --slice 0/1 --quiet >/dev/null
fi
MODEL="$WORK/out/embeddings/models/vit-b16"

run() {  # run N DECODE_THREADS [MODEL] -> "images/s waited peak_MB"
    rm -rf "$WORK/store"
    /usr/bin/time -v "$RP" extract --model "${3:-$MODEL}" --manifest "$WORK/ph$1/manifest.csv" \
        --pool cls,mean --batch 16 --out "$WORK/store" --decode-threads "$2" \
        >"$WORK/out.txt" 2>"$WORK/time.txt"
    local rate waited peak
    rate=$(sed -n 's/.*(\([0-9.]*\) images\/s; waited \([0-9.]*\) s.*/\1/p' "$WORK/out.txt")
    waited=$(sed -n 's/.*; waited \([0-9.]*\) s.*/\1/p' "$WORK/out.txt")
    peak=$(awk '/Maximum resident set size/ {printf "%.0f", $6 / 1024}' "$WORK/time.txt")
    echo "$rate $waited $peak"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

run "$N" 1 >/dev/null  # warm-up: the files into the page cache, the model's pages
# References in the same run: the forward pass alone (random input, batch 16), and decoding +
# preprocessing alone (the tiny DINOv2 test fixture as the encoder: its forward is ~free).
forward=$("$RP" models "$MODEL" --calibrate --size 224 --batch 16 --seconds 20 |
    sed -n 's/.*best: --batch 16 (\([0-9.]*\) images\/s.*/\1/p')
TINY="$ROOT/tests/data/encoders/dinov2"
echo "forward pass alone: $forward images/s (radprobe models --calibrate, batch 16)"
for t in 1 2; do
    read -r rate _ _ < <(run "$N" "$t" "$TINY")
    echo "decoding + preprocessing alone, $t thread(s): $rate images/s"
    eval "decode$t=$rate"
done
echo
echo "| images | decode threads | images/s | × 1 thread | ÷ min(forward, decoding on 1 thread) | waited for decoding, s | peak RSS, MB |"
echo "|---|---|---|---|---|---|---|"
bound=$(awk -v a="$forward" -v b="$decode1" 'BEGIN{print (a < b ? a : b)}')
base=""
for t in 1 2 4; do
    read -r rate waited peak < <(run "$N" "$t")
    base="${base:-$rate}"
    echo "| $N | $t | $rate | $(ratio "$rate" "$base") | $(ratio "$rate" "$bound") | $waited | $peak |"
done
read -r rate waited peak < <(run $((4 * N)) 1)
echo "| $((4 * N)) | 1 | $rate | $(ratio "$rate" "$base") | $(ratio "$rate" "$bound") | $waited | $peak |"
