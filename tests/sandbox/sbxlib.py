"""Helpers for the sandbox tests: objects, and a Cluster wrapper that plays kubelet through
the pod status subresource until deploy/sandbox/kubelet.py runs pods for real."""

import time

from fakeapi import ApiError, wait_for  # noqa: F401 - re-exported for the tests

NS = "default"


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sts(name="web", replicas=3, policy=None, pmp=None, strategy=None, start=None,
        min_ready=None, image="nginx:1.27", labels=None, sc="ordinal"):
    labels = labels or {"app": name}
    spec = {"replicas": replicas, "serviceName": "nginx",
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)},
                         "spec": {"containers": [{"name": "nginx", "image": image}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "storageClassName": sc,
                "resources": {"requests": {"storage": "1Gi"}}}}]}
    if policy:
        spec["persistentVolumeClaimRetentionPolicy"] = {"whenScaled": policy[0],
                                                        "whenDeleted": policy[1]}
    if pmp:
        spec["podManagementPolicy"] = pmp
    if strategy:
        spec["updateStrategy"] = strategy
    if start is not None:
        spec["ordinals"] = {"start": start}
    if min_ready is not None:
        spec["minReadySeconds"] = min_ready
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": spec}


def node(name, zone="zone-a"):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "topology.ordinal.csi.dev/node": name,
                                                  "topology.kubernetes.io/zone": zone}},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": now()}]}}


class Cluster:
    def __init__(self, srv):
        self.srv = srv
        self.client = srv.client
        self.kubectl = srv.kubectl

    def pods(self, ns=NS):
        return {p["metadata"]["name"]: p for p in self.client.list("pods", ns=ns)["items"]}

    def claims(self, ns=NS):
        return {p["metadata"]["name"]: p for p in
                self.client.list("persistentvolumeclaims", ns=ns)["items"]}

    def run_pod(self, name, ready=True, ns=NS):
        """What a kubelet reports for a started pod: Running, Ready (or not). A 409 (the pod
        changed between the read and the write: a binding, a controller's patch) is retried
        on a fresh read, as the kubelet's status manager does."""
        for attempt in range(10):
            try:
                return self._run_pod(name, ready, ns)
            except ApiError as e:
                if e.status != 409 or attempt == 9:
                    raise

    def _run_pod(self, name, ready, ns):
        c = self.client
        p = c.get("pods", name, ns=ns)
        t = now()
        st = dict(p.get("status") or {})
        conds = [x for x in st.get("conditions") or [] if x.get("type") not in (
            "Ready", "ContainersReady", "Initialized")]
        flag = "True" if ready else "False"
        conds += [{"type": "Initialized", "status": "True", "lastTransitionTime": t},
                  {"type": "ContainersReady", "status": flag, "lastTransitionTime": t},
                  {"type": "Ready", "status": flag, "lastTransitionTime": t}]
        st.update({"phase": "Running", "conditions": conds, "podIP": "127.0.0.2",
                   "containerStatuses": [{"name": "nginx", "ready": ready, "restartCount": 0,
                                          "image": "nginx", "imageID": "",
                                          "state": {"running": {"startedAt": t}}}]})
        p["status"] = st
        return c.update("pods", p, ns=ns, sub="status")

    def fail_pod(self, name, ns=NS):
        for attempt in range(10):
            p = self.client.get("pods", name, ns=ns)
            p["status"]["phase"] = "Failed"
            try:
                return self.client.update("pods", p, ns=ns, sub="status")
            except ApiError as e:
                if e.status != 409 or attempt == 9:
                    raise

    def events(self, reason=None, ns=NS):
        evs = self.client.list("events", ns=ns)["items"]
        return [e for e in evs if reason is None or e["reason"] == reason]


class AutoReady:
    """Plays every node's kubelet: each pod that appears Pending is reported Running and
    Ready (unless its name is in .hold). Records the pod watch events it saw, in order."""

    def __init__(self, cluster, ns=NS, wait_node=False):
        import threading
        self.cluster = cluster
        self.ns = ns
        self.wait_node = wait_node   # as a real kubelet: only pods bound to a node
        self.hold = set()
        self.seen = []               # (type, name, resourceVersion, uid, deleting)
        self.cond = threading.Condition()
        self.stopped = False
        lst = cluster.client.list("pods", ns=ns)
        self.watch = cluster.client.watch("pods", ns=ns,
                                          resourceVersion=lst["metadata"]["resourceVersion"],
                                          timeout=120)
        for p in lst["items"]:
            self._maybe_ready(p)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _maybe_ready(self, p):
        md = p["metadata"]
        if md.get("deletionTimestamp") or md["name"] in self.hold:
            return
        if self.wait_node and not (p.get("spec") or {}).get("nodeName"):
            return
        if (p.get("status") or {}).get("phase", "Pending") == "Pending":
            try:
                self.cluster.run_pod(md["name"], ns=self.ns)
            except ApiError:
                pass   # gone or changed meanwhile: its next event brings it back

    def _run(self):
        while not self.stopped:
            try:
                ev = self.watch.next_event(60)
            except (TimeoutError, ConnectionError, OSError):
                return
            if ev is None:
                return
            o = ev["object"]
            md = o["metadata"]
            with self.cond:
                self.seen.append((ev["type"], md["name"], int(md["resourceVersion"]),
                                  md.get("uid"), bool(md.get("deletionTimestamp")),
                                  (o.get("status") or {}).get("phase")))
                self.cond.notify_all()
            if ev["type"] in ("ADDED", "MODIFIED"):
                self._maybe_ready(o)

    def ready(self, name):
        self.hold.discard(name)
        self.cluster.run_pod(name, ns=self.ns)

    def wait(self, pred, timeout=20, what="pod events"):
        """Wait until pred(self.seen) is true (it sees the event list)."""
        with self.cond:
            ok = self.cond.wait_for(lambda: pred(self.seen), timeout)
        assert ok, "timed out waiting for %s; saw %r" % (what, self.seen)

    def added(self):
        return [e[1] for e in self.seen if e[0] == "ADDED"]

    def deleted(self):
        return [e[1] for e in self.seen if e[0] == "DELETED"]

    def close(self):
        """Stop: shut the socket down first (closing it while the thread reads would block
        until the read ends)."""
        import socket
        self.stopped = True
        try:
            self.watch.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.thread.join(5)
        self.watch.close()


def wait_ready(cluster, name="web", n=3, timeout=20):
    def ok():
        s = cluster.client.get("statefulsets", name)
        st = s.get("status") or {}
        return st.get("readyReplicas", 0) == n and st.get("replicas", 0) == n and \
            st.get("observedGeneration") == s["metadata"]["generation"] and \
            st.get("currentRevision") == st.get("updateRevision") and s
    return wait_for(ok, timeout=timeout, what="%s: %d replicas Ready" % (name, n))


def synced(cluster, name="web", timeout=10):
    """Wait until the controller has synced the set's current generation (observedGeneration
    catches up): the fence after which what it would do for this spec is done."""
    def ok():
        s = cluster.client.get("statefulsets", name)
        return (s.get("status") or {}).get("observedGeneration") == \
            s["metadata"]["generation"] and s
    return wait_for(ok, timeout=timeout, what="%s observedGeneration" % name)


def bump(cluster, name="web"):
    """A harmless spec change (the partition of an OrderedReady RollingUpdate set, above the
    replicas) to get a fresh fence from synced()."""
    s = cluster.client.get("statefulsets", name)
    us = s["spec"]["updateStrategy"]
    if us["type"] == "RollingUpdate":
        p = us["rollingUpdate"]["partition"]
        patch = {"spec": {"updateStrategy": {"rollingUpdate": {"partition": p + 1000}}}}
    else:
        patch = {"spec": {"minReadySeconds": s["spec"].get("minReadySeconds", 0)}}
    cluster.client.patch("statefulsets", name, patch)
    return synced(cluster, name)
