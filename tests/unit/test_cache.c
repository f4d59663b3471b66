/* The cache transforms: what a cached claim, PV and node keep, and that the store keeps them so. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cache.h"
#include "kube_client.h"
#include "kube_informer.h"
#include "kube_watch.h"

/* A claim as the API server sends one for a StatefulSet's volumeClaimTemplate. */
static const char CLAIM[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"data-web-"
    "0\","
    "\"namespace\":\"default\",\"uid\":\"u1\",\"resourceVersion\":\"42\",\"creationTimestamp\":"
    "\"2026-12-02T10:00:00Z\",\"labels\":{\"app\":\"web\"},\"annotations\":{"
    "\"volume.kubernetes.io/selected-node\":\"n1\",\"kubectl.kubernetes.io/last-applied-"
    "configuration\":\"{...}\"},\"finalizers\":[\"kubernetes.io/pvc-protection\"],"
    "\"ownerReferences\":[{\"kind\":\"StatefulSet\",\"name\":\"web\"}],\"managedFields\":[{"
    "\"manager\":\"kube-controller-manager\",\"operation\":\"Update\",\"fieldsV1\":{\"f:spec\":{}}}"
    "]},"
    "\"spec\":{\"accessModes\":[\"ReadWriteOnce\"],\"resources\":{\"requests\":{\"storage\":"
    "\"1Gi\"}},"
    "\"storageClassName\":\"ordinal\",\"volumeMode\":\"Filesystem\",\"volumeName\":\"pvc-u1\","
    "\"selector\":null},\"status\":{\"phase\":\"Bound\",\"accessModes\":[\"ReadWriteOnce\"],"
    "\"capacity\":{\"storage\":\"1Gi\"}}}";

static const char PV[] =
    "{\"metadata\":{\"name\":\"pvc-u1\",\"uid\":\"p1\",\"resourceVersion\":\"43\",\"labels\":{"
    "\"x\":"
    "\"y\"},\"annotations\":{\"pv.kubernetes.io/"
    "provisioned-by\":\"ordinal.csi.dev\"},\"finalizers\":["
    "\"kubernetes.io/pv-protection\"],\"managedFields\":[{\"manager\":\"ordinal\"}]},\"spec\":{"
    "\"capacity\":{\"storage\":\"1Gi\"},\"csi\":{\"driver\":\"ordinal.csi.dev\",\"volumeHandle\":"
    "\"dir:x\",\"volumeAttributes\":{\"k\":\"v\"},\"fsType\":\"ext4\"},\"claimRef\":{\"kind\":"
    "\"PersistentVolumeClaim\",\"namespace\":\"default\",\"name\":\"data-web-0\",\"uid\":\"u1\","
    "\"resourceVersion\":\"40\"},\"persistentVolumeReclaimPolicy\":\"Delete\",\"storageClassName\":"
    "\"ordinal\",\"volumeMode\":\"Filesystem\",\"nodeAffinity\":{\"required\":{"
    "\"nodeSelectorTerms\":"
    "[{\"matchExpressions\":[{\"key\":\"topology.ordinal.csi.dev/node\",\"operator\":\"In\","
    "\"values\":[\"n1\"]}]}]}}},\"status\":{\"phase\":\"Bound\",\"lastPhaseTransitionTime\":"
    "\"2026-12-02T10:00:01Z\"}}";

static char *print(const cJSON *o)
{
    return cJSON_PrintUnformatted(o);
}

static void test_claim_keeps_what_is_read(void **state)
{
    (void)state;
    cJSON *c = cJSON_Parse(CLAIM);
    char *txt;

    assert_non_null(c);
    cache_trim_claim(c);
    txt = print(c);
    assert_string_equal(
        txt, "{\"metadata\":{\"name\":\"data-web-0\",\"namespace\":\"default\",\"uid\":\"u1\","
             "\"resourceVersion\":\"42\",\"creationTimestamp\":\"2026-12-02T10:00:00Z\","
             "\"labels\":{\"app\":\"web\"},\"annotations\":{\"volume.kubernetes.io/selected-node\":"
             "\"n1\"},\"finalizers\":[\"kubernetes.io/pvc-protection\"]},\"spec\":{\"accessModes\":"
             "[\"ReadWriteOnce\"],\"resources\":{\"requests\":{\"storage\":\"1Gi\"}},"
             "\"storageClassName\":\"ordinal\",\"volumeMode\":\"Filesystem\",\"volumeName\":"
             "\"pvc-u1\"},\"status\":{\"phase\":\"Bound\"}}");
    free(txt);
    cJSON_Delete(c);
}

static void test_pv_keeps_what_is_read(void **state)
{
    (void)state;
    cJSON *p = cJSON_Parse(PV);
    char *txt;

    assert_non_null(p);
    cache_trim_pv(p);
    txt = print(p);
    assert_string_equal(
        txt, "{\"metadata\":{\"name\":\"pvc-u1\",\"uid\":\"p1\",\"resourceVersion\":\"43\","
             "\"annotations\":{\"pv.kubernetes.io/provisioned-by\":\"ordinal.csi.dev\"},"
             "\"finalizers\":[\"kubernetes.io/pv-protection\"]},\"spec\":{\"csi\":{\"driver\":"
             "\"ordinal.csi.dev\",\"volumeHandle\":\"dir:x\",\"volumeAttributes\":{\"k\":\"v\"}},"
             "\"claimRef\":{\"namespace\":\"default\",\"name\":\"data-web-0\",\"uid\":\"u1\"},"
             "\"persistentVolumeReclaimPolicy\":\"Delete\",\"storageClassName\":\"ordinal\","
             "\"nodeAffinity\":{\"required\":{\"nodeSelectorTerms\":[{\"matchExpressions\":[{"
             "\"key\":\"topology.ordinal.csi.dev/node\",\"operator\":\"In\",\"values\":[\"n1\"]}]}]"
             "}}},\"status\":{\"phase\":\"Bound\",\"lastPhaseTransitionTime\":"
             "\"2026-12-02T10:00:01Z\"}}");
    free(txt);
    cJSON_Delete(p);
}

static void test_node_keeps_conditions(void **state)
{
    (void)state;
    cJSON *n = cJSON_Parse("{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"1\"},\"spec\":{"
                           "\"podCIDR\":\"x\"},\"status\":{\"images\":[{\"names\":[\"a\"]}],"
                           "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}");
    char *txt;

    cache_trim_node(n);
    txt = print(n);
    assert_string_equal(txt, "{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"1\"},\"status\":"
                             "{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}");
    free(txt);
    cJSON_Delete(n);
}

/* A store with the transform hands out and passes to handlers only the trimmed object; without
 * one, managedFields still go. */
static int adds;
static void on_add(void *ud, const cJSON *obj)
{
    (void)ud;
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "metadata"), "managedFields"));
    adds++;
}

static void test_store_keeps_trimmed_text(void **state)
{
    (void)state;
    struct kube_informer_handlers h = {.on_add = on_add};
    struct kube_store *s = kube_store_new(true), *bare = kube_store_new(true);
    struct kube_event ev = {KUBE_EVENT_ADDED, cJSON_Parse(CLAIM)};
    cJSON *got, *ref = cJSON_Parse(CLAIM);
    char *txt;
    size_t full = strlen(CLAIM), text_bytes;

    kube_store_set_transform(s, cache_trim_claim);
    assert_int_equal(kube_store_apply(s, &ev, &h), 0);
    got = kube_store_get(s, "default", "data-web-0");
    cache_trim_claim(ref);
    assert_true(cJSON_Compare(got, ref, true));
    txt = cJSON_PrintUnformatted(ref);
    kube_store_sizes(s, &text_bytes, NULL);
    assert_int_equal(text_bytes, strlen(txt) + 1); /* the compact text, nothing else */
    assert_true(strlen(txt) < full);
    free(txt);
    cJSON_Delete(got);

    ev = (struct kube_event){KUBE_EVENT_ADDED, cJSON_Parse(CLAIM)};
    assert_int_equal(kube_store_apply(bare, &ev, &h), 0);
    got = kube_store_get(bare, "default", "data-web-0");
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(got, "metadata"), "managedFields"));
    assert_non_null(cJSON_GetObjectItem(got, "kind"));
    assert_int_equal(adds, 2);
    cJSON_Delete(got);
    cJSON_Delete(ref);
    kube_store_free(s);
    kube_store_free(bare);
}

/* Entries are deflated against the first object's text: many similar objects, one larger than
 * the window and one unlike the rest come back exactly; a relist of the same objects is no
 * update, a changed one is one. */
static int updates;
static void on_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    (void)ud;
    (void)old_obj;
    (void)obj;
    updates++;
}

static cJSON *claim_n(int i, const char *rv)
{
    cJSON *c = cJSON_Parse(CLAIM), *md = cJSON_GetObjectItem(c, "metadata");
    char buf[64];

    snprintf(buf, sizeof(buf), "data-web-%d", i);
    cJSON_ReplaceItemInObject(md, "name", cJSON_CreateString(buf));
    snprintf(buf, sizeof(buf), "%08x-0000-4000-8000-%012x", i * 2654435761u, i);
    cJSON_ReplaceItemInObject(md, "uid", cJSON_CreateString(buf));
    cJSON_ReplaceItemInObject(md, "resourceVersion", cJSON_CreateString(rv));
    return c;
}

static void test_store_deflates_against_first_object(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct kube_informer_handlers h = {.on_update = on_update};
    struct kube_store *s = kube_store_new(true);
    cJSON *items = cJSON_CreateArray(), *want = cJSON_CreateArray(), *got, *w;
    char *big = malloc(20001);
    size_t text_bytes, packed_bytes;

    kube_store_set_transform(s, cache_trim_claim);
    for (int i = 0; i < N; i++)
        cJSON_AddItemToArray(items, claim_n(i, "7"));
    /* larger than the 8 KiB window, and an object that shares nothing with the first */
    memset(big, 'x', 20000);
    big[20000] = 0;
    cJSON_AddStringToObject(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 1), "metadata"),
                            "annotations"),
        "big", big);
    cJSON_AddItemToArray(items, cJSON_Parse("{\"metadata\":{\"name\":\"zz\",\"namespace\":"
                                            "\"q\"},\"spec\":{\"\\u00e9\":[1.5,-2,null,true]}}"));
    cJSON_ArrayForEach(w, items)
    {
        cJSON *t = cJSON_Duplicate(w, true);

        cache_trim_claim(t);
        cJSON_AddItemToArray(want, t);
    }
    assert_int_equal(kube_store_replace(s, items, &h), 0);
    assert_int_equal(kube_store_count(s), N + 1);
    cJSON_ArrayForEach(w, want)
    {
        got = kube_store_get(s, kube_obj_namespace(w), kube_obj_name(w));
        assert_non_null(got);
        assert_true(cJSON_Compare(got, w, true));
        cJSON_Delete(got);
    }
    /* deflated: well under a fifth of the text (a trimmed claim here is ~450 bytes) */
    kube_store_sizes(s, &text_bytes, &packed_bytes);
    assert_true(packed_bytes * 5 < text_bytes);

    /* the same objects again: nothing changed; one with a new resourceVersion: one update */
    cJSON_Delete(items);
    items = cJSON_Duplicate(want, true);
    assert_int_equal(kube_store_replace(s, items, &h), 0);
    assert_int_equal(updates, 0);
    cJSON_Delete(items);
    items = cJSON_Duplicate(want, true);
    cJSON_ReplaceItemInArray(items, 5, claim_n(5, "8"));
    assert_int_equal(kube_store_replace(s, items, &h), 0);
    assert_int_equal(updates, 1);
    got = kube_store_get(s, "default", "data-web-5");
    assert_string_equal(kube_obj_rv(got), "8");
    cJSON_Delete(got);
    got = kube_store_list(s);
    assert_int_equal(cJSON_GetArraySize(got), N + 1);
    cJSON_Delete(got);

    free(big);
    cJSON_Delete(items);
    cJSON_Delete(want);
    kube_store_free(s);
}

/* An edit of a trimmed copy patches only what it changed: nothing the trim dropped (owner
 * references, managedFields, labels of a PV, status fields) is in the patch. */
static void test_edit_of_trimmed_copy_patches_only_the_change(void **state)
{
    (void)state;
    cJSON *c = cJSON_Parse(CLAIM), *edited, *patch = NULL;
    char *txt;

    cache_trim_claim(c);
    edited = cJSON_Duplicate(c, true);
    cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetObjectItem(edited, "metadata"), "finalizers"),
                         cJSON_CreateString("ordinal.csi.dev/provisioning"));
    assert_int_equal(kube_merge_patch_diff(c, edited, &patch), 0);
    txt = print(patch);
    assert_string_equal(txt, "{\"metadata\":{\"finalizers\":[\"kubernetes.io/pvc-protection\","
                             "\"ordinal.csi.dev/provisioning\"]}}");
    free(txt);
    cJSON_Delete(patch);
    cJSON_Delete(edited);
    cJSON_Delete(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_keeps_what_is_read),
        cmocka_unit_test(test_pv_keeps_what_is_read),
        cmocka_unit_test(test_node_keeps_conditions),
        cmocka_unit_test(test_store_keeps_trimmed_text),
        cmocka_unit_test(test_store_deflates_against_first_object),
        cmocka_unit_test(test_edit_of_trimmed_copy_patches_only_the_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
