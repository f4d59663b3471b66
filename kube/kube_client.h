/*
 * The Kubernetes API client: JSON over HTTPS with libcurl, objects as cJSON trees.
 *
 * Setup: the daemon calls kube_global_init() once in main() before starting any thread (it wraps
 * curl_global_init), and kube_global_cleanup() after every client is freed.
 *
 * Threading: a struct kube_client is shared by all threads. Each request borrows a curl easy
 * handle from the client's pool for its duration, so a handle is never used by two threads at
 * once and connections are reused; watches take their own handle. Every transfer sets
 * CURLOPT_NOSIGNAL and timeouts, and polls a progress callback about once a second, so
 * kube_client_shutdown() aborts everything in flight within ~1 s. The client's mutex (pool and
 * token cache) and the rate limiter's mutex are never held across a transfer and never nested.
 *
 * Ownership: a cJSON passed in is borrowed; a cJSON returned through ret_* is owned by the
 * caller (cJSON_Delete) and written only on success. Every ret_* and st may be NULL.
 *
 * Errors: every request returns 0 or -errno. The Status the server sent (or the HTTP code when
 * the body is no Status) is decoded into *st when st is given, and the errno is:
 *
 *   HTTP / reason                       errno
 *   400 BadRequest, 422 Invalid         -EINVAL
 *   401 Unauthorized                    -EACCES
 *   403 Forbidden                       -EPERM
 *   404 NotFound                        -ENOENT
 *   405 MethodNotAllowed                -EOPNOTSUPP
 *   409 AlreadyExists                   -EEXIST
 *   409 Conflict (or other 409)         -ESTALE       (KUBE_ECONFLICT) stale resourceVersion
 *   410 Gone / Expired (any code 410)   -ENODATA      (KUBE_EGONE) relist
 *   413 RequestEntityTooLarge           -EMSGSIZE
 *   415 UnsupportedMediaType            -EPROTO
 *   429 TooManyRequests                 -EBUSY        (after retries)
 *   500 InternalError, other 5xx        -EIO          (after retries)
 *   503 ServiceUnavailable              -EAGAIN       (after retries)
 *   504 / reason Timeout                -ETIMEDOUT    (after retries)
 *   other 4xx                           -EPROTO
 *   transport: cannot connect           -ECONNREFUSED; timeout -ETIMEDOUT; TLS -EKEYREJECTED;
 *              other -EIO; shut down    -ECANCELED
 *   2xx with a body that is not JSON    -EBADMSG
 *
 * Retries: 429 and 5xx are retried for every verb (the API server has not applied a request it
 * answers so; a retried POST that had been applied answers AlreadyExists), and transport errors
 * only for GET; up to config.max_retries times with exponential backoff from 250 ms to 30 s,
 * honouring Retry-After (capped at 60 s).
 */
#ifndef ORDINAL_KUBE_CLIENT_H
#define ORDINAL_KUBE_CLIENT_H

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "kube_config.h"

#define KUBE_ECONFLICT (-ESTALE)
#define KUBE_EGONE (-ENODATA)
/* Cap on a non-watch response body. */
#define KUBE_MAX_BODY (64 * 1024 * 1024)

/* curl_global_init(CURL_GLOBAL_DEFAULT): once, in main(), before any thread. 0 or -EIO. */
int kube_global_init(void);
void kube_global_cleanup(void);

/* ---- resources ---- */

struct kube_resource {
    const char *group;   /* "" for the core group */
    const char *version; /* "v1" */
    const char *plural;  /* path segment: "persistentvolumeclaims" */
    const char *kind;    /* "PersistentVolumeClaim" */
    bool namespaced;
};

extern const struct kube_resource kube_pods, kube_nodes, kube_namespaces, kube_events,
    kube_persistentvolumeclaims, kube_persistentvolumes, kube_statefulsets, kube_storageclasses,
    kube_csinodes, kube_leases, kube_ordinalvolumes;

/* The resource whose plural is name (e.g. "pods"), or NULL. Borrowed, static. */
const struct kube_resource *kube_resource_find(const char *plural);

/* Whether s is a usable object name or namespace: 1..253 of [a-z0-9.-], starting and ending with
 * an alphanumeric. Names go into URL paths, so everything else is refused. */
bool kube_name_valid(const char *s);

/*
 * Write the API path of res into buf (size n): the collection when name is NULL, the object, or
 * its subresource ("status"). ns is required for namespaced resources when name is set; NULL ns
 * with a namespaced resource means all namespaces (a list). Returns the length, -EINVAL for an
 * invalid name/namespace/subresource or a namespace on a cluster-scoped resource, -ENAMETOOLONG.
 */
int kube_path(char *buf, size_t n, const struct kube_resource *res, const char *ns,
              const char *name, const char *subresource);

/* ---- errors ---- */

struct kube_status {
    long http;         /* HTTP status code; 0 for a transport error */
    int code;          /* Status.code, else http */
    char reason[64];   /* Status.reason ("NotFound", "Conflict", ...), or "" */
    char message[512]; /* Status.message or a transport error text; never a secret */
    int retry_after;   /* seconds from Retry-After or details.retryAfterSeconds; 0 = none */
};

/*
 * Decode a response: http is the HTTP status, body the parsed body or NULL (it is used only when
 * it is a Status object; wrong types are ignored field by field). Fills *st (all fields reset)
 * and returns the -errno of the table above, or 0 for 2xx.
 */
int kube_status_decode(long http, const cJSON *body, struct kube_status *st);
/* The errno of the table for an HTTP code and reason (reason may be NULL or ""). */
int kube_errno_from_http(long http, const char *reason);

/* ---- the client ---- */

struct kube_client;

/* A client for cfg (deep-copied; cfg may be released afterwards). NULL on allocation failure
 * or an invalid config (message in be_last_error()). */
struct kube_client *kube_client_new(const struct kube_config *cfg);

/* What the client reports to the program using it (the daemon counts it in /metrics; the library
 * itself knows nothing of metrics). Either slot may be NULL. */
struct kube_observer {
    /* A request finished: its method, path with query, and HTTP status (0: no response). */
    void (*request)(const char *method, const char *path_query, long http);
    /* An informer's watch started again after its first one (a restart, not the start). */
    void (*watch_restart)(const char *resource);
};
/* Copies *obs (NULL: report nothing). Call once at start-up, before any client exists: the
 * observer is read without a lock afterwards. */
void kube_set_observer(const struct kube_observer *obs);
/* Free the client. Every thread must be done with it (informers and leaders stopped). */
void kube_client_free(struct kube_client *c);
/* Abort in-flight transfers and retry sleeps, and make later requests fail with -ECANCELED.
 * Safe from any thread, idempotent. */
void kube_client_shutdown(struct kube_client *c);
bool kube_client_stopping(const struct kube_client *c);
/* The configured namespace (borrowed, lives as long as the client). */
const char *kube_client_namespace(const struct kube_client *c);
/* Requests made so far, including retries (tests and metrics). */
unsigned long kube_client_request_count(struct kube_client *c);
/* Whether the last request that ended got an HTTP answer (any status) rather than a transport
 * error; false before the first. The client logs one line each time this changes. */
bool kube_client_connected(const struct kube_client *c);
/* The User-Agent sent, e.g. "ordinal/0.1 (node node-1)" (copied; lets an API server's audit log
 * tell instances apart). Call before the client is shared with other threads. 0 or -ENOMEM. */
int kube_client_set_user_agent(struct kube_client *c, const char *ua);
/* Log this client's connection changes at debug level only: a second client to the same server
 * (the Events') must not repeat the first one's "answers" / "not reachable" lines. Call before
 * the client is shared. */
void kube_client_set_quiet_link(struct kube_client *c, bool quiet);

/*
 * A raw request: method ("GET", ...), path from kube_path() (plus "?query", already escaped),
 * optional body (content_type NULL = application/json). The parsed 2xx response in *ret_body.
 */
int kube_request(struct kube_client *c, const char *method, const char *path_query,
                 const char *body, const char *content_type, cJSON **ret_body,
                 struct kube_status *st);

/*
 * Bounds for one call, for work that must give up in time (a lease renewal) or is best effort
 * (an event):
 *  - deadline (kube__now() seconds, 0 = none): every attempt's timeout is cut to it, and a retry
 *    that would start after it is not made (the call returns -ETIMEDOUT);
 *  - max_retries: < 0 = the client's;
 *  - stop (may be NULL): becoming true aborts the call within about a second (-ECANCELED).
 */
struct kube_call_opts {
    double deadline;
    int max_retries;
    const atomic_bool *stop;
};

/* kube_request, kube_get, kube_create and kube_update with bounds (opts NULL = none). */
int kube_request_opts(struct kube_client *c, const char *method, const char *path_query,
                      const char *body, const char *content_type, const struct kube_call_opts *opts,
                      cJSON **ret_body, struct kube_status *st);
int kube_get_opts(struct kube_client *c, const struct kube_resource *res, const char *ns,
                  const char *name, const struct kube_call_opts *opts, cJSON **ret_obj,
                  struct kube_status *st);
int kube_create_opts(struct kube_client *c, const struct kube_resource *res, const char *ns,
                     const cJSON *obj, const struct kube_call_opts *opts, cJSON **ret_obj,
                     struct kube_status *st);
int kube_update_opts(struct kube_client *c, const struct kube_resource *res, const char *ns,
                     const char *subresource, const cJSON *obj, const struct kube_call_opts *opts,
                     cJSON **ret_obj, struct kube_status *st);

struct kube_list_opts {
    const char *label_selector;   /* NULL = none; escaped by the client */
    const char *field_selector;   /* NULL = none */
    const char *resource_version; /* NULL = most recent; "0" = any */
    const char *continue_token;   /* from the previous page's metadata.continue */
    long limit;                   /* 0 = no limit */
};

/* Append the query parameters of opts ("&k=v" each, values percent-encoded) to the string in
 * buf (size n). 0 or -ENAMETOOLONG. */
int kube_list_query(char *buf, size_t n, const struct kube_list_opts *opts);

/* GET one object into *ret_obj. */
int kube_get(struct kube_client *c, const struct kube_resource *res, const char *ns,
             const char *name, cJSON **ret_obj, struct kube_status *st);
/* One page of a list (the List object, with metadata.continue when there is more). ns NULL =
 * all namespaces. */
int kube_list(struct kube_client *c, const struct kube_resource *res, const char *ns,
              const struct kube_list_opts *opts, cJSON **ret_list, struct kube_status *st);
/*
 * One page of a list whose items are parsed one at a time and handed to on_item (which takes
 * each), so that the page's objects are never all in memory as cJSON at once. The page without
 * its items ("items" is an empty array; metadata with resourceVersion and continue) in
 * *ret_page. An error from on_item stops the parse and is returned (the items handed out
 * before it stay the caller's); a body that is not one JSON object (trailing bytes too), whose
 * items are neither an array nor null, or that has two "items", is -EBADMSG. on_item runs on the
 * caller's thread.
 */
/* kube_list_each's parse of a List body (text, len bytes) into *ret_page and on_item calls;
 * for tests. 0, -EBADMSG or on_item's error (then nothing in *ret_page). */
int kube_list_parse(const char *text, size_t len, int (*on_item)(void *ud, cJSON *item), void *ud,
                    cJSON **ret_page);
int kube_list_each(struct kube_client *c, const struct kube_resource *res, const char *ns,
                   const struct kube_list_opts *opts, int (*on_item)(void *ud, cJSON *item),
                   void *ud, cJSON **ret_page, struct kube_status *st);
/*
 * Every page (page size `limit`, 0 = 500) into one List object whose "items" holds all items and
 * whose metadata.resourceVersion is the list's; a continue token that expires (410) restarts the
 * listing once from the beginning. Items are checked to be objects with metadata.name
 * (-EBADMSG otherwise).
 */
int kube_list_all(struct kube_client *c, const struct kube_resource *res, const char *ns,
                  const struct kube_list_opts *opts, cJSON **ret_list, struct kube_status *st);
/* POST obj (borrowed) into the collection; the created object in *ret_obj. */
int kube_create(struct kube_client *c, const struct kube_resource *res, const char *ns,
                const cJSON *obj, cJSON **ret_obj, struct kube_status *st);
/* PUT obj (borrowed) to the object (subresource NULL) or its "status"; name comes from
 * obj.metadata.name. A stale metadata.resourceVersion is KUBE_ECONFLICT. */
int kube_update(struct kube_client *c, const struct kube_resource *res, const char *ns,
                const char *subresource, const cJSON *obj, cJSON **ret_obj, struct kube_status *st);

/* A mutation for kube_update_retry(): change obj (owned by the caller of the callback, i.e. the
 * client) in place and return 0 to write it, KUBE_MUTATE_SKIP to write nothing (success), or a
 * -errno to give up with it. */
#define KUBE_MUTATE_SKIP 1
typedef int (*kube_mutate_fn)(cJSON *obj, void *ud);

/*
 * Read-modify-write with optimistic concurrency: GET, mutate, then PATCH (to subresource when
 * not NULL) with the JSON merge patch of what the mutation changed plus the read object's
 * metadata.resourceVersion, which the API server takes as a precondition (409 Conflict when the
 * object changed since): as safe as a PUT of the whole object, but a field the copy lacks (a
 * trimmed cache) or the mutation did not touch is never written. On KUBE_ECONFLICT read again
 * and repeat, up to 10 times. The written (or, on SKIP, the read) object in *ret_obj.
 */
int kube_update_retry(struct kube_client *c, const struct kube_resource *res, const char *ns,
                      const char *name, const char *subresource, kube_mutate_fn mutate, void *ud,
                      cJSON **ret_obj, struct kube_status *st);

/*
 * The same, starting from base (borrowed; a cached copy of the object, e.g. from an informer)
 * instead of a GET: the first PATCH carries base's resourceVersion, so a stale copy costs one 409
 * and the loop then reads afresh. A mutation that SKIPs on the cached copy writes nothing.
 * base NULL = kube_update_retry().
 */
int kube_update_retry_from(struct kube_client *c, const struct kube_resource *res, const char *ns,
                           const char *name, const char *subresource, const cJSON *base,
                           kube_mutate_fn mutate, void *ud, cJSON **ret_obj,
                           struct kube_status *st);

/* The JSON merge patch (RFC 7386) that turns object from into object to (both borrowed) into
 * *ret_patch (owned): changed members, null for removed ones, nested objects diffed, arrays
 * whole; a member set to null counts as removed (merge patch cannot write a null).
 * 0, -EINVAL (not objects) or -ENOMEM. */
int kube_merge_patch_diff(const cJSON *from, const cJSON *to, cJSON **ret_patch);

/* JSON merge patch (application/merge-patch+json) of the object or its subresource. */
int kube_patch(struct kube_client *c, const struct kube_resource *res, const char *ns,
               const char *name, const char *subresource, const cJSON *patch, cJSON **ret_obj,
               struct kube_status *st);

struct kube_delete_opts {
    const char *propagation_policy; /* "Background", "Foreground", "Orphan" or NULL */
    const char *precondition_uid;   /* NULL = none */
    const char *precondition_rv;    /* NULL = none */
    long grace_period_seconds;      /* < 0 = server default */
};

/* DELETE with a DeleteOptions body (opts may be NULL). The response (the deleted object, the
 * object marked for deletion, or a Status) in *ret_obj. */
int kube_delete(struct kube_client *c, const struct kube_resource *res, const char *ns,
                const char *name, const struct kube_delete_opts *opts, cJSON **ret_obj,
                struct kube_status *st);

/* Borrowed metadata fields of obj, or NULL when absent or not a string. */
const char *kube_obj_name(const cJSON *obj);
const char *kube_obj_namespace(const cJSON *obj);
const char *kube_obj_rv(const cJSON *obj);

/* ---- internal to kube_*.c ---- */

/*
 * One streaming GET of path_query: when the server answers 200, every chunk of the body goes to
 * on_data, which returns 0 to go on or a -errno to abort the transfer (returned as is). Returns 0
 * when the server ended the body, -ECANCELED when *stop (may be NULL) became true or the client
 * shut down, the -errno of a non-200 answer (its Status in *st) or of a transport error. No
 * retries, no overall timeout beyond timeout_ms (0 = none).
 */
int kube__stream(struct kube_client *c, const char *path_query, const atomic_bool *stop,
                 long timeout_ms, int (*on_data)(void *ud, const char *data, size_t n), void *ud,
                 struct kube_status *st);
/* Sleep up to seconds, waking early when *stop (may be NULL) is set and kube__wake() is called,
 * or the client shuts down. Returns false when woken because of a stop. */
bool kube__sleep(struct kube_client *c, double seconds, const atomic_bool *stop);
/* Wake every kube__sleep() of the client so that they re-check their stop flags. */
void kube__wake(struct kube_client *c);

#endif
