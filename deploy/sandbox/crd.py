"""CustomResourceDefinitions (apiextensions.k8s.io/v1), served generically.

A CRD object is stored like any other; a store listener then registers (or re-registers, or
drops) one Resource per served version, so that discovery, the REST paths, lists, watches,
Table output and the OpenAPI v3 probe pick it up at once. What the real apiextensions-apiserver
does and this module copies:
  * the CRD itself: metadata.name must be <plural>.<group>; group, names.plural, names.kind,
    scope (Cluster|Namespaced) and at least one version with exactly one storage version are
    required; status.acceptedNames and the NamesAccepted/Established conditions are set by the
    server (so `kubectl wait --for condition=established` works).
  * custom resources: openAPIV3Schema validation (type, required, enum, minimum/maximum,
    minLength/maxLength, pattern, items, properties) with the real messages; unknown fields
    pruned unless x-kubernetes-preserve-unknown-fields; metadata.generation; the status
    subresource (main writes keep the stored status, /status writes only change status, status
    dropped on create); additionalPrinterColumns as Table columns (date columns as ages,
    priority > 0 only with -o wide), Name + Age when a version names none.
  * deleting a CRD deletes its custom resources (no watch events for them here: the real
    server deletes them one by one behind a finalizer).
Not done: conversion webhooks (several served versions share one storage without conversion),
scale subresource, CEL rules, defaulting from the schema.

Threading: the listener runs with the store lock held, like every store listener; it only
edits the module tables of `resources` and the store's per-resource maps.
"""

import re

import resources
from resources import BY_KEY, BY_KIND, BY_PATH, GROUPS, RESOURCES, Resource

GROUP = "apiextensions.k8s.io"


class CrdHooks:
    """Strategy hooks for the CustomResourceDefinition type itself."""

    columns = None

    @staticmethod
    def prepare(obj):
        obj["status"] = {}

    @staticmethod
    def defaults(obj):
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        names = spec.get("names")
        if isinstance(names, dict) and isinstance(names.get("plural"), str):
            names.setdefault("singular", (names.get("kind") or "").lower())
            names.setdefault("listKind", (names.get("kind") or "") + "List")
        for v in spec.get("versions") or []:
            if isinstance(v, dict):
                v.setdefault("served", True)
        # The server's own controllers: names accepted, established (status subresource
        # writes by a client would be overwritten here, as the real controllers would).
        status = obj.setdefault("status", {})
        status["acceptedNames"] = dict(names) if isinstance(names, dict) else {}
        now = resources.now_rfc3339()
        old = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
        status["conditions"] = [
            {"type": t, "status": "True", "reason": r, "message": m,
             "lastTransitionTime": (old.get(t) or {}).get("lastTransitionTime", now)}
            for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                            ("Established", "InitialNamesAccepted",
                             "the initial names have been accepted"))]
        status["storedVersions"] = [v.get("name") for v in spec.get("versions") or []
                                    if isinstance(v, dict) and v.get("storage")]

    @staticmethod
    def validate(obj, old):
        return validate_crd(obj, old)


CRDS = resources.resource("customresourcedefinitions")
CRDS.hooks = CrdHooks()

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def validate_crd(obj, old):
    """Causes (field, reason, message) for a CRD, a subset of apiextensions validation."""
    causes = []

    def bad(field, message, reason="FieldValueInvalid"):
        causes.append((field, reason, message))

    spec = obj.get("spec")
    if not isinstance(spec, dict):
        bad("spec", "Required value", "FieldValueRequired")
        return causes
    group = spec.get("group")
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    plural, kind = names.get("plural"), names.get("kind")
    if not group:
        bad("spec.group", "Required value", "FieldValueRequired")
    elif not isinstance(group, str) or "." not in group:
        bad("spec.group", 'Invalid value: "%s": should be a domain with at least one dot'
            % (group,))
    if not plural:
        bad("spec.names.plural", "Required value", "FieldValueRequired")
    elif not isinstance(plural, str) or not _DNS1035.match(plural):
        bad("spec.names.plural", 'Invalid value: "%s": a lowercase RFC 1123 label' % (plural,))
    if not kind:
        bad("spec.names.kind", "Required value", "FieldValueRequired")
    elif not isinstance(kind, str) or not _KIND.match(kind):
        bad("spec.names.kind", 'Invalid value: "%s": must be a valid kind' % (kind,))
    for i, s in enumerate(names.get("shortNames") or []):
        if not isinstance(s, str) or not _DNS1035.match(s):
            bad("spec.names.shortNames[%d]" % i, 'Invalid value: "%s": a lowercase RFC 1123 '
                'label' % (s,))
    name = (obj.get("metadata") or {}).get("name", "")
    if isinstance(plural, str) and isinstance(group, str) and name != "%s.%s" % (plural, group):
        bad("metadata.name", 'Invalid value: "%s": must be spec.names.plural+"."+spec.group'
            % name)
    scope = spec.get("scope")
    if scope not in ("Cluster", "Namespaced"):
        bad("spec.scope", 'Unsupported value: "%s": supported values: "Cluster", "Namespaced"'
            % (scope or ""), "FieldValueNotSupported")
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        bad("spec.versions", "Invalid value: null: must have exactly one version marked as "
            "storage version")
    else:
        storage = 0
        for i, v in enumerate(versions):
            if not isinstance(v, dict) or not v.get("name"):
                bad("spec.versions[%d].name" % i, "Required value", "FieldValueRequired")
                continue
            storage += 1 if v.get("storage") else 0
            sch = (v.get("schema") or {}).get("openAPIV3Schema")
            if not isinstance(sch, dict):
                bad("spec.versions[%d].schema.openAPIV3Schema" % i, "Required value: schemas "
                    "are required", "FieldValueRequired")
            for j, c in enumerate(v.get("additionalPrinterColumns") or []):
                f = "spec.versions[%d].additionalPrinterColumns[%d]" % (i, j)
                if not isinstance(c, dict) or not c.get("name"):
                    bad(f + ".name", "Required value", "FieldValueRequired")
                elif not isinstance(c.get("jsonPath"), str) or \
                        not c["jsonPath"].startswith("."):
                    bad(f + ".jsonPath", 'Invalid value: "%s": must be a simple json path '
                        'starting with .' % (c.get("jsonPath"),))
                elif c.get("type") not in ("integer", "number", "string", "boolean", "date"):
                    bad(f + ".type", 'Unsupported value: "%s": supported values: "integer", '
                        '"number", "string", "boolean", "date"' % (c.get("type"),),
                        "FieldValueNotSupported")
        if storage != 1:
            bad("spec.versions", "Invalid value: %d: must have exactly one version marked as "
                "storage version" % storage)
    if old is not None:
        ospec = old.get("spec") or {}
        if ospec.get("scope") != scope:
            bad("spec.scope", "Invalid value: \"%s\": field is immutable" % (scope,))
        if ospec.get("group") != group:
            bad("spec.group", "Invalid value: \"%s\": field is immutable" % (group,))
    return causes


# ---- custom resources ----

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _type_ok(t, v):
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, _TYPES.get(t, object))


def _go_type(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if v is None:
        return "null"
    return "object"


def _quote(v):
    if isinstance(v, str):
        return '"%s"' % v
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if not isinstance(v, (dict, list)) else '"%s"' % _go_type(v)


def check_schema(sch, v, path, causes, prune=True):
    """Validates v against the structural schema sch (appending causes) and prunes unknown
    fields in place. path is the field path ("spec.node"); the root is ""."""
    if not isinstance(sch, dict):
        return
    t = sch.get("type")
    label = path or "<root>"
    if v is None:
        if not sch.get("nullable"):
            causes.append((path, "FieldValueInvalid", 'Invalid value: "null": %s in body must '
                           'be of type %s: "null"' % (label, t or "object")))
        return
    if t and not _type_ok(t, v):
        causes.append((path, "FieldValueInvalid", 'Invalid value: "%s": %s in body must be of '
                       'type %s: "%s"' % (_go_type(v), label, t, _go_type(v))))
        return
    enum = sch.get("enum")
    if isinstance(enum, list) and v not in enum:
        causes.append((path, "FieldValueNotSupported", "Unsupported value: %s: supported "
                       "values: %s" % (_quote(v), ", ".join(_quote(e) for e in enum))))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if isinstance(sch.get("minimum"), (int, float)) and v < sch["minimum"]:
            causes.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be "
                           "greater than or equal to %s" % (v, label, sch["minimum"])))
        if isinstance(sch.get("maximum"), (int, float)) and v > sch["maximum"]:
            causes.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be "
                           "less than or equal to %s" % (v, label, sch["maximum"])))
    if isinstance(v, str):
        if isinstance(sch.get("maxLength"), int) and len(v) > sch["maxLength"]:
            causes.append((path, "TooLong", "Too long: may not be more than %d bytes"
                           % sch["maxLength"]))
        if isinstance(sch.get("minLength"), int) and len(v) < sch["minLength"]:
            causes.append((path, "FieldValueInvalid", 'Invalid value: "%s": %s in body should '
                           'be at least %d chars long' % (v, label, sch["minLength"])))
        pat = sch.get("pattern")
        if isinstance(pat, str):
            try:
                ok = re.search(pat, v) is not None
            except re.error:
                ok = True
            if not ok:
                causes.append((path, "FieldValueInvalid", 'Invalid value: "%s": %s in body '
                               'should match \'%s\'' % (v, label, pat)))
    if isinstance(v, list):
        items = sch.get("items")
        if isinstance(sch.get("maxItems"), int) and len(v) > sch["maxItems"]:
            causes.append((path, "TooMany", "Too many: %d: must have at most %d items"
                           % (len(v), sch["maxItems"])))
        for i, e in enumerate(v):
            check_schema(items, e, "%s[%d]" % (path, i), causes, prune)
    if isinstance(v, dict):
        props = sch.get("properties")
        props = props if isinstance(props, dict) else {}
        for r in sch.get("required") or []:
            if r not in v:
                causes.append(((path + "." if path else "") + r, "FieldValueRequired",
                               "Required value"))
        addl = sch.get("additionalProperties")
        for k in list(v):
            sub = (path + "." if path else "") + k
            if path == "" and k in ("apiVersion", "kind", "metadata"):
                continue    # the server's own fields: never pruned or schema-checked
            if k in props:
                check_schema(props[k], v[k], sub, causes, prune)
            elif isinstance(addl, dict):
                check_schema(addl, v[k], sub, causes, prune)
            elif prune and not sch.get("x-kubernetes-preserve-unknown-fields") and \
                    addl is not True:
                del v[k]


def _json_path(obj, jp):
    """A printer column's simple JSONPath (.a.b, .a[0].b, .a['x.y']); None when absent."""
    cur = obj
    for m in re.finditer(r"\.([A-Za-z0-9_$-]+)|\[(\d+)\]|\['([^']*)'\]", jp):
        key = m.group(1) if m.group(1) is not None else m.group(3)
        if key is not None:
            if not isinstance(cur, dict) or key not in cur:
                return None
            cur = cur[key]
        else:
            i = int(m.group(2))
            if not isinstance(cur, list) or i >= len(cur):
                return None
            cur = cur[i]
    return cur


def _column(c):
    jp, t = c.get("jsonPath", ""), c.get("type", "string")

    def cell(o):
        v = _json_path(o, jp)
        if v is None:
            return None
        if t == "date":
            ts = resources.parse_rfc3339(v) if isinstance(v, str) else None
            return "<invalid>" if ts is None else resources.human_duration(
                resources.time.time() - ts)
        if isinstance(v, (dict, list)):
            import json
            return json.dumps(v, sort_keys=True, separators=(",", ":"))
        return v
    return (c.get("name", ""), "string" if t == "date" else t, c.get("format", ""), cell,
            int(c.get("priority") or 0), c.get("description") or c.get("name", ""))


class CustomHooks:
    """Strategy of one served version of a CRD."""

    def __init__(self, crd, version):
        self.schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
        self.status_sub = "status" in (version.get("subresources") or {})
        cols = version.get("additionalPrinterColumns")
        name = ("Name", "string", "name", lambda o: o["metadata"]["name"], 0, "Name")
        if cols:
            self.columns = [name] + [_column(c) for c in cols if isinstance(c, dict)]
        else:
            self.columns = [name, ("Age", "date", "", resources._age, 0, "Age")]

    def prepare(self, obj):
        if self.status_sub:
            obj.pop("status", None)

    def defaults(self, obj):
        pass

    def validate(self, obj, old):
        causes = []
        check_schema(self.schema, obj, "", causes)
        return causes


def _resources_of(crd):
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for v in spec.get("versions") or []:
        if not isinstance(v, dict) or not v.get("served", True):
            continue
        r = Resource(spec["group"], v["name"], names["plural"],
                     names.get("singular") or names["kind"].lower(), names["kind"],
                     spec.get("scope") == "Namespaced", names.get("shortNames") or (),
                     status="status" in (v.get("subresources") or {}),
                     categories=names.get("categories") or (), generation=True)
        r.hooks = CustomHooks(crd, v)
        r.crd = crd["metadata"]["name"]
        out.append(r)
    return out


def register(res):
    """Adds res to the served resources (replacing a previous one with the same path)."""
    unregister_path(res.group, res.version, res.plural)
    RESOURCES.append(res)
    BY_PATH[(res.group, res.version, res.plural)] = res
    BY_KEY[res.key] = res
    BY_KIND[(res.api_version, res.kind)] = res
    if (res.group, res.version) not in GROUPS:
        GROUPS.append((res.group, res.version))


def unregister_path(group, version, plural):
    old = BY_PATH.pop((group, version, plural), None)
    if old is None:
        return
    RESOURCES[:] = [r for r in RESOURCES if r is not old]
    if BY_KEY.get(old.key) is old:
        rest = [r for r in RESOURCES if r.key == old.key]
        if rest:
            BY_KEY[old.key] = rest[0]
        else:
            del BY_KEY[old.key]
    if BY_KIND.get((old.api_version, old.kind)) is old:
        del BY_KIND[(old.api_version, old.kind)]
    if not any((r.group, r.version) == (group, version) for r in RESOURCES):
        GROUPS[:] = [gv for gv in GROUPS if gv != (group, version)]


def install(store):
    """Serves every CRD stored in `store` from now on (call once, before serving)."""
    store.data.setdefault(CRDS.key, {})
    served = {}   # CRD name -> [Resource]

    def listener(res, etype, obj, prev):
        if res is not CRDS:
            return
        name = obj["metadata"]["name"]
        for r in served.pop(name, []):
            unregister_path(r.group, r.version, r.plural)
        if etype == "DELETED" or (obj["metadata"].get("deletionTimestamp") and
                                  not obj["metadata"].get("finalizers")):
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            store.data.pop((spec.get("group"), names.get("plural")), None)
            return
        rs = _resources_of(obj)
        for r in rs:
            register(r)
            store.data.setdefault(r.key, {})
        served[name] = rs
    store.listeners.append(listener)
