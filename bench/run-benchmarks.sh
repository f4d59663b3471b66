#!/bin/bash
# Runs the figures of docs/BENCHMARKS.md: every result is one JSON file in OUT.
#
#   bash bench/run-benchmarks.sh [CSI_BINARY] [BENCH_BUILD_DIR] [OUT] [REPEAT]
#
# defaults: build/release/ordinal-csi, build/release/bench, /tmp/ordinal-bench-results, 3.
# The driver runs on a fresh root under $WORK (default /var/tmp/ordinal-bench-work, on the
# disk being measured). Needs root for the publish/stats scenarios (bind mounts).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
CSI=${1:-$SRC/build/release/ordinal-csi}
BIN=${2:-$SRC/build/release/bench}
OUT=${3:-/tmp/ordinal-bench-results}
REPEAT=${4:-3}
WORK=${WORK:-/var/tmp/ordinal-bench-work}
BENCH=$BIN/ordinal-bench
CEIL=$BIN/fsync-ceiling
mkdir -p "$OUT"

DRIVER_PID=
start_driver() {            # fresh root, wait for the socket
    stop_driver
    rm -rf "$WORK"
    mkdir -p "$WORK/root"
    "$CSI" --endpoint "unix://$WORK/csi.sock" --node-id bench-node --dir-root "$WORK/root" \
        --log-level warn 2>>"$OUT/driver.log" &
    DRIVER_PID=$!
    for _ in $(seq 200); do [ -S "$WORK/csi.sock" ] && break; sleep 0.01; done
}
stop_driver() {
    if [ -n "$DRIVER_PID" ]; then
        kill -TERM "$DRIVER_PID" 2>/dev/null || true
        wait "$DRIVER_PID" 2>/dev/null || true
        DRIVER_PID=
    fi
}
trap stop_driver EXIT
EP="unix://$WORK/csi.sock"

{ date -u +%FT%TZ; uname -r; nproc; grep -m1 'model name' /proc/cpuinfo; free -m | sed -n 2p
  findmnt -no SOURCE,FSTYPE,OPTIONS -T "$(dirname "$WORK")"; uptime; } > "$OUT/machine.txt"

for i in $(seq "$REPEAT"); do
    # the disk's ceiling: the same file-system work, no gRPC
    rm -rf "$WORK.ceiling" && mkdir -p "$WORK.ceiling"
    "$CEIL" --dir "$WORK.ceiling" --concurrency 8 --duration 10 --json > "$OUT/ceiling-c8-$i.json"
    rm -rf "$WORK.ceiling" && mkdir -p "$WORK.ceiling"
    "$CEIL" --dir "$WORK.ceiling" --concurrency 8 --duration 10 --mountinfo --json \
        > "$OUT/ceiling-c8-mountinfo-$i.json"
    # as many in flight as the driver has workers (ordinal-csi: 4)
    rm -rf "$WORK.ceiling" && mkdir -p "$WORK.ceiling"
    "$CEIL" --dir "$WORK.ceiling" --concurrency 4 --duration 10 --mountinfo --json \
        > "$OUT/ceiling-c4-mountinfo-$i.json"
    rm -rf "$WORK.ceiling"

    start_driver
    "$BENCH" --endpoint "$EP" --scenario create-delete --concurrency 8 --duration 10s \
        --warmup 1s --pid "$DRIVER_PID" --json > "$OUT/create-delete-c8-$i.json"
    "$BENCH" --endpoint "$EP" --scenario create-delete --concurrency 1 --duration 5s \
        --warmup 200 --pid "$DRIVER_PID" --json > "$OUT/create-delete-c1-$i.json"
    "$BENCH" --endpoint "$EP" --scenario create-delete --concurrency 8 --duration 10s \
        --warmup 1s --pid "$DRIVER_PID" --json \
        --param csi.storage.k8s.io/pvc/namespace=bench \
        --param 'csi.storage.k8s.io/pvc/name={name}' > "$OUT/create-delete-c8-pvc-$i.json"
    if [ "$(id -u)" = 0 ]; then
        "$BENCH" --endpoint "$EP" --scenario publish --concurrency 4 --volumes 8 \
            --duration 5s --warmup 50 --pid "$DRIVER_PID" --json > "$OUT/publish-c4-$i.json"
        "$BENCH" --endpoint "$EP" --scenario stats --concurrency 8 --volumes 64 \
            --duration 5s --warmup 200 --pid "$DRIVER_PID" --json > "$OUT/stats-c8-$i.json"
        "$BENCH" --endpoint "$EP" --scenario mixed --concurrency 8 --volumes 64 \
            --duration 10s --warmup 1s --pid "$DRIVER_PID" --json > "$OUT/mixed-c8-$i.json"
    fi
    stop_driver

    # memory: idle, then with 10,000 volumes; list over them
    start_driver
    sleep 2
    "$BENCH" --endpoint "$EP" --scenario create --concurrency 8 --ops 10000 \
        --pid "$DRIVER_PID" --json > "$OUT/create-10000-$i.json"
    sleep 2
    "$BENCH" --endpoint "$EP" --scenario list --concurrency 1 --volumes 1 --page-size 1000 \
        --ops 20 --pid "$DRIVER_PID" --json > "$OUT/list-10000-$i.json"
    stop_driver

    # start-up: spawn to Probe ready, 30 runs on an empty root
    rm -rf "$WORK" && mkdir -p "$WORK/root"
    "$BENCH" --scenario startup --endpoint "$EP" --ops 30 --warmup 2 --json -- \
        "$CSI" --endpoint "$EP" --node-id bench-node --dir-root "$WORK/root" \
        > "$OUT/startup-$i.json"
done
rm -rf "$WORK"
echo "results in $OUT"
