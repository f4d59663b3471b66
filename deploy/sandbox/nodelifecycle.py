"""The node lifecycle controller of kube-controller-manager (v1.32), and its taint eviction.

A node's health is the later of its kubelet's Lease renewal (kube-node-lease/<node>, renewed
every leaseDuration/4 by kubelet.py) and its Ready condition's lastHeartbeatTime. When neither
moved for `grace` seconds (kube-controller-manager's --node-monitor-grace-period, 40 s; a
setting of the sandbox: apiserver.py --node-monitor-grace-period), the controller:

* sets the node's Ready, MemoryPressure, DiskPressure and PIDPressure conditions to Unknown
  (reason NodeStatusUnknown, "Kubelet stopped posting node status."), Ready's
  lastTransitionTime to now;
* marks every pod on the node not ready: its Ready condition False (only the condition, as
  MarkPodsNotReady does: the container statuses are the kubelet's, so `kubectl get pod` still
  counts the containers READY; readiness consumers such as the StatefulSet controller's ready
  count and `kubectl wait --for=condition=Ready` see it);
* taints the node `node.kubernetes.io/unreachable` NoSchedule and NoExecute (timeAdded now);
  a node whose kubelet reports Ready False gets `node.kubernetes.io/not-ready` instead.

Taint eviction (the taint-eviction-controller): a pod on a node with a NoExecute taint it does
not tolerate is deleted at once; one that tolerates it for tolerationSeconds (300 s for pods that
got the DefaultTolerationSeconds admission's tolerations, store.py) is deleted that long after
the taint's timeAdded; a toleration without tolerationSeconds (DaemonSet pods) keeps it. The
deletion is an ordinary graceful delete: with no kubelet to finish it the pod stays Terminating,
as in Kubernetes. Event TaintManagerEviction on the pod.

When the kubelet is back (Ready True posted, Lease renewed) the taints go; the kubelet itself
writes its pods' status again.

Not modelled: nodeStartupGracePeriod for nodes that never posted status (such nodes are left
alone), zone disruption rate limits, the eviction rate (--node-eviction-rate)."""

import calendar
import time

import controllers
from resources import resource

NODES, PODS, LEASES = (resource(n) for n in ("nodes", "pods", "leases"))
LEASE_NS = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def parse_time(s):
    """RFC 3339 with optional fraction (metav1.Time and MicroTime) -> seconds, or None."""
    if not isinstance(s, str) or len(s) < 20:
        return None
    try:
        base = calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    frac = 0.0
    if len(s) > 20 and s[19] == ".":
        digits = s[20:].rstrip("Z")
        if digits.isdigit():
            frac = float("0." + digits)
    return base + frac


def now_time():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _cond(node, ctype):
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _tolerates(tol, taint):
    if tol.get("effect") and tol.get("effect") != taint.get("effect"):
        return False
    if tol.get("operator") == "Exists":
        return not tol.get("key") or tol.get("key") == taint.get("key")
    return tol.get("key") == taint.get("key") and \
        (tol.get("value") or "") == (taint.get("value") or "")


def eviction_delay(pod, taints):
    """Seconds after the taints' timeAdded at which the pod goes: 0 (now) when one NoExecute
    taint is not tolerated, None (never) when every one is tolerated forever."""
    tols = (pod.get("spec") or {}).get("tolerations") or []
    delay = None
    for t in taints:
        if t.get("effect") != "NoExecute":
            continue
        used = [x for x in tols if _tolerates(x, t)]
        if not used:
            return 0.0
        secs = [x["tolerationSeconds"] for x in used
                if isinstance(x.get("tolerationSeconds"), int)]
        if secs:
            s = float(max(0, min(secs)))
            delay = s if delay is None else min(delay, s)
    return delay


class NodeLifecycleController(controllers.Controller):
    name = "node-lifecycle"
    watches = ("nodes", "leases", "pods")
    resync = 0
    node_monitor_grace_period = 40.0     # --node-monitor-grace-period

    def keys(self, res, etype, obj, prev):
        md = obj.get("metadata") or {}
        if res.key == NODES.key:
            return () if etype == "DELETED" else (md.get("name"),)
        if res.key == LEASES.key:
            return (md.get("name"),) if md.get("namespace") == LEASE_NS else ()
        node = (obj.get("spec") or {}).get("nodeName")
        return (node,) if node and etype != "DELETED" else ()

    def sync(self, name):
        node = self.fetch(NODES, "", name)
        if node is None:
            return
        now = time.time()
        ready = _cond(node, "Ready")
        if ready is None:
            return                          # never posted: not modelled (module docstring)
        lease = self.fetch(LEASES, LEASE_NS, name)
        probes = [parse_time(ready.get("lastHeartbeatTime")),
                  parse_time(((lease or {}).get("spec") or {}).get("renewTime"))]
        probe = max([p for p in probes if p is not None] or [now])
        if ready.get("status") != "Unknown":
            if now - probe > self.node_monitor_grace_period:
                node = self._mark_unknown(name) or node
                self.log("node-lifecycle: node %s: no heartbeat for %.1f s (grace %.1f s): "
                         "Ready Unknown" % (name, now - probe, self.node_monitor_grace_period))
            else:
                self.requeue_after(name, probe + self.node_monitor_grace_period - now + 0.05)
        status = (_cond(node, "Ready") or {}).get("status")
        taints = self._taint(name, status)
        if status != "True":
            self._pods_not_ready(name)
        self._evict(name, taints, now)

    def _mark_unknown(self, name):
        t = now_time()

        def change(n):
            conds = (n.setdefault("status", {})).setdefault("conditions", [])
            for ctype in CONDITIONS:
                c = next((x for x in conds if x.get("type") == ctype), None)
                if c is None:
                    if ctype != "Ready":
                        continue
                    c = {"type": ctype}
                    conds.append(c)
                if c.get("status") != "Unknown":
                    c["lastTransitionTime"] = t
                c.update({"status": "Unknown", "reason": "NodeStatusUnknown",
                          "message": "Kubelet stopped posting node status."})
        return self.modify(NODES, "", name, change, sub="status")

    def _taint(self, name, status):
        key = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(status)
        t = now_time()

        def change(n):
            spec = n.setdefault("spec", {})
            have = spec.get("taints") or []
            keep = [x for x in have if x.get("key") not in (UNREACHABLE, NOT_READY) or
                    x.get("key") == key]
            if key:
                for effect in ("NoSchedule", "NoExecute"):
                    if not any(x.get("key") == key and x.get("effect") == effect
                               for x in keep):
                        x = {"key": key, "effect": effect}
                        if effect == "NoExecute":
                            x["timeAdded"] = t
                        keep.append(x)
            if keep:
                spec["taints"] = keep
            else:
                spec.pop("taints", None)
        n = self.modify(NODES, "", name, change)
        return ((n or {}).get("spec") or {}).get("taints") or []

    def _pods(self, name):
        return [p for p in self.store.objects(PODS)
                if (p.get("spec") or {}).get("nodeName") == name]

    def _pods_not_ready(self, name):
        t = now_time()
        for p in self._pods(name):
            c = next((x for x in (p.get("status") or {}).get("conditions") or []
                      if x.get("type") == "Ready"), None)
            if c is None or c.get("status") == "False":
                continue

            def change(o):
                for x in (o.get("status") or {}).get("conditions") or []:
                    if x.get("type") == "Ready" and x.get("status") != "False":
                        x.update({"status": "False", "lastTransitionTime": t})
            self.modify(PODS, p["metadata"]["namespace"], p["metadata"]["name"], change,
                        sub="status")

    def _evict(self, name, taints, now):
        noexec = [t for t in taints if t.get("effect") == "NoExecute"]
        if not noexec:
            return
        added = max([parse_time(t.get("timeAdded")) or now for t in noexec])
        for p in self._pods(name):
            md = p["metadata"]
            if md.get("deletionTimestamp"):
                continue
            delay = eviction_delay(p, noexec)
            if delay is None:
                continue
            due = added + delay
            if due > now:
                self.requeue_after(name, due - now + 0.05)
                continue
            self.event(PODS, p, "Normal", "TaintManagerEviction",
                       "Marking for deletion Pod %s/%s" % (md["namespace"], md["name"]),
                       component="taint-eviction-controller")
            try:
                self.store.delete(PODS, md["namespace"], md["name"])
            except controllers.apierrors.ApiError as e:
                if e.code != 404:
                    raise
            self.log("node-lifecycle: evicted pod %s/%s from node %s" % (
                md["namespace"], md["name"], name))
