"""The sandbox kubelet: one per simulated node, in the API server's process.

For each pod bound to its node (spec.nodeName) it does what kubelet v1.32 does, in its order:
wait until every claim of the pod is Bound, NodeStageVolume then NodePublishVolume on the
node's ordinal-csi socket with kubelet's path layout under the node's folder, start each
container (containers.py: a real process in a bubblewrap sandbox), run the probes, restart
containers as restartPolicy says with kubelet's back-off, and report all of it through the
pod's status subresource. A pod being deleted (deletionTimestamp) gets its containers stopped
(SIGTERM, SIGKILL after the grace period), its volumes unpublished and, when no other pod of
the node uses them, unstaged; then the kubelet deletes the pod object with gracePeriodSeconds=0
as kubelet's status manager does.

Threads: a dispatcher (reads the store's change notifications from its own queue: the store's
listener only queues them) and one worker per pod (kubelet's pod workers), so a blocking CSI
call holds up only its pod. No kubelet code runs under the store's lock.

Paths under node_dir (kubernetes.md section 4.2):
    var/lib/kubelet/plugins/kubernetes.io/csi/<driver>/<sha256(volumeHandle)>/globalmount
    var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount   (+ vol_data.json)
    var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>
    var/lib/kubelet/pods/<uid>/etc-hosts
Container logs: <log_dir>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log

What the kubelet knows of its mounts it reads back from the vol_data.json files, as kubelet's
volume reconstruction does: a kubelet started on a node folder whose pods were deleted while
it was away unpublishes and unstages what they left behind.

stop() is a node going away: the loop stops and the node's containers are killed (a node that
goes away takes its processes with it), volumes stay mounted and the API objects are left
alone; the Node's Ready condition becomes Unknown. A new Kubelet on the same node_dir picks its
pods up again: stage and publish are idempotent, containers start again with restartCount + 1.

A pod runner (Kubelet.runner, set through Kubelets(runner=...)) may claim a pod: ordinal-sandbox
claims Ordinal's own pods (the node DaemonSet's and the controller Deployment's) so their
`ordinal-csi` containers run as host processes in a mount namespace of their own and their
sidecars by their effect. For a claimed pod, runner(kubelet, pod) returns a plan with
host_path(volume) (where a hostPath volume lives in the node's folder) and
process(worker, pod, container, env, log_path, on_exit) (an object with containers.Process's
interface, or None for the usual bubblewrap container); everything else (volumes, probes,
restarts, back-off, status, node stop) is this kubelet's, as for any pod.

Standalone (tests): apiserver.py --kubelet node=NAME,csi=unix:///path,dir=DIR[,logs=DIR]
"""

import base64
import copy
import hashlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import sys
import threading
import time
import traceback

import grpc

import containers
from apierrors import ApiError
from resources import now_rfc3339, resource

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "csi"))
import csi_client  # noqa: E402  (the CSI client of the conformance suite: stubs from proto/)
import pluginreg  # noqa: E402

PODS, PVCS, PVS, NODES, LEASES = (resource(n) for n in (
    "pods", "persistentvolumeclaims", "persistentvolumes", "nodes", "leases"))
LEASE_NS = "kube-node-lease"
LEASE_DURATION = 40.0          # kubelet's nodeLeaseDurationSeconds; renewed every quarter
SERVICES, CSIDRIVERS, CONFIGMAPS, SECRETS = (resource(n) for n in (
    "services", "csidrivers", "configmaps", "secrets"))
CSINODES = resource("csinodes")
NODE_ID_ANN = "csi.volume.kubernetes.io/nodeid"
KUBELET_ROOT = "/var/lib/kubelet"
COMPONENT = "kubelet"
CSI_TIMEOUT = 120.0            # kubelet's csiTimeout
MOUNT_BACKOFF = (0.5, 120.0)   # kubelet's exponential back-off for volume operations
CLUSTER_DOMAIN = "cluster.local"
TERMINAL = ("Succeeded", "Failed")
HOSTS_DELAY = 0.2              # seconds between rewrites of the pods' /etc/hosts


class _IPs:
    """Pod IPs: one loopback address per pod, unique in this process, 127.1.0.1 upwards,
    skipping addresses another sandbox on the same machine uses.

    Several sandboxes on one machine (parallel test files) count from the same start, and a
    free port 80 says nothing until the pod's server binds it. So each address taken is held,
    for as long as the pod has it, by two sockets that never listen: one bound to port RESERVE
    (exclusive: another sandbox's reservation fails) and one bound to port 80 with
    SO_REUSEADDR (a plain bind, as older sandboxes test with, fails; the pod's own server,
    which sets SO_REUSEADDR as nginx and Python's http.server do, still binds and listens)."""

    RESERVE = 1

    def __init__(self):
        self.lock = threading.Lock()
        self.used = set()
        self.held = {}       # ip -> its reservation sockets
        self.parked = {}     # ip -> (pod uid, node): held while the node's kubelet is stopped
        self.next = 1

    @staticmethod
    def _bind(ip, port, reuse=False):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if reuse:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
            return s
        except OSError:
            s.close()
            return None

    @staticmethod
    def _listening(ip):
        """Whether any process listens on a TCP port of ip (/proc/net/tcp, state 0A): a pod
        of another sandbox whose reservation is gone (its pod object deleted while a process
        of it, or of a crashed test, still serves) would make our pod's servers fail with
        "Address already in use" on a port other than 80 (a probe's 9808, say)."""
        want = "%08X" % int.from_bytes(socket.inet_aton(ip), "little")
        try:
            with open("/proc/net/tcp") as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) > 3 and cols[3] == "0A" and cols[1].split(":")[0] == want:
                        return True
        except OSError:
            return False
        return False

    def _reserve(self, ip):
        """ip's reservation sockets; None when another process has the address."""
        r = self._bind(ip, self.RESERVE)
        if r is None:
            return None
        s80 = self._bind(ip, 80, reuse=True)
        if s80 is None or self._listening(ip):
            r.close()
            if s80 is not None:
                s80.close()
            return None
        return (r, s80)

    def take(self, want=None, owner=None):
        with self.lock:
            if want and owner is not None and self.parked.get(want, (None,))[0] == owner:
                # held for this pod while its kubelet was stopped (park): its own again
                del self.parked[want]
                return want
            if want and want.startswith("127.") and want not in self.used:
                # The pod's IP already (a kubelet started again): kept only when it can be
                # held again. Another sandbox may have taken it meanwhile (this one released
                # it when the pod's processes stopped); then the pod gets a new address, as a
                # pod whose sandbox is made again gets a new IP from its CNI.
                held = self._reserve(want)
                if held is not None:
                    self.used.add(want)
                    self.held[want] = held
                    return want
            for _ in range(1 << 22):
                n = self.next
                self.next = self.next + 1 if self.next < (1 << 22) else 1
                ip = "127.%d.%d.%d" % (1 + (n >> 16) % 254, (n >> 8) & 255, n & 255)
                if ip.endswith(".0") or ip.endswith(".255") or ip in self.used:
                    continue
                held = self._reserve(ip)
                if held is not None:
                    self.used.add(ip)
                    self.held[ip] = held
                    return ip
            raise RuntimeError("no free pod IP")

    def release(self, ip):
        with self.lock:
            self.used.discard(ip)
            self.parked.pop(ip, None)
            held = self.held.pop(ip, ())
        for s in held:
            s.close()

    def park(self, ip, owner, node):
        """Keep ip reserved for pod owner (a uid) while node's kubelet is stopped: the pod
        object still names it, and the kubelet started again restarts the pod's containers
        in the same sandbox, so with the same IP (take(want=ip, owner=uid))."""
        with self.lock:
            if ip in self.used:
                self.parked[ip] = (owner, node)

    def release_parked(self, node, keep=()):
        """Release what node's kubelet parked for pods other than those in keep (uids): pods
        deleted while it was stopped."""
        with self.lock:
            gone = [ip for ip, (uid, n) in self.parked.items() if n == node and uid not in keep]
        for ip in gone:
            self.release(ip)


IPS = _IPs()


def _get(obj, *path, default=None):
    cur = obj
    for p in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(p)
    return default if cur is None else cur


def _rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _expand(s, env):
    """Kubernetes $(VAR) expansion: $$ is a literal $, unknown references stay as written."""
    def rep(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", rep, s)


def staging_path(node_dir, driver, handle):
    return os.path.join(node_dir, "var/lib/kubelet/plugins/kubernetes.io/csi", driver,
                        hashlib.sha256(handle.encode()).hexdigest(), "globalmount")


def pod_dir(node_dir, uid):
    return os.path.join(node_dir, "var/lib/kubelet/pods", uid)


def target_path(node_dir, uid, pv):
    return os.path.join(pod_dir(node_dir, uid), "volumes/kubernetes.io~csi", pv, "mount")


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _check_names(pod):
    """Volume and container names become path components: refuse anything but RFC 1123
    labels even if an object slipped past the API server's validation."""
    spec = pod.get("spec") or {}
    for field in ("volumes", "containers", "initContainers"):
        for item in spec.get(field) or []:
            n = (item or {}).get("name")
            if not isinstance(n, str) or len(n) > 63 or not _LABEL.match(n):
                raise RuntimeError("%s name %r is not a valid RFC 1123 label" % (field[:-1], n))


class ConfigError(Exception):
    """CreateContainerConfigError: a reference in the container's env could not be resolved."""


class MountWait(Exception):
    """The pod's volumes are not ready yet (claims not bound); not an error."""


class Probe:
    def __init__(self, kind, spec):
        self.kind = kind                    # "Liveness", "Readiness", "Startup"
        self.spec = spec
        self.initial_delay = float(spec.get("initialDelaySeconds") or 0)
        self.period = float(spec.get("periodSeconds") or 10)
        self.timeout = float(spec.get("timeoutSeconds") or 1)
        self.success_threshold = int(spec.get("successThreshold") or 1)
        self.failure_threshold = int(spec.get("failureThreshold") or 3)
        self.reset(None)

    def reset(self, started_at):
        self.next_at = None if started_at is None else started_at + self.initial_delay
        self.successes = 0
        self.failures = 0
        # Readiness starts failed and startup not succeeded; liveness starts healthy.
        self.ok = self.kind == "Liveness"


class ContainerState:
    def __init__(self, spec, old_status):
        self.name = spec["name"]
        self.spec = spec
        self.proc = None
        self.restart_count = int(_get(old_status, "restartCount", default=0))
        # A container that ran before this kubelet (a node that came back) starts again as a
        # restart, like a container recreated after a reboot.
        self.ran_before = bool(_get(old_status, "state", "running") or
                               _get(old_status, "state", "terminated") or
                               _get(old_status, "lastState", "terminated"))
        self.last_term = _get(old_status, "lastState", "terminated")
        self.term = None            # current terminated state (no restart coming)
        self.waiting = ("ContainerCreating", None)
        self.backoff = 0.0          # seconds of the next back-off, 0 = none yet
        self.backoff_until = 0.0
        self.ready = False
        self.probes = {k: Probe(k, spec[f]) for k, f in (
            ("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe")) if isinstance(spec.get(f), dict)}

    def started(self):
        p = self.probes.get("Startup")
        return self.running() and (p is None or p.ok)

    def running(self):
        return self.proc is not None and self.proc.running()

    def container_id(self):
        return "bwrap://%d" % self.proc.pid if self.proc and self.proc.pid else ""


class PodWorker:
    def __init__(self, kubelet, uid, ns, name):
        self.k = kubelet
        self.uid = uid
        self.ns = ns
        self.name = name
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pod-%s/%s" % (ns, name),
                                       daemon=True)
        self.ip = None
        self.containers = {}        # name -> ContainerState
        self.inits = {}             # init container name -> ContainerState
        self.initialized = False    # every init container has completed
        self.init_failed = False    # one failed for good (restartPolicy Never)
        self.mounted = False        # volumes set up
        self.mounts = {}            # volume name -> host path
        self.mount_retry_at = 0.0
        self.mount_backoff = 0.0
        self.mount_waiting = None   # message while the claims are not bound
        self.claims = set()
        self.start_time = None
        self.hosts_text = None
        self.emitted = set()        # events emitted once per worker
        self.config_errors = {}
        self.done = False
        self.plan = None            # the pod runner's plan when it claims the pod
        self.planned = False

    # ---- loop ----

    def start(self):
        self.thread.start()

    def _run(self):
        try:
            while not self.k.stopping.is_set():
                try:
                    if self._sync():
                        break
                except Exception:  # noqa: BLE001 - log, back off, retry
                    self.k.log("pod %s/%s: sync failed:\n%s" % (self.ns, self.name,
                                                               traceback.format_exc()))
                    self.wake.wait(1.0)
                timeout = self._next_deadline()
                self.wake.wait(timeout)
                self.wake.clear()
        finally:
            if self.k.stopping.is_set():
                for cs in self._states():   # the node goes away with its processes
                    if cs.proc:
                        cs.proc.kill(signal.SIGKILL)
                # the address goes back to the machine's pool only once nothing of the pod
                # can still listen on it (another sandbox may take it at once)
                for cs in self._states():
                    if cs.proc and cs.running():
                        cs.proc.wait(10)
            if self.ip and self.k.stopping.is_set():
                IPS.park(self.ip, self.uid, self.k.node_name)
            elif self.ip:
                IPS.release(self.ip)
            self.done = True
            self.k._worker_done(self)

    def _states(self):
        return list(self.inits.values()) + list(self.containers.values())

    def _next_deadline(self):
        now = time.monotonic()
        ds = []
        if not self.mounted and self.mount_retry_at:
            ds.append(self.mount_retry_at)
        for cs in self._states():
            if cs.backoff_until > now and not cs.running():
                ds.append(cs.backoff_until)
            if cs.running():
                ds += [p.next_at for p in cs.probes.values() if p.next_at is not None]
        if not ds:
            return None
        return max(0.0, min(ds) - now)

    def _fetch(self):
        try:
            pod = self.k.store.get(PODS, self.ns, self.name)
        except ApiError:
            return None
        return pod if pod["metadata"].get("uid") == self.uid else None

    def _sync(self):
        """One pass; True when the worker is finished."""
        pod = self._fetch()
        if pod is None or _get(pod, "spec", "nodeName") != self.k.node_name:
            # Gone from the API (force-deleted, or left over from before this kubelet), or
            # bound to another node now.
            self._kill_all(2.0, None)
            self._unmount_all()
            return True
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(pod)
            return True
        if self.start_time is None:
            self.start_time = _get(pod, "status", "startTime") or now_rfc3339()
        if _get(pod, "status", "phase") in TERMINAL and not any(
                cs.running() for cs in self._states()):
            if self.mounted:
                self._unmount_all()
                self.mounted = False
            return False
        if not self.planned and self.k.runner is not None:
            self.plan = self.k.runner(self.k, pod)
            self.planned = True
        if self.ip is None:
            self.ip = IPS.take(_get(pod, "status", "podIP") or getattr(self.plan, "ip", None),
                               owner=self.uid)
        if not self.mounted:
            if time.monotonic() < self.mount_retry_at:
                self._write_status(pod)
                return False
            try:
                self._mount_all(pod)
                self.mounted = True
                self.mount_waiting = None
                self.mount_backoff = 0.0
                self.mount_retry_at = 0.0
            except MountWait as w:
                self.mount_waiting = str(w)
                self.mount_retry_at = 0.0   # woken by claim/PV events
                self._write_status(pod)
                return False
            except (grpc.RpcError, OSError, RuntimeError) as e:
                self.mount_backoff = min(MOUNT_BACKOFF[1], max(MOUNT_BACKOFF[0],
                                                               self.mount_backoff * 2))
                self.mount_retry_at = time.monotonic() + self.mount_backoff
                self.k.event(pod, "Warning", "FailedMount", _rpc_text(e))
                self._write_status(pod)
                return False
            self._write_hosts(pod)
        if not self.initialized and not self._sync_inits(pod):
            self._write_status(pod)
            return False
        for c in _get(pod, "spec", "containers", default=[]):
            cs = self.containers.get(c["name"])
            if cs is None:
                old = {s.get("name"): s for s in _get(pod, "status", "containerStatuses",
                                                      default=[])}
                cs = self.containers[c["name"]] = ContainerState(c, old.get(c["name"]))
            self._sync_container(pod, cs)
        self._write_status(pod)
        return False

    def _sync_inits(self, pod):
        """Init containers one after the other, each to a successful exit; True when all
        are done. A failed one is restarted (with back-off) unless restartPolicy is Never,
        which fails the pod."""
        policy = "Never" if _get(pod, "spec", "restartPolicy") == "Never" else "OnFailure"
        old = {s.get("name"): s for s in _get(pod, "status", "initContainerStatuses",
                                              default=[])}
        for c in _get(pod, "spec", "initContainers", default=[]):
            cs = self.inits.get(c["name"])
            if cs is None:
                cs = self.inits[c["name"]] = ContainerState(c, old.get(c["name"]))
                cs.probes = {}            # init containers have no probes
            if cs.term is not None and cs.term.get("exitCode") == 0:
                continue
            self._sync_container(pod, cs, policy)
            if cs.term is not None and cs.term.get("exitCode") == 0:
                continue
            if cs.term is not None:
                self.init_failed = True
            return False
        self.initialized = True
        return True

    # ---- volumes ----

    def _mount_all(self, pod):
        _check_names(pod)
        spec = pod.get("spec") or {}
        self.claims = {_get(v, "persistentVolumeClaim", "claimName")
                       for v in spec.get("volumes") or [] if _get(v, "persistentVolumeClaim")}
        # kubelet waits for every volume before it mounts any (WaitForAttachAndMount).
        pvs = {}
        for v in spec.get("volumes") or []:
            claim = _get(v, "persistentVolumeClaim", "claimName")
            if not claim:
                continue
            try:
                pvc = self.k.store.get(PVCS, self.ns, claim)
            except ApiError:
                raise MountWait('persistentvolumeclaim "%s" not found' % claim)
            pv_name = _get(pvc, "spec", "volumeName")
            if _get(pvc, "status", "phase") != "Bound" or not pv_name:
                raise MountWait('persistentvolumeclaim "%s" is not bound' % claim)
            try:
                pv = self.k.store.get(PVS, "", pv_name)
            except ApiError:
                raise MountWait('persistentvolume "%s" not found' % pv_name)
            if not _get(pv, "spec", "csi"):
                raise RuntimeError('volume "%s": only CSI persistent volumes are supported in '
                                   'the sandbox' % v["name"])
            pvs[v["name"]] = (pv, bool(_get(v, "persistentVolumeClaim", "readOnly")))
        pdir = pod_dir(self.k.node_dir, self.uid)
        for v in spec.get("volumes") or []:
            vname = v["name"]
            if vname in pvs:
                pv, ro = pvs[vname]
                self.mounts[vname] = self.k.mount_csi(pod, pv, ro)
            elif "emptyDir" in v:
                p = os.path.join(pdir, "volumes/kubernetes.io~empty-dir", vname)
                os.makedirs(p, mode=0o777, exist_ok=True)
                self.mounts[vname] = p
            elif "configMap" in v or "secret" in v:
                self.mounts[vname] = self._projected(v, pdir)
            elif "hostPath" in v and self.plan is not None:
                self.mounts[vname] = self.plan.host_path(v)
            else:
                kind = next((k for k in v if k != "name"), "?")
                raise RuntimeError('volume "%s": %s volumes are not supported in the sandbox'
                                   % (vname, kind))

    def _projected(self, v, pdir):
        if "configMap" in v:
            src, res, plugin, key = v["configMap"], CONFIGMAPS, "kubernetes.io~configmap", "name"
        else:
            src, res, plugin, key = v["secret"], SECRETS, "kubernetes.io~secret", "secretName"
        try:
            obj = self.k.store.get(res, self.ns, src.get(key) or "")
        except ApiError as e:
            if src.get("optional"):
                obj = {}
            else:
                raise MountWait(str(e))
        data = dict(obj.get("data") or {})
        if res is CONFIGMAPS:
            files = {k: val.encode() for k, val in data.items()}
            files.update({k: base64.b64decode(val) for k, val in
                          (obj.get("binaryData") or {}).items()})
        else:
            files = {k: base64.b64decode(val) for k, val in data.items()}
        if src.get("items"):
            files = {it["path"]: files[it["key"]] for it in src["items"] if it["key"] in files}
        p = os.path.join(pdir, "volumes", plugin, v["name"])
        os.makedirs(p, exist_ok=True)
        for rel, content in files.items():
            dst = os.path.normpath(os.path.join(p, rel))
            if not dst.startswith(p + "/"):
                continue   # a path escaping the volume is ignored (the API server refuses it)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(content)
            os.chmod(dst, int(src.get("defaultMode") or 0o644))
        return p

    def _unmount_all(self):
        """Unpublish every CSI volume of this pod found on disk, unstage those no other pod
        uses, remove the pod's directory. Retries with back-off until it works or the kubelet
        stops (the pod object is deleted only after this)."""
        delay = MOUNT_BACKOFF[0]
        while not self.k.stopping.is_set():
            try:
                self.k.unmount_pod(self.uid)
                return True
            except (grpc.RpcError, OSError) as e:
                self.k.log("pod %s/%s: unmount failed: %s" % (self.ns, self.name, _rpc_text(e)))
                pod = self._fetch()
                if pod is not None:
                    self.k.event(pod, "Warning", "FailedUnmount", _rpc_text(e))
                self.k.stopping.wait(delay)
                delay = min(MOUNT_BACKOFF[1], delay * 2)
        return False

    # ---- hosts ----

    def _write_hosts(self, pod, records=None):
        text = self.k.hosts_text(pod, self.ip, records)
        if text == self.hosts_text:
            return
        path = os.path.join(pod_dir(self.k.node_dir, self.uid), "etc-hosts")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Rewritten in place: the containers see it through a bind mount of this inode.
        with open(path, "a+") as f:
            f.seek(0)
            f.truncate()
            f.write(text)
        self.hosts_text = text

    def refresh_hosts(self, records):
        if self.hosts_text is None or self.done:
            return
        pod = self._fetch()
        if pod is not None and self.ip:
            self._write_hosts(pod, records)

    # ---- containers ----

    def _env(self, pod, c):
        hostname = _get(pod, "spec", "hostname") or self.name
        env = {"PATH": containers.DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root"}
        for ef in c.get("envFrom") or []:
            prefix = ef.get("prefix") or ""
            for kind, res in (("configMapRef", CONFIGMAPS), ("secretRef", SECRETS)):
                ref = ef.get(kind)
                if not ref:
                    continue
                try:
                    obj = self.k.store.get(res, self.ns, ref.get("name") or "")
                except ApiError as e:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(str(e))
                for k, val in (obj.get("data") or {}).items():
                    env[prefix + k] = val if res is CONFIGMAPS else \
                        base64.b64decode(val).decode(errors="replace")
        for e in c.get("env") or []:
            name = e.get("name")
            if not name:
                continue
            if "valueFrom" not in e:
                env[name] = _expand(str(e.get("value") or ""), env)
                continue
            vf = e["valueFrom"] or {}
            if "fieldRef" in vf:
                env[name] = self._field(pod, (vf["fieldRef"] or {}).get("fieldPath", ""))
            elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
                secret = "secretKeyRef" in vf
                ref = vf["secretKeyRef" if secret else "configMapKeyRef"] or {}
                try:
                    obj = self.k.store.get(SECRETS if secret else CONFIGMAPS, self.ns,
                                           ref.get("name") or "")
                    val = (obj.get("data") or {})[ref.get("key")]
                    env[name] = base64.b64decode(val).decode(errors="replace") if secret \
                        else val
                except (ApiError, KeyError):
                    if not ref.get("optional"):
                        raise ConfigError("couldn't find key %s in %s %s" % (
                            ref.get("key"), "Secret" if secret else "ConfigMap",
                            "%s/%s" % (self.ns, ref.get("name"))))
            elif "resourceFieldRef" in vf:
                env[name] = "0"
        return env

    def _field(self, pod, path):
        md = pod["metadata"]
        simple = {"metadata.name": md.get("name"), "metadata.namespace": md.get("namespace"),
                  "metadata.uid": md.get("uid"), "spec.nodeName": self.k.node_name,
                  "spec.serviceAccountName": _get(pod, "spec", "serviceAccountName",
                                                  default="default"),
                  "status.podIP": self.ip, "status.hostIP": self.k.host_ip(),
                  "status.podIPs": self.ip, "status.hostIPs": self.k.host_ip()}
        if path in simple:
            return simple[path] or ""
        m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
        if m:
            return (md.get(m.group(1)) or {}).get(m.group(2), "")
        raise ConfigError('unsupported fieldPath "%s"' % path)

    def _container_spec(self, pod, c, restart_count):
        env = self._env(pod, c)
        image = c.get("image") or ""
        if c.get("command"):
            argv = [_expand(str(a), env) for a in (c.get("command") or []) +
                    (c.get("args") or [])]
        elif "nginx" in image:
            argv = containers.web_argv(self.ip)
        else:
            argv = containers.sleep_argv()
            if "nocommand" not in self.emitted:
                self.emitted.add("nocommand")
                self.k.event(pod, "Normal", "NoCommand",
                             'Image "%s" cannot be pulled into the sandbox and container %s has '
                             'no command: it sleeps' % (image, c["name"]))
        mounts = []
        for vm in c.get("volumeMounts") or []:
            src = self.mounts.get(vm.get("name"))
            if src is None:
                raise ConfigError('volume "%s" not found' % vm.get("name"))
            if vm.get("subPath"):
                sub = os.path.normpath(os.path.join(src, vm["subPath"]))
                if not sub.startswith(src.rstrip("/") + "/"):
                    raise ConfigError('subPath "%s" escapes the volume' % vm["subPath"])
                os.makedirs(sub, exist_ok=True)
                src = sub
            mounts.append((src, vm["mountPath"], bool(vm.get("readOnly"))))
        hosts = os.path.join(pod_dir(self.k.node_dir, self.uid), "etc-hosts")
        log = os.path.join(self.k.log_dir, "%s_%s_%s" % (self.ns, self.name, self.uid),
                           c["name"], "%d.log" % restart_count)
        hostname = _get(pod, "spec", "hostname") or self.name
        return containers.Spec(c["name"], argv, env, hostname[:63], mounts, hosts,
                               c.get("workingDir"), log)

    def _start_container(self, pod, cs):
        c = cs.spec
        count = cs.restart_count + (1 if cs.proc is not None or cs.ran_before else 0)
        try:
            spec = self._container_spec(pod, c, count)
        except ConfigError as e:
            cs.waiting = ("CreateContainerConfigError", str(e))
            if self.config_errors.get(c["name"]) != str(e):
                self.config_errors[c["name"]] = str(e)
                self.k.event(pod, "Warning", "Failed", "Error: %s" % e)
            cs.backoff_until = time.monotonic() + 2.0   # retried: the reference may appear
            return
        proc = None
        if self.plan is not None:
            try:
                proc = self.plan.process(self, pod, c, spec.env, spec.log_path, self.wake.set)
            except ConfigError as e:
                cs.waiting = ("CreateContainerConfigError", str(e))
                if self.config_errors.get(c["name"]) != str(e):
                    self.config_errors[c["name"]] = str(e)
                    self.k.event(pod, "Warning", "Failed", "Error: %s" % e)
                cs.backoff_until = time.monotonic() + 2.0
                return
        self.config_errors.pop(c["name"], None)
        cs.restart_count = count
        cs.ran_before = False
        self.k.event(pod, "Normal", "Pulled", 'Container image "%s" already present on machine'
                     % c.get("image", ""))
        self.k.event(pod, "Normal", "Created", "Created container %s" % c["name"])
        proc = proc or containers.Process(spec, self.wake.set)
        cs.proc = proc
        cs.waiting = None
        cs.term = None
        cs.ready = False
        try:
            proc.start()
        except containers.ContainerError as e:
            self.k.event(pod, "Warning", "Failed", "Error: %s" % e)
            self.wake.set()      # handled as an exit: restart policy and back-off apply
            return
        for p in cs.probes.values():
            p.reset(time.monotonic())
        r = cs.probes.get("Readiness")
        cs.ready = cs.started() and r is None
        self.k.event(pod, "Normal", "Started", "Started container %s" % c["name"])

    def _term_state(self, cs, reason=None):
        p = cs.proc
        code = p.exit_code if p.exit_code is not None else 128
        t = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error"),
             "startedAt": _rfc3339(p.started_at or time.time()),
             "finishedAt": _rfc3339(p.finished_at or time.time())}
        if p.pid:
            t["containerID"] = cs.container_id()
        return t

    def _sync_container(self, pod, cs, policy=None):
        if cs.running():
            self._probe(pod, cs)
            return
        if cs.proc is None:                       # never started by this kubelet
            if time.monotonic() >= cs.backoff_until:
                self._start_container(pod, cs)
            return
        if cs.term is not None:                   # terminated for good
            return
        # It has exited: restart as restartPolicy and the back-off say.
        term = self._term_state(cs)
        policy = policy or _get(pod, "spec", "restartPolicy", default="Always")
        if policy == "Never" or (policy == "OnFailure" and term["exitCode"] == 0):
            cs.term = term
            cs.ready = False
            return
        now = time.monotonic()
        if cs.waiting is None:                    # first look at this exit
            cs.last_term = term
            cs.ready = False
            ran = (cs.proc.finished_at or 0) - (cs.proc.started_at or 0)
            if ran > 2 * self.k.backoff[1]:
                cs.backoff = 0.0                  # kubelet forgets the back-off after 2 x max
            if cs.backoff == 0.0:
                cs.backoff_until = now
                cs.backoff = self.k.backoff[0]
            else:
                cs.backoff_until = now + cs.backoff
                cs.backoff = min(self.k.backoff[1], cs.backoff * 2)
            cs.waiting = ("CrashLoopBackOff", None)
        if now < cs.backoff_until:
            left = cs.backoff_until - now
            cs.waiting = ("CrashLoopBackOff", "back-off %s restarting failed container=%s "
                          "pod=%s_%s(%s)" % (_dur(left + 0.5), cs.name, self.name, self.ns,
                                             self.uid))
            self.k.event(pod, "Warning", "BackOff", "Back-off restarting failed container %s "
                         "in pod %s_%s(%s)" % (cs.name, self.name, self.ns, self.uid))
            return
        self._start_container(pod, cs)

    def _probe(self, pod, cs):
        now = time.monotonic()
        startup = cs.probes.get("Startup")
        for kind in ("Startup", "Liveness", "Readiness"):
            p = cs.probes.get(kind)
            if p is None or p.next_at is None or now < p.next_at:
                continue
            if kind != "Startup" and startup is not None and not startup.ok:
                continue
            if kind == "Startup" and p.ok:
                p.next_at = None
                continue
            ok, out = self._run_probe(pod, cs, p)
            p.next_at = time.monotonic() + p.period
            if ok:
                p.failures = 0
                p.successes += 1
                if p.successes >= p.success_threshold:
                    p.ok = True
            else:
                p.successes = 0
                p.failures += 1
                self.k.event(pod, "Warning", "Unhealthy", "%s probe failed: %s"
                             % (kind, out.strip()))
                if p.failures >= p.failure_threshold:
                    p.ok = False
                    if kind in ("Liveness", "Startup"):
                        self.k.event(pod, "Normal", "Killing", "Container %s failed %s probe, "
                                     "will be restarted" % (cs.name, kind.lower()))
                        grace = p.spec.get("terminationGracePeriodSeconds")
                        if grace is None:
                            grace = _get(pod, "spec", "terminationGracePeriodSeconds",
                                         default=30)
                        cs.proc.stop(float(grace))
                        self.wake.set()
                        return
        r = cs.probes.get("Readiness")
        cs.ready = cs.started() and (r is None or r.ok)

    def _run_probe(self, pod, cs, p):
        s = p.spec
        if "exec" in s:
            rc, out = cs.proc.exec((s["exec"] or {}).get("command") or ["false"], p.timeout)
            if rc is None:
                return False, "command timed out after %gs" % p.timeout
            return rc == 0, out
        if "httpGet" in s or "tcpSocket" in s:
            g = s.get("httpGet") or s.get("tcpSocket") or {}
            port = g.get("port")
            if isinstance(port, str) and not port.isdigit():
                port = next((pp.get("containerPort") for pp in cs.spec.get("ports") or []
                             if pp.get("name") == port), None)
            host = g.get("host") or self.ip
            try:
                port = int(port)
                if "tcpSocket" in s:
                    socket.create_connection((host, port), timeout=p.timeout).close()
                    return True, ""
                conn = http.client.HTTPConnection(host, port, timeout=p.timeout)
                conn.request("GET", g.get("path") or "/",
                             headers={h["name"]: h["value"] for h in g.get("httpHeaders") or []})
                code = conn.getresponse().status
                conn.close()
                return 200 <= code < 400, "HTTP probe failed with statuscode: %d" % code
            except (OSError, ValueError, TypeError) as e:
                return False, str(e)
        return True, ""

    def _kill_all(self, grace, pod):
        running = [cs for cs in self._states() if cs.running()]
        for cs in running:
            if pod is not None:
                self.k.event(pod, "Normal", "Killing", "Stopping container %s" % cs.name)
            cs.proc.kill(signal.SIGTERM)
        deadline = time.monotonic() + max(0.0, grace)
        seen_grace = grace
        while time.monotonic() < deadline:
            alive = [cs for cs in running if cs.running()]
            if not alive:
                break
            alive[0].proc.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            if pod is None:
                continue
            # A second deletion with a shorter grace period (kubectl delete --grace-period)
            # shortens the wait, as kubelet's pod killer does; a pod gone is killed at once.
            cur = self._fetch()
            if cur is None:
                break
            g = cur["metadata"].get("deletionGracePeriodSeconds")
            if g is not None and g < seen_grace:
                seen_grace = g
                deadline = min(deadline, time.monotonic() + g)
        for cs in running:
            if cs.running():
                cs.proc.kill(signal.SIGKILL)
                cs.proc.wait(10)

    def _terminate(self, pod):
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = _get(pod, "spec", "terminationGracePeriodSeconds", default=30)
        self._kill_all(float(grace), pod)
        for cs in self._states():
            if cs.proc is not None and cs.term is None:
                cs.term = self._term_state(cs)
            cs.ready = False
            cs.waiting = None if cs.proc is not None else cs.waiting
        pod = self._fetch()
        if pod is None:
            self._unmount_all()
            return
        self._write_status(pod, final=True)
        if not self._unmount_all():
            return
        try:
            self.k.store.delete(PODS, self.ns, self.name, {"gracePeriodSeconds": 0,
                                                           "preconditions": {"uid": self.uid}})
        except ApiError as e:
            if e.code not in (404, 409):
                raise

    # ---- status ----

    def _container_status(self, cs):
        c = cs.spec
        st = {"name": cs.name, "image": c.get("image", ""),
              "imageID": "sandbox://%s" % c.get("image", ""),
              "restartCount": cs.restart_count, "ready": bool(cs.ready),
              "started": bool(cs.started())}
        if cs.running():
            st["state"] = {"running": {"startedAt": _rfc3339(cs.proc.started_at)}}
            st["containerID"] = cs.container_id()
        elif cs.term is not None:
            st["state"] = {"terminated": cs.term}
            if cs.term.get("containerID"):
                st["containerID"] = cs.term["containerID"]
        elif cs.waiting is not None:
            w = {"reason": cs.waiting[0]}
            if cs.waiting[1]:
                w["message"] = cs.waiting[1]
            st["state"] = {"waiting": w}
        elif cs.proc is not None:
            st["state"] = {"terminated": self._term_state(cs)}
        else:
            st["state"] = {"waiting": {"reason": "ContainerCreating"}}
        st["lastState"] = {"terminated": cs.last_term} if cs.last_term else {}
        return st

    def _phase(self, pod, statuses):
        running = waiting = stopped = succeeded = 0
        for s in statuses:
            state = s["state"]
            if "running" in state:
                running += 1
            elif "terminated" in state:
                stopped += 1
                succeeded += state["terminated"].get("exitCode") == 0
            elif s.get("lastState", {}).get("terminated"):
                stopped += 1
            else:
                waiting += 1
        policy = _get(pod, "spec", "restartPolicy", default="Always")
        if waiting > 0:
            return "Pending"
        if running > 0:
            return "Running"
        if stopped > 0:
            if policy == "Always":
                return "Running"
            if stopped == succeeded:
                return "Succeeded"
            return "Failed" if policy == "Never" else "Running"
        return "Pending"

    def _write_status(self, pod, final=False):
        specs = _get(pod, "spec", "containers", default=[])
        init_specs = _get(pod, "spec", "initContainers", default=[])
        creating = "PodInitializing" if init_specs and self.mounted else "ContainerCreating"

        def pending(c, reason):
            return {"name": c["name"], "image": c.get("image", ""), "imageID": "",
                    "restartCount": 0, "ready": False, "started": False,
                    "state": {"waiting": {"reason": reason}}, "lastState": {}}
        statuses = [self._container_status(self.containers[c["name"]])
                    if c["name"] in self.containers else pending(c, creating) for c in specs]
        init_statuses = []
        for c in init_specs:
            if c["name"] in self.inits:
                st = self._container_status(self.inits[c["name"]])
                st["ready"] = st["state"].get("terminated", {}).get("exitCode") == 0
                init_statuses.append(st)
            else:
                init_statuses.append(pending(c, "PodInitializing"))
        incomplete = [c["name"] for c, st in zip(init_specs, init_statuses) if not st["ready"]]
        phase = self._phase(pod, statuses)
        if init_specs and not self.initialized:
            phase = "Failed" if self.init_failed else "Pending"
        if final:
            codes = [s["state"].get("terminated", {}).get("exitCode") for s in statuses]
            if all(c is not None for c in codes) and statuses:
                phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
        old = copy.deepcopy(pod.get("status") or {})
        new = dict(old)
        unready = [s["name"] for s in statuses if not s["ready"]]
        completed = phase == "Succeeded"

        def cond(ctype, ok, reason=None, message=None):
            prev = next((c for c in old.get("conditions") or [] if c.get("type") == ctype), {})
            status = "True" if ok else "False"
            c = {"type": ctype, "status": status, "lastProbeTime": None,
                 "lastTransitionTime": prev.get("lastTransitionTime") if
                 prev.get("status") == status else now_rfc3339()}
            if reason:
                c["reason"] = reason
            if message:
                c["message"] = message
            return c
        sandbox = self.mounted and self.ip is not None and not final
        not_ready = ("PodCompleted", None) if completed else (
            "ContainersNotReady", "containers with unready status: [%s]" % " ".join(unready))
        conds = [cond("PodReadyToStartContainers", sandbox),
                 cond("Initialized", not incomplete, *(() if not incomplete else (
                     "ContainersNotInitialized", "containers with incomplete status: [%s]"
                     % " ".join(incomplete)))),
                 cond("Ready", not unready and not completed,
                      *(() if not unready and not completed else not_ready)),
                 cond("ContainersReady", not unready and not completed,
                      *(() if not unready and not completed else not_ready)),
                 cond("PodScheduled", True)]
        prev_sched = next((c for c in old.get("conditions") or []
                           if c.get("type") == "PodScheduled"), None)
        if prev_sched and prev_sched.get("status") == "True":
            conds[-1] = prev_sched
        new["conditions"] = conds
        new["phase"] = phase
        new["containerStatuses"] = statuses
        if init_statuses:
            new["initContainerStatuses"] = init_statuses
        new["hostIP"] = self.k.host_ip()
        new["hostIPs"] = [{"ip": self.k.host_ip()}]
        if self.ip:
            new["podIP"] = self.ip
            new["podIPs"] = [{"ip": self.ip}]
        new["startTime"] = self.start_time or now_rfc3339()
        new.setdefault("qosClass", "BestEffort")
        if new == old:
            return
        obj = copy.deepcopy(pod)
        obj["status"] = new
        try:
            self.k.store.update(PODS, self.ns, self.name, obj, sub="status")
        except ApiError as e:
            if e.code == 409:
                self.wake.set()     # a newer pod: sync again
            elif e.code != 404:
                raise


def _dur(seconds):
    s = int(seconds)
    if s < 60:
        return "%ds" % s
    return "%dm%ds" % (s // 60, s % 60)


def _rpc_text(e):
    if isinstance(e, grpc.RpcError):
        try:
            return "rpc error: code = %s desc = %s" % (e.code().name, e.details())
        except Exception:  # noqa: BLE001 - a channel error without code
            return str(e)
    return str(e)


class Kubelet:
    def __init__(self, store, node_name, csi_endpoint, node_dir, log_dir, backoff=(10.0, 300.0),
                 log=None, kubelet_root=None, lease_duration=LEASE_DURATION):
        self.store = store
        self.lease_duration = float(lease_duration)
        self.heartbeat = None
        # where the node's /var/lib/kubelet is for plugin sockets (plugins_registry, endpoints)
        self.kubelet_root = os.path.abspath(kubelet_root or os.path.join(
            node_dir, KUBELET_ROOT.lstrip("/")))
        self.node_name = node_name
        self.csi_endpoint = csi_endpoint
        self.node_dir = os.path.abspath(node_dir)
        self.log_dir = os.path.abspath(log_dir)
        self.backoff = backoff        # container restart back-off: initial, maximum (seconds)
        self.log = log or (lambda msg: None)
        self.stopping = threading.Event()
        self.events = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.workers = {}             # uid -> PodWorker
        self.volume_locks = {}        # volumeHandle -> Lock (stage/publish/unstage order)
        self.thread = None
        self.channel = None
        self.csi = None
        self.pb = None
        self.driver = None
        self.watcher = None           # without csi_endpoint: plugins_registry (CsiHandler)
        self.registered = {}          # CSI driver name -> endpoint, from plugin registration
        self.stage_unstage = True
        self._host_ip = None
        self._hosts_dirty = False
        self.runner = None            # claims pods it runs its own way (module docstring)
        # Pods on a node are deleted gracefully once a kubelet exists to finish the deletion.
        store.graceful_pods = True

    # ---- lifecycle ----

    def start(self):
        os.makedirs(os.path.join(self.node_dir, "var/lib/kubelet/pods"), exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        self.pb = csi_client.load_pb(SOURCE)
        if self.csi_endpoint:
            self._connect(self.csi_endpoint)
        else:
            self.watcher = pluginreg.PluginWatcher(
                os.path.join(self.kubelet_root, "plugins_registry"), {
                    pluginreg.CSI_PLUGIN: CsiHandler(self)},
                log=lambda m: self.log("kubelet %s: %s" % (self.node_name, m)))
            self.watcher.start()
        with self.store.lock:
            self.store.listeners.append(self._notify)
        self.thread = threading.Thread(target=self._run, name="kubelet-%s" % self.node_name,
                                       daemon=True)
        self.thread.start()
        self.heartbeat = threading.Thread(target=self._heartbeat,
                                          name="lease-%s" % self.node_name, daemon=True)
        self.heartbeat.start()

    def stop(self):
        self.stopping.set()
        with self.store.lock:
            if self._notify in self.store.listeners:
                self.store.listeners.remove(self._notify)
        self.events.put(None)
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.wake.set()
        if self.watcher is not None:
            self.watcher.stop()
        if self.channel is not None:
            self.channel.close()    # cancels CSI calls in flight
        for w in workers:
            w.thread.join(15)
        if self.thread is not None:
            self.thread.join(5)
        if self.heartbeat is not None:
            self.heartbeat.join(5)
        # Nothing is posted: a node that goes away says nothing; the node lifecycle controller
        # sees its Lease expire (nodelifecycle.py).

    # ---- events from the store (called with its lock held: only queue) ----

    def _notify(self, res, etype, obj, prev):
        if res is PODS:
            md = obj["metadata"]
            node = (obj.get("spec") or {}).get("nodeName")
            pnode = ((prev or {}).get("spec") or {}).get("nodeName")
            mine = node == self.node_name or pnode == self.node_name
            # /etc/hosts changes only with a pod's IP, names or deletion
            dns = etype != "MODIFIED" or any(
                _get(obj, *k) != _get(prev, *k) for k in (
                    ("status", "podIP"), ("spec", "hostname"), ("spec", "subdomain"),
                    ("metadata", "deletionTimestamp")))
            self.events.put(("pod" if dns else "pod-status", md.get("uid"),
                             md.get("namespace"), md.get("name"), mine))
        elif res in (PVCS, PVS, SERVICES, CONFIGMAPS, SECRETS):
            self.events.put((res.plural, None, None, None, False))
        elif res is NODES and obj["metadata"].get("name") == self.node_name and \
                etype != "DELETED":
            ready = [c for c in (obj.get("status") or {}).get("conditions") or []
                     if c.get("type") == "Ready" and c.get("status") == "True"]
            if not ready:     # a Node made after the kubelet started: it reports Ready
                self.events.put(("node", None, None, None, True))

    def _run(self):
        try:
            self._set_node_ready(True)
            self._resync()
            live = self._cleanup_orphans()
            # addresses parked (PodWorker) for pods deleted while this kubelet was stopped
            IPS.release_parked(self.node_name, keep=live)
        except Exception:  # noqa: BLE001
            self.log("kubelet %s: start-up failed:\n%s" % (self.node_name,
                                                           traceback.format_exc()))
        last_hosts = 0.0
        while not self.stopping.is_set():
            # /etc/hosts files are rewritten at most every HOSTS_DELAY, also while events
            # keep coming (pod status updates)
            wait = None
            if self._hosts_dirty:
                wait = max(0.0, last_hosts + HOSTS_DELAY - time.monotonic())
            try:
                ev = self.events.get(timeout=wait)
            except queue.Empty:
                ev = False
            if ev is None:
                break
            if ev:
                try:
                    self._dispatch(ev)
                except Exception:  # noqa: BLE001
                    self.log("kubelet %s: dispatch failed:\n%s" % (self.node_name,
                                                                   traceback.format_exc()))
            if self._hosts_dirty and time.monotonic() >= last_hosts + HOSTS_DELAY:
                last_hosts = time.monotonic()
                self._refresh_hosts()

    def _dispatch(self, ev):
        kind, uid, ns, name, mine = ev
        if kind in ("pod", "pod-status"):
            self._hosts_dirty = self._hosts_dirty or kind == "pod"
            if mine:
                self._ensure_worker(uid, ns, name)
            return
        if kind == "services":
            self._hosts_dirty = True
            return
        if kind == "node":
            self._host_ip = None
            self._set_node_ready(True)
            return
        with self.lock:
            waiting = [w for w in self.workers.values() if not w.mounted]
        for w in waiting:
            w.wake.set()

    def _ensure_worker(self, uid, ns, name):
        with self.lock:
            w = self.workers.get(uid)
            if w is not None:
                w.wake.set()
                return
            if self.stopping.is_set():
                return
            w = self.workers[uid] = PodWorker(self, uid, ns, name)
            w.start()   # under the lock: stop() joins every worker it lists

    def _worker_done(self, w):
        with self.lock:
            if self.workers.get(w.uid) is w:
                del self.workers[w.uid]

    def _resync(self):
        for pod in self.store.objects(PODS):
            if _get(pod, "spec", "nodeName") == self.node_name:
                md = pod["metadata"]
                self._ensure_worker(md["uid"], md["namespace"], md["name"])

    def _cleanup_orphans(self):
        """Pod directories of pods no longer bound here (deleted while the kubelet was away):
        a worker for each finds no pod and unmounts what vol_data.json says is there. Returns
        the uids of the pods bound here."""
        base = os.path.join(self.node_dir, "var/lib/kubelet/pods")
        live = {p["metadata"]["uid"] for p in self.store.objects(PODS)
                if _get(p, "spec", "nodeName") == self.node_name}
        for uid in sorted(os.listdir(base)):
            if uid not in live:
                self._ensure_worker(uid, "", "")
        return live

    def _refresh_hosts(self):
        self._hosts_dirty = False
        with self.lock:
            workers = list(self.workers.values())
        if not workers:
            return
        records = self.dns_records()
        for w in workers:
            try:
                w.refresh_hosts(records)
            except OSError as e:
                self.log("kubelet %s: hosts file: %s" % (self.node_name, e))

    # ---- node ----

    def host_ip(self):
        if self._host_ip is None:
            ip = "127.0.0.1"
            try:
                node = self.store.get(NODES, "", self.node_name)
                for a in _get(node, "status", "addresses", default=[]):
                    if a.get("type") == "InternalIP" and a.get("address"):
                        ip = a["address"]
                        break
            except ApiError:
                pass
            self._host_ip = ip
        return self._host_ip

    def _heartbeat(self):
        """The node Lease renewed every lease_duration/4 (kubelet's nodelease controller), and
        the Ready condition posted again when someone else changed it (the node lifecycle
        controller's Unknown while this kubelet was slow)."""
        while not self.stopping.is_set():
            try:
                self._renew_lease()
                node = self.store.get(NODES, "", self.node_name)
                ready = [c for c in (node.get("status") or {}).get("conditions") or []
                         if c.get("type") == "Ready"]
                if ready and ready[0].get("status") != "True":
                    self._set_node_ready(True)
            except ApiError:
                pass                # no Node (yet): the lease waits for it
            except Exception:  # noqa: BLE001
                self.log("kubelet %s: heartbeat:\n%s" % (self.node_name,
                                                         traceback.format_exc()))
            self.stopping.wait(self.lease_duration / 4.0)

    def _renew_lease(self):
        t = time.time()
        renew = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % (
            int(t * 1e6) % 1000000)
        try:
            lease = self.store.get(LEASES, LEASE_NS, self.node_name)
        except ApiError as e:
            if e.code != 404:
                raise
            node = self.store.get(NODES, "", self.node_name)
            self.store.create(LEASES, LEASE_NS, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.node_name, "namespace": LEASE_NS, "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": self.node_name,
                    "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": self.node_name,
                         "leaseDurationSeconds": int(round(self.lease_duration)) or 1,
                         "renewTime": renew}})
            return
        lease["spec"].update(holderIdentity=self.node_name, renewTime=renew,
                             leaseDurationSeconds=int(round(self.lease_duration)) or 1)
        self.store.update(LEASES, LEASE_NS, self.node_name, lease)

    def _set_node_ready(self, ready):
        try:
            node = self.store.get(NODES, "", self.node_name)
        except ApiError:
            return
        st = node.setdefault("status", {})
        conds = [c for c in st.get("conditions") or [] if c.get("type") != "Ready"]
        now = now_rfc3339()
        if ready:
            c = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status"}
        else:
            c = {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                 "message": "Kubelet stopped posting node status."}
        c.update({"lastHeartbeatTime": now, "lastTransitionTime": now})
        st["conditions"] = conds + [c]
        if not st.get("addresses"):
            st["addresses"] = [{"type": "InternalIP", "address": "127.0.0.1"},
                               {"type": "Hostname", "address": self.node_name}]
        try:
            self.store.update(NODES, "", self.node_name, node, sub="status")
        except ApiError as e:
            self.log("kubelet %s: node status: %s" % (self.node_name, e))

    def event(self, pod, etype, reason, message):
        self.store.record_event(PODS, pod, etype, reason, message, COMPONENT)

    # ---- /etc/hosts ----

    def dns_records(self):
        """[(namespace, service, hostname, ip)] of every live pod of an existing Service that
        the pod names as its subdomain (what cluster DNS would serve for headless Services)."""
        # scan, not objects: a deepcopy of every pod (managedFields included) on each refresh
        # was the kubelets' largest CPU cost with 30 pods (bench/sandbox-profile.py).
        services = set(self.store.scan(SERVICES, lambda s: (s["metadata"]["namespace"],
                                                            s["metadata"]["name"])))

        def record(p):
            pip = _get(p, "status", "podIP")
            psub = _get(p, "spec", "subdomain")
            pns = p["metadata"]["namespace"]
            if pip and psub and (pns, psub) in services and \
                    not p["metadata"].get("deletionTimestamp"):
                return (pns, psub, _get(p, "spec", "hostname") or p["metadata"]["name"], pip)
            return None
        return sorted(r for r in self.store.scan(PODS, record) if r is not None)

    def hosts_text(self, pod, ip, records=None):
        md = pod["metadata"]
        ns = md["namespace"]
        lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
                 "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
                 "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
        hostname = _get(pod, "spec", "hostname") or md["name"]
        sub = _get(pod, "spec", "subdomain")
        if sub:
            lines.append("%s\t%s.%s.%s.svc.%s\t%s" % (ip, hostname, sub, ns, CLUSTER_DOMAIN,
                                                     hostname))
        else:
            lines.append("%s\t%s" % (ip, hostname))
        # The sandbox has no cluster DNS: the headless Services' records are listed here,
        # short names as the pod's search path (<ns>.svc.cluster.local) would resolve them.
        if records is None:
            records = self.dns_records()
        extra = []
        for rns, rsub, h, rip in records:
            names = ["%s.%s.%s.svc.%s" % (h, rsub, rns, CLUSTER_DOMAIN),
                     "%s.%s.%s.svc" % (h, rsub, rns), "%s.%s.%s" % (h, rsub, rns)]
            if rns == ns:
                names.append("%s.%s" % (h, rsub))
            extra.append("%s\t%s" % (rip, " ".join(names)))
        for rns, rsub, _h, rip in records:
            names = ["%s.%s.svc.%s" % (rsub, rns, CLUSTER_DOMAIN), "%s.%s.svc" % (rsub, rns)]
            if rns == ns:
                names.append(rsub)
            extra.append("%s\t%s" % (rip, " ".join(names)))
        if extra:
            lines.append("# Headless Service records (the sandbox has no cluster DNS).")
            lines += sorted(extra, key=lambda s: s.split("\t")[1])
        return "\n".join(lines) + "\n"

    # ---- CSI ----

    def _connect(self, endpoint):
        old = self.channel
        self.channel = grpc.insecure_channel(endpoint, options=[
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.enable_retries", 0)])
        self.csi = csi_client.CsiClient(self.channel, self.pb, timeout=CSI_TIMEOUT)
        self.driver = None
        if old is not None:
            old.close()

    def _plugin(self, driver=None):
        if self.csi is None:    # not (yet) registered: mount and unmount retry with back-off
            raise _Failed("kubernetes.io/csi: failed to get CSI client: driver name %s not "
                          "found in the list of registered CSI drivers" % (driver or "(any)"))
        if self.driver is None:
            info = self.csi.GetPluginInfo(wait_for_ready=True)
            caps = self.csi.NodeGetCapabilities(wait_for_ready=True)
            rpc = self.pb.NodeServiceCapability.RPC
            self.stage_unstage = any(c.rpc.type == rpc.STAGE_UNSTAGE_VOLUME
                                     for c in caps.capabilities)
            self.driver = info.name
        return self.driver

    def _vlock(self, handle):
        with self.lock:
            return self.volume_locks.setdefault(handle, threading.Lock())

    def _capability(self, pv):
        pb = self.pb
        Mode = pb.VolumeCapability.AccessMode
        modes = _get(pv, "spec", "accessModes", default=["ReadWriteOnce"])
        mode = {"ReadWriteOnce": Mode.SINGLE_NODE_WRITER,
                "ReadOnlyMany": Mode.MULTI_NODE_READER_ONLY,
                "ReadWriteMany": Mode.MULTI_NODE_MULTI_WRITER,
                "ReadWriteOncePod": Mode.SINGLE_NODE_WRITER}.get(modes[0] if modes else "",
                                                                 Mode.SINGLE_NODE_WRITER)
        if _get(pv, "spec", "volumeMode", default="Filesystem") == "Block":
            raise RuntimeError("block volumes (volumeMode: Block) are not supported by the "
                               "sandbox kubelet")
        return csi_client.mount_cap(pb, mode, flags=_get(pv, "spec", "mountOptions",
                                                         default=[]),
                                    fs_type=_get(pv, "spec", "csi", "fsType", default=""))

    def _secrets(self, ref):
        if not ref:
            return {}
        try:
            s = self.store.get(SECRETS, ref.get("namespace") or "", ref.get("name") or "")
        except ApiError as e:
            raise RuntimeError("fetching secret: %s" % e)
        return {k: base64.b64decode(v).decode(errors="replace")
                for k, v in (s.get("data") or {}).items()}

    def mount_csi(self, pod, pv, pod_readonly):
        """MountDevice (NodeStageVolume) then SetUp (NodePublishVolume); returns the target."""
        csi = pv["spec"]["csi"]
        driver, handle = csi.get("driver", ""), csi.get("volumeHandle", "")
        pv_name = pv["metadata"]["name"]
        if self._plugin(driver) != driver:
            raise RuntimeError("kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: "
                               "driver name %s not found in the list of registered CSI "
                               "drivers" % driver)
        cap = self._capability(pv)
        attrs = dict(csi.get("volumeAttributes") or {})
        uid = pod["metadata"]["uid"]
        staging = staging_path(self.node_dir, driver, handle)
        target = target_path(self.node_dir, uid, pv_name)
        with self._vlock(handle):
            # The pod's vol_data.json first: it is what says "this pod uses the volume" to an
            # unstage running later (also after a restart of the kubelet).
            os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
            _write_json(os.path.join(os.path.dirname(target), "vol_data.json"), {
                "specVolID": pv_name, "volumeHandle": handle, "driverName": driver,
                "nodeName": self.node_name, "volumeLifecycleMode": "Persistent",
                "stagingPath": staging if self.stage_unstage else ""})
            if self.stage_unstage:
                os.makedirs(staging, mode=0o750, exist_ok=True)
                _write_json(os.path.join(os.path.dirname(staging), "vol_data.json"),
                            {"driverName": driver, "volumeHandle": handle})
                self.log("kubelet %s: NodeStageVolume %s staging=%s" % (self.node_name, handle,
                                                                        staging))
                try:
                    self.csi.NodeStageVolume(
                        volume_id=handle, staging_target_path=staging, volume_capability=cap,
                        secrets=self._secrets(csi.get("nodeStageSecretRef")),
                        volume_context=attrs, wait_for_ready=True)
                except grpc.RpcError as e:
                    raise _Failed("MountVolume.MountDevice failed for volume \"%s\" : %s"
                                  % (pv_name, _rpc_text(e)))
            ctx = dict(attrs)
            if self._pod_info_on_mount(driver):
                ctx.update({"csi.storage.k8s.io/pod.name": pod["metadata"]["name"],
                            "csi.storage.k8s.io/pod.namespace": pod["metadata"]["namespace"],
                            "csi.storage.k8s.io/pod.uid": uid,
                            "csi.storage.k8s.io/serviceAccount.name":
                                _get(pod, "spec", "serviceAccountName", default="default"),
                            "csi.storage.k8s.io/ephemeral": "false"})
            self.log("kubelet %s: NodePublishVolume %s target=%s volume_context=%s"
                     % (self.node_name, handle, target, json.dumps(ctx, sort_keys=True)))
            try:
                self.csi.NodePublishVolume(
                    volume_id=handle, staging_target_path=staging if self.stage_unstage else "",
                    target_path=target, volume_capability=cap,
                    readonly=bool(csi.get("readOnly") or pod_readonly),
                    secrets=self._secrets(csi.get("nodePublishSecretRef")),
                    volume_context=ctx, wait_for_ready=True)
            except grpc.RpcError as e:
                raise _Failed("MountVolume.SetUp failed for volume \"%s\" : %s"
                              % (pv_name, _rpc_text(e)))
        return target

    def _pod_info_on_mount(self, driver):
        try:
            d = self.store.get(CSIDRIVERS, "", driver)
        except ApiError:
            return False
        return bool(_get(d, "spec", "podInfoOnMount"))

    def unmount_pod(self, uid):
        """TearDown (NodeUnpublishVolume) of each CSI volume the pod's directory records, then
        UnmountDevice (NodeUnstageVolume) of those no other pod of the node uses; then the
        pod's directory goes."""
        pdir = pod_dir(self.node_dir, uid)
        csi_dir = os.path.join(pdir, "volumes/kubernetes.io~csi")
        for pv in sorted(os.listdir(csi_dir)) if os.path.isdir(csi_dir) else []:
            data = _read_json(os.path.join(csi_dir, pv, "vol_data.json"))
            if not data:
                shutil.rmtree(os.path.join(csi_dir, pv), ignore_errors=True)
                continue
            handle, driver = data.get("volumeHandle", ""), data.get("driverName", "")
            target = os.path.join(csi_dir, pv, "mount")
            with self._vlock(handle):
                self._plugin(driver)
                self.log("kubelet %s: NodeUnpublishVolume %s target=%s" % (self.node_name,
                                                                           handle, target))
                try:
                    self.csi.NodeUnpublishVolume(volume_id=handle, target_path=target,
                                                 wait_for_ready=True)
                except grpc.RpcError as e:
                    raise _Failed("UnmountVolume.TearDown failed for volume \"%s\" : %s"
                                  % (pv, _rpc_text(e)))
                if os.path.isdir(target) and not os.path.ismount(target):
                    os.rmdir(target)
                os.unlink(os.path.join(csi_dir, pv, "vol_data.json"))
                os.rmdir(os.path.join(csi_dir, pv))
                staging = data.get("stagingPath") or staging_path(self.node_dir, driver, handle)
                if self.stage_unstage and not self._volume_in_use(handle):
                    self.log("kubelet %s: NodeUnstageVolume %s staging=%s"
                             % (self.node_name, handle, staging))
                    try:
                        self.csi.NodeUnstageVolume(volume_id=handle,
                                                   staging_target_path=staging,
                                                   wait_for_ready=True)
                    except grpc.RpcError as e:
                        raise _Failed("UnmountDevice failed for volume \"%s\" : %s"
                                      % (pv, _rpc_text(e)))
                    parent = os.path.dirname(staging)
                    if os.path.isdir(staging) and not os.path.ismount(staging):
                        os.rmdir(staging)
                    try:
                        os.unlink(os.path.join(parent, "vol_data.json"))
                        os.rmdir(parent)
                    except OSError:
                        pass
        for sub in ("volumes/kubernetes.io~csi", "volumes"):
            try:
                os.rmdir(os.path.join(pdir, sub))
            except OSError:
                pass
        if os.path.isdir(pdir):
            if any(m for m in _mounts_under(pdir)):
                raise OSError("pod directory %s still has mounts" % pdir)
            shutil.rmtree(pdir, ignore_errors=True)

    def _volume_in_use(self, handle):
        base = os.path.join(self.node_dir, "var/lib/kubelet/pods")
        for uid in os.listdir(base):
            d = os.path.join(base, uid, "volumes/kubernetes.io~csi")
            if not os.path.isdir(d):
                continue
            for pv in os.listdir(d):
                data = _read_json(os.path.join(d, pv, "vol_data.json"))
                if data and data.get("volumeHandle") == handle:
                    return True
        return False


class _Failed(OSError):
    """A CSI call failed: the message is kubelet's (operation, volume, rpc error)."""


def _mounts_under(path):
    path = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return out


class CsiHandler:
    """What kubelet's CSI plugin handler does with a registered plugin: the versions checked
    (a 1.x one), NodeGetInfo on the endpoint it names, then the driver installed on the node
    (its CSINode entry, the node-id annotation, the topology labels) and the endpoint used for
    every CSI call after; a plugin whose socket goes away is uninstalled again."""

    def __init__(self, kubelet):
        self.k = kubelet

    def host_path(self, endpoint):
        p = endpoint[len("unix://"):] if endpoint.startswith("unix://") else endpoint
        p = os.path.normpath(p)
        if p != KUBELET_ROOT and not p.startswith(KUBELET_ROOT + "/"):
            raise RuntimeError("endpoint %s is not under %s (the only node folder the sandbox "
                               "maps)" % (endpoint, KUBELET_ROOT))
        return pluginreg.dial_path(self.k.kubelet_root + p[len(KUBELET_ROOT):])

    def validate(self, name, endpoint, versions):
        if not name:
            raise RuntimeError("the plugin has no name")
        if not any(v.split(".")[0] in ("1", "v1") for v in versions):
            raise RuntimeError("none of the versions specified %s are supported. Supported "
                               "versions are [1.0.0]" % versions)

    def register(self, name, endpoint, versions):
        k = self.k
        path = self.host_path(endpoint)
        with grpc.insecure_channel("unix://" + path) as ch:
            try:
                info = csi_client.CsiClient(ch, k.pb).NodeGetInfo(timeout=10)
            except grpc.RpcError as e:
                raise RuntimeError("error updating CSI node info with driver %s: failed to get "
                                   "node info: %s" % (name, _rpc_text(e)))
        topo = dict(info.accessible_topology.segments)
        drv = {"name": name, "nodeID": info.node_id, "topologyKeys": sorted(topo)}
        if info.max_volumes_per_node:
            drv["allocatable"] = {"count": int(info.max_volumes_per_node)}
        self._node(lambda md: (md.setdefault("labels", {}).update(topo),
                               self._ann(md, lambda m: m.__setitem__(name, info.node_id))))
        self._csinode(lambda ds: [d for d in ds if d.get("name") != name] + [drv])
        k.registered[name] = endpoint
        k._connect("unix://" + path)
        k.log("kubelet %s: CSI driver %s registered (node id %s, endpoint %s)" % (
            k.node_name, name, info.node_id, endpoint))

    def deregister(self, name):
        k = self.k
        k.registered.pop(name, None)
        self._node(lambda md: self._ann(md, lambda m: m.pop(name, None)))
        self._csinode(lambda ds: [d for d in ds if d.get("name") != name])
        if not k.registered and k.channel is not None:
            k.channel.close()
            k.channel = k.csi = k.driver = None

    @staticmethod
    def _ann(md, change):
        ann = md.setdefault("annotations", {})
        try:
            m = json.loads(ann.get(NODE_ID_ANN) or "{}")
        except ValueError:
            m = {}
        change(m)
        if m:
            ann[NODE_ID_ANN] = json.dumps(m, separators=(",", ":"), sort_keys=True)
        else:
            ann.pop(NODE_ID_ANN, None)

    def _node(self, change):
        k = self.k
        for _ in range(5):
            n = k.store.get(NODES, "", k.node_name)
            change(n["metadata"])
            try:
                k.store.update(NODES, "", k.node_name, n)
                return
            except ApiError as e:
                if e.code != 409:
                    raise

    def _csinode(self, drivers):
        k = self.k
        for _ in range(5):
            try:
                cur = k.store.get(CSINODES, "", k.node_name)
            except ApiError as e:
                if e.code != 404:
                    raise
                node = k.store.get(NODES, "", k.node_name)
                try:
                    k.store.create(CSINODES, "", {
                        "apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                        "metadata": {"name": k.node_name, "ownerReferences": [{
                            "apiVersion": "v1", "kind": "Node", "name": k.node_name,
                            "uid": node["metadata"]["uid"]}]},
                        "spec": {"drivers": drivers([])}})
                    return
                except ApiError as e2:
                    if e2.code != 409:
                        raise
                    continue
            cur.setdefault("spec", {})["drivers"] = drivers(cur["spec"].get("drivers") or [])
            try:
                k.store.update(CSINODES, "", k.node_name, cur)
                return
            except ApiError as e:
                if e.code != 409:
                    raise


def parse_spec(text):
    """--kubelet node=NAME,dir=DIR[,csi=unix:///path][,logs=DIR][,backoff=S][,kubeletroot=D]
    [,lease=S] (the node Lease's duration, default 40 s, renewed every quarter of it);
    without csi the kubelet learns its CSI driver by plugin registration: the plugins_registry
    of the node's /var/lib/kubelet, which is D (default DIR/var/lib/kubelet)."""
    kv = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    missing = [k for k in ("node", "dir") if not kv.get(k)]
    if missing:
        raise ValueError("--kubelet %s: missing %s" % (text, ", ".join(missing)))
    return kv


def from_spec(store, text, log=None):
    kv = parse_spec(text)
    base = float(kv.get("backoff", 10))
    return Kubelet(store, kv["node"], kv.get("csi"), kv["dir"],
                   kv.get("logs") or os.path.join(kv["dir"], "logs"),
                   backoff=(base, max(base, 300.0 * base / 10.0)), log=log,
                   kubelet_root=kv.get("kubeletroot"),
                   lease_duration=float(kv.get("lease", LEASE_DURATION)))


class Kubelets:
    """The kubelets one process hosts (apiserver.py --kubelet SPEC ...), each stoppable and
    startable again: a node going away and coming back. Admin endpoint of apiserver.py:
    GET /_kubelet -> {"node-1": true, ...}; POST /_kubelet {"node": "node-1",
    "action": "stop"|"start"}."""

    def __init__(self, store, specs, log=None, runner=None):
        self.store = store
        self.log = log
        self.runner = runner
        self.specs = {parse_spec(s)["node"]: s for s in specs}
        self.running = {}
        self.lock = threading.Lock()

    def start(self, node=None):
        with self.lock:
            for n in [node] if node else sorted(self.specs):
                if n not in self.specs:
                    raise KeyError(n)
                if n not in self.running:
                    k = from_spec(self.store, self.specs[n], log=self.log)
                    k.runner = self.runner
                    k.start()
                    self.running[n] = k

    def stop(self, node=None):
        with self.lock:
            for n in [node] if node else sorted(self.running):
                k = self.running.pop(n, None)
                if k is not None:
                    k.stop()

    def state(self):
        with self.lock:
            return {n: n in self.running for n in sorted(self.specs)}

    def log_file(self, pod, container, previous):
        """The pods/log subresource: (path of the container's log file, container status).
        Errors as kube-apiserver and the kubelet answer them."""
        md = pod["metadata"]
        name = md["name"]
        names = [c["name"] for c in _get(pod, "spec", "containers", default=[])]
        if not container:
            if len(names) != 1:
                raise ApiError(400, "BadRequest", "a container name must be specified for pod "
                               "%s, choose one of: [%s]" % (name, " ".join(names)))
            container = names[0]
        if container not in names:
            raise ApiError(400, "BadRequest", "container %s is not valid for pod %s"
                           % (container, name))
        st = next((c for c in _get(pod, "status", "containerStatuses", default=[])
                   if c.get("name") == container), {})
        n = int(st.get("restartCount") or 0)
        w = _get(st, "state", "waiting")
        if previous:
            if not _get(st, "lastState", "terminated"):
                raise ApiError(400, "BadRequest", 'previous terminated container "%s" in pod '
                               '"%s" not found' % (container, name))
            # the latest run's file when waiting (back-off), else the run before it
            n = n if w else n - 1
        elif w and not _get(st, "lastState", "terminated"):
            raise ApiError(400, "BadRequest", 'container "%s" in pod "%s" is waiting to start: '
                           '%s' % (container, name, w.get("reason", "")))
        node = _get(pod, "spec", "nodeName")
        if node not in self.specs:
            raise ApiError(400, "BadRequest", 'pod "%s" is not running on a node of this '
                           'sandbox' % name)
        kv = parse_spec(self.specs[node])
        logs = kv.get("logs") or os.path.join(kv["dir"], "logs")
        path = os.path.join(os.path.abspath(logs), "%s_%s_%s" % (md["namespace"], name,
                                                                 md["uid"]),
                            container, "%d.log" % max(0, n))
        return path, container

    def exec_process(self, pod, container):
        """The running containers.Process that pods/exec enters, or the API's error."""
        md = pod["metadata"]
        names = [c["name"] for c in _get(pod, "spec", "containers", default=[])]
        if not container:
            container = names[0] if names else ""
        if container not in names:
            raise ApiError(400, "BadRequest", "container %s is not valid for pod %s"
                           % (container, md["name"]))
        with self.lock:
            k = self.running.get(_get(pod, "spec", "nodeName"))
        w = None
        if k is not None:
            with k.lock:
                w = k.workers.get(md["uid"])
        cs = w.containers.get(container) if w is not None else None
        if cs is None or not cs.running():
            raise ApiError(400, "BadRequest", 'unable to upgrade connection: container not '
                           'found ("%s")' % container)
        return cs.proc

    def admin(self, method, spec):
        if method == "POST":
            node, action = (spec or {}).get("node"), (spec or {}).get("action")
            if node not in self.specs or action not in ("start", "stop"):
                raise ApiError(400, "BadRequest", 'want {"node": one of %s, "action": '
                               '"start"|"stop"}' % sorted(self.specs))
            (self.start if action == "start" else self.stop)(node)
        return self.state()
