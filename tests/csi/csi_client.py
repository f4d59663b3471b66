"""A small CSI v1 client for the conformance suite: python stubs from proto/csi.proto built with
protoc at run time, plain grpc.unary_unary calls (no grpc_tools), and request helpers.

Usage:
    pb = load_pb(source_dir)            # the csi_pb2 module
    csi = CsiClient(channel, pb)
    csi.CreateVolume(pb.CreateVolumeRequest(name="x", ...))
    csi.CreateVolume(name="x", ...)     # keyword form builds the request
    err = expect_error(grpc.StatusCode.NOT_FOUND, csi.ControllerGetVolume, volume_id="dir:_/x")
"""

import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import grpc

GiB = 1 << 30
MiB = 1 << 20

DRIVER_NAME = "ordinal.csi.dev"
TOPOLOGY_KEY = "topology.ordinal.csi.dev/node"
KEY_CONTEXT = "ordinal.csi.dev/key"
PVC_NS = "csi.storage.k8s.io/pvc/namespace"
PVC_NAME = "csi.storage.k8s.io/pvc/name"

RPC_TIMEOUT = 30.0

_pb = None


def load_pb(source_dir):
    """Compile <source_dir>/proto/csi.proto into a temporary directory once and import csi_pb2."""
    global _pb
    if _pb is not None:
        return _pb
    out = tempfile.mkdtemp(prefix="ordinal-csi-pb-")
    atexit.register(shutil.rmtree, out, True)
    proto_dir = os.path.join(source_dir, "proto")
    cmd = ["protoc", "--python_out=" + out, "-I", proto_dir, "-I", "/usr/include",
           os.path.join(proto_dir, "csi.proto")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("protoc failed (%s): %s" % (" ".join(cmd), res.stderr))
    sys.path.insert(0, out)
    _pb = importlib.import_module("csi_pb2")
    return _pb


class CsiClient:
    """Exposes every method of csi.v1.Identity, Controller and Node as an attribute.

    Each attribute takes either a request message or keyword arguments for one, plus an
    optional timeout=, and returns the response message (raises grpc.RpcError on non-OK)."""

    SERVICES = ("Identity", "Controller", "Node")

    def __init__(self, channel, pb, timeout=RPC_TIMEOUT):
        self.channel = channel
        self.pb = pb
        self.timeout = timeout
        self.methods = {}
        for sname in self.SERVICES:
            service = pb.DESCRIPTOR.services_by_name[sname]
            for m in service.methods:
                req_cls = getattr(pb, m.input_type.name)
                resp_cls = getattr(pb, m.output_type.name)
                path = "/csi.v1.%s/%s" % (sname, m.name)
                stub = channel.unary_unary(path,
                                           request_serializer=req_cls.SerializeToString,
                                           response_deserializer=resp_cls.FromString)
                self.methods[m.name] = (req_cls, stub, path)

    def __getattr__(self, name):
        methods = self.__dict__.get("methods", {})
        if name not in methods:
            raise AttributeError(name)
        req_cls, stub, _path = methods[name]

        def call(req=None, timeout=None, wait_for_ready=None, **kw):
            if req is None:
                req = req_cls(**kw)
            elif kw:
                raise TypeError("give a request or keywords, not both")
            return stub(req, timeout=timeout or self.timeout, wait_for_ready=wait_for_ready)

        call.__name__ = name
        return call

    def future(self, name, req, timeout=None):
        """Start a call without waiting: returns a grpc future."""
        _req_cls, stub, _path = self.methods[name]
        return stub.future(req, timeout=timeout or self.timeout)

    def raw(self, path, payload=b"", timeout=None):
        """Call any method path with raw request bytes; returns raw response bytes."""
        stub = self.channel.unary_unary(path, request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
        return stub(payload, timeout=timeout or self.timeout)


# ---- errors ----

def check_status_message(err):
    """A non-OK status must carry a human-readable message and no status details."""
    msg = err.details()
    assert msg, "status %s has an empty message" % err.code()
    assert msg.strip() == msg or msg.strip(), "message is only whitespace: %r" % msg
    assert all(c.isprintable() for c in msg), "message has unprintable characters: %r" % msg
    assert len(msg) <= 2048, "message is %d chars long" % len(msg)
    md = dict(err.trailing_metadata() or ())
    assert "grpc-status-details-bin" not in md, "status details must be empty (spec 1.1)"


def expect_error(code, fn, *args, **kw):
    """Call fn(*args, **kw) and assert it fails with exactly `code`; returns the RpcError."""
    try:
        resp = fn(*args, **kw)
    except grpc.RpcError as err:
        assert err.code() == code, "expected %s, got %s: %s" % (code, err.code(), err.details())
        check_status_message(err)
        return err
    raise AssertionError("expected %s, got OK: %r" % (code, resp))


def code_of(fn, *args, **kw):
    """Call fn(*args, **kw); return (StatusCode, response-or-error)."""
    try:
        resp = fn(*args, **kw)
        return grpc.StatusCode.OK, resp
    except grpc.RpcError as err:
        return err.code(), err


# ---- request helpers ----

def mount_cap(pb, mode=None, flags=(), fs_type=""):
    Mode = pb.VolumeCapability.AccessMode
    cap = pb.VolumeCapability(access_mode=Mode(mode=Mode.SINGLE_NODE_WRITER if mode is None
                                               else mode))
    cap.mount.fs_type = fs_type
    cap.mount.mount_flags.extend(flags)
    cap.mount.SetInParent()
    return cap


def block_cap(pb, mode=None):
    Mode = pb.VolumeCapability.AccessMode
    cap = pb.VolumeCapability(access_mode=Mode(mode=Mode.SINGLE_NODE_WRITER if mode is None
                                               else mode))
    cap.block.SetInParent()
    return cap


# Parameters every create_req adds unless the request names the directory backend or sets them
# itself (the suite against an LVM thin class sets {"thinPool": POOL}: tests/csi/conftest.py).
CLASS_PARAMS = {}


def create_req(pb, name, required=None, limit=None, params=None, caps=None, source=None,
               requisite=None, preferred=None):
    """A CreateVolumeRequest. source: ("snapshot"|"volume", id)."""
    req = pb.CreateVolumeRequest(name=name)
    if CLASS_PARAMS and (params or {}).get("backend") != "dir":
        params = dict(CLASS_PARAMS, **(params or {}))
    req.volume_capabilities.extend(caps if caps is not None else [mount_cap(pb)])
    if required is not None or limit is not None:
        req.capacity_range.required_bytes = required or 0
        req.capacity_range.limit_bytes = limit or 0
        req.capacity_range.SetInParent()
    if params:
        req.parameters.update(params)
    if source is not None:
        kind, sid = source
        if kind == "snapshot":
            req.volume_content_source.snapshot.snapshot_id = sid
        else:
            req.volume_content_source.volume.volume_id = sid
    if requisite is not None or preferred is not None:
        for seg in requisite or ():
            req.accessibility_requirements.requisite.add().segments.update(seg)
        for seg in preferred or ():
            req.accessibility_requirements.preferred.add().segments.update(seg)
        req.accessibility_requirements.SetInParent()
    return req


def pvc_params(ns, claim, **extra):
    p = {PVC_NS: ns, PVC_NAME: claim}
    p.update(extra)
    return p
