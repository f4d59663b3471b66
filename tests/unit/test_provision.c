/* Unit tests: provisioner/provision.c, the pure parts (Kubernetes quantities, the claim and
 * ownership decisions). The provisioning flow itself is tested against the fake API server in
 * tests/k8s/test_provisioner.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "provision.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_quantities(void **state)
{
    static const struct {
        const char *s;
        int64_t want;
    } ok[] = {
        {"0", 0},
        {"1000", 1000},
        {"+5", 5},
        {"1Ki", 1024},
        {"64Mi", 64LL << 20},
        {"10Gi", 10LL << 30},
        {"1.5Gi", 3LL << 29},
        {"2Ti", 2LL << 40},
        {"1k", 1000},
        {"500M", 500000000},
        {"1G", 1000000000},
        {"1e9", 1000000000},
        {"1E3", 1000},
        {"1.5e3", 1500},
        {"0.1", 1},   /* rounded up to a whole byte */
        {"1500m", 2}, /* 1.5 bytes, rounded up */
        {"7Ei", 8070450532247928832LL},
    };
    int64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = -1;
        assert_int_equal(prov_parse_quantity(ok[i].s, &v), 0);
        assert_int_equal(v, ok[i].want);
    }
}

static void test_bad_quantities(void **state)
{
    static const char *const bad[] = {
        "",
        "Gi",
        "-1",
        "1Gb",
        "1 Gi",
        "1gi",
        "1..5",
        ".",
        "1e",
        "1e99",
        "8Ei",
        "1e-",
        "0x10",
        "1Gi ",
        "999999999999999999999999",
        "1,5Gi",
        "1111111111111111111111111111111111111111111111111111111111111111111111",
    };
    int64_t v = 42;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(prov_parse_quantity(bad[i], &v), -EINVAL);
        assert_int_equal(v, 42); /* untouched on failure */
    }
    assert_int_equal(prov_parse_quantity(NULL, &v), -EINVAL);
}

static void test_format_quantity(void **state)
{
    static const struct {
        int64_t bytes;
        const char *want;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {1023, "1023"},
        {1024, "1Ki"},
        {1536, "1536"},
        {10485760, "10Mi"},
        {1610612736, "1536Mi"},
        {1LL << 30, "1Gi"},
        {5LL << 40, "5Ti"},
        {1LL << 60, "1Ei"},
        {1000000000, "1000000000"},
    };
    char buf[32];
    int64_t back;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        prov_format_quantity(cases[i].bytes, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(prov_parse_quantity(buf, &back), 0); /* and it parses back */
        assert_int_equal(back, cases[i].bytes);
    }
}

static cJSON *owner_pv(const char *handle, const char *phase, const char *policy,
                       const char *ref_uid, bool deleting)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "{\"metadata\":{\"name\":\"pvc-a\"%s},"
             "\"spec\":{\"csi\":{\"driver\":\"ordinal.csi.dev\",\"volumeHandle\":\"%s\"},"
             "\"persistentVolumeReclaimPolicy\":\"%s\","
             "\"claimRef\":{\"namespace\":\"default\",\"name\":\"www-web-0\","
             "\"uid\":\"%s\"}},\"status\":{\"phase\":\"%s\"}}",
             deleting ? ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"" : "", handle, policy,
             ref_uid, phase);
    return cJSON_Parse(text);
}

static void test_owner_decision(void **state)
{
    static const char *const D = "ordinal.csi.dev", *const ID = "dir:default/www-web-0";
    struct {
        const char *store_owner; /* NULL: no store */
        int rc;                  /* reading PV store_owner */
        const char *handle, *phase, *policy, *ref_uid;
        bool deleting;
        enum prov_owner want;
    } cases[] = {
        /* no store, or the claim's own (a retry after a crash, idempotent) */
        {NULL, -ENOENT, NULL, NULL, NULL, NULL, false, PROV_OWNER_NEW},
        {"pvc-b", 0, ID, "Bound", "Delete", "uid-b", false, PROV_OWNER_NEW},
        /* the owner PV is gone: an orphan, taken over */
        {"pvc-a", -ENOENT, NULL, NULL, NULL, NULL, false, PROV_OWNER_ADOPT},
        /* the owner PV could not be read: never guess */
        {"pvc-a", -EIO, NULL, NULL, NULL, NULL, false, PROV_OWNER_WAIT},
        {"pvc-a", -ETIMEDOUT, NULL, NULL, NULL, NULL, false, PROV_OWNER_WAIT},
        /* it holds the store: bound, released with Delete (about to delete it), not yet
         * marked Released, being deleted */
        {"pvc-a", 0, ID, "Bound", "Delete", "uid-a", false, PROV_OWNER_WAIT},
        {"pvc-a", 0, ID, "Released", "Delete", "uid-a", false, PROV_OWNER_WAIT},
        {"pvc-a", 0, ID, "Bound", "Retain", "uid-a", false, PROV_OWNER_WAIT},
        {"pvc-a", 0, ID, "Failed", "Delete", "uid-a", false, PROV_OWNER_WAIT},
        {"pvc-a", 0, ID, "Released", "Retain", "uid-a", true, PROV_OWNER_WAIT},
        /* retained: given back */
        {"pvc-a", 0, ID, "Released", "Retain", "uid-a", false, PROV_OWNER_READOPT},
        /* already given back to this claim */
        {"pvc-a", 0, ID, "Released", "Retain", "uid-b", false, PROV_OWNER_DONE},
        {"pvc-a", 0, ID, "Bound", "Retain", "uid-b", false, PROV_OWNER_DONE},
        /* a PV of that name that does not hold the store (an earlier generation's id, another
         * volume): the store is an orphan */
        {"pvc-a", 0, "dir:default/www-web-0/3", "Bound", "Delete", "uid-a", false,
         PROV_OWNER_ADOPT},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *pv = cases[i].rc == 0 ? owner_pv(cases[i].handle, cases[i].phase, cases[i].policy,
                                                cases[i].ref_uid, cases[i].deleting)
                                     : NULL;
        enum prov_owner got = prov_owner_decide(D, "pvc-b", "uid-b", cases[i].store_owner,
                                                cases[i].store_owner ? ID : "", cases[i].rc, pv);
        if (got != cases[i].want)
            print_error("case %zu: got %d, want %d\n", i, (int)got, (int)cases[i].want);
        assert_int_equal(got, cases[i].want);
        cJSON_Delete(pv);
    }
    /* another driver's PV of that name does not hold our store */
    cJSON *pv = owner_pv(ID, "Bound", "Delete", "uid-a", false);
    assert_int_equal(prov_owner_decide("other.csi", "pvc-b", "uid-b", "pvc-a", ID, 0, pv),
                     PROV_OWNER_ADOPT);
    cJSON_Delete(pv);
}

static cJSON *parse(const char *json)
{
    cJSON *j = cJSON_Parse(json);

    assert_non_null(j);
    return j;
}

static void test_claim_decision(void **state)
{
    static const struct {
        const char *claim, *sc;
        enum prov_claim_step want;
    } cases[] = {
        /* ours, selected for this node */
        {"{\"metadata\":{\"uid\":\"u\",\"annotations\":{\"volume.kubernetes.io/"
         "storage-provisioner\":"
         "\"d\",\"volume.kubernetes.io/selected-node\":\"n1\"}}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_PROVISION},
        /* the beta annotation counts when the GA one is absent, not when it names another */
        {"{\"metadata\":{\"uid\":\"u\",\"annotations\":{\"volume.beta.kubernetes.io/"
         "storage-provisioner\":\"d\",\"volume.kubernetes.io/selected-node\":\"n1\"}}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_PROVISION},
        {"{\"metadata\":{\"uid\":\"u\",\"annotations\":{\"volume.kubernetes.io/"
         "storage-provisioner\":"
         "\"x\",\"volume.beta.kubernetes.io/storage-provisioner\":\"d\"}}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_WAIT_HANDOFF},
        /* another node's; no node yet: WaitForFirstConsumer waits, Immediate races */
        {"{\"metadata\":{\"uid\":\"u\",\"annotations\":{\"volume.kubernetes.io/"
         "storage-provisioner\":"
         "\"d\",\"volume.kubernetes.io/selected-node\":\"n2\"}}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_IGNORE},
        {"{\"metadata\":{\"uid\":\"u\",\"annotations\":{\"volume.kubernetes.io/"
         "storage-provisioner\":"
         "\"d\"}}}",
         "{\"provisioner\":\"d\",\"volumeBindingMode\":\"WaitForFirstConsumer\"}",
         PROV_CLAIM_IGNORE},
        {"{\"metadata\":{\"uid\":\"u\",\"annotations\":{\"volume.kubernetes.io/"
         "storage-provisioner\":"
         "\"d\",\"volume.kubernetes.io/selected-node\":\"\"}}}",
         "{\"provisioner\":\"d\",\"volumeBindingMode\":\"Immediate\"}", PROV_CLAIM_TAKE_NODE},
        /* not our class, no class, no uid */
        {"{\"metadata\":{\"uid\":\"u\"}}", "{\"provisioner\":\"other\"}", PROV_CLAIM_IGNORE},
        {"{\"metadata\":{\"uid\":\"u\"}}", NULL, PROV_CLAIM_IGNORE},
        {"{\"metadata\":{\"annotations\":{\"volume.kubernetes.io/storage-provisioner\":\"d\","
         "\"volume.kubernetes.io/selected-node\":\"n1\"}}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_IGNORE},
        /* being deleted: only with our finalizer is there something to clean up */
        {"{\"metadata\":{\"uid\":\"u\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\","
         "\"finalizers\":[\"ordinal.csi.dev/provisioning\"]}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_CLEANUP},
        {"{\"metadata\":{\"uid\":\"u\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_IGNORE},
        /* bound: drop our finalizer if it is still there */
        {"{\"metadata\":{\"uid\":\"u\",\"finalizers\":[\"ordinal.csi.dev/provisioning\"]},"
         "\"spec\":{\"volumeName\":\"pvc-u\"}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_UNFINALIZE},
        {"{\"metadata\":{\"uid\":\"u\"},\"spec\":{\"volumeName\":\"pvc-u\"}}",
         "{\"provisioner\":\"d\"}", PROV_CLAIM_IGNORE},
        /* wrong types are absent fields, never a crash */
        {"{\"metadata\":{\"uid\":7,\"annotations\":[]},\"spec\":[]}", "{\"provisioner\":{}}",
         PROV_CLAIM_IGNORE},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *claim = parse(cases[i].claim), *sc = cases[i].sc ? parse(cases[i].sc) : NULL;

        if (prov_claim_decide("d", "n1", claim, sc) != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, (int)prov_claim_decide("d", "n1", claim, sc),
                     (int)cases[i].want);
        cJSON_Delete(claim);
        cJSON_Delete(sc);
    }
}

/* Found by fuzz_provision: a class with more parameters than the request had room for made a
 * CreateVolume without the claim's identity (its namespace and name were silently dropped),
 * so the volume was keyed by the CSI name instead of <namespace>/<claim>. */
static void test_class_parameters_cap(void **state)
{
    cJSON *claim = parse("{\"metadata\":{\"uid\":\"u\",\"name\":\"c\",\"namespace\":\"ns\"}}");
    struct prov_create_args *a = malloc(sizeof(*a));
    char msg[256], key[16];

    (void)state;
    assert_non_null(a);
    for (int n = PROV_MAX_CLASS_PARAMS; n <= PROV_MAX_CLASS_PARAMS + 1; n++) {
        cJSON *sc = parse("{\"provisioner\":\"d\",\"parameters\":{}}");
        cJSON *params = cJSON_GetObjectItemCaseSensitive(sc, "parameters");
        bool names_claim = false;

        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof(key), "p%d", i);
            cJSON_AddStringToObject(params, key, "v");
        }
        msg[0] = '\0';
        int r = prov_build_create("n1", claim, sc, a, msg, sizeof(msg));
        if (n > PROV_MAX_CLASS_PARAMS) {
            assert_int_equal(r, -EINVAL);
            assert_non_null(strstr(msg, "more than 69 parameters"));
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(a->req.n_parameters, (size_t)n + 3);
            for (size_t i = 0; i < a->req.n_parameters; i++)
                if (strcmp(a->req.parameters[i]->key, "csi.storage.k8s.io/pvc/name") == 0 &&
                    strcmp(a->req.parameters[i]->value, "c") == 0)
                    names_claim = true;
            assert_true(names_claim);
        }
        cJSON_Delete(sc);
    }
    free(a);
    cJSON_Delete(claim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantities),      cmocka_unit_test(test_bad_quantities),
        cmocka_unit_test(test_format_quantity), cmocka_unit_test(test_owner_decision),
        cmocka_unit_test(test_claim_decision),  cmocka_unit_test(test_class_parameters_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
