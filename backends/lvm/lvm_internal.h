/*
 * Internals of the LVM backend shared by lvm.c (controller side, recovery), lvm_node.c (node
 * side), lvm_name.c (names, ids, tags) and lvm_json.c (lvm's JSON reports). Symbols are
 * prefixed lvm__. Not for use outside backends/lvm/ and its unit tests.
 *
 * Threading: struct lvm_backend is immutable after be_lvm_new(); the backend keeps no index
 * (LVM's metadata is the only state), so nothing here needs a lock. The caller serialises
 * operations per volume key (backend.h).
 */
#ifndef ORDINAL_LVM_INTERNAL_H
#define ORDINAL_LVM_INTERNAL_H

#include "backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LVM_VG_NAME_MAX 32 /* longest volume group name accepted by --lvm-vg */
#define LVM_LV_NAME_MAX 64 /* longest LV name this backend makes (LVM allows 127) */
#define LVM_NAME_PREFIX "ord-"
#define LVM_SNAP_PREFIX "ors-" /* snapshot LVs: never taken for a volume, never listed as one */
#define LVM_HASH_HEX 16        /* hex digits of the key's SHA-256 in an LV name */
#define LVM_NAME_KEY_BUDGET 32 /* bytes of the sanitised key in an LV name, '-' counting 2 */
#define LVM_TAG_MAX 1024       /* LVM's limit for one tag */
#define LVM_TAG_PREFIX "ordinal.csi.dev/"
#define LVM_MKFS_OPTS_MAX 256 /* longest mkfsOptions parameter */
#define LVM_MAX_TAGS 10       /* tags this backend writes on one LV */
#define LVM_REPORT_ROWS_MAX 100000
#define LVM_JSON_DEPTH_MAX 16
#define LVM_DEFAULT_CAPACITY (1LL << 30)
#define LVM_MAX_VGS 8

/* ---- names and ids (lvm_name.c) ---- */

/* LVM's rules for a VG name, restricted to LVM_VG_NAME_MAX: [A-Za-z0-9+_.-], not starting
 * with '-', not "." or "..", no "snapshot"/"pvmove" style reserved words. */
bool lvm__valid_vg_name(const char *s);
/* An LV name this backend could have made: "ord-", [A-Za-z0-9+.-], "-" and 16 hex digits at
 * the end, at most LVM_LV_NAME_MAX bytes. */
bool lvm__is_our_lv_name(const char *s);
/* An LV name of a snapshot this backend could have made: as lvm__is_our_lv_name() with
 * "ors-" in front. */
bool lvm__is_our_snap_lv_name(const char *s);
/* Whether s could name a thin pool: LVM's LV name characters, 1..LVM_LV_NAME_MAX bytes, not
 * starting with '-', not "." or "..". */
bool lvm__valid_pool_name(const char *s);
/* The LV name of the snapshot called name: as lvm__lv_name() with "ors-" in front. */
void lvm__snap_lv_name(const char *name, char *ret);
/* "lvm:<vg>/<ors-...>": 0 or -ENAMETOOLONG. Snapshots never change owner: no generation. */
int lvm__snap_id(const char *vg, const char *lv, char *ret);
/* Split a snapshot id: 0, or -ENOENT when it is not one this backend could have issued. */
int lvm__parse_snap_id(const char *id, char *ret_vg, char *ret_lv);

/* The LV name of key: "ord-" + sanitised key (at most LVM_NAME_KEY_BUDGET) + "-" + the first
 * 16 hex digits of SHA-256(key). Distinct keys give distinct names (up to a 64-bit hash
 * collision, which create detects through the key tag). ret holds LVM_LV_NAME_MAX + 1. */
void lvm__lv_name(const char *key, char *ret);
/* "lvm:<vg>/<lv>" for generation 0, "lvm:<vg>/<lv>/<gen>" after, into ret (BE_ID_MAX + 1):
 * 0 or -ENAMETOOLONG. */
int lvm__vol_id(const char *vg, const char *lv, int64_t gen, char *ret);
/* Split an id into vg, lv (each LVM_LV_NAME_MAX + 1 bytes) and generation (0 when the id
 * carries none): 0 or -ENOENT when it is not an id this backend could have issued. */
int lvm__parse_id(const char *id, char *ret_vg, char *ret_lv, int64_t *ret_gen);

/* ---- tags (lvm_name.c) ---- */

/* What the tags of one LV say. */
struct lvm__meta {
    char key[BE_KEY_MAX + 1];
    char name[BE_ID_MAX + 1];
    int64_t requested; /* bytes asked for by the CreateVolume that made it (before rounding) */
    enum be_access access;
    char fs[8];                       /* "ext4", "xfs"; "" for block */
    char mkfs[LVM_MKFS_OPTS_MAX + 1]; /* extra mkfs options, "" for none */
    int64_t created;                  /* seconds since the epoch */
    int64_t gen; /* generation: +1 each time another name takes the LV over (tag absent: 0) */
    char pool[LVM_LV_NAME_MAX + 1];  /* thin pool of a thin volume, "" for a thick one */
    enum be_source_kind source_kind; /* what the volume was made from (restore, clone) */
    char source_id[BE_ID_MAX + 1];   /* the snapshot or volume id, "" for none */
};

/* What the tags of one snapshot LV say. */
struct lvm__snap_meta {
    char name[BE_ID_MAX + 1];   /* the CSI snapshot name */
    char source[BE_ID_MAX + 1]; /* the volume id it was taken of */
    int64_t size;               /* bytes of the source volume when it was taken */
    enum be_access access;      /* of the source */
    char fs[8];                 /* of the source ("" for block) */
    int64_t created;            /* seconds since the epoch */
};

/* Encode bytes for a tag: [A-Za-z0-9_+.:/-] kept, every other byte as "#xx". 0 or
 * -ENAMETOOLONG when ret (cap bytes) is too small. */
int lvm__tag_encode(const char *s, char *ret, size_t cap);
/* Decode what lvm__tag_encode() made: 0 or -EINVAL (bad escape, NUL, a byte that should have
 * been escaped), -ENAMETOOLONG. */
int lvm__tag_decode(const char *s, size_t n, char *ret, size_t cap);
/* The tags of m (each "ordinal.csi.dev/<k>=<v>") into ret[LVM_MAX_TAGS][LVM_TAG_MAX + 1]:
 * the number of tags, or -ENAMETOOLONG / -EINVAL. */
int lvm__tags_build(const struct lvm__meta *m, char ret[][LVM_TAG_MAX + 1]);
/* Read our tags out of lvs' comma-separated lv_tags: 0 and *ret, -ENODATA when the LV has
 * none of our tags, -EINVAL (message set) when ours are incomplete, duplicated or invalid.
 * Tags of other owners are ignored. */
int lvm__tags_parse(const char *lv_tags, struct lvm__meta *ret);
/* The tags of a snapshot (each "ordinal.csi.dev/<k>=<v>": snap, source, size, access, fs for
 * mount, created) into ret: the number of tags, or -ENAMETOOLONG / -EINVAL. */
int lvm__snap_tags_build(const struct lvm__snap_meta *m, char ret[][LVM_TAG_MAX + 1]);
/* Read a snapshot's tags: 0 and *ret, -ENODATA when none are ours, -EINVAL (message set). */
int lvm__snap_tags_parse(const char *lv_tags, struct lvm__snap_meta *ret);

/* Whether key is one this backend accepts: a claim key "<ns>/<claim>" or a plain name
 * (1..BE_ID_MAX bytes, no '/', no control characters). */
bool lvm__valid_key(const char *key, bool key_is_claim);

/* Strict decimal: [0-9]+ fitting int64_t. */
bool lvm__parse_u63(const char *s, int64_t *ret);

/* ---- lvm's JSON reports (lvm_json.c) ---- */

/* The rows of one section ("lv", "vg", "pv") of a `--reportformat json` report: cells[row *
 * n_fields + f] is the string value of fields[f] in that row. Owned. */
struct lvm__report {
    char **cells;
    size_t n_rows, n_fields;
};

/*
 * Parse text (len bytes, need not be NUL-terminated) as an lvm JSON report and collect the
 * rows of `section` from every element of "report". Every row must be an object holding
 * every one of fields as a string; other members are ignored. Returns 0, or -EINVAL with a
 * message for anything else: bad JSON, wrong types, missing fields, a section missing from
 * every report element, nesting deeper than LVM_JSON_DEPTH_MAX, more than
 * LVM_REPORT_ROWS_MAX rows, NUL in a string, trailing garbage.
 */
int lvm__report_parse(const char *text, size_t len, const char *section, const char *const *fields,
                      size_t n_fields, struct lvm__report *ret);
void lvm__report_release(struct lvm__report *r);
static inline const char *lvm__cell(const struct lvm__report *r, size_t row, size_t field)
{
    return r->cells[row * r->n_fields + field];
}

/* ---- the backend ---- */

struct lvm_backend {
    struct backend base;                        /* first */
    char vgs[LVM_MAX_VGS][LVM_VG_NAME_MAX + 1]; /* allowed groups, sorted */
    size_t n_vgs;
    char node_id[64];
    char tool_lvm[256]; /* absolute path of the lvm binary */
    int timeout_ms;
    size_t removed; /* written by recover() only, before any other slot runs */
};

/* Test hook: when set, called at named points of create ("after-lvcreate") and a negative
 * return fails the operation there, so that unit tests can prove the rollback. NULL in the
 * daemon. */
extern int (*lvm__fault_hook)(const char *point);

static inline struct lvm_backend *lvm__of(struct backend *b)
{
    return (struct lvm_backend *)b;
}

/* One LV as lvs reports it, checked: a volume ("ord-") or a snapshot ("ors-"). */
struct lvm__lv {
    char vg[LVM_VG_NAME_MAX + 1];
    char name[LVM_LV_NAME_MAX + 1];
    int64_t size;
    int64_t extent;
    char attr[16];
    char health[64];
    char pool[LVM_LV_NAME_MAX + 1]; /* pool_lv: the thin pool of a thin LV, "" otherwise */
    bool is_snap;                   /* a snapshot LV: snap is filled, not meta */
    struct lvm__meta meta;
    struct lvm__snap_meta snap;
    int tags_rc; /* 0, -ENODATA (no tags of ours), -EINVAL (ours but broken) */
    char tags_why[BE_MSG_MAX];
};

/* Whether lvs reports the LV as a thin volume (lv_attr 'V' with a pool). */
static inline bool lvm__is_thin(const struct lvm__lv *lv)
{
    return lv->attr[0] == 'V' && lv->pool[0];
}

/* Find the LV of vg/lv: 0, -ENOENT, or another error (message set). */
int lvm__find_lv(struct lvm_backend *l, const char *vg, const char *lv, struct lvm__lv *ret);
/* The node-side device of an LV: /dev/<vg>/<lv> when it is a block device (0), -ENODEV with
 * a message otherwise. */
int lvm__device(const char *vg, const char *lv, char *ret, size_t cap);
/* lvchange --activate y vg/lv: 0 or an error with lvm's reason. */
int lvm__activate(struct lvm_backend *l, const char *vg, const char *lv);
/* Look a volume up by id and fill *ret and (optionally) *ret_lv: 0 or -ENOENT. */
int lvm__lookup(struct lvm_backend *l, const char *id, struct be_volume *ret,
                struct lvm__lv *ret_lv);

/* ---- node side (lvm_node.c) ---- */
int lvm__stage(struct backend *b, const struct be_mount_req *req);
int lvm__unstage(struct backend *b, const char *volume_id, const char *staging_path);
int lvm__publish(struct backend *b, const struct be_mount_req *req);
int lvm__unpublish(struct backend *b, const char *volume_id, const char *target_path);
int lvm__stats(struct backend *b, const char *volume_id, const char *path, struct be_stats *ret);
int lvm__node_expand(struct backend *b, const char *volume_id, const char *path,
                     int64_t *ret_capacity);

#endif
