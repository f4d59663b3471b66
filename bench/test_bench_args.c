/*
 * Unit tests of ordinal-bench's command line (bench_args.c) and /proc parsing (bench_proc.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_args.h"
#include "bench_proc.h"

/* argv is char **, and string literals are const under -Wwrite-strings: copy the arguments
 * (a NULL-terminated list, program name excluded) into writable storage that lives until the
 * next call, since the parsed arguments borrow from it. */
static int parse(const char *const *args, struct bench_args *a, char *err)
{
    static char store[40][600];
    static char *argv[41];
    int argc = 0;

    snprintf(store[0], sizeof(store[0]), "ordinal-bench");
    argv[argc++] = store[0];
    for (size_t i = 0; args[i]; i++) {
        assert_true(argc < 40);
        snprintf(store[argc], sizeof(store[argc]), "%s", args[i]);
        argv[argc] = store[argc];
        argc++;
    }
    argv[argc] = NULL;
    return bench_args_parse(argc, argv, a, err, 256);
}

static void test_defaults(void **state)
{
    const char *argv[] = {"--endpoint", "unix:///tmp/x.sock", NULL};
    struct bench_args a;
    char err[256];

    (void)state;
    assert_int_equal(parse(argv, &a, err), 0);
    assert_string_equal(a.endpoint, "unix:///tmp/x.sock");
    assert_int_equal(a.scenario, BENCH_CREATE_DELETE);
    assert_int_equal(a.concurrency, 1);
    assert_int_equal(a.ops, 1000);
    assert_int_equal(a.duration_ms, 0);
    assert_int_equal(a.warmup_ops, 0);
    assert_int_equal(a.capability, BENCH_CAP_MOUNT);
    assert_int_equal(a.access_mode, 1);
    assert_int_equal(a.volumes, 1);
    assert_int_equal(a.page_size, 100);
    assert_int_equal(a.timeout_ms, 30000);
    assert_false(a.json);
    assert_string_equal(a.name_prefix, "bench");
}

static void test_full(void **state)
{
    const char *argv[] = {"--endpoint",    "/run/csi.sock",
                          "--scenario",    "stats",
                          "--concurrency", "8",
                          "--duration",    "10s",
                          "--warmup",      "2s",
                          "--param",       "csi.storage.k8s.io/pvc/name={name}",
                          "--param",       "backend=dir",
                          "--capability",  "mount",
                          "--fs-type",     "ext4",
                          "--access-mode", "single-node-reader-only",
                          "--capacity",    "512Mi",
                          "--volumes",     "16",
                          "--json",        "--pid",
                          "1234",          "--timeout",
                          "500",           "--name-prefix",
                          "b-1",           NULL};
    struct bench_args a;
    char err[256];

    (void)state;
    assert_int_equal(parse(argv, &a, err), 0);
    assert_int_equal(a.scenario, BENCH_STATS);
    assert_int_equal(a.concurrency, 8);
    assert_int_equal(a.ops, 0);
    assert_int_equal(a.duration_ms, 10000);
    assert_int_equal(a.warmup_ms, 2000);
    assert_int_equal(a.warmup_ops, 0);
    assert_int_equal(a.n_params, 2);
    assert_string_equal(a.params[0].key, "csi.storage.k8s.io/pvc/name");
    assert_string_equal(a.params[0].value, "{name}");
    assert_string_equal(a.params[1].key, "backend");
    assert_string_equal(a.params[1].value, "dir");
    assert_string_equal(a.fs_type, "ext4");
    assert_int_equal(a.access_mode, 2);
    assert_int_equal(a.capacity_bytes, 512 << 20);
    assert_int_equal(a.volumes, 16);
    assert_true(a.json);
    assert_int_equal(a.pid, 1234);
    assert_int_equal(a.timeout_ms, 500);
    assert_string_equal(a.name_prefix, "b-1");
}

static void test_warmup_ops_and_list_default(void **state)
{
    const char *argv[] = {"--endpoint", "/s",    "--scenario", "list", "--warmup",
                          "50",         "--ops", "7",          NULL};
    struct bench_args a;
    char err[256];

    (void)state;
    assert_int_equal(parse(argv, &a, err), 0);
    assert_int_equal(a.warmup_ops, 50);
    assert_int_equal(a.warmup_ms, 0);
    assert_int_equal(a.ops, 7);
    assert_int_equal(a.volumes, 100);
}

static void test_startup(void **state)
{
    const char *argv[] = {"--scenario",  "startup",    "--endpoint", "/s", "--",
                          "/bin/driver", "--endpoint", "unix:///s",  NULL};
    const char *no_cmd[] = {"--scenario", "startup", "--endpoint", "/s", NULL};
    const char *cmd_elsewhere[] = {"--endpoint", "/s", "--", "/bin/driver", NULL};
    struct bench_args a;
    char err[256];

    (void)state;
    assert_int_equal(parse(argv, &a, err), 0);
    assert_int_equal(a.exec_argc, 3);
    assert_string_equal(a.exec_argv[0], "/bin/driver");
    assert_string_equal(a.exec_argv[2], "unix:///s");
    assert_null(a.exec_argv[3]);
    assert_int_equal(a.ops, 10);
    assert_int_equal(parse(no_cmd, &a, err), -EINVAL);
    assert_non_null(strstr(err, "after --"));
    assert_int_equal(parse(cmd_elsewhere, &a, err), -EINVAL);
}

static void test_mix(void **state)
{
    const char *ok[] = {"--endpoint",    "/s", "--scenario", "mixed", "--mix", "2,0,5,1",
                        "--concurrency", "2",  "--volumes",  "4",     NULL};
    const char *zero[] = {"--endpoint", "/s", "--scenario", "mixed", "--mix", "0,0,0,0", NULL};
    const char *short_[] = {"--endpoint", "/s", "--scenario", "mixed", "--mix", "1,2,3", NULL};
    const char *empty[] = {"--endpoint", "/s", "--scenario", "mixed", "--mix", "1,,3,4", NULL};
    const char *wrong[] = {"--endpoint", "/s", "--mix", "1,1,1,1", NULL};
    struct bench_args a;
    char err[256];

    (void)state;
    assert_int_equal(parse(ok, &a, err), 0);
    assert_int_equal(a.mix[MIX_CREATE_DELETE], 2);
    assert_int_equal(a.mix[MIX_PUBLISH], 0);
    assert_int_equal(a.mix[MIX_STATS], 5);
    assert_int_equal(a.mix[MIX_LIST], 1);
    assert_true(a.mix_given);
    assert_int_equal(parse(zero, &a, err), -EINVAL);
    assert_int_equal(parse(short_, &a, err), -EINVAL);
    assert_int_equal(parse(empty, &a, err), -EINVAL);
    assert_int_equal(parse(wrong, &a, err), -EINVAL);
    assert_non_null(strstr(err, "--mix"));
}

/* Each bad command line fails with -EINVAL and a message naming the flag. */
static void test_errors(void **state)
{
    static const struct {
        const char *argv[10];
        const char *in_message;
    } cases[] = {
        {{"--scenario", "create-delete"}, "--endpoint is required"},
        {{"--endpoint", "/s", "--scenario", "nope"}, "--scenario"},
        {{"--endpoint", "/s", "--concurrency", "0"}, "--concurrency"},
        {{"--endpoint", "/s", "--concurrency", "1025"}, "--concurrency"},
        {{"--endpoint", "/s", "--concurrency", "-3"}, "--concurrency"},
        {{"--endpoint", "/s", "--concurrency", "8x"}, "--concurrency"},
        {{"--endpoint", "/s", "--ops", "0"}, "--ops"},
        {{"--endpoint", "/s", "--ops", "5", "--duration", "1s"}, "exclude"},
        {{"--endpoint", "/s", "--duration", "10x"}, "--duration"},
        {{"--endpoint", "/s", "--duration", "0s"}, "--duration"},
        {{"--endpoint", "/s", "--duration", "2d"}, "--duration"},
        {{"--endpoint", "/s", "--warmup", "soon"}, "--warmup"},
        {{"--endpoint", "/s", "--param", "novalue"}, "--param"},
        {{"--endpoint", "/s", "--param", "=v"}, "--param"},
        {{"--endpoint", "/s", "--param", "a b=v"}, "--param"},
        {{"--endpoint", "/s", "--param", "k=1", "--param", "k=2"}, "twice"},
        {{"--endpoint", "/s", "--capability", "file"}, "--capability"},
        {{"--endpoint", "/s", "--capability", "block", "--fs-type", "ext4"}, "--fs-type"},
        {{"--endpoint", "/s", "--access-mode", "rwx"}, "--access-mode"},
        {{"--endpoint", "/s", "--capacity", "1G"}, "--capacity"},
        {{"--endpoint", "/s", "--capacity", "0"}, "--capacity"},
        {{"--endpoint", "/s", "--work-dir", "relative"}, "--work-dir"},
        {{"--endpoint", "/s", "--name-prefix", "Upper"}, "--name-prefix"},
        {{"--endpoint", "/s", "--name-prefix", "9lives"}, "--name-prefix"},
        {{"--endpoint", "/s", "--pid", "0"}, "--pid"},
        {{"--endpoint", "/s", "--timeout", "0"}, "--timeout"},
        {{"--endpoint", "/s", "--page-size", "-1"}, "--page-size"},
        {{"--endpoint", "/s", "--bogus", "1"}, "unknown option"},
        {{"--endpoint", "/s", "stray"}, "unexpected argument"},
        {{"--endpoint"}, "needs a value"},
        {{"--endpoint", "/s", "--scenario", "publish", "--concurrency", "4", "--volumes", "2"},
         "--volumes"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bench_args a;
        char err[256];

        if (parse(cases[i].argv, &a, err) != -EINVAL || !strstr(err, cases[i].in_message))
            fail_msg("case %zu (%s ...): got message '%s', wanted '%s'", i, cases[i].argv[0], err,
                     cases[i].in_message);
    }
}

static void test_help(void **state)
{
    const char *bad_first[] = {"--concurrency", "0", "--help", NULL};
    const char *help[] = {"--help", "--concurrency", "0", NULL};
    struct bench_args a;
    char err[256];

    (void)state;
    /* flags are read in order: a bad value before --help fails, --help first wins */
    assert_int_equal(parse(bad_first, &a, err), -EINVAL);
    assert_int_equal(parse(help, &a, err), 1);
}

static void test_durations_and_bytes(void **state)
{
    uint64_t ms;
    int64_t b;

    (void)state;
    assert_int_equal(bench_parse_duration("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(bench_parse_duration("3", &ms), 0);
    assert_int_equal(ms, 3000);
    assert_int_equal(bench_parse_duration("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(bench_parse_duration("24h", &ms), 0);
    assert_int_equal(ms, 86400000);
    assert_int_equal(bench_parse_duration("25h", &ms), -EINVAL);
    assert_int_equal(bench_parse_duration("", &ms), -EINVAL);
    assert_int_equal(bench_parse_duration("s", &ms), -EINVAL);
    assert_int_equal(bench_parse_duration("1.5s", &ms), -EINVAL);
    assert_int_equal(bench_parse_duration("99999999999999999999999s", &ms), -EINVAL);
    assert_int_equal(bench_parse_bytes("1Gi", &b), 0);
    assert_int_equal(b, (int64_t)1 << 30);
    assert_int_equal(bench_parse_bytes("4096", &b), 0);
    assert_int_equal(b, 4096);
    assert_int_equal(bench_parse_bytes("3Ti", &b), 0);
    assert_int_equal(b, (int64_t)3 << 40);
    assert_int_equal(bench_parse_bytes("1GB", &b), -EINVAL);
    assert_int_equal(bench_parse_bytes("-1", &b), -EINVAL);
    assert_int_equal(bench_parse_bytes("9999999Ti", &b), -EINVAL);
}

static void test_proc_parse(void **state)
{
    const char *status = "Name:\tordinal-csi\nUmask:\t0022\nVmHWM:\t    9000 kB\n"
                         "VmRSS:\t    8123 kB\nRssAnon:\t    1500 kB\nRssFile:\t    6600 kB\n"
                         "Threads:\t7\n";
    /* comm with spaces and a ')' of its own; utime 250, stime 50 ticks */
    const char *stat = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 "
                       "20 0 7 0 100 0 0";
    struct proc_sample s;

    (void)state;
    memset(&s, 0, sizeof(s));
    assert_int_equal(proc_parse_status(status, &s), 0);
    assert_int_equal(s.vm_rss_kib, 8123);
    assert_int_equal(s.rss_anon_kib, 1500);
    assert_int_equal(s.rss_file_kib, 6600);
    assert_int_equal(s.vm_hwm_kib, 9000);
    assert_int_equal(s.threads, 7);
    assert_int_equal(proc_parse_stat(stat, 100, &s), 0);
    assert_true(s.cpu_s > 2.999 && s.cpu_s < 3.001);
    assert_int_equal(proc_parse_status("Name:\tx\n", &s), -EIO);
    assert_int_equal(proc_parse_stat("4242 (x) S 1 2", 100, &s), -EIO);
    assert_int_equal(proc_parse_stat("no parenthesis", 100, &s), -EIO);
    /* our own process: something sensible */
    assert_int_equal(proc_sample(getpid(), &s), 0);
    assert_true(s.vm_rss_kib > 0);
    assert_true(s.rss_anon_kib > 0);
    assert_true(s.threads >= 1);
    assert_int_equal(proc_sample(0x7ffffff0, &s), -ESRCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_warmup_ops_and_list_default),
        cmocka_unit_test(test_startup),
        cmocka_unit_test(test_mix),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_durations_and_bytes),
        cmocka_unit_test(test_proc_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
