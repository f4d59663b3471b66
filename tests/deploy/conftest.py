"""Fixtures of the deploy suite: the kustomize overlays of deploy/kubernetes rendered by real
`kubectl kustomize`, the built ordinal-csi (ORDINAL_CSI), and the fake API server of
deploy/sandbox (started through tests/k8s/fakeapi.py)."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "k8s"))
sys.path.insert(0, os.path.join(SOURCE, "deploy", "sandbox"))

from fakeapi import FakeApiServer  # noqa: E402

KUBECTL = os.environ.get("KUBECTL", "kubectl")
MANIFESTS = os.path.join(SOURCE, "deploy", "kubernetes")
OVERLAYS = ["dir", "lvm", "kind", "kind-lvm"]
NAMESPACE = "ordinal-system"

_rendered = {}


def render(overlay):
    """The objects of one overlay, as `kubectl kustomize` renders them (cached per run)."""
    if overlay not in _rendered:
        if shutil.which(KUBECTL) is None:
            pytest.skip("kubectl not installed")
        out = subprocess.run([KUBECTL, "kustomize", os.path.join(MANIFESTS, "overlays", overlay)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, "kubectl kustomize %s: %s" % (overlay, out.stderr)
        _rendered[overlay] = (out.stdout, [o for o in yaml.safe_load_all(out.stdout) if o])
    return _rendered[overlay]


def objects(overlay, kind=None):
    return [o for o in render(overlay)[1] if kind is None or o["kind"] == kind]


def one(overlay, kind, name):
    found = [o for o in objects(overlay, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, "%s %s in overlay %s: %d found" % (kind, name, overlay, len(found))
    return found[0]


def ordinal_containers(overlay):
    """(workload, container) for every container that runs ordinal-csi."""
    out = []
    for o in objects(overlay):
        if o["kind"] not in ("DaemonSet", "Deployment"):
            continue
        for c in o["spec"]["template"]["spec"]["containers"]:
            if c["image"].split("/")[-1].split(":")[0] == "ordinal-csi":
                out.append((o, c))
    return out


@pytest.fixture
def ordinal_csi():
    path = os.environ.get("ORDINAL_CSI")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("ORDINAL_CSI not set to the built binary")
    return path


@pytest.fixture
def apiserver(tmp_path):
    srv = FakeApiServer.start(str(tmp_path / "apiserver"), extra_args=["--no-controllers"])
    yield srv
    assert srv.stop() == 0
