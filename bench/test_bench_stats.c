/*
 * Unit tests of the latency statistics (bench_stats.c): nearest-rank percentiles, merging,
 * summaries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "bench_stats.h"

static void test_percentile_small(void **state)
{
    const uint64_t one[] = {7};
    const uint64_t ten[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

    (void)state;
    assert_int_equal(lat_percentile(NULL, 0, 50), 0);
    assert_int_equal(lat_percentile(one, 1, 1), 7);
    assert_int_equal(lat_percentile(one, 1, 50), 7);
    assert_int_equal(lat_percentile(one, 1, 100), 7);
    /* nearest rank: ceil(p/100 * n) */
    assert_int_equal(lat_percentile(ten, 10, 50), 5);
    assert_int_equal(lat_percentile(ten, 10, 90), 9);
    assert_int_equal(lat_percentile(ten, 10, 91), 10);
    assert_int_equal(lat_percentile(ten, 10, 99), 10);
    assert_int_equal(lat_percentile(ten, 10, 100), 10);
    assert_int_equal(lat_percentile(ten, 10, 10), 1);
    assert_int_equal(lat_percentile(ten, 10, 0.001), 1);
    assert_int_equal(lat_percentile(ten, 10, 0), 0);
}

static void test_percentile_hundred(void **state)
{
    uint64_t v[100];

    (void)state;
    for (int i = 0; i < 100; i++)
        v[i] = (uint64_t)i + 1;
    /* exactly p% of 100 values: no floating point slip to the next rank */
    assert_int_equal(lat_percentile(v, 100, 50), 50);
    assert_int_equal(lat_percentile(v, 100, 90), 90);
    assert_int_equal(lat_percentile(v, 100, 99), 99);
    assert_int_equal(lat_percentile(v, 100, 99.9), 100);
}

static void test_summary(void **state)
{
    struct lat_samples s;
    struct lat_summary sum;

    (void)state;
    lat_init(&s);
    lat_summarize(&s, &sum);
    assert_int_equal(sum.count, 0);
    assert_int_equal(sum.p99, 0);
    /* 1000 samples in reverse order: 1000, 999, ..., 1 */
    for (uint64_t i = 1000; i >= 1; i--)
        assert_int_equal(lat_add(&s, i), 0);
    lat_summarize(&s, &sum);
    assert_int_equal(sum.count, 1000);
    assert_int_equal(sum.min, 1);
    assert_int_equal(sum.p50, 500);
    assert_int_equal(sum.p90, 900);
    assert_int_equal(sum.p99, 990);
    assert_int_equal(sum.max, 1000);
    assert_true(sum.mean > 500.49 && sum.mean < 500.51);
    assert_true(sum.min <= sum.p50 && sum.p50 <= sum.p90 && sum.p90 <= sum.p99 &&
                sum.p99 <= sum.max);
    lat_release(&s);
    assert_null(s.v);
}

static void test_merge(void **state)
{
    struct lat_samples a, b, all;
    struct lat_summary sum;

    (void)state;
    lat_init(&a);
    lat_init(&b);
    lat_init(&all);
    for (uint64_t i = 0; i < 3000; i++)
        assert_int_equal(lat_add(i % 2 ? &a : &b, i), 0);
    b.dropped = 5;
    assert_int_equal(lat_merge(&all, &a), 0);
    assert_int_equal(lat_merge(&all, &b), 0);
    assert_int_equal(all.n, 3000);
    assert_int_equal(all.dropped, 5);
    lat_summarize(&all, &sum);
    assert_int_equal(sum.min, 0);
    assert_int_equal(sum.max, 2999);
    assert_int_equal(sum.p50, 1499);
    /* merging an empty set changes nothing */
    lat_release(&b);
    assert_int_equal(lat_merge(&all, &b), 0);
    assert_int_equal(all.n, 3000);
    lat_release(&a);
    lat_release(&all);
}

static void test_random_against_sort(void **state)
{
    struct lat_samples s;
    struct lat_summary sum;

    (void)state;
    srand(42);
    lat_init(&s);
    for (int i = 0; i < 12345; i++)
        assert_int_equal(lat_add(&s, (uint64_t)rand() % 100000), 0);
    lat_summarize(&s, &sum);
    for (size_t i = 1; i < s.n; i++)
        assert_true(s.v[i - 1] <= s.v[i]);
    /* rank ceil(0.99 * 12345) = 12222 (1-based) */
    assert_int_equal(sum.p99, s.v[12221]);
    assert_int_equal(sum.p50, s.v[6172]);
    lat_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile_small),
        cmocka_unit_test(test_percentile_hundred),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_random_against_sort),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
