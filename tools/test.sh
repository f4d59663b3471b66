#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root: installs missing packages,
# configures and builds the Debug and ASan+UBSan presets, runs every test (unit, CSI
# conformance with real mounts, crash recovery) in both, then the conformance suite once more
# with the daemon under valgrind memcheck.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/deps.sh

jobs=$(nproc)
for preset in debug asan; do
    echo "=== build: $preset"
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j"$jobs"
done

echo "=== tests: debug"
ctest --preset debug
echo "=== tests: asan (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --preset asan
echo "=== tests: conformance under valgrind memcheck"
ORDINAL_VALGRIND=1 ctest --preset debug -R csi.conformance
echo "=== all tests passed"
