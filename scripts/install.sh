#!/usr/bin/env bash
# Install siamlab and everything it needs on a fresh machine.
#   bash scripts/install.sh          # the library, the CLI, the TensorBoard writer and Fashion-MNIST
#   bash scripts/install.sh --test   # + pytest, tensorboard and headless Chromium for the tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

apt_install() {  # best effort: only where apt exists and we are root
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || return 0
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || echo "note: could not apt-get install ${missing[*]} (siamlab works without it; see 'siamlab datasets')"
}

# torch first: when none is installed, the CPU build of 2.13.0 available locally (asking pip for "torch"
# would pull CUDA wheels). An installed torch (e.g. a CUDA build on a GPU machine) is kept: siamlab
# needs torch >= 2.2 and caps nothing.
$PY -c "import torch" 2>/dev/null || $PY -m pip install -q "torch==2.13.0"
if [ "${1:-}" = "--test" ]; then
  $PY -m pip install -q -e ".[test]"
  apt_install dataset-fashion-mnist chromium chromium-driver
else
  $PY -m pip install -q -e ".[tensorboard]"
  apt_install dataset-fashion-mnist
fi
echo "siamlab installed: $($PY -c 'import siamlab; print(siamlab.__version__)')"
