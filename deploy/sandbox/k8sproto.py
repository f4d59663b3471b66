"""Decoding of the Kubernetes protobuf envelope for the few built-in types whose typed
kubectl commands send protobuf request bodies (`kubectl create namespace|configmap|secret|
serviceaccount`). Wire format: magic "k8s\\0" + runtime.Unknown{typeMeta{apiVersion, kind},
raw}; raw is the object message (field numbers from k8s.io/api generated.proto)."""

import base64
import time

from apierrors import ApiError

MAGIC = b"k8s\x00"


def _varint(b, i):
    shift = n = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        if not c & 0x80:
            return n, i
        shift += 7


def fields(b):
    """[(field number, wire type, value)] of one message."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        out.append((num, wt, v))
    return out


STR, BYTES, INT, BOOL, TIME = "str", "bytes", "int", "bool", "time"
OWNER_REF = {1: ("kind", STR), 3: ("name", STR), 4: ("uid", STR), 5: ("apiVersion", STR),
             6: ("controller", BOOL), 7: ("blockOwnerDeletion", BOOL)}
OBJECT_META = {1: ("name", STR), 2: ("generateName", STR), 3: ("namespace", STR),
               5: ("uid", STR), 6: ("resourceVersion", STR), 7: ("generation", INT),
               8: ("creationTimestamp", TIME), 9: ("deletionTimestamp", TIME),
               10: ("deletionGracePeriodSeconds", INT), 11: ("labels", ("map", STR)),
               12: ("annotations", ("map", STR)), 13: ("ownerReferences", ("list", OWNER_REF)),
               14: ("finalizers", ("list", STR))}
LOCAL_REF = {1: ("name", STR)}
SCHEMAS = {
    ("v1", "ConfigMap"): {1: ("metadata", OBJECT_META), 2: ("data", ("map", STR)),
                          3: ("binaryData", ("map", BYTES)), 4: ("immutable", BOOL)},
    ("v1", "Secret"): {1: ("metadata", OBJECT_META), 2: ("data", ("map", BYTES)),
                       3: ("type", STR), 4: ("stringData", ("map", STR)),
                       5: ("immutable", BOOL)},
    ("v1", "Namespace"): {1: ("metadata", OBJECT_META),
                          2: ("spec", {1: ("finalizers", ("list", STR))}),
                          3: ("status", {1: ("phase", STR)})},
    ("v1", "ServiceAccount"): {1: ("metadata", OBJECT_META),
                               3: ("imagePullSecrets", ("list", LOCAL_REF)),
                               4: ("automountServiceAccountToken", BOOL)},
}


def _scalar(kind, wt, v):
    if kind == STR:
        return v.decode()
    if kind == BYTES:
        return base64.b64encode(v).decode()
    if kind == INT:
        return v - (1 << 64) if v >= 1 << 63 else v
    if kind == BOOL:
        return bool(v)
    if kind == TIME:
        secs = dict((n, x) for n, _, x in fields(v)).get(1, 0)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))
    if isinstance(kind, dict):
        return message(v, kind)
    raise ValueError(kind)


def message(b, schema):
    out = {}
    for num, wt, v in fields(b):
        if num not in schema:
            continue
        name, kind = schema[num]
        if isinstance(kind, tuple) and kind[0] == "map":
            entry = dict((n, x) for n, _, x in fields(v))
            out.setdefault(name, {})[entry.get(1, b"").decode()] = \
                _scalar(kind[1], 2, entry.get(2, b""))
        elif isinstance(kind, tuple) and kind[0] == "list":
            out.setdefault(name, []).append(_scalar(kind[1], wt, v))
        else:
            val = _scalar(kind, wt, v)
            if val not in ("", 0, False) or kind == BOOL and name == "immutable":
                out[name] = val     # JSON omitempty for the rest
    return out


def decode(body):
    """A protobuf request body as a JSON-shaped dict; 415 for types not covered here."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "protobuf body without the k8s envelope")
    try:
        unknown = dict((n, v) for n, _, v in fields(body[len(MAGIC):]))
        tm = dict((n, v.decode()) for n, _, v in fields(unknown.get(1, b"")))
        av, kind = tm.get(1, ""), tm.get(2, "")
        schema = SCHEMAS.get((av, kind))
        if schema is None:
            raise ApiError(415, "UnsupportedMediaType", "the fake API server decodes protobuf "
                           "bodies only for %s; send %s %s as application/json (kubectl "
                           "create -f works)" % (", ".join(k for _, k in sorted(SCHEMAS)),
                                                 av, kind))
        obj = message(unknown.get(2, b""), schema)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "BadRequest", "cannot decode protobuf body: %s" % e)
    obj["apiVersion"], obj["kind"] = av, kind
    return obj
