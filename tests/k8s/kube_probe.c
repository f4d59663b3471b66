/*
 * A driver for tests/k8s/test_kube_client.py: runs one scenario of the Kubernetes client
 * (kube/kube_*.c) against the fake API server and exits 0 when every check held.
 *
 *     kube_probe KUBECONFIG SCENARIO     (crud conflict trimmed paging retry ratelimit informer
 * leader get404 exec)
 *
 * The fake server's fault injection (POST /_fault) is driven from here through the client.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube_client.h"
#include "kube_informer.h"
#include "kube_leader.h"
#include "kube_util.h"
#include "log.h"
#include "util.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)
#define CHECK_R(expr, want)                                                                        \
    do {                                                                                           \
        int r_ = (expr);                                                                           \
        if (r_ != (want)) {                                                                        \
            fprintf(stderr, "%s:%d: %s = %d (%s), want %d\n", __FILE__, __LINE__, #expr, r_,       \
                    strerror(-r_), (want));                                                        \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static struct kube_config cfg;

static struct kube_client *client(double qps, int burst)
{
    struct kube_config c = cfg;

    c.qps = qps;
    c.burst = burst;
    return kube_client_new(&c);
}

static int fault(struct kube_client *c, const char *json)
{
    return kube_request(c, "POST", "/_fault", json, NULL, NULL, NULL);
}

static cJSON *lease(const char *name, const char *holder)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":"
             "{\"name\":\"%s\",\"labels\":{\"probe\":\"yes\"}},\"spec\":{\"holderIdentity\":"
             "\"%s\"}}",
             name, holder);
    return cJSON_Parse(buf);
}

static const char *holder(const cJSON *l)
{
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(l, "spec"), "holderIdentity");

    return cJSON_IsString(v) ? v->valuestring : "";
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    nanosleep(&ts, NULL);
}

static int scenario_crud(void)
{
    struct kube_client *c = client(0, 1);
    struct kube_status st;
    cJSON *l = lease("probe-a", "x"), *got = NULL, *out = NULL, *patch;
    struct kube_delete_opts del = {.precondition_uid = "wrong-uid", .grace_period_seconds = -1};

    CHECK_R(kube_create(c, &kube_leases, "default", l, &out, &st), 0);
    CHECK(out && kube_obj_rv(out));
    cJSON_Delete(out);
    out = NULL;
    CHECK_R(kube_create(c, &kube_leases, "default", l, NULL, &st), -EEXIST);
    CHECK(strcmp(st.reason, "AlreadyExists") == 0 && st.http == 409);
    CHECK_R(kube_get(c, &kube_leases, "default", "probe-a", &got, &st), 0);
    CHECK(got && strcmp(holder(got), "x") == 0);
    /* PUT with the read resourceVersion, then a stale PUT */
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(got, "spec"), "holderIdentity",
                              cJSON_CreateString("y"));
    CHECK_R(kube_update(c, &kube_leases, "default", NULL, got, &out, &st), 0);
    CHECK(out && strcmp(holder(out), "y") == 0);
    CHECK_R(kube_update(c, &kube_leases, "default", NULL, got, NULL, &st), KUBE_ECONFLICT);
    CHECK(st.http == 409 && strcmp(st.reason, "Conflict") == 0);
    cJSON_Delete(out);
    out = NULL;
    patch = cJSON_Parse("{\"spec\":{\"holderIdentity\":\"z\"}}");
    CHECK_R(kube_patch(c, &kube_leases, "default", "probe-a", NULL, patch, &out, &st), 0);
    CHECK(out && strcmp(holder(out), "z") == 0);
    cJSON_Delete(patch);
    cJSON_Delete(out);
    out = NULL;
    CHECK_R(kube_delete(c, &kube_leases, "default", "probe-a", &del, NULL, &st), KUBE_ECONFLICT);
    del.precondition_uid = NULL;
    del.propagation_policy = "Background";
    CHECK_R(kube_delete(c, &kube_leases, "default", "probe-a", &del, NULL, &st), 0);
    CHECK_R(kube_get(c, &kube_leases, "default", "probe-a", NULL, &st), -ENOENT);
    CHECK(st.http == 404 && strcmp(st.reason, "NotFound") == 0);
    CHECK_R(kube_delete(c, &kube_leases, "default", "probe-a", NULL, NULL, &st), -ENOENT);
    /* cluster-scoped and other groups */
    CHECK_R(kube_list(c, &kube_namespaces, NULL, NULL, &out, &st), 0);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(out, "items")) >= 1);
    cJSON_Delete(out);
    cJSON_Delete(l);
    cJSON_Delete(got);
    kube_client_free(c);

    /* a wrong token is 401 */
    {
        struct kube_config bad = cfg;

        static char wrong[] = "wrong";

        bad.token = wrong;
        bad.token_file = NULL;
        c = kube_client_new(&bad);
        CHECK_R(kube_get(c, &kube_leases, "default", "x", NULL, &st), -EACCES);
        kube_client_free(c);
        /* without the CA the server's certificate is refused */
        bad = cfg;
        bad.ca.data = NULL;
        bad.ca.len = 0;
        bad.max_retries = 0;
        c = kube_client_new(&bad);
        CHECK_R(kube_get(c, &kube_leases, "default", "x", NULL, &st), -EKEYREJECTED);
        kube_client_free(c);
    }
    return 0;
}

static int calls;

static int mutate(cJSON *obj, void *ud)
{
    (void)ud;
    calls++;
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(obj, "spec"), "holderIdentity",
                              cJSON_CreateString("mutated"));
    return 0;
}

static int skip(cJSON *obj, void *ud)
{
    (void)obj;
    (void)ud;
    return KUBE_MUTATE_SKIP;
}

static int scenario_conflict(void)
{
    struct kube_client *c = client(0, 1);
    struct kube_status st;
    cJSON *l = lease("probe-c", "x"), *out = NULL;

    CHECK_R(kube_create(c, &kube_leases, "default", l, NULL, &st), 0);
    CHECK_R(fault(c, "{\"conflict_next_update\": 2}"), 0);
    CHECK_R(kube_update_retry(c, &kube_leases, "default", "probe-c", NULL, mutate, NULL, &out, &st),
            0);
    CHECK(calls == 3);
    CHECK(out && strcmp(holder(out), "mutated") == 0);
    cJSON_Delete(out);
    out = NULL;
    CHECK_R(kube_update_retry(c, &kube_leases, "default", "probe-c", NULL, skip, NULL, &out, &st),
            0);
    CHECK(out != NULL);
    cJSON_Delete(out);
    CHECK_R(kube_update_retry(c, &kube_leases, "default", "nope", NULL, skip, NULL, NULL, &st),
            -ENOENT);
    cJSON_Delete(l);
    kube_client_free(c);
    return 0;
}

static int add_test_finalizer(cJSON *obj, void *ud)
{
    cJSON *md = cJSON_GetObjectItem(obj, "metadata");
    cJSON *f = cJSON_GetObjectItem(md, "finalizers");

    (void)ud;
    if (!f)
        f = cJSON_AddArrayToObject(md, "finalizers");
    cJSON_AddItemToArray(f, cJSON_CreateString("ordinal.csi.dev/probe"));
    return 0;
}

static const char *ann(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "annotations"), k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A write made from a trimmed, stale cached copy (as the informers keep them): it is refused
 * once (409: the copy's resourceVersion is a precondition), re-read, and written as a patch of
 * its change only, so every field the copy lacked or someone else wrote survives. */
static int scenario_trimmed(void)
{
    struct kube_client *c = client(0, 1);
    struct kube_status st;
    static const char *const top[] = {"metadata", NULL};
    static const char *const meta[] = {"name", "namespace", "resourceVersion", "finalizers", NULL};
    cJSON *claim = cJSON_Parse(
        "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":"
        "\"probe-t\",\"labels\":{\"app\":\"web\"},\"annotations\":{\"other\":\"x\"},"
        "\"finalizers\":[\"example.com/keep\"]},\"spec\":{\"accessModes\":[\"ReadWriteOnce\"],"
        "\"resources\":{\"requests\":{\"storage\":\"1Gi\"}}}}");
    cJSON *status = cJSON_Parse("{\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":"
                                "\"Resizing\",\"status\":\"True\"}]}}");
    cJSON *late = cJSON_Parse("{\"metadata\":{\"annotations\":{\"late\":\"y\"}}}");
    cJSON *full = NULL, *out = NULL, *after = NULL;
    unsigned long n0;

    CHECK_R(kube_create(c, &kube_persistentvolumeclaims, "default", claim, NULL, &st), 0);
    CHECK_R(kube_patch(c, &kube_persistentvolumeclaims, "default", "probe-t", "status", status,
                       NULL, &st),
            0);
    CHECK_R(kube_get(c, &kube_persistentvolumeclaims, "default", "probe-t", &full, &st), 0);
    /* the cached copy: trimmed to metadata's name, namespace, resourceVersion, finalizers */
    kube_keep_only(full, top);
    kube_keep_only(cJSON_GetObjectItem(full, "metadata"), meta);
    /* someone else writes after the copy was taken: the copy is stale */
    CHECK_R(
        kube_patch(c, &kube_persistentvolumeclaims, "default", "probe-t", NULL, late, NULL, &st),
        0);
    n0 = kube_client_request_count(c);
    CHECK_R(kube_update_retry_from(c, &kube_persistentvolumeclaims, "default", "probe-t", NULL,
                                   full, add_test_finalizer, NULL, &out, &st),
            0);
    CHECK(kube_client_request_count(c) - n0 == 3); /* PATCH 409, GET, PATCH */
    CHECK_R(kube_get(c, &kube_persistentvolumeclaims, "default", "probe-t", &after, &st), 0);
    char *txt = cJSON_PrintUnformatted(after);
    CHECK(txt && strstr(txt, "\"labels\":{\"app\":\"web\"}"));
    CHECK(strcmp(ann(after, "other"), "x") == 0 && strcmp(ann(after, "late"), "y") == 0);
    /* every finalizer kept (the server's admission adds pvc-protection), ours added once */
    CHECK(txt &&
          strstr(txt, "\"finalizers\":[\"example.com/keep\",\"kubernetes.io/pvc-protection\","
                      "\"ordinal.csi.dev/probe\"]"));
    CHECK(txt && strstr(txt, "\"phase\":\"Pending\"") && strstr(txt, "\"Resizing\""));
    CHECK(txt && strstr(txt, "\"managedFields\"") && strstr(txt, "\"storage\":\"1Gi\""));
    if (failures)
        fprintf(stderr, "after: %s\n", txt ? txt : "?");
    free(txt);
    /* a stale copy with no retry left: the precondition alone refuses it */
    CHECK_R(fault(c, "{\"conflict_next_update\": 10}"), 0);
    CHECK_R(kube_update_retry_from(c, &kube_persistentvolumeclaims, "default", "probe-t", NULL,
                                   full, add_test_finalizer, NULL, NULL, &st),
            KUBE_ECONFLICT);
    cJSON_Delete(claim);
    cJSON_Delete(status);
    cJSON_Delete(late);
    cJSON_Delete(full);
    cJSON_Delete(out);
    cJSON_Delete(after);
    kube_client_free(c);
    return 0;
}

static int scenario_paging(void)
{
    struct kube_client *c = client(0, 1);
    struct kube_list_opts o = {.limit = 5, .label_selector = "page"};
    struct kube_status st;
    cJSON *list = NULL;
    unsigned long before;

    for (int i = 0; i < 23; i++) {
        char name[32];
        cJSON *l;

        snprintf(name, sizeof(name), "page-%02d", i);
        l = lease(name, "x");
        cJSON_ReplaceItemInObject(
            cJSON_GetObjectItem(l, "metadata"), "labels",
            cJSON_Parse(i % 2 ? "{\"page\":\"odd\"}" : "{\"page\":\"even\"}"));
        CHECK_R(kube_create(c, &kube_leases, "default", l, NULL, &st), 0);
        cJSON_Delete(l);
    }
    before = kube_client_request_count(c);
    CHECK_R(kube_list_all(c, &kube_leases, "default", &o, &list, &st), 0);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(list, "items")) == 23);
    CHECK(kube_client_request_count(c) - before == 5);
    CHECK(kube_obj_rv(list) != NULL);
    cJSON_Delete(list);
    list = NULL;
    o.label_selector = "page=odd";
    CHECK_R(kube_list_all(c, &kube_leases, "default", &o, &list, &st), 0);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(list, "items")) == 11);
    cJSON_Delete(list);
    list = NULL;
    o.label_selector = NULL;
    o.field_selector = "metadata.name=page-07";
    CHECK_R(kube_list_all(c, &kube_leases, "default", &o, &list, &st), 0);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(list, "items")) == 1);
    cJSON_Delete(list);
    list = NULL;
    /* all namespaces */
    CHECK_R(kube_list_all(c, &kube_leases, NULL, NULL, &list, &st), 0);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(list, "items")) >= 23);
    cJSON_Delete(list);
    kube_client_free(c);
    return 0;
}

static int scenario_retry(void)
{
    struct kube_client *c = client(0, 1);
    struct kube_status st;
    double t0;

    CHECK_R(fault(c, "{\"error_rate\": 50, \"error_code\": 500, \"match\": \"leases\"}"), 0);
    for (int i = 0; i < 6; i++)
        CHECK_R(kube_list(c, &kube_leases, "default", NULL, NULL, &st), 0);
    CHECK(kube_client_request_count(c) >= 1 + 6 + 3);
    CHECK_R(fault(c, "{\"reset\": true, \"error_rate\": 100, \"error_code\": 429, "
                     "\"retry_after\": 1, \"match\": \"leases\"}"),
            0);
    t0 = kube__now();
    CHECK_R(kube_list(c, &kube_leases, "default", NULL, NULL, &st), -EBUSY);
    CHECK(st.http == 429 && st.retry_after == 1);
    /* 5 retries, each honouring Retry-After: 1 s */
    CHECK(kube__now() - t0 >= 4.5);
    CHECK_R(fault(c, "{\"reset\": true, \"error_rate\": 50, \"error_code\": 503, "
                     "\"match\": \"leases\"}"),
            0);
    {
        cJSON *l = lease("retry-a", "x");

        CHECK_R(kube_create(c, &kube_leases, "default", l, NULL, &st), 0);
        cJSON_Delete(l);
    }
    CHECK_R(fault(c, "{\"reset\": true}"), 0);
    kube_client_free(c);
    return 0;
}

static int scenario_ratelimit(void)
{
    struct kube_client *c = client(5, 2);
    double t0 = kube__now(), dt;

    for (int i = 0; i < 12; i++)
        CHECK_R(kube_list(c, &kube_namespaces, NULL, NULL, NULL, NULL), 0);
    dt = kube__now() - t0;
    fprintf(stderr, "12 requests at qps 5 burst 2: %.2fs\n", dt);
    CHECK(dt >= 1.9 && dt < 6);
    kube_client_free(c);
    return 0;
}

/* ---- informer ---- */

struct seen {
    pthread_mutex_t mu;
    int adds, updates, deletes;
};

static void on_add(void *ud, const cJSON *obj)
{
    struct seen *s = ud;

    (void)obj;
    pthread_mutex_lock(&s->mu);
    s->adds++;
    pthread_mutex_unlock(&s->mu);
}

static void on_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    struct seen *s = ud;

    (void)old_obj;
    (void)obj;
    pthread_mutex_lock(&s->mu);
    s->updates++;
    pthread_mutex_unlock(&s->mu);
}

static void on_delete(void *ud, const cJSON *obj)
{
    struct seen *s = ud;

    (void)obj;
    pthread_mutex_lock(&s->mu);
    s->deletes++;
    pthread_mutex_unlock(&s->mu);
}

/* Wait until the informer holds `name` with holder `want` (NULL = absent). */
static bool wait_for(struct kube_informer *inf, const char *name, const char *want)
{
    double deadline = kube__now() + 10;

    while (kube__now() < deadline) {
        cJSON *o = kube_informer_get(inf, "default", name);
        bool ok = want ? o && strcmp(holder(o), want) == 0 : !o;

        cJSON_Delete(o);
        if (ok)
            return true;
        sleep_s(0.02);
    }
    fprintf(stderr, "informer: %s never became %s\n", name, want ? want : "absent");
    return false;
}

static int create(struct kube_client *c, const char *name)
{
    cJSON *l = lease(name, "1");
    int r = kube_create(c, &kube_leases, "default", l, NULL, NULL);

    cJSON_Delete(l);
    return r;
}

static int scenario_informer(void)
{
    struct kube_client *c = client(0, 1), *w = client(0, 1);
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct kube_informer_handlers h = {on_add, on_update, on_delete, &s};
    struct kube_informer *inf;
    cJSON *p;
    unsigned lists, watches;
    double t0;

    CHECK_R(create(w, "inf-a"), 0);
    CHECK_R(create(w, "inf-b"), 0);
    inf = kube_informer_new(c, &kube_leases, "default", "probe=yes", NULL, &h);
    CHECK_R(kube_informer_start(inf), 0);
    CHECK_R(kube_informer_wait_synced(inf, 10), 0);
    CHECK(kube_informer_has_synced(inf));
    CHECK(s.adds == 2);

    /* live events */
    CHECK_R(create(w, "inf-c"), 0);
    CHECK(wait_for(inf, "inf-c", "1"));
    p = cJSON_Parse("{\"spec\":{\"holderIdentity\":\"2\"}}");
    CHECK_R(kube_patch(w, &kube_leases, "default", "inf-a", NULL, p, NULL, NULL), 0);
    CHECK(wait_for(inf, "inf-a", "2"));
    CHECK_R(kube_delete(w, &kube_leases, "default", "inf-b", NULL, NULL, NULL), 0);
    CHECK(wait_for(inf, "inf-b", NULL));
    CHECK(s.deletes == 1);

    /* a dropped stream: reconnect from the last resourceVersion, no relist */
    lists = kube_informer_lists(inf);
    watches = kube_informer_watches(inf);
    CHECK_R(fault(w, "{\"drop_watches\": true}"), 0);
    t0 = kube__now();
    while (kube_informer_watches(inf) == watches && kube__now() - t0 < 10)
        sleep_s(0.02);
    CHECK(kube_informer_watches(inf) > watches);
    CHECK_R(kube_patch(w, &kube_leases, "default", "inf-c", NULL, p, NULL, NULL), 0);
    CHECK(wait_for(inf, "inf-c", "2"));
    CHECK(kube_informer_lists(inf) == lists);

    /* a gap with history gone: the re-watch gets 410, the relist repairs the cache, including
     * an object deleted during the gap (synthetic delete) */
    CHECK_R(fault(w, "{\"expire_next_watch\": 1, \"drop_watches\": true}"), 0);
    CHECK_R(kube_delete(w, &kube_leases, "default", "inf-c", NULL, NULL, NULL), 0);
    CHECK_R(create(w, "inf-d"), 0);
    /* the cut is asynchronous: both events may still arrive on the old stream, so wait for
     * the relist itself (the re-watch is answered 410) before looking at the cache */
    t0 = kube__now();
    while (kube_informer_lists(inf) == lists && kube__now() - t0 < 10)
        sleep_s(0.02);
    CHECK(kube_informer_lists(inf) > lists);
    CHECK(wait_for(inf, "inf-c", NULL));
    CHECK(wait_for(inf, "inf-d", "1"));
    lists = kube_informer_lists(inf);

    /* compaction: every old resourceVersion is 410 Expired as an ERROR event */
    CHECK_R(fault(w, "{\"compact\": true, \"drop_watches\": true}"), 0);
    CHECK_R(kube_patch(w, &kube_leases, "default", "inf-d", NULL, p, NULL, NULL), 0);
    CHECK(wait_for(inf, "inf-d", "2"));
    {
        cJSON *all = kube_informer_list(inf);

        CHECK(cJSON_GetArraySize(all) == 2);
        cJSON_Delete(all);
    }
    fprintf(stderr, "informer: lists %u watches %u adds %d updates %d deletes %d\n",
            kube_informer_lists(inf), kube_informer_watches(inf), s.adds, s.updates, s.deletes);

    /* shutdown of an idle watch within ~1 s */
    sleep_s(0.3);
    t0 = kube__now();
    kube_informer_stop(inf);
    fprintf(stderr, "informer stopped in %.2fs\n", kube__now() - t0);
    CHECK(kube__now() - t0 < 2.0);
    kube_informer_free(inf);
    cJSON_Delete(p);
    kube_client_free(c);
    kube_client_free(w);
    return 0;
}

/* ---- leader election ---- */

struct cand {
    pthread_mutex_t mu;
    int started, stopped;
};

static void started(void *ud)
{
    struct cand *c = ud;

    pthread_mutex_lock(&c->mu);
    c->started++;
    pthread_mutex_unlock(&c->mu);
}

static void stopped(void *ud)
{
    struct cand *c = ud;

    pthread_mutex_lock(&c->mu);
    c->stopped++;
    pthread_mutex_unlock(&c->mu);
}

static bool wait_leader(struct kube_leader *l, double timeout)
{
    double deadline = kube__now() + timeout;

    while (kube__now() < deadline) {
        if (kube_leader_is_leader(l))
            return true;
        sleep_s(0.05);
    }
    return false;
}

static int scenario_leader(void)
{
    struct kube_client *c = client(0, 1);
    struct cand ca = {.mu = PTHREAD_MUTEX_INITIALIZER}, cb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct kube_leader_config cfa = {.namespace = "default",
                                     .name = "probe-leader",
                                     .identity = "cand-a",
                                     .lease_duration = 4,
                                     .renew_deadline = 3,
                                     .retry_period = 0.5,
                                     .on_started_leading = started,
                                     .on_stopped_leading = stopped,
                                     .ud = &ca};
    struct kube_leader_config cfb = cfa;
    struct kube_leader *a, *b;
    cJSON *l = NULL;
    double t0;

    cfb.identity = "cand-b";
    cfb.ud = &cb;
    a = kube_leader_new(c, &cfa);
    b = kube_leader_new(c, &cfb);
    CHECK(a && b);
    CHECK_R(kube_leader_start(a), 0);
    CHECK(wait_leader(a, 5));
    CHECK_R(kube_leader_start(b), 0);
    sleep_s(5); /* longer than the lease: A renews, so B must keep waiting */
    CHECK(kube_leader_is_leader(a));
    CHECK(!kube_leader_is_leader(b));
    CHECK_R(kube_get(c, &kube_leases, "default", "probe-leader", &l, NULL), 0);
    CHECK(l && strcmp(holder(l), "cand-a") == 0);
    cJSON_Delete(l);
    l = NULL;

    /* A stops cleanly and releases: B takes over at its next retry, not after the lease */
    t0 = kube__now();
    kube_leader_stop(a);
    CHECK(ca.started == 1 && ca.stopped == 1);
    CHECK(wait_leader(b, 3));
    fprintf(stderr, "leader handed over in %.2fs\n", kube__now() - t0);
    CHECK(kube__now() - t0 < 2.0);
    CHECK_R(kube_get(c, &kube_leases, "default", "probe-leader", &l, NULL), 0);
    CHECK(l && strcmp(holder(l), "cand-b") == 0);
    {
        const cJSON *tr = cJSON_GetObjectItem(cJSON_GetObjectItem(l, "spec"), "leaseTransitions");

        CHECK(cJSON_IsNumber(tr) && tr->valuedouble == 1);
    }
    cJSON_Delete(l);
    l = NULL;

    /* B loses the lease when the server refuses its renewals past the renew deadline */
    CHECK_R(fault(c, "{\"error_rate\": 100, \"error_code\": 500, \"match\": \"probe-leader\"}"), 0);
    t0 = kube__now();
    while (kube_leader_is_leader(b) && kube__now() - t0 < 30)
        sleep_s(0.1);
    CHECK(!kube_leader_is_leader(b));
    CHECK(cb.stopped == 1);
    CHECK_R(fault(c, "{\"reset\": true}"), 0);
    kube_leader_free(a);
    kube_leader_free(b);
    kube_client_free(c);
    return 0;
}

/* One authorised GET of a lease that does not exist: 404 proves that the connection (TLS name,
 * proxy) and the credential worked. */
static int scenario_get404(void)
{
    struct kube_client *c = client(0, 1);
    struct kube_status st;
    cJSON *got = NULL;
    int r;

    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "client: %s\n", be_last_error());
        return 1;
    }
    r = kube_get(c, &kube_leases, "default", "probe-none", &got, &st);
    if (r != -ENOENT)
        fprintf(stderr, "get: %d (%s) HTTP %ld: %s\n", r, strerror(-r), st.http, st.message);
    CHECK_R(r, -ENOENT);
    cJSON_Delete(got);
    kube_client_free(c);
    return 0;
}

static int plugin_runs(void)
{
    const char *dir = getenv("PLUGIN_STATE");
    char path[1024], buf[32] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/runs", dir ? dir : ".");
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = 0;
    fclose(f);
    return atoi(buf);
}

/* An exec plugin (tests/k8s/exec_plugin.py) whose first token is refused (401: run again) and
 * whose second expires after PLUGIN_EXPIRE_S: every request succeeds, and the plugin runs a third
 * time once the second credential has expired, not before. */
static int scenario_exec(void)
{
    struct kube_client *c = client(0, 1);
    struct kube_status st;
    double deadline = kube__now() + 30;
    int requests = 0;

    CHECK(c != NULL);
    if (!c)
        return 1;
    CHECK_R(kube_get(c, &kube_leases, "default", "probe-none", NULL, &st), -ENOENT);
    CHECK(plugin_runs() == 2); /* a 401 to the first token, then the second */
    CHECK_R(kube_get(c, &kube_leases, "default", "probe-none", NULL, &st), -ENOENT);
    CHECK(plugin_runs() == 2); /* cached */
    while (plugin_runs() < 3 && kube__now() < deadline) {
        int r = kube_get(c, &kube_leases, "default", "probe-none", NULL, &st);

        if (r != -ENOENT)
            fprintf(stderr, "get: %d HTTP %ld %s\n", r, st.http, st.message);
        CHECK_R(r, -ENOENT);
        requests++;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(plugin_runs() == 3);
    CHECK(requests > 1);
    kube_client_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(void);
    } scenarios[] = {
        {"crud", scenario_crud},         {"conflict", scenario_conflict},
        {"trimmed", scenario_trimmed},   {"paging", scenario_paging},
        {"retry", scenario_retry},       {"ratelimit", scenario_ratelimit},
        {"informer", scenario_informer}, {"leader", scenario_leader},
        {"get404", scenario_get404},     {"exec", scenario_exec},
    };
    int r;

    if (argc != 3) {
        fprintf(stderr, "usage: kube_probe KUBECONFIG SCENARIO\n");
        return 2;
    }
    log_setup(getenv("KUBE_PROBE_DEBUG") ? LOG_DEBUG : LOG_INFO, LOG_TEXT);
    if (kube_global_init() < 0)
        return 1;
    kube_config_init(&cfg);
    r = kube_config_load(&cfg, argv[1], NULL);
    if (r < 0) {
        fprintf(stderr, "kubeconfig: %s\n", be_last_error());
        return 1;
    }
    cfg.max_retries = 5;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (strcmp(argv[2], scenarios[i].name) == 0) {
            scenarios[i].fn();
            kube_config_release(&cfg);
            kube_global_cleanup();
            if (failures)
                fprintf(stderr, "%s: %d check(s) failed\n", argv[2], failures);
            else
                printf("ok %s\n", argv[2]);
            return failures ? 1 : 0;
        }
    fprintf(stderr, "unknown scenario %s\n", argv[2]);
    return 2;
}
