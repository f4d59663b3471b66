"""The daemon as a process: flags, modes, socket, logging, signals, persistence across restarts,
concurrency, and robustness of the gRPC surface (unknown methods, malformed requests)."""

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time

import grpc
import pytest

from conftest import (BINARY, NODE_ID, SLOW, create, needs_dir_snapshots, read_tree, tree,
                      write_tree)
from csi_client import (MiB, TOPOLOGY_KEY, code_of, create_req, expect_error, mount_cap,
                        pvc_params)

C = grpc.StatusCode


def run_flags(args, workdir, timeout=10):
    sock = os.path.join(workdir, "flags.sock")
    root = os.path.join(workdir, "flags-root")
    os.makedirs(root, exist_ok=True)
    res = subprocess.run([BINARY] + args, capture_output=True, text=True,
                         timeout=timeout * SLOW, stdin=subprocess.DEVNULL)
    return res, sock


def base_args(workdir):
    return ["--endpoint", "unix://" + os.path.join(workdir, "flags.sock"), "--node-id", "n1",
            "--dir-root", os.path.join(workdir, "flags-root")]


# ---------------------------------------------------------------- flags

@pytest.mark.parametrize("extra", [
    ["--bogus"],
    ["--mode", "bad"],
    ["--mode"],
    ["--log-level", "loud"],
    ["--log-format", "xml"],
    ["--max-volumes-per-node", "abc"],
    ["--max-volumes-per-node", "-1"],
    ["--max-volumes-per-node", "99999999999999999999999"],
    ["positional-argument"],
    ["--node-id", "has space"],
    ["--node-id", "n" * 64],
    ["--driver-name", "not a driver name"],
    ["--driver-name", ""],
    ["--workers", "0"],
    ["--workers", "65"],
    ["--workers", "four"],
    ["--kube-api-qps", "0"],
    ["--kube-api-qps", "fast"],
    ["--kube-api-burst", "0"],
    ["--kubeconfig", ""],
    ["--leader-election-namespace", "Not_Valid"],
    ["--lvm-vg", "-vg"],
], ids=lambda a: " ".join(a)[:40])
def test_bad_flags_exit_2(workdir, extra):
    res, sock = run_flags(base_args(workdir) + extra, workdir)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert res.stderr.strip() != "", "no message on stderr"
    assert not os.path.exists(sock)
    if extra[0] == "--bogus":
        assert "bogus" in res.stderr


def test_endpoint_without_value_exit_2(workdir):
    res, _ = run_flags(["--node-id", "n1", "--endpoint"], workdir)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stderr.strip() != ""


def test_node_id_defaults_to_host_name(workdir, daemon_factory):
    """Without --node-id the node id is the host name, as kubelet names the node; a host name
    that is not a valid topology value is refused with exit 2."""
    import re
    import socket
    host = socket.gethostname()
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", host):
        d = daemon_factory(node_id=None)
        info = d.csi.NodeGetInfo()
        assert info.node_id == host
        assert dict(info.accessible_topology.segments) == {TOPOLOGY_KEY: host}
    else:
        args = ["--endpoint", "unix://" + os.path.join(workdir, "flags.sock"),
                "--dir-root", os.path.join(workdir, "flags-root")]
        res, sock = run_flags(args, workdir)
        assert res.returncode == 2, (res.returncode, res.stderr)
        assert "node-id" in res.stderr
        assert not os.path.exists(sock)


def test_version(workdir, daemon):
    res, _ = run_flags(["--version"], workdir)
    assert res.returncode == 0, res.stderr
    out = res.stdout.strip()
    assert out != ""
    assert any(ch.isdigit() for ch in out)
    vendor = daemon.csi.GetPluginInfo().vendor_version
    assert vendor in out, (vendor, out)


def test_help(workdir):
    res, _ = run_flags(["--help"], workdir)
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    for flag in ("--endpoint", "--node-id", "--mode", "--dir-root", "--log-level",
                 "--log-format", "--driver-name", "--max-volumes-per-node"):
        assert flag in text, flag


# ---------------------------------------------------------------- modes

NODE_RPCS = ["NodeStageVolume", "NodeUnstageVolume", "NodePublishVolume", "NodeUnpublishVolume",
             "NodeGetVolumeStats", "NodeExpandVolume", "NodeGetCapabilities", "NodeGetInfo"]


def test_controller_mode(daemon_factory, pb):
    d = daemon_factory(extra_args=["--mode", "controller"])
    csi = d.csi
    assert csi.GetPluginInfo().name == "ordinal.csi.dev"
    assert csi.Probe().ready.value is True
    assert len(csi.ControllerGetCapabilities().capabilities) > 0
    for rpc in NODE_RPCS:
        expect_error(C.UNIMPLEMENTED, getattr(csi, rpc))


def test_controller_mode_without_node_id(daemon_factory):
    d = daemon_factory(extra_args=["--mode", "controller"], node_id=None)
    assert d.csi.Probe().ready.value is True


def test_node_mode_explicit(daemon_factory):
    d = daemon_factory(extra_args=["--mode", "node"])
    assert d.csi.NodeGetInfo().node_id == NODE_ID


# ---------------------------------------------------------------- socket

def test_socket_mode(daemon):
    st = os.stat(daemon.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(stat.S_IMODE(st.st_mode))


def test_stale_socket_replaced(daemon_factory, workdir):
    path = os.path.join(workdir, "csi.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the file stays: a stale socket
    assert os.path.exists(path)
    d = daemon_factory()
    assert d.csi.Probe().ready.value is True


def test_sigkill_leaves_socket_restart_works(daemon):
    v = create(daemon.csi, daemon.pb, "survivor", required=MiB)
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait()
    daemon.proc = None
    daemon._close_channel()
    daemon.start()
    assert [e.volume.volume_id for e in daemon.csi.ListVolumes().entries] == [v.volume_id]


# ---------------------------------------------------------------- logging

def log_lines(d):
    return [ln for ln in d.log_text().splitlines() if ln.strip() and not ln.startswith("==== ")]


def exercise(csi, pb):
    create(csi, pb, "logged", required=MiB)
    code_of(csi.CreateVolume, create_req(pb, ""))
    csi.ListVolumes()
    csi.DeleteVolume(volume_id="dir:_/logged")


def test_log_format_json(daemon_factory, pb):
    d = daemon_factory(extra_args=["--log-format", "json"])
    exercise(d.csi, pb)
    d.stop()
    lines = log_lines(d)
    assert lines, "no log lines at --log-level debug"
    for ln in lines:
        try:
            obj = json.loads(ln)
        except ValueError:
            pytest.fail("log line is not JSON: %r" % ln)
        assert isinstance(obj, dict), ln


def test_log_level_error_is_quiet(daemon_factory, pb):
    # a normal workload (including a rejected request: the client's error, not ours) logs
    # nothing at --log-level error, and something at debug
    d = daemon_factory(log_level="error")
    exercise(d.csi, pb)
    d.stop()
    assert log_lines(d) == []
    dbg = daemon_factory(name="dbg")
    exercise(dbg.csi, pb)
    dbg.stop()
    assert len(log_lines(dbg)) > 0


def test_debug_log_does_not_leak_secrets(daemon_factory, pb):
    d = daemon_factory()
    req = create_req(pb, "secretive", required=MiB)
    req.secrets["password"] = "hunter2-SECRET-VALUE"
    d.csi.CreateVolume(req)
    req = pb.NodeStageVolumeRequest(volume_id="dir:_/secretive")
    req.secrets["token"] = "hunter2-SECRET-VALUE"
    code_of(d.csi.NodeStageVolume, req)
    d.stop()
    assert "hunter2-SECRET-VALUE" not in d.log_text()


HOSTILE_SECRET = "hunter2-MOUNT-SECRET"
HOSTILE_NAME = "evil\n2026-01-01T00:00:00.000Z error forged line\x1b[31m\x1b]0;title\x07\u009b2J"


def _hostile_calls(d, pb, tmp):
    """Requests that carry a secret in mount flags and control characters in names and paths;
    returns the status messages of the answers."""
    csi = d.csi
    messages = []

    def record(fn, *a, **kw):
        code, res = code_of(fn, *a, **kw)
        if code != C.OK:
            messages.append(res.details())
        return code, res

    vol = create(csi, pb, "hostile-ok", required=MiB)
    staging = os.path.join(tmp, "staging")
    target = os.path.join(tmp, "target")
    os.makedirs(staging, exist_ok=True)
    bad_caps = [mount_cap(pb, flags=["ro", "password=" + HOSTILE_SECRET]),
                mount_cap(pb, flags=["user=admin,password=" + HOSTILE_SECRET]),
                mount_cap(pb, flags=[HOSTILE_SECRET + "\n\x1b[2Jfake=1"])]
    for cap in bad_caps:
        code, _ = record(csi.NodeStageVolume, volume_id=vol.volume_id,
                         staging_target_path=staging, volume_capability=cap)
        assert code == C.INVALID_ARGUMENT
        code, _ = record(csi.NodePublishVolume, volume_id=vol.volume_id,
                         staging_target_path=staging, target_path=target, volume_capability=cap)
        assert code != C.OK
        record(csi.CreateVolume, create_req(pb, "hostile-flags", required=MiB, caps=[cap]))
    record(csi.CreateVolume, create_req(pb, HOSTILE_NAME, required=MiB))
    record(csi.ControllerGetVolume, volume_id="dir:" + HOSTILE_NAME)
    record(csi.DeleteVolume, volume_id=HOSTILE_NAME)
    record(csi.NodeStageVolume, volume_id="dir:_/" + HOSTILE_NAME,
           staging_target_path="/tmp/" + HOSTILE_NAME, volume_capability=mount_cap(pb))
    record(csi.NodeUnpublishVolume, volume_id=vol.volume_id,
           target_path="/tmp/" + HOSTILE_NAME + "/x")
    record(csi.NodeGetVolumeStats, volume_id=vol.volume_id, volume_path="/" + HOSTILE_NAME)
    record(csi.CreateSnapshot, name=HOSTILE_NAME, source_volume_id="dir:_/" + HOSTILE_NAME)
    csi.DeleteVolume(volume_id=vol.volume_id)
    return messages


def _raw_controls(text):
    """Control characters other than the newlines that end lines: C0, DEL, C1, U+2028/9."""
    return [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f
            or c in "\u2028\u2029"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_hostile_input_leaves_no_secret_and_no_control_in_logs(daemon_factory, pb, workdir, fmt):
    d = daemon_factory(extra_args=["--log-format", fmt], name=fmt)
    messages = _hostile_calls(d, pb, os.path.join(workdir, fmt))
    d.stop()
    log = d.log_text()
    assert messages, "the hostile requests were all accepted"
    for m in messages:
        assert HOSTILE_SECRET not in m, m
        assert not _raw_controls(m), "raw control characters in a status message: %r" % m
    assert HOSTILE_SECRET not in log
    assert "password" in log  # the option's name is logged, its value never
    assert not _raw_controls(log), "raw control characters in the log: %r" % _raw_controls(log)
    for ln in log_lines(d):
        assert "forged line" not in ln or not ln.startswith("2026-01-01"), \
            "a request field started a log line: %r" % ln
        if fmt == "json":
            json.loads(ln)


# ---------------------------------------------------------------- signals

def test_sigterm_with_idle_client_connection(daemon):
    daemon.csi.Probe()
    daemon.stop(close_channel=False)  # asserts exit 0 and socket removed


def test_sigterm_during_inflight_calls(daemon, pb):
    # three clones of three 24 MiB sources are still copying when SIGTERM arrives
    csi = daemon.csi
    blob = os.urandom(MiB)
    sources = []
    for i in range(3):
        src = create(csi, pb, "bigsrc-%d" % i, required=256 * MiB)
        for j in range(24):
            with open(os.path.join(daemon.data_dir("_/bigsrc-%d" % i), "f%02d" % j), "wb") as f:
                f.write(blob)
        sources.append(src)
    futures = [csi.future("CreateVolume", create_req(pb, "clone-%d" % i, required=256 * MiB,
                                                     source=("volume", src.volume_id)))
               for i, src in enumerate(sources)]
    # SIGTERM once a clone is being built (in the backend's .tmp/), unless all are done already
    tmp = os.path.join(daemon.root, ".tmp")
    deadline = time.monotonic() + 30 * SLOW
    while not (os.path.isdir(tmp) and os.listdir(tmp)) and not all(f.done() for f in futures):
        assert time.monotonic() < deadline, "no clone began within %.0f s" % (30 * SLOW)
        time.sleep(0.001)
    daemon.stop(close_channel=False)  # asserts exit 0 within the timeout, socket removed
    outcomes = {}
    for i, f in enumerate(futures):
        try:
            outcomes[i] = (C.OK, f.result(timeout=5))
        except grpc.RpcError as e:
            outcomes[i] = (e.code(), e)
        except grpc.FutureTimeoutError:
            pytest.fail("a call is still pending after the daemon exited")
    daemon.start()
    listed = {e.volume.volume_id for e in daemon.csi.ListVolumes().entries}
    for i, (code, _res) in outcomes.items():
        vid = "dir:_/clone-%d" % i
        if code == C.OK:
            assert vid in listed, "acknowledged CreateVolume lost across a SIGTERM"
        if vid in listed:
            assert read_tree(daemon.data_dir("_/clone-%d" % i)) == read_tree(
                daemon.data_dir("_/bigsrc-%d" % i)), "half-copied clone survived"
        else:
            assert not os.path.exists(daemon.vol_dir("_/clone-%d" % i)), \
                "leftover directory of a volume that does not exist"
        # whatever happened, the CO's retry completes the clone
        code, res = code_of(daemon.csi.CreateVolume,
                            create_req(pb, "clone-%d" % i, required=256 * MiB,
                                       source=("volume", sources[i].volume_id)))
        assert code == C.OK, res
        assert read_tree(daemon.data_dir("_/clone-%d" % i)) == read_tree(
            daemon.data_dir("_/bigsrc-%d" % i))


# ---------------------------------------------------------------- persistence

def test_persistence_across_restart(daemon, pb):
    csi = daemon.csi
    a = create(csi, pb, "keep-a", required=2 * MiB)
    write_tree(daemon.data_dir("_/keep-a"), {"file": b"persisted"})
    b = create(csi, pb, "pvc-b", required=MiB, params=pvc_params("ns", "www-web-0"))
    long_name = "L" * 128
    c = create(csi, pb, long_name, required=MiB)
    s = csi.CreateSnapshot(name="keep-snap", source_volume_id=a.volume_id).snapshot
    r = create(csi, pb, "keep-r", required=2 * MiB, source=("snapshot", s.snapshot_id))
    exp = pb.ControllerExpandVolumeRequest(volume_id=b.volume_id)
    exp.capacity_range.required_bytes = 5 * MiB
    csi.ControllerExpandVolume(exp)
    vols_before = {e.volume.volume_id: e.volume for e in csi.ListVolumes().entries}
    snaps_before = {e.snapshot.snapshot_id: e.snapshot for e in csi.ListSnapshots().entries}
    assert len(vols_before) == 4 and len(snaps_before) == 1

    daemon.restart()
    csi = daemon.csi

    vols_after = {e.volume.volume_id: e.volume for e in csi.ListVolumes().entries}
    assert sorted(vols_after) == sorted(vols_before)
    for vid, v in vols_before.items():
        assert vols_after[vid] == v, "volume %s changed across restart" % vid
    assert vols_after[b.volume_id].capacity_bytes == 5 * MiB
    assert vols_after[r.volume_id].content_source.snapshot.snapshot_id == s.snapshot_id
    snaps_after = {e.snapshot.snapshot_id: e.snapshot for e in csi.ListSnapshots().entries}
    assert snaps_after == snaps_before
    # idempotency keys survived
    assert create(csi, pb, "keep-a", required=2 * MiB).volume_id == a.volume_id
    assert create(csi, pb, long_name, required=MiB).volume_id == c.volume_id
    assert create(csi, pb, "pvc-b", required=MiB,
                  params=pvc_params("ns", "www-web-0")).volume_id == b.volume_id
    assert csi.CreateSnapshot(name="keep-snap",
                              source_volume_id=a.volume_id).snapshot.snapshot_id == s.snapshot_id
    expect_error(C.ALREADY_EXISTS, csi.CreateSnapshot, name="keep-snap",
                 source_volume_id=b.volume_id)
    # content and restore after restart
    r2 = create(csi, pb, "keep-r2", required=2 * MiB, source=("snapshot", s.snapshot_id))
    assert read_tree(daemon.data_dir("_/keep-r2")) == {"file": b"persisted"}
    # delete everything by id
    for vid in list(vols_after) + [r2.volume_id]:
        csi.DeleteVolume(volume_id=vid)
    csi.DeleteSnapshot(snapshot_id=s.snapshot_id)
    assert list(csi.ListVolumes().entries) == []
    assert list(csi.ListSnapshots().entries) == []
    for key in ("_/keep-a", "ns/www-web-0", "_/" + long_name, "_/keep-r", "_/keep-r2"):
        assert not os.path.exists(daemon.vol_dir(key)), key


def test_volume_found_after_restart_by_id_only(daemon, pb):
    # DESIGN: the volume_id alone finds the volume after a restart with no other state
    csi = daemon.csi
    ids = [create(csi, pb, "pvc-%d" % i, required=MiB,
                  params=pvc_params("prod", "data-db-%d" % i)).volume_id for i in range(3)]
    ids.append(create(csi, pb, "pvc-long", required=MiB,
                      params=pvc_params("prod", "x" * 200)).volume_id)
    daemon.restart()
    for vid in ids:
        assert daemon.csi.ControllerGetVolume(volume_id=vid).volume.volume_id == vid
    for vid in ids:
        daemon.csi.DeleteVolume(volume_id=vid)
    assert list(daemon.csi.ListVolumes().entries) == []


# ---------------------------------------------------------------- concurrency

def fire(csi, calls):
    """Start every (method, request) at once; returns [(code, response-or-error)]."""
    futures = [csi.future(m, r) for m, r in calls]
    out = []
    for f in futures:
        try:
            out.append((C.OK, f.result()))
        except grpc.RpcError as e:
            out.append((e.code(), e))
    return out


def retry(fn, req, tries=50):
    for _ in range(tries):
        code, res = code_of(fn, req)
        if code != C.ABORTED:
            return code, res
        time.sleep(0.05)
    return code, res


def test_concurrent_create_same_name(csi, pb, daemon):
    for round_ in range(5):
        name = "race-%d" % round_
        req = create_req(pb, name, required=MiB)
        results = fire(csi, [("CreateVolume", req)] * 8)
        codes = [c for c, _ in results]
        assert set(codes) <= {C.OK, C.ABORTED}, [(c, str(r)) for c, r in results]
        assert C.OK in codes
        ids = {r.volume.volume_id for c, r in results if c == C.OK}
        assert ids == {"dir:_/" + name}
        code, res = retry(csi.CreateVolume, req)
        assert code == C.OK and res.volume.volume_id == "dir:_/" + name
    assert sorted(e.volume.volume_id for e in csi.ListVolumes().entries) == [
        "dir:_/race-%d" % i for i in range(5)]


def test_concurrent_delete_same_id(csi, pb, daemon):
    v = create(csi, pb, "del-race", required=MiB)
    write_tree(daemon.data_dir("_/del-race"), {"f%d" % i: b"x" * 10000 for i in range(50)})
    results = fire(csi, [("DeleteVolume", pb.DeleteVolumeRequest(volume_id=v.volume_id))] * 8)
    codes = [c for c, _ in results]
    assert set(codes) <= {C.OK, C.ABORTED}, [(c, str(r)) for c, r in results]
    code, _ = retry(csi.DeleteVolume, pb.DeleteVolumeRequest(volume_id=v.volume_id))
    assert code == C.OK
    assert list(csi.ListVolumes().entries) == []
    assert not os.path.exists(daemon.vol_dir("_/del-race"))


def test_concurrent_create_delete_same_name(csi, pb, daemon):
    name = "flip"
    vid = "dir:_/" + name
    creq = create_req(pb, name, required=MiB)
    dreq = pb.DeleteVolumeRequest(volume_id=vid)
    for _ in range(5):
        results = fire(csi, [("CreateVolume", creq), ("DeleteVolume", dreq)] * 4)
        assert {c for c, _ in results} <= {C.OK, C.ABORTED}, [(c, str(r)) for c, r in results]
        listed = [e.volume.volume_id for e in csi.ListVolumes().entries]
        assert listed in ([], [vid])
        if listed:
            assert os.path.isdir(daemon.data_dir("_/" + name))
            assert os.path.isfile(os.path.join(daemon.vol_dir("_/" + name), "volume.meta"))
            assert csi.ControllerGetVolume(volume_id=vid).volume.volume_id == vid
        else:
            assert not os.path.exists(daemon.vol_dir("_/" + name))
            expect_error(C.NOT_FOUND, csi.ControllerGetVolume, volume_id=vid)
    code, _ = retry(csi.CreateVolume, creq)
    assert code == C.OK
    assert [e.volume.volume_id for e in csi.ListVolumes().entries] == [vid]
    code, _ = retry(csi.DeleteVolume, dreq)
    assert code == C.OK
    assert not os.path.exists(daemon.vol_dir("_/" + name))
    leftovers = tree(os.path.join(daemon.root, "_")) if os.path.isdir(
        os.path.join(daemon.root, "_")) else []
    assert leftovers == [], leftovers


def test_concurrent_create_distinct_names(csi, pb):
    # unrelated volumes never get ABORTED
    reqs = [("CreateVolume", create_req(pb, "par-%d" % i, required=MiB)) for i in range(12)]
    results = fire(csi, reqs)
    assert [c for c, _ in results] == [C.OK] * 12, [(c, str(r)) for c, r in results]
    assert len(csi.ListVolumes().entries) == 12


def test_concurrent_deletes_in_one_namespace_leave_nothing(csi, pb, daemon):
    """Deletes racing in one namespace: the last one removes the namespace directory while the
    others still sync it. Every volume must be gone for good, nothing left in .trash."""
    for rnd in range(3):
        ids = [csi.CreateVolume(create_req(pb, "pvc-%d-%d" % (rnd, i), required=MiB,
                                           params=pvc_params("race", "www-web-%d" % i)))
               .volume.volume_id for i in range(16)]
        results = fire(csi, [("DeleteVolume", pb.DeleteVolumeRequest(volume_id=v)) for v in ids])
        assert [c for c, _ in results] == [C.OK] * 16, [(c, str(r)) for c, r in results]
        assert os.listdir(os.path.join(daemon.root, ".trash")) == []
        assert not os.path.exists(os.path.join(daemon.root, "race"))
        assert len(csi.ListVolumes().entries) == 0


def test_concurrent_restores_from_one_snapshot(csi, pb, daemon):
    # a StatefulSet whose claim template has a dataSource: N restores of one snapshot at once.
    # ABORTED is allowed (the source is busy) but a retry must succeed, and every copy is whole
    v = create(csi, pb, "golden", required=MiB)
    write_tree(daemon.data_dir("_/golden"), {"seed": b"golden data"})
    s = csi.CreateSnapshot(name="golden-snap", source_volume_id=v.volume_id).snapshot
    reqs = [create_req(pb, "replica-%d" % i, required=MiB, source=("snapshot", s.snapshot_id))
            for i in range(6)]
    results = fire(csi, [("CreateVolume", r) for r in reqs])
    assert {c for c, _ in results} <= {C.OK, C.ABORTED}, [(c, str(r)) for c, r in results]
    for r in reqs:
        code, res = retry(csi.CreateVolume, r)
        assert code == C.OK, res
        assert read_tree(daemon.data_dir("_/" + r.name)) == {"seed": b"golden data"}


@needs_dir_snapshots
def test_concurrent_create_snapshot_same_name(csi, pb):
    v = create(csi, pb, "snap-race-src", required=MiB)
    req = pb.CreateSnapshotRequest(name="snap-race", source_volume_id=v.volume_id)
    results = fire(csi, [("CreateSnapshot", req)] * 8)
    codes = [c for c, _ in results]
    assert set(codes) <= {C.OK, C.ABORTED}, [(c, str(r)) for c, r in results]
    assert C.OK in codes
    assert len({r.snapshot.snapshot_id for c, r in results if c == C.OK}) == 1
    assert len(csi.ListSnapshots().entries) == 1


@needs_dir_snapshots
def test_concurrent_mixed_load(csi, pb, daemon):
    # many threads doing whole create/list/snapshot/delete cycles on their own names
    errors = []

    def worker(i):
        try:
            for j in range(5):
                name = "load-%d-%d" % (i, j)
                v = create(csi, pb, name, required=MiB)
                csi.ListVolumes(max_entries=3)
                s = csi.CreateSnapshot(name="s-" + name, source_volume_id=v.volume_id).snapshot
                csi.ControllerGetVolume(volume_id=v.volume_id)
                csi.DeleteSnapshot(snapshot_id=s.snapshot_id)
                csi.DeleteVolume(volume_id=v.volume_id)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120 * SLOW)
    assert not errors, errors
    assert list(csi.ListVolumes().entries) == []
    assert list(csi.ListSnapshots().entries) == []


# ---------------------------------------------------------------- the gRPC surface

@pytest.mark.parametrize("path", [
    "/csi.v1.Controller/Nope",
    "/csi.v1.Nope/Probe",
    "/csi.v1.GroupController/GroupControllerGetCapabilities",
    "/csi.v1.SnapshotMetadata/GetMetadataAllocated",
    "/csi.v0.Identity/Probe",
])
def test_unknown_method(csi, path):
    expect_error(C.UNIMPLEMENTED, csi.raw, path, b"")
    assert csi.Probe().ready.value is True


def test_unknown_fields_are_skipped(csi, pb):
    body = create_req(pb, "unknown-fields", required=MiB).SerializeToString()
    body += bytes([0x98, 0x06, 0x01])               # field 99, varint 1
    body += bytes([0xA2, 0x06, 0x03]) + b"abc"      # field 100, bytes "abc"
    raw = csi.raw("/csi.v1.Controller/CreateVolume", body)
    v = pb.CreateVolumeResponse.FromString(raw).volume
    assert v.volume_id == "dir:_/unknown-fields"
    assert v.capacity_bytes == MiB


def test_unknown_enum_value_is_unsupported(csi, pb):
    cap = mount_cap(pb)
    cap.access_mode.mode = 42
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "enum42", required=MiB, caps=[cap]))


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x0a\x7f", b"\x0a\x05ab",
                                     b"\x12\xff\xff\xff\xff\x0f"], ids=["tag", "short", "trunc",
                                                                         "huge-len"])
def test_malformed_request(csi, payload):
    code, err = code_of(csi.raw, "/csi.v1.Controller/CreateVolume", payload)
    assert code in (C.INVALID_ARGUMENT, C.INTERNAL), (code, err)
    assert err.details()
    assert csi.Probe().ready.value is True
    assert list(csi.ListVolumes().entries) == []


def test_oversized_name(csi, pb):
    code, err = code_of(csi.CreateVolume, create_req(pb, "n" * (1 * MiB), required=MiB))
    assert code in (C.INVALID_ARGUMENT, C.RESOURCE_EXHAUSTED), (code, err)
    assert csi.Probe().ready.value is True


def test_many_mount_flags_rejected(csi, pb):
    # spec 1.5: mount_flags are limited to 4 KiB in total
    cap = mount_cap(pb, flags=["noatime"] * 1000)
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "flags", required=MiB, caps=[cap]))


def test_parameters_over_4k_rejected(csi, pb):
    params = {"csi.storage.k8s.io/x%03d" % i: "v" * 60 for i in range(100)}
    expect_error(C.INVALID_ARGUMENT, csi.CreateVolume,
                 create_req(pb, "bigparams", required=MiB, params=params))


def test_unreadable_kubeconfig_exits_1_with_a_message(workdir):
    res, sock = run_flags(base_args(workdir) + ["--kubeconfig", "/nonexistent/kubeconfig"],
                          workdir)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "kubeconfig /nonexistent/kubeconfig" in res.stderr
    assert not os.path.exists(sock)
