/* Unit tests: provisioner/csi/arena.c. Leaks and overruns are caught by the ASan run. */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "arena.h"

static void test_alloc_zeroed_aligned(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    for (int i = 1; i < 200; i++) {
        unsigned char *p = arena_alloc(&a, (size_t)i);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        for (int k = 0; k < i; k++)
            assert_int_equal(p[k], 0);
        memset(p, 0xab, (size_t)i);
    }
    arena_release(&a);
    assert_null(a.head);
}

static void test_large_blocks(void **state)
{
    struct arena a;
    char *small1, *big, *small2;

    (void)state;
    arena_init(&a);
    small1 = arena_alloc(&a, 10);
    big = arena_alloc(&a, 100000);
    small2 = arena_alloc(&a, 10);
    assert_non_null(small1);
    assert_non_null(big);
    assert_non_null(small2);
    memset(big, 1, 100000);
    /* The small allocations share the first block: the large one did not displace it. */
    assert_true(small2 > small1 && small2 - small1 < 4096);
    arena_release(&a);
}

static void test_strings(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    assert_string_equal(arena_strdup(&a, "www-web-0"), "www-web-0");
    assert_string_equal(arena_strdup(&a, ""), "");
    assert_string_equal(arena_printf(&a, "%s/%s-%d", "ns", "www-web", 2), "ns/www-web-2");
    char *long_s = arena_printf(&a, "%05000d", 7);
    assert_int_equal(strlen(long_s), 5000);
    assert_null(arena_alloc(&a, SIZE_MAX));
    arena_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_zeroed_aligned),
        cmocka_unit_test(test_large_blocks),
        cmocka_unit_test(test_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
