/*
 * The in-flight table of locks.h: a small array of owned strings. Operations in flight are few
 * (bounded by the worker count), so a linear scan beats any hashing here.
 */
#include "locks.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct lock_table {
    pthread_mutex_t mu;
    char **keys; /* owned, n used of cap */
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
        free(t->keys[i]);
    free(t->keys);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static bool held_locked(const struct lock_table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->keys[i], key) == 0)
            return true;
    return false;
}

static void drop_locked(struct lock_table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->keys[i], key) == 0) {
            free(t->keys[i]);
            t->keys[i] = t->keys[--t->n];
            return;
        }
}

int lock_take(struct lock_table *t, const char *const *keys, size_t n)
{
    size_t taken = 0;
    int r = 0;

    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < n; i++)
        if (keys[i] && held_locked(t, keys[i])) {
            bool own = false;
            for (size_t j = 0; j < i; j++)
                if (keys[j] && strcmp(keys[j], keys[i]) == 0)
                    own = true;
            if (!own) {
                r = -EAGAIN;
                goto out;
            }
        }
    for (size_t i = 0; i < n; i++) {
        char *copy;

        if (!keys[i] || held_locked(t, keys[i]))
            continue;
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 16;
            char **k = realloc(t->keys, cap * sizeof(*k));
            if (!k) {
                r = -ENOMEM;
                goto undo;
            }
            t->keys = k;
            t->cap = cap;
        }
        copy = strdup(keys[i]);
        if (!copy) {
            r = -ENOMEM;
            goto undo;
        }
        t->keys[t->n++] = copy;
        taken = i + 1;
    }
    goto out;
undo:
    for (size_t i = 0; i < taken; i++)
        if (keys[i])
            drop_locked(t, keys[i]);
out:
    pthread_mutex_unlock(&t->mu);
    return r;
}

void lock_give(struct lock_table *t, const char *const *keys, size_t n)
{
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < n; i++)
        if (keys[i])
            drop_locked(t, keys[i]);
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
