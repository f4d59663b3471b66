"""--http-endpoint with a Kubernetes side, against the fake API server: /readyz is 503 until the
provisioner's caches have synced (the API server answering 503 to everything first) and 200
after; /metrics counts API requests by verb, resource and code, watch restarts, time-to-Bound;
in controller mode the leader gauge follows the Lease.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from fakeapi import wait_for
from test_provisioner import BINARY, SLOW, Node, claim, storage_class, wait_bound

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "csi"))
from metrics_client import free_port, get, scrape, wait_status  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's root needs root")


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ordinal-http-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start(argv, workdir, name):
    log = open(os.path.join(workdir, name + ".log"), "ab")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return p


def stop(p, workdir, name):
    p.send_signal(signal.SIGTERM)
    rc = p.wait(30 * SLOW)
    with open(os.path.join(workdir, name + ".log"), errors="replace") as f:
        assert rc == 0, "exit %d\n%s" % (rc, f.read()[-3000:])


def test_readyz_waits_for_synced_caches(apiserver, workdir):
    # every request fails until the fault is lifted: the caches cannot sync
    apiserver.fault(error_rate=100, error_code=503, retry_after=1)
    port = free_port()
    root = os.path.join(workdir, "root")
    p = start([BINARY, "--endpoint", "unix://%s/csi.sock" % workdir, "--node-id", "node-1",
               "--dir-root", root, "--kubeconfig", apiserver.kubeconfig,
               "--http-endpoint", "127.0.0.1:%d" % port, "--log-level", "debug"],
              workdir, "node")
    try:
        # alive and CSI up at once, not ready
        wait_status(port, "/healthz", 200, timeout=10 * SLOW)
        # the daemon has tried the API server and been refused: still not ready
        wait_for(lambda: apiserver.faults()["stats"]["errors"] >= 3, timeout=20 * SLOW,
                 what="the daemon's requests refused")
        st, _h, body = get(port, "/readyz")
        assert st == 503, body
        assert "kubernetes" in body, body
        assert get(port, "/healthz")[0] == 200
        m = scrape(port)
        refused = sum(v for labels, v in m.series("ordinal_kube_requests_total")
                      if labels["code"] == "503" and labels["verb"] == "list")
        assert refused >= 1, m.text

        apiserver.reset_faults()
        wait_status(port, "/readyz", 200, timeout=60 * SLOW, what="readiness after the fault")
        m = scrape(port)
        assert m.types["ordinal_kube_requests"] == "counter"
        for res in ("persistentvolumeclaims", "persistentvolumes", "storageclasses"):
            assert m.value("ordinal_kube_requests_total", verb="list", resource=res,
                           code="200") >= 1, (res, m.text)
        assert m.types["ordinal_kube_events_dropped"] == "counter"
        assert m.value("ordinal_kube_events_dropped_total") == 0
        assert "ordinal_leader" not in m.types  # node mode: no election
    finally:
        stop(p, workdir, "node")


def test_metrics_of_provisioning(apiserver):
    port = free_port()
    n1 = Node(apiserver, "node-1", extra=["--http-endpoint", "127.0.0.1:%d" % port])
    try:
        wait_status(port, "/readyz", 200, timeout=10 * SLOW)
        storage_class(apiserver)
        before = scrape(port)
        assert before.value("ordinal_provision_time_to_bound_seconds_count") == 0
        for i in range(3):
            claim(apiserver, "www-web-%d" % i, node="node-1")
        for i in range(3):
            wait_bound(apiserver, "www-web-%d" % i)
        m = scrape(port)
        assert m.types["ordinal_provision_time_to_bound_seconds"] == "histogram"
        assert m.value("ordinal_provision_time_to_bound_seconds_count") == 3
        assert m.value("ordinal_provision_time_to_bound_seconds_bucket", le="+Inf") == 3
        assert m.value("ordinal_provision_time_to_bound_seconds_sum") > 0
        assert m.value("ordinal_kube_requests_total", verb="create",
                       resource="persistentvolumes", code="201") == 3
        assert m.value("ordinal_volumes", backend="dir", state="normal") == 3
        assert m.types["ordinal_provision_queue_depth"] == "gauge"
        # the provisioner's CSI work is in-process, not a gRPC call: not counted as one
        assert m.value("ordinal_csi_calls_total", method="/csi.v1.Controller/CreateVolume",
                       code="OK") == 0

        # cut every watch: each informer restarts its watch, and the counter says so
        restarts = sum(v for _l, v in m.series("ordinal_kube_watch_restarts_total"))
        apiserver.fault(drop_watches=True)

        def restarted():
            now = scrape(port)
            per = {lab["resource"]: v for lab, v in now.series("ordinal_kube_watch_restarts_total")}
            return per if sum(per.values()) >= restarts + 3 else None
        per = wait_for(restarted, timeout=30 * SLOW, what="watch restarts counted")
        assert set(per) >= {"persistentvolumeclaims", "persistentvolumes", "storageclasses"}, per
    finally:
        n1.cleanup()


def test_leader_gauge_in_controller_mode(apiserver, workdir):
    port = free_port()
    p = start([BINARY, "--mode", "controller", "--endpoint", "unix://%s/c.sock" % workdir,
               "--node-id", "ctrl-a", "--kubeconfig", apiserver.kubeconfig,
               "--leader-election-namespace", "default", "--http-endpoint",
               "127.0.0.1:%d" % port], workdir, "ctrl")
    try:
        wait_status(port, "/healthz", 200, timeout=10 * SLOW)
        wait_for(lambda: scrape(port).value("ordinal_leader") == 1, timeout=30 * SLOW,
                 what="ordinal_leader 1")
        m = scrape(port)
        assert m.types["ordinal_leader"] == "gauge"
        assert m.series("ordinal_volumes") == []  # no backend in controller mode
        assert m.value("ordinal_kube_requests_total", verb="get", resource="leases",
                       code="404") + m.value("ordinal_kube_requests_total", verb="create",
                                             resource="leases", code="201") >= 1, m.text
        assert get(port, "/readyz")[0] == 200
    finally:
        stop(p, workdir, "ctrl")
