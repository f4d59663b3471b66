/*
 * kubectl-ordinal's command line, parsed by a pure function (no I/O, no allocation: every
 * string points into argv), so that it can be unit-tested and fuzzed on its own.
 *
 *   kubectl-ordinal VERB [ARGS] [FLAGS]
 *     status [SET]                       plan scale SET --replicas N      plan delete SET
 *     volumes [--node N] [--orphaned]    reclaim OV [--timeout 2m]        help, version
 *   global: -n/--namespace NS, -A/--all-namespaces, --kubeconfig PATH, --context NAME,
 *           -o/--output json|wide, -h/--help
 *
 * Flags may come before, between or after the positional arguments, as kubectl allows; forms
 * "-n NS", "-nNS", "--namespace NS", "--namespace=NS"; "--" ends the flags. Every value is
 * checked here (names are Kubernetes names, counts are in range), so the verbs see only valid
 * input.
 */
#ifndef ORDINAL_KCTL_ARGS_H
#define ORDINAL_KCTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>

enum kctl_verb {
    KCTL_HELP = 0, /* no verb, "help", or --help without a verb */
    KCTL_VERSION,
    KCTL_STATUS,
    KCTL_PLAN_SCALE,
    KCTL_PLAN_DELETE,
    KCTL_VOLUMES,
    KCTL_RECLAIM,
};

enum kctl_output { KCTL_OUT_TABLE = 0, KCTL_OUT_WIDE, KCTL_OUT_JSON };

struct kctl_args {
    enum kctl_verb verb;
    bool help; /* --help: print the verb's help, do nothing else */
    /* borrowed from argv; NULL when not given */
    const char *namespace;
    const char *kubeconfig;
    const char *context;
    const char *name; /* SET for status/plan, OV for reclaim */
    const char *node; /* volumes --node */
    bool all_namespaces;
    bool orphaned;
    bool cascade_orphan; /* plan delete --cascade=orphan */
    enum kctl_output output;
    long replicas;        /* plan scale --replicas; -1 = not given */
    long timeout_seconds; /* reclaim --timeout; default 120 */
};

/* Exit status of a usage error (kubectl's convention: 1 = error from the cluster, 2 = usage). */
#define KCTL_EXIT_USAGE 2

/*
 * Parse argv[1..argc-1] into *ret. Returns 0, or -EINVAL with a one-line explanation in err
 * (size errlen, always NUL-terminated) for a usage error. *ret is filled as far as parsing got
 * (ret->verb says which help to print with the error).
 */
int kctl_parse_args(int argc, char *const argv[], struct kctl_args *ret, char *err, size_t errlen);

/* Parse a duration "90", "90s", "2m", "1h" into seconds (1 .. 86400): 0 or -EINVAL. */
int kctl_parse_duration(const char *s, long *ret);

/* The help text of a verb (KCTL_HELP: the overview). Static. */
const char *kctl_help(enum kctl_verb verb);

#endif
