#!/usr/bin/env bash
# Run the kubernetes-csi conformance suite (csi-sanity) against a fresh ordinal-csi.
#   tools/csi-sanity.sh /path/to/csi-sanity [build/debug/ordinal-csi] [extra csi-sanity flags]
# csi-sanity is a Go program from kubernetes-csi/csi-test (cmd/csi-sanity); Debian does not
# package it, so it is built by hand and never committed here.
set -euo pipefail
sanity=${1:?usage: tools/csi-sanity.sh CSI_SANITY [ORDINAL_CSI] [flags...]}
shift
binary=${1:-build/debug/ordinal-csi}
[ $# -gt 0 ] && shift
work=$(mktemp -d /tmp/ordinal-sanity.XXXXXX)
mkdir -p "$work/root"
"$binary" --endpoint "unix://$work/csi.sock" --node-id sanity-node --dir-root "$work/root" \
    --log-level info >"$work/daemon.log" 2>&1 &
pid=$!
stop_daemon() {
    local rc=0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" || rc=$?
    echo "daemon exit: $rc"
    cp "$work/daemon.log" /tmp/ordinal-sanity-daemon.log
    rm -rf "$work"
}
trap stop_daemon EXIT
for _ in $(seq 100); do grep -q " ready: " "$work/daemon.log" && break; sleep 0.1; done
"$sanity" --csi.endpoint "$work/csi.sock" --csi.mountdir "$work/mount" \
    --csi.stagingdir "$work/staging" "$@"
echo "leftovers under the root after the run:"
find "$work/root" -mindepth 2 | head
