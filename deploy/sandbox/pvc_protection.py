"""The pvc-protection controller (pkg/controller/volume/pvcprotection): keeps the
kubernetes.io/pvc-protection finalizer on every claim, and removes it from a deleting claim once
no scheduled pod (finished or not) uses it. Keys: (namespace, name) of claims."""

import controllers
import store as st
from resources import resource

PVCS, PODS = resource("persistentvolumeclaims"), resource("pods")


def pod_claims(pod):
    if not pod:
        return set()
    ns = pod["metadata"].get("namespace", "")
    return {(ns, ((v or {}).get("persistentVolumeClaim") or {}).get("claimName"))
            for v in (pod.get("spec") or {}).get("volumes") or []
            if ((v or {}).get("persistentVolumeClaim") or {}).get("claimName")}


def set_finalizer(ctrl, res, obj, fin, present):
    md = obj["metadata"]

    def fn(o):
        fins = [f for f in o["metadata"].get("finalizers") or [] if f != fin]
        if present:
            fins.append(fin)
        if fins:
            o["metadata"]["finalizers"] = fins
        else:
            o["metadata"].pop("finalizers", None)
    ctrl.modify(res, md.get("namespace", ""), md["name"], fn)


class PVCProtection(controllers.Controller):
    name = "pvc-protection"
    watches = ("persistentvolumeclaims", "pods")

    def keys(self, res, etype, obj, prev):
        if res is PVCS:
            return [(obj["metadata"]["namespace"], obj["metadata"]["name"])]
        return pod_claims(obj) | pod_claims(prev)

    def _claim_in_use(self, pvc):
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        for pod in self.store.objects(PODS, ns):
            spec = pod.get("spec") or {}
            if not spec.get("nodeName"):
                continue
            # A finished pod (Succeeded, Failed) still counts, as in podUsesPVC: its
            # kubelet may not have unmounted the volume yet, and only the pod object's
            # removal says it has.
            if (ns, name) in pod_claims(pod):
                return True
        return False

    def sync(self, key):
        pvc = self.fetch(PVCS, key[0], key[1])
        if pvc is None:
            return
        fins = pvc["metadata"].get("finalizers") or []
        if pvc["metadata"].get("deletionTimestamp"):
            if st.PVC_PROTECTION in fins and not self._claim_in_use(pvc):
                set_finalizer(self, PVCS, pvc, st.PVC_PROTECTION, False)
        elif st.PVC_PROTECTION not in fins:
            set_finalizer(self, PVCS, pvc, st.PVC_PROTECTION, True)
