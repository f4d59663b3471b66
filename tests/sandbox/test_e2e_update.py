"""End to end on one real sandbox: RollingUpdate with a partition (highest ordinal first, one at
a time, each after the previous is back Ready, data kept), OnDelete, and a set re-created after
an orphaning delete adopting its pods and ControllerRevisions (no pod replaced)."""

import e2e
from e2e import needs_csi, service, wait_for, web

pytestmark = needs_csi
REV = "controller-revision-hash"


def set_status(sbx, ns, name="web"):
    s = sbx.client.get("statefulsets", name, ns=ns)
    return s, s.get("status") or {}


def uids(pods):
    return {k: v["metadata"]["uid"] for k, v in pods.items()}


def test_rolling_update_with_partition(sbx, ns):
    rec = sbx.record(ns)
    sbx.apply(ns, service(), web(replicas=3, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}))
    before = sbx.wait_ready(ns, ["web-0", "web-1", "web-2"])
    sbx.write_hostnames(ns, ["web-0", "web-1", "web-2"])
    old_rev = set_status(sbx, ns)[1]["currentRevision"]
    m = rec.mark()
    sbx.k(ns, "set", "image", "sts/web", "nginx=registry.k8s.io/nginx-slim:0.9")

    def partitioned():
        s, st = set_status(sbx, ns)
        return st.get("observedGeneration") == s["metadata"]["generation"] and \
            st.get("updatedReplicas") == 1 and st.get("readyReplicas") == 3 and \
            st.get("updateRevision") != old_rev and st
    st = wait_for(partitioned, timeout=e2e.WAIT, what="web-2 updated, 3 Ready")
    pods = sbx.pods(ns)
    assert pods["web-2"]["metadata"]["labels"][REV] == st["updateRevision"]
    assert pods["web-2"]["spec"]["containers"][0]["image"].endswith("nginx-slim:0.9")
    for p in ("web-0", "web-1"):
        assert pods[p]["metadata"]["uid"] == before[p]["metadata"]["uid"], \
            "%s below the partition is kept" % p
        assert pods[p]["metadata"]["labels"][REV] == old_rev
    assert st["currentRevision"] == old_rev
    assert sbx.read_in_pod(ns, "web-2") == "web-2\n"

    m = rec.mark()
    sbx.k(ns, "patch", "sts", "web", "-p",
          '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    sbx.k(ns, "rollout", "status", "sts/web", "--timeout=90s")
    pods = sbx.wait_ready(ns, ["web-0", "web-1", "web-2"])
    s, st = set_status(sbx, ns)
    assert st["currentRevision"] == st["updateRevision"] and st["updatedReplicas"] == 3
    assert all(p["metadata"]["labels"][REV] == st["updateRevision"] for p in pods.values())
    s1, s0 = rec.need(lambda r: r.stopping("web-1", m), lambda r: r.stopping("web-0", m))
    (r1,) = rec.need(lambda r: r.became_ready("web-1", s1))
    assert rec.stopping("web-2", m) is None, "web-2 was already updated"
    assert s1 < r1 < s0, \
        "web-1 replaced and back Ready before web-0 began stopping"
    for p in ("web-0", "web-1", "web-2"):
        assert sbx.read_in_pod(ns, p) == p + "\n", "%s kept its data" % p


def test_on_delete_replaces_only_deleted_pods(sbx, ns):
    sbx.apply(ns, service(), web(replicas=2, pmp="Parallel", strategy={"type": "OnDelete"}))
    before = sbx.wait_ready(ns, ["web-0", "web-1"])
    sbx.write_hostnames(ns, ["web-0", "web-1"])
    old_rev = set_status(sbx, ns)[1]["currentRevision"]
    sbx.k(ns, "set", "image", "sts/web", "nginx=registry.k8s.io/nginx-slim:0.9")

    def synced():
        s, st = set_status(sbx, ns)
        return st.get("observedGeneration") == s["metadata"]["generation"] and \
            st.get("updateRevision") != old_rev and st
    st = wait_for(synced, timeout=e2e.WAIT, what="the controller saw the new template")
    assert st["currentRevision"] == old_rev and st.get("updatedReplicas", 0) == 0
    assert uids(sbx.wait_ready(ns, ["web-0", "web-1"])) == uids(before), \
        "OnDelete replaces nothing by itself"
    sbx.k(ns, "delete", "pod", "web-1")
    wait_for(lambda: (lambda p: p and p["metadata"]["uid"] != before["web-1"]["metadata"]["uid"]
                      and e2e.ready(p))(sbx.pods(ns).get("web-1")),
             timeout=e2e.WAIT, what="web-1 back")
    pods = sbx.wait_ready(ns, ["web-0", "web-1"])
    assert pods["web-1"]["metadata"]["labels"][REV] == st["updateRevision"]
    assert pods["web-0"]["metadata"]["labels"][REV] == old_rev
    assert pods["web-0"]["metadata"]["uid"] == before["web-0"]["metadata"]["uid"]
    assert sbx.read_in_pod(ns, "web-1") == "web-1\n"
    st = wait_for(lambda: (lambda s: s.get("updatedReplicas") == 1 and s)(
        set_status(sbx, ns)[1]), timeout=e2e.WAIT, what="updatedReplicas 1")
    assert st["currentRevision"] == old_rev


def test_recreated_set_adopts_its_pods_and_revisions(sbx, ns):
    c = sbx.client
    sbx.apply(ns, service(), web(replicas=2, pmp="Parallel"))
    before = sbx.wait_ready(ns, ["web-0", "web-1"])
    s, st = set_status(sbx, ns)
    revs = sorted(r["metadata"]["name"] for r in c.list("controllerrevisions", ns=ns)["items"])
    assert revs == [st["currentRevision"]]
    sbx.k(ns, "delete", "sts", "web", "--cascade=orphan")
    wait_for(lambda: not c.list("statefulsets", ns=ns)["items"] and all(
        not o["metadata"].get("ownerReferences") for o in
        c.list("controllerrevisions", ns=ns)["items"] + c.list("pods", ns=ns)["items"]),
        timeout=e2e.WAIT, what="the set gone, its pods and revision orphaned")
    sbx.apply(ns, web(replicas=2, pmp="Parallel"))
    s2 = wait_for(lambda: (lambda s: s if (s.get("status") or {}).get("observedGeneration") ==
                           s["metadata"]["generation"] else None)(
        c.get("statefulsets", "web", ns=ns)), timeout=e2e.WAIT, what="the new set synced")
    uid = s2["metadata"]["uid"]
    assert uid != s["metadata"]["uid"]
    pods = sbx.wait_ready(ns, ["web-0", "web-1"])
    assert uids(pods) == uids(before), "the pods are adopted, not replaced"
    items = c.list("controllerrevisions", ns=ns)["items"]
    assert sorted(r["metadata"]["name"] for r in items) == revs, "no new revision"
    assert all([o["uid"] for o in r["metadata"]["ownerReferences"] if o.get("controller")] ==
               [uid] for r in items), "the revision is adopted by the new set"
    st2 = c.get("statefulsets", "web", ns=ns)["status"]
    assert st2["currentRevision"] == st2["updateRevision"] == st["currentRevision"]
    assert all(p["metadata"]["labels"][REV] == st["currentRevision"] for p in pods.values())
