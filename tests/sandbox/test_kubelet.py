"""The sandbox kubelet (deploy/sandbox/kubelet.py) against the fake API server and a real
ordinal-csi node plugin: kubelet's CSI sequence and paths, containers as real sandboxed
processes, pod status, graceful deletion, probes, restarts, the nginx stand-in and /etc/hosts.

The tests play the scheduler: pods are created with spec.nodeName, claims with
volume.kubernetes.io/selected-node (the provisioner inside ordinal-csi then makes the volume).
"""

import hashlib
import http.client
import os
import shutil

import pytest

from kubelet_fixtures import (KUBECTL, NODE_GRACE, SLOW, condition, cstatus, mounts_under,
                              needs_bwrap, needs_root, running_ready, wait_for)
from kubelet_fixtures import kcluster  # noqa: F401  (the fixture)

pytestmark = [needs_root, needs_bwrap]


def staging(node, handle):
    return os.path.join(node.kubelet_dir, "plugins", "kubernetes.io", "csi", "ordinal.csi.dev",
                        hashlib.sha256(handle.encode()).hexdigest(), "globalmount")


def target(node, uid, pv):
    return os.path.join(node.kubelet_dir, "pods", uid, "volumes", "kubernetes.io~csi", pv,
                        "mount")


def is_mounted(path):
    return os.path.realpath(path) in mounts_under(path)


HAVE_KUBECTL = shutil.which(KUBECTL) is not None
needs_kubectl = pytest.mark.skipif(not HAVE_KUBECTL, reason="kubectl not installed")


def pod_row(cl, name):
    """NAME READY STATUS RESTARTS ... as `kubectl get pod` prints it (real kubectl when
    installed, else the same server-side Table columns read directly)."""
    if HAVE_KUBECTL:
        return cl.api.kubectl("get", "pod", name, "--no-headers").stdout.split()
    r = cl.client.request("GET", "/api/v1/namespaces/default/pods/" + name, headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    cells = r.body["rows"][0]["cells"]
    return " ".join(str(c) for c in cells).split()


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
    wait_for(lambda: os.path.exists(os.path.join(data, "env")) and
             read(os.path.join(data, "env")).endswith("\n"), timeout=10 * SLOW,
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
    # the Node, made after the kubelet started, reports Ready
    wait_for(lambda: condition(cl.client.get("nodes", "node-1", ns=None), "Ready").get(
        "status") == "True", timeout=10 * SLOW, what="node-1 Ready")
    table = pod_row(cl, "web-0")
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


def container_pid(pod, name="main"):
    cid = cstatus(pod, name).get("containerID", "")
    assert cid.startswith("bwrap://"), cid
    return int(cid[len("bwrap://"):])


def nsenter(pid, *argv):
    import subprocess
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-p", "-r", "-w", "--"] +
                          list(argv), capture_output=True, text=True, timeout=10)


def reasons(cl, name):
    return [(e["reason"], e["message"]) for e in cl.events(name)]


def test_readiness_probe_keeps_ready_false_until_it_passes(kcluster):
    cl = kcluster
    probe = {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1,
             "failureThreshold": 1}
    cl.pod("probe", command=["sleep", "1000"], readinessProbe=probe)
    pod = cl.wait_pod("probe", lambda p: "running" in cstatus(p).get("state", {}),
                      what="container running")
    wait_for(lambda: any(r == "Unhealthy" and m.startswith("Readiness probe failed")
                         for r, m in reasons(cl, "probe")), timeout=10 * SLOW,
             what="a failed readiness probe event")
    pod = cl.get_pod("probe")
    assert pod["status"]["phase"] == "Running"
    assert cstatus(pod)["ready"] is False and cstatus(pod)["started"] is True
    ready = condition(pod, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [main]"
    assert pod_row(cl, "probe")[:3] == [
        "probe", "0/1", "Running"]
    # /tmp is the container's own: the file appears only inside its mount namespace, and the
    # probe (run in the container's namespaces) sees it
    assert nsenter(container_pid(pod), "touch", "/tmp/ready").returncode == 0
    assert not os.path.exists("/tmp/ready")
    pod = cl.wait_pod("probe", running_ready, timeout=10, what="Ready after the file appeared")
    assert cstatus(pod)["ready"] is True and cstatus(pod)["restartCount"] == 0


def test_liveness_probe_failure_restarts_the_container(kcluster):
    cl = kcluster
    probe = {"exec": {"command": ["test", "-e", "/tmp/alive"]}, "periodSeconds": 1,
             "failureThreshold": 2, "initialDelaySeconds": 1}
    cl.pod("live", command=["sleep", "1000"], livenessProbe=probe, grace=1)
    pod = cl.wait_pod("live", lambda p: cstatus(p).get("restartCount", 0) >= 1,
                      timeout=30, what="a restart after the liveness probe failed")
    cs = cstatus(pod)
    assert cs["lastState"]["terminated"]["exitCode"] == 137   # PID 1 sleep ignores SIGTERM
    rs = reasons(cl, "live")
    assert ("Killing", "Container main failed liveness probe, will be restarted") in rs
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in rs)


def test_restart_policy_always_backs_off_and_counts(kcluster):
    cl = kcluster
    node = cl.nodes["node-1"]
    cl.claim("runs")
    cl.pod("crash", claim="runs", command=["/bin/sh", "-c", "echo run >> /data/runs; exit 3"])
    saw_backoff = []

    def crashing(p):
        cs = cstatus(p)
        if (cs.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            saw_backoff.append(p)
        return cs.get("restartCount", 0) >= 2 and saw_backoff
    pod = cl.wait_pod("crash", crashing, timeout=30, what="two restarts and a back-off")
    cs = cstatus(pod)
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert pod["status"]["phase"] == "Running"    # Always: never a terminal phase
    w = saw_backoff[0]
    assert cstatus(w)["state"]["waiting"]["message"].startswith("back-off ")
    # every start was a real process writing to the volume
    runs = os.path.join(node.data_dir("default", "runs"), "runs")
    wait_for(lambda: len(open(runs).read().split()) >= 3, timeout=10 * SLOW,
             what="three runs written")
    assert ("BackOff" in [r for r, _ in reasons(cl, "crash")])
    row = pod_row(cl, "crash")
    assert row[1] == "0/1" and row[2] in ("CrashLoopBackOff", "Error", "Running"), row
    assert int(row[3]) >= 2, row


@pytest.mark.parametrize("policy,code,phase,reason", [
    ("OnFailure", 0, "Succeeded", "Completed"),
    ("Never", 1, "Failed", "Error"),
])
def test_restart_policy_terminal(kcluster, policy, code, phase, reason):
    cl = kcluster
    cl.pod("job", command=["/bin/sh", "-c", "exit %d" % code], restart=policy)
    pod = cl.wait_pod("job", lambda p: p["status"]["phase"] == phase, timeout=20,
                      what="phase %s" % phase)
    cs = cstatus(pod)
    assert cs["restartCount"] == 0
    assert cs["state"]["terminated"]["exitCode"] == code
    assert cs["state"]["terminated"]["reason"] == reason
    assert condition(pod, "Ready")["status"] == "False"
    row = pod_row(cl, "job")
    assert row[:4] == ["job", "0/1", reason, "0"], row


def test_on_failure_restarts_a_failed_container(kcluster):
    cl = kcluster
    cl.claim("state")
    # fails on its first run, succeeds on the second: the volume remembers
    cmd = ["/bin/sh", "-c", "if [ -e /data/once ]; then exit 0; fi; touch /data/once; exit 2"]
    cl.pod("retry", claim="state", command=cmd, restart="OnFailure")
    pod = cl.wait_pod("retry", lambda p: p["status"]["phase"] == "Succeeded", timeout=20)
    cs = cstatus(pod)
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["state"]["terminated"]["exitCode"] == 0


def test_nginx_image_serves_the_volume_on_the_pod_ip(kcluster):
    cl = kcluster
    node = cl.nodes["node-1"]
    cl.claim("www-web-0")
    cl.pod("web-0", claim="www-web-0", image="nginx:1.27", mount="/usr/share/nginx/html",
           ports=[{"containerPort": 80, "name": "web"}],
           readinessProbe={"httpGet": {"path": "/", "port": "web"}, "periodSeconds": 1})
    pod = cl.wait_pod("web-0", running_ready, what="nginx Running and Ready")
    with open(os.path.join(node.data_dir("default", "www-web-0"), "index.html"), "w") as f:
        f.write("web-0\n")
    conn = http.client.HTTPConnection(pod["status"]["podIP"], 80, timeout=5)
    conn.request("GET", "/index.html")
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"web-0\n")
    conn.close()
    # the host's /usr/share/nginx was never written: the mount point lives in the sandbox
    assert not os.path.exists("/usr/share/nginx/html")
    assert "NoCommand" not in [r for r, _ in reasons(cl, "web-0")]


def test_image_without_command_sleeps_with_an_event(kcluster):
    cl = kcluster
    cl.pod("idle", image="busybox:1.36")
    cl.wait_pod("idle", running_ready)
    msgs = [m for r, m in reasons(cl, "idle") if r == "NoCommand"]
    assert msgs and "it sleeps" in msgs[0] and "busybox:1.36" in msgs[0]


def test_etc_hosts_resolves_the_headless_service_names(kcluster):
    cl = kcluster
    cl.service("nginx")
    node = cl.nodes["node-1"]
    for i in (0, 1):
        cl.claim("www-web-%d" % i)
    look = ["/bin/sh", "-c", "until getent hosts web-1.nginx.default.svc.cluster.local > "
            "/data/fqdn && getent hosts web-1.nginx > /data/short; do sleep 0.2; done; "
            "exec sleep 1000"]
    cl.pod("web-0", claim="www-web-0", command=look, subdomain="nginx")
    cl.pod("web-1", claim="www-web-1", command=["sleep", "1000"], subdomain="nginx")
    web1 = cl.wait_pod("web-1", running_ready)
    ip1 = web1["status"]["podIP"]
    data0 = node.data_dir("default", "www-web-0")
    wait_for(lambda: os.path.exists(os.path.join(data0, "short")) and
             open(os.path.join(data0, "short")).read().strip(), timeout=15 * SLOW,
             what="web-0 resolving web-1.nginx")
    assert open(os.path.join(data0, "fqdn")).read().split()[0] == ip1
    assert open(os.path.join(data0, "short")).read().split()[0] == ip1
    web0 = cl.get_pod("web-0")
    assert web0["status"]["podIP"] != ip1
    out = nsenter(container_pid(web0), "hostname").stdout.strip()
    assert out == "web-0"


def test_shared_claim_is_unstaged_only_after_the_last_pod(kcluster):
    cl = kcluster
    node = cl.nodes["node-1"]
    cl.claim("shared")
    a = cl.pod("a", claim="shared", command=["sleep", "1000"], grace=0)
    b = cl.pod("b", claim="shared", command=["sleep", "1000"], grace=0)
    cl.wait_pod("a", running_ready)
    cl.wait_pod("b", running_ready)
    pv = bound_pv(cl, "shared")
    name, handle = pv["metadata"]["name"], pv["spec"]["csi"]["volumeHandle"]
    st = staging(node, handle)
    ta, tb = target(node, a["metadata"]["uid"], name), target(node, b["metadata"]["uid"], name)
    assert is_mounted(st) and is_mounted(ta) and is_mounted(tb)
    cl.client.delete("pods", "a", gracePeriodSeconds=1)
    cl.wait_gone("a")
    assert not is_mounted(ta)
    assert is_mounted(st) and is_mounted(tb), "b still uses the volume: it stays staged"
    cl.client.delete("pods", "b", gracePeriodSeconds=1)
    cl.wait_gone("b")
    assert not is_mounted(tb) and not is_mounted(st)
    log = node.log_text()
    assert log.count("NodeUnpublishVolume: OK") == 2 and log.count("NodeUnstageVolume: OK") == 1


def test_pod_recreated_with_the_same_claim_finds_its_data(kcluster):
    cl = kcluster
    cl.claim("www-web-0")
    cmd = ["/bin/sh", "-c", "echo $POD_UID >> /data/uids; exec sleep 1000"]
    env = [{"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]
    uids = os.path.join(cl.nodes["node-1"].data_dir("default", "www-web-0"), "uids")
    first = cl.pod("web-0", claim="www-web-0", command=cmd, env=env, grace=0)
    cl.wait_pod("web-0", running_ready)
    wait_for(lambda: os.path.exists(uids) and open(uids).read().split() == [
        first["metadata"]["uid"]], timeout=10 * SLOW, what="the first pod's write")
    cl.client.delete("pods", "web-0", gracePeriodSeconds=1)
    cl.wait_gone("web-0")
    second = cl.pod("web-0", claim="www-web-0", command=cmd, env=env, grace=0)
    cl.wait_pod("web-0", running_ready)
    want = [first["metadata"]["uid"], second["metadata"]["uid"]]
    wait_for(lambda: open(uids).read().split() == want, timeout=10 * SLOW,
             what="both pods' uids in the volume")


def kubelet_admin(cl, node, action):
    return cl.client.call("POST", "/_kubelet", {"node": node, "action": action})


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


UNREACHABLE = "node.kubernetes.io/unreachable"


def taints(cl, node="node-1"):
    return (cl.client.get("nodes", node, ns=None).get("spec") or {}).get("taints") or []


def test_kubelet_stopped_and_started_again(kcluster):
    """A node going away kills its containers and leaves its mounts; its Lease is no longer
    renewed, so after the grace period the node lifecycle controller marks the Node Unknown,
    its pods' Ready condition False and taints it unreachable; when it comes back its pods run
    again (restartCount + 1, same pod IP, same data) and the taints go."""
    cl = kcluster
    node = cl.nodes["node-1"]
    cl.claim("www-web-0")
    cmd = ["/bin/sh", "-c", "echo start >> /data/starts; exec sleep 1000"]
    cl.pod("web-0", claim="www-web-0", command=cmd, grace=0)
    pod = cl.wait_pod("web-0", running_ready)
    pid = container_pid(pod)
    starts = os.path.join(node.data_dir("default", "www-web-0"), "starts")
    wait_for(lambda: os.path.exists(starts) and open(starts).read() == "start\n",
             timeout=10 * SLOW, what="the first start")
    lease = wait_for(lambda: cl.client.exists("leases", "node-1", ns="kube-node-lease") and
                     cl.client.get("leases", "node-1", ns="kube-node-lease"),
                     timeout=NODE_GRACE * 2, what="the node Lease")
    assert lease["spec"]["holderIdentity"] == "node-1"
    assert lease["spec"]["leaseDurationSeconds"] == round(NODE_GRACE)
    wait_for(lambda: cl.client.get("leases", "node-1", ns="kube-node-lease")["spec"][
        "renewTime"] != lease["spec"]["renewTime"], timeout=NODE_GRACE * 2,
        what="the Lease renewed")
    assert kubelet_admin(cl, "node-1", "stop") == {"node-1": False}
    stopped = cl.client.get("leases", "node-1", ns="kube-node-lease")["spec"]["renewTime"]
    wait_for(lambda: not pid_alive(pid), timeout=10 * SLOW, what="container killed")
    n = wait_for(lambda: (lambda n: n if condition(n, "Ready")["status"] == "Unknown" else None)(
        cl.client.get("nodes", "node-1", ns=None)), timeout=NODE_GRACE + 10 * SLOW,
        what="node-1 Unknown after the grace period")
    assert condition(n, "Ready")["reason"] == "NodeStatusUnknown"
    assert condition(n, "Ready")["message"] == "Kubelet stopped posting node status."
    assert cl.client.get("leases", "node-1", ns="kube-node-lease")["spec"]["renewTime"] == \
        stopped, "nobody renews the Lease of a stopped kubelet"
    wait_for(lambda: {"key": UNREACHABLE, "effect": "NoSchedule"} in taints(cl) and
             [t for t in taints(cl) if t["key"] == UNREACHABLE and t["effect"] == "NoExecute"
              and t.get("timeAdded")], timeout=10 * SLOW, what="the unreachable taints")
    gone = wait_for(lambda: (lambda p: p if condition(p, "Ready")["status"] == "False" else None)(
        cl.get_pod("web-0")), timeout=10 * SLOW, what="web-0's Ready condition False")
    assert gone["status"]["phase"] == "Running", "phase is the kubelet's: unchanged"
    assert cstatus(gone)["ready"] is True, "container statuses are the kubelet's: unchanged"
    assert {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 300} in gone["spec"]["tolerations"], \
        "DefaultTolerationSeconds: not evicted for 300 s"
    pv = bound_pv(cl, "www-web-0")
    assert is_mounted(target(node, pod["metadata"]["uid"], pv["metadata"]["name"]))
    assert kubelet_admin(cl, "node-1", "start") == {"node-1": True}
    again = cl.wait_pod("web-0", lambda p: running_ready(p) and container_pid(p) != pid,
                        what="running again")
    assert cstatus(again)["restartCount"] == 1
    assert again["status"]["podIP"] == pod["status"]["podIP"]
    wait_for(lambda: len(open(starts).read().split()) >= 2, timeout=10 * SLOW,
             what="the second start")
    assert open(starts).read().split() == ["start", "start"]
    n = cl.client.get("nodes", "node-1", ns=None)
    assert condition(n, "Ready")["status"] == "True"
    wait_for(lambda: not [t for t in taints(cl) if t["key"] == UNREACHABLE], timeout=10 * SLOW,
             what="the unreachable taints removed")


def test_pods_of_a_lost_node_are_evicted_after_their_toleration(kcluster):
    """Taint eviction: on a node tainted unreachable, a pod tolerating it for 2 s is deleted
    2 s after the taint (Terminating: no kubelet finishes it), one with the default 300 s and one
    tolerating it forever (as DaemonSet pods do) stay; the kubelet back finishes the deletion."""
    cl = kcluster
    short = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 2}
    forever = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    for name, tols in (("short", [short]), ("default", None), ("forever", [forever])):
        p = {"metadata": {"name": name}, "spec": {
            "nodeName": "node-1", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1000"]}]}}
        if tols:
            p["spec"]["tolerations"] = tols
        cl.client.create("pods", p)
    for name in ("short", "default", "forever"):
        cl.wait_pod(name, running_ready)
    assert kubelet_admin(cl, "node-1", "stop") == {"node-1": False}
    noexec = wait_for(lambda: [t for t in taints(cl) if t["key"] == UNREACHABLE and
                               t["effect"] == "NoExecute"], timeout=NODE_GRACE + 10 * SLOW,
                      what="the unreachable NoExecute taint")[0]
    ev = wait_for(lambda: [e for e in cl.client.list("events")["items"]
                           if e["reason"] == "TaintManagerEviction" and
                           e["involvedObject"]["name"] == "short"], timeout=10 * SLOW,
                  what="the short-tolerating pod evicted")
    assert ev[0]["message"] == "Marking for deletion Pod default/short"
    p = cl.get_pod("short")
    assert p is not None and p["metadata"].get("deletionTimestamp"), \
        "Terminating: no kubelet finishes the deletion"
    import nodelifecycle
    assert nodelifecycle.parse_time(p["metadata"]["deletionTimestamp"]) >= \
        nodelifecycle.parse_time(noexec["timeAdded"]) + 2
    for name in ("default", "forever"):
        assert not cl.get_pod(name)["metadata"].get("deletionTimestamp"), name
    assert kubelet_admin(cl, "node-1", "start") == {"node-1": True}
    cl.wait_gone("short")
    for name in ("default", "forever"):
        cl.wait_pod(name, running_ready, what="%s Running and Ready again" % name)


def test_kubelet_away_deletions_finish_when_it_is_back(kcluster):
    """A pod deleted while its node is away stays Terminating, and the kubelet finishes the
    deletion when it comes back; a pod force-deleted meanwhile leaves mounts that the kubelet
    finds from vol_data.json and cleans up (unpublish, unstage)."""
    cl = kcluster
    node = cl.nodes["node-1"]
    cl.claim("c1")
    cl.claim("c2")
    p1 = cl.pod("p1", claim="c1", command=["sleep", "1000"], grace=0)
    p2 = cl.pod("p2", claim="c2", command=["sleep", "1000"], grace=0)
    cl.wait_pod("p1", running_ready)
    cl.wait_pod("p2", running_ready)
    pv1, pv2 = bound_pv(cl, "c1"), bound_pv(cl, "c2")
    t1 = target(node, p1["metadata"]["uid"], pv1["metadata"]["name"])
    t2 = target(node, p2["metadata"]["uid"], pv2["metadata"]["name"])
    s1 = staging(node, pv1["spec"]["csi"]["volumeHandle"])
    s2 = staging(node, pv2["spec"]["csi"]["volumeHandle"])
    kubelet_admin(cl, "node-1", "stop")
    cl.client.delete("pods", "p1", gracePeriodSeconds=1)
    assert cl.get_pod("p1")["metadata"]["deletionTimestamp"]      # Terminating
    cl.client.delete("pods", "p2", gracePeriodSeconds=0)          # --force
    assert cl.get_pod("p2") is None
    assert all(is_mounted(p) for p in (t1, t2, s1, s2))
    kubelet_admin(cl, "node-1", "start")
    cl.wait_gone("p1")
    wait_for(lambda: not any(is_mounted(p) for p in (t1, t2, s1, s2)), timeout=15 * SLOW,
             what="orphaned mounts cleaned up")
    assert not os.listdir(os.path.join(node.kubelet_dir, "pods"))


@needs_kubectl
def test_kubectl_logs_and_follow(kcluster):
    import subprocess
    cl = kcluster
    cmd = ["/bin/sh", "-c", "echo one; echo two; while [ ! -e /tmp/stop ]; do sleep 0.1; done; "
           "echo three; exit 4"]
    cl.pod("talk", command=cmd, restart="OnFailure")
    pod = cl.wait_pod("talk", running_ready)
    wait_for(lambda: cl.api.kubectl("logs", "talk").stdout == "one\ntwo\n", timeout=10 * SLOW,
             what="kubectl logs")
    assert cl.api.kubectl("logs", "talk", "--tail=1").stdout == "two\n"
    env = dict(os.environ, KUBECONFIG=cl.api.kubeconfig)
    f = subprocess.Popen([KUBECTL, "--cache-dir", cl.api.kubectl_cache, "logs", "-f", "talk"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f.stdout.readline() == "one\n"
        assert f.stdout.readline() == "two\n"
        assert nsenter(container_pid(pod), "touch", "/tmp/stop").returncode == 0
        assert f.stdout.readline() == "three\n"
        f.wait(20 * SLOW)     # the stream ends when the container stops
    finally:
        f.kill()
        f.wait()
    # OnFailure: exit 4 restarts it; --previous shows the first run
    cl.wait_pod("talk", lambda p: cstatus(p).get("restartCount") == 1 and running_ready(p))
    assert cl.api.kubectl("logs", "talk", "--previous").stdout == "one\ntwo\nthree\n"
    bad = cl.api.kubectl("logs", "talk", "-c", "nope", check=False)
    assert bad.returncode != 0 and "container nope is not valid for pod talk" in bad.stderr


@needs_kubectl
def test_kubectl_exec_runs_in_the_container(kcluster):
    cl = kcluster
    cl.claim("www-web-0")
    cl.pod("web-0", claim="www-web-0", command=["sleep", "1000"])
    cl.wait_pod("web-0", running_ready)
    assert cl.api.kubectl("exec", "web-0", "--", "hostname").stdout == "web-0\n"
    r = cl.api.kubectl("exec", "web-0", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3",
                       check=False)
    assert (r.returncode, r.stdout, r.stderr.splitlines()[0]) == (3, "out\n", "err")
    r = cl.api.kubectl("exec", "-i", "web-0", "--", "/bin/sh", "-c", "cat > /data/in; cat /data/in",
                       input="hello from stdin\n")
    assert r.stdout == "hello from stdin\n"
    data = cl.nodes["node-1"].data_dir("default", "www-web-0")
    assert open(os.path.join(data, "in")).read() == "hello from stdin\n"
    bad = cl.api.kubectl("exec", "web-0", "-c", "nope", "--", "true", check=False)
    assert bad.returncode != 0 and "container nope is not valid for pod web-0" in bad.stderr
    # kubectl delete waits for the kubelet to finish (graceful deletion) before it returns
    assert cl.api.kubectl("delete", "pod", "web-0").stdout == 'pod "web-0" deleted\n'
    assert cl.get_pod("web-0") is None
    assert not mounts_under(cl.nodes["node-1"].kubelet_dir)


def test_pod_waits_for_its_claim_and_gets_pod_info_in_the_volume_context(kcluster):
    import json
    cl = kcluster
    cl.claim("late", node=None)        # WaitForFirstConsumer: no node selected yet
    pod = cl.pod("late", claim="late", command=["sleep", "1000"],
                 extra={"serviceAccountName": "builder"})
    p = cl.wait_pod("late", lambda p: condition(p, "PodReadyToStartContainers").get(
        "status") == "False", what="the kubelet's status while the claim is unbound")
    assert p["status"]["phase"] == "Pending"
    assert cstatus(p)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert cl.client.get("persistentvolumeclaims", "late")["status"]["phase"] == "Pending"
    assert mounts_under(cl.nodes["node-1"].dir) == []
    # the scheduler's part: select the node; the provisioner binds, the kubelet goes on
    cl.client.patch("persistentvolumeclaims", "late", {"metadata": {"annotations": {
        "volume.kubernetes.io/selected-node": "node-1"}}})
    cl.wait_pod("late", running_ready)
    pv = bound_pv(cl, "late")
    line = [ln for ln in cl.api.log().splitlines() if "NodePublishVolume" in ln][0]
    ctx = json.loads(line.split("volume_context=", 1)[1])
    want = dict(pv["spec"]["csi"]["volumeAttributes"])
    want.update({"csi.storage.k8s.io/pod.name": "late",
                 "csi.storage.k8s.io/pod.namespace": "default",
                 "csi.storage.k8s.io/pod.uid": pod["metadata"]["uid"],
                 "csi.storage.k8s.io/serviceAccount.name": "builder",
                 "csi.storage.k8s.io/ephemeral": "false"})
    assert ctx == want


def test_missing_config_map_is_a_config_error_until_it_exists(kcluster):
    cl = kcluster
    env = [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg",
                                                                  "key": "greeting"}}}]
    cl.claim("out")
    cl.pod("cfg", claim="out", command=["/bin/sh", "-c", 'echo "$GREETING" > /data/g; '
                                        'exec sleep 1000'], env=env)
    p = cl.wait_pod("cfg", lambda p: (cstatus(p).get("state", {}).get("waiting") or {}).get(
        "reason") == "CreateContainerConfigError", what="CreateContainerConfigError")
    assert "couldn't find key greeting in ConfigMap default/cfg" in \
        cstatus(p)["state"]["waiting"]["message"]
    cl.client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "cfg"}, "data": {"greeting": "hi"}})
    cl.wait_pod("cfg", running_ready)
    g = os.path.join(cl.nodes["node-1"].data_dir("default", "out"), "g")
    wait_for(lambda: os.path.exists(g) and open(g).read() == "hi\n", timeout=10 * SLOW)


def test_read_only_mount_sub_path_and_working_dir(kcluster):
    cl = kcluster
    cl.claim("vol")
    script = ("pwd > /rw/pwd; touch /ro/x 2>/rw/ro-err || echo refused >> /rw/ro-result; "
              "touch /usr/x 2>/dev/null || echo refused >> /rw/usr-result; exec sleep 1000")
    c = {"name": "main", "image": "busybox", "command": ["/bin/sh", "-c", script],
         "workingDir": "/srv/work/here",
         "volumeMounts": [{"name": "www", "mountPath": "/rw", "subPath": "sub"},
                          {"name": "www", "mountPath": "/ro", "readOnly": True}]}
    cl.pod("mounts", containers=[c], extra={"volumes": [
        {"name": "www", "persistentVolumeClaim": {"claimName": "vol"}}]})
    cl.wait_pod("mounts", running_ready)
    sub = os.path.join(cl.nodes["node-1"].data_dir("default", "vol"), "sub")
    wait_for(lambda: os.path.exists(os.path.join(sub, "usr-result")) and
             read(os.path.join(sub, "usr-result")).endswith("\n"), timeout=10 * SLOW,
             what="the container's results")
    assert open(os.path.join(sub, "pwd")).read() == "/srv/work/here\n"
    assert open(os.path.join(sub, "ro-result")).read() == "refused\n"
    assert "Read-only file system" in open(os.path.join(sub, "ro-err")).read()
    assert open(os.path.join(sub, "usr-result")).read() == "refused\n"
    assert not os.path.exists("/srv/work")


def test_pod_with_a_path_like_volume_name_is_refused(kcluster):
    from kubelet_fixtures import ApiError
    cl = kcluster
    with pytest.raises(ApiError) as e:
        cl.pod("evil", containers=[{"name": "main", "image": "busybox"}], extra={
            "volumes": [{"name": "../../../x", "emptyDir": {}}]})
    assert e.value.status == 422
    cause = e.value.body["details"]["causes"][0]
    assert cause["field"] == "spec.volumes[0].name"
    assert "a lowercase RFC 1123 label must consist of" in cause["message"]
    with pytest.raises(ApiError) as e:
        cl.pod("evil", containers=[{"name": "Main/..", "image": "busybox"}])
    assert e.value.body["details"]["causes"][0]["field"] == "spec.containers[0].name"
    assert cl.get_pod("evil") is None


def test_deletion_waits_for_ordinal_csi_killed_and_restarted(kcluster):
    import signal
    cl = kcluster
    node = cl.nodes["node-1"]
    cl.claim("www-web-0")
    pod = cl.pod("web-0", claim="www-web-0", command=["sleep", "1000"], grace=1)
    cl.wait_pod("web-0", running_ready)
    pv = bound_pv(cl, "www-web-0")
    tg = target(node, pod["metadata"]["uid"], pv["metadata"]["name"])
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()
    cl.client.delete("pods", "web-0")
    # the kubelet stops the container, then waits for the driver: the pod stays Terminating
    cl.wait_pod("web-0", lambda p: p["status"]["phase"] in ("Failed", "Succeeded"),
                what="containers stopped, final status written")
    assert is_mounted(tg)
    node.start_csi(cl.api.kubeconfig)
    cl.wait_gone("web-0", timeout=30)
    assert not is_mounted(tg)
    assert not is_mounted(staging(node, pv["spec"]["csi"]["volumeHandle"]))


def test_init_containers_run_first_and_in_order(kcluster):
    cl = kcluster
    cl.claim("vol")
    data = cl.nodes["node-1"].data_dir("default", "vol")
    mount = [{"name": "www", "mountPath": "/data"}]
    inits = [{"name": "wait", "image": "busybox", "volumeMounts": mount, "command": [
                 "/bin/sh", "-c", "until [ -e /data/go ]; do sleep 0.1; done; echo wait >> "
                 "/data/order"]},
             {"name": "second", "image": "busybox", "volumeMounts": mount,
              "command": ["/bin/sh", "-c", "echo second >> /data/order"]}]
    main = {"name": "main", "image": "busybox", "volumeMounts": mount,
            "command": ["/bin/sh", "-c", "echo main >> /data/order; exec sleep 1000"]}
    cl.pod("init", containers=[main], extra={"initContainers": inits, "volumes": [
        {"name": "www", "persistentVolumeClaim": {"claimName": "vol"}}]})
    p = cl.wait_pod("init", lambda p: "running" in ((p["status"].get(
        "initContainerStatuses") or [{}])[0].get("state") or {}), what="first init running")
    init_cond = condition(p, "Initialized")
    assert (init_cond["status"], init_cond["reason"]) == ("False", "ContainersNotInitialized")
    assert init_cond["message"] == "containers with incomplete status: [wait second]"
    assert p["status"]["phase"] == "Pending"
    assert cstatus(p)["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert pod_row(cl, "init")[:3] == ["init", "0/1", "Init:0/2"]
    open(os.path.join(data, "go"), "w").close()
    p = cl.wait_pod("init", running_ready, what="Running after the init containers")
    assert condition(p, "Initialized")["status"] == "True"
    for st in p["status"]["initContainerStatuses"]:
        assert st["state"]["terminated"]["reason"] == "Completed" and st["ready"] is True
    wait_for(lambda: open(os.path.join(data, "order")).read().split() == [
        "wait", "second", "main"], timeout=10 * SLOW, what="init, init, main in order")


def test_failed_init_container_with_restart_never_fails_the_pod(kcluster):
    cl = kcluster
    inits = [{"name": "setup", "image": "busybox", "command": ["/bin/sh", "-c", "exit 7"]}]
    main = {"name": "main", "image": "busybox", "command": ["sleep", "1000"]}
    cl.pod("bad-init", containers=[main], restart="Never", extra={"initContainers": inits})
    p = cl.wait_pod("bad-init", lambda p: p["status"]["phase"] == "Failed", what="Failed")
    st = p["status"]["initContainerStatuses"][0]
    assert st["state"]["terminated"]["exitCode"] == 7 and st["restartCount"] == 0
    assert cstatus(p)["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert pod_row(cl, "bad-init")[:3] == ["bad-init", "0/1", "Init:Error"]


def test_shorter_grace_period_on_a_second_delete_shortens_the_wait(kcluster):
    cl = kcluster
    cl.pod("slow", command=["sleep", "1000"], grace=60)   # PID 1 ignores SIGTERM
    p = cl.wait_pod("slow", running_ready)
    pid = container_pid(p)
    cl.client.delete("pods", "slow")
    p = cl.get_pod("slow")
    assert p["metadata"]["deletionGracePeriodSeconds"] == 60
    cl.client.delete("pods", "slow", gracePeriodSeconds=1)
    assert cl.get_pod("slow")["metadata"]["deletionGracePeriodSeconds"] == 1
    cl.wait_gone("slow", timeout=20)      # long before the first 60 s
    wait_for(lambda: not pid_alive(pid), timeout=5 * SLOW, what="the container killed")


def test_two_containers_stop_together_within_the_grace_period(kcluster):
    cl = kcluster
    quick = {"name": "quick", "image": "busybox", "command": [
        "/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]}
    stubborn = {"name": "stubborn", "image": "busybox", "command": ["sleep", "1000"]}
    cl.pod("two", containers=[quick, stubborn], grace=2)
    p = cl.wait_pod("two", running_ready)
    assert pod_row(cl, "two")[:2] == ["two", "2/2"]
    cl.client.delete("pods", "two")
    final = []
    w = cl.client.watch("pods", name="two", resourceVersion=p["metadata"]["resourceVersion"])
    while True:
        ev = w.next_event(timeout=30 * SLOW)
        assert ev is not None
        if ev["type"] == "DELETED":
            break
        final.append(ev["object"])
    w.close()
    last = final[-1]["status"]
    codes = {c["name"]: c["state"]["terminated"]["exitCode"] for c in last["containerStatuses"]}
    assert codes == {"quick": 0, "stubborn": 137}    # SIGTERM handled; SIGKILL at 2 s
    assert last["phase"] == "Failed"


def test_stand_in_images_see_their_script_wherever_the_checkout_is():
    """The private /tmp of a container must not hide deploy/sandbox (a checkout under /tmp,
    as a CI clone may be): its folder is bound read-only after the /tmp tmpfs."""
    import containers
    spec = containers.Spec("web", containers.web_argv("127.0.0.9"), {}, "web-0", [], None, "/",
                           os.devnull)
    argv = spec.bwrap_argv(3)
    here = os.path.dirname(containers.SELF)
    tmpfs = argv.index("/tmp", argv.index("--tmpfs", argv.index("--proc")))
    binds = [i for i in range(len(argv) - 2)
             if argv[i] == "--ro-bind" and argv[i + 1] == here and argv[i + 2] == here]
    assert binds and binds[0] > tmpfs, argv
    assert containers.SELF in spec.argv


def test_pod_ip_pool_skips_an_address_another_process_serves_on():
    """A pod IP is never handed out while some process listens on any port of it (a process
    of another sandbox's pod that outlived its reservation): the pod's own servers (a probe
    on 9808) would fail with EADDRINUSE. Free addresses are still taken and held."""
    import socket
    import kubelet
    pool = kubelet._IPs()
    first = pool.take()
    pool.release(first)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((first, 9808))
    squatter.listen()
    try:
        pool = kubelet._IPs()
        ip = pool.take()
        assert ip != first
        # the address taken is held: a second pool (another sandbox) cannot take it
        other = kubelet._IPs()
        assert other.take() not in (ip, first)
    finally:
        squatter.close()


def test_pod_ip_pool_never_returns_a_wanted_address_it_cannot_hold():
    """A kubelet started again asks for its pod's old IP; when another sandbox took that
    address meanwhile (this one had released it), the pod gets a new one, never the address
    the other sandbox's pod serves on."""
    import kubelet
    mine = kubelet._IPs()
    old = mine.take()
    mine.release(old)
    other = kubelet._IPs()
    theirs = other.take()
    assert theirs == old, "the released address is free for the other sandbox"
    try:
        again = mine.take(want=old)
        assert again != old
        assert again.startswith("127.")
        # the new address is held: the other sandbox cannot take it either
        assert other.take() != again
        # and the old one is still the other sandbox's: asking for it again changes nothing
        assert mine.take(want=old) not in (old, again)
    finally:
        other.release(theirs)


def test_pod_ip_pool_parks_a_stopped_kubelets_addresses_for_their_pods():
    """While a node's kubelet is stopped its pods' addresses stay reserved for those pods
    (another sandbox on the machine cannot take them); the pod gets its own back, nobody
    else does, and what is parked for a pod deleted meanwhile goes back to the pool."""
    import kubelet
    mine = kubelet._IPs()
    other = kubelet._IPs()
    a, b = mine.take(owner="uid-a"), mine.take(owner="uid-b")
    mine.park(a, "uid-a", "node-1")
    mine.park(b, "uid-b", "node-1")
    taken = [other.take() for _ in range(4)]
    try:
        assert a not in taken and b not in taken, "parked addresses stay reserved"
        assert mine.take(want=a, owner="uid-other") != a, "only its pod gets it back"
        assert mine.take(want=a, owner="uid-a") == a
        # uid-b was deleted while the kubelet was stopped: its address is freed
        mine.release_parked("node-1", keep={"uid-a"})
        assert b not in mine.used and b not in mine.parked
        held = other._reserve(b)
        assert held is not None, "the freed address can be reserved by another sandbox"
        for sock in held:
            sock.close()
    finally:
        for ip in taken:
            other.release(ip)
