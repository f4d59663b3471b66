"""Start/stop the fake API server (deploy/sandbox/apiserver.py) and talk to it over HTTPS.

Used by conftest.py's `apiserver` fixture; importable by any test in tests/k8s:

    srv = FakeApiServer.start(tmpdir, extra_args=["--no-controllers"])
    srv.client.create("persistentvolumeclaims", {...}, ns="default")
    for ev in srv.client.watch("persistentvolumeclaims", ns="default", resourceVersion=rv): ...
    srv.fault(error_rate=50)        # POST /_fault
    srv.kubectl("get", "pvc")       # real kubectl with the written kubeconfig
    rc = srv.stop()                 # SIGTERM, waits, returns the exit status
"""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from urllib.parse import urlencode, urlsplit

SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
APISERVER = os.path.join(SOURCE, "deploy", "sandbox", "apiserver.py")
PYTHON = "/usr/bin/python3"
KUBECTL = os.environ.get("KUBECTL", "kubectl")

# resource plural -> (API prefix, namespaced)
PATHS = {
    "namespaces": ("/api/v1", False), "nodes": ("/api/v1", False),
    "pods": ("/api/v1", True), "persistentvolumeclaims": ("/api/v1", True),
    "persistentvolumes": ("/api/v1", False), "events": ("/api/v1", True),
    "configmaps": ("/api/v1", True), "secrets": ("/api/v1", True),
    "serviceaccounts": ("/api/v1", True), "services": ("/api/v1", True),
    "endpoints": ("/api/v1", True),
    "statefulsets": ("/apis/apps/v1", True), "deployments": ("/apis/apps/v1", True),
    "daemonsets": ("/apis/apps/v1", True), "controllerrevisions": ("/apis/apps/v1", True),
    "storageclasses": ("/apis/storage.k8s.io/v1", False),
    "csidrivers": ("/apis/storage.k8s.io/v1", False),
    "csinodes": ("/apis/storage.k8s.io/v1", False),
    "volumeattachments": ("/apis/storage.k8s.io/v1", False),
    "leases": ("/apis/coordination.k8s.io/v1", True),
}
PATCH_CTYPES = {"merge": "application/merge-patch+json",
                "strategic": "application/strategic-merge-patch+json",
                "json": "application/json-patch+json"}


class ApiError(Exception):
    """A non-2xx answer: .status (HTTP code), .body (parsed Status), .headers."""

    def __init__(self, status, body, headers):
        self.status = status
        self.body = body
        self.headers = headers
        reason = body.get("reason") if isinstance(body, dict) else None
        msg = body.get("message") if isinstance(body, dict) else body
        super().__init__("%s %s: %s" % (status, reason, msg))

    @property
    def reason(self):
        return self.body.get("reason") if isinstance(self.body, dict) else None


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.body = json.loads(raw) if raw else None
        except ValueError:
            self.body = raw.decode(errors="replace")


def path(resource, name=None, ns=None, sub=None):
    prefix, namespaced = PATHS[resource]
    p = prefix
    if namespaced and ns is not None:
        p += "/namespaces/" + ns
    p += "/" + resource
    if name:
        p += "/" + name
    if sub:
        p += "/" + sub
    return p


class Watch:
    """A streaming watch: iterate for events (dicts with type/object); next_event(timeout).

    Parses the chunked framing itself so that a clean end of the stream (the terminating
    zero-size chunk) is told apart from a connection cut mid-stream."""

    def __init__(self, conn, resp):
        self.conn = conn
        self.resp = resp
        self.fp = resp.fp
        self.buf = b""
        self.ended = False

    def _chunk(self):
        line = self.fp.readline()
        if not line:
            raise ConnectionError("watch stream cut (EOF before the last chunk)")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ConnectionError("bad chunk header %r" % line)
        if size == 0:
            while self.fp.readline() not in (b"\r\n", b"\n", b""):
                pass
            return None
        data = self.fp.read(size)
        if len(data) < size or self.fp.read(2) != b"\r\n":
            raise ConnectionError("watch stream cut mid-chunk")
        return data

    def next_event(self, timeout=5.0):
        """The next event, or None when the server ended the stream cleanly.
        Raises TimeoutError when nothing arrives in time, ConnectionError when cut."""
        self.conn.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            if self.ended:
                return None
            try:
                data = self._chunk()
            except (socket.timeout, TimeoutError):
                raise TimeoutError("no watch event within %.1fs" % timeout)
            except (ssl.SSLError, OSError) as e:
                if isinstance(e, ConnectionError):
                    raise
                raise ConnectionError("watch stream broken: %r" % e)
            if data is None:
                self.ended = True
                if not self.buf.strip():
                    return None
                self.buf += b"\n"
            else:
                self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.strip():
            return self.next_event(timeout)
        return json.loads(line)

    def events(self, n, timeout=5.0, skip_bookmarks=True):
        out = []
        while len(out) < n:
            ev = self.next_event(timeout)
            if ev is None:
                break
            if skip_bookmarks and ev["type"] == "BOOKMARK":
                continue
            out.append(ev)
        return out

    def __iter__(self):
        while True:
            ev = self.next_event(30)
            if ev is None:
                return
            yield ev

    def close(self):
        try:
            self.conn.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class Client:
    """A small JSON client (http.client + ssl with the server's CA, bearer token)."""

    def __init__(self, url, token, ca_file):
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.ctx = ssl.create_default_context(cafile=ca_file)

    def _conn(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                           timeout=timeout)

    def request(self, method, p, body=None, query=None, headers=None, content_type=None,
                token=True, raw_body=None):
        """Any request; returns a Response whatever its status."""
        if query:
            p += ("&" if "?" in p else "?") + urlencode(query)
        h = {"Accept": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + (self.token if token is True else token)
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = content_type or "application/json"
        h.update(headers or {})
        conn = self._conn()
        try:
            conn.request(method, p, body=data, headers=h)
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()

    def call(self, method, p, body=None, **kw):
        """A request that must succeed: returns the parsed body, raises ApiError otherwise."""
        r = self.request(method, p, body, **kw)
        if r.status >= 300:
            raise ApiError(r.status, r.body, r.headers)
        return r.body

    # ---- typed helpers (resource plural, name, ns) ----

    def get(self, resource, name, ns="default", sub=None, **query):
        return self.call("GET", path(resource, name, ns, sub), query=query or None)

    def list(self, resource, ns="default", **query):
        return self.call("GET", path(resource, None, ns), query=query or None)

    def create(self, resource, obj, ns="default", **query):
        return self.call("POST", path(resource, None, ns), obj, query=query or None)

    def update(self, resource, obj, ns="default", sub=None, **query):
        return self.call("PUT", path(resource, obj["metadata"]["name"], ns, sub), obj,
                         query=query or None)

    def patch(self, resource, name, body, ptype="merge", ns="default", sub=None, **query):
        return self.call("PATCH", path(resource, name, ns, sub), body,
                         content_type=PATCH_CTYPES.get(ptype, ptype), query=query or None)

    def delete(self, resource, name, ns="default", body=None, **query):
        return self.call("DELETE", path(resource, name, ns), body, query=query or None)

    def exists(self, resource, name, ns="default"):
        r = self.request("GET", path(resource, name, ns))
        if r.status == 404:
            return False
        if r.status != 200:
            raise ApiError(r.status, r.body, r.headers)
        return True

    def watch(self, resource, ns="default", name=None, timeout=30, **query):
        """Open a watch (query e.g. resourceVersion=..., allowWatchBookmarks='true')."""
        q = {"watch": "true"}
        q.update({k: v for k, v in query.items() if v is not None})
        p = path(resource, None, ns)
        if name:
            q["fieldSelector"] = "metadata.name=" + name
        conn = self._conn(timeout)
        conn.request("GET", p + "?" + urlencode(q), headers={
            "Authorization": "Bearer " + self.token, "Accept": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raw = resp.read()
            conn.close()
            raise ApiError(resp.status, json.loads(raw) if raw else None, dict(resp.getheaders()))
        return Watch(conn, resp)


def wait_for(fn, timeout=5.0, interval=0.05, what=None):
    """Poll fn() until it returns a truthy value (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except ApiError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)"
                                 % (timeout, what or getattr(fn, "__name__", "condition"), last))
        time.sleep(interval)


class FakeApiServer:
    """A running apiserver.py process and everything needed to reach it."""

    def __init__(self, directory, proc):
        self.dir = directory
        self.proc = proc
        with open(os.path.join(directory, "ready")) as f:
            info = json.load(f)
        self.url = info["server"]
        self.port = info["port"]
        self.kubeconfig = os.path.join(directory, "kubeconfig")
        self.ca_file = os.path.join(directory, "pki", "ca.crt")
        with open(os.path.join(directory, "token")) as f:
            self.token = f.read().strip()
        self.log_file = os.path.join(directory, "apiserver.log")
        self.client = Client(self.url, self.token, self.ca_file)
        self.kubectl_cache = os.path.join(directory, "kubectl-cache")

    @classmethod
    def start(cls, directory, extra_args=(), timeout=15.0):
        os.makedirs(directory, exist_ok=True)
        err = open(os.path.join(directory, "stderr.log"), "w")
        proc = subprocess.Popen([PYTHON, APISERVER, "--dir", directory] + list(extra_args),
                                stdout=err, stderr=subprocess.STDOUT)
        ready = os.path.join(directory, "ready")
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready):
            if proc.poll() is not None:
                with open(os.path.join(directory, "stderr.log")) as f:
                    raise RuntimeError("apiserver.py exited with %s:\n%s" % (proc.returncode,
                                                                             f.read()))
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("apiserver.py not ready after %.0fs" % timeout)
            time.sleep(0.02)
        return cls(directory, proc)

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit status (0 for a clean shutdown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed after SIGTERM timeout"
        return self.proc.returncode

    # ---- fault injection (POST /_fault) ----

    def fault(self, **spec):
        """e.g. fault(error_rate=50, error_code=429), fault(drop_watches=True), fault(reset=True)"""
        return self.client.call("POST", "/_fault", spec)

    def faults(self):
        return self.client.call("GET", "/_fault")

    def reset_faults(self):
        return self.fault(reset=True)

    def controllers_caught_up(self, timeout=10.0):
        """Wait until the in-process controllers have handled every change made so far (and
        retry nothing): whatever they do in response to it is in the store by then, so a test
        may assert that something did not happen. Returns their counters."""
        target = int(self.faults()["resourceVersion"])

        def done():
            c = self.faults()["controllers"]
            assert c["running"], "the controllers are not running: %r" % c
            return c if c["processed_rv"] >= target and not c["retries"] else None
        return wait_for(done, timeout=timeout, interval=0.02,
                        what="controllers to handle every change up to rv %d" % target)

    # ---- kubectl ----

    def kubectl(self, *args, check=True, input=None, timeout=30):
        """Run real kubectl against this server; returns CompletedProcess (text)."""
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        p = subprocess.run([KUBECTL, "--cache-dir", self.kubectl_cache] + list(args), env=env,
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s failed (%d):\n%s%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def log(self):
        with open(self.log_file) as f:
            return f.read()
