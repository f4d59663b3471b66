/* Unit tests: model/recognize.c, which set, template and ordinal a claim or pod belongs to. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"

static const char *STS =
    "{\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"web\",\"namespace\":\"demo\",\"uid\":"
    "\"u1\"},"
    "\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
    "\"persistentVolumeClaimRetentionPolicy\":{\"whenScaled\":\"Delete\"},"
    "\"podManagementPolicy\":\"Parallel\","
    "\"volumeClaimTemplates\":[{\"metadata\":{\"name\":\"www\"},\"spec\":{\"storageClassName\":"
    "\"ordinal\"}},{\"metadata\":{\"name\":\"www-a\"}}]}}";

static void parse(const char *json, struct model_set *s, int want)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    assert_int_equal(model_set_from_json(j, s), want);
    cJSON_Delete(j);
}

static void test_set_defaults_and_fields(void **state)
{
    struct model_set s;

    (void)state;
    parse(STS, &s, 0);
    assert_string_equal(s.name, "web");
    assert_string_equal(s.ns, "demo");
    assert_int_equal(s.replicas, 3);
    assert_int_equal(s.start, 0);
    assert_int_equal(s.pod_management, MODEL_PARALLEL);
    assert_int_equal(s.when_scaled, MODEL_DELETE);
    assert_int_equal(s.when_deleted, MODEL_RETAIN);
    assert_int_equal(s.n_templates, 2);
    assert_string_equal(s.template_class[0], "ordinal");
    assert_string_equal(s.template_class[1], "");
    assert_int_equal(s.n_selector, 1);
    assert_string_equal(s.selector[0].key, "app");

    parse("{\"metadata\":{\"name\":\"db\",\"namespace\":\"x\"},\"spec\":{\"ordinals\":{\"start\":5}"
          "}}",
          &s, 0);
    assert_int_equal(s.replicas, 1); /* API default */
    assert_int_equal(s.start, 5);
    assert_int_equal(s.pod_management, MODEL_ORDERED_READY);
    assert_int_equal(s.n_templates, 0);
}

static void test_set_bad_input_refused(void **state)
{
    struct model_set s;

    (void)state;
    parse("[]", &s, -EINVAL);
    parse("{\"metadata\":{\"name\":\"Web\",\"namespace\":\"d\"},\"spec\":{}}", &s, -EINVAL);
    parse("{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{\"replicas\":-1}}", &s,
          -EINVAL);
    parse("{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{\"replicas\":1.5}}", &s,
          -EINVAL);
    parse("{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{\"replicas\":1e12}}", &s,
          -EINVAL);
    parse("{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{\"ordinals\":{\"start\":"
          "\"3\"}}}",
          &s, -EINVAL);
    parse("{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{"
          "\"persistentVolumeClaimRetentionPolicy\":{\"whenDeleted\":\"delete\"}}}",
          &s, -EINVAL);
    parse("{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{\"podManagementPolicy\":"
          "\"Random\"}}",
          &s, -EINVAL);
    parse("{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{\"volumeClaimTemplates\":"
          "[{\"metadata\":{\"name\":\"../x\"}}]}}",
          &s, -EINVAL);
}

static void test_too_many_templates(void **state)
{
    char buf[4096];
    int k;
    struct model_set s;

    (void)state;
    k = snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{"
                 "\"volumeClaimTemplates\":[");
    for (int i = 0; i <= MODEL_TEMPLATES_MAX; i++)
        k += snprintf(buf + k, sizeof(buf) - (size_t)k, "%s{\"metadata\":{\"name\":\"t%d\"}}",
                      i ? "," : "", i);
    snprintf(buf + k, sizeof(buf) - (size_t)k, "]}}");
    parse(buf, &s, -E2BIG);
}

static void test_claim_names(void **state)
{
    struct model_set s;
    size_t t;
    int32_t o;

    (void)state;
    parse(STS, &s, 0);
    assert_int_equal(model_claim_name_match(&s, "www-web-0", &t, &o), 0);
    assert_int_equal(t, 0);
    assert_int_equal(o, 0);
    assert_int_equal(model_claim_name_match(&s, "www-web-12", &t, &o), 0);
    assert_int_equal(o, 12);
    /* template "www-a" is matched whole, not as "www" + set "a-web" */
    assert_int_equal(model_claim_name_match(&s, "www-a-web-7", &t, &o), 0);
    assert_int_equal(t, 1);
    assert_int_equal(o, 7);
    /* not ours */
    assert_int_equal(model_claim_name_match(&s, "data-web-0", &t, &o), -ENOENT);
    assert_int_equal(model_claim_name_match(&s, "www-web2-0", &t, &o), -ENOENT);
    assert_int_equal(model_claim_name_match(&s, "www-xweb-0", &t, &o), -ENOENT);
    assert_int_equal(model_claim_name_match(&s, "web-0", &t, &o), -ENOENT);
    assert_int_equal(model_claim_name_match(&s, "www-web", &t, &o), -ENOENT);
    assert_int_equal(model_claim_name_match(&s, "www-web-x", &t, &o), -ENOENT);
    assert_int_equal(model_claim_name_match(&s, "wwwweb-0", &t, &o), -ENOENT);
}

static void test_hostile_names(void **state)
{
    struct model_set s;
    char longname[400];
    size_t t;
    int32_t o;

    (void)state;
    parse(STS, &s, 0);
    assert_int_equal(model_claim_name_match(&s, "www-web-01", &t, &o), -EINVAL);
    assert_int_equal(model_claim_name_match(&s, "www-web-00", &t, &o), -EINVAL);
    assert_int_equal(model_claim_name_match(&s, "www-web-9999999999", &t, &o), -EINVAL);
    assert_int_equal(model_claim_name_match(&s, "www-web-1000000000", &t, &o), -EINVAL);
    assert_int_equal(model_claim_name_match(&s, "www-web-+1", &t, &o), -EINVAL);
    assert_int_equal(model_claim_name_match(&s, "www-web--1", &t, &o), -ENOENT);
    assert_int_equal(model_claim_name_match(&s, "WWW-web-1", &t, &o), -EINVAL);
    assert_int_equal(model_claim_name_match(&s, "www/../web-1", &t, &o), -EINVAL);
    assert_int_equal(model_claim_name_match(&s, "", &t, &o), -EINVAL);
    assert_int_equal(model_claim_name_match(&s, "www-web-1\n", &t, &o), -EINVAL);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(model_claim_name_match(&s, longname, &t, &o), -EINVAL);
    assert_int_equal(model_parse_ordinal("999999999", 9), 999999999);
    assert_int_equal(model_parse_ordinal("0", 1), 0);
    assert_int_equal(model_parse_ordinal("", 0), -EINVAL);
    assert_int_equal(model_parse_ordinal("1a", 2), -EINVAL);
}

static void match(const struct model_set *s, const char *pvc, int want, struct model_claim_ref *r)
{
    cJSON *j = cJSON_Parse(pvc);
    assert_non_null(j);
    assert_int_equal(model_claim_match(s, j, r), want);
    cJSON_Delete(j);
}

static void test_claim_objects_cross_checked(void **state)
{
    struct model_set s;
    struct model_claim_ref r;

    (void)state;
    parse(STS, &s, 0);
    match(
        &s,
        "{\"metadata\":{\"name\":\"www-web-1\",\"namespace\":\"demo\",\"labels\":{\"app\":\"web\","
        "\"x\":\"y\"}}}",
        0, &r);
    assert_int_equal(r.ordinal, 1);
    assert_int_equal(r.range, MODEL_IN_RANGE);
    match(
        &s,
        "{\"metadata\":{\"name\":\"www-web-5\",\"namespace\":\"demo\",\"labels\":{\"app\":\"web\"}"
        "}}",
        0, &r);
    assert_int_equal(r.range, MODEL_ABOVE); /* scaled down, retained */
    /* other namespace, missing or different selector label */
    match(
        &s,
        "{\"metadata\":{\"name\":\"www-web-1\",\"namespace\":\"other\",\"labels\":{\"app\":\"web\""
        "}}}",
        -ENOENT, &r);
    match(&s, "{\"metadata\":{\"name\":\"www-web-1\",\"namespace\":\"demo\"}}", -ENOENT, &r);
    match(&s,
          "{\"metadata\":{\"name\":\"www-web-1\",\"namespace\":\"demo\",\"labels\":{\"app\":\"db\"}"
          "}}",
          -ENOENT, &r);
    match(&s,
          "{\"metadata\":{\"name\":\"www-web-1\",\"namespace\":\"demo\",\"labels\":{\"app\":1}}}",
          -ENOENT, &r);
    match(&s, "{\"metadata\":{\"name\":7,\"namespace\":\"demo\"}}", -EINVAL, &r);
    match(&s, "{}", -EINVAL, &r);
}

static void test_start_ordinal_ranges(void **state)
{
    struct model_set s;
    struct model_claim_ref r;

    (void)state;
    parse("{\"metadata\":{\"name\":\"web\",\"namespace\":\"demo\"},\"spec\":{\"replicas\":2,"
          "\"ordinals\":{\"start\":3},\"volumeClaimTemplates\":[{\"metadata\":{\"name\":\"d\"}}]}}",
          &s, 0);
    assert_int_equal(model_range_of(&s, 2), MODEL_BELOW);
    assert_int_equal(model_range_of(&s, 3), MODEL_IN_RANGE);
    assert_int_equal(model_range_of(&s, 4), MODEL_IN_RANGE);
    assert_int_equal(model_range_of(&s, 5), MODEL_ABOVE);
    match(&s, "{\"metadata\":{\"name\":\"d-web-0\",\"namespace\":\"demo\"}}", 0, &r);
    assert_int_equal(r.range, MODEL_BELOW);
    match(&s, "{\"metadata\":{\"name\":\"d-web-4\",\"namespace\":\"demo\"}}", 0, &r);
    assert_int_equal(r.range, MODEL_IN_RANGE);
}

static void test_pod_names_and_claim_name(void **state)
{
    struct model_set s;
    char buf[300];
    int32_t o;

    (void)state;
    parse(STS, &s, 0);
    assert_int_equal(model_pod_name_match(&s, "web-2", &o), 0);
    assert_int_equal(o, 2);
    assert_int_equal(model_pod_name_match(&s, "xweb-2", &o), -ENOENT);
    assert_int_equal(model_pod_name_match(&s, "a-web-2", &o), -ENOENT);
    assert_int_equal(model_pod_name_match(&s, "web-02", &o), -EINVAL);
    assert_int_equal(model_claim_name(buf, sizeof(buf), &s, 1, 4), 11);
    assert_string_equal(buf, "www-a-web-4");
    assert_int_equal(model_claim_name(buf, 5, &s, 1, 4), -ENAMETOOLONG);
    assert_int_equal(model_claim_name(buf, sizeof(buf), &s, 2, 4), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_defaults_and_fields),
        cmocka_unit_test(test_set_bad_input_refused),
        cmocka_unit_test(test_too_many_templates),
        cmocka_unit_test(test_claim_names),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_claim_objects_cross_checked),
        cmocka_unit_test(test_start_ordinal_ranges),
        cmocka_unit_test(test_pod_names_and_claim_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
