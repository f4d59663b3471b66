"""The pod garbage collector of kube-controller-manager (v1.32), its orphaned-pod part.

A pod bound to a node (spec.nodeName) whose Node object does not exist is an orphan: no kubelet
will ever finish it. Kubernetes puts such a pod in quarantine first (40 s: the node may just not
be in the informer's cache yet), then checks the node once more with a live read, and if it is
still gone marks the pod Failed with the condition DisruptionTarget (reason DeletionByPodGC)
and deletes it with a grace period of 0. The StatefulSet controller then creates the ordinal
again; its claim decides where it can run.

The sandbox shortens the quarantine together with the node lifecycle controller's grace period
(both 40 s in Kubernetes; `node_monitor_grace_period`, set from apiserver.py
--node-monitor-grace-period), so that tests of a lost node do not wait 40 s.

Not modelled: the terminated-pod threshold (--terminated-pod-gc-threshold), terminating pods on
out-of-service nodes, unscheduled terminating pods."""

import time

import controllers
from nodelifecycle import now_time
from resources import resource

NODES, PODS = resource("nodes"), resource("pods")


class PodGC(controllers.Controller):
    name = "pod-gc"
    watches = ("nodes", "pods")
    resync = 20.0                          # gcCheckPeriod
    node_monitor_grace_period = 40.0       # the quarantine (module docstring)

    def __init__(self, store, log=lambda msg: None):
        super().__init__(store, log)
        self.orphan_since = {}             # "ns/name" -> when first seen without its node

    def reset(self):
        self.orphan_since.clear()

    def keys(self, res, etype, obj, prev):
        md = obj.get("metadata") or {}
        if res.key == NODES.key:
            if etype != "DELETED":
                return ()
            name = md.get("name")
            return tuple("%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"])
                         for p in self.store.objects(PODS)
                         if (p.get("spec") or {}).get("nodeName") == name)
        if etype == "DELETED" or not (obj.get("spec") or {}).get("nodeName"):
            self.orphan_since.pop("%s/%s" % (md.get("namespace"), md.get("name")), None)
            return ()
        return ("%s/%s" % (md.get("namespace"), md.get("name")),)

    def sync(self, key):
        ns, name = key.split("/", 1)
        pod = self.fetch(PODS, ns, name)
        node = ((pod or {}).get("spec") or {}).get("nodeName")
        if not node or self.fetch(NODES, "", node) is not None:
            self.orphan_since.pop(key, None)
            return
        now = time.monotonic()
        since = self.orphan_since.setdefault(key, now)
        if now - since < self.node_monitor_grace_period:
            self.requeue_after(key, since + self.node_monitor_grace_period - now + 0.05)
            return
        if self.fetch(NODES, "", node) is not None:   # the live check after the quarantine
            self.orphan_since.pop(key, None)
            return
        t = now_time()

        def fail(o):
            st = o.setdefault("status", {})
            if st.get("phase") not in ("Succeeded", "Failed"):
                st["phase"] = "Failed"
            conds = st.setdefault("conditions", [])
            if not any(c.get("type") == "DisruptionTarget" for c in conds):
                conds.append({"type": "DisruptionTarget", "status": "True",
                              "reason": "DeletionByPodGC", "lastTransitionTime": t,
                              "message": "PodGC: node no longer exists"})
        self.modify(PODS, ns, name, fail, sub="status")
        try:
            self.store.delete(PODS, ns, name, {"gracePeriodSeconds": 0})
        except controllers.apierrors.ApiError as e:
            if e.code != 404:
                raise
        self.orphan_since.pop(key, None)
        self.log("pod-gc: found orphaned pod %s assigned to the node %s, deleted" % (key, node))
