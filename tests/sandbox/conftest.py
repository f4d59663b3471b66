"""Fixtures for the sandbox cluster's tests: its controllers (deploy/sandbox/controllers.py and
one file per controller) in process, and the API server with them over HTTPS.

    def test_x(store):                 # an in-process Store (deploy/sandbox/store.py)
    def test_y(manager_factory):       # manager_factory(store, [controller objects or names])
    def test_z(cluster):               # apiserver.py --controllers all (no kubelets):
        cluster.client.create(...)     # tests play kubelet with cluster.run_pod(name)
        cluster.kubectl("get", "pod")

Environment: ORDINAL_SOURCE (repo root), KUBECTL.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "k8s"))
sys.path.insert(0, os.path.join(SOURCE, "deploy", "sandbox"))
sys.path.insert(0, HERE)

from fakeapi import KUBECTL, FakeApiServer  # noqa: E402
import sbxlib  # noqa: E402

# The same names as tests/k8s/conftest.py: in one pytest session over both folders, its tests'
# `from conftest import needs_kubectl` may find this module.
HAVE_KUBECTL = __import__("shutil").which(KUBECTL) is not None
needs_kubectl = pytest.mark.skipif(not HAVE_KUBECTL, reason="kubectl not installed")


@pytest.fixture
def store():
    import store as st
    return st.Store()


@pytest.fixture
def manager_factory():
    import controllers
    started = []

    def start(store, ctrls, **kw):
        objs = [controllers.factory(c)(store) if isinstance(c, str) else c for c in ctrls]
        m = controllers.Manager(store, objs, **kw)
        m.start()
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


@pytest.fixture
def cluster_factory(tmp_path):
    started = []

    def start(*args):
        d = os.path.join(str(tmp_path), "cluster%d" % len(started))
        srv = FakeApiServer.start(d, extra_args=("--controllers", "all") + args)
        started.append(srv)
        return sbxlib.Cluster(srv)

    yield start
    bad = [s.dir for s in started if s.stop() != 0]
    assert not bad, "apiserver did not exit cleanly: %s" % bad


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory()


@pytest.fixture(scope="module")
def sbx(tmp_path_factory):
    """One real sandbox (3 nodes, kubelets, ordinal-csi) for a whole test_e2e_* module."""
    import e2e
    s = e2e.module_sandbox(tmp_path_factory)
    yield s
    s.close()


@pytest.fixture
def ns(sbx, request):
    """A namespace of the test's own in the module's sandbox; its sets, pods and claims are
    deleted (and waited for) afterwards."""
    import re
    name = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().replace("test_", "", 1))
    # at most 63 characters, unique per test even where parameters make long ids
    tag = __import__("hashlib").sha1(request.node.nodeid.encode()).hexdigest()[:6]
    name = name.strip("-")[:48].strip("-") + "-" + tag
    sbx.namespace(name)
    yield name
    sbx.cleanup(name)
