#!/bin/bash
# create-delete of two ordinal-csi binaries side by side with the disk's ceiling, alternating
# (no-fsync ceiling, binary A, binary B, 5-fsync ceiling) at each concurrency, ROUNDS times, so
# that the load of a shared machine falls on all four alike. One JSON file per run in OUT, and a
# table (medians over the rounds, ratios to the no-fsync ceiling) on stdout.
#
#   bash bench/compare-create-delete.sh CSI_A CSI_B [BENCH_BUILD_DIR] [OUT] [ROUNDS] [SECONDS]
#
# defaults: build/release/bench, /tmp/ordinal-compare, 2 rounds, 8 s per run; concurrencies
# $CONC (default "1 4 8 16"). The drivers run with --http-endpoint so that their
# ordinal_backend_flushes_total / ordinal_backend_durable_waits_total counters (when they have
# them) give the flushes per operation. Roots under $WORK (default /var/tmp/ordinal-compare-work).
# Extra driver flags: $A_ARGS, $B_ARGS (e.g. B_ARGS="--workers 8").
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
A=${1:?binary A}
B=${2:?binary B}
BIN=${3:-$SRC/build/release/bench}
OUT=${4:-/tmp/ordinal-compare}
ROUNDS=${5:-2}
SECS=${6:-8}
read -r -a CONC_LIST <<< "${CONC:-1 4 8 16}"
WORK=${WORK:-/var/tmp/ordinal-compare-work}
PORT=${PORT:-19392}
mkdir -p "$OUT"

PID=
stop() { if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap stop EXIT
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"[{]" {print $2}'; }

run_driver() { # binary tag c round extra-args
    local extra=()
    read -r -a extra <<< "${5:-}"
    rm -rf "$WORK" && mkdir -p "$WORK/root"
    "$1" "${extra[@]}" --endpoint "unix://$WORK/csi.sock" --node-id bench-node --dir-root "$WORK/root" \
        --log-level warn --http-endpoint "127.0.0.1:$PORT" 2>>"$OUT/driver.log" &
    PID=$!
    for _ in $(seq 300); do [ -S "$WORK/csi.sock" ] && break; sleep 0.01; done
    local w0 f0 w1 f1
    w0=$(metric ordinal_backend_durable_waits_total); f0=$(metric ordinal_backend_flushes_total)
    "$BIN/ordinal-bench" --endpoint "unix://$WORK/csi.sock" --scenario create-delete \
        --concurrency "$3" --duration "${SECS}s" --warmup 0 --pid "$PID" --json \
        > "$OUT/$2-c$3-$4.json"
    w1=$(metric ordinal_backend_durable_waits_total); f1=$(metric ordinal_backend_flushes_total)
    echo "{\"waits\": ${w1:-null}, \"waits0\": ${w0:-null}, \"flushes\": ${f1:-null}, \"flushes0\": ${f0:-null}}" \
        > "$OUT/$2-c$3-$4.flush.json"
    stop
}
run_ceiling() { # tag c round [--no-fsync]
    rm -rf "$WORK.ceiling" && mkdir -p "$WORK.ceiling"
    "$BIN/fsync-ceiling" --dir "$WORK.ceiling" --concurrency "$2" --duration "$SECS" ${4:+"$4"} \
        --json > "$OUT/$1-c$2-$3.json"
    rm -rf "$WORK.ceiling"
}

{ date -u +%FT%TZ; uname -r; nproc; findmnt -no SOURCE,FSTYPE,OPTIONS -T "$(dirname "$WORK")"; uptime; } \
    > "$OUT/machine.txt"
for r in $(seq "$ROUNDS"); do
    for c in "${CONC_LIST[@]}"; do
        run_ceiling nofsync "$c" "$r" --no-fsync
        run_driver "$A" a "$c" "$r" "${A_ARGS:-}"
        run_driver "$B" b "$c" "$r" "${B_ARGS:-}"
        run_ceiling fsync "$c" "$r"
    done
done
uptime >> "$OUT/machine.txt"
/usr/bin/python3 "$SRC/bench/compare_summary.py" "$OUT" "$ROUNDS" "${CONC_LIST[@]}"
