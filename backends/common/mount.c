/*
 * Mount helpers of mount.h.
 *
 * mountinfo lines (proc(5)):
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 * The kernel escapes space, tab, newline and backslash in paths as \NNN octal; such escapes are
 * undone here. A line that does not have this shape is skipped and counted.
 */
#include "mount.h"

#include "fsutil.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

void mnt_table_release(struct mnt_table *t)
{
    if (!t)
        return;
    /* All strings of an entry live in one block that starts at root. */
    for (size_t i = 0; i < t->n; i++)
        free(t->entries[i].root);
    free(t->entries);
    t->entries = NULL;
    t->n = 0;
}

/* Split the next space-separated field off *p (before end); false when there is none. */
static bool next_field(const char **p, const char *end, const char **ret, size_t *ret_len)
{
    const char *s = *p, *e;

    if (s >= end || *s == ' ')
        return false;
    e = s;
    while (e < end && *e != ' ')
        e++;
    *ret = s;
    *ret_len = (size_t)(e - s);
    *p = e < end ? e + 1 : e;
    return true;
}

static bool is_octal(char c)
{
    return c >= '0' && c <= '7';
}

/* Unescape n bytes of s into out (which has room for n + 1); false on a bad escape or NUL. */
static bool unescape(const char *s, size_t n, char *out)
{
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') {
            unsigned v;

            if (i + 3 >= n || !is_octal(s[i + 1]) || !is_octal(s[i + 2]) || !is_octal(s[i + 3]))
                return false;
            v = (unsigned)(s[i + 1] - '0') * 64 + (unsigned)(s[i + 2] - '0') * 8 +
                (unsigned)(s[i + 3] - '0');
            if (v == 0 || v > 255)
                return false;
            out[j++] = (char)v;
            i += 3;
        } else if (s[i] == '\0') {
            return false;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return true;
}

static bool parse_int(const char *s, size_t n, long max, long *ret)
{
    long v = 0;

    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return false;
    *ret = v;
    return true;
}

/* Parse one line (without its newline) into e; false when malformed. */
static bool parse_line(const char *line, size_t len, struct mnt_entry *e)
{
    const char *p = line, *end = line + len;
    const char *f[10];
    size_t fl[10], nf = 0;
    const char *colon;
    long v;
    char *block, *w;

    /* mount_id parent major:minor root mount_point options */
    for (nf = 0; nf < 6; nf++)
        if (!next_field(&p, end, &f[nf], &fl[nf]))
            return false;
    /* optional fields up to the "-" separator */
    for (;;) {
        const char *o;
        size_t ol;

        if (!next_field(&p, end, &o, &ol))
            return false;
        if (ol == 1 && o[0] == '-')
            break;
    }
    /* fstype source super_options: exactly three */
    for (nf = 6; nf < 9; nf++)
        if (!next_field(&p, end, &f[nf], &fl[nf]))
            return false;
    if (p != end)
        return false;

    if (!parse_int(f[0], fl[0], INT_MAX, &v))
        return false;
    e->mount_id = (int)v;
    if (!parse_int(f[1], fl[1], INT_MAX, &v))
        return false;
    e->parent_id = (int)v;
    colon = memchr(f[2], ':', fl[2]);
    if (!colon || !parse_int(f[2], (size_t)(colon - f[2]), UINT32_MAX >> 1, &v))
        return false;
    e->major = (unsigned)v;
    if (!parse_int(colon + 1, fl[2] - (size_t)(colon + 1 - f[2]), UINT32_MAX >> 1, &v))
        return false;
    e->minor = (unsigned)v;
    if (f[3][0] != '/' || f[4][0] != '/')
        return false;

    block = malloc(len + 8);
    if (!block)
        return false;
    w = block;
    char **dst[7] = {&e->root,   &e->mount_point, &e->options,      NULL,
                     &e->fstype, &e->source,      &e->super_options};
    size_t idx[7] = {3, 4, 5, 0, 6, 7, 8};
    for (int i = 0; i < 7; i++) {
        if (!dst[i])
            continue;
        if (!unescape(f[idx[i]], fl[idx[i]], w)) {
            free(block);
            return false;
        }
        *dst[i] = w;
        w += strlen(w) + 1;
    }
    return true;
}

int mnt_table_parse(const char *text, size_t len, struct mnt_table *ret)
{
    struct mnt_table t = {0};
    size_t cap = 0;
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct mnt_entry e = {0};

        if (ll > 0) {
            if (memchr(p, '\0', ll) || !parse_line(p, ll, &e)) {
                t.skipped++;
            } else {
                if (t.n == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    struct mnt_entry *ne = realloc(t.entries, nc * sizeof(*ne));
                    if (!ne) {
                        free(e.root);
                        mnt_table_release(&t);
                        return -ENOMEM;
                    }
                    t.entries = ne;
                    cap = nc;
                }
                t.entries[t.n++] = e;
            }
        }
        p += ll + (nl ? 1 : 0);
    }
    *ret = t;
    return 0;
}

int mnt_table_load(const char *path, struct mnt_table *ret)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r;

    if (!path)
        path = "/proc/self/mountinfo";
    /* /proc files report size 0: fsu_read_file reads until EOF within the cap. */
    r = fsu_read_file(path, MNT_INFO_MAX, &text, &len);
    if (r < 0)
        return be_error(r, "cannot read %s: %s", path, strerror(-r));
    return mnt_table_parse(text, len, ret);
}

const struct mnt_entry *mnt_table_find(const struct mnt_table *t, const char *path)
{
    for (size_t i = t->n; i > 0; i--)
        if (strcmp(t->entries[i - 1].mount_point, path) == 0)
            return &t->entries[i - 1];
    return NULL;
}

int mnt_is_mountpoint(const char *path)
{
    struct statx s;
    struct mnt_table t;
    char real[PATH_MAX];
    int r;

    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &s) < 0)
        return -errno;
    if (s.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
        return (s.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
    /* Kernels before 5.8: look the canonical path up in mountinfo. */
    if (S_ISLNK(s.stx_mode))
        return 0;
    if (!realpath(path, real))
        return -errno;
    r = mnt_table_load(NULL, &t);
    if (r < 0)
        return r;
    r = mnt_table_find(&t, real) ? 1 : 0;
    mnt_table_release(&t);
    return r;
}

struct flag_def {
    const char *name;
    unsigned long set, clear;
};

static const struct flag_def flag_defs[] = {
    {"ro", MS_RDONLY, 0},
    {"rw", 0, MS_RDONLY},
    {"bind", 0, 0},
    {"defaults", 0, 0},
    {"noexec", MS_NOEXEC, 0},
    {"exec", 0, MS_NOEXEC},
    {"nosuid", MS_NOSUID, 0},
    {"suid", 0, MS_NOSUID},
    {"nodev", MS_NODEV, 0},
    {"dev", 0, MS_NODEV},
    {"noatime", MS_NOATIME, MS_RELATIME | MS_STRICTATIME},
    {"atime", 0, MS_NOATIME},
    {"nodiratime", MS_NODIRATIME, 0},
    {"diratime", 0, MS_NODIRATIME},
    {"relatime", MS_RELATIME, MS_NOATIME | MS_STRICTATIME},
    {"strictatime", MS_STRICTATIME, MS_NOATIME | MS_RELATIME},
    {"sync", MS_SYNCHRONOUS, 0},
    {"async", 0, MS_SYNCHRONOUS},
    {"dirsync", MS_DIRSYNC, 0},
};

const char *mnt_flag_describe(const char *flag, size_t index, char *buf, size_t cap)
{
    size_t n = flag ? strcspn(flag, "=,") : 0;
    bool ok = n > 0 && n <= 32;

    for (size_t i = 0; ok && i < n; i++) {
        char c = flag[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == '-';
    }
    if (ok)
        snprintf(buf, cap, "mount flag %zu (\"%.*s\")", index, (int)n, flag);
    else
        snprintf(buf, cap, "mount flag %zu", index);
    return buf;
}

int mnt_flags_parse(const char *const *flags, size_t n, unsigned long *ret_flags)
{
    unsigned long f = 0;
    char what[64];

    for (size_t i = 0; i < n; i++) {
        const char *s = flags[i];
        bool found = false;

        if (!s)
            return be_error(-EINVAL, "mount flag %zu is missing", i);
        if (strchr(s, ',') || strchr(s, '='))
            return be_error(-EINVAL,
                            "%s: data options (name=value) and lists are not supported by "
                            "bind mounts",
                            mnt_flag_describe(s, i, what, sizeof(what)));
        for (size_t k = 0; k < ARRAY_SIZE(flag_defs); k++) {
            if (strcmp(s, flag_defs[k].name) == 0) {
                f = (f & ~flag_defs[k].clear) | flag_defs[k].set;
                found = true;
                break;
            }
        }
        if (!found)
            return be_error(-EINVAL, "%s is not a known flag",
                            mnt_flag_describe(s, i, what, sizeof(what)));
    }
    *ret_flags = f;
    return 0;
}

int mnt_bind(const char *src, const char *dst, unsigned long flags, bool readonly)
{
    struct statvfs sv;
    unsigned long keep = 0;

    if (mount(src, dst, "none", MS_BIND, NULL) < 0)
        return be_error(-errno, "cannot bind-mount %s on %s: %s", src, dst, strerror(errno));
    if (flags == 0 && !readonly)
        return 0;
    if (statvfs(src, &sv) == 0) {
        if (sv.f_flag & ST_NOSUID)
            keep |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV)
            keep |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC)
            keep |= MS_NOEXEC;
    }
    if (mount("none", dst, "none", MS_REMOUNT | MS_BIND | flags | keep | (readonly ? MS_RDONLY : 0),
              NULL) < 0) {
        int r = -errno;
        umount2(dst, MNT_DETACH | UMOUNT_NOFOLLOW);
        return be_error(r, "cannot set the mount flags of %s: %s", dst, strerror(-r));
    }
    return 0;
}

/* Whether mount point mp contains path p (component-wise prefix); the length to skip in p. */
static bool mount_contains(const char *mp, const char *p, size_t *ret_skip)
{
    size_t n = strlen(mp);

    if (strcmp(mp, "/") == 0) {
        *ret_skip = 0;
        return p[0] == '/';
    }
    if (strncmp(mp, p, n) != 0 || (p[n] != '\0' && p[n] != '/'))
        return false;
    *ret_skip = n;
    return true;
}

int mnt_shows_dir(const char *path, const char *src)
{
    char real[PATH_MAX], src_real[PATH_MAX], want[PATH_MAX + 16];
    const struct mnt_entry *top, *host = NULL;
    struct mnt_table t;
    size_t host_skip = 0, best = 0;
    int r;

    r = mnt_is_mountpoint(path);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    if (!realpath(path, real))
        return -errno;
    if (!realpath(src, src_real)) {
        if (errno != ENOENT || strlen(src) >= sizeof(src_real))
            return -errno;
        memcpy(src_real, src, strlen(src) + 1);
    }
    r = mnt_table_load(NULL, &t);
    if (r < 0)
        return r;
    top = mnt_table_find(&t, real);
    /* The mount src lives on: the topmost one with the longest mount point containing it. */
    for (size_t i = 0; i < t.n; i++) {
        size_t skip, len = strlen(t.entries[i].mount_point);
        if (&t.entries[i] != top && mount_contains(t.entries[i].mount_point, src_real, &skip) &&
            (!host || len >= best)) {
            host = &t.entries[i];
            host_skip = skip;
            best = len;
        }
    }
    r = 0;
    if (top && host && top->major == host->major && top->minor == host->minor) {
        const char *rest = src_real + host_skip;
        bool root_is_slash = strcmp(host->root, "/") == 0;

        snprintf(want, sizeof(want), "%s%s", root_is_slash ? "" : host->root, rest);
        if (!want[0])
            snprintf(want, sizeof(want), "/");
        size_t wl = strlen(want);
        r = strcmp(top->root, want) == 0 ||
            (strncmp(top->root, want, wl) == 0 && strcmp(top->root + wl, "//deleted") == 0);
    }
    mnt_table_release(&t);
    return r;
}

int mnt_unmount(const char *path)
{
    if (umount2(path, UMOUNT_NOFOLLOW) == 0)
        return 1;
    if (errno == EINVAL || errno == ENOENT)
        return 0;
    return be_error(-errno, "cannot unmount %s: %s", path, strerror(errno));
}

bool mnt_flags_match(const char *path, const char *src, unsigned long flags, bool readonly)
{
    static const struct {
        unsigned long ms, st;
    } inherited[] = {
        {MS_NOSUID, ST_NOSUID},
        {MS_NODEV, ST_NODEV},
        {MS_NOEXEC, ST_NOEXEC},
    };
    struct statvfs have, from = {0};

    if (statvfs(path, &have) < 0 || (src && statvfs(src, &from) < 0))
        return false;
    if (!!(have.f_flag & ST_RDONLY) != readonly)
        return false;
    for (size_t i = 0; i < sizeof(inherited) / sizeof(inherited[0]); i++) {
        bool want = (flags & inherited[i].ms) || (from.f_flag & inherited[i].st);
        if (!!(have.f_flag & inherited[i].st) != want)
            return false;
    }
    if ((flags & MS_NOATIME) && !(have.f_flag & ST_NOATIME))
        return false;
    if ((flags & MS_NODIRATIME) && !(have.f_flag & ST_NODIRATIME))
        return false;
    return true;
}
