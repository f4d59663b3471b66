"""Ordinal's demo, until the sandbox cluster exists: the driver serving one StatefulSet's
ordinals, driven over CSI exactly as kubelet and a provisioner would drive it.

    /usr/bin/python3 tools/demo.py BUILD/ordinal-csi

It starts ordinal-csi on a temporary root, provisions www-web-0..2 in ordinal order, publishes
each into a "pod" directory, deletes and recreates a pod (the data stays), scales down (highest
ordinal released first), and shows a claim that comes back under the same name getting its
retained data back. Every step is checked; the demo exits non-zero if anything is off.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "csi"))
import csi_client as cc  # noqa: E402

NS, SET, TEMPLATE = "default", "web", "www"


def step(msg):
    print("\n== " + msg, flush=True)


def check(cond, what):
    if not cond:
        raise SystemExit("demo: FAILED: " + what)
    print("   ok: " + what, flush=True)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SOURCE, "build/release/ordinal-csi")
    pb = cc.load_pb(SOURCE)
    tmp = tempfile.mkdtemp(prefix="ordinal-demo-")
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    sock = os.path.join(tmp, "csi.sock")
    log = open(os.path.join(tmp, "ordinal-csi.log"), "w")
    daemon = subprocess.Popen([binary, "--endpoint", "unix://" + sock, "--node-id", "demo-node",
                               "--dir-root", root], stdout=log, stderr=subprocess.STDOUT)
    mounted = []
    try:
        channel = grpc.insecure_channel("unix://" + sock)
        csi = cc.CsiClient(channel, pb)
        for _ in range(100):
            try:
                csi.Probe(timeout=1)
                break
            except grpc.RpcError:
                time.sleep(0.05)
        info = csi.GetPluginInfo()
        step("driver %s %s serving on %s (root %s)" % (info.name, info.vendor_version, sock, root))

        def claim(i):
            return "%s-%s-%d" % (TEMPLATE, SET, i)

        def provision(i, uid):
            req = cc.create_req(pb, "pvc-" + uid, required=64 * cc.MiB,
                                params=cc.pvc_params(NS, claim(i)))
            return csi.CreateVolume(req).volume

        def pod_start(i, vol_id):
            staging = os.path.join(tmp, "kubelet", "staging", claim(i))
            target = os.path.join(tmp, "kubelet", "pods", "%s-%d" % (SET, i), TEMPLATE)
            os.makedirs(staging, exist_ok=True)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            cap = cc.mount_cap(pb)
            csi.NodeStageVolume(volume_id=vol_id, staging_target_path=staging,
                                volume_capability=cap)
            csi.NodePublishVolume(volume_id=vol_id, staging_target_path=staging,
                                  target_path=target, volume_capability=cap, readonly=False)
            mounted.append((vol_id, staging, target))
            return staging, target

        def pod_stop(i, vol_id, staging, target):
            csi.NodeUnpublishVolume(volume_id=vol_id, target_path=target)
            csi.NodeUnstageVolume(volume_id=vol_id, staging_target_path=staging)
            mounted.remove((vol_id, staging, target))

        step("StatefulSet %s scales to 3: claims provisioned in ordinal order 0, 1, 2" % SET)
        vols, pods = {}, {}
        for i in range(3):
            v = provision(i, str(uuid.uuid4()))
            vols[i] = v
            print("   %s -> volume %s, %d MiB, on %s" % (
                claim(i), v.volume_id, v.capacity_bytes // cc.MiB,
                dict(v.accessible_topology[0].segments)))
            pods[i] = pod_start(i, v.volume_id)
            with open(os.path.join(pods[i][1], "index.html"), "w") as f:
                f.write("hello from %s-%d\n" % (SET, i))
        check(os.path.isdir(os.path.join(root, NS, claim(1), "data")),
              "each claim has its own directory, named after it: %s/%s/%s/data"
              % (root, NS, claim(1)))

        step("pod %s-1 is deleted (evicted, rescheduled): its volume is unpublished, untouched"
             % SET)
        pod_stop(1, vols[1].volume_id, *pods[1])
        check(os.path.exists(os.path.join(root, NS, claim(1), "data", "index.html")),
              "data of %s survives the pod" % claim(1))
        pods[1] = pod_start(1, vols[1].volume_id)
        with open(os.path.join(pods[1][1], "index.html")) as f:
            content = f.read()
        check(content == "hello from %s-1\n" % SET, "the new pod %s-1 reads: %s"
              % (SET, content.strip()))

        stats = csi.NodeGetVolumeStats(volume_id=vols[1].volume_id, volume_path=pods[1][1])
        b = [u for u in stats.usage if u.unit == pb.VolumeUsage.BYTES][0]
        print("   NodeGetVolumeStats: total %d, used %d, available %d bytes; condition: %s" %
              (b.total, b.used, b.available, stats.volume_condition.message))

        step("scale down to 1 with whenScaled=Delete: ordinals released highest first: 2, then 1")
        for i in (2, 1):
            pod_stop(i, vols[i].volume_id, *pods[i])
            csi.DeleteVolume(volume_id=vols[i].volume_id)
            check(not os.path.exists(os.path.join(root, NS, claim(i))),
                  "%s released, its directory removed" % claim(i))

        step("StatefulSet deleted with whenDeleted=Retain, then created again: claim %s comes "
             "back with a new uid" % claim(0))
        pod_stop(0, vols[0].volume_id, *pods[0])
        again = provision(0, str(uuid.uuid4()))
        check(again.volume_id == vols[0].volume_id,
              "the new claim maps to the retained volume %s" % again.volume_id)
        pods[0] = pod_start(0, again.volume_id)
        with open(os.path.join(pods[0][1], "index.html")) as f:
            content = f.read()
        check(content == "hello from %s-0\n" % SET, "its data is back: %s" % content.strip())
        pod_stop(0, again.volume_id, *pods[0])

        step("ListVolumes")
        for e in csi.ListVolumes().entries:
            print("   %-28s %6d MiB  condition: %s" % (
                e.volume.volume_id, e.volume.capacity_bytes // cc.MiB,
                e.status.volume_condition.message))
        csi.DeleteVolume(volume_id=again.volume_id)
        channel.close()
    finally:
        for vol_id, staging, target in list(mounted):
            subprocess.run(["umount", target], capture_output=True)
            subprocess.run(["umount", staging], capture_output=True)
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=20)
        log.close()
    step("ordinal-csi stopped with exit code %d" % rc)
    check(rc == 0, "clean shutdown")
    shutil.rmtree(tmp, ignore_errors=True)
    print("\ndemo: all steps passed")


if __name__ == "__main__":
    main()
