/*
 * Block devices and their filesystems (see blockfs.h).
 */
#include "blockfs.h"

#include "exec.h"
#include "mount.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define BFS_TIMEOUT_MS 300000 /* mkfs of a large device can take a while */
#define BFS_PROBE_BYTES 4096
#define BFS_FLAG_TOKENS 64
#define BFS_UNMOUNT_MAX 8
#define BFS_OPT_ARGS 32

/* The last non-blank line of text: e2fsprogs and xfsprogs print a banner first and the
 * reason last. */
static const char *last_line(const char *text)
{
    const char *best = text;

    for (const char *p = text; *p; p++)
        if (p[0] == '\n' && p[1] && p[1] != '\n' && strspn(p + 1, " \t\r\n") != strlen(p + 1))
            best = p + 1;
    return best;
}

/* Run tool (looked up in the system directories) with args; 0 when it exited 0. The exit
 * code is put in *ret_exit when not NULL (then a non-zero exit is not an error), and stdout
 * in *ret_out (owned by the caller) when not NULL. */
static int run_tool(const char *tool, const char *const *args, int *ret_exit, char **ret_out)
{
    char path[256], why[200];
    const char *argv[BFS_OPT_ARGS + 8];
    struct exec_opts o = {.timeout_ms = BFS_TIMEOUT_MS, .out_max = 1u << 20};
    struct exec_result res;
    size_t n = 0;
    int r;

    r = exec_find(tool, path, sizeof(path));
    if (r < 0)
        return be_error(r, "%s is not installed", tool);
    argv[n++] = path;
    for (size_t i = 0; args[i]; i++) {
        if (n + 1 >= ARRAY_SIZE(argv))
            return be_error(-E2BIG, "%s: too many arguments", tool);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    r = exec_run(argv, &o, &res);
    if (r == -ETIMEDOUT) {
        exec_result_release(&res);
        return be_error(r, "%s did not finish within %d s", tool, BFS_TIMEOUT_MS / 1000);
    }
    if (r < 0)
        return be_error(r, "cannot run %s: %s", tool, strerror(-r));
    if (ret_exit) {
        *ret_exit = res.exit_code;
    } else if (res.exit_code != 0) {
        exec_reason(last_line(res.err[0] ? res.err : res.out), why, sizeof(why));
        be_error(-EIO, "%s failed (exit %d): %s", tool, res.exit_code, why);
        exec_result_release(&res);
        return -EIO;
    }
    if (ret_out)
        *ret_out = TAKE_PTR(res.out);
    exec_result_release(&res);
    return 0;
}

static int block_rdev(const char *dev, dev_t *ret)
{
    struct stat st;

    if (!dev || dev[0] != '/')
        return be_error(-EINVAL, "device path must be absolute");
    if (stat(dev, &st) < 0)
        return be_error(-errno, "device %s: %s", dev, strerror(errno));
    if (!S_ISBLK(st.st_mode))
        return be_error(-ENOTBLK, "%s is not a block device", dev);
    *ret = st.st_rdev;
    return 0;
}

/* ---- probe, mkfs ---- */

/* The value of KEY= in blkid's export output, or "". */
static void export_value(const char *out, const char *key, char *ret, size_t cap)
{
    size_t kl = strlen(key);

    ret[0] = '\0';
    for (const char *p = out; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);

        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = n - kl - 1;
            if (vl >= cap)
                vl = cap - 1;
            for (size_t i = 0; i < vl; i++) {
                char c = p[kl + 1 + i];
                ret[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
            }
            ret[vl] = '\0';
            return;
        }
        p = e ? e + 1 : NULL;
    }
}

int bfs_probe(const char *dev, char *ret_type, size_t cap)
{
    _cleanup_free_ char *out = NULL;
    _cleanup_close_ int fd = -1;
    unsigned char buf[BFS_PROBE_BYTES];
    char type[BFS_TYPE_MAX];
    size_t got = 0;
    dev_t rdev;
    int r, code;

    r = block_rdev(dev, &rdev);
    if (r < 0)
        return r;
    /* blkid -p: low-level probe, no cache; exit 2 means nothing was found */
    const char *blkid[] = {"-p", "-o", "export", dev, NULL};
    r = run_tool("blkid", blkid, &code, &out);
    if (r < 0)
        return r;
    if (code == 0) {
        export_value(out, "TYPE", type, sizeof(type));
        if (!type[0])
            export_value(out, "PTTYPE", type, sizeof(type));
        snprintf(ret_type, cap, "%s", type[0] ? type : "signature");
        return 1;
    }
    if (code != 2)
        return be_error(-EIO, "blkid -p %s failed (exit %d)", dev, code);
    free(out);
    out = NULL;
    /* wipefs -n lists every signature it knows, and nothing on a blank device */
    const char *wipefs[] = {"--no-act", dev, NULL};
    r = run_tool("wipefs", wipefs, NULL, &out);
    if (r < 0)
        return r;
    if (out && out[strspn(out, " \t\n")]) {
        snprintf(ret_type, cap, "signature");
        return 1;
    }
    fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return be_error(-errno, "cannot open %s: %s", dev, strerror(errno));
    while (got < sizeof(buf)) {
        ssize_t n = pread(fd, buf + got, sizeof(buf) - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return be_error(-errno, "cannot read %s: %s", dev, strerror(errno));
        if (n == 0)
            break;
        got += (size_t)n;
    }
    for (size_t i = 0; i < got; i++)
        if (buf[i]) {
            snprintf(ret_type, cap, "data");
            return 1;
        }
    return 0;
}

static bool opt_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("_=.,:/+-^", c) != NULL;
}

int bfs_mkfs(const char *dev, const char *fstype, const char *options)
{
    _cleanup_free_ char *copy = NULL;
    const char *args[BFS_OPT_ARGS + 4];
    char tool[32];
    size_t n = 0;
    dev_t rdev;
    int r;

    r = block_rdev(dev, &rdev);
    if (r < 0)
        return r;
    if (!fstype || (strcmp(fstype, "ext4") != 0 && strcmp(fstype, "xfs") != 0))
        return be_error(-EINVAL, "filesystem type \"%.20s\" is not supported: ext4 or xfs",
                        fstype ? fstype : "");
    snprintf(tool, sizeof(tool), "mkfs.%s", fstype);
    args[n++] = "-q";
    copy = strdup(options ? options : "");
    if (!copy)
        return -ENOMEM;
    for (char *save = NULL, *tok = strtok_r(copy, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save)) {
        for (const char *c = tok; *c; c++)
            if (!opt_char(*c))
                return be_error(-EINVAL, "mkfs option \"%.40s\": character '%c' not allowed", tok,
                                *c);
        /* no forcing over an existing filesystem, whatever the options say */
        if (strcmp(tok, "-f") == 0 || strcmp(tok, "-F") == 0 || strcmp(tok, "--force") == 0)
            return be_error(-EINVAL, "mkfs option %s is not allowed: Ordinal never reformats", tok);
        if (n >= BFS_OPT_ARGS)
            return be_error(-E2BIG, "more than %d mkfs options", BFS_OPT_ARGS - 1);
        args[n++] = tok;
    }
    args[n++] = dev;
    args[n] = NULL;
    return run_tool(tool, args, NULL, NULL);
}

int bfs_format_if_blank(const char *dev, const char *fstype, const char *options)
{
    char type[BFS_TYPE_MAX];
    int r = bfs_probe(dev, type, sizeof(type));

    if (r < 0)
        return r;
    if (r > 0) {
        if (fstype && strcmp(type, fstype) == 0)
            return 0;
        return be_error(-EMEDIUMTYPE,
                        "%s holds %s, not %s: refusing to format a device that is not blank", dev,
                        type, fstype ? fstype : "?");
    }
    r = bfs_mkfs(dev, fstype, options);
    if (r < 0)
        return r;
    /* what mkfs made must now be seen */
    r = bfs_probe(dev, type, sizeof(type));
    if (r < 0)
        return r;
    if (r == 0 || strcmp(type, fstype) != 0)
        return be_error(-EIO, "mkfs.%s on %s left no %s filesystem", fstype, dev, fstype);
    return 0;
}

/* ---- mounts ---- */

/* Split CSI mount flags into MS_* bits (mnt_flags_parse) and filesystem data options. */
static int split_flags(const char *const *flags, size_t n, unsigned long *ret_flags, char *data,
                       size_t cap)
{
    const char *known[BFS_FLAG_TOKENS];
    char tokbuf[BFS_DATA_MAX + 1];
    size_t nk = 0, dl = 0, tl = 0;
    unsigned long dummy;
    char what[64];

    data[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *f = flags[i] ? flags[i] : "";
        size_t fl = strlen(f);

        if (tl + fl + 1 > sizeof(tokbuf))
            return be_error(-EINVAL, "mount flags longer than %d bytes", BFS_DATA_MAX);
        memcpy(tokbuf + tl, f, fl + 1);
        for (char *save = NULL, *tok = strtok_r(tokbuf + tl, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            const char *one[1] = {tok};

            if (mnt_flags_parse(one, 1, &dummy) == 0) {
                if (nk >= BFS_FLAG_TOKENS)
                    return be_error(-EINVAL, "more than %d mount flags", BFS_FLAG_TOKENS);
                known[nk++] = tok;
                continue;
            }
            for (const char *c = tok; *c; c++)
                if (!opt_char(*c) || *c == ',')
                    return be_error(-EINVAL, "%s is not valid",
                                    mnt_flag_describe(tok, i, what, sizeof(what)));
            if (dl + strlen(tok) + 2 > cap)
                return be_error(-EINVAL, "mount options longer than %zu bytes", cap - 1);
            dl += (size_t)snprintf(data + dl, cap - dl, "%s%s", dl ? "," : "", tok);
        }
        tl += fl + 1;
    }
    be_error_clear();
    return mnt_flags_parse(known, nk, ret_flags);
}

static bool has_opt(const char *opts, const char *want)
{
    size_t wl = strlen(want);

    for (const char *p = opts; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);

        if (n == wl && strncmp(p, want, wl) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* The topmost mount at path: 1 and its device/root/ro state, 0 none, -errno. */
static int mount_at(const char *path, dev_t *ret_dev, bool *ret_root, bool *ret_ro)
{
    char real[PATH_MAX];
    struct mnt_table t;
    const struct mnt_entry *e;
    int r;

    if (!realpath(path, real))
        return errno == ENOENT ? -ENOENT : be_error(-errno, "%s: %s", path, strerror(errno));
    r = mnt_table_load(NULL, &t);
    if (r < 0)
        return r;
    e = mnt_table_find(&t, real);
    if (e) {
        *ret_dev = makedev(e->major, e->minor);
        *ret_root = strcmp(e->root, "/") == 0;
        *ret_ro = has_opt(e->options, "ro");
    }
    mnt_table_release(&t);
    return e ? 1 : 0;
}

int bfs_is_mount_of(const char *path, const char *dev)
{
    dev_t rdev, mdev;
    bool root, ro;
    int r = block_rdev(dev, &rdev);

    if (r < 0)
        return r;
    r = mount_at(path, &mdev, &root, &ro);
    if (r <= 0)
        return r;
    return mdev == rdev && root ? 1 : 0;
}

/* The names of the comma-separated options in data (each up to its '='), comma-separated. */
static void option_names(const char *data, char *out, size_t cap)
{
    size_t o = 0;
    bool skip = false;

    for (const char *c = data; *c && o + 1 < cap; c++) {
        if (*c == ',')
            skip = false;
        else if (*c == '=')
            skip = true;
        if (!skip)
            out[o++] = *c;
    }
    out[o] = '\0';
}

int bfs_mount(const char *dev, const char *path, const char *fstype, const char *const *flags,
              size_t n_flags, bool ro)
{
    char data[BFS_DATA_MAX + 1];
    unsigned long msflags = 0;
    struct stat st;
    dev_t rdev, mdev;
    bool root, mro;
    int r;

    r = block_rdev(dev, &rdev);
    if (r < 0)
        return r;
    if (!fstype || (strcmp(fstype, "ext4") != 0 && strcmp(fstype, "xfs") != 0))
        return be_error(-EINVAL, "filesystem type \"%.20s\" is not supported",
                        fstype ? fstype : "");
    r = split_flags(flags, n_flags, &msflags, data, sizeof(data));
    if (r < 0)
        return r;
    ro = ro || (msflags & MS_RDONLY);
    msflags &= ~(unsigned long)MS_RDONLY;
    if (lstat(path, &st) < 0)
        return be_error(-errno, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return be_error(-ENOTDIR, "%s is not a directory", path);
    r = mount_at(path, &mdev, &root, &mro);
    if (r < 0)
        return r;
    if (r > 0) {
        if (mdev != rdev || !root)
            return be_error(-EEXIST, "%s holds another mount", path);
        if (mro != ro)
            return be_error(-EEXIST, "%s is already mounted %s", path,
                            mro ? "read-only" : "read-write");
        if (!mnt_flags_match(path, NULL, msflags, ro))
            return be_error(-EEXIST, "%s is already mounted with other mount flags", path);
        return 0;
    }
    /* The data options' values are never echoed (one of them may carry a secret): only their
     * names, so that a refused option can be found. */
    if (mount(dev, path, fstype, msflags | (ro ? MS_RDONLY : 0), data[0] ? data : NULL) < 0) {
        char names[BFS_DATA_MAX + 1];

        option_names(data, names, sizeof(names));
        return be_error(-errno, "mount %s on %s (%s%s%s): %s", dev, path, fstype,
                        data[0] ? ", with filesystem options " : "", names, strerror(errno));
    }
    return 0;
}

int bfs_is_block_of(const char *path, const char *dev)
{
    struct stat st;
    dev_t rdev;
    int r = block_rdev(dev, &rdev);

    if (r < 0)
        return r;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : be_error(-errno, "%s: %s", path, strerror(errno));
    return S_ISBLK(st.st_mode) && st.st_rdev == rdev ? 1 : 0;
}

int bfs_publish_block(const char *dev, const char *target, bool ro)
{
    struct stat st;
    dev_t rdev, mdev;
    bool created = false, root, mro;
    int r, fd;

    r = block_rdev(dev, &rdev);
    if (r < 0)
        return r;
    if (lstat(target, &st) < 0) {
        if (errno != ENOENT)
            return be_error(-errno, "%s: %s", target, strerror(errno));
        fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0)
            return be_error(errno == ENOENT ? -ENOENT : -errno, "cannot create %s: %s", target,
                            strerror(errno));
        close(fd);
        created = true;
    } else if (S_ISBLK(st.st_mode)) {
        if (st.st_rdev != rdev)
            return be_error(-EEXIST, "%s shows another device", target);
        r = mount_at(target, &mdev, &root, &mro);
        if (r < 0)
            return r;
        if (r > 0 && mro != ro)
            return be_error(-EEXIST, "%s is already published %s", target,
                            mro ? "read-only" : "read-write");
        return 0;
    } else if (!S_ISREG(st.st_mode)) {
        return be_error(-EEXIST, "%s exists and is not a file", target);
    }
    r = mnt_bind(dev, target, 0, ro);
    if (r < 0 && created)
        unlink(target);
    return r;
}

int bfs_publish_fs(const char *src, const char *target, const char *const *flags, size_t n_flags,
                   bool ro)
{
    unsigned long msflags = 0;
    struct stat ss, ts;
    bool created = false;
    int r;

    r = mnt_flags_parse(flags, n_flags, &msflags);
    if (r < 0)
        return r;
    ro = ro || (msflags & MS_RDONLY);
    msflags &= ~(unsigned long)MS_RDONLY;
    if (stat(src, &ss) < 0)
        return be_error(-errno, "%s: %s", src, strerror(errno));
    if (mkdir(target, 0750) == 0) {
        created = true;
    } else if (errno == ENOENT) {
        return be_error(-ENOENT, "the parent of %s does not exist", target);
    } else if (errno != EEXIST) {
        return be_error(-errno, "cannot create %s: %s", target, strerror(errno));
    } else if (lstat(target, &ts) < 0 || !S_ISDIR(ts.st_mode)) {
        return be_error(-EEXIST, "%s exists and is not a directory", target);
    }
    if (!created) {
        int mp = mnt_is_mountpoint(target);
        struct statvfs sv;

        if (mp < 0)
            return mp;
        if (mp > 0) {
            if (stat(target, &ts) < 0 || ts.st_dev != ss.st_dev || ts.st_ino != ss.st_ino)
                return be_error(-EEXIST, "%s holds another mount", target);
            if (statvfs(target, &sv) == 0 && !!(sv.f_flag & ST_RDONLY) != ro)
                return be_error(-EEXIST, "%s is already published %s", target,
                                ro ? "read-write" : "read-only");
            if (!mnt_flags_match(target, src, msflags, ro))
                return be_error(-EEXIST, "%s is already published with other mount flags", target);
            return 0;
        }
    }
    r = mnt_bind(src, target, msflags, ro);
    if (r < 0 && created)
        rmdir(target);
    return r;
}

int bfs_unmount(const char *path, bool remove)
{
    struct stat st;
    int i, r;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : be_error(-errno, "%s: %s", path, strerror(errno));
    for (i = 0; i < BFS_UNMOUNT_MAX; i++) {
        r = mnt_unmount(path);
        if (r < 0)
            return r;
        if (r == 0)
            break;
    }
    if (i == BFS_UNMOUNT_MAX)
        return be_error(-EBUSY, "more than %d mounts stacked on %s", BFS_UNMOUNT_MAX, path);
    if (!remove)
        return 0;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : be_error(-errno, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode) ? rmdir(path) : unlink(path))
        return errno == ENOENT ? 0
                               : be_error(-errno, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

int bfs_unmount_of(const char *path, const char *dev, bool remove)
{
    bool foreign = false;
    struct stat st;
    int i, r;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : be_error(-errno, "%s: %s", path, strerror(errno));
    for (i = 0; i < BFS_UNMOUNT_MAX; i++) {
        bool ours;

        r = mnt_is_mountpoint(path);
        if (r == -ENOENT)
            return 0;
        if (r < 0)
            return be_error(r, "cannot inspect %s: %s", path, strerror(-r));
        if (r == 0)
            break;
        ours = dev && (bfs_is_mount_of(path, dev) == 1 || bfs_is_block_of(path, dev) == 1);
        if (!ours) {
            if (i == 0)
                return be_error(-EBUSY, "%s holds a mount that is not %s%s: left untouched", path,
                                dev ? "this volume's" : "this volume's (its device node is ",
                                dev ? "" : "missing on this node)");
            foreign = true;
            break;
        }
        r = mnt_unmount(path);
        if (r < 0)
            return r;
        if (r == 0)
            break;
    }
    if (i == BFS_UNMOUNT_MAX)
        return be_error(-EBUSY, "more than %d mounts stacked on %s", BFS_UNMOUNT_MAX, path);
    if (!remove || foreign)
        return 0;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : be_error(-errno, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (rmdir(path) == 0 || errno == ENOENT)
            return 0;
        if (errno == ENOTEMPTY || errno == EEXIST)
            return be_error(-EBUSY, "%s is not empty: left untouched", path);
        return be_error(-errno, "cannot remove %s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode) || st.st_size != 0)
        return be_error(-EBUSY, "%s is not what publish made: left untouched", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return be_error(-errno, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* ---- grow, sizes ---- */

int bfs_grow(const char *dev, const char *mountpoint, const char *fstype)
{
    int r = bfs_is_mount_of(mountpoint, dev);

    if (r < 0)
        return r;
    if (r == 0)
        return be_error(-ENOENT, "%s is not a mount of %s", mountpoint, dev);
    if (fstype && strcmp(fstype, "ext4") == 0) {
        const char *args[] = {dev, NULL};
        return run_tool("resize2fs", args, NULL, NULL);
    }
    if (fstype && strcmp(fstype, "xfs") == 0) {
        const char *args[] = {mountpoint, NULL};
        return run_tool("xfs_growfs", args, NULL, NULL);
    }
    return be_error(-EINVAL, "cannot grow filesystem type \"%.20s\"", fstype ? fstype : "");
}

int bfs_device_size(const char *dev, int64_t *ret)
{
    _cleanup_close_ int fd = -1;
    uint64_t size = 0;
    dev_t rdev;
    int r = block_rdev(dev, &rdev);

    if (r < 0)
        return r;
    fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return be_error(-errno, "cannot open %s: %s", dev, strerror(errno));
    if (ioctl(fd, BLKGETSIZE64, &size) < 0)
        return be_error(-errno, "BLKGETSIZE64 %s: %s", dev, strerror(errno));
    if (size > INT64_MAX)
        return be_error(-EOVERFLOW, "%s: size out of range", dev);
    *ret = (int64_t)size;
    return 0;
}

int bfs_fs_usage(const char *path, struct bfs_usage *ret)
{
    struct statvfs sv;
    int64_t fr;

    if (statvfs(path, &sv) < 0)
        return be_error(-errno, "statvfs %s: %s", path, strerror(errno));
    fr = (int64_t)sv.f_frsize;
    ret->bytes_total = (int64_t)sv.f_blocks * fr;
    ret->bytes_available = (int64_t)sv.f_bavail * fr;
    ret->bytes_used = ((int64_t)sv.f_blocks - (int64_t)sv.f_bfree) * fr;
    ret->inodes_total = (int64_t)sv.f_files;
    ret->inodes_available = (int64_t)sv.f_favail;
    ret->inodes_used = (int64_t)sv.f_files - (int64_t)sv.f_ffree;
    ret->readonly = (sv.f_flag & ST_RDONLY) != 0;
    return 0;
}
