"""The daemon's built-in provisioner against the fake API server: claims become bound PVs of the
right shape, only on their node, released as the reclaim policy says, through faults, crashes
and restarts, with no duplicate and no leak; leader election in controller mode.

Each test starts the fake API server (fixture `apiserver`, in-process PV binder and protection
controllers on) and one or more `ordinal-csi --mode node --kubeconfig ...` daemons on temporary
roots. The tests act as the scheduler: they set `volume.kubernetes.io/selected-node`.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from fakeapi import ApiError, wait_for

SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BINARY = os.environ.get("ORDINAL_CSI") or os.path.join(SOURCE, "build", "debug", "ordinal-csi")
VALGRIND = os.environ.get("ORDINAL_VALGRIND") == "1"
SLOW = 10.0 if VALGRIND else 3.0 if os.environ.get("ORDINAL_SANITIZE") else 1.0
DRIVER = "ordinal.csi.dev"
TOPOLOGY_KEY = "topology.ordinal.csi.dev/node"
SELECTED = "volume.kubernetes.io/selected-node"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's root needs root")


class Node:
    """One ordinal-csi in node mode, talking to the fake API server."""

    def __init__(self, apiserver, name, extra=()):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="ordinal-k8s-%s-" % name)
        self.root = os.path.join(self.dir, "root")
        os.makedirs(self.root)
        self.sock = os.path.join(self.dir, "csi.sock")
        self.log = os.path.join(self.dir, "daemon.log")
        self.apiserver = apiserver
        self.extra = list(extra)
        self.proc = None
        self.start()

    def argv(self):
        vg = []
        if VALGRIND:
            # any memory error or definite/indirect leak makes the daemon exit 97: stop() fails
            vg = ["valgrind", "--quiet", "--error-exitcode=97", "--leak-check=full",
                  "--show-leak-kinds=definite,indirect",
                  "--errors-for-leak-kinds=definite,indirect",
                  "--log-file=" + os.path.join(self.dir, "valgrind.%p.log")]
        return vg + [BINARY, "--endpoint", "unix://" + self.sock, "--node-id", self.name,
                "--dir-root", self.root, "--kubeconfig", self.apiserver.kubeconfig,
                "--log-level", "debug"] + self.extra

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        wait_for(lambda: "provisioner started" in self.log_text() or self.proc.poll() is not None,
                 timeout=20 * SLOW, what="provisioner start")
        assert self.proc.poll() is None, self.log_text()[-3000:]

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(30 * SLOW)
            assert rc == 0, "ordinal-csi exit %d\n%s\n%s" % (rc, self.log_text()[-3000:],
                                                            self.valgrind_text())
        self.proc = None

    def valgrind_text(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("valgrind."):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append(f.read()[-4000:])
        return "\n".join(out)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text, after=0, timeout=20):
        """Wait until the daemon's log holds text (past offset `after`): the daemon has got that
        far. Returns the offset just past the line."""
        def found():
            i = self.log_text().find(text, after)
            return i + len(text) if i >= 0 else None
        try:
            return wait_for(found, timeout=timeout * SLOW, what="log line %r" % text)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.log_text()[-3000:]))

    def volume_dirs(self):
        """Claim-keyed volume directories on this node: ["ns/claim", ...]."""
        out = []
        for ns in sorted(os.listdir(self.root)):
            if ns.startswith(".") or ns == "_":
                continue
            for claim in sorted(os.listdir(os.path.join(self.root, ns))):
                out.append("%s/%s" % (ns, claim))
        return out

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def nodes(apiserver):
    made = []

    def make(name, extra=()):
        n = Node(apiserver, name, extra)
        made.append(n)
        return n

    yield make
    errors = []
    for n in made:
        try:
            n.cleanup()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, errors


def storage_class(api, name="ordinal", binding="WaitForFirstConsumer", reclaim="Delete",
                  params=None):
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
          "metadata": {"name": name}, "provisioner": DRIVER, "reclaimPolicy": reclaim,
          "volumeBindingMode": binding, "parameters": params or {}}
    return api.client.create("storageclasses", sc, ns=None)


def claim(api, name, size="64Mi", cls="ordinal", node=None, ns="default"):
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                    "resources": {"requests": {"storage": size}}}}
    if node:
        pvc["metadata"]["annotations"] = {SELECTED: node}
    return api.client.create("persistentvolumeclaims", pvc, ns=ns)


def select_node(api, name, node, ns="default"):
    api.client.patch("persistentvolumeclaims", name,
                     {"metadata": {"annotations": {SELECTED: node}}}, ns=ns)


def retrying(fn, tries=50):
    """fn() again while the server answers with an injected 5xx/429."""
    for i in range(tries):
        try:
            return fn()
        except ApiError as e:
            if e.status not in (429, 500, 503, 504) or i == tries - 1:
                raise
            time.sleep(0.02)


def get_claim(api, name, ns="default"):
    return retrying(lambda: api.client.get("persistentvolumeclaims", name, ns=ns))


def wait_bound(api, name, ns="default", timeout=20):
    def bound():
        c = get_claim(api, name, ns)
        return c if c.get("status", {}).get("phase") == "Bound" else None
    return wait_for(bound, timeout=timeout * SLOW, what="claim %s Bound" % name)


def pvs(api):
    return retrying(lambda: api.client.list("persistentvolumes", ns=None))["items"]


def test_claim_becomes_bound_pv_of_the_right_shape(apiserver, nodes):
    n1 = nodes("node-1")
    storage_class(apiserver, params={"csi.storage.k8s.io/fstype": "ext4"})
    c = claim(apiserver, "www-web-0", size="100Mi", node="node-1")
    bound = wait_bound(apiserver, "www-web-0")
    pvname = "pvc-" + c["metadata"]["uid"]
    assert bound["spec"]["volumeName"] == pvname
    pv = apiserver.client.get("persistentvolumes", pvname, ns=None)
    spec = pv["spec"]
    assert spec["csi"]["driver"] == DRIVER
    assert spec["csi"]["volumeHandle"] == "dir:default/www-web-0"
    assert spec["csi"]["fsType"] == "ext4"
    assert spec["csi"]["volumeAttributes"]["ordinal.csi.dev/key"] == "default/www-web-0"
    assert "storage.kubernetes.io/csiProvisionerIdentity" in spec["csi"]["volumeAttributes"]
    assert spec["capacity"]["storage"] == "100Mi"
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["volumeMode"] == "Filesystem"
    assert spec["storageClassName"] == "ordinal"
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    ref = spec["claimRef"]
    assert (ref["namespace"], ref["name"], ref["uid"]) == ("default", "www-web-0",
                                                           c["metadata"]["uid"])
    terms = spec["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": TOPOLOGY_KEY, "operator": "In",
                                            "values": ["node-1"]}]}]
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == DRIVER
    assert "ordinal.csi.dev/volume-protection" in pv["metadata"]["finalizers"]
    assert pv["status"]["phase"] == "Bound"
    # the provisioning finalizer is gone from the bound claim
    wait_for(lambda: "ordinal.csi.dev/provisioning" not in
             get_claim(apiserver, "www-web-0")["metadata"].get("finalizers", []),
             timeout=10 * SLOW, what="provisioning finalizer removed")
    assert n1.volume_dirs() == ["default/www-web-0"]
    assert os.path.isdir(os.path.join(n1.root, "default", "www-web-0", "data"))
    # events are recorded asynchronously, the last after the finalizer is removed
    def reasons():
        events = apiserver.client.list("events", ns="default")["items"]
        got = [e["reason"] for e in events if e["involvedObject"]["name"] == "www-web-0"]
        return got if "Provisioning" in got and "ProvisioningSucceeded" in got else None
    wait_for(reasons, timeout=10 * SLOW, what="Provisioning and ProvisioningSucceeded events")


def test_wait_for_first_consumer_waits_for_selected_node(apiserver, nodes):
    n1 = nodes("node-1")
    storage_class(apiserver)
    claim(apiserver, "www-web-0")
    # the daemon has seen the claim and decided to wait (for the scheduler to pick a node and
    # the PV controller to hand the claim over)
    n1.wait_log("claim default/www-web-0: not handed to %s yet: waiting" % DRIVER)
    c = get_claim(apiserver, "www-web-0")
    assert c["status"]["phase"] == "Pending"
    assert pvs(apiserver) == []
    assert n1.volume_dirs() == []
    select_node(apiserver, "www-web-0", "node-1")
    wait_bound(apiserver, "www-web-0")
    assert n1.volume_dirs() == ["default/www-web-0"]


def test_two_nodes_provision_only_their_own_claims(apiserver, nodes):
    n1, n2 = nodes("node-1"), nodes("node-2")
    storage_class(apiserver)
    for i in range(4):
        claim(apiserver, "www-web-%d" % i, node="node-%d" % (1 + i % 2))
    for i in range(4):
        wait_bound(apiserver, "www-web-%d" % i)
    assert n1.volume_dirs() == ["default/www-web-0", "default/www-web-2"]
    assert n2.volume_dirs() == ["default/www-web-1", "default/www-web-3"]
    for pv in pvs(apiserver):
        node = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0][
            "matchExpressions"][0]["values"][0]
        i = int(pv["spec"]["claimRef"]["name"].rsplit("-", 1)[1])
        assert node == "node-%d" % (1 + i % 2)
    assert len(pvs(apiserver)) == 4


def test_immediate_binding_one_node_wins(apiserver, nodes):
    n1, n2 = nodes("node-1"), nodes("node-2")
    storage_class(apiserver, binding="Immediate")
    for i in range(3):
        claim(apiserver, "data-%d" % i)
    for i in range(3):
        wait_bound(apiserver, "data-%d" % i)
    all_dirs = n1.volume_dirs() + n2.volume_dirs()
    assert sorted(all_dirs) == ["default/data-0", "default/data-1", "default/data-2"]
    for i in range(3):
        c = get_claim(apiserver, "data-%d" % i)
        owner = c["metadata"]["annotations"][SELECTED]
        node = n1 if owner == "node-1" else n2
        assert "default/data-%d" % i in node.volume_dirs()
    assert len(pvs(apiserver)) == 3


def delete_claim(api, name, ns="default"):
    api.client.delete("persistentvolumeclaims", name, ns=ns)


def test_claim_deleted_with_delete_policy_removes_data_and_pv(apiserver, nodes):
    n1 = nodes("node-1")
    storage_class(apiserver)
    claim(apiserver, "www-web-0", node="node-1")
    wait_bound(apiserver, "www-web-0")
    data = os.path.join(n1.root, "default", "www-web-0", "data", "index.html")
    with open(data, "w") as f:
        f.write("hello\n")
    delete_claim(apiserver, "www-web-0")
    wait_for(lambda: pvs(apiserver) == [], timeout=20 * SLOW, what="PV deleted")
    wait_for(lambda: n1.volume_dirs() == [], timeout=10 * SLOW, what="backing store deleted")
    assert not apiserver.client.exists("persistentvolumeclaims", "www-web-0")


def test_claim_deleted_with_retain_keeps_data_and_pv_and_comes_back(apiserver, nodes):
    n1 = nodes("node-1")
    storage_class(apiserver, reclaim="Retain")
    first = claim(apiserver, "www-web-0", node="node-1")
    wait_bound(apiserver, "www-web-0")
    data = os.path.join(n1.root, "default", "www-web-0", "data", "index.html")
    with open(data, "w") as f:
        f.write("retained\n")
    delete_claim(apiserver, "www-web-0")
    pvname = "pvc-" + first["metadata"]["uid"]
    wait_for(lambda: apiserver.client.get("persistentvolumes", pvname, ns=None)["status"]
             ["phase"] == "Released", timeout=20 * SLOW, what="PV Released")
    # the daemon has seen the Released PV and decided to keep its volume
    n1.wait_log("PersistentVolume %s: policy Retain, phase Released: volume kept" % pvname)
    pv = apiserver.client.get("persistentvolumes", pvname, ns=None)
    assert pv["status"]["phase"] == "Released"
    assert "ordinal.csi.dev/volume-protection" not in pv["metadata"].get("finalizers", [])
    assert open(data).read() == "retained\n"
    # The StatefulSet comes back: a new claim with the same name gets the retained volume.
    second = claim(apiserver, "www-web-0", node="node-1")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    bound = wait_bound(apiserver, "www-web-0")
    assert bound["spec"]["volumeName"] == pvname
    assert len(pvs(apiserver)) == 1
    assert open(data).read() == "retained\n"


def test_pod_deletion_changes_nothing(apiserver, nodes):
    n1 = nodes("node-1")
    storage_class(apiserver)
    claim(apiserver, "www-web-0", node="node-1")
    bound = wait_bound(apiserver, "www-web-0")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-0", "namespace": "default"},
           "spec": {"nodeName": "node-1",
                    "containers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "www",
                                 "persistentVolumeClaim": {"claimName": "www-web-0"}}]}}
    apiserver.client.create("pods", pod)
    pv_before = apiserver.client.get("persistentvolumes", bound["spec"]["volumeName"], ns=None)
    apiserver.client.delete("pods", "web-0")
    wait_for(lambda: not apiserver.client.exists("pods", "web-0"), timeout=10 * SLOW,
             what="pod gone")
    # The controllers have handled the deletion, and the daemon has provisioned a claim made
    # after it (its caches are past the deletion and whatever it caused).
    apiserver.controllers_caught_up()
    claim(apiserver, "marker", node="node-1")
    wait_bound(apiserver, "marker")
    apiserver.controllers_caught_up()
    pv_after = apiserver.client.get("persistentvolumes", bound["spec"]["volumeName"], ns=None)
    assert pv_after["metadata"]["resourceVersion"] == pv_before["metadata"]["resourceVersion"]
    assert get_claim(apiserver, "www-web-0")["status"]["phase"] == "Bound"
    assert n1.volume_dirs() == ["default/marker", "default/www-web-0"]


def test_claim_deleted_mid_provisioning_leaves_nothing(apiserver, nodes):
    n1 = nodes("node-1")
    storage_class(apiserver)
    # Slow every API call so that the deletion lands while the volume is being made.
    apiserver.fault(latency_ms=150)
    for i in range(3):
        claim(apiserver, "gone-%d" % i, node="node-1")
    # begun: a volume is made (the store carries the claim's provisioning mark; claims of a
    # backend without marks carry the provisioning finalizer instead)
    wait_for(lambda: n1.volume_dirs() or any(
        "ordinal.csi.dev/provisioning" in
        get_claim(apiserver, "gone-%d" % i)["metadata"].get("finalizers", [])
        for i in range(3)), timeout=20 * SLOW, what="provisioning started")
    for i in range(3):
        delete_claim(apiserver, "gone-%d" % i)
    apiserver.reset_faults()

    def settled():
        return (all(not retrying(lambda: apiserver.client.exists("persistentvolumeclaims",
                                                                  "gone-%d" % i))
                    for i in range(3)) and pvs(apiserver) == [] and n1.volume_dirs() == [])
    wait_for(settled, timeout=30 * SLOW, what="claims, PVs and volumes all gone")


def converged(api, node_list, names):
    """Every claim Bound to its own PV, one PV per claim, one volume per claim."""
    for name in names:
        c = get_claim(api, name)
        if c.get("status", {}).get("phase") != "Bound":
            return False
    all_pvs = pvs(api)
    if len(all_pvs) != len(names):
        return False
    dirs = sorted(d for n in node_list for d in n.volume_dirs())
    return dirs == sorted("default/" + n for n in names)


@pytest.mark.parametrize("fault", [
    {"error_rate": 30, "error_code": 500},
    {"error_rate": 30, "error_code": 429, "retry_after": 1},
    {"drop_watches": True},
    {"expire_next_watch": 3},
    {"conflict_next_update": 5},
])
def test_faults_converge_without_duplicate_or_leak(apiserver, nodes, fault):
    n1 = nodes("node-1")
    storage_class(apiserver)
    names = ["www-web-%d" % i for i in range(5)]
    opened = apiserver.faults()["watches_opened"]
    apiserver.fault(**fault)
    for name in names:
        for _ in range(20):  # the test's own writes may hit the injected errors too
            try:
                claim(apiserver, name, node="node-1")
                break
            except ApiError as e:
                if e.status == 409:
                    break
                time.sleep(0.05)
    if fault.get("drop_watches"):
        # once the daemon has opened its three watches (classes, PVs, claims) again, cut them
        # again while the claims are being provisioned
        wait_for(lambda: apiserver.faults()["watches_opened"] >= opened + 3,
                 timeout=20 * SLOW, what="watches re-opened")
        apiserver.fault(drop_watches=True)
    wait_for(lambda: converged(apiserver, [n1], names), timeout=60 * SLOW,
             what="convergence under %s" % fault)
    apiserver.reset_faults()
    # and releasing under the same fault leaves nothing behind
    apiserver.fault(**fault)
    for name in names:
        for _ in range(20):
            try:
                delete_claim(apiserver, name)
                break
            except ApiError as e:
                if e.status == 404:
                    break
                time.sleep(0.05)
    wait_for(lambda: pvs(apiserver) == [] and n1.volume_dirs() == [], timeout=60 * SLOW,
             what="release under %s" % fault)


def test_kill9_and_restart_mid_way_converges(apiserver, nodes):
    n1 = nodes("node-1")
    storage_class(apiserver)
    names = ["www-web-%d" % i for i in range(8)]
    apiserver.fault(latency_ms=40)
    for i, name in enumerate(names):
        claim(apiserver, name, node="node-1")
        if i in (2, 5):
            # kill -9 mid-way: once the daemon has begun on this claim (its finalizer is set)
            wait_for(lambda: "ordinal.csi.dev/provisioning" in get_claim(apiserver, name)[
                "metadata"].get("finalizers", []) or
                get_claim(apiserver, name)["status"].get("phase") == "Bound",
                timeout=20 * SLOW, what="provisioning of %s begun" % name)
            n1.kill9()
            n1.start()
    apiserver.reset_faults()
    wait_for(lambda: converged(apiserver, [n1], names), timeout=60 * SLOW,
             what="convergence after kill -9")
    # every PV name is the one of its claim: nothing made twice
    for pv in pvs(apiserver):
        c = get_claim(apiserver, pv["spec"]["claimRef"]["name"])
        assert pv["metadata"]["name"] == "pvc-" + c["metadata"]["uid"]


def lease_holder(api, ns="default", name="ordinal-csi-dev"):
    try:
        lease = api.client.get("leases", name, ns=ns)
    except ApiError:
        return None
    return lease["spec"].get("holderIdentity") or None


def controller(apiserver, name, tmpdir):
    sock = os.path.join(tmpdir, name + ".sock")
    log = open(os.path.join(tmpdir, name + ".log"), "ab")
    p = subprocess.Popen([BINARY, "--mode", "controller", "--endpoint", "unix://" + sock,
                          "--node-id", name, "--kubeconfig", apiserver.kubeconfig,
                          "--leader-election-namespace", "default", "--log-level", "debug"],
                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return p


def test_leader_election_hands_over_when_the_leader_dies(apiserver, tmp_path):
    a = controller(apiserver, "ctrl-a", str(tmp_path))
    leader = wait_for(lambda: lease_holder(apiserver), timeout=20 * SLOW, what="a leader")
    assert leader == "ctrl-a"
    b = controller(apiserver, "ctrl-b", str(tmp_path))
    blog = str(tmp_path / "ctrl-b.log")
    waiting = "leader election: lease default/ordinal-csi-dev is held by ctrl-a; ctrl-b waits"
    wait_for(lambda: waiting in open(blog, errors="replace").read(), timeout=20 * SLOW,
             what="ctrl-b to see the lease held")
    assert lease_holder(apiserver) == "ctrl-a"
    lease = apiserver.client.get("leases", "ordinal-csi-dev", ns="default")
    duration = lease["spec"]["leaseDurationSeconds"]
    a.send_signal(signal.SIGKILL)
    a.wait()
    died = time.monotonic()
    wait_for(lambda: lease_holder(apiserver) == "ctrl-b", timeout=40 * SLOW,
             what="ctrl-b takes over")
    took = time.monotonic() - died
    # expiry (the lease duration, judged from when b last saw it renewed) plus one retry period
    # with jitter (5 s x 1.2)
    assert took <= duration + 6.5, "hand-over took %.1f s" % took
    print("leader hand-over after kill -9: %.1f s (lease duration %d s)" % (took, duration))
    # a clean shutdown releases at once
    b.send_signal(signal.SIGTERM)
    assert b.wait(20) == 0
    wait_for(lambda: lease_holder(apiserver) is None, timeout=5, what="lease released")


def test_out_of_space_gives_the_claim_back_to_the_scheduler(apiserver, nodes):
    """RESOURCE_EXHAUSTED on the selected node: the annotation is removed so that the scheduler
    can choose again, a ProvisioningFailed event says why, nothing is left behind."""
    n1 = nodes("node-1")
    storage_class(apiserver)
    claim(apiserver, "huge-0", size="1000Ti", node="node-1")

    def reset():
        # two writes: the annotation goes, then the provisioning finalizer
        c = get_claim(apiserver, "huge-0")
        return c if SELECTED not in c["metadata"].get("annotations", {}) and \
            "ordinal.csi.dev/provisioning" not in c["metadata"].get("finalizers", []) else None
    try:
        c = wait_for(reset, timeout=20 * SLOW, what="selected-node and finalizer removed")
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, n1.log_text()[-4000:]))
    assert c["status"]["phase"] == "Pending"
    assert "ordinal.csi.dev/provisioning" not in c["metadata"].get("finalizers", [])
    def failed_events():  # recorded asynchronously
        events = retrying(lambda: apiserver.client.list("events", ns="default"))["items"]
        return [e for e in events if e["involvedObject"]["name"] == "huge-0" and
                e["reason"] == "ProvisioningFailed"]
    failed = wait_for(failed_events, timeout=10 * SLOW, what="a ProvisioningFailed event")
    assert "RESOURCE_EXHAUSTED" in failed[0]["message"], failed
    assert pvs(apiserver) == []
    assert n1.volume_dirs() == []


@pytest.mark.parametrize("reclaim", ["Retain", "Delete"])
def test_claim_recreated_at_once_never_gets_two_pvs(apiserver, nodes, reclaim):
    """A claim deleted and created again under the same name at once (a StatefulSet deleted and
    re-applied): the provisioner sees the new claim while the old PV is not yet Released in its
    cache. One volume never gets two PVs; Retain gives the old data back, Delete gives a fresh
    volume once the old one is gone."""
    n1 = nodes("node-1")
    storage_class(apiserver, reclaim=reclaim)
    for rnd in range(3):
        claim(apiserver, "www-web-0", node="node-1")
        bound = wait_bound(apiserver, "www-web-0")
        data = os.path.join(n1.root, "default", "www-web-0", "data", "round")
        if reclaim == "Delete" or rnd == 0:
            with open(data, "w") as f:
                f.write(str(rnd))
        # Cut the daemon's watches so that its caches catch up in any order: the claim cache
        # may show the new claim before the PV cache shows the old PV Released.
        apiserver.fault(drop_watches=True)
        delete_claim(apiserver, "www-web-0")
        wait_for(lambda: not apiserver.client.exists("persistentvolumeclaims", "www-web-0"),
                 timeout=10 * SLOW, what="old claim gone")
        claim(apiserver, "www-web-0", node="node-1")
        again = wait_bound(apiserver, "www-web-0", timeout=40)
        # one PV per store, whatever the generation in its id
        assert len(pv_keys(apiserver).get("default/www-web-0", [])) <= 1, pv_keys(apiserver)
        if reclaim == "Retain":
            assert again["spec"]["volumeName"] == bound["spec"]["volumeName"]
            assert open(data).read() == "0"
        else:
            assert again["spec"]["volumeName"] != bound["spec"]["volumeName"]
            wait_for(lambda: len(pvs(apiserver)) == 1, timeout=20 * SLOW, what="old PV gone")
            assert not os.path.exists(data), "a deleted volume's data came back"
        delete_claim(apiserver, "www-web-0")
        if reclaim == "Delete":
            wait_for(lambda: pvs(apiserver) == [] and n1.volume_dirs() == [],
                     timeout=20 * SLOW, what="released")
        else:
            wait_for(lambda: not apiserver.client.exists("persistentvolumeclaims", "www-web-0"),
                     timeout=10 * SLOW, what="claim gone")


def pv_keys(api):
    """volume key -> names of the PVs whose volume has that key (whatever the id's generation)."""
    out = {}
    for pv in pvs(api):
        key = pv["spec"]["csi"]["volumeAttributes"]["ordinal.csi.dev/key"]
        out.setdefault(key, []).append(pv["metadata"]["name"])
    return out


def pv_cache_caught_up(api, pvname):
    """Make a change to PV pvname that the daemon's provisioner undoes, and wait until it has:
    its PV cache has then seen every PV event up to that change (a watch delivers in order).
    A Bound PV with policy Delete gets its protection finalizer back; a Retain PV loses it."""
    fin = "ordinal.csi.dev/volume-protection"
    pv = api.client.get("persistentvolumes", pvname, ns=None)
    others = [f for f in pv["metadata"].get("finalizers", []) if f != fin]
    retain = pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    api.client.patch("persistentvolumes", pvname,
                     {"metadata": {"finalizers": others + ([fin] if retain else [])}}, ns=None)
    wait_for(lambda: (fin in api.client.get("persistentvolumes", pvname, ns=None)["metadata"]
                      .get("finalizers", [])) != retain,
             timeout=20 * SLOW, what="the daemon's PV cache reaching %s" % pvname)


def csi_channel(node):
    import sys
    sys.path.insert(0, os.path.join(SOURCE, "tests", "csi"))
    import csi_client
    import grpc
    ch = grpc.insecure_channel("unix://" + node.sock)
    return ch, csi_client.CsiClient(ch, csi_client.load_pb(SOURCE), timeout=30 * SLOW)


@pytest.mark.parametrize("reclaim", ["Delete", "Retain"])
def test_lagging_pv_watch_never_gives_one_store_two_pvs(apiserver, nodes, reclaim):
    """The daemon's PV watch lags (held by the fake server) from before the first claim's PV is
    made, so its cache never sees that PV. The claim is deleted and made again under the same
    name. Who owns the store is decided by the store and a fresh read, not by the cache: with
    Delete the new claim waits until the old PV has released the store and then gets a fresh
    one; with Retain it gets the old PV back. When the watch catches up, the live claim's data
    is intact, no store has two PVs, and nothing leaks. With Retain, once an administrator
    deletes the retained PV, a claim of that name takes the orphan over under a new generation,
    and the old PV's volume id deletes nothing."""
    n1 = nodes("node-1")
    storage_class(apiserver, reclaim=reclaim)
    data = os.path.join(n1.root, "default", "www-web-0", "data", "owner")
    apiserver.fault(hold_watches=["persistentvolumes"])

    a = claim(apiserver, "www-web-0", node="node-1")
    pv_a = "pvc-" + a["metadata"]["uid"]
    assert wait_bound(apiserver, "www-web-0")["spec"]["volumeName"] == pv_a
    with open(data, "w") as f:
        f.write("a")
    delete_claim(apiserver, "www-web-0")
    wait_for(lambda: apiserver.client.get("persistentvolumes", pv_a, ns=None)["status"]
             ["phase"] == "Released", timeout=20 * SLOW, what="PV of the first claim Released")
    wait_for(lambda: not apiserver.client.exists("persistentvolumeclaims", "www-web-0"),
             timeout=10 * SLOW, what="first claim gone")

    b = claim(apiserver, "www-web-0", node="node-1")
    pv_b = "pvc-" + b["metadata"]["uid"]
    if reclaim == "Retain":
        # the retained PV comes back: one PV for the store, its data intact
        assert wait_bound(apiserver, "www-web-0")["spec"]["volumeName"] == pv_a
        assert pv_keys(apiserver) == {"default/www-web-0": [pv_a]}
        assert open(data).read() == "a"
        live_pv, live_data = pv_a, "a"
    else:
        # the old PV still holds the store (its release is pending): the new claim waits,
        # rather than getting a second PV for the store that release is about to delete
        held = "volume dir:default/www-web-0 is still held by PersistentVolume %s" % pv_a
        wait_for(lambda: held in n1.log_text() or
                 get_claim(apiserver, "www-web-0")["status"]["phase"] == "Bound",
                 timeout=20 * SLOW, what="the new claim waiting or bound")
        assert pv_keys(apiserver) == {"default/www-web-0": [pv_a]}, "two PVs for one store"
        assert get_claim(apiserver, "www-web-0")["status"]["phase"] == "Pending"
        assert open(data).read() == "a"

    # the watch catches up
    apiserver.fault(hold_watches=[])
    if reclaim == "Delete":
        wait_for(lambda: not apiserver.client.exists("persistentvolumes", pv_a, ns=None),
                 timeout=30 * SLOW, what="the old PV released and deleted")
        assert wait_bound(apiserver, "www-web-0", timeout=40)["spec"]["volumeName"] == pv_b
        assert not os.path.exists(data), "a deleted volume's data came back"
        with open(data, "w") as f:
            f.write("b")
        live_pv, live_data = pv_b, "b"
    pv_cache_caught_up(apiserver, live_pv)
    assert open(data).read() == live_data, "the live claim's data was deleted"
    assert pv_keys(apiserver) == {"default/www-web-0": [live_pv]}
    assert n1.volume_dirs() == ["default/www-web-0"]

    if reclaim == "Retain":
        # An administrator deletes the retained PV: the store is an orphan, which the next
        # claim of that name takes over, under the next generation of its id.
        delete_claim(apiserver, "www-web-0")
        wait_for(lambda: apiserver.client.get("persistentvolumes", pv_a, ns=None)["status"]
                 ["phase"] == "Released", timeout=20 * SLOW, what="PV Released again")
        apiserver.client.delete("persistentvolumes", pv_a, ns=None)
        wait_for(lambda: not apiserver.client.exists("persistentvolumes", pv_a, ns=None),
                 timeout=20 * SLOW, what="retained PV deleted by the administrator")
        c = claim(apiserver, "www-web-0", node="node-1")
        pv_c = "pvc-" + c["metadata"]["uid"]
        assert wait_bound(apiserver, "www-web-0")["spec"]["volumeName"] == pv_c
        handle = apiserver.client.get("persistentvolumes", pv_c, ns=None)["spec"]["csi"][
            "volumeHandle"]
        assert handle == "dir:default/www-web-0/1"
        assert open(data).read() == "a"
        # whoever still holds the old PV's volume id (an external-provisioner, a stale
        # cache) cannot delete the store with it
        ch, csi = csi_channel(n1)
        try:
            csi.DeleteVolume(volume_id="dir:default/www-web-0")
            assert csi.ControllerGetVolume(volume_id=handle).volume.volume_id == handle
        finally:
            ch.close()
        assert open(data).read() == "a"
        assert pv_keys(apiserver) == {"default/www-web-0": [pv_c]}

    # nothing leaks: with Delete, the store goes with the last claim; with Retain it stays
    # with its PV
    delete_claim(apiserver, "www-web-0")
    if reclaim == "Delete":
        wait_for(lambda: pvs(apiserver) == [] and n1.volume_dirs() == [],
                 timeout=20 * SLOW, what="released")
    else:
        wait_for(lambda: [pv["status"]["phase"] for pv in pvs(apiserver)] == ["Released"],
                 timeout=20 * SLOW, what="released, retained")
        assert n1.volume_dirs() == ["default/www-web-0"]
        assert open(data).read() == "a"


def test_new_claim_waits_while_the_old_pv_still_names_its_key(apiserver, nodes):
    """Delete releases the store first, then the PV object: while something else (here a test
    finalizer) keeps that object, a claim created again under the same name waits for it, so no
    two PVs ever name one volume key; once the old PV is gone, the claim gets a fresh volume."""
    n1 = nodes("node-1")
    storage_class(apiserver, reclaim="Delete")
    claim(apiserver, "www-web-0", node="node-1")
    old = wait_bound(apiserver, "www-web-0")["spec"]["volumeName"]
    c = apiserver.client
    c.patch("persistentvolumes", old, {"metadata": {"finalizers": ["test.ordinal/hold"] + (
        c.get("persistentvolumes", old, ns=None)["metadata"].get("finalizers") or [])}}, ns=None)
    delete_claim(apiserver, "www-web-0")
    # the daemon deleted the store and asked for the PV's deletion; our finalizer keeps it
    wait_for(lambda: n1.volume_dirs() == [] and
             c.get("persistentvolumes", old, ns=None)["metadata"].get("deletionTimestamp"),
             timeout=20 * SLOW, what="store deleted, old PV terminating")
    wait_for(lambda: not c.exists("persistentvolumeclaims", "www-web-0"), timeout=10 * SLOW,
             what="old claim gone")
    claim(apiserver, "www-web-0", node="node-1")
    n1.wait_log("PersistentVolume %s of an earlier claim of this name still names volume key "
                "default/www-web-0" % old, timeout=20 * SLOW)
    assert [pv["metadata"]["name"] for pv in pvs(apiserver)] == [old]
    assert get_claim(apiserver, "www-web-0")["status"]["phase"] == "Pending"
    assert n1.volume_dirs() == []
    fin = [f for f in c.get("persistentvolumes", old, ns=None)["metadata"]["finalizers"]
           if f != "test.ordinal/hold"]
    c.patch("persistentvolumes", old, {"metadata": {"finalizers": fin}}, ns=None)
    new = wait_bound(apiserver, "www-web-0", timeout=20 * SLOW)["spec"]["volumeName"]
    assert new != old
    assert pv_keys(apiserver) == {"default/www-web-0": [new]}
    assert n1.volume_dirs() == ["default/www-web-0"]
