/*
 * CSI Node service: stage, publish and their inverses, stats, expansion, capabilities, info.
 * Served only in --mode node; in controller mode every Node RPC is UNIMPLEMENTED.
 *
 * Threading: as controller.c; stage/publish/unpublish/unstage/expand take the volume's key lock,
 * stats does not (it only reads).
 */
#include "csi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static int require_node_mode(struct csi_call *call, struct csi_service *svc)
{
    if (svc->mode != CSI_MODE_NODE)
        return csi_call_error(call, -ENOSYS, "the Node service is not served in controller mode");
    return 0;
}

/* Find the volume of a node RPC: 0, or -ENOENT with the message set. */
static int find_volume(struct csi_call *call, struct csi_service *svc, const char *id,
                       struct backend **ret_be, struct be_volume *ret_vol)
{
    struct backend *be = csi_backend_for_id(svc, id);

    if (!be || be->ops->lookup(be, id, ret_vol) < 0)
        return csi_call_error(call, -ENOENT, "volume %s does not exist", id);
    *ret_be = be;
    return 0;
}

/* A node RPC whose backend slot is missing: UNIMPLEMENTED (and the capability behind it is not
 * advertised), never a call through NULL. */
static int require_slot(struct csi_call *call, const struct backend *be, bool offered,
                        const char *rpc)
{
    if (!offered)
        return csi_call_error(call, -ENOSYS, "%s: backend %s does not offer it", rpc,
                              be->ops->name);
    return 0;
}

static int lock_volume(struct csi_call *call, struct csi_service *svc, const struct be_volume *v,
                       const char **ret_key)
{
    *ret_key = arena_printf(csi_call_arena(call), "k:%s", v->key);
    if (!*ret_key)
        return -ENOMEM;
    return csi_lock_key(call, svc, *ret_key);
}

/* Fill the mount request from a capability already checked by csi_check_capability. */
static void mount_req_from_cap(struct be_mount_req *m, const Csi__V1__VolumeCapability *cap)
{
    if (cap->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT && cap->mount) {
        m->fs_type = cap->mount->fs_type ? cap->mount->fs_type : "";
        m->mount_flags = (const char *const *)cap->mount->mount_flags;
        m->n_mount_flags = cap->mount->n_mount_flags;
    } else {
        m->fs_type = "";
        m->mount_flags = NULL;
        m->n_mount_flags = 0;
    }
}

CSI_HANDLER(node_stage_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__NodeStageVolumeRequest *r = (const Csi__V1__NodeStageVolumeRequest *)req;
    struct be_mount_req m = {0};
    struct be_volume vol;
    struct backend *be;
    enum be_access acc;
    const char *why, *key;
    int rc;

    if ((rc = require_node_mode(call, svc)) < 0)
        return rc;
    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    if ((rc = csi_check_path(call, r->staging_target_path, "staging_target_path")) < 0)
        return rc;
    if ((rc = csi_check_capability(call, r->volume_capability, "volume_capability", &acc)) < 0)
        return rc;
    if ((rc = csi_check_map(call, CSI_KV(r->volume_context), r->n_volume_context,
                            "volume_context")) < 0 ||
        (rc = csi_check_map(call, CSI_KV(r->publish_context), r->n_publish_context,
                            "publish_context")) < 0 ||
        (rc = csi_check_map(call, CSI_KV(r->secrets), r->n_secrets, "secrets")) < 0)
        return rc;
    if ((rc = find_volume(call, svc, r->volume_id, &be, &vol)) < 0)
        return rc;
    if ((rc = require_slot(call, be, be->ops->stage != NULL, "NodeStageVolume")) < 0)
        return rc;
    if (!csi_capability_supported(r->volume_capability, vol.access, &why))
        return csi_call_error(call, -EMEDIUMTYPE, "volume_capability: %s", why);
    m.volume_id = r->volume_id;
    m.staging_path = r->staging_target_path;
    m.target_path = "";
    m.access = acc;
    mount_req_from_cap(&m, r->volume_capability);
    if ((rc = lock_volume(call, svc, &vol, &key)) < 0)
        return rc;
    rc = be->ops->stage(be, &m);
    csi_unlock_key(svc, key);
    if (rc < 0)
        return rc;
    *ret_resp = csi_empty_msg(call, &csi__v1__node_stage_volume_response__descriptor);
    return *ret_resp ? 0 : -ENOMEM;
}

CSI_HANDLER(node_unstage_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__NodeUnstageVolumeRequest *r = (const Csi__V1__NodeUnstageVolumeRequest *)req;
    struct be_volume vol;
    struct backend *be;
    const char *key;
    int rc;

    if ((rc = require_node_mode(call, svc)) < 0)
        return rc;
    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    if ((rc = csi_check_path(call, r->staging_target_path, "staging_target_path")) < 0)
        return rc;
    if ((rc = find_volume(call, svc, r->volume_id, &be, &vol)) < 0)
        return rc;
    if ((rc = require_slot(call, be, be->ops->unstage != NULL, "NodeUnstageVolume")) < 0)
        return rc;
    if ((rc = lock_volume(call, svc, &vol, &key)) < 0)
        return rc;
    rc = be->ops->unstage(be, r->volume_id, r->staging_target_path);
    csi_unlock_key(svc, key);
    if (rc < 0)
        return rc;
    *ret_resp = csi_empty_msg(call, &csi__v1__node_unstage_volume_response__descriptor);
    return *ret_resp ? 0 : -ENOMEM;
}

CSI_HANDLER(node_publish_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__NodePublishVolumeRequest *r = (const Csi__V1__NodePublishVolumeRequest *)req;
    struct be_mount_req m = {0};
    struct be_volume vol;
    struct backend *be;
    enum be_access acc;
    const char *why, *key;
    int rc;

    if ((rc = require_node_mode(call, svc)) < 0)
        return rc;
    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    if ((rc = csi_check_path(call, r->target_path, "target_path")) < 0)
        return rc;
    if ((rc = csi_check_capability(call, r->volume_capability, "volume_capability", &acc)) < 0)
        return rc;
    if ((rc = csi_check_map(call, CSI_KV(r->volume_context), r->n_volume_context,
                            "volume_context")) < 0 ||
        (rc = csi_check_map(call, CSI_KV(r->publish_context), r->n_publish_context,
                            "publish_context")) < 0 ||
        (rc = csi_check_map(call, CSI_KV(r->secrets), r->n_secrets, "secrets")) < 0)
        return rc;
    if ((rc = find_volume(call, svc, r->volume_id, &be, &vol)) < 0)
        return rc;
    if ((rc = require_slot(call, be, be->ops->publish != NULL, "NodePublishVolume")) < 0)
        return rc;
    /* STAGE_UNSTAGE_VOLUME is advertised, so the CO must have staged the volume. */
    if (!r->staging_target_path || !r->staging_target_path[0])
        return csi_call_error(call, -ENOTCONN,
                              "staging_target_path is required: this driver "
                              "stages volumes before publishing them");
    if ((rc = csi_check_path(call, r->staging_target_path, "staging_target_path")) < 0)
        return rc;
    if (!csi_capability_supported(r->volume_capability, vol.access, &why))
        return csi_call_error(call, -EMEDIUMTYPE, "volume_capability: %s", why);
    m.volume_id = r->volume_id;
    m.staging_path = r->staging_target_path;
    m.target_path = r->target_path;
    m.access = acc;
    m.readonly =
        r->readonly || r->volume_capability->access_mode->mode ==
                           CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY;
    mount_req_from_cap(&m, r->volume_capability);
    if ((rc = lock_volume(call, svc, &vol, &key)) < 0)
        return rc;
    rc = be->ops->publish(be, &m);
    csi_unlock_key(svc, key);
    if (rc < 0)
        return rc;
    csi_note_use(svc, r->volume_id);
    *ret_resp = csi_empty_msg(call, &csi__v1__node_publish_volume_response__descriptor);
    return *ret_resp ? 0 : -ENOMEM;
}

CSI_HANDLER(node_unpublish_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__NodeUnpublishVolumeRequest *r = (const Csi__V1__NodeUnpublishVolumeRequest *)req;
    struct be_volume vol;
    struct backend *be;
    struct stat st;
    const char *key;
    int rc;

    if ((rc = require_node_mode(call, svc)) < 0)
        return rc;
    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    if ((rc = csi_check_path(call, r->target_path, "target_path")) < 0)
        return rc;
    if (find_volume(call, svc, r->volume_id, &be, &vol) < 0) {
        /* Nothing published there and no such volume: the goal state already holds. */
        if (lstat(r->target_path, &st) < 0 && errno == ENOENT) {
            *ret_resp = csi_empty_msg(call, &csi__v1__node_unpublish_volume_response__descriptor);
            return *ret_resp ? 0 : -ENOMEM;
        }
        return -ENOENT;
    }
    if ((rc = require_slot(call, be, be->ops->unpublish != NULL, "NodeUnpublishVolume")) < 0)
        return rc;
    if ((rc = lock_volume(call, svc, &vol, &key)) < 0)
        return rc;
    rc = be->ops->unpublish(be, r->volume_id, r->target_path);
    csi_unlock_key(svc, key);
    if (rc < 0)
        return rc;
    csi_note_use(svc, r->volume_id);
    *ret_resp = csi_empty_msg(call, &csi__v1__node_unpublish_volume_response__descriptor);
    return *ret_resp ? 0 : -ENOMEM;
}

static Csi__V1__VolumeUsage *usage(struct csi_call *call, Csi__V1__VolumeUsage__Unit unit,
                                   int64_t total, int64_t used, int64_t avail)
{
    Csi__V1__VolumeUsage *u = arena_alloc(csi_call_arena(call), sizeof(*u));

    if (!u)
        return NULL;
    csi__v1__volume_usage__init(u);
    u->unit = unit;
    u->total = total > 0 ? total : 0;
    u->used = used > 0 ? used : 0;
    u->available = avail > 0 ? avail : 0;
    return u;
}

CSI_HANDLER(node_get_volume_stats)
{
    struct csi_service *svc = ctx;
    const Csi__V1__NodeGetVolumeStatsRequest *r = (const Csi__V1__NodeGetVolumeStatsRequest *)req;
    struct arena *a = csi_call_arena(call);
    Csi__V1__NodeGetVolumeStatsResponse *resp;
    struct be_volume vol;
    struct be_stats st;
    struct backend *be;
    int rc;

    if ((rc = require_node_mode(call, svc)) < 0)
        return rc;
    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    if (!r->volume_path || !r->volume_path[0])
        return csi_call_error(call, -EINVAL, "volume_path is required");
    if ((rc = find_volume(call, svc, r->volume_id, &be, &vol)) < 0)
        return rc;
    if ((rc = require_slot(call, be, be->ops->stats != NULL, "NodeGetVolumeStats")) < 0)
        return rc;
    /* A relative path cannot be where a volume is mounted: NOT_FOUND, as for any wrong path. */
    rc = r->volume_path[0] == '/' ? be->ops->stats(be, r->volume_id, r->volume_path, &st) : -ENOENT;
    if (rc == -ENOENT)
        return csi_call_error(call, -ENOENT, "volume %s is not staged or published at %s",
                              r->volume_id, r->volume_path);
    if (rc < 0)
        return rc;
    resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__node_get_volume_stats_response__init(resp);
    resp->usage = arena_alloc(a, 2 * sizeof(*resp->usage));
    if (!resp->usage)
        return -ENOMEM;
    resp->usage[resp->n_usage++] = usage(call, CSI__V1__VOLUME_USAGE__UNIT__BYTES, st.bytes_total,
                                         st.bytes_used, st.bytes_available);
    if (st.inodes_total >= 0)
        resp->usage[resp->n_usage++] = usage(call, CSI__V1__VOLUME_USAGE__UNIT__INODES,
                                             st.inodes_total, st.inodes_used, st.inodes_available);
    resp->volume_condition = csi_condition_msg(call, st.abnormal, st.condition);
    for (size_t i = 0; i < resp->n_usage; i++)
        if (!resp->usage[i])
            return -ENOMEM;
    if (!resp->volume_condition)
        return -ENOMEM;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(node_expand_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__NodeExpandVolumeRequest *r = (const Csi__V1__NodeExpandVolumeRequest *)req;
    Csi__V1__NodeExpandVolumeResponse *resp;
    struct be_volume vol;
    struct backend *be;
    int64_t capacity = 0;
    const char *key;
    int rc;

    if ((rc = require_node_mode(call, svc)) < 0)
        return rc;
    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    if (!r->volume_path || !r->volume_path[0])
        return csi_call_error(call, -EINVAL, "volume_path is required");
    if (r->capacity_range &&
        (r->capacity_range->required_bytes < 0 || r->capacity_range->limit_bytes < 0))
        return csi_call_error(call, -EINVAL, "capacity_range: negative sizes are not allowed");
    if (r->volume_capability) {
        enum be_access acc;
        if ((rc = csi_check_capability(call, r->volume_capability, "volume_capability", &acc)) < 0)
            return rc;
    }
    if ((rc = find_volume(call, svc, r->volume_id, &be, &vol)) < 0)
        return rc;
    if ((rc = require_slot(call, be, be->ops->node_expand != NULL, "NodeExpandVolume")) < 0)
        return rc;
    if (r->volume_capability) {
        const char *why;
        if (!csi_capability_supported(r->volume_capability, vol.access, &why))
            return csi_call_error(call, -EINVAL, "volume_capability: %s", why);
    }
    if ((rc = lock_volume(call, svc, &vol, &key)) < 0)
        return rc;
    rc = r->volume_path[0] == '/'
             ? be->ops->node_expand(be, r->volume_id, r->volume_path, &capacity)
             : -ENOENT;
    csi_unlock_key(svc, key);
    if (rc == -ENOENT)
        return csi_call_error(call, -ENOENT, "volume %s is not staged or published at %s",
                              r->volume_id, r->volume_path);
    if (rc < 0)
        return rc;
    if (r->capacity_range && r->capacity_range->required_bytes > capacity)
        return csi_call_error(call, -ERANGE,
                              "the volume has %lld bytes, less than the %lld requested: expand "
                              "it with ControllerExpandVolume first",
                              (long long)capacity, (long long)r->capacity_range->required_bytes);
    resp = arena_alloc(csi_call_arena(call), sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__node_expand_volume_response__init(resp);
    resp->capacity_bytes = capacity;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(node_get_capabilities)
{
    struct csi_service *svc = ctx;
    struct arena *a = csi_call_arena(call);
    Csi__V1__NodeServiceCapability__RPC__Type types[4];
    Csi__V1__NodeGetCapabilitiesResponse *resp;
    struct csi_caps cc;
    size_t n = 0;
    int rc;

    (void)req;
    if ((rc = require_node_mode(call, svc)) < 0)
        return rc;
    csi_caps_of(svc, &cc);
    if (cc.stage)
        types[n++] = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__STAGE_UNSTAGE_VOLUME;
    if (cc.stats) {
        types[n++] = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__GET_VOLUME_STATS;
        types[n++] = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_CONDITION;
    }
    if (cc.node_expand)
        types[n++] = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__EXPAND_VOLUME;
    resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__node_get_capabilities_response__init(resp);
    resp->capabilities = arena_alloc(a, (n ? n : 1) * sizeof(*resp->capabilities));
    if (!resp->capabilities)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        Csi__V1__NodeServiceCapability *c = arena_alloc(a, sizeof(*c));
        Csi__V1__NodeServiceCapability__RPC *rpc = arena_alloc(a, sizeof(*rpc));
        if (!c || !rpc)
            return -ENOMEM;
        csi__v1__node_service_capability__init(c);
        csi__v1__node_service_capability__rpc__init(rpc);
        rpc->type = types[i];
        c->type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
        c->rpc = rpc;
        resp->capabilities[i] = c;
    }
    resp->n_capabilities = n;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(node_get_info)
{
    struct csi_service *svc = ctx;
    Csi__V1__NodeGetInfoResponse *resp;
    int rc;

    (void)req;
    if ((rc = require_node_mode(call, svc)) < 0)
        return rc;
    resp = arena_alloc(csi_call_arena(call), sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__node_get_info_response__init(resp);
    resp->node_id = (char *)(uintptr_t)svc->node_id;
    resp->max_volumes_per_node = svc->max_volumes_per_node;
    resp->accessible_topology = csi_node_topology(call, svc);
    if (!resp->accessible_topology)
        return -ENOMEM;
    *ret_resp = &resp->base;
    return 0;
}
