/*
 * Names, ids and tags of the LVM backend.
 *
 * LV name: "ord-" + the key with '/' turned into '.' and every byte outside [A-Za-z0-9.-]
 * turned into '+', cut to a budget, + "-" + 16 hex digits of SHA-256(key). It never holds '_'
 * (LVM reserves "_mlog", "_rimage", ... inside names), never starts with '-' and never starts
 * with "snapshot" or "pvmove". The budget counts '-' twice because device-mapper doubles it in
 * "<vg>-<lv>" and that name must stay below 128 bytes; with a VG of at most 32 bytes it does.
 *
 * Tags: "ordinal.csi.dev/<field>=<value>", values encoded so that any byte survives (a byte
 * outside [A-Za-z0-9_+.:/-] becomes "#xx"). Fields: key, name, size (bytes requested),
 * access (mount|block), fs (mount only), mkfs (when given), created (seconds), gen (the
 * generation, from 1 on; absent is 0). lvcreate gets all of them in one command, so LVM's
 * metadata holds an LV either with all of them or not at all; a change of owner swaps name and
 * gen in one lvchange.
 *
 * Thin volumes add pool (the thin pool) and source ("snapshot:<id>" or "volume:<id>" for a
 * restore or clone) before created. Snapshot LVs are "ors-" + the snapshot name as above, with
 * tags snap (CSI name), source (volume id), size, access, fs, created, and ids
 * "lvm:<vg>/<ors-...>".
 *
 * Ids: "lvm:<vg>/<lv>", and "lvm:<vg>/<lv>/<gen>" once the LV has changed owner (neither VG
 * nor LV names hold '/'); an id whose generation is not the LV's current one names nothing.
 *
 * Threading: pure functions.
 */
#include "lvm_internal.h"

#include "fsutil.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool lvm_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '_' || c == '.' || c == '-';
}

bool lvm__valid_vg_name(const char *s)
{
    size_t n;

    if (!s)
        return false;
    n = strlen(s);
    if (n < 1 || n > LVM_VG_NAME_MAX || s[0] == '-' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!lvm_name_char(s[i]))
            return false;
    return true;
}

bool lvm__valid_pool_name(const char *s)
{
    size_t n;

    if (!s)
        return false;
    n = strlen(s);
    if (n < 1 || n > LVM_LV_NAME_MAX || s[0] == '-' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!lvm_name_char(s[i]))
            return false;
    return true;
}

static bool is_name_with(const char *s, const char *prefix)
{
    size_t n, pl = strlen(prefix);

    if (!s)
        return false;
    n = strlen(s);
    /* prefix + at least nothing + "-" + 16 lower-case hex digits */
    if (n < pl + 1 + LVM_HASH_HEX || n > LVM_LV_NAME_MAX || strncmp(s, prefix, pl) != 0 ||
        s[n - LVM_HASH_HEX - 1] != '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!lvm_name_char(s[i]) || s[i] == '_')
            return false;
    for (size_t i = n - LVM_HASH_HEX; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool lvm__is_our_lv_name(const char *s)
{
    return is_name_with(s, LVM_NAME_PREFIX);
}

bool lvm__is_our_snap_lv_name(const char *s)
{
    return is_name_with(s, LVM_SNAP_PREFIX);
}

static void name_with(const char *prefix, const char *key, char *ret)
{
    char hex[65];
    size_t o = 0, budget = LVM_NAME_KEY_BUDGET;
    size_t pl = strlen(prefix);

    fsu_sha256_hex(key, strlen(key), hex);
    memcpy(ret, prefix, pl);
    o = pl;
    for (const char *p = key; *p; p++) {
        char c = *p;
        size_t cost;

        if (c == '/')
            c = '.';
        else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '-'))
            c = '+';
        cost = c == '-' ? 2 : 1;
        if (cost > budget)
            break;
        budget -= cost;
        ret[o++] = c;
    }
    ret[o++] = '-';
    memcpy(ret + o, hex, LVM_HASH_HEX);
    o += LVM_HASH_HEX;
    ret[o] = '\0';
}

void lvm__lv_name(const char *key, char *ret)
{
    name_with(LVM_NAME_PREFIX, key, ret);
}

void lvm__snap_lv_name(const char *name, char *ret)
{
    name_with(LVM_SNAP_PREFIX, name, ret);
}

int lvm__snap_id(const char *vg, const char *lv, char *ret)
{
    int n = snprintf(ret, BE_ID_MAX + 1, "lvm:%s/%s", vg, lv);

    if (n < 0 || n > BE_ID_MAX)
        return -ENAMETOOLONG;
    return 0;
}

int lvm__parse_snap_id(const char *id, char *ret_vg, char *ret_lv)
{
    const char *p, *slash;
    size_t vl, ll;

    if (!id || strncmp(id, "lvm:", 4) != 0 || strlen(id) > BE_ID_MAX)
        return -ENOENT;
    p = id + 4;
    slash = strchr(p, '/');
    if (!slash || strchr(slash + 1, '/'))
        return -ENOENT;
    vl = (size_t)(slash - p);
    ll = strlen(slash + 1);
    if (vl < 1 || vl > LVM_VG_NAME_MAX || ll > LVM_LV_NAME_MAX)
        return -ENOENT;
    memcpy(ret_vg, p, vl);
    ret_vg[vl] = '\0';
    memcpy(ret_lv, slash + 1, ll + 1);
    if (!lvm__valid_vg_name(ret_vg) || !lvm__is_our_snap_lv_name(ret_lv))
        return -ENOENT;
    return 0;
}

int lvm__vol_id(const char *vg, const char *lv, int64_t gen, char *ret)
{
    int n = gen > 0 ? snprintf(ret, BE_ID_MAX + 1, "lvm:%s/%s/%lld", vg, lv, (long long)gen)
                    : snprintf(ret, BE_ID_MAX + 1, "lvm:%s/%s", vg, lv);

    if (n < 0 || n > BE_ID_MAX)
        return -ENAMETOOLONG;
    return 0;
}

int lvm__parse_id(const char *id, char *ret_vg, char *ret_lv, int64_t *ret_gen)
{
    const char *p, *slash, *gslash;
    char lv[LVM_LV_NAME_MAX + 1];
    int64_t gen = 0;
    size_t vl, ll;

    if (!id || strncmp(id, "lvm:", 4) != 0 || strlen(id) > BE_ID_MAX)
        return -ENOENT;
    p = id + 4;
    slash = strchr(p, '/');
    if (!slash)
        return -ENOENT;
    vl = (size_t)(slash - p);
    if (vl < 1 || vl > LVM_VG_NAME_MAX)
        return -ENOENT;
    gslash = strchr(slash + 1, '/');
    if (gslash) {
        /* a generation is written from 1 on, without leading zeros: one spelling per id */
        if (gslash[1] < '1' || gslash[1] > '9' || !lvm__parse_u63(gslash + 1, &gen))
            return -ENOENT;
        ll = (size_t)(gslash - slash - 1);
    } else {
        ll = strlen(slash + 1);
    }
    if (ll > LVM_LV_NAME_MAX)
        return -ENOENT;
    memcpy(lv, slash + 1, ll);
    lv[ll] = '\0';
    memcpy(ret_vg, p, vl);
    ret_vg[vl] = '\0';
    if (!lvm__valid_vg_name(ret_vg) || !lvm__is_our_lv_name(lv))
        return -ENOENT;
    snprintf(ret_lv, LVM_LV_NAME_MAX + 1, "%s", lv);
    *ret_gen = gen;
    return 0;
}

/* ---- tags ---- */

static bool tag_plain(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '+' || c == '.' || c == ':' || c == '/' || c == '-';
}

int lvm__tag_encode(const char *s, char *ret, size_t cap)
{
    static const char hexd[] = "0123456789abcdef";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (tag_plain((char)*p)) {
            if (o + 1 >= cap)
                return -ENAMETOOLONG;
            ret[o++] = (char)*p;
        } else {
            if (o + 3 >= cap)
                return -ENAMETOOLONG;
            ret[o++] = '#';
            ret[o++] = hexd[*p >> 4];
            ret[o++] = hexd[*p & 15];
        }
    }
    if (o >= cap)
        return -ENAMETOOLONG;
    ret[o] = '\0';
    return 0;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int lvm__tag_decode(const char *s, size_t n, char *ret, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == '#') {
            int hi, lo;

            if (i + 2 >= n)
                return -EINVAL;
            hi = hexv(s[i + 1]);
            lo = hexv(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            if (c == '\0' || tag_plain(c))
                return -EINVAL; /* not what the encoder makes: one value, one spelling */
            i += 2;
        } else if (!tag_plain(c)) {
            return -EINVAL;
        }
        if (o + 1 >= cap)
            return -ENAMETOOLONG;
        ret[o++] = c;
    }
    if (cap == 0)
        return -ENAMETOOLONG;
    ret[o] = '\0';
    return 0;
}

bool lvm__parse_u63(const char *s, int64_t *ret)
{
    int64_t v = 0;

    if (!s || !*s || strlen(s) > 19)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        if (v > (INT64_MAX - (*p - '0')) / 10)
            return false;
        v = v * 10 + (*p - '0');
    }
    *ret = v;
    return true;
}

static bool valid_plain(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > BE_ID_MAX || strchr(s, '/'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static bool dns_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* DNS-1123 label (namespace) and subdomain (claim), as Kubernetes checks them. */
static bool valid_dns(const char *s, size_t n, bool dots, size_t max)
{
    if (n < 1 || n > max || !dns_char(s[0]) || !dns_char(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (dns_char(s[i]) || s[i] == '-')
            continue;
        if (dots && s[i] == '.' && dns_char(s[i - 1]) && dns_char(s[i + 1]))
            continue;
        return false;
    }
    return true;
}

bool lvm__valid_key(const char *key, bool key_is_claim)
{
    const char *slash;

    if (!key)
        return false;
    if (!key_is_claim)
        return valid_plain(key);
    slash = strchr(key, '/');
    if (!slash || strchr(slash + 1, '/'))
        return false;
    return valid_dns(key, (size_t)(slash - key), false, 63) &&
           valid_dns(slash + 1, strlen(slash + 1), true, 253);
}

static int add_tag(char ret[][LVM_TAG_MAX + 1], int *n, const char *field, const char *value,
                   bool encode)
{
    char enc[LVM_TAG_MAX + 1];
    int w;

    if (*n >= LVM_MAX_TAGS)
        return -EINVAL;
    if (encode) {
        if (lvm__tag_encode(value, enc, sizeof(enc)) < 0)
            return -ENAMETOOLONG;
        value = enc;
    }
    w = snprintf(ret[*n], LVM_TAG_MAX + 1, "%s%s=%s", LVM_TAG_PREFIX, field, value);
    if (w < 0 || w > LVM_TAG_MAX)
        return -ENAMETOOLONG;
    (*n)++;
    return 0;
}

int lvm__tags_build(const struct lvm__meta *m, char ret[][LVM_TAG_MAX + 1])
{
    char num[32];
    int n = 0, r;

    if (!m->key[0] || !m->name[0] || m->requested < 0 || m->created < 0 || m->gen < 0)
        return -EINVAL;
    r = add_tag(ret, &n, "key", m->key, true);
    if (r == 0)
        r = add_tag(ret, &n, "name", m->name, true);
    snprintf(num, sizeof(num), "%lld", (long long)m->requested);
    if (r == 0)
        r = add_tag(ret, &n, "size", num, false);
    if (r == 0)
        r = add_tag(ret, &n, "access", m->access == BE_ACCESS_BLOCK ? "block" : "mount", false);
    if (r == 0 && m->access == BE_ACCESS_MOUNT)
        r = add_tag(ret, &n, "fs", m->fs, true);
    if (r == 0 && m->mkfs[0])
        r = add_tag(ret, &n, "mkfs", m->mkfs, true);
    if (r == 0 && m->pool[0])
        r = add_tag(ret, &n, "pool", m->pool, true);
    if (r == 0 && m->source_kind != BE_SOURCE_NONE) {
        char src[BE_ID_MAX + 16];

        snprintf(src, sizeof(src), "%s:%s",
                 m->source_kind == BE_SOURCE_SNAPSHOT ? "snapshot" : "volume", m->source_id);
        r = add_tag(ret, &n, "source", src, true);
    }
    snprintf(num, sizeof(num), "%lld", (long long)m->created);
    if (r == 0)
        r = add_tag(ret, &n, "created", num, false);
    /* last, and only from 1 on: LVs made before generations existed carry none */
    snprintf(num, sizeof(num), "%lld", (long long)m->gen);
    if (r == 0 && m->gen > 0)
        r = add_tag(ret, &n, "gen", num, false);
    return r < 0 ? r : n;
}

enum { T_KEY, T_NAME, T_SIZE, T_ACCESS, T_FS, T_MKFS, T_CREATED, T_GEN, T_POOL, T_SOURCE, T_N };

/* Collect our tags' values by field (names[0..nf)): 0, -ENODATA (none of ours), -EINVAL. */
static int collect_tags(const char *lv_tags, const char *const *names, int nf, const char **vals,
                        size_t *lens)
{
    size_t pl = strlen(LVM_TAG_PREFIX);
    bool any = false;
    const char *p = lv_tags ? lv_tags : "";

    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);

        if (n > pl && strncmp(p, LVM_TAG_PREFIX, pl) == 0) {
            const char *f = p + pl, *eq = memchr(f, '=', n - pl);
            size_t fl;
            int k;

            any = true;
            if (!eq)
                return be_error(-EINVAL, "tag %.*s has no value", (int)(n > 80 ? 80 : n), p);
            fl = (size_t)(eq - f);
            for (k = 0; k < nf; k++)
                if (strlen(names[k]) == fl && strncmp(f, names[k], fl) == 0)
                    break;
            if (k < nf) {
                if (vals[k])
                    return be_error(-EINVAL, "tag %s%s given twice", LVM_TAG_PREFIX, names[k]);
                vals[k] = eq + 1;
                lens[k] = n - pl - fl - 1;
            } /* a field of a later version: ignored */
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return any ? 0 : -ENODATA;
}

static bool parse_num(const char *v, size_t n, int64_t *ret)
{
    char buf[64];

    if (n >= sizeof(buf))
        return false;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return lvm__parse_u63(buf, ret);
}

int lvm__tags_parse(const char *lv_tags, struct lvm__meta *ret)
{
    static const char *const names[T_N] = {"key",  "name",    "size", "access", "fs",
                                           "mkfs", "created", "gen",  "pool",   "source"};
    const char *vals[T_N] = {0};
    size_t lens[T_N] = {0};
    struct lvm__meta m = {0};
    char buf[64];
    int r = collect_tags(lv_tags, names, T_N, vals, lens);

    if (r < 0)
        return r;
    for (int k = 0; k < T_N; k++)
        if (!vals[k] && k != T_FS && k != T_MKFS && k != T_GEN && k != T_POOL && k != T_SOURCE)
            return be_error(-EINVAL, "tag %s%s missing", LVM_TAG_PREFIX, names[k]);
    if (lvm__tag_decode(vals[T_KEY], lens[T_KEY], m.key, sizeof(m.key)) < 0 || !m.key[0] ||
        !lvm__valid_key(m.key, strchr(m.key, '/') != NULL))
        return be_error(-EINVAL, "tag %skey invalid", LVM_TAG_PREFIX);
    if (lvm__tag_decode(vals[T_NAME], lens[T_NAME], m.name, sizeof(m.name)) < 0 || !m.name[0])
        return be_error(-EINVAL, "tag %sname invalid", LVM_TAG_PREFIX);
    if (lens[T_SIZE] >= sizeof(buf) ||
        (memcpy(buf, vals[T_SIZE], lens[T_SIZE]), buf[lens[T_SIZE]] = '\0',
         !lvm__parse_u63(buf, &m.requested)))
        return be_error(-EINVAL, "tag %ssize invalid", LVM_TAG_PREFIX);
    if (lens[T_CREATED] >= sizeof(buf) ||
        (memcpy(buf, vals[T_CREATED], lens[T_CREATED]), buf[lens[T_CREATED]] = '\0',
         !lvm__parse_u63(buf, &m.created)))
        return be_error(-EINVAL, "tag %screated invalid", LVM_TAG_PREFIX);
    if (vals[T_GEN] && (lens[T_GEN] >= sizeof(buf) || lens[T_GEN] == 0 || vals[T_GEN][0] == '0' ||
                        (memcpy(buf, vals[T_GEN], lens[T_GEN]), buf[lens[T_GEN]] = '\0',
                         !lvm__parse_u63(buf, &m.gen))))
        return be_error(-EINVAL, "tag %sgen invalid", LVM_TAG_PREFIX);
    if (lens[T_ACCESS] == 5 && strncmp(vals[T_ACCESS], "mount", 5) == 0)
        m.access = BE_ACCESS_MOUNT;
    else if (lens[T_ACCESS] == 5 && strncmp(vals[T_ACCESS], "block", 5) == 0)
        m.access = BE_ACCESS_BLOCK;
    else
        return be_error(-EINVAL, "tag %saccess invalid", LVM_TAG_PREFIX);
    if (m.access == BE_ACCESS_MOUNT) {
        if (!vals[T_FS] || lvm__tag_decode(vals[T_FS], lens[T_FS], m.fs, sizeof(m.fs)) < 0 ||
            (strcmp(m.fs, "ext4") != 0 && strcmp(m.fs, "xfs") != 0))
            return be_error(-EINVAL, "tag %sfs missing or invalid", LVM_TAG_PREFIX);
    } else if (vals[T_FS]) {
        return be_error(-EINVAL, "tag %sfs on a block volume", LVM_TAG_PREFIX);
    }
    if (vals[T_MKFS] &&
        (lvm__tag_decode(vals[T_MKFS], lens[T_MKFS], m.mkfs, sizeof(m.mkfs)) < 0 || !m.mkfs[0]))
        return be_error(-EINVAL, "tag %smkfs invalid", LVM_TAG_PREFIX);
    if (vals[T_POOL] && (lvm__tag_decode(vals[T_POOL], lens[T_POOL], m.pool, sizeof(m.pool)) < 0 ||
                         !lvm__valid_pool_name(m.pool)))
        return be_error(-EINVAL, "tag %spool invalid", LVM_TAG_PREFIX);
    if (vals[T_SOURCE]) {
        char src[BE_ID_MAX + 16];
        const char *id = NULL;

        if (lvm__tag_decode(vals[T_SOURCE], lens[T_SOURCE], src, sizeof(src)) == 0) {
            if (strncmp(src, "snapshot:", 9) == 0) {
                m.source_kind = BE_SOURCE_SNAPSHOT;
                id = src + 9;
            } else if (strncmp(src, "volume:", 7) == 0) {
                m.source_kind = BE_SOURCE_VOLUME;
                id = src + 7;
            }
        }
        if (!id || !id[0] || strlen(id) > BE_ID_MAX)
            return be_error(-EINVAL, "tag %ssource invalid", LVM_TAG_PREFIX);
        snprintf(m.source_id, sizeof(m.source_id), "%s", id);
    }
    *ret = m;
    return 0;
}

int lvm__snap_tags_build(const struct lvm__snap_meta *m, char ret[][LVM_TAG_MAX + 1])
{
    char num[32];
    int n = 0, r;

    if (!m->name[0] || !m->source[0] || m->size < 0 || m->created < 0)
        return -EINVAL;
    r = add_tag(ret, &n, "snap", m->name, true);
    if (r == 0)
        r = add_tag(ret, &n, "source", m->source, true);
    snprintf(num, sizeof(num), "%lld", (long long)m->size);
    if (r == 0)
        r = add_tag(ret, &n, "size", num, false);
    if (r == 0)
        r = add_tag(ret, &n, "access", m->access == BE_ACCESS_BLOCK ? "block" : "mount", false);
    if (r == 0 && m->access == BE_ACCESS_MOUNT)
        r = add_tag(ret, &n, "fs", m->fs, true);
    snprintf(num, sizeof(num), "%lld", (long long)m->created);
    if (r == 0)
        r = add_tag(ret, &n, "created", num, false);
    return r < 0 ? r : n;
}

enum { S_SNAP, S_SOURCE, S_SIZE, S_ACCESS, S_FS, S_CREATED, S_N };

int lvm__snap_tags_parse(const char *lv_tags, struct lvm__snap_meta *ret)
{
    static const char *const names[S_N] = {"snap", "source", "size", "access", "fs", "created"};
    const char *vals[S_N] = {0};
    size_t lens[S_N] = {0};
    struct lvm__snap_meta m = {0};
    char vg[LVM_LV_NAME_MAX + 1], lv[LVM_LV_NAME_MAX + 1];
    int64_t gen;
    int r = collect_tags(lv_tags, names, S_N, vals, lens);

    if (r < 0)
        return r;
    for (int k = 0; k < S_N; k++)
        if (!vals[k] && k != S_FS)
            return be_error(-EINVAL, "tag %s%s missing", LVM_TAG_PREFIX, names[k]);
    if (lvm__tag_decode(vals[S_SNAP], lens[S_SNAP], m.name, sizeof(m.name)) < 0 || !m.name[0])
        return be_error(-EINVAL, "tag %ssnap invalid", LVM_TAG_PREFIX);
    if (lvm__tag_decode(vals[S_SOURCE], lens[S_SOURCE], m.source, sizeof(m.source)) < 0 ||
        lvm__parse_id(m.source, vg, lv, &gen) < 0)
        return be_error(-EINVAL, "tag %ssource invalid", LVM_TAG_PREFIX);
    if (!parse_num(vals[S_SIZE], lens[S_SIZE], &m.size))
        return be_error(-EINVAL, "tag %ssize invalid", LVM_TAG_PREFIX);
    if (!parse_num(vals[S_CREATED], lens[S_CREATED], &m.created))
        return be_error(-EINVAL, "tag %screated invalid", LVM_TAG_PREFIX);
    if (lens[S_ACCESS] == 5 && strncmp(vals[S_ACCESS], "mount", 5) == 0)
        m.access = BE_ACCESS_MOUNT;
    else if (lens[S_ACCESS] == 5 && strncmp(vals[S_ACCESS], "block", 5) == 0)
        m.access = BE_ACCESS_BLOCK;
    else
        return be_error(-EINVAL, "tag %saccess invalid", LVM_TAG_PREFIX);
    if (m.access == BE_ACCESS_MOUNT) {
        if (!vals[S_FS] || lvm__tag_decode(vals[S_FS], lens[S_FS], m.fs, sizeof(m.fs)) < 0 ||
            (strcmp(m.fs, "ext4") != 0 && strcmp(m.fs, "xfs") != 0))
            return be_error(-EINVAL, "tag %sfs missing or invalid", LVM_TAG_PREFIX);
    } else if (vals[S_FS]) {
        return be_error(-EINVAL, "tag %sfs on a block snapshot", LVM_TAG_PREFIX);
    }
    *ret = m;
    return 0;
}
