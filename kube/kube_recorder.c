/* The event recorder (kube_recorder.h). */
#include "kube_recorder.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube_util.h"
#include "log.h"

struct pending {
    struct pending *next;
    cJSON *ev; /* owned */
    char ns[254];
};

struct kube_recorder {
    struct kube_client *client; /* borrowed */
    size_t capacity;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu; /* guards the list; pairs with cond */
    pthread_cond_t cond;
    struct pending *head, *tail; /* owned */
    size_t count;
    atomic_ullong sent, dropped;
    bool failing; /* recorder thread only: the last event was dropped */
};

static const char *reason_of(const cJSON *ev)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, "reason");

    return cJSON_IsString(v) ? v->valuestring : "?";
}

/* Count one drop; the first of a streak is logged (thread: any). */
static void drop(struct kube_recorder *r, const cJSON *ev, const char *why, bool log_it)
{
    unsigned long long n = atomic_fetch_add(&r->dropped, 1) + 1;

    if (log_it)
        log_warn("events: %s event dropped (%s); %llu dropped so far, further drops at debug "
                 "level",
                 reason_of(ev), why, n);
    else
        log_debug("events: %s event dropped (%s); %llu dropped so far", reason_of(ev), why, n);
}

static void send_one(struct kube_recorder *r, struct pending *p)
{
    struct kube_call_opts o = {
        .deadline = kube__now() + KUBE_RECORDER_TIMEOUT_S, .max_retries = 1, .stop = &r->stop};
    struct kube_status st;
    int e;

    e = kube_create_opts(r->client, &kube_events, p->ns, p->ev, &o, NULL, &st);
    if (e == 0 || e == -EEXIST) {
        atomic_fetch_add(&r->sent, 1);
        if (r->failing)
            log_info("events: recorded again (%llu dropped in all)",
                     (unsigned long long)atomic_load(&r->dropped));
        r->failing = false;
        return;
    }
    drop(r, p->ev, st.message[0] ? st.message : strerror(-e), !r->failing && e != -ECANCELED);
    r->failing = true;
}

static void *recorder_main(void *arg)
{
    struct kube_recorder *r = arg;

    for (;;) {
        struct pending *p;

        pthread_mutex_lock(&r->mu);
        while (!r->head && !atomic_load(&r->stop))
            pthread_cond_wait(&r->cond, &r->mu);
        if (atomic_load(&r->stop)) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        p = r->head;
        r->head = p->next;
        if (!r->head)
            r->tail = NULL;
        r->count--;
        pthread_mutex_unlock(&r->mu);
        send_one(r, p);
        cJSON_Delete(p->ev);
        free(p);
    }
    return NULL;
}

struct kube_recorder *kube_recorder_new(struct kube_client *c, size_t capacity)
{
    struct kube_recorder *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->client = c;
    r->capacity = capacity ? capacity : KUBE_RECORDER_QUEUE;
    atomic_init(&r->stop, false);
    atomic_init(&r->sent, 0);
    atomic_init(&r->dropped, 0);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, recorder_main, r) != 0) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

void kube_recorder_free(struct kube_recorder *r)
{
    struct pending *p;

    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->stop, true);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    kube__wake(r->client); /* a retry sleep of the attempt in flight */
    pthread_join(r->thread, NULL);
    while ((p = r->head)) {
        r->head = p->next;
        drop(r, p->ev, "shutting down", false);
        cJSON_Delete(p->ev);
        free(p);
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void kube_recorder_post(struct kube_recorder *r, const char *ns, cJSON *ev)
{
    struct pending *p = NULL;
    const char *why = NULL;

    if (!ev)
        return;
    if (!ns || strlen(ns) >= sizeof(p->ns))
        why = "bad namespace";
    else if (!(p = calloc(1, sizeof(*p))))
        why = "out of memory";
    if (!why) {
        pthread_mutex_lock(&r->mu);
        if (atomic_load(&r->stop)) {
            why = "shutting down";
        } else if (r->count >= r->capacity) {
            why = "queue full";
        } else {
            snprintf(p->ns, sizeof(p->ns), "%s", ns);
            p->ev = ev;
            if (r->tail)
                r->tail->next = p;
            else
                r->head = p;
            r->tail = p;
            r->count++;
            pthread_cond_signal(&r->cond);
            p = NULL;
            ev = NULL;
        }
        pthread_mutex_unlock(&r->mu);
    }
    if (ev) {
        /* Logged at debug only: a full queue means the API server is slow, and the recorder
         * thread already says so once. */
        drop(r, ev, why, false);
        cJSON_Delete(ev);
    }
    free(p);
}

unsigned long long kube_recorder_sent(const struct kube_recorder *r)
{
    return r ? atomic_load(&r->sent) : 0;
}

unsigned long long kube_recorder_dropped(const struct kube_recorder *r)
{
    return r ? atomic_load(&r->dropped) : 0;
}

static const char *meta_str(const cJSON *obj, const char *k)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *v = cJSON_IsObject(md) ? cJSON_GetObjectItemCaseSensitive(md, k) : NULL;

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *kube_event_new(const cJSON *obj, const char *kind, const char *api_version, const char *type,
                      const char *reason, const char *message, const char *component,
                      const char *instance)
{
    const char *name = meta_str(obj, "name"), *ns = meta_str(obj, "namespace");
    const char *evns = ns ? ns : "default";
    char ename[320], ts[32];
    struct timespec now;
    struct tm tm;
    cJSON *ev, *md, *io, *src;

    if (!name)
        return NULL;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(ename, sizeof(ename), "%.240s.%llx%05lx", name, (unsigned long long)now.tv_sec,
             (unsigned long)(now.tv_nsec / 10000) & 0xfffff);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    ev = cJSON_CreateObject();
    md = cJSON_AddObjectToObject(ev, "metadata");
    io = cJSON_AddObjectToObject(ev, "involvedObject");
    src = cJSON_AddObjectToObject(ev, "source");
    if (!ev || !md || !io || !src) {
        cJSON_Delete(ev);
        return NULL;
    }
    cJSON_AddStringToObject(md, "name", ename);
    cJSON_AddStringToObject(md, "namespace", evns);
    cJSON_AddStringToObject(io, "kind", kind);
    cJSON_AddStringToObject(io, "apiVersion", api_version);
    if (ns)
        cJSON_AddStringToObject(io, "namespace", ns);
    cJSON_AddStringToObject(io, "name", name);
    if (meta_str(obj, "uid"))
        cJSON_AddStringToObject(io, "uid", meta_str(obj, "uid"));
    if (meta_str(obj, "resourceVersion"))
        cJSON_AddStringToObject(io, "resourceVersion", meta_str(obj, "resourceVersion"));
    cJSON_AddStringToObject(ev, "reason", reason);
    cJSON_AddStringToObject(ev, "message", message);
    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddStringToObject(src, "component", component);
    cJSON_AddStringToObject(ev, "firstTimestamp", ts);
    cJSON_AddStringToObject(ev, "lastTimestamp", ts);
    cJSON_AddNumberToObject(ev, "count", 1);
    cJSON_AddStringToObject(ev, "reportingComponent", component);
    cJSON_AddStringToObject(ev, "reportingInstance", instance);
    return ev;
}
