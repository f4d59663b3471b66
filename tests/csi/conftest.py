"""Fixtures of the CSI conformance suite: the ordinal-csi daemon on a temporary unix socket.

Environment (set by ctest; defaults make a hand run from the repo work):
    ORDINAL_SOURCE    repo root (default: two levels above this file)
    ORDINAL_BUILD     build dir (default: $ORDINAL_SOURCE/build/debug)
    ORDINAL_CSI       daemon binary (default: $ORDINAL_SOURCE/build/debug/ordinal-csi)
    ORDINAL_SANITIZE  "" or "address": sanitizer builds get longer timeouts
    ORDINAL_VALGRIND  "1": run every daemon under valgrind memcheck; any memory error or
                      definite/indirect leak makes the daemon exit 97, which fails its test
    ORDINAL_CSI_WORKDIR  parent of the per-test work directories (default /tmp): the
                      directory backend's root lives there (tests/vm/csi.sh points it at a
                      quota-enabled xfs mount)
    ORDINAL_CSI_LVM_VG   run the suite against the LVM backend on this volume group instead of
                      the directory backend (tests/vm/csi.sh --backend lvm, in the VM): daemons
                      get --lvm-vg VG --default-backend lvm; tests that are about the directory backend
                      skip (dir_only); every LV is removed after each test
    ORDINAL_CSI_LVM_THINPOOL  with ORDINAL_CSI_LVM_VG: a thin pool in that group; every
                      CreateVolume of the suite carries parameters.thinPool (a thin class), so
                      snapshots and clones run as thin snapshots; the pool stays, every other LV
                      is removed after each test (tests/vm/csi.sh --backend lvm-thin)
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import csi_client  # noqa: E402

SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("ORDINAL_BUILD") or os.path.join(SOURCE, "build", "debug")
BINARY = os.environ.get("ORDINAL_CSI") or os.path.join(SOURCE, "build", "debug", "ordinal-csi")
SANITIZE = os.environ.get("ORDINAL_SANITIZE", "")
VALGRIND = os.environ.get("ORDINAL_VALGRIND") == "1"
SLOW = 10.0 if VALGRIND else 3.0 if SANITIZE else 1.0

LVM_VG = os.environ.get("ORDINAL_CSI_LVM_VG") or None
START_TIMEOUT = 10.0 * SLOW
if LVM_VG:
    # the LVM backend's start-up runs lvm's reports (recovery): seconds each in the test VM
    # under TCG on a loaded machine (seen: 10 s)
    START_TIMEOUT = max(START_TIMEOUT, 60.0)
STOP_TIMEOUT = 10.0 * SLOW
NODE_ID = "test-node"
WORKDIR_PARENT = os.environ.get("ORDINAL_CSI_WORKDIR") or "/tmp"
LVM_THINPOOL = (os.environ.get("ORDINAL_CSI_LVM_THINPOOL") or None) if LVM_VG else None
BACKEND = "lvm-thin" if LVM_THINPOOL else "lvm" if LVM_VG else "dir"
if LVM_THINPOOL:
    csi_client.CLASS_PARAMS = {"thinPool": LVM_THINPOOL}
# Snapshots and clones of thick LVs are refused by design (CSI lets a plugin refuse a content
# source it cannot make); a thin class has them, and the suite then runs them.
needs_dir_snapshots = pytest.mark.skipif(BACKEND == "lvm", reason="snapshots and clones: the "
                                         "LVM backend refuses them for thick LVs by design "
                                         "(run with a thin class: --backend lvm-thin)")
# Exact byte sizes: LVM rounds sizes up to whole extents (4 MiB).
exact_sizes = pytest.mark.skipif(BACKEND != "dir", reason="exact byte sizes: the LVM backend "
                                 "rounds up to whole extents")
# A test of the directory backend itself (its files, paths, layout, snapshots by copy): skipped
# when the suite runs against the LVM backend.
dir_only = pytest.mark.skipif(BACKEND != "dir", reason="about the directory backend (its "
                              "files and layout); the suite runs against the LVM backend")

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="mount tests need root (bind mounts)")


# ---- mount helpers (shared by tests) ----

def _unescape(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """Parsed /proc/self/mountinfo: list of dicts (mount_point, root, opts, fstype, super_opts)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            out.append({
                "root": _unescape(parts[3]),
                "mount_point": _unescape(parts[4]),
                "opts": parts[5].split(","),
                "fstype": parts[sep + 1],
                "super_opts": parts[sep + 3].split(",") if len(parts) > sep + 3 else [],
            })
    return out


def mount_at(path):
    """The topmost mount whose mount point is path, or None."""
    path = os.path.realpath(path)
    found = None
    for m in mounts():
        if m["mount_point"] == path:
            found = m
    return found


def mounts_under(path):
    path = os.path.realpath(path)
    return [m["mount_point"] for m in mounts()
            if m["mount_point"] == path or m["mount_point"].startswith(path + "/")]


def tree(path):
    """Every path under `path`, relative, as a sorted list (does not follow symlinks)."""
    res = []
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            res.append(os.path.relpath(os.path.join(dirpath, n), path))
    return sorted(res)


def write_tree(base, files):
    """Write {relative path: bytes} under base (directories created)."""
    for rel, content in files.items():
        p = os.path.join(base, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content)


def read_tree(base):
    """{relative path: bytes} of every regular file under base."""
    out = {}
    for rel in tree(base):
        p = os.path.join(base, rel)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as f:
                out[rel] = f.read()
    return out


def create(csi, pb, name, **kw):
    """CreateVolume with csi_client.create_req(pb, name, **kw); returns the Volume."""
    return csi.CreateVolume(csi_client.create_req(pb, name, **kw)).volume


# ---- the daemon ----

class Daemon:
    """One ordinal-csi process on <workdir>/csi.sock with --dir-root <root>."""

    def __init__(self, workdir, root=None, node_id=NODE_ID, extra_args=(), sock=None,
                 log_level="debug", dir_backend=True):
        self.workdir = workdir
        self.root = root or os.path.join(workdir, "root")
        os.makedirs(self.root, exist_ok=True)
        self.sock = sock or os.path.join(workdir, "csi.sock")
        self.log_path = os.path.join(workdir, "daemon.log")
        self.node_id = node_id
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.dir_backend = dir_backend  # False: no --dir-root (controller mode: no dir backend)
        self.proc = None
        self.channel = None
        self.csi = None
        self.pb = csi_client.load_pb(SOURCE)
        self.starts = 0

    def argv(self):
        a = []
        if VALGRIND:
            a = ["valgrind", "--quiet", "--error-exitcode=97", "--leak-check=full",
                 "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
                 "--log-file=" + os.path.join(self.workdir, "valgrind.%p.log")]
        a += [BINARY, "--endpoint", "unix://" + self.sock]
        if self.node_id is not None:
            a += ["--node-id", self.node_id]
        if self.dir_backend:
            a += ["--dir-root", self.root]
        if self.dir_backend and LVM_VG:
            # the LVM backend in the directory backend's place: requests without a backend
            # parameter go to it (the directory backend stays, on its empty per-test root)
            a += ["--lvm-vg", LVM_VG, "--default-backend", "lvm"]
        a += ["--log-level", self.log_level]
        return a + self.extra_args

    def start(self):
        assert self.proc is None, "daemon already running"
        log = open(self.log_path, "ab")
        log.write(("\n==== start %d: %s\n" % (self.starts, " ".join(self.argv()))).encode())
        log.flush()
        self.starts += 1
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        self.channel = self.new_channel()
        # LVM in the VM: lvm commands take a lock on the group's metadata and seconds each
        # under TCG, so 12 concurrent creates queue for over 30 s on a loaded machine (seen)
        self.csi = csi_client.CsiClient(self.channel, self.pb,
                                        timeout=(120.0 if LVM_VG else 30.0) * SLOW)
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                self._close_channel()
                pytest.fail("ordinal-csi exited with %d during start-up\n%s"
                            % (rc, self.log_tail()))
            try:
                resp = self.csi.Probe(timeout=1.0, wait_for_ready=True)
                if not resp.HasField("ready") or resp.ready.value:
                    return self
            except grpc.RpcError as e:
                last = e
            time.sleep(0.05)
        self.kill()
        pytest.fail("ordinal-csi did not answer Probe OK within %.0f s (last: %s)\n%s"
                    % (START_TIMEOUT, last and last.code(), self.log_tail()))

    def new_channel(self):
        # short reconnect backoff: the socket appears a moment after the process starts
        return grpc.insecure_channel("unix://" + self.sock, options=[
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 250),
            ("grpc.enable_retries", 0),
        ])

    def _close_channel(self):
        if self.channel is not None:
            self.channel.close()
        self.channel = None

    def kill(self):
        self._close_channel()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self, close_channel=True):
        """SIGTERM; asserts exit code 0 within STOP_TIMEOUT and that the socket is removed."""
        if self.proc is None:
            return
        if close_channel:
            self._close_channel()
        proc = self.proc
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.proc = None
            self._close_channel()
            pytest.fail("ordinal-csi did not exit within %.0f s of SIGTERM\n%s"
                        % (STOP_TIMEOUT, self.log_tail()))
        self.proc = None
        self._close_channel()
        assert rc == 0, "ordinal-csi exited with %d after SIGTERM\n%s%s" % (
            rc, self.log_tail(), self.valgrind_report())
        assert not os.path.exists(self.sock), "socket %s left behind after exit" % self.sock

    def restart(self):
        self.stop()
        return self.start()

    def valgrind_report(self):
        if not VALGRIND:
            return ""
        out = []
        for name in sorted(os.listdir(self.workdir)):
            if name.startswith("valgrind."):
                with open(os.path.join(self.workdir, name), errors="replace") as f:
                    out.append("---- %s ----\n%s" % (name, f.read()[-6000:]))
        return "\n" + "\n".join(out)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        lines = self.log_text().splitlines()
        return "---- ordinal-csi log (last %d lines of %s) ----\n%s" % (
            min(n, len(lines)), self.log_path, "\n".join(lines[-n:]))

    # paths and ids of the dir backend
    def vol_dir(self, key):
        return os.path.join(self.root, key)

    def data_dir(self, key):
        return os.path.join(self.root, key, "data")


def cleanup_workdir(workdir):
    """Unmount whatever is left under workdir (deepest first), then remove it."""
    for mp in sorted(mounts_under(workdir), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    # read-only leftovers and the like: make sure rmtree can go through
    shutil.rmtree(workdir, ignore_errors=True)


# What makes a test one about the directory backend: it reads its ids, files or layout.
_DIR_SIGNS = ('"dir:', "'dir:", "daemon.root", ".root)", ".data_dir(", ".vol_dir(", "d.root",
              "dir_backend=False", "--dir-root")


# What makes a test one that needs a snapshot or a copy made (a thick class refuses both).
_SNAPSHOT_SIGNS = ("snap(csi, ", "make_snapshots(", 'source=("snapshot"', 'source=("volume"')


def _valgrind_subset(config, items):
    """Under valgrind (ORDINAL_VALGRIND=1, every daemon start costs seconds) every test
    function runs with its first and last parameter sets only; the others (more inputs for the
    same RPC's validation) run in every other pass. Deselected, so the summary counts them."""
    seen = {}
    for item in items:
        seen.setdefault((item.fspath, getattr(item, "originalname", item.name)), []).append(item)
    keep = {id(g[0]) for g in seen.values()} | {id(g[-1]) for g in seen.values()}
    dropped = [i for i in items if id(i) not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if id(i) in keep]


def pytest_collection_modifyitems(config, items):
    """Against the LVM backend (ORDINAL_CSI_LVM_VG), skip the tests about the directory backend:
    those marked dir_only, and those whose code reads the directory backend's ids ("dir:..."),
    root, data directories or flags; the reason names the sign found. Under valgrind, a subset
    of the parameter sets (_valgrind_subset)."""
    if VALGRIND and os.environ.get("ORDINAL_VALGRIND_ALL") != "1":
        _valgrind_subset(config, items)
    if not LVM_VG:
        return
    import inspect
    for item in items:
        fn = getattr(item, "function", None)
        try:
            src = inspect.getsource(fn) if fn else ""
        except (OSError, TypeError):
            src = ""
        sign = next((x for x in _DIR_SIGNS if x in src), None)
        if sign:
            item.add_marker(pytest.mark.skip(
                reason="about the directory backend (its code uses %s); the suite runs against "
                       "the LVM backend" % sign))
            continue
        sign = next((x for x in _SNAPSHOT_SIGNS if x in src), None)
        if sign and BACKEND == "lvm":
            item.add_marker(pytest.mark.skip(
                reason="makes a snapshot or a copy (its code uses %s): thick LVs refuse them by "
                       "design (the thin class runs it: --backend lvm-thin)" % sign))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def pb():
    return csi_client.load_pb(SOURCE)


@pytest.fixture(scope="session", autouse=True)
def binary():
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        pytest.fail("ordinal-csi binary not found at %s (build it, or set ORDINAL_CSI)" % BINARY,
                    pytrace=False)
    return BINARY


@pytest.fixture
def workdir(request):
    d = tempfile.mkdtemp(prefix="ordinal-csi-", dir=WORKDIR_PARENT)
    yield d
    if LVM_VG:
        # every LV a test left (a failed test, a test that keeps volumes) goes, so that the next
        # test starts from an empty group as it does from an empty root
        for mp in sorted(mounts_under(d), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        p = subprocess.run(["lvs", "--noheadings", "-o", "lv_name", LVM_VG], capture_output=True,
                           text=True)
        assert p.returncode == 0, "lvs %s: %s" % (LVM_VG, p.stderr)
        lvs = ["%s/%s" % (LVM_VG, n) for n in p.stdout.split() if n != LVM_THINPOOL]
        if lvs:
            p = subprocess.run(["lvremove", "-f", "-y", "-q"] + lvs, capture_output=True,
                               text=True)
            assert p.returncode == 0, "lvremove %s: %s" % (" ".join(lvs), p.stderr)
    cleanup_workdir(d)


@pytest.fixture
def daemon_factory(workdir, request):
    """start(extra_args=(), node_id=NODE_ID, root=None, sock=None, run=True, name=None,
    log_level="debug", dir_backend=True) -> Daemon.

    Every daemon started here is stopped at teardown with the exit-code and socket checks."""
    started = []

    def start(extra_args=(), node_id=NODE_ID, root=None, sock=None, run=True, name=None,
              log_level="debug", dir_backend=True):
        wd = workdir if name is None else os.path.join(workdir, name)
        os.makedirs(wd, exist_ok=True)
        d = Daemon(wd, root=root, node_id=node_id, extra_args=extra_args, sock=sock,
                   log_level=log_level, dir_backend=dir_backend)
        started.append(d)
        if run:
            d.start()
        return d

    yield start
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for d in started:
            print(d.log_tail())
    errors = []
    for d in started:
        try:
            d.stop()
        except BaseException as e:  # keep stopping the others
            errors.append(e)
            d.kill()
    if errors:
        raise errors[0]


@pytest.fixture
def daemon(daemon_factory):
    """A running node-mode daemon: .csi (client), .pb, .root, .workdir, .restart()."""
    return daemon_factory()


@pytest.fixture
def csi(daemon):
    return daemon.csi
