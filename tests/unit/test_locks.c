/* Unit tests: provisioner/locks.c, the in-flight operation table. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "locks.h"

#define X(k)                                                                                       \
    {                                                                                              \
        .key = (k), .shared = false                                                                \
    }
#define S(k)                                                                                       \
    {                                                                                              \
        .key = (k), .shared = true                                                                 \
    }

static void test_take_give(void **state)
{
    struct lock_table *t = lock_table_new();
    struct lock_req a[] = {X("k:ns/a")};
    struct lock_req b[] = {X("k:ns/b"), {NULL, false}, X("n:x")};
    size_t busy = 99;

    (void)state;
    assert_non_null(t);
    assert_int_equal(lock_take(t, a, 1, NULL), 0);
    assert_int_equal(lock_count(t), 1);
    assert_int_equal(lock_take(t, a, 1, &busy), -EAGAIN);
    assert_int_equal(busy, 0);
    assert_int_equal(lock_take(t, b, 3, NULL), 0);
    assert_int_equal(lock_count(t), 3);
    lock_give(t, a, 1);
    assert_int_equal(lock_count(t), 2);
    assert_int_equal(lock_take(t, a, 1, NULL), 0);
    lock_give(t, a, 1);
    lock_give(t, b, 3);
    assert_int_equal(lock_count(t), 0);
    lock_table_free(t);
}

static void test_all_or_nothing(void **state)
{
    struct lock_table *t = lock_table_new();
    struct lock_req held[] = {X("k:b")};
    struct lock_req want[] = {X("k:a"), X("k:b"), X("k:c")};
    struct lock_req a[] = {X("k:a")};
    size_t busy = 99;

    (void)state;
    assert_int_equal(lock_take(t, held, 1, NULL), 0);
    /* k:b is busy, so neither k:a nor k:c may stay taken, and the busy one is named. */
    assert_int_equal(lock_take(t, want, 3, &busy), -EAGAIN);
    assert_int_equal(busy, 1);
    assert_int_equal(lock_count(t), 1);
    assert_int_equal(lock_take(t, a, 1, NULL), 0);
    lock_give(t, a, 1);
    lock_give(t, held, 1);
    lock_table_free(t);
}

static void test_shared_readers(void **state)
{
    struct lock_table *t = lock_table_new();
    struct lock_req clone1[] = {X("k:ns/clone-1"), S("k:ns/src")};
    struct lock_req clone2[] = {X("k:ns/clone-2"), S("k:ns/src")};
    struct lock_req del[] = {X("k:ns/src")};
    size_t busy = 99;

    (void)state;
    /* Two clones of one source at once: both readers of the source. */
    assert_int_equal(lock_take(t, clone1, 2, NULL), 0);
    assert_int_equal(lock_take(t, clone2, 2, NULL), 0);
    assert_int_equal(lock_count(t), 3);
    /* Deleting the source waits for both. */
    assert_int_equal(lock_take(t, del, 1, &busy), -EAGAIN);
    lock_give(t, clone1, 2);
    assert_int_equal(lock_take(t, del, 1, NULL), -EAGAIN);
    lock_give(t, clone2, 2);
    assert_int_equal(lock_count(t), 0);
    assert_int_equal(lock_take(t, del, 1, NULL), 0);
    /* A writer blocks readers too. */
    assert_int_equal(lock_take(t, clone1, 2, &busy), -EAGAIN);
    assert_int_equal(busy, 1);
    assert_int_equal(lock_count(t), 1); /* clone-1 was not left taken */
    lock_give(t, del, 1);
    lock_table_free(t);
}

static void test_duplicate_keys_in_one_call(void **state)
{
    struct lock_table *t = lock_table_new();
    struct lock_req dup[] = {X("k:same"), X("k:same")};
    struct lock_req mixed[] = {S("k:m"), X("k:m")};
    struct lock_req reader[] = {S("k:m")};

    (void)state;
    assert_int_equal(lock_take(t, dup, 2, NULL), 0);
    assert_int_equal(lock_count(t), 1);
    lock_give(t, dup, 2);
    assert_int_equal(lock_count(t), 0);
    /* Named shared and exclusive in one call: taken exclusively. */
    assert_int_equal(lock_take(t, mixed, 2, NULL), 0);
    assert_int_equal(lock_take(t, reader, 1, NULL), -EAGAIN);
    lock_give(t, mixed, 2);
    assert_int_equal(lock_count(t), 0);
    lock_table_free(t);
}

static void test_many_keys_grow(void **state)
{
    struct lock_table *t = lock_table_new();
    char names[100][16];
    struct lock_req k[1];

    (void)state;
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof(names[i]), "k:%d", i);
        k[0] = (struct lock_req)X(names[i]);
        assert_int_equal(lock_take(t, k, 1, NULL), 0);
    }
    assert_int_equal(lock_count(t), 100);
    k[0] = (struct lock_req)X(names[57]);
    assert_int_equal(lock_take(t, k, 1, NULL), -EAGAIN);
    lock_table_free(t); /* frees held keys too (checked by ASan) */
}

struct race {
    struct lock_table *t;
    int wins, inside;
    int overlap;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    struct lock_req k[] = {X("k:contended")};

    for (int i = 0; i < 2000; i++)
        if (lock_take(r->t, k, 1, NULL) == 0) {
            if (__atomic_add_fetch(&r->inside, 1, __ATOMIC_SEQ_CST) > 1)
                __atomic_store_n(&r->overlap, 1, __ATOMIC_SEQ_CST);
            __atomic_add_fetch(&r->wins, 1, __ATOMIC_SEQ_CST);
            __atomic_sub_fetch(&r->inside, 1, __ATOMIC_SEQ_CST);
            lock_give(r->t, k, 1);
        }
    return NULL;
}

static void test_threads_never_share_a_key(void **state)
{
    struct race r = {.t = lock_table_new()};
    pthread_t th[4];

    (void)state;
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, racer, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(r.wins > 0);
    assert_int_equal(r.overlap, 0);
    assert_int_equal(lock_count(r.t), 0);
    lock_table_free(r.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_give),      cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_shared_readers), cmocka_unit_test(test_duplicate_keys_in_one_call),
        cmocka_unit_test(test_many_keys_grow), cmocka_unit_test(test_threads_never_share_a_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
