#!/usr/bin/python3
"""(Re)write the seed corpora of the fuzz targets, tests/fuzz/corpus/<target>/, from real input
shapes: CSI requests as the external-provisioner, kubelet and csi-sanity send them (built with
the csi_pb2 stubs of tests/csi/csi_client.py), watch streams, Status bodies, claims, classes
and PVs as the API server serves them, the kubeconfigs of tests/unit/kubeconfig, lvm's JSON
reports, this machine's /proc/self/mountinfo. Deterministic: running it twice gives the same
files. Findings are added by hand as corpus/<target>/finding-*, never rewritten here.

    /usr/bin/python3 tests/fuzz/make_corpus.py
"""

import copy
import glob
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
SEP = b"\0\0\0\n"  # fuzz_common.h's document separator


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def clean(target):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        for f in os.listdir(d):
            if not f.startswith("finding-"):
                os.unlink(os.path.join(d, f))


def j(o):
    return json.dumps(o, separators=(",", ":"))


# ---- Kubernetes objects, in the shapes the API server returns ----

CLAIM = {
    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
    "metadata": {
        "name": "www-web-0", "namespace": "default",
        "uid": "6f1c2a4e-8d3b-4c1a-9e7f-0a1b2c3d4e5f", "resourceVersion": "48213",
        "creationTimestamp": "2026-12-02T10:00:00Z",
        "labels": {"app": "nginx"},
        "annotations": {
            "volume.kubernetes.io/storage-provisioner": "ordinal.csi.dev",
            "volume.beta.kubernetes.io/storage-provisioner": "ordinal.csi.dev",
            "volume.kubernetes.io/selected-node": "node-1",
        },
        "finalizers": ["kubernetes.io/pvc-protection"],
    },
    "spec": {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "ordinal", "volumeMode": "Filesystem",
    },
    "status": {"phase": "Pending"},
}

CLASS = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "ordinal", "resourceVersion": "101", "uid": "c1"},
    "provisioner": "ordinal.csi.dev", "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True,
    "parameters": {"backend": "dir"},
}

PV = {
    "apiVersion": "v1", "kind": "PersistentVolume",
    "metadata": {
        "name": "pvc-6f1c2a4e-8d3b-4c1a-9e7f-0a1b2c3d4e5f", "resourceVersion": "48230",
        "uid": "a0a0", "annotations": {"pv.kubernetes.io/provisioned-by": "ordinal.csi.dev"},
        "finalizers": ["kubernetes.io/pv-protection", "ordinal.csi.dev/volume-protection"],
    },
    "spec": {
        "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
        "csi": {"driver": "ordinal.csi.dev", "volumeHandle": "dir:ns/claim", "fsType": "ext4",
                "volumeAttributes": {"ordinal.csi.dev/key": "default/www-web-0",
                                     "storage.kubernetes.io/csiProvisionerIdentity":
                                         "1764669600000-ordinal.csi.dev-node-1"}},
        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default",
                     "name": "www-web-0", "uid": "6f1c2a4e-8d3b-4c1a-9e7f-0a1b2c3d4e5f",
                     "apiVersion": "v1", "resourceVersion": "48213"},
        "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "ordinal",
        "volumeMode": "Filesystem",
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.ordinal.csi.dev/node", "operator": "In", "values": ["node-1"]}]}]}},
    },
    "status": {"phase": "Bound"},
}

STATUS_410 = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": "too old resource version: 100 (48213)", "reason": "Expired",
              "code": 410}
STATUSES = [
    (404, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "persistentvolumes \"pvc-x\" not found", "reason": "NotFound",
           "details": {"name": "pvc-x", "kind": "persistentvolumes"}, "code": 404}),
    (409, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "Operation cannot be fulfilled on persistentvolumeclaims \"www-web-0\": the "
                      "object has been modified; please apply your changes to the latest version "
                      "and try again", "reason": "Conflict",
           "details": {"name": "www-web-0", "kind": "persistentvolumeclaims"}, "code": 409}),
    (409, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "persistentvolumes \"pvc-x\" already exists", "reason": "AlreadyExists",
           "code": 409}),
    (410, STATUS_410),
    (429, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
           "details": {"retryAfterSeconds": 1}, "code": 429}),
    (422, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "PersistentVolume \"x\" is invalid: spec.capacity: Required value",
           "reason": "Invalid", "details": {"name": "x", "kind": "PersistentVolume", "causes": [
               {"reason": "FieldValueRequired", "message": "Required value",
                "field": "spec.capacity"}]}, "code": 422}),
    (500, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "Internal error occurred: fault injected", "reason": "InternalError",
           "code": 500}),
    (504, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "Timeout: request did not complete within 60s", "reason": "Timeout",
           "details": {"retryAfterSeconds": 60}, "code": 504}),
    (403, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "persistentvolumes is forbidden: User \"system:serviceaccount:kube-system:"
                      "ordinal\" cannot create resource", "reason": "Forbidden", "code": 403}),
    (200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "details": {"name": "pvc-x", "kind": "persistentvolumes"}}),
    (503, None), (401, None),
]


def corpus_watch():
    clean("fuzz_watch")
    c2 = copy.deepcopy(CLAIM)
    c2["metadata"]["resourceVersion"] = "48214"
    c2["spec"]["volumeName"] = PV["metadata"]["name"]
    c2["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "1Gi"}}
    c3 = copy.deepcopy(c2)
    c3["metadata"]["deletionTimestamp"] = "2026-12-02T11:00:00Z"
    c3["metadata"]["resourceVersion"] = "48300"
    ev = lambda t, o: j({"type": t, "object": o}) + "\n"
    bm = {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
          "metadata": {"resourceVersion": "48400",
                       "annotations": {"k8s.io/initial-events-end": "true"}}}
    write("fuzz_watch", "claims", ev("ADDED", CLAIM) + ev("MODIFIED", c2) + ev("MODIFIED", c3)
          + ev("DELETED", c3) + ev("BOOKMARK", bm))
    write("fuzz_watch", "pvs-crlf", (ev("ADDED", PV) + ev("MODIFIED", PV)).replace("\n", "\r\n"))
    write("fuzz_watch", "classes", ev("ADDED", CLASS) + ev("DELETED", CLASS))
    write("fuzz_watch", "expired", ev("ADDED", CLAIM) + ev("ERROR", STATUS_410))
    write("fuzz_watch", "cut", (ev("ADDED", CLAIM) + ev("MODIFIED", c2))[:700])
    write("fuzz_watch", "pretty", json.dumps({"type": "ADDED", "object": CLASS}, indent=1)
          .replace("\n", " ") + "\n\n\n" + ev("BOOKMARK", bm))


def corpus_list():
    clean("fuzz_list")
    c2 = copy.deepcopy(CLAIM)
    c2["metadata"]["name"] = "www-web-1"
    c2["metadata"]["managedFields"] = [{"manager": "kube-controller-manager",
                                        "operation": "Update", "fieldsV1": {"f:spec": {}}}]
    md = {"resourceVersion": "48500"}
    lst = lambda items, **m: {"kind": "List", "apiVersion": "v1", "metadata": dict(md, **m),
                              "items": items}
    write("fuzz_list", "claims", j(lst([CLAIM, c2], **{"continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"})))
    write("fuzz_list", "pvs-pretty", json.dumps(lst([PV, PV]), indent=2))
    write("fuzz_list", "classes", j(lst([CLASS])))
    write("fuzz_list", "empty", j(lst([])))
    write("fuzz_list", "null-items", j({"kind": "List", "metadata": md, "items": None}))
    write("fuzz_list", "items-first", j({"items": [CLAIM], "metadata": md, "kind": "List"}))
    write("fuzz_list", "same-key", j(lst([CLAIM, CLAIM, c2])))


def corpus_status():
    clean("fuzz_status")
    for i, (code, body) in enumerate(STATUSES):
        write("fuzz_status", "%02d-%d" % (i, code),
              bytes([code >> 8, code & 0xff]) + (j(body).encode() if body else b"upstream error"))


def corpus_provision():
    clean("fuzz_provision")
    own_rc = {"found": b"\0", "gone": b"\1", "error": b"\2"}

    def triple(name, claim, sc, pv, rc="found"):
        parts = [j(claim).encode(), j(sc).encode() if sc is not None else b""]
        if pv is not None:
            parts.append(j(pv).encode())
        write("fuzz_provision", name, SEP.join(parts) + own_rc[rc])

    triple("provision", CLAIM, CLASS, PV)
    c = copy.deepcopy(CLAIM)
    c["spec"]["volumeMode"] = "Block"
    c["spec"]["resources"]["limits"] = {"storage": "2Gi"}
    c["spec"]["accessModes"] = ["ReadWriteOncePod"]
    s = copy.deepcopy(CLASS)
    s["parameters"] = {"backend": "lvm", "csi.storage.k8s.io/fstype": "xfs",
                       "thinPool": "pool0", "mkfsOptions": "-m crc=1"}
    s["mountOptions"] = ["noatime", "nodiratime"]
    s["reclaimPolicy"] = "Retain"
    triple("block-retain", c, s, None)
    c = copy.deepcopy(CLAIM)
    del c["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
    s = copy.deepcopy(CLASS)
    s["volumeBindingMode"] = "Immediate"
    triple("immediate", c, s, None)
    c = copy.deepcopy(CLAIM)
    c["metadata"]["deletionTimestamp"] = "2026-12-02T11:00:00Z"
    c["metadata"]["finalizers"].append("ordinal.csi.dev/provisioning")
    triple("deleting", c, CLASS, None, "gone")
    p = copy.deepcopy(PV)
    p["status"]["phase"] = "Released"
    p["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    p["spec"]["claimRef"]["uid"] = "old-uid"
    triple("readopt", CLAIM, CLASS, p)
    c = copy.deepcopy(CLAIM)
    c["spec"]["resources"]["requests"]["storage"] = "1.5e9"
    c["spec"]["accessModes"] = ["ReadWriteMany"]
    triple("rwx", c, CLASS, None, "error")


def corpus_quantity():
    clean("fuzz_quantity")
    for i, q in enumerate(["1Gi", "10Gi", "500M", "1.5Gi", "1e9", "1000", "0", "+5", "64Mi",
                           "2Ti", "1k", "100m", "1E", "8Ei", "9223372036854775807", "1.0e+3",
                           "0.5Ki", "12E-1", ".5Gi", "7Pi"]):
        write("fuzz_quantity", "%02d" % i, q)


def corpus_mountinfo():
    clean("fuzz_mountinfo")
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            # this machine's mounts, with its checkout's location made neutral
            text = f.read()[:65536]
            write("fuzz_mountinfo", "this-machine", re.sub(rb"/work\b", b"/srv", text))
    except OSError:
        pass
    write("fuzz_mountinfo", "kubelet",
          "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
          "35 22 0:30 / /var/lib/kubelet rw,relatime shared:17 - tmpfs tmpfs rw,size=10240k\n"
          "412 35 8:1 /var/lib/ordinal/default/www-web-0/data /var/lib/kubelet/pods/"
          "0d2e/volumes/kubernetes.io~csi/pvc-6f1c/mount rw,nosuid,nodev,noatime shared:1 "
          "master:3 - ext4 /dev/sda1 rw\n"
          "413 35 8:1 /var/lib/ordinal/with\\040space /mnt/a\\011tab\\012nl\\134bs ro,relatime - "
          "ext4 /dev/sda1 rw\n"
          "414 35 253:3 / /var/lib/kubelet/plugins/kubernetes.io/csi/ordinal.csi.dev/abc/"
          "globalmount rw - xfs /dev/mapper/vg0-ord--default--www--web--0 rw,attr2,noquota\n")
    write("fuzz_mountinfo", "flags", "ro\nnoexec\nnosuid\nnodev\nnoatime\nbind\nrelatime\n"
          "password=secret\nstrictatime\ndirsync\n")


def corpus_lvm():
    clean("fuzz_lvm_json")
    tags = ",".join([
        "ordinal.csi.dev/key=default/www-web-0", "ordinal.csi.dev/name=pvc-6f1c2a4e",
        "ordinal.csi.dev/size=1073741824", "ordinal.csi.dev/access=mount",
        "ordinal.csi.dev/fs=xfs", "ordinal.csi.dev/mkfs=-m#20crc=1",
        "ordinal.csi.dev/created=1764669600", "ordinal.csi.dev/gen=2",
        "ordinal.csi.dev/pool=pool0", "ordinal.csi.dev/source=lvm:vg0/ors-snap1"])
    snap_tags = ",".join([
        "ordinal.csi.dev/snap=snap1", "ordinal.csi.dev/source=lvm:vg0/ord-www-0123456789abcdef",
        "ordinal.csi.dev/size=1073741824", "ordinal.csi.dev/access=mount",
        "ordinal.csi.dev/fs=ext4", "ordinal.csi.dev/created=1764669600"])
    row = lambda name, t, attr="-wi-a-----", pool="": {
        "lv_name": name, "vg_name": "vg0", "lv_size": "1073741824", "lv_tags": t,
        "lv_attr": attr, "lv_health_status": "", "vg_extent_size": "4194304", "pool_lv": pool}
    lvs = {"report": [{"lv": [row("ord-default-www-web-0-0123456789abcdef", tags),
                              row("ors-snap1", snap_tags, "Vri---tz-k", "pool0"),
                              row("pool0", "", "twi-aotz--"), row("root", "other,tags")]}]}
    write("fuzz_lvm_json", "lvs", json.dumps(lvs, indent=2) + "\n")
    write("fuzz_lvm_json", "vgs", json.dumps({"report": [{"vg": [
        {"vg_name": "vg0", "vg_extent_size": "4194304", "vg_free": "104857600",
         "vg_size": "209715200"}]}]}, indent=2) + "\n")
    write("fuzz_lvm_json", "pool", json.dumps({"report": [{"lv": [
        {"lv_name": "pool0", "lv_attr": "twi-aotz--", "lv_size": "104857600",
         "data_percent": "12.50"}]}]}, indent=2) + "\n")
    write("fuzz_lvm_json", "escapes", '{"report":[{"lv":[{"lv_name":"a\\u00e9\\ud83d\\ude00",'
          '"vg_name":"vg0","lv_size":"1e3","lv_tags":"\\"","lv_attr":"","lv_health_status":"",'
          '"vg_extent_size":"","pool_lv":"","x":[1,-2.5e-3,true,false,null,{}]}]},{"lv":[]}]}')


def corpus_kubeconfig():
    clean("fuzz_kubeconfig")
    for path in sorted(glob.glob(os.path.join(SRC, "tests", "unit", "kubeconfig", "*"))):
        with open(path, "rb") as f:
            write("fuzz_kubeconfig", os.path.basename(path), f.read())
    cred = j({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
              "status": {"token": "t0k3n", "expirationTimestamp": "2026-12-02T12:00:00Z"}})
    cred_cert = j({"apiVersion": "client.authentication.k8s.io/v1beta1",
                   "kind": "ExecCredential", "status": {
                       "clientCertificateData": "-----BEGIN CERTIFICATE-----\nMIIB\n"
                                                "-----END CERTIFICATE-----\n",
                       "clientKeyData": "-----BEGIN PRIVATE KEY-----\nMIIE\n"
                                        "-----END PRIVATE KEY-----\n"}})
    write("fuzz_kubeconfig", "exec-token", b"apiVersion: v1\nkind: Config\n" + SEP + cred.encode())
    write("fuzz_kubeconfig", "exec-cert", b"{}" + SEP + cred_cert.encode())


# ---- CSI requests ----

def corpus_kubectl_args():
    # the invocations of README, the demo and tests/sandbox/test_cli.py, one argument per NUL
    clean("fuzz_kubectl_args")
    calls = [
        [], ["help"], ["help", "plan", "delete"], ["version"], ["--help"], ["status", "-h"],
        ["status"], ["status", "web"], ["status", "web", "-n", "demo"], ["status", "-A", "-o", "wide"],
        ["status", "web", "--namespace=demo", "-ojson"], ["-n", "demo", "status", "web"],
        ["plan", "scale", "web", "--replicas", "1"], ["plan", "scale", "web", "--replicas=0", "-n", "demo"],
        ["plan", "scale", "web", "--replicas", "1", "-o", "json"],
        ["plan", "delete", "web", "--cascade=orphan"], ["plan", "delete", "web", "--cascade", "background"],
        ["volumes"], ["volumes", "--node", "node-1"], ["volumes", "--orphaned", "-o", "json"],
        ["volumes", "--orphaned=true", "--kubeconfig", "/tmp/kubeconfig", "--context", "sandbox"],
        ["reclaim", "ov-handle"], ["reclaim", "ov-handle", "--timeout", "2m"],
        ["reclaim", "--timeout=90s", "--", "ov-handle"], ["plan"], ["plan", "resize", "web"],
    ]
    for i, c in enumerate(calls):
        write("fuzz_kubectl_args", "%02d" % i, "\0".join(c))


def method_table():
    """csi_methods[] of provisioner/csi/csi.c, in order: [(service, name)]."""
    with open(os.path.join(SRC, "provisioner", "csi", "csi.c")) as f:
        text = f.read()
    table = text[text.index("csi_methods[] = {"):]
    table = table[:table.index("};")]
    return re.findall(r'M\("(\w+)",\s*"(\w+)"', table)


def corpus_csi():
    clean("fuzz_csi")
    sys.path.insert(0, os.path.join(SRC, "tests", "csi"))
    from csi_client import load_pb
    pb = load_pb(SRC)
    methods = method_table()
    index = {name: i for i, (_, name) in enumerate(methods)}
    node = {name for svc, name in methods if svc == "Node"}

    def seed(method, msg, tag):
        # byte 0: the method, bit 7 set for the node service (fuzz_csi.c)
        b = index[method] | (0x80 if method in node else 0)
        write("fuzz_csi", "%s-%s" % (method, tag), bytes([b]) + msg.SerializeToString())

    def mount_cap(fs="", flags=(), mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER):
        c = pb.VolumeCapability()
        c.mount.fs_type = fs
        c.mount.mount_flags.extend(flags)
        c.access_mode.mode = mode
        return c

    def block_cap():
        c = pb.VolumeCapability()
        c.block.SetInParent()
        c.access_mode.mode = pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
        return c

    def create(name, params, cap, required=1 << 30, source=None):
        r = pb.CreateVolumeRequest(name=name)
        r.capacity_range.required_bytes = required
        r.volume_capabilities.append(cap)
        r.parameters.update(params)
        t = r.accessibility_requirements.requisite.add()
        t.segments["topology.ordinal.csi.dev/node"] = "fuzz-node"
        r.accessibility_requirements.preferred.add().CopyFrom(t)
        if source == "snapshot":
            r.volume_content_source.snapshot.snapshot_id = "dir:@snap-1"
        elif source == "volume":
            r.volume_content_source.volume.volume_id = "dir:default/www-web-0"
        return r

    pvc = {"csi.storage.k8s.io/pvc/namespace": "default",
           "csi.storage.k8s.io/pvc/name": "www-web-0",
           "csi.storage.k8s.io/pv/name": "pvc-6f1c2a4e-8d3b-4c1a-9e7f-0a1b2c3d4e5f"}
    seed("GetPluginInfo", pb.GetPluginInfoRequest(), "0")
    seed("GetPluginCapabilities", pb.GetPluginCapabilitiesRequest(), "0")
    seed("Probe", pb.ProbeRequest(), "0")
    seed("CreateVolume", create("pvc-6f1c2a4e", pvc, mount_cap("ext4", ["noatime"])), "claim")
    seed("CreateVolume", create("plain-name", {}, mount_cap()), "plain")
    seed("CreateVolume", create("blk", dict(pvc, backend="dir"), block_cap(), 1 << 20), "block")
    seed("CreateVolume", create("restore", pvc, mount_cap(), source="snapshot"), "restore")
    seed("CreateVolume", create("clone", {"backend": "dir"}, mount_cap(), source="volume"),
         "clone")
    seed("CreateVolume", create("../../etc", {"csi.storage.k8s.io/pvc/namespace": "..",
                                              "csi.storage.k8s.io/pvc/name": "a/b"},
                                mount_cap()), "dotdot")
    seed("DeleteVolume", pb.DeleteVolumeRequest(volume_id="dir:default/www-web-0"), "claim")
    seed("DeleteVolume", pb.DeleteVolumeRequest(volume_id="dir:_/plain-name/3"), "gen")
    seed("DeleteVolume", pb.DeleteVolumeRequest(volume_id="dir:#" + "ab" * 32), "hash")
    seed("ControllerPublishVolume", pb.ControllerPublishVolumeRequest(
        volume_id="dir:_/plain-name", node_id="fuzz-node", volume_capability=mount_cap()), "0")
    seed("ControllerUnpublishVolume", pb.ControllerUnpublishVolumeRequest(
        volume_id="dir:_/plain-name", node_id="fuzz-node"), "0")
    v = pb.ValidateVolumeCapabilitiesRequest(volume_id="dir:_/plain-name")
    v.volume_capabilities.append(mount_cap(mode=pb.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY))
    v.volume_context["ordinal.csi.dev/key"] = "plain-name"
    seed("ValidateVolumeCapabilities", v, "0")
    seed("ListVolumes", pb.ListVolumesRequest(max_entries=2), "first")
    seed("ListVolumes", pb.ListVolumesRequest(max_entries=1, starting_token="ZGlyOl8vYQ"), "token")
    g = pb.GetCapacityRequest()
    g.volume_capabilities.append(mount_cap())
    g.parameters["backend"] = "dir"
    g.accessible_topology.segments["topology.ordinal.csi.dev/node"] = "fuzz-node"
    seed("GetCapacity", g, "0")
    seed("ControllerGetCapabilities", pb.ControllerGetCapabilitiesRequest(), "0")
    seed("CreateSnapshot", pb.CreateSnapshotRequest(
        source_volume_id="dir:_/plain-name", name="snap-1",
        parameters={"csi.storage.k8s.io/volumesnapshot/name": "s1"}), "0")
    seed("DeleteSnapshot", pb.DeleteSnapshotRequest(snapshot_id="dir:@snap-1"), "0")
    seed("ListSnapshots", pb.ListSnapshotsRequest(source_volume_id="dir:_/plain-name"), "src")
    seed("ListSnapshots", pb.ListSnapshotsRequest(max_entries=1), "page")
    e = pb.ControllerExpandVolumeRequest(volume_id="dir:_/plain-name", volume_capability=mount_cap())
    e.capacity_range.required_bytes = 2 << 30
    seed("ControllerExpandVolume", e, "0")
    seed("ControllerGetVolume", pb.ControllerGetVolumeRequest(volume_id="dir:_/plain-name"), "0")
    seed("ControllerModifyVolume", pb.ControllerModifyVolumeRequest(
        volume_id="dir:_/plain-name", mutable_parameters={"iops": "100"}), "0")
    seed("GetSnapshot", pb.GetSnapshotRequest(snapshot_id="dir:@snap-1"), "0")
    kubelet = "/var/lib/kubelet"
    staging = kubelet + "/plugins/kubernetes.io/csi/ordinal.csi.dev/0a1b/globalmount"
    target = kubelet + "/pods/0d2e-11/volumes/kubernetes.io~csi/pvc-6f1c/mount"
    ctx = {"ordinal.csi.dev/key": "plain-name", "ordinal.csi.dev/backend": "dir",
           "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/ephemeral": "false"}
    seed("NodeStageVolume", pb.NodeStageVolumeRequest(
        volume_id="dir:_/plain-name", staging_target_path=staging,
        volume_capability=mount_cap("ext4"), volume_context=ctx), "0")
    seed("NodeUnstageVolume", pb.NodeUnstageVolumeRequest(
        volume_id="dir:_/plain-name", staging_target_path=staging), "0")
    seed("NodePublishVolume", pb.NodePublishVolumeRequest(
        volume_id="dir:_/plain-name", staging_target_path=staging, target_path=target,
        volume_capability=mount_cap("", ["ro", "noexec"]), readonly=True, volume_context=ctx),
        "0")
    seed("NodePublishVolume", pb.NodePublishVolumeRequest(
        volume_id="dir:_/plain-name", target_path="/tmp/../etc/x",
        volume_capability=block_cap()), "block")
    seed("NodeUnpublishVolume", pb.NodeUnpublishVolumeRequest(
        volume_id="dir:_/plain-name", target_path=target), "0")
    seed("NodeGetVolumeStats", pb.NodeGetVolumeStatsRequest(
        volume_id="dir:_/plain-name", volume_path=target), "0")
    x = pb.NodeExpandVolumeRequest(volume_id="dir:_/plain-name", volume_path=target,
                                   volume_capability=mount_cap())
    x.capacity_range.required_bytes = 2 << 30
    seed("NodeExpandVolume", x, "0")
    seed("NodeGetCapabilities", pb.NodeGetCapabilitiesRequest(), "0")
    seed("NodeGetInfo", pb.NodeGetInfoRequest(), "0")
    missing = [n for _, n in methods
               if not any(f.startswith(n + "-") for f in os.listdir(os.path.join(CORPUS, "fuzz_csi")))]
    if missing:
        raise SystemExit("no seed for %s" % ", ".join(missing))


def main():
    corpus_watch()
    corpus_list()
    corpus_status()
    corpus_provision()
    corpus_quantity()
    corpus_mountinfo()
    corpus_lvm()
    corpus_kubeconfig()
    corpus_kubectl_args()
    corpus_csi()
    for t in sorted(os.listdir(CORPUS)):
        print("%-18s %d seeds" % (t, len(os.listdir(os.path.join(CORPUS, t)))))


if __name__ == "__main__":
    main()
