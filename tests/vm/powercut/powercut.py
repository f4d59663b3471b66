"""Power cuts under the directory backend (run inside the test VM: tests/vm/powercut.sh).

For each filesystem (ext4, xfs): a dm-log-writes device (data on one disk, the log of every
write on another) gets the filesystem and is the daemon's --dir-root. The daemon runs a workload
over CSI: create, write data, snapshot, restore, clone, expand, delete snapshot, delete, then a
batch of concurrent ones; a mark goes into the log before each operation is issued ("s-<op>")
and after its answer came back ("a-<op>"). Then the log is replayed onto a blank disk, prefix by
prefix, to many cut points (every flush and FUA entry, the marks, and points between flushes);
at each, a throwaway snapshot of the replayed disk is mounted (its journal recovery runs), the
daemon starts on it (its start-up recovery runs), and the invariant is checked:

  - every operation answered before the cut is there and whole: a created volume is listed with
    its capacity and its data/ holds exactly the expected tree (file set, sizes, modes, sha256,
    symlinks); a snapshot is listed ready with exactly its source's data; an expansion shows the
    new capacity (ListVolumes and volume.meta agree); a deletion is gone;
  - an operation issued but not answered before the cut shows either its old or its new state;
  - nothing half made or leaked: .tmp/ and .trash/ empty, every directory at a final location
    holds exactly data/ and a valid meta file, nothing else in the root, the lists equal what is
    on disk, and nothing exists that no operation made.

Usage: powercut.py [--points N|all] [--fs ext4,xfs] --disks DATA,LOG,REPLAY[;...] --cow DEV
Environment: ORDINAL_CSI (the daemon), ORDINAL_SOURCE (for proto/csi.proto),
ORDINAL_POWERCUT_POINTS (default for --points), ORDINAL_POWERCUT_SEED.
"""

import argparse
import hashlib
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BINARY = os.environ.get("ORDINAL_CSI") or os.path.join(SOURCE, "build", "debug", "ordinal-csi")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "csi"))

import grpc  # noqa: E402

import csi_client as cc  # noqa: E402
import logwrites as lw  # noqa: E402

U = 16 << 20  # capacity unit: the filesystems are small, and creates check free space
ANY = "any"  # content not checked (a write in progress)
LIVE_DM, CUT_DM = "pc-live", "pc-cut"


class Violation(Exception):
    pass


def run(*argv, check=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                                 (r.stderr or r.stdout).strip()))
    return r.stdout


def dm_create(name, table):
    """dmsetup create; no udev in the VM, so make the /dev/mapper node too."""
    run("dmsetup", "create", name, "--table", table)
    run("dmsetup", "mknodes", name)


def sectors(dev):
    return int(run("blockdev", "--getsz", dev))


# ---------------------------------------------------------------- content

def source_tree(seed):
    rng = random.Random(seed)
    files = {}
    for i in range(24):
        files["d%d/f%02d.bin" % (i % 3, i)] = rng.randbytes(rng.choice((1, 4096, 20000, 70000)))
    files["empty"] = b""
    return files


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def populate(data_dir, files):
    """Write files (as a pod would) and make them durable: fsync each file and directory."""
    dirs = set()
    for rel, b in sorted(files.items()):
        p = os.path.join(data_dir, rel)
        d = os.path.dirname(p)
        if d not in dirs:
            os.makedirs(d, exist_ok=True)
            dirs.add(d)
        with open(p, "wb") as f:
            f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(p, 0o600 if rel.endswith("3.bin") else 0o644)
    os.symlink("d0/f00.bin", os.path.join(data_dir, "link"))
    for d in sorted(dirs, key=len, reverse=True) + [data_dir]:
        fsync_dir(d)


def manifest(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, path)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[rel] = ("f", st.st_size, stat.S_IMODE(st.st_mode),
                                hashlib.sha256(f.read()).hexdigest())
            else:
                out[rel] = ("?", stat.S_IFMT(st.st_mode))
    return out


def manifest_diff(want, got, limit=5):
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    parts = []
    if missing:
        parts.append("%d missing (%s)" % (len(missing), ", ".join(missing[:limit])))
    if extra:
        parts.append("%d extra (%s)" % (len(extra), ", ".join(extra[:limit])))
    if changed:
        parts.append("%d differ (%s)" % (len(changed), ", ".join(changed[:limit])))
    return "; ".join(parts) or "identical"


def parse_meta(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    if not text.endswith("\n"):
        raise Violation("%s: not newline-terminated: %r" % (path, text[-60:]))
    lines = text[:-1].split("\n")
    if lines[0] not in ("version=1", "version=2"):
        raise Violation("%s: first line %r" % (path, lines[0]))
    kv = {}
    for ln in lines[1:]:
        k, sep, v = ln.partition("=")
        if not sep or not k:
            raise Violation("%s: garbled line %r" % (path, ln))
        kv[k] = v
    return kv


# ---------------------------------------------------------------- the daemon

class Daemon:
    def __init__(self, root, tag):
        self.root = root
        self.sock = "/tmp/powercut-%s.sock" % tag
        self.log_path = "/tmp/powercut-%s.log" % tag
        self.proc = None
        self.channel = None
        self.csi = None

    def start(self, timeout=60.0):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [BINARY, "--endpoint", "unix://" + self.sock, "--node-id", "vm-node",
                 "--dir-root", self.root],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel("unix://" + self.sock, options=[
            ("grpc.initial_reconnect_backoff_ms", 20), ("grpc.min_reconnect_backoff_ms", 20),
            ("grpc.max_reconnect_backoff_ms", 100)])
        self.csi = cc.CsiClient(self.channel, cc.load_pb(SOURCE), timeout=120.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Violation("ordinal-csi exited with %d at start-up\n%s"
                                % (self.proc.returncode, self.log_tail()))
            try:
                r = self.csi.Probe(timeout=2.0, wait_for_ready=True)
                if not r.HasField("ready") or r.ready.value:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.02)
        raise Violation("ordinal-csi did not answer Probe in %.0f s\n%s"
                        % (timeout, self.log_tail()))

    def stop(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = "timeout"
            self.proc = None
            if rc != 0:
                raise Violation("ordinal-csi exited with %s on SIGTERM\n%s"
                                % (rc, self.log_tail()))

    def log_tail(self, n=25):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return ""
        return "---- daemon log ----\n" + "\n".join(lines[-n:])

    def list_all(self, method):
        out, token = [], ""
        while True:
            r = getattr(self.csi, method)(max_entries=4, starting_token=token)
            out += list(r.entries)
            token = r.next_token
            if not token:
                return out


# ---------------------------------------------------------------- the workload

class Workload:
    """Runs operations on a live daemon, marking the log before each is issued and after its
    answer; remembers each operation's effect for the checker."""

    def __init__(self, daemon, live_root, files):
        self.d = daemon
        self.root = live_root
        self.pb = cc.load_pb(SOURCE)
        self.ops = []  # dicts: name, obj, apply(state) -> state, start, ack
        self.ids = {}  # obj -> CSI id (volumes and snapshots)
        self.files = files
        self.want = None  # manifest of the source tree, known once written
        self.lock = threading.Lock()
        self.n = 0

    def mark(self, name):
        with self.lock:
            run("dmsetup", "message", LIVE_DM, "0", "mark", name)

    def _op(self, name, obj, apply_fn, call):
        op = {"name": name, "obj": obj, "apply": apply_fn, "start": "s-" + name,
              "ack": "a-" + name}
        self.ops.append(op)
        return op, call

    def _run(self, op, call, started=False):
        if not started:
            self.mark(op["start"])
        for attempt in range(200):
            try:
                call()
                break
            except grpc.RpcError as e:
                # ABORTED: another operation on the same volume is in progress (a concurrent
                # snapshot and expansion of one volume); the sidecars retry, so do we.
                if e.code() != grpc.StatusCode.ABORTED or attempt == 199:
                    raise RuntimeError("workload: %s failed: %s %s"
                                       % (op["name"], e.code(), e.details()))
                time.sleep(0.05)
        self.mark(op["ack"])

    def seq(self, item):
        self._run(*item)

    def concurrent(self, items, batch):
        go = "s-" + batch
        for op, _call in items:
            op["start"] = go
        self.mark(go)
        errs = []

        def worker(op, call):
            try:
                self._run(op, call, started=True)
            except Exception as e:  # noqa: BLE001 (reported below)
                errs.append(str(e))
        ts = [threading.Thread(target=worker, args=it) for it in items]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errs:
            raise RuntimeError("; ".join(errs))

    # -- operations; obj names: "v:<rel>" for volumes, "s:<name>" for snapshots

    def create(self, rel, cap, content, source=None):
        ns, _, claim = rel.partition("/")
        params = None if ns == "_" else cc.pvc_params(ns, claim)
        name = "pvc-" + rel.replace("/", "-")
        if ns == "_":
            name = claim

        def call():
            # source: (kind, obj); the object's CSI id is known once its creation answered
            src = (source[0], self.ids[source[1]]) if source is not None else None
            r = self.d.csi.CreateVolume(cc.create_req(self.pb, name, required=cap, params=params,
                                                      source=src))
            self.ids["v:" + rel] = r.volume.volume_id

        def apply_fn(_state):
            return {"cap": cap, "content": content() if callable(content) else content}
        return self._op("create-" + rel.replace("/", "-"), "v:" + rel, apply_fn, call)

    def write(self, rel):
        def call():
            populate(os.path.join(self.root, rel, "data"), self.files)
            self.want = manifest(os.path.join(self.root, rel, "data"))

        def apply_fn(state):
            return dict(state, content=self.want)
        # While the write is unanswered the content may be anything (allowed_states).
        return self._op("write-" + rel.replace("/", "-"), "v:" + rel, apply_fn, call)

    def expand(self, rel, cap):
        def call():
            self.d.csi.ControllerExpandVolume(volume_id=self.ids["v:" + rel],
                                              capacity_range=self.pb.CapacityRange(
                                                  required_bytes=cap))

        def apply_fn(state):
            return dict(state, cap=cap)
        return self._op("expand-" + rel.replace("/", "-"), "v:" + rel, apply_fn, call)

    def delete(self, rel):
        def call():
            self.d.csi.DeleteVolume(volume_id=self.ids["v:" + rel])
        return self._op("delete-" + rel.replace("/", "-"), "v:" + rel, lambda s: None, call)

    def snapshot(self, name, rel):
        def call():
            r = self.d.csi.CreateSnapshot(name=name, source_volume_id=self.ids["v:" + rel])
            if not r.snapshot.ready_to_use:
                raise RuntimeError("snapshot %s not ready" % name)
            self.ids["s:" + name] = r.snapshot.snapshot_id
        return self._op("snapshot-" + name, "s:" + name,
                        lambda s: {"cap": None, "content": self.want}, call)

    def delete_snapshot(self, name):
        def call():
            self.d.csi.DeleteSnapshot(snapshot_id=self.ids["s:" + name])
        return self._op("delete-snapshot-" + name, "s:" + name, lambda s: None, call)

    def run_all(self):
        A, B, C = "ns1/a", "ns1/b", "ns2/c"
        want = lambda: self.want  # noqa: E731 (known once the write is done)
        self.seq(self.create(A, 1 * U, {}))
        self.seq(self.write(A))
        self.seq(self.snapshot("snap-1", A))
        self.seq(self.create(B, 1 * U, want, source=("snapshot", "s:snap-1")))
        self.seq(self.create(C, 1 * U, want, source=("volume", "v:" + A)))
        self.seq(self.expand(A, 2 * U))
        self.seq(self.delete_snapshot("snap-1"))
        self.seq(self.delete(B))
        # Concurrent: creates (one by plain CSI name, two in a new namespace), a snapshot and a
        # clone of C while C is expanded (the clone asks for C's new size, so either order gives
        # the same capacity), and a delete.
        self.concurrent([
            self.create("_/plain-d", 1 * U, {}),
            self.create("ns3/e", 1 * U, {}),
            self.create("ns3/f", 1 * U, {}),
            self.snapshot("snap-2", C),
            self.create("ns1/g", 3 * U, want, source=("volume", "v:" + C)),
            self.expand(C, 3 * U),
            self.delete(A),
        ], "batch-1")
        self.seq(self.create("ns4/h", 3 * U, want, source=("snapshot", "s:snap-2")))
        self.concurrent([self.delete("ns3/e"), self.delete("ns3/f"),
                         self.delete_snapshot("snap-2")], "batch-2")


# ---------------------------------------------------------------- the checker

def allowed_states(ops, passed):
    """{obj: [allowed states]} at a cut where passed(mark) tells which marks are before it."""
    by_obj = {}
    for op in ops:
        by_obj.setdefault(op["obj"], []).append(op)
    out = {}
    for obj, seq in by_obj.items():
        states = [None]
        for op in seq:
            if passed(op["ack"]):
                states = [op["apply"](s) for s in states]
            elif passed(op["start"]):
                if op["name"].startswith("write-"):
                    states = states + [dict(s, content=ANY) for s in states]
                else:
                    states = states + [op["apply"](s) for s in states]
                break
            else:
                break
        out[obj] = states
    return out


def observe(root, daemon):
    """What is there after recovery, checking structure; {obj: state}."""
    errs = []
    seen = {}
    vol_ids, snap_ids = {}, {}
    for top in sorted(os.listdir(root)):
        p = os.path.join(root, top)
        if top in (".tmp", ".trash"):
            left = os.listdir(p)
            if left:
                errs.append("%s/ not empty after recovery: %s" % (top, sorted(left)[:8]))
            continue
        if not os.path.isdir(p) or os.path.islink(p):
            errs.append("stray non-directory in the root: %s" % top)
            continue
        if top != ".snapshots" and top.startswith("."):
            errs.append("unexpected entry in the root: %s" % top)
            continue
        children = sorted(os.listdir(p))
        if not children and top not in ("_", ".snapshots"):
            errs.append("empty namespace directory left: %s" % top)
        snap = top == ".snapshots"
        meta_name = "snapshot.meta" if snap else "volume.meta"
        for n in children:
            ep = os.path.join(p, n)
            what = "%s/%s" % (top, n)
            if not os.path.isdir(ep) or os.path.islink(ep):
                errs.append("stray non-directory at a final location: %s" % what)
                continue
            names = sorted(os.listdir(ep))
            if names != sorted(["data", meta_name]):
                errs.append("%s holds %s, want exactly data/ and %s" % (what, names, meta_name))
                continue
            try:
                kv = parse_meta(os.path.join(ep, meta_name))
            except (Violation, OSError, UnicodeDecodeError) as e:
                errs.append("%s: %s" % (what, e))
                continue
            content = manifest(os.path.join(ep, "data"))
            mode = stat.S_IMODE(os.lstat(os.path.join(ep, "data")).st_mode)
            if not snap and mode != 0o777:
                errs.append("%s/data has mode %o, want 777 (pods of any uid write)" % (what, mode))
            if snap:
                if kv.get("name") != n:
                    errs.append("%s: meta name %r" % (what, kv.get("name")))
                snap_ids[kv.get("id")] = "s:" + n
                seen["s:" + n] = {"cap": None, "content": content}
            else:
                rel = top + "/" + n
                key = n if top == "_" else rel
                if kv.get("key") != key:
                    errs.append("%s: meta key %r, want %r" % (what, kv.get("key"), key))
                try:
                    cap = int(kv.get("capacity", ""))
                except ValueError:
                    errs.append("%s: meta capacity %r" % (what, kv.get("capacity")))
                    cap = None
                vol_ids[kv.get("id")] = ("v:" + rel, cap)
                seen["v:" + rel] = {"cap": cap, "content": content}
    listed = {}
    for e in daemon.list_all("ListVolumes"):
        v = e.volume
        if e.HasField("status") and e.status.HasField("volume_condition") and \
                e.status.volume_condition.abnormal:
            errs.append("ListVolumes: %s abnormal: %s" % (v.volume_id,
                                                         e.status.volume_condition.message))
        listed[v.volume_id] = v.capacity_bytes
    if set(listed) != set(vol_ids):
        errs.append("ListVolumes %s != volumes on disk %s" % (sorted(listed), sorted(vol_ids)))
    for vid, (obj, cap) in vol_ids.items():
        if vid in listed and listed[vid] != cap:
            errs.append("%s: ListVolumes capacity %d, volume.meta %s" % (obj, listed[vid], cap))
    lsnaps = {e.snapshot.snapshot_id: e.snapshot for e in daemon.list_all("ListSnapshots")}
    if set(lsnaps) != set(snap_ids):
        errs.append("ListSnapshots %s != snapshots on disk %s" % (sorted(lsnaps), sorted(snap_ids)))
    for sid, s in lsnaps.items():
        if not s.ready_to_use:
            errs.append("snapshot %s listed not ready" % sid)
    if errs:
        raise Violation("; ".join(errs))
    return seen


def describe(s):
    if s is None:
        return "absent"
    c = s["content"]
    return "cap %s, content %s" % (s["cap"], "any" if c is ANY else "%d entries" % len(c))


def check(ops, passed, seen):
    errs = []
    allowed = allowed_states(ops, passed)
    for obj in sorted(set(seen) - set(allowed)):
        errs.append("%s exists but no operation made it (leak)" % obj)
    for obj, states in sorted(allowed.items()):
        got = seen.get(obj)
        ok = False
        for s in states:
            if s is None or got is None:
                ok = ok or (s is None and got is None)
                continue
            if s["cap"] is not None and s["cap"] != got["cap"]:
                continue
            if s["content"] is not ANY and s["content"] != got["content"]:
                continue
            ok = True
        if not ok:
            why = describe(got)
            if got is not None:
                for s in states:
                    if s and s["content"] is not ANY and s["content"] != got["content"]:
                        why += " (content vs %s: %s)" % (describe(s),
                                                        manifest_diff(s["content"],
                                                                      got["content"]))
            errs.append("%s is %s; allowed: %s" % (obj, why,
                                                   " or ".join(describe(s) for s in states)))
    if errs:
        raise Violation("; ".join(errs))


# ---------------------------------------------------------------- one filesystem

def mkfs(fstype, dev):
    if fstype == "ext4":
        # Full inode tables now (no lazy init thread writing later) and no discards: the log
        # then holds only what the filesystem writes.
        run("mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
            dev)
    else:
        run("mkfs.xfs", "-q", "-f", "-K", dev)


def mount(fstype, dev, mnt):
    os.makedirs(mnt, exist_ok=True)
    opts = ["-o", "nouuid"] if fstype == "xfs" else []
    run("mount", "-t", fstype, *opts, dev, mnt)


def cut_points(entries, base, end, want, rng, acks):
    """Candidate prefix lengths after the base mark: before and after each flush, after each
    FUA entry and each mark, and one between consecutive flushes. Returns (the points to check,
    the number of candidates): all candidates when want is None, else the points right after
    the answers' marks (acks) plus more spread evenly over the rest, want in all (or just the
    acks' points when they are more)."""
    cands = set()
    last_flush = base + 1
    for e in entries[base + 1:end + 1]:
        if e.flags & (lw.FLUSH | lw.FUA):
            cands.add(e.index + 1)
            if e.flags & lw.FLUSH:
                cands.add(e.index)
                if e.index - last_flush > 1:
                    cands.add(rng.randrange(last_flush + 1, e.index))
                last_flush = e.index
        elif e.flags & lw.MARK:
            cands.add(e.index + 1)
    cands = sorted(c for c in cands if base < c <= end + 1)
    if want is None or want >= len(cands):
        return cands, len(cands)
    # Right after each answer's mark first: the state the answer promised, before any later
    # flush could make up for a missing one.
    pick = set(c for c in acks if c in cands)
    rest = [c for c in cands if c not in pick]
    k = max(0, want - len(pick))
    if k and rest:
        step = len(rest) / k
        pick |= {rest[min(len(rest) - 1, int(i * step + step / 2))] for i in range(k)}
    return sorted(pick), len(cands)


def run_fs(fstype, data_dev, log_dev, replay_dev, cow_dev, points, seed):
    t0 = time.monotonic()
    files = source_tree(seed)
    size = sectors(data_dev)
    if sectors(replay_dev) < size:
        raise RuntimeError("%s is smaller than %s" % (replay_dev, data_dev))
    dm_create(LIVE_DM, "0 %d log-writes %s %s" % (size, data_dev, log_dev))
    live_dev = "/dev/mapper/" + LIVE_DM
    live_mnt = "/mnt/powercut-live"
    mkfs(fstype, live_dev)
    mount(fstype, live_dev, live_mnt)
    root = os.path.join(live_mnt, "root")
    os.mkdir(root, 0o700)
    fsync_dir(root)
    fsync_dir(live_mnt)
    run("sync", "-f", live_mnt)
    run("dmsetup", "message", LIVE_DM, "0", "mark", "base")
    d = Daemon(root, fstype + "-live")
    d.start()
    w = Workload(d, root, files)
    try:
        w.run_all()
    finally:
        d.stop()
    run("dmsetup", "message", LIVE_DM, "0", "mark", "end")
    run("umount", live_mnt)
    run("dmsetup", "remove", LIVE_DM)
    t_work = time.monotonic() - t0

    ssize, entries = lw.read_log(log_dev)
    m = lw.marks(entries)
    missing = [n for n in ["base", "end"] + [o["start"] for o in w.ops] + [o["ack"] for o in w.ops]
               if n not in m]
    if missing:
        raise RuntimeError("marks missing from the log: %s" % missing)
    if entries[-1].mark != "dm-log-writes-end":
        raise RuntimeError("the log does not end with its end mark: %r" % entries[-1])
    rng = random.Random(seed)
    acks = {m[o["ack"]] + 1 for o in w.ops}
    pick, n_cands = cut_points(entries, m["base"], m["end"], points, rng, acks)
    n_flush = sum(1 for e in entries if e.flags & lw.FLUSH)
    n_fua = sum(1 for e in entries if e.flags & lw.FUA)
    print("powercut %s: workload %.1f s, %d operations; log %d entries (%d flush, %d FUA), "
          "%d candidate cut points, checking %d" % (fstype, t_work, len(w.ops), len(entries),
                                                   n_flush, n_fua, n_cands, len(pick)),
          flush=True)

    rep = lw.Replayer(log_dev, replay_dev, ssize, entries)
    cut_mnt = "/mnt/powercut-cut"
    stats = {"points": 0, "wip": 0, "violations": []}
    t1 = time.monotonic()
    phases = {"replay": 0.0, "mount": 0.0, "daemon": 0.0, "check": 0.0, "teardown": 0.0}

    def lap(name, since):
        now = time.monotonic()
        phases[name] += now - since
        return now
    try:
        for p in pick:
            t = time.monotonic()
            rep.advance(p)
            t = lap("replay", t)
            passed = lambda name: name in m and m[name] < p  # noqa: E731
            dm_create(CUT_DM, "0 %d snapshot %s %s N 8" % (size, replay_dev, cow_dev))
            try:
                mount(fstype, "/dev/mapper/" + CUT_DM, cut_mnt)
                t = lap("mount", t)
                try:
                    croot = os.path.join(cut_mnt, "root")
                    if any(os.listdir(os.path.join(croot, t))
                           for t in (".tmp", ".trash") if os.path.isdir(os.path.join(croot, t))):
                        stats["wip"] += 1
                    cd = Daemon(croot, fstype + "-cut")
                    try:
                        cd.start()
                        t = lap("daemon", t)
                        check(w.ops, passed, observe(croot, cd))
                        t = lap("check", t)
                    except Violation as e:
                        last = max((i, n) for n, i in m.items() if i < p)[1]
                        stats["violations"].append(
                            "%s cut at entry %d of %d (last mark before: %s): %s" %
                            (fstype, p, len(entries), last, e))
                        print("VIOLATION " + stats["violations"][-1], flush=True)
                    finally:
                        cd.stop()
                finally:
                    run("umount", cut_mnt)
            finally:
                run("dmsetup", "remove", CUT_DM)
            lap("teardown", t)
            stats["points"] += 1
    finally:
        rep.close()
    t_check = time.monotonic() - t1
    print("powercut %s: time per phase: %s" % (fstype, ", ".join(
        "%s %.1f s" % kv for kv in phases.items())), flush=True)
    print("powercut %s: %d cut points checked in %.1f s (%.2f s each), %d with work in progress "
          "before recovery, %d violations" % (fstype, stats["points"], t_check,
                                              t_check / max(1, stats["points"]), stats["wip"],
                                              len(stats["violations"])), flush=True)
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", default=os.environ.get("ORDINAL_POWERCUT_POINTS", "30"),
                    help="cut points per filesystem (those right after each answer are always "
                         "checked; the rest spread over the candidates), or 'all' (default 30)")
    ap.add_argument("--fs", default="ext4,xfs")
    ap.add_argument("--disks", required=True,
                    help="DATA,LOG,REPLAY per filesystem, ';' between filesystems")
    ap.add_argument("--cow", required=True, help="scratch device for the cut snapshots")
    a = ap.parse_args()
    points = None if a.points == "all" else int(a.points)
    seed = int(os.environ.get("ORDINAL_POWERCUT_SEED", "4242"))
    fss = a.fs.split(",")
    disks = [x.split(",") for x in a.disks.split(";")]
    if len(disks) < len(fss) or any(len(x) != 3 for x in disks):
        ap.error("--disks wants DATA,LOG,REPLAY for each filesystem")
    print("powercut: seed %d, binary %s" % (seed, BINARY), flush=True)
    bad = []
    total = 0
    for fstype, (data, log, replay) in zip(fss, disks):
        st = run_fs(fstype, data, log, replay, a.cow, points, seed)
        bad += st["violations"]
        total += st["points"]
    print("powercut: %d cut points checked, %d violations" % (total, len(bad)))
    for v in bad:
        print("  " + v)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
