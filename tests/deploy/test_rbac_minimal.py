"""The manifests' RBAC, enforced by the fake API server (deploy/sandbox/rbac.py), is sufficient
and minimal for the real ordinal-csi:

* with the node ClusterRole and the controller Role exactly as rendered (overlay kind), a node
  plugin provisions a claim and deletes its volume, and a controller takes and renews its
  leader Lease, with no request denied;
* with the controller's ClusterRole as rendered, its reconciler (informers on sets, claims, PVs,
  classes, nodes and OrdinalVolumes) admits the claims of an ordered set in order, writes the
  ordinal fields of their OrdinalVolumes, approves a release and, on node loss with opt-in,
  deletes the ordinal's claim and PV, with no request of it denied (the node plugin beside it
  runs on the admin token, so only the controller's requests meet the cut role);
* with any one verb of any one rule removed, ordinal-csi makes a request that the API server
  denies (a 403 in its request log, whose RBAC attributes are that verb on that rule's
  resource): every verb of every rule is used.

The daemons run with their ServiceAccounts' tokens (the `serviceaccount-token` controller
issues them), not the admin token."""

import copy
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import NAMESPACE, one
from fakeapi import FakeApiServer, wait_for

import crd  # deploy/sandbox, on sys.path through conftest
import rbac

# The request log names OrdinalVolume requests by path: this process's resource table must know
# the manifests' CRD to read them (the API server registers it when it is created).
for _r in crd._resources_of(one("kind", "CustomResourceDefinition",
                                "ordinalvolumes.ordinal.csi.dev")):
    crd.register(_r)

DRIVER = "ordinal.csi.dev"
SELECTED = "volume.kubernetes.io/selected-node"
CONTROLLERS = "pv-binder,pvc-protection,pv-protection,garbage-collector,namespace," \
              "serviceaccount-token"
RBAC_API = "/apis/rbac.authorization.k8s.io/v1"
OV_API = "/apis/ordinal.csi.dev/v1alpha1/ordinalvolumes"


def _start(tmp_path, name):
    # 60 s: this test starts 36 servers one after the other; under a load of 15-20 one took
    # more than the default 15 s to write its kubeconfig
    return FakeApiServer.start(str(tmp_path / name), extra_args=["--controllers", CONTROLLERS],
                               timeout=60.0)


def _post(api, path, obj):
    api.client.call("POST", path, obj)


def _install(api, role_kind, role):
    """Namespace, both ServiceAccounts, and one role (with its binding) as given (cut or
    whole); for the controller's ClusterRole also its Role (Lease) whole."""
    _post(api, "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    for sa in ("ordinal-node", "ordinal-controller"):
        _post(api, "/api/v1/namespaces/%s/serviceaccounts" % NAMESPACE,
              one("kind", "ServiceAccount", sa))
    if role_kind == "ClusterRole" and role["metadata"]["name"] == "ordinal-controller":
        _post(api, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
              one("kind", "CustomResourceDefinition", "ordinalvolumes.ordinal.csi.dev"))
        _post(api, RBAC_API + "/namespaces/%s/roles" % NAMESPACE,
              one("kind", "Role", "ordinal-controller"))
        _post(api, RBAC_API + "/namespaces/%s/rolebindings" % NAMESPACE,
              one("kind", "RoleBinding", "ordinal-controller"))
        _post(api, RBAC_API + "/clusterroles", role)
        _post(api, RBAC_API + "/clusterrolebindings",
              one("kind", "ClusterRoleBinding", "ordinal-controller"))
    elif role_kind == "ClusterRole":
        # the node plugin's inventory keeps OrdinalVolume objects: the manifests' CRD
        _post(api, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
              one("kind", "CustomResourceDefinition", "ordinalvolumes.ordinal.csi.dev"))
        _post(api, RBAC_API + "/clusterroles", role)
        _post(api, RBAC_API + "/clusterrolebindings", one("kind", "ClusterRoleBinding",
                                                          role["metadata"]["name"]))
    else:
        _post(api, RBAC_API + "/namespaces/%s/roles" % NAMESPACE, role)
        _post(api, RBAC_API + "/namespaces/%s/rolebindings" % NAMESPACE,
              one("kind", "RoleBinding", role["metadata"]["name"]))
        # The controller's reconciler runs on its ClusterRole, installed whole here: the Lease
        # scenario cuts only the Role (the "reconciler" case below cuts the ClusterRole).
        _post(api, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
              one("kind", "CustomResourceDefinition", "ordinalvolumes.ordinal.csi.dev"))
        _post(api, RBAC_API + "/clusterroles", one("kind", "ClusterRole", "ordinal-controller"))
        _post(api, RBAC_API + "/clusterrolebindings",
              one("kind", "ClusterRoleBinding", "ordinal-controller"))


def _sa_kubeconfig(api, sa, path):
    tok = wait_for(lambda: _token(api, sa), 10, what="the token Secret of " + sa)
    sys.path.insert(0, os.path.join(os.path.dirname(rbac.__file__)))
    import apiserver as fake
    with open(path, "w") as f:
        f.write(fake.kubeconfig_text(api.url, tok[1].encode(), tok[0]))
    os.chmod(path, 0o600)
    return path


def _token(api, sa):
    r = api.client.request("GET", "/api/v1/namespaces/%s/secrets/%s-token" % (NAMESPACE, sa))
    if r.status != 200:
        return None
    import base64
    d = r.body["data"]
    return base64.b64decode(d["token"]).decode(), base64.b64decode(d["ca.crt"]).decode()


def denied(api):
    """(verb, group, resource/subresource, name) of every 403 in the request log."""
    out = []
    try:
        with open(api.log_file) as f:
            lines = f.readlines()
    except OSError:
        return out
    from urllib.parse import parse_qs, unquote, urlsplit
    for line in lines:
        parts = line.split()
        if len(parts) < 5 or parts[-2] != "403":
            continue
        u = urlsplit(parts[2])
        q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        a = rbac.request_info(parts[1], unquote(u.path), q)
        if a and a["resource_request"]:
            r = a["resource"] + ("/" + a["subresource"] if a["subresource"] else "")
            out.append((a["verb"], a["group"], r, a["name"]))
    return out


class Daemon:
    def __init__(self, binary, argv, log):
        self.log = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen([binary] + argv, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


def _node_plugin(api, binary, tmp_path):
    kc = _sa_kubeconfig(api, "ordinal-node", str(tmp_path / "node.kubeconfig"))
    root = tmp_path / "root"
    root.mkdir()
    return Daemon(binary, ["--mode=node", "--endpoint=unix://%s" % (tmp_path / "csi.sock"),
                           "--node-id=node-1", "--dir-root=%s" % root, "--kubeconfig=" + kc,
                           "--log-level=debug"], str(tmp_path / "node.log"))


def _step(api, expect_ok, fn, timeout, what):
    """Wait for fn(); with a cut role, stop as soon as a request is denied instead."""
    if expect_ok:
        return wait_for(fn, timeout, what=what)
    got = wait_for(lambda: denied(api) or fn(), timeout, what=what + " or a denial")
    if denied(api):
        raise Denied(denied(api))
    return got


class Denied(Exception):
    pass


def _node_scenario(api, expect_ok):
    """A claim on node-1 provisioned (PV created, claim bound, an event), then deleted (PV
    deleted by the plugin)."""
    c = api.client
    sc = one("kind", "StorageClass", "ordinal")
    c.create("storageclasses", {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                "metadata": {"name": "ordinal"}, "provisioner": DRIVER,
                                "reclaimPolicy": "Delete",
                                "volumeBindingMode": "WaitForFirstConsumer",
                                "parameters": sc.get("parameters") or {}}, ns=None)
    c.create("persistentvolumeclaims", {"metadata": {"name": "data", "annotations": {
        SELECTED: "node-1"}}, "spec": {"accessModes": ["ReadWriteOnce"],
                                       "storageClassName": "ordinal",
                                       "resources": {"requests": {"storage": "16Mi"}}}})

    def bound():
        p = c.get("persistentvolumeclaims", "data")
        return p if (p.get("status") or {}).get("phase") == "Bound" else None
    pvc = _step(api, expect_ok, bound, 30, "the claim Bound")
    pv = pvc["spec"]["volumeName"]

    # the inventory: an OrdinalVolume for the store (list, watch, create; status patched), a
    # spec changed by hand is put back (patch), the object deleted with the store (delete)
    def ovs():
        r = c.request("GET", OV_API)
        return [o for o in (r.body.get("items") or []) if (o.get("spec") or {}).get("key") ==
                "default/data"] if r.status == 200 else []

    def ov_state(state):
        got = ovs()
        return got[0] if got and (got[0].get("status") or {}).get("state") == state else None
    ov = _step(api, expect_ok, lambda: ov_state("Bound"), 30, "the OrdinalVolume Bound")
    size = ov["spec"]["capacityBytes"]
    c.call("PATCH", OV_API + "/" + ov["metadata"]["name"], {"spec": {"capacityBytes": size + 1}},
           content_type="application/merge-patch+json")
    _step(api, expect_ok, lambda: [o for o in ovs() if o["spec"]["capacityBytes"] == size], 30,
          "the OrdinalVolume's spec put back")
    _step(api, expect_ok, lambda: [e for e in c.list("events")["items"]
                                   if e["reason"] == "ProvisioningSucceeded"], 10, "the event")
    c.delete("persistentvolumeclaims", "data")
    _step(api, expect_ok, lambda: not c.exists("persistentvolumes", pv, ns=None), 30,
          "the PV deleted")
    _step(api, expect_ok, lambda: not ovs(), 30, "the OrdinalVolume deleted")


def _controller(api, binary, tmp_path):
    kc = _sa_kubeconfig(api, "ordinal-controller", str(tmp_path / "ctrl.kubeconfig"))
    return Daemon(binary, ["--mode=controller", "--endpoint=unix://%s" % (tmp_path / "c.sock"),
                           "--node-id=ctrl-a", "--leader-election-namespace=" + NAMESPACE,
                           "--kubeconfig=" + kc, "--log-level=debug"],
                  str(tmp_path / "ctrl.log"))


def _controller_scenario(api, expect_ok):
    """The controller takes the Lease and renews it (its renewTime moves)."""
    c = api.client

    def lease():
        r = c.request("GET", "/apis/coordination.k8s.io/v1/namespaces/%s/leases/ordinal-csi-dev"
                      % NAMESPACE)
        return r.body if r.status == 200 and r.body["spec"].get("holderIdentity") else None
    first = _step(api, expect_ok, lease, 30, "the Lease taken")["spec"]["renewTime"]
    _step(api, expect_ok, lambda: (lease() or {"spec": {}})["spec"].get("renewTime") != first,
          30, "the Lease renewed")


ADMITTED = "ordinal.csi.dev/admitted"


class Reconciler:
    """The controller on its ServiceAccount, and beside it a node plugin for node n1 on the
    admin token (it provisions, keeps the inventory and deletes released volumes: its requests
    are never denied, so every 403 is the controller's)."""

    def __init__(self, api, binary, tmp_path):
        root = tmp_path / "root"
        root.mkdir()
        self.node = Daemon(binary, ["--mode=node", "--endpoint=unix://%s" % (tmp_path / "n.sock"),
                                    "--node-id=n1", "--dir-root=%s" % root,
                                    "--kubeconfig=" + api.kubeconfig, "--log-level=debug"],
                           str(tmp_path / "node.log"))
        self.ctrl = _controller(api, binary, tmp_path)

    def stop(self):
        self.ctrl.stop()
        self.node.stop()

    def text(self):
        return self.ctrl.text()


def _reconciler_scenario(api, expect_ok):
    """An ordered class and a two-replica set that opts in to recreate on node loss: ordinal 1's
    claim first (the controller says OrdinalWaiting: events), then ordinal 0's; both admitted in
    order (claims patched) and Bound; their OrdinalVolumes get set/ordinal (ordinalvolumes/status
    patched); ordinal 1 released (its PV's release approved: PV patched, then deleted by the
    node); node n1 deleted (nodes watched): ordinal 0's claim and PV deleted by the controller."""
    c = api.client
    c.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}, ns=None)
    c.create("storageclasses", {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                "metadata": {"name": "ord"}, "provisioner": DRIVER,
                                "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
                                "parameters": {"ordinal.csi.dev/ordering": "ordered"}}, ns=None)
    c.call("POST", "/apis/apps/v1/namespaces/default/statefulsets", {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "annotations": {"ordinal.csi.dev/on-node-loss": "recreate"}},
        "spec": {"replicas": 2, "serviceName": "web", "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                     "accessModes": ["ReadWriteOnce"], "storageClassName": "ord",
                     "resources": {"requests": {"storage": "16Mi"}}}}]}})

    def claim(name):
        c.create("persistentvolumeclaims", {"metadata": {"name": name, "labels": {"app": "web"}},
                                            "spec": {"accessModes": ["ReadWriteOnce"],
                                                     "storageClassName": "ord",
                                                     "resources": {"requests": {
                                                         "storage": "16Mi"}}}})

    def events(reason, name):
        return [e for e in c.list("events")["items"] if e["reason"] == reason and
                e["involvedObject"]["name"] == name and
                e["source"].get("component") == "ordinal-controller"]

    def bound(name):
        p = c.get("persistentvolumeclaims", name)
        return p if (p.get("status") or {}).get("phase") == "Bound" else None

    claim("www-web-1")
    _step(api, expect_ok, lambda: events("OrdinalWaiting", "www-web-1"), 30,
          "OrdinalWaiting from the controller")
    claim("www-web-0")
    c0 = _step(api, expect_ok, lambda: bound("www-web-0"), 40, "www-web-0 Bound")
    c1 = _step(api, expect_ok, lambda: bound("www-web-1"), 40, "www-web-1 Bound")
    assert (c0["metadata"].get("annotations") or {}).get(ADMITTED) == "true"
    pv0, pv1 = c0["spec"]["volumeName"], c1["spec"]["volumeName"]

    def ordinals():
        r = c.request("GET", OV_API)
        got = {o["spec"]["key"]: (o.get("status") or {}) for o in r.body.get("items") or []} \
            if r.status == 200 else {}
        return all((got.get("default/www-web-%d" % n) or {}).get("ordinal") == n
                   for n in (0, 1))
    _step(api, expect_ok, ordinals, 30, "the ordinals in the OrdinalVolumes")
    c.delete("persistentvolumeclaims", "www-web-1")
    _step(api, expect_ok, lambda: not c.exists("persistentvolumes", pv1, ns=None), 40,
          "ordinal 1's PV released and deleted")
    c.delete("nodes", "n1", ns=None)
    _step(api, expect_ok, lambda: not c.exists("persistentvolumeclaims", "www-web-0"), 30,
          "ordinal 0's claim deleted on node loss")

    def pv_deleted():
        r = c.request("GET", "/api/v1/persistentvolumes/" + pv0)
        return r.status == 404 or (r.status == 200 and r.body["metadata"].get(
            "deletionTimestamp"))
    _step(api, expect_ok, pv_deleted, 30, "ordinal 0's PV deleted on node loss")


def _variants(role):
    """(label, rules, removed verb, rule) for every verb of every rule, removed in turn."""
    out = []
    for i, rule in enumerate(role["rules"]):
        for v in rule["verbs"]:
            rules = copy.deepcopy(role["rules"])
            rest = [x for x in rules[i]["verbs"] if x != v]
            if rest:
                rules[i]["verbs"] = rest
            else:
                del rules[i]
            out.append(("%s %s" % (v, "/".join(rule["resources"])), rules, v, rule))
    return out


CASES = [("node", "ClusterRole", "ordinal-node", _node_plugin, _node_scenario),
         ("controller", "Role", "ordinal-controller", _controller, _controller_scenario),
         ("reconciler", "ClusterRole", "ordinal-controller", Reconciler, _reconciler_scenario)]


@pytest.mark.parametrize("component,kind,name,daemon,scenario", CASES,
                         ids=[c[0] for c in CASES])
def test_rbac_minimal(component, kind, name, daemon, scenario, ordinal_csi, tmp_path):
    role = one("kind", kind, name)
    t0 = time.monotonic()
    # sufficient: everything works, nothing is denied
    api = _start(tmp_path, "full")
    try:
        _install(api, kind, role)
        d = daemon(api, ordinal_csi, tmp_path / "full")
        try:
            scenario(api, True)
            assert denied(api) == [], d.text()[-2000:]
            print("%s: full role, scenario passed, nothing denied" % component)
        finally:
            d.stop()
    finally:
        assert api.stop() == 0
    # minimal: each verb of each rule, removed in turn, is missed
    for label, rules, verb, rule in _variants(role):
        sub = tmp_path / ("minus-" + label.replace(" ", "-").replace("/", "_"))
        sub.mkdir()
        api = _start(sub, "api")
        try:
            cut = dict(role, rules=rules)
            _install(api, kind, cut)
            d = daemon(api, ordinal_csi, sub)
            got = []
            try:
                scenario(api, False)
            except Denied as e:
                got = e.args[0]
            finally:
                d.stop()
            groups = rule.get("apiGroups") or []
            hits = [g for g in got if g[0] == verb and g[1] in groups and
                    g[2] in rule["resources"]]
            assert hits, "%s without %s: the scenario passed or other requests were denied: " \
                "%s\n%s" % (component, label, got, d.text()[-1500:])
        finally:
            assert api.stop() == 0
    print("%s: %d rules, %d verbs each missed when removed; %.1f s" % (
        component, len(role["rules"]), len(_variants(role)), time.monotonic() - t0))
