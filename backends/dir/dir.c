/*
 * The directory backend: volumes and snapshots are directories under one root on the node.
 *
 * Layout under <root> (canonical, from realpath):
 *   <ns>/<claim>/data/          volume keyed by claim "<ns>/<claim>": the content, mode 0777
 *   <ns>/<claim>/volume.meta    its metadata
 *   _/<name>/{data/,volume.meta} volume keyed by a plain CSI name ("_" is no DNS label)
 *   .snapshots/<name>/{data/,snapshot.meta}
 *   .tmp/       volumes and snapshots being built; emptied by recover()
 *   .trash/     volumes being removed; emptied by recover()
 * Volume and namespace directories are mode 0700 (only the node's root reads them; pods see
 * data/ through bind mounts). data/ is 0777 like hostPath-style drivers make it, so that a pod
 * running as any uid can write; fsGroup handling is up to kubelet.
 *
 * Names: a namespace is a DNS-1123 label, a claim a DNS-1123 subdomain (Kubernetes' rules); a
 * plain name (CSI name, snapshot name) is 1..128 bytes, no '/', no C0/C1 control character, not
 * "." or "..". Anything else is -EINVAL before anything is created.
 *
 * Ids: "dir:<ns>/<claim>" or "dir:_/<name>" when at most 128 bytes, else "dir:#<sha256 hex of
 * the relative path>"; snapshots "dir:@<name>" or "dir:@#<sha256 hex of name>". This
 * generation-0 id is a function of the location, so a scan rebuilds the index even when a meta
 * file is damaged; it is also written into the meta file and checked against the location on a
 * scan, and it is the key of the index.
 *
 * Ownership: the meta file records the CSI name of the CreateVolume that made the volume or
 * last took it over ("name", the PV name for Kubernetes) and a generation ("generation",
 * absent = 0), bumped in the same atomic meta write whenever a CreateVolume with another name
 * hands the existing volume to a new owner. From generation 1 on the issued id carries it:
 * "<generation-0 id>/<gen>" ('/' is the one printable byte a name cannot hold, so no id of one
 * volume reads as an id of another; a readable id that would outgrow 128 bytes switches to the
 * hash form). Every slot that takes an id answers an id of an older generation as an unknown
 * volume: a DeleteVolume sent for a PV that no longer owns the volume deletes nothing.
 *
 * Meta files are "k=v" lines after "version=1" (snapshots, and volumes of earlier releases) or
 * "version=2" (volumes: the last line is a checksum of the rest, and a version-2 meta without it
 * is a torn write, never read as valid: a cut inside a value would still parse); unknown keys are
 * ignored, a missing or garbled required field makes the entry "damaged": it stays indexed so
 * that it can be looked up (abnormal) and removed, and its data is never touched by recovery.
 *
 * Crash safety: a volume or snapshot is built whole in .tmp/<random>, fsynced, then renamed to
 * its final name (RENAME_NOREPLACE) and the parent fsynced: nothing at a final name is ever
 * half made. Removal renames the directory into .trash/ first, then removes the tree. recover()
 * empties .tmp and .trash, removes stray meta temporaries, and never deletes anything found at
 * a final location.
 *
 * Capacity is enforced by project quotas where the root's filesystem has them on (dir_quota.c:
 * each volume its own project id and a hard limit); elsewhere it is recorded, not enforced:
 * stats reports usage and an "over capacity" condition.
 *
 * Threading: one mutex (struct dir_backend.lock) protects the index. It is held across a
 * single rename (and the mkdir/rmdir of a namespace directory, so that a create and a remove in
 * the same namespace cannot race), never across a tree copy or removal. The caller serialises
 * operations per volume and snapshot (backend.h).
 */
#include "dir.h"

#include "commit.h"
#include "dir_internal.h"
#include "fsutil.h"
#include "mount.h"
#include "util.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* ---- names and ids ---- */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* DNS-1123 label of n bytes: [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1..63 */
static bool valid_label(const char *s, size_t n)
{
    if (n < 1 || n > 63 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return false;
    return true;
}

/* DNS-1123 subdomain: dot-separated labels (each alnum at both ends), 1..253 bytes. */
static bool valid_subdomain(const char *s, size_t n)
{
    size_t start = 0;

    if (n < 1 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t ln = i - start;
            if (ln < 1 || !is_lower_alnum(s[start]) || !is_lower_alnum(s[i - 1]))
                return false;
            for (size_t k = start; k < i; k++)
                if (!is_lower_alnum(s[k]) && s[k] != '-')
                    return false;
            start = i + 1;
        }
    }
    return true;
}

bool dir__valid_plain_name(const char *s)
{
    size_t n;

    if (!s)
        return false;
    n = strlen(s);
    if (n < 1 || n > BE_ID_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return false;
        /* C1 controls U+0080..U+009F are 0xC2 0x80..0x9F in UTF-8 */
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9f)
            return false;
    }
    return true;
}

bool dir__valid_claim_key(const char *s)
{
    const char *slash;

    if (!s)
        return false;
    slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/'))
        return false;
    return valid_label(s, (size_t)(slash - s)) && valid_subdomain(slash + 1, strlen(slash + 1));
}

int dir__path(char *ret, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(ret, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return be_error(-ENAMETOOLONG, "path too long");
    return 0;
}

int dir__vol_rel(const char *key, bool key_is_claim, char *ret, size_t cap)
{
    return key_is_claim ? dir__path(ret, cap, "%s", key) : dir__path(ret, cap, "_/%s", key);
}

void dir__vol_id(const char *rel, char ret[BE_ID_MAX + 1])
{
    char hex[65];

    if (strlen("dir:") + strlen(rel) <= BE_ID_MAX) {
        snprintf(ret, BE_ID_MAX + 1, "dir:%s", rel);
        return;
    }
    fsu_sha256_hex(rel, strlen(rel), hex);
    snprintf(ret, BE_ID_MAX + 1, "dir:#%s", hex);
}

void dir__vol_id_gen(const char *rel, uint64_t gen, char ret[BE_ID_MAX + 1])
{
    char hex[65], sfx[24] = "";

    if (gen == 0) {
        dir__vol_id(rel, ret);
        return;
    }
    snprintf(sfx, sizeof(sfx), "/%llu", (unsigned long long)gen);
    if (strlen("dir:") + strlen(rel) + strlen(sfx) <= BE_ID_MAX) {
        /* Copied rather than snprintf'd: the length is checked just above, but
         * gcc -O2 cannot see it and -Wformat-truncation breaks the release build. */
        size_t nrel = strlen(rel);

        memcpy(ret, "dir:", 4);
        memcpy(ret + 4, rel, nrel);
        memcpy(ret + 4 + nrel, sfx, strlen(sfx) + 1);
        return;
    }
    fsu_sha256_hex(rel, strlen(rel), hex);
    snprintf(ret, BE_ID_MAX + 1, "dir:#%s%s", hex, sfx);
}

/* A generation as the ids write it: decimal, no sign, no leading zero, >= 1. */
static bool parse_gen(const char *s, uint64_t *ret)
{
    uint64_t v = 0;

    if (!s || *s < '1' || *s > '9' || strlen(s) > 19)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *ret = v;
    return true;
}

void dir__id_split(const char *id, char base[BE_ID_MAX + 1], uint64_t *ret_gen)
{
    const char *last = id ? strrchr(id, '/') : NULL;
    size_t n = last ? (size_t)(last - id) : 0;
    uint64_t gen;

    *ret_gen = 0;
    snprintf(base, BE_ID_MAX + 1, "%s", id ? id : "");
    if (!last || strncmp(id, "dir:", 4) != 0 || !parse_gen(last + 1, &gen) || n > BE_ID_MAX)
        return;
    /* What precedes must be a whole generation-0 id: "dir:#<hex>" (no '/') or "dir:<a>/<b>"
     * (exactly one '/'). "dir:_/7" is the plain name "7", not generation 7 of "dir:_". */
    if (strncmp(id, "dir:#", 5) == 0
            ? memchr(id, '/', n) != NULL
            : memchr(id, '/', n) == NULL || memchr(id, '/', n) != memrchr(id, '/', n))
        return;
    memcpy(base, id, n);
    base[n] = '\0';
    *ret_gen = gen;
}

void dir__snap_id(const char *name, char ret[BE_ID_MAX + 1])
{
    char hex[65];

    if (strlen("dir:@") + strlen(name) <= BE_ID_MAX) {
        snprintf(ret, BE_ID_MAX + 1, "dir:@%s", name);
        return;
    }
    fsu_sha256_hex(name, strlen(name), hex);
    snprintf(ret, BE_ID_MAX + 1, "dir:@#%s", hex);
}

/* ---- meta files ---- */

int dir__meta_parse(char *text, struct dir__kv *kv, size_t max)
{
    char *line = text;
    size_t n = 0;
    bool first = true;

    while (line && *line) {
        char *nl = strchr(line, '\n'), *eq;

        if (nl)
            *nl = '\0';
        if (first) {
            /* 2: a volume meta sealed by its checksum line (dir__meta_seal) */
            if (strcmp(line, "version=1") != 0 && strcmp(line, "version=2") != 0)
                return -EINVAL;
            first = false;
        } else if (*line) {
            eq = strchr(line, '=');
            if (!eq || eq == line)
                return -EINVAL;
            *eq = '\0';
            if (n < max)
                kv[n++] = (struct dir__kv){line, eq + 1};
        }
        line = nl ? nl + 1 : NULL;
    }
    return first ? -EINVAL : (int)n;
}

const char *dir__meta_get(const struct dir__kv *kv, size_t n, const char *k)
{
    /* The last one wins, like a later assignment. */
    for (size_t i = n; i > 0; i--)
        if (strcmp(kv[i - 1].k, k) == 0)
            return kv[i - 1].v;
    return NULL;
}

int dir__meta_seal(char *buf, size_t n, size_t cap)
{
    char hex[65];
    int m;

    fsu_sha256_hex(buf, n, hex);
    m = snprintf(buf + n, cap - n, "%s%s\n", DIR_META_CHECKSUM, hex);
    if (m < 0 || (size_t)m >= cap - n)
        return -ENAMETOOLONG;
    return (int)(n + (size_t)m);
}

int dir__meta_verify(const char *text, size_t len)
{
    const size_t line = sizeof(DIR_META_CHECKSUM) - 1 + 64 + 1;
    const char *at = NULL;
    char hex[65];

    /* the checksum line, if any, starts a line; it must be the last one */
    for (const char *p = text; p && p < text + len; p = memchr(p, '\n', (size_t)(text + len - p))) {
        if (*p == '\n')
            p++;
        if ((size_t)(text + len - p) >= sizeof(DIR_META_CHECKSUM) - 1 &&
            memcmp(p, DIR_META_CHECKSUM, sizeof(DIR_META_CHECKSUM) - 1) == 0) {
            at = p;
            break;
        }
    }
    if (!at)
        return 0;
    if ((size_t)(text + len - at) != line || text[len - 1] != '\n')
        return -EBADMSG;
    fsu_sha256_hex(text, (size_t)(at - text), hex);
    return memcmp(at + sizeof(DIR_META_CHECKSUM) - 1, hex, 64) == 0 ? 1 : -EBADMSG;
}

int dir__commit(struct dir_backend *d)
{
    return commit_wait(d->commit);
}

bool dir__parse_i64(const char *s, int64_t min, int64_t *ret)
{
    char *end;
    long long v;

    if (!s || !*s || !((*s >= '0' && *s <= '9') || *s == '-'))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < min)
        return false;
    *ret = v;
    return true;
}

void dir__remove_meta_temps(const char *dir, const char *meta)
{
    DIR *dd = opendir(dir);
    struct dirent *de;
    size_t ml = strlen(meta), sl = strlen(FSU_TMP_SUFFIX);

    if (!dd)
        return;
    while ((de = readdir(dd))) {
        size_t n = strlen(de->d_name);

        /* "<meta>.XXXXXX.tmp" */
        if (n == ml + 1 + 6 + sl && strncmp(de->d_name, meta, ml) == 0 && de->d_name[ml] == '.' &&
            strcmp(de->d_name + n - sl, FSU_TMP_SUFFIX) == 0)
            unlinkat(dirfd(dd), de->d_name, 0);
    }
    closedir(dd);
}

static const char *source_kind_str(int k)
{
    return k == BE_SOURCE_SNAPSHOT ? "snapshot" : k == BE_SOURCE_VOLUME ? "volume" : "none";
}

static int source_kind_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "none") == 0)
        return BE_SOURCE_NONE;
    if (strcmp(s, "snapshot") == 0)
        return BE_SOURCE_SNAPSHOT;
    if (strcmp(s, "volume") == 0)
        return BE_SOURCE_VOLUME;
    return -1;
}

/* ---- volume entries ---- */

static struct dir_vol *vol_new(const char *id, const char *key, const char *name,
                               const char *source_id, const char *condition)
{
    size_t li = strlen(id) + 1, lk = strlen(key) + 1, ln = strlen(name) + 1;
    size_t ls = strlen(source_id) + 1, lc = strlen(condition) + 1;
    struct dir_vol *v = calloc(1, sizeof(*v) + li + lk + ln + ls + lc);
    char *p;

    if (!v)
        return NULL;
    snprintf(v->full_id, sizeof(v->full_id), "%s", id); /* generation 0 */
    p = v->id;
    memcpy(p, id, li);
    p += li;
    v->key = memcpy(p, key, lk);
    p += lk;
    v->name = memcpy(p, name, ln);
    p += ln;
    v->source_id = memcpy(p, source_id, ls);
    p += ls;
    v->condition = memcpy(p, condition, lc);
    return v;
}

static struct dir_vol *vol_dup(const struct dir_vol *o, const char *name, int64_t capacity)
{
    struct dir_vol *v = vol_new(o->id, o->key, name, o->source_id, o->condition);

    if (!v)
        return NULL;
    v->capacity = capacity;
    v->created = o->created;
    v->gen = o->gen;
    memcpy(v->full_id, o->full_id, sizeof(v->full_id));
    v->source_kind = o->source_kind;
    v->key_is_claim = o->key_is_claim;
    v->damaged = o->damaged;
    v->projid = o->projid;
    v->inode_limit = o->inode_limit;
    memcpy(v->prov_uid, o->prov_uid, sizeof(v->prov_uid));
    return v;
}

static bool has_newline(const char *s)
{
    return strchr(s, '\n') != NULL || strchr(s, '\r') != NULL;
}

/* The text of v's meta file, sealed with its checksum, into buf: its length or -errno. */
static int vol_meta_format(const struct dir_vol *v, char *buf, size_t cap)
{
    int n;

    if (has_newline(v->id) || has_newline(v->key) || has_newline(v->name) ||
        has_newline(v->source_id))
        return be_error(-EINVAL, "a metadata value of volume %s holds a newline", v->id);
    n = snprintf(buf, cap,
                 "version=2\nid=%s\nkey=%s\nkey_is_claim=%d\nname=%s\ngeneration=%llu\n"
                 "capacity=%lld\naccess=mount\nsource_kind=%s\nsource_id=%s\ncreated=%lld\n"
                 "project=%u\ninode_limit=%lld\n",
                 v->id, v->key, v->key_is_claim ? 1 : 0, v->name, (unsigned long long)v->gen,
                 (long long)v->capacity, source_kind_str(v->source_kind), v->source_id,
                 (long long)v->created, v->projid, (long long)v->inode_limit);
    /* the provisioning mark only while there is one: a meta without it reads as before */
    if (n >= 0 && (size_t)n < cap && v->prov_uid[0])
        n += snprintf(buf + n, cap - (size_t)n, "provisioning=%s\n", v->prov_uid);
    if (n >= 0 && (size_t)n < cap)
        n = dir__meta_seal(buf, (size_t)n, cap);
    if (n < 0 || (size_t)n >= cap)
        return be_error(-ENAMETOOLONG, "metadata of volume %s too long", v->id);
    return n;
}

/*
 * Write the meta file of a volume being built in a fresh work directory, without syncing: the
 * directory becomes visible only by its rename, and the one flush after that rename
 * (dir__commit) makes both durable. Should a power cut keep the rename and lose or tear this
 * file, its checksum (or its absence) and the empty data directory tell recovery that the create
 * never finished, and recovery rolls it back (vol_unfinished).
 */
static int vol_meta_write_fresh(const char *vol_path, const struct dir_vol *v)
{
    char path[PATH_MAX], buf[2048];
    int n, r, fd;
    ssize_t w;

    n = vol_meta_format(v, buf, sizeof(buf));
    if (n < 0)
        return n;
    r = dir__path(path, sizeof(path), "%s/%s", vol_path, DIR_VOLUME_META);
    if (r < 0)
        return r;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return be_error(-errno, "cannot create %s: %s", path, strerror(errno));
    w = write(fd, buf, (size_t)n);
    r = w == n ? 0 : be_error(w < 0 ? -errno : -EIO, "cannot write %s", path);
    if (close(fd) < 0 && r == 0)
        r = be_error(-errno, "cannot write %s: %s", path, strerror(errno));
    return r;
}

static int vol_meta_write(const char *vol_path, const struct dir_vol *v)
{
    char path[PATH_MAX], buf[2048];
    int n, r;

    n = vol_meta_format(v, buf, sizeof(buf));
    if (n < 0)
        return n;
    r = dir__path(path, sizeof(path), "%s/%s", vol_path, DIR_VOLUME_META);
    if (r < 0)
        return r;
    return fsu_write_atomic(path, buf, (size_t)n, 0600);
}

/* Why the parsed volume meta is not valid for the entry at rel, or NULL. Fills v's numbers. */
static const char *vol_meta_check(const struct dir__kv *kv, size_t n, const char *id,
                                  const char *key, bool key_is_claim, struct dir_vol *v,
                                  const char **ret_name, const char **ret_source)
{
    const char *s;
    int64_t x;
    int kind;

    s = dir__meta_get(kv, n, "id");
    if (!s || strcmp(s, id) != 0)
        return "metadata: id missing or not the one of this location";
    s = dir__meta_get(kv, n, "key");
    if (!s || strcmp(s, key) != 0)
        return "metadata: key missing or not the one of this location";
    s = dir__meta_get(kv, n, "key_is_claim");
    if (!s || strcmp(s, key_is_claim ? "1" : "0") != 0)
        return "metadata: key_is_claim missing or wrong";
    s = dir__meta_get(kv, n, "name");
    if (!dir__valid_plain_name(s))
        return "metadata: name missing or invalid";
    *ret_name = s;
    /* absent in volumes made before generations existed: generation 0 */
    s = dir__meta_get(kv, n, "generation");
    if (s && strcmp(s, "0") != 0 && !parse_gen(s, &v->gen))
        return "metadata: generation invalid";
    s = dir__meta_get(kv, n, "capacity");
    if (!dir__parse_i64(s, 0, &x))
        return "metadata: capacity missing or invalid";
    v->capacity = x;
    s = dir__meta_get(kv, n, "access");
    if (!s || strcmp(s, "mount") != 0)
        return "metadata: access missing or not mount";
    kind = source_kind_parse(dir__meta_get(kv, n, "source_kind"));
    if (kind < 0)
        return "metadata: source_kind missing or invalid";
    v->source_kind = (uint8_t)kind;
    s = dir__meta_get(kv, n, "source_id");
    if (!s || strlen(s) > BE_ID_MAX || (kind == BE_SOURCE_NONE) != (*s == '\0'))
        return "metadata: source_id missing or invalid";
    *ret_source = s;
    s = dir__meta_get(kv, n, "created");
    if (!dir__parse_i64(s, 0, &x))
        return "metadata: created missing or invalid";
    v->created = x;
    /* absent in volumes made before project quotas: none */
    s = dir__meta_get(kv, n, "project");
    if (s && (!dir__parse_i64(s, 0, &x) || x > DIR_PROJID_MAX))
        return "metadata: project invalid";
    v->projid = s ? (uint32_t)x : 0;
    s = dir__meta_get(kv, n, "inode_limit");
    if (s && (!dir__parse_i64(s, 0, &x) || x > DIR_INODE_LIMIT_MAX))
        return "metadata: inode_limit invalid";
    v->inode_limit = s ? x : 0;
    /* absent when no provisioning is pending (and in volumes made before marks existed) */
    s = dir__meta_get(kv, n, "provisioning");
    if (s && !be_valid_uid(s))
        return "metadata: provisioning mark invalid";
    snprintf(v->prov_uid, sizeof(v->prov_uid), "%s", s ? s : "");
    return NULL;
}

/* Whether the directory at path is missing or empty. */
static bool dir_missing_or_empty(const char *path)
{
    struct dirent *de;
    bool empty = true;
    DIR *dd = opendir(path);

    if (!dd)
        return errno == ENOENT;
    while (empty && (de = readdir(dd)))
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(dd);
    return empty;
}

/*
 * Read the volume at rel into a new entry; a damaged one when its meta is. NULL on ENOMEM.
 * *ret_unfinished is set when the entry is a create that never finished: its meta file missing,
 * empty, garbled or failing its checksum (torn by a power cut, since it is written unsynced
 * before the rename that publishes it and made durable with it) and its data directory missing
 * or empty. Such a create was never answered, holds nothing, and is rolled back; a damaged meta
 * beside data is kept, damaged, as before.
 */
static struct dir_vol *vol_load(struct dir_backend *d, const char *rel, const char *key,
                                bool key_is_claim, bool *ret_unfinished)
{
    _cleanup_free_ char *text = NULL;
    char path[PATH_MAX], meta[PATH_MAX], id[BE_ID_MAX + 1], why[BE_MSG_MAX];
    struct dir__kv kv[32];
    struct dir_vol tmp = {0}, *v;
    const char *name = "", *source = "", *reason = NULL;
    size_t len;
    int r, n, vr = 0;

    dir__vol_id(rel, id);
    if (dir__path(path, sizeof(path), "%s/%s", d->root, rel) < 0 ||
        dir__path(meta, sizeof(meta), "%s/%s", path, DIR_VOLUME_META) < 0)
        return NULL;
    bool torn = false;

    *ret_unfinished = false;
    dir__remove_meta_temps(path, DIR_VOLUME_META);
    r = fsu_read_file(meta, DIR_META_MAX, &text, &len);
    if (r == -ENOMEM)
        return NULL;
    if (r < 0) {
        snprintf(why, sizeof(why), "metadata unreadable: %s", strerror(-r));
        reason = why;
        torn = r == -ENOENT;
    } else if (strlen(text) != len || (vr = dir__meta_verify(text, len)) < 0 ||
               (vr == 0 && strncmp(text, "version=2\n", 10) == 0)) {
        reason = len ? "metadata garbled, unsealed or its checksum wrong" : "metadata empty";
        torn = true;
    } else if ((n = dir__meta_parse(text, kv, ARRAY_SIZE(kv))) < 0) {
        reason = "metadata garbled";
        torn = true;
    } else {
        reason = vol_meta_check(kv, (size_t)n, id, key, key_is_claim, &tmp, &name, &source);
    }
    if (reason) {
        name = "";
        source = "";
    }
    if (torn) {
        char data[PATH_MAX];

        *ret_unfinished =
            dir__path(data, sizeof(data), "%s/data", path) == 0 && dir_missing_or_empty(data);
    }
    v = vol_new(id, key, name, source, reason ? reason : "");
    if (!v)
        return NULL;
    v->key_is_claim = key_is_claim;
    if (reason) {
        v->damaged = true; /* generation unknown: reachable by its generation-0 id only */
    } else {
        v->capacity = tmp.capacity;
        v->created = tmp.created;
        v->source_kind = tmp.source_kind;
        v->gen = tmp.gen;
        v->projid = tmp.projid;
        v->inode_limit = tmp.inode_limit;
        memcpy(v->prov_uid, tmp.prov_uid, sizeof(v->prov_uid));
    }
    dir__vol_id_gen(rel, v->gen, v->full_id);
    return v;
}

/* ---- the volume index (lock held) ---- */

static size_t vol_lower_bound(const struct dir_backend *d, const char *id)
{
    size_t lo = 0, hi = d->n_vols;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->vols[mid]->id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The entry whose generation-0 id is base, whatever its generation. */
static struct dir_vol *vol_find_base(struct dir_backend *d, const char *base)
{
    size_t i = vol_lower_bound(d, base);

    return i < d->n_vols && strcmp(d->vols[i]->id, base) == 0 ? d->vols[i] : NULL;
}

struct dir_vol *dir__vol_find(struct dir_backend *d, const char *id)
{
    char base[BE_ID_MAX + 1];
    struct dir_vol *v;
    uint64_t gen;

    if (!id)
        return NULL;
    dir__id_split(id, base, &gen);
    v = vol_find_base(d, base);
    if (v)
        return strcmp(v->full_id, id) == 0 ? v : NULL;
    /* A readable generation-0 id that outgrew 128 bytes with its generation is issued in the
     * hash form: rare, so a scan of the entries that took another generation. */
    if (gen > 0 && strncmp(base, "dir:#", 5) == 0)
        for (size_t i = 0; i < d->n_vols; i++)
            if (d->vols[i]->gen == gen && strcmp(d->vols[i]->full_id, id) == 0)
                return d->vols[i];
    return NULL;
}

/* Insert v (taking it) or replace the entry with its id (freeing the old one). */
static int vol_insert(struct dir_backend *d, struct dir_vol *v)
{
    size_t i = vol_lower_bound(d, v->id);

    if (i < d->n_vols && strcmp(d->vols[i]->id, v->id) == 0) {
        free(d->vols[i]);
        d->vols[i] = v;
        return 0;
    }
    if (d->n_vols == d->cap_vols) {
        size_t nc = d->cap_vols ? d->cap_vols * 2 : 64;
        struct dir_vol **nv = realloc(d->vols, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        d->vols = nv;
        d->cap_vols = nc;
    }
    memmove(d->vols + i + 1, d->vols + i, (d->n_vols - i) * sizeof(*d->vols));
    d->vols[i] = v;
    d->n_vols++;
    return 0;
}

static void vol_erase(struct dir_backend *d, const char *id)
{
    size_t i = vol_lower_bound(d, id);

    if (i < d->n_vols && strcmp(d->vols[i]->id, id) == 0) {
        free(d->vols[i]);
        memmove(d->vols + i, d->vols + i + 1, (d->n_vols - i - 1) * sizeof(*d->vols));
        d->n_vols--;
    }
}

static void vols_clear(struct dir_backend *d)
{
    for (size_t i = 0; i < d->n_vols; i++)
        free(d->vols[i]);
    free(d->vols);
    d->vols = NULL;
    d->n_vols = d->cap_vols = 0;
}

void dir__vol_to_be(const struct dir_backend *d, const struct dir_vol *v, struct be_volume *ret)
{
    (void)d;
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->id, sizeof(ret->id), "%s", v->full_id);
    snprintf(ret->key, sizeof(ret->key), "%s", v->key);
    snprintf(ret->name, sizeof(ret->name), "%s", v->name);
    ret->capacity_bytes = v->capacity;
    ret->access = BE_ACCESS_MOUNT;
    ret->source_kind = (enum be_source_kind)v->source_kind;
    snprintf(ret->source_id, sizeof(ret->source_id), "%s", v->source_id);
    ret->created_sec = v->created;
    ret->abnormal = v->damaged;
    snprintf(ret->condition, sizeof(ret->condition), "%s", v->damaged ? v->condition : "healthy");
    snprintf(ret->provisioning_uid, sizeof(ret->provisioning_uid), "%s", v->prov_uid);
}

/* Data dir path of the volume with key (claim keys contain '/', plain names never do). */
static int vol_data_path(const struct dir_backend *d, const char *key, char *ret, size_t cap)
{
    return strchr(key, '/') ? dir__path(ret, cap, "%s/%s/data", d->root, key)
                            : dir__path(ret, cap, "%s/_/%s/data", d->root, key);
}

/* Refresh the condition of a healthy volume: is its data directory there? */
static void vol_condition(const struct dir_backend *d, struct be_volume *v)
{
    char data[PATH_MAX];
    struct stat st;

    if (v->abnormal || vol_data_path(d, v->key, data, sizeof(data)) < 0)
        return;
    if (lstat(data, &st) < 0 || !S_ISDIR(st.st_mode)) {
        v->abnormal = true;
        snprintf(v->condition, sizeof(v->condition), "data directory missing");
    }
}

int dir__vol_get(struct dir_backend *d, const char *id, struct be_volume *ret, char *data_path,
                 size_t cap)
{
    struct dir_vol *v;

    if (!id)
        return -ENOENT;
    pthread_mutex_lock(&d->lock);
    v = dir__vol_find(d, id);
    if (v)
        dir__vol_to_be(d, v, ret);
    pthread_mutex_unlock(&d->lock);
    if (!v)
        return be_error(-ENOENT, "volume %.128s not found", id);
    vol_condition(d, ret);
    if (data_path && vol_data_path(d, ret->key, data_path, cap) < 0)
        return -ENAMETOOLONG;
    return 0;
}

int dir__mktemp(struct dir_backend *d, const char *prefix, char *ret, size_t cap)
{
    int r = dir__path(ret, cap, "%s/.tmp/%sXXXXXX", d->root, prefix);

    if (r < 0)
        return r;
    if (!mkdtemp(ret))
        return be_error(-errno, "cannot create a work directory in %s/.tmp: %s", d->root,
                        strerror(errno));
    return 0;
}

static int64_t now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

static int fs_free(const char *path, int64_t *ret)
{
    struct statvfs sv;

    if (statvfs(path, &sv) < 0)
        return be_error(-errno, "statvfs %s: %s", path, strerror(errno));
    *ret = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
    return 0;
}

/* ---- create ---- */

static int check_create_req(const struct be_create_req *req)
{
    if (!req || !req->name || !dir__valid_plain_name(req->name))
        return be_error(-EINVAL, "invalid volume name: want 1..128 bytes without '/' or control "
                                 "characters, not \".\" or \"..\"");
    if (!req->key)
        return be_error(-EINVAL, "volume key missing");
    if (req->key_is_claim && !dir__valid_claim_key(req->key))
        return be_error(-EINVAL,
                        "invalid claim key \"%.80s\": want <namespace>/<claim name> "
                        "(DNS-1123 label / subdomain)",
                        req->key);
    if (!req->key_is_claim && !dir__valid_plain_name(req->key))
        return be_error(-EINVAL, "invalid volume key: want a plain name like a CSI name");
    if (req->access != BE_ACCESS_MOUNT)
        return be_error(-EINVAL, "the directory backend serves only mount volumes");
    if (dir__quota_params(req->params, req->n_params, NULL) < 0)
        return -EINVAL;
    if (req->required_bytes < 0 || req->limit_bytes < 0)
        return be_error(-EINVAL, "negative capacity");
    if (req->limit_bytes > 0 && req->limit_bytes < req->required_bytes)
        return be_error(-ERANGE, "capacity limit %lld is below the required %lld",
                        (long long)req->limit_bytes, (long long)req->required_bytes);
    if (req->source_kind != BE_SOURCE_NONE && req->source_kind != BE_SOURCE_SNAPSHOT &&
        req->source_kind != BE_SOURCE_VOLUME)
        return be_error(-EINVAL, "invalid content source kind");
    if (req->source_kind != BE_SOURCE_NONE &&
        (!req->source_id || !*req->source_id || strlen(req->source_id) > BE_ID_MAX))
        return be_error(-EINVAL, "content source id missing or too long");
    if (req->provisioning_uid && req->provisioning_uid[0] && !be_valid_uid(req->provisioning_uid))
        return be_error(-EINVAL, "invalid provisioning mark: want 1..%d bytes of [A-Za-z0-9-]",
                        BE_UID_MAX);
    return 0;
}

/* An existing volume for the same key: return it when compatible, renamed when asked. */
static int create_existing(struct dir_backend *d, const struct be_create_req *req,
                           struct be_volume *ex, struct be_volume *ret)
{
    const char *src = req->source_kind == BE_SOURCE_NONE ? "" : req->source_id;
    char path[PATH_MAX], new_id[BE_ID_MAX + 1];
    struct dir_vol *v, *nv = NULL;
    int r;

    vol_condition(d, ex);
    if (ex->abnormal)
        return be_error(-EIO, "volume %s for key %s exists but is damaged: %s", ex->id, ex->key,
                        ex->condition);
    if (ex->capacity_bytes < req->required_bytes ||
        (req->limit_bytes > 0 && ex->capacity_bytes > req->limit_bytes) ||
        ex->source_kind != req->source_kind || strcmp(ex->source_id, src) != 0)
        return be_error(-EEXIST,
                        "volume %s for key %s exists with %lld bytes and source \"%s\", "
                        "incompatible with the request",
                        ex->id, ex->key, (long long)ex->capacity_bytes, ex->source_id);
    if (strcmp(ex->name, req->name) != 0) {
        /* Another name takes the volume over (a claim that comes back under the same key):
         * the new owner and the next generation go into one atomic meta write, so the ids
         * issued to earlier owners name nothing from now on. */
        pthread_mutex_lock(&d->lock);
        v = dir__vol_find(d, ex->id);
        if (v)
            nv = vol_dup(v, req->name, v->capacity);
        pthread_mutex_unlock(&d->lock);
        if (!v)
            return be_error(-ENOENT, "volume %s vanished", ex->id);
        if (!nv)
            return -ENOMEM;
        /* the new owner's provisioning mark (or none) goes into the same write */
        snprintf(nv->prov_uid, sizeof(nv->prov_uid), "%s",
                 req->provisioning_uid ? req->provisioning_uid : "");
        r = dir__vol_rel(nv->key, nv->key_is_claim, path, sizeof(path));
        if (r == 0) {
            char vp[PATH_MAX];
            nv->gen++;
            dir__vol_id_gen(path, nv->gen, nv->full_id);
            r = dir__path(vp, sizeof(vp), "%s/%s", d->root, path);
            if (r == 0)
                r = vol_meta_write(vp, nv);
        }
        if (r < 0) {
            free(nv);
            return r;
        }
        snprintf(new_id, sizeof(new_id), "%s", nv->full_id);
        pthread_mutex_lock(&d->lock);
        r = vol_insert(d, nv);
        pthread_mutex_unlock(&d->lock);
        if (r < 0) {
            free(nv);
            return r;
        }
        snprintf(ex->name, sizeof(ex->name), "%s", req->name);
        snprintf(ex->id, sizeof(ex->id), "%s", new_id);
        snprintf(ex->provisioning_uid, sizeof(ex->provisioning_uid), "%s",
                 req->provisioning_uid ? req->provisioning_uid : "");
        *ret = *ex;
        return 0; /* vol_meta_write synced the new owner */
    }
    /* A retry: the first attempt may have failed its flush after the rename, or still wait for
     * it; answer the existing volume only once it is durable. */
    r = dir__commit(d);
    if (r < 0)
        return r;
    *ret = *ex;
    return 0;
}

/* Where the content of a source lives and its capacity. */
static int create_source(struct dir_backend *d, const struct be_create_req *req, char *src_path,
                         size_t cap, int64_t *ret_cap)
{
    if (req->source_kind == BE_SOURCE_SNAPSHOT) {
        struct dir_snap *s;
        char name[BE_ID_MAX + 1] = "";
        int64_t scap = 0;
        bool damaged = false;

        pthread_mutex_lock(&d->lock);
        s = dir__snap_find(d, req->source_id);
        if (s) {
            snprintf(name, sizeof(name), "%s", s->name);
            scap = s->source_capacity;
            damaged = s->damaged;
        }
        pthread_mutex_unlock(&d->lock);
        if (!s)
            return be_error(-ENOENT, "source snapshot %.128s not found", req->source_id);
        if (damaged)
            return be_error(-EIO, "source snapshot %.128s is damaged", req->source_id);
        *ret_cap = scap;
        return dir__path(src_path, cap, "%s/.snapshots/%s/data", d->root, name);
    }
    if (req->source_kind == BE_SOURCE_VOLUME) {
        struct be_volume sv;
        int r = dir__vol_get(d, req->source_id, &sv, src_path, cap);

        if (r < 0)
            return be_error(r, "source volume %.128s not found", req->source_id);
        if (sv.abnormal)
            return be_error(-EIO, "source volume %s is damaged: %s", sv.id, sv.condition);
        *ret_cap = sv.capacity_bytes;
        return 0;
    }
    *ret_cap = 0;
    src_path[0] = '\0';
    return 0;
}

/* Make <root>/<first component of rel> when missing (lock held). */
static int ensure_parent(struct dir_backend *d, const char *rel)
{
    char parent[PATH_MAX];
    const char *slash = strchr(rel, '/');

    if (dir__path(parent, sizeof(parent), "%s/%.*s", d->root, (int)(slash - rel), rel) < 0)
        return -ENAMETOOLONG;
    /* made durable by the commit after the volume's rename; a namespace left empty by a crash
     * is removed by recovery */
    if (mkdir(parent, 0700) == 0 || errno == EEXIST)
        return 0;
    return be_error(-errno, "cannot create %s: %s", parent, strerror(errno));
}

/* Remove <root>/<first component of rel> when empty (lock held). */
static void drop_parent(struct dir_backend *d, const char *rel)
{
    char parent[PATH_MAX];
    const char *slash = strchr(rel, '/');

    if (dir__path(parent, sizeof(parent), "%s/%.*s", d->root, (int)(slash - rel), rel) < 0)
        return;
    /* unsynced: should the removal be lost, recovery removes the empty namespace */
    (void)rmdir(parent);
}

static int dir_create(struct backend *b, const struct be_create_req *req, struct be_volume *ret)
{
    struct dir_backend *d = dir__of(b);
    char rel[PATH_MAX], id[BE_ID_MAX + 1], src[PATH_MAX], tmp[PATH_MAX], data[PATH_MAX];
    char final[PATH_MAX];
    struct be_volume ex;
    struct dir_vol *v;
    int64_t capacity, src_cap = 0, avail, inodes = 0;
    bool found;
    int r;

    r = check_create_req(req);
    if (r == 0)
        r = dir__quota_params(req->params, req->n_params, &inodes);
    if (r < 0)
        return r;
    r = dir__vol_rel(req->key, req->key_is_claim, rel, sizeof(rel));
    if (r < 0)
        return r;
    dir__vol_id(rel, id);

    pthread_mutex_lock(&d->lock);
    v = vol_find_base(d, id);
    found = v != NULL;
    if (found)
        dir__vol_to_be(d, v, &ex);
    pthread_mutex_unlock(&d->lock);
    if (found)
        return create_existing(d, req, &ex, ret);

    if (req->required_bytes > 0)
        capacity = req->required_bytes;
    else if (req->limit_bytes > 0 && req->limit_bytes < DIR_DEFAULT_CAPACITY)
        capacity = req->limit_bytes;
    else
        capacity = DIR_DEFAULT_CAPACITY;
    r = create_source(d, req, src, sizeof(src), &src_cap);
    if (r < 0)
        return r;
    if (req->source_kind != BE_SOURCE_NONE) {
        if (req->limit_bytes > 0 && req->limit_bytes < src_cap)
            return be_error(-ERANGE, "the source %s has %lld bytes, more than the limit %lld",
                            req->source_id, (long long)src_cap, (long long)req->limit_bytes);
        if (capacity < src_cap)
            capacity = src_cap;
    }
    r = fs_free(d->root, &avail);
    if (r < 0)
        return r;
    if (req->required_bytes > avail)
        return be_error(-ENOSPC, "%lld bytes requested, %lld free under %s",
                        (long long)req->required_bytes, (long long)avail, d->root);

    v = vol_new(id, req->key, req->name, req->source_kind ? req->source_id : "", "");
    if (!v)
        return -ENOMEM;
    v->capacity = capacity;
    v->created = now_sec();
    v->source_kind = (uint8_t)req->source_kind;
    v->key_is_claim = req->key_is_claim;
    snprintf(v->prov_uid, sizeof(v->prov_uid), "%s",
             req->provisioning_uid ? req->provisioning_uid : "");

    r = dir__mktemp(d, "v-", tmp, sizeof(tmp));
    if (r < 0)
        goto out_free;
    r = dir__path(data, sizeof(data), "%s/data", tmp);
    if (r == 0)
        r = dir__path(final, sizeof(final), "%s/%s", d->root, rel);
    if (r < 0)
        goto out_tmp;
    if (src[0]) {
        r = fsu_copy_tree(src, data);
    } else if (mkdir(data, 0700) < 0 || chmod(data, 0777) < 0) {
        r = be_error(-errno, "cannot create %s: %s", data, strerror(errno));
    }
    if (r == 0)
        r = dir__quota_prepare(d, data, v, inodes); /* id and limit before the final name */
    if (r < 0)
        goto out_tmp;
    /* A copied tree is fsynced file by file: its meta is too, before the rename, so that a
     * torn meta is never found beside data. An empty volume's meta shares the one flush after
     * the rename (vol_meta_write_fresh). */
    r = src[0] ? vol_meta_write(tmp, v) : vol_meta_write_fresh(tmp, v);
    if (r < 0)
        goto out_tmp;

    pthread_mutex_lock(&d->lock);
    r = ensure_parent(d, rel);
    if (r == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0)
        r = errno == EEXIST || errno == ENOTEMPTY
                ? be_error(-EEXIST, "%s is in the way and is not a volume of this backend", final)
                : be_error(-errno, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    if (r < 0) {
        pthread_mutex_unlock(&d->lock);
        goto out_tmp;
    }
    /* Renamed: the volume is whole. Should indexing fail (ENOMEM), recover() finds it. */
    r = vol_insert(d, v);
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        goto out_free;
    v = NULL;
    r = dir__commit(d); /* the rename, the namespace directory, the meta file: one flush */
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->lock);
    v = vol_find_base(d, id);
    if (v)
        dir__vol_to_be(d, v, ret);
    pthread_mutex_unlock(&d->lock);
    return v ? 0 : be_error(-ENOENT, "volume %s vanished", id);

out_tmp:
    fsu_rm_tree(tmp);
    dir__quota_release(d, v->projid);
out_free:
    free(v);
    return r;
}

/* ---- remove ---- */

/* Whether root contains sfx ending at '\0' or '/'. */
static bool path_has(const char *root, const char *sfx)
{
    size_t n = strlen(sfx);

    for (const char *p = strstr(root, sfx); p; p = strstr(p + 1, sfx))
        if (p[n] == '\0' || p[n] == '/')
            return true;
    return false;
}

/* Whether path is dir or lies below it (component-wise; dir "/" holds everything). */
static bool path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/*
 * The path of data_path inside its filesystem, as a mount's root field names it: the root of
 * the mount data_path is reached through (the longest mount point above it on that device)
 * joined with the rest of data_path. 0, or -ENOENT when no mount of dev holds it.
 */
static int fs_path_of(const struct mnt_table *t, unsigned maj, unsigned min, const char *data_path,
                      char *buf, size_t cap)
{
    const struct mnt_entry *best = NULL;

    for (size_t i = 0; i < t->n; i++) {
        const struct mnt_entry *e = &t->entries[i];

        if (e->major == maj && e->minor == min && path_under(data_path, e->mount_point) &&
            (!best || strlen(e->mount_point) > strlen(best->mount_point)))
            best = e;
    }
    if (!best)
        return -ENOENT;
    const char *rest =
        data_path + (strcmp(best->mount_point, "/") == 0 ? 0 : strlen(best->mount_point));
    const char *base = strcmp(best->root, "/") == 0 ? "" : best->root;
    return dir__path(buf, cap, "%s%s", base, rest[0] ? rest : "/");
}

/* -EBUSY when the data dir (or something below it) is a mount source, or something is
 * mounted inside the volume directory. A bind mount of the data dir is recognised by its
 * device and its path inside the filesystem: a volume of the same namespace and name under
 * another root on that filesystem (another node's, in a sandbox or a test) is not this one. */
static int vol_busy(const char *rel, const char *vol_path, const char *data_path)
{
    struct mnt_table t;
    struct stat st;
    char sfx[PATH_MAX], inside[PATH_MAX], fs_path[PATH_MAX];
    bool have_dev = stat(data_path, &st) == 0, exact = false;
    int r;

    if (dir__path(sfx, sizeof(sfx), "/%s/data", rel) < 0 ||
        dir__path(inside, sizeof(inside), "%s/", vol_path) < 0)
        return -ENAMETOOLONG;
    r = mnt_table_load(NULL, &t);
    if (r < 0)
        return r;
    if (have_dev)
        exact = fs_path_of(&t, major(st.st_dev), minor(st.st_dev), data_path, fs_path,
                           sizeof(fs_path)) == 0;
    r = 0;
    for (size_t i = 0; i < t.n && r == 0; i++) {
        const struct mnt_entry *e = &t.entries[i];
        bool same_dev = have_dev && e->major == major(st.st_dev) && e->minor == minor(st.st_dev);

        /* without the mount data_path is reached through, the old rule: any mount of the
         * device whose root ends in /<ns>/<claim>/data (too cautious, never too bold) */
        if (same_dev && (exact ? path_under(e->root, fs_path) : path_has(e->root, sfx)))
            r = be_error(-EBUSY, "volume data is mounted at %s", e->mount_point);
        else if (strncmp(e->mount_point, inside, strlen(inside)) == 0)
            r = be_error(-EBUSY, "something is mounted at %s", e->mount_point);
    }
    mnt_table_release(&t);
    return r;
}

static int dir_remove(struct backend *b, const char *id)
{
    struct dir_backend *d = dir__of(b);
    char key[BE_KEY_MAX + 1], rel[PATH_MAX], path[PATH_MAX], data[PATH_MAX], trash[PATH_MAX];
    char hex[17], base[BE_ID_MAX + 1];
    struct dir_vol *v;
    bool claim = false;
    uint32_t projid = 0;
    int r;

    if (!id)
        return 0;
    pthread_mutex_lock(&d->lock);
    v = dir__vol_find(d, id);
    if (v) {
        snprintf(key, sizeof(key), "%s", v->key);
        snprintf(base, sizeof(base), "%s", v->id);
        claim = v->key_is_claim;
        projid = v->projid;
    }
    pthread_mutex_unlock(&d->lock);
    /* Unknown, gone, or an id of an earlier owner: nothing of it to delete. It may be gone by
     * a removal whose flush failed or still runs (a retry racing the first attempt's answer):
     * answer only once that is durable too. */
    if (!v)
        return dir__commit(d);
    r = dir__vol_rel(key, claim, rel, sizeof(rel));
    if (r == 0)
        r = dir__path(path, sizeof(path), "%s/%s", d->root, rel);
    if (r == 0)
        r = dir__path(data, sizeof(data), "%s/data", path);
    if (r == 0)
        r = fsu_random_hex(hex, 8);
    if (r == 0)
        r = dir__path(trash, sizeof(trash), "%s/.trash/%s", d->root, hex);
    if (r < 0)
        return r;
    r = vol_busy(rel, path, data);
    if (r < 0)
        return r;

    pthread_mutex_lock(&d->lock);
    /* The caller's key lock keeps owners from changing meanwhile; checked again all the same,
     * since a removal by a stale id is the one mistake that loses a live claim's data. */
    if (!dir__vol_find(d, id)) {
        pthread_mutex_unlock(&d->lock);
        return dir__commit(d);
    }
    if (renameat2(AT_FDCWD, path, AT_FDCWD, trash, RENAME_NOREPLACE) < 0 && errno != ENOENT)
        r = be_error(-errno, "cannot move %s to %s: %s", path, trash, strerror(errno));
    if (r == 0)
        vol_erase(d, base);
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        return r;
    r = dir__commit(d); /* the rename out of the namespace and into .trash: one flush */
    if (r == 0)
        r = fsu_rm_tree(trash);
    if (r == 0)
        dir__quota_release(d, projid);
    pthread_mutex_lock(&d->lock);
    drop_parent(d, rel);
    pthread_mutex_unlock(&d->lock);
    return r;
}

/* Clear the provisioning mark: one atomic, synced meta write, then the index entry. The
 * caller holds the volume's key lock (as for every operation on it). */
static int dir_settle(struct backend *b, const char *id)
{
    struct dir_backend *d = dir__of(b);
    char rel[PATH_MAX], vp[PATH_MAX];
    struct dir_vol *v, *nv = NULL;
    int r;

    bool found, marked = false;

    pthread_mutex_lock(&d->lock);
    v = dir__vol_find(d, id);
    found = v && !v->damaged;
    if (found && v->prov_uid[0]) {
        marked = true;
        nv = vol_dup(v, v->name, v->capacity);
    }
    pthread_mutex_unlock(&d->lock);
    if (!found)
        return -ENOENT;
    if (!nv)
        return marked ? -ENOMEM : 0;
    nv->prov_uid[0] = '\0';
    r = dir__vol_rel(nv->key, nv->key_is_claim, rel, sizeof(rel));
    if (r == 0)
        r = dir__path(vp, sizeof(vp), "%s/%s", d->root, rel);
    if (r == 0)
        r = vol_meta_write(vp, nv);
    if (r == 0) {
        pthread_mutex_lock(&d->lock);
        r = vol_insert(d, nv);
        pthread_mutex_unlock(&d->lock);
    }
    if (r < 0)
        free(nv);
    return r;
}

/* ---- lookup, list ---- */

static int dir_lookup(struct backend *b, const char *id, struct be_volume *ret)
{
    return dir__vol_get(dir__of(b), id, ret, NULL, 0);
}

static int dir_lookup_key(struct backend *b, const char *key, struct be_volume *ret)
{
    struct dir_backend *d = dir__of(b);
    char rel[PATH_MAX], base[BE_ID_MAX + 1];
    struct dir_vol *v;
    bool claim = key && strchr(key, '/') != NULL; /* plain names never hold '/' */

    if (!key || (claim ? !dir__valid_claim_key(key) : !dir__valid_plain_name(key)) ||
        dir__vol_rel(key, claim, rel, sizeof(rel)) < 0)
        return -ENOENT;
    dir__vol_id(rel, base);
    pthread_mutex_lock(&d->lock);
    v = vol_find_base(d, base);
    if (v)
        dir__vol_to_be(d, v, ret);
    pthread_mutex_unlock(&d->lock);
    if (!v)
        return -ENOENT;
    vol_condition(d, ret);
    return 0;
}

static int dir_list(struct backend *b, const char *after, size_t max, struct be_volume_page *ret)
{
    struct dir_backend *d = dir__of(b);
    struct be_volume *items = NULL;
    size_t start, n;
    bool more;

    pthread_mutex_lock(&d->lock);
    start = 0;
    if (after && *after) {
        /* The index is sorted by generation-0 id; the token is an issued id. */
        struct dir_vol *at = dir__vol_find(d, after);
        char base[BE_ID_MAX + 1];
        uint64_t gen;

        dir__id_split(after, base, &gen);
        start = vol_lower_bound(d, at ? at->id : base);
        if (start < d->n_vols && strcmp(d->vols[start]->id, at ? at->id : base) == 0)
            start++;
    }
    n = d->n_vols - start;
    if (max > 0 && n > max)
        n = max;
    more = start + n < d->n_vols;
    if (n > 0) {
        items = calloc(n, sizeof(*items));
        if (!items) {
            pthread_mutex_unlock(&d->lock);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
            dir__vol_to_be(d, d->vols[start + i], &items[i]);
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < n; i++)
        vol_condition(d, &items[i]);
    ret->items = items;
    ret->n = n;
    ret->more = more;
    return 0;
}

/* ---- expand, capacity ---- */

static int dir_expand(struct backend *b, const char *id, int64_t required, int64_t limit,
                      struct be_volume *ret, bool *ret_node_expand)
{
    struct dir_backend *d = dir__of(b);
    char rel[PATH_MAX], path[PATH_MAX];
    struct dir_vol *v, *nv = NULL;
    struct be_volume cur;
    int r;

    if (required < 0 || limit < 0)
        return be_error(-EINVAL, "negative capacity");
    if (limit > 0 && required > limit)
        return be_error(-ERANGE, "required %lld is above the limit %lld", (long long)required,
                        (long long)limit);
    r = dir__vol_get(d, id, &cur, NULL, 0);
    if (r < 0)
        return r;
    if (cur.abnormal)
        return be_error(-EIO, "volume %s is damaged: %s", cur.id, cur.condition);
    if (required <= cur.capacity_bytes) {
        *ret = cur;
        *ret_node_expand = false;
        return 0;
    }
    pthread_mutex_lock(&d->lock);
    v = dir__vol_find(d, id);
    if (v)
        nv = vol_dup(v, v->name, required);
    pthread_mutex_unlock(&d->lock);
    if (!v)
        return be_error(-ENOENT, "volume %s vanished", id);
    if (!nv)
        return -ENOMEM;
    r = dir__vol_rel(nv->key, nv->key_is_claim, rel, sizeof(rel));
    if (r == 0)
        r = dir__path(path, sizeof(path), "%s/%s", d->root, rel);
    if (r == 0)
        r = dir__quota_resize(d, nv, required); /* the limit first: recover() evens it out */
    if (r == 0)
        r = vol_meta_write(path, nv);
    if (r < 0) {
        free(nv);
        return r;
    }
    cur.capacity_bytes = required;
    pthread_mutex_lock(&d->lock);
    r = vol_insert(d, nv);
    pthread_mutex_unlock(&d->lock);
    if (r < 0) {
        free(nv);
        return r;
    }
    *ret = cur;
    *ret_node_expand = false;
    return 0;
}

static int dir_capacity(struct backend *b, const struct be_param *params, size_t n_params,
                        int64_t *ret_available, int64_t *ret_max_volume)
{
    struct dir_backend *d = dir__of(b);
    int64_t avail, inodes;
    int r;

    r = dir__quota_params(params, n_params, &inodes);
    if (r < 0)
        return r;
    r = fs_free(d->root, &avail);
    if (r < 0)
        return r;
    if (inodes > 0 && !d->quota.enforced)
        avail = 0; /* such a class cannot be served here: CreateVolume would refuse it */
    *ret_available = avail;
    *ret_max_volume = avail;
    return 0;
}

/* ---- recover ---- */

static int ensure_dir(struct dir_backend *d, const char *sub)
{
    char path[PATH_MAX];
    struct stat st;
    int r = dir__path(path, sizeof(path), "%s/%s", d->root, sub);

    if (r < 0)
        return r;
    if (mkdir(path, 0700) == 0)
        return fsu_fsync_dir(d->root);
    if (errno != EEXIST)
        return be_error(-errno, "cannot create %s: %s", path, strerror(errno));
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return be_error(-ENOTDIR, "%s is not a directory", path);
    return 0;
}

/* Remove everything in <root>/<sub>; returns how many entries could not be removed. */
static size_t empty_dir(struct dir_backend *d, const char *sub)
{
    char path[PATH_MAX], child[PATH_MAX];
    struct dirent *de;
    size_t failed = 0;
    DIR *dd;

    if (dir__path(path, sizeof(path), "%s/%s", d->root, sub) < 0 || !(dd = opendir(path)))
        return 1;
    while ((de = readdir(dd))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (dir__path(child, sizeof(child), "%s/%s", path, de->d_name) < 0 ||
            fsu_rm_tree(child) < 0)
            failed++;
    }
    closedir(dd);
    fsu_fsync_dir(path);
    return failed;
}

static bool is_dir_at(DIR *dd, const struct dirent *de)
{
    struct stat st;

    if (de->d_type == DT_DIR)
        return true;
    if (de->d_type != DT_UNKNOWN)
        return false;
    return fstatat(dirfd(dd), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static int vols_add(struct dir_vol ***arr, size_t *n, size_t *cap, struct dir_vol *v)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct dir_vol **na = realloc(*arr, nc * sizeof(*na));
        if (!na)
            return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

static int vol_cmp(const void *a, const void *b)
{
    return strcmp((*(struct dir_vol *const *)a)->id, (*(struct dir_vol *const *)b)->id);
}

/* Remove the unfinished create at rel (vol_load): rename it into .trash, then remove it. An
 * unsynced rename is enough: should it be lost, the next recovery finds the same thing. */
static int vol_roll_back(struct dir_backend *d, const char *rel)
{
    char path[PATH_MAX], trash[PATH_MAX], hex[17];
    int r = fsu_random_hex(hex, 8);

    if (r == 0)
        r = dir__path(path, sizeof(path), "%s/%s", d->root, rel);
    if (r == 0)
        r = dir__path(trash, sizeof(trash), "%s/.trash/%s", d->root, hex);
    if (r < 0)
        return r;
    if (renameat2(AT_FDCWD, path, AT_FDCWD, trash, RENAME_NOREPLACE) < 0)
        return be_error(-errno, "cannot move %s to %s: %s", path, trash, strerror(errno));
    return fsu_rm_tree(trash);
}

/* Scan <root>/<top>/ for volume directories into arr. */
static int scan_top(struct dir_backend *d, const char *top, struct dir_vol ***arr, size_t *n,
                    size_t *cap, size_t *damaged)
{
    bool plain = strcmp(top, "_") == 0;
    char path[PATH_MAX], key[PATH_MAX], rel[PATH_MAX];
    struct dirent *de;
    DIR *dd;
    int r = 0;

    if (dir__path(path, sizeof(path), "%s/%s", d->root, top) < 0 || !(dd = opendir(path))) {
        (*damaged)++;
        return 0;
    }
    while (r == 0 && (de = readdir(dd))) {
        struct dir_vol *v;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (!is_dir_at(dd, de)) {
            (*damaged)++;
            continue;
        }
        if (plain)
            snprintf(key, sizeof(key), "%s", de->d_name);
        else if (dir__path(key, sizeof(key), "%s/%s", top, de->d_name) < 0)
            key[0] = '\0';
        if (plain ? !dir__valid_plain_name(key) : !dir__valid_claim_key(key)) {
            (*damaged)++;
            continue;
        }
        if (dir__vol_rel(key, !plain, rel, sizeof(rel)) < 0) {
            (*damaged)++;
            continue;
        }
        bool unfinished;

        v = vol_load(d, rel, key, !plain, &unfinished);
        if (v && unfinished) {
            free(v);
            if (vol_roll_back(d, rel) < 0)
                (*damaged)++;
            else
                d->rolled_back++;
            continue;
        }
        if (!v)
            r = -ENOMEM;
        else if (vols_add(arr, n, cap, v) < 0) {
            free(v);
            r = -ENOMEM;
        }
    }
    closedir(dd);
    if (r == 0 && rmdir(path) == 0)
        fsu_fsync_dir(d->root); /* an empty namespace left by a crash during remove */
    return r;
}

static int dir_recover(struct backend *b)
{
    struct dir_backend *d = dir__of(b);
    struct dir_vol **arr = NULL, **old;
    size_t n = 0, cap = 0, damaged = 0, n_old;
    struct dirent *de;
    DIR *dd;
    size_t cleared = 0;
    int r;

    dir__quota_detect(d);
    r = ensure_dir(d, ".tmp");
    if (r == 0)
        r = ensure_dir(d, ".trash");
    if (r == 0)
        r = ensure_dir(d, ".snapshots");
    if (r < 0)
        return r;
    damaged += empty_dir(d, ".tmp");
    damaged += empty_dir(d, ".trash");
    d->rolled_back = 0;

    dd = opendir(d->root);
    if (!dd)
        return be_error(-errno, "cannot read %s: %s", d->root, strerror(errno));
    while (r == 0 && (de = readdir(dd))) {
        if (de->d_name[0] == '.')
            continue;
        if (!is_dir_at(dd, de) ||
            (strcmp(de->d_name, "_") != 0 && !valid_label(de->d_name, strlen(de->d_name)))) {
            damaged++;
            continue;
        }
        r = scan_top(d, de->d_name, &arr, &n, &cap, &damaged);
    }
    closedir(dd);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            free(arr[i]);
        free(arr);
        return be_error(r, "cannot scan %s: %s", d->root, strerror(-r));
    }
    if (n > 0)
        qsort(arr, n, sizeof(*arr), vol_cmp);

    pthread_mutex_lock(&d->lock);
    old = d->vols;
    n_old = d->n_vols;
    d->vols = arr;
    d->n_vols = n;
    d->cap_vols = cap;
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < n_old; i++)
        free(old[i]);
    free(old);

    /* Snapshots. */
    {
        char path[PATH_MAX];

        r = dir__path(path, sizeof(path), "%s/.snapshots", d->root);
        if (r < 0)
            return r;
        pthread_mutex_lock(&d->lock);
        dir__snaps_clear(d);
        pthread_mutex_unlock(&d->lock);
        dd = opendir(path);
        if (!dd)
            return be_error(-errno, "cannot read %s: %s", path, strerror(errno));
        while (r == 0 && (de = readdir(dd))) {
            struct dir_snap *s;

            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (!is_dir_at(dd, de) || !dir__valid_plain_name(de->d_name)) {
                damaged++;
                continue;
            }
            s = dir__snap_load(d, de->d_name);
            if (!s) {
                r = -ENOMEM;
                break;
            }
            pthread_mutex_lock(&d->lock);
            r = dir__snap_insert(d, s);
            pthread_mutex_unlock(&d->lock);
            if (r < 0)
                free(s);
        }
        closedir(dd);
        if (r < 0)
            return be_error(r, "cannot scan %s: %s", path, strerror(-r));
    }

    r = dir__quota_reconcile(d, &cleared);
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->lock);
    d->damaged = damaged;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* ---- lifecycle ---- */

static void dir_free(struct backend *b)
{
    struct dir_backend *d = dir__of(b);

    if (!d)
        return;
    vols_clear(d);
    dir__snaps_clear(d);
    dir__quota_close(&d->quota);
    commit_free(d->commit);
    pthread_mutex_destroy(&d->lock);
    free(d->root);
    free(d->node_id);
    free(d);
}

static const struct be_ops dir_ops = {
    .name = "dir",
    .recover = dir_recover,
    .free = dir_free,
    .create = dir_create,
    .remove = dir_remove,
    .lookup = dir_lookup,
    .list = dir_list,
    .expand = dir_expand,
    .capacity = dir_capacity,
    .snapshot_create = dir__snapshot_create,
    .snapshot_remove = dir__snapshot_remove,
    .snapshot_lookup = dir__snapshot_lookup,
    .snapshot_list = dir__snapshot_list,
    .stage = dir__stage,
    .unstage = dir__unstage,
    .publish = dir__publish,
    .unpublish = dir__unpublish,
    .stats = dir__stats,
    .node_expand = dir__node_expand,
    .lookup_key = dir_lookup_key,
    .settle = dir_settle,
    .usage = dir__usage,
    .durability_stats = be_dir_commit_stats,
    .content_sources = true,
};

struct backend *be_dir_new(const char *root, const char *node_id)
{
    _cleanup_free_ char *real = NULL;
    struct dir_backend *d;
    struct stat st;

    if (!root || root[0] != '/') {
        be_error(-EINVAL, "the directory backend root must be an absolute path");
        return NULL;
    }
    real = realpath(root, NULL);
    if (!real) {
        be_error(-errno, "directory backend root %s: %s", root, strerror(errno));
        return NULL;
    }
    if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        be_error(-ENOTDIR, "directory backend root %s is not a directory", root);
        return NULL;
    }
    if (strlen(real) > DIR_ROOT_MAX || strcmp(real, "/") == 0) {
        be_error(-EINVAL, "directory backend root %s: too long or the filesystem root", root);
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    if (!d) {
        be_error(-ENOMEM, "out of memory");
        return NULL;
    }
    d->base.ops = &dir_ops;
    dir__quota_init(&d->quota);
    d->root = TAKE_PTR(real);
    d->node_id = strdup(node_id ? node_id : "");
    if (!d->node_id || commit_new(d->root, &d->commit) < 0 ||
        pthread_mutex_init(&d->lock, NULL) != 0) {
        commit_free(d->commit);
        free(d->node_id);
        free(d->root);
        free(d);
        be_error(-ENOMEM, "out of memory");
        return NULL;
    }
    return &d->base;
}

size_t be_dir_rolled_back_count(struct backend *b)
{
    struct dir_backend *d = dir__of(b);
    size_t n;

    pthread_mutex_lock(&d->lock);
    n = d->rolled_back;
    pthread_mutex_unlock(&d->lock);
    return n;
}

void be_dir_commit_stats(struct backend *b, uint64_t *ret_waits, uint64_t *ret_flushes)
{
    struct commit_stats st;

    commit_get_stats(dir__of(b)->commit, &st);
    *ret_waits = st.waits;
    *ret_flushes = st.flushes;
}

size_t be_dir_damaged_count(struct backend *b)
{
    struct dir_backend *d = dir__of(b);
    size_t n;

    pthread_mutex_lock(&d->lock);
    n = d->damaged;
    pthread_mutex_unlock(&d->lock);
    return n;
}
