"""deploy/sandbox/ordinal-sandbox: up / status / down, the cluster objects it installs, one
real ordinal-csi node plugin per node, and a StatefulSet provisioned by Ordinal and driven with
real kubectl. Needs ORDINAL_CSI (the built daemon)."""

import base64
import json
import os
import signal
import subprocess

import pytest

from fakeapi import KUBECTL, Client, wait_for
from sbxlib import Cluster

import sbxctl  # deploy/sandbox/sbxctl.py, on the path from conftest.py

CSI = os.environ.get("ORDINAL_CSI")
needs_csi = pytest.mark.skipif(not CSI or not os.path.exists(CSI),
                               reason="ORDINAL_CSI (the built ordinal-csi) not given")
SOURCE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
needs_kubectl = pytest.mark.skipif(__import__("shutil").which(KUBECTL) is None,
                                   reason="kubectl not installed")


def sandbox(*args, check=True, timeout=90):
    try:
        return sbxctl.cli(*args, check=check, timeout=timeout)
    except sbxctl.SandboxError as e:
        raise AssertionError(str(e)) from None


class Sbx(sbxctl.Sandbox):
    """A running sandbox as the tests see it: a client from DIR alone, kubectl."""

    def __init__(self, d):
        super().__init__(d)
        self.client = Client(self.server, self.token, self.ca)
        self.cluster = Cluster(self)

    def kubectl(self, *args, check=True, input=None, timeout=30):
        try:
            return super().kubectl(*args, check=check, input=input, timeout=timeout)
        except sbxctl.SandboxError as e:
            raise AssertionError(str(e)) from None


@pytest.fixture
def sbx_factory(tmp_path):
    dirs = []

    def up(nodes=3, name="sbx", node_grace=None):
        d = os.path.join(str(tmp_path), name)
        sandbox("up", "--dir", d, "--nodes", str(nodes), "--csi", CSI,
                *(("--node-monitor-grace-period", str(node_grace)) if node_grace else ()))
        dirs.append(d)
        return Sbx(d)
    yield up
    reports = []
    for d in dirs:
        sbxctl.down(d)
        reports += sbxctl.log_problems(d)
    assert not reports, "sanitizer reports or tracebacks in the sandbox logs: %s" % reports


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def mounts_under(d):
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(d + "/")]


@needs_csi
def test_up_status_second_up_and_down(sbx_factory):
    s = sbx_factory(nodes=2)
    c = s.client
    nodes = {n["metadata"]["name"]: n for n in c.list("nodes", ns=None)["items"]}
    assert sorted(nodes) == ["node-1", "node-2"]
    for name, n in nodes.items():
        lab = n["metadata"]["labels"]
        assert lab["kubernetes.io/hostname"] == name
        assert lab["topology.ordinal.csi.dev/node"] == name, "from NodeGetInfo"
        assert json.loads(n["metadata"]["annotations"]["csi.volume.kubernetes.io/nodeid"]) == {
            "ordinal.csi.dev": name}
        assert [x["status"] for x in n["status"]["conditions"] if x["type"] == "Ready"] == [
            "True"]
        csinode = c.get("csinodes", name, ns=None)
        assert csinode["spec"]["drivers"] == [{"name": "ordinal.csi.dev", "nodeID": name,
                                               "topologyKeys": [
                                                   "topology.ordinal.csi.dev/node"]}]
    drv = c.get("csidrivers", "ordinal.csi.dev", ns=None)["spec"]
    assert drv["attachRequired"] is False and drv["podInfoOnMount"] is True
    scs = {x["metadata"]["name"]: x for x in c.list("storageclasses", ns=None)["items"]}
    assert sorted(scs) == ["ordinal", "ordinal-retain"]
    assert scs["ordinal"]["metadata"]["annotations"][
        "storageclass.kubernetes.io/is-default-class"] == "true"
    assert scs["ordinal"]["reclaimPolicy"] == "Delete"
    assert scs["ordinal-retain"]["reclaimPolicy"] == "Retain"
    assert {x["volumeBindingMode"] for x in scs.values()} == {"WaitForFirstConsumer"}
    st = s.state()
    pids = [n["pid"] for n in st["nodes"]]
    assert len(set(pids)) == 2 and all(alive(p) for p in pids)
    for n in st["nodes"]:
        with open("/proc/%d/cmdline" % n["pid"], "rb") as f:
            argv = f.read().decode().split("\0")[:-1]  # NUL-terminated
        # the node plugins are the manifests' own: the DaemonSet's container args, with the
        # downward API expanded and the container paths mapped into the node's folder
        ds = c.get("daemonsets", "ordinal-node", ns="ordinal-system")
        cont = ds["spec"]["template"]["spec"]["containers"][0]
        assert cont["name"] == "ordinal-csi"
        ip = c.get("pods", n["pod"], ns="ordinal-system")["status"]["podIP"]
        mapped = {"--endpoint=unix:///csi/csi.sock": "--endpoint=unix://" + n["socket"],
                  "--dir-root=/var/lib/ordinal": "--dir-root=" + n["root"],
                  "--node-id=$(NODE_NAME)": "--node-id=" + n["name"],
                  "--http-endpoint=0.0.0.0:9810": "--http-endpoint=%s:9810" % ip}
        assert argv[1:] == [mapped.get(a, a) for a in cont["args"]]
        # in-cluster config: the ServiceAccount token volume where kube_config.c reads it, in
        # the plugin's own mount namespace, and KUBERNETES_SERVICE_HOST/PORT
        with open("/proc/%d/environ" % n["pid"], "rb") as f:
            env = dict(e.split("=", 1) for e in f.read().decode().split("\0") if "=" in e)
        assert env["NODE_NAME"] == n["name"] and env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
        assert env["KUBERNETES_SERVICE_PORT"] == s.ready["server"].rsplit(":", 1)[1]
        sa = "/proc/%d/root/run/secrets/kubernetes.io/serviceaccount" % n["pid"]
        with open(sa + "/namespace") as f:
            assert f.read() == "ordinal-system"
        with open(sa + "/token") as f:
            tok = f.read()
        sec = c.get("secrets", "ordinal-node-token", ns="ordinal-system")
        assert base64.b64decode(sec["data"]["token"]).decode() == tok != s.client.token
        assert not os.path.exists("/run/secrets/kubernetes.io/serviceaccount/token")
        # the socket is where the hostPath maps it (nodes/N/kubelet/plugins/ordinal.csi.dev)
        # unless that path is too long for a unix socket (then nodes/N/csi.sock or /tmp)
        assert argv[0] == CSI and os.path.basename(n["socket"]) in ("csi.sock", n["name"] +
                                                                    ".sock")
    assert len({n["root"] for n in st["nodes"]}) == 2
    # the controller Deployment's replicas, with their ServiceAccount: one takes the Lease
    dep = c.get("deployments", "ordinal-controller", ns="ordinal-system")
    cargs = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    ctrls = st["controllers"]
    # the Deployment's pods, placed by its controller and run by the kubelets
    pods = {p["metadata"]["name"]: p for p in c.list("pods", ns="ordinal-system")["items"]}
    assert sorted(x["name"] for x in ctrls) == sorted(
        n for n in pods if n.startswith("ordinal-controller-"))
    assert len(ctrls) == 2
    addrs = set()
    for x in ctrls:
        assert alive(x["pid"])
        ip = pods[x["name"]]["status"]["podIP"]
        addrs.add(ip)
        mapped = {"--endpoint=unix:///csi/csi.sock": "--endpoint=unix://" + x["socket"],
                  "--node-id=$(POD_NAME)": "--node-id=" + x["name"],
                  "--leader-election-namespace=$(POD_NAMESPACE)":
                  "--leader-election-namespace=ordinal-system",
                  "--http-endpoint=0.0.0.0:9810": "--http-endpoint=%s:9810" % ip}
        assert x["argv"] == [CSI] + [mapped.get(a, a) for a in cargs]
    assert len(addrs) == 2 and all(a.startswith("127.") for a in addrs)
    # kubectl shows them truthfully: every container Running and Ready (the probes: the
    # plugin's /readyz, the registrar's and livenessprobe's /healthz stand-ins)
    out = s.kubectl("get", "pods", "-n", "ordinal-system", "-o", "wide").stdout.split("\n")
    rows = [ln.split() for ln in out[1:] if ln.strip()]
    assert len(rows) == 4, out
    for r in rows:
        assert r[2] == "Running" and r[1] in ("1/1", "3/3"), out
    nodes_of = sorted(r[6] for r in rows if r[0].startswith("ordinal-node-"))
    assert nodes_of == ["node-1", "node-2"], "one node plugin pod per node"
    for n in st["nodes"]:
        pod = pods[n["pod"]]
        assert pod["spec"]["nodeName"] == n["name"]
        cst = pod["status"]["containerStatuses"][0]
        assert cst["name"] == "ordinal-csi" and cst["containerID"].endswith(
            "://%d" % n["pid"])
    ds = wait_for(lambda: (lambda d: d["status"].get("numberReady") == 2 and d)(
        c.get("daemonsets", "ordinal-node", ns="ordinal-system")), 20, what="DaemonSet ready")
    assert ds["status"]["desiredNumberScheduled"] == 2

    def holder():
        r = c.request("GET", "/apis/coordination.k8s.io/v1/namespaces/ordinal-system/leases/"
                      "ordinal-csi-dev")
        return r.status == 200 and r.body["spec"].get("holderIdentity")
    assert wait_for(holder, 20, what="a controller holds the Lease") in [
        x["name"] for x in ctrls]
    pids += [x["pid"] for x in ctrls]
    for f in ("apiserver.log", "sandbox.log", "ordinal-csi-node-1.log",
              "ordinal-csi-node-2.log"):
        assert os.path.getsize(os.path.join(s.dir, "logs", f)) > 0, f
    again = sandbox("up", "--dir", s.dir, "--nodes", "5", "--csi", CSI)
    assert "already running" in again.stdout and s.state()["pid"] == st["pid"]
    assert len(c.list("nodes", ns=None)["items"]) == 2, "the second up changed nothing"
    out = sandbox("status", "--dir", s.dir).stdout
    assert "ready" in out and out.count("ordinal-csi pid") == 2
    assert out.count(" controller pid ") == 2
    # A mount under DIR (as a kubelet's would be) is unmounted by down; data is kept.
    a, b = os.path.join(s.dir, "mnt-src"), os.path.join(s.dir, "mnt-dst")
    os.makedirs(a)
    os.makedirs(b)
    # each node's kubelet folder is a shared mount (the plugin's Bidirectional volume)
    kubelets = sorted(os.path.join(s.dir, "nodes", n["name"], "kubelet") for n in st["nodes"])
    assert sorted(mounts_under(s.dir)) == kubelets
    subprocess.run(["mount", "--bind", a, b], check=True)
    assert sorted(mounts_under(s.dir)) == sorted(kubelets + [b])
    out = sandbox("down", "--dir", s.dir).stdout
    assert "stopped" in out
    assert not alive(st["pid"]) and not any(alive(p) for p in pids)
    assert mounts_under(s.dir) == []
    assert not os.path.exists(os.path.join(s.dir, "ready"))
    assert os.path.exists(s.kubeconfig) and all(os.path.isdir(n["root"]) for n in st["nodes"])
    assert sandbox("status", "--dir", s.dir, check=False).returncode == 3


@needs_csi
def test_node_plugin_killed_is_restarted(sbx_factory):
    s = sbx_factory(nodes=1)
    st = s.state()
    old = st["nodes"][0]["pid"]
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: s.state()["nodes"][0]["pid"] != old and s.state()["nodes"][0],
                   timeout=15, what="ordinal-csi restarted")
    assert new["restarts"] == 1 and alive(new["pid"])
    wait_for(lambda: os.path.exists(new["socket"]), what="socket back")
    # the kubelet restarted it (restartPolicy Always) and says so in the pod's status
    pod = s.client.get("pods", new["pod"], ns="ordinal-system")
    cst = [x for x in pod["status"]["containerStatuses"] if x["name"] == "ordinal-csi"][0]
    assert cst["restartCount"] == 1 and cst["lastState"]["terminated"]["exitCode"] == 137
    # a stopped node takes its plugin pod's processes with it; back, they run again
    sandbox("node", "--dir", s.dir, "stop", "node-1")
    wait_for(lambda: not alive(new["pid"]), timeout=15, what="plugin stopped with its node")
    sandbox("node", "--dir", s.dir, "start", "node-1")
    again = wait_for(lambda: s.state()["nodes"][0]["pid"] != new["pid"] and alive(
        s.state()["nodes"][0]["pid"]) and s.state()["nodes"][0], timeout=30,
        what="plugin back with its node")
    wait_for(lambda: os.path.exists(again["socket"]), what="socket back after node start")


@needs_csi
@needs_kubectl
def test_up_fails_on_a_sidecar_flag_typo(tmp_path):
    """The sidecars are stood in for with their flags checked as the Go binaries check them."""
    def typo(c, s):
        reg = s["containers"][1]
        assert reg["name"] == "node-driver-registrar"
        reg["args"] = [a.replace("--kubelet-registration-path", "--kubelet-registation-path")
                       for a in reg["args"]]
    bad = _manifests_copy(tmp_path, typo)
    d = os.path.join(str(tmp_path), "sidecar")
    p = sandbox("up", "--dir", d, "--nodes", "1", "--csi", CSI, "--manifests", bad,
                check=False)
    assert p.returncode == 1 and "start failed" in p.stderr, p.stderr
    assert "container node-driver-registrar of pod ordinal-system/ordinal-node-" in p.stderr
    assert "flag provided but not defined: -kubelet-registation-path" in p.stderr
    assert not os.path.exists(os.path.join(d, "ready"))



def test_up_fails_cleanly_when_the_plugin_cannot_start(tmp_path):
    d = os.path.join(str(tmp_path), "bad")
    p = sandbox("up", "--dir", d, "--nodes", "1", "--csi", "/bin/false", check=False)
    assert p.returncode == 1 and "start failed" in p.stderr
    assert not os.path.exists(os.path.join(d, "ready"))
    assert not os.path.exists(os.path.join(d, "state.json"))
    with open(os.path.join(d, "logs", "sandbox.log")) as f:
        assert "ordinal-csi for node-1 exited" in f.read()
    p = sandbox("up", "--dir", d, "--csi", "/nonexistent/ordinal-csi", check=False)
    assert p.returncode != 0 and "not an executable file" in p.stderr


def _manifests_copy(tmp_path, edit):
    """The kind overlay rendered (kubectl kustomize), the node DaemonSet's ordinal-csi
    container changed by edit(container, pod_spec), written as one YAML file."""
    import yaml
    r = subprocess.run([KUBECTL, "kustomize", os.path.join(
        SOURCE, "deploy", "kubernetes", "overlays", "kind")], capture_output=True, text=True,
        timeout=60, check=True)
    objs = list(yaml.safe_load_all(r.stdout))
    ds = [o for o in objs if o["kind"] == "DaemonSet"][0]
    spec = ds["spec"]["template"]["spec"]
    edit(spec["containers"][0], spec)
    path = os.path.join(str(tmp_path), "ordinal.yaml")
    with open(path, "w") as f:
        yaml.safe_dump_all(objs, f)
    return path


@needs_csi
@needs_kubectl
def test_up_fails_on_a_flag_typo_or_a_missing_mount_in_the_manifests(tmp_path):
    """The node plugins run what the manifests say: a flag ordinal-csi does not know makes it
    exit, and up reports it; a path argument on no volumeMount is refused."""
    typo = _manifests_copy(tmp_path, lambda c, s: c["args"].__setitem__(
        c["args"].index("--log-format=json"), "--log-fromat=json"))
    d = os.path.join(str(tmp_path), "typo")
    p = sandbox("up", "--dir", d, "--nodes", "1", "--csi", CSI, "--manifests", typo,
                check=False)
    assert p.returncode == 1 and "start failed" in p.stderr, p.stderr
    assert "ordinal-csi for node-1 exited" in p.stderr
    # the first run's log of the pod's ordinal-csi container (kubelet's log layout)
    import glob
    logs = glob.glob(os.path.join(d, "logs", "ordinal-system_ordinal-node-*", "ordinal-csi",
                                  "0.log"))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        assert "log-fromat" in f.read()
    assert not os.path.exists(os.path.join(d, "ready"))

    def drop_data_root(c, s):
        c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "data-root"]
    nomount = _manifests_copy(tmp_path, drop_data_root)
    d = os.path.join(str(tmp_path), "nomount")
    p = sandbox("up", "--dir", d, "--nodes", "1", "--csi", CSI, "--manifests", nomount,
                check=False)
    assert p.returncode == 1, p.stderr
    assert "--dir-root path /var/lib/ordinal is on no volumeMount of the pod" in p.stderr
    assert not os.path.exists(os.path.join(d, "ready"))


WEB = """apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  clusterIP: None
  selector:
    app: nginx
  ports:
  - port: 80
    name: web
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: nginx
  serviceName: nginx
  replicas: 2
  template:
    metadata:
      labels:
        app: nginx
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.8
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ "ReadWriteOnce" ]
      storageClassName: ordinal
      resources:
        requests:
          storage: 1Gi
"""


def _running(s, name, kubelets):
    """Wait until name is bound to a node (and its claim Bound, by Ordinal); then play its
    kubelet unless real kubelets run it."""
    c = s.client
    pod = wait_for(lambda: (c.get("pods", name).get("spec") or {}).get("nodeName") and
                   c.get("pods", name), timeout=30, what="%s scheduled" % name)
    if not kubelets:
        s.cluster.run_pod(name)
    wait_for(lambda: [x for x in (c.get("pods", name).get("status") or {}).get(
        "conditions") or [] if x["type"] == "Ready" and x["status"] == "True"], timeout=60,
        what="%s Ready" % name)
    return pod


@needs_csi
@pytest.mark.skipif(not __import__("shutil").which(KUBECTL), reason="kubectl not installed")
def test_statefulset_provisioned_by_ordinal_with_kubectl(sbx_factory):
    s = sbx_factory(nodes=3)
    kubelets = any(n.get("kubelet") for n in s.state()["nodes"])
    s.kubectl("apply", "-f", "-", input=WEB)
    p0 = _running(s, "web-0", kubelets)
    claim = s.client.get("persistentvolumeclaims", "www-web-0")
    assert claim["status"]["phase"] == "Bound"
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == \
        p0["spec"]["nodeName"]
    pv = s.client.get("persistentvolumes", claim["spec"]["volumeName"], ns=None)
    assert pv["spec"]["csi"]["driver"] == "ordinal.csi.dev"
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"] == [p0["spec"]["nodeName"]]
    p1 = _running(s, "web-1", kubelets)
    assert p1["spec"]["nodeName"] != p0["spec"]["nodeName"], "spread over the nodes"
    out = s.kubectl("get", "sts", "web").stdout.split("\n")
    assert out[0].split() == ["NAME", "READY", "AGE"] and out[1].split()[:2] == ["web", "2/2"]
    out = s.kubectl("get", "pvc").stdout
    for i in range(2):
        row = [ln.split() for ln in out.split("\n") if ln.startswith("www-web-%d" % i)][0]
        assert row[1] == "Bound" and row[2].startswith("pvc-") and row[3:6] == [
            "1Gi", "RWO", "ordinal"]
    s.kubectl("rollout", "status", "sts/web", "--timeout=30s")
    desc = s.kubectl("describe", "sts", "web").stdout
    assert "Replicas:           2 desired | 2 total" in desc
    assert "Pods Status:        2 Running / 0 Waiting / 0 Succeeded / 0 Failed" in desc
    assert "create Claim www-web-1 Pod web-1 in StatefulSet web success" in desc
    uid1 = s.client.get("persistentvolumeclaims", "www-web-1")["metadata"]["uid"]
    s.kubectl("scale", "sts", "web", "--replicas=1")
    wait_for(lambda: not s.client.exists("pods", "web-1"), timeout=30, what="web-1 gone")
    assert s.client.get("persistentvolumeclaims", "www-web-1")["status"]["phase"] == "Bound", \
        "whenScaled Retain keeps the claim"
    s.kubectl("scale", "sts", "web", "--replicas=2")
    p1b = _running(s, "web-1", kubelets)
    assert p1b["spec"]["nodeName"] == p1["spec"]["nodeName"], "back where its volume is"
    assert s.client.get("persistentvolumeclaims", "www-web-1")["metadata"]["uid"] == uid1


@needs_csi
def test_node_stop_and_start(sbx_factory):
    s = sbx_factory(nodes=1, node_grace=5)
    c = s.client
    assert "node-1 stopped" in sandbox("node", "--dir", s.dir, "stop", "node-1").stdout

    def ready():
        return [x for x in c.get("nodes", "node-1", ns=None)["status"]["conditions"]
                if x["type"] == "Ready"][0]
    wait_for(lambda: ready()["status"] == "Unknown", timeout=30,
             what="node-1 Unknown once its Lease is older than the grace period")
    assert ready()["reason"] == "NodeStatusUnknown"
    wait_for(lambda: {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"} in (
        c.get("nodes", "node-1", ns=None)["spec"].get("taints") or []), timeout=10,
        what="node-1 tainted unreachable")
    assert s.state()["nodes"][0]["stopped"] is True
    c.create("pods", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "busybox", "command": ["sleep", "1000"]}]}})
    wait_for(lambda: [e for e in s.cluster.events("FailedScheduling")
                      if "untolerated taint {node.kubernetes.io/unreachable: }" in e["message"]],
             what="not scheduled on a stopped node")
    assert "node-1 started" in sandbox("node", "--dir", s.dir, "start", "node-1").stdout
    wait_for(lambda: c.get("pods", "p")["spec"].get("nodeName") == "node-1",
             what="scheduled once the node is back")
    bad = sandbox("node", "--dir", s.dir, "stop", "node-9", check=False)
    assert bad.returncode == 1 and "no node node-9" in bad.stderr
