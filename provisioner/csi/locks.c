/*
 * The in-flight table of locks.h: a small array of entries. Operations in flight are few
 * (bounded by the worker count), so a linear scan beats any hashing here.
 */
#include "locks.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct lock_entry {
    char *key;      /* owned */
    size_t readers; /* holders in shared mode */
    bool writer;    /* held exclusively */
};

struct lock_table {
    pthread_mutex_t mu;
    struct lock_entry *e; /* owned, n used of cap */
    size_t n, cap;
};

struct lock_table *lock_table_new(void)
{
    struct lock_table *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void lock_table_free(struct lock_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].key);
    free(t->e);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static struct lock_entry *find_locked(struct lock_table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].key, key) == 0)
            return &t->e[i];
    return NULL;
}

/* The mode reqs asks for key: exclusive if any request for it is exclusive. */
static bool wants_shared(const struct lock_req *reqs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (reqs[i].key && strcmp(reqs[i].key, key) == 0 && !reqs[i].shared)
            return false;
    return true;
}

/* Whether reqs[i] is the first request naming its key. */
static bool first_of_key(const struct lock_req *reqs, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (reqs[j].key && strcmp(reqs[j].key, reqs[i].key) == 0)
            return false;
    return true;
}

static void release_locked(struct lock_table *t, const char *key, bool shared)
{
    struct lock_entry *e = find_locked(t, key);

    if (!e)
        return;
    if (shared && e->readers > 0)
        e->readers--;
    else
        e->writer = false;
    if (e->readers == 0 && !e->writer) {
        free(e->key);
        *e = t->e[--t->n];
    }
}

int lock_take(struct lock_table *t, const struct lock_req *reqs, size_t n, size_t *ret_busy)
{
    size_t done = 0;
    int r = 0;

    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].key || !first_of_key(reqs, i))
            continue;
        struct lock_entry *e = find_locked(t, reqs[i].key);
        if (e && (e->writer || !wants_shared(reqs, n, reqs[i].key))) {
            if (ret_busy)
                *ret_busy = i;
            r = -EAGAIN;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++, done = i) {
        if (!reqs[i].key || !first_of_key(reqs, i))
            continue;
        bool shared = wants_shared(reqs, n, reqs[i].key);
        struct lock_entry *e = find_locked(t, reqs[i].key);
        if (!e) {
            if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 16;
                struct lock_entry *ne = realloc(t->e, cap * sizeof(*ne));
                if (!ne) {
                    r = -ENOMEM;
                    goto undo;
                }
                t->e = ne;
                t->cap = cap;
            }
            e = &t->e[t->n];
            *e = (struct lock_entry){.key = strdup(reqs[i].key)};
            if (!e->key) {
                r = -ENOMEM;
                goto undo;
            }
            t->n++;
        }
        if (shared)
            e->readers++;
        else
            e->writer = true;
    }
    goto out;
undo:
    for (size_t i = 0; i < done; i++)
        if (reqs[i].key && first_of_key(reqs, i))
            release_locked(t, reqs[i].key, wants_shared(reqs, n, reqs[i].key));
out:
    pthread_mutex_unlock(&t->mu);
    return r;
}

void lock_give(struct lock_table *t, const struct lock_req *reqs, size_t n)
{
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < n; i++)
        if (reqs[i].key && first_of_key(reqs, i))
            release_locked(t, reqs[i].key, wants_shared(reqs, n, reqs[i].key));
    pthread_mutex_unlock(&t->mu);
}

size_t lock_count(struct lock_table *t)
{
    size_t n;

    pthread_mutex_lock(&t->mu);
    n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}
