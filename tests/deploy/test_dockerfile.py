"""deploy/Dockerfile against the code and the machine (the image build itself, tools/image.sh,
takes minutes and is a separate command): the build stage installs what tools/deps.sh says the
build needs, and the runtime stage installs the package of every shared library ordinal-csi
links (runtime packages, no -dev), plus the node tools, and nothing else."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import SOURCE

NODE_TOOLS = {"lvm2", "e2fsprogs", "xfsprogs", "util-linux", "mount"}


def _stages():
    text = open(os.path.join(SOURCE, "deploy", "Dockerfile")).read()
    text = text.replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    out = []
    for s in stages:
        pkgs = set()
        for m in re.finditer(r"apt-get install ([^&\n]*)", s):
            pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
        out.append((s.split("\n", 1)[0].strip(), pkgs, s))
    return out


def _deps_sh():
    text = open(os.path.join(SOURCE, "tools", "deps.sh")).read()
    m = re.search(r"pkgs=\(([^)]*)\)", text)
    return set(m.group(1).split())


def test_two_stages_on_bookworm():
    stages = _stages()
    assert [s[0] for s in stages] == ["debian:bookworm AS build", "debian:bookworm"]
    final = stages[1][2]
    assert "COPY --from=build" in final and "ENTRYPOINT [\"/usr/bin/ordinal-csi\"]" in final
    for label in ("org.opencontainers.image.version", "org.opencontainers.image.source"):
        assert label in final
    assert "cmake --preset release" in stages[0][2]


def test_build_stage_installs_the_build_deps():
    build = _stages()[0][1]
    assert build <= _deps_sh(), "not in tools/deps.sh: %s" % (build - _deps_sh())
    for dev in ("libgrpc-dev", "libprotobuf-c-dev", "libcurl4-openssl-dev", "libcjson-dev",
                "libyaml-dev", "cmake"):
        assert dev in build


def test_runtime_stage_holds_the_linked_libraries_and_node_tools(ordinal_csi):
    if shutil.which("readelf") is None or shutil.which("dpkg") is None:
        pytest.skip("readelf/dpkg missing")
    if os.environ.get("ORDINAL_SANITIZE"):
        pytest.skip("a sanitizer build links other libraries; the image is the release build")
    runtime = _stages()[1][1]
    assert not [p for p in runtime if p.endswith("-dev")]
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", ordinal_csi], capture_output=True,
                                       text=True, check=True).stdout)
    assert needed
    ldd = subprocess.run(["ldd", ordinal_csi], capture_output=True, text=True).stdout
    want = set()
    for lib in needed:
        if lib.startswith(("libc.so", "libm.so", "libpthread.so", "libdl.so")):
            continue  # glibc: in every Debian base
        m = re.search(r"^\s*%s => (\S+)" % re.escape(lib), ldd, re.M)
        assert m, "%s not resolved by ldd" % lib
        path = os.path.realpath(m.group(1))
        owner = None
        for cand in (path, path.replace("/usr/lib/", "/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":", 1)[0]
                break
        assert owner, "no package owns %s" % path
        want.add(owner)
    missing = want - runtime
    assert not missing, "runtime stage lacks %s" % sorted(missing)
    assert runtime == want | NODE_TOOLS, "runtime stage has extras: %s" % sorted(
        runtime - want - NODE_TOOLS)
