"""The scheduler (deploy/sandbox/scheduler.py): pods/binding, nodeName, nodeSelector, the node
affinity of bound PVs, WaitForFirstConsumer claims (selected-node, rescheduling), and
FailedScheduling with PodScheduled=False for pods that fit nowhere."""

from sbxlib import node, wait_for

SEL = "volume.kubernetes.io/selected-node"


def pod(name, claim=None, **spec):
    o = {"metadata": {"name": name}, "spec": dict(
        {"containers": [{"name": "c", "image": "busybox"}]}, **spec)}
    if claim:
        o["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return o


def claim(name, cls="ordinal"):
    return {"metadata": {"name": name}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
        "resources": {"requests": {"storage": "1Gi"}}}}


def sc(name="ordinal", mode="WaitForFirstConsumer"):
    return {"metadata": {"name": name}, "provisioner": "ordinal.csi.dev",
            "volumeBindingMode": mode}


def pv_for(c, pvc, node_name):
    md = pvc["metadata"]
    return c.create("persistentvolumes", {"metadata": {"name": "pv-" + md["name"]}, "spec": {
        "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
        "storageClassName": pvc["spec"]["storageClassName"],
        "csi": {"driver": "ordinal.csi.dev", "volumeHandle": md["name"]},
        "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                     "namespace": md["namespace"], "name": md["name"], "uid": md["uid"]},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{
            "key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}]}]}}}},
        ns=None)


def bound_to(c, name):
    return (c.get("pods", name).get("spec") or {}).get("nodeName")


def failed_scheduling(cluster, name):
    return [e for e in cluster.events("FailedScheduling")
            if e["involvedObject"]["name"] == name]


def test_binds_spreading_over_nodes_and_honours_selectors(cluster):
    c = cluster.client
    for i in (1, 2, 3):
        c.create("nodes", node("node-%d" % i), ns=None)
    for i in range(3):
        c.create("pods", pod("p%d" % i))
        wait_for(lambda i=i: bound_to(c, "p%d" % i), what="p%d bound" % i)
    assert sorted(bound_to(c, "p%d" % i) for i in range(3)) == ["node-1", "node-2", "node-3"]
    p = c.get("pods", "p0")
    cond = [x for x in p["status"]["conditions"] if x["type"] == "PodScheduled"][0]
    assert cond["status"] == "True"
    ev = [e for e in cluster.events("Scheduled") if e["involvedObject"]["name"] == "p0"][0]
    assert ev["message"] == "Successfully assigned default/p0 to %s" % bound_to(c, "p0")
    assert ev["source"]["component"] == "default-scheduler"
    c.create("pods", pod("sel", nodeSelector={"kubernetes.io/hostname": "node-2"}))
    wait_for(lambda: bound_to(c, "sel") == "node-2")
    c.create("pods", pod("aff", affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
            "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                  "values": ["node-3"]}]}]}}}))
    wait_for(lambda: bound_to(c, "aff") == "node-3")
    c.create("pods", pod("named", nodeName="node-1"))
    assert c.get("pods", "named")["spec"]["nodeName"] == "node-1"


def test_unschedulable_pod_gets_condition_and_event(cluster):
    c = cluster.client
    c.create("pods", pod("lonely"))
    wait_for(lambda: failed_scheduling(cluster, "lonely"))
    e = failed_scheduling(cluster, "lonely")[0]
    assert e["type"] == "Warning" and e["message"] == "no nodes available to schedule pods"
    c.create("nodes", node("node-1"), ns=None)
    wait_for(lambda: bound_to(c, "lonely") == "node-1", what="scheduled once a node exists")
    c.create("pods", pod("picky", nodeSelector={"disk": "ssd"}))
    want = ("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    wait_for(lambda: [e for e in failed_scheduling(cluster, "picky") if e["message"] == want])
    cond = [x for x in c.get("pods", "picky")["status"]["conditions"]
            if x["type"] == "PodScheduled"][0]
    assert cond == dict(cond, status="False", reason="Unschedulable", message=want)
    n = c.get("nodes", "node-1", ns=None)
    n["metadata"]["labels"]["disk"] = "ssd"
    c.update("nodes", n, ns=None)
    wait_for(lambda: bound_to(c, "picky") == "node-1", what="rescheduled on a node change")
    # a NotReady node takes no pods
    n = c.get("nodes", "node-1", ns=None)
    n["status"]["conditions"][0]["status"] = "False"
    c.update("nodes", n, ns=None, sub="status")
    c.create("pods", pod("late"))
    wait_for(lambda: [e for e in failed_scheduling(cluster, "late") if
                      "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
                      in e["message"]])


def test_bound_volume_node_affinity(cluster):
    c = cluster.client
    for i in (1, 2, 3):
        c.create("nodes", node("node-%d" % i), ns=None)
    c.create("storageclasses", sc(), ns=None)
    pvc = c.create("persistentvolumeclaims", claim("data"))
    pv_for(c, pvc, "node-3")
    wait_for(lambda: c.get("persistentvolumeclaims", "data")["status"].get("phase") == "Bound")
    c.create("pods", pod("user", claim="data"))
    wait_for(lambda: bound_to(c, "user") == "node-3")
    c.create("pods", pod("elsewhere", claim="data", nodeSelector={
        "kubernetes.io/hostname": "node-1"}))
    wait_for(lambda: [e for e in failed_scheduling(cluster, "elsewhere") if
                      "2 node(s) didn't match Pod's node affinity/selector, 1 node(s) had "
                      "volume node affinity conflict" in e["message"]])


def test_wait_for_first_consumer_selects_a_node_and_reschedules(cluster):
    c = cluster.client
    for i in (1, 2):
        c.create("nodes", node("node-%d" % i), ns=None)
    c.create("storageclasses", sc(), ns=None)
    c.create("persistentvolumeclaims", claim("wffc"))
    c.create("pods", pod("consumer", claim="wffc"))
    first = wait_for(lambda: (c.get("persistentvolumeclaims", "wffc")["metadata"].get(
        "annotations") or {}).get(SEL), what="selected-node set")
    assert not bound_to(c, "consumer"), "the pod waits for its claim to be Bound"
    # The provisioner gives up on that node (e.g. out of space): it removes the annotation.
    pvc = c.get("persistentvolumeclaims", "wffc")
    del pvc["metadata"]["annotations"][SEL]
    c.update("persistentvolumeclaims", pvc)
    second = wait_for(lambda: (c.get("persistentvolumeclaims", "wffc")["metadata"].get(
        "annotations") or {}).get(SEL), what="selected-node set again")
    assert second != first, "rescheduled to a node not tried yet"
    pv_for(c, c.get("persistentvolumeclaims", "wffc"), second)
    wait_for(lambda: bound_to(c, "consumer") == second, what="bound once the claim is Bound")


def test_immediate_unbound_claim_and_missing_claim(cluster):
    c = cluster.client
    c.create("nodes", node("node-1"), ns=None)
    c.create("storageclasses", sc("now", "Immediate"), ns=None)
    c.create("persistentvolumeclaims", claim("later", cls="now"))
    c.create("pods", pod("a", claim="later"))
    c.create("pods", pod("b", claim="nope"))
    wait_for(lambda: [e for e in failed_scheduling(cluster, "a") if e["message"] ==
                      "0/1 nodes are available: pod has unbound immediate "
                      "PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 "
                      "Preemption is not helpful for scheduling."])
    wait_for(lambda: [e for e in failed_scheduling(cluster, "b") if
                      'persistentvolumeclaim "nope" not found' in e["message"]])
