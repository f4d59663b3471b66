"""Least-privilege RBAC: the rules of the node plugin's and the controller's ServiceAccounts are
exactly the (API group, resource, verb) triples the C code requests, no more, no wildcards.

REQUESTS below is the table derived by reading the code; test_table_matches_the_code re-derives
it from provisioner/ and kube/ on every run (calls of the kube_* request functions and the informers),
so a new request without a rule, or a rule the code no longer needs, fails this suite."""

import glob
import os
import re

import pytest

from conftest import NAMESPACE, OVERLAYS, SOURCE, objects, one

# component -> {(apiGroup, resource): verbs}; namespaced rules noted in NAMESPACED.
REQUESTS = {
    # provisioner/provision.c: informers on classes, volumes and claims (list + watch); claim
    # finalizers and selected-node (get + patch, kube_update_retry*: a merge patch with a
    # resourceVersion precondition); PVs: get, create, patch (finalizers, claimRef re-pointing),
    # delete; Events on claims (create, kube_recorder.c).
    "node": {
        ("", "persistentvolumeclaims"): {"get", "list", "watch", "patch"},
        ("", "persistentvolumes"): {"get", "list", "watch", "create", "patch", "delete"},
        ("storage.k8s.io", "storageclasses"): {"list", "watch"},
        ("", "events"): {"create"},
        # provisioner/inventory.c: the OrdinalVolume inventory (informer; create, spec and
        # status merge patches, delete of a store's OV); a live PV get before a reclaim.
        ("ordinal.csi.dev", "ordinalvolumes"): {"list", "watch", "create", "patch", "delete"},
        ("ordinal.csi.dev", "ordinalvolumes/status"): {"patch"},
    },
    # kube/kube_leader.c: one Lease in the controller's namespace. provisioner/reconciler.c:
    # informers on sets, claims, classes, PVs; the admission annotation (a claim merge patch),
    # the release approval (a PV merge patch); the ordinal fields of OrdinalVolumes (a status
    # merge patch); node loss (nodes watched; with the set's opt-in, claim and PV deletes);
    # Events (kube_recorder_post).
    "controller": {
        ("coordination.k8s.io", "leases"): {"get", "create", "update"},
        ("apps", "statefulsets"): {"list", "watch"},
        ("", "persistentvolumeclaims"): {"list", "watch", "patch", "delete"},
        ("", "persistentvolumes"): {"list", "watch", "patch", "delete"},
        ("", "nodes"): {"list", "watch"},
        ("storage.k8s.io", "storageclasses"): {"list", "watch"},
        ("", "events"): {"create"},
        ("ordinal.csi.dev", "ordinalvolumes"): {"list", "watch"},
        ("ordinal.csi.dev", "ordinalvolumes/status"): {"patch"},
    },
}
# Which source file's requests belong to which ServiceAccount.
# kube_recorder.c posts the Events the provisioner queues (node mode only today).
COMPONENT_OF_FILE = {"provision.c": "node", "kube_recorder.c": "node", "inventory.c": "node",
                     "reconciler.c": "controller",
                     "kube_leader.c": "controller"}
SERVICE_ACCOUNT = {"node": "ordinal-node", "controller": "ordinal-controller"}
WORKLOAD = {"node": ("DaemonSet", "ordinal-node"), "controller": ("Deployment", "ordinal-controller")}

# What each client function sends (kube/kube_client.c, kube_informer.c).
VERBS_OF_CALL = {
    "kube_get": {"get"}, "kube_list": {"list"}, "kube_list_all": {"list"},
    "kube_create": {"create"}, "kube_update": {"update"}, "kube_patch": {"patch"},
    "kube_delete": {"delete"}, "kube_update_retry": {"get", "patch"},
    "kube_update_retry_from": {"get", "patch"}, "kube_informer_new": {"list", "watch"},
    "kube_watch_start": {"watch"},
    # the bounded forms (a deadline, a retry cap, a stop flag): the same requests.
    "kube_get_opts": {"get"}, "kube_create_opts": {"create"}, "kube_update_opts": {"update"},
    # provision.c's wrapper: kube_update_retry_from on the resource it is given.
    "set_finalizer": {"get", "patch"},
}
# Calls whose subresource argument may be "status".
WRITES = {"kube_patch", "kube_update", "kube_update_opts", "kube_update_retry",
          "kube_update_retry_from"}
# Functions that forward a resource they are given (their own calls are not requests).
FORWARDERS = {("provision.c", "set_finalizer")}
# Files that implement the client itself: they build paths for their callers.
CLIENT_FILES = {"kube_client.c", "kube_informer.c", "kube_watch.c", "kube_auth.c",
                "kube_config.c", "kube_util.c", "kube_queue.c", "kube_ratelimit.c",
                "kube_yaml.c", "metrics.c"}

CALL = re.compile(r"\b(%s)\s*\(" % "|".join(sorted(VERBS_OF_CALL, key=len, reverse=True)))
FUNC = re.compile(r"^[a-z][^\n;]*?\b([a-z_][a-z0-9_]*)\s*\([^;{]*\)\s*\{", re.M)


def _resources():
    """kube_<plural> -> (group, plural) from kube_client.c's resource table."""
    text = open(os.path.join(SOURCE, "kube", "kube_client.c")).read()
    out = {}
    for m in re.finditer(r"const struct kube_resource (kube_\w+)\s*=\s*\{\s*\"([^\"]*)\",\s*"
                         r"\"[^\"]*\",\s*\"([^\"]+)\"", text):
        out[m.group(1)] = (m.group(2), m.group(3))
    assert len(out) >= 10, out
    return out


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def derive():
    """(component -> {(group, resource): verbs}, problems) from provisioner/ and kube/."""
    res = _resources()
    found, problems = {}, []
    for path in sorted(glob.glob(os.path.join(SOURCE, "provisioner", "**", "*.c"), recursive=True) +
                       glob.glob(os.path.join(SOURCE, "kube", "*.c"))):
        base = os.path.basename(path)
        text = _strip_comments(open(path).read())
        # Raw API paths or raw requests outside the client are requests this test cannot see.
        if base not in CLIENT_FILES:
            for m in re.finditer(r"\"/apis?/|\bkube_request(_opts)?\s*\(|\bkube_stream\s*\(", text):
                problems.append("%s:%d: raw API request %r: give it a kube_* call and a rule"
                                % (base, text.count("\n", 0, m.start()) + 1, m.group(0)))
        funcs = [(m.start(), m.group(1)) for m in FUNC.finditer(text)]
        for m in CALL.finditer(text):
            fn, line = m.group(1), text.count("\n", 0, m.start()) + 1
            # The definition or declaration of the function itself.
            before = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
            if re.search(r"\b(int|void|bool|struct \w+ \*)\s*\**$", before.strip() + " ") or \
                    before.strip().startswith(("static", "int ", "struct")):
                continue
            if base in CLIENT_FILES:
                continue
            encl = [name for pos, name in funcs if pos < m.start()]
            encl = encl[-1] if encl else None
            args = text[m.end():text.find(";", m.end())]
            r = re.search(r"&(kube_\w+)", args)
            if (base, encl) in FORWARDERS and not r:
                continue
            if not r or r.group(1) not in res:
                problems.append("%s:%d: %s on a resource this test cannot name" % (base, line, fn))
                continue
            group, plural = res[r.group(1)]
            # A write to the status subresource needs a rule of its own (<plural>/status).
            if fn in WRITES and re.search(r'"status"', args):
                plural += "/status"
            comp = COMPONENT_OF_FILE.get(base)
            if comp is None:
                problems.append("%s:%d: %s from a file with no ServiceAccount in "
                                "COMPONENT_OF_FILE" % (base, line, fn))
                continue
            found.setdefault(comp, {}).setdefault((group, plural), set()).update(
                VERBS_OF_CALL[fn])
        # Events handed to a recorder are created by it, for the file's ServiceAccount.
        if base not in CLIENT_FILES and re.search(r"\bkube_recorder_post\s*\(", text) and \
                base in COMPONENT_OF_FILE:
            found.setdefault(COMPONENT_OF_FILE[base], {}).setdefault(("", "events"), set()).add(
                "create")
    return found, problems


def test_table_matches_the_code():
    found, problems = derive()
    assert not problems, "\n".join(problems)
    assert found == REQUESTS, "the C code requests %r; REQUESTS (and the manifests) say %r" % (
        found, REQUESTS)


def _rules_for(overlay, component):
    """{(group, resource): verbs} granted to the component's ServiceAccount, with the scope of
    each grant ('cluster' or the namespace) and resourceNames, if any."""
    sa = SERVICE_ACCOUNT[component]
    kind, name = WORKLOAD[component]
    w = one(overlay, kind, name)
    assert w["spec"]["template"]["spec"]["serviceAccountName"] == sa
    one(overlay, "ServiceAccount", sa)
    granted = {}
    for b in objects(overlay, "ClusterRoleBinding") + objects(overlay, "RoleBinding"):
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa and
                   s.get("namespace") == NAMESPACE for s in b.get("subjects", [])):
            continue
        ref = b["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        role = one(overlay, ref["kind"], ref["name"])
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), "wildcard in %s %s" % (ref["kind"],
                                                                            ref["name"])
            assert "nonResourceURLs" not in rule
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    granted.setdefault((g, r), set()).update(rule["verbs"])
    return granted


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("component", sorted(REQUESTS))
def test_rules_are_exactly_what_the_code_requests(overlay, component):
    assert _rules_for(overlay, component) == REQUESTS[component]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_rights_stay_in_its_namespace(overlay):
    """The Lease rules are a Role in ordinal-system; get/update name the one Lease. The
    reconciler's cluster-wide ClusterRole grants nothing on Leases."""
    role = one(overlay, "Role", "ordinal-controller")
    assert role["metadata"]["namespace"] == NAMESPACE
    for rule in one(overlay, "ClusterRole", "ordinal-controller")["rules"]:
        assert "leases" not in rule["resources"]
    for rule in role["rules"]:
        if set(rule["verbs"]) & {"get", "update"}:
            # kube_side.c: the Lease is the driver name with dots as dashes.
            assert rule.get("resourceNames") == ["ordinal-csi-dev"]
