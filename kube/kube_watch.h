/*
 * Kubernetes watches: the newline-delimited stream of WatchEvents cut into lines by a capped
 * framer, each line decoded and checked, and one watch request driving both.
 *
 * Threading: a framer is owned by one thread. kube_watch() blocks its caller for the life of the
 * stream and calls the event callback on that thread.
 */
#ifndef ORDINAL_KUBE_WATCH_H
#define ORDINAL_KUBE_WATCH_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "kube_client.h"

/* Cap on one event line (one object); longer is -EMSGSIZE and the caller relists. */
#define KUBE_WATCH_MAX_LINE (4 * 1024 * 1024)

/* ---- framing ---- */

struct kube_framer {
    char *buf;  /* owned: the incomplete line carried between chunks */
    size_t len; /* bytes in buf */
    size_t cap;
    size_t max; /* cap on a line, without its '\n' */
};

/* A line callback: return 0 to go on, anything else stops kube_framer_feed() with it. */
typedef int (*kube_line_fn)(void *ud, const char *line, size_t len);

void kube_framer_init(struct kube_framer *f, size_t max_line);
void kube_framer_release(struct kube_framer *f);
/* Forget a partial line (after a reconnect). */
void kube_framer_reset(struct kube_framer *f);
/*
 * Feed n bytes of the stream; fn receives each complete non-empty line (without "\n" or "\r\n";
 * borrowed, valid during the call, not NUL-terminated). Returns 0, -EMSGSIZE when a line grows
 * past max (the framer must then be reset), -ENOMEM, or the first non-zero return of fn.
 */
int kube_framer_feed(struct kube_framer *f, const char *data, size_t n, kube_line_fn fn, void *ud);

/* ---- events ---- */

enum kube_event_type {
    KUBE_EVENT_ADDED,
    KUBE_EVENT_MODIFIED,
    KUBE_EVENT_DELETED,
    KUBE_EVENT_BOOKMARK,
    KUBE_EVENT_ERROR,
};

struct kube_event {
    enum kube_event_type type;
    cJSON *object; /* owned by the event; a callback may take it (set it to NULL) */
};

void kube_event_release(struct kube_event *ev);
const char *kube_event_type_name(enum kube_event_type t);

/*
 * Decode one line: {"type": ..., "object": {...}}. ADDED/MODIFIED/DELETED need an object with
 * metadata.name and metadata.resourceVersion strings, BOOKMARK metadata.resourceVersion, ERROR
 * any object (a Status). 0 with *ev filled (caller releases), -EBADMSG for anything else,
 * -ENOMEM.
 */
int kube_event_parse(const char *line, size_t len, struct kube_event *ev);

/* ---- the watch request ---- */

struct kube_watch_opts {
    const char *label_selector;   /* NULL = none */
    const char *field_selector;   /* NULL = none */
    const char *resource_version; /* start after this; NULL or "" = now (no replay) */
    int timeout_seconds;          /* server-side end of the stream; 0 = random in [300, 600) */
    size_t max_line;              /* 0 = KUBE_WATCH_MAX_LINE */
    const atomic_bool *stop;      /* set it and call kube__wake(): returns within ~1 s */
};

/* An event callback: may take ev->object. Return 0 to go on or a -errno to end the watch. */
typedef int (*kube_event_fn)(void *ud, struct kube_event *ev);

/*
 * Watch res in ns (NULL = all namespaces), with allowWatchBookmarks. Events come to fn in order;
 * ERROR events end the watch and are not passed on. Returns:
 *   0               the server ended the stream: watch again from the last resourceVersion;
 *   KUBE_EGONE      410 (ERROR event or answer): the resourceVersion is too old, relist;
 *   -EMSGSIZE       an event line over the cap; -EBADMSG a malformed event: relist;
 *   -ECANCELED      stopped (opts->stop or client shutdown);
 *   fn's -errno     when fn ended the watch;
 *   other -errno    an error answer (Status in *st) or a transport failure: back off, re-watch.
 */
int kube_watch(struct kube_client *c, const struct kube_resource *res, const char *ns,
               const struct kube_watch_opts *opts, kube_event_fn fn, void *ud,
               struct kube_status *st);

#endif
