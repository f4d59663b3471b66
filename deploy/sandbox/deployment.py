"""The Deployment controller (pkg/controller/deployment), minimal and without ReplicaSets.

The real controller keeps one ReplicaSet per pod template (named `<deploy>-<pod-template-hash>`)
whose own controller makes the pods; this sandbox has no ReplicaSet resource, so the Deployment
owns its pods directly and keeps that shape in their labels and names: each pod gets the
template's labels plus `pod-template-hash` (the template hash) and is named
`<deploy>-<hash>-<random>`. It keeps `spec.replicas` (default 1) pods of the current template
(deleting surplus ones, newest first; replacing failed ones); a changed template (RollingUpdate)
makes new pods first and deletes an old pod for each new one that is Ready; `Recreate` deletes
every old pod before creating new ones. Status: replicas, updatedReplicas, readyReplicas,
availableReplicas, unavailableReplicas, observedGeneration and the `Available` condition
(MinimumReplicasAvailable / MinimumReplicasUnavailable). Not modelled: ReplicaSets and their
revision history, maxSurge / maxUnavailable arithmetic beyond the above, progressDeadlineSeconds,
paused.
"""

import controllers
import workloads as wl
from resources import now_rfc3339, resource

DEPLOY, PODS = resource("deployments"), resource("pods")
HASH_LABEL = "pod-template-hash"


class DeploymentController(controllers.Controller):
    name = "deployment"
    watches = ("deployments", "pods")

    def keys(self, res, etype, obj, prev):
        if res is DEPLOY:
            return [(obj["metadata"]["namespace"], obj["metadata"]["name"])]
        k = wl.owner_key(obj, "Deployment")
        return [k] if k else ()

    def sync(self, key):
        d = self.fetch(DEPLOY, key[0], key[1])
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        replicas = spec.get("replicas", 1)
        h = wl.template_hash(spec.get("template"))
        pods = [p for p in wl.owned_pods(self.store, d) if not wl.is_terminating(p)]
        for p in pods:
            if (p.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                wl.delete_pod(self, DEPLOY, d, p)
        pods = [p for p in pods if (p.get("status") or {}).get("phase") not in
                ("Failed", "Succeeded")]
        new = [p for p in pods if (p["metadata"].get("labels") or {}).get(HASH_LABEL) == h]
        old = [p for p in pods if p not in new]
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        if recreate and old:
            for p in old:
                wl.delete_pod(self, DEPLOY, d, p)
            old = []
        elif old:
            spare = sum(1 for p in new if wl.is_ready(p)) + len(old) - replicas
            for p in sorted(old, key=lambda p: wl.is_ready(p)):
                if spare <= 0 and wl.is_ready(p):
                    break
                wl.delete_pod(self, DEPLOY, d, p)
                spare -= 1
        new.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""),
                                p["metadata"]["name"]))
        while len(new) > replicas:
            victim = sorted(new, key=lambda p: (wl.is_ready(p), p["metadata"].get(
                "creationTimestamp", "")))[0] if any(not wl.is_ready(p) for p in new) else new[-1]
            wl.delete_pod(self, DEPLOY, d, victim)
            new.remove(victim)
        if not (recreate and any(not wl.is_terminating(p) for p in old)):
            for _ in range(replicas - len(new)):
                new.append(wl.create_pod(self, DEPLOY, d, wl.pod_from_template(
                    d, "Deployment", "%s-%s-" % (d["metadata"]["name"], h), {HASH_LABEL: h})))
        ready = sum(1 for p in new + old if wl.is_ready(p))
        total = len(new) + len(old)
        ok = ready >= replicas - 1 if replicas > 1 else ready >= replicas
        prev = {c.get("type"): c for c in (d.get("status") or {}).get("conditions") or []}
        st = "True" if ok else "False"
        cond = prev.get("Available")
        if cond is None or cond.get("status") != st:
            cond = {"type": "Available", "status": st,
                    "reason": "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability." if ok else
                    "Deployment does not have minimum availability.",
                    "lastUpdateTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()}
        wl.set_status(self, DEPLOY, d, {
            "replicas": total, "updatedReplicas": len(new), "readyReplicas": ready,
            "availableReplicas": ready, "unavailableReplicas": max(0, replicas - ready),
            "observedGeneration": d["metadata"].get("generation", 1),
            "conditions": [cond]})
