"""The LVM overlays against real lvm2: their lvm.conf is valid for this lvm2 (every setting
known, `lvmconfig --validate`) and says what a udev-less container needs; the node plugin's
flags, as rendered, start the daemon on a real (loop-file) volume group."""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import SOURCE, objects, ordinal_containers
from test_manifests import _container_argv, _free_port, _get

LVM_OVERLAYS = ["lvm", "kind-lvm"]


def _lvm_conf(overlay):
    (cm,) = [o for o in objects(overlay, "ConfigMap") if "lvm.conf" in o.get("data", {})]
    return cm["data"]["lvm.conf"]


def _lvmconfig(conf_dir, *args):
    env = dict(os.environ, LVM_SYSTEM_DIR=conf_dir, LC_ALL="C", LVM_SUPPRESS_FD_WARNINGS="1")
    return subprocess.run(["lvmconfig"] + list(args), env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def have_lvm():
    if shutil.which("lvmconfig", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        pytest.skip("lvm2 not installed")


@pytest.mark.parametrize("overlay", LVM_OVERLAYS)
def test_lvm_conf_is_valid_for_lvm2(overlay, have_lvm, tmp_path):
    (tmp_path / "lvm.conf").write_text(_lvm_conf(overlay))
    r = _lvmconfig(str(tmp_path), "--validate")
    assert r.returncode == 0 and "unknown" not in r.stderr, r.stdout + r.stderr
    want = {"activation/udev_sync": "0", "activation/udev_rules": "0",
            "devices/obtain_device_list_from_udev": "0", "devices/use_devicesfile": "0",
            "backup/backup": "0", "backup/archive": "0"}
    r = _lvmconfig(str(tmp_path), *want)
    assert r.returncode == 0, r.stderr
    got = dict(line.split("=", 1) for line in r.stdout.split())
    assert {k.split("/")[1]: v for k, v in want.items()} == got
    assert _lvmconfig(str(tmp_path), "devices/filter").stdout.startswith("filter=")


def _volume_group_class():
    """tests/lvm's loop-file VolumeGroup (activation off: this kernel has no device-mapper)."""
    spec = importlib.util.spec_from_file_location(
        "ordinal_lvm_fixtures", os.path.join(SOURCE, "tests", "lvm", "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except pytest.skip.Exception as e:
        pytest.skip(str(e))
    return mod.VolumeGroup


def test_node_plugin_runs_on_a_volume_group_with_the_lvm_flags(ordinal_csi, apiserver,
                                                                 tmp_path):
    """The lvm overlay's node container, flags as rendered, on a real volume group: the group's
    name goes in through ORDINAL_LVM_VG, as an administrator sets it; LVM_SYSTEM_DIR is the
    test's (activation off here), the rest is the manifest's."""
    vg = _volume_group_class()()
    try:
        ((w, c),) = [(w, c) for w, c in ordinal_containers("lvm") if w["kind"] == "DaemonSet"]
        env = [dict(e) for e in c["env"]]
        for e in env:
            if e["name"] == "ORDINAL_LVM_VG":
                e["value"] = vg.name
            if e["name"] == "LVM_SYSTEM_DIR":
                e["value"] = vg.conf_dir
        c = dict(c, env=env)
        port = _free_port()
        argv, expanded = _container_argv(ordinal_csi, c, str(tmp_path), port, apiserver.kubeconfig)
        assert "--lvm-vg=" + vg.name in argv
        penv = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LVM_SYSTEM_DIR": vg.conf_dir}
        log = open(tmp_path / "daemon.log", "w+")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=penv)
        try:
            deadline = time.monotonic() + 60
            status = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    status = _get(port, "/readyz")
                except OSError:
                    status = None
                if status and status[0] == 200:
                    break
                time.sleep(0.2)
            log.seek(0)
            assert status and status[0] == 200, "not ready (%r, exit %r):\n%s" % (
                status, proc.poll(), log.read())
            metrics = _get(port, "/metrics")[1]
            assert re.search(r'ordinal_volumes\{backend="lvm"', metrics), metrics
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    finally:
        vg.destroy()
