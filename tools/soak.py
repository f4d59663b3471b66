#!/usr/bin/python3
"""Soak: random StatefulSet lifecycles on the sandbox for MINUTES, invariants after every step.

    /usr/bin/python3 tools/soak.py MINUTES [--csi build/debug/ordinal-csi] [--nodes 2]
                                           [--seed N] [--dir DIR] [--json FILE]

Starts `deploy/sandbox/ordinal-sandbox up` in a temporary directory (or DIR) and talks to it
only through its public surface: the kubeconfig (kubectl and plain API requests with its token),
the fault endpoint /_fault, state.json (node plugin pids and roots) and `ordinal-sandbox down`.

Each step: one action (create a StatefulSet with a random claim retention policy and class,
scale up or down, delete it, delete a pod, a rolling update), then while it is under way maybe a
fault (ordinal-csi's API requests get 500s or 429s at 30% or 300 ms latency, watch streams cut,
410 on the next watches, 409 on the next updates, a node's ordinal-csi killed -9), lifted once
it was seen to bite (its counters moved) or 5 s passed, then a wait until everything has
converged (every replica's pod Ready and its claim Bound; nothing being deleted, no Delete PV
left Released), then the invariants, on the API objects and on every node's root:

  * no store without a PV (a Retained PV is its record): no leak
  * no store with two PVs
  * no Bound claim whose PV's store is missing
  * data: a token the soak wrote into each store's data/ is still there, byte for byte, as
    long as the store lives (through scale down/up, pod deletion, plugin kills and the
    re-adoption of Retained volumes by a new claim of the same name)
  * nothing in a root but the directory backend's layout

The data check works on the store (the node root), not inside a pod: a pod's view of it is the
bind mount of that directory. ordinal-csi's RSS and open fd count are sampled after every step.
Exit 1 on an invariant break or a step that does not converge within 120 s; the summary (steps,
faults, checks, RSS and fds at start and end per plugin process) is printed and, with --json,
written as JSON.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "k8s"))
sys.path.insert(0, os.path.join(SRC, "tests", "sandbox"))
from fakeapi import KUBECTL, PYTHON, ApiError, Client  # noqa: E402
from sbxlib import AutoReady, Cluster  # noqa: E402

SANDBOX = os.path.join(SRC, "deploy", "sandbox", "ordinal-sandbox")
NS = "default"
NAMES = ["web", "db", "cache"]
CONVERGE_S = 120
TOKEN = ".soak-token"
KEY_CTX = "ordinal.csi.dev/key"


class Break(Exception):
    pass

WARMUP_S = 120  # a process's first two minutes are its warm-up in the summary


def log(msg):
    print("%s soak: %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.dir = args.dir or tempfile.mkdtemp(prefix="ordinal-soak-")
        self.stats = {"steps": 0, "faults": {}, "actions": {}, "checks": 0, "breaks": [],
                      "converge_s": [], "samples": []}
        self.sets = {}       # name -> {"replicas", "policy", "class"}
        self.tokens = {}     # (node, key) -> token written into the store
        self.counter = 0

    # ---- the sandbox ----

    def up(self):
        sub = os.path.join(self.dir, "sbx")
        p = subprocess.run([PYTHON, SANDBOX, "up", "--dir", sub, "--nodes", str(self.args.nodes),
                            "--csi", self.args.csi], capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            raise SystemExit("ordinal-sandbox up failed:\n%s%s" % (p.stdout, p.stderr))
        self.sbx = sub
        with open(os.path.join(sub, "ready")) as f:
            ready = json.load(f)
        with open(os.path.join(sub, "token")) as f:
            token = f.read().strip()
        self.client = Client(ready["server"], token, os.path.join(sub, "pki", "ca.crt"))
        self.kubeconfig = os.path.join(sub, "kubeconfig")
        self.kubelets = any(n.get("kubelet") for n in self.state()["nodes"])
        self.auto = None
        if not self.kubelets:
            # no kubelet in this sandbox: report pods Running as one would, once scheduled
            self.cluster = Cluster(self)
            self.auto = AutoReady(self.cluster, wait_node=True)

    def down(self):
        if self.auto:
            self.auto.stopped = True
        subprocess.run([PYTHON, SANDBOX, "down", "--dir", self.sbx], capture_output=True,
                       timeout=120)

    def state(self):
        with open(os.path.join(self.sbx, "state.json")) as f:
            return json.load(f)

    def kubectl(self, *args, input=None, check=True):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        p = subprocess.run([KUBECTL, "--cache-dir", os.path.join(self.dir, "kcache")] +
                           list(args), env=env, input=input, capture_output=True, text=True,
                           timeout=60)
        if check and p.returncode != 0:
            raise Break("kubectl %s: %s" % (" ".join(args), p.stderr.strip()))
        return p

    def fault(self, **spec):
        return self.client.call("POST", "/_fault", spec)

    def fault_stats(self):
        return self.client.call("GET", "/_fault").get("stats", {})

    # ---- steps ----

    def sts(self, name, replicas, policy, cls, rev="1"):
        return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
                "spec": {"replicas": replicas, "serviceName": name,
                         "selector": {"matchLabels": {"app": name}},
                         "persistentVolumeClaimRetentionPolicy": {"whenScaled": policy[0],
                                                                  "whenDeleted": policy[1]},
                         "template": {"metadata": {"labels": {"app": name},
                                                   "annotations": {"soak/rev": rev}},
                                      "spec": {"terminationGracePeriodSeconds": 1,
                                               "containers": [{
                                                   "name": "c", "image": "busybox",
                                                   "command": ["sleep", "3600"],
                                                   "volumeMounts": [{"name": "data",
                                                                     "mountPath": "/data"}]}]}},
                         "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                             "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                             "resources": {"requests": {"storage": "64Mi"}}}}]}}

    def action(self):
        free = [n for n in NAMES if n not in self.sets]
        choices = []
        if free:
            choices += ["create"] * 3
        if self.sets:
            choices += ["scale", "scale", "delete", "kill_pod", "rollout"]
        what = self.rng.choice(choices)
        if what == "create":
            name = self.rng.choice(free)
            policy = (self.rng.choice(["Retain", "Delete"]), self.rng.choice(["Retain", "Delete"]))
            cls = self.rng.choice(["ordinal", "ordinal-retain"])
            n = self.rng.randint(1, 3)
            self.kubectl("apply", "-f", "-", input=json.dumps(self.sts(name, n, policy, cls)))
            self.sets[name] = {"replicas": n, "policy": policy, "class": cls, "rev": 1}
            desc = "create %s x%d whenScaled=%s whenDeleted=%s class=%s" % (
                name, n, policy[0], policy[1], cls)
        else:
            name = self.rng.choice(sorted(self.sets))
            s = self.sets[name]
            if what == "scale":
                n = self.rng.choice([x for x in range(0, 4) if x != s["replicas"]])
                self.kubectl("scale", "sts", name, "--replicas=%d" % n)
                desc = "scale %s %d -> %d" % (name, s["replicas"], n)
                s["replicas"] = n
            elif what == "delete":
                self.kubectl("delete", "sts", name, "--wait=false")
                del self.sets[name]
                desc = "delete %s (whenDeleted=%s)" % (name, s["policy"][1])
            elif what == "kill_pod":
                if s["replicas"] == 0:
                    return self.action()
                i = self.rng.randrange(s["replicas"])
                self.kubectl("delete", "pod", "%s-%d" % (name, i), "--wait=false",
                             "--grace-period=0", "--force", check=False)
                desc = "delete pod %s-%d" % (name, i)
            else:
                s["rev"] += 1
                self.kubectl("patch", "sts", name, "--type=merge", "-p", json.dumps(
                    {"spec": {"template": {"metadata": {"annotations": {
                        "soak/rev": str(s["rev"])}}}}}))
                desc = "rolling update %s to rev %d" % (name, s["rev"])
        self.stats["actions"][what] = self.stats["actions"].get(what, 0) + 1
        return desc

    def inject(self):
        kinds = ["none", "none", "500", "429", "drop_watches", "expire", "conflict", "latency",
                 "kill_csi"]
        k = self.rng.choice(kinds)
        if k == "500" or k == "429":
            self.fault(error_rate=30, error_code=int(k), retry_after=1, agent="ordinal/")
        elif k == "drop_watches":
            self.fault(drop_watches=True)
        elif k == "expire":
            self.fault(expire_next_watch=3)
        elif k == "conflict":
            self.fault(conflict_next_update=3)
        elif k == "latency":
            self.fault(latency_ms=300, agent="ordinal/")
        elif k == "kill_csi":
            now = time.monotonic()
            last = self.__dict__.setdefault("last_kill", {})
            nodes = [n for n in self.state()["nodes"] if n["name"] not in self.args.spare and
                     now - last.get(n["name"], -1e9) >= self.args.kill_every]
            if not nodes:
                return "none"
            node = self.rng.choice(nodes)
            last[node["name"]] = now
            self.killed = node["pid"]
            try:
                os.kill(node["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass  # gone already: still a plugin to wait for
            k = "kill_csi(%s)" % node["name"]
        if k != "none":
            self.stats["faults"][k.split("(")[0]] = self.stats["faults"].get(k.split("(")[0], 0) + 1
        return k

    def lift(self, kind, before):
        if kind.startswith("kill_csi"):
            # lifted when the kubelet has started the plugin again: after a few kills that is
            # its CrashLoopBackOff (10 s doubling to 300 s, as kubelet's), not ours to converge
            name = kind[len("kill_csi("):-1]
            t = time.monotonic()
            while time.monotonic() - t < 330:
                n = next(n for n in self.state()["nodes"] if n["name"] == name)
                if n["pid"] != self.killed and os.path.exists("/proc/%d" % n["pid"]):
                    break
                time.sleep(0.25)
            self.stats.setdefault("restart_wait_s", []).append(round(time.monotonic() - t, 1))
            return
        if kind in ("none",):
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.fault_stats() == before:
            time.sleep(0.2)
        self.fault(reset=True)

    # ---- convergence and invariants ----

    def converged(self):
        claims = {c["metadata"]["name"]: c for c in
                  self.client.list("persistentvolumeclaims", ns=NS)["items"]}
        pods = {p["metadata"]["name"]: p for p in self.client.list("pods", ns=NS)["items"]}
        pvs = self.client.list("persistentvolumes", ns=None)["items"]
        for name, s in self.sets.items():
            for i in range(s["replicas"]):
                c = claims.get("data-%s-%d" % (name, i))
                if not c or (c.get("status") or {}).get("phase") != "Bound":
                    return False
                p = pods.get("%s-%d" % (name, i))
                if not p or p["metadata"].get("deletionTimestamp"):
                    return False
                if not any(x["type"] == "Ready" and x["status"] == "True"
                           for x in (p.get("status") or {}).get("conditions") or []):
                    return False
            sts = self.client.get("statefulsets", name, ns=NS)
            st = sts.get("status") or {}
            if st.get("observedGeneration") != sts["metadata"].get("generation") or \
                    st.get("updatedReplicas", 0) != s["replicas"] and s["replicas"]:
                return False
        if any(c["metadata"].get("deletionTimestamp") for c in claims.values()):
            return False
        for p in pods.values():
            owner, _, ordinal = p["metadata"]["name"].rpartition("-")
            if owner not in self.sets:
                return False  # a pod of a deleted set still going
            if ordinal.isdigit() and int(ordinal) >= self.sets[owner]["replicas"]:
                return False  # scaled down, not gone yet
        for pv in pvs:
            if pv["metadata"].get("deletionTimestamp"):
                return False
            if (pv.get("status") or {}).get("phase") == "Released" and \
                    pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                return False
        for name in NAMES:  # a deleted set is gone, with whenDeleted=Delete its claims too
            if name not in self.sets and self.client.exists("statefulsets", name, ns=NS):
                return False
        return True

    def picture(self):
        """Ready pods and Bound claims per set, for the log: "web 2/2 pods, 3 claims"."""
        pods = self.client.list("pods", ns=NS)["items"]
        claims = self.client.list("persistentvolumeclaims", ns=NS)["items"]
        out = []
        for name in sorted(self.sets):
            ready = sum(1 for p in pods if p["metadata"]["name"].rsplit("-", 1)[0] == name and
                        any(x["type"] == "Ready" and x["status"] == "True"
                            for x in (p.get("status") or {}).get("conditions") or []))
            bound = sum(1 for c in claims if c["metadata"]["name"].startswith("data-%s-" % name)
                        and (c.get("status") or {}).get("phase") == "Bound")
            out.append("%s %d/%d pods, %d claims" % (name, ready, self.sets[name]["replicas"],
                                                      bound))
        return ", ".join(out) or "no sets"

    def stores(self):
        """(node, key) -> data directory, for every store on every node root."""
        out = {}
        for n in self.state()["nodes"]:
            root = n["root"]
            for top in sorted(os.listdir(root)):
                if top in (".tmp", ".trash", ".snapshots"):
                    continue
                d = os.path.join(root, top)
                if not os.path.isdir(d) or (top != "_" and not top[0].isalnum()):
                    self.fail("unexpected entry %s in root %s" % (top, root))
                    continue
                for claim in sorted(os.listdir(d)):
                    vd = os.path.join(d, claim)
                    if os.path.isfile(os.path.join(vd, "volume.meta")):
                        out[(n["name"], "%s/%s" % (top, claim))] = os.path.join(vd, "data")
        return out

    def fail(self, msg):
        log("INVARIANT BROKEN: " + msg)
        self.stats["breaks"].append(msg)

    def check(self):
        stores = self.stores()
        pvs = self.client.list("persistentvolumes", ns=None)["items"]
        claims = self.client.list("persistentvolumeclaims", ns=NS)["items"]
        by_store = {}
        pv_by_name = {}
        for pv in pvs:
            csi = pv["spec"].get("csi") or {}
            if csi.get("driver") != "ordinal.csi.dev":
                continue
            pv_by_name[pv["metadata"]["name"]] = pv
            terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
            node = terms[0]["matchExpressions"][0]["values"][0]
            key = (csi.get("volumeAttributes") or {}).get(KEY_CTX)
            by_store.setdefault((node, key), []).append(pv["metadata"]["name"])
        for s in stores:
            n = len(by_store.get(s, []))
            self.stats["checks"] += 1
            if n == 0:
                self.fail("store %s on %s has no PV (leak)" % (s[1], s[0]))
            elif n > 1:
                self.fail("store %s on %s has %d PVs: %s" % (s[1], s[0], n, by_store[s]))
        for c in claims:
            if (c.get("status") or {}).get("phase") != "Bound":
                continue
            pv = pv_by_name.get(c["spec"].get("volumeName"))
            self.stats["checks"] += 1
            if not pv:
                self.fail("claim %s Bound to a missing PV" % c["metadata"]["name"])
                continue
            terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
            s = (terms[0]["matchExpressions"][0]["values"][0],
                 pv["spec"]["csi"]["volumeAttributes"].get(KEY_CTX))
            if s not in stores:
                self.fail("claim %s Bound to PV %s whose store %s on %s is missing" % (
                    c["metadata"]["name"], pv["metadata"]["name"], s[1], s[0]))
        # data: every store keeps what was written into it while it lives
        for s in list(self.tokens):
            if s not in stores:
                del self.tokens[s]  # deleted (reclaim policy Delete): a new one starts empty
        for s, data in stores.items():
            path = os.path.join(data, TOKEN)
            self.stats["checks"] += 1
            if s in self.tokens:
                try:
                    with open(path) as f:
                        got = f.read()
                except OSError as e:
                    got = "(%s)" % e.strerror
                if got != self.tokens[s]:
                    self.fail("store %s on %s: data %r, wrote %r" % (s[1], s[0], got,
                                                                      self.tokens[s]))
            else:
                self.counter += 1
                tok = "%s@%s#%d" % (s[1], s[0], self.counter)
                with open(path + ".tmp", "w") as f:
                    f.write(tok)
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(path + ".tmp", path)
                self.tokens[s] = tok

    def sample(self):
        st = self.state()
        procs = [("node", n) for n in st["nodes"]] + \
            [("controller", c) for c in st.get("controllers", [])]
        for role, n in procs:
            pid = n["pid"]
            try:
                with open("/proc/%d/status" % pid) as f:
                    rss = [int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")][0]
                fds = len(os.listdir("/proc/%d/fd" % pid))
            except (OSError, IndexError):
                continue
            self.stats["samples"].append({"t": round(time.monotonic() - self.t0, 1),
                                          "role": role, "node": n["name"], "pid": pid,
                                          "rss_kb": rss,
                                          "fds": fds})

    # ---- the run ----

    def run(self):
        self.t0 = time.monotonic()
        end = self.t0 + self.args.minutes * 60
        self.sample()
        while time.monotonic() < end:
            self.stats["steps"] += 1
            t = time.monotonic()
            desc = self.action()
            before = self.fault_stats()
            fault = self.inject()
            self.lift(fault, before)
            if fault.startswith("kill_csi"):
                t = time.monotonic()  # converging starts once the plugin runs again
            while not self.converged():
                if time.monotonic() - t > CONVERGE_S:  # from the action's start
                    self.fail("step %d (%s, fault %s) did not converge in %d s" % (
                        self.stats["steps"], desc, fault, CONVERGE_S))
                    return
                time.sleep(0.25)
            self.stats["converge_s"].append(round(time.monotonic() - t, 2))
            self.check()
            self.sample()
            log("step %d: %s, fault %s: converged in %.1f s: %s; %d stores checked" % (
                self.stats["steps"], desc, fault, time.monotonic() - t, self.picture(),
                len(self.tokens)))
            if self.stats["breaks"]:
                return

    def summary(self):
        st = self.stats
        conv = sorted(st["converge_s"]) or [0]
        pct = lambda q: conv[min(len(conv) - 1, int(q * len(conv)))]
        lines = ["steps %d, faults %s, actions %s, invariant checks %d, breaks %d" % (
            st["steps"], json.dumps(st["faults"], sort_keys=True),
            json.dumps(st["actions"], sort_keys=True), st["checks"], len(st["breaks"])),
            "convergence p50 %.1f s, p90 %.1f s, max %.1f s" % (pct(0.5), pct(0.9), conv[-1]),
            "waits for a killed plugin's restart (kubelet back-off): %s s" % (
                st.get("restart_wait_s") or "none")]
        # One line per process lifetime (a kill -9 fault or a restart starts a new one): RSS and
        # fds at its first sample, after warm-up (the first sample at least WARMUP_S into its
        # life, or a fifth of it when it lived less), at its end, and the extremes after warm-up.
        procs = {}
        for s in st["samples"]:
            procs.setdefault((s.get("role", "node"), s["node"], s["pid"]), []).append(s)
        longest = {}
        for (role, node, pid), ss in sorted(procs.items(), key=lambda kv: kv[1][0]["t"]):
            life = ss[-1]["t"] - ss[0]["t"]
            warm = min(WARMUP_S, life / 5)
            w = next(s for s in ss if s["t"] - ss[0]["t"] >= warm)
            after = [s for s in ss if s["t"] >= w["t"]]
            lines.append("ordinal-csi %s %s pid %d: %d samples over %.0f s, RSS %d kB at start, "
                         "%d after warm-up (%.0f s), %d at end (min/max after warm-up %d/%d); "
                         "fds %d / %d / %d (max %d)" % (
                             role, node, pid, len(ss), life, ss[0]["rss_kb"], w["rss_kb"],
                             w["t"] - ss[0]["t"], ss[-1]["rss_kb"],
                             min(s["rss_kb"] for s in after), max(s["rss_kb"] for s in after),
                             ss[0]["fds"], w["fds"], ss[-1]["fds"], max(s["fds"] for s in after)))
            if life >= longest.get(role, (-1, ""))[0]:
                longest[role] = (life, lines[-1])
        for role, (life, line) in sorted(longest.items()):
            lines.append("longest-lived %s process: %s" % (role, line.split(": ", 1)[0]))
        return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("minutes", type=float)
    ap.add_argument("--csi", default=os.path.join(SRC, "build", "debug", "ordinal-csi"))
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--dir")
    ap.add_argument("--json")
    ap.add_argument("--spare", action="append", default=[], metavar="NODE",
                    help="a node whose plugin the kill faults leave alone (repeatable), so that "
                    "one plugin process lives through the whole run")
    ap.add_argument("--kill-every", type=float, default=0.0, metavar="SECONDS",
                    help="kill a node's plugin at most once per SECONDS (600: the kubelet's "
                    "restart back-off has reset, as it does after 10 min of running)")
    args = ap.parse_args()
    if args.minutes <= 0 or not os.path.exists(args.csi):
        ap.error("MINUTES must be > 0 and --csi an ordinal-csi binary")
    s = Soak(args)
    # SIGTERM ends the run as Ctrl-C does: the sandbox is taken down, the summary printed
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    log("seed %d, sandbox in %s" % (args.seed, s.dir))
    s.up()
    log("up: %d nodes, %s" % (args.nodes, "kubelets run the pods" if s.kubelets
                               else "no kubelet: the soak reports pods Running"))
    try:
        s.run()
    except (Break, ApiError) as e:
        s.fail("step %d: %s" % (s.stats["steps"], e))
    except KeyboardInterrupt:
        s.fail("interrupted at step %d" % s.stats["steps"])
    finally:
        s.sample()
        s.down()
    print(s.summary())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(s.stats, seed=args.seed), f, indent=1)
    if not s.stats["breaks"] and not args.dir:
        shutil.rmtree(s.dir, ignore_errors=True)
    sys.exit(1 if s.stats["breaks"] else 0)


if __name__ == "__main__":
    main()
