/* Unit tests: kube/kube_queue.c, the work queue. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "kube_queue.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void get_expect(struct kube_queue *q, const char *want)
{
    char *key = NULL;

    assert_int_equal(kube_queue_get(q, 1.0, &key), 0);
    assert_string_equal(key, want);
    free(key);
}

static void test_dedup_fifo(void **state)
{
    struct kube_queue *q = kube_queue_new(0, 0);
    char *key = NULL;

    (void)state;
    assert_int_equal(kube_queue_add(q, "ns/a"), 0);
    assert_int_equal(kube_queue_add(q, "ns/b"), 0);
    assert_int_equal(kube_queue_add(q, "ns/a"), 0);
    assert_int_equal(kube_queue_len(q), 2);
    get_expect(q, "ns/a");
    kube_queue_done(q, "ns/a");
    get_expect(q, "ns/b");
    kube_queue_done(q, "ns/b");
    assert_int_equal(kube_queue_get(q, 0.05, &key), -ETIMEDOUT);
    kube_queue_free(q);
}

static void test_readded_while_processing(void **state)
{
    struct kube_queue *q = kube_queue_new(0, 0);
    char *key = NULL;

    (void)state;
    kube_queue_add(q, "k");
    get_expect(q, "k");
    /* added twice while a worker has it: not handed out again until done, and only once */
    kube_queue_add(q, "k");
    kube_queue_add(q, "k");
    assert_int_equal(kube_queue_len(q), 0);
    assert_int_equal(kube_queue_get(q, 0.05, &key), -ETIMEDOUT);
    kube_queue_done(q, "k");
    assert_int_equal(kube_queue_len(q), 1);
    get_expect(q, "k");
    kube_queue_done(q, "k");
    assert_int_equal(kube_queue_get(q, 0.05, &key), -ETIMEDOUT);
    kube_queue_free(q);
}

static void test_backoff_math(void **state)
{
    (void)state;
    assert_float_equal(kube_backoff_delay(0, 1, 300), 1, 0);
    assert_float_equal(kube_backoff_delay(1, 1, 300), 2, 0);
    assert_float_equal(kube_backoff_delay(5, 1, 300), 32, 0);
    assert_float_equal(kube_backoff_delay(8, 1, 300), 256, 0);
    assert_float_equal(kube_backoff_delay(9, 1, 300), 300, 0);
    assert_float_equal(kube_backoff_delay(100000, 1, 300), 300, 0);
    assert_float_equal(kube_backoff_delay(-3, 1, 300), 1, 0);
}

static void test_rate_limited_requeue(void **state)
{
    struct kube_queue *q = kube_queue_new(0.02, 0.08);
    char *key = NULL;
    double t0, dt;

    (void)state;
    for (int i = 0; i < 5; i++) {
        double want = i == 0 ? 0.02 : i == 1 ? 0.04 : 0.08; /* doubling, capped */

        t0 = now_s();
        assert_int_equal(kube_queue_add_rate_limited(q, "k"), 0);
        assert_int_equal(kube_queue_num_requeues(q, "k"), i + 1);
        assert_int_equal(kube_queue_len(q), 0); /* not yet */
        get_expect(q, "k");
        dt = now_s() - t0;
        if (dt < want - 0.005 || dt > want + 0.5)
            fail_msg("requeue %d after %.3fs, want %.3fs", i, dt, want);
        kube_queue_done(q, "k");
    }
    kube_queue_forget(q, "k");
    assert_int_equal(kube_queue_num_requeues(q, "k"), 0);

    /* an immediate add overrides a pending delay; a delayed add of a waiting key is a no-op */
    kube_queue_add_after(q, "d", 10);
    kube_queue_add(q, "d");
    get_expect(q, "d");
    kube_queue_done(q, "d");
    kube_queue_add(q, "e");
    kube_queue_add_after(q, "e", 10);
    get_expect(q, "e");
    kube_queue_done(q, "e");
    assert_int_equal(kube_queue_get(q, 0.05, &key), -ETIMEDOUT);
    /* the earlier of two delays wins */
    t0 = now_s();
    kube_queue_add_after(q, "f", 5);
    kube_queue_add_after(q, "f", 0.02);
    get_expect(q, "f");
    assert_true(now_s() - t0 < 1);
    kube_queue_done(q, "f");
    kube_queue_free(q);
}

static void *shutdown_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000 * 1000};

    nanosleep(&ts, NULL);
    kube_queue_shutdown(arg);
    return NULL;
}

static void test_shutdown_wakes(void **state)
{
    struct kube_queue *q = kube_queue_new(0, 0);
    pthread_t t;
    char *key = NULL;

    (void)state;
    pthread_create(&t, NULL, shutdown_later, q);
    assert_int_equal(kube_queue_get(q, -1, &key), -ESHUTDOWN);
    pthread_join(t, NULL);
    assert_int_equal(kube_queue_add(q, "x"), -ESHUTDOWN);
    kube_queue_free(q);
}

struct work {
    pthread_mutex_t mu;
    int calls[8];
    int concurrent, max_concurrent;
};

static int worker(void *ud, const char *key)
{
    struct work *w = ud;
    int i = key[0] - 'a', n;
    struct timespec ts = {0, 2 * 1000 * 1000};

    pthread_mutex_lock(&w->mu);
    n = ++w->calls[i];
    w->concurrent++;
    if (w->concurrent > w->max_concurrent)
        w->max_concurrent = w->concurrent;
    pthread_mutex_unlock(&w->mu);
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&w->mu);
    w->concurrent--;
    pthread_mutex_unlock(&w->mu);
    /* key "a" fails twice, then succeeds */
    return i == 0 && n <= 2 ? -EIO : 0;
}

static void test_workers(void **state)
{
    struct kube_queue *q = kube_queue_new(0.01, 0.05);
    struct work w = {.mu = PTHREAD_MUTEX_INITIALIZER};
    const char *keys[] = {"a", "b", "c", "d"};
    double deadline;

    (void)state;
    assert_int_equal(kube_queue_run(q, 3, worker, &w), 0);
    for (int i = 0; i < 4; i++)
        kube_queue_add(q, keys[i]);
    deadline = now_s() + 5;
    for (;;) {
        int a;

        pthread_mutex_lock(&w.mu);
        a = w.calls[0];
        pthread_mutex_unlock(&w.mu);
        if (a >= 3 || now_s() > deadline)
            break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kube_queue_stop(q);
    assert_int_equal(w.calls[0], 3);
    assert_int_equal(w.calls[1], 1);
    assert_int_equal(w.calls[3], 1);
    assert_int_equal(kube_queue_num_requeues(q, "a"), 0); /* forgotten after the success */
    assert_true(w.max_concurrent <= 3);
    kube_queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_fifo),     cmocka_unit_test(test_readded_while_processing),
        cmocka_unit_test(test_backoff_math),   cmocka_unit_test(test_rate_limited_requeue),
        cmocka_unit_test(test_shutdown_wakes), cmocka_unit_test(test_workers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
