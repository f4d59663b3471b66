"""End to end on one real sandbox (StatefulSet controller, scheduler, kubelets, ordinal-csi,
bubblewrap containers): ordered start and stop, pod deletion and scale down/up keeping data,
ordinals.start, and the demo's scenario driven by real kubectl. Order is taken from watch
events (resourceVersions), data from inside the containers and from Ordinal's stores on disk."""

import e2e
from e2e import needs_csi, service, wait_for, web
from resources import parse_rfc3339

pytestmark = needs_csi


def test_ordered_start_and_stop_from_watch_events(sbx, ns):
    rec = sbx.record(ns)
    sbx.apply(ns, service(), web(replicas=3))
    sbx.wait_ready(ns, ["web-0", "web-1", "web-2"])
    for i in (1, 2):
        prev_ready, created, claim = rec.need(
            lambda r: r.became_ready("web-%d" % (i - 1)), lambda r: r.created("web-%d" % i),
            lambda r: r.first("persistentvolumeclaims", "www-web-%d" % i,
                              lambda t, o: t == "ADDED"))
        assert prev_ready < created, \
            "web-%d created before web-%d was Running and Ready" % (i, i - 1)
        assert claim < created, "claim before its pod"
    claims = sbx.claims(ns)
    pods = sbx.pods(ns)
    for i in range(3):
        c = claims["www-web-%d" % i]
        assert c["status"]["phase"] == "Bound"
        assert c["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == \
            pods["web-%d" % i]["spec"]["nodeName"]
        assert sbx.stores(ns)["www-web-%d" % i] == pods["web-%d" % i]["spec"]["nodeName"], \
            "the volume is on the pod's node"
    assert len({p["spec"]["nodeName"] for p in pods.values()}) == 3, "spread over the nodes"

    m = rec.mark()
    sbx.k(ns, "scale", "sts", "web", "--replicas=0")
    sbx.wait_ready(ns, [])
    g2, s1, g1, s0 = rec.need(lambda r: r.gone("pods", "web-2", m),
                              lambda r: r.stopping("web-1", m),
                              lambda r: r.gone("pods", "web-1", m),
                              lambda r: r.stopping("web-0", m))
    assert g2 < s1 and g1 < s0, "each pod began stopping only after the higher one was gone"
    assert sorted(sbx.claims(ns)) == ["www-web-0", "www-web-1", "www-web-2"]


def test_pod_deletion_keeps_claim_node_and_data(sbx, ns):
    sbx.apply(ns, service(), web(replicas=2, pmp="Parallel"))
    before = sbx.wait_ready(ns, ["web-0", "web-1"])
    sbx.write_hostnames(ns, ["web-0", "web-1"])
    claim_uid = sbx.claims(ns)["www-web-1"]["metadata"]["uid"]
    old = before["web-1"]
    sbx.k(ns, "delete", "pod", "web-1")
    after = wait_for(lambda: (lambda p: p if p and p["metadata"]["uid"] != old["metadata"]["uid"]
                              and e2e.ready(p) else None)(sbx.pods(ns).get("web-1")),
                     timeout=e2e.WAIT, what="a new web-1 Ready")
    assert after["spec"]["nodeName"] == old["spec"]["nodeName"], "back where its volume is"
    assert sbx.claims(ns)["www-web-1"]["metadata"]["uid"] == claim_uid, "the same claim"
    assert sbx.read_in_pod(ns, "web-1") == "web-1\n", "the same data"
    assert sbx.pods(ns)["web-0"]["metadata"]["uid"] == before["web-0"]["metadata"]["uid"]


def test_scale_down_and_up_keeps_claims_and_data(sbx, ns):
    sbx.apply(ns, service(), web(replicas=3, pmp="Parallel"))
    sbx.wait_ready(ns, ["web-0", "web-1", "web-2"])
    sbx.write_hostnames(ns, ["web-0", "web-1", "web-2"], tag=" first")
    uids = {k: v["metadata"]["uid"] for k, v in sbx.claims(ns).items()}
    vols = {k: v["spec"]["volumeName"] for k, v in sbx.claims(ns).items()}
    sbx.k(ns, "scale", "sts", "web", "--replicas=1")
    sbx.wait_ready(ns, ["web-0"])
    assert {k: v["metadata"]["uid"] for k, v in sbx.claims(ns).items()} == uids, \
        "whenScaled Retain (the default) keeps every claim"
    assert vols["www-web-2"] in sbx.pv_names() and \
        sbx.on_disk(ns, "www-web-2") == "web-2 first\n", "and its volume and data"
    sbx.k(ns, "scale", "sts", "web", "--replicas=3")
    sbx.wait_ready(ns, ["web-0", "web-1", "web-2"])
    assert {k: v["spec"]["volumeName"] for k, v in sbx.claims(ns).items()} == vols
    for p in ("web-1", "web-2"):
        assert sbx.read_in_pod(ns, p) == "%s first\n" % p


def test_ordinals_start(sbx, ns):
    rec = sbx.record(ns)
    sbx.apply(ns, service(), web(replicas=2, start=5))
    pods = sbx.wait_ready(ns, ["web-5", "web-6"])
    r5, c6 = rec.need(lambda r: r.became_ready("web-5"), lambda r: r.created("web-6"))
    assert r5 < c6, "ordered from the start ordinal"
    assert pods["web-6"]["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "6"
    assert sorted(sbx.claims(ns)) == ["www-web-5", "www-web-6"]
    assert sorted(sbx.stores(ns)) == ["www-web-5", "www-web-6"]
    sbx.write_hostnames(ns, ["web-5", "web-6"])
    sbx.k(ns, "patch", "sts", "web", "-p", '{"spec":{"ordinals":{"start":6}}}')
    sbx.wait_ready(ns, ["web-6", "web-7"])
    assert sbx.read_in_pod(ns, "web-6") == "web-6\n", "web-6 kept running with its data"
    assert sorted(sbx.claims(ns)) == ["www-web-5", "www-web-6", "www-web-7"]


def test_the_demo_scenario_with_kubectl(sbx, ns):
    """get, describe, scale, rollout status, logs, exec, delete: the demo's verbs."""
    sbx.apply(ns, service(), web(replicas=2))
    sbx.k(ns, "rollout", "status", "sts/web", "--timeout=60s")
    out = sbx.k(ns, "get", "pod").stdout.split("\n")
    assert out[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = [ln.split() for ln in out[1:] if ln]
    assert [r[:4] for r in rows] == [["web-0", "1/1", "Running", "0"],
                                     ["web-1", "1/1", "Running", "0"]]
    pvc = [ln.split() for ln in sbx.k(ns, "get", "pvc").stdout.split("\n")[1:] if ln]
    assert [(r[0], r[1], r[3], r[4], r[5]) for r in pvc] == [
        ("www-web-%d" % i, "Bound", "1Gi", "RWO", "ordinal") for i in range(2)]
    assert all(r[2].startswith("pvc-") for r in pvc)
    assert sbx.k(ns, "exec", "web-0", "--", "hostname").stdout == "web-0\n"
    sbx.write_hostnames(ns, ["web-0"])
    ip = sbx.pods(ns)["web-0"]["status"]["podIP"]
    import urllib.request
    with urllib.request.urlopen("http://%s/" % ip, timeout=10) as r:
        assert r.read().decode() == "web-0\n", "the web server serves the volume"
    logs = sbx.k(ns, "logs", "web-0").stdout
    assert "GET / " in logs, "the request is in the container's log: %r" % logs
    desc = sbx.k(ns, "describe", "sts", "web").stdout
    assert "2 desired | 2 total" in desc and "2 Running / 0 Waiting" in desc
    assert "ClaimName:     www" in desc or "www" in desc
    sbx.k(ns, "scale", "sts", "web", "--replicas=3")
    sbx.k(ns, "rollout", "status", "sts/web", "--timeout=60s")
    assert sbx.k(ns, "get", "sts", "web").stdout.split("\n")[1].split()[1] == "3/3"
    sbx.k(ns, "delete", "pod", "web-0")
    sbx.k(ns, "rollout", "status", "sts/web", "--timeout=60s")
    sbx.wait_ready(ns, ["web-0", "web-1", "web-2"])
    assert sbx.read_in_pod(ns, "web-0") == "web-0\n"
    sbx.k(ns, "delete", "sts", "web")
    wait_for(lambda: not sbx.pods(ns), timeout=e2e.WAIT, what="pods gone with the set")
    assert sorted(sbx.claims(ns)) == ["www-web-0", "www-web-1", "www-web-2"], \
        "whenDeleted Retain (the default) keeps the claims"


MIN_READY = 5


def _ready_since(pod):
    """When the pod's Ready condition last became True (RFC 3339, whole seconds)."""
    c = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"][0]
    assert c["status"] == "True"
    return parse_rfc3339(c["lastTransitionTime"])


def test_min_ready_seconds_from_watch_events(sbx, ns):
    """minReadySeconds: availableReplicas counts a pod only once it has been Ready that long,
    and OrderedReady creates ordinal N+1 only once N is Available (kubernetes.md 3.2), taken
    from the set's and the pods' watch events and from the objects' timestamps."""
    rec = sbx.record(ns, extra=("statefulsets",))
    sbx.apply(ns, service(), web(replicas=2, min_ready=MIN_READY))
    pods = sbx.wait_ready(ns, ["web-0", "web-1"], timeout=e2e.WAIT + 2 * MIN_READY)

    def status(st, ready, available):
        return st.get("readyReplicas", 0) == ready and st.get("availableReplicas", 0) == available

    def first_status(pred):
        for rv, _, typ, n, o in rec.history("statefulsets"):
            if n == "web" and typ != "DELETED" and pred(o.get("status") or {}):
                return rv
        return None
    r0, c1, r1, ready1, ready2, avail2 = rec.need(
        lambda r: r.became_ready("web-0"), lambda r: r.created("web-1"),
        lambda r: r.became_ready("web-1"),
        lambda r: first_status(lambda st: status(st, 1, 0)),
        lambda r: first_status(lambda st: status(st, 2, 1)),
        lambda r: first_status(lambda st: st.get("availableReplicas", 0) == 2),
        timeout=e2e.WAIT + 2 * MIN_READY, what="the set Available")
    assert r0 < ready1 < c1, "web-0 counted Ready but not Available before web-1 was made"
    assert c1 < r1 < ready2 < avail2, "web-1 counted Ready but not Available first"
    web1 = sbx.pods(ns)["web-1"]
    assert web1["metadata"]["uid"] == pods["web-1"]["metadata"]["uid"]
    t0, t1 = _ready_since(pods["web-0"]), _ready_since(web1)
    assert parse_rfc3339(web1["metadata"]["creationTimestamp"]) >= t0 + MIN_READY, \
        "web-1 created %s s after web-0 became Ready (minReadySeconds %d)" % (
            parse_rfc3339(web1["metadata"]["creationTimestamp"]) - t0, MIN_READY)
    assert rec.received[avail2] >= t1 + MIN_READY, "web-1 Available before minReadySeconds"
    for rv, _, typ, n, o in rec.history("statefulsets"):
        if n == "web" and rec.received[rv] < t1 + MIN_READY:
            assert (o.get("status") or {}).get("availableReplicas", 0) <= 1, o["status"]
