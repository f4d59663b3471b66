/*
 * The method table and helpers shared by the three CSI services (see csi.h).
 */
#include "csi.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define M(svc, name, msg, fn)                                                                      \
    {                                                                                              \
        "/csi.v1." svc "/" name, &csi__v1__##msg##__descriptor, csi_##fn                           \
    }

const struct csi_method csi_methods[] = {
    M("Identity", "GetPluginInfo", get_plugin_info_request, get_plugin_info),
    M("Identity", "GetPluginCapabilities", get_plugin_capabilities_request,
      get_plugin_capabilities),
    M("Identity", "Probe", probe_request, probe),
    M("Controller", "CreateVolume", create_volume_request, create_volume),
    M("Controller", "DeleteVolume", delete_volume_request, delete_volume),
    M("Controller", "ControllerPublishVolume", controller_publish_volume_request,
      controller_publish_volume),
    M("Controller", "ControllerUnpublishVolume", controller_unpublish_volume_request,
      controller_unpublish_volume),
    M("Controller", "ValidateVolumeCapabilities", validate_volume_capabilities_request,
      validate_volume_capabilities),
    M("Controller", "ListVolumes", list_volumes_request, list_volumes),
    M("Controller", "GetCapacity", get_capacity_request, get_capacity),
    M("Controller", "ControllerGetCapabilities", controller_get_capabilities_request,
      controller_get_capabilities),
    M("Controller", "CreateSnapshot", create_snapshot_request, create_snapshot),
    M("Controller", "DeleteSnapshot", delete_snapshot_request, delete_snapshot),
    M("Controller", "ListSnapshots", list_snapshots_request, list_snapshots),
    M("Controller", "ControllerExpandVolume", controller_expand_volume_request,
      controller_expand_volume),
    M("Controller", "ControllerGetVolume", controller_get_volume_request, controller_get_volume),
    M("Controller", "ControllerModifyVolume", controller_modify_volume_request,
      controller_modify_volume),
    M("Controller", "GetSnapshot", get_snapshot_request, get_snapshot),
    M("Node", "NodeStageVolume", node_stage_volume_request, node_stage_volume),
    M("Node", "NodeUnstageVolume", node_unstage_volume_request, node_unstage_volume),
    M("Node", "NodePublishVolume", node_publish_volume_request, node_publish_volume),
    M("Node", "NodeUnpublishVolume", node_unpublish_volume_request, node_unpublish_volume),
    M("Node", "NodeGetVolumeStats", node_get_volume_stats_request, node_get_volume_stats),
    M("Node", "NodeExpandVolume", node_expand_volume_request, node_expand_volume),
    M("Node", "NodeGetCapabilities", node_get_capabilities_request, node_get_capabilities),
    M("Node", "NodeGetInfo", node_get_info_request, node_get_info),
};
const size_t csi_n_methods = ARRAY_SIZE(csi_methods);

ProtobufCMessage *csi_empty_msg(struct csi_call *call, const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = arena_alloc(csi_call_arena(call), d->sizeof_message);

    if (m)
        protobuf_c_message_init(d, m);
    return m;
}

const char *csi_map_get(struct csi_kv *const *entries, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (entries[i]->key && strcmp(entries[i]->key, key) == 0)
            return entries[i]->value ? entries[i]->value : "";
    return NULL;
}

void csi_caps_of(const struct csi_service *svc, struct csi_caps *ret)
{
    memset(ret, 0, sizeof(*ret));
    for (size_t i = 0; i < svc->n_backends; i++) {
        const struct be_ops *o = svc->backends[i]->ops;

        ret->volumes |= o->create && o->remove;
        ret->list_volumes |= o->list != NULL;
        ret->get_volume |= o->lookup != NULL;
        ret->capacity |= o->capacity != NULL;
        ret->snapshots |= o->snapshot_create && o->snapshot_remove && o->snapshot_lookup;
        ret->list_snapshots |= o->snapshot_list != NULL;
        ret->clone |= o->create && o->content_sources;
        ret->expand |= o->expand != NULL;
        ret->stage |= o->stage && o->unstage;
        ret->stats |= o->stats != NULL;
        ret->node_expand |= o->node_expand != NULL;
    }
}

struct backend *csi_backend_named(struct csi_service *svc, const char *name)
{
    for (size_t i = 0; i < svc->n_backends; i++)
        if (strcmp(svc->backends[i]->ops->name, name) == 0)
            return svc->backends[i];
    return NULL;
}

struct backend *csi_backend_for_id(struct csi_service *svc, const char *id)
{
    const char *colon = strchr(id, ':');

    if (!colon)
        return NULL;
    for (size_t i = 0; i < svc->n_backends; i++) {
        const char *name = svc->backends[i]->ops->name;
        if (strlen(name) == (size_t)(colon - id) && strncmp(id, name, (size_t)(colon - id)) == 0)
            return svc->backends[i];
    }
    return NULL;
}

int csi_check_capability(struct csi_call *call, const Csi__V1__VolumeCapability *cap,
                         const char *field, enum be_access *ret_access)
{
    if (!cap)
        return csi_call_error(call, -EINVAL, "%s is required", field);
    if (!cap->access_mode)
        return csi_call_error(call, -EINVAL, "%s.access_mode is required", field);
    if (cap->access_mode->mode == CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__UNKNOWN ||
        cap->access_mode->mode >
            CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_MULTI_WRITER)
        return csi_call_error(call, -EINVAL, "%s.access_mode.mode %d is not a known mode", field,
                              (int)cap->access_mode->mode);
    switch (cap->access_type_case) {
    case CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK:
        *ret_access = BE_ACCESS_BLOCK;
        return 0;
    case CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT:
        if (cap->mount) {
            size_t total = 0;
            for (size_t i = 0; i < cap->mount->n_mount_flags; i++)
                total += strlen(cap->mount->mount_flags[i]);
            if (total > CSI_MAP_MAX)
                return csi_call_error(call, -EINVAL, "%s.mount.mount_flags is larger than %d bytes",
                                      field, CSI_MAP_MAX);
        }
        if (cap->mount && cap->mount->volume_mount_group && cap->mount->volume_mount_group[0])
            return csi_call_error(call, -EINVAL,
                                  "%s.mount.volume_mount_group is not supported by this driver",
                                  field);
        *ret_access = BE_ACCESS_MOUNT;
        return 0;
    default:
        return csi_call_error(call, -EINVAL, "%s: one of block or mount is required", field);
    }
}

bool csi_capability_supported(const Csi__V1__VolumeCapability *cap, enum be_access access,
                              const char **ret_why)
{
    bool block = cap->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK;

    switch (cap->access_mode->mode) {
    case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER:
    case CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY:
        break;
    default:
        *ret_why = "only SINGLE_NODE_WRITER and SINGLE_NODE_READER_ONLY are supported: "
                   "volumes are local to one node";
        return false;
    }
    if (block != (access == BE_ACCESS_BLOCK)) {
        *ret_why = access == BE_ACCESS_BLOCK ? "the volume is a raw block volume"
                                             : "the volume is a filesystem (mount) volume";
        return false;
    }
    return true;
}

Csi__V1__Topology *csi_node_topology(struct csi_call *call, struct csi_service *svc)
{
    struct arena *a = csi_call_arena(call);
    Csi__V1__Topology *t = arena_alloc(a, sizeof(*t));
    Csi__V1__Topology__SegmentsEntry **entries = arena_alloc(a, sizeof(*entries));
    Csi__V1__Topology__SegmentsEntry *e = arena_alloc(a, sizeof(*e));

    if (!t || !entries || !e)
        return NULL;
    csi__v1__topology__init(t);
    csi__v1__topology__segments_entry__init(e);
    e->key = (char *)(uintptr_t)CSI_TOPOLOGY_KEY;
    e->value = (char *)(uintptr_t)svc->node_id;
    entries[0] = e;
    t->n_segments = 1;
    t->segments = entries;
    return t;
}

Csi__V1__VolumeCondition *csi_condition_msg(struct csi_call *call, bool abnormal,
                                            const char *message)
{
    Csi__V1__VolumeCondition *c = arena_alloc(csi_call_arena(call), sizeof(*c));

    if (!c)
        return NULL;
    csi__v1__volume_condition__init(c);
    c->abnormal = abnormal;
    c->message = arena_strdup(csi_call_arena(call), message[0] ? message : "healthy");
    return c->message ? c : NULL;
}

Csi__V1__Volume *csi_volume_msg(struct csi_call *call, struct csi_service *svc,
                                const struct be_volume *v)
{
    struct arena *a = csi_call_arena(call);
    Csi__V1__Volume *m = arena_alloc(a, sizeof(*m));
    Csi__V1__Volume__VolumeContextEntry **ctx = arena_alloc(a, 2 * sizeof(*ctx));
    Csi__V1__Volume__VolumeContextEntry *e = arena_alloc(a, 2 * sizeof(*e));
    Csi__V1__Topology **topo = arena_alloc(a, sizeof(*topo));

    if (!m || !ctx || !e || !topo)
        return NULL;
    csi__v1__volume__init(m);
    m->capacity_bytes = v->capacity_bytes;
    m->volume_id = arena_strdup(a, v->id);
    /* volume_context is immutable per volume: only what never changes goes in. */
    csi__v1__volume__volume_context_entry__init(&e[0]);
    e[0].key = (char *)(uintptr_t)CSI_CTX_KEY;
    e[0].value = arena_strdup(a, v->key);
    csi__v1__volume__volume_context_entry__init(&e[1]);
    e[1].key = (char *)(uintptr_t)CSI_CTX_BACKEND;
    const char *colon = strchr(v->id, ':');
    e[1].value = colon ? arena_printf(a, "%.*s", (int)(colon - v->id), v->id) : NULL;
    if (!m->volume_id || !e[0].value || !e[1].value)
        return NULL;
    ctx[0] = &e[0];
    ctx[1] = &e[1];
    m->n_volume_context = 2;
    m->volume_context = ctx;

    if (v->source_kind != BE_SOURCE_NONE) {
        Csi__V1__VolumeContentSource *src = arena_alloc(a, sizeof(*src));
        if (!src)
            return NULL;
        csi__v1__volume_content_source__init(src);
        if (v->source_kind == BE_SOURCE_SNAPSHOT) {
            Csi__V1__VolumeContentSource__SnapshotSource *s = arena_alloc(a, sizeof(*s));
            if (!s)
                return NULL;
            csi__v1__volume_content_source__snapshot_source__init(s);
            s->snapshot_id = arena_strdup(a, v->source_id);
            src->type_case = CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_SNAPSHOT;
            src->snapshot = s;
            if (!s->snapshot_id)
                return NULL;
        } else {
            Csi__V1__VolumeContentSource__VolumeSource *s = arena_alloc(a, sizeof(*s));
            if (!s)
                return NULL;
            csi__v1__volume_content_source__volume_source__init(s);
            s->volume_id = arena_strdup(a, v->source_id);
            src->type_case = CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_VOLUME;
            src->volume = s;
            if (!s->volume_id)
                return NULL;
        }
        m->content_source = src;
    }
    topo[0] = csi_node_topology(call, svc);
    if (!topo[0])
        return NULL;
    m->n_accessible_topology = 1;
    m->accessible_topology = topo;
    return m;
}

Csi__V1__Snapshot *csi_snapshot_msg(struct csi_call *call, const struct be_snapshot *s)
{
    struct arena *a = csi_call_arena(call);
    Csi__V1__Snapshot *m = arena_alloc(a, sizeof(*m));
    Google__Protobuf__Timestamp *ts = arena_alloc(a, sizeof(*ts));

    if (!m || !ts)
        return NULL;
    csi__v1__snapshot__init(m);
    google__protobuf__timestamp__init(ts);
    ts->seconds = s->created_sec;
    ts->nanos = s->created_nsec;
    m->size_bytes = s->size_bytes;
    m->snapshot_id = arena_strdup(a, s->id);
    m->source_volume_id = arena_strdup(a, s->source_volume_id);
    m->creation_time = ts;
    m->ready_to_use = s->ready;
    if (!m->snapshot_id || !m->source_volume_id)
        return NULL;
    return m;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int csi_token_decode(const char *token, char *ret_id, size_t size)
{
    size_t n = strlen(token);

    if (n < 3 || token[0] != 't' || (n - 1) % 2 != 0 || (n - 1) / 2 >= size)
        return -EAGAIN;
    for (size_t i = 1, o = 0; i < n; i += 2, o++) {
        int hi = hexval(token[i]), lo = hexval(token[i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return -EAGAIN;
        ret_id[o] = (char)(hi << 4 | lo);
    }
    ret_id[(n - 1) / 2] = '\0';
    return 0;
}

char *csi_token_encode(struct csi_call *call, const char *id)
{
    size_t n = strlen(id);
    char *t = arena_alloc(csi_call_arena(call), 2 * n + 2);

    if (!t)
        return NULL;
    t[0] = 't';
    for (size_t i = 0; i < n; i++)
        snprintf(t + 1 + 2 * i, 3, "%02x", (unsigned char)id[i]);
    return t;
}

int csi_lock(struct csi_call *call, struct csi_service *svc, const struct lock_req *reqs, size_t n)
{
    size_t busy = 0;
    int r = lock_take(svc->locks, reqs, n, &busy);

    if (r == -EAGAIN) {
        const char *key = reqs[busy].key;
        const char *what = key[0] == 's' ? "snapshot" : key[0] == 'n' ? "name" : "volume";
        return csi_call_error(call, r, "an operation on %s %s is already in progress; retry later",
                              what, key + 2);
    }
    if (r < 0)
        return csi_call_error(call, r, "cannot record the operation: out of memory");
    return 0;
}

void csi_unlock(struct csi_service *svc, const struct lock_req *reqs, size_t n)
{
    lock_give(svc->locks, reqs, n);
}

int csi_lock_key(struct csi_call *call, struct csi_service *svc, const char *key)
{
    struct lock_req req = {.key = key, .shared = false};

    return csi_lock(call, svc, &req, 1);
}

void csi_unlock_key(struct csi_service *svc, const char *key)
{
    struct lock_req req = {.key = key, .shared = false};

    csi_unlock(svc, &req, 1);
}

int csi_check_map(struct csi_call *call, struct csi_kv *const *entries, size_t n, const char *field)
{
    size_t total = 0;

    for (size_t i = 0; i < n; i++)
        total += strlen(entries[i]->key ? entries[i]->key : "") +
                 strlen(entries[i]->value ? entries[i]->value : "");
    if (total > CSI_MAP_MAX)
        return csi_call_error(call, -EINVAL, "%s is larger than %d bytes", field, CSI_MAP_MAX);
    return 0;
}

int csi_check_path(struct csi_call *call, const char *path, const char *field)
{
    if (!path || !path[0])
        return csi_call_error(call, -EINVAL, "%s is required", field);
    if (path[0] != '/')
        return csi_call_error(call, -EINVAL, "%s must be an absolute path", field);
    if (strlen(path) >= PATH_MAX)
        return csi_call_error(call, -EINVAL, "%s is longer than %d bytes", field, PATH_MAX - 1);
    return 0;
}
