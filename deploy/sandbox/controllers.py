"""Minimal in-process kube-controller-manager: the PV binder (persistentvolume controller),
the pvc-protection and pv-protection controllers, the garbage collector and the namespace
controller. They run in one thread that wakes on every store change (and every 0.5 s),
reading and writing through the same store the HTTP API uses, so clients see their writes
(new resourceVersions, watch events, 409s on stale updates) exactly as they would see
kube-controller-manager's."""

import re
import threading
import traceback

import store as st
from resources import BY_KIND, RESOURCES, now_rfc3339, resource

PVS, PVCS, PODS, SCS = (resource(n) for n in (
    "persistentvolumes", "persistentvolumeclaims", "pods", "storageclasses"))
NAMESPACES = resource("namespaces")
ALL = ("pv-binder", "pvc-protection", "pv-protection", "garbage-collector", "namespace")
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


class Controllers:
    def __init__(self, store, enabled, log=lambda msg: None):
        self.store = store
        self.enabled = [c for c in ALL if c in enabled]
        self.log = log
        self.thread = None
        self.emitted = set()
        self.stop_event = threading.Event()

    def start(self):
        if not self.enabled:
            return
        self.thread = threading.Thread(target=self._run, name="controllers", daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        with self.store.cond:
            self.store.cond.notify_all()
        if self.thread:
            self.thread.join(5)

    def _run(self):
        last = None
        steps = {"pv-binder": self.pv_binder, "pvc-protection": self.pvc_protection,
                 "pv-protection": self.pv_protection, "garbage-collector": self.gc,
                 "namespace": self.namespaces}
        while not self.stop_event.is_set():
            with self.store.cond:
                if self.store.rv == last:
                    self.store.cond.wait(0.5)
                last = self.store.rv
            if self.stop_event.is_set():
                break
            for name in self.enabled:
                try:
                    steps[name]()
                except st.ApiError as e:   # a lost race: the next round retries
                    self.log("controller %s: %s" % (name, e.message))
                except Exception:  # noqa: BLE001 - keep the manager alive, log the bug
                    self.log("controller %s crashed:\n%s" % (name, traceback.format_exc()))

    def _event_once(self, res, obj, etype, reason, message, component=COMPONENT_PV):
        key = (obj["metadata"]["uid"], reason, message)
        if key in self.emitted:
            return
        self.emitted.add(key)
        self.store.record_event(res, obj, etype, reason, message, component)

    # ---- persistentvolume controller (pkg/controller/volume/persistentvolume) ----

    def _set_pv_phase(self, pv, phase):
        if (pv.get("status") or {}).get("phase") == phase:
            return

        def fn(o):
            o.setdefault("status", {})["phase"] = phase
            o["status"]["lastPhaseTransitionTime"] = now_rfc3339()
        self.store.mutate(PVS, "", pv["metadata"]["name"], fn, sub="status")

    def _set_claim_phase(self, pvc, phase, pv=None):
        def fn(o):
            s = o.setdefault("status", {})
            changed = s.get("phase") != phase
            s["phase"] = phase
            if pv is not None and changed:
                s["accessModes"] = (pv.get("spec") or {}).get("accessModes")
                s["capacity"] = (pv.get("spec") or {}).get("capacity")
        return self.store.mutate(PVCS, pvc["metadata"]["namespace"], pvc["metadata"]["name"], fn,
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
            pv = self.store.mutate(PVS, "", pv["metadata"]["name"], set_ref) or pv
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
            pvc = self.store.mutate(PVCS, md["namespace"], md["name"], set_volume) or pvc
        self._set_claim_phase(pvc, "Bound", pv)

    def pv_binder(self):
        for pv in self.store.objects(PVS):
            self._sync_volume(pv)
        for pvc in self.store.objects(PVCS):
            self._sync_claim(pvc)

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
        pvs = self.store.objects(PVS)
        for pv in pvs:
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
            candidates = [pv for pv in pvs if self._matches(pv, pvc)]
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
            pvc = self.store.mutate(PVCS, md["namespace"], md["name"], set_prov) or pvc
        self._event_once(PVCS, pvc, "Normal", "ExternalProvisioning",
                         "Waiting for a volume to be created either by the external provisioner "
                         "'%s' or manually by the system administrator. If volume creation is "
                         "delayed, please verify that the provisioner is running and correctly "
                         "registered." % prov)

    # ---- protection controllers ----

    def _claim_in_use(self, pvc):
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        for pod in self.store.objects(PODS, ns):
            spec = pod.get("spec") or {}
            if not spec.get("nodeName"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for v in spec.get("volumes") or []:
                if ((v or {}).get("persistentVolumeClaim") or {}).get("claimName") == name:
                    return True
        return False

    def _set_finalizer(self, res, obj, fin, present):
        md = obj["metadata"]

        def fn(o):
            fins = [f for f in o["metadata"].get("finalizers") or [] if f != fin]
            if present:
                fins.append(fin)
            if fins:
                o["metadata"]["finalizers"] = fins
            else:
                o["metadata"].pop("finalizers", None)
        self.store.mutate(res, md.get("namespace", ""), md["name"], fn)

    def pvc_protection(self):
        for pvc in self.store.objects(PVCS):
            fins = pvc["metadata"].get("finalizers") or []
            if pvc["metadata"].get("deletionTimestamp"):
                if st.PVC_PROTECTION in fins and not self._claim_in_use(pvc):
                    self._set_finalizer(PVCS, pvc, st.PVC_PROTECTION, False)
            elif st.PVC_PROTECTION not in fins:
                self._set_finalizer(PVCS, pvc, st.PVC_PROTECTION, True)

    def pv_protection(self):
        for pv in self.store.objects(PVS):
            fins = pv["metadata"].get("finalizers") or []
            if pv["metadata"].get("deletionTimestamp"):
                if st.PV_PROTECTION in fins and (pv.get("status") or {}).get("phase") != "Bound":
                    self._set_finalizer(PVS, pv, st.PV_PROTECTION, False)
            elif st.PV_PROTECTION not in fins:
                self._set_finalizer(PVS, pv, st.PV_PROTECTION, True)

    # ---- garbage collector ----

    def _owner_state(self, dep_res, dep, ref):
        ores = BY_KIND.get((ref.get("apiVersion"), ref.get("kind")))
        if ores is None:
            return "solid"   # unknown kinds are never collected here
        ns = dep["metadata"].get("namespace", "") if ores.namespaced else ""
        if ores.namespaced and not dep_res.namespaced:
            return "dangling"
        owner = self.store.peek(ores, ns, ref.get("name", ""))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return "dangling"
        if owner["metadata"].get("deletionTimestamp") and \
                st.GC_FOREGROUND in (owner["metadata"].get("finalizers") or []):
            return "waiting"
        return "solid"

    def _drop_refs(self, res, obj, uids):
        def fn(o):
            refs = [r for r in o["metadata"].get("ownerReferences") or []
                    if r.get("uid") not in uids]
            if refs:
                o["metadata"]["ownerReferences"] = refs
            else:
                o["metadata"].pop("ownerReferences", None)
        md = obj["metadata"]
        self.store.mutate(res, md.get("namespace", ""), md["name"], fn)

    def gc(self):
        with self.store.lock:
            everything = [(res, o) for res in RESOURCES for o in self.store.objects(res)]
            dependents = {}
            for res, o in everything:
                for ref in o["metadata"].get("ownerReferences") or []:
                    dependents.setdefault(ref.get("uid"), []).append((res, o, ref))
            for res, o in everything:
                md = o["metadata"]
                if not md.get("deletionTimestamp"):
                    continue
                fins = md.get("finalizers") or []
                deps = dependents.get(md["uid"], [])
                if st.GC_ORPHAN in fins:
                    for dres, dep, _ in deps:
                        self._drop_refs(dres, dep, {md["uid"]})
                    self._set_finalizer(res, o, st.GC_ORPHAN, False)
                elif st.GC_FOREGROUND in fins:
                    blocking = 0
                    for dres, dep, ref in deps:
                        dmd = dep["metadata"]
                        if self.store.peek(dres, dmd.get("namespace", ""), dmd["name"]) is None:
                            continue
                        states = [self._owner_state(dres, dep, r)
                                  for r in dmd.get("ownerReferences") or [] if r is not ref]
                        if "solid" in states:
                            self._drop_refs(dres, dep, {md["uid"]})
                            continue
                        if ref.get("blockOwnerDeletion"):
                            blocking += 1
                        if not dmd.get("deletionTimestamp"):
                            self.store.delete(dres, dmd.get("namespace", ""), dmd["name"],
                                              {"propagationPolicy": "Foreground"})
                    if not blocking:
                        self._set_finalizer(res, o, st.GC_FOREGROUND, False)
            for res, o in everything:
                o = self.store.peek(res, o["metadata"].get("namespace", ""),
                                    o["metadata"]["name"])
                if o is None:
                    continue
                md = o["metadata"]
                refs = md.get("ownerReferences") or []
                if not refs or md.get("deletionTimestamp"):
                    continue
                states = [(self._owner_state(res, o, r), r) for r in refs]
                bad = {r.get("uid") for s, r in states if s != "solid"}
                if not bad:
                    continue
                if any(s == "solid" for s, _ in states):
                    self._drop_refs(res, o, bad)
                    continue
                fins = md.get("finalizers") or []
                policy = "Background"
                if any(s == "waiting" for s, _ in states) or st.GC_FOREGROUND in fins:
                    policy = "Foreground"
                if st.GC_ORPHAN in fins:
                    policy = "Orphan"
                self.store.delete(res, md.get("namespace", ""), md["name"],
                                  {"propagationPolicy": policy,
                                   "preconditions": {"uid": md["uid"]}})

    # ---- namespace controller ----

    def namespaces(self):
        for ns in self.store.objects(NAMESPACES):
            if not ns["metadata"].get("deletionTimestamp"):
                continue
            name = ns["metadata"]["name"]
            left = 0
            for res in RESOURCES:
                if not res.namespaced:
                    continue
                for o in self.store.objects(res, name):
                    left += 1
                    if not o["metadata"].get("deletionTimestamp"):
                        self.store.delete(res, name, o["metadata"]["name"],
                                          {"propagationPolicy": "Background"})
            if not left:
                self.store.finalize_namespace(name)
