/* Unit tests: kube/kube_watch.c framing and event decoding, kube_informer.c store. */
#include <errno.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kube_informer.h"
#include "kube_watch.h"

static const char stream[] =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"PersistentVolumeClaim\",\"metadata\":"
    "{\"name\":\"a\",\"namespace\":\"ns\",\"resourceVersion\":\"10\"}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\","
    "\"resourceVersion\":\"11\"},\"spec\":{\"x\":\"\xc3\xa9\\n\"}}}\r\n"
    "\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"12\"}}}\n"
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\","
    "\"resourceVersion\":\"13\"}}}\n"
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":"
    "\"Failure\",\"message\":\"too old resource version: 1 (13)\",\"reason\":\"Expired\","
    "\"code\":410}}\n";

struct collected {
    char lines[16][512];
    int n;
};

static int collect(void *ud, const char *line, size_t len)
{
    struct collected *c = ud;

    if (c->n >= 16 || len >= 512)
        return -E2BIG;
    memcpy(c->lines[c->n], line, len);
    c->lines[c->n][len] = 0;
    c->n++;
    return 0;
}

static void test_framer_every_split(void **state)
{
    size_t total = sizeof(stream) - 1;
    struct collected whole = {0};
    struct kube_framer f;

    (void)state;
    kube_framer_init(&f, 0);
    assert_int_equal(kube_framer_feed(&f, stream, total, collect, &whole), 0);
    kube_framer_release(&f);
    assert_int_equal(whole.n, 5);
    assert_non_null(strstr(whole.lines[1], "MODIFIED"));
    assert_int_equal(whole.lines[1][strlen(whole.lines[1]) - 1], '}'); /* \r stripped */

    /* every chunk size, and every single cut point */
    for (size_t piece = 1; piece <= total; piece++) {
        struct collected got = {0};

        kube_framer_init(&f, 0);
        for (size_t off = 0; off < total; off += piece) {
            size_t n = total - off < piece ? total - off : piece;

            assert_int_equal(kube_framer_feed(&f, stream + off, n, collect, &got), 0);
        }
        kube_framer_release(&f);
        assert_int_equal(got.n, whole.n);
        for (int i = 0; i < got.n; i++)
            assert_string_equal(got.lines[i], whole.lines[i]);
    }
    for (size_t cut = 0; cut <= total; cut++) {
        struct collected got = {0};

        kube_framer_init(&f, 0);
        assert_int_equal(kube_framer_feed(&f, stream, cut, collect, &got), 0);
        assert_int_equal(kube_framer_feed(&f, stream + cut, total - cut, collect, &got), 0);
        kube_framer_release(&f);
        assert_int_equal(got.n, whole.n);
    }
}

static void test_framer_overlong(void **state)
{
    struct kube_framer f;
    struct collected got = {0};
    char line[100];

    (void)state;
    memset(line, 'x', sizeof(line));
    /* exactly the cap passes */
    kube_framer_init(&f, 64);
    assert_int_equal(kube_framer_feed(&f, line, 64, collect, &got), 0);
    assert_int_equal(kube_framer_feed(&f, "\n", 1, collect, &got), 0);
    assert_int_equal(got.n, 1);
    /* one more, in pieces, without a newline yet */
    kube_framer_reset(&f);
    assert_int_equal(kube_framer_feed(&f, line, 40, collect, &got), 0);
    assert_int_equal(kube_framer_feed(&f, line, 25, collect, &got), -EMSGSIZE);
    /* in one chunk with its newline */
    kube_framer_reset(&f);
    {
        char buf[80];

        memset(buf, 'y', 65);
        buf[65] = '\n';
        assert_int_equal(kube_framer_feed(&f, buf, 66, collect, &got), -EMSGSIZE);
    }
    assert_int_equal(got.n, 1);
    kube_framer_release(&f);
}

static void test_framer_callback_stops(void **state)
{
    struct kube_framer f;
    struct collected got = {.n = 16}; /* full: collect refuses */

    (void)state;
    kube_framer_init(&f, 0);
    assert_int_equal(kube_framer_feed(&f, "a\nb\n", 4, collect, &got), -E2BIG);
    kube_framer_release(&f);
}

static void test_event_parse(void **state)
{
    struct kube_event ev;
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"type\":\"ADDED\"}",
        "{\"type\":\"ADDED\",\"object\":[]}",
        "{\"type\":\"ADDED\",\"object\":{}}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":1,\"resourceVersion\":\"1\"}}}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":1e999}}}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":\"x\"}}",
        "{\"type\":\"SOMETHING\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":"
        "\"1\"}}}",
        "{\"type\":7,\"object\":{}}",
        "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (kube_event_parse(bad[i], strlen(bad[i]), &ev) != -EBADMSG)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(
        kube_event_parse("{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":"
                         "\"99\"}}}",
                         66, &ev),
        0);
    assert_int_equal(ev.type, KUBE_EVENT_BOOKMARK);
    assert_string_equal(kube_obj_rv(ev.object), "99");
    kube_event_release(&ev);
    assert_null(ev.object);
    {
        const char *huge = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\","
                           "\"resourceVersion\":\"5\",\"generation\":1e308},\"n\":-1e400}}";

        assert_int_equal(kube_event_parse(huge, strlen(huge), &ev), 0);
        assert_int_equal(ev.type, KUBE_EVENT_MODIFIED);
        kube_event_release(&ev);
    }
}

static void test_error_event_status(void **state)
{
    const char *line = strstr(stream, "{\"type\":\"ERROR\"");
    struct kube_event ev;
    struct kube_status st;

    (void)state;
    assert_int_equal(kube_event_parse(line, strlen(line) - 1, &ev), 0);
    assert_int_equal(ev.type, KUBE_EVENT_ERROR);
    assert_int_equal(kube_status_decode(0, ev.object, &st), KUBE_EGONE);
    assert_int_equal(st.code, 410);
    assert_string_equal(st.reason, "Expired");
    assert_string_equal(st.message, "too old resource version: 1 (13)");
    kube_event_release(&ev);
}

/* ---- store ---- */

struct calls {
    char log[64][80];
    int n;
};

static void rec(struct calls *c, const char *what, const cJSON *obj)
{
    if (c->n < 64)
        snprintf(c->log[c->n++], 80, "%s %s@%s", what, kube_obj_name(obj), kube_obj_rv(obj));
}

static void on_add(void *ud, const cJSON *obj)
{
    rec(ud, "add", obj);
}

static void on_update(void *ud, const cJSON *old_obj, const cJSON *obj)
{
    assert_string_equal(kube_obj_name(old_obj), kube_obj_name(obj));
    rec(ud, "update", obj);
}

static void on_delete(void *ud, const cJSON *obj)
{
    rec(ud, "delete", obj);
}

static cJSON *obj(const char *ns, const char *name, const char *rv)
{
    char buf[256];

    snprintf(buf, sizeof(buf),
             "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"%s\"}}", ns,
             name, rv);
    return cJSON_Parse(buf);
}

static bool has_call(const struct calls *c, const char *s)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->log[i], s) == 0)
            return true;
    return false;
}

static void test_store_events_and_relist(void **state)
{
    struct calls calls = {0};
    struct kube_informer_handlers h = {on_add, on_update, on_delete, &calls};
    struct kube_store *s = kube_store_new(true);
    struct kube_event ev;
    cJSON *items, *got, *list;

    (void)state;
    ev = (struct kube_event){KUBE_EVENT_ADDED, obj("ns", "a", "1")};
    assert_int_equal(kube_store_apply(s, &ev, &h), 0);
    assert_null(ev.object); /* taken */
    ev = (struct kube_event){KUBE_EVENT_ADDED, obj("ns", "b", "2")};
    assert_int_equal(kube_store_apply(s, &ev, &h), 0);
    ev = (struct kube_event){KUBE_EVENT_MODIFIED, obj("ns", "a", "3")};
    assert_int_equal(kube_store_apply(s, &ev, &h), 0);
    ev = (struct kube_event){KUBE_EVENT_DELETED, obj("ns", "zz", "4")}; /* unknown: no call */
    assert_int_equal(kube_store_apply(s, &ev, &h), 0);
    kube_event_release(&ev);
    ev = (struct kube_event){KUBE_EVENT_ADDED, cJSON_Parse("{\"metadata\":{}}")};
    assert_int_equal(kube_store_apply(s, &ev, &h), -EINVAL);
    kube_event_release(&ev);
    assert_int_equal(calls.n, 3);
    assert_string_equal(calls.log[2], "update a@3");
    assert_int_equal(kube_store_count(s), 2);
    got = kube_store_get(s, "ns", "a");
    assert_string_equal(kube_obj_rv(got), "3");
    cJSON_Delete(got);
    assert_null(kube_store_get(s, "other", "a"));

    /* relist after a gap: a changed, b gone, c new, d new */
    calls.n = 0;
    items = cJSON_CreateArray();
    cJSON_AddItemToArray(items, obj("ns", "a", "7"));
    cJSON_AddItemToArray(items, obj("ns", "c", "8"));
    cJSON_AddItemToArray(items, obj("ns2", "a", "9"));
    assert_int_equal(kube_store_replace(s, items, &h), 0);
    assert_int_equal(cJSON_GetArraySize(items), 0);
    cJSON_Delete(items);
    assert_int_equal(calls.n, 4);
    assert_true(has_call(&calls, "update a@7"));
    assert_true(has_call(&calls, "add c@8"));
    assert_true(has_call(&calls, "add a@9"));
    assert_true(has_call(&calls, "delete b@2"));
    assert_int_equal(kube_store_count(s), 3);

    /* the same list again: nothing changed, no calls */
    calls.n = 0;
    list = kube_store_list(s);
    assert_int_equal(cJSON_GetArraySize(list), 3);
    assert_int_equal(kube_store_replace(s, list, &h), 0);
    cJSON_Delete(list);
    assert_int_equal(calls.n, 0);

    /* a bad item leaves the store unchanged */
    items = cJSON_CreateArray();
    cJSON_AddItemToArray(items, obj("ns", "q", "1"));
    cJSON_AddItemToArray(items, cJSON_CreateString("x"));
    assert_int_equal(kube_store_replace(s, items, &h), -EBADMSG);
    cJSON_Delete(items);
    assert_int_equal(kube_store_count(s), 3);
    kube_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framer_every_split),
        cmocka_unit_test(test_framer_overlong),
        cmocka_unit_test(test_framer_callback_stops),
        cmocka_unit_test(test_event_parse),
        cmocka_unit_test(test_error_event_status),
        cmocka_unit_test(test_store_events_and_relist),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
