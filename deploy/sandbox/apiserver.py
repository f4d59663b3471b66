#!/usr/bin/python3
"""Ordinal's fake Kubernetes API server (Python 3 standard library only).

    /usr/bin/python3 deploy/sandbox/apiserver.py --dir DIR [options]

Listens on a free loopback port with HTTPS (a CA and serving certificate generated at start
with openssl), requires a bearer token, writes DIR/kubeconfig (server, CA data, token) and then
DIR/ready, and serves until SIGTERM or SIGINT (exit status 0). See deploy/sandbox/README.md.
"""

import argparse
import base64
import json
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import apierrors  # noqa: E402
import controllers as ctrl  # noqa: E402
import crd  # noqa: E402
import k8sproto  # noqa: E402
import profiling  # noqa: E402
import rbac  # noqa: E402
import resources  # noqa: E402
import labelsel as sel  # noqa: E402
import managedfields  # noqa: E402
import store as st  # noqa: E402
from apierrors import ApiError  # noqa: E402
from resources import BY_PATH, GROUPS, RESOURCES  # noqa: E402
RESOURCE_PODS = resources.resource("pods")

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-ordinal-fake",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.3", "compiler": "gc",
           "platform": "linux/amd64"}
PATCH_TYPES = {"application/json-patch+json": "json",
               "application/merge-patch+json": "merge",
               "application/strategic-merge-patch+json": "strategic"}
UNAUTHENTICATED = ("/healthz", "/livez", "/readyz", "/version")


# ---- fault injection ----

class Faults:
    """Run-time switchable faults (POST /_fault); counters are reported by GET /_fault."""

    FIELDS = {"error_rate": 0.0, "error_code": 500, "retry_after": 1, "latency_ms": 0,
              "match": "", "methods": [], "agent": "", "expire_next_watch": 0,
              "conflict_next_update": 0, "hold_watches": []}

    def __init__(self):
        self.lock = threading.Lock()
        self.drop_epoch = 0
        self.stats = {"errors": 0, "conflicts": 0, "expired_watches": 0, "dropped_watches": 0,
                      "held_events": 0, "delayed": 0}
        self._acc = 0.0
        self.reset()

    def reset(self):
        with self.lock:
            for k, v in self.FIELDS.items():
                setattr(self, k, list(v) if isinstance(v, list) else v)
            self._acc = 0.0

    def configure(self, spec):
        if not isinstance(spec, dict):
            raise apierrors.bad_request("fault spec must be a JSON object")
        if spec.get("reset"):
            self.reset()
        with self.lock:
            for k in self.FIELDS:
                if k in spec:
                    v = spec[k]
                    if k in ("expire_next_watch", "conflict_next_update") and v is True:
                        v = 1
                    setattr(self, k, v)
            if not isinstance(self.hold_watches, list) or \
                    not all(isinstance(x, str) for x in self.hold_watches):
                self.hold_watches = []
                raise apierrors.bad_request("hold_watches must be a list of resource names")
            if spec.get("error_code") not in (None, 500, 429, 503, 504):
                raise apierrors.bad_request("error_code must be 500, 429, 503 or 504")
            if spec.get("drop_watches"):
                self.drop_epoch += 1

    def state(self):
        with self.lock:
            d = {k: getattr(self, k) for k in self.FIELDS}
            d["stats"] = dict(self.stats)
            return d

    def _applies(self, method, path, agent):
        return (not self.match or self.match in path) and \
            (not self.methods or method in self.methods) and \
            (not self.agent or self.agent in agent)

    def latency_for(self, agent):
        """Seconds to sleep before a request from this User-Agent (0 = none)."""
        with self.lock:
            if not self.latency_ms or (self.agent and self.agent not in agent):
                return 0.0
            self.stats["delayed"] += 1
            return float(self.latency_ms) / 1000.0

    def take_error(self, method, path, agent=""):
        """Deterministic N%: an accumulator fires once per 100/N matching requests."""
        with self.lock:
            if self.error_rate <= 0 or not self._applies(method, path, agent):
                return None
            self._acc += float(self.error_rate)
            if self._acc < 100.0:
                return None
            self._acc -= 100.0
            self.stats["errors"] += 1
            code = self.error_code
        if code == 429:
            return apierrors.too_many_requests(int(self.retry_after))
        if code == 503:
            return ApiError(503, "ServiceUnavailable", "the server is currently unable to "
                            "handle the request (injected fault)", {})
        if code == 504:
            return ApiError(504, "Timeout", "the server was unable to return a response in the "
                            "time allotted (injected fault)", {})
        return apierrors.internal("injected fault")

    def take(self, field, stat):
        with self.lock:
            n = getattr(self, field)
            if n and n > 0:
                setattr(self, field, n - 1)
                self.stats[stat] += 1
                return True
            return False

    def held(self, plural):
        with self.lock:
            return plural in self.hold_watches

    def note_held(self, n):
        with self.lock:
            self.stats["held_events"] += n

    def note_drop(self):
        with self.lock:
            self.stats["dropped_watches"] += 1


# ---- request handling ----

def _accept_params(accept):
    """The parameters of each media range of an Accept header."""
    out = []
    for part in (accept or "").split(","):
        bits = [b.strip() for b in part.split(";")]
        params = {}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                params[k.strip()] = v.strip()
        out.append((bits[0], params))
    return out


def _as(accept):
    """'Table', 'PartialObjectMetadata' (list or not) or None for plain objects."""
    for mt, p in _accept_params(accept):
        if p.get("g") == "meta.k8s.io" and p.get("v") in ("v1", "v1beta1") and \
                mt in ("application/json", "*/*"):
            if p.get("as") == "Table":
                return "Table"
            if p.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return "PartialObjectMetadata"
        if mt in ("application/json", "*/*", "application/*", "") and "as" not in p:
            return None
        if mt.startswith("application/vnd.kubernetes.protobuf") or mt == "application/yaml":
            continue
    return None


class WatchDropped(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ordinal-fake-apiserver"
    sys_version = ""

    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise
        self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *args):
        self.server.app.log("%s %s" % (self.address_string(), fmt % args))

    def log_request(self, code="-", size="-"):
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")

    # ---- plumbing ----

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code, body, headers=None, ctype="application/json"):
        data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", self.audit_id)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.status_code = code

    def _serve(self, method):
        app = self.server.app
        t0 = time.monotonic()
        self.audit_id = secrets.token_hex(8)
        self.status_code = 0
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
            try:
                if path.rstrip("/") in ("/healthz", "/livez", "/readyz"):
                    self._send(200, b"ok", ctype="text/plain; charset=utf-8")
                    return
                user = app.auth.authenticate(self.headers.get("Authorization", ""))
                if path not in UNAUTHENTICATED and user is None:
                    raise apierrors.unauthorized()
                if path in ("/_fault", "/_kubelet") and not (user or {}).get("admin"):
                    raise rbac.forbidden(user, rbac.request_info(method, path, self.query))
                if profiling.enabled():
                    ri = rbac.request_info(method, path, self.query) or {}
                    profiling.count_request(
                        ri.get("verb", method), "/".join(
                            x for x in (ri.get("resource", ri.get("path", "")),
                                        ri.get("subresource")) if x),
                        (user or {}).get("name", "-"))
                if user is not None:   # RBAC (rbac.py); the admin token passes
                    app.auth.authorize(user, method, path, self.query)
                if path == "/_fault":
                    self._admin(method, body)
                    return
                if path == "/_kubelet" and app.kubelets is not None:
                    self._send(200, app.kubelets.admin(method, self._json_body(body)))
                    return
                agent = self.headers.get("User-Agent", "")
                managedfields.set_request(agent, self.query.get("fieldManager"))
                delay = app.faults.latency_for(agent)
                if delay:
                    time.sleep(delay)
                err = app.faults.take_error(method, path, agent)
                if err is not None:
                    raise err
                self._route(method, path, body)
            except ApiError as e:
                if self.status_code:
                    raise
                self._send(e.code, e.status(), e.headers)
            except WatchDropped:
                raise
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
                raise
            except Exception:  # noqa: BLE001 - report the bug as a 500 Status
                app.log("500 on %s %s:\n%s" % (method, self.path, traceback.format_exc()))
                if not self.status_code:
                    e = apierrors.internal("fake apiserver bug: see its log")
                    self._send(500, e.status())
        except (WatchDropped, BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError,
                ApiError):
            self.close_connection = True
        finally:
            app.log("%s %s %s %d %.1fms" % (method, self.path, self.headers.get("Content-Type", "")
                                            if method in ("PATCH",) else "", self.status_code,
                                            (time.monotonic() - t0) * 1000))

    def _bool(self, name):
        """A boolean query parameter as the real server converts it
        (runtime.Convert_Slice_string_To_bool): absent is false; "0" and "false" in any case
        are false; anything else, the empty string included, is true."""
        if name not in self.query:
            return False
        v = self.query[name]
        return not (v == "0" or v.lower() == "false")

    def _json_body(self, body):
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf" and self.command in ("POST", "PUT"):
            return k8sproto.decode(body)
        if ctype not in ("application/json", "") and self.command != "PATCH":
            raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an '
                           'unknown format - accepted media types include: application/json '
                           '(got "%s")' % ctype)
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError as e:
            raise apierrors.bad_request("json: cannot unmarshal request body: %s" % e)

    def _admin(self, method, body):
        app = self.server.app
        if method == "POST":
            spec = self._json_body(body) or {}
            app.faults.configure(spec)
            if spec.get("compact"):
                app.store.compact()
            if "watch_window" in spec:
                app.store.set_window(spec["watch_window"])
            if "bookmark_interval" in spec:
                app.bookmark_interval = float(spec["bookmark_interval"])
        elif method != "GET":
            raise apierrors.method_not_allowed()
        state = app.faults.state()
        state.update({"bookmark_interval": app.bookmark_interval,
                      "watch_window": app.store.window, "resourceVersion": app.store.current_rv(),
                      "open_watches": app.open_watches, "watches_opened": app.watches_opened,
                      "controllers": app.controllers.progress()})
        self._send(200, state)

    # ---- routing ----

    def _route(self, method, path, body):
        parts = [p for p in path.split("/") if p]
        app = self.server.app
        if method == "GET":
            if parts == ["version"]:
                return self._send(200, VERSION)
            if parts == ["api"]:
                return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{
                                            "clientCIDR": "0.0.0.0/0",
                                            "serverAddress": app.address}]})
            if parts == ["apis"]:
                return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                        "groups": [self._group(g) for g in _group_names()]})
            if len(parts) == 2 and parts[0] == "apis" and parts[1] in _group_names():
                return self._send(200, dict(self._group(parts[1]), kind="APIGroup",
                                            apiVersion="v1"))
            if parts in (["api", "v1"],) or (len(parts) == 3 and parts[0] == "apis" and
                                             (parts[1], parts[2]) in GROUPS):
                group = "" if parts[0] == "api" else parts[1]
                gv = "v1" if parts[0] == "api" else "%s/%s" % (parts[1], parts[2])
                ver = "v1" if parts[0] == "api" else parts[2]
                res = [d for r in RESOURCES if (r.group, r.version) == (group, ver)
                       for d in r.discovery()]
                return self._send(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": gv, "resources": res})
        if parts and parts[0] == "openapi" and method == "GET":
            return self._openapi(parts[1:])
        if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in BY_PATH \
                and BY_PATH[(group, version, rest[2])].namespaced:
            ns, rest = rest[1], rest[2:]
        res = BY_PATH.get((group, version, rest[0])) if rest else None
        if res is None or len(rest) > 3 or (res.namespaced and len(rest) > 1 and ns is None):
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub and not ((sub == "status" and res.status) or (sub == "scale" and res.scale) or
                        (sub in ("binding", "log", "exec") and res.plural == "pods")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        nsk = ns if res.namespaced else ""
        dry = self.query.get("dryRun") == "All"
        if sub == "exec" and method in ("GET", "POST") and name:
            return self._pod_exec(app.store.get(res, nsk, name))
        if method == "GET":
            if watch or self._bool("watch"):
                if name:
                    fs = self.query.get("fieldSelector")
                    self.query["fieldSelector"] = "metadata.name=%s%s" % (
                        name, "," + fs if fs else "")
                return self._watch(res, ns)
            if name is None:
                return self._list(res, ns)
            obj = app.store.get(res, nsk, name)
            if sub == "scale":
                return self._send(200, _scale(res, obj))
            if sub == "log":
                return self._pod_log(obj)
            return self._send_obj(res, obj)
        if method == "POST":
            if name is None:
                obj = app.store.create(res, nsk, self._json_body(body), dry_run=dry)
                return self._send_obj(res, obj, 201)
            if sub == "binding":
                return self._binding(res, nsk, name, self._json_body(body))
            raise apierrors.method_not_allowed()
        if method in ("PUT", "PATCH"):
            if name is None or sub == "binding":
                raise apierrors.method_not_allowed()
            if app.faults.take("conflict_next_update", "conflicts"):
                raise apierrors.conflict(res, name)
            if method == "PUT":
                obj = self._json_body(body)
                if sub == "scale":
                    return self._update_scale(res, nsk, name, obj)
                obj = app.store.update(res, nsk, name, obj, sub=sub, dry_run=dry)
                return self._send_obj(res, obj)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            ptype = PATCH_TYPES.get(ctype)
            if ptype is None:
                raise apierrors.unsupported_media_type(ctype)
            patch = self._json_body(body)
            if sub == "scale":
                cur = _scale(res, app.store.get(res, nsk, name))
                import patch as patchlib
                fn = {"json": patchlib.json_patch, "merge": patchlib.merge_patch,
                      "strategic": patchlib.strategic_merge_patch}[ptype]
                return self._update_scale(res, nsk, name, fn(cur, patch))
            obj = app.store.patch(res, nsk, name, ptype, patch, sub=sub, dry_run=dry)
            return self._send_obj(res, obj)
        if method == "DELETE":
            opts = self._delete_options(body)
            if name is None:
                return self._delete_collection(res, ns, opts, dry)
            obj, gone = app.store.delete(res, nsk, name, opts, dry_run=dry)
            if gone and not res.return_deleted:
                details = {"name": name, "kind": res.plural, "uid": obj["metadata"]["uid"]}
                if res.group:
                    details["group"] = res.group
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Success", "details": details})
            return self._send_obj(res, obj)
        raise apierrors.method_not_allowed()

    def _openapi(self, parts):
        """Just enough OpenAPI v3 for kubectl's --validate=strict probe: each resource's PATCH
        operation names its GVK and the fieldValidation query parameter, so kubectl leaves
        validation to the server (which accepts, see README). No schemas; /openapi/v2 is 404."""
        gvs = [("", "v1")] + list(GROUPS)

        def gvpath(g, v):
            return "api/v1" if not g else "apis/%s/%s" % (g, v)
        if parts == ["v3"]:
            return self._send(200, {"paths": {gvpath(g, v): {
                "serverRelativeURL": "/openapi/v3/%s?hash=%s" % (gvpath(g, v), OPENAPI_HASH)}
                for g, v in gvs}})
        if len(parts) > 1 and parts[0] == "v3":
            want = "/".join(parts[1:])
            for g, v in gvs:
                if gvpath(g, v) == want:
                    return self._send(200, _openapi_gv(g, v))
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    @staticmethod
    def _group(g):
        v = [{"groupVersion": "%s/%s" % (g, ver), "version": ver} for gg, ver in GROUPS if gg == g]
        return {"name": g, "versions": v, "preferredVersion": v[0]}

    def _send_obj(self, res, obj, code=200):
        want = _as(self.headers.get("Accept"))
        if want == "Table":
            obj = resources.table(res, [obj], self.query.get("includeObject", "Metadata"),
                                  {"resourceVersion": obj["metadata"].get("resourceVersion", "")})
        elif want == "PartialObjectMetadata":
            obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": obj["metadata"]}
        self._send(code, obj)

    def _matcher(self, res):
        lreq = sel.parse_label_selector(self.query.get("labelSelector"))
        freq = sel.parse_field_selector(self.query.get("fieldSelector"),
                                        resources.selectable_fields(res))

        def match(o):
            return sel.labels_match(lreq, o["metadata"].get("labels")) and \
                (not freq or sel.fields_match(freq, resources.field_set(res, o)))
        return match

    def _limit(self):
        try:
            return max(0, int(self.query.get("limit") or 0))
        except ValueError:
            raise apierrors.bad_request("invalid limit")

    def _list(self, res, ns):
        app = self.server.app
        items, rv, token, remaining = app.store.list(
            res, ns, self._matcher(res), self._limit(), self.query.get("continue"),
            self.query.get("resourceVersion"), self.query.get("resourceVersionMatch"))
        meta = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
            if not self.query.get("labelSelector") and not self.query.get("fieldSelector"):
                meta["remainingItemCount"] = remaining
        want = _as(self.headers.get("Accept"))
        if want == "Table":
            return self._send(200, resources.table(res, items, self.query.get(
                "includeObject", "Metadata"), meta))
        if want == "PartialObjectMetadata":
            return self._send(200, {"kind": "PartialObjectMetadataList",
                                    "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                                    "items": [{"kind": "PartialObjectMetadata",
                                               "apiVersion": "meta.k8s.io/v1",
                                               "metadata": o["metadata"]} for o in items]})
        for o in items:   # the real server leaves kind/apiVersion off list items
            o.pop("kind", None)
            o.pop("apiVersion", None)
        self._send(200, {"kind": res.kind + "List", "apiVersion": res.api_version,
                         "metadata": meta, "items": items})

    def _delete_options(self, body):
        opts = {}
        if body:
            o = self._json_body(body)
            if isinstance(o, dict):
                opts.update(o)
        q = self.query
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "orphanDependents" in q:
            opts["orphanDependents"] = self._bool("orphanDependents")
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        return opts

    def _delete_collection(self, res, ns, opts, dry):
        app = self.server.app
        items, rv, _, _ = app.store.list(res, ns, self._matcher(res))
        out = []
        for o in items:
            md = o["metadata"]
            try:
                obj, _ = app.store.delete(res, md.get("namespace", ""), md["name"], opts,
                                          dry_run=dry)
                obj.pop("kind", None)
                obj.pop("apiVersion", None)
                out.append(obj)
            except ApiError as e:
                if e.code != 404:
                    raise
        self._send(200, {"kind": res.kind + "List", "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": str(app.store.current_rv())},
                         "items": out})

    def _binding(self, res, ns, name, binding):
        target = (binding or {}).get("target") or {}
        node = target.get("name")
        if not node:
            raise apierrors.invalid(res, name, [("target.name", "FieldValueRequired",
                                                 "Required value")])
        self.server.app.store.bind(ns, name, node)
        self._send(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Success", "code": 201})

    def _pod_exec(self, pod):
        """pods/exec over WebSocket (wsexec.py), run by the pod's kubelet."""
        app = self.server.app
        if app.kubelets is None:
            raise apierrors.bad_request("no kubelet in this sandbox runs pod commands")
        import wsexec
        q = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        argv = q.get("command") or []
        if not argv:
            raise apierrors.bad_request("you must specify at least 1 command")
        true = ("true", "1")
        proc = app.kubelets.exec_process(pod, self.query.get("container"))
        wsexec.serve(self, proc, argv, self.query.get("stdin") in true,
                     self.query.get("stdout", "true") in true,
                     self.query.get("stderr", "true") in true)

    def _pod_log(self, pod):
        """pods/log: the container's log file as the kubelet wrote it (tailLines, limitBytes,
        follow until the container stops or restarts)."""
        app = self.server.app
        if app.kubelets is None:
            raise apierrors.bad_request("no kubelet in this sandbox serves pod logs")
        q = self.query
        true = ("true", "1")
        path, container = app.kubelets.log_file(pod, q.get("container"),
                                                q.get("previous") in true)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        if q.get("tailLines"):
            n = int(q["tailLines"])
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-n:]) if n > 0 else b""
        if q.get("limitBytes"):
            data = data[:int(q["limitBytes"])]
        if q.get("follow") not in true or q.get("previous") in true:
            return self._send(200, data, ctype="text/plain")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.status_code = 200
        if data:
            self._chunk(data)
        md = pod["metadata"]
        with open(path, "ab+") as f:
            f.seek(0, os.SEEK_END)
            while not app.store.stopping:
                more = f.read()
                if more:
                    self._chunk(more)
                    continue
                try:
                    cur = app.store.get(RESOURCE_PODS, md["namespace"], md["name"])
                except ApiError:
                    break
                st = next((c for c in (cur.get("status") or {}).get("containerStatuses") or []
                           if c.get("name") == container), {})
                if cur["metadata"]["uid"] != md["uid"] or "running" not in (
                        st.get("state") or {}) or app.kubelets.log_file(
                            cur, container, False)[0] != path:
                    more = f.read()
                    if more:
                        self._chunk(more)
                    break
                time.sleep(0.2)
        self._chunk(b"")

    def _update_scale(self, res, ns, name, scale):
        replicas = ((scale or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise apierrors.invalid(res, name, [("spec.replicas", "FieldValueInvalid",
                                                 "Invalid value: %r" % (replicas,))])
        rv = ((scale or {}).get("metadata") or {}).get("resourceVersion")
        app = self.server.app
        with app.store.lock:
            cur = app.store.get(res, ns, name)
            if rv and rv != cur["metadata"]["resourceVersion"]:
                raise apierrors.conflict(res, name)

            def fn(o):
                o["spec"]["replicas"] = replicas
            obj = app.store.mutate(res, ns, name, fn)
        self._send(200, _scale(res, obj))

    # ---- watch ----

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, res, etype, obj, want):
        if want == "Table" and etype != "ERROR" and etype != "BOOKMARK":
            obj = resources.table(res, [obj], self.query.get("includeObject", "Metadata"),
                                  {"resourceVersion": obj["metadata"].get("resourceVersion")})
        elif want == "PartialObjectMetadata" and etype not in ("ERROR",):
            obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": obj["metadata"]}
        self._chunk((json.dumps({"type": etype, "object": obj}) + "\n").encode())

    def _watch(self, res, ns):
        app = self.server.app
        match = self._matcher(res)
        bookmarks = self._bool("allowWatchBookmarks")
        want = _as(self.headers.get("Accept"))
        try:
            timeout = float(self.query["timeoutSeconds"]) if self.query.get(
                "timeoutSeconds") else app.min_request_timeout * (1 + random.random())
        except ValueError:
            raise apierrors.bad_request("invalid timeoutSeconds")
        error = None
        initial, cursor = [], 0
        if app.faults.take("expire_next_watch", "expired_watches"):
            error = apierrors.expired("too old resource version: %s (%d)" % (
                self.query.get("resourceVersion") or "0", app.store.current_rv() + 1))
        else:
            try:
                initial, cursor = app.store.watch_start(res, ns, self.query.get(
                    "resourceVersion"))
            except ApiError as e:
                if e.code != 410:
                    raise
                error = e
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", self.audit_id)
        self.end_headers()
        self.wfile.flush()
        self.status_code = 200
        if error is not None:
            self._event(res, "ERROR", error.status(), want)
            self._chunk(b"")
            return
        epoch = app.faults.drop_epoch
        with app.lock:
            app.open_watches += 1
            app.watches_opened += 1
        try:
            while initial and app.faults.held(res.plural) and not app.store.stopping:
                time.sleep(0.05)
            for o in initial:
                if match(o):
                    self._event(res, "ADDED", o, want)
            if bookmarks and self._bool("sendInitialEvents"):
                self._event(res, "BOOKMARK", self._bookmark(res, cursor, True), None)
            start = time.monotonic()
            deadline = start + timeout
            next_bm = start + app.bookmark_interval
            while True:
                if app.store.stopping:
                    break
                if app.faults.drop_epoch != epoch:
                    app.faults.note_drop()
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    raise WatchDropped()
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = min(deadline - now, 0.2)
                if app.faults.held(res.plural):
                    time.sleep(min(wait, 0.05))  # held: nothing sent, no bookmark either
                    continue
                if bookmarks:
                    wait = max(0.0, min(wait, next_bm - now))
                try:
                    before = cursor
                    evs, cursor = app.store.watch_next(res, cursor, wait)
                except ApiError as e:
                    self._event(res, "ERROR", e.status(), want)
                    break
                if evs and app.faults.held(res.plural):
                    # held while we waited: these go out, in order, once the hold is lifted
                    app.faults.note_held(len(evs))
                    cursor = before
                    continue
                for etype, obj, prev in evs:
                    if ns is not None and obj["metadata"].get("namespace") != ns:
                        continue
                    now_m = match(obj)
                    was = prev is not None and match(prev)
                    if etype == "MODIFIED":
                        if now_m and not was:
                            etype = "ADDED"
                        elif was and not now_m:
                            etype = "DELETED"
                        elif not now_m:
                            continue
                    elif not now_m:
                        continue
                    self._event(res, etype, obj, want)
                if bookmarks and time.monotonic() >= next_bm:
                    self._event(res, "BOOKMARK", self._bookmark(res, cursor), None)
                    next_bm = time.monotonic() + app.bookmark_interval
            self._chunk(b"")
        finally:
            with app.lock:
                app.open_watches -= 1

    @staticmethod
    def _bookmark(res, rv, initial_end=False):
        md = {"resourceVersion": str(rv)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": res.kind, "apiVersion": res.api_version, "metadata": md}


OPENAPI_HASH = "0RD1NA1F4KE"


def _openapi_gv(group, version):
    paths = {}
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        base = "/api/v1" if not group else "/apis/%s/%s" % (group, version)
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        gvk = {"group": group, "version": version, "kind": r.kind}
        params = [{"name": n, "in": "query", "schema": {"type": "string"}}
                  for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        op = {"operationId": "patch" + r.kind, "x-kubernetes-action": "patch",
              "x-kubernetes-group-version-kind": gvk, "parameters": params,
              "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in (
                  "application/json-patch+json", "application/merge-patch+json")}},
              "responses": {"200": {"description": "OK"}}}
        paths["%s%s/%s/{name}" % (base, ns, r.plural)] = {"patch": op}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (ordinal fake)",
                                          "version": VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


def _group_names():
    out = []
    for g, _ in GROUPS:
        if g not in out:
            out.append(g)
    return out


def _scale(res, obj):
    md = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    s = ",".join("%s=%s" % kv for kv in sorted((selector.get("matchLabels") or {}).items()))
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": md["name"], "namespace": md.get("namespace"), "uid": md["uid"],
                         "resourceVersion": md["resourceVersion"],
                         "creationTimestamp": md["creationTimestamp"]},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": s}}


# ---- TLS, kubeconfig, process ----

OPENSSL_CNF = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = ordinal-sandbox-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_srv]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
authorityKeyIdentifier = keyid
"""


def make_certs(pki):
    """CA + serving certificate (P-256) made with Debian's openssl; returns file paths."""
    os.makedirs(pki, exist_ok=True)
    cnf = os.path.join(pki, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF)
    p = {k: os.path.join(pki, k) for k in ("ca.key", "ca.crt", "server.key", "server.csr",
                                            "server.crt")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run(["openssl", "req", "-x509", "-config", cnf, "-extensions", "v3_ca"] + ec +
                   ["-keyout", p["ca.key"], "-out", p["ca.crt"], "-days", "3650"], **run)
    subprocess.run(["openssl", "req", "-new", "-config", cnf, "-subj", "/CN=kube-apiserver"] + ec +
                   ["-keyout", p["server.key"], "-out", p["server.csr"]], **run)
    subprocess.run(["openssl", "x509", "-req", "-in", p["server.csr"], "-CA", p["ca.crt"],
                    "-CAkey", p["ca.key"], "-set_serial", str(random.getrandbits(63)),
                    "-days", "3650", "-extfile", cnf, "-extensions", "v3_srv",
                    "-out", p["server.crt"]], **run)
    return p


def write_atomic(path, text, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def kubeconfig_text(server, ca_pem, token):
    ca = base64.b64encode(ca_pem).decode()
    return """apiVersion: v1
kind: Config
clusters:
- name: ordinal-sandbox
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: ordinal-admin
  user:
    token: %s
contexts:
- name: ordinal-sandbox
  context:
    cluster: ordinal-sandbox
    user: ordinal-admin
    namespace: default
current-context: ordinal-sandbox
preferences: {}
""" % (server, ca, token)


class App:
    def __init__(self, args):
        self.args = args
        self.token = args.token or secrets.token_hex(24)
        self.store = st.Store(window=args.watch_window)
        self.store.default_tolerations = (args.default_not_ready_toleration_seconds,
                                          args.default_unreachable_toleration_seconds)
        crd.install(self.store)
        self.faults = Faults()
        self.auth = rbac.Auth(self.store, self.token)   # tokens of ServiceAccounts, RBAC
        self.faults.configure({"error_rate": args.error_rate, "error_code": args.error_code,
                               "retry_after": args.retry_after, "latency_ms": args.latency_ms,
                               "match": args.fault_match or ""})
        self.bookmark_interval = args.bookmark_interval
        self.min_request_timeout = args.min_request_timeout
        self.lock = threading.Lock()
        self.open_watches = 0
        self.watches_opened = 0
        self.address = ""
        self.kubelets = None        # kubelet.Kubelets with --kubelet (internal, tests)
        self._log_lock = threading.Lock()
        self._log = open(args.log, "a", buffering=1) if args.log else None
        enabled = set() if args.no_controllers else {
            c.strip() for c in args.controllers.split(",") if c.strip()}
        if "all" in enabled:
            enabled = (enabled - {"all"}) | set(ctrl.KNOWN)
        try:
            self.controllers = ctrl.Manager.build(
                self.store, enabled, self.log, resync=args.controller_resync,
                node_monitor_grace_period=args.node_monitor_grace_period)
        except ValueError as e:
            raise SystemExit(str(e))

    def authorized(self, header):
        return self.auth.authenticate(header) is not None

    def log(self, msg):
        line = "%s %s\n" % (time.strftime("%H:%M:%S"), msg)
        with self._log_lock:
            if self._log:
                self._log.write(line)
            if self.args.verbose:
                sys.stderr.write(line)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ssl.SSLError, OSError, WatchDropped)):
            self.app.log("connection error from %s:\n%s" % (client_address,
                                                            traceback.format_exc()))


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="apiserver.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""fault injection at run time (bearer token required):
  POST /_fault with a JSON object, any of:
    {"error_rate": 50, "error_code": 500|429|503|504, "retry_after": 1,
     "latency_ms": 200, "match": "persistentvolumeclaims", "methods": ["PUT"],
     "agent": "node-1",
     "expire_next_watch": 1, "conflict_next_update": 1, "drop_watches": true,
     "compact": true, "watch_window": 100, "bookmark_interval": 0.5,
     "hold_watches": ["persistentvolumes"], "reset": true}
  GET /_fault shows the settings and counters. error_rate N answers exactly N of every
  100 matching requests with error_code (deterministically, spread evenly); 429 carries
  Retry-After. agent limits error_rate and latency_ms to requests whose User-Agent
  contains it (one client among several). drop_watches cuts every open watch stream mid-chunk;
  compact forgets the watch history so every older resourceVersion is answered 410 Expired.
  hold_watches makes the watches of the named resources (plural names) lag: they send nothing,
  not even bookmarks, from the moment it is set (counted in held_events), and send what they
  held, in order, once a later setting no longer names them; lists and gets are not affected.""")
    p.add_argument("--dir", required=True, help="state dir: kubeconfig, ready, pki/, log")
    p.add_argument("--bind", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="listen port (default 0: a free port)")
    p.add_argument("--token", default=None, help="bearer token (default: random)")
    p.add_argument("--watch-window", type=int, default=1000,
                   help="watch history kept, in events over all resources; older "
                        "resourceVersions get 410 Expired (default 1000)")
    p.add_argument("--bookmark-interval", type=float, default=5.0,
                   help="seconds between BOOKMARK events on watches that allow them (default 5)")
    p.add_argument("--min-request-timeout", type=float, default=1800.0,
                   help="watch duration without timeoutSeconds is this times 1..2 (default 1800)")
    p.add_argument("--controllers", default=",".join(ctrl.ALL),
                   help="in-process controllers to run, comma separated (default %s; also "
                        "known: %s; 'all' for every one)"
                        % (",".join(ctrl.ALL), ",".join(ctrl.OPTIONAL)))
    p.add_argument("--controller-resync", type=float, default=None, metavar="S",
                   help="seconds between the controllers' full resyncs of every object; "
                        "between them they sync only changed objects (default: each "
                        "controller's own period, 30 for the storage ones)")
    p.add_argument("--no-controllers", action="store_true",
                   help="run no controllers: a bare API server (admission still adds the "
                        "protection finalizers)")
    p.add_argument("--node-monitor-grace-period", type=float, default=40.0, metavar="S",
                   help="seconds without a kubelet heartbeat (Lease or Ready) before the "
                   "node-lifecycle controller marks a node Unknown (default 40, as "
                   "kube-controller-manager)")
    p.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                   metavar="S", help="DefaultTolerationSeconds admission: tolerationSeconds "
                   "of the not-ready NoExecute toleration added to pods (default 300)")
    p.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                   metavar="S", help="the same for the unreachable taint (default 300)")
    p.add_argument("--kubelet", action="append", default=[], metavar="SPEC",
                   help=argparse.SUPPRESS)   # node=NAME,csi=unix:///sock,dir=DIR[,logs=DIR]
    p.add_argument("--error-rate", type=float, default=0.0,
                   help="percent of requests answered with --error-code (default 0)")
    p.add_argument("--error-code", type=int, default=500, choices=(500, 429, 503, 504),
                   help="status for --error-rate (default 500; 429 adds Retry-After)")
    p.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds for 429")
    p.add_argument("--latency-ms", type=float, default=0.0, help="latency added to each request")
    p.add_argument("--fault-match", default="", help="faults only for paths containing this")
    p.add_argument("--log", default=None, help="request log (default DIR/apiserver.log)")
    p.add_argument("-v", "--verbose", action="store_true", help="also log to stderr")
    args = p.parse_args(argv)
    if args.log is None:
        args.log = os.path.join(args.dir, "apiserver.log")
    return args


class Running:
    """A started API server (serve()): .app (store, controllers), .url, .port, .ca_file,
    .kubeconfig; stop() ends it (controllers, watches, listener)."""

    def __init__(self, app, httpd, thread, url, port, pki, kubeconfig):
        self.app, self.httpd, self.thread = app, httpd, thread
        self.url, self.port, self.pki, self.kubeconfig = url, port, pki, kubeconfig
        self.ca_file = pki["ca.crt"]

    def stop(self):
        app = self.app
        app.log("shutting down")
        with app.store.cond:
            app.store.stopping = True
            app.store.cond.notify_all()
        if app.kubelets is not None:
            app.kubelets.stop()
        app.controllers.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def serve(args, start_controllers=True):
    """Start serving in this process (threads); writes DIR/token and DIR/kubeconfig. Used by
    main() and by ordinal-sandbox, which hosts the kubelets next to the store."""
    os.makedirs(args.dir, exist_ok=True)
    for stale in ("ready", "kubeconfig"):
        try:
            os.unlink(os.path.join(args.dir, stale))
        except FileNotFoundError:
            pass
    app = App(args)
    pki = make_certs(os.path.join(args.dir, "pki"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki["server.crt"], pki["server.key"])
    ctx.set_alpn_protocols(["http/1.1"])
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    Server.address_family = family
    httpd = Server((args.bind, args.port), Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    httpd.app = app
    host, port = httpd.server_address[:2]
    hostport = "[%s]:%d" % (host, port) if family == socket.AF_INET6 else "%s:%d" % (host, port)
    app.address = hostport
    server_url = "https://" + hostport
    with open(pki["ca.crt"], "rb") as f:
        ca_pem = f.read()
    rbac.CA_PEM["pem"] = ca_pem.decode()   # ca.crt of the ServiceAccount token Secrets
    kubeconfig = os.path.join(args.dir, "kubeconfig")
    write_atomic(os.path.join(args.dir, "token"), app.token + "\n")
    write_atomic(kubeconfig, kubeconfig_text(server_url, ca_pem, app.token))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              name="http", daemon=True)
    thread.start()
    if start_controllers:
        app.controllers.start()
    if getattr(args, "kubelet", None):   # internal (tests): kubelets in this process, kubelet.py
        import kubelet
        app.kubelets = kubelet.Kubelets(app.store, args.kubelet, log=app.log)
        app.kubelets.start()
    app.log("serving on %s (pid %d)" % (server_url, os.getpid()))
    return Running(app, httpd, thread, server_url, port, pki, kubeconfig)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    srv = serve(args)
    write_atomic(os.path.join(args.dir, "ready"), json.dumps({
        "server": srv.url, "pid": os.getpid(), "port": srv.port,
        "kubeconfig": srv.kubeconfig, "ca": srv.ca_file}) + "\n", 0o644)
    while not stop.wait(0.1):
        pass
    try:
        os.unlink(os.path.join(args.dir, "ready"))
    except FileNotFoundError:
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
