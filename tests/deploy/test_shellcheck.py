"""shellcheck (Debian's) on every shell script of the repository: *.sh and files whose first
line names sh or bash, as git tracks them."""

import os
import shutil
import subprocess

import pytest

from conftest import SOURCE

def scripts():
    out = subprocess.run(["git", "-C", SOURCE, "ls-files", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    found = []
    for f in out.stdout.split():
        p = os.path.join(SOURCE, f)
        if not os.path.isfile(p):
            continue
        if f.endswith(".sh"):
            found.append(f)
            continue
        with open(p, "rb") as fh:
            first = fh.readline(100)
        if first.startswith(b"#!") and (b"bash" in first or first.split()[0].endswith(b"/sh")):
            found.append(f)
    return sorted(found)


SCRIPTS = scripts() if shutil.which("git") else []


def test_scripts_found():
    assert {"tools/test.sh", "tools/image.sh", "deploy/kind/up.sh", "deploy/kind/down.sh"} \
        <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck_clean(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (tools/deps.sh)")
    out = subprocess.run(["shellcheck", "-x", os.path.join(SOURCE, script)],
                         capture_output=True, text=True, cwd=SOURCE)
    assert out.returncode == 0, out.stdout + out.stderr
