/*
 * Node side of the directory backend: stage bind-mounts a volume's data/ onto the staging path,
 * publish bind-mounts the staging path (or data/ directly when there is no staging) onto the
 * target, read-only when asked. "Is this mount that volume" is decided by comparing the
 * st_dev/st_ino seen through the mount with those of the data directory.
 *
 * Threading: only reads the index (dir__vol_get takes the lock); mounts are per path and the
 * caller serialises operations per volume.
 */
#include "dir_internal.h"
#include "fsutil.h"
#include "mount.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define UNMOUNT_MAX 8 /* mounts stacked on one path that unpublish/unstage take down */

static int check_path(const char *p, const char *what)
{
    if (!p || p[0] != '/' || strlen(p) >= PATH_MAX)
        return be_error(-EINVAL, "%s must be an absolute path", what);
    return 0;
}

/* Whether a and b (following symlinks) are the same inode. */
static bool same_inode(const char *a, const char *b)
{
    struct stat sa, sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The volume, healthy, with its data dir path. */
static int get_volume(struct dir_backend *d, const char *id, struct be_volume *v, char *data,
                      size_t cap)
{
    int r = dir__vol_get(d, id, v, data, cap);

    if (r < 0)
        return r;
    if (v->abnormal)
        return be_error(-EIO, "volume %s is damaged: %s", v->id, v->condition);
    return 0;
}

/* 0 when path is a mount point showing this volume's data, -ENOENT otherwise. */
static int check_volume_mount(const char *path, const char *data, const char *id)
{
    int mp = mnt_is_mountpoint(path);

    if (mp == -ENOENT)
        return be_error(-ENOENT, "%s does not exist", path);
    if (mp < 0)
        return be_error(mp, "cannot inspect %s: %s", path, strerror(-mp));
    if (mp == 0 || !same_inode(path, data))
        return be_error(-ENOENT, "%s is not a mount of volume %s", path, id);
    return 0;
}

/*
 * Take down the mounts of volume id (data: its data directory) stacked on path, topmost first,
 * at most UNMOUNT_MAX. A mount that is not this volume's is never touched: on top it makes the
 * call fail with -EBUSY; under this volume's mounts it is left (*ret_foreign_left). 0 when path
 * holds no mount of the volume any more (or does not exist).
 */
static int unmount_volume(const char *path, const char *data, const char *id,
                          bool *ret_foreign_left)
{
    *ret_foreign_left = false;
    for (int i = 0; i < UNMOUNT_MAX; i++) {
        int r = mnt_shows_dir(path, data);

        if (r == -ENOENT)
            return 0;
        if (r < 0)
            return be_error(r, "cannot inspect %s: %s", path, strerror(-r));
        if (r == 0) {
            if (i == 0)
                return be_error(-EBUSY, "%s holds a mount that is not volume %s: left untouched",
                                path, id);
            *ret_foreign_left = true;
            return 0;
        }
        r = mnt_unmount(path);
        if (r <= 0)
            return r;
    }
    return be_error(-EBUSY, "more than %d mounts stacked on %s", UNMOUNT_MAX, path);
}

int dir__stage(struct backend *b, const struct be_mount_req *req)
{
    struct dir_backend *d = dir__of(b);
    char data[PATH_MAX];
    struct be_volume v;
    unsigned long flags;
    struct stat st;
    bool ro;
    int r, mp;

    if (!req)
        return -EINVAL;
    if (req->access != BE_ACCESS_MOUNT)
        return be_error(-EINVAL, "the directory backend serves only mount volumes");
    r = check_path(req->staging_path, "staging path");
    if (r < 0)
        return r;
    r = mnt_flags_parse(req->mount_flags, req->n_mount_flags, &flags);
    if (r < 0)
        return r;
    ro = req->readonly || (flags & MS_RDONLY);
    flags &= ~(unsigned long)MS_RDONLY;
    r = get_volume(d, req->volume_id, &v, data, sizeof(data));
    if (r < 0)
        return r;
    if (lstat(req->staging_path, &st) < 0) {
        if (errno == ENOENT)
            return be_error(-ENOENT, "staging path %s does not exist (the CO creates it)",
                            req->staging_path);
        return be_error(-errno, "cannot stat %s: %s", req->staging_path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return be_error(-EINVAL, "staging path %s is not a directory", req->staging_path);
    mp = mnt_is_mountpoint(req->staging_path);
    if (mp < 0)
        return be_error(mp, "cannot inspect %s: %s", req->staging_path, strerror(-mp));
    if (mp > 0) {
        if (!same_inode(req->staging_path, data))
            return be_error(-EEXIST, "staging path %s holds another mount", req->staging_path);
        if (!mnt_flags_match(req->staging_path, data, flags, ro))
            return be_error(-EEXIST, "volume %s is already staged at %s with other mount options",
                            v.id, req->staging_path);
        return 0;
    }
    return mnt_bind(data, req->staging_path, flags, ro);
}

int dir__unstage(struct backend *b, const char *volume_id, const char *staging_path)
{
    struct dir_backend *d = dir__of(b);
    char data[PATH_MAX];
    struct be_volume v;
    bool foreign;
    int r;

    r = check_path(staging_path, "staging path");
    if (r < 0)
        return r;
    /* Even a damaged volume (data directory gone) can be unstaged: mountinfo still names it. */
    r = dir__vol_get(d, volume_id, &v, data, sizeof(data));
    if (r < 0)
        return r;
    r = unmount_volume(staging_path, data, v.id, &foreign);
    return r < 0 ? r : 0;
}

int dir__publish(struct backend *b, const struct be_mount_req *req)
{
    struct dir_backend *d = dir__of(b);
    char data[PATH_MAX];
    const char *src;
    struct be_volume v;
    unsigned long flags;
    struct stat st;
    bool ro, created = false;
    int r, mp;

    if (!req)
        return -EINVAL;
    if (req->access != BE_ACCESS_MOUNT)
        return be_error(-EINVAL, "the directory backend serves only mount volumes");
    r = check_path(req->target_path, "target path");
    if (r < 0)
        return r;
    if (!req->staging_path)
        return be_error(-EINVAL, "staging path missing");
    if (req->staging_path[0]) {
        r = check_path(req->staging_path, "staging path");
        if (r < 0)
            return r;
    }
    r = mnt_flags_parse(req->mount_flags, req->n_mount_flags, &flags);
    if (r < 0)
        return r;
    ro = req->readonly || (flags & MS_RDONLY);
    flags &= ~(unsigned long)MS_RDONLY;
    r = get_volume(d, req->volume_id, &v, data, sizeof(data));
    if (r < 0)
        return r;
    src = data;
    if (req->staging_path[0]) {
        if (check_volume_mount(req->staging_path, data, v.id) < 0)
            return be_error(-ENOENT, "volume %s is not staged at %s", v.id, req->staging_path);
        src = req->staging_path;
    }
    if (mkdir(req->target_path, 0750) == 0) {
        created = true;
    } else if (errno == ENOENT) {
        return be_error(-ENOENT, "the parent of target path %s does not exist", req->target_path);
    } else if (errno != EEXIST) {
        return be_error(-errno, "cannot create %s: %s", req->target_path, strerror(errno));
    } else if (lstat(req->target_path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        return be_error(-EINVAL, "target path %s is not a directory", req->target_path);
    }
    mp = created ? 0 : mnt_is_mountpoint(req->target_path);
    if (mp < 0)
        return be_error(mp, "cannot inspect %s: %s", req->target_path, strerror(-mp));
    if (mp > 0) {
        if (!same_inode(req->target_path, data))
            return be_error(-EEXIST, "target path %s holds another mount", req->target_path);
        if (!mnt_flags_match(req->target_path, src, flags, ro))
            return be_error(-EEXIST,
                            "volume %s is already published at %s with other options "
                            "(read-only or mount flags)",
                            v.id, req->target_path);
        return 0;
    }
    r = mnt_bind(src, req->target_path, flags, ro);
    if (r < 0 && created)
        rmdir(req->target_path);
    return r;
}

int dir__unpublish(struct backend *b, const char *volume_id, const char *target_path)
{
    struct dir_backend *d = dir__of(b);
    char data[PATH_MAX];
    struct be_volume v;
    struct stat st;
    bool foreign;
    int r;

    r = check_path(target_path, "target path");
    if (r < 0)
        return r;
    r = dir__vol_get(d, volume_id, &v, data, sizeof(data));
    if (r < 0)
        return r;
    if (lstat(target_path, &st) < 0)
        return errno == ENOENT
                   ? 0
                   : be_error(-errno, "cannot stat %s: %s", target_path, strerror(errno));
    r = unmount_volume(target_path, data, v.id, &foreign);
    if (r < 0)
        return r;
    if (foreign)
        return 0; /* this volume is no longer published there; the rest is not ours */
    /* Only the empty directory publish made is removed; anything else is not ours. */
    if (!S_ISDIR(st.st_mode))
        return be_error(-EBUSY, "target path %s is not a directory: left untouched", target_path);
    if (rmdir(target_path) < 0 && errno != ENOENT) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            return be_error(-EBUSY, "target path %s is not empty: left untouched", target_path);
        return be_error(-errno, "cannot remove %s: %s", target_path, strerror(errno));
    }
    return 0;
}

int dir__usage(struct backend *b, const char *volume_id, int64_t *ret_used)
{
    struct dir_backend *d = dir__of(b);
    struct dir_quota_usage qu = {0};
    char data[PATH_MAX];
    struct be_volume v;
    struct stat st;
    int64_t inodes;
    int r;

    r = dir__vol_get(d, volume_id, &v, data, sizeof(data));
    if (r < 0)
        return r;
    if (lstat(data, &st) < 0 || !S_ISDIR(st.st_mode))
        return be_error(-ENOENT, "volume %s: data directory missing", v.id);
    if (dir__quota_usage(d, volume_id, &qu) == 0) {
        *ret_used = qu.bytes_used;
        return 0;
    }
    return fsu_usage(data, ret_used, &inodes);
}

int dir__stats(struct backend *b, const char *volume_id, const char *path, struct be_stats *ret)
{
    struct dir_backend *d = dir__of(b);
    char data[PATH_MAX];
    struct be_volume v;
    struct statvfs sv;
    struct stat st;
    int64_t used, inodes, free_bytes, avail;
    const char *walk;
    struct dir_quota_usage qu = {0};
    bool missing, quota;
    int r;

    r = check_path(path, "volume path");
    if (r < 0)
        return r;
    r = dir__vol_get(d, volume_id, &v, data, sizeof(data));
    if (r < 0)
        return r;
    missing = lstat(data, &st) < 0 || !S_ISDIR(st.st_mode);
    if (missing) {
        /* The mount may outlive its source directory; report it abnormal. */
        r = mnt_is_mountpoint(path);
        if (r <= 0)
            return be_error(-ENOENT, "%s is not a mount of volume %s", path, v.id);
        walk = path;
    } else {
        r = check_volume_mount(path, data, v.id);
        if (r < 0)
            return r;
        walk = data;
    }
    /* Under a project quota the kernel keeps the numbers: no walk of the tree. */
    quota = !missing && dir__quota_usage(d, volume_id, &qu) == 0;
    if (quota) {
        used = qu.bytes_used;
        inodes = qu.inodes_used;
    } else {
        r = fsu_usage(walk, &used, &inodes);
        if (r < 0)
            return r;
    }
    if (statvfs(path, &sv) < 0)
        return be_error(-errno, "statvfs %s: %s", path, strerror(errno));
    free_bytes = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
    avail = v.capacity_bytes - used;
    if (avail > free_bytes)
        avail = free_bytes;
    if (avail < 0)
        avail = 0;
    memset(ret, 0, sizeof(*ret));
    ret->bytes_total = v.capacity_bytes;
    ret->bytes_used = used;
    ret->bytes_available = avail;
    ret->inodes_total = (int64_t)sv.f_files;
    ret->inodes_used = inodes;
    ret->inodes_available = (int64_t)sv.f_ffree;
    if (quota && qu.inode_limit > 0) {
        ret->inodes_total = qu.inode_limit;
        ret->inodes_available = qu.inode_limit > inodes ? qu.inode_limit - inodes : 0;
        if (ret->inodes_available > (int64_t)sv.f_ffree)
            ret->inodes_available = (int64_t)sv.f_ffree;
    }
    if (missing) {
        ret->abnormal = true;
        snprintf(ret->condition, sizeof(ret->condition), "data directory missing");
    } else if (v.abnormal) {
        ret->abnormal = true;
        snprintf(ret->condition, sizeof(ret->condition), "%s", v.condition);
    } else if (used > v.capacity_bytes) {
        ret->abnormal = true;
        snprintf(ret->condition, sizeof(ret->condition), "over capacity: %lld of %lld bytes used",
                 (long long)used, (long long)v.capacity_bytes);
    } else {
        snprintf(ret->condition, sizeof(ret->condition), "healthy");
    }
    return 0;
}

int dir__node_expand(struct backend *b, const char *volume_id, const char *path,
                     int64_t *ret_capacity)
{
    struct dir_backend *d = dir__of(b);
    char data[PATH_MAX];
    struct be_volume v;
    int r;

    r = check_path(path, "volume path");
    if (r < 0)
        return r;
    r = dir__vol_get(d, volume_id, &v, data, sizeof(data));
    if (r < 0)
        return r;
    r = check_volume_mount(path, data, v.id);
    if (r < 0)
        return r;
    *ret_capacity = v.capacity_bytes;
    return 0;
}
