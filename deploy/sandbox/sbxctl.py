"""Start, wait for and stop an `ordinal-sandbox` cluster from Python: the one helper that
tools/demo.py, bench/sandbox-bench.py and the tests under tests/sandbox/ share.

    s = sbxctl.up(directory, nodes=3, csi="build/debug/ordinal-csi")   # returns once ready
    s.kubectl("get", "pod")                 # real kubectl with DIR/kubeconfig
    sbxctl.wait_for(lambda: ..., timeout=30, what="web-0 Ready")
    sbxctl.down(directory)
    sbxctl.log_problems(directory)          # tracebacks or sanitizer reports in DIR/logs

Everything here goes through the sandbox's public surface (the CLI, DIR/ready, DIR/token,
DIR/kubeconfig), so it keeps working however the sandbox starts Ordinal.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SANDBOX = os.path.join(HERE, "ordinal-sandbox")
PYTHON = "/usr/bin/python3"
KUBECTL = os.environ.get("KUBECTL", "kubectl")
PROBLEMS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
            "Traceback (most recent call last)")


class SandboxError(Exception):
    pass


def cli(*args, check=True, timeout=120):
    """Run `ordinal-sandbox ARGS`; with check, a non-zero exit raises SandboxError with its
    output."""
    p = subprocess.run([PYTHON, SANDBOX] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise SandboxError("ordinal-sandbox %s: exit %d\n%s%s" % (
            " ".join(str(a) for a in args), p.returncode, p.stdout, p.stderr))
    return p


class Sandbox:
    """A running sandbox as a client sees it, from DIR alone."""

    def __init__(self, directory, up_output=""):
        self.dir = directory
        self.up_output = up_output
        with open(os.path.join(directory, "ready")) as f:
            self.ready = json.load(f)
        with open(os.path.join(directory, "token")) as f:
            self.token = f.read().strip()
        self.server = self.ready["server"]
        self.ca = os.path.join(directory, "pki", "ca.crt")
        self.kubeconfig = os.path.join(directory, "kubeconfig")
        self.kubectl_cache = os.path.join(directory, "kubectl-cache")

    def state(self):
        with open(os.path.join(self.dir, "state.json")) as f:
            return json.load(f)

    def node_root(self, node):
        """The node plugin's root: where its volumes' backing stores live."""
        return [n["root"] for n in self.state()["nodes"] if n["name"] == node][0]

    def kubectl(self, *args, check=True, input=None, timeout=60):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        p = subprocess.run([KUBECTL, "--cache-dir", self.kubectl_cache] + list(args), env=env,
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise SandboxError("kubectl %s: exit %d\n%s%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p


def up(directory, nodes=3, csi=None, timeout=120, node_grace=None):
    """`ordinal-sandbox up` (which returns once DIR/ready is written); the Sandbox.
    node_grace: its --node-monitor-grace-period (seconds; default 40)."""
    args = ["up", "--dir", directory, "--nodes", str(nodes)]
    if csi:
        args += ["--csi", os.path.abspath(csi)]
    if node_grace is not None:
        args += ["--node-monitor-grace-period", str(node_grace)]
    p = cli(*args, timeout=timeout)
    return Sandbox(directory, p.stdout)


def down(directory, check=False, timeout=120):
    return cli("down", "--dir", directory, check=check, timeout=timeout)


def log_problems(directory):
    """Sanitizer reports and Python tracebacks in the sandbox's own logs (containers' logs
    are in folders of their own and are not looked at)."""
    logs = os.path.join(directory, "logs")
    out = []
    if not os.path.isdir(logs):
        return out
    for f in sorted(os.listdir(logs)):
        p = os.path.join(logs, f)
        if not os.path.isfile(p):
            continue
        with open(p, errors="replace") as fh:
            text = fh.read()
        out += ["%s: %s" % (f, bad) for bad in PROBLEMS if bad in text]
    return out


def wait_for(cond, timeout=30.0, interval=0.1, what=None, progress=None):
    """Poll cond() until it returns something true, and return that. On timeout raise
    TimeoutError naming `what`. progress(elapsed) is called on every poll (the demo's
    progress line)."""
    t0 = time.monotonic()
    while True:
        v = cond()
        if v:
            return v
        el = time.monotonic() - t0
        if el > timeout:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (
                timeout, what or getattr(cond, "__name__", "a condition")))
        if progress:
            progress(el)
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit("sbxctl is a module; the command is %s" % SANDBOX)
