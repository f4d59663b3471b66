/*
 * Mount helpers for backends: /proc/self/mountinfo parsing, mount point tests, CSI mount flag
 * parsing, bind mounts (read-only in the two steps Linux needs) and unmounting.
 *
 * Every function returns >= 0 or a negative errno and sets be_error() on a failure worth
 * explaining. No state is kept; all functions are thread-safe.
 */
#ifndef ORDINAL_MOUNT_H
#define ORDINAL_MOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MNT_INFO_MAX (16u << 20) /* cap of a mountinfo file read by mnt_table_load() */

/* One line of mountinfo (proc(5)); strings are unescaped and owned by the table. */
struct mnt_entry {
    int mount_id;
    int parent_id;
    unsigned major, minor;
    char *root; /* the path inside the filesystem that is mounted */
    char *mount_point;
    char *options; /* per-mount options: "rw,nosuid,relatime" */
    char *fstype;
    char *source;
    char *super_options; /* per-superblock options */
};

struct mnt_table {
    struct mnt_entry *entries; /* owned, n entries, in file order */
    size_t n;
    size_t skipped; /* malformed lines that were ignored */
};

/* Parse mountinfo text of len bytes (need not be NUL-terminated). Malformed lines are counted
 * in skipped, never fatal. ret is written on success; release it with mnt_table_release(). */
int mnt_table_parse(const char *text, size_t len, struct mnt_table *ret);
/* Read and parse a mountinfo file; path NULL means /proc/self/mountinfo. */
int mnt_table_load(const char *path, struct mnt_table *ret);
void mnt_table_release(struct mnt_table *t);

/* The topmost entry whose mount point is exactly path (the last one in file order), or NULL.
 * Borrowed from t. */
const struct mnt_entry *mnt_table_find(const struct mnt_table *t, const char *path);

/*
 * Whether path (not following a final symlink) is the root of a mount: 1 yes, 0 no, -errno
 * (-ENOENT when it does not exist). Bind mounts of the same filesystem are seen.
 */
int mnt_is_mountpoint(const char *path);

/*
 * Turn CSI mount flags into MS_* bits for a bind mount. Accepted: ro, rw, bind, defaults,
 * noexec/exec, nosuid/suid, nodev/dev, noatime/atime, nodiratime/diratime, relatime,
 * strictatime, sync/async, dirsync; later flags win ("ro","rw" is rw). Anything else, data
 * options ("a=b", "a,b") included, is -EINVAL naming the flag. MS_BIND is never in the result.
 */
int mnt_flags_parse(const char *const *flags, size_t n, unsigned long *ret_flags);

/*
 * How a message names mount flag number index: `mount flag 2 ("password")`, with only the
 * option's name (what comes before '=' or ','), and only when that name is 1..32 characters of
 * [A-Za-z0-9_.-]; else `mount flag 2`. A flag's value may be a secret (password=...): messages
 * and logs never show it. Returns buf (size cap).
 */
const char *mnt_flag_describe(const char *flag, size_t index, char *buf, size_t cap);

/*
 * Bind-mount src onto dst (non-recursive), then, when flags or readonly ask for it, remount the
 * bind with MS_REMOUNT|MS_BIND|flags (and MS_RDONLY): Linux ignores those flags on the first
 * step. The nosuid/nodev/noexec flags of the mount src lives on are kept, as the kernel
 * requires inside a user namespace. On a failed second step the bind is undone.
 */
int mnt_bind(const char *src, const char *dst, unsigned long flags, bool readonly);

/*
 * Whether the topmost mount at path shows the directory src: the mount's root is src on src's
 * filesystem (a bind of src, or a bind of such a bind). Judged from mountinfo, so that it holds
 * also when src was removed after the mount ("<root>//deleted"); src must then be given in
 * canonical form. 1 yes, 0 path is a mount of something else, -ENOENT path is not a mount point
 * or does not exist, other -errno.
 */
int mnt_shows_dir(const char *path, const char *src);

/* Unmount path (UMOUNT_NOFOLLOW): 1 when a mount was removed, 0 when path is not a mount point
 * or does not exist, -errno otherwise. Only the topmost mount is removed. */
int mnt_unmount(const char *path);

/*
 * Whether the mount at path carries what mnt_bind(src, path, flags, readonly) would have given
 * it: the same read-only state, and nosuid/nodev/noexec exactly as requested (or inherited from
 * src; src NULL: a mount of a device, nothing inherited), noatime/nodiratime when requested.
 * Used to tell "already done" from "done differently".
 */
bool mnt_flags_match(const char *path, const char *src, unsigned long flags, bool readonly);

#endif
