/*
 * The StatefulSet reconciler (controller mode, acts only while holding the lease): today,
 * ordered provisioning. For claims of a class with parameter ordinal.csi.dev/ordering: ordered
 * it sets ordinal.csi.dev/admitted: "true" (PROV_ANN_ADMITTED) on ordinal N of a template only
 * when ordinals start..N-1 of that template are Bound (model_may_admit), also for Parallel sets
 * and Immediate classes; a claim of such a class that belongs to no StatefulSet is admitted at
 * once. A claim that has to wait gets one OrdinalWaiting event naming the first ordinal it waits
 * for.
 *
 * Ordered release: Released PVs (policy Delete) of an ordered class keep their store until
 * this sets ordinal.csi.dev/release: approved (PROV_ANN_RELEASE) on them, one ordinal at a time
 * per set and template (claims "T-S-N" grouped by "T-S", the set may be gone), highest first,
 * the next only once the approved one's PV is gone (model_release_next).
 *
 * It never writes owner references, never deletes pods, claims or sets: its only writes are
 * the admission annotation and the release approval (merge patches) and events.
 *
 * Caches: informers on StatefulSets, claims, classes and PVs, warm also while standing by, so a
 * new leader acts at once (rec_resync() queues every claim).
 *
 * Threading: rec_start/rec_stop from one thread; rec_resync from any (the elector's thread).
 * Informer threads only queue keys; the workers (2) sync one key at a time.
 */
#ifndef ORDINAL_RECONCILER_H
#define ORDINAL_RECONCILER_H

#include <stdbool.h>

#include "kube_client.h"

struct rec_config {
    struct kube_client *client; /* borrowed */
    const char *driver_name;    /* borrowed: classes whose provisioner is this */
    const char *identity;       /* borrowed: the events' reportingInstance */
    bool (*leading)(void *ud);  /* whether to act now (thread-safe) */
    void *leading_ud;
};

struct rec;

/* Start the informers and workers. NULL on failure (logged). */
struct rec *rec_start(const struct rec_config *cfg);
/* Queue every cached claim (on becoming leader). Thread-safe; rec may be NULL. */
void rec_resync(struct rec *rec);
/* Stop and free; NULL is a no-op. */
void rec_stop(struct rec *rec);
/* Admissions written so far (thread-safe; rec may be NULL). */
unsigned long rec_admitted(const struct rec *rec);

#endif
