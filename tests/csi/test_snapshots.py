"""Snapshots: CreateSnapshot, DeleteSnapshot, ListSnapshots and restoring from a snapshot
(spec 2.2, csi-sanity 4.3)."""

import os
import time

import grpc
import pytest

from conftest import BACKEND, create, read_tree, tree, write_tree
from csi_client import MiB, code_of, create_req, expect_error, pvc_params

C = grpc.StatusCode


def snap(csi, name, source):
    return csi.CreateSnapshot(name=name, source_volume_id=source).snapshot


def list_snaps(csi, **kw):
    return [e.snapshot for e in csi.ListSnapshots(**kw).entries]


def check_snapshot(s, name=None, source=None):
    assert s.snapshot_id
    assert len(s.snapshot_id.encode()) <= 128
    if BACKEND == "dir" and name is not None and len(("dir:@" + name).encode()) <= 128:
        assert s.snapshot_id == "dir:@" + name
    elif BACKEND != "dir":
        assert s.snapshot_id.startswith("lvm:")
    if source is not None:
        assert s.source_volume_id == source
    assert s.HasField("creation_time")
    now = time.time()
    assert now - 3600 < s.creation_time.seconds <= now + 5
    assert 0 <= s.creation_time.nanos < 1000000000
    assert s.ready_to_use is True
    assert s.size_bytes >= 0
    assert s.group_snapshot_id == ""


# ---------------------------------------------------------------- CreateSnapshot

def test_create_snapshot_no_name(csi):
    # the name is checked before the source is looked up
    expect_error(C.INVALID_ARGUMENT, csi.CreateSnapshot, source_volume_id="testId")


def test_create_snapshot_no_source(csi):
    expect_error(C.INVALID_ARGUMENT, csi.CreateSnapshot, name="snap-nosrc")


@pytest.mark.parametrize("src", ["testId", "dir:_/nope", "dir:#" + "0" * 64])
def test_create_snapshot_unknown_source(csi, daemon, src):
    before = tree(daemon.root)
    expect_error(C.NOT_FOUND, csi.CreateSnapshot, name="snap-x", source_volume_id=src)
    assert tree(daemon.root) == before
    assert list_snaps(csi) == []


def test_create_snapshot(csi, pb):
    v = create(csi, pb, "sv", required=2 * MiB)
    s = snap(csi, "snap-1", v.volume_id)
    check_snapshot(s, "snap-1", v.volume_id)
    again = snap(csi, "snap-1", v.volume_id)
    check_snapshot(again, "snap-1", v.volume_id)
    assert again.snapshot_id == s.snapshot_id
    assert again.creation_time == s.creation_time
    assert again.size_bytes == s.size_bytes
    assert [x.snapshot_id for x in list_snaps(csi)] == [s.snapshot_id]


def test_create_snapshot_same_name_other_source(csi, pb):
    a = create(csi, pb, "sa", required=MiB)
    b = create(csi, pb, "sb", required=MiB)
    s = snap(csi, "snap-dup", a.volume_id)
    expect_error(C.ALREADY_EXISTS, csi.CreateSnapshot, name="snap-dup",
                 source_volume_id=b.volume_id)
    assert [(x.snapshot_id, x.source_volume_id) for x in list_snaps(csi)] == [
        (s.snapshot_id, a.volume_id)]


def test_create_snapshot_128_byte_name(csi, pb):
    v = create(csi, pb, "sv", required=MiB)
    name = "s" * 128
    s1 = snap(csi, name, v.volume_id)
    check_snapshot(s1, name, v.volume_id)
    s2 = snap(csi, name, v.volume_id)
    assert s2.snapshot_id == s1.snapshot_id
    other = snap(csi, "s" * 127 + "t", v.volume_id)
    assert other.snapshot_id != s1.snapshot_id
    assert len(list_snaps(csi)) == 2
    assert [x.snapshot_id for x in list_snaps(csi, snapshot_id=s1.snapshot_id)] == [
        s1.snapshot_id]


# Names that no backend takes (over 128 bytes, NUL), and names that only the directory backend
# refuses because its snapshot names become file names: the LVM backend keeps a name in its
# tags and hashes it into the LV name, so any CSI name of 1-128 bytes is valid there.
_FILE_NAME_ONLY = pytest.mark.skipif(BACKEND != "dir", reason="a valid snapshot name for the "
                                     "LVM backend (names are hashed into LV names)")


@pytest.mark.parametrize("name", [pytest.param(n, marks=_FILE_NAME_ONLY)
                                  for n in ["a/b", "..", ".", "x\x01"]] + ["n" * 129, "nul\x00"],
                         ids=lambda n: repr(n)[:20])
def test_create_snapshot_bad_name(csi, pb, daemon, name):
    v = create(csi, pb, "sv", required=MiB)
    before = tree(daemon.workdir)
    expect_error(C.INVALID_ARGUMENT, csi.CreateSnapshot, name=name, source_volume_id=v.volume_id)
    assert tree(daemon.workdir) == before
    assert list_snaps(csi) == []


def test_snapshot_of_claim_volume(csi, pb):
    v = create(csi, pb, "pvc-s", required=MiB, params=pvc_params("ns", "data-0"))
    s = snap(csi, "snapshot-abc", v.volume_id)
    check_snapshot(s, "snapshot-abc", v.volume_id)
    if BACKEND == "dir":
        assert v.volume_id == "dir" + ":ns/data-0"


# ---------------------------------------------------------------- DeleteSnapshot

def test_delete_snapshot_no_id(csi):
    expect_error(C.INVALID_ARGUMENT, csi.DeleteSnapshot, snapshot_id="")


@pytest.mark.parametrize("sid", ["reallyfakesnapshotid", "dir:@nope", "dir:@", "dir:@../x",
                                 "dir:_/vol"])
def test_delete_snapshot_unknown(csi, daemon, sid):
    before = tree(daemon.workdir)
    csi.DeleteSnapshot(snapshot_id=sid)
    assert tree(daemon.workdir) == before


def test_delete_snapshot(csi, pb):
    v = create(csi, pb, "sv", required=MiB)
    s = snap(csi, "snap-del", v.volume_id)
    keep = snap(csi, "snap-keep", v.volume_id)
    csi.DeleteSnapshot(snapshot_id=s.snapshot_id)
    assert [x.snapshot_id for x in list_snaps(csi)] == [keep.snapshot_id]
    csi.DeleteSnapshot(snapshot_id=s.snapshot_id)
    expect_error(C.NOT_FOUND, csi.CreateVolume,
                 create_req(pb, "restore", required=MiB, source=("snapshot", s.snapshot_id)))
    # the name can be used again, for another source
    w = create(csi, pb, "sw", required=MiB)
    s2 = snap(csi, "snap-del", w.volume_id)
    assert s2.source_volume_id == w.volume_id


def test_delete_source_volume_keeps_snapshot(csi, pb, daemon):
    # spec 2.2 DeleteVolume: either the snapshot stays usable and listed, or FAILED_PRECONDITION
    v = create(csi, pb, "sv", required=MiB)
    write_tree(daemon.data_dir("_/sv"), {"f": b"snapshot me"})
    s = snap(csi, "snap-orphan", v.volume_id)
    try:
        csi.DeleteVolume(volume_id=v.volume_id)
    except grpc.RpcError as e:
        assert e.code() == C.FAILED_PRECONDITION, e
        assert os.path.isdir(daemon.data_dir("_/sv"))
        return
    assert [x.snapshot_id for x in list_snaps(csi)] == [s.snapshot_id]
    assert [x.snapshot_id for x in list_snaps(csi, source_volume_id=v.volume_id)] == [
        s.snapshot_id]
    r = create(csi, pb, "restored", required=MiB, source=("snapshot", s.snapshot_id))
    assert read_tree(daemon.data_dir("_/restored")) == {"f": b"snapshot me"}
    assert r.content_source.snapshot.snapshot_id == s.snapshot_id


# ---------------------------------------------------------------- ListSnapshots

def make_snapshots(csi, pb, n_vols=3, per_vol=2):
    snaps = []
    for i in range(n_vols):
        v = create(csi, pb, "lsv-%d" % i, required=MiB)
        for j in range(per_vol):
            snaps.append(snap(csi, "ls-%d-%d" % (i, j), v.volume_id))
    return snaps


def test_list_snapshots_empty(csi):
    resp = csi.ListSnapshots()
    assert list(resp.entries) == []
    assert resp.next_token == ""


def test_list_snapshots_all(csi, pb):
    snaps = make_snapshots(csi, pb)
    got = {s.snapshot_id: s for s in list_snaps(csi)}
    assert sorted(got) == sorted(s.snapshot_id for s in snaps)
    for s in snaps:
        g = got[s.snapshot_id]
        check_snapshot(g)
        assert g.source_volume_id == s.source_volume_id
        assert g.creation_time == s.creation_time
        assert g.size_bytes == s.size_bytes


def test_list_snapshots_by_id(csi, pb):
    snaps = make_snapshots(csi, pb)
    for s in snaps:
        got = list_snaps(csi, snapshot_id=s.snapshot_id)
        assert [g.snapshot_id for g in got] == [s.snapshot_id]
        assert got[0].source_volume_id == s.source_volume_id


@pytest.mark.parametrize("sid", ["none-exist-id", "dir:@none", "dir:@"])
def test_list_snapshots_by_unknown_id(csi, pb, sid):
    make_snapshots(csi, pb, n_vols=1, per_vol=1)
    resp = csi.ListSnapshots(snapshot_id=sid)
    assert list(resp.entries) == []
    assert resp.next_token == ""


def test_list_snapshots_by_source(csi, pb):
    snaps = make_snapshots(csi, pb, n_vols=3, per_vol=2)
    for vol in {s.source_volume_id for s in snaps}:
        want = sorted(s.snapshot_id for s in snaps if s.source_volume_id == vol)
        got = list_snaps(csi, source_volume_id=vol)
        assert sorted(g.snapshot_id for g in got) == want
        assert all(g.source_volume_id == vol for g in got)


def test_list_snapshots_by_unknown_source(csi, pb):
    make_snapshots(csi, pb, n_vols=1, per_vol=1)
    assert list_snaps(csi, source_volume_id="dir:_/none") == []
    assert list_snaps(csi, source_volume_id="fake-vol-id") == []


def test_list_snapshots_by_id_and_source(csi, pb):
    snaps = make_snapshots(csi, pb, n_vols=2, per_vol=1)
    a, b = snaps
    assert [g.snapshot_id for g in list_snaps(csi, snapshot_id=a.snapshot_id,
                                              source_volume_id=a.source_volume_id)] == [
        a.snapshot_id]
    assert list_snaps(csi, snapshot_id=a.snapshot_id, source_volume_id=b.source_volume_id) == []


def test_list_snapshots_paging(csi, pb):
    snaps = make_snapshots(csi, pb, n_vols=3, per_vol=2)  # 6 snapshots
    first = csi.ListSnapshots(max_entries=2)
    assert len(first.entries) == 2
    assert first.next_token != ""
    rest = csi.ListSnapshots(starting_token=first.next_token)
    assert len(rest.entries) == len(snaps) - 2
    assert rest.next_token == ""
    ids = [e.snapshot.snapshot_id for e in first.entries] + [
        e.snapshot.snapshot_id for e in rest.entries]
    assert sorted(ids) == sorted(s.snapshot_id for s in snaps)
    # page by page
    seen, token = [], ""
    for _ in range(10):
        resp = csi.ListSnapshots(max_entries=4, starting_token=token)
        assert len(resp.entries) <= 4
        seen += [e.snapshot.snapshot_id for e in resp.entries]
        token = resp.next_token
        if not token:
            break
    assert sorted(seen) == sorted(s.snapshot_id for s in snaps)


def test_list_snapshots_paging_with_source_filter(csi, pb):
    v = create(csi, pb, "pg", required=MiB)
    other = create(csi, pb, "pg-other", required=MiB)
    mine = [snap(csi, "pg-%d" % i, v.volume_id).snapshot_id for i in range(5)]
    snap(csi, "pg-x", other.volume_id)
    seen, token = [], ""
    for _ in range(10):
        resp = csi.ListSnapshots(max_entries=2, starting_token=token,
                                 source_volume_id=v.volume_id)
        assert len(resp.entries) <= 2
        seen += [e.snapshot.snapshot_id for e in resp.entries]
        token = resp.next_token
        if not token:
            break
    assert sorted(seen) == sorted(mine)


def test_list_snapshots_negative_max(csi):
    expect_error(C.INVALID_ARGUMENT, csi.ListSnapshots, max_entries=-1)


def test_list_snapshots_invalid_token(csi, pb):
    make_snapshots(csi, pb, n_vols=1, per_vol=1)
    expect_error(C.ABORTED, csi.ListSnapshots, starting_token="invalid-token")


def test_list_snapshots_presence_and_absence(csi, pb):
    v = create(csi, pb, "pa", required=MiB)
    n0 = len(list_snaps(csi))
    s = snap(csi, "pa-snap", v.volume_id)
    assert len(list_snaps(csi)) == n0 + 1
    csi.DeleteSnapshot(snapshot_id=s.snapshot_id)
    assert len(list_snaps(csi)) == n0


# ---------------------------------------------------------------- restore

def test_restore_is_point_in_time(csi, pb, daemon):
    v = create(csi, pb, "origin", required=4 * MiB)
    data = daemon.data_dir("_/origin")
    original = {"a.txt": b"version 1", "dir/b.bin": os.urandom(200000), "dir/empty": b""}
    write_tree(data, original)
    s = snap(csi, "pit", v.volume_id)
    # change the source after the cut
    write_tree(data, {"a.txt": b"version 2", "new.txt": b"later"})
    os.remove(os.path.join(data, "dir/b.bin"))
    r = create(csi, pb, "from-pit", required=4 * MiB, source=("snapshot", s.snapshot_id))
    assert r.volume_id == "dir:_/from-pit"
    assert r.capacity_bytes == 4 * MiB
    assert r.content_source.WhichOneof("type") == "snapshot"
    assert r.content_source.snapshot.snapshot_id == s.snapshot_id
    assert read_tree(daemon.data_dir("_/from-pit")) == original
    # the restored volume is independent of the snapshot: restore again gets the same content
    write_tree(daemon.data_dir("_/from-pit"), {"a.txt": b"restored and changed"})
    r2 = create(csi, pb, "from-pit-2", required=4 * MiB, source=("snapshot", s.snapshot_id))
    assert read_tree(daemon.data_dir("_/from-pit-2")) == original
    assert r2.volume_id != r.volume_id
    # idempotent; the same name from another source is incompatible
    again = create(csi, pb, "from-pit", required=4 * MiB, source=("snapshot", s.snapshot_id))
    assert again.volume_id == r.volume_id
    assert again.content_source.snapshot.snapshot_id == s.snapshot_id
    s2 = snap(csi, "pit-2", v.volume_id)
    expect_error(C.ALREADY_EXISTS, csi.CreateVolume,
                 create_req(pb, "from-pit", required=4 * MiB, source=("snapshot", s2.snapshot_id)))
    # ControllerGetVolume and ListVolumes report the source too
    got = csi.ControllerGetVolume(volume_id=r.volume_id).volume
    assert got.content_source.snapshot.snapshot_id == s.snapshot_id


def test_restore_into_claim(csi, pb, daemon):
    v = create(csi, pb, "pvc-src", required=MiB, params=pvc_params("ns", "src-0"))
    write_tree(daemon.data_dir("ns/src-0"), {"x": b"claim data"})
    s = snap(csi, "snap-claim", v.volume_id)
    r = create(csi, pb, "pvc-dst", required=MiB, params=pvc_params("ns", "dst-0"),
               source=("snapshot", s.snapshot_id))
    assert r.volume_id == "dir:ns/dst-0"
    assert read_tree(daemon.data_dir("ns/dst-0")) == {"x": b"claim data"}


def test_restore_smaller_than_snapshot(csi, pb, daemon):
    # spec 2.2: a capacity_range below the source's size is OUT_OF_RANGE
    v = create(csi, pb, "big-src", required=8 * MiB)
    write_tree(daemon.data_dir("_/big-src"), {"f": os.urandom(3 * MiB)})
    s = snap(csi, "big-snap", v.volume_id)
    if s.size_bytes < 2:
        pytest.skip("snapshot size unknown (size_bytes %d)" % s.size_bytes)
    small = s.size_bytes // 2
    before = tree(daemon.root)
    expect_error(C.OUT_OF_RANGE, csi.CreateVolume,
                 create_req(pb, "tiny", required=small, limit=small,
                            source=("snapshot", s.snapshot_id)))
    assert tree(daemon.root) == before


def test_snapshot_size_bytes(csi, pb):
    v = create(csi, pb, "sz", required=6 * MiB)  # LVM: 8 MiB, two whole extents
    s = snap(csi, "sz-snap", v.volume_id)
    # spec: 0 = unknown; a volume restored from it must be at least size_bytes, and a volume
    # of the source's size must always be restorable
    assert 0 <= s.size_bytes <= v.capacity_bytes
    r = create(csi, pb, "sz-r", required=v.capacity_bytes, source=("snapshot", s.snapshot_id))
    assert r.capacity_bytes == v.capacity_bytes
    r = create(csi, pb, "sz-r2", source=("snapshot", s.snapshot_id))
    assert r.capacity_bytes >= s.size_bytes


def test_get_snapshot_if_implemented(csi, pb):
    # GET_SNAPSHOT is not advertised (csi-sanity v5.3.1 rejects it); if the RPC answers at all
    # it must answer correctly
    code, err = code_of(csi.GetSnapshot, snapshot_id="dir:@nope")
    if code == C.UNIMPLEMENTED:
        return
    assert code == C.NOT_FOUND, err
    expect_error(C.INVALID_ARGUMENT, csi.GetSnapshot, snapshot_id="")
    v = create(csi, pb, "gs", required=MiB)
    s = snap(csi, "gs-snap", v.volume_id)
    assert csi.GetSnapshot(snapshot_id=s.snapshot_id).snapshot == s
