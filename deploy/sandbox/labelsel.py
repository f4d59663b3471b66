"""Label selectors (apimachinery pkg/labels) and field selectors (pkg/fields)."""

import re

from apierrors import bad_request

_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


def _tokens(s):
    out, pos = [], 0
    s = s.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            raise bad_request('unable to parse requirement: invalid label selector "%s"' % s)
        out.append(m.group(1))
        pos = m.end()
        while pos < len(s) and s[pos].isspace():
            pos += 1
    return out


def parse_label_selector(s):
    """Returns a list of requirements (key, op, values); raises 400 BadRequest when malformed."""
    if s is None or s.strip() == "":
        return []
    toks = _tokens(s)
    reqs, i = [], 0

    def err():
        return bad_request('unable to parse requirement: invalid label selector "%s"' % s)

    def ident(t):
        return t not in ("(", ")", ",", "!=", "==", "=", "!", ">", "<")

    while i < len(toks):
        if toks[i] == "!":
            if i + 1 >= len(toks) or not ident(toks[i + 1]):
                raise err()
            reqs.append((toks[i + 1], "!", []))
            i += 2
        else:
            key = toks[i]
            if not ident(key):
                raise err()
            i += 1
            if i >= len(toks) or toks[i] == ",":
                reqs.append((key, "exists", []))
            elif toks[i] in ("=", "==", "!=", ">", "<"):
                op = {"==": "="}.get(toks[i], toks[i])
                i += 1
                val = ""
                if i < len(toks) and ident(toks[i]):
                    val = toks[i]
                    i += 1
                if op in (">", "<"):
                    try:
                        int(val)
                    except ValueError:
                        raise err()
                reqs.append((key, op, [val]))
            elif toks[i] in ("in", "notin"):
                op = toks[i]
                i += 1
                if i >= len(toks) or toks[i] != "(":
                    raise err()
                i += 1
                vals = []
                while i < len(toks) and toks[i] != ")":
                    if toks[i] != ",":
                        vals.append(toks[i])
                    i += 1
                if i >= len(toks):
                    raise err()
                i += 1
                reqs.append((key, op, vals))
            else:
                raise err()
        if i < len(toks):
            if toks[i] != ",":
                raise err()
            i += 1
    return reqs


def selector_from_match(sel):
    """A metav1.LabelSelector ({matchLabels, matchExpressions}) as requirements."""
    reqs = []
    for k, v in (sel or {}).get("matchLabels", {}).items():
        reqs.append((k, "=", [v]))
    for e in (sel or {}).get("matchExpressions", []) or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(e.get("operator"))
        if op:
            reqs.append((e.get("key"), op, e.get("values") or []))
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "=" and v != vals[0]:
            return False
        if op == "!=" and has and v == vals[0]:
            return False
        if op == "in" and (not has or v not in vals):
            return False
        if op == "notin" and has and v in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op in (">", "<"):
            try:
                n = int(v)
            except (TypeError, ValueError):
                return False
            if (op == ">" and not n > int(vals[0])) or (op == "<" and not n < int(vals[0])):
                return False
    return True


def parse_field_selector(s, supported):
    """Returns [(field, op, value)]; op is '=' or '!='. Unsupported fields ⇒ 400."""
    if s is None or s.strip() == "":
        return []
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+)(==|!=|=)(.*)$", part)
        if not m:
            raise bad_request('invalid selector: \'%s\'; can\'t understand \'%s\'' % (s, part))
        field, op, val = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in supported:
            raise bad_request('field label not supported: %s' % field)
        out.append((field, "=" if op == "==" else op, val))
    return out


def fields_match(reqs, fieldset):
    for field, op, val in reqs:
        have = fieldset.get(field, "")
        if op == "=" and have != val:
            return False
        if op == "!=" and have == val:
            return False
    return True
