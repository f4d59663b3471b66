/*
 * The built-in provisioner, node-deployment fashion: each node's ordinal-csi watches claims,
 * persistent volumes and storage classes, provisions the claims that belong to it, creates their
 * PersistentVolumes, and releases volumes whose claims are gone, as the reclaim policy says.
 *
 * Which claims are this node's: the claim names our driver in its storage-provisioner
 * annotation, its class's provisioner is ours, it is unbound, and its selected-node annotation
 * is this node. For classes with Immediate binding and no selected node, nodes race to set
 * selected-node with a resourceVersion-checked update; the loser backs off.
 *
 * Crash safety, leak protection: before CreateVolume the claim gets the finalizer
 * ordinal.csi.dev/provisioning, so a claim deleted while its volume is being made stays visible
 * until the provisioner has either made the PV (then the PV's reclaim policy decides) or deleted
 * the volume again (reclaim policy Delete). The PV name is pvc-<claim uid> and the volume key is
 * <namespace>/<claim>, so a restart at any instant makes neither a second PV nor a second volume.
 *
 * Threading: informer threads only queue keys; several worker threads sync them, one key at a
 * time. CSI work goes through the same in-process handlers as gRPC calls, with their locks.
 */
#ifndef ORDINAL_PROVISION_H
#define ORDINAL_PROVISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csi.h"
#include "kube_client.h"

#define PROV_CLAIM_FINALIZER "ordinal.csi.dev/provisioning"
#define PROV_PV_FINALIZER "ordinal.csi.dev/volume-protection"
#define PROV_ANN_SELECTED_NODE "volume.kubernetes.io/selected-node"
#define PROV_ANN_PROVISIONER "volume.kubernetes.io/storage-provisioner"
#define PROV_ANN_PROVISIONER_BETA "volume.beta.kubernetes.io/storage-provisioner"
#define PROV_ANN_PROVISIONED_BY "pv.kubernetes.io/provisioned-by"
/* Ordered provisioning (issue 11): a class with this parameter set to "ordered" has its claims
 * provisioned only once the controller (provisioner/reconciler.c) has set PROV_ANN_ADMITTED on
 * them. The parameter is the provisioner's, never passed to CreateVolume. */
#define PROV_PARAM_ORDERING "ordinal.csi.dev/ordering"
#define PROV_ANN_ADMITTED "ordinal.csi.dev/admitted"
/* Ordered release: a Released PV (policy Delete) of an ordered class keeps its store until the
 * controller sets PROV_ANN_RELEASE to "approved" on it (highest ordinal of a set first). */
#define PROV_ANN_RELEASE "ordinal.csi.dev/release"

/* Whether class sc (borrowed) asks for ordered provisioning, and whether claim (borrowed)
 * has been admitted by the controller. */
bool prov_class_ordered(const cJSON *sc);
bool prov_claim_admitted(const cJSON *claim);

struct prov_config {
    struct kube_client *client; /* borrowed */
    /* borrowed, may be NULL (= client): Events go through it, so that their rate limit is
     * not the provisioning path's */
    struct kube_client *events_client;
    struct csi_service *svc; /* borrowed: backends, locks, node id, driver name */
    int workers;             /* >= 1 */
    /* Called on the PV informer thread after any PV change (may be NULL): the inventory's
     * kick. Must be cheap and must not block. */
    void (*pv_changed)(void *ud);
    void *pv_changed_ud;
};

struct prov;

/* Start the informers; the workers follow in the background once the caches have synced,
 * however long the API server takes to answer. Never waits for the API server. NULL on failure
 * (allocation, threads; logged). */
struct prov *prov_start(const struct prov_config *cfg);
/* Stop everything and free. Prompt when the client was shut down first (in-flight requests are
 * aborted; the protocol is crash-safe, so an interrupted sync is finished by the next start). */
void prov_stop(struct prov *p);
/* Whether the caches have synced and the workers run (thread-safe; p may be NULL). */
bool prov_synced(const struct prov *p);
/* The PV cache (borrowed, lives until prov_stop), for the inventory. */
struct kube_informer *prov_pv_cache(struct prov *p);
/* Events dropped so far (thread-safe; p may be NULL). */
unsigned long long prov_events_dropped(const struct prov *p);

/* What a sync does with a claim, by the claim and its class alone. */
enum prov_claim_step {
    PROV_CLAIM_IGNORE,         /* not ours (no uid, another class or node), or nothing to do */
    PROV_CLAIM_CLEANUP,        /* being deleted and carrying our finalizer: clean up, let it go */
    PROV_CLAIM_UNFINALIZE,     /* bound and still carrying our finalizer: remove it */
    PROV_CLAIM_WAIT_HANDOFF,   /* the PV controller has not named our driver in it yet */
    PROV_CLAIM_WAIT_ADMISSION, /* ordered class, not admitted by the controller yet */
    PROV_CLAIM_TAKE_NODE,      /* Immediate binding, no node selected: race to select this one */
    PROV_CLAIM_PROVISION,      /* selected for this node: look at the store, make the PV */
};

/*
 * The claim-level decision, pure: claim and sc (its class, NULL when not known) as the caches
 * hold them, driver and node_id ours. Which node wins a TAKE_NODE race, and what the store and
 * its owner PV say (prov_owner_decide), come after.
 */
enum prov_claim_step prov_claim_decide(const char *driver, const char *node_id, const cJSON *claim,
                                       const cJSON *sc);

/* What a claim's provisioning does about the store its key names on this node. */
enum prov_owner {
    PROV_OWNER_NEW,     /* no store, or the claim's own (made by its CreateVolume): CreateVolume */
    PROV_OWNER_ADOPT,   /* the store's owner PV is gone: CreateVolume takes it over */
    PROV_OWNER_READOPT, /* the owner PV is Released with Retain: point its claimRef here */
    PROV_OWNER_DONE,    /* the owner PV names this claim already: the PV binder finishes */
    PROV_OWNER_WAIT,    /* the owner PV holds the store (bound, being released or deleted), or
                         * it could not be read: wait and look again */
};

/*
 * The ownership decision, pure. store_owner is the owner the backend records for the store of
 * the claim's key (the CSI name of the CreateVolume that made or last took it, i.e. its PV's
 * name), NULL when there is no store; store_id its current id. owner_rc and owner_pv are the
 * result of reading PV store_owner live (0 and the PV, -ENOENT, or another error); pvname and
 * uid are the claim's own PV name and uid, driver our driver name. A PV "holds" the store when
 * its spec.csi names our driver and the store's current id.
 */
enum prov_owner prov_owner_decide(const char *driver, const char *pvname, const char *uid,
                                  const char *store_owner, const char *store_id, int owner_rc,
                                  const cJSON *owner_pv);

/* StorageClass parameters a claim's CreateVolume carries at most (besides the claim's identity);
 * a class with more is refused: no backend takes more than a handful. */
#define PROV_MAX_CLASS_PARAMS 69

/* Everything CreateVolume needs, owned by one struct (the strings it points to are borrowed
 * from the claim and class it was built from, which must outlive it). */
struct prov_create_args {
    Csi__V1__CreateVolumeRequest req;
    Csi__V1__CapacityRange range;
    Csi__V1__VolumeCapability cap, *caps[1];
    Csi__V1__VolumeCapability__AccessMode mode;
    Csi__V1__VolumeCapability__MountVolume mount;
    Csi__V1__VolumeCapability__BlockVolume block;
    char *flags[32];
    /* the class's own parameters (PROV_MAX_CLASS_PARAMS at most), then the claim's identity
     * (namespace, name, PV name) and, added by the caller, the provisioning mark */
    Csi__V1__CreateVolumeRequest__ParametersEntry params[PROV_MAX_CLASS_PARAMS + 4],
        *pparams[PROV_MAX_CLASS_PARAMS + 4];
    Csi__V1__TopologyRequirement topo_req;
    Csi__V1__Topology topo, *ptopo[1];
    Csi__V1__Topology__SegmentsEntry seg, *pseg[1];
    Csi__V1__VolumeContentSource src;
    Csi__V1__VolumeContentSource__VolumeSource vsrc;
    char name[300], pvname[300], fs_type[32];
};

/*
 * Fill a CreateVolume request from a claim and its class, as a pure function of them and the
 * node id (the topology requisite): 0, or -EINVAL with msg set (a quantity that does not parse,
 * an access mode that is unknown or not single-node, a class parameter that is no string, more
 * than PROV_MAX_CLASS_PARAMS class parameters).
 */
int prov_build_create(const char *node_id, const cJSON *claim, const cJSON *sc,
                      struct prov_create_args *a, char *msg, size_t msglen);

/*
 * The PV for a claim provisioned as vol from the request a (made by prov_build_create from the
 * same claim and class): driver and identity (the value of
 * storage.kubernetes.io/csiProvisionerIdentity) are ours. Pure; the PV
 * is owned by the caller, NULL when out of memory.
 */
cJSON *prov_build_pv(const char *driver, const char *identity, const cJSON *claim, const cJSON *sc,
                     const char *class_name, const Csi__V1__Volume *vol,
                     const struct prov_create_args *a);

/*
 * Parse a Kubernetes quantity ("10Gi", "500M", "1.5Gi", "1e9", "1000") into bytes, rounded up
 * to a whole byte. 0, or -EINVAL for anything malformed, negative or over INT64_MAX.
 */
int prov_parse_quantity(const char *s, int64_t *ret);

/* Write bytes as a canonical quantity: the largest binary suffix that divides it exactly
 * ("10Gi", "1536Mi"), else plain bytes. */
void prov_format_quantity(int64_t bytes, char *buf, size_t n);

#endif
