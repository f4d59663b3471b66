#!/usr/bin/python3
"""Figures of the sandbox cluster (docs/BENCHMARKS.md, "Sandbox cluster"): `ordinal-sandbox up`
to ready for 3 nodes, the idle CPU of the sandbox and its node plugins, and the time from
creating a StatefulSet to every replica Ready (3 OrderedReady, 30 Parallel, 30 OrderedReady),
each claim provisioned by ordinal-csi. Pods are reported Running and Ready the moment they are
bound to a node (an instant kubelet), so the figure is the control plane's: StatefulSet
controller, scheduler, PV binder and the provisioner.

    /usr/bin/python3 bench/sandbox-bench.py [path/to/ordinal-csi]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path[:0] = [os.path.join(SOURCE, p) for p in ("tests/k8s", "tests/sandbox", "deploy/sandbox")]
from fakeapi import Client  # noqa: E402
import sbxlib  # noqa: E402

SBX = os.path.join(SOURCE, "deploy", "sandbox", "ordinal-sandbox")
PY = "/usr/bin/python3"


def sandbox(*args):
    subprocess.run([PY, SBX] + list(args), check=True, capture_output=True)


def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main():
    csi = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SOURCE, "build/debug/ordinal-csi")
    base = tempfile.mkdtemp(prefix="ordinal-sbx-bench-")
    ups = []
    for i in range(5):
        d = os.path.join(base, "up%d" % i)
        t = time.monotonic()
        sandbox("up", "--dir", d, "--nodes", "3", "--csi", csi)
        ups.append(time.monotonic() - t)
        if i < 4:
            sandbox("down", "--dir", d)
    print("up to ready, 3 nodes: median %.2f s (min %.2f, max %.2f, n=5)"
          % (statistics.median(ups), min(ups), max(ups)))
    d = os.path.join(base, "up4")
    st = json.load(open(os.path.join(d, "state.json")))
    pids = [st["pid"]] + [n["pid"] for n in st["nodes"]]
    time.sleep(2)
    a = {p: cpu(p) for p in pids}
    time.sleep(20)
    b = {p: cpu(p) for p in pids}
    print("idle CPU over 20 s: sandbox process %.2f%%, ordinal-csi %s"
          % ((b[pids[0]] - a[pids[0]]) * 5, ", ".join(
              "%.2f%%" % ((b[p] - a[p]) * 5) for p in pids[1:])))
    r = json.load(open(os.path.join(d, "ready")))
    c = Client(r["server"], open(os.path.join(d, "token")).read().strip(),
               os.path.join(d, "pki", "ca.crt"))

    class Srv:
        client = c
        kubectl = None
    cl = sbxlib.Cluster(Srv)
    for name, n, pmp in (("web", 3, None), ("par", 30, "Parallel"), ("ord", 30, None)):
        kube = sbxlib.AutoReady(cl, wait_node=True)
        t = time.monotonic()
        c.create("statefulsets", sbxlib.sts(name, n, pmp=pmp, labels={"app": name}))
        while (c.get("statefulsets", name).get("status") or {}).get("readyReplicas") != n:
            time.sleep(0.05)
        dt = time.monotonic() - t
        kube.close()
        print("%2d replicas %-12s: %.2f s from create to all Ready" % (
            n, pmp or "OrderedReady", dt))
    sandbox("down", "--dir", d)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
