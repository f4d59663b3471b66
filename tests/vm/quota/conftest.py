"""Fixtures of the project quota suite (tests/vm/quota), run in the test VM by tests/vm/quota.sh.

The CSI conformance suite's fixtures (tests/csi/conftest.py: the daemon, its work directory)
are loaded under another module name and re-exported; this file adds the quota filesystems.

Environment: ORDINAL_QUOTA_DEVICES="xfs=/dev/vda,ext4=/dev/vdb" (set by tests/vm/quota.sh):
blank block devices to make the filesystems on. Without it (the host) the suite skips.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CSI_DIR = os.path.join(HERE, "..", "..", "csi")
sys.path.insert(0, CSI_DIR)
_spec = importlib.util.spec_from_file_location("csi_conftest", os.path.join(CSI_DIR, "conftest.py"))
csi_conftest = importlib.util.module_from_spec(_spec)
sys.modules["csi_conftest"] = csi_conftest
_spec.loader.exec_module(csi_conftest)

# the CSI suite's fixtures and report hook
pb = csi_conftest.pb
binary = csi_conftest.binary
workdir = csi_conftest.workdir
daemon_factory = csi_conftest.daemon_factory
pytest_runtest_makereport = csi_conftest.pytest_runtest_makereport


def _devices():
    spec = os.environ.get("ORDINAL_QUOTA_DEVICES", "")
    out = {}
    for part in filter(None, spec.split(",")):
        fs, _, dev = part.partition("=")
        out[fs] = dev
    return out


DEVICES = _devices()

MKFS = {
    "xfs": ["mkfs.xfs", "-q", "-f"],
    # project ids and quota accounting in the superblock (the 'project' and 'quota' features)
    "ext4": ["mkfs.ext4", "-q", "-F", "-O", "project,quota", "-E", "quotatype=prjquota"],
}


@pytest.fixture(scope="session")
def quota_mounts():
    """{fs: mount point} of a fresh filesystem per device, mounted with prjquota."""
    base = tempfile.mkdtemp(prefix="ordinal-quota-", dir="/tmp")
    made = {}
    try:
        for fs, dev in DEVICES.items():
            mp = os.path.join(base, fs)
            os.makedirs(mp)
            for argv in (MKFS[fs] + [dev], ["mount", "-t", fs, "-o", "prjquota", dev, mp]):
                p = subprocess.run(argv, capture_output=True, text=True)
                assert p.returncode == 0, "%s: %s" % (" ".join(argv), p.stderr)
            made[fs] = mp
        yield made
    finally:
        for mp in made.values():
            subprocess.run(["umount", "-l", mp], capture_output=True)


@pytest.fixture(params=sorted(DEVICES))
def qroot(request, quota_mounts):
    """A fresh backend root on a quota filesystem: (fs, path)."""
    fs = request.param
    return fs, tempfile.mkdtemp(prefix="root-", dir=quota_mounts[fs])
