"""Thin volumes, snapshots, restores and clones of the LVM backend on a real thin pool.

Thin pools need device-mapper (lvcreate refuses them with activation off), so this runs only
inside the test VM (tests/vm/lvm.sh); on this machine's kernel it is skipped as a whole, and
tests/lvm/test_lvm.py checks that thick volumes refuse snapshots and that thinPool is checked."""

import json
import os
import subprocess

import grpc
import pytest

from conftest import REAL_DM, csi_client

pytestmark = pytest.mark.skipif(not REAL_DM, reason="needs device-mapper (runs in tests/vm)")

MiB = 1 << 20
Code = grpc.StatusCode
POOL = "ordpool"
TAG = "ordinal.csi.dev/"


@pytest.fixture
def pool(daemon, vg):
    """A thin pool in the test group, made by hand as an administrator would."""
    vg.lvm("lvcreate", "-y", "--type", "thin-pool", "-L", "2g", "-n", POOL, vg.name)
    yield POOL
    vg.lvm("lvremove", "-y", "-f", "%s/%s" % (vg.name, POOL), check=False)


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def paths(workdir):
    made = []

    def mk(name):
        p = os.path.join(workdir, name)
        os.makedirs(p, exist_ok=True)
        made.append(p)
        return p
    yield mk
    for p in reversed(made):
        while mounted(p):
            subprocess.run(["umount", p], capture_output=True)


def params(vg, fs="ext4", **extra):
    p = {"backend": "lvm", "volumeGroup": vg.name, "thinPool": POOL, "fsType": fs}
    p.update(extra)
    return p


def create(csi, pb, vg, name, size, fs="ext4", source=None):
    return csi.CreateVolume(csi_client.create_req(
        pb, name, required=size, params=params(vg, fs),
        caps=[csi_client.mount_cap(pb, fs_type=fs)], source=source)).volume


def stage(csi, pb, v, st, fs="ext4"):
    csi.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id=v.volume_id, staging_target_path=st,
        volume_capability=csi_client.mount_cap(pb, fs_type=fs), volume_context=v.volume_context))


def unstage(csi, v, st):
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=st)
    assert not mounted(st)


def write(path, name, text):
    with open(os.path.join(path, name), "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read(path, name):
    try:
        with open(os.path.join(path, name)) as f:
            return f.read()
    except FileNotFoundError:
        return None


def df_bytes(path):
    """Total size as df prints it (1-byte blocks)."""
    out = subprocess.run(["df", "-B1", "--output=size", path], check=True, capture_output=True,
                         text=True).stdout.split()
    return int(out[-1])


def lv_row(vg, lv):
    out = vg.lvm("lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                 "lv_name,lv_attr,pool_lv,lv_tags,lv_size", "%s/%s" % (vg.name, lv)).stdout
    r = json.loads(out)["report"][0]["lv"][0]
    r["tags"] = {t.split("=", 1)[0][len(TAG):]: t.split("=", 1)[1]
                 for t in r["lv_tags"].split(",") if t.startswith(TAG)}
    return r


def lv_of(some_id):
    return some_id[4:].split("/")[1]


def test_thin_snapshot_restore_clone(daemon, pb, vg, pool, paths):
    csi = daemon.csi
    v = create(csi, pb, vg, "origin", 64 * MiB)
    row = lv_row(vg, lv_of(v.volume_id))
    assert row["lv_attr"][0] == "V" and row["pool_lv"] == POOL
    assert row["tags"]["pool"] == POOL and row["tags"]["size"] == str(64 * MiB)
    assert not v.HasField("content_source")
    st = paths("st-origin")
    stage(csi, pb, v, st)
    write(st, "a", "one")

    # a snapshot of the mounted volume: read-only, activation skipped, ready at once
    s = csi.CreateSnapshot(name="snap-1", source_volume_id=v.volume_id).snapshot
    assert s.ready_to_use and s.size_bytes == 64 * MiB and s.source_volume_id == v.volume_id
    assert s.snapshot_id == "lvm:%s/%s" % (vg.name, lv_of(s.snapshot_id))
    assert lv_of(s.snapshot_id).startswith("ors-snap-1-")
    srow = lv_row(vg, lv_of(s.snapshot_id))
    assert srow["lv_attr"][0] == "V" and srow["lv_attr"][1] == "r" and srow["pool_lv"] == POOL
    assert srow["lv_attr"][9] == "k", srow["lv_attr"]  # activation skip
    assert srow["tags"]["snap"] == "snap-1" and srow["tags"]["size"] == str(64 * MiB)
    assert srow["tags"]["source"] == v.volume_id and srow["tags"]["created"]
    assert csi.CreateSnapshot(name="snap-1", source_volume_id=v.volume_id).snapshot.snapshot_id \
        == s.snapshot_id  # idempotent
    write(st, "a", "two")
    write(st, "b", "later")

    # restore into a larger volume: extended, filesystem grown at the first stage
    r = create(csi, pb, vg, "restored", 128 * MiB, source=("snapshot", s.snapshot_id))
    assert r.capacity_bytes == 128 * MiB
    assert r.content_source.snapshot.snapshot_id == s.snapshot_id
    rrow = lv_row(vg, lv_of(r.volume_id))
    assert int(rrow["lv_size"]) == 128 * MiB and rrow["lv_attr"][1] == "w"
    assert rrow["tags"]["source"] == "snapshot:" + s.snapshot_id
    again = create(csi, pb, vg, "restored", 128 * MiB, source=("snapshot", s.snapshot_id))
    assert again.volume_id == r.volume_id
    rst = paths("st-restored")
    stage(csi, pb, r, rst)
    assert df_bytes(rst) > 100 * MiB, df_bytes(rst)
    assert read(rst, "a") == "one" and read(rst, "b") is None
    write(rst, "c", "restored's own")
    assert read(st, "c") is None

    # a clone of the (mounted) origin has its current data
    c = create(csi, pb, vg, "clone", 64 * MiB, source=("volume", v.volume_id))
    assert c.content_source.volume.volume_id == v.volume_id
    cst = paths("st-clone")
    stage(csi, pb, c, cst)
    assert read(cst, "a") == "two" and read(cst, "b") == "later"
    # the same snapshot name for another source: ALREADY_EXISTS
    csi_client.expect_error(Code.ALREADY_EXISTS, csi.CreateSnapshot, name="snap-1",
                            source_volume_id=c.volume_id)
    # a restore needs the source's pool, and the source's filesystem
    csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume, csi_client.create_req(
        pb, "thick-restore", required=64 * MiB, params={"backend": "lvm"},
        source=("snapshot", s.snapshot_id)))
    err = csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume, csi_client.create_req(
        pb, "xfs-restore", required=400 * MiB, params=params(vg, "xfs"),
        source=("snapshot", s.snapshot_id)))
    assert "ext4" in err.details()
    csi_client.expect_error(Code.OUT_OF_RANGE, csi.CreateVolume, csi_client.create_req(
        pb, "small-restore", required=8 * MiB, limit=32 * MiB, params=params(vg),
        source=("snapshot", s.snapshot_id)))

    # the origin goes: its snapshot stays restorable
    unstage(csi, v, st)
    csi.DeleteVolume(volume_id=v.volume_id)
    assert lv_of(v.volume_id) not in vg.lvs()
    r2 = create(csi, pb, vg, "restored-2", 64 * MiB, source=("snapshot", s.snapshot_id))
    r2st = paths("st-restored-2")
    stage(csi, pb, r2, r2st)
    assert read(r2st, "a") == "one"

    # listing, paging, filters; state is LVM's metadata only: the same after a restart
    s2 = csi.CreateSnapshot(name="snap-2", source_volume_id=c.volume_id).snapshot
    s3 = csi.CreateSnapshot(name="snap-3", source_volume_id=r.volume_id).snapshot
    daemon.restart()
    csi = daemon.csi
    want = sorted([s.snapshot_id, s2.snapshot_id, s3.snapshot_id])
    got, token = [], ""
    while True:
        page = csi.ListSnapshots(max_entries=1, starting_token=token)
        assert len(page.entries) <= 1
        got += [e.snapshot.snapshot_id for e in page.entries]
        token = page.next_token
        if not token:
            break
    assert got == want
    assert [e.snapshot.snapshot_id
            for e in csi.ListSnapshots(source_volume_id=c.volume_id).entries] == [s2.snapshot_id]
    one = csi.ListSnapshots(snapshot_id=s.snapshot_id).entries
    assert len(one) == 1 and one[0].snapshot.source_volume_id == v.volume_id
    assert one[0].snapshot.ready_to_use and one[0].snapshot.creation_time.seconds > 0

    # snapshots go independently of the volumes made from them
    for snap in (s, s2, s3):
        csi.DeleteSnapshot(snapshot_id=snap.snapshot_id)
        csi.DeleteSnapshot(snapshot_id=snap.snapshot_id)  # again: done
    assert len(csi.ListSnapshots().entries) == 0
    assert read(rst, "a") == "one" and read(cst, "b") == "later" and read(r2st, "a") == "one"
    csi_client.expect_error(Code.NOT_FOUND, csi.CreateVolume, csi_client.create_req(
        pb, "late", required=64 * MiB, params=params(vg), source=("snapshot", s.snapshot_id)))
    for vol, path in ((r, rst), (c, cst), (r2, r2st)):
        unstage(csi, vol, path)
        csi.DeleteVolume(volume_id=vol.volume_id)
    assert sorted(vg.lvs()) == [POOL]


def test_thin_xfs_restore_beside_its_origin(daemon, pb, vg, pool, paths):
    """An xfs copy carries its origin's UUID: it mounts beside the origin, grown at stage."""
    csi = daemon.csi
    v = create(csi, pb, vg, "xorigin", 320 * MiB, fs="xfs")
    st = paths("st-x")
    stage(csi, pb, v, st, fs="xfs")
    write(st, "a", "xfs data")
    s = csi.CreateSnapshot(name="xsnap", source_volume_id=v.volume_id).snapshot
    r = create(csi, pb, vg, "xrestored", 480 * MiB, fs="xfs", source=("snapshot", s.snapshot_id))
    rst = paths("st-xr")
    before = df_bytes(st)
    stage(csi, pb, r, rst, fs="xfs")
    assert read(rst, "a") == "xfs data"
    assert df_bytes(rst) > before + 100 * MiB, (before, df_bytes(rst))
    # staged again (a kubelet retry): the same mount, nothing grown twice
    stage(csi, pb, r, rst, fs="xfs")
    unstage(csi, r, rst)
    unstage(csi, v, st)
    csi.DeleteSnapshot(snapshot_id=s.snapshot_id)
    csi.DeleteVolume(volume_id=r.volume_id)
    csi.DeleteVolume(volume_id=v.volume_id)


def test_thin_capacity_and_expand(daemon, pb, vg, pool):
    csi = daemon.csi
    gc = csi.GetCapacity(parameters=params(vg))
    assert 0 < gc.available_capacity <= 2 << 30
    # a thin volume may be larger than the group's free space: only written blocks count
    free, _ = vg.free()
    v = create(csi, pb, vg, "big", free + 1024 * MiB)
    assert v.capacity_bytes >= free + 1024 * MiB
    e = csi.ControllerExpandVolume(volume_id=v.volume_id, capacity_range=pb.CapacityRange(
        required_bytes=v.capacity_bytes + 1024 * MiB))
    assert e.capacity_bytes == v.capacity_bytes + 1024 * MiB
    csi.DeleteVolume(volume_id=v.volume_id)


def test_thin_recover_half_made(daemon, pb, vg, pool):
    """What a kill -9 can leave, repaired at start-up: a snapshot LV with our name but none of
    our tags (lvcreate never commits one: only made by hand here) is removed; a restore left
    smaller than its size tag (killed between lvcreate and lvextend, made here by lvreduce) is
    grown to the size it was asked for."""
    csi = daemon.csi
    v = create(csi, pb, vg, "rv", 64 * MiB)
    s = csi.CreateSnapshot(name="rsnap", source_volume_id=v.volume_id).snapshot
    r = create(csi, pb, vg, "rbig", 128 * MiB, source=("snapshot", s.snapshot_id))
    vg.lvm("lvreduce", "-f", "-y", "-L", "64m", "%s/%s" % (vg.name, lv_of(r.volume_id)))
    got = csi.ControllerGetVolume(volume_id=r.volume_id)
    assert got.status.volume_condition.abnormal
    half = "ors-half-0123456789abcdef"
    vg.lvm("lvcreate", "-y", "-s", "-n", half, "%s/%s" % (vg.name, lv_of(v.volume_id)))
    assert half in vg.lvs()
    daemon.restart()
    csi = daemon.csi
    assert half not in vg.lvs()
    assert int(lv_row(vg, lv_of(r.volume_id))["lv_size"]) == 128 * MiB
    got = csi.ControllerGetVolume(volume_id=r.volume_id)
    assert not got.status.volume_condition.abnormal
    assert [e.snapshot.snapshot_id for e in csi.ListSnapshots().entries] == [s.snapshot_id]
    csi.DeleteSnapshot(snapshot_id=s.snapshot_id)
    csi.DeleteVolume(volume_id=r.volume_id)
    csi.DeleteVolume(volume_id=v.volume_id)
