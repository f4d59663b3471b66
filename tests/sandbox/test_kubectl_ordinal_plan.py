"""`kubectl ordinal plan` against what then really happens, in the sandbox (its StatefulSet
controller, garbage collector and PV binder, real ordinal-csi node plugins): for a cell of the
retention table, the plan is taken, the scale or delete is done with real kubectl, and every
ordinal's claim and PV end up as the plan said (kept: claim and PV there; deleted: both gone;
retained: claim gone, PV Released and still there). Needs ORDINAL_CSI and kubectl-ordinal."""

import json
import os
import subprocess

import pytest

from fakeapi import KUBECTL, wait_for
from sbxlib import sts
from test_cli import needs_csi, sbx_factory  # noqa: F401 - the fixture: up, down, log checks

PLUGIN = os.environ.get("ORDINAL_KUBECTL_PLUGIN") or os.path.join(
    os.environ.get("ORDINAL_BUILD", ""), "kubectl-ordinal")
pytestmark = [needs_csi,
              pytest.mark.skipif(not os.path.exists(PLUGIN), reason="kubectl-ordinal not built"),
              pytest.mark.skipif(not __import__("shutil").which(KUBECTL),
                                 reason="kubectl not installed")]


@pytest.fixture
def sbx(sbx_factory):
    return sbx_factory(nodes=2)


def plan(s, *args):
    env = dict(os.environ, KUBECONFIG=s.kubeconfig)
    p = subprocess.run([PLUGIN, "plan"] + list(args) + ["-o", "json"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    return {o["ordinal"]: o for o in doc["ordinals"]}, doc["steps"]


def up(s, obj, n):
    kubelets = any(x.get("kubelet") for x in s.state()["nodes"])
    s.kubectl("apply", "-f", "-", input=json.dumps(obj))
    c = s.client
    for i in range(n):
        name = "web-%d" % i
        wait_for(lambda: (c.get("pods", name).get("spec") or {}).get("nodeName"), timeout=60,
                 what="%s scheduled" % name)
        if not kubelets:
            s.cluster.run_pod(name)
    wait_for(lambda: all(c.exists("persistentvolumeclaims", "www-web-%d" % i) and
                         c.get("persistentvolumeclaims", "www-web-%d" % i)["status"].get(
                             "phase") == "Bound" for i in range(n)),
             timeout=60, what="claims Bound")
    return {i: c.get("persistentvolumeclaims", "www-web-%d" % i)["spec"]["volumeName"]
            for i in range(n)}


def caught_up(s, timeout=30):
    """Wait until the sandbox's controllers have handled every change made so far."""
    target = int(s.client.call("GET", "/_fault")["resourceVersion"])

    def done():
        c = s.client.call("GET", "/_fault")["controllers"]
        return c["processed_rv"] >= target and not c["retries"]
    wait_for(done, timeout=timeout, interval=0.05, what="controllers caught up")


def inventory_keys(s):
    """The keys of the OrdinalVolume objects the node plugins keep (one per backing store)."""
    p = s.kubectl("get", "ordinalvolumes", "-o", "json")
    return {(ov.get("spec") or {}).get("key") for ov in json.loads(p.stdout)["items"]}


def settled(s, plan_rows, pvs):
    """True once every ordinal's claim and PV are as the plan says, and the inventory no longer
    lists a store the plan deletes (the node plugin dropped its OrdinalVolume with the store:
    kubectl ordinal reads the inventory too)."""
    c = s.client
    keys = inventory_keys(s)
    for o, row in plan_rows.items():
        claim = c.exists("persistentvolumeclaims", "www-web-%d" % o)
        pv = c.exists("persistentvolumes", pvs[o], ns=None)
        want = {"kept": (True, True), "deleted": (False, False),
                "retained": (False, True)}[row["data"]]
        if (claim, pv) != want:
            return False
        if row["data"] == "deleted" and any(k and k.endswith("/www-web-%d" % o) for k in keys):
            return False
        if row["data"] == "retained" and c.get("persistentvolumes", pvs[o], ns=None)[
                "status"].get("phase") != "Released":
            return False
    return True


KEPT3 = {0: "kept", 1: "kept", 2: "kept"}


@pytest.mark.parametrize("policy,sc,pmp,steps", [
    # whenScaled Delete on a Delete class: scaled-away data deleted; the set's deletion keeps
    # ordinal 0 (whenDeleted Retain)
    (("Delete", "Retain"), "ordinal", "Parallel",
     [("scale", {0: "kept", 1: "deleted", 2: "deleted"}), ("delete", {0: "kept"})]),
    # the same on a Retain class: claims deleted, PVs Released, data retained
    (("Delete", "Retain"), "ordinal-retain", "Parallel",
     [("scale", {0: "kept", 1: "retained", 2: "retained"})]),
    # whenDeleted Delete: scale-down keeps everything (the claims keep the set's reference),
    # then deleting the set deletes all three, the scaled-away ones too
    (("Retain", "Delete"), "ordinal", "Parallel",
     [("scale", KEPT3), ("delete", {0: "deleted", 1: "deleted", 2: "deleted"})]),
    # OrderedReady: the plan's pod order (web-2, then web-1, one at a time) is what happens
    (("Delete", "Delete"), "ordinal", "OrderedReady",
     [("scale", {0: "kept", 1: "deleted", 2: "deleted"}), ("delete", {0: "deleted"})]),
])
def test_plan_matches_what_happens(sbx, policy, sc, pmp, steps):
    pvs = up(sbx, sts(replicas=3, policy=policy, pmp=pmp, sc=sc), 3)
    if policy[1] == "Delete":
        # the StatefulSet controller sets the claims' owner references after the pods start
        wait_for(lambda: all(sbx.client.get("persistentvolumeclaims", "www-web-%d" % i)[
            "metadata"].get("ownerReferences") for i in range(3)), timeout=30,
            what="claims owned by the set")
    for action, want in steps:
        if action == "scale":
            rows, plan_steps = plan(sbx, "scale", "web", "--replicas", "1")
        else:
            rows, plan_steps = plan(sbx, "delete", "web")
        assert {o: r["data"] for o, r in rows.items()} == want, action
        pod_steps = [(x["step"], x["ordinal"]) for x in plan_steps if x["action"] == "delete pod"]
        rv = sbx.client.list("pods")["metadata"]["resourceVersion"]
        w = sbx.client.watch("pods", resourceVersion=rv, timeout=90)
        if action == "scale":
            sbx.kubectl("scale", "sts", "web", "--replicas=1")
            gone = [1, 2]
        else:  # the claims are deleted by the GC only once the set is gone
            sbx.kubectl("delete", "sts", "web")
            gone = [0]
        deleted = []
        while len(deleted) < len(gone):
            ev = w.next_event(timeout=60)
            assert ev is not None, "pod deletions seen: %r of %r" % (deleted, gone)
            if ev["type"] == "DELETED":
                deleted.append(int(ev["object"]["metadata"]["name"].rsplit("-", 1)[1]))
        w.close()
        assert sorted(deleted) == sorted(o for _, o in pod_steps) == gone
        if pmp == "OrderedReady" and action == "scale":
            # one pod per step, highest first: the plan's order is the order seen
            assert [o for _, o in sorted(pod_steps)] == deleted == [2, 1]
            assert len({n for n, _ in pod_steps}) == 2
        # every controller has acted on that (the GC on the claims, the binder on the PVs)
        # before the states are compared; deletions by the node plugins are waited for
        caught_up(sbx)
        wait_for(lambda: settled(sbx, rows, pvs), timeout=90,
                 what="claims and PVs as planned after %s: %r" % (action, want))
        caught_up(sbx)
        assert settled(sbx, rows, pvs)
