#!/usr/bin/env bash
# Peak resident memory of a segmentation study as the number of images grows tenfold (issue 21,
# item 5). Phantoms of 2048 px with masks at the same size: N genuine phantoms, and a manifest of
# 10 × N images made of symbolic links to them under new names and patient ids
# (replicate_manifest.py: 10 × N distinct files to decode, N phantoms' disk space). One
# `radprobe run` per size (an encoder, probes on mean and roi pooling, a linear segmentation
# decoder, the U-Net baseline), then `radprobe segment` and `radprobe baseline --task seg` alone;
# peak RSS from /usr/bin/time -v. Prints a table and the ratio 10N / N per command.
#
# Usage: bench/segment/bench_memory.sh [N=250] [WORK=/tmp/radprobe-bench-memory]
# Needs build/radprobe (or RADPROBE=path) and about 1.6 GB of disk for N = 250. Takes about an hour on 2 cores.
set -euo pipefail
N="${1:-250}"
WORK="${2:-/tmp/radprobe-bench-memory}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RP="${RADPROBE:-$ROOT/build/radprobe}"  # RADPROBE=a copy lets a build run meanwhile
MODEL="$ROOT/tests/data/encoders/dinov2"
mkdir -p "$WORK"
if [ ! -f "$WORK/phantoms/manifest.csv" ]; then
    "$RP" synth --out "$WORK/phantoms" --n "$N" --size 2048 --seed 7 --cardiomegaly-prevalence 0.4 --nodule-prevalence 0.4 --overwrite >/dev/null
fi
if [ ! -f "$WORK/x10/boxes.csv" ]; then
    python3 "$ROOT/bench/segment/replicate_manifest.py" "$WORK/phantoms/manifest.csv" 10 \
        "$WORK/x10"
fi

config() {  # config MANIFEST OUTDIR
    cat <<YAML
data:
  manifest: $1
  roi: {nodule: boxes:nodule, cardiomegaly: mask_heart}
encoders:
  - name: dinov2-tiny
    path: $MODEL
    preprocessing: {size: 64}
tasks:
  classification: [nodule, cardiomegaly]
  segmentation: [heart]
adaptations:
  linear: {c_grid: '0.1,1'}
  segment: {decoders: [linear], epochs: 2}
  unet_baseline: {size: 128, channels: 4, depth: 2, epochs: 2}
pooling: [mean, roi]
seeds: [0]
statistics: {ci: delong}
output:
  db: $2/results.sqlite
  store: $2/embeddings
  report: $2/report.html
  report_md: $2/report.md
YAML
}

peak() {  # peak LABEL COMMAND... → "LABEL wall peak_MiB"
    local label="$1"
    shift
    local log="$WORK/time-$label.log"
    /usr/bin/time -v "$@" >"$WORK/out-$label.log" 2>"$log" || {
        echo "$label FAILED (see $WORK/out-$label.log, $log)" >&2
        exit 1
    }
    local kb secs
    kb="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")"
    secs="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")"
    echo "$label $secs $((kb / 1024))"  # peak in MiB
}

results=()
for size in 1 10; do
    if [ "$size" = 1 ]; then manifest="$WORK/phantoms/manifest.csv"; else manifest="$WORK/x10/manifest.csv"; fi
    images=$((N * size))
    out="$WORK/run-$images"
    rm -rf "$out" "$WORK/seg-$images" "$WORK/unet-$images"
    mkdir -p "$out"
    config "$manifest" "$out" >"$out/study.yaml"
    results+=("$(peak "run-$images" "$RP" run "$out/study.yaml" --threads 2)")
    results+=("$(peak "segment-$images" "$RP" segment --decoder linear --model "$MODEL" \
        --manifest "$manifest" --mask heart --resize 64 --epochs 2 --n-boot 200 --threads 2 \
        --out "$WORK/seg-$images")")
    results+=("$(peak "unet-$images" "$RP" baseline --task seg --manifest "$manifest" \
        --mask heart --size 128 --channels 4 --depth 2 --epochs 2 --n-boot 200 --threads 2 \
        --out "$WORK/unet-$images")")
done

printf '%-16s %10s %13s\n' step wall "peak RSS MiB"
for r in "${results[@]}"; do
    read -r label secs mb <<<"$r"
    printf '%-16s %10s %13s\n' "$label" "$secs" "$mb"
done
for cmd in run segment unet; do
    a="$(printf '%s\n' "${results[@]}" | awk -v k="$cmd-$N" '$1 == k {print $3}')"
    b="$(printf '%s\n' "${results[@]}" | awk -v k="$cmd-$((N * 10))" '$1 == k {print $3}')"
    awk -v c="$cmd" -v a="$a" -v b="$b" -v n="$N" \
        'BEGIN {printf "%s: %d images %d MiB, %d images %d MiB, ratio %.2f\n", c, n, a, 10 * n, b, b / a}'
done
