"""Crash-safety test of the dir backend: kill -9 the daemon at random instants of each controller
operation, restart it on the same root and check that nothing is ever half made or leaked.

For each operation kind the test calibrates one uncrashed run, then repeats: start ordinal-csi on
a fresh root, set up the preconditions, issue the RPC asynchronously, SIGKILL the daemon after a
delay drawn from [0, ~2x the operation's duration], look at what the crash left (work in progress
in .tmp/.trash = a crash "during"), restart, wait for Probe, then check:

  1. .tmp/ and .trash/ are empty after recovery;
  2. every directory at a final location (<root>/<ns>/<claim>, <root>/_/<name>,
     <root>/.snapshots/<name>) holds exactly data/ and a valid meta file, nothing else is in the
     root, and ListVolumes / ListSnapshots list exactly those ids;
  3. create, restore, clone, snapshot: the result is absent or whole (its data/ matches the
     source manifest: file set, sizes, modes, sha256, symlinks);
  4. delete: the volume or snapshot is fully there (data intact) or fully gone;
  5. expand: the capacity is the old or the new value, in ListVolumes and in volume.meta;
  6. retrying the same RPC succeeds with a whole result, and deleting everything then leaves
     nothing in the root but the empty bookkeeping directories (no leak).

Environment (ctest sets the first four like tests/csi):
    ORDINAL_CSI, ORDINAL_SOURCE, ORDINAL_BUILD, ORDINAL_SANITIZE
    ORDINAL_CRASH_SEED        random seed (default 1337), printed
    ORDINAL_CRASH_ITERATIONS  crashed iterations per kind (default 20; 10 under a sanitizer)
    ORDINAL_CRASH_KEEP        "1": keep the work directory (under /tmp) for inspection

Run: /usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/crash
"""

import hashlib
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crash_client as cc  # noqa: E402

grpc = cc.grpc

SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BINARY = os.environ.get("ORDINAL_CSI") or os.path.join(SOURCE, "build", "debug", "ordinal-csi")
SANITIZE = os.environ.get("ORDINAL_SANITIZE", "")
SLOW = 3.0 if SANITIZE else 1.0
SEED = int(os.environ.get("ORDINAL_CRASH_SEED", "1337"))
# Under a sanitizer every start and recovery costs about 3x: half the kill points (the debug
# pass runs all 20 per kind; these look for memory errors on the same paths).
ITERATIONS = int(os.environ.get("ORDINAL_CRASH_ITERATIONS", "10" if SANITIZE else "20"))
KEEP = os.environ.get("ORDINAL_CRASH_KEEP") == "1"

GiB = 1 << 30
N_FILES = 200
FILE_SIZE = 64 * 1024
NS = "crash"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="crash test needs root (the daemon's dir root is 0700 root-owned "
                              "and the daemon checks mounts as root)"),
]

# kind -> {"outcomes": {name: count}, "mid": n, "iterations": n, "calib_ms": x, "violations": [..]}
RESULTS = {}


# ---------------------------------------------------------------- content and manifests

_CONTENT = None


def content():
    """The source tree: {rel: bytes} for files, plus dirs, an empty file and a symlink."""
    global _CONTENT
    if _CONTENT is None:
        rng = random.Random(SEED)
        files = {}
        for i in range(N_FILES):
            files["d%d/f%03d.bin" % (i % 4, i)] = rng.randbytes(FILE_SIZE)
        files["empty"] = b""
        _CONTENT = files
    return _CONTENT


def populate(data_dir, n_files=None):
    """Write the source tree into data_dir (which exists); returns its manifest."""
    files = content()
    items = sorted(files.items())
    if n_files is not None:
        items = items[:n_files]
    for rel, b in items:
        p = os.path.join(data_dir, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(b)
        os.chmod(p, 0o640 if rel.endswith("7.bin") else 0o644)
    os.makedirs(os.path.join(data_dir, "emptydir"), exist_ok=True)
    os.symlink("d0/f000.bin", os.path.join(data_dir, "link"))
    os.sync()
    return manifest(data_dir)


def manifest(path):
    """{rel: description} of everything below path, not following symlinks; file contents
    hashed, so a truncated or partly written file shows."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, path)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d",)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
                out[rel] = ("f", st.st_size, stat.S_IMODE(st.st_mode), h)
            else:
                out[rel] = ("?", stat.S_IFMT(st.st_mode))
    return out


def manifest_diff(want, got, limit=6):
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    parts = []
    if missing:
        parts.append("%d missing (%s)" % (len(missing), ", ".join(missing[:limit])))
    if extra:
        parts.append("%d extra (%s)" % (len(extra), ", ".join(extra[:limit])))
    if changed:
        def desc(t):
            if t[0] == "f":
                return "%d bytes mode %o sha256 %s" % (t[1], t[2], t[3][:12])
            return repr(t)
        parts.append("%d differ (%s)" % (len(changed), "; ".join(
            "%s: want %s, got %s" % (k, desc(want[k]), desc(got[k])) for k in changed[:limit])))
    return ", ".join(parts) or "identical"


def tree(path):
    """Sorted relative paths below path (for reports)."""
    res = []
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            res.append(os.path.relpath(os.path.join(dirpath, n), path))
    return sorted(res)


def short_tree(path, limit=25):
    t = [p for p in tree(path) if "/data/" not in p and p.count("/") <= 3]
    s = ", ".join(t[:limit])
    return s + (" ... (%d more)" % (len(t) - limit) if len(t) > limit else "")


class Violation(Exception):
    pass


def parse_meta(path, required):
    """Parse a meta file: first line version=1 (version=2: sealed volume meta), then k=v lines, newline-terminated."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Violation("%s: cannot read: %s" % (path, e))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Violation("%s: not UTF-8: %r" % (path, raw[:80]))
    if not text.endswith("\n"):
        raise Violation("%s: not newline-terminated (torn write?): %r" % (path, text[-80:]))
    lines = text[:-1].split("\n")
    if lines[0] not in ("version=1", "version=2"):
        raise Violation("%s: first line %r, want version=1 or 2" % (path, lines[0]))
    kv = {}
    for ln in lines[1:]:
        k, sep, v = ln.partition("=")
        if not sep or not k:
            raise Violation("%s: garbled line %r" % (path, ln))
        kv[k] = v
    for k in required:
        if k not in kv:
            raise Violation("%s: required key %r missing: %r" % (path, k, text))
    return kv


# ---------------------------------------------------------------- the daemon

class Daemon:
    def __init__(self, workdir, root):
        self.workdir = workdir
        self.root = root
        self.sock = os.path.join(workdir, "csi.sock")
        self.log_path = root + ".log"
        self.proc = None
        self.channel = None
        self.csi = None
        self.starts = 0

    def _sock_ino(self):
        try:
            st = os.lstat(self.sock)
            return (st.st_ino, st.st_ctime_ns)
        except FileNotFoundError:
            return None

    def start(self):
        assert self.proc is None
        stale = self._sock_ino()
        with open(self.log_path, "ab") as log:
            log.write(("\n==== start %d root %s\n" % (self.starts, self.root)).encode())
            log.flush()
            self.proc = subprocess.Popen(
                [BINARY, "--endpoint", "unix://" + self.sock, "--node-id", "test-node",
                 "--dir-root", self.root, "--log-level", "debug"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + 15.0 * SLOW
        # the killed daemon's socket file may still be there: wait for the new one
        while self._sock_ino() in (None, stale) and time.monotonic() < deadline \
                and self.proc.poll() is None:
            time.sleep(0.002)
        # short reconnect backoff: the socket of the killed daemon may be there for a moment
        self.channel = grpc.insecure_channel("unix://" + self.sock, options=[
            ("grpc.initial_reconnect_backoff_ms", 20), ("grpc.min_reconnect_backoff_ms", 20),
            ("grpc.max_reconnect_backoff_ms", 100), ("grpc.use_local_subchannel_pool", 1)])
        self.csi = cc.Csi(self.channel, timeout=60.0 * SLOW)
        fresh_at = time.monotonic() + 5.0 * SLOW
        while time.monotonic() < deadline:
            if time.monotonic() > fresh_at:
                # Seen once at load 14: a daemon that logged ready and no Probe for 15 s. A
                # raw connect tells the daemon's side from this channel's; the channel is
                # made again once (what a kubelet does on its next attempt), and what was
                # seen goes to the log, so that a repeat says where it stuck.
                fresh_at = deadline + 1
                raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                raw.settimeout(1.0)
                try:
                    raw.connect(self.sock)
                    seen = "a raw connect to the socket succeeds"
                except OSError as e:
                    seen = "a raw connect to the socket fails: %s" % e
                finally:
                    raw.close()
                with open(self.log_path, "ab") as log:
                    log.write(("==== test: no Probe answer for 5 s; %s; new channel\n"
                               % seen).encode())
                self.channel.close()
                self.channel = grpc.insecure_channel("unix://" + self.sock, options=[
                    ("grpc.use_local_subchannel_pool", 1)])
                self.csi = cc.Csi(self.channel, timeout=60.0 * SLOW)

            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise Violation("ordinal-csi exited with %d during start-up\n%s"
                                % (rc, self.log_tail()))
            try:
                r = self.csi.call("Probe", timeout=1.0)
                if not r.HasField("ready") or r.ready.value:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.02)
        self.kill()
        raise Violation("ordinal-csi did not answer Probe within %.0f s\n%s"
                        % (15.0 * SLOW, self.log_tail()))

    def _close(self):
        if self.channel is not None:
            self.channel.close()
        self.channel = None

    def kill(self):
        """SIGKILL (kill -9) and reap."""
        if self.proc is not None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None
        self._close()

    def stop(self):
        """SIGTERM; returns the exit code."""
        if self.proc is None:
            return 0
        self._close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(15.0 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self.proc = None
        return rc

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return ""
        return "---- daemon log (%s) ----\n%s" % (self.log_path, "\n".join(lines[-n:]))


# ---------------------------------------------------------------- state of the root

def vol_id(key_rel):
    return "dir:" + key_rel


def snap_id(name):
    return "dir:@" + name


def scan_root(d):
    """Check invariants 1 and 2 on disk and against ListVolumes/ListSnapshots.

    Returns (vols, snaps): {id: {"path", "meta"}}, {id: {"path", "meta"}}."""
    root = d.root
    errs = []
    vols, snaps = {}, {}

    def check_entry(path, meta_name, want_id, required):
        names = sorted(os.listdir(path))
        if names != sorted(["data", meta_name]):
            errs.append("%s holds %s, want exactly data/ and %s"
                        % (os.path.relpath(path, root), names, meta_name))
        if not os.path.isdir(os.path.join(path, "data")) or \
                os.path.islink(os.path.join(path, "data")):
            errs.append("%s/data is not a directory" % os.path.relpath(path, root))
        try:
            kv = parse_meta(os.path.join(path, meta_name), required)
        except Violation as e:
            errs.append(str(e))
            return None
        if kv.get("id") != want_id:
            errs.append("%s: id=%r, want %r" % (os.path.join(path, meta_name), kv.get("id"),
                                                 want_id))
        return kv

    for top in sorted(os.listdir(root)):
        p = os.path.join(root, top)
        if top in (".tmp", ".trash"):
            left = os.listdir(p)
            if left:
                errs.append("invariant 1: %s/ not empty after recovery: %s"
                            % (top, sorted(left)[:10]))
            continue
        if not os.path.isdir(p) or os.path.islink(p):
            errs.append("stray non-directory in root: %s" % top)
            continue
        if top == ".snapshots":
            for n in sorted(os.listdir(p)):
                kv = check_entry(os.path.join(p, n), "snapshot.meta", snap_id(n), ("id", "name"))
                snaps[snap_id(n)] = {"path": os.path.join(p, n), "meta": kv}
            continue
        if top.startswith("."):
            errs.append("unexpected entry in root: %s (%s)" % (top, tree(p)[:10]))
            continue
        children = sorted(os.listdir(p))
        if not children and top != "_":
            errs.append("empty namespace directory left: %s" % top)
        for n in children:
            vp = os.path.join(p, n)
            if not os.path.isdir(vp) or os.path.islink(vp):
                errs.append("stray non-directory at a volume location: %s/%s" % (top, n))
                continue
            kv = check_entry(vp, "volume.meta", vol_id(top + "/" + n),
                             ("id", "key", "name", "capacity"))
            if kv is not None:
                try:
                    if int(kv["capacity"]) <= 0:
                        raise ValueError
                except ValueError:
                    errs.append("%s/%s/volume.meta: capacity=%r" % (top, n, kv["capacity"]))
            vols[vol_id(top + "/" + n)] = {"path": vp, "meta": kv}

    listed_v = {}
    for e in d.csi.list_all("ListVolumes"):
        vid = e.volume.volume_id
        if vid in listed_v:
            errs.append("ListVolumes lists %s twice" % vid)
        listed_v[vid] = e
        if e.HasField("status") and e.status.HasField("volume_condition") and \
                e.status.volume_condition.abnormal:
            errs.append("ListVolumes: %s abnormal: %s" % (vid, e.status.volume_condition.message))
    listed_s = {}
    for e in d.csi.list_all("ListSnapshots"):
        sid = e.snapshot.snapshot_id
        if sid in listed_s:
            errs.append("ListSnapshots lists %s twice" % sid)
        listed_s[sid] = e
    if set(listed_v) != set(vols):
        errs.append("invariant 2: ListVolumes %s != volume dirs on disk %s"
                    % (sorted(listed_v), sorted(vols)))
    if set(listed_s) != set(snaps):
        errs.append("invariant 2: ListSnapshots %s != snapshot dirs on disk %s"
                    % (sorted(listed_s), sorted(snaps)))
    for vid, v in vols.items():
        if vid in listed_v and v["meta"] and "capacity" in v["meta"]:
            if str(listed_v[vid].volume.capacity_bytes) != v["meta"]["capacity"]:
                errs.append("%s: ListVolumes capacity %d, volume.meta capacity %s"
                            % (vid, listed_v[vid].volume.capacity_bytes,
                               v["meta"]["capacity"]))
        v["listed"] = listed_v.get(vid)
    for sid, s in snaps.items():
        s["listed"] = listed_s.get(sid)
        if s["listed"] is not None and not s["listed"].snapshot.ready_to_use:
            errs.append("%s: listed but not ready_to_use" % sid)
    if errs:
        raise Violation("; ".join(errs))
    return vols, snaps


def check_data(path, want, what):
    got = manifest(path)
    if got != want:
        raise Violation("%s: data is not whole: %s" % (what, manifest_diff(want, got)))


def pre_restart_state(root):
    """What the crash left, before recovery: work in progress and stray meta temporaries."""
    wip = []
    for top in (".tmp", ".trash"):
        p = os.path.join(root, top)
        if os.path.isdir(p):
            wip += [top + "/" + n for n in os.listdir(p)]
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if "/data" in "/" + rel or rel.startswith((".tmp", ".trash")):
            dirnames[:] = []
            continue
        wip += [os.path.join(rel, f) for f in filenames if f.endswith(".tmp")]
    return wip


# ---------------------------------------------------------------- operation kinds

def cap_req(pb, b):
    return pb.CapacityRange(required_bytes=b)


class Kind:
    """An operation under test. Subclasses set name, outcomes and implement the hooks."""
    name = ""
    outcomes = ("absent", "whole")
    must_hit = True

    def setup(self, d, it):
        """Preconditions (uncrashed); returns a context dict."""
        return {}

    def request(self, d, ctx):
        """(method, request message)."""
        raise NotImplementedError

    def classify(self, d, ctx, vols, snaps):
        """After restart: outcome name, raising Violation for a half state."""
        raise NotImplementedError

    def check_retry(self, d, ctx, resp, vols, snaps):
        """After a successful retry: check the result is whole."""
        raise NotImplementedError


def create_vol(d, name, params=None, source=None):
    req = cc.create_req(name, required=GiB, params=params, source=source)
    return d.csi.call("CreateVolume", req).volume


def source_volume(d, name, n_files=None):
    """A volume made by CreateVolume whose data/ is filled directly on disk."""
    v = create_vol(d, name)
    data = os.path.join(d.root, "_", name, "data")
    return v, populate(data, n_files)


class CreatePlain(Kind):
    name = "create_plain"

    def setup(self, d, it):
        return {"name": "vol-plain", "id": vol_id("_/vol-plain"), "want": {}}

    def request(self, d, ctx):
        return "CreateVolume", cc.create_req(ctx["name"], required=GiB)

    def classify(self, d, ctx, vols, snaps):
        v = vols.get(ctx["id"])
        if v is None:
            return "absent"
        check_data(os.path.join(v["path"], "data"), ctx["want"], ctx["id"])
        if v["meta"]["capacity"] != str(GiB):
            raise Violation("%s: capacity %s, want %d" % (ctx["id"], v["meta"]["capacity"], GiB))
        if v["meta"]["name"] != ctx["name"]:
            raise Violation("%s: name %r, want %r" % (ctx["id"], v["meta"]["name"], ctx["name"]))
        return "whole"

    def check_retry(self, d, ctx, resp, vols, snaps):
        if resp.volume.volume_id != ctx["id"]:
            raise Violation("retry returned %s, want %s" % (resp.volume.volume_id, ctx["id"]))
        if resp.volume.capacity_bytes != GiB:
            raise Violation("retry: capacity %d" % resp.volume.capacity_bytes)
        if self.classify(d, ctx, vols, snaps) != "whole":
            raise Violation("retry succeeded but %s is not on disk" % ctx["id"])


class CreatePvc(CreatePlain):
    name = "create_pvc"

    def setup(self, d, it):
        return {"name": "pvc-%08x" % it, "id": vol_id("%s/www-web-0" % NS), "want": {},
                "params": cc.pvc_params(NS, "www-web-0")}

    def request(self, d, ctx):
        return "CreateVolume", cc.create_req(ctx["name"], required=GiB, params=ctx["params"])


class Clone(CreatePlain):
    name = "clone"

    def setup(self, d, it):
        src, want = source_volume(d, "src")
        return {"name": "vol-clone", "id": vol_id("_/vol-clone"), "want": want,
                "src": src.volume_id}

    def request(self, d, ctx):
        return "CreateVolume", cc.create_req(ctx["name"], required=GiB,
                                             source=("volume", ctx["src"]))

    def classify(self, d, ctx, vols, snaps):
        if ctx["src"] not in vols:
            raise Violation("source volume %s vanished" % ctx["src"])
        check_data(os.path.join(vols[ctx["src"]]["path"], "data"), ctx["want"],
                   "source " + ctx["src"])
        return CreatePlain.classify(self, d, ctx, vols, snaps)


class Restore(Clone):
    name = "restore"

    def setup(self, d, it):
        src, want = source_volume(d, "src")
        snap = d.csi.call("CreateSnapshot", cc.pb().CreateSnapshotRequest(
            name="snap-src", source_volume_id=src.volume_id)).snapshot
        return {"name": "vol-restore", "id": vol_id("_/vol-restore"), "want": want,
                "src": src.volume_id, "snap": snap.snapshot_id}

    def request(self, d, ctx):
        return "CreateVolume", cc.create_req(ctx["name"], required=GiB,
                                             source=("snapshot", ctx["snap"]))

    def classify(self, d, ctx, vols, snaps):
        if ctx["snap"] not in snaps:
            raise Violation("source snapshot %s vanished" % ctx["snap"])
        check_data(os.path.join(snaps[ctx["snap"]]["path"], "data"), ctx["want"],
                   "source " + ctx["snap"])
        return Clone.classify(self, d, ctx, vols, snaps)


class DeleteVolume(Kind):
    name = "delete_volume"
    outcomes = ("whole", "deleted")

    def setup(self, d, it):
        # alternate plain and claim-keyed volumes (the latter also removes the namespace dir)
        if it % 2:
            name, params, rel = "vol-del", None, "_/vol-del"
        else:
            name, params, rel = "pvc-del-%d" % it, cc.pvc_params(NS, "www-web-1"), \
                NS + "/www-web-1"
        create_vol(d, name, params=params)
        want = populate(os.path.join(d.root, rel, "data"))
        return {"id": vol_id(rel), "want": want}

    def request(self, d, ctx):
        return "DeleteVolume", cc.pb().DeleteVolumeRequest(volume_id=ctx["id"])

    def classify(self, d, ctx, vols, snaps):
        v = vols.get(ctx["id"])
        if v is None:
            return "deleted"
        check_data(os.path.join(v["path"], "data"), ctx["want"], ctx["id"] + " (not deleted)")
        return "whole"

    def check_retry(self, d, ctx, resp, vols, snaps):
        if ctx["id"] in vols:
            raise Violation("retried DeleteVolume succeeded but %s is still there" % ctx["id"])


class Expand(Kind):
    name = "expand"
    outcomes = ("old", "new")
    must_hit = False  # one meta rewrite: the window is tiny

    def setup(self, d, it):
        v, want = source_volume(d, "vol-exp", n_files=8)
        return {"id": v.volume_id, "want": want}

    def request(self, d, ctx):
        pb = cc.pb()
        return "ControllerExpandVolume", pb.ControllerExpandVolumeRequest(
            volume_id=ctx["id"], capacity_range=cap_req(pb, 2 * GiB))

    def classify(self, d, ctx, vols, snaps):
        v = vols.get(ctx["id"])
        if v is None:
            raise Violation("%s vanished during expand" % ctx["id"])
        check_data(os.path.join(v["path"], "data"), ctx["want"], ctx["id"])
        c = int(v["meta"]["capacity"])
        if c == GiB:
            return "old"
        if c == 2 * GiB:
            return "new"
        raise Violation("%s: capacity %d is neither old %d nor new %d" % (ctx["id"], c, GiB,
                                                                         2 * GiB))

    def check_retry(self, d, ctx, resp, vols, snaps):
        if resp.capacity_bytes != 2 * GiB or self.classify(d, ctx, vols, snaps) != "new":
            raise Violation("retried expand: response %d, meta %s" % (
                resp.capacity_bytes, vols[ctx["id"]]["meta"]["capacity"]))


class CreateSnapshot(Kind):
    name = "create_snapshot"

    def setup(self, d, it):
        src, want = source_volume(d, "src")
        return {"name": "snap-1", "id": snap_id("snap-1"), "src": src.volume_id, "want": want}

    def request(self, d, ctx):
        return "CreateSnapshot", cc.pb().CreateSnapshotRequest(
            name=ctx["name"], source_volume_id=ctx["src"])

    def classify(self, d, ctx, vols, snaps):
        if ctx["src"] not in vols:
            raise Violation("source volume %s vanished" % ctx["src"])
        check_data(os.path.join(vols[ctx["src"]]["path"], "data"), ctx["want"],
                   "source " + ctx["src"])
        s = snaps.get(ctx["id"])
        if s is None:
            return "absent"
        check_data(os.path.join(s["path"], "data"), ctx["want"], ctx["id"])
        sn = s["listed"].snapshot
        if sn.source_volume_id != ctx["src"]:
            raise Violation("%s: source_volume_id %r" % (ctx["id"], sn.source_volume_id))
        return "whole"

    def check_retry(self, d, ctx, resp, vols, snaps):
        if resp.snapshot.snapshot_id != ctx["id"] or not resp.snapshot.ready_to_use:
            raise Violation("retry returned %s ready=%s" % (resp.snapshot.snapshot_id,
                                                            resp.snapshot.ready_to_use))
        if self.classify(d, ctx, vols, snaps) != "whole":
            raise Violation("retry succeeded but %s is not on disk" % ctx["id"])


class DeleteSnapshot(Kind):
    name = "delete_snapshot"
    outcomes = ("whole", "deleted")

    def setup(self, d, it):
        src, want = source_volume(d, "src")
        snap = d.csi.call("CreateSnapshot", cc.pb().CreateSnapshotRequest(
            name="snap-del", source_volume_id=src.volume_id)).snapshot
        return {"id": snap.snapshot_id, "src": src.volume_id, "want": want}

    def request(self, d, ctx):
        return "DeleteSnapshot", cc.pb().DeleteSnapshotRequest(snapshot_id=ctx["id"])

    def classify(self, d, ctx, vols, snaps):
        s = snaps.get(ctx["id"])
        if s is None:
            return "deleted"
        check_data(os.path.join(s["path"], "data"), ctx["want"], ctx["id"] + " (not deleted)")
        return "whole"

    def check_retry(self, d, ctx, resp, vols, snaps):
        if ctx["id"] in snaps:
            raise Violation("retried DeleteSnapshot succeeded but %s is still there" % ctx["id"])


KINDS = [CreatePlain(), CreatePvc(), DeleteVolume(), Expand(), CreateSnapshot(),
         DeleteSnapshot(), Restore(), Clone()]


# ---------------------------------------------------------------- one iteration

def delete_everything(d):
    """Delete every snapshot and volume, then check that the root is clean (invariant 6)."""
    for e in d.csi.list_all("ListSnapshots"):
        d.csi.call("DeleteSnapshot", cc.pb().DeleteSnapshotRequest(
            snapshot_id=e.snapshot.snapshot_id))
    for e in d.csi.list_all("ListVolumes"):
        d.csi.call("DeleteVolume", cc.pb().DeleteVolumeRequest(volume_id=e.volume.volume_id))
    left_v = [e.volume.volume_id for e in d.csi.list_all("ListVolumes")]
    left_s = [e.snapshot.snapshot_id for e in d.csi.list_all("ListSnapshots")]
    if left_v or left_s:
        raise Violation("after deleting everything ListVolumes=%s ListSnapshots=%s"
                        % (left_v, left_s))


def check_clean(root):
    """Only the empty bookkeeping directories may remain."""
    left = []
    for top in sorted(os.listdir(root)):
        p = os.path.join(root, top)
        if top in (".tmp", ".trash", ".snapshots", "_") and os.path.isdir(p) \
                and not os.path.islink(p):
            left += [top + "/" + x for x in tree(p)]
        else:
            left.append(top + ("/" if os.path.isdir(p) else "") +
                        (" (%s)" % ", ".join(tree(p)[:5]) if os.path.isdir(p) else ""))
    if left:
        raise Violation("leak: after deleting everything the root still holds: %s"
                        % ", ".join(left[:20]))


def wait_stopped(pid, timeout=5.0):
    """Wait until every thread of pid is in the stopped state (group stop is asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                pass
        if states and all(st in ("T", "t") for st in states):
            return
        time.sleep(0.0005)
    raise Violation("daemon %d did not stop on SIGSTOP (thread states %s)" % (pid, states))


def run_once(kind, workdir, it, delay):
    """One iteration. delay None: uncrashed (calibration), returns (duration, outcome, mid):
    mid lists the work in progress the kill left, and "(unanswered)" when the kill landed after
    the operation's new state was in place but before its answer arrived (the window of its
    commit: with group commit the flush comes after the rename, outside .tmp and .trash).
    Raises Violation with a description of what was found."""
    root = os.path.join(workdir, "root-%s-%d" % (kind.name, it))
    os.makedirs(root)
    d = Daemon(workdir, root)
    try:
        d.start()
        ctx = kind.setup(d, it)
        method, req = kind.request(d, ctx)
        d.csi.call("Probe")  # the connection is up: the request goes out at once
        if delay is not None and delay < 0:
            # "before": the request reaches a stopped daemon that is killed before it runs
            os.kill(d.proc.pid, signal.SIGSTOP)
            wait_stopped(d.proc.pid)
        duration = None
        answered = False
        t0 = time.perf_counter()
        fut = d.csi.future(method, req)
        if delay is not None and delay < 0:
            time.sleep(0.002)
            d.kill()
            try:
                fut.result(timeout=5)
            except (grpc.RpcError, grpc.FutureTimeoutError, grpc.FutureCancelledError):
                pass
        elif delay is None:
            fut.result()
            duration = time.perf_counter() - t0
        else:
            end = t0 + delay
            while True:
                left = end - time.perf_counter()
                if left <= 0:
                    break
                if left > 0.002:
                    time.sleep(left - 0.001)
            d.kill()
            try:
                fut.result(timeout=5)
                answered = True
            except (grpc.RpcError, grpc.FutureTimeoutError, grpc.FutureCancelledError):
                pass
        wip = pre_restart_state(root) if delay is not None else []
        pre_tree = short_tree(root)
        if delay is not None:
            d.start()
        try:
            vols, snaps = scan_root(d)
            outcome = kind.classify(d, ctx, vols, snaps)
            if delay is not None and delay >= 0 and not answered and \
                    outcome == kind.outcomes[-1]:
                wip.append("(unanswered)")
        except Violation as e:
            raise Violation("after the crash (before restart the root held: %s): %s"
                            % (pre_tree, e))
        # 6: retry the same RPC, then delete everything
        try:
            resp = d.csi.call(method, req)
        except grpc.RpcError as e:
            raise Violation("retry of %s after restart failed: %s %s"
                            % (method, e.code(), e.details()))
        vols, snaps = scan_root(d)
        kind.check_retry(d, ctx, resp, vols, snaps)
        delete_everything(d)
        scan_root(d)
        rc = d.stop()
        if rc != 0:
            raise Violation("daemon exited %s on SIGTERM\n%s" % (rc, d.log_tail()))
        check_clean(root)
        # and a restart on the clean root finds nothing
        d.start()
        vols, snaps = scan_root(d)
        if vols or snaps:
            raise Violation("after restart on a clean root: %s %s" % (list(vols), list(snaps)))
        return duration, outcome, wip
    except Violation as e:
        raise Violation("%s [daemon log: %s]" % (e, d.log_path))
    else:
        if not KEEP:
            os.unlink(d.log_path)
    finally:
        d.kill()
        if not KEEP:
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- the test

@pytest.fixture(scope="module")
def workdir():
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        pytest.fail("ordinal-csi binary not found at %s (build it, or set ORDINAL_CSI)" % BINARY,
                    pytrace=False)
    d = tempfile.mkdtemp(prefix="ordinal-crash-", dir="/tmp")
    yield d
    if KEEP:
        print("\nwork directory kept: %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


def delays_for(rng, duration, n):
    """n kill delays covering before, during and after an operation of this duration.
    A negative delay: the daemon is SIGSTOPped, gets the request, and is killed (kill -9)."""
    out = [-1.0, 0.0, duration * 3 + 0.005]  # stopped daemon (surely before), 0, surely after
    while len(out) < n:
        r = rng.random()
        if r < 0.1:
            out.append(rng.uniform(0, 0.0005))
        elif r < 0.2:
            out.append(rng.uniform(1.2, 2.5) * duration)
        else:
            out.append(rng.uniform(0.05, 1.15) * duration)
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_crash(kind, workdir):
    rng = random.Random("%d/%s" % (SEED, kind.name))
    res = RESULTS.setdefault(kind.name, {"outcomes": {o: 0 for o in kind.outcomes}, "mid": 0,
                                         "iterations": 0, "violations": []})
    print("\n[crash] seed=%d kind=%s" % (SEED, kind.name))
    try:
        durations = [run_once(kind, workdir, 1000 + i, None)[0] for i in range(2)]
    except Violation as e:
        pytest.fail("%s: uncrashed calibration run failed: %s" % (kind.name, e), pytrace=False)
    duration = max(durations)
    res["calib_ms"] = duration * 1000
    t_start = time.monotonic()
    for it, delay in enumerate(delays_for(rng, duration, ITERATIONS)):
        try:
            _, outcome, wip = run_once(kind, workdir, it, delay)
        except Violation as e:
            res["violations"].append("iteration %d, kill %s: %s" % (
                it, "before (stopped)" if delay < 0 else "after %.2f ms" % (delay * 1000), e))
            continue
        finally:
            res["iterations"] += 1
        res["outcomes"][outcome] = res["outcomes"].get(outcome, 0) + 1
        if wip:
            res["mid"] += 1
    res["secs"] = time.monotonic() - t_start
    line = summary_line(kind.name, res)
    print(line)
    assert not res["violations"], "%s: %d invariant violation(s):\n  %s" % (
        kind.name, len(res["violations"]), "\n  ".join(res["violations"]))
    if kind.must_hit:
        missing = [o for o in kind.outcomes if res["outcomes"].get(o, 0) == 0]
        assert not missing, "%s: outcome(s) %s never happened: the kills did not cover the " \
                            "operation (%s)" % (kind.name, missing, line)
        assert res["mid"] > 0, "%s: no kill landed in the middle of the operation (%s)" % (
            kind.name, line)


def test_checker_detects_half_states(workdir):
    """The checks above must see a half-made volume: corrupt a whole clone in the ways a broken
    backend could leave it and expect a Violation each time."""
    root = os.path.join(workdir, "root-selftest")
    os.makedirs(root)
    d = Daemon(workdir, root)
    kind = Clone()
    try:
        d.start()
        ctx = kind.setup(d, 0)
        method, req = kind.request(d, ctx)
        d.csi.call(method, req)
        vols, snaps = scan_root(d)
        assert kind.classify(d, ctx, vols, snaps) == "whole"
        data = os.path.join(root, "_", "vol-clone", "data")
        meta = os.path.join(root, "_", "vol-clone", "volume.meta")
        f = os.path.join(data, "d1", "f101.bin")
        good = open(f, "rb").read()
        good_meta = open(meta, "rb").read()

        def expect_violation(what, fn, *args):
            with pytest.raises(Violation) as e:
                fn(*args)
            print("[selftest] %s -> %s" % (what, str(e.value)[:160]))

        def classify():
            v, sn = scan_root(d)
            kind.classify(d, ctx, v, sn)

        with open(f, "r+b") as fh:  # a partly copied file
            fh.truncate(FILE_SIZE // 2)
        expect_violation("truncated file", classify)
        with open(f, "wb") as fh:  # same size, other content
            fh.write(good[:-1] + bytes([good[-1] ^ 1]))
        expect_violation("changed byte", classify)
        os.unlink(f)
        expect_violation("missing file", classify)
        with open(f, "wb") as fh:
            fh.write(good)
        classify()
        with open(meta, "wb") as fh:  # a torn meta write
            fh.write(good_meta[:len(good_meta) // 2])
        expect_violation("torn meta", classify)
        with open(meta, "wb") as fh:
            fh.write(good_meta)
        open(meta + ".abc123.tmp", "wb").close()
        expect_violation("stray meta temporary", classify)
        os.unlink(meta + ".abc123.tmp")
        os.mkdir(os.path.join(root, ".tmp", "v-left"))
        expect_violation("non-empty .tmp", classify)
        os.rmdir(os.path.join(root, ".tmp", "v-left"))
        os.makedirs(os.path.join(root, "_", "ghost", "data"))
        expect_violation("volume dir not known to the daemon", classify)
        shutil.rmtree(os.path.join(root, "_", "ghost"))
        classify()
        open(os.path.join(root, "_", "leak"), "wb").close()
        expect_violation("leak after delete", check_clean, root)
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_power_cut_at_the_create_commit_point_rolls_back(workdir):
    """The commit point of an empty create is one flush after the rename that publishes it (group
    commit): a power cut before that flush may keep the rename and lose or tear the unsynced
    meta file. A kill -9 cannot leave that (the page cache survives), so it is made on disk the
    way the disk could keep it. Recovery must roll each such create back (it was never
    answered), keep the volumes that were answered, and leave a root that passes scan_root; the
    CO's retry of the create then makes it whole."""
    root = os.path.join(workdir, "root-powercut")
    os.makedirs(root)
    d = Daemon(workdir, root)
    try:
        d.start()
        names = ["cut-nometa", "cut-empty", "cut-torn", "cut-flipped", "cut-nodata"]
        for n in names + ["kept"]:
            create_vol(d, n)
        pvc = create_vol(d, "pvc-cut", params=cc.pvc_params(NS, "cut-0"))
        d.kill()
        meta = {n: os.path.join(root, "_", n, "volume.meta") for n in names}
        good = open(meta["cut-torn"], "rb").read()
        assert good.rstrip(b"\n").rsplit(b"\n", 1)[1].startswith(b"checksum="), good
        os.unlink(meta["cut-nometa"])
        open(meta["cut-empty"], "wb").close()
        with open(meta["cut-torn"], "wb") as f:
            f.write(good[:len(good) // 2])
        with open(meta["cut-flipped"], "wb") as f:
            f.write(good.replace(b"capacity=1", b"capacity=2"))
        with open(meta["cut-nodata"], "wb") as f:
            f.write(b"\0" * len(good))
        os.rmdir(os.path.join(root, "_", "cut-nodata", "data"))
        pvc_meta = os.path.join(root, NS, "cut-0", "volume.meta")
        os.unlink(pvc_meta)
        d.start()
        vols, _ = scan_root(d)
        assert sorted(vols) == [vol_id("_/kept")], sorted(vols)
        assert not os.path.exists(os.path.join(root, NS)), "empty namespace left"
        # the retries make them whole
        for n in names:
            v = create_vol(d, n)
            assert v.volume_id == vol_id("_/" + n)
        assert create_vol(d, "pvc-cut", params=cc.pvc_params(NS, "cut-0")).volume_id == \
            pvc.volume_id
        vols, _ = scan_root(d)
        assert len(vols) == len(names) + 2
        delete_everything(d)
        check_clean(root)
    finally:
        d.kill()
        shutil.rmtree(root, ignore_errors=True)


def summary_line(name, res):
    return "[crash] %-16s seed=%d iterations=%d calib=%.1fms %s crashed-mid-operation=%d " \
           "violations=%d (%.1fs)" % (
               name, SEED, res["iterations"], res.get("calib_ms", 0),
               " ".join("%s=%d" % kv for kv in res["outcomes"].items()), res["mid"],
               len(res["violations"]), res.get("secs", 0))
