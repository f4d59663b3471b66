"""RBAC in the fake API server (deploy/sandbox/rbac.py): ServiceAccount tokens issued by the
token controller, Roles / ClusterRoles and their bindings evaluated per request, 403 with the
real Status message, the admin token all-powerful."""

import base64

import pytest

from fakeapi import ApiError, Client, wait_for

RBAC = "/apis/rbac.authorization.k8s.io/v1"
USER = 'User "system:serviceaccount:default:robot"'


def sa_client(cluster, ns="default", name="robot"):
    c = cluster.client
    c.create("serviceaccounts", {"metadata": {"name": name}}, ns=ns)

    def token():
        r = c.request("GET", "/api/v1/namespaces/%s/secrets/%s-token" % (ns, name))
        return r.body if r.status == 200 else None
    sec = wait_for(token, 10, what="the token Secret of %s/%s" % (ns, name))
    assert sec["type"] == "kubernetes.io/service-account-token"
    assert sec["metadata"]["annotations"]["kubernetes.io/service-account.name"] == name
    assert base64.b64decode(sec["data"]["namespace"]).decode() == ns
    assert b"BEGIN CERTIFICATE" in base64.b64decode(sec["data"]["ca.crt"])
    tok = base64.b64decode(sec["data"]["token"]).decode()
    return Client(cluster.srv.url, tok, cluster.srv.ca_file)


def forbidden(fn):
    with pytest.raises(ApiError) as e:
        fn()
    assert e.value.status == 403, e.value
    assert e.value.body["reason"] == "Forbidden"
    return e.value.body


def role(c, kind, name, rules, ns="default"):
    p = RBAC + ("/namespaces/%s/roles" % ns if kind == "Role" else "/clusterroles")
    c.call("POST", p, {"metadata": {"name": name}, "rules": rules})


def bind(c, kind, name, role_kind, role_name, subjects, ns="default"):
    p = RBAC + ("/namespaces/%s/rolebindings" % ns if kind == "RoleBinding"
                else "/clusterrolebindings")
    c.call("POST", p, {"metadata": {"name": name},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                   "name": role_name}, "subjects": subjects})


SUBJ = [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]


def test_forbidden_messages_and_role_grants(cluster):
    c = cluster.client
    r = sa_client(cluster)
    b = forbidden(lambda: r.list("pods"))
    assert b["message"] == ('pods is forbidden: %s cannot list resource "pods" in API group "" '
                            'in the namespace "default"' % USER)
    assert b["details"] == {"kind": "pods"}
    b = forbidden(lambda: r.get("statefulsets", "web"))
    assert b["message"] == ('statefulsets.apps "web" is forbidden: %s cannot get resource '
                            '"statefulsets" in API group "apps" in the namespace "default"' % USER)
    assert b["details"] == {"kind": "statefulsets", "group": "apps", "name": "web"}
    b = forbidden(lambda: r.list("persistentvolumes"))
    assert b["message"].endswith('cannot list resource "persistentvolumes" in API group "" at '
                                 'the cluster scope')
    b = forbidden(lambda: r.call("GET", "/_fault"))
    assert b["message"] == 'forbidden: %s cannot get path "/_fault"' % USER
    # discovery is open to every authenticated user
    assert r.call("GET", "/api/v1")["groupVersion"] == "v1"
    assert r.call("GET", "/apis")["kind"] == "APIGroupList"

    role(c, "Role", "pod-reader", [{"apiGroups": [""], "resources": ["pods"],
                                    "verbs": ["get", "list"]}])
    forbidden(lambda: r.list("pods"))           # no binding yet
    bind(c, "RoleBinding", "robot-pods", "Role", "pod-reader", SUBJ)
    assert wait_for(lambda: r.request("GET", "/api/v1/namespaces/default/pods").status == 200, 5)
    assert r.list("pods")["items"] == []
    b = forbidden(lambda: r.list("pods", watch="true"))
    assert 'cannot watch resource "pods"' in b["message"]
    forbidden(lambda: r.list("pods", ns="kube-system"))   # a Role is its namespace only
    b = forbidden(lambda: r.create("pods", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "x"}]}}))
    assert b["message"].startswith("pods is forbidden: %s cannot create resource" % USER)
    b = forbidden(lambda: r.delete("pods", "p"))
    assert b["message"].startswith('pods "p" is forbidden: %s cannot delete' % USER)
    b = forbidden(lambda: r.call("DELETE", "/api/v1/namespaces/default/pods"))
    assert "cannot deletecollection resource" in b["message"]


def test_subresources_names_and_cluster_roles(cluster):
    c = cluster.client
    r = sa_client(cluster)
    c.create("persistentvolumeclaims", {"metadata": {"name": "a"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    c.create("persistentvolumeclaims", {"metadata": {"name": "b"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    # resourceNames: get of claim a only; status subresource needs its own rule
    role(c, "ClusterRole", "claim-a", [
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "resourceNames": ["a"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims/status"],
         "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["pods/binding"], "verbs": ["create"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    bind(c, "ClusterRoleBinding", "robot-claims", "ClusterRole", "claim-a", SUBJ)
    assert wait_for(lambda: r.request("GET", "/api/v1/namespaces/default/"
                                      "persistentvolumeclaims/a").status == 200, 5)
    b = forbidden(lambda: r.get("persistentvolumeclaims", "b"))
    assert b["message"].startswith('persistentvolumeclaims "b" is forbidden')
    forbidden(lambda: r.list("persistentvolumeclaims"))      # a list has no name
    # ... unless it selects the one name (RequestInfo takes it from the field selector)
    assert [i["metadata"]["name"] for i in r.list(
        "persistentvolumeclaims", fieldSelector="metadata.name=a")["items"]] == ["a"]
    forbidden(lambda: r.patch("persistentvolumeclaims", "a", {"metadata": {"labels": {"x": "1"}}}))
    r.patch("persistentvolumeclaims", "a", {"status": {"phase": "Pending"}}, sub="status")
    b = forbidden(lambda: r.update("persistentvolumeclaims", c.get("persistentvolumeclaims", "a"),
                                   sub="status"))
    assert 'cannot update resource "persistentvolumeclaims/status" in API group ""' in b["message"]
    # pods/binding: create on the subresource, nothing on pods themselves
    c.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
                                                                          "image": "x"}]}})
    c.create("nodes", {"metadata": {"name": "n1"}})
    r.call("POST", "/api/v1/namespaces/default/pods/p/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})
    assert c.get("pods", "p")["spec"]["nodeName"] == "n1"
    forbidden(lambda: r.get("pods", "p"))
    # a binding to a role that does not exist says so
    bind(c, "RoleBinding", "dangling", "Role", "nope", SUBJ)
    b = forbidden(lambda: r.list("configmaps"))   # bindings take effect at once
    assert b["message"].endswith(': RBAC: role.rbac.authorization.k8s.io "nope" not found')


def test_group_subjects_admin_and_token_lifecycle(cluster):
    c = cluster.client
    r = sa_client(cluster)
    role(c, "ClusterRole", "ns-lister", [{"apiGroups": [""], "resources": ["namespaces"],
                                          "verbs": ["list"]}])
    bind(c, "ClusterRoleBinding", "all-sas", "ClusterRole", "ns-lister",
         [{"kind": "Group", "name": "system:serviceaccounts:default",
           "apiGroup": "rbac.authorization.k8s.io"}])
    assert wait_for(lambda: r.request("GET", "/api/v1/namespaces").status == 200, 5)
    # the admin token is not subject to RBAC
    assert c.list("pods")["items"] == []
    # a deleted ServiceAccount's token stops working (401), its Secret goes
    c.delete("serviceaccounts", "robot")
    assert wait_for(lambda: r.request("GET", "/api/v1/namespaces").status == 401, 5)
    assert wait_for(lambda: not c.exists("secrets", "robot-token"), 5)
    bad = Client(cluster.srv.url, "not-a-token", cluster.srv.ca_file)
    assert bad.request("GET", "/api/v1/namespaces").status == 401
