"""The pv-protection controller (pkg/controller/volume/pvprotection): keeps the
kubernetes.io/pv-protection finalizer on every PV, and removes it from a deleting PV once it is
no longer Bound. Keys: PV names."""

import controllers
import store as st
from pvc_protection import set_finalizer
from resources import resource

PVS = resource("persistentvolumes")


class PVProtection(controllers.Controller):
    name = "pv-protection"
    watches = ("persistentvolumes",)

    def keys(self, res, etype, obj, prev):
        return [obj["metadata"]["name"]]

    def sync(self, name):
        pv = self.fetch(PVS, "", name)
        if pv is None:
            return
        fins = pv["metadata"].get("finalizers") or []
        if pv["metadata"].get("deletionTimestamp"):
            if st.PV_PROTECTION in fins and (pv.get("status") or {}).get("phase") != "Bound":
                set_finalizer(self, PVS, pv, st.PV_PROTECTION, False)
        elif st.PV_PROTECTION not in fins:
            set_finalizer(self, PVS, pv, st.PV_PROTECTION, True)
