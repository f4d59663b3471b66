/*
 * File-system helpers for backends: atomic writes, directory fsync, a mkdir -p that stays
 * below a root, tree removal, copy and usage walks that never follow symlinks and never cross
 * a mount point, and a small SHA-256 for hashed ids.
 *
 * Every function returns >= 0 or a negative errno and, on a failure worth explaining, sets
 * be_error(). Paths are borrowed. No function keeps state; all are thread-safe.
 *
 * Tree walks hold one file descriptor per directory level and stop at FSU_MAX_DEPTH levels
 * (-ELOOP): a deeper tree cannot be removed, copied or measured by a backend.
 */
#ifndef ORDINAL_FSUTIL_H
#define ORDINAL_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FSU_MAX_DEPTH 512
#define FSU_TMP_SUFFIX ".tmp" /* suffix of the temporary files of fsu_write_atomic() */

/*
 * Write len bytes to path atomically: a temporary file "<path>.XXXXXX.tmp" in the same
 * directory (O_CLOEXEC, mode), fsync, rename over path, fsync of the directory. After a crash
 * path holds either the old or the new content; a leftover temporary may remain.
 */
int fsu_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Read a whole regular file of at most max bytes (not following a final symlink) into a
 * malloc'd NUL-terminated buffer, owned by the caller. -EFBIG when larger than max. */
int fsu_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len);

/* fsync the directory at path. */
int fsu_fsync_dir(const char *path);

/*
 * Create root/rel and every missing directory between (mode, umask applied), never following a
 * symlink below root: a component that exists as anything but a directory is -ENOTDIR. rel is
 * relative, without "", "." or ".." components (-EINVAL). Existing directories are fine.
 * The parent of every directory created is fsynced.
 */
int fsu_mkdir_below(const char *root, const char *rel, mode_t mode);

/*
 * Remove path and everything below it. A symlink is removed, never followed. A directory on
 * another mount than path itself (another st_dev or mount id, which also catches bind mounts of
 * the same filesystem) stops the removal with -EBUSY before anything below it is touched.
 * A missing path is 0.
 */
int fsu_rm_tree(const char *path);

/*
 * Copy the tree at src (a directory) to dst, which must not exist (its parent must): directories,
 * regular files with content, symlinks as symlinks, FIFOs and sockets as new empty nodes; modes,
 * owners and modification times kept. Device nodes are refused with -ENOTSUP and a directory
 * on another mount with -EBUSY. Hard links become separate files; extended attributes and ACLs
 * are not copied. Every file and directory written is fsynced. On failure dst may be partly
 * written: the caller removes it.
 */
int fsu_copy_tree(const char *src, const char *dst);

/* Disk usage of the tree at path (st_blocks * 512 summed, and the number of inodes including
 * path itself), not following symlinks and not descending into other mounts. */
int fsu_usage(const char *path, int64_t *ret_bytes, int64_t *ret_inodes);

/* SHA-256 (FIPS 180-4). */
struct fsu_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
};

void fsu_sha256_init(struct fsu_sha256 *s);
void fsu_sha256_update(struct fsu_sha256 *s, const void *data, size_t len);
void fsu_sha256_final(struct fsu_sha256 *s, uint8_t ret_digest[32]);
/* The lower-case hex digest of data into ret_hex (65 bytes, NUL-terminated). */
void fsu_sha256_hex(const void *data, size_t len, char ret_hex[65]);

/* n random bytes as 2n lower-case hex characters plus NUL into ret (2n+1 bytes). */
int fsu_random_hex(char *ret, size_t n);

#endif
