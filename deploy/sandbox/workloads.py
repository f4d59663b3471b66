"""Helpers shared by the DaemonSet and Deployment controllers (daemonset.py, deployment.py):
owned pods, the pod template hash, pod creation and deletion with events."""

import copy
import json

import apierrors
import labelsel
import statefulset as ss
from resources import resource

PODS = resource("pods")


def template_hash(template):
    """A stable hash of a pod template (FNV-32a over its JSON, in the safe alphabet of
    ComputeHash: not Go's byte-exact serialisation, so values differ from a real cluster's)."""
    return ss.revision_hash(template or {}, 0)


def owned_pods(store, obj):
    """The non-deleted pods of obj's namespace whose controller ownerReference is obj."""
    md = obj["metadata"]
    out = []
    for p in store.objects(PODS, md["namespace"]):
        for r in p["metadata"].get("ownerReferences") or []:
            if r.get("controller") and r.get("uid") == md["uid"]:
                out.append(p)
                break
    return out


def owner_key(pod, kind):
    for r in pod["metadata"].get("ownerReferences") or []:
        if r.get("controller") and r.get("kind") == kind:
            return (pod["metadata"].get("namespace", ""), r.get("name"))
    return None


def selector_matches(obj, labels):
    sel = (obj.get("spec") or {}).get("selector")
    if not sel:
        return False
    return labelsel.labels_match(labelsel.selector_from_match(sel), labels)


def controller_ref(obj, kind):
    md = obj["metadata"]
    return {"apiVersion": "apps/v1", "kind": kind, "name": md["name"], "uid": md["uid"],
            "controller": True, "blockOwnerDeletion": True}


def pod_from_template(obj, kind, generate_name, labels=None):
    t = copy.deepcopy((obj.get("spec") or {}).get("template") or {})
    tmd = t.get("metadata") or {}
    lab = dict(tmd.get("labels") or {})
    lab.update(labels or {})
    md = {"generateName": generate_name, "namespace": obj["metadata"]["namespace"],
          "labels": lab, "ownerReferences": [controller_ref(obj, kind)]}
    if tmd.get("annotations"):
        md["annotations"] = dict(tmd["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": t.get("spec") or {}}


def is_terminating(pod):
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_ready(pod):
    return ss.is_running_and_ready(pod)


def create_pod(ctrl, res, obj, pod):
    try:
        created = ctrl.store.create(PODS, obj["metadata"]["namespace"], pod)
    except apierrors.ApiError as e:
        ctrl.event(res, obj, "Warning", "FailedCreate", "Error creating: %s" % e.message)
        raise
    ctrl.event(res, obj, "Normal", "SuccessfulCreate", "Created pod: %s"
               % created["metadata"]["name"])
    return created


def delete_pod(ctrl, res, obj, pod):
    try:
        ctrl.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                          {"preconditions": {"uid": pod["metadata"]["uid"]}})
    except apierrors.ApiError as e:
        if e.code in (404, 409):
            return
        raise
    ctrl.event(res, obj, "Normal", "SuccessfulDelete", "Deleted pod: %s"
               % pod["metadata"]["name"])


def set_status(ctrl, res, obj, status):
    md = obj["metadata"]

    def fn(o):
        st = dict(o.get("status") or {})
        st.update(status)
        o["status"] = st
    if {k: (obj.get("status") or {}).get(k) for k in status} != status:
        ctrl.modify(res, md["namespace"], md["name"], fn, sub="status")


def dumps(o):
    return json.dumps(o, sort_keys=True)
