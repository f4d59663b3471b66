#!/usr/bin/env bash
# Directory volumes under project quotas (tests/vm/quota) inside the test VM: an xfs disk
# (mkfs.xfs wants >= 300 MB) and an ext4 one (features project,quota), both mounted with
# prjquota by the suite's fixtures. Environment as for the other suites (ORDINAL_CSI, ...);
# extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
export ORDINAL_QUOTA_DEVICES=xfs=/dev/vda,ext4=/dev/vdb
exec bash "$here/run.sh" --disk 512M --disk 256M --mem 1024 --timeout 1200 -- \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/vm/quota "$@"
