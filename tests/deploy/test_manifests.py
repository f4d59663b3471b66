"""The manifests of deploy/kubernetes: every overlay renders, every object is well formed and
carries what the install needs, every ordinal-csi flag is one the daemon knows, the daemon
starts with exactly those flags, and the fake API server accepts every object."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import NAMESPACE, OVERLAYS, objects, one, ordinal_containers, render
import resources as sandbox_resources
from fakeapi import wait_for

SIDECARS = {"node-driver-registrar": "registry.k8s.io/sig-storage/csi-node-driver-registrar",
            "livenessprobe": "registry.k8s.io/sig-storage/livenessprobe"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_well_formed_objects(overlay):
    text, objs = render(overlay)
    assert objs, "overlay %s rendered nothing" % overlay
    seen = set()
    for o in objs:
        assert isinstance(o.get("apiVersion"), str) and o["apiVersion"], o
        assert isinstance(o.get("kind"), str) and o["kind"], o
        name = o.get("metadata", {}).get("name")
        assert isinstance(name, str) and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), o
        res = sandbox_resources.BY_KIND.get((o["apiVersion"], o["kind"]))
        assert res, "%s/%s is a kind the sandbox does not serve" % (o["apiVersion"], o["kind"])
        ns = o["metadata"].get("namespace")
        if res.namespaced:
            assert ns == NAMESPACE, "%s %s: namespace %r" % (o["kind"], name, ns)
        else:
            assert ns is None, "cluster-scoped %s %s has namespace %r" % (o["kind"], name, ns)
        key = (o["kind"], ns, name)
        assert key not in seen, "duplicate %s" % (key,)
        seen.add(key)
    kinds = {o["kind"] for o in objs}
    assert {"Namespace", "CSIDriver", "StorageClass", "ServiceAccount", "ClusterRole",
            "ClusterRoleBinding", "Role", "RoleBinding", "DaemonSet", "Deployment"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_csidriver_and_storageclasses(overlay):
    d = one(overlay, "CSIDriver", "ordinal.csi.dev")["spec"]
    assert d == {"attachRequired": False, "podInfoOnMount": True, "fsGroupPolicy": "File",
                 "volumeLifecycleModes": ["Persistent"]}
    backend = "lvm" if "lvm" in overlay else "dir"
    for name, policy in (("ordinal", "Delete"), ("ordinal-retain", "Retain")):
        sc = one(overlay, "StorageClass", name)
        assert sc["provisioner"] == "ordinal.csi.dev"
        assert sc["reclaimPolicy"] == policy
        assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
        assert sc["allowVolumeExpansion"] is True
        assert sc["parameters"] == {"backend": backend}
        default = (sc["metadata"].get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class")
        want = "true" if overlay.startswith("kind") and name == "ordinal" else None
        assert default == want, "%s in %s: default-class annotation %r" % (name, overlay, default)


def _volumes_by_name(spec):
    return {v["name"]: v for v in spec.get("volumes", [])}


def _mounts(container, vols):
    """mountPath -> (hostPath or volume kind, propagation)."""
    out = {}
    for m in container.get("volumeMounts", []):
        v = vols[m["name"]]
        src = v["hostPath"]["path"] if "hostPath" in v else next(k for k in v if k != "name")
        out[m["mountPath"]] = (src, m.get("mountPropagation"))
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_node_daemonset(overlay):
    ds = one(overlay, "DaemonSet", "ordinal-node")
    spec = ds["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "ordinal-node"
    vols = _volumes_by_name(spec)
    cs = {c["name"]: c for c in spec["containers"]}
    assert set(cs) == {"ordinal-csi", "node-driver-registrar", "livenessprobe"}
    main = cs["ordinal-csi"]
    assert main["securityContext"]["privileged"] is True
    args = main["args"]
    assert "--mode=node" in args and "--node-id=$(NODE_NAME)" in args
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} \
        == main["env"][0]
    m = _mounts(main, vols)
    assert m["/var/lib/kubelet"] == ("/var/lib/kubelet", "Bidirectional")
    assert m["/csi"][0] == "/var/lib/kubelet/plugins/ordinal.csi.dev"
    assert m["/var/lib/ordinal"][0] == "/var/lib/ordinal"
    assert m["/dev"][0] == "/dev"
    assert "--endpoint=unix:///csi/csi.sock" in args
    reg = cs["node-driver-registrar"]
    assert _mounts(reg, vols)["/registration"][0] == "/var/lib/kubelet/plugins_registry"
    assert "--kubelet-registration-path=/var/lib/kubelet/plugins/ordinal.csi.dev/csi.sock" \
        in reg["args"]
    assert "--csi-address=/csi/csi.sock" in reg["args"]
    assert "--csi-address=/csi/csi.sock" in cs["livenessprobe"]["args"]
    for name, repo in SIDECARS.items():
        image = cs[name]["image"]
        assert re.fullmatch(re.escape(repo) + r":v\d+\.\d+\.\d+", image), image
    # Probes point at ports the pod declares: the daemon's --http-endpoint and the sidecars'.
    ports = {p["name"]: p["containerPort"] for c in cs.values() for p in c.get("ports", [])}
    assert "--http-endpoint=0.0.0.0:%d" % ports["http"] in args
    assert "--health-port=%d" % ports["healthz"] in cs["livenessprobe"]["args"]
    assert "--http-endpoint=:%d" % ports["registrar"] in reg["args"]
    for c in cs.values():
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in c:
                assert c[probe]["httpGet"]["port"] in ports, (c["name"], probe)
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for c in cs.values():
        assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    if "lvm" in overlay:
        env = {e["name"]: e.get("value") for e in main["env"]}
        assert env["LVM_SYSTEM_DIR"] in m and "--lvm-vg=$(ORDINAL_LVM_VG)" in args
        conf = vols[next(v for v in main["volumeMounts"]
                         if v["mountPath"] == env["LVM_SYSTEM_DIR"])["name"]]["configMap"]["name"]
        text = one(overlay, "ConfigMap", conf)["data"]["lvm.conf"]
        assert re.search(r"udev_sync\s*=\s*0", text) and re.search(r"udev_rules\s*=\s*0", text)
        assert re.search(r"^\s*filter\s*=", text, re.M)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_deployment(overlay):
    d = one(overlay, "Deployment", "ordinal-controller")
    assert d["spec"]["replicas"] == 2
    spec = d["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "ordinal-controller"
    (c,) = spec["containers"]
    assert "--mode=controller" in c["args"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]


def _help_flags(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    return set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)", out.stdout, re.M))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_flag_is_one_the_daemon_lists(overlay, ordinal_csi):
    known = _help_flags(ordinal_csi)
    assert "--endpoint" in known and "--http-endpoint" in known
    for w, c in ordinal_containers(overlay):
        assert not c.get("command"), "the image's ENTRYPOINT is ordinal-csi"
        for a in c["args"]:
            flag = a.split("=", 1)[0]
            assert a.startswith("--") and "=" in a, "%s: write flags as --flag=value: %r" % (
                w["metadata"]["name"], a)
            assert flag in known, "%s: %s is not in ordinal-csi --help" % (w["metadata"]["name"],
                                                                         flag)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def _expand(value, env):
    """Kubernetes' $(VAR) expansion of args and env values (earlier variables only)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(0)[2:-1],
                                                                          m.group(0)), value)


def _container_argv(binary, c, tmp, port, kubeconfig):
    """The container's own argv, expanded as kubelet does, with its host paths moved under tmp
    (the socket, the data root) and the HTTP endpoint on a free loopback port."""
    fields = {"spec.nodeName": "node-1", "metadata.name": "ordinal-controller-abc12",
              "metadata.namespace": NAMESPACE}
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = _expand(e["value"], env)
        else:
            env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
    argv = [binary]
    for a in c["args"]:
        a = _expand(a, env)
        flag, value = a.split("=", 1)
        if flag == "--endpoint":
            value = "unix://%s/csi.sock" % tmp
        elif flag == "--dir-root":
            value = os.path.join(tmp, "root")
        elif flag == "--http-endpoint":
            assert value.rsplit(":", 1)[0] in ("0.0.0.0", "[::]", "")
            value = "127.0.0.1:%d" % port
        argv.append("%s=%s" % (flag, value))
    argv.append("--kubeconfig=" + kubeconfig)  # in a pod: the service account instead
    return argv, env


@pytest.mark.parametrize("overlay", ["dir", "lvm"])
def test_daemon_runs_with_the_manifest_flags(overlay, ordinal_csi, apiserver, tmp_path):
    """Each ordinal-csi container's flags, as written, start the daemon: it serves CSI, answers
    /healthz, and turns ready against the API server (node: caches synced; controller: leader
    state known). LVM needs its volume group, so there the flags are checked to parse: the
    daemon gets past flag parsing (exit 2 would be a bad flag) and stops on the missing group."""
    # Installed first, as on a cluster: the namespace of the Lease exists.
    apiserver.kubectl("apply", "-f", "-", input=render(overlay)[0])
    for i, (w, c) in enumerate(ordinal_containers(overlay)):
        tmp = tmp_path / ("c%d" % i)
        tmp.mkdir()
        port = _free_port()
        argv, env = _container_argv(ordinal_csi, c, str(tmp), port, apiserver.kubeconfig)
        log = open(tmp / "daemon.log", "w+")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            if any(a.startswith("--lvm-vg=") for a in argv):
                rc = proc.wait(30)
                log.seek(0)
                text = log.read()
                assert rc == 1, "exit %s (2 = a flag was refused):\n%s" % (rc, text)
                assert "ordinal-vg" in text, text
                continue
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline:
                assert proc.poll() is None, "daemon exited %s" % proc.returncode
                try:
                    status = _get(port, "/readyz")
                except OSError:
                    status = None
                if status and status[0] == 200:
                    break
                time.sleep(0.1)
            assert status and status[0] == 200, "never ready: %r" % (status,)
            assert _get(port, "/healthz")[0] == 200
            assert os.path.exists(tmp / "csi.sock")
            metrics = _get(port, "/metrics")[1]
            assert "ordinal_build_info" in metrics
            if "--mode=controller" in argv:
                # Leader election ran in the manifest's namespace, where the Role grants it.
                # (/readyz says the leader state is known, not that this one leads: wait.)
                wait_for(lambda: re.search(r"^ordinal_leader 1$", _get(port, "/metrics")[1], re.M),
                         timeout=20,
                         what="the controller to lead")
                lease = apiserver.client.get("leases", "ordinal-csi-dev", ns=NAMESPACE)
                assert lease["spec"]["holderIdentity"] == "ordinal-controller-abc12"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_apiserver_accepts_every_object(overlay, apiserver):
    text, objs = render(overlay)
    out = apiserver.kubectl("apply", "-f", "-", input=text)
    for o in objs:
        args = ["get", o["kind"].lower() + "." + (o["apiVersion"].split("/")[0]
                                                  if "/" in o["apiVersion"] else ""),
                o["metadata"]["name"], "-o", "json"]
        if args[1].endswith("."):
            args[1] = args[1][:-1]
        if o["metadata"].get("namespace"):
            args += ["-n", o["metadata"]["namespace"]]
        got = json.loads(apiserver.kubectl(*args).stdout)
        assert got["kind"] == o["kind"] and got["metadata"]["name"] == o["metadata"]["name"]
    # Applying again changes nothing and fails nowhere.
    again = apiserver.kubectl("apply", "-f", "-", input=text)
    assert "created" not in again.stdout, again.stdout
    assert out.stdout
