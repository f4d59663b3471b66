"""The garbage collector (pkg/controller/garbagecollector), level-triggered per object:
dependents whose every owner (by UID) is gone are deleted (background), a deleting owner with
the `orphan` finalizer has its refs stripped from its dependents, one with `foregroundDeletion`
deletes its dependents and waits for those with blockOwnerDeletion. It reads copies of the
objects and deletes with a UID precondition, as the real one does. Keys: (resource key,
namespace, name)."""

import controllers
import store as st
from resources import BY_KEY, BY_KIND, RESOURCES


def owner_uids(obj):
    if not obj:
        return set()
    return {r.get("uid") for r in obj["metadata"].get("ownerReferences") or []}


def _discard(index, k, v):
    s = index.get(k)
    if s is not None:
        s.discard(v)
        if not s:
            del index[k]


class GarbageCollector(controllers.Controller):
    name = "garbage-collector"
    watches = tuple(r.plural for r in RESOURCES)

    def __init__(self, store, log=lambda msg: None):
        super().__init__(store, log)
        self.reset()

    def reset(self):
        self.uid_key = {}           # uid -> (resource key, namespace, name)
        self.deps = {}              # owner uid -> {(resource key, namespace, name)}

    @staticmethod
    def _key(res, obj):
        md = obj["metadata"]
        return (res.key, md.get("namespace", "") if res.namespaced else "", md["name"])

    def keys(self, res, etype, obj, prev):
        cur = None if etype == "DELETED" else obj
        key = self._key(res, obj)
        uid = obj["metadata"].get("uid")
        for u in owner_uids(prev):
            _discard(self.deps, u, key)
        if cur is None:
            self.uid_key.pop(uid, None)
        else:
            self.uid_key[uid] = key
            for u in owner_uids(cur):
                self.deps.setdefault(u, set()).add(key)
        out = {key}
        if etype == "SYNC":
            return out
        out.update(self.deps.get(uid, ()))
        for u in owner_uids(obj) | owner_uids(prev):
            if u in self.uid_key:
                out.add(self.uid_key[u])
        return out

    def sync(self, key):
        res = BY_KEY[key[0]]
        o = self.fetch(res, key[1], key[2])
        if o is None:
            return
        if o["metadata"].get("deletionTimestamp"):
            self._sync_owner(res, o)
            o = self.fetch(res, key[1], key[2])
        self._sync_dependent(res, o)

    def _owner_state(self, dep_res, dep, ref):
        ores = BY_KIND.get((ref.get("apiVersion"), ref.get("kind")))
        if ores is None:
            return "solid"   # unknown kinds are never collected here
        ns = dep["metadata"].get("namespace", "") if ores.namespaced else ""
        if ores.namespaced and not dep_res.namespaced:
            return "dangling"
        owner = self.fetch(ores, ns, ref.get("name", ""))
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
        self.modify(res, md.get("namespace", ""), md["name"], fn)

    def _set_finalizer(self, res, obj, fin):
        def fn(o):
            fins = [f for f in o["metadata"].get("finalizers") or [] if f != fin]
            if fins:
                o["metadata"]["finalizers"] = fins
            else:
                o["metadata"].pop("finalizers", None)
        md = obj["metadata"]
        self.modify(res, md.get("namespace", ""), md["name"], fn)

    def _dependents(self, uid):
        """[(resource, dependent, its ref to uid)] from the index, re-read."""
        out = []
        for dk in sorted(self.deps.get(uid, ())):
            dres = BY_KEY[dk[0]]
            dep = self.fetch(dres, dk[1], dk[2])
            for ref in (dep or {"metadata": {}})["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == uid:
                    out.append((dres, dep, ref))
        return out

    def _sync_owner(self, res, o):
        md = o["metadata"]
        fins = md.get("finalizers") or []
        if st.GC_ORPHAN in fins:
            for dres, dep, _ in self._dependents(md["uid"]):
                self._drop_refs(dres, dep, {md["uid"]})
            self._set_finalizer(res, o, st.GC_ORPHAN)
        elif st.GC_FOREGROUND in fins:
            blocking = 0
            for dres, dep, ref in self._dependents(md["uid"]):
                dmd = dep["metadata"]
                states = [self._owner_state(dres, dep, r)
                          for r in dmd.get("ownerReferences") or [] if r is not ref]
                if "solid" in states:
                    self._drop_refs(dres, dep, {md["uid"]})
                    continue
                if ref.get("blockOwnerDeletion"):
                    blocking += 1
                if not dmd.get("deletionTimestamp"):
                    try:
                        _, gone = self.store.delete(
                            dres, dmd.get("namespace", ""), dmd["name"],
                            {"propagationPolicy": "Foreground",
                             "preconditions": {"uid": dmd["uid"]}})
                    except st.ApiError as e:
                        if e.code != 404:
                            raise
                        gone = True
                    if gone and ref.get("blockOwnerDeletion"):
                        blocking -= 1
            if not blocking:
                self._set_finalizer(res, o, st.GC_FOREGROUND)

    def _sync_dependent(self, res, o):
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
        try:
            self.store.delete(res, md.get("namespace", ""), md["name"],
                              {"propagationPolicy": policy, "preconditions": {"uid": md["uid"]}})
        except st.ApiError as e:
            if e.code != 404:
                raise
