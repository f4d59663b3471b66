"""metadata.managedFields written by the fake API server (deploy/sandbox/managedfields.py) as
kube-apiserver writes them: on every create, update and patch, the manager taken from the
User-Agent (or ?fieldManager=), operation Update, fieldsV1 naming the fields set; an update
moves the changed fields to its manager; a no-op write changes nothing; clients cannot overwrite
the record."""

from fakeapi import path

NS = "default"


def claim(name):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}


def entries(obj):
    return {(e["manager"], e.get("subresource")): e for e in obj["metadata"]["managedFields"]}


def test_create_update_patch_record_their_managers(apiserver):
    c = apiserver.client
    ua = {"User-Agent": "kubectl/v1.32.0 (linux/amd64) kubernetes/abc"}
    o = c.call("POST", path("persistentvolumeclaims", ns=NS), claim("mf-a"), headers=ua)
    e = entries(o)[("kubectl", None)]
    assert e["operation"] == "Update" and e["fieldsType"] == "FieldsV1"
    assert e["apiVersion"] == "v1" and e["time"].endswith("Z")
    f = e["fieldsV1"]
    assert f["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    assert f["f:spec"]["f:resources"]["f:requests"] == {".": {}, "f:storage": {}}
    assert 'v:"ReadWriteOnce"' in f["f:spec"]["f:accessModes"]
    assert "f:uid" not in f["f:metadata"] and "f:status" not in f

    # a patch by another manager: its fields are its own, taken from kubectl
    o = c.call("PATCH", path("persistentvolumeclaims", "mf-a", ns=NS),
               {"metadata": {"labels": {"app": "db"},
                             "annotations": {"volume.kubernetes.io/selected-node": "n1"}}},
               headers={"User-Agent": "ordinal-csi/0.1"},
               content_type="application/merge-patch+json")
    es = entries(o)
    mine = es[("ordinal-csi", None)]["fieldsV1"]["f:metadata"]
    assert "f:volume.kubernetes.io/selected-node" in mine["f:annotations"]
    assert "f:app" in mine["f:labels"]
    assert "f:app" not in es[("kubectl", None)]["fieldsV1"]["f:metadata"]["f:labels"]

    # a status write: a separate entry with subresource status
    o = c.call("PATCH", path("persistentvolumeclaims", "mf-a", ns=NS, sub="status"),
               {"status": {"phase": "Bound"}}, headers={"User-Agent": "ctl/1"},
               content_type="application/merge-patch+json")
    assert entries(o)[("ctl", "status")]["fieldsV1"] == {"f:status": {"f:phase": {}}}

    # ?fieldManager= wins over the User-Agent
    o = c.call("PATCH", path("persistentvolumeclaims", "mf-a", ns=NS),
               {"metadata": {"annotations": {"x": "1"}}}, query={"fieldManager": "mine"},
               headers=ua, content_type="application/merge-patch+json")
    assert ("mine", None) in entries(o)


def test_noop_and_client_copies_change_nothing(apiserver):
    c = apiserver.client
    o = c.call("POST", path("persistentvolumeclaims", ns=NS), claim("mf-b"),
               headers={"User-Agent": "a/1"})
    rv, mf = o["metadata"]["resourceVersion"], o["metadata"]["managedFields"]
    # the object sent back as read: no write
    again = c.call("PUT", path("persistentvolumeclaims", "mf-b", ns=NS), o,
                   headers={"User-Agent": "b/1"})
    assert again["metadata"]["resourceVersion"] == rv
    assert again["metadata"]["managedFields"] == mf
    # without managedFields, or with forged ones: the server's record stays
    del o["metadata"]["managedFields"]
    again = c.call("PUT", path("persistentvolumeclaims", "mf-b", ns=NS), o,
                   headers={"User-Agent": "b/1"})
    assert again["metadata"]["resourceVersion"] == rv
    assert again["metadata"]["managedFields"] == mf
    o["metadata"]["managedFields"] = [{"manager": "forged", "operation": "Update"}]
    o["metadata"]["labels"]["app"] = "x"
    again = c.call("PUT", path("persistentvolumeclaims", "mf-b", ns=NS), o,
                   headers={"User-Agent": "b/1"})
    ms = [e["manager"] for e in again["metadata"]["managedFields"]]
    assert "forged" not in ms and "b" in ms
