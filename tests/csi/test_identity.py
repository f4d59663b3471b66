"""Identity service: GetPluginInfo, GetPluginCapabilities, Probe (spec 2.1, csi-sanity 4.3)."""

import re

import grpc

from csi_client import DRIVER_NAME, create_req, expect_error

# csi-sanity's check (stricter than the spec: starts and ends with a letter)
SANITY_NAME_RE = re.compile(r"^[a-zA-Z][A-Za-z0-9-\.\_]{0,61}[a-zA-Z]$")


def plugin_caps(pb, resp):
    Svc = pb.PluginCapability.Service.Type
    Exp = pb.PluginCapability.VolumeExpansion.Type
    caps = set()
    for c in resp.capabilities:
        kind = c.WhichOneof("type")
        assert kind is not None, "capability with no type set: %r" % c
        if kind == "service":
            caps.add(("service", Svc.Name(c.service.type)))
        else:
            caps.add(("volume_expansion", Exp.Name(c.volume_expansion.type)))
    assert len(caps) == len(resp.capabilities), "duplicate capabilities: %r" % resp
    return caps


EXPECTED_PLUGIN_CAPS = {
    ("service", "CONTROLLER_SERVICE"),
    ("service", "VOLUME_ACCESSIBILITY_CONSTRAINTS"),
    ("volume_expansion", "ONLINE"),
}


def test_get_plugin_info(csi):
    resp = csi.GetPluginInfo()
    assert resp.name == DRIVER_NAME
    assert SANITY_NAME_RE.match(resp.name)
    assert resp.vendor_version != ""
    assert len(resp.vendor_version) <= 128


def test_get_plugin_info_driver_name_flag(daemon_factory):
    d = daemon_factory(extra_args=["--driver-name", "test.ordinal.example"])
    resp = d.csi.GetPluginInfo()
    assert resp.name == "test.ordinal.example"
    assert resp.vendor_version != ""


def test_get_plugin_capabilities(csi, pb):
    assert plugin_caps(pb, csi.GetPluginCapabilities()) == EXPECTED_PLUGIN_CAPS


def test_get_plugin_capabilities_same_in_controller_mode(daemon_factory, pb):
    # spec 2.1: every instance of one vendor_version reports the same set, node or controller
    d = daemon_factory(extra_args=["--mode", "controller"])
    assert plugin_caps(pb, d.csi.GetPluginCapabilities()) == EXPECTED_PLUGIN_CAPS
    node = daemon_factory(name="node")
    assert node.csi.GetPluginInfo().vendor_version == d.csi.GetPluginInfo().vendor_version


def test_probe_ready(csi):
    resp = csi.Probe()
    assert resp.HasField("ready")
    assert resp.ready.value is True


def test_probe_repeated(csi):
    for _ in range(20):
        assert csi.Probe().ready.value is True


def test_controller_mode_without_backend_advertises_nothing(daemon_factory, pb):
    # no --dir-root, no --lvm-vg: nothing to create, list or snapshot
    d = daemon_factory(extra_args=["--mode", "controller"], dir_backend=False)
    assert plugin_caps(pb, d.csi.GetPluginCapabilities()) == set()
    assert list(d.csi.ControllerGetCapabilities().capabilities) == []
    assert d.csi.Probe().ready.value is True
    # and what is not advertised gives a clear error, not a crash
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, d.csi.CreateVolume,
                       create_req(pb, "nowhere"))
    assert "backend" in err.details()
