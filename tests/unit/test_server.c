/*
 * Unit tests: the shutdown waits of provisioner/server.c, with a real gRPC server and client on
 * a unix socket.
 *
 * Which waiter a pthread_cond_signal wakes is up to the implementation, so this binary is linked
 * with --wrap for the pthread_cond_* functions (see CMakeLists.txt): server.c's condition
 * variables become a model that wakes waiters strictly in FIFO order (a valid implementation of
 * POSIX) and lets the test see who waits where. grpc_server_request_registered_call is wrapped
 * too, so that the test can hold a completion-queue thread just before it queues a call. Only
 * objects linked into this binary see the wrappers; gRPC's own locks are untouched. The test's
 * own synchronisation calls the __real_ functions.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "csi.h"
#include "log.h"
#include "server.h"

#define WAIT_SEC 10 /* bound of every wait for an event; far above what the events need */

/* ---- the condition variable model ---- */

int __real_pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a);
int __real_pthread_cond_destroy(pthread_cond_t *c);
int __real_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int __real_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t);
int __real_pthread_cond_signal(pthread_cond_t *c);
int __real_pthread_cond_broadcast(pthread_cond_t *c);
grpc_call_error __real_grpc_server_request_registered_call(
    grpc_server *server, void *registered_method, grpc_call **call, gpr_timespec *deadline,
    grpc_metadata_array *request_metadata, grpc_byte_buffer **optional_payload,
    grpc_completion_queue *cq_bound_to_call, grpc_completion_queue *cq_for_notification, void *tag);

struct waiter {
    pthread_cond_t *cond;
    pthread_t thread;
    bool timed, woken;
    struct waiter *next;
};

#define MAX_CONDS 16

static struct {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* CLOCK_MONOTONIC; every change of the model is broadcast */
    struct waiter *fifo;    /* all waiters, in the order they started waiting */
    struct {
        pthread_cond_t *cond;
        clockid_t clock;
    } conds[MAX_CONDS];
    /* what the thread under watch (the one calling server_stop) did */
    pthread_t watched;
    bool watching;
    int watched_timed_waits, watched_untimed_waits;
    /* the CQ thread held before it queues a call */
    bool hold_armed, held, hold_release;
} model = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void model_changed(void)
{
    __real_pthread_cond_broadcast(&model.changed);
}

static clockid_t clock_of(pthread_cond_t *c)
{
    for (size_t i = 0; i < MAX_CONDS; i++)
        if (model.conds[i].cond == c)
            return model.conds[i].clock;
    return CLOCK_REALTIME;
}

int __wrap_pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a);
int __wrap_pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a)
{
    clockid_t clock = CLOCK_REALTIME;

    if (a)
        pthread_condattr_getclock(a, &clock);
    pthread_mutex_lock(&model.mu);
    for (size_t i = 0; i < MAX_CONDS; i++)
        if (!model.conds[i].cond) {
            model.conds[i].cond = c;
            model.conds[i].clock = clock;
            break;
        }
    pthread_mutex_unlock(&model.mu);
    return __real_pthread_cond_init(c, a);
}

int __wrap_pthread_cond_destroy(pthread_cond_t *c);
int __wrap_pthread_cond_destroy(pthread_cond_t *c)
{
    pthread_mutex_lock(&model.mu);
    for (size_t i = 0; i < MAX_CONDS; i++)
        if (model.conds[i].cond == c)
            model.conds[i].cond = NULL;
    pthread_mutex_unlock(&model.mu);
    return __real_pthread_cond_destroy(c);
}

static void unlink_waiter(struct waiter *w)
{
    for (struct waiter **p = &model.fifo; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

/* The absolute time t of clock `from` as a CLOCK_MONOTONIC time. */
static struct timespec to_monotonic(const struct timespec *t, clockid_t from)
{
    struct timespec now_from, now_mono, r;
    int64_t left;

    clock_gettime(from, &now_from);
    clock_gettime(CLOCK_MONOTONIC, &now_mono);
    left = (int64_t)(t->tv_sec - now_from.tv_sec) * 1000000000 + (t->tv_nsec - now_from.tv_nsec);
    if (left < 0)
        left = 0;
    left += (int64_t)now_mono.tv_sec * 1000000000 + now_mono.tv_nsec;
    r.tv_sec = (time_t)(left / 1000000000);
    r.tv_nsec = (long)(left % 1000000000);
    return r;
}

static int model_wait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t)
{
    struct waiter w = {.cond = c, .thread = pthread_self(), .timed = t != NULL};
    struct timespec mono;
    int r = 0;

    pthread_mutex_lock(&model.mu);
    /* Registered before m is released: a signal sent under m after this sees the waiter. */
    struct waiter **tail = &model.fifo;
    while (*tail)
        tail = &(*tail)->next;
    *tail = &w;
    if (model.watching && pthread_equal(w.thread, model.watched)) {
        if (t)
            model.watched_timed_waits++;
        else
            model.watched_untimed_waits++;
    }
    if (t)
        mono = to_monotonic(t, clock_of(c));
    model_changed();
    pthread_mutex_unlock(m);
    while (!w.woken && r == 0)
        r = t ? __real_pthread_cond_timedwait(&model.changed, &model.mu, &mono)
              : __real_pthread_cond_wait(&model.changed, &model.mu);
    if (w.woken)
        r = 0;
    else
        unlink_waiter(&w);
    model_changed();
    pthread_mutex_unlock(&model.mu);
    pthread_mutex_lock(m);
    return r;
}

int __wrap_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int __wrap_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    return model_wait(c, m, NULL);
}

int __wrap_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t);
int __wrap_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t)
{
    return model_wait(c, m, t);
}

/* Wake the first waiter on c (all of them with all), in the order they started waiting. */
static void model_wake(pthread_cond_t *c, bool all)
{
    pthread_mutex_lock(&model.mu);
    for (struct waiter **p = &model.fifo; *p;) {
        struct waiter *w = *p;
        if (w->cond == c) {
            *p = w->next;
            w->woken = true;
            if (!all)
                break;
        } else {
            p = &w->next;
        }
    }
    model_changed();
    pthread_mutex_unlock(&model.mu);
}

int __wrap_pthread_cond_signal(pthread_cond_t *c);
int __wrap_pthread_cond_signal(pthread_cond_t *c)
{
    model_wake(c, false);
    return 0;
}

int __wrap_pthread_cond_broadcast(pthread_cond_t *c);
int __wrap_pthread_cond_broadcast(pthread_cond_t *c)
{
    model_wake(c, true);
    return 0;
}

grpc_call_error __wrap_grpc_server_request_registered_call(
    grpc_server *server, void *registered_method, grpc_call **call, gpr_timespec *deadline,
    grpc_metadata_array *request_metadata, grpc_byte_buffer **optional_payload,
    grpc_completion_queue *cq_bound_to_call, grpc_completion_queue *cq_for_notification, void *tag);
grpc_call_error __wrap_grpc_server_request_registered_call(
    grpc_server *server, void *registered_method, grpc_call **call, gpr_timespec *deadline,
    grpc_metadata_array *request_metadata, grpc_byte_buffer **optional_payload,
    grpc_completion_queue *cq_bound_to_call, grpc_completion_queue *cq_for_notification, void *tag)
{
    pthread_mutex_lock(&model.mu);
    if (model.hold_armed) {
        /* The CQ thread re-posts a request just before it queues the call that fired. */
        model.hold_armed = false;
        model.held = true;
        model_changed();
        while (!model.hold_release)
            __real_pthread_cond_wait(&model.changed, &model.mu);
    }
    pthread_mutex_unlock(&model.mu);
    return __real_grpc_server_request_registered_call(server, registered_method, call, deadline,
                                                      request_metadata, optional_payload,
                                                      cq_bound_to_call, cq_for_notification, tag);
}

/* Wait (bounded) until pred() holds; pred runs with model.mu held. */
static bool model_wait_until(bool (*pred)(void))
{
    struct timespec t;
    bool ok;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += WAIT_SEC;
    pthread_mutex_lock(&model.mu);
    while (!(ok = pred()))
        if (__real_pthread_cond_timedwait(&model.changed, &model.mu, &t) == ETIMEDOUT) {
            ok = pred();
            break;
        }
    pthread_mutex_unlock(&model.mu);
    return ok;
}

static size_t waiters_other_than_watched(void)
{
    size_t n = 0;

    for (struct waiter *w = model.fifo; w; w = w->next)
        if (!model.watching || !pthread_equal(w->thread, model.watched))
            n++;
    return n;
}

static bool watched_waiting(void)
{
    for (struct waiter *w = model.fifo; w; w = w->next)
        if (model.watching && pthread_equal(w->thread, model.watched))
            return true;
    return false;
}

/* ---- the server under test: one method whose handler a test can hold ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    int started, finished;
    bool hold_first; /* the first call waits for release_first */
    bool release_first;
} h = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int test_handler(struct csi_call *call, void *ctx, const ProtobufCMessage *req,
                        ProtobufCMessage **ret_resp)
{
    int me;

    (void)ctx;
    (void)req;
    pthread_mutex_lock(&h.mu);
    me = h.started++;
    __real_pthread_cond_broadcast(&h.cond);
    while (me == 0 && h.hold_first && !h.release_first)
        __real_pthread_cond_wait(&h.cond, &h.mu);
    h.finished++;
    __real_pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.mu);
    Csi__V1__ProbeResponse *resp = arena_alloc(csi_call_arena(call), sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__probe_response__init(resp);
    *ret_resp = &resp->base;
    return 0;
}

static const struct csi_method methods[] = {
    {"/t.T/Call", &csi__v1__probe_request__descriptor, test_handler},
};

/* Wait (bounded) until at least n handlers have started (finished with fin). */
static bool handlers_reach(int n, bool fin)
{
    struct timespec t;
    bool ok;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += WAIT_SEC;
    pthread_mutex_lock(&h.mu);
    while (!(ok = (fin ? h.finished : h.started) >= n))
        if (__real_pthread_cond_timedwait(&h.cond, &h.mu, &t) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&h.mu);
    return ok;
}

static void release_first(void)
{
    pthread_mutex_lock(&h.mu);
    h.release_first = true;
    __real_pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.mu);
}

/* ---- a minimal unary client ---- */

struct client_call {
    grpc_call *call;
    grpc_metadata_array md, trailing;
    grpc_byte_buffer *req, *resp;
    grpc_status_code status;
    grpc_slice details;
};

static void client_start(grpc_channel *ch, grpc_completion_queue *cq, struct client_call *c)
{
    grpc_slice empty = grpc_empty_slice();
    grpc_op ops[6];

    memset(c, 0, sizeof(*c));
    grpc_metadata_array_init(&c->md);
    grpc_metadata_array_init(&c->trailing);
    c->req = grpc_raw_byte_buffer_create(&empty, 1);
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                       grpc_slice_from_static_string("/t.T/Call"), NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    assert_non_null(c->call);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing;
    ops[5].data.recv_status_on_client.status = &c->status;
    ops[5].data.recv_status_on_client.status_details = &c->details;
    assert_int_equal(grpc_call_start_batch(c->call, ops, 6, c, NULL), GRPC_CALL_OK);
}

/* Wait for the completion of one client call; returns it. */
static struct client_call *client_next(grpc_completion_queue *cq)
{
    grpc_event ev = grpc_completion_queue_next(
        cq,
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(WAIT_SEC, GPR_TIMESPAN)),
        NULL);

    assert_int_equal(ev.type, GRPC_OP_COMPLETE);
    return ev.tag;
}

static void client_free(struct client_call *c)
{
    grpc_metadata_array_destroy(&c->md);
    grpc_metadata_array_destroy(&c->trailing);
    grpc_byte_buffer_destroy(c->req);
    if (c->resp)
        grpc_byte_buffer_destroy(c->resp);
    grpc_slice_unref(c->details);
    grpc_call_unref(c->call);
}

/* ---- fixture ---- */

static char sock_path[64], endpoint[80];

struct stop_args {
    struct server *srv;
    int grace_ms;
    bool done;
};

static void *stop_main(void *arg)
{
    struct stop_args *a = arg;

    server_stop(a->srv, a->grace_ms);
    pthread_mutex_lock(&h.mu);
    a->done = true;
    __real_pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.mu);
    return NULL;
}

static int setup(void **state)
{
    pthread_condattr_t ca;

    (void)state;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    __real_pthread_cond_init(&model.changed, &ca);
    __real_pthread_cond_init(&h.cond, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(sock_path, sizeof(sock_path), "/tmp/ordinal-test-server-%d.sock", (int)getpid());
    snprintf(endpoint, sizeof(endpoint), "unix://%s", sock_path);
    log_setup(LOG_WARN, LOG_TEXT);
    grpc_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    grpc_shutdown();
    return 0;
}

static void reset(void)
{
    pthread_mutex_lock(&h.mu);
    h.started = h.finished = 0;
    h.hold_first = true;
    h.release_first = false;
    pthread_mutex_unlock(&h.mu);
    pthread_mutex_lock(&model.mu);
    model.watching = false;
    model.watched_timed_waits = model.watched_untimed_waits = 0;
    model.hold_armed = model.held = model.hold_release = false;
    pthread_mutex_unlock(&model.mu);
}

static struct server *start_server(void)
{
    struct server_config cfg = {
        .endpoint = endpoint,
        .cq_threads = 1,
        .workers = 1,
        .methods = methods,
        .n_methods = 1,
        .ctx = NULL,
    };
    struct server *s = server_start(&cfg);

    assert_non_null(s);
    return s;
}

static bool is_held(void)
{
    return model.held;
}

static bool one_worker_waits(void)
{
    return watched_waiting() && waiters_other_than_watched() == 1;
}

/*
 * A call queued while server_stop waits must still be served. The order that exposed the shared
 * condition variable: server_stop starts waiting, then the only worker goes idle, then a call
 * is queued; its signal must reach the worker, not server_stop.
 */
static void test_call_queued_during_stop_is_served(void **state)
{
    grpc_channel_credentials *cc;
    grpc_completion_queue *cq;
    grpc_channel *ch;
    struct client_call a, b;
    struct stop_args st = {.grace_ms = 60000};
    pthread_t stopper;

    (void)state;
    reset();
    st.srv = start_server();
    cc = grpc_insecure_credentials_create();
    ch = grpc_channel_create(endpoint, cc, NULL);
    grpc_channel_credentials_release(cc);
    cq = grpc_completion_queue_create_for_next(NULL);

    /* Call A occupies the only worker. */
    client_start(ch, cq, &a);
    assert_true(handlers_reach(1, false));
    /* Call B arrives; its CQ thread is held just before it queues B. */
    pthread_mutex_lock(&model.mu);
    model.hold_armed = true;
    pthread_mutex_unlock(&model.mu);
    client_start(ch, cq, &b);
    assert_true(model_wait_until(is_held));

    /* server_stop starts waiting first ... */
    pthread_mutex_lock(&model.mu);
    assert_int_equal(pthread_create(&stopper, NULL, stop_main, &st), 0);
    model.watched = stopper;
    model.watching = true;
    pthread_mutex_unlock(&model.mu);
    assert_true(model_wait_until(watched_waiting));
    /* ... then the worker finishes A and goes idle ... */
    release_first();
    assert_true(model_wait_until(one_worker_waits));
    /* ... then B is queued: the worker must run it. */
    pthread_mutex_lock(&model.mu);
    model.hold_release = true;
    model_changed();
    pthread_mutex_unlock(&model.mu);
    assert_true(handlers_reach(2, true));

    for (int i = 0; i < 2; i++) {
        struct client_call *c = client_next(cq);
        assert_int_equal(c->status, GRPC_STATUS_OK);
    }
    pthread_join(stopper, NULL);
    assert_true(st.done);
    assert_int_equal(access(sock_path, F_OK), -1);

    client_free(&a);
    client_free(&b);
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

#define SPIN_WAITS 50 /* timed waits after the deadline that prove a spin */

static bool past_deadline_settled(void)
{
    /* Either server_stop went on to wait without a deadline (right; gRPC may deliver the
     * shutdown tag before the held handler returns, so it need not be waiting still) or it keeps
     * re-entering timed waits that expire at once (the spin). */
    return model.watched_untimed_waits > 0 || model.watched_timed_waits > SPIN_WAITS;
}

/* After the grace period server_stop cancels the calls and then blocks until they are done:
 * it does not spin on a deadline that has passed. */
static void test_stop_after_grace_blocks(void **state)
{
    grpc_channel_credentials *cc;
    grpc_completion_queue *cq;
    grpc_channel *ch;
    struct client_call a;
    struct stop_args st = {.grace_ms = 100};
    pthread_t stopper;
    int timed;

    (void)state;
    reset();
    st.srv = start_server();
    cc = grpc_insecure_credentials_create();
    ch = grpc_channel_create(endpoint, cc, NULL);
    grpc_channel_credentials_release(cc);
    cq = grpc_completion_queue_create_for_next(NULL);

    client_start(ch, cq, &a);
    assert_true(handlers_reach(1, false));
    pthread_mutex_lock(&model.mu);
    assert_int_equal(pthread_create(&stopper, NULL, stop_main, &st), 0);
    model.watched = stopper;
    model.watching = true;
    pthread_mutex_unlock(&model.mu);
    assert_true(model_wait_until(past_deadline_settled));
    pthread_mutex_lock(&model.mu);
    timed = model.watched_timed_waits;
    pthread_mutex_unlock(&model.mu);
    release_first();
    pthread_join(stopper, NULL);
    assert_true(st.done);
    assert_in_range(timed, 1, 2);

    struct client_call *c = client_next(cq);
    assert_int_not_equal(c->status, GRPC_STATUS_OK); /* cancelled: UNAVAILABLE here */
    client_free(&a);
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_queued_during_stop_is_served),
        cmocka_unit_test(test_stop_after_grace_blocks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
