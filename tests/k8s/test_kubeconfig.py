"""Kubeconfigs as users write them, against the fake API server, through the C client.

tests/k8s/kube_probe.c loads each kubeconfig with kube_config_load() and talks to the server:
an exec credential plugin (tests/k8s/exec_plugin.py, run directly, no shell) whose token is used,
re-fetched after a 401 and after it expires; tls-server-name (the server's certificate names
kubernetes.default.svc, not the host we connect to); proxy-url through an HTTP CONNECT proxy; a
flow-mapping kubeconfig; and a bearer token over plain http:// refused. With ORDINAL_VALGRIND=1
the probe runs under valgrind memcheck (any error or leak fails the test).
"""

import base64
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_kube_client import probe  # noqa: E402,F401  (the fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(HERE, "exec_plugin.py")
VALGRIND = os.environ.get("ORDINAL_VALGRIND") == "1"
SLOW = 10.0 if VALGRIND else 3.0 if os.environ.get("ORDINAL_SANITIZE") else 1.0


def run_probe(probe, kubeconfig, scenario, env=None, timeout=60):
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    e.update(env or {})
    argv = [probe, kubeconfig, scenario]
    if VALGRIND:
        argv = ["valgrind", "--quiet", "--error-exitcode=97", "--leak-check=full",
                "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect"] + argv
    return subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout * SLOW)


def ca_b64(apiserver):
    with open(apiserver.ca_file, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def kubeconfig(apiserver, tmp_path, cluster, user, name="kubeconfig"):
    """A kubeconfig (flow style, as people write them by hand) with the given cluster and user
    mappings (dicts, written as JSON flow mappings, which YAML reads as they are)."""
    return write(str(tmp_path / name), """# written by hand
apiVersion: v1
kind: Config
current-context: t
contexts: [{name: t, context: {cluster: c, user: u, namespace: default}}]
clusters:
- name: c
  cluster: %s
users:
- name: u
  user: %s
""" % (json.dumps(cluster), json.dumps(user)))


@pytest.mark.apiserver_args("--no-controllers")
def test_flow_mapping_kubeconfig(apiserver, probe, tmp_path):  # noqa: F811
    cfg = write(str(tmp_path / "flow"), (
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
        "clusters: [{name: c, cluster: {server: '%s', certificate-authority-data: %s}}]\n"
        "users: [{name: u, user: {token: \"%s\"}}]\n")
        % (apiserver.url, ca_b64(apiserver), apiserver.token))
    p = run_probe(probe, cfg, "get404")
    assert p.returncode == 0, p.stderr
    assert apiserver.token not in p.stdout + p.stderr


@pytest.mark.apiserver_args("--no-controllers")
def test_exec_plugin_token_used_and_refreshed(apiserver, probe, tmp_path):  # noqa: F811
    for api in ("client.authentication.k8s.io/v1beta1", "client.authentication.k8s.io/v1"):
        state = tmp_path / ("plugin-" + api.rsplit("/", 1)[1])
        state.mkdir()
        cfg = kubeconfig(apiserver, tmp_path, {
            "server": apiserver.url, "certificate-authority-data": ca_b64(apiserver)}, {
            "exec": {"apiVersion": api, "command": PLUGIN, "args": ["--cluster", "t"],
                     "interactiveMode": "Never",
                     "env": [{"name": "PLUGIN_STATE", "value": str(state)},
                             {"name": "PLUGIN_TOKEN_FILE",
                              "value": os.path.join(apiserver.dir, "token")},
                             {"name": "PLUGIN_BAD_FIRST", "value": "1"},
                             {"name": "PLUGIN_EXPIRE_S", "value": "2"}]}},
            name="kubeconfig-" + api.rsplit("/", 1)[1])
        p = run_probe(probe, cfg, "exec", env={"PLUGIN_STATE": str(state)})
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.stdout.strip() == "ok exec"
        with open(state / "runs.jsonl") as f:
            runs = [json.loads(line) for line in f]
        assert [r["run"] for r in runs] == [1, 2, 3]
        assert runs[0]["bad"] and not runs[1]["bad"] and not runs[2]["bad"]
        # run 3 came only once run 2's credential had expired (the cache held until then)
        assert runs[2]["time"] >= runs[1]["expires"]
        # the plugin's tokens never reach the output
        assert apiserver.token not in p.stdout + p.stderr
        info = json.load(open(state / "exec-info.json"))
        assert info["apiVersion"] == api and info["spec"]["interactive"] is False


@pytest.mark.apiserver_args("--no-controllers")
def test_token_over_plain_http_refused(apiserver, probe, tmp_path):  # noqa: F811
    url = "http://127.0.0.1:%d" % apiserver.port
    cfg = kubeconfig(apiserver, tmp_path, {"server": url}, {"token": apiserver.token})
    p = run_probe(probe, cfg, "get404")
    assert p.returncode == 1
    assert "refusing to send a bearer token over plain http://" in p.stderr
    assert apiserver.token not in p.stdout + p.stderr
    cfg = kubeconfig(apiserver, tmp_path, {"server": url}, {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": PLUGIN}},
        name="exec-http")
    p = run_probe(probe, cfg, "get404")
    assert p.returncode == 1 and "plain http://" in p.stderr


@pytest.mark.apiserver_args("--no-controllers")
def test_tls_server_name(apiserver, probe, tmp_path):  # noqa: F811
    # the server's certificate names kubernetes.default.svc and 127.0.0.1; connecting to
    # "localhost" with the verification name set must work, a wrong name must fail
    url = "https://localhost:%d" % apiserver.port
    good = kubeconfig(apiserver, tmp_path, {
        "server": url, "certificate-authority-data": ca_b64(apiserver),
        "tls-server-name": "kubernetes.default.svc"}, {"token": apiserver.token}, name="good")
    p = run_probe(probe, good, "get404")
    assert p.returncode == 0, p.stderr
    bad = kubeconfig(apiserver, tmp_path, {
        "server": url, "certificate-authority-data": ca_b64(apiserver),
        "tls-server-name": "not-the-apiserver.example"}, {"token": apiserver.token}, name="bad")
    p = run_probe(probe, bad, "get404")
    # refused because the certificate was checked against tls-server-name: without the option,
    # localhost (in the certificate) would have been accepted
    assert p.returncode != 0
    assert "not-the-apiserver.example" in p.stderr, p.stderr


class ConnectProxy:
    """A minimal HTTP CONNECT proxy: records each CONNECT target and tunnels the bytes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.targets = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def handle(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk:
                c.close()
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        method, target = line.split()[:2]
        self.targets.append((method, target))
        if method != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            c.close()
            return
        host, port = target.rsplit(":", 1)
        up = socket.create_connection((host, int(port)))
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        threading.Thread(target=pipe, args=(up, c), daemon=True).start()
        pipe(c, up)

    def close(self):
        self.sock.close()


@pytest.mark.apiserver_args("--no-controllers")
def test_proxy_url(apiserver, probe, tmp_path):  # noqa: F811
    proxy = ConnectProxy()
    try:
        cfg = kubeconfig(apiserver, tmp_path, {
            "server": apiserver.url, "certificate-authority-data": ca_b64(apiserver),
            "proxy-url": "http://127.0.0.1:%d" % proxy.port}, {"token": apiserver.token})
        p = run_probe(probe, cfg, "get404", env={"NO_PROXY": "", "no_proxy": ""})
        assert p.returncode == 0, p.stderr
        assert ("CONNECT", "127.0.0.1:%d" % apiserver.port) in proxy.targets
    finally:
        proxy.close()
