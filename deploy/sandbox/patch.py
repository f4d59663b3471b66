"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the subset of
Kubernetes strategic merge patch that kubectl and controllers send for the resources served here.

Strategic merge patch (apimachinery pkg/util/strategicpatch) as implemented:
  * maps merge recursively, `null` deletes a key;
  * lists whose Go field carries `patchStrategy:"merge"` merge by their merge key (table below);
    other lists are replaced whole;
  * `metadata.finalizers` is a merged primitive list (union);
  * directives: `$patch: replace|delete|merge` in maps and list items,
    `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`, `$retainKeys`.
"""

import copy

from apierrors import ApiError

# field name -> merge key (patchMergeKey of Kubernetes core/apps types).
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "conditions": "type", "addresses": "type",
    "ownerReferences": "uid", "hostAliases": "ip", "resourceClaims": "name",
    "schedulingGates": "name", "topologySpreadConstraints": "topologyKey",
}
CONTAINER_FIELDS = ("containers", "initContainers", "ephemeralContainers")


def _invalid(msg):
    return ApiError(422, "Invalid", msg, {})


# ---- JSON merge patch ----

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# ---- JSON patch ----

def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid('invalid JSON pointer "%s"' % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts, path):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise _invalid('jsonpatch: path "%s" not found' % path)
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise _invalid('jsonpatch: index "%s" out of range in "%s"' % (p, path))
        else:
            raise _invalid('jsonpatch: path "%s" not found' % path)
    return cur


def _list_index(lst, p, path, allow_end):
    if p == "-" and allow_end:
        return len(lst)
    try:
        i = int(p)
    except ValueError:
        raise _invalid('jsonpatch: invalid index "%s" in "%s"' % (p, path))
    if i < 0 or i > len(lst) or (i == len(lst) and not allow_end):
        raise _invalid('jsonpatch: index %d out of range in "%s"' % (i, path))
    return i


def _add(doc, path, value):
    parts = _pointer(path)
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, path, True), value)
    else:
        raise _invalid('jsonpatch add: path "%s" not found' % path)
    return doc


def _remove(doc, path):
    parts = _pointer(path)
    if not parts:
        raise _invalid("jsonpatch remove: cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _invalid('jsonpatch remove operation does not apply: doc is missing path: "%s"'
                           % path)
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_list_index(parent, last, path, False))
    raise _invalid('jsonpatch remove: path "%s" not found' % path)


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a JSON array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, "BadRequest", "invalid json patch operation: %r" % (op,))
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ApiError(400, "BadRequest", 'json patch "%s" needs a value' % kind)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            parts = _pointer(path)
            if not parts:
                doc = copy.deepcopy(op["value"])
                continue
            _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            value = _remove(doc, op.get("from", ""))
            doc = _add(doc, path, value)
        elif kind == "copy":
            value = copy.deepcopy(_walk(doc, _pointer(op.get("from", "")), op.get("from", "")))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _walk(doc, _pointer(path), path) != op["value"]:
                raise _invalid('testing value %s failed' % path)
        else:
            raise ApiError(400, "BadRequest", 'unknown json patch operation "%s"' % kind)
    return doc


# ---- strategic merge patch ----

def _merge_key(path, field):
    if field == "ports":
        return "containerPort" if any(p in CONTAINER_FIELDS for p in path) else "port"
    return MERGE_KEYS.get(field)


def _strip(v):
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip(x) for x in v if not (isinstance(x, dict) and x.get("$patch") == "delete")]
    return v


def _smp_list(orig, patch, path, field):
    orig = orig if isinstance(orig, list) else []
    if field == "finalizers" and path == ["metadata"]:
        result = list(orig)
        for x in patch:
            if x not in result:
                result.append(x)
        return result
    key = _merge_key(path, field)
    if key is None or not all(isinstance(x, dict) for x in patch):
        return _strip(patch)
    if any(x.get("$patch") == "replace" for x in patch):
        return [_strip(x) for x in patch if "$patch" not in x]
    result = copy.deepcopy(orig)
    for item in patch:
        kv = item.get(key)
        idx = next((i for i, o in enumerate(result)
                    if isinstance(o, dict) and o.get(key) == kv), None)
        if item.get("$patch") == "delete":
            result = [o for o in result if not (isinstance(o, dict) and o.get(key) == kv)]
        elif idx is None:
            result.append(_strip(item))
        else:
            merged = _smp_map(result[idx], item, path + [field])
            if merged is not None:
                result[idx] = merged
    return result


def _reorder(items, order, key):
    def ident(x):
        return x.get(key) if key and isinstance(x, dict) else x
    pos = {}
    for i, o in enumerate(order):
        pos.setdefault(ident(o) if key else o, i)
    known = sorted((x for x in items if ident(x) in pos), key=lambda x: pos[ident(x)])
    return known + [x for x in items if ident(x) not in pos]


def _smp_map(orig, patch, path):
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip(patch)
    result = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    orders = {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(result.get(f), list) and isinstance(v, list):
                result[f] = [x for x in result[f] if x not in v]
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$"):
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            sub = _smp_map(result.get(k), v, path + [k])
            if sub is None:
                result.pop(k, None)
            else:
                result[k] = sub
        elif isinstance(v, list):
            result[k] = _smp_list(result.get(k), v, path, k)
        else:
            result[k] = v
    for f, order in orders.items():
        if isinstance(result.get(f), list) and isinstance(order, list):
            result[f] = _reorder(result[f], order, _merge_key(path, f))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain or k not in orig}
    return result


def strategic_merge_patch(target, patch):
    if not isinstance(patch, dict):
        raise ApiError(400, "BadRequest", "strategic merge patch must be a JSON object")
    out = _smp_map(target, patch, [])
    return out if out is not None else {}
