/*
 * Internals shared by the kube_*.c files (prefix kube__): clocks, interruptible sleeps, jitter,
 * Kubernetes time strings, a string-keyed hash map and a strict base64 decoder. Not part of the
 * Kubernetes client's public API.
 *
 * Threading: every function is safe from any thread; a struct kube__map is not locked, its owner
 * locks it.
 */
#ifndef ORDINAL_KUBE_UTIL_H
#define ORDINAL_KUBE_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* Tells the observer set by kube_set_observer() (kube_client.c) that a watch restarted. */
void kube__watch_restarted(const char *resource);

/* Seconds on CLOCK_MONOTONIC / CLOCK_REALTIME. */
double kube__now(void);
double kube__wall(void);

/* A condition variable that waits on CLOCK_MONOTONIC; 0 or -errno. */
int kube__cond_init(pthread_cond_t *cond);
/* Wait on cond (mu held) until signalled or `deadline` (kube__now() seconds) passes. */
void kube__cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, double deadline);

/* Give the free pages of glibc's heap back to the system (malloc_trim), after a burst such as a
 * relist; nothing when a sanitizer's allocator replaces glibc's. Safe from any thread. */
void kube__trim_heap(void);

/* A uniformly random double in [0, 1); thread-safe. */
double kube__rand(void);

/* Format wall-clock seconds as a Kubernetes MicroTime, "2006-01-02T15:04:05.000000Z"; the
 * buffer needs 28 bytes. Returns 0 or -EINVAL. */
int kube__format_microtime(double wall, char *buf, size_t n);
/* Parse an RFC 3339 time ("Z" or "+hh:mm" offset, optional fraction) into wall-clock seconds.
 * 0 or -EINVAL. */
int kube__parse_time(const char *s, double *ret);

/* Decode strict base64 (whitespace and newlines ignored, padding optional). The result is
 * NUL-terminated for convenience; *ret (owned by the caller) and *ret_len on success.
 * -EINVAL on a bad character, -ENOMEM. */
int kube__base64_decode(const char *in, size_t len, unsigned char **ret, size_t *ret_len);

/* Read a whole file into a NUL-terminated buffer of at most max bytes (owned by the caller).
 * -errno from open/read, -EFBIG if larger than max. */
int kube__read_file(const char *path, size_t max, char **ret, size_t *ret_len);

/* A string-keyed map of borrowed values; keys are copied. */
struct kube__map_node {
    char *key; /* owned */
    void *val; /* whatever the owner of the map says */
    struct kube__map_node *next;
};
struct kube__map {
    struct kube__map_node **buckets; /* owned */
    size_t nbuckets, count;
};

void kube__map_init(struct kube__map *m);
/* Free the nodes and keys; values are the caller's (call free_val on each unless NULL). */
void kube__map_release(struct kube__map *m, void (*free_val)(void *));
void *kube__map_get(const struct kube__map *m, const char *key);
/* Insert or replace. *ret_old (if not NULL) receives the replaced value or NULL. 0 or -ENOMEM. */
int kube__map_put(struct kube__map *m, const char *key, void *val, void **ret_old);
/* Remove key; returns its value or NULL. */
void *kube__map_del(struct kube__map *m, const char *key);
/* Iterate: start with *it = NULL and *bucket = 0; returns the next node or NULL. The map must not
 * change during iteration. */
struct kube__map_node *kube__map_next(const struct kube__map *m, size_t *bucket,
                                      struct kube__map_node *it);

#endif
