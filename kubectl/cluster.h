/*
 * What kubectl-ordinal reads from the cluster, and one row per ordinal built from it: the set's
 * claims (recognised by the ordinal model), their pods, PVs, classes, OrdinalVolumes and last
 * events, plus ordinals whose claim is gone but whose PV or store is retained.
 *
 * Ownership: a struct kctl_snap owns its List objects; rows borrow from the snapshot (valid
 * until kctl_snap_release). Single-threaded.
 */
#ifndef ORDINAL_KCTL_CLUSTER_H
#define ORDINAL_KCTL_CLUSTER_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "kube_client.h"
#include "model.h"

#define KCTL_DRIVER "ordinal.csi.dev"
#define KCTL_ORDERING_PARAM "ordinal.csi.dev/ordering"
#define KCTL_RECLAIM_ANNOTATION "ordinal.csi.dev/reclaim"

extern const struct kube_resource kctl_ordinalvolumes;

struct kctl_snap {
    cJSON *pods, *pvcs, *pvs, *scs, *ovs, *events; /* owned List objects (ovs may be NULL) */
    bool have_ovs;                                 /* the OrdinalVolume API is served */
};

/* List everything a status or plan needs in namespace ns (NULL = all). 0 or -errno (*st). */
int kctl_snap_load(struct kube_client *c, const char *ns, struct kctl_snap *s,
                   struct kube_status *st);
void kctl_snap_release(struct kctl_snap *s);

struct kctl_row {
    size_t tmpl;
    int32_t ordinal;
    enum model_range range;
    char claim_name[MODEL_NAME_MAX + 1];
    char pod_name[MODEL_NAME_MAX + 1];
    /* borrowed from the snapshot; NULL when absent */
    const cJSON *pvc, *pod, *pv, *sc, *ov, *event;
    struct model_ordinal_state st; /* for the model's plans */
    bool reclaim_known;            /* a PV or a class says the reclaim policy */
};

/* The rows of one set, sorted by ordinal then template. *ret owned by the caller (free()).
 * 0, -ENOMEM, -E2BIG (more than MODEL_PLAN_MAX_ORDINALS rows). */
int kctl_rows(const struct model_set *set, const struct kctl_snap *s, struct kctl_row **ret,
              size_t *ret_n);

/* A string at a dotted path ("spec.csi.volumeHandle"), or NULL. Borrowed. */
const char *kctl_str(const cJSON *o, const char *path);
const cJSON *kctl_get(const cJSON *o, const char *path);
/* Readiness of a pod: "true", "false" or "Terminating". */
const char *kctl_pod_ready(const cJSON *pod);
/* "Reason: message" of an event into buf. */
void kctl_event_text(const cJSON *ev, char *buf, size_t n);
/* Bytes as kubectl shows quantities: "512Mi", "1Gi", "1536Ki", "100". */
void kctl_bytes(double bytes, char *buf, size_t n);

#endif
