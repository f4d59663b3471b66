/*
 * Informers: a list+watch of one resource feeding an in-memory store of its objects, keyed by
 * "namespace/name" (or "name" for cluster-scoped resources), with add/update/delete handlers.
 *
 * The informer thread lists (all pages), replaces the store, then watches from the list's
 * resourceVersion. A watch that ends normally is resumed from the last resourceVersion seen
 * (events and bookmarks); a dropped connection is resumed after a jittered backoff (0.5 s
 * doubling to 30 s); 410 Gone, an over-long or malformed event relist. A relist replaces the
 * store and emits the differences as handler calls: adds for new objects, updates for objects
 * whose resourceVersion changed, synthetic deletes (with the last known state) for objects that
 * are gone, so the cache is never left stale after a gap.
 *
 * Threading: handlers run on the informer thread, one at a time, without any lock held; they
 * may call kube_informer_get/list (which copy under the store's mutex) but must not block for
 * long (hand keys to a kube_queue). Objects passed to handlers are borrowed for the call. The
 * store's mutex is a leaf lock.
 */
#ifndef ORDINAL_KUBE_INFORMER_H
#define ORDINAL_KUBE_INFORMER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "kube_client.h"
#include "kube_watch.h"

struct kube_informer_handlers {
    void (*on_add)(void *ud, const cJSON *obj);                          /* may be NULL */
    void (*on_update)(void *ud, const cJSON *old_obj, const cJSON *obj); /* may be NULL */
    void (*on_delete)(void *ud, const cJSON *obj);                       /* may be NULL */
    void *ud;
};

/* ---- what a cache keeps ---- */

/*
 * A cache transform: trims obj in place to what its program reads, before the store keeps it
 * (as client-go's cache transforms do). Handlers and every copy handed out see the trimmed
 * object, so a write made from one must be a patch of what it changes, never a PUT of the copy
 * (kube_update_retry* patch). metadata.managedFields is always dropped, transform or none.
 */
typedef void (*kube_transform_fn)(cJSON *obj);

/* Use fn for the informers of res made from now on (NULL: managedFields only). Call at start-up,
 * before any informer exists: the table is read without a lock. 0 or -ENOSPC (16 resources). */
int kube_set_transform(const struct kube_resource *res, kube_transform_fn fn);
/* Delete every member of object obj whose key is not in keep (NULL-terminated). For
 * transforms. */
void kube_keep_only(cJSON *obj, const char *const *keep);

/* ---- the store, usable on its own ---- */

/* The store keeps each object as its compact JSON text (after the transform), deflated against
 * a dictionary (the first object's text), and inflates and parses it again for every copy it
 * hands out and every handler call: about a tenth of the text, a hundredth of a cJSON tree. */

struct kube_store;

struct kube_store *kube_store_new(bool namespaced);
void kube_store_free(struct kube_store *s);
/* Trim every object with fn before keeping it (NULL: managedFields only). Before first use. */
void kube_store_set_transform(struct kube_store *s, kube_transform_fn fn);
/* The store key of obj ("ns/name" or "name") into buf; -EINVAL without a name. */
int kube_store_key(const struct kube_store *s, const cJSON *obj, char *buf, size_t n);
/*
 * Apply one watch event (ADDED, MODIFIED, DELETED; others are ignored) and call the handler.
 * ADDED of a known key is an update, MODIFIED of an unknown key an add, DELETED of an unknown key
 * does nothing. Takes ev->object for ADDED/MODIFIED (ev->object is NULL after); the object is
 * transformed in place first, for every type. 0 or -errno. Only one thread may mutate.
 */
int kube_store_apply(struct kube_store *s, struct kube_event *ev,
                     const struct kube_informer_handlers *h);
/* Replace the contents by the items of list (an array; its items are taken, the array is left
 * empty) and call the handlers for the differences. 0 or -errno (-EBADMSG for an item without
 * a name, in which case the store is unchanged). */
int kube_store_replace(struct kube_store *s, cJSON *items, const struct kube_informer_handlers *h);
/* A deep copy of the object (owned by the caller) or NULL. ns ignored for cluster scope. */
cJSON *kube_store_get(struct kube_store *s, const char *ns, const char *name);
/* A new array of deep copies of every object (owned by the caller), or NULL on -ENOMEM. */
cJSON *kube_store_list(struct kube_store *s);
/* A deep copy of the first object for which match() is true (owned by the caller), or NULL.
 * match runs under the store's mutex on borrowed objects: it must be quick and must not call
 * back into the store. Copies one object instead of the whole store. */
cJSON *kube_store_find(struct kube_store *s, bool (*match)(const cJSON *obj, void *ud), void *ud);
size_t kube_store_count(struct kube_store *s);
/* In one pass: the bytes of JSON text the store holds, one NUL each (*ret_text), and the bytes
 * its entries take, deflated, without the allocator's overhead (*ret_packed); either may be
 * NULL. For the list's log line, tests and benchmarks. */
void kube_store_sizes(struct kube_store *s, size_t *ret_text, size_t *ret_packed);

/* ---- the informer ---- */

struct kube_informer;

/*
 * An informer over res in ns (NULL = all namespaces) with optional selectors (copied). The
 * client and the handlers' ud are borrowed and must outlive the informer. NULL on -ENOMEM.
 */
struct kube_informer *kube_informer_new(struct kube_client *c, const struct kube_resource *res,
                                        const char *ns, const char *label_selector,
                                        const char *field_selector,
                                        const struct kube_informer_handlers *h);
/* Start the informer thread. 0 or -errno. */
int kube_informer_start(struct kube_informer *inf);
/* Stop and join the thread: within about a second while watching or backing off; a list in
 * flight finishes first (bounded by the request timeout) unless the client is shut down.
 * Idempotent. */
void kube_informer_stop(struct kube_informer *inf);
/* Stop if running and free everything. */
void kube_informer_free(struct kube_informer *inf);
/* True once the first list has been stored. */
bool kube_informer_has_synced(struct kube_informer *inf);
/* Wait up to timeout_s for the first sync: 0, -ETIMEDOUT or -ECANCELED (stopped). */
int kube_informer_wait_synced(struct kube_informer *inf, double timeout_s);
/* Copies from the store, owned by the caller (see kube_store_get/list). */
cJSON *kube_informer_get(struct kube_informer *inf, const char *ns, const char *name);
cJSON *kube_informer_list(struct kube_informer *inf);
cJSON *kube_informer_find(struct kube_informer *inf, bool (*match)(const cJSON *obj, void *ud),
                          void *ud);
/* Counters for tests and metrics: lists done (1 + relists), watches started. */
unsigned kube_informer_lists(struct kube_informer *inf);
unsigned kube_informer_watches(struct kube_informer *inf);

#endif
