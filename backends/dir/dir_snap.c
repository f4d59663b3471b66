/*
 * Snapshots of the directory backend: a snapshot is a full copy of a volume's data/ tree in
 * <root>/.snapshots/<name>/data, with snapshot.meta beside it. It is built in .tmp and renamed
 * into place like a volume (see the design note in dir.c). The copy is taken from the live
 * tree: it is crash-consistent only when nothing writes to the volume during the copy.
 *
 * Threading: as dir.c; the index lock is never held across the copy or a tree removal.
 */
#include "dir_internal.h"
#include "fsutil.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static struct dir_snap *snap_new(const char *id, const char *name, const char *source,
                                 const char *condition)
{
    size_t li = strlen(id) + 1, ln = strlen(name) + 1, ls = strlen(source) + 1;
    size_t lc = strlen(condition) + 1;
    struct dir_snap *s = calloc(1, sizeof(*s) + li + ln + ls + lc);
    char *p;

    if (!s)
        return NULL;
    p = s->id;
    memcpy(p, id, li);
    p += li;
    s->name = memcpy(p, name, ln);
    p += ln;
    s->source_volume_id = memcpy(p, source, ls);
    p += ls;
    s->condition = memcpy(p, condition, lc);
    return s;
}

/* ---- index (lock held) ---- */

static size_t snap_lower_bound(const struct dir_backend *d, const char *id)
{
    size_t lo = 0, hi = d->n_snaps;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->snaps[mid]->id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct dir_snap *dir__snap_find(struct dir_backend *d, const char *id)
{
    size_t i = snap_lower_bound(d, id);

    return i < d->n_snaps && strcmp(d->snaps[i]->id, id) == 0 ? d->snaps[i] : NULL;
}

int dir__snap_insert(struct dir_backend *d, struct dir_snap *s)
{
    size_t i = snap_lower_bound(d, s->id);

    if (i < d->n_snaps && strcmp(d->snaps[i]->id, s->id) == 0) {
        free(d->snaps[i]);
        d->snaps[i] = s;
        return 0;
    }
    if (d->n_snaps == d->cap_snaps) {
        size_t nc = d->cap_snaps ? d->cap_snaps * 2 : 32;
        struct dir_snap **ns = realloc(d->snaps, nc * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        d->snaps = ns;
        d->cap_snaps = nc;
    }
    memmove(d->snaps + i + 1, d->snaps + i, (d->n_snaps - i) * sizeof(*d->snaps));
    d->snaps[i] = s;
    d->n_snaps++;
    return 0;
}

static void snap_erase(struct dir_backend *d, const char *id)
{
    size_t i = snap_lower_bound(d, id);

    if (i < d->n_snaps && strcmp(d->snaps[i]->id, id) == 0) {
        free(d->snaps[i]);
        memmove(d->snaps + i, d->snaps + i + 1, (d->n_snaps - i - 1) * sizeof(*d->snaps));
        d->n_snaps--;
    }
}

void dir__snaps_clear(struct dir_backend *d)
{
    for (size_t i = 0; i < d->n_snaps; i++)
        free(d->snaps[i]);
    free(d->snaps);
    d->snaps = NULL;
    d->n_snaps = d->cap_snaps = 0;
}

static void snap_to_be(const struct dir_snap *s, struct be_snapshot *ret)
{
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->id, sizeof(ret->id), "%s", s->id);
    snprintf(ret->name, sizeof(ret->name), "%s", s->name);
    snprintf(ret->source_volume_id, sizeof(ret->source_volume_id), "%s", s->source_volume_id);
    ret->size_bytes = s->size;
    ret->created_sec = s->created;
    ret->created_nsec = s->created_nsec;
    ret->ready = !s->damaged;
}

/* ---- meta ---- */

static int snap_meta_write(const char *dir, const struct dir_snap *s)
{
    char path[PATH_MAX], buf[1024];
    int n, r;

    if (strchr(s->name, '\n') || strchr(s->source_volume_id, '\n'))
        return be_error(-EINVAL, "a metadata value of snapshot %s holds a newline", s->id);
    r = dir__path(path, sizeof(path), "%s/%s", dir, DIR_SNAPSHOT_META);
    if (r < 0)
        return r;
    n = snprintf(buf, sizeof(buf),
                 "version=1\nid=%s\nname=%s\nsource_volume_id=%s\nsize=%lld\n"
                 "source_capacity=%lld\ncreated=%lld\ncreated_nsec=%d\n",
                 s->id, s->name, s->source_volume_id, (long long)s->size,
                 (long long)s->source_capacity, (long long)s->created, (int)s->created_nsec);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return be_error(-ENAMETOOLONG, "metadata of snapshot %s too long", s->id);
    return fsu_write_atomic(path, buf, (size_t)n, 0600);
}

static const char *snap_meta_check(const struct dir__kv *kv, size_t n, const char *id,
                                   const char *name, struct dir_snap *s, const char **ret_source)
{
    const char *v;
    int64_t x;

    v = dir__meta_get(kv, n, "id");
    if (!v || strcmp(v, id) != 0)
        return "metadata: id missing or not the one of this location";
    v = dir__meta_get(kv, n, "name");
    if (!v || strcmp(v, name) != 0)
        return "metadata: name missing or not the one of this location";
    v = dir__meta_get(kv, n, "source_volume_id");
    if (!v || !*v || strlen(v) > BE_ID_MAX)
        return "metadata: source_volume_id missing or invalid";
    *ret_source = v;
    if (!dir__parse_i64(dir__meta_get(kv, n, "size"), 0, &x))
        return "metadata: size missing or invalid";
    s->size = x;
    if (!dir__parse_i64(dir__meta_get(kv, n, "source_capacity"), 0, &x))
        return "metadata: source_capacity missing or invalid";
    s->source_capacity = x;
    if (!dir__parse_i64(dir__meta_get(kv, n, "created"), 0, &x))
        return "metadata: created missing or invalid";
    s->created = x;
    if (!dir__parse_i64(dir__meta_get(kv, n, "created_nsec"), 0, &x) || x > 999999999)
        return "metadata: created_nsec missing or invalid";
    s->created_nsec = (int32_t)x;
    return NULL;
}

struct dir_snap *dir__snap_load(struct dir_backend *d, const char *name)
{
    _cleanup_free_ char *text = NULL;
    char path[PATH_MAX], meta[PATH_MAX], data[PATH_MAX], id[BE_ID_MAX + 1];
    struct dir__kv kv[32];
    struct dir_snap tmp = {0}, *s;
    const char *source = "", *reason = NULL;
    struct stat st;
    size_t len;
    int r, n;

    if (!dir__valid_plain_name(name))
        return NULL;
    dir__snap_id(name, id);
    if (dir__path(path, sizeof(path), "%s/.snapshots/%s", d->root, name) < 0 ||
        dir__path(meta, sizeof(meta), "%s/%s", path, DIR_SNAPSHOT_META) < 0 ||
        dir__path(data, sizeof(data), "%s/data", path) < 0)
        return NULL;
    dir__remove_meta_temps(path, DIR_SNAPSHOT_META);
    r = fsu_read_file(meta, DIR_META_MAX, &text, &len);
    if (r == -ENOMEM)
        return NULL;
    if (r < 0)
        reason = "metadata missing or unreadable";
    else if (strlen(text) != len || (n = dir__meta_parse(text, kv, ARRAY_SIZE(kv))) < 0)
        reason = "metadata garbled";
    else
        reason = snap_meta_check(kv, (size_t)n, id, name, &tmp, &source);
    if (!reason && (lstat(data, &st) < 0 || !S_ISDIR(st.st_mode)))
        reason = "data directory missing";
    s = snap_new(id, name, reason ? "" : source, reason ? reason : "");
    if (!s)
        return NULL;
    if (reason) {
        s->damaged = true;
    } else {
        s->size = tmp.size;
        s->source_capacity = tmp.source_capacity;
        s->created = tmp.created;
        s->created_nsec = tmp.created_nsec;
    }
    return s;
}

/* ---- operations ---- */

int dir__snapshot_create(struct backend *b, const char *name, const char *source_volume_id,
                         struct be_snapshot *ret)
{
    struct dir_backend *d = dir__of(b);
    char id[BE_ID_MAX + 1], src[PATH_MAX], tmp[PATH_MAX], data[PATH_MAX], final[PATH_MAX];
    char snaps[PATH_MAX];
    struct be_snapshot ex;
    struct be_volume vol;
    struct dir_snap *s;
    struct timespec ts;
    int64_t bytes, inodes;
    bool found;
    int r;

    if (!dir__valid_plain_name(name))
        return be_error(-EINVAL, "invalid snapshot name: want 1..128 bytes without '/' or "
                                 "control characters, not \".\" or \"..\"");
    if (!source_volume_id || !*source_volume_id || strlen(source_volume_id) > BE_ID_MAX)
        return be_error(-EINVAL, "source volume id missing or too long");
    dir__snap_id(name, id);

    pthread_mutex_lock(&d->lock);
    s = dir__snap_find(d, id);
    found = s != NULL;
    if (found)
        snap_to_be(s, &ex);
    pthread_mutex_unlock(&d->lock);
    if (found) {
        if (!ex.ready)
            return be_error(-EIO, "snapshot %s exists but is damaged", id);
        if (strcmp(ex.source_volume_id, source_volume_id) != 0)
            return be_error(-EEXIST, "snapshot %s exists for another source volume %s", name,
                            ex.source_volume_id);
        *ret = ex;
        return 0;
    }

    r = dir__vol_get(d, source_volume_id, &vol, src, sizeof(src));
    if (r < 0)
        return be_error(r, "source volume %.128s not found", source_volume_id);
    if (vol.abnormal)
        return be_error(-EIO, "source volume %s is damaged: %s", vol.id, vol.condition);

    s = snap_new(id, name, source_volume_id, "");
    if (!s)
        return -ENOMEM;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->created = ts.tv_sec;
    s->created_nsec = (int32_t)ts.tv_nsec;
    s->source_capacity = vol.capacity_bytes;

    r = dir__path(snaps, sizeof(snaps), "%s/.snapshots", d->root);
    if (r == 0)
        r = dir__path(final, sizeof(final), "%s/%s", snaps, name);
    if (r == 0)
        r = dir__mktemp(d, "s-", tmp, sizeof(tmp));
    if (r < 0)
        goto out_free;
    r = dir__path(data, sizeof(data), "%s/data", tmp);
    if (r == 0)
        r = fsu_copy_tree(src, data);
    if (r == 0)
        r = fsu_usage(data, &bytes, &inodes);
    if (r < 0)
        goto out_tmp;
    s->size = bytes;
    r = snap_meta_write(tmp, s); /* fsyncs tmp */
    if (r < 0)
        goto out_tmp;

    pthread_mutex_lock(&d->lock);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
        r = errno == EEXIST || errno == ENOTEMPTY
                ? be_error(-EEXIST, "%s is in the way and is not a snapshot of this backend", final)
                : be_error(-errno, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
        pthread_mutex_unlock(&d->lock);
        goto out_tmp;
    }
    snap_to_be(s, &ex);
    r = dir__snap_insert(d, s);
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        goto out_free; /* whole on disk; recover() indexes it */
    r = fsu_fsync_dir(snaps);
    if (r < 0)
        return r;
    *ret = ex;
    return 0;

out_tmp:
    fsu_rm_tree(tmp);
out_free:
    free(s);
    return r;
}

int dir__snapshot_remove(struct backend *b, const char *id)
{
    struct dir_backend *d = dir__of(b);
    char name[BE_ID_MAX + 1], path[PATH_MAX], trash[PATH_MAX], parent[PATH_MAX], hex[17];
    struct dir_snap *s;
    int r;

    if (!id)
        return 0;
    pthread_mutex_lock(&d->lock);
    s = dir__snap_find(d, id);
    if (s)
        snprintf(name, sizeof(name), "%s", s->name);
    pthread_mutex_unlock(&d->lock);
    if (!s)
        return 0;
    r = dir__path(path, sizeof(path), "%s/.snapshots/%s", d->root, name);
    if (r == 0)
        r = fsu_random_hex(hex, 8);
    if (r == 0)
        r = dir__path(trash, sizeof(trash), "%s/.trash/%s", d->root, hex);
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->lock);
    if (renameat2(AT_FDCWD, path, AT_FDCWD, trash, RENAME_NOREPLACE) < 0 && errno != ENOENT)
        r = be_error(-errno, "cannot move %s to %s: %s", path, trash, strerror(errno));
    if (r == 0)
        snap_erase(d, id);
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        return r;
    r = dir__path(parent, sizeof(parent), "%s/.snapshots", d->root);
    if (r == 0)
        r = fsu_fsync_dir(parent);
    if (r == 0)
        r = dir__path(parent, sizeof(parent), "%s/.trash", d->root);
    if (r == 0)
        r = fsu_fsync_dir(parent);
    if (r == 0)
        r = fsu_rm_tree(trash);
    return r;
}

int dir__snapshot_lookup(struct backend *b, const char *id, struct be_snapshot *ret)
{
    struct dir_backend *d = dir__of(b);
    struct dir_snap *s;

    if (!id)
        return -ENOENT;
    pthread_mutex_lock(&d->lock);
    s = dir__snap_find(d, id);
    if (s)
        snap_to_be(s, ret);
    pthread_mutex_unlock(&d->lock);
    return s ? 0 : be_error(-ENOENT, "snapshot %.128s not found", id);
}

int dir__snapshot_list(struct backend *b, const char *after, size_t max,
                       struct be_snapshot_page *ret)
{
    struct dir_backend *d = dir__of(b);
    struct be_snapshot *items = NULL;
    size_t start, n;
    bool more;

    pthread_mutex_lock(&d->lock);
    start = after && *after ? snap_lower_bound(d, after) : 0;
    if (start < d->n_snaps && after && strcmp(d->snaps[start]->id, after) == 0)
        start++;
    n = d->n_snaps - start;
    if (max > 0 && n > max)
        n = max;
    more = start + n < d->n_snaps;
    if (n > 0) {
        items = calloc(n, sizeof(*items));
        if (!items) {
            pthread_mutex_unlock(&d->lock);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
            snap_to_be(d->snaps[start + i], &items[i]);
    }
    pthread_mutex_unlock(&d->lock);
    ret->items = items;
    ret->n = n;
    ret->more = more;
    return 0;
}
