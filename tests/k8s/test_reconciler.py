"""Ordered provisioning (provisioner/reconciler.c with the node side in provision.c) against
the fake API server: a class with ordinal.csi.dev/ordering: ordered has ordinal N of a set's
template provisioned only once ordinals start..N-1 are Bound, also for a Parallel set on an
Immediate class whose claims all appear at once (in reverse order, here); the order is checked
on the API server's own sequence of claim writes (one watch, global resourceVersion order).
Without a controller such claims wait with an OrdinalWaiting event from the node; a claim of
no StatefulSet is admitted at once; a claim whose predecessor does not exist gets an
OrdinalWaiting event from the controller naming it. Also: the controller's ordinal fields in
OrdinalVolumes and its retention events on the set; node loss with and without opt-in."""

import os
import signal
import socket
import threading

import pytest

from fakeapi import wait_for
from test_provisioner import (SELECTED, SLOW, claim, controller, nodes,  # noqa: F401
                              storage_class, wait_bound)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's root needs root")

ADMITTED = "ordinal.csi.dev/admitted"
ORDERED = {"ordinal.csi.dev/ordering": "ordered"}


def statefulset(api, name="web", replicas=3, start=None, cls="ord"):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
           "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                        "resources": {"requests": {"storage": "64Mi"}}}}]}}
    if start is not None:
        sts["spec"]["ordinals"] = {"start": start}
    return api.client.call("POST", "/apis/apps/v1/namespaces/default/statefulsets", sts)


def stop_watch(w, t):
    """Wake the reader thread at once (closing alone waits for its 30 s read timeout)."""
    try:
        w.conn.sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass
    w.close()
    t.join(10)


class ClaimLog:
    """Every claim write in server order (one watch): checks that a claim is admitted only when
    every lower ordinal of its set is Bound in the state the server had at that moment."""

    def __init__(self, api, rv):
        self.w = api.client.watch("persistentvolumeclaims", resourceVersion=rv, timeout=120)
        self.state, self.violations, self.admitted_order = {}, [], []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            for ev in self.w:
                o = ev["object"]
                name = o["metadata"]["name"]
                was = self.state.get(name)
                self.state[name] = o
                adm = (o["metadata"].get("annotations") or {}).get(ADMITTED) == "true"
                if adm and not (was and (was["metadata"].get("annotations") or {}).get(
                        ADMITTED) == "true") and name.startswith("www-web-"):
                    n = int(name.rsplit("-", 1)[1])
                    self.admitted_order.append(n)
                    for lower in range(0, n):
                        lo = self.state.get("www-web-%d" % lower)
                        if not lo or (lo.get("status") or {}).get("phase") != "Bound":
                            self.violations.append("%s admitted while www-web-%d was %s" % (
                                name, lower, (lo or {}).get("status", {}).get("phase", "absent")))
        except Exception:   # the watch closed at the end of the test
            pass

    def close(self):
        stop_watch(self.w, self.t)


def test_parallel_set_on_immediate_ordered_class_goes_in_order(apiserver, nodes, tmp_path):
    storage_class(apiserver, "ord", binding="Immediate", reclaim="Delete", params=ORDERED)
    statefulset(apiserver)
    n1 = nodes("n1")
    ctrl = controller(apiserver, "ctrl", str(tmp_path))
    try:
        log = ClaimLog(apiserver, apiserver.client.list("persistentvolumeclaims")["metadata"][
            "resourceVersion"])
        for n in (2, 1, 0):             # all at once, highest first: Parallel at its worst
            claim(apiserver, "www-web-%d" % n, cls="ord")
        claim(apiserver, "loner", cls="ord")  # no set: admitted at once
        for n in range(3):
            wait_bound(apiserver, "www-web-%d" % n, timeout=40)
        wait_bound(apiserver, "loner")
        wait_for(lambda: len(log.admitted_order) == 3, timeout=10 * SLOW, what="3 admissions")
        log.close()
        assert log.violations == []
        assert log.admitted_order == [0, 1, 2]
        # PVs exist for all three; no duplicate.
        pvs = [p for p in apiserver.client.list("persistentvolumes", ns=None)["items"]
               if p["spec"]["claimRef"]["name"].startswith("www-web-")]
        assert sorted(p["spec"]["claimRef"]["name"] for p in pvs) == [
            "www-web-0", "www-web-1", "www-web-2"]
        assert n1.proc.poll() is None
    finally:
        ctrl.send_signal(signal.SIGTERM)
        assert ctrl.wait(30) == 0


def test_without_controller_claims_wait_and_say_why(apiserver, nodes, tmp_path):
    storage_class(apiserver, "ord", binding="WaitForFirstConsumer", reclaim="Delete",
                  params=ORDERED)
    statefulset(apiserver, replicas=1)
    nodes("n1")
    claim(apiserver, "www-web-0", cls="ord", node="n1")

    def waiting_event():
        evs = apiserver.client.list("events")["items"]
        return [e for e in evs if e["reason"] == "OrdinalWaiting" and
                e["involvedObject"]["name"] == "www-web-0"]
    ev = wait_for(waiting_event, timeout=20 * SLOW, what="OrdinalWaiting from the node")[0]
    assert "waiting for the Ordinal controller to admit this claim" in ev["message"]
    assert "is the controller running?" in ev["message"]
    c = apiserver.client.get("persistentvolumeclaims", "www-web-0")
    assert c["status"]["phase"] == "Pending" and not c["spec"].get("volumeName")
    assert not apiserver.client.list("persistentvolumes", ns=None)["items"]
    ctrl = controller(apiserver, "ctrl", str(tmp_path))
    try:
        wait_bound(apiserver, "www-web-0", timeout=40)
    finally:
        ctrl.send_signal(signal.SIGTERM)
        assert ctrl.wait(30) == 0


def test_missing_predecessor_named_then_start_ordinal_honoured(apiserver, nodes, tmp_path):
    storage_class(apiserver, "ord", binding="Immediate", reclaim="Delete", params=ORDERED)
    statefulset(apiserver, name="web", replicas=2, start=5)
    nodes("n1")
    ctrl = controller(apiserver, "ctrl", str(tmp_path))
    try:
        claim(apiserver, "www-web-6", cls="ord")

        def waiting_event():
            evs = apiserver.client.list("events")["items"]
            return [e for e in evs if e["reason"] == "OrdinalWaiting" and
                    e["involvedObject"]["name"] == "www-web-6" and
                    e["source"]["component"] == "ordinal-controller"]
        ev = wait_for(waiting_event, timeout=20 * SLOW, what="OrdinalWaiting from controller")
        assert "ordinal 6 of StatefulSet web waits for ordinal 5 (claim www-web-5 does not " \
            "exist yet)" in ev[0]["message"]
        c = apiserver.client.get("persistentvolumeclaims", "www-web-6")
        assert ADMITTED not in (c["metadata"].get("annotations") or {})
        claim(apiserver, "www-web-5", cls="ord")   # ordinals below start (0..4) are not waited for
        wait_bound(apiserver, "www-web-5", timeout=40)
        wait_bound(apiserver, "www-web-6", timeout=40)
    finally:
        ctrl.send_signal(signal.SIGTERM)
        assert ctrl.wait(30) == 0


class PvLog:
    """Every PV write in server order: the approval of ordinal N's release must come only once
    the PVs of every higher ordinal of the set are gone (their store deleted first)."""

    def __init__(self, api):
        lst = api.client.list("persistentvolumes", ns=None)
        self.live, self.violations, self.approved, self.deleted = {}, [], [], []
        for o in lst["items"]:
            ref = (o["spec"].get("claimRef") or {}).get("name", "")
            if ref.startswith("www-web-"):
                self.live[int(ref.rsplit("-", 1)[1])] = o
        self.w = api.client.watch("persistentvolumes", ns=None,
                                  resourceVersion=lst["metadata"]["resourceVersion"], timeout=120)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            for ev in self.w:
                o = ev["object"]
                ref = (o["spec"].get("claimRef") or {}).get("name", "")
                if not ref.startswith("www-web-"):
                    continue
                n = int(ref.rsplit("-", 1)[1])
                if ev["type"] == "DELETED":
                    self.live.pop(n, None)
                    self.deleted.append(n)
                    continue
                was = self.live.get(n)
                self.live[n] = o
                ok = (o["metadata"].get("annotations") or {}).get(
                    "ordinal.csi.dev/release") == "approved"
                if ok and not (was and (was["metadata"].get("annotations") or {}).get(
                        "ordinal.csi.dev/release") == "approved"):
                    self.approved.append(n)
                    higher = [m for m in self.live if m > n]
                    if higher:
                        self.violations.append("release of %d approved while %s still exist: %s"
                                               % (n, higher, [(self.live[m]["status"],
                                                  self.live[m]["metadata"]) for m in higher]))
        except Exception:
            pass

    def close(self):
        stop_watch(self.w, self.t)


def test_release_goes_highest_ordinal_first(apiserver, nodes, tmp_path):
    storage_class(apiserver, "ord", binding="Immediate", reclaim="Delete", params=ORDERED)
    statefulset(apiserver)
    n1 = nodes("n1")
    ctrl = controller(apiserver, "ctrl", str(tmp_path))
    try:
        for n in range(3):
            claim(apiserver, "www-web-%d" % n, cls="ord")
        for n in range(3):
            wait_bound(apiserver, "www-web-%d" % n, timeout=40)
        assert len(n1.volume_dirs()) == 3
        log = PvLog(apiserver)
        assert sorted(log.live) == [0, 1, 2]
        for n in (0, 1, 2):     # all released together, lowest first: the worst order
            apiserver.client.delete("persistentvolumeclaims", "www-web-%d" % n)
        wait_for(lambda: sorted(log.deleted) == [0, 1, 2], timeout=60 * SLOW,
                 what="the three PVs deleted")
        log.close()
        assert log.violations == []
        assert log.approved == [2, 1, 0]
        assert log.deleted == [2, 1, 0]
        assert n1.volume_dirs() == []
    finally:
        (tmp_path / "n1.log").write_text(n1.log_text())   # kept with the test's tmp_path
        ctrl.send_signal(signal.SIGTERM)
        assert ctrl.wait(30) == 0


def set_events(api, reason):
    return [e for e in api.client.list("events")["items"] if e["reason"] == reason and
            e["involvedObject"]["kind"] == "StatefulSet" and e["involvedObject"]["name"] == "web"]


def test_inventory_ordinals_and_retention_events(apiserver, nodes, tmp_path):
    """The controller writes set/template/ordinal into OrdinalVolumes and tells the set, per
    ordinal, when its volume is retained, re-adopted and orphaned."""
    crd = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                       "kubernetes", "base", "crd-ordinalvolume.yaml")
    apiserver.kubectl("apply", "--validate=false", "-f", crd)
    storage_class(apiserver, "keep", binding="Immediate", reclaim="Retain")
    statefulset(apiserver, replicas=2, cls="keep")
    nodes("n1")
    ctrl = controller(apiserver, "ctrl", str(tmp_path))
    ovs = "/apis/ordinal.csi.dev/v1alpha1/ordinalvolumes"
    try:
        for n in range(2):
            claim(apiserver, "www-web-%d" % n, cls="keep")
        pv1 = wait_bound(apiserver, "www-web-1")["spec"]["volumeName"]

        def ordinals():
            got = {o["spec"]["key"]: (o.get("status") or {}) for o in
                   apiserver.client.call("GET", ovs)["items"]}
            want = {"default/www-web-%d" % n: n for n in range(2)}
            ok = all(k in got and got[k].get("ordinal") == n and
                     got[k].get("statefulSet") == "web" and got[k].get("template") == "www" and
                     got[k].get("state") == "Bound" for k, n in want.items())
            return got if ok else None
        wait_for(ordinals, timeout=30 * SLOW, what="ordinal fields in the OVs")
        rows = apiserver.kubectl("get", "ov", "-o", "wide").stdout.splitlines()
        assert rows[0].split()[4] == "ORDINAL"
        assert sorted(r.split()[4] for r in rows[1:]) == ["0", "1"]

        apiserver.client.delete("persistentvolumeclaims", "www-web-1")
        ev = wait_for(lambda: set_events(apiserver, "VolumeRetained"), timeout=30 * SLOW,
                      what="VolumeRetained on the set")
        assert "ordinal 1 (claim www-web-1, OrdinalVolume %s)" % pv1 in ev[0]["message"]
        claim(apiserver, "www-web-1", cls="keep")          # scale back up: same name
        assert wait_bound(apiserver, "www-web-1")["spec"]["volumeName"] == pv1
        wait_for(lambda: set_events(apiserver, "VolumeReadopted"), timeout=30 * SLOW,
                 what="VolumeReadopted on the set")
        apiserver.client.delete("persistentvolumeclaims", "www-web-1")
        wait_for(lambda: len(set_events(apiserver, "VolumeRetained")) >= 2, timeout=30 * SLOW,
                 what="second VolumeRetained")
        apiserver.client.delete("persistentvolumes", pv1, ns=None)
        ev = wait_for(lambda: set_events(apiserver, "VolumeOrphaned"), timeout=30 * SLOW,
                      what="VolumeOrphaned on the set")
        assert ev[0]["type"] == "Warning" and "kubectl ordinal reclaim" in ev[0]["message"]
        o = apiserver.client.call("GET", ovs + "/" + pv1)
        assert o["status"]["state"] == "Orphaned" and o["status"]["ordinal"] == 1
    finally:
        ctrl.send_signal(signal.SIGTERM)
        assert ctrl.wait(30) == 0


@pytest.mark.parametrize("opt_in", [False, True])
def test_node_loss(apiserver, nodes, tmp_path, opt_in):
    """A node object deleted: without the set's opt-in only NodeLost warnings (claim kept);
    with ordinal.csi.dev/on-node-loss: recreate the ordinal's claim and (policy Delete) its PV
    are deleted. A Pending claim's selected-node naming the deleted node is cleared."""
    storage_class(apiserver, "loc", binding="WaitForFirstConsumer", reclaim="Delete")
    sts = statefulset(apiserver, replicas=1, cls="loc")
    if opt_in:
        apiserver.client.call("PATCH", "/apis/apps/v1/namespaces/default/statefulsets/web", {
            "metadata": {"annotations": {"ordinal.csi.dev/on-node-loss": "recreate"}}},
            content_type="application/merge-patch+json")
    assert sts["metadata"]["name"] == "web"
    for name in ("n1", "n2"):
        apiserver.client.create("nodes", {"apiVersion": "v1", "kind": "Node",
                                          "metadata": {"name": name}}, ns=None)
    nodes("n1")
    ctrl = controller(apiserver, "ctrl", str(tmp_path))
    try:
        claim(apiserver, "www-web-0", cls="loc", node="n1")
        pv = wait_bound(apiserver, "www-web-0")["spec"]["volumeName"]
        claim(apiserver, "other-0", cls="loc", node="n2")   # Pending: no plugin on n2
        wait_for(lambda: apiserver.kubectl("get", "lease", "-n", "default").returncode == 0 and
                 "ctrl" in apiserver.kubectl("get", "lease", "-n", "default").stdout,
                 timeout=20 * SLOW, what="the controller leads")
        apiserver.client.delete("nodes", "n2", ns=None)
        wait_for(lambda: SELECTED not in (apiserver.client.get(
            "persistentvolumeclaims", "other-0")["metadata"].get("annotations") or {}),
            timeout=20 * SLOW, what="stale selected-node cleared")
        apiserver.client.delete("nodes", "n1", ns=None)
        ev = wait_for(lambda: set_events(apiserver, "NodeLost"), timeout=20 * SLOW,
                      what="NodeLost on the set")
        assert ev[0]["type"] == "Warning" and "node n1 is gone" in ev[0]["message"]
        if opt_in:
            wait_for(lambda: not apiserver.client.exists("persistentvolumeclaims", "www-web-0"),
                     timeout=20 * SLOW, what="claim deleted")
            # deleted: gone, or Terminating while a finalizer (the lost node's) holds it
            def pv_deleted():
                if not apiserver.client.exists("persistentvolumes", pv, ns=None):
                    return True
                return apiserver.client.get("persistentvolumes", pv, ns=None)[
                    "metadata"].get("deletionTimestamp")
            wait_for(pv_deleted, timeout=20 * SLOW, what="PV deleted")
            assert "deleting the claim and its PersistentVolume" in ev[0]["message"]
        else:
            assert "Set ordinal.csi.dev/on-node-loss: recreate" in ev[0]["message"]
            c = apiserver.client.get("persistentvolumeclaims", "www-web-0")
            assert not c["metadata"].get("deletionTimestamp")
            assert not apiserver.client.get("persistentvolumes", pv, ns=None)["metadata"].get(
                "deletionTimestamp")
    finally:
        ctrl.send_signal(signal.SIGTERM)
        assert ctrl.wait(30) == 0
