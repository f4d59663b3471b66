#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root: installs missing packages,
# configures and builds the Debug, ASan+UBSan and TSan presets, runs every test in the first two
# (cmocka unit tests, CSI conformance with real mounts, kill -9 crash recovery, LVM against real
# lvm2 metadata, the fake Kubernetes API server with real kubectl and the provisioner against
# it, ordinal-bench's own tests), the conformance and provisioner suites under TSan, the
# conformance suite once more with every daemon under valgrind memcheck, every fuzz target for
# a short budget (the fuzz preset), 2 minutes of soak on the sandbox, the fault matrix's short
# form, and finally the main job's release build and demo.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage's wall time, printed as it ends and summed up at the end (docs/BENCHMARKS.md
# keeps them per run).
t0=$SECONDS
t_stage=$SECONDS
stage_name=
times=()
stage() {
    if [ -n "$stage_name" ]; then
        times+=("$(printf '%5d s  %s' $((SECONDS - t_stage)) "$stage_name")")
        echo "=== ($((SECONDS - t_stage)) s: $stage_name)"
    fi
    stage_name=$1
    t_stage=$SECONDS
    [ -z "$1" ] || echo "=== $1"
}

stage "packages"
bash tools/deps.sh

jobs=$(nproc)
for preset in debug asan tsan; do
    stage "build: $preset"
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j"$jobs"
done

# One ctest entry per test file; entries run two at a time (most of a test's time is spent
# waiting on a daemon or the fake API server, not computing), those sharing a machine-wide
# resource are serialised by their RESOURCE_LOCK (CMakeLists.txt).
ctest_jobs=${ORDINAL_CTEST_JOBS:-2}
# The VM suites (ctest vm.*: tests/vm, a real kernel under TCG, a core each, one at a time, about
# 13 min in all) run in the background from here on, beside the debug, ASan and TSan passes
# (whose tests mostly wait on daemons and leave a core free), and are waited for before the
# release build; their output is printed then. A failure of theirs fails the command.
vm_log=build/debug/vm-suites.log
vm_pid=
if ctest --preset debug -N -R '^vm\.' | grep -q 'Total Tests: [1-9]'; then
    # its own session (setsid): a failing stage below stops it with all its processes
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid bash -c 't=$SECONDS; rc=0; ctest --preset debug -R "^vm\." -j1 || rc=$?
        echo "=== VM suites: $((SECONDS - t)) s in the background, exit $rc"; exit "$rc"' \
        >"$vm_log" 2>&1 &
    vm_pid=$!
    trap '[ -z "$vm_pid" ] || kill -- -"$vm_pid" 2>/dev/null || true' EXIT
fi
stage "tests: debug (all but the VM suites)"
ctest --preset debug -j"$ctest_jobs" -E '^vm\.'
stage "tests: asan (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --preset asan -j"$ctest_jobs"
stage "tests: conformance and provisioner under TSan (tests/tsan.supp)"
ctest --preset tsan -j"$ctest_jobs" -R '^(csi\.|k8s\.test_provisioner$)'
# Under valgrind every RPC surface of the conformance suite; not the two files that time
# things (200 SIGTERMs with a 10 s exit bound, HTTP timeouts): under valgrind they would measure
# valgrind, and they run in the debug, asan and tsan passes above.
stage "tests: conformance under valgrind memcheck"
ORDINAL_VALGRIND=1 ctest --preset debug -j"$ctest_jobs" -R '^csi\.' \
    -E '^csi\.test_(shutdown|http_endpoint)$'
stage "tests: the provisioner against the fake API server, daemon under valgrind memcheck"
ORDINAL_VALGRIND=1 ORDINAL_CSI="$PWD/build/debug/ordinal-csi" ORDINAL_SOURCE="$PWD" \
    ORDINAL_BUILD="$PWD/build/debug" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
    tests/k8s/test_provisioner.py -k "right_shape or retain or mid_provisioning or kill9"
# Every libFuzzer target (tests/fuzz) for a short fixed budget, two at a time, from its seed
# corpus; any crash, leak or sanitizer report fails the run (docs/FUZZING.md). Longer runs:
# tools/fuzz.sh TARGET SECONDS.
stage "fuzzing: every target ${ORDINAL_FUZZ_SECONDS:-20}s"
ORDINAL_FUZZ_JOBS=2 bash tools/fuzz.sh all "${ORDINAL_FUZZ_SECONDS:-20}"
# Random StatefulSet lifecycles with faults on the sandbox, invariants after every step; the
# seed is printed, tools/soak.sh MINUTES --seed N replays a run.
stage "soak: 2 minutes on the sandbox"
bash tools/soak.sh 2 --csi "$PWD/build/debug/ordinal-csi"
# The fault matrix's short form: every fault once, every operation at least once, on one
# sandbox (about 1 min); the whole matrix (70 cells) is tools/fault_matrix.py alone.
stage "fault matrix, short form"
/usr/bin/python3 tools/fault_matrix.py --short --csi "$PWD/build/debug/ordinal-csi"
if [ -n "$vm_pid" ]; then
    stage "tests: the VM suites (waiting for the background run)"
    vm_rc=0
    wait "$vm_pid" || vm_rc=$?
    vm_pid=
    cat "$vm_log"
    times+=("$(printf '      %s' "$(tail -n 1 "$vm_log")")")
    if [ "$vm_rc" -ne 0 ]; then
        echo "=== the VM suites failed (exit $vm_rc)" >&2
        exit 1
    fi
fi
stage "the main job: release build and the demo"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs" --target ordinal-csi kubectl-ordinal
/usr/bin/python3 tools/demo.py build/release/ordinal-csi
stage ""
printf '%s\n' "${times[@]}"
echo "=== all tests passed in $((SECONDS - t0)) s"
