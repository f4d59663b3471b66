/*
 * Unit tests: the CSI service handlers (provisioner/identity.c, controller.c, node.c, csi.c)
 * run directly on detached calls against a fake in-memory backend, so that the order of checks,
 * the errno each rule produces, paging across backends and what reaches the backend are
 * checked without gRPC or disks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "csi.h"
#include "util.h"

/* ---- a fake backend: volumes in an array, sorted by id ---- */

#define FAKE_MAX 64

struct fake {
    struct backend b;
    char name[8];
    struct be_volume vols[FAKE_MAX];
    size_t n;
    struct be_snapshot snaps[FAKE_MAX];
    size_t n_snaps;
    /* what the last create saw */
    char last_key[BE_KEY_MAX + 1];
    bool last_key_is_claim;
    size_t last_n_params;
    int64_t last_required, last_limit;
    int creates, removes, stages, publishes;
    char last_target[256];
    bool last_readonly;
};

static struct fake *fake_of(struct backend *b)
{
    return (struct fake *)(void *)b;
}

static int cmp_vol(const void *a, const void *b)
{
    return strcmp(((const struct be_volume *)a)->id, ((const struct be_volume *)b)->id);
}

static int fake_create(struct backend *b, const struct be_create_req *req, struct be_volume *ret)
{
    struct fake *f = fake_of(b);

    f->creates++;
    snprintf(f->last_key, sizeof(f->last_key), "%s", req->key);
    f->last_key_is_claim = req->key_is_claim;
    f->last_n_params = req->n_params;
    f->last_required = req->required_bytes;
    f->last_limit = req->limit_bytes;
    if (req->n_params)
        return be_error(-EINVAL, "unknown parameter %s", req->params[0].key);
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->vols[i].key, req->key) == 0) {
            if (f->vols[i].capacity_bytes < req->required_bytes)
                return be_error(-EEXIST, "exists smaller");
            *ret = f->vols[i];
            return 0;
        }
    struct be_volume *v = &f->vols[f->n++];
    memset(v, 0, sizeof(*v));
    snprintf(v->id, sizeof(v->id), "%s:%s", f->name, req->key);
    snprintf(v->key, sizeof(v->key), "%s", req->key);
    snprintf(v->name, sizeof(v->name), "%s", req->name);
    v->capacity_bytes = req->required_bytes ? req->required_bytes : 1 << 30;
    v->access = req->access;
    v->source_kind = req->source_kind;
    snprintf(v->source_id, sizeof(v->source_id), "%s", req->source_id ? req->source_id : "");
    *ret = *v;
    qsort(f->vols, f->n, sizeof(f->vols[0]), cmp_vol);
    return 0;
}

static int fake_lookup(struct backend *b, const char *id, struct be_volume *ret)
{
    struct fake *f = fake_of(b);

    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->vols[i].id, id) == 0) {
            *ret = f->vols[i];
            return 0;
        }
    return -ENOENT;
}

static int fake_remove(struct backend *b, const char *id)
{
    struct fake *f = fake_of(b);

    f->removes++;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->vols[i].id, id) == 0) {
            memmove(&f->vols[i], &f->vols[i + 1], (f->n - i - 1) * sizeof(f->vols[0]));
            f->n--;
            return 0;
        }
    return 0;
}

static int fake_list(struct backend *b, const char *after, size_t max, struct be_volume_page *ret)
{
    struct fake *f = fake_of(b);
    size_t start = 0, n;

    while (start < f->n && after[0] && strcmp(f->vols[start].id, after) <= 0)
        start++;
    n = f->n - start;
    ret->more = false;
    if (max && n > max) {
        n = max;
        ret->more = true;
    }
    ret->items = calloc(n ? n : 1, sizeof(*ret->items));
    if (!ret->items)
        return -ENOMEM;
    memcpy(ret->items, &f->vols[start], n * sizeof(*ret->items));
    ret->n = n;
    return 0;
}

static int fake_expand(struct backend *b, const char *id, int64_t required, int64_t limit,
                       struct be_volume *ret, bool *ret_node)
{
    struct fake *f = fake_of(b);

    (void)limit;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->vols[i].id, id) == 0) {
            if (required > f->vols[i].capacity_bytes)
                f->vols[i].capacity_bytes = required;
            *ret = f->vols[i];
            *ret_node = false;
            return 0;
        }
    return -ENOENT;
}

static int fake_capacity(struct backend *b, const struct be_param *p, size_t n, int64_t *avail,
                         int64_t *max)
{
    (void)b;
    (void)p;
    if (n)
        return -EINVAL;
    *avail = 1000;
    *max = 900;
    return 0;
}

static int fake_snap_create(struct backend *b, const char *name, const char *src,
                            struct be_snapshot *ret)
{
    struct fake *f = fake_of(b);
    struct be_snapshot *s = &f->snaps[f->n_snaps++];

    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s:@%s", f->name, name);
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->source_volume_id, sizeof(s->source_volume_id), "%s", src);
    s->ready = true;
    s->created_sec = 1700000000;
    *ret = *s;
    return 0;
}

static int fake_snap_lookup(struct backend *b, const char *id, struct be_snapshot *ret)
{
    struct fake *f = fake_of(b);

    for (size_t i = 0; i < f->n_snaps; i++)
        if (strcmp(f->snaps[i].id, id) == 0) {
            *ret = f->snaps[i];
            return 0;
        }
    return -ENOENT;
}

static int fake_snap_list(struct backend *b, const char *after, size_t max,
                          struct be_snapshot_page *ret)
{
    struct fake *f = fake_of(b);

    (void)after;
    (void)max;
    ret->items = calloc(f->n_snaps ? f->n_snaps : 1, sizeof(*ret->items));
    if (!ret->items)
        return -ENOMEM;
    memcpy(ret->items, f->snaps, f->n_snaps * sizeof(*ret->items));
    ret->n = f->n_snaps;
    ret->more = false;
    return 0;
}

static int fake_snap_remove(struct backend *b, const char *id)
{
    (void)b;
    (void)id;
    return 0;
}

static int fake_stage(struct backend *b, const struct be_mount_req *req)
{
    fake_of(b)->stages++;
    (void)req;
    return 0;
}

static int fake_publish(struct backend *b, const struct be_mount_req *req)
{
    struct fake *f = fake_of(b);

    f->publishes++;
    snprintf(f->last_target, sizeof(f->last_target), "%s", req->target_path);
    f->last_readonly = req->readonly;
    return 0;
}

static int fake_unpublish(struct backend *b, const char *id, const char *path)
{
    (void)b;
    (void)id;
    (void)path;
    return 0;
}

static int fake_stats(struct backend *b, const char *id, const char *path, struct be_stats *ret)
{
    (void)b;
    (void)id;
    if (strcmp(path, "/mnt/target") != 0)
        return -ENOENT;
    *ret = (struct be_stats){
        .bytes_total = 100, .bytes_used = 40, .bytes_available = 60, .inodes_total = -1};
    return 0;
}

static int fake_node_expand(struct backend *b, const char *id, const char *path, int64_t *cap)
{
    (void)b;
    (void)id;
    if (strcmp(path, "/mnt/target") != 0)
        return -ENOENT;
    *cap = 1 << 30;
    return 0;
}

static const struct be_ops fake_ops_dir = {
    .name = "dir",
    .create = fake_create,
    .remove = fake_remove,
    .lookup = fake_lookup,
    .list = fake_list,
    .expand = fake_expand,
    .capacity = fake_capacity,
    .snapshot_create = fake_snap_create,
    .snapshot_remove = fake_snap_remove,
    .snapshot_lookup = fake_snap_lookup,
    .snapshot_list = fake_snap_list,
    .stage = fake_stage,
    .unstage = fake_unpublish,
    .publish = fake_publish,
    .unpublish = fake_unpublish,
    .stats = fake_stats,
    .node_expand = fake_node_expand,
    .content_sources = true,
};
static struct be_ops fake_ops_aaa;

/* As the LVM backend here: volumes, no snapshots (only a refusing create slot), no sources. */
static const struct be_ops fake_ops_lvm = {
    .name = "lvm",
    .create = fake_create,
    .remove = fake_remove,
    .lookup = fake_lookup,
    .list = fake_list,
    .expand = fake_expand,
    .capacity = fake_capacity,
    .snapshot_create = fake_snap_create,
    .stage = fake_stage,
    .unstage = fake_unpublish,
    .publish = fake_publish,
    .unpublish = fake_unpublish,
    .stats = fake_stats,
    .node_expand = fake_node_expand,
};

/* A backend with volumes and no node side at all. */
static const struct be_ops fake_ops_bare = {
    .name = "bare",
    .create = fake_create,
    .remove = fake_remove,
    .lookup = fake_lookup,
};

struct fixture {
    struct csi_service svc;
    struct fake dir, aaa;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    fake_ops_aaa = fake_ops_dir;
    fake_ops_aaa.name = "aaa";
    fx->aaa.b.ops = &fake_ops_aaa;
    snprintf(fx->aaa.name, sizeof(fx->aaa.name), "aaa");
    fx->dir.b.ops = &fake_ops_dir;
    snprintf(fx->dir.name, sizeof(fx->dir.name), "dir");
    fx->svc.driver_name = "ordinal.csi.dev";
    fx->svc.version = "test";
    fx->svc.node_id = "node-1";
    fx->svc.mode = CSI_MODE_NODE;
    fx->svc.backends[0] = &fx->aaa.b;
    fx->svc.backends[1] = &fx->dir.b;
    fx->svc.n_backends = 2;
    fx->svc.locks = lock_table_new();
    *state = fx;
    return fx->svc.locks ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(lock_count(fx->svc.locks), 0); /* every handler gave its locks back */
    lock_table_free(fx->svc.locks);
    free(fx);
    return 0;
}

/* Run a handler on a detached call; returns its result, the message in msg. */
typedef int (*handler_fn)(struct csi_call *, void *, const ProtobufCMessage *, ProtobufCMessage **);

static int run(struct fixture *fx, handler_fn h, const void *req, char *msg, size_t msglen,
               void *resp_copy, size_t resp_size)
{
    struct csi_call *call = csi_call_new_detached();
    ProtobufCMessage *resp = NULL;
    int r;

    assert_non_null(call);
    be_error_clear();
    r = h(call, &fx->svc, req, &resp);
    if (msg) {
        const char *m = csi_call_message(call);
        snprintf(msg, msglen, "%s", m[0] ? m : be_last_error());
    }
    if (r >= 0) {
        assert_non_null(resp);
        /* The response must pack: every required pointer is set. */
        size_t n = protobuf_c_message_get_packed_size(resp);
        uint8_t *buf = malloc(n + 1);
        protobuf_c_message_pack(resp, buf);
        if (resp_copy) {
            ProtobufCMessage *u = protobuf_c_message_unpack(resp->descriptor, NULL, n, buf);
            assert_non_null(u);
            assert_true(resp_size == sizeof(void *));
            memcpy(resp_copy, &u, sizeof(u));
        }
        free(buf);
    }
    csi_call_free_detached(call);
    return r;
}

/* ---- request builders ---- */

struct cap_store {
    Csi__V1__VolumeCapability cap;
    Csi__V1__VolumeCapability__AccessMode mode;
    Csi__V1__VolumeCapability__MountVolume mount;
    Csi__V1__VolumeCapability__BlockVolume block;
    Csi__V1__VolumeCapability *ptr;
};

static void make_cap(struct cap_store *s, bool block, int mode)
{
    csi__v1__volume_capability__init(&s->cap);
    csi__v1__volume_capability__access_mode__init(&s->mode);
    csi__v1__volume_capability__mount_volume__init(&s->mount);
    csi__v1__volume_capability__block_volume__init(&s->block);
    s->mode.mode = mode;
    s->cap.access_mode = &s->mode;
    if (block) {
        s->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK;
        s->cap.block = &s->block;
    } else {
        s->cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
        s->cap.mount = &s->mount;
    }
    s->ptr = &s->cap;
}

#define SNW CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER

struct params_store {
    Csi__V1__CreateVolumeRequest__ParametersEntry e[4];
    Csi__V1__CreateVolumeRequest__ParametersEntry *p[4];
    size_t n;
};

static void add_param(struct params_store *s, const char *k, const char *v)
{
    csi__v1__create_volume_request__parameters_entry__init(&s->e[s->n]);
    s->e[s->n].key = (char *)(uintptr_t)k;
    s->e[s->n].value = (char *)(uintptr_t)v;
    s->p[s->n] = &s->e[s->n];
    s->n++;
}

static int create(struct fixture *fx, const char *name, struct params_store *ps, int64_t req,
                  int64_t lim, char *msg, Csi__V1__CreateVolumeResponse **ret)
{
    Csi__V1__CreateVolumeRequest r = CSI__V1__CREATE_VOLUME_REQUEST__INIT;
    Csi__V1__CapacityRange cr = CSI__V1__CAPACITY_RANGE__INIT;
    struct cap_store cs;

    make_cap(&cs, false, SNW);
    r.name = (char *)(uintptr_t)name;
    r.n_volume_capabilities = 1;
    r.volume_capabilities = &cs.ptr;
    if (req || lim) {
        cr.required_bytes = req;
        cr.limit_bytes = lim;
        r.capacity_range = &cr;
    }
    if (ps) {
        r.n_parameters = ps->n;
        r.parameters = ps->p;
    }
    return run(fx, csi_create_volume, &r, msg, 256, ret, ret ? sizeof(*ret) : 0);
}

/* ---- tests ---- */

static void test_identity(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__GetPluginInfoRequest r = CSI__V1__GET_PLUGIN_INFO_REQUEST__INIT;
    Csi__V1__GetPluginInfoResponse *info = NULL;
    Csi__V1__GetPluginCapabilitiesRequest cr = CSI__V1__GET_PLUGIN_CAPABILITIES_REQUEST__INIT;
    Csi__V1__GetPluginCapabilitiesResponse *caps = NULL;
    Csi__V1__ProbeRequest pr = CSI__V1__PROBE_REQUEST__INIT;
    Csi__V1__ProbeResponse *probe = NULL;

    assert_int_equal(run(fx, csi_get_plugin_info, &r, NULL, 0, &info, sizeof(info)), 0);
    assert_string_equal(info->name, "ordinal.csi.dev");
    assert_string_equal(info->vendor_version, "test");
    assert_int_equal(run(fx, csi_get_plugin_capabilities, &cr, NULL, 0, &caps, sizeof(caps)), 0);
    assert_int_equal(caps->n_capabilities, 3);
    assert_int_equal(caps->capabilities[2]->volume_expansion->type,
                     CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__TYPE__ONLINE);
    assert_int_equal(run(fx, csi_probe, &pr, NULL, 0, &probe, sizeof(probe)), 0);
    assert_non_null(probe->ready);
    assert_true(probe->ready->value);
    protobuf_c_message_free_unpacked(&info->base, NULL);
    protobuf_c_message_free_unpacked(&caps->base, NULL);
    protobuf_c_message_free_unpacked(&probe->base, NULL);
}

static void test_create_required_fields_first(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__CreateVolumeRequest r = CSI__V1__CREATE_VOLUME_REQUEST__INIT;
    char msg[256];

    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_string_equal(msg, "name is required");
    r.name = (char *)(uintptr_t) "v1";
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_string_equal(msg, "volume_capabilities is required");
    assert_int_equal(fx->dir.creates, 0);
}

static void test_create_capabilities(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__CreateVolumeRequest r = CSI__V1__CREATE_VOLUME_REQUEST__INIT;
    struct cap_store a, b;
    Csi__V1__VolumeCapability *caps[2];
    char msg[256];

    r.name = (char *)(uintptr_t) "v1";
    r.volume_capabilities = caps;
    r.n_volume_capabilities = 1;
    make_cap(&a, false, CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_MULTI_WRITER);
    caps[0] = a.ptr;
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_non_null(strstr(msg, "volume_capabilities[0]"));
    make_cap(&a, false, 0);
    caps[0] = a.ptr;
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_non_null(strstr(msg, "not a known mode"));
    make_cap(&a, false, SNW);
    a.cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE__NOT_SET;
    caps[0] = a.ptr;
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    make_cap(&a, false, SNW);
    make_cap(&b, true, SNW);
    caps[0] = a.ptr;
    caps[1] = b.ptr;
    r.n_volume_capabilities = 2;
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_non_null(strstr(msg, "block or mount"));
    a.mount.volume_mount_group = (char *)(uintptr_t) "1000";
    r.n_volume_capabilities = 1;
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_non_null(strstr(msg, "volume_mount_group"));
    assert_int_equal(fx->dir.creates, 0);
}

static void test_create_capacity_checks(void **state)
{
    struct fixture *fx = *state;
    char msg[256];

    assert_int_equal(create(fx, "v1", NULL, -1, 0, msg, NULL), -EINVAL);
    assert_int_equal(create(fx, "v1", NULL, 0, -5, msg, NULL), -EINVAL);
    assert_int_equal(create(fx, "v1", NULL, 100, 50, msg, NULL), -ERANGE);
    assert_non_null(strstr(msg, "limit_bytes 50"));
    assert_int_equal(fx->dir.creates, 0);
    assert_int_equal(create(fx, "v1", NULL, 100, 100, msg, NULL), 0);
    assert_int_equal(fx->dir.last_required, 100);
    assert_int_equal(fx->dir.last_limit, 100);
}

static void test_create_key_from_pvc_params(void **state)
{
    struct fixture *fx = *state;
    struct params_store ps = {0};
    Csi__V1__CreateVolumeResponse *resp = NULL;
    char msg[256];

    add_param(&ps, CSI_PARAM_PVC_NAMESPACE, "default");
    add_param(&ps, CSI_PARAM_PVC_NAME, "www-web-0");
    add_param(&ps, "csi.storage.k8s.io/pv/name", "pvc-123");
    assert_int_equal(create(fx, "pvc-123", &ps, 1 << 20, 0, msg, &resp), 0);
    assert_string_equal(fx->dir.last_key, "default/www-web-0");
    assert_true(fx->dir.last_key_is_claim);
    assert_int_equal(fx->dir.last_n_params, 0); /* k8s metadata is not a backend parameter */
    assert_string_equal(resp->volume->volume_id, "dir:default/www-web-0");
    assert_int_equal(resp->volume->capacity_bytes, 1 << 20);
    /* context and topology */
    assert_int_equal(resp->volume->n_volume_context, 2);
    assert_string_equal(resp->volume->volume_context[0]->key, CSI_CTX_KEY);
    assert_string_equal(resp->volume->volume_context[0]->value, "default/www-web-0");
    assert_string_equal(resp->volume->volume_context[1]->value, "dir");
    assert_int_equal(resp->volume->n_accessible_topology, 1);
    assert_string_equal(resp->volume->accessible_topology[0]->segments[0]->key, CSI_TOPOLOGY_KEY);
    assert_string_equal(resp->volume->accessible_topology[0]->segments[0]->value, "node-1");
    protobuf_c_message_free_unpacked(&resp->base, NULL);

    /* Without the PVC parameters the key is the name. */
    assert_int_equal(create(fx, "plain", NULL, 0, 0, msg, NULL), 0);
    assert_string_equal(fx->dir.last_key, "plain");
    assert_false(fx->dir.last_key_is_claim);
}

static void test_create_param_errors(void **state)
{
    struct fixture *fx = *state;
    struct params_store only_ns = {0}, bad_backend = {0}, unknown = {0}, chosen = {0};
    char msg[256];

    add_param(&only_ns, CSI_PARAM_PVC_NAMESPACE, "default");
    assert_int_equal(create(fx, "v", &only_ns, 0, 0, msg, NULL), -EINVAL);
    assert_non_null(strstr(msg, "must be given together"));
    add_param(&bad_backend, "backend", "zfs");
    assert_int_equal(create(fx, "v", &bad_backend, 0, 0, msg, NULL), -EINVAL);
    assert_non_null(strstr(msg, "\"zfs\""));
    assert_int_equal(fx->dir.creates + fx->aaa.creates, 0);
    /* Unknown parameters reach the backend, which judges them. */
    add_param(&unknown, "volumeGroup", "vg0");
    assert_int_equal(create(fx, "v", &unknown, 0, 0, msg, NULL), -EINVAL);
    assert_int_equal(fx->dir.last_n_params, 1);
    assert_non_null(strstr(msg, "volumeGroup"));
    add_param(&chosen, "backend", "aaa");
    assert_int_equal(create(fx, "v", &chosen, 0, 0, msg, NULL), 0);
    assert_int_equal(fx->aaa.creates, 1);
}

static void test_create_topology(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__CreateVolumeRequest r = CSI__V1__CREATE_VOLUME_REQUEST__INIT;
    Csi__V1__TopologyRequirement tr = CSI__V1__TOPOLOGY_REQUIREMENT__INIT;
    Csi__V1__Topology t = CSI__V1__TOPOLOGY__INIT, *tp = &t;
    Csi__V1__Topology__SegmentsEntry seg = CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT, *sp = &seg;
    struct cap_store cs;
    char msg[256];

    make_cap(&cs, false, SNW);
    r.name = (char *)(uintptr_t) "v1";
    r.n_volume_capabilities = 1;
    r.volume_capabilities = &cs.ptr;
    seg.key = (char *)(uintptr_t)CSI_TOPOLOGY_KEY;
    seg.value = (char *)(uintptr_t) "node-2";
    t.n_segments = 1;
    t.segments = &sp;
    tr.n_requisite = 1;
    tr.requisite = &tp;
    r.accessibility_requirements = &tr;
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -ENOSPC);
    assert_non_null(strstr(msg, "node-1"));
    seg.value = (char *)(uintptr_t) "node-1";
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), 0);
    /* preferred only: placed here */
    tr.n_requisite = 0;
    tr.n_preferred = 1;
    tr.preferred = &tp;
    seg.value = (char *)(uintptr_t) "node-9";
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), 0);
}

static void test_create_busy_key_is_aborted(void **state)
{
    struct fixture *fx = *state;
    struct lock_req held[] = {{.key = "k:v1", .shared = false}};
    char msg[256];

    assert_int_equal(lock_take(fx->svc.locks, held, 1, NULL), 0);
    assert_int_equal(create(fx, "v1", NULL, 0, 0, msg, NULL), -EAGAIN);
    assert_string_equal(msg, "an operation on volume v1 is already in progress; retry later");
    assert_int_equal(fx->dir.creates, 0);
    lock_give(fx->svc.locks, held, 1);
    assert_int_equal(create(fx, "v1", NULL, 0, 0, msg, NULL), 0);
}

static void test_create_content_sources(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__CreateVolumeRequest r = CSI__V1__CREATE_VOLUME_REQUEST__INIT;
    Csi__V1__VolumeContentSource src = CSI__V1__VOLUME_CONTENT_SOURCE__INIT;
    Csi__V1__VolumeContentSource__VolumeSource vs =
        CSI__V1__VOLUME_CONTENT_SOURCE__VOLUME_SOURCE__INIT;
    Csi__V1__VolumeContentSource__SnapshotSource ss =
        CSI__V1__VOLUME_CONTENT_SOURCE__SNAPSHOT_SOURCE__INIT;
    Csi__V1__CreateVolumeResponse *resp = NULL;
    struct cap_store cs;
    char msg[256];

    assert_int_equal(create(fx, "src", NULL, 0, 0, msg, NULL), 0);
    make_cap(&cs, false, SNW);
    r.name = (char *)(uintptr_t) "clone";
    r.n_volume_capabilities = 1;
    r.volume_capabilities = &cs.ptr;
    r.volume_content_source = &src;
    src.type_case = CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_VOLUME;
    src.volume = &vs;
    vs.volume_id = (char *)(uintptr_t) "dir:missing";
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -ENOENT);
    vs.volume_id = (char *)(uintptr_t) "nobackend:x";
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -ENOENT);
    vs.volume_id = (char *)(uintptr_t) "dir:src";
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), &resp, sizeof(resp)), 0);
    assert_non_null(resp->volume->content_source);
    assert_string_equal(resp->volume->content_source->volume->volume_id, "dir:src");
    protobuf_c_message_free_unpacked(&resp->base, NULL);

    src.type_case = CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_SNAPSHOT;
    src.snapshot = &ss;
    ss.snapshot_id = (char *)(uintptr_t) "dir:@nope";
    r.name = (char *)(uintptr_t) "restored";
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -ENOENT);
    assert_non_null(strstr(msg, "dir:@nope"));
    ss.snapshot_id = (char *)(uintptr_t) "";
    assert_int_equal(run(fx, csi_create_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
}

static void test_delete_volume(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__DeleteVolumeRequest r = CSI__V1__DELETE_VOLUME_REQUEST__INIT;
    char msg[256];

    assert_int_equal(run(fx, csi_delete_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    r.volume_id = (char *)(uintptr_t) "fake-vol-id";
    assert_int_equal(run(fx, csi_delete_volume, &r, msg, sizeof(msg), NULL, 0), 0);
    r.volume_id = (char *)(uintptr_t) "dir:unknown";
    assert_int_equal(run(fx, csi_delete_volume, &r, msg, sizeof(msg), NULL, 0), 0);
    assert_int_equal(fx->dir.removes, 0);
    assert_int_equal(create(fx, "v1", NULL, 0, 0, msg, NULL), 0);
    r.volume_id = (char *)(uintptr_t) "dir:v1";
    assert_int_equal(run(fx, csi_delete_volume, &r, msg, sizeof(msg), NULL, 0), 0);
    assert_int_equal(fx->dir.removes, 1);
    assert_int_equal(fx->dir.n, 0);
}

static void test_list_volumes_paging_across_backends(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__ListVolumesRequest r = CSI__V1__LIST_VOLUMES_REQUEST__INIT;
    Csi__V1__ListVolumesResponse *resp = NULL;
    struct params_store to_aaa = {0};
    char msg[256], names[5][8];
    char seen[16][BE_ID_MAX + 1];
    size_t n_seen = 0;
    char token[512] = "";

    add_param(&to_aaa, "backend", "aaa");
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof(names[i]), "v%d", i);
        assert_int_equal(create(fx, names[i], i < 2 ? &to_aaa : NULL, 0, 0, msg, NULL), 0);
    }
    r.max_entries = -1;
    assert_int_equal(run(fx, csi_list_volumes, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    r.max_entries = 2;
    for (int page = 0; page < 5; page++) {
        r.starting_token = token;
        assert_int_equal(run(fx, csi_list_volumes, &r, msg, sizeof(msg), &resp, sizeof(resp)), 0);
        assert_true(resp->n_entries <= 2);
        for (size_t i = 0; i < resp->n_entries; i++) {
            snprintf(seen[n_seen++], BE_ID_MAX + 1, "%s", resp->entries[i]->volume->volume_id);
            assert_non_null(resp->entries[i]->status->volume_condition);
        }
        snprintf(token, sizeof(token), "%s", resp->next_token);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        if (!token[0])
            break;
    }
    assert_int_equal(n_seen, 5);
    assert_string_equal(seen[0], "aaa:v0");
    assert_string_equal(seen[1], "aaa:v1");
    assert_string_equal(seen[2], "dir:v2");
    assert_string_equal(seen[4], "dir:v4");
    /* all at once */
    r.max_entries = 0;
    r.starting_token = (char *)(uintptr_t) "";
    assert_int_equal(run(fx, csi_list_volumes, &r, msg, sizeof(msg), &resp, sizeof(resp)), 0);
    assert_int_equal(resp->n_entries, 5);
    assert_string_equal(resp->next_token, "");
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    /* bad tokens */
    r.starting_token = (char *)(uintptr_t) "invalid-token";
    assert_int_equal(run(fx, csi_list_volumes, &r, msg, sizeof(msg), NULL, 0), -EAGAIN);
    r.starting_token = (char *)(uintptr_t) "t6";
    assert_int_equal(run(fx, csi_list_volumes, &r, msg, sizeof(msg), NULL, 0), -EAGAIN);
    r.starting_token = (char *)(uintptr_t) "t0000";
    assert_int_equal(run(fx, csi_list_volumes, &r, msg, sizeof(msg), NULL, 0), -EAGAIN);
}

static void test_tokens(void **state)
{
    struct csi_call *call = csi_call_new_detached();
    char id[BE_ID_MAX + 1];
    char *t;

    (void)state;
    t = csi_token_encode(call, "dir:ns/www-web-0");
    assert_int_equal(csi_token_decode(t, id, sizeof(id)), 0);
    assert_string_equal(id, "dir:ns/www-web-0");
    assert_int_equal(csi_token_decode("", id, sizeof(id)), -EAGAIN);
    assert_int_equal(csi_token_decode("tZZ", id, sizeof(id)), -EAGAIN);
    assert_int_equal(csi_token_decode("t4", id, sizeof(id)), -EAGAIN);
    assert_int_equal(csi_token_decode("x4142", id, sizeof(id)), -EAGAIN);
    assert_int_equal(csi_token_decode("t41", id, 1), -EAGAIN); /* does not fit */
    csi_call_free_detached(call);
}

static void test_validate_capabilities(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__ValidateVolumeCapabilitiesRequest r =
        CSI__V1__VALIDATE_VOLUME_CAPABILITIES_REQUEST__INIT;
    Csi__V1__ValidateVolumeCapabilitiesResponse *resp = NULL;
    struct cap_store cs;
    char msg[256];

    assert_int_equal(create(fx, "v1", NULL, 0, 0, msg, NULL), 0);
    assert_int_equal(run(fx, csi_validate_volume_capabilities, &r, msg, sizeof(msg), NULL, 0),
                     -EINVAL);
    r.volume_id = (char *)(uintptr_t) "dir:v1";
    assert_int_equal(run(fx, csi_validate_volume_capabilities, &r, msg, sizeof(msg), NULL, 0),
                     -EINVAL);
    make_cap(&cs, false, SNW);
    r.n_volume_capabilities = 1;
    r.volume_capabilities = &cs.ptr;
    r.volume_id = (char *)(uintptr_t) "dir:nope";
    assert_int_equal(run(fx, csi_validate_volume_capabilities, &r, msg, sizeof(msg), NULL, 0),
                     -ENOENT);
    r.volume_id = (char *)(uintptr_t) "dir:v1";
    assert_int_equal(
        run(fx, csi_validate_volume_capabilities, &r, msg, sizeof(msg), &resp, sizeof(resp)), 0);
    assert_non_null(resp->confirmed);
    assert_int_equal(resp->confirmed->n_volume_capabilities, 1);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    make_cap(&cs, true, SNW);
    assert_int_equal(
        run(fx, csi_validate_volume_capabilities, &r, msg, sizeof(msg), &resp, sizeof(resp)), 0);
    assert_null(resp->confirmed);
    assert_non_null(strstr(resp->message, "filesystem"));
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_capacity(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__GetCapacityRequest r = CSI__V1__GET_CAPACITY_REQUEST__INIT;
    Csi__V1__GetCapacityResponse *resp = NULL;
    Csi__V1__Topology t = CSI__V1__TOPOLOGY__INIT;
    Csi__V1__Topology__SegmentsEntry seg = CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT, *sp = &seg;
    char msg[256];

    assert_int_equal(run(fx, csi_get_capacity, &r, msg, sizeof(msg), &resp, sizeof(resp)), 0);
    assert_int_equal(resp->available_capacity, 1000);
    assert_int_equal(resp->maximum_volume_size->value, 900);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    seg.key = (char *)(uintptr_t)CSI_TOPOLOGY_KEY;
    seg.value = (char *)(uintptr_t) "elsewhere";
    t.n_segments = 1;
    t.segments = &sp;
    r.accessible_topology = &t;
    assert_int_equal(run(fx, csi_get_capacity, &r, msg, sizeof(msg), &resp, sizeof(resp)), 0);
    assert_int_equal(resp->available_capacity, 0);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_expand(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__ControllerExpandVolumeRequest r = CSI__V1__CONTROLLER_EXPAND_VOLUME_REQUEST__INIT;
    Csi__V1__ControllerExpandVolumeResponse *resp = NULL;
    Csi__V1__CapacityRange cr = CSI__V1__CAPACITY_RANGE__INIT;
    char msg[256];

    assert_int_equal(create(fx, "v1", NULL, 1000, 0, msg, NULL), 0);
    assert_int_equal(run(fx, csi_controller_expand_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    r.volume_id = (char *)(uintptr_t) "dir:v1";
    assert_int_equal(run(fx, csi_controller_expand_volume, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_string_equal(msg, "capacity_range is required");
    r.capacity_range = &cr;
    cr.required_bytes = 5000;
    cr.limit_bytes = 10;
    assert_int_equal(run(fx, csi_controller_expand_volume, &r, msg, sizeof(msg), NULL, 0), -ERANGE);
    cr.limit_bytes = 0;
    r.volume_id = (char *)(uintptr_t) "dir:none";
    assert_int_equal(run(fx, csi_controller_expand_volume, &r, msg, sizeof(msg), NULL, 0), -ENOENT);
    r.volume_id = (char *)(uintptr_t) "dir:v1";
    assert_int_equal(
        run(fx, csi_controller_expand_volume, &r, msg, sizeof(msg), &resp, sizeof(resp)), 0);
    assert_int_equal(resp->capacity_bytes, 5000);
    assert_false(resp->node_expansion_required);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_snapshots(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__CreateSnapshotRequest r = CSI__V1__CREATE_SNAPSHOT_REQUEST__INIT;
    Csi__V1__ListSnapshotsRequest lr = CSI__V1__LIST_SNAPSHOTS_REQUEST__INIT;
    Csi__V1__ListSnapshotsResponse *list = NULL;
    Csi__V1__CreateSnapshotResponse *resp = NULL;
    char msg[256], name[8];

    r.source_volume_id = (char *)(uintptr_t) "testId";
    assert_int_equal(run(fx, csi_create_snapshot, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_string_equal(msg, "name is required"); /* before the unknown source */
    r.name = (char *)(uintptr_t) "s1";
    r.source_volume_id = (char *)(uintptr_t) "";
    assert_int_equal(run(fx, csi_create_snapshot, &r, msg, sizeof(msg), NULL, 0), -EINVAL);
    r.source_volume_id = (char *)(uintptr_t) "dir:nope";
    assert_int_equal(run(fx, csi_create_snapshot, &r, msg, sizeof(msg), NULL, 0), -ENOENT);
    assert_int_equal(create(fx, "v1", NULL, 0, 0, msg, NULL), 0);
    assert_int_equal(create(fx, "v2", NULL, 0, 0, msg, NULL), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        r.name = name;
        r.source_volume_id = (char *)(uintptr_t)(i == 4 ? "dir:v2" : "dir:v1");
        assert_int_equal(run(fx, csi_create_snapshot, &r, msg, sizeof(msg), &resp, sizeof(resp)),
                         0);
        assert_true(resp->snapshot->ready_to_use);
        assert_non_null(resp->snapshot->creation_time);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    lr.max_entries = 2;
    assert_int_equal(run(fx, csi_list_snapshots, &lr, msg, sizeof(msg), &list, sizeof(list)), 0);
    assert_int_equal(list->n_entries, 2);
    char token[256];
    snprintf(token, sizeof(token), "%s", list->next_token);
    protobuf_c_message_free_unpacked(&list->base, NULL);
    lr.max_entries = 0;
    lr.starting_token = token;
    assert_int_equal(run(fx, csi_list_snapshots, &lr, msg, sizeof(msg), &list, sizeof(list)), 0);
    assert_int_equal(list->n_entries, 3);
    protobuf_c_message_free_unpacked(&list->base, NULL);
    lr.starting_token = (char *)(uintptr_t) "";
    lr.source_volume_id = (char *)(uintptr_t) "dir:v2";
    assert_int_equal(run(fx, csi_list_snapshots, &lr, msg, sizeof(msg), &list, sizeof(list)), 0);
    assert_int_equal(list->n_entries, 1);
    assert_string_equal(list->entries[0]->snapshot->snapshot_id, "dir:@s4");
    protobuf_c_message_free_unpacked(&list->base, NULL);
    lr.source_volume_id = (char *)(uintptr_t) "";
    lr.snapshot_id = (char *)(uintptr_t) "none-exist-id";
    assert_int_equal(run(fx, csi_list_snapshots, &lr, msg, sizeof(msg), &list, sizeof(list)), 0);
    assert_int_equal(list->n_entries, 0);
    protobuf_c_message_free_unpacked(&list->base, NULL);
    lr.snapshot_id = (char *)(uintptr_t) "";
    lr.starting_token = (char *)(uintptr_t) "bogus";
    assert_int_equal(run(fx, csi_list_snapshots, &lr, msg, sizeof(msg), NULL, 0), -EAGAIN);
}

static void test_node_rules(void **state)
{
    struct fixture *fx = *state;
    Csi__V1__NodePublishVolumeRequest p = CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__INIT;
    Csi__V1__NodeGetVolumeStatsRequest s = CSI__V1__NODE_GET_VOLUME_STATS_REQUEST__INIT;
    Csi__V1__NodeGetVolumeStatsResponse *stats = NULL;
    Csi__V1__NodeGetInfoRequest ir = CSI__V1__NODE_GET_INFO_REQUEST__INIT;
    Csi__V1__NodeGetInfoResponse *info = NULL;
    struct cap_store cs;
    char msg[256];

    assert_int_equal(create(fx, "v1", NULL, 0, 0, msg, NULL), 0);
    make_cap(&cs, false, SNW);
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), -EINVAL);
    p.volume_id = (char *)(uintptr_t) "dir:random";
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_string_equal(msg, "target_path is required");
    p.target_path = (char *)(uintptr_t) "relative/path";
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), -EINVAL);
    p.target_path = (char *)(uintptr_t) "/mnt/target";
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), -EINVAL);
    assert_string_equal(msg, "volume_capability is required");
    p.volume_capability = cs.ptr;
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), -ENOENT);
    p.volume_id = (char *)(uintptr_t) "dir:v1";
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), -ENOTCONN);
    p.staging_target_path = (char *)(uintptr_t) "/mnt/staging";
    make_cap(&cs, true, SNW);
    p.volume_capability = cs.ptr;
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), -EMEDIUMTYPE);
    make_cap(&cs, false, CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY);
    p.volume_capability = cs.ptr;
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), 0);
    assert_true(fx->dir.last_readonly); /* a reader-only mode is always read-only */
    assert_string_equal(fx->dir.last_target, "/mnt/target");

    s.volume_id = (char *)(uintptr_t) "dir:v1";
    assert_int_equal(run(fx, csi_node_get_volume_stats, &s, msg, sizeof(msg), NULL, 0), -EINVAL);
    s.volume_path = (char *)(uintptr_t) "some/path";
    assert_int_equal(run(fx, csi_node_get_volume_stats, &s, msg, sizeof(msg), NULL, 0), -ENOENT);
    s.volume_path = (char *)(uintptr_t) "/mnt/target";
    assert_int_equal(
        run(fx, csi_node_get_volume_stats, &s, msg, sizeof(msg), &stats, sizeof(stats)), 0);
    assert_int_equal(stats->n_usage, 1); /* no inode figures from this backend */
    assert_int_equal(stats->usage[0]->total, 100);
    assert_int_equal(stats->usage[0]->used, 40);
    assert_false(stats->volume_condition->abnormal);
    protobuf_c_message_free_unpacked(&stats->base, NULL);

    assert_int_equal(run(fx, csi_node_get_info, &ir, msg, sizeof(msg), &info, sizeof(info)), 0);
    assert_string_equal(info->node_id, "node-1");
    assert_string_equal(info->accessible_topology->segments[0]->value, "node-1");
    protobuf_c_message_free_unpacked(&info->base, NULL);

    fx->svc.mode = CSI_MODE_CONTROLLER;
    assert_int_equal(run(fx, csi_node_get_info, &ir, msg, sizeof(msg), NULL, 0), -ENOSYS);
    assert_int_equal(run(fx, csi_node_publish_volume, &p, msg, sizeof(msg), NULL, 0), -ENOSYS);
}

/* ---- capabilities follow the configured backends ---- */

#define CC(x) (1u << CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__##x)
#define NC(x) (1u << CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__##x)
#define PC_CONTROLLER 1u
#define PC_TOPOLOGY 2u
#define PC_EXPANSION 4u

struct caps_seen {
    int controller_rc, node_rc;
    unsigned controller, node, plugin;
};

static void caps_of(struct fixture *fx, struct caps_seen *ret)
{
    Csi__V1__ControllerGetCapabilitiesRequest cr =
        CSI__V1__CONTROLLER_GET_CAPABILITIES_REQUEST__INIT;
    Csi__V1__NodeGetCapabilitiesRequest nr = CSI__V1__NODE_GET_CAPABILITIES_REQUEST__INIT;
    Csi__V1__GetPluginCapabilitiesRequest pr = CSI__V1__GET_PLUGIN_CAPABILITIES_REQUEST__INIT;
    Csi__V1__ControllerGetCapabilitiesResponse *c = NULL;
    Csi__V1__NodeGetCapabilitiesResponse *n = NULL;
    Csi__V1__GetPluginCapabilitiesResponse *p = NULL;

    memset(ret, 0, sizeof(*ret));
    ret->controller_rc = run(fx, csi_controller_get_capabilities, &cr, NULL, 0, &c, sizeof(c));
    if (c) {
        for (size_t i = 0; i < c->n_capabilities; i++) {
            unsigned bit = 1u << c->capabilities[i]->rpc->type;
            assert_false(ret->controller & bit); /* each at most once */
            ret->controller |= bit;
        }
        protobuf_c_message_free_unpacked(&c->base, NULL);
    }
    ret->node_rc = run(fx, csi_node_get_capabilities, &nr, NULL, 0, &n, sizeof(n));
    if (n) {
        for (size_t i = 0; i < n->n_capabilities; i++) {
            unsigned bit = 1u << n->capabilities[i]->rpc->type;
            assert_false(ret->node & bit);
            ret->node |= bit;
        }
        protobuf_c_message_free_unpacked(&n->base, NULL);
    }
    assert_int_equal(run(fx, csi_get_plugin_capabilities, &pr, NULL, 0, &p, sizeof(p)), 0);
    for (size_t i = 0; i < p->n_capabilities; i++) {
        const Csi__V1__PluginCapability *pc = p->capabilities[i];
        if (pc->type_case == CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION)
            ret->plugin |= PC_EXPANSION;
        else if (pc->service->type == CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__CONTROLLER_SERVICE)
            ret->plugin |= PC_CONTROLLER;
        else
            ret->plugin |= PC_TOPOLOGY;
    }
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void test_capabilities_follow_backends(void **state)
{
    struct fixture *fx = *state;
    struct fake lvm = {0};
    const unsigned volume_caps = CC(CREATE_DELETE_VOLUME) | CC(LIST_VOLUMES) | CC(GET_CAPACITY) |
                                 CC(EXPAND_VOLUME) | CC(VOLUME_CONDITION) | CC(GET_VOLUME);
    const unsigned snapshot_caps =
        CC(CREATE_DELETE_SNAPSHOT) | CC(LIST_SNAPSHOTS) | CC(CLONE_VOLUME);
    const unsigned node_caps =
        NC(STAGE_UNSTAGE_VOLUME) | NC(GET_VOLUME_STATS) | NC(EXPAND_VOLUME) | NC(VOLUME_CONDITION);
    const unsigned plugin_caps = PC_CONTROLLER | PC_TOPOLOGY | PC_EXPANSION;
    static const struct {
        const char *what;
        bool dir, lvm;
    } cases[] = {
        {"none", false, false},
        {"dir only", true, false},
        {"lvm only", false, true},
        {"dir and lvm", true, true},
    };

    lvm.b.ops = &fake_ops_lvm;
    snprintf(lvm.name, sizeof(lvm.name), "lvm");
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        for (int mode = 0; mode < 2; mode++) {
            unsigned want_c = 0, want_n = 0, want_p = 0;
            struct caps_seen got;

            fx->svc.n_backends = 0;
            if (cases[i].dir)
                fx->svc.backends[fx->svc.n_backends++] = &fx->dir.b;
            if (cases[i].lvm)
                fx->svc.backends[fx->svc.n_backends++] = &lvm.b;
            fx->svc.mode = mode ? CSI_MODE_CONTROLLER : CSI_MODE_NODE;
            if (cases[i].dir || cases[i].lvm) {
                want_c = volume_caps | (cases[i].dir ? snapshot_caps : 0);
                want_n = node_caps;
                want_p = plugin_caps;
            }
            print_message("%s, %s mode\n", cases[i].what, mode ? "controller" : "node");
            caps_of(fx, &got);
            assert_int_equal(got.controller_rc, 0);
            assert_int_equal(got.controller, want_c);
            assert_int_equal(got.plugin, want_p);
            if (mode) {
                assert_int_equal(got.node_rc, -ENOSYS);
            } else {
                assert_int_equal(got.node_rc, 0);
                assert_int_equal(got.node, want_n);
            }
        }
    }
}

/* Node RPCs for a volume whose backend lacks the slot answer UNIMPLEMENTED, never call NULL;
 * and such a backend alone advertises no node capability. */
static void test_node_rpcs_check_backend_slots(void **state)
{
    struct fixture *fx = *state;
    struct fake bare = {0};
    Csi__V1__NodeStageVolumeRequest st = CSI__V1__NODE_STAGE_VOLUME_REQUEST__INIT;
    Csi__V1__NodeUnstageVolumeRequest us = CSI__V1__NODE_UNSTAGE_VOLUME_REQUEST__INIT;
    Csi__V1__NodePublishVolumeRequest pu = CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__INIT;
    Csi__V1__NodeUnpublishVolumeRequest up = CSI__V1__NODE_UNPUBLISH_VOLUME_REQUEST__INIT;
    Csi__V1__NodeGetVolumeStatsRequest gs = CSI__V1__NODE_GET_VOLUME_STATS_REQUEST__INIT;
    Csi__V1__NodeExpandVolumeRequest ex = CSI__V1__NODE_EXPAND_VOLUME_REQUEST__INIT;
    struct caps_seen got;
    struct cap_store cs;
    char msg[256];

    bare.b.ops = &fake_ops_bare;
    snprintf(bare.name, sizeof(bare.name), "bare");
    fx->svc.backends[0] = &bare.b;
    fx->svc.n_backends = 1;
    caps_of(fx, &got);
    assert_int_equal(got.node, 0);
    assert_int_equal(got.controller,
                     CC(CREATE_DELETE_VOLUME) | CC(VOLUME_CONDITION) | CC(GET_VOLUME));
    assert_int_equal(got.plugin, PC_CONTROLLER | PC_TOPOLOGY);

    assert_int_equal(create(fx, "b1", NULL, 0, 0, msg, NULL), 0);
    make_cap(&cs, false, SNW);
    st.volume_id = us.volume_id = pu.volume_id = up.volume_id = gs.volume_id = ex.volume_id =
        (char *)(uintptr_t) "bare:b1";
    st.staging_target_path = us.staging_target_path = pu.staging_target_path =
        (char *)(uintptr_t) "/mnt/staging";
    pu.target_path = up.target_path = gs.volume_path = ex.volume_path =
        (char *)(uintptr_t) "/mnt/target";
    st.volume_capability = pu.volume_capability = cs.ptr;
    assert_int_equal(run(fx, csi_node_stage_volume, &st, msg, sizeof(msg), NULL, 0), -ENOSYS);
    assert_non_null(strstr(msg, "NodeStageVolume: backend bare does not offer it"));
    assert_int_equal(run(fx, csi_node_unstage_volume, &us, msg, sizeof(msg), NULL, 0), -ENOSYS);
    assert_int_equal(run(fx, csi_node_publish_volume, &pu, msg, sizeof(msg), NULL, 0), -ENOSYS);
    assert_int_equal(run(fx, csi_node_unpublish_volume, &up, msg, sizeof(msg), NULL, 0), -ENOSYS);
    assert_int_equal(run(fx, csi_node_get_volume_stats, &gs, msg, sizeof(msg), NULL, 0), -ENOSYS);
    assert_int_equal(run(fx, csi_node_expand_volume, &ex, msg, sizeof(msg), NULL, 0), -ENOSYS);
}

static void test_method_table(void **state)
{
    (void)state;
    assert_int_equal(csi_n_methods, 26);
    for (size_t i = 0; i < csi_n_methods; i++) {
        assert_true(strncmp(csi_methods[i].path, "/csi.v1.", 8) == 0);
        assert_non_null(csi_methods[i].handler);
        assert_non_null(csi_methods[i].request);
        for (size_t k = 0; k < i; k++)
            assert_true(strcmp(csi_methods[i].path, csi_methods[k].path) != 0);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_identity),
        T(test_create_required_fields_first),
        T(test_create_capabilities),
        T(test_create_capacity_checks),
        T(test_create_key_from_pvc_params),
        T(test_create_param_errors),
        T(test_create_topology),
        T(test_create_busy_key_is_aborted),
        T(test_create_content_sources),
        T(test_delete_volume),
        T(test_list_volumes_paging_across_backends),
        cmocka_unit_test(test_tokens),
        T(test_validate_capabilities),
        T(test_capacity),
        T(test_expand),
        T(test_snapshots),
        T(test_node_rules),
        T(test_capabilities_follow_backends),
        T(test_node_rpcs_check_backend_slots),
        cmocka_unit_test(test_method_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
