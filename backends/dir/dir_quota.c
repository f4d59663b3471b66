/*
 * Capacity enforcement of directory volumes by project quotas (xfs mounted with prjquota, ext4
 * with the project and quota features mounted with prjquota).
 *
 * Detection: at recover(), the root is opened and asked for its project quota state with
 * quotactl_fd(2) (Q_XGETQSTAT). Only when project limits are enforced there is anything done;
 * otherwise the backend behaves as without quotas (capacity recorded, usage walked, "over
 * capacity" condition) and says why in dir_quota.why (logged at start-up, a metric).
 *
 * Each volume made while quotas are enforced gets its own project id, recorded in its meta file
 * ("project=<id>", "inode_limit=<n>"), set with FS_IOC_FSSETXATTR (and PROJINHERIT) on its data
 * directory and on everything in it, and a hard block limit equal to its capacity (1 KiB units,
 * rounded up) plus the optional inode limit, with Q_SETQUOTA. All of that happens while the
 * volume is still being built under .tmp: a volume at its final name always has its id and its
 * limit. Expansion raises the limit before the meta records the new capacity.
 *
 * Ids: from DIR_PROJID_BASE up, one more than the largest held by an indexed volume at
 * recover() and monotonic in memory after that, so an id is never handed out twice while a
 * volume (or a volume being built, or one in .trash) holds it. A crash can leave only
 * limits with no volume: a build in .tmp or a removal in .trash, both emptied by recover()
 * before the scan. recover() then sets every indexed volume's limit again from its meta (which
 * also finishes an expansion cut between the limit and the meta write) and clears the limits of
 * every id of our range that no volume holds, so no orphan limit survives a restart.
 *
 * No shell, no xfs_quota: the ioctls and quotactl_fd directly.
 */
#include "dir.h"

#include "dir_internal.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/dqblk_xfs.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/quota.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef XFS_SUPER_MAGIC
#define XFS_SUPER_MAGIC 0x58465342
#endif
#define DIR_QUOTA_TREE_DEPTH 256 /* deepest directory nesting tag_tree() follows */

/* ---- pure parts ---- */

int dir__quota_params(const struct be_param *params, size_t n, int64_t *ret_inodes)
{
    int64_t inodes = 0;
    bool seen = false;

    for (size_t i = 0; i < n; i++) {
        const char *k = params[i].key ? params[i].key : "";
        const char *v = params[i].value ? params[i].value : "";

        if (strcmp(k, DIR_PARAM_INODE_LIMIT) != 0)
            return be_error(-EINVAL,
                            "unknown parameter \"%.64s\": the directory backend takes only %s", k,
                            DIR_PARAM_INODE_LIMIT);
        if (seen)
            return be_error(-EINVAL, "parameter %s given twice", DIR_PARAM_INODE_LIMIT);
        seen = true;
        if (!dir__parse_i64(v, 1, &inodes) || inodes > DIR_INODE_LIMIT_MAX)
            return be_error(-EINVAL, "parameter %s: \"%.32s\" is not a count of 1..%lld",
                            DIR_PARAM_INODE_LIMIT, v, (long long)DIR_INODE_LIMIT_MAX);
    }
    if (ret_inodes)
        *ret_inodes = inodes;
    return 0;
}

uint64_t dir__quota_blocks(int64_t bytes)
{
    if (bytes <= 0)
        return 0;
    return ((uint64_t)bytes + QIF_DQBLKSIZE - 1) >> QIF_DQBLKSIZE_BITS;
}

int dir__quota_next_id(uint32_t current_max, uint32_t *ret)
{
    uint32_t next = current_max < DIR_PROJID_BASE ? DIR_PROJID_BASE : current_max + 1;

    if (current_max >= DIR_PROJID_MAX)
        return be_error(-ENOSPC, "project ids of the directory backend used up (%u..%u)",
                        DIR_PROJID_BASE, DIR_PROJID_MAX);
    *ret = next;
    return 0;
}

/* ---- kernel calls ---- */

static int quotactl_fd_(int fd, unsigned int cmd, int id, void *addr)
{
#ifdef SYS_quotactl_fd
    return (int)syscall(SYS_quotactl_fd, fd, cmd, id, addr);
#else
    (void)fd, (void)cmd, (void)id, (void)addr;
    errno = ENOSYS;
    return -1;
#endif
}

static int set_limits(const struct dir_backend *d, uint32_t projid, int64_t bytes, int64_t inodes)
{
    struct if_dqblk q = {0};

    q.dqb_bhardlimit = dir__quota_blocks(bytes);
    q.dqb_ihardlimit = inodes > 0 ? (uint64_t)inodes : 0;
    q.dqb_valid = QIF_LIMITS;
    if (quotactl_fd_(d->quota.root_fd, QCMD(Q_SETQUOTA, PRJQUOTA), (int)projid, &q) < 0)
        return be_error(-errno, "cannot set the project quota of id %u under %s: %s", projid,
                        d->root, strerror(errno));
    return 0;
}

/* Set projid (and PROJINHERIT on directories) on the open file fd. */
static int tag_fd(int fd, uint32_t projid, bool is_dir, const char *what)
{
    struct fsxattr fx;

    if (ioctl(fd, FS_IOC_FSGETXATTR, &fx) < 0)
        return be_error(-errno, "FS_IOC_FSGETXATTR %s: %s", what, strerror(errno));
    fx.fsx_projid = projid;
    if (is_dir)
        fx.fsx_xflags |= FS_XFLAG_PROJINHERIT;
    if (ioctl(fd, FS_IOC_FSSETXATTR, &fx) < 0)
        return be_error(-errno, "FS_IOC_FSSETXATTR %s: %s", what, strerror(errno));
    return 0;
}

/* Tag the directory dfd (owned: closed here) and everything below it. Symbolic links and
 * special files cannot be opened for the ioctl and keep project 0 (a few bytes at most). */
static int tag_tree(int dfd, uint32_t projid, const char *what, int depth)
{
    struct dirent *de;
    DIR *dd;
    int r;

    r = tag_fd(dfd, projid, true, what);
    if (r < 0 || depth >= DIR_QUOTA_TREE_DEPTH) {
        close(dfd);
        return r < 0 ? r : be_error(-ELOOP, "%s: nested deeper than %d", what, depth);
    }
    dd = fdopendir(dfd);
    if (!dd) {
        r = -errno;
        close(dfd);
        return be_error(r, "cannot read %s: %s", what, strerror(-r));
    }
    while (r == 0 && (de = readdir(dd))) {
        struct stat st;
        int fd;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(dd), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = be_error(-errno, "stat in %s: %s", what, strerror(errno));
            break;
        }
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            continue;
        fd = openat(dirfd(dd), de->d_name,
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
                        (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
        if (fd < 0) {
            r = be_error(-errno, "open in %s: %s", what, strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            r = tag_tree(fd, projid, what, depth + 1);
        } else {
            r = tag_fd(fd, projid, false, what);
            close(fd);
        }
    }
    closedir(dd);
    return r;
}

/* ---- detection ---- */

void dir__quota_init(struct dir_quota *q)
{
    memset(q, 0, sizeof(*q));
    q->root_fd = -1;
    snprintf(q->why, sizeof(q->why), "not detected yet");
}

void dir__quota_close(struct dir_quota *q)
{
    if (q->root_fd >= 0)
        close(q->root_fd);
    q->root_fd = -1;
    q->enforced = false;
}

void dir__quota_detect(struct dir_backend *d)
{
    struct dir_quota *q = &d->quota;
    struct fs_quota_stat qs = {0};
    struct fsxattr fx;
    struct statfs sf;
    _cleanup_close_ int fd = -1;

    dir__quota_close(q);
    fd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstatfs(fd, &sf) < 0) {
        snprintf(q->why, sizeof(q->why), "not enforced: cannot open %s: %s", d->root,
                 strerror(errno));
        return;
    }
    if (sf.f_type == XFS_SUPER_MAGIC)
        snprintf(q->fs, sizeof(q->fs), "xfs");
    else if (sf.f_type == EXT4_SUPER_MAGIC)
        snprintf(q->fs, sizeof(q->fs), "ext4");
    else
        snprintf(q->fs, sizeof(q->fs), "fs 0x%llx", (unsigned long long)sf.f_type);
    if (quotactl_fd_(fd, QCMD(Q_XGETQSTAT, PRJQUOTA), 0, &qs) < 0) {
        int e = errno;
        snprintf(q->why, sizeof(q->why), "not enforced: %s (%s): %s", d->root, q->fs,
                 e == ENOSYS   ? "this kernel has no quotactl_fd or no quota support"
                 : e == ESRCH  ? "project quotas are off (xfs: mount with prjquota; ext4: "
                                 "the project and quota features, mounted with prjquota)"
                 : e == ENOTTY ? "the filesystem has no quotas"
                               : strerror(e));
        return;
    }
    if (!(qs.qs_flags & FS_QUOTA_PDQ_ACCT) || !(qs.qs_flags & FS_QUOTA_PDQ_ENFD)) {
        snprintf(q->why, sizeof(q->why),
                 "not enforced: %s (%s): project quota %s (mount with prjquota)", d->root, q->fs,
                 qs.qs_flags & FS_QUOTA_PDQ_ACCT ? "accounting on, limits off" : "off");
        return;
    }
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fx) < 0) {
        snprintf(q->why, sizeof(q->why), "not enforced: %s (%s): FS_IOC_FSGETXATTR: %s", d->root,
                 q->fs, strerror(errno));
        return;
    }
    q->root_fd = TAKE_FD(fd);
    q->enforced = true;
    snprintf(q->why, sizeof(q->why),
             "enforced: %s (%s) has project quotas; each volume gets a project id from %u and "
             "a hard block limit equal to its capacity",
             d->root, q->fs, DIR_PROJID_BASE);
}

/* ---- per volume ---- */

int dir__quota_prepare(struct dir_backend *d, const char *data, struct dir_vol *v, int64_t inodes)
{
    uint32_t id = 0;
    int r, fd;

    v->projid = 0;
    v->inode_limit = 0;
    if (!d->quota.enforced) {
        if (inodes > 0)
            return be_error(-EINVAL, "parameter %s needs project quotas, and %s has none (%s)",
                            DIR_PARAM_INODE_LIMIT, d->root, d->quota.why);
        return 0;
    }
    pthread_mutex_lock(&d->lock);
    r = dir__quota_next_id(d->quota.last_projid, &id);
    if (r == 0)
        d->quota.last_projid = id;
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        return r;
    /* The limit first: the files tagged next are charged against it at once. */
    r = set_limits(d, id, v->capacity, inodes);
    if (r < 0)
        return r;
    v->projid = id; /* from here on the caller's failure path releases the id's limits */
    v->inode_limit = inodes;
    fd = open(data, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return be_error(-errno, "cannot open %s: %s", data, strerror(errno));
    return tag_tree(fd, id, data, 0);
}

int dir__quota_resize(struct dir_backend *d, const struct dir_vol *v, int64_t bytes)
{
    if (!v->projid || !d->quota.enforced)
        return 0;
    return set_limits(d, v->projid, bytes, v->inode_limit);
}

void dir__quota_release(struct dir_backend *d, uint32_t projid)
{
    if (projid && d->quota.enforced)
        (void)set_limits(d, projid, 0, 0);
}

int dir__quota_usage(struct dir_backend *d, const char *id, struct dir_quota_usage *ret)
{
    struct if_dqblk q = {0};
    struct dir_vol *v;
    uint32_t projid = 0;

    pthread_mutex_lock(&d->lock);
    v = dir__vol_find(d, id);
    if (v) {
        projid = v->projid;
        ret->inode_limit = v->inode_limit;
    }
    pthread_mutex_unlock(&d->lock);
    if (!projid || !d->quota.enforced)
        return -ENOTSUP;
    if (quotactl_fd_(d->quota.root_fd, QCMD(Q_GETQUOTA, PRJQUOTA), (int)projid, &q) < 0)
        return be_error(-errno, "cannot read the project quota of id %u: %s", projid,
                        strerror(errno));
    ret->projid = projid;
    ret->bytes_used = (int64_t)q.dqb_curspace;
    ret->inodes_used = (int64_t)q.dqb_curinodes;
    ret->bytes_limit = (int64_t)q.dqb_bhardlimit << QIF_DQBLKSIZE_BITS;
    return 0;
}

/* ---- recovery ---- */

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

int dir__quota_reconcile(struct dir_backend *d, size_t *ret_cleared)
{
    struct {
        uint32_t projid;
        int64_t capacity, inodes;
    } *held = NULL;
    _cleanup_free_ uint32_t *ids = NULL;
    size_t n = 0, cleared = 0;
    uint32_t max = 0;
    int r = 0;

    *ret_cleared = 0;
    if (!d->quota.enforced)
        return 0;
    pthread_mutex_lock(&d->lock);
    if (d->n_vols > 0) {
        held = calloc(d->n_vols, sizeof(*held));
        ids = calloc(d->n_vols, sizeof(*ids));
    }
    if (d->n_vols > 0 && (!held || !ids)) {
        pthread_mutex_unlock(&d->lock);
        free(held);
        return -ENOMEM;
    }
    for (size_t i = 0; i < d->n_vols; i++) {
        const struct dir_vol *v = d->vols[i];

        if (v->damaged || !v->projid)
            continue;
        held[n].projid = v->projid;
        held[n].capacity = v->capacity;
        held[n].inodes = v->inode_limit;
        ids[n++] = v->projid;
        if (v->projid > max)
            max = v->projid;
    }
    if (max > d->quota.last_projid)
        d->quota.last_projid = max;
    pthread_mutex_unlock(&d->lock);

    for (size_t i = 0; i < n && r == 0; i++)
        r = set_limits(d, held[i].projid, held[i].capacity, held[i].inodes);
    free(held);
    if (r < 0)
        return r;

    /* Limits of our range that no volume holds: what a crash in .tmp or .trash left. */
    qsort(ids, n, sizeof(*ids), u32_cmp);
    for (uint32_t next = DIR_PROJID_BASE; next <= DIR_PROJID_MAX;) {
        struct if_nextdqblk q = {0};

        if (quotactl_fd_(d->quota.root_fd, QCMD(Q_GETNEXTQUOTA, PRJQUOTA), (int)next, &q) < 0)
            break; /* ENOENT: no more ids; anything else: nothing more to learn */
        if (q.dqb_id < next || q.dqb_id > DIR_PROJID_MAX)
            break;
        if ((q.dqb_bhardlimit || q.dqb_ihardlimit || q.dqb_bsoftlimit || q.dqb_isoftlimit) &&
            !bsearch(&q.dqb_id, ids, n, sizeof(*ids), u32_cmp)) {
            struct if_dqblk z = {.dqb_valid = QIF_LIMITS};

            if (quotactl_fd_(d->quota.root_fd, QCMD(Q_SETQUOTA, PRJQUOTA), (int)q.dqb_id, &z) == 0)
                cleared++;
        }
        if (q.dqb_id > d->quota.last_projid) {
            /* usage charged to an id no volume holds (files somewhere else on the filesystem
             * tagged by hand): never hand that id out */
            pthread_mutex_lock(&d->lock);
            if (q.dqb_curspace || q.dqb_curinodes)
                d->quota.last_projid = q.dqb_id;
            pthread_mutex_unlock(&d->lock);
        }
        if (q.dqb_id == DIR_PROJID_MAX)
            break;
        next = q.dqb_id + 1;
    }
    *ret_cleared = cleared;
    return 0;
}

/* ---- public ---- */

bool be_dir_quota_enforced(struct backend *b, char *why, size_t cap)
{
    struct dir_backend *d = dir__of(b);

    if (why && cap)
        snprintf(why, cap, "%s", d->quota.why);
    return d->quota.enforced;
}
