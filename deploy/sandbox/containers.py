"""The sandbox's container runtime: a pod container is a real process in a bubblewrap sandbox.

What a container gets (the part of a container image and of a CRI runtime the sandbox can
give without pulling images):

* its own PID namespace (the command is PID 1, so like in a real container a shell that
  installs no SIGTERM handler ignores SIGTERM and is SIGKILLed at the end of the grace period),
  its own UTS namespace (hostname = the pod's hostname) and IPC namespace;
* the host's userland, read-only; private /dev, /proc and /tmp;
* each volumeMount bind-mounted at its mountPath (read-only when asked, subPath honoured);
  a mountPath that does not exist on the host (/usr/share/nginx/html) is made on a read-only
  tmpfs that mirrors its nearest existing parent, so the host is never written;
* the pod's /etc/hosts; the environment of the pod spec only (--clearenv first);
* stdout and stderr appended to one log file per container start.

The network namespace is the host's: every pod has its own loopback address (127.x.y.z) and
binds its servers there.

Run as a script it is the stand-in for images the sandbox cannot pull:
    containers.py web --bind IP --port 80 --root /usr/share/nginx/html    (an nginx image)
    containers.py sleep                                                    (anything else)
Both exit 0 on SIGTERM, as nginx and a well-behaved image do.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time

BWRAP = "/usr/bin/bwrap"
NSENTER = "/usr/bin/nsenter"
PYTHON = "/usr/bin/python3"
SELF = os.path.abspath(__file__)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Mounted by bwrap itself or never mirrored from the host.
_SPECIAL_TOP = ("proc", "dev", "tmp")


class ContainerError(Exception):
    """The container could not be started (RunContainerError)."""


def _is_dir(p):
    return os.path.isdir(p) and not os.path.islink(p)


def _nearest_existing(path):
    """The deepest ancestor of path (or path) that is a real directory on the host."""
    cur = path
    while cur != "/" and not _is_dir(cur):
        cur = os.path.dirname(cur)
    return cur


def root_layout(paths):
    """bwrap arguments for the read-only host root such that every path in `paths` (absolute,
    normalised) can be created as a mount point. Returns (args_before, args_after): the first
    build the tree, the second (after the binds) make the mirrors read-only again."""
    mirrors = set()
    for p in paths:
        if os.path.lexists(p):
            continue
        mirrors.add(_nearest_existing(os.path.dirname(p)))
    before, after = [], []
    if "/" in mirrors:
        before += ["--tmpfs", "/"]
    else:
        before += ["--ro-bind", "/", "/"]
    for m in sorted(mirrors, key=lambda d: (d.count("/"), d)):
        if m != "/":
            before += ["--tmpfs", m]
        try:
            entries = sorted(os.listdir(m))
        except OSError:
            entries = []
        for e in entries:
            if m == "/" and e in _SPECIAL_TOP:
                continue
            src = os.path.join(m, e)
            if os.path.islink(src):
                before += ["--symlink", os.readlink(src), src]
            else:
                before += ["--ro-bind-try", src, src]
        after += ["--remount-ro", m]
    return before, after


class Spec:
    """Everything needed to start one container."""

    def __init__(self, name, argv, env, hostname, mounts, hosts_file, working_dir, log_path):
        self.name = name
        self.argv = list(argv)           # resolved command + args
        self.env = dict(env)             # final environment
        self.hostname = hostname
        self.mounts = list(mounts)       # [(host source, container path, read_only)]
        self.hosts_file = hosts_file
        self.working_dir = working_dir or "/"
        self.log_path = log_path

    def bwrap_argv(self, info_fd):
        paths = [os.path.normpath(dst) for _src, dst, _ro in self.mounts]
        if self.working_dir != "/":
            paths.append(os.path.normpath(self.working_dir))
        before, after = root_layout(paths)
        a = [BWRAP, "--die-with-parent", "--unshare-pid", "--unshare-uts", "--unshare-ipc",
             "--as-pid-1", "--hostname", self.hostname, "--info-fd", str(info_fd),
             "--new-session", "--clearenv"]
        for k, v in sorted(self.env.items()):
            a += ["--setenv", k, v]
        a += before
        a += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        # The stand-in images run this file: keep its folder visible even when the checkout
        # lives under /tmp, which the private /tmp above hides (read-only, like the host).
        a += ["--ro-bind", os.path.dirname(SELF), os.path.dirname(SELF)]
        if self.hosts_file:
            a += ["--ro-bind", self.hosts_file, "/etc/hosts"]
        for src, dst, ro in self.mounts:
            a += ["--ro-bind" if ro else "--bind", src, os.path.normpath(dst)]
        if self.working_dir != "/":
            a += ["--dir", os.path.normpath(self.working_dir)]
        a += after
        a += ["--chdir", self.working_dir, "--"] + self.argv
        return a


class Process:
    """One start of a container. exit_code is set by a waiter thread, which then calls
    on_exit() (so the pod worker wakes up without polling)."""

    def __init__(self, spec, on_exit):
        self.spec = spec
        self.on_exit = on_exit
        self.proc = None
        self.pid = None          # the container's PID 1 as seen from the host
        self.started_at = None   # time.time()
        self.finished_at = None
        self.exit_code = None
        self.signalled = None    # the signal we sent last (for the terminated reason)
        self._done = threading.Event()
        self._execd = threading.Event()   # the command runs (bwrap has set up and exec'd)

    def start(self):
        os.makedirs(os.path.dirname(self.spec.log_path), exist_ok=True)
        r, w = os.pipe()
        try:
            argv = self.spec.bwrap_argv(w)
            with open(self.spec.log_path, "ab") as log:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=log, pass_fds=(w,), close_fds=True)
        except OSError as e:
            os.close(r)
            os.close(w)
            raise ContainerError("cannot start bwrap: %s" % e)
        os.close(w)
        info = b""
        with os.fdopen(r, "rb") as f:
            info = f.read()   # bwrap closes the fd once the sandbox is set up, or on failure
        self.started_at = time.time()
        try:
            self.pid = int(json.loads(info)["child-pid"])
        except (ValueError, KeyError, TypeError):
            rc = self.proc.wait()
            self._finish(rc)
            raise ContainerError("the sandbox did not start (bwrap exit %d): %s"
                                 % (rc, self.log_tail().strip()[-500:]))
        threading.Thread(target=self._wait, name="wait-%s" % self.spec.name,
                         daemon=True).start()
        self._wait_exec()

    def _wait_exec(self, timeout=10.0):
        """bwrap reports the child's pid as soon as it is cloned, before the child has made
        its mounts and exec'd the command: until then an exec (nsenter into its namespaces)
        finds an empty root. The container counts as started once its PID 1 is no longer
        bwrap (the kernel has no event for an execve, so this polls /proc briefly)."""
        bwrap = os.path.realpath(BWRAP)
        deadline = time.monotonic() + timeout
        try:
            while not self._done.is_set() and time.monotonic() < deadline:
                try:
                    if os.readlink("/proc/%d/exe" % self.pid) != bwrap:
                        return
                except OSError:
                    return      # gone: the waiter thread reports the exit
                time.sleep(0.005)
        finally:
            self._execd.set()

    def _wait(self):
        self._finish(self.proc.wait())
        try:
            self.on_exit()
        except Exception:  # noqa: BLE001 - the callback only wakes a worker
            pass

    def _finish(self, rc):
        # bwrap reports a child killed by signal N as 128+N, as a container runtime does.
        self.exit_code = rc if rc >= 0 else 128 - rc
        self.finished_at = time.time()
        self._done.set()
        self._execd.set()

    def running(self):
        return self.proc is not None and not self._done.is_set()

    def wait(self, timeout):
        return self._done.wait(timeout)

    def kill(self, sig):
        """Signal the container's PID 1 (its own namespace rules apply: PID 1 without a
        handler ignores SIGTERM); SIGKILL goes to bwrap too so nothing is left behind."""
        if not self.running():
            return
        self.signalled = sig
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    def stop(self, grace):
        """SIGTERM, then SIGKILL after `grace` seconds; returns once it has exited."""
        if not self.running():
            return
        self.kill(signal.SIGTERM)
        if not self.wait(max(0.0, grace)):
            self.kill(signal.SIGKILL)
            self.wait(10)

    def exec(self, argv, timeout, env=None):
        """Run argv inside the container's namespaces (mount, UTS, IPC, PID; its root and
        working directory). Returns (exit code, output); exit code None on timeout."""
        # An exec that comes while start() is still waiting for bwrap to exec the command
        # (another thread may have reported the container started already) waits for it.
        self._execd.wait(10)
        if not self.running():
            return 126, "container is not running"
        a = [NSENTER, "-t", str(self.pid), "-m", "-u", "-i", "-p", "-r", "-w", "--"] + list(argv)
        try:
            p = subprocess.run(a, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=timeout,
                               env=env if env is not None else self.spec.env)
        except subprocess.TimeoutExpired as e:
            out = e.output or b""
            return None, out.decode(errors="replace")
        except OSError as e:
            return 126, str(e)
        return p.returncode, p.stdout.decode(errors="replace")

    def log_tail(self, n=4096):
        try:
            with open(self.spec.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""


def web_argv(bind, port=80, root="/usr/share/nginx/html"):
    return [PYTHON, SELF, "web", "--bind", bind, "--port", str(port), "--root", root]


def sleep_argv():
    return [PYTHON, SELF, "sleep"]


# ---- the stand-in images ----

def _serve(bind, port, root):
    import functools
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        server_version = "nginx"
        sys_version = ""

        def log_message(self, fmt, *args):
            sys.stdout.write('%s - - [%s] %s\n' % (self.client_address[0],
                                                   self.log_date_time_string(), fmt % args))
            sys.stdout.flush()

    srv = http.server.ThreadingHTTPServer((bind, port),
                                          functools.partial(Handler, directory=root))

    def on_term(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print("serving %s on http://%s:%d/" % (root, bind, port), flush=True)
    srv.serve_forever(poll_interval=0.5)
    srv.server_close()
    print("exiting on SIGTERM", flush=True)


def main(argv):
    import argparse
    p = argparse.ArgumentParser(prog="containers.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("web", help="a static web server (stand-in for an nginx image)")
    w.add_argument("--bind", required=True)
    w.add_argument("--port", type=int, default=80)
    w.add_argument("--root", default="/usr/share/nginx/html")
    sub.add_parser("sleep", help="sleep until SIGTERM (an image without a command)")
    args = p.parse_args(argv)
    if args.cmd == "web":
        try:
            _serve(args.bind, args.port, args.root)
        except OSError as e:
            print("cannot serve on %s:%d: %s" % (args.bind, args.port, e), flush=True)
            return 1 if e.errno != errno.EACCES else 126
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    while not stop.wait(3600):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
