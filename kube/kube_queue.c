/*
 * The work queue (kube_queue.h). Each known key has one entry in a map; an entry lives while it
 * is waiting, delayed, being processed or has failures. Ready entries sit in a FIFO of borrowed
 * entry pointers.
 *
 * Threading: q->mu guards everything but the worker threads' array, which only
 * kube_queue_run/stop touch (from the owner's thread).
 */
#include "kube_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kube_util.h"

struct qent {
    char *key;       /* owned */
    bool dirty;      /* waiting in the FIFO, or to be re-queued at done() */
    bool processing; /* handed to a worker */
    int failures;
    double ready_at; /* > 0: delayed until then (kube__now() seconds) */
};

struct kube_queue {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct kube__map ents; /* key -> owned struct qent */
    struct qent **fifo;    /* borrowed from ents; [head, tail) used */
    size_t head, tail, cap;
    size_t ndelayed;
    double base, max;
    bool shutdown;
    /* workers */
    pthread_t *threads; /* owned */
    int nthreads;
    kube_queue_fn fn;
    void *ud;
};

static void ent_free(void *p)
{
    struct qent *e = p;

    free(e->key);
    free(e);
}

double kube_backoff_delay(int failures, double base, double max)
{
    double d = base;

    if (failures < 0)
        failures = 0;
    for (int i = 0; i < failures && d < max; i++)
        d *= 2;
    return d > max ? max : d;
}

struct kube_queue *kube_queue_new(double base_delay, double max_delay)
{
    struct kube_queue *q = calloc(1, sizeof(*q));

    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    kube__cond_init(&q->cond);
    kube__map_init(&q->ents);
    q->base = base_delay > 0 ? base_delay : KUBE_QUEUE_BASE_DELAY;
    q->max = max_delay > 0 ? max_delay : KUBE_QUEUE_MAX_DELAY;
    if (q->max < q->base)
        q->max = q->base;
    return q;
}

void kube_queue_free(struct kube_queue *q)
{
    if (!q)
        return;
    kube_queue_stop(q);
    kube__map_release(&q->ents, ent_free);
    free(q->fifo);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static int fifo_push(struct kube_queue *q, struct qent *e)
{
    if (q->tail == q->cap) {
        if (q->head > 0) {
            memmove(q->fifo, q->fifo + q->head, (q->tail - q->head) * sizeof(*q->fifo));
            q->tail -= q->head;
            q->head = 0;
        }
        if (q->tail == q->cap) {
            size_t ncap = q->cap ? q->cap * 2 : 64;
            struct qent **nf = realloc(q->fifo, ncap * sizeof(*nf));

            if (!nf)
                return -ENOMEM;
            q->fifo = nf;
            q->cap = ncap;
        }
    }
    q->fifo[q->tail++] = e;
    pthread_cond_signal(&q->cond);
    return 0;
}

static struct qent *ent_get(struct kube_queue *q, const char *key, bool create)
{
    struct qent *e = kube__map_get(&q->ents, key);

    if (e || !create)
        return e;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->key = strdup(key);
    if (!e->key || kube__map_put(&q->ents, key, e, NULL) < 0) {
        ent_free(e);
        return NULL;
    }
    return e;
}

static void ent_gc(struct kube_queue *q, struct qent *e)
{
    if (e->dirty || e->processing || e->failures > 0 || e->ready_at > 0)
        return;
    kube__map_del(&q->ents, e->key);
    ent_free(e);
}

/* Make e ready now (q->mu held). */
static int add_locked(struct kube_queue *q, struct qent *e)
{
    if (e->ready_at > 0) {
        e->ready_at = 0;
        q->ndelayed--;
    }
    if (e->dirty)
        return 0;
    e->dirty = true;
    if (e->processing)
        return 0;
    return fifo_push(q, e);
}

int kube_queue_add(struct kube_queue *q, const char *key)
{
    struct qent *e;
    int r;

    pthread_mutex_lock(&q->mu);
    if (q->shutdown) {
        pthread_mutex_unlock(&q->mu);
        return -ESHUTDOWN;
    }
    e = ent_get(q, key, true);
    r = e ? add_locked(q, e) : -ENOMEM;
    pthread_mutex_unlock(&q->mu);
    return r;
}

static int add_after_locked(struct kube_queue *q, struct qent *e, double delay)
{
    double at = kube__now() + delay;

    if (delay <= 0)
        return add_locked(q, e);
    if (e->dirty)
        return 0; /* already going to run sooner */
    if (e->ready_at > 0 && e->ready_at <= at)
        return 0;
    if (e->ready_at <= 0)
        q->ndelayed++;
    e->ready_at = at;
    pthread_cond_broadcast(&q->cond); /* waiters recompute their deadline */
    return 0;
}

int kube_queue_add_after(struct kube_queue *q, const char *key, double delay)
{
    struct qent *e;
    int r;

    pthread_mutex_lock(&q->mu);
    if (q->shutdown) {
        pthread_mutex_unlock(&q->mu);
        return -ESHUTDOWN;
    }
    e = ent_get(q, key, true);
    r = e ? add_after_locked(q, e, delay) : -ENOMEM;
    pthread_mutex_unlock(&q->mu);
    return r;
}

int kube_queue_add_rate_limited(struct kube_queue *q, const char *key)
{
    struct qent *e;
    int r;

    pthread_mutex_lock(&q->mu);
    if (q->shutdown) {
        pthread_mutex_unlock(&q->mu);
        return -ESHUTDOWN;
    }
    e = ent_get(q, key, true);
    if (e) {
        double d = kube_backoff_delay(e->failures, q->base, q->max);

        if (e->failures < 1000)
            e->failures++;
        r = add_after_locked(q, e, d);
    } else {
        r = -ENOMEM;
    }
    pthread_mutex_unlock(&q->mu);
    return r;
}

void kube_queue_forget(struct kube_queue *q, const char *key)
{
    struct qent *e;

    pthread_mutex_lock(&q->mu);
    e = ent_get(q, key, false);
    if (e) {
        e->failures = 0;
        ent_gc(q, e);
    }
    pthread_mutex_unlock(&q->mu);
}

int kube_queue_num_requeues(struct kube_queue *q, const char *key)
{
    struct qent *e;
    int n;

    pthread_mutex_lock(&q->mu);
    e = ent_get(q, key, false);
    n = e ? e->failures : 0;
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t kube_queue_len(struct kube_queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->tail - q->head;
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* Move due delayed entries to the FIFO; returns the earliest pending time or 0. */
static double promote_locked(struct kube_queue *q, double now)
{
    struct kube__map_node *it = NULL;
    size_t b = 0;
    double next = 0;

    if (q->ndelayed == 0)
        return 0;
    while ((it = kube__map_next(&q->ents, &b, it))) {
        struct qent *e = it->val;

        if (e->ready_at <= 0)
            continue;
        if (e->ready_at <= now)
            add_locked(q, e); /* on -ENOMEM the key is dropped from the delay set */
        else if (next == 0 || e->ready_at < next)
            next = e->ready_at;
    }
    return next;
}

int kube_queue_get(struct kube_queue *q, double timeout_s, char **ret_key)
{
    double deadline = timeout_s >= 0 ? kube__now() + timeout_s : 0;
    int r = 0;

    pthread_mutex_lock(&q->mu);
    for (;;) {
        double now = kube__now(), next, wake;

        if (q->shutdown) {
            r = -ESHUTDOWN;
            break;
        }
        next = promote_locked(q, now);
        if (q->head < q->tail) {
            struct qent *e = q->fifo[q->head++];
            char *key = strdup(e->key);

            if (!key) {
                q->head--;
                r = -ENOMEM;
                break;
            }
            e->dirty = false;
            e->processing = true;
            *ret_key = key;
            break;
        }
        if (deadline > 0 && now >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        wake = deadline > 0 ? deadline : now + 3600;
        if (next > 0 && next < wake)
            wake = next;
        kube__cond_wait_until(&q->cond, &q->mu, wake);
    }
    pthread_mutex_unlock(&q->mu);
    return r;
}

void kube_queue_done(struct kube_queue *q, const char *key)
{
    struct qent *e;

    pthread_mutex_lock(&q->mu);
    e = ent_get(q, key, false);
    if (e && e->processing) {
        e->processing = false;
        if (e->dirty && fifo_push(q, e) < 0)
            e->dirty = false;
        ent_gc(q, e);
    }
    pthread_mutex_unlock(&q->mu);
}

void kube_queue_shutdown(struct kube_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->shutdown = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

static void *worker_main(void *arg)
{
    struct kube_queue *q = arg;
    char *key;

    while (kube_queue_get(q, -1, &key) == 0) {
        int r = q->fn(q->ud, key);

        if (r < 0)
            kube_queue_add_rate_limited(q, key);
        else
            kube_queue_forget(q, key);
        kube_queue_done(q, key);
        free(key);
    }
    return NULL;
}

int kube_queue_run(struct kube_queue *q, int n, kube_queue_fn fn, void *ud)
{
    if (q->threads || n < 1)
        return -EINVAL;
    q->threads = calloc((size_t)n, sizeof(*q->threads));
    if (!q->threads)
        return -ENOMEM;
    q->fn = fn;
    q->ud = ud;
    for (int i = 0; i < n; i++) {
        int r = pthread_create(&q->threads[i], NULL, worker_main, q);

        if (r != 0) {
            kube_queue_stop(q);
            return -r;
        }
        q->nthreads++;
    }
    return 0;
}

void kube_queue_stop(struct kube_queue *q)
{
    kube_queue_shutdown(q);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    free(q->threads);
    q->threads = NULL;
    q->nthreads = 0;
}
