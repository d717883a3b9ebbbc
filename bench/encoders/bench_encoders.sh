#!/bin/bash
# ViT-B/14 forward throughput (bench_encoders: DINOv2 and HF ViT layouts at 224 and 518 px,
# batch 1 and 4, against the fp32 GEMM peak and PyTorch eager of the same architecture, all in
# one run) in the two environments that matter: the default one any library caller gets, and
# the tuned one the radprobe CLI re-executes into (OMP_WAIT_POLICY=PASSIVE,
# GLIBC_TUNABLES=glibc.malloc.hugetlb=1; src/cli/main.cpp). Eager runs in the same environment
# as radprobe in each half. Not part of CI: about 15 minutes on 2 cores; run it on a quiet
# machine.
#
#   bash bench/encoders/bench_encoders.sh [bench_encoders args...]     (BUILD=build)
set -euo pipefail
BUILD=${BUILD:-build}
bin="$BUILD/bench/encoders/bench_encoders"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"
echo "== default environment"
env -u OMP_WAIT_POLICY -u GLIBC_TUNABLES "$bin" "$@"
echo "== tuned environment (what the CLI re-executes into)"
OMP_WAIT_POLICY=PASSIVE GLIBC_TUNABLES=glibc.malloc.hugetlb=1 "$bin" "$@"
