"""How the sandbox kubelets run Ordinal's own pods (ordinal-sandbox, pods mode).

HostProcess: a container run as a plain host process (the argv the pod plan computed: podns.py
with the ServiceAccount token volume, then ordinal-csi), with containers.Process's interface, so
the kubelet's probes, restarts, back-off and status apply to it unchanged.

Effect: a sidecar image the sandbox cannot run, stood in for by its effect in a thread of the
kubelet's process, again with containers.Process's interface. Its flags are parsed as the Go
binary parses them (an unknown flag exits 2 with Go's message), so a typo in the manifests
shows as a crashing container. Two bodies:
- registrar (csi-node-driver-registrar): the driver's name from GetPluginInfo, then the kubelet
  plugin registration API on the registration socket (pluginreg.py); the sandbox kubelet's
  plugin watcher dials it, calls NodeGetInfo on the endpoint it names and writes CSINode, the
  node-id annotation and the topology labels; /healthz on --http-endpoint answers 200 once
  kubelet reported the registration.
- livenessprobe: /healthz on --health-port calls the CSI Probe on the socket (--probe-timeout):
  200 when the plugin is ready, 500 with the error otherwise, as the real sidecar answers.
"""

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time

import containers

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))


class HostProcess(containers.Process):
    def __init__(self, name, argv, env, log_path, on_exit, on_start=None):
        spec = containers.Spec(name, argv, env, name, [], None, None, log_path)
        super().__init__(spec, on_exit)
        self.on_start = on_start

    def start(self):
        os.makedirs(os.path.dirname(self.spec.log_path), exist_ok=True)
        try:
            with open(self.spec.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.spec.argv, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log, env=self.spec.env,
                                             close_fds=True, start_new_session=True)
        except OSError as e:
            raise containers.ContainerError("cannot start %s: %s" % (self.spec.argv[0], e))
        self.pid = self.proc.pid
        self.started_at = time.time()
        self._execd.set()
        threading.Thread(target=self._wait, name="wait-%s" % self.spec.name,
                         daemon=True).start()
        if self.on_start is not None:
            self.on_start(self)


def parse_go_flags(args, known):
    """{name: value} of -name=value / --name=value / --name value arguments, or raise
    ValueError with Go's flag package message."""
    out, i = {}, 0
    while i < len(args):
        a = args[i]
        m = re.match(r"^--?([A-Za-z0-9][-A-Za-z0-9_.]*)(=(.*))?$", a)
        if not m:
            raise ValueError("unexpected argument %r" % a)
        name = m.group(1)
        if name not in known:
            raise ValueError("flag provided but not defined: -%s" % name)
        if m.group(2) is not None:
            out[name] = m.group(3)
        elif known[name] == "bool":
            out[name] = "true"
        elif i + 1 < len(args):
            i += 1
            out[name] = args[i]
        else:
            raise ValueError("flag needs an argument: -%s" % name)
        i += 1
    return out


def go_duration(text):
    m = re.match(r"^(\d+(?:\.\d+)?)(ms|s|m)$", text or "")
    if not m:
        raise ValueError("invalid duration %r" % text)
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


def host_port(endpoint, ip):
    """ip, port of a Go listen address (":9809", "0.0.0.0:9809"): the pod's own address."""
    host, _, port = endpoint.rpartition(":")
    if host not in ("", "0.0.0.0", "[::]", "::"):
        ip = host
    return ip, int(port)


class Effect:
    """A sidecar stood in for by body(effect) running in a thread until effect.stopping."""

    def __init__(self, name, log_path, on_exit, body):
        self.spec = containers.Spec(name, [], {}, name, [], None, None, log_path)
        self.on_exit = on_exit
        self.body = body
        self.pid = None
        self.proc = self
        self.started_at = None
        self.finished_at = None
        self.exit_code = None
        self.signalled = None
        self.stopping = threading.Event()
        self._done = threading.Event()
        self._log_lock = threading.Lock()

    def log(self, msg):
        with self._log_lock, open(self.spec.log_path, "a") as f:
            f.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))

    def start(self):
        os.makedirs(os.path.dirname(self.spec.log_path), exist_ok=True)
        self.started_at = time.time()
        threading.Thread(target=self._run, name="effect-%s" % self.spec.name,
                         daemon=True).start()

    def _run(self):
        try:
            rc = self.body(self)
        except Exception as e:  # noqa: BLE001 - the container's crash
            self.log("error: %s" % e)
            rc = 1
        if self.signalled is not None and rc == 0:
            rc = 0 if self.signalled == signal.SIGTERM else 128 + self.signalled
        self.exit_code = rc
        self.finished_at = time.time()
        self._done.set()
        try:
            self.on_exit()
        except Exception:  # noqa: BLE001
            pass

    def running(self):
        return self.started_at is not None and not self._done.is_set()

    def wait(self, timeout):
        return self._done.wait(timeout)

    def kill(self, sig):
        if self.running():
            self.signalled = sig
            self.stopping.set()

    def stop(self, grace):
        self.kill(signal.SIGTERM)
        self.wait(max(0.0, grace) + 5)

    def exec(self, argv, timeout, env=None):
        return 126, "%s is stood in for by the sandbox: there is nothing to exec into" % (
            self.spec.name)

    def log_tail(self, n=4096):
        return containers.Process.log_tail(self, n)


def serve_http(effect, ip, port, handler):
    """An HTTP server on ip:port answering GET with handler(path) -> (code, text), stopped
    with the effect."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code, text = handler(self.path.split("?")[0])
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            pass
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    srv = http.server.ThreadingHTTPServer((ip, port), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    effect.log("serving http://%s:%d/healthz" % (ip, port))
    return srv


def csi_call(sock, method, timeout):
    sys.path.insert(0, os.path.join(SOURCE, "tests", "csi"))
    import grpc
    import csi_client
    pb = csi_client.load_pb(SOURCE)
    with grpc.insecure_channel("unix://" + sock) as ch:
        return getattr(csi_client.CsiClient(ch, pb), method)(timeout=timeout)


REGISTRAR_FLAGS = {"csi-address": "str", "kubelet-registration-path": "str",
                   "http-endpoint": "str", "health-port": "str", "v": "str", "timeout": "str",
                   "mode": "str", "plugin-registration-path": "str",
                   "kubelet-registration-probe-path": "str", "enable-pprof": "bool",
                   "connection-timeout": "str"}
LIVENESS_FLAGS = {"csi-address": "str", "health-port": "str", "probe-timeout": "str",
                  "v": "str", "http-endpoint": "str", "metrics-address": "str",
                  "metrics-path": "str"}


def registrar(args, sock_of, host_of, ip):
    """The body of node-driver-registrar's stand-in. sock_of(container path) is the CSI socket
    on the host; host_of(container path) where a container folder is on the host. As the real
    sidecar: GetPluginInfo on --csi-address for the driver's name, then the kubelet
    registration API (pluginreg.serve) on <--plugin-registration-path>/<driver>-reg.sock with
    endpoint --kubelet-registration-path; kubelet's NotifyRegistrationStatus with
    plugin_registered false ends the container (exit 1: it is restarted)."""
    def body(e):
        import pluginreg
        try:
            f = parse_go_flags(args, REGISTRAR_FLAGS)
            timeout = go_duration(f.get("timeout", "1s"))
        except ValueError as err:
            e.log(str(err))
            return 2
        if not f.get("csi-address") or not f.get("kubelet-registration-path"):
            e.log("--csi-address and --kubelet-registration-path are required")
            return 1
        sock = sock_of(f["csi-address"])
        reg_dir = host_of(f.get("plugin-registration-path") or "/registration")
        state = {"registered": False}
        failed = threading.Event()
        srv = http = None
        if f.get("http-endpoint"):
            http = serve_http(e, *host_port(f["http-endpoint"], ip), lambda p: (
                (200, "ok\n") if p == "/healthz" and state["registered"] else
                (404, "not found\n") if p != "/healthz" else (500, "not registered\n")))
        try:
            name = None
            while name is None and not e.stopping.is_set():
                try:
                    name = csi_call(sock, "GetPluginInfo", max(timeout, 5.0)).name
                except Exception as err:  # noqa: BLE001 - retried, as the sidecar waits
                    e.log("GetPluginInfo on %s: %s" % (sock, str(err).splitlines()[0]))
                    e.stopping.wait(1.0)
            if name is None:
                return 0
            e.log("CSI driver name: \"%s\"" % name)

            def on_status(ok, error):
                if ok:
                    state["registered"] = True
                    e.log("Received NotifyRegistrationStatus call: &RegistrationStatus{"
                          "PluginRegistered:true,Error:,}")
                else:
                    e.log("Registration process failed with error: %s, restarting "
                          "registration container." % error)
                    failed.set()
            path = os.path.join(reg_dir, name + "-reg.sock")
            srv = pluginreg.serve(path, {"type": pluginreg.CSI_PLUGIN, "name": name,
                                         "endpoint": f["kubelet-registration-path"],
                                         "supported_versions": ["1.0.0"]}, on_status)
            e.log("Registration Server started at: %s" % path)
            while not e.stopping.is_set() and not failed.is_set():
                e.stopping.wait(0.5)
            return 1 if failed.is_set() else 0
        finally:
            if srv is not None:
                srv.stop()
            if http is not None:
                http.shutdown()
                http.server_close()
    return body


def livenessprobe(args, sock_of, ip):
    def body(e):
        try:
            f = parse_go_flags(args, LIVENESS_FLAGS)
            timeout = go_duration(f.get("probe-timeout", "1s"))
        except ValueError as err:
            e.log(str(err))
            return 2
        if not f.get("csi-address"):
            e.log("--csi-address is required")
            return 1
        sock = sock_of(f["csi-address"])
        endpoint = f.get("http-endpoint") or ":" + f.get("health-port", "9808")

        def healthz(path):
            if path != "/healthz":
                return 404, "not found\n"
            try:
                r = csi_call(sock, "Probe", timeout)
            except Exception as err:  # noqa: BLE001 - unhealthy
                return 500, "probe failed: %s\n" % str(err).splitlines()[0]
            if r.HasField("ready") and not r.ready.value:
                return 500, "driver responded but is not ready\n"
            return 200, "ok\n"
        srv = serve_http(e, *host_port(endpoint, ip), healthz)
        e.stopping.wait()
        srv.shutdown()
        srv.server_close()
        return 0
    return body
