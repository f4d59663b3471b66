"""A client of the daemon's --http-endpoint (/healthz, /readyz, /metrics) for the tests.

/metrics is parsed with prometheus_client's own parser (Debian's python3-prometheus-client), so
the tests check the exposition format with a parser we did not write.

    port = free_port()
    status, headers, body = get(port, "/readyz")
    m = scrape(port)                  # Metrics: .value(name, **labels), .types[family]
    wait_status(port, "/readyz", 200, timeout=30)
"""

import http.client
import socket
import time

from prometheus_client.parser import text_string_to_metric_families


def free_port():
    """A TCP port of 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, method="GET", timeout=5.0, host="127.0.0.1"):
    """One request; returns (status, {lower-case header: value}, body text)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def raw(port, data, timeout=10.0):
    """Send bytes as they are; return everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def status_of(response_bytes):
    """The status code of a raw HTTP/1.1 answer."""
    line = response_bytes.split(b"\r\n", 1)[0].decode()
    assert line.startswith("HTTP/1.1 "), "not an HTTP/1.1 status line: %r" % line
    return int(line.split()[1])


class Metrics:
    """Samples of one scrape: value(sample_name, **labels) -> float (0.0 when absent)."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.samples = {}
        for fam in text_string_to_metric_families(text):
            self.types[fam.name] = fam.type
            for s in fam.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def value(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name):
        """[(labels dict, value)] of every sample with this name."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


def scrape(port):
    status, headers, body = get(port, "/metrics")
    assert status == 200, "GET /metrics: %d %s" % (status, body)
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Metrics(body)


def wait_status(port, path, status, timeout, what=None, host="127.0.0.1"):
    """Poll path until it answers status; returns the body. AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            st, _h, body = get(port, path, timeout=2.0, host=host)
            if st == status:
                return body
            last = (st, body)
        except OSError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError("%s did not answer %d within %.0f s (last: %r)"
                                 % (what or path, status, timeout, last))
        time.sleep(0.05)
