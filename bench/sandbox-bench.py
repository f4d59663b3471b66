#!/usr/bin/python3
"""Figures of the sandbox cluster (docs/BENCHMARKS.md, "Sandbox cluster"), on a real sandbox:
API server and controllers, one kubelet and one ordinal-csi node plugin per node, bubblewrap
containers (the nginx stand-in web server), every claim provisioned and mounted by Ordinal.

    /usr/bin/python3 bench/sandbox-bench.py [path/to/ordinal-csi] [--runs N]

It prints, as percentiles over runs (and over pods for the split):
* `ordinal-sandbox up` to DIR/ready, 3 nodes, and its stages (API server answering, Ordinal's
  own pods Running, Ready, then DIR/ready), each from the end of the one before;
* idle CPU of the sandbox process (API server, controllers, kubelets) and of each node plugin
  over 10 s, empty and with the founding note's 3 pods running (containers included);
* `kubectl apply` of the founding note's StatefulSet to every replica Running and Ready:
  3 replicas OrderedReady, 30 Parallel, 30 OrderedReady;
* per pod: schedule (created -> bound to a node, less the provisioning the scheduler waits
  for), provision (the claim's selected-node annotation -> claim Bound),
  stage+publish (both -> the kubelet's "Pulled" event, sent once the volume is staged and
  published), run (-> pod Ready: container created, started, status reported). Times are
  when this client received each watch event (pods, claims, events), not the objects'
  one-second timestamps.
"""

import json
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

SOURCE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path[:0] = [os.path.join(SOURCE, p) for p in ("tests/k8s", "deploy/sandbox")]
import sbxctl  # noqa: E402
from fakeapi import Client  # noqa: E402


def pct(xs, p):
    """Nearest-rank percentile."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, math.ceil(p / 100.0 * len(xs)) - 1))
    return xs[k]


def row(name, xs, unit="s"):
    print("%-44s n=%-3d p50 %7.3f  p90 %7.3f  max %7.3f %s" % (
        name, len(xs), pct(xs, 50), pct(xs, 90), max(xs), unit), flush=True)


def cpu_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def tree(root):
    """root and all its descendants (bwrap, containers) by /proc's parent links."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def idle(sbx, secs=10.0, label="empty"):
    st = sbx.state()
    groups = {"sandbox process": [st["pid"]]}
    for n in st["nodes"]:
        groups["ordinal-csi " + n["name"]] = [n["pid"]]
    pids = tree(st["pid"])
    a = {p: cpu_of(p) for p in pids}
    t = time.monotonic()
    time.sleep(secs)
    dt = time.monotonic() - t
    b = {p: cpu_of(p) for p in pids}
    whole = sum(b[p] - a.get(p, 0) for p in pids) / dt * 100
    parts = ", ".join("%s %.2f%%" % (k, sum(b.get(p, cpu_of(p)) - a.get(p, 0) for p in v) /
                                       dt * 100) for k, v in groups.items())
    print("idle CPU over %.0f s (%s): whole tree %.2f%% of one core; %s" % (
        dt, label, whole, parts), flush=True)


class Recorder:
    """Arrival times of the watch events of pods, claims and events in one namespace."""

    def __init__(self, c, ns):
        self.evs = []
        self.lock = threading.Lock()
        self.watches = []
        for res in ("pods", "persistentvolumeclaims", "events"):
            rv = c.list(res, ns=ns)["metadata"]["resourceVersion"]
            w = c.watch(res, ns=ns, timeout=600, resourceVersion=rv, timeoutSeconds=1800)
            self.watches.append(w)
            threading.Thread(target=self._run, args=(res, w), daemon=True).start()

    def _run(self, res, w):
        while True:
            try:
                ev = w.next_event(600)
            except (TimeoutError, ConnectionError, OSError, ValueError):
                return
            if ev is None:
                return
            with self.lock:
                self.evs.append((time.monotonic(), res, ev.get("type"), ev.get("object")))

    def snapshot(self):
        with self.lock:
            return list(self.evs)

    def close(self):
        for w in self.watches:
            try:
                w.conn.sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
            w.close()


def ready(p):
    st = p.get("status") or {}
    return not p["metadata"].get("deletionTimestamp") and st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in st.get("conditions") or [])


def split(evs, pods):
    """{phase: [seconds per pod]} from the recorded arrival times."""
    out = {"schedule": [], "provision": [], "stage+publish": [], "run": []}
    for p in pods:
        def first(res, pred):
            for t, r, typ, o in evs:
                if r == res and o and pred(typ, o):
                    return t
            return None
        added = first("pods", lambda t, o: o["metadata"]["name"] == p and t == "ADDED")
        sched = first("pods", lambda t, o: o["metadata"]["name"] == p and
                      (o.get("spec") or {}).get("nodeName"))
        selected = first("persistentvolumeclaims", lambda t, o: o["metadata"]["name"] ==
                         "www-" + p and ((o["metadata"].get("annotations") or {}).get(
                             "volume.kubernetes.io/selected-node")))
        bound = first("persistentvolumeclaims", lambda t, o: o["metadata"]["name"] ==
                      "www-" + p and (o.get("status") or {}).get("phase") == "Bound")
        pulled = first("events", lambda t, o: (o.get("involvedObject") or {}).get("name") == p
                       and o.get("reason") == "Pulled")
        rdy = first("pods", lambda t, o: o["metadata"]["name"] == p and ready(o))
        if None in (added, sched, bound, pulled, rdy):
            continue
        # The scheduler binds a pod with a WaitForFirstConsumer claim only once the claim is
        # provisioned and Bound (its PreBind waits): provision is selected-node -> Bound,
        # schedule the rest of created -> bound to a node.
        prov = max(0.0, bound - selected) if selected is not None and selected <= bound else 0.0
        out["schedule"].append(max(0.0, sched - added - prov))
        out["provision"].append(prov)
        out["stage+publish"].append(pulled - max(sched, bound))
        out["run"].append(rdy - pulled)
    return out


def manifest(n, pmp):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
           "spec": {"replicas": n, "serviceName": "nginx",
                    "selector": {"matchLabels": {"app": "nginx"}},
                    "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {
                        "terminationGracePeriodSeconds": 10,
                        "containers": [{"name": "nginx",
                                        "image": "registry.k8s.io/nginx-slim:0.8",
                                        "ports": [{"containerPort": 80, "name": "web"}],
                                        "volumeMounts": [{"name": "www", "mountPath":
                                                          "/usr/share/nginx/html"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}
    if pmp:
        sts["spec"]["podManagementPolicy"] = pmp
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx"},
           "spec": {"clusterIP": "None", "selector": {"app": "nginx"},
                    "ports": [{"port": 80, "name": "web"}]}}
    return "".join("# bench\n%s\n---\n" % json.dumps(o) for o in (svc, sts))


def apply_run(sbx, c, ns, n, pmp):
    """kubectl apply to n Running and Ready; returns (seconds, per-pod split)."""
    c.create("namespaces", {"metadata": {"name": ns}}, ns=None)
    rec = Recorder(c, ns)
    names = ["web-%d" % i for i in range(n)]
    t0 = time.monotonic()
    sbx.kubectl("-n", ns, "apply", "-f", "-", input=manifest(n, pmp))

    def done():
        evs = rec.snapshot()
        last = {}
        for t, r, typ, o in evs:
            if r == "pods" and o:
                last[o["metadata"]["name"]] = (t, typ, o)
        ok = all(x in last and last[x][1] != "DELETED" and ready(last[x][2]) for x in names)
        return ok and max(last[x][0] for x in names)
    t_end = sbxctl.wait_for(done, timeout=300, interval=0.02, what="%d Ready" % n)
    dt = t_end - t0
    parts = split(rec.snapshot(), names)
    rec.close()
    # Clean up so the next run starts on a quiet cluster (not timed).
    c.delete("statefulsets", "web", ns=ns)
    sbxctl.wait_for(lambda: not c.list("pods", ns=ns)["items"], timeout=300,
                    what="pods of %s gone" % ns)
    for p in c.list("persistentvolumeclaims", ns=ns)["items"]:
        c.delete("persistentvolumeclaims", p["metadata"]["name"], ns=ns)
    sbxctl.wait_for(lambda: not c.list("persistentvolumeclaims", ns=ns)["items"], timeout=300,
                    what="claims of %s gone" % ns)
    return dt, parts


def watch_up(d, t0, marks, stop):
    """The stages of one `ordinal-sandbox up`, in seconds after t0, polled every 20 ms: the
    API server answering (DIR/kubeconfig, token and CA written, a list answered), every pod of
    ordinal-system (the node DaemonSet's, the controller Deployment's) Running, every one
    Ready (their probes passed). DIR/ready follows (CSINodes, classes)."""
    c = None
    while not stop.wait(0.02):
        now = time.monotonic() - t0
        try:
            if c is None:
                with open(os.path.join(d, "kubeconfig")) as f:
                    server = [ln.split("server:", 1)[1].strip() for ln in f
                              if "server:" in ln][0]
                with open(os.path.join(d, "token")) as f:
                    token = f.read().strip()
                c = Client(server, token, os.path.join(d, "pki", "ca.crt"))
            pods = c.list("pods", ns="ordinal-system")["items"]
        except Exception:  # noqa: BLE001 - not up yet (no file, no answer, not valid)
            continue
        marks.setdefault("api server answering", now)
        if pods and all((p.get("status") or {}).get("phase") == "Running" for p in pods):
            marks.setdefault("Ordinal's pods Running", now)
        if pods and all(any(x.get("type") == "Ready" and x.get("status") == "True"
                            for x in (p.get("status") or {}).get("conditions") or [])
                        for p in pods):
            marks.setdefault("Ordinal's pods Ready", now)


def main():
    args = sys.argv[1:]
    runs = 5
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    csi = args[0] if args else os.path.join(SOURCE, "build/debug/ordinal-csi")
    base = tempfile.mkdtemp(prefix="ordinal-sbx-bench-")
    with open("/proc/loadavg") as f:
        print("load average at start: %s" % " ".join(f.read().split()[:3]), flush=True)
    ups, stages = [], {}
    d = None
    for i in range(2 * runs):
        d = os.path.join(base, "up%d" % i)
        t = time.monotonic()
        marks, stop = {}, threading.Event()
        th = threading.Thread(target=watch_up, args=(d, t, marks, stop), daemon=True)
        th.start()
        sbx = sbxctl.up(d, nodes=3, csi=csi)
        ups.append(time.monotonic() - t)
        stop.set()
        th.join()
        prev = 0.0
        for k in ("api server answering", "Ordinal's pods Running", "Ordinal's pods Ready"):
            if k in marks:
                stages.setdefault(k, []).append(marks[k] - prev)
                prev = marks[k]
        stages.setdefault("then DIR/ready", []).append(ups[-1] - prev)
        if i < 2 * runs - 1:
            sbxctl.down(d, check=True)
    row("ordinal-sandbox up to ready, 3 nodes", ups)
    for k, xs in stages.items():
        row("  up stage: " + k, xs)
    try:
        c = Client(sbx.server, sbx.token, sbx.ca)
        time.sleep(2)    # let the start-up's own work settle before measuring idle
        idle(sbx, label="empty cluster")
        total = {}
        for label, n, pmp, k in (("3 replicas OrderedReady", 3, None, runs),
                                 ("30 replicas Parallel", 30, "Parallel", max(3, runs // 2)),
                                 ("30 replicas OrderedReady", 30, None, max(3, runs // 2))):
            times, parts = [], {}
            for i in range(k):
                dt, sp = apply_run(sbx, c, "b%d-%s-%d" % (n, (pmp or "ordered").lower(), i),
                                   n, pmp)
                times.append(dt)
                for ph, xs in sp.items():
                    parts.setdefault(ph, []).extend(xs)
            total[label] = times
            row("kubectl apply to all Ready, " + label, times)
            for ph in ("schedule", "provision", "stage+publish", "run"):
                row("  per pod: " + ph, parts[ph])
        print("ratio 30 OrderedReady / 30 Parallel (p50): %.2f" % (
            pct(total["30 replicas OrderedReady"], 50) / pct(total["30 replicas Parallel"], 50)))
        c.create("namespaces", {"metadata": {"name": "idle"}}, ns=None)
        sbx.kubectl("-n", "idle", "apply", "-f", "-", input=manifest(3, None))
        sbxctl.wait_for(lambda: (c.get("statefulsets", "web", ns="idle").get("status") or {})
                        .get("readyReplicas") == 3, timeout=120, what="3 Ready")
        time.sleep(2)
        idle(sbx, label="3 pods running")
    finally:
        sbxctl.down(d)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
