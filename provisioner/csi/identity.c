/*
 * CSI Identity service: GetPluginInfo, GetPluginCapabilities, Probe.
 * Every instance (node or controller mode) with the same backends reports the same
 * capabilities, as the spec wants; what is advertised follows the configured backends.
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
    struct csi_service *svc = ctx;
    struct arena *a = csi_call_arena(call);
    Csi__V1__GetPluginCapabilitiesResponse *resp = arena_alloc(a, sizeof(*resp));
    Csi__V1__PluginCapability *caps = arena_alloc(a, 3 * sizeof(*caps));
    Csi__V1__PluginCapability **ptrs = arena_alloc(a, 3 * sizeof(*ptrs));
    Csi__V1__PluginCapability__Service *svcs = arena_alloc(a, 2 * sizeof(*svcs));
    Csi__V1__PluginCapability__VolumeExpansion *exp = arena_alloc(a, sizeof(*exp));
    struct csi_caps cc;
    size_t n = 0;

    (void)req;
    if (!resp || !caps || !ptrs || !svcs || !exp)
        return -ENOMEM;
    csi_caps_of(svc, &cc);
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
    /* With no backend there is no controller work and no volume to be local. */
    if (svc->n_backends > 0) {
        caps[n].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
        caps[n++].service = &svcs[0];
        caps[n].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
        caps[n++].service = &svcs[1];
    }
    if (cc.expand) {
        caps[n].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_VOLUME_EXPANSION;
        caps[n++].volume_expansion = exp;
    }
    resp->n_capabilities = n;
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
