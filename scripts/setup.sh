#!/usr/bin/env bash
# Installs every Debian package radprobe needs to build, test and run. Idempotent.
# Usage: scripts/setup.sh            (build + run dependencies, references for golden tests)
set -euo pipefail

PACKAGES=(
    build-essential cmake ninja-build ccache pkg-config git
    libtorch-dev libopenblas0-pthread libopenblas-dev
    libgdcm-dev libgdcm-tools libcharls-dev libopenjp2-7-dev libopencv-dev libgif-dev
    nlohmann-json3-dev libcli11-dev libyaml-cpp-dev libsqlite3-dev sqlite3
    libgtest-dev libgmock-dev libbenchmark-dev
    libgloo-dev  # the headers of the Gloo that LibTorch links (data-parallel fine-tuning)
    python3 python3-numpy python3-torch python3-sklearn python3-scipy python3-skimage
    python3-pydicom python3-gdcm python3-pil r-cran-proc
    chromium nodejs
    slurm-wlm munge  # the cluster tests bring up a single-node Slurm (tests/slurm/slurm_local.sh)
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

# The HTML report inlines Vega, Vega-Lite and vega-embed (radprobe report; bench component), and
# umap-js for the embedding maps (UMAP computed in the page).
# Installed from the npm registry into build/npm (outside git), pinned, only when missing.
VEGA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/npm"
VEGA_PACKAGES=(vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0 umap-js@1.4.0)
vega_ok=1
for spec in "${VEGA_PACKAGES[@]}"; do
    name="${spec%@*}"
    want="${spec##*@}"
    have="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
        "$VEGA_DIR/node_modules/$name/package.json" 2>/dev/null | head -n 1 || true)"
    if [ "$have" != "$want" ]; then vega_ok=0; fi
done
if [ "$vega_ok" -eq 1 ]; then
    echo "setup: Vega JavaScript present in $VEGA_DIR"
else
    if ! command -v npm >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
    fi
    echo "setup: installing ${VEGA_PACKAGES[*]} into $VEGA_DIR"
    mkdir -p "$VEGA_DIR"
    npm install --prefix "$VEGA_DIR" --no-audit --no-fund --no-save "${VEGA_PACKAGES[@]}"
fi
