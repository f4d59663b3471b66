#!/usr/bin/env bash
# The soak on the sandbox (tools/soak.py): random StatefulSet lifecycles with faults for MINUTES,
# invariants after every step, ordinal-csi's RSS and fds sampled.
#
#   tools/soak.sh MINUTES [soak.py options: --seed N --nodes N --json FILE --csi PATH]
#
# Builds the debug preset's ordinal-csi first unless --csi is given. Exit 1 on an invariant
# break or a step that does not converge.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: tools/soak.sh MINUTES [options]" >&2; exit 2; }
if [[ " $* " != *" --csi "* ]]; then
    cmake --preset debug >/dev/null
    cmake --build --preset debug -j"$(nproc)" --target ordinal-csi >/dev/null
    set -- "$@" --csi "$PWD/build/debug/ordinal-csi"
fi
exec /usr/bin/python3 tools/soak.py "$@"
