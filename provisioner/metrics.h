/*
 * The daemon's metric registry and its Prometheus text exposition (format 0.0.4).
 *
 * One process-wide registry with fixed memory: every family is a dense array of atomic cells
 * indexed by small label tables filled on first use (method paths, resources, HTTP codes), so
 * an observation is a few relaxed atomic adds with no lock and no allocation. A label table
 * that is full sends further values to one "other" cell, so memory stays bounded whatever the
 * API server or a client sends.
 *
 * Families (all prefixed ordinal_):
 *   csi_calls_total{method,code}                  counter   (server.c, one per gRPC reply)
 *   csi_call_duration_seconds{method}             histogram
 *   kube_requests_total{verb,resource,code}       counter   (kube_client.c, one per transfer)
 *   kube_watch_restarts_total{resource}           counter   (kube_informer.c)
 *   provision_queue_depth                         gauge     (provision.c)
 *   provision_time_to_bound_seconds               histogram (provision.c: claim seen -> PV)
 *   and, from struct metrics_extra at render time: volumes{backend,state},
 *   leader, kube_events_dropped_total, build_info{version}, dir_capacity_enforced.
 *
 * Threading: every function may be called from any thread at any time, rendering included; a
 * render reads each cell once (a histogram's count is the sum of the buckets it printed, so
 * +Inf and _count always agree).
 */
#ifndef ORDINAL_METRICS_H
#define ORDINAL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A monotonic timestamp in nanoseconds, for the start of an observation. */
uint64_t metrics_now(void);

/* One CSI call answered: method is the gRPC path (a static string; NULL = unknown method),
 * code the gRPC status (0..16, anything else counts as UNKNOWN), start from metrics_now(). */
void metrics_csi_call(const char *method, int code, uint64_t start);

/* One request to the API server: HTTP method, the request path with its query, and the HTTP
 * code (0 = no answer: a transport error). The Kubernetes verb (get, list, watch, create,
 * update, patch, delete) and the resource are derived from method and path. */
void metrics_kube_request(const char *method, const char *path_query, long http);

/* A watch of resource (plural) started again after its first one. */
void metrics_watch_restart(const char *resource);

/* The provisioner's work queue holds depth keys. */
void metrics_prov_queue_depth(size_t depth);
/* A claim (by uid; NULL ignored) was seen unbound: remembers the first time, in a fixed table
 * (the oldest entries make room). */
void metrics_claim_seen(const char *uid);
/* The claim's PV was created: observes the time since it was seen, once. */
void metrics_claim_provisioned(const char *uid);

/* ---- rendering ---- */

/* Volumes of one backend in one state, counted by the caller (the HTTP endpoint). */
struct metrics_volume_count {
    const char *backend; /* borrowed */
    const char *state;   /* borrowed: "normal" or "abnormal" */
    uint64_t n;
};

/* Durability counters of one backend (be_ops.durability_stats). */
struct metrics_durability {
    const char *backend; /* borrowed */
    uint64_t waits, flushes;
};

/* What the registry does not hold itself, gathered at render time. */
struct metrics_extra {
    const char *version; /* build_info{version}; NULL = not rendered */
    bool kube_configured;
    bool controller; /* leader is rendered in controller mode only */
    bool leader;     /* ordinal_leader 0/1 */
    uint64_t events_dropped;
    const struct metrics_volume_count *volumes; /* borrowed, n_volumes entries */
    size_t n_volumes;
    int dir_capacity_enforced; /* dir_capacity_enforced 0/1 (project quotas); -1 = no dir backend */
    const struct metrics_durability *durability; /* borrowed, n_durability entries */
    size_t n_durability;
};

/* Cap on a rendered exposition. */
#define METRICS_MAX_OUTPUT (4 * 1024 * 1024)

/* Render every family into a new NUL-terminated buffer (*ret, free()) of *ret_len bytes.
 * 0, -ENOMEM, or -EMSGSIZE past METRICS_MAX_OUTPUT. extra may be NULL. */
int metrics_render(const struct metrics_extra *extra, char **ret, size_t *ret_len);

/* Write v as a label value (backslash, double quote and newline escaped) into buf (size n,
 * NUL-terminated, truncated on a character boundary of the escaping). Returns the length. */
size_t metrics_escape_label(char *buf, size_t n, const char *v);

/* Tests only: forget every observation and label. Nothing may observe concurrently. */
void metrics_reset(void);

#endif
