#!/usr/bin/env bash
# Fresh machine → tested build: installs the Debian packages, builds, runs every test.
# Usage: scripts/test.sh [ctest args...]     (e.g. scripts/test.sh -L unit)
#        scripts/test.sh --sanitize [ctest args...]
#            AddressSanitizer + UndefinedBehaviorSanitizer: a Debug build in ./build-sanitize
#            (its own ccache), then the unit tests (`-L unit` unless other ctest args are given);
#            any sanitizer report fails the test that triggered it. About 40 minutes on 2 cores
#            from an empty cache.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
if [ "${1:-}" = "--sanitize" ]; then
    shift
    export CCACHE_DIR="${CCACHE_SANITIZE_DIR:-$HOME/.cache/ccache-sanitize}"
    export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
    export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
    cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRADPROBE_SANITIZE=ON \
        -DRADPROBE_ONLY= -DRADPROBE_BUILD_TESTS=ON -DRADPROBE_BUILD_BENCH=OFF >/dev/null
    cmake --build build-sanitize -j "${RADPROBE_JOBS:-$(nproc)}"
    # Leaks inside uninstrumented third-party libraries are theirs (scripts/lsan.supp lists them);
    # halt at the first report of any kind so the test fails.
    export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_odr_violation=0:${ASAN_OPTIONS:-}"
    export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
    cd build-sanitize
    if [ "$#" -eq 0 ]; then
        set -- -L unit
    fi
    ctest --output-on-failure -j "${RADPROBE_TEST_JOBS:-2}" "$@"
    exit
fi
scripts/build.sh
cd build
ctest --output-on-failure -j "${RADPROBE_TEST_JOBS:-2}" "$@"
