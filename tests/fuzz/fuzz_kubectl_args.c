/*
 * Fuzz target: kubectl-ordinal's command line (kctl_parse_args, kubectl/args.c). The input is
 * argv[1..]: arguments separated by NUL bytes. Beyond crashes and UB it checks what the verbs
 * rely on: every string handed back points into argv (the parser borrows, never copies), each
 * value is one the parser promises to have checked (names are DNS names, counts and durations
 * in range, a verb's required argument present), an error always says something, and the same
 * argv parses the same way twice.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "fuzz_common.h"

#define MAX_ARGS 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "kctl_parse_args: %s (%s)\n", what, detail ? detail : "-");
    abort();
}

/* p is NULL or the start of one of argv's strings, or a suffix of one ("-nNS", "--x=v"). */
static void check_borrowed(const char *p, char *const argv[], int argc, const char *field)
{
    if (!p)
        return;
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (p >= argv[i] && p <= argv[i] + n)
            return;
    }
    fail("a string not borrowed from argv", field);
}

static bool dns_name(const char *s, size_t max, bool dots)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' || (dots && c == '.')))
            return false;
        if ((i == 0 || i == n - 1) && !alnum)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    char prog[] = "kubectl-ordinal";
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    struct kctl_args a, b;
    char err[256], err2[256];
    int rc, rc2;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    argv[argc++] = prog;
    for (size_t i = 0, start = 0; i <= size && argc < MAX_ARGS; i++) {
        if (i == size || buf[i] == '\0') {
            argv[argc++] = buf + start;
            start = i + 1;
        }
    }
    argv[argc] = NULL;

    memset(err, 'x', sizeof(err));
    rc = kctl_parse_args(argc, argv, &a, err, sizeof(err));
    if (memchr(err, '\0', sizeof(err)) == NULL)
        fail("err not NUL-terminated", NULL);
    if (rc != 0 && rc != -EINVAL)
        fail("a result other than 0 or -EINVAL", NULL);
    if (rc == -EINVAL && err[0] == '\0')
        fail("a usage error with no message", NULL);
    if (!kctl_help(a.verb))
        fail("no help text for the verb", NULL);

    rc2 = kctl_parse_args(argc, argv, &b, err2, sizeof(err2));
    if (rc2 != rc || (rc == -EINVAL && strcmp(err, err2) != 0) || b.verb != a.verb)
        fail("the same argv parsed differently twice", err);
    if (rc != 0) {
        free(buf);
        return 0;
    }

    check_borrowed(a.namespace, argv, argc, "namespace");
    check_borrowed(a.kubeconfig, argv, argc, "kubeconfig");
    check_borrowed(a.context, argv, argc, "context");
    check_borrowed(a.name, argv, argc, "name");
    check_borrowed(a.node, argv, argc, "node");
    if (a.namespace && !dns_name(a.namespace, 63, false))
        fail("an invalid namespace accepted", a.namespace);
    if (a.node && !dns_name(a.node, 253, true))
        fail("an invalid node name accepted", a.node);
    if (a.kubeconfig && (!*a.kubeconfig || strlen(a.kubeconfig) > 4096))
        fail("an empty or huge kubeconfig path accepted", NULL);
    if (a.context && (!*a.context || strlen(a.context) > 253))
        fail("an empty or huge context accepted", NULL);
    if (a.replicas < -1 || a.replicas > 100000)
        fail("replicas out of range", NULL);
    if (a.timeout_seconds < 1 || a.timeout_seconds > 86400)
        fail("timeout out of range", NULL);
    if (a.output != KCTL_OUT_TABLE && a.output != KCTL_OUT_WIDE && a.output != KCTL_OUT_JSON)
        fail("an unknown output format", NULL);
    if (!a.help) { /* with --help (or "help") only help is printed: the rest need not hold */
        if (a.all_namespaces && a.namespace)
            fail("--namespace and --all-namespaces both accepted", NULL);
        if (a.verb == KCTL_PLAN_SCALE && (a.replicas < 0 || !a.name))
            fail("plan scale without SET or --replicas", NULL);
        if ((a.verb == KCTL_PLAN_DELETE || a.verb == KCTL_RECLAIM) && !a.name)
            fail("a verb that needs a name without one", NULL);
        if (a.name && !dns_name(a.name, 253, true))
            fail("an invalid object name accepted", a.name);
    }
    free(buf);
    return 0;
}
