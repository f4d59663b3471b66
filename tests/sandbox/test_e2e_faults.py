"""End to end on one real sandbox: a node's kubelet stopped and started again under a running
set, ordinal-csi killed -9 and restarted under a running set, and invalid StatefulSets refused
by the API server with the real messages (as kubectl prints them), nothing created."""

import json
import os
import signal
import urllib.error
import urllib.request

import pytest

import e2e
import sbxctl
from e2e import needs_csi, service, wait_for, web

pytestmark = needs_csi


def serves(pod):
    """GET / on the pod's IP: the body, or None when nothing listens."""
    try:
        with urllib.request.urlopen("http://%s/" % pod["status"]["podIP"], timeout=5) as r:
            return r.read().decode()
    except (ConnectionError, urllib.error.URLError):
        return None


def node_ready(sbx, node):
    n = sbx.client.get("nodes", node, ns=None)
    return [c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"][0]


def replaced(sbx, ns, name, old):
    def ok():
        p = sbx.pods(ns).get(name)
        return p if p and p["metadata"]["uid"] != old["metadata"]["uid"] and e2e.ready(p) \
            else None
    return wait_for(ok, timeout=e2e.WAIT, what="a new %s Running and Ready" % name)


def test_kubelet_stopped_and_started_under_a_running_set(sbx, ns):
    sbx.apply(ns, service(), web(replicas=3, pmp="Parallel", grace=2))
    before = sbx.wait_ready(ns, ["web-0", "web-1", "web-2"])
    sbx.write_hostnames(ns, ["web-0", "web-1", "web-2"])
    node = before["web-1"]["spec"]["nodeName"]
    others = [p for p in ("web-0", "web-2") if before[p]["spec"]["nodeName"] != node]
    try:
        out = sbxctl.cli("node", "--dir", sbx.dir, "stop", node).stdout
        assert "%s stopped" % node in out
        wait_for(lambda: node_ready(sbx, node) == "Unknown", timeout=e2e.WAIT,
                 what="the node Unknown once its Lease expired (node lifecycle)")
        wait_for(lambda: serves(before["web-1"]) is None, timeout=e2e.WAIT,
                 what="web-1's container gone with its node")
        for p in others:
            assert serves(before[p]) == p + "\n", "%s on another node keeps serving" % p
        sbx.k(ns, "delete", "pod", "web-1", "--wait=false")
        p = sbx.pods(ns)["web-1"]
        assert p["metadata"]["uid"] == before["web-1"]["metadata"]["uid"] and \
            p["metadata"].get("deletionTimestamp"), "Terminating while its kubelet is away"
    finally:
        out = sbxctl.cli("node", "--dir", sbx.dir, "start", node).stdout
    assert "%s started" % node in out
    new = replaced(sbx, ns, "web-1", before["web-1"])
    assert new["spec"]["nodeName"] == node, "back on the node that holds its volume"
    assert node_ready(sbx, node) == "True"
    pods = sbx.wait_ready(ns, ["web-0", "web-1", "web-2"])
    assert sbx.read_in_pod(ns, "web-1") == "web-1\n", "same data"
    for p in others:
        assert pods[p]["metadata"]["uid"] == before[p]["metadata"]["uid"]


def test_ordinal_csi_killed_and_restarted_under_a_running_set(sbx, ns):
    sbx.apply(ns, service(), web(replicas=2, pmp="Parallel", grace=2))
    before = sbx.wait_ready(ns, ["web-0", "web-1"])
    sbx.write_hostnames(ns, ["web-0", "web-1"])
    node = before["web-0"]["spec"]["nodeName"]
    plugin = [n for n in sbx.state()["nodes"] if n["name"] == node][0]
    os.kill(plugin["pid"], signal.SIGKILL)
    new = wait_for(lambda: [n for n in sbx.state()["nodes"] if n["name"] == node and
                            n["pid"] != plugin["pid"]], timeout=e2e.WAIT,
                   what="ordinal-csi on %s restarted" % node)[0]
    assert new["restarts"] == plugin["restarts"] + 1
    assert serves(before["web-0"]) == "web-0\n", "the running pod keeps its mounted volume"
    # Unpublish, unstage, stage and publish go to the restarted plugin.
    sbx.k(ns, "delete", "pod", "web-0")
    replaced(sbx, ns, "web-0", before["web-0"])
    assert sbx.read_in_pod(ns, "web-0") == "web-0\n"
    # And the cluster still provisions and mounts new replicas.
    sbx.k(ns, "scale", "sts", "web", "--replicas=4")
    pods = sbx.wait_ready(ns, ["web-0", "web-1", "web-2", "web-3"])
    for p in ("web-2", "web-3"):
        claim = sbx.claims(ns)["www-" + p]
        assert claim["status"]["phase"] == "Bound"
        assert sbx.stores(ns)["www-" + p] == pods[p]["spec"]["nodeName"]
    sbx.write_hostnames(ns, ["web-2", "web-3"])


def _long(n):
    return "w" * n


BAD = [
    ("selector not matching the template's labels",
     web(labels={"app": "web"}, selector={"app": "other"}),
     'The StatefulSet "web" is invalid: spec.template.metadata.labels: Invalid value: '
     'map[string]string{"app":"web"}: `selector` does not match template `labels`'),
    ("claim template without access modes",
     web(claim={"metadata": {"name": "www"}, "spec": {
         "storageClassName": "ordinal", "resources": {"requests": {"storage": "1Gi"}}}}),
     'The StatefulSet "web" is invalid: spec.volumeClaimTemplates[0].spec.accessModes: '
     'Required value: at least 1 access mode is required'),
    ("claim template without a size",
     web(claim={"metadata": {"name": "www"}, "spec": {
         "accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal"}}),
     'spec.volumeClaimTemplates[0].spec.resources[storage]: Required value'),
    ("name too long",
     web(name=_long(254)),
     'The StatefulSet "%s" is invalid: metadata.name: Invalid value: "%s": must be no more '
     'than 253 characters' % (_long(254), _long(254))),
]


@pytest.mark.parametrize("what,obj,msg", BAD, ids=[b[0].replace(" ", "-") for b in BAD])
def test_invalid_statefulset_refused_nothing_created(sbx, ns, what, obj, msg):
    p = sbx.k(ns, "apply", "-f", "-", input=json.dumps(obj), check=False)
    assert p.returncode != 0, "%s accepted: %s" % (what, p.stdout)
    assert msg in p.stderr, "kubectl printed %r" % p.stderr
    # A fence: a later write is seen, and still nothing of the set exists.
    sbx.client.create("configmaps", {"metadata": {"name": "fence"}}, ns=ns)
    for res in ("statefulsets", "pods", "persistentvolumeclaims", "controllerrevisions"):
        assert sbx.client.list(res, ns=ns)["items"] == [], res
    assert not sbx.stores(ns), "no volume made"
