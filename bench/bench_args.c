/*
 * ordinal-bench's command line (see bench_args.h). Every flag is checked here, once: the run
 * itself trusts struct bench_args. Single-threaded; no global state (getopt is not used, so
 * that the parser can be called many times by the unit tests).
 */
#include "bench_args.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const scenario_names[] = {
    [BENCH_CREATE_DELETE] = "create-delete",
    [BENCH_CREATE] = "create",
    [BENCH_PUBLISH] = "publish",
    [BENCH_STATS] = "stats",
    [BENCH_LIST] = "list",
    [BENCH_MIXED] = "mixed",
    [BENCH_STARTUP] = "startup",
};

static const char *const mix_names[MIX_KINDS] = {
    [MIX_CREATE_DELETE] = "create-delete",
    [MIX_PUBLISH] = "publish",
    [MIX_STATS] = "stats",
    [MIX_LIST] = "list",
};

static const struct {
    const char *name;
    int mode;
} access_modes[] = {
    {"single-node-writer", 1},       {"single-node-reader-only", 2},
    {"multi-node-reader-only", 3},   {"multi-node-single-writer", 4},
    {"multi-node-multi-writer", 5},  {"single-node-single-writer", 6},
    {"single-node-multi-writer", 7},
};

const char *bench_scenario_name(enum bench_scenario s)
{
    if ((size_t)s < sizeof(scenario_names) / sizeof(scenario_names[0]))
        return scenario_names[s];
    return "?";
}

void bench_usage(FILE *out)
{
    fputs("usage: ordinal-bench --endpoint unix:///PATH [options]\n"
          "       ordinal-bench --scenario startup --endpoint unix:///PATH [options] -- DRIVER "
          "ARGS...\n"
          "\n"
          "Drives any CSI driver over its unix socket and reports operations per second, latency\n"
          "percentiles per RPC and errors by gRPC code.\n"
          "\n"
          "  --endpoint E          unix:///path or /path of the driver's socket (required)\n"
          "  --scenario S          create-delete (default): CreateVolume + DeleteVolume, fresh "
          "names\n"
          "                        create: CreateVolume only, volumes are kept\n"
          "                        publish: NodeStage + NodePublish + NodeUnpublish + NodeUnstage\n"
          "                                 of pre-created volumes (root: bind mounts)\n"
          "                        stats: NodeGetVolumeStats of pre-created, published volumes\n"
          "                        list: ListVolumes paging over --volumes pre-created volumes\n"
          "                        mixed: a weighted mix of the above (--mix)\n"
          "                        startup: spawn the driver given after --, time until Probe\n"
          "                                 answers ready, stop it; --ops runs\n"
          "  --concurrency N       client threads, each with one call in flight (default 1)\n"
          "  --ops N               measured operations (default 1000), or\n"
          "  --duration T          measured time: 10s, 500ms, 2m\n"
          "  --warmup N|T          unmeasured operations (or time) first (default 0)\n"
          "  --param K=V           a CreateVolume parameter (repeatable); in V, {name} is the\n"
          "                        volume's name, e.g. csi.storage.k8s.io/pvc/name={name}\n"
          "  --capability C        mount (default) or block\n"
          "  --fs-type T           fs_type of a mount capability (default: none)\n"
          "  --access-mode M       single-node-writer (default), single-node-reader-only, ...\n"
          "  --capacity B          required_bytes: 1073741824, 512Mi, 1Gi (default: none)\n"
          "  --volumes N           pre-created volumes for publish/stats/list/mixed\n"
          "                        (default: concurrency; list: 100)\n"
          "  --page-size N         ListVolumes max_entries (default 100; 0: the driver decides)\n"
          "  --work-dir D          where staging and target paths go (default: a new /tmp dir)\n"
          "  --name-prefix P       volume names are P-<run>-<thread>-<seq> (default bench)\n"
          "  --keep                leave pre-created volumes behind\n"
          "  --mix W,W,W,W         mixed weights create-delete,publish,stats,list (default\n"
          "                        1,1,4,1; publish and stats need a driver that can mount)\n"
          "  --timeout MS          deadline of each RPC (default 30000)\n"
          "  --pid PID             sample the driver's VmRSS, RssAnon and CPU time from /proc\n"
          "  --json                one JSON object on stdout instead of text\n"
          "  --help                this text\n",
          out);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* A decimal unsigned integer in [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
    unsigned long long v;
    char *end;

    if (!s || !s[0] || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

int bench_parse_duration(const char *s, uint64_t *ret_ms)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
    const uint64_t day = 86400000;
    char num[32];
    size_t len, digits;
    uint64_t v;

    if (!s)
        return -EINVAL;
    len = strlen(s);
    for (digits = 0; digits < len && s[digits] >= '0' && s[digits] <= '9'; digits++)
        ;
    if (digits == 0 || digits >= sizeof(num))
        return -EINVAL;
    memcpy(num, s, digits);
    num[digits] = '\0';
    if (parse_u64(num, 1, day, &v) < 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s + digits, units[i].suffix) != 0)
            continue;
        if (v > day / units[i].ms)
            return -EINVAL;
        *ret_ms = v * units[i].ms;
        return 0;
    }
    return -EINVAL;
}

int bench_parse_bytes(const char *s, int64_t *ret)
{
    static const struct {
        const char *suffix;
        int shift;
    } units[] = {{"", 0}, {"Ki", 10}, {"Mi", 20}, {"Gi", 30}, {"Ti", 40}};
    char num[32];
    size_t len, digits;
    uint64_t v;

    if (!s)
        return -EINVAL;
    len = strlen(s);
    for (digits = 0; digits < len && s[digits] >= '0' && s[digits] <= '9'; digits++)
        ;
    if (digits == 0 || digits >= sizeof(num))
        return -EINVAL;
    memcpy(num, s, digits);
    num[digits] = '\0';
    if (parse_u64(num, 0, (uint64_t)1 << 62, &v) < 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s + digits, units[i].suffix) != 0)
            continue;
        if (v > ((uint64_t)1 << 62) >> units[i].shift)
            return -EINVAL;
        *ret = (int64_t)(v << units[i].shift);
        return 0;
    }
    return -EINVAL;
}

/* "create-delete,publish,stats,list" weights "1,0,4,1"; at least one weight non-zero. */
static int parse_mix(const char *s, unsigned ret[MIX_KINDS])
{
    unsigned w[MIX_KINDS];
    char buf[128], *save = NULL, *tok;
    size_t i = 0;
    uint64_t v, total = 0;

    if (!s || strlen(s) >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, strlen(s) + 1);
    /* strtok_r skips empty fields; count commas first so that "1,,1,1" is refused. */
    for (const char *p = s; *p; p++)
        if (*p == ',')
            i++;
    if (i != MIX_KINDS - 1)
        return -EINVAL;
    i = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (i >= MIX_KINDS || parse_u64(tok, 0, 1000, &v) < 0)
            return -EINVAL;
        w[i++] = (unsigned)v;
        total += v;
    }
    if (i != MIX_KINDS || total == 0)
        return -EINVAL;
    memcpy(ret, w, sizeof(w));
    return 0;
}

/* A parameter key: non-empty, printable ASCII, no '='; the value may be empty. */
static int parse_param(const char *s, struct bench_param *ret)
{
    const char *eq = strchr(s, '=');
    size_t klen, vlen;

    if (!eq || eq == s)
        return -EINVAL;
    klen = (size_t)(eq - s);
    vlen = strlen(eq + 1);
    if (klen >= sizeof(ret->key) || vlen >= sizeof(ret->value))
        return -EINVAL;
    for (size_t i = 0; i < klen; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return -EINVAL;
    memcpy(ret->key, s, klen);
    ret->key[klen] = '\0';
    memcpy(ret->value, eq + 1, vlen + 1);
    return 0;
}

/* Volume name prefixes end up in CSI names (and, with {name}, in Kubernetes-style keys):
 * lower-case letters, digits and '-', starting with a letter, at most 40 bytes. */
static bool prefix_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 40 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

int bench_args_parse(int argc, char **argv, struct bench_args *ret, char *err, size_t errlen)
{
    struct bench_args a;
    bool have_ops = false, have_duration = false, have_volumes = false, have_mix = false;
    uint64_t v;
    int i;

    if (errlen > 0)
        err[0] = '\0';
    memset(&a, 0, sizeof(a));
    a.scenario = BENCH_CREATE_DELETE;
    a.concurrency = 1;
    a.ops = 1000;
    a.capability = BENCH_CAP_MOUNT;
    a.fs_type = "";
    a.access_mode = 1;
    a.page_size = 100;
    a.name_prefix = "bench";
    a.timeout_ms = 30000;

    for (i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0)
            return 1;
        if (strcmp(opt, "--") == 0) {
            a.exec_argv = argv + i + 1;
            a.exec_argc = (size_t)(argc - i - 1);
            break;
        }
        if (strcmp(opt, "--json") == 0) {
            a.json = true;
            continue;
        }
        if (strcmp(opt, "--keep") == 0) {
            a.keep = true;
            continue;
        }
        if (strncmp(opt, "--", 2) != 0)
            return fail(err, errlen, "unexpected argument '%s'", opt);
        if (!val)
            return fail(err, errlen, "%s needs a value", opt);
        i++;
        if (strcmp(opt, "--endpoint") == 0) {
            a.endpoint = val;
        } else if (strcmp(opt, "--scenario") == 0) {
            size_t k, n = sizeof(scenario_names) / sizeof(scenario_names[0]);

            for (k = 0; k < n && strcmp(val, scenario_names[k]) != 0; k++)
                ;
            if (k == n)
                return fail(err, errlen, "--scenario: unknown scenario '%s'", val);
            a.scenario = (enum bench_scenario)k;
        } else if (strcmp(opt, "--concurrency") == 0) {
            if (parse_u64(val, 1, BENCH_MAX_CONCURRENCY, &v) < 0)
                return fail(err, errlen, "--concurrency: '%s' is not an integer in 1..%d", val,
                            BENCH_MAX_CONCURRENCY);
            a.concurrency = (unsigned)v;
        } else if (strcmp(opt, "--ops") == 0) {
            if (parse_u64(val, 1, (uint64_t)1 << 40, &v) < 0)
                return fail(err, errlen, "--ops: '%s' is not a positive integer", val);
            a.ops = v;
            have_ops = true;
        } else if (strcmp(opt, "--duration") == 0) {
            if (bench_parse_duration(val, &a.duration_ms) < 0)
                return fail(err, errlen,
                            "--duration: '%s' is not a duration (10s, 500ms, 2m; at most 1 day)",
                            val);
            have_duration = true;
        } else if (strcmp(opt, "--warmup") == 0) {
            a.warmup_ops = a.warmup_ms = 0;
            if (parse_u64(val, 0, (uint64_t)1 << 40, &v) == 0)
                a.warmup_ops = v;
            else if (bench_parse_duration(val, &a.warmup_ms) < 0)
                return fail(err, errlen,
                            "--warmup: '%s' is neither a number of operations nor a duration", val);
        } else if (strcmp(opt, "--param") == 0) {
            if (a.n_params >= BENCH_MAX_PARAMS)
                return fail(err, errlen, "--param: at most %d parameters", BENCH_MAX_PARAMS);
            if (parse_param(val, &a.params[a.n_params]) < 0)
                return fail(err, errlen,
                            "--param: '%s' is not KEY=VALUE (key printable, both under %d bytes)",
                            val, BENCH_MAX_PARAM_LEN);
            for (size_t k = 0; k < a.n_params; k++)
                if (strcmp(a.params[k].key, a.params[a.n_params].key) == 0)
                    return fail(err, errlen, "--param: '%s' given twice", a.params[k].key);
            a.n_params++;
        } else if (strcmp(opt, "--capability") == 0) {
            if (strcmp(val, "mount") == 0)
                a.capability = BENCH_CAP_MOUNT;
            else if (strcmp(val, "block") == 0)
                a.capability = BENCH_CAP_BLOCK;
            else
                return fail(err, errlen, "--capability: '%s' is neither mount nor block", val);
        } else if (strcmp(opt, "--fs-type") == 0) {
            if (strlen(val) > 64)
                return fail(err, errlen, "--fs-type: longer than 64 bytes");
            a.fs_type = val;
        } else if (strcmp(opt, "--access-mode") == 0) {
            size_t k, n = sizeof(access_modes) / sizeof(access_modes[0]);

            for (k = 0; k < n && strcmp(val, access_modes[k].name) != 0; k++)
                ;
            if (k == n)
                return fail(err, errlen, "--access-mode: unknown mode '%s'", val);
            a.access_mode = access_modes[k].mode;
        } else if (strcmp(opt, "--capacity") == 0) {
            if (bench_parse_bytes(val, &a.capacity_bytes) < 0 || a.capacity_bytes == 0)
                return fail(err, errlen, "--capacity: '%s' is not a byte count (1Gi, 512Mi, 4096)",
                            val);
        } else if (strcmp(opt, "--volumes") == 0) {
            if (parse_u64(val, 1, 10000000, &v) < 0)
                return fail(err, errlen, "--volumes: '%s' is not an integer in 1..10000000", val);
            a.volumes = v;
            have_volumes = true;
        } else if (strcmp(opt, "--page-size") == 0) {
            if (parse_u64(val, 0, INT32_MAX, &v) < 0)
                return fail(err, errlen, "--page-size: '%s' is not an integer in 0..%d", val,
                            INT32_MAX);
            a.page_size = (uint32_t)v;
        } else if (strcmp(opt, "--work-dir") == 0) {
            if (val[0] != '/' || strlen(val) > 200)
                return fail(err, errlen, "--work-dir: '%s' is not an absolute path (<= 200 bytes)",
                            val);
            a.work_dir = val;
        } else if (strcmp(opt, "--name-prefix") == 0) {
            if (!prefix_ok(val))
                return fail(err, errlen,
                            "--name-prefix: '%s' must be 1-40 of [a-z0-9-], starting with a letter",
                            val);
            a.name_prefix = val;
        } else if (strcmp(opt, "--mix") == 0) {
            if (parse_mix(val, a.mix) < 0)
                return fail(err, errlen,
                            "--mix: '%s' is not 4 weights create-delete,publish,stats,list "
                            "(0..1000, not all 0)",
                            val);
            have_mix = true;
        } else if (strcmp(opt, "--timeout") == 0) {
            if (parse_u64(val, 1, 3600000, &v) < 0)
                return fail(err, errlen, "--timeout: '%s' is not milliseconds in 1..3600000", val);
            a.timeout_ms = (int64_t)v;
        } else if (strcmp(opt, "--pid") == 0) {
            if (parse_u64(val, 1, INT_MAX, &v) < 0)
                return fail(err, errlen, "--pid: '%s' is not a process id", val);
            a.pid = (pid_t)v;
        } else {
            return fail(err, errlen, "unknown option '%s'", opt);
        }
    }

    if (!a.endpoint)
        return fail(err, errlen, "--endpoint is required");
    if (have_ops && have_duration)
        return fail(err, errlen, "--ops and --duration exclude each other");
    if (have_duration)
        a.ops = 0;
    if (a.scenario == BENCH_STARTUP) {
        if (a.exec_argc == 0)
            return fail(err, errlen, "startup needs the driver command after --");
        if (a.exec_argc > BENCH_MAX_EXEC_ARGS)
            return fail(err, errlen, "startup: at most %d driver arguments", BENCH_MAX_EXEC_ARGS);
        if (have_duration)
            return fail(err, errlen, "startup counts runs: use --ops, not --duration");
        if (!have_ops)
            a.ops = 10;
    } else if (a.exec_argv) {
        return fail(err, errlen, "a command after -- is only for --scenario startup");
    }
    if (!have_volumes)
        a.volumes = a.scenario == BENCH_LIST ? 100 : a.concurrency;
    if ((a.scenario == BENCH_PUBLISH || a.scenario == BENCH_STATS || a.scenario == BENCH_MIXED) &&
        a.volumes < a.concurrency)
        return fail(err, errlen,
                    "--volumes (%" PRIu64 ") must be at least --concurrency (%u): each thread "
                    "works on volumes of its own",
                    a.volumes, a.concurrency);
    if (have_mix && a.scenario != BENCH_MIXED)
        return fail(err, errlen, "--mix is only for --scenario mixed");
    if (a.capability == BENCH_CAP_BLOCK && a.fs_type[0])
        return fail(err, errlen, "--fs-type goes with a mount capability, not block");
    if (!have_mix) {
        a.mix[MIX_CREATE_DELETE] = 1;
        a.mix[MIX_PUBLISH] = 1;
        a.mix[MIX_STATS] = 4;
        a.mix[MIX_LIST] = 1;
    }
    a.mix_given = have_mix;
    *ret = a;
    return 0;
}

const char *bench_mix_name(enum bench_mix_kind k)
{
    return (size_t)k < MIX_KINDS ? mix_names[k] : "?";
}
