/*
 * Cache transforms (cache.h). Each list names what is read, and where:
 *
 * PersistentVolumeClaim (provision.c, reconciler.c, model/recognize.c):
 *   metadata: name, namespace, uid, resourceVersion (events, claimRef, the write precondition),
 *   creationTimestamp (admission order), deletionTimestamp, finalizers, annotations
 *   (selected-node, storage-provisioner, the class annotation, admission), labels (the set's
 *   selector, model_claim_match);
 *   spec: storageClassName, volumeName, resources, volumeMode, accessModes;
 *   status: phase.
 * PersistentVolume (provision.c, reconciler.c, inventory.c):
 *   metadata: name, uid, resourceVersion, creationTimestamp, deletionTimestamp, finalizers,
 *   annotations (provisioned-by, release approval);
 *   spec: csi (driver, volumeHandle, volumeAttributes), claimRef (namespace, name, uid),
 *   persistentVolumeReclaimPolicy, storageClassName, nodeAffinity;
 *   status: phase, lastPhaseTransitionTime.
 * Node (reconciler.c, node loss): metadata as above, status.conditions.
 * Everything else of these objects (managedFields, ownerReferences, most of status, the rest of
 * spec, kubectl's last-applied annotation) is dropped. Writes are patches of what they change
 * (kube_update_retry*), so nothing dropped here is ever written back.
 */
#include "cache.h"

#include <stdbool.h>

#include "kube_client.h"
#include "kube_informer.h"

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

static const char *const TOP[] = {"metadata", "spec", "status", NULL};

static cJSON *member(cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static void trim_metadata(cJSON *obj, bool labels)
{
    static const char *const keep[] = {"name",
                                       "namespace",
                                       "uid",
                                       "resourceVersion",
                                       "creationTimestamp",
                                       "deletionTimestamp",
                                       "finalizers",
                                       "annotations",
                                       "labels",
                                       NULL};
    cJSON *md = member(obj, "metadata");

    kube_keep_only(md, keep);
    if (!labels)
        cJSON_DeleteItemFromObjectCaseSensitive(md, "labels");
    cJSON_DeleteItemFromObjectCaseSensitive(member(md, "annotations"), LAST_APPLIED);
}

void cache_trim_claim(cJSON *obj)
{
    static const char *const spec[] = {"storageClassName", "volumeName",  "resources",
                                       "volumeMode",       "accessModes", NULL};
    static const char *const status[] = {"phase", NULL};

    kube_keep_only(obj, TOP);
    trim_metadata(obj, true);
    kube_keep_only(member(obj, "spec"), spec);
    kube_keep_only(member(obj, "status"), status);
}

void cache_trim_pv(cJSON *obj)
{
    static const char *const spec[] = {
        "csi",          "claimRef", "persistentVolumeReclaimPolicy", "storageClassName",
        "nodeAffinity", NULL};
    static const char *const csi[] = {"driver", "volumeHandle", "volumeAttributes", NULL};
    static const char *const ref[] = {"namespace", "name", "uid", NULL};
    static const char *const status[] = {"phase", "lastPhaseTransitionTime", NULL};
    cJSON *s;

    kube_keep_only(obj, TOP);
    trim_metadata(obj, false);
    s = member(obj, "spec");
    kube_keep_only(s, spec);
    kube_keep_only(member(s, "csi"), csi);
    kube_keep_only(member(s, "claimRef"), ref);
    kube_keep_only(member(obj, "status"), status);
}

void cache_trim_node(cJSON *obj)
{
    static const char *const status[] = {"conditions", NULL};

    kube_keep_only(obj, TOP);
    trim_metadata(obj, true);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "spec");
    kube_keep_only(member(obj, "status"), status);
}

int cache_install(void)
{
    int r = kube_set_transform(&kube_persistentvolumeclaims, cache_trim_claim);

    if (r == 0)
        r = kube_set_transform(&kube_persistentvolumes, cache_trim_pv);
    if (r == 0)
        r = kube_set_transform(&kube_nodes, cache_trim_node);
    return r;
}
