/* Unit tests: provisioner/inventory.c's decisions (state of a store, OV names, the desired
 * OrdinalVolume, reclaim decisions, the node-owned status patch). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "inventory.h"

static cJSON *J(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    return j;
}

static const char *str(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void test_state_of_pv(void **state)
{
    (void)state;
    struct {
        const char *pv;
        enum inv_state want;
    } cases[] = {
        {"{\"status\":{\"phase\":\"Bound\"}}", INV_BOUND},
        {"{\"status\":{\"phase\":\"Pending\"}}", INV_BOUND},
        {"{}", INV_BOUND},
        {"{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Retain\"},\"status\":{\"phase\":"
         "\"Released\"}}",
         INV_RETAINED},
        /* the API default policy is Retain */
        {"{\"status\":{\"phase\":\"Released\"}}", INV_RETAINED},
        {"{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Delete\"},\"status\":{\"phase\":"
         "\"Released\"}}",
         INV_RELEASED},
        {"{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Retain\"},\"status\":{\"phase\":"
         "\"Available\"}}",
         INV_RETAINED},
        {"{\"metadata\":{\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},\"status\":{\"phase\":"
         "\"Bound\"}}",
         INV_DELETING},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *pv = J(cases[i].pv);
        assert_int_equal(inv_state_of(pv), cases[i].want);
        cJSON_Delete(pv);
    }
    assert_int_equal(inv_state_of(NULL), INV_ORPHANED);
    assert_string_equal(inv_state_name(INV_ORPHANED), "Orphaned");
    assert_string_equal(inv_state_name(INV_RETAINED), "Retained");
}

static void test_pv_refers(void **state)
{
    (void)state;
    cJSON *pv = J("{\"spec\":{\"csi\":{\"driver\":\"ordinal.csi.dev\",\"volumeHandle\":"
                  "\"dir:default/www-web-0\"}}}");
    assert_true(inv_pv_refers(pv, "ordinal.csi.dev", "dir:default/www-web-0"));
    assert_false(inv_pv_refers(pv, "other.csi.dev", "dir:default/www-web-0"));
    assert_false(inv_pv_refers(pv, "ordinal.csi.dev", "dir:default/www-web-1"));
    cJSON_Delete(pv);
    pv = J("{\"spec\":{\"hostPath\":{\"path\":\"/x\"}}}");
    assert_false(inv_pv_refers(pv, "ordinal.csi.dev", "dir:default/www-web-0"));
    cJSON_Delete(pv);
}

static void test_names(void **state)
{
    (void)state;
    struct be_volume v = {0};
    char a[254], b[254], c[254];

    snprintf(v.id, sizeof(v.id), "dir:default/www-web-0");
    snprintf(v.name, sizeof(v.name), "pvc-1234");
    assert_int_equal(inv_ov_name(&v, "n1", a, sizeof(a)), 8);
    assert_string_equal(a, "pvc-1234");
    /* A CSI name that is no object name: a stable hash of node and id, distinct per node. */
    snprintf(v.name, sizeof(v.name), "Not_A_Name");
    assert_int_equal(inv_ov_name(&v, "n1", a, sizeof(a)), 19);
    assert_int_equal(inv_ov_name(&v, "n1", b, sizeof(b)), 19);
    assert_int_equal(inv_ov_name(&v, "n2", c, sizeof(c)), 19);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_memory_equal(a, "ov-", 3);
    v.name[0] = '\0';
    assert_int_equal(inv_ov_name(&v, "n1", b, sizeof(b)), 19);
    assert_string_equal(a, b);
    assert_int_equal(inv_ov_name(&v, "n1", c, 10), -ENAMETOOLONG);
}

static void test_desired(void **state)
{
    (void)state;
    struct be_volume v = {0};
    cJSON *pv = J("{\"metadata\":{\"name\":\"pvc-1\"},\"spec\":{\"claimRef\":{\"namespace\":"
                  "\"default\",\"name\":\"www-web-0\",\"uid\":\"u-1\"},"
                  "\"persistentVolumeReclaimPolicy\":\"Delete\"},\"status\":{\"phase\":"
                  "\"Bound\"}}");

    snprintf(v.id, sizeof(v.id), "lvm:vg0/www-web-0/7");
    snprintf(v.key, sizeof(v.key), "default/www-web-0");
    snprintf(v.name, sizeof(v.name), "pvc-1");
    v.capacity_bytes = 1 << 30;
    v.created_sec = 0;
    cJSON *o = inv_desired(&v, "lvm", "node-a", pv);
    assert_non_null(o);
    assert_string_equal(str(o, "metadata", "name"), "pvc-1");
    assert_string_equal(str(o, "spec", "store"), "vg0/www-web-0");
    assert_string_equal(str(o, "spec", "backend"), "lvm");
    assert_string_equal(str(o, "spec", "node"), "node-a");
    assert_string_equal(str(o, "spec", "key"), "default/www-web-0");
    assert_string_equal(str(o, "status", "state"), "Bound");
    assert_string_equal(str(o, "status", "persistentVolume"), "pvc-1");
    assert_string_equal(str(o, "status", "createdAt"), "1970-01-01T00:00:00Z");
    const cJSON *claim =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(o, "status"), "claim");
    assert_string_equal(str(claim, "uid", NULL), "u-1");
    cJSON *md = cJSON_GetObjectItem(o, "metadata");
    assert_string_equal(str(md, "labels", INV_LABEL_NODE), "node-a");
    /* no PV: Orphaned, no claim */
    cJSON *orphan = inv_desired(&v, "lvm", "node-a", NULL);
    assert_string_equal(str(orphan, "status", "state"), "Orphaned");
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(orphan, "status"), "claim"));
    /* The status patch: only differing node-owned fields; claim removed with null. */
    cJSON *patch = inv_status_patch(o, orphan);
    assert_non_null(patch);
    cJSON *ps = cJSON_GetObjectItem(patch, "status");
    assert_string_equal(str(ps, "state", NULL), "Orphaned");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(ps, "claim")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(ps, "persistentVolume")));
    assert_null(cJSON_GetObjectItem(ps, "createdAt"));
    cJSON_Delete(patch);
    assert_null(inv_status_patch(o, o));
    /* Fields the reconciler writes are not the node's: never in a patch. */
    cJSON *cur = cJSON_Duplicate(o, true);
    cJSON_AddNumberToObject(cJSON_GetObjectItem(cur, "status"), "ordinal", 0);
    cJSON_AddStringToObject(cJSON_GetObjectItem(cur, "status"), "statefulSet", "web");
    assert_null(inv_status_patch(cur, o));
    /* A claim uid that changed: the claim object is replaced (stale keys nulled). */
    cJSON *st = cJSON_GetObjectItem(cur, "status");
    cJSON *cl = cJSON_GetObjectItem(st, "claim");
    cJSON_ReplaceItemInObject(cl, "uid", cJSON_CreateString("u-old"));
    cJSON_AddStringToObject(cl, "stale", "x");
    patch = inv_status_patch(cur, o);
    assert_non_null(patch);
    cl = cJSON_GetObjectItem(cJSON_GetObjectItem(patch, "status"), "claim");
    assert_string_equal(str(cl, "uid", NULL), "u-1");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cl, "stale")));
    cJSON_Delete(patch);
    cJSON_Delete(cur);
    cJSON_Delete(orphan);
    cJSON_Delete(o);
    cJSON_Delete(pv);
}

static void test_reclaim_decide(void **state)
{
    (void)state;
    cJSON *plain = J("{\"metadata\":{\"name\":\"a\"}}");
    cJSON *asked = J("{\"metadata\":{\"name\":\"a\",\"annotations\":{\"ordinal.csi.dev/"
                     "reclaim\":\"requested\"}}}");
    cJSON *other = J("{\"metadata\":{\"name\":\"a\",\"annotations\":{\"ordinal.csi.dev/"
                     "reclaim\":\"yes\"}}}");

    assert_int_equal(inv_reclaim_decide(plain, INV_ORPHANED), INV_RECLAIM_NONE);
    assert_int_equal(inv_reclaim_decide(other, INV_ORPHANED), INV_RECLAIM_NONE);
    assert_int_equal(inv_reclaim_decide(asked, INV_ORPHANED), INV_RECLAIM_DELETE);
    for (enum inv_state s = INV_BOUND; s <= INV_DELETING; s++)
        if (s != INV_ORPHANED)
            assert_int_equal(inv_reclaim_decide(asked, s), INV_RECLAIM_REFUSE);
    cJSON_Delete(plain);
    cJSON_Delete(asked);
    cJSON_Delete(other);
}

static double num(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b);
    assert_true(cJSON_IsNumber(x));
    return x->valuedouble;
}

static bool has(const cJSON *o, const char *a, const char *b)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b) != NULL;
}

static void test_add_usage(void **state)
{
    (void)state;
    cJSON *d = J("{\"status\":{\"state\":\"Bound\"}}");
    cJSON *cur = J("{\"status\":{\"usedBytes\":4096,\"lastUsedAt\":\"2026-01-02T03:04:05Z\"}}");
    cJSON *bad = J("{\"status\":{\"usedBytes\":-1,\"lastUsedAt\":\"yesterday\"}}");

    /* nothing known, no current object: neither field */
    inv_add_usage(d, NULL, false, -1, 0);
    assert_false(has(d, "status", "usedBytes"));
    assert_false(has(d, "status", "lastUsedAt"));
    cJSON_Delete(d);
    /* measured and seen: both, in RFC 3339 */
    d = J("{\"status\":{}}");
    inv_add_usage(d, NULL, true, 123456, 1767323045); /* 2026-01-02T03:04:05Z */
    assert_true(num(d, "status", "usedBytes") == 123456);
    assert_string_equal(str(d, "status", "lastUsedAt"), "2026-01-02T03:04:05Z");
    cJSON_Delete(d);
    /* not measured this time: the last value stays; a restart (no time in memory) keeps the
     * time the object shows; an older time in memory does not move it back */
    d = J("{\"status\":{}}");
    inv_add_usage(d, cur, false, -1, 0);
    assert_true(num(d, "status", "usedBytes") == 4096);
    assert_string_equal(str(d, "status", "lastUsedAt"), "2026-01-02T03:04:05Z");
    cJSON_Delete(d);
    d = J("{\"status\":{}}");
    inv_add_usage(d, cur, true, 8192, 1000);
    assert_true(num(d, "status", "usedBytes") == 8192);
    assert_string_equal(str(d, "status", "lastUsedAt"), "2026-01-02T03:04:05Z");
    cJSON_Delete(d);
    /* a later use wins */
    d = J("{\"status\":{}}");
    inv_add_usage(d, cur, true, 8192, 1767323045 + 86400);
    assert_string_equal(str(d, "status", "lastUsedAt"), "2026-01-03T03:04:05Z");
    cJSON_Delete(d);
    /* garbage in the current object is not carried over */
    d = J("{\"status\":{}}");
    inv_add_usage(d, bad, false, -1, 0);
    assert_false(has(d, "status", "usedBytes"));
    assert_false(has(d, "status", "lastUsedAt"));
    cJSON_Delete(d);
    cJSON_Delete(cur);
    cJSON_Delete(bad);
}

static int notified;

static void count(void *ud)
{
    (void)ud;
    notified++;
}

static void test_uses_table(void **state)
{
    (void)state;
    struct csi_uses *u = csi_uses_new();
    char id[64];

    assert_non_null(u);
    assert_int_equal(csi_uses_get(u, "dir:a"), 0);
    csi_uses_note(u, "dir:a", 100);
    csi_uses_note(u, "dir:a", 50); /* never back in time */
    assert_int_equal(csi_uses_get(u, "dir:a"), 100);
    csi_uses_set_notify(u, count, NULL);
    csi_uses_note(u, "dir:a", 200);
    assert_int_equal(notified, 1);
    assert_int_equal(csi_uses_get(u, "dir:a"), 200);
    csi_uses_set_notify(u, NULL, NULL);
    for (int i = 0; i < 3000; i++) { /* several per bucket */
        snprintf(id, sizeof(id), "dir:ns/www-web-%d", i);
        csi_uses_note(u, id, 1000 + i);
    }
    assert_int_equal(notified, 1);
    for (int i = 0; i < 3000; i += 7) {
        snprintf(id, sizeof(id), "dir:ns/www-web-%d", i);
        assert_int_equal(csi_uses_get(u, id), 1000 + i);
    }
    csi_uses_forget(u, "dir:ns/www-web-7");
    assert_int_equal(csi_uses_get(u, "dir:ns/www-web-7"), 0);
    assert_int_equal(csi_uses_get(u, "dir:ns/www-web-8"), 1008);
    /* NULL everywhere is harmless */
    csi_uses_note(NULL, "x", 1);
    assert_int_equal(csi_uses_get(NULL, "x"), 0);
    csi_uses_note(u, NULL, 1);
    csi_uses_free(u);
    csi_uses_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_of_pv),    cmocka_unit_test(test_pv_refers),
        cmocka_unit_test(test_names),          cmocka_unit_test(test_desired),
        cmocka_unit_test(test_reclaim_decide), cmocka_unit_test(test_add_usage),
        cmocka_unit_test(test_uses_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
