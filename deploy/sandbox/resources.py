"""The resource types served, with their API-server strategies: defaults, validation,
selectable fields and Table columns (the parts of kube-apiserver that shape stored objects)."""

import time

from apierrors import ApiError

DNS_LABEL_MAX = 63


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def rfc3339_after(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def parse_rfc3339(s):
    try:
        return time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except (TypeError, ValueError):
        return None


class Resource:
    def __init__(self, group, version, plural, singular, kind, namespaced, short=(), status=False,
                 categories=(), scale=False, generation=False):
        self.group = group
        self.version = version
        self.plural = plural
        self.singular = singular
        self.kind = kind
        self.namespaced = namespaced
        self.short = list(short)
        self.status = status
        self.categories = list(categories)
        self.scale = scale
        self.generation = generation
        self.key = (group, plural)
        self.api_version = "%s/%s" % (group, version) if group else version
        self.qualified = "%s.%s" % (plural, group) if group else plural
        self.return_deleted = plural in ("pods", "persistentvolumes", "persistentvolumeclaims")
        # Strategy hooks of a generically served type (crd.py): prepare(obj), defaults(obj),
        # validate(obj, old) -> causes, columns (Table columns or None).
        self.hooks = None

    def discovery(self):
        out = [{"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch",
                          "update", "watch"]}]
        if self.short:
            out[0]["shortNames"] = self.short
        if self.categories:
            out[0]["categories"] = self.categories
        if self.status:
            out.append({"name": self.plural + "/status", "singularName": "",
                        "namespaced": self.namespaced, "kind": self.kind,
                        "verbs": ["get", "patch", "update"]})
        if self.scale:
            out.append({"name": self.plural + "/scale", "singularName": "", "group": "autoscaling",
                        "version": "v1", "namespaced": self.namespaced, "kind": "Scale",
                        "verbs": ["get", "patch", "update"]})
        if self.plural == "pods":
            out.append({"name": "pods/binding", "singularName": "", "namespaced": True,
                        "kind": "Binding", "verbs": ["create"]})
        return out


R = Resource
RESOURCES = [
    R("", "v1", "namespaces", "namespace", "Namespace", False, ["ns"], status=True),
    R("", "v1", "nodes", "node", "Node", False, ["no"], status=True),
    R("", "v1", "pods", "pod", "Pod", True, ["po"], status=True, categories=["all"]),
    R("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim",
      True, ["pvc"], status=True),
    R("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", False, ["pv"],
      status=True),
    R("", "v1", "events", "event", "Event", True, ["ev"]),
    R("", "v1", "configmaps", "configmap", "ConfigMap", True, ["cm"]),
    R("", "v1", "secrets", "secret", "Secret", True),
    R("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"]),
    R("", "v1", "services", "service", "Service", True, ["svc"], status=True, categories=["all"]),
    R("", "v1", "endpoints", "endpoints", "Endpoints", True, ["ep"]),
    R("apps", "v1", "statefulsets", "statefulset", "StatefulSet", True, ["sts"], status=True,
      categories=["all"], scale=True, generation=True),
    R("apps", "v1", "deployments", "deployment", "Deployment", True, ["deploy"], status=True,
      categories=["all"], scale=True, generation=True),
    R("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ["ds"], status=True,
      categories=["all"], generation=True),
    R("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", True),
    R("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", False, ["sc"]),
    R("storage.k8s.io", "v1", "csidrivers", "csidriver", "CSIDriver", False),
    R("storage.k8s.io", "v1", "csinodes", "csinode", "CSINode", False),
    R("storage.k8s.io", "v1", "volumeattachments", "volumeattachment", "VolumeAttachment", False,
      status=True),
    R("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
    R("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False),
    R("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
      "ClusterRoleBinding", False),
    R("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    R("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True),
    # Served generically by crd.py, which also gives this type its strategy hooks.
    R("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
      "CustomResourceDefinition", False, ["crd", "crds"], status=True,
      categories=["api-extensions"], generation=True),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KEY = {r.key: r for r in RESOURCES}
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
GROUPS = []  # (group, version) in discovery order
for _r in RESOURCES:
    if _r.group and (_r.group, _r.version) not in GROUPS:
        GROUPS.append((_r.group, _r.version))


def resource(name):
    """Look a resource up by plural, e.g. resource('persistentvolumeclaims')."""
    for r in RESOURCES:
        if r.plural == name or name in r.short or r.singular == name:
            return r
    raise KeyError(name)


# ---- defaults (pkg/apis/*/v1/defaults.go) ----

def _pod_spec_defaults(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = c.get("image", "")
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        c.setdefault("imagePullPolicy",
                     "Always" if (not tagged or image.endswith(":latest")) else "IfNotPresent")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and isinstance(v.get("configMap"), dict):
            v["configMap"].setdefault("defaultMode", 420)
        if isinstance(v, dict) and isinstance(v.get("secret"), dict):
            v["secret"].setdefault("defaultMode", 420)


def _pvc_defaults(pvc):
    spec = pvc.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    status = pvc.setdefault("status", {})
    status.setdefault("phase", "Pending")


def _workload_defaults(obj, sts):
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    tmpl = spec.setdefault("template", {})
    tmpl.setdefault("metadata", {})
    _pod_spec_defaults(tmpl.setdefault("spec", {}))
    if sts:
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type", "RollingUpdate") == "RollingUpdate":
            us.setdefault("type", "RollingUpdate")
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        pol = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        pol.setdefault("whenDeleted", "Retain")
        pol.setdefault("whenScaled", "Retain")
        for t in spec.get("volumeClaimTemplates") or []:
            if isinstance(t, dict):
                t.setdefault("apiVersion", "v1")
                t.setdefault("kind", "PersistentVolumeClaim")
                _pvc_defaults(t)
    else:
        spec.setdefault("progressDeadlineSeconds", 600)
        st = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if st.get("type") == "RollingUpdate":
            st.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})


def apply_defaults(res, obj):
    if res.hooks is not None:
        res.hooks.defaults(obj)
    p = res.plural
    if p == "persistentvolumeclaims":
        _pvc_defaults(obj)
    elif p == "persistentvolumes":
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif p == "pods":
        spec = obj.setdefault("spec", {})
        _pod_spec_defaults(spec)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif p == "statefulsets":
        _workload_defaults(obj, True)
    elif p == "deployments":
        _workload_defaults(obj, False)
    elif p == "daemonsets":
        spec = obj.setdefault("spec", {})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {
            "maxUnavailable": 1, "maxSurge": 0}})
        _pod_spec_defaults(spec.setdefault("template", {}).setdefault("spec", {}))
    elif p == "storageclasses":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    elif p == "csidrivers":
        spec = obj.setdefault("spec", {})
        spec.setdefault("attachRequired", True)
        spec.setdefault("podInfoOnMount", False)
        spec.setdefault("volumeLifecycleModes", ["Persistent"])
        spec.setdefault("storageCapacity", False)
        spec.setdefault("fsGroupPolicy", "ReadWriteOnceWithFSType")
        spec.setdefault("requiresRepublish", False)
        spec.setdefault("seLinuxMount", False)
    elif p == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
            obj["metadata"]["name"]
    elif p == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif p == "secrets":
        obj.setdefault("type", "Opaque")


def prepare_for_create(res, obj):
    """Strategy.PrepareForCreate: status reset for types whose status is server-owned."""
    if res.hooks is not None:
        res.hooks.prepare(obj)
    p = res.plural
    if p in ("persistentvolumeclaims", "persistentvolumes"):
        obj["status"] = {}
        if p == "persistentvolumes":
            obj["status"]["lastPhaseTransitionTime"] = now_rfc3339()
    elif p == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif p == "statefulsets":
        obj["status"] = {"replicas": 0, "availableReplicas": 0}
    elif p in ("deployments", "daemonsets"):
        obj["status"] = {}
    elif p == "namespaces":
        obj["status"] = {"phase": "Active"}


# ---- validation (subset of pkg/apis/*/validation) ----

_SUBDOMAIN_RE = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_RE = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_VALUE_RE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_QNAME_RE = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"


def dns_subdomain_errors(v):
    """validation.IsDNS1123Subdomain: its messages."""
    import re
    out = []
    if len(v) > 253:
        out.append("must be no more than 253 characters")
    if not re.fullmatch(_SUBDOMAIN_RE, v):
        out.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                   "characters, '-' or '.', and must start and end with an alphanumeric "
                   "character (e.g. 'example.com', regex used for validation is '%s')"
                   % _SUBDOMAIN_RE)
    return out


def dns_label_errors(v):
    """validation.IsDNS1123Label: its messages."""
    import re
    out = []
    if len(v) > DNS_LABEL_MAX:
        out.append("must be no more than 63 characters")
    if not re.fullmatch(_LABEL_RE, v):
        out.append("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                   "characters or '-', and must start and end with an alphanumeric character "
                   "(e.g. 'my-name',  or '123-abc', regex used for validation is '%s')"
                   % _LABEL_RE)
    return out


def label_errors(labels, field="metadata.labels"):
    """ValidateLabels: keys are qualified names, values at most 63 characters of the label
    value alphabet."""
    import re
    out = []
    if not isinstance(labels, dict):
        return out
    for k, v in labels.items():
        prefix, _, nm = str(k).rpartition("/")
        if not nm or len(nm) > 63 or not re.fullmatch(_QNAME_RE, nm) or \
                (prefix and dns_subdomain_errors(prefix)):
            out.append('Invalid value: "%s": name part must consist of alphanumeric characters, '
                       "'-', '_' or '.', and must start and end with an alphanumeric character "
                       "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
                       "is '%s')" % (k, _QNAME_RE))
        if not isinstance(v, str):
            continue
        if len(v) > 63:
            out.append('Invalid value: "%s": must be no more than 63 characters' % v)
        if not re.fullmatch(_LABEL_VALUE_RE, v):
            out.append('Invalid value: "%s": a valid label must be an empty string or consist of '
                       "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                       "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                       "regex used for validation is '%s')" % (v, _LABEL_VALUE_RE))
    return out


def go_map(d):
    """fmt %#v of a map[string]string, as field.Invalid prints a label map."""
    import json
    if d is None:
        return "map[string]string(nil)"
    return "map[string]string{%s}" % ", ".join("%s:%s" % (json.dumps(k), json.dumps(d[k]))
                                               for k in sorted(d))


def _non_negative(spec, path, value):
    if value is not None and (not isinstance(value, int) or value < 0):
        return [(path, "FieldValueInvalid", "Invalid value: %s: must be greater than or equal "
                 "to 0" % value)]
    return []


def validate_statefulset_spec(spec):
    """ValidateStatefulSetSpec (pkg/apis/apps/validation), the parts a user meets."""
    import labelsel as selectors
    causes = []

    def bad(field, message, reason="FieldValueInvalid"):
        causes.append((field, reason, message))
    pmp = spec.get("podManagementPolicy")
    if pmp not in ("OrderedReady", "Parallel"):
        bad("spec.podManagementPolicy", 'Unsupported value: "%s": supported values: '
            '"OrderedReady", "Parallel"' % pmp, "FieldValueNotSupported")
    us = spec.get("updateStrategy") or {}
    if us.get("type") not in ("RollingUpdate", "OnDelete"):
        bad("spec.updateStrategy.type", 'Unsupported value: "%s": supported values: "OnDelete", '
            '"RollingUpdate"' % us.get("type"), "FieldValueNotSupported")
    elif us.get("type") == "OnDelete" and us.get("rollingUpdate") is not None:
        bad("spec.updateStrategy.rollingUpdate", "Invalid value: %s: only allowed for "
            "updateStrategy 'RollingUpdate'" % us.get("rollingUpdate"))
    causes += _non_negative(spec, "spec.updateStrategy.rollingUpdate.partition",
                            (us.get("rollingUpdate") or {}).get("partition"))
    pol = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    for k in ("whenDeleted", "whenScaled"):
        if pol.get(k) not in ("Retain", "Delete"):
            bad("spec.persistentVolumeClaimRetentionPolicy.%s" % k, 'Unsupported value: "%s": '
                'supported values: "Retain", "Delete"' % pol.get(k), "FieldValueNotSupported")
    causes += _non_negative(spec, "spec.replicas", spec.get("replicas"))
    causes += _non_negative(spec, "spec.minReadySeconds", spec.get("minReadySeconds"))
    if spec.get("ordinals") is not None:
        causes += _non_negative(spec, "spec.ordinals.start",
                                (spec.get("ordinals") or {}).get("start"))
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    sel = spec.get("selector")
    if not sel:
        bad("spec.selector", "Required value", "FieldValueRequired")
    elif not (sel.get("matchLabels") or sel.get("matchExpressions")):
        bad("spec.selector", "Invalid value: %s: empty selector is invalid for statefulset"
            % go_map(sel.get("matchLabels")))
    else:
        try:
            ok = selectors.labels_match(selectors.selector_from_match(sel), labels)
        except ApiError:
            ok = False
        if not ok:
            bad("spec.template.metadata.labels", "Invalid value: %s: `selector` does not match "
                "template `labels`" % go_map(labels))
    tspec = tmpl.get("spec") or {}
    if not tspec.get("containers"):
        bad("spec.template.spec.containers", "Required value", "FieldValueRequired")
    rp = tspec.get("restartPolicy")
    if rp not in (None, "Always"):
        bad("spec.template.spec.restartPolicy", 'Unsupported value: "%s": supported values: '
            '"Always"' % rp, "FieldValueNotSupported")
    if tspec.get("activeDeadlineSeconds") is not None:
        bad("spec.template.spec.activeDeadlineSeconds", "Forbidden: activeDeadlineSeconds in "
            "StatefulSet is not Supported", "FieldValueForbidden")
    seen = set()
    for i, t in enumerate(spec.get("volumeClaimTemplates") or []):
        base = "spec.volumeClaimTemplates[%d]" % i
        if not isinstance(t, dict):
            bad(base, "Invalid value: must be an object")
            continue
        tname = (t.get("metadata") or {}).get("name") or ""
        if not tname:
            bad(base + ".metadata.name", "Required value: name or generateName is required",
                "FieldValueRequired")
        else:
            for m in dns_subdomain_errors(tname):
                bad(base + ".metadata.name", 'Invalid value: "%s": %s' % (tname, m))
            if tname in seen:
                bad(base + ".metadata.name", 'Duplicate value: "%s"' % tname,
                    "FieldValueDuplicate")
            seen.add(tname)
        ts = t.get("spec") or {}
        if not ts.get("accessModes"):
            bad(base + ".spec.accessModes", "Required value: at least 1 access mode is required",
                "FieldValueRequired")
        for m in ts.get("accessModes") or []:
            if m not in ACCESS:
                bad(base + ".spec.accessModes", 'Unsupported value: "%s": supported values: '
                    '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"' % m,
                    "FieldValueNotSupported")
        if not ((ts.get("resources") or {}).get("requests") or {}).get("storage"):
            bad(base + ".spec.resources[storage]", "Required value", "FieldValueRequired")
    return causes


def validate(res, obj, old=None):
    """Returns a list of (field, reason, message) causes; empty when valid."""
    causes = []
    md = obj.get("metadata") or {}
    name = md.get("name", "")
    p = res.plural

    def bad(field, message, reason="FieldValueInvalid"):
        causes.append((field, reason, message))

    if old is None:
        label_names = ("namespaces", "services")
        if p not in ("events",) or not name:
            for m in (dns_label_errors(name) if p in label_names else
                      dns_subdomain_errors(name)):
                bad("metadata.name", 'Invalid value: "%s": %s' % (name, m))
    for m in label_errors(md.get("labels")):
        bad("metadata.labels", m)
    for f in md.get("finalizers") or []:
        if not isinstance(f, str) or not f:
            bad("metadata.finalizers", "Invalid value: %r" % (f,))
    if old is not None:
        old_md = old.get("metadata") or {}
        if old_md.get("deletionTimestamp"):
            new_f = set(md.get("finalizers") or []) - set(old_md.get("finalizers") or [])
            if new_f:
                bad("metadata.finalizers", "Forbidden: no new finalizers can be added if the "
                    "object is being deleted, found new finalizers %s" % sorted(new_f),
                    "FieldValueForbidden")
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    if p == "persistentvolumeclaims":
        if old is None:
            if not spec.get("accessModes"):
                bad("spec.accessModes", "Required value: at least 1 access mode is required",
                    "FieldValueRequired")
            if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
                bad("spec.resources[storage]", "Required value", "FieldValueRequired")
        else:
            os_, ns_ = dict(old.get("spec") or {}), dict(spec)
            for s in (os_, ns_):
                s.pop("volumeAttributesClassName", None)
                s["resources"] = dict(s.get("resources") or {})
                s["resources"].pop("requests", None)
            if not os_.get("volumeName"):
                ns_.pop("volumeName", None)
                os_.pop("volumeName", None)
            if not os_.get("storageClassName"):
                ns_.pop("storageClassName", None)
                os_.pop("storageClassName", None)
            if os_ != ns_:
                bad("spec", "Forbidden: spec is immutable after creation except "
                    "resources.requests and volumeAttributesClassName for bound claims",
                    "FieldValueForbidden")
    elif p == "persistentvolumes":
        if not (spec.get("capacity") or {}).get("storage"):
            bad("spec.capacity", "Required value", "FieldValueRequired")
        if not spec.get("accessModes"):
            bad("spec.accessModes", "Required value", "FieldValueRequired")
        sources = [k for k in ("csi", "hostPath", "local", "nfs", "iscsi", "fc", "rbd", "cephfs")
                   if spec.get(k)]
        if len(sources) != 1:
            bad("spec", "Required value: must specify a volume type", "FieldValueRequired")
        csi = spec.get("csi") or {}
        if spec.get("csi") is not None and (not csi.get("driver") or not csi.get("volumeHandle")):
            bad("spec.csi", "Required value: driver and volumeHandle are required",
                "FieldValueRequired")
        if old is not None:
            o = old.get("spec") or {}
            for k in sources:
                if o.get(k) != spec.get(k):
                    bad("spec.persistentvolumesource", "Forbidden: spec.persistentvolumesource "
                        "is immutable after creation", "FieldValueForbidden")
    elif p == "storageclasses":
        if not obj.get("provisioner"):
            bad("provisioner", "Required value", "FieldValueRequired")
        if obj.get("reclaimPolicy") not in ("Delete", "Retain"):
            bad("reclaimPolicy", 'Unsupported value: "%s"' % obj.get("reclaimPolicy"),
                "FieldValueNotSupported")
        if obj.get("volumeBindingMode") not in ("Immediate", "WaitForFirstConsumer"):
            bad("volumeBindingMode", 'Unsupported value: "%s"' % obj.get("volumeBindingMode"),
                "FieldValueNotSupported")
        if old is not None:
            for k in ("parameters", "provisioner", "reclaimPolicy", "volumeBindingMode"):
                if old.get(k) != obj.get(k):
                    bad(k, "Forbidden: updates to %s are forbidden." % k, "FieldValueForbidden")
    elif p == "csidrivers":
        if old is not None and (old.get("spec") or {}).get("attachRequired") != \
                spec.get("attachRequired"):
            bad("spec.attachRequired", "Invalid value: field is immutable")
    elif p == "statefulsets":
        causes.extend(validate_statefulset_spec(spec))
        if old is not None:
            o = dict(old.get("spec") or {})
            n = dict(spec)
            for k in ("replicas", "ordinals", "template", "updateStrategy",
                      "persistentVolumeClaimRetentionPolicy", "minReadySeconds"):
                o.pop(k, None)
                n.pop(k, None)
            if o != n:
                bad("spec", "Forbidden: updates to statefulset spec for fields other than "
                    "'replicas', 'ordinals', 'template', 'updateStrategy', "
                    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                    "FieldValueForbidden")
    elif p == "pods":
        if not spec.get("containers"):
            bad("spec.containers", "Required value", "FieldValueRequired")
        # Names a kubelet turns into paths (volumes, containers) must be RFC 1123 labels.
        for field in ("volumes", "containers", "initContainers"):
            for i, item in enumerate(spec.get(field) or []):
                n = item.get("name") if isinstance(item, dict) else None
                if not isinstance(n, str) or not n:
                    bad("spec.%s[%d].name" % (field, i), "Required value", "FieldValueRequired")
                elif dns_label_errors(n):
                    bad("spec.%s[%d].name" % (field, i), 'Invalid value: "%s": a lowercase RFC '
                        "1123 label must consist of lower case alphanumeric characters or '-', "
                        "and must start and end with an alphanumeric character (e.g. 'my-name',"
                        "  or '123-abc', regex used for validation is "
                        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')" % n)
        if old is not None:
            o = old.get("spec") or {}
            if o.get("nodeName") and o.get("nodeName") != spec.get("nodeName"):
                bad("spec", "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`, `spec.activeDeadlineSeconds`, "
                    "`spec.tolerations` (only additions to existing tolerations)",
                    "FieldValueForbidden")
    if res.hooks is not None:
        causes += res.hooks.validate(obj, old)
    return causes


# ---- field selectors (pkg/registry/*/strategy.go *ToSelectableFields) ----

def _get(obj, path):
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


EXTRA_FIELDS = {
    "pods": ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
             "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
             "status.nominatedNodeName"],
    "persistentvolumeclaims": ["name"],
    "persistentvolumes": ["name"],
    "namespaces": ["status.phase", "name"],
    "nodes": ["spec.unschedulable"],
    "secrets": ["type"],
    "events": ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion",
               "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
               "reportingComponent", "source", "type"],
    "statefulsets": ["status.replicas"],
}


def selectable_fields(res):
    base = ["metadata.name"] + (["metadata.namespace"] if res.namespaced else [])
    return base + EXTRA_FIELDS.get(res.plural, [])


def field_set(res, obj):
    out = {}
    for f in selectable_fields(res):
        if f == "name":
            out[f] = _get(obj, "metadata.name")
        elif f == "source":
            out[f] = _get(obj, "source.component")
        else:
            out[f] = _get(obj, f)
    return out


# ---- Table output (pkg/printers/internalversion/printers.go) ----

def human_duration(seconds):
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    if h < 24 * 365 * 8:
        return "%dy%dd" % (h // 24 // 365, (h // 24) % 365)
    return "%dy" % (h // 24 // 365)


def _age(obj):
    t = parse_rfc3339((obj.get("metadata") or {}).get("creationTimestamp"))
    return "<unknown>" if t is None else human_duration(time.time() - t)


ACCESS = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
          "ReadWriteOncePod": "RWOP"}


def _modes(modes):
    return ",".join(ACCESS.get(m, m) for m in modes or [])


def _phase(obj, default=""):
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    return (obj.get("status") or {}).get("phase", default)


def _pod_status(o):
    """kubectl's printPod STATUS: Init:N/M (or the failing init container's reason) while
    init containers run, else the reason of the last container that has one, else the phase;
    Terminating once deletionTimestamp is set."""
    st = o.get("status") or {}
    inits = (o.get("spec") or {}).get("initContainers") or []
    reason = None
    for i, c in enumerate(st.get("initContainerStatuses") or []):
        state = c.get("state") or {}
        t, w = state.get("terminated"), state.get("waiting") or {}
        if t is not None and t.get("exitCode") == 0:
            continue
        if t is not None:
            reason = "Init:" + (t.get("reason") or ("Signal:%d" % t["signal"] if t.get("signal")
                                                     else "ExitCode:%d" % t.get("exitCode", 0)))
        elif w.get("reason") and w["reason"] != "PodInitializing":
            reason = "Init:" + w["reason"]
        else:
            reason = "Init:%d/%d" % (i, len(inits))
        break
    if reason is None:
        reason = _main_status(st)
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    return reason


def _main_status(st):
    reason = st.get("reason") or st.get("phase") or ""
    has_running = False
    for c in reversed(st.get("containerStatuses") or []):
        state = c.get("state") or {}
        w, t = state.get("waiting") or {}, state.get("terminated")
        if w.get("reason"):
            reason = w["reason"]
        elif t is not None:
            if t.get("reason"):
                reason = t["reason"]
            elif t.get("signal"):
                reason = "Signal:%d" % t["signal"]
            else:
                reason = "ExitCode:%d" % t.get("exitCode", 0)
        elif c.get("ready") and "running" in state:
            has_running = True
    if reason == "Completed" and has_running:
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in st.get("conditions") or [])
        reason = "Running" if ready else "NotReady"
    return reason


def _pod_restarts(o):
    """kubectl's RESTARTS: the sum, with the time since the last restart when there was one."""
    st = o.get("status") or {}
    cs = (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or [])
    n = sum(c.get("restartCount", 0) for c in cs)
    last = [parse_rfc3339(((c.get("lastState") or {}).get("terminated") or {}).get(
        "finishedAt")) for c in cs]
    last = [t for t in last if t is not None]
    if n and last:
        return "%d (%s ago)" % (n, human_duration(time.time() - max(last)))
    return str(n)


def _pod_ready(o):
    cs = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    return "%d/%d" % (sum(1 for c in cs if c.get("ready")), total)


def _node_status(o):
    for c in (o.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            s = "Ready" if c.get("status") == "True" else ("NotReady" if c.get("status") ==
                                                          "False" else "Unknown")
            break
    else:
        s = "Unknown"
    if (o.get("spec") or {}).get("unschedulable"):
        s += ",SchedulingDisabled"
    return s


def _sc_name(o):
    n = o["metadata"]["name"]
    ann = o["metadata"].get("annotations") or {}
    if ann.get("storageclass.kubernetes.io/is-default-class") == "true":
        n += " (default)"
    return n


def _claim(o):
    c = (o.get("spec") or {}).get("claimRef")
    return "%s/%s" % (c.get("namespace", ""), c.get("name", "")) if c else ""


def _images(o, key):
    cs = (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get(key, "") for c in cs)


def _s(o, path, default=""):
    v = _get(o, path)
    return v if v != "" else default


def _event_object(o):
    io = o.get("involvedObject") or {}
    return "%s/%s" % ((io.get("kind") or "").lower(), io.get("name", ""))


def _event_last_seen(o):
    t = parse_rfc3339(o.get("lastTimestamp") or o.get("eventTime") or
                      (o.get("metadata") or {}).get("creationTimestamp"))
    return "<unknown>" if t is None else human_duration(time.time() - t)


def _revision_controller(o):
    """printControllerRevision: <resource>.<group>/<name> of the controller, or <none>."""
    for r in o["metadata"].get("ownerReferences") or []:
        if r.get("controller"):
            group = (r.get("apiVersion") or "").rpartition("/")[0]
            plural = r.get("kind", "").lower() + "s"
            return "%s%s/%s" % (plural, "." + group if group else "", r.get("name", ""))
    return "<none>"


NAME = ("Name", "string", "name", lambda o: o["metadata"]["name"], 0)
AGE = ("Age", "string", "", _age, 0)
TABLES = {
    "pods": [NAME, ("Ready", "string", "", _pod_ready, 0),
             ("Status", "string", "", _pod_status, 0),
             ("Restarts", "string", "", _pod_restarts, 0), AGE,
             ("IP", "string", "", lambda o: _s(o, "status.podIP", "<none>"), 1),
             ("Node", "string", "", lambda o: _s(o, "spec.nodeName", "<none>"), 1)],
    "persistentvolumeclaims": [
        NAME, ("Status", "string", "", lambda o: _phase(o), 0),
        ("Volume", "string", "", lambda o: _s(o, "spec.volumeName"), 0),
        ("Capacity", "string", "", lambda o: _s(o, "status.capacity.storage"), 0),
        ("Access Modes", "string", "", lambda o: _modes((o.get("status") or {}).get(
            "accessModes")), 0),
        ("StorageClass", "string", "", lambda o: _s(o, "spec.storageClassName"), 0),
        ("VolumeAttributesClass", "string", "",
         lambda o: _s(o, "spec.volumeAttributesClassName", "<unset>"), 0), AGE,
        ("VolumeMode", "string", "", lambda o: _s(o, "spec.volumeMode"), 1)],
    "persistentvolumes": [
        NAME, ("Capacity", "string", "", lambda o: _s(o, "spec.capacity.storage"), 0),
        ("Access Modes", "string", "", lambda o: _modes((o.get("spec") or {}).get(
            "accessModes")), 0),
        ("Reclaim Policy", "string", "", lambda o: _s(o, "spec.persistentVolumeReclaimPolicy"), 0),
        ("Status", "string", "", lambda o: _phase(o), 0),
        ("Claim", "string", "", _claim, 0),
        ("StorageClass", "string", "", lambda o: _s(o, "spec.storageClassName"), 0),
        ("VolumeAttributesClass", "string", "",
         lambda o: _s(o, "spec.volumeAttributesClassName", "<unset>"), 0),
        ("Reason", "string", "", lambda o: _s(o, "status.reason"), 0), AGE,
        ("VolumeMode", "string", "", lambda o: _s(o, "spec.volumeMode"), 1)],
    "statefulsets": [NAME, ("Ready", "string", "", lambda o: "%s/%s" % (
        (o.get("status") or {}).get("readyReplicas", 0), (o.get("spec") or {}).get("replicas", 0)),
        0), AGE, ("Containers", "string", "", lambda o: _images(o, "name"), 1),
        ("Images", "string", "", lambda o: _images(o, "image"), 1)],
    "controllerrevisions": [NAME, ("Controller", "string", "", _revision_controller, 0),
                            ("Revision", "integer", "", lambda o: o.get("revision", 0), 0), AGE],
    "storageclasses": [
        ("Name", "string", "name", _sc_name, 0),
        ("Provisioner", "string", "", lambda o: o.get("provisioner", ""), 0),
        ("ReclaimPolicy", "string", "", lambda o: o.get("reclaimPolicy", ""), 0),
        ("VolumeBindingMode", "string", "", lambda o: o.get("volumeBindingMode", ""), 0),
        ("AllowVolumeExpansion", "string", "", lambda o: str(bool(o.get(
            "allowVolumeExpansion"))).lower(), 0), AGE],
    "csidrivers": [NAME, ("AttachRequired", "boolean", "", lambda o: _s(o, "spec.attachRequired"),
                          0),
                   ("PodInfoOnMount", "boolean", "", lambda o: _s(o, "spec.podInfoOnMount"), 0),
                   ("StorageCapacity", "boolean", "", lambda o: _s(o, "spec.storageCapacity"), 0),
                   ("TokenRequests", "string", "", lambda o: "<unset>", 0),
                   ("RequiresRepublish", "boolean", "",
                    lambda o: _s(o, "spec.requiresRepublish"), 0),
                   ("Modes", "string", "", lambda o: ",".join(
                       (o.get("spec") or {}).get("volumeLifecycleModes") or []), 0), AGE],
    "csinodes": [NAME, ("Drivers", "integer", "", lambda o: len(
        (o.get("spec") or {}).get("drivers") or []), 0), AGE],
    "nodes": [NAME, ("Status", "string", "", _node_status, 0),
              ("Roles", "string", "", lambda o: "<none>", 0), AGE,
              ("Version", "string", "", lambda o: _s(o, "status.nodeInfo.kubeletVersion"), 0)],
    "namespaces": [NAME, ("Status", "string", "", lambda o: _phase(o), 0), AGE],
    "leases": [NAME, ("Holder", "string", "", lambda o: _s(o, "spec.holderIdentity"), 0), AGE],
    "events": [("Last Seen", "string", "", _event_last_seen, 0),
               ("Type", "string", "", lambda o: o.get("type", ""), 0),
               ("Reason", "string", "", lambda o: o.get("reason", ""), 0),
               ("Object", "string", "", _event_object, 0),
               ("Message", "string", "", lambda o: o.get("message", ""), 0)],
}


def table(res, objs, include="Metadata", list_meta=None):
    cols = (res.hooks.columns if res.hooks is not None else None) or \
        TABLES.get(res.plural, [NAME, AGE])
    rows = []
    for o in objs:
        cells = []
        for c in cols:
            try:
                cells.append(c[3](o))
            except Exception:  # a malformed object must not break `kubectl get`
                cells.append("")
        row = {"cells": cells}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": [{"name": c[0], "type": c[1], "format": c[2],
                                   "description": c[5] if len(c) > 5 else c[0],
                                   "priority": c[4]} for c in cols],
            "rows": rows}


def check_kind(res, obj):
    kind, av = obj.get("kind"), obj.get("apiVersion")
    if kind and kind != res.kind:
        raise ApiError(400, "BadRequest", 'the object provided is unrecognized (must be of '
                       'type %s): kind "%s" (expected %s)' % (res.kind, kind, res.kind))
    if av and av != res.api_version:
        raise ApiError(400, "BadRequest", "the API version in the data (%s) does not match the "
                       "expected API version (%s)" % (av, res.api_version))
