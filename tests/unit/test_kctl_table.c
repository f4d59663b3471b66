/* Unit tests: kubectl/table.c (kubectl-style tables; cluster text escaped) and the byte
 * quantities of kubectl/cluster.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cluster.h"
#include "table.h"

static char *print(const struct kctl_table *t)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);

    assert_non_null(f);
    kctl_table_print(t, f);
    fclose(f);
    return buf;
}

static void test_alignment(void **state)
{
    struct kctl_table t;
    static const char *const h[] = {"NAME", "STATE", NULL};
    static const char *const r1[] = {"ov-long-name", "Bound"};
    static const char *const r2[] = {"ov", NULL};
    char *out;

    (void)state;
    assert_int_equal(kctl_table_init(&t, h), 0);
    assert_int_equal(kctl_table_add(&t, r1), 0);
    assert_int_equal(kctl_table_add(&t, r2), 0);
    out = print(&t);
    assert_string_equal(out, "NAME           STATE\n"
                             "ov-long-name   Bound\n"
                             "ov             -\n");
    free(out);
    kctl_table_release(&t);
}

static void test_hostile_cells(void **state)
{
    struct kctl_table t;
    static const char *const h[] = {"EVENT", NULL};
    char big[2000];
    const char *r1[] = {"\x1b[2Jcleared\r\nnext\ttab"};
    const char *r2[] = {big};
    char *out;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(kctl_table_init(&t, h), 0);
    assert_int_equal(kctl_table_add(&t, r1), 0);
    assert_int_equal(kctl_table_add(&t, r2), 0);
    out = print(&t);
    /* no escape byte, no carriage return, one line per row */
    assert_null(strchr(out, '\x1b'));
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\t'));
    assert_non_null(strstr(out, "cleared"));
    assert_int_equal(out[strlen(out) - 1], '\n');
    {
        int lines = 0;
        for (const char *p = out; *p; p++)
            lines += *p == '\n';
        assert_int_equal(lines, 3);
    }
    assert_non_null(strstr(out, "xxx..."));
    assert_true(strlen(out) < 700);
    free(out);
    kctl_table_release(&t);
}

static void test_too_many_columns(void **state)
{
    struct kctl_table t;
    const char *h[KCTL_TABLE_MAX_COLS + 2];
    static const char *const none[] = {NULL};

    (void)state;
    for (size_t i = 0; i < KCTL_TABLE_MAX_COLS + 1; i++)
        h[i] = "C";
    h[KCTL_TABLE_MAX_COLS + 1] = NULL;
    assert_int_equal(kctl_table_init(&t, h), -E2BIG);
    assert_int_equal(kctl_table_init(&t, none), -E2BIG);
}

static void test_bytes(void **state)
{
    char b[32];

    (void)state;
    kctl_bytes(0, b, sizeof(b));
    assert_string_equal(b, "0");
    kctl_bytes(4096, b, sizeof(b));
    assert_string_equal(b, "4Ki");
    kctl_bytes(300.0 * 1024 * 1024, b, sizeof(b));
    assert_string_equal(b, "300Mi");
    kctl_bytes(1536.0 * 1024 * 1024, b, sizeof(b));
    assert_string_equal(b, "1.5Gi");
    kctl_bytes(-1, b, sizeof(b));
    assert_string_equal(b, "-");
    kctl_bytes(1e30, b, sizeof(b));
    assert_true(strlen(b) > 0 && strlen(b) < sizeof(b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_hostile_cells),
        cmocka_unit_test(test_too_many_columns),
        cmocka_unit_test(test_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
