"""The LVM node path for real: activation, mkfs only when blank, stage, publish, raw block,
online expansion of ext4 and xfs, stats, and kill -9 with LVs active and mounted.

Needs device-mapper, so it runs only inside the test VM (tests/vm/lvm.sh sets
ORDINAL_LVM_DEVICE to a virtio disk there); on this machine's kernel it is skipped as a whole,
and tests/lvm/test_lvm.py checks the clean FAILED_PRECONDITION instead."""

import os
import subprocess

import grpc
import pytest

from conftest import REAL_DM, Daemon, csi_client

pytestmark = pytest.mark.skipif(not REAL_DM, reason="needs device-mapper (runs in tests/vm)")

MiB = 1 << 20
Code = grpc.StatusCode


def create(csi, pb, name, size, fs="ext4", block=False, params=None):
    p = {"backend": "lvm"}
    if not block:
        p["fsType"] = fs
    p.update(params or {})
    caps = [csi_client.block_cap(pb)] if block else [csi_client.mount_cap(pb, fs_type=fs)]
    return csi.CreateVolume(csi_client.create_req(pb, name, required=size, params=p,
                                                  caps=caps)).volume


def stage(csi, pb, v, path, fs="ext4", block=False):
    os.makedirs(path, exist_ok=True)
    cap = csi_client.block_cap(pb) if block else csi_client.mount_cap(pb, fs_type=fs)
    csi.NodeStageVolume(pb.NodeStageVolumeRequest(volume_id=v.volume_id, staging_target_path=path,
                                                  volume_capability=cap,
                                                  volume_context=v.volume_context))


def publish(csi, pb, v, staging, target, fs="ext4", block=False, readonly=False):
    cap = csi_client.block_cap(pb) if block else csi_client.mount_cap(pb, fs_type=fs)
    csi.NodePublishVolume(pb.NodePublishVolumeRequest(
        volume_id=v.volume_id, staging_target_path=staging, target_path=target,
        volume_capability=cap, readonly=readonly, volume_context=v.volume_context))


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def fstype_of(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                return parts[parts.index("-") + 1]
    return None


def size_of(path):
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


@pytest.fixture
def paths(workdir):
    made = []

    def mk(name):
        p = os.path.join(workdir, name)
        made.append(p)
        return p
    yield mk
    # Whatever a failed test left mounted goes, so the LVs can be removed.
    for p in reversed(made):
        while mounted(p):
            subprocess.run(["umount", p], capture_output=True)


@pytest.mark.parametrize("fs,size", [("ext4", 64 * MiB), ("xfs", 320 * MiB)])
def test_stage_publish_data_survives_restage(csi, pb, paths, fs, size):
    v = create(csi, pb, "m-" + fs, size, fs=fs)
    st, tgt = paths("stage-" + fs), paths("target-" + fs)
    stage(csi, pb, v, st, fs=fs)
    assert mounted(st) and fstype_of(st) == fs
    stage(csi, pb, v, st, fs=fs)  # idempotent
    publish(csi, pb, v, st, tgt, fs=fs)
    assert mounted(tgt)
    with open(os.path.join(tgt, "data"), "w") as f:
        f.write("ordinal-" + fs)
    csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=tgt)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=st)
    assert not mounted(st) and not mounted(tgt)
    # Staged again: the filesystem is found and kept, never formatted again.
    stage(csi, pb, v, st, fs=fs)
    publish(csi, pb, v, st, tgt, fs=fs)
    with open(os.path.join(tgt, "data")) as f:
        assert f.read() == "ordinal-" + fs
    stats = csi.NodeGetVolumeStats(volume_id=v.volume_id, volume_path=tgt)
    byte_usage = [u for u in stats.usage if u.unit == pb.VolumeUsage.BYTES][0]
    assert 0 < byte_usage.total <= size
    assert byte_usage.used > 0 and byte_usage.available > 0
    assert not stats.volume_condition.abnormal
    csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=tgt)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=st)
    csi.DeleteVolume(volume_id=v.volume_id)


def test_readonly_publish(csi, pb, paths):
    v = create(csi, pb, "ro", 32 * MiB)
    st, tgt = paths("stage"), paths("target")
    stage(csi, pb, v, st)
    publish(csi, pb, v, st, tgt, readonly=True)
    with pytest.raises(OSError):
        open(os.path.join(tgt, "x"), "w").close()
    csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=tgt)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=st)


def test_raw_block(csi, pb, paths):
    v = create(csi, pb, "blk", 8 * MiB, block=True)
    st, tgt = paths("stage"), paths("target")
    stage(csi, pb, v, st, block=True)
    publish(csi, pb, v, st, tgt, block=True)
    payload = b"ordinal raw block\n" * 100
    with open(tgt, "r+b") as f:
        f.seek(4 * MiB)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    with open(tgt, "rb") as f:
        f.seek(0, os.SEEK_END)
        assert f.tell() == 8 * MiB
        f.seek(4 * MiB)
        assert f.read(len(payload)) == payload
    stats = csi.NodeGetVolumeStats(volume_id=v.volume_id, volume_path=tgt)
    assert [u.total for u in stats.usage if u.unit == pb.VolumeUsage.BYTES] == [8 * MiB]
    csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=tgt)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=st)


@pytest.mark.parametrize("fs,size,grown", [("ext4", 64 * MiB, 128 * MiB),
                                           ("xfs", 320 * MiB, 480 * MiB)])
def test_online_expansion(csi, pb, paths, fs, size, grown):
    v = create(csi, pb, "x-" + fs, size, fs=fs)
    st, tgt = paths("stage-" + fs), paths("target-" + fs)
    stage(csi, pb, v, st, fs=fs)
    publish(csi, pb, v, st, tgt, fs=fs)
    before = size_of(tgt)
    r = csi.ControllerExpandVolume(volume_id=v.volume_id,
                                   capacity_range=pb.CapacityRange(required_bytes=grown))
    assert r.capacity_bytes == grown and r.node_expansion_required
    assert size_of(tgt) == before  # the filesystem grows only at NodeExpandVolume
    n = csi.NodeExpandVolume(volume_id=v.volume_id, volume_path=tgt,
                             capacity_range=pb.CapacityRange(required_bytes=grown),
                             staging_target_path=st)
    assert n.capacity_bytes == grown
    after = size_of(tgt)
    assert after > before and after > grown * 0.85, (before, after)
    csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=tgt)
    csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=st)


def test_kill9_with_volumes_mounted(vg, workdir, pb, paths):
    vg.remove_all_lvs()
    d = Daemon(workdir, vg).start()
    try:
        vols = [create(d.csi, pb, "k%d" % i, 32 * MiB) for i in range(3)]
        sts = [paths("stage%d" % i) for i in range(3)]
        tgts = [paths("target%d" % i) for i in range(3)]
        for v, st, tgt in zip(vols, sts, tgts):
            stage(d.csi, pb, v, st)
            publish(d.csi, pb, v, st, tgt)
            with open(os.path.join(tgt, "id"), "w") as f:
                f.write(v.volume_id)
        d.kill()
        d.start()
        # After the crash every call is idempotent again, and the data is where it was.
        for v, st, tgt in zip(vols, sts, tgts):
            stage(d.csi, pb, v, st)
            publish(d.csi, pb, v, st, tgt)
            with open(os.path.join(tgt, "id")) as f:
                assert f.read() == v.volume_id
        assert {x.volume.volume_id for x in d.csi.ListVolumes().entries} == \
            {v.volume_id for v in vols}
        for v, st, tgt in zip(vols, sts, tgts):
            d.csi.NodeUnpublishVolume(volume_id=v.volume_id, target_path=tgt)
            d.csi.NodeUnstageVolume(volume_id=v.volume_id, staging_target_path=st)
            assert not mounted(st)
            d.csi.DeleteVolume(volume_id=v.volume_id)
        assert vg.lvs() == {}
    finally:
        d.stop()
