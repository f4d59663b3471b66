/*
 * The built-in provisioner (see provision.h for the rules it follows).
 *
 * Keys in the work queue: "c:<namespace>/<name>" for a claim, "v:<name>" for a PV. A claim sync
 * provisions (finalizer, CreateVolume, PV, finalizer off, events) or, for a claim deleted while
 * it was being provisioned, cleans up; a PV sync releases the volume of a Released PV with
 * reclaim policy Delete (DeleteVolume, PV delete, finalizer off) and keeps the PV's protection
 * finalizer in line with its policy.
 *
 * Start-up never waits for the API server: prov_start() starts the informers and returns; a
 * starter thread waits (as long as it takes, interruptibly) until all three caches have listed
 * once and only then starts the workers, so the daemon serves CSI from the first instant and
 * provisions once Kubernetes answers. Events go through a kube_recorder: a worker never waits
 * for one.
 *
 * Threading: informer handlers (informer threads) only queue keys. Workers (kube_queue_run) sync
 * one key each at a time; the queue never hands one key to two workers. Objects read from the
 * informers are copies owned by the worker. No lock of ours is held across an API call.
 */
#include "provision.h"
#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube_informer.h"
#include "kube_queue.h"
#include "kube_recorder.h"
#include "locks.h"
#include "log.h"
#include "metrics.h"
#include "status.h"
#include "util.h"

#define PROV_IDENTITY_KEY "storage.kubernetes.io/csiProvisionerIdentity"
#define PROV_CLASS_ANN "volume.beta.kubernetes.io/storage-class"
#define PROV_DEFAULT_SIZE (1LL << 30)

struct prov {
    struct prov_config cfg;
    struct kube_informer *claims, *pvs, *classes;
    struct kube_queue *queue;
    struct kube_recorder *events;
    pthread_t starter;
    bool starter_running;
    atomic_bool stop, synced;
    char identity[160]; /* PROV_IDENTITY_KEY value: start time, driver, node */
};

static bool has_finalizer(const cJSON *obj, const char *name)
{
    const cJSON *f = JGET(obj, "metadata", "finalizers"), *e;

    cJSON_ArrayForEach(e, f) if (jstr(e) && strcmp(jstr(e), name) == 0) return true;
    return false;
}

/* ---- quantities ---- */

int prov_parse_quantity(const char *s, int64_t *ret)
{
    static const struct {
        const char *suffix;
        long double mult;
    } suffixes[] = {
        {"Ki", 1024.0L},
        {"Mi", 1048576.0L},
        {"Gi", 1073741824.0L},
        {"Ti", 1099511627776.0L},
        {"Pi", 1125899906842624.0L},
        {"Ei", 1152921504606846976.0L},
        {"k", 1e3L},
        {"M", 1e6L},
        {"G", 1e9L},
        {"T", 1e12L},
        {"P", 1e15L},
        {"E", 1e18L},
        {"m", 1e-3L},
        {"", 1.0L},
    };
    long double mant = 0, frac_scale = 1, mult = 1;
    const char *p = s;
    bool digits = false;

    if (!s || !*s || strlen(s) > 64)
        return -EINVAL;
    if (*p == '+')
        p++;
    while (isdigit((unsigned char)*p)) {
        mant = mant * 10 + (*p++ - '0');
        digits = true;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            frac_scale /= 10;
            mant += (*p++ - '0') * frac_scale;
            digits = true;
        }
    }
    if (!digits)
        return -EINVAL;
    if ((*p == 'e' || *p == 'E') &&
        (isdigit((unsigned char)p[1]) ||
         ((p[1] == '+' || p[1] == '-') && isdigit((unsigned char)p[2])))) {
        int sign = 1, exp = 0;
        p++;
        if (*p == '+' || *p == '-')
            sign = *p++ == '-' ? -1 : 1;
        while (isdigit((unsigned char)*p)) {
            exp = exp * 10 + (*p++ - '0');
            if (exp > 40)
                return -EINVAL;
        }
        for (int i = 0; i < exp; i++)
            mult = sign > 0 ? mult * 10 : mult / 10;
    } else {
        size_t i;
        for (i = 0; i < ARRAY_SIZE(suffixes); i++)
            if (strcmp(p, suffixes[i].suffix) == 0)
                break;
        if (i == ARRAY_SIZE(suffixes))
            return -EINVAL;
        mult = suffixes[i].mult;
        p += strlen(suffixes[i].suffix);
    }
    if (*p)
        return -EINVAL;
    long double v = mant * mult;
    if (v > (long double)INT64_MAX)
        return -EINVAL;
    int64_t n = (int64_t)v;
    if ((long double)n < v)
        n++; /* round up to a whole byte */
    *ret = n;
    return 0;
}

void prov_format_quantity(int64_t bytes, char *buf, size_t n)
{
    static const char *const suffixes[] = {"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"};

    for (int i = 0; i < 6 && bytes > 0; i++) {
        int64_t unit = (int64_t)1 << (10 * (6 - i));
        if (bytes % unit == 0) {
            snprintf(buf, n, "%" PRId64 "%s", bytes / unit, suffixes[i]);
            return;
        }
    }
    snprintf(buf, n, "%" PRId64, bytes);
}

/* ---- API writes ---- */

static void now_rfc3339(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Record an Event on the claim: queued to the recorder, never waited for (best effort). */
static void claim_event(struct prov *p, const cJSON *claim, const char *type, const char *reason,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void claim_event(struct prov *p, const cJSON *claim, const char *type, const char *reason,
                        const char *fmt, ...)
{
    const char *ns = JSTR(claim, "metadata", "namespace"), *name = JSTR(claim, "metadata", "name");
    char msg[512], ts[32], ename[320], component[128];
    struct timespec now;
    va_list ap;

    if (!ns || !name)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(ename, sizeof(ename), "%.240s.%llx%05lx", name, (unsigned long long)now.tv_sec,
             (unsigned long)(now.tv_nsec / 10000) & 0xfffff);
    now_rfc3339(ts, sizeof(ts));
    snprintf(component, sizeof(component), "%s_%s", p->cfg.svc->driver_name, p->cfg.svc->node_id);

    cJSON *ev = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(ev, "metadata");
    cJSON_AddStringToObject(md, "name", ename);
    cJSON_AddStringToObject(md, "namespace", ns);
    cJSON *io = cJSON_AddObjectToObject(ev, "involvedObject");
    cJSON_AddStringToObject(io, "kind", "PersistentVolumeClaim");
    cJSON_AddStringToObject(io, "apiVersion", "v1");
    cJSON_AddStringToObject(io, "namespace", ns);
    cJSON_AddStringToObject(io, "name", name);
    if (JSTR(claim, "metadata", "uid"))
        cJSON_AddStringToObject(io, "uid", JSTR(claim, "metadata", "uid"));
    if (JSTR(claim, "metadata", "resourceVersion"))
        cJSON_AddStringToObject(io, "resourceVersion", JSTR(claim, "metadata", "resourceVersion"));
    cJSON_AddStringToObject(ev, "reason", reason);
    cJSON_AddStringToObject(ev, "message", msg);
    cJSON_AddStringToObject(ev, "type", type);
    cJSON *src = cJSON_AddObjectToObject(ev, "source");
    cJSON_AddStringToObject(src, "component", component);
    cJSON_AddStringToObject(ev, "firstTimestamp", ts);
    cJSON_AddStringToObject(ev, "lastTimestamp", ts);
    cJSON_AddNumberToObject(ev, "count", 1);
    cJSON_AddStringToObject(ev, "reportingComponent", p->cfg.svc->driver_name);
    cJSON_AddStringToObject(ev, "reportingInstance", p->cfg.svc->node_id);
    kube_recorder_post(p->events, ns, ev);
}

struct finalizer_edit {
    const char *name;
    bool add;
};

/* kube_update_retry mutation: add or remove one finalizer. Adding to an object being deleted is
 * refused (the API server forbids it): -ECANCELED. */
static int edit_finalizer(cJSON *obj, void *ud)
{
    const struct finalizer_edit *e = ud;
    cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    cJSON *f = cJSON_GetObjectItemCaseSensitive(md, "finalizers");
    bool present = has_finalizer(obj, e->name);

    if (!cJSON_IsObject(md))
        return -EBADMSG;
    if (e->add) {
        if (present)
            return KUBE_MUTATE_SKIP;
        if (cJSON_GetObjectItemCaseSensitive(md, "deletionTimestamp"))
            return -ECANCELED;
        if (!cJSON_IsArray(f)) {
            cJSON_DeleteItemFromObjectCaseSensitive(md, "finalizers");
            f = cJSON_AddArrayToObject(md, "finalizers");
        }
        if (!f || !cJSON_AddItemToArray(f, cJSON_CreateString(e->name)))
            return -ENOMEM;
        return 0;
    }
    if (!present)
        return KUBE_MUTATE_SKIP;
    for (int i = cJSON_GetArraySize(f) - 1; i >= 0; i--) {
        const char *v = jstr(cJSON_GetArrayItem(f, i));
        if (v && strcmp(v, e->name) == 0)
            cJSON_DeleteItemFromArray(f, i);
    }
    return 0;
}

/*
 * Add or remove a finalizer. cached (borrowed, may be NULL) is the informer's copy: when it says
 * a write is needed, the first PUT is made from it (its resourceVersion makes that a safe
 * compare-and-swap; a stale copy costs a 409 and a fresh read); when it says nothing is to be
 * done, the object is read afresh first, since a stale copy must never skip a needed write.
 */
static int set_finalizer(struct prov *p, const struct kube_resource *res, const char *ns,
                         const char *name, const char *finalizer, bool add, const cJSON *cached)
{
    struct finalizer_edit e = {.name = finalizer, .add = add};
    const cJSON *base = cached && has_finalizer(cached, finalizer) != add ? cached : NULL;
    int r = kube_update_retry_from(p->cfg.client, res, ns, name, NULL, base, edit_finalizer, &e,
                                   NULL, NULL);

    if (r == -ENOENT && !add)
        return 0; /* gone: nothing holds it any more */
    return r;
}

struct node_edit {
    const char *node; /* NULL = remove the annotation */
};

/* Set selected-node to our node unless another node got there first (then SKIP), or remove it. */
static int edit_selected_node(cJSON *obj, void *ud)
{
    const struct node_edit *e = ud;
    cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
    const char *cur = jstr(cJSON_GetObjectItemCaseSensitive(ann, PROV_ANN_SELECTED_NODE));

    if (!cJSON_IsObject(md))
        return -EBADMSG;
    if (!e->node) {
        if (!cur)
            return KUBE_MUTATE_SKIP;
        cJSON_DeleteItemFromObjectCaseSensitive(ann, PROV_ANN_SELECTED_NODE);
        return 0;
    }
    if (cur || JSTR(obj, "spec", "volumeName") ||
        cJSON_GetObjectItemCaseSensitive(md, "deletionTimestamp"))
        return KUBE_MUTATE_SKIP; /* someone else won, or it no longer needs a node */
    if (!cJSON_IsObject(ann)) {
        cJSON_DeleteItemFromObjectCaseSensitive(md, "annotations");
        ann = cJSON_AddObjectToObject(md, "annotations");
    }
    if (!ann || !cJSON_AddStringToObject(ann, PROV_ANN_SELECTED_NODE, e->node))
        return -ENOMEM;
    return 0;
}

/* ---- CSI calls, in process ---- */

/* Run a handler; on failure log-worthy text in msg. Returns the handler's result. */
static int run_csi(struct prov *p, csi_handler_fn fn, const ProtobufCMessage *req,
                   struct csi_call **ret_call, ProtobufCMessage **ret_resp, char *msg,
                   size_t msglen)
{
    struct csi_call *call = csi_call_new_detached();
    int r;

    if (!call)
        return -ENOMEM;
    be_error_clear();
    r = fn(call, p->cfg.svc, req, ret_resp);
    if (r < 0) {
        const char *m = csi_call_message(call);
        snprintf(msg, msglen, "%s", m[0] ? m : be_last_error()[0] ? be_last_error() : strerror(-r));
    }
    *ret_call = call;
    return r;
}

/*
 * The store whose key is key, from any backend, as the backend has it now (current id and
 * owner): 0, -ENOENT when no backend has one, or another error when a backend could not say
 * (the caller must not act as if there were none).
 */
static int find_volume_by_key(struct prov *p, const char *key, struct be_volume *ret)
{
    struct csi_service *svc = p->cfg.svc;
    int err = -ENOENT;

    for (size_t i = 0; i < svc->n_backends; i++) {
        struct backend *be = svc->backends[i];
        struct be_volume_page page = {0};
        int r;

        if (be->ops->lookup_key) {
            r = be->ops->lookup_key(be, key, ret);
            if (r == 0)
                return 0;
            if (r != -ENOENT)
                err = r;
            continue;
        }
        r = be->ops->list(be, "", 0, &page);
        if (r < 0) {
            err = r;
            continue;
        }
        for (size_t k = 0; k < page.n; k++)
            if (strcmp(page.items[k].key, key) == 0) {
                *ret = page.items[k];
                be_volume_page_free(&page);
                return 0;
            }
        be_volume_page_free(&page);
    }
    return err;
}

static int delete_volume(struct prov *p, const char *volume_id, char *msg, size_t msglen)
{
    Csi__V1__DeleteVolumeRequest req;
    ProtobufCMessage *resp = NULL;
    struct csi_call *call = NULL;
    int r;

    /* the init function, not the INIT macro: its cast of a const string fails clang's
     * -Wcast-qual (the fuzz preset builds with clang) */
    csi__v1__delete_volume_request__init(&req);

    req.volume_id = (char *)(uintptr_t)volume_id;
    r = run_csi(p, csi_delete_volume, &req.base, &call, &resp, msg, msglen);
    csi_call_free_detached(call);
    return r;
}

/* ---- provisioning marks ---- */

/* The backend a claim of class sc is made on, as CreateVolume will choose it (NULL: none). */
static struct backend *class_backend(struct prov *p, const cJSON *sc)
{
    struct csi_service *svc = p->cfg.svc;
    const char *name = JSTR(sc, "parameters", CSI_PARAM_BACKEND);
    struct backend *be;

    if (name)
        return csi_backend_named(svc, name);
    be = csi_backend_named(svc, svc->default_backend ? svc->default_backend : "dir");
    return be ? be : svc->n_backends > 0 ? svc->backends[0] : NULL;
}

/* Clear the provisioning mark of store vol, under its key's operation lock (CreateVolume's):
 * 0, -EAGAIN when an operation holds it (the caller retries), or the backend's error. */
static int settle_store(struct prov *p, const struct be_volume *vol)
{
    struct csi_service *svc = p->cfg.svc;
    struct backend *be = csi_backend_for_id(svc, vol->id);
    char lk[BE_KEY_MAX + 4];
    struct lock_req lr = {.key = lk, .shared = false};
    int r;

    if (!be || !be->ops->settle || !vol->provisioning_uid[0])
        return 0;
    snprintf(lk, sizeof(lk), "k:%s", vol->key);
    r = lock_take(svc->locks, &lr, 1, NULL);
    if (r < 0)
        return r;
    be_error_clear();
    r = be->ops->settle(be, vol->id);
    lock_give(svc->locks, &lr, 1);
    if (r == -ENOENT)
        r = 0; /* deleted or taken over meanwhile: no mark of this owner left */
    if (r < 0)
        log_warn("volume %s: clearing its provisioning mark: %s", vol->id,
                 be_last_error()[0] ? be_last_error() : strerror(-r));
    else
        log_debug("volume %s: provisioning mark cleared", vol->id);
    return r;
}

/* The store with key key on a backend that keeps provisioning marks, if it carries one. */
static bool marked_store(struct prov *p, const char *key, struct be_volume *ret)
{
    struct csi_service *svc = p->cfg.svc;

    for (size_t i = 0; i < svc->n_backends; i++) {
        struct backend *be = svc->backends[i];
        if (be->ops->settle && be->ops->lookup_key && be->ops->lookup_key(be, key, ret) == 0)
            return ret->provisioning_uid[0] != '\0';
    }
    return false;
}

/*
 * A store still marked as being provisioned for a claim other than `uid` (NULL: no claim of that
 * name in the cache): the claim whose CreateVolume made it may be gone. Decided on fresh reads,
 * never on the cache: if the claim of the mark's uid is gone (or being deleted) and no PV of the
 * store's owner name exists, the store never reached anyone and is deleted; if that PV exists the
 * mark is cleared (the PV owns the store: released by its reclaim policy). A store without a
 * mark (every store whose PV was once seen, Retained ones among them) is never touched here.
 */
static int orphan_check(struct prov *p, const char *ns, const char *name, const char *uid)
{
    char key[BE_KEY_MAX + 1], msg[512];
    struct be_volume store;
    cJSON *live = NULL;
    int r;

    if (snprintf(key, sizeof(key), "%s/%s", ns, name) >= (int)sizeof(key) ||
        !marked_store(p, key, &store))
        return 0;
    if (uid && strcmp(store.provisioning_uid, uid) == 0)
        return 0; /* this claim's own: its sync goes on from the mark */
    r = kube_get(p->cfg.client, &kube_persistentvolumeclaims, ns, name, &live, NULL);
    if (r < 0 && r != -ENOENT)
        return r;
    bool alive = r == 0 && JSTR(live, "metadata", "uid") &&
                 strcmp(JSTR(live, "metadata", "uid"), store.provisioning_uid) == 0 &&
                 !JGET(live, "metadata", "deletionTimestamp");
    cJSON_Delete(live);
    live = NULL;
    if (alive)
        return 0; /* the cache is behind: the claim's own sync follows */
    r = kube_name_valid(store.name)
            ? kube_get(p->cfg.client, &kube_persistentvolumes, NULL, store.name, &live, NULL)
            : -ENOENT;
    cJSON_Delete(live);
    if (r == 0)
        return settle_store(p, &store); /* its PV exists: the PV decides from now on */
    if (r != -ENOENT)
        return r;
    r = delete_volume(p, store.id, msg, sizeof(msg));
    if (r < 0) {
        log_warn("volume %s: its claim %s (uid %s) is gone before its PersistentVolume was "
                 "made; deleting it: %s",
                 store.id, key, store.provisioning_uid, msg);
        return r;
    }
    log_info("volume %s deleted: its claim %s (uid %s) was gone before its PersistentVolume was "
             "made",
             store.id, key, store.provisioning_uid);
    return 0;
}

/* The sweep (start-up, then every PROV_SWEEP_S): every marked store's claim key is synced, so
 * that orphan_check judges it. Costs no API request for a store without a mark. */
#define PROV_SWEEP_KEY "s:sweep"
#define PROV_SWEEP_S 300.0

static int sweep(struct prov *p)
{
    struct csi_service *svc = p->cfg.svc;
    char qkey[BE_KEY_MAX + 4];
    size_t queued = 0;

    for (size_t i = 0; i < svc->n_backends; i++) {
        struct backend *be = svc->backends[i];
        struct be_volume_page page = {0};
        char after[BE_ID_MAX + 1] = "";

        if (!be->ops->settle)
            continue;
        do {
            if (be->ops->list(be, after, 512, &page) < 0)
                break;
            for (size_t k = 0; k < page.n; k++)
                if (page.items[k].provisioning_uid[0] && strchr(page.items[k].key, '/')) {
                    snprintf(qkey, sizeof(qkey), "c:%s", page.items[k].key);
                    kube_queue_add(p->queue, qkey);
                    queued++;
                }
            if (page.n)
                snprintf(after, sizeof(after), "%s", page.items[page.n - 1].id);
            bool more = page.more && page.n;
            be_volume_page_free(&page);
            if (!more)
                break;
        } while (1);
    }
    if (queued)
        log_info("provisioner: %zu volume(s) still marked as being provisioned: checking their "
                 "claims",
                 queued);
    kube_queue_add_after(p->queue, PROV_SWEEP_KEY, PROV_SWEEP_S);
    return 0;
}

/* ---- claims ---- */

bool prov_class_ordered(const cJSON *sc)
{
    const char *v = JSTR(sc, "parameters", PROV_PARAM_ORDERING);

    return v && strcmp(v, "ordered") == 0;
}

bool prov_claim_admitted(const cJSON *claim)
{
    const char *v = JSTR(claim, "metadata", "annotations", PROV_ANN_ADMITTED);

    return v && strcmp(v, "true") == 0;
}

static const char *claim_class(const cJSON *claim)
{
    const char *c = JSTR(claim, "metadata", "annotations", PROV_CLASS_ANN);

    return c ? c : JSTR(claim, "spec", "storageClassName");
}

static const char *reclaim_policy(const cJSON *sc)
{
    const char *r = JSTR(sc, "reclaimPolicy");

    return r ? r : "Delete";
}

/* A claim deleted while we provisioned it: drop the volume if the class says Delete and no PV
 * was made for it, then let the claim go. */
static int claim_cleanup(struct prov *p, const cJSON *claim, const cJSON *sc, const char *ns,
                         const char *name, const char *uid)
{
    char pvname[320], key[BE_KEY_MAX + 1], msg[512];
    struct be_volume vol;
    cJSON *pv = NULL;
    int r;

    snprintf(pvname, sizeof(pvname), "pvc-%s", uid);
    r = kube_get(p->cfg.client, &kube_persistentvolumes, NULL, pvname, &pv, NULL);
    cJSON_Delete(pv);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r == -ENOENT && strcmp(reclaim_policy(sc), "Delete") == 0) {
        int n = snprintf(key, sizeof(key), "%s/%s", ns, name);
        if (n <= 0 || (size_t)n >= sizeof(key))
            return -EINVAL;
        r = find_volume_by_key(p, key, &vol);
        if (r < 0 && r != -ENOENT)
            return r; /* cannot tell whose it is: keep the finalizer, retry */
        /* Only a store this claim's CreateVolume made or took over is its to delete: one of
         * the same key owned by another PV (an earlier claim's) is never touched. */
        if (r == 0 && strcmp(vol.name, pvname) == 0) {
            r = delete_volume(p, vol.id, msg, sizeof(msg));
            if (r < 0) {
                log_warn("claim %s/%s deleted during provisioning: deleting volume %s: %s", ns,
                         name, vol.id, msg);
                return r;
            }
            log_info("claim %s/%s deleted during provisioning: volume %s deleted", ns, name,
                     vol.id);
        }
    }
    return set_finalizer(p, &kube_persistentvolumeclaims, ns, name, PROV_CLAIM_FINALIZER, false,
                         claim);
}

enum prov_owner prov_owner_decide(const char *driver, const char *pvname, const char *uid,
                                  const char *store_owner, const char *store_id, int owner_rc,
                                  const cJSON *owner_pv)
{
    const char *phase, *policy, *ref_uid, *drv, *handle;

    if (!store_owner || strcmp(store_owner, pvname) == 0)
        return PROV_OWNER_NEW; /* no store, or the claim's own (a retry after a crash) */
    if (owner_rc == -ENOENT)
        return PROV_OWNER_ADOPT; /* its PV is gone: an orphan */
    if (owner_rc < 0 || !owner_pv)
        return PROV_OWNER_WAIT; /* cannot tell: never guess about someone else's data */
    drv = JSTR(owner_pv, "spec", "csi", "driver");
    handle = JSTR(owner_pv, "spec", "csi", "volumeHandle");
    if (!drv || !handle || strcmp(drv, driver) != 0 || strcmp(handle, store_id) != 0)
        return PROV_OWNER_ADOPT; /* a PV of that name that does not hold this store */
    ref_uid = JSTR(owner_pv, "spec", "claimRef", "uid");
    if (ref_uid && uid && strcmp(ref_uid, uid) == 0)
        return PROV_OWNER_DONE; /* re-adopted for this claim already: the binder finishes */
    phase = JSTR(owner_pv, "status", "phase");
    policy = JSTR(owner_pv, "spec", "persistentVolumeReclaimPolicy");
    if (phase && policy && strcmp(phase, "Released") == 0 && strcmp(policy, "Retain") == 0 &&
        !JGET(owner_pv, "metadata", "deletionTimestamp"))
        return PROV_OWNER_READOPT;
    /* bound, being released (Delete), being deleted, or not yet marked Released */
    return PROV_OWNER_WAIT;
}

static bool pv_on_this_node(struct prov *p, const cJSON *pv);

struct key_match {
    struct prov *p;
    const char *key;
    const char *pvname;
};

/* A PV of ours on this node, other than pvname, whose volume carries key. */
static bool names_key(const cJSON *pv, void *ud)
{
    const struct key_match *m = ud;
    const char *drv = JSTR(pv, "spec", "csi", "driver");
    const char *key = JSTR(pv, "spec", "csi", "volumeAttributes", CSI_CTX_KEY);
    const char *name = JSTR(pv, "metadata", "name");

    return drv && key && name && strcmp(drv, m->p->cfg.svc->driver_name) == 0 &&
           strcmp(key, m->key) == 0 && strcmp(name, m->pvname) != 0 && pv_on_this_node(m->p, pv);
}

/* With no store for key: does an earlier PV still name it (its store deleted by a Delete
 * release, the PV object not yet gone)? A new volume of that key must wait for it, so that at
 * most one PV names a volume at any time. The cache suggests a candidate, a fresh read decides.
 * Returns 0 (none), 1 (one exists: its name in ret_name) or a negative errno (cannot tell). */
static int earlier_pv_of_key(struct prov *p, const char *key, const char *pvname, char *ret_name,
                             size_t n)
{
    struct key_match m = {.p = p, .key = key, .pvname = pvname};
    cJSON *found = kube_informer_find(p->pvs, names_key, &m), *live = NULL;
    int r;

    if (!found)
        return 0;
    snprintf(ret_name, n, "%s", JSTR(found, "metadata", "name"));
    cJSON_Delete(found);
    r = kube_get(p->cfg.client, &kube_persistentvolumes, NULL, ret_name, &live, NULL);
    cJSON_Delete(live);
    if (r == -ENOENT)
        return 0; /* gone: the cache is behind */
    return r < 0 ? r : 1;
}

struct claimref_edit {
    const cJSON *claim;
};

/* Point a retained PV at the new claim: the PV binder then binds the two. */
static int edit_claimref(cJSON *pv, void *ud)
{
    const struct claimref_edit *e = ud;
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(pv, "spec");
    cJSON *ref;

    if (!cJSON_IsObject(spec) ||
        strcmp(JSTR(pv, "status", "phase") ? JSTR(pv, "status", "phase") : "", "Released") != 0)
        return -EAGAIN; /* no longer Released: the next sync looks again */
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "claimRef");
    ref = cJSON_AddObjectToObject(spec, "claimRef");
    if (!ref)
        return -ENOMEM;
    cJSON_AddStringToObject(ref, "kind", "PersistentVolumeClaim");
    cJSON_AddStringToObject(ref, "apiVersion", "v1");
    cJSON_AddStringToObject(ref, "namespace", JSTR(e->claim, "metadata", "namespace"));
    cJSON_AddStringToObject(ref, "name", JSTR(e->claim, "metadata", "name"));
    cJSON_AddStringToObject(ref, "uid", JSTR(e->claim, "metadata", "uid"));
    cJSON_AddStringToObject(ref, "resourceVersion", JSTR(e->claim, "metadata", "resourceVersion"));
    return 0;
}

static int access_mode(const char *m, Csi__V1__VolumeCapability__AccessMode__Mode *ret)
{
    if (strcmp(m, "ReadWriteOnce") == 0 || strcmp(m, "ReadWriteOncePod") == 0)
        *ret = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER;
    else if (strcmp(m, "ReadOnlyMany") == 0)
        *ret = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_READER_ONLY;
    else if (strcmp(m, "ReadWriteMany") == 0)
        *ret = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_MULTI_WRITER;
    else
        return -EINVAL;
    return 0;
}

/* Room for it is checked by the caller (PROV_MAX_CLASS_PARAMS keeps 3 for the claim). */
static void add_param(struct prov_create_args *a, const char *k, const char *v)
{
    size_t i = a->req.n_parameters;

    if (i >= ARRAY_SIZE(a->params))
        abort(); /* a caller's bug: never send a request short of a parameter */
    csi__v1__create_volume_request__parameters_entry__init(&a->params[i]);
    a->params[i].key = (char *)(uintptr_t)k;
    a->params[i].value = (char *)(uintptr_t)v;
    a->pparams[i] = &a->params[i];
    a->req.n_parameters = i + 1;
}

int prov_build_create(const char *node_id, const cJSON *claim, const cJSON *sc,
                      struct prov_create_args *a, char *msg, size_t msglen)
{
    const char *ns = JSTR(claim, "metadata", "namespace"), *name = JSTR(claim, "metadata", "name");
    const char *uid = JSTR(claim, "metadata", "uid");
    const char *req_s = JSTR(claim, "spec", "resources", "requests", "storage");
    const char *lim_s = JSTR(claim, "spec", "resources", "limits", "storage");
    const char *mode = JSTR(claim, "spec", "volumeMode");
    const cJSON *modes = JGET(claim, "spec", "accessModes"), *e;
    const cJSON *params = JGET(sc, "parameters");
    int64_t required = 0, limit = 0;

    memset(a, 0, sizeof(*a));
    csi__v1__create_volume_request__init(&a->req);
    snprintf(a->name, sizeof(a->name), "pvc-%s", uid);
    a->req.name = a->name;
    if (req_s && prov_parse_quantity(req_s, &required) < 0) {
        snprintf(msg, msglen, "spec.resources.requests.storage \"%s\" is not a quantity", req_s);
        return -EINVAL;
    }
    if (lim_s && prov_parse_quantity(lim_s, &limit) < 0) {
        snprintf(msg, msglen, "spec.resources.limits.storage \"%s\" is not a quantity", lim_s);
        return -EINVAL;
    }
    csi__v1__capacity_range__init(&a->range);
    a->range.required_bytes = required ? required : PROV_DEFAULT_SIZE;
    a->range.limit_bytes = limit;
    a->req.capacity_range = &a->range;

    csi__v1__volume_capability__init(&a->cap);
    csi__v1__volume_capability__access_mode__init(&a->mode);
    a->mode.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER;
    cJSON_ArrayForEach(e, modes)
    {
        Csi__V1__VolumeCapability__AccessMode__Mode m;
        if (!jstr(e) || access_mode(jstr(e), &m) < 0) {
            snprintf(msg, msglen, "spec.accessModes: unknown access mode");
            return -EINVAL;
        }
        if (m != CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER) {
            snprintf(msg, msglen, "access mode %s is not supported: volumes are local to one node",
                     jstr(e));
            return -EINVAL;
        }
    }
    a->cap.access_mode = &a->mode;
    if (mode && strcmp(mode, "Block") == 0) {
        csi__v1__volume_capability__block_volume__init(&a->block);
        a->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK;
        a->cap.block = &a->block;
    } else {
        const cJSON *opts = JGET(sc, "mountOptions");
        const char *fs =
            jstr(cJSON_GetObjectItemCaseSensitive(params, "csi.storage.k8s.io/fstype"));
        csi__v1__volume_capability__mount_volume__init(&a->mount);
        snprintf(a->fs_type, sizeof(a->fs_type), "%s", fs ? fs : "");
        a->mount.fs_type = a->fs_type;
        cJSON_ArrayForEach(e, opts) if (jstr(e) && a->mount.n_mount_flags < ARRAY_SIZE(a->flags))
            a->flags[a->mount.n_mount_flags++] = (char *)(uintptr_t)jstr(e);
        a->mount.mount_flags = a->flags;
        a->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
        a->cap.mount = &a->mount;
    }
    a->caps[0] = &a->cap;
    a->req.n_volume_capabilities = 1;
    a->req.volume_capabilities = a->caps;

    /* Class parameters, less the CO's own prefixed ones, plus the claim's identity. */
    a->req.parameters = a->pparams;
    cJSON_ArrayForEach(e, params)
    {
        if (!e->string || strncmp(e->string, "csi.storage.k8s.io/", 19) == 0 ||
            strcmp(e->string, PROV_PARAM_ORDERING) == 0)
            continue;
        if (!jstr(e)) {
            snprintf(msg, msglen, "StorageClass parameter %s is not a string", e->string);
            return -EINVAL;
        }
        /* the claim's identity below needs its 3 entries: never drop them (nor a parameter) */
        if (a->req.n_parameters >= PROV_MAX_CLASS_PARAMS) {
            snprintf(msg, msglen, "StorageClass has more than %d parameters",
                     PROV_MAX_CLASS_PARAMS);
            return -EINVAL;
        }
        add_param(a, e->string, jstr(e));
    }
    snprintf(a->pvname, sizeof(a->pvname), "pvc-%s", uid);
    add_param(a, CSI_PARAM_PVC_NAMESPACE, ns);
    add_param(a, CSI_PARAM_PVC_NAME, name);
    add_param(a, "csi.storage.k8s.io/pv/name", a->pvname);

    csi__v1__topology_requirement__init(&a->topo_req);
    csi__v1__topology__init(&a->topo);
    csi__v1__topology__segments_entry__init(&a->seg);
    a->seg.key = (char *)(uintptr_t)CSI_TOPOLOGY_KEY;
    a->seg.value = (char *)(uintptr_t)node_id;
    a->pseg[0] = &a->seg;
    a->topo.n_segments = 1;
    a->topo.segments = a->pseg;
    a->ptopo[0] = &a->topo;
    a->topo_req.n_requisite = 1;
    a->topo_req.requisite = a->ptopo;
    a->topo_req.n_preferred = 1;
    a->topo_req.preferred = a->ptopo;
    a->req.accessibility_requirements = &a->topo_req;
    return 0;
}

cJSON *prov_build_pv(const char *driver, const char *identity, const cJSON *claim, const cJSON *sc,
                     const char *class_name, const Csi__V1__Volume *vol,
                     const struct prov_create_args *a)
{
    cJSON *pv = cJSON_CreateObject(), *md, *ann, *spec, *csi, *attrs, *ref, *terms, *term, *exprs,
          *expr, *values;
    char cap[32];
    const char *policy = reclaim_policy(sc);
    const cJSON *e;

    if (!pv)
        return NULL;
    cJSON_AddStringToObject(pv, "apiVersion", "v1");
    cJSON_AddStringToObject(pv, "kind", "PersistentVolume");
    md = cJSON_AddObjectToObject(pv, "metadata");
    cJSON_AddStringToObject(md, "name", a->pvname);
    ann = cJSON_AddObjectToObject(md, "annotations");
    cJSON_AddStringToObject(ann, PROV_ANN_PROVISIONED_BY, driver);
    if (strcmp(policy, "Delete") == 0)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "finalizers"),
                             cJSON_CreateString(PROV_PV_FINALIZER));
    spec = cJSON_AddObjectToObject(pv, "spec");
    cJSON_AddItemToObject(spec, "accessModes",
                          cJSON_Duplicate(JGET(claim, "spec", "accessModes"), true));
    if (!cJSON_GetObjectItemCaseSensitive(spec, "accessModes") ||
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(spec, "accessModes"))) {
        cJSON_DeleteItemFromObjectCaseSensitive(spec, "accessModes");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "accessModes"),
                             cJSON_CreateString("ReadWriteOnce"));
    }
    prov_format_quantity(vol->capacity_bytes ? vol->capacity_bytes : a->range.required_bytes, cap,
                         sizeof(cap));
    cJSON_AddStringToObject(cJSON_AddObjectToObject(spec, "capacity"), "storage", cap);
    csi = cJSON_AddObjectToObject(spec, "csi");
    cJSON_AddStringToObject(csi, "driver", driver);
    cJSON_AddStringToObject(csi, "volumeHandle", vol->volume_id);
    if (a->cap.access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT)
        cJSON_AddStringToObject(csi, "fsType", a->fs_type[0] ? a->fs_type : "ext4");
    attrs = cJSON_AddObjectToObject(csi, "volumeAttributes");
    cJSON_AddStringToObject(attrs, PROV_IDENTITY_KEY, identity);
    for (size_t i = 0; i < vol->n_volume_context; i++)
        cJSON_AddStringToObject(attrs, vol->volume_context[i]->key, vol->volume_context[i]->value);
    ref = cJSON_AddObjectToObject(spec, "claimRef");
    cJSON_AddStringToObject(ref, "kind", "PersistentVolumeClaim");
    cJSON_AddStringToObject(ref, "apiVersion", "v1");
    cJSON_AddStringToObject(ref, "namespace", JSTR(claim, "metadata", "namespace"));
    cJSON_AddStringToObject(ref, "name", JSTR(claim, "metadata", "name"));
    cJSON_AddStringToObject(ref, "uid", JSTR(claim, "metadata", "uid"));
    if (JSTR(claim, "metadata", "resourceVersion"))
        cJSON_AddStringToObject(ref, "resourceVersion", JSTR(claim, "metadata", "resourceVersion"));
    cJSON_AddStringToObject(spec, "persistentVolumeReclaimPolicy", policy);
    cJSON_AddStringToObject(spec, "storageClassName", class_name);
    if (cJSON_IsArray(JGET(sc, "mountOptions")) && cJSON_GetArraySize(JGET(sc, "mountOptions")))
        cJSON_AddItemToObject(spec, "mountOptions",
                              cJSON_Duplicate(JGET(sc, "mountOptions"), true));
    cJSON_AddStringToObject(spec, "volumeMode",
                            a->cap.access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK
                                ? "Block"
                                : "Filesystem");
    terms = cJSON_AddArrayToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "nodeAffinity"), "required"),
        "nodeSelectorTerms");
    for (size_t t = 0; t < vol->n_accessible_topology; t++) {
        term = cJSON_CreateObject();
        exprs = cJSON_AddArrayToObject(term, "matchExpressions");
        for (size_t s = 0; s < vol->accessible_topology[t]->n_segments; s++) {
            expr = cJSON_CreateObject();
            cJSON_AddStringToObject(expr, "key", vol->accessible_topology[t]->segments[s]->key);
            cJSON_AddStringToObject(expr, "operator", "In");
            values = cJSON_AddArrayToObject(expr, "values");
            cJSON_AddItemToArray(
                values, cJSON_CreateString(vol->accessible_topology[t]->segments[s]->value));
            cJSON_AddItemToArray(exprs, expr);
        }
        cJSON_AddItemToArray(terms, term);
    }
    (void)e;
    return pv;
}

enum prov_claim_step prov_claim_decide(const char *driver, const char *node_id, const cJSON *claim,
                                       const cJSON *sc)
{
    const char *selected, *mode, *volume = JSTR(claim, "spec", "volumeName");
    const char *a = JSTR(claim, "metadata", "annotations", PROV_ANN_PROVISIONER);
    const char *b = JSTR(claim, "metadata", "annotations", PROV_ANN_PROVISIONER_BETA);

    if (!JSTR(claim, "metadata", "uid"))
        return PROV_CLAIM_IGNORE;
    if (!sc || !JSTR(sc, "provisioner") || strcmp(JSTR(sc, "provisioner"), driver) != 0)
        return PROV_CLAIM_IGNORE; /* not our class */
    if (JGET(claim, "metadata", "deletionTimestamp"))
        return has_finalizer(claim, PROV_CLAIM_FINALIZER) ? PROV_CLAIM_CLEANUP : PROV_CLAIM_IGNORE;
    if (volume && volume[0])
        return has_finalizer(claim, PROV_CLAIM_FINALIZER) ? PROV_CLAIM_UNFINALIZE
                                                          : PROV_CLAIM_IGNORE;
    if (!((a && strcmp(a, driver) == 0) || (!a && b && strcmp(b, driver) == 0)))
        return PROV_CLAIM_WAIT_HANDOFF;
    if (prov_class_ordered(sc) && !prov_claim_admitted(claim))
        return PROV_CLAIM_WAIT_ADMISSION;
    selected = JSTR(claim, "metadata", "annotations", PROV_ANN_SELECTED_NODE);
    mode = JSTR(sc, "volumeBindingMode");
    if (!selected || !selected[0])
        return mode && strcmp(mode, "WaitForFirstConsumer") == 0
                   ? PROV_CLAIM_IGNORE /* the scheduler picks the node */
                   : PROV_CLAIM_TAKE_NODE;
    return strcmp(selected, node_id) == 0 ? PROV_CLAIM_PROVISION : PROV_CLAIM_IGNORE;
}

static int sync_claim(struct prov *p, const char *ns, const char *name)
{
    struct csi_service *svc = p->cfg.svc;
    cJSON *claim = kube_informer_get(p->claims, ns, name), *sc = NULL, *pv = NULL;
    const char *uid, *class_name, *selected;
    struct prov_create_args *a = NULL;
    struct csi_call *call = NULL;
    ProtobufCMessage *resp = NULL;
    char msg[512], pvname[320];
    int r = 0;

    if (!claim)
        return orphan_check(p, ns, name, NULL);
    uid = JSTR(claim, "metadata", "uid");
    r = uid ? orphan_check(p, ns, name, uid) : 0;
    if (r < 0)
        goto out;
    class_name = claim_class(claim);
    if (uid && class_name)
        sc = kube_informer_get(p->classes, NULL, class_name);
    switch (prov_claim_decide(svc->driver_name, svc->node_id, claim, sc)) {
    case PROV_CLAIM_IGNORE:
        goto out;
    case PROV_CLAIM_CLEANUP:
        r = claim_cleanup(p, claim, sc, ns, name, uid);
        goto out;
    case PROV_CLAIM_UNFINALIZE:
        r = set_finalizer(p, &kube_persistentvolumeclaims, ns, name, PROV_CLAIM_FINALIZER, false,
                          claim);
        goto out;
    case PROV_CLAIM_WAIT_HANDOFF:
        /* the PV controller has not handed it to an external provisioner */
        log_debug("claim %s/%s: not handed to %s yet: waiting", ns, name, svc->driver_name);
        goto out;
    case PROV_CLAIM_WAIT_ADMISSION:
        /* Ordered class: the controller admits ordinals in turn (claim_update requeues us when
         * the annotation comes). Said once per claim version, by the node it is meant for. */
        selected = JSTR(claim, "metadata", "annotations", PROV_ANN_SELECTED_NODE);
        if (selected && strcmp(selected, svc->node_id) == 0)
            claim_event(p, claim, "Normal", "OrdinalWaiting",
                        "waiting for the Ordinal controller to admit this claim: class %s "
                        "provisions ordinals in order (%s: ordered); is the controller running?",
                        class_name, PROV_PARAM_ORDERING);
        log_debug("claim %s/%s: ordered class %s, not admitted yet: waiting", ns, name, class_name);
        goto out;
    case PROV_CLAIM_TAKE_NODE: {
        struct node_edit ne = {.node = svc->node_id};
        cJSON *after = NULL;

        /* Immediate: race the other nodes for it; the resourceVersion decides. */
        /* The cached copy lacks the annotation, so the write is needed: CAS from it. */
        r = kube_update_retry_from(p->cfg.client, &kube_persistentvolumeclaims, ns, name, NULL,
                                   claim, edit_selected_node, &ne, &after, NULL);
        if (r < 0)
            goto out;
        selected = JSTR(after, "metadata", "annotations", PROV_ANN_SELECTED_NODE);
        bool ours = selected && strcmp(selected, svc->node_id) == 0;
        cJSON_Delete(after);
        if (!ours)
            goto out; /* another node won */
        log_info("claim %s/%s: this node takes it (Immediate binding)", ns, name);
        break;
    }
    case PROV_CLAIM_PROVISION:
        break;
    }

    /* A PV already made for this claim (a restart after its creation): finish. */
    snprintf(pvname, sizeof(pvname), "pvc-%s", uid);
    pv = kube_informer_get(p->pvs, NULL, pvname);
    r = pv ? 0 : -ENOENT;
    if (r == 0) {
        /* a claim of an older version (or of a backend without marks) may carry our
         * finalizer; one that does not shows it in the cache as soon as it gets it */
        if (has_finalizer(claim, PROV_CLAIM_FINALIZER))
            r = set_finalizer(p, &kube_persistentvolumeclaims, ns, name, PROV_CLAIM_FINALIZER,
                              false, claim);
        goto out;
    }
    if (r != -ENOENT)
        goto out;

    /* Who owns the store this claim's key names, decided by the store itself and a fresh read of
     * its owner PV, never by the cache (a lagging PV watch must not make a second PV for a
     * store, nor hand out one being deleted): a retained one is given back, one still held is
     * waited for, an orphan (its PV gone) is taken over by CreateVolume. */
    char key[BE_KEY_MAX + 1];
    struct be_volume store;
    cJSON *owner = NULL;
    int orc = -ENOENT;
    if (snprintf(key, sizeof(key), "%s/%s", ns, name) >= (int)sizeof(key))
        goto out;
    be_error_clear();
    r = find_volume_by_key(p, key, &store);
    if (r < 0 && r != -ENOENT) {
        log_warn("claim %s/%s: cannot tell whether volume key %s exists: %s", ns, name, key,
                 be_last_error()[0] ? be_last_error() : strerror(-r));
        goto out;
    }
    bool have = r == 0;
    if (have && strcmp(store.name, pvname) != 0)
        orc = kube_name_valid(store.name)
                  ? kube_get(p->cfg.client, &kube_persistentvolumes, NULL, store.name, &owner, NULL)
                  : -ENOENT; /* no PV can have that name */
    r = 0;
    enum prov_owner verdict = prov_owner_decide(
        svc->driver_name, pvname, uid, have ? store.name : NULL, have ? store.id : "", orc, owner);
    switch (verdict) {
    case PROV_OWNER_NEW:
        break;
    case PROV_OWNER_ADOPT:
        log_info("claim %s/%s: volume %s of PersistentVolume %s, which %s, is taken over", ns, name,
                 store.id, store.name, orc == 0 ? "does not hold it" : "is gone");
        break;
    case PROV_OWNER_DONE:
        break;
    case PROV_OWNER_READOPT: {
        struct claimref_edit ce = {.claim = claim};
        r = kube_update_retry_from(p->cfg.client, &kube_persistentvolumes, NULL, store.name, NULL,
                                   owner, edit_claimref, &ce, NULL, NULL);
        if (r == 0) {
            log_info("claim %s/%s: re-adopted retained volume %s", ns, name, store.name);
            claim_event(p, claim, "Normal", "ProvisioningSucceeded",
                        "Re-adopted retained volume %s (PersistentVolume %s)", store.id,
                        store.name);
        }
        break;
    }
    case PROV_OWNER_WAIT:
        log_info("claim %s/%s: its volume %s is still held by PersistentVolume %s (%s); waiting",
                 ns, name, store.id, store.name,
                 orc < 0                                        ? strerror(-orc)
                 : JSTR(owner, "metadata", "deletionTimestamp") ? "being deleted"
                 : JSTR(owner, "status", "phase")               ? JSTR(owner, "status", "phase")
                                                                : "no phase");
        claim_event(p, claim, "Normal", "WaitingForVolume",
                    "volume %s of an earlier claim of this name is still held by "
                    "PersistentVolume %s; waiting for it to be released",
                    store.id, store.name);
        r = -EAGAIN; /* retried with backoff, and at once when that PV changes */
        break;
    }
    cJSON_Delete(owner);
    if (verdict != PROV_OWNER_NEW && verdict != PROV_OWNER_ADOPT)
        goto out;
    if (!have) {
        char earlier[256];
        int e = earlier_pv_of_key(p, key, pvname, earlier, sizeof(earlier));

        if (e != 0) {
            log_info("claim %s/%s: PersistentVolume %s of an earlier claim of this name still "
                     "names volume key %s (%s); waiting",
                     ns, name, earlier, key, e < 0 ? strerror(-e) : "not yet deleted");
            claim_event(p, claim, "Normal", "WaitingForVolume",
                        "PersistentVolume %s of an earlier claim of this name still exists; "
                        "waiting for it to be deleted",
                        earlier);
            r = -EAGAIN;
            goto out;
        }
    }

    /* Leak protection. With a reclaim policy of Delete on a backend that keeps provisioning
     * marks, the store itself records the claim's uid (durably, in the write that makes it) and
     * a fresh read of the claim after CreateVolume decides: no API write. With Retain no store
     * is ever deleted for a claim that went away (docs/DECISIONS.md): the same fresh read
     * decides whether the PV is made, and a store left by a crash is an orphan that the next
     * claim of that name takes over. Only Delete on a backend without marks (LVM) still puts
     * our finalizer on the claim while its volume is made. */
    struct backend *cbe = class_backend(p, sc);
    bool retain = strcmp(reclaim_policy(sc), "Delete") != 0;
    bool marks = !retain && cbe && cbe->ops->settle;
    bool finalizer = !retain && !marks;
    if (finalizer) {
        r = set_finalizer(p, &kube_persistentvolumeclaims, ns, name, PROV_CLAIM_FINALIZER, true,
                          claim);
        if (r == -ECANCELED) {
            r = 0; /* being deleted: the next sync cleans up */
            goto out;
        }
        if (r < 0)
            goto out;
    }

    a = malloc(sizeof(*a));
    if (!a) {
        r = -ENOMEM;
        goto out;
    }
    r = prov_build_create(svc->node_id, claim, sc, a, msg, sizeof(msg));
    if (r < 0) {
        claim_event(p, claim, "Warning", "ProvisioningFailed", "%s", msg);
        goto out;
    }
    if (marks)
        add_param(a, CSI_PARAM_PROVISIONING, uid);
    claim_event(p, claim, "Normal", "Provisioning",
                "External provisioner is provisioning volume for claim \"%s/%s\"", ns, name);
    r = run_csi(p, csi_create_volume, &a->req.base, &call, &resp, msg, sizeof(msg));
    if (r < 0) {
        grpc_status_code code = csi_status_from_errno(r);
        claim_event(p, claim, "Warning", "ProvisioningFailed",
                    "failed to provision volume with StorageClass \"%s\": rpc error: code = %s "
                    "desc = %s",
                    class_name, csi_status_name(code), msg);
        log_warn("claim %s/%s: CreateVolume: %s: %s", ns, name, csi_status_name(code), msg);
        if (code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
            /* No room here: let the scheduler choose another node. */
            struct node_edit ne = {.node = NULL};
            int r2 = kube_update_retry(p->cfg.client, &kube_persistentvolumeclaims, ns, name, NULL,
                                       edit_selected_node, &ne, NULL, NULL);
            if (r2 == 0 && finalizer)
                r = set_finalizer(p, &kube_persistentvolumeclaims, ns, name, PROV_CLAIM_FINALIZER,
                                  false, NULL);
            else
                r = r2;
        }
        goto out;
    }

    const Csi__V1__Volume *vol = ((const Csi__V1__CreateVolumeResponse *)resp)->volume;
    if (!finalizer) {
        /* The store is made (and marked): a fresh read of the claim decides whether it gets a
         * PV. Gone, re-created (another uid) or being deleted: the store was never handed out
         * and goes (Retain: stays, unmarked). A failed read leaves the mark: the retry, or the
         * sweep, decides later. */
        cJSON *fresh = NULL;
        r = kube_get(p->cfg.client, &kube_persistentvolumeclaims, ns, name, &fresh, NULL);
        bool gone = r == -ENOENT || (r == 0 && (!JSTR(fresh, "metadata", "uid") ||
                                                strcmp(JSTR(fresh, "metadata", "uid"), uid) != 0 ||
                                                JGET(fresh, "metadata", "deletionTimestamp")));
        cJSON_Delete(fresh);
        if (gone && retain) {
            log_info("claim %s/%s deleted during provisioning: volume %s kept (reclaim policy "
                     "%s)",
                     ns, name, vol->volume_id, reclaim_policy(sc));
            r = 0;
            goto out;
        }
        if (gone) {
            r = delete_volume(p, vol->volume_id, msg, sizeof(msg));
            if (r < 0)
                log_warn("claim %s/%s deleted during provisioning: deleting volume %s: %s", ns,
                         name, vol->volume_id, msg);
            else
                log_info("claim %s/%s deleted during provisioning: volume %s deleted", ns, name,
                         vol->volume_id);
            goto out;
        }
        if (r < 0)
            goto out;
    }
    pv = prov_build_pv(svc->driver_name, p->identity, claim, sc, class_name, vol, a);
    if (!pv) {
        r = -ENOMEM;
        goto out;
    }
    r = kube_create(p->cfg.client, &kube_persistentvolumes, NULL, pv, NULL, NULL);
    if (r == -EEXIST)
        r = 0; /* made before a restart, or by a retry that did get through */
    if (r < 0) {
        log_warn("claim %s/%s: creating PersistentVolume %s: %s", ns, name, a->pvname,
                 strerror(-r));
        goto out;
    }
    /* the mark is cleared by the PV's own sync (sync_pv), off this path */
    if (finalizer || has_finalizer(claim, PROV_CLAIM_FINALIZER))
        r = set_finalizer(p, &kube_persistentvolumeclaims, ns, name, PROV_CLAIM_FINALIZER, false,
                          claim);
    metrics_claim_provisioned(uid);
    log_info("claim %s/%s: provisioned volume %s as PersistentVolume %s", ns, name, vol->volume_id,
             a->pvname);
    claim_event(p, claim, "Normal", "ProvisioningSucceeded", "Successfully provisioned volume %s",
                a->pvname);
out:
    if (call)
        csi_call_free_detached(call);
    free(a);
    cJSON_Delete(pv);
    cJSON_Delete(sc);
    cJSON_Delete(claim);
    return r;
}

/* ---- persistent volumes ---- */

static bool pv_on_this_node(struct prov *p, const cJSON *pv)
{
    const cJSON *terms = JGET(pv, "spec", "nodeAffinity", "required", "nodeSelectorTerms"), *t, *x,
                *v;

    cJSON_ArrayForEach(t, terms) cJSON_ArrayForEach(x, JGET(t, "matchExpressions"))
    {
        if (!JSTR(x, "key") || strcmp(JSTR(x, "key"), CSI_TOPOLOGY_KEY) != 0)
            continue;
        cJSON_ArrayForEach(v,
                           JGET(x, "values")) if (jstr(v) && strcmp(jstr(v), p->cfg.svc->node_id) ==
                                                                 0) return true;
    }
    return false;
}

/* Ordered release (provision.h): whether the store of Released PV pv may go now. A class that
 * is gone from the cache orders nothing. */
static bool release_approved(struct prov *p, const cJSON *pv)
{
    const char *cls = JSTR(pv, "spec", "storageClassName");
    const char *v = JSTR(pv, "metadata", "annotations", PROV_ANN_RELEASE);
    cJSON *sc = cls ? kube_informer_get(p->classes, NULL, cls) : NULL;
    bool ordered = prov_class_ordered(sc);

    cJSON_Delete(sc);
    return !ordered || (v && strcmp(v, "approved") == 0);
}

static int sync_pv(struct prov *p, const char *name)
{
    struct csi_service *svc = p->cfg.svc;
    cJSON *pv = kube_informer_get(p->pvs, NULL, name);
    const char *policy, *phase, *handle, *by;
    char msg[512];
    int r = 0;

    if (!pv)
        return 0;
    by = JSTR(pv, "metadata", "annotations", PROV_ANN_PROVISIONED_BY);
    handle = JSTR(pv, "spec", "csi", "volumeHandle");
    if (!by || strcmp(by, svc->driver_name) != 0 || !handle || !JSTR(pv, "spec", "csi", "driver") ||
        strcmp(JSTR(pv, "spec", "csi", "driver"), svc->driver_name) != 0 || !pv_on_this_node(p, pv))
        goto out;
    {
        /* The PV exists: its store's provisioning mark (if any) has done its job. Cleared
         * lazily here, off the provisioning path, whatever the PV's phase or policy. */
        struct backend *mbe = csi_backend_for_id(svc, handle);
        struct be_volume mv;
        if (mbe && mbe->ops->settle && mbe->ops->lookup(mbe, handle, &mv) == 0 &&
            mv.provisioning_uid[0] && strcmp(mv.name, name) == 0) {
            r = settle_store(p, &mv);
            if (r < 0)
                goto out;
        }
    }
    policy = JSTR(pv, "spec", "persistentVolumeReclaimPolicy");
    phase = JSTR(pv, "status", "phase");
    if (!policy || strcmp(policy, "Delete") != 0) {
        /* Retain (or Recycle): the data stays; an administrator may delete the PV freely. */
        if (has_finalizer(pv, PROV_PV_FINALIZER))
            r = set_finalizer(p, &kube_persistentvolumes, NULL, name, PROV_PV_FINALIZER, false, pv);
        if (r == 0)
            log_debug("PersistentVolume %s: policy %s, phase %s: volume kept", name,
                      policy ? policy : "none", phase ? phase : "none");
        goto out;
    }
    if (phase && strcmp(phase, "Released") == 0) {
        struct backend *be = csi_backend_for_id(svc, handle);
        struct be_volume vol;

        if (JGET(pv, "metadata", "deletionTimestamp") && !has_finalizer(pv, PROV_PV_FINALIZER))
            goto out; /* done already; the API server removes it */
        if (!release_approved(p, pv)) {
            log_debug("PersistentVolume %s released: ordered class, waiting for the controller "
                      "to approve its release (%s)",
                      name, PROV_ANN_RELEASE);
            goto out; /* the approval is a PV update: pv_update requeues it */
        }
        /* The store goes only when this PV owns it. A stale id (an earlier generation) names
         * nothing and DeleteVolume is a no-op by itself; this also spares a store that another
         * PV took over under an id without a generation (two PVs made by older versions). */
        r = be ? be->ops->lookup(be, handle, &vol) : -ENOENT;
        if (r < 0 && r != -ENOENT) {
            log_warn("PersistentVolume %s released: looking up volume %s: %s", name, handle,
                     be_last_error()[0] ? be_last_error() : strerror(-r));
            goto out; /* cannot tell: retry rather than drop the PV over a live store */
        }
        if (r == -ENOENT) {
            log_info("PersistentVolume %s released (policy Delete): volume %s is gone already "
                     "or was taken over by a later PersistentVolume",
                     name, handle);
        } else if (strcmp(vol.name, name) != 0) {
            log_warn("PersistentVolume %s released (policy Delete): volume %s %s%s; it is kept",
                     name, handle,
                     vol.name[0] ? "belongs to PersistentVolume " : "has no readable owner",
                     vol.name);
        } else {
            r = delete_volume(p, handle, msg, sizeof(msg));
            if (r < 0) {
                log_warn("PersistentVolume %s released: DeleteVolume %s: %s", name, handle, msg);
                goto out;
            }
            log_info("PersistentVolume %s released (policy Delete): volume %s deleted", name,
                     handle);
        }
        if (!JGET(pv, "metadata", "deletionTimestamp")) {
            r = kube_delete(p->cfg.client, &kube_persistentvolumes, NULL, name, NULL, NULL, NULL);
            if (r < 0 && r != -ENOENT)
                goto out;
        }
        r = set_finalizer(p, &kube_persistentvolumes, NULL, name, PROV_PV_FINALIZER, false, pv);
        goto out;
    }
    if (phase && strcmp(phase, "Bound") == 0 && !JGET(pv, "metadata", "deletionTimestamp") &&
        !has_finalizer(pv, PROV_PV_FINALIZER))
        r = set_finalizer(p, &kube_persistentvolumes, NULL, name, PROV_PV_FINALIZER, true, pv);
out:
    cJSON_Delete(pv);
    return r == -ECANCELED ? 0 : r;
}

/* ---- wiring ---- */

static int sync_key(void *ud, const char *key)
{
    struct prov *p = ud;
    char ns[256], name[320];
    int r;

    metrics_prov_queue_depth(kube_queue_len(p->queue));
    if (strncmp(key, "c:", 2) == 0) {
        const char *slash = strchr(key + 2, '/');
        if (!slash || (size_t)(slash - key - 2) >= sizeof(ns))
            return 0;
        snprintf(ns, sizeof(ns), "%.*s", (int)(slash - key - 2), key + 2);
        snprintf(name, sizeof(name), "%s", slash + 1);
        r = sync_claim(p, ns, name);
    } else if (strncmp(key, "v:", 2) == 0) {
        r = sync_pv(p, key + 2);
    } else if (strcmp(key, PROV_SWEEP_KEY) == 0) {
        r = sweep(p);
    } else {
        return 0;
    }
    if (r < 0 && r != -ECANCELED)
        log_debug("sync %s: %s; retrying with backoff", key, strerror(-r));
    return r;
}

static void queue_obj(struct prov *p, char kind, const cJSON *obj)
{
    const char *ns = JSTR(obj, "metadata", "namespace"), *name = JSTR(obj, "metadata", "name");
    char key[600];

    if (!name)
        return;
    if (kind == 'c') {
        if (!ns)
            return;
        snprintf(key, sizeof(key), "c:%s/%s", ns, name);
        if (!JSTR(obj, "spec", "volumeName"))
            metrics_claim_seen(JSTR(obj, "metadata", "uid"));
    } else {
        snprintf(key, sizeof(key), "v:%s", name);
    }
    kube_queue_add(p->queue, key);
    metrics_prov_queue_depth(kube_queue_len(p->queue));
}

static void claim_add(void *ud, const cJSON *obj)
{
    queue_obj(ud, 'c', obj);
}

static void claim_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    (void)old_obj;
    queue_obj(ud, 'c', obj);
}

/* A claim gone: a store still marked for it is judged at once (orphan_check). */
static void claim_delete(void *ud, const cJSON *obj)
{
    const char *ns = JSTR(obj, "metadata", "namespace"), *name = JSTR(obj, "metadata", "name");
    char key[600];

    if (!ns || !name)
        return;
    snprintf(key, sizeof(key), "c:%s/%s", ns, name);
    kube_queue_add(((struct prov *)ud)->queue, key);
}

/* The inventory hook (provision.h): every PV change. */
static void pv_changed(void *ud)
{
    struct prov *p = ud;

    if (p->cfg.pv_changed)
        p->cfg.pv_changed(p->cfg.pv_changed_ud);
}

static void pv_add(void *ud, const cJSON *obj)
{
    queue_obj(ud, 'v', obj);
    pv_changed(ud);
}

static void pv_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    const char *cns = JSTR(obj, "spec", "claimRef", "namespace");
    const char *cname = JSTR(obj, "spec", "claimRef", "name");
    char key[600];

    (void)old_obj;
    queue_obj(ud, 'v', obj);
    pv_changed(ud);
    /* A PV that changed may finish its claim's provisioning (finalizer to drop). */
    if (cns && cname) {
        snprintf(key, sizeof(key), "c:%s/%s", cns, cname);
        kube_queue_add(((struct prov *)ud)->queue, key);
    }
}

/* A PV gone: a claim of the same name may be waiting for it (earlier_pv_of_key). */
static void pv_delete(void *ud, const cJSON *obj)
{
    const char *cns = JSTR(obj, "spec", "claimRef", "namespace");
    const char *cname = JSTR(obj, "spec", "claimRef", "name");
    char key[600];

    pv_changed(ud);
    if (cns && cname) {
        snprintf(key, sizeof(key), "c:%s/%s", cns, cname);
        kube_queue_add(((struct prov *)ud)->queue, key);
    }
}

/* A class that appears late makes its waiting claims provisionable. */
static void class_changed(void *ud, const cJSON *obj)
{
    struct prov *p = ud;
    cJSON *all = kube_informer_list(p->claims), *c;

    (void)obj;
    cJSON_ArrayForEach(c, all) queue_obj(p, 'c', c);
    cJSON_Delete(all);
}

static void class_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    (void)old_obj;
    class_changed(ud, obj);
}

/* The starter thread: workers start once every cache has listed, however long that takes. */
static void *prov_starter(void *arg)
{
    struct prov *p = arg;
    struct kube_informer *infs[] = {p->classes, p->pvs, p->claims};

    /* Decisions read the caches (is there a PV for this claim, a retained one to re-adopt):
     * no worker runs before all three have listed once. */
    for (size_t i = 0; i < ARRAY_SIZE(infs); i++)
        while (!atomic_load(&p->stop) && kube_informer_wait_synced(infs[i], 0.25) == -ETIMEDOUT)
            ;
    if (atomic_load(&p->stop))
        return NULL;
    if (kube_queue_run(p->queue, p->cfg.workers > 0 ? p->cfg.workers : 4, sync_key, p) < 0) {
        log_error("provisioner: cannot start its workers");
        return NULL;
    }
    kube_queue_add(p->queue, PROV_SWEEP_KEY); /* stores a crash left marked */
    atomic_store(&p->synced, true);
    log_info("provisioner started for driver %s on node %s: caches synced", p->cfg.svc->driver_name,
             p->cfg.svc->node_id);
    return NULL;
}

void prov_stop(struct prov *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    if (p->starter_running)
        pthread_join(p->starter, NULL);
    /* Every thread that reads the caches is joined before any cache is freed. The workers
     * first: a sync in flight when the queue shuts down still reads (and locks) the informers,
     * since kube_queue_shutdown only stops them taking more; the reconciler had the same gap and
     * ASan caught a worker in a freed informer. Then the informers: the classes informer's
     * handler (class_changed) lists the claims cache. */
    if (p->queue)
        kube_queue_stop(p->queue);
    struct kube_informer *infs[] = {p->claims, p->pvs, p->classes};
    for (size_t i = 0; i < ARRAY_SIZE(infs); i++)
        if (infs[i])
            kube_informer_stop(infs[i]);
    kube_informer_free(p->claims);
    kube_informer_free(p->pvs);
    kube_informer_free(p->classes);
    kube_queue_free(p->queue);
    kube_recorder_free(p->events);
    free(p);
}

struct kube_informer *prov_pv_cache(struct prov *p)
{
    return p ? p->pvs : NULL;
}

bool prov_synced(const struct prov *p)
{
    return p && atomic_load(&p->synced);
}

unsigned long long prov_events_dropped(const struct prov *p)
{
    return p ? kube_recorder_dropped(p->events) : 0;
}

struct prov *prov_start(const struct prov_config *cfg)
{
    struct prov *p = calloc(1, sizeof(*p));
    struct kube_informer_handlers hc, hv, hs;
    struct timespec now;

    if (!p)
        return NULL;
    p->cfg = *cfg;
    atomic_init(&p->stop, false);
    atomic_init(&p->synced, false);
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(p->identity, sizeof(p->identity), "%lld-%ld-%s-%s",
             (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, (long)(now.tv_nsec % 10000),
             cfg->svc->driver_name, cfg->svc->node_id);
    p->queue = kube_queue_new(KUBE_QUEUE_BASE_DELAY, KUBE_QUEUE_MAX_DELAY);
    p->events = kube_recorder_new(cfg->events_client ? cfg->events_client : cfg->client, 0);
    hc = (struct kube_informer_handlers){claim_add, claim_update, claim_delete, p};
    hv = (struct kube_informer_handlers){pv_add, pv_update, pv_delete, p};
    hs = (struct kube_informer_handlers){class_changed, class_update, NULL, p};
    if (!p->queue || !p->events)
        goto fail;
    p->classes = kube_informer_new(cfg->client, &kube_storageclasses, NULL, NULL, NULL, &hs);
    p->pvs = kube_informer_new(cfg->client, &kube_persistentvolumes, NULL, NULL, NULL, &hv);
    p->claims = kube_informer_new(cfg->client, &kube_persistentvolumeclaims, NULL, NULL, NULL, &hc);
    if (!p->classes || !p->pvs || !p->claims)
        goto fail;
    if (kube_informer_start(p->classes) < 0 || kube_informer_start(p->pvs) < 0 ||
        kube_informer_start(p->claims) < 0)
        goto fail;
    if (pthread_create(&p->starter, NULL, prov_starter, p) != 0)
        goto fail;
    p->starter_running = true;
    log_info("provisioner: waiting for the claim, volume and class caches");
    return p;
fail:
    log_error("provisioner: start-up failed");
    prov_stop(p);
    return NULL;
}
