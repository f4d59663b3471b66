#!/usr/bin/env bash
# The LVM suite (tests/lvm) inside the test VM, on a real volume group on a sparse 24 GiB virtio
# disk with activation on: the node path (tests/lvm/test_lvm_node.py) runs for real there.
#   tests/vm/lvm.sh [--kernel-only] [PYTEST ARGS...]
# --kernel-only runs the two files that need the VM's kernel (device-mapper: the node path and
# thin pools; the test command's vm.lvm). Their other file, test_lvm.py, passes on the host too
# (lvm.test_lvm, on a loop-file group without activation); the whole suite here takes about
# 11 min alone under TCG against about 5.5 min for the two files.
# Environment as for the other suites (ORDINAL_CSI, ORDINAL_SOURCE, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
tests=(tests/lvm)
if [ "${1:-}" = --kernel-only ]; then
    shift
    tests=(tests/lvm/test_lvm_node.py tests/lvm/test_lvm_thin.py)
fi
export ORDINAL_LVM_DEVICE=/dev/vda
exec bash "$here/run.sh" --disk 24G --mem 2048 --timeout 1500 -- \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider "${tests[@]}" "$@"
