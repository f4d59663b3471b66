/*
 * File-system helpers of fsutil.h.
 *
 * Tree walks are descriptor-based (openat, fstatat, unlinkat, fdopendir) and never follow a
 * symlink: every directory is opened with O_NOFOLLOW and checked, after opening, to be the
 * inode that was examined, so that a directory swapped for a symlink between the two steps is
 * caught. "Another mount" is decided with statx(): a different st_dev, a different mount id, or
 * the STATX_ATTR_MOUNT_ROOT attribute (which also catches a bind mount of the same filesystem).
 */
#include "fsutil.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <dirent.h>
#include <unistd.h>

static void closedirp_(DIR **d)
{
    if (*d)
        closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp_)

/* The mount a walk started on: a directory elsewhere is another mount. */
struct walk_root {
    dev_t dev;
    uint64_t mnt_id;
    bool has_mnt_id;
};

static int xstatx(int dfd, const char *name, struct statx *ret)
{
    if (statx(dfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS | STATX_MNT_ID,
              ret) < 0)
        return -errno;
    return 0;
}

static dev_t stx_dev(const struct statx *s)
{
    return makedev(s->stx_dev_major, s->stx_dev_minor);
}

static bool stx_is_mount_root(const struct statx *s)
{
    return (s->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
           (s->stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static void walk_root_init(struct walk_root *w, const struct statx *s)
{
    w->dev = stx_dev(s);
    w->has_mnt_id = (s->stx_mask & STATX_MNT_ID) != 0;
    w->mnt_id = s->stx_mnt_id;
}

static bool on_other_mount(const struct walk_root *w, const struct statx *s)
{
    if (stx_dev(s) != w->dev || stx_is_mount_root(s))
        return true;
    return w->has_mnt_id && (s->stx_mask & STATX_MNT_ID) && s->stx_mnt_id != w->mnt_id;
}

/* Open the directory name below dfd without following a symlink and check that it is the
 * inode s describes. Returns the descriptor or -errno. */
static int open_dir_at(int dfd, const char *name, const struct statx *s)
{
    struct stat st;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    if (st.st_ino != s->stx_ino || st.st_dev != stx_dev(s)) {
        close(fd);
        return -EAGAIN; /* replaced under us */
    }
    return fd;
}

static bool is_dot(const char *n)
{
    return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

/* The directory part of path into buf (cap bytes). */
static int dir_of(const char *path, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (!slash)
        return snprintf(buf, cap, ".") < (int)cap ? 0 : -ENAMETOOLONG;
    n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= cap)
        return -ENAMETOOLONG;
    memcpy(buf, path, n);
    buf[n] = '\0';
    return 0;
}

int fsu_fsync_dir(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return be_error(-errno, "cannot open directory %s: %s", path, strerror(errno));
    if (fsync(fd) < 0)
        return be_error(-errno, "cannot fsync directory %s: %s", path, strerror(errno));
    return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fsu_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int fd, r;

    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX%s", path, FSU_TMP_SUFFIX) >= (int)sizeof(tmp))
        return be_error(-ENAMETOOLONG, "path too long: %s", path);
    r = dir_of(path, dir, sizeof(dir));
    if (r < 0)
        return be_error(r, "path too long: %s", path);
    fd = mkostemps(tmp, (int)strlen(FSU_TMP_SUFFIX), O_CLOEXEC);
    if (fd < 0)
        return be_error(-errno, "cannot create a temporary file beside %s: %s", path,
                        strerror(errno));
    r = fchmod(fd, mode) < 0 ? -errno : 0;
    if (r == 0)
        r = write_all(fd, data, len);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return be_error(r, "cannot write %s: %s", path, strerror(-r));
    }
    return fsu_fsync_dir(dir);
}

int fsu_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len)
{
    /* O_NONBLOCK: a FIFO in place of the file must not hang the reader. */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    _cleanup_free_ char *buf = NULL;
    struct stat st;
    size_t len = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((uint64_t)st.st_size > max)
        return -EFBIG;
    buf = malloc(max + 2);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            return -EFBIG;
    }
    buf[len] = '\0';
    *ret_data = TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

static bool bad_component(const char *c, size_t n)
{
    return n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.');
}

int fsu_mkdir_below(const char *root, const char *rel, mode_t mode)
{
    _cleanup_close_ int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *p = rel;

    if (fd < 0)
        return be_error(-errno, "cannot open %s: %s", root, strerror(errno));
    if (rel[0] == '/')
        return be_error(-EINVAL, "path %s is not relative", rel);
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char comp[NAME_MAX + 1];
        bool created = false;
        int nfd;

        if (bad_component(p, n))
            return be_error(-EINVAL, "path %s has an empty, '.' or '..' component", rel);
        if (n > NAME_MAX)
            return be_error(-ENAMETOOLONG, "path %s has a component too long", rel);
        memcpy(comp, p, n);
        comp[n] = '\0';
        if (mkdirat(fd, comp, mode) == 0)
            created = true;
        else if (errno != EEXIST)
            return be_error(-errno, "cannot create %s below %s: %s", rel, root, strerror(errno));
        nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            int r = (errno == ELOOP || errno == ENOTDIR) ? -ENOTDIR : -errno;
            return be_error(r, "%s in %s below %s is not a directory", comp, rel, root);
        }
        if (created && fsync(fd) < 0) {
            close(nfd);
            return be_error(-errno, "cannot fsync below %s: %s", root, strerror(errno));
        }
        close(fd);
        fd = nfd;
        p += n;
        if (*p == '/' && *++p == '\0')
            return be_error(-EINVAL, "path %s has an empty component", rel);
    }
    return 0;
}

/* ---- removal ---- */

/* Remove everything inside the directory fd (owned). */
static int rm_contents(int fd, const struct walk_root *w, int depth)
{
    _cleanup_closedir_ DIR *d = NULL;

    if (depth > FSU_MAX_DEPTH) {
        close(fd);
        return be_error(-ELOOP, "directory tree deeper than %d levels", FSU_MAX_DEPTH);
    }
    d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    /* Some filesystems skip entries when a directory changes under readdir: repeat until a
     * pass finds nothing. The bound only guards against a writer racing us forever. */
    for (int pass = 0; pass < 8; pass++) {
        bool any = false;
        struct dirent *de;

        rewinddir(d);
        for (;;) {
            struct statx s;
            int r;

            errno = 0;
            de = readdir(d);
            if (!de) {
                if (errno)
                    return be_error(-errno, "cannot read a directory: %s", strerror(errno));
                break;
            }
            if (is_dot(de->d_name))
                continue;
            any = true;
            r = xstatx(dirfd(d), de->d_name, &s);
            if (r == -ENOENT)
                continue;
            if (r < 0)
                return be_error(r, "cannot stat %s: %s", de->d_name, strerror(-r));
            if (S_ISDIR(s.stx_mode)) {
                int cfd;

                if (on_other_mount(w, &s))
                    return be_error(-EBUSY, "refusing to remove across a mount point at %s",
                                    de->d_name);
                cfd = open_dir_at(dirfd(d), de->d_name, &s);
                if (cfd < 0)
                    return be_error(cfd, "cannot open directory %s: %s", de->d_name,
                                    strerror(-cfd));
                r = rm_contents(cfd, w, depth + 1);
                if (r < 0)
                    return r;
                if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                    return be_error(-errno, "cannot remove directory %s: %s", de->d_name,
                                    strerror(errno));
            } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
                return be_error(-errno, "cannot remove %s: %s", de->d_name, strerror(errno));
            }
        }
        if (!any)
            return 0;
    }
    return 0; /* the rmdir of the caller reports what is left */
}

int fsu_rm_tree(const char *path)
{
    struct walk_root w;
    struct statx s;
    int r, fd;

    r = xstatx(AT_FDCWD, path, &s);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return be_error(r, "cannot stat %s: %s", path, strerror(-r));
    if (!S_ISDIR(s.stx_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return be_error(-errno, "cannot remove %s: %s", path, strerror(errno));
        return 0;
    }
    if (stx_is_mount_root(&s))
        return be_error(-EBUSY, "refusing to remove %s: it is a mount point", path);
    walk_root_init(&w, &s);
    fd = open_dir_at(AT_FDCWD, path, &s);
    if (fd < 0)
        return be_error(fd, "cannot open %s: %s", path, strerror(-fd));
    r = rm_contents(fd, &w, 1);
    if (r < 0)
        return r;
    if (rmdir(path) < 0 && errno != ENOENT)
        return be_error(-errno, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* ---- copy ---- */

static int copy_data(int in, int out)
{
    char buf[65536];
    bool plain = false;

    for (;;) {
        ssize_t n;

        if (!plain) {
            n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                          errno == EOPNOTSUPP || errno == EIO)) {
                /* EIO: some filesystems (FUSE, overlay) answer it for an unsupported call;
                 * the plain loop below reports a real I/O error again. */
                if (lseek(in, 0, SEEK_SET) < 0 || lseek(out, 0, SEEK_SET) < 0 ||
                    ftruncate(out, 0) < 0)
                    return -errno;
                plain = true;
                continue;
            }
        } else {
            n = read(in, buf, sizeof(buf));
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return 0;
        if (plain) {
            int r = write_all(out, buf, (size_t)n);
            if (r < 0)
                return r;
        }
    }
}

static void stx_times(const struct statx *s, struct timespec t[2])
{
    t[0].tv_sec = s->stx_atime.tv_sec;
    t[0].tv_nsec = s->stx_atime.tv_nsec;
    t[1].tv_sec = s->stx_mtime.tv_sec;
    t[1].tv_nsec = s->stx_mtime.tv_nsec;
}

/* Owner, then mode (chown clears set-id bits), then times, then fsync. */
static int finish_fd(int fd, const struct statx *s)
{
    struct timespec t[2];

    stx_times(s, t);
    if (fchown(fd, s->stx_uid, s->stx_gid) < 0 || fchmod(fd, s->stx_mode & 07777) < 0 ||
        futimens(fd, t) < 0 || fsync(fd) < 0)
        return -errno;
    return 0;
}

static int copy_file(int sdfd, int ddfd, const char *name, const struct statx *s)
{
    _cleanup_close_ int in = -1, out = -1;
    struct stat st;
    int r;

    /* O_NONBLOCK: should a FIFO replace the file after the statx, open must not hang. */
    in = openat(sdfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (in < 0)
        return be_error(-errno, "cannot open %s: %s", name, strerror(errno));
    if (fstat(in, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_ino != s->stx_ino)
        return be_error(-EAGAIN, "%s changed during the copy", name);
    out = openat(ddfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return be_error(-errno, "cannot create %s: %s", name, strerror(errno));
    r = copy_data(in, out);
    if (r == 0)
        r = finish_fd(out, s);
    if (r < 0)
        return be_error(r, "cannot copy %s: %s", name, strerror(-r));
    return 0;
}

/* Owner, mode (not for symlinks) and times of a node made by name, without following it. */
static int finish_at(int ddfd, const char *name, const struct statx *s, bool is_link)
{
    struct timespec t[2];

    stx_times(s, t);
    if (fchownat(ddfd, name, s->stx_uid, s->stx_gid, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    /* The node was just made by us in a directory we own, so fchmodat cannot be redirected. */
    if (!is_link && fchmodat(ddfd, name, s->stx_mode & 07777, 0) < 0)
        return -errno;
    if (utimensat(ddfd, name, t, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return 0;
}

static int copy_symlink(int sdfd, int ddfd, const char *name, const struct statx *s)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(sdfd, name, target, sizeof(target));
    int r;

    if (n < 0)
        return be_error(-errno, "cannot read symlink %s: %s", name, strerror(errno));
    if ((size_t)n >= sizeof(target))
        return be_error(-ENAMETOOLONG, "symlink %s is too long", name);
    target[n] = '\0';
    if (symlinkat(target, ddfd, name) < 0)
        return be_error(-errno, "cannot create symlink %s: %s", name, strerror(errno));
    r = finish_at(ddfd, name, s, true);
    if (r < 0)
        return be_error(r, "cannot set owner or times of symlink %s: %s", name, strerror(-r));
    return 0;
}

static int copy_node(int ddfd, const char *name, const struct statx *s)
{
    int r;

    if (mknodat(ddfd, name, (s->stx_mode & S_IFMT) | 0600, 0) < 0)
        return be_error(-errno, "cannot create %s: %s", name, strerror(errno));
    r = finish_at(ddfd, name, s, false);
    if (r < 0)
        return be_error(r, "cannot set owner, mode or times of %s: %s", name, strerror(-r));
    return 0;
}

/* Copy the contents of directory sfd (owned) into ddfd (borrowed). */
static int copy_contents(int sfd, int ddfd, const struct walk_root *w, int depth)
{
    _cleanup_closedir_ DIR *d = NULL;

    if (depth > FSU_MAX_DEPTH) {
        close(sfd);
        return be_error(-ELOOP, "directory tree deeper than %d levels", FSU_MAX_DEPTH);
    }
    d = fdopendir(sfd);
    if (!d) {
        int r = -errno;
        close(sfd);
        return r;
    }
    for (;;) {
        struct dirent *de;
        struct statx s;
        int r;

        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                return be_error(-errno, "cannot read a directory: %s", strerror(errno));
            return 0;
        }
        if (is_dot(de->d_name))
            continue;
        r = xstatx(dirfd(d), de->d_name, &s);
        if (r == -ENOENT)
            continue; /* removed while we copy: a copy of a live tree is not a snapshot */
        if (r < 0)
            return be_error(r, "cannot stat %s: %s", de->d_name, strerror(-r));
        switch (s.stx_mode & S_IFMT) {
        case S_IFDIR: {
            _cleanup_close_ int cdfd = -1;
            int csfd;

            if (on_other_mount(w, &s))
                return be_error(-EBUSY, "refusing to copy across a mount point at %s", de->d_name);
            if (mkdirat(ddfd, de->d_name, 0700) < 0)
                return be_error(-errno, "cannot create directory %s: %s", de->d_name,
                                strerror(errno));
            cdfd = openat(ddfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cdfd < 0)
                return be_error(-errno, "cannot open %s: %s", de->d_name, strerror(errno));
            csfd = open_dir_at(dirfd(d), de->d_name, &s);
            if (csfd < 0)
                return be_error(csfd, "cannot open %s: %s", de->d_name, strerror(-csfd));
            r = copy_contents(csfd, cdfd, w, depth + 1);
            if (r < 0)
                return r;
            r = finish_fd(cdfd, &s);
            if (r < 0)
                return be_error(r, "cannot finish directory %s: %s", de->d_name, strerror(-r));
            break;
        }
        case S_IFREG:
            r = copy_file(dirfd(d), ddfd, de->d_name, &s);
            break;
        case S_IFLNK:
            r = copy_symlink(dirfd(d), ddfd, de->d_name, &s);
            break;
        case S_IFIFO:
        case S_IFSOCK:
            r = copy_node(ddfd, de->d_name, &s);
            break;
        default:
            return be_error(-ENOTSUP, "refusing to copy device node %s", de->d_name);
        }
        if (r < 0)
            return r;
    }
}

int fsu_copy_tree(const char *src, const char *dst)
{
    _cleanup_close_ int dfd = -1;
    char parent[PATH_MAX];
    struct walk_root w;
    struct statx s;
    int r, sfd;

    r = xstatx(AT_FDCWD, src, &s);
    if (r < 0)
        return be_error(r, "cannot stat %s: %s", src, strerror(-r));
    if (!S_ISDIR(s.stx_mode))
        return be_error(-ENOTDIR, "%s is not a directory", src);
    r = dir_of(dst, parent, sizeof(parent));
    if (r < 0)
        return be_error(r, "path too long: %s", dst);
    walk_root_init(&w, &s);
    if (mkdir(dst, 0700) < 0)
        return be_error(-errno, "cannot create %s: %s", dst, strerror(errno));
    dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return be_error(-errno, "cannot open %s: %s", dst, strerror(errno));
    sfd = open_dir_at(AT_FDCWD, src, &s);
    if (sfd < 0)
        return be_error(sfd, "cannot open %s: %s", src, strerror(-sfd));
    r = copy_contents(sfd, dfd, &w, 1);
    if (r < 0)
        return r;
    r = finish_fd(dfd, &s);
    if (r < 0)
        return be_error(r, "cannot finish %s: %s", dst, strerror(-r));
    return fsu_fsync_dir(parent);
}

/* ---- usage ---- */

static int usage_contents(int fd, const struct walk_root *w, int depth, int64_t *bytes,
                          int64_t *inodes)
{
    _cleanup_closedir_ DIR *d = NULL;

    if (depth > FSU_MAX_DEPTH) {
        close(fd);
        return be_error(-ELOOP, "directory tree deeper than %d levels", FSU_MAX_DEPTH);
    }
    d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    for (;;) {
        struct dirent *de;
        struct statx s;
        int r;

        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                return be_error(-errno, "cannot read a directory: %s", strerror(errno));
            return 0;
        }
        if (is_dot(de->d_name))
            continue;
        r = xstatx(dirfd(d), de->d_name, &s);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return be_error(r, "cannot stat %s: %s", de->d_name, strerror(-r));
        *bytes += (int64_t)s.stx_blocks * 512;
        *inodes += 1;
        if (S_ISDIR(s.stx_mode) && !on_other_mount(w, &s)) {
            int cfd = open_dir_at(dirfd(d), de->d_name, &s);
            if (cfd == -ENOENT || cfd == -EAGAIN)
                continue;
            if (cfd < 0)
                return be_error(cfd, "cannot open %s: %s", de->d_name, strerror(-cfd));
            r = usage_contents(cfd, w, depth + 1, bytes, inodes);
            if (r < 0)
                return r;
        }
    }
}

int fsu_usage(const char *path, int64_t *ret_bytes, int64_t *ret_inodes)
{
    struct walk_root w;
    struct statx s;
    int64_t bytes, inodes = 1;
    int r, fd;

    r = xstatx(AT_FDCWD, path, &s);
    if (r < 0)
        return be_error(r, "cannot stat %s: %s", path, strerror(-r));
    bytes = (int64_t)s.stx_blocks * 512;
    if (S_ISDIR(s.stx_mode)) {
        walk_root_init(&w, &s);
        fd = open_dir_at(AT_FDCWD, path, &s);
        if (fd < 0)
            return be_error(fd, "cannot open %s: %s", path, strerror(-fd));
        r = usage_contents(fd, &w, 1, &bytes, &inodes);
        if (r < 0)
            return r;
    }
    *ret_bytes = bytes;
    *ret_inodes = inodes;
    return 0;
}

/* ---- random ---- */

int fsu_random_hex(char *ret, size_t n)
{
    unsigned char b[32];
    size_t got = 0;

    if (n > sizeof(b))
        return -EINVAL;
    while (got < n) {
        ssize_t k = getrandom(b + got, n - got, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return be_error(-errno, "getrandom: %s", strerror(errno));
        }
        got += (size_t)k;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(ret + 2 * i, 3, "%02x", b[i]);
    ret[2 * n] = '\0';
    return 0;
}

/* ---- SHA-256 ---- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(struct fsu_sha256 *s, const uint8_t *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + s1 + ch + sha_k[i] + w[i];
        uint32_t s0 = ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = s0 + maj;

        h = g, g = f, f = e, e = d + t1;
        d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

void fsu_sha256_init(struct fsu_sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

    memcpy(s->h, h0, sizeof(h0));
    s->len = 0;
    s->nbuf = 0;
}

void fsu_sha256_update(struct fsu_sha256 *s, const void *data, size_t len)
{
    const uint8_t *p = data;

    s->len += len;
    while (len > 0) {
        size_t n = 64 - s->nbuf < len ? 64 - s->nbuf : len;

        memcpy(s->buf + s->nbuf, p, n);
        s->nbuf += n;
        p += n;
        len -= n;
        if (s->nbuf == 64) {
            sha_block(s, s->buf);
            s->nbuf = 0;
        }
    }
}

void fsu_sha256_final(struct fsu_sha256 *s, uint8_t ret_digest[32])
{
    uint64_t bits = s->len * 8;

    s->buf[s->nbuf++] = 0x80;
    if (s->nbuf > 56) {
        memset(s->buf + s->nbuf, 0, 64 - s->nbuf);
        sha_block(s, s->buf);
        s->nbuf = 0;
    }
    memset(s->buf + s->nbuf, 0, 56 - s->nbuf);
    for (int i = 0; i < 8; i++)
        s->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_block(s, s->buf);
    for (int i = 0; i < 8; i++) {
        ret_digest[4 * i] = (uint8_t)(s->h[i] >> 24);
        ret_digest[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        ret_digest[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        ret_digest[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void fsu_sha256_hex(const void *data, size_t len, char ret_hex[65])
{
    static const char hex[] = "0123456789abcdef";
    struct fsu_sha256 s;
    uint8_t d[32];

    fsu_sha256_init(&s);
    fsu_sha256_update(&s, data, len);
    fsu_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) {
        ret_hex[2 * i] = hex[d[i] >> 4];
        ret_hex[2 * i + 1] = hex[d[i] & 15];
    }
    ret_hex[64] = '\0';
}
