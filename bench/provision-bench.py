#!/usr/bin/python3
"""Provisioning benchmark: N claims against the fake API server with ordinal-csi's built-in
provisioner running; claims/s and time-to-Bound percentiles, with the API server's own cost
measured apart.

    /usr/bin/python3 bench/provision-bench.py --csi build/release/ordinal-csi --claims 100 1000

For each N:
  1. a fresh fake API server (deploy/sandbox/apiserver.py, its PV binder and protection
     controllers on), a StorageClass `ordinal` (WaitForFirstConsumer, reclaim Delete);
  2. API server alone: --creators threads create N claims that no provisioner will look at (no
     selected-node annotation), which times the API server's answer to a claim create
     (requests/s, latency) and its CPU per request, with no daemon running;
  3. one ordinal-csi --mode node --kubeconfig on a fresh root, --kube-api-qps/--kube-api-burst
     as given; a watch on claims; the creators create N claims that carry
     volume.kubernetes.io/selected-node (as the scheduler sets it for a StatefulSet's pod), and
     each claim's time-to-Bound is the time from just before its POST to the watch event
     that shows it Bound. claims/s is N over first POST to last Bound. CPU seconds of the API
     server and of the daemon over the run, and the daemon's RssAnon at the end, come from
     /proc; the API server's request count from its log.

Only the Python standard library and tests/k8s/fakeapi.py (the suite's client) are used.
Prints one JSON object per N (and writes them with --out).
"""

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "k8s"))

import fakeapi  # noqa: E402

DRIVER = "ordinal.csi.dev"
SELECTED = "volume.kubernetes.io/selected-node"
NODE = "bench-node"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def pct(values, p):
    """Nearest-rank percentile, as ordinal-bench computes it."""
    if not values:
        return None
    s = sorted(values)
    k = max(1, -(-len(s) * p // 100))  # ceil(p/100 * n) for integer p
    return s[min(len(s), int(k)) - 1]


def summary_ms(values):
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50": round(pct(values, 50) * 1e3, 2),
            "p90": round(pct(values, 90) * 1e3, 2), "p99": round(pct(values, 99) * 1e3, 2),
            "max": round(max(values) * 1e3, 2),
            "mean": round(sum(values) / len(values) * 1e3, 2)}


def claim_obj(name, ns, node):
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                    "resources": {"requests": {"storage": "64Mi"}}}}
    if node:
        pvc["metadata"]["annotations"] = {SELECTED: node}
    return pvc


def create_claims(api, names, ns, node, creators, t_post, rate=0):
    """Creates the claims from `creators` threads, as fast as they can or, with rate > 0, the
    i-th claim no earlier than i/rate seconds after the start; fills t_post[name] with the time
    just before each POST; returns the POST latencies (s) and the error count."""
    work = queue.Queue()
    start = time.monotonic()
    for i, n in enumerate(names):
        work.put((n, start + i / rate if rate > 0 else 0))
    lat, errors, lock = [], [0], threading.Lock()

    def creator():
        client = fakeapi.Client(api.url, api.token, api.ca_file)
        while True:
            try:
                name, not_before = work.get_nowait()
            except queue.Empty:
                return
            wait = not_before - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t0 = time.monotonic()
            t_post[name] = t0
            try:
                client.create("persistentvolumeclaims", claim_obj(name, ns, node), ns=ns)
                with lock:
                    lat.append(time.monotonic() - t0)
            except fakeapi.ApiError:
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=creator) for _ in range(creators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors[0]


def ensure_namespace(api, ns):
    try:
        api.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": ns}}, ns=None)
    except fakeapi.ApiError as e:
        if e.status != 409:
            raise


def request_count(api):
    try:
        with open(api.log_file, errors="replace") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def request_breakdown(api, skip):
    """Requests in the API server's log after the first `skip` lines, by method and resource,
    with the server-side time the log gives ("HH:MM:SS METHOD PATH CTYPE CODE 1.2ms")."""
    kinds = {}
    try:
        with open(api.log_file, errors="replace") as f:
            lines = f.readlines()[skip:]
    except FileNotFoundError:
        return kinds
    for line in lines:
        t = line.split()
        if len(t) < 5 or t[1] not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            continue
        path, _, query = t[2].partition("?")
        segs = [x for x in path.split("/") if x]
        res = next((x for x in reversed(segs) if x in fakeapi.PATHS), "other")
        sub = "/" + segs[-1] if segs and segs[-1] in ("status", "binding", "scale") else ""
        method = "WATCH" if "watch=true" in query or "watch=1" in query else t[1]
        k = "%s %s%s" % (method, res, sub)
        ms = float(t[-1][:-2]) if t[-1].endswith("ms") else 0.0
        e = kinds.setdefault(k, {"count": 0, "server_ms": []})
        e["count"] += 1
        e["server_ms"].append(ms)
    out = {}
    for k, e in sorted(kinds.items(), key=lambda kv: -kv[1]["count"]):
        v = sorted(e["server_ms"])
        out[k] = {"count": e["count"], "server_ms_p50": v[len(v) // 2],
                  "server_ms_total": round(sum(v), 1)}
    return out


def run_one(args, n, work):
    api = fakeapi.FakeApiServer.start(os.path.join(work, "api-%d" % n))
    daemon = None
    try:
        api.client.create("storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "ordinal"}, "provisioner": DRIVER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", "parameters": {}}, ns=None)
        for ns in ("apibase", "bench"):
            ensure_namespace(api, ns)

        # ---- the API server alone ----
        t_post = {}
        cpu0, req0 = cpu_s(api.proc.pid), request_count(api)
        t0 = time.monotonic()
        base_lat, base_err = create_claims(api, ["base-%d" % i for i in range(n)], "apibase",
                                           None, args.creators, t_post)
        base_elapsed = time.monotonic() - t0
        base_cpu = cpu_s(api.proc.pid) - cpu0
        base_req = request_count(api) - req0
        apiserver_alone = {
            "claims_created": len(base_lat), "errors": base_err,
            "creates_per_s": round(len(base_lat) / base_elapsed, 1),
            "post_latency_ms": summary_ms(base_lat),
            "cpu_s": round(base_cpu, 3),
            "cpu_ms_per_request": round(base_cpu * 1e3 / max(1, base_req), 3),
            "requests": base_req,
        }

        # ---- with the provisioner ----
        root = os.path.join(work, "root-%d" % n)
        os.makedirs(root)
        log_path = os.path.join(work, "daemon-%d.log" % n)
        argv = [args.csi, "--endpoint", "unix://" + os.path.join(work, "csi-%d.sock" % n),
                "--node-id", NODE, "--dir-root", root, "--kubeconfig", api.kubeconfig,
                "--log-level", args.log_level]
        # 0: the daemon's own defaults (no flag passed)
        if args.qps > 0:
            argv += ["--kube-api-qps", str(args.qps)]
        if args.burst > 0:
            argv += ["--kube-api-burst", str(args.burst)]
        with open(log_path, "ab") as log:
            daemon = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        fakeapi.wait_for(lambda: "provisioner started" in open(log_path, errors="replace").read()
                         or daemon.poll() is not None, timeout=30, what="provisioner start")
        if daemon.poll() is not None:
            raise RuntimeError("ordinal-csi exited: " + open(log_path).read()[-2000:])
        time.sleep(0.5)  # let the informers settle: their start-up is not what we measure

        names = ["www-web-%d" % i for i in range(n)]
        bound_at = {}
        rv = api.client.list("persistentvolumeclaims", ns="bench")["metadata"]["resourceVersion"]
        watch = api.client.watch("persistentvolumeclaims", ns="bench", resourceVersion=rv,
                                 timeout=600)
        done = threading.Event()

        def watcher():
            try:
                while len(bound_at) < n:
                    ev = watch.next_event(timeout=600)
                    if ev is None:
                        break
                    obj = ev.get("object", {})
                    name = obj.get("metadata", {}).get("name")
                    if obj.get("status", {}).get("phase") == "Bound" and name not in bound_at:
                        bound_at[name] = time.monotonic()
            except (TimeoutError, ConnectionError):
                pass
            finally:
                done.set()

        wt = threading.Thread(target=watcher, daemon=True)
        wt.start()
        api_cpu0, d_cpu0, req0 = cpu_s(api.proc.pid), cpu_s(daemon.pid), request_count(api)
        t_post = {}
        t_start = time.monotonic()
        post_lat, post_err = create_claims(api, names, "bench", NODE, args.creators, t_post,
                                           args.rate)
        t_created = time.monotonic()
        done.wait(timeout=args.timeout)
        t_end = time.monotonic()
        api_cpu = cpu_s(api.proc.pid) - api_cpu0
        d_cpu = cpu_s(daemon.pid) - d_cpu0
        reqs = request_count(api) - req0
        breakdown = request_breakdown(api, req0)
        rss_anon, vm_rss = status_kib(daemon.pid, "RssAnon"), status_kib(daemon.pid, "VmRSS")
        watch.close()
        # nothing left to do: what do both processes burn while idle?
        idle0 = (cpu_s(api.proc.pid), cpu_s(daemon.pid), time.monotonic())
        time.sleep(args.idle)
        idle_s = time.monotonic() - idle0[2]
        api_idle = (cpu_s(api.proc.pid) - idle0[0]) / idle_s
        daemon_idle = (cpu_s(daemon.pid) - idle0[1]) / idle_s
        # what the claims cost in all, once the work after Bound (Events, marks) is done too
        reqs_all = request_count(api) - req0
        breakdown_all = request_breakdown(api, req0)

        ttb = [bound_at[c] - t_post[c] for c in names if c in bound_at and c in t_post]
        last = max(bound_at.values()) if bound_at else t_end
        with open("/proc/loadavg") as f:
            load = float(f.read().split()[0])
        return {
            "claims": n, "bound": len(bound_at), "post_errors": post_err,
            "creators": args.creators, "rate": args.rate, "kube_api_qps": args.qps, "kube_api_burst": args.burst,
            "claims_per_s": round(len(bound_at) / (last - t_start), 1) if bound_at else 0,
            "create_phase_s": round(t_created - t_start, 3),
            "first_post_to_last_bound_s": round(last - t_start, 3),
            "time_to_bound_ms": summary_ms(ttb),
            "post_latency_ms": summary_ms(post_lat),
            "apiserver_cpu_s": round(api_cpu, 3),
            "daemon_cpu_s": round(d_cpu, 3),
            "daemon_cpu_ms_per_claim": round(d_cpu * 1e3 / n, 3),
            "apiserver_requests": reqs,
            "apiserver_requests_per_claim": round(reqs / n, 2),
            "apiserver_requests_by_kind": breakdown,
            "apiserver_requests_per_claim_after_idle": round(reqs_all / n, 2),
            "apiserver_requests_by_kind_after_idle": {k: v["count"]
                                                       for k, v in breakdown_all.items()},
            "idle_after_cpu_pct": {"apiserver": round(api_idle * 100, 1),
                                   "daemon": round(daemon_idle * 100, 1),
                                   "seconds": round(idle_s, 1)},
            "daemon_rss_anon_kib": rss_anon, "daemon_vm_rss_kib": vm_rss,
            "apiserver_alone": apiserver_alone,
            "load1_at_end": load,
        }
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        api.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csi", default=os.path.join(SOURCE, "build", "release", "ordinal-csi"))
    ap.add_argument("--claims", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--creators", type=int, default=8, help="client threads creating claims")
    ap.add_argument("--rate", type=float, default=0,
                    help="claims/s to create at (default 0: as fast as the creators can)")
    ap.add_argument("--qps", type=int, default=20,
                    help="the daemon's --kube-api-qps (0: its default)")
    ap.add_argument("--burst", type=int, default=30,
                    help="the daemon's --kube-api-burst (0: its default)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for Bound")
    ap.add_argument("--out", help="also write the JSON lines here")
    ap.add_argument("--idle", type=float, default=3.0,
                    help="seconds to watch both processes idle after the last Bound")
    ap.add_argument("--log-level", default="info", help="the daemon's --log-level")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs of the daemon and the API server)")
    args = ap.parse_args()
    for n in args.claims:
        if n < 1 or n > 100000:
            ap.error("--claims: 1..100000")
    work = tempfile.mkdtemp(prefix="ordinal-provision-bench-")
    results = []
    try:
        for n in args.claims:
            r = run_one(args, n, work)
            results.append(r)
            print(json.dumps(r), flush=True)
    finally:
        if args.keep:
            print("work directory kept: " + work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    return 0 if all(r["bound"] == r["claims"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
