"""The StatefulSet controller (deploy/sandbox/statefulset.py) against reference/kubernetes.md
section 3, through the API server with every controller (no kubelets: the tests report pods
Running and Ready through the status subresource, as a kubelet would). Order is asserted from
watch events and resourceVersions; "nothing more happened" is asserted after a fence (the
controller's observedGeneration catching up with a spec change), never after a sleep."""

import time

import pytest

from sbxlib import AutoReady, ApiError, bump, sts, synced, wait_for, wait_ready

POD_NAME = "statefulset.kubernetes.io/pod-name"
POD_INDEX = "apps.kubernetes.io/pod-index"
REV = "controller-revision-hash"


def claim_watch(cluster):
    lst = cluster.client.list("persistentvolumeclaims")
    return cluster.client.watch("persistentvolumeclaims",
                                resourceVersion=lst["metadata"]["resourceVersion"], timeout=60)


def test_ordered_start_claims_first_labels_and_events(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    kube.hold.update({"web-0", "web-1", "web-2"})
    cw = claim_watch(cluster)
    c.create("statefulsets", sts("web", 3))
    ready_rv = {}
    for i in range(3):
        kube.wait(lambda s, i=i: "web-%d" % i in [e[1] for e in s if e[0] == "ADDED"],
                  what="web-%d created" % i)
        # web-i+1 never appears before web-i is Running and Ready.
        assert kube.added() == ["web-%d" % j for j in range(i + 1)]
        if i:
            added = [e for e in kube.seen if e[0] == "ADDED" and e[1] == "web-%d" % i][0]
            assert added[2] > ready_rv[i - 1], "web-%d created before web-%d was Ready" % (
                i, i - 1)
        if i == 0:
            # Stops at the first unhealthy pod: with web-0 not Ready, a fresh sync (fence)
            # still creates nothing more.
            bump(cluster)
            assert sorted(cluster.pods()) == ["web-0"]
        ready_rv[i] = int(cluster.run_pod("web-%d" % i)["metadata"]["resourceVersion"])
    s = wait_ready(cluster)
    claims = {}
    for ev in cw.events(3):
        assert ev["type"] == "ADDED"
        claims[ev["object"]["metadata"]["name"]] = int(ev["object"]["metadata"][
            "resourceVersion"])
    cw.close()
    pods = cluster.pods()
    for i in range(3):
        pod, claim = pods["web-%d" % i], "www-web-%d" % i
        added = [e for e in kube.seen if e[0] == "ADDED" and e[1] == pod["metadata"]["name"]]
        assert claims[claim] < added[0][2], "claim created before its pod"
        lab = pod["metadata"]["labels"]
        assert lab[POD_NAME] == "web-%d" % i and lab[POD_INDEX] == str(i)
        assert lab[REV] == s["status"]["updateRevision"] and lab["app"] == "web"
        assert pod["spec"]["hostname"] == "web-%d" % i and pod["spec"]["subdomain"] == "nginx"
        assert pod["metadata"]["generateName"] == "web-"
        assert pod["spec"]["volumes"][0] == {"name": "www", "persistentVolumeClaim": {
            "claimName": claim}}
        ref = pod["metadata"]["ownerReferences"]
        assert ref == [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                        "uid": s["metadata"]["uid"], "controller": True,
                        "blockOwnerDeletion": True}]
        pvc = c.get("persistentvolumeclaims", claim)
        assert pvc["metadata"]["labels"] == {"app": "web"}
        assert "ownerReferences" not in pvc["metadata"], "Retain/Retain: no owner"
    st = s["status"]
    assert st["replicas"] == 3 and st["readyReplicas"] == 3 and st["availableReplicas"] == 3
    assert st["currentReplicas"] == 3 and st["updatedReplicas"] == 3
    assert st["currentRevision"] == st["updateRevision"].strip()
    assert st["updateRevision"].startswith("web-")
    revs = c.list("controllerrevisions")["items"]
    assert [r["metadata"]["name"] for r in revs] == [st["updateRevision"]]
    assert revs[0]["revision"] == 1 and revs[0]["metadata"]["ownerReferences"][0]["uid"] == \
        s["metadata"]["uid"]
    msgs = [(e["reason"], e["message"]) for e in cluster.events()
            if e["involvedObject"]["name"] == "web"]
    assert ("SuccessfulCreate", "create Claim www-web-0 Pod web-0 in StatefulSet web success") \
        in msgs
    assert ("SuccessfulCreate", "create Pod web-0 in StatefulSet web successful") in msgs
    src = {e["source"]["component"] for e in cluster.events()
           if e["involvedObject"]["name"] == "web"}
    assert src == {"statefulset-controller"}
    kube.close()


def test_ordered_stop_highest_first_each_after_the_previous_is_gone(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 3))
    wait_ready(cluster)
    # web-2 keeps a finalizer, as a pod whose kubelet is still stopping it would stay.
    c.patch("pods", "web-2", {"metadata": {"finalizers": ["test/stopping"]}})
    c.patch("statefulsets", "web", {"spec": {"replicas": 0}})
    kube.wait(lambda s: any(e[1] == "web-2" and e[4] for e in s), what="web-2 terminating")
    bump(cluster)
    assert kube.deleted() == [] and not c.get("pods", "web-1")["metadata"].get(
        "deletionTimestamp"), "web-1 must wait until web-2 is gone"
    c.patch("pods", "web-2", {"metadata": {"finalizers": None}})
    kube.wait(lambda s: len([e for e in s if e[0] == "DELETED"]) == 3, what="all gone")
    assert kube.deleted() == ["web-2", "web-1", "web-0"]
    gone = {e[1]: e[2] for e in kube.seen if e[0] == "DELETED"}
    deleting = {}
    for e in kube.seen:
        if e[4] or e[0] == "DELETED":
            deleting.setdefault(e[1], e[2])
    assert deleting["web-1"] > gone["web-2"] and deleting["web-0"] > gone["web-1"]
    # the pods' DELETED events bring the status down (it follows the pods, eventually)
    wait_for(lambda: (c.get("statefulsets", "web")["status"].get("replicas"),
                      c.get("statefulsets", "web")["status"].get("readyReplicas", 0)) == (0, 0),
             what="status replicas 0")
    kube.close()


def test_parallel_creates_all_without_waiting(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    kube.hold.update({"web-%d" % i for i in range(4)})
    c.create("statefulsets", sts("web", 4, pmp="Parallel"))
    kube.wait(lambda s: len([e for e in s if e[0] == "ADDED"]) == 4, what="4 pods")
    assert sorted(kube.added()) == ["web-0", "web-1", "web-2", "web-3"]
    assert all(p["status"]["phase"] == "Pending" for p in cluster.pods().values())
    for i in range(4):
        kube.ready("web-%d" % i)
    wait_ready(cluster, n=4)
    # Scale down in parallel too: all condemned pods go at once.
    c.patch("pods", "web-3", {"metadata": {"finalizers": ["test/stopping"]}})
    c.patch("statefulsets", "web", {"spec": {"replicas": 1}})
    kube.wait(lambda s: sorted(e[1] for e in s if e[0] == "DELETED") == ["web-1", "web-2"],
              what="web-1, web-2 deleted while web-3 still terminates")
    c.patch("pods", "web-3", {"metadata": {"finalizers": None}})
    kube.close()


def test_scale_down_and_up_keeps_claims(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 3))
    wait_ready(cluster)
    uids = {n: p["metadata"]["uid"] for n, p in cluster.claims().items()}
    c.patch("statefulsets", "web", {"spec": {"replicas": 1}}, sub="scale")
    wait_ready(cluster, n=1)
    assert sorted(cluster.pods()) == ["web-0"]
    assert kube.deleted() == ["web-2", "web-1"]
    assert {n: p["metadata"]["uid"] for n, p in cluster.claims().items()} == uids
    c.patch("statefulsets", "web", {"spec": {"replicas": 3}}, sub="scale")
    wait_ready(cluster)
    assert {n: p["metadata"]["uid"] for n, p in cluster.claims().items()} == uids
    kube.close()


def _template_image(cluster, image):
    cluster.client.patch("statefulsets", "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "nginx", "image": image}]}}}}, ptype="strategic")


def test_rolling_update_with_partition(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 3, strategy={"type": "RollingUpdate",
                                                     "rollingUpdate": {"partition": 2}}))
    s0 = wait_ready(cluster)
    old = s0["status"]["currentRevision"]
    uids = {n: p["metadata"]["uid"] for n, p in cluster.pods().items()}
    _template_image(cluster, "nginx:1.28")
    def only_web2():
        s = c.get("statefulsets", "web")
        st = s.get("status") or {}
        return st.get("updatedReplicas") == 1 and st.get("readyReplicas") == 3 and s
    s1 = wait_for(only_web2, timeout=20, what="web-2 updated")
    new = s1["status"]["updateRevision"]
    assert new != old and s1["status"]["currentRevision"] == old
    pods = cluster.pods()
    assert pods["web-2"]["metadata"]["labels"][REV] == new
    assert pods["web-2"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    for n in ("web-0", "web-1"):
        assert pods[n]["metadata"]["uid"] == uids[n]
        assert pods[n]["metadata"]["labels"][REV] == old
    # A pod below the partition deleted by hand comes back at the current revision.
    c.delete("pods", "web-0")
    wait_for(lambda: c.get("pods", "web-0")["metadata"]["uid"] != uids["web-0"] and
             c.get("statefulsets", "web")["status"].get("readyReplicas") == 3)
    assert c.get("pods", "web-0")["metadata"]["labels"][REV] == old
    mark = len(kube.seen)
    c.patch("statefulsets", "web", {"spec": {"updateStrategy": {"rollingUpdate": {
        "partition": 0}}}})
    s2 = wait_ready(cluster)
    assert s2["status"]["currentRevision"] == new and s2["status"]["updatedReplicas"] == 3
    order = [e[1] for e in kube.seen[mark:] if e[0] == "DELETED"]
    assert order == ["web-1", "web-0"], "highest ordinal first, one at a time"
    # each replacement waited for the previous one to be Running and Ready
    ev = kube.seen[mark:]
    ready1 = [e[2] for e in ev if e[1] == "web-1" and e[5] == "Running" and e[0] == "MODIFIED"]
    del0 = [e[2] for e in ev if e[1] == "web-0" and e[0] == "DELETED"]
    assert ready1 and del0 and del0[0] > ready1[0]
    revs = sorted(c.list("controllerrevisions")["items"], key=lambda r: r["revision"])
    assert [r["metadata"]["name"] for r in revs] == [old, new]
    assert [r["revision"] for r in revs] == [1, 2]
    # Rolling back to the first template brings revision 1 forward as revision 3.
    _template_image(cluster, "nginx:1.27")
    s3 = wait_ready(cluster)
    assert s3["status"]["updateRevision"] == old
    assert {r["metadata"]["name"]: r["revision"] for r in c.list("controllerrevisions")[
        "items"]} == {old: 3, new: 2}
    kube.close()


def test_on_delete_replaces_only_deleted_pods(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 3, strategy={"type": "OnDelete"}))
    s0 = wait_ready(cluster)
    old = s0["status"]["currentRevision"]
    uids = {n: p["metadata"]["uid"] for n, p in cluster.pods().items()}
    _template_image(cluster, "nginx:1.28")
    s1 = synced(cluster)
    new = s1["status"]["updateRevision"]
    assert new != old and s1["status"]["currentRevision"] == old
    assert {n: p["metadata"]["uid"] for n, p in cluster.pods().items()} == uids
    assert kube.deleted() == []
    c.delete("pods", "web-1")
    wait_for(lambda: c.get("pods", "web-1")["metadata"]["uid"] != uids["web-1"])
    pods = cluster.pods()
    assert pods["web-1"]["metadata"]["labels"][REV] == new
    assert pods["web-0"]["metadata"]["labels"][REV] == old
    st = wait_for(lambda: c.get("statefulsets", "web")["status"].get("updatedReplicas") == 1
                  and c.get("statefulsets", "web")["status"])
    assert st["currentRevision"] == old, "OnDelete never completes a rollout by itself"
    kube.close()


POLICIES = [("Retain", "Retain"), ("Retain", "Delete"), ("Delete", "Retain"),
            ("Delete", "Delete")]


def _refs(claim):
    return sorted((r["kind"], r["name"], r.get("controller"), r.get("blockOwnerDeletion"))
                  for r in claim["metadata"].get("ownerReferences") or [])


@pytest.mark.parametrize("scaled,deleted", POLICIES)
def test_retention_policy_table(cluster, scaled, deleted):
    """Every cell of reference section 3.5: in range, condemned (scale down), set deletion."""
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 3, policy=(scaled, deleted)))
    wait_ready(cluster)
    in_range = [("StatefulSet", "web", True, True)] if deleted == "Delete" else []
    for n, claim in cluster.claims().items():
        assert _refs(claim) == in_range, (n, claim["metadata"].get("ownerReferences"))
    cw = claim_watch(cluster)
    c.patch("statefulsets", "web", {"spec": {"replicas": 1}})
    wait_ready(cluster, n=1)
    if scaled == "Delete":
        # The condemned pods' claims got a ref to their pod (only) before the pod was
        # deleted, and the garbage collector deleted them after the pod was gone.
        gone = {}
        while len(gone) < 2:
            ev = cw.next_event(10)
            if ev["type"] == "DELETED":
                gone[ev["object"]["metadata"]["name"]] = ev["object"]
        assert sorted(gone) == ["www-web-1", "www-web-2"]
        for n, obj in gone.items():
            assert _refs(obj) == [("Pod", n[4:], True, True)], obj["metadata"]
        wait_for(lambda: sorted(cluster.claims()) == ["www-web-0"])
    else:
        bump(cluster)
        claims = cluster.claims()
        assert sorted(claims) == ["www-web-0", "www-web-1", "www-web-2"]
        for n in ("www-web-1", "www-web-2"):
            assert _refs(claims[n]) == in_range
    cw.close()
    assert _refs(cluster.claims()["www-web-0"]) == in_range
    c.delete("statefulsets", "web")
    wait_for(lambda: not cluster.pods(), what="pods collected")
    if deleted == "Delete":
        wait_for(lambda: "www-web-0" not in cluster.claims(), what="claim collected")
    else:
        c.create("configmaps", {"metadata": {"name": "fence"}})
        wait_for(lambda: not cluster.pods())
        assert "www-web-0" in cluster.claims()
    kube.close()


def test_stale_claim_blocks_quick_scale_up(cluster):
    """whenScaled Delete: scaled back up while the old claim is still being deleted, the pod
    waits for the old claim to go and then gets a fresh one (never the condemned data)."""
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 2, policy=("Delete", "Retain")))
    wait_ready(cluster, n=2)
    old_uid = c.get("persistentvolumeclaims", "www-web-1")["metadata"]["uid"]
    c.patch("persistentvolumeclaims", "www-web-1", {"metadata": {"finalizers": [
        "kubernetes.io/pvc-protection", "test/hold"]}})
    c.patch("statefulsets", "web", {"spec": {"replicas": 1}})
    wait_for(lambda: c.get("persistentvolumeclaims", "www-web-1")["metadata"].get(
        "deletionTimestamp"), what="old claim deleting")
    c.patch("statefulsets", "web", {"spec": {"replicas": 2}})
    synced(cluster)
    assert "web-1" not in cluster.pods(), "no pod on a claim that is being deleted"
    c.patch("persistentvolumeclaims", "www-web-1", {"metadata": {"finalizers": None}})
    wait_ready(cluster, n=2)
    fresh = c.get("persistentvolumeclaims", "www-web-1")
    assert fresh["metadata"]["uid"] != old_uid and not fresh["metadata"].get("ownerReferences")
    kube.close()


def test_conflicting_controller_on_a_claim(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    owner = c.create("configmaps", {"metadata": {"name": "other-controller"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other-controller",
           "uid": owner["metadata"]["uid"], "controller": True}
    c.create("persistentvolumeclaims", {"metadata": {"name": "www-web-0", "labels": {
        "app": "web"}, "ownerReferences": [ref]}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
        "resources": {"requests": {"storage": "1Gi"}}}})
    c.create("statefulsets", sts("web", 1, policy=("Delete", "Delete")))
    wait_ready(cluster, n=1)
    wait_for(lambda: [e for e in cluster.events("ConflictingController")])
    e = cluster.events("ConflictingController")[0]
    assert e["type"] == "Warning" and e["message"] == (
        "PersistentVolumeClaim www-web-0 has a conflicting OwnerReference that acts as a "
        "manging controller, the retention policy is ignored for this claim")
    assert c.get("persistentvolumeclaims", "www-web-0")["metadata"]["ownerReferences"] == [ref]
    kube.close()


def test_ordinals_start(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 2, start=5))
    wait_ready(cluster, n=2)
    pods = cluster.pods()
    assert sorted(pods) == ["web-5", "web-6"]
    assert pods["web-5"]["metadata"]["labels"][POD_INDEX] == "5"
    assert sorted(cluster.claims()) == ["www-web-5", "www-web-6"]
    c.patch("statefulsets", "web", {"spec": {"ordinals": {"start": 6}}})
    wait_for(lambda: sorted(cluster.pods()) == ["web-6", "web-7"], what="range moved")
    wait_ready(cluster, n=2)
    assert "web-5" in kube.deleted()
    assert sorted(cluster.claims()) == ["www-web-5", "www-web-6", "www-web-7"]
    kube.close()


def test_min_ready_seconds(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 2, min_ready=2))
    kube.wait(lambda s: any(e[1] == "web-0" and e[5] == "Running" for e in s))
    t0 = time.time()
    st = wait_for(lambda: (c.get("statefulsets", "web").get("status") or {}).get(
        "readyReplicas") == 1 and c.get("statefulsets", "web")["status"])
    assert st["availableReplicas"] == 0, "Ready but not yet Available"
    kube.wait(lambda s: "web-1" in [e[1] for e in s if e[0] == "ADDED"], timeout=10)
    # web-0's Ready time has second resolution: at least 1 s of the 2 have passed.
    assert time.time() - t0 >= 1.0, "web-1 created before web-0 was Available"
    wait_for(lambda: c.get("statefulsets", "web")["status"].get("availableReplicas") == 2,
             timeout=10)
    kube.close()


def test_failed_pod_is_recreated(cluster):
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 1))
    wait_ready(cluster, n=1)
    uid = c.get("pods", "web-0")["metadata"]["uid"]
    cluster.fail_pod("web-0")
    wait_for(lambda: c.get("pods", "web-0")["metadata"]["uid"] != uid)
    e = cluster.events("RecreatingFailedPod")[0]
    assert e["type"] == "Warning" and \
        e["message"] == "StatefulSet default/web is recreating failed Pod web-0"
    kube.close()


def test_finished_pod_being_deleted_is_not_deleted_again(cluster):
    """A pod being deleted turns Succeeded/Failed when its kubelet stops its containers, before
    it unmounts its volumes. The controller (v1.32 processReplica) leaves such a pod alone and
    makes its replacement only once it is gone: deleting it again would remove it at once (a
    finished pod's grace period is 0) with its volumes still mounted. A finalizer stands in for
    the kubelet that has not finished."""
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 1))
    wait_ready(cluster, n=1)
    uid = c.get("pods", "web-0")["metadata"]["uid"]
    c.patch("pods", "web-0", {"metadata": {"finalizers": ["test/unmounting"]}})
    c.delete("pods", "web-0")
    cluster.fail_pod("web-0")
    cluster.srv.controllers_caught_up()
    p = c.get("pods", "web-0")
    assert p["metadata"]["uid"] == uid and p["metadata"].get("deletionTimestamp")
    assert not cluster.events("RecreatingFailedPod"), "a pod being deleted deleted again"
    c.patch("pods", "web-0", {"metadata": {"finalizers": None}})
    wait_for(lambda: (lambda q: q and q["metadata"]["uid"] != uid)(
        cluster.pods().get("web-0")), what="a new web-0 once the old one is gone")
    wait_ready(cluster, n=1)
    kube.close()


def _refused(c, obj):
    with pytest.raises(ApiError) as ei:
        c.create("statefulsets", obj)
    assert ei.value.status == 422 and ei.value.reason == "Invalid"
    return ei.value.body["message"]


def test_invalid_statefulsets_refused_with_the_real_messages(cluster):
    c = cluster.client
    bad = sts("web")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert _refused(c, bad) == (
        'StatefulSet.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"web"}: `selector` does not match template `labels`')
    bad = sts("web")
    del bad["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"]
    assert _refused(c, bad) == (
        'StatefulSet.apps "web" is invalid: spec.volumeClaimTemplates[0].spec.accessModes: '
        'Required value: at least 1 access mode is required')
    bad = sts("web")
    del bad["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]
    assert _refused(c, bad).endswith(
        "spec.volumeClaimTemplates[0].spec.resources[storage]: Required value")
    long_name = "w" * 254
    msg = _refused(c, sts(long_name))
    assert msg == 'StatefulSet.apps "%s" is invalid: metadata.name: Invalid value: "%s": must ' \
        'be no more than 253 characters' % (long_name, long_name)
    bad = sts("web", replicas=-1)
    assert _refused(c, bad) == ('StatefulSet.apps "web" is invalid: spec.replicas: Invalid '
                                'value: -1: must be greater than or equal to 0')
    bad = sts("web", policy=("Sometimes", "Retain"))
    assert "spec.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: " \
        '"Sometimes": supported values: "Retain", "Delete"' in _refused(c, bad)
    bad = sts("web", pmp="Random")
    assert 'spec.podManagementPolicy: Unsupported value: "Random"' in _refused(c, bad)
    c.create("configmaps", {"metadata": {"name": "fence"}})
    assert c.list("statefulsets")["items"] == [] and c.list("pods")["items"] == []
    assert c.list("persistentvolumeclaims")["items"] == []


def test_long_name_pods_fail_as_in_kubernetes(cluster):
    """A 60-character set name is valid, but its revision label is not (63 characters at most):
    the pod is refused and the controller says so, as kube-controller-manager does."""
    c = cluster.client
    name = "a" * 60
    c.create("statefulsets", sts(name, 1))
    wait_for(lambda: cluster.events("FailedCreate"), what="FailedCreate event")
    e = cluster.events("FailedCreate")[0]
    assert e["type"] == "Warning"
    assert e["message"].startswith("create Pod %s-0 in StatefulSet %s failed error: " % (
        name, name)) and "must be no more than 63 characters" in e["message"]
    assert c.list("pods")["items"] == []


def test_scale_down_before_update(cluster):
    """"Scaling will take precedence over updates": the condemned pod goes first."""
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 3))
    wait_ready(cluster)
    mark = len(kube.seen)
    c.patch("statefulsets", "web", {"spec": {"replicas": 2, "template": {"spec": {
        "containers": [{"name": "nginx", "image": "nginx:1.28"}]}}}}, ptype="strategic")
    s = wait_ready(cluster, n=2)
    assert s["status"]["updatedReplicas"] == 2
    assert [e[1] for e in kube.seen[mark:] if e[0] == "DELETED"] == ["web-2", "web-1", "web-0"]
    kube.close()


def test_retention_policy_change_and_manual_pod_deletion(cluster):
    """Retain->Delete adds the set's refs, Delete->Retain removes them; a pod deleted by hand
    (not scaled down) keeps its claim whatever the policy."""
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 2))
    wait_ready(cluster, n=2)
    c.patch("statefulsets", "web", {"spec": {"persistentVolumeClaimRetentionPolicy": {
        "whenDeleted": "Delete", "whenScaled": "Delete"}}})
    wait_for(lambda: all(_refs(x) == [("StatefulSet", "web", True, True)]
                         for x in cluster.claims().values()), what="set refs added")
    uid = c.get("persistentvolumeclaims", "www-web-0")["metadata"]["uid"]
    pod_uid = c.get("pods", "web-0")["metadata"]["uid"]
    c.delete("pods", "web-0")
    wait_for(lambda: c.get("pods", "web-0")["metadata"]["uid"] != pod_uid and
             c.get("statefulsets", "web")["status"].get("readyReplicas") == 2)
    claim = c.get("persistentvolumeclaims", "www-web-0")
    assert claim["metadata"]["uid"] == uid and _refs(claim) == [
        ("StatefulSet", "web", True, True)]
    c.patch("statefulsets", "web", {"spec": {"persistentVolumeClaimRetentionPolicy": {
        "whenDeleted": "Retain", "whenScaled": "Retain"}}})
    wait_for(lambda: all(_refs(x) == [] for x in cluster.claims().values()),
             what="refs removed")
    kube.close()


def test_orphan_deletion_keeps_pods_and_claims(cluster):
    """--cascade=orphan: no claim is deleted even with whenDeleted Delete; the set's refs go."""
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 2, policy=("Retain", "Delete")))
    wait_ready(cluster, n=2)
    c.delete("statefulsets", "web", propagationPolicy="Orphan")
    wait_for(lambda: not c.exists("statefulsets", "web"))
    wait_for(lambda: all(not p["metadata"].get("ownerReferences")
                         for p in list(cluster.pods().values()) +
                         list(cluster.claims().values())), what="refs stripped")
    assert sorted(cluster.pods()) == ["web-0", "web-1"]
    assert sorted(cluster.claims()) == ["www-web-0", "www-web-1"]
    kube.close()


def test_recreated_set_adopts_orphaned_revisions(cluster):
    """A set deleted with --cascade=orphan and created again adopts its pods and its
    ControllerRevision (ClaimControllerRevisions): same revision, no pod replaced. A revision
    whose labels no longer match the selector is released."""
    c = cluster.client
    kube = AutoReady(cluster)
    c.create("statefulsets", sts("web", 2))
    old = wait_ready(cluster, n=2)
    rev = old["status"]["currentRevision"]
    uids = {k: v["metadata"]["uid"] for k, v in cluster.pods().items()}
    c.delete("statefulsets", "web", propagationPolicy="Orphan")
    wait_for(lambda: not c.exists("statefulsets", "web") and all(
        not o["metadata"].get("ownerReferences") for o in
        c.list("controllerrevisions")["items"]), what="revision orphaned")
    c.create("statefulsets", sts("web", 2))
    new = wait_ready(cluster, n=2)
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["status"]["currentRevision"] == new["status"]["updateRevision"] == rev
    assert {k: v["metadata"]["uid"] for k, v in cluster.pods().items()} == uids
    r = c.get("controllerrevisions", rev)
    assert [o["uid"] for o in r["metadata"]["ownerReferences"]] == [new["metadata"]["uid"]]
    # An orphan that does not match the selector is left alone.
    c.create("controllerrevisions", {"metadata": {"name": "other-1", "labels": {"app": "x"}},
                                     "data": {}, "revision": 1})
    r["metadata"]["labels"] = {"app": "moved"}
    c.update("controllerrevisions", r)
    bump(cluster)
    assert not c.get("controllerrevisions", rev)["metadata"].get("ownerReferences"), \
        "released once it stops matching"
    assert not c.get("controllerrevisions", "other-1")["metadata"].get("ownerReferences")
    kube.close()


def test_kubectl_get_scale_describe_rollout(cluster):
    import shutil
    from fakeapi import KUBECTL
    if not shutil.which(KUBECTL):
        pytest.skip("kubectl not installed")
    kube = AutoReady(cluster)
    cluster.client.create("statefulsets", sts("web", 3))
    wait_ready(cluster)
    k = cluster.kubectl
    out = k("get", "sts").stdout.split("\n")
    assert out[0].split() == ["NAME", "READY", "AGE"] and out[1].split()[:2] == ["web", "3/3"]
    out = k("get", "pods").stdout.split("\n")
    assert out[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [ln.split()[:4] for ln in out[1:4]] == [["web-%d" % i, "1/1", "Running", "0"]
                                                   for i in range(3)]
    k("rollout", "status", "sts/web", "--timeout=20s")
    assert "statefulset.apps/web scaled" in k("scale", "sts", "web", "--replicas=1").stdout
    wait_ready(cluster, n=1)
    desc = k("describe", "sts", "web").stdout
    assert "Replicas:           1 desired | 1 total" in desc
    assert "SuccessfulDelete" in desc and "delete Pod web-2 in StatefulSet web successful" in desc
    k("patch", "sts", "web", "-p", '{"spec":{"template":{"spec":{"containers":[{"name":'
      '"nginx","image":"nginx:1.28"}]}}}}')
    k("rollout", "status", "sts/web", "--timeout=20s")
    assert cluster.client.get("pods", "web-0")["spec"]["containers"][0]["image"] == "nginx:1.28"
    hist = k("rollout", "history", "sts/web").stdout
    assert "REVISION" in hist and "1" in hist and "2" in hist
    k("rollout", "undo", "sts/web")
    k("rollout", "status", "sts/web", "--timeout=20s")
    assert cluster.client.get("pods", "web-0")["spec"]["containers"][0]["image"] == "nginx:1.27"
    kube.close()


def test_non_controller_owner_is_upgraded_and_revisions_listed(cluster):
    """A claim with a plain (non-controller) ref to the set, as the beta wrote them, is upgraded
    to a controller ref (KEP-1847 upgrade); `kubectl get controllerrevisions` columns."""
    c = cluster.client
    kube = AutoReady(cluster)
    s = c.create("statefulsets", sts("web", 0, policy=("Retain", "Delete")))
    c.create("persistentvolumeclaims", {"metadata": {"name": "www-web-0", "labels": {
        "app": "web"}, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                            "name": "web", "uid": s["metadata"]["uid"]}]},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    c.patch("statefulsets", "web", {"spec": {"replicas": 1}})
    wait_ready(cluster, n=1)
    wait_for(lambda: _refs(c.get("persistentvolumeclaims", "www-web-0")) == [
        ("StatefulSet", "web", True, True)], what="ref upgraded to a controller ref")
    t = c.request("GET", "/apis/apps/v1/namespaces/default/controllerrevisions", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).body
    assert [col["name"] for col in t["columnDefinitions"]] == ["Name", "Controller", "Revision",
                                                                "Age"]
    assert t["rows"][0]["cells"][1:3] == ["statefulsets.apps/web", 1]
    kube.close()
