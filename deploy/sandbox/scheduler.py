"""A small kube-scheduler (default-scheduler): binds pending pods to nodes with pods/binding.

Filters, in the real plugins' terms (messages as the real scheduler writes them):

* NodeName: a pod naming a node that does not exist waits ("didn't match the requested node
  name"); a pod with spec.nodeName set is not the scheduler's business at all;
* NodeUnschedulable and TaintToleration: `spec.unschedulable`, NoSchedule/NoExecute taints not
  tolerated, and a node whose Ready condition is not True (what the node lifecycle controller's
  `node.kubernetes.io/not-ready` taint does);
* NodeAffinity: nodeSelector and requiredDuringSchedulingIgnoredDuringExecution;
* VolumeBinding: every claim must exist and not be deleting; a bound claim's PV nodeAffinity must
  match; an unbound claim of an Immediate class makes the pod wait; an unbound
  WaitForFirstConsumer claim is provisioned on the chosen node: the scheduler sets
  `volume.kubernetes.io/selected-node` on it and binds the pod once every claim is Bound (if
  the provisioner removes the annotation, e.g. out of space, the pod is scheduled again,
  preferring nodes not tried yet for that claim).

Among feasible nodes it picks the one running the fewest pods (ties by name), so the pods of a
StatefulSet spread over the nodes. An unschedulable pod gets PodScheduled=False (reason
Unschedulable) and a FailedScheduling event saying why; it is retried when nodes, claims or
volumes change (and on the resync). Keys: (namespace, pod name).
"""

import controllers
from pvbinder import ANN_SELECTED_NODE, claim_class
from resources import now_rfc3339, resource

PODS, NODES, PVCS, PVS, SCS = (resource(n) for n in (
    "pods", "nodes", "persistentvolumeclaims", "persistentvolumes", "storageclasses"))
COMPONENT = "default-scheduler"
NAME = "default-scheduler"


def _requirement_matches(req, labels, name=None, field=False):
    key, op = req.get("key"), req.get("operator")
    vals = req.get("values") or []
    if field:
        have = name if key == "metadata.name" else None
        present = have is not None
    else:
        present = key in (labels or {})
        have = (labels or {}).get(key)
    if op == "In":
        return present and have in vals
    if op == "NotIn":
        return not present or have not in vals
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and vals:
        try:
            a, b = int(have), int(vals[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_selector_matches(selector, node):
    """A NodeSelector (terms ORed, requirements ANDed) against a node."""
    terms = (selector or {}).get("nodeSelectorTerms") or []
    labels = node["metadata"].get("labels") or {}
    name = node["metadata"]["name"]
    for t in terms:
        exprs, fields = t.get("matchExpressions") or [], t.get("matchFields") or []
        if not exprs and not fields:
            continue   # an empty term matches nothing
        if all(_requirement_matches(r, labels) for r in exprs) and \
                all(_requirement_matches(r, labels, name, True) for r in fields):
            return True
    return False


def _tolerated(taint, tolerations):
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == \
                (taint.get("value") or ""):
            return True
    return False


def _pod_claims(pod):
    return [((v.get("persistentVolumeClaim") or {}).get("claimName"))
            for v in (pod.get("spec") or {}).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")]


class Unschedulable(Exception):
    pass


class Scheduler(controllers.Controller):
    name = "scheduler"
    watches = ("pods", "nodes", "persistentvolumeclaims", "persistentvolumes",
               "storageclasses")
    resync = 30.0

    def __init__(self, store, log=lambda msg: None):
        super().__init__(store, log)
        self.reset()
        self.tried = {}      # (namespace, claim) -> nodes already selected for it

    def reset(self):
        self.pending = set()           # (namespace, pod) waiting for a node
        self.by_claim = {}             # (namespace, claim) -> pending pods using it

    @staticmethod
    def _is_pending(pod):
        spec = pod.get("spec") or {}
        return not spec.get("nodeName") and not pod["metadata"].get("deletionTimestamp") and \
            (spec.get("schedulerName") or NAME) == NAME and \
            (pod.get("status") or {}).get("phase", "Pending") == "Pending"

    def keys(self, res, etype, obj, prev):
        md = obj["metadata"]
        if res is PODS:
            k = (md["namespace"], md["name"])
            for c in _pod_claims(prev or {}) + _pod_claims(obj):
                self.by_claim.get((k[0], c), set()).discard(k)
            self.pending.discard(k)
            if etype != "DELETED" and self._is_pending(obj):
                self.pending.add(k)
                for c in _pod_claims(obj):
                    self.by_claim.setdefault((k[0], c), set()).add(k)
                return [k]
            return []
        if res is PVCS:
            if etype == "DELETED":
                self.tried.pop((md["namespace"], md["name"]), None)
            return sorted(self.by_claim.get((md["namespace"], md["name"]), ()))
        if res is PVS:
            cr = (obj.get("spec") or {}).get("claimRef") or {}
            if cr.get("name"):
                return sorted(self.by_claim.get((cr.get("namespace", ""), cr["name"]), ()))
            return []
        return sorted(self.pending)   # a node or a class changed: try every pending pod

    # ---- filters ----

    def _volume_plan(self, pod):
        """(bound PVs, unbound WFFC claims); raises Unschedulable for pod-wide problems."""
        ns = pod["metadata"]["namespace"]
        bound, delayed = [], []
        for name in _pod_claims(pod):
            c = self.fetch(PVCS, ns, name)
            if c is None:
                raise Unschedulable('persistentvolumeclaim "%s" not found' % name)
            if c["metadata"].get("deletionTimestamp"):
                raise Unschedulable('persistentvolumeclaim "%s" is being deleted' % name)
            vn = (c.get("spec") or {}).get("volumeName")
            if vn:
                pv = self.fetch(PVS, "", vn)
                if pv is None:
                    raise Unschedulable('pvc(s) bound to non-existent pv(s)')
                bound.append(pv)
                continue
            cls = claim_class(c)
            sc = self.fetch(SCS, "", cls) if cls else None
            if sc is None or sc.get("volumeBindingMode") != "WaitForFirstConsumer":
                raise Unschedulable("pod has unbound immediate PersistentVolumeClaims")
            delayed.append(c)
        return bound, delayed

    def _filter(self, pod, node, bound, delayed):
        """None when node fits, else the reason (the plugins' status messages)."""
        spec = pod.get("spec") or {}
        if node["metadata"].get("deletionTimestamp"):
            return "node(s) were unschedulable"
        if (node.get("spec") or {}).get("unschedulable"):
            return "node(s) were unschedulable"
        taints = list((node.get("spec") or {}).get("taints") or [])
        ready = [c for c in (node.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Ready"]
        if not ready or ready[0].get("status") != "True":
            taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
        for t in taints:
            if t.get("effect") in ("NoSchedule", "NoExecute") and \
                    not _tolerated(t, spec.get("tolerations")):
                return "node(s) had untolerated taint {%s: %s}" % (t.get("key"),
                                                                   t.get("value") or "")
        labels = node["metadata"].get("labels") or {}
        for k, v in (spec.get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return "node(s) didn't match Pod's node affinity/selector"
        req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
               .get("requiredDuringSchedulingIgnoredDuringExecution"))
        if req and not node_selector_matches(req, node):
            return "node(s) didn't match Pod's node affinity/selector"
        for pv in bound:
            na = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required"))
            if na and not node_selector_matches(na, node):
                return "node(s) had volume node affinity conflict"
        for c in delayed:
            sel = (c["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE)
            if sel and sel != node["metadata"]["name"]:
                return "node(s) didn't match the selected node of its claims"
        return None

    # ---- the sync ----

    def sync(self, key):
        ns, name = key
        pod = self.fetch(PODS, ns, name)
        if pod is None or not self._is_pending(pod):
            return
        nodes = self.store.objects(NODES)
        try:
            if not nodes:
                raise Unschedulable("no nodes available to schedule pods")
            bound, delayed = self._volume_plan(pod)
            want = (pod.get("spec") or {}).get("nodeName")
            reasons, fits = {}, []
            for n in nodes:
                why = self._filter(pod, n, bound, delayed)
                if why is None:
                    fits.append(n)
                else:
                    reasons[why] = reasons.get(why, 0) + 1
            if want:
                fits = [n for n in fits if n["metadata"]["name"] == want]
            if not fits:
                text = ", ".join("%d %s" % (v, k) for k, v in sorted(reasons.items()))
                raise Unschedulable("0/%d nodes are available: %s. preemption: 0/%d nodes are "
                                    "available: %d Preemption is not helpful for scheduling."
                                    % (len(nodes), text, len(nodes), len(nodes)))
        except Unschedulable as e:
            msg = str(e)
            if nodes and not msg.startswith("0/"):
                msg = "0/%d nodes are available: %s. preemption: 0/%d nodes are available: " \
                      "%d Preemption is not helpful for scheduling." % (
                          len(nodes), msg, len(nodes), len(nodes))
            self._unschedulable(pod, msg)
            return
        node = self._pick(pod, fits, delayed)
        nn = node["metadata"]["name"]
        waiting = False
        for c in delayed:
            if not (c["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE):
                tried = self.tried.setdefault((ns, c["metadata"]["name"]), [])
                if nn not in tried:
                    tried.append(nn)

                def select(o):
                    o["metadata"].setdefault("annotations", {})[ANN_SELECTED_NODE] = nn
                self.modify(PVCS, ns, c["metadata"]["name"], select)
            waiting = True
        if waiting:
            return   # PreBind waits for the claims to be Bound; their changes wake us
        try:
            self.store.bind(ns, name, nn)
        except controllers.ApiError as e:
            if e.code == 409:
                return
            raise
        self.event(PODS, pod, "Normal", "Scheduled", "Successfully assigned %s/%s to %s"
                   % (ns, name, nn), COMPONENT)

    def _pick(self, pod, fits, delayed):
        counts = {}
        for n in self.store.scan(PODS, lambda p: (p.get("spec") or {}).get("nodeName")):
            if n:
                counts[n] = counts.get(n, 0) + 1
        ns = pod["metadata"]["namespace"]
        tried = set()
        for c in delayed:
            tried.update(self.tried.get((ns, c["metadata"]["name"]), ()))
        return min(fits, key=lambda n: (n["metadata"]["name"] in tried,
                                        counts.get(n["metadata"]["name"], 0),
                                        n["metadata"]["name"]))

    def _unschedulable(self, pod, msg):
        md = pod["metadata"]

        def fn(o):
            conds = [c for c in (o.get("status") or {}).get("conditions") or []
                     if c.get("type") != "PodScheduled"]
            old = [c for c in (o.get("status") or {}).get("conditions") or []
                   if c.get("type") == "PodScheduled"]
            if old and old[0].get("status") == "False" and old[0].get("message") == msg:
                return
            conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                          "lastTransitionTime": now_rfc3339(), "reason": "Unschedulable",
                          "message": msg})
            o.setdefault("status", {})["conditions"] = conds
        self.modify(PODS, md["namespace"], md["name"], fn, sub="status")
        self.event(PODS, pod, "Warning", "FailedScheduling", msg, COMPONENT)
