"""Crash safety of a change of owner (dir backend): a CreateVolume with a new name for an existing
claim key hands the volume over under the next generation of its id. kill -9 the daemon at
random instants of that call, restart on the same root, and check that the owner and the
generation moved together (never the new owner under the old id, or the other way round), that
the data is intact, that the retry answers the new id, and that the old owner's id then deletes
nothing.

Uses the daemon and kill machinery of test_crash.py; same environment variables.
"""

import os
import random
import shutil
import tempfile
import time

import pytest

import test_crash as tc
from test_crash import Violation, cc, grpc

GiB = tc.GiB
KEY = "%s/www-web-0" % tc.NS
OLD_ID, NEW_ID = "dir:" + KEY, "dir:" + KEY + "/1"


def read_meta(root):
    with open(os.path.join(root, KEY, "volume.meta")) as f:
        return dict(line.split("=", 1) for line in f.read().splitlines()[1:] if "=" in line)


def listed(d):
    return [e.volume.volume_id for e in d.csi.list_all("ListVolumes")]


def run_once(workdir, it, delay):
    """One iteration; delay None: uncrashed (returns the call's duration). Returns (duration,
    "old" | "new")."""
    root = os.path.join(workdir, "root-takeover-%d" % it)
    os.makedirs(root)
    d = tc.Daemon(workdir, root)
    try:
        d.start()
        d.csi.call("CreateVolume", cc.create_req("pvc-old", required=GiB,
                                                 params=cc.pvc_params(tc.NS, "www-web-0")))
        want = tc.populate(os.path.join(root, KEY, "data"), 8)
        req = cc.create_req("pvc-new", required=GiB, params=cc.pvc_params(tc.NS, "www-web-0"))
        d.csi.call("Probe")
        t0 = time.perf_counter()
        fut = d.csi.future("CreateVolume", req)
        duration = None
        if delay is None:
            fut.result()
            duration = time.perf_counter() - t0
        else:
            end = t0 + delay
            while time.perf_counter() < end:
                pass
            d.kill()
            try:
                fut.result(timeout=5)
            except (grpc.RpcError, grpc.FutureTimeoutError, grpc.FutureCancelledError):
                pass
            d.start()
        meta = read_meta(root)
        pair = (meta.get("name"), meta.get("generation", "0"))
        if pair == ("pvc-old", "0"):
            outcome, current = "old", OLD_ID
        elif pair == ("pvc-new", "1"):
            outcome, current = "new", NEW_ID
        else:
            raise Violation("owner and generation did not move together: %r" % (pair,))
        if meta.get("id") != OLD_ID:
            raise Violation("meta id %r, want the generation-0 id %s" % (meta.get("id"), OLD_ID))
        if listed(d) != [current]:
            raise Violation("ListVolumes %s, want [%s]" % (listed(d), current))
        tc.check_data(os.path.join(root, KEY, "data"), want, KEY)
        # the retry answers the new owner's id; the old owner's id deletes nothing
        resp = d.csi.call("CreateVolume", req)
        if resp.volume.volume_id != NEW_ID:
            raise Violation("retry returned %s, want %s" % (resp.volume.volume_id, NEW_ID))
        d.csi.call("DeleteVolume", cc.pb().DeleteVolumeRequest(volume_id=OLD_ID))
        tc.check_data(os.path.join(root, KEY, "data"), want, KEY + " after a stale delete")
        if listed(d) != [NEW_ID]:
            raise Violation("after a stale DeleteVolume: ListVolumes %s" % listed(d))
        d.csi.call("DeleteVolume", cc.pb().DeleteVolumeRequest(volume_id=NEW_ID))
        if listed(d):
            raise Violation("DeleteVolume %s left %s" % (NEW_ID, listed(d)))
        rc = d.stop()
        if rc != 0:
            raise Violation("daemon exited %s on SIGTERM\n%s" % (rc, d.log_tail()))
        tc.check_clean(root)
        return duration, outcome
    except Violation as e:
        raise Violation("%s [daemon log: %s]" % (e, d.log_path))
    finally:
        d.kill()
        if not tc.KEEP:
            shutil.rmtree(root, ignore_errors=True)


def test_takeover_is_atomic_across_kill9(workdir):
    rng = random.Random("%d/takeover" % tc.SEED)
    duration = max(run_once(workdir, 1000 + i, None)[0] for i in range(2))
    assert run_once(workdir, 1002, None)[1] == "new"
    delays = [0.0, duration * 3 + 0.005] + [rng.uniform(0, 1.5) * duration
                                            for _ in range(tc.ITERATIONS)]
    outcomes, violations = {"old": 0, "new": 0}, []
    for it, delay in enumerate(delays):
        try:
            outcomes[run_once(workdir, it, delay)[1]] += 1
        except Violation as e:
            violations.append("iteration %d, kill after %.2f ms: %s" % (it, delay * 1000, e))
    print("\n[crash] takeover seed=%d calib=%.1fms outcomes=%s violations=%d"
          % (tc.SEED, duration * 1000, outcomes, len(violations)))
    assert not violations, "\n  ".join(violations)
    assert outcomes["new"] > 0, outcomes


@pytest.fixture(scope="module")
def workdir():
    if not (os.path.isfile(tc.BINARY) and os.access(tc.BINARY, os.X_OK)):
        pytest.fail("ordinal-csi binary not found at %s" % tc.BINARY, pytrace=False)
    d = tempfile.mkdtemp(prefix="ordinal-crash-takeover-", dir="/tmp")
    yield d
    if not tc.KEEP:
        shutil.rmtree(d, ignore_errors=True)
