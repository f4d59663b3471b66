/*
 * The backend interface: what the CSI services and the Kubernetes provisioner ask of a store
 * of volumes (a directory tree, an LVM volume group), in plain C structs.
 *
 * Contract, for every slot:
 *   - returns >= 0 on success or a negative errno; the meaning of each errno is fixed here so
 *     that the one status table at the RPC boundary (provisioner/status.c) can translate it:
 *       -EINVAL       a request field is invalid or unsupported by this backend
 *       -ENOENT       the volume, snapshot or source does not exist
 *       -EEXIST       the name exists but is incompatible with the request
 *       -ERANGE       the capacity range cannot be satisfied
 *       -ENOSPC       no room for the volume
 *       -EBUSY        the volume is in use (mounted, has dependants) and cannot be changed
 *       -ENOTSUP      the operation cannot be done by this backend on this machine
 *       anything else an internal failure (I/O error, ...)
 *   - every operation is idempotent and crash-safe: after a kill -9 at any instant followed by
 *     be_ops.recover(), a volume either exists whole or not at all;
 *   - the backend does not lock per volume: the caller (provisioner/locks.c) guarantees that at
 *     most one operation runs per volume key, volume id or snapshot name at a time. The backend
 *     protects its own shared index with its own mutex.
 *   - strings in and out are NUL-terminated; out-structs are written only on success.
 *
 * Backends never see gRPC, protobuf or JSON.
 */
#ifndef ORDINAL_BACKEND_H
#define ORDINAL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BE_ID_MAX 128  /* CSI's limit for volume_id, snapshot_id, name */
#define BE_KEY_MAX 320 /* "<namespace>/<claim>": 63 + 1 + 253, or a CSI name */
#define BE_MSG_MAX 256 /* a human-readable message */
#define BE_PATH_MAX 4096
#define BE_UID_MAX 63 /* a Kubernetes object uid (36 bytes as the API server makes them) */

/* A content source of a volume. */
enum be_source_kind {
    BE_SOURCE_NONE = 0,
    BE_SOURCE_SNAPSHOT = 1,
    BE_SOURCE_VOLUME = 2,
};

/* Access type a volume must serve. */
enum be_access {
    BE_ACCESS_MOUNT = 0,
    BE_ACCESS_BLOCK = 1,
};

/* One backend parameter (a StorageClass parameter that the services did not consume). */
struct be_param {
    const char *key;   /* borrowed */
    const char *value; /* borrowed */
};

/* A volume as a backend knows it. Fixed-size so that it can live on a stack. */
struct be_volume {
    char id[BE_ID_MAX + 1];   /* volume_id: "<backend>:<...>", at most 128 bytes */
    char key[BE_KEY_MAX + 1]; /* identity: "<namespace>/<claim>" or the CSI name */
    char name[BE_ID_MAX + 1]; /* the CSI name of the last CreateVolume that returned it */
    int64_t capacity_bytes;   /* the size the volume has, as reported to the CO */
    enum be_access access;    /* what the volume was made for */
    enum be_source_kind source_kind;
    char source_id[BE_ID_MAX + 1]; /* snapshot or volume id it was made from, or "" */
    int64_t created_sec;           /* creation time, seconds since the epoch */
    char fs_type[16];              /* filesystem on the volume ("" for the directory backend) */
    bool abnormal;                 /* condition: true when the store is damaged or missing */
    char condition[BE_MSG_MAX];    /* condition message, human readable */
    /* The provisioning mark (be_ops.settle): the uid of the claim whose CreateVolume made or
     * took the volume and whose PV is not known to exist yet; "" = none. */
    char provisioning_uid[BE_UID_MAX + 1];
};

struct be_snapshot {
    char id[BE_ID_MAX + 1];   /* snapshot_id */
    char name[BE_ID_MAX + 1]; /* the CSI name */
    char source_volume_id[BE_ID_MAX + 1];
    int64_t size_bytes;
    int64_t created_sec;
    int32_t created_nsec;
    bool ready;
};

/* What CreateVolume asks for, already validated for syntax by the caller. */
struct be_create_req {
    const char *name;       /* CSI name, 1..128 bytes, no control characters */
    const char *key;        /* identity key: "<ns>/<claim>" or equal to name */
    bool key_is_claim;      /* key came from the PVC parameters */
    int64_t required_bytes; /* >= 0, 0 = unset */
    int64_t limit_bytes;    /* >= 0, 0 = unset */
    enum be_access access;
    const char *fs_type; /* requested fs type, "" = backend default */
    enum be_source_kind source_kind;
    const char *source_id;         /* when source_kind != NONE */
    const struct be_param *params; /* backend-specific parameters, borrowed */
    size_t n_params;
    /* NULL or "": no mark. Else the uid of the claim being provisioned (1..BE_UID_MAX bytes of
     * [A-Za-z0-9-]): a volume made, or taken over, by this create records it as its
     * provisioning mark in the same durable write that makes or takes it (be_ops.settle). A
     * backend without settle refuses a request that carries a mark (-ENOTSUP). */
    const char *provisioning_uid;
};

/* Node-side options for stage and publish. */
struct be_mount_req {
    const char *volume_id;
    const char *staging_path; /* absolute, the CO made it (stage) or "" (publish w/o staging) */
    const char *target_path;  /* absolute (publish only) */
    enum be_access access;
    const char *fs_type;            /* "" = default */
    const char *const *mount_flags; /* borrowed, n_mount_flags entries */
    size_t n_mount_flags;
    bool readonly;
};

struct be_stats {
    int64_t bytes_total, bytes_used, bytes_available;
    int64_t inodes_total, inodes_used, inodes_available; /* all -1 when unknown (block) */
    bool abnormal;
    char condition[BE_MSG_MAX];
};

/* One page of volumes or snapshots, sorted by id. Owned by the caller: free with be_*_page_free. */
struct be_volume_page {
    struct be_volume *items; /* owned, n items */
    size_t n;
    bool more; /* entries with larger ids remain */
};

struct be_snapshot_page {
    struct be_snapshot *items; /* owned */
    size_t n;
    bool more;
};

void be_volume_page_free(struct be_volume_page *p);
/* Whether s is a valid provisioning mark: 1..BE_UID_MAX bytes of [A-Za-z0-9-]. */
bool be_valid_uid(const char *s);
void be_snapshot_page_free(struct be_snapshot_page *p);

struct backend;

/*
 * The operations of one backend. A slot a backend does not offer is NULL and the caller answers
 * -ENOTSUP for it.
 */
struct be_ops {
    const char *name; /* "dir", "lvm": also the volume_id prefix before ':' */

    /* Scan the store, finish or roll back what a crash left half done, build the index.
     * Called once before any other slot. */
    int (*recover)(struct backend *b);
    void (*free)(struct backend *b);

    /* Create, or find the existing volume with the same key: returns 0 and the volume for
     * "created" or "already there and compatible", -EEXIST when incompatible. A volume
     * returned for another name than the one that made or last took it changes owner: its
     * name becomes req->name and its generation goes up by one (durably, before returning),
     * so its id changes and every id issued before names nothing any more (lookup -ENOENT,
     * remove 0 without deleting). The same name twice returns the same id. */
    int (*create)(struct backend *b, const struct be_create_req *req, struct be_volume *ret);
    /* Remove the volume with that id; unknown id, or an id of an earlier generation: 0 and
     * nothing removed. */
    int (*remove)(struct backend *b, const char *id);
    /* Find the volume with that id: 0, or -ENOENT (a malformed id is -ENOENT too). */
    int (*lookup)(struct backend *b, const char *id, struct be_volume *ret);
    /* Volumes with id > after (after "" = from the start), at most max (0 = all). */
    int (*list)(struct backend *b, const char *after, size_t max, struct be_volume_page *ret);
    /* Grow to at least required (<= limit when limit > 0); smaller is a no-op returning the
     * current size. *ret_node_expand tells whether NodeExpand has work to do. */
    int (*expand)(struct backend *b, const char *id, int64_t required, int64_t limit,
                  struct be_volume *ret, bool *ret_node_expand);
    /* Free bytes for new volumes and the largest volume that can be made now. */
    int (*capacity)(struct backend *b, const struct be_param *params, size_t n_params,
                    int64_t *ret_available, int64_t *ret_max_volume);

    int (*snapshot_create)(struct backend *b, const char *name, const char *source_volume_id,
                           struct be_snapshot *ret);
    int (*snapshot_remove)(struct backend *b, const char *id);
    int (*snapshot_lookup)(struct backend *b, const char *id, struct be_snapshot *ret);
    int (*snapshot_list)(struct backend *b, const char *after, size_t max,
                         struct be_snapshot_page *ret);

    /* Node side. stage/publish are idempotent: already done with the same options is 0,
     * done with other options is -EEXIST. unstage/unpublish of something not there is 0. */
    int (*stage)(struct backend *b, const struct be_mount_req *req);
    int (*unstage)(struct backend *b, const char *volume_id, const char *staging_path);
    int (*publish)(struct backend *b, const struct be_mount_req *req);
    int (*unpublish)(struct backend *b, const char *volume_id, const char *target_path);
    /* Stats of the volume mounted at path: -ENOENT when path is not this volume's mount. */
    int (*stats)(struct backend *b, const char *volume_id, const char *path, struct be_stats *ret);
    /* Grow what lives on the volume mounted at path (filesystem) to the volume's size. */
    int (*node_expand)(struct backend *b, const char *volume_id, const char *path,
                       int64_t *ret_capacity);

    /* The volume whose key is key ("<ns>/<claim>" or a plain name), in its current generation:
     * 0, or -ENOENT. Lets the provisioner ask who owns a claim's store before CreateVolume. */
    int (*lookup_key)(struct backend *b, const char *key, struct be_volume *ret);

    /* Optional (NULL: not reported): bytes the store of volume id takes now, mounted or not
     * (for the inventory, off every request path; may walk the store): 0 and *ret_used, or
     * -ENOTSUP when the backend cannot tell for this volume. */
    int (*usage)(struct backend *b, const char *volume_id, int64_t *ret_used);

    /* Optional (NULL: not reported): since the backend was made, how many operations waited
     * for their changes to become durable, and how many device flushes served them. */
    void (*durability_stats)(struct backend *b, uint64_t *ret_waits, uint64_t *ret_flushes);

    /* Optional (NULL: provisioning marks unsupported): clear the provisioning mark of the
     * volume with that id, durably; 0 when it has none. Unknown or stale id: -ENOENT. */
    int (*settle)(struct backend *b, const char *id);
    /* Whether create accepts a snapshot or another volume as content source (CLONE_VOLUME and
     * restores); false means create refuses every source (-ENOTSUP). */
    bool content_sources;
};

struct backend {
    const struct be_ops *ops; /* borrowed, static */
};

#endif
