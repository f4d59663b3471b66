/*
 * Lease leader election (kube_leader.h). The elector thread alternates between acquiring and
 * renewing; each attempt is one GET and at most one write, so a failed attempt costs at most two
 * requests per retry period.
 *
 * Giving up in time: leadership is valid until the start of the last successful renewal plus
 * renew_deadline. Every request of the renew loop carries that instant as its deadline (its
 * timeout is cut to it and no retry starts after it), so the elector notices the loss at the
 * deadline itself, not after a 30 s request timeout and its retries; and kube_leader_is_leader()
 * compares with the deadline too, so no caller acts on a lease past it even for the moment the
 * elector thread needs to wake. Measuring from the start of the request (not its answer) keeps
 * the deadline before the instant any other candidate, which judges expiry from when it saw the
 * renewal, may take over: renew_deadline < lease_duration.
 *
 * Threading: l->mu guards `leading`, `leading_until` and `lease_known` and pairs with no
 * condition (sleeps use the client's kube__sleep with l->stop); it is a leaf lock never held
 * across a request or a callback.
 */
#include "kube_leader.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_util.h"
#include "log.h"
#include "util.h"

#define JITTER 1.2

struct kube_leader {
    struct kube_client *client;    /* borrowed */
    char *ns, *name, *identity;    /* owned */
    struct kube_leader_config cfg; /* strings point to the owned copies */
    struct kube_lease_observation obs;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu;
    bool leading;
    double leading_until; /* kube__now() seconds */
    bool lease_known;
};

/* Pause between renewal attempts after a failed one: several attempts fit in a deadline. */
#define RENEW_RETRY_S 1.0
/* Bound on releasing the lease at shutdown: exit promptly even if the API server is away. */
#define RELEASE_TIMEOUT_S 3.0

static const cJSON *spec_of(const cJSON *lease)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");

    return cJSON_IsObject(spec) ? spec : NULL;
}

static const char *spec_str(const cJSON *spec, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, field);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* An integer field in [0, max], else 0. */
static long spec_int(const cJSON *spec, const char *field, long max)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, field);

    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > (double)max)
        return 0;
    return (long)v->valuedouble;
}

enum kube_leader_action kube_leader_decide(const cJSON *lease, const char *identity, double now,
                                           struct kube_lease_observation *obs)
{
    const cJSON *spec;
    const char *holder;
    long duration;
    char record[sizeof(obs->record)];

    if (!lease)
        return KUBE_LEADER_CREATE;
    spec = spec_of(lease);
    holder = spec_str(spec, "holderIdentity");
    duration = spec_int(spec, "leaseDurationSeconds", 86400L * 365);
    snprintf(record, sizeof(record), "%.200s|%ld|%.40s|%.40s|%ld", holder, duration,
             spec_str(spec, "acquireTime"), spec_str(spec, "renewTime"),
             spec_int(spec, "leaseTransitions", 1L << 30));
    if (strcmp(record, obs->record) != 0) {
        memcpy(obs->record, record, sizeof(record));
        obs->observed_at = now;
    }
    if (holder[0] && strcmp(holder, identity) == 0)
        return KUBE_LEADER_RENEW;
    if (holder[0] && obs->observed_at + (double)duration > now)
        return KUBE_LEADER_WAIT;
    return KUBE_LEADER_ACQUIRE;
}

static int set_field(cJSON *obj, const char *field, cJSON *v)
{
    if (!v)
        return -ENOMEM;
    if (cJSON_GetObjectItemCaseSensitive(obj, field))
        return cJSON_ReplaceItemInObjectCaseSensitive(obj, field, v) ? 0 : -ENOMEM;
    return cJSON_AddItemToObject(obj, field, v) ? 0 : -ENOMEM;
}

static cJSON *spec_get_or_add(cJSON *lease)
{
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");

    if (cJSON_IsObject(spec))
        return spec;
    spec = cJSON_CreateObject();
    if (set_field(lease, "spec", spec) < 0)
        return NULL;
    return spec;
}

int kube_lease_fill(cJSON *lease, enum kube_leader_action action, const char *identity,
                    double lease_duration, double wall)
{
    char now[32];
    cJSON *spec;
    bool was_me;
    long transitions;
    int r;

    if (action != KUBE_LEADER_ACQUIRE && action != KUBE_LEADER_RENEW)
        return -EINVAL;
    r = kube__format_microtime(wall, now, sizeof(now));
    if (r < 0)
        return r;
    spec = spec_get_or_add(lease);
    if (!spec)
        return -ENOMEM;
    was_me = strcmp(spec_str(spec, "holderIdentity"), identity) == 0;
    transitions = spec_int(spec, "leaseTransitions", 1L << 30);
    if ((r = set_field(spec, "holderIdentity", cJSON_CreateString(identity))) < 0 ||
        (r = set_field(spec, "leaseDurationSeconds",
                       cJSON_CreateNumber((double)(long)(lease_duration + 0.5)))) < 0 ||
        (r = set_field(spec, "renewTime", cJSON_CreateString(now))) < 0)
        return r;
    if (was_me && spec_str(spec, "acquireTime")[0])
        return 0;
    if ((r = set_field(spec, "acquireTime", cJSON_CreateString(now))) < 0)
        return r;
    return set_field(spec, "leaseTransitions",
                     cJSON_CreateNumber((double)(was_me ? transitions : transitions + 1)));
}

cJSON *kube_lease_new(const char *ns, const char *name, const char *identity, double lease_duration,
                      double wall)
{
    cJSON *l = cJSON_CreateObject(), *md, *spec;
    char now[32];

    if (!l || kube__format_microtime(wall, now, sizeof(now)) < 0)
        goto fail;
    if (!cJSON_AddStringToObject(l, "apiVersion", "coordination.k8s.io/v1") ||
        !cJSON_AddStringToObject(l, "kind", "Lease"))
        goto fail;
    md = cJSON_AddObjectToObject(l, "metadata");
    if (!md || !cJSON_AddStringToObject(md, "name", name) ||
        !cJSON_AddStringToObject(md, "namespace", ns))
        goto fail;
    spec = cJSON_AddObjectToObject(l, "spec");
    if (!spec || !cJSON_AddStringToObject(spec, "holderIdentity", identity) ||
        !cJSON_AddNumberToObject(spec, "leaseDurationSeconds",
                                 (double)(long)(lease_duration + 0.5)) ||
        !cJSON_AddStringToObject(spec, "acquireTime", now) ||
        !cJSON_AddStringToObject(spec, "renewTime", now) ||
        !cJSON_AddNumberToObject(spec, "leaseTransitions", 0))
        goto fail;
    return l;
fail:
    cJSON_Delete(l);
    return NULL;
}

int kube_lease_release(cJSON *lease, double wall)
{
    char now[32];
    cJSON *spec;
    int r;

    r = kube__format_microtime(wall, now, sizeof(now));
    if (r < 0)
        return r;
    spec = spec_get_or_add(lease);
    if (!spec)
        return -ENOMEM;
    if ((r = set_field(spec, "holderIdentity", cJSON_CreateString(""))) < 0 ||
        (r = set_field(spec, "leaseDurationSeconds", cJSON_CreateNumber(1))) < 0)
        return r;
    return set_field(spec, "renewTime", cJSON_CreateString(now));
}

/* ---- the elector ---- */

struct kube_leader *kube_leader_new(struct kube_client *c, const struct kube_leader_config *cfg)
{
    struct kube_leader *l;
    struct kube_leader_config k = *cfg;

    if (k.lease_duration <= 0)
        k.lease_duration = 15;
    if (k.renew_deadline <= 0)
        k.renew_deadline = 10;
    if (k.retry_period <= 0)
        k.retry_period = 5;
    if (!(k.lease_duration > k.renew_deadline && k.renew_deadline > JITTER * k.retry_period) ||
        k.lease_duration < 1) {
        be_error(-EINVAL, "leader election: need lease duration > renew deadline > 1.2 x retry "
                          "period");
        return NULL;
    }
    if (!kube_name_valid(k.namespace) || !kube_name_valid(k.name) || !k.identity ||
        !k.identity[0] || strlen(k.identity) > 200) {
        be_error(-EINVAL, "leader election: bad lease namespace, name or identity");
        return NULL;
    }
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->ns = strdup(k.namespace);
    l->name = strdup(k.name);
    l->identity = strdup(k.identity);
    if (!l->ns || !l->name || !l->identity) {
        free(l->ns);
        free(l->name);
        free(l->identity);
        free(l);
        return NULL;
    }
    k.namespace = l->ns;
    k.name = l->name;
    k.identity = l->identity;
    l->cfg = k;
    l->client = c;
    pthread_mutex_init(&l->mu, NULL);
    atomic_init(&l->stop, false);
    return l;
}

/* One attempt, every request bounded by deadline (kube__now() seconds) and aborted by l->stop:
 * 1 when we hold the lease afterwards, 0 when not, -errno on a request error. */
static int try_acquire_or_renew(struct kube_leader *l, double deadline)
{
    struct kube_call_opts o = {.deadline = deadline, .max_retries = -1, .stop = &l->stop};
    cJSON *lease = NULL;
    enum kube_leader_action a;
    struct kube_status st;
    int r;

    r = kube_get_opts(l->client, &kube_leases, l->ns, l->name, &o, &lease, &st);
    if (r < 0 && r != -ENOENT)
        return r;
    a = kube_leader_decide(r == -ENOENT ? NULL : lease, l->identity, kube__now(), &l->obs);
    if (a == KUBE_LEADER_WAIT) {
        log_debug("leader election: lease %s/%s is held by %s; %s waits", l->ns, l->name,
                  spec_str(spec_of(lease), "holderIdentity"), l->identity);
        cJSON_Delete(lease);
        return 0;
    }
    if (a == KUBE_LEADER_CREATE) {
        cJSON *created = NULL;

        lease = kube_lease_new(l->ns, l->name, l->identity, l->cfg.lease_duration, kube__wall());
        if (!lease)
            return -ENOMEM;
        r = kube_create_opts(l->client, &kube_leases, l->ns, lease, &o, &created, &st);
        cJSON_Delete(lease);
        if (r == 0)
            kube_leader_decide(created, l->identity, kube__now(), &l->obs);
        cJSON_Delete(created);
        return r == 0 ? 1 : r == -EEXIST ? 0 : r;
    }
    r = kube_lease_fill(lease, a, l->identity, l->cfg.lease_duration, kube__wall());
    if (r == 0) {
        cJSON *updated = NULL;

        r = kube_update_opts(l->client, &kube_leases, l->ns, NULL, lease, &o, &updated, &st);
        if (r == 0)
            kube_leader_decide(updated, l->identity, kube__now(), &l->obs);
        cJSON_Delete(updated);
    }
    cJSON_Delete(lease);
    if (r == 0 && a == KUBE_LEADER_ACQUIRE)
        log_info("leader election: %s acquired lease %s/%s", l->identity, l->ns, l->name);
    return r == 0 ? 1 : r == KUBE_ECONFLICT ? 0 : r;
}

static int release(struct kube_leader *l)
{
    struct kube_call_opts o = {.deadline = kube__now() + RELEASE_TIMEOUT_S, .max_retries = 0};
    cJSON *lease = NULL;
    int r;

    r = kube_get_opts(l->client, &kube_leases, l->ns, l->name, &o, &lease, NULL);
    if (r < 0)
        return r;
    if (strcmp(spec_str(spec_of(lease), "holderIdentity"), l->identity) != 0) {
        cJSON_Delete(lease);
        return 0;
    }
    r = kube_lease_release(lease, kube__wall());
    if (r == 0)
        r = kube_update_opts(l->client, &kube_leases, l->ns, NULL, lease, &o, NULL, NULL);
    cJSON_Delete(lease);
    return r;
}

/* until: the instant leadership lapses unless renewed (ignored when v is false). */
static void set_leading(struct kube_leader *l, bool v, double until)
{
    pthread_mutex_lock(&l->mu);
    l->leading = v;
    l->leading_until = v ? until : 0;
    pthread_mutex_unlock(&l->mu);
}

static void set_known(struct kube_leader *l, bool v)
{
    pthread_mutex_lock(&l->mu);
    l->lease_known = v;
    pthread_mutex_unlock(&l->mu);
}

static bool stopping(struct kube_leader *l)
{
    return atomic_load(&l->stop) || kube_client_stopping(l->client);
}

/* Log the first failure of a streak; the rest, until a success, at debug level. */
static void note_failure(struct kube_leader *l, int r, int *streak)
{
    if ((*streak)++ == 0)
        log_warn("leader election: lease %s/%s: %s; retrying every %.0f s", l->ns, l->name,
                 strerror(-r), l->cfg.retry_period);
    else
        log_debug("leader election: lease %s/%s: %s", l->ns, l->name, strerror(-r));
}

static void *leader_main(void *arg)
{
    struct kube_leader *l = arg;
    int streak = 0;

    while (!stopping(l)) {
        double started, valid_until;
        int r;

        /* acquire */
        for (;;) {
            started = kube__now();
            r = try_acquire_or_renew(l, started + l->cfg.renew_deadline);
            if (r >= 0) {
                if (streak > 0)
                    log_info("leader election: lease %s/%s readable again", l->ns, l->name);
                streak = 0;
            }
            set_known(l, r >= 0);
            if (r == 1 || stopping(l))
                break;
            if (r < 0)
                note_failure(l, r, &streak);
            kube__sleep(l->client, l->cfg.retry_period * (1 + (JITTER - 1) * kube__rand()),
                        &l->stop);
            if (stopping(l))
                break;
        }
        if (r != 1)
            break;
        valid_until = started + l->cfg.renew_deadline;
        set_leading(l, true, valid_until);
        log_info("leader election: %s is the leader", l->identity);
        if (l->cfg.on_started_leading)
            l->cfg.on_started_leading(l->cfg.ud);
        /* renew: every request is bounded by valid_until; at valid_until leadership is gone */
        while (!stopping(l)) {
            double pause = l->cfg.retry_period;

            for (;;) {
                if (!kube__sleep(l->client, pause, &l->stop))
                    break;
                started = kube__now();
                if (started >= valid_until)
                    break;
                r = try_acquire_or_renew(l, valid_until);
                if (r == 1) {
                    valid_until = started + l->cfg.renew_deadline;
                    set_leading(l, true, valid_until);
                    break;
                }
                /* A failure or a conflict: try again until the deadline, as client-go does. */
                log_debug("leader election: renewal of %s/%s failed: %s", l->ns, l->name,
                          r < 0 ? strerror(-r) : "lease changed by another candidate");
                pause = RENEW_RETRY_S;
                if (kube__now() + pause >= valid_until)
                    pause = valid_until - kube__now();
                if (pause < 0)
                    pause = 0;
            }
            if (stopping(l) || kube__now() >= valid_until)
                break;
        }
        if (!stopping(l))
            log_warn("leader election: %s lost lease %s/%s: not renewed within %.0f s", l->identity,
                     l->ns, l->name, l->cfg.renew_deadline);
        set_leading(l, false, 0);
        if (l->cfg.on_stopped_leading)
            l->cfg.on_stopped_leading(l->cfg.ud);
        if (atomic_load(&l->stop) && !kube_client_stopping(l->client) &&
            kube__now() < valid_until) {
            r = release(l);
            if (r < 0)
                log_warn("leader election: release of %s/%s failed: %s", l->ns, l->name,
                         strerror(-r));
        }
    }
    return NULL;
}

int kube_leader_start(struct kube_leader *l)
{
    int r;

    if (l->running)
        return -EALREADY;
    atomic_store(&l->stop, false);
    r = pthread_create(&l->thread, NULL, leader_main, l);
    if (r != 0)
        return -r;
    l->running = true;
    return 0;
}

void kube_leader_stop(struct kube_leader *l)
{
    if (!l->running)
        return;
    atomic_store(&l->stop, true);
    kube__wake(l->client);
    pthread_join(l->thread, NULL);
    l->running = false;
}

void kube_leader_free(struct kube_leader *l)
{
    if (!l)
        return;
    kube_leader_stop(l);
    pthread_mutex_destroy(&l->mu);
    free(l->ns);
    free(l->name);
    free(l->identity);
    free(l);
}

bool kube_leader_is_leader(struct kube_leader *l)
{
    bool v;

    pthread_mutex_lock(&l->mu);
    v = l->leading && kube__now() < l->leading_until;
    pthread_mutex_unlock(&l->mu);
    return v;
}

bool kube_leader_lease_known(struct kube_leader *l)
{
    bool v;

    pthread_mutex_lock(&l->mu);
    v = l->lease_known;
    pthread_mutex_unlock(&l->mu);
    return v;
}
