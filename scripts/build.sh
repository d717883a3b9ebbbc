#!/usr/bin/env bash
# Configures and builds radprobe in ./build (Release, Ninja, ccache).
# Usage: scripts/build.sh [target...]     (default: everything; e.g. scripts/build.sh radprobe)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# ccache: one cache shared by every clone on this machine; paths made relative to the clone so
# that a fresh clone (CI) hits the cache; precompiled headers need the sloppiness settings.
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_BASEDIR="$root"
export CCACHE_NOHASHDIR=true
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-8G}"

jobs="${RADPROBE_JOBS:-$(nproc)}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DRADPROBE_ONLY= \
    -DRADPROBE_BUILD_TESTS=ON -DRADPROBE_BUILD_BENCH=ON >/dev/null
if [ "$#" -gt 0 ]; then
    cmake --build build -j "$jobs" --target "$@"
else
    cmake --build build -j "$jobs"
fi
