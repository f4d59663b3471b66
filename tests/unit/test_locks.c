/* Unit tests: provisioner/locks.c, the in-flight operation table. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "locks.h"

static void test_take_give(void **state)
{
    struct lock_table *t = lock_table_new();
    const char *a[] = {"k:ns/a"};
    const char *b[] = {"k:ns/b", NULL, "n:x"};

    (void)state;
    assert_non_null(t);
    assert_int_equal(lock_take(t, a, 1), 0);
    assert_int_equal(lock_count(t), 1);
    assert_int_equal(lock_take(t, a, 1), -EAGAIN);
    assert_int_equal(lock_take(t, b, 3), 0);
    assert_int_equal(lock_count(t), 3);
    lock_give(t, a, 1);
    assert_int_equal(lock_count(t), 2);
    assert_int_equal(lock_take(t, a, 1), 0);
    lock_give(t, a, 1);
    lock_give(t, b, 3);
    assert_int_equal(lock_count(t), 0);
    lock_table_free(t);
}

static void test_all_or_nothing(void **state)
{
    struct lock_table *t = lock_table_new();
    const char *held[] = {"k:b"};
    const char *want[] = {"k:a", "k:b", "k:c"};
    const char *a[] = {"k:a"};

    (void)state;
    assert_int_equal(lock_take(t, held, 1), 0);
    /* k:b is busy, so neither k:a nor k:c may stay taken. */
    assert_int_equal(lock_take(t, want, 3), -EAGAIN);
    assert_int_equal(lock_count(t), 1);
    assert_int_equal(lock_take(t, a, 1), 0);
    lock_give(t, a, 1);
    lock_give(t, held, 1);
    lock_table_free(t);
}

static void test_duplicate_keys_in_one_call(void **state)
{
    struct lock_table *t = lock_table_new();
    const char *dup[] = {"k:same", "k:same"};

    (void)state;
    assert_int_equal(lock_take(t, dup, 2), 0);
    assert_int_equal(lock_count(t), 1);
    lock_give(t, dup, 2);
    assert_int_equal(lock_count(t), 0);
    lock_table_free(t);
}

static void test_many_keys_grow(void **state)
{
    struct lock_table *t = lock_table_new();
    char names[100][16];
    const char *k[1];

    (void)state;
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof(names[i]), "k:%d", i);
        k[0] = names[i];
        assert_int_equal(lock_take(t, k, 1), 0);
    }
    assert_int_equal(lock_count(t), 100);
    k[0] = names[57];
    assert_int_equal(lock_take(t, k, 1), -EAGAIN);
    lock_table_free(t); /* frees held keys too (checked by ASan) */
}

struct race {
    struct lock_table *t;
    int wins;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    const char *k[] = {"k:contended"};

    for (int i = 0; i < 2000; i++)
        if (lock_take(r->t, k, 1) == 0) {
            __atomic_add_fetch(&r->wins, 1, __ATOMIC_SEQ_CST);
            lock_give(r->t, k, 1);
        }
    return NULL;
}

static void test_threads_never_share_a_key(void **state)
{
    struct race r = {.t = lock_table_new(), .wins = 0};
    pthread_t th[4];

    (void)state;
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, racer, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(r.wins > 0);
    assert_int_equal(lock_count(r.t), 0);
    lock_table_free(r.t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_give),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_duplicate_keys_in_one_call),
        cmocka_unit_test(test_many_keys_grow),
        cmocka_unit_test(test_threads_never_share_a_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
