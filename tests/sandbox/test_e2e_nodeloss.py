"""Node loss end to end on one real sandbox (its own: the test deletes a node): the node's
kubelet stopped and its Node object deleted, as when a machine is gone for good. The pod
garbage collector force-deletes the pods bound to the missing node (after its quarantine), the
StatefulSet controller creates them again, and Ordinal's reconciler (the controller Deployment
of deploy/) acts per set:

- `web`, annotated `ordinal.csi.dev/on-node-loss: recreate`: every ordinal whose volume lived on
  the lost node gets its claim (and, reclaim policy Delete, its PV) deleted by the reconciler,
  so the StatefulSet controller makes a new claim and the ordinal runs on another node with an
  empty volume; the other ordinals keep their pods, volumes and data;
- `db`, pinned to that node, without the annotation: a NodeLost warning that says how to opt
  in, and nothing deleted: its claim keeps its uid and its PV.
"""


import e2e
import sbxctl
from e2e import needs_csi, service, wait_for, web

pytestmark = needs_csi

ON_LOSS = "ordinal.csi.dev/on-node-loss"


def set_events(sbx, ns, name, reason):
    return [e for e in sbx.events(ns, reason)
            if (e.get("involvedObject") or {}).get("kind") == "StatefulSet" and
            (e.get("involvedObject") or {}).get("name") == name]


def test_node_gone_recreates_opted_in_ordinals_and_warns_for_the_rest(sbx, ns):
    # OrderedReady: each pod is placed once the previous one runs, so they spread over the
    # nodes (the scheduler picks the node running the fewest pods)
    w = web(replicas=3, grace=2, policy=("Retain", "Retain"))
    w["metadata"]["annotations"] = {ON_LOSS: "recreate"}
    sbx.apply(ns, service(), w)
    names = ["web-0", "web-1", "web-2"]
    before = sbx.wait_ready(ns, names)
    sbx.write_hostnames(ns, names)
    lost_node = before["web-1"]["spec"]["nodeName"]
    lost = sorted(p for p in names if before[p]["spec"]["nodeName"] == lost_node)
    kept = [p for p in names if p not in lost]
    assert kept, "every ordinal on one node: nothing to keep (scheduler spread changed?)"
    dbns = ns[:50] + "-db"
    sbx.namespace(dbns)
    sbx.apply(dbns, service("db"), web(name="db", replicas=1, grace=2, node=lost_node))
    sbx.wait_ready(dbns, ["db-0"], name="db")
    db_claim = sbx.claims(dbns)["www-db-0"]
    claims = sbx.claims(ns)
    old = {p: claims["www-" + p] for p in names}

    out = sbxctl.cli("node", "--dir", sbx.dir, "stop", lost_node).stdout
    assert "%s stopped" % lost_node in out
    sbx.client.delete("nodes", lost_node, ns=None)

    ev = wait_for(lambda: set_events(sbx, ns, "web", "NodeLost"), timeout=e2e.WAIT * 2,
                  what="NodeLost on web")
    assert ev[0]["type"] == "Warning" and "node %s is gone" % lost_node in ev[0]["message"]
    assert "deleting the claim" in ev[0]["message"], ev[0]["message"]
    db_ev = wait_for(lambda: set_events(sbx, dbns, "db", "NodeLost"), timeout=e2e.WAIT,
                     what="NodeLost on db")
    assert db_ev[0]["type"] == "Warning" and "%s: recreate" % ON_LOSS in db_ev[0]["message"]

    # web: the lost ordinals come back elsewhere with new claims and empty volumes. Their old
    # pods still say Ready until the pod garbage collector deletes them (the Node went before
    # the node lifecycle controller marked it, so nobody marked them NotReady): wait for the
    # new pods (new uids) first, or the old ones would be taken for them.
    def replaced():
        ps = sbx.pods(ns)
        return all(p in ps and ps[p]["metadata"]["uid"] != before[p]["metadata"]["uid"]
                   for p in lost) or None
    wait_for(replaced, timeout=e2e.WAIT * 3, what="the lost ordinals' pods made again")
    pods = sbx.wait_ready(ns, names, timeout=e2e.WAIT * 3)
    now = sbx.claims(ns)
    for p in lost:
        assert pods[p]["spec"]["nodeName"] != lost_node
        assert now["www-" + p]["metadata"]["uid"] != old[p]["metadata"]["uid"], \
            "%s: a new claim" % p
        assert now["www-" + p]["spec"]["volumeName"] != old[p]["spec"]["volumeName"]
        assert sbx.read_in_pod(ns, p) == "", "%s: a new, empty volume" % p
    for p in kept:
        assert pods[p]["metadata"]["uid"] == before[p]["metadata"]["uid"], "%s untouched" % p
        assert now["www-" + p]["metadata"]["uid"] == old[p]["metadata"]["uid"]
        assert sbx.read_in_pod(ns, p) == p + "\n", "%s keeps its data" % p

    # db: warned only; its claim and PV stay (its pod, created again by the StatefulSet
    # controller after the pod garbage collector removed the old one, cannot run anywhere)
    c = sbx.claims(dbns)["www-db-0"]
    assert c["metadata"]["uid"] == db_claim["metadata"]["uid"]
    assert not c["metadata"].get("deletionTimestamp")
    pv = sbx.client.get("persistentvolumes", db_claim["spec"]["volumeName"], ns=None)
    assert not pv["metadata"].get("deletionTimestamp")
    db0 = sbx.pods(dbns).get("db-0")
    assert db0 is None or not e2e.ready(db0)

    # tidy up what no kubelet can finish: the db set and its unschedulable pod
    sbx.k(dbns, "delete", "sts", "db", "--wait=false")
    sbx.k(dbns, "delete", "pod", "db-0", "--grace-period=0", "--force", "--ignore-not-found")
    sbx.cleanup(dbns)
