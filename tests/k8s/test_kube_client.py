"""The C Kubernetes client (kube/kube_*.c) against the fake API server.

Each test runs one scenario of tests/k8s/kube_probe.c on a fresh server: TLS with CA data and
token auth, CRUD and Status decoding, 409 retry, list paging and selectors, retries of 429/5xx
honouring Retry-After, the client-side rate limit, an informer through dropped streams, 410
relists and compaction, and Lease leader election handing over on release.

The probe binary is $ORDINAL_BUILD/kube_probe when the build made one; otherwise it is compiled
here from the build's static libraries (same sanitizer flags), or the tests skip.
"""

import os
import shutil
import subprocess

import pytest

SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("ORDINAL_BUILD") or os.path.join(SOURCE, "build", "debug")
SANITIZE = os.environ.get("ORDINAL_SANITIZE", "")


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    built = os.path.join(BUILD, "kube_probe")
    if os.access(built, os.X_OK):
        return built
    core = os.path.join(BUILD, "libordinal_kube.a")
    backends = os.path.join(BUILD, "libordinal_base.a")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not (os.path.exists(core) and os.path.exists(backends) and cc):
        pytest.skip("no kube_probe and no ordinal_kube library to build it from")
    out = str(tmp_path_factory.mktemp("probe") / "kube_probe")
    flags = ["-std=c11", "-D_GNU_SOURCE", "-g", "-Wall", "-Wextra", "-Werror"]
    if SANITIZE == "address":
        flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    elif SANITIZE == "thread":
        flags += ["-fsanitize=thread"]
    cmd = [cc] + flags + ["-I" + os.path.join(SOURCE, "kube"),
                          "-I" + os.path.join(SOURCE, "base"),
                          os.path.join(SOURCE, "tests", "k8s", "kube_probe.c"), core, backends,
                          "-lcurl", "-lcjson", "-lyaml", "-lpthread", "-o", out]
    subprocess.run(cmd, check=True)
    return out


SCENARIOS = {"crud": 30, "conflict": 30, "trimmed": 30, "paging": 30, "retry": 60, "ratelimit": 30,
             "informer": 60, "leader": 90}


@pytest.mark.apiserver_args("--no-controllers")
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kube_client(apiserver, probe, scenario):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    p = subprocess.run([probe, apiserver.kubeconfig, scenario], env=env, capture_output=True,
                       text=True, timeout=SCENARIOS[scenario])
    assert p.returncode == 0, "kube_probe %s failed (%d):\n%s%s" % (
        scenario, p.returncode, p.stdout, p.stderr)
    assert p.stdout.strip() == "ok " + scenario
    # never log a token
    assert apiserver.token not in p.stderr + p.stdout
