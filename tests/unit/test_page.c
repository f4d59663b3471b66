/* Unit tests: backends/common/page.c, the page window of the backends' list operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "page.h"

struct rec {
    int pad;
    char id[8];
};

static const char *rec_id(const void *r)
{
    return ((const struct rec *)r)->id;
}

/* n records "a00", "a01", ... sorted by id */
static void fill(struct rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        r[i].pad = (int)i;
        snprintf(r[i].id, sizeof(r[i].id), "a%02u", (unsigned)(i % 100));
    }
}

static void test_whole_list_without_token_or_cap(void **state)
{
    struct rec r[5];
    bool more = true;

    (void)state;
    fill(r, 5);
    assert_int_equal(be_page_window(r, 5, sizeof(r[0]), rec_id, NULL, 0, &more), 5);
    assert_false(more);
    assert_string_equal(r[0].id, "a00");
    assert_int_equal(be_page_window(r, 5, sizeof(r[0]), rec_id, "", 0, &more), 5);
    assert_false(more);
}

static void test_pages_walk_the_list_once(void **state)
{
    struct rec all[7], r[7];
    char after[8] = "";
    size_t seen = 0;
    bool more;

    (void)state;
    fill(all, 7);
    do {
        size_t k;

        memcpy(r, all, sizeof(r));
        k = be_page_window(r, 7, sizeof(r[0]), rec_id, after, 3, &more);
        assert_true(k <= 3);
        for (size_t i = 0; i < k; i++) {
            assert_string_equal(r[i].id, all[seen + i].id);
            assert_int_equal(r[i].pad, (int)(seen + i));
        }
        seen += k;
        if (k)
            snprintf(after, sizeof(after), "%s", r[k - 1].id);
    } while (more);
    assert_int_equal(seen, 7);
}

static void test_token_between_and_past_the_ids(void **state)
{
    struct rec r[4];
    bool more = true;

    (void)state;
    fill(r, 4);
    /* a token that names no record starts after where it would sort */
    assert_int_equal(be_page_window(r, 4, sizeof(r[0]), rec_id, "a01x", 0, &more), 2);
    assert_string_equal(r[0].id, "a02");
    assert_false(more);
    fill(r, 4);
    assert_int_equal(be_page_window(r, 4, sizeof(r[0]), rec_id, "zzz", 2, &more), 0);
    assert_false(more);
    assert_int_equal(be_page_window(r, 0, sizeof(r[0]), rec_id, NULL, 2, &more), 0);
    assert_false(more);
}

static void test_cap_reports_more(void **state)
{
    struct rec r[4];
    bool more = false;

    (void)state;
    fill(r, 4);
    assert_int_equal(be_page_window(r, 4, sizeof(r[0]), rec_id, "a00", 2, &more), 2);
    assert_string_equal(r[0].id, "a01");
    assert_string_equal(r[1].id, "a02");
    assert_true(more);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_list_without_token_or_cap),
        cmocka_unit_test(test_pages_walk_the_list_once),
        cmocka_unit_test(test_token_between_and_past_the_ids),
        cmocka_unit_test(test_cap_reports_more),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
