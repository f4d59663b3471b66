/*
 * Metric registry and exposition (see metrics.h).
 *
 * Label tables: a fixed array of slots, each empty (0), being written (1) or ready (2). A new
 * value claims an empty slot with a compare-and-swap, copies its name and publishes it with a
 * release store; readers skip slots that are not ready, and a writer meeting a slot being
 * written waits for it (a copy of at most LABEL_MAX bytes) so that one value never gets two
 * slots. Index `cap` of every table is the "other" cell.
 *
 * Cells are _Atomic uint64_t, added with relaxed order: a scrape may see one family a moment
 * ahead of another, never a torn value. Histograms keep per-bucket (not cumulative) counts and
 * a nanosecond sum; rendering accumulates.
 *
 * The table of claims seen (time-to-Bound) is the one structure behind a mutex: it changes once
 * per claim, never on a CSI or API request path.
 */
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "status.h"

#define LABEL_MAX 64 /* bytes of a label value, NUL included; longer values are cut */

#define CSI_METHODS 40
#define GRPC_CODES 17
#define KUBE_RESOURCES 24
#define KUBE_CODES 24
#define WATCH_RESOURCES 24
#define SEEN_SLOTS 1024
#define SEEN_PROBE 8

enum verb { V_GET, V_LIST, V_WATCH, V_CREATE, V_UPDATE, V_PATCH, V_DELETE, V_OTHER, N_VERBS };
static const char *const verb_names[N_VERBS] = {"get",    "list",  "watch",  "create",
                                                "update", "patch", "delete", "other"};

/* Bucket upper bounds: the number for arithmetic and its text for the le label. */
struct bucket {
    double le;
    const char *text;
};
static const struct bucket csi_buckets[] = {
    {0.001, "0.001"}, {0.0025, "0.0025"}, {0.005, "0.005"}, {0.01, "0.01"}, {0.025, "0.025"},
    {0.05, "0.05"},   {0.1, "0.1"},       {0.25, "0.25"},   {0.5, "0.5"},   {1, "1"},
    {2.5, "2.5"},     {5, "5"},           {10, "10"},       {30, "30"},     {60, "60"},
};
#define N_CSI_BUCKETS (sizeof(csi_buckets) / sizeof(csi_buckets[0]))
static const struct bucket bound_buckets[] = {
    {0.1, "0.1"}, {0.25, "0.25"}, {0.5, "0.5"},   {1, "1"},   {2.5, "2.5"},
    {5, "5"},     {10, "10"},     {30, "30"},     {60, "60"}, {120, "120"},
    {300, "300"}, {600, "600"},   {1800, "1800"},
};
#define N_BOUND_BUCKETS (sizeof(bound_buckets) / sizeof(bound_buckets[0]))

struct label_slot {
    _Atomic int state;
    char name[LABEL_MAX];
};

/* A histogram's cells: buckets[n] is the +Inf bucket. */
#define HIST(nb)                                                                                   \
    struct {                                                                                       \
        _Atomic uint64_t buckets[(nb) + 1];                                                        \
        _Atomic uint64_t sum_ns;                                                                   \
    }

struct seen {
    uint64_t hash; /* 0 = empty */
    uint64_t at;   /* metrics_now() when first seen */
};

static struct registry {
    struct label_slot methods[CSI_METHODS];
    _Atomic uint64_t csi_calls[CSI_METHODS + 1][GRPC_CODES];
    HIST(N_CSI_BUCKETS) csi_latency[CSI_METHODS + 1];

    struct label_slot kube_resources[KUBE_RESOURCES];
    struct label_slot kube_codes[KUBE_CODES];
    _Atomic uint64_t kube_requests[N_VERBS][KUBE_RESOURCES + 1][KUBE_CODES + 1];

    struct label_slot watch_resources[WATCH_RESOURCES];
    _Atomic uint64_t watch_restarts[WATCH_RESOURCES + 1];

    _Atomic uint64_t queue_depth;
    HIST(N_BOUND_BUCKETS) time_to_bound;

    pthread_mutex_t seen_mu;
    struct seen seen[SEEN_SLOTS];
} reg = {.seen_mu = PTHREAD_MUTEX_INITIALIZER};

uint64_t metrics_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void inc(_Atomic uint64_t *cell, uint64_t by)
{
    atomic_fetch_add_explicit(cell, by, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *cell)
{
    return atomic_load_explicit(cell, memory_order_relaxed);
}

/* The slot of value s in t (cap slots), claiming one if needed; cap when the table is full. */
static size_t label_index(struct label_slot *t, size_t cap, const char *s)
{
    char v[LABEL_MAX];

    snprintf(v, sizeof(v), "%s", s);
    for (size_t i = 0; i < cap; i++) {
        int st = atomic_load_explicit(&t[i].state, memory_order_acquire);

        if (st == 0) {
            int expected = 0;
            if (atomic_compare_exchange_strong_explicit(
                    &t[i].state, &expected, 1, memory_order_acquire, memory_order_acquire)) {
                memcpy(t[i].name, v, sizeof(v));
                atomic_store_explicit(&t[i].state, 2, memory_order_release);
                return i;
            }
            st = expected;
        }
        while (st == 1) {
            sched_yield();
            st = atomic_load_explicit(&t[i].state, memory_order_acquire);
        }
        if (strcmp(t[i].name, v) == 0)
            return i;
    }
    return cap;
}

/* The name of slot i of t for rendering, or NULL when it is not ready. i == cap is "other". */
static const char *label_name(struct label_slot *t, size_t cap, size_t i)
{
    if (i == cap)
        return "other";
    return atomic_load_explicit(&t[i].state, memory_order_acquire) == 2 ? t[i].name : NULL;
}

static void hist_observe(_Atomic uint64_t *buckets, const struct bucket *b, size_t nb,
                         _Atomic uint64_t *sum_ns, uint64_t ns)
{
    double s = (double)ns / 1e9;
    size_t i = 0;

    while (i < nb && s > b[i].le)
        i++;
    inc(&buckets[i], 1);
    inc(sum_ns, ns);
}

void metrics_csi_call(const char *method, int code, uint64_t start)
{
    uint64_t now = metrics_now();
    size_t m = label_index(reg.methods, CSI_METHODS, method ? method : "unknown");

    if (code < 0 || code >= GRPC_CODES)
        code = GRPC_STATUS_UNKNOWN;
    inc(&reg.csi_calls[m][code], 1);
    hist_observe(reg.csi_latency[m].buckets, csi_buckets, N_CSI_BUCKETS, &reg.csi_latency[m].sum_ns,
                 now > start ? now - start : 0);
}

/* Copy segment [s, e) into buf (size n, cut to fit). */
static void copy_seg(char *buf, size_t n, const char *s, const char *e)
{
    size_t len = (size_t)(e - s);

    if (len >= n)
        len = n - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
}

/*
 * Resource and whether a single object is named, from an API path:
 *   /api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUB]]
 *   /apis/GROUP/VERSION[/namespaces/NS]/RESOURCE[/NAME[/SUB]]
 * "/api/v1/namespaces/NS" itself names a namespace. Anything else is resource "other".
 */
static void parse_path(const char *path_query, char *res, size_t n, bool *ret_named)
{
    const char *seg[8], *end[8];
    size_t nseg = 0, skip;
    const char *p = path_query, *stop = strchr(path_query, '?');

    if (!stop)
        stop = path_query + strlen(path_query);
    while (p < stop && nseg < 8) {
        while (p < stop && *p == '/')
            p++;
        if (p == stop)
            break;
        seg[nseg] = p;
        while (p < stop && *p != '/')
            p++;
        end[nseg++] = p;
    }
    snprintf(res, n, "other");
    *ret_named = false;
#define SEG_IS(i, lit)                                                                             \
    ((size_t)(end[i] - seg[i]) == sizeof(lit) - 1 && memcmp(seg[i], lit, sizeof(lit) - 1) == 0)
    if (nseg >= 1 && SEG_IS(0, "api"))
        skip = 2;
    else if (nseg >= 1 && SEG_IS(0, "apis"))
        skip = 3;
    else
        return;
    if (nseg <= skip)
        return;
    if (SEG_IS(skip, "namespaces") && nseg >= skip + 3)
        skip += 2;
#undef SEG_IS
    copy_seg(res, n, seg[skip], end[skip]);
    *ret_named = nseg > skip + 1;
}

static bool query_has_watch(const char *path_query)
{
    const char *q = strchr(path_query, '?');

    while (q) {
        q++;
        if (strncmp(q, "watch=true", 10) == 0 || strncmp(q, "watch=1", 7) == 0)
            return true;
        q = strchr(q, '&');
    }
    return false;
}

void metrics_kube_request(const char *method, const char *path_query, long http)
{
    char res[LABEL_MAX], code[16];
    bool named;
    enum verb v;

    parse_path(path_query, res, sizeof(res), &named);
    if (strcmp(method, "GET") == 0)
        v = query_has_watch(path_query) ? V_WATCH : named ? V_GET : V_LIST;
    else if (strcmp(method, "POST") == 0)
        v = V_CREATE;
    else if (strcmp(method, "PUT") == 0)
        v = V_UPDATE;
    else if (strcmp(method, "PATCH") == 0)
        v = V_PATCH;
    else if (strcmp(method, "DELETE") == 0)
        v = V_DELETE;
    else
        v = V_OTHER;
    if (http <= 0 || http > 999)
        snprintf(code, sizeof(code), "error");
    else
        snprintf(code, sizeof(code), "%ld", http);
    size_t r = label_index(reg.kube_resources, KUBE_RESOURCES, res);
    size_t c = label_index(reg.kube_codes, KUBE_CODES, code);
    inc(&reg.kube_requests[v][r][c], 1);
}

void metrics_watch_restart(const char *resource)
{
    inc(&reg.watch_restarts[label_index(reg.watch_resources, WATCH_RESOURCES, resource)], 1);
}

void metrics_prov_queue_depth(size_t depth)
{
    atomic_store_explicit(&reg.queue_depth, depth, memory_order_relaxed);
}

/* FNV-1a, never 0 (0 marks an empty slot). */
static uint64_t uid_hash(const char *s)
{
    uint64_t h = 14695981039346656037u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h ? h : 1;
}

void metrics_claim_seen(const char *uid)
{
    if (!uid || !uid[0])
        return;
    uint64_t h = uid_hash(uid), now = metrics_now();
    size_t base = (size_t)(h % SEEN_SLOTS), pick = base;

    pthread_mutex_lock(&reg.seen_mu);
    for (size_t k = 0; k < SEEN_PROBE; k++) {
        struct seen *s = &reg.seen[(base + k) % SEEN_SLOTS];
        if (s->hash == h)
            goto out; /* the first sighting counts */
        if (reg.seen[pick].hash != 0 && (s->hash == 0 || s->at < reg.seen[pick].at))
            pick = (base + k) % SEEN_SLOTS; /* a free slot, else the oldest */
    }
    reg.seen[pick] = (struct seen){.hash = h, .at = now};
out:
    pthread_mutex_unlock(&reg.seen_mu);
}

void metrics_claim_provisioned(const char *uid)
{
    if (!uid || !uid[0])
        return;
    uint64_t h = uid_hash(uid), at = 0, now = metrics_now();
    size_t base = (size_t)(h % SEEN_SLOTS);
    bool found = false;

    pthread_mutex_lock(&reg.seen_mu);
    for (size_t k = 0; k < SEEN_PROBE; k++) {
        struct seen *s = &reg.seen[(base + k) % SEEN_SLOTS];
        if (s->hash == h) {
            at = s->at;
            *s = (struct seen){0};
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&reg.seen_mu);
    if (found)
        hist_observe(reg.time_to_bound.buckets, bound_buckets, N_BOUND_BUCKETS,
                     &reg.time_to_bound.sum_ns, now > at ? now - at : 0);
}

/* ---- rendering ---- */

struct out {
    char *buf; /* owned */
    size_t len, cap;
    int err; /* first error; later appends do nothing */
};

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->err)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->err = -EINVAL;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = o->cap * 2;
        while (ncap < o->len + (size_t)n + 1)
            ncap *= 2;
        if (ncap > METRICS_MAX_OUTPUT) {
            o->err = -EMSGSIZE;
            return;
        }
        char *nb = realloc(o->buf, ncap);
        if (!nb) {
            o->err = -ENOMEM;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

size_t metrics_escape_label(char *buf, size_t n, const char *v)
{
    size_t len = 0;

    if (n == 0)
        return 0;
    for (; *v; v++) {
        const char *rep = NULL;
        char one[2] = {*v, '\0'};

        if (*v == '\\')
            rep = "\\\\";
        else if (*v == '"')
            rep = "\\\"";
        else if (*v == '\n')
            rep = "\\n";
        else
            rep = one;
        size_t k = strlen(rep);
        if (len + k >= n)
            break;
        memcpy(buf + len, rep, k);
        len += k;
    }
    buf[len] = '\0';
    return len;
}

/* An escaped label value in a caller's buffer: label values are at most LABEL_MAX bytes, or the
 * short strings of metrics_extra (cut at 2 * LABEL_MAX escaped bytes). */
#define ESC_MAX (2 * LABEL_MAX + 1)

static void header(struct out *o, const char *name, const char *type, const char *help)
{
    out_printf(o, "# HELP ordinal_%s %s\n# TYPE ordinal_%s %s\n", name, help, name, type);
}

/* One histogram series: labels is "" or `name="value",` (with the trailing comma). */
static void render_hist(struct out *o, const char *name, const char *labels,
                        _Atomic uint64_t *cells, const struct bucket *b, size_t nb,
                        _Atomic uint64_t *sum_ns)
{
    uint64_t cum = 0;
    size_t lablen = strlen(labels);

    for (size_t i = 0; i <= nb; i++) {
        cum += get(&cells[i]);
        out_printf(o, "ordinal_%s_bucket{%sle=\"%s\"} %llu\n", name, labels,
                   i < nb ? b[i].text : "+Inf", (unsigned long long)cum);
    }
    /* _sum and _count carry the labels without the trailing comma, and no braces without */
    int ll = lablen ? (int)lablen - 1 : 0;
    out_printf(o, "ordinal_%s_sum%s%.*s%s %.9f\n", name, ll ? "{" : "", ll, labels, ll ? "}" : "",
               (double)get(sum_ns) / 1e9);
    out_printf(o, "ordinal_%s_count%s%.*s%s %llu\n", name, ll ? "{" : "", ll, labels, ll ? "}" : "",
               (unsigned long long)cum);
}

static void render_csi(struct out *o)
{
    char m[ESC_MAX], labels[ESC_MAX + 16];

    header(o, "csi_calls_total", "counter", "CSI calls answered, by gRPC method and status code.");
    for (size_t i = 0; i <= CSI_METHODS; i++) {
        const char *name = label_name(reg.methods, CSI_METHODS, i);
        if (!name)
            continue;
        metrics_escape_label(m, sizeof(m), name);
        for (int c = 0; c < GRPC_CODES; c++) {
            uint64_t v = get(&reg.csi_calls[i][c]);
            if (v)
                out_printf(o, "ordinal_csi_calls_total{method=\"%s\",code=\"%s\"} %llu\n", m,
                           csi_status_name((grpc_status_code)c), (unsigned long long)v);
        }
    }
    header(o, "csi_call_duration_seconds", "histogram",
           "Time from a CSI call's arrival to its reply, by gRPC method.");
    for (size_t i = 0; i <= CSI_METHODS; i++) {
        const char *name = label_name(reg.methods, CSI_METHODS, i);
        uint64_t any = 0;
        if (!name)
            continue;
        for (size_t b = 0; b <= N_CSI_BUCKETS; b++)
            any |= get(&reg.csi_latency[i].buckets[b]);
        if (!any)
            continue;
        metrics_escape_label(m, sizeof(m), name);
        snprintf(labels, sizeof(labels), "method=\"%s\",", m);
        render_hist(o, "csi_call_duration_seconds", labels, reg.csi_latency[i].buckets, csi_buckets,
                    N_CSI_BUCKETS, &reg.csi_latency[i].sum_ns);
    }
}

static void render_kube(struct out *o)
{
    char r[ESC_MAX], c[ESC_MAX];

    header(o, "kube_requests_total", "counter",
           "Requests to the Kubernetes API server (retries included), by verb, resource and "
           "HTTP code (error: no answer).");
    for (size_t ri = 0; ri <= KUBE_RESOURCES; ri++) {
        const char *rn = label_name(reg.kube_resources, KUBE_RESOURCES, ri);
        if (!rn)
            continue;
        metrics_escape_label(r, sizeof(r), rn);
        for (size_t ci = 0; ci <= KUBE_CODES; ci++) {
            const char *cn = label_name(reg.kube_codes, KUBE_CODES, ci);
            if (!cn)
                continue;
            metrics_escape_label(c, sizeof(c), cn);
            for (int v = 0; v < N_VERBS; v++) {
                uint64_t n = get(&reg.kube_requests[v][ri][ci]);
                if (n)
                    out_printf(o,
                               "ordinal_kube_requests_total{verb=\"%s\",resource=\"%s\","
                               "code=\"%s\"} %llu\n",
                               verb_names[v], r, c, (unsigned long long)n);
            }
        }
    }
    header(o, "kube_watch_restarts_total", "counter",
           "Watches started again after the first one, by resource.");
    for (size_t i = 0; i <= WATCH_RESOURCES; i++) {
        const char *rn = label_name(reg.watch_resources, WATCH_RESOURCES, i);
        uint64_t n = get(&reg.watch_restarts[i]);
        if (!rn || !n)
            continue;
        metrics_escape_label(r, sizeof(r), rn);
        out_printf(o, "ordinal_kube_watch_restarts_total{resource=\"%s\"} %llu\n", r,
                   (unsigned long long)n);
    }
}

static void render_extra(struct out *o, const struct metrics_extra *x)
{
    char a[ESC_MAX], b[ESC_MAX];

    header(o, "volumes", "gauge", "Volumes held by each backend, by state.");
    for (size_t i = 0; i < x->n_volumes; i++) {
        metrics_escape_label(a, sizeof(a), x->volumes[i].backend);
        metrics_escape_label(b, sizeof(b), x->volumes[i].state);
        out_printf(o, "ordinal_volumes{backend=\"%s\",state=\"%s\"} %llu\n", a, b,
                   (unsigned long long)x->volumes[i].n);
    }
    if (x->n_durability) {
        header(o, "backend_durable_waits_total", "counter",
               "Operations that waited for their changes to become durable, by backend.");
        for (size_t i = 0; i < x->n_durability; i++) {
            metrics_escape_label(a, sizeof(a), x->durability[i].backend);
            out_printf(o, "ordinal_backend_durable_waits_total{backend=\"%s\"} %llu\n", a,
                       (unsigned long long)x->durability[i].waits);
        }
        header(o, "backend_flushes_total", "counter",
               "Device flushes that made those changes durable (shared by the operations in "
               "flight), by backend.");
        for (size_t i = 0; i < x->n_durability; i++) {
            metrics_escape_label(a, sizeof(a), x->durability[i].backend);
            out_printf(o, "ordinal_backend_flushes_total{backend=\"%s\"} %llu\n", a,
                       (unsigned long long)x->durability[i].flushes);
        }
    }
    if (x->kube_configured && x->controller) {
        header(o, "leader", "gauge", "1 while this instance holds the leader Lease, else 0.");
        out_printf(o, "ordinal_leader %d\n", x->leader ? 1 : 0);
    }
    if (x->kube_configured) {
        header(o, "kube_events_dropped_total", "counter",
               "Kubernetes Events not sent because the API server was too slow or away.");
        out_printf(o, "ordinal_kube_events_dropped_total %llu\n",
                   (unsigned long long)x->events_dropped);
    }
    if (x->dir_capacity_enforced >= 0) {
        header(o, "dir_capacity_enforced", "gauge",
               "1 when the directory backend's root enforces volume capacity by project quotas.");
        out_printf(o, "ordinal_dir_capacity_enforced %d\n", x->dir_capacity_enforced ? 1 : 0);
    }
    if (x->version) {
        header(o, "build_info", "gauge", "Always 1; the version label says which build runs.");
        metrics_escape_label(a, sizeof(a), x->version);
        out_printf(o, "ordinal_build_info{version=\"%s\"} 1\n", a);
    }
}

int metrics_render(const struct metrics_extra *extra, char **ret, size_t *ret_len)
{
    static const struct metrics_extra none = {.dir_capacity_enforced = -1};
    struct out o = {.cap = 16 * 1024};

    o.buf = malloc(o.cap);
    if (!o.buf)
        return -ENOMEM;
    o.buf[0] = '\0';
    render_csi(&o);
    render_kube(&o);
    header(&o, "provision_queue_depth", "gauge", "Keys waiting in the provisioner's work queue.");
    out_printf(&o, "ordinal_provision_queue_depth %llu\n",
               (unsigned long long)atomic_load_explicit(&reg.queue_depth, memory_order_relaxed));
    header(&o, "provision_time_to_bound_seconds", "histogram",
           "Time from a claim first seen unbound to its PersistentVolume created.");
    render_hist(&o, "provision_time_to_bound_seconds", "", reg.time_to_bound.buckets, bound_buckets,
                N_BOUND_BUCKETS, &reg.time_to_bound.sum_ns);
    render_extra(&o, extra ? extra : &none);
    if (o.err) {
        free(o.buf);
        return o.err;
    }
    *ret = o.buf;
    *ret_len = o.len;
    return 0;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&reg.seen_mu);
    memset(reg.seen, 0, sizeof(reg.seen));
    pthread_mutex_unlock(&reg.seen_mu);
    /* Everything but the mutex and the claim table is atomics: clear them field by field. */
    memset(&reg.methods, 0, sizeof(reg.methods));
    memset(&reg.csi_calls, 0, sizeof(reg.csi_calls));
    memset(&reg.csi_latency, 0, sizeof(reg.csi_latency));
    memset(&reg.kube_resources, 0, sizeof(reg.kube_resources));
    memset(&reg.kube_codes, 0, sizeof(reg.kube_codes));
    memset(&reg.kube_requests, 0, sizeof(reg.kube_requests));
    memset(&reg.watch_resources, 0, sizeof(reg.watch_resources));
    memset(&reg.watch_restarts, 0, sizeof(reg.watch_restarts));
    memset(&reg.time_to_bound, 0, sizeof(reg.time_to_bound));
    atomic_store(&reg.queue_depth, 0);
}
