"""The controller framework of the sandbox's kube-controller-manager, and its registry.

A controller (subclass of `Controller`, one file per controller under deploy/sandbox/) says:

* `name`: what `--controllers` calls it;
* `watches`: the resource plurals whose changes concern it;
* `keys(res, etype, obj, prev)`: the keys one change enqueues (it may keep private indexes
  there: it is only ever called on the controller's own thread);
* `sync(key)`: make the world match the desired state for that key, reading and writing
  through the store as any client would (a stale write is a 409, retried);
* `resync`: seconds between full resyncs (every key of every watched object again; 0 = never).

The `Manager` registers one store listener, which only appends each change to the inbox of every
controller that watches its resource (the store calls listeners with its lock held, so nothing
else may happen there). Each controller has its own thread and its own work queue: the thread
drains the inbox, turns changes into keys (de-duplicated: a key queued twice is synced once),
and syncs them. A sync that raises is retried after a per-key exponential backoff (50 ms
doubling up to 5 s, reset by a success). No controller code ever runs under the store's lock.
"""

import copy
import heapq
import threading
import time
import traceback

import apierrors
import store as st
from resources import RESOURCES, resource

# The controllers the API server runs by default (today's behaviour for the tests), then the
# others it can host (`--controllers`, e.g. for the sandbox cluster).
ALL = ("pv-binder", "pvc-protection", "pv-protection", "garbage-collector", "namespace")
OPTIONAL = ("statefulset", "scheduler", "serviceaccount-token", "daemonset",
            "deployment", "node-lifecycle", "pod-gc")
KNOWN = ALL + OPTIONAL


# name -> "module.Class"; each imported only when that controller is asked for.
FACTORIES = {"pv-binder": "pvbinder.PVBinder", "pvc-protection": "pvc_protection.PVCProtection",
             "pv-protection": "pv_protection.PVProtection",
             "garbage-collector": "garbagecollector.GarbageCollector",
             "namespace": "namespace.NamespaceController",
             "statefulset": "statefulset.StatefulSetController",
             "scheduler": "scheduler.Scheduler",
             "serviceaccount-token": "rbac.ServiceAccountTokens",
             "daemonset": "daemonset.DaemonSetController",
             "deployment": "deployment.DeploymentController",
             "node-lifecycle": "nodelifecycle.NodeLifecycleController",
             "pod-gc": "podgc.PodGC"}


def factory(name):
    import importlib
    mod, cls = FACTORIES[name].rsplit(".", 1)
    return getattr(importlib.import_module(mod), cls)


class Controller:
    name = ""
    watches = ()          # resource plurals
    resync = 30.0         # seconds between full resyncs; 0: never

    def __init__(self, store, log=lambda msg: None):
        self.store = store
        self.log = log
        self.emitted = set()

    # ---- to override ----

    def reset(self):
        """Forget every index: a full resync follows with every watched object."""

    def keys(self, res, etype, obj, prev):
        """Keys to sync for one change. etype is ADDED, MODIFIED, DELETED or SYNC (resync);
        prev is the object before the change (None for ADDED and SYNC)."""
        return ()

    def sync(self, key):
        raise NotImplementedError

    # ---- helpers for subclasses ----

    def fetch(self, res, ns, name):
        """A copy of the current object, or None."""
        try:
            return self.store.get(res, ns, name)
        except apierrors.ApiError as e:
            if e.code == 404:
                return None
            raise

    def modify(self, res, ns, name, fn, sub=None, attempts=5):
        """Read, fn(copy) edits it, write it back with the read resourceVersion (a 409 from a
        concurrent writer is retried on a fresh read, like client-go's RetryOnConflict).
        Returns the stored object, or None when it does not exist."""
        for i in range(attempts):
            cur = self.fetch(res, ns, name)
            if cur is None:
                return None
            new = copy.deepcopy(cur)
            fn(new)
            if new == cur:
                return cur
            try:
                return self.store.update(res, ns, name, new, sub=sub)
            except apierrors.ApiError as e:
                if e.code != 409 or i == attempts - 1:
                    raise
        return None

    def requeue_after(self, key, seconds):
        """From sync(): sync key again after `seconds` (e.g. when minReadySeconds elapse)."""
        q = self.runner.queue
        q.seq += 1
        heapq.heappush(q.delayed, (time.monotonic() + max(0.0, seconds), q.seq, key))

    def event(self, res, obj, etype, reason, message, component=None):
        self.store.record_event(res, obj, etype, reason, message, component or self.name)

    def event_once(self, res, obj, etype, reason, message, component=None):
        key = (obj["metadata"].get("uid"), reason, message)
        if key in self.emitted:
            return
        self.emitted.add(key)
        self.event(res, obj, etype, reason, message, component)


class WorkQueue:
    """De-duplicating queue of keys with per-key exponential backoff (one consumer)."""

    BASE = 0.05
    MAX = 5.0

    def __init__(self):
        self.ready = {}       # key -> None, in insertion order
        self.delayed = []     # heap of (time, seq, key)
        self.failures = {}    # key -> consecutive failures
        self.seq = 0

    def add(self, key):
        self.ready[key] = None

    def add_after_failure(self, key):
        n = self.failures.get(key, 0)
        self.failures[key] = n + 1
        self.seq += 1
        heapq.heappush(self.delayed, (time.monotonic() + min(self.MAX, self.BASE * 2 ** n),
                                      self.seq, key))

    def forget(self, key):
        self.failures.pop(key, None)

    def promote(self, now):
        while self.delayed and self.delayed[0][0] <= now:
            self.ready[heapq.heappop(self.delayed)[2]] = None

    def next_delay(self, now):
        return self.delayed[0][0] - now if self.delayed else None

    def take(self):
        keys = list(self.ready)
        self.ready = {}
        return keys


class Runner:
    """One controller's thread, inbox and work queue."""

    def __init__(self, manager, ctrl):
        self.manager = manager
        self.ctrl = ctrl
        self.watches = {resource(p).key for p in ctrl.watches}
        self.cond = threading.Condition(threading.Lock())
        self.inbox = []
        self.queue = WorkQueue()
        self.thread = None
        self.synced = 0           # statistics, for tests and benchmarks
        self.failed = 0
        self.full_syncs = 0
        # Progress (Manager.progress): the store's resourceVersion this runner had seen every
        # change of, and handled, when it last went idle; and when it will wake up next.
        self.caught_rv = 0
        self.busy = False
        self.wake_at = None
        ctrl.runner = self

    def notify(self, res, etype, obj, prev):
        with self.cond:
            self.inbox.append((res, etype, obj, prev))
            self.cond.notify()

    def _snapshot(self):
        """Every watched object, and an empty inbox (its events are older than the snapshot):
        both under the store's lock, which orders them against the listener."""
        store = self.manager.store
        with store.lock:
            objs = [(r, o) for r in RESOURCES if r.key in self.watches
                    for o in store.data[r.key].values()]
            with self.cond:
                self.inbox = [ev for ev in self.inbox if ev[1] == "KEY"]
        return objs

    def run(self):
        ctrl, q, mgr = self.ctrl, self.queue, self.manager
        resync = mgr.resync if mgr.resync is not None else ctrl.resync
        next_full = 0.0
        while not mgr.stop_event.is_set():
            now = time.monotonic()
            with self.cond:
                if not self.inbox and not q.ready:
                    waits = [next_full - now] if resync or next_full == 0.0 else []
                    d = q.next_delay(now)
                    if d is not None:
                        waits.append(d)
                    timeout = max(0.0, min(waits)) if waits else None
                    if timeout is None or timeout > 0:
                        # Idle: every change handed to this runner so far is handled. The
                        # manager sets last_rv only after handing a change to every runner,
                        # and hands it over under this lock, so last_rv read here is covered.
                        self.caught_rv = mgr.last_rv
                        self.busy = False
                        self.wake_at = None if timeout is None else now + timeout
                        self.cond.wait(timeout)
                self.busy = True
                self.wake_at = None
                events, self.inbox = self.inbox, []
            if mgr.stop_event.is_set():
                break
            now = time.monotonic()
            for ev in events:
                if ev[1] == "KEY":
                    q.add(ev[2])
            events = [ev for ev in events if ev[1] != "KEY"]
            if next_full == 0.0 or (resync and now >= next_full):
                objs = self._snapshot()
                self.full_syncs += 1
                try:
                    ctrl.reset()
                    for r, o in objs:
                        for k in ctrl.keys(r, "SYNC", o, None):
                            q.add(k)
                except Exception:  # noqa: BLE001 - keep the thread alive, log the bug
                    ctrl.log("controller %s: resync crashed:\n%s" % (ctrl.name,
                                                                     traceback.format_exc()))
                next_full = now + resync if resync else float("inf")
            else:
                for ev in events:
                    try:
                        for k in ctrl.keys(*ev):
                            q.add(k)
                    except Exception:  # noqa: BLE001 - the next resync repairs the indexes
                        ctrl.log("controller %s: event handling crashed:\n%s"
                                 % (ctrl.name, traceback.format_exc()))
            q.promote(time.monotonic())
            for k in q.take():
                if mgr.stop_event.is_set():
                    break
                self.synced += 1
                try:
                    ctrl.sync(k)
                    q.forget(k)
                except apierrors.ApiError as e:   # a lost race: retried after a backoff
                    self.failed += 1
                    ctrl.log("controller %s: %r: %s" % (ctrl.name, k, e.message))
                    q.add_after_failure(k)
                except Exception:  # noqa: BLE001 - keep the thread alive, log the bug
                    self.failed += 1
                    ctrl.log("controller %s: %r crashed:\n%s" % (ctrl.name, k,
                                                                  traceback.format_exc()))
                    q.add_after_failure(k)

    def enqueue(self, key):
        """Queue a key from outside the controller thread (timers, other components)."""
        with self.cond:
            self.inbox.append((None, "KEY", key, None))
            self.cond.notify()


class Manager:
    """Hosts controllers: one store listener fanning changes out, one thread per controller."""

    def __init__(self, store, controllers, log=lambda msg: None, resync=None):
        self.store = store
        self.log = log
        self.resync = resync          # overrides every controller's own period when set
        self.stop_event = threading.Event()
        self.last_rv = 0              # the store's rv of the last change handed to the runners
        self.started = False
        self.runners = [Runner(self, c) for c in controllers]
        self.by_name = {r.ctrl.name: r for r in self.runners}
        for r in self.runners:
            r.ctrl.manager = self

    @classmethod
    def build(cls, store, names, log=lambda msg: None, resync=None, **options):
        """Controllers by name, in KNOWN order; options go to the controllers that take them."""
        unknown = set(names) - set(KNOWN)
        if unknown:
            raise ValueError("unknown controllers: %s (known: %s)"
                             % (",".join(sorted(unknown)), ",".join(KNOWN)))
        ctrls = []
        for n in KNOWN:
            if n in names:
                c = factory(n)(store, log)
                for k, v in options.items():
                    if hasattr(c, k):
                        setattr(c, k, v)
                ctrls.append(c)
        return cls(store, ctrls, log, resync)

    def _notify(self, res, etype, obj, prev):
        # Called by the store with its lock held: only hand the change over; last_rv after the
        # hand-over (see Runner.run).
        for r in self.runners:
            if res.key in r.watches:
                r.notify(res, etype, obj, prev)
        self.last_rv = self.store.rv

    def start(self):
        if not self.runners:
            return
        with self.store.lock:
            self.store.listeners.append(self._notify)
            self.last_rv = self.store.rv
        self.started = True
        for r in self.runners:
            r.thread = threading.Thread(target=r.run, name="ctrl-" + r.ctrl.name, daemon=True)
            r.thread.start()

    def stop(self):
        self.stop_event.set()
        for r in self.runners:
            with r.cond:
                r.cond.notify_all()
        for r in self.runners:
            if r.thread:
                r.thread.join(5)
        with self.store.lock:
            if self._notify in self.store.listeners:
                self.store.listeners.remove(self._notify)

    def enqueue(self, name, key):
        r = self.by_name.get(name)
        if r is not None:
            r.enqueue(key)

    def progress(self):
        """For tests (GET /_fault "controllers"): a test that expects no reaction to its change
        waits until processed_rv reaches that change's resourceVersion with no retry pending:
        by then every write the controllers make in response to it has been made.
        next_wake_in: seconds until the first idle controller wakes by itself (None while any
        is busy); full_rounds: full resyncs that every controller has done."""
        now = time.monotonic()
        with self.store.lock:           # no change is handed over meanwhile
            caught, wakes, retries, busy = [], [], 0, False
            for r in self.runners:
                with r.cond:
                    idle = not r.busy and not r.inbox
                    caught.append(self.last_rv if idle and r.thread else r.caught_rv)
                    busy = busy or not idle
                    if idle and r.wake_at is not None:
                        wakes.append(max(0.0, r.wake_at - now))
                    retries += len(r.queue.failures)
            alive = [r for r in self.runners if r.thread is not None and r.thread.is_alive()]
            return {"enabled": [r.ctrl.name for r in self.runners],
                    "running": bool(self.runners) and len(alive) == len(self.runners)
                    and not self.stop_event.is_set(),
                    "processed_rv": min(caught) if caught else self.last_rv,
                    "retries": retries,
                    "synced": sum(r.synced for r in self.runners),
                    "full_rounds": min((r.full_syncs for r in self.runners), default=0),
                    "next_wake_in": None if busy or not wakes else min(wakes),
                    "by_controller": self.stats()}

    def stats(self):
        return {r.ctrl.name: {"synced": r.synced, "failed": r.failed,
                              "full_syncs": r.full_syncs} for r in self.runners}


# Re-exported for the controllers' convenience.
ApiError = st.ApiError
