"""Fixtures for the kubelet tests: the fake API server with in-process kubelets
(apiserver.py --kubelet ...), one real ordinal-csi node plugin per node with --kubeconfig (its
built-in provisioner makes the claims' volumes), a CSIDriver (podInfoOnMount) and the `ordinal`
StorageClass (WaitForFirstConsumer). The tests play the scheduler: they create pods with
spec.nodeName and set volume.kubernetes.io/selected-node on the claims.

    def test_x(kcluster):
        c = kcluster.client                       # tests/k8s/fakeapi.py Client
        n = kcluster.nodes["node-1"]              # .dir .root .sock .kubelet_dir
        kcluster.claim("www-web-0", node="node-1")
        kcluster.pod("web-0", node="node-1", claim="www-web-0", command=[...])
        kcluster.wait_pod("web-0", lambda p: ...)
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "k8s"))
sys.path.insert(0, os.path.join(HERE, "..", "csi"))

from fakeapi import KUBECTL, ApiError, FakeApiServer, wait_for  # noqa: E402,F401

SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(os.path.join(HERE, "..", ".."))
BINARY = os.environ.get("ORDINAL_CSI") or os.path.join(SOURCE, "build", "debug", "ordinal-csi")
VALGRIND = os.environ.get("ORDINAL_VALGRIND") == "1"
SLOW = 10.0 if VALGRIND else 3.0 if os.environ.get("ORDINAL_SANITIZE") else 1.0
DRIVER = "ordinal.csi.dev"
TOPOLOGY_KEY = "topology.ordinal.csi.dev/node"
SELECTED = "volume.kubernetes.io/selected-node"
NODE_GRACE = 5.0 * SLOW     # --node-monitor-grace-period and the kubelets' Lease duration

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts and sandboxes need root")
needs_bwrap = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"),
                                 reason="bubblewrap not installed (tools/deps.sh)")


def mounts_under(path):
    path = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return out


class Node:
    def __init__(self, base, name):
        self.name = name
        self.dir = os.path.join(base, name)
        self.root = os.path.join(self.dir, "root")
        self.sock = os.path.join(self.dir, "csi.sock")
        self.log = os.path.join(self.dir, "csi.log")
        self.logs = os.path.join(base, "logs", name)
        self.proc = None
        os.makedirs(self.root, exist_ok=True)

    @property
    def kubelet_dir(self):
        return os.path.join(self.dir, "var", "lib", "kubelet")

    def spec(self):
        return "node=%s,csi=unix://%s,dir=%s,logs=%s,backoff=1,lease=%s" % (
            self.name, self.sock, self.dir, self.logs, NODE_GRACE)

    def start_csi(self, kubeconfig):
        argv = [BINARY, "--endpoint", "unix://" + self.sock, "--node-id", self.name,
                "--dir-root", self.root, "--kubeconfig", kubeconfig, "--log-level", "debug"]
        if VALGRIND:
            argv = ["valgrind", "--quiet", "--error-exitcode=97", "--leak-check=full",
                    "--log-file=" + os.path.join(self.dir, "valgrind.%p.log")] + argv
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        wait_for(lambda: "provisioner started" in self.log_text() or self.proc.poll() is not None,
                 timeout=20 * SLOW, what="ordinal-csi on %s" % self.name)
        assert self.proc.poll() is None, self.log_text()[-3000:]

    def stop_csi(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(30 * SLOW)
            assert rc == 0, "ordinal-csi on %s exited %d\n%s" % (self.name, rc,
                                                                 self.log_text()[-3000:])
        self.proc = None

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def data_dir(self, ns, claim):
        return os.path.join(self.root, ns, claim, "data")


class Cluster:
    def __init__(self, base, node_names=("node-1",)):
        self.base = base
        self.nodes = {n: Node(base, n) for n in node_names}
        import controllers
        self.api = FakeApiServer.start(os.path.join(base, "api"), extra_args=[
            "--controllers", ",".join(controllers.ALL + ("node-lifecycle",)),
            "--node-monitor-grace-period", str(NODE_GRACE)] + [
            a for n in self.nodes.values() for a in ("--kubelet", n.spec())])
        self.client = self.api.client
        for n in self.nodes.values():
            self.client.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": n.name, "labels": {"kubernetes.io/hostname": n.name,
                                           TOPOLOGY_KEY: n.name}}}, ns=None)
        self.client.create("csidrivers", {
            "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
            "metadata": {"name": DRIVER},
            "spec": {"attachRequired": False, "podInfoOnMount": True}}, ns=None)
        self.client.create("storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "ordinal"}, "provisioner": DRIVER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"}, ns=None)
        for n in self.nodes.values():
            n.start_csi(self.api.kubeconfig)

    # ---- objects ----

    def claim(self, name, node="node-1", size="16Mi", ns="default"):
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": name, "namespace": ns,
                            "annotations": {SELECTED: node} if node else {}},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                        "resources": {"requests": {"storage": size}}}}
        return self.client.create("persistentvolumeclaims", pvc, ns=ns)

    def service(self, name="nginx", ns="default"):
        return self.client.create("services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": "None", "selector": {"app": name},
                     "ports": [{"port": 80, "name": "web"}]}}, ns=ns)

    def pod(self, name, node="node-1", claim=None, mount="/data", command=None,
            image="busybox", ns="default", grace=2, restart=None, containers=None,
            subdomain=None, extra=None, **container):
        c = {"name": "main", "image": image}
        if command is not None:
            c["command"] = command
        if claim:
            c["volumeMounts"] = [{"name": "www", "mountPath": mount}]
        c.update(container)
        spec = {"nodeName": node, "containers": containers or [c],
                "terminationGracePeriodSeconds": grace}
        if claim:
            spec["volumes"] = [{"name": "www", "persistentVolumeClaim": {"claimName": claim}}]
        if restart:
            spec["restartPolicy"] = restart
        if subdomain:
            spec["hostname"] = name
            spec["subdomain"] = subdomain
        spec.update(extra or {})
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": ns, "labels": {"app": "nginx"}},
               "spec": spec}
        return self.client.create("pods", pod, ns=ns)

    def get_pod(self, name, ns="default"):
        try:
            return self.client.get("pods", name, ns=ns)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def wait_pod(self, name, cond, timeout=30, what=None, ns="default"):
        def check():
            p = self.get_pod(name, ns)
            return p if p is not None and cond(p) else None
        return wait_for(check, timeout=timeout * SLOW, interval=0.05,
                        what=what or "pod %s" % name)

    def wait_gone(self, name, timeout=30, ns="default"):
        wait_for(lambda: self.get_pod(name, ns) is None, timeout=timeout * SLOW,
                 what="pod %s deleted" % name)

    def events(self, name, ns="default"):
        return [e for e in self.client.list("events", ns=ns)["items"]
                if e["involvedObject"]["name"] == name]

    def close(self):
        errors = []
        try:
            rc = self.api.stop(timeout=30)
            if rc != 0:
                with open(os.path.join(self.api.dir, "stderr.log"), errors="replace") as f:
                    errors.append("apiserver exit %r\n%s\n%s" % (rc, f.read()[-4000:],
                                                                  self.api.log()[-2000:]))
        finally:
            for n in self.nodes.values():
                try:
                    n.stop_csi()
                except AssertionError as e:
                    errors.append(str(e))
            for mp in sorted(mounts_under(self.base), key=len, reverse=True):
                subprocess.run(["umount", "-l", mp], capture_output=True)
            shutil.rmtree(self.base, ignore_errors=True)
        assert not errors, errors


# ---- pod status helpers ----

def cstatus(pod, name="main"):
    for s in (pod.get("status") or {}).get("containerStatuses") or []:
        if s["name"] == name:
            return s
    return {}


def condition(pod, ctype):
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c
    return {}


def running_ready(pod):
    return (pod.get("status") or {}).get("phase") == "Running" and \
        condition(pod, "Ready").get("status") == "True"


@pytest.fixture
def kcluster():
    if not os.path.isfile(BINARY):
        pytest.fail("ordinal-csi not found at %s (build it or set ORDINAL_CSI)" % BINARY)
    base = tempfile.mkdtemp(prefix="ordinal-kubelet-", dir="/tmp")
    c = Cluster(base, ("node-1",))
    yield c
    # Captured output: pytest shows it only when the test failed.
    print("---- apiserver log ----\n" + c.api.log()[-6000:])
    for n in c.nodes.values():
        print("---- ordinal-csi %s ----\n%s" % (n.name, n.log_text()[-3000:]))
    c.close()
