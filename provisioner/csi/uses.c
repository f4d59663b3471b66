/*
 * When this node plugin last published or unpublished each volume (csi.h): a small chained
 * hash table under one leaf mutex, for the inventory's lastUsedAt. In memory only: after a
 * restart the inventory keeps the time its OrdinalVolume already shows.
 */
#include "csi.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USES_BUCKETS 1024
#define USES_MAX 65536 /* entries; beyond that new volumes are not tracked (never blocks) */

struct use {
    struct use *next;
    int64_t at; /* seconds since the epoch */
    char id[];
};

struct csi_uses {
    pthread_mutex_t mu;
    struct use *buckets[USES_BUCKETS];
    size_t n;
    void (*notify)(void *ud); /* called under mu after each note: must be quick, leaf-locked */
    void *notify_ud;
};

static size_t bucket(const char *id)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *id; id++) {
        h ^= (unsigned char)*id;
        h *= 1099511628211ULL;
    }
    return (size_t)(h % USES_BUCKETS);
}

struct csi_uses *csi_uses_new(void)
{
    struct csi_uses *u = calloc(1, sizeof(*u));

    if (u)
        pthread_mutex_init(&u->mu, NULL);
    return u;
}

void csi_uses_free(struct csi_uses *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < USES_BUCKETS; i++)
        while (u->buckets[i]) {
            struct use *e = u->buckets[i];
            u->buckets[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&u->mu);
    free(u);
}

void csi_uses_note(struct csi_uses *u, const char *volume_id, int64_t at)
{
    struct use **pp, *e;
    size_t len;

    if (!u || !volume_id)
        return;
    len = strlen(volume_id);
    pthread_mutex_lock(&u->mu);
    for (pp = &u->buckets[bucket(volume_id)]; (e = *pp); pp = &e->next)
        if (strcmp(e->id, volume_id) == 0) {
            if (at > e->at)
                e->at = at;
            if (u->notify)
                u->notify(u->notify_ud);
            pthread_mutex_unlock(&u->mu);
            return;
        }
    if (u->n < USES_MAX && (e = malloc(sizeof(*e) + len + 1))) {
        e->next = NULL;
        e->at = at;
        memcpy(e->id, volume_id, len + 1);
        *pp = e;
        u->n++;
    }
    if (u->notify)
        u->notify(u->notify_ud);
    pthread_mutex_unlock(&u->mu);
}

void csi_uses_set_notify(struct csi_uses *u, void (*fn)(void *ud), void *ud)
{
    if (!u)
        return;
    pthread_mutex_lock(&u->mu);
    u->notify = fn;
    u->notify_ud = ud;
    pthread_mutex_unlock(&u->mu);
}

int64_t csi_uses_get(struct csi_uses *u, const char *volume_id)
{
    int64_t at = 0;

    if (!u || !volume_id)
        return 0;
    pthread_mutex_lock(&u->mu);
    for (struct use *e = u->buckets[bucket(volume_id)]; e; e = e->next)
        if (strcmp(e->id, volume_id) == 0) {
            at = e->at;
            break;
        }
    pthread_mutex_unlock(&u->mu);
    return at;
}

void csi_uses_forget(struct csi_uses *u, const char *volume_id)
{
    struct use **pp, *e;

    if (!u || !volume_id)
        return;
    pthread_mutex_lock(&u->mu);
    for (pp = &u->buckets[bucket(volume_id)]; (e = *pp); pp = &e->next)
        if (strcmp(e->id, volume_id) == 0) {
            *pp = e->next;
            free(e);
            u->n--;
            break;
        }
    pthread_mutex_unlock(&u->mu);
}

void csi_note_use(struct csi_service *svc, const char *volume_id)
{
    if (svc && svc->uses)
        csi_uses_note(svc->uses, volume_id, (int64_t)time(NULL));
}
