"""Authentication and RBAC authorization of the fake API server (kube-apiserver's token
authenticators and plugin/pkg/auth/authorizer/rbac), kept out of apiserver.py: the server calls
`Auth.authenticate(header)` and then `Auth.authorize(user, method, path, query)` before routing.

Users:

* the kubeconfig's bearer token is `admin` (groups `system:masters`): everything is allowed, as
  the system:masters group is in a real cluster. The sandbox's own controllers and kubelets do
  not go through HTTP at all (they use the store).
* ServiceAccount tokens: the token controller (`ServiceAccountTokens` below, controller name
  `serviceaccount-token`) keeps one Secret `<sa>-token` of type
  `kubernetes.io/service-account-token` per ServiceAccount (annotations
  `kubernetes.io/service-account.name` and `.uid`; data `token`, `ca.crt`, `namespace`), as the
  legacy token controller of Kubernetes < 1.24 did. A request with such a token is user
  `system:serviceaccount:NS:NAME` in groups `system:serviceaccounts`,
  `system:serviceaccounts:NS` and `system:authenticated`, as long as the Secret and the
  ServiceAccount (same uid) exist; otherwise 401.

Authorization for ServiceAccount users follows the RBAC authorizer: the rules of every
ClusterRoleBinding, and of the RoleBindings of the request's namespace, whose subjects name the
user (kind ServiceAccount, or User / Group by name); a binding's roleRef names a ClusterRole or
(RoleBinding only) a Role of its namespace. A rule allows a request when its verbs, apiGroups,
resources (`res`, `res/sub`, `*`, `*/sub`, `res/*`) and resourceNames match; nonResourceURLs
(exact, or a prefix ending in `*`) for requests outside the API paths. Request attributes are
those of kube-apiserver's RequestInfoFactory: verb get / list / watch (also `?watch=` and
`/watch/` paths; a list or watch with `fieldSelector=metadata.name=X` has name X) / create /
update / patch / delete / deletecollection, the group of the path, the resource and
subresource, namespace and name. Discovery (`/api`, `/apis`, `/version`, `/openapi`, health)
is open to every authenticated user, as the bootstrap `system:discovery` and
`system:public-info-viewer` roles make it. A denial is 403 Forbidden with the real message:

    pods "x" is forbidden: User "system:serviceaccount:ns:sa" cannot get resource "pods" in
    API group "" in the namespace "ns"

(`... at the cluster scope` for cluster-scoped requests; `User "u" cannot get path "/p"` for
non-resource URLs; `: RBAC: clusterrole.rbac.authorization.k8s.io "x" not found` appended
when a matching binding names a missing role). Not modelled: aggregated ClusterRoles
(`aggregationRule`), escalation checks on writing roles, impersonation, the bootstrap roles
other than discovery.
"""

import base64
import secrets
import threading

import apierrors
import controllers
from resources import BY_PATH, resource

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
SA_UID = "kubernetes.io/service-account.uid"
ADMIN = {"name": "admin", "groups": ["system:masters", "system:authenticated"], "admin": True}
RBAC_GROUP = "rbac.authorization.k8s.io"
# Open to every authenticated user (system:discovery, system:public-info-viewer).
DISCOVERY = ("/api", "/api/*", "/apis", "/apis/*", "/version", "/version/", "/openapi",
             "/openapi/*", "/healthz", "/livez", "/readyz")

SECRETS = resource("secrets")
SAS = resource("serviceaccounts")
RBAC_PLURALS = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
_RBAC_KEYS = {(RBAC_GROUP, p) for p in RBAC_PLURALS}


def _b64(s):
    return base64.b64encode(s.encode()).decode()


def _unb64(s):
    try:
        return base64.b64decode(s or "", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def sa_user(ns, name):
    return {"name": "system:serviceaccount:%s:%s" % (ns, name), "sa": (ns, name),
            "groups": ["system:serviceaccounts", "system:serviceaccounts:%s" % ns,
                       "system:authenticated"]}


class Auth:
    """Authenticator + authorizer over one store. `admin_token` is the kubeconfig's."""

    def __init__(self, store, admin_token, ca_pem="", enforce=True):
        self.store = store
        self.admin_token = admin_token
        self.ca_pem = ca_pem
        self.enforce = enforce
        self._lock = threading.Lock()
        self._tokens = {}     # token -> (ns, secret name)
        self._cache = {}      # (user name, ns) -> (rules, missing roles)
        self._gen = 0         # bumped by every RBAC or ServiceAccount change
        self.denied = 0       # statistics
        self.allowed = 0
        store.listeners.append(self._on_change)
        with store.lock:
            for (ns, name), o in store.data[SECRETS.key].items():
                self._index(o, None)

    # ---- indexes (the store calls this with its lock held: dict work only) ----

    def _index(self, obj, prev):
        for o, add in ((prev, False), (obj, True)):
            if not o or o.get("type") != SA_TOKEN_TYPE:
                continue
            tok = _unb64((o.get("data") or {}).get("token"))
            if not tok:
                continue
            with self._lock:
                if add:
                    self._tokens[tok] = (o["metadata"].get("namespace", ""),
                                         o["metadata"]["name"])
                else:
                    self._tokens.pop(tok, None)

    def _on_change(self, res, etype, obj, prev):
        if res.key == SECRETS.key:
            if etype == "DELETED":
                self._index(None, obj)
            else:
                self._index(obj, prev)
        elif res.key in _RBAC_KEYS or res.key == SAS.key:
            with self._lock:
                self._cache.clear()
                self._gen += 1

    # ---- authentication ----

    def authenticate(self, header):
        """The user of an Authorization header, or None (401)."""
        parts = (header or "").split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return None
        tok = parts[1].strip()
        if secrets.compare_digest(tok, self.admin_token):
            return ADMIN
        with self._lock:
            where = self._tokens.get(tok)
        if where is None:
            return None
        ns, sname = where
        with self.store.lock:
            sec = self.store.peek(SECRETS, ns, sname)
            if sec is None or sec.get("type") != SA_TOKEN_TYPE:
                return None
            ann = sec["metadata"].get("annotations") or {}
            sa = self.store.peek(SAS, ns, ann.get(SA_NAME, ""))
            if sa is None or (ann.get(SA_UID) and ann[SA_UID] != sa["metadata"].get("uid")):
                return None
            if _unb64((sec.get("data") or {}).get("token")) != tok:
                return None
            return sa_user(ns, sa["metadata"]["name"])

    # ---- authorization ----

    def authorize(self, user, method, path, query):
        """Raises the 403 ApiError when the RBAC rules do not allow the request."""
        if user.get("admin") or not self.enforce:
            return
        attrs = request_info(method, path, query)
        if attrs is None:      # unknown API path: let the router answer 404
            return
        if not attrs["resource_request"] and any(_url_match(p, attrs["path"])
                                                 for p in DISCOVERY):
            return
        rules, missing = self.rules_for(user, attrs.get("namespace") or "")
        if any(rule_allows(r, attrs) for r in rules):
            self.allowed += 1
            return
        self.denied += 1
        raise forbidden(user, attrs, missing)

    def rules_for(self, user, ns):
        key = (user["name"], ns)
        with self._lock:
            hit = self._cache.get(key)
            gen = self._gen
        if hit is not None:
            return hit
        rules, missing = [], []
        for b in self.store.objects(resource("clusterrolebindings")):
            if _binds(b, user):
                self._role_rules(b, "", rules, missing)
        if ns:
            for b in self.store.objects(resource("rolebindings"), ns):
                if _binds(b, user):
                    self._role_rules(b, ns, rules, missing)
        with self._lock:
            if gen == self._gen:   # nothing changed while reading: cache it
                self._cache[key] = (rules, missing)
        return rules, missing

    def _role_rules(self, binding, ns, rules, missing):
        ref = binding.get("roleRef") or {}
        kind, name = ref.get("kind"), ref.get("name") or ""
        if kind == "ClusterRole":
            res, rns, q = resource("clusterroles"), "", "clusterrole"
        elif kind == "Role" and ns:
            res, rns, q = resource("roles"), ns, "role"
        else:
            return
        with self.store.lock:
            role = self.store.peek(res, rns, name)
            got = [dict(r) for r in (role or {}).get("rules") or [] if isinstance(r, dict)]
        if role is None:
            missing.append('%s.%s "%s" not found' % (q, RBAC_GROUP, name))
        rules.extend(got)


def _binds(binding, user):
    for s in binding.get("subjects") or []:
        if not isinstance(s, dict):
            continue
        kind = s.get("kind")
        if kind == "ServiceAccount" and user.get("sa") == (s.get("namespace") or
                                                            binding["metadata"].get(
                                                                "namespace", ""),
                                                            s.get("name")):
            return True
        if kind == "User" and s.get("name") == user["name"]:
            return True
        if kind == "Group" and s.get("name") in user["groups"]:
            return True
    return False


def _url_match(pattern, path):
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def _has(lst, want):
    return isinstance(lst, list) and ("*" in lst or want in lst)


def rule_allows(rule, attrs):
    """One PolicyRule against request attributes (rbac.RuleAllows)."""
    if not attrs["resource_request"]:
        return _has(rule.get("verbs"), attrs["verb"]) and any(
            isinstance(u, str) and (u == "*" or _url_match(u, attrs["path"]))
            for u in rule.get("nonResourceURLs") or [])
    if not _has(rule.get("verbs"), attrs["verb"]):
        return False
    if not _has(rule.get("apiGroups"), attrs["group"]):
        return False
    res, sub = attrs["resource"], attrs["subresource"]
    want = res + "/" + sub if sub else res
    ok = False
    for r in rule.get("resources") or []:
        if r == "*" or r == want:
            ok = True
        elif sub and (r == "*/" + sub or r == res + "/*"):
            ok = True
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    if names:
        return bool(attrs["name"]) and attrs["name"] in names
    return True


def request_info(method, path, query):
    """kube-apiserver's RequestInfo for an HTTP request: a dict with resource_request, verb,
    group, resource, subresource, namespace, name (resource requests) or path (others).
    None for an API path the router will answer 404 for."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis") or \
            (parts[0] == "api" and len(parts) < 3) or (parts[0] == "apis" and len(parts) < 4):
        verb = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch",
                "DELETE": "delete"}.get(method, method.lower())
        return {"resource_request": False, "verb": verb, "path": path}
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        group, version, rest = parts[1], parts[2], parts[3:]
    watch = False
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    ns = ""
    # /namespaces/NS/<resource>...; otherwise the namespace object itself (status, finalize)
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in BY_PATH:
        ns, rest = rest[1], rest[2:]
    if not rest:
        return None
    res = BY_PATH.get((group, version, rest[0]))
    if res is None:
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if res.plural == "namespaces" and name:
        ns = name
    q = query or {}
    if not watch and "watch" in q:
        v = q["watch"]
        watch = not (v == "0" or v.lower() == "false")
    if method in ("GET", "HEAD"):
        if sub == "exec":
            verb = "get"
        elif watch:
            verb = "watch"
        elif not name:
            verb = "list"
        else:
            verb = "get"
        if verb in ("list", "watch") and not name:
            for term in (q.get("fieldSelector") or "").split(","):
                k, _, v = term.partition("=")
                if k.strip() == "metadata.name" and v and not v.startswith("="):
                    name = v.strip()
                elif k.strip() == "metadata.name" and v.startswith("="):
                    name = v[1:].strip()
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = method.lower()
    return {"resource_request": True, "verb": verb, "group": group, "version": version,
            "resource": res.plural, "subresource": sub, "namespace": ns, "name": name,
            "qualified": res.qualified}


def forbidden(user, attrs, missing=()):
    """The 403 of kube-apiserver's responsewriters.Forbidden."""
    reason = ("RBAC: " + ", ".join(missing)) if missing else ""
    if not attrs["resource_request"]:
        msg = 'User "%s" cannot %s path "%s"' % (user["name"], attrs["verb"], attrs["path"])
        if reason:
            msg += ": " + reason
        return apierrors.ApiError(403, "Forbidden", "forbidden: " + msg, {})
    r = attrs["resource"] + ("/" + attrs["subresource"] if attrs["subresource"] else "")
    if attrs["namespace"]:
        msg = 'User "%s" cannot %s resource "%s" in API group "%s" in the namespace "%s"' % (
            user["name"], attrs["verb"], r, attrs["group"], attrs["namespace"])
    else:
        msg = 'User "%s" cannot %s resource "%s" in API group "%s" at the cluster scope' % (
            user["name"], attrs["verb"], r, attrs["group"])
    if reason:
        msg += ": " + reason
    gr = attrs["resource"] + ("." + attrs["group"] if attrs["group"] else "")
    details = {"kind": attrs["resource"]}
    if attrs["group"]:
        details["group"] = attrs["group"]
    if attrs["name"]:
        details["name"] = attrs["name"]
        text = '%s "%s" is forbidden: %s' % (gr, attrs["name"], msg)
    else:
        text = "%s is forbidden: %s" % (gr, msg)
    return apierrors.ApiError(403, "Forbidden", text, details)


# ---- the token controller ----

CA_PEM = {"pem": ""}    # set by the API server at start (apiserver.App)


class ServiceAccountTokens(controllers.Controller):
    """Keeps one `<sa>-token` Secret of type kubernetes.io/service-account-token per
    ServiceAccount (the legacy token controller); a Secret whose ServiceAccount is gone is
    deleted. Keys: (namespace, ServiceAccount name)."""

    name = "serviceaccount-token"
    watches = ("serviceaccounts", "secrets")

    def keys(self, res, etype, obj, prev):
        md = obj["metadata"]
        if res.key == SAS.key:
            return [(md.get("namespace", ""), md["name"])]
        if obj.get("type") == SA_TOKEN_TYPE:
            ann = md.get("annotations") or {}
            return [(md.get("namespace", ""), ann.get(SA_NAME, ""))]
        return ()

    def sync(self, key):
        ns, name = key
        sname = name + "-token"
        sa = self.fetch(SAS, ns, name)
        sec = self.fetch(SECRETS, ns, sname)
        if sa is None or sa["metadata"].get("deletionTimestamp"):
            if sec is not None and (sec["metadata"].get("annotations") or {}).get(
                    SA_NAME) == name and sec.get("type") == SA_TOKEN_TYPE:
                try:
                    self.store.delete(SECRETS, ns, sname, {"preconditions": {
                        "uid": sec["metadata"]["uid"]}})
                except apierrors.ApiError as e:
                    if e.code not in (404, 409):
                        raise
            return
        uid = sa["metadata"]["uid"]
        if sec is not None:
            ann = sec["metadata"].get("annotations") or {}
            if sec.get("type") == SA_TOKEN_TYPE and ann.get(SA_UID) == uid and \
                    _unb64((sec.get("data") or {}).get("token")):
                return
            if sec.get("type") != SA_TOKEN_TYPE:
                return      # someone else's Secret of that name: leave it
            self.store.delete(SECRETS, ns, sname, {"preconditions": {
                "uid": sec["metadata"]["uid"]}})
        body = {"apiVersion": "v1", "kind": "Secret", "type": SA_TOKEN_TYPE,
                "metadata": {"name": sname, "namespace": ns,
                             "annotations": {SA_NAME: name, SA_UID: uid},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "ServiceAccount",
                                                  "name": name, "uid": uid}]},
                "data": {"token": _b64(secrets.token_urlsafe(32)),
                         "ca.crt": _b64(CA_PEM["pem"]), "namespace": _b64(ns)}}
        try:
            self.store.create(SECRETS, ns, body)
        except apierrors.ApiError as e:
            if e.code != 409:
                raise


def token_of(store, ns, sa):
    """(token, ca.crt, namespace) of a ServiceAccount's token Secret, or None yet."""
    try:
        sec = store.get(SECRETS, ns, sa + "-token")
    except apierrors.ApiError:
        return None
    d = sec.get("data") or {}
    tok = _unb64(d.get("token"))
    if sec.get("type") != SA_TOKEN_TYPE or not tok:
        return None
    return tok, _unb64(d.get("ca.crt")), _unb64(d.get("namespace"))
