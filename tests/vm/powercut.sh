#!/usr/bin/env bash
# Power cuts under the directory backend (tests/vm/powercut/powercut.py) inside the test VM:
# per filesystem a data disk under dm-log-writes, its log disk and a blank disk to replay onto;
# one scratch disk for the copy-on-write of each cut point's mount. Extra arguments go to the
# driver (--points N|all, --fs ext4,xfs); ORDINAL_POWERCUT_POINTS sets the default number of
# cut points per filesystem.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
exec bash "$here/run.sh" --disk 320M --disk 2G --disk 320M --disk 320M --disk 2G --disk 320M \
    --disk 512M --mem 2048 --timeout 1500 -- \
    /usr/bin/python3 tests/vm/powercut/powercut.py \
    --disks "/dev/vda,/dev/vdb,/dev/vdc;/dev/vdd,/dev/vde,/dev/vdf" --cow /dev/vdg "$@"
