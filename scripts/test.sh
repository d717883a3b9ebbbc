#!/usr/bin/env bash
# Fresh machine → tested build: installs the Debian packages, builds, runs every test.
# Usage: scripts/test.sh [ctest args...]     (e.g. scripts/test.sh -L unit)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure -j "${RADPROBE_TEST_JOBS:-2}" "$@"
