"""Ordinal's main job: the founding note's StatefulSet on a 3-node sandbox cluster, driven with
real kubectl, every claim provisioned and mounted by Ordinal.

    /usr/bin/python3 tools/demo.py BUILD/ordinal-csi [--keep]

It starts `deploy/sandbox/ordinal-sandbox up` in a temporary folder, applies the headless
Service `nginx` and the StatefulSet `web` (3 replicas, claim template `www`, 1Gi, class
`ordinal`), and shows, with kubectl's own output: ordered start, each pod's data served by its
web server, a deleted pod coming back to its claim, scale down and up, a rolling update with a
partition and OnDelete, and the claim retention policy. Every expectation is checked; the first
broken one ends the demo with exit 1 and says which. The sandbox is stopped at the end (also on
failure or Ctrl-C) unless --keep is given.
"""
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "deploy", "sandbox"))
import sbxctl  # noqa: E402 - the sandbox's start/wait/down helper, shared with the tests

SANDBOX = sbxctl.SANDBOX
PYTHON = sbxctl.PYTHON
KUBECTL = sbxctl.KUBECTL
WAIT = 60          # seconds any single expectation may take before the demo gives up
TTY = sys.stdout.isatty()

MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  ports:
  - port: 80
    name: web
  clusterIP: None
  selector:
    app: nginx
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: nginx
  serviceName: "nginx"
  replicas: 3
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
      storageClassName: "ordinal"
      resources:
        requests:
          storage: 1Gi
"""


class Failed(Exception):
    pass


def say(msg):
    print(msg, flush=True)


def check(cond, what, got=None):
    """An expectation: said when met, the demo's end (with what was seen) when not."""
    if not cond:
        raise Failed(what + ("" if got is None else ": not so, got %r" % (got,)))
    say("   ok: " + what)


class Demo:
    def __init__(self, csi, keep):
        self.csi = os.path.abspath(csi)
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="ordinal-demo.")
        self.dir = os.path.join(self.tmp, "sbx")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        # kubectl-ordinal, built next to ordinal-csi: on PATH, kubectl finds it as a plugin
        self.plugin = os.path.join(os.path.dirname(self.csi), "kubectl-ordinal")
        if os.access(self.plugin, os.X_OK):
            self.env["PATH"] = os.path.dirname(self.csi) + os.pathsep + self.env.get("PATH", "")
        else:
            self.plugin = None
        self.cache = os.path.join(self.tmp, "kubectl-cache")
        self.steps = []          # (step, what it showed, seconds)
        self.watchers = []
        self.events = []         # (seq, kind, type, object) from the kubectl watches
        self.lock = threading.Lock()
        self.up = False
        self.ok = False

    # --- kubectl -------------------------------------------------------------------------

    def kubectl(self, *args, input=None, check=True, timeout=60):
        # kubectl refuses flags before a plugin's name ("kubectl ordinal ...")
        pre = [] if args and args[0] == "ordinal" else ["--cache-dir", self.cache]
        p = subprocess.run([KUBECTL] + pre + list(args), env=self.env,
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise Failed("kubectl %s exited %d: %s" % (" ".join(args), p.returncode,
                                                        (p.stderr or p.stdout).strip()))
        return p.stdout

    def show(self, *args, input=None, start=None):
        """Run kubectl and print the command line and its output, as a person would see it
        (with start, only from the first line that begins with it)."""
        out = self.kubectl(*args, input=input)
        say("   $ kubectl " + shlex.join(args) + (" | sed -n '/^%s/,$p'" % start if start else ""))
        lines = out.rstrip("\n").split("\n")
        if start:
            at = [i for i, x in enumerate(lines) if x.startswith(start)]
            lines = lines[at[0]:] if at else []
        for line in lines:
            if line:
                say("     " + line)
        return out

    def get(self, res, name=None):
        args = ["get", res] + ([name] if name else []) + ["-o", "json"]
        out = self.kubectl(*args, check=name is None)
        if not out.strip():
            return None
        obj = json.loads(out)
        return obj if name else {o["metadata"]["name"]: o for o in obj["items"]}

    def pods(self):
        return self.get("pods")

    def claims(self):
        return self.get("pvc")

    # --- watches: the order of events as kubectl sees them -------------------------------

    def open_watches(self):
        """How many watches the API server is serving (its admin endpoint), to know when
        kubectl's watches are in place before anything happens."""
        with open(os.path.join(self.dir, "token")) as f:
            token = f.read().strip()
        with open(os.path.join(self.dir, "ready")) as f:
            server = json.load(f)["server"]
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "pki", "ca.crt"))
        req = urllib.request.Request(server + "/_fault",
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.load(r)["open_watches"]

    def watch(self, res):
        p = subprocess.Popen([KUBECTL, "--cache-dir", self.cache, "get", res, "--watch",
                              "--output-watch-events", "-o", "json"], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.watchers.append(p)

        def run():
            for line in p.stdout:
                line = line.strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                with self.lock:
                    self.events.append((len(self.events), res, ev["type"], ev["object"]))
        threading.Thread(target=run, daemon=True).start()

    def mark(self):
        with self.lock:
            return len(self.events)

    def history(self, res, since=0):
        with self.lock:
            return [e for e in self.events[since:] if e[1] == res]

    def first(self, res, since, pred, seq=False):
        """The resourceVersion (or with seq, the index) of the first watch event on res after
        index `since` whose object satisfies pred. Each kubectl watch is its own stream, so
        events of different resources are ordered by resourceVersion (one counter for the
        whole server, as etcd's revision), not by when they arrived here."""
        for i, _, typ, obj in self.history(res, since):
            if pred(typ, obj):
                return i if seq else int(obj["metadata"]["resourceVersion"])
        return None

    # --- waiting -------------------------------------------------------------------------

    def wait(self, what, cond, timeout=WAIT):
        """sbxctl.wait_for with a progress line (on a terminal) or a line every 10 s."""
        t0 = time.monotonic()
        last = [0]

        def progress(el):
            if TTY:
                sys.stdout.write("\r   .. waiting for %s: %.1f s" % (what, el))
                sys.stdout.flush()
            elif el >= 10 and int(el) // 10 != last[0]:
                last[0] = int(el) // 10
                say("   .. still waiting for %s: %d s" % (what, el))
        try:
            v = sbxctl.wait_for(cond, timeout=timeout, interval=0.2, what=what,
                                progress=progress)
        except TimeoutError as e:
            if TTY:
                sys.stdout.write("\r\033[K")
            raise Failed(str(e)) from None
        if TTY:
            sys.stdout.write("\r\033[K")
        say("   .. %s (%.1f s)" % (what, time.monotonic() - t0))
        return v

    @staticmethod
    def ready(p):
        if not p or p["metadata"].get("deletionTimestamp"):
            return False
        st = p.get("status") or {}
        return st.get("phase") == "Running" and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in st.get("conditions") or [])

    def all_ready(self, n):
        def cond():
            ps = self.pods()
            names = ["web-%d" % i for i in range(n)]
            return ps if sorted(ps) == names and all(self.ready(ps[x]) for x in names) else None
        return cond

    def pod_ready_seq(self, name, since=0, uid=None):
        return self.first("pods", since, lambda t, o: o["metadata"]["name"] == name and
                          t != "DELETED" and self.ready(o) and
                          (uid is None or o["metadata"]["uid"] != uid))

    def pod_added_seq(self, name, since=0, seq=False):
        return self.first("pods", since, lambda t, o: o["metadata"]["name"] == name and
                          t == "ADDED", seq)

    def pod_gone_seq(self, name, since=0):
        return self.first("pods", since, lambda t, o: o["metadata"]["name"] == name and
                          t == "DELETED")

    def pod_stopping_seq(self, name, since=0):
        return self.first("pods", since, lambda t, o: o["metadata"]["name"] == name and
                          (t == "DELETED" or o["metadata"].get("deletionTimestamp")))

    def timeline(self, since, names):
        """The pods' lifecycle as the kubectl watch saw it, in order: created, Ready,
        terminating, gone."""
        out, last = [], {}
        for _, _, typ, o in self.history("pods", since):
            n = o["metadata"]["name"]
            if n not in names:
                continue
            if typ == "DELETED":
                st = "gone"
            elif o["metadata"].get("deletionTimestamp"):
                st = "terminating"
            elif self.ready(o):
                st = "Ready"
            elif typ == "ADDED":
                st = "created"
            else:
                continue
            if last.get(n) != st:
                last[n] = st
                out.append("%s %s" % (n, st))
        say("   watch: " + ", ".join(out))

    def serve(self, pod):
        """GET / on the pod's IP. Ready means the container started (there is no readiness
        probe, as in the note's manifest), so its server may take a moment to listen."""
        ip = pod["status"]["podIP"]
        t0 = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen("http://%s/" % ip, timeout=5) as r:
                    return ip, r.read().decode().strip()
            except ConnectionRefusedError:
                pass
            except urllib.error.URLError as e:
                if not isinstance(e.reason, ConnectionRefusedError):
                    raise Failed("GET http://%s/ (%s): %s" % (
                        ip, pod["metadata"]["name"], e))
            if time.monotonic() - t0 > 10:
                raise Failed("%s's web server at %s refuses connections for 10 s" % (
                    pod["metadata"]["name"], ip))
            time.sleep(0.1)

    def data(self, n):
        """What each pod's web server answers, as curl would show it."""
        ps = self.pods()
        out = {}
        for i in range(n):
            ip, body = self.serve(ps["web-%d" % i])
            say("   $ curl http://%s/    # web-%d on %s\n     %s" % (
                ip, i, ps["web-%d" % i]["spec"]["nodeName"], body))
            out["web-%d" % i] = body
        return out

    def claim_volumes(self):
        return {k: v["spec"].get("volumeName") for k, v in self.claims().items()}

    def stores(self):
        """The backing store folders of the claims under every node's Ordinal root."""
        out = {}
        nodes = os.path.join(self.dir, "nodes")
        for node in sorted(os.listdir(nodes)):
            d = os.path.join(nodes, node, "root", "default")
            if os.path.isdir(d):
                for name in os.listdir(d):
                    out[name] = node
        return out

    def step(self, title):
        self.t_step = time.monotonic()
        self.title = title
        say("\n== %d. %s" % (len(self.steps), title))

    def done(self, result):
        self.steps.append((self.title, result, time.monotonic() - self.t_step))

    # --- the scenario --------------------------------------------------------------------

    def start(self):
        say("== 0. a 3-node sandbox cluster in %s" % self.dir)
        t0 = time.monotonic()
        try:
            sbx = sbxctl.up(self.dir, nodes=3, csi=self.csi)
        except sbxctl.SandboxError as e:
            raise Failed(str(e)) from None
        self.up = True
        say("   " + sbx.up_output.strip().split("\n")[0])
        self.show("get", "nodes")
        self.steps.append(("sandbox up (3 nodes, 3 ordinal-csi)", "ready",
                           time.monotonic() - t0))

    def ordered_start(self):
        self.step("ordered start: kubectl apply -f web.yaml")
        n0 = self.open_watches()
        self.watch("pods")
        self.watch("pvc")
        self.watch("pv")
        self.wait("kubectl's watches on pods, claims and volumes",
                  lambda: self.open_watches() >= n0 + 3)
        self.manifest = os.path.join(self.tmp, "web.yaml")
        with open(self.manifest, "w") as f:
            f.write(MANIFEST)
        m = self.mark()
        self.show("apply", "-f", self.manifest)
        self.wait("web-0, web-1, web-2 Running and Ready", self.all_ready(3))
        # From the watch: each pod is created only once the previous one is Ready.
        self.wait("the watch to see web-2 Ready", lambda: self.pod_ready_seq("web-2", m))
        for i in (1, 2):
            prev_ready = self.pod_ready_seq("web-%d" % (i - 1), m)
            added = self.pod_added_seq("web-%d" % i, m)
            check(prev_ready is not None and added is not None and prev_ready < added,
                  "web-%d was created only after web-%d was Running and Ready" % (i, i - 1))
        self.timeline(m, {"web-0", "web-1", "web-2"})
        self.show("get", "pod", "-o", "wide")
        self.show("get", "pvc")
        cs = self.claims()
        for i in range(3):
            c = cs.get("www-web-%d" % i) or {}
            st = c.get("status") or {}
            check(st.get("phase") == "Bound" and st.get("capacity", {}).get("storage") == "1Gi"
                  and st.get("accessModes") == ["ReadWriteOnce"]
                  and c["spec"].get("storageClassName") == "ordinal"
                  and (c["spec"].get("volumeName") or "").startswith("pvc-"),
                  "www-web-%d Bound to %s, 1Gi RWO ordinal" % (i, c["spec"].get("volumeName")))
        out = self.show("describe", "pvc", "www-web-0", start="Events:")
        check("ProvisioningSucceeded" in out and "ordinal.csi.dev_" in out,
              "www-web-0 was provisioned by Ordinal's built-in provisioner")
        self.volumes = self.claim_volumes()
        self.done("web-0 < web-1 < web-2, 3 claims Bound")

    def write_data(self):
        self.step("each pod writes its hostname into its volume; its web server serves it")
        for i in range(3):
            self.show("exec", "web-%d" % i, "--", "sh", "-c",
                      "hostname > /usr/share/nginx/html/index.html")
        got = self.data(3)
        for i in range(3):
            check(got["web-%d" % i] == "web-%d" % i, "web-%d serves \"web-%d\"" % (i, i),
                  got["web-%d" % i])
        out = self.show("logs", "web-0", "--tail=2")
        check('"GET / HTTP/1.1" 200' in out, "web-0's web server logged the request")
        self.done("3 pods serve their own volume")

    def delete_pod(self):
        self.step("delete web-1: it comes back with the same claim, node and data")
        old = self.get("pod", "web-1")
        self.show("delete", "pod", "web-1")
        new = self.wait("a new web-1 Running and Ready", lambda: (
            lambda p: p if self.ready(p) and p["metadata"]["uid"] != old["metadata"]["uid"]
            else None)(self.get("pod", "web-1")))
        self.show("get", "pod", "web-1", "-o", "wide")
        check(new["spec"]["nodeName"] == old["spec"]["nodeName"],
              "web-1 is back on %s" % old["spec"]["nodeName"])
        claim = [v["persistentVolumeClaim"]["claimName"] for v in new["spec"]["volumes"]
                 if "persistentVolumeClaim" in v]
        check(claim == ["www-web-1"] and self.claim_volumes()["www-web-1"] ==
              self.volumes["www-web-1"], "web-1 mounts www-web-1, still %s" %
              self.volumes["www-web-1"])
        check(self.data(3)["web-1"] == "web-1", "web-1 still serves \"web-1\"")
        self.done("same claim, node, data")

    def scale(self):
        self.step("scale to 1: web-2 stops before web-1; claims and data stay")
        if self.plugin:
            out = self.show("ordinal", "plan", "scale", "web", "--replicas", "1")
            plan = json.loads(self.kubectl("ordinal", "plan", "scale", "web", "--replicas", "1",
                                           "-o", "json"))
            fates = {o["ordinal"]: (o["pod"], o["data"]) for o in plan["ordinals"]}
            check(fates == {0: ("kept", "kept"), 1: ("deleted", "kept"),
                            2: ("deleted", "kept")} and "Nothing has been changed." in out,
                  "kubectl ordinal plans web-2 then web-1 stopping, every ordinal's data kept")
            check([s["ordinal"] for s in plan["steps"]] == [2, 1],
                  "the plan deletes pod web-2 before web-1")
        m = self.mark()
        self.show("scale", "statefulset", "web", "--replicas=1")
        self.wait("only web-0 left", lambda: sorted(self.pods()) == ["web-0"])
        gone2 = self.pod_gone_seq("web-2", m)
        stop1 = self.pod_stopping_seq("web-1", m)
        check(gone2 is not None and stop1 is not None and gone2 < stop1,
              "web-1 began stopping only after web-2 was gone")
        self.timeline(m, {"web-1", "web-2"})
        self.show("get", "pod,pvc")
        check(self.claim_volumes() == self.volumes,
              "www-web-0..2 all kept, bound to the same volumes (whenScaled: Retain)")
        if self.plugin:
            self.show("ordinal", "status", "web")
        say("   scale back to 3")
        m = self.mark()
        self.show("scale", "statefulset", "web", "--replicas=3")
        self.wait("web-0, web-1, web-2 Running and Ready", self.all_ready(3))
        self.wait("the watch to see web-2 Ready", lambda: self.pod_ready_seq("web-2", m))
        r1, a2 = self.pod_ready_seq("web-1", m), self.pod_added_seq("web-2", m)
        check(r1 is not None and a2 is not None and r1 < a2,
              "web-2 was created only after web-1 was Running and Ready")
        self.timeline(m, {"web-1", "web-2"})
        check(self.claim_volumes() == self.volumes, "same claims, same volumes")
        got = self.data(3)
        check(all(got["web-%d" % i] == "web-%d" % i for i in range(3)), "same data", got)
        self.done("web-2 then web-1 stopped; same claims and data back")

    def revision_of(self, pod):
        return pod["metadata"]["labels"].get("controller-revision-hash")

    def set_status(self):
        s = self.get("sts", "web")
        st = s.get("status") or {}
        ok = st.get("observedGeneration") == s["metadata"]["generation"]
        return s, st, ok

    def rolling_update(self):
        self.step("rolling update: partition 2, then 0; then OnDelete")
        self.show("patch", "statefulset", "web", "-p",
                  '{"spec":{"updateStrategy":{"type":"RollingUpdate",'
                  '"rollingUpdate":{"partition":2}}}}')
        m = self.mark()
        self.show("set", "env", "statefulset/web", "DEMO_REVISION=2")
        _, st, _ = self.wait("the controller to see the new template",
                             lambda: (lambda r: r if r[2] and r[1].get("updateRevision") !=
                                      r[1].get("currentRevision") else None)(self.set_status()))
        new = st["updateRevision"]

        def updated(names):
            def cond():
                ps = self.pods()
                if sorted(ps) != ["web-0", "web-1", "web-2"] or not all(
                        self.ready(p) for p in ps.values()):
                    return None
                revs = {n: self.revision_of(p) == new for n, p in ps.items()}
                return ps if all(revs[n] == (n in names) for n in revs) else None
            return cond
        self.wait("web-2 replaced (ordinals below the partition keep the old revision)",
                  updated({"web-2"}))
        self.timeline(m, {"web-0", "web-1", "web-2"})
        self.show("get", "pod", "-L", "controller-revision-hash")
        check(self.pod_stopping_seq("web-1", m) is None and
              self.pod_stopping_seq("web-0", m) is None,
              "only web-2 was replaced; web-0, web-1 untouched (partition 2)")
        m = self.mark()
        self.show("patch", "statefulset", "web", "-p",
                  '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
        self.show("rollout", "status", "statefulset/web", "--timeout=60s")
        self.wait("all pods on the new revision", updated({"web-0", "web-1", "web-2"}))
        self.wait("the watch to see web-0 Ready",
                  lambda: self.pod_ready_seq(
                      "web-0", self.pod_added_seq("web-0", m, True) or 10**9))
        r1 = self.pod_ready_seq("web-1", self.pod_added_seq("web-1", m, True) or 10**9)
        s0 = self.pod_stopping_seq("web-0", m)
        s1 = self.pod_stopping_seq("web-1", m)
        check(s1 is not None and r1 is not None and s0 is not None and s1 < r1 < s0,
              "web-1 replaced before web-0, web-0 only after the new web-1 was Ready")
        self.timeline(m, {"web-0", "web-1", "web-2"})
        self.show("get", "pod", "-L", "controller-revision-hash")
        got = self.data(3)
        check(all(got["web-%d" % i] == "web-%d" % i for i in range(3)),
              "every pod kept its data through the update", got)

        say("   OnDelete: a template change replaces nothing until a pod is deleted")
        self.show("patch", "statefulset", "web", "-p",
                  '{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}')
        m = self.mark()
        self.show("set", "env", "statefulset/web", "DEMO_REVISION=3")
        _, st, _ = self.wait("the controller to see the new template",
                             lambda: (lambda r: r if r[2] and r[1].get("updateRevision") !=
                                      new else None)(self.set_status()))
        new = st["updateRevision"]
        check(st.get("updatedReplicas", 0) == 0 and all(
            self.revision_of(p) != new for p in self.pods().values()) and
            self.pod_stopping_seq("web-0", m) is None and
            self.pod_stopping_seq("web-1", m) is None and
            self.pod_stopping_seq("web-2", m) is None,
            "no pod replaced by the controller (updatedReplicas 0)")
        self.show("delete", "pod", "web-0")
        self.wait("web-0 back on the new revision", updated({"web-0"}))
        self.show("get", "pod", "-L", "controller-revision-hash")
        check(self.data(3)["web-0"] == "web-0", "web-0 still serves \"web-0\"")
        self.done("web-2, web-1, web-0 in turn; OnDelete waits for deletes")

    def retention(self):
        self.step("retention: delete the set (whenDeleted: Retain) and create it again")
        self.show("delete", "statefulset", "web")
        self.wait("every pod gone", lambda: not self.pods())
        self.show("get", "pod,pvc")
        check(self.claim_volumes() == self.volumes, "the 3 claims stay, Bound to their volumes")
        self.show("apply", "-f", self.manifest)
        self.wait("web-0, web-1, web-2 Running and Ready", self.all_ready(3))
        check(self.claim_volumes() == self.volumes, "the new set adopted the same 3 claims")
        got = self.data(3)
        check(all(got["web-%d" % i] == "web-%d" % i for i in range(3)),
              "every ordinal got its data back", got)

        say("   whenScaled: Delete, then scale to 1: the claims of web-2 and web-1 go, "
            "and Ordinal deletes their volumes")
        self.show("patch", "statefulset", "web", "-p",
                  '{"spec":{"persistentVolumeClaimRetentionPolicy":{"whenScaled":"Delete"}}}')
        before = self.stores()
        check(sorted(before) == ["www-web-0", "www-web-1", "www-web-2"],
              "backing stores under the nodes' roots: %s" % ", ".join(
                  "%s on %s" % (k, v) for k, v in sorted(before.items())))
        m = self.mark()
        self.show("scale", "statefulset", "web", "--replicas=1")
        self.wait("claims www-web-1 and www-web-2 deleted",
                  lambda: sorted(self.claims()) == ["www-web-0"])
        self.wait("their PVs deleted", lambda: sorted(self.get("pv")) ==
                  [self.volumes["www-web-0"]])
        self.wait("their backing stores removed from the nodes",
                  lambda: sorted(self.stores()) == ["www-web-0"])
        self.show("get", "pod,pvc,pv")
        def released(claim):
            return self.first("pvc", m, lambda t, o: o["metadata"]["name"] == claim and (
                t == "DELETED" or o["metadata"].get("deletionTimestamp")))
        self.wait("kubectl's watches to show web-1 and www-web-1 gone", lambda: self.pod_gone_seq(
            "web-1", m) is not None and released("www-web-1") is not None)
        gone2, stop1 = self.pod_gone_seq("web-2", m), self.pod_stopping_seq("web-1", m)
        gone1 = self.pod_gone_seq("web-1", m)
        r2, r1 = released("www-web-2"), released("www-web-1")
        check(None not in (gone2, stop1, gone1, r2, r1) and gone2 < stop1 and gone2 < r2 and
              gone1 < r1, "web-2 and its claim went first; web-1 began stopping only after "
              "web-2 was gone, and its claim went after it")
        # The order in which Ordinal deleted the released volumes, from the PV watch's
        # DELETED events (one stream, in the server's order). Each volume goes after its claim;
        # the order between the two is the pods' order in practice but not a guarantee on a
        # class without ordinal.csi.dev/ordering (docs/DECISIONS.md), so it is shown, and only
        # what is guaranteed is checked.
        self.wait("the PV watch to show both deletions", lambda: len(
            [1 for e in self.history("pv", m) if e[2] == "DELETED"]) >= 2)
        order, seq = [], {}
        for _, _, typ, o in self.history("pv", m):
            if typ == "DELETED":
                claim = (o["spec"].get("claimRef") or {}).get("name")
                order.append((claim, o["metadata"]["name"]))
                seq[claim] = int(o["metadata"]["resourceVersion"])
        say("   watch: volumes deleted by Ordinal, in order: " + ", ".join(
            "%s (%s)" % (pv, claim) for claim, pv in order))
        check(sorted(seq) == ["www-web-1", "www-web-2"] and
              r2 < seq["www-web-2"] and r1 < seq["www-web-1"],
              "Ordinal deleted each released volume after its claim was gone, and their stores "
              "are gone from the nodes", ["%s (%s)" % (pv, claim) for claim, pv in order])
        check(self.data(1)["web-0"] == "web-0", "web-0 keeps its claim and data")
        self.done("Retain: data back; whenScaled Delete: claims and volumes gone, 2 then 1")

    def summary(self, total):
        say("\n== summary")
        w = max(len(s[0]) for s in self.steps)
        for title, result, secs in self.steps:
            say("   %-*s  %6.1f s  %s" % (w, title, secs, result))
        say("   %-*s  %6.1f s  %s" % (w, "total", total, "all expectations met"))

    def stop(self):
        for p in self.watchers:
            p.terminate()
        for p in self.watchers:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if not self.up:
            return
        if self.keep:
            say("\nthe sandbox is still up:\n   export KUBECONFIG=%s\n   %s %s down --dir %s"
                "\n   rm -rf %s      # after down: volumes, logs" % (
                    self.kubeconfig, PYTHON, SANDBOX, self.dir, self.tmp))
            return
        p = sbxctl.down(self.dir)
        if p.returncode != 0:
            say("ordinal-sandbox down: %s%s" % (p.stdout, p.stderr))
        elif self.ok:
            shutil.rmtree(self.tmp, ignore_errors=True)   # on failure the logs stay


def main():
    args = sys.argv[1:]
    keep = "--keep" in args
    args = [a for a in args if a != "--keep"]
    if len(args) != 1 or not os.access(args[0], os.X_OK):
        sys.exit("usage: %s BUILD/ordinal-csi [--keep]" % sys.argv[0])
    try:
        subprocess.run([KUBECTL, "version", "--client"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        sys.exit("demo: kubectl (v1.32) is needed on PATH (or KUBECTL=...)")

    def term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, term)
    d = Demo(args[0], keep)
    t0 = time.monotonic()
    rc = 1
    try:
        d.start()
        d.ordered_start()
        d.write_data()
        d.delete_pod()
        d.scale()
        d.rolling_update()
        d.retention()
        d.summary(time.monotonic() - t0)
        d.ok = True
        rc = 0
    except Failed as e:
        say("\ndemo: FAILED in step %r: %s" % (getattr(d, "title", "sandbox up"), e))
        say("   logs: %s" % os.path.join(d.dir, "logs"))
    except Exception as e:  # anything unforeseen is a failure too, said as such
        traceback.print_exc()
        say("\ndemo: FAILED in step %r: %s" % (getattr(d, "title", "sandbox up"), e))
        say("   logs: %s" % os.path.join(d.dir, "logs"))
    except KeyboardInterrupt:
        say("\ndemo: interrupted")
        rc = 130
    finally:
        d.stop()
    sys.exit(rc)


if __name__ == "__main__":
    main()
