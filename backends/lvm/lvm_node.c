/*
 * Node side of the LVM backend: the LV's device /dev/<vg>/<lv> (activated on demand) is
 * formatted only when blank, mounted at the staging path, bind-mounted to the target; a raw
 * block volume's device node is bind-mounted onto a file at the target. Expansion grows the
 * filesystem online. The filesystem work itself is blockfs.c's.
 *
 * Threading: no state; the caller serialises operations per volume.
 */
#include "blockfs.h"
#include "lvm_internal.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static int check_path(const char *p, const char *what)
{
    if (!p || p[0] != '/' || strlen(p) >= PATH_MAX)
        return be_error(-EINVAL, "%s must be an absolute path", what);
    return 0;
}

/* The healthy volume and its device, activating the LV when its device is missing. */
static int volume_device(struct lvm_backend *l, const char *id, struct be_volume *v,
                         struct lvm__lv *lv, char *dev, size_t cap)
{
    int r = lvm__lookup(l, id, v, lv);

    if (r < 0)
        return r;
    if (v->abnormal)
        return be_error(-EIO, "volume %s is not healthy: %s", v->id, v->condition);
    r = lvm__device(lv->vg, lv->name, dev, cap);
    if (r == -ENODEV && lvm__activate(l, lv->vg, lv->name) == 0)
        r = lvm__device(lv->vg, lv->name, dev, cap);
    return r;
}

#define LVM_STAGE_FLAGS_MAX 63

/*
 * Mount a volume made from a snapshot or another volume (a thin snapshot: the source's
 * filesystem, byte for byte). An xfs copy carries its source's UUID, which xfs refuses to
 * mount twice on one node: "nouuid". A copy made larger than its source has a filesystem
 * smaller than the device: grown here, on the first stage (and a no-op after).
 */
static int stage_copy(const char *dev, const struct be_mount_req *req, const char *fs)
{
    const char *flags[LVM_STAGE_FLAGS_MAX + 1];
    size_t n = 0;
    int r;

    if (req->n_mount_flags > LVM_STAGE_FLAGS_MAX)
        return be_error(-EINVAL, "more than %d mount flags", LVM_STAGE_FLAGS_MAX);
    for (size_t i = 0; i < req->n_mount_flags; i++)
        flags[n++] = req->mount_flags[i];
    if (strcmp(fs, "xfs") == 0)
        flags[n++] = "nouuid";
    r = bfs_mount(dev, req->staging_path, fs, flags, n, req->readonly);
    if (r < 0 || req->readonly)
        return r;
    r = bfs_grow(dev, req->staging_path, fs);
    if (r < 0) {
        char why[BE_MSG_MAX];

        snprintf(why, sizeof(why), "%s", be_last_error());
        bfs_unmount(req->staging_path, false);
        return be_error(r, "growing the filesystem of the copy to its volume's size: %s", why);
    }
    return 0;
}

int lvm__stage(struct backend *b, const struct be_mount_req *req)
{
    struct lvm_backend *l = lvm__of(b);
    char dev[PATH_MAX];
    struct be_volume v;
    struct lvm__lv lv;
    int r;

    if (!req)
        return -EINVAL;
    r = check_path(req->staging_path, "staging path");
    if (r < 0)
        return r;
    r = volume_device(l, req->volume_id, &v, &lv, dev, sizeof(dev));
    if (r < 0)
        return r;
    if (req->access != v.access)
        return be_error(-EMEDIUMTYPE, "volume %s is a %s volume", v.id,
                        v.access == BE_ACCESS_BLOCK ? "block" : "filesystem");
    if (req->access == BE_ACCESS_BLOCK)
        return 0; /* nothing to stage: publish binds the device node itself */
    if (req->fs_type && req->fs_type[0] && strcmp(req->fs_type, lv.meta.fs) != 0)
        return be_error(-EMEDIUMTYPE, "volume %s was made for %s, not %s", v.id, lv.meta.fs,
                        req->fs_type);
    r = bfs_format_if_blank(dev, lv.meta.fs, lv.meta.mkfs);
    if (r < 0)
        return r;
    if (lv.meta.source_kind == BE_SOURCE_NONE)
        return bfs_mount(dev, req->staging_path, lv.meta.fs, req->mount_flags, req->n_mount_flags,
                         req->readonly);
    return stage_copy(dev, req, lv.meta.fs);
}

/* The device of the volume for an unstage or unpublish, or NULL when its node is missing here
 * (never activated: nothing of it can be mounted). */
static int unmount_device(struct lvm_backend *l, const char *id, char *dev, size_t cap,
                          const char **ret_dev)
{
    struct be_volume v;
    struct lvm__lv lv;
    int r = lvm__lookup(l, id, &v, &lv);

    if (r < 0)
        return r;
    r = lvm__device(lv.vg, lv.name, dev, cap);
    if (r < 0 && r != -ENODEV)
        return r;
    be_error_clear();
    *ret_dev = r < 0 ? NULL : dev;
    return 0;
}

/* A refusal to take down a mount that is not volume_id's names the volume, as the directory
 * backend's does (the path alone does not say whose request it was). */
static int refused_for(int r, const char *volume_id)
{
    char msg[512];

    if (r != -EBUSY)
        return r;
    snprintf(msg, sizeof(msg), "%s", be_last_error());
    return be_error(r, "volume %s: %s", volume_id, msg);
}

int lvm__unstage(struct backend *b, const char *volume_id, const char *staging_path)
{
    char dev[PATH_MAX];
    const char *d;
    int r;

    r = check_path(staging_path, "staging path");
    if (r < 0)
        return r;
    r = unmount_device(lvm__of(b), volume_id, dev, sizeof(dev), &d);
    if (r < 0)
        return r;
    return refused_for(bfs_unmount_of(staging_path, d, false), volume_id);
}

int lvm__publish(struct backend *b, const struct be_mount_req *req)
{
    struct lvm_backend *l = lvm__of(b);
    char dev[PATH_MAX];
    struct be_volume v;
    struct lvm__lv lv;
    int r;

    if (!req)
        return -EINVAL;
    r = check_path(req->target_path, "target path");
    if (r < 0)
        return r;
    r = volume_device(l, req->volume_id, &v, &lv, dev, sizeof(dev));
    if (r < 0)
        return r;
    if (req->access != v.access)
        return be_error(-EMEDIUMTYPE, "volume %s is a %s volume", v.id,
                        v.access == BE_ACCESS_BLOCK ? "block" : "filesystem");
    if (req->access == BE_ACCESS_BLOCK)
        return bfs_publish_block(dev, req->target_path, req->readonly);
    r = check_path(req->staging_path, "staging path");
    if (r < 0)
        return r;
    r = bfs_is_mount_of(req->staging_path, dev);
    if (r < 0 && r != -ENOENT)
        return r;
    if (r <= 0)
        return be_error(-ENOENT, "volume %s is not staged at %s", v.id, req->staging_path);
    return bfs_publish_fs(req->staging_path, req->target_path, req->mount_flags, req->n_mount_flags,
                          req->readonly);
}

int lvm__unpublish(struct backend *b, const char *volume_id, const char *target_path)
{
    char dev[PATH_MAX];
    const char *d;
    int r;

    r = check_path(target_path, "target path");
    if (r < 0)
        return r;
    r = unmount_device(lvm__of(b), volume_id, dev, sizeof(dev), &d);
    if (r < 0)
        return r;
    return refused_for(bfs_unmount_of(target_path, d, true), volume_id);
}

int lvm__stats(struct backend *b, const char *volume_id, const char *path, struct be_stats *ret)
{
    struct lvm_backend *l = lvm__of(b);
    char dev[PATH_MAX];
    struct bfs_usage u;
    struct be_volume v;
    struct lvm__lv lv;
    int64_t size;
    int r;

    r = check_path(path, "volume path");
    if (r < 0)
        return r;
    r = lvm__lookup(l, volume_id, &v, &lv);
    if (r < 0)
        return r;
    r = lvm__device(lv.vg, lv.name, dev, sizeof(dev));
    if (r < 0)
        return be_error(-ENOENT, "%s", be_last_error());
    memset(ret, 0, sizeof(*ret));
    if (bfs_is_block_of(path, dev) == 1) {
        r = bfs_device_size(dev, &size);
        if (r < 0)
            return r;
        ret->bytes_total = size;
        ret->inodes_total = ret->inodes_used = ret->inodes_available = -1;
    } else {
        r = bfs_is_mount_of(path, dev);
        if (r < 0 && r != -ENOENT)
            return r;
        if (r <= 0)
            return be_error(-ENOENT, "%s is not a mount of volume %s", path, v.id);
        r = bfs_fs_usage(path, &u);
        if (r < 0)
            return r;
        ret->bytes_total = u.bytes_total;
        ret->bytes_used = u.bytes_used;
        ret->bytes_available = u.bytes_available;
        ret->inodes_total = u.inodes_total;
        ret->inodes_used = u.inodes_used;
        ret->inodes_available = u.inodes_available;
    }
    ret->abnormal = v.abnormal;
    snprintf(ret->condition, sizeof(ret->condition), "%s", v.condition);
    return 0;
}

int lvm__node_expand(struct backend *b, const char *volume_id, const char *path,
                     int64_t *ret_capacity)
{
    struct lvm_backend *l = lvm__of(b);
    char dev[PATH_MAX];
    struct be_volume v;
    struct lvm__lv lv;
    int64_t size;
    int r;

    r = check_path(path, "volume path");
    if (r < 0)
        return r;
    r = volume_device(l, volume_id, &v, &lv, dev, sizeof(dev));
    if (r == -ENODEV)
        return be_error(-ENOENT, "%s", be_last_error());
    if (r < 0)
        return r;
    if (bfs_is_block_of(path, dev) != 1) {
        r = bfs_grow(dev, path, lv.meta.fs);
        if (r < 0)
            return r;
    }
    r = bfs_device_size(dev, &size);
    if (r < 0)
        return r;
    *ret_capacity = size;
    return 0;
}
