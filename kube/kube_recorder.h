/*
 * An event recorder: Events are best effort, so they never hold up the work they describe. A
 * caller hands an Event over and goes on at once; one thread of the recorder posts them, each
 * with one short bounded attempt (a deadline of a few seconds, at most one retry), and drops
 * an event when the queue is full or the API server refuses or does not answer in time. Every
 * dropped event is counted; the first drop after a success is logged, the rest at debug level,
 * and recovery is logged once.
 *
 * Threading: kube_recorder_post() and the counters are safe from any thread; r->mu is a leaf
 * lock, never held across a request.
 */
#ifndef ORDINAL_KUBE_RECORDER_H
#define ORDINAL_KUBE_RECORDER_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "kube_client.h"

#define KUBE_RECORDER_QUEUE 256
#define KUBE_RECORDER_TIMEOUT_S 5.0

struct kube_recorder;

/* A recorder posting through c (borrowed: it must outlive the recorder) with a queue of at most
 * capacity events (0 = KUBE_RECORDER_QUEUE); its thread is started. NULL on -ENOMEM or when the
 * thread cannot start. */
struct kube_recorder *kube_recorder_new(struct kube_client *c, size_t capacity);
/* Stop the thread (an attempt in flight is aborted), drop and count what is still queued, free. */
void kube_recorder_free(struct kube_recorder *r);
/* Queue ev (an Event object; ownership passes to the recorder in every case) for namespace ns
 * (copied). Never blocks; a full queue drops ev. */
void kube_recorder_post(struct kube_recorder *r, const char *ns, cJSON *ev);
/*
 * A core/v1 Event about object `obj` (borrowed; its metadata name, namespace, uid and
 * resourceVersion are copied) of kind/apiVersion, with type ("Normal"/"Warning"), reason and
 * message; source.component = component, reportingComponent/Instance as given. The Event's
 * namespace is obj's, or "default" for a cluster-scoped object. A new object (owned by the
 * caller) or NULL on -ENOMEM or an object without a name.
 */
cJSON *kube_event_new(const cJSON *obj, const char *kind, const char *api_version, const char *type,
                      const char *reason, const char *message, const char *component,
                      const char *instance);
/* Events posted successfully / dropped so far. r may be NULL (0). */
unsigned long long kube_recorder_sent(const struct kube_recorder *r);
unsigned long long kube_recorder_dropped(const struct kube_recorder *r);

#endif
