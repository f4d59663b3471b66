/*
 * CSI Identity service: GetPluginInfo, GetPluginCapabilities, Probe.
 * Every instance (node or controller mode) reports the same capabilities, as the spec wants.
 */
#include "csi.h"

#include <errno.h>

#include "util.h"

CSI_HANDLER(get_plugin_info)
{
    struct csi_service *svc = ctx;
    Csi__V1__GetPluginInfoResponse *resp = arena_alloc(csi_call_arena(call), sizeof(*resp));

    (void)req;
    if (!resp)
        return -ENOMEM;
    csi__v1__get_plugin_info_response__init(resp);
    resp->name = (char *)(uintptr_t)svc->driver_name;
    resp->vendor_version = (char *)(uintptr_t)svc->version;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(get_plugin_capabilities)
{
    struct arena *a = csi_call_arena(call);
    Csi__V1__GetPluginCapabilitiesResponse *resp = arena_alloc(a, sizeof(*resp));
    Csi__V1__PluginCapability *caps = arena_alloc(a, 3 * sizeof(*caps));
    Csi__V1__PluginCapability **ptrs = arena_alloc(a, 3 * sizeof(*ptrs));
    Csi__V1__PluginCapability__Service *svcs = arena_alloc(a, 2 * sizeof(*svcs));
    Csi__V1__PluginCapability__VolumeExpansion *exp = arena_alloc(a, sizeof(*exp));

    (void)ctx;
    (void)req;
    if (!resp || !caps || !ptrs || !svcs || !exp)
        return -ENOMEM;
    csi__v1__get_plugin_capabilities_response__init(resp);
    for (int i = 0; i < 3; i++) {
        csi__v1__plugin_capability__init(&caps[i]);
        ptrs[i] = &caps[i];
    }
    csi__v1__plugin_capability__service__init(&svcs[0]);
    svcs[0].type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__CONTROLLER_SERVICE;
    csi__v1__plugin_capability__service__init(&svcs[1]);
    svcs[1].type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__VOLUME_ACCESSIBILITY_CONSTRAINTS;
    csi__v1__plugin_capability__volume_expansion__init(exp);
    exp->type = CSI__V1__PLUGIN_CAPABILITY__VOLUME_EXPANSION__TYPE__ONLINE;
    caps[0].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
    caps[0].service = &svcs[0];
    caps[1].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
    caps[1].service = &svcs[1];
    caps[2].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION;
    caps[2].volume_expansion = exp;
    resp->n_capabilities = 3;
    resp->capabilities = ptrs;
    *ret_resp = &resp->base;
    return 0;
}

CSI_HANDLER(probe)
{
    struct arena *a = csi_call_arena(call);
    Csi__V1__ProbeResponse *resp = arena_alloc(a, sizeof(*resp));
    Google__Protobuf__BoolValue *ready = arena_alloc(a, sizeof(*ready));

    (void)ctx;
    (void)req;
    if (!resp || !ready)
        return -ENOMEM;
    /* The daemon answers only after its backends recovered, so it is ready when it answers. */
    csi__v1__probe_response__init(resp);
    google__protobuf__bool_value__init(ready);
    ready->value = 1;
    resp->ready = ready;
    *ret_resp = &resp->base;
    return 0;
}
