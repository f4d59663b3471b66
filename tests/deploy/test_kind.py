"""deploy/kind: the cluster config, the smoke test's objects and the scripts agree with the
manifests (kind itself needs Docker and does not run here)."""

import os
import re

import yaml

from conftest import SOURCE, objects

KIND = os.path.join(SOURCE, "deploy", "kind")


def test_cluster_has_one_control_plane_two_workers_with_mounts():
    c = yaml.safe_load(open(os.path.join(KIND, "cluster.yaml")))
    assert c["kind"] == "Cluster" and c["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in c["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    data_roots = set()
    for n in c["nodes"][1:]:
        mounts = {m["containerPath"]: m["hostPath"] for m in n["extraMounts"]}
        assert mounts["/dev"] == "/dev"
        data_roots.add(mounts["/var/lib/ordinal"])
    assert len(data_roots) == 2, "each worker needs its own data root"
    # The data root the nodes get is the one the DaemonSet mounts.
    ds = [o for o in objects("kind") if o["kind"] == "DaemonSet"][0]
    paths = {v["hostPath"]["path"] for v in ds["spec"]["template"]["spec"]["volumes"]
             if "hostPath" in v}
    assert "/var/lib/ordinal" in paths and "/dev" in paths
    up = open(os.path.join(KIND, "up.sh")).read()
    for root in data_roots:
        assert root in up, "up.sh must create %s" % root


def test_up_applies_overlays_that_exist():
    up = open(os.path.join(KIND, "up.sh")).read()
    assert re.search(r"overlay=kind\n", up) and "overlay=kind-lvm" in up
    for o in ("kind", "kind-lvm"):
        assert os.path.isfile(os.path.join(SOURCE, "deploy", "kubernetes", "overlays", o,
                                           "kustomization.yaml"))
    # The volume group names up.sh makes are the ones the kind-lvm DaemonSet asks for.
    assert 'vgcreate "ordinal-$node"' in up
    ds = [o for o in objects("kind-lvm") if o["kind"] == "DaemonSet"][0]
    env = {e["name"]: e.get("value") for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ORDINAL_LVM_VG"] == "ordinal-$(NODE_NAME)"


def test_smoke_statefulset_is_the_founding_one(apiserver):
    text = open(os.path.join(KIND, "smoke.yaml")).read()
    objs = [o for o in yaml.safe_load_all(text) if o]
    svc = [o for o in objs if o["kind"] == "Service"][0]
    sts = [o for o in objs if o["kind"] == "StatefulSet"][0]
    assert svc["metadata"]["name"] == "nginx" and svc["spec"]["clusterIP"] == "None"
    assert sts["metadata"]["name"] == "web" and sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "nginx"
    (t,) = sts["spec"]["volumeClaimTemplates"]
    assert t["metadata"]["name"] == "www"
    assert t["spec"]["storageClassName"] == "ordinal"
    assert t["spec"]["resources"]["requests"]["storage"] == "1Gi"
    out = apiserver.kubectl("apply", "-f", "-", input=text)
    assert "statefulset.apps/web created" in out.stdout, out.stdout
