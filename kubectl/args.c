/*
 * kubectl-ordinal's argument parser: a pure function over argv (see args.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

static int usage(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int usage(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* A Kubernetes object name (DNS subdomain, max chars) */
static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if ((!alnum && c != '-' && c != '.') || ((i == 0 || i == n - 1) && !alnum))
            return false;
    }
    return true;
}

int kctl_parse_duration(const char *s, long *ret)
{
    char *end;
    long v, mul = 1;

    if (!s || s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || v <= 0)
        return -EINVAL;
    if (strcmp(end, "s") == 0 || *end == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60;
    else if (strcmp(end, "h") == 0)
        mul = 3600;
    else
        return -EINVAL;
    if (v > 86400 / mul)
        return -EINVAL;
    *ret = v * mul;
    return 0;
}

/* The flags: name, short letter (0 = none), whether it takes a value. */
enum flag_id {
    F_NAMESPACE,
    F_ALL_NS,
    F_KUBECONFIG,
    F_CONTEXT,
    F_OUTPUT,
    F_HELP,
    F_REPLICAS,
    F_NODE,
    F_ORPHANED,
    F_TIMEOUT,
    F_CASCADE,
};
static const struct flag {
    const char *name;
    char short_name;
    bool value;
} flags[] = {
    [F_NAMESPACE] = {"namespace", 'n', true}, [F_ALL_NS] = {"all-namespaces", 'A', false},
    [F_KUBECONFIG] = {"kubeconfig", 0, true}, [F_CONTEXT] = {"context", 0, true},
    [F_OUTPUT] = {"output", 'o', true},       [F_HELP] = {"help", 'h', false},
    [F_REPLICAS] = {"replicas", 0, true},     [F_NODE] = {"node", 0, true},
    [F_ORPHANED] = {"orphaned", 0, false},    [F_TIMEOUT] = {"timeout", 0, true},
    [F_CASCADE] = {"cascade", 0, true},
};

/* Which verbs take a flag beyond the global ones. */
static bool flag_allowed(enum flag_id f, enum kctl_verb v)
{
    switch (f) {
    case F_REPLICAS:
        return v == KCTL_PLAN_SCALE;
    case F_CASCADE:
        return v == KCTL_PLAN_DELETE;
    case F_NODE:
    case F_ORPHANED:
        return v == KCTL_VOLUMES;
    case F_TIMEOUT:
        return v == KCTL_RECLAIM;
    default:
        return true;
    }
}

static int set_flag(struct kctl_args *a, enum flag_id f, const char *v, char *err, size_t errlen)
{
    char *end;

    switch (f) {
    case F_NAMESPACE:
        if (!name_ok(v, 63) || strchr(v, '.'))
            return usage(err, errlen, "invalid namespace \"%.80s\"", v);
        a->namespace = v;
        break;
    case F_ALL_NS:
        a->all_namespaces = true;
        break;
    case F_KUBECONFIG:
        if (!*v || strlen(v) > 4096)
            return usage(err, errlen, "--kubeconfig needs a file path");
        a->kubeconfig = v;
        break;
    case F_CONTEXT:
        if (!*v || strlen(v) > 253)
            return usage(err, errlen, "--context needs a context name");
        a->context = v;
        break;
    case F_OUTPUT:
        if (strcmp(v, "json") == 0)
            a->output = KCTL_OUT_JSON;
        else if (strcmp(v, "wide") == 0)
            a->output = KCTL_OUT_WIDE;
        else
            return usage(err, errlen,
                         "unable to match a printer suitable for the output format \"%.40s\", "
                         "allowed formats are: json,wide",
                         v);
        break;
    case F_HELP:
        a->help = true;
        break;
    case F_REPLICAS:
        errno = 0;
        a->replicas = strtol(v, &end, 10);
        if (errno || !*v || *end || a->replicas < 0 || a->replicas > 100000)
            return usage(err, errlen,
                         "--replicas must be a whole number in 0..100000, not \"%.40s\"", v);
        break;
    case F_NODE:
        if (!name_ok(v, 253))
            return usage(err, errlen, "invalid node name \"%.80s\"", v);
        a->node = v;
        break;
    case F_ORPHANED:
        a->orphaned = true;
        break;
    case F_TIMEOUT:
        if (kctl_parse_duration(v, &a->timeout_seconds) < 0)
            return usage(err, errlen,
                         "--timeout must be a duration such as 90s, 2m or 1h (at most 24h), not "
                         "\"%.40s\"",
                         v);
        break;
    case F_CASCADE:
        if (strcmp(v, "orphan") == 0)
            a->cascade_orphan = true;
        else if (strcmp(v, "background") == 0 || strcmp(v, "foreground") == 0 ||
                 strcmp(v, "true") == 0)
            a->cascade_orphan = false;
        else
            return usage(err, errlen,
                         "--cascade must be background, foreground or orphan, not \"%.40s\"", v);
        break;
    }
    return 0;
}

/* Handle argv[*i], a flag. Consumes a separate value argument when needed. */
static int parse_flag(struct kctl_args *a, int argc, char *const argv[], int *i, char *err,
                      size_t errlen, enum flag_id *ret_id)
{
    const char *arg = argv[*i], *value = NULL;
    size_t id = SIZE_MAX;

    if (arg[1] == '-') {
        const char *nm = arg + 2, *eq = strchr(nm, '=');
        size_t len = eq ? (size_t)(eq - nm) : strlen(nm);

        for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
            if (strlen(flags[k].name) == len && memcmp(flags[k].name, nm, len) == 0)
                id = k;
        if (id == SIZE_MAX)
            return usage(err, errlen, "unknown flag: --%.*s", (int)(len > 60 ? 60 : len), nm);
        if (eq) {
            if (!flags[id].value) {
                /* --orphaned=true / --help=false, as pflag accepts for booleans */
                if (strcmp(eq + 1, "true") == 0)
                    value = NULL;
                else if (strcmp(eq + 1, "false") == 0) {
                    *ret_id = (enum flag_id)id;
                    return 1; /* explicitly off: nothing to set */
                } else
                    return usage(err, errlen, "--%s takes no value (or true/false)",
                                 flags[id].name);
            } else {
                value = eq + 1;
            }
        }
    } else {
        for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
            if (flags[k].short_name && flags[k].short_name == arg[1])
                id = k;
        if (id == SIZE_MAX || (!flags[id].value && arg[2]))
            return usage(err, errlen, "unknown shorthand flag: '%c' in %.60s", arg[1], arg);
        if (arg[2])
            value = arg[2] == '=' ? arg + 3 : arg + 2;
    }
    if (flags[id].value && !value) {
        if (*i + 1 >= argc)
            return usage(err, errlen, "flag needs an argument: --%s", flags[id].name);
        value = argv[++*i];
    }
    *ret_id = (enum flag_id)id;
    return set_flag(a, (enum flag_id)id, value ? value : "", err, errlen);
}

/* The verb named by word (and, for "plan", sub); KCTL_HELP when none. */
static enum kctl_verb verb_of(const char *word, const char *sub)
{
    if (strcmp(word, "status") == 0)
        return KCTL_STATUS;
    if (strcmp(word, "volumes") == 0)
        return KCTL_VOLUMES;
    if (strcmp(word, "reclaim") == 0)
        return KCTL_RECLAIM;
    if (strcmp(word, "version") == 0)
        return KCTL_VERSION;
    if (strcmp(word, "plan") == 0 && sub && strcmp(sub, "scale") == 0)
        return KCTL_PLAN_SCALE;
    if (strcmp(word, "plan") == 0 && sub && strcmp(sub, "delete") == 0)
        return KCTL_PLAN_DELETE;
    return KCTL_HELP;
}

int kctl_parse_args(int argc, char *const argv[], struct kctl_args *ret, char *err, size_t errlen)
{
    struct kctl_args a = {.verb = KCTL_HELP, .replicas = -1, .timeout_seconds = 120};
    const char *pos[4];
    size_t npos = 0;
    bool flags_done = false;
    unsigned used = 0; /* bit per flag id seen */

    if (errlen)
        err[0] = 0;
    *ret = a;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (!arg)
            return usage(err, errlen, "null argument");
        if (!flags_done && strcmp(arg, "--") == 0) {
            flags_done = true;
        } else if (!flags_done && arg[0] == '-' && arg[1]) {
            enum flag_id id = 0; /* set by parse_flag on success */
            int r = parse_flag(&a, argc, argv, &i, err, errlen, &id);
            if (r < 0) {
                *ret = a;
                return r;
            }
            used |= 1u << id;
        } else {
            if (npos == sizeof(pos) / sizeof(pos[0])) {
                *ret = a;
                return usage(err, errlen, "too many arguments: \"%.60s\"", arg);
            }
            pos[npos++] = arg;
        }
    }

    /* the verb */
    if (npos == 0 || strcmp(pos[0], "help") == 0) {
        a.verb = KCTL_HELP;
        if (npos >= 2) /* "help status", "help plan delete": that verb's help */
            a.verb = verb_of(pos[1], npos >= 3 ? pos[2] : NULL);
        a.help = true;
        *ret = a;
        return 0;
    }
    if (strcmp(pos[0], "version") == 0) {
        a.verb = KCTL_VERSION;
    } else if (strcmp(pos[0], "status") == 0) {
        a.verb = KCTL_STATUS;
    } else if (strcmp(pos[0], "volumes") == 0) {
        a.verb = KCTL_VOLUMES;
    } else if (strcmp(pos[0], "reclaim") == 0) {
        a.verb = KCTL_RECLAIM;
    } else if (strcmp(pos[0], "plan") == 0) {
        if (npos < 2) {
            a.verb = KCTL_PLAN_SCALE;
            *ret = a;
            if (a.help) {
                a.verb = KCTL_HELP;
                return 0;
            }
            return usage(err, errlen, "plan needs what to plan: \"plan scale\" or \"plan delete\"");
        }
        if (strcmp(pos[1], "scale") == 0)
            a.verb = KCTL_PLAN_SCALE;
        else if (strcmp(pos[1], "delete") == 0)
            a.verb = KCTL_PLAN_DELETE;
        else {
            *ret = a;
            return usage(err, errlen,
                         "unknown plan \"%.60s\": use \"plan scale\" or \"plan delete\"", pos[1]);
        }
        /* shift "plan X" into one verb */
        for (size_t k = 1; k + 1 < npos; k++)
            pos[k] = pos[k + 1];
        npos--;
    } else {
        *ret = a;
        return usage(err, errlen, "unknown command \"%.60s\" for \"kubectl ordinal\"", pos[0]);
    }
    *ret = a;
    if (a.help)
        return 0;

    /* verb-specific flags */
    for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
        if ((used & (1u << f)) && !flag_allowed((enum flag_id)f, a.verb))
            return usage(err, errlen, "flag --%s does not apply to this command", flags[f].name);
    if (a.all_namespaces && a.namespace)
        return usage(err, errlen, "--namespace and --all-namespaces cannot be used together");

    /* positional arguments */
    switch (a.verb) {
    case KCTL_VERSION:
    case KCTL_VOLUMES:
        if (npos > 1)
            return usage(err, errlen, "unexpected argument \"%.60s\"", pos[1]);
        if (a.verb == KCTL_VOLUMES && a.namespace)
            return usage(err, errlen,
                         "ordinalvolumes are cluster-scoped: --namespace does not apply");
        break;
    case KCTL_STATUS:
        if (npos > 2)
            return usage(err, errlen, "status takes at most one StatefulSet, got \"%.60s\" too",
                         pos[2]);
        if (npos == 2) {
            if (a.all_namespaces)
                return usage(err, errlen,
                             "a StatefulSet name cannot be used with --all-namespaces");
            a.name = pos[1];
        }
        break;
    case KCTL_PLAN_SCALE:
    case KCTL_PLAN_DELETE:
    case KCTL_RECLAIM:
        if (npos < 2)
            return usage(err, errlen, "%s",
                         a.verb == KCTL_RECLAIM ? "reclaim needs the name of an OrdinalVolume"
                                                : "plan needs the name of a StatefulSet");
        if (npos > 2)
            return usage(err, errlen, "unexpected argument \"%.60s\"", pos[2]);
        a.name = pos[1];
        if (a.all_namespaces)
            return usage(err, errlen, "--all-namespaces does not apply to this command");
        if (a.verb == KCTL_RECLAIM && a.namespace)
            return usage(err, errlen,
                         "ordinalvolumes are cluster-scoped: --namespace does not apply");
        if (a.verb == KCTL_PLAN_SCALE && a.replicas < 0)
            return usage(err, errlen, "plan scale needs --replicas N");
        break;
    case KCTL_HELP:
        break;
    }
    if (a.name && !name_ok(a.name, 253))
        return usage(err, errlen,
                     "invalid name \"%.80s\": a Kubernetes name is lowercase "
                     "letters, digits, '-' and '.'",
                     a.name);
    *ret = a;
    return 0;
}

const char *kctl_help(enum kctl_verb verb)
{
    switch (verb) {
    case KCTL_STATUS:
        return "Show every ordinal of StatefulSets: pod, claim, volume and what happens to its "
               "data.\n"
               "\n"
               "Usage:\n"
               "  kubectl ordinal status [SET] [-n NS | -A] [-o json|wide]\n"
               "\n"
               "One row per ordinal and volumeClaimTemplate, also for ordinals whose pod is gone\n"
               "but whose claim or volume is retained. SCALE-DOWN and SET-DELETE say what happens\n"
               "to the data when the ordinal is scaled away or the set deleted (kept, deleted,\n"
               "retained for re-adoption), from persistentVolumeClaimRetentionPolicy and the\n"
               "reclaim policy. -o wide adds the PV, the store, the policies and the last event.\n";
    case KCTL_PLAN_SCALE:
        return "Show what scaling a StatefulSet would do to every ordinal, in order. Changes "
               "nothing.\n"
               "\n"
               "Usage:\n"
               "  kubectl ordinal plan scale SET --replicas N [-n NS] [-o json]\n";
    case KCTL_PLAN_DELETE:
        return "Show what deleting a StatefulSet would do to every ordinal, in order. Changes "
               "nothing.\n"
               "\n"
               "Usage:\n"
               "  kubectl ordinal plan delete SET [--cascade=background|orphan] [-n NS] [-o "
               "json]\n";
    case KCTL_VOLUMES:
        return "List Ordinal's volume inventory (OrdinalVolume objects, one per backing store).\n"
               "\n"
               "Usage:\n"
               "  kubectl ordinal volumes [--node NODE] [--orphaned] [-o json|wide]\n";
    case KCTL_RECLAIM:
        return "Delete the backing store of an OrdinalVolume that no PersistentVolume refers to.\n"
               "\n"
               "Usage:\n"
               "  kubectl ordinal reclaim OV [--timeout 2m]\n"
               "\n"
               "Refuses when the OrdinalVolume names a PV or any PV's volumeHandle is its own.\n"
               "Otherwise annotates it ordinal.csi.dev/reclaim=requested and waits until the node\n"
               "plugin that owns the store has deleted the store and the OrdinalVolume.\n";
    case KCTL_VERSION:
        return "Print the version of kubectl-ordinal.\n\nUsage:\n  kubectl ordinal version\n";
    case KCTL_HELP:
    default:
        return "kubectl ordinal: StatefulSet ordinals and their volumes under Ordinal "
               "(ordinal.csi.dev).\n"
               "\n"
               "Commands:\n"
               "  status [SET]                   every ordinal: pod, claim, PV, store, data fate\n"
               "  plan scale SET --replicas N    what a scale would do, in order (changes "
               "nothing)\n"
               "  plan delete SET                what deleting the set would do (changes "
               "nothing)\n"
               "  volumes [--node N] [--orphaned]  the volume inventory (OrdinalVolumes)\n"
               "  reclaim OV                     delete a store no PV refers to\n"
               "  version\n"
               "\n"
               "Flags (every command):\n"
               "  -n, --namespace NS      namespace (default: the kubeconfig context's)\n"
               "  -A, --all-namespaces    every namespace (status)\n"
               "      --kubeconfig PATH   kubeconfig file (default $KUBECONFIG, ~/.kube/config)\n"
               "      --context NAME      kubeconfig context\n"
               "  -o, --output json|wide  output format\n"
               "  -h, --help              help of a command\n"
               "\n"
               "Exit status: 0 success, 1 error from the cluster or not found, 2 usage error.\n";
    }
}
