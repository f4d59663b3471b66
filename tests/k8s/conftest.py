"""Fixtures for Kubernetes-facing tests: the fake API server of deploy/sandbox/.

    def test_x(apiserver):                       # a fresh server per test (about 0.2 s)
        c = apiserver.client                     # JSON client (urllib-free http.client + CA)
        c.create("persistentvolumeclaims", pvc)  # typed helpers: get/list/create/update/...
        apiserver.kubeconfig                     # for the C daemon or kubectl
        apiserver.url, apiserver.token, apiserver.ca_file
        apiserver.fault(error_rate=50, error_code=429)   # run-time fault injection
        apiserver.kubectl("get", "pvc")          # real kubectl, private discovery cache

    @pytest.mark.apiserver_args("--no-controllers")      # extra command-line options
    def test_y(apiserver): ...

    def test_z(apiserver_factory):               # several servers, or custom options
        a = apiserver_factory("--watch-window", "5")

Teardown sends SIGTERM and asserts a clean exit (status 0).

Environment: ORDINAL_SOURCE (repo root, default two levels up), KUBECTL (default `kubectl`).
"""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakeapi import FakeApiServer  # noqa: E402

HAVE_KUBECTL = shutil.which(os.environ.get("KUBECTL", "kubectl")) is not None
needs_kubectl = pytest.mark.skipif(not HAVE_KUBECTL, reason="kubectl not installed")


def pytest_configure(config):
    config.addinivalue_line("markers", "apiserver_args(*args): extra apiserver.py options")


@pytest.fixture
def apiserver_factory(tmp_path):
    started = []

    def start(*args):
        d = os.path.join(str(tmp_path), "apiserver%d" % len(started))
        srv = FakeApiServer.start(d, extra_args=args)
        started.append(srv)
        return srv

    yield start
    failures = []
    for srv in started:
        rc = srv.stop()
        if rc != 0:
            failures.append("%s: exit status %r" % (srv.dir, rc))
    assert not failures, "apiserver did not exit cleanly on SIGTERM: %s" % failures


@pytest.fixture
def apiserver(apiserver_factory, request):
    marker = request.node.get_closest_marker("apiserver_args")
    return apiserver_factory(*(marker.args if marker else ()))
