/*
 * The LVM backend: each volume is a logical volume of exact (extent-rounded) size in one of
 * the volume groups the daemon was started with (--lvm-vg).
 *
 * State: none of our own. LVM's metadata is the only record: the LV name is derived from the
 * volume's key (lvm_name.c), and tags on the LV carry the key, the CSI name, the requested
 * size, the access type, the filesystem and mkfs options, and the creation time. Every slot
 * asks lvm (`lvs`/`vgs --reportformat json`) for the current truth, so a restart, or an LV
 * changed by hand, needs no reconciliation of a private index.
 *
 * Ids: "lvm:<vg>/<lv>" (at most 4 + 32 + 1 + 64 bytes < 128), with "/<gen>" once the LV has
 * changed owner (at most 20 bytes more). The LV name depends only on the key, so CreateVolume
 * finds an existing volume for the key in any allowed group.
 *
 * Ownership: the name tag is the CSI name of the CreateVolume that made or last took the LV
 * (the PV name for Kubernetes); a CreateVolume with another name swaps the name tag and bumps
 * the gen tag in one lvchange (one metadata commit) before it answers, and every slot that
 * takes an id answers an id of an older generation as an unknown volume: a DeleteVolume for a
 * PV that no longer owns the LV removes nothing.
 *
 * Crash safety: lvcreate writes the LV and all its tags in one metadata commit, so after a
 * kill -9 LVM holds the LV whole (tags included) or not at all. Anything that fails after
 * lvcreate returned (the check that the LV is there as asked) removes the LV before the error
 * is returned. recover() removes LVs that carry our name pattern but none of our tags (only
 * possible when something outside lvcreate made them); an LV whose tags are ours but broken is
 * kept and reported abnormal, never deleted behind anyone's back.
 *
 * Thin volumes (a class with thinPool) can be snapshotted and copied: a snapshot is a
 * read-only thin snapshot LV ("ors-" names, activation skip flag) whose tags carry the CSI
 * name, the source id, size, access, fs and creation time; a restore or clone is a writable
 * thin snapshot of the snapshot or volume in the same pool, lvextended when asked larger (its
 * size tag records the target, so a crash before lvextend is finished by the retry or by
 * recover()). Thin snapshots are independent LVs: either side can be removed first. Thick LVs
 * refuse snapshots and clones with -ENOTSUP (INVALID_ARGUMENT) before anything is made.
 *
 * Tools: `lvm <command>` with an argument vector (exec.h), LC_ALL=C, the daemon's
 * LVM_SYSTEM_DIR, a timeout; JSON reports with --units b --nosuffix, every field checked.
 *
 * Threading: struct lvm_backend is immutable after recover(); no lock is taken. lvm serialises
 * its own metadata updates per VG. The caller serialises operations per volume key.
 */
#include "lvm.h"

#include "exec.h"
#include "lvm_internal.h"
#include "page.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define LVM_TIMEOUT_MS 120000
#define LVM_ARGV_MAX 48

int (*lvm__fault_hook)(const char *point);

static int fault(const char *point)
{
    return lvm__fault_hook ? lvm__fault_hook(point) : 0;
}

/* ---- running lvm ---- */

/*
 * Run `lvm <args...>` (NULL-terminated). 0 with *ret when it ran and exited 0; otherwise an
 * error with a message naming the command and lvm's reason, and *ret released. -ENOSPC when
 * lvm says the group lacks space.
 */
static int run_lvm(struct lvm_backend *l, const char *const *args, struct exec_result *ret)
{
    const char *argv[LVM_ARGV_MAX + 2];
    struct exec_opts o = {.timeout_ms = l->timeout_ms, .inherit_lvm = true};
    struct exec_result res;
    char why[200];
    size_t n = 0;
    int r;

    argv[n++] = l->tool_lvm;
    for (size_t i = 0; args[i]; i++) {
        if (n >= LVM_ARGV_MAX)
            return be_error(-E2BIG, "lvm %s: too many arguments", args[0]);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    r = exec_run(argv, &o, &res);
    if (r == -ETIMEDOUT) {
        exec_result_release(&res);
        return be_error(-ETIMEDOUT, "lvm %s did not finish within %d s", args[0],
                        l->timeout_ms / 1000);
    }
    if (r < 0)
        return be_error(r, "cannot run %s %s: %s", l->tool_lvm, args[0], strerror(-r));
    if (res.exit_code != 0) {
        exec_reason(res.err, why, sizeof(why));
        r = strstr(res.err, "insufficient free space") || strstr(res.err, "Insufficient free")
                ? -ENOSPC
                : -EIO;
        if (res.exit_code < 0)
            be_error(r, "lvm %s was killed by signal %d", args[0], res.term_signal);
        else
            be_error(r, "lvm %s failed (exit %d): %s", args[0], res.exit_code,
                     why[0] ? why : "no message");
        exec_result_release(&res);
        return r;
    }
    *ret = res;
    return 0;
}

static const char *const lv_fields[] = {"lv_name", "vg_name",          "lv_size",        "lv_tags",
                                        "lv_attr", "lv_health_status", "vg_extent_size", "pool_lv"};
#define LV_FIELDS "lv_name,vg_name,lv_size,lv_tags,lv_attr,lv_health_status,vg_extent_size,pool_lv"

static bool allowed_vg(const struct lvm_backend *l, const char *vg)
{
    for (size_t i = 0; i < l->n_vgs; i++)
        if (strcmp(l->vgs[i], vg) == 0)
            return true;
    return false;
}

/* One row of lvs into *ret: 0, 1 when the LV is not one of ours (skip it), -EIO when a field
 * is invalid. */
static int lv_from_row(struct lvm_backend *l, const struct lvm__report *rep, size_t row,
                       struct lvm__lv *ret)
{
    const char *name = lvm__cell(rep, row, 0), *vg = lvm__cell(rep, row, 1);
    const char *size = lvm__cell(rep, row, 2), *tags = lvm__cell(rep, row, 3);
    const char *attr = lvm__cell(rep, row, 4), *health = lvm__cell(rep, row, 5);
    const char *extent = lvm__cell(rep, row, 6), *pool = lvm__cell(rep, row, 7);

    memset(ret, 0, sizeof(*ret));
    if (!lvm__valid_vg_name(vg) || !allowed_vg(l, vg))
        return be_error(-EIO, "lvs reported volume group \"%.40s\", which was not asked for", vg);
    if (!name[0] || strlen(name) > 127)
        return be_error(-EIO, "lvs reported an invalid LV name in %s", vg);
    ret->is_snap = lvm__is_our_snap_lv_name(name);
    if (!ret->is_snap && !lvm__is_our_lv_name(name))
        return 1;
    if (!lvm__parse_u63(size, &ret->size) || !lvm__parse_u63(extent, &ret->extent) ||
        ret->extent == 0)
        return be_error(-EIO, "lvs reported an invalid size or extent size for %s/%s", vg, name);
    if (strlen(attr) >= sizeof(ret->attr) || strlen(health) >= sizeof(ret->health) ||
        (pool[0] && !lvm__valid_pool_name(pool)))
        return be_error(-EIO, "lvs reported invalid attributes for %s/%s", vg, name);
    snprintf(ret->pool, sizeof(ret->pool), "%s", pool);
    snprintf(ret->vg, sizeof(ret->vg), "%s", vg);
    snprintf(ret->name, sizeof(ret->name), "%s", name);
    snprintf(ret->attr, sizeof(ret->attr), "%s", attr);
    snprintf(ret->health, sizeof(ret->health), "%s", health);
    if (ret->is_snap) {
        ret->tags_rc = lvm__snap_tags_parse(tags, &ret->snap);
        if (ret->tags_rc == 0) {
            char expect[LVM_LV_NAME_MAX + 1];

            lvm__snap_lv_name(ret->snap.name, expect);
            if (strcmp(expect, name) != 0) {
                ret->tags_rc = -EINVAL;
                snprintf(ret->tags_why, sizeof(ret->tags_why),
                         "the snap tag does not match the LV name");
            }
        } else if (ret->tags_rc == -EINVAL) {
            snprintf(ret->tags_why, sizeof(ret->tags_why), "%s", be_last_error());
        } else if (ret->tags_rc != -ENODATA) {
            return ret->tags_rc;
        }
        return 0;
    }
    ret->tags_rc = lvm__tags_parse(tags, &ret->meta);
    if (ret->tags_rc == -EINVAL)
        snprintf(ret->tags_why, sizeof(ret->tags_why), "%s", be_last_error());
    else if (ret->tags_rc == 0) {
        char expect[LVM_LV_NAME_MAX + 1];

        lvm__lv_name(ret->meta.key, expect);
        if (strcmp(expect, name) != 0) {
            ret->tags_rc = -EINVAL;
            snprintf(ret->tags_why, sizeof(ret->tags_why),
                     "the key tag does not match the LV name");
        }
    } else if (ret->tags_rc != -ENODATA) {
        return ret->tags_rc;
    }
    return 0;
}

/* Our LVs in vg (NULL: every allowed group), into a malloc'd array owned by the caller. */
static int list_lvs(struct lvm_backend *l, const char *vg, struct lvm__lv **ret, size_t *ret_n)
{
    const char *args[LVM_ARGV_MAX];
    struct exec_result res;
    struct lvm__report rep;
    struct lvm__lv *lvs = NULL;
    size_t n = 0, a = 0;
    int r;

    args[a++] = "lvs";
    args[a++] = "--reportformat";
    args[a++] = "json";
    args[a++] = "--units";
    args[a++] = "b";
    args[a++] = "--nosuffix";
    args[a++] = "-o";
    args[a++] = LV_FIELDS;
    if (vg)
        args[a++] = vg;
    else
        for (size_t i = 0; i < l->n_vgs; i++)
            args[a++] = l->vgs[i];
    args[a] = NULL;
    r = run_lvm(l, args, &res);
    if (r < 0)
        return r;
    if (res.out_truncated) {
        exec_result_release(&res);
        return be_error(-EIO, "lvs output is larger than %u bytes", EXEC_OUT_MAX_DEFAULT);
    }
    r = lvm__report_parse(res.out, res.out_len, "lv", lv_fields, ARRAY_SIZE(lv_fields), &rep);
    exec_result_release(&res);
    if (r < 0)
        return r == -ENOMEM ? r : be_error(-EIO, "lvs: %s", be_last_error());
    if (rep.n_rows > 0) {
        lvs = calloc(rep.n_rows, sizeof(*lvs));
        if (!lvs) {
            lvm__report_release(&rep);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < rep.n_rows; i++) {
        r = lv_from_row(l, &rep, i, &lvs[n]);
        if (r < 0) {
            lvm__report_release(&rep);
            free(lvs);
            return r;
        }
        if (r == 0)
            n++;
    }
    lvm__report_release(&rep);
    *ret = lvs;
    *ret_n = n;
    return 0;
}

int lvm__find_lv(struct lvm_backend *l, const char *vg, const char *lv, struct lvm__lv *ret)
{
    _cleanup_free_ struct lvm__lv *lvs = NULL;
    size_t n = 0;
    int r = list_lvs(l, vg, &lvs, &n);

    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        if (strcmp(lvs[i].name, lv) == 0 && (!vg || strcmp(lvs[i].vg, vg) == 0)) {
            *ret = lvs[i];
            return 0;
        }
    return -ENOENT;
}

struct vg_info {
    int64_t extent, free, size;
};

static const char *const vg_fields[] = {"vg_name", "vg_extent_size", "vg_free", "vg_size"};

/* Sizes of the allowed groups, in l->vgs order (missing ones: -ENOENT with a message). */
static int vg_infos(struct lvm_backend *l, struct vg_info *ret)
{
    const char *args[LVM_ARGV_MAX];
    struct exec_result res;
    struct lvm__report rep;
    bool seen[LVM_MAX_VGS] = {false};
    size_t a = 0;
    int r = 0;

    args[a++] = "vgs";
    args[a++] = "--reportformat";
    args[a++] = "json";
    args[a++] = "--units";
    args[a++] = "b";
    args[a++] = "--nosuffix";
    args[a++] = "-o";
    args[a++] = "vg_name,vg_extent_size,vg_free,vg_size";
    for (size_t i = 0; i < l->n_vgs; i++)
        args[a++] = l->vgs[i];
    args[a] = NULL;
    r = run_lvm(l, args, &res);
    if (r < 0)
        return r;
    r = lvm__report_parse(res.out, res.out_len, "vg", vg_fields, ARRAY_SIZE(vg_fields), &rep);
    exec_result_release(&res);
    if (r < 0)
        return r == -ENOMEM ? r : be_error(-EIO, "vgs: %s", be_last_error());
    for (size_t row = 0; row < rep.n_rows && r == 0; row++) {
        const char *name = lvm__cell(&rep, row, 0);
        struct vg_info vi;
        size_t i;

        for (i = 0; i < l->n_vgs; i++)
            if (strcmp(l->vgs[i], name) == 0)
                break;
        if (i == l->n_vgs || seen[i]) {
            r = be_error(-EIO, "vgs reported volume group \"%.40s\" unexpectedly", name);
            break;
        }
        if (!lvm__parse_u63(lvm__cell(&rep, row, 1), &vi.extent) ||
            !lvm__parse_u63(lvm__cell(&rep, row, 2), &vi.free) ||
            !lvm__parse_u63(lvm__cell(&rep, row, 3), &vi.size) || vi.extent == 0 ||
            vi.free > vi.size) {
            r = be_error(-EIO, "vgs reported invalid sizes for %s", name);
            break;
        }
        seen[i] = true;
        ret[i] = vi;
    }
    lvm__report_release(&rep);
    for (size_t i = 0; r == 0 && i < l->n_vgs; i++)
        if (!seen[i])
            r = be_error(-ENOENT, "volume group %s not found", l->vgs[i]);
    return r;
}

static int vg_info(struct lvm_backend *l, const char *vg, struct vg_info *ret)
{
    struct vg_info all[LVM_MAX_VGS];
    int r = vg_infos(l, all);

    if (r < 0)
        return r;
    for (size_t i = 0; i < l->n_vgs; i++)
        if (strcmp(l->vgs[i], vg) == 0) {
            *ret = all[i];
            return 0;
        }
    return be_error(-ENOENT, "volume group %s is not served", vg);
}

static int lv_remove(struct lvm_backend *l, const char *vg, const char *lv)
{
    char target[LVM_VG_NAME_MAX + LVM_LV_NAME_MAX + 2];
    const char *args[] = {"lvremove", "--yes", target, NULL};
    struct exec_result res;
    int r;

    snprintf(target, sizeof(target), "%s/%s", vg, lv);
    r = run_lvm(l, args, &res);
    if (r < 0) {
        const char *msg = be_last_error();
        if (strstr(msg, "in use") || strstr(msg, "open"))
            return be_error(-EBUSY, "LV %s is in use: %s", target, msg);
        return r;
    }
    exec_result_release(&res);
    return 0;
}

int lvm__device(const char *vg, const char *lv, char *ret, size_t cap)
{
    struct stat st;
    int n = snprintf(ret, cap, "/dev/%s/%s", vg, lv);

    if (n < 0 || (size_t)n >= cap)
        return be_error(-ENAMETOOLONG, "device path too long");
    if (stat(ret, &st) == 0 && S_ISBLK(st.st_mode))
        return 0;
    return be_error(-ENODEV,
                    "device %s is missing: the LV is not active (is device-mapper available "
                    "and LVM activation enabled on this node?)",
                    ret);
}

int lvm__activate(struct lvm_backend *l, const char *vg, const char *lv)
{
    char target[LVM_VG_NAME_MAX + LVM_LV_NAME_MAX + 2];
    /* -K: a thin LV made by hand may carry the activation skip flag; ours never do */
    const char *args[] = {"lvchange", "--activate", "y", "--ignoreactivationskip", target, NULL};
    struct exec_result res;
    int r;

    snprintf(target, sizeof(target), "%s/%s", vg, lv);
    r = run_lvm(l, args, &res);
    if (r < 0)
        return r;
    exec_result_release(&res);
    return 0;
}

/* ---- volumes ---- */

static void lv_to_be(const struct lvm__lv *lv, struct be_volume *ret)
{
    memset(ret, 0, sizeof(*ret));
    /* damaged tags: generation unknown, reachable by the generation-0 id only */
    lvm__vol_id(lv->vg, lv->name, lv->tags_rc == 0 ? lv->meta.gen : 0, ret->id);
    ret->capacity_bytes = lv->size;
    ret->source_kind = BE_SOURCE_NONE;
    if (lv->tags_rc == 0) {
        snprintf(ret->key, sizeof(ret->key), "%s", lv->meta.key);
        snprintf(ret->name, sizeof(ret->name), "%s", lv->meta.name);
        ret->access = lv->meta.access;
        snprintf(ret->fs_type, sizeof(ret->fs_type), "%s", lv->meta.fs);
        ret->created_sec = lv->meta.created;
        ret->source_kind = lv->meta.source_kind;
        snprintf(ret->source_id, sizeof(ret->source_id), "%s", lv->meta.source_id);
    } else {
        /* no trustworthy key: the id stands in for it (locks, messages) */
        snprintf(ret->key, sizeof(ret->key), "%s", ret->id);
    }
    /* lv_attr: [8] health ('p' partial: a PV is missing; 'r' refresh; 'm' mismatches; 'w'
     * writemostly), [4] state ('a' active, '-' inactive, 'X' unknown: activation is off) */
    if (lv->tags_rc != 0) {
        ret->abnormal = true;
        snprintf(ret->condition, sizeof(ret->condition), "LV metadata tags damaged: %.200s",
                 lv->tags_rc == -ENODATA ? "none of ours" : lv->tags_why);
    } else if (lv->health[0]) {
        ret->abnormal = true;
        snprintf(ret->condition, sizeof(ret->condition), "LV health: %s", lv->health);
    } else if (strlen(lv->attr) > 8 && lv->attr[8] != '-') {
        ret->abnormal = true;
        snprintf(ret->condition, sizeof(ret->condition), "LV attributes %s report a problem",
                 lv->attr);
    } else if (lv->size < lv->meta.requested) {
        ret->abnormal = true;
        snprintf(ret->condition, sizeof(ret->condition),
                 "LV has %lld bytes, less than the %lld it was made with", (long long)lv->size,
                 (long long)lv->meta.requested);
    } else {
        snprintf(ret->condition, sizeof(ret->condition), "healthy");
    }
}

int lvm__lookup(struct lvm_backend *l, const char *id, struct be_volume *ret,
                struct lvm__lv *ret_lv)
{
    char vg[LVM_LV_NAME_MAX + 1], lv[LVM_LV_NAME_MAX + 1];
    struct be_volume v;
    struct lvm__lv x;
    int64_t gen;
    int r;

    if (lvm__parse_id(id, vg, lv, &gen) < 0 || !allowed_vg(l, vg))
        return be_error(-ENOENT, "volume %.128s not found", id ? id : "");
    r = lvm__find_lv(l, vg, lv, &x);
    if (r == -ENOENT)
        return be_error(-ENOENT, "volume %s not found: no LV %s/%s", id, vg, lv);
    if (r < 0)
        return r;
    lv_to_be(&x, &v);
    if (strcmp(v.id, id) != 0)
        return be_error(-ENOENT, "volume %s not found: LV %s/%s has changed owner since (now %s)",
                        id, vg, lv, v.id);
    *ret = v;
    if (ret_lv)
        *ret_lv = x;
    return 0;
}

static int lvm_lookup(struct backend *b, const char *id, struct be_volume *ret)
{
    return lvm__lookup(lvm__of(b), id, ret, NULL);
}

/* be_ops.usage from LVM's own data: a thick LV has all its extents allocated (its size); a
 * thin LV uses data_percent of its size in its pool. */
static const char *const usage_fields[] = {"lv_name", "data_percent"};

static int lvm_usage(struct backend *b, const char *id, int64_t *ret_used)
{
    struct lvm_backend *l = lvm__of(b);
    char path[2 * LVM_LV_NAME_MAX + 2];
    struct exec_result res;
    struct lvm__report rep;
    struct be_volume v;
    struct lvm__lv lv;
    int r;

    r = lvm__lookup(l, id, &v, &lv);
    if (r < 0)
        return r;
    if (!lvm__is_thin(&lv)) {
        *ret_used = lv.size;
        return 0;
    }
    snprintf(path, sizeof(path), "%s/%s", lv.vg, lv.name);
    const char *args[] = {"lvs", "--reportformat", "json", "-o", "lv_name,data_percent", path,
                          NULL};
    r = run_lvm(l, args, &res);
    if (r < 0)
        return r;
    r = lvm__report_parse(res.out, res.out_len, "lv", usage_fields, ARRAY_SIZE(usage_fields), &rep);
    exec_result_release(&res);
    if (r < 0)
        return r == -ENOMEM ? r : be_error(-EIO, "lvs: %s", be_last_error());
    r = be_error(-ENOTSUP, "lvs reports no data_percent for %s (not active)", path);
    for (size_t i = 0; i < rep.n_rows; i++) {
        const char *pct = lvm__cell(&rep, i, 1);
        double used = 0;

        if (strcmp(lvm__cell(&rep, i, 0), lv.name) != 0 || !pct[0])
            continue;
        if (sscanf(pct, "%lf", &used) != 1 || used < 0 || used > 100) {
            r = be_error(-EIO, "lvs reported an invalid data_percent for %s", path);
            break;
        }
        *ret_used = (int64_t)((double)lv.size * used / 100.0);
        r = 0;
        break;
    }
    lvm__report_release(&rep);
    return r;
}

/* ---- create ---- */

struct create_params {
    const char *vg;
    const char *pool; /* thinPool, NULL for thick volumes */
    char fs[8];
    bool fs_given; /* fsType or the capability's fs_type named it (else the default) */
    char mkfs[LVM_MKFS_OPTS_MAX + 1];
};

struct pool_info {
    int64_t size, used; /* bytes of data space, and bytes of it in use */
};

static const char *const pool_fields[] = {"lv_name", "lv_attr", "lv_size", "data_percent"};

/* The thin pool vg/pool, checked: 0 and *ret, or -EINVAL saying what is wrong with it. */
static int find_pool(struct lvm_backend *l, const char *vg, const char *pool, struct pool_info *ret)
{
    const char *args[] = {"lvs",  "--reportformat",
                          "json", "--units",
                          "b",    "--nosuffix",
                          "-o",   "lv_name,lv_attr,lv_size,data_percent",
                          vg,     NULL};
    struct exec_result res;
    struct lvm__report rep;
    int r;

    r = run_lvm(l, args, &res);
    if (r < 0)
        return r;
    r = lvm__report_parse(res.out, res.out_len, "lv", pool_fields, ARRAY_SIZE(pool_fields), &rep);
    exec_result_release(&res);
    if (r < 0)
        return r == -ENOMEM ? r : be_error(-EIO, "lvs: %s", be_last_error());
    r = be_error(-EINVAL,
                 "parameters.thinPool: volume group %s has no logical volume \"%s\" (create the "
                 "pool first: lvcreate --type thin-pool)",
                 vg, pool);
    for (size_t i = 0; i < rep.n_rows; i++) {
        const char *attr = lvm__cell(&rep, i, 1), *pct = lvm__cell(&rep, i, 3);
        double used = 0;

        if (strcmp(lvm__cell(&rep, i, 0), pool) != 0)
            continue;
        if (attr[0] != 't') {
            r = be_error(-EINVAL, "parameters.thinPool: %s/%s is not a thin pool (lv_attr %.16s)",
                         vg, pool, attr);
            break;
        }
        /* a pool that does not zero new blocks would show a new volume another one's old
         * data, and a stale filesystem signature there would even stop mkfs */
        if (strlen(attr) < 8 || attr[7] != 'z') {
            r = be_error(-EINVAL,
                         "parameters.thinPool: thin pool %s/%s does not zero newly allocated "
                         "blocks; enable it with lvchange --zero y %s/%s",
                         vg, pool, vg, pool);
            break;
        }
        if (!lvm__parse_u63(lvm__cell(&rep, i, 2), &ret->size) ||
            (pct[0] && (sscanf(pct, "%lf", &used) != 1 || used < 0 || used > 100))) {
            r = be_error(-EIO, "lvs reported invalid sizes for the thin pool %s/%s", vg, pool);
            break;
        }
        ret->used = (int64_t)((double)ret->size * used / 100.0);
        r = 0;
        break;
    }
    lvm__report_release(&rep);
    return r;
}

static bool mkfs_opts_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return false;
    return true;
}

/* The backend parameters shared by CreateVolume and GetCapacity. */
static int parse_params(struct lvm_backend *l, const struct be_param *params, size_t n,
                        const char **ret_vg, const char **ret_fs, const char **ret_mkfs,
                        const char **ret_pool)
{
    *ret_vg = *ret_fs = *ret_mkfs = *ret_pool = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *k = params[i].key ? params[i].key : "", *v = params[i].value;

        if (!v)
            v = "";
        if (strcmp(k, "volumeGroup") == 0) {
            if (!allowed_vg(l, v))
                return be_error(-EINVAL,
                                "parameters.volumeGroup: \"%.40s\" is not a volume group this "
                                "driver serves (see --lvm-vg)",
                                v);
            *ret_vg = v;
        } else if (strcmp(k, "fsType") == 0) {
            if (strcmp(v, "ext4") != 0 && strcmp(v, "xfs") != 0)
                return be_error(-EINVAL, "parameters.fsType: \"%.20s\" is not ext4 or xfs", v);
            *ret_fs = v;
        } else if (strcmp(k, "mkfsOptions") == 0) {
            if (strlen(v) > LVM_MKFS_OPTS_MAX || !mkfs_opts_ok(v))
                return be_error(-EINVAL,
                                "parameters.mkfsOptions: at most %d printable ASCII characters",
                                LVM_MKFS_OPTS_MAX);
            *ret_mkfs = v;
        } else if (strcmp(k, "thinPool") == 0) {
            if (!lvm__valid_pool_name(v))
                return be_error(-EINVAL,
                                "parameters.thinPool: \"%.64s\" is not a valid LV name (1-%d "
                                "characters of [A-Za-z0-9+_.-], not starting with '-')",
                                v, LVM_LV_NAME_MAX);
            *ret_pool = v;
        } else {
            return be_error(-EINVAL,
                            "unknown parameter \"%.64s\": the LVM backend takes volumeGroup, "
                            "thinPool, fsType and mkfsOptions",
                            k);
        }
    }
    return 0;
}

static int create_params(struct lvm_backend *l, const struct be_create_req *req,
                         struct create_params *ret)
{
    const char *vg, *fs, *mkfs, *pool, *cap_fs = req->fs_type ? req->fs_type : "";
    int r = parse_params(l, req->params, req->n_params, &vg, &fs, &mkfs, &pool);

    if (r < 0)
        return r;
    if (!vg) {
        if (l->n_vgs != 1)
            return be_error(-EINVAL,
                            "parameters.volumeGroup is required: this driver serves %zu volume "
                            "groups",
                            l->n_vgs);
        vg = l->vgs[0];
    }
    memset(ret, 0, sizeof(*ret));
    ret->vg = vg;
    ret->pool = pool;
    if (req->access == BE_ACCESS_MOUNT) {
        if (cap_fs[0] && strcmp(cap_fs, "ext4") != 0 && strcmp(cap_fs, "xfs") != 0)
            return be_error(-EINVAL, "fs_type \"%.20s\" is not supported: ext4 or xfs", cap_fs);
        if (cap_fs[0] && fs && strcmp(cap_fs, fs) != 0)
            return be_error(-EINVAL,
                            "fs_type %s of the capability contradicts parameters.fsType %s", cap_fs,
                            fs);
        snprintf(ret->fs, sizeof(ret->fs), "%s", fs ? fs : cap_fs[0] ? cap_fs : "ext4");
        ret->fs_given = fs || cap_fs[0];
        snprintf(ret->mkfs, sizeof(ret->mkfs), "%s", mkfs ? mkfs : "");
    }
    return 0;
}

/* The size to create: extent-rounded, within the range. */
static int pick_size(const struct be_create_req *req, int64_t extent, int64_t *ret)
{
    int64_t want, size;

    if (req->required_bytes > 0)
        want = req->required_bytes;
    else if (req->limit_bytes > 0 && req->limit_bytes < LVM_DEFAULT_CAPACITY)
        want = req->limit_bytes;
    else
        want = LVM_DEFAULT_CAPACITY;
    if (want > INT64_MAX - extent)
        return be_error(-ERANGE, "%lld bytes is too large", (long long)want);
    size = (want + extent - 1) / extent * extent;
    if (req->limit_bytes > 0 && size > req->limit_bytes) {
        if (req->required_bytes > 0)
            return be_error(-ERANGE,
                            "%lld bytes rounded up to the extent size %lld is %lld, above the "
                            "limit %lld",
                            (long long)req->required_bytes, (long long)extent, (long long)size,
                            (long long)req->limit_bytes);
        size = req->limit_bytes / extent * extent;
        if (size == 0)
            return be_error(-ERANGE, "limit %lld is below the extent size %lld",
                            (long long)req->limit_bytes, (long long)extent);
    }
    *ret = size;
    return 0;
}

/* Hand the LV to a new owner: the name tag becomes name and the generation goes up by one, in
 * one lvchange (one metadata commit: after a crash LVM holds the old pair or the new one). */
static int set_owner_tags(struct lvm_backend *l, struct lvm__lv *lv, const char *name)
{
    struct lvm__meta m = lv->meta;
    char old_tags[LVM_MAX_TAGS][LVM_TAG_MAX + 1], new_tags[LVM_MAX_TAGS][LVM_TAG_MAX + 1];
    char target[LVM_VG_NAME_MAX + LVM_LV_NAME_MAX + 2];
    const char *args[LVM_ARGV_MAX];
    struct exec_result res;
    int r, no, nn;
    size_t a = 0;

    snprintf(m.name, sizeof(m.name), "%s", name);
    m.gen = lv->meta.gen + 1;
    no = lvm__tags_build(&lv->meta, old_tags);
    nn = lvm__tags_build(&m, new_tags);
    if (no < 0 || nn < 0)
        return be_error(-EINVAL, "cannot encode the name \"%.64s\" into a tag", name);
    snprintf(target, sizeof(target), "%s/%s", lv->vg, lv->name);
    /* tag 1 is the name, the last one the generation (absent at generation 0) */
    args[a++] = "lvchange";
    args[a++] = "--deltag";
    args[a++] = old_tags[1];
    if (lv->meta.gen > 0) {
        args[a++] = "--deltag";
        args[a++] = old_tags[no - 1];
    }
    args[a++] = "--addtag";
    args[a++] = new_tags[1];
    args[a++] = "--addtag";
    args[a++] = new_tags[nn - 1];
    args[a++] = target;
    args[a] = NULL;
    r = run_lvm(l, args, &res);
    if (r < 0)
        return r;
    exec_result_release(&res);
    lv->meta = m;
    return 0;
}

/* lvextend vg/lv to size bytes (a thin LV: its virtual size; nothing is allocated). */
static int lv_extend(struct lvm_backend *l, const char *vg, const char *lv, int64_t size)
{
    char target[LVM_VG_NAME_MAX + LVM_LV_NAME_MAX + 2], sizearg[32];
    const char *args[] = {"lvextend", "--size", sizearg, target, NULL};
    struct exec_result res;
    int r;

    snprintf(target, sizeof(target), "%s/%s", vg, lv);
    snprintf(sizearg, sizeof(sizearg), "%lldb", (long long)size);
    r = run_lvm(l, args, &res);
    if (r < 0)
        return r;
    exec_result_release(&res);
    return 0;
}

/* A restore or clone into a larger size is lvcreate (all tags, the size tag the target) then
 * lvextend; a crash in between leaves the LV smaller than its size tag. Finish it. */
static int finish_extend(struct lvm_backend *l, struct lvm__lv *lv)
{
    int64_t want;
    int r;

    if (lv->is_snap || lv->tags_rc != 0 || lv->meta.source_kind == BE_SOURCE_NONE ||
        !lvm__is_thin(lv) || lv->size >= lv->meta.requested)
        return 0;
    want = (lv->meta.requested + lv->extent - 1) / lv->extent * lv->extent;
    r = lv_extend(l, lv->vg, lv->name, want);
    if (r < 0)
        return r;
    return lvm__find_lv(l, lv->vg, lv->name, lv);
}

static int create_existing(struct lvm_backend *l, const struct be_create_req *req,
                           const struct create_params *cp, struct lvm__lv *lv,
                           struct be_volume *ret)
{
    struct be_volume v;
    int r;

    if (lv->tags_rc != 0)
        return be_error(-EIO, "LV %s/%s for key %.80s exists but its tags are damaged", lv->vg,
                        lv->name, req->key);
    if (strcmp(lv->meta.key, req->key) != 0)
        return be_error(-EIO, "LV name %s/%s collides with the one of key %.80s", lv->vg, lv->name,
                        lv->meta.key);
    r = finish_extend(l, lv);
    if (r < 0)
        return r;
    lv_to_be(lv, &v);
    if (strcmp(lv->vg, cp->vg) != 0)
        return be_error(-EEXIST, "volume %s for key %.80s exists in volume group %s, not %s", v.id,
                        req->key, lv->vg, cp->vg);
    if (strcmp(lv->meta.pool, cp->pool ? cp->pool : "") != 0)
        return be_error(-EEXIST, "volume %s exists %s%s, not %s%s", v.id,
                        lv->meta.pool[0] ? "in thin pool " : "as a thick LV", lv->meta.pool,
                        cp->pool ? "in thin pool " : "as a thick LV", cp->pool ? cp->pool : "");
    if (req->source_kind != BE_SOURCE_NONE &&
        (lv->meta.source_kind != req->source_kind || strcmp(lv->meta.source_id, req->source_id)))
        return be_error(-EEXIST, "volume %s exists with another content source (%s)", v.id,
                        lv->meta.source_id[0] ? lv->meta.source_id : "none");
    if (lv->meta.access != req->access)
        return be_error(-EEXIST, "volume %s exists as a %s volume", v.id,
                        lv->meta.access == BE_ACCESS_BLOCK ? "block" : "mount");
    if (v.capacity_bytes < req->required_bytes ||
        (req->limit_bytes > 0 && v.capacity_bytes > req->limit_bytes))
        return be_error(-EEXIST, "volume %s exists with %lld bytes, outside the requested range",
                        v.id, (long long)v.capacity_bytes);
    if (req->access == BE_ACCESS_MOUNT &&
        (strcmp(lv->meta.fs, cp->fs) != 0 || strcmp(lv->meta.mkfs, cp->mkfs) != 0))
        return be_error(-EEXIST, "volume %s exists with filesystem %s \"%s\", not %s \"%s\"", v.id,
                        lv->meta.fs, lv->meta.mkfs, cp->fs, cp->mkfs);
    if (v.abnormal)
        return be_error(-EIO, "volume %s exists but is not healthy: %s", v.id, v.condition);
    if (strcmp(lv->meta.name, req->name) != 0) {
        /* a claim that comes back under the same key gets its volume: the new name owns it,
         * and the ids issued to earlier owners name nothing from now on */
        r = set_owner_tags(l, lv, req->name);
        if (r < 0)
            return r;
        lv_to_be(lv, &v);
    }
    *ret = v;
    return 0;
}

/* The origin of a restore or clone. */
struct source {
    char origin[LVM_VG_NAME_MAX + LVM_LV_NAME_MAX + 2]; /* vg/lv for lvcreate --snapshot */
    int64_t size;
};

/*
 * Check the content source of req and fill *ret: a snapshot of ours, or a healthy thin volume
 * of ours, in the volume group and thin pool the class names (a thin snapshot lives in its
 * origin's pool). A mount volume made from a filesystem keeps that filesystem: cp->fs becomes
 * the source's when the class does not name one, and a different one is refused.
 */
static int resolve_source(struct lvm_backend *l, const struct be_create_req *req,
                          struct create_params *cp, struct source *ret)
{
    char vg[LVM_LV_NAME_MAX + 1], name[LVM_LV_NAME_MAX + 1];
    const char *what = req->source_kind == BE_SOURCE_SNAPSHOT ? "snapshot" : "volume";
    const char *src_fs;
    struct lvm__lv lv;
    int r;

    if (!req->source_id)
        return be_error(-EINVAL, "no source id");
    if (req->source_kind == BE_SOURCE_SNAPSHOT) {
        if (lvm__parse_snap_id(req->source_id, vg, name) < 0 || !allowed_vg(l, vg))
            return be_error(-ENOENT, "snapshot %.128s not found", req->source_id);
        r = lvm__find_lv(l, vg, name, &lv);
        if (r == -ENOENT || (r == 0 && (!lv.is_snap || lv.tags_rc != 0)))
            return be_error(-ENOENT, "snapshot %s not found", req->source_id);
        if (r < 0)
            return r;
        src_fs = lv.snap.access == BE_ACCESS_MOUNT ? lv.snap.fs : "";
    } else {
        struct be_volume v;

        r = lvm__lookup(l, req->source_id, &v, &lv);
        if (r < 0)
            return r;
        if (v.abnormal)
            return be_error(-EIO, "source volume %s is not healthy: %s", v.id, v.condition);
        if (!lvm__is_thin(&lv))
            return be_error(-ENOTSUP,
                            "volume %s is a thick LV and cannot be cloned: clones need a thin "
                            "volume (a StorageClass with thinPool)",
                            v.id);
        src_fs = lv.meta.access == BE_ACCESS_MOUNT ? lv.meta.fs : "";
    }
    if (!lvm__is_thin(&lv))
        return be_error(-EIO, "%s %s is not a thin LV", what, req->source_id);
    if (!cp->pool || strcmp(cp->pool, lv.pool) != 0 || strcmp(cp->vg, lv.vg) != 0)
        return be_error(-EINVAL,
                        "%s %s lives in thin pool %s/%s: a volume made from it is a thin "
                        "snapshot in the same pool, so the StorageClass must name volumeGroup "
                        "%s and thinPool %s",
                        what, req->source_id, lv.vg, lv.pool, lv.vg, lv.pool);
    if (req->access == BE_ACCESS_MOUNT && src_fs[0]) {
        if (!cp->fs_given)
            snprintf(cp->fs, sizeof(cp->fs), "%s", src_fs);
        else if (strcmp(cp->fs, src_fs) != 0)
            return be_error(-EINVAL, "%s %s holds an %s filesystem, not %s", what, req->source_id,
                            src_fs, cp->fs);
    }
    snprintf(ret->origin, sizeof(ret->origin), "%s/%s", lv.vg, lv.name);
    ret->size = lv.size;
    return 0;
}

static int lvm_create(struct backend *b, const struct be_create_req *req, struct be_volume *ret)
{
    struct lvm_backend *l = lvm__of(b);
    struct create_params cp;
    char lvname[LVM_LV_NAME_MAX + 1], id[BE_ID_MAX + 1], sizearg[32];
    char tags[LVM_MAX_TAGS][LVM_TAG_MAX + 1];
    struct lvm__meta m = {0};
    struct lvm__lv lv;
    struct vg_info vi;
    struct exec_result res;
    struct source src = {0};
    int64_t size = 0;
    int r, nt;

    if (!req || !req->name || !req->name[0] || strlen(req->name) > BE_ID_MAX)
        return be_error(-EINVAL, "invalid volume name");
    if (req->provisioning_uid && req->provisioning_uid[0])
        return be_error(-ENOTSUP, "the LVM backend keeps no provisioning mark");
    if (!req->key || !lvm__valid_key(req->key, req->key_is_claim))
        return be_error(-EINVAL,
                        req->key_is_claim
                            ? "invalid claim key: want <namespace>/<claim name> (DNS-1123)"
                            : "invalid volume name: want 1..128 bytes without '/' or control "
                              "characters");
    if (req->required_bytes < 0 || req->limit_bytes < 0)
        return be_error(-EINVAL, "negative capacity");
    if (req->limit_bytes > 0 && req->limit_bytes < req->required_bytes)
        return be_error(-ERANGE, "capacity limit %lld is below the required %lld",
                        (long long)req->limit_bytes, (long long)req->required_bytes);
    if (req->access != BE_ACCESS_MOUNT && req->access != BE_ACCESS_BLOCK)
        return be_error(-EINVAL, "invalid access type");
    r = create_params(l, req, &cp);
    if (r < 0)
        return r;
    if (cp.pool) {
        struct pool_info pi;

        r = find_pool(l, cp.vg, cp.pool, &pi);
        if (r < 0)
            return r;
    }
    if (req->source_kind != BE_SOURCE_NONE) {
        r = resolve_source(l, req, &cp, &src);
        if (r < 0)
            return r;
    }

    lvm__lv_name(req->key, lvname);
    r = lvm__find_lv(l, NULL, lvname, &lv);
    if (r == 0)
        return create_existing(l, req, &cp, &lv, ret);
    if (r != -ENOENT)
        return r;

    r = vg_info(l, cp.vg, &vi);
    if (r < 0)
        return r;
    r = pick_size(req, vi.extent, &size);
    if (r < 0)
        return r;
    if (req->source_kind != BE_SOURCE_NONE) {
        /* a thin snapshot has its origin's size; CSI wants at least the source's size */
        if (req->required_bytes <= 0 || size < src.size)
            size = src.size;
        if (req->limit_bytes > 0 && size > req->limit_bytes)
            return be_error(-ERANGE, "the source %s has %lld bytes, more than the limit %lld",
                            req->source_id, (long long)src.size, (long long)req->limit_bytes);
    } else if (!cp.pool && size > vi.free) {
        return be_error(-ENOSPC, "volume group %s has %lld bytes free, %lld needed", cp.vg,
                        (long long)vi.free, (long long)size);
    }
    r = lvm__vol_id(cp.vg, lvname, 0, id);
    if (r < 0)
        return be_error(r, "volume id too long");

    snprintf(m.key, sizeof(m.key), "%s", req->key);
    snprintf(m.name, sizeof(m.name), "%s", req->name);
    m.requested = req->source_kind != BE_SOURCE_NONE ? size
                  : req->required_bytes > 0          ? req->required_bytes
                                                     : size;
    m.access = req->access;
    snprintf(m.fs, sizeof(m.fs), "%s", cp.fs);
    snprintf(m.mkfs, sizeof(m.mkfs), "%s", cp.mkfs);
    snprintf(m.pool, sizeof(m.pool), "%s", cp.pool ? cp.pool : "");
    m.source_kind = req->source_kind;
    snprintf(m.source_id, sizeof(m.source_id), "%s",
             req->source_kind != BE_SOURCE_NONE ? req->source_id : "");
    m.created = (int64_t)time(NULL);
    nt = lvm__tags_build(&m, tags);
    if (nt < 0)
        return be_error(-EINVAL, "the key or name is too long to be kept in LVM tags");
    snprintf(sizearg, sizeof(sizearg), "%lldb", (long long)size);

    {
        const char *args[LVM_ARGV_MAX];
        size_t a = 0;

        args[a++] = "lvcreate";
        args[a++] = "--yes";
        if (req->source_kind != BE_SOURCE_NONE) {
            /* a writable thin snapshot of the source, activated like any volume */
            args[a++] = "--snapshot";
            args[a++] = "--setactivationskip";
            args[a++] = "n";
            args[a++] = "--permission";
            args[a++] = "rw";
        } else if (cp.pool) {
            /* the pool zeroes new blocks (find_pool checked it): no wiping needed */
            args[a++] = "--type";
            args[a++] = "thin";
            args[a++] = "--thinpool";
            args[a++] = cp.pool;
            args[a++] = "--virtualsize";
            args[a++] = sizearg;
        } else {
            args[a++] = "--wipesignatures";
            args[a++] = "y";
            args[a++] = "--zero";
            args[a++] = "y";
            args[a++] = "--size";
            args[a++] = sizearg;
        }
        args[a++] = "--name";
        args[a++] = lvname;
        for (int i = 0; i < nt; i++) {
            args[a++] = "--addtag";
            args[a++] = tags[i];
        }
        args[a++] = req->source_kind != BE_SOURCE_NONE ? src.origin : cp.vg;
        args[a] = NULL;
        r = run_lvm(l, args, &res);
    }
    if (r < 0) {
        /* lvcreate may have got as far as the metadata commit (a timeout, a late failure) */
        char why[BE_MSG_MAX];
        struct lvm__lv x;

        snprintf(why, sizeof(why), "%s", be_last_error());
        if (lvm__find_lv(l, cp.vg, lvname, &x) == 0)
            lv_remove(l, cp.vg, lvname);
        return be_error(r, "%s", why);
    }
    exec_result_release(&res);

    r = fault("after-lvcreate");
    if (r == 0)
        r = lvm__find_lv(l, cp.vg, lvname, &lv);
    /* a larger restore or clone: the size tag already says the target, grow to it */
    if (r == 0 && lv.size < size)
        r = finish_extend(l, &lv);
    if (r == 0 && (lv.tags_rc != 0 || strcmp(lv.meta.key, req->key) != 0 || lv.size != size))
        r = be_error(-EIO, "LV %s/%s is not as created (size %lld, tags %s)", cp.vg, lvname,
                     (long long)lv.size, lv.tags_rc == 0 ? "ok" : "damaged");
    if (r < 0) {
        char why[BE_MSG_MAX];
        int rr;

        snprintf(why, sizeof(why), "%s", be_last_error());
        rr = lv_remove(l, cp.vg, lvname);
        if (rr < 0 && rr != -ENOENT)
            return be_error(r, "%s; rolling back failed too: %s", why, be_last_error());
        return be_error(r, "%s (the LV was removed again)", why);
    }
    lv_to_be(&lv, ret);
    return 0;
}

/* ---- remove, list ---- */

static int lvm_remove(struct backend *b, const char *id)
{
    struct lvm_backend *l = lvm__of(b);
    char vg[LVM_LV_NAME_MAX + 1], lv[LVM_LV_NAME_MAX + 1];
    struct be_volume v;
    struct lvm__lv x;
    int64_t gen;
    int r;

    if (!id || lvm__parse_id(id, vg, lv, &gen) < 0 || !allowed_vg(l, vg))
        return 0;
    r = lvm__find_lv(l, vg, lv, &x);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    lv_to_be(&x, &v);
    if (strcmp(v.id, id) != 0)
        return 0; /* an id of an earlier owner: the LV is someone else's now */
    if (strlen(x.attr) > 5 && x.attr[5] == 'o')
        return be_error(-EBUSY, "LV %s/%s is open (mounted or in use)", vg, lv);
    r = lv_remove(l, vg, lv);
    if (r < 0 && lvm__find_lv(l, vg, lv, &x) == -ENOENT)
        return 0;
    return r;
}

static int lvm_lookup_key(struct backend *b, const char *key, struct be_volume *ret)
{
    struct lvm_backend *l = lvm__of(b);
    char lvname[LVM_LV_NAME_MAX + 1];
    struct lvm__lv x;
    int r;

    if (!key || !lvm__valid_key(key, strchr(key, '/') != NULL))
        return -ENOENT;
    lvm__lv_name(key, lvname);
    r = lvm__find_lv(l, NULL, lvname, &x);
    if (r < 0)
        return r;
    if (x.tags_rc != 0 || strcmp(x.meta.key, key) != 0)
        return be_error(-EIO, "LV %s/%s for key %.80s: its tags are damaged or name another key",
                        x.vg, x.name, key);
    lv_to_be(&x, ret);
    return 0;
}

static int be_cmp(const void *a, const void *b)
{
    return strcmp(((const struct be_volume *)a)->id, ((const struct be_volume *)b)->id);
}

static const char *volume_id(const void *v)
{
    return ((const struct be_volume *)v)->id;
}

static const char *snapshot_id(const void *s)
{
    return ((const struct be_snapshot *)s)->id;
}

static int lvm_list(struct backend *b, const char *after, size_t max, struct be_volume_page *ret)
{
    struct lvm_backend *l = lvm__of(b);
    _cleanup_free_ struct lvm__lv *lvs = NULL;
    struct be_volume *all = NULL;
    size_t n = 0, count;
    int r;

    r = list_lvs(l, NULL, &lvs, &n);
    if (r < 0)
        return r;
    if (n > 0) {
        all = calloc(n, sizeof(*all));
        if (!all)
            return -ENOMEM;
    }
    {
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
            if (!lvs[i].is_snap)
                lv_to_be(&lvs[i], &all[k++]);
        n = k;
    }
    if (n > 1)
        qsort(all, n, sizeof(*all), be_cmp);
    count = be_page_window(all, n, sizeof(*all), volume_id, after, max, &ret->more);
    ret->items = count ? all : NULL;
    ret->n = count;
    if (count == 0)
        free(all);
    return 0;
}

/* ---- expand, capacity ---- */

static int lvm_expand(struct backend *b, const char *id, int64_t required, int64_t limit,
                      struct be_volume *ret, bool *ret_node_expand)
{
    struct lvm_backend *l = lvm__of(b);
    char target[LVM_VG_NAME_MAX + LVM_LV_NAME_MAX + 2], sizearg[32];
    struct be_volume cur;
    struct lvm__lv lv;
    struct vg_info vi;
    struct exec_result res;
    int64_t size;
    int r;

    if (required < 0 || limit < 0)
        return be_error(-EINVAL, "negative capacity");
    if (limit > 0 && required > limit)
        return be_error(-ERANGE, "required %lld is above the limit %lld", (long long)required,
                        (long long)limit);
    r = lvm__lookup(l, id, &cur, &lv);
    if (r < 0)
        return r;
    if (cur.abnormal)
        return be_error(-EIO, "volume %s is not healthy: %s", cur.id, cur.condition);
    if (required <= cur.capacity_bytes) {
        if (limit > 0 && cur.capacity_bytes > limit)
            return be_error(-ERANGE, "volume %s has %lld bytes, more than the limit %lld", cur.id,
                            (long long)cur.capacity_bytes, (long long)limit);
        *ret = cur;
        *ret_node_expand = false;
        return 0;
    }
    if (required > INT64_MAX - lv.extent)
        return be_error(-ERANGE, "%lld bytes is too large", (long long)required);
    size = (required + lv.extent - 1) / lv.extent * lv.extent;
    if (limit > 0 && size > limit)
        return be_error(-ERANGE,
                        "%lld bytes rounded up to the extent size is %lld, above the "
                        "limit %lld",
                        (long long)required, (long long)size, (long long)limit);
    r = vg_info(l, lv.vg, &vi);
    if (r < 0)
        return r;
    /* a thin LV only grows its virtual size: the pool's space is taken when written */
    if (!lvm__is_thin(&lv) && size - cur.capacity_bytes > vi.free)
        return be_error(-ENOSPC, "volume group %s has %lld bytes free, %lld more needed", lv.vg,
                        (long long)vi.free, (long long)(size - cur.capacity_bytes));
    snprintf(target, sizeof(target), "%s/%s", lv.vg, lv.name);
    snprintf(sizearg, sizeof(sizearg), "%lldb", (long long)size);
    const char *args[] = {"lvextend", "--size", sizearg, target, NULL};
    r = run_lvm(l, args, &res);
    if (r < 0)
        return r;
    exec_result_release(&res);
    r = lvm__lookup(l, id, &cur, &lv);
    if (r < 0)
        return r;
    if (cur.capacity_bytes < required)
        return be_error(-EIO, "lvextend left %s at %lld bytes", cur.id,
                        (long long)cur.capacity_bytes);
    *ret = cur;
    *ret_node_expand = cur.access == BE_ACCESS_MOUNT;
    return 0;
}

static int lvm_capacity(struct backend *b, const struct be_param *params, size_t n_params,
                        int64_t *ret_available, int64_t *ret_max_volume)
{
    struct lvm_backend *l = lvm__of(b);
    struct vg_info all[LVM_MAX_VGS];
    const char *vg, *fs, *mkfs, *pool;
    int64_t avail = 0, maxv = 0;
    int r;

    r = parse_params(l, params, n_params, &vg, &fs, &mkfs, &pool);
    if (r < 0)
        return r;
    if (pool) {
        /* thin volumes take the pool's free data space as they are written */
        struct pool_info pi;

        if (!vg) {
            if (l->n_vgs != 1)
                return be_error(-EINVAL,
                                "parameters.volumeGroup is required with thinPool: "
                                "this driver serves %zu volume groups",
                                l->n_vgs);
            vg = l->vgs[0];
        }
        r = find_pool(l, vg, pool, &pi);
        if (r < 0)
            return r;
        *ret_available = pi.size - pi.used;
        *ret_max_volume = pi.size - pi.used;
        return 0;
    }
    r = vg_infos(l, all);
    if (r < 0)
        return r;
    for (size_t i = 0; i < l->n_vgs; i++) {
        if (vg && strcmp(vg, l->vgs[i]) != 0)
            continue;
        avail += all[i].free;
        if (all[i].free > maxv)
            maxv = all[i].free;
    }
    *ret_available = avail;
    *ret_max_volume = maxv;
    return 0;
}

/* ---- snapshots ---- */

static int snap_cmp(const void *a, const void *b)
{
    return strcmp(((const struct be_snapshot *)a)->id, ((const struct be_snapshot *)b)->id);
}

static void snap_to_be(const struct lvm__lv *lv, struct be_snapshot *ret)
{
    memset(ret, 0, sizeof(*ret));
    lvm__snap_id(lv->vg, lv->name, ret->id);
    snprintf(ret->name, sizeof(ret->name), "%s", lv->snap.name);
    snprintf(ret->source_volume_id, sizeof(ret->source_volume_id), "%s", lv->snap.source);
    ret->size_bytes = lv->size;
    ret->created_sec = lv->snap.created;
    /* a thin snapshot is whole the moment lvcreate commits it */
    ret->ready = true;
}

/* Our snapshot LVs with whole tags, every allowed group, sorted by id (malloc'd, owned). */
static int list_snaps(struct lvm_backend *l, struct be_snapshot **ret, size_t *ret_n)
{
    _cleanup_free_ struct lvm__lv *lvs = NULL;
    struct be_snapshot *all = NULL;
    size_t n = 0, k = 0;
    int r = list_lvs(l, NULL, &lvs, &n);

    if (r < 0)
        return r;
    if (n > 0) {
        all = calloc(n, sizeof(*all));
        if (!all)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (lvs[i].is_snap && lvs[i].tags_rc == 0)
            snap_to_be(&lvs[i], &all[k++]);
    if (k > 1)
        qsort(all, k, sizeof(*all), snap_cmp);
    *ret = all;
    *ret_n = k;
    return 0;
}

/* The snapshot LV called name in any allowed group: 0, -ENOENT. */
static int find_snap_by_name(struct lvm_backend *l, const char *name, struct lvm__lv *ret)
{
    char lvname[LVM_LV_NAME_MAX + 1];
    int r;

    lvm__snap_lv_name(name, lvname);
    r = lvm__find_lv(l, NULL, lvname, ret);
    if (r < 0)
        return r;
    if (ret->tags_rc != 0)
        return be_error(-EIO, "snapshot LV %s/%s exists but its tags are damaged: %s", ret->vg,
                        ret->name, ret->tags_rc == -ENODATA ? "none of ours" : ret->tags_why);
    if (strcmp(ret->snap.name, name) != 0)
        return be_error(-EIO, "snapshot LV name %s/%s collides with the one of snapshot %.80s",
                        ret->vg, ret->name, ret->snap.name);
    return 0;
}

static int lvm_snapshot_create(struct backend *b, const char *name, const char *source_volume_id,
                               struct be_snapshot *ret)
{
    struct lvm_backend *l = lvm__of(b);
    char lvname[LVM_LV_NAME_MAX + 1], origin[LVM_VG_NAME_MAX + LVM_LV_NAME_MAX + 2];
    char tags[LVM_MAX_TAGS][LVM_TAG_MAX + 1];
    struct lvm__snap_meta m = {0};
    struct exec_result res;
    struct be_volume v;
    struct lvm__lv src, lv;
    int r, nt;

    if (!name || !name[0] || strlen(name) > BE_ID_MAX)
        return be_error(-EINVAL, "invalid snapshot name");
    if (!source_volume_id)
        return be_error(-EINVAL, "no source volume");
    r = find_snap_by_name(l, name, &lv);
    if (r == 0) {
        if (strcmp(lv.snap.source, source_volume_id) != 0)
            return be_error(-EEXIST, "snapshot %s exists for volume %s", name, lv.snap.source);
        snap_to_be(&lv, ret);
        return 0;
    }
    if (r != -ENOENT)
        return r;
    r = lvm__lookup(l, source_volume_id, &v, &src);
    if (r < 0)
        return r;
    if (!lvm__is_thin(&src))
        return be_error(-ENOTSUP,
                        "volume %s is a thick LV: the LVM backend takes snapshots of thin volumes "
                        "only (a StorageClass with thinPool)",
                        v.id);
    if (v.abnormal)
        return be_error(-EIO, "volume %s is not healthy: %s", v.id, v.condition);

    lvm__snap_lv_name(name, lvname);
    snprintf(m.name, sizeof(m.name), "%s", name);
    snprintf(m.source, sizeof(m.source), "%s", v.id);
    m.size = src.size;
    m.access = src.meta.access;
    snprintf(m.fs, sizeof(m.fs), "%s", src.meta.fs);
    m.created = (int64_t)time(NULL);
    nt = lvm__snap_tags_build(&m, tags);
    if (nt < 0)
        return be_error(-EINVAL, "the snapshot name is too long to be kept in LVM tags");
    snprintf(origin, sizeof(origin), "%s/%s", src.vg, src.name);
    {
        const char *args[LVM_ARGV_MAX];
        size_t a = 0;

        /* read-only, never activated (the skip flag): only a source for restores. lvcreate
         * suspends the origin for it, which freezes a mounted filesystem: the copy is clean */
        args[a++] = "lvcreate";
        args[a++] = "--yes";
        args[a++] = "--snapshot";
        args[a++] = "--setactivationskip";
        args[a++] = "y";
        args[a++] = "--permission";
        args[a++] = "r";
        args[a++] = "--name";
        args[a++] = lvname;
        for (int i = 0; i < nt; i++) {
            args[a++] = "--addtag";
            args[a++] = tags[i];
        }
        args[a++] = origin;
        args[a] = NULL;
        r = run_lvm(l, args, &res);
    }
    if (r < 0) {
        char why[BE_MSG_MAX];
        struct lvm__lv x;

        snprintf(why, sizeof(why), "%s", be_last_error());
        if (lvm__find_lv(l, src.vg, lvname, &x) == 0)
            lv_remove(l, src.vg, lvname);
        return be_error(r, "%s", why);
    }
    exec_result_release(&res);
    r = fault("after-snapshot");
    if (r == 0)
        r = find_snap_by_name(l, name, &lv);
    if (r == 0 && (strcmp(lv.snap.source, v.id) != 0 || !lvm__is_thin(&lv)))
        r = be_error(-EIO, "snapshot LV %s/%s is not as created", src.vg, lvname);
    if (r < 0) {
        char why[BE_MSG_MAX];
        int rr;

        snprintf(why, sizeof(why), "%s", be_last_error());
        rr = lv_remove(l, src.vg, lvname);
        if (rr < 0 && rr != -ENOENT)
            return be_error(r, "%s; rolling back failed too: %s", why, be_last_error());
        return be_error(r, "%s (the snapshot LV was removed again)", why);
    }
    snap_to_be(&lv, ret);
    return 0;
}

static int lvm_snapshot_lookup(struct backend *b, const char *id, struct be_snapshot *ret)
{
    struct lvm_backend *l = lvm__of(b);
    char vg[LVM_LV_NAME_MAX + 1], name[LVM_LV_NAME_MAX + 1];
    struct lvm__lv lv;
    int r;

    if (!id || lvm__parse_snap_id(id, vg, name) < 0 || !allowed_vg(l, vg))
        return be_error(-ENOENT, "snapshot %.128s not found", id ? id : "");
    r = lvm__find_lv(l, vg, name, &lv);
    if (r == -ENOENT || (r == 0 && (!lv.is_snap || lv.tags_rc != 0)))
        return be_error(-ENOENT, "snapshot %s not found", id);
    if (r < 0)
        return r;
    snap_to_be(&lv, ret);
    return 0;
}

static int lvm_snapshot_remove(struct backend *b, const char *id)
{
    struct lvm_backend *l = lvm__of(b);
    char vg[LVM_LV_NAME_MAX + 1], name[LVM_LV_NAME_MAX + 1];
    struct lvm__lv lv;
    int r;

    if (!id || lvm__parse_snap_id(id, vg, name) < 0 || !allowed_vg(l, vg))
        return 0;
    r = lvm__find_lv(l, vg, name, &lv);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (!lv.is_snap || lv.tags_rc != 0)
        return 0; /* not a snapshot we made whole: never ours to delete by this id */
    /* volumes restored from it are thin snapshots of their own: they keep their data */
    r = lv_remove(l, vg, name);
    if (r < 0 && lvm__find_lv(l, vg, name, &lv) == -ENOENT)
        return 0;
    return r;
}

static int lvm_snapshot_list(struct backend *b, const char *after, size_t max,
                             struct be_snapshot_page *ret)
{
    struct be_snapshot *all = NULL;
    size_t n = 0, count;
    int r = list_snaps(lvm__of(b), &all, &n);

    if (r < 0)
        return r;
    count = be_page_window(all, n, sizeof(*all), snapshot_id, after, max, &ret->more);
    ret->items = count ? all : NULL;
    ret->n = count;
    if (count == 0)
        free(all);
    return 0;
}

/* ---- recover, lifecycle ---- */

static int lvm_recover(struct backend *b)
{
    struct lvm_backend *l = lvm__of(b);
    _cleanup_free_ struct lvm__lv *lvs = NULL;
    struct vg_info all[LVM_MAX_VGS];
    size_t n = 0, removed = 0;
    int r;

    r = vg_infos(l, all);
    if (r < 0)
        return r;
    r = list_lvs(l, NULL, &lvs, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        /* best effort: an LV left short stays reported abnormal and CreateVolume retries */
        if (lvs[i].tags_rc == 0 && finish_extend(l, &lvs[i]) < 0)
            be_error_clear();
        if (lvs[i].tags_rc != -ENODATA)
            continue;
        /* our name, none of our tags: made outside one lvcreate with all tags, half made */
        r = lv_remove(l, lvs[i].vg, lvs[i].name);
        if (r < 0)
            return be_error(r, "cannot remove the half-made LV %s/%s: %s", lvs[i].vg, lvs[i].name,
                            be_last_error());
        removed++;
    }
    l->removed = removed;
    return 0;
}

size_t be_lvm_removed_count(struct backend *b)
{
    return lvm__of(b)->removed;
}

static void lvm_free(struct backend *b)
{
    free(lvm__of(b));
}

static const struct be_ops lvm_ops = {
    .name = "lvm",
    .recover = lvm_recover,
    .free = lvm_free,
    .create = lvm_create,
    .remove = lvm_remove,
    .lookup = lvm_lookup,
    .list = lvm_list,
    .expand = lvm_expand,
    .capacity = lvm_capacity,
    .snapshot_create = lvm_snapshot_create,
    .snapshot_remove = lvm_snapshot_remove,
    .snapshot_lookup = lvm_snapshot_lookup,
    .snapshot_list = lvm_snapshot_list,
    .stage = lvm__stage,
    .unstage = lvm__unstage,
    .publish = lvm__publish,
    .unpublish = lvm__unpublish,
    .stats = lvm__stats,
    .node_expand = lvm__node_expand,
    .lookup_key = lvm_lookup_key,
    .usage = lvm_usage,
    /* thin volumes: restores and clones (a thick source is refused per request) */
    .content_sources = true,
};

static int vg_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

struct backend *be_lvm_new(const char *const *vgs, size_t n_vgs, const char *node_id)
{
    struct lvm_backend *l;
    int r;

    if (!vgs || n_vgs == 0 || n_vgs > LVM_MAX_VGS) {
        be_error(-EINVAL, "the LVM backend needs 1 to %d volume groups", LVM_MAX_VGS);
        return NULL;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        be_error(-ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n_vgs; i++) {
        if (!lvm__valid_vg_name(vgs[i])) {
            be_error(-EINVAL, "invalid volume group name \"%.40s\"", vgs[i] ? vgs[i] : "");
            free(l);
            return NULL;
        }
        if (!allowed_vg(l, vgs[i]))
            snprintf(l->vgs[l->n_vgs++], LVM_VG_NAME_MAX + 1, "%s", vgs[i]);
    }
    qsort(l->vgs, l->n_vgs, sizeof(l->vgs[0]), vg_cmp);
    snprintf(l->node_id, sizeof(l->node_id), "%s", node_id ? node_id : "");
    r = exec_find("lvm", l->tool_lvm, sizeof(l->tool_lvm));
    if (r < 0) {
        be_error(r, "the lvm tool is not installed (install lvm2)");
        free(l);
        return NULL;
    }
    l->timeout_ms = LVM_TIMEOUT_MS;
    l->base.ops = &lvm_ops;
    return &l->base;
}
