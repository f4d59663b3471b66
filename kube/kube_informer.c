/*
 * The store and the informer thread (kube_informer.h).
 *
 * Threading: only the informer thread (or, for a bare store, its one owner) mutates the store;
 * it reads the map without the lock and takes s->mu only to change it, so other threads always
 * see a whole state and objects a handler borrows cannot be freed under it. Locks: s->mu and
 * inf->mu are leaves, never held together, never across a request.
 */
#include "kube_informer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define ZLIB_CONST /* next_in is const */
#include <zlib.h>

#include "kube_util.h"
#include "log.h"
#include "util.h"

#define KEY_MAX 512

static const char *meta_str(const cJSON *obj, const char *k)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), k);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}
#define MAX_TRANSFORMS 16

/*
 * What the store keeps of each object: the compact JSON text of the transformed object, deflated
 * against a dictionary (one allocation per object), inflated and parsed again whenever a caller
 * wants it. Copies were handed out before as well; the parse costs what the copy did, the
 * inflate a fraction of the parse.
 *
 * The dictionary is the text of the first object the store packed, kept for the store's life:
 * the objects of one resource share most of their bytes (keys, annotations, driver and class
 * names), so a trimmed claim of 802 bytes deflates to about 70 and a PV of 1,206 to about 110,
 * where deflate without a dictionary gets 415 and 573 (issue 13: 10,000 claims + 10,000 PVs
 * took 20 MB of text). Raw deflate (no header or checksum), an 8 KiB window.
 */
#define Z_WBITS 13
#define Z_MEMLEVEL 4
#define DICT_MAX (1u << Z_WBITS)

struct packed {
    uint32_t text_len; /* bytes of JSON text, without a NUL */
    uint32_t z_len;
    unsigned char z[];
};

struct kube_store {
    pthread_mutex_t mu;
    struct kube__map objs; /* key -> owned struct packed * */
    bool namespaced;
    kube_transform_fn transform; /* may be NULL */
    /* the mutator's (one thread at a time: see the top); dict is set before the first entry
     * is published under mu and never changes after, so readers use it under mu freely */
    unsigned char *dict; /* owned, NULL until the first pack */
    size_t dict_len;
    z_stream zs; /* deflate, once zs_ready */
    bool zs_ready;
    unsigned char *zbuf; /* owned: deflate's output before its copy of the exact size */
    size_t zcap;
};

static struct {
    const struct kube_resource *res;
    kube_transform_fn fn;
} transforms[MAX_TRANSFORMS];

int kube_set_transform(const struct kube_resource *res, kube_transform_fn fn)
{
    for (size_t i = 0; i < MAX_TRANSFORMS; i++)
        if (!transforms[i].res || transforms[i].res == res) {
            transforms[i].res = res;
            transforms[i].fn = fn;
            return 0;
        }
    return -ENOSPC;
}

static kube_transform_fn transform_of(const struct kube_resource *res)
{
    for (size_t i = 0; i < MAX_TRANSFORMS && transforms[i].res; i++)
        if (transforms[i].res == res)
            return transforms[i].fn;
    return NULL;
}

void kube_keep_only(cJSON *obj, const char *const *keep)
{
    cJSON *e = obj ? obj->child : NULL;

    if (!cJSON_IsObject(obj))
        return;
    while (e) {
        cJSON *next = e->next;
        const char *const *k = keep;

        while (*k && strcmp(*k, e->string) != 0)
            k++;
        if (!*k)
            cJSON_Delete(cJSON_DetachItemViaPointer(obj, e));
        e = next;
    }
}

static void obj_free(void *p)
{
    free(p);
}

void kube_store_set_transform(struct kube_store *s, kube_transform_fn fn)
{
    s->transform = fn;
}

/* Transform obj in place (managedFields always go: nothing reads them and they are often half
 * an object's size). */
static void trim(const struct kube_store *s, cJSON *obj)
{
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"),
                                            "managedFields");
    if (s->transform)
        s->transform(obj);
}

/* Deflate text (len bytes) against the dictionary into a new entry (owned), or NULL. */
static struct packed *deflate_text(struct kube_store *s, const char *text, size_t len)
{
    struct packed *p = NULL;
    size_t bound;

    if (len > UINT32_MAX / 2)
        return NULL;
    if (!s->dict) {
        size_t n = len < DICT_MAX ? len : DICT_MAX;

        if (!(s->dict = malloc(n)))
            return NULL;
        memcpy(s->dict, text + len - n, n); /* deflate uses the dictionary's tail */
        s->dict_len = n;
    }
    if (!s->zs_ready) {
        memset(&s->zs, 0, sizeof(s->zs));
        if (deflateInit2(&s->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -Z_WBITS, Z_MEMLEVEL,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return NULL;
        s->zs_ready = true;
    } else if (deflateReset(&s->zs) != Z_OK) {
        return NULL;
    }
    bound = deflateBound(&s->zs, (uLong)len);
    if (bound > s->zcap) {
        unsigned char *nb = realloc(s->zbuf, bound);

        if (!nb)
            return NULL;
        s->zbuf = nb;
        s->zcap = bound;
    }
    if (deflateSetDictionary(&s->zs, s->dict, (uInt)s->dict_len) != Z_OK)
        return NULL;
    s->zs.next_in = (const unsigned char *)text;
    s->zs.avail_in = (uInt)len;
    s->zs.next_out = s->zbuf;
    s->zs.avail_out = (uInt)s->zcap;
    if (deflate(&s->zs, Z_FINISH) != Z_STREAM_END)
        return NULL;
    p = malloc(sizeof(*p) + s->zs.total_out);
    if (!p)
        return NULL;
    p->text_len = (uint32_t)len;
    p->z_len = (uint32_t)s->zs.total_out;
    memcpy(p->z, s->zbuf, p->z_len);
    return p;
}

/* Transform obj in place and return what the store keeps of it (owned), or NULL on -ENOMEM. */
static struct packed *pack(struct kube_store *s, cJSON *obj)
{
    char *text;
    struct packed *p;

    trim(s, obj);
    text = cJSON_PrintUnformatted(obj);
    if (!text)
        return NULL;
    p = deflate_text(s, text, strlen(text));
    free(text);
    return p;
}

/* The object an entry holds (owned by the caller), or NULL (none, or -ENOMEM). */
static cJSON *unpack(const struct kube_store *s, const struct packed *p)
{
    z_stream zs;
    char *text;
    cJSON *obj = NULL;

    if (!p || !(text = malloc(p->text_len + 1)))
        return NULL;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -Z_WBITS) != Z_OK) {
        free(text);
        return NULL;
    }
    zs.next_in = p->z;
    zs.avail_in = p->z_len;
    zs.next_out = (unsigned char *)text;
    zs.avail_out = p->text_len;
    if (inflateSetDictionary(&zs, s->dict, (uInt)s->dict_len) == Z_OK &&
        inflate(&zs, Z_FINISH) == Z_STREAM_END && zs.total_out == p->text_len)
        obj = cJSON_ParseWithLength(text, p->text_len);
    inflateEnd(&zs);
    free(text);
    return obj;
}

/* Same object (the text holds the resourceVersion; the same text deflates the same). */
static bool packed_equal(const struct packed *a, const struct packed *b)
{
    return a->text_len == b->text_len && a->z_len == b->z_len && !memcmp(a->z, b->z, a->z_len);
}

struct kube_store *kube_store_new(bool namespaced)
{
    struct kube_store *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    kube__map_init(&s->objs);
    s->namespaced = namespaced;
    return s;
}

void kube_store_free(struct kube_store *s)
{
    if (!s)
        return;
    kube__map_release(&s->objs, obj_free);
    pthread_mutex_destroy(&s->mu);
    if (s->zs_ready)
        deflateEnd(&s->zs);
    free(s->zbuf);
    free(s->dict);
    free(s);
}

static int make_key(bool namespaced, const char *ns, const char *name, char *buf, size_t n)
{
    int w;

    if (!name || !*name)
        return -EINVAL;
    if (namespaced)
        w = snprintf(buf, n, "%s/%s", ns ? ns : "", name);
    else
        w = snprintf(buf, n, "%s", name);
    return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

int kube_store_key(const struct kube_store *s, const cJSON *obj, char *buf, size_t n)
{
    return make_key(s->namespaced, kube_obj_namespace(obj), kube_obj_name(obj), buf, n);
}

int kube_store_apply(struct kube_store *s, struct kube_event *ev,
                     const struct kube_informer_handlers *h)
{
    char key[KEY_MAX];
    struct packed *old = NULL, *text;
    cJSON *prev;
    int r;

    if (ev->type != KUBE_EVENT_ADDED && ev->type != KUBE_EVENT_MODIFIED &&
        ev->type != KUBE_EVENT_DELETED)
        return 0;
    r = kube_store_key(s, ev->object, key, sizeof(key));
    if (r < 0)
        return r;
    if (ev->type == KUBE_EVENT_DELETED) {
        trim(s, ev->object); /* handlers see what the store keeps */
        pthread_mutex_lock(&s->mu);
        old = kube__map_del(&s->objs, key);
        pthread_mutex_unlock(&s->mu);
        if (old && h && h->on_delete)
            h->on_delete(h->ud, ev->object);
        free(old);
        return 0;
    }
    text = pack(s, ev->object); /* handlers see what the store keeps */
    if (!text)
        return -ENOMEM;
    pthread_mutex_lock(&s->mu);
    r = kube__map_put(&s->objs, key, text, (void **)&old);
    pthread_mutex_unlock(&s->mu);
    if (r < 0) {
        free(text);
        return r;
    }
    if (old && h && h->on_update) {
        prev = unpack(s, old);
        if (prev)
            h->on_update(h->ud, prev, ev->object);
        cJSON_Delete(prev);
    } else if (!old && h && h->on_add) {
        h->on_add(h->ud, ev->object);
    }
    cJSON_Delete(ev->object); /* the store keeps its text */
    ev->object = NULL;
    free(old);
    return 0;
}

/* Put obj (taken) into fresh by its key, packed. 0 or -errno. */
static int fresh_put(struct kube_store *s, struct kube__map *fresh, cJSON *obj)
{
    char key[KEY_MAX];
    struct packed *text, *dup = NULL;
    int r = kube_store_key(s, obj, key, sizeof(key));

    if (r < 0) {
        cJSON_Delete(obj);
        return -EBADMSG;
    }
    text = pack(s, obj);
    cJSON_Delete(obj);
    if (!text)
        return -ENOMEM;
    r = kube__map_put(fresh, key, text, (void **)&dup);
    free(dup); /* a duplicate key in a list: the last one wins */
    if (r < 0)
        free(text);
    return r;
}

/* Make fresh (taken) the contents and call the handlers for the differences from before. */
static void store_swap(struct kube_store *s, struct kube__map *fresh,
                       const struct kube_informer_handlers *h)
{
    struct kube__map old;
    struct kube__map_node *it = NULL;
    size_t b = 0;

    pthread_mutex_lock(&s->mu);
    old = s->objs;
    s->objs = *fresh;
    pthread_mutex_unlock(&s->mu);
    kube__map_init(fresh);

    /* Handlers: the new objects are in the store (stable, only we mutate it), the old ones in
     * `old` until the end. The text holds the resourceVersion: equal text, nothing changed. */
    while (h && (it = kube__map_next(&s->objs, &b, it))) {
        const struct packed *prev = kube__map_get(&old, it->key);
        cJSON *o, *n;

        if (prev && packed_equal(prev, it->val))
            continue;
        if (prev ? !h->on_update : !h->on_add)
            continue;
        n = unpack(s, it->val);
        o = unpack(s, prev);
        if (n && !prev)
            h->on_add(h->ud, n);
        else if (n && o)
            h->on_update(h->ud, o, n);
        cJSON_Delete(n);
        cJSON_Delete(o);
    }
    it = NULL;
    b = 0;
    while (h && h->on_delete && (it = kube__map_next(&old, &b, it)))
        if (!kube__map_get(&s->objs, it->key)) {
            cJSON *o = unpack(s, it->val);

            if (o)
                h->on_delete(h->ud, o);
            cJSON_Delete(o);
        }
    kube__map_release(&old, obj_free);
}

int kube_store_replace(struct kube_store *s, cJSON *items, const struct kube_informer_handlers *h)
{
    struct kube__map fresh;
    cJSON *obj;
    char key[KEY_MAX];
    int r = 0;

    if (!cJSON_IsArray(items))
        return -EINVAL;
    cJSON_ArrayForEach(obj,
                       items) if (kube_store_key(s, obj, key, sizeof(key)) < 0) return -EBADMSG;
    kube__map_init(&fresh);
    while ((obj = cJSON_DetachItemFromArray(items, 0))) {
        r = fresh_put(s, &fresh, obj);
        if (r < 0) {
            kube__map_release(&fresh, obj_free);
            return r;
        }
    }
    store_swap(s, &fresh, h);
    return 0;
}

cJSON *kube_store_get(struct kube_store *s, const char *ns, const char *name)
{
    char key[KEY_MAX];
    cJSON *copy = NULL;

    if (make_key(s->namespaced, ns, name, key, sizeof(key)) < 0)
        return NULL;
    pthread_mutex_lock(&s->mu);
    copy = unpack(s, kube__map_get(&s->objs, key));
    pthread_mutex_unlock(&s->mu);
    return copy;
}

cJSON *kube_store_list(struct kube_store *s)
{
    cJSON *arr = cJSON_CreateArray();
    struct kube__map_node *it = NULL;
    size_t b = 0;

    if (!arr)
        return NULL;
    pthread_mutex_lock(&s->mu);
    while ((it = kube__map_next(&s->objs, &b, it))) {
        cJSON *copy = unpack(s, it->val);

        if (!copy || !cJSON_AddItemToArray(arr, copy)) {
            cJSON_Delete(copy);
            cJSON_Delete(arr);
            arr = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return arr;
}

cJSON *kube_store_find(struct kube_store *s, bool (*match)(const cJSON *obj, void *ud), void *ud)
{
    struct kube__map_node *it = NULL;
    cJSON *found = NULL;
    size_t b = 0;

    pthread_mutex_lock(&s->mu);
    while (!found && (it = kube__map_next(&s->objs, &b, it))) {
        cJSON *o = unpack(s, it->val);

        if (o && match(o, ud))
            found = o;
        else
            cJSON_Delete(o);
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

size_t kube_store_count(struct kube_store *s)
{
    size_t n;

    pthread_mutex_lock(&s->mu);
    n = s->objs.count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void kube_store_sizes(struct kube_store *s, size_t *ret_text, size_t *ret_packed)
{
    struct kube__map_node *it = NULL;
    size_t b = 0, text = 0, packed = 0;

    pthread_mutex_lock(&s->mu);
    while ((it = kube__map_next(&s->objs, &b, it))) {
        const struct packed *pk = it->val;

        text += pk->text_len + 1;
        packed += sizeof(struct packed) + pk->z_len;
    }
    pthread_mutex_unlock(&s->mu);
    if (ret_text)
        *ret_text = text;
    if (ret_packed)
        *ret_packed = packed;
}

/* ---- informer ---- */

struct kube_informer {
    struct kube_client *client; /* borrowed */
    const struct kube_resource *res;
    char *ns, *label, *field; /* owned, may be NULL */
    struct kube_informer_handlers h;
    struct kube_store *store; /* owned */
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu; /* guards synced, pairs with cond */
    pthread_cond_t cond;
    bool synced;
    char rv[128];
    atomic_uint lists, watches;
};

struct kube_informer *kube_informer_new(struct kube_client *c, const struct kube_resource *res,
                                        const char *ns, const char *label_selector,
                                        const char *field_selector,
                                        const struct kube_informer_handlers *h)
{
    struct kube_informer *inf = calloc(1, sizeof(*inf));

    if (!inf)
        return NULL;
    inf->client = c;
    inf->res = res;
    if (h)
        inf->h = *h;
    inf->store = kube_store_new(res->namespaced);
    if (inf->store)
        kube_store_set_transform(inf->store, transform_of(res));
    if ((ns && !(inf->ns = strdup(ns))) ||
        (label_selector && !(inf->label = strdup(label_selector))) ||
        (field_selector && !(inf->field = strdup(field_selector))) || !inf->store) {
        kube_store_free(inf->store);
        free(inf->ns);
        free(inf->label);
        free(inf->field);
        free(inf);
        return NULL;
    }
    pthread_mutex_init(&inf->mu, NULL);
    kube__cond_init(&inf->cond);
    atomic_init(&inf->stop, false);
    atomic_init(&inf->lists, 0);
    atomic_init(&inf->watches, 0);
    return inf;
}

/* A failed list or watch: the first of a streak is logged at warn level when the server
 * answered (a refusal worth a look); transport errors, which the client reports once for all
 * requests, and the retries of a streak are logged at debug level: one line per state change,
 * not one per retry. */
static void note_failure(const struct kube_informer *inf, const char *what, int r,
                         const struct kube_status *st, int streak)
{
    if (streak == 0 && st->http != 0)
        log_warn("kube: %s %s failed: %s (%s); retrying with backoff", what, inf->res->plural,
                 strerror(-r), st->message);
    else
        log_debug("kube: %s %s failed: %s (%s); retrying with backoff", what, inf->res->plural,
                  strerror(-r), st->message);
}

struct page_ctx {
    struct kube_informer *inf;
    struct kube__map *fresh;
};

/* kube_list_each's on_item: check and pack one item into fresh as it is parsed. */
static int take_item(void *ud, cJSON *it)
{
    const struct page_ctx *pc = ud;

    if (!cJSON_IsObject(it) || !kube_obj_name(it)) {
        cJSON_Delete(it);
        return -EBADMSG;
    }
    return fresh_put(pc->inf->store, pc->fresh, it);
}

static const char *page_continue(const cJSON *page)
{
    const char *v = meta_str(page, "continue");

    return v && v[0] ? v : NULL;
}

/*
 * List every page (500 objects each) and pack each object as it is parsed, so that at most one
 * whole object is in memory as cJSON at once besides the page's text (a list of 10,000 objects
 * as the API server sends them is over 100 MB as cJSON; one page's tree, freed among the texts
 * kept, left megabytes of fragments). A continue token that expires (410) restarts the listing
 * once from the beginning, since the pages would not be one snapshot.
 */
static int relist(struct kube_informer *inf, int failures)
{
    struct kube_list_opts o = {
        .label_selector = inf->label, .field_selector = inf->field, .limit = 500};
    struct kube__map fresh;
    struct page_ctx pc = {.inf = inf, .fresh = &fresh};
    struct kube_status st;
    char rv[sizeof(inf->rv)] = "", *token = NULL;
    bool restarted = false;
    double t0 = kube__now();
    int pages = 0, r;

    kube__map_init(&fresh);
    for (;;) {
        cJSON *page = NULL;

        o.continue_token = token;
        r = kube_list_each(inf->client, inf->res, inf->ns, &o, take_item, &pc, &page, &st);
        if (r == KUBE_EGONE && token && !restarted) {
            free(token);
            token = NULL;
            kube__map_release(&fresh, obj_free);
            kube__map_init(&fresh);
            rv[0] = '\0';
            restarted = true;
            continue;
        }
        free(token);
        token = NULL;
        if (r == 0 && !rv[0]) {
            const char *prv = kube_obj_rv(page);

            if (!prv || strlen(prv) >= sizeof(rv)) {
                cJSON_Delete(page);
                kube__map_release(&fresh, obj_free);
                log_warn("kube: list %s has no usable resourceVersion", inf->res->plural);
                return -EBADMSG;
            }
            snprintf(rv, sizeof(rv), "%s", prv);
        }
        if (r == 0)
            pages++;
        if (r == 0 && page_continue(page) && !(token = strdup(page_continue(page))))
            r = -ENOMEM;
        cJSON_Delete(page);
        if (r < 0) {
            kube__map_release(&fresh, obj_free);
            if (r != -ECANCELED)
                note_failure(inf, "list", r, &st, failures);
            return r;
        }
        if (!token)
            break;
    }
    if (failures > 0)
        log_debug("kube: list %s succeeded after %d failures", inf->res->plural, failures);
    atomic_fetch_add(&inf->lists, 1);
    memcpy(inf->rv, rv, sizeof(rv));
    size_t n = fresh.count;
    store_swap(inf->store, &fresh, &inf->h);
    kube__trim_heap(); /* give the pages' memory back: a relist is rare, the peak was large */
    size_t text, packed;

    kube_store_sizes(inf->store, &text, &packed);
    log_info("kube: listed %zu %s in %.3f s (%d pages; %zu KiB of JSON kept in %zu KiB)", n,
             inf->res->plural, kube__now() - t0, pages, text / 1024, packed / 1024);
    pthread_mutex_lock(&inf->mu);
    inf->synced = true;
    pthread_cond_broadcast(&inf->cond);
    pthread_mutex_unlock(&inf->mu);
    return 0;
}

static int on_event(void *ud, struct kube_event *ev)
{
    struct kube_informer *inf = ud;
    const char *rv = kube_obj_rv(ev->object);
    char saved[sizeof(inf->rv)];
    int r;

    if (!rv || strlen(rv) >= sizeof(inf->rv))
        return -EBADMSG;
    snprintf(saved, sizeof(saved), "%s", rv); /* ev->object may be taken by the store */
    r = kube_store_apply(inf->store, ev, &inf->h);
    if (r < 0)
        return r == -ENOMEM ? r : -EBADMSG;
    memcpy(inf->rv, saved, sizeof(saved));
    return 0;
}

static double backoff(int failures, double base, double max)
{
    double d = base;

    for (int i = 0; i < failures && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    return d * (0.5 + kube__rand() / 2); /* jitter: [d/2, d) */
}

static void *informer_main(void *arg)
{
    struct kube_informer *inf = arg;
    int list_failures = 0;

    while (!atomic_load(&inf->stop) && !kube_client_stopping(inf->client)) {
        int watch_failures = 0;

        if (relist(inf, list_failures) < 0) {
            kube__sleep(inf->client, backoff(list_failures++, 1.0, 30.0), &inf->stop);
            continue;
        }
        list_failures = 0;
        while (!atomic_load(&inf->stop)) {
            struct kube_watch_opts o = {.label_selector = inf->label,
                                        .field_selector = inf->field,
                                        .resource_version = inf->rv,
                                        .stop = &inf->stop};
            struct kube_status st;
            int r;

            if (atomic_fetch_add(&inf->watches, 1) > 0)
                kube__watch_restarted(inf->res->plural);
            r = kube_watch(inf->client, inf->res, inf->ns, &o, on_event, inf, &st);
            if (r == -ECANCELED || atomic_load(&inf->stop) || kube_client_stopping(inf->client))
                break;
            if (r == 0) {
                watch_failures = 0;
                continue;
            }
            if (r == KUBE_EGONE || r == -EMSGSIZE || r == -EBADMSG || r == -ENOMEM) {
                log_info("kube: watch %s: %s; relisting", inf->res->plural,
                         st.message[0] ? st.message : strerror(-r));
                break;
            }
            note_failure(inf, "watch", r, &st, watch_failures);
            kube__sleep(inf->client, backoff(watch_failures++, 0.5, 30.0), &inf->stop);
        }
    }
    pthread_mutex_lock(&inf->mu);
    pthread_cond_broadcast(&inf->cond);
    pthread_mutex_unlock(&inf->mu);
    return NULL;
}

int kube_informer_start(struct kube_informer *inf)
{
    int r;

    if (inf->running)
        return -EALREADY;
    atomic_store(&inf->stop, false);
    r = pthread_create(&inf->thread, NULL, informer_main, inf);
    if (r != 0)
        return -r;
    inf->running = true;
    return 0;
}

void kube_informer_stop(struct kube_informer *inf)
{
    if (!inf->running)
        return;
    atomic_store(&inf->stop, true);
    kube__wake(inf->client);
    pthread_mutex_lock(&inf->mu);
    pthread_cond_broadcast(&inf->cond);
    pthread_mutex_unlock(&inf->mu);
    pthread_join(inf->thread, NULL);
    inf->running = false;
}

void kube_informer_free(struct kube_informer *inf)
{
    if (!inf)
        return;
    kube_informer_stop(inf);
    kube_store_free(inf->store);
    pthread_cond_destroy(&inf->cond);
    pthread_mutex_destroy(&inf->mu);
    free(inf->ns);
    free(inf->label);
    free(inf->field);
    free(inf);
}

bool kube_informer_has_synced(struct kube_informer *inf)
{
    bool s;

    pthread_mutex_lock(&inf->mu);
    s = inf->synced;
    pthread_mutex_unlock(&inf->mu);
    return s;
}

int kube_informer_wait_synced(struct kube_informer *inf, double timeout_s)
{
    double deadline = kube__now() + timeout_s;
    int r = 0;

    pthread_mutex_lock(&inf->mu);
    while (!inf->synced) {
        if (atomic_load(&inf->stop)) {
            r = -ECANCELED;
            break;
        }
        if (kube__now() >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        kube__cond_wait_until(&inf->cond, &inf->mu, deadline);
    }
    pthread_mutex_unlock(&inf->mu);
    return r;
}

cJSON *kube_informer_get(struct kube_informer *inf, const char *ns, const char *name)
{
    return kube_store_get(inf->store, ns, name);
}

cJSON *kube_informer_list(struct kube_informer *inf)
{
    return kube_store_list(inf->store);
}

cJSON *kube_informer_find(struct kube_informer *inf, bool (*match)(const cJSON *obj, void *ud),
                          void *ud)
{
    return kube_store_find(inf->store, match, ud);
}

unsigned kube_informer_lists(struct kube_informer *inf)
{
    return atomic_load(&inf->lists);
}

unsigned kube_informer_watches(struct kube_informer *inf)
{
    return atomic_load(&inf->watches);
}
