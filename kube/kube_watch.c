/*
 * Watch framing, event decoding and the watch request (kube_watch.h). The framer delivers a line
 * straight from the chunk when nothing is buffered, and copies only the tail of a chunk that
 * ends mid-line, so the common case (whole events per chunk) does not copy.
 */
#include "kube_watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_util.h"

void kube_framer_init(struct kube_framer *f, size_t max_line)
{
    memset(f, 0, sizeof(*f));
    f->max = max_line ? max_line : KUBE_WATCH_MAX_LINE;
}

void kube_framer_release(struct kube_framer *f)
{
    free(f->buf);
    memset(f, 0, sizeof(*f));
}

void kube_framer_reset(struct kube_framer *f)
{
    f->len = 0;
}

static int deliver(const char *line, size_t len, kube_line_fn fn, void *ud)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return 0;
    return fn(ud, line, len);
}

static int buf_append(struct kube_framer *f, const char *data, size_t n)
{
    if (f->len + n > f->max)
        return -EMSGSIZE;
    if (f->len + n > f->cap) {
        size_t ncap = f->cap ? f->cap : 4096;
        char *nb;

        while (ncap < f->len + n)
            ncap *= 2;
        if (ncap > f->max + 1)
            ncap = f->max + 1;
        nb = realloc(f->buf, ncap);
        if (!nb)
            return -ENOMEM;
        f->buf = nb;
        f->cap = ncap;
    }
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return 0;
}

int kube_framer_feed(struct kube_framer *f, const char *data, size_t n, kube_line_fn fn, void *ud)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t seg = nl ? (size_t)(nl - data) : n;
        int r;

        if (!nl)
            return buf_append(f, data, n);
        if (f->len == 0) {
            if (seg > f->max)
                return -EMSGSIZE;
            r = deliver(data, seg, fn, ud);
        } else {
            size_t len;

            r = buf_append(f, data, seg);
            if (r < 0)
                return r;
            len = f->len;
            f->len = 0;
            r = deliver(f->buf, len, fn, ud);
        }
        if (r != 0)
            return r;
        data += seg + 1;
        n -= seg + 1;
    }
    return 0;
}

void kube_event_release(struct kube_event *ev)
{
    cJSON_Delete(ev->object);
    ev->object = NULL;
}

static const char *const type_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

const char *kube_event_type_name(enum kube_event_type t)
{
    return (unsigned)t < 5 ? type_names[t] : "?";
}

int kube_event_parse(const char *line, size_t len, struct kube_event *ev)
{
    cJSON *root = cJSON_ParseWithLength(line, len);
    const cJSON *type;
    cJSON *obj;
    int t = -1;

    if (!root)
        return -EBADMSG;
    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    obj = cJSON_GetObjectItemCaseSensitive(root, "object");
    if (cJSON_IsString(type))
        for (int i = 0; i < 5; i++)
            if (strcmp(type->valuestring, type_names[i]) == 0)
                t = i;
    if (t < 0 || !cJSON_IsObject(obj))
        goto bad;
    if (t != KUBE_EVENT_ERROR) {
        if (!kube_obj_rv(obj))
            goto bad;
        if (t != KUBE_EVENT_BOOKMARK && !kube_obj_name(obj))
            goto bad;
    }
    ev->type = (enum kube_event_type)t;
    ev->object = cJSON_DetachItemViaPointer(root, obj);
    cJSON_Delete(root);
    return 0;
bad:
    cJSON_Delete(root);
    return -EBADMSG;
}

struct watch_state {
    struct kube_framer framer;
    kube_event_fn fn;
    void *ud;
    struct kube_status *st;
    int end; /* why the stream was ended from our side */
};

static int on_line(void *ud, const char *line, size_t len)
{
    struct watch_state *w = ud;
    struct kube_event ev;
    int r;

    r = kube_event_parse(line, len, &ev);
    if (r < 0)
        return r;
    if (ev.type == KUBE_EVENT_ERROR) {
        r = kube_status_decode(0, ev.object, w->st);
        kube_event_release(&ev);
        return r < 0 ? r : -EPROTO;
    }
    r = w->fn(w->ud, &ev);
    kube_event_release(&ev);
    return r < 0 ? r : 0;
}

static int on_data(void *ud, const char *data, size_t n)
{
    struct watch_state *w = ud;

    return kube_framer_feed(&w->framer, data, n, on_line, w);
}

int kube_watch(struct kube_client *c, const struct kube_resource *res, const char *ns,
               const struct kube_watch_opts *opts, kube_event_fn fn, void *ud,
               struct kube_status *st)
{
    struct kube_watch_opts o = {0};
    struct kube_list_opts lo = {0};
    struct watch_state w = {.fn = fn, .ud = ud};
    struct kube_status tmp;
    char path[4096], extra[64];
    int r;

    if (opts)
        o = *opts;
    if (!st)
        st = &tmp;
    memset(st, 0, sizeof(*st));
    w.st = st;
    if (o.timeout_seconds <= 0)
        o.timeout_seconds = 300 + (int)(kube__rand() * 300);
    r = kube_path(path, sizeof(path), res, ns, NULL, NULL);
    if (r < 0)
        return r;
    snprintf(extra, sizeof(extra), "?watch=1&allowWatchBookmarks=true&timeoutSeconds=%d",
             o.timeout_seconds);
    if (strlen(path) + strlen(extra) >= sizeof(path))
        return -ENAMETOOLONG;
    strcat(path, extra);
    lo.label_selector = o.label_selector;
    lo.field_selector = o.field_selector;
    lo.resource_version = o.resource_version && *o.resource_version ? o.resource_version : NULL;
    r = kube_list_query(path, sizeof(path), &lo);
    if (r < 0)
        return r;
    kube_framer_init(&w.framer, o.max_line);
    r = kube__stream(c, path, o.stop, (o.timeout_seconds + 30) * 1000L, on_data, &w, st);
    kube_framer_release(&w.framer);
    if (r == -EMSGSIZE)
        snprintf(st->message, sizeof(st->message), "watch event longer than the line cap");
    else if (r == -EBADMSG)
        snprintf(st->message, sizeof(st->message), "malformed watch event");
    return r;
}
