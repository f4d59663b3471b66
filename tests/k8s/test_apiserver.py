"""The fake API server (deploy/sandbox/apiserver.py) against the facts of
/work/shared/reference/kubernetes.md sections 5, 6 and 8: protocol, storage semantics, the
in-process controllers and fault injection."""

import base64
import json
import os
import socket
import ssl
import subprocess
import time

import pytest

from fakeapi import APISERVER, PYTHON, ApiError, path, wait_for

NS = "default"


def pvc(name, labels=None, cls=None, size="1Gi", **meta):
    o = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": dict(name=name, labels=labels or {}, **meta),
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}
    if cls is not None:
        o["spec"]["storageClassName"] = cls
    return o


def pv(name, claim=None, policy="Delete", cls="ordinal", size="1Gi"):
    o = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
         "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": size},
                  "persistentVolumeReclaimPolicy": policy, "storageClassName": cls,
                  "csi": {"driver": "ordinal.csi.dev", "volumeHandle": name}}}
    if claim is not None:
        md = claim["metadata"]
        o["spec"]["claimRef"] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                 "namespace": md["namespace"], "name": md["name"],
                                 "uid": md["uid"], "resourceVersion": md["resourceVersion"]}
    return o


def cm(name, labels=None, **meta):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": dict(name=name, labels=labels or {}, **meta), "data": {"k": "v"}}


def pod(name, claim=None, node=None, labels=None):
    o = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
         "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    if claim:
        o["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    if node:
        o["spec"]["nodeName"] = node
    return o


def sts(name, replicas=1):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                         "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}]}}


def sc(name="ordinal", mode="Immediate", default=False):
    o = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": name}, "provisioner": "ordinal.csi.dev", "volumeBindingMode": mode}
    if default:
        o["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return o


def owner_ref(o, block=None):
    r = {"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
         "uid": o["metadata"]["uid"]}
    if block is not None:
        r["blockOwnerDeletion"] = block
    return r


def status_error(excinfo, code, reason):
    e = excinfo.value
    assert e.status == code, e
    b = e.body
    assert b["kind"] == "Status" and b["apiVersion"] == "v1" and b["status"] == "Failure"
    assert b["code"] == code and b["reason"] == reason, b
    assert b["metadata"] == {}
    return b


def rv(o):
    return int(o["metadata"]["resourceVersion"])


# ---------------------------------------------------------------- process, TLS, auth

def test_ready_kubeconfig_and_pki(apiserver):
    info = json.load(open(os.path.join(apiserver.dir, "ready")))
    assert info["server"].startswith("https://127.0.0.1:") and info["pid"] == apiserver.proc.pid
    kc = open(apiserver.kubeconfig).read()
    assert "server: %s\n" % apiserver.url in kc
    assert "token: %s\n" % apiserver.token in kc
    ca_line = [ln for ln in kc.splitlines() if "certificate-authority-data:" in ln][0]
    ca = base64.b64decode(ca_line.split(":", 1)[1].strip())
    assert ca == open(apiserver.ca_file, "rb").read()
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")
    assert oct(os.stat(apiserver.kubeconfig).st_mode & 0o777) == "0o600"


def test_tls_verified_with_generated_ca(apiserver):
    host, port = "127.0.0.1", apiserver.port
    ctx = ssl.create_default_context(cafile=apiserver.ca_file)
    with socket.create_connection((host, port)) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")
            assert t.selected_alpn_protocol() in (None, "http/1.1")
    # The system trust store does not know the generated CA.
    with socket.create_connection((host, port)) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(s, server_hostname=host)
    # The certificate names 127.0.0.1 and localhost, not other names.
    with socket.create_connection((host, port)) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(s, server_hostname="example.com")
    out = subprocess.run(["openssl", "verify", "-CAfile", apiserver.ca_file,
                          os.path.join(apiserver.dir, "pki", "server.crt")],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "OK" in out.stdout


def test_bearer_token_required(apiserver):
    c = apiserver.client
    for tok in (False, "wrong-token"):
        r = c.request("GET", "/api/v1/namespaces", token=tok)
        assert r.status == 401
        assert r.body == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Failure", "message": "Unauthorized",
                          "reason": "Unauthorized", "code": 401}
    assert c.request("POST", "/_fault", {"error_rate": 100}, token=False).status == 401
    assert c.request("GET", "/healthz", token=False).raw == b"ok"
    assert c.request("GET", "/version", token=False).body["gitVersion"].startswith("v1.32.")
    assert c.request("GET", "/api/v1/namespaces").status == 200


def test_help_lists_options():
    out = subprocess.run([PYTHON, APISERVER, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for opt in ("--dir", "--port", "--watch-window", "--bookmark-interval", "--error-rate",
                "--error-code", "--latency-ms", "--no-controllers", "--controllers",
                "--controller-resync", "/_fault", "drop_watches", "expire_next_watch",
                "conflict_next_update"):
        assert opt in out.stdout, opt


def test_sigterm_exits_cleanly_and_removes_ready(apiserver_factory):
    srv = apiserver_factory()
    w = srv.client.watch("configmaps", allowWatchBookmarks="true")
    assert srv.stop() == 0
    assert not os.path.exists(os.path.join(srv.dir, "ready"))
    w.close()


def test_fixed_port_option(apiserver_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = apiserver_factory("--port", str(port), "--token", "sekrit")
    assert srv.port == port and srv.token == "sekrit"
    assert srv.client.list("configmaps")["items"] == []


# ---------------------------------------------------------------- discovery

def test_discovery_documents(apiserver):
    c = apiserver.client
    api = c.call("GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    groups = {g["name"]: g for g in c.call("GET", "/apis")["groups"]}
    for g in ("apps", "storage.k8s.io", "coordination.k8s.io"):
        assert groups[g]["preferredVersion"] == {"groupVersion": g + "/v1", "version": "v1"}
    core = {r["name"]: r for r in c.call("GET", "/api/v1")["resources"]}
    assert core["persistentvolumeclaims"]["shortNames"] == ["pvc"]
    assert core["persistentvolumes"]["namespaced"] is False
    assert "persistentvolumeclaims/status" in core and core["pods"]["shortNames"] == ["po"]
    apps = c.call("GET", "/apis/apps/v1")
    assert apps["groupVersion"] == "apps/v1"
    assert {r["name"]: r for r in apps["resources"]}["statefulsets"]["shortNames"] == ["sts"]
    storage = {r["name"] for r in c.call("GET", "/apis/storage.k8s.io/v1")["resources"]}
    assert {"storageclasses", "csidrivers", "csinodes"} <= storage
    assert c.request("GET", "/openapi/v2").status == 404
    assert "api/v1" in c.call("GET", "/openapi/v3")["paths"]
    r = c.request("GET", "/apis/nope.example.com/v1/things")
    assert r.status == 404 and r.body["reason"] == "NotFound"


# ---------------------------------------------------------------- CRUD, errors, concurrency

def test_create_get_list_with_server_fields(apiserver):
    c = apiserver.client
    before = rv(c.list("configmaps"))
    r = c.request("POST", path("configmaps", ns=NS), cm("a"))
    assert r.status == 201 and r.headers["Content-Type"] == "application/json"
    a = r.body
    md = a["metadata"]
    assert a["kind"] == "ConfigMap" and a["apiVersion"] == "v1"
    assert md["namespace"] == NS and len(md["uid"]) == 36
    assert md["creationTimestamp"].endswith("Z") and len(md["creationTimestamp"]) == 20
    assert rv(a) > before
    b = c.create("configmaps", cm("b"))
    assert rv(b) == rv(a) + 1, "one global counter"
    assert c.get("configmaps", "a") == a
    lst = c.list("configmaps")
    assert lst["kind"] == "ConfigMapList" and lst["apiVersion"] == "v1"
    assert rv(lst) == rv(b)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["a", "b"]
    assert "kind" not in lst["items"][0] and "apiVersion" not in lst["items"][0]
    gen = c.create("configmaps", cm("", generateName="web-"))
    assert gen["metadata"]["name"].startswith("web-") and len(gen["metadata"]["name"]) == 9
    # all-namespaces list
    c.create("namespaces", {"metadata": {"name": "other"}}, ns=None)
    c.create("configmaps", cm("c"), ns="other")
    every = c.call("GET", "/api/v1/configmaps")
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in every["items"]} >= {
        (NS, "a"), ("other", "c")}


def test_status_errors_have_the_real_shape(apiserver):
    c = apiserver.client
    c.create("configmaps", cm("a"))
    with pytest.raises(ApiError) as ei:
        c.create("configmaps", cm("a"))
    b = status_error(ei, 409, "AlreadyExists")
    assert b["message"] == 'configmaps "a" already exists'
    assert b["details"] == {"name": "a", "kind": "configmaps"}
    with pytest.raises(ApiError) as ei:
        c.get("configmaps", "nope")
    b = status_error(ei, 404, "NotFound")
    assert b["message"] == 'configmaps "nope" not found'
    with pytest.raises(ApiError) as ei:
        c.get("statefulsets", "web")
    b = status_error(ei, 404, "NotFound")
    assert b["message"] == 'statefulsets.apps "web" not found'
    assert b["details"] == {"name": "web", "group": "apps", "kind": "statefulsets"}
    with pytest.raises(ApiError) as ei:
        c.create("configmaps", cm("x"), ns="missing")
    assert status_error(ei, 404, "NotFound")["message"] == 'namespaces "missing" not found'
    with pytest.raises(ApiError) as ei:
        c.create("persistentvolumeclaims", {"metadata": {"name": "bad"}, "spec": {}})
    b = status_error(ei, 422, "Invalid")
    assert b["message"].startswith('PersistentVolumeClaim "bad" is invalid: ')
    fields = {cause["field"] for cause in b["details"]["causes"]}
    assert "spec.accessModes" in fields and b["details"]["kind"] == "PersistentVolumeClaim"
    with pytest.raises(ApiError) as ei:
        c.create("configmaps", cm("Bad_Name"))
    status_error(ei, 422, "Invalid")
    with pytest.raises(ApiError) as ei:
        c.create("configmaps", dict(cm("x"), kind="Secret"))
    status_error(ei, 400, "BadRequest")
    with pytest.raises(ApiError) as ei:
        c.create("configmaps", cm("y", resourceVersion="5"))
    status_error(ei, 400, "BadRequest")
    r = c.request("POST", path("configmaps", ns=NS), raw_body=b"{not json")
    assert r.status == 400 and r.body["reason"] == "BadRequest"
    r = c.request("PUT", path("configmaps", ns=NS))
    assert r.status == 405 and r.body["reason"] == "MethodNotAllowed"


def test_put_optimistic_concurrency(apiserver):
    c = apiserver.client
    a = c.create("configmaps", cm("a"))
    a["data"]["k"] = "v2"
    a2 = c.update("configmaps", a)
    assert rv(a2) > rv(a) and a2["data"]["k"] == "v2"
    a["data"]["k"] = "v3"    # still carries the old resourceVersion
    with pytest.raises(ApiError) as ei:
        c.update("configmaps", a)
    b = status_error(ei, 409, "Conflict")
    assert b["message"] == ('Operation cannot be fulfilled on configmaps "a": the object has been '
                            'modified; please apply your changes to the latest version and try '
                            'again')
    # Without resourceVersion the update is unconditional.
    del a["metadata"]["resourceVersion"]
    a3 = c.update("configmaps", a)
    assert a3["data"]["k"] == "v3"
    # A no-op update keeps the resourceVersion (nothing written, no watch event).
    assert rv(c.update("configmaps", a3)) == rv(a3)
    # Server-owned metadata cannot be changed by PUT.
    a3["metadata"]["uid"] = "forged"
    a3["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    a4 = c.update("configmaps", a3)
    assert a4["metadata"]["uid"] == a["metadata"]["uid"]
    assert a4["metadata"]["creationTimestamp"] == a["metadata"]["creationTimestamp"]
    with pytest.raises(ApiError) as ei:
        c.call("PUT", path("configmaps", "other", NS), a4)
    status_error(ei, 400, "BadRequest")
    with pytest.raises(ApiError) as ei:
        c.update("configmaps", cm("ghost"))
    status_error(ei, 404, "NotFound")


def test_defaults_and_generation(apiserver):
    c = apiserver.client
    s = c.create("storageclasses", {"metadata": {"name": "plain"}, "provisioner": "x"}, ns=None)
    assert s["reclaimPolicy"] == "Delete" and s["volumeBindingMode"] == "Immediate"
    d = c.create("csidrivers", {"metadata": {"name": "ordinal.csi.dev"}, "spec": {}}, ns=None)
    assert d["spec"]["attachRequired"] is True and d["spec"]["podInfoOnMount"] is False
    assert d["spec"]["volumeLifecycleModes"] == ["Persistent"]
    assert d["spec"]["fsGroupPolicy"] == "ReadWriteOnceWithFSType"
    claim = c.create("persistentvolumeclaims", dict(pvc("p"), status={"phase": "Bound"}))
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}, "status is cleared on create"
    vol = c.create("persistentvolumes", dict(pv("v"), status={"phase": "Bound"}), ns=None)
    assert vol["status"]["phase"] == "Pending" and vol["spec"]["volumeMode"] == "Filesystem"
    vol2 = c.create("persistentvolumes", {"metadata": {"name": "v2"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
        "hostPath": {"path": "/tmp"}}}, ns=None)
    assert vol2["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    st = c.create("statefulsets", sts("web"))
    sp = st["spec"]
    assert st["metadata"]["generation"] == 1
    assert sp["podManagementPolicy"] == "OrderedReady" and sp["revisionHistoryLimit"] == 10
    assert sp["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sp["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                          "whenScaled": "Retain"}
    t = sp["volumeClaimTemplates"][0]
    assert t["spec"]["volumeMode"] == "Filesystem" and t["kind"] == "PersistentVolumeClaim"
    assert sp["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    st2 = c.patch("statefulsets", "web", {"metadata": {"labels": {"a": "b"}}})
    assert st2["metadata"]["generation"] == 1, "metadata change keeps generation"
    st3 = c.patch("statefulsets", "web", {"spec": {"replicas": 3}})
    assert st3["metadata"]["generation"] == 2
    bad = sts("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiError) as ei:
        c.create("statefulsets", bad)
    status_error(ei, 422, "Invalid")


def test_immutable_fields_rejected(apiserver):
    c = apiserver.client
    c.create("storageclasses", sc(), ns=None)
    with pytest.raises(ApiError) as ei:
        c.patch("storageclasses", "ordinal", {"parameters": {"a": "b"}}, ns=None)
    status_error(ei, 422, "Invalid")
    c.create("persistentvolumeclaims", pvc("p", cls="ordinal"))
    with pytest.raises(ApiError) as ei:
        c.patch("persistentvolumeclaims", "p", {"spec": {"accessModes": ["ReadWriteMany"]}})
    status_error(ei, 422, "Invalid")
    c.patch("persistentvolumeclaims", "p", {"spec": {"resources": {"requests": {
        "storage": "2Gi"}}}})   # expansion is allowed
    c.create("persistentvolumes", pv("v"), ns=None)
    with pytest.raises(ApiError) as ei:
        c.patch("persistentvolumes", "v", {"spec": {"csi": {"volumeHandle": "other"}}}, ns=None)
    status_error(ei, 422, "Invalid")


def test_dry_run_does_not_persist(apiserver):
    c = apiserver.client
    out = c.create("configmaps", cm("a"), dryRun="All")
    assert out["metadata"]["name"] == "a" and "resourceVersion" not in out["metadata"]
    assert not c.exists("configmaps", "a")
    c.create("configmaps", cm("a"))
    c.patch("configmaps", "a", {"data": {"k": "dry"}}, dryRun="All")
    assert c.get("configmaps", "a")["data"]["k"] == "v"
    c.delete("configmaps", "a", dryRun="All")
    assert c.exists("configmaps", "a")


# ---------------------------------------------------------------- status subresource

def test_status_subresource_separation(apiserver):
    c = apiserver.client
    p = c.create("persistentvolumeclaims", pvc("p"))
    # Main-resource PUT ignores status.
    p["status"] = {"phase": "Bound"}
    p["metadata"]["labels"] = {"x": "1"}
    p = c.update("persistentvolumeclaims", p)
    assert p["status"]["phase"] == "Pending" and p["metadata"]["labels"] == {"x": "1"}
    # Status PUT changes only status: spec and metadata edits are dropped.
    p["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
    p["spec"]["volumeName"] = "sneaky"
    p["metadata"]["labels"] = {"x": "2"}
    s = c.update("persistentvolumeclaims", p, sub="status")
    assert s["status"]["phase"] == "Bound" and "volumeName" not in s["spec"]
    assert s["metadata"]["labels"] == {"x": "1"} and rv(s) > rv(p)
    assert c.get("persistentvolumeclaims", "p", sub="status")["status"]["phase"] == "Bound"
    # Status PATCH.
    s2 = c.patch("persistentvolumeclaims", "p", {"status": {"phase": "Lost"},
                                                 "spec": {"volumeName": "x"}}, sub="status")
    assert s2["status"]["phase"] == "Lost" and "volumeName" not in s2["spec"]
    # Main PATCH cannot touch status either.
    m = c.patch("persistentvolumeclaims", "p", {"status": {"phase": "Pending"}})
    assert m["status"]["phase"] == "Lost"
    # Stale resourceVersion on status update conflicts too.
    s["status"]["phase"] = "Pending"
    with pytest.raises(ApiError) as ei:
        c.update("persistentvolumeclaims", s, sub="status")
    status_error(ei, 409, "Conflict")
    # Resources without a status subresource have no /status.
    c.create("configmaps", cm("a"))
    r = c.request("GET", path("configmaps", "a", NS, "status"))
    assert r.status == 404


# ---------------------------------------------------------------- patch

def test_merge_and_json_patch(apiserver):
    c = apiserver.client
    c.create("configmaps", cm("a", labels={"keep": "1", "drop": "1"}))
    o = c.patch("configmaps", "a", {"metadata": {"labels": {"drop": None, "new": "2"}},
                                    "data": {"x": "y"}})
    assert o["metadata"]["labels"] == {"keep": "1", "new": "2"}
    assert o["data"] == {"k": "v", "x": "y"}
    o = c.patch("configmaps", "a", [
        {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "c"}},
        {"op": "replace", "path": "/data/k", "value": "w"},
        {"op": "remove", "path": "/data/x"},
        {"op": "copy", "from": "/data/k", "path": "/data/k2"},
        {"op": "move", "from": "/data/k2", "path": "/data/k3"},
        {"op": "test", "path": "/data/k", "value": "w"}], ptype="json")
    assert o["data"] == {"k": "w", "k3": "w"} and o["metadata"]["annotations"] == {"a/b": "c"}
    o = c.patch("configmaps", "a", [{"op": "add", "path": "/metadata/annotations/x~1y",
                                     "value": "z"}], ptype="json")
    assert o["metadata"]["annotations"]["x/y"] == "z"
    with pytest.raises(ApiError) as ei:
        c.patch("configmaps", "a", [{"op": "test", "path": "/data/k", "value": "nope"}],
                ptype="json")
    status_error(ei, 422, "Invalid")
    with pytest.raises(ApiError) as ei:
        c.patch("configmaps", "a", [{"op": "remove", "path": "/data/absent"}], ptype="json")
    status_error(ei, 422, "Invalid")
    # A patch carrying a stale resourceVersion is a precondition.
    with pytest.raises(ApiError) as ei:
        c.patch("configmaps", "a", {"metadata": {"resourceVersion": "1"}, "data": {"k": "q"}})
    status_error(ei, 409, "Conflict")
    with pytest.raises(ApiError) as ei:
        c.patch("configmaps", "missing", {"data": {}})
    status_error(ei, 404, "NotFound")


def test_strategic_merge_patch(apiserver):
    c = apiserver.client
    s = sts("web")
    s["metadata"]["finalizers"] = ["a.example/one", "a.example/two"]
    s["spec"]["template"]["spec"]["containers"] = [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"},
                                                  {"name": "B", "value": "1"}]},
        {"name": "side", "image": "side:1"}]
    c.create("statefulsets", s)
    o = c.patch("statefulsets", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"},
                                                  {"name": "C", "value": "3"}]}]}}}},
        ptype="strategic")
    cs = o["spec"]["template"]["spec"]["containers"]
    assert [x["name"] for x in cs] == ["app", "side"], "merged by name, not replaced"
    assert cs[0]["image"] == "app:2" and cs[1]["image"] == "side:1"
    assert cs[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"},
                            {"name": "C", "value": "3"}]
    o = c.patch("statefulsets", "web", {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/one"],
                     "finalizers": ["a.example/three"]},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
            "containers": [{"name": "side", "$patch": "delete"}]}}}}, ptype="strategic")
    assert o["metadata"]["finalizers"] == ["a.example/two", "a.example/three"]
    assert [x["name"] for x in o["spec"]["template"]["spec"]["containers"]] == ["app"]
    o = c.patch("statefulsets", "web", {"spec": {"selector": {"$patch": "replace",
                                                              "matchLabels": {"app": "web"}}},
                                        "metadata": {"labels": {"z": "1"}}}, ptype="strategic")
    assert o["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    # Lists without a merge strategy are replaced.
    tol = {"spec": {"template": {"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}}}}
    c.patch("statefulsets", "web", tol, ptype="strategic")
    tol["spec"]["template"]["spec"]["tolerations"] = [{"key": "b", "operator": "Exists"}]
    o = c.patch("statefulsets", "web", tol, ptype="strategic")
    assert o["spec"]["template"]["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    # finalizers via SMP: union, as controllers patch them.
    c.create("persistentvolumeclaims", pvc("p"))
    p = c.patch("persistentvolumeclaims", "p", {"metadata": {"finalizers": ["x.example/f"]}},
                ptype="strategic")
    assert p["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection", "x.example/f"]


def test_unsupported_patch_types_are_415(apiserver):
    c = apiserver.client
    c.create("configmaps", cm("a"))
    for ctype in ("application/apply-patch+yaml", "application/json", "text/plain"):
        r = c.request("PATCH", path("configmaps", "a", NS), {"data": {"k": "x"}},
                      content_type=ctype, query={"fieldManager": "kubectl"})
        assert r.status == 415, ctype
        assert r.body["kind"] == "Status" and r.body["reason"] == "UnsupportedMediaType"
    assert c.get("configmaps", "a")["data"]["k"] == "v"


# ---------------------------------------------------------------- list paging, selectors

def test_list_paging_is_consistent(apiserver):
    c = apiserver.client
    for i in range(7):
        c.create("configmaps", cm("cm-%d" % i))
    p1 = c.list("configmaps", limit=3)
    names = [i["metadata"]["name"] for i in p1["items"]]
    assert names == ["cm-0", "cm-1", "cm-2"]
    assert p1["metadata"]["remainingItemCount"] == 4 and p1["metadata"]["continue"]
    # Changes after the first page do not show up in later pages (snapshot at the list RV).
    c.delete("configmaps", "cm-4")
    c.create("configmaps", cm("cm-9"))
    c.patch("configmaps", "cm-5", {"data": {"k": "changed"}})
    p2 = c.list("configmaps", limit=3, **{"continue": p1["metadata"]["continue"]})
    assert p2["metadata"]["resourceVersion"] == p1["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in p2["items"]] == ["cm-3", "cm-4", "cm-5"]
    assert p2["items"][2]["data"]["k"] == "v"
    p3 = c.list("configmaps", limit=3, **{"continue": p2["metadata"]["continue"]})
    assert [i["metadata"]["name"] for i in p3["items"]] == ["cm-6"]
    assert "continue" not in p3["metadata"]
    fresh = c.list("configmaps")
    assert [i["metadata"]["name"] for i in fresh["items"]][-2:] == ["cm-6", "cm-9"]
    # A token older than the retained history is 410 Expired; a garbage token is 400.
    tok = c.list("configmaps", limit=2)["metadata"]["continue"]
    c.create("configmaps", cm("late"))
    apiserver.fault(compact=True)
    with pytest.raises(ApiError) as ei:
        c.list("configmaps", limit=2, **{"continue": tok})
    status_error(ei, 410, "Expired")
    with pytest.raises(ApiError) as ei:
        c.list("configmaps", limit=2, **{"continue": "garbage!"})
    status_error(ei, 400, "BadRequest")


def test_label_and_field_selectors(apiserver):
    c = apiserver.client
    c.create("configmaps", cm("a", labels={"app": "web", "tier": "fe"}))
    c.create("configmaps", cm("b", labels={"app": "web", "tier": "be"}))
    c.create("configmaps", cm("c", labels={"app": "db"}))
    c.create("configmaps", cm("d"))

    def names(**q):
        return [i["metadata"]["name"] for i in c.list("configmaps", **q)["items"]]
    assert names(labelSelector="app=web") == ["a", "b"]
    assert names(labelSelector="app==web,tier=fe") == ["a"]
    assert names(labelSelector="app!=web") == ["c", "d"], "!= matches objects without the key"
    assert names(labelSelector="app in (web, db),tier notin (be)") == ["a", "c"]
    assert names(labelSelector="tier") == ["a", "b"]
    assert names(labelSelector="!tier") == ["c", "d"]
    assert names(fieldSelector="metadata.name=b") == ["b"]
    assert names(fieldSelector="metadata.name!=b,metadata.namespace=default") == ["a", "c", "d"]
    assert names(labelSelector="app=web", fieldSelector="metadata.name!=a") == ["b"]
    for bad in ("app in web", "=x", "a b"):
        with pytest.raises(ApiError) as ei:
            c.list("configmaps", labelSelector=bad)
        status_error(ei, 400, "BadRequest")
    with pytest.raises(ApiError) as ei:
        c.list("configmaps", fieldSelector="spec.whatever=1")
    assert "field label not supported" in status_error(ei, 400, "BadRequest")["message"]
    # Resource-specific fields.
    c.create("pods", pod("p1", node="n1"))
    c.create("pods", pod("p2"))
    assert [i["metadata"]["name"] for i in c.list("pods", fieldSelector="spec.nodeName=n1")[
        "items"]] == ["p1"]
    assert [i["metadata"]["name"] for i in c.list("pods", fieldSelector="spec.nodeName=")[
        "items"]] == ["p2"]
    assert len(c.list("pods", fieldSelector="status.phase=Pending")["items"]) == 2


# ---------------------------------------------------------------- watch

def test_watch_event_order_and_content(apiserver):
    c = apiserver.client
    start = c.list("configmaps")["metadata"]["resourceVersion"]
    with c.watch("configmaps", resourceVersion=start) as w:
        a = c.create("configmaps", cm("a"))
        a2 = c.patch("configmaps", "a", {"data": {"k": "2"}})
        d = c.delete("configmaps", "a")
        evs = w.events(3)
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    assert evs[0]["object"]["kind"] == "ConfigMap" and evs[0]["object"]["apiVersion"] == "v1"
    assert rv(evs[0]["object"]) == rv(a) and rv(evs[1]["object"]) == rv(a2)
    assert evs[2]["object"]["data"]["k"] == "2", "DELETED carries the last state"
    assert rv(evs[2]["object"]) > rv(a2)
    assert d["status"] == "Success" and d["details"]["name"] == "a"


def test_watch_from_zero_lists_then_streams(apiserver):
    c = apiserver.client
    c.create("configmaps", cm("a"))
    c.create("configmaps", cm("b"))
    with c.watch("configmaps", resourceVersion="0") as w:
        first = w.events(2)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in first] == [
            ("ADDED", "a"), ("ADDED", "b")]
        c.create("configmaps", cm("c"))
        assert w.events(1)[0]["object"]["metadata"]["name"] == "c"


def test_watch_replays_history_from_resource_version(apiserver):
    c = apiserver.client
    a = c.create("configmaps", cm("a"))
    c.patch("configmaps", "a", {"data": {"k": "1"}})
    c.create("configmaps", cm("b"))
    with c.watch("configmaps", resourceVersion=a["metadata"]["resourceVersion"]) as w:
        evs = w.events(2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
        ("MODIFIED", "a"), ("ADDED", "b")]


def test_watch_bookmarks_and_timeout(apiserver):
    c = apiserver.client
    apiserver.fault(bookmark_interval=0.2)
    t0 = time.monotonic()
    with c.watch("configmaps", resourceVersion="0", allowWatchBookmarks="true",
                 timeoutSeconds="1") as w:
        c.create("configmaps", cm("a"))
        seen = []
        while True:
            ev = w.next_event(3)
            if ev is None:
                break
            seen.append(ev)
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 2.5, "the stream ends cleanly after timeoutSeconds"
    bms = [e for e in seen if e["type"] == "BOOKMARK"]
    assert bms, seen
    bm = bms[-1]["object"]
    assert bm["kind"] == "ConfigMap" and bm["apiVersion"] == "v1"
    assert list(bm["metadata"]) == ["resourceVersion"]
    assert int(bm["metadata"]["resourceVersion"]) >= rv(c.get("configmaps", "a"))
    # Without allowWatchBookmarks there are none.
    with c.watch("configmaps", resourceVersion="0", timeoutSeconds="1") as w:
        assert all(e["type"] != "BOOKMARK" for e in w.events(10, timeout=3,
                                                              skip_bookmarks=False))


@pytest.mark.apiserver_args("--watch-window", "5")
def test_watch_410_past_the_window(apiserver):
    c = apiserver.client
    old = c.create("configmaps", cm("a"))
    for i in range(6):
        c.patch("configmaps", "a", {"data": {"k": str(i)}})
    with c.watch("configmaps", resourceVersion=old["metadata"]["resourceVersion"]) as w:
        ev = w.next_event()
        assert ev["type"] == "ERROR"
        assert ev["object"]["kind"] == "Status" and ev["object"]["code"] == 410
        assert ev["object"]["reason"] == "Expired"
        assert ev["object"]["message"].startswith("too old resource version: ")
        assert w.next_event() is None, "the stream ends after the error"
    # A recent resourceVersion is still inside the window.
    recent = c.get("configmaps", "a")["metadata"]["resourceVersion"]
    with c.watch("configmaps", resourceVersion=recent) as w:
        c.patch("configmaps", "a", {"data": {"k": "new"}})
        assert w.events(1)[0]["type"] == "MODIFIED"


def test_watch_selectors_translate_events(apiserver):
    c = apiserver.client
    start = c.list("configmaps")["metadata"]["resourceVersion"]
    with c.watch("configmaps", resourceVersion=start, labelSelector="app=web") as w:
        c.create("configmaps", cm("other"))
        c.create("configmaps", cm("a"))
        c.patch("configmaps", "a", {"metadata": {"labels": {"app": "web"}}})
        c.patch("configmaps", "a", {"data": {"k": "2"}})
        c.patch("configmaps", "a", {"metadata": {"labels": {"app": "db"}}})
        evs = w.events(3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
        ("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    # Single-object watch via fieldSelector and the legacy /watch/ path.
    with c.watch("configmaps", resourceVersion="0", name="a") as w:
        assert w.events(1)[0]["object"]["metadata"]["name"] == "a"
    conn = c._conn(5)
    conn.request("GET", "/api/v1/watch/namespaces/default/configmaps/a?timeoutSeconds=1",
                 headers={"Authorization": "Bearer " + apiserver.token})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    lines = [json.loads(x) for x in resp.read().splitlines() if x.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "a")]
    conn.close()


def test_watch_namespace_scoping(apiserver):
    c = apiserver.client
    c.create("namespaces", {"metadata": {"name": "other"}}, ns=None)
    start = c.list("configmaps")["metadata"]["resourceVersion"]
    with c.watch("configmaps", ns=NS, resourceVersion=start) as w:
        c.create("configmaps", cm("x"), ns="other")
        c.create("configmaps", cm("y"), ns=NS)
        assert w.events(1)[0]["object"]["metadata"]["name"] == "y"
    with c.watch("configmaps", ns=None, resourceVersion=start) as w:
        assert [e["object"]["metadata"]["name"] for e in w.events(2)] == ["x", "y"]


# ---------------------------------------------------------------- deletion, finalizers

def test_finalizers_and_deletion_timestamp(apiserver):
    c = apiserver.client
    c.create("configmaps", cm("a", finalizers=["example.com/hold"]))
    start = c.get("configmaps", "a")["metadata"]["resourceVersion"]
    with c.watch("configmaps", resourceVersion=start) as w:
        r = c.request("DELETE", path("configmaps", "a", NS))
        assert r.status == 200 and r.body["kind"] == "ConfigMap"
        md = r.body["metadata"]
        assert md["deletionTimestamp"] and md["deletionGracePeriodSeconds"] == 0
        assert w.events(1)[0]["type"] == "MODIFIED"
        again = c.delete("configmaps", "a")
        assert again["metadata"] == md, "a second DELETE changes nothing"
        assert c.get("configmaps", "a")["metadata"]["deletionTimestamp"] == md["deletionTimestamp"]
        # No new finalizers while deleting.
        with pytest.raises(ApiError) as ei:
            c.patch("configmaps", "a", {"metadata": {"finalizers": ["example.com/hold",
                                                                    "example.com/new"]}})
        status_error(ei, 422, "Invalid")
        # deletionTimestamp cannot be cleared by an update.
        cur = c.get("configmaps", "a")
        cur["metadata"].pop("deletionTimestamp")
        assert c.update("configmaps", cur)["metadata"]["deletionTimestamp"]
        # Removing the last finalizer deletes the object.
        c.patch("configmaps", "a", {"metadata": {"finalizers": None}})
        ev = w.events(1)[0]
        assert ev["type"] == "DELETED" and ev["object"]["metadata"]["name"] == "a"
    assert not c.exists("configmaps", "a")


def test_delete_responses_and_preconditions(apiserver):
    c = apiserver.client
    a = c.create("configmaps", cm("a"))
    with pytest.raises(ApiError) as ei:
        c.delete("configmaps", "a", body={"preconditions": {"uid": "not-the-uid"}})
    assert "Precondition failed" in status_error(ei, 409, "Conflict")["message"]
    with pytest.raises(ApiError) as ei:
        c.delete("configmaps", "a", body={"preconditions": {"resourceVersion": "1"}})
    status_error(ei, 409, "Conflict")
    st = c.delete("configmaps", "a", body={"kind": "DeleteOptions", "apiVersion": "v1",
                                           "preconditions": {"uid": a["metadata"]["uid"]}})
    assert st == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": {"name": "a", "kind": "configmaps", "uid": a["metadata"]["uid"]}}
    with pytest.raises(ApiError) as ei:
        c.delete("configmaps", "a")
    status_error(ei, 404, "NotFound")
    # PV, PVC and Pod stores return the deleted object.
    c.create("pods", pod("p"))
    assert c.delete("pods", "p")["kind"] == "Pod"
    # deletecollection with a selector.
    for n in ("x", "y", "z"):
        c.create("configmaps", cm(n, labels={"g": "1" if n != "z" else "2"}))
    out = c.call("DELETE", path("configmaps", None, NS), query={"labelSelector": "g=1"})
    assert sorted(i["metadata"]["name"] for i in out["items"]) == ["x", "y"]
    assert [i["metadata"]["name"] for i in c.list("configmaps")["items"]] == ["z"]


# ---------------------------------------------------------------- admission + protection

def test_admission_protection_finalizers_and_default_class(apiserver):
    c = apiserver.client
    c.create("storageclasses", sc("fast"), ns=None)
    c.create("storageclasses", sc("ordinal", default=True), ns=None)
    p = c.create("persistentvolumeclaims", pvc("p"))
    assert p["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert p["spec"]["storageClassName"] == "ordinal", "DefaultStorageClass admission"
    explicit = c.create("persistentvolumeclaims", pvc("q", cls=""))
    assert explicit["spec"]["storageClassName"] == ""
    v = c.create("persistentvolumes", pv("v"), ns=None)
    assert v["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]


def test_pvc_protection_waits_for_scheduled_pods(apiserver):
    c = apiserver.client
    c.create("persistentvolumeclaims", pvc("data"))
    c.create("pods", pod("unscheduled", claim="data"))
    c.create("pods", pod("user", claim="data", node="node-1"))
    d = c.delete("persistentvolumeclaims", "data")
    assert d["metadata"]["deletionTimestamp"]
    apiserver.controllers_caught_up()
    got = c.get("persistentvolumeclaims", "data")
    assert got["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    # A pod that has finished (its containers exited, as a deleted pod's do before kubelet
    # unmounts) still holds the claim until the pod object is gone (podUsesPVC ignores phase).
    u = c.get("pods", "user")
    u["status"] = {"phase": "Succeeded"}
    c.update("pods", u, sub="status")
    apiserver.controllers_caught_up()
    got = c.get("persistentvolumeclaims", "data")
    assert got["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    c.delete("pods", "user")
    wait_for(lambda: not c.exists("persistentvolumeclaims", "data"), what="PVC removal")


def test_pv_protection_waits_while_bound(apiserver):
    c = apiserver.client
    claim = c.create("persistentvolumeclaims", pvc("p", cls="ordinal"))
    c.create("persistentvolumes", pv("v", claim=claim, policy="Retain"), ns=None)
    wait_for(lambda: c.get("persistentvolumes", "v", ns=None)["status"]["phase"] == "Bound")
    c.delete("persistentvolumes", "v", ns=None)
    apiserver.controllers_caught_up()
    assert c.get("persistentvolumes", "v", ns=None)["metadata"]["deletionTimestamp"]
    c.delete("persistentvolumeclaims", "p")
    wait_for(lambda: not c.exists("persistentvolumes", "v", ns=None), what="PV removal")


# ---------------------------------------------------------------- PV binder

def test_pv_binder_binds_prebound_volume_and_releases(apiserver):
    c = apiserver.client
    c.create("storageclasses", sc("ordinal"), ns=None)
    claim = c.create("persistentvolumeclaims", pvc("www-web-0", cls="ordinal"))
    vol = pv("pvc-" + claim["metadata"]["uid"], claim=claim, size="2Gi")
    vol["metadata"]["annotations"] = {"pv.kubernetes.io/provisioned-by": "ordinal.csi.dev"}
    vol["metadata"]["finalizers"] = ["external-provisioner.volume.kubernetes.io/finalizer"]
    name = vol["metadata"]["name"]
    c.create("persistentvolumes", vol, ns=None)

    def bound():
        p = c.get("persistentvolumeclaims", "www-web-0")
        return p if p["status"].get("phase") == "Bound" else None
    p = wait_for(bound, what="claim Bound")
    assert p["spec"]["volumeName"] == name
    ann = p["metadata"]["annotations"]
    assert ann["pv.kubernetes.io/bind-completed"] == "yes"
    assert ann["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert p["status"]["capacity"] == {"storage": "2Gi"}
    assert p["status"]["accessModes"] == ["ReadWriteOnce"]
    v = c.get("persistentvolumes", name, ns=None)
    assert v["status"]["phase"] == "Bound"
    assert "pv.kubernetes.io/bound-by-controller" not in v["metadata"].get("annotations", {}), \
        "a PV created with claimRef.uid is pre-bound"
    assert set(v["metadata"]["finalizers"]) == {
        "kubernetes.io/pv-protection", "external-provisioner.volume.kubernetes.io/finalizer"}
    # Claim deleted => PV Released; the provisioner's finalizer keeps it.
    c.delete("persistentvolumeclaims", "www-web-0")
    wait_for(lambda: c.get("persistentvolumes", name, ns=None)["status"]["phase"] == "Released",
             what="PV Released")
    assert not c.exists("persistentvolumeclaims", "www-web-0")
    # The provisioner deletes the PV and drops its finalizer; pv-protection lets it go.
    c.delete("persistentvolumes", name, ns=None)
    c.patch("persistentvolumes", name, {"metadata": {
        "$deleteFromPrimitiveList/finalizers": [
            "external-provisioner.volume.kubernetes.io/finalizer"]}}, ptype="strategic", ns=None)
    wait_for(lambda: not c.exists("persistentvolumes", name, ns=None), what="PV gone")


def test_pv_binder_provisioning_annotations(apiserver):
    c = apiserver.client
    c.create("storageclasses", sc("imm"), ns=None)
    c.create("storageclasses", sc("wffc", mode="WaitForFirstConsumer"), ns=None)
    c.create("persistentvolumeclaims", pvc("a", cls="imm"))
    c.create("persistentvolumeclaims", pvc("b", cls="wffc"))
    key = "volume.kubernetes.io/storage-provisioner"
    a = wait_for(lambda: (c.get("persistentvolumeclaims", "a")["metadata"].get(
        "annotations") or {}).get(key))
    assert a == "ordinal.csi.dev"
    assert c.get("persistentvolumeclaims", "a")["metadata"]["annotations"][
        "volume.beta.kubernetes.io/storage-provisioner"] == "ordinal.csi.dev"

    def events_for(name):
        return [e["reason"] for e in c.list("events", fieldSelector=(
            "involvedObject.kind=PersistentVolumeClaim,involvedObject.name=%s" % name))["items"]]
    wait_for(lambda: "WaitForFirstConsumer" in events_for("b"))
    assert key not in (c.get("persistentvolumeclaims", "b")["metadata"].get("annotations") or {})
    c.patch("persistentvolumeclaims", "b", {"metadata": {"annotations": {
        "volume.kubernetes.io/selected-node": "node-1"}}})
    wait_for(lambda: (c.get("persistentvolumeclaims", "b")["metadata"].get(
        "annotations") or {}).get(key) == "ordinal.csi.dev")
    assert "ExternalProvisioning" in events_for("b")


def test_pv_binder_static_and_readoption(apiserver):
    """A Retain PV whose claimRef is reset (uid removed) binds to the new claim of that name."""
    c = apiserver.client
    claim = c.create("persistentvolumeclaims", pvc("www-web-1", cls="ordinal"))
    c.create("persistentvolumes", pv("keep", claim=claim, policy="Retain"), ns=None)
    wait_for(lambda: c.get("persistentvolumeclaims", "www-web-1")["status"].get(
        "phase") == "Bound")
    c.delete("persistentvolumeclaims", "www-web-1")
    wait_for(lambda: c.get("persistentvolumes", "keep", ns=None)["status"]["phase"] == "Released")
    again = c.create("persistentvolumeclaims", pvc("www-web-1", cls="ordinal"))
    apiserver.controllers_caught_up()
    assert c.get("persistentvolumes", "keep", ns=None)["status"]["phase"] == "Released", \
        "a stale claimRef uid never binds the new claim"
    c.patch("persistentvolumes", "keep", [
        {"op": "remove", "path": "/spec/claimRef/uid"},
        {"op": "remove", "path": "/spec/claimRef/resourceVersion"}], ptype="json", ns=None)
    p = wait_for(lambda: (lambda o: o if o["status"].get("phase") == "Bound" else None)(
        c.get("persistentvolumeclaims", "www-web-1")))
    assert p["spec"]["volumeName"] == "keep"
    assert c.get("persistentvolumes", "keep", ns=None)["spec"]["claimRef"]["uid"] == \
        again["metadata"]["uid"]
    # An unclaimed Available PV matching class/size/modes is bound to a new claim.
    c.create("persistentvolumes", pv("spare", size="5Gi"), ns=None)
    c.create("persistentvolumeclaims", pvc("static", cls="ordinal", size="3Gi"))
    wait_for(lambda: c.get("persistentvolumeclaims", "static")["spec"].get(
        "volumeName") == "spare")


def test_controllers_idle_cost_does_not_grow_with_objects(apiserver):
    """Level-triggered per object: with 100 bound claims, one change costs a few syncs, not a
    walk of every PV and claim, and with nothing changing the controllers sleep until the next
    full resync (they used to walk every PV and claim twice a second)."""
    c = apiserver.client
    for i in range(100):
        claim = c.create("persistentvolumeclaims", pvc("idle-%d" % i, cls="ordinal"))
        c.create("persistentvolumes", pv("idle-pv-%d" % i, claim=claim), ns=None)
    wait_for(lambda: all(p["status"].get("phase") == "Bound" for p in c.list(
        "persistentvolumeclaims")["items"]), timeout=30, what="100 claims Bound")
    before = apiserver.controllers_caught_up()
    c.patch("persistentvolumeclaims", "idle-7", {"metadata": {"labels": {"touched": "1"}}})
    after = apiserver.controllers_caught_up()
    assert after["processed_rv"] > before["processed_rv"]
    assert after["full_rounds"] == before["full_rounds"], (before, after)
    synced = after["synced"] - before["synced"]
    assert 0 < synced <= 10, "one changed claim cost %d syncs (%r, %r)" % (synced, before, after)
    # Idle: the loop's next wake-up is the full resync (default every 30 s), not a poll.
    idle = wait_for(lambda: (lambda s: s if s["next_wake_in"] is not None else None)(
        apiserver.faults()["controllers"]), what="controllers waiting")
    assert idle["next_wake_in"] > 5.0 and idle["synced"] == after["synced"], idle


@pytest.mark.apiserver_args("--controller-resync", "0.2")
def test_controller_full_resync_option(apiserver):
    """Frequent full resyncs (the safety net) change nothing that is already in place."""
    c = apiserver.client
    claim = c.create("persistentvolumeclaims", pvc("resync", cls="ordinal"))
    c.create("persistentvolumes", pv("resync-pv", claim=claim), ns=None)
    wait_for(lambda: c.get("persistentvolumeclaims", "resync")["status"].get(
        "phase") == "Bound", what="claim Bound")
    rv = c.get("persistentvolumeclaims", "resync")["metadata"]["resourceVersion"]
    rounds = apiserver.controllers_caught_up()["full_rounds"]
    wait_for(lambda: apiserver.faults()["controllers"]["full_rounds"] >= rounds + 2,
             what="two more full resyncs")
    assert c.get("persistentvolumeclaims", "resync")["metadata"]["resourceVersion"] == rv
    c.delete("persistentvolumeclaims", "resync")
    wait_for(lambda: c.get("persistentvolumes", "resync-pv", ns=None)["status"][
        "phase"] == "Released", what="PV Released")


@pytest.mark.apiserver_args("--no-controllers")
def test_no_controllers_option(apiserver):
    c = apiserver.client
    claim = c.create("persistentvolumeclaims", pvc("p", cls="ordinal"))
    c.create("persistentvolumes", pv("v", claim=claim), ns=None)
    c.delete("persistentvolumeclaims", "p")
    ctl = apiserver.faults()["controllers"]
    assert ctl["enabled"] == [] and not ctl["running"] and ctl["synced"] == 0, ctl
    assert c.get("persistentvolumes", "v", ns=None)["status"]["phase"] == "Pending"
    assert c.get("persistentvolumeclaims", "p")["metadata"]["deletionTimestamp"]
    # Tests can act as the controllers themselves.
    c.patch("persistentvolumeclaims", "p", {"metadata": {"finalizers": []}})
    assert not c.exists("persistentvolumeclaims", "p")


# ---------------------------------------------------------------- garbage collector

def _family(c, name):
    owner = c.create("statefulsets", sts(name))
    kids = [c.create("pods", dict(pod("%s-%d" % (name, i)), metadata={
        "name": "%s-%d" % (name, i), "ownerReferences": [owner_ref(owner, block=True)]}))
        for i in range(2)]
    claim = c.create("persistentvolumeclaims", pvc("www-%s-0" % name, ownerReferences=[
        owner_ref(owner, block=False)]))
    return owner, kids, claim


def test_gc_background(apiserver):
    c = apiserver.client
    _family(c, "bg")
    r = c.delete("statefulsets", "bg", propagationPolicy="Background")
    assert r["status"] == "Success"
    assert not c.exists("statefulsets", "bg")
    wait_for(lambda: not c.exists("pods", "bg-0") and not c.exists("pods", "bg-1") and
             not c.exists("persistentvolumeclaims", "www-bg-0"), what="dependents deleted")
    # Default propagation for apps/v1 is background too.
    _family(c, "dflt")
    c.delete("statefulsets", "dflt")
    wait_for(lambda: not c.exists("pods", "dflt-0"), what="default background GC")


def test_gc_orphan(apiserver):
    c = apiserver.client
    owner, _, _ = _family(c, "orph")
    r = c.delete("statefulsets", "orph", body={"propagationPolicy": "Orphan"})
    assert "orphan" in r["metadata"]["finalizers"]
    wait_for(lambda: not c.exists("statefulsets", "orph"), what="owner gone")
    for kind, n in (("pods", "orph-0"), ("pods", "orph-1"),
                    ("persistentvolumeclaims", "www-orph-0")):
        o = c.get(kind, n)
        assert "ownerReferences" not in o["metadata"], (kind, n)
    # orphanDependents=true is the deprecated spelling.
    _family(c, "orph2")
    c.delete("statefulsets", "orph2", orphanDependents="true")
    wait_for(lambda: not c.exists("statefulsets", "orph2"))
    assert c.exists("pods", "orph2-0")


def test_gc_foreground(apiserver):
    c = apiserver.client
    c.create("pods", pod("blocker", claim=None, node="node-1"))
    owner, kids, claim = _family(c, "fg")
    # Keep one blocking dependent alive with a finalizer, so the owner must wait.
    c.patch("pods", "fg-1", {"metadata": {"finalizers": ["example.com/slow"]}})
    r = c.delete("statefulsets", "fg", propagationPolicy="Foreground")
    assert r["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in r["metadata"]["finalizers"]
    wait_for(lambda: not c.exists("pods", "fg-0"), what="foreground deletes dependents")
    wait_for(lambda: c.get("pods", "fg-1")["metadata"].get("deletionTimestamp"))
    apiserver.controllers_caught_up()
    assert c.exists("statefulsets", "fg"), "owner waits for blockOwnerDeletion dependents"
    c.patch("pods", "fg-1", {"metadata": {"finalizers": None}})
    wait_for(lambda: not c.exists("statefulsets", "fg"), what="owner gone after dependents")
    assert not c.exists("persistentvolumeclaims", "www-fg-0")
    assert c.exists("pods", "blocker")


def test_gc_dangling_and_partial_owners(apiserver):
    c = apiserver.client
    a = c.create("configmaps", cm("owner-a"))
    b = c.create("configmaps", cm("owner-b"))
    c.create("configmaps", cm("shared", ownerReferences=[owner_ref(a), owner_ref(b)]))
    c.delete("configmaps", "owner-a")
    wait_for(lambda: len(c.get("configmaps", "shared")["metadata"]["ownerReferences"]) == 1)
    assert c.get("configmaps", "shared")["metadata"]["ownerReferences"][0]["name"] == "owner-b"
    c.delete("configmaps", "owner-b")
    wait_for(lambda: not c.exists("configmaps", "shared"), what="last owner gone")


def test_namespace_deletion(apiserver):
    c = apiserver.client
    c.create("namespaces", {"metadata": {"name": "tmp"}}, ns=None)
    c.create("configmaps", cm("a"), ns="tmp")
    c.create("configmaps", cm("held", finalizers=["example.com/hold"]), ns="tmp")
    c.create("persistentvolumeclaims", pvc("p"), ns="tmp")
    r = c.delete("namespaces", "tmp", ns=None)
    assert r["status"]["phase"] == "Terminating" and r["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiError) as ei:
        c.create("configmaps", cm("b"), ns="tmp")
    status_error(ei, 403, "Forbidden")
    wait_for(lambda: [i["metadata"]["name"] for i in c.list("configmaps", ns="tmp")["items"]]
             == ["held"], what="contents deleted")
    assert not c.exists("persistentvolumeclaims", "p", ns="tmp")
    apiserver.controllers_caught_up()
    assert c.get("namespaces", "tmp", ns=None)["status"]["phase"] == "Terminating"
    c.patch("configmaps", "held", {"metadata": {"finalizers": None}}, ns="tmp")
    wait_for(lambda: not c.exists("namespaces", "tmp", ns=None), what="namespace gone")
    assert c.list("configmaps", ns="tmp")["items"] == []
    with pytest.raises(ApiError) as ei:
        c.delete("namespaces", "default", ns=None)
    status_error(ei, 403, "Forbidden")


# ---------------------------------------------------------------- other subresources, leases

def test_scale_and_binding_subresources(apiserver):
    c = apiserver.client
    c.create("statefulsets", sts("web", replicas=2))
    s = c.get("statefulsets", "web", sub="scale")
    assert s["kind"] == "Scale" and s["apiVersion"] == "autoscaling/v1"
    assert s["spec"]["replicas"] == 2 and s["status"]["selector"] == "app=web"
    s = c.patch("statefulsets", "web", {"spec": {"replicas": 5}}, sub="scale")
    assert s["spec"]["replicas"] == 5
    assert c.get("statefulsets", "web")["spec"]["replicas"] == 5
    c.create("pods", pod("p"))
    c.call("POST", path("pods", "p", NS, "binding"), {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "node-1"}})
    p = c.get("pods", "p")
    assert p["spec"]["nodeName"] == "node-1"
    assert p["status"]["conditions"][0]["type"] == "PodScheduled"
    with pytest.raises(ApiError) as ei:
        c.call("POST", path("pods", "p", NS, "binding"), {"target": {"name": "node-2"}})
    status_error(ei, 409, "Conflict")


def test_lease_leader_election_race(apiserver):
    c = apiserver.client
    now = "2025-01-01T00:00:00.000000Z"
    lease = c.create("leases", {"metadata": {"name": "ordinal-csi-dev", "namespace": NS},
                                "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                                         "acquireTime": now, "renewTime": now,
                                         "leaseTransitions": 0}})
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    mine = dict(lease, spec=dict(lease["spec"], holderIdentity="b", leaseTransitions=1))
    theirs = dict(lease, spec=dict(lease["spec"], renewTime="2025-01-01T00:00:05.000000Z"))
    assert c.update("leases", theirs)["spec"]["renewTime"].endswith("05.000000Z")
    with pytest.raises(ApiError) as ei:
        c.update("leases", mine)
    status_error(ei, 409, "Conflict")
    assert c.get("leases", "ordinal-csi-dev")["spec"]["holderIdentity"] == "a"


# ---------------------------------------------------------------- output formats

def test_table_and_metadata_output(apiserver):
    c = apiserver.client
    c.create("persistentvolumeclaims", pvc("p", cls="ordinal"))
    accept = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
              "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
    t = c.call("GET", path("persistentvolumeclaims", None, NS), headers={"Accept": accept})
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    cols = [d["name"] for d in t["columnDefinitions"]]
    assert cols[:6] == ["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass"]
    assert t["rows"][0]["cells"][:2] == ["p", "Pending"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert t["rows"][0]["object"]["metadata"]["name"] == "p"
    assert t["metadata"]["resourceVersion"]
    one = c.call("GET", path("persistentvolumeclaims", "p", NS), headers={"Accept": accept},
                 query={"includeObject": "Object"})
    assert one["kind"] == "Table" and one["rows"][0]["object"]["kind"] == "PersistentVolumeClaim"
    # Protobuf is answered with JSON (clients decode by the response Content-Type).
    r = c.request("GET", path("persistentvolumeclaims", "p", NS), headers={
        "Accept": "application/vnd.kubernetes.protobuf,application/json"})
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    assert r.body["kind"] == "PersistentVolumeClaim"
    pm = c.call("GET", path("persistentvolumeclaims", None, NS), headers={
        "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"})
    assert pm["kind"] == "PartialObjectMetadataList"
    assert pm["items"][0]["metadata"]["name"] == "p" and "spec" not in pm["items"][0]


# ---------------------------------------------------------------- fault injection

def test_fault_error_rate_500_and_429(apiserver):
    c = apiserver.client
    p = path("configmaps", None, NS)
    apiserver.fault(error_rate=50)
    codes = [c.request("GET", p).status for _ in range(10)]
    assert codes.count(500) == 5 and codes.count(200) == 5
    r = [c.request("GET", p) for _ in range(2)]
    bad = [x for x in r if x.status == 500][0]
    assert bad.body["reason"] == "InternalError" and bad.body["kind"] == "Status"
    apiserver.fault(error_rate=100, error_code=429, retry_after=2)
    r = c.request("GET", p)
    assert r.status == 429 and r.headers["Retry-After"] == "2"
    assert r.body["reason"] == "TooManyRequests"
    assert r.body["details"]["retryAfterSeconds"] == 2
    # Faults can be limited to paths and methods; the admin endpoint is never faulted.
    apiserver.fault(error_rate=100, error_code=500, match="persistentvolumeclaims",
                    methods=["POST"])
    assert c.request("GET", p).status == 200
    assert c.request("GET", path("persistentvolumeclaims", None, NS)).status == 200
    assert c.request("POST", path("persistentvolumeclaims", None, NS), pvc("x")).status == 500
    assert apiserver.faults()["stats"]["errors"] >= 7
    apiserver.reset_faults()
    assert c.request("POST", path("persistentvolumeclaims", None, NS), pvc("x")).status == 201


def test_fault_latency(apiserver):
    c = apiserver.client
    apiserver.fault(latency_ms=300)
    t0 = time.monotonic()
    c.list("configmaps")
    assert time.monotonic() - t0 >= 0.3
    apiserver.fault(latency_ms=0)
    t0 = time.monotonic()
    c.list("configmaps")
    assert time.monotonic() - t0 < 0.3


def test_fault_conflict_next_update(apiserver):
    c = apiserver.client
    a = c.create("configmaps", cm("a"))
    apiserver.fault(conflict_next_update=1)
    a["data"]["k"] = "2"
    with pytest.raises(ApiError) as ei:
        c.update("configmaps", a)
    status_error(ei, 409, "Conflict")
    assert c.update("configmaps", a)["data"]["k"] == "2", "only the next update"
    apiserver.fault(conflict_next_update=2)
    for _ in range(2):
        with pytest.raises(ApiError):
            c.patch("configmaps", "a", {"data": {"k": "3"}})
    assert c.patch("configmaps", "a", {"data": {"k": "3"}})["data"]["k"] == "3"


def test_fault_expire_next_watch(apiserver):
    c = apiserver.client
    rv0 = c.list("configmaps")["metadata"]["resourceVersion"]
    apiserver.fault(expire_next_watch=True)
    with c.watch("configmaps", resourceVersion=rv0) as w:
        ev = w.next_event()
        assert ev["type"] == "ERROR" and ev["object"]["code"] == 410
        assert ev["object"]["reason"] == "Expired"
    with c.watch("configmaps", resourceVersion=rv0) as w:
        c.create("configmaps", cm("a"))
        assert w.events(1)[0]["type"] == "ADDED", "only the next watch"
    # compact: every older resourceVersion expires at once.
    apiserver.fault(compact=True)
    with c.watch("configmaps", resourceVersion=rv0) as w:
        assert w.next_event()["object"]["reason"] == "Expired"


def test_fault_drop_watches(apiserver):
    c = apiserver.client
    w1 = c.watch("configmaps", resourceVersion="0")
    w2 = c.watch("persistentvolumeclaims", resourceVersion="0", allowWatchBookmarks="true")
    wait_for(lambda: apiserver.faults()["open_watches"] == 2)
    apiserver.fault(drop_watches=True)
    for w in (w1, w2):
        with pytest.raises(ConnectionError):
            while True:
                if w.next_event(3) is None:
                    raise AssertionError("stream ended cleanly; expected a cut")
        w.close()
    wait_for(lambda: apiserver.faults()["stats"]["dropped_watches"] == 2)
    # New watches work again.
    with c.watch("configmaps", resourceVersion="0") as w:
        c.create("configmaps", cm("a"))
        assert w.events(1)[0]["object"]["metadata"]["name"] == "a"


def test_fault_flags_on_command_line(apiserver_factory):
    srv = apiserver_factory("--error-rate", "100", "--error-code", "429", "--retry-after", "3",
                            "--fault-match", "configmaps")
    c = srv.client
    r = c.request("GET", path("configmaps", None, NS))
    assert r.status == 429 and r.headers["Retry-After"] == "3"
    assert c.request("GET", path("secrets", None, NS)).status == 200
    assert srv.faults()["error_rate"] == 100


def test_concurrent_clients(apiserver):
    """The threaded server handles parallel writers and an open watch at once."""
    import threading
    c = apiserver.client
    rv0 = c.list("configmaps")["metadata"]["resourceVersion"]
    w = c.watch("configmaps", resourceVersion=rv0)
    errors = []

    def writer(i):
        try:
            for j in range(5):
                c.create("configmaps", cm("w%d-%d" % (i, j)))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    evs = w.events(20)
    w.close()
    rvs = [rv(e["object"]) for e in evs]
    assert rvs == sorted(rvs) and len(set(rvs)) == 20
