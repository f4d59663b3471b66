/* Unit tests: kube/kube_leader.c decisions and Lease updates (pure functions). */
#include <errno.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kube_leader.h"
#include "kube_util.h"

static cJSON *lease(const char *holder, int duration, const char *renew, int transitions)
{
    char buf[512];

    snprintf(buf, sizeof(buf),
             "{\"metadata\":{\"name\":\"l\",\"namespace\":\"ns\",\"resourceVersion\":\"3\"},"
             "\"spec\":{\"holderIdentity\":\"%s\",\"leaseDurationSeconds\":%d,"
             "\"acquireTime\":\"2024-01-01T00:00:00.000000Z\",\"renewTime\":\"%s\","
             "\"leaseTransitions\":%d}}",
             holder, duration, renew, transitions);
    return cJSON_Parse(buf);
}

static const char *spec_s(const cJSON *l, const char *f)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(l, "spec"), f)->valuestring;
}

static double spec_n(const cJSON *l, const char *f)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(l, "spec"), f)->valuedouble;
}

static void test_decide(void **state)
{
    struct kube_lease_observation obs = {0};
    cJSON *l;

    (void)state;
    assert_int_equal(kube_leader_decide(NULL, "me", 100, &obs), KUBE_LEADER_CREATE);

    /* someone else holds it: valid for 15 s from when WE first saw this record */
    l = lease("other", 15, "2024-01-01T00:00:01.000000Z", 2);
    assert_int_equal(kube_leader_decide(l, "me", 100, &obs), KUBE_LEADER_WAIT);
    assert_int_equal(kube_leader_decide(l, "me", 114.9, &obs), KUBE_LEADER_WAIT);
    assert_int_equal(kube_leader_decide(l, "me", 115.0, &obs), KUBE_LEADER_ACQUIRE);
    cJSON_Delete(l);

    /* the holder renewed (record changed): the clock restarts from our observation */
    l = lease("other", 15, "2024-01-01T00:00:09.000000Z", 2);
    assert_int_equal(kube_leader_decide(l, "me", 120, &obs), KUBE_LEADER_WAIT);
    assert_int_equal(kube_leader_decide(l, "me", 134, &obs), KUBE_LEADER_WAIT);
    assert_int_equal(kube_leader_decide(l, "me", 135.5, &obs), KUBE_LEADER_ACQUIRE);
    cJSON_Delete(l);

    /* a renewTime far in the past does not matter on first sight: our clock decides */
    {
        struct kube_lease_observation fresh = {0};

        l = lease("other", 15, "1999-01-01T00:00:00.000000Z", 0);
        assert_int_equal(kube_leader_decide(l, "me", 500, &fresh), KUBE_LEADER_WAIT);
        cJSON_Delete(l);
    }

    /* ours: renew; released (empty holder): acquire at once */
    l = lease("me", 15, "2024-01-01T00:00:09.000000Z", 2);
    assert_int_equal(kube_leader_decide(l, "me", 140, &obs), KUBE_LEADER_RENEW);
    cJSON_Delete(l);
    l = lease("", 1, "2024-01-01T00:00:09.000000Z", 2);
    assert_int_equal(kube_leader_decide(l, "me", 141, &obs), KUBE_LEADER_ACQUIRE);
    cJSON_Delete(l);

    /* hostile leases are expirable, never held forever */
    l = cJSON_Parse("{\"spec\":{\"holderIdentity\":\"x\",\"leaseDurationSeconds\":1e300}}");
    assert_int_equal(kube_leader_decide(l, "me", 200, &obs), KUBE_LEADER_ACQUIRE);
    cJSON_Delete(l);
    l = cJSON_Parse("{\"spec\":{\"holderIdentity\":\"x\",\"leaseDurationSeconds\":\"15\"}}");
    assert_int_equal(kube_leader_decide(l, "me", 201, &obs), KUBE_LEADER_ACQUIRE);
    cJSON_Delete(l);
    l = cJSON_Parse("{\"spec\":\"nope\"}");
    assert_int_equal(kube_leader_decide(l, "me", 202, &obs), KUBE_LEADER_ACQUIRE);
    cJSON_Delete(l);
    l = cJSON_Parse("{\"spec\":{\"holderIdentity\":5,\"leaseDurationSeconds\":15}}");
    assert_int_equal(kube_leader_decide(l, "me", 203, &obs), KUBE_LEADER_ACQUIRE);
    cJSON_Delete(l);
}

static void test_fill_transitions(void **state)
{
    double wall = 1704164645.5; /* 2024-01-02T03:04:05.5Z */
    cJSON *l = lease("other", 15, "2024-01-01T00:00:09.000000Z", 2);

    (void)state;
    /* taking over from another holder: transitions + 1, new acquireTime */
    assert_int_equal(kube_lease_fill(l, KUBE_LEADER_ACQUIRE, "me", 15, wall), 0);
    assert_string_equal(spec_s(l, "holderIdentity"), "me");
    assert_string_equal(spec_s(l, "acquireTime"), "2024-01-02T03:04:05.500000Z");
    assert_string_equal(spec_s(l, "renewTime"), "2024-01-02T03:04:05.500000Z");
    assert_float_equal(spec_n(l, "leaseTransitions"), 3, 0);
    assert_float_equal(spec_n(l, "leaseDurationSeconds"), 15, 0);
    /* renewing: acquireTime and transitions kept */
    assert_int_equal(kube_lease_fill(l, KUBE_LEADER_RENEW, "me", 15, wall + 2), 0);
    assert_string_equal(spec_s(l, "acquireTime"), "2024-01-02T03:04:05.500000Z");
    assert_string_equal(spec_s(l, "renewTime"), "2024-01-02T03:04:07.500000Z");
    assert_float_equal(spec_n(l, "leaseTransitions"), 3, 0);
    /* release, then someone (us again) re-acquires: a transition */
    assert_int_equal(kube_lease_release(l, wall + 3), 0);
    assert_string_equal(spec_s(l, "holderIdentity"), "");
    assert_float_equal(spec_n(l, "leaseDurationSeconds"), 1, 0);
    assert_string_equal(spec_s(l, "renewTime"), "2024-01-02T03:04:08.500000Z");
    assert_int_equal(kube_lease_fill(l, KUBE_LEADER_ACQUIRE, "other", 15, wall + 4), 0);
    assert_float_equal(spec_n(l, "leaseTransitions"), 4, 0);
    assert_int_equal(kube_lease_fill(l, KUBE_LEADER_WAIT, "x", 15, wall), -EINVAL);
    cJSON_Delete(l);

    /* a lease without spec gets one */
    l = cJSON_Parse("{\"metadata\":{\"name\":\"l\"}}");
    assert_int_equal(kube_lease_fill(l, KUBE_LEADER_ACQUIRE, "me", 15, wall), 0);
    assert_float_equal(spec_n(l, "leaseTransitions"), 1, 0);
    cJSON_Delete(l);
}

static void test_new_lease(void **state)
{
    cJSON *l = kube_lease_new("kube-system", "ordinal", "pod-0", 15, 1704164645.0);
    double t;

    (void)state;
    assert_non_null(l);
    assert_string_equal(cJSON_GetObjectItem(l, "kind")->valuestring, "Lease");
    assert_string_equal(spec_s(l, "holderIdentity"), "pod-0");
    assert_float_equal(spec_n(l, "leaseTransitions"), 0, 0);
    assert_int_equal(kube__parse_time(spec_s(l, "renewTime"), &t), 0);
    assert_float_equal(t, 1704164645.0, 1e-6);
    cJSON_Delete(l);
}

static void test_config_validation(void **state)
{
    struct kube_leader_config cfg = {.namespace = "ns", .name = "l", .identity = "me"};

    (void)state;
    /* the client is not touched by kube_leader_new */
    cfg.lease_duration = 10;
    cfg.renew_deadline = 10;
    assert_null(kube_leader_new(NULL, &cfg));
    cfg.lease_duration = 15;
    cfg.renew_deadline = 10;
    cfg.retry_period = 9;
    assert_null(kube_leader_new(NULL, &cfg));
    cfg.retry_period = 2;
    cfg.name = "Bad/Name";
    assert_null(kube_leader_new(NULL, &cfg));
    cfg.name = "l";
    {
        struct kube_leader *l = kube_leader_new(NULL, &cfg);

        assert_non_null(l);
        assert_false(kube_leader_is_leader(l));
        kube_leader_free(l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_fill_transitions),
        cmocka_unit_test(test_new_lease),
        cmocka_unit_test(test_config_validation),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
