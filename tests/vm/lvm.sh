#!/usr/bin/env bash
# The LVM suite (tests/lvm) inside the test VM, on a real volume group on a sparse 24 GiB virtio
# disk with activation on: the node path (tests/lvm/test_lvm_node.py) runs for real there.
# Environment as for the other suites (ORDINAL_CSI, ORDINAL_SOURCE, ...); extra arguments go to
# pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
export ORDINAL_LVM_DEVICE=/dev/vda
exec bash "$here/run.sh" --disk 24G --mem 2048 --timeout 1500 -- \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/lvm "$@"
