#!/usr/bin/python3
"""Cache memory benchmark: the daemon's RssAnon and start-up list time with N claims and N PVs
in the API server, shaped as a real API server sends them.

    /usr/bin/python3 bench/cache-memory-bench.py --csi build/release/ordinal-csi \\
        --before /tmp/old/build/release/ordinal-csi --objects 10000

  1. a fake API server (deploy/sandbox/apiserver.py, its PV binder on), a StorageClass
     `ordinal`, N claims `data-web-<i>` as a StatefulSet's volumeClaimTemplate makes them (labels,
     the scheduler's and the provisioner's annotations, kubectl's last-applied
     annotation), and for each a CSI PV `pvc-<uid>` as a CSI provisioner makes it (provisioned-by,
     finalizers, csi with volumeAttributes, claimRef, nodeAffinity on one of 100 other nodes); the
     binder binds each pair (status Bound on both). The server writes metadata.managedFields on
     every create, update and patch, as the real one does. None of it is this node's, so the
     daemon only caches it.
  2. for each binary (--before first when given, then --csi), in node mode (the built-in
     provisioner: claims, PVs, classes; the inventory) and in controller mode (the reconciler:
     sets, claims, classes, PVs, OrdinalVolumes, nodes): start it, wait until its caches are
     synced (--csi: its "kube: listed N persistentvolumeclaims/persistentvolumes" lines; an older
     --before binary in node mode: "caches synced"; in controller mode it logs nothing, and is
     read once its CPU settles, which a list slower than a second fakes) and its CPU use has
     settled (< 20 ms in 1 s), then read RssAnon, VmRSS and VmHWM from /proc/PID/status.
     start_to_synced_s is from exec to that point (the settle second excluded); the binaries
     that log each list give its time (list_s).

Only the Python standard library and tests/k8s/fakeapi.py are used. Prints one JSON object per
run (and writes them with --out).
"""

import argparse
import json
import os
import queue
import re
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
NS = "bench"
NODE = "bench-node"
TICKS = os.sysconf("SC_CLK_TCK")
LISTED = re.compile(r"kube: listed (\d+) (\S+) in ([0-9.]+) s")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def claim_obj(i):
    name = "data-web-%d" % i
    last_applied = json.dumps({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                               "metadata": {"name": name, "namespace": NS},
                               "spec": {"accessModes": ["ReadWriteOnce"],
                                        "resources": {"requests": {"storage": "1Gi"}},
                                        "storageClassName": "ordinal"}})
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": name, "namespace": NS,
                "labels": {"app": "web", "app.kubernetes.io/name": "web",
                           "app.kubernetes.io/instance": "web-prod"},
                "annotations": {
                    "volume.kubernetes.io/selected-node": "node-%d" % (i % 100),
                    "volume.kubernetes.io/storage-provisioner": DRIVER,
                    "volume.beta.kubernetes.io/storage-provisioner": DRIVER,
                    "kubectl.kubernetes.io/last-applied-configuration": last_applied},
                "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ordinal",
                     "volumeMode": "Filesystem", "volumeName": pv_name(i),
                     "resources": {"requests": {"storage": "1Gi"}}}}


def pv_name(i):
    return "pvc-%08x-0000-4000-8000-%012x" % (i, i)


def pv_obj(i, claim):
    uid = claim["metadata"]["uid"]
    node = "node-%d" % (i % 100)
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name(i),
                "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER,
                                "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                                "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""},
                "finalizers": ["kubernetes.io/pv-protection",
                               "external-provisioner.volume.kubernetes.io/finalizer"]},
            "spec": {
                "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "ordinal",
                "volumeMode": "Filesystem",
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "namespace": NS, "name": claim["metadata"]["name"], "uid": uid,
                             "resourceVersion": claim["metadata"]["resourceVersion"]},
                "csi": {"driver": DRIVER, "volumeHandle": "dir:%s/data-web-%d" % (NS, i),
                        "fsType": "ext4",
                        "volumeAttributes": {
                            "storage.kubernetes.io/csiProvisionerIdentity":
                                "1764669000000-8081-" + DRIVER,
                            "csi.storage.k8s.io/pvc/name": claim["metadata"]["name"],
                            "csi.storage.k8s.io/pvc/namespace": NS,
                            "csi.storage.k8s.io/pv/name": pv_name(i)}},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "topology.ordinal.csi.dev/node", "operator": "In",
                     "values": [node]}]}]}}}}


def load(api, n, creators):
    """Create the N claims and their PVs from `creators` threads; wait until all are Bound."""
    work = queue.Queue()
    for i in range(n):
        work.put(i)
    errors = []

    def creator():
        client = fakeapi.Client(api.url, api.token, api.ca_file)
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                return
            try:
                c = client.create("persistentvolumeclaims", claim_obj(i), ns=NS)
                client.create("persistentvolumes", pv_obj(i, c), ns=None)
                # Bound, as the PV controller leaves them (a no-op if its binder got there)
                client.patch("persistentvolumes", pv_name(i), {"status": {
                    "phase": "Bound", "lastPhaseTransitionTime": "2026-12-02T10:00:00Z"}},
                    ns=None, sub="status")
                client.patch("persistentvolumeclaims", c["metadata"]["name"], {
                    "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                                 "pv.kubernetes.io/bound-by-controller": "yes"}}},
                    ns=NS)
                client.patch("persistentvolumeclaims", c["metadata"]["name"], {"status": {
                    "phase": "Bound", "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "1Gi"}}}, ns=NS, sub="status")
            except fakeapi.ApiError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=creator) for _ in range(creators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("%d creates failed, first: %s" % (len(errors), errors[0]))

    def bound():
        items = api.client.list("persistentvolumeclaims", ns=NS)["items"]
        return sum(1 for c in items if (c.get("status") or {}).get("phase") == "Bound") == n
    fakeapi.wait_for(bound, timeout=600, interval=2.0, what="all claims Bound")


def sample_sizes(api):
    """Bytes of one claim and one PV as the server sends them (JSON, compact)."""
    c = api.client.list("persistentvolumeclaims", ns=NS, limit=1)["items"][0]
    p = api.client.list("persistentvolumes", limit=1)["items"][0]
    return (len(json.dumps(c, separators=(",", ":"))), len(json.dumps(p, separators=(",", ":"))),
            len(c["metadata"].get("managedFields") or []))


def run_daemon(binary, label, mode, api, work, n, timeout, round_=0):
    tag = "%s-%s-%d" % (label, mode, round_)
    sock = os.path.join(work, tag + ".sock")
    log_path = os.path.join(work, tag + ".log")
    argv = [binary, "--endpoint", "unix://" + sock, "--node-id", NODE, "--kubeconfig",
            api.kubeconfig, "--log-level", "info", "--mode", mode]
    if mode == "node":
        root = os.path.join(work, tag + "-root")
        os.makedirs(root)
        argv += ["--dir-root", root]
    else:
        argv += ["--leader-election-namespace", "default"]
    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        d = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def text():
            with open(log_path, errors="replace") as f:
                return f.read()

        def marker():
            if d.poll() is not None:
                return True
            t = text()
            got = {m.group(2): int(m.group(1)) for m in LISTED.finditer(t)}
            if label != "before":
                return got.get("persistentvolumeclaims") == n and \
                    got.get("persistentvolumes") == n
            if mode == "node":
                return "caches synced" in t
            # An older binary in controller mode logs no sync: it is read once its CPU settles,
            # which a slow server's list can fake (then the figure is that of empty caches).
            return "reconciler: started" in t

        fakeapi.wait_for(marker, timeout=timeout, interval=0.05, what=tag + " caches")
        if d.poll() is not None:
            raise RuntimeError("%s exited: %s" % (tag, text()[-2000:]))
        t_marker = time.monotonic()
        # settled: less than 20 ms of CPU in one second
        prev, t_prev = cpu_s(d.pid), time.monotonic()
        while True:
            time.sleep(1.0)
            cur, t_cur = cpu_s(d.pid), time.monotonic()
            if cur - prev < 0.02:
                break
            prev, t_prev = cur, t_cur
            if t_cur - t0 > timeout:
                raise RuntimeError(tag + ": CPU never settled")
        lists = {m.group(2): float(m.group(3)) for m in LISTED.finditer(text())}
        with open("/proc/loadavg") as f:
            load1 = float(f.read().split()[0])
        return {"binary": label, "mode": mode, "objects": n,
                "start_to_synced_s": round(t_prev - t0, 2),
                "start_to_marker_s": round(t_marker - t0, 2),
                "list_s": {k: lists[k] for k in ("persistentvolumeclaims", "persistentvolumes")
                           if k in lists},
                "rss_anon_kib": status_kib(d.pid, "RssAnon"),
                "vm_rss_kib": status_kib(d.pid, "VmRSS"),
                "vm_hwm_kib": status_kib(d.pid, "VmHWM"),
                "cpu_s": round(cpu_s(d.pid), 2), "load1": load1}
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(30)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csi", default=os.path.join(SOURCE, "build", "release", "ordinal-csi"))
    ap.add_argument("--before", help="an older ordinal-csi to measure in the same run, first")
    ap.add_argument("--objects", type=int, default=10000, help="claims, and as many PVs")
    ap.add_argument("--modes", nargs="+", default=["node", "controller"],
                    choices=["node", "controller"])
    ap.add_argument("--rounds", type=int, default=1, help="alternate the binaries this often")
    ap.add_argument("--creators", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", help="also write the JSON lines here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not 1 <= args.objects <= 100000:
        ap.error("--objects: 1..100000")
    binaries = ([("before", args.before)] if args.before else []) + [("after", args.csi)]
    work = tempfile.mkdtemp(prefix="ordinal-cache-bench-")
    api = fakeapi.FakeApiServer.start(os.path.join(work, "api"))
    results = []
    try:
        api.client.create("storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "ordinal"}, "provisioner": DRIVER, "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", "parameters": {}}, ns=None)
        api.client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": NS}}, ns=None)
        t0 = time.monotonic()
        load(api, args.objects, args.creators)
        cb, pb, mf = sample_sizes(api)
        print(json.dumps({"loaded": args.objects, "load_s": round(time.monotonic() - t0, 1),
                          "claim_bytes": cb, "pv_bytes": pb, "claim_managed_fields": mf}),
              flush=True)
        for k in range(args.rounds):
            for mode in args.modes:
                for label, binary in binaries:
                    r = run_daemon(binary, label, mode, api, work, args.objects, args.timeout, k)
                    results.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        api.stop()
        if args.keep:
            print("work directory kept: " + work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
