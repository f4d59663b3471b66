"""Real kubectl (v1.32) against the fake API server, through the kubeconfig it writes:
discovery and short names, create -f, get (JSON, tables, wide), describe, patch, apply
(client-side, with and without --validate), scale, wait, delete, and error messages."""

import json
import os
import subprocess
import threading

import pytest

from conftest import needs_kubectl
from fakeapi import wait_for

pytestmark = needs_kubectl

MANIFEST = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ordinal
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: ordinal.csi.dev
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: www-web-0
  labels: {app: web, tier: %(tier)s}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: %(replicas)d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        env:
%(env)s
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"""


def manifest(tmp_path, replicas=2, tier="fe", env=(("A", "1"), ("B", "2"))):
    text = MANIFEST % {"replicas": replicas, "tier": tier, "env": "\n".join(
        "        - {name: %s, value: \"%s\"}" % kv for kv in env)}
    p = tmp_path / "web.yaml"
    p.write_text(text)
    return str(p)


def test_discovery_short_names_and_version(apiserver):
    out = apiserver.kubectl("api-resources").stdout
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert " pvc " in lines["persistentvolumeclaims"] and " sts " in lines["statefulsets"]
    assert "storage.k8s.io/v1" in lines["csidrivers"]
    assert "coordination.k8s.io/v1" in lines["leases"]
    assert "Server Version: v1.32.0" in apiserver.kubectl("version").stdout
    ns = apiserver.kubectl("get", "ns").stdout
    assert ns.split("\n")[0].split() == ["NAME", "STATUS", "AGE"]
    assert ns.split("\n")[1].split()[:2] == ["default", "Active"]
    # Typed `kubectl create <kind>` commands send protobuf bodies; these four are decoded.
    apiserver.kubectl("create", "namespace", "demo")
    apiserver.kubectl("create", "configmap", "cfg", "-n", "demo", "--from-literal=a=b")
    apiserver.kubectl("create", "secret", "generic", "s", "-n", "demo", "--from-literal=pw=x")
    apiserver.kubectl("create", "serviceaccount", "robot", "-n", "demo")
    c = apiserver.client
    assert c.get("configmaps", "cfg", ns="demo")["data"] == {"a": "b"}
    assert c.get("secrets", "s", ns="demo")["data"] == {"pw": "eA=="}
    assert c.get("namespaces", "demo", ns=None)["metadata"]["labels"] == {
        "kubernetes.io/metadata.name": "demo"}
    assert "generateName" not in c.get("serviceaccounts", "robot", ns="demo")["metadata"]
    p = apiserver.kubectl("create", "deployment", "d", "--image=nginx", check=False)
    assert p.returncode != 0 and "kubectl create -f works" in p.stderr


def test_create_get_describe_delete(apiserver, tmp_path):
    f = manifest(tmp_path)
    out = apiserver.kubectl("create", "-f", f).stdout    # default --validate=strict
    assert "storageclass.storage.k8s.io/ordinal created" in out
    assert "persistentvolumeclaim/www-web-0 created" in out
    assert "statefulset.apps/web created" in out
    obj = json.loads(apiserver.kubectl("get", "pvc", "www-web-0", "-o", "json").stdout)
    assert obj["kind"] == "PersistentVolumeClaim"
    assert obj["spec"]["storageClassName"] == "ordinal"
    assert obj["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    lst = json.loads(apiserver.kubectl("get", "pvc", "-o", "json").stdout)
    assert lst["kind"] == "List" and lst["items"][0]["kind"] == "PersistentVolumeClaim"
    table = apiserver.kubectl("get", "pvc").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES",
                                "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert table[1].split()[:3] == ["www-web-0", "Pending", "ordinal"]
    wide = apiserver.kubectl("get", "pvc", "-o", "wide").stdout
    assert "VOLUMEMODE" in wide and "Filesystem" in wide
    assert "ordinal (default)" in apiserver.kubectl("get", "sc").stdout
    sts = apiserver.kubectl("get", "sts", "--show-labels").stdout.splitlines()
    assert sts[0].split()[:2] == ["NAME", "READY"] and sts[1].split()[:2] == ["web", "0/2"]
    assert apiserver.kubectl("get", "pvc", "-l", "tier=fe", "-o", "name").stdout.strip() == \
        "persistentvolumeclaim/www-web-0"
    assert apiserver.kubectl("get", "pvc", "-A").stdout.splitlines()[0].startswith("NAMESPACE")
    jp = apiserver.kubectl("get", "sts", "web", "-o",
                           "jsonpath={.spec.podManagementPolicy}/{.metadata.generation}").stdout
    assert jp == "OrderedReady/1"
    desc = apiserver.kubectl("describe", "pvc", "www-web-0").stdout
    assert "Status:        Pending" in desc and "kubernetes.io/pvc-protection" in desc
    wait_for(lambda: "WaitForFirstConsumer" in apiserver.kubectl(
        "describe", "pvc", "www-web-0").stdout, what="event in describe")
    assert "Replicas:           2 desired" in apiserver.kubectl("describe", "sts", "web").stdout
    assert "ordinal.csi.dev" in apiserver.kubectl("describe", "sc", "ordinal").stdout
    out = apiserver.kubectl("delete", "-f", f, "--timeout=10s").stdout
    assert 'persistentvolumeclaim "www-web-0" deleted' in out
    assert "No resources found" in apiserver.kubectl("get", "pvc,sts").stderr


def test_apply_client_side(apiserver, tmp_path):
    f = manifest(tmp_path)
    out = apiserver.kubectl("apply", "-f", f, "--validate=false").stdout
    assert "statefulset.apps/web created" in out
    sts = json.loads(apiserver.kubectl("get", "sts", "web", "-o", "json").stdout)
    assert "kubectl.kubernetes.io/last-applied-configuration" in sts["metadata"]["annotations"]
    # Change replicas, drop env B, add C, change a label: a strategic-merge PATCH.
    f = manifest(tmp_path, replicas=3, tier="be", env=(("A", "1"), ("C", "3")))
    out = apiserver.kubectl("apply", "-f", f, "--validate=false").stdout
    assert "statefulset.apps/web configured" in out
    assert "storageclass.storage.k8s.io/ordinal unchanged" in out
    sts = json.loads(apiserver.kubectl("get", "sts", "web", "-o", "json").stdout)
    assert sts["spec"]["replicas"] == 3 and sts["metadata"]["generation"] == 2
    env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    pvc = json.loads(apiserver.kubectl("get", "pvc", "www-web-0", "-o", "json").stdout)
    assert pvc["metadata"]["labels"] == {"app": "web", "tier": "be"}
    assert "strategic-merge-patch+json" in apiserver.log()
    # Default validation also works (OpenAPI v3 probe; v2 is 404 and kubectl copes).
    f = manifest(tmp_path, replicas=4)
    assert "statefulset.apps/web configured" in apiserver.kubectl("apply", "-f", f).stdout
    assert apiserver.kubectl("get", "sts", "web", "-o",
                             "jsonpath={.spec.replicas}").stdout == "4"
    # Server-side apply is not supported: 415.
    p = apiserver.kubectl("apply", "--server-side", "-f", f, check=False)
    assert p.returncode != 0
    assert "Server-side apply not available on the server" in p.stderr


def test_patch_scale_label_and_status(apiserver, tmp_path):
    apiserver.kubectl("create", "-f", manifest(tmp_path))
    k = apiserver.kubectl
    k("patch", "pvc", "www-web-0", "-p", '{"metadata":{"labels":{"s":"1"}}}')
    k("patch", "pvc", "www-web-0", "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    k("patch", "pvc", "www-web-0", "--type=json", "-p",
      '[{"op":"add","path":"/metadata/labels/j","value":"1"}]')
    k("label", "pvc", "www-web-0", "l=1")
    k("annotate", "pvc", "www-web-0", "a=1")
    pvc = json.loads(k("get", "pvc", "www-web-0", "-o", "json").stdout)
    assert {"s", "m", "j", "l"} <= set(pvc["metadata"]["labels"])
    assert pvc["metadata"]["annotations"]["a"] == "1"
    k("patch", "pvc", "www-web-0", "--subresource=status", "--type=merge",
      "-p", '{"status":{"phase":"Lost"}}')
    assert k("get", "pvc", "www-web-0", "-o", "jsonpath={.status.phase}").stdout == "Lost"
    k("patch", "pvc", "www-web-0", "--type=merge", "-p", '{"status":{"phase":"Bound"}}')
    assert k("get", "pvc", "www-web-0", "-o", "jsonpath={.status.phase}").stdout == "Lost"
    assert "scaled" in k("scale", "sts", "web", "--replicas=0").stdout
    assert k("get", "sts", "web", "-o", "jsonpath={.spec.replicas}").stdout == "0"
    p = k("patch", "pvc", "www-web-0", "--type=merge", "-p",
          '{"spec":{"accessModes":["ReadWriteMany"]}}', check=False)
    assert p.returncode != 0 and "is invalid" in p.stderr


def test_wait_and_delete_with_watch(apiserver, tmp_path):
    """kubectl wait/delete LIST then WATCH with fieldSelector=metadata.name=..."""
    apiserver.kubectl("create", "configmap", "held")
    apiserver.kubectl("patch", "configmap", "held", "-p",
                      '{"metadata":{"finalizers":["example.com/hold"]}}')
    out = apiserver.kubectl("delete", "configmap", "held", "--wait=false").stdout
    assert "deleted" in out
    watches = apiserver.faults()["open_watches"]
    waiter = subprocess.Popen(
        ["kubectl", "--cache-dir", apiserver.kubectl_cache, "wait", "--for=delete",
         "configmap/held", "--timeout=20s"], env=dict(os.environ,
                                                      KUBECONFIG=apiserver.kubeconfig),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # kubectl has listed the deleting object and now watches it: it decided to wait.
    wait_for(lambda: apiserver.faults()["open_watches"] > watches or waiter.poll() is not None,
             timeout=20, what="kubectl wait watching")
    assert waiter.poll() is None, "still held by the finalizer"
    apiserver.kubectl("patch", "configmap", "held", "--type=json", "-p",
                      '[{"op":"remove","path":"/metadata/finalizers"}]')
    out, err = waiter.communicate(timeout=20)
    assert waiter.returncode == 0, err
    assert "condition met" in out or "deleted" in out
    # kubectl wait on a jsonpath condition (LIST+WATCH until Bound).
    apiserver.kubectl("create", "-f", manifest(tmp_path))
    claim = apiserver.client.get("persistentvolumeclaims", "www-web-0")
    vol = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-0"},
           "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                    "storageClassName": "ordinal",
                    "csi": {"driver": "ordinal.csi.dev", "volumeHandle": "default/www-web-0"},
                    "claimRef": {"namespace": "default", "name": "www-web-0",
                                 "uid": claim["metadata"]["uid"]}}}
    apiserver.kubectl("create", "-f", "-", input=json.dumps(vol))
    out = apiserver.kubectl("wait", "--for=jsonpath={.status.phase}=Bound",
                            "pvc/www-web-0", "--timeout=10s").stdout
    assert "condition met" in out
    table = apiserver.kubectl("get", "pv").stdout.splitlines()
    assert table[1].split()[:6] == ["pv-0", "1Gi", "RWO", "Retain", "Bound",
                                    "default/www-web-0"]


def test_errors_as_kubectl_prints_them(apiserver, tmp_path):
    p = apiserver.kubectl("get", "pvc", "nothere", check=False)
    assert p.returncode == 1
    assert 'Error from server (NotFound): persistentvolumeclaims "nothere" not found' in p.stderr
    apiserver.kubectl("create", "configmap", "dup")
    p = apiserver.kubectl("create", "configmap", "dup", check=False)
    assert 'configmaps "dup" already exists' in p.stderr
    cmf = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dup"}})
    p = apiserver.kubectl("create", "-f", "-", input=cmf, check=False)
    assert 'Error from server (AlreadyExists): error when creating "STDIN": configmaps "dup" ' \
        'already exists' in p.stderr
    bad = tmp_path / "kubeconfig-bad"
    bad.write_text(open(apiserver.kubeconfig).read().replace(apiserver.token, "wrong"))
    p = subprocess.run(["kubectl", "--kubeconfig", str(bad), "--cache-dir",
                        str(tmp_path / "c2"), "get", "pvc"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "You must be logged in to the server" in p.stderr
    apiserver.fault(error_rate=100, error_code=500, match="configmaps")
    p = apiserver.kubectl("get", "configmap", "dup", check=False)
    assert p.returncode != 0 and "Internal error occurred: injected fault" in p.stderr
    apiserver.reset_faults()
    assert "dup" in apiserver.kubectl("get", "cm").stdout


@pytest.mark.apiserver_args("--no-controllers")
def test_get_watch_streams_rows(apiserver):
    """kubectl get -w: Table-formatted watch events."""
    proc = subprocess.Popen(["kubectl", "--cache-dir", apiserver.kubectl_cache, "get", "cm",
                             "-w", "--output-watch-events"],
                            env=dict(os.environ, KUBECONFIG=apiserver.kubeconfig),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_for(lambda: apiserver.faults()["open_watches"] > 0 or proc.poll() is not None,
                 timeout=20, what="kubectl watching")
        apiserver.client.create("configmaps", {"metadata": {"name": "live"}, "data": {}})
        apiserver.client.delete("configmaps", "live")
        wait_for(lambda: any(ln.split()[:2] == ["DELETED", "live"] for ln in lines) or
                 proc.poll() is not None, timeout=20, what="the DELETED row")
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)
        err = proc.stderr.read()
    events = [ln.split()[:2] for ln in lines[1:]]
    assert ["ADDED", "live"] in events and ["DELETED", "live"] in events, "".join(lines) + err
