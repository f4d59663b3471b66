/*
 * The volume inventory: one OrdinalVolume (ordinal.csi.dev/v1alpha1, cluster-scoped, short name
 * ov) per backing store on this node, kept by this node's plugin, off the provisioning path.
 *
 * A background thread syncs, every period and shortly after a PersistentVolume changed (the
 * provisioner's PV cache calls inv_kick()), the backends' volume lists and the PV cache into
 * OrdinalVolumes: created for new stores, their status patched when it changed, deleted when
 * the store is gone. It never slows a claim to Bound: CreateVolume and the PV do not wait for
 * it, and a missing CRD or an API error only delays the inventory.
 *
 * Who writes what: this node owns spec and the status fields state, usedBytes,
 * persistentVolume, claim, createdAt, lastUsedAt and message (status merge patches that carry
 * only those); the reconciler may add statefulSet, template and ordinal, which are left alone.
 *
 * Reclaim: a store no PV refers to is Orphaned and is never deleted automatically. The
 * annotation ordinal.csi.dev/reclaim=requested (kubectl ordinal reclaim) makes this node delete
 * the store (DeleteVolume, with the CSI locks) when it is still Orphaned by both the cache and a
 * live GET of its owner PV, then the OrdinalVolume; otherwise status.message says why not.
 *
 * Threading: inv_start/inv_stop from one thread; inv_kick from any thread (informer threads).
 */
#ifndef ORDINAL_INVENTORY_H
#define ORDINAL_INVENTORY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "csi.h"
#include "kube_client.h"
#include "kube_informer.h"

#define INV_ANN_RECLAIM "ordinal.csi.dev/reclaim"
#define INV_RECLAIM_REQUESTED "requested"
#define INV_LABEL_NODE "ordinal.csi.dev/node"

struct inv_config {
    struct kube_client *client; /* borrowed */
    struct csi_service *svc;    /* borrowed: backends, node id, driver name, locks */
    struct kube_informer *pvs;  /* borrowed: the provisioner's PV cache */
    double period_s;            /* full resync period; <= 0 = 30 s */
};

struct inv;

/* Start the inventory thread (it waits for the caches itself). NULL on failure (logged). */
struct inv *inv_start(const struct inv_config *cfg);
/* Ask for a sync soon (coalesced). Thread-safe, cheap, never blocks; inv may be NULL. */
void inv_kick(struct inv *inv);
/* Stop the thread and the OrdinalVolume informer, free nothing: inv_kick stays safe for a
 * caller that loaded inv before (the provisioner's PV informer). Prompt once the client is shut
 * down. NULL is a no-op. */
void inv_halt(struct inv *inv);
/* inv_halt, then free. NULL is a no-op. */
void inv_stop(struct inv *inv);
/* Completed syncs so far (thread-safe; inv may be NULL). */
unsigned long inv_syncs(const struct inv *inv);

/* ---- the decisions, pure ---- */

enum inv_state {
    INV_BOUND = 0, /* a PV refers to the store and is Bound (or still binding) */
    INV_RELEASED,  /* its claim is gone, reclaim Delete: the store is about to be deleted */
    INV_RETAINED,  /* its claim is gone, reclaim Retain: kept for re-adoption */
    INV_ORPHANED,  /* no PV refers to the store */
    INV_DELETING,  /* its PV is being deleted, or a reclaim is deleting the store */
};

/* "Bound", "Released", "Retained", "Orphaned", "Deleting". */
const char *inv_state_name(enum inv_state s);

/* The state of a store given the PV that refers to it (borrowed; NULL = none does). */
enum inv_state inv_state_of(const cJSON *pv);

/* Whether PV pv (borrowed) refers to the store volume_id of driver `driver` (spec.csi). */
bool inv_pv_refers(const cJSON *pv, const char *driver, const char *volume_id);

/*
 * The OrdinalVolume name of store v on node `node` into buf (size n): the store's CSI name (its
 * PV's name, pvc-<uid>) when that is a valid object name, else "ov-" and 16 hex digits of a hash
 * of node and volume id. Returns the length or -ENAMETOOLONG.
 */
int inv_ov_name(const struct be_volume *v, const char *node, char *buf, size_t n);

/*
 * The desired OrdinalVolume for store v of backend `backend` on `node` (pv borrowed, may be
 * NULL): a new object with metadata.name/labels, spec and status (this node's status fields
 * only). NULL on -ENOMEM.
 */
cJSON *inv_desired(const struct be_volume *v, const char *backend, const char *node,
                   const cJSON *pv);

/*
 * Adds usedBytes and lastUsedAt to desired's status (desired from inv_desired; ov, the current
 * object, borrowed, may be NULL): usedBytes = used when used_known, else ov's last value (none
 * when it has none); lastUsedAt = the later of last_use (seconds since the epoch, 0 = unknown)
 * and ov's lastUsedAt (kept over a restart, which forgets the in-memory times).
 */
void inv_add_usage(cJSON *desired, const cJSON *ov, bool used_known, int64_t used,
                   int64_t last_use);

/* What to do about a reclaim request on an OrdinalVolume. */
enum inv_reclaim {
    INV_RECLAIM_NONE = 0, /* not requested */
    INV_RECLAIM_DELETE,   /* requested and the store is Orphaned: delete it */
    INV_RECLAIM_REFUSE,   /* requested but a PV refers to it: refuse, say why */
};

/* The decision for OrdinalVolume ov (borrowed) whose store is in state `state`. */
enum inv_reclaim inv_reclaim_decide(const cJSON *ov, enum inv_state state);

/*
 * The status merge patch that brings ov's status (borrowed, may be NULL) to desired's status
 * (borrowed): a new {"status": {...}} object with the node-owned fields that differ (null for
 * those to remove), or NULL when nothing differs (or on -ENOMEM).
 */
cJSON *inv_status_patch(const cJSON *ov, const cJSON *desired);

#endif
