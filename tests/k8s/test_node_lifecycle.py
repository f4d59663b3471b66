"""The reconciler's node loss through the sandbox's node lifecycle controller
(deploy/sandbox/nodelifecycle.py): a node whose heartbeat stops is marked Ready=Unknown after
--node-monitor-grace-period, and a set that opts in (ordinal.csi.dev/on-node-loss: recreate,
ordinal.csi.dev/node-loss-grace) has its ordinal's claim and PV deleted once the node has been
not Ready for longer than that grace, counted from the Unknown transition (the reconciler
re-reads NotReady nodes every 30 s, so this takes up to about 35 s)."""

import os
import signal
import sys
import time

import pytest

from fakeapi import wait_for
from test_provisioner import (SLOW, claim, controller, nodes,  # noqa: F401
                              storage_class, wait_bound)
from test_reconciler import set_events, statefulset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "deploy", "sandbox"))
import nodelifecycle  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's root needs root")

GRACE = 2.0        # --node-monitor-grace-period
LOSS = 3           # the set's node-loss-grace (seconds)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def ready(api, node):
    n = api.client.get("nodes", node, ns=None)
    return next((c for c in (n.get("status") or {}).get("conditions") or []
                 if c["type"] == "Ready"), {})


@pytest.mark.apiserver_args(
    "--controllers", "pv-binder,pvc-protection,pv-protection,garbage-collector,namespace,"
    "node-lifecycle", "--node-monitor-grace-period", str(GRACE))
def test_node_unknown_after_the_grace_is_node_loss(apiserver, nodes, tmp_path):
    storage_class(apiserver, "loc", binding="WaitForFirstConsumer", reclaim="Delete")
    statefulset(apiserver, replicas=1, cls="loc")
    apiserver.client.call("PATCH", "/apis/apps/v1/namespaces/default/statefulsets/web", {
        "metadata": {"annotations": {"ordinal.csi.dev/on-node-loss": "recreate",
                                     "ordinal.csi.dev/node-loss-grace": "%ds" % LOSS}}},
        content_type="application/merge-patch+json")
    apiserver.client.create("nodes", {"apiVersion": "v1", "kind": "Node",
                                      "metadata": {"name": "n1"}}, ns=None)
    nodes("n1")
    ctrl = controller(apiserver, "ctrl", str(tmp_path))
    try:
        claim(apiserver, "www-web-0", cls="loc", node="n1")
        pv = wait_bound(apiserver, "www-web-0")["spec"]["volumeName"]
        # a kubelet's last word: Ready True, heartbeat now; then nothing (no Lease renewed)
        n = apiserver.client.get("nodes", "n1", ns=None)
        n["status"] = {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady", "lastHeartbeatTime": now(),
                                       "lastTransitionTime": now()}]}
        apiserver.client.update("nodes", n, ns=None, sub="status")
        posted = time.time()
        wait_for(lambda: ready(apiserver, "n1").get("status") == "Unknown",
                 timeout=GRACE + 10 * SLOW, what="n1 Unknown after the grace period")
        r = ready(apiserver, "n1")
        assert r["reason"] == "NodeStatusUnknown"
        unknown = nodelifecycle.parse_time(r["lastTransitionTime"])
        assert unknown >= int(posted + GRACE) - 1
        taints = apiserver.client.get("nodes", "n1", ns=None)["spec"]["taints"]
        assert {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"} in taints
        # the reconciler looks at NotReady nodes again every 30 s (provisioner/reconciler.c)
        ev = wait_for(lambda: set_events(apiserver, "NodeLost"), timeout=LOSS + 30 + 20 * SLOW,
                      what="NodeLost on the set")
        assert "node n1 is NotReady for" in ev[0]["message"], ev[0]["message"]
        assert "(grace %d s)" % LOSS in ev[0]["message"]
        assert "deleting the claim and its PersistentVolume" in ev[0]["message"]
        wait_for(lambda: not apiserver.client.exists("persistentvolumeclaims", "www-web-0"),
                 timeout=20 * SLOW, what="claim deleted")
        assert time.time() >= unknown + LOSS, "not before the set's grace after Unknown"

        def pv_deleted():
            if not apiserver.client.exists("persistentvolumes", pv, ns=None):
                return True
            return apiserver.client.get("persistentvolumes", pv, ns=None)[
                "metadata"].get("deletionTimestamp")
        wait_for(pv_deleted, timeout=20 * SLOW, what="PV deleted")
    finally:
        ctrl.send_signal(signal.SIGTERM)
        assert ctrl.wait(30) == 0
