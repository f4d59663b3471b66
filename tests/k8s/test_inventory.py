"""The OrdinalVolume inventory (provisioner/inventory.c) against the fake API server with the
CRD of deploy/kubernetes/base: a store's OrdinalVolume through a whole lifecycle (Bound,
Retained, Orphaned after an admin deletes the retained PV, reclaim), a reclaim refused while a
PV refers to the store, a store deleted with its Delete PV taking its OV along, and `kubectl
get ov` printing it. Every wait is on an observable state (the OV, the store directory)."""

import json
import os

import pytest

from conftest import needs_kubectl
from fakeapi import wait_for
from test_provisioner import (SLOW, claim, get_claim, nodes, storage_class,  # noqa: F401
                              wait_bound)

pytestmark = [needs_kubectl,
              pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's root needs root")]

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OV_CRD = os.path.join(SOURCE, "deploy", "kubernetes", "base", "crd-ordinalvolume.yaml")
OV_PATH = "/apis/ordinal.csi.dev/v1alpha1/ordinalvolumes"


@pytest.fixture
def api(apiserver):
    apiserver.kubectl("apply", "--validate=false", "-f", OV_CRD)
    return apiserver


def ov_of(api, key):
    for o in api.client.call("GET", OV_PATH)["items"]:
        if o["spec"]["key"] == key:
            return o
    return None


def wait_ov(api, key, state, timeout=20):
    def ok():
        o = ov_of(api, key)
        return o if o and (o.get("status") or {}).get("state") == state else None
    try:
        return wait_for(ok, timeout=timeout * SLOW, what="OV of %s %s" % (key, state))
    except AssertionError as e:
        raise AssertionError("%s; OVs now: %s" % (e, json.dumps(
            api.client.call("GET", OV_PATH)["items"])[:3000]))


def test_lifecycle_bound_retained_orphaned_reclaimed(api, nodes):  # noqa: F811
    n1 = nodes("n1")
    storage_class(api, "keep", binding="Immediate", reclaim="Retain")
    claim(api, "data-web-0", cls="keep", node="n1")
    pvc = wait_bound(api, "data-web-0")
    pv = pvc["spec"]["volumeName"]
    ov = wait_ov(api, "default/data-web-0", "Bound")
    assert ov["metadata"]["name"] == pv
    assert ov["spec"]["node"] == "n1" and ov["spec"]["backend"] == "dir"
    assert ov["spec"]["volumeHandle"] == api.client.get("persistentvolumes", pv, ns=None)[
        "spec"]["csi"]["volumeHandle"]
    assert ov["spec"]["capacityBytes"] == 64 << 20
    assert ov["status"]["persistentVolume"] == pv
    assert ov["status"]["claim"] == {"namespace": "default", "name": "data-web-0",
                                     "uid": pvc["metadata"]["uid"]}
    assert ov["metadata"]["labels"]["ordinal.csi.dev/node"] == "n1"
    rows = api.kubectl("get", "ov").stdout.splitlines()
    assert rows[0].split()[:3] == ["NAME", "STATE", "NODE"]
    assert rows[1].split()[:4] == [pv, "Bound", "n1", "default/data-web-0"]

    # A reclaim while the PV refers to the store: refused, said in the status, nothing lost.
    api.kubectl("annotate", "ov", pv, "ordinal.csi.dev/reclaim=requested")
    wait_for(lambda: "reclaim refused: PersistentVolume %s refers to this store" % pv in (
        api.client.call("GET", OV_PATH + "/" + pv).get("status") or {}).get("message", ""),
        timeout=20 * SLOW, what="refusal in status.message")
    assert n1.volume_dirs() == ["default/data-web-0"]
    api.kubectl("annotate", "ov", pv, "ordinal.csi.dev/reclaim-")

    api.client.delete("persistentvolumeclaims", "data-web-0")
    ov = wait_ov(api, "default/data-web-0", "Retained")
    assert ov["status"]["persistentVolume"] == pv
    assert "message" not in ov["status"]        # the refusal is gone with the request

    # The admin deletes the retained PV: the store stays, now Orphaned, with no PV or claim.
    api.client.delete("persistentvolumes", pv, ns=None)
    wait_for(lambda: not api.client.exists("persistentvolumes", pv, ns=None),
             timeout=20 * SLOW, what="PV gone")
    ov = wait_ov(api, "default/data-web-0", "Orphaned")
    assert "persistentVolume" not in ov["status"] and "claim" not in ov["status"]
    assert n1.volume_dirs() == ["default/data-web-0"]   # never deleted automatically

    # kubectl ordinal reclaim's protocol: the annotation; the node deletes store, then OV.
    api.kubectl("annotate", "ov", pv, "ordinal.csi.dev/reclaim=requested")
    try:
        wait_for(lambda: api.client.request("GET", OV_PATH + "/" + pv).status == 404,
                 timeout=20 * SLOW, what="OV deleted after reclaim")
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, n1.log_text()[-4000:]))
    assert n1.volume_dirs() == []
    n1.wait_log("inventory: reclaimed orphaned store")


def test_delete_policy_store_and_ov_go_together(api, nodes):  # noqa: F811
    n1 = nodes("n1")
    storage_class(api, "gone", binding="Immediate", reclaim="Delete")
    claim(api, "tmp-0", cls="gone", node="n1")
    wait_bound(api, "tmp-0")
    ov = wait_ov(api, "default/tmp-0", "Bound")
    api.client.delete("persistentvolumeclaims", "tmp-0")
    wait_for(lambda: api.client.request("GET", OV_PATH + "/" + ov["metadata"]["name"]).status
             == 404, timeout=20 * SLOW, what="OV gone with its store")
    assert n1.volume_dirs() == []


def test_inventory_waits_for_the_crd_and_never_blocks_provisioning(apiserver, nodes):  # noqa
    """No CRD installed: claims still bind; once the CRD appears, the inventory catches up."""
    n1 = nodes("n1")
    storage_class(apiserver, "keep", binding="Immediate", reclaim="Retain")
    claim(apiserver, "early-0", cls="keep", node="n1")
    wait_bound(apiserver, "early-0")
    n1.wait_log("inventory: waiting for the OrdinalVolume API")
    apiserver.kubectl("apply", "--validate=false", "-f", OV_CRD)
    wait_ov(apiserver, "default/early-0", "Bound", timeout=60)
