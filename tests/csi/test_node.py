"""Node service with real bind mounts: NodeStage/Unstage, NodePublish/Unpublish,
NodeGetVolumeStats, NodeExpandVolume, NodeGetInfo/Capabilities, and the controller calls that
depend on mounts (DeleteVolume of a mounted volume, restore through a published mount)."""

import errno
import os
import shutil
import subprocess
import uuid

import grpc
import pytest

from conftest import NODE_ID, create, mount_at, mounts, needs_root, read_tree, write_tree
from csi_client import (GiB, MiB, TOPOLOGY_KEY, block_cap, code_of, expect_error, mount_cap)

C = grpc.StatusCode


# ---------------------------------------------------------------- helpers

def mount_count(path):
    path = os.path.realpath(path)
    return sum(1 for m in mounts() if m["mount_point"] == path)


def staging_dir(daemon, tag="vol"):
    p = os.path.join(daemon.workdir, "staging", tag)
    os.makedirs(p, exist_ok=True)  # the CO creates the staging directory
    return p


def target_path(daemon, tag="vol"):
    parent = os.path.join(daemon.workdir, "mnt", tag)
    os.makedirs(parent, exist_ok=True)  # the CO creates the parent; the SP creates target
    return os.path.join(parent, "target")


def stage_req(pb, vid, path, cap=None, context=None):
    req = pb.NodeStageVolumeRequest(volume_id=vid, staging_target_path=path)
    if cap is not False:
        req.volume_capability.CopyFrom(cap or mount_cap(pb))
    if context:
        req.volume_context.update(context)
    return req


def publish_req(pb, vid, target, staging, readonly=False, cap=None, context=None):
    req = pb.NodePublishVolumeRequest(volume_id=vid, target_path=target,
                                      staging_target_path=staging, readonly=readonly)
    if cap is not False:
        req.volume_capability.CopyFrom(cap or mount_cap(pb))
    if context:
        req.volume_context.update(context)
    return req


class Published:
    """A created, staged and published volume."""

    def __init__(self, daemon, pb, name, required=16 * MiB, readonly=False, flags=()):
        csi = daemon.csi
        self.vol = create(csi, pb, name, required=required)
        self.vid = self.vol.volume_id
        self.staging = staging_dir(daemon, name)
        self.target = target_path(daemon, name)
        csi.NodeStageVolume(stage_req(pb, self.vid, self.staging, context=self.vol.volume_context))
        csi.NodePublishVolume(publish_req(pb, self.vid, self.target, self.staging,
                                          readonly=readonly, cap=mount_cap(pb, flags=flags),
                                          context=self.vol.volume_context))
        self.csi, self.pb, self.daemon = csi, pb, daemon

    def teardown(self):
        self.csi.NodeUnpublishVolume(volume_id=self.vid, target_path=self.target)
        self.csi.NodeUnstageVolume(volume_id=self.vid, staging_target_path=self.staging)


def node_caps(pb, resp):
    T = pb.NodeServiceCapability.RPC.Type
    caps = []
    for c in resp.capabilities:
        assert c.WhichOneof("type") == "rpc"
        caps.append(T.Name(c.rpc.type))
    assert len(caps) == len(set(caps))
    return set(caps)


def write_file(path, size, sync=True):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
        if sync:
            f.flush()
            os.fsync(f.fileno())


# ---------------------------------------------------------------- info and capabilities

def test_node_get_capabilities(csi, pb):
    assert node_caps(pb, csi.NodeGetCapabilities()) == {
        "STAGE_UNSTAGE_VOLUME", "GET_VOLUME_STATS", "EXPAND_VOLUME", "VOLUME_CONDITION"}


def test_node_get_info(csi):
    resp = csi.NodeGetInfo()
    assert resp.node_id == NODE_ID
    assert resp.max_volumes_per_node == 0
    assert resp.HasField("accessible_topology")
    assert dict(resp.accessible_topology.segments) == {TOPOLOGY_KEY: NODE_ID}


def test_node_get_info_flags(daemon_factory):
    d = daemon_factory(node_id="worker-7.example", extra_args=["--max-volumes-per-node", "7"])
    resp = d.csi.NodeGetInfo()
    assert resp.node_id == "worker-7.example"
    assert resp.max_volumes_per_node == 7
    assert dict(resp.accessible_topology.segments) == {TOPOLOGY_KEY: "worker-7.example"}


# ---------------------------------------------------------------- NodeStageVolume

def test_stage_no_volume_id(csi, pb, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodeStageVolume, stage_req(pb, "", staging_dir(daemon)))


def test_stage_no_staging_path(csi, pb):
    expect_error(C.INVALID_ARGUMENT, csi.NodeStageVolume,
                 stage_req(pb, "fake-vol-id-0123456789", ""))


def test_stage_no_capability_random_volume(csi, pb, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodeStageVolume,
                 stage_req(pb, "fake-vol-id-0123456789", staging_dir(daemon), cap=False))


def test_stage_no_capability(csi, pb, daemon):
    v = create(csi, pb, "st", required=MiB)
    expect_error(C.INVALID_ARGUMENT, csi.NodeStageVolume,
                 stage_req(pb, v.volume_id, staging_dir(daemon), cap=False))


@pytest.mark.parametrize("rpc,fields", [
    ("NodeStageVolume", ["volume_id", "staging_target_path", "volume_capability"]),
    ("NodePublishVolume", ["volume_id", "target_path", "volume_capability"]),
    ("NodeUnstageVolume", ["volume_id", "staging_target_path"]),
    ("NodeUnpublishVolume", ["volume_id", "target_path"]),
    ("NodeGetVolumeStats", ["volume_id", "volume_path"]),
    ("NodeExpandVolume", ["volume_id", "volume_path"]),
])
def test_required_fields_checked_in_order(csi, pb, daemon, rpc, fields):
    # all fields missing, then each one supplied in turn: the message names the first missing
    values = {"volume_id": "fake-vol-id-0123456789",
              "staging_target_path": staging_dir(daemon),
              "target_path": target_path(daemon),
              "volume_path": daemon.workdir,
              "volume_capability": mount_cap(pb)}
    req_cls = getattr(pb, rpc + "Request")
    for i, missing in enumerate(fields):
        req = req_cls()
        for f in fields[:i]:
            if f == "volume_capability":
                req.volume_capability.CopyFrom(values[f])
            else:
                setattr(req, f, values[f])
        if rpc == "NodePublishVolume":
            req.staging_target_path = values["staging_target_path"]
        err = expect_error(C.INVALID_ARGUMENT, getattr(csi, rpc), req)
        assert missing in err.details(), (missing, err.details())


@needs_root
@pytest.mark.parametrize("vid", ["dir:_/nope", "fake-vol-id-0123456789"])
def test_stage_unknown_volume(csi, pb, daemon, vid):
    path = staging_dir(daemon)
    expect_error(C.NOT_FOUND, csi.NodeStageVolume, stage_req(pb, vid, path))
    assert mount_at(path) is None


@needs_root
def test_stage_bind_mounts_data(csi, pb, daemon):
    v = create(csi, pb, "stv", required=MiB)
    write_tree(daemon.data_dir("_/stv"), {"before": b"1"})
    path = staging_dir(daemon)
    for _ in range(5):  # idempotent
        csi.NodeStageVolume(stage_req(pb, v.volume_id, path, context=v.volume_context))
    m = mount_at(path)
    assert m is not None, "staging path is not a mount point"
    assert m["root"].endswith("/_/stv/data"), m
    assert mount_count(path) == 1, "repeated NodeStage stacked mounts"
    assert read_tree(path) == {"before": b"1"}
    write_tree(path, {"through-staging": b"2"})
    assert read_tree(daemon.data_dir("_/stv")) == {"before": b"1", "through-staging": b"2"}
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=path)


@needs_root
def test_stage_same_path_other_capability(csi, pb, daemon):
    # spec 2.3: staged at that path with an incompatible capability -> ALREADY_EXISTS
    v = create(csi, pb, "stc", required=MiB)
    path = staging_dir(daemon)
    csi.NodeStageVolume(stage_req(pb, v.volume_id, path))
    expect_error(C.ALREADY_EXISTS, csi.NodeStageVolume,
                 stage_req(pb, v.volume_id, path, cap=mount_cap(pb, flags=["noexec"])))
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=path)


# ---------------------------------------------------------------- NodeUnstageVolume

def test_unstage_no_volume_id(csi, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodeUnstageVolume, volume_id="",
                 staging_target_path=staging_dir(daemon))


def test_unstage_no_path(csi):
    expect_error(C.INVALID_ARGUMENT, csi.NodeUnstageVolume, volume_id="fake-vol-id",
                 staging_target_path="")


@needs_root
def test_unstage(csi, pb, daemon):
    v = create(csi, pb, "us", required=MiB)
    path = staging_dir(daemon)
    csi.NodeStageVolume(stage_req(pb, v.volume_id, path))
    write_tree(path, {"keep": b"data"})
    for _ in range(3):  # repeat OK
        csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=path)
    assert mount_at(path) is None
    assert os.path.isdir(path), "NodeUnstage must keep the CO's staging directory"
    assert os.listdir(path) == []
    assert read_tree(daemon.data_dir("_/us")) == {"keep": b"data"}


@needs_root
def test_unstage_never_staged(csi, pb, daemon):
    v = create(csi, pb, "us2", required=MiB)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=staging_dir(daemon))
    csi.NodeUnstageVolume(volume_id=v.volume_id,
                          staging_target_path=os.path.join(daemon.workdir, "no", "such"))


# ---------------------------------------------------------------- NodePublishVolume

def test_publish_no_volume_id(csi, pb, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodePublishVolume,
                 publish_req(pb, "", target_path(daemon), staging_dir(daemon)))


def test_publish_no_target(csi, pb, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodePublishVolume,
                 publish_req(pb, "fake-vol-id-0123456789", "", staging_dir(daemon)))


def test_publish_no_capability(csi, pb, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodePublishVolume,
                 publish_req(pb, "fake-vol-id-0123456789", target_path(daemon),
                             staging_dir(daemon), cap=False))


def test_publish_no_staging_path(csi, pb, daemon):
    # STAGE_UNSTAGE is advertised: an empty staging_target_path is FAILED_PRECONDITION
    v = create(csi, pb, "pns", required=MiB)
    target = target_path(daemon)
    expect_error(C.FAILED_PRECONDITION, csi.NodePublishVolume,
                 publish_req(pb, v.volume_id, target, ""))
    assert not os.path.exists(target)


@needs_root
def test_publish_unknown_volume(csi, pb, daemon):
    target = target_path(daemon)
    expect_error(C.NOT_FOUND, csi.NodePublishVolume,
                 publish_req(pb, "dir:_/nope", target, staging_dir(daemon)))
    assert mount_at(target) is None


@needs_root
def test_publish(csi, pb, daemon):
    p = Published(daemon, pb, "pub")
    assert os.path.isdir(p.target)
    m = mount_at(p.target)
    assert m is not None, "target is not a mount point"
    assert m["root"].endswith("/_/pub/data"), m
    assert "rw" in m["opts"]
    write_tree(p.target, {"hello.txt": b"from the pod"})
    assert read_tree(daemon.data_dir("_/pub")) == {"hello.txt": b"from the pod"}
    for _ in range(5):  # idempotent, no stacked mounts
        csi.NodePublishVolume(publish_req(pb, p.vid, p.target, p.staging,
                                          context=p.vol.volume_context))
    assert mount_count(p.target) == 1
    p.teardown()


@needs_root
def test_publish_readonly(csi, pb, daemon):
    p = Published(daemon, pb, "pro", readonly=True)
    write_tree(daemon.data_dir("_/pro"), {"existing": b"x"})
    with open(os.path.join(p.target, "existing"), "rb") as f:
        assert f.read() == b"x"
    with pytest.raises(OSError) as ei:
        with open(os.path.join(p.target, "new"), "wb") as f:
            f.write(b"y")
    assert ei.value.errno == errno.EROFS
    assert "ro" in mount_at(p.target)["opts"]
    # the staging mount and the data stay writable
    write_tree(p.staging, {"via-staging": b"z"})
    # idempotent with readonly=true
    csi.NodePublishVolume(publish_req(pb, p.vid, p.target, p.staging, readonly=True))
    p.teardown()


@needs_root
def test_publish_mount_flags(csi, pb, daemon):
    p = Published(daemon, pb, "pfl", flags=["noexec", "nosuid"])
    m = mount_at(p.target)
    assert "noexec" in m["opts"], m
    assert "nosuid" in m["opts"], m
    p.teardown()


@needs_root
def test_publish_same_target_other_readonly(csi, pb, daemon):
    p = Published(daemon, pb, "pdiff")
    expect_error(C.ALREADY_EXISTS, csi.NodePublishVolume,
                 publish_req(pb, p.vid, p.target, p.staging, readonly=True))
    # still published read-write, once
    write_tree(p.target, {"still-rw": b"1"})
    assert mount_count(p.target) == 1
    p.teardown()


@needs_root
def test_publish_same_target_other_flags(csi, pb, daemon):
    p = Published(daemon, pb, "pdiff2")
    expect_error(C.ALREADY_EXISTS, csi.NodePublishVolume,
                 publish_req(pb, p.vid, p.target, p.staging, cap=mount_cap(pb, flags=["noexec"])))
    assert "noexec" not in mount_at(p.target)["opts"]
    p.teardown()


@needs_root
def test_publish_block_capability(csi, pb, daemon):
    v = create(csi, pb, "pblk", required=MiB)
    staging = staging_dir(daemon)
    csi.NodeStageVolume(stage_req(pb, v.volume_id, staging))
    target = target_path(daemon)
    code, err = code_of(csi.NodePublishVolume,
                        publish_req(pb, v.volume_id, target, staging, cap=block_cap(pb)))
    # a mount volume cannot be published as block: INVALID_ARGUMENT or FAILED_PRECONDITION
    assert code in (C.INVALID_ARGUMENT, C.FAILED_PRECONDITION), err
    assert mount_at(target) is None
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=staging)


# ---------------------------------------------------------------- NodeUnpublishVolume

def test_unpublish_no_volume_id(csi, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodeUnpublishVolume, volume_id="",
                 target_path=target_path(daemon))


def test_unpublish_no_target(csi):
    expect_error(C.INVALID_ARGUMENT, csi.NodeUnpublishVolume, volume_id="fake-vol-id",
                 target_path="")


@needs_root
def test_unpublish_removes_target(csi, pb, daemon):
    p = Published(daemon, pb, "unp")
    write_tree(p.target, {"data.bin": b"\x00" * 4096})
    csi.NodeUnpublishVolume(volume_id=p.vid, target_path=p.target)
    assert not os.path.exists(p.target), "NodeUnpublish must remove the target path"
    assert os.listdir(os.path.dirname(p.target)) == []
    # the data is untouched and the staging mount is still there
    assert read_tree(daemon.data_dir("_/unp")) == {"data.bin": b"\x00" * 4096}
    assert mount_at(p.staging) is not None
    for _ in range(3):  # repeat OK
        csi.NodeUnpublishVolume(volume_id=p.vid, target_path=p.target)
    csi.NodeUnstageVolume(volume_id=p.vid, staging_target_path=p.staging)
    assert os.listdir(p.staging) == []


@needs_root
def test_unpublish_missing_path(csi, pb, daemon):
    v = create(csi, pb, "unp2", required=MiB)
    csi.NodeUnpublishVolume(volume_id=v.volume_id,
                            target_path=os.path.join(daemon.workdir, "mnt", "never", "target"))


# ---------------------------------------------------------------- unstage/unpublish check the mount

def _sh(*argv):
    subprocess.run(list(argv), check=True, capture_output=True)


@needs_root
def test_unstage_and_unpublish_refuse_another_volumes_mount(csi, pb, daemon):
    a = Published(daemon, pb, "own-a")
    b = Published(daemon, pb, "own-b")
    write_tree(b.target, {"b-file": b"b data"})
    # a request naming volume a with b's paths touches nothing of b
    err = expect_error(C.FAILED_PRECONDITION, csi.NodeUnpublishVolume, volume_id=a.vid,
                       target_path=b.target)
    assert a.vid in err.details() and "not" in err.details(), err.details()
    expect_error(C.FAILED_PRECONDITION, csi.NodeUnstageVolume, volume_id=a.vid,
                 staging_target_path=b.staging)
    assert mount_count(b.target) == 1 and mount_count(b.staging) == 1
    assert read_tree(b.target) == {"b-file": b"b data"}
    # a's own paths are still a's to take down, b's to b
    a.teardown()
    b.teardown()
    assert mount_count(a.target) == mount_count(b.target) == 0
    assert mount_count(a.staging) == mount_count(b.staging) == 0


@needs_root
def test_unstage_and_unpublish_refuse_a_foreign_mount(csi, pb, daemon):
    v = create(csi, pb, "foreign", required=MiB)
    staging = staging_dir(daemon, "foreign")
    target = target_path(daemon, "foreign")
    os.makedirs(target)
    other = os.path.join(daemon.workdir, "somebody-elses")
    os.makedirs(other)
    write_tree(other, {"precious": b"not ours"})
    _sh("mount", "-t", "tmpfs", "tmpfs", staging)
    _sh("mount", "--bind", other, target)
    try:
        expect_error(C.FAILED_PRECONDITION, csi.NodeUnstageVolume, volume_id=v.volume_id,
                     staging_target_path=staging)
        expect_error(C.FAILED_PRECONDITION, csi.NodeUnpublishVolume, volume_id=v.volume_id,
                     target_path=target)
        assert mount_count(staging) == 1 and mount_count(target) == 1
        assert read_tree(target) == {"precious": b"not ours"}
    finally:
        _sh("umount", staging)
        _sh("umount", target)
    # a directory that is not a mount and not empty is not removed either
    write_tree(target, {"left": b"by someone"})
    expect_error(C.FAILED_PRECONDITION, csi.NodeUnpublishVolume, volume_id=v.volume_id,
                 target_path=target)
    assert read_tree(target) == {"left": b"by someone"}
    # idempotency holds: an empty unmounted target is removed, a missing one is OK
    os.unlink(os.path.join(target, "left"))
    csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=target)
    assert not os.path.exists(target)
    csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=target)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=staging)


@needs_root
def test_unpublish_takes_down_only_this_volumes_stacked_mounts(csi, pb, daemon):
    # this volume published on top of somebody's mount: ours comes off, theirs stays
    v = create(csi, pb, "stacked", required=MiB)
    staging = staging_dir(daemon, "stacked")
    target = target_path(daemon, "stacked")
    os.makedirs(target)
    _sh("mount", "-t", "tmpfs", "tmpfs", target)
    try:
        csi.NodeStageVolume(stage_req(pb, v.volume_id, staging))
        data = daemon.data_dir("_/stacked")
        _sh("mount", "--bind", data, target)
        _sh("mount", "--bind", data, target)
        assert mount_count(target) == 3
        csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=target)
        assert mount_count(target) == 1
        assert mount_at(target)["fstype"] == "tmpfs"
        assert os.path.isdir(target)
    finally:
        while mount_count(target):
            _sh("umount", target)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=staging)
    assert mount_count(staging) == 0


@needs_root
def test_unstage_of_a_volume_whose_data_is_gone(csi, pb, daemon):
    # a damaged volume (its data directory removed under the mount) can still be unstaged
    v = create(csi, pb, "gone", required=MiB)
    staging = staging_dir(daemon, "gone")
    csi.NodeStageVolume(stage_req(pb, v.volume_id, staging))
    write_tree(staging, {"lost": b"x"})
    shutil.rmtree(daemon.data_dir("_/gone"))
    assert mount_at(staging)["root"].endswith("//deleted")
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=staging)
    assert mount_count(staging) == 0


@needs_root
def test_full_lifecycle_sanity_style(csi, pb, daemon):
    mountdir = os.path.join(daemon.workdir, "csi-mount")
    stagingdir = os.path.join(daemon.workdir, "csi-staging")
    os.mkdir(mountdir)
    os.mkdir(stagingdir)
    info = csi.NodeGetInfo()
    v = create(csi, pb, "lifecycle", required=10 * MiB,
               requisite=[dict(info.accessible_topology.segments)])
    target = os.path.join(mountdir, "target")
    for _ in range(10):
        csi.NodeStageVolume(stage_req(pb, v.volume_id, stagingdir, context=v.volume_context))
    for _ in range(10):
        csi.NodePublishVolume(publish_req(pb, v.volume_id, target, stagingdir,
                                          context=v.volume_context))
    stats = csi.NodeGetVolumeStats(volume_id=v.volume_id, volume_path=target)
    assert len(stats.usage) > 0
    csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=target)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=stagingdir)
    csi.DeleteVolume(volume_id=v.volume_id)
    # sanity rmdirs both: they must be empty and unmounted
    os.rmdir(mountdir)
    os.rmdir(stagingdir)
    # cleanup pass of csi-sanity on the deleted volume: OK or NOT_FOUND
    for call, kw in [(csi.NodeUnpublishVolume, {"target_path": target}),
                     (csi.NodeUnstageVolume, {"staging_target_path": stagingdir})]:
        code, err = code_of(call, volume_id=v.volume_id, **kw)
        assert code in (C.OK, C.NOT_FOUND), err
    csi.DeleteVolume(volume_id=v.volume_id)


# ---------------------------------------------------------------- DeleteVolume while in use

@needs_root
def test_delete_while_published(csi, pb, daemon):
    p = Published(daemon, pb, "busy")
    write_tree(p.target, {"precious": b"data"})
    expect_error(C.FAILED_PRECONDITION, csi.DeleteVolume, volume_id=p.vid)
    assert read_tree(daemon.data_dir("_/busy")) == {"precious": b"data"}
    assert read_tree(p.target) == {"precious": b"data"}
    assert p.vid in [e.volume.volume_id for e in csi.ListVolumes().entries]
    p.teardown()
    csi.DeleteVolume(volume_id=p.vid)
    assert not os.path.exists(daemon.vol_dir("_/busy"))


@needs_root
def test_delete_while_staged(csi, pb, daemon):
    v = create(csi, pb, "busy2", required=MiB)
    staging = staging_dir(daemon)
    csi.NodeStageVolume(stage_req(pb, v.volume_id, staging))
    write_tree(staging, {"precious": b"data"})
    expect_error(C.FAILED_PRECONDITION, csi.DeleteVolume, volume_id=v.volume_id)
    assert read_tree(daemon.data_dir("_/busy2")) == {"precious": b"data"}
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=staging)
    csi.DeleteVolume(volume_id=v.volume_id)
    assert not os.path.exists(daemon.vol_dir("_/busy2"))


# ---------------------------------------------------------------- NodeGetVolumeStats

def test_stats_no_volume_id(csi, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodeGetVolumeStats, volume_id="",
                 volume_path=daemon.workdir)


def test_stats_no_path(csi, pb):
    v = create(csi, pb, "sn", required=MiB)
    expect_error(C.INVALID_ARGUMENT, csi.NodeGetVolumeStats, volume_id=v.volume_id,
                 volume_path="")


def test_stats_random_volume_relative_path(csi):
    expect_error(C.NOT_FOUND, csi.NodeGetVolumeStats,
                 volume_id="fake-vol-id-" + uuid.uuid4().hex[:10], volume_path="some/path")


@needs_root
def test_stats_published_volume_bad_paths(csi, pb, daemon):
    p = Published(daemon, pb, "stp")
    other = Published(daemon, pb, "stp-other")
    expect_error(C.NOT_FOUND, csi.NodeGetVolumeStats, volume_id=p.vid, volume_path="some/path")
    # an existing directory that is not this volume's mount
    expect_error(C.NOT_FOUND, csi.NodeGetVolumeStats, volume_id=p.vid,
                 volume_path=os.path.dirname(p.target))
    expect_error(C.NOT_FOUND, csi.NodeGetVolumeStats, volume_id=p.vid,
                 volume_path=os.path.join(daemon.workdir, "nonexistent"))
    # another volume's mount
    expect_error(C.NOT_FOUND, csi.NodeGetVolumeStats, volume_id=p.vid,
                 volume_path=other.target)
    # an unknown volume on a real mount
    expect_error(C.NOT_FOUND, csi.NodeGetVolumeStats, volume_id="dir:_/nope",
                 volume_path=p.target)
    other.teardown()
    p.teardown()
    # after unpublish the path is gone
    expect_error(C.NOT_FOUND, csi.NodeGetVolumeStats, volume_id=p.vid, volume_path=p.target)


def usage_by_unit(pb, resp):
    U = pb.VolumeUsage.Unit
    units = [U.Name(u.unit) for u in resp.usage]
    assert sorted(units) == ["BYTES", "INODES"], units
    return {U.Name(u.unit): u for u in resp.usage}


@needs_root
def test_stats(csi, pb, daemon):
    p = Published(daemon, pb, "stats")
    resp = csi.NodeGetVolumeStats(volume_id=p.vid, volume_path=p.target,
                                  staging_target_path=p.staging)
    u = usage_by_unit(pb, resp)
    for unit in ("BYTES", "INODES"):
        assert u[unit].total > 0
        assert u[unit].used >= 0
        assert u[unit].available >= 0
        assert u[unit].used <= u[unit].total
        assert u[unit].available <= u[unit].total
    assert resp.HasField("volume_condition")
    assert resp.volume_condition.abnormal is False
    assert resp.volume_condition.message != ""
    # write 4 MiB and a few files: used bytes and inodes grow
    write_file(os.path.join(p.target, "big.bin"), 4 * MiB)
    for i in range(5):
        write_file(os.path.join(p.target, "small-%d" % i), 10)
    after = usage_by_unit(pb, csi.NodeGetVolumeStats(volume_id=p.vid, volume_path=p.target))
    assert after["BYTES"].used >= u["BYTES"].used + 3 * MiB, (u["BYTES"], after["BYTES"])
    assert after["INODES"].used > u["INODES"].used
    p.teardown()


@needs_root
def test_stats_on_staging_path(csi, pb, daemon):
    p = Published(daemon, pb, "stst")
    resp = csi.NodeGetVolumeStats(volume_id=p.vid, volume_path=p.staging)
    usage_by_unit(pb, resp)
    p.teardown()


# ---------------------------------------------------------------- NodeExpandVolume

def test_node_expand_no_volume_id(csi, daemon):
    expect_error(C.INVALID_ARGUMENT, csi.NodeExpandVolume, volume_id="",
                 volume_path=daemon.workdir)


def test_node_expand_no_path(csi, pb):
    v = create(csi, pb, "nen", required=MiB)
    expect_error(C.INVALID_ARGUMENT, csi.NodeExpandVolume, volume_id=v.volume_id,
                 volume_path="")


def test_node_expand_random_volume(csi):
    expect_error(C.NOT_FOUND, csi.NodeExpandVolume,
                 volume_id="fake-vol-id-" + uuid.uuid4().hex[:10], volume_path="some/path")


@needs_root
def test_node_expand_published_volume_bad_path(csi, pb, daemon):
    p = Published(daemon, pb, "nebad")
    expect_error(C.NOT_FOUND, csi.NodeExpandVolume, volume_id=p.vid, volume_path="some/path")
    p.teardown()


@needs_root
def test_node_expand_after_controller_expand(csi, pb, daemon):
    p = Published(daemon, pb, "nexp", required=10 * MiB)
    new = 10 * MiB + GiB
    req = pb.ControllerExpandVolumeRequest(volume_id=p.vid)
    req.capacity_range.required_bytes = new
    # online expansion while published, as csi-sanity does it (no capability)
    resp = csi.ControllerExpandVolume(req)
    assert resp.capacity_bytes == new
    assert resp.node_expansion_required is False
    nreq = pb.NodeExpandVolumeRequest(volume_id=p.vid, volume_path=p.target,
                                      staging_target_path=p.staging)
    nreq.capacity_range.required_bytes = new
    nresp = csi.NodeExpandVolume(nreq)
    assert nresp.capacity_bytes in (0, new)
    # no capability, no range, on the staging path: still OK
    csi.NodeExpandVolume(volume_id=p.vid, volume_path=p.staging)
    # the data survived
    write_tree(p.target, {"after-expand": b"ok"})
    assert read_tree(daemon.data_dir("_/nexp")) == {"after-expand": b"ok"}
    p.teardown()


# ---------------------------------------------------------------- restore through a mount

@needs_root
def test_snapshot_restore_through_published_mount(csi, pb, daemon):
    p = Published(daemon, pb, "app")
    write_tree(p.target, {"db/table": b"row 1\n", "log": b"a"})
    os.sync()
    s = csi.CreateSnapshot(name="app-snap", source_volume_id=p.vid).snapshot
    assert s.ready_to_use
    write_tree(p.target, {"db/table": b"row 1\nrow 2\n"})
    os.remove(os.path.join(p.target, "log"))
    r = create(csi, pb, "app-restored", required=16 * MiB, source=("snapshot", s.snapshot_id))
    staging = staging_dir(daemon, "app-restored")
    target = target_path(daemon, "app-restored")
    csi.NodeStageVolume(stage_req(pb, r.volume_id, staging))
    csi.NodePublishVolume(publish_req(pb, r.volume_id, target, staging))
    assert read_tree(target) == {"db/table": b"row 1\n", "log": b"a"}
    # and a clone of the live (published) volume has the current content, read through its own
    # stage and publish (on any backend)
    os.sync()
    c = create(csi, pb, "app-clone", required=16 * MiB, source=("volume", p.vid))
    assert c.content_source.volume.volume_id == p.vid
    c_staging = staging_dir(daemon, "app-clone")
    c_target = target_path(daemon, "app-clone")
    csi.NodeStageVolume(stage_req(pb, c.volume_id, c_staging))
    csi.NodePublishVolume(publish_req(pb, c.volume_id, c_target, c_staging))
    assert read_tree(c_target) == {"db/table": b"row 1\nrow 2\n"}
    for vid, t, st in ((c.volume_id, c_target, c_staging), (r.volume_id, target, staging)):
        csi.NodeUnpublishVolume(volume_id=vid, target_path=t)
        csi.NodeUnstageVolume(volume_id=vid, staging_target_path=st)
    p.teardown()
