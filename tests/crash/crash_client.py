"""A minimal CSI v1 client for the crash test (self-contained on purpose): python stubs compiled
from proto/csi.proto with protoc at run time, plain grpc unary_unary calls (no grpc_tools)."""

import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

import grpc  # noqa: F401  (re-exported: test_crash uses cc.grpc)

SOURCE = os.environ.get("ORDINAL_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PVC_NS = "csi.storage.k8s.io/pvc/namespace"
PVC_NAME = "csi.storage.k8s.io/pvc/name"

_pb = None


def pb():
    """The csi_pb2 module, compiled once into a temporary directory."""
    global _pb
    if _pb is None:
        out = tempfile.mkdtemp(prefix="ordinal-crash-pb-")
        atexit.register(shutil.rmtree, out, True)
        proto = os.path.join(SOURCE, "proto")
        cmd = ["protoc", "--python_out=" + out, "-I", proto, "-I", "/usr/include",
               os.path.join(proto, "csi.proto")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("protoc failed (%s): %s" % (" ".join(cmd), r.stderr))
        sys.path.insert(0, out)
        _pb = importlib.import_module("csi_pb2")
    return _pb


class Csi:
    """call(method, req=None, timeout=None, **fields), future(method, req), list_all(method)."""

    def __init__(self, channel, timeout=60.0):
        self.timeout = timeout
        self.stubs = {}
        m = pb()
        for sname in ("Identity", "Controller", "Node"):
            for meth in m.DESCRIPTOR.services_by_name[sname].methods:
                req_cls = getattr(m, meth.input_type.name)
                resp_cls = getattr(m, meth.output_type.name)
                stub = channel.unary_unary("/csi.v1.%s/%s" % (sname, meth.name),
                                           request_serializer=req_cls.SerializeToString,
                                           response_deserializer=resp_cls.FromString)
                self.stubs[meth.name] = (req_cls, stub)

    def call(self, method, req=None, timeout=None, **fields):
        req_cls, stub = self.stubs[method]
        return stub(req if req is not None else req_cls(**fields),
                    timeout=timeout or self.timeout)

    def future(self, method, req, timeout=None):
        return self.stubs[method][1].future(req, timeout=timeout or self.timeout)

    def list_all(self, method, page=3):
        """Every entry of ListVolumes/ListSnapshots, paging with a small max_entries."""
        out, token = [], ""
        for _ in range(10000):
            r = self.call(method, max_entries=page, starting_token=token)
            out += list(r.entries)
            token = r.next_token
            if not token:
                return out
        raise AssertionError("%s: paging does not end" % method)


def create_req(name, required=None, params=None, source=None):
    m = pb()
    req = m.CreateVolumeRequest(name=name)
    cap = req.volume_capabilities.add()
    cap.access_mode.mode = m.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
    cap.mount.SetInParent()
    if required is not None:
        req.capacity_range.required_bytes = required
    if params:
        req.parameters.update(params)
    if source is not None:
        kind, sid = source
        if kind == "snapshot":
            req.volume_content_source.snapshot.snapshot_id = sid
        else:
            req.volume_content_source.volume.volume_id = sid
    return req


def pvc_params(ns, claim):
    return {PVC_NS: ns, PVC_NAME: claim}
