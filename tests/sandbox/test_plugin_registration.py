"""Kubelet plugin registration as Kubernetes does it, between node-driver-registrar's stand-in
(deploy/sandbox/podrun.py) and the sandbox kubelet (deploy/sandbox/kubelet.py, started without
a CSI endpoint): the registrar serves pluginregistration.Registration on
/var/lib/kubelet/plugins_registry/<driver>-reg.sock; the kubelet's plugin watcher dials it
(GetInfo), calls NodeGetInfo on the endpoint it names, writes the CSINode entry, the node-id
annotation and the topology label, answers NotifyRegistrationStatus, and makes its CSI calls on
that endpoint. A refused registration (endpoint without a socket, unknown plugin type, no
supported version) leaves the node without the driver; the registrar exits 1 on it."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest

from kubelet_fixtures import (BINARY, DRIVER, SELECTED, SLOW, TOPOLOGY_KEY, FakeApiServer,
                              mounts_under, needs_bwrap, needs_root, running_ready, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "deploy", "sandbox"))
import pluginreg  # noqa: E402
import podrun  # noqa: E402

pytestmark = [needs_root]
ENDPOINT = "/var/lib/kubelet/plugins/ordinal.csi.dev/csi.sock"


class Node:
    """One node: the API server with its kubelet (no csi=), ordinal-csi on the DaemonSet's
    socket path in the node's /var/lib/kubelet, and registrars started by the test."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="ordinal-reg-", dir="/tmp")
        self.kroot = os.path.join(self.base, "var", "lib", "kubelet")
        self.registry = os.path.join(self.kroot, "plugins_registry")
        self.sock = self.kroot + ENDPOINT[len("/var/lib/kubelet"):]
        self.api = FakeApiServer.start(os.path.join(self.base, "api"), extra_args=[
            "--kubelet", "node=node-1,dir=%s,logs=%s,backoff=1" % (
                self.base, os.path.join(self.base, "logs"))])
        self.client = self.api.client
        self.client.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}}}, ns=None)
        os.makedirs(os.path.dirname(self.sock))
        root = os.path.join(self.base, "root")
        os.makedirs(root)
        self.csi_log = os.path.join(self.base, "csi.log")
        with open(self.csi_log, "ab") as log:
            self.csi = subprocess.Popen([BINARY, "--endpoint", "unix://" + self.sock,
                                         "--node-id", "node-1", "--dir-root", root,
                                         "--kubeconfig", self.api.kubeconfig],
                                        stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.sock) or self.csi.poll() is not None,
                 timeout=20 * SLOW, what="ordinal-csi's socket")
        assert self.csi.poll() is None
        self.effects = []

    def registrar(self, *args):
        """node-driver-registrar's stand-in with the manifests' mounts: /csi is the plugin's
        folder, /registration the node's plugins_registry."""
        done = threading.Event()
        e = podrun.Effect("node-driver-registrar", os.path.join(self.base, "registrar-%d.log"
                                                                % len(self.effects)),
                          done.set, podrun.registrar(
                              ["--csi-address=/csi/csi.sock", "--v=2"] + list(args),
                              lambda p: os.path.dirname(self.sock) + p[len("/csi"):],
                              lambda p: self.registry + p[len("/registration"):], "127.0.0.1"))
        e.done = done
        e.start()
        self.effects.append(e)
        return e

    def drivers(self):
        r = self.client.request("GET", "/apis/storage.k8s.io/v1/csinodes/node-1")
        return {d["name"]: d for d in r.body["spec"]["drivers"]} if r.status == 200 else {}

    def node_ids(self):
        n = self.client.get("nodes", "node-1", ns=None)
        return json.loads((n["metadata"].get("annotations") or {}).get(
            "csi.volume.kubernetes.io/nodeid") or "{}")

    def kubelet_log(self):
        return self.api.log()

    def close(self):
        for e in self.effects:
            e.stop(1)
        rc = self.api.stop()
        self.csi.terminate()
        self.csi.wait(30)
        for mp in sorted(mounts_under(self.base), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
        assert rc == 0


@pytest.fixture
def node():
    if not os.path.isfile(BINARY):
        pytest.fail("ordinal-csi not found at %s (build it or set ORDINAL_CSI)" % BINARY)
    n = Node()
    yield n
    print("---- apiserver log ----\n" + n.api.log()[-4000:])
    for e in n.effects:
        print("---- %s ----\n%s" % (e.spec.log_path, e.log_tail()))
    n.close()


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


@needs_bwrap
def test_registrar_registers_and_kubelet_uses_the_endpoint(node):
    assert node.drivers() == {}
    reg = node.registrar("--kubelet-registration-path=" + ENDPOINT)
    sock = os.path.join(node.registry, DRIVER + "-reg.sock")
    wait_for(lambda: DRIVER in node.drivers(), timeout=20 * SLOW, what="the CSINode entry")
    d = node.drivers()[DRIVER]
    assert d["nodeID"] == "node-1" and d["topologyKeys"] == [TOPOLOGY_KEY]
    assert node.node_ids() == {DRIVER: "node-1"}
    assert node.client.get("nodes", "node-1", ns=None)["metadata"]["labels"][
        TOPOLOGY_KEY] == "node-1"
    wait_for(lambda: "PluginRegistered:true" in read(reg.spec.log_path), timeout=10 * SLOW,
             what="the registrar told of the registration")
    # what the kubelet's plugin watcher read on the socket
    c = pluginreg._Client(sock)
    try:
        info = c.get_info(c.pb.InfoRequest(), timeout=5)
    finally:
        c.close()
    assert (info.type, info.name, info.endpoint, list(info.supported_versions)) == (
        "CSIPlugin", DRIVER, ENDPOINT, ["1.0.0"])

    # the kubelet's CSI calls go to the endpoint it learned: a pod with a claim runs
    node.client.create("csidrivers", {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                                      "metadata": {"name": DRIVER},
                                      "spec": {"attachRequired": False}}, ns=None)
    node.client.create("storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "ordinal"}, "provisioner": DRIVER, "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"}, ns=None)
    node.client.create("persistentvolumeclaims", {
        "metadata": {"name": "data", "annotations": {SELECTED: "node-1"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                 "resources": {"requests": {"storage": "16Mi"}}}})
    node.client.create("pods", {"metadata": {"name": "p"}, "spec": {
        "nodeName": "node-1", "containers": [{
            "name": "main", "image": "busybox",
            "command": ["/bin/sh", "-c", "echo hi > /data/x; exec sleep 1000"],
            "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}})
    wait_for(lambda: running_ready(node.client.get("pods", "p")), timeout=40 * SLOW,
             what="the pod Running and Ready")
    node.client.delete("pods", "p")
    wait_for(lambda: not node.client.exists("pods", "p"), timeout=40 * SLOW,
             what="the pod deleted (its volume unpublished)")

    # the registrar goes (its socket removed): the kubelet uninstalls the driver
    reg.stop(1)
    assert not os.path.exists(sock)
    wait_for(lambda: DRIVER not in node.drivers(), timeout=20 * SLOW,
             what="the CSINode entry removed")
    assert node.node_ids() == {}


def test_endpoint_without_a_socket_leaves_the_node_without_the_driver(node):
    wrong = "/var/lib/kubelet/plugins/ordinal.csi.dev/missing.sock"
    reg = node.registrar("--kubelet-registration-path=" + wrong)
    assert reg.done.wait(30 * SLOW), "the registrar did not exit"
    assert reg.exit_code == 1
    text = read(reg.spec.log_path)
    assert "Registration process failed with error" in text
    assert "failed to get node info" in text, text
    assert DRIVER not in node.drivers() and node.node_ids() == {}


@pytest.mark.parametrize("info,error", [
    ({"type": "DevicePlugin", "name": DRIVER, "endpoint": ENDPOINT,
      "supported_versions": ["1.0.0"]}, "no handler registered for plugin type: DevicePlugin"),
    ({"type": "CSIPlugin", "name": DRIVER, "endpoint": ENDPOINT,
      "supported_versions": ["0.3.0"]}, "none of the versions specified ['0.3.0'] are supported"),
])
def test_refused_registration_is_reported_and_changes_nothing(node, info, error):
    got = []
    done = threading.Event()
    srv = pluginreg.serve(os.path.join(node.registry, DRIVER + "-reg.sock"), info,
                          lambda ok, err: (got.append((ok, err)), done.set()))
    try:
        assert done.wait(20 * SLOW), "no NotifyRegistrationStatus"
        ok, err = got[0]
        assert not ok and error in err, err
        assert node.drivers() == {} and node.node_ids() == {}
    finally:
        srv.stop()


def test_wrong_driver_name_registers_that_name_only(node):
    """A registrar whose GetInfo names another driver: kubelet installs that name; the node has
    no ordinal.csi.dev (claims of it cannot be mounted there)."""
    done = threading.Event()
    srv = pluginreg.serve(os.path.join(node.registry, "other.csi.dev-reg.sock"), {
        "type": "CSIPlugin", "name": "other.csi.dev", "endpoint": ENDPOINT,
        "supported_versions": ["1.0.0"]}, lambda ok, err: done.set())
    try:
        assert done.wait(20 * SLOW)
        wait_for(lambda: "other.csi.dev" in node.drivers(), timeout=10 * SLOW,
                 what="other.csi.dev in CSINode")
        assert DRIVER not in node.drivers()
        assert node.node_ids() == {"other.csi.dev": "node-1"}
    finally:
        srv.stop()
