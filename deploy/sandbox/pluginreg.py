"""The kubelet plugin registration protocol (pluginregistration.Registration v1), both ends.

Plugin end (node-driver-registrar's stand-in in podrun.py): `serve(path, info, on_status)`
serves Registration on a unix socket: GetInfo answers a PluginInfo (type "CSIPlugin", the
driver's name, its CSI endpoint as the node sees it, supported versions), and
NotifyRegistrationStatus hands kubelet's verdict to on_status.

Kubelet end (kubelet.py): `PluginWatcher(dir, handlers)` watches the node's
/var/lib/kubelet/plugins_registry as kubelet's plugin manager does: every socket that appears
is dialled, GetInfo asked, the handler of its type validates and registers it, and the plugin is
told the outcome (NotifyRegistrationStatus); a failed registration is tried again (back-off
1 s doubling to 30 s, or at once when the socket is made anew); a socket that goes away
deregisters its plugin. Sockets of no known type are refused ("no handler registered for plugin
type").

Unix socket paths are limited to 107 bytes and the sandbox's node folders can be deeper: a
socket whose path is too long is bound at a short path under /tmp and the long path made a
symbolic link to it (`bind_path`); whoever dials resolves it (`dial_path`).

The messages come from pluginregistration.proto beside this file (compiled by protoc at first
use); the gRPC methods are registered generically (no grpc_tools needed)."""

import atexit
import hashlib
import importlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICE = "pluginregistration.Registration"
CSI_PLUGIN = "CSIPlugin"
MAX_SOCKET = 100
RETRY = (1.0, 30.0)     # registration retries: initial, maximum (seconds)

_pb = None
_pb_lock = threading.Lock()


def load_pb():
    global _pb
    with _pb_lock:
        if _pb is None:
            out = tempfile.mkdtemp(prefix="ordinal-pluginreg-pb-")
            atexit.register(shutil.rmtree, out, True)
            res = subprocess.run(["protoc", "--python_out=" + out, "-I", HERE,
                                  os.path.join(HERE, "pluginregistration.proto")],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError("protoc pluginregistration.proto: %s" % res.stderr)
            sys.path.insert(0, out)
            _pb = importlib.import_module("pluginregistration_pb2")
        return _pb


def bind_path(path):
    """Where to bind a socket meant to be at path (a link at path when it must be short)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    if len(path) < MAX_SOCKET:
        return path
    short = "/tmp/ordinal-sbx-%s.sock" % hashlib.sha256(path.encode()).hexdigest()[:16]
    try:
        os.unlink(short)
    except FileNotFoundError:
        pass
    os.symlink(short, path)
    return short


def dial_path(path):
    return os.path.realpath(path) if os.path.islink(path) else path


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class Server:
    def __init__(self, server, path, bound):
        self.server, self.path, self.bound = server, path, bound

    def stop(self):
        self.server.stop(0).wait(5)
        for p in {self.path, self.bound}:
            try:
                os.unlink(p)
            except OSError:
                pass


def serve(path, info, on_status):
    """Registration on unix socket path. info: dict of PluginInfo fields; on_status(registered,
    error) is called with each NotifyRegistrationStatus."""
    pb = load_pb()
    reply = pb.PluginInfo(type=info["type"], name=info["name"], endpoint=info["endpoint"],
                          supported_versions=info.get("supported_versions") or [])

    def notify(req, ctx):
        on_status(req.plugin_registered, req.error)
        return pb.RegistrationStatusResponse()
    handlers = {
        "GetInfo": grpc.unary_unary_rpc_method_handler(
            lambda req, ctx: reply, request_deserializer=pb.InfoRequest.FromString,
            response_serializer=pb.PluginInfo.SerializeToString),
        "NotifyRegistrationStatus": grpc.unary_unary_rpc_method_handler(
            notify, request_deserializer=pb.RegistrationStatus.FromString,
            response_serializer=pb.RegistrationStatusResponse.SerializeToString)}
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    bound = bind_path(path)
    if srv.add_insecure_port("unix:" + bound) == 0:
        raise RuntimeError("cannot listen on %s" % path)
    srv.start()
    return Server(srv, path, bound)


class _Client:
    def __init__(self, path):
        pb = load_pb()
        self.ch = grpc.insecure_channel("unix:" + dial_path(path))
        self.get_info = self.ch.unary_unary(
            "/%s/GetInfo" % SERVICE, request_serializer=pb.InfoRequest.SerializeToString,
            response_deserializer=pb.PluginInfo.FromString)
        self.notify = self.ch.unary_unary(
            "/%s/NotifyRegistrationStatus" % SERVICE,
            request_serializer=pb.RegistrationStatus.SerializeToString,
            response_deserializer=pb.RegistrationStatusResponse.FromString)
        self.pb = pb

    def close(self):
        self.ch.close()


class PluginWatcher:
    """handlers: {plugin type: object with validate(name, endpoint, versions) and
    register(name, endpoint, versions), each raising on refusal, and deregister(name)}."""

    def __init__(self, directory, handlers, log=None, interval=0.2, timeout=10.0):
        self.dir = directory
        self.handlers = handlers
        self.log = log or (lambda msg: None)
        self.interval = interval
        self.timeout = timeout
        self.stopping = threading.Event()
        self.registered = {}     # socket path -> (type, name, socket identity)
        self.retry = {}          # socket path -> (next attempt, delay, socket identity)
        self.thread = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.thread = threading.Thread(target=self._run, name="plugin-watcher", daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(self.timeout + 5)

    @staticmethod
    def _identity(path):
        try:
            st = os.stat(path)
            return (st.st_ino, st.st_mtime_ns)
        except OSError:
            return None

    def _run(self):
        while not self.stopping.is_set():
            try:
                self._scan()
            except Exception as e:  # noqa: BLE001 - the watcher keeps going
                self.log("plugin watcher: %s" % e)
            self.stopping.wait(self.interval)

    def _scan(self):
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            names = []
        present = {}
        for n in names:
            p = os.path.join(self.dir, n)
            if not n.startswith(".") and is_socket(p):
                present[p] = self._identity(p)
        for p, (ptype, name, _ident) in list(self.registered.items()):
            if present.get(p) != _ident:
                del self.registered[p]
                self.log("plugin watcher: %s is gone: deregistering %s" % (p, name))
                self.handlers[ptype].deregister(name)
        now = time.monotonic()
        for p, ident in present.items():
            if p in self.registered:
                continue
            nxt = self.retry.get(p)
            if nxt and nxt[2] == ident and now < nxt[0]:
                continue
            delay = min(nxt[1] * 2, RETRY[1]) if nxt and nxt[2] == ident else RETRY[0]
            if self._register(p, ident):
                self.retry.pop(p, None)
            else:
                self.retry[p] = (now + delay, delay, ident)
        for p in list(self.retry):
            if p not in present:
                del self.retry[p]

    def _register(self, path, ident):
        c = _Client(path)
        try:
            try:
                info = c.get_info(c.pb.InfoRequest(), timeout=self.timeout)
            except grpc.RpcError as e:
                self.log("plugin watcher: GetInfo on %s: %s" % (path, e.details() or e.code()))
                return False
            versions = list(info.supported_versions)
            h = self.handlers.get(info.type)
            err = None
            if h is None:
                err = "no handler registered for plugin type: %s at socket %s" % (info.type,
                                                                                 path)
            else:
                try:
                    h.validate(info.name, info.endpoint, versions)
                    h.register(info.name, info.endpoint, versions)
                except Exception as e:  # noqa: BLE001 - the plugin is told why
                    err = "RegisterPlugin error -- plugin registration failed with err: %s" % e
            try:
                c.notify(c.pb.RegistrationStatus(plugin_registered=err is None,
                                                 error=err or ""), timeout=self.timeout)
            except grpc.RpcError as e:
                self.log("plugin watcher: NotifyRegistrationStatus on %s: %s" % (
                    path, e.details() or e.code()))
            if err is not None:
                self.log("plugin watcher: %s" % err)
                return False
            self.registered[path] = (info.type, info.name, ident)
            self.log("plugin watcher: registered %s plugin %s at %s" % (info.type, info.name,
                                                                        info.endpoint))
            return True
        finally:
            c.close()
