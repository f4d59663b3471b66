#!/usr/bin/env bash
# csi-sanity on an LVM thin class, in the test VM (a real kernel: device-mapper, activation):
#   tools/csi-sanity-vm.sh /path/to/csi-sanity [build/debug/ordinal-csi] [extra csi-sanity flags]
# Makes a volume group on the VM's 24 GiB virtio disk with a 20 GiB thin pool, starts the daemon
# on it with the deploy manifests' lvm.conf (udev-less), runs csi-sanity with a thin class and
# lists the LVs left afterwards (only the pool should be). csi-sanity is built by hand from
# kubernetes-csi/csi-test (tools/csi-sanity.sh says how); results: docs/CONFORMANCE.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
if [ "${1:-}" = --inside ]; then
    shift
    sanity=$1 binary=$2
    shift 2
    export LVM_SYSTEM_DIR=$PWD/deploy/kubernetes/overlays/lvm
    pvcreate -q /dev/vda
    vgcreate -q sanvg /dev/vda
    lvcreate -q -y --type thin-pool --zero y -L 20g -n pool0 sanvg
    work=/tmp/ordinal-sanity
    mkdir -p "$work/root"
    "$binary" --endpoint "unix://$work/csi.sock" --node-id sanity-node --dir-root "$work/root" \
        --lvm-vg sanvg --default-backend lvm --log-level info >"$work/daemon.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do grep -q " ready: " "$work/daemon.log" && break; sleep 0.1; done
    printf 'backend: lvm\nvolumeGroup: sanvg\nthinPool: pool0\n' >"$work/params.yaml"
    rc=0
    "$sanity" --csi.endpoint "$work/csi.sock" --csi.mountdir "$work/mount" \
        --csi.stagingdir "$work/staging" --csi.testvolumeparameters "$work/params.yaml" "$@" || rc=$?
    kill -TERM "$pid"
    drc=0
    wait "$pid" || drc=$?
    echo "daemon exit: $drc"
    echo "LVs left in sanvg:"
    lvs --noheadings -o lv_name sanvg
    exit "$rc"
fi
sanity=$(realpath "${1:?usage: tools/csi-sanity-vm.sh CSI_SANITY [ORDINAL_CSI] [flags...]}")
shift
binary=$(realpath "${1:-build/debug/ordinal-csi}")
[ $# -gt 0 ] && shift
exec bash tests/vm/run.sh --disk 24G --mem 2048 --timeout 7200 -- \
    bash tools/csi-sanity-vm.sh --inside "$sanity" "$binary" "$@"
