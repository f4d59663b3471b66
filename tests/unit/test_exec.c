/* Unit tests of base/exec.c: argv, environment, pipes, caps, timeouts, signals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "exec.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char sh[256];

static int setup(void **state)
{
    (void)state;
    return exec_find("sh", sh, sizeof(sh));
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_sh(const char *script, const struct exec_opts *o, struct exec_result *r)
{
    const char *argv[] = {sh, "-c", script, NULL};

    return exec_run(argv, o, r);
}

static void test_output_and_exit(void **state)
{
    struct exec_result r;

    (void)state;
    assert_int_equal(run_sh("echo out; echo err >&2; exit 3", NULL, &r), 0);
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.term_signal, 0);
    assert_false(r.timed_out);
    assert_string_equal(r.out, "out\n");
    assert_int_equal(r.out_len, 4);
    assert_string_equal(r.err, "err\n");
    exec_result_release(&r);

    /* arguments are passed as they are: no shell sees them */
    char echo[256];
    assert_int_equal(exec_find("echo", echo, sizeof(echo)), 0);
    const char *argv[] = {echo, "$HOME; rm -rf /", "'\"`x`", NULL};
    assert_int_equal(exec_run(argv, NULL, &r), 0);
    assert_string_equal(r.out, "$HOME; rm -rf / '\"`x`\n");
    assert_string_equal(r.err, "");
    exec_result_release(&r);
}

static void test_environment(void **state)
{
    struct exec_opts o = {.inherit_lvm = true};
    struct exec_result r;

    (void)state;
    setenv("LVM_SYSTEM_DIR", "/tmp/lvm-conf-dir", 1);
    setenv("ORDINAL_SECRET", "s3cret", 1);
    setenv("LANG", "de_DE.UTF-8", 1);
    assert_int_equal(run_sh("env", &o, &r), 0);
    assert_non_null(strstr(r.out, "LC_ALL=C\n"));
    assert_non_null(strstr(r.out, "LVM_SYSTEM_DIR=/tmp/lvm-conf-dir\n"));
    assert_non_null(strstr(r.out, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"));
    assert_null(strstr(r.out, "ORDINAL_SECRET"));
    assert_null(strstr(r.out, "LANG="));
    exec_result_release(&r);
    o.inherit_lvm = false;
    assert_int_equal(run_sh("env", &o, &r), 0);
    assert_null(strstr(r.out, "LVM_SYSTEM_DIR"));
    exec_result_release(&r);
    unsetenv("LVM_SYSTEM_DIR");
    unsetenv("ORDINAL_SECRET");
    unsetenv("LANG");
}

static void test_caps(void **state)
{
    struct exec_opts o = {.out_max = 1000, .err_max = 10};
    struct exec_result r;

    (void)state;
    /* both pipes filled far beyond a pipe buffer: no deadlock, capped, fully drained */
    assert_int_equal(run_sh("head -c 300000 /dev/zero | tr '\\0' a; "
                            "head -c 300000 /dev/zero | tr '\\0' b >&2; exit 0",
                            &o, &r),
                     0);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.out_len, 1000);
    assert_true(r.out_truncated);
    assert_int_equal(strlen(r.out), 1000);
    assert_int_equal(r.out[999], 'a');
    assert_int_equal(r.err_len, 10);
    assert_true(r.err_truncated);
    exec_result_release(&r);
}

static void test_timeout(void **state)
{
    struct exec_opts o = {.timeout_ms = 300};
    struct exec_result r;
    double t0 = now();

    (void)state;
    /* a grandchild keeps the pipes open: the whole process group must die */
    assert_int_equal(run_sh("sleep 30 & sleep 30; echo never", &o, &r), -ETIMEDOUT);
    assert_true(now() - t0 < 5.0);
    assert_true(r.timed_out);
    assert_int_equal(r.term_signal, SIGKILL);
    assert_null(strstr(r.out, "never"));
    exec_result_release(&r);
}

/* A child that closes its pipes and then lingers: EOF on both pipes must not end the
 * deadline; the wait for the child is bounded by the same timeout. */
static void test_timeout_after_pipes_closed(void **state)
{
    struct exec_opts o = {.timeout_ms = 300};
    struct exec_result r;
    double t0 = now();

    (void)state;
    assert_int_equal(run_sh("echo early; exec >&- 2>&-; sleep 20", &o, &r), -ETIMEDOUT);
    assert_true(now() - t0 < 5.0);
    assert_true(r.timed_out);
    assert_int_equal(r.term_signal, SIGKILL);
    assert_string_equal(r.out, "early\n");
    exec_result_release(&r);

    /* a child that closes its pipes and exits soon after is still waited for normally */
    o.timeout_ms = 10000;
    assert_int_equal(run_sh("exec >&- 2>&-; sleep 0.2; exit 4", &o, &r), 0);
    assert_false(r.timed_out);
    assert_int_equal(r.exit_code, 4);
    exec_result_release(&r);
}

static void test_signals_and_fds(void **state)
{
    struct exec_result r;
    sigset_t set, old;
    int fd;
    char want[64];

    (void)state;
    /* the daemon blocks SIGTERM in every thread; the child must not inherit that */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, &old);
    assert_int_equal(run_sh("kill -TERM $$; sleep 5", NULL, &r), 0);
    assert_int_equal(r.term_signal, SIGTERM);
    assert_int_equal(r.exit_code, -1);
    exec_result_release(&r);
    sigprocmask(SIG_SETMASK, &old, NULL);

    /* a descriptor the caller leaked without O_CLOEXEC is not seen by the child */
    fd = open("/dev/null", O_RDONLY);
    assert_true(fd > 2);
    snprintf(want, sizeof(want), "test -e /proc/self/fd/%d && echo leaked; true", fd);
    assert_int_equal(run_sh(want, NULL, &r), 0);
    assert_string_equal(r.out, "");
    exec_result_release(&r);
    close(fd);

    /* stdin is /dev/null: a prompt reads EOF */
    assert_int_equal(run_sh("read x; echo \"[$x] $?\"", NULL, &r), 0);
    assert_string_equal(r.out, "[] 1\n");
    exec_result_release(&r);
}

static void test_bad_argv(void **state)
{
    struct exec_result r;
    const char *rel[] = {"sh", "-c", "true", NULL};
    const char *missing[] = {"/nonexistent/tool", NULL};
    const char *empty[] = {NULL};
    const char *many[EXEC_ARGS_MAX + 2];

    (void)state;
    assert_int_equal(exec_run(rel, NULL, &r), -EINVAL);
    assert_int_equal(exec_run(empty, NULL, &r), -EINVAL);
    assert_int_equal(exec_run(NULL, NULL, &r), -EINVAL);
    assert_int_equal(exec_run(missing, NULL, &r), -ENOENT);
    many[0] = sh;
    for (size_t i = 1; i < EXEC_ARGS_MAX + 1; i++)
        many[i] = "x";
    many[EXEC_ARGS_MAX + 1] = NULL;
    assert_int_equal(exec_run(many, NULL, &r), -E2BIG);
}

static void test_find_and_reason(void **state)
{
    char p[256], why[64];

    (void)state;
    assert_int_equal(exec_find("sh", p, sizeof(p)), 0);
    assert_true(p[0] == '/');
    assert_int_equal(exec_find("no-such-tool-ordinal", p, sizeof(p)), -ENOENT);
    assert_int_equal(exec_find("../sh", p, sizeof(p)), -EINVAL);
    assert_int_equal(exec_find("sh", p, 3), -ENAMETOOLONG);

    exec_reason("  WARNING: Activation disabled.\n  Volume group \"vg\" not found\n", why,
                sizeof(why));
    assert_string_equal(why, "Volume group \"vg\" not found");
    exec_reason("  WARNING: only warnings\n", why, sizeof(why));
    assert_string_equal(why, "WARNING: only warnings");
    exec_reason("\n\n", why, sizeof(why));
    assert_string_equal(why, "");
    exec_reason(NULL, why, sizeof(why));
    assert_string_equal(why, "");
    exec_reason("bad\x01\x1b[31mcolour\r\n", why, sizeof(why));
    assert_string_equal(why, "bad??[31mcolour");
    exec_reason("0123456789", why, 5);
    assert_string_equal(why, "0123");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_and_exit),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_timeout_after_pipes_closed),
        cmocka_unit_test(test_signals_and_fds),
        cmocka_unit_test(test_bad_argv),
        cmocka_unit_test(test_find_and_reason),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
