"""Directory volumes with capacity enforced by project quotas, on xfs (prjquota) and ext4 (the
project and quota features, prjquota), in the test VM: each volume its own project id and a hard
block limit equal to its size; writes past it fail with EDQUOT/ENOSPC for a writer without
CAP_SYS_RESOURCE (ext4 lets that capability exceed quotas; a pod does not have it); expansion
raises the limit; NodeGetVolumeStats gives the quota's numbers; an inode limit by parameter;
deletion and restarts leave no limit behind that no volume holds, and no volume without one.

The quota state is read back with quotactl_fd(2) and FS_IOC_FSGETXATTR through ctypes/fcntl,
the same interfaces the daemon uses, independently of it.
"""

import ctypes
import errno
import fcntl
import os
import struct
import subprocess
import time

import grpc
import pytest

from csi_client import mount_cap
from csi_conftest import create

if not os.environ.get("ORDINAL_QUOTA_DEVICES"):
    pytest.skip("the quota suite runs in the test VM (tests/vm/quota.sh): "
                "ORDINAL_QUOTA_DEVICES is not set", allow_module_level=True)

MiB = 1 << 20
PROJID_BASE = 1000000
NR_QUOTACTL_FD = 443  # x86_64
PRJQUOTA = 2
Q_GETQUOTA = 0x800007
Q_SETQUOTA = 0x800008
QIF_LIMITS = 1 | 4  # QIF_BLIMITS | QIF_ILIMITS
FS_IOC_FSGETXATTR = 0x801C581F
FS_XFLAG_PROJINHERIT = 0x200

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class DqBlk(ctypes.Structure):
    _fields_ = [("bhardlimit", ctypes.c_uint64), ("bsoftlimit", ctypes.c_uint64),
                ("curspace", ctypes.c_uint64), ("ihardlimit", ctypes.c_uint64),
                ("isoftlimit", ctypes.c_uint64), ("curinodes", ctypes.c_uint64),
                ("btime", ctypes.c_uint64), ("itime", ctypes.c_uint64),
                ("valid", ctypes.c_uint32)]


def _quotactl(path, cmd, projid, blk):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        r = _libc.syscall(ctypes.c_long(NR_QUOTACTL_FD), ctypes.c_int(fd),
                          ctypes.c_uint((cmd << 8) | PRJQUOTA),  # QCMD(cmd, PRJQUOTA)
                          ctypes.c_int(projid), ctypes.byref(blk))
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    finally:
        os.close(fd)


def get_quota(path, projid):
    """The id's quota; all zero when the filesystem keeps no record of it (xfs drops a record
    without limits and usage: ENOENT)."""
    blk = DqBlk()
    try:
        _quotactl(path, Q_GETQUOTA, projid, blk)
    except FileNotFoundError:
        return DqBlk()
    return blk


def set_quota(path, projid, bhard_kib, ihard=0):
    blk = DqBlk(bhardlimit=bhard_kib, ihardlimit=ihard, valid=QIF_LIMITS)
    _quotactl(path, Q_SETQUOTA, projid, blk)


def projid_of(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = fcntl.ioctl(fd, FS_IOC_FSGETXATTR, bytes(28))
    finally:
        os.close(fd)
    xflags, _, _, projid = struct.unpack("IIII", buf[:16])
    return projid, xflags


def meta_of(daemon, name):
    with open(os.path.join(daemon.root, "_", name, "volume.meta")) as f:
        return dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)


def write_unprivileged(path, mib):
    """Write mib MiB into path as a pod would (no CAP_SYS_RESOURCE): (ok, bytes on disk)."""
    p = subprocess.run(["setpriv", "--inh-caps=-sys_resource", "--bounding-set=-sys_resource",
                        "dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib,
                        "conv=fsync", "status=none"], capture_output=True, text=True)
    size = os.path.getsize(path) if os.path.exists(path) else 0
    return p.returncode == 0, size, p.stderr


def start(daemon_factory, root):
    d = daemon_factory(root=root)
    assert "capacity enforced:" in d.log_text(), d.log_tail()
    return d


def publish(daemon, pb, vol, tag):
    staging = os.path.join(daemon.workdir, "staging-" + tag)
    os.makedirs(staging)  # the CO makes the staging path
    os.makedirs(os.path.join(daemon.workdir, "mnt-" + tag), exist_ok=True)
    target = os.path.join(daemon.workdir, "mnt-" + tag, "target")
    csi = daemon.csi
    csi.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id=vol.volume_id, staging_target_path=staging, volume_capability=mount_cap(pb),
        volume_context=vol.volume_context))
    csi.NodePublishVolume(pb.NodePublishVolumeRequest(
        volume_id=vol.volume_id, target_path=target, staging_target_path=staging,
        volume_capability=mount_cap(pb), volume_context=vol.volume_context))
    return staging, target


def unpublish(daemon, vol, staging, target):
    daemon.csi.NodeUnpublishVolume(volume_id=vol.volume_id, target_path=target)
    daemon.csi.NodeUnstageVolume(volume_id=vol.volume_id, staging_target_path=staging)


def stats(daemon, pb, vol, path):
    r = daemon.csi.NodeGetVolumeStats(volume_id=vol.volume_id, volume_path=path)
    out = {}
    for u in r.usage:
        kind = "bytes" if u.unit == pb.VolumeUsage.BYTES else "inodes"
        out[kind] = (u.total, u.used, u.available)
    return out, r


def test_limit_written_past_fails_and_expansion_raises_it(daemon_factory, pb, qroot):
    fs, root = qroot
    d = start(daemon_factory, root)
    vol = create(d.csi, pb, "q-limit", required=8 * MiB)
    meta = meta_of(d, "q-limit")
    projid = int(meta["project"])
    assert projid >= PROJID_BASE
    data = os.path.join(root, "_", "q-limit", "data")
    pid, xflags = projid_of(data)
    assert pid == projid and xflags & FS_XFLAG_PROJINHERIT
    assert get_quota(root, projid).bhardlimit == 8 * 1024  # KiB

    staging, target = publish(d, pb, vol, "a")
    # the mount shows the project's limit (xfs and ext4 report a project dir's quota in statfs)
    ok, size, err = write_unprivileged(os.path.join(target, "big"), 12)
    assert not ok, "12 MiB written into an 8 MiB volume on %s" % fs
    assert "quota exceeded" in err or "No space left" in err, err
    assert size <= 8 * MiB
    st, r = stats(d, pb, vol, target)
    total, used, avail = st["bytes"]
    assert total == 8 * MiB
    q = get_quota(root, projid)
    assert used == q.curspace and used >= size
    assert avail == max(0, 8 * MiB - used)
    assert st["inodes"][1] == q.curinodes >= 2  # data/ and the file

    # expansion raises the limit; the room is there at once
    os.unlink(os.path.join(target, "big"))
    d.csi.ControllerExpandVolume(volume_id=vol.volume_id,
                                 capacity_range=pb.CapacityRange(required_bytes=24 * MiB))
    assert get_quota(root, projid).bhardlimit == 24 * 1024
    assert meta_of(d, "q-limit")["capacity"] == str(24 * MiB)
    d.csi.NodeExpandVolume(volume_id=vol.volume_id, volume_path=target,
                           capacity_range=pb.CapacityRange(required_bytes=24 * MiB))
    ok, size, err = write_unprivileged(os.path.join(target, "mid"), 16)
    assert ok, err
    ok, size, err = write_unprivileged(os.path.join(target, "more"), 12)
    assert not ok, "28 MiB written into a 24 MiB volume on %s" % fs
    st, _ = stats(d, pb, vol, target)
    assert st["bytes"][0] == 24 * MiB and st["bytes"][1] <= 24 * MiB
    unpublish(d, vol, staging, target)

    # deletion clears the limit: no id is left limited that no volume holds
    d.csi.DeleteVolume(volume_id=vol.volume_id)
    assert get_quota(root, projid).bhardlimit == 0
    # xfs frees unlinked inodes in the background (inodegc): the usage drops a moment later
    deadline = time.monotonic() + 30
    while get_quota(root, projid).curspace and time.monotonic() < deadline:
        os.sync()
        time.sleep(0.05)
    assert get_quota(root, projid).curspace == 0


def test_inode_limit_parameter(daemon_factory, pb, qroot):
    fs, root = qroot
    d = start(daemon_factory, root)
    vol = create(d.csi, pb, "q-inodes", required=4 * MiB, params={"inodeLimit": "10"})
    projid = int(meta_of(d, "q-inodes")["project"])
    assert meta_of(d, "q-inodes")["inode_limit"] == "10"
    assert get_quota(root, projid).ihardlimit == 10
    staging, target = publish(d, pb, vol, "i")
    p = subprocess.run(["setpriv", "--inh-caps=-sys_resource", "--bounding-set=-sys_resource",
                        "/usr/bin/python3", "-c",
                        "import os,sys\n"
                        "n=0\n"
                        "try:\n"
                        "    for i in range(50):\n"
                        "        open(os.path.join(sys.argv[1], 'f%d' % i), 'w').close(); n+=1\n"
                        "except OSError as e:\n"
                        "    print(n, e.errno)\n", target], capture_output=True, text=True)
    made, err = (int(x) for x in p.stdout.split())
    assert err in (errno.EDQUOT, errno.ENOSPC)
    assert made == 9  # data/ itself is the tenth inode
    st, _ = stats(d, pb, vol, target)
    assert st["inodes"][0] == 10 and st["inodes"][1] == 10 and st["inodes"][2] == 0
    unpublish(d, vol, staging, target)
    # a bad inode limit changes nothing
    with pytest.raises(grpc.RpcError) as e:
        create(d.csi, pb, "q-bad", required=MiB, params={"inodeLimit": "0"})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not os.path.exists(os.path.join(root, "_", "q-bad"))


def test_ids_distinct_never_reused_and_reconciled_at_restart(daemon_factory, pb, qroot):
    fs, root = qroot
    d = start(daemon_factory, root)
    vols = [create(d.csi, pb, "q-id%d" % i, required=(i + 1) * MiB) for i in range(3)]
    ids = [int(meta_of(d, "q-id%d" % i)["project"]) for i in range(3)]
    assert len(set(ids)) == 3 and min(ids) >= PROJID_BASE
    for i, pid in enumerate(ids):
        assert projid_of(os.path.join(root, "_", "q-id%d" % i, "data"))[0] == pid
        assert get_quota(root, pid).bhardlimit == (i + 1) * 1024
    # the newest volume is deleted: its id is not handed out again, not even after kill -9
    d.csi.DeleteVolume(volume_id=vols[2].volume_id)
    # what a crash can leave: a limit that no volume holds (a build in .tmp, a removal in
    # .trash), and a held id whose limit is not its capacity (an expansion cut before the meta)
    orphan = max(ids) + 50
    set_quota(root, orphan, 4096, 7)
    set_quota(root, ids[0], 1)
    d.proc.kill()
    d.proc.wait()
    d.proc = None
    d.start()
    assert get_quota(root, orphan).bhardlimit == 0 and get_quota(root, orphan).ihardlimit == 0
    assert get_quota(root, ids[0]).bhardlimit == 1024
    assert get_quota(root, ids[1]).bhardlimit == 2048
    new = create(d.csi, pb, "q-id3", required=MiB)
    nid = int(meta_of(d, "q-id3")["project"])
    assert nid not in ids[:2] and nid > ids[1]
    # with the deleted id free of limits and usage it may come back after a restart; while
    # this run lasts it is not reused
    newer = create(d.csi, pb, "q-id4", required=MiB)
    assert int(meta_of(d, "q-id4")["project"]) > nid
    for v in vols[:2] + [new, newer]:
        d.csi.DeleteVolume(volume_id=v.volume_id)


def test_clone_content_charged_to_the_new_volume(daemon_factory, pb, qroot):
    fs, root = qroot
    d = start(daemon_factory, root)
    src = create(d.csi, pb, "q-src", required=8 * MiB)
    data = os.path.join(root, "_", "q-src", "data")
    os.makedirs(os.path.join(data, "sub"))
    with open(os.path.join(data, "sub", "f"), "wb") as f:
        f.write(b"x" * (3 * MiB))
        f.flush()
        os.fsync(f.fileno())
    src_id = int(meta_of(d, "q-src")["project"])
    assert get_quota(root, src_id).curspace >= 3 * MiB
    clone = create(d.csi, pb, "q-clone", required=8 * MiB,
                   source=("volume", src.volume_id))
    cid = int(meta_of(d, "q-clone")["project"])
    assert cid != src_id
    cdata = os.path.join(root, "_", "q-clone", "data")
    assert projid_of(os.path.join(cdata, "sub"))[0] == cid
    assert projid_of(os.path.join(cdata, "sub", "f"))[0] == cid
    assert get_quota(root, cid).curspace >= 3 * MiB
    # a clone of a source larger than the class's size is refused as before, nothing left
    for v in (clone, src):
        d.csi.DeleteVolume(volume_id=v.volume_id)
    assert get_quota(root, cid).bhardlimit == 0


def test_capacity_reported_enforced(daemon_factory, pb, qroot):
    """GetCapacity serves a class with an inode limit here (not 0 as where quotas are off)."""
    fs, root = qroot
    d = start(daemon_factory, root)
    r = d.csi.GetCapacity(pb.GetCapacityRequest(parameters={"inodeLimit": "100"}))
    assert r.available_capacity > 0
    with pytest.raises(grpc.RpcError) as e:
        d.csi.GetCapacity(pb.GetCapacityRequest(parameters={"inodeLimit": "-3"}))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
