"""The controller framework (deploy/sandbox/controllers.py): per-controller threads and
de-duplicating work queues with per-key backoff, and no controller code under the store's lock;
the API server's --controllers flag; query booleans parsed as the real server does."""

import os
import subprocess
import threading
import time

import pytest

import apierrors
import controllers
from fakeapi import APISERVER, PYTHON, wait_for
from resources import resource

CMS = resource("configmaps")


def cm(name, v="1"):
    return {"metadata": {"name": name}, "data": {"v": v}}


class Probe(controllers.Controller):
    """Watches configmaps; records every sync; behaviour per key set by the test."""
    name = "probe"
    watches = ("configmaps",)
    resync = 0

    def __init__(self, store):
        super().__init__(store)
        self.calls = []          # (monotonic time, key)
        self.cond = threading.Condition()
        self.gate = None         # threading.Event the first sync waits on
        self.fail = {}           # key -> failures left

    def keys(self, res, etype, obj, prev):
        return [obj["metadata"]["name"]]

    def sync(self, key):
        with self.cond:
            self.calls.append((time.monotonic(), key))
            self.cond.notify_all()
        if self.gate is not None:
            gate, self.gate = self.gate, None
            gate.wait(10)
        if self.fail.get(key):
            self.fail[key] -= 1
            if key == "crash":
                raise ValueError("a bug")
            raise apierrors.conflict(CMS, key)

    def wait_calls(self, n, key=None, timeout=10):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.of(key)) >= n, timeout)
        assert ok, "%d syncs of %r expected, saw %r" % (n, key, self.calls)
        return self.of(key)

    def of(self, key):
        return [c for c in self.calls if key is None or c[1] == key]


def test_queue_deduplicates_changes_of_one_key(store, manager_factory):
    p = Probe(store)
    gate = p.gate = threading.Event()
    m = manager_factory(store, [p])
    store.create(CMS, "default", cm("a"))
    p.wait_calls(1, "a")            # blocked inside its first sync
    for i in range(50):
        store.update(CMS, "default", "a", cm("a", str(i + 2)))
    gate.set()
    store.create(CMS, "default", cm("fence"))   # queued after the 50 updates
    p.wait_calls(1, "fence")
    assert len(p.of("a")) == 2, "50 changes while busy make one more sync, not 50"
    assert m.stats()["probe"]["synced"] == 3


def test_failed_sync_is_retried_with_growing_per_key_backoff(store, manager_factory):
    p = Probe(store)
    p.fail = {"a": 3}
    manager_factory(store, [p])
    store.create(CMS, "default", cm("a"))
    store.create(CMS, "default", cm("b"))
    calls = p.wait_calls(4, "a")
    gaps = [calls[i + 1][0] - calls[i][0] for i in range(3)]
    base = controllers.WorkQueue.BASE
    for i, g in enumerate(gaps):
        assert g >= base * 2 ** i * 0.99, "retry %d after %.3fs, backoff is %.3fs" % (
            i + 1, g, base * 2 ** i)
    assert len(p.of("b")) == 1, "another key is neither delayed nor retried"
    assert p.of("b")[0][0] < calls[1][0], "key b did not wait for key a's backoff"


def test_a_crashing_sync_does_not_stop_the_controller(store, manager_factory):
    p = Probe(store)
    p.fail = {"crash": 1}
    m = manager_factory(store, [p])
    store.create(CMS, "default", cm("crash"))
    p.wait_calls(2, "crash")
    store.create(CMS, "default", cm("after"))
    p.wait_calls(1, "after")
    assert m.stats()["probe"]["failed"] == 1


def test_resync_period_resyncs_every_object(store, manager_factory):
    p = Probe(store)
    p.resync = 0.1
    store.create(CMS, "default", cm("a"))
    m = manager_factory(store, [p])
    p.wait_calls(3, "a")
    assert m.stats()["probe"]["full_syncs"] >= 3


def test_manager_resync_option_overrides_each_controller(store, manager_factory):
    p = Probe(store)
    store.create(CMS, "default", cm("a"))
    manager_factory(store, [p], resync=0.1)
    p.wait_calls(3, "a")


def test_requeue_after_from_sync(store, manager_factory):
    class Later(Probe):
        def sync(self, key):
            super().sync(key)
            if len(self.of(key)) == 1:
                self.requeue_after(key, 0.2)
    p = Later(store)
    manager_factory(store, [p])
    store.create(CMS, "default", cm("a"))
    calls = p.wait_calls(2, "a")
    assert calls[1][0] - calls[0][0] >= 0.2


STORE_CALLS = ("get", "objects", "create", "update", "patch", "delete", "mutate", "bind",
               "record_event", "finalize_namespace", "list")


def _record_lock_use(store, ctrls):
    """Wrap every store call and every controller entry point: note whether the calling
    thread already holds the store's lock (it must not, outside the store itself)."""
    held = []
    depth = threading.local()   # store methods calling each other are the store's business

    def wrap(obj, name, label):
        fn = getattr(obj, name)

        def inner(*a, **kw):
            d = getattr(depth, "n", 0)
            if d == 0 and store.lock._is_owned() and \
                    threading.current_thread().name.startswith("ctrl-"):
                held.append(label)
            depth.n = d + 1 if obj is store else d
            try:
                return fn(*a, **kw)
            finally:
                depth.n = d
        setattr(obj, name, inner)
    for n in STORE_CALLS:
        wrap(store, n, "store." + n)
    for c in ctrls:
        wrap(c, "sync", c.name + ".sync")
        wrap(c, "keys", c.name + ".keys")
    return held


def test_no_controller_code_runs_under_the_store_lock(store, manager_factory):
    """Every controller, through a scenario touching each: binding, release, protection,
    garbage collection (background, orphan, foreground), namespace deletion, a StatefulSet
    and the scheduler."""
    ctrls = [controllers.factory(n)(store) for n in controllers.KNOWN]
    held = _record_lock_use(store, ctrls)
    manager_factory(store, ctrls)
    pvcs, pvs, sets, pods, nss = (resource(n) for n in (
        "persistentvolumeclaims", "persistentvolumes", "statefulsets", "pods", "namespaces"))
    claim = store.create(pvcs, "default", {"metadata": {"name": "c"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    store.create(pvs, "", {"metadata": {"name": "v"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
        "persistentVolumeReclaimPolicy": "Retain", "csi": {"driver": "d", "volumeHandle": "v"},
        "claimRef": {"namespace": "default", "name": "c", "uid": claim["metadata"]["uid"]}}})
    wait_for(lambda: store.get(pvcs, "default", "c")["status"].get("phase") == "Bound")
    import sbxlib
    store.create(resource("nodes"), "", sbxlib.node("node-1"))
    store.create(resource("storageclasses"), "", {"metadata": {"name": "ordinal"},
                 "provisioner": "d", "volumeBindingMode": "WaitForFirstConsumer"})
    store.create(pods, "default", {"metadata": {"name": "solo"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})
    wait_for(lambda: store.get(pods, "default", "solo")["spec"].get("nodeName") == "node-1")
    store.create(sets, "default", sbxlib.sts("web", replicas=1))
    wait_for(lambda: [c for c in store.objects(pvcs, "default")
                      if c["metadata"]["name"] == "www-web-0" and
                      (c["metadata"].get("annotations") or {}).get(
                          "volume.kubernetes.io/selected-node") == "node-1"],
             what="the scheduler selected a node for the claim")
    for policy in ("Background", "Orphan", "Foreground"):
        store.delete(sets, "default", "web", {"propagationPolicy": policy})
        wait_for(lambda: not store.objects(sets, "default"), what="set gone")
        if policy != "Orphan":
            wait_for(lambda: not [p for p in store.objects(pods, "default")
                                  if p["metadata"]["name"] == "web-0"])
        else:
            store.delete(pods, "default", "web-0")
        store.create(sets, "default", sbxlib.sts("web", replicas=1))
        wait_for(lambda: [p for p in store.objects(pods, "default")
                          if p["metadata"]["name"] == "web-0"])
    store.delete(pvcs, "default", "c")
    wait_for(lambda: store.get(pvs, "", "v")["status"].get("phase") == "Released")
    store.create(nss, "", {"metadata": {"name": "tmp"}})
    store.create(CMS, "tmp", cm("x"))
    store.delete(nss, "", "tmp")
    wait_for(lambda: not [n for n in store.objects(nss) if n["metadata"]["name"] == "tmp"],
             what="namespace gone")
    assert not held, "called with the store's lock held: %s" % sorted(set(held))


def test_controllers_option_lists_and_checks_names(tmp_path):
    out = subprocess.run([PYTHON, APISERVER, "--help"], capture_output=True, text=True,
                         timeout=10)
    text = "".join(out.stdout.split())   # argparse wraps lines at hyphens
    for n in controllers.KNOWN:
        assert n in text
    bad = subprocess.run([PYTHON, APISERVER, "--dir", str(tmp_path), "--controllers",
                          "pv-binder,bogus"], capture_output=True, text=True, timeout=10)
    assert bad.returncode != 0 and "unknown controllers: bogus" in bad.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), "ready"))


def test_default_controllers_are_the_storage_ones(apiserver_plain):
    """Without --controllers the server runs what it always ran: no StatefulSet controller."""
    c = apiserver_plain.client
    import sbxlib
    c.create("statefulsets", sbxlib.sts("web", replicas=1))
    c.create("configmaps", cm("fence"))
    claim = c.create("persistentvolumeclaims", {"metadata": {"name": "x"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    c.create("persistentvolumes", {"metadata": {"name": "x"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
        "csi": {"driver": "d", "volumeHandle": "x"},
        "claimRef": {"namespace": "default", "name": "x", "uid": claim["metadata"]["uid"]}}},
        ns=None)
    wait_for(lambda: c.get("persistentvolumeclaims", "x")["status"].get("phase") == "Bound")
    assert c.list("pods")["items"] == [] and c.list("controllerrevisions")["items"] == []


@pytest.fixture
def apiserver_plain(tmp_path):
    from fakeapi import FakeApiServer
    srv = FakeApiServer.start(os.path.join(str(tmp_path), "plain"))
    yield srv
    assert srv.stop() == 0


@pytest.mark.parametrize("value,is_watch", [
    ("true", True), ("True", True), ("TRUE", True), ("1", True), ("yes", True), ("", True),
    ("false", False), ("False", False), ("FALSE", False), ("0", False)])
def test_query_booleans_parsed_as_the_real_server_does(apiserver_plain, value, is_watch):
    c = apiserver_plain.client
    r = c.request("GET", "/api/v1/namespaces/default/configmaps",
                  query={"watch": value, "timeoutSeconds": "0"})
    assert r.status == 200
    if is_watch:
        assert r.headers.get("Transfer-Encoding") == "chunked", value
    else:
        assert r.body["kind"] == "ConfigMapList", value


def test_services_and_endpoints_are_accepted_and_listed(apiserver_plain):
    c = apiserver_plain.client
    c.create("services", {"metadata": {"name": "nginx"}, "spec": {
        "clusterIP": "None", "selector": {"app": "nginx"}, "ports": [{"port": 80}]}})
    c.create("endpoints", {"metadata": {"name": "nginx"}, "subsets": [{
        "addresses": [{"ip": "127.0.0.2", "hostname": "web-0"}], "ports": [{"port": 80}]}]})
    assert [s["metadata"]["name"] for s in c.list("services")["items"]] == ["nginx"]
    eps = c.list("endpoints")
    assert eps["kind"] == "EndpointsList"
    assert eps["items"][0]["subsets"][0]["addresses"][0]["hostname"] == "web-0"
    res = {r["name"]: r for r in c.call("GET", "/api/v1")["resources"]}
    assert res["endpoints"]["shortNames"] == ["ep"] and res["endpoints"]["namespaced"]
