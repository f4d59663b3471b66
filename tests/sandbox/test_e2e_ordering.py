"""Ordering at the storage layer, end to end on one real sandbox (its StatefulSet controller,
scheduler, garbage collector and PV binder, kubelets running bubblewrap containers, real
ordinal-csi node plugins, and Ordinal's controller Deployment of two replicas from deploy/
running the reconciler while it leads).

The sandbox's own classes (`ordinal`, `ordinal-retain`) leave Kubernetes' ordering alone, so
this module makes its own class, `ordinal-ordered`: parameter `ordinal.csi.dev/ordering:
ordered`, reclaim policy Delete (ordered release only concerns stores that are deleted) and
WaitForFirstConsumer like the sandbox's default class (local storage: the scheduler picks the
node, the ordering must hold on top of that). Every set here is `Parallel`, the case where the
StatefulSet controller itself gives no order.

Order is taken from watch events (one resourceVersion counter for the whole server):
- provisioning: the PV of ordinal N is ADDED only after the claim of N-1 was Bound;
- release: the controller's approval of ordinal N's release (annotation
  ordinal.csi.dev/release: approved on its PV) comes only after the PVs of every higher
  released ordinal are DELETED (the node plugin deletes the store, then the PV), so stores go
  highest ordinal first.
Races: scale down then up before the release finished; the leading controller killed -9
mid-release (the kubelet restarts it); leader failover mid-release (leader killed -9 and its
pod force-deleted, so a replica of another identity must take the Lease and finish). In each:
nothing released out of order, the kept ordinals' data intact, no store leaked.
"""

import json
import os
import signal

import pytest

import e2e
from e2e import needs_csi, service, wait_for, web

pytestmark = needs_csi

CLASS = "ordinal-ordered"
RELEASE = "ordinal.csi.dev/release"
ADMITTED = "ordinal.csi.dev/admitted"
CTRL_NS = "ordinal-system"


@pytest.fixture(scope="module", autouse=True)
def ordered_class(sbx):
    sbx.client.create("storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": CLASS},
        "provisioner": "ordinal.csi.dev", "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "parameters": {"backend": "dir", "ordinal.csi.dev/ordering": "ordered"}}, ns=None)
    yield CLASS


def ordered_web(replicas, policy=None):
    return web(replicas=replicas, pmp="Parallel", policy=policy, claim={
        "metadata": {"name": "www"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": CLASS,
            "resources": {"requests": {"storage": "1Gi"}}}})


def ordinal_of(claim_name):
    return int(claim_name.rsplit("-", 1)[1])


class PvTimeline:
    """From a recorder's PV events of ns: per ordinal, the resourceVersions of its PV's ADDED,
    of the first write carrying the release approval, and of its DELETED."""

    def __init__(self, rec, ns, since=0):
        self.added, self.approved, self.deleted, self.pv = {}, {}, {}, {}
        for rv, _, typ, name, o in rec.history("persistentvolumes", since):
            ref = o["spec"].get("claimRef") or {}
            if ref.get("namespace") != ns or not (ref.get("name") or "").startswith("www-web-"):
                continue
            n = ordinal_of(ref["name"])
            self.pv.setdefault(n, set()).add(name)
            key = (n, name)
            if typ == "ADDED":
                self.added.setdefault(key, rv)
            if (o["metadata"].get("annotations") or {}).get(RELEASE) == "approved":
                self.approved.setdefault(key, rv)
            if typ == "DELETED":
                self.deleted.setdefault(key, rv)

    def violations(self, group):
        """Every approval of an ordinal in `group` (the PV keys released together) that came
        while a PV of a higher ordinal of the group was not yet deleted."""
        out = []
        for key, rv in self.approved.items():
            if key not in group:
                continue
            for hk in group:
                if hk[0] > key[0] and not (hk in self.deleted and self.deleted[hk] < rv):
                    out.append("ordinal %d approved at rv %d while ordinal %d's PV %s was "
                               "still there (deleted at %s)" % (key[0], rv, hk[0], hk[1],
                                                                self.deleted.get(hk)))
        return out


def bound_pvs(sbx, ns):
    return {ordinal_of(k): (v["spec"]["volumeName"], v["metadata"]["uid"])
            for k, v in sbx.claims(ns).items() if v["status"].get("phase") == "Bound"}


def assert_no_leak(sbx, ns, names):
    """The stores on the nodes' roots are exactly those of the claims `names`, each Bound to a
    PV that exists, and the inventory has one OrdinalVolume per store of ns."""
    def ok():
        stores = sbx.stores(ns)
        if sorted(stores) != sorted(names):
            return None
        claims = sbx.claims(ns)
        pvs = sbx.pv_names()
        if sorted(claims) != sorted(names) or not all(
                c["status"].get("phase") == "Bound" and c["spec"]["volumeName"] in pvs
                for c in claims.values()):
            return None
        ovs = json.loads(sbx.kubectl("get", "ordinalvolumes", "-o", "json").stdout)["items"]
        keys = sorted((o.get("spec") or {}).get("key") for o in ovs
                      if ((o.get("spec") or {}).get("key") or "").startswith(ns + "/"))
        if keys != sorted("%s/%s" % (ns, n) for n in names):
            return None
        return (stores,)
    return wait_for(ok, timeout=e2e.WAIT, interval=0.2,
                    what="%s: stores, claims, PVs and OrdinalVolumes exactly %s" % (ns, names))[0]


def wait_released(rec, ns, group, since, timeout=e2e.WAIT * 2):
    rec.wait(lambda r: all(k in PvTimeline(r, ns, since).deleted for k in group), timeout,
             "PVs %s deleted" % sorted(group))
    return PvTimeline(rec, ns, since)


def up(sbx, ns, n, policy):
    rec = sbx.record(ns)
    sbx.apply(ns, service(), ordered_web(n, policy))
    names = ["web-%d" % i for i in range(n)]
    sbx.wait_ready(ns, names)
    sbx.write_hostnames(ns, names)
    if policy[0] == "Delete":
        # whenDeleted Delete works through the claims' owner references (the set), set by the
        # StatefulSet controller once the pods run; whenScaled Delete sets the pod as owner of
        # a condemned claim at scale-down
        wait_for(lambda: all(c["metadata"].get("ownerReferences")
                             for c in sbx.claims(ns).values()),
                 timeout=30, what="claims owned by the set")
    return rec


def test_ordered_provisioning_of_a_parallel_set(sbx, ns):
    rec = sbx.record(ns)
    sbx.apply(ns, service(), ordered_web(4))
    sbx.wait_ready(ns, ["web-%d" % i for i in range(4)])
    claims = sbx.claims(ns)
    tl = PvTimeline(rec, ns)
    for i in range(4):
        c = claims["www-web-%d" % i]
        assert c["metadata"]["annotations"].get(ADMITTED) == "true", "admitted by the controller"
        assert len(tl.pv[i]) == 1, "one PV per ordinal"
    for i in range(1, 4):
        bound_prev = rec.first("persistentvolumeclaims", "www-web-%d" % (i - 1),
                               lambda t, o: (o.get("status") or {}).get("phase") == "Bound")
        pv_added = tl.added[(i, next(iter(tl.pv[i])))]
        assert bound_prev is not None and bound_prev < pv_added, \
            "PV of ordinal %d created (rv %d) before www-web-%d was Bound (rv %s)" % (
                i, pv_added, i - 1, bound_prev)
    # Parallel: the StatefulSet controller made every pod without waiting, so the order above is
    # the storage layer's when some claim was ready to be provisioned (its pod scheduled: the
    # scheduler's selected-node on it) before the claim below it was Bound, and still got its
    # PV only after that. (Not "every pod before the first PV": with one API write per claim
    # ordinal 0 can be Bound before the StatefulSet controller has made web-3.)
    held = []
    for i in range(1, 4):
        selected = rec.first("persistentvolumeclaims", "www-web-%d" % i, lambda t, o: bool(
            (o["metadata"].get("annotations") or {}).get("volume.kubernetes.io/selected-node")))
        bound_prev = rec.first("persistentvolumeclaims", "www-web-%d" % (i - 1),
                               lambda t, o: (o.get("status") or {}).get("phase") == "Bound")
        if selected is not None and selected < bound_prev:
            held.append(i)
    assert held, "no claim was ready before its predecessor was Bound: the order seen may " \
        "have been the StatefulSet controller's, not the storage layer's"
    assert_no_leak(sbx, ns, ["www-web-%d" % i for i in range(4)])


def test_ordered_release_on_parallel_scale_down(sbx, ns):
    rec = up(sbx, ns, 4, ("Retain", "Delete"))
    pvs = bound_pvs(sbx, ns)
    m = rec.mark()
    sbx.k(ns, "scale", "sts", "web", "--replicas=1")
    group = {(i, pvs[i][0]) for i in (1, 2, 3)}
    tl = wait_released(rec, ns, group, m)
    assert tl.violations(group) == []
    order = [k[0] for k in sorted(group, key=lambda k: tl.deleted[k])]
    assert order == [3, 2, 1], "stores deleted highest ordinal first: %r" % order
    sbx.wait_ready(ns, ["web-0"])
    assert sbx.read_in_pod(ns, "web-0") == "web-0\n", "the kept ordinal's data"
    assert_no_leak(sbx, ns, ["www-web-0"])


def test_ordered_release_on_set_deletion(sbx, ns):
    rec = up(sbx, ns, 3, ("Delete", "Retain"))
    pvs = bound_pvs(sbx, ns)
    m = rec.mark()
    sbx.k(ns, "delete", "sts", "web")
    group = {(i, pvs[i][0]) for i in (0, 1, 2)}
    tl = wait_released(rec, ns, group, m)
    assert tl.violations(group) == []
    order = [k[0] for k in sorted(group, key=lambda k: tl.deleted[k])]
    assert order == [2, 1, 0], "stores deleted highest ordinal first: %r" % order
    assert_no_leak(sbx, ns, [])


def test_race_scale_down_then_up_before_release_finished(sbx, ns):
    rec = up(sbx, ns, 4, ("Retain", "Delete"))
    pvs = bound_pvs(sbx, ns)
    m = rec.mark()
    sbx.k(ns, "scale", "sts", "web", "--replicas=1")
    # the first release approved (ordinal 3's): scale back up while 2 and 1 are still to go
    rec.wait(lambda r: PvTimeline(r, ns, m).approved, e2e.WAIT, "a release approved")
    sbx.k(ns, "scale", "sts", "web", "--replicas=4")
    names = ["web-%d" % i for i in range(4)]
    sbx.wait_ready(ns, names, timeout=e2e.WAIT * 2)
    tl = PvTimeline(rec, ns, m)
    old = {(i, pvs[i][0]) for i in (1, 2, 3)}
    released = {k for k in old if k in tl.approved or k in tl.deleted}
    assert tl.violations(old) == []
    assert (3, pvs[3][0]) in released
    # every old PV is either released (and gone) or still the one its claim is Bound to (the
    # release never reached it: the claim was not deleted yet when the set grew again)
    now = bound_pvs(sbx, ns)
    for k in old:
        if k not in released and now[k[0]][0] != k[1]:
            # its claim was made again, so its old PV was released: the recorder's watch may
            # not have shown that yet when the timeline was read (seen once)
            rec.wait(lambda r: k in PvTimeline(r, ns, m).approved or
                     k in PvTimeline(r, ns, m).deleted, e2e.WAIT, "%s released" % (k,))
            released.add(k)
    for k in old:
        if k in released:
            rec.wait(lambda r: k in PvTimeline(r, ns, m).deleted, e2e.WAIT, "%s deleted" % (k,))
            assert now[k[0]][0] != k[1], "a released PV is not bound again"
        else:
            assert now[k[0]][0] == k[1], "ordinal %d kept its PV" % k[0]
    assert PvTimeline(rec, ns, m).violations(old) == []
    assert now[0] == pvs[0], "ordinal 0 untouched"
    assert sbx.read_in_pod(ns, "web-0") == "web-0\n"
    for i in (1, 2, 3):
        want = "web-%d\n" % i if (i, pvs[i][0]) not in released else ""
        assert sbx.read_in_pod(ns, "web-%d" % i) == want, \
            "ordinal %d: its data kept when not released, an empty volume when released" % i
    assert_no_leak(sbx, ns, ["www-" + n for n in names])


def leader(sbx):
    for lease in sbx.client.list("leases", ns=CTRL_NS)["items"]:
        h = (lease.get("spec") or {}).get("holderIdentity")
        if h:
            return h, lease
    return None, None


def controller_pid(sbx, pod):
    for c in sbx.state().get("controllers") or []:
        if c.get("pod") == pod or c.get("name") == pod:
            return c["pid"]
    return None


def fault(sbx, **spec):
    sbx.client.call("POST", "/_fault", spec)


@pytest.mark.parametrize("failover", [False, True], ids=["kill9", "failover"])
def test_race_leader_killed_mid_release(sbx, ns, failover):
    """Mid-release made deterministic: PV deletions are refused (500) by the API server, so
    ordinal 3's store is deleted by its node plugin but its PV stays (approved, in progress);
    then the leader is killed -9 and only once a controller leads again (restarted under the
    same identity, or, failover, another identity) are PV deletions let through. Ordinals 2 and
    1 must then be approved by the new leader, each only after the higher PV is gone."""
    rec = up(sbx, ns, 4, ("Retain", "Delete"))
    pvs = bound_pvs(sbx, ns)
    holder, lease = wait_for(lambda: (lambda h: h if h[0] else None)(leader(sbx)), timeout=30,
                             what="a controller leads")
    pid = controller_pid(sbx, holder)
    assert pid, "the leader %s's process in the sandbox state: %r" % (
        holder, sbx.state().get("controllers"))
    transitions = lease["spec"].get("leaseTransitions", 0)
    group = {(i, pvs[i][0]) for i in (1, 2, 3)}
    m = rec.mark()
    fault(sbx, error_rate=100, error_code=500, match="/persistentvolumes/", methods=["DELETE"])
    try:
        sbx.k(ns, "scale", "sts", "web", "--replicas=1")
        rec.wait(lambda r: (3, pvs[3][0]) in PvTimeline(r, ns, m).approved, e2e.WAIT * 2,
                 "ordinal 3's release approved")
        wait_for(lambda: "www-web-3" not in sbx.stores(ns), timeout=e2e.WAIT,
                 what="ordinal 3's store deleted by its node plugin")
        tl = PvTimeline(rec, ns, m)
        assert set(tl.approved) == {(3, pvs[3][0])} and not tl.deleted, \
            "only ordinal 3 approved, its PV still there: %r %r" % (tl.approved, tl.deleted)
        os.kill(pid, signal.SIGKILL)
        killed = rec.mark()
        if failover:
            # no restart under the same identity: the pod goes, another identity takes over
            sbx.k(CTRL_NS, "delete", "pod", holder, "--grace-period=0", "--force")
            wait_for(lambda: (lambda h: h[0] and h[0] != holder)(leader(sbx)), timeout=60,
                     what="another controller leads (was %s)" % holder)
        else:
            wait_for(lambda: (lambda p: p and p != pid)(controller_pid(sbx, holder)),
                     timeout=60, what="controller %s restarted" % holder)
            # it leads again once it renewed the Lease after its restart
            old_renew = leader(sbx)[1]["spec"].get("renewTime")
            wait_for(lambda: leader(sbx)[1]["spec"].get("renewTime") != old_renew, timeout=60,
                     what="the Lease renewed after the restart")
        tl = PvTimeline(rec, ns, m)
        assert set(tl.approved) == {(3, pvs[3][0])}, \
            "nothing more approved while ordinal 3's PV is there: %r" % tl.approved
    finally:
        fault(sbx, reset=True)
    tl = wait_released(rec, ns, group, m, timeout=e2e.WAIT * 3)
    assert tl.violations(group) == []
    order = [k[0] for k in sorted(group, key=lambda k: tl.deleted[k])]
    assert order == [3, 2, 1], "stores deleted highest ordinal first: %r" % order
    assert all(tl.approved[k] > killed for k in group if k[0] < 3), \
        "ordinals 2 and 1 approved after the kill, by the new leader"
    h2, lease2 = leader(sbx)
    if failover:
        assert h2 != holder and lease2["spec"].get("leaseTransitions", 0) > transitions
    sbx.wait_ready(ns, ["web-0"])
    assert sbx.read_in_pod(ns, "web-0") == "web-0\n", "the kept ordinal's data"
    assert_no_leak(sbx, ns, ["www-web-0"])


# ---- the inventory's usage figures (this module's sandbox serves them too) ----

def ov_of(sbx, key):
    ovs = json.loads(sbx.kubectl("get", "ordinalvolumes", "-o", "json").stdout)["items"]
    return next((o for o in ovs if (o.get("spec") or {}).get("key") == key), None)


def rfc3339_secs(ts):
    import calendar
    import time as _t
    return calendar.timegm(_t.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def test_inventory_used_bytes_and_last_used(sbx, ns):
    """usedBytes comes from the store (the directory backend: project quota numbers, else a
    walk of the tree) and lastUsedAt from the node plugin's own NodePublish/NodeUnpublish; an
    unpublish brings both up to date at once (no period to wait), off the provisioning path."""
    import time
    key = ns + "/www-web-0"
    t_start = int(time.time())
    sbx.apply(ns, service(), web(replicas=1))
    sbx.wait_ready(ns, ["web-0"])
    published = wait_for(lambda: (lambda o: o if o and (o.get("status") or {}).get(
        "lastUsedAt") else None)(ov_of(sbx, key)), timeout=e2e.WAIT, what="lastUsedAt of " + key)
    assert rfc3339_secs(published["status"]["lastUsedAt"]) >= t_start, "the publish's time"
    base = published["status"].get("usedBytes", 0)
    assert base < 1 << 20, "a new volume uses next to nothing: %r" % base
    sbx.exec(ns, "web-0", "dd if=/dev/zero of=%s/blob bs=1048576 count=3 2>/dev/null && sync"
             % e2e.HTML)
    time.sleep(1.1)  # lastUsedAt has whole seconds: the unpublish must be a later second
    t_stop = int(time.time())
    sbx.k(ns, "scale", "sts", "web", "--replicas=0")
    sbx.wait_ready(ns, [])

    def updated():
        o = ov_of(sbx, key)
        st = (o or {}).get("status") or {}
        if not st.get("lastUsedAt") or rfc3339_secs(st["lastUsedAt"]) < t_stop or \
                st.get("usedBytes", 0) < 3 << 20:
            return None
        return o
    # well within the inventory's 30 s period: the unpublish itself updated it
    o = wait_for(updated, timeout=15, what="usedBytes >= 3 MiB and lastUsedAt of the unpublish")
    assert o["status"]["usedBytes"] < 4 << 20
    assert o["status"]["state"] == "Bound"
    # the printer columns: Used (priority 0) and Last-Used (-o wide)
    out = sbx.kubectl("get", "ov", o["metadata"]["name"]).stdout.splitlines()
    hdr = out[0].split()
    assert "USED" in hdr, out
    assert out[1].split()[hdr.index("USED")] == str(o["status"]["usedBytes"]), out
    wide = sbx.kubectl("get", "ov", o["metadata"]["name"], "-o", "wide").stdout.splitlines()
    assert "LAST-USED" in wide[0].split(), wide


def test_store_never_deleted_while_mounted(sbx, ns):
    """The controller approves a release once the PV is Released (its claim is gone, which
    pvc-protection allows only once no running pod uses it); the last word is the node
    plugin's: DeleteVolume refuses (EBUSY) while the store's data is mounted anywhere in the
    node's mount table, and the release stays in progress, holding the lower ordinals back.
    Here ordinal 2's data is bind-mounted by hand (a kubelet that has not unmounted yet) before
    a Parallel scale-down 3 -> 1 with whenScaled Delete."""
    import subprocess
    rec = up(sbx, ns, 3, ("Retain", "Delete"))
    pvs = bound_pvs(sbx, ns)
    node = sbx.stores(ns)["www-web-2"]
    root = next(n["root"] for n in sbx.state()["nodes"] if n["name"] == node)
    data = os.path.join(root, ns, "www-web-2", "data")
    # inside the node's kubelet tree, where kubelet's own mounts are: the node plugin's
    # container sees mounts there (Bidirectional propagation of /var/lib/kubelet, as deploy/
    # asks for); a mount in some other host mount namespace or tree it cannot see, in a real
    # cluster as here
    target = os.path.join(sbx.dir, "nodes", node, "kubelet", "var", "lib", "kubelet",
                          "held-" + ns[-6:])
    os.makedirs(target)
    log = os.path.join(sbx.dir, "logs", "ordinal-csi-%s.log" % node)
    subprocess.run(["mount", "--bind", data, target], check=True)
    mounted = True
    try:
        m = rec.mark()
        sbx.k(ns, "scale", "sts", "web", "--replicas=1")
        rec.wait(lambda r: (2, pvs[2][0]) in PvTimeline(r, ns, m).approved, e2e.WAIT,
                 "ordinal 2's release approved")
        # the node plugin tried and was refused: its log says so (an observable, not a sleep)
        wait_for(lambda: any(pvs[2][0] in ln and "released: DeleteVolume" in ln
                             for ln in open(log, errors="replace")),
                 timeout=e2e.WAIT, what="DeleteVolume of %s refused in %s" % (pvs[2][0], log))
        assert os.path.exists(os.path.join(data, "index.html")), "the mounted store is whole"
        with open(os.path.join(target, "index.html")) as f:
            assert f.read() == "web-2\n"
        tl = PvTimeline(rec, ns, m)
        assert set(tl.approved) == {(2, pvs[2][0])} and not tl.deleted, \
            "ordinal 1 waits while 2's store is mounted: %r %r" % (tl.approved, tl.deleted)
        subprocess.run(["umount", target], check=True)
        mounted = False
        group = {(i, pvs[i][0]) for i in (1, 2)}
        tl = wait_released(rec, ns, group, m, timeout=e2e.WAIT * 3)
        assert tl.violations(group) == []
        assert [k[0] for k in sorted(group, key=lambda k: tl.deleted[k])] == [2, 1]
    finally:
        if mounted:
            subprocess.run(["umount", "-l", target])
        os.rmdir(target)
    assert_no_leak(sbx, ns, ["www-web-0"])


def test_claim_deleted_while_its_pod_terminates(sbx, ns):
    """A claim deleted by hand while its pod is still terminating (its container ignores
    SIGTERM, so the kubelet holds the volume mounted until the grace period's SIGKILL): the
    claim goes only once the pod is gone (pvc-protection), the release is approved and the
    store deleted only after that; the ordinal comes back with a new claim and an empty volume,
    the other ordinals keep their data, nothing leaks."""
    rec = sbx.record(ns)
    sts = ordered_web(3, ("Retain", "Retain"))
    pod = sts["spec"]["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = 4
    pod["containers"][0]["command"] = ["sh", "-c", "trap '' TERM; while :; do sleep 0.2; done"]
    sbx.apply(ns, service(), sts)
    names = ["web-0", "web-1", "web-2"]
    sbx.wait_ready(ns, names)
    sbx.write_hostnames(ns, names)
    pvs = bound_pvs(sbx, ns)
    m = rec.mark()
    sbx.k(ns, "delete", "pod", "web-2", "--wait=false")
    rec.need(lambda r: r.stopping("web-2", m), what="web-2 terminating")
    sbx.k(ns, "delete", "pvc", "www-web-2", "--wait=false")
    old = (2, pvs[2][0])
    pod_gone, claim_gone = rec.need(lambda r: r.gone("pods", "web-2", m),
                                    lambda r: r.gone("persistentvolumeclaims", "www-web-2", m),
                                    timeout=e2e.WAIT, what="web-2 and www-web-2 gone")
    tl = wait_released(rec, ns, {old}, m)
    claim_deleting = rec.first("persistentvolumeclaims", "www-web-2", lambda t, o: bool(
        o["metadata"].get("deletionTimestamp")) or t == "DELETED", m)
    assert claim_deleting < pod_gone, \
        "the claim's deletion did not start while the pod was terminating: nothing was tested"
    assert pod_gone < claim_gone, "the claim went while its pod still existed"
    assert claim_gone < tl.approved[old] < tl.deleted[old], \
        "release approved (rv %s) or store deleted (rv %s) before the claim was gone (rv %s)" % (
            tl.approved.get(old), tl.deleted.get(old), claim_gone)
    sbx.wait_ready(ns, names, timeout=e2e.WAIT * 2)
    now = bound_pvs(sbx, ns)
    assert now[2][0] != old[1], "the new claim got a new volume"
    assert now[0] == pvs[0] and now[1] == pvs[1], "the other ordinals kept their volumes"
    assert sbx.read_in_pod(ns, "web-2") == "", "a new, empty volume"
    assert sbx.read_in_pod(ns, "web-0") == "web-0\n"
    assert sbx.read_in_pod(ns, "web-1") == "web-1\n"
    assert_no_leak(sbx, ns, ["www-" + n for n in names])
