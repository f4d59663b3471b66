"""ordinal-bench against a real ordinal-csi: short runs of each scenario, checked through the
JSON report (counts add up, percentiles are ordered, no errors), plus argument errors and the
start-up scenario. Not a benchmark: runs are tiny and the figures are not checked.

Environment (set by ctest; defaults make a hand run from the repo work):
    ORDINAL_SOURCE    repo root (default: two levels above this file)
    ORDINAL_BUILD     build dir; the tool is $ORDINAL_BUILD/bench/ordinal-bench
    ORDINAL_CSI       daemon binary (default: $ORDINAL_BUILD/ordinal-csi)
    ORDINAL_SANITIZE  "" or "address": sanitizer builds get longer timeouts
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("ORDINAL_BUILD") or os.path.join(SOURCE, "build", "debug")
CSI = os.environ.get("ORDINAL_CSI") or os.path.join(BUILD, "ordinal-csi")
BENCH = os.path.join(BUILD, "bench", "ordinal-bench")
SANITIZE = os.environ.get("ORDINAL_SANITIZE", "")
SLOW = 3.0 if SANITIZE else 1.0
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="publish/stats need root (bind mounts)")


def _probe_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Driver:
    def __init__(self, workdir):
        self.workdir = workdir
        self.sock = os.path.join(workdir, "csi.sock")
        self.root = os.path.join(workdir, "root")
        self.endpoint = "unix://" + self.sock
        self.argv = [CSI, "--endpoint", self.endpoint, "--node-id", "bench-node",
                     "--dir-root", self.root, "--log-level", "warn"]
        self.log = open(os.path.join(workdir, "driver.log"), "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10 * SLOW
        while not _probe_socket(self.sock):
            assert self.proc.poll() is None, "ordinal-csi exited during start-up"
            assert time.monotonic() < deadline, "ordinal-csi did not listen in time"
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(15 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
            assert rc == 0, "ordinal-csi did not exit 0 after SIGTERM"
        self.log.close()


@pytest.fixture(scope="module", autouse=True)
def binaries():
    for path in (CSI, BENCH):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            pytest.fail("%s not found (build it, or set ORDINAL_BUILD/ORDINAL_CSI)" % path,
                        pytrace=False)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ordinal-bench-test-", dir="/tmp")
    yield d
    subprocess.run(["umount", "-R", "-l", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def driver(workdir):
    d = Driver(workdir)
    yield d
    d.stop()


def bench(*args, check=True, timeout=60):
    res = subprocess.run([BENCH] + [str(a) for a in args], capture_output=True, text=True,
                         timeout=timeout * SLOW)
    if check:
        assert res.returncode == 0, "ordinal-bench %s failed (%d):\n%s\n%s" % (
            " ".join(map(str, args)), res.returncode, res.stdout, res.stderr)
    return res


def run_json(driver, *args):
    res = bench("--endpoint", driver.endpoint, "--json", *args)
    return json.loads(res.stdout)


def check_latency(lat, count=None):
    assert lat["count"] > 0
    if count is not None:
        assert lat["count"] == count
    assert 0 <= lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]


def check_clean(report, ops):
    assert report["ops"] == ops
    assert report["ops_ok"] == ops, report["first_error"]
    assert report["ops_failed"] == 0
    assert report["errors"] == {} and report["errors_total"] == 0
    assert report["elapsed_s"] > 0
    assert report["ops_per_s"] > 0
    check_latency(report["latency_ms"]["op"], ops)


def test_create_delete(driver):
    r = run_json(driver, "--scenario", "create-delete", "--ops", 60, "--concurrency", 3,
                 "--warmup", 6, "--pid", driver.proc.pid,
                 "--param", "csi.storage.k8s.io/pvc/namespace=bench",
                 "--param", "csi.storage.k8s.io/pvc/name={name}")
    check_clean(r, 60)
    check_latency(r["latency_ms"]["CreateVolume"], 60)
    check_latency(r["latency_ms"]["DeleteVolume"], 60)
    assert r["calls"] == {"CreateVolume": 60, "DeleteVolume": 60}
    assert r["parameters"]["csi.storage.k8s.io/pvc/name"] == "{name}"
    drv = r["driver"]
    assert drv["pid"] == driver.proc.pid
    for when in ("before", "after"):
        assert drv[when]["vm_rss_kib"] > 0 and drv[when]["rss_anon_kib"] > 0
        assert drv[when]["rss_anon_kib"] <= drv[when]["vm_rss_kib"]
    assert drv["after"]["cpu_s"] >= drv["before"]["cpu_s"]
    # every volume is gone, and the keys came from the parameters: nothing under _/ either
    leftovers = [n for n in os.listdir(driver.root) if not n.startswith(".")]
    assert leftovers == [], leftovers


def test_create_keeps_volumes_and_list_sees_them(driver):
    r = run_json(driver, "--scenario", "create", "--ops", 25, "--concurrency", 2,
                 "--capacity", "1Mi", "--name-prefix", "keep")
    check_clean(r, 25)
    assert r["capacity_bytes"] == 1 << 20
    assert len(os.listdir(os.path.join(driver.root, "_"))) == 25
    # list pages over 25 kept + 30 pre-created volumes, 7 per page
    r = run_json(driver, "--scenario", "list", "--ops", 4, "--volumes", 30, "--page-size", 7)
    check_clean(r, 4)
    assert r["listed_min"] == 55
    assert r["calls"]["ListVolumes"] == 4 * 8  # ceil(55 / 7) pages per listing
    check_latency(r["latency_ms"]["ListVolumes"], 32)
    # the 30 pre-created ones were deleted again
    assert len(os.listdir(os.path.join(driver.root, "_"))) == 25


@needs_root
def test_publish(driver, workdir):
    wd = os.path.join(workdir, "bench-work")
    r = run_json(driver, "--scenario", "publish", "--ops", 20, "--concurrency", 2,
                 "--work-dir", wd)
    check_clean(r, 20)
    assert r["node_stage"] is True
    for rpc in ("NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume",
                "NodeUnstageVolume"):
        check_latency(r["latency_ms"][rpc], 20)
    with open("/proc/self/mountinfo") as f:
        assert wd not in f.read(), "a mount was left behind"


@needs_root
def test_stats_and_mixed(driver):
    r = run_json(driver, "--scenario", "stats", "--ops", 50, "--concurrency", 2, "--volumes", 4)
    check_clean(r, 50)
    check_latency(r["latency_ms"]["NodeGetVolumeStats"], 50)
    r = run_json(driver, "--scenario", "mixed", "--ops", 80, "--concurrency", 2,
                 "--mix", "1,1,2,1")
    check_clean(r, 80)
    assert sum(r["ops_by_kind"].values()) == 80
    assert all(n > 0 for n in r["ops_by_kind"].values()), r["ops_by_kind"]
    assert [n for n in os.listdir(driver.root) if not n.startswith(".")] == []


def test_duration_and_text_output(driver):
    res = bench("--endpoint", driver.sock, "--duration", "300ms", "--concurrency", 2)
    assert "operations/s" in res.stdout and "CreateVolume" in res.stdout
    assert "p99" in res.stdout


def test_errors_are_counted_by_code(driver):
    # an unknown parameter is INVALID_ARGUMENT for every CreateVolume: the run completes and
    # reports them, and no DeleteVolume is attempted
    r = run_json(driver, "--ops", 10, "--param", "no-such-parameter=1")
    assert r["ops"] == 10 and r["ops_ok"] == 0 and r["ops_failed"] == 10
    assert r["errors"] == {"CreateVolume": {"INVALID_ARGUMENT": 10}}
    assert r["errors_total"] == 10
    assert "no-such-parameter" in r["first_error"]["CreateVolume"]
    assert "DeleteVolume" not in r["calls"]


def test_startup(workdir):
    sock = os.path.join(workdir, "s.sock")
    root = os.path.join(workdir, "sroot")
    res = bench("--scenario", "startup", "--endpoint", "unix://" + sock, "--ops", 3, "--json",
                "--", CSI, "--endpoint", "unix://" + sock, "--node-id", "bench-node",
                "--dir-root", root)
    r = json.loads(res.stdout)
    assert r["runs"] == 3 and r["failures"] == 0
    check_latency(r["latency_ms"]["op"], 3)
    check_latency(r["latency_ms"]["stop"], 3)
    assert r["at_ready_kib"]["rss_anon_p50"] > 0
    assert not os.path.exists(sock)


def test_bad_arguments_and_unreachable_driver(workdir):
    res = bench("--concurrency", "0", "--endpoint", "/x", check=False)
    assert res.returncode == 2 and "--concurrency" in res.stderr
    res = bench("--help", check=False)
    assert res.returncode == 0 and "--scenario" in res.stdout
    res = bench("--endpoint", os.path.join(workdir, "nothing.sock"), "--timeout", "300",
                "--ops", "1", check=False)
    assert res.returncode == 1 and "Probe" in res.stderr


# ---------------------------------------------------------------- the disk's own tools

def tool(name, *args):
    return subprocess.run([os.path.join(BUILD, "bench", name)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=60 * SLOW,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("fsync", [False, True], ids=["no-fsync", "fsync"])
def test_fsync_ceiling_reports_cycles_and_cpu(workdir, fsync):
    d = os.path.join(workdir, "ceiling")
    os.makedirs(d)
    res = tool("fsync-ceiling", "--dir", d, "--concurrency", 2, "--duration", 1, "--json",
               *([] if fsync else ["--no-fsync"]))
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["fsync"] is fsync and r["errors"] == 0 and r["cycles"] > 0
    assert r["cycles_per_s"] == pytest.approx(r["cycles"] / r["elapsed_s"], rel=1e-3)
    lat = r["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    # its own CPU: the work of a cycle is system calls, so some CPU was used
    assert r["cpu_s"] > 0
    assert r["cpu_us_per_cycle"] == pytest.approx(r["cpu_s"] * 1e6 / r["cycles"], rel=0.01)
    # every cycle cleans up after itself: only the two bookkeeping directories remain
    assert sorted(os.listdir(d)) == [".tmp", ".trash"]
    assert os.listdir(os.path.join(d, ".tmp")) == [] == os.listdir(os.path.join(d, ".trash"))


def test_flush_cost_times_every_kind(workdir):
    d = os.path.join(workdir, "flush")
    os.makedirs(d)
    res = tool("flush-cost", "--dir", d, "--iterations", 7, "--rounds", 2, "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    for kind in ("syncfs", "fsync", "log"):
        k = r[kind]
        assert k["count"] == 14, kind
        assert 0 < k["p50"] <= k["p90"] <= k["p99"] <= k["max"], kind
    assert r["p50_ratio_syncfs_to_log"] == pytest.approx(r["syncfs"]["p50"] / r["log"]["p50"],
                                                         rel=0.02)
    assert os.listdir(d) == []  # the log file and every volume directory are gone
    res = tool("flush-cost", "--dir", d, "--iterations", 0)
    assert res.returncode == 2 and "usage" in res.stderr
