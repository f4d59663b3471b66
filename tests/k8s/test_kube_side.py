"""The daemon's Kubernetes side never stands between kubelet and the CSI services, gives up
leadership in time, and never lets best-effort events hold up provisioning.

- The API server away (a port where nothing listens, or one that takes connections and drops
  them): CSI answers at once, SIGTERM exits 0 promptly at any moment (at once, while
  connecting, with a list in flight, mid-provisioning), the Kubernetes side retries in the
  background with one log line per state change, and provisions as soon as the server appears.
- Leader election: the leader's API requests slowed past the renew deadline (the fake server's
  User-Agent scoped latency fault): the old leader stops leading before the new one acquires.
- Events failing (fault injection scoped to event POSTs): claims get Bound at once, the dropped
  events are counted.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

import grpc
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "csi"))

import csi_client  # noqa: E402
from fakeapi import SOURCE, wait_for  # noqa: E402

BINARY = os.environ.get("ORDINAL_CSI") or os.path.join(SOURCE, "build", "debug", "ordinal-csi")
SLOW = 3.0 if os.environ.get("ORDINAL_SANITIZE") else 1.0
DRIVER = "ordinal.csi.dev"
SELECTED = "volume.kubernetes.io/selected-node"
# What "promptly" means for SIGTERM: well inside Kubernetes' default 30 s grace period.
EXIT_WITHIN = 5.0 * SLOW
TOKEN = "0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's root needs root")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_kubeconfig(path, port):
    """A kubeconfig for https://127.0.0.1:port with a fixed token, as an API server that is not
    there yet would be configured."""
    with open(path, "w") as f:
        f.write("""apiVersion: v1
kind: Config
clusters:
- name: later
  cluster:
    server: https://127.0.0.1:%d
    insecure-skip-tls-verify: true
contexts:
- name: later
  context:
    cluster: later
    user: later
current-context: later
users:
- name: later
  user:
    token: %s
""" % (port, TOKEN))
    return path


class Daemon:
    """One ordinal-csi with --kubeconfig; start() returns as soon as the process runs."""

    def __init__(self, workdir, name, kubeconfig, mode="node"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.name = name
        self.root = os.path.join(self.dir, "root")
        os.makedirs(self.root)
        self.sock = os.path.join(self.dir, "csi.sock")
        self.log = os.path.join(self.dir, "daemon.log")
        self.argv = [BINARY, "--endpoint", "unix://" + self.sock, "--node-id", name,
                     "--kubeconfig", kubeconfig, "--log-level", "debug", "--mode", mode]
        if mode == "node":
            self.argv += ["--dir-root", self.root]
        else:
            self.argv += ["--leader-election-namespace", "default"]
        self.proc = None
        self.channel = None
        self.csi = None

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        return self

    def connect(self):
        """A CSI client, once the socket is there (it is made before the Kubernetes side
        starts)."""
        wait_for(lambda: os.path.exists(self.sock) or self.proc.poll() is not None,
                 timeout=10 * SLOW, what="the CSI socket")
        assert self.proc.poll() is None, self.log_text()[-3000:]
        if self.channel:
            self.channel.close()
        self.channel = grpc.insecure_channel("unix://" + self.sock, options=[
            ("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0),
            ("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 250)])
        self.csi = csi_client.CsiClient(self.channel, csi_client.load_pb(SOURCE), timeout=2.0)
        return self.csi

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=10.0):
        wait_for(lambda: text in self.log_text() or self.proc.poll() is not None,
                 timeout=timeout * SLOW, what="log line %r" % text)
        assert self.proc.poll() is None, "exited %s:\n%s" % (self.proc.returncode,
                                                              self.log_text()[-3000:])

    def term(self):
        """SIGTERM; returns (exit status, seconds until exit); kills after EXIT_WITHIN."""
        if self.channel:
            self.channel.close()
            self.channel = None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "still running %.1f s after SIGTERM (killed)" % EXIT_WITHIN
        return rc, time.monotonic() - t0

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons():
    workdir = tempfile.mkdtemp(prefix="ordinal-kube-side-")
    made = []

    def make(name, kubeconfig, mode="node"):
        d = Daemon(workdir, name, kubeconfig, mode)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)


def assert_exits_promptly(d):
    rc, took = d.term()
    assert rc == 0, "exit %r after SIGTERM\n%s" % (rc, d.log_text()[-3000:])
    assert took < EXIT_WITHIN
    assert not os.path.exists(d.sock), "socket left behind"
    print("%s: exit 0 %.3f s after SIGTERM" % (d.name, took))
    return took


def csi_answers_at_once(d):
    """Probe, GetPluginInfo and NodeGetInfo answer, each within a second of asking."""
    csi = d.connect()
    for name in ("Probe", "GetPluginInfo", "NodeGetInfo"):
        t0 = time.monotonic()
        resp = getattr(csi, name)(timeout=2.0 * SLOW, wait_for_ready=True)
        took = time.monotonic() - t0
        assert took < 1.0 * SLOW, "%s took %.2f s" % (name, took)
        if name == "GetPluginInfo":
            assert resp.name == DRIVER
        if name == "NodeGetInfo":
            assert resp.node_id == d.name


class DroppingListener:
    """A TCP port that accepts connections and closes them at once, counting them: an API
    server that is "there" but never answers, with an observable number of attempts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            c.close()

    def close(self):
        self.closed = True
        self.sock.close()


# ---- item 3: CSI serves, SIGTERM works, while the API server is away ----

@pytest.mark.parametrize("moment", ["at-once", "while-connecting"])
def test_api_server_away_csi_serves_and_sigterm_exits_0(daemons, tmp_path, moment):
    kc = write_kubeconfig(str(tmp_path / "kubeconfig"), free_port())  # nothing listens there
    d = daemons("node-away", kc).start()
    if moment == "at-once":
        # as soon as the Kubernetes side starts (before the fix: blocked there for 3 minutes)
        wait_for(lambda: "Kubernetes API at" in d.log_text(), timeout=10 * SLOW,
                 what="the daemon reading its kubeconfig")
    else:
        csi_answers_at_once(d)
        d.wait_log("not reachable")
        csi_answers_at_once(d)
    assert_exits_promptly(d)


def test_api_server_away_controller_serves_and_sigterm_exits_0(daemons, tmp_path):
    kc = write_kubeconfig(str(tmp_path / "kubeconfig"), free_port())
    d = daemons("ctrl-away", kc, mode="controller").start()
    csi = d.connect()
    t0 = time.monotonic()
    assert csi.GetPluginInfo(timeout=2.0 * SLOW, wait_for_ready=True).name == DRIVER
    assert time.monotonic() - t0 < 1.0 * SLOW
    d.wait_log("not reachable")
    assert_exits_promptly(d)


def test_api_server_away_one_log_line_not_one_per_retry(daemons, tmp_path):
    lis = DroppingListener()
    try:
        kc = write_kubeconfig(str(tmp_path / "kubeconfig"), lis.port)
        d = daemons("node-drop", kc).start()
        csi_answers_at_once(d)
        # several rounds of retries by the three informers
        wait_for(lambda: lis.count >= 12, timeout=30 * SLOW, what="12 connection attempts")
        csi_answers_at_once(d)
        text = d.log_text()
        warnings = [ln for ln in text.splitlines() if " warn " in ln or " error " in ln]
        assert len([ln for ln in warnings if "not reachable" in ln]) == 1, text
        assert warnings == [ln for ln in warnings if "not reachable" in ln], \
            "other warnings per retry:\n" + "\n".join(warnings)
        assert "provisioner started" not in text
        assert_exits_promptly(d)
    finally:
        lis.close()


def test_sigterm_with_a_list_in_flight_exits_0(daemons, apiserver_factory):
    """The API server accepts the requests and takes 60 s to answer each: the caches never
    sync; SIGTERM must not wait for the lists."""
    api = apiserver_factory("--latency-ms", "60000")
    d = daemons("node-slow", api.kubeconfig).start()
    csi_answers_at_once(d)
    wait_for(lambda: api.faults()["stats"]["delayed"] >= 3, timeout=10 * SLOW,
             what="the three lists in flight")
    csi_answers_at_once(d)
    assert_exits_promptly(d)


def storage_class(api, reclaim="Delete"):
    api.client.create("storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "ordinal"}, "provisioner": DRIVER, "reclaimPolicy": reclaim,
        "volumeBindingMode": "WaitForFirstConsumer"}, ns=None)


def claim(api, name, node):
    return api.client.create("persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default", "annotations": {SELECTED: node}},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                 "resources": {"requests": {"storage": "16Mi"}}}})


def phase(api, name):
    return api.client.get("persistentvolumeclaims", name).get("status", {}).get("phase")


def test_sigterm_mid_provisioning_exits_0(daemons, apiserver):
    d = daemons("node-mid", apiserver.kubeconfig).start()
    d.wait_log("provisioner started")
    storage_class(apiserver)
    # from now on every request of this daemon takes 60 s: the claim's sync hangs in one
    apiserver.fault(latency_ms=60000, agent="node-mid")
    before = apiserver.faults()["stats"]["delayed"]
    claim(apiserver, "mid-0", "node-mid")
    wait_for(lambda: apiserver.faults()["stats"]["delayed"] > before, timeout=10 * SLOW,
             what="a provisioning request in flight")
    assert_exits_promptly(d)
    apiserver.reset_faults()


def test_api_server_starting_later_gets_the_claim_provisioned(daemons, apiserver_factory,
                                                              tmp_path):
    port = free_port()
    kc = write_kubeconfig(str(tmp_path / "kubeconfig"), port)
    d = daemons("node-later", kc).start()
    csi_answers_at_once(d)
    d.wait_log("not reachable")
    api = apiserver_factory("--port", str(port), "--token", TOKEN)
    storage_class(api)
    rv = api.client.list("persistentvolumes", ns=None)["metadata"]["resourceVersion"]
    with api.client.watch("persistentvolumes", ns=None, resourceVersion=rv) as w:
        c = claim(api, "later-0", "node-later")
        pv = "pvc-" + c["metadata"]["uid"]
        deadline = time.monotonic() + 60 * SLOW
        while True:
            assert time.monotonic() < deadline, "no PV %s\n%s" % (pv, d.log_text()[-3000:])
            ev = w.next_event(timeout=60 * SLOW)
            if ev and ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == pv:
                break
    wait_for(lambda: phase(api, "later-0") == "Bound", timeout=20 * SLOW, what="Bound")
    text = d.log_text()
    assert text.count("not reachable") == 1, text
    assert text.count("answers") == 1, text
    csi_answers_at_once(d)
    assert_exits_promptly(d)


# ---- item 4: leader election gives up in time ----

def log_time(line):
    """The wall-clock time of a text log line ("2026-01-02T03:04:05.678Z info ...")."""
    stamp = line.split(" ", 1)[0]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def micro_time(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def first_line(text, needle):
    for ln in text.splitlines():
        if needle in ln:
            return ln
    return None


LEASE = "ordinal-csi-dev"


def test_slow_leader_stops_leading_before_another_acquires(daemons, apiserver):
    a = daemons("ctrl-a", apiserver.kubeconfig, mode="controller").start()
    a.wait_log("this instance leads", timeout=20)
    b = daemons("ctrl-b", apiserver.kubeconfig, mode="controller").start()
    b.wait_log("candidate ctrl-b")
    lease = apiserver.client.get("leases", LEASE)
    assert lease["spec"]["holderIdentity"] == "ctrl-a"
    with apiserver.client.watch("leases", name=LEASE,
                                resourceVersion=lease["metadata"]["resourceVersion"]) as w:
        # ctrl-a's requests now take 12 s (past the 10 s renew deadline) and then fail without
        # being applied (504), so its renewals cannot succeed; ctrl-b is not affected
        apiserver.fault(latency_ms=12000, error_rate=100, error_code=504, agent="ctrl-a")
        holders = ["ctrl-a"]
        deadline = time.monotonic() + 40 * SLOW
        while holders[-1] != "ctrl-b":
            assert time.monotonic() < deadline, "ctrl-b never acquired: %s" % holders
            ev = w.next_event(timeout=40 * SLOW)
            assert ev is not None
            if ev["type"] == "BOOKMARK":
                continue
            spec = ev["object"]["spec"]
            if spec.get("holderIdentity") != holders[-1]:
                holders.append(spec.get("holderIdentity"))
            acquired = spec
    # the Lease went from ctrl-a straight to ctrl-b: no one else in between
    assert holders == ["ctrl-a", "ctrl-b"], holders
    b.wait_log("this instance leads")
    stopped = first_line(a.log_text(), "this instance no longer leads")
    assert stopped, "ctrl-a never stopped leading:\n" + a.log_text()[-3000:]
    assert "lost lease" in a.log_text()
    # ctrl-a stopped before ctrl-b even wrote its acquisition (acquireTime is ctrl-b's clock
    # when it sent the request; same machine, same clock), and before ctrl-b began to lead
    b_leads = first_line(b.log_text(), "this instance leads")
    assert log_time(stopped) < micro_time(acquired["acquireTime"]), (stopped, acquired)
    assert log_time(stopped) < log_time(b_leads), (stopped, b_leads)
    print("ctrl-a stopped leading %.2f s before ctrl-b's acquisition"
          % (micro_time(acquired["acquireTime"]) - log_time(stopped)).total_seconds())
    # and it stopped within the renew deadline of its last renewal, not after its requests
    # gave up
    assert acquired["leaseTransitions"] >= 1
    apiserver.reset_faults()
    assert_exits_promptly(a)
    assert_exits_promptly(b)


# ---- item 7: events are best effort ----

def ours(events):
    """Events this driver recorded (the fake server's own controllers record some too)."""
    return [e for e in events if e.get("reportingComponent") == DRIVER]


def test_failing_events_do_not_hold_up_provisioning(daemons, apiserver):
    d = daemons("node-ev", apiserver.kubeconfig).start()
    d.wait_log("provisioner started")
    storage_class(apiserver)
    # every event POST answers 429 with Retry-After 2 s: the client's normal policy would
    # retry each for 10 s
    apiserver.fault(error_rate=100, error_code=429, retry_after=2, match="/events",
                    methods=["POST"])
    names = ["ev-%d" % i for i in range(4)]
    t0 = time.monotonic()
    for n in names:
        claim(apiserver, n, "node-ev")
    wait_for(lambda: all(phase(apiserver, n) == "Bound" for n in names), timeout=30 * SLOW,
             what="claims Bound")
    took = time.monotonic() - t0
    assert took < 4.0 * SLOW, "Bound after %.1f s with failing events" % took
    print("%d claims Bound %.2f s after creation with every event POST failing"
          % (len(names), took))
    assert apiserver.faults()["stats"]["errors"] > 0
    # every event (Provisioning and ProvisioningSucceeded per claim) dropped and counted
    want = 2 * len(names)
    wait_for(lambda: re.search(r"%d dropped so far" % want, d.log_text()), timeout=60 * SLOW,
             what="%d events dropped" % want)
    assert d.log_text().count("further drops at debug level") == 1
    assert ours(apiserver.client.list("events")["items"]) == []
    # the API server recovers: events are recorded again
    apiserver.reset_faults()
    claim(apiserver, "ev-after", "node-ev")
    wait_for(lambda: any(e["involvedObject"]["name"] == "ev-after"
                         for e in ours(apiserver.client.list("events")["items"])),
             timeout=20 * SLOW, what="an event for ev-after")
    d.wait_log("events: recorded again (%d dropped in all)" % want)
    assert_exits_promptly(d)


def test_bad_kubeconfig_still_exits_1(daemons, tmp_path):
    """A kubeconfig that cannot be used is a user error at start-up (unlike an API server that
    is away): exit 1."""
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\nclusters: 42\n")
    d = daemons("node-bad", str(kc)).start()
    assert d.proc.wait(10 * SLOW) == 1, d.log_text()

