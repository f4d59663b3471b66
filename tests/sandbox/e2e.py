"""End-to-end helpers: one real `ordinal-sandbox` per test module (API server, controllers,
scheduler, one kubelet and one real ordinal-csi node plugin per node, bubblewrap containers),
each test in a namespace of its own so that the tests of a module share the cluster safely.

Everything goes through the sandbox's public surface (DIR/kubeconfig, kubectl, API objects,
volume data on each node's Ordinal root), so the tests hold however the sandbox starts Ordinal.

    sbx = e2e.Sandbox.up(dir)            # module fixture `sbx` in each test_e2e_*.py
    ns = sbx.namespace("order")          # fresh namespace, cleaned up by the `ns` fixture
    rec = sbx.record(ns)                 # watch events of pods, claims and PVs, in order
    sbx.apply(ns, e2e.web(replicas=3))   # real kubectl apply
    sbx.wait_ready(ns, 3)
"""

import json
import os
import socket
import threading
import time

import pytest

import sbxctl
from fakeapi import ApiError, Client, wait_for  # noqa: F401 - re-exported

CSI = os.environ.get("ORDINAL_CSI")
needs_csi = pytest.mark.skipif(not CSI or not os.path.exists(CSI),
                               reason="ORDINAL_CSI (the built ordinal-csi) not given")
HTML = "/usr/share/nginx/html"
WAIT = 60
NODE_GRACE = 10     # --node-monitor-grace-period: a stopped node is Unknown after this


def web(name="web", replicas=3, policy=None, pmp=None, strategy=None, start=None,
        image="registry.k8s.io/nginx-slim:0.8", grace=5, labels=None, selector=None,
        claim=None, min_ready=None, node=None):
    """The founding note's StatefulSet (storageClassName: ordinal) with the knobs the tests
    turn; its headless Service comes with it in manifest()."""
    labels = labels or {"app": name}
    spec = {"replicas": replicas, "serviceName": name + "-svc",
            "selector": {"matchLabels": dict(selector or labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {
                "terminationGracePeriodSeconds": grace,
                "containers": [{"name": "nginx", "image": image,
                                "ports": [{"containerPort": 80, "name": "web"}],
                                "volumeMounts": [{"name": "www", "mountPath": HTML}]}]}},
            "volumeClaimTemplates": [claim or {"metadata": {"name": "www"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                "resources": {"requests": {"storage": "1Gi"}}}}]}
    if policy:
        spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": policy[0],
                                                        "whenScaled": policy[1]}
    if pmp:
        spec["podManagementPolicy"] = pmp
    if strategy:
        spec["updateStrategy"] = strategy
    if start is not None:
        spec["ordinals"] = {"start": start}
    if min_ready is not None:
        spec["minReadySeconds"] = min_ready
    if node:
        spec["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": spec}


def service(name="web"):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name + "-svc"},
            "spec": {"clusterIP": "None", "selector": {"app": name},
                     "ports": [{"port": 80, "name": "web"}]}}


def ready(p):
    if not p or p["metadata"].get("deletionTimestamp"):
        return False
    st = p.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in st.get("conditions") or [])


class Recorder:
    """Watch events of pods, claims and PVs (and of `extra` namespaced kinds, e.g.
    statefulsets) from a list's resourceVersion on: (rv, kind, type, name, object). One
    resourceVersion counter for the whole server (as etcd's revision) orders the events of all
    the streams."""

    KINDS = (("pods", True), ("persistentvolumeclaims", True), ("persistentvolumes", False))

    def __init__(self, client, ns, extra=()):
        self.client = client
        self.ns = ns
        self.events = []
        self.received = {}      # resourceVersion -> time.time() when its event arrived
        self.cond = threading.Condition()
        self.stopped = False
        self.watches = []
        self.threads = []
        for res, namespaced in self.KINDS + tuple((k, True) for k in extra):
            n = ns if namespaced else None
            rv = client.list(res, ns=n)["metadata"]["resourceVersion"]
            w = client.watch(res, ns=n, timeout=600, resourceVersion=rv, timeoutSeconds=1800)
            self.watches.append(w)
            t = threading.Thread(target=self._run, args=(res, w), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, res, w):
        while not self.stopped:
            try:
                ev = w.next_event(600)
            except (TimeoutError, ConnectionError, OSError, ValueError):
                return
            if ev is None:
                return
            if ev.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            o = ev["object"]
            md = o["metadata"]
            with self.cond:
                self.events.append((int(md["resourceVersion"]), res, ev["type"], md["name"], o))
                self.received[int(md["resourceVersion"])] = time.time()
                self.cond.notify_all()

    def mark(self):
        with self.cond:
            return max([e[0] for e in self.events] or [0])

    def history(self, res=None, since=0):
        with self.cond:
            evs = sorted(self.events, key=lambda e: e[0])
        return [e for e in evs if e[0] > since and (res is None or e[1] == res)]

    def first(self, res, name, pred, since=0):
        """resourceVersion of the first event on res/name after `since` matching
        pred(type, object), or None."""
        for rv, _, typ, n, o in self.history(res, since):
            if n == name and pred(typ, o):
                return rv
        return None

    def created(self, pod, since=0):
        return self.first("pods", pod, lambda t, o: t == "ADDED", since)

    def became_ready(self, pod, since=0):
        return self.first("pods", pod, lambda t, o: t != "DELETED" and ready(o), since)

    def stopping(self, pod, since=0):
        return self.first("pods", pod, lambda t, o: t == "DELETED" or bool(
            o["metadata"].get("deletionTimestamp")), since)

    def gone(self, res, name, since=0):
        return self.first(res, name, lambda t, o: t == "DELETED", since)

    def need(self, *fns, timeout=WAIT, what="watch events"):
        """Wait until every fn(self) has a value (the watch may lag behind a list), and
        return the values."""
        out = []
        self.wait(lambda r: all(f(r) is not None for f in fns), timeout, what)
        for f in fns:
            out.append(f(self))
        return out

    def wait(self, pred, timeout=WAIT, what="watch events"):
        with self.cond:
            ok = self.cond.wait_for(lambda: pred(self), timeout)
        assert ok, "timed out waiting for %s" % what

    def close(self):
        self.stopped = True
        for w in self.watches:
            try:
                w.conn.sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
        for t in self.threads:
            t.join(5)
        for w in self.watches:
            w.close()


class Sandbox(sbxctl.Sandbox):
    def __init__(self, d):
        super().__init__(d)
        self.client = Client(self.server, self.token, self.ca)
        self.recorders = []

    @classmethod
    def up(cls, d, nodes=3):
        sbxctl.up(d, nodes=nodes, csi=CSI, node_grace=NODE_GRACE)
        return cls(d)

    def close(self):
        for r in self.recorders:
            r.close()
        sbxctl.down(self.dir)
        problems = sbxctl.log_problems(self.dir)
        assert not problems, "tracebacks or sanitizer reports in the sandbox logs: %s" % problems

    # --- kubectl ---

    def kubectl(self, *args, check=True, input=None, timeout=60):
        try:
            return super().kubectl(*args, check=check, input=input, timeout=timeout)
        except sbxctl.SandboxError as e:
            raise AssertionError(str(e)) from None

    def k(self, ns, *args, **kw):
        return self.kubectl("-n", ns, *args, **kw)

    def apply(self, ns, *objs, check=True):
        # YAML documents (JSON is YAML; the comment keeps kubectl from reading it as one JSON)
        doc = "".join("# e2e\n%s\n---\n" % json.dumps(o) for o in objs)
        return self.k(ns, "apply", "-f", "-", input=doc, check=check)

    def exec(self, ns, pod, script):
        return self.k(ns, "exec", pod, "--", "sh", "-c", script).stdout

    # --- namespaces and recorders ---

    def namespace(self, name):
        self.client.create("namespaces", {"metadata": {"name": name}}, ns=None)
        return name

    def record(self, ns, extra=()):
        r = Recorder(self.client, ns, extra)
        self.recorders.append(r)
        return r

    def cleanup(self, ns):
        """Delete every set and claim of ns and wait until their pods, claims and volumes are
        gone, so that the next test of the module starts on a quiet cluster."""
        c = self.client
        for s in c.list("statefulsets", ns=ns)["items"]:
            try:
                c.delete("statefulsets", s["metadata"]["name"], ns=ns)
            except ApiError:
                pass
        for p in c.list("pods", ns=ns)["items"]:
            try:
                c.delete("pods", p["metadata"]["name"], ns=ns)
            except ApiError:
                pass
        wait_for(lambda: not c.list("pods", ns=ns)["items"], timeout=WAIT,
                 what="pods of %s gone" % ns)
        for p in c.list("persistentvolumeclaims", ns=ns)["items"]:
            try:
                c.delete("persistentvolumeclaims", p["metadata"]["name"], ns=ns)
            except ApiError:
                pass
        wait_for(lambda: not c.list("persistentvolumeclaims", ns=ns)["items"], timeout=WAIT,
                 what="claims of %s gone" % ns)

    # --- objects ---

    def pods(self, ns):
        return {p["metadata"]["name"]: p for p in self.client.list("pods", ns=ns)["items"]}

    def claims(self, ns):
        return {p["metadata"]["name"]: p for p in
                self.client.list("persistentvolumeclaims", ns=ns)["items"]}

    def events(self, ns, reason):
        """The namespace's Events with that reason, oldest first."""
        return sorted((e for e in self.client.list("events", ns=ns)["items"]
                       if e.get("reason") == reason),
                      key=lambda e: int(e["metadata"]["resourceVersion"]))

    def pv_names(self):
        return {p["metadata"]["name"] for p in
                self.client.list("persistentvolumes", ns=None)["items"]}

    def wait_ready(self, ns, names, name="web", timeout=WAIT):
        """Wait until exactly `names` (pod names) exist and are Running and Ready and the set
        says so in its status."""
        names = sorted(names)

        def ok():
            ps = self.pods(ns)
            if sorted(ps) != names or not all(ready(ps[n]) for n in names):
                return None
            s = self.client.get("statefulsets", name, ns=ns)
            st = s.get("status") or {}
            if st.get("observedGeneration") != s["metadata"]["generation"] or \
                    st.get("readyReplicas", 0) != len(names):
                return None
            return (ps,)
        try:
            return wait_for(ok, timeout=timeout, interval=0.1,
                            what="%s/%s: exactly %s Running and Ready" % (ns, name, names))[0]
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.describe_state(ns))) from None

    def describe_state(self, ns):
        """What a failed wait needs to be understood: the namespace's pods, claims, their PVs
        and its events, one line each (the sandbox's logs stay under its folder)."""
        out = []
        try:
            for n, p in sorted(self.pods(ns).items()):
                st = p.get("status") or {}
                out.append("pod %s uid=%s node=%s phase=%s deleting=%s conditions=%s" % (
                    n, p["metadata"]["uid"][:8], p["spec"].get("nodeName"), st.get("phase"),
                    bool(p["metadata"].get("deletionTimestamp")),
                    ",".join("%s=%s" % (c["type"], c["status"])
                             for c in st.get("conditions") or [])))
            for n, c in sorted(self.claims(ns).items()):
                md = c["metadata"]
                out.append("pvc %s uid=%s phase=%s volume=%s deleting=%s finalizers=%s "
                           "owners=%s selected-node=%s" % (
                               n, md["uid"][:8], (c.get("status") or {}).get("phase"),
                               c["spec"].get("volumeName"), bool(md.get("deletionTimestamp")),
                               md.get("finalizers"),
                               [(r["kind"], r["name"], r["uid"][:8])
                                for r in md.get("ownerReferences") or []],
                               (md.get("annotations") or {}).get(
                                   "volume.kubernetes.io/selected-node")))
            for pv in self.client.list("persistentvolumes", ns=None)["items"]:
                cr = pv["spec"].get("claimRef") or {}
                if cr.get("namespace") == ns:
                    out.append("pv %s claim=%s/%s phase=%s deleting=%s finalizers=%s" % (
                        pv["metadata"]["name"], cr.get("name"), (cr.get("uid") or "")[:8],
                        (pv.get("status") or {}).get("phase"),
                        bool(pv["metadata"].get("deletionTimestamp")),
                        pv["metadata"].get("finalizers")))
            evs = sorted(self.client.list("events", ns=ns)["items"],
                         key=lambda e: int(e["metadata"]["resourceVersion"]))
            for e in evs[-25:]:
                out.append("event %s %s/%s %s x%s: %s" % (
                    e.get("lastTimestamp"), e["involvedObject"].get("kind"),
                    e["involvedObject"].get("name"), e.get("reason"), e.get("count"),
                    e.get("message")))
        except Exception as e:  # noqa: BLE001 - a diagnosis must not hide the failure
            out.append("(state incomplete: %r)" % e)
        out.append("logs: %s" % os.path.join(self.dir, "logs"))
        return "\n".join(out)

    # --- data on disk ---

    def stores(self, ns):
        """{claim: node} for every backing store of ns on the nodes' Ordinal roots."""
        out = {}
        for n in self.state()["nodes"]:
            d = os.path.join(n["root"], ns)
            if os.path.isdir(d):
                for claim in os.listdir(d):
                    out[claim] = n["name"]
        return out

    def on_disk(self, ns, claim, f="index.html"):
        """The file in the claim's volume as Ordinal stores it on its node (None when no
        node holds the claim's store)."""
        for n in self.state()["nodes"]:
            p = os.path.join(n["root"], ns, claim, "data", f)
            if os.path.exists(p):
                with open(p) as fh:
                    return fh.read()
        return None

    def write_hostnames(self, ns, pods, tag=""):
        """Each pod writes its hostname (and tag) into its volume from inside its container;
        it is read back on disk."""
        for p in pods:
            self.exec(ns, p, "echo \"$(hostname)%s\" > %s/index.html" % (tag, HTML))
            assert self.on_disk(ns, "www-" + p) == "%s%s\n" % (p, tag)

    def read_in_pod(self, ns, pod):
        """The volume's index.html as the container sees it ("" when there is none)."""
        return self.exec(ns, pod, "cat %s/index.html 2>/dev/null || true" % HTML)


def module_sandbox(tmp_path_factory):
    if not CSI or not os.path.exists(CSI):
        pytest.skip("ORDINAL_CSI (the built ordinal-csi) not given")
    s = Sandbox.up(str(tmp_path_factory.mktemp("e2e") / "sbx"))
    return s
