/* Unit tests: provisioner/provision.c, the pure parts (Kubernetes quantities). The provisioning
 * flow itself is tested against the fake API server in tests/k8s/test_provisioner.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "provision.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantities),
        cmocka_unit_test(test_bad_quantities),
        cmocka_unit_test(test_format_quantity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
