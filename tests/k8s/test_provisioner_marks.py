"""Leak protection without a claim finalizer: the store's durable provisioning mark.

With a reclaim policy of Delete on the directory backend, CreateVolume records the claim's uid in
the store's metadata (`provisioning=<uid>` in volume.meta, in the write that makes the store); a
fresh read of the claim after CreateVolume decides whether the PV is made; the PV's own sync
clears the mark; a store still marked whose claim (by uid) is gone and which no PV names is
deleted (claim-delete event, start-up sweep). These tests stop the daemon at each of those steps
(kill -9, with the API server holding the next step back by an injected fault), count the API
writes a claim costs from the fake API server's request log, and check that Retained stores are
never deleted.

Uses the daemon and fixtures of test_provisioner.py.
"""

import os
import time

from fakeapi import ApiError, PATHS, wait_for
from test_provisioner import (SLOW, claim, delete_claim, get_claim, nodes,  # noqa: F401
                              pvs, storage_class, wait_bound)

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def meta(node, name, ns="default"):
    """The store's volume.meta as a dict ({} when there is no store)."""
    try:
        with open(os.path.join(node.root, ns, name, "volume.meta")) as f:
            return dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
    except FileNotFoundError:
        return {}


def requests(api, since=0):
    """(method, resource, name-or-None, code) of every request in the server's log past line
    `since`, in order."""
    out = []
    with open(api.log_file, errors="replace") as f:
        lines = f.readlines()[since:]
    for line in lines:
        t = line.split()
        if len(t) < 5 or t[1] not in ("GET",) + WRITES:
            continue
        path = t[2].partition("?")[0]
        segs = [x for x in path.split("/") if x]
        idx = next((i for i in range(len(segs) - 1, -1, -1) if segs[i] in PATHS), None)
        if idx is None:
            continue
        name = segs[idx + 1] if idx + 1 < len(segs) else None
        code = t[-2] if t[-1].endswith("ms") else "?"
        out.append((t[1], segs[idx], name, code))
    return out


def log_lines(api):
    with open(api.log_file, errors="replace") as f:
        return sum(1 for _ in f)


def test_one_api_write_per_claim_before_bound(apiserver, nodes):
    """A claim costs the API server one write (the PV's POST) on its way to Bound: no claim
    write at all (no finalizer added or removed), the Events apart (sent on their own client,
    still recorded)."""
    n1 = nodes("node-1")
    storage_class(apiserver)
    names = ["www-web-%d" % i for i in range(4)]
    since = log_lines(apiserver)
    uids = {n: claim(apiserver, n, node="node-1")["metadata"]["uid"] for n in names}
    for n in names:
        wait_bound(apiserver, n)
    # settled: every store's provisioning mark cleared (by the PV's sync, no API request)
    wait_for(lambda: all(meta(n1, n).get("name") == "pvc-" + uids[n] and
                         "provisioning" not in meta(n1, n) for n in names),
             timeout=20 * SLOW, what="provisioning marks cleared")

    def reasons():
        ev = apiserver.client.list("events", ns="default")["items"]
        got = {(e["involvedObject"]["name"], e["reason"]) for e in ev}
        return all((n, r) in got for n in names for r in ("Provisioning",
                                                          "ProvisioningSucceeded"))
    wait_for(reasons, timeout=20 * SLOW, what="both events of every claim")
    reqs = requests(apiserver, since)
    # the test's own writes: the claims' POSTs (to the collection: name None), and the
    # class's, whose log line the server may write after `since` was read
    daemon_writes = [r for r in reqs if r[0] in WRITES and r[1] != "events" and
                     not (r[0] == "POST" and r[1] in ("persistentvolumeclaims", "storageclasses")
                          and r[2] is None)]
    pv_posts = [r for r in daemon_writes if r[0] == "POST" and r[1] == "persistentvolumes"]
    assert len(pv_posts) == len(names), reqs
    assert len(daemon_writes) == len(names), daemon_writes  # one write per claim, in all
    assert not [r for r in daemon_writes if r[1] == "persistentvolumeclaims"], daemon_writes
    # and the decision read: one fresh GET of each claim after its CreateVolume
    for n in names:
        assert ("GET", "persistentvolumeclaims", n, "200") in reqs, reqs
    for n in names:
        assert "ordinal.csi.dev/provisioning" not in \
            get_claim(apiserver, n)["metadata"].get("finalizers", [])


def test_release_api_cost(apiserver, nodes):
    """Releasing a claim of a Delete class: the PV's DELETE and its finalizer's removal, and
    nothing of ours on the claim. Prints the requests by kind (docs/API_LOAD.md)."""
    n1 = nodes("node-1")
    storage_class(apiserver)
    names = ["rel-%d" % i for i in range(4)]
    for n in names:
        claim(apiserver, n, node="node-1")
    for n in names:
        wait_bound(apiserver, n)
    # cleared in the files, and in the daemon's index (its log line comes after both: a claim
    # deleted between the two would find its store still marked and rightly read the claim)
    wait_for(lambda: all("provisioning" not in meta(n1, n) for n in names) and
             n1.log_text().count("provisioning mark cleared") >= len(names), timeout=20 * SLOW,
             what="marks cleared")
    since = log_lines(apiserver)
    for n in names:
        delete_claim(apiserver, n)
    wait_for(lambda: pvs(apiserver) == [] and n1.volume_dirs() == [], timeout=30 * SLOW,
             what="PVs and stores gone")
    reqs = requests(apiserver, since)
    mine = [r for r in reqs if not (r[0] == "DELETE" and r[1] == "persistentvolumeclaims")
            and not (r[0] == "GET" and r[1] == "persistentvolumes" and r[2] is None)]
    kinds = {}
    for r in mine:
        kinds["%s %s" % (r[0], r[1])] = kinds.get("%s %s" % (r[0], r[1]), 0) + 1
    print("release of %d claims: %s" % (len(names), kinds))
    assert kinds.get("DELETE persistentvolumes") == len(names), kinds
    assert not [r for r in mine if r[1] == "persistentvolumeclaims"], mine


def hold_pv_create(api):
    """Every PV POST fails (500): the daemon stops between the store and its PV, retrying."""
    api.fault(error_rate=100, error_code=500, match="/persistentvolumes", methods=["POST"])


def marked(node, name, uid):
    return meta(node, name).get("provisioning") == uid


def test_kill9_after_store_before_pv_claim_kept(apiserver, nodes):
    """kill -9 with the store made and marked, no PV yet: the restarted daemon finishes the
    same store (one store, one PV, mark cleared)."""
    n1 = nodes("node-1")
    storage_class(apiserver)
    hold_pv_create(apiserver)
    uid = claim(apiserver, "web-a", node="node-1")["metadata"]["uid"]
    wait_for(lambda: marked(n1, "web-a", uid), timeout=20 * SLOW, what="store marked")
    n1.wait_log("creating PersistentVolume pvc-" + uid)  # the PV's POST failed at least once
    n1.kill9()
    apiserver.reset_faults()
    assert pvs(apiserver) == []
    n1.start()
    wait_bound(apiserver, "web-a")
    wait_for(lambda: "provisioning" not in meta(n1, "web-a"), timeout=20 * SLOW,
             what="mark cleared")
    assert [p["metadata"]["name"] for p in pvs(apiserver)] == ["pvc-" + uid]
    assert n1.volume_dirs() == ["default/web-a"]


def test_kill9_after_store_before_pv_claim_deleted_meanwhile(apiserver, nodes):
    """kill -9 with the store made and marked, no PV; the claim is deleted while the daemon is
    down (no finalizer holds it): the start-up sweep deletes the store; no PV is ever made."""
    n1 = nodes("node-1")
    storage_class(apiserver)
    hold_pv_create(apiserver)
    uid = claim(apiserver, "web-b", node="node-1")["metadata"]["uid"]
    wait_for(lambda: marked(n1, "web-b", uid), timeout=20 * SLOW, what="store marked")
    n1.kill9()
    apiserver.reset_faults()
    delete_claim(apiserver, "web-b")
    wait_for(lambda: not apiserver.client.exists("persistentvolumeclaims", "web-b"),
             timeout=10 * SLOW, what="claim gone")
    since = log_lines(apiserver)
    n1.start()
    n1.wait_log("was gone before its PersistentVolume was made")
    assert n1.volume_dirs() == []
    assert pvs(apiserver) == []
    assert not [r for r in requests(apiserver, since)
                if r[0] == "POST" and r[1] == "persistentvolumes"]


def test_kill9_after_pv_before_mark_cleared(apiserver, nodes):
    """kill -9 with the PV made and the mark still on the store (the daemon's PV watch held
    back, so its PV sync never ran): the restarted daemon clears the mark from the PV it lists,
    keeps the store, and makes no second PV."""
    n1 = nodes("node-1")
    storage_class(apiserver)
    apiserver.fault(hold_watches=["persistentvolumes"])
    uid = claim(apiserver, "web-c", node="node-1")["metadata"]["uid"]
    wait_for(lambda: apiserver.client.exists("persistentvolumes", "pvc-" + uid, ns=None),
             timeout=20 * SLOW, what="PV made")
    assert marked(n1, "web-c", uid)  # the PV's sync has not seen it: the mark is still there
    n1.kill9()
    apiserver.reset_faults()
    n1.start()
    wait_for(lambda: "provisioning" not in meta(n1, "web-c"), timeout=20 * SLOW,
             what="mark cleared after restart")
    wait_bound(apiserver, "web-c")
    assert [p["metadata"]["name"] for p in pvs(apiserver)] == ["pvc-" + uid]
    assert n1.volume_dirs() == ["default/web-c"]


def test_kill9_after_pv_before_mark_cleared_then_claim_deleted(apiserver, nodes):
    """Same instant, then the claim deleted while the daemon is down: the PV owns the store
    (Released, policy Delete), so its release deletes store and PV; nothing is left."""
    n1 = nodes("node-1")
    storage_class(apiserver)
    apiserver.fault(hold_watches=["persistentvolumes"])
    uid = claim(apiserver, "web-d", node="node-1")["metadata"]["uid"]
    wait_for(lambda: apiserver.client.exists("persistentvolumes", "pvc-" + uid, ns=None),
             timeout=20 * SLOW, what="PV made")
    assert marked(n1, "web-d", uid)
    n1.kill9()
    apiserver.reset_faults()
    wait_bound(apiserver, "web-d")  # the binder binds it with the daemon down
    delete_claim(apiserver, "web-d")
    n1.start()
    wait_for(lambda: pvs(apiserver) == [] and n1.volume_dirs() == [], timeout=30 * SLOW,
             what="PV and store gone")


def test_claim_deleted_mid_provisioning_without_finalizer(apiserver, nodes):
    """The claim is deleted after CreateVolume and before the decision read answers (the
    daemon's GET of the claim fails meanwhile): no finalizer holds the claim, the store is
    deleted, no PV is ever made."""
    n1 = nodes("node-1")
    storage_class(apiserver)
    since = log_lines(apiserver)
    apiserver.fault(error_rate=100, error_code=500, match="/persistentvolumeclaims/gone-x",
                    methods=["GET"])
    c = claim(apiserver, "gone-x", node="node-1")
    uid = c["metadata"]["uid"]
    wait_for(lambda: marked(n1, "gone-x", uid), timeout=20 * SLOW, what="store marked")
    n1.wait_log("sync c:default/gone-x: ")  # the read failed: the sync retries with backoff
    # the claim carries no finalizer of ours (a list: the fault answers only its GETs)
    live = [x for x in apiserver.client.list("persistentvolumeclaims")["items"]
            if x["metadata"]["name"] == "gone-x"]
    assert live and "ordinal.csi.dev/provisioning" not in live[0]["metadata"].get(
        "finalizers", [])
    delete_claim(apiserver, "gone-x")  # goes at once: nothing of ours holds it
    apiserver.reset_faults()
    wait_for(lambda: not apiserver.client.exists("persistentvolumeclaims", "gone-x"),
             timeout=10 * SLOW, what="claim gone")
    wait_for(lambda: n1.volume_dirs() == [], timeout=20 * SLOW, what="store deleted")
    assert pvs(apiserver) == []
    reqs = requests(apiserver, since)
    assert not [r for r in reqs if r[0] == "POST" and r[1] == "persistentvolumes"], reqs
    assert not [r for r in reqs if r[0] in ("PUT", "PATCH") and
                r[1] == "persistentvolumeclaims"], reqs


def test_claim_recreated_with_same_name_uid_mismatch(apiserver, nodes):
    """The store is marked for a claim's uid; the claim is deleted and re-created under the
    same name (a new uid) before the decision read answers (the daemon's GETs of the claim fail
    meanwhile): the read finds another uid, so the old uid never gets a PV, and the new claim
    gets one store and one PV of its own name.

    (A deletion that lands after the decision read, while the PV's POST is in flight, makes
    the old claim's PV, which the binder finds Released and the Delete policy removes with its
    store: the race every provisioner has; not this test.)"""
    n1 = nodes("node-1")
    storage_class(apiserver)
    since = log_lines(apiserver)
    apiserver.fault(error_rate=100, error_code=500, match="/persistentvolumeclaims/web-e",
                    methods=["GET"])
    old = claim(apiserver, "web-e", node="node-1")["metadata"]["uid"]
    wait_for(lambda: marked(n1, "web-e", old), timeout=20 * SLOW, what="store marked")
    n1.wait_log("sync c:default/web-e: ")  # the read failed: the sync retries with backoff
    delete_claim(apiserver, "web-e")

    def names():
        return [x["metadata"]["name"]
                for x in apiserver.client.list("persistentvolumeclaims")["items"]]
    wait_for(lambda: "web-e" not in names(), timeout=10 * SLOW, what="old claim gone")
    new = claim(apiserver, "web-e", node="node-1")["metadata"]["uid"]
    assert new != old
    apiserver.reset_faults()
    bound = wait_bound(apiserver, "web-e")
    assert bound["spec"]["volumeName"] == "pvc-" + new
    wait_for(lambda: meta(n1, "web-e").get("name") == "pvc-" + new and
             "provisioning" not in meta(n1, "web-e"), timeout=20 * SLOW,
             what="store owned by the new claim, mark cleared")
    assert [p["metadata"]["name"] for p in pvs(apiserver)] == ["pvc-" + new]
    assert n1.volume_dirs() == ["default/web-e"]
    created = [r for r in requests(apiserver, since) if r[0] == "POST" and
               r[1] == "persistentvolumes" and r[3] == "201"]
    assert len(created) == 1, created


def test_sweep_never_deletes_retained_stores(apiserver, nodes):
    """Retained stores carry no mark: the start-up sweep leaves them, whether their Released PV
    still exists or an administrator deleted it, while it does delete a marked store whose claim
    is gone (so the sweep ran)."""
    n1 = nodes("node-1")
    storage_class(apiserver, name="keep", reclaim="Retain")
    storage_class(apiserver)
    for n in ("kept-1", "kept-2"):
        claim(apiserver, n, cls="keep", node="node-1")
    for n in ("kept-1", "kept-2"):
        wait_bound(apiserver, n)
    with open(os.path.join(n1.root, "default", "kept-1", "data", "f"), "w") as f:
        f.write("precious")
    pv2 = get_claim(apiserver, "kept-2")["spec"]["volumeName"]
    for n in ("kept-1", "kept-2"):
        delete_claim(apiserver, n)
    wait_for(lambda: all(p["status"].get("phase") == "Released" for p in pvs(apiserver)),
             timeout=20 * SLOW, what="both PVs Released")
    apiserver.client.delete("persistentvolumes", pv2, ns=None)  # the admin's deletion
    wait_for(lambda: len(pvs(apiserver)) == 1, timeout=20 * SLOW, what="PV of kept-2 gone")
    # and a marked store whose claim goes while the daemon is down
    hold_pv_create(apiserver)
    uid = claim(apiserver, "orphan", node="node-1")["metadata"]["uid"]
    wait_for(lambda: marked(n1, "orphan", uid), timeout=20 * SLOW, what="store marked")
    n1.kill9()
    apiserver.reset_faults()
    delete_claim(apiserver, "orphan")
    wait_for(lambda: not apiserver.client.exists("persistentvolumeclaims", "orphan"),
             timeout=10 * SLOW, what="claim gone")
    n1.start()
    n1.wait_log("volume dir:default/orphan deleted")
    assert n1.volume_dirs() == ["default/kept-1", "default/kept-2"]
    assert all("provisioning" not in meta(n1, n) for n in ("kept-1", "kept-2"))
    with open(os.path.join(n1.root, "default", "kept-1", "data", "f")) as f:
        assert f.read() == "precious"
    assert len(pvs(apiserver)) == 1
