/*
 * The StatefulSet reconciler (see reconciler.h): ordered admission of claims. The decisions
 * are model/'s (model_claim_match, model_may_admit); this file reads the caches, applies them
 * and says why a claim waits.
 *
 * Queue keys: "c:<ns>/<name>" one claim; "n:<ns>" every claim of a namespace (a set changed, a
 * claim became Bound); "*" every claim (a class changed, leadership gained).
 *
 * Threading: informer threads only queue keys; two workers run sync_key. rec->mu guards the
 * waiting map (the claims already told that they wait); a leaf lock, never held across a
 * request.
 */
#include "reconciler.h"
#include "json.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_informer.h"
#include "kube_queue.h"
#include "kube_recorder.h"
#include "kube_util.h"
#include "log.h"
#include "csi.h"
#include "model.h"
#include "provision.h"
#include "util.h"

#define REC_WORKERS 2
#define REC_COMPONENT "ordinal-controller"
#define REC_SETLESS_GRACE_S 5.0
#define REC_RELEASE_SETTLE_S 2.0
#define REC_ANN_ON_NODE_LOSS "ordinal.csi.dev/on-node-loss"
#define REC_ANN_NODE_LOSS_GRACE "ordinal.csi.dev/node-loss-grace"
#define REC_NODE_LOSS_GRACE_S 300.0

struct rec {
    struct rec_config cfg;
    struct kube_informer *sets, *claims, *classes, *pvs, *ovs, *nodes; /* owned */
    struct kube_queue *queue;                                          /* owned */
    struct kube_recorder *events;                                      /* owned */
    pthread_mutex_t mu;
    struct kube__map waiting; /* "ns/name" -> (void *)(first blocker + 2), under mu */
    struct kube__map states;  /* OV name -> static state string last seen, under mu */
    struct kube__map gone;    /* node name -> (void *)1: seen, then deleted; under mu */
    struct kube__map warned;  /* "ns/claim" -> (void *)1: NodeLost said once; under mu */
    atomic_ulong admitted;
};

/* ---- decisions from the caches ---- */

static enum model_phase phase_of(const cJSON *claim)
{
    const char *ph = JSTR(claim, "status", "phase");

    if (streq(ph, "Bound"))
        return MODEL_PHASE_BOUND;
    if (streq(ph, "Lost"))
        return MODEL_PHASE_LOST;
    return MODEL_PHASE_PENDING;
}

static const char *class_of(const cJSON *claim)
{
    const char *c =
        JSTR(claim, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class");

    return c ? c : JSTR(claim, "spec", "storageClassName");
}

/* The set (of those cached in the claim's namespace) the claim belongs to: 0 and *ret_set,
 * *ret_ref; -ENOENT when none. */
static int set_of(const cJSON *sets, const cJSON *claim, struct model_set *ret_set,
                  struct model_claim_ref *ret_ref)
{
    const char *ns = JSTR(claim, "metadata", "namespace");
    const cJSON *s;

    cJSON_ArrayForEach(s, sets)
    {
        struct model_set set;
        struct model_claim_ref ref;

        if (!streq(JSTR(s, "metadata", "namespace"), ns) || model_set_from_json(s, &set) < 0)
            continue;
        if (model_claim_match(&set, claim, &ref) == 0) {
            *ret_set = set;
            *ret_ref = ref;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- effects ---- */

static void claim_event(struct rec *rec, const cJSON *claim, const char *type, const char *reason,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void claim_event(struct rec *rec, const cJSON *claim, const char *type, const char *reason,
                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    cJSON *ev;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ev = kube_event_new(claim, "PersistentVolumeClaim", "v1", type, reason, msg, REC_COMPONENT,
                        rec->cfg.identity);
    if (ev)
        kube_recorder_post(rec->events, JSTR(claim, "metadata", "namespace"), ev);
}

static int admit(struct rec *rec, const char *ns, const char *name)
{
    _cleanup_json_ cJSON *patch =
        cJSON_Parse("{\"metadata\":{\"annotations\":{\"" PROV_ANN_ADMITTED "\":\"true\"}}}");
    struct kube_status st;
    cJSON *out = NULL;
    char key[600];
    int r;

    if (!patch)
        return -ENOMEM;
    r = kube_patch(rec->cfg.client, &kube_persistentvolumeclaims, ns, name, NULL, patch, &out, &st);
    cJSON_Delete(out);
    if (r == -ENOENT)
        return 0; /* gone meanwhile */
    if (r < 0)
        return r;
    atomic_fetch_add(&rec->admitted, 1);
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&rec->mu);
    kube__map_del(&rec->waiting, key);
    pthread_mutex_unlock(&rec->mu);
    return 0;
}

/* Whether the claim was already told that it waits (then nothing is said again: one event per
 * claim, naming the first blocker, not one per ordinal that goes before it). */
static bool told(struct rec *rec, const char *key, int32_t blocker)
{
    void *old = NULL;
    bool seen;

    pthread_mutex_lock(&rec->mu);
    seen = kube__map_get(&rec->waiting, key) != NULL;
    if (!seen)
        kube__map_put(&rec->waiting, key, (void *)(intptr_t)(blocker + 2), &old);
    pthread_mutex_unlock(&rec->mu);
    return seen;
}

static int sync_claim(struct rec *rec, const char *ns, const char *name)
{
    _cleanup_json_ cJSON *claim = kube_informer_get(rec->claims, ns, name);
    _cleanup_json_ cJSON *sc = NULL, *sets = NULL, *all = NULL;
    _cleanup_free_ struct model_slot *slots = NULL;
    struct model_set set;
    struct model_claim_ref ref;
    struct model_wait wait;
    const char *cls;
    const cJSON *c;
    size_t n = 0;
    char key[600];

    if (!claim || prov_claim_admitted(claim) || JGET(claim, "metadata", "deletionTimestamp") ||
        (JSTR(claim, "spec", "volumeName") && JSTR(claim, "spec", "volumeName")[0]))
        return 0;
    cls = class_of(claim);
    sc = cls ? kube_informer_get(rec->classes, NULL, cls) : NULL;
    if (!sc || !streq(JSTR(sc, "provisioner"), rec->cfg.driver_name) || !prov_class_ordered(sc))
        return 0;
    if (!rec->cfg.leading(rec->cfg.leading_ud))
        return 0; /* rec_resync() queues everything again when this instance leads */
    snprintf(key, sizeof(key), "c:%s/%s", ns, name);
    if (!kube_informer_has_synced(rec->sets) || !kube_informer_has_synced(rec->claims)) {
        kube_queue_add_after(rec->queue, key, 0.5); /* decide on full caches only */
        return 0;
    }
    sets = kube_informer_list(rec->sets);
    if (!sets)
        return -ENOMEM;
    if (set_of(sets, claim, &set, &ref) < 0) {
        /* The StatefulSet controller makes the set before its claims, but our set cache may
         * lag the claim cache: a young claim named like an ordinal gets a grace period. */
        double created = 0;
        const char *ts = JSTR(claim, "metadata", "creationTimestamp");
        const char *dash = strrchr(name, '-');
        bool ordinal_like = dash && dash[1] && strspn(dash + 1, "0123456789") == strlen(dash + 1);
        if (ordinal_like && ts && kube__parse_time(ts, &created) == 0 &&
            kube__wall() - created < REC_SETLESS_GRACE_S) {
            kube_queue_add_after(rec->queue, key, 1.0);
            return 0;
        }
        log_info("claim %s/%s: ordered class %s, no StatefulSet ordinal: admitted", ns, name, cls);
        return admit(rec, ns, name);
    }
    all = kube_informer_list(rec->claims);
    if (!all)
        return -ENOMEM;
    slots = calloc((size_t)cJSON_GetArraySize(all) + 1, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    cJSON_ArrayForEach(c, all)
    {
        struct model_claim_ref r2;

        if (model_claim_match(&set, c, &r2) == 0 && r2.template_index == ref.template_index &&
            !JGET(c, "metadata", "deletionTimestamp"))
            slots[n++] = (struct model_slot){.ordinal = r2.ordinal, .phase = phase_of(c)};
    }
    if (model_may_admit(set.start, slots, n, ref.ordinal, &wait)) {
        log_info("claim %s/%s: ordinal %d of %s/%s admitted", ns, name, (int)ref.ordinal, ns,
                 set.name);
        return admit(rec, ns, name);
    }
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    if (!told(rec, key, wait.blocker)) {
        char blocker[MODEL_NAME_MAX + 1];
        if (model_claim_name(blocker, sizeof(blocker), &set, ref.template_index, wait.blocker) < 0)
            snprintf(blocker, sizeof(blocker), "?");
        claim_event(rec, claim, "Normal", "OrdinalWaiting",
                    "ordinal %d of StatefulSet %s waits for ordinal %d (claim %s %s): class %s "
                    "provisions in ordinal order",
                    (int)ref.ordinal, set.name, (int)wait.blocker, blocker,
                    wait.phase == MODEL_PHASE_ABSENT ? "does not exist yet" : "is not Bound yet",
                    cls);
    }
    return 0;
}

/* ---- ordered release ---- */

/* What PV pv is to ordered release: 0 not part of it; 1 Released (policy Delete, ours, an
 * ordered class); 2 about to be: still Bound but its claim is gone or being deleted (a release
 * that has not reached the PV yet, which must hold back lower ordinals released with it). */
static int release_role(struct rec *rec, const cJSON *pv, const cJSON *classes)
{
    const char *cls = JSTR(pv, "spec", "storageClassName"), *phase = JSTR(pv, "status", "phase");
    const cJSON *sc;
    bool ordered = false;

    if (!streq(JSTR(pv, "spec", "csi", "driver"), rec->cfg.driver_name) ||
        !streq(JSTR(pv, "spec", "persistentVolumeReclaimPolicy"), "Delete") || !cls)
        return 0;
    cJSON_ArrayForEach(sc, classes) if (streq(JSTR(sc, "metadata", "name"), cls)) ordered =
        prov_class_ordered(sc);
    if (!ordered)
        return 0;
    if (streq(phase, "Released"))
        return 1;
    if (streq(phase, "Bound")) {
        _cleanup_json_ cJSON *c = kube_informer_get(
            rec->claims, JSTR(pv, "spec", "claimRef", "namespace"),
            JSTR(pv, "spec", "claimRef", "name") ? JSTR(pv, "spec", "claimRef", "name") : "");
        if (!c || JGET(c, "metadata", "deletionTimestamp") ||
            !streq(JSTR(c, "metadata", "uid"), JSTR(pv, "spec", "claimRef", "uid")))
            return 2;
    }
    return 0;
}

/* The release group of a claim name "T-S-N" in ns: "ns/T-S" and N, or -EINVAL when the name
 * has no ordinal suffix (then it is released unordered: approved at once). The set may be gone
 * already (whenDeleted: Delete), so the name alone decides. */
static int group_of(const char *ns, const char *claim, char *buf, size_t n, int32_t *ret_ordinal)
{
    const char *dash = claim ? strrchr(claim, '-') : NULL;
    int32_t ord;

    if (!ns || !dash || dash == claim)
        return -EINVAL;
    ord = model_parse_ordinal(dash + 1, strlen(dash + 1));
    if (ord < 0)
        return -EINVAL;
    if (snprintf(buf, n, "%s/%.*s", ns, (int)(dash - claim), claim) >= (int)n)
        return -ENAMETOOLONG;
    *ret_ordinal = ord;
    return 0;
}

static int approve(struct rec *rec, const char *pvname, int32_t ordinal, const char *group)
{
    _cleanup_json_ cJSON *patch =
        cJSON_Parse("{\"metadata\":{\"annotations\":{\"" PROV_ANN_RELEASE "\":\"approved\"}}}");
    struct kube_status st;
    cJSON *out = NULL;
    int r;

    if (!patch)
        return -ENOMEM;
    r = kube_patch(rec->cfg.client, &kube_persistentvolumes, NULL, pvname, NULL, patch, &out, &st);
    cJSON_Delete(out);
    if (r == 0)
        log_info("release of PersistentVolume %s (ordinal %d of %s) approved", pvname, (int)ordinal,
                 group);
    return r == -ENOENT ? 0 : r;
}

/* One pass over every Released PV of an ordered class: per group, model_release_next() says
 * which to approve now (the highest ordinal, once no approved one is still in progress). */
static int sync_release(struct rec *rec)
{
    _cleanup_json_ cJSON *pvs = kube_informer_list(rec->pvs);
    _cleanup_json_ cJSON *classes = kube_informer_list(rec->classes);
    _cleanup_json_ cJSON *done = cJSON_CreateObject(); /* groups handled */
    const cJSON *pv, *q;
    double retry = 0;
    int err = 0;

    if (!pvs || !classes || !done)
        return -ENOMEM;
    if (!rec->cfg.leading(rec->cfg.leading_ud))
        return 0;
    cJSON_ArrayForEach(pv, pvs)
    {
        char group[600], g2[600];
        int32_t ord;
        size_t n = 0, idx[64];
        struct model_release rel[256];
        const cJSON *members[256];
        bool pending[256];

        if (release_role(rec, pv, classes) != 1)
            continue;
        if (group_of(JSTR(pv, "spec", "claimRef", "namespace"),
                     JSTR(pv, "spec", "claimRef", "name"), group, sizeof(group), &ord) < 0) {
            if (!streq(JSTR(pv, "metadata", "annotations", PROV_ANN_RELEASE), "approved"))
                approve(rec, kube_obj_name(pv), -1, "no ordinal");
            continue;
        }
        if (cJSON_GetObjectItemCaseSensitive(done, group))
            continue;
        cJSON_AddTrueToObject(done, group);
        /* Every member of the group: waiting (not approved, or not Released yet) or approved
         * (deletion running). */
        cJSON_ArrayForEach(q, pvs)
        {
            int32_t o2;
            int role;
            if (n == ARRAY_SIZE(rel) || (role = release_role(rec, q, classes)) == 0 ||
                group_of(JSTR(q, "spec", "claimRef", "namespace"),
                         JSTR(q, "spec", "claimRef", "name"), g2, sizeof(g2), &o2) < 0 ||
                strcmp(g2, group) != 0)
                continue;
            bool ok = role == 1 &&
                      streq(JSTR(q, "metadata", "annotations", PROV_ANN_RELEASE), "approved");
            /* in_use: a Released PV's claim is gone, which pvc-protection allows only once no
             * pod uses it, and the pod object goes only after its kubelet unmounted: the
             * volume is unpublished and unstaged everywhere by then. */
            rel[n] = (struct model_release){.ordinal = o2,
                                            .state = ok ? MODEL_REL_APPROVED : MODEL_REL_WAITING};
            pending[n] = role == 2;
            members[n++] = q;
        }
        size_t k = model_release_next(rel, n, idx, ARRAY_SIZE(idx));
        for (size_t i = 0; i < k; i++) {
            const cJSON *m = members[idx[i]];
            const char *ts = JSTR(m, "status", "lastPhaseTransitionTime");
            double since = 0;

            if (pending[idx[i]])
                continue; /* its PV turns Released soon: that event brings us back */
            /* Releases that come together (a Parallel scale-down, a set deletion, claims
             * deleted by hand) reach their PVs over a moment: let them gather first. */
            if (ts && kube__parse_time(ts, &since) == 0 &&
                kube__wall() - since < REC_RELEASE_SETTLE_S) {
                double left = REC_RELEASE_SETTLE_S - (kube__wall() - since) + 0.05;
                retry = retry == 0 || left < retry ? left : retry;
                continue;
            }
            int r = approve(rec, kube_obj_name(m), rel[idx[i]].ordinal, group);
            if (r < 0)
                err = r;
        }
    }
    if (retry > 0)
        kube_queue_add_after(rec->queue, "R", retry);
    return err;
}

/* ---- the inventory's ordinals ---- */

static const char *const OV_STATES[] = {"Bound", "Released", "Retained", "Orphaned", "Deleting"};

/* The static copy of state s, or NULL. */
static const char *state_const(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(OV_STATES); i++)
        if (strcmp(OV_STATES[i], s) == 0)
            return OV_STATES[i];
    return NULL;
}

static void set_event(struct rec *rec, const cJSON *sts, const char *type, const char *reason,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void set_event(struct rec *rec, const cJSON *sts, const char *type, const char *reason,
                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    cJSON *ev;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ev = kube_event_new(sts, "StatefulSet", "apps/v1", type, reason, msg, REC_COMPONENT,
                        rec->cfg.identity);
    if (ev)
        kube_recorder_post(rec->events, JSTR(sts, "metadata", "namespace"), ev);
}

/* What an OV state change means for its set, as an event: reason, type and a sentence. */
static const char *transition_reason(const char *state, const char **type, const char **what)
{
    *type = "Normal";
    if (streq(state, "Retained")) {
        *what = "its claim is gone, policy Retain: the data is kept for re-adoption";
        return "VolumeRetained";
    }
    if (streq(state, "Released")) {
        *what = "its claim is gone, policy Delete: the store is deleted next";
        return "VolumeReleased";
    }
    if (streq(state, "Orphaned")) {
        *type = "Warning";
        *what = "no PersistentVolume refers to its store any more; it is kept until "
                "`kubectl ordinal reclaim`";
        return "VolumeOrphaned";
    }
    return NULL;
}

/*
 * Every OrdinalVolume: the set, template and ordinal of its claim (status.claim, else the key
 * spec.key "ns/claim") into status when they differ, and an event on the set when its state
 * turned Retained, Released or Orphaned (seen by this instance; a state first seen after a
 * restart says nothing), or went from Retained back to Bound (VolumeReadopted).
 */
static int sync_ovs(struct rec *rec)
{
    _cleanup_json_ cJSON *ovs = kube_informer_list(rec->ovs);
    _cleanup_json_ cJSON *sets = kube_informer_list(rec->sets);
    const cJSON *ov, *s;
    int err = 0;

    if (!ovs || !sets)
        return -ENOMEM;
    if (!rec->cfg.leading(rec->cfg.leading_ud))
        return 0;
    cJSON_ArrayForEach(ov, ovs)
    {
        const char *name = kube_obj_name(ov), *key = JSTR(ov, "spec", "key");
        const char *cns = JSTR(ov, "status", "claim", "namespace");
        const char *cname = JSTR(ov, "status", "claim", "name");
        const char *state = state_const(JSTR(ov, "status", "state")), *prev;
        char kns[64], kname[256];
        const cJSON *match = NULL;
        struct model_set set;
        size_t ti = 0;
        int32_t ord = -1;

        if (!name)
            continue;
        if ((!cns || !cname) && key) {
            const char *slash = strchr(key, '/');
            if (slash && (size_t)(slash - key) < sizeof(kns) && strlen(slash + 1) < sizeof(kname)) {
                snprintf(kns, sizeof(kns), "%.*s", (int)(slash - key), key);
                snprintf(kname, sizeof(kname), "%s", slash + 1);
                cns = kns;
                cname = kname;
            }
        }
        cJSON_ArrayForEach(s, sets)
        {
            if (!cns || !streq(JSTR(s, "metadata", "namespace"), cns) ||
                model_set_from_json(s, &set) < 0)
                continue;
            if (model_claim_name_match(&set, cname, &ti, &ord) == 0) {
                match = s;
                break;
            }
        }
        if (match && (!streq(JSTR(ov, "status", "statefulSet"), set.name) ||
                      !streq(JSTR(ov, "status", "template"), set.templates[ti]) ||
                      !cJSON_IsNumber(JGET(ov, "status", "ordinal")) ||
                      (int32_t)JGET(ov, "status", "ordinal")->valuedouble != ord)) {
            _cleanup_json_ cJSON *p = cJSON_CreateObject();
            cJSON *st = p ? cJSON_AddObjectToObject(p, "status") : NULL;
            struct kube_status ks;
            cJSON *out = NULL;
            if (!st)
                return -ENOMEM;
            cJSON_AddStringToObject(st, "statefulSet", set.name);
            cJSON_AddStringToObject(st, "template", set.templates[ti]);
            cJSON_AddNumberToObject(st, "ordinal", ord);
            int r;
            r = kube_patch(rec->cfg.client, &kube_ordinalvolumes, NULL, name, "status", p, &out,
                           &ks);
            cJSON_Delete(out);
            if (r < 0 && r != -ENOENT)
                err = r;
        }
        pthread_mutex_lock(&rec->mu);
        prev = kube__map_get(&rec->states, name);
        if (state)
            kube__map_put(&rec->states, name, (void *)(uintptr_t)state, NULL);
        pthread_mutex_unlock(&rec->mu);
        if (!match || !state || !prev || prev == state)
            continue;
        const char *type, *what, *reason = transition_reason(state, &type, &what);
        if (!reason && streq(prev, "Retained") && streq(state, "Bound")) {
            reason = "VolumeReadopted";
            what = "a new claim of the same name took the retained data back";
        }
        if (reason)
            set_event(rec, match, type, reason, "ordinal %d (claim %s, OrdinalVolume %s): %s",
                      (int)ord, cname, name, what);
    }
    return err;
}

static void ov_changed(void *ud, const cJSON *obj)
{
    (void)obj;
    kube_queue_add(((struct rec *)ud)->queue, "O");
}

static void ov_updated(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    (void)old_obj;
    ov_changed(ud, obj);
}

static void ov_deleted(void *ud, const cJSON *obj)
{
    struct rec *rec = ud;
    const char *name = kube_obj_name(obj);

    if (!name)
        return;
    pthread_mutex_lock(&rec->mu);
    kube__map_del(&rec->states, name);
    pthread_mutex_unlock(&rec->mu);
}

/* ---- node loss ---- */

/* A grace like "90s", "5m", "1h" or "1h30m" (Go duration units s, m, h) into seconds; -EINVAL. */
static int parse_grace(const char *s, double *ret)
{
    double total = 0;
    const char *p = s;

    if (!s || !*s)
        return -EINVAL;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v < 0)
            return -EINVAL;
        double unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : 0;
        if (unit == 0)
            return -EINVAL;
        total += v * unit;
        p = end + 1;
    }
    if (total > 365.0 * 86400)
        return -EINVAL;
    *ret = total;
    return 0;
}

/* The node a PV's store lives on (its topology term), borrowed, or NULL. */
static const char *pv_node(const cJSON *pv)
{
    const cJSON *terms = JGET(pv, "spec", "nodeAffinity", "required", "nodeSelectorTerms"), *t, *x,
                *v;

    cJSON_ArrayForEach(t, terms)
    {
        cJSON_ArrayForEach(x, JGET(t, "matchExpressions"))
        {
            if (!streq(JSTR(x, "key"), CSI_TOPOLOGY_KEY))
                continue;
            cJSON_ArrayForEach(v, JGET(x, "values")) if (jstr(v)) return jstr(v);
        }
    }
    return NULL;
}

/* Whether node `name` is lost: seen and then deleted, or NotReady for longer than grace.
 * *ret_why says which. */
static bool node_lost(struct rec *rec, const char *name, double grace, char *why, size_t n)
{
    _cleanup_json_ cJSON *node = kube_informer_get(rec->nodes, NULL, name);
    const cJSON *c;
    bool gone;

    if (!node) {
        pthread_mutex_lock(&rec->mu);
        gone = kube__map_get(&rec->gone, name) != NULL;
        pthread_mutex_unlock(&rec->mu);
        if (gone)
            snprintf(why, n, "node %s is gone", name);
        return gone;
    }
    cJSON_ArrayForEach(c, JGET(node, "status", "conditions"))
    {
        double since = 0;
        if (!streq(JSTR(c, "type"), "Ready") || streq(JSTR(c, "status"), "True"))
            continue;
        if (kube__parse_time(JSTR(c, "lastTransitionTime") ? JSTR(c, "lastTransitionTime") : "",
                             &since) == 0 &&
            kube__wall() - since > grace) {
            snprintf(why, n, "node %s is NotReady for %.0f s (grace %.0f s)", name,
                     kube__wall() - since, grace);
            return true;
        }
    }
    return false;
}

static bool once(struct rec *rec, struct kube__map *m, const char *key)
{
    bool seen;

    pthread_mutex_lock(&rec->mu);
    seen = kube__map_get(m, key) != NULL;
    if (!seen)
        kube__map_put(m, key, (void *)1, NULL);
    pthread_mutex_unlock(&rec->mu);
    return !seen;
}

/*
 * Every claim of every set whose store lives on a lost node: NodeLost (Warning) on the set and
 * the claim; with the set's opt-in ordinal.csi.dev/on-node-loss: recreate, the claim is deleted
 * (and, reclaim policy Delete, its PV) so the StatefulSet controller recreates the ordinal
 * elsewhere with an empty volume. Pending claims whose selected-node is a deleted node get the
 * annotation removed, so that the scheduler picks again.
 */
static int sync_nodes(struct rec *rec)
{
    _cleanup_json_ cJSON *sets = kube_informer_list(rec->sets);
    _cleanup_json_ cJSON *claims = kube_informer_list(rec->claims);
    const cJSON *s, *c;
    int err = 0;

    if (!sets || !claims)
        return -ENOMEM;
    if (!rec->cfg.leading(rec->cfg.leading_ud))
        return 0;
    cJSON_ArrayForEach(c, claims)
    {
        const char *sel = JSTR(c, "metadata", "annotations", PROV_ANN_SELECTED_NODE);
        char why[160];
        if (!sel || (JSTR(c, "spec", "volumeName") && JSTR(c, "spec", "volumeName")[0]) ||
            JGET(c, "metadata", "deletionTimestamp"))
            continue;
        bool gone;
        pthread_mutex_lock(&rec->mu);
        gone = kube__map_get(&rec->gone, sel) != NULL;
        pthread_mutex_unlock(&rec->mu);
        if (!gone || !node_lost(rec, sel, 0, why, sizeof(why)))
            continue;
        _cleanup_json_ cJSON *p =
            cJSON_Parse("{\"metadata\":{\"annotations\":{\"" PROV_ANN_SELECTED_NODE "\":null}}}");
        struct kube_status st;
        cJSON *out = NULL;
        int r;
        r = kube_patch(rec->cfg.client, &kube_persistentvolumeclaims,
                       JSTR(c, "metadata", "namespace"), kube_obj_name(c), NULL, p, &out, &st);
        cJSON_Delete(out);
        if (r == 0)
            claim_event(rec, c, "Warning", "NodeLost",
                        "%s: its selected-node annotation is cleared so that it is scheduled "
                        "again",
                        why);
    }
    cJSON_ArrayForEach(s, sets)
    {
        struct model_set set;
        const char *opt = JSTR(s, "metadata", "annotations", REC_ANN_ON_NODE_LOSS);
        const char *gs = JSTR(s, "metadata", "annotations", REC_ANN_NODE_LOSS_GRACE);
        bool recreate = streq(opt, "recreate");
        double grace = REC_NODE_LOSS_GRACE_S;

        if (model_set_from_json(s, &set) < 0)
            continue;
        if (gs && parse_grace(gs, &grace) < 0) {
            grace = REC_NODE_LOSS_GRACE_S;
            log_warn("StatefulSet %s/%s: %s \"%s\" is not a duration; using %.0f s", set.ns,
                     set.name, REC_ANN_NODE_LOSS_GRACE, gs, grace);
        }
        cJSON_ArrayForEach(c, claims)
        {
            struct model_claim_ref ref;
            const char *vol = JSTR(c, "spec", "volumeName"), *cname = kube_obj_name(c);
            char why[160], key[600];

            if (!vol || !vol[0] || JGET(c, "metadata", "deletionTimestamp") ||
                model_claim_match(&set, c, &ref) < 0)
                continue;
            _cleanup_json_ cJSON *pv = kube_informer_get(rec->pvs, NULL, vol);
            const char *node = pv_node(pv);
            if (!pv || !streq(JSTR(pv, "spec", "csi", "driver"), rec->cfg.driver_name) || !node ||
                !node_lost(rec, node, grace, why, sizeof(why)))
                continue;
            snprintf(key, sizeof(key), "%s/%s", set.ns, cname);
            if (!recreate) {
                if (once(rec, &rec->warned, key)) {
                    set_event(rec, s, "Warning", "NodeLost",
                              "ordinal %d (claim %s): its volume %s lives on %s; its pod cannot "
                              "run elsewhere. Set %s: recreate to recreate the ordinal on another "
                              "node with an empty volume",
                              (int)ref.ordinal, cname, vol, why, REC_ANN_ON_NODE_LOSS);
                    claim_event(rec, c, "Warning", "NodeLost", "its volume %s lives on %s", vol,
                                why);
                }
                continue;
            }
            set_event(rec, s, "Warning", "NodeLost",
                      "ordinal %d (claim %s): its volume %s lives on %s: deleting the claim%s so "
                      "that the ordinal is recreated on another node with an empty volume",
                      (int)ref.ordinal, cname, vol, why,
                      streq(JSTR(pv, "spec", "persistentVolumeReclaimPolicy"), "Delete")
                          ? " and its PersistentVolume (policy Delete)"
                          : " (its PersistentVolume is kept: policy Retain)");
            struct kube_delete_opts opts = {.precondition_uid = JSTR(c, "metadata", "uid"),
                                            .grace_period_seconds = -1};
            struct kube_status st;
            cJSON *out = NULL;
            int r;
            r = kube_delete(rec->cfg.client, &kube_persistentvolumeclaims, set.ns, cname, &opts,
                            &out, &st);
            cJSON_Delete(out);
            out = NULL;
            if (r < 0 && r != -ENOENT) {
                err = r;
                continue;
            }
            if (streq(JSTR(pv, "spec", "persistentVolumeReclaimPolicy"), "Delete")) {
                r = kube_delete(rec->cfg.client, &kube_persistentvolumes, NULL, vol, NULL, &out,
                                &st);
                cJSON_Delete(out);
                if (r < 0 && r != -ENOENT)
                    err = r;
            }
        }
    }
    return err;
}

static void node_changed(void *ud, const cJSON *obj)
{
    struct rec *rec = ud;
    const char *name = kube_obj_name(obj);

    if (name) {
        pthread_mutex_lock(&rec->mu);
        kube__map_del(&rec->gone, name); /* back (or new): not lost */
        pthread_mutex_unlock(&rec->mu);
    }
    kube_queue_add(rec->queue, "N");
}

static void node_updated(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    (void)old_obj;
    node_changed(ud, obj);
}

static void node_deleted(void *ud, const cJSON *obj)
{
    struct rec *rec = ud;
    const char *name = kube_obj_name(obj);

    if (!name)
        return;
    pthread_mutex_lock(&rec->mu);
    kube__map_put(&rec->gone, name, (void *)1, NULL);
    pthread_mutex_unlock(&rec->mu);
    kube_queue_add(rec->queue, "N");
}

/* ---- wiring ---- */

static void queue_claims(struct rec *rec, const char *ns)
{
    _cleanup_json_ cJSON *all = kube_informer_list(rec->claims);
    const cJSON *c;
    char key[600];

    cJSON_ArrayForEach(c, all)
    {
        const char *cns = JSTR(c, "metadata", "namespace"), *name = JSTR(c, "metadata", "name");
        if (!cns || !name || (ns && strcmp(ns, cns) != 0) || prov_claim_admitted(c) ||
            (JSTR(c, "spec", "volumeName") && JSTR(c, "spec", "volumeName")[0]))
            continue;
        snprintf(key, sizeof(key), "c:%s/%s", cns, name);
        kube_queue_add(rec->queue, key);
    }
}

static int sync_key(void *ud, const char *key)
{
    struct rec *rec = ud;
    char ns[256], name[320];

    if (strcmp(key, "*") == 0) {
        queue_claims(rec, NULL);
        kube_queue_add(rec->queue, "R");
        kube_queue_add(rec->queue, "O");
        kube_queue_add(rec->queue, "N");
        return 0;
    }
    if (strcmp(key, "O") == 0) {
        if (!kube_informer_has_synced(rec->ovs) || !kube_informer_has_synced(rec->sets)) {
            /* no CRD (yet): look again now and then; the OV informer's sync brings us back */
            kube_queue_add_after(rec->queue, key, 2.0);
            return 0;
        }
        int r = sync_ovs(rec);
        return r == -ECANCELED ? 0 : r;
    }
    if (strcmp(key, "N") == 0) {
        if (!kube_informer_has_synced(rec->nodes) || !kube_informer_has_synced(rec->pvs) ||
            !kube_informer_has_synced(rec->sets) || !kube_informer_has_synced(rec->claims)) {
            kube_queue_add_after(rec->queue, key, 0.5);
            return 0;
        }
        int r = sync_nodes(rec);
        /* NotReady nodes cross their grace without an event: look again every 30 s. */
        kube_queue_add_after(rec->queue, key, 30.0);
        return r == -ECANCELED ? 0 : r;
    }
    if (strcmp(key, "R") == 0) {
        if (!kube_informer_has_synced(rec->pvs) || !kube_informer_has_synced(rec->classes)) {
            kube_queue_add_after(rec->queue, key, 0.5);
            return 0;
        }
        int r = sync_release(rec);
        return r == -ECANCELED ? 0 : r;
    }
    if (strncmp(key, "n:", 2) == 0) {
        queue_claims(rec, key + 2);
        return 0;
    }
    if (strncmp(key, "c:", 2) == 0) {
        const char *slash = strchr(key + 2, '/');
        if (!slash || (size_t)(slash - key - 2) >= sizeof(ns))
            return 0;
        snprintf(ns, sizeof(ns), "%.*s", (int)(slash - key - 2), key + 2);
        snprintf(name, sizeof(name), "%s", slash + 1);
        int r = sync_claim(rec, ns, name);
        if (r < 0 && r != -ECANCELED)
            log_debug("reconciler: sync %s: %s; retrying with backoff", key, strerror(-r));
        return r == -ECANCELED ? 0 : r;
    }
    return 0;
}

static void queue_ns_of(struct rec *rec, const cJSON *obj)
{
    const char *ns = JSTR(obj, "metadata", "namespace");
    char key[300];

    if (ns && snprintf(key, sizeof(key), "n:%s", ns) < (int)sizeof(key))
        kube_queue_add(rec->queue, key);
}

static void claim_add(void *ud, const cJSON *obj)
{
    struct rec *rec = ud;
    const char *ns = JSTR(obj, "metadata", "namespace"), *name = JSTR(obj, "metadata", "name");
    char key[600];

    if (ns && name && snprintf(key, sizeof(key), "c:%s/%s", ns, name) < (int)sizeof(key))
        kube_queue_add(rec->queue, key);
    if (phase_of(obj) == MODEL_PHASE_BOUND)
        queue_ns_of(rec, obj);
}

static void claim_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    struct rec *rec = ud;

    claim_add(ud, obj);
    /* A claim that became Bound lets the next ordinal go. */
    if (phase_of(obj) == MODEL_PHASE_BOUND && phase_of(old_obj) != MODEL_PHASE_BOUND)
        queue_ns_of(rec, obj);
}

static void claim_delete(void *ud, const cJSON *obj)
{
    struct rec *rec = ud;
    const char *ns = JSTR(obj, "metadata", "namespace"), *name = JSTR(obj, "metadata", "name");
    char key[600];

    if (!ns || !name)
        return;
    kube_queue_add(rec->queue, "R");
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&rec->mu);
    kube__map_del(&rec->waiting, key);
    pthread_mutex_unlock(&rec->mu);
}

static void set_add(void *ud, const cJSON *obj)
{
    queue_ns_of(ud, obj);
    kube_queue_add(((struct rec *)ud)->queue, "O");
}

static void set_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    (void)old_obj;
    set_add(ud, obj);
}

static void class_add(void *ud, const cJSON *obj)
{
    (void)obj;
    kube_queue_add(((struct rec *)ud)->queue, "*");
}

static void class_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    (void)old_obj;
    class_add(ud, obj);
}

static void pv_changed(void *ud, const cJSON *obj)
{
    (void)obj;
    kube_queue_add(((struct rec *)ud)->queue, "R");
}

static void pv_updated(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    (void)old_obj;
    pv_changed(ud, obj);
}

void rec_resync(struct rec *rec)
{
    if (rec)
        kube_queue_add(rec->queue, "*");
}

unsigned long rec_admitted(const struct rec *rec)
{
    return rec ? atomic_load(&((struct rec *)(uintptr_t)rec)->admitted) : 0;
}

void rec_stop(struct rec *rec)
{
    if (!rec)
        return;
    /* Every thread that reads the caches is joined before any cache is freed (as prov_stop):
     * the workers, whose sync in flight reads all six informers (kube_queue_shutdown only stops
     * them taking more), then every informer, whose handlers read the others. */
    if (rec->queue)
        kube_queue_stop(rec->queue);
    struct kube_informer *infs[] = {rec->sets, rec->claims, rec->classes,
                                    rec->pvs,  rec->ovs,    rec->nodes};
    for (size_t i = 0; i < ARRAY_SIZE(infs); i++)
        if (infs[i])
            kube_informer_stop(infs[i]);
    kube_informer_free(rec->sets);
    kube_informer_free(rec->claims);
    kube_informer_free(rec->classes);
    kube_informer_free(rec->pvs);
    kube_informer_free(rec->ovs);
    kube_informer_free(rec->nodes);
    kube_queue_free(rec->queue);
    kube_recorder_free(rec->events);
    kube__map_release(&rec->waiting, NULL);
    kube__map_release(&rec->states, NULL);
    kube__map_release(&rec->gone, NULL);
    kube__map_release(&rec->warned, NULL);
    pthread_mutex_destroy(&rec->mu);
    free(rec);
}

struct rec *rec_start(const struct rec_config *cfg)
{
    struct rec *rec = calloc(1, sizeof(*rec));
    struct kube_informer_handlers hs, hc, hk, hv, ho, hn;

    if (!rec)
        return NULL;
    rec->cfg = *cfg;
    atomic_init(&rec->admitted, 0);
    pthread_mutex_init(&rec->mu, NULL);
    kube__map_init(&rec->waiting);
    kube__map_init(&rec->states);
    kube__map_init(&rec->gone);
    kube__map_init(&rec->warned);
    rec->queue = kube_queue_new(KUBE_QUEUE_BASE_DELAY, KUBE_QUEUE_MAX_DELAY);
    rec->events = kube_recorder_new(cfg->client, 0);
    hs = (struct kube_informer_handlers){set_add, set_update, set_add, rec};
    hc = (struct kube_informer_handlers){claim_add, claim_update, claim_delete, rec};
    hk = (struct kube_informer_handlers){class_add, class_update, NULL, rec};
    hv = (struct kube_informer_handlers){pv_changed, pv_updated, pv_changed, rec};
    ho = (struct kube_informer_handlers){ov_changed, ov_updated, ov_deleted, rec};
    hn = (struct kube_informer_handlers){node_changed, node_updated, node_deleted, rec};
    if (!rec->queue || !rec->events)
        goto fail;
    rec->sets = kube_informer_new(cfg->client, &kube_statefulsets, NULL, NULL, NULL, &hs);
    rec->claims =
        kube_informer_new(cfg->client, &kube_persistentvolumeclaims, NULL, NULL, NULL, &hc);
    rec->classes = kube_informer_new(cfg->client, &kube_storageclasses, NULL, NULL, NULL, &hk);
    rec->pvs = kube_informer_new(cfg->client, &kube_persistentvolumes, NULL, NULL, NULL, &hv);
    rec->ovs = kube_informer_new(cfg->client, &kube_ordinalvolumes, NULL, NULL, NULL, &ho);
    rec->nodes = kube_informer_new(cfg->client, &kube_nodes, NULL, NULL, NULL, &hn);
    if (!rec->sets || !rec->claims || !rec->classes || !rec->pvs || !rec->ovs || !rec->nodes)
        goto fail;
    if (kube_informer_start(rec->sets) < 0 || kube_informer_start(rec->claims) < 0 ||
        kube_informer_start(rec->classes) < 0 || kube_informer_start(rec->pvs) < 0 ||
        kube_informer_start(rec->ovs) < 0 || kube_informer_start(rec->nodes) < 0)
        goto fail;
    if (kube_queue_run(rec->queue, REC_WORKERS, sync_key, rec) < 0)
        goto fail;
    log_info("reconciler: started (ordered provisioning for classes with %s: ordered)",
             PROV_PARAM_ORDERING);
    return rec;
fail:
    log_error("reconciler: start-up failed");
    rec_stop(rec);
    return NULL;
}
