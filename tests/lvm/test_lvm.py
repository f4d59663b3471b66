"""The LVM backend against real lvm2 metadata (activation off) on a loop-file volume group:
CreateVolume, DeleteVolume, ListVolumes, GetCapacity, ControllerExpandVolume,
ControllerGetVolume, restarts, crash repair, and what cannot work without device-mapper."""

import os
import random
import subprocess
import threading
import time

import grpc
import pytest

from conftest import BINARY, NODE_ID, REAL_DM, Daemon, csi_client

MiB = 1 << 20
GiB = 1 << 30
TAG = "ordinal.csi.dev/"
Code = grpc.StatusCode


def req(pb, name, **kw):
    params = dict(kw.pop("params", {}) or {})
    params.setdefault("backend", "lvm")
    return csi_client.create_req(pb, name, params=params, **kw)


def create(csi, pb, name, **kw):
    return csi.CreateVolume(req(pb, name, **kw)).volume


def lv_of(volume_id):
    assert volume_id.startswith("lvm:")
    return volume_id[4:].split("/", 1)


def tags_of(vg, lv):
    return {t.split("=", 1)[0][len(TAG):]: t.split("=", 1)[1]
            for t in vg.lvs()[lv]["tags"] if t.startswith(TAG)}


def test_create_round_up_idempotent_delete(csi, pb, vg):
    free0, extent = vg.free()
    v = create(csi, pb, "vol-a", required=10 * MiB)
    vgname, lv = lv_of(v.volume_id)
    assert vgname == vg.name
    assert lv.startswith("ord-vol-a-") and len(lv) == len("ord-vol-a-") + 16
    assert v.capacity_bytes == 12 * MiB == -(-10 * MiB // extent) * extent
    assert dict(v.volume_context) == {"ordinal.csi.dev/key": "vol-a",
                                      "ordinal.csi.dev/backend": "lvm"}
    assert v.accessible_topology[0].segments["topology.ordinal.csi.dev/node"] == NODE_ID
    lvs = vg.lvs()
    assert lvs[lv]["size"] == 12 * MiB
    t = tags_of(vg, lv)
    assert t["key"] == "vol-a" and t["name"] == "vol-a" and t["size"] == str(10 * MiB)
    assert t["access"] == "mount" and t["fs"] == "ext4"
    assert vg.free()[0] == free0 - 12 * MiB

    # the same request again: the same volume, nothing new in LVM
    v2 = create(csi, pb, "vol-a", required=10 * MiB)
    assert v2 == v
    assert len(vg.lvs()) == 1
    # compatible range: the same; incompatible: ALREADY_EXISTS
    assert create(csi, pb, "vol-a", required=12 * MiB, limit=12 * MiB).volume_id == v.volume_id
    csi_client.expect_error(Code.ALREADY_EXISTS, csi.CreateVolume, req(pb, "vol-a", required=20 * MiB))
    csi_client.expect_error(Code.ALREADY_EXISTS, csi.CreateVolume,
                            req(pb, "vol-a", required=10 * MiB, params={"fsType": "xfs"}))
    csi_client.expect_error(Code.ALREADY_EXISTS, csi.CreateVolume,
                            req(pb, "vol-a", required=10 * MiB, caps=[csi_client.block_cap(pb)]))

    got = csi.ControllerGetVolume(volume_id=v.volume_id)
    assert got.volume.capacity_bytes == 12 * MiB
    assert not got.status.volume_condition.abnormal

    csi.DeleteVolume(volume_id=v.volume_id)
    assert vg.lvs() == {}
    assert vg.free()[0] == free0
    csi.DeleteVolume(volume_id=v.volume_id)  # unknown id: OK
    csi.DeleteVolume(volume_id="lvm:%s/ord-x-0123456789abcdef" % vg.name)
    csi.DeleteVolume(volume_id="lvm:othervg/ord-x-0123456789abcdef")
    csi.DeleteVolume(volume_id="lvm:garbage")
    csi_client.expect_error(Code.NOT_FOUND, csi.ControllerGetVolume, volume_id=v.volume_id)


def test_capacity_ranges(csi, pb, vg):
    _, extent = vg.free()
    # limit only: the largest extent multiple under it
    v = create(csi, pb, "lim", limit=6 * MiB)
    assert v.capacity_bytes == 4 * MiB
    # no range: 1 GiB
    v = create(csi, pb, "default")
    assert v.capacity_bytes == GiB
    # rounding up would cross the limit
    csi_client.expect_error(Code.OUT_OF_RANGE, csi.CreateVolume,
                            req(pb, "over", required=10 * MiB, limit=11 * MiB))
    csi_client.expect_error(Code.OUT_OF_RANGE, csi.CreateVolume, req(pb, "tiny", limit=MiB))
    csi_client.expect_error(Code.OUT_OF_RANGE, csi.CreateVolume,
                            req(pb, "inv", required=10 * MiB, limit=5 * MiB))
    # exact extent multiple
    v = create(csi, pb, "exact", required=8 * MiB, limit=8 * MiB)
    assert v.capacity_bytes == 8 * MiB
    assert sorted(vg.lvs()) == sorted(lv_of(x.volume.volume_id)[1]
                                      for x in csi.ListVolumes().entries)
    assert extent == 4 * MiB


def test_resource_exhausted_leaves_nothing(csi, pb, vg):
    free, _ = vg.free()
    err = csi_client.expect_error(Code.RESOURCE_EXHAUSTED, csi.CreateVolume,
                                  req(pb, "huge", required=free + 4 * MiB))
    assert vg.name in err.details()
    assert vg.lvs() == {}
    # exactly the free space fits
    v = create(csi, pb, "all", required=free)
    assert v.capacity_bytes == free
    assert vg.free()[0] == 0
    csi_client.expect_error(Code.RESOURCE_EXHAUSTED, csi.CreateVolume,
                            req(pb, "more", required=4 * MiB))
    assert len(vg.lvs()) == 1
    gc = csi.GetCapacity(parameters={"backend": "lvm"})
    assert gc.available_capacity == 0


def test_parameters(csi, pb, vg):
    bad = [
        {"foo": "bar"},
        {"volumeGroup": "not-allowed"},
        {"volumeGroup": ""},
        {"fsType": "btrfs"},
        {"mkfsOptions": "-L x\n"},
        {"mkfsOptions": "x" * 300},
    ]
    for p in bad:
        err = csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume,
                                      req(pb, "p", required=4 * MiB, params=p))
        assert err.details()
    csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume,
                            req(pb, "p", params={"backend": "nope"}))
    # fsType against the capability's fs_type
    csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume,
                            req(pb, "p", required=4 * MiB, params={"fsType": "xfs"},
                                caps=[csi_client.mount_cap(pb, fs_type="ext4")]))
    csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume,
                            req(pb, "p", required=4 * MiB,
                                caps=[csi_client.mount_cap(pb, fs_type="vfat")]))
    assert vg.lvs() == {}

    v = create(csi, pb, "x", required=4 * MiB,
               params={"volumeGroup": vg.name, "fsType": "xfs", "mkfsOptions": "-m crc=1 -L d"})
    t = tags_of(vg, lv_of(v.volume_id)[1])
    assert t["fs"] == "xfs" and t["mkfs"] == "-m#20crc#3d1#20-L#20d"
    v = create(csi, pb, "y", required=4 * MiB, caps=[csi_client.mount_cap(pb, fs_type="xfs")])
    assert tags_of(vg, lv_of(v.volume_id)[1])["fs"] == "xfs"
    b = create(csi, pb, "blk", required=4 * MiB, caps=[csi_client.block_cap(pb)],
               params={"fsType": "xfs"})
    t = tags_of(vg, lv_of(b.volume_id)[1])
    assert t["access"] == "block" and "fs" not in t
    vv = csi.ValidateVolumeCapabilities(volume_id=b.volume_id,
                                        volume_capabilities=[csi_client.block_cap(pb)])
    assert vv.HasField("confirmed")
    vv = csi.ValidateVolumeCapabilities(volume_id=b.volume_id,
                                        volume_capabilities=[csi_client.mount_cap(pb)])
    assert not vv.HasField("confirmed")


def test_claim_key_readoption_and_restart(daemon, pb, vg, workdir):
    csi = daemon.csi
    params = csi_client.pvc_params("default", "www-web-0")
    v = create(csi, pb, "pvc-1111", required=8 * MiB, params=params)
    lv = lv_of(v.volume_id)[1]
    assert lv.startswith("ord-default.www-web-0-")
    assert dict(v.volume_context)["ordinal.csi.dev/key"] == "default/www-web-0"
    assert "gen" not in tags_of(vg, lv)
    # the claim comes back under a new PV name: the same LV, the name tag follows and the
    # generation goes up, so the id changes and the old PV's id names nothing any more
    v2 = create(csi, pb, "pvc-2222", required=8 * MiB, params=params)
    assert v2.volume_id == v.volume_id + "/1"
    assert tags_of(vg, lv)["name"] == "pvc-2222"
    assert tags_of(vg, lv)["gen"] == "1"
    assert len(vg.lvs()) == 1
    assert create(csi, pb, "pvc-2222", required=8 * MiB, params=params).volume_id == \
        v2.volume_id
    csi_client.expect_error(Code.NOT_FOUND, csi.ControllerGetVolume, volume_id=v.volume_id)
    csi_client.expect_error(Code.NOT_FOUND, csi.ControllerExpandVolume,
                            volume_id=v.volume_id,
                            capacity_range=pb.CapacityRange(required_bytes=16 * MiB))
    csi.DeleteVolume(volume_id=v.volume_id)  # a stale id: OK, and nothing deleted
    assert lv in vg.lvs()
    assert csi.ControllerGetVolume(volume_id=v2.volume_id).volume.volume_id == v2.volume_id
    # a third owner, then back: generation 3; every earlier id is stale
    v3 = create(csi, pb, "pvc-3333", required=8 * MiB, params=params)
    assert v3.volume_id == v.volume_id + "/2"
    v4 = create(csi, pb, "pvc-2222", required=8 * MiB, params=params)
    assert v4.volume_id == v.volume_id + "/3"
    for stale in (v.volume_id, v2.volume_id, v3.volume_id):
        csi.DeleteVolume(volume_id=stale)
    assert lv in vg.lvs() and tags_of(vg, lv)["gen"] == "3"
    v2 = v4
    # a claim key that is not a Kubernetes name
    csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume,
                            req(pb, "n", params=csi_client.pvc_params("Bad_NS", "x")))

    # restart with no state of ours at all: even the dir backend's root is new
    daemon.stop()
    os.makedirs(os.path.join(workdir, "again"), exist_ok=True)
    fresh = Daemon(os.path.join(workdir, "again"), vg).start()
    try:
        ids = [e.volume.volume_id for e in fresh.csi.ListVolumes().entries]
        assert ids == [v2.volume_id]
        again = create(fresh.csi, pb, "pvc-2222", required=8 * MiB, params=params)
        assert again.volume_id == v2.volume_id and again.capacity_bytes == 8 * MiB
        got = fresh.csi.ControllerGetVolume(volume_id=v2.volume_id)
        assert not got.status.volume_condition.abnormal
        fresh.csi.DeleteVolume(volume_id=v.volume_id)
        assert lv in vg.lvs()
    finally:
        fresh.stop()
    daemon.start()


def test_list_paging_and_both_backends(csi, pb, vg):
    ids = [create(csi, pb, "v%02d" % i, required=4 * MiB).volume_id for i in range(5)]
    d = csi.CreateVolume(csi_client.create_req(pb, "dirvol", required=MiB)).volume
    assert d.volume_id.startswith("dir:")
    everything = [e.volume.volume_id for e in csi.ListVolumes().entries]
    assert everything == [d.volume_id] + sorted(ids)
    seen, token = [], ""
    while True:
        r = csi.ListVolumes(max_entries=2, starting_token=token)
        assert len(r.entries) <= 2
        seen += [e.volume.volume_id for e in r.entries]
        token = r.next_token
        if not token:
            break
    assert seen == everything
    csi.DeleteVolume(volume_id=d.volume_id)


def test_get_capacity(csi, pb, vg):
    free, _ = vg.free()
    gc = csi.GetCapacity(parameters={"backend": "lvm"})
    assert gc.available_capacity == free
    assert gc.maximum_volume_size.value == free
    gc = csi.GetCapacity(parameters={"backend": "lvm", "volumeGroup": vg.name, "fsType": "xfs"})
    assert gc.available_capacity == free
    create(csi, pb, "c", required=100 * MiB)
    assert csi.GetCapacity(parameters={"backend": "lvm"}).available_capacity == free - 100 * MiB
    # another node's topology: nothing here
    topo = pb.Topology(segments={"topology.ordinal.csi.dev/node": "elsewhere"})
    assert csi.GetCapacity(parameters={"backend": "lvm"},
                           accessible_topology=topo).available_capacity == 0
    topo = pb.Topology(segments={"topology.ordinal.csi.dev/node": NODE_ID})
    assert csi.GetCapacity(parameters={"backend": "lvm"},
                           accessible_topology=topo).available_capacity == free - 100 * MiB
    csi_client.expect_error(Code.INVALID_ARGUMENT, csi.GetCapacity,
                            parameters={"backend": "lvm", "volumeGroup": "nope"})
    csi_client.expect_error(Code.INVALID_ARGUMENT, csi.GetCapacity,
                            parameters={"backend": "lvm", "bogus": "1"})


def test_expand(csi, pb, vg):
    v = create(csi, pb, "e", required=10 * MiB)
    lv = lv_of(v.volume_id)[1]
    r = csi.ControllerExpandVolume(volume_id=v.volume_id,
                                   capacity_range=pb.CapacityRange(required_bytes=21 * MiB))
    assert r.capacity_bytes == 24 * MiB and r.node_expansion_required
    assert vg.lvs()[lv]["size"] == 24 * MiB
    # smaller or equal: no change
    r = csi.ControllerExpandVolume(volume_id=v.volume_id,
                                   capacity_range=pb.CapacityRange(required_bytes=5 * MiB))
    assert r.capacity_bytes == 24 * MiB and not r.node_expansion_required
    csi_client.expect_error(Code.OUT_OF_RANGE, csi.ControllerExpandVolume, volume_id=v.volume_id,
                            capacity_range=pb.CapacityRange(required_bytes=25 * MiB,
                                                            limit_bytes=26 * MiB))
    free, _ = vg.free()
    csi_client.expect_error(Code.RESOURCE_EXHAUSTED, csi.ControllerExpandVolume,
                            volume_id=v.volume_id,
                            capacity_range=pb.CapacityRange(required_bytes=free + 48 * MiB))
    assert vg.lvs()[lv]["size"] == 24 * MiB
    csi_client.expect_error(Code.NOT_FOUND, csi.ControllerExpandVolume,
                            volume_id="lvm:%s/ord-x-0123456789abcdef" % vg.name,
                            capacity_range=pb.CapacityRange(required_bytes=MiB))
    # block volumes need no node expansion
    b = create(csi, pb, "eb", required=4 * MiB, caps=[csi_client.block_cap(pb)])
    r = csi.ControllerExpandVolume(volume_id=b.volume_id,
                                   capacity_range=pb.CapacityRange(required_bytes=8 * MiB))
    assert r.capacity_bytes == 8 * MiB and not r.node_expansion_required


def test_thick_snapshots_and_clones_refused(csi, pb, vg):
    """A thick LV cannot be snapshotted or cloned: a clear INVALID_ARGUMENT naming thinPool,
    and nothing made."""
    v = create(csi, pb, "src", required=4 * MiB)
    err = csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateSnapshot, name="snap",
                                  source_volume_id=v.volume_id)
    assert "thick LV" in err.details() and "thinPool" in err.details()
    err = csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume,
                                  req(pb, "clone", required=4 * MiB,
                                      source=("volume", v.volume_id)))
    assert "thick LV" in err.details() and "thinPool" in err.details()
    csi_client.expect_error(Code.NOT_FOUND, csi.CreateVolume,
                            req(pb, "restore", source=("snapshot", "lvm:%s/x" % vg.name)))
    csi_client.expect_error(Code.NOT_FOUND, csi.CreateVolume,
                            req(pb, "restore", source=("snapshot",
                                                       "lvm:%s/ors-x-0123456789abcdef" % vg.name)))
    assert list(vg.lvs()) == [lv_of(v.volume_id)[1]]
    assert len(csi.ListSnapshots().entries) == 0
    # deleting an unknown snapshot id is done
    csi.DeleteSnapshot(snapshot_id="lvm:%s/ors-x-0123456789abcdef" % vg.name)


def test_thin_pool_parameter_checked(csi, pb, vg):
    """thinPool must name an existing thin pool of an allowed group: otherwise a clear
    INVALID_ARGUMENT and nothing made (here the pool is a thick LV, or missing)."""
    vg.lvm("lvcreate", "-y", "-L", "8m", "-n", "notapool", vg.name)
    for pool, words in (("nopool", "has no logical volume"), ("notapool", "not a thin pool"),
                        ("-x", "not a valid LV name"), ("a/b", "not a valid LV name")):
        err = csi_client.expect_error(Code.INVALID_ARGUMENT, csi.CreateVolume,
                                      req(pb, "thin", required=4 * MiB,
                                          params={"thinPool": pool}))
        assert words in err.details(), err.details()
        err = csi_client.expect_error(Code.INVALID_ARGUMENT, csi.GetCapacity,
                                      parameters={"backend": "lvm", "thinPool": pool})
        assert words in err.details(), err.details()
    assert sorted(vg.lvs()) == ["notapool"]


def test_damaged_and_missing(daemon, pb, vg):
    csi = daemon.csi
    v = create(csi, pb, "d1", required=4 * MiB)
    lv = lv_of(v.volume_id)[1]
    # tags edited by hand: listed and abnormal, never removed by the daemon
    key_tag = [t for t in vg.lvs()[lv]["tags"] if t.startswith(TAG + "key=")][0]
    vg.lvm("lvchange", "--deltag", key_tag, "%s/%s" % (vg.name, lv))
    got = csi.ControllerGetVolume(volume_id=v.volume_id)
    assert got.status.volume_condition.abnormal
    assert "tags" in got.status.volume_condition.message
    entry = [e for e in csi.ListVolumes().entries if e.volume.volume_id == v.volume_id][0]
    assert entry.status.volume_condition.abnormal
    csi_client.expect_error(Code.INTERNAL, csi.CreateVolume, req(pb, "d1", required=4 * MiB))
    daemon.restart()
    csi = daemon.csi
    assert lv in vg.lvs()
    csi.DeleteVolume(volume_id=v.volume_id)
    assert lv not in vg.lvs()

    # an LV removed behind the daemon's back: gone, and deleting it is fine
    v = create(csi, pb, "d2", required=4 * MiB)
    vg.lvm("lvremove", "-y", "%s/%s" % (vg.name, lv_of(v.volume_id)[1]))
    csi_client.expect_error(Code.NOT_FOUND, csi.ControllerGetVolume, volume_id=v.volume_id)
    csi.DeleteVolume(volume_id=v.volume_id)
    # other owners' LVs in the group are left alone and not listed
    vg.lvm("lvcreate", "-y", "-n", "someone-else", "-L", "4m", vg.name)
    vg.lvm("lvcreate", "-y", "-n", "ord-backup", "-L", "4m", vg.name)
    assert len(csi.ListVolumes().entries) == 0
    daemon.restart()
    assert {"someone-else", "ord-backup"} <= set(vg.lvs())


def test_half_made_lv_removed_at_start(daemon, vg):
    # an LV with our name pattern and none of our tags can only be half made
    vg.lvm("lvcreate", "-y", "-n", "ord-half-0123456789abcdef", "-L", "4m", vg.name)
    vg.lvm("lvcreate", "-y", "-n", "ord-mine-0123456789abcdef", "-L", "4m", "--addtag",
           "owner=someone", vg.name)
    daemon.restart()
    names = set(vg.lvs())
    assert "ord-half-0123456789abcdef" not in names
    assert "ord-mine-0123456789abcdef" not in names  # other tags, none of ours: half made too
    assert "2 half-made LV(s) removed" in daemon.log_tail(20)


def test_killed_creates_leave_whole_volumes_or_none(daemon, pb, vg):
    """kill -9 while CreateVolumes run: after the restart every LV of ours is whole (all tags),
    a retry returns it, and deleting everything leaves the group empty."""
    names = ["k%02d" % i for i in range(12)]
    rnd = random.Random(7)
    for round_ in range(3):
        futs = [daemon.csi.future("CreateVolume", req(pb, n, required=4 * MiB)) for n in names]
        time.sleep(rnd.uniform(0.05, 0.6))
        daemon.kill()
        for f in futs:
            try:
                f.result()
            except grpc.RpcError:
                pass
        daemon.start()
        for lv, info in vg.lvs().items():
            t = {x.split("=", 1)[0] for x in info["tags"]}
            assert {TAG + k for k in ("key", "name", "size", "access", "fs", "created")} <= t, \
                "half-made LV %s: %s" % (lv, info)
    ids = [daemon.csi.CreateVolume(req(pb, n, required=4 * MiB)).volume.volume_id for n in names]
    assert len(set(ids)) == len(names) == len(vg.lvs())
    for i in ids:
        daemon.csi.DeleteVolume(volume_id=i)
    assert vg.lvs() == {}


@pytest.mark.skipif(REAL_DM, reason="device-mapper is here: tests/lvm/test_lvm_node.py runs the node path")
def test_node_side_needs_device_mapper(csi, pb, vg, workdir):
    """Here no /dev/<vg>/<lv> can appear: the node RPCs say so instead of doing anything."""
    v = create(csi, pb, "n1", required=4 * MiB)
    stage = os.path.join(workdir, "stage")
    os.makedirs(stage)
    err = csi_client.expect_error(Code.FAILED_PRECONDITION, csi.NodeStageVolume, volume_id=v.volume_id,
                                  staging_target_path=stage,
                                  volume_capability=csi_client.mount_cap(pb))
    assert "device-mapper" in err.details()
    assert os.listdir(stage) == []
    csi_client.expect_error(Code.NOT_FOUND, csi.NodeGetVolumeStats, volume_id=v.volume_id,
                            volume_path=stage)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=stage)


def test_daemon_flags(vg, workdir):
    def run(*args, env=None):
        return subprocess.run([BINARY, "--endpoint", "unix://%s/x.sock" % workdir,
                               "--node-id", "n", "--dir-root", workdir] + list(args),
                              capture_output=True, text=True, env=env or vg.env, timeout=30)
    for bad in ("-vg", "a/b", "", "x" * 33, "a b"):
        r = run("--lvm-vg", bad)
        assert r.returncode == 2, r.stderr
        assert "--lvm-vg" in r.stderr
    r = run(*sum((["--lvm-vg", "vg%d" % i] for i in range(9)), []))
    assert r.returncode == 2 and "at most" in r.stderr
    r = run("--lvm-vg", "no-such-vg")
    assert r.returncode == 1
    assert "no-such-vg" in r.stderr


def controller_caps(pb, csi):
    T = pb.ControllerServiceCapability.RPC.Type
    return {T.Name(c.rpc.type) for c in csi.ControllerGetCapabilities().capabilities}


def test_capabilities_follow_the_configured_backends(vg, workdir, pb):
    """Capabilities are those of the configured backends: LVM alone offers volumes and, through
    thin pools, snapshots and clones (a thick class's request then fails per volume); with the
    directory backend beside it the same set. Without any backend nothing is advertised
    (tests/csi/test_identity.py)."""
    volume_caps = {"CREATE_DELETE_VOLUME", "LIST_VOLUMES", "GET_CAPACITY", "EXPAND_VOLUME",
                   "VOLUME_CONDITION", "GET_VOLUME"}
    snap_caps = {"CREATE_DELETE_SNAPSHOT", "LIST_SNAPSHOTS", "CLONE_VOLUME"}
    vg.remove_all_lvs()
    only = Daemon(os.path.join(workdir, "only"), vg, extra_args=["--mode", "controller"],
                  dir_backend=False)
    os.makedirs(only.workdir, exist_ok=True)
    only.start()
    try:
        assert controller_caps(pb, only.csi) == volume_caps | snap_caps
        v = create(only.csi, pb, "caps", required=4 * MiB)
        assert v.volume_id.startswith("lvm:")
        only.csi.DeleteVolume(volume_id=v.volume_id)
    finally:
        only.stop()
    both = Daemon(os.path.join(workdir, "both"), vg, extra_args=["--mode", "controller"])
    os.makedirs(both.workdir, exist_ok=True)
    both.start()
    try:
        assert controller_caps(pb, both.csi) == volume_caps | snap_caps
    finally:
        both.stop()
