/*
 * Internals shared by dir.c (volumes, index, recovery), dir_snap.c (snapshots) and dir_node.c
 * (node side). Symbols are prefixed dir__. Not for use outside backends/dir/.
 *
 * Threading: struct dir_backend.lock protects the two index arrays and damaged; everything else
 * in it is immutable after be_dir_new(). Entries are immutable once in the index: a change
 * replaces the entry.
 */
#ifndef ORDINAL_DIR_INTERNAL_H
#define ORDINAL_DIR_INTERNAL_H

#include "backend.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIR_VOLUME_META "volume.meta"
#define DIR_SNAPSHOT_META "snapshot.meta"
#define DIR_META_MAX 8192 /* cap of a meta file we read */
#define DIR_ROOT_MAX 2048 /* longest root path accepted */
#define DIR_DEFAULT_CAPACITY (1LL << 30)

/* A volume in the index: one allocation holding the struct and its strings. */
struct dir_vol {
    int64_t capacity;
    int64_t created;
    uint64_t gen; /* generation: bumped each time a CreateVolume hands the volume to a new name */
    char full_id[BE_ID_MAX + 1]; /* the id issued: id[] (the generation-0 id) plus "/<gen>" */
    uint8_t source_kind;         /* enum be_source_kind */
    bool key_is_claim;
    bool damaged;        /* meta missing or garbled: only id/key/condition are meaningful */
    uint32_t projid;     /* project quota id, 0 = none (dir_quota.c) */
    int64_t inode_limit; /* project quota inode hard limit, 0 = none */
    char prov_uid[BE_UID_MAX + 1]; /* provisioning mark (be_ops.settle), "" = none */
    const char *key;               /* into id[] */
    const char *name;              /* into id[] */
    const char *source_id;         /* into id[] */
    const char *condition;         /* into id[]: why damaged, "" otherwise */
    char id[];                     /* generation-0 id (the index key), then the strings above */
};

/* A snapshot in the index, same shape. */
struct dir_snap {
    int64_t size;
    int64_t source_capacity;
    int64_t created;
    int32_t created_nsec;
    bool damaged;
    const char *name;
    const char *source_volume_id;
    const char *condition;
    char id[];
};

/* Project quota state of the root (dir_quota.c); set by recover(), read-only after it except
 * last_projid (under dir_backend.lock). */
struct dir_quota {
    bool enforced;
    int root_fd;          /* the root, open while enforced, else -1 */
    char fs[24];          /* "xfs", "ext4", ... */
    char why[BE_MSG_MAX]; /* what detection found, for the log and the metric */
    uint32_t last_projid; /* largest id handed out or held */
};

struct dir_quota_usage {
    uint32_t projid;
    int64_t bytes_used, bytes_limit, inodes_used, inode_limit;
};

struct dir_backend {
    struct backend base; /* first: a struct backend * is a struct dir_backend * */
    char *root;          /* owned, canonical, no trailing '/' */
    char *node_id;       /* owned */

    pthread_mutex_t lock;
    struct dir_vol **vols; /* owned entries, sorted by id */
    size_t n_vols, cap_vols;
    struct dir_snap **snaps; /* owned entries, sorted by id */
    size_t n_snaps, cap_snaps;
    size_t damaged;
    struct dir_quota quota;
    size_t rolled_back;    /* unfinished creates the last recover() removed */
    struct commit *commit; /* owned: group commit of the root's filesystem (commit.h) */
};

static inline struct dir_backend *dir__of(struct backend *b)
{
    return (struct dir_backend *)b;
}

/* ---- names and ids (dir.c) ---- */
bool dir__valid_plain_name(const char *s);
bool dir__valid_claim_key(const char *s);
/* Path of a volume's directory relative to root: the key, or "_/<key>" for a plain name. */
int dir__vol_rel(const char *key, bool key_is_claim, char *ret, size_t cap);
void dir__vol_id(const char *rel, char ret[BE_ID_MAX + 1]);
/* The id of the volume at rel in generation gen: dir__vol_id() for 0, else "dir:<rel>/<gen>",
 * or "dir:#<sha256 hex of rel>/<gen>" when that is over 128 bytes. */
void dir__vol_id_gen(const char *rel, uint64_t gen, char ret[BE_ID_MAX + 1]);
/* Split an id into its generation-0 id and generation: an id carries a generation only as a
 * last "/<decimal >= 1>" after a complete generation-0 id; anything else is generation 0. */
void dir__id_split(const char *id, char base[BE_ID_MAX + 1], uint64_t *ret_gen);
void dir__snap_id(const char *name, char ret[BE_ID_MAX + 1]);
/* snprintf into ret (cap bytes); -ENAMETOOLONG on truncation. */
int dir__path(char *ret, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- meta files (dir.c) ---- */
struct dir__kv {
    const char *k, *v;
};
/* Parse "version=1\nk=v\n..." in place (text is modified). Returns the number of pairs or
 * -EINVAL for a missing or wrong version line. */
int dir__meta_parse(char *text, struct dir__kv *kv, size_t max);
const char *dir__meta_get(const struct dir__kv *kv, size_t n, const char *k);
bool dir__parse_i64(const char *s, int64_t min, int64_t *ret);
/* The last line of a meta file written since group commit: "checksum=<sha256 hex of every byte
 * before this line>". */
#define DIR_META_CHECKSUM "checksum="
/* Append the checksum line to the n bytes of text in buf (cap bytes): the new length, or
 * -ENAMETOOLONG. */
int dir__meta_seal(char *buf, size_t n, size_t cap);
/* Check the checksum line of a meta file's text (len bytes, before parsing): 1 when present and
 * right, 0 when absent (a meta written before checksums), -EBADMSG when wrong or not last. */
int dir__meta_verify(const char *text, size_t len);
/* Make every change done so far under the root durable (one shared flush, commit.h). */
int dir__commit(struct dir_backend *d);
/* Remove "<meta>.XXXXXX.tmp" leftovers of fsu_write_atomic() in dir. */
void dir__remove_meta_temps(const char *dir, const char *meta);

/* ---- volume index (dir.c); call with lock held ---- */
/* The entry an issued id names: NULL when there is none or the id's generation is not the
 * volume's current one (a stale id of an earlier owner names nothing). */
struct dir_vol *dir__vol_find(struct dir_backend *d, const char *id);
/* Copy an index entry to an out-struct, adding the current condition of its data dir. */
void dir__vol_to_be(const struct dir_backend *d, const struct dir_vol *v, struct be_volume *ret);
/* Look a volume up and copy it out with its data dir path: 0 or -ENOENT. Takes the lock. */
int dir__vol_get(struct dir_backend *d, const char *id, struct be_volume *ret, char *data_path,
                 size_t cap);

/* Make a unique empty work directory under .tmp ("<prefix>XXXXXXXXXXXX"). */
int dir__mktemp(struct dir_backend *d, const char *prefix, char *ret, size_t cap);

/* ---- snapshots (dir_snap.c) ---- */
int dir__snapshot_create(struct backend *b, const char *name, const char *source_volume_id,
                         struct be_snapshot *ret);
int dir__snapshot_remove(struct backend *b, const char *id);
int dir__snapshot_lookup(struct backend *b, const char *id, struct be_snapshot *ret);
int dir__snapshot_list(struct backend *b, const char *after, size_t max,
                       struct be_snapshot_page *ret);
/* With lock held. */
struct dir_snap *dir__snap_find(struct dir_backend *d, const char *id);
/* Read one snapshot directory into a new entry (damaged when its meta is); NULL on ENOMEM or
 * when name is not a valid snapshot name. */
struct dir_snap *dir__snap_load(struct dir_backend *d, const char *name);
int dir__snap_insert(struct dir_backend *d, struct dir_snap *s);
void dir__snaps_clear(struct dir_backend *d);

/* ---- node side (dir_node.c) ---- */
int dir__stage(struct backend *b, const struct be_mount_req *req);
int dir__unstage(struct backend *b, const char *volume_id, const char *staging_path);
int dir__publish(struct backend *b, const struct be_mount_req *req);
int dir__unpublish(struct backend *b, const char *volume_id, const char *target_path);
int dir__stats(struct backend *b, const char *volume_id, const char *path, struct be_stats *ret);
/* be_ops.usage: the project quota's numbers when quotas are enforced, else a walk of the tree. */
int dir__usage(struct backend *b, const char *volume_id, int64_t *ret_used);
int dir__node_expand(struct backend *b, const char *volume_id, const char *path,
                     int64_t *ret_capacity);

/* ---- project quotas (dir_quota.c) ---- */
#define DIR_PARAM_INODE_LIMIT "inodeLimit"
#define DIR_INODE_LIMIT_MAX (1LL << 40)
#define DIR_PROJID_BASE 1000000u   /* first project id the backend hands out */
#define DIR_PROJID_MAX 0x7ffffffeu /* last one */
/* Validate CreateVolume/GetCapacity parameters (only inodeLimit); the inode limit or 0. */
int dir__quota_params(const struct be_param *params, size_t n, int64_t *ret_inodes);
/* Bytes as 1 KiB quota blocks, rounded up. */
uint64_t dir__quota_blocks(int64_t bytes);
/* The id after current_max (DIR_PROJID_BASE first); -ENOSPC past DIR_PROJID_MAX. */
int dir__quota_next_id(uint32_t current_max, uint32_t *ret);
void dir__quota_init(struct dir_quota *q);
void dir__quota_close(struct dir_quota *q);
/* Find out whether project limits are enforced on the root; never fails (why says). */
void dir__quota_detect(struct dir_backend *d);
/* For a volume being built (v->capacity set, data made): when enforced, allocate an id, set the
 * limits, tag data and its content; sets v->projid (nonzero once limits are set, even when a
 * later step fails: the caller releases it) and v->inode_limit. -EINVAL for an inode limit
 * where quotas are not enforced. */
int dir__quota_prepare(struct dir_backend *d, const char *data, struct dir_vol *v, int64_t inodes);
/* Set v's block limit to bytes (a no-op for a volume without a project id). */
int dir__quota_resize(struct dir_backend *d, const struct dir_vol *v, int64_t bytes);
/* Clear the limits of a project id no volume holds any more. */
void dir__quota_release(struct dir_backend *d, uint32_t projid);
/* The quota's numbers of the volume with that id: -ENOTSUP when it has no project id. */
int dir__quota_usage(struct dir_backend *d, const char *id, struct dir_quota_usage *ret);
/* After the scan: limits of every volume set again from its meta, limits of ids of our range
 * that no volume holds cleared (counted in *ret_cleared), the id counter past every held id. */
int dir__quota_reconcile(struct dir_backend *d, size_t *ret_cleared);

#endif
