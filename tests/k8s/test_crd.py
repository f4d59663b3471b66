"""CustomResourceDefinitions in the fake API server (deploy/sandbox/crd.py), driven by real
kubectl v1.32 and the JSON client: registration and discovery, short names, printer columns,
the status subresource, cluster and namespaced scope, schema validation with the real
messages, pruning, CRD validation and CRD deletion. The OrdinalVolume CRD is the one that
ships in deploy/kubernetes/base."""

import json
import os

import pytest

from conftest import needs_kubectl
from fakeapi import ApiError, wait_for

pytestmark = needs_kubectl

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OV_CRD = os.path.join(SOURCE, "deploy", "kubernetes", "base", "crd-ordinalvolume.yaml")
OV_PATH = "/apis/ordinal.csi.dev/v1alpha1/ordinalvolumes"

NAMESPACED_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, enum: [red, blue]}
"""


def ov(name, node="n1", **spec):
    s = {"key": "default/www-web-0", "node": node, "backend": "dir",
         "store": "/var/lib/ordinal/" + name, "volumeHandle": name, "capacityBytes": 1 << 30}
    s.update(spec)
    return {"apiVersion": "ordinal.csi.dev/v1alpha1", "kind": "OrdinalVolume",
            "metadata": {"name": name}, "spec": s}


@pytest.fixture
def ovserver(apiserver):
    apiserver.kubectl("apply", "--validate=false", "-f", OV_CRD)
    apiserver.kubectl("wait", "--for", "condition=established", "--timeout=10s",
                      "crd/ordinalvolumes.ordinal.csi.dev")
    return apiserver


def test_discovery_and_short_name(ovserver):
    out = ovserver.kubectl("api-resources").stdout
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:]}
    assert rows["ordinalvolumes"] == ["ordinalvolumes", "ov", "ordinal.csi.dev/v1alpha1",
                                      "false", "OrdinalVolume"]
    assert rows["customresourcedefinitions"][1] == "crd,crds"
    assert ovserver.kubectl("get", "ov").stderr.strip() == "No resources found"
    group = ovserver.client.call("GET", "/apis/ordinal.csi.dev")
    assert group["preferredVersion"]["groupVersion"] == "ordinal.csi.dev/v1alpha1"
    crd = ovserver.client.call("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                               "ordinalvolumes.ordinal.csi.dev")
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ov"]
    assert crd["status"]["storedVersions"] == ["v1alpha1"]


def test_printer_columns_and_wide(ovserver, tmp_path):
    c = ovserver.client
    c.call("POST", OV_PATH, ov("pvc-1"))
    c.call("PUT", OV_PATH + "/pvc-1/status", dict(c.call("GET", OV_PATH + "/pvc-1"), status={
        "state": "Bound", "usedBytes": 4096, "persistentVolume": "pvc-1", "ordinal": 0,
        "statefulSet": "web", "claim": {"namespace": "default", "name": "www-web-0"}}))
    lines = ovserver.kubectl("get", "ov").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "NODE", "KEY", "ORDINAL", "PV", "CAPACITY",
                                "USED", "AGE"]
    assert lines[1].split()[:8] == ["pvc-1", "Bound", "n1", "default/www-web-0", "0", "pvc-1",
                                    str(1 << 30), "4096"]
    wide = ovserver.kubectl("get", "ov", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[9:] == ["BACKEND", "STORE", "STATEFULSET", "CLAIM", "LAST-USED"]
    assert wide[1].split()[9:13] == ["dir", "/var/lib/ordinal/pvc-1", "web", "www-web-0"]
    assert len(wide[1].split()) == 13         # lastUsedAt unset: a nil cell, printed blank
    # A fresh object has no status: its state cells are empty, not an error.
    c.call("POST", OV_PATH, ov("pvc-2", node="n2"))
    row = [ln for ln in ovserver.kubectl("get", "ov").stdout.splitlines()
           if ln.startswith("pvc-2")][0].split()
    assert row[1:3] == ["n2", "default/www-web-0"]   # blank state, ordinal, PV, used
    one = json.loads(ovserver.kubectl("get", "ov", "pvc-1", "-o", "json").stdout)
    assert one["status"]["usedBytes"] == 4096 and one["metadata"]["generation"] == 1


def test_status_subresource_separation(ovserver):
    c = ovserver.client
    body = ov("pvc-3")
    body["status"] = {"state": "Bound"}         # dropped on create
    created = c.call("POST", OV_PATH, body)
    assert "status" not in created
    cur = c.call("GET", OV_PATH + "/pvc-3")
    cur["status"] = {"state": "Orphaned"}
    cur["spec"]["node"] = "n9"
    after = c.call("PUT", OV_PATH + "/pvc-3", cur)  # main write: spec yes, status no
    assert after["spec"]["node"] == "n9" and "status" not in after
    assert after["metadata"]["generation"] == 2
    st = c.call("PATCH", OV_PATH + "/pvc-3/status",
                {"status": {"state": "Released"}, "spec": {"node": "n0"}},
                content_type="application/merge-patch+json")
    assert st["status"]["state"] == "Released" and st["spec"]["node"] == "n9"
    assert st["metadata"]["generation"] == 2      # status writes do not bump generation
    ovserver.kubectl("annotate", "ov", "pvc-3", "ordinal.csi.dev/reclaim=requested")
    got = c.call("GET", OV_PATH + "/pvc-3")
    assert got["metadata"]["annotations"]["ordinal.csi.dev/reclaim"] == "requested"
    assert got["status"]["state"] == "Released"


def test_schema_validation_messages(ovserver, tmp_path):
    c = ovserver.client
    bad = ov("pvc-4")
    del bad["spec"]["node"]
    with pytest.raises(ApiError) as e:
        c.call("POST", OV_PATH, bad)
    assert e.value.status == 422
    assert e.value.body["message"] == \
        'OrdinalVolume.ordinal.csi.dev "pvc-4" is invalid: spec.node: Required value'
    assert e.value.body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.node"}]
    with pytest.raises(ApiError) as e:
        c.call("POST", OV_PATH, ov("pvc-4", backend="zfs", capacityBytes="big"))
    msg = e.value.body["message"]
    assert 'spec.backend: Unsupported value: "zfs": supported values: "dir", "lvm"' in msg
    assert 'spec.capacityBytes: Invalid value: "string": spec.capacityBytes in body must be ' \
        'of type integer: "string"' in msg
    assert not c.exists("persistentvolumes", "pvc-4")  # (nothing created anywhere)
    assert c.request("GET", OV_PATH + "/pvc-4").status == 404
    # kubectl shows the server's message and exits 1; nothing is stored.
    p = tmp_path / "bad.yaml"
    p.write_text(json.dumps(bad))
    r = ovserver.kubectl("create", "-f", str(p), check=False)
    assert r.returncode == 1
    assert 'The OrdinalVolume "pvc-4" is invalid: spec.node: Required value' in r.stderr
    c.call("POST", OV_PATH, ov("pvc-5"))
    with pytest.raises(ApiError) as e:
        c.call("PATCH", OV_PATH + "/pvc-5/status", {"status": {"state": "Lost", "ordinal": -1}},
               content_type="application/merge-patch+json")
    assert e.value.status == 422
    assert 'status.state: Unsupported value: "Lost"' in e.value.body["message"]
    assert "status.ordinal: Invalid value: -1: status.ordinal in body should be greater than " \
        "or equal to 0" in e.value.body["message"]
    # Unknown fields are pruned, as with a structural schema.
    made = c.call("POST", OV_PATH, dict(ov("pvc-6", extra="x"), junk=1))
    assert "extra" not in made["spec"] and "junk" not in made


def test_namespaced_crd_and_watch(apiserver, tmp_path):
    p = tmp_path / "crd.yaml"
    p.write_text(NAMESPACED_CRD)
    apiserver.kubectl("apply", "--validate=false", "-f", str(p))
    base = "/apis/example.com/v1/namespaces/default/widgets"
    w = apiserver.client.watch("pods")   # any watch: just proves the server keeps serving
    w.close()
    apiserver.kubectl("create", "namespace", "other")
    apiserver.client.call("POST", base, {"apiVersion": "example.com/v1", "kind": "Widget",
                                         "metadata": {"name": "a"}, "spec": {"size": 2}})
    apiserver.client.call("POST", "/apis/example.com/v1/namespaces/other/widgets", {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "b"},
        "spec": {"size": 3, "color": "red"}})
    out = apiserver.kubectl("get", "wg", "-A").stdout.splitlines()
    assert out[0].split() == ["NAMESPACE", "NAME", "AGE"]
    assert [ln.split()[:2] for ln in out[1:]] == [["default", "a"], ["other", "b"]]
    assert apiserver.kubectl("get", "widgets", "-n", "other", "-o",
                             "jsonpath={.items[*].spec.color}").stdout == "red"
    r = apiserver.kubectl("patch", "wg", "a", "--type=merge", "-p", '{"spec":{"size":0}}',
                          check=False)
    assert r.returncode == 1 and "spec.size: Invalid value: 0: spec.size in body should be " \
        "greater than or equal to 1" in r.stderr
    # No status subresource on this CRD: /status is not served.
    assert apiserver.client.request("GET", base + "/a/status").status == 404
    apiserver.kubectl("delete", "wg", "a")
    assert apiserver.kubectl("get", "wg").stderr.strip() == \
        "No resources found in default namespace."


def test_crd_validation_and_deletion(ovserver, tmp_path):
    c = ovserver.client
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    with pytest.raises(ApiError) as e:
        c.call("POST", crds, {"apiVersion": "apiextensions.k8s.io/v1",
                              "kind": "CustomResourceDefinition",
                              "metadata": {"name": "things.example.com"},
                              "spec": {"group": "example.com", "scope": "Global",
                                       "names": {"plural": "stuff", "kind": "Thing"},
                                       "versions": [{"name": "v1", "served": True,
                                                     "storage": False}]}})
    msg = e.value.body["message"]
    assert e.value.status == 422
    assert msg.startswith('CustomResourceDefinition.apiextensions.k8s.io "things.example.com" '
                          'is invalid: [')
    assert 'metadata.name: Invalid value: "things.example.com": must be ' \
        'spec.names.plural+"."+spec.group' in msg
    assert 'spec.scope: Unsupported value: "Global": supported values: "Cluster", ' \
        '"Namespaced"' in msg
    assert "must have exactly one version marked as storage version" in msg
    assert c.request("GET", "/apis/example.com/v1/stuff").status == 404
    c.call("POST", OV_PATH, ov("pvc-7"))
    ovserver.kubectl("delete", "crd", "ordinalvolumes.ordinal.csi.dev")
    wait_for(lambda: c.request("GET", OV_PATH).status == 404, what="ov path gone")
    assert "ordinalvolumes" not in ovserver.kubectl("api-resources").stdout
    # Registered again, it starts empty (the custom resources went with their CRD).
    ovserver.kubectl("apply", "--validate=false", "-f", OV_CRD)
    assert c.call("GET", OV_PATH)["items"] == []
