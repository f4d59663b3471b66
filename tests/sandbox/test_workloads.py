"""The DaemonSet and Deployment controllers of the sandbox (deploy/sandbox/daemonset.py,
deployment.py) through the API server with --controllers all; the tests play kubelet."""

import sbxlib
from fakeapi import wait_for

LABELS = {"app": "d"}


def template(image="busybox"):
    return {"metadata": {"labels": dict(LABELS)},
            "spec": {"containers": [{"name": "c", "image": image}]}}


def owned(cluster, kind):
    return {n: p for n, p in cluster.pods().items()
            if any(r.get("kind") == kind for r in p["metadata"].get("ownerReferences") or [])
            and not p["metadata"].get("deletionTimestamp")}


def test_daemonset_one_pod_per_matching_node_and_status(cluster):
    c = cluster.client
    for i, zone in ((1, "a"), (2, "a"), (3, "b")):
        c.create("nodes", sbxlib.node("node-%d" % i, zone="zone-" + zone), ns=None)
    t = template()
    t["spec"]["nodeSelector"] = {"topology.kubernetes.io/zone": "zone-a"}
    c.create("daemonsets", {"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": LABELS}, "template": t}})
    pods = wait_for(lambda: (lambda p: p if len(p) == 2 and all(
        x["spec"].get("nodeName") for x in p.values()) else None)(owned(cluster, "DaemonSet")),
        10, what="2 daemon pods scheduled")
    assert sorted(p["spec"]["nodeName"] for p in pods.values()) == ["node-1", "node-2"]
    for p in pods.values():
        assert p["metadata"]["name"].startswith("d-")
        assert p["metadata"]["labels"]["app"] == "d"
        assert p["metadata"]["labels"]["controller-revision-hash"]
        terms = p["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                           "values": [p["spec"]["nodeName"]]}]}]
        assert {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute"} in p["spec"]["tolerations"]
        cluster.run_pod(p["metadata"]["name"])
    st = wait_for(lambda: (lambda s: s if s.get("numberReady") == 2 else None)(
        c.get("daemonsets", "d").get("status") or {}), 10)
    assert st["desiredNumberScheduled"] == 2 and st["currentNumberScheduled"] == 2
    assert st["numberMisscheduled"] == 0 and st["updatedNumberScheduled"] == 2
    # a node joining the zone gets a pod; a node leaving it loses its pod
    c.patch("nodes", "node-3", {"metadata": {"labels": {"topology.kubernetes.io/zone":
                                                        "zone-a"}}}, ns=None)
    wait_for(lambda: sorted(p["spec"].get("nodeName") or "" for p in
                            owned(cluster, "DaemonSet").values()) ==
             ["node-1", "node-2", "node-3"], 10, what="a pod on node-3")
    c.patch("nodes", "node-1", {"metadata": {"labels": {"topology.kubernetes.io/zone":
                                                        "zone-b"}}}, ns=None)
    wait_for(lambda: sorted(p["spec"].get("nodeName") or "" for p in
                            owned(cluster, "DaemonSet").values()) == ["node-2", "node-3"],
             10, what="node-1's pod gone")
    # a failed pod is replaced
    victim = [n for n, p in owned(cluster, "DaemonSet").items()
              if p["spec"]["nodeName"] == "node-2"][0]
    cluster.fail_pod(victim)
    wait_for(lambda: [n for n, p in owned(cluster, "DaemonSet").items()
                      if p["spec"].get("nodeName") == "node-2" and n != victim], 10,
             what="a new pod on node-2")


def test_deployment_replicas_hash_labels_rollout_and_status(cluster):
    c = cluster.client
    for i in (1, 2):
        c.create("nodes", sbxlib.node("node-%d" % i), ns=None)
    c.create("deployments", {"metadata": {"name": "web"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": LABELS}, "template": template()}})
    pods = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(owned(cluster, "Deployment")),
                    10, what="2 pods")
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods.values()}
    assert len(hashes) == 1
    h = hashes.pop()
    assert all(n.startswith("web-%s-" % h) for n in pods)
    for n in pods:
        wait_for(lambda: c.get("pods", n)["spec"].get("nodeName"), 10)
        cluster.run_pod(n)
    st = wait_for(lambda: (lambda s: s if s.get("readyReplicas") == 2 else None)(
        c.get("deployments", "web").get("status") or {}), 10)
    assert st["replicas"] == 2 and st["updatedReplicas"] == 2 and st["availableReplicas"] == 2
    assert st["conditions"][0]["type"] == "Available" and st["conditions"][0]["status"] == "True"
    # scale to 3, then a new template: new pods, old ones go as new ones become Ready
    c.patch("deployments", "web", {"spec": {"replicas": 3}})
    wait_for(lambda: len(owned(cluster, "Deployment")) == 3, 10, what="3 pods")
    c.patch("deployments", "web", {"spec": {"template": template("busybox:2")}})

    def rolled():
        ps = owned(cluster, "Deployment")
        for n, p in ps.items():
            if p["metadata"]["labels"]["pod-template-hash"] != h and \
                    p["spec"].get("nodeName") and (p.get("status") or {}).get("phase") != \
                    "Running":
                cluster.run_pod(n)
        return ps if len(ps) == 3 and all(p["metadata"]["labels"]["pod-template-hash"] != h
                                          for p in ps.values()) else None
    new = wait_for(rolled, 20, what="every pod at the new template")
    assert all(p["spec"]["containers"][0]["image"] == "busybox:2" for p in new.values())
    wait_for(lambda: (c.get("deployments", "web").get("status") or {}).get("updatedReplicas")
             == 3, 10)
