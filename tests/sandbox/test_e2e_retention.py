"""End to end on one real sandbox: every cell of persistentVolumeClaimRetentionPolicy
(whenDeleted x whenScaled, reference/kubernetes.md section 3.5) with Ordinal's volumes and
their data, and the stale-claim wait on a quick scale-up. Claims, volumes and stores going
away are taken from watch events and from the nodes' Ordinal roots."""

import time

import pytest

import e2e
from e2e import needs_csi, service, wait_for, web

pytestmark = needs_csi
PODS3 = ["web-0", "web-1", "web-2"]


def refs(claim):
    return sorted((r["kind"], r["name"], r.get("controller"))
                  for r in claim["metadata"].get("ownerReferences") or [])


@pytest.mark.parametrize("deleted,scaled", [("Retain", "Retain"), ("Retain", "Delete"),
                                            ("Delete", "Retain"), ("Delete", "Delete")])
def test_retention_table(sbx, ns, deleted, scaled):
    rec = sbx.record(ns)
    sbx.apply(ns, service(), web(replicas=3, policy=(deleted, scaled)))
    sbx.wait_ready(ns, PODS3)
    sbx.write_hostnames(ns, PODS3)
    in_range = [("StatefulSet", "web", True)] if deleted == "Delete" else []
    claims = sbx.claims(ns)
    vols = {k: v["spec"]["volumeName"] for k, v in claims.items()}
    for n, c in claims.items():
        assert refs(c) == in_range, (n, c["metadata"].get("ownerReferences"))

    m = rec.mark()
    sbx.k(ns, "scale", "sts", "web", "--replicas=1")
    sbx.wait_ready(ns, ["web-0"])
    if scaled == "Delete":
        wait_for(lambda: sorted(sbx.claims(ns)) == ["www-web-0"], timeout=e2e.WAIT,
                 what="the condemned pods' claims deleted")
        wait_for(lambda: not ({vols["www-web-1"], vols["www-web-2"]} & sbx.pv_names()),
                 timeout=e2e.WAIT, what="their volumes deleted by Ordinal")
        wait_for(lambda: sorted(sbx.stores(ns)) == ["www-web-0"], timeout=e2e.WAIT,
                 what="their stores removed from the nodes")
        rec.need(lambda r: r.gone("persistentvolumeclaims", "www-web-1", m),
                 lambda r: r.gone("persistentvolumeclaims", "www-web-2", m))
        for claim in ("www-web-1", "www-web-2"):
            last = [e[4] for e in rec.history("persistentvolumeclaims", m) if e[3] == claim][-1]
            assert refs(last) == [("Pod", claim[4:], True)], \
                "%s owned by its condemned pod only: %s" % (claim, last["metadata"])
        # What is guaranteed (docs/DECISIONS.md "Scale-down order of claims and volumes"):
        # the pods go highest ordinal first, one at a time; each claim is deleted only after
        # its own pod is gone (garbage collector) and each volume only after its claim. The
        # order of the two volumes is not: each node deletes its own, on a class without
        # ordinal.csi.dev/ordering (tests/k8s/test_reconciler.py covers an ordered class).
        g2, s1, g1, c2, c1, pv2, pv1 = rec.need(
            lambda r: r.gone("pods", "web-2", m), lambda r: r.stopping("web-1", m),
            lambda r: r.gone("pods", "web-1", m),
            lambda r: r.gone("persistentvolumeclaims", "www-web-2", m),
            lambda r: r.gone("persistentvolumeclaims", "www-web-1", m),
            lambda r: r.gone("persistentvolumes", vols["www-web-2"], m),
            lambda r: r.gone("persistentvolumes", vols["www-web-1"], m))
        assert g2 < s1, "web-1 began stopping only after web-2 was gone"
        assert g2 < c2 < pv2 and g1 < c1 < pv1, \
            "each claim deleted after its pod was gone, each volume after its claim"
    else:
        s = sbx.client.get("statefulsets", "web", ns=ns)
        assert s["status"]["observedGeneration"] == s["metadata"]["generation"]
        claims = sbx.claims(ns)
        assert sorted(claims) == ["www-web-0", "www-web-1", "www-web-2"]
        for n in ("www-web-1", "www-web-2"):
            assert refs(claims[n]) == in_range
            assert sbx.on_disk(ns, n) == n[4:] + "\n", "%s keeps its data" % n

    left = sorted(sbx.claims(ns))
    m = rec.mark()
    sbx.k(ns, "delete", "sts", "web")
    wait_for(lambda: not sbx.pods(ns), timeout=e2e.WAIT, what="the pods gone with the set")
    if deleted == "Delete":
        wait_for(lambda: not sbx.claims(ns), timeout=e2e.WAIT, what="every claim deleted")
        wait_for(lambda: not (set(vols.values()) & sbx.pv_names()) and not sbx.stores(ns),
                 timeout=e2e.WAIT, what="every volume and store deleted")
        g, p = rec.need(lambda r: r.gone("persistentvolumeclaims", "www-web-0", m),
                        lambda r: r.gone("pods", "web-0", m))
        assert p < g, "www-web-0 deleted only after its pod was gone"
        return
    # whenDeleted Retain: the claims stay Bound to their volumes; a new set gets the data.
    wait_for(lambda: rec.gone("pods", "web-0", m), timeout=e2e.WAIT, what="web-0 deleted")
    assert sorted(sbx.claims(ns)) == left
    assert {k: v["spec"]["volumeName"] for k, v in sbx.claims(ns).items()} == \
        {k: vols[k] for k in left}
    sbx.apply(ns, web(replicas=3, policy=(deleted, scaled)))
    sbx.wait_ready(ns, PODS3)
    for p in PODS3:
        got = sbx.read_in_pod(ns, p)
        if "www-" + p in left:
            assert got == p + "\n", "%s got its data back" % p
        else:
            assert got == "", "%s got a fresh volume (its claim was deleted)" % p
        if "www-" + p not in left:
            assert sbx.claims(ns)["www-" + p]["spec"]["volumeName"] != vols["www-" + p]


def test_stale_claim_waited_for_on_quick_scale_up(sbx, ns):
    """whenScaled Delete, scaled down and straight back up: the new pod waits until the
    condemned pod's claim (its ownerRef names the old pod) is gone, then gets a fresh claim
    and volume, never the condemned data."""
    rec = sbx.record(ns)
    sbx.apply(ns, service(), web(replicas=2, policy=("Retain", "Delete")))
    before = sbx.wait_ready(ns, ["web-0", "web-1"])
    sbx.write_hostnames(ns, ["web-0", "web-1"])
    old = sbx.claims(ns)["www-web-1"]
    m = rec.mark()
    sbx.k(ns, "scale", "sts", "web", "--replicas=1")
    rec.wait(lambda r: r.stopping("web-1", m), what="web-1 stopping")
    sbx.k(ns, "scale", "sts", "web", "--replicas=2")
    pods = sbx.wait_ready(ns, ["web-0", "web-1"])
    assert pods["web-1"]["metadata"]["uid"] != before["web-1"]["metadata"]["uid"]
    claim = sbx.claims(ns)["www-web-1"]
    assert claim["metadata"]["uid"] != old["metadata"]["uid"], "a fresh claim"
    assert claim["spec"]["volumeName"] != old["spec"]["volumeName"], "a fresh volume"
    old_gone, created = rec.need(
        lambda r: r.first("persistentvolumeclaims", "www-web-1", lambda t, o: t == "DELETED" and
                          o["metadata"]["uid"] == old["metadata"]["uid"], m),
        lambda r: r.first("pods", "web-1", lambda t, o: t == "ADDED", m))
    assert old_gone < created, \
        "the new web-1 was created only after the stale claim was gone"
    assert sbx.read_in_pod(ns, "web-1") == "", "never the condemned data"
    assert sbx.read_in_pod(ns, "web-0") == "web-0\n"
    # The old web-1 turned Succeeded while being deleted, back in range: the controller must
    # not delete it again (that removes it before its kubelet unmounted its volume, and its
    # claim and volume go while still mounted; kubernetes.md 3.2, v1.32 processReplica).
    assert not sbx.events(ns, "RecreatingTerminatedPod") + \
        sbx.events(ns, "RecreatingFailedPod"), "a pod being deleted was deleted again"


def test_conflicting_controller_keeps_its_claim(sbx, ns):
    """A claim another controller owns (controller: true): the set uses it, warns
    ConflictingController, and never touches its ownerReferences, so that neither a scale-down
    with whenScaled Delete nor the set's deletion with whenDeleted Delete deletes it."""
    rec = sbx.record(ns)
    owner = sbx.client.create("configmaps", {"metadata": {"name": "other-controller"}}, ns=ns)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other-controller",
           "uid": owner["metadata"]["uid"], "controller": True}
    sbx.client.create("persistentvolumeclaims", {
        "metadata": {"name": "www-web-0", "labels": {"app": "web"}, "ownerReferences": [ref]},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                 "resources": {"requests": {"storage": "1Gi"}}}}, ns=ns)
    sbx.apply(ns, service(), web(replicas=2, policy=("Delete", "Delete")))
    sbx.wait_ready(ns, ["web-0", "web-1"])
    sbx.write_hostnames(ns, ["web-0", "web-1"])
    ev = wait_for(lambda: sbx.events(ns, "ConflictingController"), timeout=e2e.WAIT,
                  what="a ConflictingController event")[0]
    assert ev["type"] == "Warning" and ev["involvedObject"]["kind"] == "StatefulSet" and \
        ev["involvedObject"]["name"] == "web"
    assert ev["message"] == (
        "PersistentVolumeClaim www-web-0 has a conflicting OwnerReference that acts as a "
        "manging controller, the retention policy is ignored for this claim")
    assert refs(sbx.claims(ns)["www-web-1"]) == [("StatefulSet", "web", True)], \
        "the set's own claim follows the policy"

    m = rec.mark()
    sbx.k(ns, "scale", "sts", "web", "--replicas=0")
    sbx.wait_ready(ns, [])
    rec.need(lambda r: r.gone("pods", "web-0", m),
             lambda r: r.gone("persistentvolumeclaims", "www-web-1", m),
             what="web-0 gone and www-web-1 deleted (whenScaled Delete)")
    left = sbx.claims(ns)
    assert sorted(left) == ["www-web-0"], "the other controller's claim stays"
    assert left["www-web-0"]["metadata"]["ownerReferences"] == [ref]
    assert left["www-web-0"]["status"]["phase"] == "Bound"
    assert sbx.on_disk(ns, "www-web-0") == "web-0\n", "with its data"
    sbx.k(ns, "delete", "sts", "web")
    wait_for(lambda: not sbx.client.list("statefulsets", ns=ns)["items"], timeout=e2e.WAIT,
             what="the set gone")
    assert sbx.claims(ns)["www-web-0"]["metadata"]["ownerReferences"] == [ref]
    # Proof that neither policy reached it: its only owner (the ConfigMap) is alive and no
    # version of the claim ever carried another reference, so the garbage collector has
    # nothing to act on.
    changes = [o["metadata"].get("ownerReferences") for _, _, typ, n, o in
               rec.history("persistentvolumeclaims") if n == "www-web-0"]
    assert changes and all(c == [ref] for c in changes), \
        "the claim's ownerReferences never changed: %s" % changes


def plugin_restarts(sbx):
    """{pod: [restartCount per container]} of Ordinal's own pods (node plugins, controller)."""
    return {p["metadata"]["name"]: [c.get("restartCount") for c in
                                    (p.get("status") or {}).get("containerStatuses") or []]
            for p in sbx.client.list("pods", ns=None)["items"]
            if p["metadata"]["name"].startswith("ordinal")}


def test_stale_claim_woken_by_the_held_pv_events(sbx, ns):
    """The quick scale-up above with the API server holding every PV watch (fault
    hold_watches): the node plugin sees neither the old volume Released nor gone, so the fresh
    claim waits for it (WaitingForVolume, repeated) and its retries back off (1 s, 2 s, 4 s,
    ...). When the watches flow again it is the PV events that wake it, not its back-off: the
    fresh claim is Bound within seconds of the release although its next retry is at least 8 s
    away. Both pods on one node, so that the fresh claim is provisioned where the old volume
    is."""
    rec = sbx.record(ns)
    sbx.apply(ns, service(), web(replicas=2, policy=("Retain", "Delete"), node="node-1"))
    sbx.wait_ready(ns, ["web-0", "web-1"])
    sbx.write_hostnames(ns, ["web-1"])
    old = sbx.claims(ns)["www-web-1"]
    m = rec.mark()
    restarts_before = plugin_restarts(sbx)
    fault = lambda **spec: sbx.client.call("POST", "/_fault", spec)  # noqa: E731
    fault(hold_watches=["persistentvolumes"])
    try:
        sbx.k(ns, "scale", "sts", "web", "--replicas=1")
        rec.wait(lambda r: r.stopping("web-1", m), what="web-1 stopping")
        sbx.k(ns, "scale", "sts", "web", "--replicas=2")

        def waiting():
            evs = [e for e in sbx.events(ns, "WaitingForVolume")
                   if e["involvedObject"]["uid"] != old["metadata"]["uid"]]
            return sum(e.get("count") or 1 for e in evs) >= 4 and evs[-1]
        ev = wait_for(waiting, timeout=e2e.WAIT, what="the fresh claim waiting (4 retries)")
        assert old["spec"]["volumeName"] in ev["message"], ev["message"]
        if sbx.claims(ns)["www-web-1"]["status"]["phase"] != "Pending":
            # Seen once in a rehearsal (load 14): Bound with the watches still held. A plugin
            # restarted meanwhile (a liveness probe timing out under load) relists, and a
            # relist is not held: then this test's premise is gone, not Ordinal's behaviour.
            now = plugin_restarts(sbx)
            if now != restarts_before:
                pytest.skip("an Ordinal pod restarted during the hold (%s -> %s): it relisted "
                            "the PVs, so the hold proves nothing" % (restarts_before, now))
            raise AssertionError("the fresh claim is not Pending with the PV watches held\n"
                                 "%s\nordinal pods' restarts: %s"
                                 % (sbx.describe_state(ns), now))
    finally:
        released = time.time()
        fault(hold_watches=[])
    pods = sbx.wait_ready(ns, ["web-0", "web-1"])
    claim = sbx.claims(ns)["www-web-1"]
    assert claim["metadata"]["uid"] != old["metadata"]["uid"]
    assert claim["spec"]["volumeName"] != old["spec"]["volumeName"]
    bound = rec.need(lambda r: r.first("persistentvolumeclaims", "www-web-1", lambda t, o: (
        o["metadata"]["uid"] == claim["metadata"]["uid"] and
        (o.get("status") or {}).get("phase") == "Bound"), m))[0]
    assert rec.received[bound] - released < 4.0, \
        "the fresh claim Bound %.1f s after the PV events flowed again: woken by its back-off, " \
        "not by the events" % (rec.received[bound] - released)
    assert pods["web-1"]["spec"]["nodeName"] == "node-1"
    assert sbx.read_in_pod(ns, "web-1") == "", "never the condemned data"
