"""The sandbox kubelet (deploy/sandbox/kubelet.py) against the fake API server and a real
ordinal-csi node plugin: kubelet's CSI sequence and paths, containers as real sandboxed
processes, pod status, graceful deletion, probes, restarts, the nginx stand-in and /etc/hosts.

The tests play the scheduler: pods are created with spec.nodeName, claims with
volume.kubernetes.io/selected-node (the provisioner inside ordinal-csi then makes the volume).
"""

import hashlib
import http.client
import os

import pytest

from kubelet_fixtures import (SLOW, condition, cstatus, kcluster, mounts_under,  # noqa: F401
                              needs_bwrap, needs_root, running_ready, wait_for)

pytestmark = [needs_root, needs_bwrap]


def staging(node, handle):
    return os.path.join(node.kubelet_dir, "plugins", "kubernetes.io", "csi", "ordinal.csi.dev",
                        hashlib.sha256(handle.encode()).hexdigest(), "globalmount")


def target(node, uid, pv):
    return os.path.join(node.kubelet_dir, "pods", uid, "volumes", "kubernetes.io~csi", pv,
                        "mount")


def is_mounted(path):
    return os.path.realpath(path) in mounts_under(path)


def read(path):
    with open(path) as f:
        return f.read()


def bound_pv(cl, claim):
    c = wait_for(lambda: (lambda o: o if o.get("status", {}).get("phase") == "Bound" else None)(
        cl.client.get("persistentvolumeclaims", claim)), timeout=20 * SLOW,
        what="claim %s Bound" % claim)
    return cl.client.get("persistentvolumes", c["spec"]["volumeName"], ns=None)


WRITER = ["/bin/sh", "-c", 'hostname > /data/hostname; echo "$POD $NODE $IP $NS" > /data/env; '
          'exec sleep 1000']
ENV = [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
       {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
       {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
       {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]


def test_pod_volume_stage_publish_run_and_teardown(kcluster):
    cl = kcluster
    node = cl.nodes["node-1"]
    cl.claim("www-web-0")
    created = cl.pod("web-0", claim="www-web-0", command=WRITER, env=ENV)
    uid = created["metadata"]["uid"]
    pod = cl.wait_pod("web-0", running_ready, what="web-0 Running and Ready")
    pv = bound_pv(cl, "www-web-0")
    handle = pv["spec"]["csi"]["volumeHandle"]

    # kubelet's paths, both mounted
    st, tg = staging(node, handle), target(node, uid, pv["metadata"]["name"])
    assert is_mounted(st), mounts_under(node.dir)
    assert is_mounted(tg), mounts_under(node.dir)
    assert os.path.isfile(os.path.join(os.path.dirname(tg), "vol_data.json"))

    # the container ran in its sandbox (hostname = pod name) and wrote into the volume,
    # which is the backing store's directory on the node
    data = node.data_dir("default", "www-web-0")
    wait_for(lambda: os.path.exists(os.path.join(data, "env")), timeout=10 * SLOW,
             what="the container's write")
    assert read(os.path.join(data, "hostname")) == "web-0\n"
    ip = pod["status"]["podIP"]
    assert read(os.path.join(data, "env")) == "web-0 node-1 %s default\n" % ip

    # status as kubelet writes it
    s = pod["status"]
    assert ip.startswith("127.") and ip != "127.0.0.1"
    assert s["hostIP"] == "127.0.0.1" and s["startTime"]
    cs = cstatus(pod)
    assert "running" in cs["state"] and cs["ready"] is True and cs["started"] is True
    assert cs["restartCount"] == 0 and cs["lastState"] == {}
    for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready",
              "PodScheduled"):
        assert condition(pod, t)["status"] == "True", t
    table = cl.api.kubectl("get", "pod", "web-0", "--no-headers").stdout.split()
    assert table[:4] == ["web-0", "1/1", "Running", "0"], table
    reasons = [e["reason"] for e in cl.events("web-0")]
    assert {"Pulled", "Created", "Started"} <= set(reasons), reasons

    # deletion: graceful (the pod stays, Terminating, until the kubelet is done), and by the
    # time the object is gone the volume is unpublished and unstaged; data and PV stay
    w = cl.client.watch("pods", name="web-0", resourceVersion=pod["metadata"]["resourceVersion"])
    cl.client.delete("pods", "web-0")
    seen = []
    while True:
        ev = w.next_event(timeout=30 * SLOW)
        assert ev is not None, "watch ended"
        seen.append(ev["type"])
        if ev["type"] == "DELETED":
            # the kubelet removes the object last: nothing is mounted any more
            assert not is_mounted(tg) and not is_mounted(st), mounts_under(node.dir)
            break
        assert ev["object"]["metadata"].get("deletionTimestamp")
        assert ev["object"]["metadata"]["deletionGracePeriodSeconds"] == 2
    w.close()
    assert seen[0] == "MODIFIED", seen
    assert not os.path.exists(os.path.join(node.kubelet_dir, "pods", uid))
    assert not os.path.exists(os.path.dirname(st))
    assert read(os.path.join(data, "hostname")) == "web-0\n"
    pv2 = cl.client.get("persistentvolumes", pv["metadata"]["name"], ns=None)
    assert pv2["status"]["phase"] == "Bound"
    assert "Killing" in [e["reason"] for e in cl.events("web-0")]
