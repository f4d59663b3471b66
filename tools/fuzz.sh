#!/usr/bin/env bash
# Run the libFuzzer targets of tests/fuzz (docs/FUZZING.md).
#
#   tools/fuzz.sh TARGET SECONDS    one target (fuzz_csi, fuzz_watch...) for SECONDS
#   tools/fuzz.sh all SECONDS       every target for SECONDS each, ORDINAL_FUZZ_JOBS (2) at a time
#   tools/fuzz.sh list              the targets
#
# Builds the fuzz preset (clang, -fsanitize=fuzzer,address,undefined) first. Each run works in a
# fresh temporary directory: the seed corpus tests/fuzz/corpus/TARGET is read, never written;
# what the run adds stays in the work directory (kept with ORDINAL_FUZZ_KEEP=1). Fails (exit 1)
# on any crash, leak, sanitizer report or timeout; the input is copied to
# build/fuzz/findings/TARGET/ and its path printed. Prints one summary line per target: seconds
# run, executions, exec/s, edges covered (libFuzzer's cov), features, corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$src/build/fuzz

usage() {
    echo "usage: tools/fuzz.sh TARGET|all|list [SECONDS]" >&2
    exit 2
}

targets() {
    for f in "$src"/tests/fuzz/fuzz_*.c; do basename "$f" .c; done
}

[ $# -ge 1 ] || usage
if [ "$1" = list ]; then
    targets
    exit 0
fi
[ $# -eq 2 ] || usage
what=$1
secs=$2
case $secs in '' | *[!0-9]*) usage ;; esac
[ "$secs" -ge 1 ] || usage

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)" >/dev/null

run_one() {
    local t=$1 work bin rc=0 log
    bin=$build/tests/fuzz/$t
    [ -x "$bin" ] || { echo "$t: no such fuzz target" >&2; return 1; }
    work=$(mktemp -d "${TMPDIR:-/tmp}/ordinal-fuzz-$t.XXXXXX")
    mkdir -p "$work/corpus" "$work/artifacts"
    log=$work/log
    local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$work/artifacts/" -detect_leaks=1)
    [ -f "$src/tests/fuzz/$t.dict" ] && args+=(-dict="$src/tests/fuzz/$t.dict")
    local seeds=()
    [ -d "$src/tests/fuzz/corpus/$t" ] && seeds+=("$src/tests/fuzz/corpus/$t")
    # cwd is the work directory: fuzz_csi makes its roots there. stdin is /dev/null, so that a
    # fuzzed file name such as /dev/stdin reads nothing instead of blocking.
    (cd "$work" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:handle_abort=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        nice "$bin" "${args[@]}" "$work/corpus" "${seeds[@]}" </dev/null >"$log" 2>&1) || rc=$?
    local execs eps cov ft corp
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    printf '%-18s %5ss  execs %-10s exec/s %-7s edges %-6s features %-7s corpus %s\n' \
        "$t" "$secs" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
    if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
        mkdir -p "$build/findings/$t"
        cp "$work"/artifacts/* "$build/findings/$t/" 2>/dev/null || true
        echo "$t: FAILED (exit $rc); log $log; inputs in $build/findings/$t/" >&2
        grep -E -A25 'ERROR:|runtime error:|==ERROR|deadly signal|abort' "$log" | head -60 >&2 || true
        return 1
    fi
    [ "${ORDINAL_FUZZ_KEEP:-0}" = 1 ] && echo "$t: work directory $work" || rm -rf "$work"
    return 0
}

if [ "$what" != all ]; then
    run_one "$what"
    exit $?
fi

# every target, ORDINAL_FUZZ_JOBS at a time; the summary lines come out as each one ends
jobs=${ORDINAL_FUZZ_JOBS:-2}
failed=0
for t in $(targets); do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || failed=1
    done
    run_one "$t" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
    wait -n || failed=1
done
if [ "$failed" -ne 0 ]; then
    echo "=== fuzzing: FAILED" >&2
    exit 1
fi
echo "=== fuzzing: every target ran ${secs}s without a finding"
