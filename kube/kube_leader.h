/*
 * Leader election with a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
 *  - acquire: every retry_period (jittered up to x1.2) GET the lease; create it if missing; take
 *    it when it is free or expired, where "expired" is judged by the local clock from when this
 *    client last saw the lease record change (never by comparing the stored renewTime with our
 *    clock): observed_at + leaseDurationSeconds <= now;
 *  - renew: every retry_period; leadership lasts until the start of the last successful renewal
 *    plus renew_deadline: every renewal request is bounded by that instant (timeout cut to it,
 *    no retry after it) and leadership ends there, whatever the API server does;
 *  - release on kube_leader_stop(): holderIdentity "", leaseDurationSeconds 1, renewTime now, so
 *    another candidate takes over at once.
 * Updates are PUTs with the resourceVersion that was read, so two candidates cannot both win.
 * Times are MicroTime ("2006-01-02T15:04:05.000000Z").
 *
 * Threading: the elector runs on its own thread; on_started_leading and on_stopped_leading are
 * called on it and must return promptly (start or signal your own work). kube_leader_is_leader()
 * is safe from any thread. After losing the lease the elector goes back to acquiring; a daemon
 * that wants to exit instead does so from on_stopped_leading.
 */
#ifndef ORDINAL_KUBE_LEADER_H
#define ORDINAL_KUBE_LEADER_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "kube_client.h"

struct kube_leader_config {
    const char *namespace; /* of the Lease; copied */
    const char *name;      /* of the Lease; copied */
    const char *identity;  /* this candidate (e.g. pod name); copied */
    double lease_duration; /* seconds, default 15 */
    double renew_deadline; /* seconds, default 10 */
    double retry_period;   /* seconds, default 5 (the CSI sidecars' value) */
    void (*on_started_leading)(void *ud);
    void (*on_stopped_leading)(void *ud);
    void *ud;
};

struct kube_leader;

/* Validates lease_duration > renew_deadline > 1.2 * retry_period (-EINVAL otherwise, message in
 * be_last_error()); zero fields take the defaults. NULL on error. The client is borrowed. */
struct kube_leader *kube_leader_new(struct kube_client *c, const struct kube_leader_config *cfg);
int kube_leader_start(struct kube_leader *l);
/* Stop the elector; when leading, release the lease and call on_stopped_leading. Joins. Call it
 * before kube_client_shutdown(): a shut-down client cannot send the release. */
void kube_leader_stop(struct kube_leader *l);
void kube_leader_free(struct kube_leader *l);
/* Leading, and the last renewal's deadline not passed. */
bool kube_leader_is_leader(struct kube_leader *l);
/* The last attempt read the Lease (whoever holds it): the elector knows the leader state. */
bool kube_leader_lease_known(struct kube_leader *l);

/* ---- the decision, as a pure function ---- */

enum kube_leader_action {
    KUBE_LEADER_CREATE,  /* no lease: create one held by us */
    KUBE_LEADER_ACQUIRE, /* free or expired: take it over (transitions + 1) */
    KUBE_LEADER_RENEW,   /* we hold it: renew */
    KUBE_LEADER_WAIT,    /* someone else holds a valid lease */
};

/* What this client has seen of the lease: updated by kube_leader_decide(). */
struct kube_lease_observation {
    char record[512];   /* holder|duration|acquire|renew|transitions as last seen */
    double observed_at; /* local monotonic time the record last changed */
};

/*
 * Decide for identity at local time now (monotonic seconds) given lease (the object read, or
 * NULL if it does not exist). Malformed fields count as absent (an unreadable lease is
 * expirable, never held forever).
 */
enum kube_leader_action kube_leader_decide(const cJSON *lease, const char *identity, double now,
                                           struct kube_lease_observation *obs);

/*
 * Write the spec for action (ACQUIRE or RENEW) into lease (modified in place): holderIdentity,
 * leaseDurationSeconds, renewTime = wall; on ACQUIRE also acquireTime = wall and
 * leaseTransitions + 1 unless we were the holder. 0 or -errno.
 */
int kube_lease_fill(cJSON *lease, enum kube_leader_action action, const char *identity,
                    double lease_duration, double wall);
/* A new Lease object held by identity (owned by the caller), or NULL. */
cJSON *kube_lease_new(const char *ns, const char *name, const char *identity, double lease_duration,
                      double wall);
/* Mark lease released (holder "", duration 1, renewTime wall). 0 or -errno. */
int kube_lease_release(cJSON *lease, double wall);

#endif
