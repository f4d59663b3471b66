"""The StatefulSet controller of kube-controller-manager v1.32 (pkg/controller/statefulset):
reference/kubernetes.md section 3.

One sync of a set (key (namespace, name)), in the real controller's order:

1. its ControllerRevisions: the update revision is the set's current pod template (an existing
   equal revision is reused, or brought forward when it is not the latest), the current
   revision is the one named by status.currentRevision;
2. replicas (ordinals [start, start+replicas)) and condemned pods (other ordinals, highest
   first); missing replicas are made at the current revision below the partition, at the
   update revision otherwise;
3. each replica in ascending order: failed/succeeded pods are deleted (unless being deleted
   already) and made again once gone, missing
   ones are created (their claims first, `<template>-<set>-<ordinal>`); OrderedReady stops at
   the first pod created, terminating, not Running and Ready, or not Available; Parallel goes on;
   identity, storage and the claims' retention ownerRefs are repaired;
4. the retention ownerRefs of the condemned pods' claims are set, then condemned pods are
   deleted (OrderedReady: one at a time, highest first, each after the previous one is gone);
5. RollingUpdate: the highest replica at or above the partition whose revision is not the
   update revision is deleted, one at a time, each after the previous came back healthy;
   OnDelete: nothing;
6. status (replicas, ready, available, current, updated, revisions, observedGeneration,
   collisionCount; currentRevision becomes updateRevision when the rollout is complete) and
   the revision history trimmed to revisionHistoryLimit.

Claims are deleted only by the garbage collector, through the ownerRefs this controller sets
from persistentVolumeClaimRetentionPolicy (the table of section 3.5). Events are the real
controller's (SuccessfulCreate, SuccessfulDelete, FailedCreate, RecreatingFailedPod, ...).
"""

import copy
import json
import re
import time

import controllers
import labelsel
from resources import parse_rfc3339, resource

SETS, PODS, PVCS, REVS = (resource(n) for n in (
    "statefulsets", "pods", "persistentvolumeclaims", "controllerrevisions"))
COMPONENT = "statefulset-controller"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")
_SAFE = "bcdfghjklmnpqrstvwxz2456789"   # k8s.io/apimachinery/pkg/util/rand alphanums


# ---- naming and pod state (stateful_set_utils.go) ----

def parent_and_ordinal(pod):
    m = _ORDINAL.match(pod["metadata"]["name"])
    if not m:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal_of(pod):
    return parent_and_ordinal(pod)[1]


def start_ordinal(s):
    return int(((s.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def replicas_of(s):
    r = (s.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def in_range(s, pod):
    o = ordinal_of(pod)
    return start_ordinal(s) <= o < start_ordinal(s) + replicas_of(s)


def pod_name(s, ordinal):
    return "%s-%d" % (s["metadata"]["name"], ordinal)


def claim_name(s, tmpl, ordinal):
    return "%s-%s-%d" % (tmpl["metadata"]["name"], s["metadata"]["name"], ordinal)


def policy(s):
    p = (s.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return p.get("whenScaled") or "Retain", p.get("whenDeleted") or "Retain"


def is_created(pod):
    return bool((pod.get("status") or {}).get("phase"))


def phase(pod):
    return (pod.get("status") or {}).get("phase") or ""


def is_terminating(pod):
    return bool(pod["metadata"].get("deletionTimestamp"))


def _ready_condition(pod):
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def is_running_and_ready(pod):
    c = _ready_condition(pod)
    return phase(pod) == "Running" and c is not None and c.get("status") == "True"


def is_available(pod, min_ready, now=None):
    """podutil.IsPodAvailable: Ready for at least minReadySeconds."""
    if not is_running_and_ready(pod):
        return False
    if not min_ready:
        return True
    t = parse_rfc3339(_ready_condition(pod).get("lastTransitionTime"))
    return t is not None and t + min_ready <= (now if now is not None else time.time())


def is_healthy(pod):
    return is_running_and_ready(pod) and not is_terminating(pod)


def pod_revision(pod):
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


def controller_ref(obj):
    md = obj["metadata"]
    return {"apiVersion": obj.get("apiVersion") or ("apps/v1" if obj.get("kind") ==
                                                    "StatefulSet" else "v1"),
            "kind": obj.get("kind"), "name": md["name"], "uid": md["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _owner_is(ref, kind, api_version, name):
    return ref.get("name") == name and ref.get("kind") == kind and \
        ref.get("apiVersion") == api_version


def matches_ref(ref, obj):
    """matchesRef: name and GVK (not the UID)."""
    kind = obj.get("kind") or "Pod"
    av = obj.get("apiVersion") or ("apps/v1" if kind == "StatefulSet" else "v1")
    return _owner_is(ref, kind, av, obj["metadata"]["name"])


def has_owner_ref(claim, owner):
    uid = owner["metadata"].get("uid")
    return any(r.get("uid") == uid for r in claim["metadata"].get("ownerReferences") or [])


def has_stale_owner_ref(claim, obj):
    """A ref that names obj (kind and name) with another UID, including when obj has none
    yet (a pod about to be created)."""
    for r in claim["metadata"].get("ownerReferences") or []:
        if matches_ref(r, obj):
            return r.get("uid") != obj["metadata"].get("uid")
    return False


def has_unexpected_controller(claim, s, pod):
    if policy(s) == ("Retain", "Retain"):
        return False
    for r in claim["metadata"].get("ownerReferences") or []:
        if matches_ref(r, s):
            if r.get("uid") != s["metadata"]["uid"]:
                return True
            continue
        if matches_ref(r, pod):
            if r.get("uid") != pod["metadata"].get("uid"):
                return True
            continue
        if r.get("controller"):
            return True
    return False


def has_non_controller_owner(claim, s, pod):
    uids = {s["metadata"]["uid"], pod["metadata"].get("uid")}
    return any(r.get("uid") in uids and not r.get("controller")
               for r in claim["metadata"].get("ownerReferences") or [])


def claim_owner_up_to_date(claim, s, pod):
    """isClaimOwnerUpToDate: the table of reference section 3.5."""
    if has_stale_owner_ref(claim, s) or has_stale_owner_ref(claim, pod):
        return True   # managed by an earlier incarnation: left alone
    if has_unexpected_controller(claim, s, pod):
        return not (has_owner_ref(claim, s) or has_owner_ref(claim, pod))
    if has_non_controller_owner(claim, s, pod):
        return False
    scaled, deleted = policy(s)
    set_ref, pod_ref = has_owner_ref(claim, s), has_owner_ref(claim, pod)
    down = not in_range(s, pod)
    if scaled == "Delete" and deleted == "Delete":
        return down != set_ref and down == pod_ref
    if scaled == "Delete":
        return not set_ref and down == pod_ref
    if deleted == "Delete":
        return set_ref and not pod_ref
    return not set_ref and not pod_ref


def update_claim_owner_refs(claim, s, pod):
    """updateClaimOwnerRefForSetAndPod (edits claim)."""
    unexpected = has_unexpected_controller(claim, s, pod)
    refs = [r for r in claim["metadata"].get("ownerReferences") or []
            if not (matches_ref(r, s) or matches_ref(r, pod))]
    if not unexpected:
        scaled, deleted = policy(s)
        down = not in_range(s, pod)

        def add(owner):
            if not any(r.get("uid") == owner["metadata"]["uid"] for r in refs):
                refs.append(controller_ref(owner))
        if scaled == "Delete" and down:
            add(pod)
        if deleted == "Delete" and (scaled == "Retain" or not down):
            add(s)
    if refs:
        claim["metadata"]["ownerReferences"] = refs
    else:
        claim["metadata"].pop("ownerReferences", None)


def claims_for(s, ordinal):
    """getPersistentVolumeClaims: {template name: claim object} for one ordinal."""
    out = {}
    sel = ((s["spec"].get("selector") or {}).get("matchLabels")) or {}
    for t in s["spec"].get("volumeClaimTemplates") or []:
        c = copy.deepcopy(t)
        c.pop("status", None)
        md = c.setdefault("metadata", {})
        md["name"] = claim_name(s, t, ordinal)
        md["namespace"] = s["metadata"]["namespace"]
        labels = dict(md.get("labels") or {})
        labels.update(sel)
        md["labels"] = labels
        c["apiVersion"], c["kind"] = "v1", "PersistentVolumeClaim"
        out[t["metadata"]["name"]] = c
    return out


def update_identity(s, pod):
    o = ordinal_of(pod)
    md = pod["metadata"]
    md["name"] = pod_name(s, o)
    md["namespace"] = s["metadata"]["namespace"]
    labels = md.setdefault("labels", {})
    labels[POD_NAME_LABEL] = md["name"]
    labels[POD_INDEX_LABEL] = str(o)


def identity_matches(s, pod):
    parent, o = parent_and_ordinal(pod)
    labels = pod["metadata"].get("labels") or {}
    return o >= 0 and parent == s["metadata"]["name"] and \
        pod["metadata"].get("namespace") == s["metadata"]["namespace"] and \
        labels.get(POD_NAME_LABEL) == pod["metadata"]["name"] and \
        labels.get(POD_INDEX_LABEL) == str(o)


def update_storage(s, pod):
    claims = claims_for(s, ordinal_of(pod))
    spec = pod.setdefault("spec", {})
    vols = [{"name": name, "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
            for name, c in claims.items()]
    vols += [v for v in spec.get("volumes") or [] if v.get("name") not in claims]
    spec["volumes"] = vols


def storage_matches(s, pod):
    vols = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for name, c in claims_for(s, ordinal_of(pod)).items():
        v = vols.get(name)
        if not v or (v.get("persistentVolumeClaim") or {}).get("claimName") != \
                c["metadata"]["name"]:
            return False
    return True


def new_pod(s, ordinal, revision):
    """newStatefulSetPod + setPodRevision: from s's template (already the right revision)."""
    tmpl = copy.deepcopy(s["spec"]["template"])
    tmd = tmpl.get("metadata") or {}
    md = {"name": pod_name(s, ordinal), "generateName": s["metadata"]["name"] + "-",
          "namespace": s["metadata"]["namespace"], "labels": dict(tmd.get("labels") or {}),
          "ownerReferences": [controller_ref(s)]}
    if tmd.get("annotations"):
        md["annotations"] = dict(tmd["annotations"])
    if tmd.get("finalizers"):
        md["finalizers"] = list(tmd["finalizers"])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": md,
           "spec": tmpl.get("spec") or {}}
    update_identity(s, pod)
    pod["spec"]["hostname"] = md["name"]
    if s["spec"].get("serviceName"):
        pod["spec"]["subdomain"] = s["spec"]["serviceName"]
    update_storage(s, pod)
    md["labels"][REVISION_LABEL] = revision
    return pod


# ---- revisions (pkg/controller/history, stateful_set_utils.go getPatch/newRevision) ----

def _fnv32a(data):
    h = 0x811c9dc5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return h


def revision_hash(data, collision):
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    if collision:
        raw += str(collision).encode()
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(_fnv32a(raw)))


def revision_data(s):
    """getPatch: the part of the set a revision records (its pod template, replace)."""
    tmpl = copy.deepcopy(s["spec"]["template"])
    tmpl["$patch"] = "replace"
    return {"spec": {"template": tmpl}}


def apply_revision(s, rev):
    out = copy.deepcopy(s)
    tmpl = copy.deepcopy(((rev.get("data") or {}).get("spec") or {}).get("template") or {})
    tmpl.pop("$patch", None)
    out["spec"]["template"] = tmpl
    return out


class StatefulSetController(controllers.Controller):
    name = "statefulset"
    watches = ("statefulsets", "pods", "controllerrevisions", "persistentvolumeclaims")
    resync = 30.0

    def __init__(self, store, log=lambda msg: None):
        super().__init__(store, log)
        self.sets = {}   # namespace -> set names, to map claims to sets

    def reset(self):
        self.sets = {}

    def keys(self, res, etype, obj, prev):
        md = obj["metadata"]
        ns = md.get("namespace", "")
        if res is SETS:
            names = self.sets.setdefault(ns, set())
            if etype == "DELETED":
                names.discard(md["name"])
            else:
                names.add(md["name"])
            return [(ns, md["name"])]
        if res is PVCS:
            # A claim of a set changed (e.g. the stale one it waits for is gone).
            return [(ns, n) for n in sorted(self.sets.get(ns, ())) if
                    re.match(r"^.+-%s-[0-9]+$" % re.escape(n), md["name"])]
        out = set()
        for o in (obj, prev):
            for r in (o or {"metadata": {}})["metadata"].get("ownerReferences") or []:
                if r.get("controller") and r.get("kind") == "StatefulSet":
                    out.add((ns, r.get("name")))
        if res is PODS and not out and md.get("labels"):
            parent = parent_and_ordinal(obj)[0]
            if parent in self.sets.get(ns, ()):
                out.add((ns, parent))   # an orphan the set may adopt
        return out

    # ---- events (stateful_pod_control.go recordPodEvent / recordClaimEvent) ----

    def _pod_event(self, verb, s, pod, err=None):
        title = verb.capitalize()
        if err is None:
            self.event(SETS, s, "Normal", "Successful" + title, "%s Pod %s in StatefulSet %s "
                       "successful" % (verb, pod["metadata"]["name"], s["metadata"]["name"]),
                       COMPONENT)
        else:
            self.event(SETS, s, "Warning", "Failed" + title, "%s Pod %s in StatefulSet %s "
                       "failed error: %s" % (verb, pod["metadata"]["name"],
                                             s["metadata"]["name"], err), COMPONENT)

    def _claim_event(self, verb, s, pod, claim, err=None):
        title = verb.capitalize()
        if err is None:
            self.event(SETS, s, "Normal", "Successful" + title, "%s Claim %s Pod %s in "
                       "StatefulSet %s success" % (verb, claim["metadata"]["name"],
                                                   pod["metadata"]["name"],
                                                   s["metadata"]["name"]), COMPONENT)
        else:
            self.event(SETS, s, "Warning", "Failed" + title, "%s Claim %s for Pod %s in "
                       "StatefulSet %s failed error: %s" % (
                           verb, claim["metadata"]["name"], pod["metadata"]["name"],
                           s["metadata"]["name"], err), COMPONENT)

    # ---- pod control (stateful_pod_control.go) ----

    def _create_claims(self, s, pod):
        errs = []
        for c in claims_for(s, ordinal_of(pod)).values():
            cur = self.fetch(PVCS, c["metadata"]["namespace"], c["metadata"]["name"])
            if cur is None:
                try:
                    self.store.create(PVCS, c["metadata"]["namespace"], c)
                    self._claim_event("create", s, pod, c)
                except controllers.ApiError as e:
                    errs.append("failed to create PVC %s: %s" % (c["metadata"]["name"],
                                                                 e.message))
                    if e.reason != "AlreadyExists":
                        self._claim_event("create", s, pod, c, e.message)
            elif cur["metadata"].get("deletionTimestamp"):
                errs.append("pvc %s is being deleted" % c["metadata"]["name"])
        if errs:
            msg = errs[0] if len(errs) == 1 else "[%s]" % ", ".join(errs)
            raise controllers.ApiError(409, "Conflict", msg)

    def _create_pod(self, s, pod):
        try:
            self._create_claims(s, pod)
        except controllers.ApiError as e:
            self._pod_event("create", s, pod, e.message)
            raise
        try:
            created = self.store.create(PODS, s["metadata"]["namespace"], pod)
        except controllers.ApiError as e:
            if e.reason == "AlreadyExists":
                raise
            self._pod_event("create", s, pod, e.message)
            raise
        try:
            self._update_claims_for_policy(s, created)
        except controllers.ApiError as e:
            self._pod_event("update", s, created, e.message)
            raise
        self._pod_event("create", s, created)
        return created

    def _delete_pod(self, s, pod):
        md = pod["metadata"]
        try:
            self.store.delete(PODS, md["namespace"], md["name"],
                              {"preconditions": {"uid": md["uid"]}})
        except controllers.ApiError as e:
            if e.code == 404:
                return
            self._pod_event("delete", s, pod, e.message)
            raise
        self._pod_event("delete", s, pod)

    def _claims_match_policy(self, s, pod):
        for c in claims_for(s, ordinal_of(pod)).values():
            cur = self.fetch(PVCS, c["metadata"]["namespace"], c["metadata"]["name"])
            if cur is not None and not claim_owner_up_to_date(cur, s, pod):
                return False
        return True

    def _update_claims_for_policy(self, s, pod):
        for c in claims_for(s, ordinal_of(pod)).values():
            ns, name = c["metadata"]["namespace"], c["metadata"]["name"]
            cur = self.fetch(PVCS, ns, name)
            if cur is None:
                continue
            if has_unexpected_controller(cur, s, pod):
                self.event(SETS, s, "Warning", "ConflictingController",
                           "PersistentVolumeClaim %s has a conflicting OwnerReference that acts "
                           "as a manging controller, the retention policy is ignored for this "
                           "claim" % name, COMPONENT)
            if not claim_owner_up_to_date(cur, s, pod):
                update_claim_owner_refs(cur, s, pod)
                try:
                    self.store.update(PVCS, ns, name, cur)
                except controllers.ApiError as e:
                    raise controllers.ApiError(e.code, e.reason, "could not update claim %s for "
                                               "delete policy ownerRefs: %s" % (name, e.message))

    def _claim_is_stale(self, s, pod):
        if policy(s)[0] == "Retain":
            return False
        for c in claims_for(s, ordinal_of(pod)).values():
            cur = self.fetch(PVCS, c["metadata"]["namespace"], c["metadata"]["name"])
            if cur is not None and has_stale_owner_ref(cur, pod):
                return True
        return False

    def _update_pod(self, s, pod):
        """UpdateStatefulPod: identity, storage and retention repaired, then one PUT."""
        for attempt in range(5):
            consistent = True
            if not identity_matches(s, pod):
                update_identity(s, pod)
                consistent = False
            if not storage_matches(s, pod):
                update_storage(s, pod)
                consistent = False
                try:
                    self._create_claims(s, pod)
                except controllers.ApiError as e:
                    self._pod_event("update", s, pod, e.message)
                    raise
            if not self._claims_match_policy(s, pod):
                try:
                    self._update_claims_for_policy(s, pod)
                except controllers.ApiError as e:
                    self._pod_event("update", s, pod, e.message)
                    raise
                consistent = False
            if consistent:
                return
            try:
                md = pod["metadata"]
                self.store.update(PODS, md["namespace"], md["name"], pod)
                self._pod_event("update", s, pod)
                return
            except controllers.ApiError as e:
                if e.code != 409 or attempt == 4:
                    self._pod_event("update", s, pod, e.message)
                    raise
                fresh = self.fetch(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                if fresh is None:
                    return
                pod = fresh

    # ---- revisions ----

    def _revisions(self, s):
        """ListRevisions + ClaimControllerRevisions: the set's own revisions; orphans that
        match its selector are adopted (a set deleted with --cascade=orphan and created again
        finds its history, so its pods' revision hashes stay current), owned ones that no
        longer match are released."""
        ns, uid = s["metadata"]["namespace"], s["metadata"]["uid"]
        sel = labelsel.selector_from_match(s["spec"].get("selector") or {})
        deleting = bool(s["metadata"].get("deletionTimestamp"))
        out = []
        for r in self.store.objects(REVS, ns):
            refs = r["metadata"].get("ownerReferences") or []
            ctl = [o for o in refs if o.get("controller")]
            matches = labelsel.labels_match(sel, r["metadata"].get("labels"))
            if ctl and ctl[0].get("uid") == uid:
                if matches or deleting:
                    out.append(r)
                    continue

                def release(o):
                    o["metadata"]["ownerReferences"] = [
                        x for x in o["metadata"].get("ownerReferences") or []
                        if x.get("uid") != uid]
                self.modify(REVS, ns, r["metadata"]["name"], release)
            elif not ctl and matches and not deleting and \
                    not r["metadata"].get("deletionTimestamp"):
                def adopt(o):
                    if not any(x.get("controller") for x in
                               o["metadata"].get("ownerReferences") or []):
                        o["metadata"].setdefault("ownerReferences", []).append(
                            controller_ref(s))
                adopted = self.modify(REVS, ns, r["metadata"]["name"], adopt)
                if adopted is not None and any(
                        x.get("uid") == uid for x in
                        adopted["metadata"].get("ownerReferences") or []):
                    out.append(adopted)
        out.sort(key=lambda r: (int(r.get("revision") or 0), r["metadata"]["creationTimestamp"],
                                r["metadata"]["name"]))
        return out

    def _revisions_for(self, s, revs):
        ns = s["metadata"]["namespace"]
        collision = int((s.get("status") or {}).get("collisionCount") or 0)
        data = revision_data(s)
        nxt = (int(revs[-1].get("revision") or 0) + 1) if revs else 1
        equal = [r for r in revs if r.get("data") == data]
        if equal and equal[-1] is revs[-1]:
            update = revs[-1]
        elif equal:
            def bump(o):
                o["revision"] = nxt
            update = self.modify(REVS, ns, equal[-1]["metadata"]["name"], bump)
        else:
            while True:
                name = "%s-%s" % (s["metadata"]["name"], revision_hash(data, collision))
                rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                       "metadata": {"name": name, "namespace": ns,
                                    "labels": dict(((s["spec"]["template"].get("metadata") or {})
                                                    .get("labels")) or {}),
                                    "ownerReferences": [controller_ref(s)]},
                       "data": data, "revision": nxt}
                try:
                    update = self.store.create(REVS, ns, rev)
                    break
                except controllers.ApiError as e:
                    if e.reason != "AlreadyExists":
                        raise
                    cur = self.fetch(REVS, ns, name)
                    if cur is not None and cur.get("data") == data and \
                            any(o.get("uid") == s["metadata"]["uid"] for o in
                                cur["metadata"].get("ownerReferences") or []):
                        update = cur
                        break
                    collision += 1
        current = None
        want = (s.get("status") or {}).get("currentRevision")
        for r in revs:
            if r["metadata"]["name"] == want:
                current = r
        return current or update, update, collision

    def _truncate_history(self, s, pods, revs, current, update):
        live = {current["metadata"]["name"], update["metadata"]["name"]}
        live.update(pod_revision(p) for p in pods)
        history = [r for r in revs if r["metadata"]["name"] not in live]
        limit = (s["spec"].get("revisionHistoryLimit"))
        limit = 10 if limit is None else int(limit)
        for r in history[:max(0, len(history) - limit)]:
            try:
                self.store.delete(REVS, r["metadata"]["namespace"], r["metadata"]["name"])
            except controllers.ApiError as e:
                if e.code != 404:
                    raise

    # ---- the sync ----

    def _pods(self, s):
        """getPodsForStatefulSet with the ControllerRefManager: owned pods, orphans adopted
        when they match the selector and are named for the set, owned ones that stopped
        matching released."""
        ns, uid = s["metadata"]["namespace"], s["metadata"]["uid"]
        sel = labelsel.selector_from_match(s["spec"].get("selector") or {})
        out = []
        for p in self.store.objects(PODS, ns):
            refs = p["metadata"].get("ownerReferences") or []
            ctl = [r for r in refs if r.get("controller")]
            matches = labelsel.labels_match(sel, p["metadata"].get("labels")) and \
                parent_and_ordinal(p)[0] == s["metadata"]["name"]
            if ctl and ctl[0].get("uid") == uid:
                if matches or s["metadata"].get("deletionTimestamp"):
                    out.append(p)
                    continue

                def release(o):
                    o["metadata"]["ownerReferences"] = [
                        r for r in o["metadata"].get("ownerReferences") or []
                        if r.get("uid") != uid]
                self.modify(PODS, ns, p["metadata"]["name"], release)
            elif not ctl and matches and not s["metadata"].get("deletionTimestamp") and \
                    not p["metadata"].get("deletionTimestamp"):
                def adopt(o):
                    o["metadata"].setdefault("ownerReferences", []).append(controller_ref(s))
                adopted = self.modify(PODS, ns, p["metadata"]["name"], adopt)
                if adopted is not None:
                    out.append(adopted)
        return out

    def sync(self, key):
        ns, name = key
        s = self.fetch(SETS, ns, name)
        if s is None:
            return
        s.setdefault("apiVersion", "apps/v1")
        s.setdefault("kind", "StatefulSet")
        pods = self._pods(s)
        revs = self._revisions(s)
        current, update, collision = self._revisions_for(s, revs)
        status, err = None, None
        try:
            status = self._update_set(s, current, update, collision, pods)
        except controllers.ApiError as e:
            err = e
            status = self._status_from(s, current, update, collision, self._pods(s))
        self._update_status(s, status)
        if err is not None:
            raise err
        self._truncate_history(s, self._pods(s), self._revisions(s), current, update)
        mrs = int(s["spec"].get("minReadySeconds") or 0)
        if mrs > 0 and status.get("readyReplicas", 0) != status.get("availableReplicas", 0):
            self.requeue_after(key, mrs)

    def _status_from(self, s, current, update, collision, pods):
        st = {"observedGeneration": s["metadata"].get("generation", 1),
              "currentRevision": current["metadata"]["name"],
              "updateRevision": update["metadata"]["name"], "collisionCount": collision}
        self._count(st, s, current, update, pods)
        return st

    @staticmethod
    def _count(st, s, current, update, pods):
        mrs = int(s["spec"].get("minReadySeconds") or 0)
        now = time.time()
        n = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0,
             "updatedReplicas": 0}
        for p in pods:
            if p is None:
                continue
            if is_created(p):
                n["replicas"] += 1
            if is_running_and_ready(p):
                n["readyReplicas"] += 1
                if is_available(p, mrs, now):
                    n["availableReplicas"] += 1
            if is_created(p) and not is_terminating(p):
                rv = pod_revision(p)
                if rv == current["metadata"]["name"]:
                    n["currentReplicas"] += 1
                if rv == update["metadata"]["name"]:
                    n["updatedReplicas"] += 1
        st.update(n)

    def _update_set(self, s, current, update, collision, pods):
        """updateStatefulSet; returns the status to write."""
        cur_set, upd_set = apply_revision(s, current), apply_revision(s, update)
        cur_name, upd_name = current["metadata"]["name"], update["metadata"]["name"]
        status = self._status_from(s, current, update, collision, pods)
        start, count = start_ordinal(s), replicas_of(s)
        replicas = [None] * count
        condemned = []
        for p in pods:
            o = ordinal_of(p)
            if in_range(s, p):
                replicas[o - start] = p
            elif o >= 0:
                condemned.append(p)
        strategy = s["spec"].get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        cur_count = int((s.get("status") or {}).get("currentReplicas") or 0)

        def versioned(ordinal):
            """newVersionedStatefulSetPod: below the partition at the current revision."""
            if rolling and ((strategy.get("rollingUpdate") is None and
                             ordinal < start + cur_count) or
                            (strategy.get("rollingUpdate") is not None and
                             ordinal < start + partition)):
                return new_pod(cur_set, ordinal, cur_name)
            return new_pod(upd_set, ordinal, upd_name)
        for i in range(count):
            if replicas[i] is None:
                replicas[i] = versioned(start + i)
        condemned.sort(key=ordinal_of, reverse=True)
        first_unhealthy = None
        for p in replicas + condemned[::-1]:
            if not is_healthy(p) and first_unhealthy is None:
                first_unhealthy = p
        if s["metadata"].get("deletionTimestamp"):
            return status
        monotonic = (s["spec"].get("podManagementPolicy") or "OrderedReady") != "Parallel"
        mrs = int(s["spec"].get("minReadySeconds") or 0)

        def finish():
            st = dict(status)
            self._count(st, s, current, update, replicas + condemned)
            return st

        def run_for_all(items, fn):
            """runForAll: monotonic stops at the first that says so; Parallel runs them all
            (slowStartBatch 1, 2, 4, ... stops at the first batch with an error)."""
            if monotonic:
                for i in range(len(items)):
                    if fn(i):
                        return True
                return False
            i, batch = 0, 1
            while i < len(items):
                errs = []
                for j in range(i, min(len(items), i + batch)):
                    try:
                        fn(j)
                    except controllers.ApiError as e:
                        errs.append(e)
                if errs:
                    raise errs[0]
                i += batch
                batch = min(batch * 2, 500)
            return False

        def process_replica(i):
            p = replicas[i]
            if phase(p) in ("Failed", "Succeeded") and is_created(p):
                # processReplica (v1.32): a finished pod is deleted unless it is being deleted
                # already, and its replacement is made on a later sync, once it is gone. A pod
                # being deleted turns Succeeded/Failed when its kubelet stops its containers,
                # before it unmounts its volumes; deleting it again then (a finished pod's
                # grace period is 0) would remove the object at once, so its claims could go
                # (whenScaled Delete) while still mounted.
                if not is_terminating(p):
                    if phase(p) == "Failed":
                        self.event(SETS, s, "Warning", "RecreatingFailedPod", "StatefulSet "
                                   "%s/%s is recreating failed Pod %s" % (
                                       s["metadata"]["namespace"], s["metadata"]["name"],
                                       p["metadata"]["name"]), COMPONENT)
                    else:
                        self.event(SETS, s, "Normal", "RecreatingTerminatedPod", "StatefulSet "
                                   "%s/%s is recreating terminated Pod %s" % (
                                       s["metadata"]["namespace"], s["metadata"]["name"],
                                       p["metadata"]["name"]), COMPONENT)
                    self._delete_pod(s, p)
                return True
            if not is_created(p):
                if self._claim_is_stale(s, p):
                    return True   # its claim is still being deleted: wait for it
                replicas[i] = self._create_pod(s, p)
                if monotonic:
                    return True
                p = replicas[i]
            if phase(p) == "Pending":
                self._create_claims(s, p)
            if is_terminating(p) and monotonic:
                return True
            if not is_running_and_ready(p) and monotonic:
                return True
            if not is_available(p, mrs) and monotonic:
                return True
            try:
                retention = self._claims_match_policy(upd_set, p)
            except controllers.ApiError:
                retention = True
            if identity_matches(s, p) and storage_matches(s, p) and retention:
                return False
            self._update_pod(upd_set, copy.deepcopy(p))
            return False

        if run_for_all(replicas, process_replica):
            return finish()

        def fix_claim(i):
            if not self._claims_match_policy(upd_set, condemned[i]):
                self._update_claims_for_policy(upd_set, condemned[i])
            return False
        if run_for_all(condemned, fix_claim):
            return finish()

        def process_condemned(i):
            p = condemned[i]
            if is_terminating(p):
                return monotonic
            if monotonic and p is not first_unhealthy and (
                    not is_running_and_ready(p) or not is_available(p, mrs)):
                return True
            self._delete_pod(s, p)
            return True
        if run_for_all(condemned, process_condemned):
            return finish()
        status = finish()
        if not rolling:
            return status
        for target in range(len(replicas) - 1, partition - 1, -1):
            p = replicas[target]
            if pod_revision(p) != upd_name and not is_terminating(p):
                self._delete_pod(s, p)
                status["currentReplicas"] -= 1
                return status
            if not is_healthy(p):
                return status
        return status

    def _update_status(self, s, status):
        """updateStatefulSetStatus with completeRollingUpdate; no write when nothing changed."""
        status = dict(status)
        rolling = ((s["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") ==
                   "RollingUpdate")
        if rolling and status["updatedReplicas"] == status["replicas"] and \
                status["readyReplicas"] == status["replicas"]:
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = status["updateRevision"]
        for k in ("readyReplicas", "currentReplicas", "updatedReplicas", "collisionCount"):
            if not status.get(k):
                status.pop(k, None)   # omitempty in apps/v1
        old = dict(s.get("status") or {})
        keep = {k: v for k, v in old.items() if k == "conditions"}
        new = dict(keep, **status)
        if new == old:
            return

        def fn(o):
            o["status"] = new
        self.modify(SETS, s["metadata"]["namespace"], s["metadata"]["name"], fn, sub="status")

