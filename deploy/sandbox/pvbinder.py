"""The persistentvolume controller of kube-controller-manager (the PV binder,
pkg/controller/volume/persistentvolume): binds claims to volumes in two steps (PV claimRef first,
claim volumeName second), moves PVs to Released when their claim goes, assigns the provisioner
annotations to claims of a class with an external provisioner, and waits for the first consumer
for WaitForFirstConsumer classes. Keys: ("pv", "", name) and ("claim", namespace, name)."""

import re

import controllers
import store as st
from resources import now_rfc3339, resource

PVS, PVCS, SCS = (resource(n) for n in (
    "persistentvolumes", "persistentvolumeclaims", "storageclasses"))
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
COMPONENT_PV = "persistentvolume-controller"

_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "m": 10**-3}


def parse_quantity(q):
    m = re.match(r"^\s*([0-9.]+)\s*([a-zA-Z]*)\s*$", str(q))
    if not m or m.group(2) not in _SUFFIX:
        return None
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def claim_class(pvc):
    ann = pvc["metadata"].get("annotations") or {}
    if ANN_BETA_CLASS in ann:
        return ann[ANN_BETA_CLASS]
    return (pvc.get("spec") or {}).get("storageClassName") or ""


def _claim_ref_key(pv):
    cr = ((pv or {}).get("spec") or {}).get("claimRef")
    if not cr:
        return None
    return (cr.get("namespace", ""), cr.get("name", ""))


def _volume_name(pvc):
    return ((pvc or {}).get("spec") or {}).get("volumeName") or None


def _discard(index, k, v):
    s = index.get(k)
    if s is not None:
        s.discard(v)
        if not s:
            del index[k]


class PVBinder(controllers.Controller):
    name = "pv-binder"
    watches = ("persistentvolumes", "persistentvolumeclaims", "storageclasses")

    def __init__(self, store, log=lambda msg: None):
        super().__init__(store, log)
        self.reset()

    def reset(self):
        self.pvs_by_claim = {}      # (namespace, name) -> {PV names whose claimRef names it}
        self.claims_by_pv = {}      # PV name -> {(namespace, name) of claims naming it}
        self.unbound = set()        # (namespace, name) of claims without spec.volumeName
        self.free_pvs = set()       # PV names without a claimRef

    def _index(self, res, prev, obj):
        o = obj if obj is not None else prev
        name, nk = o["metadata"]["name"], (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        if res is PVS:
            if prev is not None and _claim_ref_key(prev):
                _discard(self.pvs_by_claim, _claim_ref_key(prev), name)
            self.free_pvs.discard(name)
            if obj is not None:
                if _claim_ref_key(obj):
                    self.pvs_by_claim.setdefault(_claim_ref_key(obj), set()).add(name)
                else:
                    self.free_pvs.add(name)
        elif res is PVCS:
            if _volume_name(prev):
                _discard(self.claims_by_pv, _volume_name(prev), nk)
            self.unbound.discard(nk)
            if obj is not None:
                if _volume_name(obj):
                    self.claims_by_pv.setdefault(_volume_name(obj), set()).add(nk)
                else:
                    self.unbound.add(nk)

    def keys(self, res, etype, obj, prev):
        cur = None if etype == "DELETED" else obj
        self._index(res, prev, cur)
        md = obj["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        out = set()
        if etype == "SYNC":   # a full resync: every object once (the indexes are rebuilt)
            if res is PVS:
                out.add(("pv", "", name))
            elif res is PVCS:
                out.add(("claim", ns, name))
            return out
        if res is PVS:
            out.add(("pv", "", name))
            for o in (obj, prev):
                if _claim_ref_key(o):
                    out.add(("claim",) + _claim_ref_key(o))
            out.update(("claim",) + k for k in self.claims_by_pv.get(name, ()))
            if cur is not None and not _claim_ref_key(cur):
                out.update(("claim",) + k for k in self.unbound)   # a PV to match statically
        elif res is PVCS:
            out.add(("claim", ns, name))
            for o in (obj, prev):
                if _volume_name(o):
                    out.add(("pv", "", _volume_name(o)))
            out.update(("pv", "", n) for n in self.pvs_by_claim.get((ns, name), ()))
        elif res is SCS:
            out.update(("claim",) + k for k in self.unbound)
        return out

    def sync(self, key):
        kind, ns, name = key
        if kind == "pv":
            pv = self.fetch(PVS, "", name)
            if pv is not None:
                self._sync_volume(pv)
        else:
            pvc = self.fetch(PVCS, ns, name)
            if pvc is not None:
                self._sync_claim(pvc)

    def _event_once(self, res, obj, etype, reason, message):
        self.event_once(res, obj, etype, reason, message, COMPONENT_PV)

    def _set_pv_phase(self, pv, phase):
        if (pv.get("status") or {}).get("phase") == phase:
            return

        def fn(o):
            o.setdefault("status", {})["phase"] = phase
            o["status"]["lastPhaseTransitionTime"] = now_rfc3339()
        self.modify(PVS, "", pv["metadata"]["name"], fn, sub="status")

    def _set_claim_phase(self, pvc, phase, pv=None):
        def fn(o):
            s = o.setdefault("status", {})
            changed = s.get("phase") != phase
            s["phase"] = phase
            if pv is not None and changed:
                s["accessModes"] = (pv.get("spec") or {}).get("accessModes")
                s["capacity"] = (pv.get("spec") or {}).get("capacity")
        return self.modify(PVCS, pvc["metadata"]["namespace"], pvc["metadata"]["name"], fn,
                                 sub="status")

    def _bind(self, pv, pvc):
        """bind(): PV claimRef, PV Bound, PVC volumeName + annotations, PVC Bound."""
        md = pvc["metadata"]
        ref = {"kind": "PersistentVolumeClaim", "namespace": md["namespace"], "name": md["name"],
               "uid": md["uid"], "apiVersion": "v1", "resourceVersion": md["resourceVersion"]}
        cr = (pv.get("spec") or {}).get("claimRef")
        if not cr or cr.get("uid") != md["uid"]:
            def set_ref(o):
                if not (o.get("spec") or {}).get("claimRef"):
                    o["metadata"].setdefault("annotations", {})[ANN_BOUND_BY_CONTROLLER] = "yes"
                o["spec"]["claimRef"] = ref
            pv = self.modify(PVS, "", pv["metadata"]["name"], set_ref) or pv
        self._set_pv_phase(pv, "Bound")
        pv = self.store.get(PVS, "", pv["metadata"]["name"])
        if (pvc.get("spec") or {}).get("volumeName") != pv["metadata"]["name"] or \
                (md.get("annotations") or {}).get(ANN_BIND_COMPLETED) != "yes":
            def set_volume(o):
                ann = o["metadata"].setdefault("annotations", {})
                if not o["spec"].get("volumeName"):
                    o["spec"]["volumeName"] = pv["metadata"]["name"]
                    ann[ANN_BOUND_BY_CONTROLLER] = "yes"
                ann[ANN_BIND_COMPLETED] = "yes"
            pvc = self.modify(PVCS, md["namespace"], md["name"], set_volume) or pvc
        self._set_claim_phase(pvc, "Bound", pv)

    def _sync_volume(self, pv):
        cr = (pv.get("spec") or {}).get("claimRef")
        phase = (pv.get("status") or {}).get("phase")
        if not cr or not cr.get("uid"):
            if phase != "Available":
                self._set_pv_phase(pv, "Available")
            return
        try:
            claim = self.store.get(PVCS, cr.get("namespace", ""), cr.get("name", ""))
        except st.ApiError:
            claim = None
        if claim is None or claim["metadata"]["uid"] != cr["uid"]:
            if phase not in ("Released", "Failed"):
                self._set_pv_phase(pv, "Released")
            return
        vn = (claim.get("spec") or {}).get("volumeName")
        if not vn:
            self._bind(pv, claim)
        elif vn == pv["metadata"]["name"]:
            self._set_pv_phase(pv, "Bound")
        elif phase not in ("Released", "Failed"):
            self._set_pv_phase(pv, "Released")

    def _matches(self, pv, pvc):
        ps, cs = pv.get("spec") or {}, pvc.get("spec") or {}
        if pv["metadata"].get("deletionTimestamp") or ps.get("claimRef"):
            return False
        if (pv.get("status") or {}).get("phase") != "Available":
            return False
        if (ps.get("storageClassName") or "") != claim_class(pvc):
            return False
        if ps.get("volumeMode", "Filesystem") != cs.get("volumeMode", "Filesystem"):
            return False
        if not set(cs.get("accessModes") or []) <= set(ps.get("accessModes") or []):
            return False
        want = parse_quantity(((cs.get("resources") or {}).get("requests") or {}).get("storage", 0))
        have = parse_quantity((ps.get("capacity") or {}).get("storage", 0))
        return want is not None and have is not None and have >= want

    def _sync_claim(self, pvc):
        md, spec = pvc["metadata"], pvc.get("spec") or {}
        phase = (pvc.get("status") or {}).get("phase")
        vn = spec.get("volumeName")
        if vn:
            try:
                pv = self.store.get(PVS, "", vn)
            except st.ApiError:
                pv = None
            if pv is None:
                if phase == "Bound":
                    self._set_claim_phase(pvc, "Lost")
                    self._event_once(PVCS, pvc, "Warning", "ClaimLost", "Bound claim has lost "
                                     "reference to PersistentVolume. Data on the volume is lost!")
                return
            cr = (pv.get("spec") or {}).get("claimRef")
            if not cr or (cr.get("namespace") == md["namespace"] and cr.get("name") ==
                          md["name"] and cr.get("uid") in (None, "", md["uid"])):
                self._bind(pv, pvc)
            elif phase == "Bound":
                self._set_claim_phase(pvc, "Lost")
                self._event_once(PVCS, pvc, "Warning", "ClaimMisbound", "Two claims are bound to "
                                 "the same volume, this one is bound incorrectly")
            return
        if md.get("deletionTimestamp"):
            return
        # Only the PVs whose claimRef names this claim (from the index; checked again on
        # the current object), in name order as a list of every PV would give them.
        for pvname in sorted(self.pvs_by_claim.get((md["namespace"], md["name"]), ())):
            pv = self.fetch(PVS, "", pvname)
            if pv is None:
                continue
            cr = (pv.get("spec") or {}).get("claimRef") or {}
            if cr.get("namespace") == md["namespace"] and cr.get("name") == md["name"] and \
                    cr.get("uid") in (None, "", md["uid"]):
                self._bind(pv, pvc)
                return
        cls = claim_class(pvc)
        sc = None
        if cls:
            try:
                sc = self.store.get(SCS, "", cls)
            except st.ApiError:
                sc = None
        ann = md.get("annotations") or {}
        wffc = sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer"
        if not wffc or ann.get(ANN_SELECTED_NODE):
            pvs = (self.fetch(PVS, "", n) for n in sorted(self.free_pvs))
            candidates = [pv for pv in pvs if pv is not None and self._matches(pv, pvc)]
            if candidates:
                best = min(candidates, key=lambda p: parse_quantity(p["spec"]["capacity"]["storage"]))
                self._bind(best, pvc)
                return
        if not cls:
            return
        if sc is None:
            self._event_once(PVCS, pvc, "Warning", "ProvisioningFailed",
                             'storageclass.storage.k8s.io "%s" not found' % cls)
            return
        if wffc and not ann.get(ANN_SELECTED_NODE):
            self._event_once(PVCS, pvc, "Normal", "WaitForFirstConsumer",
                             "waiting for first consumer to be created before binding")
            return
        prov = sc.get("provisioner", "")
        if ann.get(ANN_PROVISIONER) != prov or ann.get(ANN_BETA_PROVISIONER) != prov:
            def set_prov(o):
                a = o["metadata"].setdefault("annotations", {})
                a[ANN_PROVISIONER] = prov
                a[ANN_BETA_PROVISIONER] = prov
            pvc = self.modify(PVCS, md["namespace"], md["name"], set_prov) or pvc
        self._event_once(PVCS, pvc, "Normal", "ExternalProvisioning",
                         "Waiting for a volume to be created either by the external provisioner "
                         "'%s' or manually by the system administrator. If volume creation is "
                         "delayed, please verify that the provisioner is running and correctly "
                         "registered." % prov)

    # ---- protection controllers ----
