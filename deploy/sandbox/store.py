"""In-memory object store with the semantics of kube-apiserver's generic registry over etcd:
one global resourceVersion counter, create/update/patch/delete with optimistic concurrency,
status subresources, finalizers and deletionTimestamp, propagation-policy finalizers,
admission (protection finalizers, default StorageClass, namespace lifecycle), consistent
paged lists and a bounded watch history."""

import base64
import bisect
import copy
import json
import random
import threading
import uuid

import apierrors
import managedfields
import patch as patchlib
import resources
from apierrors import ApiError
from resources import BY_KEY, RESOURCES, now_rfc3339, resource

NAMESPACES = resource("namespaces")
PVCS = resource("persistentvolumeclaims")
PVS = resource("persistentvolumes")
SCS = resource("storageclasses")
EVENTS = resource("events")
PODS = resource("pods")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
GC_ORPHAN = "orphan"
GC_FOREGROUND = "foregroundDeletion"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _strip_rv(o):
    o = dict(o)
    md = dict(o.get("metadata") or {})
    md.pop("resourceVersion", None)
    md.pop("managedFields", None)
    o["metadata"] = md
    return o


class Store:
    def __init__(self, window=1000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 100
        self.data = {r.key: {} for r in RESOURCES}
        self.history = []          # (rv, resource key, type, object, previous object)
        self.window = window
        self.compacted = self.rv   # events with rv <= compacted are gone from history
        self.stopping = False
        self._event_index = {}
        self.listeners = []        # fn(res, type, obj, prev), called with the lock held
        # Graceful pod deletion (a kubelet finishes it); off for a bare server, where nothing
        # would ever confirm the deletion of a scheduled pod. kubelet.Kubelet turns it on.
        self.graceful_pods = False
        self.default_tolerations = None   # (not-ready, unreachable) seconds: apiserver.py
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(NAMESPACES, "", {"metadata": {"name": ns}})
        self.compact()

    # ---- helpers ----

    @staticmethod
    def _nskey(res, ns):
        return ns if res.namespaced else ""

    def _bump(self):
        self.rv += 1
        return self.rv

    def _record(self, res, etype, obj, prev):
        obj = copy.deepcopy(obj)
        self.history.append((self.rv, res.key, etype, obj, prev))
        for fn in self.listeners:   # must be cheap and must not mutate obj or prev
            fn(res, etype, obj, prev)
        if len(self.history) > self.window:
            drop = len(self.history) - self.window
            self.compacted = self.history[drop - 1][0]
            del self.history[:drop]
        self.cond.notify_all()

    def compact(self):
        """Forget all watch history: every older resourceVersion becomes too old (410)."""
        with self.lock:
            self.history = []
            self.compacted = self.rv
            self.cond.notify_all()

    def set_window(self, n):
        with self.lock:
            self.window = max(1, int(n))

    def current_rv(self):
        with self.lock:
            return self.rv

    def get(self, res, ns, name):
        with self.lock:
            o = self.data[res.key].get((self._nskey(res, ns), name))
            if o is None:
                raise apierrors.not_found(res, name)
            return copy.deepcopy(o)

    def peek(self, res, ns, name):
        """The stored object (no copy) or None; callers must hold the lock and not mutate."""
        return self.data[res.key].get((self._nskey(res, ns), name))

    def objects(self, res, ns=None):
        with self.lock:
            return [copy.deepcopy(o) for (n, _), o in sorted(self.data[res.key].items())
                    if ns is None or n == ns]

    def scan(self, res, fn, ns=None):
        """[fn(o) for each stored object of res (in ns)], in key order, under the lock and
        without copies: fn must only read, and return what it needs (not o itself). For
        read-only loops over many objects (a deepcopy of each is most of their cost)."""
        with self.lock:
            return [fn(o) for (n, _), o in sorted(self.data[res.key].items())
                    if ns is None or n == ns]

    # ---- create ----

    def create(self, res, ns, body, dry_run=False):
        if not isinstance(body, dict):
            raise apierrors.bad_request("the body must be a JSON object")
        obj = copy.deepcopy(body)
        resources.check_kind(res, obj)
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise apierrors.bad_request("metadata must be an object")
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise apierrors.bad_request("the namespace of the provided object does not "
                                            "match the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        if md.get("resourceVersion"):
            raise apierrors.bad_request("resourceVersion should not be set on objects to be "
                                        "created")
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + "".join(random.choice(_GEN_CHARS)
                                                          for _ in range(5))
            else:
                raise apierrors.invalid(res, "", [("metadata.name", "FieldValueRequired",
                                                   "Required value: name or generateName is "
                                                   "required")])
        name = md["name"]
        with self.lock:
            if res.namespaced:
                nso = self.peek(NAMESPACES, "", ns)
                if nso is None:
                    raise apierrors.not_found(NAMESPACES, ns)
                if nso["metadata"].get("deletionTimestamp") and res is not EVENTS:
                    raise apierrors.forbidden(res, name, "unable to create new content in "
                                              "namespace %s because it is being terminated" % ns)
            if self.peek(res, ns, name) is not None:
                raise apierrors.already_exists(res, name)
            for k in ("uid", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "managedFields", "generation"):
                md.pop(k, None)
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_rfc3339()
            if res.generation:
                md["generation"] = 1
            resources.prepare_for_create(res, obj)
            self._admit_create(res, obj)
            resources.apply_defaults(res, obj)
            causes = resources.validate(res, obj)
            if causes:
                raise apierrors.invalid(res, name, causes)
            managedfields.stamp(None, obj)
            if dry_run:
                return obj
            md["resourceVersion"] = str(self._bump())
            self.data[res.key][(self._nskey(res, ns), name)] = obj
            self._record(res, "ADDED", obj, None)
            return copy.deepcopy(obj)

    def _admit_create(self, res, obj):
        md = obj["metadata"]
        if res is PVCS:   # StorageObjectInUseProtection + DefaultStorageClass admission
            if PVC_PROTECTION not in (md.get("finalizers") or []):
                md.setdefault("finalizers", []).append(PVC_PROTECTION)
            spec = obj.setdefault("spec", {})
            ann = md.get("annotations") or {}
            if spec.get("storageClassName") is None and \
                    "volume.beta.kubernetes.io/storage-class" not in ann:
                default = None
                for sc in self.data[SCS.key].values():
                    a = sc["metadata"].get("annotations") or {}
                    if "true" in (a.get("storageclass.kubernetes.io/is-default-class"),
                                  a.get("storageclass.beta.kubernetes.io/is-default-class")):
                        if default is None or sc["metadata"]["creationTimestamp"] > \
                                default["metadata"]["creationTimestamp"]:
                            default = sc
                if default is not None:
                    spec["storageClassName"] = default["metadata"]["name"]
        elif res is PVS:
            if PV_PROTECTION not in (md.get("finalizers") or []):
                md.setdefault("finalizers", []).append(PV_PROTECTION)
        elif res is PODS and self.default_tolerations is not None:
            # DefaultTolerationSeconds: NoExecute tolerations of not-ready and unreachable
            # nodes for pods that have none for them (taint eviction, nodelifecycle.py)
            spec = obj.setdefault("spec", {})
            tols = spec.get("tolerations") or []
            for key, secs in zip(("node.kubernetes.io/not-ready",
                                  "node.kubernetes.io/unreachable"), self.default_tolerations):
                if not any(t.get("effect") in (None, "", "NoExecute") and
                           (t.get("operator") == "Exists" and not t.get("key") or
                            t.get("key") == key) for t in tols):
                    tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                 "tolerationSeconds": secs})
            if tols:
                spec["tolerations"] = tols

    # ---- update / patch ----

    def _check_identity(self, res, ns, name, obj):
        if not isinstance(obj, dict):
            raise apierrors.bad_request("the body must be a JSON object")
        resources.check_kind(res, obj)
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = obj["metadata"] = {}
        if md.get("name") and md["name"] != name:
            raise apierrors.bad_request("the name of the object (%s) does not match the name on "
                                        "the URL (%s)" % (md["name"], name))
        if res.namespaced and md.get("namespace") and md["namespace"] != ns:
            raise apierrors.bad_request("the namespace of the provided object does not match "
                                        "the namespace sent on the request")

    def _merge_for_update(self, res, old, obj, sub):
        if sub == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = copy.deepcopy(obj["status"])
            else:
                new.pop("status", None)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        else:
            new = copy.deepcopy(obj)
            md = new["metadata"]
            omd = old["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "name", "namespace"):
                if k in omd:
                    md[k] = omd[k]
                else:
                    md.pop(k, None)
            if res.status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if res is NAMESPACES:
                new.setdefault("spec", {})["finalizers"] = (old.get("spec") or {}).get(
                    "finalizers", [])
        new["kind"], new["apiVersion"] = res.kind, res.api_version
        resources.apply_defaults(res, new)
        causes = resources.validate(res, new, old)
        if causes:
            raise apierrors.invalid(res, old["metadata"]["name"], causes)
        if res.generation and sub != "status":
            g = old["metadata"].get("generation", 1)
            new["metadata"]["generation"] = g + 1 if new.get("spec") != old.get("spec") else g
        return new

    def _commit(self, res, old, new, dry_run=False, sub=None):
        """Store `new` over `old` (lock held). No-op writes keep the resourceVersion."""
        managedfields.carry(old, new)
        if _strip_rv(new) == _strip_rv(old):
            return copy.deepcopy(old)
        managedfields.stamp(old, new, sub)
        if dry_run:
            return new
        md = new["metadata"]
        key = (self._nskey(res, md.get("namespace", "")), md["name"])
        # ShouldDeleteDuringUpdate: only once the grace period is over (a pod being deleted
        # gracefully stays until its kubelet deletes it with gracePeriodSeconds=0).
        if md.get("deletionTimestamp") and not md.get("finalizers") and \
                not old["metadata"].get("deletionGracePeriodSeconds") and \
                not (res is NAMESPACES and (new.get("spec") or {}).get("finalizers")):
            md["resourceVersion"] = str(self._bump())
            del self.data[res.key][key]
            self._record(res, "DELETED", new, old)
            return copy.deepcopy(new)
        md["resourceVersion"] = str(self._bump())
        self.data[res.key][key] = new
        self._record(res, "MODIFIED", new, old)
        return copy.deepcopy(new)

    def update(self, res, ns, name, body, sub=None, dry_run=False):
        obj = copy.deepcopy(body)
        self._check_identity(res, ns, name, obj)
        with self.lock:
            old = self.peek(res, ns, name)
            if old is None:
                raise apierrors.not_found(res, name)
            rv = obj["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise apierrors.conflict(res, name)
            new = self._merge_for_update(res, old, obj, sub)
            return self._commit(res, old, new, dry_run, sub)

    def patch(self, res, ns, name, ptype, body, sub=None, dry_run=False):
        with self.lock:
            old = self.peek(res, ns, name)
            if old is None:
                raise apierrors.not_found(res, name)
            if ptype == "json":
                new = patchlib.json_patch(old, body)
            elif ptype == "merge":
                if not isinstance(body, dict):
                    raise apierrors.bad_request("merge patch must be a JSON object")
                new = patchlib.merge_patch(old, body)
            elif ptype == "strategic":
                new = patchlib.strategic_merge_patch(old, body)
            else:
                raise ApiError(415, "UnsupportedMediaType", "unsupported patch type %s" % ptype)
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise apierrors.bad_request("patch produced an object without metadata")
            rv = new["metadata"].get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise apierrors.conflict(res, name)
            self._check_identity(res, ns, name, new)
            new = self._merge_for_update(res, old, new, sub)
            return self._commit(res, old, new, dry_run, sub)

    def mutate(self, res, ns, name, fn, sub=None):
        """Read-modify-write under the lock for in-process controllers: fn(obj) edits a copy."""
        with self.lock:
            old = self.peek(res, ns, name)
            if old is None:
                return None
            new = copy.deepcopy(old)
            fn(new)
            new = self._merge_for_update(res, old, new, sub)
            return self._commit(res, old, new, sub=sub)

    def bind(self, ns, name, node):
        """pods/binding: set spec.nodeName (only once, never on a deleting pod) and the
        PodScheduled=True condition, as the binding REST storage does. Returns the pod."""
        pods = resources.resource("pods")
        with self.lock:
            pod = self.peek(pods, ns, name)
            if pod is None:
                raise apierrors.not_found(pods, name)
            if pod["metadata"].get("deletionTimestamp"):
                raise apierrors.conflict(pods, name, "pod %s is being deleted, cannot be "
                                         "assigned to a host" % name)
            if (pod.get("spec") or {}).get("nodeName"):
                raise apierrors.conflict(pods, name, "pod %s is already assigned to node "
                                         "\"%s\"" % (name, pod["spec"]["nodeName"]))

            def fn(o):
                o["spec"]["nodeName"] = node
                conds = [c for c in (o.get("status") or {}).get("conditions") or []
                         if c.get("type") != "PodScheduled"]
                conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                              "lastTransitionTime": now_rfc3339()})
                o.setdefault("status", {})["conditions"] = conds
            old = self.peek(pods, ns, name)
            new = copy.deepcopy(old)
            fn(new)
            new["kind"], new["apiVersion"] = pods.kind, pods.api_version
            return self._commit(pods, old, new)

    # ---- delete ----

    def delete(self, res, ns, name, opts=None, dry_run=False):
        """Returns (object, deleted_now)."""
        opts = opts or {}
        with self.lock:
            old = self.peek(res, ns, name)
            if old is None:
                raise apierrors.not_found(res, name)
            pre = opts.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise apierrors.conflict(res, name, "Precondition failed: UID in precondition: "
                                         "%s, UID in object meta: %s"
                                         % (pre["uid"], old["metadata"]["uid"]))
            if pre.get("resourceVersion") and \
                    pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise apierrors.conflict(res, name, "Precondition failed: ResourceVersion in "
                                         "precondition: %s, ResourceVersion in object meta: %s"
                                         % (pre["resourceVersion"],
                                            old["metadata"]["resourceVersion"]))
            if res is NAMESPACES and name in PROTECTED_NAMESPACES:
                raise apierrors.forbidden(res, name, "this namespace may not be deleted")
            policy = opts.get("propagationPolicy")
            if policy is None and opts.get("orphanDependents") is not None:
                policy = "Orphan" if opts["orphanDependents"] else "Background"
            if policy not in (None, "Orphan", "Background", "Foreground"):
                raise apierrors.invalid(res, name, [("propagationPolicy", "FieldValueNotSupported",
                                                     'Unsupported value: "%s"' % policy)])
            new = copy.deepcopy(old)
            md = new["metadata"]
            fins = list(md.get("finalizers") or [])
            grace = self._pod_grace(old, opts) if res is PODS and self.graceful_pods else 0
            if grace is not None and md.get("deletionTimestamp") and \
                    md.get("deletionGracePeriodSeconds", 0) > grace:
                # A shorter grace period shortens a graceful deletion; 0 finishes it.
                if grace > 0 or fins:
                    md["deletionGracePeriodSeconds"] = grace
                    md["deletionTimestamp"] = resources.rfc3339_after(grace)
                    return self._commit(res, old, new, dry_run), False
                if dry_run:
                    return new, True
                md["resourceVersion"] = str(self._bump())
                del self.data[res.key][(self._nskey(res, ns), name)]
                self._record(res, "DELETED", new, old)
                return copy.deepcopy(new), True
            if md.get("deletionTimestamp"):
                # Already deleting: only the GC finalizers may change with a new policy.
                if policy == "Orphan" and GC_ORPHAN not in fins:
                    fins = [f for f in fins if f != GC_FOREGROUND] + [GC_ORPHAN]
                elif policy == "Foreground" and GC_FOREGROUND not in fins and GC_ORPHAN in fins:
                    fins = [f for f in fins if f != GC_ORPHAN] + [GC_FOREGROUND]
                if fins != (md.get("finalizers") or []):
                    md["finalizers"] = fins
                    return self._commit(res, old, new, dry_run), False
                return copy.deepcopy(old), False
            if policy == "Orphan":
                fins = [f for f in fins if f != GC_FOREGROUND]
                fins += [GC_ORPHAN] if GC_ORPHAN not in fins else []
            elif policy == "Foreground":
                fins = [f for f in fins if f != GC_ORPHAN]
                fins += [GC_FOREGROUND] if GC_FOREGROUND not in fins else []
            elif policy == "Background":
                fins = [f for f in fins if f not in (GC_ORPHAN, GC_FOREGROUND)]
            if fins:
                md["finalizers"] = fins
            else:
                md.pop("finalizers", None)
            ns_pending = res is NAMESPACES and (new.get("spec") or {}).get("finalizers")
            if fins or ns_pending or grace:
                md["deletionTimestamp"] = resources.rfc3339_after(grace or 0)
                md["deletionGracePeriodSeconds"] = grace or 0
                if md.get("generation", 0) > 0:
                    md["generation"] += 1
                if res is NAMESPACES:
                    new.setdefault("status", {})["phase"] = "Terminating"
                if dry_run:
                    return new, False
                md["resourceVersion"] = str(self._bump())
                self.data[res.key][(self._nskey(res, ns), name)] = new
                self._record(res, "MODIFIED", new, old)
                return copy.deepcopy(new), False
            if dry_run:
                return new, True
            md["resourceVersion"] = str(self._bump())
            del self.data[res.key][(self._nskey(res, ns), name)]
            self._record(res, "DELETED", new, old)
            return copy.deepcopy(new), True

    @staticmethod
    def _pod_grace(pod, opts):
        """The pod strategy's CheckGracefulDelete: the grace period of a pod deletion."""
        period = opts.get("gracePeriodSeconds")
        spec = pod.get("spec") or {}
        if period is None:
            period = spec.get("terminationGracePeriodSeconds") or 0
        try:
            period = int(period)
        except (TypeError, ValueError):
            period = 0
        if not spec.get("nodeName") or \
                (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            period = 0          # never started, or already finished: nothing to wait for
        return 1 if period < 0 else period

    def finalize_namespace(self, name):
        """The namespace controller's last step: clear spec.finalizers, which deletes it."""
        with self.lock:
            old = self.peek(NAMESPACES, "", name)
            if old is None or not old["metadata"].get("deletionTimestamp"):
                return
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["finalizers"] = []
            self._commit(NAMESPACES, old, new)

    # ---- list and watch ----

    def _state_at(self, res, rv):
        """{(ns, name): object} as of resourceVersion rv (lock held)."""
        if rv < self.compacted:
            raise apierrors.expired("The resourceVersion for the provided list is too old.")
        state = dict(self.data[res.key])
        for (erv, key, _etype, obj, prev) in reversed(self.history):
            if erv <= rv:
                break
            if key != res.key:
                continue
            md = obj["metadata"]
            k = (self._nskey(res, md.get("namespace", "")), md["name"])
            if prev is None:
                state.pop(k, None)
            else:
                state[k] = prev
        return state

    @staticmethod
    def encode_continue(rv, key):
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(key)},
                         separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode_continue(token):
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            d = json.loads(raw)
            if d.get("v") != "meta.k8s.io/v1":
                raise ValueError("bad version")
            return int(d["rv"]), tuple(d["start"])
        except Exception as e:  # noqa: BLE001 - any malformed token is a 400
            raise apierrors.bad_request("continue key is not valid: %s" % e)

    def list(self, res, ns, match, limit=0, cont=None, rv=None, rv_match=None):
        """match(obj) -> bool. Returns (items, list_rv, continue, remaining)."""
        with self.lock:
            start = None
            if cont:
                if rv not in (None, ""):
                    raise apierrors.bad_request("specifying resource version is not allowed "
                                                "when using continue")
                list_rv, start = self.decode_continue(cont)
                if list_rv < self.compacted:
                    raise apierrors.expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter, "
                        "or use the continue token in this response to retrieve the remainder "
                        "of the results. Continuing with the provided token results in an "
                        "inconsistent list - objects that were created, modified, or deleted "
                        "between the time the first chunk was returned and now may show up in "
                        "the list.")
                state = self._state_at(res, list_rv)
            elif rv not in (None, "", "0") and rv_match == "Exact":
                list_rv = self._int_rv(rv)
                if list_rv > self.rv:
                    raise self._too_large(list_rv)
                state = self._state_at(res, list_rv)
            else:
                if rv not in (None, "", "0") and self._int_rv(rv) > self.rv:
                    raise self._too_large(self._int_rv(rv))
                list_rv = self.rv
                state = self.data[res.key]
            keys = sorted(k for k in state if (ns is None or k[0] == ns) and
                          (start is None or k > start))
            items = [state[k] for k in keys if match(state[k])]
            token, remaining = None, None
            if limit and len(items) > limit:
                remaining = len(items) - limit
                items = items[:limit]
                last = items[-1]["metadata"]
                token = self.encode_continue(list_rv, (self._nskey(res, last.get(
                    "namespace", "")), last["name"]))
            return [copy.deepcopy(o) for o in items], list_rv, token, remaining

    @staticmethod
    def _int_rv(rv):
        try:
            return int(rv)
        except (TypeError, ValueError):
            raise apierrors.bad_request('invalid resource version "%s"' % rv)

    def _too_large(self, rv):
        return ApiError(504, "Timeout", "Too large resource version: %d, current: %d"
                        % (rv, self.rv), {"causes": [{"reason": "ResourceVersionTooLarge",
                                                      "message": "Too large resource version"}],
                                          "retryAfterSeconds": 1})

    def watch_start(self, res, ns, rv):
        """Returns (initial objects for ADDED, cursor). Raises 410 Expired when too old."""
        with self.lock:
            if rv in (None, "", "0"):
                objs = [copy.deepcopy(o) for k, o in sorted(self.data[res.key].items())
                        if ns is None or k[0] == ns]
                return objs, self.rv
            n = self._int_rv(rv)
            if n < self.compacted:
                raise apierrors.expired("too old resource version: %d (%d)"
                                        % (n, self.compacted + 1))
            return [], n

    def watch_next(self, res, cursor, timeout):
        """Events (type, obj, prev) after cursor for res; waits up to timeout when none.
        Returns (events, new cursor). Raises 410 when the watcher fell out of the window."""
        with self.lock:
            for attempt in (0, 1):
                if cursor < self.compacted:
                    raise apierrors.expired("too old resource version: %d (%d)"
                                            % (cursor, self.compacted + 1))
                i = bisect.bisect_right(self.history, cursor, key=lambda e: e[0])
                evs = [(e[2], e[3], e[4]) for e in self.history[i:] if e[1] == res.key]
                if evs or attempt == 1 or self.stopping:
                    return evs, self.rv
                self.cond.wait(timeout)
            return [], self.rv

    # ---- events (record.EventRecorder, with its correlator's counting) ----

    def record_event(self, res, obj, etype, reason, message, component):
        md = obj["metadata"]
        ns = md.get("namespace") or "default"
        ikey = (ns, md.get("uid"), reason, message)
        try:
            with self.lock:
                name = self._event_index.get(ikey)
                if name and self.peek(EVENTS, ns, name) is not None:
                    def bump(e):
                        e["count"] = e.get("count", 1) + 1
                        e["lastTimestamp"] = now_rfc3339()
                    self.mutate(EVENTS, ns, name, bump)
                    return
                now = now_rfc3339()
                ev = {"metadata": {"name": "%s.%016x" % (md["name"], random.getrandbits(64)),
                                   "namespace": ns},
                      "involvedObject": {"kind": res.kind, "namespace": md.get("namespace", ""),
                                         "name": md["name"], "uid": md.get("uid"),
                                         "apiVersion": res.api_version,
                                         "resourceVersion": md.get("resourceVersion")},
                      "reason": reason, "message": message, "type": etype,
                      "source": {"component": component}, "firstTimestamp": now,
                      "lastTimestamp": now, "count": 1, "reportingComponent": component,
                      "reportingInstance": ""}
                if not ev["involvedObject"]["namespace"]:
                    del ev["involvedObject"]["namespace"]
                created = self.create(EVENTS, ns, ev)
                self._event_index[ikey] = created["metadata"]["name"]
        except ApiError:
            pass

    def all_objects(self):
        """[(res, obj)] for every stored object (lock held by caller or snapshot use)."""
        with self.lock:
            return [(BY_KEY[k], o) for k, objs in self.data.items() for o in objs.values()]
