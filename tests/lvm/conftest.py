"""Fixtures of the LVM suite: a loop-file volume group that lvm2 handles with activation off,
and the ordinal-csi daemon serving it.

This kernel has no device-mapper, so lvm2 runs with LVM_SYSTEM_DIR pointing at a private
lvm.conf (`global { activation = 0 }`, a filter that admits only our loop device): metadata
commands work, /dev/<vg>/<lv> never appears. The daemon gets that environment and nothing
else test-specific. The VG, PV, loop device and files are removed even when tests fail.

With ORDINAL_LVM_DEVICE=/dev/X (set by tests/vm/lvm.sh inside the test VM, whose kernel has
device-mapper) the group is made on that block device instead, with activation on and udev off
(`activation { udev_sync = 0 udev_rules = 0 }`, what a node plugin container without udev
needs): LVs get real device nodes and the node path runs for real (REAL_DM below).

Environment (set by ctest): ORDINAL_SOURCE, ORDINAL_BUILD, ORDINAL_CSI, ORDINAL_SANITIZE.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.environ.get("ORDINAL_CSI") or os.path.join(SOURCE, "build", "debug", "ordinal-csi")
SLOW = 3.0 if os.environ.get("ORDINAL_SANITIZE") else 1.0
NODE_ID = "lvm-node"
VG_SIZE = 20 << 30  # sparse; nothing is ever written to the LVs
DEVICE = os.environ.get("ORDINAL_LVM_DEVICE") or None
REAL_DM = DEVICE is not None and os.path.exists("/dev/mapper/control")

sys.path.insert(0, os.path.join(SOURCE, "tests", "csi"))
import csi_client  # noqa: E402


def _have(tool):
    return shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is not None


if os.geteuid() != 0 or not _have("lvm") or not _have("losetup"):
    pytest.skip("the LVM suite needs root, lvm2 and losetup", allow_module_level=True)


class VolumeGroup:
    """A volume group on a sparse loop-backed file, with its private lvm.conf."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ordinal-lvm-", dir="/tmp")
        self.name = "ordt%d" % os.getpid()
        self.conf_dir = os.path.join(self.dir, "lvm")
        self.img = os.path.join(self.dir, "pv.img")
        self.loop = None
        os.makedirs(self.conf_dir)
        self.own_loop = DEVICE is None
        if DEVICE is None:
            with open(self.img, "wb") as f:
                f.truncate(VG_SIZE)
            self.loop = subprocess.run(["losetup", "--show", "-f", self.img], check=True,
                                       capture_output=True, text=True).stdout.strip()
            activation = 'global { activation = 0 }\n'
        else:
            self.loop = DEVICE
            activation = 'activation {\n  udev_sync = 0\n  udev_rules = 0\n}\n'
        with open(os.path.join(self.conf_dir, "lvm.conf"), "w") as f:
            f.write(activation +
                    'devices {\n'
                    '  filter = [ "a|^%s$|", "r|.*|" ]\n'
                    '  use_devicesfile = 0\n'
                    '  obtain_device_list_from_udev = 0\n'
                    '  external_device_info_source = "none"\n'
                    '}\n'
                    'backup { backup = 0 archive = 0 }\n' % self.loop)
        self.env = dict(os.environ, LVM_SYSTEM_DIR=self.conf_dir, LC_ALL="C",
                        LVM_SUPPRESS_FD_WARNINGS="1")
        self.lvm("pvcreate", "-y", self.loop)
        self.lvm("vgcreate", "-y", self.name, self.loop)

    def lvm(self, *args, check=True):
        res = subprocess.run(["lvm"] + list(args), env=self.env, capture_output=True, text=True)
        if check and res.returncode != 0:
            raise AssertionError("lvm %s failed: %s" % (" ".join(args), res.stderr))
        return res

    def lvs(self):
        """{lv_name: {size, tags}} of every LV in the group."""
        out = self.lvm("lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                       "lv_name,lv_size,lv_tags", self.name).stdout
        rows = json.loads(out)["report"][0]["lv"]
        return {r["lv_name"]: {"size": int(r["lv_size"]),
                               "tags": [t for t in r["lv_tags"].split(",") if t]} for r in rows}

    def free(self):
        out = self.lvm("vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                       "vg_free,vg_extent_size", self.name).stdout
        row = json.loads(out)["report"][0]["vg"][0]
        return int(row["vg_free"]), int(row["vg_extent_size"])

    def remove_all_lvs(self):
        for name in self.lvs():
            self.lvm("lvremove", "-y", "%s/%s" % (self.name, name), check=False)

    def destroy(self):
        try:
            if self.loop:
                self.lvm("vgremove", "-f", "-y", self.name, check=False)
                self.lvm("pvremove", "-y", "-ff", self.loop, check=False)
        finally:
            if self.loop and self.own_loop:
                subprocess.run(["losetup", "-d", self.loop], capture_output=True)
            shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """ordinal-csi on a temporary socket with --lvm-vg and the VG's lvm environment."""

    def __init__(self, workdir, vg, extra_args=(), dir_root=None, dir_backend=True):
        self.workdir = workdir
        self.vg = vg
        self.sock = os.path.join(workdir, "csi.sock")
        self.root = dir_root or os.path.join(workdir, "root")
        os.makedirs(self.root, exist_ok=True)
        self.log_path = os.path.join(workdir, "daemon.log")
        self.extra_args = list(extra_args)
        self.dir_backend = dir_backend  # False: LVM only (controller mode; node mode adds dir)
        self.proc = None
        self.channel = None
        self.csi = None
        self.pb = csi_client.load_pb(SOURCE)

    def argv(self):
        return ([BINARY, "--endpoint", "unix://" + self.sock, "--node-id", NODE_ID] +
                (["--dir-root", self.root] if self.dir_backend else []) +
                ["--lvm-vg", self.vg.name, "--log-level", "debug"] + self.extra_args)

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=self.vg.env)
        log.close()
        self.channel = grpc.insecure_channel("unix://" + self.sock, options=[
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 250),
            ("grpc.enable_retries", 0)])
        self.csi = csi_client.CsiClient(self.channel, self.pb, timeout=60.0 * SLOW)
        deadline = time.monotonic() + 20.0 * SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                pytest.fail("ordinal-csi exited with %d\n%s" % (rc, self.log_tail()))
            try:
                self.csi.Probe(timeout=1.0, wait_for_ready=True)
                return self
            except grpc.RpcError:
                time.sleep(0.05)
        self.kill()
        pytest.fail("ordinal-csi did not answer Probe\n%s" % self.log_tail())

    def _close(self):
        if self.channel is not None:
            self.channel.close()
        self.channel = None

    def kill(self):
        self._close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self):
        self._close()
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20 * SLOW)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("ordinal-csi did not stop on SIGTERM\n%s" % self.log_tail())
        self.proc = None
        assert rc == 0, "ordinal-csi exited with %d\n%s" % (rc, self.log_tail())

    def restart(self):
        self.stop()
        return self.start()

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            lines = []
        return "---- ordinal-csi log ----\n" + "\n".join(lines[-n:])


@pytest.fixture(scope="session")
def vg():
    g = VolumeGroup()
    try:
        yield g
    finally:
        g.destroy()


@pytest.fixture(scope="session")
def pb():
    return csi_client.load_pb(SOURCE)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ordinal-lvm-csi-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(vg, workdir, request):
    vg.remove_all_lvs()
    d = Daemon(workdir, vg).start()
    yield d
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(d.log_tail())
    d.stop()
    vg.remove_all_lvs()


@pytest.fixture
def csi(daemon):
    return daemon.csi


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
