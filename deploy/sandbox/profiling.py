"""Opt-in CPU profile of the sandbox process (bench/sandbox-bench.py --profile, docs/BENCHMARKS.md).

With ORDINAL_SANDBOX_PROFILE=DIR in its environment, the `_serve` process runs every thread
under cProfile and, every 2 s and at exit, writes DIR/sandbox.pstats (all threads merged),
DIR/threads.json (CPU seconds of each thread, by name, from /proc/self/task) and
DIR/requests.json (API requests counted by verb, resource/subresource and user). cProfile
(and DIR/sandbox.pstats) only with ORDINAL_SANDBOX_CPROFILE=1 too: it multiplies the CPU cost."""

import cProfile
import collections
import json
import marshal
import os
import threading
import time

_DIR = os.environ.get("ORDINAL_SANDBOX_PROFILE") or None
_CPROFILE = os.environ.get("ORDINAL_SANDBOX_CPROFILE") == "1"   # else counts and CPU only
_lock = threading.Lock()
_profilers = []
_requests = collections.Counter()
_dead_cpu = collections.Counter()   # CPU seconds of threads that have ended, by name


def enabled():
    return _DIR is not None


def count_request(verb, resource, user):
    if _DIR is not None:
        with _lock:
            _requests[(verb, resource, user)] += 1


def _thread_cpu():
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = collections.Counter(_dead_cpu)
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/stat" % tid) as f:
                v = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "tid-%s" % tid)
        out[_family(name)] += (int(v[11]) + int(v[12])) / tick
    return out


def _family(name):
    """Thread names without their serial numbers: 'Thread-12 (process_request_thread)'."""
    if name.startswith("Thread-") and " " in name:
        return name.split(" ", 1)[1]
    return name.rstrip("0123456789-")


def _run_profiled(run):
    def wrapped(self):
        p = cProfile.Profile(time.thread_time)
        with _lock:
            _profilers.append(p)
        p.enable()
        try:
            run(self)
        finally:
            p.disable()
            cpu = time.thread_time()
            with _lock:
                _dead_cpu[_family(self.name)] += cpu
    return wrapped


def dump():
    if _DIR is None:
        return
    merged = {}
    with _lock:
        profs = list(_profilers)
        reqs = dict(_requests)
    for p in profs:
        try:
            p.snapshot_stats()
        except Exception:   # a profiler being torn down in its thread
            continue
        for k, (cc, nc, tt, ct, callers) in p.stats.items():
            if k in merged:
                c0, n0, t0, ct0, cl0 = merged[k]
                cl = dict(cl0)
                for ck, cv in callers.items():
                    if ck in cl:
                        cl[ck] = tuple(a + b for a, b in zip(cl[ck], cv))
                    else:
                        cl[ck] = cv
                merged[k] = (c0 + cc, n0 + nc, t0 + tt, ct0 + ct, cl)
            else:
                merged[k] = (cc, nc, tt, ct, dict(callers))
    if _CPROFILE:
        tmp = os.path.join(_DIR, "sandbox.pstats.tmp")
        with open(tmp, "wb") as f:
            marshal.dump(merged, f)
        os.rename(tmp, os.path.join(_DIR, "sandbox.pstats"))
    with open(os.path.join(_DIR, "threads.json"), "w") as f:
        json.dump(dict(_thread_cpu().most_common()), f, indent=1)
    with open(os.path.join(_DIR, "requests.json"), "w") as f:
        json.dump(sorted(([list(k), v] for k, v in reqs.items()), key=lambda kv: -kv[1]), f,
                  indent=0)


def start():
    """Called first thing in the `_serve` process."""
    if _DIR is None:
        return
    os.makedirs(_DIR, exist_ok=True)
    if _CPROFILE:
        threading.Thread.run = _run_profiled(threading.Thread.run)
        main = cProfile.Profile(time.thread_time)
        _profilers.append(main)
        main.enable()

    def loop():
        trigger = os.path.join(_DIR, "dump")
        while True:
            time.sleep(0.2)
            if os.path.exists(trigger):
                try:
                    dump()
                except Exception:
                    pass
                os.unlink(trigger)
    t = threading.Thread(target=loop, name="profile-dump", daemon=True)
    t.start()
