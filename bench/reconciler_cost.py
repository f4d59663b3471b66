#!/usr/bin/python3
"""The reconciler's cost per ordinal: a fake API server, one node plugin, one controller; a
Parallel StatefulSet of N ordinals on an ordered Immediate class, all claims made at once
(highest first). Prints the controller's API requests by verb and resource (its /metrics),
requests per ordinal, its RSS (VmRSS, VmHWM) before and after, and the time until all are
Bound with the per-ordinal Bound latency percentiles.

    sudo ORDINAL_CSI=build/debug/ordinal-csi /usr/bin/python3 bench/reconciler_cost.py [N]
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "k8s"))

from fakeapi import FakeApiServer, wait_for  # noqa: E402
import test_provisioner as tp  # noqa: E402
import test_reconciler as tr  # noqa: E402


def rss(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith(("VmRSS", "VmHWM")):
                k, v = ln.split(":")
                out[k] = int(v.split()[0])
    return out


def requests(port):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    out = {}
    for m in re.finditer(r'^ordinal_kube_requests_total\{verb="(\w+)",resource="([\w./]+)"[^}]*\} '
                         r'(\d+)', text, re.M):
        k = (m.group(1), m.group(2))
        out[k] = out.get(k, 0) + int(m.group(3))
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    d = tempfile.mkdtemp(prefix="ordinal-reccost-")
    api = FakeApiServer.start(os.path.join(d, "api"))
    node = ctrl = None
    try:
        tp.storage_class(api, "ord", binding="Immediate", reclaim="Delete", params=tr.ORDERED)
        tr.statefulset(api, replicas=n)
        node = tp.Node(api, "n1")
        port = 19000 + os.getpid() % 1000
        log = open(os.path.join(d, "ctrl.log"), "ab")
        ctrl = subprocess.Popen([tp.BINARY, "--mode", "controller", "--endpoint",
                                 "unix://" + os.path.join(d, "c.sock"), "--node-id", "ctrl",
                                 "--kubeconfig", api.kubeconfig, "--leader-election-namespace",
                                 "default", "--http-endpoint", "127.0.0.1:%d" % port],
                                stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: tp.lease_holder(api) == "ctrl", timeout=30, what="leader")
        time.sleep(1.0)   # idle baseline after the first lists
        base_req, base_rss = requests(port), rss(ctrl.pid)
        t0 = time.monotonic()
        for i in reversed(range(n)):
            tp.claim(api, "www-web-%d" % i, cls="ord")
        bound = {}

        def all_bound():
            for c in api.client.list("persistentvolumeclaims")["items"]:
                if c["status"].get("phase") == "Bound" and c["metadata"]["name"] not in bound:
                    bound[c["metadata"]["name"]] = time.monotonic() - t0
            return len(bound) == n
        wait_for(all_bound, timeout=60 + 3 * n, interval=0.05, what="all Bound")
        total = time.monotonic() - t0
        time.sleep(0.5)
        req, after = requests(port), rss(ctrl.pid)
        diff = {k: v - base_req.get(k, 0) for k, v in req.items() if v - base_req.get(k, 0)}
        lease = sum(v for (verb, res), v in diff.items() if res == "leases")
        work = sum(diff.values()) - lease
        print("ordinals: %d, all Bound after %.2f s" % (n, total))
        lat = list(bound.values())
        print("Bound latency from start: p50 %.2f s, p90 %.2f s, p99 %.2f s, max %.2f s"
              % (pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat)))
        print("controller requests during the run (excluding lease renewals %d):" % lease)
        for (verb, res), v in sorted(diff.items()):
            print("  %-6s %-24s %d" % (verb, res, v))
        print("requests per ordinal: %.2f" % (work / float(n)))
        print("controller RSS: idle %d KiB, after %d KiB (peak %d KiB)"
              % (base_rss["VmRSS"], after["VmRSS"], after["VmHWM"]))
    finally:
        if ctrl:
            ctrl.terminate()
            ctrl.wait(30)
        if node:
            node.cleanup()
        api.stop()


if __name__ == "__main__":
    main()
