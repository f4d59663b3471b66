/* Unit tests: kube/kube_client.c without a server (paths, Status decoding, queries, call
 * bounds, the item-wise list parse), kube_ratelimit.c (token bucket with an injected clock) and
 * kube_recorder.c (drops). */
#include <errno.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kube_client.h"
#include "kube_ratelimit.h"
#include "kube_recorder.h"
#include "kube_util.h"

static void test_paths(void **state)
{
    char buf[256];

    (void)state;
    assert_int_equal(kube_path(buf, sizeof(buf), &kube_pods, "ns", "p", NULL), 28);
    assert_string_equal(buf, "/api/v1/namespaces/ns/pods/p");
    kube_path(buf, sizeof(buf), &kube_persistentvolumeclaims, "ns", "c", "status");
    assert_string_equal(buf, "/api/v1/namespaces/ns/persistentvolumeclaims/c/status");
    kube_path(buf, sizeof(buf), &kube_persistentvolumeclaims, NULL, NULL, NULL);
    assert_string_equal(buf, "/api/v1/persistentvolumeclaims");
    kube_path(buf, sizeof(buf), &kube_statefulsets, "db", "pg", NULL);
    assert_string_equal(buf, "/apis/apps/v1/namespaces/db/statefulsets/pg");
    kube_path(buf, sizeof(buf), &kube_storageclasses, NULL, "fast", NULL);
    assert_string_equal(buf, "/apis/storage.k8s.io/v1/storageclasses/fast");
    kube_path(buf, sizeof(buf), &kube_leases, "kube-system", "ordinal", NULL);
    assert_string_equal(buf, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/ordinal");
    kube_path(buf, sizeof(buf), &kube_csinodes, NULL, "node-1", NULL);
    assert_string_equal(buf, "/apis/storage.k8s.io/v1/csinodes/node-1");
    kube_path(buf, sizeof(buf), &kube_nodes, NULL, NULL, NULL);
    assert_string_equal(buf, "/api/v1/nodes");
    kube_path(buf, sizeof(buf), &kube_events, "ns", NULL, NULL);
    assert_string_equal(buf, "/api/v1/namespaces/ns/events");
    kube_path(buf, sizeof(buf), &kube_namespaces, NULL, "ns", NULL);
    assert_string_equal(buf, "/api/v1/namespaces/ns");
    kube_path(buf, sizeof(buf), &kube_persistentvolumes, NULL, "pv-1", NULL);
    assert_string_equal(buf, "/api/v1/persistentvolumes/pv-1");

    assert_int_equal(kube_path(buf, sizeof(buf), &kube_pods, "ns", "../x", NULL), -EINVAL);
    assert_int_equal(kube_path(buf, sizeof(buf), &kube_pods, "ns", "a/b", NULL), -EINVAL);
    assert_int_equal(kube_path(buf, sizeof(buf), &kube_pods, "ns", "a?b", NULL), -EINVAL);
    assert_int_equal(kube_path(buf, sizeof(buf), &kube_pods, "NS", "a", NULL), -EINVAL);
    assert_int_equal(kube_path(buf, sizeof(buf), &kube_pods, NULL, "a", NULL), -EINVAL);
    assert_int_equal(kube_path(buf, sizeof(buf), &kube_nodes, "ns", "a", NULL), -EINVAL);
    assert_int_equal(kube_path(buf, sizeof(buf), &kube_pods, "ns", "a", "St/x"), -EINVAL);
    assert_int_equal(kube_path(buf, sizeof(buf), &kube_pods, "ns", NULL, "status"), -EINVAL);
    assert_int_equal(kube_path(buf, 10, &kube_pods, "ns", "a", NULL), -ENAMETOOLONG);

    assert_ptr_equal(kube_resource_find("leases"), &kube_leases);
    assert_null(kube_resource_find("secrets"));
    assert_true(kube_name_valid("pvc-0.data-1"));
    assert_false(kube_name_valid(""));
    assert_false(kube_name_valid("-a"));
    assert_false(kube_name_valid("a-"));
    assert_false(kube_name_valid("a b"));
}

static void test_query(void **state)
{
    char buf[256] = "/api/v1/pods";
    struct kube_list_opts o = {.label_selector = "app in (a,b),!x",
                               .field_selector = "spec.nodeName=n1",
                               .continue_token = "eyJ2Ijoi+/=",
                               .limit = 500};

    (void)state;
    assert_int_equal(kube_list_query(buf, sizeof(buf), &o), 0);
    assert_string_equal(buf, "/api/v1/pods?labelSelector=app%20in%20%28a%2Cb%29%2C%21x"
                             "&fieldSelector=spec.nodeName%3Dn1&continue=eyJ2Ijoi%2B%2F%3D"
                             "&limit=500");
    strcpy(buf, "/p?watch=1");
    o = (struct kube_list_opts){.resource_version = "0"};
    assert_int_equal(kube_list_query(buf, sizeof(buf), &o), 0);
    assert_string_equal(buf, "/p?watch=1&resourceVersion=0");
    strcpy(buf, "/p");
    o = (struct kube_list_opts){.label_selector = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    assert_int_equal(kube_list_query(buf, 30, &o), -ENAMETOOLONG);
}

static cJSON *status(const char *reason, int code, const char *msg)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
             "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
             msg, reason, code);
    return cJSON_Parse(buf);
}

static void test_status_decode(void **state)
{
    struct {
        long http;
        const char *reason;
        int want;
    } cases[] = {
        {404, "NotFound", -ENOENT},
        {409, "AlreadyExists", -EEXIST},
        {409, "Conflict", KUBE_ECONFLICT},
        {410, "Expired", KUBE_EGONE},
        {410, "Gone", KUBE_EGONE},
        {422, "Invalid", -EINVAL},
        {400, "BadRequest", -EINVAL},
        {401, "Unauthorized", -EACCES},
        {403, "Forbidden", -EPERM},
        {405, "MethodNotAllowed", -EOPNOTSUPP},
        {415, "UnsupportedMediaType", -EPROTO},
        {429, "TooManyRequests", -EBUSY},
        {500, "InternalError", -EIO},
        {503, "ServiceUnavailable", -EAGAIN},
        {504, "Timeout", -ETIMEDOUT},
        {413, "RequestEntityTooLarge", -EMSGSIZE},
    };
    struct kube_status st;
    cJSON *b;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        b = status(cases[i].reason, (int)cases[i].http, "m");
        assert_int_equal(kube_status_decode(cases[i].http, b, &st), cases[i].want);
        assert_string_equal(st.reason, cases[i].reason);
        assert_int_equal(st.code, cases[i].http);
        assert_string_equal(st.message, "m");
        cJSON_Delete(b);
        /* without a body the code decides (409 alone is a conflict) */
        if (strcmp(cases[i].reason, "AlreadyExists") != 0)
            assert_int_equal(kube_status_decode(cases[i].http, NULL, &st), cases[i].want);
    }
    assert_int_equal(kube_status_decode(200, NULL, &st), 0);
    assert_int_equal(kube_status_decode(201, NULL, NULL), 0);
    assert_int_equal(kube_status_decode(418, NULL, &st), -EPROTO);
    assert_string_equal(st.message, "HTTP 418");

    /* details.retryAfterSeconds and control characters in the message */
    b = cJSON_Parse("{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"code\":429,"
                    "\"message\":\"slow\\ndown\",\"details\":{\"retryAfterSeconds\":3}}");
    assert_int_equal(kube_status_decode(429, b, &st), -EBUSY);
    assert_int_equal(st.retry_after, 3);
    assert_string_equal(st.message, "slow down");
    cJSON_Delete(b);

    /* hostile Status: wrong types and huge numbers are ignored field by field */
    b = cJSON_Parse("{\"kind\":\"Status\",\"reason\":7,\"code\":1e300,\"message\":[],"
                    "\"details\":{\"retryAfterSeconds\":-5}}");
    assert_int_equal(kube_status_decode(404, b, &st), -ENOENT);
    assert_int_equal(st.code, 404);
    assert_string_equal(st.reason, "");
    assert_int_equal(st.retry_after, 0);
    cJSON_Delete(b);
    /* not a Status at all */
    b = cJSON_Parse("{\"kind\":\"Pod\",\"reason\":\"AlreadyExists\"}");
    assert_int_equal(kube_status_decode(409, b, &st), KUBE_ECONFLICT);
    cJSON_Delete(b);
    /* an over-long message is truncated */
    {
        char big[2000];
        cJSON *s;

        memset(big, 'm', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "kind", "Status");
        cJSON_AddStringToObject(s, "message", big);
        assert_int_equal(kube_status_decode(500, s, &st), -EIO);
        assert_int_equal(strlen(st.message), sizeof(st.message) - 1);
        cJSON_Delete(s);
    }
    /* a watch ERROR event: code comes from the body */
    b = status("Expired", 410, "too old");
    assert_int_equal(kube_status_decode(0, b, &st), KUBE_EGONE);
    cJSON_Delete(b);
}

static void test_obj_fields(void **state)
{
    cJSON *o = cJSON_Parse("{\"metadata\":{\"name\":\"n\",\"namespace\":5}}");

    (void)state;
    assert_string_equal(kube_obj_name(o), "n");
    assert_null(kube_obj_namespace(o));
    assert_null(kube_obj_rv(o));
    assert_null(kube_obj_name(NULL));
    cJSON_Delete(o);
}

static void test_ratelimit(void **state)
{
    struct kube_ratelimit rl;

    (void)state;
    assert_int_equal(kube_ratelimit_init(&rl, 10, 3), 0);
    /* a burst of 3 goes at once */
    assert_true(kube_ratelimit_reserve(&rl, 100.0) == 0);
    assert_true(kube_ratelimit_reserve(&rl, 100.0) == 0);
    assert_true(kube_ratelimit_reserve(&rl, 100.0) == 0);
    /* then one every 100 ms, reserved in order */
    assert_float_equal(kube_ratelimit_reserve(&rl, 100.0), 0.1, 1e-9);
    assert_float_equal(kube_ratelimit_reserve(&rl, 100.0), 0.2, 1e-9);
    /* 0.25 s later: 2.5 tokens refilled, 2 owed, so 0.5 left → the next waits 0.05 s */
    assert_float_equal(kube_ratelimit_reserve(&rl, 100.25), 0.05, 1e-9);
    /* a long pause refills only up to the burst */
    assert_true(kube_ratelimit_reserve(&rl, 200.0) == 0);
    assert_true(kube_ratelimit_reserve(&rl, 200.0) == 0);
    assert_true(kube_ratelimit_reserve(&rl, 200.0) == 0);
    assert_true(kube_ratelimit_reserve(&rl, 200.0) > 0);
    /* time going backwards does not mint tokens */
    assert_true(kube_ratelimit_reserve(&rl, 150.0) > 0);
    kube_ratelimit_release(&rl);

    assert_int_equal(kube_ratelimit_init(&rl, 0, 0), 0); /* unlimited */
    for (int i = 0; i < 1000; i++)
        assert_true(kube_ratelimit_reserve(&rl, 1.0) == 0);
    kube_ratelimit_release(&rl);
    assert_int_equal(kube_ratelimit_init(&rl, 5, 0), -EINVAL);
}

static void test_client_offline(void **state)
{
    struct kube_config cfg;
    struct kube_client *c;
    struct kube_status st;
    cJSON *obj = NULL;

    (void)state;
    assert_int_equal(kube_global_init(), 0);
    kube_config_init(&cfg);
    assert_null(kube_client_new(&cfg));        /* no server */
    cfg.server = strdup("http://127.0.0.1:9"); /* discard port: nothing listens */
    cfg.max_retries = 1;
    cfg.connect_timeout_ms = 1000;
    c = kube_client_new(&cfg);
    kube_config_release(&cfg);
    assert_non_null(c);
    assert_string_equal(kube_client_namespace(c), "default");
    assert_int_equal(kube_get(c, &kube_pods, "ns", "p", &obj, &st), -ECONNREFUSED);
    assert_null(obj);
    assert_int_equal(st.http, 0);
    assert_true(st.message[0] != 0);
    assert_int_equal(kube_client_request_count(c), 2); /* GET is retried */
    assert_int_equal(kube_get(c, &kube_pods, "ns", "Bad", &obj, &st), -EINVAL);
    kube_client_shutdown(c);
    assert_int_equal(kube_get(c, &kube_pods, "ns", "p", &obj, &st), -ECANCELED);
    kube_client_free(c);
    kube_global_cleanup();
}

/* Bounded calls: a retry cap, a deadline that cuts the retries, a stop flag; the link state. */
static void test_client_bounds(void **state)
{
    struct kube_config cfg;
    struct kube_client *c;
    struct kube_status st;
    atomic_bool stop;
    unsigned long n;
    double t0;

    (void)state;
    assert_int_equal(kube_global_init(), 0);
    kube_config_init(&cfg);
    cfg.server = strdup("http://127.0.0.1:9"); /* nothing listens */
    cfg.max_retries = 5;
    c = kube_client_new(&cfg);
    kube_config_release(&cfg);
    assert_non_null(c);
    assert_false(kube_client_connected(c)); /* nothing known yet */

    /* no retries: one request */
    struct kube_call_opts once = {.max_retries = 0};
    assert_int_equal(kube_get_opts(c, &kube_pods, "ns", "p", &once, NULL, &st), -ECONNREFUSED);
    assert_int_equal(kube_client_request_count(c), 1);
    assert_false(kube_client_connected(c));

    /* a deadline 0.3 s away: the client's 5 retries (backoff 0.25 s doubling) are cut to the
     * ones that can start before it */
    t0 = kube__now();
    struct kube_call_opts bounded = {.deadline = t0 + 0.3, .max_retries = -1};
    n = kube_client_request_count(c);
    assert_int_equal(kube_get_opts(c, &kube_pods, "ns", "p", &bounded, NULL, &st), -ECONNREFUSED);
    assert_true(kube__now() - t0 < 0.35);
    assert_true(kube_client_request_count(c) - n <= 2);

    /* a deadline that has passed: no request at all */
    struct kube_call_opts late = {.deadline = kube__now() - 1, .max_retries = -1};
    n = kube_client_request_count(c);
    assert_int_equal(kube_get_opts(c, &kube_pods, "ns", "p", &late, NULL, &st), -ETIMEDOUT);
    assert_int_equal(kube_client_request_count(c), n);

    /* a stop flag that is set: -ECANCELED, no request */
    atomic_init(&stop, true);
    struct kube_call_opts stopped = {.max_retries = -1, .stop = &stop};
    assert_int_equal(kube_get_opts(c, &kube_pods, "ns", "p", &stopped, NULL, &st), -ECANCELED);
    assert_int_equal(kube_client_request_count(c), n);

    assert_int_equal(kube_client_set_user_agent(c, "ordinal/test (node n1)"), 0);
    kube_client_shutdown(c);
    kube_client_free(c);
    kube_global_cleanup();
}

/* The recorder never blocks its caller, drops what it cannot send and counts it. */
static void test_recorder_drops(void **state)
{
    struct kube_config cfg;
    struct kube_client *c;
    struct kube_recorder *r;
    double t0;

    (void)state;
    assert_int_equal(kube_global_init(), 0);
    kube_config_init(&cfg);
    cfg.server = strdup("http://127.0.0.1:9"); /* nothing listens */
    cfg.max_retries = 5;
    c = kube_client_new(&cfg);
    kube_config_release(&cfg);
    assert_non_null(c);
    r = kube_recorder_new(c, 4);
    assert_non_null(r);
    t0 = kube__now();
    for (int i = 0; i < 20; i++)
        kube_recorder_post(r, "default", cJSON_Parse("{\"reason\":\"Test\"}"));
    kube_recorder_post(r, "default", NULL);         /* nothing to post: ignored */
    kube_recorder_post(r, NULL, cJSON_Parse("{}")); /* no namespace: dropped */
    assert_true(kube__now() - t0 < 0.5);            /* never waited for the API server */
    /* at most 4 queued and one in flight: the rest dropped at once */
    assert_true(kube_recorder_dropped(r) >= 21 - 5);
    while (kube_recorder_dropped(r) < 21 && kube__now() - t0 < 10)
        kube__sleep(c, 0.01, NULL);
    assert_int_equal(kube_recorder_dropped(r), 21);
    assert_int_equal(kube_recorder_sent(r), 0);
    kube_recorder_free(r);
    assert_int_equal(kube_recorder_dropped(NULL), 0);
    kube_client_free(c);
    kube_global_cleanup();
}

/* The merge patch of an edit holds what changed and nothing else: a field the edited copy never
 * had (trimmed from a cache) is not in it, so the server keeps it. */
static void test_merge_patch_diff(void **state)
{
    (void)state;
    cJSON *from = cJSON_Parse("{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"7\","
                              "\"annotations\":{\"x\":\"1\",\"gone\":\"2\"},"
                              "\"finalizers\":[\"f1\"]},\"spec\":{\"n\":1},\"nul\":null}");
    cJSON *to = cJSON_Duplicate(from, true), *patch = NULL;
    char *txt;

    assert_non_null(from);
    /* no change: an empty patch */
    assert_int_equal(kube_merge_patch_diff(from, to, &patch), 0);
    txt = cJSON_PrintUnformatted(patch);
    assert_string_equal(txt, "{}");
    free(txt);
    cJSON_Delete(patch);
    /* add a finalizer (arrays go whole), remove an annotation, set one to null, add one */
    cJSON *md = cJSON_GetObjectItem(to, "metadata"), *ann = cJSON_GetObjectItem(md, "annotations");
    cJSON_AddItemToArray(cJSON_GetObjectItem(md, "finalizers"), cJSON_CreateString("f2"));
    cJSON_DeleteItemFromObject(ann, "gone");
    cJSON_ReplaceItemInObject(ann, "x", cJSON_CreateNull());
    cJSON_AddStringToObject(ann, "new", "3");
    cJSON_AddTrueToObject(to, "top");
    assert_int_equal(kube_merge_patch_diff(from, to, &patch), 0);
    txt = cJSON_PrintUnformatted(patch);
    assert_string_equal(txt, "{\"metadata\":{\"annotations\":{\"x\":null,\"new\":\"3\","
                             "\"gone\":null},\"finalizers\":[\"f1\",\"f2\"]},\"top\":true}");
    free(txt);
    cJSON_Delete(patch);
    assert_int_equal(kube_merge_patch_diff(from, cJSON_GetObjectItem(to, "top"), &patch), -EINVAL);
    cJSON_Delete(from);
    cJSON_Delete(to);
}

struct items_seen {
    cJSON *arr;  /* the items handed out, in order */
    int fail_at; /* > 0: on_item fails (-ENOSPC) on this call */
    int calls;
};

static int collect_item(void *ud, cJSON *item)
{
    struct items_seen *is = ud;

    if (++is->calls == is->fail_at) {
        cJSON_Delete(item);
        return -ENOSPC;
    }
    cJSON_AddItemToArray(is->arr, item);
    return 0;
}

/* kube_list_each's parse: the items one at a time, equal to a whole parse's, the rest of the
 * page kept with "items" empty; malformed bodies and on_item's errors refused. */
static void test_list_parse(void **state)
{
    (void)state;
    static const char body[] =
        " {\"kind\":\"PersistentVolumeClaimList\",\"apiVersion\":\"v1\",\n"
        "  \"metadata\":{\"resourceVersion\":\"42\",\"continue\":\"tok\"},\n"
        "  \"items\" : [ {\"metadata\":{\"name\":\"a\",\"annotations\":{\"x\":\"[],{}\\\"\"}}},\n"
        "    {\"metadata\":{\"name\":\"b\"},\"spec\":{\"n\":[1,2,{\"m\":null}]}} ,"
        "{\"metadata\":{\"name\":\"c\"}}],\"extra\":true}\n";
    static const char *const bad[] = {
        "",
        "[]",
        "{",
        "{\"items\":[{}",
        "{\"items\":[{},]}",
        "{\"items\":[{}]} x",
        "{\"items\":[{}] \"a\":1}",
        "{\"items\" [{}]}",
        "{1:2}",
        "{\"items\":[{\"a\":}]}",
        "{\"items\":{}}",
        "{\"items\":\"x\"}",
        "{\"items\":[],\"items\":[]}",
    };
    struct items_seen is = {.arr = cJSON_CreateArray()};
    cJSON *page = NULL, *whole = cJSON_Parse(body);
    char *txt;

    assert_non_null(whole);
    assert_int_equal(kube_list_parse(body, strlen(body), collect_item, &is, &page), 0);
    assert_true(cJSON_Compare(is.arr, cJSON_GetObjectItem(whole, "items"), true));
    assert_int_equal(cJSON_GetArraySize(is.arr), 3);
    txt = cJSON_PrintUnformatted(page);
    assert_string_equal(txt, "{\"kind\":\"PersistentVolumeClaimList\",\"apiVersion\":\"v1\","
                             "\"metadata\":{\"resourceVersion\":\"42\",\"continue\":\"tok\"},"
                             "\"items\":[],\"extra\":true}");
    free(txt);
    cJSON_Delete(page);
    cJSON_Delete(whole);
    cJSON_Delete(is.arr);

    /* no items, null items, an empty object: nothing handed out */
    static const char *const empty[] = {"{\"items\":[]}", "{\"items\":null}", "{}", " { } ",
                                        "\xEF\xBB\xBF{}"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        is = (struct items_seen){.arr = cJSON_CreateArray()};
        page = NULL;
        assert_int_equal(kube_list_parse(empty[i], strlen(empty[i]), collect_item, &is, &page), 0);
        assert_int_equal(is.calls, 0);
        assert_non_null(page);
        cJSON_Delete(page);
        cJSON_Delete(is.arr);
    }
    /* the length bounds the parse: no NUL needed, nothing read past it */
    is = (struct items_seen){.arr = cJSON_CreateArray()};
    page = NULL;
    assert_int_equal(
        kube_list_parse("{\"items\":[{\"a\":1}]}garbage", 19, collect_item, &is, &page), 0);
    assert_int_equal(is.calls, 1);
    cJSON_Delete(page);
    cJSON_Delete(is.arr);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is = (struct items_seen){.arr = cJSON_CreateArray()};
        page = NULL;
        assert_int_equal(kube_list_parse(bad[i], strlen(bad[i]), collect_item, &is, &page),
                         -EBADMSG);
        assert_null(page);
        cJSON_Delete(is.arr);
    }
    /* on_item's error stops the parse and is returned */
    is = (struct items_seen){.arr = cJSON_CreateArray(), .fail_at = 2};
    page = NULL;
    assert_int_equal(kube_list_parse(body, strlen(body), collect_item, &is, &page), -ENOSPC);
    assert_int_equal(is.calls, 2);
    assert_int_equal(cJSON_GetArraySize(is.arr), 1);
    assert_null(page);
    cJSON_Delete(is.arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_status_decode),
        cmocka_unit_test(test_obj_fields),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_client_offline),
        cmocka_unit_test(test_client_bounds),
        cmocka_unit_test(test_recorder_drops),
        cmocka_unit_test(test_merge_patch_diff),
        cmocka_unit_test(test_list_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
