"""--http-endpoint: /healthz, /readyz and /metrics of a node daemon without Kubernetes, the HTTP
rules of the small server (404, 405, 400, 431, 505, 408), and strict flag checking (exit 2).

/metrics is parsed with prometheus_client's parser; call counts are compared before and after
the calls a test makes (the fixture's start-up Probes come before the first scrape).
"""

import os
import socket
import subprocess
import time

import grpc
import pytest

from conftest import BINARY, IS_ROOT, SLOW
from csi_client import create_req, expect_error
from metrics_client import free_port, get, raw, scrape, status_of, wait_status

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the daemon's root needs root")


@pytest.fixture
def served(daemon_factory):
    port = free_port()
    d = daemon_factory(extra_args=["--http-endpoint", "127.0.0.1:%d" % port])
    d.port = port
    return d


def test_health_and_ready(served):
    st, h, body = get(served.port, "/healthz")
    assert (st, body) == (200, "ok\n")
    assert h["connection"] == "close"
    assert h["content-type"] == "text/plain; charset=utf-8"
    # no Kubernetes side configured: ready as soon as CSI serves
    st, _h, body = get(served.port, "/readyz")
    assert (st, body) == (200, "ok\n")
    # a query string does not change the path
    assert get(served.port, "/healthz?verbose=1")[0] == 200


def test_metrics_count_csi_calls(served, pb):
    csi = served.csi
    before = scrape(served.port)

    for _ in range(3):
        csi.GetPluginInfo()
    vol = csi.CreateVolume(create_req(pb, "metrics-a")).volume
    csi.CreateVolume(create_req(pb, "metrics-a"))  # idempotent: OK again
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, csi.CreateVolume, pb.CreateVolumeRequest())
    csi.NodeGetInfo()
    csi.DeleteVolume(volume_id="dir:unknown-volume")  # unknown id: OK by the spec

    after = scrape(served.port)
    assert after.types["ordinal_csi_calls"] == "counter"
    assert after.types["ordinal_csi_call_duration_seconds"] == "histogram"

    def delta(method, code):
        labels = {"method": method, "code": code}
        return (after.value("ordinal_csi_calls_total", **labels)
                - before.value("ordinal_csi_calls_total", **labels))

    assert delta("/csi.v1.Identity/GetPluginInfo", "OK") == 3
    assert delta("/csi.v1.Controller/CreateVolume", "OK") == 2
    assert delta("/csi.v1.Controller/CreateVolume", "INVALID_ARGUMENT") == 1
    assert delta("/csi.v1.Node/NodeGetInfo", "OK") == 1
    assert delta("/csi.v1.Controller/DeleteVolume", "OK") == 1

    # one latency observation per call, buckets cumulative up to +Inf == _count
    m = "/csi.v1.Controller/CreateVolume"
    count = after.value("ordinal_csi_call_duration_seconds_count", method=m)
    assert count - before.value("ordinal_csi_call_duration_seconds_count", method=m) == 3
    buckets = sorted(((float(lab["le"]), v) for lab, v in
                      after.series("ordinal_csi_call_duration_seconds_bucket")
                      if lab["method"] == m))
    assert buckets[-1] == (float("inf"), count)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    assert after.value("ordinal_csi_call_duration_seconds_sum", method=m) > 0

    # volumes by backend and state, asked from the backend itself
    assert after.types["ordinal_volumes"] == "gauge"
    assert after.value("ordinal_volumes", backend="dir", state="normal") == 1
    assert after.value("ordinal_volumes", backend="dir", state="abnormal") == 0
    csi.DeleteVolume(volume_id=vol.volume_id)
    assert scrape(served.port).value("ordinal_volumes", backend="dir", state="normal") == 0

    # build info; no Kubernetes families without a Kubernetes side
    assert after.types["ordinal_build_info"] == "gauge"
    [(labels, v)] = after.series("ordinal_build_info")
    assert v == 1 and labels["version"]
    assert "ordinal_leader" not in after.types
    assert after.types["ordinal_provision_queue_depth"] == "gauge"
    assert after.value("ordinal_provision_time_to_bound_seconds_count") == 0


def test_http_rules(served):
    p = served.port
    st, _h, body = get(p, "/nope")
    assert st == 404 and "/metrics" in body
    st, h, _b = get(p, "/metrics", method="POST")
    assert st == 405 and h["allow"] == "GET"
    assert get(p, "/healthz", method="HEAD")[0] == 405
    assert get(p, "/readyz", method="DELETE")[0] == 405

    assert status_of(raw(p, b"garbage\r\n\r\n")) == 400
    assert status_of(raw(p, b"GET /healthz\r\n\r\n")) == 400
    assert status_of(raw(p, b"GET /healthz HTTP/1.1\r\n\r\n")) == 400  # no Host
    assert status_of(raw(p, b"GET /healthz HTTP/1.0\r\n\r\n")) == 200
    assert status_of(raw(p, b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n")) == 505
    assert status_of(raw(p, b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n")) == 400
    assert status_of(raw(p, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd")) \
        == 400
    assert status_of(raw(p, b"GET /he\0lthz HTTP/1.1\r\nHost: x\r\n\r\n")) == 400
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n"
    assert status_of(raw(p, big)) == 431
    # still serving after all that
    assert get(p, "/healthz")[0] == 200


def test_slow_client_times_out_and_blocks_nobody(served, pb):
    p = served.port
    slow = socket.create_connection(("127.0.0.1", p), timeout=30)
    slow.sendall(b"GET /metr")
    idle = [socket.create_connection(("127.0.0.1", p)) for _ in range(5)]
    started = time.monotonic()
    # others are served while the slow one waits, and CSI is not held up either
    assert get(p, "/healthz")[0] == 200
    served.csi.GetPluginInfo()
    assert time.monotonic() - started < 2.0 * SLOW
    answer = b""
    while True:
        chunk = slow.recv(4096)
        if not chunk:
            break
        answer += chunk
    waited = time.monotonic() - started
    slow.close()
    for s in idle:
        s.close()
    assert status_of(answer) == 408
    assert 4.0 <= waited <= 10.0 * SLOW, waited


def test_clients_that_keep_the_connection_free_their_slot(served):
    """16 clients read their answer and never close: a 17th is served after the 1 s drain, not
    after the 5 s deadline."""
    held = []
    for _ in range(16):
        s = socket.create_connection(("127.0.0.1", served.port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        held.append(s)
    for s in held:
        answer = b""
        while not answer.endswith(b"ok\n"):
            chunk = s.recv(4096)
            assert chunk, answer
            answer += chunk
    started = time.monotonic()
    assert get(served.port, "/healthz", timeout=10)[0] == 200
    waited = time.monotonic() - started
    for s in held:
        s.close()
    assert waited < 3.5, waited  # the server's constants, not the build's speed


@pytest.mark.parametrize("value", [
    "", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", "::1:9808", "[::1]",
    "example.com:9808", "1.2.3:9808", ":9808", "localhost:-1", "127.0.0.1:9808 ",
])
def test_bad_flag_exits_2(value, workdir):
    p = subprocess.run([BINARY, "--endpoint", "unix://%s/csi.sock" % workdir, "--dir-root",
                        os.path.join(workdir, "root"), "--http-endpoint", value],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 2, (p.returncode, p.stderr)
    # the flag's own check answered (not getopt's "unknown option"), naming the value
    assert ("--http-endpoint %s: " % value) in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(workdir, "root")), "a bad flag changed something"


def test_port_taken_exits_1(workdir):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = subprocess.run([BINARY, "--endpoint", "unix://%s/csi.sock" % workdir, "--dir-root",
                            os.path.join(workdir, "root"), "--http-endpoint",
                            "127.0.0.1:%d" % port],
                           capture_output=True, text=True, timeout=30 * SLOW)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "cannot bind" in p.stderr
    assert not os.path.exists(os.path.join(workdir, "csi.sock"))


def test_ipv6_and_localhost(daemon_factory):
    port = free_port()
    d = daemon_factory(extra_args=["--http-endpoint", "localhost:%d" % port], name="v4")
    assert get(port, "/healthz")[0] == 200
    d.stop()
    port6 = free_port()
    daemon_factory(extra_args=["--http-endpoint", "[::1]:%d" % port6], name="v6")
    assert wait_status(port6, "/healthz", 200, timeout=5 * SLOW, host="::1") == "ok\n"


def test_sigterm_with_open_connections(served):
    """Shutdown does not wait for HTTP clients: the fixture's stop checks exit 0 in time."""
    conns = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(20)]
    conns[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # half a request
    started = time.monotonic()
    served.stop()
    assert time.monotonic() - started < 5.0 * SLOW
    for c in conns:
        c.close()
