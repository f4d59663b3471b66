/*
 * Filesystems on block devices for backends that hand out devices (LVM): probe a device for
 * signatures, make a filesystem only on a blank one, mount it, publish a raw device onto a
 * file by bind-mounting the device node, grow a mounted filesystem online, and report usage.
 *
 * Never reformats: bfs_format_if_blank() makes a filesystem only when blkid finds no signature
 * (filesystem, partition table, RAID or LVM member...), wipefs -n lists nothing and the first
 * 4 KiB are zero (lvcreate zeroes them on a new LV); anything else is left alone.
 *
 * Tools run through exec.h (argument vectors, LC_ALL=C, timeouts). Every function returns >= 0
 * or a negative errno and sets be_error(); no state is kept; all are thread-safe, and the
 * caller serialises operations on one device.
 */
#ifndef ORDINAL_BLOCKFS_H
#define ORDINAL_BLOCKFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BFS_TYPE_MAX 32
#define BFS_DATA_MAX 1024 /* filesystem-specific mount options, joined */

/* Whether dev is blank: 0 blank, 1 not blank (ret_type, cap bytes, gets blkid's TYPE or
 * PTTYPE, or "data" when only non-zero bytes were found), -errno. dev must be a block
 * device (-ENOTBLK). */
int bfs_probe(const char *dev, char *ret_type, size_t cap);

/* mkfs.<fstype> (ext4 or xfs) on dev with extra options (space-separated, may be "" or NULL),
 * without any "force" flag. */
int bfs_mkfs(const char *dev, const char *fstype, const char *options);

/* Make sure dev holds fstype: 0 when it already does or was blank and was formatted now;
 * -EMEDIUMTYPE (message names what is there) when it holds anything else. */
int bfs_format_if_blank(const char *dev, const char *fstype, const char *options);

/*
 * Mount dev (fstype) at path (an existing directory) with CSI mount flags: MS_* flags known to
 * mnt_flags_parse() plus filesystem options ("discard", "data=ordered", ...), which go to the
 * kernel as data and are checked by it. ro mounts read-only. Idempotent: path already a
 * mount of dev with the same read-only state is 0; a mount of something else is -EEXIST.
 */
int bfs_mount(const char *dev, const char *path, const char *fstype, const char *const *flags,
              size_t n_flags, bool ro);

/* 1 when path is the root of a mount of dev (the device number), 0 when not, -errno
 * (-ENOENT when path does not exist). */
int bfs_is_mount_of(const char *path, const char *dev);

/* Create the file target (its parent must exist) and bind-mount the device node dev onto it,
 * read-only when ro. Idempotent: target already showing dev with the same read-only state is
 * 0, showing something else -EEXIST. */
int bfs_publish_block(const char *dev, const char *target, bool ro);

/* Bind-mount the mounted filesystem at src onto the directory target (created if missing).
 * Idempotent as bfs_publish_block(). */
int bfs_publish_fs(const char *src, const char *target, const char *const *flags, size_t n_flags,
                   bool ro);

/* Unmount everything stacked on path, then remove it (a file or an empty directory) when
 * remove is set. A missing path is 0. */
int bfs_unmount(const char *path, bool remove);

/*
 * Unmount only what of the volume on dev is stacked on path (a filesystem mount of dev, or the
 * device node of dev bind-mounted on a file), topmost first; then, with remove, delete path when
 * it is what publish made (an empty directory or an empty file). Nothing else is touched: a mount
 * of anything else on top is -EBUSY, one under this volume's mounts is left and path is kept;
 * a non-empty directory or file is -EBUSY. dev NULL means the volume's device node is missing on
 * this node: nothing at path can then be shown to be the volume's, so a mount there is -EBUSY.
 * A missing path is 0.
 */
int bfs_unmount_of(const char *path, const char *dev, bool remove);

/* Grow the filesystem fstype on dev, mounted at mountpoint, to the size of dev (resize2fs,
 * xfs_growfs). Already full size is 0. */
int bfs_grow(const char *dev, const char *mountpoint, const char *fstype);

/* Size in bytes of a block device (BLKGETSIZE64). */
int bfs_device_size(const char *dev, int64_t *ret);

struct bfs_usage {
    int64_t bytes_total, bytes_used, bytes_available;
    int64_t inodes_total, inodes_used, inodes_available;
    bool readonly;
};

/* statvfs of the filesystem mounted at path. */
int bfs_fs_usage(const char *path, struct bfs_usage *ret);

/* 1 when path (a file, not followed if a symlink) shows the block device dev, 0 when not. */
int bfs_is_block_of(const char *path, const char *dev);

#endif
