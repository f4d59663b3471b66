/* Unit tests: provisioner/log.c (levels, text and JSON lines, escaping). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

static int fds[2];

static int setup(void **state)
{
    (void)state;
    if (pipe(fds) < 0)
        return -1;
    log_set_fd(fds[1]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_set_fd(2);
    close(fds[0]);
    close(fds[1]);
    log_setup(LOG_INFO, LOG_TEXT);
    return 0;
}

static size_t drain(char *buf, size_t n)
{
    ssize_t r;

    log_set_fd(-1);
    close(fds[1]);
    r = read(fds[0], buf, n - 1);
    buf[r > 0 ? r : 0] = '\0';
    fds[1] = -1;
    return r > 0 ? (size_t)r : 0;
}

static void test_parse(void **state)
{
    enum log_level l;
    enum log_format f;

    (void)state;
    assert_int_equal(log_parse_level("debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_parse_level("error", &l), 0);
    assert_int_equal(l, LOG_ERROR);
    assert_int_equal(log_parse_level("verbose", &l), -EINVAL);
    assert_int_equal(log_parse_level("", &l), -EINVAL);
    assert_int_equal(log_parse_format("json", &f), 0);
    assert_int_equal(f, LOG_JSON);
    assert_int_equal(log_parse_format("xml", &f), -EINVAL);
}

static int evaluated;
static const char *count_eval(void)
{
    evaluated++;
    return "x";
}

static void test_level_filters_and_skips_arguments(void **state)
{
    char buf[4096];

    (void)state;
    log_setup(LOG_WARN, LOG_TEXT);
    evaluated = 0;
    log_info("hidden %s", count_eval());
    log_warn("shown %d", 42);
    drain(buf, sizeof(buf));
    assert_int_equal(evaluated, 0);
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "warn  shown 42\n"));
}

static void test_json_line(void **state)
{
    char buf[4096];

    (void)state;
    log_setup(LOG_DEBUG, LOG_JSON);
    log_error("quote \" backslash \\ newline \n tab \t end");
    drain(buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"level\":\"error\""));
    assert_non_null(
        strstr(buf, "\"msg\":\"quote \\\" backslash \\\\ newline \\n tab \\u0009 end\"}\n"));
    assert_int_equal(buf[0], '{');
}

static void test_escape_truncates(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(log_json_escape(out, sizeof(out), "abcdefghij"), 7);
    assert_string_equal(out, "abcdefg");
    /* An escape sequence is never cut in half. */
    assert_int_equal(log_json_escape(out, sizeof(out), "abcdef\""), 6);
    assert_string_equal(out, "abcdef");
}

/* A request field cannot forge a line or reach a terminal as a control sequence, in either
 * format: C0 and C1 controls, DEL, U+2028/U+2029 and bytes that are not UTF-8 are escaped. */
static const char hostile[] = "name\n2026-01-01T00:00:00.000Z error forged\r\x1b[31mred\x7f"
                              "\xc2\x9b"
                              "2J\xe2\x80\xa8sep\xff\ttab \xc3\xa9t\xc3\xa9";

static void assert_no_controls(const char *buf, size_t n)
{
    /* only the final newline */
    for (size_t i = 0; i + 1 < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        assert_false(c < 0x20 || c == 0x7f || c == 0xff);
        if (c == 0xc2)
            assert_false((unsigned char)buf[i + 1] >= 0x80 && (unsigned char)buf[i + 1] <= 0x9f);
        if (c == 0xe2)
            assert_false((unsigned char)buf[i + 1] == 0x80 &&
                         ((unsigned char)buf[i + 2] == 0xa8 || (unsigned char)buf[i + 2] == 0xa9));
    }
    assert_int_equal(buf[n - 1], '\n');
}

static void test_text_line_escapes_controls(void **state)
{
    char buf[4096];
    size_t n;

    (void)state;
    log_setup(LOG_DEBUG, LOG_TEXT);
    log_info("volume %s", hostile);
    n = drain(buf, sizeof(buf));
    assert_no_controls(buf, n);
    assert_non_null(strstr(buf, "volume name\\n2026-01-01T00:00:00.000Z error forged\\r\\x1b[31m"
                                "red\\x7f\\u009b2J\\u2028sep\\xff\\ttab \xc3\xa9t\xc3\xa9\n"));
}

static void test_json_line_escapes_controls(void **state)
{
    char buf[4096];
    size_t n;

    (void)state;
    log_setup(LOG_DEBUG, LOG_JSON);
    log_info("volume %s", hostile);
    n = drain(buf, sizeof(buf));
    assert_no_controls(buf, n);
    assert_non_null(strstr(buf, "\"msg\":\"volume name\\n2026-01-01T00:00:00.000Z error forged"
                                "\\u000d\\u001b[31mred\\u007f\\u009b2J\\u2028sep\\ufffd\\u0009tab "
                                "\xc3\xa9t\xc3\xa9\"}\n"));
}

static void test_long_message_is_one_line(void **state)
{
    char big[5000], buf[8192];

    (void)state;
    log_setup(LOG_DEBUG, LOG_TEXT);
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_info("%s", big);
    size_t n = drain(buf, sizeof(buf));
    assert_true(n > 1000 && n <= 2047);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', n - 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test_setup_teardown(test_level_filters_and_skips_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_line, setup, teardown),
        cmocka_unit_test(test_escape_truncates),
        cmocka_unit_test_setup_teardown(test_text_line_escapes_controls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_line_escapes_controls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message_is_one_line, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
