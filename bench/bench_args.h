/*
 * ordinal-bench's command line: parsing and validation only, no I/O besides the usage text, so
 * that it is unit tested on its own (tests/unit-style cmocka binary bench/test_bench_args.c).
 */
#ifndef ORDINAL_BENCH_ARGS_H
#define ORDINAL_BENCH_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define BENCH_MAX_PARAMS 32
#define BENCH_MAX_PARAM_LEN 512 /* key=value, bytes */
#define BENCH_MAX_CONCURRENCY 1024
#define BENCH_MAX_EXEC_ARGS 64

enum bench_scenario {
    BENCH_CREATE_DELETE,
    BENCH_CREATE,
    BENCH_PUBLISH,
    BENCH_STATS,
    BENCH_LIST,
    BENCH_MIXED,
    BENCH_STARTUP,
};

enum bench_capability { BENCH_CAP_MOUNT, BENCH_CAP_BLOCK };

/* Weights of the mixed scenario, in the order of enum bench_mix_kind. */
enum bench_mix_kind { MIX_CREATE_DELETE, MIX_PUBLISH, MIX_STATS, MIX_LIST, MIX_KINDS };

struct bench_param {
    char key[BENCH_MAX_PARAM_LEN];
    char value[BENCH_MAX_PARAM_LEN]; /* "{name}" is replaced by the volume's name */
};

struct bench_args {
    const char *endpoint; /* borrowed from argv */
    enum bench_scenario scenario;
    unsigned concurrency;
    uint64_t ops;         /* measured operations (0 when duration_ms is set) */
    uint64_t duration_ms; /* measured time (0 when ops is set) */
    uint64_t warmup_ops;  /* unmeasured operations before the measure ... */
    uint64_t warmup_ms;   /* ... or unmeasured time */
    struct bench_param params[BENCH_MAX_PARAMS];
    size_t n_params;
    enum bench_capability capability;
    const char *fs_type;     /* borrowed; "" = the driver's default */
    int access_mode;         /* csi.v1.VolumeCapability.AccessMode.Mode */
    int64_t capacity_bytes;  /* 0 = no capacity_range */
    uint64_t volumes;        /* pre-created volumes (publish, stats, list, mixed) */
    uint32_t page_size;      /* ListVolumes max_entries, 0 = the driver decides */
    const char *work_dir;    /* borrowed; NULL = a new directory under /tmp */
    const char *name_prefix; /* borrowed */
    pid_t pid;               /* driver to sample from /proc, 0 = none */
    bool json;
    bool keep; /* leave pre-created volumes behind */
    int64_t timeout_ms;
    unsigned mix[MIX_KINDS];
    bool mix_given;         /* --mix was on the command line */
    char *const *exec_argv; /* borrowed, NULL-terminated: the driver command of "startup" */
    size_t exec_argc;
};

/* Name of a scenario ("create-delete"), for reports. */
const char *bench_scenario_name(enum bench_scenario s);

/* Name of a kind of the mixed scenario ("stats"). */
const char *bench_mix_name(enum bench_mix_kind k);

/*
 * Parses argv into *ret (defaults filled in, values validated; strings are borrowed from argv).
 * Returns 0 on success, 1 when --help was asked for (nothing else is checked), or -EINVAL with a
 * message naming the flag in err (errlen bytes, always NUL-terminated). *ret is written only
 * on success.
 */
int bench_args_parse(int argc, char **argv, struct bench_args *ret, char *err, size_t errlen);

/* Parses "10s", "250ms", "2m", "1h" or a bare number of seconds into milliseconds. -EINVAL for
 * anything else, zero, or more than a day. */
int bench_parse_duration(const char *s, uint64_t *ret_ms);

/* Parses a byte count with an optional binary suffix: "1073741824", "512Mi", "1Gi", "64Ki".
 * -EINVAL for anything else or more than 2^62. */
int bench_parse_bytes(const char *s, int64_t *ret);

void bench_usage(FILE *out);

#endif
