"""metadata.managedFields as kube-apiserver writes them on every create, update and patch.

The real server records, per (manager, operation, apiVersion, subresource), which fields that
manager set, in the FieldsV1 format: a tree of "f:<field>" keys, lists of scalars as
"v:<json value>" keys, lists of objects keyed "k:<json of the item's key fields>" (name, or
type, or the first scalar field), each node that is itself set carrying ".". The manager is the
request's User-Agent up to its first "/" (as kube-apiserver derives the default field manager),
or the fieldManager query parameter. Here every write is operation "Update" (no server-side
apply). An update gives its manager the fields it changed and takes them from the others;
entries left with no field are dropped. Clients' own managedFields in a body are ignored.

Which fields are never owned: metadata.{uid, resourceVersion, creationTimestamp, generation,
managedFields, name, namespace, deletionTimestamp, deletionGracePeriodSeconds, selfLink}, and
kind/apiVersion.

The point here is fidelity of size and shape, so that a daemon's cache figures measured against
the fake server hold against a real one; the field sets are what the real server computes for
plain updates, with two simplifications: lists of objects without a name/type field are keyed by
their first scalar field, and ownership is by leaf.
"""

import copy
import json
import threading

from resources import now_rfc3339

_SYSTEM = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "name",
           "namespace", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")
DEFAULT_MANAGER = "kube-controller-manager"  # in-process controllers
_local = threading.local()


def set_request(user_agent, field_manager=None):
    """Name the manager of the writes made by this thread's current request."""
    m = field_manager or (user_agent or "").split("/", 1)[0].strip()
    _local.manager = m[:128] or "unknown"


def clear_request():
    _local.manager = None


def current_manager():
    return getattr(_local, "manager", None) or DEFAULT_MANAGER


def _item_key(item):
    for k in ("name", "type", "key", "devicePath", "mountPath", "containerPort"):
        if k in item and not isinstance(item[k], (dict, list)):
            return "k:" + json.dumps({k: item[k]}, separators=(",", ":"), sort_keys=True)
    for k, v in sorted(item.items()):
        if not isinstance(v, (dict, list)):
            return "k:" + json.dumps({k: v}, separators=(",", ":"), sort_keys=True)
    return "k:{}"


def _leaves(v, path, out):
    """Every owned leaf path below v (a tuple of FieldsV1 keys) into out, with its value."""
    if isinstance(v, dict):
        if path:
            out[path + (".",)] = None
        for k, x in v.items():
            _leaves(x, path + ("f:" + k,), out)
    elif isinstance(v, list):
        out[path + (".",)] = None
        for x in v:
            if isinstance(x, dict):
                _leaves(x, path + (_item_key(x),), out)
            else:
                out[path + ("v:" + json.dumps(x, separators=(",", ":")),)] = None
    else:
        out[path] = json.dumps(v)


def _fields(obj, sub):
    """{leaf path: value} of what a write of subresource sub can set in obj."""
    out = {}
    for k, v in obj.items():
        if k in ("kind", "apiVersion"):
            continue
        if k == "status" and sub != "status":
            continue
        if k != "status" and sub == "status":
            continue
        if k == "metadata":
            for mk, mv in v.items():
                if mk not in _SYSTEM:
                    _leaves(mv, ("f:metadata", "f:" + mk), out)
            continue
        _leaves(v, ("f:" + k,), out)
    return out


def _to_tree(paths):
    tree = {}
    for p in sorted(paths):
        node = tree
        for k in p:
            node = node.setdefault(k, {})
    return tree


def _from_tree(tree, path=()):
    out = set()
    for k, v in tree.items():
        if v:
            out |= _from_tree(v, path + (k,))
        else:
            out.add(path + (k,))
    return out


def carry(old, new):
    """Give new the managedFields of old (or none), whatever the client sent (lock held)."""
    mf = (old or {}).get("metadata", {}).get("managedFields")
    if mf is None:
        new["metadata"].pop("managedFields", None)
    else:
        new["metadata"]["managedFields"] = copy.deepcopy(mf)


def stamp(old, new, sub=None):
    """Record the write of old -> new (old None for a create) by the current manager in
    new.metadata.managedFields (lock held)."""
    manager = current_manager()
    now = _fields(new, sub)
    if old is not None:
        before = _fields(old, sub)
        changed = {p for p in set(now) | set(before) if now.get(p, 0) != before.get(p, 0)}
        mine = {p for p in now if p in changed}
    else:
        changed = mine = set(now)
    present = set(now)
    entries = []
    found = False
    for e in (old or {}).get("metadata", {}).get("managedFields") or []:
        e = copy.deepcopy(e)
        owned = _from_tree(e.get("fieldsV1") or {})
        if e.get("manager") == manager and e.get("operation") == "Update" and \
                e.get("subresource") == sub and e.get("apiVersion") == new.get("apiVersion"):
            owned = (owned | mine) & present
            e["time"] = now_rfc3339()
            found = True
        else:
            owned -= changed
        if not owned:
            continue
        e["fieldsV1"] = _to_tree(owned)
        entries.append(e)
    if not found and mine:
        e = {"manager": manager, "operation": "Update", "apiVersion": new.get("apiVersion"),
             "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": _to_tree(mine)}
        if sub:
            e["subresource"] = sub
        entries.append(e)
    if entries:
        new["metadata"]["managedFields"] = entries
    else:
        new["metadata"].pop("managedFields", None)
