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
        cmocka_unit_test(test_lv_name),        cmocka_unit_test(test_is_our_lv_name),
        cmocka_unit_test(test_vg_name),        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_keys),           cmocka_unit_test(test_tag_encoding),
        cmocka_unit_test(test_tags_roundtrip), cmocka_unit_test(test_tags_hostile),
        cmocka_unit_test(test_parse_u63),      cmocka_unit_test(test_report_ok),
        cmocka_unit_test(test_report_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
