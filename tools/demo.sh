#!/usr/bin/env bash
# Ordinal's main job on a fresh Debian 12 machine, as root: install what is missing, build the
# release preset, then run the founding note's StatefulSet on a 3-node sandbox cluster with
# real kubectl (tools/demo.py). --keep leaves the sandbox up for more kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target ordinal-csi kubectl-ordinal
exec /usr/bin/python3 tools/demo.py build/release/ordinal-csi "$@"
