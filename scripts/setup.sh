#!/usr/bin/env bash
# Installs every Debian package radprobe needs to build, test and run. Idempotent.
# Usage: scripts/setup.sh            (build + run dependencies, references for golden tests)
set -euo pipefail

PACKAGES=(
    build-essential cmake ninja-build ccache pkg-config git
    libtorch-dev libopenblas0-pthread libopenblas-dev
    libgdcm-dev libgdcm-tools libopencv-dev
    nlohmann-json3-dev libcli11-dev libyaml-cpp-dev libsqlite3-dev sqlite3
    libgtest-dev libgmock-dev libbenchmark-dev
    python3 python3-numpy python3-torch python3-sklearn python3-scipy python3-skimage
    python3-pydicom python3-gdcm python3-pil r-cran-proc
    chromium nodejs
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$p")
    fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "setup: all Debian packages present"
fi
