/*
 * CSI Controller service. Each handler checks its request in the order csi-sanity and the spec
 * expect (required fields, then existence, then compatibility, then capacity), takes the
 * operation lock of the volume's key, and calls the backend.
 *
 * Threading: handlers run on worker threads concurrently; the lock table serialises work on one
 * volume key or snapshot name, and a second concurrent operation gets ABORTED.
 */
#include "csi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define DEFAULT_BACKEND "dir"
#define K8S_PARAM_PREFIX "csi.storage.k8s.io/"
#define MAX_PARAMS 64

/* StorageClass parameters, split into what the services use and what goes to the backend. */
struct params {
    struct backend *be;     /* borrowed */
    const char *ns, *claim; /* borrowed from the request, NULL when absent */
    const char *prov_uid;   /* CSI_PARAM_PROVISIONING, NULL when absent */
    struct be_param rest[MAX_PARAMS];
    size_t n_rest;
};

static int parse_params(struct csi_call *call, struct csi_service *svc,
                        struct csi_kv *const *entries, size_t n, struct params *ret)
{
    const char *backend = NULL;

    memset(ret, 0, sizeof(*ret));
    for (size_t i = 0; i < n; i++) {
        const char *k = entries[i]->key ? entries[i]->key : "";
        const char *v = entries[i]->value ? entries[i]->value : "";

        if (strcmp(k, CSI_PARAM_BACKEND) == 0)
            backend = v;
        else if (strcmp(k, CSI_PARAM_PVC_NAMESPACE) == 0)
            ret->ns = v;
        else if (strcmp(k, CSI_PARAM_PVC_NAME) == 0)
            ret->claim = v;
        else if (strcmp(k, CSI_PARAM_PROVISIONING) == 0)
            ret->prov_uid = v;
        else if (strncmp(k, K8S_PARAM_PREFIX, strlen(K8S_PARAM_PREFIX)) == 0)
            continue; /* other metadata the CO adds (pv name, ...): not ours to judge */
        else if (ret->n_rest == MAX_PARAMS)
            return csi_call_error(call, -EINVAL, "parameters: more than %d entries", MAX_PARAMS);
        else
            ret->rest[ret->n_rest++] = (struct be_param){.key = k, .value = v};
    }
    if ((ret->ns && !ret->claim) || (!ret->ns && ret->claim))
        return csi_call_error(call, -EINVAL, "parameters %s and %s must be given together",
                              CSI_PARAM_PVC_NAMESPACE, CSI_PARAM_PVC_NAME);
    if (ret->ns && (!ret->ns[0] || !ret->claim[0]))
        return csi_call_error(call, -EINVAL, "parameters %s and %s must not be empty",
                              CSI_PARAM_PVC_NAMESPACE, CSI_PARAM_PVC_NAME);
    if (ret->prov_uid && (!ret->ns || !be_valid_uid(ret->prov_uid)))
        return csi_call_error(call, -EINVAL,
                              "parameters.%s: want a claim uid (1..%d bytes of [A-Za-z0-9-]) "
                              "beside %s",
                              CSI_PARAM_PROVISIONING, BE_UID_MAX, CSI_PARAM_PVC_NAME);
    if (!backend) {
        ret->be =
            csi_backend_named(svc, svc->default_backend ? svc->default_backend : DEFAULT_BACKEND);
        if (!ret->be && svc->n_backends > 0)
            ret->be = svc->backends[0];
        if (!ret->be)
            return csi_call_error(call, -EINVAL,
                                  "no storage backend is configured on this "
                                  "driver instance");
    } else {
        ret->be = csi_backend_named(svc, backend);
        if (!ret->be)
            return csi_call_error(call, -EINVAL,
                                  "parameters.backend: \"%s\" is not a backend this driver "
                                  "instance serves",
                                  backend);
    }
    return 0;
}

/* Check capacity_range: 0, -EINVAL (negative) or -ERANGE (limit below required). */
static int check_range(struct csi_call *call, const Csi__V1__CapacityRange *cr)
{
    if (!cr)
        return 0;
    if (cr->required_bytes < 0 || cr->limit_bytes < 0)
        return csi_call_error(call, -EINVAL, "capacity_range: negative sizes are not allowed");
    if (cr->limit_bytes > 0 && cr->limit_bytes < cr->required_bytes)
        return csi_call_error(call, -ERANGE,
                              "capacity_range: limit_bytes %lld is below required_bytes %lld",
                              (long long)cr->limit_bytes, (long long)cr->required_bytes);
    return 0;
}

/* True when topology t names this node. */
static bool topology_is_here(struct csi_service *svc, const Csi__V1__Topology *t)
{
    const char *node = csi_map_get(CSI_KV(t->segments), t->n_segments, CSI_TOPOLOGY_KEY);

    if (!node || strcmp(node, svc->node_id) != 0)
        return false;
    /* Any other segment is a domain we do not have. */
    return t->n_segments == 1;
}

static int check_accessibility(struct csi_call *call, struct csi_service *svc,
                               const Csi__V1__TopologyRequirement *req)
{
    if (!req || req->n_requisite == 0)
        return 0; /* preferred only: anything goes, and this node is where we are */
    for (size_t i = 0; i < req->n_requisite; i++)
        if (req->requisite[i] && topology_is_here(svc, req->requisite[i]))
            return 0;
    return csi_call_error(call, -ENOSPC,
                          "accessibility_requirements: no requisite topology includes this node "
                          "(%s=%s); volumes are local to the node that creates them",
                          CSI_TOPOLOGY_KEY, svc->node_id);
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);

    return n > 0 && n <= BE_ID_MAX;
}

static char *lock_key(struct csi_call *call, char kind, const char *s)
{
    return arena_printf(csi_call_arena(call), "%c:%s", kind, s);
}

CSI_HANDLER(create_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__CreateVolumeRequest *r = (const Csi__V1__CreateVolumeRequest *)req;
    struct arena *a = csi_call_arena(call);
    struct params p;
    struct be_create_req creq = {0};
    struct be_volume vol;
    enum be_access access = BE_ACCESS_MOUNT;
    const char *fs_type = "";
    struct lock_req locks[3] = {{NULL, false}, {NULL, true}, {NULL, false}};
    int rc;

    if (!r->name || !r->name[0])
        return csi_call_error(call, -EINVAL, "name is required");
    if (!name_ok(r->name))
        return csi_call_error(call, -EINVAL, "name is longer than %d bytes", BE_ID_MAX);
    if (r->n_volume_capabilities == 0)
        return csi_call_error(call, -EINVAL, "volume_capabilities is required");
    for (size_t i = 0; i < r->n_volume_capabilities; i++) {
        const Csi__V1__VolumeCapability *cap = r->volume_capabilities[i];
        enum be_access acc;
        const char *why;
        char field[48];

        snprintf(field, sizeof(field), "volume_capabilities[%zu]", i);
        rc = csi_check_capability(call, cap, field, &acc);
        if (rc < 0)
            return rc;
        if (i > 0 && acc != access)
            return csi_call_error(call, -EINVAL,
                                  "volume_capabilities: a volume is either block "
                                  "or mount, not both");
        access = acc;
        if (!csi_capability_supported(cap, acc, &why))
            return csi_call_error(call, -EINVAL, "%s: %s", field, why);
        if (acc == BE_ACCESS_MOUNT && cap->mount && cap->mount->fs_type && cap->mount->fs_type[0]) {
            if (fs_type[0] && strcmp(fs_type, cap->mount->fs_type) != 0)
                return csi_call_error(call, -EINVAL,
                                      "volume_capabilities: conflicting fs_type %s and %s", fs_type,
                                      cap->mount->fs_type);
            fs_type = cap->mount->fs_type;
        }
    }
    rc = check_range(call, r->capacity_range);
    if (rc < 0)
        return rc;
    if ((rc = csi_check_map(call, CSI_KV(r->parameters), r->n_parameters, "parameters")) < 0 ||
        (rc = csi_check_map(call, CSI_KV(r->secrets), r->n_secrets, "secrets")) < 0)
        return rc;
    if (r->n_mutable_parameters > 0)
        return csi_call_error(call, -EINVAL,
                              "mutable_parameters: this driver does not support "
                              "volume modification");
    rc = parse_params(call, svc, CSI_KV(r->parameters), r->n_parameters, &p);
    if (rc < 0)
        return rc;
    rc = check_accessibility(call, svc, r->accessibility_requirements);
    if (rc < 0)
        return rc;

    creq.name = r->name;
    if (p.ns) {
        creq.key = arena_printf(a, "%s/%s", p.ns, p.claim);
        creq.key_is_claim = true;
    } else {
        creq.key = r->name;
    }
    if (!creq.key)
        return -ENOMEM;
    creq.required_bytes = r->capacity_range ? r->capacity_range->required_bytes : 0;
    creq.limit_bytes = r->capacity_range ? r->capacity_range->limit_bytes : 0;
    creq.access = access;
    creq.fs_type = fs_type;
    creq.params = p.rest;
    creq.n_params = p.n_rest;
    creq.source_kind = BE_SOURCE_NONE;
    creq.source_id = "";
    creq.provisioning_uid = p.prov_uid;

    locks[0].key = lock_key(call, 'k', creq.key);
    if (!locks[0].key)
        return -ENOMEM;
    const Csi__V1__VolumeContentSource *src = r->volume_content_source;
    if (src && src->type_case == CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_SNAPSHOT) {
        struct be_snapshot snap;
        const char *id = src->snapshot ? src->snapshot->snapshot_id : NULL;
        struct backend *sb;

        if (!id || !id[0])
            return csi_call_error(call, -EINVAL,
                                  "volume_content_source.snapshot.snapshot_id is required");
        sb = csi_backend_for_id(svc, id);
        if (!sb || !sb->ops->snapshot_lookup || sb->ops->snapshot_lookup(sb, id, &snap) < 0)
            return csi_call_error(call, -ENOENT, "source snapshot %s does not exist", id);
        if (sb != p.be)
            return csi_call_error(call, -EINVAL,
                                  "source snapshot %s belongs to backend %s, "
                                  "the volume to backend %s",
                                  id, sb->ops->name, p.be->ops->name);
        creq.source_kind = BE_SOURCE_SNAPSHOT;
        creq.source_id = id;
        locks[1].key = lock_key(call, 's', snap.name);
    } else if (src && src->type_case == CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_VOLUME) {
        struct be_volume sv;
        const char *id = src->volume ? src->volume->volume_id : NULL;
        struct backend *sb;

        if (!id || !id[0])
            return csi_call_error(call, -EINVAL,
                                  "volume_content_source.volume.volume_id is required");
        sb = csi_backend_for_id(svc, id);
        if (!sb || sb->ops->lookup(sb, id, &sv) < 0)
            return csi_call_error(call, -ENOENT, "source volume %s does not exist", id);
        if (sb != p.be)
            return csi_call_error(call, -EINVAL,
                                  "source volume %s belongs to backend %s, "
                                  "the volume to backend %s",
                                  id, sb->ops->name, p.be->ops->name);
        if (strcmp(sv.key, creq.key) == 0)
            return csi_call_error(call, -EINVAL, "a volume cannot be cloned onto itself");
        creq.source_kind = BE_SOURCE_VOLUME;
        creq.source_id = id;
        locks[1].key = lock_key(call, 'k', sv.key);
    } else if (src) {
        return csi_call_error(call, -EINVAL,
                              "volume_content_source: snapshot or volume is "
                              "required");
    }
    if (creq.source_kind != BE_SOURCE_NONE && !locks[1].key)
        return -ENOMEM;
    if (creq.key_is_claim) {
        locks[2].key = lock_key(call, 'n', r->name);
        if (!locks[2].key)
            return -ENOMEM;
    }

    rc = csi_lock(call, svc, locks, ARRAY_SIZE(locks));
    if (rc < 0)
        return rc;
    rc = p.be->ops->create(p.be, &creq, &vol);
    csi_unlock(svc, locks, ARRAY_SIZE(locks));
    if (rc < 0)
        return rc;

    Csi__V1__CreateVolumeResponse *resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__create_volume_response__init(resp);
    resp->volume = csi_volume_msg(call, svc, &vol);
    if (!resp->volume)
        return -ENOMEM;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(delete_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__DeleteVolumeRequest *r = (const Csi__V1__DeleteVolumeRequest *)req;
    struct backend *be;
    struct be_volume vol;
    const char *lock;
    int rc;

    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    be = csi_backend_for_id(svc, r->volume_id);
    /* An id we never issued, or a volume already gone: deleting it is done. */
    if (be && be->ops->lookup(be, r->volume_id, &vol) == 0) {
        lock = lock_key(call, 'k', vol.key);
        if (!lock)
            return -ENOMEM;
        rc = csi_lock_key(call, svc, lock);
        if (rc < 0)
            return rc;
        rc = be->ops->remove(be, r->volume_id);
        csi_unlock_key(svc, lock);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    *ret_resp = csi_empty_msg(call, &csi__v1__delete_volume_response__descriptor);
    return *ret_resp ? 0 : -ENOMEM;
}

CSI_HANDLER(controller_publish_volume)
{
    (void)ctx;
    (void)req;
    (void)ret_resp;
    return csi_call_error(call, -ENOSYS,
                          "ControllerPublishVolume is not offered: volumes are "
                          "node-local and need no attach step");
}

CSI_HANDLER(controller_unpublish_volume)
{
    (void)ctx;
    (void)req;
    (void)ret_resp;
    return csi_call_error(call, -ENOSYS,
                          "ControllerUnpublishVolume is not offered: volumes "
                          "are node-local and need no attach step");
}

CSI_HANDLER(controller_modify_volume)
{
    (void)ctx;
    (void)req;
    (void)ret_resp;
    return csi_call_error(call, -ENOSYS, "ControllerModifyVolume is not offered");
}

CSI_HANDLER(validate_volume_capabilities)
{
    struct csi_service *svc = ctx;
    const Csi__V1__ValidateVolumeCapabilitiesRequest *r =
        (const Csi__V1__ValidateVolumeCapabilitiesRequest *)req;
    struct arena *a = csi_call_arena(call);
    Csi__V1__ValidateVolumeCapabilitiesResponse *resp;
    struct backend *be;
    struct be_volume vol;
    const char *why = NULL;
    int rc;

    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    if (r->n_volume_capabilities == 0)
        return csi_call_error(call, -EINVAL, "volume_capabilities is required");
    for (size_t i = 0; i < r->n_volume_capabilities; i++) {
        enum be_access acc;
        char field[48];

        snprintf(field, sizeof(field), "volume_capabilities[%zu]", i);
        rc = csi_check_capability(call, r->volume_capabilities[i], field, &acc);
        if (rc < 0)
            return rc;
    }
    be = csi_backend_for_id(svc, r->volume_id);
    if (!be || be->ops->lookup(be, r->volume_id, &vol) < 0)
        return csi_call_error(call, -ENOENT, "volume %s does not exist", r->volume_id);

    for (size_t i = 0; i < r->n_volume_capabilities; i++)
        if (!csi_capability_supported(r->volume_capabilities[i], vol.access, &why))
            break;
    if (!why && r->n_volume_context > 0) {
        const char *key = csi_map_get(CSI_KV(r->volume_context), r->n_volume_context, CSI_CTX_KEY);
        if (key && strcmp(key, vol.key) != 0)
            why = "volume_context does not belong to this volume";
    }
    if (!why && r->n_mutable_parameters > 0)
        why = "mutable_parameters are not supported";
    if (!why && r->n_parameters > 0) {
        struct params p;
        if (parse_params(call, svc, CSI_KV(r->parameters), r->n_parameters, &p) < 0)
            why = "parameters are not valid for this driver";
        else if (p.be != be)
            why = "parameters select another backend than the volume's";
    }

    resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__validate_volume_capabilities_response__init(resp);
    if (why) {
        resp->message = arena_strdup(a, why);
        if (!resp->message)
            return -ENOMEM;
    } else {
        Csi__V1__ValidateVolumeCapabilitiesResponse__Confirmed *c = arena_alloc(a, sizeof(*c));
        if (!c)
            return -ENOMEM;
        csi__v1__validate_volume_capabilities_response__confirmed__init(c);
        /* Echo what was checked; the request outlives the packing of the response. */
        c->n_volume_capabilities = r->n_volume_capabilities;
        c->volume_capabilities = r->volume_capabilities;
        c->n_volume_context = r->n_volume_context;
        c->volume_context =
            (Csi__V1__ValidateVolumeCapabilitiesResponse__Confirmed__VolumeContextEntry **)
                r->volume_context;
        c->n_parameters = r->n_parameters;
        c->parameters = (Csi__V1__ValidateVolumeCapabilitiesResponse__Confirmed__ParametersEntry **)
                            r->parameters;
        resp->confirmed = c;
    }
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(list_volumes)
{
    struct csi_service *svc = ctx;
    const Csi__V1__ListVolumesRequest *r = (const Csi__V1__ListVolumesRequest *)req;
    struct arena *a = csi_call_arena(call);
    Csi__V1__ListVolumesResponse *resp;
    char after[BE_ID_MAX + 1] = "";
    size_t max, want, n = 0, cap = 0;
    struct be_volume *all = NULL;
    int rc = 0;

    if (r->max_entries < 0)
        return csi_call_error(call, -EINVAL, "max_entries must not be negative");
    if (r->starting_token && r->starting_token[0] &&
        csi_token_decode(r->starting_token, after, sizeof(after)) < 0)
        return csi_call_error(call, -EAGAIN, "starting_token is not a token this driver issued");
    max = (size_t)r->max_entries;
    want = max ? max + 1 : 0; /* one more than asked tells whether entries remain */

    /* Backends are sorted by name, so their ids ("<name>:...") come out in global order. */
    for (size_t i = 0; i < svc->n_backends && (!want || n < want); i++) {
        struct backend *be = svc->backends[i];
        size_t plen = strlen(be->ops->name);
        const char *from = "";
        struct be_volume_page page = {0};

        if (after[0]) {
            char prefix[32];
            snprintf(prefix, sizeof(prefix), "%s:", be->ops->name);
            if (strncmp(after, prefix, plen + 1) == 0)
                from = after; /* the token is one of this backend's ids */
            else if (strcmp(after, prefix) > 0)
                continue; /* every id of this backend sorts before the token */
        }
        rc = be->ops->list(be, from, want ? want - n : 0, &page);
        if (rc < 0)
            break;
        if (n + page.n > cap) {
            size_t ncap = n + page.n;
            struct be_volume *na = arena_alloc(a, ncap * sizeof(*na));
            if (!na) {
                be_volume_page_free(&page);
                return -ENOMEM;
            }
            if (n)
                memcpy(na, all, n * sizeof(*na));
            all = na;
            cap = ncap;
        }
        if (page.n)
            memcpy(all + n, page.items, page.n * sizeof(*all));
        n += page.n;
        be_volume_page_free(&page);
    }
    if (rc < 0)
        return rc;

    resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__list_volumes_response__init(resp);
    if (want && n > max) {
        n = max;
        resp->next_token = csi_token_encode(call, all[n - 1].id);
        if (!resp->next_token)
            return -ENOMEM;
    }
    resp->entries = arena_alloc(a, (n ? n : 1) * sizeof(*resp->entries));
    if (!resp->entries)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        Csi__V1__ListVolumesResponse__Entry *e = arena_alloc(a, sizeof(*e));
        Csi__V1__ListVolumesResponse__VolumeStatus *st = arena_alloc(a, sizeof(*st));
        if (!e || !st)
            return -ENOMEM;
        csi__v1__list_volumes_response__entry__init(e);
        csi__v1__list_volumes_response__volume_status__init(st);
        e->volume = csi_volume_msg(call, svc, &all[i]);
        st->volume_condition = csi_condition_msg(call, all[i].abnormal, all[i].condition);
        if (!e->volume || !st->volume_condition)
            return -ENOMEM;
        e->status = st;
        resp->entries[i] = e;
    }
    resp->n_entries = n;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(get_capacity)
{
    struct csi_service *svc = ctx;
    const Csi__V1__GetCapacityRequest *r = (const Csi__V1__GetCapacityRequest *)req;
    struct arena *a = csi_call_arena(call);
    Csi__V1__GetCapacityResponse *resp = arena_alloc(a, sizeof(*resp));
    Google__Protobuf__Int64Value *maxv = arena_alloc(a, sizeof(*maxv));
    int64_t avail = 0, max_volume = 0;
    bool usable = true;
    struct params p;
    int rc;

    if (!resp || !maxv)
        return -ENOMEM;
    for (size_t i = 0; i < r->n_volume_capabilities; i++) {
        enum be_access acc;
        const char *why;
        char field[48];

        snprintf(field, sizeof(field), "volume_capabilities[%zu]", i);
        rc = csi_check_capability(call, r->volume_capabilities[i], field, &acc);
        if (rc < 0)
            return rc;
        /* The directory backend makes only mount volumes. */
        if (!csi_capability_supported(r->volume_capabilities[i], BE_ACCESS_MOUNT, &why) &&
            !csi_capability_supported(r->volume_capabilities[i], BE_ACCESS_BLOCK, &why))
            usable = false;
    }
    rc = parse_params(call, svc, CSI_KV(r->parameters), r->n_parameters, &p);
    if (rc < 0)
        return rc;
    if (r->accessible_topology && !topology_is_here(svc, r->accessible_topology))
        usable = false; /* capacity elsewhere is not ours to report */
    if (usable) {
        if (!p.be->ops->capacity)
            return csi_call_error(call, -ENOSYS, "backend %s cannot report capacity",
                                  p.be->ops->name);
        rc = p.be->ops->capacity(p.be, p.rest, p.n_rest, &avail, &max_volume);
        if (rc < 0)
            return rc;
    }
    csi__v1__get_capacity_response__init(resp);
    google__protobuf__int64_value__init(maxv);
    resp->available_capacity = avail;
    maxv->value = max_volume;
    resp->maximum_volume_size = maxv;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(controller_get_capabilities)
{
    struct csi_service *svc = ctx;
    Csi__V1__ControllerServiceCapability__RPC__Type types[9];
    size_t n = 0;
    struct csi_caps cc;

    (void)req;
    /* Only what the configured backends can do: a CO that sees CREATE_DELETE_SNAPSHOT or
     * CLONE_VOLUME offers them to users, who would then get nothing but errors. */
    csi_caps_of(svc, &cc);
    if (cc.volumes)
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__CREATE_DELETE_VOLUME;
    if (cc.list_volumes)
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__LIST_VOLUMES;
    if (cc.capacity)
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__GET_CAPACITY;
    if (cc.snapshots)
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__CREATE_DELETE_SNAPSHOT;
    if (cc.list_snapshots)
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__LIST_SNAPSHOTS;
    if (cc.clone)
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__CLONE_VOLUME;
    if (cc.expand)
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__EXPAND_VOLUME;
    if (cc.get_volume) {
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_CONDITION;
        types[n++] = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__GET_VOLUME;
    }

    struct arena *a = csi_call_arena(call);
    Csi__V1__ControllerGetCapabilitiesResponse *resp = arena_alloc(a, sizeof(*resp));
    Csi__V1__ControllerServiceCapability **caps = arena_alloc(a, (n ? n : 1) * sizeof(*caps));

    if (!resp || !caps)
        return -ENOMEM;
    csi__v1__controller_get_capabilities_response__init(resp);
    for (size_t i = 0; i < n; i++) {
        Csi__V1__ControllerServiceCapability *c = arena_alloc(a, sizeof(*c));
        Csi__V1__ControllerServiceCapability__RPC *rpc = arena_alloc(a, sizeof(*rpc));
        if (!c || !rpc)
            return -ENOMEM;
        csi__v1__controller_service_capability__init(c);
        csi__v1__controller_service_capability__rpc__init(rpc);
        rpc->type = types[i];
        c->type_case = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__TYPE_RPC;
        c->rpc = rpc;
        caps[i] = c;
    }
    resp->n_capabilities = n;
    resp->capabilities = caps;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(create_snapshot)
{
    struct csi_service *svc = ctx;
    const Csi__V1__CreateSnapshotRequest *r = (const Csi__V1__CreateSnapshotRequest *)req;
    struct arena *a = csi_call_arena(call);
    Csi__V1__CreateSnapshotResponse *resp;
    struct backend *be;
    struct be_volume src;
    struct be_snapshot snap;
    struct lock_req locks[2] = {{NULL, false}, {NULL, true}};
    int rc;

    if (!r->name || !r->name[0])
        return csi_call_error(call, -EINVAL, "name is required");
    if (!r->source_volume_id || !r->source_volume_id[0])
        return csi_call_error(call, -EINVAL, "source_volume_id is required");
    if (!name_ok(r->name))
        return csi_call_error(call, -EINVAL, "name is longer than %d bytes", BE_ID_MAX);
    if ((rc = csi_check_map(call, CSI_KV(r->parameters), r->n_parameters, "parameters")) < 0 ||
        (rc = csi_check_map(call, CSI_KV(r->secrets), r->n_secrets, "secrets")) < 0)
        return rc;
    for (size_t i = 0; i < r->n_parameters; i++)
        if (strncmp(r->parameters[i]->key, K8S_PARAM_PREFIX, strlen(K8S_PARAM_PREFIX)) != 0)
            return csi_call_error(call, -EINVAL, "parameters: unknown snapshot parameter \"%s\"",
                                  r->parameters[i]->key);
    be = csi_backend_for_id(svc, r->source_volume_id);
    if (!be || be->ops->lookup(be, r->source_volume_id, &src) < 0)
        return csi_call_error(call, -ENOENT, "source volume %s does not exist",
                              r->source_volume_id);
    if (!be->ops->snapshot_create)
        return csi_call_error(call, -ENOTSUP, "backend %s cannot take snapshots on this machine",
                              be->ops->name);
    locks[0].key = lock_key(call, 's', r->name);
    locks[1].key = lock_key(call, 'k', src.key);
    if (!locks[0].key || !locks[1].key)
        return -ENOMEM;
    rc = csi_lock(call, svc, locks, 2);
    if (rc < 0)
        return rc;
    /* A snapshot name is global to the driver: look for it in every other backend too. */
    for (size_t i = 0; i < svc->n_backends && rc == 0; i++) {
        struct backend *ob = svc->backends[i];
        struct be_snapshot_page page = {0};

        if (ob == be || !ob->ops->snapshot_list)
            continue;
        if (ob->ops->snapshot_list(ob, "", 0, &page) == 0) {
            for (size_t k = 0; k < page.n; k++)
                if (strcmp(page.items[k].name, r->name) == 0)
                    rc = csi_call_error(call, -EEXIST, "snapshot %s exists for volume %s", r->name,
                                        page.items[k].source_volume_id);
            be_snapshot_page_free(&page);
        }
    }
    if (rc == 0)
        rc = be->ops->snapshot_create(be, r->name, r->source_volume_id, &snap);
    csi_unlock(svc, locks, 2);
    if (rc < 0)
        return rc;
    resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__create_snapshot_response__init(resp);
    resp->snapshot = csi_snapshot_msg(call, &snap);
    if (!resp->snapshot)
        return -ENOMEM;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(delete_snapshot)
{
    struct csi_service *svc = ctx;
    const Csi__V1__DeleteSnapshotRequest *r = (const Csi__V1__DeleteSnapshotRequest *)req;
    struct backend *be;
    struct be_snapshot snap;
    const char *lock;
    int rc;

    if (!r->snapshot_id || !r->snapshot_id[0])
        return csi_call_error(call, -EINVAL, "snapshot_id is required");
    be = csi_backend_for_id(svc, r->snapshot_id);
    if (be && be->ops->snapshot_lookup &&
        be->ops->snapshot_lookup(be, r->snapshot_id, &snap) == 0) {
        lock = lock_key(call, 's', snap.name);
        if (!lock)
            return -ENOMEM;
        rc = csi_lock_key(call, svc, lock);
        if (rc < 0)
            return rc;
        rc = be->ops->snapshot_remove(be, r->snapshot_id);
        csi_unlock_key(svc, lock);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    *ret_resp = csi_empty_msg(call, &csi__v1__delete_snapshot_response__descriptor);
    return *ret_resp ? 0 : -ENOMEM;
}

CSI_HANDLER(list_snapshots)
{
    struct csi_service *svc = ctx;
    const Csi__V1__ListSnapshotsRequest *r = (const Csi__V1__ListSnapshotsRequest *)req;
    struct arena *a = csi_call_arena(call);
    Csi__V1__ListSnapshotsResponse *resp;
    char after[BE_ID_MAX + 1] = "";
    struct be_snapshot *all = NULL;
    size_t n = 0, first = 0, count;

    if (r->max_entries < 0)
        return csi_call_error(call, -EINVAL, "max_entries must not be negative");
    if (r->starting_token && r->starting_token[0] &&
        csi_token_decode(r->starting_token, after, sizeof(after)) < 0)
        return csi_call_error(call, -EAGAIN, "starting_token is not a token this driver issued");

    if (r->snapshot_id && r->snapshot_id[0]) {
        /* One snapshot by id: unknown is an empty list, not an error. */
        struct backend *be = csi_backend_for_id(svc, r->snapshot_id);
        all = arena_alloc(a, sizeof(*all));
        if (!all)
            return -ENOMEM;
        if (be && be->ops->snapshot_lookup &&
            be->ops->snapshot_lookup(be, r->snapshot_id, all) == 0 &&
            (!r->source_volume_id || !r->source_volume_id[0] ||
             strcmp(all->source_volume_id, r->source_volume_id) == 0))
            n = 1;
    } else {
        for (size_t i = 0; i < svc->n_backends; i++) {
            struct backend *be = svc->backends[i];
            struct be_snapshot_page page = {0};
            int rc;

            if (!be->ops->snapshot_list)
                continue;
            rc = be->ops->snapshot_list(be, "", 0, &page);
            if (rc < 0)
                return rc;
            struct be_snapshot *na = arena_alloc(a, (n + page.n + 1) * sizeof(*na));
            if (!na) {
                be_snapshot_page_free(&page);
                return -ENOMEM;
            }
            if (n)
                memcpy(na, all, n * sizeof(*na));
            all = na;
            for (size_t k = 0; k < page.n; k++)
                if (!r->source_volume_id || !r->source_volume_id[0] ||
                    strcmp(page.items[k].source_volume_id, r->source_volume_id) == 0)
                    all[n++] = page.items[k];
            be_snapshot_page_free(&page);
        }
    }
    /* Ids are sorted within a backend and backends by name: skip to after the token. */
    if (after[0])
        while (first < n && strcmp(all[first].id, after) <= 0)
            first++;
    count = n - first;
    resp = arena_alloc(a, sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__list_snapshots_response__init(resp);
    if (r->max_entries > 0 && count > (size_t)r->max_entries) {
        count = (size_t)r->max_entries;
        resp->next_token = csi_token_encode(call, all[first + count - 1].id);
        if (!resp->next_token)
            return -ENOMEM;
    }
    resp->entries = arena_alloc(a, (count ? count : 1) * sizeof(*resp->entries));
    if (!resp->entries)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        Csi__V1__ListSnapshotsResponse__Entry *e = arena_alloc(a, sizeof(*e));
        if (!e)
            return -ENOMEM;
        csi__v1__list_snapshots_response__entry__init(e);
        e->snapshot = csi_snapshot_msg(call, &all[first + i]);
        if (!e->snapshot)
            return -ENOMEM;
        resp->entries[i] = e;
    }
    resp->n_entries = count;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(get_snapshot)
{
    struct csi_service *svc = ctx;
    const Csi__V1__GetSnapshotRequest *r = (const Csi__V1__GetSnapshotRequest *)req;
    Csi__V1__GetSnapshotResponse *resp;
    struct be_snapshot snap;
    struct backend *be;

    if (!r->snapshot_id || !r->snapshot_id[0])
        return csi_call_error(call, -EINVAL, "snapshot_id is required");
    be = csi_backend_for_id(svc, r->snapshot_id);
    if (!be || !be->ops->snapshot_lookup || be->ops->snapshot_lookup(be, r->snapshot_id, &snap) < 0)
        return csi_call_error(call, -ENOENT, "snapshot %s does not exist", r->snapshot_id);
    resp = arena_alloc(csi_call_arena(call), sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__get_snapshot_response__init(resp);
    resp->snapshot = csi_snapshot_msg(call, &snap);
    if (!resp->snapshot)
        return -ENOMEM;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(controller_expand_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__ControllerExpandVolumeRequest *r =
        (const Csi__V1__ControllerExpandVolumeRequest *)req;
    Csi__V1__ControllerExpandVolumeResponse *resp;
    struct backend *be;
    struct be_volume vol;
    bool node_expand = false;
    const char *lock;
    int rc;

    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    if (!r->capacity_range)
        return csi_call_error(call, -EINVAL, "capacity_range is required");
    if (r->capacity_range->required_bytes == 0 && r->capacity_range->limit_bytes == 0)
        return csi_call_error(call, -EINVAL,
                              "capacity_range: required_bytes or limit_bytes "
                              "must be set");
    rc = check_range(call, r->capacity_range);
    if (rc < 0)
        return rc;
    if (r->volume_capability) {
        enum be_access acc;
        rc = csi_check_capability(call, r->volume_capability, "volume_capability", &acc);
        if (rc < 0)
            return rc;
    }
    be = csi_backend_for_id(svc, r->volume_id);
    if (!be || be->ops->lookup(be, r->volume_id, &vol) < 0)
        return csi_call_error(call, -ENOENT, "volume %s does not exist", r->volume_id);
    if (r->volume_capability) {
        const char *why;
        if (!csi_capability_supported(r->volume_capability, vol.access, &why))
            return csi_call_error(call, -EINVAL, "volume_capability: %s", why);
    }
    if (!be->ops->expand)
        return csi_call_error(call, -ENOTSUP, "backend %s cannot expand volumes", be->ops->name);
    lock = lock_key(call, 'k', vol.key);
    if (!lock)
        return -ENOMEM;
    rc = csi_lock_key(call, svc, lock);
    if (rc < 0)
        return rc;
    int64_t required = r->capacity_range->required_bytes;
    if (required == 0)
        required = r->capacity_range->limit_bytes;
    rc = be->ops->expand(be, r->volume_id, required, r->capacity_range->limit_bytes, &vol,
                         &node_expand);
    csi_unlock_key(svc, lock);
    if (rc < 0)
        return rc;
    resp = arena_alloc(csi_call_arena(call), sizeof(*resp));
    if (!resp)
        return -ENOMEM;
    csi__v1__controller_expand_volume_response__init(resp);
    resp->capacity_bytes = vol.capacity_bytes;
    resp->node_expansion_required = node_expand;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(controller_get_volume)
{
    struct csi_service *svc = ctx;
    const Csi__V1__ControllerGetVolumeRequest *r = (const Csi__V1__ControllerGetVolumeRequest *)req;
    struct arena *a = csi_call_arena(call);
    Csi__V1__ControllerGetVolumeResponse *resp;
    Csi__V1__ControllerGetVolumeResponse__VolumeStatus *st;
    struct be_volume vol;
    struct backend *be;

    if (!r->volume_id || !r->volume_id[0])
        return csi_call_error(call, -EINVAL, "volume_id is required");
    be = csi_backend_for_id(svc, r->volume_id);
    if (!be || be->ops->lookup(be, r->volume_id, &vol) < 0)
        return csi_call_error(call, -ENOENT, "volume %s does not exist", r->volume_id);
    resp = arena_alloc(a, sizeof(*resp));
    st = arena_alloc(a, sizeof(*st));
    if (!resp || !st)
        return -ENOMEM;
    csi__v1__controller_get_volume_response__init(resp);
    csi__v1__controller_get_volume_response__volume_status__init(st);
    resp->volume = csi_volume_msg(call, svc, &vol);
    st->volume_condition = csi_condition_msg(call, vol.abnormal, vol.condition);
    if (!resp->volume || !st->volume_condition)
        return -ENOMEM;
    resp->status = st;
    *ret_resp = &resp->base;
    return 0;
}
