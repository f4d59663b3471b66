/*
 * The CSI services: shared state, the method table, and helpers used by identity.c,
 * controller.c and node.c to read requests and build responses.
 *
 * Threading: handlers run on worker threads, several at once. struct csi_service is read-only
 * after start-up except through the lock table and the backends, which lock themselves.
 */
#ifndef ORDINAL_CSI_H
#define ORDINAL_CSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "csi.pb-c.h"
#include "locks.h"
#include "server.h"

#define CSI_TOPOLOGY_KEY "topology.ordinal.csi.dev/node"
#define CSI_CTX_KEY "ordinal.csi.dev/key"
#define CSI_CTX_BACKEND "ordinal.csi.dev/backend"
#define CSI_PARAM_PVC_NAMESPACE "csi.storage.k8s.io/pvc/namespace"
#define CSI_PARAM_PVC_NAME "csi.storage.k8s.io/pvc/name"
#define CSI_PARAM_BACKEND "backend"
/* The built-in provisioner's own CreateVolume parameter: the claim's uid, recorded by the
 * backend as the volume's provisioning mark (be_create_req.provisioning_uid). */
#define CSI_PARAM_PROVISIONING "ordinal.csi.dev/provisioning-claim-uid"
#define CSI_MAX_BACKENDS 4

enum csi_mode { CSI_MODE_NODE = 0, CSI_MODE_CONTROLLER = 1 };

struct csi_service {
    const char *driver_name; /* borrowed */
    const char *version;     /* borrowed */
    const char *node_id;     /* borrowed */
    enum csi_mode mode;
    int64_t max_volumes_per_node;
    const char *default_backend; /* borrowed: where a request without "backend" goes; NULL = dir */
    struct backend *backends[CSI_MAX_BACKENDS]; /* owned, sorted by ops->name */
    size_t n_backends;
    struct lock_table *locks; /* owned */
    struct csi_uses *uses;    /* owned, may be NULL: last publish/unpublish per volume */
};

/*
 * When this plugin last published or unpublished a volume (uses.c), for the inventory's
 * lastUsedAt. Thread-safe, one leaf lock, never blocks on I/O. Times are seconds since the
 * epoch; 0 = not seen since start-up. Every function accepts NULL.
 */
struct csi_uses *csi_uses_new(void);
void csi_uses_free(struct csi_uses *u);
void csi_uses_note(struct csi_uses *u, const char *volume_id, int64_t at);
int64_t csi_uses_get(struct csi_uses *u, const char *volume_id);
void csi_uses_forget(struct csi_uses *u, const char *volume_id);
/* fn(ud) after every note (under the table's lock: fn must be quick and take only leaf locks;
 * NULL unregisters, and once this returns fn is not running). */
void csi_uses_set_notify(struct csi_uses *u, void (*fn)(void *ud), void *ud);
/* Note "now" for volume_id in svc->uses (a successful NodePublish/NodeUnpublish). */
void csi_note_use(struct csi_service *svc, const char *volume_id);

/*
 * What the configured backends can do, for the capability lists of the three services: a
 * capability is advertised when at least one backend offers the slots behind it (with several
 * backends a request for one that cannot do it fails per volume). No backend, no capability.
 */
struct csi_caps {
    bool volumes;        /* create and remove: CREATE_DELETE_VOLUME */
    bool list_volumes;   /* list: LIST_VOLUMES */
    bool get_volume;     /* lookup: GET_VOLUME, VOLUME_CONDITION */
    bool capacity;       /* GET_CAPACITY */
    bool snapshots;      /* snapshot create, remove and lookup: CREATE_DELETE_SNAPSHOT */
    bool list_snapshots; /* LIST_SNAPSHOTS */
    bool clone;          /* content sources: CLONE_VOLUME */
    bool expand;         /* controller expand: EXPAND_VOLUME, plugin VolumeExpansion */
    bool stage;          /* stage and unstage: STAGE_UNSTAGE_VOLUME */
    bool stats;          /* GET_VOLUME_STATS, node VOLUME_CONDITION */
    bool node_expand;    /* node EXPAND_VOLUME */
};

void csi_caps_of(const struct csi_service *svc, struct csi_caps *ret);

/* Every method the daemon serves, for the server's registration. */
extern const struct csi_method csi_methods[];
extern const size_t csi_n_methods;

/* A map entry of any protobuf-c map<string,string>: all share this layout. */
struct csi_kv {
    ProtobufCMessage base;
    char *key;
    char *value;
};
#define CSI_KV(entries) ((struct csi_kv *const *)(const void *)(entries))

/* An empty response message of type d in the call's arena, or NULL. */
ProtobufCMessage *csi_empty_msg(struct csi_call *call, const ProtobufCMessageDescriptor *d);

/* Value of key in a map, or NULL. */
const char *csi_map_get(struct csi_kv *const *entries, size_t n, const char *key);

/* Backend that serves this volume or snapshot id (by its "<name>:" prefix), or NULL. */
struct backend *csi_backend_for_id(struct csi_service *svc, const char *id);
/* Backend by name, or NULL. */
struct backend *csi_backend_named(struct csi_service *svc, const char *name);

/*
 * Check a VolumeCapability: access type set, mode known. Returns 0 and the access kind, or
 * -EINVAL with a message naming `field`.
 */
int csi_check_capability(struct csi_call *call, const Csi__V1__VolumeCapability *cap,
                         const char *field, enum be_access *ret_access);
/* True when a volume made for `access` on one node can serve cap. */
bool csi_capability_supported(const Csi__V1__VolumeCapability *cap, enum be_access access,
                              const char **ret_why);

/* Build a Volume message for v in the call's arena; NULL on allocation failure. */
Csi__V1__Volume *csi_volume_msg(struct csi_call *call, struct csi_service *svc,
                                const struct be_volume *v);
Csi__V1__Topology *csi_node_topology(struct csi_call *call, struct csi_service *svc);
Csi__V1__Snapshot *csi_snapshot_msg(struct csi_call *call, const struct be_snapshot *s);
Csi__V1__VolumeCondition *csi_condition_msg(struct csi_call *call, bool abnormal,
                                            const char *message);

/* Paging tokens: "t" + hex of the last id returned. 0, or -EAGAIN for a token we never gave. */
int csi_token_decode(const char *token, char *ret_id, size_t size);
char *csi_token_encode(struct csi_call *call, const char *id);

/* Take the operation locks of volumes/snapshots (NULL keys skipped): 0, or -EAGAIN with a
 * message naming the busy object. Give back with csi_unlock. Keys are "k:<volume key>",
 * "s:<snapshot name>", "n:<CSI name>". */
int csi_lock(struct csi_call *call, struct csi_service *svc, const struct lock_req *reqs, size_t n);
void csi_unlock(struct csi_service *svc, const struct lock_req *reqs, size_t n);
/* The same for one key taken exclusively. */
int csi_lock_key(struct csi_call *call, struct csi_service *svc, const char *key);
void csi_unlock_key(struct csi_service *svc, const char *key);

/* A map<string,string> within CSI's 4 KiB limit (keys plus values): 0 or -EINVAL naming field. */
int csi_check_map(struct csi_call *call, struct csi_kv *const *entries, size_t n,
                  const char *field);
#define CSI_MAP_MAX 4096

/* Path check for node RPCs: absolute, no NUL, fits PATH_MAX. */
int csi_check_path(struct csi_call *call, const char *path, const char *field);

/* Handlers, one per RPC. */
#define CSI_HANDLER(name)                                                                          \
    int csi_##name(struct csi_call *call, void *ctx, const ProtobufCMessage *req,                  \
                   ProtobufCMessage **ret_resp)
CSI_HANDLER(get_plugin_info);
CSI_HANDLER(get_plugin_capabilities);
CSI_HANDLER(probe);
CSI_HANDLER(create_volume);
CSI_HANDLER(delete_volume);
CSI_HANDLER(controller_publish_volume);
CSI_HANDLER(controller_unpublish_volume);
CSI_HANDLER(validate_volume_capabilities);
CSI_HANDLER(list_volumes);
CSI_HANDLER(get_capacity);
CSI_HANDLER(controller_get_capabilities);
CSI_HANDLER(create_snapshot);
CSI_HANDLER(delete_snapshot);
CSI_HANDLER(list_snapshots);
CSI_HANDLER(controller_expand_volume);
CSI_HANDLER(controller_get_volume);
CSI_HANDLER(controller_modify_volume);
CSI_HANDLER(get_snapshot);
CSI_HANDLER(node_stage_volume);
CSI_HANDLER(node_unstage_volume);
CSI_HANDLER(node_publish_volume);
CSI_HANDLER(node_unpublish_volume);
CSI_HANDLER(node_get_volume_stats);
CSI_HANDLER(node_expand_volume);
CSI_HANDLER(node_get_capabilities);
CSI_HANDLER(node_get_info);

#endif
