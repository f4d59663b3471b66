/* Unit tests of the LVM backend's pure parts: LV names, ids, tag encoding, lvm JSON reports,
 * with hostile input. No lvm2 needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "lvm/lvm_internal.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

static bool name_chars_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '+' || *s == '.' || *s == '-'))
            return false;
    return true;
}

static size_t dm_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '-' ? 2 : 1;
    return n;
}

static void test_lv_name(void **state)
{
    char n1[LVM_LV_NAME_MAX + 1], n2[LVM_LV_NAME_MAX + 1];
    char key[BE_KEY_MAX + 1];

    (void)state;
    lvm__lv_name("default/www-web-0", n1);
    assert_int_equal(strncmp(n1, "ord-default.www-web-0-", 22), 0);
    assert_int_equal(strlen(n1), 22 + LVM_HASH_HEX);
    assert_true(lvm__is_our_lv_name(n1));
    assert_true(name_chars_ok(n1));

    /* deterministic */
    lvm__lv_name("default/www-web-0", n2);
    assert_string_equal(n1, n2);
    /* '/' and '.' map to the same character but the hash tells them apart */
    lvm__lv_name("a/b", n1);
    lvm__lv_name("a.b", n2);
    assert_string_not_equal(n1, n2);
    /* keys differing only after the budget */
    memset(key, 'a', 300);
    key[300] = '\0';
    lvm__lv_name(key, n1);
    key[299] = 'b';
    lvm__lv_name(key, n2);
    assert_string_not_equal(n1, n2);
    assert_true(strlen(n1) <= LVM_LV_NAME_MAX);
    assert_true(lvm__is_our_lv_name(n1));
    /* hyphens count double for device-mapper */
    memset(key, '-', 300);
    lvm__lv_name(key, n1);
    assert_true(dm_len(n1) <= dm_len(LVM_NAME_PREFIX) + LVM_NAME_KEY_BUDGET + 2 + LVM_HASH_HEX);
    assert_true(lvm__is_our_lv_name(n1));
    /* hostile bytes: '_' (reserved LVM suffixes), spaces, UTF-8, control characters */
    lvm__lv_name("x_rimage_0 \xc3\xa9\x01/..", n1);
    assert_true(name_chars_ok(n1));
    assert_null(strchr(n1, '_'));
    assert_true(lvm__is_our_lv_name(n1));
}

static void test_is_our_lv_name(void **state)
{
    (void)state;
    assert_true(lvm__is_our_lv_name("ord-x-0123456789abcdef"));
    assert_true(lvm__is_our_lv_name("ord--0123456789abcdef"));
    assert_false(lvm__is_our_lv_name("ord-x-0123456789abcdeg"));
    assert_false(lvm__is_our_lv_name("ord-x-0123456789ABCDEF"));
    assert_false(lvm__is_our_lv_name("ord-x0123456789abcdef"));
    assert_false(lvm__is_our_lv_name("ord-backup"));
    assert_false(lvm__is_our_lv_name("root"));
    assert_false(lvm__is_our_lv_name("ord-x_y-0123456789abcdef"));
    assert_false(lvm__is_our_lv_name("ord-x y-0123456789abcdef"));
    assert_false(lvm__is_our_lv_name(""));
    assert_false(lvm__is_our_lv_name(NULL));
    assert_false(lvm__is_our_lv_name("ord-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-"
                                     "0123456789abcdef"));
}

static void test_vg_name(void **state)
{
    (void)state;
    assert_true(lvm__valid_vg_name("vg0"));
    assert_true(lvm__valid_vg_name("ordinal_vg.1+x-y"));
    assert_false(lvm__valid_vg_name(""));
    assert_false(lvm__valid_vg_name("-vg"));
    assert_false(lvm__valid_vg_name("."));
    assert_false(lvm__valid_vg_name(".."));
    assert_false(lvm__valid_vg_name("vg/0"));
    assert_false(lvm__valid_vg_name("vg 0"));
    assert_false(lvm__valid_vg_name("vg\n"));
    assert_false(lvm__valid_vg_name("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    assert_true(lvm__valid_vg_name("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
    assert_false(lvm__valid_vg_name(NULL));
}

static void test_ids(void **state)
{
    char id[BE_ID_MAX + 1], vg[LVM_LV_NAME_MAX + 1], lv[LVM_LV_NAME_MAX + 1];
    char name[LVM_LV_NAME_MAX + 1], key[BE_KEY_MAX + 1], want[BE_ID_MAX + 1];
    int64_t gen = -1;

    (void)state;
    lvm__lv_name("ns/claim", name);
    assert_int_equal(lvm__vol_id("vg0", name, 0, id), 0);
    assert_int_equal(strncmp(id, "lvm:vg0/ord-ns.claim-", 21), 0);
    assert_int_equal(lvm__parse_id(id, vg, lv, &gen), 0);
    assert_string_equal(vg, "vg0");
    assert_string_equal(lv, name);
    assert_int_equal(gen, 0);
    /* a later generation: the generation-0 id and "/<gen>" */
    assert_int_equal(lvm__vol_id("vg0", name, 12, id), 0);
    snprintf(want, sizeof(want), "lvm:vg0/%s/12", name);
    assert_string_equal(id, want);
    assert_int_equal(lvm__parse_id(id, vg, lv, &gen), 0);
    assert_string_equal(lv, name);
    assert_int_equal(gen, 12);
    /* the longest VG and the longest name still fit, with the largest generation */
    memset(key, 'k', BE_KEY_MAX);
    key[BE_KEY_MAX] = '\0';
    lvm__lv_name(key, name);
    assert_int_equal(lvm__vol_id("abcdefghijklmnopqrstuvwxyz012345", name, 0, id), 0);
    assert_true(strlen(id) <= BE_ID_MAX);
    assert_int_equal(lvm__vol_id("abcdefghijklmnopqrstuvwxyz012345", name, INT64_MAX, id), 0);
    assert_true(strlen(id) <= BE_ID_MAX);
    assert_int_equal(lvm__parse_id(id, vg, lv, &gen), 0);
    assert_true(gen == INT64_MAX);

    static const char *const bad[] = {
        "",
        "lvm:",
        "lvm:vg0",
        "lvm:vg0/",
        "lvm:/ord-x-0123456789abcdef",
        "dir:vg0/ord-x-0123456789abcdef",
        "lvm:vg0/root",
        "lvm:vg0/ord-x-0123456789abcdef/x",
        "lvm:-vg/ord-x-0123456789abcdef",
        "lvm:vg 0/ord-x-0123456789abcdef",
        "lvm:../ord-x-0123456789abcdef",
        "lvm:vg0/../ord-x-0123456789abcdef",
        "lvm:abcdefghijklmnopqrstuvwxyz0123456/ord-x-0123456789abcdef",
        /* generations: decimal from 1, one spelling */
        "lvm:vg0/ord-x-0123456789abcdef/",
        "lvm:vg0/ord-x-0123456789abcdef/0",
        "lvm:vg0/ord-x-0123456789abcdef/01",
        "lvm:vg0/ord-x-0123456789abcdef/+1",
        "lvm:vg0/ord-x-0123456789abcdef/-1",
        "lvm:vg0/ord-x-0123456789abcdef/1/2",
        "lvm:vg0/ord-x-0123456789abcdef/99999999999999999999",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(lvm__parse_id(bad[i], vg, lv, &gen), -ENOENT);
    assert_int_equal(lvm__parse_id(NULL, vg, lv, &gen), -ENOENT);
}

static void test_keys(void **state)
{
    (void)state;
    assert_true(lvm__valid_key("default/www-web-0", true));
    assert_true(lvm__valid_key("a/b.c", true));
    assert_false(lvm__valid_key("default", true));
    assert_false(lvm__valid_key("Default/x", true));
    assert_false(lvm__valid_key("a/b/c", true));
    assert_false(lvm__valid_key("a/.b", true));
    assert_false(lvm__valid_key("a/b..c", true));
    assert_false(lvm__valid_key("/b", true));
    assert_true(lvm__valid_key("pvc-1234 any name", false));
    assert_false(lvm__valid_key("a/b", false));
    assert_false(lvm__valid_key("", false));
    assert_false(lvm__valid_key("tab\there", false));
    assert_false(lvm__valid_key(NULL, false));
}

/* ---- tags ---- */

static void test_tag_encoding(void **state)
{
    char in[256], enc[LVM_TAG_MAX + 1], dec[300];

    (void)state;
    for (int i = 1; i < 256; i++)
        in[i - 1] = (char)i;
    in[255] = '\0';
    assert_int_equal(lvm__tag_encode(in, enc, sizeof(enc)), 0);
    for (const char *p = enc; *p; p++)
        assert_non_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "_+.:/-#",
                               *p));
    assert_int_equal(lvm__tag_decode(enc, strlen(enc), dec, sizeof(dec)), 0);
    assert_string_equal(dec, in);

    assert_int_equal(lvm__tag_encode("default/www-web-0", enc, sizeof(enc)), 0);
    assert_string_equal(enc, "default/www-web-0");
    assert_int_equal(lvm__tag_encode("a b,c", enc, sizeof(enc)), 0);
    assert_string_equal(enc, "a#20b#2cc");
    assert_int_equal(lvm__tag_encode("abc", enc, 3), -ENAMETOOLONG);
    assert_int_equal(lvm__tag_encode(" ", enc, 3), -ENAMETOOLONG);

    static const char *const bad[] = {"#",   "#2",  "#zz", "#2G", "#41",
                                      "#00", "a b", "a,b", "#2F", "\xff"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(lvm__tag_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)), -EINVAL);
    assert_int_equal(lvm__tag_decode("abcdef", 6, dec, 4), -ENAMETOOLONG);
}

static struct lvm__meta sample_meta(void)
{
    struct lvm__meta m = {0};

    snprintf(m.key, sizeof(m.key), "default/www-web-0");
    snprintf(m.name, sizeof(m.name), "pvc-1234, with \"odd\" bytes");
    m.requested = 10485760;
    m.access = BE_ACCESS_MOUNT;
    snprintf(m.fs, sizeof(m.fs), "xfs");
    snprintf(m.mkfs, sizeof(m.mkfs), "-m crc=1 -L data");
    m.created = 1700000000;
    return m;
}

static void join_tags(char tags[][LVM_TAG_MAX + 1], int n, char *ret, size_t cap)
{
    size_t o = 0;

    ret[0] = '\0';
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(ret + o, cap - o, "%s%s", i ? "," : "", tags[i]);
}

static void test_tags_roundtrip(void **state)
{
    char tags[LVM_MAX_TAGS][LVM_TAG_MAX + 1], joined[LVM_MAX_TAGS * (LVM_TAG_MAX + 1)];
    struct lvm__meta m = sample_meta(), got;
    int n;

    (void)state;
    n = lvm__tags_build(&m, tags);
    assert_int_equal(n, 7);
    for (int i = 0; i < n; i++) {
        assert_true(strlen(tags[i]) <= LVM_TAG_MAX);
        assert_int_equal(strncmp(tags[i], LVM_TAG_PREFIX, strlen(LVM_TAG_PREFIX)), 0);
        assert_null(strchr(tags[i], ','));
    }
    join_tags(tags, n, joined, sizeof(joined));
    assert_int_equal(lvm__tags_parse(joined, &got), 0);
    assert_string_equal(got.key, m.key);
    assert_string_equal(got.name, m.name);
    assert_int_equal(got.requested, m.requested);
    assert_int_equal(got.access, BE_ACCESS_MOUNT);
    assert_string_equal(got.fs, "xfs");
    assert_string_equal(got.mkfs, m.mkfs);
    assert_int_equal(got.created, m.created);
    assert_int_equal(got.gen, 0); /* no gen tag: generation 0, as LVs made before it */

    /* a generation from 1 on is the last tag and comes back */
    m.gen = 3;
    n = lvm__tags_build(&m, tags);
    assert_int_equal(n, 8);
    assert_string_equal(tags[7], LVM_TAG_PREFIX "gen=3");
    join_tags(tags, n, joined, sizeof(joined));
    assert_int_equal(lvm__tags_parse(joined, &got), 0);
    assert_int_equal(got.gen, 3);
    m.gen = 0;
    n = lvm__tags_build(&m, tags);
    join_tags(tags, n, joined, sizeof(joined));

    /* other owners' tags around ours are ignored */
    char more[sizeof(joined) + 64];
    snprintf(more, sizeof(more), "backup,%s,owner=alice", joined);
    assert_int_equal(lvm__tags_parse(more, &got), 0);
    assert_string_equal(got.key, m.key);

    /* block volume: no fs, no mkfs */
    m.access = BE_ACCESS_BLOCK;
    m.fs[0] = m.mkfs[0] = '\0';
    n = lvm__tags_build(&m, tags);
    assert_int_equal(n, 5);
    join_tags(tags, n, joined, sizeof(joined));
    assert_int_equal(lvm__tags_parse(joined, &got), 0);
    assert_int_equal(got.access, BE_ACCESS_BLOCK);
    assert_string_equal(got.fs, "");

    /* the longest key and name still fit in LVM's tag limit */
    m = sample_meta();
    memset(m.key, 0x01, BE_KEY_MAX);
    m.key[BE_KEY_MAX] = '\0';
    n = lvm__tags_build(&m, tags);
    assert_int_equal(n, 7);
}

/* ---- thin volumes and snapshots ---- */

static void test_snap_names_ids(void **state)
{
    char n1[LVM_LV_NAME_MAX + 1], n2[LVM_LV_NAME_MAX + 1], id[BE_ID_MAX + 1];
    char vg[LVM_LV_NAME_MAX + 1], lv[LVM_LV_NAME_MAX + 1], key[BE_ID_MAX + 1];
    int64_t gen;

    (void)state;
    lvm__snap_lv_name("snapshot-1234", n1);
    assert_int_equal(strncmp(n1, "ors-snapshot-1234-", 18), 0);
    assert_true(lvm__is_our_snap_lv_name(n1));
    /* a snapshot LV is never taken for a volume, nor a volume for a snapshot */
    assert_false(lvm__is_our_lv_name(n1));
    lvm__lv_name("snapshot-1234", n2);
    assert_false(lvm__is_our_snap_lv_name(n2));
    assert_string_equal(n1 + 4, n2 + 4); /* same hash, different prefix */
    /* the longest hostile name: within the budget, only LVM-safe bytes */
    memset(key, '-', BE_ID_MAX);
    key[BE_ID_MAX] = '\0';
    lvm__snap_lv_name(key, n1);
    assert_true(lvm__is_our_snap_lv_name(n1));
    assert_true(name_chars_ok(n1));
    assert_true(dm_len("abcdefghijklmnopqrstuvwxyz012345") + 1 + dm_len(n1) < 128);
    lvm__snap_lv_name("x_rimage_0 \xc3\xa9/..", n1);
    assert_true(lvm__is_our_snap_lv_name(n1));
    assert_null(strchr(n1, '_'));

    /* id: lvm:<vg>/<ors-...>, no generation; the longest fits CSI's 128 bytes */
    assert_int_equal(lvm__snap_id("abcdefghijklmnopqrstuvwxyz012345", n1, id), 0);
    assert_true(strlen(id) <= BE_ID_MAX);
    assert_int_equal(lvm__parse_snap_id(id, vg, lv), 0);
    assert_string_equal(vg, "abcdefghijklmnopqrstuvwxyz012345");
    assert_string_equal(lv, n1);
    /* a snapshot id is no volume id and the other way round */
    assert_int_equal(lvm__parse_id(id, vg, lv, &gen), -ENOENT);
    lvm__lv_name("ns/claim", n2);
    assert_int_equal(lvm__vol_id("vg0", n2, 0, id), 0);
    assert_int_equal(lvm__parse_snap_id(id, vg, lv), -ENOENT);

    static const char *const bad[] = {
        "",
        "lvm:",
        "lvm:vg0",
        "lvm:vg0/",
        "lvm:/ors-x-0123456789abcdef",
        "dir:vg0/ors-x-0123456789abcdef",
        "lvm:vg0/ors-x-0123456789abcdef/1",
        "lvm:vg0/ors-x-0123456789abcdeF",
        "lvm:-vg/ors-x-0123456789abcdef",
        "lvm:vg0/ord-x-0123456789abcdef",
        "lvm:vg0/ors-x_y-0123456789abcdef",
        "lvm:vg0/../ors-x-0123456789abcdef",
        "lvm:abcdefghijklmnopqrstuvwxyz0123456/ors-x-0123456789abcdef"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(lvm__parse_snap_id(bad[i], vg, lv), -ENOENT);
    assert_int_equal(lvm__parse_snap_id(NULL, vg, lv), -ENOENT);

    /* thin pool names: LVM's characters, no option lookalikes, no paths */
    assert_true(lvm__valid_pool_name("pool0"));
    assert_true(lvm__valid_pool_name("thin_pool.1+x-y"));
    assert_false(lvm__valid_pool_name(""));
    assert_false(lvm__valid_pool_name(NULL));
    assert_false(lvm__valid_pool_name("-pool"));
    assert_false(lvm__valid_pool_name("."));
    assert_false(lvm__valid_pool_name(".."));
    assert_false(lvm__valid_pool_name("vg/pool"));
    assert_false(lvm__valid_pool_name("po ol"));
    memset(key, 'p', LVM_LV_NAME_MAX + 1);
    key[LVM_LV_NAME_MAX + 1] = '\0';
    assert_false(lvm__valid_pool_name(key));
    key[LVM_LV_NAME_MAX] = '\0';
    assert_true(lvm__valid_pool_name(key));
}

static void test_thin_volume_tags(void **state)
{
    char tags[LVM_MAX_TAGS][LVM_TAG_MAX + 1], joined[LVM_MAX_TAGS * (LVM_TAG_MAX + 1)];
    struct lvm__meta m = sample_meta(), got;
    int n;

    (void)state;
    snprintf(m.pool, sizeof(m.pool), "pool0");
    m.source_kind = BE_SOURCE_SNAPSHOT;
    snprintf(m.source_id, sizeof(m.source_id), "lvm:vg0/ors-s-0123456789abcdef");
    m.gen = 2;
    n = lvm__tags_build(&m, tags);
    assert_int_equal(n, 10);
    assert_true(n <= LVM_MAX_TAGS);
    assert_string_equal(tags[1] + strlen(LVM_TAG_PREFIX),
                        "name=pvc-1234#2c#20with#20#22odd#22#20bytes");
    assert_string_equal(tags[6], LVM_TAG_PREFIX "pool=pool0");
    assert_string_equal(tags[7], LVM_TAG_PREFIX "source=snapshot:lvm:vg0/ors-s-0123456789abcdef");
    assert_string_equal(tags[9], LVM_TAG_PREFIX "gen=2"); /* still last: set_owner_tags */
    join_tags(tags, n, joined, sizeof(joined));
    assert_int_equal(lvm__tags_parse(joined, &got), 0);
    assert_string_equal(got.pool, "pool0");
    assert_int_equal(got.source_kind, BE_SOURCE_SNAPSHOT);
    assert_string_equal(got.source_id, m.source_id);
    assert_int_equal(got.gen, 2);

    m.source_kind = BE_SOURCE_VOLUME;
    snprintf(m.source_id, sizeof(m.source_id), "lvm:vg0/ord-v-0123456789abcdef/4");
    n = lvm__tags_build(&m, tags);
    join_tags(tags, n, joined, sizeof(joined));
    assert_int_equal(lvm__tags_parse(joined, &got), 0);
    assert_int_equal(got.source_kind, BE_SOURCE_VOLUME);
    assert_string_equal(got.source_id, m.source_id);

    /* thick, no source: as before, no pool or source tag */
    m = sample_meta();
    n = lvm__tags_build(&m, tags);
    assert_int_equal(n, 7);
    join_tags(tags, n, joined, sizeof(joined));
    assert_int_equal(lvm__tags_parse(joined, &got), 0);
    assert_string_equal(got.pool, "");
    assert_int_equal(got.source_kind, BE_SOURCE_NONE);

    static const char *const bad[] = {
        "key=a/b,name=n,size=1,access=block,created=1,pool=",
        "key=a/b,name=n,size=1,access=block,created=1,pool=-x",
        "key=a/b,name=n,size=1,access=block,created=1,pool=a#2fb",
        "key=a/b,name=n,size=1,access=block,created=1,pool=p,pool=p",
        "key=a/b,name=n,size=1,access=block,created=1,source=",
        "key=a/b,name=n,size=1,access=block,created=1,source=snapshot:",
        "key=a/b,name=n,size=1,access=block,created=1,source=lvm:vg/x",
        "key=a/b,name=n,size=1,access=block,created=1,source=clone:lvm:vg/x",
        "key=a/b,name=n,size=1,access=block,created=1,source=volume:#00",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char buf[1024];
        size_t o = 0;
        const char *p = bad[i];

        /* prefix every field */
        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s%.*s", o ? "," : "",
                                  LVM_TAG_PREFIX, (int)l, p);
            p += l;
            if (*p)
                p++;
        }
        assert_int_equal(lvm__tags_parse(buf, &got), -EINVAL);
    }
}

static void test_snap_tags(void **state)
{
    char tags[LVM_MAX_TAGS][LVM_TAG_MAX + 1], joined[LVM_MAX_TAGS * (LVM_TAG_MAX + 1)];
    struct lvm__snap_meta m = {0}, got;
    struct lvm__meta vm;
    int n;

    (void)state;
    snprintf(m.name, sizeof(m.name), "snapshot-9a, \"odd\"");
    snprintf(m.source, sizeof(m.source), "lvm:vg0/ord-v-0123456789abcdef/3");
    m.size = 67108864;
    m.access = BE_ACCESS_MOUNT;
    snprintf(m.fs, sizeof(m.fs), "ext4");
    m.created = 1700000001;
    n = lvm__snap_tags_build(&m, tags);
    assert_int_equal(n, 6);
    assert_string_equal(tags[0], LVM_TAG_PREFIX "snap=snapshot-9a#2c#20#22odd#22");
    join_tags(tags, n, joined, sizeof(joined));
    assert_int_equal(lvm__snap_tags_parse(joined, &got), 0);
    assert_string_equal(got.name, m.name);
    assert_string_equal(got.source, m.source);
    assert_int_equal(got.size, m.size);
    assert_int_equal(got.access, BE_ACCESS_MOUNT);
    assert_string_equal(got.fs, "ext4");
    assert_int_equal(got.created, m.created);
    /* a snapshot's tags are no volume's: the volume parser finds its fields missing */
    assert_int_equal(lvm__tags_parse(joined, &vm), -EINVAL);

    m.access = BE_ACCESS_BLOCK;
    m.fs[0] = '\0';
    n = lvm__snap_tags_build(&m, tags);
    assert_int_equal(n, 5);
    join_tags(tags, n, joined, sizeof(joined));
    assert_int_equal(lvm__snap_tags_parse(joined, &got), 0);
    assert_int_equal(got.access, BE_ACCESS_BLOCK);

    /* the longest name and source fit */
    memset(m.name, 0x01, BE_ID_MAX);
    m.name[BE_ID_MAX] = '\0';
    assert_int_equal(lvm__snap_tags_build(&m, tags), 5);
    m.name[0] = '\0';
    assert_int_equal(lvm__snap_tags_build(&m, tags), -EINVAL);

    assert_int_equal(lvm__snap_tags_parse("", &got), -ENODATA);
    assert_int_equal(lvm__snap_tags_parse("x,y", &got), -ENODATA);
    static const char *const bad[] = {
        "snap=s",
        "snap=s,source=lvm:vg0/ord-v-0123456789abcdef,size=1,access=block",
        "snap=,source=lvm:vg0/ord-v-0123456789abcdef,size=1,access=block,created=1",
        "snap=s,source=lvm:vg0/ors-v-0123456789abcdef,size=1,access=block,created=1",
        "snap=s,source=dir:x,size=1,access=block,created=1",
        "snap=s,source=lvm:vg0/ord-v-0123456789abcdef,size=-1,access=block,created=1",
        "snap=s,source=lvm:vg0/ord-v-0123456789abcdef,size=1,access=both,created=1",
        "snap=s,source=lvm:vg0/ord-v-0123456789abcdef,size=1,access=mount,created=1",
        "snap=s,source=lvm:vg0/ord-v-0123456789abcdef,size=1,access=mount,fs=zfs,created=1",
        "snap=s,source=lvm:vg0/ord-v-0123456789abcdef,size=1,access=block,fs=xfs,created=1",
        "snap=s,snap=t,source=lvm:vg0/ord-v-0123456789abcdef,size=1,access=block,created=1",
        "snap=s#zz,source=lvm:vg0/ord-v-0123456789abcdef,size=1,access=block,created=1",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char buf[1024];
        size_t o = 0;
        const char *p = bad[i];

        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s%.*s", o ? "," : "",
                                  LVM_TAG_PREFIX, (int)l, p);
            p += l;
            if (*p)
                p++;
        }
        assert_int_equal(lvm__snap_tags_parse(buf, &got), -EINVAL);
    }
}

static void test_report_thin(void **state)
{
    /* what lvs prints for a thin pool, a thin volume and its snapshot (lvm2 2.03) */
    static const char text[] =
        "  {\n  \"report\": [\n    {\n      \"lv\": [\n"
        "        {\"lv_name\":\"ord-a-0123456789abcdef\", \"vg_name\":\"vg0\", "
        "\"lv_size\":\"67108864\", \"lv_tags\":\"\", \"lv_attr\":\"Vwi-aotz--\", "
        "\"lv_health_status\":\"\", \"vg_extent_size\":\"4194304\", \"pool_lv\":\"pool0\"},\n"
        "        {\"lv_name\":\"ors-s-0123456789abcdef\", \"vg_name\":\"vg0\", "
        "\"lv_size\":\"67108864\", \"lv_tags\":\"\", \"lv_attr\":\"Vri---tz-k\", "
        "\"lv_health_status\":\"\", \"vg_extent_size\":\"4194304\", \"pool_lv\":\"pool0\"},\n"
        "        {\"lv_name\":\"pool0\", \"vg_name\":\"vg0\", \"lv_size\":\"2147483648\", "
        "\"lv_tags\":\"\", \"lv_attr\":\"twi-aotz--\", \"lv_health_status\":\"\", "
        "\"vg_extent_size\":\"4194304\", \"pool_lv\":\"\"}\n"
        "      ]\n    }\n  ]\n  ,\n  \"log\": [\n  ]\n}\n";
    static const char *const f[] = {"lv_name", "vg_name",          "lv_size",        "lv_tags",
                                    "lv_attr", "lv_health_status", "vg_extent_size", "pool_lv"};
    struct lvm__report r;
    struct lvm__lv lv = {0};

    (void)state;
    assert_int_equal(lvm__report_parse(text, strlen(text), "lv", f, ARRAY_SIZE(f), &r), 0);
    assert_int_equal(r.n_rows, 3);
    assert_string_equal(lvm__cell(&r, 0, 7), "pool0");
    assert_string_equal(lvm__cell(&r, 1, 4), "Vri---tz-k");
    assert_string_equal(lvm__cell(&r, 2, 7), "");
    lvm__report_release(&r);

    snprintf(lv.attr, sizeof(lv.attr), "Vwi-aotz--");
    snprintf(lv.pool, sizeof(lv.pool), "pool0");
    assert_true(lvm__is_thin(&lv));
    snprintf(lv.attr, sizeof(lv.attr), "-wi-a-----");
    lv.pool[0] = '\0';
    assert_false(lvm__is_thin(&lv));
    snprintf(lv.attr, sizeof(lv.attr), "Vwi-a-----"); /* virtual but no pool: not thin */
    assert_false(lvm__is_thin(&lv));
}

static void test_tags_hostile(void **state)
{
    struct lvm__meta got;
    const char *P = LVM_TAG_PREFIX;
    char buf[2048];

    (void)state;
    assert_int_equal(lvm__tags_parse("", &got), -ENODATA);
    assert_int_equal(lvm__tags_parse(NULL, &got), -ENODATA);
    assert_int_equal(lvm__tags_parse("a,b,c", &got), -ENODATA);

    static const char *const bad[] = {
        /* missing fields */
        "key=a/b",
        "key=a/b,name=n,size=1,access=mount,fs=ext4",
        "key=a/b,name=n,size=1,access=mount,created=1",
        "name=n,size=1,access=block,created=1",
        /* duplicate */
        "key=a/b,key=a/b,name=n,size=1,access=block,created=1",
        /* huge, negative, non-decimal numbers */
        "key=a/b,name=n,size=99999999999999999999,access=block,created=1",
        "key=a/b,name=n,size=9223372036854775808,access=block,created=1",
        "key=a/b,name=n,size=-1,access=block,created=1",
        "key=a/b,name=n,size=1e3,access=block,created=1",
        "key=a/b,name=n,size=,access=block,created=1",
        "key=a/b,name=n,size=1,access=block,created=0x10",
        /* bad enums, values, encodings */
        "key=a/b,name=n,size=1,access=blok,created=1",
        "key=a/b,name=n,size=1,access=mount,fs=btrfs,created=1",
        "key=a/b,name=n,size=1,access=block,fs=ext4,created=1",
        "key=A/b,name=n,size=1,access=block,created=1",
        "key=a/b#zz,name=n,size=1,access=block,created=1",
        "key=,name=n,size=1,access=block,created=1",
        "key=a/b,name=,size=1,access=block,created=1",
        "key=a/b,name=n#00,size=1,access=block,created=1",
        "key,name=n,size=1,access=block,created=1",
        /* generations: decimal from 1, once */
        "key=a/b,name=n,size=1,access=block,created=1,gen=0",
        "key=a/b,name=n,size=1,access=block,created=1,gen=01",
        "key=a/b,name=n,size=1,access=block,created=1,gen=",
        "key=a/b,name=n,size=1,access=block,created=1,gen=-1",
        "key=a/b,name=n,size=1,access=block,created=1,gen=x",
        "key=a/b,name=n,size=1,access=block,created=1,gen=1,gen=2",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        /* prefix every tag */
        size_t o = 0;
        const char *p = bad[i];
        while (*p) {
            size_t n = strcspn(p, ",");
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s%.*s", o ? "," : "", P, (int)n, p);
            p += n;
            if (*p == ',')
                p++;
        }
        assert_int_equal(lvm__tags_parse(buf, &got), -EINVAL);
    }
    /* a field of a later version is ignored */
    snprintf(buf, sizeof(buf), "%skey=a/b,%sname=n,%ssize=1,%saccess=block,%screated=1,%sfuture=x",
             P, P, P, P, P, P);
    assert_int_equal(lvm__tags_parse(buf, &got), 0);
}

static void test_parse_u63(void **state)
{
    int64_t v;

    (void)state;
    assert_true(lvm__parse_u63("0", &v));
    assert_int_equal(v, 0);
    assert_true(lvm__parse_u63("9223372036854775807", &v));
    assert_int_equal(v, INT64_MAX);
    assert_false(lvm__parse_u63("9223372036854775808", &v));
    assert_false(lvm__parse_u63("18446744073709551616", &v));
    assert_false(lvm__parse_u63("", &v));
    assert_false(lvm__parse_u63("-1", &v));
    assert_false(lvm__parse_u63("+1", &v));
    assert_false(lvm__parse_u63(" 1", &v));
    assert_false(lvm__parse_u63("1 ", &v));
    assert_false(lvm__parse_u63("1.5", &v));
    assert_false(lvm__parse_u63("12B", &v));
    assert_false(lvm__parse_u63(NULL, &v));
}

/* ---- JSON reports ---- */

static const char lvs_ok[] =
    "  {\n"
    "      \"report\": [\n"
    "          {\n"
    "              \"lv\": [\n"
    "                  {\"lv_name\":\"ord-a-0123456789abcdef\", \"vg_name\":\"vg0\", "
    "\"lv_size\":\"12582912\", \"lv_tags\":\"x,y\", \"extra\":[1, 2.5e3, true, null]},\n"
    "                  {\"lv_name\":\"b\\u00e9\\ud83d\\ude00\", \"vg_name\":\"vg0\", "
    "\"lv_size\":\"4194304\", \"lv_tags\":\"\"}\n"
    "              ]\n"
    "          }\n"
    "      ]\n"
    "      ,\n"
    "      \"log\": [ {\"log_seq_num\":\"1\"} ]\n"
    "  }\n";

static const char *const lv_f[] = {"lv_name", "vg_name", "lv_size", "lv_tags"};

static void test_report_ok(void **state)
{
    struct lvm__report r;

    (void)state;
    assert_int_equal(lvm__report_parse(lvs_ok, strlen(lvs_ok), "lv", lv_f, 4, &r), 0);
    assert_int_equal(r.n_rows, 2);
    assert_string_equal(lvm__cell(&r, 0, 0), "ord-a-0123456789abcdef");
    assert_string_equal(lvm__cell(&r, 0, 2), "12582912");
    assert_string_equal(lvm__cell(&r, 0, 3), "x,y");
    assert_string_equal(lvm__cell(&r, 1, 0), "b\xc3\xa9\xf0\x9f\x98\x80");
    assert_string_equal(lvm__cell(&r, 1, 3), "");
    lvm__report_release(&r);

    /* empty section; several report elements are concatenated */
    const char *empty = "{\"report\":[{\"lv\":[]}]}";
    assert_int_equal(lvm__report_parse(empty, strlen(empty), "lv", lv_f, 4, &r), 0);
    assert_int_equal(r.n_rows, 0);
    lvm__report_release(&r);
    const char *two =
        "{\"report\":[{\"vg\":[{\"vg_name\":\"a\"}]},{\"vg\":[{\"vg_name\":\"b\"}]}]}";
    const char *vf[] = {"vg_name"};
    assert_int_equal(lvm__report_parse(two, strlen(two), "vg", vf, 1, &r), 0);
    assert_int_equal(r.n_rows, 2);
    assert_string_equal(lvm__cell(&r, 1, 0), "b");
    lvm__report_release(&r);
}

static void expect_bad(const char *text)
{
    struct lvm__report r;

    assert_int_equal(lvm__report_parse(text, strlen(text), "lv", lv_f, 4, &r), -EINVAL);
}

static void test_report_hostile(void **state)
{
    struct lvm__report r;
    char *deep;

    (void)state;
    /* every truncation of a valid report is an error, never a crash */
    for (size_t n = 0; n < strlen(lvs_ok); n++) {
        int rc = lvm__report_parse(lvs_ok, n, "lv", lv_f, 4, &r);
        /* a prefix can only parse when it ends after the closing brace */
        if (rc == 0)
            lvm__report_release(&r);
        else
            assert_int_equal(rc, -EINVAL);
    }
    expect_bad("");
    expect_bad("   ");
    expect_bad("null");
    expect_bad("[]");
    expect_bad("{}");
    expect_bad("{\"report\":{}}");
    expect_bad("{\"report\":[{\"vg\":[]}]}");  /* section missing */
    expect_bad("{\"report\":[{\"lv\":{}}]}");  /* section not an array */
    expect_bad("{\"report\":[{\"lv\":[1]}]}"); /* row not an object */
    expect_bad("{\"report\":[1]}");            /* element not an object */
    expect_bad("{\"report\":[{\"lv\":[{\"lv_name\":1, \"vg_name\":\"v\", \"lv_size\":\"1\", "
               "\"lv_tags\":\"\"}]}]}"); /* wrong type */
    expect_bad("{\"report\":[{\"lv\":[{\"lv_name\":\"a\", \"vg_name\":\"v\", \"lv_size\":1e99, "
               "\"lv_tags\":\"\"}]}]}"); /* a number where a string goes */
    expect_bad("{\"report\":[{\"lv\":[{\"lv_name\":\"a\", \"vg_name\":\"v\", "
               "\"lv_tags\":\"\"}]}]}"); /* missing field */
    expect_bad("{\"report\":[{\"lv\":[{\"lv_name\":\"a\", \"lv_name\":\"b\", \"vg_name\":\"v\", "
               "\"lv_size\":\"1\", \"lv_tags\":\"\"}]}]}"); /* duplicate key */
    expect_bad("{\"report\":[]} x");                        /* trailing garbage */
    expect_bad("{\"report\":[]}{}");
    expect_bad("{\"report\":[],}");
    expect_bad("{\"report\":[1,]}");
    expect_bad("{'report':[]}");
    expect_bad("{\"report\":[\"\\u0000\"]}");
    expect_bad("{\"report\":[\"\\ud800\"]}");
    expect_bad("{\"report\":[\"\\udc00x\"]}");
    expect_bad("{\"report\":[\"\\x41\"]}");
    expect_bad("{\"report\":[\"a\nb\"]}");
    expect_bad("{\"report\":[01]}");
    expect_bad("{\"report\":[-]}");
    expect_bad("{\"report\":[1.]}");
    expect_bad("{\"report\":[1e]}");
    expect_bad("{\"report\":[tru]}");
    expect_bad("{\"report\":[nul]}");
    /* an embedded NUL byte */
    assert_int_equal(lvm__report_parse("{\"report\":[]}\0", 14, "lv", lv_f, 4, &r), -EINVAL);
    /* nesting beyond the limit */
    deep = malloc(4096);
    assert_non_null(deep);
    {
        size_t o = (size_t)sprintf(deep, "{\"report\":[{\"lv\":[], \"x\":");
        for (int i = 0; i < 200; i++)
            deep[o++] = '[';
        for (int i = 0; i < 200; i++)
            deep[o++] = ']';
        o += (size_t)sprintf(deep + o, "}]}");
        deep[o] = '\0';
    }
    expect_bad(deep);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lv_name),
        cmocka_unit_test(test_is_our_lv_name),
        cmocka_unit_test(test_vg_name),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_tag_encoding),
        cmocka_unit_test(test_tags_roundtrip),
        cmocka_unit_test(test_tags_hostile),
        cmocka_unit_test(test_parse_u63),
        cmocka_unit_test(test_report_ok),
        cmocka_unit_test(test_report_hostile),
        cmocka_unit_test(test_snap_names_ids),
        cmocka_unit_test(test_thin_volume_tags),
        cmocka_unit_test(test_snap_tags),
        cmocka_unit_test(test_report_thin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
