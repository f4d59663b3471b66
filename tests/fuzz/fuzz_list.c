/*
 * Fuzz target: a List body as kube_list_each parses it (kube_list_parse, kube/kube_client.c),
 * item by item, and the informer store's deflated entries (kube/kube_informer.c). Checked against
 * cJSON's parse of the whole body: when that is one object (nothing after it) with at most one
 * "items", an array or null, the item-wise parse succeeds with the same items in order and the
 * same other members. Every item the parse handed out is then stored (kube_store_replace, no
 * transform: the first one becomes the dictionary) and each must come back as it went in, less
 * managedFields (the last one of a key, when keys repeat).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "kube_client.h"
#include "kube_informer.h"

static int collect(void *ud, cJSON *item)
{
    return cJSON_AddItemToArray(ud, item) ? 0 : -ENOMEM;
}

/* Equal as printed (cJSON_Compare looks up keys by name, which repeated keys defeat). */
static bool same(const cJSON *a, const cJSON *b)
{
    char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
    bool eq = x && y && strcmp(x, y) == 0;

    free(x);
    free(y);
    return eq || !x || !y; /* out of memory proves nothing */
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_list: %s\n", what);
    abort();
}

/* The whole body as one cJSON value with nothing but whitespace after it, or NULL. */
static cJSON *parse_whole(const char *text, size_t size)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, size, &end, false);

    while (v && end < text + size && (unsigned char)*end <= ' ')
        end++;
    if (v && end != text + size) {
        cJSON_Delete(v);
        v = NULL;
    }
    return v;
}

static void check_store(const cJSON *items)
{
    struct kube_store *s = kube_store_new(true);
    cJSON *copy = cJSON_Duplicate(items, true);
    const cJSON *it, *later;
    char key[512], key2[512];

    if (!s || !copy || kube_store_replace(s, copy, NULL) != 0)
        goto out;
    cJSON_ArrayForEach(it, items)
    {
        bool last = true;
        cJSON *want, *got;

        if (kube_store_key(s, it, key, sizeof(key)) < 0)
            fail("an item stored without a key");
        for (later = it->next; later && last; later = later->next)
            last = !(kube_store_key(s, later, key2, sizeof(key2)) == 0 && !strcmp(key, key2));
        if (!last)
            continue;
        got = kube_store_get(s, kube_obj_namespace(it), kube_obj_name(it));
        if (!got)
            fail("a stored item is missing");
        want = cJSON_Duplicate(it, true);
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(want, "metadata"),
                                                "managedFields");
        if (want && !same(got, want))
            fail("a stored item came back different");
        cJSON_Delete(want);
        cJSON_Delete(got);
    }
out:
    cJSON_Delete(copy);
    kube_store_free(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    cJSON *whole = parse_whole(text, size), *items = cJSON_CreateArray(), *page = NULL, *m;
    cJSON *witems = cJSON_GetObjectItemCaseSensitive(whole, "items");
    int r, n_items = 0;

    if (!items)
        return 0;
    r = kube_list_parse(text, size, collect, items, &page);
    if (r == 0 && !page)
        fail("success without a page");
    if (r < 0 && r != -EBADMSG && r != -ENOMEM)
        fail("an error that is neither -EBADMSG nor -ENOMEM");
    cJSON_ArrayForEach(m, whole) n_items += m->string && !strcmp(m->string, "items");
    if (cJSON_IsObject(whole) && n_items <= 1 &&
        (!witems || cJSON_IsArray(witems) || cJSON_IsNull(witems))) {
        if (r == -EBADMSG)
            fail("refused a valid list");
        if (r == 0) {
            if (cJSON_IsArray(witems)) {
                if (!same(items, witems))
                    fail("items differ from the whole parse");
                cJSON_ReplaceItemInObjectCaseSensitive(whole, "items", cJSON_CreateArray());
            } else if (cJSON_GetArraySize(items) != 0) {
                fail("items handed out of a list without any");
            }
            if (!same(page, whole))
                fail("the page differs from the whole parse");
        }
    }
    if (r == 0)
        check_store(items);
    cJSON_Delete(page);
    cJSON_Delete(items);
    cJSON_Delete(whole);
    return 0;
}
