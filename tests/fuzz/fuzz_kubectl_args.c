/*
 * Fuzz target: kubectl-ordinal's command line (kctl_parse_args, kubectl/args.c). The input is
 * the arguments after argv[0], separated by NUL bytes (a shell hands the plugin any bytes but
 * NUL). Checked on every input: the parser never reads past argv, err is NUL-terminated, every
 * string it returns points into argv, and what it accepts is valid (names are Kubernetes names,
 * counts and durations in range, the verb has a help text). The same argv parsed with a
 * one-byte and a zero-byte error buffer gives the same result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "fuzz_common.h"

#define MAX_ARGS 64

static void fail(const char *what)
{
    fprintf(stderr, "kctl_parse_args: %s\n", what);
    abort();
}

/* s is NULL or points at the start of some argument, or inside one (a "--flag=value" value) */
static void check_borrowed(const char *s, char *const argv[], int argc)
{
    if (!s)
        return;
    for (int i = 1; i < argc; i++)
        if (s >= argv[i] && s <= argv[i] + strlen(argv[i]))
            return;
    fail("a returned string does not point into argv");
}

static void check_name(const char *s, size_t max)
{
    size_t n;

    if (!s)
        return;
    n = strlen(s);
    if (n == 0 || n > max)
        fail("an accepted name has a bad length");
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            fail("an accepted name has a bad character");
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char argv0[] = "kubectl-ordinal";
    char *buf, *argv[MAX_ARGS + 1], err[256], err1[1];
    struct kctl_args a, b, c;
    int argc = 1, r, r1, r0;

    if (size > 8192)
        return 0;
    buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    argv[0] = argv0;
    for (size_t off = 0; off <= size && argc < MAX_ARGS;) {
        size_t n = strlen(buf + off);
        argv[argc++] = buf + off;
        off += n + 1;
    }
    if (size == 0)
        argc = 1; /* no input: no arguments at all */
    argv[argc] = NULL;

    memset(err, 'x', sizeof(err));
    r = kctl_parse_args(argc, argv, &a, err, sizeof(err));
    if (!memchr(err, '\0', sizeof(err)))
        fail("err is not NUL-terminated");
    if (r != 0 && (r >= 0 || err[0] == '\0'))
        fail("a usage error without an explanation, or a positive return");
    check_borrowed(a.namespace, argv, argc);
    check_borrowed(a.kubeconfig, argv, argc);
    check_borrowed(a.context, argv, argc);
    check_borrowed(a.name, argv, argc);
    check_borrowed(a.node, argv, argc);
    if (!kctl_help(a.verb))
        fail("a verb without a help text");
    if (r == 0) {
        check_name(a.namespace, 63);
        if (a.namespace && strchr(a.namespace, '.'))
            fail("a namespace with a dot accepted");
        check_name(a.node, 253);
        check_name(a.name, 253);
        if (a.replicas < -1 || a.replicas > 100000)
            fail("replicas out of range");
        if (a.timeout_seconds < 1 || a.timeout_seconds > 86400)
            fail("timeout out of range");
        if (a.kubeconfig && (!*a.kubeconfig || strlen(a.kubeconfig) > 4096))
            fail("a bad kubeconfig path accepted");
        if (a.verb == KCTL_PLAN_SCALE && !a.help && a.replicas < 0)
            fail("plan scale accepted without --replicas");
    }

    /* the size of the error buffer changes nothing but the message */
    r1 = kctl_parse_args(argc, argv, &b, err1, sizeof(err1));
    if (err1[0] != '\0')
        fail("a one-byte err is not an empty string");
    r0 = kctl_parse_args(argc, argv, &c, NULL, 0);
    if (r1 != r || r0 != r || memcmp(&a, &b, sizeof(a)) != 0 || memcmp(&a, &c, sizeof(a)) != 0)
        fail("the result depends on the error buffer's size");
    free(buf);
    return 0;
}
