/*
 * The volume inventory (see inventory.h): decisions first, as pure functions with unit tests
 * (tests/unit/test_inventory.c), then the sync thread that applies them.
 *
 * Threading: one sync thread; inv_kick() only sets a flag under inv->mu and signals. inv->mu
 * is never held across a request, a backend call or a CSI handler. The OrdinalVolume informer
 * is this file's; the PV informer is borrowed from the provisioner.
 */
#include "inventory.h"
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube_util.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define INV_PAGE 256
#define INV_COALESCE_S 0.2
#define INV_RETRY_S 2.0

struct inv {
    struct inv_config cfg;
    struct kube_informer *ovs; /* owned */
    pthread_t thread;
    bool running;
    pthread_mutex_t mu; /* guards kicked; leaf lock */
    pthread_cond_t cond;
    bool kicked;
    atomic_bool stop;
    atomic_ulong syncs;
    bool crd_warned; /* sync thread only */
    bool retry_soon; /* sync thread only: a reclaim failed, look again in INV_RETRY_S */
    double usage_at; /* sync thread only: kube__now() of the last usedBytes refresh, 0 = never */
};

/* ---- decisions ---- */

const char *inv_state_name(enum inv_state s)
{
    switch (s) {
    case INV_BOUND:
        return "Bound";
    case INV_RELEASED:
        return "Released";
    case INV_RETAINED:
        return "Retained";
    case INV_ORPHANED:
        return "Orphaned";
    case INV_DELETING:
        return "Deleting";
    }
    return "Orphaned";
}

bool inv_pv_refers(const cJSON *pv, const char *driver, const char *volume_id)
{
    return streq(JSTR(pv, "spec", "csi", "driver"), driver) &&
           streq(JSTR(pv, "spec", "csi", "volumeHandle"), volume_id);
}

enum inv_state inv_state_of(const cJSON *pv)
{
    const char *phase, *policy;

    if (!pv)
        return INV_ORPHANED;
    if (JSTR(pv, "metadata", "deletionTimestamp"))
        return INV_DELETING;
    phase = JSTR(pv, "status", "phase");
    policy = JSTR(pv, "spec", "persistentVolumeReclaimPolicy");
    /* The API default is Retain (reference 5.3); Recycle is not ours to honour. */
    bool retain = !policy || strcmp(policy, "Delete") != 0;
    if (!phase || streq(phase, "Pending") || streq(phase, "Bound"))
        return INV_BOUND;
    /* Available: an admin cleared the claimRef of a retained volume; Failed: a Delete that did
     * not finish (the provisioner retries it). */
    if (streq(phase, "Released") || streq(phase, "Available") || streq(phase, "Failed"))
        return retain ? INV_RETAINED : INV_RELEASED;
    return INV_BOUND;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

int inv_ov_name(const struct be_volume *v, const char *node, char *buf, size_t n)
{
    int len;

    if (v->name[0] && kube_name_valid(v->name))
        len = snprintf(buf, n, "%s", v->name);
    else
        len =
            snprintf(buf, n, "ov-%016" PRIx64, fnv1a(fnv1a(14695981039346656037ULL, node), v->id));
    return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : len;
}

/* "dir:<rel>" -> "<rel>", "lvm:<vg>/<lv>[/<gen>]" -> "<vg>/<lv>": what an admin looks for. */
static void store_of(const struct be_volume *v, char *buf, size_t n)
{
    const char *c = strchr(v->id, ':');
    const char *s = c ? c + 1 : v->id;

    snprintf(buf, n, "%s", s);
    if (strncmp(v->id, "lvm:", 4) == 0) {
        char *first = strchr(buf, '/');
        char *second = first ? strchr(first + 1, '/') : NULL;
        if (second)
            *second = '\0';
    }
}

static void rfc3339(int64_t sec, char *buf, size_t n)
{
    time_t t = (time_t)sec;
    struct tm tm;

    if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, n, "1970-01-01T00:00:00Z");
}

cJSON *inv_desired(const struct be_volume *v, const char *backend, const char *node,
                   const cJSON *pv)
{
    char name[254], store[BE_ID_MAX + 1], ts[32];
    _cleanup_json_ cJSON *o = cJSON_CreateObject();
    cJSON *md, *spec, *status, *labels;
    enum inv_state st = inv_state_of(pv);

    if (!o || inv_ov_name(v, node, name, sizeof(name)) < 0)
        return NULL;
    store_of(v, store, sizeof(store));
    rfc3339(v->created_sec, ts, sizeof(ts));
    cJSON_AddStringToObject(o, "apiVersion", "ordinal.csi.dev/v1alpha1");
    cJSON_AddStringToObject(o, "kind", "OrdinalVolume");
    md = cJSON_AddObjectToObject(o, "metadata");
    spec = cJSON_AddObjectToObject(o, "spec");
    status = cJSON_AddObjectToObject(o, "status");
    if (!md || !spec || !status || !cJSON_AddStringToObject(md, "name", name))
        return NULL;
    /* A label for `-l ordinal.csi.dev/node=N` when the node name fits a label value. */
    if (strlen(node) <= 63 && (labels = cJSON_AddObjectToObject(md, "labels")))
        cJSON_AddStringToObject(labels, INV_LABEL_NODE, node);
    cJSON_AddStringToObject(spec, "key", v->key);
    cJSON_AddStringToObject(spec, "node", node);
    cJSON_AddStringToObject(spec, "backend", backend);
    cJSON_AddStringToObject(spec, "store", store);
    cJSON_AddStringToObject(spec, "volumeHandle", v->id);
    cJSON_AddNumberToObject(spec, "capacityBytes", (double)v->capacity_bytes);
    cJSON_AddStringToObject(status, "state", inv_state_name(st));
    cJSON_AddStringToObject(status, "createdAt", ts);
    if (pv) {
        const char *cns = JSTR(pv, "spec", "claimRef", "namespace");
        const char *cname = JSTR(pv, "spec", "claimRef", "name");
        const char *cuid = JSTR(pv, "spec", "claimRef", "uid");
        const char *pvname = JSTR(pv, "metadata", "name");

        if (pvname)
            cJSON_AddStringToObject(status, "persistentVolume", pvname);
        if (cns && cname) {
            cJSON *claim = cJSON_AddObjectToObject(status, "claim");
            if (claim) {
                cJSON_AddStringToObject(claim, "namespace", cns);
                cJSON_AddStringToObject(claim, "name", cname);
                if (cuid)
                    cJSON_AddStringToObject(claim, "uid", cuid);
            }
        }
    }
    if (v->abnormal && v->condition[0])
        cJSON_AddStringToObject(status, "message", v->condition);
    return TAKE_PTR(o);
}

enum inv_reclaim inv_reclaim_decide(const cJSON *ov, enum inv_state state)
{
    if (!streq(JSTR(ov, "metadata", "annotations", INV_ANN_RECLAIM), INV_RECLAIM_REQUESTED))
        return INV_RECLAIM_NONE;
    return state == INV_ORPHANED ? INV_RECLAIM_DELETE : INV_RECLAIM_REFUSE;
}

void inv_add_usage(cJSON *desired, const cJSON *ov, bool used_known, int64_t used, int64_t last_use)
{
    cJSON *status = cJSON_GetObjectItemCaseSensitive(desired, "status");
    const cJSON *have_used = JGET(ov, "status", "usedBytes");
    const char *have_last = JSTR(ov, "status", "lastUsedAt");
    double had = 0;
    char ts[32];

    if (!status)
        return;
    if (used_known && used >= 0)
        cJSON_AddNumberToObject(status, "usedBytes", (double)used);
    else if (cJSON_IsNumber(have_used) && have_used->valuedouble >= 0)
        cJSON_AddNumberToObject(status, "usedBytes", have_used->valuedouble);
    if (have_last && kube__parse_time(have_last, &had) == 0 && (int64_t)had > last_use)
        last_use = (int64_t)had;
    if (last_use > 0) {
        rfc3339(last_use, ts, sizeof(ts));
        cJSON_AddStringToObject(status, "lastUsedAt", ts);
    }
}

/* The status fields this node owns (inventory.h). */
static const char *const NODE_FIELDS[] = {"state",     "usedBytes",  "persistentVolume", "claim",
                                          "createdAt", "lastUsedAt", "message"};

cJSON *inv_status_patch(const cJSON *ov, const cJSON *desired)
{
    const cJSON *have = JGET(ov, "status"), *want = JGET(desired, "status");
    _cleanup_json_ cJSON *patch = cJSON_CreateObject();
    cJSON *st = patch ? cJSON_AddObjectToObject(patch, "status") : NULL;
    bool any = false;

    if (!st)
        return NULL;
    for (size_t i = 0; i < ARRAY_SIZE(NODE_FIELDS); i++) {
        const cJSON *h =
            cJSON_IsObject(have) ? cJSON_GetObjectItemCaseSensitive(have, NODE_FIELDS[i]) : NULL;
        const cJSON *w =
            cJSON_IsObject(want) ? cJSON_GetObjectItemCaseSensitive(want, NODE_FIELDS[i]) : NULL;
        if (!h && !w)
            continue;
        if (h && w && cJSON_Compare(h, w, true))
            continue;
        /* A claim object is replaced whole: a merge patch would keep a stale uid. */
        if (w && cJSON_IsObject(w) && h) {
            cJSON *n = cJSON_CreateObject(), *e;
            if (!n)
                return NULL;
            cJSON_ArrayForEach(e, h) if (!cJSON_GetObjectItemCaseSensitive(w, e->string))
                cJSON_AddNullToObject(n, e->string);
            cJSON_ArrayForEach(e, w) cJSON_AddItemToObject(n, e->string, cJSON_Duplicate(e, true));
            cJSON_AddItemToObject(st, NODE_FIELDS[i], n);
        } else if (w) {
            cJSON_AddItemToObject(st, NODE_FIELDS[i], cJSON_Duplicate(w, true));
        } else {
            cJSON_AddNullToObject(st, NODE_FIELDS[i]);
        }
        any = true;
    }
    return any ? TAKE_PTR(patch) : NULL;
}

/* ---- effects ---- */

static bool spec_differs(const cJSON *ov, const cJSON *desired)
{
    return !cJSON_Compare(JGET(ov, "spec"), JGET(desired, "spec"), true);
}

static const cJSON *find_pv(const cJSON *pvs, const char *driver, const char *id)
{
    const cJSON *pv;

    cJSON_ArrayForEach(pv, pvs) if (inv_pv_refers(pv, driver, id)) return pv;
    return NULL;
}

static const cJSON *find_ov(const cJSON *ovs, const char *name)
{
    const cJSON *o;

    cJSON_ArrayForEach(o, ovs) if (streq(kube_obj_name(o), name)) return o;
    return NULL;
}

static int delete_store(struct inv *inv, const char *volume_id, char *msg, size_t msglen)
{
    Csi__V1__DeleteVolumeRequest req;
    ProtobufCMessage *resp = NULL;
    struct csi_call *call = csi_call_new_detached();
    int r;

    /* the init function, not the INIT macro: its cast of a const string fails clang's
     * -Wcast-qual (the fuzz preset builds with clang) */
    csi__v1__delete_volume_request__init(&req);

    if (!call)
        return -ENOMEM;
    req.volume_id = (char *)(uintptr_t)volume_id;
    be_error_clear();
    r = csi_delete_volume(call, inv->cfg.svc, &req.base, &resp);
    if (r < 0) {
        const char *m = csi_call_message(call);
        snprintf(msg, msglen, "%s", m[0] ? m : be_last_error()[0] ? be_last_error() : strerror(-r));
    }
    csi_call_free_detached(call);
    return r;
}

static int patch_status(struct inv *inv, const char *name, const cJSON *patch)
{
    struct kube_status st;
    cJSON *out = NULL;
    int r;

    r = kube_patch(inv->cfg.client, &kube_ordinalvolumes, NULL, name, "status", patch, &out, &st);

    cJSON_Delete(out);
    return r;
}

static int set_message(struct inv *inv, const char *name, const char *state, const char *msg)
{
    _cleanup_json_ cJSON *p = cJSON_CreateObject();
    cJSON *st = p ? cJSON_AddObjectToObject(p, "status") : NULL;

    if (!st)
        return -ENOMEM;
    if (state)
        cJSON_AddStringToObject(st, "state", state);
    cJSON_AddStringToObject(st, "message", msg);
    return patch_status(inv, name, p);
}

/*
 * A reclaim of an Orphaned store: confirm live that its owner PV is gone (the cache may be
 * behind), mark Deleting, DeleteVolume, then delete the OrdinalVolume. Returns 0 when the OV is
 * gone, 1 when it stays (refused or failed; its status says why).
 */
static int reclaim(struct inv *inv, const struct be_volume *v, const char *ovname)
{
    struct kube_status st;
    cJSON *pv = NULL, *out = NULL;
    char msg[512];
    int r;

    if (v->name[0] && kube_name_valid(v->name)) {
        r = kube_get(inv->cfg.client, &kube_persistentvolumes, NULL, v->name, &pv, &st);
        bool refers = r == 0 && inv_pv_refers(pv, inv->cfg.svc->driver_name, v->id);
        cJSON_Delete(pv);
        if (r < 0 && r != -ENOENT)
            return 1; /* cannot tell: look again next sync */
        if (refers) {
            snprintf(msg, sizeof(msg), "reclaim refused: PersistentVolume %s refers to this store",
                     v->name);
            set_message(inv, ovname, NULL, msg);
            return 1;
        }
    }
    set_message(inv, ovname, "Deleting", "reclaim requested: deleting the store");
    r = delete_store(inv, v->id, msg, sizeof(msg));
    if (r < 0) {
        char m2[600];
        snprintf(m2, sizeof(m2), "reclaim failed: %s", msg);
        set_message(inv, ovname, "Orphaned", m2);
        log_warn("inventory: reclaim of %s (%s): %s", ovname, v->id, msg);
        inv->retry_soon = true; /* the request stands: try again soon, not in a period */
        return 1;
    }
    log_info("inventory: reclaimed orphaned store %s (%s)", v->id, ovname);
    r = kube_delete(inv->cfg.client, &kube_ordinalvolumes, NULL, ovname, NULL, &out, &st);
    cJSON_Delete(out);
    return r == 0 || r == -ENOENT ? 0 : 1;
}

/* One store: create, update or reclaim its OrdinalVolume. Returns the OV name in seen. */
static void sync_store(struct inv *inv, struct backend *be, const struct be_volume *v, bool refresh,
                       const cJSON *pvs, const cJSON *ovs, cJSON *seen)
{
    const char *backend = be->ops->name;
    const char *node = inv->cfg.svc->node_id, *driver = inv->cfg.svc->driver_name;
    const cJSON *pv = find_pv(pvs, driver, v->id);
    _cleanup_json_ cJSON *want = inv_desired(v, backend, node, pv);
    struct kube_status st;
    const char *name;
    const cJSON *cur;
    cJSON *out = NULL;
    enum inv_state state = inv_state_of(pv);

    if (!want)
        return;
    name = kube_obj_name(want);
    cJSON_AddTrueToObject(seen, name);
    cur = find_ov(ovs, name);
    if (cur && !streq(JSTR(cur, "spec", "node"), node)) {
        log_debug("inventory: OrdinalVolume %s belongs to node %s, not ours", name,
                  JSTR(cur, "spec", "node") ? JSTR(cur, "spec", "node") : "?");
        return;
    }
    /* usedBytes: measured once per period (it may walk the store), and when the store was
     * published or unpublished since the OV's lastUsedAt (its data changes while in use: an
     * unpublish gives the final figure at once); else the last value */
    int64_t used = -1, last_use = csi_uses_get(inv->cfg.svc->uses, v->id);
    double shown = 0;
    bool used_known = false;
    const char *shown_ts = JSTR(cur, "status", "lastUsedAt");
    bool used_since = last_use > 0 && (!shown_ts || kube__parse_time(shown_ts, &shown) < 0 ||
                                       (double)last_use > shown);
    if ((refresh || used_since || !JGET(cur, "status", "usedBytes")) && be->ops->usage) {
        be_error_clear();
        used_known = be->ops->usage(be, v->id, &used) == 0;
        if (!used_known)
            log_debug("inventory: usage of %s: %s", v->id, be_last_error());
    }
    inv_add_usage(want, cur, used_known, used, last_use);
    switch (cur ? inv_reclaim_decide(cur, state) : INV_RECLAIM_NONE) {
    case INV_RECLAIM_DELETE:
        reclaim(inv, v, name);
        return;
    case INV_RECLAIM_REFUSE: {
        char msg[512];
        snprintf(msg, sizeof(msg), "reclaim refused: PersistentVolume %s refers to this store",
                 JSTR(pv, "metadata", "name") ? JSTR(pv, "metadata", "name") : "?");
        cJSON *status = cJSON_GetObjectItemCaseSensitive(want, "status");
        cJSON_DeleteItemFromObjectCaseSensitive(status, "message");
        cJSON_AddStringToObject(status, "message", msg);
        break;
    }
    case INV_RECLAIM_NONE:
        break;
    }
    if (!cur) {
        cJSON *status = cJSON_DetachItemFromObjectCaseSensitive(want, "status");
        int r;

        r = kube_create(inv->cfg.client, &kube_ordinalvolumes, NULL, want, &out, &st);
        cJSON_AddItemToObject(want, "status", status);
        if (r < 0) {
            /* -EEXIST: made meanwhile (by us, or another node's of that name): the cache shows
             * it on the next sync, and the node check above decides then. */
            log_debug("inventory: create OrdinalVolume %s: %s", name, st.message);
            cJSON_Delete(out);
            return;
        }
        cur = out;
    } else if (spec_differs(cur, want)) {
        _cleanup_json_ cJSON *p = cJSON_CreateObject();
        if (p) {
            cJSON_AddItemToObject(p, "spec", cJSON_Duplicate(JGET(want, "spec"), true));
            kube_patch(inv->cfg.client, &kube_ordinalvolumes, NULL, name, NULL, p, &out, &st);
        }
    }
    _cleanup_json_ cJSON *sp = inv_status_patch(cur, want);
    if (sp)
        patch_status(inv, name, sp);
    cJSON_Delete(out);
}

/* Whether ov names one of our backends (so a store that is gone from it is really gone). */
static bool ours(struct inv *inv, const cJSON *ov)
{
    const char *b = JSTR(ov, "spec", "backend");

    if (!streq(JSTR(ov, "spec", "node"), inv->cfg.svc->node_id))
        return false;
    for (size_t i = 0; i < inv->cfg.svc->n_backends; i++)
        if (streq(inv->cfg.svc->backends[i]->ops->name, b))
            return true;
    return false;
}

static void sync_once(struct inv *inv)
{
    struct csi_service *svc = inv->cfg.svc;
    _cleanup_json_ cJSON *pvs = kube_informer_list(inv->cfg.pvs);
    _cleanup_json_ cJSON *ovs = kube_informer_list(inv->ovs);
    _cleanup_json_ cJSON *seen = cJSON_CreateObject();
    bool complete = true;
    const cJSON *ov;
    double period = inv->cfg.period_s > 0 ? inv->cfg.period_s : 30.0;
    bool refresh = inv->usage_at == 0 || kube__now() - inv->usage_at >= period;

    if (!pvs || !ovs || !seen)
        return;
    if (refresh)
        inv->usage_at = kube__now();
    for (size_t i = 0; i < svc->n_backends && !atomic_load(&inv->stop); i++) {
        struct backend *be = svc->backends[i];
        char after[BE_ID_MAX + 1] = "";

        for (;;) {
            struct be_volume_page page = {0};
            int r = be->ops->list(be, after, INV_PAGE, &page);
            if (r < 0) {
                log_debug("inventory: %s list: %s", be->ops->name, be_last_error());
                complete = false;
                break;
            }
            for (size_t k = 0; k < page.n && !atomic_load(&inv->stop); k++)
                sync_store(inv, be, &page.items[k], refresh, pvs, ovs, seen);
            bool more = page.more && page.n > 0;
            if (more)
                snprintf(after, sizeof(after), "%s", page.items[page.n - 1].id);
            be_volume_page_free(&page);
            if (!more)
                break;
        }
    }
    if (!complete || atomic_load(&inv->stop))
        return;
    /* Stores that are gone: their OrdinalVolume goes too. */
    cJSON_ArrayForEach(ov, ovs)
    {
        const char *name = kube_obj_name(ov);
        struct kube_status st;
        cJSON *out = NULL;

        if (!name || !ours(inv, ov) || cJSON_GetObjectItemCaseSensitive(seen, name))
            continue;
        csi_uses_forget(svc->uses, JSTR(ov, "spec", "volumeHandle"));
        kube_delete(inv->cfg.client, &kube_ordinalvolumes, NULL, name, NULL, &out, &st);
        cJSON_Delete(out);
    }
}

static void ov_changed(void *ud, const cJSON *obj)
{
    (void)obj;
    inv_kick(ud);
}

static void ov_updated(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    /* Only a reclaim request (an annotation) needs a prompt look; status writes are ours. */
    const char *a = JSTR(old_obj, "metadata", "annotations", INV_ANN_RECLAIM);
    const char *b = JSTR(obj, "metadata", "annotations", INV_ANN_RECLAIM);

    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        inv_kick(ud);
}

/* Wait until kicked (then INV_COALESCE_S more) or the period is over. */
static void wait_turn(struct inv *inv, double period)
{
    double deadline = kube__now() + period;

    pthread_mutex_lock(&inv->mu);
    while (!inv->kicked && !atomic_load(&inv->stop) && kube__now() < deadline)
        kube__cond_wait_until(&inv->cond, &inv->mu, deadline);
    bool kicked = inv->kicked;
    pthread_mutex_unlock(&inv->mu);
    if (kicked && !atomic_load(&inv->stop)) {
        deadline = kube__now() + INV_COALESCE_S;
        pthread_mutex_lock(&inv->mu);
        while (!atomic_load(&inv->stop) && kube__now() < deadline)
            kube__cond_wait_until(&inv->cond, &inv->mu, deadline);
        pthread_mutex_unlock(&inv->mu);
    }
    pthread_mutex_lock(&inv->mu);
    inv->kicked = false;
    pthread_mutex_unlock(&inv->mu);
}

static void *inv_thread(void *arg)
{
    struct inv *inv = arg;
    double period = inv->cfg.period_s > 0 ? inv->cfg.period_s : 30.0;

    while (!atomic_load(&inv->stop)) {
        if (kube_informer_wait_synced(inv->cfg.pvs, 0.25) == -ETIMEDOUT)
            continue;
        if (kube_informer_wait_synced(inv->ovs, 0.25) == -ETIMEDOUT) {
            if (!inv->crd_warned) {
                log_info("inventory: waiting for the OrdinalVolume API (is the CRD installed?)");
                inv->crd_warned = true;
            }
            continue;
        }
        break;
    }
    while (!atomic_load(&inv->stop)) {
        inv->retry_soon = false;
        sync_once(inv);
        atomic_fetch_add(&inv->syncs, 1);
        wait_turn(inv, inv->retry_soon && INV_RETRY_S < period ? INV_RETRY_S : period);
    }
    return NULL;
}

static void use_noted(void *ud)
{
    inv_kick(ud);
}

void inv_kick(struct inv *inv)
{
    if (!inv)
        return;
    pthread_mutex_lock(&inv->mu);
    inv->kicked = true;
    pthread_cond_broadcast(&inv->cond);
    pthread_mutex_unlock(&inv->mu);
}

unsigned long inv_syncs(const struct inv *inv)
{
    return inv ? atomic_load(&((struct inv *)(uintptr_t)inv)->syncs) : 0;
}

void inv_halt(struct inv *inv)
{
    if (!inv)
        return;
    csi_uses_set_notify(inv->cfg.svc->uses, NULL, NULL);
    atomic_store(&inv->stop, true);
    inv_kick(inv);
    if (inv->running)
        pthread_join(inv->thread, NULL);
    inv->running = false;
    if (inv->ovs)
        kube_informer_stop(inv->ovs);
}

void inv_stop(struct inv *inv)
{
    if (!inv)
        return;
    inv_halt(inv);
    kube_informer_free(inv->ovs);
    pthread_cond_destroy(&inv->cond);
    pthread_mutex_destroy(&inv->mu);
    free(inv);
}

struct inv *inv_start(const struct inv_config *cfg)
{
    struct inv *inv = calloc(1, sizeof(*inv));
    struct kube_informer_handlers h;

    if (!inv)
        return NULL;
    inv->cfg = *cfg;
    atomic_init(&inv->stop, false);
    atomic_init(&inv->syncs, 0);
    pthread_mutex_init(&inv->mu, NULL);
    if (kube__cond_init(&inv->cond) != 0) {
        pthread_mutex_destroy(&inv->mu);
        free(inv);
        return NULL;
    }
    h = (struct kube_informer_handlers){ov_changed, ov_updated, ov_changed, inv};
    inv->ovs = kube_informer_new(cfg->client, &kube_ordinalvolumes, NULL, NULL, NULL, &h);
    if (!inv->ovs || kube_informer_start(inv->ovs) < 0 ||
        pthread_create(&inv->thread, NULL, inv_thread, inv) != 0) {
        log_error("inventory: start-up failed");
        inv_stop(inv);
        return NULL;
    }
    inv->running = true;
    /* a publish or unpublish updates lastUsedAt soon (coalesced), not a period later */
    csi_uses_set_notify(cfg->svc->uses, use_noted, inv);
    return inv;
}
