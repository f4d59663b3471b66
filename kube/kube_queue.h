/*
 * A work queue of string keys ("ns/name") for controllers, after client-go's workqueue:
 *  - one entry per key: adding a key that is already waiting does nothing;
 *  - a key being processed and added again is not handed to a second worker; it is queued
 *    again when the first worker calls kube_queue_done(), so it is processed once more after;
 *  - per-key exponential backoff for retries (base doubling to max, default 1 s to 5 min),
 *    reset by kube_queue_forget() after a success;
 *  - delayed adds, several workers, shutdown.
 *
 * Threading: every function is safe from any thread; one mutex per queue (a leaf lock), never
 * held while the worker function runs.
 */
#ifndef ORDINAL_KUBE_QUEUE_H
#define ORDINAL_KUBE_QUEUE_H

#include <stddef.h>

#define KUBE_QUEUE_BASE_DELAY 1.0
#define KUBE_QUEUE_MAX_DELAY 300.0

struct kube_queue;

/* base_delay/max_delay in seconds; <= 0 = the defaults. NULL on -ENOMEM. */
struct kube_queue *kube_queue_new(double base_delay, double max_delay);
/* Shut down, join workers started by kube_queue_run(), free. */
void kube_queue_free(struct kube_queue *q);

/* The backoff after `failures` failures: base * 2^failures, capped at max. Pure. */
double kube_backoff_delay(int failures, double base, double max);

/* Queue key (copied) now. 0, -ENOMEM, -ESHUTDOWN. */
int kube_queue_add(struct kube_queue *q, const char *key);
/* Queue key after delay seconds (an earlier pending time wins). */
int kube_queue_add_after(struct kube_queue *q, const char *key, double delay);
/* Queue key after its backoff and count one more failure. */
int kube_queue_add_rate_limited(struct kube_queue *q, const char *key);
/* Reset the failures of key. */
void kube_queue_forget(struct kube_queue *q, const char *key);
/* Failures counted for key. */
int kube_queue_num_requeues(struct kube_queue *q, const char *key);
/* Keys ready to be handed out now. */
size_t kube_queue_len(struct kube_queue *q);

/*
 * Wait for a ready key: 0 with *ret_key (owned by the caller: pass it to kube_queue_done(), then
 * free it), -ESHUTDOWN after kube_queue_shutdown(), -ETIMEDOUT after timeout_s (< 0 = forever).
 */
int kube_queue_get(struct kube_queue *q, double timeout_s, char **ret_key);
/* The worker is done with key: if it was added meanwhile it is queued again. */
void kube_queue_done(struct kube_queue *q, const char *key);
/* Wake every waiter; gets return -ESHUTDOWN, adds are refused. Idempotent. */
void kube_queue_shutdown(struct kube_queue *q);

/*
 * Start n worker threads that get a key, call fn(ud, key) and then: on 0 forget the key's
 * failures, on < 0 requeue it with backoff (kube_queue_add_rate_limited), then done. Stopped and
 * joined by kube_queue_free() (or kube_queue_stop()). 0 or -errno.
 */
typedef int (*kube_queue_fn)(void *ud, const char *key);
int kube_queue_run(struct kube_queue *q, int n, kube_queue_fn fn, void *ud);
/* Shut down and join the workers. */
void kube_queue_stop(struct kube_queue *q);

#endif
