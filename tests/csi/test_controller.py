"""Controller service: capabilities, CreateVolume, DeleteVolume, ValidateVolumeCapabilities,
ListVolumes, GetCapacity, ControllerGetVolume, ControllerExpandVolume (spec 2.2, csi-sanity 4.3).
Snapshots are in test_snapshots.py; DeleteVolume of a mounted volume in test_node.py."""

import os
import re
import shutil

import grpc
import pytest

from conftest import (NODE_ID, create, dir_only, exact_sizes, needs_dir_snapshots, read_tree, tree,
                      write_tree)
from csi_client import (GiB, KEY_CONTEXT, MiB, TOPOLOGY_KEY, block_cap,
                        code_of, create_req, expect_error, mount_cap, pvc_params)

C = grpc.StatusCode
HASH_ID_RE = re.compile(r"^dir:#[0-9a-f]{64}$")


def ctrl_caps(pb, resp):
    T = pb.ControllerServiceCapability.RPC.Type
    caps = []
    for c in resp.capabilities:
        assert c.WhichOneof("type") == "rpc", "capability without rpc: %r" % c
        caps.append(T.Name(c.rpc.type))
    assert len(set(caps)) == len(caps), "duplicate capabilities %r" % caps
    return set(caps)


def list_all(csi):
    return csi.ListVolumes().entries


def list_ids(csi):
    return [e.volume.volume_id for e in csi.ListVolumes().entries]


# ---------------------------------------------------------------- capabilities

def test_controller_get_capabilities(csi, pb):
    assert ctrl_caps(pb, csi.ControllerGetCapabilities()) == {
        "CREATE_DELETE_VOLUME", "LIST_VOLUMES", "GET_CAPACITY", "CREATE_DELETE_SNAPSHOT",
        "LIST_SNAPSHOTS", "CLONE_VOLUME", "EXPAND_VOLUME", "VOLUME_CONDITION", "GET_VOLUME"}


@pytest.mark.parametrize("method,req", [
    ("ControllerPublishVolume", "ControllerPublishVolumeRequest"),
    ("ControllerUnpublishVolume", "ControllerUnpublishVolumeRequest"),
    ("ControllerModifyVolume", "ControllerModifyVolumeRequest"),
])
def test_unadvertised_controller_rpcs_unimplemented(csi, pb, method, req):
    # not advertised (no PUBLISH_UNPUBLISH, MODIFY_VOLUME): spec 1.3 UNIMPLEMENTED
    r = getattr(pb, req)()
    if hasattr(r, "volume_id"):
        r.volume_id = "dir:_/x"
    if hasattr(r, "node_id"):
        r.node_id = NODE_ID
    expect_error(C.UNIMPLEMENTED, getattr(csi, method), r)


# ---------------------------------------------------------------- CreateVolume: validation

def test_create_no_name(csi, pb):
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume, create_req(pb, ""))


def test_create_no_capabilities(csi, pb, daemon):
    before = tree(daemon.root)
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume, create_req(pb, "nocaps", caps=[]))
    assert tree(daemon.root) == before


def test_create_capability_mode_unknown(csi, pb):
    Mode = pb.VolumeCapability.AccessMode
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "v", caps=[mount_cap(pb, mode=Mode.UNKNOWN)]))


def test_create_capability_without_access_mode(csi, pb):
    cap = pb.VolumeCapability()
    cap.mount.SetInParent()
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume, create_req(pb, "v", caps=[cap]))


def test_create_capability_without_access_type(csi, pb):
    Mode = pb.VolumeCapability.AccessMode
    cap = pb.VolumeCapability(access_mode=Mode(mode=Mode.SINGLE_NODE_WRITER))
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume, create_req(pb, "v", caps=[cap]))


def test_create_block_rejected(csi, pb, daemon):
    before = tree(daemon.root)
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "blk", caps=[block_cap(pb)]))
    assert tree(daemon.root) == before


def test_create_block_among_mount_rejected(csi, pb):
    # every listed capability must be supportable (spec 2.2)
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "mixed", caps=[mount_cap(pb), block_cap(pb)]))


@pytest.mark.parametrize("mode", ["MULTI_NODE_READER_ONLY", "MULTI_NODE_SINGLE_WRITER",
                                  "MULTI_NODE_MULTI_WRITER"])
def test_create_multi_node_rejected(csi, pb, mode):
    Mode = pb.VolumeCapability.AccessMode
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "mn", caps=[mount_cap(pb, mode=Mode.Mode.Value(mode))]))


def test_create_single_node_reader_only_ok(csi, pb):
    Mode = pb.VolumeCapability.AccessMode
    v = create(csi, pb, "ro", caps=[mount_cap(pb, mode=Mode.SINGLE_NODE_READER_ONLY)])
    assert v.volume_id == "dir:_/ro"


@pytest.mark.parametrize("required,limit", [(-1, 0), (0, -1), (-MiB, -MiB), (MiB, -1)])
def test_create_negative_capacity(csi, pb, required, limit):
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "neg", required=required, limit=limit))


def test_create_limit_below_required(csi, pb, daemon):
    before = tree(daemon.root)
    expect_error(C.OUT_OF_RANGE, csi.CreateVolume,
                 create_req(pb, "range", required=10 * MiB, limit=5 * MiB))
    assert tree(daemon.root) == before


def test_create_larger_than_free_space(csi, pb, daemon):
    st = os.statvfs(daemon.root)
    free = st.f_bavail * st.f_frsize
    code, _ = code_of(csi.CreateVolume, create_req(pb, "huge", required=free * 4 + GiB))
    assert code in (C.OUT_OF_RANGE, C.RESOURCE_EXHAUSTED), code
    assert "dir:_/huge" not in list_ids(csi)


# ---------------------------------------------------------------- CreateVolume: capacity

@dir_only  # the directory backend's sizes (exact, 1 GiB default); LVM rounds to extents
@pytest.mark.parametrize("required,limit,expected", [
    (5 * MiB, 0, 5 * MiB),
    (0, 10 * MiB, 10 * MiB),
    (0, 2 * GiB, GiB),
    (3 * MiB, 7 * MiB, 3 * MiB),
    (7 * MiB, 7 * MiB, 7 * MiB),
    (0, 0, GiB),
    (1, 0, 1),
    (12345679, 0, 12345679),
])
def test_create_capacity(csi, pb, required, limit, expected):
    v = create(csi, pb, "cap", required=required, limit=limit)
    assert v.capacity_bytes == expected
    # the recorded size is reported everywhere
    assert csi.ControllerGetVolume(volume_id=v.volume_id).volume.capacity_bytes == expected
    assert [e.volume.capacity_bytes for e in list_all(csi)] == [expected]


def test_create_no_capacity_range_defaults_1gib(csi, pb):
    v = create(csi, pb, "dflt")
    assert v.capacity_bytes == GiB


# ---------------------------------------------------------------- CreateVolume: identity

def test_create_by_name_layout(csi, pb, daemon):
    v = create(csi, pb, "vol-a", required=MiB)
    assert v.volume_id == "dir:_/vol-a"
    assert v.volume_context[KEY_CONTEXT] == "vol-a"
    assert [dict(t.segments) for t in v.accessible_topology] == [{TOPOLOGY_KEY: NODE_ID}]
    assert not v.HasField("content_source")
    assert os.path.isdir(daemon.data_dir("_/vol-a"))
    assert os.path.isfile(os.path.join(daemon.vol_dir("_/vol-a"), "volume.meta"))


def test_create_by_claim_layout(csi, pb, daemon):
    params = pvc_params("team-a", "www-web-0", **{"csi.storage.k8s.io/pv/name": "pvc-123"})
    v = create(csi, pb, "pvc-123", required=MiB, params=params)
    assert v.volume_id == "dir:team-a/www-web-0"
    assert v.volume_context[KEY_CONTEXT] == "team-a/www-web-0"
    assert [dict(t.segments) for t in v.accessible_topology] == [{TOPOLOGY_KEY: NODE_ID}]
    assert os.path.isdir(daemon.data_dir("team-a/www-web-0"))
    assert os.path.isfile(os.path.join(daemon.vol_dir("team-a/www-web-0"), "volume.meta"))
    assert not os.path.exists(daemon.vol_dir("_/pvc-123"))


def test_create_backend_param_dir(csi, pb):
    v = create(csi, pb, "bdir", required=MiB, params={"backend": "dir"})
    assert v.volume_id == "dir:_/bdir"


@pytest.mark.parametrize("params", [
    {"backend": "lvm"},
    {"backend": ""},
    {"backend": "DIR"},
    {"fsType": "ext4"},
    {"unknown-key": "x"},
    {"csi.storage.k8s.io": "x"},   # not a "csi.storage.k8s.io/" prefixed key
])
def test_create_bad_parameters(csi, pb, daemon, params):
    before = tree(daemon.root)
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "badparam", required=MiB, params=params))
    assert tree(daemon.root) == before


def test_create_ignores_csi_storage_params(csi, pb):
    params = {"csi.storage.k8s.io/pv/name": "pvc-1", "csi.storage.k8s.io/fstype": "xfs",
              "csi.storage.k8s.io/provisioner-secret-name": "s"}
    v = create(csi, pb, "ign", required=MiB, params=params)
    assert v.volume_id == "dir:_/ign"


def test_create_idempotent(csi, pb):
    first = create(csi, pb, "idem", required=4 * MiB)
    for _ in range(3):
        again = create(csi, pb, "idem", required=4 * MiB)
        assert again.volume_id == first.volume_id
        assert again.capacity_bytes == first.capacity_bytes == 4 * MiB
        assert dict(again.volume_context) == dict(first.volume_context)
    assert list_ids(csi) == [first.volume_id]


def test_create_same_name_incompatible_capacity(csi, pb):
    S = 8 * MiB
    v = create(csi, pb, "incompat", required=S, limit=S)
    expect_error(C.ALREADY_EXISTS, csi.CreateVolume,
                 create_req(pb, "incompat", required=2 * S, limit=2 * S))
    # the volume is untouched
    assert csi.ControllerGetVolume(volume_id=v.volume_id).volume.capacity_bytes == S


def test_create_same_claim_twice_same_volume(csi, pb):
    params = pvc_params("ns", "data-db-0")
    a = create(csi, pb, "pvc-a", required=MiB, params=params)
    b = create(csi, pb, "pvc-a", required=MiB, params=params)
    assert a.volume_id == b.volume_id == "dir:ns/data-db-0"


def test_claim_taken_over_stale_id_deletes_nothing(csi, pb, daemon):
    """As external-provisioner drives it: a claim re-created under the same name sends
    CreateVolume with a new PV name for the same key. The store is handed over under the next
    generation of its id; the old PV's DeleteVolume (it only knows the id) deletes nothing, and
    every other call with the old id answers as for an unknown volume."""
    params = pvc_params("ns", "data-db-0")
    a = create(csi, pb, "pvc-a", required=MiB, params=params)
    assert a.volume_id == "dir:ns/data-db-0"
    data = os.path.join(daemon.vol_dir("ns/data-db-0"), "data", "f")
    with open(data, "w") as f:
        f.write("a's")
    b = create(csi, pb, "pvc-b", required=MiB, params=params)
    assert b.volume_id == "dir:ns/data-db-0/1"
    assert create(csi, pb, "pvc-b", required=MiB, params=params).volume_id == b.volume_id
    csi.DeleteVolume(volume_id=a.volume_id)
    assert open(data).read() == "a's"
    assert list_ids(csi) == [b.volume_id]
    expect_error(C.NOT_FOUND, csi.ControllerGetVolume, volume_id=a.volume_id)
    expect_error(C.NOT_FOUND, csi.ControllerExpandVolume, volume_id=a.volume_id,
                 capacity_range=pb.CapacityRange(required_bytes=2 * MiB))
    expect_error(C.NOT_FOUND, csi.ValidateVolumeCapabilities, volume_id=a.volume_id,
                 volume_capabilities=[mount_cap(pb)])
    # the current owner's id deletes it
    csi.DeleteVolume(volume_id=b.volume_id)
    assert not os.path.exists(data)
    assert list_ids(csi) == []


BAD_NAMES = [
    "a/b", "/abs", "trailing/", "..", ".", "x\x01y", "\x1f", "del\x7f", "c1\u0085x",
    "nul\x00byte", "n" * 129, "\u00e9" * 65,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:24])
def test_create_bad_names(csi, pb, daemon, name):
    before_root = tree(daemon.root)
    before_work = tree(daemon.workdir)
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume, create_req(pb, name, required=MiB))
    assert tree(daemon.root) == before_root
    assert tree(daemon.workdir) == before_work
    assert list_ids(csi) == []


@pytest.mark.parametrize("ns,claim", [
    ("..", "x"), ("ns", ".."), ("ns", "a/b"), ("a/b", "c"), (".", "x"), ("", "x"), ("ns", ""),
])
def test_create_bad_claim_params(csi, pb, daemon, ns, claim):
    # the key names a directory: nothing may ever be created outside (or as) a volume dir
    before_work = tree(daemon.workdir)
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "pvc-bad", required=MiB, params=pvc_params(ns, claim)))
    assert tree(daemon.workdir) == before_work


def test_create_name_128_bytes(csi, pb, daemon):
    name = "n" * 128
    v = create(csi, pb, name, required=MiB)
    assert HASH_ID_RE.match(v.volume_id), v.volume_id
    assert v.volume_context[KEY_CONTEXT] == name
    assert os.path.isdir(daemon.data_dir("_/" + name))
    again = create(csi, pb, name, required=MiB)
    assert again.volume_id == v.volume_id
    assert csi.ControllerGetVolume(volume_id=v.volume_id).volume.volume_id == v.volume_id
    csi.DeleteVolume(volume_id=v.volume_id)
    assert not os.path.exists(daemon.vol_dir("_/" + name))


def test_create_multibyte_name_128_bytes(csi, pb, daemon):
    name = "\u00e9" * 64  # 128 bytes of UTF-8
    v = create(csi, pb, name, required=MiB)
    assert HASH_ID_RE.match(v.volume_id), v.volume_id
    assert os.path.isdir(daemon.data_dir("_/" + name))


def test_create_id_length_boundary(csi, pb):
    # "dir:_/" is 6 bytes: a 122-byte name gives a 128-byte id, 123 bytes needs the hash
    v122 = create(csi, pb, "a" * 122, required=MiB)
    assert v122.volume_id == "dir:_/" + "a" * 122
    v123 = create(csi, pb, "b" * 123, required=MiB)
    assert HASH_ID_RE.match(v123.volume_id), v123.volume_id
    assert len(v123.volume_id) <= 128


def test_create_long_claim_hashed(csi, pb, daemon):
    claim = "c" * 200
    v = create(csi, pb, "pvc-long", required=MiB, params=pvc_params("default", claim))
    assert HASH_ID_RE.match(v.volume_id), v.volume_id
    assert v.volume_context[KEY_CONTEXT] == "default/" + claim
    assert os.path.isdir(daemon.data_dir("default/" + claim))
    assert create(csi, pb, "pvc-long", required=MiB,
                  params=pvc_params("default", claim)).volume_id == v.volume_id
    csi.DeleteVolume(volume_id=v.volume_id)
    assert not os.path.exists(daemon.vol_dir("default/" + claim))


def test_create_distinct_hashes(csi, pb):
    a = create(csi, pb, "x" * 127 + "a", required=MiB)
    b = create(csi, pb, "x" * 127 + "b", required=MiB)
    assert a.volume_id != b.volume_id


# ---------------------------------------------------------------- CreateVolume: topology

def test_create_topology_requisite_other_node(csi, pb, daemon):
    before = tree(daemon.root)
    expect_error(C.RESOURCE_EXHAUSTED, csi.CreateVolume,
                 create_req(pb, "topo", required=MiB,
                            requisite=[{TOPOLOGY_KEY: "other-node"}],
                            preferred=[{TOPOLOGY_KEY: "other-node"}]))
    expect_error(C.RESOURCE_EXHAUSTED, csi.CreateVolume,
                 create_req(pb, "topo", required=MiB, requisite=[{TOPOLOGY_KEY: "other-node"}]))
    assert tree(daemon.root) == before


def test_create_topology_requisite_this_node(csi, pb):
    info = csi.NodeGetInfo()
    v = create(csi, pb, "topo-ok", required=MiB,
               requisite=[{TOPOLOGY_KEY: "other-node"}, dict(info.accessible_topology.segments)],
               preferred=[{TOPOLOGY_KEY: "other-node"}])
    assert [dict(t.segments) for t in v.accessible_topology] == [{TOPOLOGY_KEY: NODE_ID}]


def test_create_topology_preferred_only_other_node(csi, pb):
    # no requisite: anything goes (spec 1.10)
    v = create(csi, pb, "topo-pref", required=MiB, preferred=[{TOPOLOGY_KEY: "other-node"}])
    assert [dict(t.segments) for t in v.accessible_topology] == [{TOPOLOGY_KEY: NODE_ID}]


# ---------------------------------------------------------------- CreateVolume: sources

@pytest.mark.parametrize("sid", ["non-existing-snapshot-id", "dir:@nope", "dir:_/x", "dir:#00"])
def test_create_from_unknown_snapshot(csi, pb, daemon, sid):
    before = tree(daemon.root)
    expect_error(C.NOT_FOUND, csi.CreateVolume,
                 create_req(pb, "from-snap", required=MiB, source=("snapshot", sid)))
    assert tree(daemon.root) == before


@pytest.mark.parametrize("vid", ["fake-vol-id-0123456789", "dir:_/nope", "dir:#" + "0" * 64,
                                 "lvm:vg/x"])
def test_create_from_unknown_volume(csi, pb, daemon, vid):
    before = tree(daemon.root)
    expect_error(C.NOT_FOUND, csi.CreateVolume,
                 create_req(pb, "clone", required=MiB, source=("volume", vid)))
    assert tree(daemon.root) == before


def test_clone_volume_copies_data(csi, pb, daemon):
    src = create(csi, pb, "src", required=4 * MiB)
    files = {"a.txt": b"hello", "sub/dir/b.bin": os.urandom(300000), "empty": b""}
    write_tree(daemon.data_dir("_/src"), files)
    os.symlink("a.txt", os.path.join(daemon.data_dir("_/src"), "link"))
    clone = create(csi, pb, "dst", required=4 * MiB, source=("volume", src.volume_id))
    assert clone.volume_id == "dir:_/dst"
    assert clone.content_source.WhichOneof("type") == "volume"
    assert clone.content_source.volume.volume_id == src.volume_id
    assert clone.capacity_bytes == 4 * MiB
    assert read_tree(daemon.data_dir("_/dst")) == files
    assert os.readlink(os.path.join(daemon.data_dir("_/dst"), "link")) == "a.txt"
    # independent copies
    write_tree(daemon.data_dir("_/src"), {"a.txt": b"changed"})
    assert read_tree(daemon.data_dir("_/dst"))["a.txt"] == b"hello"
    # idempotent with the same source; another source under the same name is incompatible
    again = create(csi, pb, "dst", required=4 * MiB, source=("volume", src.volume_id))
    assert again.volume_id == clone.volume_id
    assert again.content_source.volume.volume_id == src.volume_id
    other = create(csi, pb, "other", required=4 * MiB)
    expect_error(C.ALREADY_EXISTS, csi.CreateVolume,
                 create_req(pb, "dst", required=4 * MiB, source=("volume", other.volume_id)))
    # the clone is listed with its source
    entries = {e.volume.volume_id: e.volume for e in list_all(csi)}
    assert entries[clone.volume_id].content_source.volume.volume_id == src.volume_id


@needs_dir_snapshots
def test_clone_capacity_default_and_larger(csi, pb, daemon):
    src = create(csi, pb, "src2", required=8 * MiB)
    bigger = create(csi, pb, "big", required=16 * MiB, source=("volume", src.volume_id))
    assert bigger.capacity_bytes == 16 * MiB


def test_clone_smaller_than_source(csi, pb, daemon):
    # spec 2.2: capacity_range smaller than the source -> OUT_OF_RANGE
    src = create(csi, pb, "src3", required=8 * MiB)
    before = tree(daemon.root)
    expect_error(C.OUT_OF_RANGE, csi.CreateVolume,
                 create_req(pb, "small", required=4 * MiB, limit=4 * MiB,
                            source=("volume", src.volume_id)))
    assert tree(daemon.root) == before


@needs_dir_snapshots
def test_existing_volume_without_source_then_with_source(csi, pb):
    src = create(csi, pb, "s4", required=MiB)
    create(csi, pb, "plain", required=MiB)
    expect_error(C.ALREADY_EXISTS, csi.CreateVolume,
                 create_req(pb, "plain", required=MiB, source=("volume", src.volume_id)))


# ---------------------------------------------------------------- DeleteVolume

def test_delete_no_id(csi):
    expect_error(C.INVALID_ARGUMENT, csi.DeleteVolume, volume_id="")


@pytest.mark.parametrize("vid", ["fake-vol-id", "dir:_/nope", "dir:#" + "a" * 64, "dir:",
                                 "dir:../../etc", "lvm:vg/lv", "x" * 128])
def test_delete_unknown_ok(csi, daemon, vid):
    before = tree(daemon.workdir)
    csi.DeleteVolume(volume_id=vid)
    assert tree(daemon.workdir) == before


def test_delete_id_with_nul_does_not_hit_prefix(csi, pb, daemon):
    # "dir:_/keep\0x" is an unknown id (OK), not "dir:_/keep" cut at the NUL
    v = create(csi, pb, "keep", required=MiB)
    code, err = code_of(csi.DeleteVolume, volume_id=v.volume_id + "\x00x")
    assert code in (C.OK, C.INVALID_ARGUMENT), err
    assert os.path.isdir(daemon.data_dir("_/keep")), "DeleteVolume removed another volume"
    assert list_ids(csi) == [v.volume_id]
    code, err = code_of(csi.ControllerGetVolume, volume_id=v.volume_id + "\x00x")
    assert code in (C.NOT_FOUND, C.INVALID_ARGUMENT), err


def test_delete_removes_directory(csi, pb, daemon):
    v = create(csi, pb, "del", required=MiB)
    write_tree(daemon.data_dir("_/del"), {"f": b"x" * 1000, "d/g": b"y"})
    csi.DeleteVolume(volume_id=v.volume_id)
    assert not os.path.exists(daemon.vol_dir("_/del"))
    assert list_ids(csi) == []
    expect_error(C.NOT_FOUND, csi.ControllerGetVolume, volume_id=v.volume_id)
    csi.DeleteVolume(volume_id=v.volume_id)  # again: OK
    # the name is free again: a new, empty volume
    v2 = create(csi, pb, "del", required=2 * MiB)
    assert v2.capacity_bytes == 2 * MiB
    assert os.listdir(daemon.data_dir("_/del")) == []


def test_delete_claim_volume(csi, pb, daemon):
    v = create(csi, pb, "pvc-x", required=MiB, params=pvc_params("ns1", "claim-0"))
    other = create(csi, pb, "pvc-y", required=MiB, params=pvc_params("ns1", "claim-1"))
    csi.DeleteVolume(volume_id=v.volume_id)
    assert not os.path.exists(daemon.vol_dir("ns1/claim-0"))
    assert os.path.isdir(daemon.data_dir("ns1/claim-1"))
    assert list_ids(csi) == [other.volume_id]


# ---------------------------------------------------------------- ValidateVolumeCapabilities

def test_validate_no_id(csi, pb):
    expect_error(C.INVALID_ARGUMENT, csi.ValidateVolumeCapabilities,
                 pb.ValidateVolumeCapabilitiesRequest(volume_capabilities=[mount_cap(pb)]))


def test_validate_no_caps(csi, pb):
    v = create(csi, pb, "val", required=MiB)
    expect_error(C.INVALID_ARGUMENT, csi.ValidateVolumeCapabilities, volume_id=v.volume_id)


def test_validate_no_caps_unknown_volume(csi):
    # required fields are checked before the lookup
    expect_error(C.INVALID_ARGUMENT, csi.ValidateVolumeCapabilities, volume_id="dir:_/nope")


def test_validate_unknown_volume(csi, pb):
    expect_error(C.NOT_FOUND, csi.ValidateVolumeCapabilities,
                 pb.ValidateVolumeCapabilitiesRequest(volume_id="dir:_/nope",
                                                      volume_capabilities=[mount_cap(pb)]))


def test_validate_supported(csi, pb):
    v = create(csi, pb, "val", required=MiB)
    Mode = pb.VolumeCapability.AccessMode
    caps = [mount_cap(pb), mount_cap(pb, mode=Mode.SINGLE_NODE_READER_ONLY, flags=["noatime"])]
    req = pb.ValidateVolumeCapabilitiesRequest(volume_id=v.volume_id, volume_capabilities=caps)
    req.volume_context.update(v.volume_context)
    resp = csi.ValidateVolumeCapabilities(req)
    assert resp.HasField("confirmed")
    assert list(resp.confirmed.volume_capabilities) == caps


@pytest.mark.parametrize("kind", ["block", "MULTI_NODE_READER_ONLY", "MULTI_NODE_MULTI_WRITER",
                                  "MULTI_NODE_SINGLE_WRITER", "mixed"])
def test_validate_unsupported(csi, pb, kind):
    v = create(csi, pb, "val", required=MiB)
    Mode = pb.VolumeCapability.AccessMode
    if kind == "block":
        caps = [block_cap(pb)]
    elif kind == "mixed":
        caps = [mount_cap(pb), block_cap(pb)]
    else:
        caps = [mount_cap(pb, mode=Mode.Mode.Value(kind))]
    resp = csi.ValidateVolumeCapabilities(volume_id=v.volume_id, volume_capabilities=caps)
    assert not resp.HasField("confirmed")
    assert resp.message != ""


# ---------------------------------------------------------------- ListVolumes

def test_list_volumes_empty(csi):
    resp = csi.ListVolumes()
    assert list(resp.entries) == []
    assert resp.next_token == ""


def test_list_volumes_presence_and_absence(csi, pb):
    assert list_ids(csi) == []
    v = create(csi, pb, "sanity")
    assert list_ids(csi) == [v.volume_id]
    csi.DeleteVolume(volume_id=v.volume_id)
    assert list_ids(csi) == []


def test_list_volumes_entries(csi, pb):
    made = {}
    for i, size in enumerate([MiB, 2 * MiB, 3 * MiB]):
        v = create(csi, pb, "lv-%d" % i, required=size)
        made[v.volume_id] = v
    resp = csi.ListVolumes()
    assert resp.next_token == ""
    assert sorted(e.volume.volume_id for e in resp.entries) == sorted(made)
    for e in resp.entries:
        want = made[e.volume.volume_id]
        assert e.volume.capacity_bytes == want.capacity_bytes
        assert dict(e.volume.volume_context) == dict(want.volume_context)
        assert [dict(t.segments) for t in e.volume.accessible_topology] == [{TOPOLOGY_KEY:
                                                                              NODE_ID}]
        assert e.HasField("status")
        assert e.status.HasField("volume_condition")
        assert e.status.volume_condition.abnormal is False
        assert e.status.volume_condition.message != ""


def test_list_volumes_paging(csi, pb):
    ids = sorted(create(csi, pb, "page-%02d" % i, required=MiB).volume_id for i in range(7))
    seen = []
    token = ""
    pages = 0
    while True:
        resp = csi.ListVolumes(max_entries=3, starting_token=token)
        pages += 1
        assert len(resp.entries) <= 3
        seen += [e.volume.volume_id for e in resp.entries]
        if pages < 3:
            assert len(resp.entries) == 3
            assert resp.next_token != ""
        token = resp.next_token
        if not token:
            break
        assert pages < 10, "paging does not end"
    assert pages == 3
    assert sorted(seen) == ids
    assert len(seen) == len(set(seen))
    # whole list when max_entries is 0 or larger than the count
    assert sorted(list_ids(csi)) == ids
    resp = csi.ListVolumes(max_entries=100)
    assert sorted(e.volume.volume_id for e in resp.entries) == ids
    assert resp.next_token == ""
    # exact multiple: the last page may say "more" only if more exists
    resp = csi.ListVolumes(max_entries=7)
    assert len(resp.entries) == 7
    if resp.next_token:
        assert list(csi.ListVolumes(starting_token=resp.next_token).entries) == []


def test_list_volumes_token_then_rest(csi, pb):
    ids = sorted(create(csi, pb, "t-%d" % i, required=MiB).volume_id for i in range(5))
    first = csi.ListVolumes(max_entries=2)
    assert len(first.entries) == 2
    assert first.next_token
    rest = csi.ListVolumes(starting_token=first.next_token)
    assert len(rest.entries) == 3
    assert rest.next_token == ""
    assert sorted([e.volume.volume_id for e in first.entries] +
                  [e.volume.volume_id for e in rest.entries]) == ids


def test_list_volumes_negative_max(csi):
    expect_error(C.INVALID_ARGUMENT, csi.ListVolumes, max_entries=-1)


@pytest.mark.parametrize("token", ["invalid-token", "%%%"])
def test_list_volumes_invalid_token(csi, pb, token):
    create(csi, pb, "tok", required=MiB)
    expect_error(C.ABORTED, csi.ListVolumes, starting_token=token)


# ---------------------------------------------------------------- GetCapacity

def test_get_capacity(csi, pb):
    resp = csi.GetCapacity()
    assert resp.available_capacity > 0
    assert resp.HasField("maximum_volume_size")
    assert 0 < resp.maximum_volume_size.value
    with_caps = csi.GetCapacity(volume_capabilities=[mount_cap(pb)],
                                parameters={"backend": "dir"})
    assert with_caps.available_capacity > 0


def test_get_capacity_matches_free_space(csi, daemon):
    resp = csi.GetCapacity()
    st = os.statvfs(daemon.root)
    free = st.f_bavail * st.f_frsize
    # the dir backend reports the filesystem's free space (allow for concurrent activity)
    assert abs(resp.available_capacity - free) < max(free // 10, 256 * MiB)
    assert resp.maximum_volume_size.value <= resp.available_capacity + 256 * MiB


# ---------------------------------------------------------------- ControllerGetVolume

def test_get_volume_no_id(csi):
    expect_error(C.INVALID_ARGUMENT, csi.ControllerGetVolume, volume_id="")


@pytest.mark.parametrize("vid", ["dir:_/nope", "fake-vol-id", "dir:#" + "f" * 64])
def test_get_volume_unknown(csi, vid):
    expect_error(C.NOT_FOUND, csi.ControllerGetVolume, volume_id=vid)


def test_get_volume(csi, pb):
    v = create(csi, pb, "gv", required=3 * MiB, params=pvc_params("ns", "gv-0"))
    resp = csi.ControllerGetVolume(volume_id=v.volume_id)
    assert resp.volume.volume_id == "dir:ns/gv-0"
    assert resp.volume.capacity_bytes == 3 * MiB
    assert dict(resp.volume.volume_context) == dict(v.volume_context)
    assert [dict(t.segments) for t in resp.volume.accessible_topology] == [{TOPOLOGY_KEY:
                                                                             NODE_ID}]
    assert resp.HasField("status")
    assert resp.status.HasField("volume_condition")
    assert resp.status.volume_condition.abnormal is False
    assert resp.status.volume_condition.message != ""


def test_get_volume_abnormal_when_data_removed(csi, pb, daemon):
    v = create(csi, pb, "broken", required=MiB)
    shutil.rmtree(daemon.data_dir("_/broken"))
    resp = csi.ControllerGetVolume(volume_id=v.volume_id)
    assert resp.status.volume_condition.abnormal is True
    assert resp.status.volume_condition.message != ""
    entries = {e.volume.volume_id: e for e in list_all(csi)}
    assert entries[v.volume_id].status.volume_condition.abnormal is True
    # a damaged volume can still be deleted
    csi.DeleteVolume(volume_id=v.volume_id)
    assert not os.path.exists(daemon.vol_dir("_/broken"))


# ---------------------------------------------------------------- ControllerExpandVolume

def expand_req(pb, vid, required, limit=0, cap=True):
    req = pb.ControllerExpandVolumeRequest(volume_id=vid)
    req.capacity_range.required_bytes = required
    req.capacity_range.limit_bytes = limit
    req.capacity_range.SetInParent()
    if cap:
        req.volume_capability.CopyFrom(mount_cap(pb))
    return req


def test_expand_no_id(csi, pb):
    expect_error(C.INVALID_ARGUMENT, csi.ControllerExpandVolume, expand_req(pb, "", 2 * MiB))


def test_expand_no_id_no_range(csi, pb):
    expect_error(C.INVALID_ARGUMENT, csi.ControllerExpandVolume,
                 pb.ControllerExpandVolumeRequest())


def test_expand_no_capacity_range(csi, pb):
    v = create(csi, pb, "ex", required=MiB)
    expect_error(C.INVALID_ARGUMENT, csi.ControllerExpandVolume,
                 pb.ControllerExpandVolumeRequest(volume_id=v.volume_id))


def test_expand_unknown(csi, pb):
    expect_error(C.NOT_FOUND, csi.ControllerExpandVolume, expand_req(pb, "dir:_/nope", 2 * MiB))


@exact_sizes
@pytest.mark.parametrize("with_cap", [True, False])
def test_expand_exact(csi, pb, with_cap):
    v = create(csi, pb, "ex", required=10 * MiB)
    target = 10 * MiB + GiB // 8 + 4097
    resp = csi.ControllerExpandVolume(expand_req(pb, v.volume_id, target, cap=with_cap))
    assert resp.capacity_bytes == target
    assert resp.node_expansion_required is False
    assert csi.ControllerGetVolume(volume_id=v.volume_id).volume.capacity_bytes == target
    assert [e.volume.capacity_bytes for e in list_all(csi)] == [target]
    # idempotent
    resp = csi.ControllerExpandVolume(expand_req(pb, v.volume_id, target, cap=with_cap))
    assert resp.capacity_bytes == target


def test_expand_with_limit(csi, pb):
    v = create(csi, pb, "ex", required=MiB)
    resp = csi.ControllerExpandVolume(expand_req(pb, v.volume_id, 5 * MiB, limit=9 * MiB))
    assert 5 * MiB <= resp.capacity_bytes <= 9 * MiB


def test_expand_shrink_request(csi, pb):
    v = create(csi, pb, "ex", required=20 * MiB)
    resp = csi.ControllerExpandVolume(expand_req(pb, v.volume_id, 10 * MiB))
    assert resp.capacity_bytes == 20 * MiB
    assert csi.ControllerGetVolume(volume_id=v.volume_id).volume.capacity_bytes == 20 * MiB


def test_expand_limit_below_required(csi, pb):
    v = create(csi, pb, "ex", required=MiB)
    expect_error(C.OUT_OF_RANGE, csi.ControllerExpandVolume,
                 expand_req(pb, v.volume_id, 10 * MiB, limit=5 * MiB))
    assert csi.ControllerGetVolume(volume_id=v.volume_id).volume.capacity_bytes == \
        v.capacity_bytes


def test_expand_then_create_same_name_original_size(csi, pb):
    # after an expansion the volume is bigger than the original request: a replay of the
    # original CreateVolume (required only) still finds it compatible (sizes in whole 4 MiB
    # extents, so that the LVM backend makes them exactly too)
    v = create(csi, pb, "exc", required=4 * MiB)
    csi.ControllerExpandVolume(expand_req(pb, v.volume_id, 8 * MiB))
    again = create(csi, pb, "exc", required=4 * MiB)
    assert again.volume_id == v.volume_id
    assert again.capacity_bytes == 8 * MiB
