"""kubectl-ordinal (the built binary, also run as `kubectl ordinal` through PATH) against the fake
API server with StatefulSets, pods, claims, PVs, classes, events and OrdinalVolumes made by hand:
every verb, its JSON and table output, and bad input (a clear message on stderr, exit 1 or 2,
nothing changed). The server runs without controllers, so nothing moves unless a test moves it.

Needs ORDINAL_KUBECTL_PLUGIN (the built kubectl-ordinal; ctest sets it) or ORDINAL_BUILD."""

import json
import os
import subprocess
import threading

import pytest

import fakeapi
from conftest import HAVE_KUBECTL
from fakeapi import FakeApiServer, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
OV_SERVER = os.path.join(HERE, "ov_apiserver.py")
PLUGIN = os.environ.get("ORDINAL_KUBECTL_PLUGIN") or os.path.join(
    os.environ.get("ORDINAL_BUILD", os.path.join(HERE, "..", "..", "build", "debug")),
    "kubectl-ordinal")
needs_plugin = pytest.mark.skipif(not os.path.exists(PLUGIN),
                                  reason="kubectl-ordinal not built (ORDINAL_KUBECTL_PLUGIN)")
pytestmark = needs_plugin

OV_PATH = "/apis/ordinal.csi.dev/v1alpha1"
fakeapi.PATHS.setdefault("ordinalvolumes", (OV_PATH, False))
NS = "demo"


@pytest.fixture
def api(tmp_path, monkeypatch):
    """The fake API server with OrdinalVolume served, no controllers."""
    monkeypatch.setattr(fakeapi, "APISERVER", OV_SERVER)
    srv = FakeApiServer.start(str(tmp_path / "api"), extra_args=("--no-controllers",))
    yield srv
    assert srv.stop() == 0


def run(srv, *args, timeout=60, via_kubectl=False, env_extra=None):
    env = dict(os.environ, KUBECONFIG=srv.kubeconfig)
    env.update(env_extra or {})
    if via_kubectl:
        # kubectl finds plugins as kubectl-<name> on PATH
        bindir = os.path.join(srv.dir, "bin")
        os.makedirs(bindir, exist_ok=True)
        link = os.path.join(bindir, "kubectl-ordinal")
        if not os.path.exists(link):
            os.symlink(os.path.abspath(PLUGIN), link)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        cmd = [fakeapi.KUBECTL, "ordinal"] + list(args)
    else:
        cmd = [PLUGIN] + list(args)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def meta(name, ns=NS, **kw):
    m = {"name": name}
    if ns:
        m["namespace"] = ns
    m.update(kw)
    return m


def make_world(srv, when_scaled="Delete", when_deleted="Retain", pmp="Parallel"):
    """Set web (3 replicas, template www on an ordered Delete class), its pods, claims and PVs;
    claim www-web-5 kept from an earlier scale-down; a Released Retain PV of www-web-7 whose
    claim is gone; a look-alike claim without the selector label; OrdinalVolumes."""
    c = srv.client
    c.create("namespaces", {"metadata": {"name": NS}}, ns=None)
    c.create("storageclasses", {"metadata": meta("ordered", ns=None), "provisioner":
                                "ordinal.csi.dev", "reclaimPolicy": "Delete",
                                "volumeBindingMode": "WaitForFirstConsumer",
                                "parameters": {"ordinal.csi.dev/ordering": "ordered"}}, ns=None)
    sts = c.create("statefulsets", {
        "metadata": meta("web"),
        "spec": {"replicas": 3, "serviceName": "web", "podManagementPolicy": pmp,
                 "selector": {"matchLabels": {"app": "web"}},
                 "persistentVolumeClaimRetentionPolicy": {"whenScaled": when_scaled,
                                                          "whenDeleted": when_deleted},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                     "storageClassName": "ordered", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}]}}, ns=NS)
    uid = sts["metadata"]["uid"]
    for o in (0, 1, 2, 5):
        claim = "www-web-%d" % o
        pv = "pvc-%s" % claim
        owner = []
        if when_deleted == "Delete" and o < 3:
            owner = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": uid,
                      "controller": True, "blockOwnerDeletion": True}]
        pvc = c.create("persistentvolumeclaims", {
            "metadata": meta(claim, labels={"app": "web"}, ownerReferences=owner,
                             annotations={"volume.kubernetes.io/selected-node": "node-1"}),
            "spec": {"storageClassName": "ordered", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}, "volumeName": pv}}, ns=NS)
        pvc["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
        c.update("persistentvolumeclaims", pvc, ns=NS, sub="status")
        c.create("persistentvolumes", {
            "metadata": meta(pv, ns=None),
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "ordered",
                     "claimRef": {"namespace": NS, "name": claim, "uid": pvc["metadata"]["uid"]},
                     "csi": {"driver": "ordinal.csi.dev", "volumeHandle": "h-" + claim}}},
            ns=None)
        if o < 3:
            pod = c.create("pods", {
                "metadata": meta("web-%d" % o, labels={"app": "web"}, ownerReferences=[
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": uid,
                     "controller": True, "blockOwnerDeletion": True}]),
                "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "b"}],
                         "volumes": [{"name": "www", "persistentVolumeClaim": {
                             "claimName": claim}}]}}, ns=NS)
            pod["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if o != 1 else "False"}]}
            c.update("pods", pod, ns=NS, sub="status")
    # ordinal 7: claim deleted long ago, PV Released and retained
    c.create("persistentvolumes", {
        "metadata": meta("pvc-old-7", ns=None),
        "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "ordered",
                 "claimRef": {"namespace": NS, "name": "www-web-7", "uid": "gone"},
                 "csi": {"driver": "ordinal.csi.dev", "volumeHandle": "h-www-web-7"}}},
        ns=None)
    # a look-alike: right name pattern, not the set's labels
    c.create("persistentvolumeclaims", {
        "metadata": meta("www-web-9", labels={"app": "other"}),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        ns=NS)
    c.create("events", {"metadata": meta("ev1"), "reason": "VolumeRetained",
                        "message": "kept for re-adoption", "type": "Normal",
                        "involvedObject": {"kind": "PersistentVolumeClaim", "name": "www-web-5",
                                           "namespace": NS},
                        "lastTimestamp": "2026-01-01T00:00:00Z"}, ns=NS)
    ovs = [("ov-web-0", "www-web-0", "node-1", "Bound", "pvc-www-web-0", 300 * 1024 * 1024),
           ("ov-orphan", "www-web-11", "node-2", "Orphaned", "", 4096),
           ("ov-inuse", "www-web-12", "node-2", "Bound", "pvc-some", 0),
           ("ov-handle", "www-web-1", "node-1", "Orphaned", "", 0),
           ("ov-slow", "www-web-13", "node-2", "Orphaned", "", 0)]
    for name, claim, node, state, pv, used in ovs:
        handle = "h-" + claim
        ov = c.call("POST", OV_PATH + "/ordinalvolumes", {
            "apiVersion": "ordinal.csi.dev/v1alpha1", "kind": "OrdinalVolume",
            "metadata": {"name": name},
            "spec": {"key": NS + "/" + claim, "node": node, "backend": "dir",
                     "store": "/var/lib/ordinal/" + NS + "/" + claim, "volumeHandle": handle,
                     "capacityBytes": 1 << 30}})
        ov["status"] = {"state": state, "usedBytes": used, "persistentVolume": pv,
                        "statefulSet": "web", "template": "www"}
        c.call("PUT", OV_PATH + "/ordinalvolumes/" + name + "/status", ov)
    return uid


def rv(srv):
    return int(srv.faults()["resourceVersion"])


def by_ordinal(items):
    return {i["ordinal"]: i for i in items}


def test_status_json_rows_and_fates(api):
    make_world(api)
    p = run(api, "status", "web", "-n", NS, "-o", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["kind"] == "OrdinalStatusList"
    rows = by_ordinal(doc["items"])
    # replicas, the retained claim 5, the retained PV 7, the stores 11-13 known only from
    # OrdinalVolumes; not the look-alike 9
    assert sorted(rows) == [0, 1, 2, 5, 7, 11, 12, 13]
    assert rows[11]["ordinalVolume"] == "ov-orphan" and rows[11]["node"] == "node-2"
    assert rows[11]["onScaleDown"] == "retained" and rows[11]["size"] == "1Gi"
    r0 = rows[0]
    assert r0["pod"] == {"name": "web-0", "ready": "true"}
    assert rows[1]["pod"]["ready"] == "false"
    assert r0["node"] == "node-1"
    assert r0["claim"] == {"name": "www-web-0", "exists": True, "phase": "Bound"}
    assert r0["persistentVolume"] == "pvc-www-web-0"
    assert r0["reclaimPolicy"] == "Delete"
    assert r0["orderedClass"] is True
    assert r0["store"] == "/var/lib/ordinal/demo/www-web-0"
    assert r0["usedBytes"] == 300 * 1024 * 1024
    assert r0["size"] == "1Gi"
    # whenScaled Delete + reclaim Delete: scaled away = deleted; whenDeleted Retain: kept
    assert (r0["onScaleDown"], r0["onSetDelete"]) == ("deleted", "kept")
    assert (r0["whenScaled"], r0["whenDeleted"]) == ("Delete", "Retain")
    # claim 5: already scaled away, no pod: nothing touches it
    assert rows[5]["range"] == "scaled-down" and rows[5]["pod"] is None
    assert rows[5]["onScaleDown"] == "kept"
    assert rows[5]["lastEvent"] == "VolumeRetained: kept for re-adoption"
    # ordinal 7: claim gone, PV retained
    assert rows[7]["claim"]["exists"] is False
    assert rows[7]["persistentVolume"] == "pvc-old-7"
    assert rows[7]["reclaimPolicy"] == "Retain"
    assert (rows[7]["onScaleDown"], rows[7]["onSetDelete"]) == ("retained", "retained")


def test_status_delete_policy_follows_owner_refs(api):
    make_world(api, when_scaled="Retain", when_deleted="Delete")
    doc = json.loads(run(api, "status", "web", "-n", NS, "-o", "json").stdout)
    rows = by_ordinal(doc["items"])
    assert (rows[0]["onScaleDown"], rows[0]["onSetDelete"]) == ("kept", "deleted")
    # claim 5 carries no owner reference to the set: deleting the set leaves it
    assert rows[5]["onSetDelete"] == "kept"


def test_status_table_wide_and_as_kubectl_plugin(api):
    make_world(api)
    p = run(api, "status", "-n", NS)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["SET", "ORDINAL", "POD", "READY", "NODE", "CLAIM", "PHASE",
                                "RECLAIM", "SIZE", "USED", "SCALE-DOWN", "SET-DELETE"]
    assert len(lines) == 9
    assert lines[1].split() == ["web", "0", "web-0", "true", "node-1", "www-web-0", "Bound",
                                "Delete", "1Gi", "300Mi", "deleted", "kept"]
    w = run(api, "status", "web", "-n", NS, "-o", "wide")
    assert w.returncode == 0, w.stderr
    assert "LAST-EVENT" in w.stdout.splitlines()[0]
    assert "VolumeRetained: kept for re-adoption" in w.stdout
    if HAVE_KUBECTL:
        k = run(api, "status", "-n", NS, via_kubectl=True)
        assert k.returncode == 0, k.stderr
        assert k.stdout == p.stdout
    # -A adds the namespace column
    a = run(api, "status", "-A")
    assert a.returncode == 0 and a.stdout.splitlines()[0].startswith("NAMESPACE")


def test_plan_scale_down_parallel_ordered_release(api):
    make_world(api)
    before = rv(api)
    p = run(api, "plan", "scale", "web", "--replicas", "1", "-n", NS, "-o", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    rows = by_ordinal(doc["ordinals"])
    assert rows[0]["data"] == "kept" and rows[0]["pod"] == "kept"
    for o in (1, 2):
        assert (rows[o]["pod"], rows[o]["claimFate"], rows[o]["data"]) == (
            "deleted", "deleted", "deleted")
    assert rows[5]["data"] == "kept"
    steps = [(s["step"], s["action"], s["ordinal"]) for s in doc["steps"]]
    # Parallel: both pods in step 1; claims after; stores highest ordinal first, one at a time
    assert (1, "delete pod", 1) in steps and (1, "delete pod", 2) in steps
    st = {(a, o): n for n, a, o in steps}
    assert st[("delete claim", 2)] > st[("delete pod", 2)]
    assert st[("delete store", 2)] < st[("delete store", 1)]
    assert rv(api) == before, "plan changed something"
    t = run(api, "plan", "scale", "web", "--replicas", "1", "-n", NS)
    assert t.returncode == 0
    assert "Nothing has been changed." in t.stdout
    assert "delete the store of www-web-2, then PV pvc-www-web-2" in t.stdout
    assert rv(api) == before


def test_plan_scale_up_and_delete(api):
    make_world(api, when_scaled="Retain", when_deleted="Retain", pmp="OrderedReady")
    doc = json.loads(run(api, "plan", "scale", "web", "--replicas", "8", "-n", NS,
                         "-o", "json").stdout)
    rows = by_ordinal(doc["ordinals"])
    assert rows[5]["claimFate"] == "reused" and rows[5]["data"] == "reused"
    assert rows[7]["claimFate"] == "created" and rows[7]["data"] == "reused"  # re-adoption
    assert rows[3]["data"] == "new"
    steps = [(s["step"], s["action"], s["ordinal"]) for s in doc["steps"]]
    pods = [o for _, a, o in steps if a == "create pod"]
    assert pods == [3, 4, 5, 6, 7]  # ascending, one at a time
    assert len({n for n, a, _ in steps if a == "create pod"}) == 5
    d = json.loads(run(api, "plan", "delete", "web", "-n", NS, "-o", "json").stdout)
    rows = by_ordinal(d["ordinals"])
    assert all(rows[o]["data"] == "kept" for o in (0, 1, 2, 5))
    assert {s["action"] for s in d["steps"]} == {"delete pod"}
    o = json.loads(run(api, "plan", "delete", "web", "--cascade=orphan", "-n", NS,
                       "-o", "json").stdout)
    assert o["steps"] == []


def test_bad_input_exit_codes_and_nothing_changed(api):
    make_world(api)
    before = rv(api)
    cases = [
        (("status", "nope", "-n", NS), 1, 'statefulsets.apps "nope" not found'),
        (("plan", "scale", "nope", "--replicas", "1", "-n", NS), 1, "not found"),
        (("plan", "delete", "web", "-n", "elsewhere"), 1, "not found"),
        (("reclaim", "no-such-ov"), 1, "not found"),
        (("frobnicate",), 2, 'unknown command "frobnicate"'),
        (("status", "--bogus"), 2, "unknown flag: --bogus"),
        (("plan", "scale", "web", "-n", NS), 2, "needs --replicas"),
        (("plan", "scale", "web", "--replicas", "-3", "-n", NS), 2, "--replicas"),
        (("status", "-o", "yaml"), 2, "output format"),
        (("volumes", "-n", NS), 2, "cluster-scoped"),
        (("reclaim",), 2, "needs the name"),
        (("status", "Bad_Name"), 2, "invalid name"),
    ]
    for args, code, msg in cases:
        p = run(api, *args)
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
        assert p.stdout == "", (args, p.stdout)
    assert rv(api) == before
    # --help on every verb: exit 0, usage on stdout, nothing asked of the server
    for verb in (("status",), ("plan", "scale"), ("plan", "delete"), ("volumes",),
                 ("reclaim",), ()):
        p = run(api, *verb, "--help")
        assert p.returncode == 0, verb
        assert ("Usage:" in p.stdout or "Commands:" in p.stdout) and p.stderr == "", verb
    # an unreachable server: exit 1, clear message
    bad = os.path.join(api.dir, "bad-kubeconfig")
    with open(api.kubeconfig) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text.replace(api.url, "https://127.0.0.1:1"))
    p = run(api, "status", "--kubeconfig", bad)
    assert p.returncode == 1 and p.stderr.startswith("error:"), p.stderr
    p = run(api, "status", "--context", "no-such-context")
    assert p.returncode == 1 and "no-such-context" in p.stderr, p.stderr


def test_user_agent(api):
    make_world(api)
    api.fault(error_rate=100, error_code=500, agent="kubectl-ordinal/")
    p = run(api, "status", "web", "-n", NS)
    assert p.returncode == 1 and "Error from server" in p.stderr, p.stderr
    api.fault(reset=True)
    assert run(api, "status", "web", "-n", NS).returncode == 0


def test_volumes(api):
    make_world(api)
    p = run(api, "volumes")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "KEY", "NODE", "BACKEND", "SIZE", "USED", "PV"]
    assert len(lines) == 6
    assert ["ov-web-0", "Bound", "demo/www-web-0", "node-1", "dir", "1Gi", "300Mi",
            "pvc-www-web-0"] in [l.split() for l in lines]
    names = lambda out: sorted(l.split()[0] for l in out.splitlines()[1:])  # noqa: E731
    assert names(run(api, "volumes", "--node", "node-2").stdout) == [
        "ov-inuse", "ov-orphan", "ov-slow"]
    assert names(run(api, "volumes", "--orphaned").stdout) == ["ov-handle", "ov-orphan",
                                                               "ov-slow"]
    j = json.loads(run(api, "volumes", "--orphaned", "--node", "node-1", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in j["items"]] == ["ov-handle"]
    w = run(api, "volumes", "-o", "wide")
    assert "VOLUME-HANDLE" in w.stdout and "/var/lib/ordinal/demo/www-web-11" in w.stdout
    e = run(api, "volumes", "--node", "node-9")
    assert e.returncode == 0 and "No OrdinalVolumes found" in e.stderr


def ov_get(api, name):
    return api.client.call("GET", OV_PATH + "/ordinalvolumes/" + name)


def test_reclaim_refuses_what_a_pv_refers_to(api):
    make_world(api)
    before = rv(api)
    p = run(api, "reclaim", "ov-inuse")
    assert p.returncode == 1 and "PersistentVolume pvc-some refers to it" in p.stderr, p.stderr
    # status says nothing, but PV pvc-www-web-1 has the same volumeHandle
    p = run(api, "reclaim", "ov-handle")
    assert p.returncode == 1 and "pvc-www-web-1 has its volumeHandle" in p.stderr, p.stderr
    assert rv(api) == before
    assert "ordinal.csi.dev/reclaim" not in (ov_get(api, "ov-handle")["metadata"]
                                             .get("annotations") or {})


def test_reclaim_waits_for_the_node_plugin(api):
    make_world(api)
    done = threading.Event()

    def node_plugin():
        # what the node plugin does: see the annotation, delete the store, delete the object
        def requested():
            a = ov_get(api, "ov-orphan")["metadata"].get("annotations") or {}
            return a.get("ordinal.csi.dev/reclaim") == "requested"
        wait_for(requested, timeout=30, what="the reclaim annotation")
        ov = ov_get(api, "ov-orphan")
        ov["status"]["state"] = "Deleting"
        api.client.call("PUT", OV_PATH + "/ordinalvolumes/ov-orphan/status", ov)
        api.client.call("DELETE", OV_PATH + "/ordinalvolumes/ov-orphan")
        done.set()
    t = threading.Thread(target=node_plugin, daemon=True)
    t.start()
    p = run(api, "reclaim", "ov-orphan", "--timeout", "60s")
    t.join(30)
    assert done.is_set()
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ("ordinalvolume/ov-orphan reclaimed: store "
                                "/var/lib/ordinal/demo/www-web-11 deleted on node node-2")
    assert "ordinalvolume/ov-orphan: Deleting" in p.stderr


def test_reclaim_times_out_and_leaves_the_request(api):
    make_world(api)
    p = run(api, "reclaim", "ov-slow", "--timeout", "2s")
    assert p.returncode == 1 and "timed out after 2s" in p.stderr, p.stderr
    ann = ov_get(api, "ov-slow")["metadata"]["annotations"]
    assert ann["ordinal.csi.dev/reclaim"] == "requested"


def test_without_the_ordinalvolume_api(apiserver):
    """The plain fake server (no OrdinalVolume): volumes says the CRD is missing, status works."""
    apiserver.client.create("statefulsets", {
        "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"a": "db"}},
                 "template": {"metadata": {"labels": {"a": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "b"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                     "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}]}})
    env = dict(os.environ, KUBECONFIG=apiserver.kubeconfig)
    p = subprocess.run([PLUGIN, "volumes"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "is Ordinal's CRD installed?" in p.stderr, p.stderr
    p = subprocess.run([PLUGIN, "reclaim", "ov-1"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1 and "is Ordinal's CRD installed?" in p.stderr, p.stderr
    p = subprocess.run([PLUGIN, "status"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1].split()[:3] == ["db", "0", "-"]
    assert "OrdinalVolume API is not served" in p.stderr
