/*
 * gRPC core server (see server.h for the model).
 *
 * Life of a call context (struct csi_call), told by its tag phase:
 *   PHASE_REQUEST  posted with grpc_server_request_registered_call (or request_call for
 *                  unknown methods). Its tag fires on a CQ thread: success -> re-post a fresh
 *                  request for the method, queue this call for a worker; !success (shutdown)
 *                  -> free it.
 *   PHASE_REPLY    a worker ran the handler and started the reply batch (initial metadata,
 *                  message, status, close). Its tag fires on a CQ thread -> free everything.
 *
 * Threading: CQ threads only move calls between phases; workers run handlers. `mu` guards the
 * work queue, `stopping`, `inflight` and the shutdown flags; it is never held across a gRPC call
 * that could block, nor across a handler. Lock order: only one lock here.
 *
 * Two condition variables, one per kind of waiter: workers wait on `work_cond` (a call queued,
 * or told to exit), server_stop waits on `stop_cond` (the shutdown tag came back, or the last
 * received call was freed while stopping). With one
 * shared variable, the pthread_cond_signal of queue_push could wake server_stop instead of an
 * idle worker, and the queued call then sat unserved while shutdown waited for it.
 */
#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "log.h"
#include "metrics.h"
#include "pbcheck.h"
#include "status.h"
#include "util.h"

#define REQUESTS_PER_METHOD 2
#define MAX_MESSAGE_BYTES (1 << 20) /* CSI messages are small; cap what a client may send */

enum phase { PHASE_REQUEST, PHASE_REPLY };

struct server;

struct csi_call {
    enum phase phase;
    struct server *srv;         /* borrowed */
    const struct csi_method *m; /* borrowed; NULL for an unregistered method */
    void *registered;           /* registered method handle of m */
    grpc_call *call;            /* owned: one ref, dropped when freed */
    gpr_timespec deadline;
    grpc_metadata_array req_md; /* owned array, elements owned by the call */
    grpc_call_details details;  /* unregistered calls only */
    grpc_byte_buffer *payload;  /* owned, request message */
    grpc_byte_buffer *reply;    /* owned, response message */
    int cancelled;              /* RECV_CLOSE_ON_SERVER result */
    uint64_t arrived;           /* metrics_now() when the request came in */
    grpc_slice status_details;  /* owned */
    struct arena arena;
    char msg[512];         /* status message of a failing call */
    struct csi_call *next; /* work queue link */
    /* Set with release before the context is handed to gRPC (request posted, reply batch
     * started) and read with acquire by the CQ thread that dequeues its tag: the hand-over goes
     * through gRPC's own, uninstrumented synchronisation, which ThreadSanitizer cannot see. */
    int handed_over;
};

struct server {
    grpc_server *server;
    grpc_completion_queue *cq;
    struct server_config cfg;
    void **registered; /* owned array, one handle per method */
    pthread_t *cq_threads, *workers;
    size_t n_cq_threads, n_workers;
    char *socket_path; /* owned */

    pthread_mutex_t mu;
    pthread_cond_t work_cond; /* workers: a call queued, or workers_exit */
    pthread_cond_t stop_cond; /* server_stop: shutdown_done, inflight 0 (CLOCK_MONOTONIC) */
    struct csi_call *queue_head, *queue_tail;
    bool stopping;   /* no more re-posts */
    size_t inflight; /* calls received from gRPC whose reply has not completed */
    bool workers_exit;
    bool shutdown_done; /* the shutdown tag came back */
    int shutdown_tag;   /* its address is the tag */
};

static void call_free(struct csi_call *c)
{
    if (!c)
        return;
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    if (c->reply)
        grpc_byte_buffer_destroy(c->reply);
    grpc_metadata_array_destroy(&c->req_md);
    if (!c->m)
        grpc_call_details_destroy(&c->details);
    grpc_slice_unref(c->status_details);
    if (c->call)
        grpc_call_unref(c->call);
    arena_release(&c->arena);
    free(c);
}

/* Post one request for method index i (or the unregistered catch-all when i == n_methods). */
static int post_request(struct server *s, size_t i)
{
    struct csi_call *c = calloc(1, sizeof(*c));
    grpc_call_error e;

    if (!c)
        return -ENOMEM;
    c->phase = PHASE_REQUEST;
    c->srv = s;
    c->status_details = grpc_empty_slice();
    arena_init(&c->arena);
    grpc_metadata_array_init(&c->req_md);
    if (i < s->cfg.n_methods) {
        c->m = &s->cfg.methods[i];
        c->registered = s->registered[i];
    } else {
        grpc_call_details_init(&c->details);
    }
    /* Publish the initialised context to whichever CQ thread dequeues its tag; from then on c
     * may be freed by that thread at any moment (shutdown), so read nothing of it after. */
    void *registered = c->m ? c->registered : NULL;
    __atomic_store_n(&c->handed_over, 0, __ATOMIC_RELEASE);
    if (registered)
        e = grpc_server_request_registered_call(s->server, registered, &c->call, &c->deadline,
                                                &c->req_md, &c->payload, s->cq, s->cq, c);
    else
        e = grpc_server_request_call(s->server, &c->call, &c->details, &c->req_md, s->cq, s->cq, c);
    if (e != GRPC_CALL_OK) {
        log_error("grpc: posting a request failed: %d", (int)e);
        call_free(c);
        return -EIO;
    }
    return 0;
}

static size_t method_index(const struct server *s, const struct csi_call *c)
{
    return c->m ? (size_t)(c->m - s->cfg.methods) : s->cfg.n_methods;
}

static void queue_push(struct server *s, struct csi_call *c)
{
    pthread_mutex_lock(&s->mu);
    c->next = NULL;
    if (s->queue_tail)
        s->queue_tail->next = c;
    else
        s->queue_head = c;
    s->queue_tail = c;
    pthread_cond_signal(&s->work_cond);
    pthread_mutex_unlock(&s->mu);
}

/* Free a call that was received (counted in inflight); wakes server_stop at the last one. */
static void call_done(struct server *s, struct csi_call *c)
{
    call_free(c);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    if (s->inflight == 0 && s->stopping)
        pthread_cond_signal(&s->stop_cond);
    pthread_mutex_unlock(&s->mu);
}

/* Start the reply batch. On failure the call is freed here. */
static void send_reply(struct csi_call *c, grpc_status_code code, const char *message)
{
    grpc_op ops[4];
    size_t n = 0;

    memset(ops, 0, sizeof(ops));
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = 0;
    n++;
    if (code == GRPC_STATUS_OK && c->reply) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->reply;
        n++;
    }
    /* A message may quote request fields: no control character reaches the client. */
    char safe[sizeof(c->msg)];
    log_text_escape(safe, (int)sizeof(safe), message);
    c->status_details = grpc_slice_from_copied_string(safe);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details = &c->status_details;
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
    n++;

    metrics_csi_call(c->m ? c->m->path : NULL, (int)code, c->arrived);
    /* From the release store on, the CQ thread may free c at any moment: touch nothing of it. */
    grpc_call *call = c->call;
    c->phase = PHASE_REPLY;
    __atomic_store_n(&c->handed_over, 1, __ATOMIC_RELEASE);
    grpc_call_error e = grpc_call_start_batch(call, ops, n, c, NULL);
    if (e != GRPC_CALL_OK) {
        /* No tag will come back: nothing of the call changed, so free it here. */
        log_error("grpc: starting the reply batch failed: %d", (int)e);
        call_done(c->srv, c);
    }
}

/* Run one call on a worker thread. */
static void run_call(struct server *s, struct csi_call *c)
{
    ProtobufCMessage *req = NULL, *resp = NULL;
    grpc_byte_buffer_reader reader;
    grpc_slice slice;
    int r;

    if (!c->m) {
        char *method = grpc_slice_to_c_string(c->details.method);
        log_debug("rpc %s: unknown method", method);
        snprintf(c->msg, sizeof(c->msg), "unknown method %s", method);
        gpr_free(method);
        send_reply(c, GRPC_STATUS_UNIMPLEMENTED, c->msg);
        return;
    }
    if (!c->payload) {
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
        return;
    }
    if (!grpc_byte_buffer_reader_init(&reader, c->payload)) {
        send_reply(c, GRPC_STATUS_INTERNAL, "cannot read the request");
        return;
    }
    slice = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    if (pb_check_strings(c->m->request, GRPC_SLICE_START_PTR(slice), GRPC_SLICE_LENGTH(slice),
                         c->msg, sizeof(c->msg)) < 0) {
        grpc_slice_unref(slice);
        log_info("rpc %s: INVALID_ARGUMENT: %s", c->m->path, c->msg);
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, c->msg);
        return;
    }
    req = protobuf_c_message_unpack(c->m->request, NULL, GRPC_SLICE_LENGTH(slice),
                                    GRPC_SLICE_START_PTR(slice));
    grpc_slice_unref(slice);
    if (!req) {
        log_debug("rpc %s: malformed request", c->m->path);
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "malformed request message");
        return;
    }

    be_error_clear();
    c->msg[0] = '\0';
    r = c->m->handler(c, s->cfg.ctx, req, &resp);

    if (r >= 0 && resp) {
        size_t len = protobuf_c_message_get_packed_size(resp);
        unsigned char *buf = arena_alloc(&c->arena, len ? len : 1);

        if (!buf) {
            r = -ENOMEM;
        } else {
            protobuf_c_message_pack(resp, buf);
            grpc_slice out = grpc_slice_from_copied_buffer((const char *)buf, len);
            c->reply = grpc_raw_byte_buffer_create(&out, 1);
            grpc_slice_unref(out);
        }
    } else if (r >= 0) {
        r = -EIO; /* a handler that succeeds must produce a response */
        snprintf(c->msg, sizeof(c->msg), "internal error: no response");
    }
    /* Responses may borrow from the request (echoed fields): free it only after packing. */
    protobuf_c_message_free_unpacked(req, NULL);

    if (r < 0) {
        grpc_status_code code = csi_status_from_errno(r);

        if (!c->msg[0]) {
            const char *m = be_last_error();
            if (m[0])
                snprintf(c->msg, sizeof(c->msg), "%s", m);
            else
                snprintf(c->msg, sizeof(c->msg), "%s", strerror(-r));
        }
        if (code == GRPC_STATUS_INTERNAL)
            log_error("rpc %s: %s: %s", c->m->path, csi_status_name(code), c->msg);
        else
            log_info("rpc %s: %s: %s", c->m->path, csi_status_name(code), c->msg);
        send_reply(c, code, c->msg);
        return;
    }
    log_debug("rpc %s: OK", c->m->path);
    send_reply(c, GRPC_STATUS_OK, "");
}

static void *worker_main(void *arg)
{
    struct server *s = arg;

    for (;;) {
        struct csi_call *c;

        pthread_mutex_lock(&s->mu);
        while (!s->queue_head && !s->workers_exit)
            pthread_cond_wait(&s->work_cond, &s->mu);
        c = s->queue_head;
        if (!c) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        s->queue_head = c->next;
        if (!s->queue_head)
            s->queue_tail = NULL;
        pthread_mutex_unlock(&s->mu);

        run_call(s, c);
    }
}

static void *cq_main(void *arg)
{
    struct server *s = arg;

    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &s->shutdown_tag) {
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = true;
            pthread_cond_signal(&s->stop_cond);
            pthread_mutex_unlock(&s->mu);
            continue;
        }

        struct csi_call *c = ev.tag;
        if (__atomic_load_n(&c->handed_over, __ATOMIC_ACQUIRE)) {
            call_done(s, c);
            continue;
        }
        /* PHASE_REQUEST */
        if (!ev.success || !c->call) {
            call_free(c); /* the server is shutting down */
            continue;
        }
        /* With two CQ threads, one may take a call's arrival just before the other takes the
         * shutdown tag, and count it only after server_stop saw every received call answered
         * and let the workers go (both under mu, see server_stop). Queued then, the call would
         * wait for a worker that never comes and leak. No handler ran for it: cancel it. */
        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping, late = s->workers_exit;
        if (!late)
            s->inflight++; /* counted before the re-post: server_stop must see it from now on */
        pthread_mutex_unlock(&s->mu);
        if (late) {
            grpc_call_cancel(c->call, NULL);
            call_free(c);
            continue;
        }
        c->arrived = metrics_now();
        if (!stopping && post_request(s, method_index(s, c)) < 0)
            log_error("grpc: could not re-post a request; capacity for this method drops");
        queue_push(s, c);
    }
}

struct arena *csi_call_arena(struct csi_call *call)
{
    return &call->arena;
}

int csi_call_error(struct csi_call *call, int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(call->msg, sizeof(call->msg), fmt, ap);
    va_end(ap);
    return r;
}

struct csi_call *csi_call_new_detached(void)
{
    struct csi_call *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->status_details = grpc_empty_slice();
    arena_init(&c->arena);
    grpc_metadata_array_init(&c->req_md);
    grpc_call_details_init(&c->details);
    return c;
}

void csi_call_free_detached(struct csi_call *call)
{
    call_free(call);
}

const char *csi_call_message(const struct csi_call *call)
{
    return call->msg;
}

/* With no CQ thread running (start-up failed): free every call the queue hands back until the
 * shutdown tag arrives. */
static void drain_until_shutdown_tag(struct server *s)
{
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_OP_COMPLETE && ev.tag == &s->shutdown_tag)
            return;
        if (ev.type == GRPC_OP_COMPLETE && ev.tag)
            call_free(ev.tag);
    }
}

static void server_free(struct server *s)
{
    if (!s)
        return;
    free(s->registered);
    free(s->cq_threads);
    free(s->workers);
    free(s->socket_path);
    pthread_cond_destroy(&s->work_cond);
    pthread_cond_destroy(&s->stop_cond);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

struct server *server_start(const struct server_config *cfg)
{
    struct server *s = calloc(1, sizeof(*s));
    grpc_server_credentials *creds;
    const char *path;
    pthread_condattr_t ca;

    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cond, NULL);
    /* The grace deadline must not move with the wall clock. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->stop_cond, &ca);
    pthread_condattr_destroy(&ca);
    s->cfg = *cfg;

    if (strncmp(cfg->endpoint, "unix://", 7) != 0) {
        log_error("endpoint %s: only unix:// endpoints are served", cfg->endpoint);
        goto fail;
    }
    path = cfg->endpoint + 7; /* unix:///abs/path -> /abs/path */
    if (path[0] != '/') {
        log_error("endpoint %s: the socket path must be absolute", cfg->endpoint);
        goto fail;
    }
    s->socket_path = strdup(path);
    s->registered = calloc(cfg->n_methods ? cfg->n_methods : 1, sizeof(void *));
    s->cq_threads = calloc(cfg->cq_threads, sizeof(pthread_t));
    s->workers = calloc(cfg->workers, sizeof(pthread_t));
    if (!s->socket_path || !s->registered || !s->cq_threads || !s->workers)
        goto fail;

    /* A socket left by a crashed daemon would make the bind fail. */
    if (unlink(s->socket_path) < 0 && errno != ENOENT) {
        log_error("endpoint %s: cannot remove the stale socket: %s", cfg->endpoint,
                  strerror(errno));
        goto fail;
    }

    grpc_arg args[1];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)(uintptr_t)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = MAX_MESSAGE_BYTES;
    grpc_channel_args chargs = {.num_args = 1, .args = args};

    s->server = grpc_server_create(&chargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    for (size_t i = 0; i < cfg->n_methods; i++) {
        s->registered[i] = grpc_server_register_method(
            s->server, cfg->methods[i].path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!s->registered[i]) {
            log_error("grpc: cannot register %s", cfg->methods[i].path);
            goto fail_grpc;
        }
    }
    creds = grpc_insecure_server_credentials_create();
    /* gRPC wants "unix:/path" or "unix:///path"; both name the same socket. */
    int port = grpc_server_add_http2_port(s->server, cfg->endpoint, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        log_error("endpoint %s: cannot listen", cfg->endpoint);
        goto fail_grpc;
    }
    grpc_server_start(s->server);
    /* Only the owner and its group (kubelet, the sidecars) may talk to the driver. */
    if (chmod(s->socket_path, 0660) < 0)
        log_warn("endpoint %s: chmod 0660 failed: %s", cfg->endpoint, strerror(errno));

    for (size_t i = 0; i <= cfg->n_methods; i++)
        for (int k = 0; k < REQUESTS_PER_METHOD; k++)
            if (post_request(s, i) < 0)
                goto fail_started;
    if (cfg->on_serving)
        cfg->on_serving(cfg->on_serving_ud); /* no completion-queue thread runs yet */

    for (size_t i = 0; i < cfg->cq_threads; i++) {
        if (pthread_create(&s->cq_threads[i], NULL, cq_main, s) != 0)
            goto fail_started;
        s->n_cq_threads++;
    }
    for (size_t i = 0; i < cfg->workers; i++) {
        if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0)
            goto fail_started;
        s->n_workers++;
    }
    log_info("serving CSI on %s (%zu completion-queue threads, %zu workers)", cfg->endpoint,
             cfg->cq_threads, cfg->workers);
    return s;

fail_started:
    server_stop(s, 0);
    return NULL;
fail_grpc:
    /* Not started: no calls exist; destroy needs a shutdown first. */
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    grpc_server_cancel_all_calls(s->server);
    drain_until_shutdown_tag(s);
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(s->cq);
fail:
    server_free(s);
    return NULL;
}

void server_stop(struct server *s, int grace_ms)
{
    struct timespec deadline;
    bool cancelled = false;

    /* (a) stop re-posting, (b) ask gRPC to shut down and notify. */
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);

    /* (c) wait for in-flight calls; after the grace period cancel them once, then wait without a
     * deadline: cancelled calls still come back through the queue, and a timed wait that has
     * already expired would return at once, again and again.
     *
     * Once every call we received is answered, whatever gRPC still holds is a call that reached
     * the transport but was never handed to us (one that arrived while shutdown began can stay
     * queued inside gRPC, matched to no request, and would hold the shutdown tag back until the
     * grace period ends): no handler ran for it, so it is cancelled at once. */
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += grace_ms / 1000;
    deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    /* Also until every received call is freed: its reply tag still needs the CQ threads. */
    while (!s->shutdown_done || s->inflight > 0) {
        if (s->n_cq_threads == 0) {
            /* Start-up failed before any CQ thread: drain here. */
            pthread_mutex_unlock(&s->mu);
            grpc_server_cancel_all_calls(s->server);
            drain_until_shutdown_tag(s);
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = true;
            break;
        }
        if (!cancelled && s->inflight == 0) {
            pthread_mutex_unlock(&s->mu);
            log_debug("shutdown: every call received is answered; cancelling the rest");
            grpc_server_cancel_all_calls(s->server);
            cancelled = true;
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (cancelled) {
            pthread_cond_wait(&s->stop_cond, &s->mu);
            continue;
        }
        if (pthread_cond_timedwait(&s->stop_cond, &s->mu, &deadline) == ETIMEDOUT &&
            (!s->shutdown_done || s->inflight > 0)) {
            pthread_mutex_unlock(&s->mu);
            log_warn("shutdown: in-flight calls did not finish in %d ms; cancelling them",
                     grace_ms);
            grpc_server_cancel_all_calls(s->server);
            cancelled = true;
            pthread_mutex_lock(&s->mu);
        }
    }
    /* Every call is answered; workers may exit once the queue is empty. Set under the same
     * hold of mu as the last check of inflight: a CQ thread counts a call before this (and we
     * waited for it) or sees workers_exit and cancels the call itself. */
    s->workers_exit = true;
    pthread_cond_broadcast(&s->work_cond);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);

    /* (d) shut the queue down; CQ threads drain it and exit. */
    grpc_completion_queue_shutdown(s->cq);
    for (size_t i = 0; i < s->n_cq_threads; i++)
        pthread_join(s->cq_threads[i], NULL);
    /* (e) server, (f) queue. grpc_shutdown() is the caller's, last. */
    grpc_server_destroy(s->server);
    grpc_completion_queue_destroy(s->cq);
    unlink(s->socket_path);
    server_free(s);
}
