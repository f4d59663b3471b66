#!/usr/bin/env bash
# Ordinal's main job on a fresh Debian 12 machine, as root: install what is missing, build the
# release preset, run the demo (tools/demo.py). The sandbox cluster will replace it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target ordinal-csi
exec /usr/bin/python3 tools/demo.py build/release/ordinal-csi
