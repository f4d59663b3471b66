"""The namespace controller (pkg/controller/namespace): a deleting namespace has everything in
it deleted, then its `kubernetes` finalizer cleared, which removes it. Keys: namespace names."""

import controllers
from resources import RESOURCES, resource

NAMESPACES = resource("namespaces")


class NamespaceController(controllers.Controller):
    name = "namespace"
    watches = tuple(r.plural for r in RESOURCES if r.namespaced) + ("namespaces",)

    def __init__(self, store, log=lambda msg: None):
        super().__init__(store, log)
        self.terminating = set()

    def reset(self):
        self.terminating = set()

    def keys(self, res, etype, obj, prev):
        name = obj["metadata"]["name"]
        if res is NAMESPACES:
            self.terminating.discard(name)
            if etype != "DELETED" and obj["metadata"].get("deletionTimestamp"):
                self.terminating.add(name)
            return [name]
        ns = obj["metadata"].get("namespace", "")
        return [ns] if ns in self.terminating else []

    def sync(self, name):
        ns = self.fetch(NAMESPACES, "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        inside = [(res, o["metadata"]["name"], o["metadata"].get("deletionTimestamp"))
                  for res in RESOURCES if res.namespaced for o in self.store.objects(res, name)]
        for res, oname, deleting in inside:
            if not deleting:
                try:
                    self.store.delete(res, name, oname, {"propagationPolicy": "Background"})
                except controllers.ApiError as e:
                    if e.code != 404:
                        raise
        if not inside:
            self.store.finalize_namespace(name)
