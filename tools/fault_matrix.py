#!/usr/bin/python3
"""The fault matrix on the sandbox: each operation crossed with each fault, table-driven.

    /usr/bin/python3 tools/fault_matrix.py [--csi build/debug/ordinal-csi] [--markdown FILE]
                                           [--short | --only OP_OR_FAULT ...]

One sandbox (2 nodes) for the whole matrix, through the same public surface and invariant
checks as the soak (tools/soak.py). A cell: bring a fresh StatefulSet (its own name) to the
state the operation starts from, with no fault; switch the fault on; start the operation; keep
the fault on until it has bitten (its counters moved, or the process was killed) and at least
FAULT_S seconds have passed (at most BITE_S); lift it; wait until the operation has completed and everything has
converged; check the invariants (no store without a PV, none with two PVs, no Bound claim
without its store, the data written into each store intact, nothing foreign in a root). The
cell reads "ok <seconds from the operation's start to convergence>" ("unused" added when the
fault's counters did not move while it was on: the operation made no request it could hit),
"NOT CONVERGED" (after 120 s) or "<n> BROKEN". Exit 1 unless every cell is ok.

Operations: provision (a claim provisioned, bound and published to its pod), pod restart (the
pod deleted and started again on its volume), scale down with whenScaled=Retain, release with
Delete (the set deleted with whenDeleted=Delete, class reclaimPolicy Delete: claim, PV and store
go), release with Retain (the same with class reclaimPolicy Retain: the PV stays Released with
its store), re-adoption (a set of the same name made again: its new claim gets the retained
store back, data intact).

Leader hand-over: a set scaled from 1 to 2 (the controller's reconciler admits ordinal 1)
while the Lease holder among the 2 controller replicas gets SIGTERM (it releases the Lease and
is restarted): done when the set converged and the Lease is held by a live controller process
other than the one stopped. Provision covers bind and publish (a cell ends when the pod is
Ready on its published volume).

Faults: ordinal-csi's API requests answered 500 or 429 at 30%, 500 ms latency on them, every
watch stream cut, 410 Expired on the next watches (relist), 409 Conflict on the next updates,
the node's ordinal-csi killed -9 (its kubelet restarts it), the claim's node's kubelet stopped
(`ordinal-sandbox node stop`: its pods and its plugin stop, the Node goes Unknown; lifted with
`node start`), both controller replicas killed -9 (restarted), disk full: every node root is a
tmpfs of ROOT_MB (mounted after `up`, the plugins restarted onto it, unmounted at the end),
remounted to the size it uses (no free block), lifted by remounting to ROOT_MB; a provisioning
cell under it must also leave an event on the claim saying so. The faults that always bite
(kills, kubelet, disk) stay on HOLD_S. Cells where the operation writes nothing on the node root
are marked n/a for disk full instead of run.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak  # noqa: E402

FAULT_S = 2.0  # the least time a fault stays on
BITE_S = 6.0   # the most time it stays on waiting to bite
NS = soak.NS

HOLD_S = 4.0   # how long a fault that always bites (a kill, a stopped kubelet, a full disk) stays
ROOT_MB = 512  # each node root is a tmpfs of this size (so that it can be filled)
LEASE = ("ordinal-system", "ordinal-csi-dev")  # the controllers' leader election Lease

FAULTS = ["500 at 30%", "429 at 30%", "latency 500 ms", "watches cut", "410 on relist",
          "409 on updates", "csi kill -9", "kubelet stopped", "controller kill -9", "disk full"]
ALWAYS = ("csi kill -9", "kubelet stopped", "controller kill -9", "disk full")
OPS = ["provision", "pod restart", "scale down", "release Delete", "release Retain",
       "re-adoption", "leader hand-over"]
# cells that cannot mean anything: the operation writes nothing on the node root
NOT_MEANINGFUL = {
    ("pod restart", "disk full"): "n/a: writes nothing on the root",
    ("scale down", "disk full"): "n/a: writes nothing on the root",
    ("release Retain", "disk full"): "n/a: writes nothing on the root",
}

# The short form (--short, the test command's): every fault once and every operation at least
# once, each fault on an operation where it bites (none of the n/a cells).
SHORT = [("provision", "500 at 30%"), ("pod restart", "429 at 30%"),
         ("scale down", "latency 500 ms"), ("release Delete", "watches cut"),
         ("release Retain", "410 on relist"), ("re-adoption", "409 on updates"),
         ("leader hand-over", "controller kill -9"), ("provision", "csi kill -9"),
         ("pod restart", "kubelet stopped"), ("release Delete", "disk full")]


def kill(pid, sig):
    """A process of state.json may be gone already (being restarted, or its node's kubelet
    stopped with its pods): nothing to kill then."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Matrix(soak.Soak):
    def __init__(self, args):
        args.seed = 0
        args.dir = None
        args.minutes = 0
        super().__init__(args)
        self.n = 0

    # ---- node roots on tmpfs (for the disk full fault) ----

    def up(self):
        super().up()
        self.tmpfs = []
        old = {n["name"]: n["pid"] for n in self.state()["nodes"]}
        for n in self.state()["nodes"]:
            root = n["root"]
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0755" % ROOT_MB,
                            "ordinal-matrix", root], check=True)
            self.tmpfs.append(root)
            os.kill(n["pid"], signal.SIGKILL)  # restarted by its kubelet, on the tmpfs root
        t0 = time.monotonic()
        self.wait(lambda: all(n["pid"] != old[n["name"]] and os.path.exists(n["socket"])
                              for n in self.state()["nodes"]), "plugins on tmpfs roots", t0)
        self.wait(lambda: all(os.listdir(r) for r in self.tmpfs), "layout on tmpfs roots", t0)

    def down(self):
        try:
            super().down()
        finally:
            for r in getattr(self, "tmpfs", []):
                subprocess.run(["umount", r], capture_output=True)

    def fill(self, full):
        """Disk full: each root's tmpfs shrunk to what it uses (no block left); lifted: back."""
        for r in self.tmpfs:
            if full:
                st = os.statvfs(r)
                used_kb = max(4, (st.f_blocks - st.f_bfree) * st.f_frsize // 1024)
                size = "size=%dk" % used_kb
            else:
                size = "size=%dm" % ROOT_MB
            subprocess.run(["mount", "-o", "remount," + size, r], check=True)

    # ---- the controllers ----

    def leader(self):
        try:
            lease = self.client.request("GET", "/apis/coordination.k8s.io/v1/namespaces/%s/"
                                        "leases/%s" % LEASE)
        except soak.ApiError:
            return None
        if lease.status != 200:
            return None
        holder = lease.body["spec"].get("holderIdentity")
        return next((c for c in self.state().get("controllers", []) if c["name"] == holder),
                    None)

    def wait(self, cond, what, t0):
        while not cond():
            if time.monotonic() - t0 > soak.CONVERGE_S:
                raise TimeoutError(what)
            time.sleep(0.2)

    def make(self, name, replicas, policy, cls):
        self.kubectl("apply", "-f", "-", input=soak.json.dumps(
            self.sts(name, replicas, policy, cls)))
        self.sets[name] = {"replicas": replicas, "policy": policy, "class": cls, "rev": 1}

    def settle(self):
        t0 = time.monotonic()
        self.wait(self.converged, "setup", t0)
        self.check()  # also writes the data tokens of new stores

    def fault_on(self, fault, node_of):
        if fault == "500 at 30%":
            self.fault(error_rate=30, error_code=500, agent="ordinal/")
        elif fault == "429 at 30%":
            self.fault(error_rate=30, error_code=429, retry_after=1, agent="ordinal/")
        elif fault == "latency 500 ms":
            self.fault(latency_ms=500, agent="ordinal/")
        elif fault == "watches cut":
            self.fault(drop_watches=True)
        elif fault == "410 on relist":
            self.fault(drop_watches=True, expire_next_watch=6)
        elif fault == "409 on updates":
            self.fault(conflict_next_update=6)
        elif fault == "csi kill -9":
            for n in self.state()["nodes"]:
                if node_of is None or n["name"] == node_of:
                    kill(n["pid"], signal.SIGKILL)
        elif fault == "kubelet stopped":
            self.stopped = node_of or self.state()["nodes"][-1]["name"]
            self.node_cmd("stop", self.stopped)
        elif fault == "controller kill -9":
            for c in self.state().get("controllers", []):
                kill(c["pid"], signal.SIGKILL)  # both replicas: the sandbox restarts them
        elif fault == "disk full":
            self.fill(True)

    def fault_off(self, fault):
        self.fault(reset=True)
        if fault == "kubelet stopped":
            self.node_cmd("start", self.stopped)
        elif fault == "disk full":
            self.fill(False)

    def node_cmd(self, action, node):
        p = subprocess.run([soak.PYTHON, soak.SANDBOX, "node", "--dir", self.sbx, action, node],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise soak.Break("ordinal-sandbox node %s %s: %s%s" % (action, node, p.stdout,
                                                                   p.stderr))

    def node_of_claim(self, claim):
        try:
            c = self.client.get("persistentvolumeclaims", claim, ns=NS)
        except soak.ApiError:
            return None
        return (c["metadata"].get("annotations") or {}).get("volume.kubernetes.io/selected-node")

    def cell(self, op, fault):
        if (op, fault) in NOT_MEANINGFUL:
            return NOT_MEANINGFUL[(op, fault)]
        self.n += 1
        name = "m%d" % self.n
        claim = "data-%s-0" % name
        cls = "ordinal-retain" if op in ("release Retain", "re-adoption") else "ordinal"
        # the starting state, no fault
        if op != "provision":
            self.make(name, 2 if op == "scale down" else 1, ("Retain", "Delete"), cls)
            self.settle()
        if op == "re-adoption":
            self.kubectl("delete", "sts", name, "--wait=false")
            del self.sets[name]
            self.settle()
            self.wait(lambda: not self.client.exists("persistentvolumeclaims", claim, ns=NS),
                      "claim of the deleted set gone", time.monotonic())
        node = self.node_of_claim(claim)
        before = self.fault_stats()
        old_leader = self.leader() if op == "leader hand-over" else None
        if op == "leader hand-over" and not old_leader:
            return "NO LEADER before the operation"
        self.fault_on(fault, node)
        t0 = time.monotonic()
        if op == "provision":
            self.make(name, 1, ("Retain", "Delete"), cls)
        elif op == "pod restart":
            self.kubectl("delete", "pod", "%s-0" % name, "--wait=false")
        elif op == "scale down":
            self.kubectl("scale", "sts", name, "--replicas=1")
            self.sets[name]["replicas"] = 1
        elif op in ("release Delete", "release Retain"):
            self.kubectl("delete", "sts", name, "--wait=false")
            del self.sets[name]
        elif op == "re-adoption":
            self.make(name, 1, ("Retain", "Delete"), cls)
        elif op == "leader hand-over":
            # the reconciler admits ordinal 1 while its leader steps down (SIGTERM: it releases
            # the Lease; the other replica takes over, the sandbox restarts the one stopped)
            self.kubectl("scale", "sts", name, "--replicas=2")
            self.sets[name]["replicas"] = 2
            kill(old_leader["pid"], signal.SIGTERM)  # gone already after controller kill -9
        if fault in ALWAYS:
            while time.monotonic() - t0 < HOLD_S:
                time.sleep(0.2)
        while fault not in ALWAYS and time.monotonic() - t0 < BITE_S and (
                time.monotonic() - t0 < FAULT_S or self.fault_stats() == before):
            time.sleep(0.2)
        bit = fault in ALWAYS or self.fault_stats() != before
        self.fault_off(fault)

        def done():
            if not self.converged():
                return False
            if op.startswith("release") and self.client.exists("persistentvolumeclaims", claim,
                                                               ns=NS):
                return False
            if op == "scale down" and self.client.exists("pods", "%s-1" % name, ns=NS):
                return False
            if op == "leader hand-over":
                new = self.leader()
                if not new or new["pid"] == old_leader["pid"]:
                    return False  # the Lease held by a live controller, not the one stopped
            return True
        breaks = len(self.stats["breaks"])
        try:
            self.wait(done, "convergence", t0)
        except TimeoutError:
            return "NOT CONVERGED"
        took = time.monotonic() - t0
        self.check()
        if op == "release Delete":
            pvs = [pv for pv in self.client.list("persistentvolumes", ns=None)["items"]
                   if ((pv["spec"].get("claimRef") or {}).get("name")) == claim]
            if pvs:
                self.fail("release Delete left PV %s" % pvs[0]["metadata"]["name"])
        if op == "re-adoption" and not any(k[1] == "%s/%s" % (NS, claim) for k in self.tokens):
            self.fail("re-adoption: the store of %s is not the retained one" % claim)
        if fault == "disk full" and op in ("provision", "leader hand-over"):
            # provisioning failed while the root was full: said in an event of the claim
            c = claim if op == "provision" else "data-%s-1" % name
            evs = [e for e in self.client.list("events", ns=NS)["items"]
                   if (e.get("involvedObject") or {}).get("name") == c]
            full = [e for e in evs if "free" in (e.get("message") or "") or
                    "space" in (e.get("message") or "").lower()]
            if not full:
                self.fail("disk full: no event of %s says the root is full (events: %s)" % (
                    c, "; ".join("%s: %s" % (e.get("reason"), e.get("message")) for e in evs)))
        n = len(self.stats["breaks"]) - breaks
        if n:
            return "%d BROKEN" % n
        return "ok %.1f s" % took if bit else "ok %.1f s, unused" % took


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csi", default=os.path.join(soak.SRC, "build", "debug", "ordinal-csi"))
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--markdown")
    ap.add_argument("--only", action="append", default=[], metavar="OP_OR_FAULT",
                    help="run only the cells of these operations or faults (repeatable)")
    ap.add_argument("--short", action="store_true",
                    help="only the short form's cells: every fault once, every operation at "
                    "least once (the test command's)")
    args = ap.parse_args()
    m = Matrix(args)
    m.up()
    table = {}
    try:
        for op in OPS:
            for fault in FAULTS:
                if args.only and op not in args.only and fault not in args.only:
                    continue
                if args.short and (op, fault) not in SHORT:
                    continue
                r = m.cell(op, fault)
                table[(op, fault)] = r
                soak.log("%-15s x %-15s %s" % (op, fault, r))
    finally:
        m.down()
    lines = ["| operation | " + " | ".join(FAULTS) + " |",
             "|---|" + "---|" * len(FAULTS)]
    for op in OPS:
        lines.append("| %s | %s |" % (op, " | ".join(table.get((op, f), "not run")
                                                    for f in FAULTS)))
    text = "\n".join(lines)
    print(text)
    for b in m.stats["breaks"]:
        print("break: " + b)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    sys.exit(0 if all(v.startswith(("ok", "n/a")) for v in table.values()) and
             (args.only or len(table) == (len(SHORT) if args.short else
                                          len(OPS) * len(FAULTS))) else 1)


if __name__ == "__main__":
    main()
