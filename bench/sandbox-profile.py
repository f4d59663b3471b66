#!/usr/bin/python3
"""Where the sandbox's CPU goes (docs/BENCHMARKS.md, "Sandbox cluster"): counts and CPU
seconds, which a loaded machine does not distort the way it does wall-clock times.

    /usr/bin/python3 bench/sandbox-profile.py [path/to/ordinal-csi] [--replicas N] [--out DIR]

Starts a 3-node sandbox with ORDINAL_SANDBOX_PROFILE=DIR (deploy/sandbox/profiling.py: API
requests counted, CPU of each thread; with ORDINAL_SANDBOX_CPROFILE=1 also every thread under
cProfile timed by its CPU clock, slow), then prints: CPU seconds
of the sandbox process and of each ordinal-csi over 10 s idle (empty), during one StatefulSet
of N replicas (Parallel) applied to all Ready (per pod too), the API requests of that run by
verb, resource and user, CPU seconds by thread family, and the top functions by own time.
"""

import collections
import json
import os
import pstats
import sys
import tempfile
import time

SOURCE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path[:0] = [os.path.join(SOURCE, p) for p in ("tests/k8s", "deploy/sandbox", "bench")]
import sbxctl  # noqa: E402
from fakeapi import Client  # noqa: E402

bench = __import__("sandbox-bench")


def read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def snap(sbx, out):
    st = sbx.state()
    cpu = {"sandbox": sum(bench.cpu_of(p) for p in bench.tree(st["pid"])
                          if p not in {n["pid"] for n in st["nodes"]})}
    for n in st["nodes"]:
        cpu["ordinal-csi " + n["name"]] = bench.cpu_of(n["pid"])
    trigger = os.path.join(out, "dump")   # profiling.py writes its files, then removes it
    open(trigger, "w").close()
    sbxctl.wait_for(lambda: not os.path.exists(trigger), timeout=60, what="profile dump")
    reqs = collections.Counter({tuple(k): v for k, v in read_json(
        os.path.join(out, "requests.json"), [])})
    return time.monotonic(), cpu, reqs, read_json(os.path.join(out, "threads.json"), {})


def diff(a, b):
    return {k: b[k] - a.get(k, 0) for k in b}


def main():
    args = sys.argv[1:]
    n, out = 30, None
    if "--replicas" in args:
        i = args.index("--replicas")
        n = int(args[i + 1])
        del args[i:i + 2]
    if "--out" in args:
        i = args.index("--out")
        out = os.path.abspath(args[i + 1])
        del args[i:i + 2]
    csi = args[0] if args else os.path.join(SOURCE, "build/debug/ordinal-csi")
    base = tempfile.mkdtemp(prefix="ordinal-sbx-prof-")
    out = out or os.path.join(base, "profile")
    os.environ["ORDINAL_SANDBOX_PROFILE"] = out
    with open("/proc/loadavg") as f:
        print("load average at start: %s" % " ".join(f.read().split()[:3]), flush=True)
    d = os.path.join(base, "sbx")
    sbx = sbxctl.up(d, nodes=3, csi=csi)
    try:
        c = Client(sbx.server, sbx.token, sbx.ca)
        time.sleep(3)
        t0, cpu0, r0, th0 = snap(sbx, out)
        time.sleep(10)
        t1, cpu1, r1, th1 = snap(sbx, out)
        idle = diff(cpu0, cpu1)
        print("idle (empty) over %.1f s, CPU s: %s" % (t1 - t0, ", ".join(
            "%s %.2f" % kv for kv in idle.items())))
        print("idle requests:", sum((r1 - r0).values()), dict((r1 - r0).most_common(8)))
        dt, _ = bench.apply_run(sbx, c, "prof", n, "Parallel")
        t2, cpu2, r2, th2 = snap(sbx, out)
        run = diff(cpu1, cpu2)
        print("%d Parallel to Ready %.2f s wall (then cleanup), CPU s: %s" % (n, dt, ", ".join(
            "%s %.2f" % kv for kv in run.items())))
        print("CPU s per pod (apply+ready+delete): sandbox %.3f, all ordinal-csi %.3f" % (
            run["sandbox"] / n, sum(v for k, v in run.items() if k != "sandbox") / n))
        rr = r2 - r1
        print("requests during the run: %d (%.1f per pod)" % (sum(rr.values()),
                                                           sum(rr.values()) / n))
        for k, v in rr.most_common(40):
            print("  %6d  %-8s %-40s %s" % (v, k[0], k[1], k[2]))
        print("CPU s by thread family during the run:")
        for k, v in sorted(diff(th1, th2).items(), key=lambda kv: -kv[1])[:20]:
            print("  %8.2f  %s" % (v, k))
    finally:
        sbxctl.down(d)
    if os.path.exists(os.path.join(out, "sandbox.pstats")):
        s = pstats.Stats(os.path.join(out, "sandbox.pstats"))
        s.sort_stats("tottime").print_stats(35)
        s.sort_stats("cumulative").print_stats(45)
    print("profile in", out)


if __name__ == "__main__":
    main()
