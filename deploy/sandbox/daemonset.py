"""The DaemonSet controller (pkg/controller/daemon), the part Ordinal's node plugin needs.

For each DaemonSet: the nodes a pod should run on are those whose labels match the template's
`nodeSelector` and required node affinity and whose NoSchedule / NoExecute taints the pod
tolerates (as the real controller, a DaemonSet pod also tolerates node.kubernetes.io/not-ready,
unreachable, disk-pressure, memory-pressure, pid-pressure and unschedulable: it runs on an
unschedulable or not-ready node). Each such node gets one pod `<ds>-<random>` with the
template's labels plus `controller-revision-hash` (the template hash) and
`pod-template-generation`, a controller ownerReference, and the required node affinity
`matchFields metadata.name In [node]` (replacing the template's required terms), which the
scheduler honours; pods on nodes that should not run one, extra pods on a node, and failed pods
are deleted (and recreated). RollingUpdate: an outdated pod is deleted only while the number of
unavailable pods is below `maxUnavailable` (default 1), so the update walks node by node;
OnDelete leaves outdated pods alone. Status: desiredNumberScheduled, currentNumberScheduled,
numberMisscheduled, numberReady, numberAvailable, numberUnavailable, updatedNumberScheduled,
observedGeneration. Not modelled: ControllerRevision history, maxSurge, minReadySeconds for
availability beyond Ready, the `spec.nodeName` the scheduler once set by itself.
"""

import copy

import controllers
import scheduler
import workloads as wl
from resources import resource

DS, PODS, NODES = resource("daemonsets"), resource("pods"), resource("nodes")
HASH_LABEL = "controller-revision-hash"
GEN_LABEL = "pod-template-generation"
# daemon/util.AddOrUpdateDaemonPodTolerations
AUTO_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def should_run(ds, node):
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if req and not scheduler.node_selector_matches(req, node):
        return False
    tols = list(spec.get("tolerations") or []) + AUTO_TOLERATIONS
    for t in (node.get("spec") or {}).get("taints") or []:
        if t.get("effect") in ("NoSchedule", "NoExecute") and not scheduler._tolerated(t, tols):
            return False
    return True


def pod_node(pod):
    """The node a daemon pod is for: its nodeName, else its matchFields affinity."""
    n = (pod.get("spec") or {}).get("nodeName")
    if n:
        return n
    req = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in req.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and f.get("values"):
                return f["values"][0]
    return None


class DaemonSetController(controllers.Controller):
    name = "daemonset"
    watches = ("daemonsets", "pods", "nodes")

    def keys(self, res, etype, obj, prev):
        if res is DS:
            return [(obj["metadata"]["namespace"], obj["metadata"]["name"])]
        if res is PODS:
            k = wl.owner_key(obj, "DaemonSet")
            return [k] if k else ()
        return self.store.scan(DS, lambda d: (d["metadata"]["namespace"], d["metadata"]["name"]))

    def _new_pod(self, ds, node, h):
        pod = wl.pod_from_template(ds, "DaemonSet", ds["metadata"]["name"] + "-", {
            HASH_LABEL: h, GEN_LABEL: str(ds["metadata"].get("generation", 1))})
        spec = pod["spec"]
        aff = copy.deepcopy(spec.get("affinity") or {})
        na = aff.setdefault("nodeAffinity", {})
        na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
        spec["affinity"] = aff
        tols = list(spec.get("tolerations") or [])
        for t in AUTO_TOLERATIONS:
            if t not in tols:
                tols.append(t)
        spec["tolerations"] = tols
        return pod

    def sync(self, key):
        ds = self.fetch(DS, key[0], key[1])
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        h = wl.template_hash(ds["spec"].get("template"))
        nodes = {n["metadata"]["name"]: n for n in self.store.objects(NODES)}
        want = {n for n, o in nodes.items() if should_run(ds, o)}
        by_node = {}
        for p in wl.owned_pods(self.store, ds):
            if wl.is_terminating(p):
                continue
            by_node.setdefault(pod_node(p), []).append(p)
        strategy = (ds["spec"].get("updateStrategy") or {})
        max_unavail = ((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1))
        if isinstance(max_unavail, str) and max_unavail.endswith("%"):
            max_unavail = max(1, len(want) * int(max_unavail[:-1] or 0) // 100)
        max_unavail = int(max_unavail or 0) or 1
        misscheduled = 0
        for node, pods in by_node.items():
            pods.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""),
                                     p["metadata"]["name"]))
            if node not in want:
                misscheduled += 1
                for p in pods:
                    wl.delete_pod(self, DS, ds, p)
                by_node[node] = []
                continue
            keep = []
            for p in pods:
                if (p.get("status") or {}).get("phase") == "Failed":
                    self.event(DS, ds, "Warning", "FailedDaemonPod", "Found failed daemon pod %s"
                               "/%s on node %s, will try to kill it" % (
                                   p["metadata"]["namespace"], p["metadata"]["name"], node))
                    wl.delete_pod(self, DS, ds, p)
                else:
                    keep.append(p)
            for p in keep[1:]:
                wl.delete_pod(self, DS, ds, p)
            by_node[node] = keep[:1]
        for node in sorted(want):
            if not by_node.get(node):
                by_node[node] = [wl.create_pod(self, DS, ds, self._new_pod(ds, node, h))]
        cur = [ps[0] for n, ps in by_node.items() if n in want and ps]
        unavailable = len(want) - sum(1 for p in cur if wl.is_ready(p))
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            for p in sorted(cur, key=lambda p: wl.is_ready(p)):
                if (p["metadata"].get("labels") or {}).get(HASH_LABEL) == h:
                    continue
                if wl.is_ready(p) and unavailable >= max_unavail:
                    break
                wl.delete_pod(self, DS, ds, p)
                if wl.is_ready(p):
                    unavailable += 1
        ready = sum(1 for p in cur if wl.is_ready(p))
        wl.set_status(self, DS, ds, {
            "desiredNumberScheduled": len(want),
            "currentNumberScheduled": len(cur),
            "numberMisscheduled": misscheduled,
            "numberReady": ready, "numberAvailable": ready,
            "numberUnavailable": len(want) - ready,
            "updatedNumberScheduled": sum(1 for p in cur if (p["metadata"].get("labels") or {})
                                          .get(HASH_LABEL) == h),
            "observedGeneration": ds["metadata"].get("generation", 1)})
