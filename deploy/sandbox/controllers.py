"""Minimal in-process kube-controller-manager: the PV binder (persistentvolume controller),
the pvc-protection and pv-protection controllers, the garbage collector and the namespace
controller. They run in one thread, level-triggered per object: the store's change
notifications queue the changed objects and the objects related to them, and each round
syncs only those (plus a full resync every 30 s as a safety net). They read and write
through the same store the HTTP API uses, so clients see their writes (new
resourceVersions, watch events, 409s on stale updates) exactly as they would see
kube-controller-manager's."""

import re
import threading
import time
import traceback

import store as st
from resources import BY_KEY, BY_KIND, RESOURCES, now_rfc3339, resource

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


def _claim_ref_key(pv):
    cr = ((pv or {}).get("spec") or {}).get("claimRef")
    if not cr:
        return None
    return (cr.get("namespace", ""), cr.get("name", ""))


def _volume_name(pvc):
    return ((pvc or {}).get("spec") or {}).get("volumeName") or None


def _pod_claims(pod):
    if not pod:
        return set()
    ns = pod["metadata"].get("namespace", "")
    return {(ns, ((v or {}).get("persistentVolumeClaim") or {}).get("claimName"))
            for v in (pod.get("spec") or {}).get("volumes") or []
            if ((v or {}).get("persistentVolumeClaim") or {}).get("claimName")}


def _owner_uids(obj):
    if not obj:
        return set()
    return {r.get("uid") for r in obj["metadata"].get("ownerReferences") or []}


class Controllers:
    """Level-triggered per object, as kube-controller-manager's controllers are: the store's
    change notifications feed a queue of events; each event updates the indexes (owner uid ->
    dependents, claim -> PVs naming it, PV -> claims naming it, unbound claims, PVs without a
    claimRef) and enqueues the changed object and the objects related to it for each
    controller. Each round syncs only those keys. A full resync of every object (and a rebuild
    of the indexes) runs every `resync` seconds as a safety net; a key whose sync failed (a
    lost race) is retried after 0.5 s."""

    RETRY = 0.5

    def __init__(self, store, enabled, log=lambda msg: None, resync=30.0):
        self.store = store
        self.enabled = [c for c in ALL if c in enabled]
        self.log = log
        self.resync = resync
        self.thread = None
        self.emitted = set()
        self.stop_event = threading.Event()
        self.cond = threading.Condition(threading.Lock())
        self.events = []            # (res, type, obj, prev) from the store, in order
        self.retry = {}             # (controller, key) -> time to retry at
        self.rounds = 0             # statistics, for tests
        self.full_rounds = 0
        self.synced = 0
        self.queued_rv = 0          # resourceVersion of the last store event queued
        self.processed_rv = 0       # every store change up to this one has been handled
        self.wait_until = None      # monotonic time the idle loop sleeps until
        self._reset_indexes()

    def start(self):
        if not self.enabled:
            return
        with self.store.lock:
            self.store.listeners.append(self._notify)
        self.thread = threading.Thread(target=self._run, name="controllers", daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()
        if self.thread:
            self.thread.join(5)
        with self.store.lock:
            if self._notify in self.store.listeners:
                self.store.listeners.remove(self._notify)

    def _notify(self, res, etype, obj, prev):
        # Called by the store with its lock held: only queue the event.
        with self.cond:
            self.events.append((res, etype, obj, prev))
            self.queued_rv = self.store.rv
            self.cond.notify()

    def stats(self):
        """For tests (GET /_fault): a test that expects no reaction to its change waits until
        processed_rv reaches the resourceVersion of that change (and no retry is pending):
        by then any write the controllers make in response has been made."""
        with self.cond:
            return {"enabled": list(self.enabled), "running": bool(self.thread and
                                                                   self.thread.is_alive()),
                    "rounds": self.rounds, "full_rounds": self.full_rounds,
                    "synced": self.synced, "processed_rv": self.processed_rv,
                    "pending_events": len(self.events), "retries": len(self.retry),
                    "next_wake_in": None if self.wait_until is None else
                    max(0.0, self.wait_until - time.monotonic())}

    # ---- indexes (owned by the controller thread) ----

    def _reset_indexes(self):
        self.uid_key = {}           # uid -> (resource key, namespace, name)
        self.deps = {}              # owner uid -> {(resource key, namespace, name)}
        self.pvs_by_claim = {}      # (namespace, name) -> {PV names whose claimRef names it}
        self.claims_by_pv = {}      # PV name -> {(namespace, name) of claims naming it}
        self.unbound = set()        # (namespace, name) of claims without spec.volumeName
        self.free_pvs = set()       # PV names without a claimRef
        self.terminating = set()    # namespaces with a deletionTimestamp

    def _rebuild_indexes(self):
        """From the store's current state (store lock held)."""
        self._reset_indexes()
        for res, o in self.store.all_objects():
            self._index(res, None, o)

    @staticmethod
    def _key(res, obj):
        md = obj["metadata"]
        return (res.key, md.get("namespace", "") if res.namespaced else "", md["name"])

    @staticmethod
    def _discard(index, k, v):
        s = index.get(k)
        if s is not None:
            s.discard(v)
            if not s:
                del index[k]

    def _index(self, res, prev, obj):
        """Move res's object from prev to obj (either may be None) in the indexes."""
        o = obj if obj is not None else prev
        key = self._key(res, o)
        uid = o["metadata"].get("uid")
        for u in _owner_uids(prev):
            self._discard(self.deps, u, key)
        if obj is None:
            self.uid_key.pop(uid, None)
        else:
            self.uid_key[uid] = key
            for u in _owner_uids(obj):
                self.deps.setdefault(u, set()).add(key)
        name, nk = o["metadata"]["name"], (key[1], key[2])
        if res is PVS:
            if prev is not None and _claim_ref_key(prev):
                self._discard(self.pvs_by_claim, _claim_ref_key(prev), name)
            self.free_pvs.discard(name)
            if obj is not None:
                if _claim_ref_key(obj):
                    self.pvs_by_claim.setdefault(_claim_ref_key(obj), set()).add(name)
                else:
                    self.free_pvs.add(name)
        elif res is PVCS:
            if _volume_name(prev):
                self._discard(self.claims_by_pv, _volume_name(prev), nk)
            self.unbound.discard(nk)
            if obj is not None:
                if _volume_name(obj):
                    self.claims_by_pv.setdefault(_volume_name(obj), set()).add(nk)
                else:
                    self.unbound.add(nk)
        elif res is NAMESPACES:
            self.terminating.discard(name)
            if obj is not None and obj["metadata"].get("deletionTimestamp"):
                self.terminating.add(name)

    def _handle(self, res, etype, obj, prev, work):
        """One store event: update the indexes, add the keys to sync to work."""
        cur = None if etype == "DELETED" else obj
        self._index(res, prev, cur)
        key = self._key(res, obj)
        ns, name = key[1], key[2]
        if res is PVS:
            work["pv-binder-pv"].add(name)
            for o in (obj, prev):
                if _claim_ref_key(o):
                    work["pv-binder-claim"].add(_claim_ref_key(o))
            work["pv-binder-claim"].update(self.claims_by_pv.get(name, ()))
            if cur is not None and not _claim_ref_key(cur):
                work["pv-binder-claim"].update(self.unbound)   # a PV to match statically
            work["pv-protection"].add(name)
        elif res is PVCS:
            nk = (ns, name)
            work["pv-binder-claim"].add(nk)
            for o in (obj, prev):
                if _volume_name(o):
                    work["pv-binder-pv"].add(_volume_name(o))
            work["pv-binder-pv"].update(self.pvs_by_claim.get(nk, ()))
            work["pvc-protection"].add(nk)
        elif res is PODS:
            work["pvc-protection"].update(_pod_claims(obj))
            work["pvc-protection"].update(_pod_claims(prev))
        elif res is SCS:
            work["pv-binder-claim"].update(self.unbound)
        elif res is NAMESPACES:
            work["namespace"].add(name)
        if res.namespaced and ns in self.terminating:
            work["namespace"].add(ns)
        gc = work["garbage-collector"]
        gc.add(key)
        gc.update(self.deps.get(obj["metadata"].get("uid"), ()))
        for u in _owner_uids(obj) | _owner_uids(prev):
            if u in self.uid_key:
                gc.add(self.uid_key[u])

    # ---- the loop ----

    QUEUES = ("pv-binder-pv", "pv-binder-claim", "pvc-protection", "pv-protection",
              "garbage-collector", "namespace")

    def _run(self):
        next_full = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            full = now >= next_full
            with self.cond:
                if not full and not self.events:
                    wake = min([next_full] + list(self.retry.values()))
                    if wake > now:
                        self.wait_until = wake
                        self.cond.wait(wake - now)
                        self.wait_until = None
                events, self.events = self.events, []
                upto = self.queued_rv
            if self.stop_event.is_set():
                break
            now = time.monotonic()
            work = {q: set() for q in self.QUEUES}
            for ev in events:
                try:
                    self._handle(*ev, work)
                except Exception:  # noqa: BLE001 - the next full resync repairs the indexes
                    self.log("controllers: event handling crashed:\n%s" % traceback.format_exc())
            for (q, k), t in list(self.retry.items()):
                if t <= now:
                    del self.retry[(q, k)]
                    work[q].add(k)
            if full or now >= next_full:
                with self.store.lock:
                    with self.cond:
                        self.events = []   # older than the state the full round reads
                        upto = self.queued_rv = self.store.rv
                    self._rebuild_indexes()
                self.retry.clear()
                self._full_round()
                next_full = time.monotonic() + self.resync
            else:
                self._round(work)
            with self.cond:
                self.processed_rv = max(self.processed_rv, upto)

    def _full_round(self):
        self.full_rounds += 1
        steps = {"pv-binder": self.pv_binder, "pvc-protection": self.pvc_protection,
                 "pv-protection": self.pv_protection, "garbage-collector": self.gc,
                 "namespace": self.namespaces}
        for name in self.enabled:
            try:
                steps[name]()
            except st.ApiError as e:   # a lost race: the next round retries
                self.log("controller %s: %s" % (name, e.message))
            except Exception:  # noqa: BLE001 - keep the manager alive, log the bug
                self.log("controller %s crashed:\n%s" % (name, traceback.format_exc()))

    def _round(self, work):
        if not any(work.values()):
            return
        self.rounds += 1
        on = set(self.enabled)
        plan = []
        if "pv-binder" in on:
            plan += [("pv-binder-pv", self._sync_volume_key),
                     ("pv-binder-claim", self._sync_claim_key)]
        if "pvc-protection" in on:
            plan.append(("pvc-protection", self._pvc_protection_key))
        if "pv-protection" in on:
            plan.append(("pv-protection", self._pv_protection_key))
        if "garbage-collector" in on:
            plan += [("garbage-collector", self._gc_owner_key),
                     ("garbage-collector", self._gc_dependent_key)]
        if "namespace" in on:
            plan.append(("namespace", self._sync_namespace))
        for q, fn in plan:
            for k in sorted(work[q]):
                self.synced += 1
                try:
                    fn(k)
                except st.ApiError as e:   # a lost race: retried shortly
                    self.log("controller %s: %s" % (q, e.message))
                    self.retry[(q, k)] = time.monotonic() + self.RETRY
                except Exception:  # noqa: BLE001 - keep the manager alive, log the bug
                    self.log("controller %s crashed:\n%s" % (q, traceback.format_exc()))
                    self.retry[(q, k)] = time.monotonic() + self.RETRY

    def _fetch(self, res, ns, name):
        try:
            return self.store.get(res, ns, name)
        except st.ApiError:
            return None

    def _sync_volume_key(self, name):
        pv = self._fetch(PVS, "", name)
        if pv is not None:
            self._sync_volume(pv)

    def _sync_claim_key(self, k):
        pvc = self._fetch(PVCS, k[0], k[1])
        if pvc is not None:
            self._sync_claim(pvc)

    def _pvc_protection_key(self, k):
        pvc = self._fetch(PVCS, k[0], k[1])
        if pvc is not None:
            self._pvc_protection_one(pvc)

    def _pv_protection_key(self, name):
        pv = self._fetch(PVS, "", name)
        if pv is not None:
            self._pv_protection_one(pv)

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
        # Only the PVs whose claimRef names this claim (from the index; checked again on
        # the current object), in name order as a list of every PV would give them.
        for pvname in sorted(self.pvs_by_claim.get((md["namespace"], md["name"]), ())):
            pv = self._fetch(PVS, "", pvname)
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
            pvs = (self._fetch(PVS, "", n) for n in sorted(self.free_pvs))
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
            self._pvc_protection_one(pvc)

    def _pvc_protection_one(self, pvc):
        fins = pvc["metadata"].get("finalizers") or []
        if pvc["metadata"].get("deletionTimestamp"):
            if st.PVC_PROTECTION in fins and not self._claim_in_use(pvc):
                self._set_finalizer(PVCS, pvc, st.PVC_PROTECTION, False)
        elif st.PVC_PROTECTION not in fins:
            self._set_finalizer(PVCS, pvc, st.PVC_PROTECTION, True)

    def pv_protection(self):
        for pv in self.store.objects(PVS):
            self._pv_protection_one(pv)

    def _pv_protection_one(self, pv):
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
                if md.get("deletionTimestamp"):
                    self._gc_owner(res, o, dependents.get(md["uid"], []))
            for res, o in everything:
                self._gc_dependent(res, self.store.peek(
                    res, o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def _gc_owner(self, res, o, deps):
        """A deleting owner (store lock held): deps is [(resource, dependent, its ref)]."""
        md = o["metadata"]
        fins = md.get("finalizers") or []
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

    def _gc_dependent(self, res, o):
        """An object whose owners may be gone or deleting (store lock held)."""
        if o is None:
            return
        md = o["metadata"]
        refs = md.get("ownerReferences") or []
        if not refs or md.get("deletionTimestamp"):
            return
        states = [(self._owner_state(res, o, r), r) for r in refs]
        bad = {r.get("uid") for s, r in states if s != "solid"}
        if not bad:
            return
        if any(s == "solid" for s, _ in states):
            self._drop_refs(res, o, bad)
            return
        fins = md.get("finalizers") or []
        policy = "Background"
        if any(s == "waiting" for s, _ in states) or st.GC_FOREGROUND in fins:
            policy = "Foreground"
        if st.GC_ORPHAN in fins:
            policy = "Orphan"
        self.store.delete(res, md.get("namespace", ""), md["name"],
                          {"propagationPolicy": policy,
                           "preconditions": {"uid": md["uid"]}})

    def _gc_owner_key(self, key):
        """The first pass of gc() for one object: a deleting owner's dependents."""
        res = BY_KEY[key[0]]
        with self.store.lock:
            o = self.store.peek(res, key[1], key[2])
            if o is None or not o["metadata"].get("deletionTimestamp"):
                return
            md = o["metadata"]
            fins = md.get("finalizers") or []
            if st.GC_ORPHAN not in fins and st.GC_FOREGROUND not in fins:
                return
            deps = []
            for dk in sorted(self.deps.get(md["uid"], ())):
                dres = BY_KEY[dk[0]]
                dep = self.store.peek(dres, dk[1], dk[2])
                for ref in (dep or {"metadata": {}})["metadata"].get("ownerReferences") or []:
                    if ref.get("uid") == md["uid"]:
                        deps.append((dres, dep, ref))
            self._gc_owner(res, o, deps)

    def _gc_dependent_key(self, key):
        """The second pass of gc() for one object: collect it when its owners are gone."""
        res = BY_KEY[key[0]]
        with self.store.lock:
            self._gc_dependent(res, self.store.peek(res, key[1], key[2]))

    # ---- namespace controller ----

    def namespaces(self):
        for ns in self.store.objects(NAMESPACES):
            self._sync_namespace(ns["metadata"]["name"])

    def _sync_namespace(self, name):
        with self.store.lock:
            ns = self.store.peek(NAMESPACES, "", name)
            if ns is None or not ns["metadata"].get("deletionTimestamp"):
                return
            inside = [(res, k[1], o["metadata"].get("deletionTimestamp"))
                      for res in RESOURCES if res.namespaced
                      for k, o in sorted(self.store.data[res.key].items()) if k[0] == name]
        for res, oname, deleting in inside:
            if not deleting:
                self.store.delete(res, name, oname, {"propagationPolicy": "Background"})
        if not inside:
            self.store.finalize_namespace(name)
