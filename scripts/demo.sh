#!/usr/bin/env bash
# Fresh machine → the main job: installs the Debian packages, builds, runs `radprobe demo`.
# Usage: scripts/demo.sh [radprobe demo args...]   (e.g. scripts/demo.sh --out my-demo)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
scripts/build.sh radprobe
build/radprobe demo "$@"
