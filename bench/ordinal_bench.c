/*
 * ordinal-bench: drives any CSI driver over its unix socket and reports what it measured.
 *
 * It only speaks CSI (csi_client.h): nothing here knows Ordinal's internals, so the same command
 * measures another driver on the same machine.
 *
 * A run: N worker threads (--concurrency), each with its own completion queue and one call in
 * flight, share one channel. Phases, separated by a barrier that the main thread joins too:
 *   setup    each worker pre-creates its share of volumes (and stages/publishes them for
 *            stats), so that nothing of it is measured;
 *   warm-up  operations that are not recorded;
 *   measure  the main thread samples the driver (--pid) and starts the clock; workers claim
 *            operations (an atomic counter, or until the deadline) and record every RPC's
 *            latency and status; the main thread stops the clock and samples again;
 *   teardown unpublish, unstage and delete what setup made (unless --keep).
 * The startup scenario has no workers: the main thread spawns the driver, probes it until it
 * answers ready, samples its memory, and stops it, --ops times.
 *
 * Threading: workers share only the struct run counters (atomics) and the first-error table
 * (run.mu). Each worker's samples are its own until the main thread merges them after join.
 */
#include "bench_args.h"
#include "bench_proc.h"
#include "bench_stats.h"
#include "csi_client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "csi.pb-c.h"

extern char **environ;

/* The RPCs a run records, in report order. */
enum rpc {
    RPC_CREATE,
    RPC_DELETE,
    RPC_STAGE,
    RPC_PUBLISH,
    RPC_UNPUBLISH,
    RPC_UNSTAGE,
    RPC_STATS,
    RPC_LIST,
    RPC_PROBE,
    RPC_KINDS
};

static const char *const rpc_names[RPC_KINDS] = {
    "CreateVolume",       "DeleteVolume",        "NodeStageVolume",
    "NodePublishVolume",  "NodeUnpublishVolume", "NodeUnstageVolume",
    "NodeGetVolumeStats", "ListVolumes",         "Probe",
};

/* Local failures (no status from the driver): -errno of csi_call, counted apart. */
#define LOCAL_ERROR_CODE CSI_CODE_COUNT

static char *unconst(const char *s)
{
    return (char *)(uintptr_t)s; /* protobuf-c strings are char *; we never let it write */
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- volumes made in setup ---- */

struct vol {
    char *id;             /* owned */
    char staging[256];    /* staging_target_path ("" without STAGE_UNSTAGE) */
    char target_dir[256]; /* parent of target_path, made by us as a CO would */
    char target[272];     /* target_path, made by the driver */
    bool created, staged, published;
    /* volume_context, converted once into the entry types of the two node requests */
    size_t n_ctx;
    Csi__V1__NodeStageVolumeRequest__VolumeContextEntry *stage_ctx;    /* owned array */
    Csi__V1__NodeStageVolumeRequest__VolumeContextEntry **stage_ctx_p; /* owned array */
    Csi__V1__NodePublishVolumeRequest__VolumeContextEntry *pub_ctx;    /* owned array */
    Csi__V1__NodePublishVolumeRequest__VolumeContextEntry **pub_ctx_p; /* owned array */
    Csi__V1__CreateVolumeResponse *resp; /* owned: the strings above point into it */
};

struct run;

struct worker {
    unsigned idx;
    pthread_t th;
    struct run *run;           /* borrowed */
    struct csi_caller *caller; /* owned */
    struct lat_samples lat[RPC_KINDS];
    struct lat_samples op_lat;
    uint64_t errors[RPC_KINDS][CSI_CODE_COUNT + 1];
    uint64_t ops_ok, ops_failed;
    uint64_t ops_by_kind[MIX_KINDS];
    uint64_t seq;    /* fresh names */
    uint64_t rng;    /* xorshift state, mixed scenario */
    size_t next_vol; /* round robin over this worker's volumes */
    size_t *vols;    /* owned: indexes into run.vols of this worker's volumes */
    size_t n_vols;
    size_t cycle_vol; /* mixed: volume for publish cycles, SIZE_MAX when none */
    uint64_t listed;  /* entries seen by the last full listing */
    bool recording;   /* measure phase: record latencies and statuses */
    /* CreateVolume scratch: parameters with {name} replaced */
    Csi__V1__CreateVolumeRequest__ParametersEntry params[BENCH_MAX_PARAMS];
    Csi__V1__CreateVolumeRequest__ParametersEntry *params_p[BENCH_MAX_PARAMS];
    char param_values[BENCH_MAX_PARAMS][BENCH_MAX_PARAM_LEN + 64];
};

struct run {
    const struct bench_args *a; /* borrowed */
    struct csi_channel *ch;     /* owned */
    char run_id[16];
    char work_dir[256];
    bool own_work_dir;
    bool node_stage;  /* the driver advertises STAGE_UNSTAGE_VOLUME */
    struct vol *vols; /* owned, n_vols */
    size_t n_vols;
    struct worker *workers; /* owned, a->concurrency */
    pthread_barrier_t barrier;
    atomic_bool failed; /* setup failed somewhere: skip to teardown */
    atomic_uint_fast64_t claimed;
    uint64_t total;       /* operations of the current phase, 0 = by time */
    uint64_t deadline_ns; /* end of the current phase when by time */
    pthread_mutex_t mu;   /* guards first_error */
    char first_error[RPC_KINDS][300];
    /* the capability every request carries */
    Csi__V1__VolumeCapability cap;
    Csi__V1__VolumeCapability *cap_p;
    Csi__V1__VolumeCapability__AccessMode access;
    Csi__V1__VolumeCapability__MountVolume mount;
    Csi__V1__VolumeCapability__BlockVolume block;
    Csi__V1__CapacityRange range;
};

/* ---- one RPC, recorded ---- */

static void note_error(struct run *r, enum rpc k, int code, const char *msg)
{
    pthread_mutex_lock(&r->mu);
    if (!r->first_error[k][0])
        snprintf(r->first_error[k], sizeof(r->first_error[k]), "%s: %s",
                 code == LOCAL_ERROR_CODE ? "LOCAL" : csi_code_name(code), msg);
    pthread_mutex_unlock(&r->mu);
}

/* Calls method and records latency and status under kind k (when recording). Returns the
 * gRPC code, LOCAL_ERROR_CODE for a local failure. *ret_resp as csi_call. */
static int rpc(struct worker *w, enum rpc k, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_resp)
{
    struct csi_status st;
    uint64_t t0 = now_ns(), t1;
    int r, code;

    r = csi_call(w->caller, method, req, desc, w->run->a->timeout_ms, false, &st, ret_resp);
    t1 = now_ns();
    if (r < 0) {
        code = LOCAL_ERROR_CODE;
        snprintf(st.message, sizeof(st.message), "%s", strerror(-r));
        if (ret_resp)
            *ret_resp = NULL;
    } else {
        /* a driver may send any number: keep the table index in range */
        code = st.code >= 0 && st.code < CSI_CODE_COUNT ? st.code : 2 /* UNKNOWN */;
    }
    if (code != CSI_CODE_OK)
        note_error(w->run, k, code, st.message);
    if (w->recording) {
        lat_add(&w->lat[k], t1 - t0);
        w->errors[k][code]++;
    }
    return code;
}

static void make_name(struct worker *w, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s-%s-%u-%" PRIu64, w->run->a->name_prefix, w->run->run_id, w->idx,
             w->seq++);
}

/* CreateVolume name; on OK *ret_resp is the response (caller frees). Returns the code. */
static int create_volume(struct worker *w, const char *name, Csi__V1__CreateVolumeResponse **ret)
{
    const struct bench_args *a = w->run->a;
    Csi__V1__CreateVolumeRequest req = CSI__V1__CREATE_VOLUME_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int code;

    req.name = unconst(name);
    req.n_volume_capabilities = 1;
    req.volume_capabilities = &w->run->cap_p;
    if (a->capacity_bytes > 0)
        req.capacity_range = &w->run->range;
    for (size_t i = 0; i < a->n_params; i++) {
        const char *v = a->params[i].value, *hole = strstr(v, "{name}");
        char *out = w->param_values[i];

        if (hole)
            snprintf(out, sizeof(w->param_values[i]), "%.*s%s%s", (int)(hole - v), v, name,
                     hole + strlen("{name}"));
        else
            snprintf(out, sizeof(w->param_values[i]), "%s", v);
        w->params[i].value = out;
    }
    req.n_parameters = a->n_params;
    req.parameters = a->n_params ? w->params_p : NULL;
    code = rpc(w, RPC_CREATE, CSI_CONTROLLER_CREATE_VOLUME, &req.base,
               &csi__v1__create_volume_response__descriptor, &resp);
    if (code == CSI_CODE_OK) {
        Csi__V1__CreateVolumeResponse *cr = (Csi__V1__CreateVolumeResponse *)resp;

        if (!cr->volume || !cr->volume->volume_id || !cr->volume->volume_id[0]) {
            note_error(w->run, RPC_CREATE, LOCAL_ERROR_CODE, "response without a volume_id");
            protobuf_c_message_free_unpacked(resp, NULL);
            return LOCAL_ERROR_CODE;
        }
        *ret = cr;
    }
    return code;
}

static int delete_volume(struct worker *w, const char *id)
{
    Csi__V1__DeleteVolumeRequest req = CSI__V1__DELETE_VOLUME_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int code;

    req.volume_id = unconst(id);
    code = rpc(w, RPC_DELETE, CSI_CONTROLLER_DELETE_VOLUME, &req.base,
               &csi__v1__delete_volume_response__descriptor, &resp);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return code;
}

static int stage(struct worker *w, struct vol *v)
{
    Csi__V1__NodeStageVolumeRequest req = CSI__V1__NODE_STAGE_VOLUME_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int code;

    req.volume_id = v->id;
    req.staging_target_path = v->staging;
    req.volume_capability = w->run->cap_p;
    req.n_volume_context = v->n_ctx;
    req.volume_context = v->stage_ctx_p;
    code = rpc(w, RPC_STAGE, CSI_NODE_STAGE_VOLUME, &req.base,
               &csi__v1__node_stage_volume_response__descriptor, &resp);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (code == CSI_CODE_OK)
        v->staged = true;
    return code;
}

static int unstage(struct worker *w, struct vol *v)
{
    Csi__V1__NodeUnstageVolumeRequest req = CSI__V1__NODE_UNSTAGE_VOLUME_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int code;

    req.volume_id = v->id;
    req.staging_target_path = v->staging;
    code = rpc(w, RPC_UNSTAGE, CSI_NODE_UNSTAGE_VOLUME, &req.base,
               &csi__v1__node_unstage_volume_response__descriptor, &resp);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (code == CSI_CODE_OK)
        v->staged = false;
    return code;
}

static int publish(struct worker *w, struct vol *v)
{
    Csi__V1__NodePublishVolumeRequest req = CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int code;

    req.volume_id = v->id;
    req.staging_target_path = v->staging;
    req.target_path = v->target;
    req.volume_capability = w->run->cap_p;
    req.readonly = w->run->a->access_mode == 2 || w->run->a->access_mode == 3;
    req.n_volume_context = v->n_ctx;
    req.volume_context = v->pub_ctx_p;
    code = rpc(w, RPC_PUBLISH, CSI_NODE_PUBLISH_VOLUME, &req.base,
               &csi__v1__node_publish_volume_response__descriptor, &resp);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (code == CSI_CODE_OK)
        v->published = true;
    return code;
}

static int unpublish(struct worker *w, struct vol *v)
{
    Csi__V1__NodeUnpublishVolumeRequest req = CSI__V1__NODE_UNPUBLISH_VOLUME_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int code;

    req.volume_id = v->id;
    req.target_path = v->target;
    code = rpc(w, RPC_UNPUBLISH, CSI_NODE_UNPUBLISH_VOLUME, &req.base,
               &csi__v1__node_unpublish_volume_response__descriptor, &resp);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (code == CSI_CODE_OK)
        v->published = false;
    return code;
}

static int volume_stats(struct worker *w, struct vol *v)
{
    Csi__V1__NodeGetVolumeStatsRequest req = CSI__V1__NODE_GET_VOLUME_STATS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int code;

    req.volume_id = v->id;
    req.volume_path = v->target;
    req.staging_target_path = v->staging;
    code = rpc(w, RPC_STATS, CSI_NODE_GET_VOLUME_STATS, &req.base,
               &csi__v1__node_get_volume_stats_response__descriptor, &resp);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return code;
}

/* One full listing, page after page; worker.listed = entries seen. Returns the first non-OK
 * code, or OK. A listing is cut at 1,000,000 pages (a driver that never ends its tokens). */
static int list_all(struct worker *w)
{
    char token[1024] = "";
    uint64_t entries = 0;

    for (unsigned pages = 0; pages < 1000000; pages++) {
        Csi__V1__ListVolumesRequest req = CSI__V1__LIST_VOLUMES_REQUEST__INIT;
        Csi__V1__ListVolumesResponse *lr;
        ProtobufCMessage *resp = NULL;
        int code;

        req.max_entries = (int32_t)w->run->a->page_size;
        req.starting_token = token;
        code = rpc(w, RPC_LIST, CSI_CONTROLLER_LIST_VOLUMES, &req.base,
                   &csi__v1__list_volumes_response__descriptor, &resp);
        if (code != CSI_CODE_OK)
            return code;
        lr = (Csi__V1__ListVolumesResponse *)resp;
        entries += lr->n_entries;
        if (!lr->next_token || !lr->next_token[0] || strlen(lr->next_token) >= sizeof(token)) {
            protobuf_c_message_free_unpacked(resp, NULL);
            break;
        }
        snprintf(token, sizeof(token), "%s", lr->next_token);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    w->listed = entries;
    return CSI_CODE_OK;
}

/* ---- setup and teardown of pre-created volumes ---- */

static void vol_release(struct vol *v)
{
    free(v->stage_ctx);
    free(v->stage_ctx_p);
    free(v->pub_ctx);
    free(v->pub_ctx_p);
    if (v->resp)
        protobuf_c_message_free_unpacked(&v->resp->base, NULL);
    memset(v, 0, sizeof(*v));
}

/* Keeps resp in v, points id and the context entries into it. 0 or -ENOMEM. */
static int vol_adopt(struct vol *v, Csi__V1__CreateVolumeResponse *resp)
{
    Csi__V1__Volume *vol = resp->volume;
    size_t n = vol->n_volume_context;

    v->resp = resp;
    v->id = vol->volume_id;
    v->created = true;
    if (n == 0)
        return 0;
    v->stage_ctx = calloc(n, sizeof(*v->stage_ctx));
    v->stage_ctx_p = calloc(n, sizeof(*v->stage_ctx_p));
    v->pub_ctx = calloc(n, sizeof(*v->pub_ctx));
    v->pub_ctx_p = calloc(n, sizeof(*v->pub_ctx_p));
    if (!v->stage_ctx || !v->stage_ctx_p || !v->pub_ctx || !v->pub_ctx_p)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        csi__v1__node_stage_volume_request__volume_context_entry__init(&v->stage_ctx[i]);
        v->stage_ctx[i].key = vol->volume_context[i]->key;
        v->stage_ctx[i].value = vol->volume_context[i]->value;
        v->stage_ctx_p[i] = &v->stage_ctx[i];
        csi__v1__node_publish_volume_request__volume_context_entry__init(&v->pub_ctx[i]);
        v->pub_ctx[i].key = vol->volume_context[i]->key;
        v->pub_ctx[i].value = vol->volume_context[i]->value;
        v->pub_ctx_p[i] = &v->pub_ctx[i];
    }
    v->n_ctx = n;
    return 0;
}

static bool needs_node_paths(const struct bench_args *a)
{
    return a->scenario == BENCH_PUBLISH || a->scenario == BENCH_STATS ||
           (a->scenario == BENCH_MIXED && (a->mix[MIX_PUBLISH] || a->mix[MIX_STATS]));
}

/* Creates volume i (and its directories, as a CO would: the staging directory and the parent
 * of the target). 0 or -1 (the error is in first_error). */
static int setup_volume(struct worker *w, size_t i, bool publish_it)
{
    struct run *r = w->run;
    struct vol *v = &r->vols[i];
    Csi__V1__CreateVolumeResponse *resp = NULL;
    char name[128];
    int n1, n2, n3;

    snprintf(name, sizeof(name), "%s-%s-p%zu", r->a->name_prefix, r->run_id, i);
    if (create_volume(w, name, &resp) != CSI_CODE_OK)
        return -1;
    if (vol_adopt(v, resp) < 0) {
        note_error(r, RPC_CREATE, LOCAL_ERROR_CODE, "out of memory");
        return -1;
    }
    if (!needs_node_paths(r->a))
        return 0;
    n1 = snprintf(v->staging, sizeof(v->staging), "%s/staging/%zu", r->work_dir, i);
    n2 = snprintf(v->target_dir, sizeof(v->target_dir), "%s/target/%zu", r->work_dir, i);
    n3 = snprintf(v->target, sizeof(v->target), "%s/mnt", v->target_dir);
    if (n1 < 0 || (size_t)n1 >= sizeof(v->staging) || n2 < 0 ||
        (size_t)n2 >= sizeof(v->target_dir) || n3 < 0 || (size_t)n3 >= sizeof(v->target)) {
        note_error(r, RPC_STAGE, LOCAL_ERROR_CODE, "work directory path too long");
        return -1;
    }
    if ((mkdir(v->staging, 0750) < 0 && errno != EEXIST) ||
        (mkdir(v->target_dir, 0750) < 0 && errno != EEXIST)) {
        note_error(r, RPC_STAGE, LOCAL_ERROR_CODE, strerror(errno));
        return -1;
    }
    if (!r->node_stage)
        v->staging[0] = '\0';
    if (!publish_it)
        return 0;
    if (r->node_stage && stage(w, v) != CSI_CODE_OK)
        return -1;
    return publish(w, v) == CSI_CODE_OK ? 0 : -1;
}

static void teardown_volume(struct worker *w, struct vol *v)
{
    if (!v->created)
        return;
    if (v->published)
        unpublish(w, v);
    if (v->staged)
        unstage(w, v);
    if (v->target_dir[0])
        rmdir(v->target_dir);
    if (v->staging[0])
        rmdir(v->staging);
    if (!w->run->a->keep && !v->published && !v->staged)
        delete_volume(w, v->id);
}

/* ---- the operations ---- */

static bool claim(struct run *r)
{
    if (atomic_load(&r->failed))
        return false;
    if (r->total)
        return atomic_fetch_add(&r->claimed, 1) < r->total;
    return now_ns() < r->deadline_ns;
}

static struct vol *next_vol(struct worker *w)
{
    struct vol *v = &w->run->vols[w->vols[w->next_vol]];

    w->next_vol = (w->next_vol + 1) % w->n_vols;
    return v;
}

static bool op_create_delete(struct worker *w)
{
    Csi__V1__CreateVolumeResponse *resp = NULL;
    char name[128];
    bool ok;

    make_name(w, name, sizeof(name));
    if (create_volume(w, name, &resp) != CSI_CODE_OK)
        return false;
    ok = delete_volume(w, resp->volume->volume_id) == CSI_CODE_OK;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return ok;
}

static bool op_create(struct worker *w)
{
    Csi__V1__CreateVolumeResponse *resp = NULL;
    char name[128];

    make_name(w, name, sizeof(name));
    if (create_volume(w, name, &resp) != CSI_CODE_OK)
        return false;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return true;
}

/* Stage, publish, unpublish, unstage; undoes what it did when a step fails. */
static bool op_publish_cycle(struct worker *w, struct vol *v)
{
    bool ok = true;

    if (w->run->node_stage && stage(w, v) != CSI_CODE_OK)
        return false;
    if (publish(w, v) != CSI_CODE_OK)
        ok = false;
    if (v->published && unpublish(w, v) != CSI_CODE_OK)
        ok = false;
    if (v->staged && unstage(w, v) != CSI_CODE_OK)
        ok = false;
    return ok;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static enum bench_mix_kind pick(struct worker *w)
{
    const unsigned *m = w->run->a->mix;
    unsigned total = 0, x;

    for (int k = 0; k < MIX_KINDS; k++)
        total += m[k];
    x = (unsigned)(xorshift(&w->rng) % total);
    for (int k = 0; k < MIX_KINDS; k++) {
        if (x < m[k])
            return (enum bench_mix_kind)k;
        x -= m[k];
    }
    return MIX_CREATE_DELETE;
}

static bool run_op(struct worker *w, enum bench_mix_kind *ret_kind)
{
    const struct bench_args *a = w->run->a;
    enum bench_mix_kind kind;

    switch (a->scenario) {
    case BENCH_CREATE_DELETE:
        *ret_kind = MIX_CREATE_DELETE;
        return op_create_delete(w);
    case BENCH_CREATE:
        *ret_kind = MIX_CREATE_DELETE;
        return op_create(w);
    case BENCH_PUBLISH:
        *ret_kind = MIX_PUBLISH;
        return op_publish_cycle(w, next_vol(w));
    case BENCH_STATS:
        *ret_kind = MIX_STATS;
        return volume_stats(w, next_vol(w)) == CSI_CODE_OK;
    case BENCH_LIST:
        *ret_kind = MIX_LIST;
        return list_all(w) == CSI_CODE_OK;
    case BENCH_MIXED:
        kind = pick(w);
        *ret_kind = kind;
        switch (kind) {
        case MIX_CREATE_DELETE:
            return op_create_delete(w);
        case MIX_PUBLISH:
            return op_publish_cycle(w, &w->run->vols[w->cycle_vol]);
        case MIX_STATS:
            return volume_stats(w, next_vol(w)) == CSI_CODE_OK;
        case MIX_LIST:
        case MIX_KINDS:
            break;
        }
        return list_all(w) == CSI_CODE_OK;
    case BENCH_STARTUP:
        break;
    }
    return false;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    const struct bench_args *a = r->a;
    bool publish_all =
        a->scenario == BENCH_STATS || (a->scenario == BENCH_MIXED && a->mix[MIX_STATS]);
    enum bench_mix_kind kind;

    /* setup */
    for (size_t i = 0; i < w->n_vols && !atomic_load(&r->failed); i++)
        if (setup_volume(w, w->vols[i], publish_all) < 0)
            atomic_store(&r->failed, true);
    if (w->cycle_vol != SIZE_MAX && !atomic_load(&r->failed) &&
        setup_volume(w, w->cycle_vol, false) < 0)
        atomic_store(&r->failed, true);
    pthread_barrier_wait(&r->barrier);

    /* warm-up: not recorded */
    while (claim(r))
        run_op(w, &kind);
    pthread_barrier_wait(&r->barrier); /* main: sample, start the clock */
    pthread_barrier_wait(&r->barrier);

    /* measure */
    w->recording = true;
    while (claim(r)) {
        uint64_t t0 = now_ns();
        bool ok = run_op(w, &kind);

        lat_add(&w->op_lat, now_ns() - t0);
        w->ops_by_kind[kind]++;
        if (ok)
            w->ops_ok++;
        else
            w->ops_failed++;
    }
    w->recording = false;
    pthread_barrier_wait(&r->barrier); /* main: stop the clock, sample */
    pthread_barrier_wait(&r->barrier);

    /* teardown */
    for (size_t i = 0; i < w->n_vols; i++)
        teardown_volume(w, &r->vols[w->vols[i]]);
    if (w->cycle_vol != SIZE_MAX)
        teardown_volume(w, &r->vols[w->cycle_vol]);
    return NULL;
}

/* ---- reports ---- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void json_summary(FILE *f, const struct lat_summary *s)
{
    fprintf(f,
            "{\"count\": %" PRIu64 ", \"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, "
            "\"p99\": %.3f, \"max\": %.3f, \"mean\": %.3f}",
            s->count, ms(s->min), ms(s->p50), ms(s->p90), ms(s->p99), ms(s->max), s->mean / 1e6);
}

static void text_summary(FILE *f, const char *name, const struct lat_summary *s)
{
    fprintf(f, "  %-22s %9" PRIu64 " %9.3f %9.3f %9.3f %9.3f %9.3f\n", name, s->count, ms(s->p50),
            ms(s->p90), ms(s->p99), ms(s->max), s->mean / 1e6);
}

static void json_proc(FILE *f, const struct proc_sample *s)
{
    fprintf(f,
            "{\"vm_rss_kib\": %" PRId64 ", \"rss_anon_kib\": %" PRId64
            ", \"rss_file_kib\": %" PRId64 ", \"vm_hwm_kib\": %" PRId64 ", \"threads\": %" PRId64
            ", \"cpu_s\": %.3f}",
            s->vm_rss_kib, s->rss_anon_kib, s->rss_file_kib, s->vm_hwm_kib, s->threads, s->cpu_s);
}

struct totals {
    struct lat_samples lat[RPC_KINDS];
    struct lat_samples op_lat;
    uint64_t errors[RPC_KINDS][CSI_CODE_COUNT + 1];
    uint64_t ops_ok, ops_failed, ops_by_kind[MIX_KINDS];
    uint64_t listed_min;
};

struct measure {
    struct machine_sample machine_before, machine_after;
    double elapsed_s, client_cpu_s;
    bool have_proc;
    struct proc_sample before, after;
};

static void report(const struct run *r, struct totals *t, const struct measure *m)
{
    const struct bench_args *a = r->a;
    struct lat_summary op, per[RPC_KINDS];
    uint64_t ops = t->ops_ok + t->ops_failed, errors_total = 0;
    double ops_per_s = m->elapsed_s > 0 ? (double)ops / m->elapsed_s : 0;
    double ok_per_s = m->elapsed_s > 0 ? (double)t->ops_ok / m->elapsed_s : 0;
    FILE *f = stdout;
    bool first;

    lat_summarize(&t->op_lat, &op);
    for (int k = 0; k < RPC_KINDS; k++) {
        lat_summarize(&t->lat[k], &per[k]);
        for (int c = 1; c <= CSI_CODE_COUNT; c++)
            errors_total += t->errors[k][c];
    }

    if (!a->json) {
        fprintf(f, "scenario %s, concurrency %u, %" PRIu64 " operations in %.3f s\n",
                bench_scenario_name(a->scenario), a->concurrency, ops, m->elapsed_s);
        fprintf(f, "  %.1f operations/s (%.1f/s succeeded), %" PRIu64 " failed\n", ops_per_s,
                ok_per_s, t->ops_failed);
        fprintf(f, "  %-22s %9s %9s %9s %9s %9s %9s   (ms)\n", "latency", "count", "p50", "p90",
                "p99", "max", "mean");
        text_summary(f, "operation", &op);
        for (int k = 0; k < RPC_KINDS; k++)
            if (per[k].count)
                text_summary(f, rpc_names[k], &per[k]);
        for (int k = 0; k < RPC_KINDS; k++)
            for (int c = 1; c <= CSI_CODE_COUNT; c++)
                if (t->errors[k][c])
                    fprintf(f, "  error %s %s: %" PRIu64 "\n", rpc_names[k],
                            c == LOCAL_ERROR_CODE ? "LOCAL" : csi_code_name(c), t->errors[k][c]);
        for (int k = 0; k < RPC_KINDS; k++)
            if (r->first_error[k][0])
                fprintf(f, "  first error of %s: %s\n", rpc_names[k], r->first_error[k]);
        if (a->scenario == BENCH_LIST || (a->scenario == BENCH_MIXED && t->ops_by_kind[MIX_LIST]))
            fprintf(f, "  a full listing saw at least %" PRIu64 " volumes\n", t->listed_min);
        fprintf(f, "  client CPU %.3f s\n", m->client_cpu_s);
        fprintf(f,
                "  machine: %ld cores, load %.2f -> %.2f, PSI some avg10 cpu %.1f%% io %.1f%% "
                "(at the end)\n",
                m->machine_after.cores, m->machine_before.load1, m->machine_after.load1,
                m->machine_after.cpu_some_avg10, m->machine_after.io_some_avg10);
        if (m->have_proc)
            fprintf(f,
                    "  driver pid %d: VmRSS %" PRId64 " -> %" PRId64 " KiB, RssAnon %" PRId64
                    " -> %" PRId64 " KiB, CPU %.3f s (%.1f us/operation)\n",
                    (int)a->pid, m->before.vm_rss_kib, m->after.vm_rss_kib, m->before.rss_anon_kib,
                    m->after.rss_anon_kib, m->after.cpu_s - m->before.cpu_s,
                    ops ? (m->after.cpu_s - m->before.cpu_s) * 1e6 / (double)ops : 0.0);
        return;
    }

    fprintf(f, "{\"tool\": \"ordinal-bench\", \"scenario\": \"%s\", \"endpoint\": ",
            bench_scenario_name(a->scenario));
    json_string(f, a->endpoint);
    fprintf(f,
            ", \"concurrency\": %u, \"ops_requested\": %" PRIu64 ", \"duration_requested_s\": %.3f",
            a->concurrency, a->ops, (double)a->duration_ms / 1e3);
    fprintf(f, ", \"warmup\": {\"ops\": %" PRIu64 ", \"s\": %.3f}", a->warmup_ops,
            (double)a->warmup_ms / 1e3);
    fprintf(f, ", \"capability\": \"%s\", \"access_mode\": %d, \"capacity_bytes\": %" PRId64,
            a->capability == BENCH_CAP_BLOCK ? "block" : "mount", a->access_mode,
            a->capacity_bytes);
    fputs(", \"parameters\": {", f);
    for (size_t i = 0; i < a->n_params; i++) {
        if (i)
            fputs(", ", f);
        json_string(f, a->params[i].key);
        fputs(": ", f);
        json_string(f, a->params[i].value);
    }
    fprintf(f, "}, \"volumes\": %zu, \"node_stage\": %s", r->n_vols,
            r->node_stage ? "true" : "false");
    fprintf(f,
            ", \"elapsed_s\": %.6f, \"ops\": %" PRIu64 ", \"ops_ok\": %" PRIu64
            ", \"ops_failed\": %" PRIu64 ", \"ops_per_s\": %.2f, \"ok_per_s\": %.2f",
            m->elapsed_s, ops, t->ops_ok, t->ops_failed, ops_per_s, ok_per_s);
    fputs(", \"ops_by_kind\": {", f);
    for (int k = 0; k < MIX_KINDS; k++)
        fprintf(f, "%s\"%s\": %" PRIu64, k ? ", " : "", bench_mix_name((enum bench_mix_kind)k),
                t->ops_by_kind[k]);
    fputs("}, \"latency_ms\": {\"op\": ", f);
    json_summary(f, &op);
    for (int k = 0; k < RPC_KINDS; k++) {
        if (!per[k].count)
            continue;
        fprintf(f, ", \"%s\": ", rpc_names[k]);
        json_summary(f, &per[k]);
    }
    fputs("}, \"calls\": {", f);
    first = true;
    for (int k = 0; k < RPC_KINDS; k++) {
        uint64_t n = 0;

        for (int c = 0; c <= CSI_CODE_COUNT; c++)
            n += t->errors[k][c];
        if (!n)
            continue;
        fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", rpc_names[k], n);
        first = false;
    }
    fputs("}, \"errors\": {", f);
    first = true;
    for (int k = 0; k < RPC_KINDS; k++) {
        bool any = false;

        for (int c = 1; c <= CSI_CODE_COUNT; c++) {
            if (!t->errors[k][c])
                continue;
            fprintf(f, "%s", any ? ", " : (first ? "" : ", "));
            if (!any)
                fprintf(f, "\"%s\": {", rpc_names[k]);
            fprintf(f, "\"%s\": %" PRIu64, c == LOCAL_ERROR_CODE ? "LOCAL" : csi_code_name(c),
                    t->errors[k][c]);
            any = true;
            first = false;
        }
        if (any)
            fputc('}', f);
    }
    fprintf(f, "}, \"errors_total\": %" PRIu64 ", \"first_error\": {", errors_total);
    first = true;
    for (int k = 0; k < RPC_KINDS; k++) {
        if (!r->first_error[k][0])
            continue;
        fprintf(f, "%s\"%s\": ", first ? "" : ", ", rpc_names[k]);
        json_string(f, r->first_error[k]);
        first = false;
    }
    fprintf(f, "}, \"listed_min\": %" PRIu64 ", \"client_cpu_s\": %.3f", t->listed_min,
            m->client_cpu_s);
    fprintf(f,
            ", \"machine\": {\"cores\": %ld, \"load1_before\": %.2f, \"load1_after\": %.2f, "
            "\"psi_cpu_some_avg10_after\": %.2f, \"psi_io_some_avg10_after\": %.2f}",
            m->machine_after.cores, m->machine_before.load1, m->machine_after.load1,
            m->machine_after.cpu_some_avg10, m->machine_after.io_some_avg10);
    if (m->have_proc) {
        double cpu = m->after.cpu_s - m->before.cpu_s;

        fprintf(f, ", \"driver\": {\"pid\": %d, \"before\": ", (int)a->pid);
        json_proc(f, &m->before);
        fputs(", \"after\": ", f);
        json_proc(f, &m->after);
        fprintf(f, ", \"cpu_s\": %.3f, \"cpu_us_per_op\": %.2f}", cpu,
                ops ? cpu * 1e6 / (double)ops : 0.0);
    }
    fputs("}\n", f);
}

/* ---- the worker scenarios ---- */

static int check_driver(struct run *r)
{
    struct csi_caller *c = csi_caller_new(r->ch);
    Csi__V1__ProbeRequest probe = CSI__V1__PROBE_REQUEST__INIT;
    Csi__V1__NodeGetCapabilitiesRequest caps = CSI__V1__NODE_GET_CAPABILITIES_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct csi_status st;
    int rc;

    if (!c)
        return -ENOMEM;
    /* wait_for_ready: a driver that is still starting gets the timeout to come up */
    rc = csi_call(c, CSI_IDENTITY_PROBE, &probe.base, &csi__v1__probe_response__descriptor,
                  r->a->timeout_ms, true, &st, &resp);
    if (rc < 0 || st.code != CSI_CODE_OK) {
        fprintf(stderr, "ordinal-bench: Probe of %s failed: %s %s\n", r->a->endpoint,
                rc < 0 ? "LOCAL" : csi_code_name(st.code), rc < 0 ? strerror(-rc) : st.message);
        csi_caller_free(c);
        return -EIO;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    resp = NULL;
    if (needs_node_paths(r->a)) {
        rc = csi_call(c, CSI_NODE_GET_CAPABILITIES, &caps.base,
                      &csi__v1__node_get_capabilities_response__descriptor, r->a->timeout_ms, false,
                      &st, &resp);
        if (rc == 0 && st.code == CSI_CODE_OK) {
            Csi__V1__NodeGetCapabilitiesResponse *cr = (Csi__V1__NodeGetCapabilitiesResponse *)resp;

            for (size_t i = 0; i < cr->n_capabilities; i++)
                if (cr->capabilities[i]->type_case == CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC &&
                    cr->capabilities[i]->rpc->type ==
                        CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__STAGE_UNSTAGE_VOLUME)
                    r->node_stage = true;
            protobuf_c_message_free_unpacked(resp, NULL);
        }
    }
    csi_caller_free(c);
    return 0;
}

static int make_work_dir(struct run *r)
{
    char sub[300];

    if (r->a->work_dir) {
        snprintf(r->work_dir, sizeof(r->work_dir), "%s", r->a->work_dir);
        if (mkdir(r->work_dir, 0750) < 0 && errno != EEXIST)
            return -errno;
    } else {
        snprintf(r->work_dir, sizeof(r->work_dir), "/tmp/ordinal-bench-XXXXXX");
        if (!mkdtemp(r->work_dir))
            return -errno;
        r->own_work_dir = true;
    }
    snprintf(sub, sizeof(sub), "%s/staging", r->work_dir);
    if (mkdir(sub, 0750) < 0 && errno != EEXIST)
        return -errno;
    snprintf(sub, sizeof(sub), "%s/target", r->work_dir);
    if (mkdir(sub, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* rmdir only: a mount left behind by a failed unpublish makes it fail, which is what we want
 * (never delete through a mount). */
static void remove_work_dir(struct run *r)
{
    char sub[300];

    snprintf(sub, sizeof(sub), "%s/staging", r->work_dir);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/target", r->work_dir);
    rmdir(sub);
    if (r->own_work_dir && rmdir(r->work_dir) < 0)
        fprintf(stderr, "ordinal-bench: left %s behind: %s\n", r->work_dir, strerror(errno));
}

static void run_phase(struct run *r, uint64_t ops, uint64_t ms_)
{
    atomic_store(&r->claimed, 0);
    r->total = ops;
    r->deadline_ns = ops ? 0 : now_ns() + ms_ * 1000000u;
}

static int run_workers(const struct bench_args *a)
{
    struct run *r = calloc(1, sizeof(*r));
    struct totals *t = calloc(1, sizeof(*t));
    struct measure m;
    unsigned started = 0;
    size_t n_per = 0;
    uint64_t t0, t1, seed;
    double cpu0;
    int rc = 1;

    if (!r || !t) {
        free(r);
        free(t);
        fprintf(stderr, "ordinal-bench: out of memory\n");
        return 1;
    }
    memset(&m, 0, sizeof(m));
    r->a = a;
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->failed, false);
    atomic_init(&r->claimed, 0);
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = now_ns() ^ (uint64_t)getpid();
    snprintf(r->run_id, sizeof(r->run_id), "%06" PRIx64, seed & 0xffffff);

    csi__v1__volume_capability__init(&r->cap);
    csi__v1__volume_capability__access_mode__init(&r->access);
    r->access.mode = (Csi__V1__VolumeCapability__AccessMode__Mode)a->access_mode;
    r->cap.access_mode = &r->access;
    if (a->capability == BENCH_CAP_BLOCK) {
        csi__v1__volume_capability__block_volume__init(&r->block);
        r->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK;
        r->cap.block = &r->block;
    } else {
        csi__v1__volume_capability__mount_volume__init(&r->mount);
        r->mount.fs_type = unconst(a->fs_type);
        r->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
        r->cap.mount = &r->mount;
    }
    r->cap_p = &r->cap;
    csi__v1__capacity_range__init(&r->range);
    r->range.required_bytes = a->capacity_bytes;

    r->ch = csi_channel_new(a->endpoint, NULL);
    if (!r->ch) {
        fprintf(stderr, "ordinal-bench: --endpoint %s: %s\n", a->endpoint, strerror(errno));
        goto out;
    }
    if (check_driver(r) < 0)
        goto out;
    if (needs_node_paths(a) && make_work_dir(r) < 0) {
        fprintf(stderr, "ordinal-bench: cannot create the work directory: %s\n", strerror(errno));
        goto out;
    }

    /* volumes: volumes pre-created for publish/stats/list/mixed, one more per thread for the
     * publish cycles of mixed */
    if (a->scenario == BENCH_PUBLISH || a->scenario == BENCH_STATS || a->scenario == BENCH_LIST ||
        a->scenario == BENCH_MIXED)
        r->n_vols = a->volumes;
    if (a->scenario == BENCH_MIXED && a->mix[MIX_PUBLISH])
        r->n_vols += a->concurrency;
    r->vols = calloc(r->n_vols ? r->n_vols : 1, sizeof(*r->vols));
    r->workers = calloc(a->concurrency, sizeof(*r->workers));
    if (!r->vols || !r->workers) {
        fprintf(stderr, "ordinal-bench: out of memory\n");
        goto out;
    }
    n_per = (size_t)(a->volumes / a->concurrency) + 1;
    for (unsigned i = 0; i < a->concurrency; i++) {
        struct worker *w = &r->workers[i];

        w->idx = i;
        w->run = r;
        w->rng = seed ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15u);
        if (!w->rng)
            w->rng = 1;
        w->cycle_vol = SIZE_MAX;
        for (int k = 0; k < RPC_KINDS; k++)
            lat_init(&w->lat[k]);
        lat_init(&w->op_lat);
        for (size_t p = 0; p < BENCH_MAX_PARAMS; p++) {
            csi__v1__create_volume_request__parameters_entry__init(&w->params[p]);
            w->params[p].key = unconst(a->params[p].key);
            w->params_p[p] = &w->params[p];
        }
        w->caller = csi_caller_new(r->ch);
        w->vols = calloc(n_per, sizeof(*w->vols));
        if (!w->caller || !w->vols) {
            fprintf(stderr, "ordinal-bench: out of memory\n");
            goto out;
        }
    }
    if (a->scenario != BENCH_CREATE_DELETE && a->scenario != BENCH_CREATE) {
        for (size_t v = 0; v < a->volumes; v++) {
            struct worker *w = &r->workers[v % a->concurrency];

            w->vols[w->n_vols++] = v;
        }
        if (a->scenario == BENCH_MIXED && a->mix[MIX_PUBLISH])
            for (unsigned i = 0; i < a->concurrency; i++)
                r->workers[i].cycle_vol = a->volumes + i;
    }

    if (pthread_barrier_init(&r->barrier, NULL, a->concurrency + 1) != 0) {
        fprintf(stderr, "ordinal-bench: pthread_barrier_init failed\n");
        goto out;
    }
    /* setup, then warm-up */
    run_phase(r, a->warmup_ops, a->warmup_ms); /* neither: claim() says no at once */
    for (started = 0; started < a->concurrency; started++) {
        if (pthread_create(&r->workers[started].th, NULL, worker_main, &r->workers[started]) != 0) {
            fprintf(stderr, "ordinal-bench: cannot start thread %u\n", started);
            /* the barrier counts every thread: a partial start cannot go on */
            abort();
        }
    }
    pthread_barrier_wait(&r->barrier); /* setup done; warm-up runs */
    pthread_barrier_wait(&r->barrier); /* warm-up done */
    if (atomic_load(&r->failed)) {
        for (int k = 0; k < RPC_KINDS; k++)
            if (r->first_error[k][0])
                fprintf(stderr, "ordinal-bench: setup failed: %s: %s\n", rpc_names[k],
                        r->first_error[k]);
    }
    if (a->pid)
        m.have_proc = proc_sample(a->pid, &m.before) == 0;
    machine_sample(&m.machine_before);
    cpu0 = self_cpu_s();
    for (int k = 0; k < RPC_KINDS; k++)
        r->first_error[k][0] = '\0'; /* report the measure's errors, not setup's */
    run_phase(r, a->ops, a->duration_ms);
    t0 = now_ns();
    pthread_barrier_wait(&r->barrier); /* measure runs */
    pthread_barrier_wait(&r->barrier); /* measure done */
    t1 = now_ns();
    m.client_cpu_s = self_cpu_s() - cpu0;
    machine_sample(&m.machine_after);
    if (m.have_proc)
        m.have_proc = proc_sample(a->pid, &m.after) == 0;
    m.elapsed_s = (double)(t1 - t0) / 1e9;
    pthread_barrier_wait(&r->barrier); /* teardown runs */
    for (unsigned i = 0; i < started; i++)
        pthread_join(r->workers[i].th, NULL);
    started = 0;
    pthread_barrier_destroy(&r->barrier);

    if (atomic_load(&r->failed)) {
        rc = 1;
        goto out;
    }
    t->listed_min = UINT64_MAX;
    for (unsigned i = 0; i < a->concurrency; i++) {
        struct worker *w = &r->workers[i];

        for (int k = 0; k < RPC_KINDS; k++) {
            lat_merge(&t->lat[k], &w->lat[k]);
            for (int c = 0; c <= CSI_CODE_COUNT; c++)
                t->errors[k][c] += w->errors[k][c];
        }
        lat_merge(&t->op_lat, &w->op_lat);
        t->ops_ok += w->ops_ok;
        t->ops_failed += w->ops_failed;
        for (int k = 0; k < MIX_KINDS; k++)
            t->ops_by_kind[k] += w->ops_by_kind[k];
        if (w->ops_by_kind[MIX_LIST] && w->listed < t->listed_min)
            t->listed_min = w->listed;
    }
    if (t->listed_min == UINT64_MAX)
        t->listed_min = 0;
    report(r, t, &m);
    rc = 0;
out:
    if (r->workers) {
        for (unsigned i = 0; i < a->concurrency; i++) {
            struct worker *w = &r->workers[i];

            csi_caller_free(w->caller);
            for (int k = 0; k < RPC_KINDS; k++)
                lat_release(&w->lat[k]);
            lat_release(&w->op_lat);
            free(w->vols);
        }
        free(r->workers);
    }
    if (r->vols) {
        for (size_t v = 0; v < r->n_vols; v++)
            vol_release(&r->vols[v]);
        free(r->vols);
    }
    if (r->work_dir[0])
        remove_work_dir(r);
    csi_channel_free(r->ch);
    pthread_mutex_destroy(&r->mu);
    for (int k = 0; k < RPC_KINDS; k++)
        lat_release(&t->lat[k]);
    lat_release(&t->op_lat);
    free(t);
    free(r);
    return rc;
}

/* ---- startup: spawn, probe until ready, stop ---- */

/* One Probe on a fresh channel (a fresh connection, no back-off history). 1 ready, 0 not yet,
 * -ENOMEM. */
static int probe_once(const char *endpoint, int64_t timeout_ms)
{
    Csi__V1__ProbeRequest req = CSI__V1__PROBE_REQUEST__INIT;
    struct csi_channel *ch = csi_channel_new(endpoint, NULL);
    struct csi_caller *c = ch ? csi_caller_new(ch) : NULL;
    ProtobufCMessage *resp = NULL;
    struct csi_status st;
    int rc, ready = 0;

    if (!c) {
        csi_channel_free(ch);
        return -ENOMEM;
    }
    rc = csi_call(c, CSI_IDENTITY_PROBE, &req.base, &csi__v1__probe_response__descriptor,
                  timeout_ms, false, &st, &resp);
    if (rc == 0 && st.code == CSI_CODE_OK) {
        Csi__V1__ProbeResponse *pr = (Csi__V1__ProbeResponse *)resp;

        ready = !pr->ready || pr->ready->value; /* unset ready means ready (CSI spec) */
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    csi_caller_free(c);
    csi_channel_free(ch);
    return ready;
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Waits for pid up to timeout_ms; SIGKILL after that. Returns the wait status, -1 on error. */
static int wait_exit(pid_t pid, int64_t timeout_ms)
{
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
    int status;

    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);

        if (w == pid)
            return status;
        if (w < 0 && errno != EINTR)
            return -1;
        if (now_ns() > end) {
            kill(pid, SIGKILL);
            return waitpid(pid, &status, 0) == pid ? status : -1;
        }
        sleep_us(500);
    }
}

static int run_startup(const struct bench_args *a)
{
    struct lat_samples ready, stop, anon, rss;
    struct lat_summary s_ready, s_stop, s_anon, s_rss;
    uint64_t total = a->warmup_ops + a->ops, failures = 0;
    posix_spawn_file_actions_t fa;
    int rc = 0;

    lat_init(&ready);
    lat_init(&stop);
    lat_init(&anon);
    lat_init(&rss);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    for (uint64_t run = 0; run < total; run++) {
        bool measured = run >= a->warmup_ops;
        uint64_t t0 = now_ns(), t_ready = 0, t_stop;
        uint64_t end = t0 + (uint64_t)a->timeout_ms * 1000000u;
        struct proc_sample ps;
        bool have_ps = false;
        pid_t pid;
        int status, p = 0;

        int e = posix_spawn(&pid, a->exec_argv[0], &fa, NULL, a->exec_argv, environ);

        if (e != 0) {
            fprintf(stderr, "ordinal-bench: cannot run %s: %s\n", a->exec_argv[0], strerror(e));
            rc = 1;
            break;
        }
        while (now_ns() < end) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                fprintf(stderr,
                        "ordinal-bench: the driver exited (status 0x%x) before it was "
                        "ready; run it by hand to see why\n",
                        (unsigned)status);
                pid = 0;
                break;
            }
            p = probe_once(a->endpoint, 1000);
            if (p != 0)
                break;
            sleep_us(1000);
        }
        if (p == 1) {
            t_ready = now_ns();
            have_ps = proc_sample(pid, &ps) == 0;
        } else {
            failures++;
        }
        if (pid == 0) {
            rc = 1;
            break;
        }
        t_stop = now_ns();
        kill(pid, SIGTERM);
        status = wait_exit(pid, 15000);
        if (p != 1) {
            fprintf(stderr,
                    "ordinal-bench: the driver did not answer Probe ready within %" PRId64 " ms\n",
                    a->timeout_ms);
            rc = 1;
            break;
        }
        if (!measured)
            continue;
        lat_add(&ready, t_ready - t0);
        lat_add(&stop, now_ns() - t_stop);
        if (have_ps) {
            lat_add(&anon, (uint64_t)ps.rss_anon_kib);
            lat_add(&rss, (uint64_t)ps.vm_rss_kib);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr,
                    "ordinal-bench: the driver did not exit 0 after SIGTERM (status 0x%x)\n",
                    (unsigned)status);
    }
    posix_spawn_file_actions_destroy(&fa);
    lat_summarize(&ready, &s_ready);
    lat_summarize(&stop, &s_stop);
    lat_summarize(&anon, &s_anon);
    lat_summarize(&rss, &s_rss);
    if (rc == 0) {
        if (a->json) {
            printf("{\"tool\": \"ordinal-bench\", \"scenario\": \"startup\", \"endpoint\": ");
            json_string(stdout, a->endpoint);
            printf(", \"runs\": %" PRIu64 ", \"failures\": %" PRIu64 ", \"latency_ms\": {\"op\": ",
                   s_ready.count, failures);
            json_summary(stdout, &s_ready);
            fputs(", \"stop\": ", stdout);
            json_summary(stdout, &s_stop);
            printf("}, \"at_ready_kib\": {\"rss_anon_p50\": %" PRIu64 ", \"rss_anon_max\": %" PRIu64
                   ", \"vm_rss_p50\": %" PRIu64 ", \"vm_rss_max\": %" PRIu64 "}}\n",
                   s_anon.p50, s_anon.max, s_rss.p50, s_rss.max);
        } else {
            printf("startup: %" PRIu64 " runs, spawn to Probe ready (ms):\n", s_ready.count);
            printf("  %-22s %9s %9s %9s %9s %9s %9s   (ms)\n", "latency", "count", "p50", "p90",
                   "p99", "max", "mean");
            text_summary(stdout, "spawn to ready", &s_ready);
            text_summary(stdout, "SIGTERM to exit", &s_stop);
            printf("  at ready: RssAnon p50 %" PRIu64 " KiB (max %" PRIu64 "), VmRSS p50 %" PRIu64
                   " KiB (max %" PRIu64 ")\n",
                   s_anon.p50, s_anon.max, s_rss.p50, s_rss.max);
        }
    }
    lat_release(&ready);
    lat_release(&stop);
    lat_release(&anon);
    lat_release(&rss);
    return rc;
}

int main(int argc, char **argv)
{
    struct bench_args a;
    char err[512];
    int r;

    r = bench_args_parse(argc, argv, &a, err, sizeof(err));
    if (r == 1) {
        bench_usage(stdout);
        return 0;
    }
    if (r < 0) {
        fprintf(stderr, "ordinal-bench: %s (--help for usage)\n", err);
        return 2;
    }
    /* a driver that dies mid-run must not kill us with SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    csi_client_init();
    r = a.scenario == BENCH_STARTUP ? run_startup(&a) : run_workers(&a);
    csi_client_shutdown();
    return r;
}
