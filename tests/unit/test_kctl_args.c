/* Unit tests: kubectl/args.c, kubectl-ordinal's argument parser (a pure function). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "args.h"

static char err[512];

/* parse a NULL-terminated list of words (argv[0] added) */
static int parse(struct kctl_args *a, const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    const char *w;

    argv[argc++] = (char *)(uintptr_t) "kubectl-ordinal";
    va_start(ap, first);
    for (w = first; w && argc < 31; w = va_arg(ap, const char *))
        argv[argc++] = (char *)(uintptr_t)w;
    va_end(ap);
    argv[argc] = NULL;
    return kctl_parse_args(argc, argv, a, err, sizeof(err));
}

static void test_status_forms(void **state)
{
    struct kctl_args a;

    (void)state;
    assert_int_equal(parse(&a, "status", NULL), 0);
    assert_int_equal(a.verb, KCTL_STATUS);
    assert_null(a.name);
    assert_null(a.namespace);
    assert_int_equal(parse(&a, "status", "web", "-n", "demo", "-o", "json", NULL), 0);
    assert_string_equal(a.name, "web");
    assert_string_equal(a.namespace, "demo");
    assert_int_equal(a.output, KCTL_OUT_JSON);
    /* flags before the verb, glued values, = forms */
    assert_int_equal(parse(&a, "-ndemo", "--output=wide", "status", "--context=kind", NULL), 0);
    assert_string_equal(a.namespace, "demo");
    assert_int_equal(a.output, KCTL_OUT_WIDE);
    assert_string_equal(a.context, "kind");
    assert_int_equal(parse(&a, "status", "-A", "--kubeconfig", "/tmp/k", "-ojson", NULL), 0);
    assert_true(a.all_namespaces);
    assert_string_equal(a.kubeconfig, "/tmp/k");
    assert_int_equal(parse(&a, "status", "--namespace", "x", "--", "web", NULL), 0);
    assert_string_equal(a.name, "web");
}

static void test_plan_forms(void **state)
{
    struct kctl_args a;

    (void)state;
    assert_int_equal(parse(&a, "plan", "scale", "web", "--replicas", "2", NULL), 0);
    assert_int_equal(a.verb, KCTL_PLAN_SCALE);
    assert_string_equal(a.name, "web");
    assert_int_equal(a.replicas, 2);
    assert_int_equal(parse(&a, "plan", "scale", "--replicas=0", "web", NULL), 0);
    assert_int_equal(a.replicas, 0);
    assert_int_equal(parse(&a, "plan", "delete", "web", NULL), 0);
    assert_int_equal(a.verb, KCTL_PLAN_DELETE);
    assert_false(a.cascade_orphan);
    assert_int_equal(parse(&a, "plan", "delete", "web", "--cascade=orphan", NULL), 0);
    assert_true(a.cascade_orphan);
}

static void test_volumes_reclaim(void **state)
{
    struct kctl_args a;

    (void)state;
    assert_int_equal(parse(&a, "volumes", "--node", "node-1", "--orphaned", NULL), 0);
    assert_int_equal(a.verb, KCTL_VOLUMES);
    assert_string_equal(a.node, "node-1");
    assert_true(a.orphaned);
    assert_int_equal(parse(&a, "reclaim", "ov-1", "--timeout", "2m", NULL), 0);
    assert_int_equal(a.verb, KCTL_RECLAIM);
    assert_int_equal(a.timeout_seconds, 120);
    assert_int_equal(parse(&a, "reclaim", "ov-1", "--timeout=90s", NULL), 0);
    assert_int_equal(a.timeout_seconds, 90);
    assert_int_equal(parse(&a, "reclaim", "ov-1", NULL), 0);
    assert_int_equal(a.timeout_seconds, 120);
}

static void test_help_everywhere(void **state)
{
    struct kctl_args a;

    (void)state;
    assert_int_equal(parse(&a, NULL), 0);
    assert_int_equal(a.verb, KCTL_HELP);
    assert_true(a.help);
    assert_int_equal(parse(&a, "--help", NULL), 0);
    assert_int_equal(a.verb, KCTL_HELP);
    /* --help wins over missing arguments */
    assert_int_equal(parse(&a, "plan", "scale", "--help", NULL), 0);
    assert_int_equal(a.verb, KCTL_PLAN_SCALE);
    assert_true(a.help);
    assert_int_equal(parse(&a, "reclaim", "-h", NULL), 0);
    assert_int_equal(a.verb, KCTL_RECLAIM);
    assert_int_equal(parse(&a, "help", "plan", "delete", NULL), 0);
    assert_int_equal(a.verb, KCTL_PLAN_DELETE);
    assert_int_equal(parse(&a, "plan", "--help", NULL), 0);
    for (int v = KCTL_HELP; v <= KCTL_RECLAIM; v++)
        assert_true(strlen(kctl_help((enum kctl_verb)v)) > 20);
}

/* Every usage error: -EINVAL and a message. */
static void test_usage_errors(void **state)
{
    struct kctl_args a;
    static const char *const cases[][8] = {
        {"frobnicate", NULL},
        {"status", "--bogus", NULL},
        {"status", "-x", NULL},
        {"status", "-n", NULL},
        {"status", "-n", "Bad_NS", NULL},
        {"status", "-o", "yaml", NULL},
        {"status", "a", "b", NULL},
        {"status", "web", "-A", NULL},
        {"status", "-A", "-n", "x", NULL},
        {"status", "Web", NULL},
        {"status", "--replicas", "3", NULL},
        {"plan", NULL},
        {"plan", "grow", "web", NULL},
        {"plan", "scale", "web", NULL},
        {"plan", "scale", "web", "--replicas", "-1", NULL},
        {"plan", "scale", "web", "--replicas", "3x", NULL},
        {"plan", "scale", "web", "--replicas", "100001", NULL},
        {"plan", "scale", "--replicas", "1", NULL},
        {"plan", "delete", "web", "--cascade=maybe", NULL},
        {"plan", "delete", "web", "extra", NULL},
        {"volumes", "-n", "x", NULL},
        {"volumes", "--node", "../etc", NULL},
        {"volumes", "extra", NULL},
        {"reclaim", NULL},
        {"reclaim", "ov", "--timeout", "0", NULL},
        {"reclaim", "ov", "--timeout", "25h", NULL},
        {"reclaim", "ov", "--timeout", "soon", NULL},
        {"reclaim", "ov", "-n", "x", NULL},
        {"reclaim", "ov", "--orphaned", NULL},
        {"volumes", "--orphaned=maybe", NULL},
        {"status", "-Ax", NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[10] = {(char *)(uintptr_t) "kubectl-ordinal"};
        int argc = 1;
        for (size_t k = 0; cases[i][k]; k++)
            argv[argc++] = (char *)(uintptr_t)cases[i][k];
        err[0] = 0;
        if (kctl_parse_args(argc, argv, &a, err, sizeof(err)) != -EINVAL)
            fail_msg("case %zu (%s %s) was accepted", i, cases[i][0],
                     cases[i][1] ? cases[i][1] : "");
        assert_true(strlen(err) > 5);
    }
}

static void test_hostile_input(void **state)
{
    struct kctl_args a;
    char big[5000];
    char *argv[] = {(char *)(uintptr_t) "k", (char *)(uintptr_t) "status", big, NULL};

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(kctl_parse_args(3, argv, &a, err, sizeof(err)), -EINVAL);
    assert_true(strlen(err) < sizeof(err));
    /* a zero-size error buffer is fine */
    assert_int_equal(kctl_parse_args(3, argv, &a, NULL, 0), -EINVAL);
    /* a NULL inside argc */
    argv[2] = NULL;
    assert_int_equal(kctl_parse_args(3, argv, &a, err, sizeof(err)), -EINVAL);
    assert_int_equal(kctl_parse_duration("1h", &a.timeout_seconds), 0);
    assert_int_equal(a.timeout_seconds, 3600);
    assert_int_equal(kctl_parse_duration("99999999999999999999", &a.timeout_seconds), -EINVAL);
    assert_int_equal(kctl_parse_duration("-5", &a.timeout_seconds), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_forms),    cmocka_unit_test(test_plan_forms),
        cmocka_unit_test(test_volumes_reclaim), cmocka_unit_test(test_help_everywhere),
        cmocka_unit_test(test_usage_errors),    cmocka_unit_test(test_hostile_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
